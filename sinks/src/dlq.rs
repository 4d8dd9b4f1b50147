//! The sinks' dead-letter queue: records a destination refused for good
//! (an Elasticsearch mapping error, a Splunk "invalid data format"), or
//! whose retries ran out, written as NDJSON with the destination's reason
//! and the whole document, so nothing leaves the pipeline unseen and an
//! operator can fix and replay them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::record::{Record, Stream};

/// One refused record.
#[derive(Debug, Serialize)]
pub struct SinkDeadLetter {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// The sink that refused it.
    pub sink: String,
    pub stream: Stream,
    pub id: String,
    pub source: String,
    /// The destination's reason in its own words (`mapper_parsing_exception:
    /// failed to parse field [http.response.status_code]`), or why mlsoc
    /// gave up.
    pub reason: String,
    /// HTTP status of the item or request, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The document as it was sent.
    pub document: Box<RawValue>,
}

impl SinkDeadLetter {
    /// A dead letter for `record`.
    pub fn new(sink: &str, record: &Record, reason: String, status: Option<u16>) -> SinkDeadLetter {
        let document = std::str::from_utf8(&record.doc)
            .ok()
            .and_then(|s| RawValue::from_string(s.to_owned()).ok())
            .unwrap_or_else(|| {
                // Documents are serialized by mlsoc and always valid JSON;
                // keep the bytes readable if that ever fails.
                let text = String::from_utf8_lossy(&record.doc);
                RawValue::from_string(serde_json::Value::from(text.as_ref()).to_string())
                    .expect("a JSON string is valid JSON")
            });
        SinkDeadLetter {
            timestamp: schema::Timestamp::now().to_rfc3339(),
            sink: sink.to_owned(),
            stream: record.stream,
            id: record.id.to_string(),
            source: record.source.to_string(),
            reason,
            status,
            document,
        }
    }
}

/// A shared dead-letter file (NDJSON, appended). Cheap to clone.
#[derive(Clone)]
pub struct DeadLetters {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    file: Option<std::fs::File>,
    written: u64,
}

impl DeadLetters {
    /// Dead letters appended to `path` (created with its directory on the
    /// first write).
    pub fn file(path: impl Into<PathBuf>) -> DeadLetters {
        DeadLetters {
            inner: Arc::new(Mutex::new(Inner {
                path: path.into(),
                file: None,
                written: 0,
            })),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Records written by this process.
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `letters` and returns once the bytes are in the file (the
    /// operating system has them: they survive the process being killed).
    /// Runs on a blocking thread.
    pub async fn write(&self, letters: Vec<SinkDeadLetter>) -> std::io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(&letters))
            .await
            .map_err(std::io::Error::other)?
    }

    /// [`DeadLetters::write`] for synchronous callers.
    pub fn write_blocking(&self, letters: &[SinkDeadLetter]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(letters.len() * 256);
        for l in letters {
            serde_json::to_writer(&mut buf, l).map_err(std::io::Error::other)?;
            buf.push(b'\n');
        }
        let mut inner = self.lock();
        if inner.file.is_none() {
            inner.file = Some(open_append(&inner.path)?);
        }
        inner.file.as_mut().expect("opened above").write_all(&buf)?;
        inner.written += letters.len() as u64;
        metrics::counter!("mlsoc_dead_letters_total", "stage" => "sink")
            .increment(letters.len() as u64);
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(doc: &str) -> Record {
        Record {
            stream: Stream::Events,
            doc: Bytes::from(doc.to_owned()),
            dataset: "mlflow.access".into(),
            time_ns: None,
            host: None,
            source: "a.log".into(),
            id: "id-1".into(),
        }
    }

    #[tokio::test]
    async fn appends_reason_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::file(dir.path().join("sub/dlq.ndjson"));
        let r = record(r#"{"a":1}"#);
        dl.write(vec![SinkDeadLetter::new(
            "es",
            &r,
            "mapper_parsing_exception: bad".into(),
            Some(400),
        )])
        .await
        .unwrap();
        dl.write(vec![SinkDeadLetter::new("es", &r, "again".into(), None)])
            .await
            .unwrap();
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["document"]["a"], 1);
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["reason"], "mapper_parsing_exception: bad");
        assert_eq!(lines[1].get("status"), None);
        assert_eq!(dl.written(), 2);
    }
}
