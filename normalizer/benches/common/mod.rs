//! The inputs of the format benchmark (`benches/formats.rs`), shared with
//! `examples/profile_format.rs` and `examples/profile_serialize.rs`: the
//! cases, the generator and the loops. Each of them uses part of it.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use normalizer::{Normalizer, Output};
use schema::{Event, RawRecord, Source, Timestamp};

/// The benchmark cases: (name, format, sample files, vary the client
/// port of each repetition).
pub const CASES: &[(&str, &str, &[&str], bool)] = &[
    (
        "access/mlflow.uvicorn_access",
        "mlflow.uvicorn_access",
        &["real/mlflow/mlflow-access.log"],
        true,
    ),
    (
        "access/mlflow.gunicorn_access",
        "mlflow.gunicorn_access",
        &["real/mlflow-auth/mlflow-auth-access.log"],
        true,
    ),
    (
        "access/torchserve.access",
        "torchserve.access",
        &["real/torchserve/access_log.log"],
        true,
    ),
    ("access/moto", "moto", &["real/moto/moto-server.log"], true),
    (
        "access/combined",
        "combined",
        &["handwritten/nginx/access.log"],
        true,
    ),
    (
        "access/nginx.ingress",
        "nginx.ingress",
        &["handwritten/nginx/ingress.log"],
        false,
    ),
    (
        "log/jupyter.server",
        "jupyter.server",
        &["real/jupyter/jupyter-server-debug.log"],
        false,
    ),
    (
        "log/ray.log",
        "ray.log",
        &["real/ray/ray-dashboard.log"],
        false,
    ),
    (
        "log/torchserve.log",
        "torchserve.log",
        &["real/torchserve/ts_log.log"],
        false,
    ),
    (
        "json/kubernetes.audit",
        "kubernetes.audit",
        &["handwritten/kubernetes/audit.log"],
        false,
    ),
    (
        "json/aws.cloudtrail",
        "aws.cloudtrail",
        &["handwritten/cloudtrail/events.ndjson"],
        false,
    ),
    (
        "json/minio.audit",
        "minio.audit",
        &["handwritten/minio/audit.log"],
        false,
    ),
    (
        "json/ray.event",
        "ray.event",
        &["real/ray/session-logs/events/event_JOBS.log"],
        false,
    ),
];

pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// Lines of the given sample files, repeated with small variations (the
/// client port) until the input is at least `mb` MiB.
pub fn generate(files: &[&str], mb: usize, vary: bool) -> (Bytes, Vec<(usize, usize)>) {
    let mut lines: Vec<String> = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(samples().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        lines.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    let target = mb * 1024 * 1024;
    let mut buf = Vec::with_capacity(target + (1 << 20));
    let mut spans = Vec::new();
    let mut round = 0u32;
    while buf.len() < target {
        for l in &lines {
            let start = buf.len();
            if vary && round > 0 {
                // Change some digits so the input is not the same bytes over and over.
                let digits = format!("{:05}", round % 100_000);
                let mut replaced = l.clone();
                if let Some(i) = replaced.find("127.0.0.1:") {
                    let p = i + "127.0.0.1:".len();
                    let n = replaced[p..].bytes().take_while(u8::is_ascii_digit).count();
                    if n == 5 {
                        replaced.replace_range(p..p + 5, &digits);
                    }
                }
                buf.extend_from_slice(replaced.as_bytes());
            } else {
                buf.extend_from_slice(l.as_bytes());
            }
            spans.push((start, buf.len()));
            buf.push(b'\n');
        }
        round += 1;
    }
    (Bytes::from(buf), spans)
}

/// Pushes every line through a stream of `format`; returns the number of
/// outputs.
#[inline(never)]
pub fn run(norm: &Normalizer, format: &str, data: &Bytes, spans: &[(usize, usize)]) -> usize {
    let mut events = 0;
    push_all(norm, format, data, spans, |out| {
        events += out.len();
        black_box(&out);
        out.clear();
    });
    events
}

/// The events `format` makes of the lines (dead letters are left out).
pub fn events(
    norm: &Normalizer,
    format: &str,
    data: &Bytes,
    spans: &[(usize, usize)],
) -> Vec<Event> {
    let mut events = Vec::with_capacity(spans.len());
    push_all(norm, format, data, spans, |out| {
        events.extend(out.drain(..).filter_map(|o| match o {
            Output::Event(e) => Some(e),
            Output::Dead(_) => None,
        }))
    });
    events
}

/// Writes each event as JSON the way the daemon does (a fresh buffer of
/// 512 bytes per event, see `src/run/pipeline.rs`); returns the bytes written.
#[inline(never)]
pub fn serialize(events: &[Event]) -> usize {
    let mut total = 0;
    for ev in events {
        let mut doc = Vec::with_capacity(512);
        ev.write_json(&mut doc);
        total += doc.len();
        black_box(&doc);
    }
    total
}

/// Pushes every line through a stream of `format`, handing the outputs to
/// `take` in batches of about 1024 (and the rest at the end).
fn push_all(
    norm: &Normalizer,
    format: &str,
    data: &Bytes,
    spans: &[(usize, usize)],
    mut take: impl FnMut(&mut Vec<Output>),
) {
    let source = Arc::new(Source {
        kind: "file",
        name: "bench.log".into(),
        format: Some(format.to_string()),
    });
    let mut stream = norm.stream(source.clone(), Some(Timestamp(1_796_000_000_000_000_000)));
    let mut out: Vec<Output> = Vec::with_capacity(1024);
    for (i, &(a, b)) in spans.iter().enumerate() {
        stream.push(
            RawRecord {
                bytes: data.slice(a..b),
                source: source.clone(),
                offset: a as u64,
                line: i as u64 + 1,
                received: Timestamp(1_796_000_000_000_000_000),
                overflow_len: None,
            },
            &mut out,
        );
        if out.len() >= 1024 {
            take(&mut out);
        }
    }
    stream.finish(&mut out);
    take(&mut out);
}

/// What the profiling examples start from: the format named by the first
/// argument (a benchmark case) and its generated input of the second
/// argument's MiB (default 2), with a built-in normalizer. `example` names
/// the example in the usage message.
pub fn from_args(example: &str) -> (String, Normalizer, Bytes, Vec<(usize, usize)>) {
    let mut args = std::env::args().skip(1);
    let format = args
        .next()
        .unwrap_or_else(|| panic!("usage: {example} FORMAT [MiB]"));
    let mb: usize = args.next().map_or(2, |m| m.parse().expect("MiB"));
    let (_, _, files, vary) = CASES
        .iter()
        .find(|(_, f, _, _)| *f == format)
        .unwrap_or_else(|| panic!("no benchmark case for {format}"));
    let norm = Normalizer::new(
        normalizer::Registry::builtin(),
        normalizer::Options::default(),
    );
    let (data, spans) = generate(files, mb, *vary);
    (format, norm, data, spans)
}
