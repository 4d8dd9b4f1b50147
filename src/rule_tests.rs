//! `mlsoc rules test`: runs the test cases written beside the rules
//! (`<rule>.tests.yml`, format in docs/rule-tests.md). Each case feeds raw
//! log lines (a range of a captured log file, or lines written inline)
//! through the normalizer and the whole rule set, as `mlsoc hunt` does, and
//! checks that one rule or correlation fires (or does not), optionally an
//! exact number of times. Every rule that alerts must have at least one
//! case of each kind.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use detections::prefilter::Scratch;
use detections::{Engine, Hit, Limits, Loader, Placeholders};
use normalizer::{Normalizer, Options, Output, Registry};
use schema::{RawRecord, Source, Timestamp};
use serde::Deserialize;

use crate::{Exit, FormatFiles, PlaceholderArgs, load_registry, rules_cmd};

#[derive(Args)]
pub struct TestArgs {
    /// Rule directories; their `*.tests.yml` files hold the cases.
    #[arg(value_name = "DIR", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub placeholders: PlaceholderArgs,
    #[command(flatten)]
    pub formats: FormatFiles,
    /// List every case, not only the failing ones.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Match,
    NoMatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// Id or name of the rule or correlation under test.
    rule: String,
    expect: Expect,
    /// Exact number of matches (rule: matching events; correlation: times it fired).
    alerts: Option<u64>,
    /// A log file, relative to the tests file.
    source: Option<PathBuf>,
    /// 1-based inclusive line ranges of `source` or `logs`: "1-3,7".
    lines: Option<String>,
    /// Format name, bypassing detection.
    format: Option<String>,
    /// Raw log lines written in the case.
    logs: Option<String>,
    /// Placeholder values replacing the defaults for this case.
    #[serde(default)]
    placeholders: BTreeMap<String, Vec<String>>,
}

/// What a case is about, resolved in the engine.
#[derive(Clone, Copy)]
enum Target {
    Rule(usize),
    Correlation(usize),
}

struct CaseResult {
    file: PathBuf,
    name: String,
    expect: Expect,
    /// None when the case could not run; the error is in `problem`.
    problem: Option<String>,
}

/// Parses "1-3,7,9-12" into inclusive ranges.
fn parse_ranges(s: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u64 = a
            .parse()
            .map_err(|_| format!("`lines`: `{part}` is not a line number or a range a-b"))?;
        let b: u64 = b
            .parse()
            .map_err(|_| format!("`lines`: `{part}` is not a line number or a range a-b"))?;
        if a == 0 || b < a {
            return Err(format!(
                "`lines`: `{part}`: lines count from 1 and a range goes upwards"
            ));
        }
        out.push((a, b));
    }
    if out.is_empty() {
        return Err("`lines` is empty".into());
    }
    Ok(out)
}

/// The engine for one placeholder configuration.
struct Built {
    engine: Engine,
    by_key: HashMap<String, Target>,
}

fn build(dirs: &[PathBuf], placeholders: Placeholders) -> (Built, Vec<String>) {
    let loader = Loader::new(placeholders).with_pipelines(detections::Pipeline::builtin());
    let loading = loader.load_paths(dirs);
    let mut errors: Vec<String> = loading.errors.iter().map(|e| e.to_string()).collect();
    let (engine, unresolved) = Engine::build(loading);
    errors.extend(unresolved.iter().map(|e| e.to_string()));
    let mut by_key = HashMap::new();
    for (i, l) in engine.rules().iter().enumerate() {
        for k in [&l.rule.id, &l.rule.name].into_iter().flatten() {
            by_key.insert(k.clone(), Target::Rule(i));
        }
    }
    for (i, (c, _)) in engine.correlations().enumerate() {
        for k in [&c.id, &c.name].into_iter().flatten() {
            by_key.insert(k.clone(), Target::Correlation(i));
        }
    }
    (Built { engine, by_key }, errors)
}

/// A raw record: its line number, byte offset and bytes.
type Record = (u64, u64, Vec<u8>);

