//! Disk buffer: batches wait in append-only segment files in the sink's
//! directory, so they survive a restart, and the pipeline's sources are
//! acknowledged as soon as the data is on disk.
//!
//! # Files
//!
//! - `segment-NNNNNNNNNNNNNNNNNNNN.dat`: frames (see the `frame` module),
//!   one per record, appended by one writer thread. A segment is sealed
//!   when the next batch would make it exceed `min(max_size / 8, 128 MiB)`
//!   (a batch is never split across segments), and at every start: each
//!   process writes to a fresh segment, so old segments are never appended
//!   to after a crash.
//! - `reader.json`: `{"version":1,"segment":S,"offset":O}`, the
//!   acknowledged read position (the first byte the sink has not yet
//!   acknowledged), written to `reader.json.tmp`, fsynced, renamed and the
//!   directory fsynced. Segments before it are deleted after each write.
//! - `buffer.lock`: held (`flock`) while the buffer is open, so two
//!   processes (or a reloaded sink whose predecessor still runs) never
//!   write one directory; `open` waits up to 5 s for it.
//!
//! # Writing (group commit)
//!
//! [`Sender::send`] encodes the batch, reserves its bytes against
//! `max_size`, and hands it to the writer thread, which appends every batch
//! waiting, then `fdatasync`s once for all of them (group commit; or at
//! most every `fsync_interval` when one is set), and only then completes
//! their [`Ack`]s as delivered: a source checkpoint moves only past data
//! that survives a crash. `send` returns once the batch is queued, not
//! once it is durable, so a sender is never slowed to one batch per fsync;
//! at most 32 MiB wait in the queue.
//!
//! # Reading
//!
//! A reader thread reads durable frames in order (the active segment only
//! up to the last fsync) and hands out [`Batch`]es of up to 1024 records,
//! two ahead of the sink. Each gets a new [`Ack`]; acks may complete in any
//! order, and the acknowledged position advances over the contiguous prefix
//! of delivered batches only. That is what frees room under `max_size` and
//! what is persisted, at most every 100 ms and at shutdown. After a restart
//! reading resumes there: batches read but not acknowledged come again
//! (at-least-once). A batch a sink ends with [`AckStatus::Failed`] (it was
//! stopped before delivering) is not skipped: the position stays before it
//! for the rest of the process, and it is delivered again after a restart.
//!
//! # Damage
//!
//! A frame with a bad marker or checksum, an undecodable record, or a torn
//! frame at the end of a segment (the machine stopped mid-write) is skipped
//! up to the next good frame, counted once in
//! `mlsoc_buffer_corrupt_records_total{sink}` and logged as an error; the
//! reader never stops or loops on it.
//!
//! # Write errors (a full disk)
//!
//! Unlike Vector, which exits on purpose, the writer keeps the batch,
//! truncates the partial write away, logs the error, counts
//! `mlsoc_buffer_write_errors_total{sink}`, commits and seals what the
//! segment already holds (so the sink can read it, acknowledge it, and the
//! segment can be deleted: that is what frees a full disk), and retries
//! with backoff (up to 5 s between attempts) for as long as it takes.
//! Senders queue behind it and then block: the sources slow down, nothing
//! is lost and nothing is acknowledged that is not stored. A failed `fdatasync` cannot be retried (the kernel may already
//! have dropped the dirty pages), so the batches it covered are
//! acknowledged as [`AckStatus::Failed`] (their sources read them again
//! after a restart) and writing continues in a new segment.
//!
//! # Metrics (label `sink`)
//!
//! `mlsoc_buffer_events`, `mlsoc_buffer_bytes` (gauges: records and segment
//! bytes written and not yet acknowledged), `mlsoc_buffer_dropped_total`
//! (`when_full = drop_newest`), `mlsoc_buffer_corrupt_records_total`,
//! `mlsoc_buffer_write_errors_total`.

