//! Every occurrence of many literals at once, ignoring ASCII case: the
//! prefilter's substring search.
//!
//! The automaton is `aho_corasick`'s DFA (standard semantics, so every
//! state carries the patterns that end there, those reached by failure
//! links included), copied into one flat transition table walked by a
//! tight loop: one class lookup and one table lookup per byte, and a
//! comparison, since match states are numbered last. The crate's own
//! overlapping search costs about 16 instructions a byte, as it keeps its
//! position in a state struct between calls; this costs about half.
//! Bytes are grouped in classes (those in no pattern all alike, an ASCII
//! letter with its other case), so the table has one column per class.

use aho_corasick::automaton::Automaton;
use aho_corasick::{Anchored, dfa};

/// Shortest segment worth a walk of its own, beyond its overrun.
const MIN_SEGMENT: usize = 32;

/// The compiled search.
#[derive(Debug)]
pub(crate) struct Dense {
    classes: [u8; 256],
    /// Columns per state.
    stride: u32,
    /// Next state (premultiplied by `stride`) by `state + class`.
    trans: Box<[u32]>,
    start: u32,
    /// States from this one (premultiplied) on are match states.
    first_match: u32,
    /// Per match state, in order: the values (rules) of the patterns that
    /// end there, sorted, each once.
    hits: Box<[Box<[u32]>]>,
    /// The longest pattern's length.
    longest: usize,
}

/// The automaton could not be built (too many states for 32-bit ids).
#[derive(Debug, thiserror::Error)]
#[error("literal automaton: {0}")]
pub(crate) struct BuildError(String);

