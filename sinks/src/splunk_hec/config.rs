//! `type = "splunk_hec"` settings, and the token kept out of every log line,
//! error and `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::Backoff;

pub use crate::http::{Compression, TlsConfig};

/// `[sinks.NAME]` with `type = "splunk_hec"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL of the collector, `https://splunk.example:8088`. The sink
    /// appends `/services/collector/event` and `/services/collector/ack`.
    pub endpoint: String,
    /// The HEC token given inline. Prefer `token_env` or `token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Name of an environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File holding the token (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Splunk index; unset lets the token's default index apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Sourcetype of every event. `{dataset}` and `{stream}` are replaced
    /// per record. Default: `mlsoc:<dataset>` for events
    /// (`mlsoc:mlflow.access`), `mlsoc:alert` for alerts and
    /// `mlsoc:dead_letter` for dead letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sourcetype: Option<String>,
    /// `source` of every event; default: where the record was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `host` of every event; default: the record's `host.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Document fields (ECS dotted names, `event.dataset`,
    /// `mlops.component`) copied into HEC's indexed `fields`.
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub compression: Compression,
    /// Time allowed for one request, answer included.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(default)]
    pub retry: Backoff,
    #[serde(default)]
    pub acknowledgements: AckConfig,
    #[serde(default)]
    pub tls: TlsConfig,
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}

impl SplunkHecConfig {
    /// A configuration with defaults and an inline token (tests, examples).
    pub fn new(endpoint: impl Into<String>, token: impl Into<String>) -> SplunkHecConfig {
        SplunkHecConfig {
            endpoint: endpoint.into(),
            token: Some(Secret::new(token)),
            token_env: None,
            token_file: None,
            index: None,
            sourcetype: None,
            source: None,
            host: None,
            fields: Vec::new(),
            batch: BatchConfig::default(),
            compression: Compression::default(),
            request_timeout: default_request_timeout(),
            retry: Backoff::default(),
            acknowledgements: AckConfig::default(),
            tls: TlsConfig::default(),
        }
    }

    /// The token from exactly one of `token`, `token_env`, `token_file`.
    /// Errors name where the token was looked for, never its value.
    pub fn resolve_token(&self) -> Result<Secret, String> {
        let given = [
            self.token.is_some(),
            self.token_env.is_some(),
            self.token_file.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            return Err(
                "set exactly one of `token`, `token_env` and `token_file` (the HEC token)".into(),
            );
        }
        let token = if let Some(t) = &self.token {
            t.clone()
        } else if let Some(var) = &self.token_env {
            match std::env::var(var) {
                Ok(v) => Secret::new(v.trim()),
                Err(_) => {
                    return Err(format!(
                        "token_env: environment variable `{var}` is not set or not UTF-8"
                    ));
                }
            }
        } else {
            let path = self.token_file.as_ref().expect("counted above");
            match std::fs::read_to_string(path) {
                Ok(v) => Secret::new(v.trim()),
                Err(e) => return Err(format!("token_file {}: {e}", path.display())),
            }
        };
        if token.expose().is_empty() {
            return Err("the HEC token is empty".into());
        }
        // The token goes into an HTTP header: refuse what cannot be sent
        // rather than fail on every request.
        if !token
            .expose()
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',')
        {
            return Err("the HEC token contains spaces or control characters".into());
        }
        Ok(token)
    }
}

/// How records are grouped into requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events per request.
    pub max_events: usize,
    /// Most bytes per request body (before compression).
    pub max_bytes: usize,
    /// Longest a record waits for its request to fill up.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        // Vector's defaults; Splunk's `max_content_length` defaults to
        // 800 MB on current releases (1 MB on old ones), so 1 MB bodies pass
        // everywhere.
        BatchConfig {
            max_events: 1000,
            max_bytes: 1_000_000,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Indexer acknowledgement (Splunk Enterprise; the token must have it on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckConfig {
    /// Wait for each request's `ackId` to be reported indexed before the
    /// records count as delivered. Off: the `Success` answer delivers.
    pub enabled: bool,
    /// Time between two polls of `/services/collector/ack`.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Polls an `ackId` may stay false before its records are sent again
    /// (30 polls of 10 s: Splunk's and Vector's five minutes).
    pub max_polls: u32,
    /// Most requests awaiting their ack at once; the sink stops sending
    /// (and so slows the pipeline) beyond it.
    pub max_pending: usize,
}

impl Default for AckConfig {
    fn default() -> AckConfig {
        AckConfig {
            enabled: false,
            poll_interval: Duration::from_secs(10),
            max_polls: 30,
            max_pending: 1000,
        }
    }
}

/// A secret string: `Debug` and `Display` print `***`, serialization writes
/// `***`, so it cannot leak through logs, errors or a printed config.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_with_defaults_and_words() {
        let c: SplunkHecConfig = toml::from_str(
            r#"
            endpoint = "https://splunk:8088"
            token_env = "HEC_TOKEN_TEST_UNSET_VAR"
            index = "mlsoc"
            fields = ["event.dataset", "mlops.component"]
            compression = "gzip"
            request_timeout = "30s"
            batch = { max_events = 10, timeout = "200ms" }
            acknowledgements = { enabled = true, poll_interval = "2s" }
            retry = { initial = "1s" }
            tls = { verify = false }
            "#,
        )
        .unwrap();
        assert_eq!(c.batch.max_events, 10);
        assert_eq!(c.batch.max_bytes, 1_000_000);
        assert_eq!(c.batch.timeout, Duration::from_millis(200));
        assert_eq!(c.compression, Compression::Gzip);
        assert!(c.acknowledgements.enabled);
        assert_eq!(c.acknowledgements.max_polls, 30);
        assert_eq!(c.acknowledgements.poll_interval, Duration::from_secs(2));
        assert!(!c.tls.verify);
        assert!(
            toml::from_str::<SplunkHecConfig>("endpoint = \"x\"\ntokn = \"t\"").is_err(),
            "unknown fields are refused"
        );
        let err = c.resolve_token().unwrap_err();
        assert!(err.contains("HEC_TOKEN_TEST_UNSET_VAR"), "{err}");
    }

    #[test]
    fn the_token_never_shows() {
        let c = SplunkHecConfig::new("http://x", "s3cr3t-t0ken");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(!toml::to_string(&c).unwrap().contains("s3cr3t"));
        assert!(!serde_json::to_string(&c).unwrap().contains("s3cr3t"));
        assert_eq!(c.resolve_token().unwrap().expose(), "s3cr3t-t0ken");
    }

    #[test]
    fn token_from_file_or_exactly_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, "abc-123\n").unwrap();
        let mut c = SplunkHecConfig::new("http://x", "t");
        c.token = None;
        c.token_file = Some(path);
        assert_eq!(c.resolve_token().unwrap().expose(), "abc-123");
        c.token = Some(Secret::new("t"));
        assert!(c.resolve_token().is_err());
        let mut c = SplunkHecConfig::new("http://x", "has space");
        assert!(c.resolve_token().is_err());
        c.token = None;
        assert!(c.resolve_token().is_err());
    }
}
