//! Bad input gets a dead-letter record with a reason, never a panic, a hang
//! or a silent drop: invalid UTF-8, truncated JSON, a 10 MB line, NUL bytes,
//! an empty file, a binary file, a truncated gzip file.

mod common;

use std::io::Write;

use common::{ndjson, normalize, run, s};

#[test]
fn invalid_utf8_and_nul_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.log");
    std::fs::write(
        &p,
        b"2026/11/30 00:30:56 INFO:     127.0.0.1:1 - \"GET /health HTTP/1.1\" 200 OK\n\
          2026/11/30 00:30:57 INFO:     127.0.0.1:1 - \"GET /\xff\xfe HTTP/1.1\" 200 OK\n\
          2026/11/30 00:30:58 INFO:     127.0.0.1:1 - \"GET /a\x00b HTTP/1.1\" 200 OK\n\
          2026/11/30 00:30:59 INFO:     127.0.0.1:1 - \"GET /version HTTP/1.1\" 200 OK\n",
    )
    .unwrap();
    let r = normalize(dir.path(), &[p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events.len(), 2);
    assert_eq!(r.dead.len(), 2);
    let utf8 = &r.dead[0];
    assert!(
        s(utf8, "reason").contains("invalid UTF-8 at byte 50 of the record"),
        "{utf8}"
    );
    assert_eq!(utf8["line"], 2);
    assert!(
        utf8.get("original").is_none(),
        "binary originals are base64: {utf8}"
    );
    assert!(s(utf8, "original_base64").len() > 10);
    let nul = &r.dead[1];
    assert!(s(nul, "reason").contains("NUL byte"), "{nul}");
    assert_eq!(nul["line"], 3);
    assert_eq!(nul["offset"], 144);
}

#[test]
fn truncated_json_in_a_json_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("audit.log");
    let good = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"alice"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"pods","apiVersion":"v1"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-11-30T10:00:00Z","stageTimestamp":"2026-11-30T10:00:00Z"}"#;
    let mut f = std::fs::File::create(&p).unwrap();
    for _ in 0..3 {
        writeln!(f, "{good}").unwrap();
    }
    writeln!(f, "{}", &good[..good.len() / 2]).unwrap();
    writeln!(f, "{good}").unwrap();
    drop(f);
    let r = normalize(dir.path(), &[p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events.len(), 4);
    assert_eq!(r.summary["per_input"][0]["format"], "kubernetes.audit");
    assert_eq!(r.dead.len(), 1);
    let d = &r.dead[0];
    assert_eq!(d["line"], 4);
    assert_eq!(d["format"], "kubernetes.audit");
    assert!(s(d, "reason").contains("EOF while parsing"), "{d}");
    assert_eq!(s(d, "original"), &good[..good.len() / 2]);
}

#[test]
fn ten_megabyte_line_keeps_its_head_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.log");
    let mut content =
        b"[I 2026-11-30 00:36:24.598 ServerApp] before\n[I 2026-11-30 00:36:25.000 ServerApp] "
            .to_vec();
    content.extend(std::iter::repeat_n(b'A', 10 * 1024 * 1024));
    content.extend_from_slice(b"\n[I 2026-11-30 00:36:26.000 ServerApp] after\n");
    std::fs::write(&p, &content).unwrap();
    let r = normalize(dir.path(), &[p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events.len(), 2, "the lines before and after survive");
    assert_eq!(r.dead.len(), 1);
    let d = &r.dead[0];
    assert_eq!(d["truncated"], true);
    assert_eq!(d["original_length"], 10 * 1024 * 1024 + 38);
    assert!(
        s(d, "reason").contains("over the limit of 1048576 bytes"),
        "{d}"
    );
    let kept = s(d, "original");
    assert!(
        kept.starts_with("[I 2026-11-30 00:36:25.000 ServerApp] AAAA") && kept.len() <= 64 * 1024
    );
    assert_eq!(r.summary["lines"], 3);
}

