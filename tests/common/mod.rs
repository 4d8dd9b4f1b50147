//! Helpers for the end-to-end tests: run the `mlsoc` binary, read NDJSON.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn mlsoc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlsoc"));
    c.current_dir(repo());
    c
}

/// Runs mlsoc with the given arguments and stdin.
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = mlsoc();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn mlsoc");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().unwrap();
        let data = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    child.wait_with_output().expect("wait for mlsoc")
}

pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect()
}

pub fn read_ndjson(p: &Path) -> Vec<Value> {
    ndjson(&std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

/// A dotted path into a JSON value.
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

pub fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {path} in {v}"))
}

/// What `mlsoc normalize` produced, read back.
pub struct Run {
    pub code: i32,
    pub events: Vec<Value>,
    pub dead: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
}

/// Runs `mlsoc normalize ARGS` with events, dead letters and the summary
/// written to files in `dir`, and the clock pinned.
pub fn normalize(dir: &Path, args: &[&str]) -> Run {
    let events = dir.join("events.ndjson");
    let dlq = dir.join("dlq.ndjson");
    let summary = dir.join("summary.json");
    let mut all = vec![
        "normalize",
        "-o",
        events.to_str().unwrap(),
        "--dlq",
        dlq.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--now",
        "2026-11-30T12:00:00Z",
    ];
    all.extend_from_slice(args);
    let out = run(&all, None);
    Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        events: read_ndjson(&events),
        dead: read_ndjson(&dlq),
        summary: serde_json::from_slice(&std::fs::read(&summary).unwrap_or_default())
            .unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