/// The raw records of a case, in order, with their line numbers.
fn records(case: &Case, base: &Path) -> Result<(Arc<Source>, Vec<Record>), String> {
    let (name, text) = match (&case.source, &case.logs) {
        (Some(_), Some(_)) => return Err("give `source` or `logs`, not both".into()),
        (None, None) => {
            return Err("give the log lines: `source` (a file) or `logs` (inline)".into());
        }
        (Some(src), None) => {
            // Opened as `hunt` opens inputs: gzip files are decompressed.
            let path = base.join(src);
            let mut opened =
                collector::file::open(&path).map_err(|e| format!("cannot read `source`: {e}"))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut opened.reader, &mut bytes)
                .map_err(|e| format!("cannot read `source` {}: {e}", path.display()))?;
            (path.display().to_string(), bytes)
        }
        (None, Some(logs)) => (
            format!("<inline logs of {}: {}>", base.display(), case.name),
            logs.clone().into_bytes(),
        ),
    };
    let source = Arc::new(Source {
        kind: "file",
        name,
        format: case.format.clone(),
    });
    let wanted = case.lines.as_deref().map(parse_ranges).transpose()?;
    // A whole-file JSON document (a CloudTrail `Records` file) is one record.
    if wanted.is_none() && collector::file::framing_of(&text) == collector::file::Framing::Document
    {
        return Ok((source, vec![(1, 0, text)]));
    }
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut n = 0u64;
    for raw in text.split_inclusive(|&b| b == b'\n') {
        n += 1;
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if wanted
            .as_ref()
            .is_none_or(|w| w.iter().any(|&(a, b)| (a..=b).contains(&n)))
        {
            out.push((n, offset, line.to_vec()));
        }
        offset += raw.len() as u64;
    }
    if let Some(w) = &wanted
        && let Some(&(_, last)) = w.iter().max_by_key(|r| r.1)
        && last > n
    {
        return Err(format!(
            "`lines` goes to line {last}, the input has {n} lines"
        ));
    }
    Ok((source, out))
}

