//! Byte searches for the short fields of log lines.
//!
//! Most fields are a few bytes long (a method, a status code, `-`, a port)
//! and a searched byte is usually near the start (or, searching backwards,
//! the end). `memchr` is the fastest search over long text, but its
//! dispatch and set-up cost more than such a search: these look at the
//! first (last) 16 bytes a word at a time, and call `memchr` only beyond.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
/// How many bytes are searched a word at a time before calling `memchr`.
const NEAR: usize = 16;

/// The high bit of each zero byte of `x`, exactly (no carry between bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HI).wrapping_add(!HI)) | x) & HI
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// The first `c` in `hay` (as `memchr::memchr`).
#[inline]
pub fn find(c: u8, hay: &[u8]) -> Option<usize> {
    let pattern = LO * c as u64;
    let mut i = 0;
    while i < NEAR {
        let Some(w) = hay.get(i..i + 8) else {
            return hay[i..].iter().position(|&b| b == c).map(|p| i + p);
        };
        let z = zero_bytes(word(w) ^ pattern);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr(c, &hay[i..]).map(|p| i + p)
}

/// The first `a` or `b` in `hay` (as `memchr::memchr2`).
#[inline]
pub fn find2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let (pa, pb) = (LO * a as u64, LO * b as u64);
    let mut i = 0;
    while i < NEAR {
        let Some(w) = hay.get(i..i + 8) else {
            return hay[i..]
                .iter()
                .position(|&x| x == a || x == b)
                .map(|p| i + p);
        };
        let w = word(w);
        let z = zero_bytes(w ^ pa) | zero_bytes(w ^ pb);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr2(a, b, &hay[i..]).map(|p| i + p)
}

/// The last `c` in `hay` (as `memchr::memrchr`).
#[inline]
pub fn rfind(c: u8, hay: &[u8]) -> Option<usize> {
    let pattern = LO * c as u64;
    let mut end = hay.len();
    while hay.len() - end < NEAR {
        let Some(start) = end.checked_sub(8) else {
            return hay[..end].iter().rposition(|&b| b == c);
        };
        let z = zero_bytes(word(&hay[start..end]) ^ pattern);
        if z != 0 {
            return Some(start + 7 - (z.leading_zeros() / 8) as usize);
        }
        end = start;
    }
    memchr::memrchr(c, &hay[..end])
}

/// `s.split_once(c)` for an ASCII `c`.
#[inline]
pub fn split_once(s: &str, c: u8) -> Option<(&str, &str)> {
    debug_assert!(c.is_ascii());
    let i = find(c, s.as_bytes())?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s.rsplit_once(c)` for an ASCII `c`.
#[inline]
pub fn rsplit_once(s: &str, c: u8) -> Option<(&str, &str)> {
    debug_assert!(c.is_ascii());
    let i = rfind(c, s.as_bytes())?;
    Some((&s[..i], &s[i + 1..]))
}

/// `s.split(c)` for an ASCII `c`.
#[inline]
pub fn split(s: &str, c: u8) -> impl Iterator<Item = &str> {
    debug_assert!(c.is_ascii());
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match find(c, r.as_bytes()) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_as_memchr(hay in proptest::collection::vec(any::<u8>(), 0..80), a in any::<u8>(), b in any::<u8>()) {
            prop_assert_eq!(find(a, &hay), memchr::memchr(a, &hay));
            prop_assert_eq!(find2(a, b, &hay), memchr::memchr2(a, b, &hay));
            prop_assert_eq!(rfind(a, &hay), memchr::memrchr(a, &hay));
        }

        #[test]
        fn small_alphabet(hay in proptest::collection::vec(0u8..3, 0..80)) {
            // Many matches and near-matches (0x01 next to 0x00).
            for c in 0..3 {
                prop_assert_eq!(find(c, &hay), memchr::memchr(c, &hay));
                prop_assert_eq!(rfind(c, &hay), memchr::memrchr(c, &hay));
                prop_assert_eq!(find2(c, 2 - c, &hay), memchr::memchr2(c, 2 - c, &hay));
            }
        }

        #[test]
        fn splits_as_std(s in "[a-c&=]{0,40}") {
            prop_assert_eq!(split(&s, b'&').collect::<Vec<_>>(), s.split('&').collect::<Vec<_>>());
            prop_assert_eq!(split_once(&s, b'='), s.split_once('='));
            prop_assert_eq!(rsplit_once(&s, b'='), s.rsplit_once('='));
        }
    }
}
