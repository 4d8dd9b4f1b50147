//! The unit sinks handle: a serialized document with the metadata every
//! destination needs to place it (index, time, host, source, id).

use std::sync::Arc;

use bytes::Bytes;
use schema::Ack;
use serde::{Deserialize, Serialize};

/// Which output of the pipeline a record belongs to. Sinks choose theirs
/// with `inputs` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Normalized events.
    Events,
    /// Rule matches.
    Alerts,
    /// Records the normalizer could not turn into events.
    DeadLetters,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::Alerts => "alerts",
            Stream::DeadLetters => "dead_letters",
        }
    }
}

/// One document on its way out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub stream: Stream,
    /// The document: one JSON object, serialized once, no trailing newline.
    #[serde(with = "bytes_as_str")]
    pub doc: Bytes,
    /// `event.dataset` of an event (`mlflow.access`); `mlsoc.alert` for
    /// alerts and `mlsoc.dead_letter` for dead letters.
    pub dataset: Arc<str>,
    /// `@timestamp` in nanoseconds since the epoch, when known.
    pub time_ns: Option<i64>,
    /// `host.name`, when known.
    pub host: Option<Arc<str>>,
    /// Where the record was read (file path, `syslog+tcp://…`, `stdin`).
    pub source: Arc<str>,
    /// Stable identity: the same input record gets the same id after a
    /// restart, so a destination can drop the duplicates that at-least-once
    /// delivery sends (Elasticsearch `_id` with `create`).
    pub id: Arc<str>,
}

impl Record {
    /// Size counted against batch and buffer limits.
    pub fn size(&self) -> usize {
        self.doc.len() + self.id.len() + self.dataset.len() + 64
    }
}

/// Records travelling together, with the acknowledgements of the source
/// batches they came from. A sink completes the acks once every record is
/// delivered or dead-lettered.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub acks: Vec<Ack>,
}

impl Batch {
    pub fn new(records: Vec<Record>, ack: Ack) -> Batch {
        Batch {
            records,
            acks: vec![ack],
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes counted against buffer limits.
    pub fn size(&self) -> usize {
        self.records.iter().map(Record::size).sum()
    }

    /// Appends another batch (records and acks).
    pub fn append(&mut self, mut other: Batch) {
        self.records.append(&mut other.records);
        self.acks.append(&mut other.acks);
    }

    /// Completes every ack of the batch.
    pub fn complete(self, status: schema::AckStatus) {
        Ack::complete_all(self.acks, status);
    }
}

mod bytes_as_str {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(b) {
            Ok(t) => s.serialize_str(t),
            Err(_) => s.serialize_bytes(b),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Bytes::from(s))
    }
}
