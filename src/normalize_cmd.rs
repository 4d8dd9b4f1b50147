//! `mlsoc normalize`: read inputs, normalize, write ECS NDJSON and
//! dead-letter NDJSON.
//!
//! Inputs are normalized in parallel (one worker per core, one input at a
//! time per worker); batches of events are serialized by a pool of
//! serializer threads, so that even a single large input uses every core;
//! and output is written in input order: each input streams its batches
//! through a small bounded channel, and the writer drains the channels in
//! order, waiting for each batch's bytes. Memory stays bounded by
//! (workers x channel size x batch size), whatever the size of the inputs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use collector::{Framing, LineSplitter};
use crossbeam_channel::{Receiver, Sender, bounded};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use normalizer::{Normalizer, Options, Output, Zone};
use schema::{DeadLetter, RawRecord, Source, Timestamp};
use serde::Serialize;

use crate::{Exit, InputArgs, NormalizeArgs, load_registry};

enum Input {
    File(PathBuf),
    Stdin,
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::File(p) => p.display().to_string(),
            Input::Stdin => "stdin".into(),
        }
    }
}

/// Serialized output of one batch: (events NDJSON, dead letters NDJSON).
type Serialized = (Vec<u8>, Vec<u8>);

/// A batch of outputs to handle, and where to send the result.
type Job<T> = (Vec<Output>, Sender<T>);

enum Msg<T> {
    /// The batch's result arrives on the receiver once a handler is done.
    Batch {
        bytes: Receiver<T>,
        progress: u64,
    },
    Done(InputReport),
}

/// Counts for one input.
#[derive(Debug, Default, Serialize)]
pub struct InputReport {
    pub source: String,
    /// The format chosen (detected or forced).
    pub format: Option<String>,
    pub lines: u64,
    pub events: u64,
    pub dead_letters: u64,
    /// Blank lines that belonged to no record.
    pub blank_lines: u64,
    pub by_dataset: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub inputs: usize,
    pub empty_inputs: usize,
    pub lines: u64,
    pub events: u64,
    pub dead_letters: u64,
    pub blank_lines: u64,
    pub by_dataset: BTreeMap<String, u64>,
    pub input_errors: Vec<String>,
    pub seconds: f64,
    pub per_input: Vec<InputReport>,
}

struct Settings {
    now: Option<Timestamp>,
    format: Option<String>,
    max_record: usize,
    max_document: usize,
}

/// Inputs opened for reading, with the normalizer and the run's counters.
pub(crate) struct Prepared {
    norm: Normalizer,
    inputs: Vec<Input>,
    settings: Settings,
    jobs: usize,
    pub progress: ProgressBar,
    pub summary: Summary,
    started: Instant,
}

/// Checks the input options, builds the normalizer and lists the inputs.
pub(crate) fn prepare(args: &InputArgs) -> anyhow::Result<Prepared> {
    prepare_for(args, &[])
}

/// [`prepare`] for events that detection rules will read: `read_paths`
/// are the rules' field paths (see `normalizer::Registry::read_also`).
pub(crate) fn prepare_for(args: &InputArgs, read_paths: &[String]) -> anyhow::Result<Prepared> {
    let started = Instant::now();
    let mut reg = load_registry(&args.formats)?;
    reg.read_also(read_paths);
    if let Some(f) = &args.format
        && reg.index(f).is_none()
    {
        return Err(anyhow::Error::new(Exit(2)).context(format!(
            "unknown format `{f}`; known formats: {}",
            reg.names().join(", ")
        )));
    }
    let zone = Zone::parse(&args.timezone).map_err(|e| anyhow::Error::new(Exit(2)).context(e))?;
    if args.max_record_bytes < 64 {
        return Err(anyhow::Error::new(Exit(2)).context("--max-record-bytes must be at least 64"));
    }
    let norm = Normalizer::new(
        reg,
        Options {
            max_record_bytes: args.max_record_bytes,
            zone,
            detect_lines: 32,
        },
    );

    let mut inputs = Vec::new();
    let mut input_errors = Vec::new();
    if args.paths.is_empty() {
        if io::stdin().is_terminal() {
            return Err(anyhow::Error::new(Exit(2))
                .context("no input: give files or directories, or pipe logs to stdin (`-`)"));
        }
        inputs.push(Input::Stdin);
    }
    for p in &args.paths {
        if p.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let (files, errors) = collector::walk::expand(p);
        inputs.extend(files.into_iter().map(Input::File));
        input_errors.extend(errors);
    }
    for e in &input_errors {
        eprintln!("mlsoc: {e}");
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Stdin => None,
        })
        .sum();
    let progress = if !args.no_progress && io::stderr().is_terminal() && total > 0 {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}")
                .expect("valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let settings = Settings {
        now: args.now,
        format: args.format.clone(),
        max_record: args.max_record_bytes,
        max_document: args.max_document_bytes,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    Ok(Prepared {
        norm,
        inputs,
        settings,
        jobs,
        progress,
        summary: Summary {
            input_errors,
            ..Summary::default()
        },
        started,
    })
}

