//! The reader thread: discovers files, decides which identity each one is,
//! reads them round robin, follows rotations and truncations, and hands
//! batches to the pipeline.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Instant, SystemTime};

use schema::{Ack, RawRecord, Source, Timestamp};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use super::checkpoint::{AckMsg, Table, lag_gauge, lock, now_ms, stream_id, system_time_ms};
use super::config::{ReadFrom, TailConfig};
use super::discovery::{Found, Globs};
use super::fingerprint::{self, Fingerprint};
use super::reader::{Key, Look, Tracked, end_of_last_line, key_of};
use crate::batch::SourceBatch;
use crate::lines::Line;

/// A file found but not opened, remembered until its size or modification
/// time changes.
struct Untracked {
    size: u64,
    modified: Option<SystemTime>,
    why: Waiting,
    /// First seen in the first scan (`read_from = end` applies).
    at_start: bool,
    /// The checkpoint it matched, or (for a copy) the identity of the
    /// open file it is a copy of.
    entry: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// A gzip file seen once: opened when it did not change by the next
    /// scan (a file being compressed is not a valid stream yet).
    Gzip,
    /// Not modified within `ignore_older`.
    Old,
    /// A gzip file read to its end.
    Done,
    /// Its first bytes and its end are those of an open file: a copy
    /// (copytruncate between the copy and the truncate). Looked at again
    /// at every scan.
    Copy,
    /// Could not be opened or read (permissions): tried again at every
    /// scan, warned about once.
    Unreadable,
    /// A gzip stream that ends early (still being written, or cut short):
    /// opened again, where reading stopped, once it changed and is stable.
    GzipShort,
}

/// A file found by a scan that no open file is.
struct Candidate {
    path: PathBuf,
    key: Key,
    file: File,
    head: Vec<u8>,
    gzip: bool,
    size: u64,
    modified: Option<SystemTime>,
    old: bool,
    at_start: bool,
}

/// What to open after a scan.
struct ToOpen {
    c: Candidate,
    id: u64,
    start: u64,
    lines: u64,
    resumed: bool,
    /// The file resumes before where its identity's reading got to (a
    /// copy shorter than what was read of its original): an empty batch
    /// moves the checkpoint back to `start` once what came before is
    /// acknowledged, so a restart does not find it past the end.
    reanchor: bool,
}

/// Where batches go: the pipeline, and the checkpointer through their
/// acknowledgements.
struct Outlet {
    name: Arc<str>,
    table: Arc<Mutex<Table>>,
    acks: mpsc::Sender<AckMsg>,
    out: Sender<SourceBatch>,
    stop: CancellationToken,
    fingerprint_bytes: usize,
    /// The pipeline is gone or the source was stopped while sending.
    closed: bool,
}

pub struct Server {
    name: Arc<str>,
    cfg: TailConfig,
    globs: Globs,
    table: Arc<Mutex<Table>>,
    stop: CancellationToken,
    outlet: Outlet,
    files: Vec<Tracked>,
    untracked: HashMap<Key, Untracked>,
    first_scan: bool,
    rr: usize,
}

impl Server {
    pub fn new(
        name: Arc<str>,
        cfg: TailConfig,
        globs: Globs,
        table: Arc<Mutex<Table>>,
        acks: mpsc::Sender<AckMsg>,
        out: Sender<SourceBatch>,
        stop: CancellationToken,
    ) -> Server {
        Server {
            outlet: Outlet {
                name: name.clone(),
                table: table.clone(),
                acks,
                out,
                stop: stop.clone(),
                fingerprint_bytes: cfg.fingerprint_bytes,
                closed: false,
            },
            name,
            cfg,
            globs,
            table,
            stop,
            files: Vec::new(),
            untracked: HashMap::new(),
            first_scan: true,
            rr: 0,
        }
    }

    pub fn run(mut self) {
        let mut next_scan = Instant::now();
        let mut quiet_scans = 0u32;
        while !self.stop.is_cancelled() && !self.outlet.closed {
            if Instant::now() >= next_scan || (self.cfg.stop_at_eof && quiet_scans > 0) {
                self.scan();
                next_scan = Instant::now() + self.cfg.glob_interval;
            }
            let progress = self.pass_all();
            if self.outlet.closed {
                break;
            }
            if self.cfg.stop_at_eof {
                if progress {
                    quiet_scans = 0;
                } else {
                    quiet_scans += 1;
                    if quiet_scans >= 3 {
                        self.finish_all();
                        break;
                    }
                    continue;
                }
            }
            if !progress {
                let wake = next_scan.min(Instant::now() + self.cfg.poll_interval);
                sleep_until(&self.stop, wake);
            }
        }
        tracing::debug!(source = %self.name, "file source stopped");
    }

