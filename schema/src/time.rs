//! UTC timestamps with nanosecond precision, and the civil-calendar
//! arithmetic the parsers use to build them without a date library on the
//! hot path.

use std::fmt;

/// Nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Days from 1970-01-01 to the given proleptic Gregorian date
/// (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day count from 1970-01-01: (year, month 1-12, day 1-31).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Number of days in a month of a year.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Timestamp {
    /// Builds a timestamp from calendar fields in UTC. Returns `None` when a
    /// field is out of range (month 13, day 31 in April, hour 24, ...) or the
    /// time is outside what i64 nanoseconds hold (1677 to 2262).
    /// A leap second (`sec == 60`) is folded into the next second's start.
    pub fn from_civil(
        year: i64,
        month: u32,
        day: u32,
        hour: u32,
        min: u32,
        sec: u32,
        nanos: u32,
    ) -> Option<Timestamp> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || min > 59
            || sec > 60
            || nanos >= 1_000_000_000
            || !(0..=9999).contains(&year)
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + (hour * 3600 + min * 60 + sec) as i64;
        // i64 nanoseconds cover the years 1677 to 2262.
        secs.checked_mul(NANOS_PER_SEC)?
            .checked_add(nanos as i64)
            .map(Timestamp)
    }

    pub fn from_unix_seconds(secs: i64) -> Option<Timestamp> {
        secs.checked_mul(NANOS_PER_SEC).map(Timestamp)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    pub fn subsec_nanos(self) -> u32 {
        self.0.rem_euclid(NANOS_PER_SEC) as u32
    }

    /// Shifts by a UTC offset in seconds: a local time `t` at offset `off`
    /// is `t - off` in UTC.
    pub fn minus_offset(self, offset_secs: i32) -> Timestamp {
        Timestamp(self.0.saturating_sub(offset_secs as i64 * NANOS_PER_SEC))
    }

    /// The current time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    /// (year, month, day, hour, minute, second) in UTC.
    pub fn to_civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let secs = self.unix_seconds();
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod / 60 % 60, sod % 60)
    }

    /// Writes RFC 3339 in UTC with as many fraction digits as needed
    /// (none, 3, 6 or 9): `2026-11-30T00:30:56Z`, `2026-11-30T00:36:36.631Z`.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let (y, mo, d, h, mi, s) = self.to_civil();
        let mut buf = [0u8; 20];
        let y = y.clamp(0, 9999) as u32;
        put2(&mut buf[0..2], y / 100);
        put2(&mut buf[2..4], y % 100);
        buf[4] = b'-';
        put2(&mut buf[5..7], mo);
        buf[7] = b'-';
        put2(&mut buf[8..10], d);
        buf[10] = b'T';
        put2(&mut buf[11..13], h);
        buf[13] = b':';
        put2(&mut buf[14..16], mi);
        buf[16] = b':';
        put2(&mut buf[17..19], s);
        out.extend_from_slice(&buf[..19]);
        let ns = self.subsec_nanos();
        if ns != 0 {
            let (digits, value) = if ns.is_multiple_of(1_000_000) {
                (3, ns / 1_000_000)
            } else if ns.is_multiple_of(1_000) {
                (6, ns / 1_000)
            } else {
                (9, ns)
            };
            out.push(b'.');
            let mut frac = [0u8; 9];
            let mut v = value;
            for i in (0..digits).rev() {
                frac[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            out.extend_from_slice(&frac[..digits]);
        }
        out.push(b'Z');
    }

    pub fn to_rfc3339(self) -> String {
        let mut v = Vec::with_capacity(30);
        self.write_rfc3339(&mut v);
        String::from_utf8(v).expect("ASCII")
    }

    /// Parses RFC 3339 / ISO 8601 date-times: `2026-11-30T00:30:56Z`,
    /// `2026-11-30T00:30:56.123456+01:00`, `2026-11-30 00:30:56Z`.
    /// A value without a zone is refused (the caller decides which zone a
    /// zone-less time is in).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let year = digits(&b[0..4])? as i64;
        if b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        let hour = digits(&b[11..13])?;
        let min = digits(&b[14..16])?;
        let sec = digits(&b[17..19])?;
        let mut i = 19;
        let mut nanos = 0u32;
        if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + (b[i] - b'0') as u32;
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n..9 {
                nanos *= 10;
            }
        }
        let (offset, n) = parse_offset(&b[i..])?;
        if i + n != b.len() {
            return None;
        }
        Timestamp::from_civil(year, month, day, hour, min, sec, nanos)
            .map(|t| t.minus_offset(offset))
    }
}

/// A UTC offset at the start of `b`: `Z`, `+hh:mm`, `+hhmm` or `+hh`.
/// Returns (offset in seconds, bytes read).
pub fn parse_offset(b: &[u8]) -> Option<(i32, usize)> {
    match b.first()? {
        b'Z' | b'z' => Some((0, 1)),
        s @ (b'+' | b'-') => {
            let sign = if *s == b'-' { -1 } else { 1 };
            let h = digits(b.get(1..3)?)? as i32;
            let (m, n) = match b.get(3) {
                Some(b':') => (digits(b.get(4..6)?)? as i32, 6),
                Some(c) if c.is_ascii_digit() => (digits(b.get(3..5)?)? as i32, 5),
                _ => (0, 3),
            };
            if h > 23 || m > 59 {
                return None;
            }
            Some((sign * (h * 3600 + m * 60), n))
        }
        _ => None,
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn put2(buf: &mut [u8], v: u32) {
    buf[0] = b'0' + (v / 10 % 10) as u8;
    buf[1] = b'0' + (v % 10) as u8;
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, SecondsFormat, Utc};
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let t = Timestamp::from_civil(2026, 11, 30, 0, 30, 56, 0).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T00:30:56Z");
        assert_eq!(t.unix_seconds(), 1_795_998_656);
        let t = Timestamp::from_civil(2026, 11, 30, 0, 36, 36, 631_000_000).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T00:36:36.631Z");
        assert_eq!(Timestamp::from_civil(2026, 2, 29, 0, 0, 0, 0), None);
        assert!(Timestamp::from_civil(2024, 2, 29, 0, 0, 0, 0).is_some());
        assert_eq!(Timestamp::from_civil(2026, 4, 31, 0, 0, 0, 0), None);
        assert_eq!(Timestamp::from_civil(2026, 1, 1, 24, 0, 0, 0), None);
    }

    #[test]
    fn rfc3339_parse() {
        let t = Timestamp::parse_rfc3339("2026-11-30T01:30:56.5+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T00:30:56.500Z");
        assert_eq!(Timestamp::parse_rfc3339("2026-11-30T00:30:56"), None);
        assert_eq!(Timestamp::parse_rfc3339("2026-13-30T00:30:56Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-30T00:30:56.Z"), None);
        assert_eq!(
            Timestamp::parse_rfc3339("2019-03-29T14:05:44.123456789Z")
                .unwrap()
                .subsec_nanos(),
            123_456_789
        );
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(secs in -9_000_000_000i64..9_000_000_000i64, ns in 0u32..1_000_000_000) {
            let t = Timestamp(secs * 1_000_000_000 + ns as i64);
            let c = DateTime::<Utc>::from_timestamp(secs, ns).unwrap();
            let mine = t.to_rfc3339();
            prop_assert_eq!(&mine, &c.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            prop_assert_eq!(Timestamp::parse_rfc3339(&mine), Some(t));
        }
    }
}
