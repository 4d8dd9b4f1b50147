//! Writes the events of one benchmark case of `benches/formats.rs` as JSON,
//! for profilers: the lines are normalized first (not measured), then
//! `common::serialize` writes every event the way the daemon does.
//!
//! Instructions per event, repeatable whatever the machine's load:
//!
//! ```text
//! cargo build --release -p normalizer --example profile_serialize
//! valgrind --tool=callgrind --toggle-collect='profile_serialize::common::serialize' \
//!     target/release/examples/profile_serialize kubernetes.audit 2
//! ```
//!
//! then divide the `Collected` instruction count by the event count
//! printed. Arguments: a format name of the benchmark, and the input size
//! in MiB (default 2).

#[path = "../benches/common/mod.rs"]
mod common;

use common::{CASES, events, generate, serialize};
use normalizer::{Normalizer, Options, Registry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let format = args.next().expect("usage: profile_serialize FORMAT [MiB]");
    let mb: usize = args.next().map_or(2, |m| m.parse().expect("MiB"));
    let (_, _, files, vary) = CASES
        .iter()
        .find(|(_, f, _, _)| *f == format)
        .unwrap_or_else(|| panic!("no benchmark case for {format}"));
    let norm = Normalizer::new(Registry::builtin(), Options::default());
    let (data, spans) = generate(files, mb, *vary);
    let events = events(&norm, &format, &data, &spans);
    let bytes = serialize(&events);
    println!("{format}: {} events, {bytes} bytes of JSON", events.len());
}
