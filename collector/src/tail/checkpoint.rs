//! Checkpoints: per file identity, how far the pipeline acknowledged it,
//! kept in memory, advanced by acknowledgements and written to
//! `<data_dir>/checkpoints.json`.
//!
//! A checkpoint advances only over the contiguous prefix of delivered
//! batches of its file (batches can complete out of order). A failed batch
//! stops it for the rest of the run: what follows is read again after a
//! restart.
//!
//! The file is written at most once a second when something changed, and at
//! shutdown: `checkpoints.json.tmp`, fsync, rename over `checkpoints.json`,
//! fsync of the directory. On start, a complete `.tmp` (a crash between
//! write and rename) is newer than the main file and is used. A main file
//! that does not parse is kept as `checkpoints.json.corrupt-<unix ms>`, an
//! error is logged, and files start from `read_from` (Vector #20753 made
//! this fatal or silent).
//!
//! Entries of files that disappeared carry `removed_at` (persisted, so files
//! removed while mlsoc was stopped expire too) and are dropped after the
//! retention; entries of files that exist never expire.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use schema::AckStatus;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::fingerprint::Fingerprint;

pub const FILE_NAME: &str = "checkpoints.json";
const TMP_NAME: &str = "checkpoints.json.tmp";
const VERSION: u32 = 1;
/// Least time between two writes of the checkpoints file.
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn system_time_ms(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// What a batch's acknowledgement reports to the checkpointer.
#[derive(Debug, Clone)]
pub struct AckMsg {
    pub id: u64,
    pub seq: u64,
    /// Offset just past the batch's last line.
    pub end: u64,
    /// Number of the batch's last line.
    pub line: u64,
    /// Fingerprint of the bytes before `end` (plain files).
    pub tail: Option<Fingerprint>,
    /// The batch ends a gzip file: the file is done once it is delivered.
    pub complete: bool,
    pub status: AckStatus,
}

/// One file identity.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Last path the file was seen at.
    pub path: String,
    pub dev: u64,
    pub inode: u64,
    /// Of the first `fingerprint.bytes` bytes (fewer than configured while
    /// the file is shorter).
    pub fingerprint: Fingerprint,
    /// Acknowledged position: everything before it was delivered.
    pub position: u64,
    /// Lines before `position`.
    pub line: u64,
    /// Fingerprint of the bytes just before `position`.
    pub tail: Option<Fingerprint>,
    pub gzip: bool,
    /// A gzip file delivered to its end.
    pub complete: bool,
    /// The file's modification time when last looked at (Unix ms).
    pub modified: Option<u64>,
    /// When the file was last found missing (Unix ms).
    pub removed_at: Option<u64>,

    // Runtime state, not persisted.
    /// A reader holds this identity open.
    pub live: bool,
    /// Batches issued this run; the next batch's sequence number.
    pub next_seq: u64,
    /// Batches acknowledged this run in order.
    pub next_ack: u64,
    /// Acknowledgements that came before an earlier batch's.
    pub waiting: BTreeMap<u64, AckMsg>,
    /// A batch failed: the position does not move again this run.
    pub failed: bool,
    /// Where reading got to this run (offset, lines, fingerprint of the
    /// bytes before): a file that takes this identity over in this run (a
    /// copytruncate copy, a file closed as idle) continues there, not at
    /// the acknowledged position.
    pub read: Option<(u64, u64, Option<Fingerprint>)>,
    /// A gzip file read to its end this run (`complete` once delivered).
    pub done_reading: bool,
    /// Last known size, for the lag gauge.
    pub size: u64,
}

impl Entry {
    pub fn new(id: u64, path: String, dev: u64, inode: u64, fingerprint: Fingerprint) -> Entry {
        Entry {
            id,
            path,
            dev,
            inode,
            fingerprint,
            position: 0,
            line: 0,
            tail: None,
            gzip: false,
            complete: false,
            modified: None,
            removed_at: None,
            live: false,
            next_seq: 0,
            next_ack: 0,
            waiting: BTreeMap::new(),
            failed: false,
            read: None,
            done_reading: false,
            size: 0,
        }
    }

    /// Batches sent and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.next_seq - self.next_ack
    }
}

/// A view of one checkpoint, for tests and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheckpoint {
    pub id: u64,
    /// The `SourceBatch::stream` of the file's batches.
    pub stream: u64,
    pub path: String,
    pub position: u64,
    pub line: u64,
    /// Last known size of the file.
    pub size: u64,
    /// Batches sent and not yet acknowledged.
    pub pending: u64,
    /// Open by the reader.
    pub live: bool,
    /// A batch failed this run.
    pub failed: bool,
    pub gzip: bool,
    pub complete: bool,
    pub removed_at: Option<u64>,
}