mod frame;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use schema::{Ack, AckStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{BufferError, Closed, WhenFull};
use crate::record::Batch;
use frame::{Next, SegmentReader};

/// Smallest `max_size` accepted.
pub const MIN_MAX_SIZE: u64 = 1 << 20;
const MAX_SEGMENT: u64 = 128 << 20;
const MIN_SEGMENT: u64 = 64 << 10;
/// Bytes of encoded batches queued for the writer thread at most.
const MAX_INFLIGHT: u64 = 32 << 20;
/// Bytes written in one group before it is committed.
const MAX_GROUP: u64 = 16 << 20;
const PERSIST_EVERY: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(100);
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Disk buffer settings (from `BufferConfig::Disk`).
#[derive(Debug, Clone)]
pub struct Options {
    pub max_size: u64,
    pub when_full: WhenFull,
    /// `None`: fsync after every group of writes (group commit).
    pub fsync_interval: Option<Duration>,
}

/// Knobs tests turn.
#[derive(Debug, Clone)]
pub(crate) struct Tuning {
    pub read_batch_records: usize,
    pub read_batch_bytes: usize,
    pub segment_max: Option<u64>,
    pub lock_wait: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            read_batch_records: 1024,
            read_batch_bytes: 8 << 20,
            segment_max: None,
            lock_wait: LOCK_WAIT,
        }
    }
}

/// A position in the buffer: segment id and byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Pos {
    segment: u64,
    offset: u64,
}

#[derive(Serialize, Deserialize)]
struct ReaderFile {
    version: u32,
    segment: u64,
    offset: u64,
}

struct Shared {
    name: Arc<str>,
    dir: PathBuf,
    state: Mutex<State>,
    cond: Condvar,
    /// Room under `max_size`, in bytes.
    room: Arc<Semaphore>,
    events: AtomicI64,
    bytes: AtomicI64,
    corrupt: AtomicU64,
    syncs: AtomicU64,
    write_errors: AtomicU64,
}

struct State {
    /// Segment being written.
    active: u64,
    /// Bytes of the active segment that are durable.
    durable: u64,
    writer_done: bool,
    reader_done: bool,
    receiver_gone: bool,
    /// Bumped on every change the threads wait for.
    version: u64,
    /// Batches handed out, oldest first; `base_seq` is the first one's number.
    slots: VecDeque<Slot>,
    base_seq: u64,
    /// End of the contiguous prefix of delivered batches.
    acked: Pos,
    /// Bytes counted against `max_size` beyond the semaphore's permits (a
    /// batch larger than the whole buffer; a backlog found at start larger
    /// than `max_size`): paid back before any permit is returned.
    debt: u64,
    warned_failed: bool,
}

struct Slot {
    end: Pos,
    bytes: u64,
    events: u64,
    status: Option<AckStatus>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self, st: &mut State) {
        st.version += 1;
        self.cond.notify_all();
    }

    fn gauges(&self) {
        let sink = self.name.to_string();
        metrics::gauge!("mlsoc_buffer_events", "sink" => sink.clone())
            .set(self.events.load(Ordering::Relaxed) as f64);
        metrics::gauge!("mlsoc_buffer_bytes", "sink" => sink)
            .set(self.bytes.load(Ordering::Relaxed) as f64);
    }

    /// Registers a batch handed to the sink, ending at `end`.
    fn register(&self, end: Pos, bytes: u64, events: u64) -> u64 {
        let mut st = self.lock();
        let seq = st.base_seq + st.slots.len() as u64;
        st.slots.push_back(Slot {
            end,
            bytes,
            events,
            status: None,
        });
        seq
    }

    /// A batch's ack completed: advance over the delivered prefix.
    fn complete(&self, seq: u64, status: AckStatus) {
        let mut st = self.lock();
        let Some(idx) = seq.checked_sub(st.base_seq) else {
            return;
        };
        let Some(slot) = st.slots.get_mut(idx as usize) else {
            return;
        };
        slot.status = Some(status);
        if status == AckStatus::Failed && !st.warned_failed {
            st.warned_failed = true;
            tracing::warn!(sink = %self.name, "a batch from the disk buffer was not delivered (the sink stopped?); the acknowledged position stays before it and it is delivered again after a restart");
        }
        let (mut bytes, mut events) = (0u64, 0u64);
        while st
            .slots
            .front()
            .is_some_and(|s| s.status == Some(AckStatus::Delivered))
        {
            let s = st.slots.pop_front().expect("front exists");
            st.base_seq += 1;
            st.acked = s.end;
            bytes += s.bytes;
            events += s.events;
        }
        let pay = st.debt.min(bytes);
        st.debt -= pay;
        self.changed(&mut st);
        drop(st);
        if bytes > pay {
            self.room.add_permits((bytes - pay) as usize);
        }
        if bytes > 0 || events > 0 {
            self.events.fetch_sub(events as i64, Ordering::Relaxed);
            self.bytes.fetch_sub(bytes as i64, Ordering::Relaxed);
            self.gauges();
        }
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("segment-{id:020}.dat"))
}

