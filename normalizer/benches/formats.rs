//! Throughput per format on one core: parse and map into the in-memory
//! event (line checks, detection, multiline grouping, parsing, enrichment
//! and the common fields), over at least 100 MB of input generated from the
//! real samples in `samples/`.
//!
//! Run: `cargo bench -p normalizer --bench formats` (criterion prints the
//! time per pass and the throughput in MiB/s and lines/s; see README).
//! The `serialize` group then writes the events of some of the formats as
//! JSON (throughput in MiB of JSON written).
//! `MLSOC_BENCH_MB=20 cargo bench ...` makes the inputs smaller for a quick look.

mod common;

use common::{CASES, events, generate, run, samples, serialize};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use normalizer::{Normalizer, Options, Registry};

/// The allocator the `mlsoc` binary uses (see src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mb: usize = std::env::var("MLSOC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let norm = Normalizer::new(Registry::builtin(), Options::default());
    let mut group = c.benchmark_group("normalize");
    group.sample_size(10);
    for (name, format, files, vary) in CASES {
        if files.iter().any(|f| !samples().join(f).exists()) {
            eprintln!("skipping {name}: sample file missing");
            continue;
        }
        let (data, spans) = generate(files, mb, *vary);
        group.throughput(Throughput::Bytes(data.len() as u64));
        eprintln!(
            "{name}: {} lines, {:.1} MiB",
            spans.len(),
            data.len() as f64 / 1048576.0
        );
        let events = run(&norm, format, &data, &spans);
        eprintln!("{name}: {events} events");
        assert!(events > 0, "{name}: no events");
        group.bench_function(*name, |b| b.iter(|| run(&norm, format, &data, &spans)));
    }
    group.finish();
}

/// Writing the events as NDJSON documents, as the daemon does after
/// normalizing (`Event::write_json` into a fresh buffer per event).
fn bench_serialize(c: &mut Criterion) {
    let mb: usize = std::env::var("MLSOC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let norm = Normalizer::new(Registry::builtin(), Options::default());
    let mut group = c.benchmark_group("serialize");
    group.sample_size(10);
    for format in [
        "kubernetes.audit",
        "aws.cloudtrail",
        "combined",
        "nginx.ingress",
    ] {
        let Some((_, _, files, vary)) = CASES.iter().find(|(_, f, _, _)| *f == format) else {
            continue;
        };
        if files.iter().any(|f| !samples().join(f).exists()) {
            eprintln!("skipping {format}: sample file missing");
            continue;
        }
        let (data, spans) = generate(files, mb, *vary);
        let events = events(&norm, format, &data, &spans);
        assert!(!events.is_empty(), "{format}: no events");
        let bytes = serialize(&events);
        eprintln!("{format}: {} events, {bytes} bytes of JSON", events.len());
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format, |b| b.iter(|| serialize(&events)));
    }
    group.finish();
}

criterion_group!(benches, bench, bench_serialize);
criterion_main!(benches);
