//! The file source against real files in temporary directories, with a
//! consumer that completes (or holds, or fails) the acknowledgements.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schema::AckStatus;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::batch::SourceBatch;

const WAIT: Duration = Duration::from_secs(20);

/// A record as the consumer saw it.
#[derive(Debug, Clone)]
struct Rec {
    path: String,
    text: Vec<u8>,
    offset: u64,
    line: u64,
    stream: u64,
    overflow: Option<u64>,
}

impl Rec {
    fn s(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

struct Run {
    handle: TailHandle,
    stop: CancellationToken,
    rx: mpsc::Receiver<SourceBatch>,
    /// Streams that ended.
    ended: Vec<u64>,
}

fn config(dir: &Path, pattern: &str) -> TailConfig {
    let mut c = TailConfig::new([format!("{}/{pattern}", dir.display())]);
    c.glob_interval = Duration::from_millis(30);
    c.poll_interval = Duration::from_millis(5);
    c.rotate_wait = Duration::from_millis(200);
    c.shutdown_timeout = Duration::from_secs(3);
    c.fingerprint_bytes = 32;
    c
}

fn start(cfg: &TailConfig, data: &Path) -> Run {
    if std::env::var("TAIL_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("collector=debug")
            .with_test_writer()
            .try_init();
    }
    let (tx, rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let handle = spawn(
        "test".into(),
        cfg.clone(),
        data.to_path_buf(),
        tx,
        stop.clone(),
    )
    .unwrap();
    Run {
        handle,
        stop,
        rx,
        ended: Vec::new(),
    }
}

impl Run {
    /// The next batch, or `None` after `timeout`.
    fn batch(&mut self, timeout: Duration) -> Option<SourceBatch> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.rx.try_recv() {
                Ok(b) => {
                    if b.end_of_stream {
                        self.ended.push(b.stream);
                    }
                    return Some(b);
                }
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return None,
            }
        }
    }

    /// Records of `b`, acknowledging it with `status`.
    fn take(b: SourceBatch, status: AckStatus) -> Vec<Rec> {
        let recs = records(&b);
        b.ack.complete(status);
        recs
    }

    /// Records until `n` arrived, acknowledging every batch.
    fn lines(&mut self, n: usize) -> Vec<Rec> {
        let mut out = Vec::new();
        let deadline = Instant::now() + WAIT;
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(b) = self.batch(left) else {
                panic!(
                    "timed out after {} of {n} records: {:?}",
                    out.len(),
                    out.iter().map(Rec::s).collect::<Vec<_>>()
                );
            };
            out.extend(Run::take(b, AckStatus::Delivered));
        }
        out
    }

    /// Asserts that nothing more comes for a while (acknowledging empty
    /// end-of-stream batches).
    fn quiet(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(b) = self.batch(deadline.saturating_duration_since(Instant::now())) {
            let recs = Run::take(b, AckStatus::Delivered);
            assert!(recs.is_empty(), "unexpected records: {recs:?}");
        }
    }

    /// Waits until the checkpoint of the file at `path` reaches `pos`.
    fn acked(&self, path: &Path, pos: u64) -> FileCheckpoint {
        let p = path.to_string_lossy();
        let deadline = Instant::now() + WAIT;
        loop {
            let cps = self.handle.checkpoints();
            if let Some(c) = cps
                .iter()
                .find(|c| c.path == p && c.position == pos && c.pending == 0)
            {
                return c.clone();
            }
            assert!(
                Instant::now() < deadline,
                "checkpoint of {p} never reached {pos}: {cps:#?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the source, failing whatever batches are still queued.
    fn stop(self) {
        self.stop.cancel();
        drop(self.rx);
        self.handle.join().unwrap();
    }
}

fn records(b: &SourceBatch) -> Vec<Rec> {
    b.records
        .iter()
        .map(|r| {
            assert!(Arc::ptr_eq(&r.source, &b.source));
            Rec {
                path: r.source.name.clone(),
                text: r.bytes.to_vec(),
                offset: r.offset,
                line: r.line,
                stream: b.stream,
                overflow: r.overflow_len,
            }
        })
        .collect()
}

fn append(path: &Path, data: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data.as_bytes()).unwrap();
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix} line {i:04}\n")).collect()
}

fn texts(recs: &[Rec]) -> Vec<String> {
    recs.iter().map(Rec::s).collect()
}

fn size(p: &Path) -> u64 {
    fs::metadata(p).unwrap().len()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    logs: PathBuf,
    data: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("data");
    fs::create_dir_all(&logs).unwrap();
    Dirs {
        logs,
        data,
        _tmp: tmp,
    }
}

#[test]
fn reads_from_beginning_with_offsets_lines_and_source() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, "first\r\nsecond\n\nfourth\npartial").unwrap();
    let mut cfg = config(&d.logs, "*.log");
    cfg.format = Some("mlflow.access".into());
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(4);
    assert_eq!(texts(&recs), ["first", "second", "", "fourth"]);
    assert_eq!(
        recs.iter().map(|r| (r.offset, r.line)).collect::<Vec<_>>(),
        [(0, 1), (7, 2), (14, 3), (15, 4)]
    );
    assert_eq!(recs[0].path, p.to_string_lossy());
    run.quiet(Duration::from_millis(150));
    let cp = run.acked(&p, 22);
    assert_eq!(cp.line, 4);
    // The unfinished line comes whole once its newline is written.
    append(&p, " line\n");
    let recs = run.lines(1);
    assert_eq!(
        (recs[0].s(), recs[0].offset, recs[0].line),
        ("partial line".into(), 22, 5)
    );
    run.stop();
}