/// Every checkpoint of one source.
#[derive(Debug)]
pub struct Table {
    pub source: Arc<str>,
    pub entries: BTreeMap<u64, Entry>,
    pub next_id: u64,
    /// Changed since the last write.
    pub dirty: bool,
}

/// `SourceBatch::stream` of an identity: the source's name hashed into the
/// high half, so two file sources' streams differ.
pub fn stream_id(source: &str, id: u64) -> u64 {
    (u64::from(crc32fast::hash(source.as_bytes())) << 32) | (id & 0xffff_ffff)
}

impl Table {
    pub fn new(source: Arc<str>, loaded: Vec<Entry>) -> Table {
        let next_id = loaded.iter().map(|e| e.id + 1).max().unwrap_or(1);
        Table {
            source,
            entries: loaded.into_iter().map(|e| (e.id, e)).collect(),
            next_id,
            dirty: false,
        }
    }

    /// A new identity.
    pub fn insert(&mut self, path: String, dev: u64, inode: u64, fp: Fingerprint) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries
            .insert(id, Entry::new(id, path, dev, inode, fp));
        self.dirty = true;
        id
    }

    pub fn apply(&mut self, msg: AckMsg) {
        let source = self.source.clone();
        let Some(e) = self.entries.get_mut(&msg.id) else {
            return;
        };
        e.waiting.insert(msg.seq, msg);
        while let Some(m) = e.waiting.remove(&e.next_ack) {
            e.next_ack += 1;
            if e.failed {
                continue;
            }
            match m.status {
                AckStatus::Delivered => {
                    e.position = m.end;
                    e.line = m.line;
                    e.tail = m.tail;
                    e.complete |= m.complete;
                    self.dirty = true;
                }
                AckStatus::Failed => {
                    e.failed = true;
                    tracing::warn!(
                        source = %source,
                        file = %e.path,
                        position = e.position,
                        "a batch was not delivered: this file's checkpoint stays at {} for this run; \
                         what follows is read again after a restart",
                        e.position
                    );
                }
            }
        }
        lag_gauge(&source, e);
    }

    pub fn snapshot(&self) -> Vec<FileCheckpoint> {
        self.entries
            .values()
            .map(|e| FileCheckpoint {
                id: e.id,
                stream: stream_id(&self.source, e.id),
                path: e.path.clone(),
                position: e.position,
                line: e.line,
                size: e.size,
                pending: e.pending(),
                live: e.live,
                failed: e.failed,
                gzip: e.gzip,
                complete: e.complete,
                removed_at: e.removed_at,
            })
            .collect()
    }

    /// Drops entries of files gone longer than `retention`.
    pub fn expire(&mut self, now: u64, retention: Duration) {
        let keep = retention.as_millis() as u64;
        let before = self.entries.len();
        self.entries.retain(|_, e| {
            e.live || e.pending() > 0 || e.removed_at.is_none_or(|r| now.saturating_sub(r) < keep)
        });
        if self.entries.len() != before {
            tracing::debug!(source = %self.source, expired = before - self.entries.len(), "checkpoints of long gone files expired");
            self.dirty = true;
        }
    }

    fn stored(&self) -> Stored {
        Stored {
            version: VERSION,
            source: self.source.to_string(),
            files: self
                .entries
                .values()
                .map(|e| StoredEntry {
                    id: e.id,
                    path: e.path.clone(),
                    dev: e.dev,
                    inode: e.inode,
                    fingerprint: e.fingerprint,
                    position: e.position,
                    line: e.line,
                    tail: e.tail,
                    gzip: e.gzip,
                    complete: e.complete,
                    modified: e.modified,
                    removed_at: e.removed_at,
                })
                .collect(),
        }
    }
}