    fn n(&self) -> usize {
        self.cfg.fingerprint_bytes
    }

    /// Walks the patterns: follows renamed files, notices removed ones,
    /// opens new ones.
    fn scan(&mut self) {
        // Truncated files first: a copy found by this scan can then take
        // their identity over (copytruncate makes the copy first).
        let mut retired = Vec::new();
        let mut i = 0;
        while i < self.files.len() {
            if self.look(i) == Some(Look::Truncated) {
                match self.retire(i) {
                    Some(t) => retired.push(t),
                    None => return, // stopped
                }
            } else {
                i += 1;
            }
        }
        self.scan_patterns();
        for t in retired {
            self.end_retired(t);
        }
    }

    /// Looks at an open plain file (see [`Tracked::look`]); a short file's
    /// fingerprint grows with it.
    fn look(&mut self, i: usize) -> Option<Look> {
        let n = self.n();
        let t = &mut self.files[i];
        if t.gzip {
            return Some(Look::Same);
        }
        let head_len = t.head.len();
        match t.look(n) {
            Ok(look) => {
                if look == Look::Grew && t.head.len() != head_len {
                    let mut tb = lock(&self.table);
                    if let Some(e) = tb.entries.get_mut(&t.id) {
                        e.fingerprint = t.fingerprint();
                        tb.dirty = true;
                    }
                }
                Some(look)
            }
            Err(e) => {
                tracing::warn!(source = %self.name, file = %t.path.display(), error = %e, "cannot look at the file");
                None
            }
        }
    }

    fn scan_patterns(&mut self) {
        let found = self.globs.scan();
        let mut seen_tracked = vec![false; self.files.len()];
        let index: HashMap<Key, usize> = self
            .files
            .iter()
            .enumerate()
            .map(|(i, t)| (t.key, i))
            .collect();
        let mut seen_keys = HashSet::new();
        let mut new = Vec::new();
        for f in found {
            let key = key_of(&f.meta);
            if !seen_keys.insert(key) {
                continue; // a second name (hard or symbolic link) of a file already seen
            }
            if let Some(&i) = index.get(&key) {
                seen_tracked[i] = true;
                self.follow(i, &f);
                continue;
            }
            new.push(f);
        }
        for (i, seen) in seen_tracked.into_iter().enumerate() {
            let t = &mut self.files[i];
            if !seen && t.gone.is_none() {
                t.gone = Some(Instant::now());
                tracing::info!(source = %self.name, file = %t.path.display(), "file removed or renamed out of the patterns; reading it to its end");
            }
        }
        let mut present = HashSet::new();
        self.decide(new, &mut present);
        self.untracked.retain(|k, _| seen_keys.contains(k));
        self.close_idle();
        let now = now_ms();
        let mut t = lock(&self.table);
        let mut changed = false;
        for e in t.entries.values_mut() {
            if e.live || present.contains(&e.id) {
                if e.removed_at.take().is_some() {
                    changed = true;
                }
            } else if e.removed_at.is_none() {
                e.removed_at = Some(now);
                changed = true;
            }
        }
        t.dirty |= changed;
        drop(t);
        self.first_scan = false;
        metrics::gauge!("mlsoc_files_open", "source" => self.name.to_string())
            .set(self.files.len() as f64);
    }

    /// An open file found by a scan: renamed, or back in the patterns.
    fn follow(&mut self, i: usize, f: &Found) {
        let t = &mut self.files[i];
        if t.gone.take().is_some() {
            tracing::info!(source = %self.name, file = %f.path.display(), "file is back in the patterns");
        }
        if t.path == f.path {
            return;
        }
        // Two names of one file (a link): keep the one in use.
        if std::fs::metadata(&t.path).is_ok_and(|m| key_of(&m) == t.key) {
            return;
        }
        tracing::info!(source = %self.name, from = %t.path.display(), to = %f.path.display(), "file renamed (rotated); still reading it");
        t.path = f.path.clone();
        let path = f.path.to_string_lossy().into_owned();
        let mut tb = lock(&self.table);
        if let Some(e) = tb.entries.get_mut(&t.id) {
            e.path = path;
            tb.dirty = true;
        }
    }

