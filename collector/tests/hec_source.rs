//! The HEC receiver over real HTTP(S), with a fake pipeline on the other
//! end of its channel.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use collector::SourceBatch;
use collector::hec::{HecServer, HecSourceConfig, TlsServerConfig};
use schema::AckStatus;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const CHANNEL: &str = "01234567-89ab-cdef-0123-456789abcdef";

struct Source {
    addr: SocketAddr,
    rx: mpsc::Receiver<SourceBatch>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
    base: String,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

async fn start_with(mut config: HecSourceConfig, capacity: usize) -> Source {
    config.address = "127.0.0.1:0".parse().unwrap();
    let tls = config.tls.is_some();
    let server = HecServer::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = mpsc::channel(capacity);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        server.run("hec_in".into(), tx, s).await.unwrap();
    });
    Source {
        addr,
        rx,
        stop,
        task,
        client: reqwest::Client::new(),
        base: format!("{}://{addr}", if tls { "https" } else { "http" }),
    }
}

async fn start(config: HecSourceConfig) -> Source {
    start_with(config, 16).await
}

fn config() -> HecSourceConfig {
    let mut c = HecSourceConfig::new("127.0.0.1:0".parse().unwrap(), &[TOKEN]);
    c.busy_timeout = Duration::from_millis(200);
    c.ack_timeout = Duration::from_secs(5);
    c
}

impl Source {
    fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Splunk {TOKEN}"))
            .body(body)
    }

    /// Takes the next batch and completes its ack with `status`.
    async fn take(&mut self, status: AckStatus) -> SourceBatch {
        let mut b = tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a batch reaches the pipeline")
            .unwrap();
        let ack = std::mem::replace(&mut b.ack, schema::Ack::none());
        ack.complete(status);
        b
    }
}