#[test]
fn empty_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    let bin = dir.path().join("model.bin");
    // Deterministic noise, like a pickled model dropped into a log folder.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&bin, &noise).unwrap();
    let r = normalize(
        dir.path(),
        &[empty.to_str().unwrap(), bin.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["empty_inputs"], 1);
    let lines = noise
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    let bin_report = &r.summary["per_input"][1];
    let accounted = bin_report["events"].as_u64().unwrap()
        + bin_report["dead_letters"].as_u64().unwrap()
        + bin_report["blank_lines"].as_u64().unwrap();
    assert!(
        bin_report["dead_letters"].as_u64().unwrap() > lines / 2,
        "binary lines are dead letters: {bin_report}"
    );
    assert!(
        accounted >= lines,
        "{accounted} of {lines} lines accounted for: {bin_report}"
    );
    assert!(
        r.dead
            .iter()
            .all(|d| d["original_base64"].is_string()
                || d["reason"].as_str().unwrap().contains("NUL"))
    );
}

#[test]
fn gzip_and_truncated_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let text = "2026/11/30 00:30:56 INFO:     127.0.0.1:1 - \"GET /health HTTP/1.1\" 200 OK\n"
        .repeat(2000);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let whole = dir.path().join("access.log.1.gz");
    std::fs::write(&whole, &gz).unwrap();
    let r = normalize(dir.path(), &[whole.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.events.len(), r.dead.len()),
        (0, 2000, 0),
        "{}",
        r.stderr
    );

    let cut = dir.path().join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let r = normalize(dir.path(), &[cut.to_str().unwrap()]);
    assert_eq!(
        r.code, 3,
        "a truncated input is reported with exit code 3: {}",
        r.stderr
    );
    assert!(r.stderr.contains("read error"), "{}", r.stderr);
    assert!(!r.events.is_empty() && r.events.len() < 2000);
    let last = r.dead.last().expect("the cut is a dead letter");
    assert!(s(last, "reason").contains("read error"), "{last}");
}

#[test]
fn pretty_printed_cloudtrail_document_and_oversized_document() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cloudtrail.json");
    let rec = |name: &str| {
        format!(
            r#"    {{"eventVersion": "1.10", "eventTime": "2026-11-30T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "{name}", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.1", "userIdentity": {{"type": "IAMUser", "userName": "bob"}}, "requestParameters": {{"bucketName": "ml-models", "key": "m.pkl"}}, "eventID": "{name}-1"}}"#
        )
    };
    std::fs::write(
        &p,
        format!(
            "{{\n  \"Records\": [\n{},\n{}\n  ]\n}}\n",
            rec("GetObject"),
            rec("PutObject")
        ),
    )
    .unwrap();
    let r = normalize(dir.path(), &[p.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.events.len(), 2);
    assert_eq!(s(&r.events[1], "event.action"), "PutObject");
    assert_eq!(r.summary["lines"], 6);

    let r = normalize(
        dir.path(),
        &["--max-document-bytes", "100", p.to_str().unwrap()],
    );
    assert_eq!(r.events.len(), 0);
    assert_eq!(r.dead.len(), 1);
    assert!(
        s(&r.dead[0], "reason").contains("over the limit"),
        "{}",
        r.dead[0]
    );
}

#[test]
fn stdin_and_strict_mode() {
    let out = run(
        &[
            "normalize",
            "--strict",
            "--now",
            "2026-11-30T12:00:00Z",
            "-",
        ],
        Some(b"\xff\nplain text\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "--strict fails when anything was dead-lettered"
    );
    let events = ndjson(&out.stdout);
    assert_eq!(events.len(), 1);
    assert_eq!(s(&events[0], "message"), "plain text");
    assert_eq!(s(&events[0], "@timestamp"), "2026-11-30T12:00:00Z");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"reason\":\"invalid UTF-8"),
        "without --dlq, dead letters go to stderr: {stderr}"
    );
}