    fn candidate(&mut self, f: Found) -> Option<Candidate> {
        let key = key_of(&f.meta);
        let size = f.meta.len();
        let modified = f.meta.modified().ok();
        let cached = self.untracked.get(&key);
        let same = cached.is_some_and(|c| c.size == size && c.modified == modified);
        let at_start = cached.map_or(self.first_scan, |c| c.at_start);
        if same {
            let c = cached.expect("checked");
            if matches!(c.why, Waiting::Old | Waiting::Done | Waiting::GzipShort) {
                return None;
            }
        }
        let warned = cached.is_some_and(|c| c.why == Waiting::Unreadable);
        let opened = File::open(&f.path).and_then(|file| {
            let head = fingerprint::read_at(&file, 0, self.n())?;
            Ok((file, head))
        });
        let (file, head) = match opened {
            Ok(x) => x,
            Err(e) => {
                if warned {
                    tracing::debug!(source = %self.name, file = %f.path.display(), error = %e, "still cannot read");
                } else {
                    tracing::warn!(source = %self.name, file = %f.path.display(), error = %e, "cannot read; trying again at every scan");
                }
                self.untracked.insert(
                    key,
                    Untracked {
                        size,
                        modified,
                        why: Waiting::Unreadable,
                        at_start,
                        entry: None,
                    },
                );
                return None;
            }
        };
        if file.metadata().map(|m| key_of(&m)).ok() != Some(key) {
            return None; // replaced since the walk: next scan
        }
        let gzip = fingerprint::is_gzip(&head);
        if gzip && !(same && cached.is_some_and(|c| c.why == Waiting::Gzip)) {
            self.untracked.insert(
                key,
                Untracked {
                    size,
                    modified,
                    why: Waiting::Gzip,
                    at_start,
                    entry: None,
                },
            );
            return None;
        }
        let old = self.cfg.ignore_older.is_some_and(|age| {
            modified
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|e| e > age)
        });
        Some(Candidate {
            path: f.path,
            key,
            file,
            head,
            gzip,
            size,
            modified,
            old,
            at_start,
        })
    }

    /// Decides, for files no open file is, which identity each one is:
    /// a checkpoint's (resume), a copy of an open file (skip), or new.
    fn decide(&mut self, found: Vec<Found>, present: &mut HashSet<u64>) {
        // Files remembered as old or done keep their checkpoint alive.
        for f in &found {
            if let Some(u) = self.untracked.get(&key_of(&f.meta))
                && let Some(id) = u.entry
            {
                present.insert(id);
            }
        }
        // Files verified as copies of an open file at an earlier scan.
        let copies: HashMap<Key, (u64, u64, Option<SystemTime>)> = self
            .untracked
            .iter()
            .filter(|(_, u)| u.why == Waiting::Copy)
            .filter_map(|(k, u)| Some((*k, (u.entry?, u.size, u.modified))))
            .collect();
        let cands: Vec<Candidate> = found
            .into_iter()
            .filter_map(|f| self.candidate(f))
            .collect();
        if cands.is_empty() {
            return;
        }
        let n = self.n() as u64;
        let mut opens = Vec::new();
        {
            let mut table = lock(&self.table);
            // Checkpoints not in use, indexed: full fingerprints by CRC,
            // short ones by device and inode (they match only there).
            let mut by_crc: HashMap<u32, Vec<u64>> = HashMap::new();
            let mut by_key: HashMap<Key, Vec<u64>> = HashMap::new();
            let mut wider = Vec::new(); // written with a larger fingerprint_bytes
            let mut known_places: HashSet<&str> = HashSet::new();
            let mut known_keys: HashSet<Key> = HashSet::new();
            for e in table.entries.values() {
                known_places.insert(&e.path);
                known_keys.insert((e.dev, e.inode));
                if e.live {
                    continue;
                }
                match e.fingerprint.bytes.cmp(&n) {
                    std::cmp::Ordering::Equal => {
                        by_crc.entry(e.fingerprint.crc32).or_default().push(e.id)
                    }
                    std::cmp::Ordering::Less => {
                        by_key.entry((e.dev, e.inode)).or_default().push(e.id)
                    }
                    std::cmp::Ordering::Greater => wider.push(e.id),
                }
            }
            // Open files by the CRC of their full head, for copies.
            let mut heads: HashMap<u32, Vec<usize>> = HashMap::new();
            for (i, t) in self.files.iter().enumerate() {
                if !t.gzip && t.head.len() as u64 == n {
                    heads.entry(crc32fast::hash(&t.head)).or_default().push(i);
                }
            }
            // Every (file, checkpoint) pair whose fingerprints agree.
            let mut pairs = Vec::new();
            let mut known_place = vec![false; cands.len()];
            for (ci, c) in cands.iter().enumerate() {
                known_place[ci] = known_places.contains(&*c.path.to_string_lossy())
                    || known_keys.contains(&c.key);
                let full_crc = (c.head.len() as u64 == n).then(|| crc32fast::hash(&c.head));
                let ids = full_crc
                    .and_then(|crc| by_crc.get(&crc))
                    .into_iter()
                    .chain(by_key.get(&c.key))
                    .flatten()
                    .chain(&wider);
                for id in ids {
                    let e = &table.entries[id];
                    if e.gzip != c.gzip {
                        continue;
                    }
                    let full = e.fingerprint.bytes >= n;
                    let same_file = (e.dev, e.inode) == c.key;
                    if !full && !same_file {
                        continue;
                    }
                    if !prefix_matches(&c.file, &c.head, e.fingerprint) {
                        continue;
                    }
                    let (pos, _, tail) = resume_point(e);
                    // A copy of this identity's file, verified while both
                    // were there and unchanged since: it holds nothing that
                    // was not read, even when it is shorter.
                    let verified_copy = copies.get(&c.key).is_some_and(|&(of, size, modified)| {
                        of == e.id && size == c.size && modified == c.modified
                    });
                    let valid = c.gzip
                        || verified_copy
                        || (pos <= c.size
                            && match tail {
                                Some(fp) if pos > 0 => {
                                    fingerprint::matches_before(&c.file, pos, fp).unwrap_or(false)
                                }
                                _ => true,
                            });
                    let score = if same_file {
                        2
                    } else if e.path == c.path.to_string_lossy() {
                        1
                    } else {
                        0
                    };
                    pairs.push((valid, score, ci, e.id));
                }
            }
            pairs.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2)));
            let mut assigned: Vec<Option<u64>> = vec![None; cands.len()];
            let mut stale: Vec<Option<u64>> = vec![None; cands.len()];
            let mut taken = HashSet::new();
            for &(valid, _, ci, id) in &pairs {
                if !valid {
                    stale[ci].get_or_insert(id);
                    continue;
                }
                if assigned[ci].is_none() && !taken.contains(&id) {
                    assigned[ci] = Some(id);
                    taken.insert(id);
                }
            }
            for (ci, c) in cands.into_iter().enumerate() {
                let remember = |this: &mut HashMap<Key, Untracked>, why, entry| {
                    this.insert(
                        c.key,
                        Untracked {
                            size: c.size,
                            modified: c.modified,
                            why,
                            at_start: c.at_start,
                            entry,
                        },
                    );
                };
                if let Some(id) = assigned[ci] {
                    present.insert(id);
                    let e = table.entries.get_mut(&id).expect("assigned entries exist");
                    if e.complete || e.done_reading {
                        remember(&mut self.untracked, Waiting::Done, Some(id));
                        continue;
                    }
                    if c.old {
                        remember(&mut self.untracked, Waiting::Old, Some(id));
                        continue;
                    }
                    let (pos, lines, _) = resume_point(e);
                    let start = if c.gzip { pos } else { pos.min(c.size) };
                    e.live = true;
                    e.path = c.path.to_string_lossy().into_owned();
                    (e.dev, e.inode) = c.key;
                    e.size = c.size;
                    e.modified = c.modified.and_then(system_time_ms);
                    table.dirty = true;
                    self.untracked.remove(&c.key);
                    opens.push(ToOpen {
                        c,
                        id,
                        start,
                        lines,
                        resumed: true,
                        reanchor: start < pos,
                    });
                    continue;
                }
                if c.old {
                    remember(&mut self.untracked, Waiting::Old, None);
                    continue;
                }
                if let Some((of, of_id)) = self.copy_of(&c, &heads) {
                    if self
                        .untracked
                        .get(&c.key)
                        .is_none_or(|u| u.why != Waiting::Copy)
                    {
                        tracing::info!(source = %self.name, file = %c.path.display(), of = %of.display(), "a copy of an open file (copytruncate?): not read while the original is");
                    }
                    remember(&mut self.untracked, Waiting::Copy, Some(of_id));
                    continue;
                }
                // A new identity.
                let path = c.path.to_string_lossy().into_owned();
                if let Some(id) = stale[ci] {
                    let e = &table.entries[&id];
                    let (pos, _, _) = resume_point(e);
                    tracing::warn!(
                        source = %self.name,
                        file = %path,
                        checkpoint = pos,
                        size = c.size,
                        "the file's checkpoint is past its end or its content differs there: \
                         it was truncated or replaced; reading it from the start"
                    );
                }
                let from_end = self.cfg.read_from == ReadFrom::End
                    && c.at_start
                    && stale[ci].is_none()
                    && !known_place[ci];
                let id = table.insert(path, c.key.0, c.key.1, Fingerprint::of(&c.head));
                let e = table.entries.get_mut(&id).expect("just inserted");
                e.gzip = c.gzip;
                e.size = c.size;
                e.modified = c.modified.and_then(system_time_ms);
                present.insert(id);
                if from_end {
                    if c.gzip {
                        e.complete = true;
                        remember(&mut self.untracked, Waiting::Done, Some(id));
                        continue;
                    }
                    match end_of_last_line(&c.file, c.size) {
                        Ok(p) => e.position = p,
                        Err(err) => {
                            tracing::warn!(source = %self.name, file = %c.path.display(), error = %err, "cannot find the end; reading from the start");
                        }
                    }
                }
                e.live = true;
                let start = e.position;
                self.untracked.remove(&c.key);
                opens.push(ToOpen {
                    c,
                    id,
                    start,
                    lines: 0,
                    resumed: false,
                    reanchor: false,
                });
            }
        }
        for o in opens {
            self.open(o);
        }
    }

    /// The open file that `c` is a copy of: same first bytes (a full
    /// fingerprint), not longer, and the same bytes at its end.
    fn copy_of(&self, c: &Candidate, heads: &HashMap<u32, Vec<usize>>) -> Option<(PathBuf, u64)> {
        let n = self.n();
        if c.gzip || c.head.len() < n {
            return None;
        }
        let same_head = heads.get(&crc32fast::hash(&c.head))?;
        for t in same_head.iter().map(|&i| &self.files[i]) {
            if t.head != c.head {
                continue;
            }
            let size = t.file().metadata().map_or(t.size, |m| m.len());
            if c.size > size {
                continue;
            }
            let k = n.min(c.size as usize);
            let at = c.size - k as u64;
            let ours = fingerprint::read_at(&c.file, at, k).ok()?;
            let theirs = fingerprint::read_at(t.file(), at, k).ok()?;
            if ours.len() == k && ours == theirs {
                return Some((t.path.clone(), t.id));
            }
        }
        None
    }

    fn open(&mut self, o: ToOpen) {
        let ToOpen {
            c,
            id,
            start,
            lines,
            resumed,
            reanchor,
        } = o;
        let source = Arc::new(Source {
            kind: "file",
            name: c.path.to_string_lossy().into_owned(),
            format: self.cfg.format.clone(),
        });
        let stream = stream_id(&self.name, id);
        let opened = if c.gzip {
            Tracked::open_gzip(
                &c.path,
                c.key,
                start,
                lines,
                self.cfg.max_line_bytes,
                source,
                id,
                stream,
            )
        } else {
            Tracked::open_plain(
                &c.path,
                c.key,
                start,
                lines,
                self.cfg.max_line_bytes,
                self.n(),
                source,
                id,
                stream,
            )
            .map(Some)
        };
        let t = match opened {
            Ok(Some(t)) => t,
            Ok(None) => {
                // A gzip file shorter than its checkpoint: read it all.
                tracing::warn!(source = %self.name, file = %c.path.display(), checkpoint = start, "gzip file shorter than its checkpoint; reading it from the start");
                let mut tb = lock(&self.table);
                if let Some(e) = tb.entries.get_mut(&id) {
                    e.position = 0;
                    e.line = 0;
                    e.read = None;
                    e.live = false;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(source = %self.name, file = %c.path.display(), error = %e, "cannot open; trying again at the next scan");
                if let Some(e) = lock(&self.table).entries.get_mut(&id) {
                    e.live = false;
                }
                return;
            }
        };
        if resumed {
            tracing::info!(source = %self.name, file = %c.path.display(), position = start, "file found; resuming at its checkpoint");
        } else {
            tracing::info!(source = %self.name, file = %c.path.display(), position = start, "new file");
        }
        {
            // The head read now may be longer than the checkpoint's
            // fingerprint (a short file that grew while mlsoc was stopped).
            let mut tb = lock(&self.table);
            if let Some(e) = tb.entries.get_mut(&t.id)
                && !t.gzip
                && t.head.len() as u64 > e.fingerprint.bytes
            {
                e.fingerprint = t.fingerprint();
                tb.dirty = true;
            }
        }
        if reanchor {
            let ok = self.outlet.send(&t, Vec::new(), start, lines, false, false);
            if !ok {
                return;
            }
        }
        self.files.push(t);
    }

    /// With `ignore_older`: closes open files idle that long whose batches
    /// are all acknowledged. They are resumed if they change.
    fn close_idle(&mut self) {
        let Some(age) = self.cfg.ignore_older else {
            return;
        };
        let mut i = 0;
        while i < self.files.len() {
            let t = &self.files[i];
            let idle = t.gone.is_none()
                && t.modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|e| e > age);
            let settled = idle
                && lock(&self.table)
                    .entries
                    .get(&t.id)
                    .is_some_and(|e| e.pending() == 0);
            if settled {
                let t = self.files.remove(i);
                tracing::debug!(source = %self.name, file = %t.path.display(), "closing a file idle longer than ignore_older");
                let end = t.splitter.line_start();
                let lines = t.splitter.lines();
                self.outlet.send(&t, Vec::new(), end, lines, true, false);
                if let Some(e) = lock(&self.table).entries.get_mut(&t.id) {
                    e.live = false;
                }
            } else {
                i += 1;
            }
        }
    }

    /// One round-robin pass over the open files.
    fn pass_all(&mut self) -> bool {
        if self.files.is_empty() {
            return false;
        }
        let start = self.rr % self.files.len();
        self.rr = self.rr.wrapping_add(1);
        let order: Vec<u64> = self.files[start..]
            .iter()
            .chain(&self.files[..start])
            .map(|t| t.id)
            .collect();
        let mut progress = false;
        let mut index: HashMap<u64, usize> = HashMap::new();
        for (k, id) in order.into_iter().enumerate() {
            if self.outlet.closed || self.stop.is_cancelled() {
                break;
            }
            // Files move only when one is closed or opened (rare): the
            // index is rebuilt then.
            let mut i = (start + k) % self.files.len().max(1);
            if self.files.get(i).map(|t| t.id) != Some(id) {
                if index.is_empty()
                    || self
                        .files
                        .get(index.get(&id).copied().unwrap_or(usize::MAX))
                        .map(|t| t.id)
                        != Some(id)
                {
                    index = self
                        .files
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.id, i))
                        .collect();
                }
                match index.get(&id) {
                    Some(&j) => i = j,
                    None => continue, // closed meanwhile
                }
            }
            progress |= self.pass_one(i);
        }
        progress
    }

    fn pass_one(&mut self, i: usize) -> bool {
        let max_batch = self.cfg.batch_max_records;
        match self.look(i) {
            Some(Look::Truncated) => {
                // The scan retires it and looks for its copy.
                self.scan();
                return true;
            }
            Some(_) => {}
            None => return false,
        }
        let t = &mut self.files[i];
        // Plain files: read what the last look saw beyond our offset (an
        // idle file costs no read and no buffer); gzip: up to the budget.
        let budget = if t.gzip {
            self.cfg.max_read_bytes as u64
        } else {
            (self.cfg.max_read_bytes as u64).min(t.size.saturating_sub(t.splitter.offset()))
        };
        t.splitter.get_mut().budget = budget;
        t.splitter.limit_reads(budget);
        let before = t.splitter.get_ref().total;
        let mut error = None;
        loop {
            let mut lines = Vec::new();
            let t = &mut self.files[i];
            if let Err(e) = t.lines(max_batch, &mut lines) {
                error = Some(e);
            }
            let full = lines.len() == max_batch;
            if !lines.is_empty() {
                let t = &self.files[i];
                let (end, count) = (t.splitter.line_start(), t.splitter.lines());
                if !self
                    .outlet
                    .send(&self.files[i], lines, end, count, false, false)
                {
                    return true;
                }
            }
            if error.is_some() || !full {
                break;
            }
        }
        let t = &mut self.files[i];
        let read = t.splitter.get_ref().total - before;
        if read > 0 {
            t.last_growth = Instant::now();
            metrics::counter!("mlsoc_source_bytes_total", "source" => self.name.to_string())
                .increment(read);
        }
        if !t.gzip {
            let (size, id) = (t.size, t.id);
            let mut tb = lock(&self.table);
            if let Some(e) = tb.entries.get_mut(&id)
                && e.size != size
            {
                e.size = size;
                lag_gauge(&self.name, e);
            }
        }
        let t = &self.files[i];
        if let Some(e) = error {
            if t.gzip && e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.suspend_gzip(i);
                return true;
            }
            if t.gzip {
                tracing::error!(source = %self.name, file = %t.path.display(), error = %e, "gzip file is corrupt or cut short: what could be read was handed out; the rest is lost");
                self.finish(i, true);
                return true;
            }
            tracing::warn!(source = %self.name, file = %t.path.display(), error = %e, "read error; trying again");
            return read > 0;
        }
        // At the end: everything the look saw is consumed (plain), or the
        // decoder said so (gzip).
        let at_eof = if t.gzip {
            t.splitter.get_ref().eof
        } else {
            t.splitter.offset() >= t.size
        };
        if at_eof && t.gzip {
            self.finish(i, true);
            return true;
        }
        if at_eof
            && let Some(gone) = t.gone
            && gone.max(t.last_growth).elapsed() >= self.cfg.rotate_wait
        {
            self.finish(i, false);
            return true;
        }
        read > 0
    }

    /// `stop_at_eof`: every file is read to its end; their unfinished last
    /// lines are handed out with the ends of their streams.
    fn finish_all(&mut self) {
        while !self.files.is_empty() && !self.outlet.closed {
            self.finish(0, false);
        }
        tracing::info!(source = %self.name, "every file read to its end (stop_at_eof)");
    }

    /// A file read to its end (gzip) or gone and quiet for `rotate_wait`:
    /// its unfinished last line is handed out with the end of its stream.
    fn finish(&mut self, i: usize, complete: bool) {
        let mut t = self.files.remove(i);
        let partial: Vec<Line> = t.splitter.take_partial().into_iter().collect();
        let end = t.splitter.line_start();
        let lines = t.splitter.lines();
        let gone = t.gone.is_some();
        self.outlet.send(&t, partial, end, lines, true, complete);
        let mut tb = lock(&self.table);
        if let Some(e) = tb.entries.get_mut(&t.id) {
            e.live = false;
            if complete {
                e.done_reading = true;
            }
            if gone {
                e.removed_at = Some(now_ms());
            }
            tb.dirty = true;
        }
        drop(tb);
        if complete {
            tracing::info!(source = %self.name, file = %t.path.display(), "gzip file read to its end");
        } else {
            tracing::info!(source = %self.name, file = %t.path.display(), position = end, "rotated or deleted file read to its end; closed");
        }
        metrics::gauge!("mlsoc_files_open", "source" => self.name.to_string())
            .set(self.files.len() as f64);
    }

    /// A gzip file whose stream ends early: the lines read are handed out,
    /// the file is closed, and it is opened again (resuming where reading
    /// stopped) once it changed and stayed unchanged for a scan.
    fn suspend_gzip(&mut self, i: usize) {
        let t = self.files.remove(i);
        tracing::warn!(source = %self.name, file = %t.path.display(), read = t.splitter.line_start(), "gzip file ends early (still being written?); reading on when it changes");
        if let Some(e) = lock(&self.table).entries.get_mut(&t.id) {
            e.live = false;
        }
        self.untracked.insert(
            t.key,
            Untracked {
                size: t.size,
                modified: t.modified,
                why: Waiting::GzipShort,
                at_start: false,
                entry: Some(t.id),
            },
        );
    }

    /// The file at `i` is shorter than what was read, or its first bytes
    /// changed. The complete lines already read of the old content are
    /// handed out and the file is closed, its identity left for a copy to
    /// take over in the scan that follows (copytruncate with the copy in
    /// the patterns: the copy continues where reading stopped, and has the
    /// unfinished line whole). The file itself is found again by that scan
    /// and read from its start as a new identity. `None` when stopped.
    fn retire(&mut self, i: usize) -> Option<Tracked> {
        let max_batch = self.cfg.batch_max_records;
        self.files[i].splitter.get_mut().budget = 0;
        self.files[i].splitter.limit_reads(0);
        loop {
            let mut lines = Vec::new();
            let _ = self.files[i].lines(max_batch, &mut lines);
            if lines.is_empty() {
                break;
            }
            let t = &self.files[i];
            let (end, count) = (t.splitter.line_start(), t.splitter.lines());
            if !self
                .outlet
                .send(&self.files[i], lines, end, count, false, false)
            {
                return None;
            }
        }
        let t = self.files.remove(i);
        tracing::info!(source = %self.name, file = %t.path.display(), read = t.splitter.line_start(), "file truncated or rewritten; reading it again from its start");
        if let Some(e) = lock(&self.table).entries.get_mut(&t.id) {
            // `read` is where the last batch ended: a line boundary.
            e.live = false;
        }
        Some(t)
    }

    /// After the scan: a retired file whose identity no copy took over
    /// hands out its unfinished line and ends its stream.
    fn end_retired(&mut self, mut t: Tracked) {
        let claimed = lock(&self.table).entries.get(&t.id).is_some_and(|e| e.live);
        if claimed {
            return;
        }
        let partial: Vec<Line> = t.splitter.take_partial().into_iter().collect();
        let end = t.splitter.line_start();
        let lines = t.splitter.lines();
        self.outlet.send(&t, partial, end, lines, true, false);
        let mut tb = lock(&self.table);
        if let Some(e) = tb.entries.get_mut(&t.id) {
            e.removed_at = Some(now_ms());
            tb.dirty = true;
        }
    }
}

