//! A fake Elasticsearch for tests: the `_bulk` API and the few endpoints a
//! shipper touches, on 127.0.0.1, following the wire contract of
//! `shared/reference/wire-contracts.md` §4.1 (from the ES reference "Bulk
//! API", docs-bulk.html, and `elasticsearch-specification`
//! `specification/_global/bulk/`).
//!
//! ```no_run
//! # async fn t() {
//! use testkit::es::{FakeEs, ItemError, ItemRule, Scripted};
//! let es = FakeEs::start().await;
//! es.push_responses(2, Scripted::Status(503)); // the next two _bulk requests fail
//! es.fail_items(ItemRule::source_contains("BAD", ItemError::mapping("n", "long", "x")));
//! // ... point a client at es.url() ...
//! assert_eq!(es.docs("logs-mlsoc.alert-default").len(), 0);
//! # }
//! ```
//!
//! What it follows, endpoint by endpoint (each with the line of the
//! reference it implements; details in the code):
//!
//! - `POST|PUT /_bulk`, `POST|PUT /{target}/_bulk`: NDJSON pairs of action
//!   and source lines ("The final line of data must end with a newline
//!   character (\n)", else 400 `illegal_argument_exception` "The bulk request
//!   must be terminated by a newline [\n]"); actions `index`, `create`
//!   ("fails if a document with the same ID already exists": item 409
//!   `version_conflict_engine_exception`), `update` (`doc`, `doc_as_upsert`,
//!   `upsert`; 404 `document_missing_exception`), `delete` (no source line;
//!   `result: not_found` with 404 and no error); `_id` generated when
//!   missing (20 characters, like ES's); metadata `_index`, `_id`,
//!   `routing`, `pipeline`, `require_alias`, `if_seq_no` /
//!   `if_primary_term` ..., any other is a 400 "contains an unknown
//!   parameter". A malformed body fails whole and applies nothing. The
//!   response is HTTP 200 with `took`, `errors` and `items` in request order
//!   (`BulkResponse.ts`, `BulkResponseItemBase.ts`), even when items failed.
//! - Data streams: a target matching `logs-*-*`, `metrics-*-*`, `traces-*-*`
//!   (ES's built-in templates) or an installed template with `data_stream`
//!   takes `create` only ("To add documents to a data stream you must use
//!   the create operation": other ops get item 400
//!   `illegal_argument_exception`), needs `@timestamp`, and answers with the
//!   backing index `.ds-<stream>-<yyyy.MM.dd>-000001` in `_index`.
//! - Index names are checked per item (400 `invalid_index_name_exception`:
//!   lowercase, no `\ / * ? " < > | , # :` or space).
//! - `Content-Encoding: gzip` (and `deflate`) request bodies
//!   (`http.compression`: ES decompresses requests always).
//! - `http.max_content_length` (default 100mb; set with
//!   [`FakeEsBuilder::max_content_length`]): a larger body, counted after
//!   decompression ("If the body is compressed, the limit applies to the
//!   HTTP request body size before compression"), gets 413 with an empty
//!   body, as Netty's aggregator sends it. The fake reads the whole body
//!   first so the client always sees the 413.
//! - `Content-Type` must be JSON or NDJSON (`application/json`,
//!   `application/x-ndjson`, or the `application/vnd.elasticsearch+json` /
//!   `+x-ndjson; compatible-with=8|9` forms the official clients send),
//!   else 406; responses carry `X-Elastic-Product: Elasticsearch`, which the
//!   official clients check on every 2xx.
//! - Security: with users or API keys configured every request needs
//!   `Authorization: Basic ...` or `ApiKey base64(id:key)`; otherwise 401
//!   `security_exception` "missing authentication credentials for REST
//!   request [...]" / "unable to authenticate user [..] for REST request
//!   [..]", with `WWW-Authenticate`.
//! - `GET|HEAD /` (cluster info, version 9.1.0), `GET /_cluster/health`,
//!   `PUT|POST|GET|DELETE /_index_template/{name}` (`index_patterns`
//!   required), `GET /{index}/_doc/{id}`, `GET|POST /{index}/_count`,
//!   `POST /{index}/_refresh`, `POST /_refresh`. Anything else: 400 "no
//!   handler found for uri [..] and method [..]"; a known path with another
//!   method: 405 "Incorrect HTTP method for uri".
//!
//! Scripted trouble for tests: [`Scripted`] answers for the next `_bulk`
//! requests (a status with ES's body for it, a raw answer, a connection
//! closed without an answer, a stall), [`ItemRule`]s failing chosen items,
//! and [`FakeEs::refuse_connections`] / [`FakeEs::accept_connections`] for
//! outages (the port stops listening and open connections are closed).
//!
//! The server runs on its own thread and tokio runtime, so it works the
//! same from `#[tokio::test]` (any flavour) and from plain tests, and all
//! accessors are synchronous.

mod bulk;
mod server;
pub mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use wire::ItemError;

