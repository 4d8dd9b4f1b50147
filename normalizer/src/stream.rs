//! Per-source normalization: detection, line checks, multiline grouping,
//! parsing and the fields every event gets.

use std::collections::BTreeMap;
use std::sync::Arc;

use schema::{DeadLetter, Event, FieldKey, RawRecord, Source, Str, Timestamp, Value, f};

use crate::detect::{Detection, detect};
use crate::format::{Registry, Scratch};
use crate::multiline::Aggregator;
use crate::spec::OnMismatch;
use crate::timestamp::{TimeContext, Zone};

/// Settings of a normalizer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest record accepted; longer ones go to the dead-letter queue with
    /// their head. Collectors cut lines at the same limit.
    pub max_record_bytes: usize,
    /// Zone of timestamps that carry none.
    pub zone: Zone,
    /// Lines sampled for format detection.
    pub detect_lines: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_record_bytes: 1024 * 1024,
            zone: Zone::Utc,
            detect_lines: 32,
        }
    }
}

/// What one record became.
#[derive(Debug, Clone)]
pub enum Output {
    Event(Event),
    /// Boxed: dead letters are rare and large, events are many and small.
    Dead(Box<DeadLetter>),
}

impl Output {
    /// A dead-letter output.
    pub fn dead(d: DeadLetter) -> Output {
        Output::Dead(Box::new(d))
    }
}

pub use schema::TAG_TIMESTAMP_INFERRED;

/// Detects formats and turns raw records into events.
#[derive(Debug)]
pub struct Normalizer {
    reg: Registry,
    opts: Options,
}

impl Normalizer {
    pub fn new(reg: Registry, opts: Options) -> Normalizer {
        Normalizer { reg, opts }
    }

    pub fn registry(&self) -> &Registry {
        &self.reg
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Starts a stream. `reference` is the time used to infer missing years
    /// (a file's modification time); now when `None`. The source's `format`
    /// must name a known format when set.
    pub fn stream(&self, source: Arc<Source>, reference: Option<Timestamp>) -> Stream<'_> {
        let forced = source.format.as_deref().and_then(|n| self.reg.index(n));
        let mut s = Stream {
            norm: self,
            time: TimeContext {
                zone: self.opts.zone,
                reference: reference.unwrap_or_else(Timestamp::now),
            },
            file_path: source.path().map(Str::from),
            source,
            state: State::Detecting(Vec::new(), 0),
            scratch: Scratch::default(),
            events: Vec::new(),
            last_ts: None,
            blank: 0,
            detection: None,
            path_fields: Vec::new(),
            by_dataset: Vec::new(),
            dead: 0,
        };
        if let Some(idx) = forced {
            s.decide_as(Detection {
                format: idx,
                sampled: 0,
                matched: 0,
            });
        }
        s
    }
}

enum Item {
    Line(RawRecord),
    Blank(RawRecord),
    Dead(DeadLetter),
}

enum State {
    /// Collecting the first lines; the count is of non-blank valid lines.
    Detecting(Vec<Item>, usize),
    Ready {
        fmt: usize,
        agg: Aggregator,
    },
}

/// The normalization state of one source.
pub struct Stream<'n> {
    norm: &'n Normalizer,
    source: Arc<Source>,
    file_path: Option<Str>,
    time: TimeContext,
    state: State,
    scratch: Scratch,
    events: Vec<Event>,
    last_ts: Option<Timestamp>,
    blank: u64,
    detection: Option<Detection>,
    path_fields: Vec<(FieldKey, Value)>,
    by_dataset: Vec<(Str, u64)>,
    dead: u64,
}

