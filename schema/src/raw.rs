//! Raw records: bytes plus where they came from, as collectors hand them to
//! the normalizer.

use std::sync::Arc;

use bytes::Bytes;

use crate::time::Timestamp;

/// Where a stream of records comes from. Shared by every record of the
/// stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// Kind of input: `file`, `stdin`, `syslog`, `http`, `nats`.
    pub kind: &'static str,
    /// Path of a file source (as given, e.g. `samples/real/mlflow/mlflow-access.log`),
    /// or a display name for other kinds (`stdin`, `udp://127.0.0.1:5514`).
    pub name: String,
    /// Format named by configuration or `--format`, bypassing detection.
    pub format: Option<String>,
}

impl Source {
    pub fn file(path: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            kind: "file",
            name: path.into(),
            format: None,
        })
    }

    pub fn stdin() -> Arc<Source> {
        Arc::new(Source {
            kind: "stdin",
            name: "stdin".into(),
            format: None,
        })
    }

    /// The path, for file sources.
    pub fn path(&self) -> Option<&str> {
        (self.kind == "file").then_some(self.name.as_str())
    }
}

/// One record as read: usually one line without its line terminator, or a
/// whole document when a file is read as one JSON document.
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub bytes: Bytes,
    pub source: Arc<Source>,
    /// Byte offset of the record's first byte in its stream (uncompressed).
    pub offset: u64,
    /// 1-based number of the record's first line.
    pub line: u64,
    /// When mlsoc read it.
    pub received: Timestamp,
    /// Set when the record was longer than the reader's limit: `bytes` then
    /// holds only the head, and this is the full length.
    pub overflow_len: Option<u64>,
}
