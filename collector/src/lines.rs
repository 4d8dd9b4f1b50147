//! Splitting a byte stream into lines without copying them.
//!
//! The reader fills large chunks; each complete line inside a chunk is
//! handed out as a `Bytes` slice of it (a reference count, no copy). A line
//! that spans two chunks is assembled in a carry buffer. A line longer than
//! the limit keeps only its head, and its full length is reported, so the
//! normalizer can dead-letter it with a reason instead of cutting it
//! silently. `\n` ends a line; a `\r` before it is removed.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

/// One line as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line without its terminator (only the head when `overflow_len` is set).
    pub bytes: Bytes,
    /// Byte offset of the line's first byte in the stream.
    pub offset: u64,
    /// 1-based line number.
    pub number: u64,
    /// Full length when the line was longer than the limit.
    pub overflow_len: Option<u64>,
}

const CHUNK: usize = 256 * 1024;

/// Reads lines from any byte stream.
pub struct LineSplitter<R> {
    inner: R,
    chunk: Bytes,
    pos: usize,
    carry: BytesMut,
    /// Length of the unfinished line so far, including bytes not kept.
    carry_len: u64,
    line_start: u64,
    consumed: u64,
    number: u64,
    max: usize,
    eof: bool,
    /// A read buffer kept for the next fill when a read returned little:
    /// small reads are copied out instead of pinning a whole chunk per line.
    spare: BytesMut,
    /// Bytes the next fills may read ([`Self::limit_reads`]; `u64::MAX`:
    /// no limit).
    read_limit: u64,
}

impl<R: Read> LineSplitter<R> {
    /// `max_line` is the longest line kept whole.
    pub fn new(inner: R, max_line: usize) -> LineSplitter<R> {
        LineSplitter {
            inner,
            chunk: Bytes::new(),
            pos: 0,
            carry: BytesMut::new(),
            carry_len: 0,
            line_start: 0,
            consumed: 0,
            number: 0,
            max: max_line.max(1),
            eof: false,
            spare: BytesMut::new(),
            read_limit: u64::MAX,
        }
    }

