//! # collector
//!
//! mlsoc's sources: reading inputs into lines and records. Today: files
//! (plain or gzip, found by walking directories), stdin, line splitting with
//! a length limit that reports overflows instead of cutting silently,
//! whole-document framing for JSON documents such as CloudTrail log files,
//! and the streaming sources that hand [`SourceBatch`]es to the pipeline:
//! the tailing file source with checkpoints ([`tail`]), [`stdin`], the
//! [`syslog`] network sources (UDP, TCP with RFC 6587 framing, TLS with
//! optional client certificates) and [`hec`], an HTTP receiver compatible
//! with Splunk's HTTP Event Collector.

pub mod batch;
pub mod file;
pub mod hec;
pub mod lines;
pub mod stdin;
pub mod syslog;
#[cfg(unix)]
pub mod tail;
pub mod walk;

pub use batch::SourceBatch;
pub use file::{Framing, OpenError, Opened, open};
pub use lines::{Line, LineSplitter};
#[cfg(unix)]
pub use tail::{FileCheckpoint, ReadFrom, TailConfig, TailError, TailHandle, spawn as spawn_tail};