/// Default `http.max_content_length` of Elasticsearch: 100mb.
pub const DEFAULT_MAX_CONTENT_LENGTH: usize = 100 * 1024 * 1024;

/// A scripted answer to one `_bulk` request (other endpoints are never
/// scripted). Scripted requests count in [`FakeEs::bulk_requests`]; only
/// requests that the fake parses count their items.
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// Answer with this status and the body ES sends for it: 429
    /// `es_rejected_execution_exception`, 503 `cluster_block_exception`, 401
    /// / 403 `security_exception`, 413 and 502 / 504 without a JSON body,
    /// other statuses a generic `exception`.
    Status(u16),
    /// Answer with this status and body (`application/json`).
    Response { status: u16, body: String },
    /// Read the request, then close the connection without answering (a
    /// node dying mid-request, a proxy resetting).
    CloseConnection,
    /// Wait this long, then handle the request as usual. The request is
    /// applied even when the client gave up waiting, as ES applies a bulk
    /// whose client timed out: the client's retry then meets its own
    /// documents (409 on `create`).
    Stall(Duration),
    /// Handle the request at once (documents are stored), then hold the
    /// answer this long: the "stored, but the answer was lost" case when
    /// the client times out first. Its resend meets its own documents.
    LateAnswer(Duration),
}

/// What an [`ItemRule`] sees of an item.
#[derive(Debug)]
pub struct ItemView<'a> {
    /// `index`, `create`, `update` or `delete`.
    pub action: &'a str,
    /// The target index or data stream.
    pub index: &'a str,
    /// `_id` as sent (`None`: ES generates one).
    pub id: Option<&'a str>,
    /// The source line.
    pub source: Option<&'a str>,
    /// How many times this `_id` was received, this time included (1 on
    /// the first attempt; always 1 without an `_id`).
    pub attempt: u64,
    /// 1-based rank of this `_id` among the distinct ids received (the
    /// item's `ordinal` when it has no `_id`).
    pub first_seen: u64,
    /// 1-based count of items the fake received, this one included.
    pub ordinal: u64,
}

