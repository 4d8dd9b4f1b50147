//! HEC-compatible HTTP receiver (`[sources.NAME] type = "splunk_hec"`), so
//! components and existing shippers (Splunk logging libraries, Vector's or
//! Fluent Bit's Splunk outputs, OpenTelemetry's HEC exporter) can push to
//! mlsoc.
//!
//! Endpoints, as Splunk's HTTP Event Collector has them:
//! - `POST /services/collector/event` (and `/services/collector`,
//!   `/services/collector/event/1.0`): concatenated JSON envelopes
//!   `{"event": .., "time", "host", "source", "sourcetype", "index",
//!   "fields"}`; each `event` becomes one record: a string as its text, any
//!   other JSON value as its JSON text;
//! - `POST /services/collector/raw`: one record per non-empty line;
//! - `GET /services/collector/health`: 200 / 17, or 503 / 18 while the
//!   pipeline is full;
//! - `POST /services/collector/ack` when `acknowledgements = true`.
//!
//! Bodies may be gzip (`Content-Encoding: gzip`); the limit
//! `max_body_bytes` applies to the body as sent and decompressed (413
//! beyond it). Errors use the HEC codes of Splunk's table ("Troubleshoot
//! HTTP Event Collector"), as testkit's fake collector does.
//!
//! **Delivery.** Each request becomes a [`SourceBatch`] (one per distinct
//! format when `sourcetype_formats` maps envelopes of one request to
//! different formats; they share one [`Ack`]). Without indexer
//! acknowledgement the answer `{"text":"Success","code":0}` is sent only
//! once the batch's ack reports it delivered (stored by every sink or
//! dead-lettered), so a client that gets 200 knows its data is stored; no
//! answer within `ack_timeout`, or a failed delivery, gives 503 / 9 "Server
//! is busy" and the client sends again (at-least-once: a late delivery then
//! makes a duplicate). With `acknowledgements = true` the answer comes at
//! once with an `ackId`, reported true on `/services/collector/ack` once
//! delivered (false forever if delivery failed: the client's ack timeout
//! then makes it resend).
//!
//! **Backpressure.** The pipeline channel is bounded. A request waits at
//! most `busy_timeout` (default 1 s) for room in it, then gets 503 / 9
//! "Server is busy" (HEC clients retry that with backoff); at most
//! `max_concurrent_requests` requests are handled at once, more get 503 / 9
//! before their body is read. Memory is so bounded by
//! `max_concurrent_requests` × `max_body_bytes`.
//!
//! **Invalid events.** An envelope that fails validation stops the request
//! where it is: the answer carries its `invalid-event-number`, and the
//! events before it are kept and delivered, as Splunk does (clients that
//! follow Splunk count them as indexed).
//!
//! Example:
//!
//! ```toml
//! [sources.hec_in]
//! type = "splunk_hec"
//! address = "0.0.0.0:8088"
//! valid_tokens = [{ env = "MLSOC_HEC_IN_TOKEN" }, { file = "/run/secrets/hec-in" }]
//! max_body_bytes = 10485760
//! acknowledgements = false
//! sourcetype_formats = { "mlflow:access" = "mlflow.access" }
//! busy_timeout = "1s"
//! ack_timeout = "30s"
//! max_concurrent_requests = 64
//! tls = { cert_file = "/etc/mlsoc/hec.crt", key_file = "/etc/mlsoc/hec.key" }
//! ```
//!
//! **Not carried yet.** Envelope `host`, `source`, `sourcetype` (beyond the
//! format mapping), `index`, `time` and `fields` are validated but not
//! passed on: [`RawRecord`] has no place for them, and the normalizer finds
//! time and host in the event itself. The records' source is
//! `hec://<listen address>`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use schema::{Ack, AckStatus, RawRecord, Source, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::SourceBatch;

