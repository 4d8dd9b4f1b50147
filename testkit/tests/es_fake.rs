//! The fake Elasticsearch over HTTP: each documented behaviour, as a
//! client sees it.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::es::{FakeEs, ItemError, ItemRule, Scripted};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .unwrap()
}

async fn bulk(es: &FakeEs, body: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn bulk_round_trip_and_info() {
    let es = FakeEs::start().await;
    let r = client().get(es.url()).send().await.unwrap();
    assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    let info: Value = r.json().await.unwrap();
    assert!(
        info["version"]["number"]
            .as_str()
            .unwrap()
            .starts_with("9.")
    );

    let (status, body) = bulk(
        &es,
        "{\"create\":{\"_index\":\"logs-a-default\",\"_id\":\"x\"}}\n{\"@timestamp\":\"2025-01-01T00:00:00Z\"}\n\
         {\"create\":{\"_index\":\"logs-a-default\",\"_id\":\"x\"}}\n{\"@timestamp\":\"2025-01-01T00:00:00Z\"}\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"], true);
    assert_eq!(body["items"][0]["create"]["status"], 201);
    assert_eq!(body["items"][1]["create"]["status"], 409);
    assert!(body["took"].is_u64());
    assert_eq!(es.received_ids(), vec!["x", "x"]);
    assert_eq!(es.bulk_requests(), 1);

    // Target in the path.
    let r = client()
        .post(format!("{}/plain/_bulk?refresh=true", es.url()))
        .header("content-type", "application/json")
        .body("{\"index\":{}}\n{\"k\":1}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(es.docs("plain").len(), 1);
    let health: Value = client()
        .get(format!("{}/_cluster/health", es.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "green");
}

#[tokio::test]
async fn malformed_requests() {
    let es = FakeEs::start().await;
    let (status, body) = bulk(&es, "{\"index\":{\"_index\":\"a\"}}\n{}").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "illegal_argument_exception");
    assert_eq!(
        body["error"]["reason"],
        "The bulk request must be terminated by a newline [\\n]"
    );
    assert_eq!(body["status"], 400);

    let r = client()
        .post(format!("{}/_bulk?frobnicate=1", es.url()))
        .header("content-type", "application/x-ndjson")
        .body("{\"index\":{\"_index\":\"a\"}}\n{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(format!("{}/_bulk", es.url()))
        .body("{\"index\":{\"_index\":\"a\"}}\n{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406, "no Content-Type");
    let r = client()
        .get(format!("{}/_bulk", es.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = client()
        .get(format!("{}/_nope/x/y/z", es.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(es.indices().is_empty());
}

#[tokio::test]
async fn gzip_bodies_and_content_length_limit() {
    use flate2::write::GzEncoder;
    let es = FakeEs::builder().max_content_length(1_000).start().await;
    let small = "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"k\":1}\n".to_owned();
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(small.as_bytes()).unwrap();
    let r = client()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(es.doc("a", "1").unwrap(), json!({"k": 1}));

    // 2 KB that compress to little: the limit is on the decompressed body.
    let big = format!(
        "{{\"index\":{{\"_index\":\"a\"}}}}\n{{\"pad\":\"{}\"}}\n",
        "x".repeat(2_000)
    );
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(big.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 1_000);
    let r = client()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.text().await.unwrap(), "");
    let (status, _) = bulk(&es, &big).await;
    assert_eq!(status, 413);
    assert_eq!(es.docs("a").len(), 1);
}

#[tokio::test]
async fn security() {
    let es = FakeEs::builder()
        .basic_auth("elastic", "changeme")
        .api_key("kid", "ksecret")
        .start()
        .await;
    let r = client().get(es.url()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get_all("www-authenticate").iter().count() >= 2);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "security_exception");
    assert_eq!(
        body["error"]["reason"],
        "missing authentication credentials for REST request [/]"
    );
    let r = client()
        .get(es.url())
        .basic_auth("elastic", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["reason"],
        "unable to authenticate user [elastic] for REST request [/]"
    );
    let r = client()
        .get(es.url())
        .basic_auth("elastic", Some("changeme"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(es.url())
        .header("authorization", "ApiKey a2lkOmtzZWNyZXQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn scripted_failures() {
    let es = FakeEs::start().await;
    es.push_response(Scripted::Status(503));
    es.push_response(Scripted::Status(429));
    es.push_response(Scripted::CloseConnection);
    es.push_response(Scripted::Status(413));
    let body = "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{}\n";
    let (s, b) = bulk(&es, body).await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (503, Some("cluster_block_exception"))
    );
    let (s, b) = bulk(&es, body).await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (429, Some("es_rejected_execution_exception"))
    );
    let err = client()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout(), "{err}");
    let (s, _) = bulk(&es, body).await;
    assert_eq!(s, 413);
    // Only the unscripted request was parsed.
    assert_eq!(es.items_received(), 0);
    let (s, _) = bulk(&es, body).await;
    assert_eq!(s, 200);
    assert_eq!(es.items_received(), 1);
    assert_eq!(es.bulk_requests(), 5);

    // A stall past the client's timeout; the request is applied anyway.
    es.push_response(Scripted::Stall(Duration::from_millis(500)));
    let err = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .post(format!("{}/_bulk", es.url()))
        .header("content-type", "application/x-ndjson")
        .body("{\"index\":{\"_index\":\"a\",\"_id\":\"late\"}}\n{}\n")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert!(
        es.wait_until(Duration::from_secs(2), |es| es.doc("a", "late").is_some())
            .await
    );
}

#[tokio::test]
async fn item_rules() {
    let es = FakeEs::start().await;
    es.fail_items(ItemRule::source_contains(
        "BAD",
        ItemError::mapping("n", "long", "BAD"),
    ));
    es.fail_items(ItemRule::reject_first_attempt_every(2));
    let body: String = (1..=4)
        .map(|i| {
            let v = if i == 3 { "\"BAD\"" } else { "1" };
            format!("{{\"create\":{{\"_index\":\"a\",\"_id\":\"{i}\"}}}}\n{{\"n\":{v}}}\n")
        })
        .collect();
    let (_, r) = bulk(&es, &body).await;
    let st: Vec<u64> = (0..4)
        .map(|i| r["items"][i]["create"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(st, vec![201, 429, 400, 429]);
    assert_eq!(
        r["items"][2]["create"]["error"]["reason"],
        "[1:27] failed to parse field [n] of type [long] in document with id '3'. Preview of field's value: 'BAD'"
    );
    let (_, r) = bulk(&es, &body).await;
    let st: Vec<u64> = (0..4)
        .map(|i| r["items"][i]["create"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(st, vec![409, 201, 400, 201]);
    assert_eq!(es.receive_count("2"), 2);
}

#[tokio::test]
async fn refuses_then_accepts_connections_on_the_same_port() {
    let es = FakeEs::start().await;
    let url = es.url();
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
    es.refuse_connections();
    let err = client().get(&url).send().await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    es.accept_connections();
    assert_eq!(es.url(), url);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn index_templates() {
    let es = FakeEs::start().await;
    let c = client();
    let r = c
        .put(format!("{}/_index_template/t1", es.url()))
        .json(&json!({"index_patterns": ["app-*"], "data_stream": {}, "priority": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got: Value = c
        .get(format!("{}/_index_template/t1", es.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["index_templates"][0]["name"], "t1");
    let r = c
        .get(format!("{}/_index_template/nope", es.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c
        .put(format!("{}/_index_template/t2", es.url()))
        .json(&json!({"template": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The template makes `app-x` a data stream: `index` is refused.
    let (_, r) = bulk(
        &es,
        "{\"index\":{\"_index\":\"app-x\"}}\n{\"@timestamp\":\"2025-01-01T00:00:00Z\"}\n",
    )
    .await;
    assert_eq!(r["items"][0]["index"]["status"], 400);
    assert_eq!(
        r["items"][0]["index"]["error"]["reason"],
        "only write ops with an op_type of create are allowed in data streams"
    );
}

/// From a test without a runtime, over a raw socket: the exact bytes.
#[test]
fn blocking_start_and_raw_http() {
    let es = FakeEs::start_blocking();
    let body = "{\"index\":{\"_index\":\"raw\",\"_id\":\"1\"}}\n{\"a\":1}\n";
    let mut s = std::net::TcpStream::connect(es.addr()).unwrap();
    write!(
        s,
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("x-elastic-product: elasticsearch")
    );
    let json_start = out.find("\r\n\r\n").unwrap() + 4;
    let v: Value = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(v["items"][0]["index"]["result"], "created");
    assert_eq!(es.docs("raw")[0].id, "1");
}