/// Runs one case; `Ok(())` when it holds.
fn run_case(case: &Case, base: &Path, norm: &Normalizer, built: &Built) -> Result<(), String> {
    let target = *built.by_key.get(&case.rule).ok_or_else(|| {
        format!(
            "`rule: {}` names no loaded rule or correlation (give its id or name)",
            case.rule
        )
    })?;
    if let Some(f) = &case.format
        && norm.registry().index(f).is_none()
    {
        return Err(format!("unknown format `{f}` (see `mlsoc formats`)"));
    }
    let (source, recs) = records(case, base)?;
    let mut stream = norm.stream(source.clone(), None);
    let mut outs = Vec::new();
    let mut line_of_offset = HashMap::new();
    let received = Timestamp::now();
    for (line, offset, bytes) in recs {
        line_of_offset.insert(offset, line);
        stream.push(
            RawRecord {
                bytes: bytes.into(),
                source: source.clone(),
                offset,
                line,
                received,
                overflow_len: None,
            },
            &mut outs,
        );
    }
    stream.finish(&mut outs);
    let engine = &built.engine;
    let mut session = engine.session(Limits::default());
    let mut scratch = Scratch::default();
    let (mut events, mut matched_lines, mut fired) = (0u64, Vec::new(), 0u64);
    let mut dead = Vec::new();
    let mut rule_hits = Vec::new();
    let mut hits = Vec::new();
    for o in outs {
        let ev = match o {
            Output::Event(ev) => ev,
            Output::Dead(d) => {
                dead.push(format!("line {}: {}", d.line, d.reason));
                continue;
            }
        };
        events += 1;
        rule_hits.clear();
        engine.eval_with(&ev, &mut scratch, &mut |i| rule_hits.push(i));
        let line = ev
            .get("log.offset")
            .and_then(|v| v.as_i64())
            .and_then(|o| line_of_offset.get(&(o as u64)).copied())
            .unwrap_or(0);
        if let Target::Rule(r) = target
            && rule_hits.contains(&r)
        {
            matched_lines.push(line);
        }
        hits.clear();
        session.process_hits(engine, &ev, 0, events, &rule_hits, &mut hits);
        if let Target::Correlation(c) = target {
            for h in &hits {
                if let Hit::Correlation(m) = h
                    && m.correlation == c
                {
                    fired += 1;
                    matched_lines.push(line);
                }
            }
        }
    }
    if !dead.is_empty() {
        return Err(format!(
            "{} line(s) could not be normalized (a test case should hold events): {}",
            dead.len(),
            dead.join("; ")
        ));
    }
    if events == 0 {
        return Err("the case holds no event".into());
    }
    let count = match target {
        Target::Rule(_) => matched_lines.len() as u64,
        Target::Correlation(_) => fired,
    };
    let at = |v: &[u64]| {
        let shown: Vec<String> = v.iter().take(12).map(u64::to_string).collect();
        let more = if v.len() > 12 { ", ..." } else { "" };
        format!("{}{more}", shown.join(", "))
    };
    match case.expect {
        Expect::Match if count == 0 => {
            Err(format!("expected a match, got none over {events} events"))
        }
        Expect::Match => match case.alerts {
            Some(n) if n != count => Err(format!(
                "expected {n} matches, got {count} (at lines {})",
                at(&matched_lines)
            )),
            _ => Ok(()),
        },
        Expect::NoMatch if count > 0 => Err(format!(
            "expected no match, got {count} (at lines {})",
            at(&matched_lines)
        )),
        Expect::NoMatch => Ok(()),
    }
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    for p in &args.paths {
        if !p.exists() {
            return Err(anyhow::Error::new(Exit(2))
                .context(format!("rules path {} does not exist", p.display())));
        }
    }
    let defaults = rules_cmd::placeholders(&args.placeholders)?;
    let reg: Registry = load_registry(&args.formats)?;
    let norm = Normalizer::new(reg, Options::default());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    let (base, load_errors) = build(&args.paths, defaults.clone());
    let mut failed = false;
    for e in &load_errors {
        writeln!(out, "ERROR  {e}")?;
        failed = true;
    }

    let mut files = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            files.extend(
                detections::loader::files_under(p, true)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            );
        } else if detections::loader::is_test_file(p) {
            files.push(p.clone());
        }
    }
    // Results by target key (rule or correlation index).
    let mut results: BTreeMap<(u8, usize), Vec<CaseResult>> = BTreeMap::new();
    let mut others: Vec<CaseResult> = Vec::new();
    let mut engines: HashMap<String, Built> = HashMap::new();
    let (mut cases_run, mut cases_failed) = (0usize, 0usize);
    for f in &files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let parsed: TestFile = match serde_norway::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                writeln!(out, "ERROR  {}: not a valid tests file: {e}", f.display())?;
                failed = true;
                continue;
            }
        };
        let dir = f.parent().unwrap_or(Path::new("."));
        for case in parsed.cases {
            cases_run += 1;
            let built = if case.placeholders.is_empty() {
                &base
            } else {
                let key = format!("{:?}", case.placeholders);
                if !engines.contains_key(&key) {
                    let mut ph = defaults.clone();
                    ph.extend(case.placeholders.clone());
                    let (b, _) = build(&args.paths, ph);
                    engines.insert(key.clone(), b);
                }
                &engines[&key]
            };
            let outcome = run_case(&case, dir, &norm, built);
            let r = CaseResult {
                file: f.clone(),
                name: case.name.clone(),
                expect: case.expect,
                problem: outcome.err(),
            };
            if r.problem.is_some() {
                cases_failed += 1;
            }
            match base.by_key.get(&case.rule) {
                Some(Target::Rule(i)) => results.entry((0, *i)).or_default().push(r),
                Some(Target::Correlation(i)) => results.entry((1, *i)).or_default().push(r),
                None => others.push(r),
            }
        }
    }

    // Report per alerting rule and correlation, in file order.
    let engine = &base.engine;
    let mut rows: Vec<(PathBuf, usize, (u8, usize), String)> = Vec::new();
    for (i, l) in engine.rules().iter().enumerate() {
        if engine.rule_alerts(i) || results.contains_key(&(0, i)) {
            rows.push((
                l.origin.path.clone(),
                l.origin.line,
                (0, i),
                l.rule.title.clone(),
            ));
        }
    }
    for (i, (c, o)) in engine.correlations().enumerate() {
        if engine.correlation_alerts(i) || results.contains_key(&(1, i)) {
            rows.push((o.path.clone(), o.line, (1, i), c.title.clone()));
        }
    }
    rows.sort();
    let (mut passed_rules, mut bad_rules) = (0usize, 0usize);
    for (path, line, key, title) in &rows {
        let rs = results.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let alerts = match key {
            (0, i) => engine.rule_alerts(*i),
            (_, i) => engine.correlation_alerts(*i),
        };
        let has = |e: Expect| rs.iter().any(|r| r.expect == e);
        let mut missing = Vec::new();
        if alerts && !has(Expect::Match) {
            missing.push("a `match` case");
        }
        if alerts && !has(Expect::NoMatch) {
            missing.push("a `no_match` case");
        }
        let bad = rs.iter().filter(|r| r.problem.is_some()).count();
        let status = if bad > 0 {
            "FAIL"
        } else if !missing.is_empty() {
            "UNTESTED"
        } else {
            "PASS"
        };
        if status == "PASS" {
            passed_rules += 1;
        } else {
            bad_rules += 1;
            failed = true;
        }
        let ok = rs.len() - bad;
        writeln!(
            out,
            "{status:<8} {title} ({}:{line}): {ok}/{} cases",
            path.display(),
            rs.len()
        )?;
        if !missing.is_empty() {
            writeln!(out, "         missing {}", missing.join(" and "))?;
        }
        for r in rs {
            match &r.problem {
                Some(p) => writeln!(out, "         FAIL {} ({}): {p}", r.name, r.file.display())?,
                None if args.verbose => writeln!(out, "         ok   {}", r.name)?,
                None => {}
            }
        }
    }
    for r in &others {
        failed = true;
        writeln!(
            out,
            "FAIL     case {} ({}): {}",
            r.name,
            r.file.display(),
            r.problem.as_deref().unwrap_or("names no rule")
        )?;
    }
    out.flush()?;
    eprintln!(
        "mlsoc: {} test files, {cases_run} cases, {cases_failed} failed; {passed_rules} rules pass, {bad_rules} fail or are untested; {} load errors",
        files.len(),
        load_errors.len()
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ranges;

    #[test]
    fn line_ranges() {
        assert_eq!(
            parse_ranges("1-3, 7,9-9").unwrap(),
            vec![(1, 3), (7, 7), (9, 9)]
        );
        assert!(parse_ranges("0-3").is_err());
        assert!(parse_ranges("5-3").is_err());
        assert!(parse_ranges("a").is_err());
        assert!(parse_ranges("").is_err());
    }
}
