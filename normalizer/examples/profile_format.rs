//! Runs one benchmark case of `benches/formats.rs` once, for profilers:
//! the same generated input (the sample lines repeated with varied client
//! ports), pushed through a stream of the given format.
//!
//! Instructions per line, repeatable whatever the machine's load:
//!
//! ```text
//! cargo build --release -p normalizer --example profile_format
//! valgrind --tool=callgrind --toggle-collect='profile_format::common::run' \
//!     target/release/examples/profile_format combined 2
//! ```
//!
//! then divide the `Collected` instruction count by the line count printed.
//! Arguments: a format name of the benchmark, and the input size in MiB
//! (default 2).

#[path = "../benches/common/mod.rs"]
mod common;

use common::run;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let (format, norm, data, spans) = common::from_args("profile_format");
    let events = run(&norm, &format, &data, &spans);
    println!(
        "{format}: {} lines, {} bytes, {events} events",
        spans.len(),
        data.len()
    );
}
