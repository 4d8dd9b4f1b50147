//! mlsoc's ML threat rule pack (`detections/rules/`) and the default values
//! of its placeholders (`detections/placeholders/`), compiled into the
//! crate so that `mlsoc hunt` detects ML platform threats with no rule
//! directory at hand.
//!
//! Allowlists in the pack (release identities, CI principals, internal
//! networks, allowed model sources) are Sigma `expand` placeholders. The
//! defaults are restrictive: an unknown principal or network is reported,
//! never silently trusted. A deployment replaces them with its own values
//! (`--placeholders FILE` on the command line).

use std::path::PathBuf;

use serde_norway::Value as Y;

use crate::loader::{Loader, Loading};
use crate::modifiers::Placeholders;

include!(concat!(env!("OUT_DIR"), "/pack.rs"));

/// The path prefix of the compiled-in rule files in errors and origins.
pub const PACK_PREFIX: &str = "<mlsoc rule pack>";

/// A placeholder file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PlaceholderError {
    pub file: String,
    pub message: String,
}

/// The compiled-in rule files: (path below `detections/rules/`, text).
pub fn rule_files() -> impl Iterator<Item = (PathBuf, &'static str)> {
    RULES
        .iter()
        .map(|(p, t)| (PathBuf::from(PACK_PREFIX).join(p), *t))
}

/// Loads the compiled-in pack.
pub fn load(loader: &Loader) -> Loading {
    loader.load_texts(rule_files())
}

/// Reads a placeholder file: a YAML map of names (with or without `%`) to
/// a value or a list of values.
pub fn parse_placeholders(file: &str, text: &str) -> Result<Placeholders, PlaceholderError> {
    let err = |message: String| PlaceholderError {
        file: file.to_string(),
        message,
    };
    let doc: Y = serde_norway::from_str(text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    let mut out = Placeholders::new();
    let map = match doc {
        Y::Null => return Ok(out),
        Y::Mapping(m) => m,
        _ => {
            return Err(err(
                "expected a map of placeholder names to lists of values".into(),
            ));
        }
    };
    for (k, v) in map {
        let Y::String(name) = k else {
            return Err(err(format!("placeholder names are strings, not {k:?}")));
        };
        let name = name.trim_matches('%').to_string();
        let items = match v {
            Y::Sequence(items) => items,
            one => vec![one],
        };
        let mut values = Vec::with_capacity(items.len());
        for it in items {
            values.push(match it {
                Y::String(s) => s,
                Y::Number(n) => n.to_string(),
                Y::Bool(b) => b.to_string(),
                other => {
                    return Err(err(format!(
                        "placeholder `{name}`: values are strings or numbers, not {other:?}"
                    )));
                }
            });
        }
        if out.insert(name.clone(), values).is_some() {
            return Err(err(format!("placeholder `{name}` is given twice")));
        }
    }
    Ok(out)
}

/// The default placeholder values of the pack, merged from all its
/// placeholder files; a name defined in two files is an error.
pub fn default_placeholders() -> Result<Placeholders, PlaceholderError> {
    let mut out = Placeholders::new();
    let mut from: std::collections::BTreeMap<String, &str> = Default::default();
    for (file, text) in PLACEHOLDERS {
        for (name, values) in parse_placeholders(file, text)? {
            if let Some(first) = from.get(&name) {
                return Err(PlaceholderError {
                    file: file.to_string(),
                    message: format!("placeholder `{name}` is already defined in {first}"),
                });
            }
            from.insert(name.clone(), file);
            out.insert(name, values);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_loads_without_errors_with_its_defaults() {
        let ph = default_placeholders().expect("placeholder files");
        let loader = Loader::new(ph).with_pipelines(crate::Pipeline::builtin());
        let loading = load(&loader);
        assert_eq!(loading.files, RULES.len());
        let errors: Vec<String> = loading.errors.iter().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let (_, unresolved) = crate::Engine::build(loading);
        assert!(unresolved.is_empty(), "{unresolved:?}");
    }

    #[test]
    fn placeholder_files_are_checked() {
        let p = parse_placeholders("x.yml", "'%a%': [1, b]\nc: d\n").unwrap();
        assert_eq!(p["a"], vec!["1", "b"]);
        assert_eq!(p["c"], vec!["d"]);
        assert!(parse_placeholders("x.yml", "[a, b]").is_err());
        assert!(parse_placeholders("x.yml", "a: [{x: 1}]").is_err());
        assert!(parse_placeholders("x.yml", "a: [\n").is_err());
        assert!(parse_placeholders("x.yml", "").unwrap().is_empty());
    }
}
