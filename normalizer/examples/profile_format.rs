//! Runs one benchmark case of `benches/formats.rs` once, for profilers:
//! the same generated input (the sample lines repeated with varied client
//! ports), pushed through a stream of the given format.
//!
//! Instructions per line, repeatable whatever the machine's load:
//!
//! ```text
//! cargo build --release -p normalizer --example profile_format
//! valgrind --tool=callgrind --toggle-collect='profile_format::run' \
//!     target/release/examples/profile_format combined 2
//! ```
//!
//! then divide the `Collected` instruction count by the line count printed.
//! Arguments: a format name of the benchmark, and the input size in MiB
//! (default 2).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use normalizer::{Normalizer, Options, Output, Registry};
use schema::{RawRecord, Source, Timestamp};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (format, sample files, vary client ports), as in `benches/formats.rs`.
const CASES: &[(&str, &[&str], bool)] = &[
    (
        "mlflow.uvicorn_access",
        &["real/mlflow/mlflow-access.log"],
        true,
    ),
    (
        "mlflow.gunicorn_access",
        &["real/mlflow-auth/mlflow-auth-access.log"],
        true,
    ),
    (
        "torchserve.access",
        &["real/torchserve/access_log.log"],
        true,
    ),
    ("moto", &["real/moto/moto-server.log"], true),
    ("combined", &["handwritten/nginx/access.log"], true),
    (
        "jupyter.server",
        &["real/jupyter/jupyter-server-debug.log"],
        false,
    ),
    ("ray.log", &["real/ray/ray-dashboard.log"], false),
    ("torchserve.log", &["real/torchserve/ts_log.log"], false),
    (
        "kubernetes.audit",
        &["handwritten/kubernetes/audit.log"],
        false,
    ),
    (
        "aws.cloudtrail",
        &["handwritten/cloudtrail/events.ndjson"],
        false,
    ),
    ("minio.audit", &["handwritten/minio/audit.log"], false),
    (
        "ray.event",
        &["real/ray/session-logs/events/event_JOBS.log"],
        false,
    ),
];

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// The input of `benches/formats.rs` (same generator).
fn generate(files: &[&str], mb: usize, vary: bool) -> (Bytes, Vec<(usize, usize)>) {
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

#[inline(never)]
fn run(norm: &Normalizer, format: &str, data: &Bytes, spans: &[(usize, usize)]) -> usize {
    let source = Arc::new(Source {
        kind: "file",
        name: "bench.log".into(),
        format: Some(format.to_string()),
    });
    let mut stream = norm.stream(source.clone(), Some(Timestamp(1_796_000_000_000_000_000)));
    let mut out: Vec<Output> = Vec::with_capacity(1024);
    let mut events = 0;
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
            events += out.len();
            black_box(&out);
            out.clear();
        }
    }
    stream.finish(&mut out);
    events + out.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let format = args.next().expect("usage: profile_format FORMAT [MiB]");
    let mb: usize = args.next().map_or(2, |m| m.parse().expect("MiB"));
    let (_, files, vary) = CASES
        .iter()
        .find(|(n, _, _)| *n == format)
        .unwrap_or_else(|| panic!("no benchmark case for {format}"));
    let norm = Normalizer::new(Registry::builtin(), Options::default());
    let (data, spans) = generate(files, mb, *vary);
    let events = run(&norm, &format, &data, &spans);
    println!(
        "{format}: {} lines, {} bytes, {events} events",
        spans.len(),
        data.len()
    );
}
