//! The streaming pipeline between sources and sinks.
//!
//! ```text
//! sources --SourceBatch--> dispatcher --(by stream)--> workers x N ------> router --> sink buffers
//!                                                      normalize           correlate
//!                                                      rule eval  (rayon)  correlation alerts
//!                                                      serialize  (chunks) fan-out
//!                                                      rule alerts
//! ```
//!
//! - The dispatcher sends every batch of one stream (one file, one
//!   connection) to the same worker, so records of a stream are normalized
//!   in order with their state (format detection, multi-line records).
//! - Workers normalize, then evaluate the detection rules (stateless),
//!   serialize events once for all sinks and build the alerts of rules that
//!   alert on their own, over chunks of the batch on the rayon pool: one
//!   busy file still uses every core, and order is kept.
//! - The router runs the correlations (stateful, one thread, events in
//!   arrival order) on the events that matched a rule feeding one, builds
//!   their alerts, and hands each sink the records of the streams it takes,
//!   with a clone of the source batch's acknowledgement.
//! - Every channel is bounded and sink buffers block when full, so a slow
//!   sink slows the router, the workers, the dispatcher and then the
//!   sources: memory stays bounded.
//! - A source batch's acknowledgement is held while the normalizer keeps
//!   some of its lines pending (format detection, an open multi-line
//!   record), and released with the batch that finally emits them: a file
//!   checkpoint never passes a line that is not in an event yet.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use collector::SourceBatch;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use detections::{Engine, Hit, alert};
use normalizer::{Normalizer, Output};
use schema::{Ack, AckStatus, Event, Value, f};
use sha2::{Digest, Sha256};
use sinks::{Batch, BufferSender, Record, Stream};
use tokio::sync::mpsc;

/// A sink as the router sees it.
pub struct SinkInput {
    pub name: Arc<str>,
    pub streams: Vec<Stream>,
    pub tx: BufferSender,
}

/// Counters of the whole pipeline, for the summary and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_in: AtomicU64,
    pub events: AtomicU64,
    pub dead_letters: AtomicU64,
    pub alerts: AtomicU64,
}

/// The stages' settings.
pub struct Stages {
    pub normalizer: Arc<Normalizer>,
    pub engine: Option<Arc<Engine>>,
    pub correlation_limits: detections::Limits,
    pub workers: usize,
    pub multiline_timeout: Duration,
}

/// The running pipeline's threads.
pub struct Pipeline {
    threads: Vec<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Pipeline {
    /// Waits until every source is gone and every record was handed to a
    /// sink buffer.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a pipeline thread panicked");
            }
        }
    }
}

/// What a worker hands the router.
struct WorkerOut {
    records: Vec<Record>,
    /// Events some detection rule matched, with the rules.
    hits: Vec<(Event, Vec<usize>)>,
    acks: Vec<Ack>,
    /// The stream the records come from (its source's name and its id
    /// there, hashed): the correlations keep a clock per stream.
    stream: u64,
    /// The stream ended with these records.
    ended: bool,
}

/// Starts the dispatcher, the workers and the router.
pub fn spawn(
    input: mpsc::Receiver<SourceBatch>,
    stages: Stages,
    sinks: Vec<SinkInput>,
    rt: tokio::runtime::Handle,
) -> std::io::Result<Pipeline> {
    let stats = Arc::new(Stats::default());
    let workers = stages.workers.max(1);
    let (out_tx, out_rx) = bounded::<WorkerOut>(workers * 2);
    let mut threads = Vec::new();
    let mut worker_txs = Vec::new();
    for i in 0..workers {
        let (tx, rx) = bounded::<SourceBatch>(2);
        worker_txs.push(tx);
        let norm = stages.normalizer.clone();
        let engine = stages.engine.clone();
        let out = out_tx.clone();
        let stats = stats.clone();
        let timeout = stages.multiline_timeout;
        threads.push(
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker(rx, out, &norm, engine.as_deref(), timeout, &stats))?,
        );
    }
    drop(out_tx);
    threads.push(
        std::thread::Builder::new()
            .name("dispatcher".into())
            .spawn(move || dispatch(input, worker_txs))?,
    );
    let engine = stages.engine.clone();
    let limits = stages.correlation_limits;
    let rstats = stats.clone();
    threads.push(
        std::thread::Builder::new()
            .name("router".into())
            .spawn(move || router(out_rx, engine.as_deref(), limits, sinks, rt, &rstats))?,
    );
    Ok(Pipeline { threads, stats })
}

