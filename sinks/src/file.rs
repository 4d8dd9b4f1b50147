//! NDJSON file or stdout sink: one document per line.
//!
//! `path` may name the stream and dataset (`out/{stream}/{dataset}.ndjson`)
//! so events, alerts and dead letters, or each dataset, get their own file.
//! A batch is acknowledged once its bytes are written to the file (they
//! survive the process being killed), and after an `fsync` when `fsync =
//! true` (they survive the machine losing power). Write errors (a full
//! disk) are retried with backoff and never drop records.

use std::collections::HashMap;
use std::io::{IoSlice, Write};
use std::path::PathBuf;

use schema::AckStatus;
use serde::{Deserialize, Serialize};

use crate::buffer::BufferReceiver;
use crate::record::{Batch, Record};
use crate::retry::Backoff;
use crate::{Sink, SinkContext, SinkError, SinkFuture};

/// `type = "file"` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File to append to, `-` for stdout. `{stream}` and `{dataset}` are
    /// replaced per record.
    pub path: String,
    /// `fsync` each batch before acknowledging it.
    #[serde(default)]
    pub fsync: bool,
    /// Most records written per write call.
    #[serde(default = "default_batch")]
    pub max_batch_events: usize,
    #[serde(default)]
    pub retry: Backoff,
}

fn default_batch() -> usize {
    4096
}

impl FileSinkConfig {
    pub fn new(path: impl Into<String>) -> FileSinkConfig {
        FileSinkConfig {
            path: path.into(),
            fsync: false,
            max_batch_events: default_batch(),
            retry: Backoff::default(),
        }
    }
}

/// The sink.
pub struct FileSink {
    config: FileSinkConfig,
}

impl FileSink {
    pub fn new(config: FileSinkConfig) -> Result<FileSink, String> {
        if config.path.is_empty() {
            return Err("path must not be empty".into());
        }
        if config.max_batch_events == 0 {
            return Err("max_batch_events must be at least 1".into());
        }
        Ok(FileSink { config })
    }
}

impl Sink for FileSink {
    fn run(self: Box<Self>, input: BufferReceiver, ctx: SinkContext) -> SinkFuture {
        Box::pin(run(self.config, input, ctx))
    }
}

struct Writer {
    template: String,
    fsync: bool,
    files: HashMap<PathBuf, std::fs::File>,
}

impl Writer {
    /// The file of records of `stream` and `dataset`.
    fn path_of(&self, stream: crate::record::Stream, dataset: &str) -> PathBuf {
        PathBuf::from(
            self.template
                .replace("{stream}", stream.as_str())
                .replace("{dataset}", &sanitize(dataset)),
        )
    }

    /// Writes the records, each followed by a newline, with vectored
    /// writes straight from the records' buffers (no copy into one big
    /// buffer first).
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        if self.template == "-" {
            let mut out = std::io::stdout().lock();
            write_lines(&mut out, records.iter())?;
            return out.flush();
        }
        // Records of one stream and dataset share a file: the path is
        // worked out once per group, not per record.
        let templated = self.template.contains('{');
        let mut groups: Vec<((crate::record::Stream, &str), Vec<&Record>)> = Vec::new();
        for r in records {
            let key = if templated {
                (r.stream, &*r.dataset)
            } else {
                (crate::record::Stream::Events, "")
            };
            // Few groups per batch (streams x datasets): a linear search
            // beats hashing, and keeps the files' order stable.
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        for ((stream, dataset), group) in groups {
            let path = if templated {
                self.path_of(stream, dataset)
            } else {
                PathBuf::from(&self.template)
            };
            let f = match self.files.entry(path) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    if let Some(dir) = v.key().parent()
                        && !dir.as_os_str().is_empty()
                    {
                        std::fs::create_dir_all(dir)?;
                    }
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(v.key())?;
                    v.insert(f)
                }
            };
            write_lines(f, group.into_iter())?;
            if self.fsync {
                f.sync_data()?;
            }
        }
        Ok(())
    }
}

/// Writes each record's document and a newline, up to `MAX_IOV` slices per
/// `writev`, resuming after short writes.
fn write_lines<'r>(
    out: &mut impl Write,
    records: impl Iterator<Item = &'r Record>,
) -> std::io::Result<()> {
    /// Linux's IOV_MAX is 1024.
    const MAX_IOV: usize = 1024;
    let mut slices: Vec<IoSlice<'r>> = Vec::with_capacity(MAX_IOV);
    for r in records {
        slices.push(IoSlice::new(&r.doc));
        slices.push(IoSlice::new(b"\n"));
        if slices.len() >= MAX_IOV {
            write_all_vectored(out, &mut slices)?;
            slices.clear();
        }
    }
    write_all_vectored(out, &mut slices)
}

/// `Write::write_all_vectored` (unstable in std): writes every slice,
/// resuming after short writes and interruptions.
fn write_all_vectored(out: &mut impl Write, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ));
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Dataset names come from configuration and from detection; keep them to
/// safe file-name characters so a record can never choose a path.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        "_".into()
    } else {
        out
    }
}

