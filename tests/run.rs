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

/// The configuration documented in docs/run.md is valid, and one with every
/// kind of source and sink and a disk buffer is too; a secret named by an
/// environment variable that is not set is an error that names the
/// variable, not a value.
#[test]
fn documented_and_complete_configurations_validate() {
    let doc = std::fs::read_to_string(common::repo().join("docs/run.md")).unwrap();
    let start = doc.find("```toml\n").expect("a toml example") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let documented = dir.path().join("documented.toml");
    write(&documented, &doc[start..end]);
    let complete = dir.path().join("complete.toml");
    write(
        &complete,
        r#"data_dir = "data"
[api]
address = "127.0.0.1:0"
[sources.files]
type = "file"
include = ["/var/log/mlflow/**/*.log"]
[sources.sys]
type = "syslog"
mode = "tcp"
address = "127.0.0.1:0"
[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:0"
valid_tokens = [{ env = "MLSOC_TEST_HEC_IN" }]
[sinks.es]
type = "elasticsearch"
inputs = ["events"]
endpoints = ["http://127.0.0.1:9200"]
auth = { strategy = "api_key", api_key_env = "MLSOC_TEST_ES_KEY" }
[sinks.splunk]
type = "splunk_hec"
inputs = ["alerts"]
endpoint = "https://127.0.0.1:8088"
token_env = "MLSOC_TEST_HEC_OUT"
[sinks.splunk.buffer]
type = "disk"
max_size = "64MiB"
[sinks.file]
type = "file"
inputs = ["dead_letters"]
path = "-"
"#,
    );
    let validate = |cfg: &Path, env: &[(&str, &str)]| {
        let mut c = mlsoc();
        c.args(["validate", "--config"]).arg(cfg);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = validate(&documented, &[("ES_API_KEY", "id:key")]);
    assert_eq!(code, Some(0), "{out}");
    let secrets = [
        ("MLSOC_TEST_HEC_IN", "in-token"),
        ("MLSOC_TEST_ES_KEY", "id:secret-key-value"),
        ("MLSOC_TEST_HEC_OUT", "out-token-value"),
    ];
    let (code, out) = validate(&complete, &secrets);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 source(s), 3 sink(s)"), "{out}");
    let (code, out) = validate(&complete, &secrets[..2]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("MLSOC_TEST_HEC_OUT"), "{out}");
    for (_, v) in secrets {
        assert!(!out.contains(v), "a secret value in the output: {out}");
    }
}