/// `[sources.NAME]` with `type = "splunk_hec"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecSourceConfig {
    /// Address to listen on (`0.0.0.0:8088`, Splunk's port).
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    /// Accepted tokens: each inline (`"…"`), from the environment
    /// (`{ env = "VAR" }`) or from a file (`{ file = "/run/secrets/hec" }`).
    /// At least one.
    pub valid_tokens: Vec<TokenSpec>,
    /// Largest body, as sent and decompressed.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
    /// Indexer acknowledgement: answer at once with an `ackId`.
    #[serde(default)]
    pub acknowledgements: bool,
    /// Envelope `sourcetype` → mlsoc format name
    /// (`"mlflow:access" = "mlflow.access"`); others are detected.
    #[serde(default)]
    pub sourcetype_formats: BTreeMap<String, String>,
    /// Longest a request waits for room in the pipeline before 503 / 9.
    #[serde(default = "default_busy_timeout", with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Without indexer acknowledgement: longest a request waits for its
    /// records to be delivered before 503 / 9.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Requests handled at once; more get 503 / 9.
    #[serde(default = "default_concurrency")]
    pub max_concurrent_requests: usize,
    /// With acknowledgements: most ackIds kept (delivered but not yet
    /// queried, or pending); more requests get 503 / 9.
    #[serde(default = "default_max_acks")]
    pub max_pending_acks: usize,
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8088))
}
fn default_max_body() -> usize {
    10 * 1024 * 1024
}
fn default_busy_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    64
}
fn default_max_acks() -> usize {
    1_000_000
}

impl HecSourceConfig {
    /// Defaults, listening on `address`, accepting `tokens` (tests).
    pub fn new(address: SocketAddr, tokens: &[&str]) -> HecSourceConfig {
        HecSourceConfig {
            address,
            valid_tokens: tokens
                .iter()
                .map(|t| TokenSpec::Inline(Secret((*t).to_owned())))
                .collect(),
            max_body_bytes: default_max_body(),
            tls: None,
            acknowledgements: false,
            sourcetype_formats: BTreeMap::new(),
            busy_timeout: default_busy_timeout(),
            ack_timeout: default_ack_timeout(),
            max_concurrent_requests: default_concurrency(),
            max_pending_acks: default_max_acks(),
        }
    }
}

/// Where one accepted token comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenSpec {
    Inline(Secret),
    Env { env: String },
    File { file: PathBuf },
}

/// A token: printed and serialized as `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// TLS for the listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Why the source could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HecSourceError {
    #[error("splunk_hec source: {0}")]
    Config(String),
    #[error("splunk_hec source: cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("splunk_hec source: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound, not yet running source: learn its address, then [`run`](HecServer::run).
pub struct HecServer {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    config: HecSourceConfig,
    tokens: Vec<String>,
    addr: SocketAddr,
}

impl std::fmt::Debug for HecServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HecServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Binds and runs until `stop` is cancelled (then finishes the requests in
/// flight and returns).
pub async fn serve(
    config: HecSourceConfig,
    name: Arc<str>,
    out: mpsc::Sender<SourceBatch>,
    stop: CancellationToken,
) -> Result<(), HecSourceError> {
    HecServer::bind(config).await?.run(name, out, stop).await
}

impl HecServer {
    /// Checks the configuration, reads tokens and TLS files, and binds.
    pub async fn bind(config: HecSourceConfig) -> Result<HecServer, HecSourceError> {
        let tokens = resolve_tokens(&config.valid_tokens)?;
        if config.max_body_bytes == 0 || config.max_concurrent_requests == 0 {
            return Err(HecSourceError::Config(
                "max_body_bytes and max_concurrent_requests must be at least 1".into(),
            ));
        }
        let tls = match &config.tls {
            Some(t) => Some(tls_acceptor(t)?),
            None => None,
        };
        let listener =
            TcpListener::bind(config.address)
                .await
                .map_err(|source| HecSourceError::Bind {
                    address: config.address,
                    source,
                })?;
        let addr = listener.local_addr()?;
        Ok(HecServer {
            listener,
            tls,
            config,
            tokens,
            addr,
        })
    }

    /// The address bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is cancelled.
    pub async fn run(
        self,
        name: Arc<str>,
        out: mpsc::Sender<SourceBatch>,
        stop: CancellationToken,
    ) -> Result<(), HecSourceError> {
        let scheme = if self.tls.is_some() { "hecs" } else { "hec" };
        let state = Arc::new(AppState {
            name,
            out,
            tokens: self.tokens,
            permits: Arc::new(Semaphore::new(self.config.max_concurrent_requests)),
            acks: Mutex::new(AckStore::default()),
            source_name: format!("{scheme}://{}", self.addr),
            streams: AtomicU64::new(0),
            config: self.config,
        });
        let app = router(state);
        tracing::info!(address = %self.addr, tls = self.tls.is_some(), "splunk_hec source listening");
        let shutdown = stop.clone();
        match self.tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await?
            }
            Some(acceptor) => {
                let listener = TlsListener::new(self.listener, acceptor, stop.clone());
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
                    .await?
            }
        }
        Ok(())
    }
}

