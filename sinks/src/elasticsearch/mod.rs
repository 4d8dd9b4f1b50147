//! Elasticsearch sink: documents go to a cluster through the `_bulk` API,
//! and none is lost on the way.
//!
//! - [`config`]: settings (`[sinks.NAME]` with `type = "elasticsearch"`).
//! - `encoder`: the NDJSON body, data stream / index names, `_id`s.
//! - `service`: transport (the official `elasticsearch` crate), endpoint
//!   round-robin and failover.
//! - `retry`: what each answer means, per request and per item.
//!
//! Delivery, request by request:
//!
//! | answer | what happens |
//! |---|---|
//! | no connection, timeout, broken connection | the same request again after `retry` backoff (another endpoint first when one cannot be reached) |
//! | 429, 5xx, 408 | the same request again after backoff |
//! | 401, 403 | logged as an error (no secrets), the same request again after backoff: credentials can be fixed while mlsoc waits |
//! | 413 | the request is split in halves, each sent on its own; a single document still too large is dead-lettered ("document larger than http.max_content_length") |
//! | other 4xx | every document of the request is dead-lettered with ES's reason |
//! | 2xx | each item: 2xx delivered; 409 `version_conflict_engine_exception` on `create` delivered (`outcome="duplicate"`: an earlier attempt stored it); 429 / 5xx sent again, alone in a narrower request, after backoff; other failures (400 `document_parsing_exception`, `mapper_parsing_exception`, `illegal_argument_exception`, 404 ...) dead-lettered with `"<error.type>: <error.reason>"` and the item's status, never retried |
//! | 2xx that is not a bulk answer, or with another number of items | the whole request again (logged) |
//!
//! Retries go on forever unless `retry.max_retries` is set; then the
//! documents still failing are dead-lettered with the last error. A batch's
//! acknowledgement completes (as delivered) only once each of its records
//! is stored in Elasticsearch or in the dead-letter file; when `ctx.stop`
//! is cancelled the sink returns at once and the acknowledgements of what
//! is not done drop (failed), so sources read those records again.
//!
//! Document contents and ES's error reasons (which quote field values) are
//! attacker-controlled: they go to the dead-letter file and to `debug`
//! logs, never to `info` or above.
//!
//! Why the `elasticsearch` crate: it does what the sink needs from a
//! transport (gzip request bodies, Basic and ApiKey auth, custom CA or no
//! verification, timeouts, custom headers) and hands back the raw answer
//! (`Response::bytes`), which the sink parses item by item itself. Its own
//! multi-node pool is not used: one single-node client per endpoint lets
//! the sink fail over on connection errors and name the endpoint that
//! failed.

pub mod config;
mod encoder;
mod retry;
mod service;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use schema::{Ack, AckStatus};
use tokio::time::Instant;

pub use config::{
    AuthConfig, BatchConfig, BulkAction, Compression, DataStreamConfig, ElasticsearchConfig,
    IdMode, Mode, TlsConfig,
};
use encoder::Encoder;
use retry::{ItemOutcome, RequestVerdict};
use service::Service;

use crate::buffer::BufferReceiver;
use crate::dlq::{DeadLetters, SinkDeadLetter};
use crate::record::{Batch, Record};
use crate::retry::Backoff;
use crate::{Sink, SinkContext, SinkError, SinkFuture};

/// Name of the index template `install_template` puts.
pub const TEMPLATE_NAME: &str = "mlsoc";

/// The ECS subset of the template (`template.json` beside this file).
const TEMPLATE_JSON: &str = include_str!("template.json");

/// The sink. Build it with [`ElasticsearchSink::new`].
pub struct ElasticsearchSink {
    config: ElasticsearchConfig,
    service: Arc<Service>,
    encoder: Encoder,
}

impl std::fmt::Debug for ElasticsearchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds only names of variables and files, never a
        // secret; the service prints endpoints only.
        f.debug_struct("ElasticsearchSink")
            .field("config", &self.config)
            .field("service", &self.service)
            .finish()
    }
}

impl ElasticsearchSink {
    /// Checks the settings, reads the secrets and sets up the clients. No
    /// request is made until [`Sink::run`].
    pub fn new(config: ElasticsearchConfig) -> Result<ElasticsearchSink, String> {
        config.validate()?;
        let creds = config.auth.resolve()?;
        let service = Service::new(&config, &creds)?;
        let encoder = Encoder::new(&config);
        Ok(ElasticsearchSink {
            config,
            service: Arc::new(service),
            encoder,
        })
    }

