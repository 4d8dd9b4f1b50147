//! The HTTP side of the fake: its own thread and runtime, an accept loop
//! that can stop and start again on the same port, one hyper connection per
//! socket (so a scripted answer can close it), and the axum routes.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::bulk::{self, State as EsState};
use super::wire::{self, error_body};
use super::{FakeEs, FakeEsBuilder, RequestLog, Scripted};

pub(crate) struct Config {
    pub users: Vec<(String, String)>,
    pub api_keys: Vec<(String, String)>,
    pub max_content_length: usize,
}

pub(crate) struct Shared {
    state: Mutex<EsState>,
    config: Config,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, EsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Ctl {
    Refuse(std_mpsc::Sender<()>),
    Accept(std_mpsc::Sender<std::io::Result<()>>),
    Shutdown,
}

/// The test's handle on the server thread.
pub(crate) struct Control {
    tx: mpsc::UnboundedSender<Ctl>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Control {
    pub(crate) fn refuse(&self) {
        let (done, wait) = std_mpsc::channel();
        if self.tx.send(Ctl::Refuse(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    pub(crate) fn accept(&self) -> std::io::Result<()> {
        let (done, wait) = std_mpsc::channel();
        self.tx
            .send(Ctl::Accept(done))
            .map_err(|_| std::io::Error::other("the fake's thread is gone"))?;
        wait.recv()
            .map_err(|_| std::io::Error::other("the fake's thread is gone"))?
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.tx.send(Ctl::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn start(builder: FakeEsBuilder) -> std::io::Result<FakeEs> {
    let (port, config) = builder.into_config();
    let shared = Arc::new(Shared {
        state: Mutex::new(EsState::default()),
        config,
    });
    let (addr_tx, addr_rx) = std_mpsc::channel::<std::io::Result<SocketAddr>>();
    let (tx, rx) = mpsc::unbounded_channel();
    let sh = shared.clone();
    let thread = std::thread::Builder::new()
        .name("fake-es".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let addr = match listener.local_addr() {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let _ = addr_tx.send(Ok(addr));
                supervise(sh, listener, addr, rx).await;
            });
        })?;
    let addr = addr_rx
        .recv()
        .map_err(|_| std::io::Error::other("the fake's thread died"))??;
    Ok(FakeEs::new(
        shared,
        addr,
        Control {
            tx,
            thread: Some(thread),
        },
    ))
}

async fn supervise(
    shared: Arc<Shared>,
    listener: TcpListener,
    addr: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Ctl>,
) {
    let mut conns = CancellationToken::new();
    let mut accepting = Some(tokio::spawn(accept_loop(
        listener,
        shared.clone(),
        conns.clone(),
    )));
    while let Some(ctl) = rx.recv().await {
        match ctl {
            Ctl::Refuse(done) => {
                if let Some(t) = accepting.take() {
                    t.abort();
                    // The listener is dropped (port closed) once the task is.
                    let _ = t.await;
                }
                conns.cancel();
                let _ = done.send(());
            }
            Ctl::Accept(done) => {
                let res = if accepting.is_some() {
                    Ok(())
                } else {
                    match bind_again(addr).await {
                        Ok(l) => {
                            conns = CancellationToken::new();
                            accepting =
                                Some(tokio::spawn(accept_loop(l, shared.clone(), conns.clone())));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                };
                let _ = done.send(res);
            }
            Ctl::Shutdown => break,
        }
    }
    if let Some(t) = accepting.take() {
        t.abort();
    }
    conns.cancel();
}

async fn bind_again(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last.expect("tried at least once"))
}

/// Lets a handler close its own connection.
#[derive(Clone)]
struct Conn(CancellationToken);

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, conns: CancellationToken) {
    let router = router(shared);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!(error = %e, "fake es: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let kill = conns.child_token();
        let svc = router.clone().layer(axum::Extension(Conn(kill.clone())));
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                hyper_util::rt::TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(svc),
            );
            tokio::select! {
                _ = conn => {}
                _ = kill.cancelled() => {}
            }
        });
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(info))
        .route("/_cluster/health", get(health))
        .route("/_bulk", post(bulk_root).put(bulk_root))
        .route("/{target}/_bulk", post(bulk_target).put(bulk_target))
        .route("/_index_template", get(get_templates))
        .route(
            "/_index_template/{name}",
            get(get_template)
                .put(put_template)
                .post(put_template)
                .delete(delete_template),
        )
        .route("/{target}/_doc/{id}", get(get_doc))
        .route("/{target}/_count", get(count).post(count))
        .route("/{target}/_refresh", post(refresh).get(refresh))
        .route("/_refresh", post(refresh_all).get(refresh_all))
        .fallback(no_handler)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(shared.clone(), common))
        .with_state(shared)
}

fn json_response(status: u16, v: &impl serde::Serialize) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// What every request goes through, in the order ES's HTTP layers apply
/// it: scripted network trouble, body size (`http.max_content_length`,
/// after decompression), security, then `Content-Type`; and on the way
/// out `X-Elastic-Product` and the compatible media type.
async fn common(
    State(shared): State<Arc<Shared>>,
    axum::Extension(conn): axum::Extension<Conn>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut log = RequestLog {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_bytes: 0,
        status: 0,
    };
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    log.body_bytes = body.len();
    let is_bulk = log.path == "/_bulk" || log.path.ends_with("/_bulk");
    if is_bulk && (parts.method == Method::POST || parts.method == Method::PUT) {
        let scripted = {
            let mut s = shared.lock();
            s.bulk_requests += 1;
            s.script.pop_front()
        };
        match scripted {
            None => {}
            Some(Scripted::Status(code)) => {
                let uri = parts.uri.to_string();
                let mut r = match wire::scripted_body(code, &uri) {
                    Some(v) => json_response(code, &v),
                    None => StatusCode::from_u16(code)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                        .into_response(),
                };
                if code == 401 {
                    add_www_authenticate(&mut r);
                }
                return finish(&shared, &parts.headers, log, r);
            }
            Some(Scripted::Response { status, body }) => {
                let mut r = (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                )
                    .into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return finish(&shared, &parts.headers, log, r);
            }
            Some(Scripted::CloseConnection) => {
                shared.lock().requests.push(log);
                conn.0.cancel();
                // The connection task drops this future with the socket.
                return std::future::pending().await;
            }
            Some(Scripted::Stall(d)) => {
                let shared2 = shared.clone();
                // Spawned: the request is applied even if the client leaves.
                let task = tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    handle(shared2, parts, body, log, next).await
                });
                return task
                    .await
                    .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
            }
            Some(Scripted::LateAnswer(d)) => {
                let r = handle(shared, parts, body, log, next).await;
                tokio::time::sleep(d).await;
                return r;
            }
        }
    }
    handle(shared, parts, body, log, next).await
}

