//! The sink against `testkit::es::FakeEs`, which answers as Elasticsearch
//! does (wire-contracts §4.1), including its failures.

use std::sync::{Arc, mpsc};
use std::time::Duration;

use bytes::Bytes;
use schema::{Ack, AckStatus};
use serde_json::{Value, json};
use testkit::es::{FakeEs, ItemError, ItemRule, Scripted};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::buffer::{self, BufferConfig, BufferSender};
use crate::record::Stream;
use crate::{DeadLetters, Sink, SinkContext};

fn rec(i: usize, dataset: &str) -> Record {
    rec_doc(
        i,
        dataset,
        json!({"@timestamp": "2025-01-01T00:00:00Z", "message": format!("line {i}"), "n": i}),
    )
}

fn rec_doc(i: usize, dataset: &str, doc: Value) -> Record {
    Record {
        stream: Stream::Events,
        doc: Bytes::from(doc.to_string()),
        dataset: dataset.into(),
        time_ns: None,
        host: None,
        source: "test.log".into(),
        id: format!("id-{i}").into(),
    }
}

fn config(es: &FakeEs) -> ElasticsearchConfig {
    let mut c = ElasticsearchConfig::new([es.url()]);
    c.batch.timeout = Duration::from_millis(30);
    c.retry = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        multiplier: 2.0,
        max_retries: None,
    };
    c.request_timeout = Duration::from_secs(5);
    c
}

fn ack() -> (Ack, mpsc::Receiver<AckStatus>) {
    let (tx, rx) = mpsc::channel();
    (
        Ack::new(move |s| {
            let _ = tx.send(s);
        }),
        rx,
    )
}

