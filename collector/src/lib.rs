//! # collector
//!
//! mlsoc's sources: reading inputs into lines and records. Today: files
//! (plain or gzip, found by walking directories), stdin, line splitting with
//! a length limit that reports overflows instead of cutting silently, and
//! whole-document framing for JSON documents such as CloudTrail log files,
//! and the tailing file source with checkpoints ([`tail`]) for the streaming
//! pipeline. Syslog, HTTP (HEC) and NATS inputs come later.

pub mod batch;
pub mod file;
pub mod lines;
#[cfg(unix)]
pub mod tail;
pub mod walk;

pub use batch::SourceBatch;
pub use file::{Framing, OpenError, Opened, open};
pub use lines::{Line, LineSplitter};
#[cfg(unix)]
pub use tail::{FileCheckpoint, ReadFrom, TailConfig, TailError, TailHandle, spawn as spawn_tail};
