//! Runs the detection benchmark's work once, for profilers: the first N
//! SigmaHQ rules of `benches/engine.rs` (in its order), or `all`, or `hunt`
//! (all rules with the built-in pipelines and routing plus the ML pack),
//! evaluated over the benchmark's events.
//!
//! Instructions per event, repeatable whatever the machine's load:
//!
//! ```text
//! cargo build --release -p detections --example profile_engine
//! valgrind --tool=callgrind --toggle-collect='profile_engine::evaluate' \
//!     target/release/examples/profile_engine all 20000
//! ```
//!
//! then divide the `Collected` instruction count by the event count
//! printed (one pass is measured, after a warm-up pass). Arguments: the rule count (a number, `all` or `hunt`) and the
//! number of events (default 20,000). The events are evaluated once before
//! the measured pass, so that the measured pass starts warm.
//! `MLSOC_PROFILE_PASSES=n` adds n timed passes and prints the best.

#[path = "../benches/common/mod.rs"]
mod common;

use detections::{Engine, Loader};
use schema::Event;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One pass over the events; `hide` passes each through `black_box`, which
/// only makes the warm-up pass's code differ from the measured one's (so
/// the two are not folded into one function, and profilers collect
/// `evaluate` alone).
#[inline(always)]
fn pass(
    engine: &Engine,
    events: &[Event],
    scratch: &mut detections::prefilter::Scratch,
    hide: bool,
) -> usize {
    let mut n = 0usize;
    for e in events {
        let e = if hide { std::hint::black_box(e) } else { e };
        engine.eval_with(e, scratch, &mut |_| n += 1);
    }
    n
}

/// The warm-up pass (it also builds the per-log-source views of `hunt`).
#[inline(never)]
fn warm_up(
    engine: &Engine,
    events: &[Event],
    scratch: &mut detections::prefilter::Scratch,
) -> usize {
    pass(engine, events, scratch, true)
}

/// The measured pass.
#[inline(never)]
fn evaluate(
    engine: &Engine,
    events: &[Event],
    scratch: &mut detections::prefilter::Scratch,
) -> usize {
    pass(engine, events, scratch, false)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "all".into());
    let count: usize = args
        .next()
        .map(|v| v.parse().expect("event count"))
        .unwrap_or(20_000);
    let files = common::rule_files();
    let events = common::events(count);
    let engine = match which.as_str() {
        "hunt" => {
            let loader = Loader::new(detections::pack::default_placeholders().unwrap())
                .with_pipelines(detections::Pipeline::builtin());
            let mut piped = loader.load_paths(&files);
            let pack = detections::pack::load(&loader);
            piped.rules.extend(pack.rules);
            piped.correlations.extend(pack.correlations);
            Engine::build(piped).0
        }
        n => {
            let n = if n == "all" {
                files.len()
            } else {
                n.parse().expect("a rule count, `all` or `hunt`")
            };
            Engine::build(Loader::default().load_paths(&files[..n.min(files.len())])).0
        }
    };
    let mut scratch = detections::prefilter::Scratch::default();
    let warm = warm_up(&engine, &events, &mut scratch);
    let hits = evaluate(&engine, &events, &mut scratch);
    assert_eq!(warm, hits);
    println!(
        "{which}: {} rules, {} events, {hits} matches",
        engine.len(),
        events.len()
    );
    // `MLSOC_PROFILE_PASSES=n`: n more passes timed, the best printed
    // (a quick wall-clock look; the benchmark is the reference).
    let passes: usize = std::env::var("MLSOC_PROFILE_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let best = (0..passes)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(evaluate(&engine, &events, &mut scratch));
            t.elapsed()
        })
        .min();
    if let Some(best) = best {
        println!(
            "best of {passes} passes: {:.0} ns/event, {:.0} k events/s",
            best.as_nanos() as f64 / events.len() as f64,
            events.len() as f64 / best.as_secs_f64() / 1e3
        );
    }
}