/// Normalizes every input: workers normalize inputs in parallel, a pool
/// of threads runs `handle` on each batch of outputs (serialization,
/// detection), and `consume` receives the results in input order, batch
/// by batch. Stops early when `consume` fails, and returns that error.
pub(crate) fn drive<T: Send>(
    run: &mut Prepared,
    handle: impl Fn(Vec<Output>) -> T + Sync,
    mut consume: impl FnMut(T) -> io::Result<()>,
) -> Option<io::Error> {
    let jobs = run.jobs;
    let inputs = std::mem::take(&mut run.inputs);
    let n_inputs = inputs.len();
    let mut error: Option<io::Error> = None;
    let (norm, settings, progress, summary) =
        (&run.norm, &run.settings, &run.progress, &mut run.summary);
    let handle = &handle;
    std::thread::scope(|s| {
        let (work_tx, work_rx) = bounded::<(Input, Sender<Msg<T>>)>(jobs);
        let (order_tx, order_rx) = bounded::<Receiver<Msg<T>>>(jobs * 2);
        let (ser_tx, ser_rx) = bounded::<Job<T>>(jobs * 4);
        for _ in 0..jobs {
            let ser_rx = ser_rx.clone();
            s.spawn(move || {
                while let Ok((outs, reply)) = ser_rx.recv() {
                    let _ = reply.send(handle(outs));
                }
            });
        }
        drop(ser_rx);
        s.spawn(move || {
            for input in inputs {
                let (tx, rx) = bounded(8);
                if order_tx.send(rx).is_err() || work_tx.send((input, tx)).is_err() {
                    break;
                }
            }
        });
        for _ in 0..jobs {
            let work_rx = work_rx.clone();
            let ser_tx = ser_tx.clone();
            s.spawn(move || {
                while let Ok((input, tx)) = work_rx.recv() {
                    process(norm, settings, input, &tx, &ser_tx);
                }
            });
        }
        drop(work_rx);
        drop(ser_tx);
        'inputs: for rx in order_rx {
            for msg in rx {
                match msg {
                    Msg::Batch { bytes, progress: p } => {
                        let Ok(result) = bytes.recv() else {
                            break 'inputs;
                        };
                        if let Err(e) = consume(result) {
                            error = Some(e);
                            break 'inputs;
                        }
                        progress.inc(p);
                    }
                    Msg::Done(report) => {
                        summary.lines += report.lines;
                        summary.events += report.events;
                        summary.dead_letters += report.dead_letters;
                        summary.blank_lines += report.blank_lines;
                        if report.lines == 0 && report.error.is_none() {
                            summary.empty_inputs += 1;
                        }
                        for (k, v) in &report.by_dataset {
                            *summary.by_dataset.entry(k.clone()).or_insert(0) += v;
                        }
                        if let Some(e) = &report.error {
                            eprintln!("mlsoc: {e}");
                            summary.input_errors.push(e.clone());
                        }
                        summary.per_input.push(report);
                    }
                }
            }
        }
    });
    run.progress.finish_and_clear();
    run.summary.inputs = n_inputs;
    run.summary.seconds = run.started.elapsed().as_secs_f64();
    error
}

