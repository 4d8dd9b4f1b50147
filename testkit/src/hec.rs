//! A fake Splunk HTTP Event Collector on `127.0.0.1:0`.
//!
//! It answers as the Splunk documentation says HEC answers, with the exact
//! HTTP status, `code` and `text` of the error table in "Troubleshoot HTTP
//! Event Collector" (mirrored in `shared/reference/wire-contracts.md` 4.2),
//! keeps what it accepted for the test to look at, and can be told to fail:
//! answer 503 / 9 "Server is busy", stall, drop the connection, refuse
//! connections for a while, or report the collector unhealthy.
//!
//! ```no_run
//! # async fn f() {
//! use testkit::hec::{FakeHec, FakeHecOptions};
//! let hec = FakeHec::start(FakeHecOptions::new(["tok"])).await.unwrap();
//! let url = hec.url(); // http://127.0.0.1:PORT
//! // ... send events ...
//! assert_eq!(hec.events().len(), 3);
//! # }
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What the fake collector accepts.
#[derive(Debug, Clone)]
pub struct FakeHecOptions {
    /// Enabled tokens.
    pub tokens: Vec<String>,
    /// Tokens that exist but are disabled (403 / 1 "Token disabled").
    pub disabled_tokens: Vec<String>,
    /// Indexer acknowledgement on every token: data requests need a
    /// channel and get an `ackId`; `/services/collector/ack` answers.
    pub ack: bool,
    /// How long after its request an `ackId` becomes true; `None`: never
    /// (an indexer that lost the data).
    pub ack_delay: Option<Duration>,
    /// Indexes the tokens may write to; `None`: any.
    pub allowed_indexes: Option<Vec<String>>,
    /// Index of events that name none.
    pub default_index: String,
    /// Largest body accepted, in bytes, as sent (inputs.conf `[http]
    /// max_content_length`, 800 MB by default on current releases).
    pub max_content_length: usize,
    /// Index the events before the first invalid one of a request, as
    /// Splunk does (see [`FakeHec`] on `invalid-event-number`).
    pub index_before_invalid: bool,
    /// Accept `?token=` (inputs.conf `allowQueryStringAuth`, off by
    /// default: 400 / 16).
    pub query_string_auth: bool,
}

impl FakeHecOptions {
    pub fn new<S: Into<String>>(tokens: impl IntoIterator<Item = S>) -> FakeHecOptions {
        FakeHecOptions {
            tokens: tokens.into_iter().map(Into::into).collect(),
            disabled_tokens: Vec::new(),
            ack: false,
            ack_delay: Some(Duration::ZERO),
            allowed_indexes: None,
            default_index: "main".into(),
            max_content_length: 838_860_800,
            index_before_invalid: true,
            query_string_auth: false,
        }
    }

    pub fn disabled<S: Into<String>>(mut self, tokens: impl IntoIterator<Item = S>) -> Self {
        self.disabled_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// Indexer acknowledgement on, acks true after `delay` (`None`: never).
    pub fn with_ack(mut self, delay: Option<Duration>) -> Self {
        self.ack = true;
        self.ack_delay = delay;
        self
    }

    pub fn indexes<S: Into<String>>(mut self, indexes: impl IntoIterator<Item = S>) -> Self {
        self.allowed_indexes = Some(indexes.into_iter().map(Into::into).collect());
        self
    }

    pub fn max_content_length(mut self, bytes: usize) -> Self {
        self.max_content_length = bytes;
        self
    }
}

/// A scripted failure for the next data request (`/event`, `/raw`).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 503 `{"text":"Server is busy","code":9}`.
    Busy,
    /// 500 `{"text":"Internal server error","code":8}`.
    Internal,
    /// Wait this long, then handle the request normally (a client whose
    /// timeout is shorter sees a timeout, and the fake still indexes).
    Stall(Duration),
    /// Close the connection without answering (and without indexing).
    Drop,
    /// Any answer: status, code, text.
    Answer(u16, i64, String),
    /// 400 with `code` and `"invalid-event-number": at`, as if event `at`
    /// of the request were invalid (the events before it are indexed when
    /// `index_before_invalid`).
    RejectEvent { at: usize, code: i64, text: String },
}

/// Collector health reported by `GET /services/collector/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Healthy,
    /// 503 / 18.
    QueuesFull,
    /// 503 / 19.
    AckUnavailable,
    /// 503 / 20.
    QueuesFullAckUnavailable,
    /// 503 / 23: also answered to data requests.
    ShuttingDown,
}