/// The lag gauge: bytes of the file not yet acknowledged.
pub fn lag_gauge(source: &Arc<str>, e: &Entry) {
    let lag = e.size.saturating_sub(e.position);
    metrics::gauge!("mlsoc_file_lag_bytes", "source" => source.to_string(), "file" => e.path.clone())
        .set(lag as f64);
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u32,
    source: String,
    files: Vec<StoredEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry {
    id: u64,
    path: String,
    dev: u64,
    inode: u64,
    fingerprint: Fingerprint,
    position: u64,
    line: u64,
    tail: Option<Fingerprint>,
    gzip: bool,
    complete: bool,
    modified: Option<u64>,
    removed_at: Option<u64>,
}

fn parse(data: &[u8]) -> Result<Vec<Entry>, String> {
    let s: Stored = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if s.version != VERSION {
        return Err(format!("unknown version {}", s.version));
    }
    Ok(s.files
        .into_iter()
        .map(|f| {
            let mut e = Entry::new(f.id, f.path, f.dev, f.inode, f.fingerprint);
            e.position = f.position;
            e.line = f.line;
            e.tail = f.tail;
            e.gzip = f.gzip;
            e.complete = f.complete;
            e.modified = f.modified;
            e.removed_at = f.removed_at;
            e
        })
        .collect())
}

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    pub entries: Vec<Entry>,
    /// The checkpoints could not be read (kept aside and logged): files
    /// start from `read_from`.
    pub corrupt: bool,
}

