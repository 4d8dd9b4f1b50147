//! Removal of ANSI terminal escape sequences (colour codes that Werkzeug,
//! Ray's CLI and others write into their logs).

use schema::Str;

/// Returns `s` without ANSI escape sequences (the same `Str` when it has
/// none, which is the common case and costs one `memchr`).
pub fn strip(s: &Str) -> Str {
    if memchr::memchr(0x1b, s.as_bytes()).is_none() {
        return s.clone();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != 0x1b {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        match b.get(i) {
            // CSI: ESC [ parameters intermediates final-byte(0x40..=0x7e)
            Some(b'[') => {
                i += 1;
                while i < b.len() && !(0x40..=0x7e).contains(&b[i]) {
                    i += 1;
                }
                i += 1;
            }
            // OSC: ESC ] ... BEL | ESC \
            Some(b']') => {
                i += 1;
                while i < b.len() && b[i] != 0x07 && !(b[i] == 0x1b && b.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if b.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            // Two-byte sequences: ESC followed by one byte.
            Some(_) => i += 1,
            None => {}
        }
    }
    // Removing whole escape sequences (ASCII bytes) cannot split a UTF-8
    // character, but stay safe with a lossy conversion.
    Str::from(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        let s = Str::from(
            "127.0.0.1 - - [30/Nov/2026 00:41:33] \"\u{1b}[31m\u{1b}[1mGET /x HTTP/1.1\u{1b}[0m\" 403 -",
        );
        assert_eq!(
            &*strip(&s),
            "127.0.0.1 - - [30/Nov/2026 00:41:33] \"GET /x HTTP/1.1\" 403 -"
        );
        let plain = Str::from("no escapes here, and long enough to be shared é");
        assert_eq!(
            strip(&plain).as_ptr(),
            plain.as_ptr(),
            "no copy without escapes"
        );
        assert_eq!(&*strip(&Str::from("a\u{1b}]0;title\u{7}b\u{1b}")), "ab");
        assert_eq!(&*strip(&Str::from("\u{1b}[")), "");
    }
}
