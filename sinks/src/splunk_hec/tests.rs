//! The sink against testkit's fake collector.

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use schema::{Ack, AckStatus};
use serde_json::{Value, json};
use testkit::hec::{Failure, FakeHec, FakeHecOptions};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::buffer::{self, BufferConfig, BufferSender};
use crate::record::{Batch, Stream};
use crate::{DeadLetters, Sink, SinkContext};

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";

fn record(n: usize) -> Record {
    Record {
        stream: Stream::Events,
        doc: Bytes::from(
            json!({"n": n, "event": {"dataset": "mlflow.access"}, "mlops": {"component": "mlflow"}})
                .to_string(),
        ),
        dataset: "mlflow.access".into(),
        time_ns: Some(1_700_000_000_123_456_000 + n as i64),
        host: Some("ml-host".into()),
        source: "/var/log/mlflow/access.log".into(),
        id: format!("id-{n}").into(),
    }
}

fn config(hec: &FakeHec) -> SplunkHecConfig {
    let mut c = SplunkHecConfig::new(hec.url(), TOKEN);
    c.batch.timeout = Duration::from_millis(20);
    c.retry.initial = Duration::from_millis(10);
    c.retry.max = Duration::from_millis(50);
    c.request_timeout = Duration::from_secs(5);
    c.acknowledgements.poll_interval = Duration::from_millis(30);
    c
}

struct Running {
    tx: Option<BufferSender>,
    task: tokio::task::JoinHandle<Result<(), crate::SinkError>>,
    stop: CancellationToken,
    dlq: DeadLetters,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn send(&self, records: Vec<Record>) -> mpsc::Receiver<AckStatus> {
        let (stx, srx) = mpsc::channel();
        let ack = Ack::new(move |s| {
            let _ = stx.send(s);
        });
        self.tx
            .as_ref()
            .unwrap()
            .send(Batch::new(records, ack))
            .await
            .unwrap();
        srx
    }