pub fn run(args: NormalizeArgs) -> anyhow::Result<ExitCode> {
    let mut prepared = prepare(&args.input)?;
    let to_stdout = args.output.as_os_str() == "-";
    let events_out: Box<dyn Write> = if to_stdout {
        Box::new(io::stdout().lock())
    } else {
        Box::new(create(&args.output)?)
    };
    let dlq_path = match &args.dlq {
        Some(p) => Some(p.clone()),
        None if to_stdout => None,
        None => Some(PathBuf::from(format!("{}.dlq", args.output.display()))),
    };
    let dlq_out: Box<dyn Write> = match &dlq_path {
        Some(p) if p.as_os_str() != "-" => Box::new(create(p)?),
        _ => Box::new(io::stderr()),
    };
    let mut events_out = BufWriter::with_capacity(1 << 20, events_out);
    let mut dlq_out = BufWriter::with_capacity(1 << 16, dlq_out);
    let mut write_error = drive(&mut prepared, serialize, |(events, dead)| {
        events_out
            .write_all(&events)
            .and_then(|()| dlq_out.write_all(&dead))
    });
    if write_error.is_none()
        && let Err(e) = events_out.flush().and_then(|()| dlq_out.flush())
    {
        write_error = Some(e);
    }
    if let Some(e) = write_error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(anyhow::Error::new(Exit(4)).context(format!("cannot write output: {e}")));
    }
    let summary = &prepared.summary;
    eprintln!("{}", summary_line(summary));
    if let Some(p) = &args.summary_json {
        let f = create(p)?;
        serde_json::to_writer_pretty(f, summary)
            .with_context(|| format!("cannot write {}", p.display()))
            .map_err(|e| e.context(Exit(4)))?;
    }
    if !summary.input_errors.is_empty() {
        return Ok(ExitCode::from(3));
    }
    if args.strict && summary.dead_letters > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn create(p: &Path) -> anyhow::Result<File> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::Error::new(Exit(4)).context(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    File::create(p).map_err(|e| {
        anyhow::Error::new(Exit(4)).context(format!("cannot create {}: {e}", p.display()))
    })
}

pub(crate) fn summary_line(s: &Summary) -> String {
    let mut datasets: Vec<(&String, &u64)> = s.by_dataset.iter().collect();
    datasets.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let per: Vec<String> = datasets.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "mlsoc: {} inputs ({} empty), {} lines -> {} events, {} dead-letter records, {} blank lines in {:.2}s{}{}",
        s.inputs,
        s.empty_inputs,
        s.lines,
        s.events,
        s.dead_letters,
        s.blank_lines,
        s.seconds,
        if per.is_empty() {
            String::new()
        } else {
            format!("; by dataset: {}", per.join(", "))
        },
        if s.input_errors.is_empty() {
            String::new()
        } else {
            format!("; {} inputs could not be read", s.input_errors.len())
        },
    )
}

struct Buffers<'a, T> {
    outs: Vec<Output>,
    report: InputReport,
    progress: u64,
    serializers: &'a Sender<Job<T>>,
}

const BATCH: usize = 1024;

pub(crate) fn serialize(outs: Vec<Output>) -> Serialized {
    let mut events = Vec::with_capacity(outs.len() * 1024);
    let mut dead = Vec::new();
    for o in outs {
        match o {
            Output::Event(e) => {
                e.write_json(&mut events);
                events.push(b'\n');
            }
            Output::Dead(d) => {
                serde_json::to_writer(&mut dead, &d).expect("Vec write");
                dead.push(b'\n');
            }
        }
    }
    (events, dead)
}

impl<T> Buffers<'_, T> {
    /// Hands the buffered outputs to a serializer when there are enough of
    /// them (or when `force`); false when the writer has gone away.
    fn send(&mut self, tx: &Sender<Msg<T>>, force: bool) -> bool {
        if !force && self.outs.len() < BATCH {
            return true;
        }
        if self.outs.is_empty() && self.progress == 0 {
            return true;
        }
        for o in &self.outs {
            match o {
                Output::Event(_) => self.report.events += 1,
                Output::Dead(_) => self.report.dead_letters += 1,
            }
        }
        let (reply, bytes) = bounded(1);
        let outs = std::mem::replace(&mut self.outs, Vec::with_capacity(BATCH + 64));
        if self.serializers.send((outs, reply)).is_err() {
            return false;
        }
        tx.send(Msg::Batch {
            bytes,
            progress: std::mem::take(&mut self.progress),
        })
        .is_ok()
    }
}