async fn answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn texts(b: &SourceBatch) -> Vec<String> {
    b.records
        .iter()
        .map(|r| String::from_utf8(r.bytes.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn event_endpoint_answers_success_once_delivered() {
    let mut c = config();
    c.sourcetype_formats
        .insert("mlflow:access".into(), "mlflow.access".into());
    let mut src = start(c).await;
    let body = r#"{"event":"GET /api 200","sourcetype":"mlflow:access","time":1700000000.5,"host":"h"}
{"event":{"user":"alice","action":"login"},"fields":{"k":"v"}}{"event":"x","sourcetype":"mlflow:access"}"#;
    let req = src.post("/services/collector/event", body).send();
    let pending = tokio::spawn(req);
    // Two formats in one request: two batches sharing one ack.
    let a = src.take(AckStatus::Delivered).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !pending.is_finished(),
        "no answer before every batch is delivered"
    );
    let b = src.take(AckStatus::Delivered).await;
    let (status, body) = answer(pending.await.unwrap().unwrap()).await;
    assert_eq!((status, body), (200, json!({"text":"Success","code":0})));
    assert_eq!(texts(&a), vec!["GET /api 200", "x"]);
    assert_eq!(a.source.format.as_deref(), Some("mlflow.access"));
    assert_eq!(a.source.kind, "http");
    assert_eq!(a.source.name, format!("hec://{}", src.addr));
    assert!(a.end_of_stream);
    let v: Value = serde_json::from_slice(&b.records[0].bytes).unwrap();
    assert_eq!(v, json!({"user":"alice","action":"login"}));
    assert_eq!(b.source.format, None);
    assert_ne!(a.stream, b.stream);

    // The alias path, and a failed delivery: 503 / 9 so the client resends.
    let pending = tokio::spawn(src.post("/services/collector", r#"{"event":"y"}"#).send());
    src.take(AckStatus::Failed).await;
    let (status, body) = answer(pending.await.unwrap().unwrap()).await;
    assert_eq!((status, body["code"].clone()), (503, json!(9)));
}

#[tokio::test]
async fn token_checks() {
    let src = start(config()).await;
    let url = format!("{}/services/collector/event", src.base);
    let cases: Vec<(Option<String>, &str, u16, i64)> = vec![
        (None, "", 401, 2),
        (Some(format!("Bearer {TOKEN}")), "", 401, 3),
        (Some("Splunk wrong-token".into()), "", 403, 4),
        (None, "?token=whatever", 400, 16),
    ];
    for (auth, query, status, code) in cases {
        let mut req = src
            .client
            .post(format!("{url}{query}"))
            .body(r#"{"event":"x"}"#);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let (s, body) = answer(req.send().await.unwrap()).await;
        assert_eq!(
            (s, body["code"].as_i64().unwrap()),
            (status, code),
            "{body}"
        );
    }
}

#[tokio::test]
async fn raw_endpoint_one_record_per_line_with_a_channel_and_gzip() {
    let mut src = start(config()).await;
    let (s, body) = answer(
        src.post("/services/collector/raw", "a\nb\n")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (400, json!(10)));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"line 1\r\n\nline 2\n  \nline 3").unwrap();
    let pending = tokio::spawn(
        src.post(
            &format!("/services/collector/raw?channel={CHANNEL}&sourcetype=x"),
            gz.finish().unwrap(),
        )
        .header("Content-Encoding", "gzip")
        .send(),
    );
    let b = src.take(AckStatus::Delivered).await;
    assert_eq!(texts(&b), vec!["line 1", "line 2", "line 3"]);
    assert_eq!(b.records[2].line, 3);
    let (s, _) = answer(pending.await.unwrap().unwrap()).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn malformed_bodies_get_their_code_and_never_panic() {
    let mut c = config();
    c.max_body_bytes = 1024 * 1024;
    let src = start(c).await;
    let huge = vec![b'a'; 10 * 1024 * 1024];
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b' '; 8 * 1024 * 1024]).unwrap();
    let bomb = bomb.finish().unwrap();
    // (body, Content-Encoding, HTTP status, HEC code)
    type Case = (Vec<u8>, Option<&'static str>, u16, Option<i64>);
    let cases: Vec<Case> = vec![
        (b"".to_vec(), None, 400, Some(5)),
        (b"   \n".to_vec(), None, 400, Some(5)),
        (b"{\"event\":\"\xff\xfe\"}".to_vec(), None, 400, Some(6)),
        (br#"{"event":"trunc"#.to_vec(), None, 400, Some(6)),
        (
            br#"{"time":"noon","event":"x"}"#.to_vec(),
            None,
            400,
            Some(6),
        ),
        (br#"{"host":"h"}"#.to_vec(), None, 400, Some(12)),
        (br#"{"event":"  "}"#.to_vec(), None, 400, Some(13)),
        (
            br#"{"event":"x","fields":{"a":{"b":1}}}"#.to_vec(),
            None,
            400,
            Some(15),
        ),
        (b"\x00\x01\x02binary noise\xff".to_vec(), None, 400, Some(6)),
        (b"not gzip at all".to_vec(), Some("gzip"), 400, Some(6)),
        (bomb, Some("gzip"), 413, None),
        (huge, None, 413, None),
        (br#"{"event":"x"}"#.to_vec(), Some("br"), 415, None),
    ];
    for (body, encoding, status, code) in cases {
        let mut req = src.post("/services/collector/event", body.clone());
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        let (s, answer) = match req.send().await {
            Ok(r) => answer(r).await,
            // A server may close early on a body it refuses to read.
            Err(e) if status == 413 => {
                eprintln!("413 case closed early: {e}");
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            (s, answer.get("code").and_then(Value::as_i64)),
            (status, code),
            "{} -> {answer}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        if code == Some(6) && encoding.is_none() {
            // A body that is no gzip at all is refused whole, without an
            // event number; bad envelopes name theirs.
            assert_eq!(answer["invalid-event-number"], 0);
        }
    }
    let health = src
        .client
        .get(format!("{}/services/collector/health", src.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer(health).await,
        (200, json!({"text":"HEC is healthy","code":17}))
    );
}

#[tokio::test]
async fn an_invalid_event_keeps_the_ones_before_it() {
    let mut src = start(config()).await;
    let body = r#"{"event":"one"}{"event":"two"}{"event":""}{"event":"four"}"#;
    let pending = tokio::spawn(src.post("/services/collector/event", body).send());
    let b = src.take(AckStatus::Delivered).await;
    assert_eq!(texts(&b), vec!["one", "two"]);
    let (s, body) = answer(pending.await.unwrap().unwrap()).await;
    assert_eq!(
        (s, body),
        (
            400,
            json!({"text":"Event field cannot be blank","code":13,"invalid-event-number":2})
        )
    );
}

#[tokio::test]
async fn a_full_pipeline_answers_server_busy() {
    let mut src = start_with(config(), 1).await;
    // The first request fills the channel and waits for its delivery.
    let first = tokio::spawn(
        src.post("/services/collector/event", r#"{"event":"1"}"#)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let (s, body) = answer(
        src.post("/services/collector/event", r#"{"event":"2"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body), (503, json!({"text":"Server is busy","code":9})));
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "waited busy_timeout first"
    );
    let health = src
        .client
        .get(format!("{}/services/collector/health", src.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(health).await.1["code"], 18);
    src.take(AckStatus::Delivered).await;
    assert_eq!(answer(first.await.unwrap().unwrap()).await.0, 200);
}

#[tokio::test]
async fn indexer_acknowledgement() {
    let mut c = config();
    c.acknowledgements = true;
    let mut src = start(c).await;
    let (s, body) = answer(
        src.post("/services/collector/event", r#"{"event":"x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (400, json!(10)));
    let (s, body) = answer(
        src.post("/services/collector/event", r#"{"event":"x"}"#)
            .header("X-Splunk-Request-Channel", "nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, body["code"].clone()), (400, json!(11)));

    let send = |n: u32| {
        src.post("/services/collector/event", format!(r#"{{"event":"{n}"}}"#))
            .header("X-Splunk-Request-Channel", CHANNEL)
            .send()
    };
    // Answered at once, before delivery.
    let (s, a0) = answer(send(0).await.unwrap()).await;
    assert_eq!((s, a0), (200, json!({"text":"Success","code":0,"ackId":0})));
    let (_, a1) = answer(send(1).await.unwrap()).await;
    assert_eq!(a1["ackId"], 1);
    fn poll(src: &Source, ids: &str) -> impl Future<Output = reqwest::Result<reqwest::Response>> {
        src.post("/services/collector/ack", format!(r#"{{"acks":{ids}}}"#))
            .header("X-Splunk-Request-Channel", CHANNEL)
            .send()
    }
    let (_, acks) = answer(poll(&src, "[0,1,7]").await.unwrap()).await;
    assert_eq!(acks, json!({"acks":{"0":false,"1":false,"7":false}}));
    src.take(AckStatus::Delivered).await;
    src.take(AckStatus::Failed).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, acks) = answer(poll(&src, "[0,1]").await.unwrap()).await;
    assert_eq!(acks, json!({"acks":{"0":true,"1":false}}));
    // Reported once, then released.
    let (_, acks) = answer(poll(&src, "[0]").await.unwrap()).await;
    assert_eq!(acks, json!({"acks":{"0":false}}));
    let (s, body) = answer(poll(&src, "nonsense").await.unwrap()).await;
    assert_eq!((s, body["code"].clone()), (400, json!(6)));
}

#[tokio::test]
async fn ack_endpoint_without_acknowledgements_is_disabled() {
    let src = start(config()).await;
    let (s, body) = answer(
        src.post("/services/collector/ack", r#"{"acks":[0]}"#)
            .header("X-Splunk-Request-Channel", CHANNEL)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, body),
        (400, json!({"text":"ACK is disabled","code":14}))
    );
}

#[tokio::test]
async fn tls_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut c = config();
    c.tls = Some(TlsServerConfig {
        cert_file: dir.path().join("cert.pem"),
        key_file: dir.path().join("key.pem"),
    });
    let mut src = start(c).await;
    src.client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", src.addr)
        .build()
        .unwrap();
    src.base = format!("https://localhost:{}", src.addr.port());
    let pending = tokio::spawn(
        src.post("/services/collector/event", r#"{"event":"secure"}"#)
            .send(),
    );
    let b = src.take(AckStatus::Delivered).await;
    assert_eq!(texts(&b), vec!["secure"]);
    assert!(b.source.name.starts_with("hecs://"));
    assert_eq!(answer(pending.await.unwrap().unwrap()).await.0, 200);
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/services/collector/health", src.addr))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn stops_when_told() {
    let src = start(config()).await;
    src.stop.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), async {
            while !src.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn more_formats_than_the_channel_holds_make_one_batch() {
    let mut c = config();
    c.sourcetype_formats.insert("a".into(), "fmt.a".into());
    c.sourcetype_formats.insert("b".into(), "fmt.b".into());
    let mut src = start_with(c, 1).await;
    let body = r#"{"event":"1","sourcetype":"a"}{"event":"2","sourcetype":"b"}"#;
    let pending = tokio::spawn(src.post("/services/collector/event", body).send());
    let b = src.take(AckStatus::Delivered).await;
    assert_eq!(texts(&b), vec!["1", "2"]);
    assert_eq!(b.source.format, None);
    assert_eq!(answer(pending.await.unwrap().unwrap()).await.0, 200);
}

/// Splunk's own Node.js logging library against the receiver, when node
/// and `scripts/setup-node-clients.sh` are available (skipped otherwise,
/// with a message; testkit's test of the fake installs the library).
#[tokio::test]
async fn splunk_logging_client_pushes_to_the_receiver() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let modules = root.join("target/npmclients/node_modules");
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
        || !modules.join("splunk-logging/package.json").exists()
    {
        eprintln!(
            "SKIPPED: node or target/npmclients/splunk-logging missing (run scripts/setup-node-clients.sh)"
        );
        return;
    }
    let mut src = start(config()).await;
    let script = r#"
const SplunkLogger = require("splunk-logging").Logger;
const logger = new SplunkLogger({ token: process.env.HEC_TOKEN, url: process.env.HEC_URL });
logger.error = (err) => console.log(JSON.stringify({ error: String(err.message || err) }));
logger.send({ message: { action: "model_download", model: "fraud-v3" }, metadata: { sourcetype: "mlops:audit" } },
  (err, resp, body) => console.log(JSON.stringify({ status: resp ? resp.statusCode : null, body })));
"#;
    let url = src.base.clone();
    let node = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("-e")
            .arg(script)
            .env("NODE_PATH", &modules)
            .env("HEC_URL", url)
            .env("HEC_TOKEN", TOKEN)
            .output()
            .unwrap()
    });
    let b = src.take(AckStatus::Delivered).await;
    let v: Value = serde_json::from_slice(&b.records[0].bytes).unwrap();
    assert_eq!(
        v,
        json!({"message": {"action": "model_download", "model": "fraud-v3"}, "severity": "info"})
    );
    let out = node.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        line,
        json!({"status": 200, "body": {"text": "Success", "code": 0}})
    );
}
