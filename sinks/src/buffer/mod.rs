//! The buffer in front of each sink: where batches wait while the sink is
//! busy or its destination is down.
//!
//! - `memory` (default): up to `max_events` records; lost if the process
//!   dies, but their acknowledgements are still pending then, so file
//!   sources read them again.
//! - When full, `when_full = "block"` (default) makes the pipeline wait,
//!   which slows the sources (backpressure); `drop_newest` drops the batch
//!   being added, counts it in `mlsoc_buffer_dropped_total` and logs a
//!   warning (for sinks that must never slow the others).

pub mod memory;

use std::sync::Arc;

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
        #[serde(default)]
        when_full: WhenFull,
    },
}

fn default_max_events() -> usize {
    10_000
}

impl Default for BufferConfig {
    fn default() -> BufferConfig {
        BufferConfig::Memory {
            max_events: default_max_events(),
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
    _data_dir: &std::path::Path,
) -> Result<(BufferSender, BufferReceiver), BufferError> {
    let name: Arc<str> = sink.into();
    match config {
        BufferConfig::Memory {
            max_events,
            when_full,
        } => {
            if *max_events == 0 {
                return Err(BufferError::Invalid {
                    sink: sink.into(),
                    message: "max_events must be at least 1".into(),
                });
            }
            let (tx, rx) = memory::channel(name.clone(), *max_events, *when_full);
            Ok((
                BufferSender {
                    inner: SenderKind::Memory(tx),
                },
                BufferReceiver {
                    inner: ReceiverKind::Memory(rx),
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
}

impl BufferSender {
    /// Adds a batch, waiting for room when the buffer blocks.
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        match &self.inner {
            SenderKind::Memory(s) => s.send(batch).await,
        }
    }
}

/// The sink's end of a buffer.
pub struct BufferReceiver {
    inner: ReceiverKind,
}

enum ReceiverKind {
    Memory(memory::Receiver),
}

impl BufferReceiver {
    /// The next batch; `None` once every sender is gone and the buffer is
    /// empty.
    pub async fn recv(&mut self) -> Option<Batch> {
        match &mut self.inner {
            ReceiverKind::Memory(r) => r.recv().await,
        }
    }

    /// A batch if one is ready now.
    pub fn try_recv(&mut self) -> Option<Batch> {
        match &mut self.inner {
            ReceiverKind::Memory(r) => r.try_recv(),
        }
    }
}
