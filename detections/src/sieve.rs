//! Every occurrence of a large set of literals in a long text, ignoring
//! ASCII case, by hashed 4-byte prefixes: the prefilter's search of the
//! event's text for the keywords of all rules.
//!
//! The flat automaton ([`crate::dense`]) costs about 10 instructions a
//! byte, each step waiting on the previous one's table load. Here every
//! position is tested on its own: the 4 bytes starting there, folded
//! (`| 0x20` on every byte, which maps the two cases of an ASCII letter
//! to one value and is the same map for pattern and text), hashed to one
//! bit of a 64 Kibit table holding the 4-byte prefixes of all patterns.
//! The tests of different positions do not depend on each other, so the
//! processor runs several at once. Where the bit is set (a prefix, or a
//! hash collision: about 1 in 100 positions for 500 patterns), the
//! patterns of that exact prefix are compared with the text.
//!
//! A 3-byte pattern stands in the table with every fourth byte after it;
//! shorter ones are not taken (the caller keeps the automaton for them).

/// Bits of the hashed table's index.
const BITS: u32 = 16;
const WORDS: usize = (1 << BITS) / 64;

fn fold4(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b) | 0x2020_2020
}

fn slot(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize
}

/// The compiled search.
#[derive(Debug, Clone)]
pub(crate) struct Sieve {
    /// Bit `slot(key)` is set for the folded 4-byte prefix `key` of some
    /// pattern.
    bits: Box<[u64; WORDS]>,
    /// The (folded 4-byte prefix, pattern) pairs, grouped by the top
    /// `bucket_bits` bits of the prefix's slot: bucket `b` is
    /// `entries[starts[b]..starts[b + 1]]`.
    entries: Box<[Entry]>,
    starts: Box<[u32]>,
    bucket_bits: u32,
    patterns: Box<[Box<[u8]>]>,
    heads: Box<[Head]>,
    values: Box<[Box<[u32]>]>,
    /// AVX2 is there: 32 positions at a time (see [`avx2::block`]).
    simd: bool,
}

