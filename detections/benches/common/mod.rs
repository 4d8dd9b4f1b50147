//! Shared by the engine benchmark and the profiling example: the SigmaHQ
//! rule files in benchmark order and the events normalized from the samples.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use normalizer::{Normalizer, Options, Output, Registry};
use schema::{Event, RawRecord, Source, Timestamp};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Rule files, the families closest to our events first.
pub fn rule_files() -> Vec<PathBuf> {
    let root = repo().join("../shared/sigma/sigmahq");
    let mut files = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yml") {
                out.push(p);
            }
        }
    }
    walk(&root, &mut files);
    let rank = |p: &Path| {
        let s = p.to_string_lossy();
        [
            "/rules/web/",
            "/rules/cloud/",
            "/rules/application/",
            "/rules/linux/",
        ]
        .iter()
        .position(|k| s.contains(k))
        .unwrap_or(9)
    };
    files.sort_by_key(|p| rank(p));
    files
}

pub fn normalize(path: &Path) -> Vec<Event> {
    let norm = Normalizer::new(Registry::builtin(), Options::default());
    let source = Arc::new(Source {
        kind: "file",
        name: path.display().to_string(),
        format: None,
    });
    let text = std::fs::read(path).unwrap();
    let data = bytes::Bytes::from(text);
    let mut stream = norm.stream(source.clone(), Some(Timestamp(1_796_000_000_000_000_000)));
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            stream.push(
                RawRecord {
                    bytes: data.slice(start..i),
                    source: source.clone(),
                    offset: start as u64,
                    line,
                    received: Timestamp(1_796_000_000_000_000_000),
                    overflow_len: None,
                },
                &mut out,
            );
            start = i + 1;
        }
    }
    stream.finish(&mut out);
    out.into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub fn events(n: usize) -> Vec<Event> {
    let s = repo().join("samples");
    let files = [
        "real/mlflow-auth/mlflow-auth-access.log",
        "real/mlflow/mlflow-access.log",
        "real/mlflow/mlflow-server.log",
        "handwritten/nginx/access.log",
        "handwritten/cloudtrail/events.ndjson",
        "handwritten/kubernetes/audit.log",
    ];
    let mut base = Vec::new();
    for f in files {
        base.extend(normalize(&s.join(f)));
    }
    assert!(!base.is_empty());
    base.iter().cycle().take(n).cloned().collect()
}