/// Which endpoint took an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Event,
    Raw,
}

/// One event as the fake indexed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The `event` value (for `/raw`, the line as a string).
    pub event: Value,
    pub time: Option<f64>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub sourcetype: Option<String>,
    /// The index (the default index when none was named).
    pub index: String,
    /// Indexed `fields` (an empty object when none).
    pub fields: Value,
    pub channel: Option<String>,
    pub token: String,
    pub endpoint: Endpoint,
}

/// One HTTP request the fake answered (all endpoints).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLog {
    pub method: String,
    pub path: String,
    /// HTTP status answered (0: connection dropped).
    pub status: u16,
    /// HEC code answered, if any.
    pub code: Option<i64>,
    pub content_encoding: Option<String>,
    pub channel: Option<String>,
    /// Body bytes as sent (compressed when gzip).
    pub body_len: usize,
}

#[derive(Default)]
struct ChannelAcks {
    next_id: u64,
    /// ackId -> when it becomes true (`None`: never).
    acks: HashMap<u64, Option<Instant>>,
}

struct Inner {
    options: FakeHecOptions,
    events: Vec<ReceivedEvent>,
    counts: HashMap<String, usize>,
    requests: Vec<RequestLog>,
    failures: VecDeque<Failure>,
    channels: HashMap<String, ChannelAcks>,
    health: Health,
}

struct Control {
    refuse_until: Mutex<Option<Instant>>,
    epoch: AtomicU64,
    wake: Notify,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    control: Arc<Control>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake. Dropping it stops the server.
///
/// **`invalid-event-number`.** Splunk documents the field as the index of
/// the first invalid event of a request but not what became of the events
/// before it. Observed collectors index the events in order up to the bad
/// one and stop there (moby/moby#35862 reproduces it; a Splunk maintainer
/// describes the same in opentelemetry-collector-contrib#36113), so by
/// default the fake indexes the events before the invalid one and none
/// after; [`FakeHecOptions::index_before_invalid`] = false indexes nothing.
pub struct FakeHec {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHec {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHec {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(options: FakeHecOptions) -> std::io::Result<FakeHec> {
        FakeHec::start_on(options, 0).await
    }

    /// Starts the fake on `127.0.0.1:port`.
    pub async fn start_on(options: FakeHecOptions, port: u16) -> std::io::Result<FakeHec> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                options,
                events: Vec::new(),
                counts: HashMap::new(),
                requests: Vec::new(),
                failures: VecDeque::new(),
                channels: HashMap::new(),
                health: Health::Healthy,
            })),
            control: Arc::new(Control {
                refuse_until: Mutex::new(None),
                epoch: AtomicU64::new(0),
                wake: Notify::new(),
            }),
        };
        let app = Router::new()
            .route("/services/collector", post(event_endpoint))
            .route("/services/collector/event", post(event_endpoint))
            .route("/services/collector/event/1.0", post(event_endpoint))
            .route("/services/collector/raw", post(raw_endpoint))
            .route("/services/collector/raw/1.0", post(raw_endpoint))
            .route("/services/collector/health", get(health_endpoint))
            .route("/services/collector/health/1.0", get(health_endpoint))
            .route("/services/collector/ack", post(ack_endpoint))
            // Sizes are checked against `max_content_length` by the
            // handlers, which answer as splunkd does.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let listener = FakeListener {
            inner: Some(listener),
            addr,
            control: shared.control.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeHec { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL clients are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Events indexed so far, in order (duplicates included).
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.lock().events.clone()
    }

    /// How many times an event equal to `event` was indexed (2 or more:
    /// a duplicate).
    pub fn receive_count(&self, event: &Value) -> usize {
        let key = event_key(event);
        self.shared.lock().counts.get(&key).copied().unwrap_or(0)
    }

    /// Events indexed more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(Value, usize)> {
        let inner = self.shared.lock();
        let mut seen = HashSet::new();
        inner
            .events
            .iter()
            .filter_map(|e| {
                let key = event_key(&e.event);
                let n = inner.counts.get(&key).copied().unwrap_or(0);
                (n > 1 && seen.insert(key)).then(|| (e.event.clone(), n))
            })
            .collect()
    }

    /// Requests answered, every endpoint.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// The requests answered, in order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared.lock().requests.clone()
    }

    /// The next data requests meet `failures`, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = Failure>) {
        self.shared.lock().failures.extend(failures);
    }

    /// The next `n` data requests get 503 / 9 "Server is busy".
    pub fn busy_next(&self, n: usize) {
        self.fail_next(std::iter::repeat_n(Failure::Busy, n));
    }

    pub fn set_health(&self, health: Health) {
        self.shared.lock().health = health;
    }

    /// Changes the options (tokens, ack, indexes) from now on.
    pub fn update(&self, f: impl FnOnce(&mut FakeHecOptions)) {
        f(&mut self.shared.lock().options);
    }

    /// Closes the listening socket (connections are refused) and resets
    /// every open connection, for `period`; then listens again on the same
    /// port.
    pub fn refuse_connections(&self, period: Duration) {
        *self
            .shared
            .control
            .refuse_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + period);
        self.shared.control.epoch.fetch_add(1, Ordering::SeqCst);
        self.shared.control.wake.notify_one();
    }
}