async fn handle(
    shared: Arc<Shared>,
    mut parts: axum::http::request::Parts,
    body: Bytes,
    log: RequestLog,
    next: Next,
) -> Response {
    let limit = shared.config.max_content_length;
    if body.len() > limit {
        return finish(&shared, &parts.headers, log, too_large());
    }
    let body = match header_str(&parts.headers, "content-encoding").map(str::to_ascii_lowercase) {
        Some(enc) if enc == "gzip" || enc == "x-gzip" => {
            match read_limited(flate2::read::MultiGzDecoder::new(&body[..]), limit) {
                Ok(Some(b)) => b,
                Ok(None) => return finish(&shared, &parts.headers, log, too_large()),
                Err(e) => {
                    let r = json_response(
                        400,
                        &error_body(
                            400,
                            "parse_exception",
                            &format!("failed to decompress the request body: {e}"),
                            Map::new(),
                        ),
                    );
                    return finish(&shared, &parts.headers, log, r);
                }
            }
        }
        Some(enc) if enc == "deflate" || enc == "x-deflate" => {
            match read_limited(flate2::read::ZlibDecoder::new(&body[..]), limit) {
                Ok(Some(b)) => b,
                Ok(None) => return finish(&shared, &parts.headers, log, too_large()),
                Err(_) => body,
            }
        }
        _ => body,
    };
    let uri = parts.uri.to_string();
    if let Some(r) = check_auth(&shared.config, &parts.headers, &uri) {
        return finish(&shared, &parts.headers, log, r);
    }
    if let Some(r) = check_media_types(&parts.headers, !body.is_empty()) {
        return finish(&shared, &parts.headers, log, r);
    }
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    let headers = parts.headers.clone();
    let resp = next.run(Request::from_parts(parts, Body::from(body))).await;
    finish(&shared, &headers, log, resp)
}

