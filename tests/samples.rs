//! Every line of every log file in `samples/` ends as an event or a
//! dead-letter record: the outputs, put back in offset order, rebuild each
//! file line for line (blank lines outside records excepted).

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::{at, normalize};
use serde_json::Value;

#[test]
fn every_sample_line_becomes_an_event_or_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let r = normalize(dir.path(), &["samples"]);
    assert_eq!(r.code, 0, "mlsoc failed: {}", r.stderr);
    let summary = r.summary;

    // Outputs per source file: (offset, original bytes).
    let mut by_file: BTreeMap<String, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for e in &r.events {
        let path = at(e, "log.file.path")
            .and_then(Value::as_str)
            .expect("file events carry log.file.path")
            .to_string();
        let off = at(e, "log.offset")
            .and_then(Value::as_u64)
            .expect("log.offset");
        let orig = at(e, "event.original")
            .and_then(Value::as_str)
            .expect("event.original");
        by_file
            .entry(path)
            .or_default()
            .push((off, orig.as_bytes().to_vec()));
    }
    for d in &r.dead {
        assert_eq!(
            d["truncated"].as_bool(),
            None,
            "no sample line is over the length limit: {d}"
        );
        let orig = match (d["original"].as_str(), d["original_base64"].as_str()) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
            _ => panic!("dead letter without original: {d}"),
        };
        by_file
            .entry(d["source"].as_str().unwrap().to_string())
            .or_default()
            .push((d["offset"].as_u64().unwrap(), orig));
    }

    let inputs = summary["per_input"].as_array().unwrap();
    assert!(
        inputs.len() > 100,
        "samples/ holds the real captures ({} inputs)",
        inputs.len()
    );
    let mut checked_lines = 0u64;
    for input in inputs {
        let path = input["source"].as_str().unwrap();
        assert!(input.get("error").is_none(), "{path}: {input}");
        let content = std::fs::read(common::repo().join(path)).unwrap();
        let mut records = by_file.remove(path).unwrap_or_default();
        if content.starts_with(&[0x1f, 0x8b]) {
            assert!(!records.is_empty(), "{path}: gzip input gave nothing");
            continue; // the text is compressed: line checks are in the dead-letter tests
        }
        let lines = split_lines(&content);
        assert_eq!(
            input["lines"].as_u64().unwrap(),
            lines.len() as u64,
            "{path}: line count"
        );
        records.sort_by_key(|r| r.0);
        // Exploded JSON documents share one offset; each carries its own slice.
        if records.windows(2).any(|w| w[0].0 == w[1].0) {
            continue;
        }
        let mut covered = vec![false; lines.len()];
        let starts: BTreeMap<u64, usize> = lines
            .iter()
            .enumerate()
            .map(|(i, (off, _))| (*off, i))
            .collect();
        for (off, orig) in &records {
            let first = *starts.get(off).unwrap_or_else(|| {
                panic!("{path}: a record starts at {off}, which is not a line start")
            });
            let n = orig.iter().filter(|&&c| c == b'\n').count() + 1;
            let joined: Vec<u8> = lines[first..first + n]
                .iter()
                .map(|(_, l)| l.as_slice())
                .collect::<Vec<_>>()
                .join(&b"\n"[..]);
            assert_eq!(
                String::from_utf8_lossy(&joined),
                String::from_utf8_lossy(orig),
                "{path}: the record at offset {off} is not the text of lines {}..{}",
                first + 1,
                first + n
            );
            for c in &mut covered[first..first + n] {
                assert!(!*c, "{path}: line covered twice");
                *c = true;
            }
        }
        for (i, (_, l)) in lines.iter().enumerate() {
            if !covered[i] {
                assert!(
                    l.iter().all(u8::is_ascii_whitespace),
                    "{path}:{}: line lost: {:?}",
                    i + 1,
                    String::from_utf8_lossy(l)
                );
            }
        }
        checked_lines += lines.len() as u64;
    }
    assert!(
        by_file.is_empty(),
        "outputs for files not in the summary: {:?}",
        by_file.keys().collect::<Vec<_>>()
    );
    assert!(checked_lines > 5000, "checked {checked_lines} lines");
    eprintln!("checked {checked_lines} lines in {} inputs", inputs.len());
}

/// (offset, line without terminator) as the collector splits them.
fn split_lines(b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < b.len() {
        let end = b[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |i| start + i);
        let mut line = &b[start..end];
        if end < b.len() && line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        out.push((start as u64, line.to_vec()));
        start = end + 1;
    }
    out
}
