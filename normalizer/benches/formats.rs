//! Throughput per format on one core: parse and map into the in-memory
//! event (line checks, detection, multiline grouping, parsing, enrichment
//! and the common fields), over at least 100 MB of input generated from the
//! real samples in `samples/`.
//!
//! Run: `cargo bench -p normalizer --bench formats` (criterion prints the
//! time per pass and the throughput in MiB/s and lines/s; see README).
//! `MLSOC_BENCH_MB=20 cargo bench ...` makes the inputs smaller for a quick look.

mod common;

use common::{CASES, generate, run, samples};
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

criterion_group!(benches, bench);
criterion_main!(benches);