/// Decompresses at most `limit` bytes; `None` when there are more.
fn read_limited(r: impl std::io::Read, limit: usize) -> std::io::Result<Option<Bytes>> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Ok(None);
    }
    Ok(Some(Bytes::from(out)))
}

fn too_large() -> Response {
    // Netty's HttpObjectAggregator: "413 Request Entity Too Large",
    // `content-length: 0`.
    StatusCode::PAYLOAD_TOO_LARGE.into_response()
}

fn finish(
    shared: &Shared,
    req_headers: &HeaderMap,
    mut log: RequestLog,
    mut r: Response,
) -> Response {
    let h = r.headers_mut();
    h.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    if let Some(v) = compatible_version(req_headers)
        && header_str(h, "content-type") == Some("application/json")
        && let Ok(ct) = HeaderValue::from_str(&format!(
            "application/vnd.elasticsearch+json;compatible-with={v}"
        ))
    {
        h.insert(header::CONTENT_TYPE, ct);
    }
    log.status = r.status().as_u16();
    shared.lock().requests.push(log);
    r
}

fn add_www_authenticate(r: &mut Response) {
    let h = r.headers_mut();
    h.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="security", charset="UTF-8""#),
    );
    h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
}

fn unauthorized(reason: &str, extra: Map<String, Value>) -> Response {
    let mut extra = extra;
    extra.extend(wire::www_authenticate());
    let mut r = json_response(401, &error_body(401, "security_exception", reason, extra));
    add_www_authenticate(&mut r);
    r
}

/// `xpack.security`: Basic and ApiKey credentials ("Security" > "User
/// authentication": 401 `security_exception`).
fn check_auth(cfg: &Config, headers: &HeaderMap, uri: &str) -> Option<Response> {
    if cfg.users.is_empty() && cfg.api_keys.is_empty() {
        return None;
    }
    let Some(auth) = header_str(headers, "authorization") else {
        return Some(unauthorized(
            &format!("missing authentication credentials for REST request [{uri}]"),
            Map::new(),
        ));
    };
    let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let pair = decoded.as_deref().and_then(|d| d.split_once(':'));
    if scheme.eq_ignore_ascii_case("basic") {
        if let Some((u, p)) = pair
            && cfg.users.iter().any(|(cu, cp)| cu == u && cp == p)
        {
            return None;
        }
        let user = pair.map(|(u, _)| u).unwrap_or("");
        return Some(unauthorized(
            &format!("unable to authenticate user [{user}] for REST request [{uri}]"),
            Map::new(),
        ));
    }
    if scheme.eq_ignore_ascii_case("apikey") {
        if let Some((id, key)) = pair
            && cfg.api_keys.iter().any(|(ci, ck)| ci == id && ck == key)
        {
            return None;
        }
        let id = pair.map(|(i, _)| i).unwrap_or("");
        let mut extra = Map::new();
        extra.insert(
            "additional_unsuccessful_credentials".into(),
            json!(format!("API key: unable to find apikey with id {id}")),
        );
        return Some(unauthorized(
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
            extra,
        ));
    }
    Some(unauthorized(
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
        Map::new(),
    ))
}