fn segment_id(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?
        .strip_suffix(".dat")?
        .parse()
        .ok()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(10))).min(Duration::from_secs(5))
}

/// Opens (or creates) the disk buffer of sink `name` in `dir`.
pub(crate) fn open(
    name: Arc<str>,
    dir: &Path,
    opts: Options,
    tuning: Tuning,
) -> Result<(Sender, Receiver), BufferError> {
    let io_err = |path: &Path, source: io::Error| BufferError::Io {
        sink: name.to_string(),
        path: path.display().to_string(),
        source,
    };
    if opts.max_size < MIN_MAX_SIZE {
        return Err(BufferError::Invalid {
            sink: name.to_string(),
            message: format!(
                "max_size must be at least {}",
                bytesize::ByteSize(MIN_MAX_SIZE)
            ),
        });
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let lock_path = dir.join("buffer.lock");
    let lock = lock_dir(&lock_path, tuning.lock_wait).map_err(|e| io_err(&lock_path, e))?;
    let _ = fs::remove_file(dir.join("reader.json.tmp"));

    let reader_path = dir.join("reader.json");
    let saved = match fs::read(&reader_path) {
        Ok(b) => match serde_json::from_slice::<ReaderFile>(&b) {
            Ok(r) => Some(Pos {
                segment: r.segment,
                offset: r.offset,
            }),
            Err(e) => {
                tracing::error!(sink = %name, path = %reader_path.display(), error = %e, "unreadable read position; reading the buffer from its oldest segment (records may be delivered twice)");
                None
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&reader_path, e)),
    };

    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(segment_id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let acked_seg = saved.map_or(0, |p| p.segment);
    // Segments before the read position are acknowledged: a crash came
    // between persisting the position and deleting them.
    for &id in ids.iter().filter(|&&id| id < acked_seg) {
        let p = segment_path(dir, id);
        if let Err(e) = fs::remove_file(&p) {
            tracing::warn!(sink = %name, path = %p.display(), error = %e, "could not delete an acknowledged buffer segment");
        }
    }
    ids.retain(|&id| id >= acked_seg);
    let mut lens = Vec::with_capacity(ids.len());
    for &id in &ids {
        let p = segment_path(dir, id);
        lens.push(fs::metadata(&p).map_err(|e| io_err(&p, e))?.len());
    }
    let active = ids.last().map_or(acked_seg.max(1), |l| l + 1);
    let start = match (saved, ids.first()) {
        (Some(p), Some(&first)) if first == p.segment => Pos {
            segment: first,
            offset: p.offset.min(lens[0]),
        },
        (_, Some(&first)) => Pos {
            segment: first,
            offset: 0,
        },
        (_, None) => Pos {
            segment: active,
            offset: 0,
        },
    };
    let backlog = lens.iter().sum::<u64>() - if ids.is_empty() { 0 } else { start.offset };

    let active_path = segment_path(dir, active);
    let file = create_segment(&active_path).map_err(|e| io_err(&active_path, e))?;
    sync_dir(dir).map_err(|e| io_err(dir, e))?;

    let max_size = opts.max_size.min(Semaphore::MAX_PERMITS as u64);
    let shared = Arc::new(Shared {
        name: name.clone(),
        dir: dir.to_path_buf(),
        state: Mutex::new(State {
            active,
            durable: 0,
            writer_done: false,
            reader_done: false,
            receiver_gone: false,
            version: 0,
            slots: VecDeque::new(),
            base_seq: 0,
            acked: start,
            debt: backlog.saturating_sub(max_size),
            warned_failed: false,
        }),
        cond: Condvar::new(),
        room: Arc::new(Semaphore::new((max_size - backlog.min(max_size)) as usize)),
        events: AtomicI64::new(0),
        bytes: AtomicI64::new(backlog as i64),
        corrupt: AtomicU64::new(0),
        syncs: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
    });
    shared.gauges();
    if backlog > 0 {
        tracing::info!(sink = %name, bytes = backlog, segments = ids.len(), "disk buffer resumes with a backlog");
    }

    let segment_max = tuning
        .segment_max
        .unwrap_or_else(|| (opts.max_size / 8).clamp(MIN_SEGMENT, MAX_SEGMENT));
    let (wtx, wrx) = std_mpsc::channel();
    let writer = Writer {
        shared: shared.clone(),
        segment_max,
        fsync_interval: opts.fsync_interval.filter(|d| !d.is_zero()),
        active,
        file,
        len: 0,
        unsynced: Vec::new(),
        unsynced_since: None,
        persisted: saved.unwrap_or_default(),
        last_persist: Instant::now(),
        oldest: ids.first().copied().unwrap_or(active),
        _lock: lock,
    };
    let (btx, brx) = mpsc::channel(2);
    let reader = Reader {
        shared: shared.clone(),
        tx: btx,
        cur: start,
        seg: None,
        batch_records: tuning.read_batch_records.max(1),
        batch_bytes: tuning.read_batch_bytes.max(1),
        sealed_at_open: active,
    };
    let spawn_err = |e| io_err(dir, e);
    std::thread::Builder::new()
        .name(format!("buf-write-{name}"))
        .spawn(move || writer.run(wrx))
        .map_err(spawn_err)?;
    std::thread::Builder::new()
        .name(format!("buf-read-{name}"))
        .spawn(move || reader.run())
        .map_err(spawn_err)?;

    Ok((
        Sender {
            shared: shared.clone(),
            tx: wtx,
            inflight: Arc::new(Semaphore::new(MAX_INFLIGHT as usize)),
            max_size,
            when_full: opts.when_full,
        },
        Receiver { shared, rx: brx },
    ))
}

fn lock_dir(path: &Path, wait: Duration) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let deadline = Instant::now() + wait;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the buffer directory is in use by another process or sink",
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn create_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new().create_new(true).append(true).open(path)
}

/// The pipeline's end of a disk buffer. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Shared>,
    tx: std_mpsc::Sender<WriteReq>,
    inflight: Arc<Semaphore>,
    max_size: u64,
    when_full: WhenFull,
}

