//! # normalizer
//!
//! Turns raw log records into ECS events: one format definition per log
//! format (MLflow, Jupyter, Ray, TorchServe, Kubernetes audit, CloudTrail,
//! MinIO, web access logs, syslog, JSON lines, ...), automatic format
//! detection, multi-line grouping (tracebacks), and a dead-letter record with
//! a reason for every record that cannot become an event.
//!
//! Formats are data: each is a [`spec::FormatSpec`] written in TOML (the
//! built-in ones are in `src/formats/*.toml`), compiled into dissect
//! patterns, regexes or JSON mappings plus named enrichment steps. Teams add
//! formats for components mlsoc does not know with the same language,
//! without recompiling.
//!
//! ```
//! use normalizer::{Normalizer, Options, Output, Registry};
//! use schema::{RawRecord, Source, Timestamp};
//!
//! let norm = Normalizer::new(Registry::builtin(), Options::default());
//! let mut stream = norm.stream(Source::file("mlflow-access.log"), None);
//! let mut out = Vec::new();
//! let line = r#"2026/11/30 00:30:56 INFO:     127.0.0.1:54658 - "GET /get-artifact?path=../../etc/passwd&run_uuid=2b HTTP/1.1" 400 Bad Request"#;
//! stream.push(RawRecord {
//!     bytes: line.as_bytes().to_vec().into(),
//!     source: Source::file("mlflow-access.log"),
//!     offset: 0,
//!     line: 1,
//!     received: Timestamp::now(),
//!     overflow_len: None,
//! }, &mut out);
//! stream.finish(&mut out);
//! let Output::Event(ev) = &out[0] else { panic!() };
//! assert_eq!(ev.dataset(), Some("mlflow.access"));
//! assert_eq!(ev.get("mlops.artifact.path").and_then(|v| v.as_str()), Some("../../etc/passwd"));
//! ```

pub mod ansi;
pub mod convert;
pub mod detect;
pub mod dissect;
pub mod format;
pub mod formats;
pub mod multiline;
pub mod scan;
pub mod spec;
pub mod steps;
pub mod stream;
pub mod timestamp;

pub use format::{Format, FormatError, Registry};
pub use stream::{Normalizer, Options, Output, Stream, TAG_TIMESTAMP_INFERRED};
pub use timestamp::Zone;