struct Harness {
    tx: Option<BufferSender>,
    task: JoinHandle<Result<(), SinkError>>,
    stop: CancellationToken,
    dlq: DeadLetters,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(config: ElasticsearchConfig) -> Harness {
        let sink = ElasticsearchSink::new(config).expect("valid config");
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = buffer::open(&BufferConfig::default(), "es", dir.path()).unwrap();
        let stop = CancellationToken::new();
        let dlq = DeadLetters::file(dir.path().join("dlq.ndjson"));
        let ctx = SinkContext {
            name: "es".into(),
            dead_letters: dlq.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(Box::new(sink).run(rx, ctx));
        Harness {
            tx: Some(tx),
            task,
            stop,
            dlq,
            _dir: dir,
        }
    }

    async fn send(&self, records: Vec<Record>) -> mpsc::Receiver<AckStatus> {
        let (a, rx) = ack();
        self.tx
            .as_ref()
            .unwrap()
            .send(Batch::new(records, a))
            .await
            .unwrap();
        rx
    }

    /// Closes the input and waits for the sink to finish.
    async fn finish(mut self) -> Vec<Value> {
        drop(self.tx.take());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the sink finishes")
            .unwrap()
            .unwrap();
        self.dead_letters()
    }

    fn dead_letters(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.dlq.path()) {
            Ok(t) => t
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Waits for an ack outcome without blocking the runtime.
async fn ack_outcome(rx: &mpsc::Receiver<AckStatus>, within: Duration) -> Option<AckStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(s) = rx.try_recv() {
            return Some(s);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const DS: &str = "logs-mlsoc.mlflow.access-default";

/// Items per `_bulk` request, from the fake's request log (the bodies are
/// not kept; count action lines via the received ids instead).
fn bulk_logs(es: &FakeEs) -> Vec<testkit::es::RequestLog> {
    es.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .collect()
}

#[tokio::test]
async fn batches_by_events_bytes_and_time() {
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.batch.max_events = 10;
    // Long enough that a loaded machine still fills the first two requests
    // before it passes.
    c.batch.timeout = Duration::from_secs(1);
    let h = Harness::start(c);
    // 25 records arriving one by one: requests of 10, 10, then 5 when the
    // timeout passes.
    let mut acks = Vec::new();
    for i in 0..25 {
        acks.push(h.send(vec![rec(i, "mlflow.access")]).await);
    }
    assert!(
        es.wait_until(Duration::from_secs(5), |es| es.docs(DS).len() == 25)
            .await,
        "the last partial batch is sent after batch.timeout while the input stays open"
    );
    assert_eq!(es.bulk_requests(), 3);
    assert_eq!(es.items_received(), 25);
    for a in &acks {
        assert_eq!(
            ack_outcome(a, Duration::from_secs(2)).await,
            Some(AckStatus::Delivered)
        );
    }
    assert!(h.finish().await.is_empty());
    for log in bulk_logs(&es) {
        assert_eq!(log.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(log.path, "/_bulk");
    }

    // Bytes: ~250-byte documents, max_bytes 1KiB: at most 3 per request.
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.batch.max_bytes = bytesize::ByteSize::kib(1);
    let h = Harness::start(c);
    let pad = "x".repeat(200);
    let records: Vec<Record> = (0..12)
        .map(|i| {
            rec_doc(
                i,
                "mlflow.access",
                json!({"@timestamp": "2025-01-01T00:00:00Z", "pad": pad}),
            )
        })
        .collect();
    let a = h.send(records).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.docs(DS).len(), 12);
    let logs = bulk_logs(&es);
    assert!(logs.len() >= 4, "{} requests", logs.len());
    assert!(
        logs.iter().all(|l| l.body_bytes <= 1024),
        "a body over max_bytes"
    );
}

#[tokio::test]
async fn gzip_request_bodies() {
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.compression = Compression::Gzip;
    let h = Harness::start(c);
    let records: Vec<Record> = (0..50).map(|i| rec(i, "mlflow.access")).collect();
    let a = h.send(records).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.docs(DS).len(), 50);
    let log = &bulk_logs(&es)[0];
    assert_eq!(log.header("content-encoding"), Some("gzip"));
    assert_eq!(log.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(es.doc(DS, "id-7").unwrap()["n"], 7);
}

#[tokio::test]
async fn data_stream_and_index_names() {
    let es = FakeEs::start().await;
    let h = Harness::start(config(&es));
    let mut alert = rec(2, "mlsoc.alert");
    alert.stream = Stream::Alerts;
    let mut dead = rec(3, "mlsoc.dead_letter");
    dead.stream = Stream::DeadLetters;
    let a = h
        .send(vec![
            rec(1, "mlflow.access"),
            alert,
            dead,
            rec(4, "kubernetes.audit"),
        ])
        .await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(
        es.indices(),
        vec![
            "logs-mlsoc.alert-default",
            "logs-mlsoc.dead_letter-default",
            "logs-mlsoc.kubernetes.audit-default",
            "logs-mlsoc.mlflow.access-default",
        ]
    );
    assert!(es.is_data_stream("logs-mlsoc.alert-default"));
    assert_eq!(es.docs("logs-mlsoc.alert-default")[0].id, "id-2");

    // Index mode, with the template's placeholders and action `index`.
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.mode = Mode::Index;
    c.index = Some("mlsoc-{stream}-{dataset}".into());
    c.data_stream.namespace = "prod".into();
    let h = Harness::start(c);
    let mut alert = rec(2, "mlsoc.alert");
    alert.stream = Stream::Alerts;
    let a = h.send(vec![rec(1, "MLflow.Access"), alert]).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(
        es.indices(),
        vec!["mlsoc-alerts-mlsoc.alert", "mlsoc-events-mlflow.access"]
    );
    assert!(!es.is_data_stream("mlsoc-events-mlflow.access"));
}

#[tokio::test]
async fn resent_records_are_duplicates_not_copies() {
    let es = FakeEs::start().await;
    let h = Harness::start(config(&es));
    let records: Vec<Record> = (0..5).map(|i| rec(i, "mlflow.access")).collect();
    let first = h.send(records.clone()).await;
    assert_eq!(
        ack_outcome(&first, Duration::from_secs(5)).await,
        Some(AckStatus::Delivered)
    );
    // The source read them again (a restart before its checkpoint moved).
    let again = h.send(records).await;
    assert!(
        h.finish().await.is_empty(),
        "409 on create is not a failure"
    );
    assert_eq!(again.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.docs(DS).len(), 5);
    assert_eq!(es.receive_count("id-3"), 2);
    let ids: Vec<String> = es.docs(DS).into_iter().map(|d| d.id).collect();
    assert_eq!(ids, vec!["id-0", "id-1", "id-2", "id-3", "id-4"]);
}

#[tokio::test]
async fn a_timed_out_request_that_was_applied_is_not_stored_twice() {
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.request_timeout = Duration::from_millis(300);
    // ES stores the documents, but the answer comes after the client gave
    // up; the resend meets its own documents (409 on create).
    es.push_response(Scripted::LateAnswer(Duration::from_millis(600)));
    let h = Harness::start(c);
    let a = h
        .send((0..4).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.docs(DS).len(), 4);
    assert!(es.bulk_requests() >= 2);
    assert_eq!(es.receive_count("id-0"), 2);
}

#[tokio::test]
async fn partial_failure_resends_only_failed_items_and_dead_letters_mapping_errors() {
    let es = FakeEs::start().await;
    // Every 4th id is rejected (429) on its first attempt; documents with
    // the marker are refused for good (400 document_parsing_exception).
    es.fail_items(ItemRule::source_contains(
        "NOT-A-NUMBER",
        ItemError::mapping("http.response.status_code", "long", "NOT-A-NUMBER"),
    ));
    es.fail_items(ItemRule::reject_first_attempt_every(4));
    let h = Harness::start(config(&es));
    let records: Vec<Record> = (1..=20)
        .map(|i| {
            if i == 6 || i == 13 {
                rec_doc(
                    i,
                    "mlflow.access",
                    json!({"@timestamp": "2025-01-01T00:00:00Z", "http": {"response": {"status_code": "NOT-A-NUMBER"}}}),
                )
            } else {
                rec(i, "mlflow.access")
            }
        })
        .collect();
    let a = h.send(records).await;
    let dlq = h.finish().await;
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);

    // 429'd items (first seen 4th, 8th, 12th, 16th, 20th) were sent twice,
    // everything else exactly once: the retry request held only them.
    for i in 1..=20 {
        let want = if i % 4 == 0 { 2 } else { 1 };
        assert_eq!(es.receive_count(&format!("id-{i}")), want, "id-{i}");
    }
    assert_eq!(es.items_received(), 25);
    assert_eq!(es.bulk_requests(), 2);
    assert_eq!(es.docs(DS).len(), 18);

    assert_eq!(dlq.len(), 2);
    let mut ids: Vec<&str> = dlq.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["id-13", "id-6"]);
    for l in &dlq {
        assert_eq!(l["status"], 400);
        assert_eq!(l["sink"], "es");
        let reason = l["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("document_parsing_exception: [1:27] failed to parse field [http.response.status_code] of type [long] in document with id 'id-"),
            "{reason}"
        );
        assert_eq!(
            l["document"]["http"]["response"]["status_code"],
            "NOT-A-NUMBER"
        );
    }
}

#[tokio::test]
async fn whole_request_failures_are_retried_without_loss() {
    let es = FakeEs::start().await;
    es.push_responses(3, Scripted::Status(503));
    es.push_response(Scripted::Status(429));
    es.push_response(Scripted::CloseConnection);
    es.push_response(Scripted::Status(502));
    es.push_response(Scripted::Status(500));
    let h = Harness::start(config(&es));
    let a = h
        .send((0..10).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.pending_responses(), 0);
    assert_eq!(es.bulk_requests(), 8);
    assert_eq!(es.docs(DS).len(), 10);
    // Failed requests were not parsed: each item arrived once.
    assert_eq!(es.items_received(), 10);
}

#[tokio::test]
async fn an_unusable_bulk_answer_is_retried_whole() {
    let es = FakeEs::start().await;
    es.push_response(Scripted::Response {
        status: 200,
        body: r#"{"took":1,"errors":false,"items":[]}"#.into(),
    });
    es.push_response(Scripted::Response {
        status: 200,
        body: "<html>proxy</html>".into(),
    });
    let h = Harness::start(config(&es));
    let a = h
        .send((0..3).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.bulk_requests(), 3);
    assert_eq!(es.docs(DS).len(), 3);
}

#[tokio::test]
async fn an_outage_holds_the_ack_until_delivery() {
    let es = FakeEs::start().await;
    es.refuse_connections();
    let h = Harness::start(config(&es));
    let a = h
        .send((0..5).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    assert_eq!(
        ack_outcome(&a, Duration::from_millis(400)).await,
        None,
        "nothing is acknowledged while Elasticsearch is down"
    );
    es.accept_connections();
    assert_eq!(
        ack_outcome(&a, Duration::from_secs(5)).await,
        Some(AckStatus::Delivered)
    );
    assert!(h.finish().await.is_empty());
    assert_eq!(es.docs(DS).len(), 5);
}

#[tokio::test]
async fn fails_over_to_the_next_endpoint() {
    let es = FakeEs::start().await;
    // A port nobody listens on: bind, read the port, close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut c = config(&es);
    c.endpoints = vec![dead, es.url()];
    // A long backoff: delivery must not wait for it.
    c.retry.initial = Duration::from_secs(30);
    c.retry.max = Duration::from_secs(30);
    let h = Harness::start(c);
    let mut acks = Vec::new();
    for i in 0..4 {
        acks.push(h.send(vec![rec(i, "mlflow.access")]).await);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    for a in &acks {
        assert_eq!(
            ack_outcome(a, Duration::from_secs(3)).await,
            Some(AckStatus::Delivered)
        );
    }
    assert!(h.finish().await.is_empty());
    assert_eq!(es.docs(DS).len(), 4);
}

#[tokio::test]
async fn a_413_splits_the_request_and_a_lone_giant_is_dead_lettered() {
    let es = FakeEs::builder().max_content_length(2_000).start().await;
    let h = Harness::start(config(&es));
    let pad = "y".repeat(300);
    let mut records: Vec<Record> = (0..16)
        .map(|i| {
            rec_doc(
                i,
                "mlflow.access",
                json!({"@timestamp": "2025-01-01T00:00:00Z", "pad": pad}),
            )
        })
        .collect();
    records.push(rec_doc(
        99,
        "mlflow.access",
        json!({"@timestamp": "2025-01-01T00:00:00Z", "pad": "z".repeat(5_000)}),
    ));
    let a = h.send(records).await;
    let dlq = h.finish().await;
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.docs(DS).len(), 16);
    // Nothing was stored twice; only the giant went to the DLQ.
    assert_eq!(es.items_received(), 16);
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["id"], "id-99");
    assert_eq!(dlq[0]["status"], 413);
    assert_eq!(
        dlq[0]["reason"],
        "document larger than http.max_content_length"
    );
    assert!(bulk_logs(&es).iter().any(|l| l.status == 413));
}

#[tokio::test]
async fn a_refused_request_dead_letters_its_documents() {
    let es = FakeEs::start().await;
    es.push_response(Scripted::Status(400));
    let h = Harness::start(config(&es));
    let a = h
        .send((0..3).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    let dlq = h.finish().await;
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(dlq.len(), 3);
    assert_eq!(
        dlq[0]["reason"],
        "illegal_argument_exception: scripted failure"
    );
    assert_eq!(dlq[0]["status"], 400);
    assert_eq!(es.doc_count(), 0);
}

#[tokio::test]
async fn max_retries_dead_letters_with_the_last_error() {
    let es = FakeEs::start().await;
    es.push_responses(10, Scripted::Status(503));
    let mut c = config(&es);
    c.retry.max_retries = Some(2);
    let h = Harness::start(c);
    let a = h
        .send((0..2).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    let dlq = h.finish().await;
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(es.bulk_requests(), 3);
    assert_eq!(dlq.len(), 2);
    assert_eq!(
        dlq[0]["reason"],
        "gave up after 2 retries: cluster_block_exception: blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"
    );
    assert_eq!(dlq[0]["status"], 503);
}

#[tokio::test]
async fn stop_mid_retry_leaves_acks_failed() {
    let es = FakeEs::start().await;
    es.push_responses(1_000, Scripted::Status(503));
    let h = Harness::start(config(&es));
    let a = h
        .send((0..3).map(|i| rec(i, "mlflow.access")).collect())
        .await;
    assert!(
        es.wait_until(Duration::from_secs(5), |es| es.bulk_requests() >= 2)
            .await
    );
    h.stop.cancel();
    tokio::time::timeout(Duration::from_secs(2), h.task)
        .await
        .expect("the sink returns promptly when stopped")
        .unwrap()
        .unwrap();
    assert_eq!(
        ack_outcome(&a, Duration::from_secs(1)).await,
        Some(AckStatus::Failed)
    );
    assert!(
        std::fs::read_to_string(h.dlq.path()).is_err(),
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn basic_auth_is_sent_and_the_password_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "correct-horse-battery-staple";
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{secret}\n")).unwrap();
    let es = FakeEs::builder().basic_auth("mlsoc", secret).start().await;
    let mut c = config(&es);
    c.auth = AuthConfig::Basic {
        user: "mlsoc".into(),
        password_env: None,
        password_file: Some(pw.clone()),
    };
    c.install_template = true;
    let sink = ElasticsearchSink::new(c.clone()).unwrap();
    let debug = format!("{sink:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("password_file"), "{debug}");
    let h = Harness::start(c);
    let a = h.send(vec![rec(1, "mlflow.access")]).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    let expected = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("mlsoc:{secret}"))
        )
    };
    let logs = es.requests();
    assert!(
        logs.iter()
            .all(|l| l.header("authorization") == Some(&expected[..]))
    );
    assert!(logs.iter().all(|l| l.status < 400));
    assert!(es.template(TEMPLATE_NAME).is_some());

    // Wrong password: 401, retried (not dropped), and the secret appears
    // nowhere; stopping leaves the batch unacknowledged.
    std::fs::write(&pw, "wrong-password-123").unwrap();
    let mut c = config(&es);
    c.auth = AuthConfig::Basic {
        user: "mlsoc".into(),
        password_env: None,
        password_file: Some(pw),
    };
    let h = Harness::start(c);
    let a = h.send(vec![rec(2, "mlflow.access")]).await;
    assert!(
        es.wait_until(Duration::from_secs(5), |es| {
            es.requests().iter().filter(|r| r.status == 401).count() >= 3
        })
        .await,
        "401 is retried"
    );
    h.stop.cancel();
    h.task.await.unwrap().unwrap();
    assert_eq!(
        ack_outcome(&a, Duration::from_secs(1)).await,
        Some(AckStatus::Failed)
    );
    assert!(es.doc(DS, "id-2").is_none());
}

#[tokio::test]
async fn api_key_auth() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw\n").unwrap();
    let es = FakeEs::builder()
        .api_key("VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw")
        .start()
        .await;
    let mut c = config(&es);
    c.auth = AuthConfig::ApiKey {
        api_key_env: None,
        api_key_file: Some(key_file),
    };
    let h = Harness::start(c);
    let a = h.send(vec![rec(1, "mlflow.access")]).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    assert_eq!(
        bulk_logs(&es)[0].header("authorization"),
        Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
    );
}

#[test]
fn construction_errors_are_clear_and_hold_no_secret() {
    let e = ElasticsearchSink::new(ElasticsearchConfig::new(["htp://x"])).unwrap_err();
    assert_eq!(e, "endpoints: `htp://x` is not an http(s) URL");
    let e = ElasticsearchSink::new(ElasticsearchConfig::new([
        "https://elastic:pa55word@es:9200",
    ]))
    .unwrap_err();
    assert!(!e.contains("pa55word"), "{e}");
    let mut c = ElasticsearchConfig::new(["http://es:9200"]);
    c.auth = AuthConfig::ApiKey {
        api_key_env: None,
        api_key_file: Some("/nonexistent/mlsoc/key".into()),
    };
    let e = ElasticsearchSink::new(c).unwrap_err();
    assert_eq!(
        e,
        "auth: cannot read api_key_file `/nonexistent/mlsoc/key`: entity not found"
    );
}

#[tokio::test]
async fn installs_the_index_template() {
    let es = FakeEs::start().await;
    let mut c = config(&es);
    c.install_template = true;
    let h = Harness::start(c);
    let a = h.send(vec![rec(1, "mlflow.access")]).await;
    assert!(h.finish().await.is_empty());
    assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    let t = es.template(TEMPLATE_NAME).expect("installed");
    assert_eq!(t["index_patterns"], json!(["logs-mlsoc.*"]));
    assert!(t.get("data_stream").is_some());
    let props = &t["template"]["mappings"]["properties"];
    assert_eq!(props["@timestamp"]["type"], "date");
    assert_eq!(props["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(
        props["http"]["properties"]["response"]["properties"]["status_code"]["type"],
        "long"
    );
    assert_eq!(props["event"]["properties"]["original"]["index"], false);
    // The template was in place before the first document.
    let paths: Vec<String> = es.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/_index_template/mlsoc", "/_bulk"]);

    // Index mode: the pattern follows `index`, no data stream.
    let mut c = config(&es);
    c.mode = Mode::Index;
    c.index = Some("mlsoc-{stream}-{dataset}".into());
    let t = ElasticsearchSink::new(c).unwrap().index_template();
    assert_eq!(t["index_patterns"], json!(["mlsoc-*-*"]));
    assert!(t.get("data_stream").is_none());
}

#[tokio::test]
async fn concurrent_requests_deliver_everything_once() {
    let es = FakeEs::start().await;
    es.fail_items(ItemRule::reject_first_attempt_every(7));
    let mut c = config(&es);
    c.batch.max_events = 25;
    c.concurrency = 3;
    let h = Harness::start(c);
    let mut acks = Vec::new();
    for chunk in 0..20 {
        let records: Vec<Record> = (0..20)
            .map(|i| rec(chunk * 20 + i, "mlflow.access"))
            .collect();
        acks.push(h.send(records).await);
    }
    assert!(h.finish().await.is_empty());
    for a in acks {
        assert_eq!(a.recv().unwrap(), AckStatus::Delivered);
    }
    assert_eq!(es.docs(DS).len(), 400);
    assert_eq!(es.items_received(), 400 + 400 / 7);
}

/// Counters by name and sorted labels, for the metrics test.
#[derive(Default)]
struct TestRecorder {
    counters: std::sync::Mutex<std::collections::HashMap<String, Arc<TestCounter>>>,
}

#[derive(Default)]
struct TestCounter(std::sync::atomic::AtomicU64);

impl metrics::CounterFn for TestCounter {
    fn increment(&self, value: u64) {
        self.0
            .fetch_add(value, std::sync::atomic::Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

fn counter_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    l.sort();
    format!("{name}{{{}}}", l.join(","))
}

impl TestRecorder {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(&counter_key(name, labels))
            .map(|c| c.0.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0)
    }
}

impl metrics::Recorder for TestRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
        let k = counter_key(key.name(), &labels);
        let c = self.counters.lock().unwrap().entry(k).or_default().clone();
        metrics::Counter::from_arc(c)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

#[test]
fn metrics_count_every_outcome() {
    let recorder = TestRecorder::default();
    // A current-thread runtime: the sink's tasks run on this thread, where
    // the local recorder is installed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let es = FakeEs::start().await;
            es.push_response(Scripted::Status(503));
            es.fail_items(ItemRule::source_contains(
                "BAD",
                ItemError::mapping("n", "long", "BAD"),
            ));
            es.fail_items(ItemRule::reject_first_attempt_every(2));
            let h = Harness::start(config(&es));
            let bad = rec_doc(
                3,
                "mlflow.access",
                json!({"@timestamp": "2025-01-01T00:00:00Z", "n": "BAD"}),
            );
            let first = h
                .send(vec![rec(1, "mlflow.access"), rec(2, "mlflow.access"), bad])
                .await;
            assert_eq!(
                ack_outcome(&first, Duration::from_secs(5)).await,
                Some(AckStatus::Delivered)
            );
            let again = h
                .send(vec![rec(1, "mlflow.access"), rec(2, "mlflow.access")])
                .await;
            assert_eq!(h.finish().await.len(), 1);
            assert_eq!(again.recv().unwrap(), AckStatus::Delivered);
        })
    });
    let sink = ("sink", "es");
    let get = |name: &str, label: (&str, &str)| recorder.get(name, &[sink, label]);
    assert_eq!(get("mlsoc_sink_records_total", ("outcome", "delivered")), 2);
    assert_eq!(get("mlsoc_sink_records_total", ("outcome", "duplicate")), 2);
    assert_eq!(
        get("mlsoc_sink_records_total", ("outcome", "dead_lettered")),
        1
    );
    assert_eq!(get("mlsoc_sink_retries_total", ("reason", "http_503")), 1);
    assert_eq!(get("mlsoc_sink_retries_total", ("reason", "item_429")), 1);
    assert_eq!(get("mlsoc_sink_requests_total", ("status", "503")), 1);
    // The first batch (503, then 200 with a 429 item, then 200), the resend.
    assert_eq!(get("mlsoc_sink_requests_total", ("status", "200")), 3);
}
