//! The on-disk format of the disk buffer: frames in segment files, and the
//! binary encoding of a [`Record`] inside a frame.
//!
//! ```text
//! frame   = magic:u32le  len:u32le  crc:u32le  payload[len]
//! crc     = CRC-32 (IEEE) of len:u32le followed by payload
//! payload = version:u8(=1) stream:u8 doc:bytes dataset:str time:opt_i64
//!           host:opt_str source:str id:str
//! bytes   = n:u32le then n bytes; str = bytes holding UTF-8
//! opt_i64 = 0 | 1 i64le;  opt_str = 0 | 1 str
//! ```
//!
//! The magic lets the reader find the next frame after a damaged one (bit
//! rot, a torn write after a crash) instead of giving up on the rest of the
//! segment; the CRC covers the length too, so a damaged length is caught
//! before it is trusted. A binary encoding instead of serde_json: a record
//! is mostly one JSON document already serialized, and escaping it again as
//! a JSON string costs more than copying it (see the throughput test).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::record::{Record, Stream};

pub const MAGIC: u32 = 0xB0FF_D15C;
pub const HEADER: usize = 12;
const VERSION: u8 = 1;
/// Largest payload a frame may claim; a record bigger than this is refused
/// by the writer (it cannot be anything but a bug upstream).
pub const MAX_PAYLOAD: usize = 1 << 30;
/// Bytes read from a segment at a time.
const CHUNK: usize = 1 << 20;

/// Appends the frame of `r` to `out`. `Err` when the record is too large
/// to be framed.
pub fn encode(r: &Record, out: &mut Vec<u8>) -> Result<(), usize> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    out.push(VERSION);
    out.push(match r.stream {
        Stream::Events => 0,
        Stream::Alerts => 1,
        Stream::DeadLetters => 2,
    });
    put_bytes(out, &r.doc);
    put_bytes(out, r.dataset.as_bytes());
    match r.time_ns {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    match &r.host {
        Some(h) => {
            out.push(1);
            put_bytes(out, h.as_bytes());
        }
        None => out.push(0),
    }
    put_bytes(out, r.source.as_bytes());
    put_bytes(out, r.id.as_bytes());
    let len = out.len() - start - HEADER;
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(len);
    }
    let len_le = (len as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len_le);
    h.update(&out[start + HEADER..]);
    let crc = h.finalize();
    out[start..start + 4].copy_from_slice(&MAGIC.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&len_le);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Fields of a record under MAX_PAYLOAD fit in u32; a larger one makes the
    // whole frame exceed MAX_PAYLOAD and is refused by `encode`.
    out.extend_from_slice(&(b.len().min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reuses the `Arc<str>` of the previous record when a field repeats
/// (dataset, source and host usually do), saving an allocation per field.
#[derive(Default)]
pub struct Interner {
    dataset: Option<Arc<str>>,
    source: Option<Arc<str>>,
    host: Option<Arc<str>>,
}

fn intern(slot: &mut Option<Arc<str>>, s: &str) -> Arc<str> {
    match slot {
        Some(a) if &**a == s => a.clone(),
        _ => {
            let a: Arc<str> = s.into();
            *slot = Some(a.clone());
            a
        }
    }
}

/// Decodes a frame's payload.
pub fn decode(p: &[u8], names: &mut Interner) -> Result<Record, &'static str> {
    let mut c = Cursor { p, i: 0 };
    if c.u8()? != VERSION {
        return Err("unknown record version");
    }
    let stream = match c.u8()? {
        0 => Stream::Events,
        1 => Stream::Alerts,
        2 => Stream::DeadLetters,
        _ => return Err("unknown stream"),
    };
    let doc = Bytes::copy_from_slice(c.bytes()?);
    let dataset = intern(&mut names.dataset, c.str()?);
    let time_ns = match c.u8()? {
        0 => None,
        1 => Some(i64::from_le_bytes(
            c.take(8)?.try_into().map_err(|_| "short")?,
        )),
        _ => return Err("bad option tag"),
    };
    let host = match c.u8()? {
        0 => None,
        1 => Some(intern(&mut names.host, c.str()?)),
        _ => return Err("bad option tag"),
    };
    let source = intern(&mut names.source, c.str()?);
    let id: Arc<str> = c.str()?.into();
    if c.i != p.len() {
        return Err("trailing bytes");
    }
    Ok(Record {
        stream,
        doc,
        dataset,
        time_ns,
        host,
        source,
        id,
    })
}

struct Cursor<'a> {
    p: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.i.checked_add(n).ok_or("length overflow")?;
        let s = self.p.get(self.i..end).ok_or("record cut short")?;
        self.i = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short")?);
        self.take(n as usize)
    }
    fn str(&mut self) -> Result<&'a str, &'static str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "invalid UTF-8 in a text field")
    }
}