    /// The index template `install_template` puts, for this configuration:
    /// `template.json` with `index_patterns` set to `<type>-mlsoc.*` (data
    /// streams), or to the `index` setting with its placeholders as `*` and
    /// without `data_stream` (mode `index`).
    pub fn index_template(&self) -> serde_json::Value {
        template_for(&self.config)
    }
}

fn template_for(config: &ElasticsearchConfig) -> serde_json::Value {
    let mut t: serde_json::Value =
        serde_json::from_str(TEMPLATE_JSON).expect("template.json is valid JSON (tested)");
    match config.mode {
        Mode::DataStream => {
            t["index_patterns"] =
                serde_json::json!([format!("{}-mlsoc.*", config.data_stream.kind)]);
        }
        Mode::Index => {
            let pattern = config
                .index
                .as_deref()
                .unwrap_or("mlsoc")
                .replace("{dataset}", "*")
                .replace("{stream}", "*");
            t["index_patterns"] = serde_json::json!([pattern]);
            if let Some(o) = t.as_object_mut() {
                o.remove("data_stream");
            }
        }
    }
    t
}

impl Sink for ElasticsearchSink {
    fn run(self: Box<Self>, input: BufferReceiver, ctx: SinkContext) -> SinkFuture {
        Box::pin(run(*self, input, ctx))
    }
}

/// `ctx.stop` was cancelled.
#[derive(Debug)]
struct Stopped;

/// What every delivery task shares.
struct Inner {
    name: Arc<str>,
    service: Arc<Service>,
    encoder: Encoder,
    retry: Backoff,
    max_events: usize,
    max_bytes: usize,
    dead_letters: DeadLetters,
    stop: tokio_util::sync::CancellationToken,
}

/// Records waiting to fill a request.
#[derive(Default)]
struct Pending {
    batch: Option<Batch>,
    events: usize,
    bytes: usize,
    deadline: Option<Instant>,
}

