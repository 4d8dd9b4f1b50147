//! The tailing file source: follows files matched by glob patterns as they
//! grow, rotate and get truncated, and remembers in checkpoints how far the
//! pipeline acknowledged each one, so that a restart neither loses nor
//! (beyond unacknowledged batches) repeats lines.
//!
//! ```toml
//! [sources.mlflow]
//! type = "file"
//! include = ["/var/log/mlflow/**/*.log", "/var/log/mlflow/**/*.log.1"]
//! exclude = ["**/debug/**"]
//! read_from = "beginning"   # or "end": files present at start, no checkpoint
//! format = "mlflow.access"  # optional: bypasses format detection
//! glob_interval = "1s"
//! rotate_wait = "30s"
//! ```
//!
//! # Delivery
//!
//! Lines are read round robin (`max_read_bytes` per file per pass) and sent
//! in batches ([`SourceBatch`]) of up to `batch_max_records`; a full pipeline
//! blocks the reader (backpressure). Each batch carries an [`schema::Ack`];
//! a file's checkpoint advances over the contiguous prefix of delivered
//! batches only, and never past a failed one in this run. A partial last
//! line (no `\n` yet) is not handed out until its newline arrives, so a
//! checkpoint always sits on a line boundary; it is handed out unterminated
//! only when its file is finished (deleted or rotated away and quiet for
//! `rotate_wait`, a truncated file whose copy was not found, or the end of a
//! gzip file). Lines longer than `max_line_bytes` become one record with the
//! head and `overflow_len` (the normalizer dead-letters it), so they move
//! the checkpoint like any other (Vector #7229).
//!
//! # Identity
//!
//! A file is identified by the CRC-32 of its first `fingerprint_bytes`
//! bytes ([`fingerprint`]), like Vector's `checksum` strategy: a renamed file
//! (rotation) or a copy (copytruncate) keeps its identity, and an inode
//! reused for a new file is not taken for the old one. Two refinements:
//!
//! - **Short files are read.** Vector does not read a file shorter than its
//!   fingerprint; we fingerprint what there is. While a file is shorter than
//!   `fingerprint_bytes`, its checkpoint records the fingerprint of the
//!   bytes it had, and it matches only a file with the **same device and
//!   inode** whose first bytes have that fingerprint (a short prefix alone
//!   is too common to trust across files). The fingerprint grows with the
//!   file up to `fingerprint_bytes`; from then on the file matches by
//!   content alone. Consequence: a short file that is renamed *and* moved
//!   to another file system while mlsoc is stopped, or copied by
//!   copytruncate, is read again (duplicates, never loss).
//! - **The position is checked too** (design takeaway 1 of the reference):
//!   a checkpoint records the fingerprint of the `fingerprint_bytes` bytes
//!   before its position. It applies to a file only if the position is not
//!   past the file's end and those bytes still match. Otherwise the file
//!   was truncated or rewritten (or is another file with the same first
//!   bytes): it is read from the start and a warning is logged, instead of
//!   waiting silently past the end (Vector #23076).
//!
//! While a file is open, its descriptor is the identity: the inode cannot be
//! reused while it is held, so a scan that finds the same device and inode
//! under another name has found the same file, renamed.
//!
//! When several checkpoints match a file, one with the same device and
//! inode wins, then one with the same path, then any; each checkpoint goes
//! to one file. Two different files whose first `fingerprint_bytes` bytes
//! are equal can still be confused when one of them is gone and the other
//! matches the gone one's position check; raise `fingerprint_bytes` for
//! files with long identical headers.
//!
//! # Rotation and truncation
//!
//! - **Rename** (`app.log` → `app.log.1`, new `app.log`): the open
//!   descriptor keeps being read to its end. If the new name matches the
//!   patterns, the file simply goes on under it (not read again); if not,
//!   it is read until it has been quiet for `rotate_wait`, then its
//!   unfinished last line is handed out and its stream ends
//!   (`end_of_stream`). The new `app.log` is a new file, read from its
//!   start. A line whose first part was written before the rename is
//!   completed by the writer in the old file and comes out whole.
//! - **Deleted while open**: the same, through the still valid descriptor.
//! - **Truncated** (size below what was read, or first bytes changed,
//!   checked before every read and at the start of every scan): the
//!   complete lines already read are handed out and the file is retired;
//!   then the patterns are walked at once. A file with the same first bytes
//!   and the same bytes before the read position (copytruncate's
//!   `app.log.1`, when it is included) takes the identity over and is read
//!   from where reading stopped: no duplicates, no loss, and the unfinished
//!   line comes out whole from the copy. Without a copy, the unfinished line
//!   is handed out and the old stream ends. Either way the truncated file is
//!   read again from its start as a new identity. Lines written between the
//!   last read and the truncate exist only in the copy: copytruncate loses
//!   them if the copy is excluded. A truncate followed by writes past the
//!   old position between one look and the next read can make that read
//!   hand out lines of the new content; the next look retires the file and
//!   it is read again from the start (duplicates, never loss).
//! - **A copy seen before the truncate** (a file whose first bytes and end
//!   are those of an open file, and not longer) is not read while the
//!   original is open: it holds nothing the original does not. If the
//!   original is then truncated, the copy takes its identity over even when
//!   it is shorter than what was read (the writer wrote on after the copy):
//!   it resumes at its own end, and an empty batch moves the checkpoint
//!   there, so a restart does not find the checkpoint past its end.
//!
//! # gzip
//!
//! Files starting with the gzip magic bytes are decompressed and read
//! whole, once they did not change between two scans (a file being
//! compressed is not a complete stream yet). Their identity is the
//! fingerprint of the compressed bytes; positions count decompressed bytes.
//! A gzip file delivered to its end is marked `complete` and never read
//! again. A gzip file stopped in the middle resumes by decompressing and
//! dropping the bytes before its checkpoint (no duplicates), which costs
//! the decompression of that part.
//!
//! # Batches
//!
//! Records of one batch come from one file, in order; `stream` is stable
//! per identity (the source name's CRC in the high half, the checkpoint id
//! in the low half, so it survives restarts and differs between sources).
//! A batch can be **empty**: the last one of a stream (`end_of_stream`
//! without an unfinished line to hand out) or the re-anchoring batch above.
//! Every batch must be completed like any other.
//!
//! # Costs
//!
//! Every matching file stays open while it exists (rotated copies
//! included), one descriptor each; `ignore_older` closes files idle that
//! long. A pass costs one `fstat` per open file; an idle file is not read
//! and keeps no buffer; reads are sized to what the file has beyond the
//! offset, at most `max_read_bytes`. A scan walks the include patterns and
//! reads the first `fingerprint_bytes` of files it has not opened; files
//! seen before (ignored as old, read gzip files) are remembered by device,
//! inode, size and modification time.
//!
//! # Checkpoints
//!
//! See [`checkpoint`]: `<data_dir>/checkpoints.json` (give each source its
//! own `data_dir`), versioned JSON, written atomically at most every second
//! and at shutdown; corrupt files kept aside and reported; entries of files
//! that disappeared expire after `checkpoint_retention`, and never while
//! the file exists, whatever `ignore_older` says (Vector #17208).
//!
//! # Metrics
//!
//! `mlsoc_source_records_total{source}`, `mlsoc_source_bytes_total{source}`,
//! `mlsoc_file_lag_bytes{source,file}` (size minus acknowledged position),
//! `mlsoc_files_open{source}`, `mlsoc_checkpoint_writes_total{source}`.