fn event_key(event: &Value) -> String {
    // serde_json's map keeps keys sorted (no preserve_order feature), so
    // equal objects serialize equally.
    event.to_string()
}

// ---------------------------------------------------------------------
// Answers.

/// A HEC answer `{"text":..,"code":..}` with its HTTP status.
struct Hec {
    status: StatusCode,
    code: i64,
    text: Cow<'static, str>,
    invalid_event: Option<usize>,
}

const fn hec(status: u16, code: i64, text: &'static str) -> Hec {
    Hec {
        status: match StatusCode::from_u16(status) {
            Ok(s) => s,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
        code,
        text: Cow::Borrowed(text),
        invalid_event: None,
    }
}

// The table of "Troubleshoot HTTP Event Collector" > "Possible error
// codes" (status / code / text, verbatim).
const TOKEN_DISABLED: Hec = hec(403, 1, "Token disabled");
const TOKEN_REQUIRED: Hec = hec(401, 2, "Token is required");
const INVALID_AUTHORIZATION: Hec = hec(401, 3, "Invalid authorization");
const INVALID_TOKEN: Hec = hec(403, 4, "Invalid token");
const NO_DATA: Hec = hec(400, 5, "No data");
const INVALID_DATA_FORMAT: Hec = hec(400, 6, "Invalid data format");
const INCORRECT_INDEX: Hec = hec(400, 7, "Incorrect index");
const INTERNAL_ERROR: Hec = hec(500, 8, "Internal server error");
const SERVER_BUSY: Hec = hec(503, 9, "Server is busy");
const CHANNEL_MISSING: Hec = hec(400, 10, "Data channel is missing");
const INVALID_CHANNEL: Hec = hec(400, 11, "Invalid data channel");
const EVENT_REQUIRED: Hec = hec(400, 12, "Event field is required");
const EVENT_BLANK: Hec = hec(400, 13, "Event field cannot be blank");
const ACK_DISABLED: Hec = hec(400, 14, "ACK is disabled");
const INDEXED_FIELDS: Hec = hec(400, 15, "Error in handling indexed fields");
const QUERY_AUTH_DISABLED: Hec = hec(400, 16, "Query string authorization is not enabled");
const HEALTHY: Hec = hec(200, 17, "HEC is healthy");
const UNHEALTHY_QUEUES: Hec = hec(503, 18, "HEC is unhealthy, queues are full");
const UNHEALTHY_ACK: Hec = hec(503, 19, "HEC is unhealthy, ack service unavailable");
const UNHEALTHY_BOTH: Hec = hec(
    503,
    20,
    "HEC is unhealthy, queues are full, ack service unavailable",
);
const HEALTH_INVALID_TOKEN: Hec = hec(400, 21, "Invalid token");
const HEALTH_TOKEN_DISABLED: Hec = hec(400, 22, "Token disabled");
const SHUTTING_DOWN: Hec = hec(503, 23, "Server is shutting down");

impl Hec {
    fn at(mut self, event: usize) -> Hec {
        self.invalid_event = Some(event);
        self
    }

    fn body(&self) -> Value {
        let mut v = json!({ "text": self.text, "code": self.code });
        if let Some(n) = self.invalid_event {
            v["invalid-event-number"] = json!(n);
        }
        v
    }
}

fn respond(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// What a handler hands back: the answer and its log fields.
struct Answered {
    status: StatusCode,
    code: Option<i64>,
    body: Value,
}

impl From<Hec> for Answered {
    fn from(h: Hec) -> Answered {
        Answered {
            status: h.status,
            code: Some(h.code),
            body: h.body(),
        }
    }
}

// ---------------------------------------------------------------------
// Request checks, in the order Splunk applies them: token, channel, body.

type Params = HashMap<String, String>;

/// The token of a request, checked. "Authorization: Splunk <token>" is
/// the documented header ("Set up and use HTTP Event Collector in Splunk
/// Web"); Basic authentication with the token as password also works.
fn check_token(inner: &Inner, headers: &HeaderMap, params: &Params) -> Result<String, Hec> {
    let token = match headers.get(axum::http::header::AUTHORIZATION) {
        Some(v) => {
            let v = v.to_str().map_err(|_| INVALID_AUTHORIZATION)?.trim();
            let (scheme, rest) = v.split_once(' ').ok_or(INVALID_AUTHORIZATION)?;
            let rest = rest.trim();
            if scheme.eq_ignore_ascii_case("Splunk") {
                rest.to_owned()
            } else if scheme.eq_ignore_ascii_case("Basic") {
                let decoded = base64_decode(rest).ok_or(INVALID_AUTHORIZATION)?;
                let text = String::from_utf8(decoded).map_err(|_| INVALID_AUTHORIZATION)?;
                let (_, pass) = text.split_once(':').ok_or(INVALID_AUTHORIZATION)?;
                pass.to_owned()
            } else {
                return Err(INVALID_AUTHORIZATION);
            }
        }
        None => match params.get("token") {
            Some(t) if inner.options.query_string_auth => t.clone(),
            Some(_) => return Err(QUERY_AUTH_DISABLED),
            None => return Err(TOKEN_REQUIRED),
        },
    };
    if token.is_empty() {
        return Err(TOKEN_REQUIRED);
    }
    if inner.options.disabled_tokens.contains(&token) {
        return Err(TOKEN_DISABLED);
    }
    if !inner.options.tokens.contains(&token) {
        return Err(INVALID_TOKEN);
    }
    Ok(token)
}

/// The channel: `X-Splunk-Request-Channel` header or `?channel=` ("About
/// HTTP Event Collector Indexer Acknowledgment": with acknowledgement on,
/// "you must include a channel identifier ... as a header or query
/// parameter"). It must be a GUID.
fn check_channel(
    headers: &HeaderMap,
    params: &Params,
    required: bool,
) -> Result<Option<String>, Hec> {
    let channel = headers
        .get("x-splunk-request-channel")
        .map(|v| v.to_str().map(str::to_owned).map_err(|_| INVALID_CHANNEL))
        .transpose()?
        .or_else(|| params.get("channel").cloned());
    match channel {
        None if required => Err(CHANNEL_MISSING),
        None => Ok(None),
        Some(c) if is_guid(&c) => Ok(Some(c)),
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

/// The body as sent, decompressed when `Content-Encoding: gzip`.
fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, Hec> {
    let gz = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    if !gz {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&body[..])
        .read_to_end(&mut out)
        .map_err(|_| INVALID_DATA_FORMAT)?;
    Ok(out)
}

/// The next scripted failure, applied; `Ok(None)` to go on, `Ok(Some)`
/// for an event to reject after parsing.
async fn scripted(shared: &Shared) -> Result<Option<(usize, Hec)>, Answered> {
    let (failure, health) = {
        let mut inner = shared.lock();
        (inner.failures.pop_front(), inner.health)
    };
    if health == Health::ShuttingDown {
        return Err(SHUTTING_DOWN.into());
    }
    match failure {
        None => Ok(None),
        Some(Failure::RejectEvent { at, code, text }) => Ok(Some((
            at,
            Hec {
                status: StatusCode::BAD_REQUEST,
                code,
                text: Cow::Owned(text),
                invalid_event: None,
            },
        ))),
        Some(Failure::Busy) => Err(SERVER_BUSY.into()),
        Some(Failure::Internal) => Err(INTERNAL_ERROR.into()),
        Some(Failure::Answer(status, code, text)) => Err(Answered {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: Some(code),
            body: json!({"text": text, "code": code}),
        }),
        Some(Failure::Stall(d)) => {
            tokio::time::sleep(d).await;
            Ok(None)
        }
        Some(Failure::Drop) => {
            shared.lock().requests.push(RequestLog {
                method: "POST".into(),
                path: String::new(),
                status: 0,
                code: None,
                content_encoding: None,
                channel: None,
                body_len: 0,
            });
            // Unwinding out of the handler ends the connection's task:
            // the client sees the connection closed with no answer.
            // `resume_unwind` skips the panic hook, so nothing is printed.
            std::panic::resume_unwind(Box::new("fake HEC: connection dropped on purpose"));
        }
    }
}

fn log_request(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body_len: usize,
    answered: &Answered,
) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    shared.lock().requests.push(RequestLog {
        method: "POST".into(),
        path: path.into(),
        status: answered.status.as_u16(),
        code: answered.code,
        content_encoding: header("content-encoding"),
        channel: header("x-splunk-request-channel"),
        body_len,
    });
}

fn finish(
    shared: &Shared,
    path: &str,
    headers: &HeaderMap,
    body_len: usize,
    a: Answered,
) -> Response {
    log_request(shared, path, headers, body_len, &a);
    respond(a.status, a.body)
}

/// Registers an ackId for a successful data request.
fn success(inner: &mut Inner, channel: Option<&str>) -> Answered {
    let mut body = json!({"text": "Success", "code": 0});
    if inner.options.ack {
        let ready = inner.options.ack_delay.map(|d| Instant::now() + d);
        let ch = inner
            .channels
            .entry(channel.unwrap_or_default().to_owned())
            .or_default();
        let id = ch.next_id;
        ch.next_id += 1;
        ch.acks.insert(id, ready);
        body["ackId"] = json!(id);
    }
    Answered {
        status: StatusCode::OK,
        code: Some(0),
        body,
    }
}

// ---------------------------------------------------------------------
// Endpoints.

async fn event_endpoint(
    State(shared): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = "/services/collector/event";
    let answered = match handle_event(&shared, &params, &headers, &body).await {
        Ok(a) | Err(a) => a,
    };
    finish(&shared, path, &headers, body.len(), answered)
}

async fn handle_event(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Answered, Answered> {
    let (token, channel) = {
        let inner = shared.lock();
        let token = check_token(&inner, headers, params)?;
        let channel = check_channel(headers, params, inner.options.ack)?;
        if body.len() > inner.options.max_content_length {
            return Err(too_large(body.len(), inner.options.max_content_length));
        }
        (token, channel)
    };
    let reject = scripted(shared).await?;
    let data = decode_body(headers, body)?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(NO_DATA.into());
    }
    // "Format events for HTTP Event Collector": several events go in one
    // request as JSON objects one after another, not as an array.
    let mut accepted = Vec::new();
    let mut failure = None;
    let mut reject = reject;
    {
        let inner = shared.lock();
        let stream = serde_json::Deserializer::from_slice(&data).into_iter::<Value>();
        for (n, item) in stream.enumerate() {
            if let Some((at, _)) = &reject
                && *at == n
            {
                let (at, h) = reject.take().expect("matched above");
                failure = Some(h.at(at));
                break;
            }
            match item
                .map_err(|_| INVALID_DATA_FORMAT)
                .and_then(|v| check_envelope(&inner.options, v))
            {
                Ok(mut e) => {
                    e.token = token.clone();
                    e.channel = channel.clone();
                    accepted.push(e);
                }
                Err(h) => {
                    failure = Some(h.at(n));
                    break;
                }
            }
        }
    }
    let mut inner = shared.lock();
    if failure.is_some() && !inner.options.index_before_invalid {
        accepted.clear();
    }
    index_events(&mut inner, accepted);
    match failure {
        Some(h) => Err(h.into()),
        None => Ok(success(&mut inner, channel.as_deref())),
    }
}

fn too_large(len: usize, max: usize) -> Answered {
    // splunkd refuses a body over max_content_length with 413 before HEC
    // reads it; the HEC code table has no code for it.
    Answered {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: None,
        body: json!({"text": format!("Content-Length of {len} too large (maximum is {max})")}),
    }
}

fn index_events(inner: &mut Inner, events: Vec<ReceivedEvent>) {
    for e in events {
        *inner.counts.entry(event_key(&e.event)).or_default() += 1;
        inner.events.push(e);
    }
}

/// Checks one envelope ("Format events for HTTP Event Collector" > "Event
/// metadata": `time`, `host`, `source`, `sourcetype`, `index`, `fields`,
/// and the required `event`).
fn check_envelope(options: &FakeHecOptions, v: Value) -> Result<ReceivedEvent, Hec> {
    let Value::Object(mut obj) = v else {
        return Err(INVALID_DATA_FORMAT);
    };
    let text = |obj: &serde_json::Map<String, Value>, key: &str| -> Result<Option<String>, Hec> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(INVALID_DATA_FORMAT),
        }
    };
    let time = match obj.get("time") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => Some(s.trim().parse::<f64>().map_err(|_| INVALID_DATA_FORMAT)?),
        Some(_) => return Err(INVALID_DATA_FORMAT),
    };
    let host = text(&obj, "host")?;
    let source = text(&obj, "source")?;
    let sourcetype = text(&obj, "sourcetype")?;
    let index = text(&obj, "index")?;
    // "event" is required (code 12) and cannot be blank (code 13).
    let event = match obj.remove("event") {
        None | Some(Value::Null) => return Err(EVENT_REQUIRED),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(EVENT_BLANK),
        Some(e) => e,
    };
    // Indexed fields: "fields": {"key": "value" | ["v1", "v2"]}; nested
    // objects cannot be indexed (code 15).
    let fields = match obj.remove("fields") {
        None | Some(Value::Null) => json!({}),
        Some(Value::Object(f)) => {
            let flat =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            let ok = f.values().all(|v| match v {
                Value::Array(items) => items.iter().all(flat),
                v => flat(v),
            });
            if !ok {
                return Err(INDEXED_FIELDS);
            }
            Value::Object(f)
        }
        Some(_) => return Err(INDEXED_FIELDS),
    };
    let index = index.unwrap_or_else(|| options.default_index.clone());
    if let Some(allowed) = &options.allowed_indexes
        && !allowed.contains(&index)
    {
        return Err(INCORRECT_INDEX);
    }
    Ok(ReceivedEvent {
        event,
        time,
        host,
        source,
        sourcetype,
        index,
        fields,
        channel: None,
        token: String::new(),
        endpoint: Endpoint::Event,
    })
}

