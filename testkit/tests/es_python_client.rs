//! The fake Elasticsearch against the official Python client
//! (`elasticsearch>=9` from PyPI, installed into `target/pyclients` by
//! `scripts/setup-python-clients.sh`): if a real client misreads an answer,
//! the fake is not wire-faithful.
//!
//! Skipped (with a message) only when python3 is not installed.

use std::path::PathBuf;
use std::process::Command;

use testkit::es::{FakeEs, ItemError, ItemRule};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is inside the workspace")
        .to_path_buf()
}

fn python3_missing() -> bool {
    Command::new("python3").arg("--version").output().is_err()
}

#[test]
fn official_python_client_understands_the_fake() {
    if python3_missing() {
        println!("SKIPPED official_python_client_understands_the_fake: python3 is not installed");
        return;
    }
    let root = repo_root();
    let python = root.join("target/pyclients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python-clients.sh (installs the official clients from PyPI)",
        python.display()
    );
    let es = FakeEs::builder()
        .basic_auth("elastic", "changeme")
        .start_blocking();
    es.fail_items(ItemRule::source_contains(
        "FAIL-ME",
        ItemError::mapping("n", "long", "FAIL-ME"),
    ));
    let out = Command::new(&python)
        .arg(root.join("testkit/tests/es_python_client.py"))
        .args([es.url().as_str(), "elastic", "changeme"])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["bulk_index_error"], "document_parsing_exception");
    assert_eq!(
        seen["bulk_statuses"],
        serde_json::json!([201, 201, 409, 200, 404, 201])
    );

    // What the client left in the fake.
    assert_eq!(es.docs("py-helpers").len(), 100);
    assert!(es.is_data_stream("py-ds-app"));
    assert_eq!(es.docs("py-ds-app").len(), 5);
    assert_eq!(
        es.doc("py-index", "2").unwrap(),
        serde_json::json!({"a": 2, "b": 2})
    );
    let reqs = es.requests();
    let bulk = reqs.iter().find(|r| r.path == "/_bulk").unwrap();
    assert!(
        bulk.header("content-type").unwrap().contains("x-ndjson"),
        "{:?}",
        bulk.header("content-type")
    );
    assert!(
        reqs.iter()
            .any(|r| r.header("content-encoding") == Some("gzip") && r.status == 200),
        "the gzip request was accepted"
    );
    assert!(reqs.iter().any(|r| r.status == 401));
}
