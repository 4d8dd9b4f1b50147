//! Golden files: for every built-in format, hand-written expected ECS output
//! for a few records (samples/golden/README.md says how they were written).

mod common;

use common::{ndjson, run};
use serde_json::Value;

fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match a.get(k) {
                    Some(av) => diff(&p, ev, av, out),
                    None => out.push(format!("{p}: expected {ev}, missing")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    out.push(format!("{p}: unexpected {av}"));
                }
            }
        }
        (e, a) if e != a => out.push(format!("{path}: expected {e}, got {a}")),
        _ => {}
    }
}

#[test]
fn every_format_matches_its_golden_file() {
    let dir = common::repo().join("samples/golden");
    let formats = run(&["formats", "--json"], None);
    let formats: Value = serde_json::from_slice(&formats.stdout).unwrap();
    let mut failures = Vec::new();
    let mut covered = std::collections::BTreeSet::new();
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    for input in inputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
    {
        let name = input.file_stem().unwrap().to_str().unwrap();
        let format = name.strip_suffix("-records").unwrap_or(name);
        covered.insert(format.to_string());
        let rel = format!("samples/golden/{name}.log");
        let out = run(
            &[
                "normalize",
                "--format",
                format,
                "--now",
                "2026-11-30T12:00:00Z",
                "--timezone",
                "UTC",
                &rel,
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let actual = ndjson(&out.stdout);
        let expected = common::read_ndjson(&dir.join(format!("{name}.expected.ndjson")));
        if actual.len() != expected.len() {
            failures.push(format!(
                "{name}: expected {} events, got {}",
                expected.len(),
                actual.len()
            ));
            continue;
        }
        for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
            let mut d = Vec::new();
            diff("", e, a, &mut d);
            for line in d {
                failures.push(format!("{name} event {}: {line}", i + 1));
            }
        }
    }
    for f in formats.as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        if !covered.contains(name) {
            failures.push(format!("format {name} has no golden file"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