impl Sieve {
    /// The search for `patterns`, where an occurrence of pattern `i`
    /// reports the values `values[i]`; `None` when a pattern is shorter
    /// than 3 bytes.
    pub(crate) fn new<P: AsRef<[u8]>>(patterns: &[P], values: &[Vec<u32>]) -> Option<Sieve> {
        debug_assert_eq!(patterns.len(), values.len());
        if patterns.is_empty() || patterns.iter().any(|p| p.as_ref().len() < 3) {
            return None;
        }
        let mut bits = Box::new([0u64; WORDS]);
        let mut entries: Vec<Entry> = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            let mut keys: Vec<u32> = match p {
                [a, b, c, d, ..] => vec![fold4([*a, *b, *c, *d])],
                [a, b, c] => (0..=255u8).map(|d| fold4([*a, *b, *c, d])).collect(),
                _ => unreachable!("shorter patterns refused above"),
            };
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let s = slot(key);
                bits[s / 64] |= 1 << (s % 64);
                entries.push(Entry {
                    key,
                    pattern: i as u32,
                });
            }
        }
        // About one key a bucket.
        let bucket_bits = entries.len().next_power_of_two().trailing_zeros().min(BITS);
        let bucket = |key: u32| slot(key) >> (BITS - bucket_bits);
        entries.sort_by_key(|e| (bucket(e.key), e.key, e.pattern));
        let mut starts = vec![0u32; (1 << bucket_bits) + 1];
        for e in &entries {
            starts[bucket(e.key) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        Some(Sieve {
            bits,
            entries: entries.into(),
            starts: starts.into(),
            bucket_bits,
            heads: patterns.iter().map(|p| Head::new(p.as_ref())).collect(),
            patterns: patterns.iter().map(|p| p.as_ref().into()).collect(),
            values: values.iter().map(|v| v.as_slice().into()).collect(),
            simd: avx2::available(),
        })
    }

    /// Calls `mark` with the values of every pattern occurring in `text`,
    /// once per occurrence.
    #[inline]
    pub(crate) fn scan(&self, text: &[u8], mark: &mut impl FnMut(u32)) {
        let n = text.len();
        if n < 3 {
            return;
        }
        // Four positions per 8-byte load: the bits of their keys are
        // gathered in bit 0 of `any`, and looked at one by one only when
        // one is set.
        let mut i = 0;
        if self.simd {
            let mut found = |i: usize, mut hits: u32| {
                while hits != 0 {
                    let at = i + avx2::position(hits.trailing_zeros());
                    hits &= hits - 1;
                    let key = fold4([text[at], text[at + 1], text[at + 2], text[at + 3]]);
                    self.verify(text, at, key, mark);
                }
            };
            while i + avx2::READS <= n {
                found(i, avx2::block(&self.bits, &text[i..i + avx2::READS]));
                i += 32;
            }
            // The rest (under 35 bytes) as one more block, padded with
            // zeros; the windows that reach into the padding are left out.
            let rest = n - i;
            if rest >= 4 {
                let mut padded = [0u8; avx2::READS];
                padded[..rest].copy_from_slice(&text[i..]);
                found(i, avx2::block(&self.bits, &padded) & avx2::BELOW[rest - 3]);
            }
            i = n;
        }
        while i + 8 <= n {
            let w = u64::from_le_bytes(text[i..i + 8].try_into().expect("8 bytes"))
                | 0x2020_2020_2020_2020;
            let mut any = 0;
            for j in 0..4 {
                any |= self.bit((w >> (8 * j)) as u32);
            }
            if any & 1 != 0 {
                for j in 0..4 {
                    let key = (w >> (8 * j)) as u32;
                    if self.bit(key) & 1 != 0 {
                        self.verify(text, i + j, key, mark);
                    }
                }
            }
            i += 4;
        }
        for (k, w) in text[i.min(n)..].windows(4).enumerate() {
            let key = fold4([w[0], w[1], w[2], w[3]]);
            if self.bit(key) & 1 != 0 {
                self.verify(text, i + k, key, mark);
            }
        }
        // The last 3 bytes can only hold a 3-byte pattern, which is in the
        // table with every fourth byte.
        let i = n - 3;
        self.verify(text, i, fold4([text[i], text[i + 1], text[i + 2], 0]), mark);
    }

    /// The table's word holding the bit of `key`, shifted to bit 0.
    #[inline(always)]
    fn bit(&self, key: u32) -> u64 {
        let s = slot(key);
        self.bits[s / 64] >> (s % 64)
    }

    #[cold]
    #[inline(never)]
    fn verify(&self, text: &[u8], at: usize, key: u32, mark: &mut impl FnMut(u32)) {
        let b = slot(key) >> (BITS - self.bucket_bits);
        let entries = &self.entries[self.starts[b] as usize..self.starts[b + 1] as usize];
        let rest = &text[at..];
        let mut window = None;
        for e in entries.iter().filter(|e| e.key == key) {
            let p = e.pattern as usize;
            let pat = &self.patterns[p];
            if rest.len() < pat.len() {
                continue;
            }
            let w = *window.get_or_insert_with(|| Head::window(rest));
            if self.heads[p].starts(w)
                && (pat.len() <= Head::LEN
                    || rest[Head::LEN..pat.len()].eq_ignore_ascii_case(&pat[Head::LEN..]))
            {
                self.values[p].iter().for_each(|v| mark(*v));
            }
        }
    }
}

/// A folded 4-byte prefix and a pattern that starts with it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u32,
    pattern: u32,
}

/// The first [`Head::LEN`] bytes of a pattern, for a comparison ignoring
/// ASCII case by two masked 8-byte comparisons: a text byte `t` at a letter
/// of the pattern equals its lower-case letter `l` in `t | 0x20 == l` only
/// when `t` is `l` or its upper case; other bytes are compared as they are.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// The pattern's bytes, ASCII-lower-cased; 0 past its end.
    lower: [u64; 2],
    /// 0x20 at the pattern's ASCII letters.
    case: [u64; 2],
    /// 0xff on the pattern's bytes, 0 past its end.
    keep: [u64; 2],
}

impl Head {
    const LEN: usize = 16;