async fn raw_endpoint(
    State(shared): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answered = match handle_raw(&shared, &params, &headers, &body).await {
        Ok(a) | Err(a) => a,
    };
    finish(
        &shared,
        "/services/collector/raw",
        &headers,
        body.len(),
        answered,
    )
}

async fn handle_raw(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Answered, Answered> {
    let (token, channel) = {
        let inner = shared.lock();
        let token = check_token(&inner, headers, params)?;
        // The raw endpoint always needs a channel ("Format events for HTTP
        // Event Collector" > raw: "a channel identifier is required").
        let channel = check_channel(headers, params, true)?;
        if body.len() > inner.options.max_content_length {
            return Err(too_large(body.len(), inner.options.max_content_length));
        }
        (token, channel)
    };
    if let Some((at, h)) = scripted(shared).await? {
        return Err(h.at(at).into());
    }
    let data = decode_body(headers, body)?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(NO_DATA.into());
    }
    let mut inner = shared.lock();
    // Metadata comes from the query string.
    let index = params
        .get("index")
        .cloned()
        .unwrap_or_else(|| inner.options.default_index.clone());
    if let Some(allowed) = &inner.options.allowed_indexes
        && !allowed.contains(&index)
    {
        return Err(INCORRECT_INDEX.into());
    }
    let time = match params.get("time") {
        Some(t) => Some(
            t.parse::<f64>()
                .map_err(|_| Answered::from(INVALID_DATA_FORMAT))?,
        ),
        None => None,
    };
    let text = String::from_utf8_lossy(&data).into_owned();
    let events = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| ReceivedEvent {
            event: Value::String(line.to_owned()),
            time,
            host: params.get("host").cloned(),
            source: params.get("source").cloned(),
            sourcetype: params.get("sourcetype").cloned(),
            index: index.clone(),
            fields: json!({}),
            channel: channel.clone(),
            token: token.clone(),
            endpoint: Endpoint::Raw,
        })
        .collect();
    index_events(&mut inner, events);
    Ok(success(&mut inner, channel.as_deref()))
}

