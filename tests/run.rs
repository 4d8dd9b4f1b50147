//! End-to-end tests of `mlsoc run` and `mlsoc validate`: the binary with a
//! configuration, real files, and the wire-faithful Elasticsearch fake.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use testkit::es::{FakeEs, ItemError, ItemRule};

fn mlsoc() -> Command {
    common::mlsoc()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn ndjson(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(t) => t
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn validate_lists_every_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    write(
        &cfg,
        r#"data_dir = "data"

[sources.logs]
type = "stdin"
max_line_bytes = "big"

[sinks.es]
type = "elasticsearch"
inputs = ["events"]
endpoints = ["htp://nowhere"]

[sinks.out]
type = "file"
inputs = ["event"]
path = "x.ndjson"
"#,
    );
    let out = mlsoc()
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let name = cfg.display().to_string();
    for (line, needle) in [
        (3, "[sources.logs]"),
        (7, "[sinks.es] endpoints"),
        (12, "[sinks.out] inputs: unknown variant `event`"),
    ] {
        let prefix = format!("{name}:{line}: {needle}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&prefix)),
            "missing `{prefix}` in:\n{stdout}"
        );
    }
    assert!(stdout.contains("3 error(s)"), "{stdout}");

    // The built-in configuration is valid.
    let out = mlsoc().arg("validate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Access-log lines in MLflow's gunicorn format, numbered, one marked line
/// in every `mark_every` carrying `marker` in its user agent.
fn access_lines(n: usize, mark_every: usize, marker: &str) -> String {
    let mut s = String::new();
    for i in 0..n {
        let ua = if mark_every > 0 && i % mark_every == 0 {
            marker
        } else {
            "python-requests/2.32.3"
        };
        s.push_str(&format!(
            "10.1.{}.{} - - [30/Nov/2026:10:{:02}:{:02} +0000] \"GET /api/2.0/mlflow/experiments/get?experiment_id={i} HTTP/1.1\" 200 {} \"-\" \"{ua}\"\n",
            i / 250 % 250,
            i % 250 + 1,
            i / 60 % 60,
            i % 60,
            100 + i
        ));
    }
    s
}

/// Partial `_bulk` failures through the whole daemon: items the fake
/// rejects with 429 are retried alone, mapping errors land in the dead
/// letter file with Elasticsearch's reason, and nothing else is sent twice.
#[test]
fn partial_bulk_failure_retries_only_the_failed_items() {
    let es = FakeEs::start_blocking();
    es.fail_items(ItemRule::source_contains(
        "MAPPING-BOOM",
        ItemError::mapper_parsing("user_agent.original", "long", "MAPPING-BOOM"),
    ));
    es.fail_items(ItemRule::reject_first_attempt_every(7));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    write(
        &cfg,
        &format!(
            r#"data_dir = "{data}"
[detect]
enabled = false
[sources.in]
type = "stdin"
format = "mlflow.gunicorn_access"
[sinks.es]
type = "elasticsearch"
inputs = ["events"]
endpoints = ["{url}"]
batch = {{ max_events = 100, timeout = "100ms" }}
retry = {{ initial = "10ms", max = "100ms" }}
"#,
            data = dir.path().join("data").display(),
            url = es.url()
        ),
    );
    let n = 2000;
    let input = access_lines(n, 50, "MAPPING-BOOM");
    let mut child = mlsoc()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let marked = n / 50;
    assert_eq!(es.doc_count(), n - marked, "{stderr}");
    let dlq = ndjson(&dir.path().join("data/dead_letters/sinks.ndjson"));
    assert_eq!(dlq.len(), marked, "{stderr}");
    for d in &dlq {
        assert_eq!(d["sink"], "es");
        assert_eq!(d["status"], 400);
        let reason = d["reason"].as_str().unwrap();
        assert!(reason.starts_with("mapper_parsing_exception: "), "{reason}");
        assert!(
            d["document"]["user_agent"]["original"]
                .as_str()
                .unwrap()
                .contains("MAPPING-BOOM")
        );
    }
    // Nothing but the 429 items was sent twice; mapping errors were never
    // retried.
    let mut ids = es.received_ids();
    ids.sort();
    ids.dedup();
    let mut twice = 0;
    for id in &ids {
        match es.receive_count(id) {
            1 => {}
            2 => twice += 1,
            c => panic!("{id} received {c} times"),
        }
    }
    assert_eq!(ids.len(), n);
    // The fake rejects the first attempt of every 7th id it sees (one
    // stream: in input order), unless the mapping rule took the item first.
    let rejected = (0..n).filter(|i| (i + 1) % 7 == 0 && i % 50 != 0).count();
    assert_eq!(twice, rejected, "one retry per rejected item");
    assert_eq!(es.items_received() as usize, n + rejected);
}

/// The README's first command: the built-in configuration over the bundled
/// samples, once. A second run resumes from the checkpoints and reads
/// nothing new.
#[test]
fn run_once_with_the_built_in_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(common::repo().join("samples"), dir.path().join("samples")).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_mlsoc"))
            .args(["run", "--once"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let stderr = run();
    let out = dir.path().join("target/mlsoc/run");
    let events = ndjson(&out.join("events.ndjson"));
    let alerts = ndjson(&out.join("alerts.ndjson"));
    assert!(events.len() > 6000, "{} events; {stderr}", events.len());
    assert!(
        stderr.contains(&format!("{} events", events.len())),
        "{stderr}"
    );
    // Every scenario's story is told by its alerts (the exact sets are
    // checked by tests/rule_pack.rs; here: the daemon runs the pack).
    let names: std::collections::BTreeSet<&str> = alerts
        .iter()
        .filter_map(|a| a["rule"]["name"].as_str())
        .collect();
    for want in [
        "MLflow bulk model artifact download",
        "MLflow basic-auth brute force",
    ] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    for a in &alerts {
        assert_eq!(a["event"]["kind"], "alert");
    }
    // Once more: checkpoints say everything was delivered.
    let again = run();
    assert!(again.contains(" 0 records read"), "{again}");
    assert_eq!(ndjson(&out.join("events.ndjson")).len(), events.len());
}
