//! Processing pipelines: rewrite Sigma rules for mlsoc's events before they
//! are compiled, and say which events each rule's log source covers.
//!
//! Sigma rules name fields the way their log source does (`cs-uri-query`
//! for web servers, `eventName` for CloudTrail, `objectRef.resource` for
//! Kubernetes audit, `CommandLine` for process creation); mlsoc's events are
//! ECS documents (`url.original`, `event.action`, `kubernetes.audit.*`,
//! `process.command_line`). A pipeline bridges the two in the manner of
//! pySigma's processing pipelines: a list of transformations applied to the
//! rule document (its `detection`, `logsource` and `fields`), plus a routing
//! table that tells the engine which events a log source's rules are to see.
//!
//! # File format
//!
//! ```yaml
//! name: ecs-webserver            # required
//! priority: 20                   # optional, default 0: lower runs first
//! description: ...               # optional
//! transformations:               # optional, applied in order
//!   - id: webserver_fields       # optional, names the item in errors
//!     type: field_name_mapping
//!     mapping:
//!       cs-method: http.request.method
//!       cs-uri-query: [url.original, url.query]   # several fields: OR
//!     rule_conditions:           # optional: the rules it applies to
//!       - type: logsource
//!         category: webserver
//! logsources:                    # optional: routing
//!   - category: webserver        # any subset of category/product/service
//!     conditions:
//!       event.dataset: [mlflow.access, http.access]
//! ```
//!
//! Unknown keys are errors (a misspelt condition would otherwise widen a
//! transformation silently).
//!
//! ## Transformations
//!
//! Every transformation has a `type` and optional conditions; the
//! type-specific keys are:
//!
//! | `type` | keys | effect |
//! |---|---|---|
//! | `field_name_mapping` | `mapping: {sigma: ecs}` or `{sigma: [ecs, ...]}` | renames fields; a list means *any of these fields*: the detection item becomes an OR over the fields, still ANDed with the other items of its map |
//! | `field_name_prefix` | `prefix: text` | prepends `prefix` to field names |
//! | `replace_string` | `regex`, `replacement` | replaces matches of `regex` in string values (`$1` refers to groups) |
//! | `add_condition` | `conditions: {field: value}`, `negated: bool` | adds a search identifier `_pipeline_cond_N` with these items and ANDs it (or its negation) into every condition of the rule |
//! | `drop_detection_item` | (none) | removes the detection items its conditions select (a map left empty matches every event: the dropped items count as satisfied) |
//! | `change_modifiers` | `add: [...]`, `remove: [...]` | adds or removes value modifiers of the detection items its conditions select |
//! | `change_logsource` | `category`, `product`, `service` | sets the given logsource keys (`null` removes one) |
//!
//! Rule documents and meta filter documents (their `filter` section) are
//! rewritten; correlation documents are not (see docs/pipelines.md).
//!
//! Field names are rewritten in detection keys (`Field|modifiers`, the
//! modifiers kept), in the values of `fieldref` items (they name fields), and
//! in the rule's `fields` list. A field mapped to several fields turns the
//! map holding it into a list of maps, one per field (the cross product when
//! several items of one map are mapped so); such maps found in a list of
//! maps are spliced into that list. Keyword searches (lists of plain values,
//! `'|all'` keys) have no field and are left alone by field transformations;
//! `replace_string` changes them only when it has no field name conditions.
//! `replace_string` works on the value as written in the rule (wildcards and
//! escapes included) and leaves out items with the `re`, `cidr`, `exists`,
//! `expand` and `fieldref` modifiers and non-string values.
//!
//! Two items of one map cannot become the same key (`a|contains` and
//! `b|contains` both mapped to `x`): YAML maps have unique keys and Sigma has
//! no other way to AND two items of one field, so this is an error.
//!
//! ## Conditions
//!
//! * `rule_conditions`: list of `{type: logsource, category, product,
//!   service}`; each given key must equal the rule's (ASCII case ignored),
//!   as the rule's logsource is at that point of the pipeline (after earlier
//!   `change_logsource`). `rule_cond_linking: all|any` (default `all`),
//!   `rule_cond_not: true` negates the result.
//! * `field_name_conditions`: list of `{type: include_fields |
//!   exclude_fields, fields: [...], match: plain | regex}`; regexes must
//!   match the whole name. `field_name_cond_linking`, `field_name_cond_not`.
//! * `detection_item_conditions`: list of `{type: match_string, pattern,
//!   cond: any|all, negate: bool}` (string values of the item matched by a
//!   regex) and `{type: has_modifiers, modifiers: [...], negate: bool}`
//!   (the item has all of them). `detection_item_cond_linking`,
//!   `detection_item_cond_not`.
//!
//! ## Routing (`logsources`)
//!
//! Each entry names a log source by any subset of `category`, `product` and
//! `service`, and gives `conditions` on event fields: a map `{field: value
//! or [values]}` (every field must hold one of its values; `'*'` means the
//! field has a non-null value), or a list of such maps (any of them). An
//! empty list matches no event: "mlsoc has no events of this kind". Values
//! are compared with the event's values as text, exactly.
//!
//! An entry applies to a rule when each key it gives equals the rule's
//! (after the pipelines' transformations). Every entry that applies, in
//! every pipeline, must hold: `category: webserver` and `product: mlflow`
//! entries together give "web access events of MLflow". An entry for a
//! product alone must therefore cover the events of all its services. A
//! rule no entry applies to gets no route ([`route_all`] returns `None`); what
//! that means is the engine's choice (see the crate's loader).
//!
//! ## Several pipelines
//!
//! [`apply_all`] applies pipelines in ascending `priority`, in the given
//! order for equal priorities; each pipeline applies its transformations in
//! order and each sees the output of the previous one. [`route_all`] ANDs
//! the routes of all pipelines.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_norway::{Mapping, Value as Y};

use crate::matcher::FieldRef;
use crate::rule::LogSource;

/// Pipeline files larger than this are refused unread.
pub const MAX_PIPELINE_FILE_BYTES: u64 = 1 << 20;
/// Alternatives one map may turn into through fields mapped to several
/// fields (a cross product): more is an error, not an explosion.
pub const MAX_ALTERNATIVES: usize = 4096;
/// Nesting of lists in a detection followed at most.
const MAX_DEPTH: usize = 32;
/// Compiled size of a pipeline regex.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The pipelines shipped with mlsoc, by file name.
const BUILTIN: &[(&str, &str)] = &[
    (
        "mlsoc-logsources.yml",
        include_str!("../pipelines/mlsoc-logsources.yml"),
    ),
    (
        "ecs-webserver.yml",
        include_str!("../pipelines/ecs-webserver.yml"),
    ),
    ("ecs-proxy.yml", include_str!("../pipelines/ecs-proxy.yml")),
    (
        "ecs-cloudtrail.yml",
        include_str!("../pipelines/ecs-cloudtrail.yml"),
    ),
    (
        "ecs-kubernetes.yml",
        include_str!("../pipelines/ecs-kubernetes.yml"),
    ),
    ("ecs-linux.yml", include_str!("../pipelines/ecs-linux.yml")),
];

/// A pipeline file that could not be loaded: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct PipelineError {
    pub path: PathBuf,
    /// 1-based line the error is about (0 when the file could not be read).
    pub line: usize,
    pub message: String,
}

/// A processing pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub priority: i64,
    pub description: Option<String>,
    /// The file it was read from.
    pub origin: PathBuf,
    transformations: Vec<Transformation>,
    logsources: Vec<SourceEntry>,
}

