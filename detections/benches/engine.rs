//! Detection throughput on one core: events per second with the first
//! 100, 1,000 and all rules of the SigmaHQ corpus (web, cloud, application
//! and Linux rules first), on events normalized from the real and
//! hand-written samples (MLflow access and server logs, nginx, CloudTrail,
//! Kubernetes audit). rsigma-eval runs in the same binary on the same
//! rules and the same events (as JSON), as a reference.
//!
//! Run: `cargo bench -p detections --bench engine` (criterion prints time
//! per pass and events/s). `MLSOC_BENCH_EVENTS=2000` sets the number of
//! events per pass (default 20,000, cycling through the samples). With all
//! rules it also measures the engine as `mlsoc hunt --rules` runs it
//! (built-in pipelines and log source routing), with mlsoc's own ML rule
//! pack (detections/rules) added to the SigmaHQ rules.
//!
//! `correlate/<type>`: one busy correlation group (every event joins it,
//! its window holds up to 10,000 entries), 20,000 events per pass: the
//! cost of judging the window after each event, which must not grow with
//! the window (`cargo bench -p detections --bench engine -- correlate`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use detections::{Engine, Loader};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/mod.rs"]
mod common;
use common::{events, rule_files};

fn bench(c: &mut Criterion) {
    let n_events: usize = std::env::var("MLSOC_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let evs = events(n_events);
    let json: Vec<serde_json::Value> = evs
        .iter()
        .map(|e| serde_json::from_str(&e.to_json_string()).unwrap())
        .collect();
    let files = rule_files();
    let mut group = c.benchmark_group("detect");
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    group.throughput(Throughput::Elements(evs.len() as u64));
    for count in [100, 1000, files.len()] {
        let subset = &files[..count.min(files.len())];
        let loading = Loader::default().load_paths(subset);
        let (engine, _) = Engine::build(loading);
        let (always, total) = engine.prefilter_counts();
        // rsigma rebuilds its index on each `add_collection`: add every
        // rule in one batch instead.
        let mut rs = rsigma_eval::Engine::new();
        let collections: Vec<_> = subset
            .iter()
            .filter_map(|f| {
                rsigma_parser::parse_sigma_yaml(&std::fs::read_to_string(f).unwrap()).ok()
            })
            .collect();
        let all_rules: Vec<_> = collections.iter().flat_map(|c| c.rules.iter()).collect();
        let rs_errors = rs.add_rules(all_rules.iter().copied()).len();
        let rs_rules = all_rules.len() - rs_errors;
        let label = if count >= files.len() {
            "all".to_string()
        } else {
            count.to_string()
        };
        let mut hits = 0usize;
        let mut scratch = detections::prefilter::Scratch::default();
        for e in &evs {
            engine.eval_with(e, &mut scratch, &mut |_| hits += 1);
        }
        let mut rs_hits = 0usize;
        for j in &json {
            rs_hits += rs.evaluate(&rsigma_eval::event::JsonEvent::borrow(j)).len();
        }
        eprintln!(
            "{label}: mlsoc {total} rules ({always} without a prefilter trigger), {hits} matches; rsigma {rs_rules} rules, {rs_hits} matches; {} events",
            evs.len()
        );
        group.bench_function(format!("mlsoc/{label}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for e in &evs {
                    engine.eval_with(e, &mut scratch, &mut |_| n += 1);
                }
                black_box(n)
            })
        });
        if count >= files.len() {
            // As `mlsoc hunt --rules` runs them: the built-in pipelines map the
            // Sigma taxonomy onto mlsoc's fields and route each rule to
            // its log source.
            // Plus mlsoc's own ML rule pack, with its default allowlists.
            let loader = Loader::new(detections::pack::default_placeholders().unwrap())
                .with_pipelines(detections::Pipeline::builtin());
            let mut piped = loader.load_paths(subset);
            let pack = detections::pack::load(&loader);
            assert!(pack.errors.is_empty(), "{:?}", pack.errors);
            piped.rules.extend(pack.rules);
            piped.correlations.extend(pack.correlations);
            let (hunt, _) = Engine::build(piped);
            let mut n = 0usize;
            for e in &evs {
                hunt.eval_with(e, &mut scratch, &mut |_| n += 1);
            }
            eprintln!(
                "all with pipelines: {} rules, {} routed to no collected log source, {n} matches",
                hunt.len(),
                hunt.unrouted()
            );
            group.bench_function("mlsoc-with-pipelines/all", |b| {
                b.iter(|| {
                    let mut n = 0usize;
                    for e in &evs {
                        hunt.eval_with(e, &mut scratch, &mut |_| n += 1);
                    }
                    black_box(n)
                })
            });
        }
        group.bench_function(format!("rsigma-eval/{label}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for j in &json {
                    n += rs.evaluate(&rsigma_eval::event::JsonEvent::borrow(j)).len();
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

/// One group of each correlation type, fed events that all join it and
/// never meet its condition, so its window fills to `max_entries`.
fn correlations(c: &mut Criterion) {
    const N: usize = 20_000;
    let events: Vec<schema::Event> = (0..N)
        .map(|i| {
            schema::Event::from_json(&schema::Str::from(format!(
                r#"{{"@timestamp":"2026-11-30T10:{:02}:{:02}.{:03}Z","source":{{"ip":"10.0.0.1"}},"user":{{"name":"u{}"}},"http":{{"response":{{"status_code":200,"body":{{"bytes":{}}}}}}}}}"#,
                i / 60_000,
                (i / 1000) % 60,
                i % 1000,
                i % 50,
                i % 997
            )))
            .expect("event")
        })
        .collect();
    let rules = r#"
title: login
name: login
logsource: {product: mlflow}
detection: {sel: {http.response.status_code: 401}, condition: sel}
---
title: request
name: request
logsource: {product: mlflow}
detection: {sel: {http.response.status_code: 200}, condition: sel}
"#;
    let mut group = c.benchmark_group("correlate");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(N as u64));
    for (kind, condition) in [
        ("event_count", "{gte: 1000000}"),
        ("value_count", "{gte: 1000000, field: user.name}"),
        (
            "value_sum",
            "{gte: 1000000000000, field: http.response.body.bytes}",
        ),
        ("temporal", "{gte: 3}"),
        ("temporal_ordered", "{gte: 3}"),
    ] {
        let yaml = format!(
            "{rules}---\ntitle: busy\ncorrelation:\n  type: {kind}\n  rules: [login, request]\n  group-by: [source.ip]\n  timespan: 1h\n  condition: {condition}\n"
        );
        let mut loading = detections::Loading::default();
        Loader::default().load_text(&yaml, std::path::Path::new("bench.yml"), &mut loading);
        assert!(loading.errors.is_empty(), "{:?}", loading.errors);
        let (engine, unresolved) = Engine::build(loading);
        assert!(unresolved.is_empty(), "{unresolved:?}");
        group.bench_function(kind, |b| {
            b.iter(|| {
                let mut s = engine.session(detections::Limits {
                    max_groups: 1000,
                    max_entries: 10_000,
                });
                let mut hits = Vec::new();
                for (i, ev) in events.iter().enumerate() {
                    s.process(&engine, ev, i as u64 + 1, &mut hits);
                }
                // Fed (one group) and never met.
                assert!(hits.is_empty() && s.groups() == 1);
                black_box(s.groups())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, correlations);
criterion_main!(benches);
