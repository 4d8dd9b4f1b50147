//! # collector
//!
//! mlsoc's sources: reading inputs into lines and records. Today: files
//! (plain or gzip, found by walking directories), stdin, line splitting with
//! a length limit that reports overflows instead of cutting silently, and
//! whole-document framing for JSON documents such as CloudTrail log files.
//! [`hec`] is an HTTP receiver compatible with Splunk's HTTP Event Collector.
//! The tailing file source, syslog and NATS inputs come with the streaming
//! pipeline.

pub mod batch;
pub mod file;
pub mod hec;
pub mod lines;
pub mod walk;

pub use batch::SourceBatch;
pub use file::{Framing, OpenError, Opened, open};
pub use lines::{Line, LineSplitter};