impl Pipeline {
    /// Reads a pipeline from its YAML text; `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Pipeline, PipelineError> {
        let err = |line: usize, message: String| PipelineError {
            path: origin.to_path_buf(),
            line,
            message,
        };
        let doc: Y = serde_norway::from_str(text).map_err(|e| {
            let line = e.location().map_or(1, |l| l.line());
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            err(line, format!("not valid YAML: {msg}"))
        })?;
        let loc = Locator::new(text);
        let Y::Mapping(top) = &doc else {
            return Err(err(1, "a pipeline must be a YAML map".into()));
        };
        for k in top.keys() {
            let key = k.as_str().unwrap_or("");
            if !matches!(
                key,
                "name" | "priority" | "description" | "transformations" | "logsources"
            ) {
                return Err(err(
                    loc.top_key(key).unwrap_or(1),
                    format!(
                        "unknown key `{}` (expected name, priority, description, transformations, logsources)",
                        text_of(k)
                    ),
                ));
            }
        }
        let name = match top.get("name") {
            Some(Y::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(err(
                    loc.top_key("name").unwrap_or(1),
                    "`name` must be a non-empty string".into(),
                ));
            }
            None => return Err(err(1, "`name` is missing".into())),
        };
        let priority = match top.get("priority") {
            None | Some(Y::Null) => 0,
            Some(Y::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
            Some(_) => {
                return Err(err(
                    loc.top_key("priority").unwrap_or(1),
                    "`priority` must be an integer".into(),
                ));
            }
        };
        let description = match top.get("description") {
            None | Some(Y::Null) => None,
            Some(Y::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(err(
                    loc.top_key("description").unwrap_or(1),
                    "`description` must be a string".into(),
                ));
            }
        };
        let section = |key: &str| -> Result<&[Y], PipelineError> {
            match top.get(key) {
                None | Some(Y::Null) => Ok(&[]),
                Some(Y::Sequence(items)) => Ok(items),
                Some(_) => Err(err(
                    loc.top_key(key).unwrap_or(1),
                    format!("`{key}` must be a list"),
                )),
            }
        };
        let mut transformations = Vec::new();
        let lines = loc.items("transformations");
        for (i, item) in section("transformations")?.iter().enumerate() {
            let (start, end) = loc.item_range(&lines, i, "transformations");
            let t = Transformation::parse(item).map_err(|p| {
                let line = p
                    .key
                    .as_deref()
                    .and_then(|k| loc.key_in(k, start, end))
                    .unwrap_or(start);
                err(line, format!("transformation {}: {}", i + 1, p.message))
            })?;
            transformations.push(t);
        }
        let mut logsources = Vec::new();
        let lines = loc.items("logsources");
        for (i, item) in section("logsources")?.iter().enumerate() {
            let (start, end) = loc.item_range(&lines, i, "logsources");
            let e = SourceEntry::parse(item).map_err(|p| {
                let line = p
                    .key
                    .as_deref()
                    .and_then(|k| loc.key_in(k, start, end))
                    .unwrap_or(start);
                err(line, format!("logsource {}: {}", i + 1, p.message))
            })?;
            logsources.push(e);
        }
        Ok(Pipeline {
            name,
            priority,
            description,
            origin: origin.to_path_buf(),
            transformations,
            logsources,
        })
    }

