//! `type = "elasticsearch"` settings, their defaults and their checks.
//!
//! ```toml
//! [sinks.es]
//! type = "elasticsearch"
//! endpoints = ["https://es1:9200", "https://es2:9200"]
//! mode = "data_stream"            # or "index"
//! # data_stream = { type = "logs", namespace = "default" }
//! # index = "mlsoc-{stream}-{dataset}"   # mode = "index" only
//! # action = "index"                     # mode = "index" only: index | create
//! id = "record"                   # or "none"
//! compression = "gzip"
//! request_timeout = "60s"
//! concurrency = 2
//! install_template = true
//! auth = { strategy = "basic", user = "mlsoc", password_env = "ES_PASSWORD" }
//! # auth = { strategy = "api_key", api_key_file = "/run/secrets/es_api_key" }
//! batch = { max_events = 1000, max_bytes = "10MB", timeout = "1s" }
//! retry = { initial = "100ms", max = "30s" }
//! tls = { ca_file = "/etc/mlsoc/es-ca.pem", verify = true }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::retry::Backoff;

pub use crate::http::{Compression, TlsConfig};

/// The sink's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URLs of the cluster's nodes (`http(s)://host:port[/prefix]`).
    /// Requests go round-robin; a node that cannot be reached is skipped
    /// for the next one at once.
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Where documents go.
    #[serde(default)]
    pub mode: Mode,
    /// `mode = "data_stream"`: the stream name's parts.
    #[serde(default)]
    pub data_stream: DataStreamConfig,
    /// `mode = "index"`: index name; `{dataset}` and `{stream}` are
    /// replaced per record (lowercased, characters ES refuses replaced by
    /// `_`).
    #[serde(default)]
    pub index: Option<String>,
    /// `mode = "index"`: bulk action, `index` (overwrites a document with the
    /// same `_id`) or `create` (keeps the first; a resend is a 409 that counts
    /// as delivered). Data streams always use `create`.
    #[serde(default)]
    pub action: Option<BulkAction>,
    /// `_id` of each document.
    #[serde(default)]
    pub id: IdMode,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub compression: Compression,
    /// Longest wait for one `_bulk` answer (connecting included).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default)]
    pub retry: Backoff,
    /// `_bulk` requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub tls: TlsConfig,
    /// On start, PUT the index template `mlsoc` (ECS mappings for the core
    /// fields; `data_stream: {}` for `logs-mlsoc.*` in data stream mode).
    #[serde(default)]
    pub install_template: bool,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_concurrency() -> usize {
    2
}

impl ElasticsearchConfig {
    /// A config with defaults for `endpoints`.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> ElasticsearchConfig {
        ElasticsearchConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            auth: AuthConfig::None,
            mode: Mode::DataStream,
            data_stream: DataStreamConfig::default(),
            index: None,
            action: None,
            id: IdMode::Record,
            batch: BatchConfig::default(),
            compression: Compression::None,
            request_timeout: default_request_timeout(),
            retry: Backoff::default(),
            concurrency: default_concurrency(),
            tls: TlsConfig::default(),
            install_template: false,
        }
    }
}

/// Where documents go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Data stream `<type>-mlsoc.<dataset>-<namespace>`, action `create`
    /// (the only one data streams take).
    #[default]
    DataStream,
    /// The `index` template, action `action`.
    Index,
}

/// Parts of a data stream name (`<type>-<dataset>-<namespace>`, the
/// Elastic data stream naming scheme).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataStreamConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub namespace: String,
}

impl Default for DataStreamConfig {
    fn default() -> Self {
        DataStreamConfig {
            kind: "logs".into(),
            namespace: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    Index,
    Create,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Index => "index",
            BulkAction::Create => "create",
        }
    }
}

/// `_id` of each document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// `Record.id`: the same input record always gets the same `_id`, so a
    /// resend after a lost answer is recognised (409 on `create`, an
    /// overwrite with `index`) instead of stored twice.
    #[default]
    Record,
    /// Elasticsearch generates ids (slightly faster indexing; a resend is a
    /// duplicate document).
    None,
}

/// How records are grouped into requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most documents per `_bulk` request.
    pub max_events: usize,
    /// Most body bytes per `_bulk` request (before compression). Keep it
    /// under the cluster's `http.max_content_length` (100mb by default); a
    /// 413 splits the request anyway.
    pub max_bytes: ByteSize,
    /// Longest wait for a batch to fill.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 1000,
            max_bytes: ByteSize::mb(10),
            timeout: Duration::from_secs(1),
        }
    }
}

/// Credentials. Secrets are never written in the configuration itself:
/// they come from an environment variable (`*_env`) or a file (`*_file`,
/// trailing newline ignored), and never appear in logs, errors or `Debug`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    #[default]
    None,
    /// HTTP Basic (`Authorization: Basic`), a native or file realm user.
    Basic {
        user: String,
        #[serde(default)]
        password_env: Option<String>,
        #[serde(default)]
        password_file: Option<PathBuf>,
    },
    /// An API key (`Authorization: ApiKey`): the `encoded` value the create
    /// API key API returns, or `id:api_key`.
    ApiKey {
        #[serde(default)]
        api_key_env: Option<String>,
        #[serde(default)]
        api_key_file: Option<PathBuf>,
    },
}

