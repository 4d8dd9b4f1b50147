//! Splunk HTTP Event Collector sink (`type = "splunk_hec"`).
//!
//! - [`config`]: settings and the token (from env or file; never printed);
//! - [`encoder`]: one HEC envelope per record, concatenated;
//! - [`service`]: one HTTP request and what the collector's answer means;
//! - this module: batching, retries, dead letters, indexer acknowledgement
//!   and completing the batches' [`schema::Ack`]s.
//!
//! What each answer does (codes from "Troubleshoot HTTP Event Collector",
//! `shared/reference/wire-contracts.md` 4.2):
//!
//! | answer | action |
//! |---|---|
//! | 200 / 0 `Success` | delivered; with `acknowledgements.enabled`, only once `/services/collector/ack` reports its `ackId` true |
//! | connection error, timeout, 5xx, 429, 503 / 9, 18, 19, 20, 23 | retry the request with backoff |
//! | 401, 403 / 1-4 (token) | log an error (without the token) and retry with backoff: an operator can fix the token |
//! | 404, or a 2xx/3xx that is not a HEC answer | log an error and retry with backoff (wrong `endpoint`, a proxy page) |
//! | 400 / 6, 12, 13, 15 with `invalid-event-number` i | dead-letter event i with the reason, send the events after it again |
//! | 400 / 5, 7, 10, 11, 14, 16, other 4xx | dead-letter the request's records with `HEC code N: text` (7: also an error log, it is a configuration mistake) |
//! | 413 | split the request in two (a single event: dead-letter it) |
//!
//! **Events before `invalid-event-number`.** Splunk's documentation names
//! `invalid-event-number` ("the index of the first invalid event") but does
//! not say what happened to the events before it. What users observe and
//! Splunk's own engineers describe is that the collector indexes the events
//! in order and stops at the first bad one: the events before it are
//! indexed, the bad one and those after are not (moby/moby#35862 shows it
//! with a reproducible request; opentelemetry-collector-contrib#36113, by a
//! Splunk maintainer: "we can try resending by dropping the first 9
//! events"; vectordotdev/vector#11434 reports the duplicates of resending
//! them). So without indexer acknowledgement the events before i count as
//! delivered, exactly like events answered `Success`. With indexer
//! acknowledgement they are sent again: an error answer carries no
//! `ackId`, so nothing confirms they were stored, and at-least-once prefers
//! a duplicate to a loss. The same holds for a retryable answer that
//! carries `invalid-event-number` (a 503 that stopped mid-request).
//!
//! Example (`inputs` and `buffer` belong to the pipeline's wrapper, the
//! rest is [`SplunkHecConfig`]):
//!
//! ```toml
//! [sinks.splunk]
//! type = "splunk_hec"
//! endpoint = "https://splunk.example:8088"
//! token_env = "MLSOC_HEC_TOKEN"          # or token_file = "/run/secrets/hec", or token = "..."
//! index = "mlsoc"
//! # sourcetype = "mlsoc:{dataset}"       # default; alerts: mlsoc:alert
//! fields = ["event.dataset", "mlops.component"]
//! compression = "gzip"
//! request_timeout = "60s"
//! batch = { max_events = 1000, max_bytes = 1000000, timeout = "1s" }
//! retry = { initial = "100ms", max = "30s" }   # max_retries unset: retry forever
//! acknowledgements = { enabled = true, poll_interval = "10s", max_polls = 30, max_pending = 1000 }
//! tls = { ca_file = "/etc/mlsoc/splunk-ca.pem", verify = true }
//! ```
//!
//! A batch's acks complete once every one of its records is delivered or
//! dead-lettered. `ctx.stop` returns at once, leaving them incomplete (the
//! sources will read those records again).

pub mod config;
pub mod encoder;
pub mod service;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use schema::{Ack, AckStatus};
use tokio::time::Instant;

pub use config::{AckConfig, BatchConfig, Compression, Secret, SplunkHecConfig, TlsConfig};
pub use encoder::Encoder;
use service::{Answer, HecService, code};

use crate::buffer::BufferReceiver;
use crate::dlq::SinkDeadLetter;
use crate::record::Record;
use crate::{Sink, SinkContext, SinkFuture};

