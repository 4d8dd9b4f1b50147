//! `mlsoc rules profile`: what each rule costs on given logs.
//!
//! The logs are normalized as `hunt` does (formats detected, every core),
//! each event is evaluated with the clock read around every rule the
//! prefilter lets through ([`Engine::eval_profiled`]), and the rules that
//! took the most time are listed with their evaluations and matches,
//! beside the detection time per event of each dataset. A rule that is
//! evaluated on most events and matches none is the one to rewrite (a
//! literal the prefilter can use) or to leave out of the daemon.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use comfy_table::{CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use detections::prefilter::Scratch;
use detections::{Engine, RuleCost};
use normalizer::Output;
use schema::Value;

use crate::hunt_cmd::{build_engine, printable};
use crate::normalize_cmd::{drive, prepare_for, summary_line};
use crate::{Exit, InputArgs, PipelineArgs, RuleArgs};

#[derive(Args)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub pipelines: PipelineArgs,
    /// Rules listed in the table, the most expensive first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,
    /// Write one JSON document (every rule evaluated at least once, and the datasets) instead of
    /// tables.
    #[arg(long)]
    pub json: bool,
}

/// Detection cost of one dataset's events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DatasetCost {
    events: u64,
    /// Time of whole evaluations: routing, prefilter and rules.
    nanos: u64,
    /// Rule evaluations, and their share of `nanos`.
    evaluations: u64,
    rule_nanos: u64,
}

impl DatasetCost {
    fn add(&mut self, o: &DatasetCost) {
        self.events += o.events;
        self.nanos += o.nanos;
        self.evaluations += o.evaluations;
        self.rule_nanos += o.rule_nanos;
    }
}

/// What one batch of events cost: the rules evaluated, and per dataset.
#[derive(Default)]
struct Partial {
    rules: Vec<(usize, RuleCost)>,
    datasets: Vec<(String, DatasetCost)>,
}

/// A worker's memory between batches.
#[derive(Default)]
struct Worker {
    scratch: Scratch,
    costs: Vec<RuleCost>,
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// Evaluates a batch, timing every rule; returns the costs and leaves the
/// worker's counters at zero.
fn profile_batch(engine: &Engine, outs: Vec<Output>) -> Partial {
    WORKER.with(|w| {
        let w = &mut *w.borrow_mut();
        let mut part = Partial::default();
        let mut last = usize::MAX;
        for o in outs {
            let Output::Event(ev) = o else { continue };
            let dataset = ev
                .get("event.dataset")
                .and_then(Value::to_text)
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let started = Instant::now();
            let rules = engine.eval_profiled(&ev, &mut w.scratch, &mut w.costs, &mut |_| {});
            let nanos = started.elapsed().as_nanos() as u64;
            let d = if last < part.datasets.len() && part.datasets[last].0 == dataset {
                last
            } else {
                match part.datasets.iter().position(|(n, _)| *n == dataset) {
                    Some(i) => i,
                    None => {
                        part.datasets.push((dataset, DatasetCost::default()));
                        part.datasets.len() - 1
                    }
                }
            };
            last = d;
            part.datasets[d].1.add(&DatasetCost {
                events: 1,
                nanos,
                evaluations: rules.evaluations,
                rule_nanos: rules.nanos,
            });
        }
        for (i, c) in w.costs.iter_mut().enumerate() {
            if c.evaluations > 0 {
                part.rules.push((i, std::mem::take(c)));
            }
        }
        part
    })
}

pub fn run(args: ProfileArgs) -> anyhow::Result<ExitCode> {
    let engine = build_engine(&args.rules, &args.pipelines)?;
    let mut prepared = prepare_for(&args.input, &engine.field_paths())?;
    let engine_ref = &engine;
    let mut rules = vec![RuleCost::default(); engine.len()];
    let mut datasets: HashMap<String, DatasetCost> = HashMap::new();
    let drive_error = drive(
        &mut prepared,
        |outs| profile_batch(engine_ref, outs),
        |part| {
            for (i, c) in part.rules {
                let r = &mut rules[i];
                r.evaluations += c.evaluations;
                r.matches += c.matches;
                r.nanos += c.nanos;
            }
            for (name, c) in part.datasets {
                datasets.entry(name).or_default().add(&c);
            }
            Ok(())
        },
    );
    if let Some(e) = drive_error {
        return Err(anyhow::Error::new(Exit(4)).context(format!("cannot process input: {e}")));
    }
    let report = Report::new(&rules, datasets);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = if args.json {
        report.write_json(&engine, &mut out)
    } else {
        report.write_tables(&engine, args.top, &mut out)
    };
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Ok(ExitCode::SUCCESS);
        }
        return Err(anyhow::Error::new(Exit(4)).context(format!("cannot write output: {e}")));
    }
    eprintln!("{}", summary_line(&prepared.summary));
    if !prepared.summary.input_errors.is_empty() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// The merged costs, in report order.