#[test]
fn batches_carry_the_format_and_a_stream_per_file() {
    let d = dirs();
    fs::write(d.logs.join("a.log"), "a\n").unwrap();
    fs::write(d.logs.join("b.log"), "b\n").unwrap();
    let mut cfg = config(&d.logs, "*.log");
    cfg.format = Some("jupyter".into());
    let mut run = start(&cfg, &d.data);
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        let b = run.batch(WAIT).expect("batch");
        assert_eq!(&*b.source_name, "test");
        assert_eq!(b.source.kind, "file");
        assert_eq!(b.source.format.as_deref(), Some("jupyter"));
        seen.insert(b.source.name.clone(), b.stream);
        b.ack.complete(AckStatus::Delivered);
    }
    let streams: Vec<u64> = seen.values().copied().collect();
    assert_ne!(streams[0], streams[1]);
    run.stop();
}

#[test]
fn read_from_end_skips_existing_lines_but_not_new_files() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, "old 1\nold 2\nold part").unwrap();
    let mut cfg = config(&d.logs, "*.log");
    cfg.read_from = ReadFrom::End;
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(200));
    append(&p, "ial\nnew 1\n");
    assert_eq!(texts(&run.lines(2)), ["old partial", "new 1"]);
    // A file created after the start is read from its beginning.
    fs::write(d.logs.join("later.log"), "later 1\n").unwrap();
    assert_eq!(texts(&run.lines(1)), ["later 1"]);
    run.stop();
}

#[test]
fn resumes_after_restart_without_loss_or_duplicates() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..50)).unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(50).len(), 50);
    run.acked(&p, size(&p));
    run.stop();
    assert!(d.data.join("checkpoints.json").exists());

    append(&p, &numbered("a", 50..80));
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(30);
    assert_eq!(texts(&recs), texts_of(&numbered("a", 50..80)));
    assert_eq!(recs[0].line, 51, "line numbers continue");
    run.quiet(Duration::from_millis(200));
    run.stop();
}

fn texts_of(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

#[test]
fn an_unacknowledged_batch_is_read_again_after_restart() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..5)).unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(5).len(), 5);
    let first = run.acked(&p, size(&p)).position;
    append(&p, &numbered("a", 5..8));
    let held = run.batch(WAIT).expect("second batch");
    assert_eq!(held.records.len(), 3);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(run.handle.checkpoints()[0].position, first);
    drop(held); // never completed: fails
    run.stop();

    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(3)), texts_of(&numbered("a", 5..8)));
    run.quiet(Duration::from_millis(150));
    run.stop();
}