/// The sink. Build with [`SplunkHecSink::new`], run through [`Sink`].
pub struct SplunkHecSink {
    config: SplunkHecConfig,
    service: HecService,
    encoder: Encoder,
}

impl std::fmt::Debug for SplunkHecSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplunkHecSink")
            .field("endpoint", &self.config.endpoint)
            .field("channel", &self.service.channel())
            .finish_non_exhaustive()
    }
}

impl SplunkHecSink {
    /// Checks the configuration, reads the token and builds the HTTP
    /// client. Errors never contain the token.
    pub fn new(config: SplunkHecConfig) -> Result<SplunkHecSink, String> {
        let token = config.resolve_token()?;
        let b = &config.batch;
        if b.max_events == 0 || b.max_bytes == 0 {
            return Err("batch.max_events and batch.max_bytes must be at least 1".into());
        }
        let a = &config.acknowledgements;
        if a.enabled && (a.max_polls == 0 || a.max_pending == 0 || a.poll_interval.is_zero()) {
            return Err(
                "acknowledgements: poll_interval, max_polls and max_pending must be above 0".into(),
            );
        }
        if config.request_timeout.is_zero() {
            return Err("request_timeout must be above 0".into());
        }
        let service = HecService::new(&config, &token)?;
        let encoder = Encoder::new(&config);
        Ok(SplunkHecSink {
            config,
            service,
            encoder,
        })
    }

    /// The `X-Splunk-Request-Channel` this instance sends.
    pub fn channel(&self) -> &str {
        self.service.channel()
    }
}

impl Sink for SplunkHecSink {
    fn run(self: Box<Self>, input: BufferReceiver, ctx: SinkContext) -> SinkFuture {
        Box::pin(async move {
            let mut driver = Driver {
                config: self.config,
                service: self.service,
                encoder: self.encoder,
                ctx,
                queue: VecDeque::new(),
                pending: BTreeMap::new(),
                warned_unrequested_ack: false,
            };
            match driver.run(input).await {
                Ok(()) | Err(Stopped) => Ok(()),
            }
        })
    }
}

/// `ctx.stop` was cancelled: return without completing anything.
struct Stopped;

/// The acks of the source batches gathered into one group, completed when
/// every request (chunk) made from them is settled.
struct Group {
    acks: Mutex<Option<Vec<Ack>>>,
    open: AtomicUsize,
}

impl Group {
    fn new(acks: Vec<Ack>, chunks: usize) -> Arc<Group> {
        let g = Arc::new(Group {
            acks: Mutex::new(Some(acks)),
            open: AtomicUsize::new(chunks),
        });
        if chunks == 0 {
            g.complete();
        }
        g
    }

    /// One more chunk to wait for (a chunk was split).
    fn add(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// A chunk's records are all delivered or dead-lettered.
    fn settle_one(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.complete();
        }
    }

    fn complete(&self) {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(acks) = acks {
            Ack::complete_all(acks, AckStatus::Delivered);
        }
    }
}

/// A record and its envelope.
struct Item {
    record: Record,
    envelope: Bytes,
}

/// The records of one request.
struct Chunk {
    items: Vec<Item>,
    group: Arc<Group>,
    /// Failed attempts so far (for backoff and `retry.max_retries`).
    attempt: u32,
}

impl Chunk {
    fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.items.iter().map(|i| i.envelope.len()).sum());
        for i in &self.items {
            body.extend_from_slice(&i.envelope);
        }
        body
    }

    /// Splits off the items from `at` into a new chunk of the same group.
    fn split_off(&mut self, at: usize) -> Chunk {
        self.group.add();
        Chunk {
            items: self.items.split_off(at),
            group: self.group.clone(),
            attempt: self.attempt,
        }
    }
}

/// A request answered with an `ackId`, waiting to be reported indexed.
struct Pending {
    chunk: Chunk,
    polls: u32,
}

struct Driver {
    config: SplunkHecConfig,
    service: HecService,
    encoder: Encoder,
    ctx: SinkContext,
    /// Requests to send, in order.
    queue: VecDeque<Chunk>,
    /// By `ackId`.
    pending: BTreeMap<u64, Pending>,
    warned_unrequested_ack: bool,
}

