//! `mlsoc-fake`: runs one of testkit's fakes standalone on 127.0.0.1 until
//! killed, so external clients (curl, the official Python client, npm
//! splunk-logging, another shipper) can be checked against it.
//!
//! ```text
//! mlsoc-fake es --port 9200 [--user elastic --password changeme] [--api-key id:key]
//!               [--max-content-length 104857600]
//! mlsoc-fake hec --port 8088 --token 00000000-0000-0000-0000-000000000000 [--ack] [--print]
//! ```

use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc, as in `mlsoc`: with glibc malloc, allocation took 40% of the
/// fake's time in `scripts/bench-run.sh`, where it shares the machine's
/// cores with the `mlsoc` it measures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mlsoc-fake",
    about = "Wire-faithful fakes of the servers mlsoc ships to"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A fake Elasticsearch (`_bulk`, index templates, cluster info) on 127.0.0.1.
    Es {
        /// Port on 127.0.0.1 (0: any free port; the URL is printed).
        #[arg(long, default_value_t = 9200)]
        port: u16,
        /// Require Basic authentication as this user (with --password).
        #[arg(long, requires = "password")]
        user: Option<String>,
        /// Password of --user.
        #[arg(long, requires = "user")]
        password: Option<String>,
        /// Accept `Authorization: ApiKey base64(id:key)`; given as `id:key`.
        #[arg(long)]
        api_key: Option<String>,
        /// `http.max_content_length` in bytes (413 above it).
        #[arg(long, default_value_t = testkit::es::DEFAULT_MAX_CONTENT_LENGTH)]
        max_content_length: usize,
        /// Store only these dotted fields of each document (repeatable; for long benchmark runs).
        #[arg(long = "keep-field", value_name = "FIELD")]
        keep_fields: Vec<String>,
    },
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
        Command::Es {
            port,
            user,
            password,
            api_key,
            max_content_length,
            keep_fields,
        } => {
            let mut b = testkit::es::FakeEs::builder()
                .port(port)
                .max_content_length(max_content_length);
            if let (Some(u), Some(p)) = (user, password) {
                b = b.basic_auth(u, p);
            }
            if let Some(k) = api_key {
                let (id, key) = k
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--api-key must be `id:key`"))?;
                b = b.api_key(id, key);
            }
            let es = b.start().await;
            if !keep_fields.is_empty() {
                let f: Vec<&str> = keep_fields.iter().map(String::as_str).collect();
                es.keep_only_fields(&f);
            }
            println!("fake Elasticsearch listening on {}", es.url());
            let _ = tokio::signal::ctrl_c().await;
        }
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
