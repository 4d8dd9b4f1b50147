//! The command line: formats listing, format override, errors and exit codes.

mod common;

use common::{ndjson, run, s};

#[test]
fn formats_lists_every_format_with_an_example() {
    let out = run(&["formats", "--json"], None);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for expected in [
        "mlflow.uvicorn_access",
        "mlflow.gunicorn_access",
        "mlflow.server",
        "jupyter.server",
        "ray.log",
        "ray.core",
        "ray.job_driver",
        "ray.event",
        "torchserve.access",
        "torchserve.log",
        "torchserve.metrics",
        "moto",
        "kubernetes.audit",
        "aws.cloudtrail",
        "minio.audit",
        "combined",
        "common",
        "nginx.ingress",
        "json",
        "ecs",
        "syslog",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|f| f["example"].is_string())
    );
    let table = run(&["formats"], None);
    assert!(String::from_utf8_lossy(&table.stdout).contains("e.g. "));
}

#[test]
fn format_override_and_unknown_format() {
    let line = b"10.0.0.1 - - [30/Nov/2026:10:00:00 +0000] \"GET /api/2.0/mlflow/runs/get?run_id=abc HTTP/1.1\" 200 5 \"-\" \"curl/8\"\n";
    let out = run(
        &["normalize", "--format", "mlflow.gunicorn_access", "-"],
        Some(line),
    );
    assert!(out.status.success());
    let ev = &ndjson(&out.stdout)[0];
    assert_eq!(s(ev, "event.dataset"), "mlflow.access");
    assert_eq!(s(ev, "mlops.run.id"), "abc");

    let out = run(&["normalize", "--format", "nope", "-"], Some(line));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown format `nope`") && err.contains("mlflow.server"),
        "{err}"
    );
}

#[test]
fn missing_input_is_exit_3_and_others_still_run() {
    let out = run(
        &[
            "normalize",
            "no/such/file.log",
            "samples/real/mlflow/mlflow-access.log",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(ndjson(&out.stdout).len(), 160);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no/such/file.log: no such file or directory")
    );
}

#[test]
fn bad_configuration_is_exit_2() {
    let out = run(
        &["normalize", "--timezone", "Mars/Olympus", "-"],
        Some(b"x\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[[format]]\nname = \"x\"\n[[format.pattern]]\ndissect = \"%{a}%{b}\"\n",
    )
    .unwrap();
    let out = run(
        &["normalize", "--formats-file", f.to_str().unwrap(), "-"],
        Some(b"x\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("format `x`") && err.contains("no literal between them"),
        "{err}"
    );
}

#[test]
fn declared_format_from_a_file() {
    // An in-house model gateway nobody wrote a parser for, declared in TOML.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gateway.toml");
    std::fs::write(
        &f,
        r#"
[[format]]
name = "acme.gateway"
component = "model-gateway"
description = "ACME model gateway"
example = "2026-11-30T10:00:00.5+01:00|alice|203.0.113.5|fraud-v3|POST|200|12"
priority = 100
set = { "event.kind" = "event", "event.category" = ["web"], "event.type" = ["access"] }
timestamp = { field = "_ts", layouts = ["rfc3339"] }
enrich = ["http_outcome", "duration(_ms, ms)"]

[[format.pattern]]
regex = '^(?P<_ts>[^|]+)\|(?P<user>[^|]*)\|(?P<source__ip>[^|]+)\|(?P<model>[^|]+)\|(?P<http__request__method>[A-Z]+)\|(?P<http__response__status_code>\d+)\|(?P<_ms>\d+)$'
fields = { "user.name" = "user", "mlops.model.name" = "model" }
"#,
    )
    .unwrap();
    let input = b"2026-11-30T10:00:00.5+01:00|alice|203.0.113.5|fraud-v3|POST|500|12\n";
    let out = run(
        &["normalize", "--formats-file", f.to_str().unwrap(), "-"],
        Some(input),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = &ndjson(&out.stdout)[0];
    assert_eq!(
        s(ev, "event.dataset"),
        "acme.gateway",
        "detected without --format"
    );
    assert_eq!(s(ev, "@timestamp"), "2026-11-30T09:00:00.500Z");
    assert_eq!(s(ev, "user.name"), "alice");
    assert_eq!(s(ev, "mlops.model.name"), "fraud-v3");
    assert_eq!(s(ev, "mlops.component"), "model-gateway");
    assert_eq!(s(ev, "event.outcome"), "failure");
    assert_eq!(ev["event"]["duration"], 12_000_000);
    assert_eq!(ev["http"]["response"]["status_code"], 500);
    let list = run(&["formats", "--formats-file", f.to_str().unwrap()], None);
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .contains("acme.gateway  dataset=acme.gateway (from a formats file)")
    );
}

#[test]
fn directories_are_walked_in_order_and_ignore_files_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::write(d.join("b/2.log"), "second\n").unwrap();
    std::fs::write(d.join("a.log"), "first\n").unwrap();
    std::fs::write(d.join("notes.md"), "# not a log\n").unwrap();
    std::fs::write(d.join(".mlsocignore"), "*.md\n").unwrap();
    let out = run(&["normalize", "-j", "4", d.to_str().unwrap()], None);
    assert!(out.status.success());
    let msgs: Vec<String> = ndjson(&out.stdout)
        .iter()
        .map(|e| s(e, "message").to_string())
        .collect();
    assert_eq!(msgs, ["first", "second"]);
}

#[test]
fn output_to_files_with_default_dlq_path() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("out/events.ndjson");
    let out = run(
        &["normalize", "-o", events.to_str().unwrap(), "-"],
        Some(b"ok\n\xff\n"),
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&events).unwrap().lines().count(), 1);
    let dlq = std::fs::read_to_string(dir.path().join("out/events.ndjson.dlq")).unwrap();
    assert_eq!(dlq.lines().count(), 1);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("1 events, 1 dead-letter records"),
        "{summary}"
    );
}

#[test]
fn control_characters_in_samples_are_escaped_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("evil.toml");
    std::fs::write(&f, "[[format]]\nname = \"evil\"\nexample = \"\\u001b[2Jcleared\"\nparser = \"plain\"\nauto = false\n").unwrap();
    let out = run(&["formats", "--formats-file", f.to_str().unwrap()], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "raw escape reached the terminal");
    assert!(text.contains("\\u{1b}[2Jcleared"), "{text}");
}
