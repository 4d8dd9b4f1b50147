//! The format definition language, as read from TOML.
//!
//! Built-in formats are written in it (`src/formats/*.toml`) and so are the
//! formats teams declare for components mlsoc does not know yet. See
//! `docs/formats.md` for a walk-through.
//!
//! ```toml
//! [[format]]
//! name = "airflow.webserver"          # unique name, used by --format
//! dataset = "airflow.webserver"        # event.dataset (default: name)
//! component = "airflow"                # mlops.component
//! description = "Airflow webserver access log"
//! example = '10.0.0.5 - - [30/Nov/2026:10:00:00 +0000] "GET /home HTTP/1.1" 200 12 "-" "curl/8"'
//! priority = 10                        # detection order, higher first
//! set = { "event.kind" = "event", "event.category" = ["web"], "event.type" = ["access"] }
//! timestamp = { field = "_ts", layouts = ["%d/%b/%Y:%H:%M:%S %z"] }
//! enrich = ["addr(_client)", "request_line(_request)", "url", "http_outcome"]
//!
//! [[format.pattern]]
//! dissect = '%{_client} %{?ident} %{user.name} [%{_ts}] "%{_request}" %{http.response.status_code} %{http.response.body.bytes} "%{http.request.referrer}" "%{user_agent.original}"'
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// A file of format definitions.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FormatFile {
    #[serde(default)]
    pub format: Vec<FormatSpec>,
}

/// One format.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    pub name: String,
    pub dataset: Option<String>,
    pub component: Option<String>,
    /// `event.module`; defaults to the component, else the dataset's first part.
    pub module: Option<String>,
    #[serde(default)]
    pub description: String,
    /// A line in this format; `mlsoc formats` shows it and the tests parse it.
    pub example: Option<String>,
    /// Detection order: formats with a higher priority are tried first.
    #[serde(default)]
    pub priority: i32,
    /// Detection only picks this format for a file when at least one sampled
    /// line also matches this regex.
    pub hint: Option<String>,
    /// Detection prefers this format for files whose path matches this regex.
    pub path_hint: Option<String>,
    /// Take part in automatic detection (default true). Formats with
    /// `auto = false` are used only when named.
    #[serde(default = "yes")]
    pub auto: bool,
    /// Remove ANSI colour sequences before parsing (the original keeps them).
    #[serde(default = "yes")]
    pub strip_ansi: bool,
    /// Values that mean "absent" in captures (CLF writes `-`).
    #[serde(default)]
    pub null_values: Vec<String>,
    /// Fields taken from the source file's path.
    pub source_path: Option<PathSpec>,
    pub multiline: Option<MultilineSpec>,
    /// What a record that matches no pattern becomes: `dlq` (default) or
    /// `message` (an event with the text as `message`, for free-form logs).
    #[serde(default)]
    pub on_mismatch: OnMismatch,
    /// Formats to try, in order, when this one does not match a record.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// A built-in parser instead of patterns: `syslog`, `plain`.
    pub parser: Option<String>,
    #[serde(default)]
    pub pattern: Vec<PatternSpec>,
    pub json: Option<JsonSpec>,
    pub timestamp: Option<TimestampSpec>,
    /// Fields set on every event of this format.
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Enrichment steps, run in order after the pattern's own steps.
    #[serde(default)]
    pub enrich: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One alternative of a text format: a dissect pattern, a regex, or another
/// format to delegate to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub dissect: Option<String>,
    /// A regex with named groups; group names map to fields through
    /// `fields`, or directly (`__` stands for `.`: `source__ip`).
    pub regex: Option<String>,
    /// Delegate the record to another format.
    pub format: Option<String>,
    /// A splitter written in code (`split = "nginx_ingress"`, see
    /// `formats::SPLITTERS`): it names its captures like a regex's groups
    /// and takes only the records it splits as the alternative after it
    /// would, leaving the others to it. Its misses are not the ones
    /// reported.
    pub split: Option<String>,
    /// Capture name -> field renames: `{ "source.ip" = "client" }`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub enrich: Vec<String>,
    /// A regex the whole record must match before this alternative is
    /// tried (checked without captures): makes a dissect pattern a fast
    /// path for the records of a known shape, the alternatives after it
    /// taking the others. Its misses are not the ones reported.
    pub verify: Option<String>,
}

/// JSON documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSpec {
    /// Path -> regex the document must satisfy to be of this format.
    #[serde(default)]
    pub require: BTreeMap<String, String>,
    /// A member holding an array of records (CloudTrail's `Records`): each
    /// element becomes one event.
    pub explode: Option<String>,
    /// Where the whole document is kept: a field path such as
    /// `kubernetes.audit`, or `""` to merge it into the event's top level.
    pub keep: Option<String>,
    /// ECS field -> JSON path. When the path ends in an array, the first
    /// element is taken, unless the field is an ECS array field or the path
    /// ends with `[]` (`"user.group.name" = "user.groups[]"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// Capture name (text formats) or JSON path (JSON formats).
    pub field: String,
    /// Layouts tried in order (see the `timestamp` module).
    pub layouts: Vec<String>,
    /// Zone for times without one; overrides the run's `--timezone`.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSpec {
    pub regex: String,
    /// Field -> group name.
    pub fields: BTreeMap<String, String>,
}

/// How physical lines are grouped into records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineSpec {
    /// A line matching this regex starts a record; other lines continue
    /// the record before them.
    pub start: Option<String>,
    /// Python traceback grouping: indented lines, `Traceback (most recent
    /// call last):`, chained-exception headers and the final exception line
    /// continue the record before them.
    #[serde(default)]
    pub python: bool,
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
}

fn default_max_lines() -> usize {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnMismatch {
    #[default]
    Dlq,
    Message,
}