#[test]
fn out_of_order_acks_advance_only_contiguously_and_failures_hold() {
    let d = dirs();
    let p = d.logs.join("app.log");
    let mut cfg = config(&d.logs, "*.log");
    cfg.batch_max_records = 2;
    fs::write(&p, numbered("a", 0..6)).unwrap();
    let mut run = start(&cfg, &d.data);
    let b1 = run.batch(WAIT).unwrap();
    let b2 = run.batch(WAIT).unwrap();
    let b3 = run.batch(WAIT).unwrap();
    let end = |b: &SourceBatch| {
        let r = b.records.last().unwrap();
        r.offset + r.bytes.len() as u64 + 1
    };
    let (e1, e2, e3) = (end(&b1), end(&b2), end(&b3));
    b3.ack.complete(AckStatus::Delivered);
    b2.ack.complete(AckStatus::Delivered);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(run.handle.checkpoints()[0].position, 0);
    b1.ack.complete(AckStatus::Delivered);
    run.acked(&p, e3);
    assert!(e1 < e2 && e2 < e3);

    // A failure holds the checkpoint for the rest of the run.
    append(&p, &numbered("b", 0..6));
    let c1 = run.batch(WAIT).unwrap();
    let c2 = run.batch(WAIT).unwrap();
    let c3 = run.batch(WAIT).unwrap();
    c1.ack.complete(AckStatus::Delivered);
    c2.ack.complete(AckStatus::Failed);
    c3.ack.complete(AckStatus::Delivered);
    let e_c1 = end_of(&p, "b line 0001");
    let deadline = Instant::now() + WAIT;
    loop {
        let cp = &run.handle.checkpoints()[0];
        if cp.pending == 0 {
            assert_eq!(cp.position, e_c1);
            assert!(cp.failed);
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    append(&p, "after\n");
    assert_eq!(texts(&run.lines(1)), ["after"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(run.handle.checkpoints()[0].position, e_c1);
    run.stop();
    // After a restart, everything after the failed batch comes again.
    let mut run = start(&cfg, &d.data);
    let again = run.lines(5);
    assert_eq!(
        texts(&again),
        [
            "b line 0002",
            "b line 0003",
            "b line 0004",
            "b line 0005",
            "after"
        ]
    );
    run.stop();
}

/// Offset just past the line `text`.
fn end_of(p: &Path, text: &str) -> u64 {
    let data = fs::read_to_string(p).unwrap();
    let at = data.find(&format!("{text}\n")).unwrap();
    (at + text.len() + 1) as u64
}

#[test]
fn rotation_by_rename_reads_old_to_its_end_and_the_new_file_once() {
    let d = dirs();
    let p = d.logs.join("app.log");
    let p1 = d.logs.join("app.log.1");
    fs::write(&p, numbered("old", 0..10)).unwrap();
    let cfg = config(&d.logs, "app.log*");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(10).len(), 10);
    // The writer still holds the old file; it writes a line in two parts,
    // the file is renamed in between, then it writes the rest.
    let mut writer = OpenOptions::new().append(true).open(&p).unwrap();
    writer.write_all(b"old line 0010\nacross the ").unwrap();
    fs::rename(&p, &p1).unwrap();
    fs::write(&p, numbered("new", 0..3)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    writer.write_all(b"rotation\n").unwrap();
    drop(writer);
    let recs = run.lines(5);
    let mut got = texts(&recs);
    got.sort();
    assert_eq!(
        got,
        [
            "across the rotation",
            "new line 0000",
            "new line 0001",
            "new line 0002",
            "old line 0010",
        ]
    );
    let old: Vec<&Rec> = recs.iter().filter(|r| !r.s().starts_with("new")).collect();
    assert!(
        old.iter().all(|r| r.path == p.to_string_lossy()),
        "same stream, first path"
    );
    assert_ne!(
        old[0].stream,
        recs.iter()
            .find(|r| r.s().starts_with("new"))
            .unwrap()
            .stream
    );
    run.quiet(Duration::from_millis(300));
    run.stop();
    // After a restart neither file is read again.
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(300));
    run.stop();
}

#[test]
fn a_file_renamed_out_of_the_patterns_is_finished_after_rotate_wait() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, "one\n").unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(1)), ["one"]);
    let stream = run.handle.checkpoints()[0].stream;
    append(&p, "two\nunfinished");
    fs::rename(&p, d.logs.join("app.old")).unwrap();
    let recs = run.lines(2);
    assert_eq!(texts(&recs), ["two", "unfinished"]);
    // The end of the stream follows (possibly on the same batch).
    let deadline = Instant::now() + WAIT;
    while !run.ended.contains(&stream) {
        assert!(Instant::now() < deadline, "no end of stream");
        if let Some(b) = run.batch(Duration::from_millis(50)) {
            b.ack.complete(AckStatus::Delivered);
        }
    }
    run.stop();
}

#[test]
fn deleted_while_open_is_read_to_its_end() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, "one\n").unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(1)), ["one"]);
    let stream = run.handle.checkpoints()[0].stream;
    let mut w = OpenOptions::new().append(true).open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    w.write_all(b"two\nthree\nlast").unwrap();
    drop(w);
    assert_eq!(texts(&run.lines(3)), ["two", "three", "last"]);
    let deadline = Instant::now() + WAIT;
    while !run.ended.contains(&stream) {
        assert!(Instant::now() < deadline, "no end of stream");
        if let Some(b) = run.batch(Duration::from_millis(50)) {
            b.ack.complete(AckStatus::Delivered);
        }
    }
    run.quiet(Duration::from_millis(100));
    let cp = run.handle.checkpoints();
    assert!(cp[0].removed_at.is_some() && !cp[0].live, "{cp:?}");
    run.stop();
}