/// The version in `compatible-with=N` of `Accept` or `Content-Type`.
fn compatible_version(h: &HeaderMap) -> Option<u32> {
    ["accept", "content-type"].iter().find_map(|n| {
        let v = header_str(h, n)?;
        let i = v.find("compatible-with=")?;
        v[i + "compatible-with=".len()..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    })
}

/// `Content-Type` of a request with a body: JSON, NDJSON or their
/// versioned vendor forms (REST API compatibility: `compatible-with` 8 or 9
/// on a 9.x cluster).
fn check_media_types(h: &HeaderMap, has_body: bool) -> Option<Response> {
    if let Some(v) = compatible_version(h)
        && v != 8
        && v != 9
    {
        let mut extra = Map::new();
        extra.insert(
            "caused_by".into(),
            json!({"type": "status_exception", "reason": format!("Compatible version must be equal or less than the current version. Accept={} Content-Type={}", header_str(h, "accept").unwrap_or("null"), header_str(h, "content-type").unwrap_or("null"))}),
        );
        return Some(json_response(
            400,
            &error_body(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                extra,
            ),
        ));
    }
    if !has_body {
        return None;
    }
    let Some(ct) = header_str(h, "content-type") else {
        return Some(json_response(
            406,
            &json!({"error": "Content-Type header is missing", "status": 406}),
        ));
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = matches!(
        mime.as_str(),
        "application/json"
            | "application/x-ndjson"
            | "application/vnd.elasticsearch+json"
            | "application/vnd.elasticsearch+x-ndjson"
    );
    if ok {
        None
    } else {
        Some(json_response(
            406,
            &json!({"error": format!("Content-Type header [{ct}] is not supported"), "status": 406}),
        ))
    }
}

async fn no_handler(method: Method, uri: axum::http::Uri) -> Response {
    json_response(
        400,
        &json!({"error": format!("no handler found for uri [{uri}] and method [{method}]"), "status": 400}),
    )
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> Response {
    json_response(
        405,
        &json!({"error": format!("Incorrect HTTP method for uri [{uri}] and method [{method}]"), "status": 405}),
    )
}

// ---- handlers ----

async fn info() -> Response {
    json_response(
        200,
        &json!({
            "name": "fake-node-1",
            "cluster_name": "mlsoc-fake",
            "cluster_uuid": "bWxzb2MtZmFrZS1jbHVzdGVy",
            "version": {
                "number": "9.1.0",
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0000000000000000000000000000000000000000",
                "build_date": "2025-07-24T00:00:00.000000000Z",
                "build_snapshot": false,
                "lucene_version": "10.2.2",
                "minimum_wire_compatibility_version": "8.19.0",
                "minimum_index_compatibility_version": "8.0.0"
            },
            "tagline": "You Know, for Search"
        }),
    )
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let shards = shared.lock().indices.len();
    json_response(
        200,
        &json!({
            "cluster_name": "mlsoc-fake",
            "status": "green",
            "timed_out": false,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": shards,
            "active_shards": shards,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "unassigned_primary_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0
        }),
    )
}

/// Query parameters of the bulk API ("Bulk API" > query parameters);
/// others are refused as ES refuses them.
const BULK_PARAMS: &[&str] = &[
    "refresh",
    "pipeline",
    "routing",
    "timeout",
    "wait_for_active_shards",
    "require_alias",
    "require_data_stream",
    "_source",
    "_source_includes",
    "_source_excludes",
    "list_executed_pipelines",
    "include_source_on_error",
    "error_trace",
    "filter_path",
    "human",
    "pretty",
];

fn run_bulk(
    shared: &Shared,
    target: Option<&str>,
    query: Option<&str>,
    path: &str,
    body: &[u8],
) -> Response {
    let started = Instant::now();
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap_or("");
            if !BULK_PARAMS.contains(&key) {
                return json_response(
                    400,
                    &error_body(
                        400,
                        "illegal_argument_exception",
                        &format!("request [{path}] contains unrecognized parameter: [{key}]"),
                        Map::new(),
                    ),
                );
            }
        }
    }
    let mut s = shared.lock();
    match bulk::process(&mut s, target, body, started) {
        Ok(answer) => json_response(200, &answer),
        Err((status, v)) => json_response(status, &v),
    }
}

async fn bulk_root(
    State(shared): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    run_bulk(&shared, None, q.as_deref(), "/_bulk", &body)
}

async fn bulk_target(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let path = format!("/{target}/_bulk");
    run_bulk(&shared, Some(&target), q.as_deref(), &path, &body)
}

async fn put_template(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            return json_response(
                400,
                &error_body(
                    400,
                    "x_content_parse_exception",
                    "[1:1] [index_template] failed to parse: the body is not a JSON object",
                    Map::new(),
                ),
            );
        }
    };
    if v.get("index_patterns").is_none() {
        return json_response(
            400,
            &error_body(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
                Map::new(),
            ),
        );
    }
    shared.lock().templates.insert(name, v);
    json_response(200, &json!({"acknowledged": true}))
}

