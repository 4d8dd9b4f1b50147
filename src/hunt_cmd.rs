//! `mlsoc hunt`: normalize log files (formats detected) and run Sigma
//! rules over the events, printing a table of hits or NDJSON alerts.
//!
//! Normalization and rule evaluation run on every core (detection on the
//! batches of events, beside serialization in `normalize`). The events that
//! matched a rule are then put in time order (stable: input order breaks
//! ties) and correlations run over them on one thread, so a correlation
//! across several files sees one timeline and the results do not depend on
//! the scheduling. Alerts come out in time order.

use std::cell::RefCell;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use detections::prefilter::Scratch;
use detections::{Engine, Hit, Level, Limits, alert};
use normalizer::Output;
use schema::{Event, Value};

use crate::normalize_cmd::{drive, prepare_for, summary_line};
use crate::{Exit, HuntArgs, PipelineArgs, RuleArgs, rules_cmd};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Makes attacker-controlled text safe to print on a terminal: control
/// characters (escape sequences included) are shown escaped.
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 8));
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn text(ev: &Event, path: &str) -> Option<String> {
    ev.get(path)
        .and_then(Value::to_text)
        .map(|c| c.into_owned())
}

/// The fields an analyst reads first, as `key=value` pairs.
fn details(ev: &Event) -> String {
    let mut parts = Vec::new();
    for (label, path) in [
        ("src", "source.ip"),
        ("user", "user.name"),
        ("api", "mlops.api"),
        ("model", "mlops.model.name"),
        ("job", "mlops.job.id"),
        ("cmd", "process.command_line"),
        ("url", "url.original"),
    ] {
        if let Some(v) = text(ev, path) {
            parts.push(format!("{label}={}", printable(&v, 60)));
        }
    }
    parts.join(" ")
}

/// Turns matched events into alerts: the table rows or NDJSON lines, and
/// the counts of the summary.
struct Emit {
    json: bool,
    rows: Vec<[String; 4]>,
    by_level: [u64; 5],
    alerts: u64,
    worst: Option<Level>,
    hits: Vec<Hit>,
    error: Option<io::Error>,
    /// Batches of matched events processed.
    batches: usize,
}

impl Emit {
    /// Puts the pending events in time order (input order breaks ties),
    /// runs the correlations over them and writes their alerts.
    fn process(
        &mut self,
        engine: &Engine,
        session: &mut detections::Session,
        pending: &mut Vec<(i64, u64, Event, Vec<usize>)>,
        out: &mut impl Write,
    ) {
        if pending.is_empty() {
            return;
        }
        self.batches += 1;
        pending.sort_by_key(|p| (p.0, p.1));
        for (_, record, ev, rule_hits) in pending.drain(..) {
            if self.error.is_some() {
                continue;
            }
            self.hits.clear();
            session.process_hits(engine, &ev, 0, record, &rule_hits, &mut self.hits);
            for h in &self.hits {
                let (a, level) = match h {
                    Hit::Rule(i) => {
                        let r = &engine.rules()[*i].rule;
                        (alert::rule_alert(r, &ev), r.level)
                    }
                    Hit::Correlation(m) => {
                        let c = engine.correlation(m.correlation);
                        (alert::correlation_alert(c, m, &ev), c.level)
                    }
                };
                self.alerts += 1;
                if let Some(l) = level {
                    self.by_level[l as usize] += 1;
                    self.worst = self.worst.max(Some(l));
                }
                if self.json {
                    let mut buf = Vec::with_capacity(1024);
                    a.write_json(&mut buf);
                    buf.push(b'\n');
                    if let Err(e) = out.write_all(&buf) {
                        self.error = Some(e);
                        break;
                    }
                } else {
                    let time = a.timestamp().map(|t| t.to_rfc3339()).unwrap_or_default();
                    self.rows.push([
                        time,
                        level.map_or("-", |l| l.as_str()).to_string(),
                        printable(&text(&a, "rule.name").unwrap_or_default(), 70),
                        details(&ev),
                    ]);
                }
            }
        }
    }
}

/// Loads the rules through the pipelines (the built-in ones unless told
/// not to) and builds the engine; load errors are reported on stderr.
pub fn build_engine(rules: &RuleArgs, args: &PipelineArgs) -> anyhow::Result<Engine> {
    let mut pipelines = if args.no_builtin_pipelines {
        Vec::new()
    } else {
        detections::Pipeline::builtin()
    };
    for p in &args.pipeline {
        pipelines.push(detections::Pipeline::load(p).map_err(|e| {
            anyhow::Error::new(Exit(2)).context(format!("cannot load pipeline: {e}"))
        })?);
    }
    let loading = rules_cmd::load_with(rules, pipelines)?;
    let mut errors = loading.errors.clone();
    let (engine, unresolved) = Engine::build(loading);
    errors.extend(unresolved);
    rules_cmd::report_load_errors(&errors);
    if engine.is_empty() {
        return Err(anyhow::Error::new(Exit(2)).context("no rule could be loaded"));
    }
    Ok(engine)
}