    async fn finish(mut self) -> Running {
        self.tx = None;
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the sink returns once its input is closed and handled")
            .unwrap()
            .unwrap();
        self
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

fn start(config: SplunkHecConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = buffer::open(&BufferConfig::default(), "hec", dir.path()).unwrap();
    let dlq = DeadLetters::file(dir.path().join("dlq.ndjson"));
    let stop = CancellationToken::new();
    let ctx = SinkContext {
        name: "hec".into(),
        dead_letters: dlq.clone(),
        stop: stop.clone(),
    };
    let sink = SplunkHecSink::new(config).unwrap();
    let task = tokio::spawn(Box::new(sink).run(rx, ctx));
    Running {
        tx: Some(tx),
        task,
        stop,
        dlq,
        _dir: dir,
    }
}

async fn status(rx: mpsc::Receiver<AckStatus>) -> AckStatus {
    tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the batch's ack completes")
}

fn ns(events: &[testkit::hec::ReceivedEvent]) -> Vec<u64> {
    let mut v: Vec<u64> = events
        .iter()
        .map(|e| e.event["n"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn delivers_envelopes_with_metadata_then_acks() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let mut c = config(&hec);
    c.index = Some("mlsoc".into());
    c.fields = vec!["event.dataset".into(), "mlops.component".into()];
    let sink = start(c);
    let mut alert = record(99);
    alert.stream = Stream::Alerts;
    alert.dataset = "mlsoc.alert".into();
    let rx = sink.send(vec![record(0), record(1), alert]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    let events = hec.events();
    assert_eq!(events.len(), 3);
    let e = &events[0];
    assert_eq!(e.event["n"], 0);
    assert_eq!(e.host.as_deref(), Some("ml-host"));
    assert_eq!(e.source.as_deref(), Some("/var/log/mlflow/access.log"));
    assert_eq!(e.sourcetype.as_deref(), Some("mlsoc:mlflow.access"));
    assert_eq!(e.index, "mlsoc");
    assert_eq!(
        e.fields,
        json!({"event.dataset": "mlflow.access", "mlops.component": "mlflow"})
    );
    assert!((e.time.unwrap() - 1_700_000_000.123456).abs() < 1e-6);
    assert_eq!(events[2].sourcetype.as_deref(), Some("mlsoc:alert"));
    // One request, on a channel (a uuid).
    let reqs = hec.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].channel.as_deref().map(str::len), Some(36));
    assert!(sink.dead_letters().is_empty());
}

#[tokio::test]
async fn gzip_bodies_and_request_size_limits() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let mut c = config(&hec);
    c.compression = Compression::Gzip;
    c.batch.max_events = 4;
    let sink = start(c);
    let rx = sink.send((0..10).map(record).collect()).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    sink.finish().await;
    assert_eq!(ns(&hec.events()), (0..10).collect::<Vec<_>>());
    let reqs = hec.requests();
    assert_eq!(reqs.len(), 3, "10 events, 4 per request");
    assert!(
        reqs.iter()
            .all(|r| r.content_encoding.as_deref() == Some("gzip"))
    );
}

#[tokio::test]
async fn retries_busy_dropped_stalled_and_refused_until_delivered() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let mut c = config(&hec);
    c.request_timeout = Duration::from_millis(300);
    let sink = start(c);
    hec.fail_next([
        Failure::Busy,
        Failure::Internal,
        Failure::Drop,
        Failure::Answer(503, 23, "Server is shutting down".into()),
    ]);
    let rx = sink.send(vec![record(0)]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    assert_eq!(hec.events().len(), 1);

    // A stalled answer times out; the fake still indexes the first copy,
    // and the retry makes a duplicate: at-least-once.
    hec.fail_next([Failure::Stall(Duration::from_millis(600))]);
    let rx = sink.send(vec![record(1)]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(hec.receive_count(&hec.events().last().unwrap().event) >= 1);

    hec.refuse_connections(Duration::from_millis(300));
    let rx = sink.send(vec![record(2)]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    assert!(ns(&hec.events()).contains(&2));
    assert!(sink.dead_letters().is_empty());
}

#[tokio::test]
async fn a_refused_token_is_retried_until_fixed_and_never_shown() {
    let hec = FakeHec::start(FakeHecOptions::new(["other-token"]).disabled([TOKEN]))
        .await
        .unwrap();
    let c = config(&hec);
    let sink_dbg = format!("{:?}", SplunkHecSink::new(c.clone()).unwrap());
    assert!(!sink_dbg.contains(TOKEN));
    let sink = start(c);
    let rx = sink.send(vec![record(0)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.try_recv().is_err(),
        "not delivered while the token is refused"
    );
    assert!(hec.requests().iter().all(|r| r.code == Some(1)));
    hec.update(|o| {
        o.disabled_tokens.clear();
        o.tokens.push(TOKEN.into());
    });
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    assert!(sink.dead_letters().is_empty());
    assert_eq!(hec.events().len(), 1);
}

#[tokio::test]
async fn invalid_event_is_dead_lettered_and_the_rest_resent() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let sink = start(config(&hec));
    hec.fail_next([Failure::RejectEvent {
        at: 2,
        code: 6,
        text: "Invalid data format".into(),
    }]);
    let rx = sink.send((0..5).map(record).collect()).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    // Events 0 and 1 were indexed by the refused request; 3 and 4 by the
    // resend; 2 is a dead letter. No duplicates.
    assert_eq!(ns(&hec.events()), vec![0, 1, 3, 4]);
    assert!(hec.duplicates().is_empty());
    let dl = sink.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["document"]["n"], 2);
    assert_eq!(dl[0]["reason"], "HEC code 6: Invalid data format");
    assert_eq!(dl[0]["status"], 400);
    assert_eq!(hec.request_count(), 2);
}

#[tokio::test]
async fn with_indexer_acks_the_events_before_an_invalid_one_are_resent() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).with_ack(Some(Duration::ZERO)))
        .await
        .unwrap();
    let mut c = config(&hec);
    c.acknowledgements.enabled = true;
    let sink = start(c);
    hec.fail_next([Failure::RejectEvent {
        at: 1,
        code: 6,
        text: "Invalid data format".into(),
    }]);
    let rx = sink.send((0..3).map(record).collect()).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    // Nothing acknowledged event 0 of the refused request: sent again.
    assert_eq!(ns(&hec.events()), vec![0, 0, 2]);
    assert_eq!(sink.dead_letters().len(), 1);
}