pub mod checkpoint;
pub mod config;
pub mod discovery;
pub mod fingerprint;
pub mod reader;
mod server;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

pub use checkpoint::FileCheckpoint;
pub use config::{ReadFrom, TailConfig};

use crate::batch::SourceBatch;

/// Why the file source could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("file source configuration: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("file source thread panicked")]
    Panicked,
}

/// A running file source.
pub struct TailHandle {
    reader: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    table: Arc<Mutex<checkpoint::Table>>,
}

impl TailHandle {
    /// The checkpoints as they are now (acknowledged positions), one per
    /// file identity known to this source.
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        checkpoint::lock(&self.table).snapshot()
    }

    /// Waits until the source ended: after `stop` is cancelled (or the
    /// pipeline is gone), the reader stops, and the last checkpoints are
    /// written once every batch sent was acknowledged or `shutdown_timeout`
    /// passed.
    pub fn join(mut self) -> Result<(), TailError> {
        let r = self.reader.take().map(JoinHandle::join);
        let c = self.checkpointer.take().map(JoinHandle::join);
        if matches!(r, Some(Err(_))) || matches!(c, Some(Err(_))) {
            return Err(TailError::Panicked);
        }
        Ok(())
    }
}

/// Starts a file source on its own threads (blocking file I/O): a reader
/// that sends batches to `out`, and a checkpointer that applies their
/// acknowledgements and writes `<data_dir>/checkpoints.json`.
pub fn spawn(
    name: Arc<str>,
    config: TailConfig,
    data_dir: PathBuf,
    out: Sender<SourceBatch>,
    stop: CancellationToken,
) -> Result<TailHandle, TailError> {
    config.validate()?;
    let globs = discovery::Globs::new(&config.include, &config.exclude)?;
    std::fs::create_dir_all(&data_dir).map_err(|source| TailError::Io {
        path: data_dir.display().to_string(),
        source,
    })?;
    let loaded = checkpoint::load(&name, &data_dir);
    let table = Arc::new(Mutex::new(checkpoint::Table::new(
        name.clone(),
        loaded.entries,
    )));
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let cp = checkpoint::Checkpointer {
        table: table.clone(),
        acks: ack_rx,
        dir: data_dir,
        stop: stop.clone(),
        retention: config.checkpoint_retention,
        shutdown_timeout: config.shutdown_timeout,
    };
    let server = server::Server::new(
        name.clone(),
        config,
        globs,
        table.clone(),
        ack_tx,
        out,
        stop,
    );
    let spawn_err = |source| TailError::Io {
        path: "thread".into(),
        source,
    };
    let checkpointer = std::thread::Builder::new()
        .name(format!("checkpoints-{name}"))
        .spawn(move || cp.run())
        .map_err(spawn_err)?;
    let reader = std::thread::Builder::new()
        .name(format!("tail-{name}"))
        .spawn(move || server.run())
        .map_err(spawn_err)?;
    Ok(TailHandle {
        reader: Some(reader),
        checkpointer: Some(checkpointer),
        table,
    })
}
