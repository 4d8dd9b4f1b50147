//! `mlsoc-fake`: runs one of testkit's fake servers on 127.0.0.1 until
//! killed, for checks with clients outside the Rust tests.
//!
//! ```text
//! mlsoc-fake hec --port 8088 --token 00000000-0000-0000-0000-000000000000 [--ack]
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT` once ready, and one line
//! per accepted event (JSON) when `--print` is given.

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mlsoc-fake",
    about = "Fake servers for testing mlsoc's clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A fake Splunk HTTP Event Collector.
    Hec {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8088)]
        port: u16,
        /// A valid token (repeat for more).
        #[arg(long = "token", required = true)]
        tokens: Vec<String>,
        /// Indexer acknowledgement on (acks become true at once).
        #[arg(long)]
        ack: bool,
        /// Print each accepted event as a JSON line.
        #[arg(long)]
        print: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Hec {
            port,
            tokens,
            ack,
            print,
        } => {
            let mut options = testkit::hec::FakeHecOptions::new(tokens);
            if ack {
                options = options.with_ack(Some(Duration::ZERO));
            }
            let hec = testkit::hec::FakeHec::start_on(options, port).await?;
            println!("listening on {}", hec.url());
            let mut shown = 0;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if print {
                    let events = hec.events();
                    for e in &events[shown..] {
                        println!(
                            "{}",
                            serde_json::json!({
                                "event": e.event, "time": e.time, "host": e.host,
                                "source": e.source, "sourcetype": e.sourcetype,
                                "index": e.index, "fields": e.fields,
                            })
                        );
                    }
                    shown = events.len();
                }
            }
        }
    }
    Ok(())
}