/// Streams are spread over the workers as they appear: a new stream goes
/// to the worker with the fewest open streams, and stays there until it
/// ends (its normalization state lives there). A hash of the stream would
/// put several busy files on one worker by chance.
fn dispatch(mut input: mpsc::Receiver<SourceBatch>, workers: Vec<Sender<SourceBatch>>) {
    let mut assigned: HashMap<(Arc<str>, u64), usize> = HashMap::new();
    let mut open = vec![0usize; workers.len()];
    while let Some(batch) = input.blocking_recv() {
        let key = (batch.source_name.clone(), batch.stream);
        let i = match assigned.get(&key) {
            Some(&i) => i,
            None => {
                let i = (0..workers.len()).min_by_key(|&w| open[w]).unwrap_or(0);
                open[i] += 1;
                assigned.insert(key.clone(), i);
                i
            }
        };
        if batch.end_of_stream {
            assigned.remove(&key);
            open[i] -= 1;
        }
        if workers[i].send(batch).is_err() {
            tracing::error!("a pipeline worker stopped; stopping the dispatcher");
            return;
        }
    }
}

struct StreamState<'n> {
    stream: normalizer::Stream<'n>,
    /// Acks of batches with lines still pending in the normalizer.
    held: Vec<Ack>,
    last: Instant,
}

fn worker(
    input: Receiver<SourceBatch>,
    out: Sender<WorkerOut>,
    norm: &Normalizer,
    engine: Option<&Engine>,
    multiline_timeout: Duration,
    stats: &Stats,
) {
    let mut streams: HashMap<(Arc<str>, u64), StreamState<'_>> = HashMap::new();
    let tick = (multiline_timeout / 2).max(Duration::from_millis(10));
    let mut outs = Vec::new();
    loop {
        match input.recv_timeout(tick) {
            Ok(batch) => {
                let key = (batch.source_name.clone(), batch.stream);
                let st = streams.entry(key.clone()).or_insert_with(|| StreamState {
                    stream: norm.stream(batch.source.clone(), None),
                    held: Vec::new(),
                    last: Instant::now(),
                });
                st.last = Instant::now();
                stats
                    .records_in
                    .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                for rec in batch.records {
                    st.stream.push(rec, &mut outs);
                }
                let ended = batch.end_of_stream;
                let acks = if ended {
                    st.stream.finish(&mut outs);
                    let mut acks = std::mem::take(&mut st.held);
                    streams.remove(&key);
                    acks.push(batch.ack);
                    acks
                } else if st.stream.has_pending() {
                    st.held.push(batch.ack);
                    Vec::new()
                } else {
                    let mut acks = std::mem::take(&mut st.held);
                    acks.push(batch.ack);
                    acks
                };
                let wo = convert(&mut outs, acks, &key.0, key.1, ended, engine, stats);
                if out.send(wo).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // Sources are gone: close every open record.
                for ((name, id), mut st) in streams.drain() {
                    st.stream.finish(&mut outs);
                    let wo = convert(&mut outs, st.held, &name, id, true, engine, stats);
                    if out.send(wo).is_err() {
                        return;
                    }
                }
                return;
            }
        }
        // Close records held open on quiet streams.
        let now = Instant::now();
        for ((name, id), st) in streams.iter_mut() {
            if st.stream.has_pending() && now.duration_since(st.last) >= multiline_timeout {
                st.stream.flush_pending(&mut outs);
                st.last = now;
                let held = std::mem::take(&mut st.held);
                let wo = convert(&mut outs, held, name, *id, false, engine, stats);
                if out.send(wo).is_err() {
                    return;
                }
            }
        }
    }
}

