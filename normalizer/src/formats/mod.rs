//! The built-in formats: one module per log format (or family), each with
//! its definition in a `.toml` file of the same name (the data), the
//! enrichment steps that need code, and its tests.

use crate::format::{BuiltinParser, Splitter};
use crate::steps::NamedStep;

mod cloudtrail;
mod json;
mod jupyter;
mod k8s_audit;
mod minio;
pub mod ml_api;
mod mlflow;
mod ray;
mod syslog;
mod text;
mod torchserve;
pub mod util;
mod web;

/// (origin, TOML text) of every built-in definition file.
pub const BUILTIN: &[(&str, &str)] = &[
    ("formats/mlflow.toml", include_str!("mlflow.toml")),
    ("formats/jupyter.toml", include_str!("jupyter.toml")),
    ("formats/ray.toml", include_str!("ray.toml")),
    ("formats/torchserve.toml", include_str!("torchserve.toml")),
    ("formats/web.toml", include_str!("web.toml")),
    ("formats/k8s_audit.toml", include_str!("k8s_audit.toml")),
    ("formats/cloudtrail.toml", include_str!("cloudtrail.toml")),
    ("formats/minio.toml", include_str!("minio.toml")),
    ("formats/json.toml", include_str!("json.toml")),
    ("formats/syslog.toml", include_str!("syslog.toml")),
    ("formats/text.toml", include_str!("text.toml")),
];

/// Component steps that formats (built-in or declared) can name in `enrich`.
pub static STEPS: &[&NamedStep] = &[
    &ml_api::MLFLOW,
    &ml_api::JUPYTER,
    &ml_api::RAY,
    &ml_api::TORCHSERVE,
    &ml_api::MODEL_SERVER,
    &ml_api::S3,
    &ml_api::ML_API,
    &mlflow::MLFLOW_SERVER,
    &jupyter::JUPYTER,
    &ray::RAY_LOG,
    &ray::RAY_ENTRYPOINT,
    &ray::RAY_EVENT,
    &torchserve::TORCHSERVE_LOG,
    &torchserve::TORCHSERVE_METRIC,
    &k8s_audit::K8S_AUDIT,
    &cloudtrail::CLOUDTRAIL,
    &minio::MINIO_AUDIT,
    &json::JSON_COMMON,
    &text::SHELL_HISTORY,
];

/// Parsers written in code, for `parser = "..."`.
pub static PARSERS: &[(&str, BuiltinParser)] = &[("syslog", syslog::parse)];

/// Splitters written in code, for `split = "..."` on an alternative: (name,
/// capture names, splitter).
pub static SPLITTERS: &[(&str, &[&str], Splitter)] =
    &[("nginx_ingress", web::INGRESS_NAMES, web::split_ingress)];

#[cfg(test)]
pub(crate) mod testing {
    //! Parse one record with a named format, as the tests of each format do.

    use std::sync::LazyLock;

    use schema::{Event, Str, Value, f};

    use crate::format::{Registry, Scratch};
    use crate::timestamp::{TimeContext, Zone};

    static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    /// All events of a record (several for exploded documents), or the reason
    /// it does not match.
    pub fn parse_all(format: &str, line: &str) -> Result<Vec<Event>, String> {
        let fmt = REG
            .get(format)
            .unwrap_or_else(|| panic!("no format {format}"));
        let time = TimeContext {
            zone: Zone::Utc,
            reference: schema::Timestamp::from_civil(2026, 11, 30, 12, 0, 0, 0).unwrap(),
        };
        let original = Str::from(line);
        let text = if fmt.strip_ansi {
            crate::ansi::strip(&original)
        } else {
            original.clone()
        };
        let mut out = Vec::new();
        fmt.parse(&REG, &text, &time, &mut Scratch::default(), 0, &mut out)
            .map_err(|r| r.0.into_owned())?;
        for e in &mut out {
            e.set_default(f::EVENT_ORIGINAL, original.clone());
        }
        Ok(out)
    }

    pub fn parse(format: &str, line: &str) -> Result<Event, String> {
        let mut all = parse_all(format, line)?;
        assert_eq!(all.len(), 1, "one event expected");
        Ok(all.remove(0))
    }

    /// A field as text (arrays joined with `,`); empty when absent.
    pub fn text(e: &Event, path: &str) -> String {
        match e.get(path) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.to_text().map(|c| c.into_owned()))
                .collect::<Vec<_>>()
                .join(","),
            Some(v) => v.to_text().map(|c| c.into_owned()).unwrap_or_default(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::parse_all;
    use crate::format::Registry;

    #[test]
    fn every_builtin_format_parses_its_example() {
        let reg = Registry::builtin();
        for fmt in reg.formats() {
            let example = fmt
                .example
                .as_deref()
                .unwrap_or_else(|| panic!("format {} has no example", fmt.name));
            let events = parse_all(&fmt.name, example)
                .unwrap_or_else(|e| panic!("{}: example does not parse: {e}", fmt.name));
            assert!(!events.is_empty());
            assert!(
                !fmt.description.is_empty(),
                "{} has no description",
                fmt.name
            );
        }
    }

    #[test]
    fn every_step_is_documented_and_unique() {
        let mut names: Vec<&str> = super::STEPS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate step names");
        assert!(super::STEPS.iter().all(|s| !s.doc.is_empty()));
    }
}
