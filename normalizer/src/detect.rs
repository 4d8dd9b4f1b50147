//! Format detection: which format a file (or stream) is written in.
//!
//! The first lines of a stream are parsed with every auto-detectable
//! format. A format qualifies when it parses enough of them (half for strict
//! formats whose mismatches go to the dead-letter queue; one in ten for
//! free-form server logs whose continuation lines do not parse on their
//! own) and, when it has a `hint`, the hint matches at least half of the
//! lines it parses (or the path matches its `path_hint`).
//! A free-form format (`on_mismatch = "message"`) whose `path_hint` matches
//! the file's path qualifies whatever it parses. Lines are parsed with each
//! format's own patterns, including delegations, but not its fallbacks.
//! Among qualifying formats the one whose `path_hint` matches the file's
//! path wins, then the one parsing the most lines, then the higher
//! priority. Formats that accept any text (`parser = "plain"`) are only
//! chosen by their `path_hint`. When nothing qualifies the stream is read
//! as `text`.

use schema::Str;

use crate::format::{Registry, Scratch};
use crate::spec::OnMismatch;
use crate::timestamp::TimeContext;

/// The outcome of detection, with the evidence for `--explain`.
#[derive(Debug, Clone)]
pub struct Detection {
    pub format: usize,
    /// Lines sampled.
    pub sampled: usize,
    /// Lines the chosen format parsed.
    pub matched: usize,
}

/// Chooses a format for `lines` (the first lines of a stream).
pub fn detect(reg: &Registry, lines: &[Str], path: Option<&str>, time: &TimeContext) -> Detection {
    let mut scratch = Scratch::default();
    let mut events = Vec::new();
    let n = lines.len();
    let fallback = reg.index("text").expect("the text format is built in");
    let mut best: Option<(bool, usize, i32, usize)> = None;
    for &idx in &reg.detect_order {
        let fmt = &reg.formats[idx];
        let path_ok = match (&fmt.path_hint, path) {
            (Some(re), Some(p)) => re.is_match(p),
            _ => false,
        };
        if fmt.accepts_anything() {
            if path_ok {
                return Detection {
                    format: idx,
                    sampled: n,
                    matched: n,
                };
            }
            continue;
        }
        let hinted = match &fmt.hint {
            Some(hint) if !path_ok => lines.iter().filter(|l| hint.is_match(l)).count(),
            _ => usize::MAX,
        };
        if hinted == 0 {
            continue;
        }
        let mut matched = 0;
        for l in lines {
            let text = if fmt.strip_ansi {
                crate::ansi::strip(l)
            } else {
                l.clone()
            };
            events.clear();
            if fmt
                .parse(reg, &text, time, &mut scratch, 1, &mut events)
                .is_ok()
            {
                matched += 1;
            }
        }
        let needed = match fmt.on_mismatch {
            OnMismatch::Dlq => n.div_ceil(2),
            OnMismatch::Message => n.div_ceil(10),
        }
        .max(1);
        // A hint must fit most of what the format parses: an nginx log with
        // a few MLflow requests stays a generic access log. A free-form log
        // named like the format's files qualifies by its name alone.
        let by_name = path_ok && fmt.on_mismatch == OnMismatch::Message;
        if !by_name && (matched < needed || (hinted != usize::MAX && hinted * 2 < matched)) {
            continue;
        }
        let key = (path_ok, matched, fmt.priority, idx);
        let better = match &best {
            None => true,
            Some((bp, bm, bprio, _)) => (path_ok, matched, fmt.priority) > (*bp, *bm, *bprio),
        };
        if better {
            best = Some(key);
        }
    }
    match best {
        Some((_, matched, _, idx)) => Detection {
            format: idx,
            sampled: n,
            matched,
        },
        None => Detection {
            format: fallback,
            sampled: n,
            matched: 0,
        },
    }
}
