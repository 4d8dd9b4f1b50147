//! Syslog network sources: UDP (RFC 5426), TCP (RFC 6587) and TLS (RFC 5425).
//!
//! The source only frames messages; the normalizer parses them (RFC 5424
//! and RFC 3164 lines), so a source name its `format` only to bypass
//! detection.
//!
//! ```toml
//! [sources.syslog_tcp]
//! type = "syslog"
//! mode = "tcp"                  # or "udp"
//! address = "0.0.0.0:6514"
//! max_message_bytes = 65536     # longer messages keep their head + overflow_len
//! max_connections = 1000        # TCP only; more are closed at once, with a warning
//! # format = "syslog"           # optional: skip format detection
//! [sources.syslog_tcp.tls]      # optional, TCP only
//! cert_file = "/etc/mlsoc/syslog.crt"
//! key_file = "/etc/mlsoc/syslog.key"
//! client_ca_file = "/etc/mlsoc/clients-ca.crt"   # optional: mutual TLS
//! ```
//!
//! # Streams
//!
//! - TCP/TLS: each connection is its own stream (a new `SourceBatch::stream`
//!   id), named `syslog+tcp://<peer>` (`syslog+tls://<peer>` over TLS); the
//!   last batch of a connection has `end_of_stream`.
//! - UDP: one message per datagram (RFC 5426; a trailing LF or NUL is
//!   removed, LFs inside stay part of the message). The whole socket is one
//!   stream, whose `end_of_stream` comes when the source stops: a stream per
//!   peer would give the pipeline state for every address that ever sent a
//!   datagram, and datagrams have no continuation lines to group. Each batch
//!   still holds one peer's datagrams, named `syslog+udp://<peer>`.
//!
//! Stream ids are taken from one process-wide counter starting at 2^62, so
//! they do not meet the ids of other sources.
//!
//! # Acknowledgement and backpressure
//!
//! Syslog senders cannot resend, so batches carry [`Ack::none`].
//! - TCP: when the pipeline's channel is full, the connection stops reading
//!   until there is room; TCP flow control then slows the sender. A
//!   connection holds at most one batch (256 messages or 1 MiB) and one
//!   partial message (`max_message_bytes`) besides its 64 KiB read buffer.
//! - UDP cannot be slowed: a batch that finds the channel full is dropped,
//!   counted in `mlsoc_source_dropped_total{source,reason="backpressure"}`
//!   and reported by a warning at most every 10 s.
//!
//! Batches are sent after 256 messages, 1 MiB, or 10 ms after their first
//! message.
//!
//! # Metrics (label `source` = the configured name)
//!
//! `mlsoc_source_records_total`, `mlsoc_source_bytes_total`,
//! `mlsoc_source_dropped_total{reason}`, `mlsoc_syslog_connections` (gauge),
//! `mlsoc_syslog_connections_rejected_total`, `mlsoc_syslog_framing_errors_total`.

pub mod framing;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schema::{Ack, RawRecord, Source};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batch::SourceBatch;

/// Transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Udp,
    Tcp,
}

/// `[sources.NAME]` with `type = "syslog"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    pub mode: Mode,
    /// Address to listen on, `127.0.0.1:5514`; port 0 picks a free port.
    pub address: SocketAddr,
    /// Longest message kept whole; longer ones keep this many bytes and
    /// report their full length (`overflow_len`), which the normalizer
    /// dead-letters.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// TLS for `mode = "tcp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Most TCP connections at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Format of every message, bypassing detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `[sources.NAME.tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, clients must present a certificate
    /// signed by one of them (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}

fn default_max_connections() -> usize {
    1000
}

impl SyslogConfig {
    /// A configuration with defaults.
    pub fn new(mode: Mode, address: SocketAddr) -> SyslogConfig {
        SyslogConfig {
            mode,
            address,
            max_message_bytes: default_max_message_bytes(),
            tls: None,
            max_connections: default_max_connections(),
            format: None,
        }
    }
}

