//! `mlsoc rules coverage`: what a rule set detects, from the rule files
//! themselves (so the documentation cannot drift from them): a Markdown
//! table of the alerting rules and correlations (component, MITRE ATLAS
//! techniques, log fields needed, suggested response), or a MITRE ATLAS
//! Navigator layer (JSON, layer format 4.5, domain `atlas-atlas`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use detections::{Engine, Loader, Placeholders};
use serde_norway::Value as Y;

use crate::{Exit, PlaceholderArgs, rules_cmd};

#[derive(Clone, Copy, ValueEnum)]
pub enum CoverageFormat {
    /// A Markdown document with the coverage table.
    Markdown,
    /// A MITRE ATLAS Navigator layer.
    Navigator,
}

#[derive(Args)]
pub struct CoverageArgs {
    /// Rule files or directories. Default: the compiled-in rule pack.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: CoverageFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub placeholders: PlaceholderArgs,
}

/// One alerting rule or correlation.
struct Row {
    component: String,
    title: String,
    id: String,
    kind: String,
    level: String,
    atlas: Vec<String>,
    attack: Vec<String>,
    fields: BTreeSet<String>,
    response: Vec<String>,
    file: String,
    /// `expand` placeholders the rule's text names.
    placeholders: BTreeSet<String>,
}

/// `atlas.aml.t0010.003` -> `AML.T0010.003`; case studies too
/// (`atlas.aml.cs0030` -> `AML.CS0030`).
fn atlas_id(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("atlas.")?;
    (rest.starts_with("aml.t") || rest.starts_with("aml.cs")).then(|| rest.to_uppercase())
}

fn is_technique(id: &str) -> bool {
    id.starts_with("AML.T")
}

fn attack_id(tag: &str) -> Option<String> {
    let rest = tag.strip_prefix("attack.")?;
    (rest.starts_with('t') && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
        .then(|| rest.to_uppercase())
}

fn strings(v: Option<&Y>) -> Vec<String> {
    match v {
        Some(Y::Sequence(s)) => s
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Y::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Field names of a detection section: the keys of its search
/// identifiers' maps, modifiers cut (keyword lists name no field).
fn detection_fields(det: &Y, out: &mut BTreeSet<String>) {
    fn map_keys(v: &Y, out: &mut BTreeSet<String>) {
        match v {
            Y::Mapping(m) => {
                for k in m.keys().filter_map(Y::as_str) {
                    let field = k.split('|').next().unwrap_or(k);
                    if !field.is_empty() {
                        out.insert(field.to_string());
                    }
                }
            }
            Y::Sequence(s) => s.iter().for_each(|x| map_keys(x, out)),
            _ => {}
        }
    }
    if let Y::Mapping(m) = det {
        for (k, v) in m {
            if !matches!(k.as_str(), Some("condition" | "timeframe")) {
                map_keys(v, out);
            }
        }
    }
}

/// The `%name%` placeholders of a rule document's `expand` items.
fn placeholders_of(doc: Option<&Y>) -> BTreeSet<String> {
    fn names(v: &Y, out: &mut BTreeSet<String>) {
        match v {
            Y::String(t) => {
                let mut rest = t.as_str();
                while let Some(a) = rest.find('%') {
                    let after = &rest[a + 1..];
                    let Some(b) = after.find('%') else { break };
                    if b > 0 {
                        out.insert(after[..b].to_string());
                    }
                    rest = &after[b + 1..];
                }
            }
            Y::Sequence(items) => items.iter().for_each(|i| names(i, out)),
            _ => {}
        }
    }
    fn walk(v: &Y, out: &mut BTreeSet<String>) {
        match v {
            Y::Mapping(m) => {
                for (k, v) in m {
                    let expand = k
                        .as_str()
                        .is_some_and(|k| k.split('|').skip(1).any(|m| m == "expand"));
                    if expand {
                        names(v, out);
                    } else {
                        walk(v, out);
                    }
                }
            }
            Y::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    if let Some(det) = doc.and_then(|d| d.get("detection")) {
        walk(det, &mut out);
    }
    out
}

/// The comment block written above each name of the compiled-in
/// placeholder files: what the value is and why the default is safe.
fn placeholder_comments() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, text) in detections::pack::PLACEHOLDERS {
        let mut comment: Vec<&str> = Vec::new();
        for line in text.lines() {
            let t = line.trim();
            if let Some(c) = t.strip_prefix('#') {
                comment.push(c.trim());
            } else if t.is_empty() {
                comment.clear();
            } else if !line.starts_with([' ', '-'])
                && let Some((name, _)) = t.split_once(':')
            {
                out.insert(
                    name.trim_matches(['%', '\'', '"']).to_string(),
                    comment.join(" "),
                );
                comment.clear();
            }
        }
    }
    out
}

/// Raw YAML documents by rule id, for the custom attributes (`response`)
/// and the detection field names.
fn raw_documents(files: &[(PathBuf, String)]) -> BTreeMap<String, Y> {
    let mut out = BTreeMap::new();
    for (_, text) in files {
        for doc in serde_norway::Deserializer::from_str(text) {
            if let Ok(v) = <Y as serde::Deserialize>::deserialize(doc)
                && let Some(id) = v.get("id").and_then(Y::as_str)
            {
                out.insert(id.to_string(), v);
            }
        }
    }
    out
}

fn rule_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    if paths.is_empty() {
        return Ok(detections::pack::rule_files()
            .map(|(p, t)| (p, t.to_string()))
            .collect());
    }
    // The files `mlsoc hunt --rules` would read.
    let mut out = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            detections::loader::files_under(p, false)
                .map_err(|e| anyhow::Error::new(Exit(2)).context(format!("{}: {e}", p.display())))?
        } else {
            vec![p.clone()]
        };
        for f in files {
            let t = std::fs::read_to_string(&f).map_err(|e| {
                anyhow::Error::new(Exit(2)).context(format!("{}: {e}", f.display()))
            })?;
            out.push((f, t));
        }
    }
    Ok(out)
}

