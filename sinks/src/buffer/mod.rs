//! The buffer in front of each sink: where batches wait while the sink is
//! busy or its destination is down.
//!
//! - `memory` (default): up to `max_events` records; lost if the process
//!   dies, but their acknowledgements are still pending then, so file
//!   sources read them again.
//! - `disk`: up to `max_size` bytes in segment files under the sink's data
//!   directory; survives restarts, and sources are acknowledged once a
//!   batch is fsynced there (see [`disk`]).
//! - When full, `when_full = "block"` (default) makes the pipeline wait,
//!   which slows the sources (backpressure); `drop_newest` drops the batch
//!   being added, counts it in `mlsoc_buffer_dropped_total` and logs a
//!   warning (for sinks that must never slow the others).

pub mod disk;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::record::Batch;

/// What to do with a batch when the buffer is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (backpressure to the sources). Nothing is lost.
    #[default]
    Block,
    /// Drop the new batch, count it and warn. Its acknowledgements complete
    /// as delivered: the operator chose to lose data rather than wait.
    DropNewest,
}

/// A sink's buffer, as configured (`[sinks.NAME.buffer]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BufferConfig {
    Memory {
        #[serde(default = "default_max_events")]
        max_events: usize,
        /// Bytes of records held (documents and their metadata), so that
        /// large documents (Kubernetes audit events, alerts) do not make
        /// `max_events` worth hundreds of megabytes. A batch larger than
        /// this passes alone.
        #[serde(default = "default_max_bytes")]
        max_bytes: bytesize::ByteSize,
        #[serde(default)]
        when_full: WhenFull,
    },
    /// Segment files in the sink's directory (`<data_dir>/<sink>/`).
    Disk {
        /// Most bytes of records written and not yet acknowledged by the
        /// sink (at least 1 MiB; Vector suggests 256 MiB and more).
        max_size: ByteSize,
        #[serde(default)]
        when_full: WhenFull,
        /// Unset (default): fsync after every group of writes, and
        /// acknowledge the sources right after (group commit: several
        /// batches share one fsync under load). Set (`"500ms"`): fsync at
        /// most this often; fewer fsyncs, acknowledgements come later.
        #[serde(
            default,
            with = "humantime_serde",
            skip_serializing_if = "Option::is_none"
        )]
        fsync_interval: Option<Duration>,
    },
}

fn default_max_bytes() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(16)
}

fn default_max_events() -> usize {
    10_000
}

impl Default for BufferConfig {
    fn default() -> BufferConfig {
        BufferConfig::Memory {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            when_full: WhenFull::Block,
        }
    }
}

/// Why a buffer could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("buffer of sink `{sink}`: {message}")]
    Invalid { sink: String, message: String },
    #[error("buffer of sink `{sink}` in {path}: {source}")]
    Io {
        sink: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The buffer's input closed: the sink is gone.
#[derive(Debug, thiserror::Error)]
#[error("sink `{0}` is no longer running")]
pub struct Closed(pub Arc<str>);

/// Opens the buffer of sink `sink`. `data_dir` is the sink's own directory
/// under the configured data directory (used by disk buffers).
pub fn open(
    config: &BufferConfig,
    sink: &str,
    data_dir: &std::path::Path,
) -> Result<(BufferSender, BufferReceiver), BufferError> {
    let name: Arc<str> = sink.into();
    match config {
        BufferConfig::Memory {
            max_events,
            max_bytes,
            when_full,
        } => {
            if *max_events == 0 || max_bytes.as_u64() < 1024 {
                return Err(BufferError::Invalid {
                    sink: sink.into(),
                    message: "max_events must be at least 1 and max_bytes at least 1KiB".into(),
                });
            }
            let (tx, rx) =
                memory::channel(name.clone(), *max_events, max_bytes.as_u64(), *when_full);
            Ok((
                BufferSender {
                    inner: SenderKind::Memory(tx),
                },
                BufferReceiver {
                    inner: ReceiverKind::Memory(rx),
                },
            ))
        }
        BufferConfig::Disk {
            max_size,
            when_full,
            fsync_interval,
        } => {
            let opts = disk::Options {
                max_size: max_size.as_u64(),
                when_full: *when_full,
                fsync_interval: *fsync_interval,
            };
            let (tx, rx) = disk::open(name, data_dir, opts, disk::Tuning::default())?;
            Ok((
                BufferSender {
                    inner: SenderKind::Disk(tx),
                },
                BufferReceiver {
                    inner: ReceiverKind::Disk(rx),
                },
            ))
        }
    }
}

/// The pipeline's end of a buffer. Cheap to clone.
#[derive(Clone)]
pub struct BufferSender {
    inner: SenderKind,
}

#[derive(Clone)]
enum SenderKind {
    Memory(memory::Sender),
    Disk(disk::Sender),
}

impl BufferSender {
    /// Adds a batch, waiting for room when the buffer blocks. A disk buffer
    /// returns once the batch is queued for writing and completes the
    /// batch's acks after the fsync that makes it durable.
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        match &self.inner {
            SenderKind::Memory(s) => s.send(batch).await,
            SenderKind::Disk(s) => s.send(batch).await,
        }
    }
}

/// The sink's end of a buffer.
pub struct BufferReceiver {
    inner: ReceiverKind,
}

enum ReceiverKind {
    Memory(memory::Receiver),
    Disk(disk::Receiver),
}

impl BufferReceiver {
    /// The next batch; `None` once every sender is gone and the buffer is
    /// empty.
    pub async fn recv(&mut self) -> Option<Batch> {
        match &mut self.inner {
            ReceiverKind::Memory(r) => r.recv().await,
            ReceiverKind::Disk(r) => r.recv().await,
        }
    }

    /// A batch if one is ready now.
    pub fn try_recv(&mut self) -> Option<Batch> {
        match &mut self.inner {
            ReceiverKind::Memory(r) => r.try_recv(),
            ReceiverKind::Disk(r) => r.try_recv(),
        }
    }
}