/// What [`SegmentReader::next`] found at an offset.
#[derive(Debug)]
pub enum Next {
    /// A record, and the frame's length in bytes.
    Record(Record, u64),
    /// `skip` bytes that hold no good frame (counted as one corrupt record).
    Corrupt { skip: u64, reason: &'static str },
    /// A sealed segment read to its end.
    End,
    /// The active segment has nothing more that is durable yet.
    NotYet,
}

/// Reads frames of one segment file, a large chunk at a time.
pub struct SegmentReader {
    pub id: u64,
    file: File,
    /// Bytes of the file from offset `buf_start`.
    buf: Vec<u8>,
    buf_start: u64,
    sealed_len: Option<u64>,
    names: Interner,
}

impl SegmentReader {
    pub fn open(path: &Path, id: u64) -> io::Result<SegmentReader> {
        Ok(SegmentReader {
            id,
            file: File::open(path)?,
            buf: Vec::new(),
            buf_start: 0,
            sealed_len: None,
            names: Interner::default(),
        })
    }

    /// The frame at `off`. `durable` is the end of durable data of the
    /// active segment, `None` when the segment is sealed (read to its end;
    /// only a sealed segment can end in a torn frame, since the active one
    /// is read only up to a group commit).
    pub fn next(&mut self, off: u64, durable: Option<u64>) -> io::Result<Next> {
        let (end, sealed) = match durable {
            Some(d) => (d, false),
            None => {
                let len = match self.sealed_len {
                    Some(l) => l,
                    None => {
                        let l = self.file.metadata()?.len();
                        self.sealed_len = Some(l);
                        l
                    }
                };
                (len, true)
            }
        };
        if off >= end {
            return Ok(if sealed { Next::End } else { Next::NotYet });
        }
        let avail = end - off;
        if avail < HEADER as u64 {
            return Ok(if sealed {
                Next::Corrupt {
                    skip: avail,
                    reason: "truncated frame header at the end of a segment",
                }
            } else {
                Next::NotYet
            });
        }
        match self.frame_at(off, end)? {
            Ok(len) => {
                let start = (off - self.buf_start) as usize + HEADER;
                let payload = &self.buf[start..start + len];
                let frame_len = (HEADER + len) as u64;
                match decode(payload, &mut self.names) {
                    Ok(r) => Ok(Next::Record(r, frame_len)),
                    Err(reason) => Ok(Next::Corrupt {
                        skip: frame_len,
                        reason,
                    }),
                }
            }
            Err(bad) => {
                // Below the durable mark of the active segment, frames were
                // written whole by this process: damage there means the file
                // changed under us; it is resynchronised the same way.
                let skip = self.resync(off, end)?;
                let reason = match bad {
                    Bad::Magic => "bad frame marker",
                    Bad::Crc => "checksum mismatch",
                    Bad::Truncated if skip == avail => "truncated frame at the end of a segment",
                    Bad::Truncated => "frame length past the end of the segment",
                };
                Ok(Next::Corrupt { skip, reason })
            }
        }
    }