struct WriteReq {
    frames: Vec<u8>,
    events: u64,
    acks: Vec<Ack>,
    _inflight: OwnedSemaphorePermit,
}

impl Sender {
    /// Queues the batch for writing; its acks complete once it is durable.
    /// Waits for room when the buffer is full and `when_full = block`.
    pub async fn send(&self, batch: Batch) -> Result<(), Closed> {
        let closed = || Closed(self.shared.name.clone());
        let Batch { records, acks } = batch;
        let mut frames = Vec::with_capacity(records.iter().map(|r| r.size() + 16).sum());
        let mut events = 0u64;
        for r in &records {
            match frame::encode(r, &mut frames) {
                Ok(()) => events += 1,
                Err(len) => {
                    // Nothing can store it; refusing it forever would stall
                    // the pipeline.
                    metrics::counter!("mlsoc_buffer_dropped_total", "sink" => self.shared.name.to_string())
                        .increment(1);
                    tracing::error!(sink = %self.shared.name, id = %r.id, bytes = len, "record too large for the disk buffer; dropped");
                }
            }
        }
        drop(records);
        if events == 0 {
            Ack::complete_all(acks, AckStatus::Delivered);
            return Ok(());
        }
        let bytes = frames.len() as u64;
        // A batch larger than the whole buffer takes all of it.
        let want = bytes.min(self.max_size).min(u32::MAX as u64) as u32;
        let permit = match self.when_full {
            WhenFull::Block => self
                .shared
                .room
                .clone()
                .acquire_many_owned(want)
                .await
                .map_err(|_| closed())?,
            WhenFull::DropNewest => match self.shared.room.clone().try_acquire_many_owned(want) {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => return Err(closed()),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    metrics::counter!("mlsoc_buffer_dropped_total", "sink" => self.shared.name.to_string())
                        .increment(events);
                    tracing::warn!(sink = %self.shared.name, records = events, "buffer full: dropped the newest records (when_full = drop_newest)");
                    Ack::complete_all(acks, AckStatus::Delivered);
                    return Ok(());
                }
            },
        };
        let inflight = self
            .inflight
            .clone()
            .acquire_many_owned(bytes.min(MAX_INFLIGHT) as u32)
            .await
            .map_err(|_| closed())?;
        let req = WriteReq {
            frames,
            events,
            acks,
            _inflight: inflight,
        };
        // Bytes beyond the permits are owed before the batch can be read
        // and acknowledged.
        let owed = bytes - want as u64;
        if owed > 0 {
            self.shared.lock().debt += owed;
        }
        if self.tx.send(req).is_err() {
            // The permit is dropped, returning the room.
            if owed > 0 {
                let mut st = self.shared.lock();
                st.debt = st.debt.saturating_sub(owed);
            }
            return Err(closed());
        }
        permit.forget();
        Ok(())
    }
}