fn rows(args: &CoverageArgs) -> anyhow::Result<(Vec<Row>, Placeholders)> {
    let files = rule_files(&args.paths)?;
    let values = rules_cmd::placeholders(&args.placeholders)?;
    let loader = Loader::new(values.clone()).with_pipelines(detections::Pipeline::builtin());
    let loading = loader.load_texts(files.iter().map(|(p, t)| (p.clone(), t.as_str())));
    if let Some(e) = loading.errors.first() {
        return Err(anyhow::Error::new(Exit(2)).context(format!(
            "the rules have errors (`mlsoc rules check` lists them), first: {e}"
        )));
    }
    let raw = raw_documents(&files);
    let (engine, _) = Engine::build(loading);
    let name_of = |p: &PathBuf| {
        let s = p.display().to_string();
        s.strip_prefix(detections::pack::PACK_PREFIX)
            .map(|r| format!("detections/rules{r}"))
            .unwrap_or(s)
    };
    // Component, fields and placeholders of each rule, by id and name, for
    // the correlations that use it.
    type Base = (String, BTreeSet<String>, BTreeSet<String>);
    let mut base: BTreeMap<String, Base> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, l) in engine.rules().iter().enumerate() {
        let r = &l.rule;
        let doc = r.id.as_ref().and_then(|id| raw.get(id));
        let mut fields = BTreeSet::new();
        if let Some(d) = doc.and_then(|d| d.get("detection")) {
            detection_fields(d, &mut fields);
        }
        let component = r
            .logsource
            .product
            .clone()
            .or_else(|| r.logsource.category.clone())
            .unwrap_or_else(|| "any".into());
        let placeholders = placeholders_of(doc);
        for k in [&r.id, &r.name].into_iter().flatten() {
            base.insert(
                k.clone(),
                (component.clone(), fields.clone(), placeholders.clone()),
            );
        }
        if !engine.rule_alerts(i) {
            continue;
        }
        out.push(Row {
            component,
            title: r.title.clone(),
            id: r.id.clone().unwrap_or_default(),
            kind: "single event".into(),
            level: r.level.map_or("-", |l| l.as_str()).into(),
            atlas: r.tags.iter().filter_map(|t| atlas_id(t)).collect(),
            attack: r.tags.iter().filter_map(|t| attack_id(t)).collect(),
            fields,
            response: strings(doc.and_then(|d| d.get("response"))),
            file: name_of(&l.origin.path),
            placeholders,
        });
    }
    for (i, (c, o)) in engine.correlations().enumerate() {
        let mut fields: BTreeSet<String> = c.group_by.iter().cloned().collect();
        fields.extend(c.field.clone());
        let mut components = BTreeSet::new();
        let mut placeholders = BTreeSet::new();
        for r in &c.rules {
            if let Some((comp, f, p)) = base.get(r) {
                components.insert(comp.clone());
                fields.extend(f.iter().cloned());
                placeholders.extend(p.iter().cloned());
            }
        }
        for k in [&c.id, &c.name].into_iter().flatten() {
            base.insert(
                k.clone(),
                (
                    components.iter().cloned().collect::<Vec<_>>().join(", "),
                    fields.clone(),
                    placeholders.clone(),
                ),
            );
        }
        if !engine.correlation_alerts(i) {
            continue;
        }
        let doc = c.id.as_ref().and_then(|id| raw.get(id));
        out.push(Row {
            component: components.into_iter().collect::<Vec<_>>().join(", "),
            title: c.title.clone(),
            id: c.id.clone().unwrap_or_default(),
            kind: c.kind.as_str().replace('_', " "),
            level: c.level.map_or("-", |l| l.as_str()).into(),
            atlas: c.tags.iter().filter_map(|t| atlas_id(t)).collect(),
            attack: c.tags.iter().filter_map(|t| attack_id(t)).collect(),
            fields,
            response: strings(doc.and_then(|d| d.get("response"))),
            file: name_of(&o.path),
            placeholders,
        });
    }
    out.sort_by(|a, b| (&a.component, &a.title).cmp(&(&b.component, &b.title)));
    Ok((out, values))
}