/// Outputs per parallel chunk: small enough that one batch of one stream
/// spreads over every core, large enough that a chunk is worth a task.
const CHUNK: usize = 32;

/// Room reserved for an event document without `event.original`; the
/// buffer grows when needed.
const DOC_GUESS: usize = 1536;

/// What one chunk of outputs became.
#[derive(Default)]
struct ChunkOut {
    records: Vec<Record>,
    hits: Vec<(Event, Vec<usize>)>,
}

/// Evaluates the rules on the events and serializes events, dead letters
/// and the alerts of rules that alert on their own, in parallel chunks
/// (order kept): normalization of a stream is sequential, but this is most
/// of the work, so one busy file still uses every core. Events that match
/// a rule feeding a correlation go to the router, in order.
fn convert(
    outs: &mut Vec<Output>,
    acks: Vec<Ack>,
    source_name: &Arc<str>,
    stream: u64,
    ended: bool,
    engine: Option<&Engine>,
    stats: &Stats,
) -> WorkerOut {
    // Several events can come from one record (a document of records):
    // number them within their record for their ids, before splitting.
    // Each output's (offset, ordinal): the key of its stable id.
    let mut keys = Vec::with_capacity(outs.len());
    let mut prev = None;
    let mut n = 0u32;
    for o in outs.iter() {
        match o {
            Output::Event(ev) => {
                let offset = log_offset(ev).unwrap_or(u64::MAX);
                n = if prev == Some(offset) { n + 1 } else { 0 };
                prev = Some(offset);
                keys.push((offset, n));
            }
            Output::Dead(d) => keys.push((d.offset, u32::MAX)),
        }
    }
    let chunks: Vec<ChunkOut> = if outs.len() <= CHUNK {
        let mut scratch = detections::prefilter::Scratch::default();
        vec![convert_chunk(
            outs,
            &keys,
            source_name,
            stream,
            engine,
            &mut scratch,
            stats,
        )]
    } else {
        use rayon::prelude::*;
        outs.par_chunks_mut(CHUNK)
            .zip(keys.par_chunks(CHUNK))
            .map_init(
                detections::prefilter::Scratch::default,
                |scratch, (o, ord)| {
                    convert_chunk(o, ord, source_name, stream, engine, scratch, stats)
                },
            )
            .collect()
    };
    outs.clear();
    let mut records = Vec::with_capacity(chunks.iter().map(|c| c.records.len()).sum());
    let mut hits = Vec::new();
    for c in chunks {
        records.extend(c.records);
        hits.extend(c.hits);
    }
    WorkerOut {
        records,
        hits,
        acks,
        stream: stream_key(source_name, stream),
        ended,
    }
}

/// One number for a source's stream.
fn stream_key(source_name: &str, stream: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source_name.hash(&mut h);
    stream.hash(&mut h);
    h.finish()
}