fn resolve_tokens(specs: &[TokenSpec]) -> Result<Vec<String>, HecSourceError> {
    if specs.is_empty() {
        return Err(HecSourceError::Config(
            "valid_tokens: give at least one token".into(),
        ));
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let t = match spec {
                TokenSpec::Inline(s) => s.0.trim().to_owned(),
                TokenSpec::Env { env } => std::env::var(env)
                    .map_err(|_| {
                        HecSourceError::Config(format!(
                            "valid_tokens[{i}]: environment variable `{env}` is not set"
                        ))
                    })?
                    .trim()
                    .to_owned(),
                TokenSpec::File { file } => std::fs::read_to_string(file)
                    .map_err(|e| {
                        HecSourceError::Config(format!(
                            "valid_tokens[{i}]: {}: {e}",
                            file.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            };
            if t.is_empty() {
                return Err(HecSourceError::Config(format!(
                    "valid_tokens[{i}] is empty"
                )));
            }
            Ok(t)
        })
        .collect()
}

fn tls_acceptor(t: &TlsServerConfig) -> Result<tokio_rustls::TlsAcceptor, HecSourceError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| HecSourceError::Config(format!("tls: {}: {e}", p.display())))
    };
    let cert_pem = read(&t.cert_file)?;
    let key_pem = read(&t.key_file)?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            HecSourceError::Config(format!("tls.cert_file {}: {e}", t.cert_file.display()))
        })?;
    if certs.is_empty() {
        return Err(HecSourceError::Config(format!(
            "tls.cert_file {}: no certificate",
            t.cert_file.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| HecSourceError::Config(format!("tls.key_file {}: {e}", t.key_file.display())))?
        .ok_or_else(|| {
            HecSourceError::Config(format!(
                "tls.key_file {}: no private key",
                t.key_file.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HecSourceError::Config(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| HecSourceError::Config(format!("tls: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Accepts TCP connections and hands axum those whose TLS handshake
/// finished; handshakes run in their own tasks, so a slow client cannot
/// hold up the others.
struct TlsListener {
    rx: mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn new(
        listener: TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
        stop: CancellationToken,
    ) -> TlsListener {
        let addr = listener
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "splunk_hec source: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "splunk_hec source: TLS handshake failed")
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "splunk_hec source: TLS handshake timed out")
                        }
                    }
                });
            }
        });
        TlsListener { rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended (stop): wait for the graceful shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

// ---------------------------------------------------------------------
// State.

struct AppState {
    name: Arc<str>,
    out: mpsc::Sender<SourceBatch>,
    tokens: Vec<String>,
    permits: Arc<Semaphore>,
    acks: Mutex<AckStore>,
    source_name: String,
    streams: AtomicU64,
    config: HecSourceConfig,
}

#[derive(Default)]
struct AckStore {
    channels: HashMap<String, ChannelAcks>,
    total: usize,
}

#[derive(Default)]
struct ChannelAcks {
    next_id: u64,
    /// ackId → delivered.
    acks: HashMap<u64, bool>,
}

impl AppState {
    fn acks(&self) -> std::sync::MutexGuard<'_, AckStore> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---------------------------------------------------------------------
// Answers (Splunk's table; testkit's fake uses the same).

struct Hec {
    status: StatusCode,
    code: i64,
    text: &'static str,
    invalid_event: Option<usize>,
}

const fn hec(status: StatusCode, code: i64, text: &'static str) -> Hec {
    Hec {
        status,
        code,
        text,
        invalid_event: None,
    }
}

const TOKEN_REQUIRED: Hec = hec(StatusCode::UNAUTHORIZED, 2, "Token is required");
const INVALID_AUTHORIZATION: Hec = hec(StatusCode::UNAUTHORIZED, 3, "Invalid authorization");
const INVALID_TOKEN: Hec = hec(StatusCode::FORBIDDEN, 4, "Invalid token");
const NO_DATA: Hec = hec(StatusCode::BAD_REQUEST, 5, "No data");
const INVALID_DATA_FORMAT: Hec = hec(StatusCode::BAD_REQUEST, 6, "Invalid data format");
const SERVER_BUSY: Hec = hec(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
const CHANNEL_MISSING: Hec = hec(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
const INVALID_CHANNEL: Hec = hec(StatusCode::BAD_REQUEST, 11, "Invalid data channel");
const EVENT_REQUIRED: Hec = hec(StatusCode::BAD_REQUEST, 12, "Event field is required");
const EVENT_BLANK: Hec = hec(StatusCode::BAD_REQUEST, 13, "Event field cannot be blank");
const ACK_DISABLED: Hec = hec(StatusCode::BAD_REQUEST, 14, "ACK is disabled");
const INDEXED_FIELDS: Hec = hec(
    StatusCode::BAD_REQUEST,
    15,
    "Error in handling indexed fields",
);
const QUERY_AUTH_DISABLED: Hec = hec(
    StatusCode::BAD_REQUEST,
    16,
    "Query string authorization is not enabled",
);
const HEALTHY: Hec = hec(StatusCode::OK, 17, "HEC is healthy");
const QUEUES_FULL: Hec = hec(
    StatusCode::SERVICE_UNAVAILABLE,
    18,
    "HEC is unhealthy, queues are full",
);
const SHUTTING_DOWN: Hec = hec(
    StatusCode::SERVICE_UNAVAILABLE,
    23,
    "Server is shutting down",
);

impl Hec {
    fn at(mut self, n: usize) -> Hec {
        self.invalid_event = Some(n);
        self
    }
}

impl IntoResponse for Hec {
    fn into_response(self) -> Response {
        let mut v = json!({"text": self.text, "code": self.code});
        if let Some(n) = self.invalid_event {
            v["invalid-event-number"] = json!(n);
        }
        json_response(self.status, v)
    }
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn too_large(max: usize) -> Response {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"text": format!("Request body larger than {max} bytes")}),
    )
}

// ---------------------------------------------------------------------
// Routes.

type Params = HashMap<String, String>;

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/services/collector", post(event_route))
        .route("/services/collector/event", post(event_route))
        .route("/services/collector/event/1.0", post(event_route))
        .route("/services/collector/raw", post(raw_route))
        .route("/services/collector/raw/1.0", post(raw_route))
        .route("/services/collector/health", get(health_route))
        .route("/services/collector/health/1.0", get(health_route))
        .route("/services/collector/ack", post(ack_route))
        // The body is read by the handlers, with the configured limit.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Raw,
}

async fn event_route(
    State(s): State<Arc<AppState>>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    data_route(s, p, headers, body, Kind::Event).await
}

async fn raw_route(
    State(s): State<Arc<AppState>>,
    Query(p): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    data_route(s, p, headers, body, Kind::Raw).await
}

async fn health_route(State(s): State<Arc<AppState>>) -> Response {
    if s.out.is_closed() {
        SHUTTING_DOWN.into_response()
    } else if s.out.capacity() == 0 {
        QUEUES_FULL.into_response()
    } else {
        HEALTHY.into_response()
    }
}

/// "Authorization: Splunk <token>" (or Basic with the token as password,
/// which Splunk also accepts). Compared in constant time.
fn check_token(s: &AppState, headers: &HeaderMap, params: &Params) -> Result<(), Hec> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(if params.contains_key("token") {
            QUERY_AUTH_DISABLED
        } else {
            TOKEN_REQUIRED
        });
    };
    let value = value.to_str().map_err(|_| INVALID_AUTHORIZATION)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(INVALID_AUTHORIZATION)?;
    let token = if scheme.eq_ignore_ascii_case("Splunk") {
        rest.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("Basic") {
        let raw = decode_base64(rest.trim()).ok_or(INVALID_AUTHORIZATION)?;
        let text = String::from_utf8(raw).map_err(|_| INVALID_AUTHORIZATION)?;
        text.split_once(':')
            .map(|(_, p)| p.to_owned())
            .ok_or(INVALID_AUTHORIZATION)?
    } else {
        return Err(INVALID_AUTHORIZATION);
    };
    if token.is_empty() {
        return Err(TOKEN_REQUIRED);
    }
    let mut ok = false;
    for t in &s.tokens {
        ok |= constant_time_eq(t.as_bytes(), token.as_bytes());
    }
    if ok { Ok(()) } else { Err(INVALID_TOKEN) }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn channel_of(headers: &HeaderMap, params: &Params, required: bool) -> Result<Option<String>, Hec> {
    let ch = match headers.get("x-splunk-request-channel") {
        Some(v) => Some(v.to_str().map_err(|_| INVALID_CHANNEL)?.to_owned()),
        None => params.get("channel").cloned(),
    };
    match ch {
        None if required => Err(CHANNEL_MISSING),
        None => Ok(None),
        Some(c) if is_guid(&c) => Ok(Some(c.to_ascii_lowercase())),
        Some(_) => Err(INVALID_CHANNEL),
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads at most `max` bytes of body, then gunzips at most `max` bytes.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, Response> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large(max));
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(chunk) = stream.next().await {
        // An error here is the client going away mid-body.
        let chunk = chunk.map_err(|_| INVALID_DATA_FORMAT.into_response())?;
        if bytes.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    let encoding = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(bytes),
        Some("gzip") => {
            let mut out = Vec::new();
            let mut dec = flate2::read::MultiGzDecoder::new(&bytes[..]).take(max as u64 + 1);
            dec.read_to_end(&mut out)
                .map_err(|_| INVALID_DATA_FORMAT.into_response())?;
            if out.len() > max {
                return Err(too_large(max));
            }
            Ok(out)
        }
        Some(_) => Err(json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"text": "Unsupported content encoding"}),
        )),
    }
}

/// One parsed event: its record bytes and mapped format.
struct Parsed {
    bytes: Vec<u8>,
    format: Option<String>,
}

/// Parses `/event` envelopes; stops at the first invalid one.
fn parse_events(data: &[u8], formats: &BTreeMap<String, String>) -> (Vec<Parsed>, Option<Hec>) {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    for (n, item) in stream.enumerate() {
        let envelope = match item {
            Ok(Value::Object(o)) => o,
            _ => return (out, Some(INVALID_DATA_FORMAT.at(n))),
        };
        match check_envelope(envelope, formats) {
            Ok(p) => out.push(p),
            Err(h) => return (out, Some(h.at(n))),
        }
    }
    (out, None)
}

fn check_envelope(
    mut o: serde_json::Map<String, Value>,
    formats: &BTreeMap<String, String>,
) -> Result<Parsed, Hec> {
    for key in ["host", "source", "sourcetype", "index"] {
        if !matches!(
            o.get(key),
            None | Some(Value::Null) | Some(Value::String(_))
        ) {
            return Err(INVALID_DATA_FORMAT);
        }
    }
    match o.get("time") {
        None | Some(Value::Null) | Some(Value::Number(_)) => {}
        Some(Value::String(s)) if s.trim().parse::<f64>().is_ok() => {}
        Some(_) => return Err(INVALID_DATA_FORMAT),
    }
    match o.get("fields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(f)) => {
            let flat =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            if !f.values().all(|v| match v {
                Value::Array(items) => items.iter().all(flat),
                v => flat(v),
            }) {
                return Err(INDEXED_FIELDS);
            }
        }
        Some(_) => return Err(INDEXED_FIELDS),
    }
    let format = o
        .get("sourcetype")
        .and_then(Value::as_str)
        .and_then(|st| formats.get(st))
        .cloned();
    let bytes = match o.remove("event") {
        None | Some(Value::Null) => return Err(EVENT_REQUIRED),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(EVENT_BLANK),
        Some(Value::String(s)) => s.into_bytes(),
        Some(v) => v.to_string().into_bytes(),
    };
    Ok(Parsed { bytes, format })
}

async fn data_route(
    s: Arc<AppState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
    kind: Kind,
) -> Response {
    if let Err(h) = check_token(&s, &headers, &params) {
        return h.into_response();
    }
    // The raw endpoint always takes a channel; the event endpoint when
    // indexer acknowledgement is on.
    let channel = match channel_of(
        &headers,
        &params,
        s.config.acknowledgements || kind == Kind::Raw,
    ) {
        Ok(c) => c,
        Err(h) => return h.into_response(),
    };
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        return SERVER_BUSY.into_response();
    };
    let data = match read_body(&headers, body, s.config.max_body_bytes).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return NO_DATA.into_response();
    }
    let (events, refused) = match kind {
        Kind::Event => parse_events(&data, &s.config.sourcetype_formats),
        Kind::Raw => {
            let format = params
                .get("sourcetype")
                .and_then(|st| s.config.sourcetype_formats.get(st))
                .cloned();
            let events = data
                .split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .map(|l| Parsed {
                    bytes: l.to_vec(),
                    format: format.clone(),
                })
                .collect();
            (events, None)
        }
    };
    if events.is_empty() {
        return refused.unwrap_or(NO_DATA).into_response();
    }
    metrics::counter!("mlsoc_source_records_total", "source" => s.name.to_string())
        .increment(events.len() as u64);
    let (done_tx, done_rx) = oneshot::channel();
    let ack = Ack::new(move |status| {
        let _ = done_tx.send(status);
    });
    if s.config.acknowledgements {
        // An answer carrying an error has no ackId: the client sends the
        // whole request again, so the events before the invalid one are
        // passed on without one.
        let slot = match (&refused, channel) {
            (None, Some(channel)) => match reserve_ack_id(&s, &channel) {
                Some(id) => Some((channel, id)),
                None => return SERVER_BUSY.into_response(),
            },
            _ => None,
        };
        if let Err(h) = hand_over(&s, events, ack).await {
            if let Some((channel, id)) = &slot {
                release_ack_id(&s, channel, *id);
            }
            return h.into_response();
        }
        let Some((channel, id)) = slot else {
            return refused.unwrap_or(INVALID_DATA_FORMAT).into_response();
        };
        // Answer now; the ackId turns true once delivered.
        let s2 = s.clone();
        tokio::spawn(async move {
            if let Ok(AckStatus::Delivered) = done_rx.await {
                let mut store = s2.acks();
                if let Some(v) = store
                    .channels
                    .get_mut(&channel)
                    .and_then(|c| c.acks.get_mut(&id))
                {
                    *v = true;
                }
            }
        });
        return json_response(
            StatusCode::OK,
            json!({"text": "Success", "code": 0, "ackId": id}),
        );
    }
    if let Err(h) = hand_over(&s, events, ack).await {
        return h.into_response();
    }
    match tokio::time::timeout(s.config.ack_timeout, done_rx).await {
        Ok(Ok(AckStatus::Delivered)) => match refused {
            Some(h) => h.into_response(),
            None => json_response(StatusCode::OK, json!({"text": "Success", "code": 0})),
        },
        Ok(_) => {
            tracing::warn!(source = %s.name, "HEC request not delivered by the pipeline; answered 503 so the client resends");
            SERVER_BUSY.into_response()
        }
        Err(_) => {
            tracing::warn!(source = %s.name, timeout = ?s.config.ack_timeout,
                "HEC request not delivered in time; answered 503 so the client resends");
            SERVER_BUSY.into_response()
        }
    }
}