/// What to do with a chunk after an answer.
enum Verdict {
    Delivered,
    /// Waiting for `ackId`.
    AwaitAck(u64),
    Retry {
        reason: &'static str,
        /// Events before this index were indexed (without acks).
        indexed: usize,
    },
    /// Event `at` is refused; events before it indexed (without acks).
    RefuseOne {
        at: usize,
        indexed: usize,
    },
    /// Every record from `indexed` on is refused.
    RefuseAll {
        indexed: usize,
    },
    /// Too large: send it in two halves.
    Split,
}

impl Driver {
    fn name(&self) -> String {
        self.ctx.name.to_string()
    }

    async fn run(&mut self, mut input: BufferReceiver) -> Result<(), Stopped> {
        let acks_on = self.config.acknowledgements.enabled;
        let poll_interval = self.config.acknowledgements.poll_interval;
        let mut next_poll = Instant::now() + poll_interval;
        let mut input_open = true;
        loop {
            if acks_on && !self.pending.is_empty() && Instant::now() >= next_poll {
                self.poll_acks().await?;
                next_poll = Instant::now() + poll_interval;
                continue;
            }
            let room = self.pending.len() < self.config.acknowledgements.max_pending;
            if room && let Some(chunk) = self.queue.pop_front() {
                let had_pending = !self.pending.is_empty();
                self.deliver(chunk).await?;
                if !had_pending && !self.pending.is_empty() {
                    // The first ackId waiting: its first poll comes one
                    // interval later, not at once.
                    next_poll = Instant::now() + poll_interval;
                }
                continue;
            }
            if !input_open && self.queue.is_empty() && self.pending.is_empty() {
                return Ok(());
            }
            // Nothing to send (or too many acks outstanding): wait for
            // input, the next poll, or the stop.
            let wait_poll = acks_on && !self.pending.is_empty();
            tokio::select! {
                _ = self.ctx.stop.cancelled() => return Err(Stopped),
                _ = tokio::time::sleep_until(next_poll), if wait_poll => {}
                first = input.recv(), if input_open && room && self.queue.is_empty() => {
                    match first {
                        None => input_open = false,
                        Some(batch) => {
                            let (records, acks, closed) = self.fill(batch, &mut input).await?;
                            if closed {
                                input_open = false;
                            }
                            self.enqueue(records, acks).await?;
                        }
                    }
                }
            }
        }
    }

    /// Gathers more batches until `batch.max_events` / `max_bytes`, or
    /// `batch.timeout` after the first. Returns whether the input closed.
    async fn fill(
        &self,
        first: crate::record::Batch,
        input: &mut BufferReceiver,
    ) -> Result<(Vec<Record>, Vec<Ack>, bool), Stopped> {
        let b = &self.config.batch;
        let deadline = Instant::now() + b.timeout;
        let mut size = first.size();
        let crate::record::Batch {
            mut records,
            mut acks,
        } = first;
        let mut closed = false;
        while records.len() < b.max_events && size < b.max_bytes {
            tokio::select! {
                _ = self.ctx.stop.cancelled() => return Err(Stopped),
                got = tokio::time::timeout_at(deadline, input.recv()) => match got {
                    Ok(Some(more)) => {
                        size += more.size();
                        records.extend(more.records);
                        acks.extend(more.acks);
                    }
                    Ok(None) => {
                        closed = true;
                        break;
                    }
                    Err(_) => break,
                },
            }
        }
        Ok((records, acks, closed))
    }

