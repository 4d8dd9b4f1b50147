//! One open file being read: its descriptor, its line splitter, and the
//! checks that tell a file that grew from one that was truncated or
//! replaced.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use flate2::read::MultiGzDecoder;
use schema::Source;

use super::fingerprint::{self, Fingerprint};
use crate::lines::{Line, LineSplitter};

/// The bytes of a file: as they are, or decompressed.
pub enum Input {
    Plain(File),
    Gzip(Box<MultiGzDecoder<File>>),
}

/// A reader that stops (returns 0) after `budget` bytes, so one file
/// cannot hold the reader: the round robin refills the budget each pass.
pub struct Budgeted {
    pub input: Input,
    pub budget: u64,
    /// The last read hit the end of the file (not the budget).
    pub eof: bool,
    /// Bytes read in total (decompressed for gzip).
    pub total: u64,
}

impl Read for Budgeted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget == 0 || buf.is_empty() {
            return Ok(0);
        }
        let len = buf
            .len()
            .min(usize::try_from(self.budget).unwrap_or(usize::MAX));
        let n = match &mut self.input {
            Input::Plain(f) => f.read(&mut buf[..len])?,
            Input::Gzip(d) => d.read(&mut buf[..len])?,
        };
        self.eof = n == 0;
        self.budget -= n as u64;
        self.total += n as u64;
        Ok(n)
    }
}

/// Device and inode.
pub type Key = (u64, u64);

pub fn key_of(meta: &Metadata) -> Key {
    (meta.dev(), meta.ino())
}

/// An open file.
pub struct Tracked {
    /// Identity (checkpoint entry id).
    pub id: u64,
    pub stream: u64,
    pub source: Arc<Source>,
    /// Where the file is now (changes when it is renamed).
    pub path: PathBuf,
    pub key: Key,
    pub gzip: bool,
    pub splitter: LineSplitter<Budgeted>,
    /// First bytes of the file (up to `fingerprint_bytes`, plain files).
    pub head: Vec<u8>,
    /// Size at the last look.
    pub size: u64,
    pub modified: Option<SystemTime>,
    pub last_growth: Instant,
    /// When the file was found deleted or renamed out of the patterns.
    pub gone: Option<Instant>,
}

/// What a look at an open plain file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    /// Nothing new.
    Same,
    /// It grew (or its head did).
    Grew,
    /// It is shorter than what was read, or its first bytes changed: it
    /// was truncated (in place, or by copytruncate) or rewritten.
    Truncated,
}

impl Tracked {
    /// Opens a plain file at `start` (a line boundary), checking that the
    /// path still is the file that was found.
    #[allow(clippy::too_many_arguments)]
    pub fn open_plain(
        path: &Path,
        key: Key,
        start: u64,
        lines: u64,
        max_line: usize,
        fingerprint_bytes: usize,
        source: Arc<Source>,
        id: u64,
        stream: u64,
    ) -> io::Result<Tracked> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if key_of(&meta) != key {
            return Err(io::Error::other("replaced while being opened"));
        }
        let head = fingerprint::read_at(&file, 0, fingerprint_bytes)?;
        file.seek(SeekFrom::Start(start))?;
        let input = Budgeted {
            input: Input::Plain(file),
            budget: 0,
            eof: false,
            total: 0,
        };
        Ok(Tracked {
            id,
            stream,
            source,
            path: path.to_path_buf(),
            key,
            gzip: false,
            splitter: LineSplitter::resume(input, max_line, start, lines),
            head,
            size: meta.len(),
            modified: meta.modified().ok(),
            last_growth: Instant::now(),
            gone: None,
        })
    }

    /// Opens a gzip file, decompressing and dropping the first `start`
    /// bytes (a checkpoint inside it). Returns `Ok(None)` when it has
    /// fewer than `start` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn open_gzip(
        path: &Path,
        key: Key,
        start: u64,
        lines: u64,
        max_line: usize,
        source: Arc<Source>,
        id: u64,
        stream: u64,
    ) -> io::Result<Option<Tracked>> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if key_of(&meta) != key {
            return Err(io::Error::other("replaced while being opened"));
        }
        let mut dec = MultiGzDecoder::new(file);
        if start > 0 {
            let skipped = io::copy(&mut (&mut dec).take(start), &mut io::sink())?;
            if skipped < start {
                return Ok(None);
            }
        }
        let input = Budgeted {
            input: Input::Gzip(Box::new(dec)),
            budget: 0,
            eof: false,
            total: 0,
        };
        Ok(Some(Tracked {
            id,
            stream,
            source,
            path: path.to_path_buf(),
            key,
            gzip: true,
            splitter: LineSplitter::resume(input, max_line, start, lines),
            head: Vec::new(),
            size: meta.len(),
            modified: meta.modified().ok(),
            last_growth: Instant::now(),
            gone: None,
        }))
    }

    pub fn file(&self) -> &File {
        match &self.splitter.get_ref().input {
            Input::Plain(f) => f,
            Input::Gzip(d) => d.get_ref(),
        }
    }

    /// Looks at a plain file through its descriptor: size, deletion, and
    /// whether its first bytes are still the ones read (a file truncated
    /// and written again past our position would otherwise look grown).
    pub fn look(&mut self, fingerprint_bytes: usize) -> io::Result<Look> {
        let meta = self.file().metadata()?;
        if meta.nlink() == 0 && self.gone.is_none() {
            self.gone = Some(Instant::now());
            tracing::info!(file = %self.path.display(), "file deleted; reading it to its end");
        }
        let size = meta.len();
        let modified = meta.modified().ok();
        if self.gzip {
            return Ok(Look::Same);
        }
        if size < self.splitter.offset() {
            return Ok(Look::Truncated);
        }
        if size == self.size && modified == self.modified {
            return Ok(Look::Same);
        }
        // Nothing changes before the verdict: a truncated file looks
        // truncated to every look until it is retired.
        let want = fingerprint_bytes.min(size as usize);
        if !self.head.is_empty() || want > 0 {
            let now = fingerprint::read_at(self.file(), 0, want.max(self.head.len()))?;
            if now.len() < self.head.len() || now[..self.head.len()] != self.head[..] {
                return Ok(Look::Truncated);
            }
            self.head = now;
        }
        self.size = size;
        self.modified = modified;
        Ok(Look::Grew)
    }

    /// The head's fingerprint (identity).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.head)
    }

    /// Up to `max` terminated lines, reading within the budget.
    pub fn lines(&mut self, max: usize, out: &mut Vec<Line>) -> io::Result<()> {
        while out.len() < max {
            match self.splitter.next_complete_line()? {
                Some(l) => out.push(l),
                None => break,
            }
        }
        Ok(())
    }

    /// Fingerprint of the bytes before `end` (plain files), for the
    /// checkpoint's second check.
    pub fn tail_at(&self, end: u64, fingerprint_bytes: usize) -> Option<Fingerprint> {
        if self.gzip || end == 0 {
            return None;
        }
        fingerprint::before(self.file(), end, fingerprint_bytes)
            .ok()
            .flatten()
    }
}

/// Where reading from the end starts: after the last `\n` in the last
/// 64 KiB, or at the end when there is none.
pub fn end_of_last_line(file: &File, size: u64) -> io::Result<u64> {
    let window = size.min(64 * 1024);
    let data = fingerprint::read_at(file, size - window, window as usize)?;
    Ok(match memchr::memrchr(b'\n', &data) {
        Some(i) => size - window + i as u64 + 1,
        None => size,
    })
}