/// A new ackId on `channel`, unless `max_pending_acks` are kept already.
fn reserve_ack_id(s: &AppState, channel: &str) -> Option<u64> {
    let mut store = s.acks();
    if store.total >= s.config.max_pending_acks {
        return None;
    }
    store.total += 1;
    let ch = store.channels.entry(channel.to_owned()).or_default();
    let id = ch.next_id;
    ch.next_id += 1;
    ch.acks.insert(id, false);
    Some(id)
}

fn release_ack_id(s: &AppState, channel: &str, id: u64) {
    let mut store = s.acks();
    let removed = store
        .channels
        .get_mut(channel)
        .and_then(|c| c.acks.remove(&id))
        .is_some();
    if removed {
        store.total -= 1;
    }
}

/// Sends the request's records to the pipeline (one batch per format),
/// waiting at most `busy_timeout` for room.
async fn hand_over(s: &AppState, events: Vec<Parsed>, ack: Ack) -> Result<(), Hec> {
    let received = Timestamp::now();
    let mut by_format: Vec<(Option<String>, Vec<Vec<u8>>)> = Vec::new();
    for p in events {
        match by_format.iter_mut().find(|(f, _)| *f == p.format) {
            Some((_, v)) => v.push(p.bytes),
            None => by_format.push((p.format, vec![p.bytes])),
        }
    }
    if by_format.len() > s.out.max_capacity() {
        // More formats than the channel holds batches: one batch, and the
        // normalizer detects the formats.
        let all = by_format.drain(..).flat_map(|(_, r)| r).collect();
        by_format.push((None, all));
    }
    // Room for every batch at once, so a request is either wholly in the
    // pipeline or not at all.
    let permits = match tokio::time::timeout(
        s.config.busy_timeout,
        s.out.reserve_many(by_format.len()),
    )
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(SHUTTING_DOWN),
        Err(_) => {
            metrics::counter!("mlsoc_source_busy_total", "source" => s.name.to_string())
                .increment(1);
            return Err(SERVER_BUSY);
        }
    };
    for (permit, (format, records)) in permits.zip(by_format) {
        let source = Arc::new(Source {
            kind: "http",
            name: s.source_name.clone(),
            format,
        });
        let mut offset = 0u64;
        let records = records
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let r = RawRecord {
                    bytes: bytes::Bytes::from(bytes),
                    source: source.clone(),
                    offset,
                    line: i as u64 + 1,
                    received,
                    overflow_len: None,
                };
                offset += r.bytes.len() as u64 + 1;
                r
            })
            .collect();
        permit.send(SourceBatch {
            source_name: s.name.clone(),
            source,
            stream: s.streams.fetch_add(1, Ordering::Relaxed),
            records,
            ack: ack.clone(),
            end_of_stream: true,
        });
    }
    // This handler's own share: done once the batches are in the pipeline.
    ack.complete(AckStatus::Delivered);
    Ok(())
}