#[tokio::test]
async fn incorrect_index_dead_letters_the_request() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).indexes(["main"]))
        .await
        .unwrap();
    let mut c = config(&hec);
    c.index = Some("nope".into());
    let sink = start(c);
    let rx = sink.send((0..3).map(record).collect()).await;
    assert_eq!(
        status(rx).await,
        AckStatus::Delivered,
        "dead-lettered counts"
    );
    let sink = sink.finish().await;
    assert!(hec.events().is_empty());
    let dl = sink.dead_letters();
    assert_eq!(dl.len(), 3);
    assert!(
        dl.iter()
            .all(|d| d["reason"] == "HEC code 7: Incorrect index")
    );
}

#[tokio::test]
async fn too_large_requests_are_split_and_a_too_large_event_dead_lettered() {
    let one = Encoder::new(&SplunkHecConfig::new("http://x", "t"))
        .encode(&record(0))
        .unwrap()
        .len();
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).max_content_length(one * 3))
        .await
        .unwrap();
    let sink = start(config(&hec));
    let mut big = record(100);
    big.doc = Bytes::from(json!({"n": 100, "pad": "x".repeat(one * 4)}).to_string());
    let mut records: Vec<Record> = (0..8).map(record).collect();
    records.push(big);
    let rx = sink.send(records).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    assert_eq!(ns(&hec.events()), (0..8).collect::<Vec<_>>());
    let dl = sink.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0]["document"]["n"], 100);
    assert_eq!(dl[0]["status"], 413);
}

#[tokio::test]
async fn waits_for_indexer_acks_polling_several_ids_at_once() {
    let hec =
        FakeHec::start(FakeHecOptions::new([TOKEN]).with_ack(Some(Duration::from_millis(150))))
            .await
            .unwrap();
    let mut c = config(&hec);
    c.acknowledgements.enabled = true;
    c.batch.max_events = 2;
    let sink = start(c);
    let rx = sink.send((0..6).map(record).collect()).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(rx.try_recv().is_err(), "not delivered before the acks");
    assert_eq!(hec.events().len(), 6);
    assert_eq!(status(rx).await, AckStatus::Delivered);
    sink.finish().await;
    let reqs = hec.requests();
    let polls: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/services/collector/ack")
        .collect();
    assert!(!polls.is_empty());
    // The three requests' ackIds were asked about together.
    assert!(
        polls
            .iter()
            .any(|p| p.body_len >= r#"{"acks":[0,1,2]}"#.len())
    );
    assert!(hec.duplicates().is_empty());
}

#[tokio::test]
async fn an_ack_that_never_comes_makes_the_request_go_again() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN]).with_ack(None))
        .await
        .unwrap();
    let mut c = config(&hec);
    c.acknowledgements.enabled = true;
    c.acknowledgements.max_polls = 3;
    let sink = start(c);
    let rx = sink.send(vec![record(0)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rx.try_recv().is_err());
    let count = hec.receive_count(&hec.events()[0].event);
    assert!(count >= 2, "sent again after max_polls: {count}");
    hec.update(|o| o.ack_delay = Some(Duration::ZERO));
    assert_eq!(status(rx).await, AckStatus::Delivered);
    sink.finish().await;
}

#[tokio::test]
async fn stop_while_retrying_returns_without_completing() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let sink = start(config(&hec));
    hec.busy_next(10_000);
    let rx = sink.send(vec![record(0)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    sink.stop.cancel();
    let Running { task, tx, .. } = sink;
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(tx);
    assert_eq!(status(rx).await, AckStatus::Failed);
    assert!(hec.events().is_empty());
}

#[tokio::test]
async fn retries_run_out_into_dead_letters_when_limited() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let mut c = config(&hec);
    c.retry.max_retries = Some(2);
    let sink = start(c);
    hec.busy_next(3);
    let rx = sink.send(vec![record(0)]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    let dl = sink.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        dl[0]["reason"],
        "gave up after 2 retries: HEC code 9: Server is busy"
    );
}

#[tokio::test]
async fn documents_that_are_not_objects_are_dead_lettered_unsent() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let sink = start(config(&hec));
    let mut bad = record(1);
    bad.doc = Bytes::from_static(b"[1,2]");
    let rx = sink.send(vec![record(0), bad]).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    assert_eq!(hec.events().len(), 1);
    let dl = sink.dead_letters();
    assert_eq!(dl.len(), 1);
    assert!(
        dl[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not sent to Splunk")
    );
}

