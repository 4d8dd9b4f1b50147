//! Dead-letter records: what could not become an event, with the reason.
//!
//! Serialized as one JSON object per line. The original bytes are kept as
//! text when they are valid UTF-8 and as base64 otherwise.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::raw::RawRecord;

/// At most this many bytes of an over-long record are kept in its
/// dead-letter record.
pub const MAX_KEPT_BYTES: usize = 64 * 1024;

/// A record that could not be normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When the record was read (and rejected).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// Input kind (`file`, `stdin`, ...).
    pub input: String,
    /// File path or input name.
    pub source: String,
    /// Byte offset of the record in its stream.
    pub offset: u64,
    /// 1-based line number of the record's first line.
    pub line: u64,
    /// Format the record was parsed as, when one was chosen.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub format: Option<String>,
    /// Why it was rejected, in words.
    pub reason: String,
    /// The original bytes when they are UTF-8 (possibly only the head, see
    /// `truncated`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub original: Option<String>,
    /// The original bytes, base64, when they are not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub original_base64: Option<String>,
    /// Length of the whole original record in bytes.
    pub original_length: u64,
    /// Only the head of the record is kept here.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub truncated: bool,
    /// Number of physical lines the record spans.
    pub lines: u64,
}

impl DeadLetter {
    /// Builds a dead-letter record for a raw record.
    pub fn new(raw: &RawRecord, format: Option<&str>, reason: impl Into<String>) -> DeadLetter {
        let bytes = &raw.bytes[..];
        let total = raw.overflow_len.unwrap_or(bytes.len() as u64);
        let mut kept = &bytes[..bytes.len().min(MAX_KEPT_BYTES)];
        let (original, original_base64) = match std::str::from_utf8(kept) {
            Ok(s) => (Some(s.to_owned()), None),
            Err(e) if e.error_len().is_none() && kept.len() < bytes.len() => {
                // The cut fell inside a UTF-8 sequence: keep the whole characters.
                kept = &kept[..e.valid_up_to()];
                (Some(String::from_utf8_lossy(kept).into_owned()), None)
            }
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(kept)),
            ),
        };
        let lines = 1 + memchr_count(b'\n', &raw.bytes) as u64;
        DeadLetter {
            timestamp: raw.received.to_rfc3339(),
            input: raw.source.kind.to_string(),
            source: raw.source.name.clone(),
            offset: raw.offset,
            line: raw.line,
            format: format.map(str::to_owned),
            reason: reason.into(),
            original,
            original_base64,
            original_length: total,
            truncated: (kept.len() as u64) < total,
            lines,
        }
    }

    /// The original bytes as kept here.
    pub fn original_bytes(&self) -> Vec<u8> {
        match (&self.original, &self.original_base64) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    /// One line of JSON (no newline).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).expect("DeadLetter serializes")
    }
}

fn memchr_count(needle: u8, hay: &[u8]) -> usize {
    hay.iter().filter(|&&b| b == needle).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::Source;
    use crate::time::Timestamp;
    use bytes::Bytes;

    fn raw(bytes: &[u8], overflow: Option<u64>) -> RawRecord {
        RawRecord {
            bytes: Bytes::copy_from_slice(bytes),
            source: Source::file("x.log"),
            offset: 10,
            line: 2,
            received: Timestamp(0),
            overflow_len: overflow,
        }
    }

    #[test]
    fn utf8_kept_as_text() {
        let d = DeadLetter::new(&raw(b"hello", None), Some("json"), "truncated JSON");
        assert_eq!(d.original.as_deref(), Some("hello"));
        assert_eq!(d.original_base64, None);
        assert!(!d.truncated);
        let back: DeadLetter = serde_json::from_str(&d.to_json_string()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn binary_kept_as_base64() {
        let d = DeadLetter::new(&raw(b"\xff\xfe\x00a", None), None, "invalid UTF-8");
        assert_eq!(d.original, None);
        assert_eq!(d.original_bytes(), b"\xff\xfe\x00a");
    }

    #[test]
    fn overflow_keeps_head_and_length() {
        let head = "é".repeat(MAX_KEPT_BYTES); // 2 bytes a char
        let d = DeadLetter::new(&raw(head.as_bytes(), Some(10_000_000)), None, "too long");
        assert!(d.truncated);
        assert_eq!(d.original_length, 10_000_000);
        let kept = d.original.unwrap();
        assert!(kept.len() <= MAX_KEPT_BYTES && kept.chars().all(|c| c == 'é'));
    }
}
