//! Grouping physical lines into records: Python tracebacks, Java stack
//! traces, multi-line messages.
//!
//! Two modes, chosen per format:
//! - `start`: a line matching the regex starts a record, any other line
//!   continues the record before it (Vector's `halt_before`);
//! - `python`: indented lines, blank lines inside a traceback,
//!   `Traceback (most recent call last):`, chained-exception headers and the
//!   exception line that ends a traceback continue the record before them;
//!   any other line starts a record.
//!
//! A record holds at most `max_lines` lines and `max_bytes` bytes; beyond
//! that the record is closed and the next line starts a new one.

use bytes::BytesMut;
use regex::bytes::Regex;
use schema::RawRecord;

use crate::spec::MultilineSpec;

#[derive(Debug, Clone)]
pub struct Multiline {
    start: Option<Regex>,
    python: bool,
    max_lines: usize,
}

impl Multiline {
    pub fn compile(spec: &MultilineSpec) -> Result<Multiline, String> {
        let start = spec
            .start
            .as_deref()
            .map(|s| Regex::new(s).map_err(|e| format!("multiline.start: invalid regex: {e}")))
            .transpose()?;
        if start.is_none() && !spec.python {
            return Err("multiline needs `start` or `python = true`".into());
        }
        Ok(Multiline {
            start,
            python: spec.python,
            max_lines: spec.max_lines.max(1),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tb {
    None,
    /// Inside `Traceback (most recent call last):` frames.
    Frames,
    /// After the exception line; a chained-exception header may follow.
    After,
}

struct Pending {
    head: RawRecord,
    /// Joined text once a second line arrives.
    joined: Option<BytesMut>,
    lines: usize,
    tb: Tb,
    last_indented: bool,
    overflow: Option<u64>,
}

/// Joins lines into records for one stream.
pub struct Aggregator {
    rules: Option<Multiline>,
    max_bytes: usize,
    pending: Option<Pending>,
}

const TB_HEAD: &[u8] = b"Traceback (most recent call last):";

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|c| c.is_ascii_whitespace())
}

fn is_chain_header(b: &[u8]) -> bool {
    b.starts_with(b"The above exception was the direct cause")
        || b.starts_with(b"During handling of the above exception")
}

impl Aggregator {
    pub fn new(rules: Option<Multiline>, max_bytes: usize) -> Aggregator {
        Aggregator {
            rules,
            max_bytes,
            pending: None,
        }
    }

    /// True when blank lines must be given to the aggregator (they may belong
    /// to the open record) rather than skipped.
    pub fn wants_blank(&self) -> bool {
        match (&self.rules, &self.pending) {
            (Some(r), Some(p)) => r.start.is_some() || p.tb != Tb::None,
            _ => false,
        }
    }

    /// Adds a line; returns the record it closed, if any.
    pub fn push(&mut self, line: RawRecord) -> Option<RawRecord> {
        let Some(rules) = &self.rules else {
            return Some(line);
        };
        let b = &line.bytes[..];
        let continues = match &self.pending {
            None => false,
            Some(p) if p.lines >= rules.max_lines => false,
            Some(p) => match &rules.start {
                Some(re) => !re.is_match(b),
                None => {
                    if is_blank(b) {
                        p.tb != Tb::None
                    } else if b[0] == b' '
                        || b[0] == b'\t'
                        || b.starts_with(TB_HEAD)
                        || is_chain_header(b)
                    {
                        true
                    } else {
                        // The exception line right after the frames.
                        p.tb == Tb::Frames && p.last_indented
                    }
                }
            },
        };
        let python = rules.python;
        if continues {
            let max = self.max_bytes;
            let p = self.pending.as_mut().expect("continues implies pending");
            p.lines += 1;
            update_tb(p, b, python);
            if p.overflow.is_none() {
                let joined = p.joined.get_or_insert_with(|| {
                    let mut j = BytesMut::with_capacity(p.head.bytes.len() + b.len() + 64);
                    j.extend_from_slice(&p.head.bytes);
                    j
                });
                if joined.len() + 1 + b.len() > max {
                    p.overflow = Some(joined.len() as u64 + 1 + b.len() as u64);
                } else {
                    joined.extend_from_slice(b"\n");
                    joined.extend_from_slice(b);
                }
            } else if let Some(o) = p.overflow.as_mut() {
                *o += 1 + b.len() as u64;
            }
            return None;
        }
        let closed = self.flush();
        let mut p = Pending {
            head: line,
            joined: None,
            lines: 1,
            tb: Tb::None,
            last_indented: false,
            overflow: None,
        };
        let head = p.head.bytes.clone();
        update_tb(&mut p, &head, python);
        self.pending = Some(p);
        closed
    }

    /// Closes the open record, if any.
    pub fn flush(&mut self) -> Option<RawRecord> {
        let p = self.pending.take()?;
        let mut rec = p.head;
        if let Some(j) = p.joined {
            rec.bytes = j.freeze();
        }
        if let Some(total) = p.overflow {
            rec.overflow_len = Some(total.max(rec.overflow_len.unwrap_or(0)));
        }
        Some(rec)
    }

    /// True when a record is open.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

fn update_tb(p: &mut Pending, b: &[u8], python: bool) {
    if !python {
        return;
    }
    let indented = !b.is_empty() && (b[0] == b' ' || b[0] == b'\t');
    if memchr::memmem::find(b, TB_HEAD).is_some() {
        p.tb = Tb::Frames;
    } else if is_chain_header(b)
        || (p.tb == Tb::Frames && !indented && !is_blank(b) && p.last_indented)
    {
        p.tb = Tb::After;
    }
    p.last_indented = indented;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use schema::{Source, Timestamp};

    fn lines(text: &str) -> Vec<RawRecord> {
        let src = Source::file("t.log");
        let mut off = 0;
        text.split('\n')
            .enumerate()
            .map(|(i, l)| {
                let r = RawRecord {
                    bytes: Bytes::copy_from_slice(l.as_bytes()),
                    source: src.clone(),
                    offset: off,
                    line: i as u64 + 1,
                    received: Timestamp(0),
                    overflow_len: None,
                };
                off += l.len() as u64 + 1;
                r
            })
            .collect()
    }

    fn run(spec: MultilineSpec, text: &str) -> Vec<String> {
        let mut agg = Aggregator::new(Some(Multiline::compile(&spec).unwrap()), 1 << 20);
        let mut out = Vec::new();
        for l in lines(text) {
            if is_blank(&l.bytes) && !agg.wants_blank() {
                continue;
            }
            out.extend(agg.push(l));
        }
        out.extend(agg.flush());
        out.into_iter()
            .map(|r| String::from_utf8(r.bytes.to_vec()).unwrap())
            .collect()
    }

    fn python() -> MultilineSpec {
        MultilineSpec {
            start: None,
            python: true,
            max_lines: 1000,
        }
    }

    #[test]
    fn python_traceback_chain() {
        let text = "runtime_env setup failed: x\n[Node 1] Traceback (most recent call last):\n  File \"a.py\", line 1, in f\n    g()\nOSError: [Errno 101] Network is unreachable\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"b.py\", line 2, in h\nRuntimeError: boom\nnext record";
        let out = run(python(), text);
        assert_eq!(out.len(), 3, "{out:#?}");
        assert_eq!(out[0], "runtime_env setup failed: x");
        assert!(
            out[1].starts_with("[Node 1] Traceback") && out[1].ends_with("RuntimeError: boom"),
            "{}",
            out[1]
        );
        assert_eq!(out[2], "next record");
    }

    #[test]
    fn python_indented_continuation_only() {
        let out = run(
            python(),
            "warn.py:1: DeprecationWarning: x\n  from a import b\nplain line\nsecond plain",
        );
        assert_eq!(
            out,
            [
                "warn.py:1: DeprecationWarning: x\n  from a import b",
                "plain line",
                "second plain"
            ]
        );
    }

    #[test]
    fn start_mode() {
        let spec = MultilineSpec {
            start: Some(r"^\d{4}-".into()),
            python: false,
            max_lines: 3,
        };
        let out = run(
            spec,
            "junk first\n2026-01 a\n####\n\nmore\n2026-02 b\nx\ny\nz",
        );
        assert_eq!(
            out,
            [
                "junk first",
                "2026-01 a\n####\n",
                "more",
                "2026-02 b\nx\ny",
                "z"
            ]
        );
    }

    #[test]
    fn overflow_is_flagged_not_cut_silently() {
        let spec = MultilineSpec {
            start: Some("^S".into()),
            python: false,
            max_lines: 1000,
        };
        let mut agg = Aggregator::new(Some(Multiline::compile(&spec).unwrap()), 10);
        let mut got = Vec::new();
        for l in lines("S123\ncontinuation-too-long\nS2") {
            got.extend(agg.push(l));
        }
        got.extend(agg.flush());
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].bytes[..], b"S123");
        assert_eq!(got[0].overflow_len, Some(26));
        assert_eq!(got[1].overflow_len, None);
    }
}