/// The sink's end of a disk buffer.
pub struct Receiver {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Batch>,
}

impl Receiver {
    pub async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Batch> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Wake blocked senders: the sink is gone. What was written stays on
        // disk for the next run.
        self.shared.room.close();
        let mut st = self.shared.lock();
        st.receiver_gone = true;
        self.shared.changed(&mut st);
    }
}

/// The writer thread: appends, commits, rotates; also persists the read
/// position and deletes acknowledged segments (it owns every change to the
/// directory).
struct Writer {
    shared: Arc<Shared>,
    segment_max: u64,
    fsync_interval: Option<Duration>,
    active: u64,
    file: File,
    len: u64,
    unsynced: Vec<Ack>,
    unsynced_since: Option<Instant>,
    persisted: Pos,
    last_persist: Instant,
    /// Oldest segment id that may still exist.
    oldest: u64,
    _lock: File,
}

impl Writer {
    fn run(mut self, rx: std_mpsc::Receiver<WriteReq>) {
        let mut open = true;
        loop {
            if open {
                let timeout = match (self.fsync_interval, self.unsynced_since) {
                    (Some(d), Some(t)) => d.saturating_sub(t.elapsed()).min(POLL),
                    _ => POLL,
                };
                match rx.recv_timeout(timeout) {
                    Ok(req) => {
                        let mut group = req.frames.len() as u64;
                        self.write(req);
                        while group < MAX_GROUP {
                            match rx.try_recv() {
                                Ok(req) => {
                                    group += req.frames.len() as u64;
                                    self.write(req);
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
                let due = match (self.fsync_interval, self.unsynced_since) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(d), Some(t)) => !open || t.elapsed() >= d,
                };
                if due {
                    self.sync();
                }
                if !open {
                    let mut st = self.shared.lock();
                    st.writer_done = true;
                    self.shared.changed(&mut st);
                }
            } else {
                let st = self.shared.lock();
                if st.reader_done && st.slots.iter().all(|s| s.status.is_some()) {
                    break;
                }
                let _unused = self
                    .shared
                    .cond
                    .wait_timeout(st, POLL)
                    .unwrap_or_else(|p| p.into_inner());
            }
            self.maintain(false);
        }
        self.maintain(true);
    }

    fn write(&mut self, req: WriteReq) {
        let n = req.frames.len() as u64;
        if self.len > 0 && self.len + n > self.segment_max {
            self.sync();
            self.rotate();
        }
        let mut attempt = 0;
        while let Err(e) = self.file.write_all(&req.frames) {
            attempt += 1;
            self.write_error();
            let delay = backoff(attempt);
            tracing::error!(sink = %self.shared.name, segment = self.active, error = %e, retry_in = ?delay, "disk buffer write failed; the batch is kept and retried (senders wait)");
            let cut = self.file.set_len(self.len);
            if let Err(e) = &cut {
                tracing::error!(sink = %self.shared.name, error = %e, "could not cut a partial write away; continuing in a new segment");
            }
            // What was written before becomes durable and readable, and the
            // segment is sealed so that it can be deleted once the sink has
            // acknowledged it: that is what makes room on a full disk.
            self.sync();
            if self.len > 0 || cut.is_err() {
                self.rotate();
            }
            self.maintain(true);
            std::thread::sleep(delay);
        }
        self.len += n;
        self.unsynced.extend(req.acks);
        self.unsynced_since.get_or_insert_with(Instant::now);
        self.shared
            .events
            .fetch_add(req.events as i64, Ordering::Relaxed);
        self.shared.bytes.fetch_add(n as i64, Ordering::Relaxed);
        self.shared.gauges();
    }

    /// Makes what was written durable, then lets the reader see it and
    /// acknowledges the sources.
    fn sync(&mut self) {
        if self.unsynced_since.take().is_none() {
            return;
        }
        let acks = std::mem::take(&mut self.unsynced);
        let res = self.file.sync_data();
        if res.is_ok() {
            self.shared.syncs.fetch_add(1, Ordering::Release);
        }
        self.publish();
        match res {
            Ok(()) => Ack::complete_all(acks, AckStatus::Delivered),
            Err(e) => {
                self.write_error();
                tracing::error!(sink = %self.shared.name, segment = self.active, error = %e, batches = acks.len(), "disk buffer fsync failed: these batches are not known to be durable and are acknowledged as failed; continuing in a new segment");
                Ack::complete_all(acks, AckStatus::Failed);
                self.rotate();
            }
        }
    }

    fn write_error(&self) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("mlsoc_buffer_write_errors_total", "sink" => self.shared.name.to_string())
            .increment(1);
    }

    fn publish(&self) {
        let mut st = self.shared.lock();
        st.active = self.active;
        st.durable = self.len;
        self.shared.changed(&mut st);
    }

    /// Seals the active segment (already synced) and starts the next.
    fn rotate(&mut self) {
        let next = self.active + 1;
        let path = self.shared.segment_path(next);
        let mut attempt = 0;
        let file = loop {
            match create_segment(&path) {
                Ok(f) => break f,
                Err(e) => {
                    attempt += 1;
                    let delay = backoff(attempt);
                    self.write_error();
                    tracing::error!(sink = %self.shared.name, path = %path.display(), error = %e, retry_in = ?delay, "could not create a disk buffer segment; retrying");
                    self.maintain(true);
                    std::thread::sleep(delay);
                }
            }
        };
        if let Err(e) = sync_dir(&self.shared.dir) {
            tracing::warn!(sink = %self.shared.name, error = %e, "could not fsync the buffer directory");
        }
        self.file = file;
        self.active = next;
        self.len = 0;
        self.publish();
    }

    /// Persists the acknowledged position (at most every 100 ms unless
    /// `force`) and deletes the segments before it.
    fn maintain(&mut self, force: bool) {
        let acked = self.shared.lock().acked;
        if acked == self.persisted || (!force && self.last_persist.elapsed() < PERSIST_EVERY) {
            return;
        }
        self.last_persist = Instant::now();
        if let Err(e) = self.persist(acked) {
            tracing::error!(sink = %self.shared.name, error = %e, "could not save the disk buffer's read position; will retry");
            return;
        }
        self.persisted = acked;
        while self.oldest < acked.segment {
            let p = self.shared.segment_path(self.oldest);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(sink = %self.shared.name, path = %p.display(), error = %e, "could not delete an acknowledged buffer segment");
                    return;
                }
            }
            self.oldest += 1;
        }
    }

