//! `mlsoc rules check` and `mlsoc eval`: Sigma rules over files of JSON
//! events, exactly as given.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use detections::{Engine, ErrorKind, Hit, Limits, Loader, Loading, Placeholders};

use crate::{EvalArgs, Exit, PlaceholderArgs, RuleArgs, RulesCheckArgs};

/// The placeholder values: the rule pack's defaults, replaced name by name
/// by the files given (in order), then by `--placeholder` flags.
pub fn placeholders(args: &PlaceholderArgs) -> anyhow::Result<Placeholders> {
    let mut out = detections::pack::default_placeholders()
        .map_err(|e| anyhow::Error::new(Exit(2)).context(format!("rule pack: {e}")))?;
    for f in &args.placeholders_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))
            .map_err(|e| e.context(Exit(2)))?;
        let map = detections::pack::parse_placeholders(&f.display().to_string(), &text)
            .map_err(|e| anyhow::Error::new(Exit(2)).context(e.to_string()))?;
        out.extend(map);
    }
    let mut flags = Placeholders::new();
    for p in &args.placeholder {
        let Some((name, values)) = p.split_once('=') else {
            return Err(anyhow::Error::new(Exit(2)).context(format!(
                "--placeholder `{p}`: expected NAME=VALUE[,VALUE...]"
            )));
        };
        flags
            .entry(name.trim_matches('%').to_string())
            .or_default()
            .extend(values.split(',').map(str::to_string));
    }
    out.extend(flags);
    Ok(out)
}

pub fn load(args: &RuleArgs) -> anyhow::Result<Loading> {
    load_with(args, Vec::new())
}

/// Loads rules through processing pipelines: the paths given, or the
/// compiled-in rule pack when there are none.
pub fn load_with(args: &RuleArgs, pipelines: Vec<detections::Pipeline>) -> anyhow::Result<Loading> {
    let loader = Loader::new(placeholders(&args.placeholders)?).with_pipelines(pipelines);
    if args.rules.is_empty() {
        return Ok(detections::pack::load(&loader));
    }
    for p in &args.rules {
        if !p.exists() {
            return Err(anyhow::Error::new(Exit(2))
                .context(format!("rules path {} does not exist", p.display())));
        }
    }
    Ok(loader.load_paths(&args.rules))
}

pub fn check(args: RulesCheckArgs) -> anyhow::Result<ExitCode> {
    let loading = load(&RuleArgs {
        rules: args.paths,
        placeholders: args.placeholders,
    })?;
    let files = loading.files;
    let (rules, correlations, filters) = (
        loading.rules.len(),
        loading.correlations.len(),
        loading.filters.len(),
    );
    let mut errors = loading.errors.clone();
    // Filters and correlations must name loaded rules.
    let (_, unresolved) = Engine::build(loading);
    errors.extend(unresolved);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in &errors {
        writeln!(out, "{e}")?;
    }
    let refused = errors
        .iter()
        .filter(|e| e.kind == ErrorKind::Placeholder)
        .count();
    eprintln!(
        "mlsoc: {files} files, {rules} rules, {correlations} correlations and {filters} filters loaded, {} errors ({refused} for placeholders without values)",
        errors.len(),
    );
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let loading = load(&args.rules)?;
    let mut errors = loading.errors.clone();
    let (engine, unresolved) = Engine::build(loading);
    errors.extend(unresolved);
    report_load_errors(&errors);
    let mut session = engine.session(Limits::default());
    let mut hits = Vec::new();
    let input: Box<dyn BufRead> = match args.input.as_deref() {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p == std::path::Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p)
                .with_context(|| format!("cannot read {}", p.display()))
                .map_err(|e| e.context(Exit(3)))?,
        )),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut events, mut bad, mut matches) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let mut reader = input;
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .context("cannot read the events")
            .map_err(|e| e.context(Exit(3)))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => {
                bad += 1;
                eprintln!("mlsoc: line {line_no}: not UTF-8, skipped");
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let ev = match schema::Event::from_json(&schema::Str::from(text)) {
            Ok(ev) => ev,
            Err(e) => {
                bad += 1;
                eprintln!("mlsoc: line {line_no}: not a JSON object ({e}), skipped");
                continue;
            }
        };
        events += 1;
        hits.clear();
        session.process(&engine, &ev, line_no, &mut hits);
        for h in &hits {
            matches += 1;
            let rec = match h {
                Hit::Rule(i) => {
                    let r = &engine.rules()[*i].rule;
                    serde_json::json!({
                        "rule_id": r.id,
                        "rule_title": r.title,
                        "level": r.level.map(|l| l.as_str()),
                        "line": line_no,
                    })
                }
                Hit::Correlation(m) => {
                    let c = engine.correlation(m.correlation);
                    serde_json::json!({
                        "rule_id": c.id,
                        "rule_title": c.title,
                        "level": c.level.map(|l| l.as_str()),
                        "correlation": c.kind.as_str(),
                        "group": m.group.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                        "value": m.value,
                        "line": line_no,
                        "lines": m.lines,
                    })
                }
            };
            writeln!(out, "{rec}").map_err(|e| {
                anyhow::Error::new(e)
                    .context(Exit(4))
                    .context("cannot write matches")
            })?;
        }
    }
    out.flush()
        .map_err(|e| anyhow::Error::new(e).context(Exit(4)))?;
    eprintln!(
        "mlsoc: {} rules, {events} events, {matches} matches, {bad} lines skipped",
        engine.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports rules that were not loaded on stderr: errors one by one, rules
/// refused for placeholders without values in one line (they are expected
/// with a public corpus; `mlsoc rules check` lists them).
pub fn report_load_errors(errors: &[detections::RuleError]) {
    let mut refused = 0;
    for e in errors {
        if e.kind == ErrorKind::Placeholder {
            refused += 1;
        } else {
            eprintln!("mlsoc: rule not loaded: {e}");
        }
    }
    if refused > 0 {
        eprintln!(
            "mlsoc: {refused} rules not loaded: their `expand` placeholders have no values (give them with --placeholder or --placeholders; `mlsoc rules check` lists them)"
        );
    }
}