fn process<T>(
    norm: &Normalizer,
    settings: &Settings,
    input: Input,
    tx: &Sender<Msg<T>>,
    serializers: &Sender<Job<T>>,
) {
    let name = input.name();
    let mut b = Buffers {
        outs: Vec::with_capacity(BATCH + 64),
        report: InputReport {
            source: name.clone(),
            ..InputReport::default()
        },
        progress: 0,
        serializers,
    };
    let (reader, framing, size, modified, kind) = match &input {
        Input::File(p) => match collector::open(p) {
            Ok(o) => (o.reader, o.framing, o.size, o.modified, "file"),
            Err(e) => {
                b.report.error = Some(e.to_string());
                let _ = tx.send(Msg::Done(b.report));
                return;
            }
        },
        Input::Stdin => match collector::file::from_reader(Box::new(io::stdin())) {
            Ok((r, framing)) => (r, framing, 0, None, "stdin"),
            Err(e) => {
                b.report.error = Some(format!("stdin: {e}"));
                let _ = tx.send(Msg::Done(b.report));
                return;
            }
        },
    };
    let source = Arc::new(Source {
        kind,
        name: name.clone(),
        format: settings.format.clone(),
    });
    let reference = settings.now.or_else(|| {
        modified
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp(d.as_nanos() as i64))
    });
    let clock = || settings.now.unwrap_or_else(Timestamp::now);
    let mut stream = norm.stream(source.clone(), reference);
    let mut splitter = LineSplitter::new(reader, settings.max_record);
    let mut received = clock();
    let mut last_offset = 0u64;
    let raw = |line: collector::Line, received: Timestamp| RawRecord {
        bytes: line.bytes,
        source: source.clone(),
        offset: line.offset,
        line: line.number,
        received,
        overflow_len: line.overflow_len,
    };
    let mut alive = true;
    loop {
        let next = match framing {
            Framing::Lines => splitter.next_line(),
            Framing::Document => splitter.read_document(settings.max_document),
        };
        match next {
            Ok(Some(line)) => {
                b.report.lines += match framing {
                    Framing::Lines => 1,
                    Framing::Document => physical_lines(&line.bytes),
                };
                stream.push(raw(line, received), &mut b.outs);
                if b.outs.len() >= BATCH {
                    let off = splitter.offset();
                    if kind == "file" && size > 0 {
                        b.progress += off.saturating_sub(last_offset).min(size);
                    }
                    last_offset = off;
                    received = clock();
                    if !b.send(tx, false) {
                        alive = false;
                        break;
                    }
                }
                if framing == Framing::Document {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let at = splitter.offset();
                let partial = splitter.take_partial();
                let reason = format!("read error after byte {at}: {e}; the input ends here");
                let rec = match partial {
                    Some(line) => {
                        b.report.lines += 1;
                        raw(line, received)
                    }
                    None => RawRecord {
                        bytes: bytes::Bytes::new(),
                        source: source.clone(),
                        offset: at,
                        line: b.report.lines + 1,
                        received,
                        overflow_len: None,
                    },
                };
                b.outs.push(Output::dead(DeadLetter::new(
                    &rec,
                    stream.format_name(),
                    reason.clone(),
                )));
                b.report.error = Some(format!("{name}: {reason}"));
                break;
            }
        }
    }
    stream.finish(&mut b.outs);
    b.report.format = stream.format_name().map(str::to_owned);
    b.report.blank_lines = stream.blank_lines();
    b.report.by_dataset = stream.events_by_dataset();
    b.progress += size.saturating_sub(last_offset.min(size));
    if alive && b.send(tx, true) {
        let _ = tx.send(Msg::Done(b.report));
    }
}

/// Lines in a whole-file document: terminators, plus an unterminated last line.
fn physical_lines(b: &[u8]) -> u64 {
    let n = b.iter().filter(|&&c| c == b'\n').count() as u64;
    n + u64::from(!b.is_empty() && b.last() != Some(&b'\n'))
}
