//! `mlsoc-fake`: runs one of the testkit's fakes standalone, so external
//! clients (curl, the official Python client, another shipper) can be
//! checked against it.
//!
//! ```text
//! mlsoc-fake es --port 9200 [--user elastic --password changeme] [--api-key id:key]
//!               [--max-content-length 104857600]
//! ```

use clap::{Parser, Subcommand};

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
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Es {
            port,
            user,
            password,
            api_key,
            max_content_length,
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
            let es = b.start_blocking();
            println!("fake Elasticsearch listening on {}", es.url());
            // Runs until killed (Ctrl-C ends the process).
            loop {
                std::thread::park();
            }
        }
    }
}
