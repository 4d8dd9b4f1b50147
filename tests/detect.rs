//! `mlsoc hunt`, `mlsoc eval` and `mlsoc rules check` end to end.

mod common;

use common::{at, ndjson, run, s};

const RULES: &str = r#"
title: MLflow artifact path traversal probe
id: 0b7f3f7e-1a2b-4c3d-8e9f-000000000001
logsource: {product: mlflow}
detection:
  sel:
    url.original|contains: '..%2F'
  condition: sel
level: high
tags: [attack.t1190, atlas.aml.t0049]
---
title: Failed MLflow login
name: mlflow_failed_login
logsource: {product: mlflow}
detection:
  s: {http.response.status_code: 401}
  condition: s
level: low
---
title: MLflow brute force
id: 0b7f3f7e-1a2b-4c3d-8e9f-000000000002
correlation:
  type: event_count
  rules: [mlflow_failed_login]
  group-by: [source.ip]
  timespan: 5m
  condition: {gte: 5}
level: high
"#;

fn rules_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("rules.yml"), RULES).unwrap();
    d
}

#[test]
fn hunt_finds_probes_and_brute_force_in_the_real_mlflow_logs() {
    let rules = rules_dir();
    let out = run(
        &[
            "hunt",
            "samples/real/mlflow-auth/mlflow-auth-access.log",
            "--rules",
            rules.path().to_str().unwrap(),
            "--json",
            "--no-progress",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let alerts = ndjson(&out.stdout);
    let named = |n: &str| alerts.iter().filter(|a| s(a, "rule.name") == n).count();
    // The README of the real samples labels the `..%2F` probes by mallory.
    assert!(
        named("MLflow artifact path traversal probe") >= 1,
        "{stderr}"
    );
    assert!(named("MLflow brute force") >= 1, "{stderr}");
    assert_eq!(
        named("Failed MLflow login"),
        0,
        "feeds the correlation only"
    );
    for a in &alerts {
        assert_eq!(s(a, "event.kind"), "alert");
        assert_eq!(s(a, "rule.ruleset"), "sigma");
        assert_eq!(s(a, "event.id").len(), 32);
        assert!(
            at(a, "mlsoc.alert.events")
                .and_then(|e| e.as_array())
                .is_some()
        );
    }
    let probe = alerts
        .iter()
        .find(|a| s(a, "rule.name") == "MLflow artifact path traversal probe")
        .unwrap();
    assert_eq!(s(probe, "rule.level"), "high");
    assert_eq!(s(probe, "user.name"), "mallory");
    // Same input, same alert ids.
    let again = run(
        &[
            "hunt",
            "samples/real/mlflow-auth/mlflow-auth-access.log",
            "--rules",
            rules.path().to_str().unwrap(),
            "--json",
        ],
        None,
    );
    let ids = |v: &[serde_json::Value]| {
        v.iter()
            .map(|a| s(a, "event.id").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&alerts), ids(&ndjson(&again.stdout)));
    // --fail-level
    let fail = run(
        &[
            "hunt",
            "samples/real/mlflow-auth/mlflow-auth-access.log",
            "--rules",
            rules.path().to_str().unwrap(),
            "--fail-level",
            "high",
        ],
        None,
    );
    assert_eq!(fail.status.code(), Some(1));
    let table = String::from_utf8_lossy(&fail.stdout);
    assert!(table.contains("MLflow brute force"), "{table}");
}

#[test]
fn hunt_escapes_what_an_attacker_wrote() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("r.yml"),
        "title: Any request\nlogsource: {category: webserver}\ndetection: {s: {url.original|contains: evil}, condition: s}\nlevel: low\n",
    )
    .unwrap();
    let log = "10.0.0.1 - \u{1b}[2Jroot [30/Nov/2026:10:00:00 +0000] \"GET /evil\u{1b}]0;pwned\u{7} HTTP/1.1\" 200 1 \"-\" \"x\"\n";
    let out = run(
        &[
            "hunt",
            "-",
            "--rules",
            d.path().to_str().unwrap(),
            "--format",
            "combined",
        ],
        Some(log.as_bytes()),
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("Any request"), "{table}");
    assert!(
        !table.contains('\u{1b}'),
        "escape sequences must not reach the terminal: {table:?}"
    );
    assert!(!table.contains('\u{7}'));
}

