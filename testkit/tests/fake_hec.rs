//! The fake collector's answers, one documented behaviour at a time.

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::hec::{Endpoint, Failure, FakeHec, FakeHecOptions, Health};

const TOKEN: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const CHANNEL: &str = "bbbbbbbb-0000-0000-0000-000000000002";

async fn post(
    hec: &FakeHec,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", hec.url()))
        .body(body);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn auth() -> Option<&'static str> {
    Some("Splunk aaaaaaaa-0000-0000-0000-000000000001")
}

#[tokio::test]
async fn the_documented_error_table() {
    let hec = FakeHec::start(
        FakeHecOptions::new([TOKEN])
            .disabled(["off-token"])
            .indexes(["main", "mlsoc"])
            .max_content_length(10_000),
    )
    .await
    .unwrap();
    let ev = "/services/collector/event";
    // (Authorization, path, body, HTTP status, answer)
    type Case = (Option<&'static str>, &'static str, Vec<u8>, u16, Value);
    let cases: Vec<Case> = vec![
        (
            None,
            ev,
            br#"{"event":"x"}"#.to_vec(),
            401,
            json!({"text":"Token is required","code":2}),
        ),
        (
            Some("Bearer x"),
            ev,
            br#"{"event":"x"}"#.to_vec(),
            401,
            json!({"text":"Invalid authorization","code":3}),
        ),
        (
            Some("Splunk nope"),
            ev,
            br#"{"event":"x"}"#.to_vec(),
            403,
            json!({"text":"Invalid token","code":4}),
        ),
        (
            Some("Splunk off-token"),
            ev,
            br#"{"event":"x"}"#.to_vec(),
            403,
            json!({"text":"Token disabled","code":1}),
        ),
        (
            auth(),
            ev,
            b"  ".to_vec(),
            400,
            json!({"text":"No data","code":5}),
        ),
        (
            auth(),
            ev,
            br#"{"event":"a"}{"event":"b""#.to_vec(),
            400,
            json!({"text":"Invalid data format","code":6,"invalid-event-number":1}),
        ),
        (
            auth(),
            ev,
            br#"{"event":"a","index":"secret"}"#.to_vec(),
            400,
            json!({"text":"Incorrect index","code":7,"invalid-event-number":0}),
        ),
        (
            auth(),
            ev,
            br#"{"host":"h"}"#.to_vec(),
            400,
            json!({"text":"Event field is required","code":12,"invalid-event-number":0}),
        ),
        (
            auth(),
            ev,
            br#"{"event":""}"#.to_vec(),
            400,
            json!({"text":"Event field cannot be blank","code":13,"invalid-event-number":0}),
        ),
        (
            auth(),
            ev,
            br#"{"event":"x","fields":{"a":{"n":1}}}"#.to_vec(),
            400,
            json!({"text":"Error in handling indexed fields","code":15,"invalid-event-number":0}),
        ),
        (
            auth(),
            "/services/collector/ack",
            br#"{"acks":[0]}"#.to_vec(),
            400,
            json!({"text":"ACK is disabled","code":14}),
        ),
        (
            auth(),
            "/services/collector/raw",
            b"line".to_vec(),
            400,
            json!({"text":"Data channel is missing","code":10}),
        ),
        (
            auth(),
            ev,
            vec![b' '; 10_001],
            413,
            json!({"text":"Content-Length of 10001 too large (maximum is 10000)"}),
        ),
    ];
    for (a, path, body, status, answer) in cases {
        let got = post(&hec, path, a, &[], body.clone()).await;
        assert_eq!(
            got,
            (status, answer),
            "{path} {}",
            String::from_utf8_lossy(&body[..body.len().min(50)])
        );
    }
    let got = post(
        &hec,
        &format!("{ev}?token={TOKEN}"),
        None,
        &[],
        r#"{"event":"x"}"#,
    )
    .await;
    assert_eq!(got.1["code"], 16);
    // The events before the invalid one were indexed; nothing else was.
    let events = hec.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "a");
}

#[tokio::test]
async fn accepts_concatenated_envelopes_gzip_and_basic_auth() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let body = r#"{"time":1700000000.5,"host":"h","source":"s","sourcetype":"st","index":"ix","event":{"a":1},"fields":{"f":"v","g":["1","2"]}}
{"event":"two","time":"1700000001"}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let got = post(
        &hec,
        "/services/collector",
        Some("Basic eDphYWFhYWFhYS0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE="),
        &[("Content-Encoding", "gzip")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!(got, (200, json!({"text":"Success","code":0})));
    let e = hec.events();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].event, json!({"a":1}));
    assert_eq!(e[0].time, Some(1700000000.5));
    assert_eq!(e[0].index, "ix");
    assert_eq!(e[0].fields, json!({"f":"v","g":["1","2"]}));
    assert_eq!(e[1].index, "main");
    assert_eq!(e[1].time, Some(1700000001.0));
    assert_eq!(e[1].endpoint, Endpoint::Event);
    assert_eq!(hec.receive_count(&json!({"a":1})), 1);
}

