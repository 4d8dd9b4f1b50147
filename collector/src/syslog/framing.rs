//! Syslog over a byte stream (TCP, TLS): RFC 6587 framing.
//!
//! Two framings exist, and senders mix them in practice, so the framing is
//! chosen per message by its first byte, as RFC 6587 section 3.4 suggests:
//!
//! - **octet counting** (`MSG-LEN SP SYSLOG-MSG`, the only framing of RFC
//!   5425 TLS): a message that starts with a digit `1`-`9`;
//! - **non-transparent framing**: anything else (a message normally starts
//!   with `<PRI>`), ended by LF (a CR before it is removed).
//!
//! Bytes between frames that can only be separators (LF, CR, NUL: some
//! senders end octet-counted frames with a newline that is not counted) are
//! skipped.
//!
//! A length prefix that is not one (`12a...`, more than 10 digits, no space
//! after the digits) or that claims more than the honoured maximum (16 x
//! `max_message_bytes`, at least 1 MiB) is not trusted: the framer falls
//! back to reading that message up to the next LF, keeping the bad prefix in
//! the record (the normalizer then parses it as a line if it is one, e.g. a
//! message without `<PRI>` starting with a date, or dead-letters it), marks
//! the frame with the reason, and carries on with the next message. It never
//! waits for an absurd amount of data and never holds more than
//! `max_message_bytes` (+1) of one message: a longer message keeps its head
//! and reports its full length in `overflow_len`, in either framing.
//!
//! Complete messages that lie inside one received chunk are handed out as
//! slices of it (no copy); a message spanning chunks is assembled.

use bytes::{Bytes, BytesMut};

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message (only its head when `overflow_len` is set), without the
    /// length prefix or the LF trailer.
    pub bytes: Bytes,
    /// Offset of the frame's first byte in the connection's byte stream.
    pub offset: u64,
    /// 1-based number of the frame in the connection.
    pub number: u64,
    /// Full length of a message longer than the limit.
    pub overflow_len: Option<u64>,
    /// Set when the frame is not what its sender meant to send: a bad length
    /// prefix (kept in `bytes`), or a message cut by the end of the
    /// connection.
    pub error: Option<&'static str>,
}

/// Most digits of an octet count (4 GB).
const MAX_DIGITS: u32 = 10;

#[derive(Debug, Clone, Copy)]
enum State {
    /// Between frames.
    Start,
    /// Reading the digits of an octet count.
    Length { value: u64, digits: u32 },
    /// Reading the body of an octet-counted frame.
    Counted { remaining: u64, len: u64 },
    /// Reading up to LF.
    Line,
}

/// The framing state of one connection.
#[derive(Debug)]
pub struct Framer {
    max: usize,
    max_count: u64,
    state: State,
    /// The message so far when it spans chunks (at most `max` + 1 bytes).
    carry: BytesMut,
    /// Length of the current line so far, including bytes not kept.
    line_len: u64,
    /// Stream offset of the first byte of the next chunk.
    base: u64,
    frame_start: u64,
    number: u64,
    error: Option<&'static str>,
}

impl Framer {
    /// `max` is the longest message kept whole.
    pub fn new(max: usize) -> Framer {
        let max = max.max(1);
        Framer {
            max,
            max_count: (max as u64).saturating_mul(16).max(1 << 20),
            state: State::Start,
            carry: BytesMut::new(),
            line_len: 0,
            base: 0,
            frame_start: 0,
            number: 0,
            error: None,
        }
    }