/// Events that feed a correlation are moved out of `outs` (to the router).
fn convert_chunk(
    outs: &mut [Output],
    keys: &[(u64, u32)],
    source_name: &Arc<str>,
    stream: u64,
    engine: Option<&Engine>,
    scratch: &mut detections::prefilter::Scratch,
    stats: &Stats,
) -> ChunkOut {
    let mut out = ChunkOut {
        records: Vec::with_capacity(outs.len()),
        hits: Vec::new(),
    };
    let mut rule_hits = Vec::new();
    let mut dataset_cache: Option<(Value, Arc<str>)> = None;
    let mut source_cache: Option<Arc<str>> = None;
    let mut host_cache: Option<Arc<str>> = None;
    let (mut events, mut dead) = (0, 0);
    // The events' documents are written one after another into one buffer
    // per chunk, and each record's document is a slice of it: one
    // allocation per chunk instead of one (and its regrowths) per event.
    let guess: usize = outs
        .iter()
        .map(|o| match o {
            // A document is about three times its raw line (the line is
            // in it, as `event.original`, and parsed into fields).
            Output::Event(ev) => ev.original().map_or(DOC_GUESS, |l| 3 * l.len() + 512),
            Output::Dead(_) => 0,
        })
        .sum();
    let mut docs = Vec::with_capacity(guess);
    let mut spans = Vec::with_capacity(outs.len());
    for (o, &(offset, ordinal)) in outs.iter_mut().zip(keys) {
        match o {
            Output::Event(ev) => {
                events += 1;
                let start = docs.len();
                ev.write_json(&mut docs);
                spans.push((out.records.len(), start, docs.len()));
                let dataset = match (ev.get_id(f::EVENT_DATASET), &dataset_cache) {
                    (Some(v), Some((cv, arc))) if v == cv => arc.clone(),
                    (Some(v), _) => {
                        let arc: Arc<str> = v.to_text().as_deref().unwrap_or("unknown").into();
                        dataset_cache = Some((v.clone(), arc.clone()));
                        arc
                    }
                    (None, _) => "unknown".into(),
                };
                let source = source_cache
                    .get_or_insert_with(|| {
                        ev.get_id(f::LOG_FILE_PATH)
                            .and_then(Value::to_text)
                            .map(|s| Arc::from(&*s))
                            .unwrap_or_else(|| source_name.clone())
                    })
                    .clone();
                let host = match ev.get_id(f::HOST_NAME).and_then(Value::to_text) {
                    Some(h) => match &host_cache {
                        Some(c) if **c == *h => Some(c.clone()),
                        _ => {
                            let c: Arc<str> = Arc::from(&*h);
                            host_cache = Some(c.clone());
                            Some(c)
                        }
                    },
                    None => None,
                };
                out.records.push(Record {
                    stream: Stream::Events,
                    doc: Bytes::new(),
                    dataset,
                    time_ns: ev.timestamp().map(|t| t.0),
                    host,
                    source,
                    id: record_id(source_name, stream, offset, ordinal),
                });
                if let Some(engine) = engine {
                    rule_hits.clear();
                    engine.eval_with(ev, scratch, &mut |i| rule_hits.push(i));
                    let mut feeds = false;
                    for &i in &rule_hits {
                        if engine.rule_alerts(i) {
                            let a = alert::rule_alert(&engine.rules()[i].rule, ev);
                            out.records.push(alert_record(&a, stats));
                        }
                        feeds |= engine.feeds_correlations(i);
                    }
                    if feeds {
                        // Done with it here: the router takes it.
                        out.hits.push((std::mem::take(ev), rule_hits.clone()));
                    }
                }
            }
            Output::Dead(d) => {
                dead += 1;
                let doc = d.to_json_string();
                out.records.push(Record {
                    stream: Stream::DeadLetters,
                    doc: Bytes::from(doc),
                    dataset: "mlsoc.dead_letter".into(),
                    time_ns: None,
                    host: None,
                    source: d.source.as_str().into(),
                    id: record_id(source_name, stream, offset, ordinal),
                });
            }
        }
    }
    let docs = Bytes::from(docs);
    for (i, start, end) in spans {
        out.records[i].doc = docs.slice(start..end);
    }
    stats.events.fetch_add(events, Ordering::Relaxed);
    stats.dead_letters.fetch_add(dead, Ordering::Relaxed);
    if dead > 0 {
        metrics::counter!("mlsoc_dead_letters_total", "stage" => "normalize").increment(dead);
    }
    out
}

/// `log.offset` of an event: where its record starts in its stream.
fn log_offset(ev: &Event) -> Option<u64> {
    match ev.get_id(f::LOG_OFFSET) {
        Some(Value::Int(i)) => Some(*i as u64),
        _ => None,
    }
}

