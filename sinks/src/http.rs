//! Settings shared by the HTTP sinks (Elasticsearch, Splunk HEC).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    /// `Content-Encoding: gzip` request bodies (Elasticsearch and Splunk
    /// HEC both accept them).
    Gzip,
}

/// TLS towards the destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of extra CA certificates to trust (a private CA), added to
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate and name. `false` accepts any
    /// certificate (and exposes credentials to anyone on the path): for a
    /// first test only, never in production.
    pub verify: bool,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            ca_file: None,
            verify: true,
        }
    }
}