    /// Bytes held for an unfinished message.
    pub fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// Frames the next chunk of the stream, appending complete messages to
    /// `out`.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Frame>) {
        let mut i = 0;
        let n = chunk.len();
        while i < n {
            match self.state {
                State::Start => {
                    let b = chunk[i];
                    match b {
                        b'\n' | b'\r' | 0 => i += 1,
                        b'1'..=b'9' => {
                            self.begin(i);
                            self.carry.extend_from_slice(&[b]);
                            self.state = State::Length {
                                value: (b - b'0') as u64,
                                digits: 1,
                            };
                            i += 1;
                        }
                        _ => {
                            self.begin(i);
                            self.state = State::Line;
                        }
                    }
                }
                State::Length { value, digits } => {
                    let b = chunk[i];
                    match b {
                        b'0'..=b'9' if digits < MAX_DIGITS => {
                            self.carry.extend_from_slice(&[b]);
                            self.state = State::Length {
                                value: value * 10 + (b - b'0') as u64,
                                digits: digits + 1,
                            };
                            i += 1;
                        }
                        b' ' if value <= self.max_count => {
                            self.carry.clear();
                            self.state = State::Counted {
                                remaining: value,
                                len: value,
                            };
                            i += 1;
                        }
                        _ => {
                            // Not a length prefix after all: read the whole
                            // message as a line, prefix included.
                            self.error = Some(if b == b' ' {
                                "octet count larger than allowed"
                            } else {
                                "invalid octet count"
                            });
                            self.line_len = self.carry.len() as u64;
                            self.state = State::Line;
                        }
                    }
                }
                State::Counted { remaining, len } => {
                    let take = remaining.min((n - i) as u64) as usize;
                    let whole_here = self.carry.is_empty() && take as u64 == len;
                    if whole_here && len <= self.max as u64 {
                        let body = chunk.slice(i..i + take);
                        i += take;
                        self.emit_counted(body, len, out);
                        continue;
                    }
                    self.keep(&chunk[i..i + take]);
                    i += take;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        let body = self.carry.split().freeze();
                        self.emit_counted(body, len, out);
                    } else {
                        self.state = State::Counted { remaining, len };
                    }
                }
                State::Line => match memchr::memchr(b'\n', &chunk[i..]) {
                    Some(j) => {
                        let total = self.line_len + j as u64;
                        let body = if self.carry.is_empty() && total <= self.max as u64 {
                            chunk.slice(i..i + j)
                        } else {
                            self.keep(&chunk[i..i + j]);
                            self.carry.split().freeze()
                        };
                        i += j + 1;
                        self.emit_line(body, total, out);
                    }
                    None => {
                        self.line_len += (n - i) as u64;
                        self.keep(&chunk[i..]);
                        i = n;
                    }
                },
            }
        }
        self.base += n as u64;
    }

    /// The end of the stream: the unfinished message, if any.
    pub fn finish(&mut self) -> Option<Frame> {
        let state = std::mem::replace(&mut self.state, State::Start);
        let mut out = Vec::new();
        match state {
            State::Start => return None,
            State::Length { .. } => {
                self.error = Some("connection closed inside an octet count");
                let body = self.carry.split().freeze();
                let len = body.len() as u64;
                self.emit_line(body, len, &mut out);
            }
            State::Counted { remaining, len } => {
                self.error = Some("connection closed inside an octet-counted message");
                let body = self.carry.split().freeze();
                let got = len - remaining;
                self.emit(body, (got > self.max as u64).then_some(got), &mut out);
            }
            State::Line => {
                let body = self.carry.split().freeze();
                let len = self.line_len;
                self.emit_line(body, len, &mut out);
            }
        }
        out.pop()
    }

    fn begin(&mut self, i: usize) {
        self.frame_start = self.base + i as u64;
        self.carry.clear();
        self.line_len = 0;
        self.error = None;
    }

    /// Keeps bytes of the current message, up to `max` + 1.
    fn keep(&mut self, piece: &[u8]) {
        let room = (self.max + 1).saturating_sub(self.carry.len());
        self.carry
            .extend_from_slice(&piece[..piece.len().min(room)]);
    }

    fn emit_counted(&mut self, mut body: Bytes, len: u64, out: &mut Vec<Frame>) {
        if len > self.max as u64 {
            return self.emit(body, Some(len), out);
        }
        // A trailing newline inside the count is a trailer, not content.
        if body.last() == Some(&b'\n') {
            body.truncate(body.len() - 1);
            if body.last() == Some(&b'\r') {
                body.truncate(body.len() - 1);
            }
        }
        self.emit(body, None, out)
    }

    fn emit_line(&mut self, mut body: Bytes, len: u64, out: &mut Vec<Frame>) {
        if len > self.max as u64 {
            return self.emit(body, Some(len), out);
        }
        if body.last() == Some(&b'\r') {
            body.truncate(body.len() - 1);
        }
        self.emit(body, None, out)
    }

    fn emit(&mut self, mut body: Bytes, overflow_len: Option<u64>, out: &mut Vec<Frame>) {
        if body.len() > self.max {
            body.truncate(self.max);
        }
        self.number += 1;
        out.push(Frame {
            bytes: body,
            offset: self.frame_start,
            number: self.number,
            overflow_len,
            error: self.error.take(),
        });
        self.state = State::Start;
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame_all(data: &[u8], cuts: &[usize], max: usize) -> Vec<Frame> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        let mut last = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        points.push(data.len());
        for p in points {
            if p > last {
                f.push(Bytes::copy_from_slice(&data[last..p]), &mut out);
                last = p;
            }
            assert!(f.buffered() <= max + 1);
        }
        out.extend(f.finish());
        out
    }

    fn texts(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
            .collect()
    }

    #[test]
    fn both_framings_mixed() {
        let data = b"<13>1 - a\n25 <13>1 2024 host app - - b\r\n<14>c\r\n\n3 xyz\n<15>last";
        for step in 1..data.len() {
            let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
            let frames = frame_all(data, &cuts, 1000);
            assert_eq!(
                texts(&frames),
                [
                    "<13>1 - a",
                    "<13>1 2024 host app - - b",
                    "<14>c",
                    "xyz",
                    "<15>last"
                ],
                "split every {step}"
            );
            let offsets: Vec<u64> = frames.iter().map(|f| f.offset).collect();
            assert_eq!(offsets, [0, 10, 40, 48, 54]);
            assert!(frames.iter().all(|f| f.error.is_none()));
            assert_eq!(frames[4].number, 5);
        }
    }

    #[test]
    fn overlong_messages_keep_head_and_length() {
        let mut data = b"2000 ".to_vec();
        data.extend(std::iter::repeat_n(b'a', 2000));
        data.extend_from_slice(b"<1>");
        data.extend(std::iter::repeat_n(b'b', 3000));
        data.extend_from_slice(b"\n5 short");
        for cuts in [vec![], vec![1, 3, 700, 2004, 2006, 4000]] {
            let frames = frame_all(&data, &cuts, 100);
            assert_eq!(frames.len(), 3);
            assert_eq!(&frames[0].bytes[..], &[b'a'; 100][..]);
            assert_eq!(frames[0].overflow_len, Some(2000));
            assert_eq!(frames[1].bytes.len(), 100);
            assert_eq!(frames[1].overflow_len, Some(3003));
            assert_eq!(&frames[2].bytes[..], b"short");
            assert_eq!(frames[2].overflow_len, None);
        }
    }

    #[test]
    fn bad_length_prefixes_become_lines_and_framing_resumes() {
        let data = b"12a bad\n99999999999 huge\n2024-05-01 host msg\n9999999 too big for the limit\n4 good";
        let frames = frame_all(data, &[], 1000);
        assert_eq!(
            texts(&frames),
            [
                "12a bad",
                "99999999999 huge",
                "2024-05-01 host msg",
                "9999999 too big for the limit",
                "good"
            ]
        );
        let errors: Vec<Option<&str>> = frames.iter().map(|f| f.error).collect();
        assert_eq!(
            errors,
            [
                Some("invalid octet count"),
                Some("invalid octet count"),
                Some("invalid octet count"),
                Some("octet count larger than allowed"),
                None
            ]
        );
    }

    #[test]
    fn a_cut_connection_reports_what_it_had() {
        let frames = frame_all(b"10 abc", &[], 100);
        assert_eq!(texts(&frames), ["abc"]);
        assert_eq!(
            frames[0].error,
            Some("connection closed inside an octet-counted message")
        );
        let frames = frame_all(b"123", &[], 100);
        assert_eq!(texts(&frames), ["123"]);
        assert!(frames[0].error.is_some());
        assert!(frame_all(b"\n\r\n", &[], 100).is_empty());
    }

    #[test]
    fn noise_never_grows_memory() {
        let mut f = Framer::new(64 * 1024);
        let mut x: u64 = 7;
        let mut total = 0u64;
        let mut frames = Vec::new();
        for _ in 0..160 {
            let chunk: Vec<u8> = (0..65536)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            f.push(Bytes::from(chunk), &mut frames);
            assert!(f.buffered() <= 64 * 1024 + 1);
            assert!(frames.iter().all(|fr| fr.bytes.len() <= 64 * 1024));
            total += frames.len() as u64;
            frames.clear();
        }
        assert!(total > 0);
        // Digits without end: never waits for a huge count.
        let mut f = Framer::new(1024);
        for _ in 0..1000 {
            f.push(Bytes::from_static(b"9999999999999999999999"), &mut frames);
            assert!(f.buffered() <= 1025);
        }
    }

    #[derive(Debug, Clone)]
    enum Msg {
        Counted(Vec<u8>),
        Line(Vec<u8>),
    }

    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..120)
                .prop_filter("no trailing newline", |v| v.last() != Some(&b'\n'))
                .prop_map(Msg::Counted),
            proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..120)
                .prop_filter("no trailing CR", |v| v.last() != Some(&b'\r'))
                .prop_map(|mut v| {
                    v.insert(0, b'<');
                    Msg::Line(v)
                }),
        ]
    }

    proptest! {
        #[test]
        fn any_split_gives_the_messages_back(msgs in proptest::collection::vec(msg(), 0..30), cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
            let mut data = Vec::new();
            let mut offsets = Vec::new();
            for m in &msgs {
                offsets.push(data.len() as u64);
                match m {
                    Msg::Counted(b) => {
                        data.extend_from_slice(format!("{} ", b.len()).as_bytes());
                        data.extend_from_slice(b);
                    }
                    Msg::Line(b) => {
                        data.extend_from_slice(b);
                        data.push(b'\n');
                    }
                }
            }
            let frames = frame_all(&data, &cuts, 1 << 16);
            prop_assert_eq!(frames.len(), msgs.len());
            for ((f, m), off) in frames.iter().zip(&msgs).zip(&offsets) {
                let want = match m { Msg::Counted(b) | Msg::Line(b) => b };
                prop_assert_eq!(&f.bytes[..], &want[..]);
                prop_assert_eq!(f.offset, *off);
                prop_assert_eq!(f.error, None);
            }
        }
    }
}