async fn health_endpoint(
    State(shared): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let answered: Answered = {
        let inner = shared.lock();
        // `?token=` asks about one token: 400 / 21 or 22 when it is not
        // usable.
        let token_problem = params.get("token").and_then(|t| {
            if inner.options.disabled_tokens.contains(t) {
                Some(HEALTH_TOKEN_DISABLED)
            } else if !inner.options.tokens.contains(t) {
                Some(HEALTH_INVALID_TOKEN)
            } else {
                None
            }
        });
        match token_problem {
            Some(h) => h.into(),
            None => match inner.health {
                Health::Healthy => HEALTHY.into(),
                Health::QueuesFull => UNHEALTHY_QUEUES.into(),
                Health::AckUnavailable => UNHEALTHY_ACK.into(),
                Health::QueuesFullAckUnavailable => UNHEALTHY_BOTH.into(),
                Health::ShuttingDown => SHUTTING_DOWN.into(),
            },
        }
    };
    let mut resp = finish(&shared, "/services/collector/health", &headers, 0, answered);
    if let Some(last) = shared.lock().requests.last_mut() {
        last.method = "GET".into();
    }
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

async fn ack_endpoint(
    State(shared): State<Shared>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answered = match handle_ack(&shared, &params, &headers, &body) {
        Ok(a) | Err(a) => a,
    };
    finish(
        &shared,
        "/services/collector/ack",
        &headers,
        body.len(),
        answered,
    )
}

fn handle_ack(
    shared: &Shared,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Answered, Answered> {
    let mut inner = shared.lock();
    check_token(&inner, headers, params)?;
    if !inner.options.ack {
        return Err(ACK_DISABLED.into());
    }
    let channel = check_channel(headers, params, true)?.unwrap_or_default();
    let data = decode_body(headers, body)?;
    // Body: {"acks":[0,1,2]} ("About HTTP Event Collector Indexer
    // Acknowledgment" > "Query for indexing status").
    let ids: Vec<u64> = serde_json::from_slice::<Value>(&data)
        .ok()
        .and_then(|v| {
            v.get("acks")?
                .as_array()?
                .iter()
                .map(Value::as_u64)
                .collect::<Option<Vec<u64>>>()
        })
        .ok_or_else(|| Answered::from(INVALID_DATA_FORMAT))?;
    let now = Instant::now();
    let ch = inner.channels.entry(channel).or_default();
    let mut acks = serde_json::Map::new();
    for id in ids {
        let ready = matches!(ch.acks.get(&id), Some(Some(t)) if *t <= now);
        if ready {
            // An ack reported true is released: inputs.conf counts acked
            // requests only while they are "pending query"
            // (max_number_of_acked_requests_pending_query).
            ch.acks.remove(&id);
        }
        acks.insert(id.to_string(), Value::Bool(ready));
    }
    Ok(Answered {
        status: StatusCode::OK,
        code: None,
        body: json!({ "acks": acks }),
    })
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        match chunk.len() {
            4 => out.extend_from_slice(&bytes),
            3 => out.extend_from_slice(&bytes[..2]),
            2 => out.push(bytes[0]),
            _ => return None,
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------
// Listener that can refuse connections and reset open ones.

struct FakeListener {
    inner: Option<TcpListener>,
    addr: SocketAddr,
    control: Arc<Control>,
}

impl axum::serve::Listener for FakeListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (KillableStream, SocketAddr) {
        loop {
            let until = *self
                .control
                .refuse_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(t) = until
                && t > Instant::now()
            {
                // Closing the listening socket makes connects fail with
                // "connection refused".
                self.inner = None;
                tokio::time::sleep_until(t.into()).await;
                continue;
            }
            if self.inner.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => self.inner = Some(l),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let listener = self.inner.as_ref().expect("bound above");
            tokio::select! {
                got = listener.accept() => match got {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let epoch = self.control.epoch.load(Ordering::SeqCst);
                        return (KillableStream { inner: stream, epoch, control: self.control.clone() }, peer);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                _ = self.control.wake.notified() => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// A connection that fails once [`FakeHec::refuse_connections`] was called
/// after it was accepted.
struct KillableStream {
    inner: TcpStream,
    epoch: u64,
    control: Arc<Control>,
}

impl KillableStream {
    fn killed(&self) -> bool {
        self.control.epoch.load(Ordering::SeqCst) != self.epoch
    }
}

fn reset() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fake HEC reset the connection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