    /// Whether bytes already read wait in the buffer, so that the next
    /// call may return a line without reading (and without blocking).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.chunk.len()
    }

    /// Lets the next fills read `n` bytes in all, in buffers of that size
    /// (at most 256 KiB each), then return nothing without reading. Tail
    /// mode sets what the file has beyond the offset: a file that grew by
    /// one line costs one line of buffer, an idle file no read at all.
    pub fn limit_reads(&mut self, n: u64) {
        self.read_limit = n;
    }

    /// A splitter for a stream whose first byte is at `offset` of a larger
    /// whole (a file resumed from a checkpoint), after `lines` lines.
    pub fn resume(inner: R, max_line: usize, offset: u64, lines: u64) -> LineSplitter<R> {
        let mut s = LineSplitter::new(inner, max_line);
        s.consumed = offset;
        s.line_start = offset;
        s.number = lines;
        s
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.consumed + self.pos as u64
    }

    /// Offset of the first byte not yet handed out in a line: the end of
    /// the last line returned (a resume point on a line boundary).
    pub fn line_start(&self) -> u64 {
        self.line_start
    }

    /// Lines handed out so far (with the `lines` given to [`Self::resume`]).
    pub fn lines(&self) -> u64 {
        self.number
    }

    /// The reader inside.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The reader inside.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Tail mode: the next *terminated* line, or `None` when the reader
    /// has nothing more for now (it returned 0 bytes). An unfinished last
    /// line stays buffered (only its head when it is over the limit) until
    /// its `\n` arrives in a later call; [`Self::take_partial`] hands it
    /// out when the stream is abandoned. The reader may return data again
    /// after returning 0 (a file that grows).
    pub fn next_complete_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.scan_chunk() {
                return Ok(Some(line));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next line, `None` at the end of the stream. A last line without
    /// a terminator is returned too.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.scan_chunk() {
                return Ok(Some(line));
            }
            if self.eof {
                if self.carry_len > 0 {
                    let total = self.carry_len;
                    let b = std::mem::take(&mut self.carry).freeze();
                    self.carry_len = 0;
                    let overflow = total > self.max as u64;
                    return Ok(Some(self.emit(b, overflow.then_some(total))));
                }
                return Ok(None);
            }
            if self.fill()? == 0 {
                self.eof = true;
            }
        }
    }

    /// The next terminated line inside the current chunk; what follows the
    /// last `\n` goes to the carry buffer.
    fn scan_chunk(&mut self) -> Option<Line> {
        if self.pos >= self.chunk.len() {
            return None;
        }
        let hay = &self.chunk[self.pos..];
        match memchr::memchr(b'\n', hay) {
            Some(i) => {
                let start = self.pos;
                let end = start + i;
                self.pos = end + 1;
                let line = if self.carry_len == 0 {
                    let mut b = self.chunk.slice(start..end);
                    if b.last() == Some(&b'\r') {
                        b.truncate(b.len() - 1);
                    }
                    if b.len() > self.max {
                        let total = b.len() as u64;
                        b.truncate(self.max);
                        self.emit(b, Some(total))
                    } else {
                        self.emit(b, None)
                    }
                } else {
                    let piece = self.chunk.slice(start..end);
                    self.append(&piece);
                    let mut total = self.carry_len;
                    let mut b = std::mem::take(&mut self.carry).freeze();
                    let overflow = total > self.max as u64;
                    if !overflow && b.last() == Some(&b'\r') {
                        b.truncate(b.len() - 1);
                        total -= 1;
                    }
                    self.carry_len = 0;
                    self.emit(b, overflow.then_some(total))
                };
                Some(line)
            }
            None => {
                let piece = self.chunk.slice(self.pos..);
                self.append(&piece);
                self.pos = self.chunk.len();
                None
            }
        }
    }

    /// Reads the rest of the stream as one record (whole-document framing),
    /// keeping at most `max` bytes.
    pub fn read_document(&mut self, max: usize) -> io::Result<Option<Line>> {
        self.max = max.max(1);
        loop {
            if self.pos < self.chunk.len() {
                let piece = self.chunk.slice(self.pos..);
                self.append(&piece);
                self.pos = self.chunk.len();
            }
            if self.eof {
                break;
            }
            if self.fill()? == 0 {
                self.eof = true;
            }
        }
        if self.carry_len == 0 {
            return Ok(None);
        }
        let total = self.carry_len;
        let b = std::mem::take(&mut self.carry).freeze();
        self.carry_len = 0;
        let overflow = total > self.max as u64;
        Ok(Some(self.emit(b, overflow.then_some(total))))
    }

    /// After a read error: what was read of the unfinished line, so that it
    /// can be dead-lettered instead of lost.
    pub fn take_partial(&mut self) -> Option<Line> {
        if self.pos < self.chunk.len() {
            let piece = self.chunk.slice(self.pos..);
            self.append(&piece);
            self.pos = self.chunk.len();
        }
        if self.carry_len == 0 {
            return None;
        }
        let total = self.carry_len;
        let b = std::mem::take(&mut self.carry).freeze();
        self.carry_len = 0;
        let overflow = total > self.max as u64;
        Some(self.emit(b, overflow.then_some(total)))
    }

    fn append(&mut self, piece: &[u8]) {
        let room = (self.max + 1).saturating_sub(self.carry.len());
        self.carry
            .extend_from_slice(&piece[..piece.len().min(room)]);
        self.carry_len += piece.len() as u64;
    }

    fn emit(&mut self, mut bytes: Bytes, overflow: Option<u64>) -> Line {
        if overflow.is_some() && bytes.len() > self.max {
            bytes.truncate(self.max);
        }
        self.number += 1;
        let line = Line {
            bytes,
            offset: self.line_start,
            number: self.number,
            overflow_len: overflow,
        };
        self.line_start = self.consumed + self.pos as u64;
        line
    }

    /// Reads the next chunk; returns how many bytes came (0: end of the
    /// stream, or nothing more for now in tail mode).
    fn fill(&mut self) -> io::Result<usize> {
        self.consumed += self.chunk.len() as u64;
        self.pos = 0;
        self.chunk = Bytes::new();
        let want = usize::try_from(self.read_limit).map_or(CHUNK, |l| l.min(CHUNK));
        if want == 0 {
            return Ok(0);
        }
        // Reuse the spare buffer unless it is far larger than this read.
        let mut buf = std::mem::take(&mut self.spare);
        if buf.len() < want || buf.len() / 4 > want {
            buf = BytesMut::zeroed(want);
        }
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.spare = buf;
                    return Err(e);
                }
            }
        };
        if self.read_limit != u64::MAX {
            self.read_limit -= n as u64;
        }
        if n < buf.len() / 2 {
            // Lines handed out share the chunk: copy a small read out so a
            // line does not keep a large buffer alive, and reuse the buffer.
            self.chunk = Bytes::copy_from_slice(&buf[..n]);
            self.spare = buf;
        } else {
            buf.truncate(n);
            self.chunk = buf.freeze();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that returns at most `step` bytes per call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn all(data: &[u8], step: usize, max: usize) -> Vec<Line> {
        let mut s = LineSplitter::new(Trickle { data, step }, max);
        let mut out = Vec::new();
        while let Some(l) = s.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn lines_offsets_and_crlf() {
        let lines = all(b"a\r\nbb\n\nccc", 2, 100);
        let got: Vec<(&[u8], u64, u64)> = lines
            .iter()
            .map(|l| (&l.bytes[..], l.offset, l.number))
            .collect();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], 0, 1),
                (&b"bb"[..], 3, 2),
                (&b""[..], 6, 3),
                (&b"ccc"[..], 7, 4)
            ]
        );
        assert!(all(b"", 3, 10).is_empty());
        assert_eq!(
            all(b"x\n", 1, 10).len(),
            1,
            "a final newline does not make an empty line"
        );
    }

    #[test]
    fn overlong_lines_keep_head_and_length() {
        let mut data = vec![b'a'; 1000];
        data.extend_from_slice(b"\nshort\n");
        for step in [7, 4096] {
            let lines = all(&data, step, 10);
            assert_eq!(lines.len(), 2);
            assert_eq!(&lines[0].bytes[..], &[b'a'; 10][..]);
            assert_eq!(lines[0].overflow_len, Some(1000));
            assert_eq!(&lines[1].bytes[..], b"short");
            assert_eq!(lines[1].offset, 1001);
            assert_eq!(lines[1].overflow_len, None);
        }
    }

    #[test]
    fn document_mode() {
        let mut s = LineSplitter::new(&b"{\n  \"a\": 1\n}\n"[..], 100);
        let d = s.read_document(100).unwrap().unwrap();
        assert_eq!(&d.bytes[..], b"{\n  \"a\": 1\n}\n");
        let mut s = LineSplitter::new(&b"0123456789"[..], 100);
        let d = s.read_document(4).unwrap().unwrap();
        assert_eq!((&d.bytes[..], d.overflow_len), (&b"0123"[..], Some(10)));
    }

    /// A growing file: reads return what was appended so far, then 0.
    struct Growing {
        data: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        pos: usize,
    }

    impl Read for Growing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let data = self.data.borrow();
            let n = (data.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn tail_mode_waits_for_the_newline_and_resumes() {
        let data = std::rc::Rc::new(std::cell::RefCell::new(b"one\ntw".to_vec()));
        let mut s = LineSplitter::resume(
            Growing {
                data: data.clone(),
                pos: 0,
            },
            5,
            100,
            7,
        );
        let l = s.next_complete_line().unwrap().unwrap();
        assert_eq!((&l.bytes[..], l.offset, l.number), (&b"one"[..], 100, 8));
        assert_eq!(
            s.next_complete_line().unwrap(),
            None,
            "unfinished line held"
        );
        assert_eq!((s.line_start(), s.offset()), (104, 106));
        data.borrow_mut()
            .extend_from_slice(b"o\r\nthis one is long\nend");
        let l = s.next_complete_line().unwrap().unwrap();
        assert_eq!((&l.bytes[..], l.offset, l.number), (&b"two"[..], 104, 9));
        let l = s.next_complete_line().unwrap().unwrap();
        assert_eq!((&l.bytes[..], l.overflow_len), (&b"this "[..], Some(16)));
        assert_eq!(s.next_complete_line().unwrap(), None);
        assert_eq!(s.lines(), 10);
        let p = s.take_partial().unwrap();
        assert_eq!((&p.bytes[..], p.offset, p.number), (&b"end"[..], 126, 11));
        assert_eq!(s.line_start(), 129);
        assert_eq!(s.take_partial(), None);
    }

    #[test]
    fn small_reads_do_not_pin_whole_chunks() {
        let data = std::rc::Rc::new(std::cell::RefCell::new(b"a\n".to_vec()));
        let mut s = LineSplitter::new(
            Growing {
                data: data.clone(),
                pos: 0,
            },
            100,
        );
        let l = s.next_complete_line().unwrap().unwrap();
        // The line's bytes were copied out of the read buffer.
        assert!(l.bytes.len() == 1 && s.spare.len() == CHUNK);
        // Reads sized to what is there: no large spare kept, nothing read at 0.
        s.limit_reads(2);
        data.borrow_mut().extend_from_slice(b"b\n");
        assert_eq!(&s.next_complete_line().unwrap().unwrap().bytes[..], b"b");
        assert!(s.spare.is_empty(), "a right-sized read is handed out as is");
        s.limit_reads(0);
        data.borrow_mut().extend_from_slice(b"c\n");
        assert_eq!(s.next_complete_line().unwrap(), None);
    }

    proptest! {
        #[test]
        fn rejoining_lines_gives_back_the_input(data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..600), step in 1usize..50) {
            let lines = all(&data, step, 1 << 20);
            let mut rebuilt = Vec::new();
            for l in &lines {
                prop_assert_eq!(l.offset as usize, rebuilt.len());
                rebuilt.extend_from_slice(&l.bytes);
                let end = rebuilt.len();
                // restore what the splitter removed: "\r\n" or "\n"
                if data.get(end) == Some(&b'\r') && data.get(end + 1) == Some(&b'\n') {
                    rebuilt.extend_from_slice(b"\r\n");
                } else if data.get(end) == Some(&b'\n') {
                    rebuilt.push(b'\n');
                }
            }
            prop_assert_eq!(rebuilt, data);
        }
    }
}