#[test]
fn eval_reports_rule_and_line_and_correlation_lines() {
    let rules = rules_dir();
    let mut events = String::new();
    for i in 0..6 {
        events.push_str(&format!(
            "{{\"@timestamp\":\"2026-11-30T10:00:0{i}Z\",\"source\":{{\"ip\":\"10.0.0.9\"}},\"http\":{{\"response\":{{\"status_code\":401}}}}}}\n"
        ));
    }
    events.push_str("{\"url\":{\"original\":\"/get-artifact?path=..%2F..%2Fetc%2Fpasswd\"}}\n");
    events.push_str("not json\n");
    let out = run(
        &["eval", "--rules", rules.path().to_str().unwrap(), "-"],
        Some(events.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0));
    let m = ndjson(&out.stdout);
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(s(&m[0], "rule_title"), "MLflow brute force");
    assert_eq!(m[0]["lines"], serde_json::json!([1, 2, 3, 4, 5]));
    assert_eq!(m[1]["line"], 7);
    assert_eq!(s(&m[1], "rule_id"), "0b7f3f7e-1a2b-4c3d-8e9f-000000000001");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 8: not a JSON object"), "{stderr}");
}

#[test]
fn rules_check_lists_every_error_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("bad.yml"),
        "title: ok\nlogsource: {product: x}\ndetection: {s: {a: b}, condition: s}\n---\ntitle: typo\nlogsource: {product: x}\ndetection:\n  s:\n    a|contain: b\n  condition: s\n",
    )
    .unwrap();
    std::fs::write(d.path().join("broken.yml"), "title: [unclosed\n").unwrap();
    let out = run(&["rules", "check", d.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bad.yml:9: `s`: `a|contain`: unknown modifier `contain`"),
        "{text}"
    );
    assert!(
        text.contains("broken.yml:2: not valid YAML: did not find expected ',' or ']'"),
        "{text}"
    );
    let ok = run(
        &["rules", "check", "../shared/sigma/sigmahq/rules/web"],
        None,
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

#[test]
fn hunt_routes_rules_to_their_log_sources() {
    let d = tempfile::tempdir().unwrap();
    // A Windows rule whose condition holds on any event without its
    // fields, and a webserver rule from the Sigma taxonomy.
    std::fs::write(
        d.path().join("r.yml"),
        r#"
title: Not a signed Windows binary
logsource: {product: windows, category: process_creation}
detection: {s: {Signed: 'true'}, condition: not s}
level: high
---
title: Path traversal in a web request
logsource: {category: webserver}
detection: {s: {cs-uri-query|contains: '..%2F'}, condition: s}
level: medium
"#,
    )
    .unwrap();
    let rules = d.path().to_str().unwrap();
    let out = run(
        &[
            "hunt",
            "samples/real/mlflow-auth/mlflow-auth-access.log",
            "--rules",
            rules,
            "--json",
        ],
        None,
    );
    let alerts = ndjson(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        alerts
            .iter()
            .all(|a| s(a, "rule.name") != "Not a signed Windows binary"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 rules are for log sources no pipeline maps"),
        "{stderr}"
    );
    // The Sigma field cs-uri-query reaches url.original through the built-in pipeline.
    assert!(
        alerts
            .iter()
            .any(|a| s(a, "rule.name") == "Path traversal in a web request"),
        "{stderr}"
    );
    // Without pipelines the rules read the events as given: the Windows
    // rule fires everywhere, the webserver field is unknown.
    let raw = run(
        &[
            "hunt",
            "samples/real/mlflow-auth/mlflow-auth-access.log",
            "--rules",
            rules,
            "--json",
            "--no-builtin-pipelines",
        ],
        None,
    );
    let raw_alerts = ndjson(&raw.stdout);
    assert!(
        raw_alerts
            .iter()
            .any(|a| s(a, "rule.name") == "Not a signed Windows binary")
    );
    assert!(
        raw_alerts
            .iter()
            .all(|a| s(a, "rule.name") != "Path traversal in a web request")
    );
}

#[test]
fn placeholder_rules_are_summed_up_and_load_with_values() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.yml"),
        "title: Login by a non-admin\nlogsource: {product: mlflow}\ndetection: {s: {user.name|expand: '%Admins%'}, condition: not s}\nlevel: low\n",
    )
    .unwrap();
    let rules = d.path().to_str().unwrap();
    let log = "127.0.0.1 - mallory [30/Nov/2026:10:00:00 +0000] \"GET /api/2.0/mlflow/experiments/search HTTP/1.1\" 200 2 \"-\" \"x\"\n";
    let out = run(
        &["hunt", "-", "--rules", rules, "--json"],
        Some(log.as_bytes()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "no usable rule: {stderr}");
    assert!(
        stderr.contains("1 rules not loaded: their `expand` placeholders have no values"),
        "{stderr}"
    );
    let out = run(
        &[
            "hunt",
            "-",
            "--rules",
            rules,
            "--json",
            "--placeholder",
            "Admins=admin,release-*",
        ],
        Some(log.as_bytes()),
    );
    let alerts = ndjson(&out.stdout);
    assert_eq!(alerts.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s(&alerts[0], "user.name"), "mallory");
}

/// A correlation over two files sees one timeline: the later file in path
/// order holds the earlier event. With `--order-buffer 1` the matched events
/// are ordered one batch at a time, the pair is missed, and hunt says why.
#[test]
fn hunt_correlates_across_files_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        logs.join("a.log"),
        "{\"timestamp\":\"2026-11-30T10:05:00Z\",\"step\":\"two\",\"user\":\"eve\"}\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("b.log"),
        "{\"timestamp\":\"2026-11-30T10:01:00Z\",\"step\":\"one\",\"user\":\"eve\"}\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("r.yml"),
        "title: one\nname: step_one\nlogsource: {}\ndetection: {s: {json.step: one}, condition: s}\n---\n\
         title: two\nname: step_two\nlogsource: {}\ndetection: {s: {json.step: two}, condition: s}\n---\n\
         title: one then two\nid: 3b0f9f5e-4d7c-4c55-9a55-0c1a2b3c4d5e\ncorrelation:\n  type: temporal_ordered\n  \
         rules: [step_one, step_two]\n  group-by: [json.user]\n  timespan: 10m\nlevel: high\n",
    )
    .unwrap();
    let (l, r) = (logs.to_str().unwrap(), rules.to_str().unwrap());
    let out = run(&["hunt", l, "--rules", r, "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = ndjson(&out.stdout);
    let names: Vec<&str> = alerts
        .iter()
        .filter_map(|a| a["rule"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["one then two"]);
    let out = run(
        &["hunt", l, "--rules", r, "--json", "--order-buffer", "1"],
        None,
    );
    assert!(ndjson(&out.stdout).is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("put in time order in 2 batches"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rules profile` counts, for each rule, the events it was evaluated on
/// and those it matched (the matches are the lines of the file that hold
/// the rule's value, counted here from the raw text), and prints a rule
/// title an attacker could have written escaped.
#[test]
fn rules_profile_counts_evaluations_and_matches() {
    let rules = rules_dir();
    let log = "samples/real/mlflow-auth/mlflow-auth-access.log";
    let out = run(
        &[
            "rules",
            "profile",
            log,
            "--rules",
            rules.path().to_str().unwrap(),
            "--json",
            "--no-progress",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert_eq!(doc["events"], lines, "one event per line");
    assert_eq!(doc["rules_loaded"], 2, "the correlation is not a rule");
    let rule = |title: &str| {
        doc["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["title"] == title)
            .unwrap_or_else(|| panic!("{title} in {doc}"))
            .clone()
    };
    let probes = text
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("..%2f"))
        .count() as u64;
    let failed = text.lines().filter(|l| l.contains("\" 401 ")).count() as u64;
    assert!(probes > 0 && failed > 0);
    for (title, want) in [
        ("MLflow artifact path traversal probe", probes),
        ("Failed MLflow login", failed),
    ] {
        let r = rule(title);
        assert_eq!(r["matches"], want, "{title}: {r}");
        assert!(r["evaluations"].as_u64().unwrap() >= want, "{r}");
        assert!(r["evaluations"].as_u64().unwrap() <= lines, "{r}");
    }
    let datasets = doc["datasets"].as_array().unwrap();
    let sum: u64 = datasets.iter().map(|d| d["events"].as_u64().unwrap()).sum();
    assert_eq!(sum, lines);
    let evals: u64 = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["evaluations"].as_u64().unwrap())
        .sum();
    assert_eq!(doc["evaluations"], evals);

    // The table: a hostile title is shown escaped.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("r.yml"),
        "title: \"Probe \\e[31mred\"\nlogsource: {product: mlflow}\ndetection:\n  s: {http.response.status_code: 401}\n  condition: s\nlevel: low\n",
    )
    .unwrap();
    let out = run(
        &[
            "rules",
            "profile",
            log,
            "--rules",
            d.path().to_str().unwrap(),
            "--no-progress",
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout}");
    assert!(stdout.contains(r"Probe \u{1b}[31mred"), "{stdout}");
    assert!(stdout.contains(&format!("{lines} events")), "{stdout}");
}