struct Report<'a> {
    /// Rules evaluated at least once, the most expensive first (ties by
    /// rule order).
    ranked: Vec<(usize, &'a RuleCost)>,
    /// Datasets, the most expensive first.
    datasets: Vec<(String, DatasetCost)>,
    total: DatasetCost,
}

impl<'a> Report<'a> {
    fn new(rules: &'a [RuleCost], datasets: HashMap<String, DatasetCost>) -> Self {
        let mut ranked: Vec<(usize, &RuleCost)> = rules
            .iter()
            .enumerate()
            .filter(|(_, c)| c.evaluations > 0)
            .collect();
        ranked.sort_by(|a, b| b.1.nanos.cmp(&a.1.nanos).then(a.0.cmp(&b.0)));
        let mut datasets: Vec<(String, DatasetCost)> = datasets.into_iter().collect();
        datasets.sort_by(|a, b| b.1.nanos.cmp(&a.1.nanos).then(a.0.cmp(&b.0)));
        let mut total = DatasetCost::default();
        for (_, d) in &datasets {
            total.add(d);
        }
        Report {
            ranked,
            datasets,
            total,
        }
    }

    fn write_tables(&self, engine: &Engine, top: usize, out: &mut impl Write) -> io::Result<()> {
        let t = &self.total;
        writeln!(
            out,
            "{} events: detection {:.2} µs per event, of which rule evaluations {:.2} µs ({:.1} per event); the rest is routing and the prefilter",
            t.events,
            per(t.nanos, t.events) / 1000.0,
            per(t.rule_nanos, t.events) / 1000.0,
            per(t.evaluations, t.events),
        )?;
        writeln!(
            out,
            "{} of {} rules evaluated at least once; {} never",
            self.ranked.len(),
            engine.len(),
            engine.len() - self.ranked.len()
        )?;
        if !self.datasets.is_empty() {
            let mut table = table([
                "dataset",
                "events",
                "µs/event",
                "rules µs/event",
                "evaluations/event",
            ]);
            for (name, d) in &self.datasets {
                table.add_row([
                    printable(if name.is_empty() { "(none)" } else { name }, 60),
                    d.events.to_string(),
                    format!("{:.2}", per(d.nanos, d.events) / 1000.0),
                    format!("{:.2}", per(d.rule_nanos, d.events) / 1000.0),
                    format!("{:.1}", per(d.evaluations, d.events)),
                ]);
            }
            right_align(&mut table, 1..5);
            writeln!(out, "{table}")?;
        }
        if self.ranked.is_empty() || top == 0 {
            return Ok(());
        }
        let mut table = table([
            "share",
            "ms",
            "evaluations",
            "matches",
            "ns/eval",
            "rule",
            "file",
        ]);
        for (i, c) in self.ranked.iter().take(top) {
            let l = &engine.rules()[*i];
            table.add_row([
                format!("{:.1}%", 100.0 * per(c.nanos, t.rule_nanos)),
                format!("{:.1}", c.nanos as f64 / 1e6),
                c.evaluations.to_string(),
                c.matches.to_string(),
                format!("{:.0}", per(c.nanos, c.evaluations)),
                printable(&l.rule.title, 60),
                printable(
                    &format!("{}:{}", l.origin.path.display(), l.origin.line),
                    80,
                ),
            ]);
        }
        right_align(&mut table, 0..5);
        writeln!(out, "{table}")
    }

    fn write_json(&self, engine: &Engine, out: &mut impl Write) -> io::Result<()> {
        let rules: Vec<serde_json::Value> = self
            .ranked
            .iter()
            .map(|(i, c)| {
                let l = &engine.rules()[*i];
                serde_json::json!({
                    "title": l.rule.title,
                    "id": l.rule.id,
                    "path": l.origin.path.display().to_string(),
                    "line": l.origin.line,
                    "evaluations": c.evaluations,
                    "matches": c.matches,
                    "nanos": c.nanos,
                })
            })
            .collect();
        let datasets: Vec<serde_json::Value> = self
            .datasets
            .iter()
            .map(|(name, d)| {
                serde_json::json!({
                    "dataset": name,
                    "events": d.events,
                    "nanos": d.nanos,
                    "rule_nanos": d.rule_nanos,
                    "evaluations": d.evaluations,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "events": self.total.events,
            "nanos": self.total.nanos,
            "rule_nanos": self.total.rule_nanos,
            "evaluations": self.total.evaluations,
            "rules_loaded": engine.len(),
            "datasets": datasets,
            "rules": rules,
        });
        serde_json::to_writer(&mut *out, &doc)?;
        writeln!(out)
    }
}

fn per(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// An empty table with the report's style and these column headers.
fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

fn right_align(table: &mut Table, cols: std::ops::Range<usize>) {
    for c in cols {
        if let Some(col) = table.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
}