    fn new(p: &[u8]) -> Head {
        let (mut lower, mut case, mut keep) = ([0u8; 16], [0u8; 16], [0u8; 16]);
        for (i, b) in p.iter().take(Head::LEN).enumerate() {
            lower[i] = b.to_ascii_lowercase();
            case[i] = if b.is_ascii_alphabetic() { 0x20 } else { 0 };
            keep[i] = 0xff;
        }
        let words = |a: [u8; 16]| {
            [
                u64::from_le_bytes(a[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(a[8..].try_into().expect("8 bytes")),
            ]
        };
        Head {
            lower: words(lower),
            case: words(case),
            keep: words(keep),
        }
    }

    /// The first [`Head::LEN`] bytes of `text`, zero past its end.
    #[inline(always)]
    fn window(text: &[u8]) -> [u64; 2] {
        let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        if let Some(head) = text.get(..Head::LEN) {
            // Two loads, where a copy of a variable length is a call.
            return [word(head), word(&head[8..])];
        }
        let mut w = [0u8; 16];
        w[..text.len()].copy_from_slice(text);
        [word(&w), word(&w[8..])]
    }

    /// Whether a text whose [`Head::window`] is `w` starts with the
    /// pattern's first bytes, ignoring ASCII case (the caller checks that
    /// the text is as long as the pattern).
    fn starts(&self, w: [u64; 2]) -> bool {
        ((w[0] | self.case[0]) & self.keep[0]) == self.lower[0]
            && ((w[1] | self.case[1]) & self.keep[1]) == self.lower[1]
    }
}

/// The table test of 32 positions at once: 4 unaligned 32-byte loads at
/// offsets 0 to 3 each hold the 4-byte windows of 8 positions, 4 apart, as
/// 32-bit lanes; the lanes are folded and hashed as [`slot`] does, and
/// their bits fetched by a gather.
mod avx2 {
    /// Bytes read for 32 positions.
    pub(super) const READS: usize = 35;

    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// The position (from the block's start) of bit `t` of [`block`]'s mask.
    pub(super) const fn position(t: u32) -> usize {
        (t / 8 + 4 * (t % 8)) as usize
    }

    /// `BELOW[k]`: the bits of [`block`]'s mask for the positions below `k`.
    pub(super) const BELOW: [u32; 33] = {
        let mut table = [0u32; 33];
        let mut k = 0;
        while k <= 32 {
            let mut t = 0;
            while t < 32 {
                if position(t) < k {
                    table[k] |= 1 << t;
                }
                t += 1;
            }
            k += 1;
        }
        table
    };

    /// Bit `8 o + j` set when the table's bit is set for the window at
    /// position `o + 4 j` of `block` (35 bytes); only called when
    /// [`available`].
    #[cfg(target_arch = "x86_64")]
    pub(super) fn block(bits: &[u64; super::WORDS], block: &[u8]) -> u32 {
        assert!(block.len() >= READS);
        // SAFETY: `available()` said AVX2 runs here (the caller only comes
        // with `simd` set from it); the loads read `block[o..o + 32]` for
        // o < 4, inside its 35 bytes; the gather reads 32-bit word
        // `slot / 32` of `bits`, and a slot is below 2^BITS, so the word
        // is below 2 * WORDS, inside the table of WORDS u64 words.
        unsafe { block_avx2(bits, block.as_ptr()) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn block(_: &[u64; super::WORDS], _: &[u8]) -> u32 {
        unreachable!("AVX2 is never available off x86_64")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2(bits: &[u64; super::WORDS], p: *const u8) -> u32 {
        use std::arch::x86_64::*;
        const _: () = assert!(super::BITS == 16, "the shift below is 32 - BITS");
        let fold = _mm256_set1_epi32(0x2020_2020);
        let mul = _mm256_set1_epi32(0x9E37_79B1u32 as i32);
        let low5 = _mm256_set1_epi32(31);
        let words = bits.as_ptr().cast::<i32>();
        let mut out = 0u32;
        for o in 0..4 {
            // SAFETY: see `block`.
            let w = unsafe { _mm256_loadu_si256(p.add(o).cast::<__m256i>()) };
            let slot = _mm256_srli_epi32::<16>(_mm256_mullo_epi32(_mm256_or_si256(w, fold), mul));
            // SAFETY: see `block`.
            let word = unsafe { _mm256_i32gather_epi32::<4>(words, _mm256_srli_epi32::<5>(slot)) };
            // The slot's bit moved to the lane's sign bit.
            let up = _mm256_sub_epi32(low5, _mm256_and_si256(slot, low5));
            let signs = _mm256_sllv_epi32(word, up);
            out |= (_mm256_movemask_ps(_mm256_castsi256_ps(signs)) as u32) << (8 * o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Sieve;

    use crate::testutil::{indexes, overlapping as reference};

    /// What the scan reports, the same with and without AVX2.
    fn found(s: &Sieve, text: &[u8]) -> Vec<u32> {
        let run = |simd: bool| {
            let s = Sieve { simd, ..s.clone() };
            let mut v = Vec::new();
            s.scan(text, &mut |r| v.push(r));
            v.sort_unstable();
            v.dedup();
            v
        };
        let scalar = run(false);
        if super::avx2::available() {
            assert_eq!(run(true), scalar, "AVX2 and scalar differ");
        }
        scalar
    }

    #[test]
    fn reports_what_the_overlapping_search_reports() {
        // A small alphabet with both cases and bytes that fold onto letters
        // under `| 0x20` (`@` to `` ` ``, `[` to `{`), so prefixes collide
        // and verification must tell them apart.
        let alphabet = b"abcABC@`[{ /\xc3\xa9-";
        let mut below = indexes(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let count = 1 + below(600);
            let patterns: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    // Past 16 bytes too: the rest is compared apart.
                    let len = 3 + below(18);
                    (0..len).map(|_| alphabet[below(alphabet.len())]).collect()
                })
                .collect();
            let values: Vec<Vec<u32>> = (0..count as u32).map(|i| vec![i]).collect();
            let sieve = Sieve::new(&patterns, &values).unwrap();
            for _ in 0..20 {
                let len = below(300);
                let mut text: Vec<u8> = (0..len).map(|_| alphabet[below(alphabet.len())]).collect();
                // Plant a pattern, sometimes at the very end.
                if !text.is_empty() && below(2) == 0 {
                    let p = &patterns[below(count)];
                    let at = if below(3) == 0 {
                        text.len().saturating_sub(p.len())
                    } else {
                        below(text.len())
                    };
                    text.truncate(at);
                    text.extend(p.iter().map(|b| {
                        if below(2) == 0 {
                            b.to_ascii_uppercase()
                        } else {
                            *b
                        }
                    }));
                }
                assert_eq!(
                    found(&sieve, &text),
                    reference(&patterns, &text),
                    "round {round}, text {:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn three_byte_patterns_at_the_end_and_alone() {
        let patterns = vec![b"dir".to_vec(), b"rcp".to_vec(), b"chmod".to_vec()];
        let values = vec![vec![1], vec![2], vec![3]];
        let s = Sieve::new(&patterns, &values).unwrap();
        assert_eq!(found(&s, b"DIR"), vec![1]);
        assert_eq!(found(&s, b"ls; rcP"), vec![2]);
        assert_eq!(found(&s, b"di"), Vec::<u32>::new());
        assert_eq!(found(&s, b"chmo"), Vec::<u32>::new());
        assert_eq!(found(&s, b"x chmod dir\0"), vec![1, 3]);
        // `@` folds onto `` ` `` in the table; the comparison tells them apart.
        let s = Sieve::new(&[b"@ab".to_vec()], &[vec![7]]).unwrap();
        assert_eq!(found(&s, b"`ab"), Vec::<u32>::new());
        assert_eq!(found(&s, b"x@AB"), vec![7]);
    }

    #[test]
    fn patterns_longer_than_the_head_compare_their_rest() {
        let long = b"/var/lib/mlflow/artifacts";
        let s = Sieve::new(&[long], &[vec![4]]).unwrap();
        // The first 16 bytes alone, then a different rest, then cut short.
        assert_eq!(found(&s, b"GET /VAR/LIB/MLFLOW/ARTIFACTS HTTP"), vec![4]);
        assert_eq!(
            found(&s, b"GET /var/lib/mlflow/secrets HTTP/1.1"),
            Vec::<u32>::new()
        );
        assert_eq!(
            found(&s, b"GET /var/lib/mlflow/artifact"),
            Vec::<u32>::new()
        );
        assert_eq!(found(&s, b"GET /var/lib/mlflow/artifacts"), vec![4]);
    }

    #[test]
    fn refuses_short_patterns() {
        assert!(Sieve::new(&[b"ab".to_vec()], &[vec![0]]).is_none());
        assert!(Sieve::new::<Vec<u8>>(&[], &[]).is_none());
    }
}