/// An alert as a record of the `alerts` stream.
fn alert_record(a: &Event, stats: &Stats) -> Record {
    stats.alerts.fetch_add(1, Ordering::Relaxed);
    let rule = a
        .get("rule.name")
        .and_then(Value::to_text)
        .map(|s| s.to_string())
        .unwrap_or_default();
    metrics::counter!("mlsoc_alerts_total", "rule" => rule).increment(1);
    let mut doc = Vec::with_capacity(2048);
    a.write_json(&mut doc);
    let id: Arc<str> = a
        .get_id(f::EVENT_ID)
        .and_then(Value::to_text)
        .map(|s| Arc::from(&*s))
        .unwrap_or_else(|| "alert".into());
    Record {
        stream: Stream::Alerts,
        doc: Bytes::from(doc),
        dataset: "mlsoc.alert".into(),
        time_ns: a.timestamp().map(|t| t.0),
        host: None,
        source: "mlsoc.detect".into(),
        id,
    }
}

/// A stable id for the record at `offset` of a stream: the same input
/// gives the same id after a restart, so a destination that keys on it
/// (Elasticsearch `create` with `_id`) drops the duplicates that
/// at-least-once delivery sends.
fn record_id(source_name: &str, stream: u64, offset: u64, ordinal: u32) -> Arc<str> {
    let mut h = Sha256::new();
    h.update(source_name.as_bytes());
    h.update([0]);
    h.update(stream.to_le_bytes());
    h.update(offset.to_le_bytes());
    h.update(ordinal.to_le_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = h.finalize();
    let mut s = [0u8; 32];
    for (i, b) in d[..16].iter().enumerate() {
        s[2 * i] = HEX[(b >> 4) as usize];
        s[2 * i + 1] = HEX[(b & 15) as usize];
    }
    std::str::from_utf8(&s).expect("hex digits").into()
}

fn router(
    input: Receiver<WorkerOut>,
    engine: Option<&Engine>,
    limits: detections::Limits,
    sinks: Vec<SinkInput>,
    rt: tokio::runtime::Handle,
    stats: &Stats,
) {
    let mut session = engine.map(|e| e.session(limits));
    let mut found = Vec::new();
    for mut wo in input {
        if let (Some(engine), Some(session)) = (engine, session.as_mut()) {
            for (ev, rule_hits) in wo.hits.drain(..) {
                found.clear();
                let record_no = log_offset(&ev).unwrap_or(0);
                session.process_hits(engine, &ev, wo.stream, record_no, &rule_hits, &mut found);
                for h in &found {
                    // Rule alerts were made by the worker.
                    if let Hit::Correlation(m) = h {
                        let a = alert::correlation_alert(engine.correlation(m.correlation), m, &ev);
                        wo.records.push(alert_record(&a, stats));
                    }
                }
            }
            if wo.ended {
                session.end_stream(wo.stream);
            }
        }
        for (i, sink) in sinks.iter().enumerate() {
            let takes = |r: &Record| sink.streams.contains(&r.stream);
            // The last sink takes the records themselves; the others, clones
            // (reference counts: the documents are shared).
            let records: Vec<Record> = if i + 1 == sinks.len() {
                std::mem::take(&mut wo.records)
                    .into_iter()
                    .filter(takes)
                    .collect()
            } else {
                wo.records.iter().filter(|r| takes(r)).cloned().collect()
            };
            if records.is_empty() {
                continue;
            }
            let batch = Batch {
                records,
                acks: wo.acks.to_vec(),
            };
            if rt.block_on(sink.tx.send(batch)).is_err() {
                tracing::error!(sink = %sink.name, "sink stopped; its records are not delivered (their sources will read them again after a restart)");
            }
        }
        // The router's own share: the sinks hold theirs. Records no sink
        // takes are done here (the configuration sends them nowhere).
        Ack::complete_all(wo.acks, AckStatus::Delivered);
    }
}