impl Outlet {
    /// Hands one batch to the pipeline; waits while the pipeline is full
    /// (backpressure). Returns false when the source stops or the pipeline
    /// is gone (the batch is then dropped and its acknowledgement fails).
    fn send(
        &mut self,
        t: &Tracked,
        lines: Vec<Line>,
        end: u64,
        count: u64,
        eos: bool,
        complete: bool,
    ) -> bool {
        let tail = t.tail_at(end, self.fingerprint_bytes);
        let seq = {
            let mut tb = lock(&self.table);
            match tb.entries.get_mut(&t.id) {
                Some(e) => {
                    let seq = e.next_seq;
                    e.next_seq += 1;
                    e.read = Some((end, count, tail));
                    seq
                }
                None => return true,
            }
        };
        let received = Timestamp::now();
        let records: Vec<RawRecord> = lines
            .into_iter()
            .map(|l| RawRecord {
                bytes: l.bytes,
                source: t.source.clone(),
                offset: l.offset,
                line: l.number,
                received,
                overflow_len: l.overflow_len,
            })
            .collect();
        let n = records.len() as u64;
        let tx = self.acks.clone();
        let id = t.id;
        let ack = Ack::new(move |status| {
            let _ = tx.send(AckMsg {
                id,
                seq,
                end,
                line: count,
                tail,
                complete,
                status,
            });
        });
        let batch = SourceBatch {
            source_name: self.name.clone(),
            source: t.source.clone(),
            stream: t.stream,
            records,
            ack,
            end_of_stream: eos,
        };
        let out = self.out.clone();
        let sent = block_on(async {
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => None,
                permit = out.reserve() => Some(permit),
            }
        });
        match sent {
            Some(Ok(permit)) => {
                permit.send(batch);
                metrics::counter!("mlsoc_source_records_total", "source" => self.name.to_string())
                    .increment(n);
                true
            }
            Some(Err(_)) => {
                tracing::warn!(source = %self.name, "the pipeline is gone; the file source stops");
                self.closed = true;
                false
            }
            None => {
                self.closed = true;
                false
            }
        }
    }
}

