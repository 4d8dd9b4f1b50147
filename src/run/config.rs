//! `mlsoc run` configuration: TOML, in the shape Vector users know — named
//! sources, the normalize and detect stages, named sinks that pick the
//! streams they take with `inputs`.
//!
//! Loading reports every error at once, each with the file, the line of the
//! component it belongs to and a reason (`mlsoc validate`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sinks::{BufferConfig, Stream};
use toml::Spanned;

/// The configuration used when `mlsoc run` gets no `--config`: tail the
/// bundled samples and write NDJSON files under `target/mlsoc/`.
pub const DEFAULT: &str = include_str!("default.toml");

/// A whole configuration, checked.
#[derive(Debug)]
pub struct Config {
    /// Where the configuration came from (a path, or `<built-in>`).
    pub origin: String,
    pub data_dir: PathBuf,
    pub api: Option<ApiConfig>,
    pub normalize: NormalizeConfig,
    pub detect: DetectConfig,
    pub sources: Vec<(String, SourceConfig)>,
    pub sinks: Vec<(String, SinkConfig)>,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default)]
    api: Option<Spanned<toml::Value>>,
    #[serde(default)]
    normalize: Option<Spanned<toml::Value>>,
    #[serde(default)]
    detect: Option<Spanned<toml::Value>>,
    #[serde(default)]
    sources: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    sinks: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default = "default_shutdown", with = "humantime_serde")]
    shutdown_timeout: Duration,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/mlsoc")
}

fn default_shutdown() -> Duration {
    Duration::from_secs(30)
}

/// `[api]`: the HTTP endpoint for `/metrics` (Prometheus) and `/health`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub address: std::net::SocketAddr,
}

/// `[normalize]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Zone of timestamps that carry none.
    pub timezone: String,
    /// Longest record kept; longer ones are dead-lettered with their head.
    pub max_record_bytes: usize,
    /// Extra format definition files (see `mlsoc formats`).
    pub formats: Vec<PathBuf>,
    /// Worker threads for normalization and rule evaluation (0: one per core).
    pub workers: usize,
    /// A record held open for continuation lines (multi-line formats) is
    /// closed after this much quiet on its stream.
    #[serde(with = "humantime_serde")]
    pub multiline_timeout: Duration,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            timezone: "UTC".into(),
            max_record_bytes: 1024 * 1024,
            formats: Vec::new(),
            workers: 0,
            multiline_timeout: Duration::from_secs(1),
        }
    }
}

/// `[detect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Run detection at all.
    pub enabled: bool,
    /// Load the built-in ML rule pack.
    pub builtin_rules: bool,
    /// More rule files or directories (Sigma YAML), e.g. a SigmaHQ checkout.
    pub rules: Vec<PathBuf>,
    /// Load the built-in field-mapping pipelines (SigmaHQ taxonomy -> ECS).
    pub builtin_pipelines: bool,
    /// More processing pipelines.
    pub pipelines: Vec<PathBuf>,
    /// Placeholder files (allowlists for `|expand`), replacing the built-in
    /// values name by name.
    pub placeholders: Vec<PathBuf>,
    /// Placeholder values set here override the files.
    pub placeholder: BTreeMap<String, Vec<String>>,
    /// Most correlation groups kept, across all correlations (each gets
    /// an even share, at least 1,000); the least recently updated group of
    /// a correlation at its share is evicted (and counted). Bounds the
    /// memory of correlation state: about 1 KiB per group.
    pub max_correlation_groups: usize,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            builtin_rules: true,
            rules: Vec::new(),
            builtin_pipelines: true,
            pipelines: Vec::new(),
            placeholders: Vec::new(),
            placeholder: BTreeMap::new(),
            max_correlation_groups: 50_000,
        }
    }
}

/// `[sources.NAME]`, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Files tailed with checkpoints.
    File(collector::TailConfig),
    /// Lines from standard input.
    Stdin(collector::stdin::StdinConfig),
    /// Syslog over UDP, TCP or TLS.
    Syslog(collector::syslog::SyslogConfig),
    /// HTTP receiver compatible with Splunk's HTTP Event Collector.
    SplunkHec(collector::hec::HecSourceConfig),
}

impl SourceConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::Stdin(_) => "stdin",
            SourceConfig::Syslog(_) => "syslog",
            SourceConfig::SplunkHec(_) => "splunk_hec",
        }
    }

    /// The format the source forces, if any.
    fn format(&self) -> Option<&str> {
        match self {
            SourceConfig::File(c) => c.format.as_deref(),
            SourceConfig::Stdin(c) => c.format.as_deref(),
            SourceConfig::Syslog(c) => c.format.as_deref(),
            SourceConfig::SplunkHec(_) => None,
        }
    }
}

/// `[sinks.NAME]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The streams the sink takes.
    pub inputs: Vec<Stream>,
    pub buffer: BufferConfig,
    pub kind: SinkKind,
}

/// A sink's own settings, by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkKind {
    /// NDJSON file, or stdout with `path = "-"`.
    File(sinks::file::FileSinkConfig),
    /// Elasticsearch `_bulk` (data streams or indices).
    Elasticsearch(sinks::elasticsearch::ElasticsearchConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(sinks::splunk_hec::SplunkHecConfig),
}