async fn ack_route(
    State(s): State<Arc<AppState>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(h) = check_token(&s, &headers, &params) {
        return h.into_response();
    }
    if !s.config.acknowledgements {
        return ACK_DISABLED.into_response();
    }
    let channel = match channel_of(&headers, &params, true) {
        Ok(c) => c.expect("required"),
        Err(h) => return h.into_response(),
    };
    let data = match read_body(&headers, body, s.config.max_body_bytes).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let ids: Option<Vec<u64>> = serde_json::from_slice::<Value>(&data).ok().and_then(|v| {
        v.get("acks")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect()
    });
    let Some(ids) = ids else {
        return INVALID_DATA_FORMAT.into_response();
    };
    let mut store = s.acks();
    let mut released = 0;
    let mut answer = serde_json::Map::new();
    if let Some(ch) = store.channels.get_mut(&channel) {
        for id in ids {
            let done = ch.acks.get(&id).copied().unwrap_or(false);
            if done {
                // Reported once, then released (Splunk keeps acked
                // requests only while "pending query").
                ch.acks.remove(&id);
                released += 1;
            }
            answer.insert(id.to_string(), Value::Bool(done));
        }
    } else {
        for id in ids {
            answer.insert(id.to_string(), Value::Bool(false));
        }
    }
    store.total -= released;
    json_response(StatusCode::OK, json!({ "acks": answer }))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let b = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&b),
            3 => out.extend_from_slice(&b[..2]),
            2 => out.push(b[0]),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_with_tokens_three_ways() {
        let c: HecSourceConfig = toml::from_str(
            r#"
            address = "127.0.0.1:0"
            valid_tokens = ["inline-token", { env = "HEC_SRC_TEST_TOKEN_UNSET" }, { file = "/nonexistent/tok" }]
            acknowledgements = true
            sourcetype_formats = { "mlflow:access" = "mlflow.access" }
            busy_timeout = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.valid_tokens.len(), 3);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert_eq!(c.sourcetype_formats["mlflow:access"], "mlflow.access");
        assert!(!format!("{c:?}").contains("inline-token"));
        let err = resolve_tokens(&c.valid_tokens).unwrap_err().to_string();
        assert!(
            err.contains("HEC_SRC_TEST_TOKEN_UNSET") && !err.contains("inline-token"),
            "{err}"
        );
        assert!(toml::from_str::<HecSourceConfig>("valid_tokens = []\nbogus = 1").is_err());
    }

    #[test]
    fn envelopes_parse_until_the_first_bad_one() {
        let formats = BTreeMap::from([("mlflow:access".to_owned(), "mlflow.access".to_owned())]);
        let body = br#"{"event":"line one","sourcetype":"mlflow:access"}{"event":{"a":1}}
            {"event":""}{"event":"never"}"#;
        let (events, refused) = parse_events(body, &formats);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].bytes, b"line one");
        assert_eq!(events[0].format.as_deref(), Some("mlflow.access"));
        assert_eq!(events[1].bytes, br#"{"a":1}"#);
        let h = refused.unwrap();
        assert_eq!((h.code, h.invalid_event), (13, Some(2)));
        for (body, code) in [
            (&br#"{"time":"x","event":1}"#[..], 6),
            (br#"{"fields":{"a":{"b":1}},"event":1}"#, 15),
            (br#"{"host":1,"event":1}"#, 6),
            (br#"{"event":null}"#, 12),
            (br#"[{"event":1}]"#, 6),
            (b"{\"event\":\"\xff", 6),
        ] {
            let (ok, refused) = parse_events(body, &formats);
            assert!(ok.is_empty());
            assert_eq!(
                refused.unwrap().code,
                code,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn base64_and_guid() {
        assert_eq!(decode_base64("eDp0b2s=").unwrap(), b"x:tok");
        assert!(decode_base64("!!").is_none());
        assert!(is_guid("11111111-2222-3333-4444-555555555555"));
        assert!(!is_guid("not-a-guid"));
    }
}
