//! # schema
//!
//! mlsoc's data model, shared by every other crate:
//!
//! - [`Event`]: one normalized record, an Elastic Common Schema (ECS)
//!   document with ML facts under `mlops.*`, readable by dotted path
//!   (`source.ip`, `http.response.status_code`) without string comparisons
//!   for registered fields;
//! - [`field`]: the registry of ECS 9.4 fields and mlsoc's own, with types;
//! - [`RawRecord`] / [`Source`]: bytes as collectors read them and where they
//!   came from;
//! - [`DeadLetter`]: a record that could not be normalized, with the reason;
//! - [`Timestamp`]: UTC nanoseconds with fast RFC 3339 reading and writing;
//! - [`Ack`]: end-to-end acknowledgement of a batch, from the sinks back to
//!   the source that read it.

pub mod ack;
pub mod dlq;
pub mod event;
pub mod field;
pub mod json;
pub mod raw;
pub mod rawjson;
pub mod text;
pub mod time;
pub mod value;

pub use ack::{Ack, AckStatus};
pub use dlq::DeadLetter;
pub use event::{Event, TAG_TIMESTAMP_INFERRED};
pub use field::{FieldDef, FieldId, FieldKey, FieldType, f};
pub use raw::{RawRecord, Source};
pub use time::Timestamp;
pub use value::{Str, Value};
