//! [`Str`]: the string type of field values.
//!
//! Parsing a record yields many short strings (methods, levels, ids) and a
//! few long ones (the original line, URLs, user agents). `Str` keeps short
//! strings inline (no allocation, no reference count) and long ones as
//! shared slices of the buffer they were read from (a reference count, no
//! copy). Measured on the MLflow access log benchmark, this halved the time
//! spent on atomic reference counts compared with sharing every string.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;
use bytestring::ByteString;

/// Strings up to this many bytes are stored inline: as many as fit beside
/// the tag in the size of the shared variant (a `Bytes`, 32 bytes, plus the
/// tag: 40 bytes in all).
pub const INLINE: usize = 38;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Static(&'static str),
    Shared(ByteString),
}

/// Copies `src` (at most [`INLINE`] bytes) to the front of `dst` with two
/// possibly overlapping fixed-size moves instead of a `memcpy` call: short
/// strings are copied once per captured field, so this is on the hot path.
#[inline(always)]
fn copy_short(dst: &mut [u8; INLINE], src: &[u8]) {
    let n = src.len();
    debug_assert!(n <= INLINE);
    if n >= 32 {
        dst[..32].copy_from_slice(&src[..32]);
        dst[n - 32..n].copy_from_slice(&src[n - 32..]);
    } else if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// An immutable UTF-8 string: inline when short, a shared slice when long.
#[derive(Clone)]
pub struct Str(Repr);

impl Str {
    pub const fn from_static(s: &'static str) -> Str {
        Str(Repr::Static(s))
    }

    pub const fn new() -> Str {
        Str(Repr::Static(""))
    }

    fn inline(s: &str) -> Option<Str> {
        if s.len() > INLINE {
            return None;
        }
        // Built where it is returned and filled there: a buffer filled on
        // the stack and then moved was read back before its stores had
        // landed (a store-forwarding stall, seen in `perf annotate`).
        let mut out = Str(Repr::Inline {
            len: s.len() as u8,
            buf: [0u8; INLINE],
        });
        if let Repr::Inline { buf, .. } = &mut out.0 {
            copy_short(buf, s.as_bytes());
        }
        Some(out)
    }

    /// A `Str` for `sub`, which must lie within `self`: an inline copy when
    /// short, otherwise a shared slice of the same buffer.
    ///
    /// # Panics
    /// If `sub` is long and not a sub-slice of `self`.
    pub fn slice_ref(&self, sub: &str) -> Str {
        if let Some(s) = Str::inline(sub) {
            return s;
        }
        self.slice_shared(sub)
    }

    /// Makes `self` the `Str` that `base.slice_ref(sub)` returns, built in
    /// place. A short string written into a temporary and then moved to its
    /// slot is read back before its stores have landed (a store-forwarding
    /// stall: `slice_ref` was a tenth of the time of the access-log
    /// benchmark in `perf`, mostly on that read); writing it where it stays
    /// avoids the read.
    ///
    /// # Panics
    /// As `slice_ref`.
    #[inline]
    pub fn assign_slice_ref(&mut self, base: &Str, sub: &str) {
        if sub.len() <= INLINE {
            self.0 = Repr::Inline {
                len: sub.len() as u8,
                buf: [0u8; INLINE],
            };
            if let Repr::Inline { buf, .. } = &mut self.0 {
                copy_short(buf, sub.as_bytes());
            }
        } else {
            *self = base.slice_shared(sub);
        }
    }

    /// `slice_ref` of a long `sub`.
    fn slice_shared(&self, sub: &str) -> Str {
        match &self.0 {
            Repr::Shared(b) => Str(Repr::Shared(b.slice_ref(sub))),
            Repr::Static(st) => {
                let start = sub.as_ptr() as usize - st.as_ptr() as usize;
                Str(Repr::Static(&st[start..start + sub.len()]))
            }
            Repr::Inline { .. } => unreachable!("a long slice of an inline string"),
        }
    }

    /// Wraps bytes already known to be UTF-8 without checking them again.
    ///
    /// # Safety
    /// `b` must be valid UTF-8.
    pub unsafe fn from_bytes_unchecked(b: Bytes) -> Str {
        // SAFETY: the caller guarantees UTF-8.
        let s = unsafe { ByteString::from_bytes_unchecked(b) };
        Str(Repr::Shared(s))
    }

    /// The string's bytes: shared with `self` when it is a shared slice,
    /// copied otherwise.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Shared(b) => b.as_bytes().clone(),
            Repr::Static(s) => Bytes::from_static(s.as_bytes()),
            Repr::Inline { .. } => Bytes::copy_from_slice(self.as_bytes()),
        }
    }

    /// True when the string holds a reference count (the other forms own
    /// nothing and need no drop).
    #[inline]
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                // SAFETY: built from a `&str` of `len` bytes.
                unsafe { std::str::from_utf8_unchecked(&buf[..*len as usize]) }
            }
            Repr::Static(s) => s,
            Repr::Shared(b) => b,
        }
    }
}

impl Default for Str {
    fn default() -> Self {
        Str::new()
    }
}

impl Deref for Str {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Self {
        Str::inline(s).unwrap_or_else(|| Str(Repr::Shared(ByteString::from(s))))
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::inline(&s).unwrap_or_else(|| Str(Repr::Shared(ByteString::from(s))))
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Self {
        Str::from(s.as_str())
    }
}

impl TryFrom<Bytes> for Str {
    type Error = std::str::Utf8Error;
    fn try_from(b: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&b)?;
        // SAFETY: checked just above.
        Ok(unsafe { Str::from_bytes_unchecked(b) })
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_copy_every_length() {
        let text = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP";
        for start in 0..4 {
            for len in 0..=INLINE {
                let sub = &text[start..start + len];
                let s = Str::inline(sub).expect("short");
                assert_eq!(&*s, sub, "start {start} len {len}");
            }
        }
        assert!(Str::inline(&text[..INLINE + 1]).is_none());
        // The inline buffer takes no more room than a shared slice.
        assert_eq!(std::mem::size_of::<Str>(), 40);
        assert_eq!(std::mem::size_of::<crate::Value>(), 40);
    }

    #[test]
    fn short_inline_long_shared() {
        let long = "x".repeat(100);
        let base = Str::from(long.as_str());
        let sub = base.slice_ref(&base[10..90]);
        assert_eq!(sub.len(), 80);
        assert_eq!(
            sub.as_ptr(),
            base[10..].as_ptr(),
            "long slices share the buffer"
        );
        let short = base.slice_ref(&base[0..5]);
        assert_eq!(&*short, "xxxxx");
        assert_ne!(
            short.as_ptr(),
            base.as_ptr(),
            "short slices are inline copies"
        );
        let st = Str::from_static("a static string that is rather long indeed");
        assert_eq!(&*st.slice_ref(&st[2..40]), &st[2..40]);
        assert_eq!(
            Str::from("é".repeat(15)),
            Str::from("é".repeat(15).as_str())
        );
        assert!(Str::try_from(Bytes::from_static(b"\xff")).is_err());
        assert_eq!(Str::default(), "");
        for s in [base.clone(), short, st] {
            assert_eq!(&s.to_bytes()[..], s.as_bytes());
        }
    }
}
