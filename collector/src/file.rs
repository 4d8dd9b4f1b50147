//! Opening inputs: plain or gzip files (recognized by their magic bytes, not
//! their name) and stdin, and choosing how to cut them into records.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;
use std::time::SystemTime;

use flate2::read::MultiGzDecoder;

/// How a stream is cut into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One record per line (multi-line grouping is the normalizer's job).
    Lines,
    /// The whole stream is one JSON document: a CloudTrail `{"Records": [...]}`
    /// file, a pretty-printed object, or a top-level array.
    Document,
}

/// An opened input.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub gzip: bool,
    pub framing: Framing,
    /// Size on disk (compressed size for gzip files), for progress.
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Why an input could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
}

const PEEK: usize = 4096;

/// Opens a file, decompressing gzip and detecting document framing.
pub fn open(path: &Path) -> Result<Opened, OpenError> {
    let err = |source| OpenError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(OpenError::NotAFile {
            path: path.display().to_string(),
        });
    }
    let mut file = File::open(path).map_err(err)?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut file, &mut magic).map_err(err)?;
    let head = Cursor::new(magic[..n].to_vec()).chain(file);
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(head))
    } else {
        Box::new(head)
    };
    let (reader, framing) = sniff(reader).map_err(err)?;
    Ok(Opened {
        reader,
        gzip,
        framing,
        size: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// Wraps stdin (or any reader) with framing detection.
pub fn from_reader(r: Box<dyn Read + Send>) -> io::Result<(Box<dyn Read + Send>, Framing)> {
    sniff(r)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the first bytes to choose the framing, then gives them back.
fn sniff(mut r: Box<dyn Read + Send>) -> io::Result<(Box<dyn Read + Send>, Framing)> {
    let mut head = vec![0u8; PEEK];
    // A read error (e.g. truncated gzip) within the first bytes: keep what
    // we have and let the line reader report the error.
    let n = read_full(&mut r, &mut head).unwrap_or_default();
    head.truncate(n);
    let framing = framing_of(&head);
    Ok((Box::new(Cursor::new(head).chain(r)), framing))
}

/// Document framing for `{"Records"`, a first line that is only `{`, or a
/// leading `[`; lines otherwise.
pub fn framing_of(head: &[u8]) -> Framing {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = head
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(head.len());
    let t = &head[start..];
    match t.first() {
        // A JSON array of objects, arrays or strings; not a log line such as
        // `[I 2026-11-30 ...]` or `[2026-11-30 ...]`.
        Some(b'[') => match t[1..].iter().find(|c| !c.is_ascii_whitespace()) {
            Some(b'{' | b'[' | b'"' | b']') => Framing::Document,
            _ => Framing::Lines,
        },
        Some(b'{') => {
            let after = &t[1..];
            let first_key = after
                .iter()
                .position(|c| !c.is_ascii_whitespace())
                .map(|i| &after[i..])
                .unwrap_or(&[]);
            let line_end = t.iter().position(|&c| c == b'\n').unwrap_or(t.len());
            let first_line = t[..line_end].trim_ascii();
            if first_key.starts_with(b"\"Records\"") || first_line == b"{" {
                Framing::Document
            } else {
                Framing::Lines
            }
        }
        _ => Framing::Lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn framing() {
        assert_eq!(framing_of(b"{\"Records\":[{}]}"), Framing::Document);
        assert_eq!(framing_of(b"\n  { \"Records\" : []}"), Framing::Document);
        assert_eq!(framing_of(b"{\n  \"a\": 1\n}"), Framing::Document);
        assert_eq!(framing_of(b"[{\"a\":1}]"), Framing::Document);
        assert_eq!(framing_of(b"[\n  {\"a\":1}\n]"), Framing::Document);
        assert_eq!(
            framing_of(b"[I 2026-11-30 00:36:24.598 ServerApp] x"),
            Framing::Lines
        );
        assert_eq!(
            framing_of(b"[2026-11-30 00:39:16,576 I 302 302] (raylet) x"),
            Framing::Lines
        );
        assert_eq!(framing_of(b"{\"a\":1}\n{\"a\":2}\n"), Framing::Lines);
        assert_eq!(framing_of(b"2026/11/30 00:00:00 INFO x"), Framing::Lines);
        assert_eq!(framing_of(b""), Framing::Lines);
    }

    #[test]
    fn gzip_by_magic_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-gz-extension.log");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"line one\nline two\n").unwrap();
        let gz = enc.finish().unwrap();
        std::fs::write(&p, &gz).unwrap();
        let mut o = open(&p).unwrap();
        assert!(o.gzip);
        let mut s = String::new();
        o.reader.read_to_string(&mut s).unwrap();
        assert_eq!(s, "line one\nline two\n");

        let cut = dir.path().join("cut.gz");
        std::fs::write(&cut, &gz[..gz.len() - 6]).unwrap();
        let mut o = open(&cut).unwrap();
        let mut buf = Vec::new();
        assert!(
            o.reader.read_to_end(&mut buf).is_err(),
            "a truncated gzip stream is an error, not a silent EOF"
        );
        assert!(matches!(open(dir.path()), Err(OpenError::NotAFile { .. })));
        assert!(matches!(
            open(&dir.path().join("missing")),
            Err(OpenError::Io { .. })
        ));
    }
}
