//! The ML threat rule pack (detections/rules): its tests pass, its
//! coverage documents are current and large enough, the benign real logs
//! raise no high or critical alert, and each attack scenario in
//! samples/scenarios raises exactly the alerts its expected.json lists.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{ndjson, repo, run};
use serde_json::Value;

#[test]
fn the_pack_passes_its_rule_tests() {
    let out = run(&["rules", "test", "detections/rules"], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let passed = stdout.lines().filter(|l| l.starts_with("PASS")).count();
    println!("{stderr}");
    assert!(passed >= 35, "only {passed} alerting rules pass:\n{stdout}");
    assert!(
        !stdout.contains("FAIL") && !stdout.contains("UNTESTED"),
        "{stdout}"
    );
}

/// The runner reports a failing case and an untested rule, and exits 1.
#[test]
fn rules_test_fails_on_a_wrong_case_and_an_untested_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("probe.yml"),
        "title: traversal probe\nid: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a01\nlogsource: {product: mlflow}\n\
         detection:\n  sel: {mlops.artifact.path|contains: '../'}\n  condition: sel\nlevel: high\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("other.yml"),
        "title: untested rule\nid: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a02\nlogsource: {product: mlflow}\n\
         detection:\n  sel: {mlops.api: users/create}\n  condition: sel\nlevel: low\n",
    )
    .unwrap();
    let real = repo().join("samples/real/mlflow/mlflow-access.log");
    std::fs::write(
        dir.path().join("probe.tests.yml"),
        format!(
            "cases:\n\
             - name: the probes fire\n  rule: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a01\n  expect: match\n  source: {0}\n  lines: '94-96'\n  alerts: 3\n\
             - name: wrongly claims the probes are quiet\n  rule: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a01\n  expect: no_match\n  source: {0}\n  lines: '94-95'\n\
             - name: wrong count\n  rule: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a01\n  expect: match\n  source: {0}\n  lines: '94-95'\n  alerts: 7\n",
            real.display()
        ),
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let out = run(&["rules", "test", d], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL     traversal probe"), "{stdout}");
    assert!(
        stdout.contains("wrongly claims the probes are quiet")
            && stdout.contains("expected no match, got 2 (at lines 94, 95)"),
        "{stdout}"
    );
    assert!(stdout.contains("expected 7 matches, got 2"), "{stdout}");
    assert!(
        stdout.contains("UNTESTED untested rule")
            && stdout.contains("missing a `match` case and a `no_match` case"),
        "{stdout}"
    );

    // A tests file with an unknown key is an error, not ignored.
    std::fs::write(
        dir.path().join("probe.tests.yml"),
        "cases:\n- name: x\n  rule: 5d0c6c84-1c1e-4b59-9c43-8d9b2f1b7a01\n  expect: match\n  logz: abc\n",
    )
    .unwrap();
    let out = run(&["rules", "test", d], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("not a valid tests file") && stdout.contains("logz"),
        "{stdout}"
    );
}

#[test]
fn coverage_documents_match_the_rules() {
    let md = run(&["rules", "coverage", "detections/rules"], None);
    assert!(
        md.status.success(),
        "{}",
        String::from_utf8_lossy(&md.stderr)
    );
    let committed = std::fs::read_to_string(repo().join("docs/detections.md")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&md.stdout) == committed,
        "docs/detections.md is stale: regenerate it with `mlsoc rules coverage detections/rules -o docs/detections.md`"
    );
    let nav = run(
        &[
            "rules",
            "coverage",
            "detections/rules",
            "--format",
            "navigator",
        ],
        None,
    );
    assert!(nav.status.success());
    let committed =
        std::fs::read_to_string(repo().join("docs/atlas-layer.json")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&nav.stdout) == committed,
        "docs/atlas-layer.json is stale: regenerate it with `mlsoc rules coverage detections/rules --format navigator -o docs/atlas-layer.json`"
    );
    let layer: Value = serde_json::from_slice(&nav.stdout).unwrap();
    assert_eq!(layer["domain"], "atlas-atlas");
    let techniques = layer["techniques"].as_array().unwrap();
    assert!(
        techniques.len() >= 15,
        "{} ATLAS techniques",
        techniques.len()
    );
    for t in techniques {
        let id = t["techniqueID"].as_str().unwrap();
        assert!(
            id.starts_with("AML.T") && id[5..9].chars().all(|c| c.is_ascii_digit()),
            "{id}"
        );
    }
    // Table rows: one per alerting rule.
    let rows = String::from_utf8_lossy(&md.stdout)
        .lines()
        .filter(|l| l.starts_with("| [") && l.contains("](../detections/rules/"))
        .count();
    assert!(rows >= 35, "{rows} rules in the coverage table");
}