type Predicate = dyn Fn(&ItemView<'_>) -> bool + Send + Sync;

/// Fails the items a predicate picks with an [`ItemError`] (the first rule
/// that matches wins; the item is not applied).
pub struct ItemRule {
    pub(crate) matches: Box<Predicate>,
    pub(crate) error: ItemError,
}

impl ItemRule {
    pub fn new(
        matches: impl Fn(&ItemView<'_>) -> bool + Send + Sync + 'static,
        error: ItemError,
    ) -> ItemRule {
        ItemRule {
            matches: Box::new(matches),
            error,
        }
    }

    /// Items whose source line contains `marker`, on every attempt (a
    /// mapping error does not go away by retrying).
    pub fn source_contains(marker: impl Into<String>, error: ItemError) -> ItemRule {
        let marker = marker.into();
        ItemRule::new(
            move |i| i.source.is_some_and(|s| s.contains(&marker)),
            error,
        )
    }

    /// The first attempt of every `n`th distinct `_id` gets 429
    /// `es_rejected_execution_exception`; its retry succeeds.
    pub fn reject_first_attempt_every(n: u64) -> ItemRule {
        let n = n.max(1);
        ItemRule::new(
            move |i| i.attempt == 1 && i.first_seen % n == 0,
            ItemError::rejected(),
        )
    }
}

impl std::fmt::Debug for ItemRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemRule")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDoc {
    pub id: String,
    pub source: Value,
    pub version: u64,
    pub seq_no: u64,
}

/// One request the fake answered (or dropped).
#[derive(Debug, Clone)]
pub struct RequestLog {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body bytes as received (before decompression).
    pub body_bytes: usize,
    /// Status answered; 0 when the connection was closed instead.
    pub status: u16,
}

impl RequestLog {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Settings of a fake, before it starts.
#[derive(Debug, Clone)]
pub struct FakeEsBuilder {
    port: u16,
    users: Vec<(String, String)>,
    api_keys: Vec<(String, String)>,
    max_content_length: usize,
}

impl Default for FakeEsBuilder {
    fn default() -> Self {
        FakeEsBuilder {
            port: 0,
            users: Vec::new(),
            api_keys: Vec::new(),
            max_content_length: DEFAULT_MAX_CONTENT_LENGTH,
        }
    }
}

impl FakeEsBuilder {
    /// Port on 127.0.0.1 (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Accepts `Authorization: Basic base64(user:password)`; turns security
    /// on (requests without valid credentials get 401).
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Accepts `Authorization: ApiKey base64(id:api_key)`; turns security on.
    pub fn api_key(mut self, id: impl Into<String>, api_key: impl Into<String>) -> Self {
        self.api_keys.push((id.into(), api_key.into()));
        self
    }

    /// `http.max_content_length` in bytes.
    pub fn max_content_length(mut self, bytes: usize) -> Self {
        self.max_content_length = bytes;
        self
    }

    /// Starts the fake (a thread with its own runtime); panics if the port
    /// cannot be bound.
    pub fn start_blocking(self) -> FakeEs {
        server::start(self).expect("the fake Elasticsearch could not start")
    }

    /// [`FakeEsBuilder::start_blocking`], for async callers.
    pub async fn start(self) -> FakeEs {
        self.start_blocking()
    }

    pub(crate) fn into_config(self) -> (u16, server::Config) {
        (
            self.port,
            server::Config {
                users: self.users,
                api_keys: self.api_keys,
                max_content_length: self.max_content_length,
            },
        )
    }
}

/// A running fake. Dropping it stops the server.
pub struct FakeEs {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    control: server::Control,
}

impl FakeEs {
    /// A fake with default settings on a free port.
    pub async fn start() -> FakeEs {
        FakeEsBuilder::default().start().await
    }

    /// [`FakeEs::start`] for tests without a runtime.
    pub fn start_blocking() -> FakeEs {
        FakeEsBuilder::default().start_blocking()
    }

    pub fn builder() -> FakeEsBuilder {
        FakeEsBuilder::default()
    }

    pub(crate) fn new(
        shared: Arc<server::Shared>,
        addr: SocketAddr,
        control: server::Control,
    ) -> Self {
        FakeEs {
            shared,
            addr,
            control,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, bulk::State> {
        self.shared.lock()
    }

    // ---- scripting ----

    /// Answers the next `_bulk` request (after those already queued) with `r`.
    pub fn push_response(&self, r: Scripted) {
        self.state().script.push_back(r);
    }

    /// Answers the next `n` `_bulk` requests with `r`.
    pub fn push_responses(&self, n: usize, r: Scripted) {
        let mut s = self.state();
        for _ in 0..n {
            s.script.push_back(r.clone());
        }
    }

    /// Scripted answers not used yet.
    pub fn pending_responses(&self) -> usize {
        self.state().script.len()
    }

    /// Adds a rule failing chosen items.
    pub fn fail_items(&self, rule: ItemRule) {
        self.state().item_rules.push(rule);
    }

    pub fn clear_item_rules(&self) {
        self.state().item_rules.clear();
    }

    /// Drops the scripted answers not used yet.
    pub fn clear_script(&self) {
        self.state().script.clear();
    }

    /// Stores only these dotted fields of each document from now on (a
    /// test sending a million documents keeps what it checks).
    pub fn keep_only_fields(&self, fields: &[&str]) {
        self.state().keep_fields = Some(fields.iter().map(|f| f.to_string()).collect());
    }

    /// Stops listening (connections are refused) and closes the open
    /// connections: the node is down. Returns once the port is closed.
    pub fn refuse_connections(&self) {
        self.control.refuse();
    }

    /// Listens again on the same port. Returns once it listens.
    pub fn accept_connections(&self) {
        self.control
            .accept()
            .expect("the fake Elasticsearch could not listen on its port again");
    }

    // ---- inspection ----

    /// The documents of an index or data stream (by its name, not the
    /// backing index), in the order they were first written.
    pub fn docs(&self, index: &str) -> Vec<StoredDoc> {
        self.state()
            .indices
            .get(index)
            .map(|i| i.docs.iter().map(bulk::Doc::stored).collect())
            .unwrap_or_default()
    }

    /// One document's source.
    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        let s = self.state();
        let ix = s.indices.get(index)?;
        ix.by_id.get(id).map(|&i| ix.docs[i].source())
    }

    /// Names of the indices and data streams written to.
    pub fn indices(&self) -> Vec<String> {
        self.state().indices.keys().cloned().collect()
    }

    /// Whether `name` is a data stream.
    pub fn is_data_stream(&self, name: &str) -> bool {
        self.state()
            .indices
            .get(name)
            .is_some_and(|i| i.data_stream)
    }

    /// Documents stored across all indices.
    pub fn doc_count(&self) -> usize {
        self.state().indices.values().map(|i| i.docs.len()).sum()
    }

    /// `_bulk` requests received, scripted ones included.
    pub fn bulk_requests(&self) -> u64 {
        self.state().bulk_requests
    }

    /// Items parsed from `_bulk` bodies (re-sent items count again).
    pub fn items_received(&self) -> u64 {
        self.state().items_received
    }

    /// Every `_id` received, in order, repeats included.
    pub fn received_ids(&self) -> Vec<String> {
        self.state().received_ids.clone()
    }

    /// How many times `id` was received.
    pub fn receive_count(&self, id: &str) -> u64 {
        self.state().receive_counts.get(id).map_or(0, |&(n, _)| n)
    }

    /// An installed index template's body.
    pub fn template(&self, name: &str) -> Option<Value> {
        self.state().templates.get(name).cloned()
    }

    /// Requests answered so far, oldest first.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.state().requests.clone()
    }

    /// Waits until `cond` holds (checked every 10 ms) or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&FakeEs) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if cond(self) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl std::fmt::Debug for FakeEs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeEs").field("addr", &self.addr).finish()
    }
}
