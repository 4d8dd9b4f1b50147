//! The fake HEC against a real client: Splunk's own Node.js library
//! `splunk-logging`, installed into `target/npmclients` by
//! `scripts/setup-node-clients.sh`.
//!
//! Skipped (with a message) only when `node` is missing. With node present
//! but the library absent, the test runs the setup script itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::hec::{FakeHec, FakeHecOptions};

const TOKEN: &str = "12345678-90ab-cdef-1234-567890abcdef";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `node_modules` folder holding splunk-logging, or `None` to skip.
fn client_modules() -> Option<PathBuf> {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: `node` is not installed; the splunk-logging check of the fake HEC did not run"
        );
        return None;
    }
    let root = repo_root();
    let modules = root.join("target/npmclients/node_modules");
    if !modules.join("splunk-logging/package.json").exists() {
        let status = Command::new("bash")
            .arg(root.join("scripts/setup-node-clients.sh"))
            .current_dir(&root)
            .status()
            .expect("run scripts/setup-node-clients.sh");
        assert!(status.success(), "scripts/setup-node-clients.sh failed");
    }
    assert!(
        modules.join("splunk-logging/package.json").exists(),
        "splunk-logging missing after scripts/setup-node-clients.sh"
    );
    Some(modules)
}

/// Runs `script` with node (NODE_PATH set) and returns its stdout as JSON
/// lines.
async fn run_node(modules: &Path, script: &str, url: &str, token: &str) -> Vec<Value> {
    let modules = modules.to_path_buf();
    let script = script.to_owned();
    let url = url.to_owned();
    let token = token.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("-e")
            .arg(script)
            .env("NODE_PATH", &modules)
            .env("HEC_URL", url)
            .env("HEC_TOKEN", token)
            .output()
            .expect("run node")
    });
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("node finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SEND_SCRIPT: &str = r#"
const SplunkLogger = require("splunk-logging").Logger;
const logger = new SplunkLogger({
  token: process.env.HEC_TOKEN,
  url: process.env.HEC_URL,
  maxBatchCount: 0,
});
logger.error = (err, ctx) => console.log(JSON.stringify({ error: String(err.message || err), code: err.code === undefined ? null : err.code }));
const metadata = { host: "jupyter-7", source: "notebook.log", sourcetype: "jupyter:server", index: "mlsoc" };
logger.send({ message: { action: "kernel_start", user: "alice" }, metadata, severity: "info" });
logger.send({ message: "plain text line", metadata: { ...metadata, time: 1700000000.25 } });
logger.flush((err, resp, body) => {
  console.log(JSON.stringify({ status: resp ? resp.statusCode : null, body: body === undefined ? null : body, err: err ? String(err) : null }));
});
"#;

#[tokio::test]
async fn splunk_logging_events_arrive_with_their_metadata() {
    let Some(modules) = client_modules() else {
        return;
    };
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).indexes(["mlsoc"]))
        .await
        .unwrap();
    let lines = run_node(&modules, SEND_SCRIPT, &hec.url(), TOKEN).await;
    let last = lines.last().expect("the flush callback prints its answer");
    assert_eq!(last["status"], 200, "{lines:?}");
    assert_eq!(last["body"], json!({"text": "Success", "code": 0}));
    assert!(lines.iter().all(|l| l.get("error").is_none()), "{lines:?}");

    let events = hec.events();
    assert_eq!(events.len(), 2, "{events:?}");
    // splunk-logging's default format: {"message": .., "severity": ..}.
    assert_eq!(
        events[0].event,
        json!({"message": {"action": "kernel_start", "user": "alice"}, "severity": "info"})
    );
    assert_eq!(events[1].event["message"], "plain text line");
    for e in &events {
        assert_eq!(e.host.as_deref(), Some("jupyter-7"));
        assert_eq!(e.source.as_deref(), Some("notebook.log"));
        assert_eq!(e.sourcetype.as_deref(), Some("jupyter:server"));
        assert_eq!(e.index, "mlsoc");
        assert_eq!(e.token, TOKEN);
        assert!(e.time.is_some(), "splunk-logging always sends a time");
    }
    assert_eq!(events[1].time, Some(1700000000.25));
    // The client posts concatenated envelopes in one request to the
    // documented event/1.0 path.
    let reqs = hec.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].status, 200);
}

#[tokio::test]
async fn splunk_logging_sees_the_invalid_token_error() {
    let Some(modules) = client_modules() else {
        return;
    };
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).disabled(["disabled-token"]))
        .await
        .unwrap();
    let lines = run_node(&modules, SEND_SCRIPT, &hec.url(), "wrong-token").await;
    let error = lines
        .iter()
        .find(|l| l.get("error").is_some())
        .expect("the client's error handler is called");
    assert_eq!(error["error"], "Invalid token");
    assert_eq!(error["code"], 4);
    let last = lines.last().unwrap();
    assert_eq!(last["status"], 403);
    assert!(hec.events().is_empty());

    let lines = run_node(&modules, SEND_SCRIPT, &hec.url(), "disabled-token").await;
    let error = lines.iter().find(|l| l.get("error").is_some()).unwrap();
    assert_eq!(
        (error["error"].clone(), error["code"].clone()),
        (json!("Token disabled"), json!(1))
    );
}