/// Benign slices of the real captured logs (samples/real/README.md labels).
const BENIGN: &[(&str, Option<(usize, usize)>)] = &[
    ("mlflow/mlflow-access.log", Some((1, 93))),
    ("mlflow/mlflow-server.log", Some((1, 20))),
    ("mlflow-auth/mlflow-auth-access.log", Some((1, 43))),
    ("mlflow-auth/mlflow-auth-uvicorn-access.log", Some((1, 43))),
    ("jupyter/jupyter-server-info.log", Some((1, 18))),
    // The debug log's first wrong-token login is line 132.
    ("jupyter/jupyter-server-debug.log", Some((1, 131))),
    ("ray/ray-dashboard.log", Some((1, 117))),
    ("ray/session-logs/job-driver-train-resnet-0001.log", None),
    ("ray/session-logs/job-driver-preprocess-0002.log", None),
    ("torchserve/access_log.log", Some((1, 68))),
    ("moto/moto-server.log", None),
];

#[test]
fn benign_real_logs_raise_no_high_or_critical_alert() {
    let dir = tempfile::tempdir().unwrap();
    for (rel, range) in BENIGN {
        let text = std::fs::read_to_string(repo().join("samples/real").join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        let lines: Vec<&str> = text.lines().collect();
        let slice = match range {
            Some((a, b)) => &lines[a - 1..*b],
            None => &lines[..],
        };
        let dest = dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, slice.join("\n") + "\n").unwrap();
    }
    let out = run(&["hunt", dir.path().to_str().unwrap(), "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alerts = ndjson(&out.stdout);
    let loud: Vec<String> = alerts
        .iter()
        .filter(|a| matches!(a["rule"]["level"].as_str(), Some("high" | "critical")))
        .map(|a| {
            format!(
                "{} on {}",
                a["rule"]["name"], a["mlsoc"]["alert"]["events"][0]["event"]["original"]
            )
        })
        .collect();
    println!(
        "{} alerts over the benign logs, {} high or critical",
        alerts.len(),
        loud.len()
    );
    assert!(
        loud.is_empty(),
        "high/critical alerts on benign lines:\n{}",
        loud.join("\n")
    );
}

fn check_scenario(dir: &Path) -> Result<(), String> {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("expected.json: {e}"))?;
    let out = run(&["hunt", dir.to_str().unwrap(), "--json"], None);
    if !out.status.success() {
        return Err(format!(
            "hunt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let alerts = ndjson(&out.stdout);
    let mut got: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for a in &alerts {
        got.entry(a["rule"]["id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(a);
    }
    let mut problems = Vec::new();
    let mut want_ids = Vec::new();
    for e in expected["alerts"]
        .as_array()
        .ok_or("expected.json: no `alerts` list")?
    {
        let id = e["rule_id"]
            .as_str()
            .ok_or("expected alert without rule_id")?;
        want_ids.push(id.to_string());
        let count = e["count"].as_u64().unwrap_or(1) as usize;
        let have = got.get(id).map(Vec::as_slice).unwrap_or(&[]);
        if have.len() != count {
            problems.push(format!(
                "{} ({id}): expected {count} alerts, got {}",
                e["title"],
                have.len()
            ));
        }
        if let Some(fields) = e["fields"].as_object() {
            for a in have {
                for (path, want) in fields {
                    let v = common::at(a, path);
                    if v != Some(want) {
                        problems.push(format!(
                            "{} ({id}): alert field {path} is {v:?}, expected {want}",
                            e["title"]
                        ));
                    }
                }
            }
        }
    }
    for (id, list) in &got {
        if !want_ids.contains(id) {
            problems.push(format!(
                "unexpected alert {} ({id}) x{}",
                list[0]["rule"]["name"],
                list.len()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn each_attack_scenario_raises_exactly_its_expected_alerts() {
    let root = repo().join("samples/scenarios");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("samples/scenarios")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 4,
        "{} scenarios with an expected.json",
        dirs.len()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        match check_scenario(d) {
            Ok(()) => println!("scenario {}: ok", d.display()),
            Err(e) => failures.push(format!("scenario {}:\n{e}", d.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every alerting document of the pack carries what an analyst and the
/// coverage table need: id, title, description, references, an ATLAS tag,
/// level, false positives, a suggested response, and a log source naming
/// the component (a generic web request rule or a rule for every log line
/// may name none).
#[test]
fn every_alerting_rule_has_its_metadata() {
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yml")
                && !p.to_string_lossy().ends_with(".tests.yml")
            {
                out.push(p);
            }
        }
    }
    walk(&repo().join("detections/rules"), &mut files);
    assert!(!files.is_empty());
    let mut problems = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(&text)
            .map(|d| <serde_norway::Value as serde::Deserialize>::deserialize(d).unwrap())
            .collect();
        let mut referenced = std::collections::BTreeSet::new();
        for d in &docs {
            if let Some(rules) = d
                .get("correlation")
                .and_then(|c| c.get("rules"))
                .and_then(|r| r.as_sequence())
            {
                referenced.extend(rules.iter().filter_map(|r| r.as_str().map(str::to_string)));
            }
        }
        for d in &docs {
            let title = d.get("title").and_then(|t| t.as_str()).unwrap_or("?");
            let id = d.get("id").and_then(|t| t.as_str()).unwrap_or("");
            if id.len() != 36 || !ids.insert(id.to_string()) {
                problems.push(format!(
                    "{}: {title}: id `{id}` is not a unique UUID",
                    f.display()
                ));
            }
            let name = d.get("name").and_then(|t| t.as_str()).unwrap_or("");
            let is_correlation = d.get("correlation").is_some();
            if referenced.contains(name) || referenced.contains(id) {
                continue; // an input of a correlation: it does not alert
            }
            for key in [
                "description",
                "references",
                "tags",
                "level",
                "falsepositives",
                "response",
            ] {
                let present = match d.get(key) {
                    Some(serde_norway::Value::String(s)) => !s.trim().is_empty(),
                    Some(serde_norway::Value::Sequence(s)) => !s.is_empty(),
                    _ => false,
                };
                if !present {
                    problems.push(format!("{}: {title}: no `{key}`", f.display()));
                }
            }
            let tags: Vec<&str> = d
                .get("tags")
                .and_then(|t| t.as_sequence())
                .map(|t| t.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            if !tags.iter().any(|t| t.starts_with("atlas.aml.")) {
                problems.push(format!("{}: {title}: no MITRE ATLAS tag", f.display()));
            }
            if !is_correlation {
                let ls = d.get("logsource");
                let has = |k: &str| ls.and_then(|l| l.get(k)).is_some();
                let generic = has("category")
                    || ls
                        .and_then(|l| l.as_mapping())
                        .is_some_and(|m| m.is_empty());
                if !has("product") && !generic {
                    problems.push(format!(
                        "{}: {title}: the logsource names no product",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