/// copytruncate as logrotate does it: copy, then truncate in place.
fn copytruncate(p: &Path, copy: &Path) {
    fs::copy(p, copy).unwrap();
    OpenOptions::new()
        .write(true)
        .open(p)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn copytruncate_with_the_copy_included_loses_and_repeats_nothing() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..10)).unwrap();
    let cfg = config(&d.logs, "app.log*");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(10).len(), 10);
    run.acked(&p, size(&p));
    // Lines written just before the rotation, not read yet, and a line cut
    // by the copy: only the copy has them.
    append(&p, &numbered("a", 10..13));
    copytruncate(&p, &d.logs.join("app.log.1"));
    append(&p, &numbered("b", 0..2));
    let recs = run.lines(5);
    let mut got = texts(&recs);
    got.sort();
    let mut want = texts_of(&numbered("a", 10..13));
    want.extend(texts_of(&numbered("b", 0..2)));
    assert_eq!(got, want);
    run.quiet(Duration::from_millis(300));
    run.stop();
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(300));
    run.stop();
}

#[test]
fn copytruncate_without_the_copy_reads_the_file_again_from_its_start() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..10)).unwrap();
    let cfg = config(&d.logs, "app.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(10).len(), 10);
    run.acked(&p, size(&p));
    let old_stream = run.handle.checkpoints()[0].stream;
    copytruncate(&p, &d.logs.join("app.log.1"));
    append(&p, &numbered("b", 0..3));
    let recs = run.lines(3);
    assert_eq!(texts(&recs), texts_of(&numbered("b", 0..3)));
    assert_eq!(recs[0].offset, 0);
    assert_ne!(recs[0].stream, old_stream);
    assert!(run.ended.contains(&old_stream));
    run.quiet(Duration::from_millis(200));
    run.stop();
}

#[test]
fn a_copy_made_before_the_truncate_is_not_read_twice() {
    let d = dirs();
    let p = d.logs.join("app.log");
    let copy = d.logs.join("app.log.1");
    fs::write(&p, numbered("a", 0..10)).unwrap();
    let cfg = config(&d.logs, "app.log*");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(10).len(), 10);
    fs::copy(&p, &copy).unwrap();
    // Several scans see the copy while the original is still there.
    run.quiet(Duration::from_millis(200));
    append(&p, &numbered("a", 10..12)); // after the copy: only the original has it
    assert_eq!(run.lines(2).len(), 2);
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&p, "fresh\n");
    assert_eq!(texts(&run.lines(1)), ["fresh"]);
    run.quiet(Duration::from_millis(300));
    run.stop();
}

#[test]
fn truncation_in_place_reads_from_the_start() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..10)).unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(10).len(), 10);
    // Truncated and written past the old position before the next look:
    // the changed first bytes give it away.
    let mut f = File::create(&p).unwrap();
    f.write_all(numbered("rewritten", 0..20).as_bytes())
        .unwrap();
    drop(f);
    let recs = run.lines(20);
    assert_eq!(texts(&recs), texts_of(&numbered("rewritten", 0..20)));
    assert_eq!((recs[0].offset, recs[0].line), (0, 1));
    run.quiet(Duration::from_millis(150));
    run.stop();
}

#[test]
fn huge_lines_become_overflow_records_with_their_head() {
    let d = dirs();
    let p = d.logs.join("app.log");
    let mut cfg = config(&d.logs, "*.log");
    cfg.max_line_bytes = 100;
    let big = "x".repeat(5000);
    // Written in pieces: the head is kept while the line is unfinished.
    fs::write(&p, format!("small\n{}", &big[..3000])).unwrap();
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(1)), ["small"]);
    append(&p, &format!("{}\nafter\n", &big[3000..]));
    let recs = run.lines(2);
    assert_eq!(recs[0].text.len(), 100);
    assert_eq!(recs[0].overflow, Some(5000));
    assert_eq!(recs[0].offset, 6);
    assert_eq!(recs[1].s(), "after");
    run.acked(&p, size(&p));
    run.stop();
}

#[test]
fn invalid_utf8_passes_through_as_bytes() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, b"ok\n\xff\xfe bad \xc3\n").unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(2);
    assert_eq!(recs[1].text, b"\xff\xfe bad \xc3");
    run.stop();
}

#[test]
fn a_corrupt_checkpoints_file_is_kept_aside_and_reading_starts_over() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, numbered("a", 0..3)).unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    run.lines(3);
    run.acked(&p, size(&p));
    run.stop();
    let cp = d.data.join("checkpoints.json");
    let good = fs::read(&cp).unwrap();
    fs::write(&cp, &good[..good.len() / 3]).unwrap(); // as after an OOM kill
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(3).len(), 3, "read_from = beginning: again");
    run.stop();
    let kept = fs::read_dir(&d.data)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("checkpoints.json.corrupt-")
        })
        .count();
    assert_eq!(kept, 1);
    // And the new checkpoints file is good again.
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(200));
    run.stop();
}