    /// Encodes records into requests; what cannot be encoded goes to the
    /// dead letters at once.
    async fn enqueue(&mut self, records: Vec<Record>, acks: Vec<Ack>) -> Result<(), Stopped> {
        let b = &self.config.batch;
        let mut refused = Vec::new();
        let mut chunks: Vec<Vec<Item>> = Vec::new();
        let mut current: Vec<Item> = Vec::new();
        let mut bytes = 0usize;
        for record in records {
            match self.encoder.encode(&record) {
                Ok(envelope) => {
                    if !current.is_empty()
                        && (current.len() >= b.max_events || bytes + envelope.len() > b.max_bytes)
                    {
                        chunks.push(std::mem::take(&mut current));
                        bytes = 0;
                    }
                    bytes += envelope.len();
                    current.push(Item { record, envelope });
                }
                Err(reason) => refused.push((record, format!("not sent to Splunk: {reason}"))),
            }
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        if !refused.is_empty() {
            self.dead_letter(refused, None).await?;
        }
        let group = Group::new(acks, chunks.len());
        self.queue.extend(chunks.into_iter().map(|items| Chunk {
            items,
            group: group.clone(),
            attempt: 0,
        }));
        Ok(())
    }

    /// Sends one chunk until it is delivered, awaiting its ack, refused or
    /// split (the halves go to the front of the queue).
    async fn deliver(&mut self, mut chunk: Chunk) -> Result<(), Stopped> {
        let name = self.name();
        loop {
            let answer = tokio::select! {
                _ = self.ctx.stop.cancelled() => return Err(Stopped),
                a = self.service.send(chunk.body()) => a,
            };
            metrics::counter!("mlsoc_sink_requests_total", "sink" => name.clone(), "status" => answer.status_label())
                .increment(1);
            let verdict = self.judge(&answer, chunk.items.len());
            match verdict {
                Verdict::Delivered => {
                    self.delivered(chunk);
                    return Ok(());
                }
                Verdict::AwaitAck(id) => {
                    if let Some(old) = self.pending.insert(id, Pending { chunk, polls: 0 }) {
                        // The collector reused an id still pending (it
                        // restarted and forgot its acks): the older request
                        // can no longer be confirmed, send it again.
                        tracing::warn!(sink = %name, ack_id = id, "ackId reused by the collector; sending its earlier request again");
                        self.queue.push_front(old.chunk);
                    }
                    return Ok(());
                }
                Verdict::Split => {
                    if chunk.items.len() <= 1 {
                        let reason = match answer_status(&answer) {
                            Some(413) => format!(
                                "{} (the event alone is larger than the collector accepts)",
                                answer.describe()
                            ),
                            _ => answer.describe(),
                        };
                        self.refuse(chunk, 0, reason, answer_status(&answer))
                            .await?;
                        return Ok(());
                    }
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => "too_large")
                        .increment(1);
                    let half = chunk.items.len() / 2;
                    let back = chunk.split_off(half);
                    self.queue.push_front(back);
                    self.queue.push_front(chunk);
                    return Ok(());
                }
                Verdict::RefuseAll { indexed } => {
                    let rest = self.take_indexed(chunk, indexed);
                    if let Some(rest) = rest {
                        let n = rest.items.len();
                        self.refuse(rest, n, answer.describe(), answer_status(&answer))
                            .await?;
                    }
                    return Ok(());
                }
                Verdict::RefuseOne { at, indexed } => {
                    // Split into [..at] (indexed or to resend), [at] (refused)
                    // and [at+1..] (to resend).
                    let mut bad = chunk;
                    let after = (at + 1 < bad.items.len()).then(|| bad.split_off(at + 1));
                    let before = if at > 0 {
                        let b = bad.split_off(at);
                        Some(std::mem::replace(&mut bad, b))
                    } else {
                        None
                    };
                    self.refuse(bad, 1, answer.describe(), answer_status(&answer))
                        .await?;
                    if let Some(mut after) = after {
                        after.attempt = 0;
                        self.queue.push_front(after);
                    }
                    if let Some(before) = before
                        && let Some(mut resend) = self.take_indexed(before, indexed)
                    {
                        resend.attempt = 0;
                        self.queue.push_front(resend);
                    }
                    return Ok(());
                }
                Verdict::Retry { reason, indexed } => {
                    match self.take_indexed(chunk, indexed) {
                        Some(rest) => chunk = rest,
                        None => return Ok(()),
                    }
                    chunk.attempt += 1;
                    if !self.config.retry.allows(chunk.attempt) {
                        let why = format!(
                            "gave up after {} retries: {}",
                            chunk.attempt - 1,
                            answer.describe()
                        );
                        let n = chunk.items.len();
                        self.refuse(chunk, n, why, answer_status(&answer)).await?;
                        return Ok(());
                    }
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => reason)
                        .increment(1);
                    let delay = self.config.retry.delay(chunk.attempt);
                    if reason == "token" {
                        tracing::error!(sink = %name, answer = %answer.describe(), retry_in = ?delay,
                            "Splunk refused the HEC token; fix the token (the records wait and are retried)");
                    } else if reason == "endpoint" {
                        tracing::error!(sink = %name, answer = %answer.describe(), retry_in = ?delay,
                            "the endpoint does not answer as Splunk HEC; check `endpoint` (the records wait and are retried)");
                    } else {
                        tracing::warn!(sink = %name, answer = %answer.describe(), events = chunk.items.len(),
                            retry_in = ?delay, "HEC request failed; retrying");
                    }
                    tokio::select! {
                        _ = self.ctx.stop.cancelled() => return Err(Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Reads an answer.
    fn judge(&mut self, answer: &Answer, events: usize) -> Verdict {
        let acks_on = self.config.acknowledgements.enabled;
        // Events before `invalid-event-number` were indexed; only trust
        // that when we do not wait for indexer acks (see the module docs).
        let indexed_before = |n: Option<usize>| -> usize {
            if acks_on {
                0
            } else {
                n.unwrap_or(0).min(events)
            }
        };
        match answer {
            Answer::Success { ack_id } => match (ack_id, acks_on) {
                (Some(id), true) => Verdict::AwaitAck(*id),
                (None, true) => {
                    if !self.warned_unrequested_ack {
                        self.warned_unrequested_ack = true;
                        tracing::warn!(sink = %self.ctx.name,
                            "acknowledgements.enabled, but the collector answers without ackId (the token has indexer acknowledgement off): records count as delivered on `Success`");
                    }
                    Verdict::Delivered
                }
                (_, false) => Verdict::Delivered,
            },
            Answer::Transport { timeout, .. } => Verdict::Retry {
                reason: if *timeout { "timeout" } else { "connection" },
                indexed: 0,
            },
            Answer::Error {
                status,
                code,
                invalid_event,
                ..
            } => {
                let status = *status;
                let indexed = indexed_before(*invalid_event);
                match (status, *code) {
                    (413, _) => Verdict::Split,
                    (401 | 403, _) => Verdict::Retry {
                        reason: "token",
                        indexed: 0,
                    },
                    // Not HEC answering (a proxy page, HEC disabled, a
                    // wrong endpoint path): a configuration an operator
                    // can fix, like a token; never drop.
                    (0..=399 | 404, _) => Verdict::Retry {
                        reason: "endpoint",
                        indexed: 0,
                    },
                    (
                        _,
                        Some(
                            code::SERVER_BUSY
                            | code::QUEUES_FULL
                            | code::ACK_UNAVAILABLE
                            | code::QUEUES_FULL_ACK_UNAVAILABLE
                            | code::SHUTTING_DOWN,
                        ),
                    ) => Verdict::Retry {
                        reason: "busy",
                        indexed,
                    },
                    (429, _) => Verdict::Retry {
                        reason: "busy",
                        indexed,
                    },
                    (500..=599, _) => Verdict::Retry {
                        reason: "server_error",
                        indexed,
                    },
                    (
                        400,
                        Some(
                            code::INVALID_DATA_FORMAT
                            | code::EVENT_REQUIRED
                            | code::EVENT_BLANK
                            | code::INDEXED_FIELDS,
                        ),
                    ) => match invalid_event {
                        Some(i) if *i < events => Verdict::RefuseOne {
                            at: *i,
                            indexed: indexed.min(*i),
                        },
                        // Which event is bad is unknown: halve the request
                        // until the bad one stands alone.
                        _ if events > 1 => Verdict::Split,
                        _ => Verdict::RefuseAll { indexed: 0 },
                    },
                    (_, Some(code::INCORRECT_INDEX)) => {
                        tracing::error!(sink = %self.ctx.name, index = ?self.config.index,
                            "Splunk answered \"Incorrect index\": the index does not exist or the token may not write to it; fix `index` (records are dead-lettered)");
                        Verdict::RefuseAll { indexed }
                    }
                    _ => Verdict::RefuseAll { indexed },
                }
            }
        }
    }

    /// Counts the first `indexed` items of `chunk` as delivered and returns
    /// the rest (none if nothing is left).
    fn take_indexed(&mut self, mut chunk: Chunk, indexed: usize) -> Option<Chunk> {
        if indexed == 0 {
            return Some(chunk);
        }
        if indexed >= chunk.items.len() {
            self.delivered(chunk);
            return None;
        }
        let rest = chunk.split_off(indexed);
        self.delivered(chunk);
        Some(rest)
    }

    fn delivered(&self, chunk: Chunk) {
        metrics::counter!("mlsoc_sink_records_total", "sink" => self.name(), "outcome" => "delivered")
            .increment(chunk.items.len() as u64);
        chunk.group.settle_one();
    }

    /// Dead-letters the whole chunk (`n` is its length, for the log).
    async fn refuse(
        &mut self,
        chunk: Chunk,
        n: usize,
        reason: String,
        status: Option<u16>,
    ) -> Result<(), Stopped> {
        tracing::warn!(sink = %self.ctx.name, records = n, reason = %reason, "Splunk refused records; dead-lettered");
        let Chunk { items, group, .. } = chunk;
        let records = items
            .into_iter()
            .map(|i| (i.record, reason.clone()))
            .collect();
        self.dead_letter(records, status).await?;
        group.settle_one();
        Ok(())
    }

    /// Writes dead letters, retrying a failing dead-letter file with backoff:
    /// records are only settled once they are stored somewhere.
    async fn dead_letter(
        &self,
        records: Vec<(Record, String)>,
        status: Option<u16>,
    ) -> Result<(), Stopped> {
        let name = self.name();
        let mut attempt = 0u32;
        loop {
            let letters = records
                .iter()
                .map(|(r, reason)| SinkDeadLetter::new(&name, r, reason.clone(), status))
                .collect();
            let written = tokio::select! {
                _ = self.ctx.stop.cancelled() => return Err(Stopped),
                w = self.ctx.dead_letters.write(letters) => w,
            };
            match written {
                Ok(()) => {
                    metrics::counter!("mlsoc_sink_records_total", "sink" => name.clone(), "outcome" => "dead_lettered")
                        .increment(records.len() as u64);
                    return Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    let delay = self.config.retry.delay(attempt);
                    tracing::error!(sink = %name, error = %e, path = %self.ctx.dead_letters.path().display(),
                        retry_in = ?delay, "cannot write dead letters; retrying");
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => "dead_letters")
                        .increment(1);
                    tokio::select! {
                        _ = self.ctx.stop.cancelled() => return Err(Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One poll of every pending `ackId` (at most 10,000 per request).
    /// True ones are delivered; ones still false after `max_polls` polls
    /// are sent again.
    async fn poll_acks(&mut self) -> Result<(), Stopped> {
        let name = self.name();
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for ids in ids.chunks(10_000) {
            let answer = tokio::select! {
                _ = self.ctx.stop.cancelled() => return Err(Stopped),
                a = self.service.poll_acks(ids) => a,
            };
            let status = match &answer {
                Ok(_) => "200".to_owned(),
                Err(a) => a.status_label(),
            };
            metrics::counter!("mlsoc_sink_requests_total", "sink" => name.clone(), "status" => status)
                .increment(1);
            let states = match answer {
                Ok(s) => s,
                Err(a) => {
                    tracing::warn!(sink = %name, answer = %a.describe(), pending = ids.len(),
                        "polling indexer acknowledgements failed");
                    Default::default()
                }
            };
            for id in ids {
                if states.get(id).copied().unwrap_or(false) {
                    let p = self.pending.remove(id).expect("id taken from pending");
                    self.delivered(p.chunk);
                    continue;
                }
                let p = self.pending.get_mut(id).expect("id taken from pending");
                p.polls += 1;
                if p.polls >= self.config.acknowledgements.max_polls {
                    let p = self.pending.remove(id).expect("present");
                    tracing::warn!(sink = %name, ack_id = id, events = p.chunk.items.len(),
                        "no indexer acknowledgement in time; sending the events again");
                    metrics::counter!("mlsoc_sink_retries_total", "sink" => name.clone(), "reason" => "ack_timeout")
                        .increment(1);
                    self.queue.push_back(p.chunk);
                }
            }
        }
        Ok(())
    }
}

fn answer_status(a: &Answer) -> Option<u16> {
    match a {
        Answer::Error { status, .. } => Some(*status),
        _ => None,
    }
}