#[test]
fn config_errors_never_contain_the_token() {
    let mut c = SplunkHecConfig::new("ftp://x", "s3cr3t");
    let err = SplunkHecSink::new(c.clone()).unwrap_err();
    assert!(err.contains("scheme") && !err.contains("s3cr3t"), "{err}");
    c.endpoint = "http://user:pw@x".into();
    assert!(SplunkHecSink::new(c).is_err());
}

/// mlsoc's sink into mlsoc's own HEC receiver, indexer acknowledgement on
/// both sides: the sink's records complete only once the receiving
/// pipeline reports them delivered.
#[tokio::test]
async fn into_the_collectors_hec_source_with_acks() {
    let mut sc = collector::hec::HecSourceConfig::new("127.0.0.1:0".parse().unwrap(), &[TOKEN]);
    sc.acknowledgements = true;
    let server = collector::hec::HecServer::bind(sc).await.unwrap();
    let addr = server.local_addr();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<collector::SourceBatch>(4);
    let stop = CancellationToken::new();
    tokio::spawn(server.run("in".into(), tx, stop.clone()));
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let got = received.clone();
    tokio::spawn(async move {
        while let Some(mut b) = rx.recv().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for r in &b.records {
                got.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&r.bytes).unwrap());
            }
            std::mem::replace(&mut b.ack, Ack::none()).complete(AckStatus::Delivered);
        }
    });
    let mut c = SplunkHecConfig::new(format!("http://{addr}"), TOKEN);
    c.batch.timeout = Duration::from_millis(20);
    c.batch.max_events = 2;
    c.acknowledgements.enabled = true;
    c.acknowledgements.poll_interval = Duration::from_millis(30);
    let sink = start(c);
    let rx = sink.send((0..5).map(record).collect()).await;
    assert_eq!(status(rx).await, AckStatus::Delivered);
    let sink = sink.finish().await;
    assert!(sink.dead_letters().is_empty());
    let mut ns: Vec<u64> = received
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, vec![0, 1, 2, 3, 4]);
    stop.cancel();
}

/// A writer for captured log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_is_never_logged() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime is single-threaded: the sink task logs here too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let hec = FakeHec::start(FakeHecOptions::new(["another"]))
        .await
        .unwrap();
    let sink = start(config(&hec));
    let rx = sink.send(vec![record(0)]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    hec.update(|o| o.tokens.push(TOKEN.into()));
    assert_eq!(status(rx).await, AckStatus::Delivered);
    sink.finish().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("Splunk refused the HEC token"), "{text}");
    assert!(text.contains("HEC code 4: Invalid token"), "{text}");
    assert!(!text.contains(TOKEN), "the token leaked into the logs");
}

#[tokio::test]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut sc = collector::hec::HecSourceConfig::new("127.0.0.1:0".parse().unwrap(), &[TOKEN]);
    sc.tls = Some(collector::hec::TlsServerConfig {
        cert_file: ca.clone(),
        key_file: dir.path().join("key.pem"),
    });
    let server = collector::hec::HecServer::bind(sc).await.unwrap();
    let port = server.local_addr().port();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<collector::SourceBatch>(4);
    let stop = CancellationToken::new();
    tokio::spawn(server.run("in".into(), tx, stop.clone()));
    tokio::spawn(async move {
        while let Some(mut b) = rx.recv().await {
            std::mem::replace(&mut b.ack, Ack::none()).complete(AckStatus::Delivered);
        }
    });
    let endpoint = format!("https://localhost:{port}");

    // Without the CA the certificate is refused: retried, not delivered.
    let untrusting = start(SplunkHecConfig {
        endpoint: endpoint.clone(),
        ..config_for(&endpoint)
    });
    let pending = untrusting.send(vec![record(0)]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pending.try_recv().is_err());
    untrusting.stop.cancel();

    let mut c = config_for(&endpoint);
    c.tls.ca_file = Some(ca);
    let sink = start(c);
    let rx2 = sink.send(vec![record(1)]).await;
    assert_eq!(status(rx2).await, AckStatus::Delivered);
    sink.finish().await;
    stop.cancel();
}

fn config_for(endpoint: &str) -> SplunkHecConfig {
    let mut c = SplunkHecConfig::new(endpoint, TOKEN);
    c.batch.timeout = Duration::from_millis(20);
    c.retry.initial = Duration::from_millis(10);
    c.retry.max = Duration::from_millis(50);
    c.request_timeout = Duration::from_secs(5);
    c
}