    /// Checks the frame at `off`: `Ok(payload length)` when it is whole and
    /// its checksum matches; its payload is then in `buf`.
    fn frame_at(&mut self, off: u64, end: u64) -> io::Result<Result<usize, Bad>> {
        let h = self.bytes(off, HEADER, end)?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len_le = [h[4], h[5], h[6], h[7]];
        let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if magic != MAGIC {
            return Ok(Err(Bad::Magic));
        }
        let len = u32::from_le_bytes(len_le) as usize;
        if len > MAX_PAYLOAD || off + (HEADER + len) as u64 > end {
            return Ok(Err(Bad::Truncated));
        }
        let f = self.bytes(off, HEADER + len, end)?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&len_le);
        hasher.update(&f[HEADER..]);
        if hasher.finalize() != crc {
            return Ok(Err(Bad::Crc));
        }
        Ok(Ok(len))
    }

    /// Bytes to skip from a bad frame at `off` to the next good frame, or
    /// to `end` when none follows.
    fn resync(&mut self, off: u64, end: u64) -> io::Result<u64> {
        let magic = MAGIC.to_le_bytes();
        let mut at = off + 1;
        while at + HEADER as u64 <= end {
            let want = ((end - at) as usize).min(CHUNK);
            let hay = self.bytes(at, want, end)?;
            match memchr::memmem::find(hay, &magic) {
                Some(i) => {
                    let cand = at + i as u64;
                    if cand + HEADER as u64 > end {
                        break;
                    }
                    if self.frame_at(cand, end)?.is_ok() {
                        return Ok(cand - off);
                    }
                    at = cand + 1;
                }
                // The marker may straddle the chunk's end: keep its last 3 bytes.
                None => at += (want.saturating_sub(magic.len() - 1)).max(1) as u64,
            }
        }
        Ok(end - off)
    }

    /// `n` bytes of the file from `off` (`off + n <= end`), reading a new
    /// chunk when they are not in the buffer. Never reads past `end`, so the
    /// buffer holds no bytes of a group commit still in progress.
    fn bytes(&mut self, off: u64, n: usize, end: u64) -> io::Result<&[u8]> {
        let in_buf =
            off >= self.buf_start && off + n as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let want = (n.max(CHUNK) as u64).min(end - off) as usize;
            self.buf.clear();
            self.buf.resize(want, 0);
            let mut got = 0;
            while got < want {
                match self.file.read_at(&mut self.buf[got..], off + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.clear();
                        return Err(e);
                    }
                }
            }
            self.buf.truncate(got);
            self.buf_start = off;
            if got < n {
                self.buf.clear();
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file shorter than expected",
                ));
            }
        }
        let s = (off - self.buf_start) as usize;
        Ok(&self.buf[s..s + n])
    }
}

#[derive(Debug, Clone, Copy)]
enum Bad {
    Magic,
    Crc,
    Truncated,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize) -> Record {
        Record {
            stream: if i.is_multiple_of(2) {
                Stream::Events
            } else {
                Stream::Alerts
            },
            doc: Bytes::from(format!("{{\"n\":{i},\"msg\":\"héllo\"}}")),
            dataset: "mlflow.access".into(),
            time_ns: (!i.is_multiple_of(3)).then_some(i as i64 * 1_000_000_007 - 5),
            host: (!i.is_multiple_of(4)).then(|| Arc::from("host-a")),
            source: "/var/log/x.log".into(),
            id: format!("id-{i}").into(),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        for i in 0..10 {
            encode(&rec(i), &mut buf).unwrap();
        }
        let mut names = Interner::default();
        let mut at = 0;
        for i in 0..10 {
            let len = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap()) as usize;
            let r = decode(&buf[at + HEADER..at + HEADER + len], &mut names).unwrap();
            assert_eq!(r, rec(i));
            at += HEADER + len;
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode(&rec(1), &mut buf).unwrap();
        let payload = buf[HEADER..].to_vec();
        let mut names = Interner::default();
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut], &mut names).is_err());
        }
        let mut p = payload.clone();
        p[0] = 9;
        assert!(decode(&p, &mut names).is_err());
        let mut p = payload;
        p.push(0);
        assert!(decode(&p, &mut names).is_err());
    }
}