#[test]
fn a_checkpoint_past_the_end_reads_the_file_from_the_start() {
    let d = dirs();
    let p = d.logs.join("app.log");
    // Same first bytes before and after: only the size tells.
    let header = "# header line that is longer than 32 bytes\n";
    fs::write(&p, format!("{header}{}", numbered("a", 0..20))).unwrap();
    let cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    run.lines(21);
    run.acked(&p, size(&p));
    run.stop();
    // Truncated and partly written again while stopped.
    fs::write(&p, format!("{header}{}", numbered("b", 0..2))).unwrap();
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(3);
    assert_eq!(recs[0].s(), header.trim_end());
    assert_eq!(recs[2].s(), "b line 0001");
    run.stop();
    // Same size check, but content at the position differs.
    fs::write(&p, format!("{header}{}", numbered("c", 0..30))).unwrap();
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(31).len(), 31);
    run.stop();
}

#[test]
fn new_files_are_found_by_rescans_with_double_star_and_exclude() {
    let d = dirs();
    let mut cfg = TailConfig::new([format!("{}/**/*.log", d.logs.display())]);
    cfg.exclude = vec![format!("{}/**/skip/**", d.logs.display())];
    cfg.glob_interval = Duration::from_millis(30);
    cfg.poll_interval = Duration::from_millis(5);
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(100));
    fs::create_dir_all(d.logs.join("a/b")).unwrap();
    fs::create_dir_all(d.logs.join("a/skip")).unwrap();
    fs::write(d.logs.join("a/skip/x.log"), "skipped\n").unwrap();
    fs::write(d.logs.join("a/b/deep.log"), "deep\n").unwrap();
    fs::write(d.logs.join("a/b/deep.txt"), "not a log\n").unwrap();
    let recs = run.lines(1);
    assert_eq!(texts(&recs), ["deep"]);
    assert!(recs[0].path.ends_with("a/b/deep.log"));
    run.quiet(Duration::from_millis(200));
    run.stop();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_files_are_read_whole_once() {
    let d = dirs();
    let p = d.logs.join("app.log.2.gz");
    fs::write(
        &p,
        gzip(format!("{}last", numbered("z", 0..100)).as_bytes()),
    )
    .unwrap();
    let cfg = config(&d.logs, "app.log*");
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(101);
    assert_eq!(
        recs[100].s(),
        "last",
        "the unterminated last line at the end of a gzip file"
    );
    let stream = recs[0].stream;
    let deadline = Instant::now() + WAIT;
    while !run.handle.checkpoints().iter().any(|c| c.complete) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(run.ended.contains(&stream));
    run.quiet(Duration::from_millis(200));
    run.stop();
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(300));
    run.stop();
}

#[test]
fn a_gzip_file_stopped_in_the_middle_resumes_without_duplicates() {
    let d = dirs();
    let p = d.logs.join("big.gz");
    fs::write(&p, gzip(numbered("g", 0..400).as_bytes())).unwrap();
    let mut cfg = config(&d.logs, "*.gz");
    cfg.batch_max_records = 100;
    let mut run = start(&cfg, &d.data);
    let b = run.batch(WAIT).unwrap();
    let first = Run::take(b, AckStatus::Delivered);
    assert_eq!(first.len(), 100);
    let deadline = Instant::now() + WAIT;
    while run.handle.checkpoints()[0].position == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    run.stop(); // the other batches fail
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(300);
    assert_eq!(recs[0].s(), "g line 0100");
    assert_eq!(recs[0].line, 101);
    run.stop();
}

#[test]
fn short_files_are_read_and_resumed() {
    let d = dirs();
    let p = d.logs.join("short.log");
    let mut cfg = config(&d.logs, "*.log");
    cfg.fingerprint_bytes = 1024;
    fs::write(&p, "a\n").unwrap();
    fs::write(d.logs.join("empty.log"), "").unwrap();
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(1)), ["a"]);
    append(&p, "b\n");
    assert_eq!(texts(&run.lines(1)), ["b"]);
    run.acked(&p, 4);
    run.stop();
    append(&p, "c\n");
    append(&d.logs.join("empty.log"), "e\n");
    let mut run = start(&cfg, &d.data);
    let mut got = texts(&run.lines(2));
    got.sort();
    assert_eq!(got, ["c", "e"]);
    run.quiet(Duration::from_millis(200));
    run.stop();
    // Grown past the fingerprint size while stopped: still the same file.
    append(&p, &numbered("d", 0..100));
    let mut run = start(&cfg, &d.data);
    let recs = run.lines(100);
    assert_eq!(recs[0].s(), "d line 0000");
    assert_eq!(recs[0].line, 4);
    run.stop();
    // Moved to another inode while stopped (as across file systems), now
    // with a full fingerprint: resumed by content.
    append(&p, "after move\n");
    fs::copy(&p, d.logs.join("moved.log")).unwrap();
    fs::remove_file(&p).unwrap();
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(1)), ["after move"]);
    run.quiet(Duration::from_millis(200));
    run.stop();
}