/// Where a file with this checkpoint resumes: where this run's reading got
/// to, or the acknowledged position from an earlier run.
fn resume_point(e: &super::checkpoint::Entry) -> (u64, u64, Option<Fingerprint>) {
    e.read.unwrap_or((e.position, e.line, e.tail))
}

/// Whether the file's first `fp.bytes` bytes have the fingerprint `fp`.
fn prefix_matches(file: &File, head: &[u8], fp: Fingerprint) -> bool {
    let len = fp.bytes as usize;
    if head.len() >= len {
        return Fingerprint::of(&head[..len]) == fp;
    }
    // A checkpoint written with a larger fingerprint_bytes.
    fingerprint::read_at(file, 0, len).is_ok_and(|d| d.len() == len && Fingerprint::of(&d) == fp)
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future on this (non-async) thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    block_on_until(f, None).expect("no deadline")
}

/// Runs a future until it completes or `deadline` passes.
fn block_on_until<F: Future>(f: F, deadline: Option<Instant>) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                thread::park_timeout(d - now);
            }
        }
    }
}

/// Sleeps until `deadline`, waking at once when `stop` is cancelled.
fn sleep_until(stop: &CancellationToken, deadline: Instant) {
    let _ = block_on_until(stop.cancelled(), Some(deadline));
}