impl Pending {
    fn push(&mut self, b: Batch, timeout: Duration) {
        self.events += b.len();
        self.bytes += b.size();
        match &mut self.batch {
            Some(acc) => acc.append(b),
            None => {
                self.deadline = Some(Instant::now() + timeout);
                self.batch = Some(b);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.batch.is_none()
    }

    fn is_full(&self, inner: &Inner) -> bool {
        self.events >= inner.max_events || self.bytes >= inner.max_bytes
    }

    fn take(&mut self) -> Option<Batch> {
        self.events = 0;
        self.bytes = 0;
        self.deadline = None;
        self.batch.take()
    }
}

async fn run(
    sink: ElasticsearchSink,
    mut input: BufferReceiver,
    ctx: SinkContext,
) -> Result<(), SinkError> {
    let config = sink.config;
    let inner = Arc::new(Inner {
        name: ctx.name.clone(),
        service: sink.service,
        encoder: sink.encoder,
        retry: config.retry.clone(),
        max_events: config.batch.max_events,
        max_bytes: usize::try_from(config.batch.max_bytes.as_u64()).unwrap_or(usize::MAX),
        dead_letters: ctx.dead_letters.clone(),
        stop: ctx.stop.clone(),
    });
    if config.install_template {
        let template = template_for(&config);
        if install_template(&inner, &template).await.is_err() {
            return Ok(());
        }
    }
    let mut inflight = FuturesUnordered::new();
    let mut pending = Pending::default();
    let mut input_open = true;
    loop {
        let due = pending.deadline.is_some_and(|d| Instant::now() >= d);
        let ready = !pending.is_empty() && (pending.is_full(&inner) || !input_open || due);
        if ready && inflight.len() < config.concurrency {
            let batch = pending.take().expect("not empty");
            inflight.push(deliver(inner.clone(), batch));
            continue;
        }
        if !input_open && pending.is_empty() && inflight.is_empty() {
            return Ok(());
        }
        let take_input = input_open && !pending.is_full(&inner);
        let deadline = pending.deadline.filter(|_| !ready);
        tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => {
                // Dropping `inflight` and `pending` drops their acks: the
                // sources see them failed and read the records again.
                tracing::warn!(sink = %inner.name, in_flight = inflight.len(), "stopping now; undelivered batches stay unacknowledged");
                return Ok(());
            }
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                if done.is_err() {
                    return Ok(());
                }
            }
            b = input.recv(), if take_input => match b {
                Some(b) => pending.push(b, config.batch.timeout),
                None => input_open = false,
            },
            _ = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Puts the index template; transient failures are retried (stop-aware),
/// a refusal (no privilege, bad template) is logged and shipping goes on.
async fn install_template(inner: &Inner, template: &serde_json::Value) -> Result<(), Stopped> {
    let mut attempt = 0u32;
    loop {
        let res = tokio::select! {
            r = inner.service.put_index_template(TEMPLATE_NAME, template) => r,
            _ = inner.stop.cancelled() => return Err(Stopped),
        };
        let why = match res {
            Ok(a) if (200..300).contains(&a.status) => {
                tracing::info!(sink = %inner.name, template = TEMPLATE_NAME, "index template installed");
                return Ok(());
            }
            Ok(a) if (400..500).contains(&a.status) && a.status != 408 && a.status != 429 => {
                let reason = retry::request_error(a.status, &a.body);
                tracing::error!(sink = %inner.name, template = TEMPLATE_NAME, status = a.status, error = retry::reason_kind(&reason), "Elasticsearch refused the index template; shipping without it");
                tracing::debug!(sink = %inner.name, reason = %reason, "index template refusal");
                return Ok(());
            }
            Ok(a) => format!("HTTP {}", a.status),
            Err(e) => e.to_string(),
        };
        attempt += 1;
        if !inner.retry.allows(attempt) {
            tracing::error!(sink = %inner.name, error = %why, "could not install the index template; shipping without it");
            return Ok(());
        }
        let delay = inner.retry.delay(attempt);
        tracing::warn!(sink = %inner.name, error = %why, retry_in = ?delay, "installing the index template failed; retrying");
        sleep_or_stop(inner, delay).await?;
    }
}

async fn sleep_or_stop(inner: &Inner, d: Duration) -> Result<(), Stopped> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = inner.stop.cancelled() => Err(Stopped),
    }
}

/// An encoded item: which record, and its two NDJSON lines.
struct Item {
    rec: usize,
    enc: encoder::Encoded,
}

/// Delivers a batch (in as many requests as `batch` limits need), then
/// completes its acks.
async fn deliver(inner: Arc<Inner>, batch: Batch) -> Result<(), Stopped> {
    let Batch { records, acks } = batch;
    let mut items = Vec::with_capacity(records.len());
    let mut letters = Vec::new();
    let mut cache = encoder::Cache::default();
    for (i, r) in records.iter().enumerate() {
        match inner.encoder.encode(r, &mut cache) {
            Ok(enc) => items.push(Item { rec: i, enc }),
            Err(reason) => letters.push(SinkDeadLetter::new(&inner.name, r, reason, None)),
        }
    }
    dead_letter(&inner, letters).await?;
    // Requests of at most max_events items and max_bytes bytes (a single
    // larger item goes alone).
    let mut chunk: Vec<Item> = Vec::new();
    let mut chunk_bytes = 0;
    for item in items {
        if !chunk.is_empty()
            && (chunk.len() >= inner.max_events || chunk_bytes + item.enc.len() > inner.max_bytes)
        {
            send(&inner, &records, std::mem::take(&mut chunk)).await?;
            chunk_bytes = 0;
        }
        chunk_bytes += item.enc.len();
        chunk.push(item);
    }
    if !chunk.is_empty() {
        send(&inner, &records, chunk).await?;
    }
    Ack::complete_all(acks, AckStatus::Delivered);
    Ok(())
}

/// Items sent together, and how many times they were retried.
struct Segment {
    items: Vec<Item>,
    attempt: u32,
}

/// Sends one request's items until each is delivered or dead-lettered.
async fn send(inner: &Inner, records: &[Record], items: Vec<Item>) -> Result<(), Stopped> {
    let name = inner.name.to_string();
    let action = inner.encoder.action();
    // Halves of 413-split requests wait here (the first half on top).
    let mut work = vec![Segment { items, attempt: 0 }];
    'segments: while let Some(mut seg) = work.pop() {
        loop {
            let body = encoder::body(seg.items.iter().map(|i| &i.enc));
            let body_len = body.len();
            let res = tokio::select! {
                r = inner.service.bulk(body) => r,
                _ = inner.stop.cancelled() => return Err(Stopped),
            };
            let answer = match res {
                Ok(a) => a,
                Err(e) => {
                    metrics::counter!("mlsoc_sink_requests_total", "sink" => name.clone(), "status" => "error").increment(1);
                    let why = e.to_string();
                    if !again(inner, records, &mut seg, e.label(), 1, &why, None).await? {
                        continue 'segments;
                    }
                    continue;
                }
            };
            let status = answer.status;
            metrics::counter!("mlsoc_sink_requests_total", "sink" => name.clone(), "status" => status.to_string()).increment(1);
            match retry::request_verdict(status) {
                RequestVerdict::Items => {
                    let outcomes = match retry::item_outcomes(&answer.body, seg.items.len(), action)
                    {
                        Ok(o) => o,
                        Err(why) => {
                            tracing::error!(sink = %name, status, error = %why, "unusable _bulk answer; sending the whole request again");
                            if !again(
                                inner,
                                records,
                                &mut seg,
                                "malformed_response",
                                1,
                                &why,
                                Some(status),
                            )
                            .await?
                            {
                                continue 'segments;
                            }
                            continue;
                        }
                    };
                    let mut retry_items = Vec::new();
                    let mut letters = Vec::new();
                    let (mut delivered, mut duplicates) = (0u64, 0u64);
                    let mut last_retry: Option<(u16, String)> = None;
                    for (item, outcome) in std::mem::take(&mut seg.items).into_iter().zip(outcomes)
                    {
                        match outcome {
                            ItemOutcome::Delivered => delivered += 1,
                            ItemOutcome::Duplicate => duplicates += 1,
                            ItemOutcome::Retry { status, reason } => {
                                retry_items.push(item);
                                last_retry = Some((status, reason));
                            }
                            ItemOutcome::Reject { status, reason } => {
                                let r = &records[item.rec];
                                tracing::warn!(sink = %name, id = %r.id, status, error = retry::reason_kind(&reason), "Elasticsearch refused a document; dead-lettered");
                                tracing::debug!(sink = %name, id = %r.id, reason = %reason, "refusal reason");
                                letters.push(SinkDeadLetter::new(&name, r, reason, Some(status)));
                            }
                        }
                    }
                    metrics::counter!("mlsoc_sink_records_total", "sink" => name.clone(), "outcome" => "delivered").increment(delivered);
                    if duplicates > 0 {
                        tracing::debug!(sink = %name, duplicates, "documents already stored by an earlier attempt (409 on create)");
                        metrics::counter!("mlsoc_sink_records_total", "sink" => name.clone(), "outcome" => "duplicate").increment(duplicates);
                    }
                    dead_letter(inner, letters).await?;
                    let Some((status, reason)) = last_retry else {
                        continue 'segments;
                    };
                    seg.items = retry_items;
                    let label = if status == 429 {
                        "item_429"
                    } else {
                        "item_5xx"
                    };
                    let n = seg.items.len() as u64;
                    if !again(inner, records, &mut seg, label, n, &reason, Some(status)).await? {
                        continue 'segments;
                    }
                }
                RequestVerdict::Retry => {
                    let why = retry::request_error(status, &answer.body);
                    if !again(
                        inner,
                        records,
                        &mut seg,
                        &format!("http_{status}"),
                        1,
                        &why,
                        Some(status),
                    )
                    .await?
                    {
                        continue 'segments;
                    }
                }
                RequestVerdict::RetryAuth => {
                    let why = retry::request_error(status, &answer.body);
                    tracing::error!(sink = %name, status, error = retry::reason_kind(&why), "Elasticsearch refused mlsoc's credentials or privileges; retrying until they are fixed (check auth and the user's index privileges: create_doc on the target)");
                    if !again(
                        inner,
                        records,
                        &mut seg,
                        &format!("http_{status}"),
                        1,
                        &why,
                        Some(status),
                    )
                    .await?
                    {
                        continue 'segments;
                    }
                }
                RequestVerdict::Split => {
                    if seg.items.len() == 1 {
                        let r = &records[seg.items[0].rec];
                        tracing::warn!(sink = %name, id = %r.id, bytes = seg.items[0].enc.len(), "document larger than http.max_content_length; dead-lettered");
                        let l = SinkDeadLetter::new(
                            &name,
                            r,
                            "document larger than http.max_content_length".into(),
                            Some(413),
                        );
                        dead_letter(inner, vec![l]).await?;
                        continue 'segments;
                    }
                    tracing::info!(sink = %name, items = seg.items.len(), bytes = body_len, "request larger than http.max_content_length (413); splitting it in halves");
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => "http_413").increment(1);
                    let right = seg.items.split_off(seg.items.len() / 2);
                    work.push(Segment {
                        items: right,
                        attempt: 0,
                    });
                    work.push(Segment {
                        items: std::mem::take(&mut seg.items),
                        attempt: 0,
                    });
                    continue 'segments;
                }
                RequestVerdict::Reject => {
                    let why = retry::request_error(status, &answer.body);
                    tracing::error!(sink = %name, status, items = seg.items.len(), error = retry::reason_kind(&why), "Elasticsearch refused the whole request; its documents are dead-lettered");
                    tracing::debug!(sink = %name, reason = %why, "request refusal");
                    let letters = seg
                        .items
                        .iter()
                        .map(|i| {
                            SinkDeadLetter::new(&name, &records[i.rec], why.clone(), Some(status))
                        })
                        .collect();
                    dead_letter(inner, letters).await?;
                    continue 'segments;
                }
            }
        }
    }
    Ok(())
}