pub fn run(args: HuntArgs) -> anyhow::Result<ExitCode> {
    let engine = build_engine(&args.rules, &args.pipelines)?;
    let fail_level = match &args.fail_level {
        None => None,
        Some(l) => Some(Level::parse(l).ok_or_else(|| {
            anyhow::Error::new(Exit(2)).context(format!(
                "--fail-level `{l}`: expected informational, low, medium, high or critical"
            ))
        })?),
    };
    let mut prepared = prepare_for(&args.input, &engine.field_paths())?;
    let engine_ref = &engine;
    let handle = |outs: Vec<Output>| -> Vec<(Event, Vec<usize>)> {
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            let mut found = Vec::new();
            for o in outs {
                if let Output::Event(ev) = o {
                    let mut hits = Vec::new();
                    engine_ref.eval_with(&ev, &mut scratch, &mut |i| hits.push(i));
                    if !hits.is_empty() {
                        found.push((ev, hits));
                    }
                }
            }
            found
        })
    };
    // Events with rule matches are gathered, then put in time order before
    // the correlations see them: the inputs are read file by file, and a
    // correlation over several logs (a job submitted in the dashboard log,
    // its entrypoint in the job's own log) needs one timeline. Events without
    // a timestamp take the time of the event before them. The buffer is
    // bounded: past --order-buffer matched events it is sorted and
    // processed, and later matches form the next batch.
    let max_pending = args.order_buffer as usize;
    let mut session = engine.session(Limits::default());
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut emit = Emit {
        json: args.json,
        rows: Vec::new(),
        by_level: [0u64; 5],
        alerts: 0,
        worst: None,
        hits: Vec::new(),
        error: None,
        batches: 0,
    };
    let mut pending: Vec<(i64, u64, Event, Vec<usize>)> = Vec::new();
    let mut record = 0u64;
    let mut last_ts = i64::MIN;
    let drive_error = drive(&mut prepared, handle, |batch| {
        for (ev, rule_hits) in batch {
            record += 1;
            let ts = ev.timestamp().map_or(last_ts, |t| t.0);
            last_ts = ts;
            pending.push((ts, record, ev, rule_hits));
        }
        if pending.len() >= max_pending {
            emit.process(engine_ref, &mut session, &mut pending, &mut out);
        }
        match emit.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    emit.process(engine_ref, &mut session, &mut pending, &mut out);
    let write_error = drive_error.or(emit.error.take());
    if emit.batches > 1 {
        eprintln!(
            "mlsoc: more than {max_pending} events matched (--order-buffer): they were put in time order in {} batches, so a correlation across files may miss events that fall in two batches",
            emit.batches
        );
    }
    let Emit {
        rows,
        by_level,
        alerts,
        worst,
        ..
    } = emit;
    if let Some(e) = write_error.or_else(|| out.flush().err()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(anyhow::Error::new(Exit(4)).context(format!("cannot write output: {e}")));
    }
    if !args.json {
        if rows.is_empty() {
            writeln!(out, "no detections")?;
        } else {
            let mut t = Table::new();
            t.load_style(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(["time", "level", "rule", "details"]);
            for r in rows {
                t.add_row(r);
            }
            writeln!(out, "{t}")?;
        }
        out.flush()?;
    }
    eprintln!("{}", summary_line(&prepared.summary));
    let unrouted = engine.unrouted();
    if unrouted > 0 {
        eprintln!(
            "mlsoc: {unrouted} of {} rules are for log sources no pipeline maps (Windows, Zeek, ...): they saw no event",
            engine.len()
        );
    }
    eprintln!(
        "mlsoc: {} rules and {} correlations, {alerts} alerts (critical {}, high {}, medium {}, low {}, informational {}); correlation state: {} groups, {} evicted",
        engine.len(),
        engine.correlations().count(),
        by_level[Level::Critical as usize],
        by_level[Level::High as usize],
        by_level[Level::Medium as usize],
        by_level[Level::Low as usize],
        by_level[Level::Informational as usize],
        session.groups(),
        session.stats().groups_evicted,
    );
    if !prepared.summary.input_errors.is_empty() {
        return Ok(ExitCode::from(3));
    }
    if let (Some(f), Some(w)) = (fail_level, worst)
        && w >= f
    {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("a\u{1b}[31mred\u{7}", 100),
            "a\\u{1b}[31mred\\u{7}"
        );
        assert_eq!(printable("line\nnext", 100), "line\\nnext");
        assert_eq!(printable("abc\u{202e}def", 100), "abc\\u{202e}def");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("modèle", 100), "modèle");
    }
}