    /// Reads a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
        let io = |message: String| PipelineError {
            path: path.to_path_buf(),
            line: 0,
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| io(format!("cannot read: {e}")))?;
        if meta.len() > MAX_PIPELINE_FILE_BYTES {
            return Err(io(format!(
                "the file is {} bytes, over the limit of {MAX_PIPELINE_FILE_BYTES} bytes for a pipeline",
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| io(format!("cannot read: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            io(format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Pipeline::from_yaml(&text, path)
    }

    /// The pipelines shipped with mlsoc (`detections/pipelines/*.yml`), in
    /// priority order.
    pub fn builtin() -> Vec<Pipeline> {
        let mut out: Vec<Pipeline> = BUILTIN
            .iter()
            .filter_map(|(file, text)| {
                let origin = Path::new("<builtin>").join(file);
                match Pipeline::from_yaml(text, &origin) {
                    Ok(p) => Some(p),
                    // Covered by the tests; never expected at run time.
                    Err(e) => {
                        tracing::error!("built-in pipeline: {e}");
                        None
                    }
                }
            })
            .collect();
        out.sort_by_key(|p| p.priority);
        out
    }

    /// Number of transformations.
    pub fn transformation_count(&self) -> usize {
        self.transformations.len()
    }

    /// Rewrites a rule document (before it is compiled). On error the
    /// document may be partly rewritten.
    pub fn apply(&self, doc: &mut Y) -> Result<(), String> {
        if !doc.is_mapping() {
            return Ok(());
        }
        for (i, t) in self.transformations.iter().enumerate() {
            let ls = doc_logsource(doc);
            if !t.rule_applies(&ls) {
                continue;
            }
            t.apply(doc).map_err(|e| {
                let which = match &t.id {
                    Some(id) => format!("`{id}`"),
                    None => format!("{}", i + 1),
                };
                format!(
                    "pipeline `{}` ({}), transformation {which}: {e}",
                    self.name,
                    self.origin.display()
                )
            })?;
        }
        Ok(())
    }

    /// The events a rule with this log source is to see, per this
    /// pipeline's `logsources`: every entry that applies must hold. `None`
    /// when no entry applies.
    pub fn route(&self, logsource: &LogSource) -> Option<Route> {
        let mut route: Option<Route> = None;
        for e in &self.logsources {
            if e.applies(logsource) {
                let r = Route {
                    all: vec![e.alternatives.clone()],
                };
                route = Some(match route {
                    Some(prev) => prev.and(r),
                    None => r,
                });
            }
        }
        route
    }
}

/// Applies pipelines to a rule document in ascending priority (stable for
/// equal priorities).
pub fn apply_all(pipelines: &[Pipeline], doc: &mut Y) -> Result<(), String> {
    let mut order: Vec<&Pipeline> = pipelines.iter().collect();
    order.sort_by_key(|p| p.priority);
    for p in order {
        p.apply(doc)?;
    }
    Ok(())
}

/// The route of a log source over several pipelines: all of their routes
/// must hold. `None` when no pipeline routes it.
pub fn route_all(pipelines: &[Pipeline], logsource: &LogSource) -> Option<Route> {
    pipelines
        .iter()
        .filter_map(|p| p.route(logsource))
        .reduce(Route::and)
}

// ------------------------------------------------------------------ routes

/// Which events a rule sees: every clause must hold; a clause holds when
/// any of its alternatives does; an alternative holds when each of its
/// field tests does. Comparable and hashable, so that rules sharing a route
/// can be grouped and the route tested once per event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    all: Vec<Vec<Conj>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Conj(Vec<Test>);

/// One field test: the field has one of the values (or any value).
#[derive(Debug, Clone)]
struct Test {
    field: FieldRef,
    /// Empty: any non-null value.
    values: Vec<String>,
}

impl PartialEq for Test {
    fn eq(&self, o: &Test) -> bool {
        self.field.name == o.field.name && self.values == o.values
    }
}

impl Eq for Test {}

impl std::hash::Hash for Test {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.field.name.hash(h);
        self.values.hash(h);
    }
}

impl Test {
    fn matches(&self, ev: &schema::Event) -> bool {
        let mut hit = false;
        self.field.visit(ev, &mut |v| {
            hit = match v.to_text() {
                None => false,
                Some(t) => self.values.is_empty() || self.values.iter().any(|x| *x == *t),
            };
            hit
        });
        hit
    }
}

impl Route {
    /// True when the event belongs to the route's log source.
    pub fn matches(&self, ev: &schema::Event) -> bool {
        self.all
            .iter()
            .all(|alts| alts.iter().any(|c| c.0.iter().all(|t| t.matches(ev))))
    }

    /// Both routes must hold.
    pub fn and(mut self, other: Route) -> Route {
        for clause in other.all {
            if !self.all.contains(&clause) {
                self.all.push(clause);
            }
        }
        self
    }

    /// The route of a log source no pipeline maps: no event.
    pub fn nothing() -> Route {
        Route {
            all: vec![Vec::new()],
        }
    }

    /// True when no event can match (a log source mlsoc has no events of):
    /// the engine may leave such rules out.
    pub fn matches_nothing(&self) -> bool {
        self.all.iter().any(Vec::is_empty)
    }

    /// [`Route::matches`] on an event whose field `name` has the text
    /// values `texts(name)` (and no other field the route reads): a
    /// route only compares the texts of its fields.
    pub fn matches_texts<'t>(&self, texts: &dyn Fn(&str) -> &'t [String]) -> bool {
        self.all.iter().all(|alts| {
            alts.iter().any(|c| {
                c.0.iter().all(|t| {
                    let have = texts(&t.field.name);
                    if t.values.is_empty() {
                        !have.is_empty()
                    } else {
                        have.iter().any(|h| t.values.contains(h))
                    }
                })
            })
        })
    }

    /// The route's field tests: field name, and the values it accepts
    /// (empty: any value).
    pub fn tests(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.all.iter().flatten().flat_map(|c| {
            c.0.iter()
                .map(|t| (t.field.name.as_str(), t.values.as_slice()))
        })
    }

    /// The fields the route reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.all
            .iter()
            .flatten()
            .flat_map(|c| c.0.iter().map(|t| t.field.name.as_str()))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.all.is_empty() {
            return f.write_str("any event");
        }
        for (i, alts) in self.all.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            if alts.is_empty() {
                f.write_str("no event")?;
                continue;
            }
            let paren = self.all.len() > 1 && alts.len() > 1;
            if paren {
                f.write_str("(")?;
            }
            for (j, c) in alts.iter().enumerate() {
                if j > 0 {
                    f.write_str(" or ")?;
                }
                let inner = alts.len() > 1 && c.0.len() > 1;
                if inner {
                    f.write_str("(")?;
                }
                for (k, t) in c.0.iter().enumerate() {
                    if k > 0 {
                        f.write_str(" and ")?;
                    }
                    match t.values.as_slice() {
                        [] => write!(f, "{} exists", t.field.name)?,
                        [one] => write!(f, "{}: {one}", t.field.name)?,
                        many => write!(f, "{} in [{}]", t.field.name, many.join(", "))?,
                    }
                }
                if c.0.is_empty() {
                    f.write_str("any event")?;
                }
                if inner {
                    f.write_str(")")?;
                }
            }
            if paren {
                f.write_str(")")?;
            }
        }
        Ok(())
    }
}

/// A `logsources` entry.
#[derive(Debug, Clone)]
struct SourceEntry {
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
    alternatives: Vec<Conj>,
}

impl SourceEntry {
    fn parse(v: &Y) -> Result<SourceEntry, P> {
        let Y::Mapping(m) = v else {
            return Err(P::new("must be a map", None));
        };
        check_keys(
            m,
            &[
                "category",
                "product",
                "service",
                "conditions",
                "description",
            ],
        )?;
        let conditions = m
            .get("conditions")
            .ok_or_else(|| P::new("`conditions` is missing", None))?;
        let alternatives = match conditions {
            Y::Mapping(c) => vec![conj(c)?],
            Y::Sequence(list) => list
                .iter()
                .map(|c| match c {
                    Y::Mapping(c) => conj(c),
                    _ => Err(P::new(
                        "`conditions` must be a map of field tests or a list of such maps",
                        Some("conditions"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(P::new(
                    "`conditions` must be a map of field tests or a list of such maps",
                    Some("conditions"),
                ));
            }
        };
        Ok(SourceEntry {
            category: opt_string(m, "category")?,
            product: opt_string(m, "product")?,
            service: opt_string(m, "service")?,
            alternatives,
        })
    }

    fn applies(&self, ls: &LogSource) -> bool {
        logsource_matches(
            &self.category,
            &self.product,
            &self.service,
            &ls.category,
            &ls.product,
            &ls.service,
        )
    }
}

fn conj(m: &Mapping) -> Result<Conj, P> {
    let mut tests = Vec::new();
    for (k, v) in m {
        let field = match k {
            Y::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(P::new(
                    format!("`{}`: field names must be non-empty strings", text_of(k)),
                    Some("conditions"),
                ));
            }
        };
        let items: Vec<&Y> = match v {
            Y::Sequence(list) => list.iter().collect(),
            other => vec![other],
        };
        if items.is_empty() {
            return Err(P::new(
                format!("`{field}`: an empty list of values matches nothing"),
                Some(&field),
            ));
        }
        let mut values = Vec::new();
        let mut any = false;
        for i in items {
            match scalar_text(i) {
                Some(t) if t == "*" => any = true,
                Some(t) => values.push(t),
                None => {
                    return Err(P::new(
                        format!("`{field}`: values must be strings, numbers or booleans"),
                        Some(&field),
                    ));
                }
            }
        }
        if any {
            values.clear();
        }
        tests.push(Test {
            field: FieldRef::new(&field),
            values,
        });
    }
    Ok(Conj(tests))
}

// --------------------------------------------------------- transformations

#[derive(Debug, Clone)]
struct Transformation {
    id: Option<String>,
    kind: Kind,
    rule_conds: Vec<RuleCond>,
    rule_any: bool,
    rule_not: bool,
    field_conds: Vec<FieldCond>,
    field_any: bool,
    field_not: bool,
    item_conds: Vec<ItemCond>,
    item_any: bool,
    item_not: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Sigma name, ECS names (several: OR).
    Mapping(Vec<(String, Vec<String>)>),
    Prefix(String),
    Replace {
        regex: Regex,
        replacement: String,
    },
    AddCondition {
        conditions: Mapping,
        negated: bool,
    },
    Drop,
    Modifiers {
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Key, new value (`None` removes the key).
    ChangeLogsource(Vec<(&'static str, Option<String>)>),
}

#[derive(Debug, Clone)]
struct RuleCond {
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
}

#[derive(Debug, Clone)]
struct FieldCond {
    include: bool,
    fields: Vec<String>,
    regexes: Vec<Regex>,
}

#[derive(Debug, Clone)]
enum ItemCond {
    MatchString {
        regex: Regex,
        all: bool,
        negate: bool,
    },
    HasModifiers {
        mods: Vec<String>,
        negate: bool,
    },
}

/// A parse problem and the key to find its line by.
#[derive(Debug)]
struct P {
    message: String,
    key: Option<String>,
}

impl P {
    fn new(message: impl Into<String>, key: Option<&str>) -> P {
        P {
            message: message.into(),
            key: key.map(str::to_string),
        }
    }
}

const COMMON_KEYS: &[&str] = &[
    "id",
    "type",
    "rule_conditions",
    "rule_cond_linking",
    "rule_cond_not",
    "field_name_conditions",
    "field_name_cond_linking",
    "field_name_cond_not",
    "detection_item_conditions",
    "detection_item_cond_linking",
    "detection_item_cond_not",
];

impl Transformation {
    fn parse(v: &Y) -> Result<Transformation, P> {
        let Y::Mapping(m) = v else {
            return Err(P::new("must be a map", None));
        };
        let ty = match m.get("type") {
            Some(Y::String(s)) => s.as_str(),
            Some(_) => return Err(P::new("`type` must be a string", Some("type"))),
            None => return Err(P::new("`type` is missing", None)),
        };
        let specific: &[&str] = match ty {
            "field_name_mapping" => &["mapping"],
            "field_name_prefix" => &["prefix"],
            "replace_string" => &["regex", "replacement"],
            "add_condition" => &["conditions", "negated"],
            "drop_detection_item" => &[],
            "change_modifiers" => &["add", "remove"],
            "change_logsource" => &["category", "product", "service"],
            other => {
                return Err(P::new(
                    format!(
                        "unknown transformation type `{other}` (expected field_name_mapping, field_name_prefix, replace_string, add_condition, drop_detection_item, change_modifiers, change_logsource)"
                    ),
                    Some("type"),
                ));
            }
        };
        let allowed: Vec<&str> = COMMON_KEYS.iter().chain(specific).copied().collect();
        check_keys(m, &allowed)?;
        let id = opt_string(m, "id")?;
        let kind = match ty {
            "field_name_mapping" => {
                let Some(Y::Mapping(map)) = m.get("mapping") else {
                    return Err(P::new(
                        "`mapping` must be a map of Sigma field names to ECS field names",
                        Some("mapping"),
                    ));
                };
                let mut out = Vec::new();
                for (k, v) in map {
                    let from = match scalar_text(k) {
                        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
                        _ => {
                            return Err(P::new(
                                "`mapping` keys must be field names",
                                Some("mapping"),
                            ));
                        }
                    };
                    let to = field_list(v).ok_or_else(|| {
                        P::new(
                            format!("`{from}` must map to a field name or a non-empty list of field names"),
                            Some(&from),
                        )
                    })?;
                    out.push((from, to));
                }
                if out.is_empty() {
                    return Err(P::new("`mapping` is empty", Some("mapping")));
                }
                Kind::Mapping(out)
            }
            "field_name_prefix" => match m.get("prefix") {
                Some(Y::String(s)) if !s.is_empty() => Kind::Prefix(s.clone()),
                _ => {
                    return Err(P::new(
                        "`prefix` must be a non-empty string",
                        Some("prefix"),
                    ));
                }
            },
            "replace_string" => {
                let Some(Y::String(re)) = m.get("regex") else {
                    return Err(P::new("`regex` must be a string", Some("regex")));
                };
                let regex = compile_regex(re).map_err(|e| P::new(e, Some("regex")))?;
                let replacement = match m.get("replacement") {
                    Some(Y::String(s)) => s.clone(),
                    Some(Y::Null) | None => {
                        return Err(P::new(
                            "`replacement` is missing (use '' to delete matches)",
                            None,
                        ));
                    }
                    Some(other) => scalar_text(other).ok_or_else(|| {
                        P::new("`replacement` must be a string", Some("replacement"))
                    })?,
                };
                Kind::Replace { regex, replacement }
            }
            "add_condition" => {
                let Some(Y::Mapping(c)) = m.get("conditions") else {
                    return Err(P::new(
                        "`conditions` must be a map of detection items",
                        Some("conditions"),
                    ));
                };
                if c.is_empty() {
                    return Err(P::new("`conditions` is empty", Some("conditions")));
                }
                // Compiled once here for the errors; compiled again in each rule.
                let mut det = Mapping::new();
                det.insert(Y::from("_pipeline_cond"), Y::Mapping(c.clone()));
                det.insert(Y::from("condition"), Y::from("_pipeline_cond"));
                crate::rule::compile_detection(&Y::Mapping(det), &Default::default()).map_err(
                    |p| {
                        P::new(
                            format!(
                                "`conditions`: {}",
                                p.message.trim_start_matches("`_pipeline_cond`: ")
                            ),
                            Some("conditions"),
                        )
                    },
                )?;
                Kind::AddCondition {
                    conditions: c.clone(),
                    negated: opt_bool(m, "negated")?.unwrap_or(false),
                }
            }
            "drop_detection_item" => Kind::Drop,
            "change_modifiers" => {
                let list = |key: &str| -> Result<Vec<String>, P> {
                    match m.get(key) {
                        None | Some(Y::Null) => Ok(Vec::new()),
                        Some(v) => field_list(v).ok_or_else(|| {
                            P::new(
                                format!("`{key}` must be a list of modifier names"),
                                Some(key),
                            )
                        }),
                    }
                };
                let (add, remove) = (list("add")?, list("remove")?);
                if add.is_empty() && remove.is_empty() {
                    return Err(P::new("change_modifiers needs `add` or `remove`", None));
                }
                if let Some(bad) = add.iter().chain(&remove).find(|m| m.contains('|')) {
                    return Err(P::new(
                        format!("`{bad}`: name modifiers one by one, without `|`"),
                        Some(if add.contains(bad) { "add" } else { "remove" }),
                    ));
                }
                Kind::Modifiers { add, remove }
            }
            _ => {
                let mut changes = Vec::new();
                for key in ["category", "product", "service"] {
                    match m.get(key) {
                        None => {}
                        Some(Y::Null) => changes.push((key, None)),
                        Some(v) => match scalar_text(v) {
                            Some(s) => changes.push((key, Some(s))),
                            None => {
                                return Err(P::new(
                                    format!("`{key}` must be a string or null"),
                                    Some(key),
                                ));
                            }
                        },
                    }
                }
                if changes.is_empty() {
                    return Err(P::new(
                        "change_logsource needs at least one of category, product, service",
                        None,
                    ));
                }
                Kind::ChangeLogsource(changes)
            }
        };
        let rule_conds = cond_list(m, "rule_conditions")?
            .iter()
            .map(parse_rule_cond)
            .collect::<Result<Vec<_>, _>>()?;
        let field_conds = cond_list(m, "field_name_conditions")?
            .iter()
            .map(parse_field_cond)
            .collect::<Result<Vec<_>, _>>()?;
        let item_conds = cond_list(m, "detection_item_conditions")?
            .iter()
            .map(parse_item_cond)
            .collect::<Result<Vec<_>, _>>()?;
        if matches!(kind, Kind::Drop) && field_conds.is_empty() && item_conds.is_empty() {
            return Err(P::new(
                "drop_detection_item without field_name_conditions or detection_item_conditions would drop every detection item",
                Some("type"),
            ));
        }
        if matches!(kind, Kind::AddCondition { .. } | Kind::ChangeLogsource(_))
            && (!field_conds.is_empty() || !item_conds.is_empty())
        {
            return Err(P::new(
                format!(
                    "{ty} works on the rule, not on detection items: only rule_conditions apply to it"
                ),
                Some(if field_conds.is_empty() {
                    "detection_item_conditions"
                } else {
                    "field_name_conditions"
                }),
            ));
        }
        Ok(Transformation {
            id,
            kind,
            rule_conds,
            rule_any: linking(m, "rule_cond_linking")?,
            rule_not: opt_bool(m, "rule_cond_not")?.unwrap_or(false),
            field_conds,
            field_any: linking(m, "field_name_cond_linking")?,
            field_not: opt_bool(m, "field_name_cond_not")?.unwrap_or(false),
            item_conds,
            item_any: linking(m, "detection_item_cond_linking")?,
            item_not: opt_bool(m, "detection_item_cond_not")?.unwrap_or(false),
        })
    }

    fn rule_applies(&self, ls: &LogSource) -> bool {
        if self.rule_conds.is_empty() {
            return true;
        }
        let test = |c: &RuleCond| {
            logsource_matches(
                &c.category,
                &c.product,
                &c.service,
                &ls.category,
                &ls.product,
                &ls.service,
            )
        };
        let r = if self.rule_any {
            self.rule_conds.iter().any(test)
        } else {
            self.rule_conds.iter().all(test)
        };
        r != self.rule_not
    }

    /// Whether the field name conditions select `field` (`None`: keywords).
    fn field_applies(&self, field: Option<&str>) -> bool {
        if self.field_conds.is_empty() {
            return true;
        }
        let Some(field) = field else {
            return false;
        };
        let test = |c: &FieldCond| {
            let listed =
                c.fields.iter().any(|f| f == field) || c.regexes.iter().any(|r| r.is_match(field));
            listed == c.include
        };
        let r = if self.field_any {
            self.field_conds.iter().any(test)
        } else {
            self.field_conds.iter().all(test)
        };
        r != self.field_not
    }

    fn item_applies(&self, mods: &[&str], value: &Y) -> bool {
        if self.item_conds.is_empty() {
            return true;
        }
        let test = |c: &ItemCond| match c {
            ItemCond::MatchString { regex, all, negate } => {
                let strings = strings_of(value);
                let r = if *all {
                    !strings.is_empty() && strings.iter().all(|s| regex.is_match(s))
                } else {
                    strings.iter().any(|s| regex.is_match(s))
                };
                r != *negate
            }
            ItemCond::HasModifiers { mods: want, negate } => {
                want.iter().all(|w| mods.contains(&w.as_str())) != *negate
            }
        };
        let r = if self.item_any {
            self.item_conds.iter().any(test)
        } else {
            self.item_conds.iter().all(test)
        };
        r != self.item_not
    }

    fn apply(&self, doc: &mut Y) -> Result<(), String> {
        match &self.kind {
            Kind::ChangeLogsource(changes) => {
                let Y::Mapping(top) = doc else { return Ok(()) };
                let ls = top
                    .entry(Y::from("logsource"))
                    .or_insert_with(|| Y::Mapping(Mapping::new()));
                if let Y::Mapping(ls) = ls {
                    for (k, v) in changes {
                        match v {
                            Some(v) => {
                                ls.insert(Y::from(*k), Y::from(v.as_str()));
                            }
                            None => {
                                ls.shift_remove(*k);
                            }
                        }
                    }
                }
                Ok(())
            }
            Kind::AddCondition {
                conditions,
                negated,
            } => {
                let Some(det) = detection_section(doc) else {
                    return Ok(());
                };
                let mut n = 1;
                let name = loop {
                    let name = format!("_pipeline_cond_{n}");
                    if !det.contains_key(name.as_str()) {
                        break name;
                    }
                    n += 1;
                };
                let wrap = |c: &str| {
                    if *negated {
                        format!("not {name} and ({c})")
                    } else {
                        format!("{name} and ({c})")
                    }
                };
                match det.get_mut("condition") {
                    Some(Y::String(c)) => *c = wrap(c),
                    Some(Y::Sequence(list)) => {
                        for c in list.iter_mut() {
                            if let Y::String(s) = c {
                                *s = wrap(s);
                            }
                        }
                    }
                    // No usable condition: the rule is refused when compiled.
                    _ => return Ok(()),
                }
                det.insert(Y::from(name), Y::Mapping(conditions.clone()));
                Ok(())
            }
            _ => {
                let filter = doc.get("detection").is_none();
                if let Some(det) = detection_section(doc) {
                    for (k, v) in det.iter_mut() {
                        match k.as_str() {
                            Some("condition" | "timeframe") => continue,
                            // A filter's list of rule ids.
                            Some("rules") if filter => continue,
                            _ => *v = self.search(v, 0)?,
                        }
                    }
                }
                if matches!(self.kind, Kind::Mapping(_) | Kind::Prefix(_))
                    && let Some(Y::Sequence(fields)) = doc.get_mut("fields")
                {
                    let mut out = Vec::with_capacity(fields.len());
                    for f in fields.drain(..) {
                        match f.as_str().and_then(|s| self.rename(s)) {
                            Some(names) => out.extend(names.into_iter().map(Y::from)),
                            None => out.push(f),
                        }
                    }
                    *fields = out;
                }
                Ok(())
            }
        }
    }

    /// The new names of a field, if this transformation renames it.
    fn rename(&self, field: &str) -> Option<Vec<String>> {
        if !self.field_applies(Some(field)) {
            return None;
        }
        match &self.kind {
            Kind::Mapping(map) => map
                .iter()
                .find(|(from, _)| from == field)
                .map(|(_, to)| to.clone()),
            Kind::Prefix(p) => Some(vec![format!("{p}{field}")]),
            _ => None,
        }
    }

    fn search(&self, v: &Y, depth: usize) -> Result<Y, String> {
        if depth > MAX_DEPTH {
            return Err("lists of maps nest too deeply".into());
        }
        match v {
            Y::Mapping(m) => {
                let mut alts = self.map(m)?;
                Ok(if alts.len() == 1 {
                    Y::Mapping(alts.remove(0))
                } else {
                    Y::Sequence(alts.into_iter().map(Y::Mapping).collect())
                })
            }
            Y::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    match i {
                        Y::Mapping(_) => match self.search(i, depth + 1)? {
                            Y::Sequence(alts) => out.extend(alts),
                            other => out.push(other),
                        },
                        Y::Sequence(_) => out.push(self.search(i, depth + 1)?),
                        scalar => out.push(self.keyword(scalar)),
                    }
                }
                Ok(Y::Sequence(out))
            }
            scalar => Ok(self.keyword(scalar)),
        }
    }

    /// A keyword value (no field).
    fn keyword(&self, v: &Y) -> Y {
        match &self.kind {
            Kind::Replace { .. } if self.field_applies(None) && self.item_applies(&[], v) => {
                self.replace(v)
            }
            _ => v.clone(),
        }
    }

    fn replace(&self, v: &Y) -> Y {
        let Kind::Replace { regex, replacement } = &self.kind else {
            return v.clone();
        };
        match v {
            Y::String(s) => Y::String(regex.replace_all(s, replacement.as_str()).into_owned()),
            Y::Sequence(items) => Y::Sequence(items.iter().map(|i| self.replace(i)).collect()),
            other => other.clone(),
        }
    }

    /// The alternatives (OR) a map (AND) turns into.
    fn map(&self, m: &Mapping) -> Result<Vec<Mapping>, String> {
        let mut alts = vec![Mapping::with_capacity(m.len())];
        for (k, v) in m {
            let Some(key) = scalar_text(k) else {
                // Not a field name: the compiler reports it.
                for a in &mut alts {
                    a.insert(k.clone(), v.clone());
                }
                continue;
            };
            let choices = self.item(&key, k, v)?;
            if choices.len() > 1 && alts.len() * choices.len() > MAX_ALTERNATIVES {
                return Err(format!(
                    "mapping `{key}` to several fields makes more than {MAX_ALTERNATIVES} alternatives"
                ));
            }
            if choices.is_empty() {
                continue;
            }
            let mut next = Vec::with_capacity(alts.len() * choices.len());
            for a in &alts {
                for (ck, cv) in &choices {
                    let mut a = a.clone();
                    if a.contains_key(ck) {
                        return Err(format!(
                            "`{key}` becomes `{}`, a key its map already has; Sigma cannot AND two items of one field and modifiers in one map",
                            text_of(ck)
                        ));
                    }
                    a.insert(ck.clone(), cv.clone());
                    next.push(a);
                }
            }
            alts = next;
        }
        Ok(alts)
    }

    /// What one `field|mods: value` item becomes: one or more (OR) items,
    /// or none (dropped).
    fn item(&self, key: &str, k: &Y, v: &Y) -> Result<Vec<(Y, Y)>, String> {
        let (field, rest) = match key.find('|') {
            Some(i) => (key[..i].trim(), &key[i..]),
            None => (key.trim(), ""),
        };
        let mods: Vec<&str> = rest.split('|').filter(|m| !m.is_empty()).collect();
        if field.is_empty() {
            // Keywords with modifiers (`'|all': [...]`).
            return Ok(vec![(k.clone(), self.keyword(v))]);
        }
        let selected = self.field_applies(Some(field)) && self.item_applies(&mods, v);
        match &self.kind {
            Kind::Mapping(_) | Kind::Prefix(_) => {
                // `fieldref` values name fields too.
                let value = if mods.contains(&"fieldref") {
                    self.rename_refs(v, mods.contains(&"all"))?
                } else {
                    v.clone()
                };
                let names = if self.item_applies(&mods, v) {
                    self.rename(field)
                } else {
                    None
                };
                Ok(match names {
                    Some(names) => names
                        .into_iter()
                        .map(|n| (Y::String(format!("{n}{rest}")), value.clone()))
                        .collect(),
                    None => vec![(k.clone(), value)],
                })
            }
            Kind::Replace { .. } => {
                let skip = mods
                    .iter()
                    .any(|m| matches!(*m, "re" | "cidr" | "exists" | "expand" | "fieldref"));
                Ok(vec![(
                    k.clone(),
                    if selected && !skip {
                        self.replace(v)
                    } else {
                        v.clone()
                    },
                )])
            }
            Kind::Drop if selected => Ok(Vec::new()),
            Kind::Modifiers { add, remove } if selected => {
                let mut new: Vec<&str> = mods
                    .iter()
                    .copied()
                    .filter(|m| !remove.iter().any(|r| r == m))
                    .collect();
                for a in add {
                    if !new.contains(&a.as_str()) {
                        new.push(a);
                    }
                }
                let key = std::iter::once(field)
                    .chain(new)
                    .collect::<Vec<_>>()
                    .join("|");
                Ok(vec![(Y::String(key), v.clone())])
            }
            _ => Ok(vec![(k.clone(), v.clone())]),
        }
    }

    /// Renames the field names given as `fieldref` values.
    fn rename_refs(&self, v: &Y, all: bool) -> Result<Y, String> {
        let one = |s: &str| -> Result<Vec<Y>, String> {
            match self.rename(s.trim()) {
                Some(names) if names.len() > 1 && all => Err(format!(
                    "the field reference `{s}` maps to several fields, which `fieldref|all` cannot express"
                )),
                Some(names) => Ok(names.into_iter().map(Y::from).collect()),
                None => Ok(vec![Y::from(s)]),
            }
        };
        match v {
            Y::String(s) => {
                let mut names = one(s)?;
                Ok(if names.len() == 1 {
                    names.remove(0)
                } else {
                    Y::Sequence(names)
                })
            }
            Y::Sequence(items) => {
                let mut out = Vec::new();
                for i in items {
                    match i {
                        Y::String(s) => out.extend(one(s)?),
                        other => out.push(other.clone()),
                    }
                }
                Ok(Y::Sequence(out))
            }
            other => Ok(other.clone()),
        }
    }
}

fn parse_rule_cond(c: &Y) -> Result<RuleCond, P> {
    let Y::Mapping(m) = c else {
        return Err(P::new(
            "rule_conditions items must be maps",
            Some("rule_conditions"),
        ));
    };
    match m.get("type").and_then(Y::as_str) {
        Some("logsource") => {}
        Some(other) => {
            return Err(P::new(
                format!("unknown rule condition type `{other}` (expected logsource)"),
                Some("rule_conditions"),
            ));
        }
        None => {
            return Err(P::new(
                "a rule condition needs `type: logsource`",
                Some("rule_conditions"),
            ));
        }
    }
    check_keys(m, &["type", "category", "product", "service"])?;
    let c = RuleCond {
        category: opt_string(m, "category")?,
        product: opt_string(m, "product")?,
        service: opt_string(m, "service")?,
    };
    if c.category.is_none() && c.product.is_none() && c.service.is_none() {
        return Err(P::new(
            "a logsource condition needs category, product or service",
            Some("rule_conditions"),
        ));
    }
    Ok(c)
}

fn parse_field_cond(c: &Y) -> Result<FieldCond, P> {
    let Y::Mapping(m) = c else {
        return Err(P::new(
            "field_name_conditions items must be maps",
            Some("field_name_conditions"),
        ));
    };
    let include = match m.get("type").and_then(Y::as_str) {
        Some("include_fields") => true,
        Some("exclude_fields") => false,
        other => {
            return Err(P::new(
                format!(
                    "field name condition type must be include_fields or exclude_fields, not {}",
                    other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                ),
                Some("field_name_conditions"),
            ));
        }
    };
    check_keys(m, &["type", "fields", "match"])?;
    let fields = m
        .get("fields")
        .and_then(field_list)
        .ok_or_else(|| P::new("`fields` must be a non-empty list of names", Some("fields")))?;
    let regex = match m.get("match").and_then(Y::as_str) {
        None | Some("plain") => false,
        Some("regex") => true,
        Some(other) => {
            return Err(P::new(
                format!("`match: {other}` must be plain or regex"),
                Some("match"),
            ));
        }
    };
    let (fields, regexes) = if regex {
        let regexes = fields
            .iter()
            .map(|f| compile_regex(&format!("^(?:{f})$")).map_err(|e| P::new(e, Some("fields"))))
            .collect::<Result<Vec<_>, _>>()?;
        (Vec::new(), regexes)
    } else {
        (fields, Vec::new())
    };
    Ok(FieldCond {
        include,
        fields,
        regexes,
    })
}

fn parse_item_cond(c: &Y) -> Result<ItemCond, P> {
    let Y::Mapping(m) = c else {
        return Err(P::new(
            "detection_item_conditions items must be maps",
            Some("detection_item_conditions"),
        ));
    };
    match m.get("type").and_then(Y::as_str) {
        Some("match_string") => {
            check_keys(m, &["type", "pattern", "cond", "negate"])?;
            let Some(Y::String(p)) = m.get("pattern") else {
                return Err(P::new("`pattern` must be a string", Some("pattern")));
            };
            let regex = compile_regex(p).map_err(|e| P::new(e, Some("pattern")))?;
            let all = match m.get("cond").and_then(Y::as_str) {
                None | Some("any") => false,
                Some("all") => true,
                Some(other) => {
                    return Err(P::new(
                        format!("`cond: {other}` must be any or all"),
                        Some("cond"),
                    ));
                }
            };
            Ok(ItemCond::MatchString {
                regex,
                all,
                negate: opt_bool(m, "negate")?.unwrap_or(false),
            })
        }
        Some("has_modifiers") => {
            check_keys(m, &["type", "modifiers", "negate"])?;
            let mods = m.get("modifiers").and_then(field_list).ok_or_else(|| {
                P::new(
                    "`modifiers` must be a non-empty list of modifier names",
                    Some("modifiers"),
                )
            })?;
            Ok(ItemCond::HasModifiers {
                mods,
                negate: opt_bool(m, "negate")?.unwrap_or(false),
            })
        }
        other => Err(P::new(
            format!(
                "detection item condition type must be match_string or has_modifiers, not {}",
                other.map_or("nothing".to_string(), |o| format!("`{o}`"))
            ),
            Some("detection_item_conditions"),
        )),
    }
}

// ----------------------------------------------------------------- helpers

fn logsource_matches(
    c: &Option<String>,
    p: &Option<String>,
    s: &Option<String>,
    rc: &Option<String>,
    rp: &Option<String>,
    rs: &Option<String>,
) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| match (want, have) {
        (None, _) => true,
        (Some(w), Some(h)) => w.eq_ignore_ascii_case(h),
        (Some(_), None) => false,
    };
    eq(c, rc) && eq(p, rp) && eq(s, rs)
}

/// The search identifiers of a rule (`detection`) or of a meta filter
/// (`filter`, beside its `rules`).
fn detection_section(doc: &mut Y) -> Option<&mut Mapping> {
    let key = if doc.get("detection").is_some() {
        "detection"
    } else {
        "filter"
    };
    match doc.get_mut(key) {
        Some(Y::Mapping(m)) => Some(m),
        _ => None,
    }
}

/// The logsource of a rule document as it stands (empty when it has none).
fn doc_logsource(doc: &Y) -> LogSource {
    let get = |k: &str| {
        doc.get("logsource")
            .and_then(|l| l.get(k))
            .and_then(scalar_text)
    };
    LogSource {
        category: get("category"),
        product: get("product"),
        service: get("service"),
        definition: None,
    }
}

fn scalar_text(v: &Y) -> Option<String> {
    match v {
        Y::String(s) => Some(s.clone()),
        Y::Number(n) => Some(n.to_string()),
        Y::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_of(v: &Y) -> String {
    scalar_text(v).unwrap_or_else(|| "?".into())
}

/// The string values of an item (one value or a list).
fn strings_of(v: &Y) -> Vec<&str> {
    match v {
        Y::String(s) => vec![s.as_str()],
        Y::Sequence(items) => items.iter().filter_map(Y::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A name or a non-empty list of non-empty names.
fn field_list(v: &Y) -> Option<Vec<String>> {
    let names: Vec<String> = match v {
        Y::Sequence(items) => items
            .iter()
            .map(|i| scalar_text(i).map(|s| s.trim().to_string()))
            .collect::<Option<_>>()?,
        other => vec![scalar_text(other)?.trim().to_string()],
    };
    (!names.is_empty() && names.iter().all(|n| !n.is_empty())).then_some(names)
}

fn check_keys(m: &Mapping, allowed: &[&str]) -> Result<(), P> {
    for k in m.keys() {
        let key = k.as_str().unwrap_or("");
        if !allowed.contains(&key) {
            return Err(P::new(
                format!(
                    "unknown key `{}` (expected one of {})",
                    text_of(k),
                    allowed.join(", ")
                ),
                Some(key),
            ));
        }
    }
    Ok(())
}

fn opt_string(m: &Mapping, key: &str) -> Result<Option<String>, P> {
    match m.get(key) {
        None | Some(Y::Null) => Ok(None),
        Some(v) => scalar_text(v)
            .map(Some)
            .ok_or_else(|| P::new(format!("`{key}` must be a string"), Some(key))),
    }
}

fn opt_bool(m: &Mapping, key: &str) -> Result<Option<bool>, P> {
    match m.get(key) {
        None | Some(Y::Null) => Ok(None),
        Some(Y::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(P::new(format!("`{key}` must be true or false"), Some(key))),
    }
}

/// `any` (true) or `all` (false, the default).
fn linking(m: &Mapping, key: &str) -> Result<bool, P> {
    match m.get(key) {
        None | Some(Y::Null) => Ok(false),
        Some(Y::String(s)) if s == "all" => Ok(false),
        Some(Y::String(s)) if s == "any" => Ok(true),
        Some(_) => Err(P::new(format!("`{key}` must be all or any"), Some(key))),
    }
}

fn cond_list<'m>(m: &'m Mapping, key: &str) -> Result<&'m [Y], P> {
    match m.get(key) {
        None | Some(Y::Null) => Ok(&[]),
        Some(Y::Sequence(items)) => Ok(items),
        Some(_) => Err(P::new(format!("`{key}` must be a list"), Some(key))),
    }
}

fn compile_regex(p: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex `{p}`: {e}"))
}

/// Finds the lines of keys and list items in a pipeline's text (the parsed
/// YAML keeps no positions).
struct Locator<'t> {
    lines: Vec<&'t str>,
}

impl<'t> Locator<'t> {
    fn new(text: &'t str) -> Locator<'t> {
        Locator {
            lines: text.lines().collect(),
        }
    }

    fn is_key(line: &str, key: &str) -> bool {
        let t = line.trim_start().trim_start_matches("- ");
        let t = t.trim_start();
        for k in [key.to_string(), format!("'{key}'"), format!("\"{key}\"")] {
            if let Some(rest) = t.strip_prefix(k.as_str())
                && rest.trim_start().starts_with(':')
            {
                return true;
            }
        }
        false
    }

    /// 1-based line of a top-level key.
    fn top_key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| !l.starts_with([' ', '-']) && Self::is_key(l, key))
            .map(|i| i + 1)
    }

    /// 1-based first lines of the items of a top-level block list.
    fn items(&self, key: &str) -> Vec<usize> {
        let Some(start) = self.top_key(key) else {
            return Vec::new();
        };
        let mut items = Vec::new();
        let mut indent: Option<usize> = None;
        for (i, l) in self.lines.iter().enumerate().skip(start) {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let ind = l.len() - t.len();
            match indent {
                None if t.starts_with('-') => {
                    indent = Some(ind);
                    items.push(i + 1);
                }
                None => break,
                Some(n) => {
                    if ind < n || (ind == n && !t.starts_with('-')) {
                        break;
                    }
                    if ind == n {
                        items.push(i + 1);
                    }
                }
            }
        }
        items
    }

    /// The lines (first, end exclusive) of item `i` of a list.
    fn item_range(&self, items: &[usize], i: usize, key: &str) -> (usize, usize) {
        match items.get(i) {
            Some(&s) => (s, items.get(i + 1).copied().unwrap_or(self.lines.len() + 1)),
            None => {
                let s = self.top_key(key).unwrap_or(1);
                (s, s + 1)
            }
        }
    }

    /// 1-based line of `key` between two lines.
    fn key_in(&self, key: &str, start: usize, end: usize) -> Option<usize> {
        (start..end.min(self.lines.len() + 1))
            .find(|&n| Self::is_key(self.lines[n - 1], key))
            .or_else(|| {
                (start..end.min(self.lines.len() + 1)).find(|&n| self.lines[n - 1].contains(key))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pipeline {
        Pipeline::from_yaml(text, Path::new("test.yml")).unwrap()
    }

    fn perr(text: &str) -> PipelineError {
        Pipeline::from_yaml(text, Path::new("test.yml")).unwrap_err()
    }

    fn doc(text: &str) -> Y {
        serde_norway::from_str(text).unwrap()
    }

    fn applied(pipe: &str, rule: &str) -> Y {
        let mut d = doc(rule);
        p(pipe).apply(&mut d).unwrap();
        d
    }

    fn det(d: &Y, key: &str) -> Y {
        d.get("detection").unwrap().get(key).unwrap().clone()
    }

    const RULE: &str = "
title: t
logsource: {category: webserver}
detection:
  sel:
    cs-method: GET
    cs-uri-query|contains: ['../', '%2e%2e']
  keywords: ['cs-method', 'x']
  condition: sel and keywords
fields: [cs-method, c-ip]
";

    #[test]
    fn mapping_renames_keys_keeps_modifiers_and_leaves_keywords() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_mapping
    mapping: {cs-method: http.request.method, cs-uri-query: url.original, c-ip: source.ip}
",
            RULE,
        );
        assert_eq!(
            det(&d, "sel"),
            doc("{http.request.method: GET, url.original|contains: ['../', '%2e%2e']}")
        );
        assert_eq!(det(&d, "keywords"), doc("['cs-method', 'x']"));
        assert_eq!(
            d.get("fields").unwrap(),
            &doc("[http.request.method, source.ip]")
        );
    }

    #[test]
    fn several_fields_become_alternatives_anded_with_the_rest() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_mapping
    mapping: {cs-uri-query: [url.original, url.query], cs-method: [a, b]}
",
            RULE,
        );
        // (a or b) and (original or query): four maps, each with both items.
        let want = doc("
- {a: GET, url.original|contains: ['../', '%2e%2e']}
- {a: GET, url.query|contains: ['../', '%2e%2e']}
- {b: GET, url.original|contains: ['../', '%2e%2e']}
- {b: GET, url.query|contains: ['../', '%2e%2e']}
");
        assert_eq!(det(&d, "sel"), want);
    }

    #[test]
    fn alternatives_in_a_list_of_maps_are_spliced() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_mapping
    mapping: {F: [x, y]}
",
            "
title: t
logsource: {product: p}
detection:
  sel:
    - {F: 1, G: 2}
    - {G: 3}
    - kw
  condition: sel
",
        );
        assert_eq!(
            det(&d, "sel"),
            doc("[{x: 1, G: 2}, {y: 1, G: 2}, {G: 3}, kw]")
        );
    }

    #[test]
    fn fieldref_values_are_renamed() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_prefix
    prefix: 'aws.cloudtrail.'
",
            "
title: t
logsource: {product: aws}
detection:
  sel: {userIdentity.arn|fieldref|contains: requestParameters.userName}
  condition: sel
",
        );
        assert_eq!(
            det(&d, "sel"),
            doc(
                "{aws.cloudtrail.userIdentity.arn|fieldref|contains: aws.cloudtrail.requestParameters.userName}"
            )
        );
    }

    #[test]
    fn colliding_keys_are_an_error() {
        let mut d = doc("
title: t
logsource: {product: p}
detection:
  sel: {a|contains: x, b|contains: y}
  condition: sel
");
        let e = p("
name: m
transformations:
  - id: ab
    type: field_name_mapping
    mapping: {a: z, b: z}
")
        .apply(&mut d)
        .unwrap_err();
        assert!(
            e.contains("`ab`") && e.contains("`b|contains` becomes `z|contains`"),
            "{e}"
        );
    }

    #[test]
    fn cross_products_are_bounded() {
        let mut rule = String::from("title: t\nlogsource: {product: p}\ndetection:\n  sel:\n");
        for i in 0..13 {
            rule.push_str(&format!("    f{i}: v\n"));
        }
        rule.push_str("  condition: sel\n");
        let mut mapping = String::new();
        for i in 0..13 {
            mapping.push_str(&format!("      f{i}: [a{i}, b{i}]\n"));
        }
        let pipe = format!(
            "name: m\ntransformations:\n  - type: field_name_mapping\n    mapping:\n{mapping}"
        );
        let mut d = doc(&rule);
        let e = p(&pipe).apply(&mut d).unwrap_err();
        assert!(e.contains("alternatives"), "{e}");
    }

    #[test]
    fn replace_string_only_touches_selected_string_values() {
        let d = applied(
            r#"
name: m
transformations:
  - type: replace_string
    regex: '^HTTP/'
    replacement: ''
    field_name_conditions:
      - type: include_fields
        fields: [cs-version]
"#,
            "
title: t
logsource: {category: webserver}
detection:
  sel: {cs-version: ['HTTP/1.1', 'HTTP/2'], other: 'HTTP/1.0', cs-version|re: '^HTTP/'}
  kw: ['HTTP/1.1']
  condition: sel or kw
",
        );
        assert_eq!(
            det(&d, "sel"),
            doc("{cs-version: ['1.1', '2'], other: 'HTTP/1.0', cs-version|re: '^HTTP/'}")
        );
        // Field name conditions: keywords are not touched.
        assert_eq!(det(&d, "kw"), doc("['HTTP/1.1']"));
    }

    #[test]
    fn replace_string_with_item_conditions() {
        let d = applied(
            r#"
name: m
transformations:
  - type: replace_string
    regex: '^.*/'
    replacement: ''
    detection_item_conditions:
      - type: has_modifiers
        modifiers: [endswith]
"#,
            "
title: t
logsource: {product: linux}
detection:
  sel: {Image|endswith: ['/curl', '/usr/bin/wget'], Path|startswith: '/tmp/'}
  kw: ['/tmp/x']
  condition: sel or kw
",
        );
        assert_eq!(
            det(&d, "sel"),
            doc("{Image|endswith: ['curl', 'wget'], Path|startswith: '/tmp/'}")
        );
        // Without field conditions keywords are values too, and the item
        // condition (no modifiers) leaves this one out.
        assert_eq!(det(&d, "kw"), doc("['/tmp/x']"));
    }

    #[test]
    fn add_condition_ands_a_hidden_search() {
        let d = applied(
            "
name: m
transformations:
  - type: add_condition
    conditions: {event.dataset: http.access}
  - type: add_condition
    negated: true
    conditions: {url.path|startswith: /health}
",
            "
title: t
logsource: {category: webserver}
detection:
  sel: {a: 1}
  condition: [sel, 1 of them]
",
        );
        assert_eq!(
            det(&d, "condition"),
            doc(
                "['not _pipeline_cond_2 and (_pipeline_cond_1 and (sel))', 'not _pipeline_cond_2 and (_pipeline_cond_1 and (1 of them))']"
            )
        );
        assert_eq!(
            det(&d, "_pipeline_cond_1"),
            doc("{event.dataset: http.access}")
        );
        // And it compiles, `them` leaving the added searches out.
        let rule = crate::rule::rule_from_yaml(&d, &Default::default()).unwrap();
        assert_eq!(rule.detection.names.len(), 3);
    }

    #[test]
    fn drop_detection_item_removes_selected_items() {
        let d = applied(
            "
name: m
transformations:
  - type: drop_detection_item
    field_name_conditions:
      - type: include_fields
        fields: ['Logon.*']
        match: regex
",
            "
title: t
logsource: {product: linux}
detection:
  sel: {LogonId: 0, User: root}
  only: {LogonGuid: x}
  condition: sel and not only
",
        );
        assert_eq!(det(&d, "sel"), doc("{User: root}"));
        assert_eq!(det(&d, "only"), doc("{}"));
    }

    #[test]
    fn change_modifiers_on_selected_items() {
        let d = applied(
            "
name: m
transformations:
  - type: change_modifiers
    remove: [endswith]
    add: [cased]
    field_name_conditions: [{type: include_fields, fields: [name]}]
    detection_item_conditions: [{type: match_string, pattern: '/', cond: all}]
",
            "
title: t
logsource: {product: p}
detection:
  sel: {name|endswith: '/nc', path|endswith: '/nc'}
  other: {name|endswith: 'nc'}
  condition: sel or other
",
        );
        assert_eq!(
            det(&d, "sel"),
            doc("{name|cased: '/nc', path|endswith: '/nc'}")
        );
        assert_eq!(det(&d, "other"), doc("{name|endswith: 'nc'}"));
    }

    #[test]
    fn filter_documents_are_rewritten_but_not_their_rule_list() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_mapping
    mapping: {cs-method: http.request.method}
  - type: replace_string
    regex: '^a-rule'
    replacement: 'changed'
",
            "
title: f
logsource: {category: webserver}
filter:
  rules: [a-rule-id]
  benign: {cs-method: HEAD}
  kw: [a-rule-id]
  condition: not benign and not kw
",
        );
        assert_eq!(
            d.get("filter").unwrap().get("kw").unwrap(),
            &doc("[changed-id]")
        );
        let f = d.get("filter").unwrap();
        assert_eq!(
            f.get("benign").unwrap(),
            &doc("{http.request.method: HEAD}")
        );
        assert_eq!(f.get("rules").unwrap(), &doc("[a-rule-id]"));
    }

    #[test]
    fn change_logsource_and_rule_conditions_see_it() {
        let d = applied(
            "
name: m
transformations:
  - type: change_logsource
    category: webserver
    product: null
    rule_conditions: [{type: logsource, product: apache}]
  - type: field_name_mapping
    mapping: {cs-method: http.request.method}
    rule_conditions: [{type: logsource, category: webserver}]
  - type: field_name_mapping
    mapping: {http.request.method: never}
    rule_conditions: [{type: logsource, product: apache}]
",
            "
title: t
logsource: {product: apache, service: access}
detection:
  sel: {cs-method: GET}
  condition: sel
",
        );
        assert_eq!(
            d.get("logsource").unwrap(),
            &doc("{service: access, category: webserver}")
        );
        assert_eq!(det(&d, "sel"), doc("{http.request.method: GET}"));
    }

    #[test]
    fn rule_condition_linking_and_negation() {
        let pipe = "
name: m
transformations:
  - type: field_name_prefix
    prefix: 'x.'
    rule_conditions:
      - {type: logsource, product: aws}
      - {type: logsource, product: gcp}
    rule_cond_linking: any
    rule_cond_not: true
";
        let gcp = applied(
            pipe,
            "{title: t, logsource: {product: gcp}, detection: {s: {a: 1}, condition: s}}",
        );
        assert_eq!(det(&gcp, "s"), doc("{a: 1}"));
        let azure = applied(
            pipe,
            "{title: t, logsource: {product: azure}, detection: {s: {a: 1}, condition: s}}",
        );
        assert_eq!(det(&azure, "s"), doc("{x.a: 1}"));
    }

    #[test]
    fn field_name_conditions_exclude() {
        let d = applied(
            "
name: m
transformations:
  - type: field_name_prefix
    prefix: 'k.'
    field_name_conditions:
      - type: exclude_fields
        fields: ['event\\..*', user.name]
        match: regex
",
            "{title: t, logsource: {product: p}, detection: {s: {event.action: a, verb: get, user.name: u}, condition: s}}",
        );
        assert_eq!(
            det(&d, "s"),
            doc("{event.action: a, k.verb: get, user.name: u}")
        );
    }

    fn ev(json: &str) -> schema::Event {
        schema::Event::from_json(&schema::Str::from(json)).unwrap()
    }

    fn ls(c: Option<&str>, p: Option<&str>, s: Option<&str>) -> LogSource {
        LogSource {
            category: c.map(Into::into),
            product: p.map(Into::into),
            service: s.map(Into::into),
            definition: None,
        }
    }

    #[test]
    fn routes_and_entries() {
        let pipe = p("
name: r
logsources:
  - category: webserver
    conditions:
      event.dataset: [http.access, mlflow.access]
  - product: mlflow
    conditions: {mlops.component: mlflow}
  - product: linux
    conditions:
      - {event.dataset: syslog}
      - {event.category: process, event.type: start}
  - category: file_event
    conditions: []
  - category: webserver
    product: nginx
    conditions: {url.path: '*'}
");
        assert!(pipe.route(&ls(Some("dns"), None, None)).is_none());
        let web = pipe.route(&ls(Some("webserver"), None, None)).unwrap();
        assert!(web.matches(&ev(r#"{"event":{"dataset":"http.access"}}"#)));
        assert!(!web.matches(&ev(r#"{"event":{"dataset":"syslog"}}"#)));
        assert!(!web.matches(&ev(r#"{"message":"x"}"#)));
        // Both entries hold.
        let mlflow_web = pipe
            .route(&ls(Some("webserver"), Some("mlflow"), None))
            .unwrap();
        assert!(mlflow_web.matches(&ev(
            r#"{"event":{"dataset":"mlflow.access"},"mlops":{"component":"mlflow"}}"#
        )));
        assert!(!mlflow_web.matches(&ev(
            r#"{"event":{"dataset":"http.access"},"mlops":{"component":"ray"}}"#
        )));
        assert!(!mlflow_web.matches(&ev(
            r#"{"event":{"dataset":"mlflow.server"},"mlops":{"component":"mlflow"}}"#
        )));
        // Alternatives; arrays match by any element.
        let linux = pipe
            .route(&ls(None, Some("linux"), Some("auditd")))
            .unwrap();
        assert!(linux.matches(&ev(r#"{"event":{"dataset":"syslog"}}"#)));
        assert!(linux.matches(&ev(
            r#"{"event":{"category":["process"],"type":["start"]}}"#
        )));
        assert!(!linux.matches(&ev(r#"{"event":{"category":["process"],"type":["end"]}}"#)));
        // An empty list: no event.
        let files = pipe
            .route(&ls(Some("file_event"), Some("linux"), None))
            .unwrap();
        assert!(files.matches_nothing());
        assert!(!files.matches(&ev(r#"{"event":{"dataset":"syslog"}}"#)));
        // `*`: any non-null value.
        let nginx = pipe
            .route(&ls(Some("webserver"), Some("nginx"), None))
            .unwrap();
        assert!(nginx.matches(&ev(
            r#"{"event":{"dataset":"http.access"},"url":{"path":"/"}}"#
        )));
        assert!(!nginx.matches(&ev(
            r#"{"event":{"dataset":"http.access"},"url":{"path":null}}"#
        )));
        assert_eq!(
            nginx.to_string(),
            "event.dataset in [http.access, mlflow.access] and url.path exists"
        );
        // Case of logsource values is ignored.
        assert!(pipe.route(&ls(Some("WebServer"), None, None)).is_some());
    }

    #[test]
    fn routes_of_several_pipelines_combine_with_and() {
        let a = p("
name: a
logsources: [{category: webserver, conditions: {event.category: web}}]
");
        let b = p("
name: b
logsources: [{product: mlflow, conditions: {mlops.component: mlflow}}]
");
        let r = route_all(
            &[a.clone(), b.clone()],
            &ls(Some("webserver"), Some("mlflow"), None),
        )
        .unwrap();
        assert!(r.matches(&ev(
            r#"{"event":{"category":["web"]},"mlops":{"component":"mlflow"}}"#
        )));
        assert!(!r.matches(&ev(r#"{"event":{"category":["web"]}}"#)));
        assert!(route_all(&[a, b], &ls(Some("proxy"), None, None)).is_none());
        // Equal routes compare equal (rules can be grouped by route).
        let c = p("
name: c
logsources: [{category: webserver, conditions: {event.category: web}}]
");
        assert_eq!(
            c.route(&ls(Some("webserver"), None, None)),
            c.route(&ls(Some("webserver"), Some("x"), None))
        );
    }

    #[test]
    fn apply_all_runs_in_priority_order() {
        let later = p("
name: later
priority: 20
transformations: [{type: field_name_prefix, prefix: 'b.'}]
");
        let first = p("
name: first
priority: 10
transformations: [{type: field_name_prefix, prefix: 'a.'}]
");
        let mut d =
            doc("{title: t, logsource: {product: p}, detection: {s: {f: 1}, condition: s}}");
        apply_all(&[later, first], &mut d).unwrap();
        assert_eq!(det(&d, "s"), doc("{b.a.f: 1}"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = perr(
            "name: x\ntransformations:\n  - type: field_name_mapping\n    mapping: {a: b}\n  - type: nope\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(
            e.message.contains("transformation 2") && e.message.contains("`nope`"),
            "{e}"
        );
        assert_eq!(e.path, Path::new("test.yml"));

        let e = perr(
            "name: x\ntransformations:\n- type: replace_string\n  regex: '('\n  replacement: ''\n",
        );
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("invalid regex"), "{e}");

        let e = perr(
            "name: x\ntransformations:\n  - type: field_name_prefix\n    prefix: p\n    rule_condition: []\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("unknown key `rule_condition`"), "{e}");

        let e = perr(
            "name: x\nlogsources:\n  - category: web\n    conditions:\n      event.dataset: []\n",
        );
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("logsource 1"), "{e}");

        let e = perr("name: [x\n");
        assert!(e.message.contains("not valid YAML"), "{e}");
        assert!(e.to_string().starts_with("test.yml:"), "{e}");

        let e = perr("transformations: []\n");
        assert!(e.message.contains("`name` is missing"), "{e}");
        let e = perr("name: x\npriorty: 3\n");
        assert_eq!(e.line, 2);
        let e = perr("name: x\ntransformations:\n  - type: drop_detection_item\n");
        assert!(e.message.contains("drop every detection item"), "{e}");
        let e = perr(
            "name: x\ntransformations:\n  - type: add_condition\n    conditions: {a|nosuch: 1}\n",
        );
        assert!(e.message.contains("unknown modifier"), "{e}");
        assert_eq!(e.line, 4);
        let e =
            perr("name: x\ntransformations:\n  - type: field_name_mapping\n    mapping: {a: []}\n");
        assert!(e.message.contains("non-empty list"), "{e}");
        let e = perr("name: x\ntransformations: {a: 1}\n");
        assert!(e.message.contains("must be a list"), "{e}");
        let e = perr("- a\n- b\n");
        assert!(e.message.contains("must be a YAML map"), "{e}");
    }

    #[test]
    fn hostile_documents_do_not_panic() {
        let pipe = p("
name: m
transformations:
  - type: field_name_mapping
    mapping: {a: [x, y]}
  - type: replace_string
    regex: 'a'
    replacement: 'b'
");
        for rule in [
            "just a string",
            "{title: t}",
            "{title: t, detection: 5}",
            "{title: t, detection: {s: null, condition: s}}",
            "{title: t, detection: {s: [[[[a]]]], condition: s}}",
            "{title: t, detection: {s: {[1, 2]: a, 3: b}, condition: s}}",
            "{title: t, detection: {s: !tag {a: 1}, condition: s}}",
            "{title: t, logsource: 3, detection: {s: {a: 1}, condition: 4}}",
        ] {
            let mut d = doc(rule);
            let _ = pipe.apply(&mut d);
        }
        let mut deep = String::from("a");
        for _ in 0..100 {
            deep = format!("[{deep}]");
        }
        let mut d = doc(&format!(
            "{{title: t, detection: {{s: {deep}, condition: s}}}}"
        ));
        assert!(pipe.apply(&mut d).unwrap_err().contains("nest too deeply"));
    }

    #[test]
    fn builtin_pipelines_load() {
        let all = Pipeline::builtin();
        assert_eq!(all.len(), BUILTIN.len());
        for w in all.windows(2) {
            assert!(w[0].priority <= w[1].priority);
        }
        for (file, text) in BUILTIN {
            Pipeline::from_yaml(text, Path::new(file)).unwrap();
        }
    }
}
