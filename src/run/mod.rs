//! `mlsoc run`: the daemon. Sources read, the pipeline normalizes and
//! detects, sinks deliver; checkpoints advance only as sinks acknowledge.
//! `mlsoc validate`: check a configuration without starting anything.
//!
//! Shutdown: the first SIGINT/SIGTERM stops the sources; what was read is
//! normalized, detected and delivered, sinks finish, and sources write
//! their final checkpoints. If that takes longer than `shutdown_timeout`
//! (a sink is down), or on a second signal, sinks give up at once: records
//! not delivered keep their checkpoints behind them and are read again on
//! the next start.

pub mod api;
pub mod config;
pub mod pipeline;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use collector::SourceBatch;
use detections::Engine;
use normalizer::{Normalizer, Options, Zone};
use sinks::{DeadLetters, Sink, SinkContext};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Exit;
use config::{Config, DetectConfig, SinkKind, SourceConfig};

#[derive(Args)]
pub struct RunArgs {
    /// Configuration file (TOML; see docs/run.md). Without it, a built-in configuration tails
    /// the bundled samples and writes NDJSON under target/mlsoc/run/.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read every file source to its end, deliver everything, and exit (sets `stop_at_eof` on
    /// file sources; network sources are refused). Checkpoints are kept: the next run resumes.
    #[arg(long)]
    pub once: bool,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Configuration file to check; without it, the built-in configuration.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn load(path: Option<&PathBuf>) -> Result<Config, config::ConfigErrors> {
    match path {
        Some(p) => config::load_file(p),
        None => config::parse(config::DEFAULT, "<built-in>"),
    }
}

/// `mlsoc validate`: exit 0 when valid, 2 with every error listed.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let cfg = match load(args.config.as_ref()) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!("{} error(s)", errors.0.len());
            return Ok(ExitCode::from(2));
        }
    };
    // Rules are part of the configuration: load them as `run` would.
    let (engine, rule_errors) = build_engine(&cfg.detect)?;
    for e in &rule_errors {
        println!("{}: [detect] rule: {e}", cfg.origin);
    }
    println!(
        "{}: valid: {} source(s), {} sink(s), {} rule(s) and {} correlation(s){}",
        cfg.origin,
        cfg.sources.len(),
        cfg.sinks.len(),
        engine.as_ref().map_or(0, |e| e.len()),
        engine.as_ref().map_or(0, |e| e.correlations().count()),
        if rule_errors.is_empty() {
            String::new()
        } else {
            format!(" ({} rule file error(s) above)", rule_errors.len())
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the rules the configuration names. Rules that fail to load are
/// returned as messages; the others run.
fn build_engine(d: &DetectConfig) -> anyhow::Result<(Option<Engine>, Vec<String>)> {
    if !d.enabled {
        return Ok((None, Vec::new()));
    }
    let mut pipelines = if d.builtin_pipelines {
        detections::Pipeline::builtin()
    } else {
        Vec::new()
    };
    for p in &d.pipelines {
        pipelines.push(detections::Pipeline::load(p).map_err(|e| {
            anyhow::Error::new(Exit(2)).context(format!("cannot load pipeline: {e}"))
        })?);
    }
    let mut ph = crate::rules_cmd::placeholders(&crate::PlaceholderArgs {
        placeholders_files: d.placeholders.clone(),
        placeholder: Vec::new(),
    })?;
    for (k, v) in &d.placeholder {
        ph.insert(k.trim_matches('%').to_string(), v.clone());
    }
    let loader = detections::Loader::new(ph).with_pipelines(pipelines);
    let mut loading = if d.builtin_rules {
        detections::pack::load(&loader)
    } else {
        detections::Loading::default()
    };
    if !d.rules.is_empty() {
        let more = loader.load_paths(&d.rules);
        loading.rules.extend(more.rules);
        loading.correlations.extend(more.correlations);
        loading.filters.extend(more.filters);
        loading.errors.extend(more.errors);
        loading.files += more.files;
    }
    let unrouted = loading.drop_unrouted();
    if unrouted > 0 {
        tracing::info!(
            rules = unrouted,
            "rules for log sources no pipeline maps (Windows, Zeek, ...) are left out: they would see no event"
        );
    }
    let mut errors: Vec<String> = loading.errors.iter().map(|e| e.to_string()).collect();
    let (engine, unresolved) = Engine::build(loading);
    errors.extend(unresolved.iter().map(|e| e.to_string()));
    Ok((Some(engine), errors))
}

/// A running source.
enum Running {
    Tail(String, collector::TailHandle),
    Thread(String, std::thread::JoinHandle<std::io::Result<u64>>),
    Task(String, tokio::task::JoinHandle<anyhow::Result<()>>),
}

/// `mlsoc run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut cfg = load(args.config.as_ref())
        .map_err(|e| anyhow::Error::new(Exit(2)).context(format!("invalid configuration:\n{e}")))?;
    if args.once {
        for (name, s) in &mut cfg.sources {
            match s {
                SourceConfig::File(c) => c.stop_at_eof = true,
                SourceConfig::Stdin(_) => {}
                SourceConfig::Syslog(_) | SourceConfig::SplunkHec(_) => {
                    return Err(anyhow::Error::new(Exit(2)).context(format!(
                        "--once: source `{name}` ({}) never ends; use --once with file and stdin sources only",
                        s.kind()
                    )));
                }
            }
        }
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create data_dir {}", cfg.data_dir.display()))?;
    let _lock = lock_data_dir(&cfg.data_dir)?;

    let mut reg = normalizer::Registry::with_files(&cfg.normalize.formats)
        .map_err(|e| anyhow::Error::new(Exit(2)).context(format!("cannot load formats: {e}")))?;
    let zone =
        Zone::parse(&cfg.normalize.timezone).map_err(|e| anyhow::Error::new(Exit(2)).context(e))?;
    let (engine, rule_errors) = build_engine(&cfg.detect)?;
    if let Some(e) = &engine {
        // Documents kept whole (CloudTrail records, Kubernetes audit
        // events) get the paths the rules read collected in one pass.
        reg.read_also(&e.field_paths());
    }
    let norm = Arc::new(Normalizer::new(
        reg,
        Options {
            max_record_bytes: cfg.normalize.max_record_bytes,
            zone,
            detect_lines: 32,
        },
    ));
    if !rule_errors.is_empty() {
        tracing::warn!(
            count = rule_errors.len(),
            "some rules did not load (see `mlsoc validate`); the others run"
        );
    }
    let engine = engine.map(Arc::new);
    let correlations = engine.as_ref().map_or(0, |e| e.correlations().count());
    if let Some(e) = &engine {
        tracing::info!(
            rules = e.len(),
            correlations = e.correlations().count(),
            "detection rules loaded"
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mlsoc-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let metrics = api::recorder()?;
    let sources_stop = CancellationToken::new();
    let sinks_stop = CancellationToken::new();
    let api_stop = CancellationToken::new();
    let healthy = Arc::new(AtomicBool::new(true));

    // Sinks first, so that nothing read waits for a destination.
    let dead_letters = DeadLetters::file(cfg.data_dir.join("dead_letters").join("sinks.ndjson"));
    let mut sink_inputs = Vec::new();
    let mut sink_tasks = Vec::new();
    for (name, sc) in &cfg.sinks {
        let dir = cfg.data_dir.join("sinks").join(name);
        let (tx, rx) = {
            let _guard = rt.enter();
            sinks::buffer::open(&sc.buffer, name, &dir).with_context(|| format!("sink `{name}`"))?
        };
        let invalid =
            |m: String| anyhow::Error::new(Exit(2)).context(format!("sink `{name}`: {m}"));
        let sink: Box<dyn Sink> = match &sc.kind {
            SinkKind::File(c) => Box::new(sinks::file::FileSink::new(c.clone()).map_err(invalid)?),
            SinkKind::Elasticsearch(c) => {
                Box::new(sinks::elasticsearch::ElasticsearchSink::new(c.clone()).map_err(invalid)?)
            }
            SinkKind::SplunkHec(c) => {
                Box::new(sinks::splunk_hec::SplunkHecSink::new(c.clone()).map_err(invalid)?)
            }
        };
        let ctx = SinkContext {
            name: name.as_str().into(),
            dead_letters: dead_letters.clone(),
            stop: sinks_stop.clone(),
        };
        sink_tasks.push((name.clone(), rt.spawn(sink.run(rx, ctx))));
        sink_inputs.push(pipeline::SinkInput {
            name: name.as_str().into(),
            streams: sc.inputs.clone(),
            tx,
        });
        tracing::info!(sink = %name, kind = sc.kind.kind(), "sink started");
    }

    let api_task = match &cfg.api {
        Some(a) => {
            let (bound, task) = rt.block_on(api::serve(
                a.address,
                metrics,
                healthy.clone(),
                api_stop.clone(),
            ))?;
            tracing::info!(address = %bound, "serving /metrics and /health");
            eprintln!("mlsoc: metrics at http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };

    // Sources.
    let (tx, rx) = mpsc::channel::<SourceBatch>(16);
    let mut running = Vec::new();
    for (name, sc) in &cfg.sources {
        let name_arc: Arc<str> = name.as_str().into();
        match sc {
            SourceConfig::File(c) => {
                let dir = cfg.data_dir.join("sources").join(name);
                let h = collector::spawn_tail(
                    name_arc,
                    c.clone(),
                    dir,
                    tx.clone(),
                    sources_stop.clone(),
                )
                .map_err(|e| {
                    anyhow::Error::new(Exit(2)).context(format!("source `{name}`: {e}"))
                })?;
                running.push(Running::Tail(name.clone(), h));
            }
            SourceConfig::Stdin(c) => {
                tracing::warn!(source = %name, "stdin cannot be read again: its records are delivered at most once across a crash");
                let h = collector::stdin::spawn(
                    name_arc,
                    c.clone(),
                    std::io::stdin(),
                    tx.clone(),
                    sources_stop.clone(),
                )
                .with_context(|| format!("source `{name}`"))?;
                running.push(Running::Thread(name.clone(), h));
            }
            SourceConfig::Syslog(c) => {
                let (btx, brx) = tokio::sync::oneshot::channel();
                let t = rt.spawn(collector::syslog::serve(
                    name_arc,
                    c.clone(),
                    tx.clone(),
                    sources_stop.clone(),
                    Some(btx),
                ));
                // Fail now if the address cannot be bound.
                match rt.block_on(brx) {
                    Ok(addr) => tracing::info!(source = %name, address = %addr, "syslog listening"),
                    Err(_) => {
                        let e = rt.block_on(t).map_err(anyhow::Error::new)?;
                        return Err(anyhow::Error::new(Exit(2)).context(match e {
                            Err(e) => e.to_string(),
                            Ok(()) => format!("source `{name}` stopped at start"),
                        }));
                    }
                }
                let t = rt.spawn(async move { t.await?.map_err(anyhow::Error::new) });
                running.push(Running::Task(name.clone(), t));
            }
            SourceConfig::SplunkHec(c) => {
                let server = rt
                    .block_on(collector::hec::HecServer::bind(c.clone()))
                    .map_err(|e| {
                        anyhow::Error::new(Exit(2)).context(format!("source `{name}`: {e}"))
                    })?;
                tracing::info!(source = %name, address = %server.local_addr(), "HEC receiver listening");
                let (out, stop) = (tx.clone(), sources_stop.clone());
                let t = rt.spawn(async move {
                    server
                        .run(name_arc, out, stop)
                        .await
                        .map_err(anyhow::Error::new)
                });
                running.push(Running::Task(name.clone(), t));
            }
        }
        tracing::info!(source = %name, kind = sc.kind(), "source started");
    }
    drop(tx);

    let workers = match cfg.normalize.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let rx = gate(rx, sources_stop.clone(), &rt);
    let pipeline = pipeline::spawn(
        rx,
        pipeline::Stages {
            normalizer: norm,
            engine,
            correlation_limits: detections::Limits {
                max_groups: per_correlation(cfg.detect.max_correlation_groups, correlations),
                ..Default::default()
            },
            workers,
            multiline_timeout: cfg.normalize.multiline_timeout,
        },
        sink_inputs,
        rt.handle().clone(),
    )?;
    let stats = pipeline.stats.clone();

    // Signals: the first stops the sources; the second, or the drain
    // deadline, stops the sinks.
    {
        let (sources_stop, sinks_stop, healthy) =
            (sources_stop.clone(), sinks_stop.clone(), healthy.clone());
        let timeout = cfg.shutdown_timeout;
        rt.spawn(async move {
            let first = tokio::select! {
                _ = signal() => true,
                _ = sources_stop.cancelled() => false,
            };
            if first {
                eprintln!("mlsoc: stopping: draining what was read (again to stop at once)");
            }
            healthy.store(false, Ordering::Relaxed);
            sources_stop.cancel();
            tokio::select! {
                _ = signal() => eprintln!("mlsoc: stopping now"),
                _ = tokio::time::sleep(timeout) => eprintln!("mlsoc: shutdown_timeout passed; undelivered records will be read again on the next start"),
            }
            sinks_stop.cancel();
        });
    }

    pipeline.join();
    // Every source is done (or stopped) and everything read is in a sink
    // buffer: sinks now finish.
    let mut sink_failed = false;
    for (name, t) in sink_tasks {
        match rt.block_on(t) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                sink_failed = true;
                tracing::error!(sink = %name, error = %e, "sink failed");
            }
            Err(e) => {
                sink_failed = true;
                tracing::error!(sink = %name, error = %e, "sink task panicked");
            }
        }
    }
    sources_stop.cancel();
    for r in running {
        match r {
            Running::Tail(name, h) => {
                if let Err(e) = h.join() {
                    tracing::error!(source = %name, error = %e, "file source failed");
                }
            }
            Running::Thread(name, h) => {
                if h.is_finished() {
                    match h.join() {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(source = %name, error = %e, "source failed"),
                        Err(_) => tracing::error!(source = %name, "source thread panicked"),
                    }
                }
                // A thread blocked reading stdin is left to the process exit.
            }
            Running::Task(name, t) => match rt.block_on(t) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(source = %name, error = %e, "source failed"),
                Err(e) => tracing::error!(source = %name, error = %e, "source task failed"),
            },
        }
    }
    api_stop.cancel();
    if let Some(t) = api_task {
        let _ = rt.block_on(t);
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    eprintln!(
        "mlsoc: {} records read, {} events, {} dead letters, {} alerts in {:.1}s; sink dead letters: {}",
        stats.records_in.load(Ordering::Relaxed),
        stats.events.load(Ordering::Relaxed),
        stats.dead_letters.load(Ordering::Relaxed),
        stats.alerts.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        dead_letters.written(),
    );
    if args.once && stats.records_in.load(Ordering::Relaxed) == 0 && args.config.is_none() {
        eprintln!(
            "mlsoc: nothing new was read: the built-in configuration reads samples/ from the \
             repository root, and resumes from its checkpoints in target/mlsoc/run/data"
        );
    }
    Ok(if sink_failed {
        ExitCode::from(4)
    } else {
        ExitCode::SUCCESS
    })
}

/// Each correlation's share of the total group budget (at least 1,000).
fn per_correlation(total: usize, correlations: usize) -> usize {
    (total / correlations.max(1)).max(1000)
}

/// Passes source batches on until `stop`; then gives sources two seconds
/// to hand over what they read, and closes the channel (a later send fails
/// and its records stay unacknowledged, to be read again).
fn gate(
    mut rx: mpsc::Receiver<SourceBatch>,
    stop: CancellationToken,
    rt: &tokio::runtime::Runtime,
) -> mpsc::Receiver<SourceBatch> {
    let (tx, out) = mpsc::channel(4);
    rt.spawn(async move {
        loop {
            let b = tokio::select! {
                b = rx.recv() => b,
                _ = stop.cancelled() => break,
            };
            let Some(b) = b else { return };
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let b = tokio::select! {
                b = rx.recv() => b,
                _ = tokio::time::sleep_until(deadline) => None,
            };
            let Some(b) = b else { break };
            if tx.send(b).await.is_err() {
                break;
            }
        }
        rx.close();
    });
    out
}

async fn signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// One `mlsoc run` per data directory: two would fight over checkpoints.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("mlsoc.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(anyhow::Error::new(Exit(2)).context(format!(
                "another mlsoc run uses data_dir {} (locked: {})",
                dir.display(),
                path.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
        }
    }
}
