//! Sigma rule documents: metadata and the compiled detection.

use serde_norway::Value as Y;

use crate::condition::{self, Cond};
use crate::matcher::{Item, Keywords, Search};
use crate::modifiers::{Placeholders, RawValue, compile_item};

/// `level` (rules specification, "Level").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "informational" => Level::Informational,
            "low" => Level::Low,
            "medium" => Level::Medium,
            "high" => Level::High,
            "critical" => Level::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// `logsource`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSource {
    pub category: Option<String>,
    pub product: Option<String>,
    pub service: Option<String>,
    pub definition: Option<String>,
}

/// A detection rule: its metadata and compiled detection.
#[derive(Debug, Clone)]
pub struct Rule {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub tags: Vec<String>,
    pub logsource: LogSource,
    pub level: Option<Level>,
    pub falsepositives: Vec<String>,
    pub fields: Vec<String>,
    pub detection: Detection,
}

/// The compiled `detection` section.
#[derive(Debug, Clone)]
pub struct Detection {
    pub names: Vec<String>,
    pub searches: Vec<Search>,
    /// A list of conditions is linked with OR.
    pub conditions: Vec<Cond>,
    /// Filters applied to this rule (filters specification): the rule
    /// matches only if none of them does.
    pub filters: Vec<Detection>,
}

impl Detection {
    pub fn matches(&self, ev: &schema::Event) -> bool {
        self.matches_given(ev, None)
    }

    /// [`Detection::matches`] where search `holds` (an index into
    /// `searches`) is already known to hold on `ev`, so is not evaluated.
    pub fn matches_given(&self, ev: &schema::Event, holds: Option<usize>) -> bool {
        let mut memo: [u8; 64] = [0; 64];
        if let Some(i) = holds.filter(|i| *i < 64) {
            memo[i] = 2;
        }
        let mut search = |i: usize| -> bool {
            if i < 64 {
                match memo[i] {
                    1 => return false,
                    2 => return true,
                    _ => {}
                }
                let r = self.searches[i].matches(ev);
                memo[i] = 1 + r as u8;
                r
            } else {
                self.searches[i].matches(ev)
            }
        };
        self.conditions.iter().any(|c| c.eval(&mut search))
            && !self.filters.iter().any(|f| f.matches(ev))
    }
}

/// An error in one part of a rule, with the text to locate it by.
#[derive(Debug, Clone)]
pub struct Problem {
    pub message: String,
    /// A text of the document the error is about (a key), to find its line.
    pub near: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>, near: Option<&str>) -> Problem {
        Problem {
            message: message.into(),
            near: near.map(str::to_string),
        }
    }
}

fn opt_str(doc: &Y, key: &str) -> Result<Option<String>, Problem> {
    match doc.get(key) {
        None | Some(Y::Null) => Ok(None),
        Some(Y::String(s)) => Ok(Some(s.clone())),
        // Dates are often written unquoted; YAML reads them as strings here.
        Some(Y::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Problem::new(format!("`{key}` must be a string"), Some(key))),
    }
}

fn str_list(doc: &Y, key: &str) -> Result<Vec<String>, Problem> {
    match doc.get(key) {
        None | Some(Y::Null) => Ok(Vec::new()),
        Some(Y::String(s)) => Ok(vec![s.clone()]),
        Some(Y::Sequence(items)) => items
            .iter()
            .map(|i| match i {
                Y::String(s) => Ok(s.clone()),
                Y::Number(n) => Ok(n.to_string()),
                Y::Bool(b) => Ok(b.to_string()),
                _ => Err(Problem::new(
                    format!("`{key}` must be a list of strings"),
                    Some(key),
                )),
            })
            .collect(),
        Some(_) => Err(Problem::new(
            format!("`{key}` must be a list of strings"),
            Some(key),
        )),
    }
}

/// Reads the metadata of a rule, correlation or filter document.
pub(crate) struct Meta {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub references: Vec<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    pub modified: Option<String>,
    pub tags: Vec<String>,
    pub level: Option<Level>,
    pub falsepositives: Vec<String>,
    pub fields: Vec<String>,
}

