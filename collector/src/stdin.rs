//! Standard input as a streaming source: one record per line, batched
//! while lines are already buffered and sent as soon as reading would
//! block, so an interactive or slow writer sees its lines processed at once.
//! Standard input cannot be read again, so its batches carry
//! [`Ack::none`]: delivery is at-most-once across a crash, and mlsoc says so
//! when it starts.

use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;

use schema::{Ack, RawRecord, Source, Timestamp};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::SourceBatch;
use crate::lines::LineSplitter;

/// `type = "stdin"` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// Parse every line with this format instead of detecting it.
    #[serde(default)]
    pub format: Option<String>,
    /// Longest line kept whole; longer ones keep their head and are
    /// dead-lettered by the normalizer.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    /// Most lines per batch.
    #[serde(default = "default_batch")]
    pub batch_max_records: usize,
}

fn default_max_line() -> usize {
    1024 * 1024
}

fn default_batch() -> usize {
    1000
}

/// Reads `input` (standard input in production) on its own thread until its
/// end, `stop`, or the pipeline going away. Returns the thread's handle; the
/// thread's result is the number of lines read.
pub fn spawn(
    name: Arc<str>,
    config: StdinConfig,
    input: impl Read + Send + 'static,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<std::io::Result<u64>>> {
    std::thread::Builder::new()
        .name(format!("source-{name}"))
        .spawn(move || read(name, config, input, out, stop))
}

fn read(
    name: Arc<str>,
    config: StdinConfig,
    input: impl Read,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
) -> std::io::Result<u64> {
    let source = Arc::new(Source {
        kind: "stdin",
        name: "stdin".into(),
        format: config.format.clone(),
    });
    let mut lines = LineSplitter::new(input, config.max_line_bytes);
    let mut batch = Vec::new();
    let mut total = 0u64;
    let send = |records: Vec<RawRecord>, end: bool| -> bool {
        metrics::counter!("mlsoc_source_records_total", "source" => name.to_string())
            .increment(records.len() as u64);
        out.blocking_send(SourceBatch {
            source_name: name.clone(),
            source: source.clone(),
            stream: 0,
            records,
            ack: Ack::none(),
            end_of_stream: end,
        })
        .is_ok()
    };
    loop {
        if stop.is_cancelled() {
            break;
        }
        if !batch.is_empty()
            && (!lines.has_buffered() || batch.len() >= config.batch_max_records.max(1))
            && !send(std::mem::take(&mut batch), false)
        {
            return Ok(total);
        }
        match lines.next_line()? {
            Some(l) => {
                total += 1;
                metrics::counter!("mlsoc_source_bytes_total", "source" => name.to_string())
                    .increment(l.overflow_len.unwrap_or(l.bytes.len() as u64) + 1);
                batch.push(RawRecord {
                    bytes: l.bytes,
                    source: source.clone(),
                    offset: l.offset,
                    line: l.number,
                    received: Timestamp::now(),
                    overflow_len: l.overflow_len,
                });
            }
            None => break,
        }
    }
    send(batch, true);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_in_batches_and_ends_the_stream() {
        let (tx, mut rx) = mpsc::channel(16);
        let input = std::io::Cursor::new(b"a\nb\r\nlong-line-here\nlast".to_vec());
        let cfg = StdinConfig {
            format: Some("json".into()),
            max_line_bytes: 8,
            batch_max_records: 2,
        };
        let h = spawn("in".into(), cfg, input, tx, CancellationToken::new()).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), 4);
        let mut got = Vec::new();
        let mut ended = false;
        while let Ok(b) = rx.try_recv() {
            assert!(!ended, "nothing after the end of the stream");
            assert!(b.records.len() <= 2);
            assert_eq!(b.source.format.as_deref(), Some("json"));
            ended = b.end_of_stream;
            got.extend(b.records);
        }
        assert!(ended);
        let texts: Vec<&[u8]> = got.iter().map(|r| &r.bytes[..]).collect();
        assert_eq!(texts, [&b"a"[..], b"b", b"long-lin", b"last"]);
        assert_eq!(got[2].overflow_len, Some(14));
        assert_eq!(got[3].line, 4);
    }
}
