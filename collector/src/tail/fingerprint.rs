//! File identity: what a file's bytes say about which file it is.
//!
//! A file is recognized by the CRC-32 of its first `fingerprint_bytes`
//! bytes, as Vector's `checksum` strategy does, so a file keeps its identity
//! when it is renamed (rotation) or copied (copytruncate), and an inode
//! reused by a new file is not taken for the old one. See the `tail` module
//! docs for files shorter than that, and for the second check at the
//! checkpoint position ([`Fingerprint`] of the bytes before it).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// The CRC-32 of `bytes` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// How many bytes the CRC covers.
    pub bytes: u64,
    pub crc32: u32,
}

impl Fingerprint {
    pub fn of(data: &[u8]) -> Fingerprint {
        Fingerprint {
            bytes: data.len() as u64,
            crc32: crc32fast::hash(data),
        }
    }
}

/// Reads up to `len` bytes at `offset` (fewer at the end of the file).
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut n = 0;
    while n < len {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Whether the bytes `[offset - fp.bytes, offset)` of `file` have the CRC
/// `fp`: the check that a checkpoint position still sits on the content it
/// was taken on.
pub fn matches_before(file: &File, offset: u64, fp: Fingerprint) -> io::Result<bool> {
    if fp.bytes > offset {
        return Ok(false);
    }
    let data = read_at(file, offset - fp.bytes, fp.bytes as usize)?;
    Ok(data.len() as u64 == fp.bytes && Fingerprint::of(&data) == fp)
}

/// The fingerprint of the `bytes` before `offset` (at most `max` of them).
pub fn before(file: &File, offset: u64, max: usize) -> io::Result<Option<Fingerprint>> {
    let len = (max as u64).min(offset);
    let data = read_at(file, offset - len, len as usize)?;
    Ok((data.len() as u64 == len).then(|| Fingerprint::of(&data)))
}

/// Whether these first bytes are a gzip stream's magic number.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_of_file_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello world\n").unwrap();
        let f = File::open(&p).unwrap();
        assert_eq!(read_at(&f, 6, 100).unwrap(), b"world\n");
        let fp = before(&f, 11, 5).unwrap().unwrap();
        assert_eq!(fp, Fingerprint::of(b"world"));
        assert!(matches_before(&f, 11, fp).unwrap());
        assert!(!matches_before(&f, 10, fp).unwrap());
        assert!(!matches_before(&f, 3, fp).unwrap());
        assert_eq!(before(&f, 3, 5).unwrap(), Some(Fingerprint::of(b"hel")));
        assert_eq!(before(&f, 40, 5).unwrap(), None, "past the end");
        assert!(is_gzip(&[0x1f, 0x8b, 8]));
        assert!(!is_gzip(b"\x1f"));
    }
}