impl Stream<'_> {
    /// Adds one physical line (without its terminator), or a whole document.
    pub fn push(&mut self, line: RawRecord, out: &mut Vec<Output>) {
        let item = self.check(line);
        match &mut self.state {
            State::Detecting(items, valid) => {
                if matches!(item, Item::Line(_)) {
                    *valid += 1;
                }
                let enough = *valid >= self.norm.opts.detect_lines;
                items.push(item);
                if enough {
                    self.decide(out);
                }
            }
            State::Ready { .. } => self.handle(item, out),
        }
    }

    /// Ends the stream: decides the format if still undecided and closes
    /// the open record.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        if matches!(self.state, State::Detecting(..)) {
            self.decide(out);
        }
        let rec = match &mut self.state {
            State::Ready { agg, .. } => agg.flush(),
            State::Detecting(..) => None,
        };
        if let Some(rec) = rec {
            self.process(rec, out);
        }
    }

    /// Closes a record held open for continuation lines (for tailing: call
    /// after a quiet period).
    pub fn flush_pending(&mut self, out: &mut Vec<Output>) {
        self.finish(out);
    }

    /// Whether lines were pushed that have not become outputs yet: lines
    /// kept for format detection, or a record held open for continuation
    /// lines. A tailing source must not count them as delivered.
    pub fn has_pending(&self) -> bool {
        match &self.state {
            State::Detecting(items, _) => !items.is_empty(),
            State::Ready { agg, .. } => agg.has_pending(),
        }
    }

    /// The chosen format's name, once decided.
    pub fn format_name(&self) -> Option<&str> {
        match &self.state {
            State::Ready { fmt, .. } => Some(&self.norm.reg.formats[*fmt].name),
            State::Detecting(..) => None,
        }
    }

    pub fn detection(&self) -> Option<&Detection> {
        self.detection.as_ref()
    }

    /// Blank lines that belonged to no record.
    pub fn blank_lines(&self) -> u64 {
        self.blank
    }

    /// Events per `event.dataset` so far.
    pub fn events_by_dataset(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for (k, v) in &self.by_dataset {
            *m.entry(k.to_string()).or_insert(0) += v;
        }
        m
    }

    /// Dead-letter records so far.
    pub fn dead_letters(&self) -> u64 {
        self.dead
    }

    fn check(&self, line: RawRecord) -> Item {
        let max = self.norm.opts.max_record_bytes;
        if let Some(total) = line.overflow_len {
            return Item::Dead(DeadLetter::new(
                &line,
                None,
                format!(
                    "record is {total} bytes, over the limit of {max} bytes (max_record_bytes); its head is kept"
                ),
            ));
        }
        if line.bytes.len() > max {
            let total = line.bytes.len();
            let mut cut = line;
            cut.overflow_len = Some(total as u64);
            cut.bytes.truncate(schema::dlq::MAX_KEPT_BYTES.min(total));
            return Item::Dead(DeadLetter::new(
                &cut,
                None,
                format!(
                    "record is {total} bytes, over the limit of {max} bytes (max_record_bytes); its head is kept"
                ),
            ));
        }
        // Most lines are ASCII without NUL bytes: one pass tells, and the
        // checks below then have nothing to find.
        if plain_ascii(&line.bytes) {
            return if line.bytes.iter().all(|c| c.is_ascii_whitespace()) {
                Item::Blank(line)
            } else {
                Item::Line(line)
            };
        }
        if let Err(e) = std::str::from_utf8(&line.bytes) {
            return Item::Dead(DeadLetter::new(
                &line,
                None,
                format!(
                    "invalid UTF-8 at byte {} of the record (binary data or a non-UTF-8 encoding)",
                    e.valid_up_to()
                ),
            ));
        }
        if let Some(i) = memchr::memchr(0, &line.bytes) {
            return Item::Dead(DeadLetter::new(
                &line,
                None,
                format!("NUL byte at byte {i} of the record (binary data)"),
            ));
        }
        if line.bytes.iter().all(|c| c.is_ascii_whitespace()) {
            return Item::Blank(line);
        }
        Item::Line(line)
    }

    fn decide(&mut self, out: &mut Vec<Output>) {
        let State::Detecting(items, _) =
            std::mem::replace(&mut self.state, State::Detecting(Vec::new(), 0))
        else {
            return;
        };
        let sample: Vec<Str> = items
            .iter()
            .filter_map(|i| match i {
                Item::Line(r) => Some(to_str(r.bytes.clone())),
                _ => None,
            })
            .collect();
        let d = detect(&self.norm.reg, &sample, self.source.path(), &self.time);
        self.decide_as(d);
        for item in items {
            self.handle(item, out);
        }
    }

    fn decide_as(&mut self, d: Detection) {
        let fmt = &self.norm.reg.formats[d.format];
        self.path_fields.clear();
        if let (Some((re, fields)), Some(path)) = (&fmt.source_path, self.source.path())
            && let Some(caps) = re.captures(path)
        {
            for (key, group) in fields {
                if let Some(m) = caps.name(group) {
                    self.path_fields
                        .push((key.clone(), Value::Str(Str::from(m.as_str()))));
                }
            }
        }
        let agg = Aggregator::new(fmt.multiline.clone(), self.norm.opts.max_record_bytes);
        self.state = State::Ready { fmt: d.format, agg };
        self.detection = Some(d);
    }

    fn handle(&mut self, item: Item, out: &mut Vec<Output>) {
        let State::Ready { agg, .. } = &mut self.state else {
            unreachable!("handle after decide")
        };
        let closed = match item {
            Item::Dead(d) => {
                self.dead += 1;
                out.push(Output::Dead(Box::new(d)));
                return;
            }
            Item::Blank(r) => {
                if agg.wants_blank() {
                    agg.push(r)
                } else {
                    self.blank += 1;
                    return;
                }
            }
            Item::Line(r) => agg.push(r),
        };
        if let Some(rec) = closed {
            self.process(rec, out);
        }
    }

    fn process(&mut self, mut rec: RawRecord, out: &mut Vec<Output>) {
        let State::Ready { fmt, .. } = &self.state else {
            unreachable!()
        };
        let fmt_idx = *fmt;
        let reg = &self.norm.reg;
        let format = &reg.formats[fmt_idx];
        if let Some(total) = rec.overflow_len {
            self.dead += 1;
            out.push(Output::dead(DeadLetter::new(
                &rec,
                Some(&format.name),
                format!(
                    "multi-line record is {total} bytes, over the limit of {} bytes (max_record_bytes); its head is kept",
                    self.norm.opts.max_record_bytes
                ),
            )));
            return;
        }
        // The record's bytes move into `event.original` (no reference count
        // touched); a dead-letter record gets them back.
        let mut original = to_str(std::mem::take(&mut rec.bytes));
        // Most lines have no escape sequence: parse `original` itself then.
        let stripped = (format.strip_ansi && memchr::memchr(0x1b, original.as_bytes()).is_some())
            .then(|| crate::ansi::strip(&original));
        let text = stripped.as_ref().unwrap_or(&original);
        self.events.clear();
        let result = format.parse(
            reg,
            text,
            &self.time,
            &mut self.scratch,
            0,
            &mut self.events,
        );
        if let Err(reject) = result {
            match format.on_mismatch {
                OnMismatch::Dlq => {
                    rec.bytes = original.to_bytes();
                    self.dead += 1;
                    out.push(Output::dead(DeadLetter::new(
                        &rec,
                        Some(&format.name),
                        format!("does not match format {}: {}", format.name, reject.0),
                    )));
                    return;
                }
                OnMismatch::Message => self.events.push(format.message_event(text)),
            }
        }
        let mut events = std::mem::take(&mut self.events);
        let n = events.len();
        for (i, mut ev) in events.drain(..).enumerate() {
            let original = if i + 1 == n {
                std::mem::take(&mut original)
            } else {
                original.clone()
            };
            self.finish_event(&mut ev, &rec, original);
            self.scratch.saw_fields(ev.len());
            // Set at the end of parsing, a few fields from the end.
            if let Some(Value::Str(ds)) = ev.get_id_recent(f::EVENT_DATASET) {
                // Datasets are few and usually the same `Str`: compare pointers first.
                match self
                    .by_dataset
                    .iter_mut()
                    .find(|(k, _)| (k.as_ptr() == ds.as_ptr() && k.len() == ds.len()) || k == ds)
                {
                    Some((_, n)) => *n += 1,
                    None => self.by_dataset.push((ds.clone(), 1)),
                }
            }
            out.push(Output::Event(ev));
        }
        self.events = events;
    }

    fn finish_event(&mut self, ev: &mut Event, rec: &RawRecord, original: Str) {
        ev.set_default(f::EVENT_ORIGINAL, original);
        ev.set_default(f::EVENT_KIND, "event");
        match ev.timestamp() {
            Some(t) => self.last_ts = Some(t),
            None => {
                ev.set(f::AT_TIMESTAMP, self.last_ts.unwrap_or(rec.received));
                // `tags` is an ECS array field: one tag is stored as a plain
                // string (no allocation) and written as an array.
                match ev.remove_id(f::TAGS) {
                    None => ev.set(f::TAGS, TAG_TIMESTAMP_INFERRED),
                    Some(Value::Array(mut a)) => {
                        a.push(Value::from(TAG_TIMESTAMP_INFERRED));
                        ev.set(f::TAGS, Value::Array(a));
                    }
                    Some(other) => ev.set(
                        f::TAGS,
                        Value::Array(vec![other, Value::from(TAG_TIMESTAMP_INFERRED)]),
                    ),
                }
            }
        }
        ev.set(f::EVENT_INGESTED, rec.received);
        if let Some(p) = &self.file_path {
            ev.set(f::LOG_FILE_PATH, p.clone());
        }
        ev.set(f::LOG_OFFSET, rec.offset as i64);
        for (k, v) in &self.path_fields {
            if ev.get(k.name()).is_none() {
                ev.insert(k.clone(), v.clone());
            }
        }
    }
}