/// A secret read from the environment or a file. Shows as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Credentials with their secrets read.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// The `encoded` form: base64 of `id:api_key`.
    ApiKey(Secret),
}

fn read_secret(what: &str, env: &Option<String>, file: &Option<PathBuf>) -> Result<Secret, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!("auth: give {what}_env or {what}_file, not both")),
        (None, None) => Err(format!(
            "auth: {what}_env (an environment variable's name) or {what}_file (a path) is required"
        )),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                Ok(Secret(v.trim_end_matches(['\r', '\n']).to_owned()))
            }
            Ok(_) => Err(format!(
                "auth: environment variable `{var}` ({what}_env) is empty"
            )),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "auth: environment variable `{var}` ({what}_env) is not set"
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "auth: environment variable `{var}` ({what}_env) is not valid UTF-8"
            )),
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => {
                Ok(Secret(v.trim_end_matches(['\r', '\n']).to_owned()))
            }
            Ok(_) => Err(format!("auth: {what}_file `{}` is empty", path.display())),
            // The error kind only: never the file's content.
            Err(e) => Err(format!(
                "auth: cannot read {what}_file `{}`: {}",
                path.display(),
                e.kind()
            )),
        },
    }
}

impl AuthConfig {
    /// Reads the secrets.
    pub fn resolve(&self) -> Result<Credentials, String> {
        match self {
            AuthConfig::None => Ok(Credentials::None),
            AuthConfig::Basic {
                user,
                password_env,
                password_file,
            } => {
                if user.is_empty() {
                    return Err("auth: user must not be empty".into());
                }
                if user.contains(':') {
                    return Err("auth: user must not contain `:` (HTTP Basic)".into());
                }
                let password = read_secret("password", password_env, password_file)?;
                Ok(Credentials::Basic {
                    user: user.clone(),
                    password,
                })
            }
            AuthConfig::ApiKey {
                api_key_env,
                api_key_file,
            } => {
                let key = read_secret("api_key", api_key_env, api_key_file)?;
                Ok(Credentials::ApiKey(Secret(encode_api_key(key.expose()))))
            }
        }
    }
}

/// `id:api_key` becomes its base64 `encoded` form; an `encoded` value
/// stays as it is.
fn encode_api_key(key: &str) -> String {
    use base64::Engine as _;
    let key = key.trim();
    if key.contains(':') {
        base64::engine::general_purpose::STANDARD.encode(key)
    } else {
        key.to_owned()
    }
}

/// Checks one endpoint: an absolute http(s) URL without credentials,
/// query or fragment.
pub(crate) fn check_endpoint(raw: &str) -> Result<reqwest::Url, String> {
    let not_http = || format!("endpoints: `{raw}` is not an http(s) URL");
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| not_http())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(not_http());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(not_http());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo the URL: it holds the credentials.
        return Err(
            "endpoints: an endpoint has credentials in its URL; use `auth` with password_env or password_file instead"
                .into(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "endpoints: `{raw}` has a query or fragment; give the node's base URL"
        ));
    }
    Ok(url)
}