/// Waits before sending `seg` again, or dead-letters its items when
/// `retry.max_retries` is used up (then returns `false`).
async fn again(
    inner: &Inner,
    records: &[Record],
    seg: &mut Segment,
    reason: &str,
    count: u64,
    why: &str,
    status: Option<u16>,
) -> Result<bool, Stopped> {
    seg.attempt += 1;
    if !inner.retry.allows(seg.attempt) {
        let retries = seg.attempt - 1;
        tracing::error!(sink = %inner.name, items = seg.items.len(), retries, reason, "retries used up (retry.max_retries); dead-lettering the documents with the last error");
        let letters = seg
            .items
            .iter()
            .map(|i| {
                SinkDeadLetter::new(
                    &inner.name,
                    &records[i.rec],
                    format!("gave up after {retries} retries: {why}"),
                    status,
                )
            })
            .collect();
        dead_letter(inner, letters).await?;
        seg.items.clear();
        return Ok(false);
    }
    metrics::counter!("mlsoc_sink_retries_total", "sink" => inner.name.to_string(), "reason" => reason.to_owned()).increment(count);
    let delay = inner.retry.delay(seg.attempt);
    // Transport errors name the endpoint and the OS error; ES reasons may
    // quote documents and stay at debug.
    if status.is_none() {
        tracing::warn!(sink = %inner.name, reason, error = %why, items = seg.items.len(), attempt = seg.attempt, retry_in = ?delay, "_bulk request failed; retrying");
    } else {
        tracing::warn!(sink = %inner.name, reason, error = retry::reason_kind(why), items = seg.items.len(), attempt = seg.attempt, retry_in = ?delay, "_bulk request failed; retrying");
        tracing::debug!(sink = %inner.name, reason = %why, "retry reason");
    }
    sleep_or_stop(inner, delay).await?;
    Ok(true)
}

