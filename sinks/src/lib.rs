//! # sinks
//!
//! Where mlsoc's records go: Elasticsearch (`_bulk`), Splunk HTTP Event
//! Collector, and NDJSON files or stdout.
//!
//! Every sink runs as one task that pulls [`Batch`]es from its
//! [`buffer`] (memory, or disk that survives restarts), groups them into
//! requests, retries what can be retried ([`retry`]), writes what the server
//! refuses for good to the [`dlq`] with the server's reason, and only then
//! completes the batches' [`schema::Ack`]s, so that a file checkpoint never
//! moves past a record that is not stored somewhere.
//!
//! Metrics (the `metrics` facade; the binary installs a Prometheus
//! exporter), all labelled `sink`:
//! - `mlsoc_sink_records_total{outcome="delivered|duplicate|dead_lettered"}`
//!   (`duplicate`: Elasticsearch already had the document, from an earlier
//!   attempt whose answer was lost)
//! - `mlsoc_sink_retries_total{reason}`: retried requests or items
//! - `mlsoc_sink_requests_total{status}`: HTTP status, or `error`
//! - `mlsoc_buffer_events`, `mlsoc_buffer_bytes`: gauges
//! - `mlsoc_buffer_dropped_total`: records dropped by `when_full = drop_newest`
//! - `mlsoc_buffer_corrupt_records_total`, `mlsoc_buffer_write_errors_total`:
//!   damaged frames skipped and write/fsync errors of disk buffers

pub mod buffer;
pub mod dlq;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod record;
pub mod retry;
pub mod splunk_hec;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use buffer::{BufferConfig, BufferReceiver, BufferSender, WhenFull};
pub use dlq::{DeadLetters, SinkDeadLetter};
pub use record::{Batch, Record, Stream};
pub use retry::Backoff;
use tokio_util::sync::CancellationToken;

/// Why a sink stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{sink}`: {message}")]
    Config { sink: String, message: String },
    #[error("sink `{sink}`: {source}")]
    Io {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sink `{sink}`: {message}")]
    Fatal { sink: String, message: String },
}

/// What a running sink gets besides its input.
#[derive(Clone)]
pub struct SinkContext {
    /// The sink's name in the configuration (metrics label, DLQ field).
    pub name: Arc<str>,
    /// Where records the destination refuses for good are written.
    pub dead_letters: DeadLetters,
    /// Cancelled when the process must stop now (second signal, or the
    /// drain deadline passed): stop retrying and return; records not yet
    /// delivered keep their acknowledgements unfinished, so their sources
    /// read them again after a restart. A normal shutdown does not cancel:
    /// it closes the input, and the sink delivers what it has and returns.
    pub stop: CancellationToken,
}

/// A boxed future returned by [`Sink::run`].
pub type SinkFuture = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// A destination. `run` returns when the input is closed and everything
/// received was handled, or when `ctx.stop` is cancelled.
pub trait Sink: Send + 'static {
    fn run(self: Box<Self>, input: BufferReceiver, ctx: SinkContext) -> SinkFuture;
}