pub(crate) fn meta(doc: &Y) -> Result<Meta, Problem> {
    let title = opt_str(doc, "title")?.ok_or_else(|| Problem::new("`title` is missing", None))?;
    let level = match opt_str(doc, "level")? {
        None => None,
        Some(l) => Some(Level::parse(&l).ok_or_else(|| {
            Problem::new(
                format!("`level: {l}` is not one of informational, low, medium, high, critical"),
                Some("level"),
            )
        })?),
    };
    Ok(Meta {
        title,
        id: opt_str(doc, "id")?,
        name: opt_str(doc, "name")?,
        status: opt_str(doc, "status")?,
        description: opt_str(doc, "description")?,
        references: str_list(doc, "references")?,
        author: opt_str(doc, "author")?,
        date: opt_str(doc, "date")?,
        modified: opt_str(doc, "modified")?,
        tags: str_list(doc, "tags")?,
        level,
        falsepositives: str_list(doc, "falsepositives")?,
        fields: str_list(doc, "fields")?,
    })
}

/// The `rules` list of a correlation or filter section (ids or names).
pub(crate) fn rule_refs(section: &Y, what: &str) -> Result<Vec<String>, Problem> {
    let rules: Vec<String> = match section.get("rules") {
        Some(Y::String(s)) => vec![s.clone()],
        Some(Y::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Problem::at(
                    format!("`{what}.rules` must list rule ids or names"),
                    "rules",
                )
            })?,
        _ => return Err(Problem::at(format!("`{what}.rules` is missing"), what)),
    };
    if rules.is_empty() {
        return Err(Problem::at(format!("`{what}.rules` is empty"), "rules"));
    }
    Ok(rules)
}

pub(crate) fn logsource(doc: &Y) -> Result<LogSource, Problem> {
    let Some(ls) = doc.get("logsource") else {
        return Err(Problem::new("`logsource` is missing", None));
    };
    if !ls.is_mapping() {
        return Err(Problem::new("`logsource` must be a map", Some("logsource")));
    }
    Ok(LogSource {
        category: opt_str(ls, "category")?,
        product: opt_str(ls, "product")?,
        service: opt_str(ls, "service")?,
        definition: opt_str(ls, "definition")?,
    })
}

/// Compiles a detection rule document.
pub fn rule_from_yaml(doc: &Y, placeholders: &Placeholders) -> Result<Rule, Problem> {
    let m = meta(doc)?;
    let logsource = logsource(doc)?;
    let det = doc
        .get("detection")
        .ok_or_else(|| Problem::new("`detection` is missing", None))?;
    let detection = compile_detection(det, placeholders)?;
    Ok(Rule {
        title: m.title,
        id: m.id,
        name: m.name,
        status: m.status,
        description: m.description,
        references: m.references,
        author: m.author,
        date: m.date,
        modified: m.modified,
        tags: m.tags,
        logsource,
        level: m.level,
        falsepositives: m.falsepositives,
        fields: m.fields,
        detection,
    })
}

