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

use common::{events, serialize};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (format, norm, data, spans) = common::from_args("profile_serialize");
    let events = events(&norm, &format, &data, &spans);
    let bytes = serialize(&events);
    println!("{format}: {} events, {bytes} bytes of JSON", events.len());
}
