//! Meta filter documents (Sigma filters specification): a detection
//! applied to the rules it names as AND NOT, so an environment's known
//! benign activity is excluded in one place.

use serde_norway::Value as Y;

use crate::modifiers::Placeholders;
use crate::rule::{Detection, LogSource, Problem, compile_detection, logsource, meta};

/// A filter document.
#[derive(Debug, Clone)]
pub struct Filter {
    pub title: String,
    pub id: Option<String>,
    pub logsource: LogSource,
    /// Rules it applies to, by id or name.
    pub rules: Vec<String>,
    pub detection: Detection,
}

pub fn filter_from_yaml(doc: &Y, placeholders: &Placeholders) -> Result<Filter, Problem> {
    let m = meta(doc)?;
    let logsource = logsource(doc)?;
    let Some(Y::Mapping(f)) = doc.get("filter") else {
        return Err(Problem::at("`filter` must be a map", "filter"));
    };
    let rules = crate::rule::rule_refs(&Y::Mapping(f.clone()), "filter")?;
    let mut det = f.clone();
    det.remove("rules");
    let detection = compile_detection(&Y::Mapping(det), placeholders)?;
    Ok(Filter {
        title: m.title,
        id: m.id,
        logsource,
        rules,
        detection,
    })
}