    fn persist(&self, pos: Pos) -> io::Result<()> {
        let dir = &self.shared.dir;
        let tmp = dir.join("reader.json.tmp");
        let body = serde_json::to_vec(&ReaderFile {
            version: 1,
            segment: pos.segment,
            offset: pos.offset,
        })
        .map_err(io::Error::other)?;
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join("reader.json"))?;
        sync_dir(dir)
    }
}

/// The reader thread: reads durable frames in order into batches.
struct Reader {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Batch>,
    cur: Pos,
    seg: Option<SegmentReader>,
    batch_records: usize,
    batch_bytes: usize,
    /// Segments before this one existed at open (the backlog).
    sealed_at_open: u64,
}

impl Reader {
    fn run(mut self) {
        self.count_backlog();
        loop {
            let mut records = Vec::new();
            let mut bytes = 0u64;
            let mut size = 0usize;
            let mut idle: Option<(u64, bool)> = None;
            while records.len() < self.batch_records && size < self.batch_bytes {
                let (active, durable, version, writer_done, gone) = {
                    let st = self.shared.lock();
                    (
                        st.active,
                        st.durable,
                        st.version,
                        st.writer_done,
                        st.receiver_gone,
                    )
                };
                if gone {
                    return self.finish();
                }
                let durable = (self.cur.segment >= active).then_some(durable);
                let off = self.cur.offset;
                let next = match self.segment(durable.is_none()) {
                    Some(seg) => seg.next(off, durable),
                    None => continue,
                };
                match next {
                    Ok(Next::Record(r, len)) => {
                        size += r.size();
                        records.push(r);
                        self.cur.offset += len;
                        bytes += len;
                    }
                    Ok(Next::Corrupt { skip, reason }) => {
                        self.shared.corrupt.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("mlsoc_buffer_corrupt_records_total", "sink" => self.shared.name.to_string())
                            .increment(1);
                        tracing::error!(sink = %self.shared.name, segment = self.cur.segment, offset = self.cur.offset, skipped_bytes = skip, reason, "damaged data in the disk buffer; skipped to the next good record");
                        self.cur.offset += skip;
                        bytes += skip;
                    }
                    Ok(Next::End) => {
                        self.next_segment();
                        if records.is_empty() {
                            self.skip_done(bytes);
                            bytes = 0;
                        }
                    }
                    Ok(Next::NotYet) => {
                        idle = Some((version, writer_done));
                        break;
                    }
                    Err(e) => {
                        tracing::error!(sink = %self.shared.name, segment = self.cur.segment, error = %e, "could not read the disk buffer; retrying in 1 s");
                        self.seg = None;
                        std::thread::sleep(Duration::from_secs(1));
                        break;
                    }
                }
            }
            if !records.is_empty() {
                let events = records.len() as u64;
                let seq = self.shared.register(self.cur, bytes, events);
                let shared = self.shared.clone();
                let ack = Ack::new(move |status| shared.complete(seq, status));
                if self.tx.blocking_send(Batch::new(records, ack)).is_err() {
                    return self.finish();
                }
            } else if bytes > 0 {
                self.skip_done(bytes);
            } else if let Some((version, writer_done)) = idle {
                if writer_done {
                    return self.finish();
                }
                let mut st = self.shared.lock();
                while st.version == version {
                    st = self
                        .shared
                        .cond
                        .wait_timeout(st, Duration::from_secs(1))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// The reader of the current segment, opening it if needed. `None`
    /// (after moving on) when a sealed segment is missing.
    fn segment(&mut self, sealed: bool) -> Option<&mut SegmentReader> {
        if self.seg.as_ref().is_none_or(|s| s.id != self.cur.segment) {
            let path = self.shared.segment_path(self.cur.segment);
            match SegmentReader::open(&path, self.cur.segment) {
                Ok(r) => self.seg = Some(r),
                Err(e) if sealed && e.kind() == io::ErrorKind::NotFound => {
                    tracing::error!(sink = %self.shared.name, path = %path.display(), "a disk buffer segment is missing; its records are lost");
                    self.next_segment();
                    return None;
                }
                Err(e) => {
                    tracing::error!(sink = %self.shared.name, path = %path.display(), error = %e, "could not open a disk buffer segment; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                    return None;
                }
            }
        }
        self.seg.as_mut()
    }

    fn next_segment(&mut self) {
        self.cur = Pos {
            segment: self.cur.segment + 1,
            offset: 0,
        };
        self.seg = None;
    }

    /// Bytes passed without a record (damage, segment ends): acknowledged
    /// at once, so they do not hold the position or the room.
    fn skip_done(&self, bytes: u64) {
        let seq = self.shared.register(self.cur, bytes, 0);
        self.shared.complete(seq, AckStatus::Delivered);
    }

    /// Counts the records of the backlog for the events gauge.
    fn count_backlog(&self) {
        let mut pos = self.cur;
        let mut count = 0i64;
        while pos.segment < self.sealed_at_open {
            let Ok(mut r) =
                SegmentReader::open(&self.shared.segment_path(pos.segment), pos.segment)
            else {
                pos = Pos {
                    segment: pos.segment + 1,
                    offset: 0,
                };
                continue;
            };
            loop {
                match r.next(pos.offset, None) {
                    Ok(Next::Record(_, len)) => {
                        count += 1;
                        pos.offset += len;
                    }
                    Ok(Next::Corrupt { skip, .. }) => pos.offset += skip,
                    Ok(Next::End | Next::NotYet) | Err(_) => break,
                }
            }
            pos = Pos {
                segment: pos.segment + 1,
                offset: 0,
            };
        }
        if count > 0 {
            self.shared.events.fetch_add(count, Ordering::Relaxed);
            self.shared.gauges();
        }
    }

    fn finish(self) {
        let mut st = self.shared.lock();
        st.reader_done = true;
        self.shared.changed(&mut st);
    }
}