impl Dense {
    /// The search for `patterns` (matched ignoring ASCII case), where an
    /// occurrence of pattern `i` reports the values `values[i]`.
    pub(crate) fn new<P: AsRef<[u8]>>(
        patterns: &[P],
        values: &[Vec<u32>],
    ) -> Result<Dense, BuildError> {
        debug_assert_eq!(patterns.len(), values.len());
        let dfa = dfa::Builder::new()
            .match_kind(aho_corasick::MatchKind::Standard)
            .ascii_case_insensitive(true)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .build(patterns)
            .map_err(|e| BuildError(e.to_string()))?;
        // Byte classes: one per distinct byte of the patterns (ASCII
        // letters with their other case), class 0 for all other bytes.
        let mut classes = [0u8; 256];
        let mut reps: Vec<u8> = vec![0];
        let mut used = [false; 256];
        for p in patterns {
            for &b in p.as_ref() {
                used[b.to_ascii_lowercase() as usize] = true;
            }
        }
        // Class 0's representative must be a byte of no pattern; when all
        // 256 occur there is no such class.
        let spare = (0..=255u8).find(|&b| {
            !used[b.to_ascii_lowercase() as usize] && !used[b.to_ascii_uppercase() as usize]
        });
        match spare {
            Some(b) => reps[0] = b,
            None => reps.clear(),
        }
        // Upper-case letters take their lower case's class: at most 230
        // classes, and the spare one.
        for b in (0..=255u8).filter(|&b| used[b as usize] && b == b.to_ascii_lowercase()) {
            classes[b as usize] = reps.len() as u8;
            classes[b.to_ascii_uppercase() as usize] = reps.len() as u8;
            reps.push(b);
        }
        let stride = reps.len();
        // States reachable from the unanchored start, breadth first.
        let start = dfa
            .start_state(Anchored::No)
            .map_err(|e| BuildError(e.to_string()))?;
        let mut index: foldhash::HashMap<u32, u32> = Default::default();
        let mut order = vec![start];
        index.insert(start.as_u32(), 0);
        let mut next_of: Vec<u32> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let sid = order[i];
            for &b in &reps {
                let n = dfa.next_state(Anchored::No, sid, b);
                let k = *index.entry(n.as_u32()).or_insert_with(|| {
                    order.push(n);
                    (order.len() - 1) as u32
                });
                next_of.push(k);
            }
            i += 1;
        }
        // Renumber: states without a match first.
        let n = order.len();
        let mut renum = vec![0u32; n];
        let mut next_id = 0u32;
        let mut first_match_state = 0;
        for pass in [false, true] {
            first_match_state = next_id as usize;
            for (k, sid) in order.iter().enumerate() {
                if dfa.is_match(*sid) == pass {
                    renum[k] = next_id;
                    next_id += 1;
                }
            }
        }
        let too_big = || BuildError(format!("{n} states of {stride} classes"));
        let cells = n.checked_mul(stride).ok_or_else(too_big)?;
        if cells > u32::MAX as usize {
            return Err(too_big());
        }
        let mut trans = vec![0u32; cells].into_boxed_slice();
        for k in 0..n {
            let row = renum[k] as usize * stride;
            for c in 0..stride {
                trans[row + c] = renum[next_of[k * stride + c] as usize] * stride as u32;
            }
        }
        let mut hits: Vec<Box<[u32]>> = vec![Box::default(); n - first_match_state];
        for (k, sid) in order.iter().enumerate() {
            if !dfa.is_match(*sid) {
                continue;
            }
            let mut v: Vec<u32> = (0..dfa.match_len(*sid))
                .flat_map(|j| {
                    values[dfa.match_pattern(*sid, j).as_usize()]
                        .iter()
                        .copied()
                })
                .collect();
            v.sort_unstable();
            v.dedup();
            hits[renum[k] as usize - first_match_state] = v.into_boxed_slice();
        }
        Ok(Dense {
            classes,
            stride: stride as u32,
            trans,
            start: renum[0] * stride as u32,
            first_match: (first_match_state * stride) as u32,
            hits: hits.into_boxed_slice(),
            longest: patterns.iter().map(|p| p.as_ref().len()).max().unwrap_or(0),
        })
    }

    /// Calls `mark` with the values of every pattern occurring in `text`,
    /// at least once per occurrence (an occurrence may be reported twice).
    ///
    /// A long text is cut into 4 (or 2) segments walked in lockstep, each
    /// running on past its end by the longest pattern's length less one,
    /// so that an occurrence starting in a segment ends within its walk:
    /// one walk waits on each table load before the next, independent walks
    /// overlap their waits.
    #[inline]
    pub(crate) fn scan(&self, text: &[u8], mark: &mut impl FnMut(u32)) {
        let overrun = self.longest.saturating_sub(1);
        let n = text.len();
        if n >= 4 * (overrun + MIN_SEGMENT) {
            self.lockstep::<4>(text, overrun, mark);
        } else if n >= 2 * (overrun + MIN_SEGMENT) {
            self.lockstep::<2>(text, overrun, mark);
        } else {
            self.walk(self.start, text, mark);
        }
    }

    /// Segment k of W: [k q, (k + 1) q + overrun), the last one to the
    /// end; (k + 1) q + overrun < W q <= n, as the caller makes overrun < q.
    #[inline(always)]
    fn lockstep<const W: usize>(&self, text: &[u8], overrun: usize, mark: &mut impl FnMut(u32)) {
        let q = text.len() / W;
        let segs: [&[u8]; W] = std::array::from_fn(|k| &text[k * q..(k + 1) * q]);
        let mut s = [self.start; W];
        for i in 0..q {
            for (state, seg) in s.iter_mut().zip(&segs) {
                *state = self.step(*state, seg[i], mark);
            }
        }
        for (k, state) in s.iter().enumerate().take(W - 1) {
            let from = (k + 1) * q;
            self.walk(*state, &text[from..from + overrun], mark);
        }
        self.walk(s[W - 1], &text[W * q..], mark);
    }

    #[inline(always)]
    fn step(&self, s: u32, b: u8, mark: &mut impl FnMut(u32)) -> u32 {
        let s = self.trans[(s + u32::from(self.classes[b as usize])) as usize];
        if s >= self.first_match {
            let k = ((s - self.first_match) / self.stride) as usize;
            self.hits[k].iter().for_each(|r| mark(*r));
        }
        s
    }

    #[inline]
    fn walk(&self, mut s: u32, text: &[u8], mark: &mut impl FnMut(u32)) {
        for &b in text {
            s = self.step(s, b, mark);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dense;

    use crate::testutil::overlapping as reference;

    fn dense(d: &Dense, text: &[u8]) -> Vec<u32> {
        let mut v = Vec::new();
        d.scan(text, &mut |r| v.push(r));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every pattern the crate's own overlapping search finds, over random
    /// texts built from pieces of random patterns in mixed case (so
    /// patterns overlap, nest and share failure links), short (one walk)
    /// and long (segments walked in lockstep), for small and large pattern
    /// sets, and with a pattern set using every byte (no spare class).
    #[test]
    fn reports_what_the_overlapping_search_reports() {
        let mut next = crate::testutil::indexes(0x2545_f491_4f6c_dd1du64);
        let alphabet: Vec<char> = "abcAB/%:_ é\u{212a}k.".chars().collect();
        let mut checked = 0usize;
        for &count in &[1usize, 3, 20, 70, 400] {
            let patterns: Vec<String> = (0..count)
                .map(|_| {
                    let len = 1 + next(7);
                    (0..len).map(|_| alphabet[next(alphabet.len())]).collect()
                })
                .collect();
            let values: Vec<Vec<u32>> = (0..count as u32).map(|i| vec![i]).collect();
            let d = Dense::new(&patterns, &values).unwrap();
            for round in 0..3000 {
                let len = if round % 3 == 0 {
                    60 + next(120)
                } else {
                    next(10)
                };
                let text: String = (0..len)
                    .map(|_| {
                        let p = &patterns[next(count)];
                        let cut = next(p.len() + 1);
                        let piece: String = p.chars().take(cut.max(1)).collect();
                        if next(2) == 0 {
                            piece.to_uppercase()
                        } else {
                            piece
                        }
                    })
                    .collect();
                let want = reference(&patterns, text.as_bytes());
                checked += want.len();
                assert_eq!(
                    dense(&d, text.as_bytes()),
                    want,
                    "{count} patterns, text {text:?}"
                );
            }
        }
        assert!(
            checked > 10_000,
            "the texts must hold occurrences: {checked}"
        );

        // Every byte value in some pattern: no class for "other bytes".
        let all: Vec<[u8; 2]> = (0..=255u8).map(|b| [b, b'x']).collect();
        let values: Vec<Vec<u32>> = (0..all.len() as u32).map(|i| vec![i]).collect();
        let d = Dense::new(&all, &values).unwrap();
        let text = b"Ax zx \xffx\x00xx";
        let want = reference(&all, text);
        // At `Ax` the patterns `Ax` and `ax`, at `zx` `zx` and `Zx`, then
        // `\xffx`, `\x00x`, and at `xx` `xx` and `Xx`.
        assert_eq!(want.len(), 8);
        assert_eq!(dense(&d, text), want);
    }

    /// Patterns sharing a value report it once per state, and several
    /// patterns ending at the same place report all their values.
    #[test]
    fn values_of_patterns_ending_together() {
        let patterns = ["abc".to_string(), "bc".to_string(), "c".to_string()];
        let values = vec![vec![7], vec![7, 8], vec![9]];
        let d = Dense::new(&patterns, &values).unwrap();
        let all = |text: &[u8]| {
            let mut v = Vec::new();
            d.scan(text, &mut |r| v.push(r));
            v.sort_unstable();
            v
        };
        assert_eq!(all(b"xABC"), vec![7, 8, 9]);
        assert_eq!(all(b"bc c"), vec![7, 8, 9, 9]);
        assert_eq!(all(b"ab"), Vec::<u32>::new());
    }

    /// In a long text, a pattern across each segment boundary, and the
    /// longest pattern at the very end, are found; a text just too short
    /// for segments too.
    #[test]
    fn occurrences_across_segment_boundaries() {
        let patterns = ["abcdef".to_string(), "q".repeat(20), "zz".to_string()];
        let values = vec![vec![0], vec![1], vec![2]];
        let d = Dense::new(&patterns, &values).unwrap();
        for n in [
            2 * (19 + 32) - 1,
            2 * (19 + 32),
            4 * (19 + 32) - 1,
            4 * (19 + 32),
            400,
            1001,
        ] {
            let q = n / 4;
            for k in 1..4 {
                for shift in 1..6 {
                    let mut text = vec![b'.'; n];
                    text[k * q - shift..k * q - shift + 6].copy_from_slice(b"ABCdef");
                    assert_eq!(
                        dense(&d, &text),
                        vec![0],
                        "n {n}, boundary {k}, shift {shift}"
                    );
                }
            }
            for k in 1..4 {
                for shift in 1..20 {
                    let mut text = vec![b'.'; n];
                    text[k * q - shift..k * q - shift + 20].copy_from_slice(&[b'Q'; 20]);
                    assert_eq!(
                        dense(&d, &text),
                        vec![1],
                        "n {n}, boundary {k}, shift {shift}"
                    );
                }
            }
            let mut text = vec![b'.'; n];
            text[n - 20..].copy_from_slice(&[b'Q'; 20]);
            assert_eq!(dense(&d, &text), vec![1], "n {n}");
        }
    }
}