#[tokio::test]
async fn raw_endpoint_and_health() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    let got = post(
        &hec,
        &format!("/services/collector/raw?channel={CHANNEL}&sourcetype=raw:st&host=h"),
        auth(),
        &[],
        "one\n\ntwo\n",
    )
    .await;
    assert_eq!(got.0, 200);
    let e = hec.events();
    assert_eq!(
        e.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        vec![json!("one"), json!("two")]
    );
    assert_eq!(e[0].sourcetype.as_deref(), Some("raw:st"));
    assert_eq!(e[0].endpoint, Endpoint::Raw);

    let health = |hec: &FakeHec, q: &str| {
        let url = format!("{}/services/collector/health{q}", hec.url());
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        health(&hec, "").await,
        (200, json!({"text":"HEC is healthy","code":17}))
    );
    assert_eq!(health(&hec, "?token=zzz").await.1["code"], 21);
    hec.set_health(Health::QueuesFull);
    assert_eq!(
        health(&hec, "").await,
        (
            503,
            json!({"text":"HEC is unhealthy, queues are full","code":18})
        )
    );
    hec.set_health(Health::ShuttingDown);
    assert_eq!(
        post(
            &hec,
            "/services/collector/event",
            auth(),
            &[],
            r#"{"event":"x"}"#
        )
        .await,
        (503, json!({"text":"Server is shutting down","code":23}))
    );
}

#[tokio::test]
async fn indexer_acknowledgement_per_channel() {
    let hec =
        FakeHec::start(FakeHecOptions::new([TOKEN]).with_ack(Some(Duration::from_millis(100))))
            .await
            .unwrap();
    let ev = "/services/collector/event";
    assert_eq!(
        post(&hec, ev, auth(), &[], r#"{"event":"x"}"#).await,
        (400, json!({"text":"Data channel is missing","code":10}))
    );
    assert_eq!(
        post(
            &hec,
            ev,
            auth(),
            &[("X-Splunk-Request-Channel", "bad")],
            r#"{"event":"x"}"#
        )
        .await,
        (400, json!({"text":"Invalid data channel","code":11}))
    );
    let ch = [("X-Splunk-Request-Channel", CHANNEL)];
    assert_eq!(
        post(&hec, ev, auth(), &ch, r#"{"event":"x"}"#).await,
        (200, json!({"text":"Success","code":0,"ackId":0}))
    );
    let got = post(
        &hec,
        &format!("{ev}?channel={CHANNEL}"),
        auth(),
        &[],
        r#"{"event":"y"}"#,
    )
    .await;
    assert_eq!(got.1["ackId"], 1);
    let poll = |body: &'static str| post(&hec, "/services/collector/ack", auth(), &ch, body);
    assert_eq!(
        poll(r#"{"acks":[0,1]}"#).await,
        (200, json!({"acks":{"0":false,"1":false}}))
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        poll(r#"{"acks":[0,1,5]}"#).await,
        (200, json!({"acks":{"0":true,"1":true,"5":false}}))
    );
    assert_eq!(poll(r#"{"acks":[0]}"#).await.1, json!({"acks":{"0":false}}));
    assert_eq!(poll("garbage").await.1["code"], 6);
}

#[tokio::test]
async fn scripted_failures_and_refused_connections() {
    let hec = FakeHec::start(FakeHecOptions::new([TOKEN])).await.unwrap();
    hec.busy_next(1);
    hec.fail_next([Failure::Drop]);
    let ev = "/services/collector/event";
    assert_eq!(
        post(&hec, ev, auth(), &[], r#"{"event":"x"}"#).await,
        (503, json!({"text":"Server is busy","code":9}))
    );
    let dropped = reqwest::Client::new()
        .post(format!("{}{ev}", hec.url()))
        .header("Authorization", auth().unwrap())
        .body(r#"{"event":"x"}"#)
        .send()
        .await;
    assert!(dropped.is_err(), "dropped without an answer");
    assert!(hec.events().is_empty());

    hec.refuse_connections(Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = reqwest::Client::new()
        .post(format!("{}{ev}", hec.url()))
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(post(&hec, ev, auth(), &[], r#"{"event":"x"}"#).await.0, 200);
    assert_eq!(post(&hec, ev, auth(), &[], r#"{"event":"x"}"#).await.0, 200);
    assert_eq!(hec.receive_count(&json!("x")), 2);
    assert_eq!(hec.duplicates(), vec![(json!("x"), 2)]);
}