#[test]
fn a_short_file_replaced_by_another_on_a_reused_inode_is_read() {
    // Same inode, different content: the fingerprint of the short file's
    // bytes no longer matches.
    let d = dirs();
    let p = d.logs.join("s.log");
    let mut cfg = config(&d.logs, "*.log");
    cfg.fingerprint_bytes = 1024;
    fs::write(&p, "aaaa\n").unwrap();
    let mut run = start(&cfg, &d.data);
    run.lines(1);
    run.acked(&p, 5);
    run.stop();
    fs::write(&p, "bbbb\nmore\n").unwrap(); // truncate + write: same inode
    let mut run = start(&cfg, &d.data);
    assert_eq!(texts(&run.lines(2)), ["bbbb", "more"]);
    run.stop();
}

#[test]
fn many_files_are_read_fairly() {
    let d = dirs();
    let mut cfg = config(&d.logs, "*.log");
    cfg.max_read_bytes = 1024;
    cfg.batch_max_records = 10_000;
    for f in 0..5 {
        fs::write(
            d.logs.join(format!("f{f}.log")),
            numbered(&format!("f{f}"), 0..2000),
        )
        .unwrap();
    }
    let mut run = start(&cfg, &d.data);
    // Wait for all files to be open before judging.
    let mut first = Vec::new();
    while first.len() < 25 {
        let b = run.batch(WAIT).unwrap();
        first.push(b.source.name.clone());
        b.ack.complete(AckStatus::Delivered);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in &first[5..] {
        *counts.entry(n.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|&c| c == 4), "{counts:?}");
    run.stop();
}

#[test]
fn ignore_older_keeps_the_checkpoints_of_present_files() {
    let d = dirs();
    let p = d.logs.join("app.log");
    fs::write(&p, "one\n").unwrap();
    let mut cfg = config(&d.logs, "*.log");
    let mut run = start(&cfg, &d.data);
    run.lines(1);
    run.acked(&p, 4);
    run.stop();
    // Now it is "old": not opened, but its checkpoint stays.
    cfg.ignore_older = Some(Duration::from_millis(700));
    cfg.checkpoint_retention = Duration::from_millis(1);
    std::thread::sleep(Duration::from_millis(800));
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(200));
    let cps = run.handle.checkpoints();
    assert_eq!(cps.len(), 1);
    assert_eq!((cps[0].position, cps[0].removed_at), (4, None));
    // Modified again: resumed from its checkpoint.
    append(&p, "two\n");
    assert_eq!(texts(&run.lines(1)), ["two"]);
    run.stop();
    // A file gone for longer than the retention: its checkpoint expires.
    fs::remove_file(&p).unwrap();
    let run = start(&cfg, &d.data);
    let deadline = Instant::now() + WAIT;
    while !run.handle.checkpoints().is_empty() {
        assert!(Instant::now() < deadline, "{:?}", run.handle.checkpoints());
        std::thread::sleep(Duration::from_millis(20));
    }
    run.stop();
}