/// Compiles a `detection` map (also used by filters).
pub fn compile_detection(det: &Y, placeholders: &Placeholders) -> Result<Detection, Problem> {
    let Y::Mapping(map) = det else {
        return Err(Problem::new("`detection` must be a map", Some("detection")));
    };
    let mut names = Vec::new();
    let mut searches = Vec::new();
    let mut cond_texts: Vec<String> = Vec::new();
    for (k, v) in map {
        let Some(key) = k.as_str() else {
            return Err(Problem::new(
                "search identifiers must be strings",
                Some("detection"),
            ));
        };
        match key {
            "condition" => match v {
                Y::String(s) => cond_texts.push(s.clone()),
                Y::Sequence(items) => {
                    for i in items {
                        match i {
                            Y::String(s) => cond_texts.push(s.clone()),
                            _ => {
                                return Err(Problem::new(
                                    "`condition` must be a string or a list of strings",
                                    Some("condition"),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(Problem::new(
                        "`condition` must be a string or a list of strings",
                        Some("condition"),
                    ));
                }
            },
            // Sigma 1's aggregation window; meaningless without one.
            "timeframe" => {}
            _ => {
                let s = compile_search(v, placeholders, 0).map_err(|e| {
                    Problem::new(
                        format!("`{key}`: {}", e.message),
                        e.near.as_deref().or(Some(key)),
                    )
                })?;
                names.push(key.to_string());
                searches.push(s);
            }
        }
    }
    if cond_texts.is_empty() {
        return Err(Problem::new(
            "`detection` has no `condition`",
            Some("detection"),
        ));
    }
    let mut conditions = cond_texts
        .iter()
        .map(|c| {
            condition::parse(c, &names)
                .map_err(|e| Problem::new(format!("condition `{c}`: {e}"), Some("condition")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Cheap tests first (results do not depend on the order).
    searches.iter_mut().for_each(Search::order_by_cost);
    let costs: Vec<u32> = searches.iter().map(crate::matcher::Cost::cost).collect();
    let cost = |i: usize| costs.get(i).copied().unwrap_or(u32::MAX);
    conditions.iter_mut().for_each(|c| c.order_by_cost(&cost));
    Ok(Detection {
        names,
        searches,
        conditions,
        filters: Vec::new(),
    })
}

/// Deeper search structures are refused (hostile rules).
const MAX_SEARCH_DEPTH: usize = 16;

fn compile_search(v: &Y, placeholders: &Placeholders, depth: usize) -> Result<Search, Problem> {
    if depth > MAX_SEARCH_DEPTH {
        return Err(Problem::new("lists of maps nest too deeply", None));
    }
    match v {
        Y::Mapping(map) => {
            let mut items: Vec<Item> = Vec::new();
            let mut keywords: Vec<Keywords> = Vec::new();
            for (k, val) in map {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    _ => return Err(Problem::new("field names must be strings", None)),
                };
                let mut parts = key.split('|');
                let field = parts.next().unwrap_or("").trim();
                let mut mods: Vec<&str> = parts.collect();
                // Keywords are looked for anywhere in the event's values
                // (rules specification, "Keywords search"), with modifiers
                // (`'|all':`) as without: a contains match unless a
                // modifier says how to compare.
                if field.is_empty() && !mods.iter().any(|m| SETS_COMPARISON.contains(m)) {
                    mods.push("contains");
                }
                let values = raw_values(val)
                    .map_err(|e| Problem::new(format!("`{key}`: {e}"), Some(&key)))?;
                let (f, kind) = compile_item(field, &mods, &values, placeholders)
                    .map_err(|e| Problem::new(format!("`{key}`: {e}"), Some(&key)))?;
                match (f, kind) {
                    (Some(field), kind) => items.push(Item { field, kind }),
                    // `'|all': [...]`: keywords with modifiers.
                    (None, crate::matcher::ItemKind::Values(combine, values)) => keywords.push(
                        Keywords::new(matches!(combine, crate::matcher::Combine::All), values),
                    ),
                    (None, _) => {
                        return Err(Problem::new(
                            format!("`{key}`: `exists` needs a field name"),
                            Some(&key),
                        ));
                    }
                }
            }
            if keywords.is_empty() {
                Ok(Search::And(items))
            } else if items.is_empty() && keywords.len() == 1 {
                Ok(Search::Keywords(keywords.pop().unwrap()))
            } else {
                // Mixed: every part must hold.
                let mut parts: Vec<Search> = vec![Search::And(items)];
                parts.extend(keywords.into_iter().map(Search::Keywords));
                Ok(Search::All(parts))
            }
        }
        Y::Sequence(list) => {
            if list.is_empty() {
                return Err(Problem::new("an empty list matches nothing", None));
            }
            let scalars: Vec<&Y> = list
                .iter()
                .filter(|i| !i.is_mapping() && !i.is_sequence())
                .collect();
            let mut alts: Vec<Search> = Vec::new();
            if !scalars.is_empty() {
                let values: Vec<RawValue> = scalars
                    .iter()
                    .map(|v| scalar(v))
                    .collect::<Result<_, _>>()
                    .map_err(|e| Problem::new(e, None))?;
                alts.push(keyword_search(&values, placeholders)?);
            }
            for item in list.iter().filter(|i| i.is_mapping() || i.is_sequence()) {
                alts.push(compile_search(item, placeholders, depth + 1)?);
            }
            Ok(if alts.len() == 1 {
                alts.pop().unwrap()
            } else {
                Search::Or(alts)
            })
        }
        Y::String(_) | Y::Number(_) | Y::Bool(_) => {
            let v = scalar(v).map_err(|e| Problem::new(e, None))?;
            keyword_search(&[v], placeholders)
        }
        Y::Null => Err(Problem::new("a search identifier has no definition", None)),
        Y::Tagged(_) => Err(Problem::new("YAML tags are not supported", None)),
    }
}

/// Plain keywords: each value is looked for anywhere in the event's text
/// fields (a contains match, case-insensitive, wildcards honoured).
fn keyword_search(values: &[RawValue], placeholders: &Placeholders) -> Result<Search, Problem> {
    let (_, kind) =
        compile_item("", &["contains"], values, placeholders).map_err(|e| Problem::new(e, None))?;
    match kind {
        crate::matcher::ItemKind::Values(_, values) => {
            Ok(Search::Keywords(Keywords::new(false, values)))
        }
        _ => unreachable!("keywords compile to values"),
    }
}

fn scalar(v: &Y) -> Result<RawValue, String> {
    Ok(match v {
        Y::String(s) => RawValue::Str(s.clone()),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                RawValue::Int(i)
            } else if let Some(f) = n.as_f64() {
                RawValue::Float(f)
            } else {
                RawValue::Str(n.to_string())
            }
        }
        Y::Bool(b) => RawValue::Bool(*b),
        Y::Null => RawValue::Null,
        _ => return Err("values must be strings, numbers, booleans or null".into()),
    })
}

/// Modifiers that say how a keyword value is compared.
const SETS_COMPARISON: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "re",
    "cidr",
    "exists",
    "fieldref",
    "lt",
    "lte",
    "gt",
    "gte",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
];

fn raw_values(v: &Y) -> Result<Vec<RawValue>, String> {
    match v {
        Y::Sequence(items) => {
            if items.is_empty() {
                return Err("an empty list matches nothing".into());
            }
            // Rules specification, "Special Field Values": "null cannot be
            // part of a list of field values".
            if items.len() > 1 && items.iter().any(Y::is_null) {
                return Err(
                    "`null` cannot be part of a list of values: give it a selection of its own"
                        .into(),
                );
            }
            items.iter().map(scalar).collect()
        }
        other => Ok(vec![scalar(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(yaml: &str) -> Result<Detection, Problem> {
        let det: Y = serde_norway::from_str(yaml).unwrap();
        compile_detection(&det, &Placeholders::new())
    }

    fn event(json: &str) -> schema::Event {
        schema::Event::from_json(&schema::Str::from(json)).unwrap()
    }

    // Rules specification, "Keywords search": `'|all':` keywords are
    // looked for anywhere in the event, like a plain keyword list (the
    // specification's example values are fragments: ' -ExternalUrl ').
    #[test]
    fn all_keywords_are_contains_matches() {
        let d = detection(
            "k:\n  '|all':\n    - 'OabVirtualDirectory'\n    - ' -ExternalUrl '\ncondition: k",
        )
        .unwrap();
        assert!(d.matches(&event(
            r#"{"m":"Set-OabVirtualDirectory -Identity x -ExternalUrl 'http://evil'"}"#
        )));
        assert!(!d.matches(&event(r#"{"m":"Set-OabVirtualDirectory -Identity x"}"#)));
        // A comparison modifier keeps its own meaning.
        let d = detection("k:\n  '|startswith':\n    - 'abc'\ncondition: k").unwrap();
        assert!(d.matches(&event(r#"{"m":"abcdef"}"#)));
        assert!(!d.matches(&event(r#"{"m":"xabc"}"#)));
    }

    // Rules specification, "Special Field Values": the "Invalid Example".
    #[test]
    fn null_in_a_value_list_is_refused() {
        let e = detection("s:\n  FieldB:\n    - ''\n    - null\ncondition: s").unwrap_err();
        assert!(
            e.message.contains("`null` cannot be part of a list"),
            "{}",
            e.message
        );
        assert!(detection("s:\n  FieldB:\n    - null\ncondition: s").is_ok());
    }
}