/// Why a syslog source could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("syslog source `{name}`: {message}")]
    Config { name: String, message: String },
    #[error("syslog source `{name}`: TLS: {message}")]
    Tls { name: String, message: String },
    #[error("syslog source `{name}`: cannot listen on {address}: {source}")]
    Bind {
        name: String,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("syslog source `{name}`: {source}")]
    Io {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the source until `stop` is cancelled (or the pipeline's receiver
/// is gone). `bound` learns the local address once listening (tests bind
/// port 0). On stop, what was already received is sent, each stream ends
/// with `end_of_stream`, and open connections are closed.
pub async fn serve(
    name: Arc<str>,
    config: SyslogConfig,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
    bound: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), SyslogError> {
    let invalid = |message: &str| SyslogError::Config {
        name: name.to_string(),
        message: message.into(),
    };
    if config.max_message_bytes == 0 {
        return Err(invalid("max_message_bytes must be at least 1"));
    }
    match config.mode {
        Mode::Udp => {
            if config.tls.is_some() {
                return Err(invalid("tls needs mode = \"tcp\""));
            }
            udp::serve(name, config, out, stop, bound).await
        }
        Mode::Tcp => {
            if config.max_connections == 0 {
                return Err(invalid("max_connections must be at least 1"));
            }
            tcp::serve(name, config, out, stop, bound).await
        }
    }
}

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1 << 62);

/// A new stream id (see the module docs).
pub(crate) fn next_stream_id() -> u64 {
    NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
}

pub(crate) const BATCH_RECORDS: usize = 256;
pub(crate) const BATCH_BYTES: usize = 1 << 20;
pub(crate) const BATCH_WAIT: Duration = Duration::from_millis(10);

/// Records of one stream and source on their way into a [`SourceBatch`].
pub(crate) struct Batcher {
    pub source_name: Arc<str>,
    pub source: Arc<Source>,
    pub stream: u64,
    /// The peer of a UDP batch.
    pub peer: Option<SocketAddr>,
    records: Vec<RawRecord>,
    bytes: usize,
    first_at: Option<Instant>,
}

impl Batcher {
    pub fn new(source_name: Arc<str>, source: Arc<Source>, stream: u64) -> Batcher {
        Batcher {
            source_name,
            source,
            stream,
            peer: None,
            records: Vec::new(),
            bytes: 0,
            first_at: None,
        }
    }

    pub fn push(&mut self, r: RawRecord) {
        self.first_at.get_or_insert_with(Instant::now);
        self.bytes += r.bytes.len();
        self.records.push(r);
    }

    pub fn is_full(&self) -> bool {
        self.records.len() >= BATCH_RECORDS || self.bytes >= BATCH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// When the batch must be sent.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|t| t + BATCH_WAIT)
    }

    /// The batch to send and the bytes of its records, leaving this one
    /// empty.
    pub fn take(&mut self, end_of_stream: bool) -> (SourceBatch, usize) {
        let records = std::mem::take(&mut self.records);
        let bytes = std::mem::take(&mut self.bytes);
        self.first_at = None;
        let batch = SourceBatch {
            source_name: self.source_name.clone(),
            source: self.source.clone(),
            stream: self.stream,
            records,
            ack: Ack::none(),
            end_of_stream,
        };
        (batch, bytes)
    }
}

/// Counts records handed to the pipeline.
pub(crate) fn count_sent(source_name: &str, records: usize, bytes: usize) {
    if records == 0 {
        return;
    }
    metrics::counter!("mlsoc_source_records_total", "source" => source_name.to_string())
        .increment(records as u64);
    metrics::counter!("mlsoc_source_bytes_total", "source" => source_name.to_string())
        .increment(bytes as u64);
}

/// Lets a repeated warning through at most once per period, counting the
/// ones held back.
pub(crate) struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimit {
    pub fn new(every: Duration) -> RateLimit {
        RateLimit {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(events held back since the last warning)` when a warning may
    /// be logged now.
    pub fn hit(&mut self, events: u64) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.held += events;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held) + events)
            }
        }
    }
}

/// `Source` of one peer or connection.
pub(crate) fn source(scheme: &str, peer: SocketAddr, format: &Option<String>) -> Arc<Source> {
    Arc::new(Source {
        kind: "syslog",
        name: format!("{scheme}://{peer}"),
        format: format.clone(),
    })
}

#[cfg(test)]
mod tests;