/// A writer appends random lines (sometimes in two writes) and rotates
/// (rename or copytruncate, with the copy included) while the source is
/// stopped and restarted at random points, and the consumer sometimes
/// drops batches unacknowledged. At the end every line was delivered
/// whole, and a line came twice only if a batch holding it was not
/// acknowledged, or it was acknowledged after a dropped batch of its file
/// in the same run (a failure holds the checkpoint for the run).
#[test]
fn randomized_rotations_and_restarts_lose_nothing() {
    let seed = std::env::var("TAIL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("TAIL_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let d = dirs();
    let p = d.logs.join("app.log");
    let mut cfg = config(&d.logs, "app.log*");
    // Every file that is rotated has a full fingerprint (see the module
    // docs for copies of shorter files: duplicates).
    cfg.fingerprint_bytes = 8;
    cfg.batch_max_records = 7;
    cfg.rotate_wait = Duration::from_secs(3600);
    let mut written: Vec<String> = Vec::new();
    let mut delivered: HashMap<String, usize> = HashMap::new();
    let mut unacked: HashMap<String, usize> = HashMap::new();
    // Per (run, stream): the lowest offset of a dropped batch.
    let mut dropped_from: HashMap<(usize, u64), u64> = HashMap::new();
    // Per line: (run, stream, offset) of each acknowledged delivery.
    let mut deliveries: HashMap<String, Vec<(usize, u64, u64)>> = HashMap::new();
    let mut next = 0usize;
    let mut rotations = 0;
    let mut pending_part: Option<String> = None;
    fs::write(&p, "").unwrap();
    for round in 0..6 {
        let mut run = start(&cfg, &d.data);
        for _step in 0..(5 + rng.below(10)) {
            match rng.below(10) {
                0 if pending_part.is_none() => {
                    // rename rotation, shifting older copies
                    rotations += 1;
                    for k in (1..rotations).rev() {
                        let from = d.logs.join(format!("app.log.{k}"));
                        if from.exists() {
                            fs::rename(&from, d.logs.join(format!("app.log.{}", k + 1))).unwrap();
                        }
                    }
                    fs::rename(&p, d.logs.join("app.log.1")).unwrap();
                    fs::write(&p, "").unwrap();
                    eprintln!("rotate by rename after L{next:06}");
                }
                1 if pending_part.is_none() => {
                    rotations += 1;
                    for k in (1..rotations).rev() {
                        let from = d.logs.join(format!("app.log.{k}"));
                        if from.exists() {
                            fs::rename(&from, d.logs.join(format!("app.log.{}", k + 1))).unwrap();
                        }
                    }
                    copytruncate(&p, &d.logs.join("app.log.1"));
                    eprintln!("copytruncate after L{next:06}");
                }
                _ => {
                    let mut chunk = String::new();
                    if let Some(rest) = pending_part.take() {
                        chunk.push_str(&rest);
                    }
                    for _ in 0..rng.below(30) {
                        let pad = "x".repeat(rng.below(60));
                        let line = format!("L{next:06} {pad}");
                        next += 1;
                        written.push(line.clone());
                        chunk.push_str(&line);
                        chunk.push('\n');
                    }
                    if rng.below(3) == 0 {
                        // half a line now, the rest with the next write
                        let line = format!("L{next:06} split");
                        next += 1;
                        written.push(line.clone());
                        let cut = 3 + rng.below(line.len() - 3);
                        chunk.push_str(&line[..cut]);
                        pending_part = Some(format!("{}\n", &line[cut..]));
                    }
                    append(&p, &chunk);
                }
            }
            // Consume for a while.
            let until = Instant::now() + Duration::from_millis(rng.below(40) as u64);
            while let Some(b) = run.batch(until.saturating_duration_since(Instant::now())) {
                let recs = records(&b);
                if rng.below(8) == 0 {
                    for r in recs {
                        let low = dropped_from.entry((round, r.stream)).or_insert(u64::MAX);
                        *low = (*low).min(r.offset);
                        *unacked.entry(r.s()).or_default() += 1;
                    }
                    drop(b);
                } else {
                    for r in recs {
                        deliveries
                            .entry(r.s())
                            .or_default()
                            .push((round, r.stream, r.offset));
                        *delivered.entry(r.s()).or_default() += 1;
                    }
                    b.ack.complete(AckStatus::Delivered);
                }
            }
        }
        if let Some(rest) = pending_part.take() {
            append(&p, &rest);
        }
        // Drain what is complete, sometimes; sometimes stop at once.
        if rng.below(2) == 0 {
            let until = Instant::now() + Duration::from_millis(300);
            while let Some(b) = run.batch(until.saturating_duration_since(Instant::now())) {
                for r in records(&b) {
                    deliveries
                        .entry(r.s())
                        .or_default()
                        .push((round, r.stream, r.offset));
                    *delivered.entry(r.s()).or_default() += 1;
                }
                b.ack.complete(AckStatus::Delivered);
            }
        }
        run.stop();
        eprintln!("restart after L{next:06}");
    }
    // A last run drains everything.
    let mut run = start(&cfg, &d.data);
    let deadline = Instant::now() + WAIT;
    while written.iter().any(|l| !delivered.contains_key(l)) {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: never delivered: {:?}",
            written
                .iter()
                .filter(|l| !delivered.contains_key(*l))
                .take(10)
                .collect::<Vec<_>>()
        );
        if let Some(b) = run.batch(Duration::from_millis(50)) {
            for r in records(&b) {
                deliveries
                    .entry(r.s())
                    .or_default()
                    .push((99, r.stream, r.offset));
                *delivered.entry(r.s()).or_default() += 1;
            }
            b.ack.complete(AckStatus::Delivered);
        }
    }
    // Batches dropped unacknowledged come again: drain them.
    while let Some(b) = run.batch(Duration::from_millis(400)) {
        for r in records(&b) {
            deliveries
                .entry(r.s())
                .or_default()
                .push((99, r.stream, r.offset));
            *delivered.entry(r.s()).or_default() += 1;
        }
        b.ack.complete(AckStatus::Delivered);
    }
    run.stop();
    let written_set: std::collections::HashSet<&String> = written.iter().collect();
    for (line, n) in &delivered {
        assert!(
            written_set.contains(line),
            "seed {seed}: a line nobody wrote (split or merged): {line:?}"
        );
        let after_a_failure = deliveries.get(line).is_some_and(|ds| {
            ds.iter().any(|(run, stream, offset)| {
                dropped_from
                    .get(&(*run, *stream))
                    .is_some_and(|low| low <= offset)
            })
        });
        assert!(
            *n == 1 || unacked.contains_key(line) || after_a_failure,
            "seed {seed}: {line:?} delivered {n} times, never dropped unacknowledged \
             nor acknowledged after a dropped batch of its file: {:?}",
            deliveries.get(line)
        );
    }
}

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