impl ElasticsearchConfig {
    /// Every check that needs no network.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("endpoints: at least one URL is required".into());
        }
        for e in &self.endpoints {
            check_endpoint(e)?;
        }
        match self.mode {
            Mode::DataStream => {
                if self.index.is_some() {
                    return Err("index: only with mode = \"index\" (data streams are named from data_stream.type, the dataset and data_stream.namespace)".into());
                }
                if self.action == Some(BulkAction::Index) {
                    return Err("action: data streams accept only `create`".into());
                }
                for (what, v) in [
                    ("data_stream.type", &self.data_stream.kind),
                    ("data_stream.namespace", &self.data_stream.namespace),
                ] {
                    if v.is_empty()
                        || v.len() > 100
                        || v.chars().any(|c| {
                            !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
                        })
                    {
                        return Err(format!(
                            "{what}: `{v}` must be 1 to 100 characters of a-z, 0-9, `_` and `.` (no `-`: it separates the parts of a data stream name)"
                        ));
                    }
                }
            }
            Mode::Index => {
                let Some(index) = &self.index else {
                    return Err(
                        "index: required with mode = \"index\" (e.g. \"mlsoc-{stream}-{dataset}\")"
                            .into(),
                    );
                };
                let probe = index.replace("{dataset}", "x").replace("{stream}", "x");
                if probe.contains(['{', '}']) {
                    return Err(format!(
                        "index: `{index}` has an unknown placeholder (known: {{dataset}}, {{stream}})"
                    ));
                }
                if probe.is_empty()
                    || probe != probe.to_lowercase()
                    || probe.starts_with(['-', '_', '+'])
                    || probe.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'])
                {
                    return Err(format!(
                        "index: `{index}` is not a valid index name (lowercase; no \\ / * ? \" < > | , # : or spaces; not starting with -, _ or +)"
                    ));
                }
            }
        }
        if self.batch.max_events == 0 {
            return Err("batch.max_events must be at least 1".into());
        }
        if self.batch.max_bytes.as_u64() < 1024 {
            return Err("batch.max_bytes must be at least 1KiB".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.request_timeout.is_zero() {
            return Err("request_timeout must be more than 0".into());
        }
        if let Some(ca) = &self.tls.ca_file
            && !ca.is_file()
        {
            return Err(format!(
                "tls.ca_file: `{}` is not a readable file",
                ca.display()
            ));
        }
        Ok(())
    }

    /// The bulk action in effect.
    pub fn effective_action(&self) -> BulkAction {
        match self.mode {
            Mode::DataStream => BulkAction::Create,
            Mode::Index => self.action.unwrap_or(BulkAction::Index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ElasticsearchConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse(r#"endpoints = ["http://localhost:9200"]"#).unwrap();
        assert_eq!(c.mode, Mode::DataStream);
        assert_eq!(c.id, IdMode::Record);
        assert_eq!(c.batch.max_events, 1000);
        assert_eq!(c.batch.max_bytes, ByteSize::mb(10));
        assert_eq!(c.batch.timeout, Duration::from_secs(1));
        assert_eq!(c.data_stream.kind, "logs");
        assert_eq!(c.data_stream.namespace, "default");
        assert_eq!(c.effective_action(), BulkAction::Create);
        assert!(c.tls.verify);
        c.validate().unwrap();
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
endpoints = ["https://es1:9200", "https://es2:9200/prefix"]
mode = "index"
index = "mlsoc-{stream}-{dataset}"
action = "create"
id = "none"
compression = "gzip"
request_timeout = "30s"
concurrency = 4
install_template = true
auth = { strategy = "basic", user = "mlsoc", password_env = "ES_PASSWORD" }
batch = { max_events = 500, max_bytes = "5MB", timeout = "250ms" }
retry = { initial = "50ms", max = "10s", max_retries = 5 }
tls = { verify = false }
"#,
        )
        .unwrap();
        assert_eq!(c.effective_action(), BulkAction::Create);
        assert_eq!(c.batch.timeout, Duration::from_millis(250));
        assert_eq!(c.retry.max_retries, Some(5));
        assert_eq!(c.compression, Compression::Gzip);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(parse("endpoints = [\"http://a:9200\"]\nendpoint = \"x\"").is_err());
        assert!(
            parse("endpoints = [\"http://a:9200\"]\nauth = { strategy = \"basic\", user = \"u\", password = \"inline\" }")
                .is_err()
        );
        assert!(parse("endpoints = [\"http://a:9200\"]\nbatch = { max_event = 1 }").is_err());
    }

    #[test]
    fn validation_messages_name_the_problem() {
        let mut c = ElasticsearchConfig::new(["htp://x"]);
        assert_eq!(
            c.validate().unwrap_err(),
            "endpoints: `htp://x` is not an http(s) URL"
        );
        c.endpoints = vec!["http://elastic:hunter2@es:9200".into()];
        let e = c.validate().unwrap_err();
        assert!(e.contains("credentials in its URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        c.endpoints = vec![];
        assert!(c.validate().unwrap_err().contains("at least one"));
        c.endpoints = vec!["http://es:9200".into()];
        c.mode = Mode::Index;
        assert!(c.validate().unwrap_err().starts_with("index: required"));
        c.index = Some("Mlsoc-{dataset}".into());
        assert!(c.validate().unwrap_err().contains("not a valid index name"));
        c.index = Some("mlsoc-{datasets}".into());
        assert!(c.validate().unwrap_err().contains("unknown placeholder"));
        c.index = Some("mlsoc-{dataset}".into());
        c.validate().unwrap();
        c.mode = Mode::DataStream;
        c.index = None;
        c.data_stream.namespace = "prod-eu".into();
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("data_stream.namespace")
        );
    }

    #[test]
    fn secrets_come_from_env_or_file_and_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cr3t-from-file\n").unwrap();
        let a = AuthConfig::Basic {
            user: "mlsoc".into(),
            password_env: None,
            password_file: Some(f.clone()),
        };
        let creds = a.resolve().unwrap();
        let Credentials::Basic { password, .. } = &creds else {
            panic!()
        };
        assert_eq!(password.expose(), "s3cr3t-from-file");
        assert!(!format!("{creds:?}").contains("s3cr3t"));

        let missing = AuthConfig::Basic {
            user: "mlsoc".into(),
            password_env: Some("MLSOC_TEST_SURELY_UNSET_VAR".into()),
            password_file: None,
        };
        assert_eq!(
            missing.resolve().unwrap_err(),
            "auth: environment variable `MLSOC_TEST_SURELY_UNSET_VAR` (password_env) is not set"
        );
        let both = AuthConfig::ApiKey {
            api_key_env: Some("X".into()),
            api_key_file: Some(f),
        };
        assert!(both.resolve().unwrap_err().contains("not both"));
    }

    #[test]
    fn api_keys_are_encoded() {
        assert_eq!(encode_api_key("id:key"), "aWQ6a2V5");
        assert_eq!(encode_api_key("aWQ6a2V5"), "aWQ6a2V5");
    }
}
