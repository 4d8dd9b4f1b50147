//! Delivery guarantees of `mlsoc run`, end to end with the binary, real
//! files and the Elasticsearch fake: a `kill -9` while a million lines are
//! tailed and shipped, rotations and truncation, and a sink outage.
//!
//! Each test prints its figures (duplicates, RSS) to the test output.

mod common;

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::es::{FakeEs, Scripted};

/// One access-log line whose query carries its number.
fn line(i: usize) -> String {
    format!(
        "10.2.{}.{} - - [30/Nov/2026:11:{:02}:{:02} +0000] \"GET /api/2.0/mlflow/runs/get?run_id=r{i} HTTP/1.1\" 200 {} \"-\" \"mlflow-python-client/2.19.0\"\n",
        i / 250 % 250,
        i % 250 + 1,
        i / 60 % 60,
        i % 60,
        100 + i % 1000
    )
}

fn lines(range: std::ops::Range<usize>) -> String {
    range.map(line).collect()
}

/// The line number in a stored document's query string.
fn number_of(doc: &Value) -> usize {
    let q = doc["url"]["query"].as_str().expect("url.query kept");
    q.strip_prefix("run_id=r")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected query {q}"))
}

struct Daemon {
    child: Child,
    config: PathBuf,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        // stderr goes to a file: a pipe nobody reads would fill up and
        // block the daemon's logging.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Daemon::log_path(config))
            .unwrap();
        let child = common::mlsoc()
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn mlsoc run");
        Daemon {
            child,
            config: config.to_path_buf(),
        }
    }

    fn log_path(config: &Path) -> PathBuf {
        config.with_extension("stderr")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        let log = std::fs::read_to_string(Daemon::log_path(&self.config)).unwrap_or_default();
        (status, log)
    }
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config(dir: &Path, es: &FakeEs, include: &[&str], extra_sink: &str) -> PathBuf {
    let include: Vec<String> = include
        .iter()
        .map(|p| format!("\"{}\"", dir.join(p).display()))
        .collect();
    let text = format!(
        r#"data_dir = "{data}"
shutdown_timeout = "10s"
[detect]
enabled = false
[sources.logs]
type = "file"
include = [{include}]
format = "mlflow.gunicorn_access"
glob_interval = "100ms"
poll_interval = "20ms"
rotate_wait = "1s"
[sinks.es]
type = "elasticsearch"
inputs = ["events", "dead_letters"]
endpoints = ["{url}"]
batch = {{ max_events = 1000, timeout = "100ms" }}
retry = {{ initial = "50ms", max = "500ms" }}
{extra_sink}
"#,
        data = dir.join("data").display(),
        include = include.join(", "),
        url = es.url()
    );
    let p = dir.join("mlsoc.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The persisted checkpoint position of the file at `path`, if any.
fn checkpoint(dir: &Path, path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("data/sources/logs/checkpoints.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == path.display().to_string())
        .and_then(|f| f["position"].as_u64())
}

/// Line numbers stored in the fake, and how many items it received in all.
fn stored(es: &FakeEs, index: &str) -> (Vec<usize>, u64) {
    let mut n: Vec<usize> = es
        .docs(index)
        .iter()
        .map(|d| number_of(&d.source))
        .collect();
    n.sort_unstable();
    (n, es.items_received())
}

const INDEX: &str = "logs-mlsoc.mlflow.access-default";

/// Kill -9 while a million lines are tailed and shipped, then restart:
/// every line arrives at least once, and the only duplicates are lines
/// after the checkpoint that was on disk when the process died (the
/// unacknowledged window).
#[test]
fn kill_9_while_tailing_a_million_lines_loses_nothing() {
    const N: usize = 1_000_000;
    let es = FakeEs::start_blocking();
    es.keep_only_fields(&["url.query", "log.offset"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let log = dir.join("logs/app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = config(dir, &es, &["logs/*.log"], "");
    let started = Instant::now();
    let daemon = Daemon::start(&cfg);

    // The writer appends while mlsoc tails, in bursts of 5,000 lines.
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            for chunk in (0..N).step_by(5000) {
                f.write_all(lines(chunk..chunk + 5000).as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    wait_for(
        "a quarter of the lines in the sink",
        Duration::from_secs(300),
        || es.doc_count() >= N / 4,
    );
    let daemon = {
        // Kill in the middle of the stream; read the checkpoint that
        // survived.
        let cfg = daemon.config.clone();
        daemon.kill9();
        Daemon::start(&cfg)
    };
    let killed_at = started.elapsed();
    let persisted = checkpoint(dir, &log).unwrap_or(0);
    let at_kill = es.doc_count();
    writer.join().unwrap();
    wait_for("every line in the sink", Duration::from_secs(600), || {
        es.doc_count() >= N
    });
    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");

    let (numbers, received) = stored(&es, INDEX);
    assert_eq!(numbers.len(), N, "distinct documents");
    assert!(
        numbers.iter().enumerate().all(|(i, &n)| i == n),
        "every line 0..{N} is stored once"
    );
    let duplicates = received - N as u64;
    // Which lines came twice: all of them after the persisted checkpoint.
    let mut seen = HashSet::new();
    let mut early = Vec::new();
    for id in es.received_ids() {
        if !seen.insert(id.clone()) {
            let doc = es.doc(INDEX, &id).unwrap();
            let offset = doc["log"]["offset"].as_u64().unwrap();
            if offset < persisted {
                early.push(number_of(&doc));
            }
        }
    }
    println!(
        "kill -9 after {at_kill} documents stored ({:.1}s in); checkpoint on disk at byte {persisted}; \
         {duplicates} duplicate deliveries after restart, all past the checkpoint; \
         {N} lines delivered in {:.1}s",
        killed_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        early.is_empty(),
        "lines before the persisted checkpoint were sent again: {:?}",
        &early[..early.len().min(10)]
    );
    // The window is bounded: what was in flight plus one checkpoint
    // interval, far less than what was stored before the kill.
    assert!(duplicates < at_kill as u64, "{duplicates} duplicates");
}

/// Rotation by rename and by copytruncate, truncation, and a file deleted
/// while open, with the daemon running: no line is lost, and a line
/// written across a rotation arrives whole.
#[test]
fn rotations_truncation_and_deletion_lose_nothing() {
    let es = FakeEs::start_blocking();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let log = dir.join("logs/app.log");
    let other = dir.join("logs/other.log");
    std::fs::write(&log, lines(0..1000)).unwrap();
    std::fs::write(&other, lines(100_000..100_500)).unwrap();
    // The rotated names stay in the patterns (the copy of copytruncate must
    // be read from where the original stopped).
    let cfg = config(dir, &es, &["logs/*.log", "logs/*.log.1"], "");
    let daemon = Daemon::start(&cfg);
    let es = &es;
    let count = |n: usize| move || es.doc_count() >= n;
    wait_for("the first lines", Duration::from_secs(60), count(1500));

    // 1. Rotation by rename, with a line split across it: its first half
    // goes to the old file, the writer finishes it there, then reopens.
    let mut half = line(1000);
    let rest = half.split_off(40);
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(half.as_bytes()).unwrap();
        std::fs::rename(&log, dir.join("logs/app.log.1")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(rest.as_bytes()).unwrap();
        f.write_all(lines(1001..1200).as_bytes()).unwrap();
    }
    std::fs::write(&log, lines(1200..1400)).unwrap();
    wait_for(
        "lines after the rename",
        Duration::from_secs(60),
        count(1900),
    );

    // 2. Copytruncate: the new content of app.log is copied to app.log.1
    // (replacing the old rotated file), then app.log is truncated in place.
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(lines(1400..1500).as_bytes()).unwrap();
        std::fs::remove_file(dir.join("logs/app.log.1")).unwrap();
        std::fs::copy(&log, dir.join("logs/app.log.1")).unwrap();
        let f2 = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f2.set_len(0).unwrap();
        drop(f2);
        f.write_all(lines(1500..1600).as_bytes()).unwrap();
    }
    wait_for(
        "lines after copytruncate",
        Duration::from_secs(60),
        count(2100),
    );

    // 3. Truncation in place, then new lines.
    std::fs::write(&other, "").unwrap();
    std::fs::write(&other, lines(100_500..100_600)).unwrap();
    wait_for(
        "lines after truncation",
        Duration::from_secs(60),
        count(2200),
    );

    // 4. A file deleted while open, after a last write.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&other)
            .unwrap();
        f.write_all(lines(100_600..100_700).as_bytes()).unwrap();
    }
    std::fs::remove_file(&other).unwrap();
    wait_for(
        "lines of the deleted file",
        Duration::from_secs(60),
        count(2300),
    );

    let (status, stderr) = daemon.stop();
    assert!(status.success(), "{stderr}");
    let (numbers, _) = stored(es, INDEX);
    let want: Vec<usize> = (0..1600).chain(100_000..100_700).collect();
    assert_eq!(
        numbers.len(),
        want.len(),
        "missing: {:?}",
        want.iter()
            .filter(|n| !numbers.contains(n))
            .take(20)
            .collect::<Vec<_>>()
    );
    assert_eq!(numbers, want);
    // The split line came whole (its number parsed, and no dead letter).
    assert!(numbers.contains(&1000));
    let dlq = dir.join("data/dead_letters/sinks.ndjson");
    assert!(
        !dlq.exists(),
        "{}",
        std::fs::read_to_string(&dlq).unwrap_or_default()
    );
}

/// The sink answers 503, then refuses connections, for 60 seconds in all,
/// then recovers: nothing is lost. Two daemons run through the same outage:
/// with a memory buffer the file source stops reading (the full buffer
/// blocks it) and memory stays under the documented bound; with a disk
/// buffer the source keeps reading into the buffer (its checkpoint moves
/// during the outage, as the buffer acknowledges durable writes).
#[test]
fn sink_outage_of_a_minute_loses_nothing_and_memory_stays_bounded() {
    const N: usize = 300_000;
    /// Documented bound (docs/run.md): RSS of `mlsoc run` with the default
    /// memory buffer (10,000 events) while its only sink is down.
    const RSS_BOUND_KIB: u64 = 256 * 1024;
    let setup = |buffer: &str| {
        let es = FakeEs::start_blocking();
        es.keep_only_fields(&["url.query", "log.offset"]);
        // Down before the daemon starts: 503 for 30 s, then refused.
        es.push_responses(100_000, Scripted::Status(503));
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("logs/app.log"), lines(0..N)).unwrap();
        let cfg = config(&dir, &es, &["logs/*.log"], "");
        if !buffer.is_empty() {
            let text = std::fs::read_to_string(&cfg).unwrap();
            std::fs::write(&cfg, format!("{text}buffer = {buffer}\n")).unwrap();
        }
        (es, tmp, dir, cfg)
    };
    let (es_mem, _t1, dir_mem, cfg_mem) = setup("");
    let (es_disk, _t2, dir_disk, cfg_disk) = setup(r#"{ type = "disk", max_size = "512MiB" }"#);
    let mem = Daemon::start(&cfg_mem);
    let disk = Daemon::start(&cfg_disk);
    let outage = Instant::now();
    let mut peak = 0;
    let mut sample = |until: Duration| {
        while outage.elapsed() < until {
            peak = peak.max(rss_kib(mem.pid()));
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    sample(Duration::from_secs(30));
    es_mem.refuse_connections();
    es_disk.refuse_connections();
    sample(Duration::from_secs(60));
    assert_eq!(
        es_mem.doc_count() + es_disk.doc_count(),
        0,
        "nothing stored during the outage"
    );
    let log_mem = dir_mem.join("logs/app.log");
    let log_disk = dir_disk.join("logs/app.log");
    let size = std::fs::metadata(&log_disk).unwrap().len();
    let read_disk = checkpoint(&dir_disk, &log_disk).unwrap_or(0);
    let read_mem = checkpoint(&dir_mem, &log_mem).unwrap_or(0);
    let buffered = walk_size(&dir_disk.join("data/sinks/es"));
    println!(
        "outage of 60s: memory buffer: peak RSS {} MiB (bound {} MiB), checkpoint at {read_mem} of {size} bytes; \
         disk buffer: checkpoint at {read_disk} of {size} bytes, {} MiB buffered on disk",
        peak / 1024,
        RSS_BOUND_KIB / 1024,
        buffered / (1024 * 1024)
    );
    assert!(peak > 0 && peak < RSS_BOUND_KIB, "peak RSS {peak} KiB");
    assert_eq!(
        read_mem, 0,
        "nothing was delivered, so nothing is acknowledged"
    );
    assert_eq!(
        read_disk, size,
        "with a disk buffer the source read the whole file during the outage"
    );
    assert!(buffered > 1024 * 1024, "the disk buffer holds the records");

    // Recovery.
    for es in [&es_mem, &es_disk] {
        es.clear_script();
        es.accept_connections();
    }
    wait_for("every line in both sinks", Duration::from_secs(300), || {
        es_mem.doc_count() >= N && es_disk.doc_count() >= N
    });
    for (d, es) in [(mem, &es_mem), (disk, &es_disk)] {
        let (status, stderr) = d.stop();
        assert!(status.success(), "{stderr}");
        let (numbers, _) = stored(es, INDEX);
        assert_eq!(numbers.len(), N);
        assert!(numbers.iter().enumerate().all(|(i, &n)| i == n));
    }
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                walk_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}