#[test]
fn hundreds_of_files_start_and_resume_quickly() {
    let d = dirs();
    let cfg = config(&d.logs, "**/*.log");
    for f in 0..300 {
        let dir = d.logs.join(format!("d{}", f % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{f}.log")),
            format!("file {f} has a line long enough\n"),
        )
        .unwrap();
    }
    let t0 = Instant::now();
    let mut run = start(&cfg, &d.data);
    assert_eq!(run.lines(300).len(), 300);
    let deadline = Instant::now() + WAIT;
    while run
        .handle
        .checkpoints()
        .iter()
        .any(|c| c.pending > 0 || c.position == 0)
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    run.stop();
    let mut run = start(&cfg, &d.data);
    run.quiet(Duration::from_millis(300));
    assert_eq!(run.handle.checkpoints().len(), 300);
    assert!(run.handle.checkpoints().iter().all(|c| c.live));
    run.stop();
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

#[test]
fn a_gzip_file_still_being_written_is_read_on_when_complete() {
    let d = dirs();
    let p = d.logs.join("app.1.gz");
    let full = gzip(numbered("g", 0..2000).as_bytes());
    fs::write(&p, &full[..full.len() / 2]).unwrap();
    let cfg = config(&d.logs, "*.gz");
    let mut run = start(&cfg, &d.data);
    // What the first half holds comes out, in whole lines.
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_millis(400);
    while let Some(b) = run.batch(until.saturating_duration_since(Instant::now())) {
        got.extend(Run::take(b, AckStatus::Delivered));
    }
    assert!(got.len() < 2000);
    fs::write(&p, &full).unwrap();
    got.extend(run.lines(2000 - got.len()));
    assert_eq!(texts(&got), texts_of(&numbered("g", 0..2000)));
    run.quiet(Duration::from_millis(200));
    run.stop();
}

// `stop_at_eof`: every file is read to its end, unfinished last lines
// included, each stream ends, and the source stops by itself; a second run
// resumes from the checkpoints and reads only what was added.
#[test]
fn stop_at_eof_reads_everything_then_ends() {
    let d = dirs();
    let a = d.logs.join("a.log");
    let b = d.logs.join("b.log");
    fs::write(&a, numbered("a", 0..500)).unwrap();
    fs::write(&b, "b-0\nb-1\nunfinished").unwrap();
    let mut cfg = config(&d.logs, "*.log");
    cfg.stop_at_eof = true;
    let mut run = start(&cfg, &d.data);
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    // The channel closes when the source ends.
    loop {
        match run.rx.try_recv() {
            Ok(batch) => {
                if batch.end_of_stream {
                    run.ended.push(batch.stream);
                }
                got.extend(Run::take(batch, AckStatus::Delivered));
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "the source never ended");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    let mut t = texts(&got);
    t.sort();
    let mut want = texts_of(&numbered("a", 0..500));
    want.extend(["b-0".to_string(), "b-1".into(), "unfinished".into()]);
    want.sort();
    assert_eq!(t, want);
    assert_eq!(run.ended.len(), 2, "both streams end");
    run.stop.cancel();
    run.handle.join().unwrap();

    append(&a, &numbered("a", 500..510));
    let mut run = start(&cfg, &d.data);
    let mut again = Vec::new();
    while let Some(batch) = run.batch(WAIT) {
        again.extend(Run::take(batch, AckStatus::Delivered));
    }
    assert_eq!(texts(&again), texts_of(&numbered("a", 500..510)));
    run.stop();
}