/// Writes dead letters, retrying (stop-aware) until the file has them: a
/// batch is acknowledged only once its refused records are stored there.
async fn dead_letter(inner: &Inner, letters: Vec<SinkDeadLetter>) -> Result<(), Stopped> {
    if letters.is_empty() {
        return Ok(());
    }
    let n = letters.len() as u64;
    let letters = Arc::new(letters);
    let mut attempt = 0u32;
    loop {
        let dl = inner.dead_letters.clone();
        let l = letters.clone();
        let res = tokio::task::spawn_blocking(move || dl.write_blocking(&l)).await;
        match res {
            Ok(Ok(())) => break,
            Ok(Err(e)) => {
                attempt += 1;
                let delay = inner.retry.delay(attempt);
                tracing::error!(sink = %inner.name, path = %inner.dead_letters.path().display(), error = %e, retry_in = ?delay, "cannot write dead letters; retrying");
                metrics::counter!("mlsoc_sink_retries_total", "sink" => inner.name.to_string(), "reason" => "dead_letter_io").increment(1);
                sleep_or_stop(inner, delay).await?;
            }
            Err(e) => {
                attempt += 1;
                tracing::error!(sink = %inner.name, error = %e, "dead-letter writer thread failed; retrying");
                sleep_or_stop(inner, inner.retry.delay(attempt)).await?;
            }
        }
    }
    metrics::counter!("mlsoc_sink_records_total", "sink" => inner.name.to_string(), "outcome" => "dead_lettered").increment(n);
    Ok(())
}