impl SinkKind {
    pub fn kind(&self) -> &'static str {
        match self {
            SinkKind::File(_) => "file",
            SinkKind::Elasticsearch(_) => "elasticsearch",
            SinkKind::SplunkHec(_) => "splunk_hec",
        }
    }
}

/// One configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub line: Option<usize>,
    /// The component or key: `sources.mlflow`, `detect`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: ", self.origin)?,
            None => write!(f, "{}: ", self.origin)?,
        }
        if !self.at.is_empty() {
            write!(f, "[{}] ", self.at)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error of a configuration.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and checks a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            origin: origin.clone(),
            line: None,
            at: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&text, &origin)
}

/// Parses and checks configuration text. Every error is reported, not only
/// the first.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let err = |line: Option<usize>, at: &str, message: String| ConfigError {
        origin: origin.to_string(),
        line,
        at: at.to_string(),
        message,
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(s.start));
            return Err(ConfigErrors(vec![err(line, "", e.message().to_string())]));
        }
    };
    let mut errors = Vec::new();

    // A section deserialized on its own, its errors placed at its line.
    fn section<T: serde::de::DeserializeOwned>(
        value: Option<Spanned<toml::Value>>,
        at: &str,
        line_of: &dyn Fn(usize) -> usize,
        errors: &mut Vec<(Option<usize>, String, String)>,
    ) -> Option<T> {
        let v = value?;
        let line = line_of(v.span().start);
        match v.into_inner().try_into() {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push((Some(line), at.to_string(), de_message(&e)));
                None
            }
        }
    }
    let mut pending = Vec::new();
    let api: Option<ApiConfig> = section(raw.api, "api", &line_of, &mut pending);
    let normalize: NormalizeConfig =
        section(raw.normalize, "normalize", &line_of, &mut pending).unwrap_or_default();
    let detect: DetectConfig =
        section(raw.detect, "detect", &line_of, &mut pending).unwrap_or_default();

    let mut sources = Vec::new();
    let mut source_lines = BTreeMap::new();
    for (name, v) in raw.sources {
        let at = format!("sources.{name}");
        let line = line_of(v.span().start);
        source_lines.insert(name.clone(), line);
        if let Some(m) = bad_name(&name) {
            pending.push((Some(line), at.clone(), m));
        }
        match v.into_inner().try_into::<SourceConfig>() {
            Ok(s) => {
                if let SourceConfig::File(c) = &s
                    && let Err(e) = c.validate()
                {
                    pending.push((Some(line), at.clone(), e.to_string()));
                }
                sources.push((name, s))
            }
            Err(e) => pending.push((Some(line), at, de_message(&e))),
        }
    }

    let mut sinks = Vec::new();
    for (name, v) in raw.sinks {
        let at = format!("sinks.{name}");
        let line = line_of(v.span().start);
        if let Some(m) = bad_name(&name) {
            pending.push((Some(line), at.clone(), m));
        }
        let mut table = match v.into_inner() {
            toml::Value::Table(t) => t,
            other => {
                pending.push((
                    Some(line),
                    at,
                    format!("expected a table, found {}", other.type_str()),
                ));
                continue;
            }
        };
        let inputs: Option<Vec<Stream>> = match table.remove("inputs") {
            None => {
                pending.push((
                    Some(line),
                    at.clone(),
                    "missing `inputs`: the streams this sink takes, any of \"events\", \"alerts\", \"dead_letters\"".into(),
                ));
                None
            }
            Some(v) => match v.try_into::<Vec<Stream>>() {
                Ok(i) if i.is_empty() => {
                    pending.push((Some(line), at.clone(), "`inputs` is empty".into()));
                    None
                }
                Ok(i) => Some(i),
                Err(e) => {
                    pending.push((
                        Some(line),
                        at.clone(),
                        format!("inputs: {}", de_message(&e)),
                    ));
                    None
                }
            },
        };
        let buffer: Option<BufferConfig> = match table.remove("buffer") {
            None => Some(BufferConfig::default()),
            Some(v) => match v.try_into() {
                Ok(b) => Some(b),
                Err(e) => {
                    pending.push((
                        Some(line),
                        at.clone(),
                        format!("buffer: {}", de_message(&e)),
                    ));
                    None
                }
            },
        };
        let kind = match toml::Value::Table(table).try_into::<SinkKind>() {
            Ok(k) => Some(k),
            Err(e) => {
                pending.push((Some(line), at.clone(), de_message(&e)));
                None
            }
        };
        if let (Some(inputs), Some(buffer), Some(kind)) = (inputs, buffer, kind) {
            if let Err(m) = check_sink(&kind) {
                pending.push((Some(line), at.clone(), m));
            }
            sinks.push((
                name,
                SinkConfig {
                    inputs,
                    buffer,
                    kind,
                },
            ));
        }
    }

    // What can be checked without starting anything.
    if let Err(e) = normalizer::Zone::parse(&normalize.timezone) {
        pending.push((None, "normalize".into(), format!("timezone: {e}")));
    }
    if normalize.max_record_bytes < 64 {
        pending.push((
            None,
            "normalize".into(),
            "max_record_bytes must be at least 64".into(),
        ));
    }
    match normalizer::Registry::with_files(&normalize.formats) {
        Err(e) => pending.push((None, "normalize".into(), format!("formats: {e}"))),
        Ok(reg) => {
            for (name, s) in &sources {
                if let Some(f) = s.format()
                    && reg.index(f).is_none()
                {
                    pending.push((
                        source_lines.get(name).copied(),
                        format!("sources.{name}"),
                        format!(
                            "unknown format `{f}`; known formats: {}",
                            reg.names().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    for p in detect
        .rules
        .iter()
        .chain(&detect.pipelines)
        .chain(&detect.placeholders)
    {
        if !p.exists() {
            pending.push((
                None,
                "detect".into(),
                format!("{} does not exist", p.display()),
            ));
        }
    }
    if sources.is_empty() && !pending.iter().any(|p| p.1.starts_with("sources.")) {
        pending.push((
            None,
            String::new(),
            "no sources: add a [sources.NAME] table".into(),
        ));
    }
    if sinks.is_empty() && !pending.iter().any(|p| p.1.starts_with("sinks.")) {
        pending.push((
            None,
            String::new(),
            "no sinks: add a [sinks.NAME] table".into(),
        ));
    }
    let stdin_sources = sources
        .iter()
        .filter(|(_, s)| matches!(s, SourceConfig::Stdin(_)))
        .count();
    if stdin_sources > 1 {
        pending.push((
            None,
            "sources".into(),
            "only one stdin source can exist".into(),
        ));
    }

    for (line, at, message) in pending {
        errors.push(err(line, &at, message));
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        origin: origin.to_string(),
        data_dir: raw.data_dir,
        api,
        normalize,
        detect,
        sources,
        sinks,
        shutdown_timeout: raw.shutdown_timeout,
    })
}

/// Component names become metric labels and directory names.
fn bad_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (!ok).then(|| "a component name is 1 to 64 letters, digits, `_` or `-`".to_string())
}

/// Checks a sink's settings the way its constructor will.
fn check_sink(kind: &SinkKind) -> Result<(), String> {
    match kind {
        SinkKind::File(c) => sinks::file::FileSink::new(c.clone()).map(|_| ()),
        SinkKind::Elasticsearch(c) => {
            sinks::elasticsearch::ElasticsearchSink::new(c.clone()).map(|_| ())
        }
        SinkKind::SplunkHec(c) => sinks::splunk_hec::SplunkHecSink::new(c.clone()).map(|_| ()),
    }
}

fn de_message(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_configuration_is_valid() {
        let c = parse(DEFAULT, "<built-in>").unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.sources.is_empty());
        assert!(!c.sinks.is_empty());
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = r#"data_dir = "/tmp/x"

[sources.in]
type = "stdin"
fromat = "mlflow.access"

[sources.other]
type = "carrier-pigeon"

[sinks.out]
type = "file"
path = "/tmp/out.ndjson"

[sinks.out2]
type = "file"
inputs = ["events", "metrics"]
path = "/tmp/out.ndjson"
"#;
        let errs = parse(text, "t.toml").unwrap_err().0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 4, "{shown:#?}");
        assert!(
            shown[0].starts_with("t.toml:3: [sources.in] unknown field `fromat`"),
            "{}",
            shown[0]
        );
        assert!(
            shown[1].starts_with("t.toml:7: [sources.other] unknown variant `carrier-pigeon`"),
            "{}",
            shown[1]
        );
        assert!(
            shown[2].starts_with("t.toml:10: [sinks.out] missing `inputs`"),
            "{}",
            shown[2]
        );
        assert!(
            shown[3].starts_with("t.toml:14: [sinks.out2] inputs: unknown variant `metrics`"),
            "{}",
            shown[3]
        );
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let errs = parse("data_dir = \"x\"\n[sources.a\n", "t.toml")
            .unwrap_err()
            .0;
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(2), "{}", errs[0]);
    }

    #[test]
    fn semantic_errors() {
        let text = r#"
[normalize]
timezone = "Mars/Olympus"
[detect]
rules = ["/nonexistent/rules"]
[sources.in]
type = "stdin"
format = "no.such.format"
[sinks.out]
type = "file"
inputs = []
path = "x"
"#;
        let shown = parse(text, "t.toml").unwrap_err().to_string();
        assert!(shown.contains("timezone"), "{shown}");
        assert!(
            shown.contains("/nonexistent/rules does not exist"),
            "{shown}"
        );
        assert!(shown.contains("unknown format `no.such.format`"), "{shown}");
        assert!(shown.contains("`inputs` is empty"), "{shown}");
    }

    #[test]
    fn names_are_checked() {
        let text = "[sources.\"a b\"]\ntype = \"stdin\"\n[sinks.o]\ntype=\"file\"\ninputs=[\"events\"]\npath=\"x\"\n";
        let shown = parse(text, "t.toml").unwrap_err().to_string();
        assert!(shown.contains("component name"), "{shown}");
    }
}