/// Reads the checkpoints of `dir`. Never fails: a corrupt file is kept
/// aside and reported, and reading starts without checkpoints.
pub fn load(source: &str, dir: &Path) -> Loaded {
    let main = dir.join(FILE_NAME);
    let tmp = dir.join(TMP_NAME);
    if let Ok(data) = std::fs::read(&tmp) {
        match parse(&data) {
            Ok(entries) => {
                tracing::info!(source, file = %tmp.display(), "using checkpoints written just before a stop");
                return Loaded {
                    entries,
                    corrupt: false,
                };
            }
            Err(e) => {
                // A write cut short; the main file is the last good one.
                tracing::debug!(source, file = %tmp.display(), error = %e, "ignoring a partly written checkpoints file");
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    let data = match std::fs::read(&main) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Loaded {
                entries: Vec::new(),
                corrupt: false,
            };
        }
        Err(e) => {
            tracing::error!(source, file = %main.display(), error = %e, "cannot read the checkpoints: files start from read_from");
            return Loaded {
                entries: Vec::new(),
                corrupt: true,
            };
        }
    };
    match parse(&data) {
        Ok(entries) => Loaded {
            entries,
            corrupt: false,
        },
        Err(e) => {
            let aside = dir.join(format!("{FILE_NAME}.corrupt-{}", now_ms()));
            let kept = std::fs::rename(&main, &aside);
            tracing::error!(
                source,
                file = %main.display(),
                error = %e,
                kept_as = %aside.display(),
                kept = kept.is_ok(),
                "the checkpoints file is corrupt: it is kept aside and files start from read_from \
                 (read_from = beginning reads them again: duplicates, no loss)"
            );
            Loaded {
                entries: Vec::new(),
                corrupt: true,
            }
        }
    }
}

/// Writes the checkpoints atomically: tmp file, fsync, rename, fsync of
/// the directory.
pub fn store(dir: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(TMP_NAME);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, dir.join(FILE_NAME))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// The checkpointer thread's state.
pub struct Checkpointer {
    pub table: Arc<Mutex<Table>>,
    pub acks: Receiver<AckMsg>,
    pub dir: PathBuf,
    pub stop: CancellationToken,
    pub retention: Duration,
    pub shutdown_timeout: Duration,
}

impl Checkpointer {
    /// Applies acknowledgements and writes the checkpoints until every
    /// acknowledgement sender is gone (the reader stopped and every batch
    /// was completed), or `shutdown_timeout` after the stop.
    pub fn run(self) {
        let mut last_write: Option<Instant> = None;
        let mut stopped_at: Option<Instant> = None;
        loop {
            let mut disconnected = false;
            match self.acks.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => {
                    let mut t = lock(&self.table);
                    t.apply(m);
                    while let Ok(m) = self.acks.try_recv() {
                        t.apply(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            if self.stop.is_cancelled() && stopped_at.is_none() {
                stopped_at = Some(Instant::now());
            }
            let out_of_time = stopped_at.is_some_and(|s| s.elapsed() >= self.shutdown_timeout);
            if disconnected || out_of_time {
                if out_of_time && !disconnected {
                    let t = lock(&self.table);
                    tracing::warn!(
                        source = %t.source,
                        pending = t.entries.values().map(Entry::pending).sum::<u64>(),
                        "stopping without the acknowledgement of every batch: those are read again after a restart"
                    );
                }
                self.write();
                return;
            }
            if last_write.is_none_or(|w| w.elapsed() >= WRITE_INTERVAL) {
                let dirty = {
                    let mut t = lock(&self.table);
                    t.expire(now_ms(), self.retention);
                    t.dirty
                };
                if dirty {
                    self.write();
                }
                last_write = Some(Instant::now());
            }
        }
    }

    fn write(&self) {
        let (data, source) = {
            let mut t = lock(&self.table);
            t.expire(now_ms(), self.retention);
            t.dirty = false;
            let data = serde_json::to_vec_pretty(&t.stored()).expect("checkpoints serialize");
            (data, t.source.clone())
        };
        match store(&self.dir, &data) {
            Ok(()) => {
                metrics::counter!("mlsoc_checkpoint_writes_total", "source" => source.to_string())
                    .increment(1);
            }
            Err(e) => {
                lock(&self.table).dirty = true;
                tracing::error!(source = %source, dir = %self.dir.display(), error = %e, "cannot write the checkpoints; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, end: u64, status: AckStatus) -> AckMsg {
        AckMsg {
            id: 1,
            seq,
            end,
            line: seq + 1,
            tail: None,
            complete: false,
            status,
        }
    }

    fn table() -> Table {
        let mut t = Table::new("s".into(), Vec::new());
        let id = t.insert("a.log".into(), 1, 2, Fingerprint::of(b"x"));
        assert_eq!(id, 1);
        t.entries.get_mut(&1).unwrap().next_seq = 4;
        t
    }

    #[test]
    fn advances_over_the_contiguous_delivered_prefix_only() {
        let mut t = table();
        t.apply(msg(1, 20, AckStatus::Delivered));
        t.apply(msg(2, 30, AckStatus::Delivered));
        assert_eq!(t.entries[&1].position, 0, "batch 0 is still out");
        t.apply(msg(0, 10, AckStatus::Delivered));
        assert_eq!((t.entries[&1].position, t.entries[&1].line), (30, 3));
        assert_eq!(t.entries[&1].pending(), 1);
    }

    #[test]
    fn a_failed_batch_stops_the_checkpoint_for_the_run() {
        let mut t = table();
        t.apply(msg(0, 10, AckStatus::Delivered));
        t.apply(msg(2, 30, AckStatus::Delivered));
        t.apply(msg(1, 20, AckStatus::Failed));
        t.apply(msg(3, 40, AckStatus::Delivered));
        let e = &t.entries[&1];
        assert_eq!(e.position, 10);
        assert!(e.failed);
        assert_eq!(e.pending(), 0);
    }

    #[test]
    fn store_load_corrupt_and_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = table();
        t.apply(msg(0, 10, AckStatus::Delivered));
        t.entries.get_mut(&1).unwrap().removed_at = Some(5);
        store(d, &serde_json::to_vec(&t.stored()).unwrap()).unwrap();
        let l = load("s", d);
        assert!(!l.corrupt);
        assert_eq!(l.entries.len(), 1);
        assert_eq!(
            (l.entries[0].position, l.entries[0].removed_at),
            (10, Some(5))
        );
        assert_eq!(Table::new("s".into(), l.entries).next_id, 2);

        // A half-written tmp is ignored and removed.
        std::fs::write(d.join(TMP_NAME), b"{\"version\":1,\"fi").unwrap();
        assert_eq!(load("s", d).entries.len(), 1);
        assert!(!d.join(TMP_NAME).exists());

        // A truncated main file: kept aside, reported, no entries.
        let good = std::fs::read(d.join(FILE_NAME)).unwrap();
        std::fs::write(d.join(FILE_NAME), &good[..good.len() / 2]).unwrap();
        let l = load("s", d);
        assert!(l.corrupt);
        assert!(l.entries.is_empty());
        let aside: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("checkpoints.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(d.join(&aside[0])).unwrap(),
            &good[..good.len() / 2]
        );
    }

    #[test]
    fn entries_expire_only_when_gone_long_enough() {
        let mut t = table();
        t.entries.get_mut(&1).unwrap().next_seq = 0;
        let id2 = t.insert("b.log".into(), 1, 3, Fingerprint::of(b"y"));
        let id3 = t.insert("c.log".into(), 1, 4, Fingerprint::of(b"z"));
        t.entries.get_mut(&id2).unwrap().removed_at = Some(1_000);
        t.entries.get_mut(&id3).unwrap().removed_at = Some(9_000);
        t.expire(10_000, Duration::from_secs(5));
        assert_eq!(t.entries.keys().copied().collect::<Vec<_>>(), [1, id3]);
    }
}