/// True when every byte is ASCII and none is NUL. Checks blocks of 16 bytes
/// without an early exit inside a block, which the compiler vectorizes.
fn plain_ascii(b: &[u8]) -> bool {
    // `c - 1` wraps NUL to 255: one compare finds NUL and non-ASCII bytes.
    let bad = |c: u8| c.wrapping_sub(1) >= 0x7f;
    let mut chunks = b.chunks_exact(16);
    for chunk in chunks.by_ref() {
        if chunk.iter().fold(false, |acc, &c| acc | bad(c)) {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&c| bad(c))
}

/// The bytes of a checked record as text.
fn to_str(b: bytes::Bytes) -> Str {
    debug_assert!(std::str::from_utf8(&b).is_ok());
    // SAFETY: `check` validated every line as UTF-8, and multi-line records
    // are valid lines joined with `\n`.
    unsafe { Str::from_bytes_unchecked(b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Registry;

    fn run(lines: &[&str], format: &str) -> Vec<Output> {
        let norm = Normalizer::new(Registry::builtin(), Options::default());
        let source = Arc::new(Source {
            kind: "file",
            name: "t.log".into(),
            format: Some(format.into()),
        });
        let mut s = norm.stream(source.clone(), Some(Timestamp(0)));
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            s.push(
                RawRecord {
                    bytes: bytes::Bytes::copy_from_slice(l.as_bytes()),
                    source: source.clone(),
                    offset: i as u64,
                    line: i as u64 + 1,
                    received: Timestamp(0),
                    overflow_len: None,
                },
                &mut out,
            );
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn repeated_timestamps_are_parsed_once_and_stay_right() {
        let line =
            |t: &str| format!(r#"{t} INFO:     127.0.0.1:1 - "GET /health HTTP/1.1" 200 OK"#);
        let lines = [
            line("2026/11/30 00:30:56"),
            line("2026/11/30 00:30:56"),
            line("2026/11/30 00:30:57"),
            line("2026/13/30 00:30:57"),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = run(&refs, "mlflow.uvicorn_access");
        let times: Vec<String> = out
            .iter()
            .map(|o| match o {
                Output::Event(e) => format!("{} {}", e.dataset().unwrap(), e.timestamp().unwrap()),
                Output::Dead(d) => format!("dead {}", d.reason),
            })
            .collect();
        assert_eq!(times[0], "mlflow.access 2026-11-30T00:30:56Z");
        assert_eq!(times[1], "mlflow.access 2026-11-30T00:30:56Z");
        assert_eq!(times[2], "mlflow.access 2026-11-30T00:30:57Z");
        // Month 13 is not taken from the cache: the line matches no pattern
        // and becomes a message event whose time is inferred.
        let Output::Event(last) = &out[3] else {
            panic!("{:?}", out[3])
        };
        assert_eq!(
            last.get("tags").and_then(Value::as_str),
            Some(TAG_TIMESTAMP_INFERRED)
        );
        assert!(last.get("http.response.status_code").is_none());
    }
}