async fn run(
    config: FileSinkConfig,
    mut input: BufferReceiver,
    ctx: SinkContext,
) -> Result<(), SinkError> {
    let mut writer = Some(Writer {
        template: config.path.clone(),
        fsync: config.fsync,
        files: HashMap::new(),
    });
    let name = ctx.name.to_string();
    loop {
        let first = tokio::select! {
            b = input.recv() => b,
            _ = ctx.stop.cancelled() => return Ok(()),
        };
        let Some(mut batch) = first else { break };
        while batch.len() < config.max_batch_events {
            match input.try_recv() {
                Some(more) => batch.append(more),
                None => break,
            }
        }
        let Batch { records, acks } = batch;
        let mut attempt = 0u32;
        let records = std::sync::Arc::new(records);
        loop {
            let mut w = writer.take().expect("writer is put back after every write");
            let recs = records.clone();
            let (w, res) = tokio::task::spawn_blocking(move || {
                let res = w.write(&recs);
                (w, res)
            })
            .await
            .map_err(|e| SinkError::Fatal {
                sink: name.clone(),
                message: format!("writer thread failed: {e}"),
            })?;
            writer = Some(w);
            match res {
                Ok(()) => break,
                Err(e) => {
                    attempt += 1;
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => "io").increment(1);
                    let delay = config.retry.delay(attempt);
                    tracing::error!(sink = %name, error = %e, retry_in = ?delay, "write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = ctx.stop.cancelled() => return Ok(()),
                    }
                }
            }
        }
        metrics::counter!("mlsoc_sink_records_total", "sink" => name.clone(), "outcome" => "delivered")
            .increment(records.len() as u64);
        schema::Ack::complete_all(acks, AckStatus::Delivered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::{self, BufferConfig};
    use crate::record::Stream;
    use crate::{DeadLetters, Sink};
    use bytes::Bytes;
    use schema::Ack;
    use tokio_util::sync::CancellationToken;

    fn rec(stream: Stream, dataset: &str, doc: &str) -> Record {
        Record {
            stream,
            doc: Bytes::from(doc.to_owned()),
            dataset: dataset.into(),
            time_ns: None,
            host: None,
            source: "s".into(),
            id: "i".into(),
        }
    }

    #[tokio::test]
    async fn writes_by_stream_and_dataset_then_acks() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("{stream}/{dataset}.ndjson");
        let sink = FileSink::new(FileSinkConfig::new(template.to_str().unwrap())).unwrap();
        let (tx, rx) = buffer::open(&BufferConfig::default(), "f", dir.path()).unwrap();
        let ctx = SinkContext {
            name: "f".into(),
            dead_letters: DeadLetters::file(dir.path().join("dlq.ndjson")),
            stop: CancellationToken::new(),
        };
        let task = tokio::spawn(Box::new(sink).run(rx, ctx));
        let (stx, srx) = std::sync::mpsc::channel();
        let ack = Ack::new(move |s| stx.send(s).unwrap());
        tx.send(Batch::new(
            vec![
                rec(Stream::Events, "mlflow.access", r#"{"n":1}"#),
                rec(Stream::Alerts, "mlsoc.alert", r#"{"n":2}"#),
                rec(Stream::Events, "../../etc/passwd", r#"{"n":3}"#),
            ],
            ack,
        ))
        .await
        .unwrap();
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(srx.recv().unwrap(), AckStatus::Delivered);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("events/mlflow.access.ndjson"), "{\"n\":1}\n");
        assert_eq!(read("alerts/mlsoc.alert.ndjson"), "{\"n\":2}\n");
        // A hostile dataset name stays inside the directory.
        assert_eq!(read("events/.._.._etc_passwd.ndjson"), "{\"n\":3}\n");
    }

    /// A writer that takes at most 7 bytes per call, of its first slice
    /// only, and is interrupted every third call: every record must still
    /// come out whole, in order, each on its own line.
    #[test]
    fn vectored_writes_resume_after_short_writes() {
        struct Stingy {
            out: Vec<u8>,
            calls: usize,
        }
        impl Write for Stingy {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.calls += 1;
                if self.calls.is_multiple_of(3) {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                let n = buf.len().min(7);
                self.out.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // More records than one writev takes (1024 slices = 512 records).
        let records: Vec<Record> = (0..1500)
            .map(|i| {
                rec(
                    Stream::Events,
                    "d",
                    &format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 13)),
                )
            })
            .collect();
        let mut w = Stingy {
            out: Vec::new(),
            calls: 0,
        };
        write_lines(&mut w, records.iter()).unwrap();
        let text = String::from_utf8(w.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), records.len());
        for (line, r) in lines.iter().zip(&records) {
            assert_eq!(line.as_bytes(), &r.doc[..]);
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn sanitize_keeps_names_in_their_directory() {
        assert_eq!(sanitize("a/b"), "a_b");
        assert_eq!(sanitize(".."), "_");
        assert_eq!(sanitize(""), "_");
        assert_eq!(sanitize("mlflow.access"), "mlflow.access");
    }
}