/// Markdown table cells: no line breaks, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn markdown(rows: &[Row], values: &Placeholders) -> String {
    let mut techniques: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut studies: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in rows {
        for t in &r.atlas {
            let into = if is_technique(t) {
                &mut techniques
            } else {
                &mut studies
            };
            into.entry(t).or_default().push(&r.title);
        }
    }
    let correlations = rows.iter().filter(|r| r.kind != "single event").count();
    let mut s = String::new();
    s.push_str("# Detection coverage of the mlsoc rule pack\n\n");
    s.push_str("Generated by `mlsoc rules coverage detections/rules -o docs/detections.md` from the rule files;\n");
    s.push_str("do not edit by hand (a test fails when this file and the rules disagree). The ATLAS Navigator\n");
    s.push_str("layer is `docs/atlas-layer.json` (`mlsoc rules coverage detections/rules --format navigator`).\n\n");
    s.push_str(&format!(
        "{} alerting rules ({} single-event, {} correlations) covering {} MITRE ATLAS techniques.\n\n",
        rows.len(),
        rows.len() - correlations,
        correlations,
        techniques.len()
    ));
    s.push_str("| Rule | Component | Kind | Level | ATLAS | ATT&CK | Log fields needed | Suggested response |\n");
    s.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let fields: Vec<String> = r.fields.iter().map(|f| format!("`{}`", cell(f))).collect();
        s.push_str(&format!(
            "| [{}]({}) | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&r.title),
            cell(&format!("../{}", r.file)),
            cell(&r.component),
            cell(&r.kind),
            cell(&r.level),
            cell(&r.atlas.join(", ")),
            cell(&r.attack.join(", ")),
            fields.join(", "),
            cell(&r.response.join("; ")),
        ));
    }
    s.push_str("\n## ATLAS techniques\n\n| Technique | Rules |\n|---|---|\n");
    for (t, titles) in &techniques {
        s.push_str(&format!(
            "| [{t}](https://atlas.mitre.org/techniques/{t}) | {} |\n",
            titles.len()
        ));
    }
    let mut used: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in rows {
        for p in &r.placeholders {
            used.entry(p).or_default().push(&r.title);
        }
    }
    if !used.is_empty() {
        let comments = placeholder_comments();
        s.push_str("\n## Allowlists (placeholders)\n\n");
        s.push_str("The rules' allowlists are Sigma `expand` placeholders. The values below are the ones this\n");
        s.push_str("document was generated with (the defaults of `detections/placeholders/`, compiled into mlsoc);\n");
        s.push_str("replace them with `--placeholders FILE` (a YAML map of names to lists).\n\n");
        s.push_str("| Placeholder | Values | What it is | Rules |\n|---|---|---|---|\n");
        for (name, titles) in &used {
            let vals = values
                .get(*name)
                .map(|v| {
                    v.iter()
                        .map(|x| format!("`{}`", cell(x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_else(|| "(none: the rules are refused)".into());
            s.push_str(&format!(
                "| `{name}` | {vals} | {} | {} |\n",
                cell(comments.get(*name).map(String::as_str).unwrap_or("")),
                titles.len()
            ));
        }
    }
    if !studies.is_empty() {
        s.push_str("\n## ATLAS case studies\n\n| Case study | Rules |\n|---|---|\n");
        for (t, titles) in &studies {
            s.push_str(&format!(
                "| [{t}](https://atlas.mitre.org/studies/{t}) | {} |\n",
                titles.len()
            ));
        }
    }
    s
}

fn navigator(rows: &[Row]) -> String {
    let mut techniques: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        for t in r.atlas.iter().filter(|t| is_technique(t)) {
            techniques.entry(t).or_default().push(r);
        }
    }
    let max = techniques.values().map(Vec::len).max().unwrap_or(1);
    let list: Vec<serde_json::Value> = techniques
        .iter()
        .map(|(t, rules)| {
            let titles: Vec<&str> = rules.iter().map(|r| r.title.as_str()).collect();
            let meta: Vec<serde_json::Value> = rules
                .iter()
                .map(|r| serde_json::json!({"name": "rule", "value": format!("{} ({})", r.title, r.id)}))
                .collect();
            serde_json::json!({
                "techniqueID": t,
                "score": rules.len(),
                "comment": titles.join("; "),
                "enabled": true,
                "metadata": meta,
            })
        })
        .collect();
    let layer = serde_json::json!({
        "name": "mlsoc rule pack",
        "description": format!("{} alerting rules of the mlsoc ML threat rule pack", rows.len()),
        "domain": "atlas-atlas",
        "versions": {"layer": "4.5"},
        "sorting": 3,
        "hideDisabled": false,
        "techniques": list,
        "gradient": {"colors": ["#d6eaf8", "#1b4f72"], "minValue": 0, "maxValue": max},
        "legendItems": [],
        "metadata": [],
    });
    let mut s = serde_json::to_string_pretty(&layer).unwrap_or_default();
    s.push('\n');
    s
}

pub fn run(args: CoverageArgs) -> anyhow::Result<ExitCode> {
    let (rows, values) = rows(&args)?;
    let text = match args.format {
        CoverageFormat::Markdown => markdown(&rows, &values),
        CoverageFormat::Navigator => navigator(&rows),
    };
    match &args.output {
        Some(p) => std::fs::write(p, text).map_err(|e| {
            anyhow::Error::new(Exit(4)).context(format!("cannot write {}: {e}", p.display()))
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| anyhow::Error::new(Exit(4)).context(format!("cannot write: {e}")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_fields() {
        assert_eq!(
            atlas_id("atlas.aml.t0010.003").as_deref(),
            Some("AML.T0010.003")
        );
        assert_eq!(atlas_id("attack.t1190"), None);
        assert_eq!(atlas_id("atlas.aml.cs0030").as_deref(), Some("AML.CS0030"));
        assert!(!is_technique("AML.CS0030"));
        assert_eq!(attack_id("attack.t1190").as_deref(), Some("T1190"));
        assert_eq!(attack_id("attack.initial-access"), None);
        let det: Y = serde_norway::from_str(
            "sel:\n  url.path|contains: x\n  source.ip: 1\nsel2:\n  - user.name: a\n  - mlops.api: b\nkw: [a, b]\ncondition: sel",
        )
        .unwrap();
        let mut f = BTreeSet::new();
        detection_fields(&det, &mut f);
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            vec!["mlops.api", "source.ip", "url.path", "user.name"]
        );
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn placeholders_of_expand_items_only() {
        let doc: Y = serde_norway::from_str(
            "detection:\n  a: {source.ip|cidr|expand: '%nets%'}\n  b: {user.name|expand: ['%users%', x]}\n  c: {url.query|contains: '%2e%2e'}\n  condition: a",
        )
        .unwrap();
        assert_eq!(
            placeholders_of(Some(&doc)).into_iter().collect::<Vec<_>>(),
            vec!["nets", "users"]
        );
        // Every compiled-in placeholder has its comment.
        let comments = placeholder_comments();
        for name in detections::pack::default_placeholders().unwrap().keys() {
            assert!(
                comments.get(name).is_some_and(|c| c.len() > 20),
                "{name} has no comment in detections/placeholders/"
            );
        }
    }
}