async fn get_templates(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.lock();
    let list: Vec<Value> = s
        .templates
        .iter()
        .map(|(n, t)| json!({"name": n, "index_template": t}))
        .collect();
    json_response(200, &json!({"index_templates": list}))
}

async fn get_template(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let s = shared.lock();
    let list: Vec<Value> = s
        .templates
        .iter()
        .filter(|(n, _)| bulk::glob(&name, n))
        .map(|(n, t)| json!({"name": n, "index_template": t}))
        .collect();
    if list.is_empty() {
        return json_response(
            404,
            &error_body(
                404,
                "resource_not_found_exception",
                &format!("index template matching [{name}] not found"),
                Map::new(),
            ),
        );
    }
    json_response(200, &json!({"index_templates": list}))
}

async fn delete_template(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if shared.lock().templates.remove(&name).is_none() {
        return json_response(
            404,
            &error_body(
                404,
                "resource_not_found_exception",
                &format!("index_template [{name}] missing"),
                Map::new(),
            ),
        );
    }
    json_response(200, &json!({"acknowledged": true}))
}

fn index_not_found(name: &str) -> Response {
    let mut extra = Map::new();
    extra.insert("resource.type".into(), json!("index_or_alias"));
    extra.insert("resource.id".into(), json!(name));
    extra.insert("index_uuid".into(), json!("_na_"));
    extra.insert("index".into(), json!(name));
    json_response(
        404,
        &error_body(
            404,
            "index_not_found_exception",
            &format!("no such index [{name}]"),
            extra,
        ),
    )
}

async fn get_doc(
    State(shared): State<Arc<Shared>>,
    Path((target, id)): Path<(String, String)>,
) -> Response {
    let s = shared.lock();
    let Some(ix) = s.indices.get(&target) else {
        return index_not_found(&target);
    };
    match ix.by_id.get(&id).map(|&i| &ix.docs[i]) {
        Some(d) => json_response(
            200,
            &json!({"_index": ix.backing, "_id": id, "_version": d.version, "_seq_no": d.seq_no,
                     "_primary_term": 1, "found": true, "_source": d.source()}),
        ),
        None => json_response(
            404,
            &json!({"_index": ix.backing, "_id": id, "found": false}),
        ),
    }
}

async fn count(State(shared): State<Arc<Shared>>, Path(target): Path<String>) -> Response {
    let s = shared.lock();
    let mut n = 0;
    let mut matched = 0;
    for pattern in target.split(',') {
        let hits: Vec<_> = s
            .indices
            .iter()
            .filter(|(name, _)| bulk::glob(pattern, name))
            .collect();
        if hits.is_empty() && !pattern.contains('*') {
            return index_not_found(pattern);
        }
        matched += hits.len();
        n += hits.iter().map(|(_, i)| i.docs.len()).sum::<usize>();
    }
    json_response(
        200,
        &json!({"count": n, "_shards": {"total": matched, "successful": matched, "skipped": 0, "failed": 0}}),
    )
}

async fn refresh(State(shared): State<Arc<Shared>>, Path(target): Path<String>) -> Response {
    let s = shared.lock();
    if !target.contains('*') && !s.indices.contains_key(&target) {
        return index_not_found(&target);
    }
    json_response(
        200,
        &json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}),
    )
}

async fn refresh_all(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.lock().indices.len();
    json_response(
        200,
        &json!({"_shards": {"total": n, "successful": n, "failed": 0}}),
    )
}
