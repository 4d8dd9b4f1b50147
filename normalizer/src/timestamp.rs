//! Timestamp layouts: strftime-style layouts compiled once and parsed
//! without allocation, plus the named layouts `rfc3339`, `unix`,
//! `unix_ms`, `unix_us`, `unix_ns` and `unix_auto`.
//!
//! Zones and years, as documented in `docs/formats.md`:
//! - a layout with `%z` (or `rfc3339`) carries its own offset;
//! - a time without a zone is read in the configured zone (`--timezone`,
//!   an IANA name; default UTC). In a daylight-saving fold the earlier of the
//!   two instants is taken; in a gap the time is moved forward by the gap;
//! - a layout without a year (`%b %e %H:%M:%S`, syslog RFC 3164) takes the
//!   year of the reference time (a file's modification time, or now for
//!   streams), or the year before when that would put the record more than
//!   one day after the reference time (December lines read in January).
//!
//! Supported directives: `%Y %y %m %d %e %H %I %M %S %p %b %B %h %a %A %f
//! %3f %6f %9f %.f %z %Z %T %F %s %%`.

use chrono::{LocalResult, NaiveDate, TimeZone};
use schema::Timestamp;
use schema::time::days_in_month;

/// A layout could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "unsupported directive %{0} in timestamp layout (supported: %Y %y %m %d %e %H %I %M %S %p %b %B %h %a %A %f %3f %6f %9f %.f %z %Z %T %F %s %%)"
    )]
    Unsupported(char),
    #[error("timestamp layout ends with a lone %")]
    Trailing,
    #[error("timestamp layout has no date or time directives")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Year4,
    Year2,
    Month,
    Day,
    DaySpace,
    Hour,
    Hour12,
    Minute,
    Second,
    AmPm,
    MonthName,
    WeekdayName,
    /// Fraction digits: exactly n, or 1..=9 when n == 0.
    Frac(u8),
    /// Optional `.` or `,` followed by 1..=9 digits.
    OptFrac,
    Offset,
    ZoneName,
    Epoch,
}

/// How a named or compiled layout reads its text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Rfc3339,
    Unix(UnixUnit),
    Tokens(Vec<Tok>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnixUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
    Auto,
}

/// A compiled layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    kind: Kind,
    source: String,
}

/// The zone and reference time used for times that lack a zone or a year.
#[derive(Debug, Clone)]
pub struct TimeContext {
    pub zone: Zone,
    /// Reference for year inference.
    pub reference: Timestamp,
}

/// The zone zone-less times are read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Utc,
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// `UTC`, `+02:00`, `-0500` or an IANA name such as `Europe/Berlin`.
    pub fn parse(s: &str) -> Result<Zone, String> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::Utc);
        }
        if let Some(off) = parse_offset(s.as_bytes()).filter(|(_, n)| *n == s.len()) {
            return Ok(if off.0 == 0 {
                Zone::Utc
            } else {
                Zone::Fixed(off.0)
            });
        }
        s.parse::<chrono_tz::Tz>()
            .map(Zone::Named)
            .map_err(|_| format!("unknown time zone `{s}` (use UTC, an offset like +02:00, or an IANA name like Europe/Berlin)"))
    }
}

impl Default for TimeContext {
    fn default() -> Self {
        TimeContext {
            zone: Zone::Utc,
            reference: Timestamp::now(),
        }
    }
}

impl Layout {
    pub fn compile(layout: &str) -> Result<Layout, LayoutError> {
        let kind = match layout {
            "rfc3339" | "iso8601" => Kind::Rfc3339,
            "unix" => Kind::Unix(UnixUnit::Seconds),
            "unix_ms" => Kind::Unix(UnixUnit::Millis),
            "unix_us" => Kind::Unix(UnixUnit::Micros),
            "unix_ns" => Kind::Unix(UnixUnit::Nanos),
            "unix_auto" => Kind::Unix(UnixUnit::Auto),
            _ => Kind::Tokens(compile_tokens(layout)?),
        };
        Ok(Layout {
            kind,
            source: layout.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses the whole of `s`.
    pub fn parse(&self, s: &str, ctx: &TimeContext) -> Option<Timestamp> {
        self.parse_spanned(s, ctx).map(|(t, _)| t)
    }

    /// Parses the whole of `s`, also telling where its seconds are (see
    /// [`Seconds`]) when a text that differs only there can be read from
    /// this one's time.
    pub(crate) fn parse_spanned(
        &self,
        s: &str,
        ctx: &TimeContext,
    ) -> Option<(Timestamp, Option<Seconds>)> {
        match &self.kind {
            Kind::Tokens(toks) => parse_tokens(toks, s.as_bytes(), ctx),
            _ => self.parse_other(s, ctx).map(|t| (t, None)),
        }
    }

    fn parse_other(&self, s: &str, ctx: &TimeContext) -> Option<Timestamp> {
        match &self.kind {
            Kind::Rfc3339 => Timestamp::parse_rfc3339(s).or_else(|| {
                // ISO 8601 without a zone: read in the context zone.
                let l = Layout {
                    kind: Kind::Tokens(ISO_LOCAL.to_vec()),
                    source: String::new(),
                };
                l.parse(s, ctx)
            }),
            Kind::Unix(unit) => parse_unix(s, *unit),
            Kind::Tokens(toks) => parse_tokens(toks, s.as_bytes(), ctx).map(|(t, _)| t),
        }
    }
}

/// Where the seconds of a parsed time text are: two digits at `start`,
/// then up to `end` a `.` or `,` and fraction digits, if any. Only given
/// for layouts with a year (no year inference) whose seconds are 0 to 59.
///
/// Consecutive lines of a log often differ only there; [`Seconds::shift`]
/// reads such a text as a shift of the time of the one before, without
/// parsing the date again. Within one minute the zone offset does not
/// change (offsets change on minute boundaries), so the shift is exact.
/// When the offset is fixed (written in the text, or a fixed zone) the
/// two minute digits at `minute` may differ too: the time is then the
/// same linear function of the minutes and seconds within the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seconds {
    start: usize,
    end: usize,
    minute: Option<usize>,
}

impl Seconds {
    /// The nanoseconds from the time of `old` (parsed with this span) to
    /// the time of `new`, when `new` differs from `old` only in its seconds
    /// and fraction digits (and its minute digits, when there is a
    /// `minute`); `None` otherwise.
    ///
    /// One pass over both: each byte that differs must be a digit of the
    /// minutes, seconds or fraction, and adds its difference times its
    /// weight (a tens digit of minutes or seconds at most 5, so that they
    /// stay within 0 to 59; `old` was read, so the bytes that do not change
    /// are valid).
    pub(crate) fn shift(self, old: &[u8], new: &[u8]) -> Option<i64> {
        const SEC: i64 = 1_000_000_000;
        if old.len() != new.len() {
            return None;
        }
        let mut delta = 0i64;
        for (i, (&o, &n)) in old.iter().zip(new).enumerate() {
            if o == n {
                continue;
            }
            let (weight, tens) = if i == self.start {
                (10 * SEC, true)
            } else if i == self.start + 1 {
                (SEC, false)
            } else if i > self.start + 2 && i < self.end {
                // Fraction digits past the ninth are read and dropped.
                let k = (i - self.start - 3) as u32;
                (if k < 9 { 10i64.pow(8 - k) } else { 0 }, false)
            } else if self.minute == Some(i) {
                (600 * SEC, true)
            } else if self.minute.map(|m| m + 1) == Some(i) {
                (60 * SEC, false)
            } else {
                return None;
            };
            if !n.is_ascii_digit() || (tens && n > b'5') {
                return None;
            }
            delta += (n as i64 - o as i64) * weight;
        }
        Some(delta)
    }
}

const ISO_LOCAL: [Tok; 12] = [
    Tok::Year4,
    Tok::Lit(b'-'),
    Tok::Month,
    Tok::Lit(b'-'),
    Tok::Day,
    Tok::Lit(b'T'),
    Tok::Hour,
    Tok::Lit(b':'),
    Tok::Minute,
    Tok::Lit(b':'),
    Tok::Second,
    Tok::OptFrac,
];

fn compile_tokens(layout: &str) -> Result<Vec<Tok>, LayoutError> {
    let b = layout.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            toks.push(Tok::Lit(b[i]));
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err(LayoutError::Trailing);
        };
        i += 2;
        match c {
            b'Y' => toks.push(Tok::Year4),
            b'y' => toks.push(Tok::Year2),
            b'm' => toks.push(Tok::Month),
            b'd' => toks.push(Tok::Day),
            b'e' => toks.push(Tok::DaySpace),
            b'H' => toks.push(Tok::Hour),
            b'I' => toks.push(Tok::Hour12),
            b'M' => toks.push(Tok::Minute),
            b'S' => toks.push(Tok::Second),
            b'p' => toks.push(Tok::AmPm),
            b'b' | b'B' | b'h' => toks.push(Tok::MonthName),
            b'a' | b'A' => toks.push(Tok::WeekdayName),
            b'f' => toks.push(Tok::Frac(0)),
            b'3' | b'6' | b'9' if b.get(i) == Some(&b'f') => {
                toks.push(Tok::Frac(c - b'0'));
                i += 1;
            }
            b'.' if b.get(i) == Some(&b'f') => {
                toks.push(Tok::OptFrac);
                i += 1;
            }
            b'z' => toks.push(Tok::Offset),
            b'Z' => toks.push(Tok::ZoneName),
            b's' => toks.push(Tok::Epoch),
            b'T' => toks.extend([
                Tok::Hour,
                Tok::Lit(b':'),
                Tok::Minute,
                Tok::Lit(b':'),
                Tok::Second,
            ]),
            b'F' => toks.extend([
                Tok::Year4,
                Tok::Lit(b'-'),
                Tok::Month,
                Tok::Lit(b'-'),
                Tok::Day,
            ]),
            b'%' => toks.push(Tok::Lit(b'%')),
            other => return Err(LayoutError::Unsupported(other as char)),
        }
    }
    if toks.iter().all(|t| matches!(t, Tok::Lit(_))) {
        return Err(LayoutError::Empty);
    }
    Ok(toks)
}

/// Reads 1..=max digits (exactly `max` when `exact`).
#[inline]
fn num(b: &[u8], pos: &mut usize, max: usize, exact: bool) -> Option<u32> {
    let start = *pos;
    let mut v = 0u32;
    while *pos < b.len() && *pos - start < max && b[*pos].is_ascii_digit() {
        v = v * 10 + (b[*pos] - b'0') as u32;
        *pos += 1;
    }
    let n = *pos - start;
    if n == 0 || (exact && n != max) {
        return None;
    }
    Some(v)
}

const MONTHS_FULL: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_name(b: &[u8], pos: &mut usize) -> Option<u32> {
    let rest = &b[*pos..];
    if rest.len() < 3 {
        return None;
    }
    let key = [rest[0] | 0x20, rest[1] | 0x20, rest[2] | 0x20];
    let m = match &key {
        b"jan" => 0,
        b"feb" => 1,
        b"mar" => 2,
        b"apr" => 3,
        b"may" => 4,
        b"jun" => 5,
        b"jul" => 6,
        b"aug" => 7,
        b"sep" => 8,
        b"oct" => 9,
        b"nov" => 10,
        b"dec" => 11,
        _ => return None,
    };
    // The full name when it is written out ("November").
    let full = MONTHS_FULL[m].as_bytes();
    let n = if rest.len() >= full.len() && rest[3..full.len()].eq_ignore_ascii_case(&full[3..]) {
        full.len()
    } else {
        3
    };
    *pos += n;
    Some(m as u32 + 1)
}

fn weekday_name(b: &[u8], pos: &mut usize) -> Option<()> {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let rest = &b[*pos..];
    for d in DAYS {
        if rest.len() >= d.len() && rest[..d.len()].eq_ignore_ascii_case(d.as_bytes()) {
            *pos += d.len();
            return Some(());
        }
    }
    if rest.len() >= 3
        && DAYS
            .iter()
            .any(|d| rest[..3].eq_ignore_ascii_case(&d.as_bytes()[..3]))
    {
        *pos += 3;
        return Some(());
    }
    None
}

use schema::time::parse_offset;

fn parse_tokens(toks: &[Tok], b: &[u8], ctx: &TimeContext) -> Option<(Timestamp, Option<Seconds>)> {
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
        (None, 1u32, 1u32, 0u32, 0u32, 0u32, 0u32);
    // (start, end) of the seconds and a fraction right after them.
    let mut seconds: Option<(usize, usize)> = None;
    // Where the minutes are when they are two digits, 0 to 59.
    let mut minute_at: Option<usize> = None;
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut epoch: Option<Timestamp> = None;
    let mut pos = 0;
    for t in toks {
        match t {
            Tok::Lit(c) => {
                if b.get(pos) != Some(c) {
                    return None;
                }
                pos += 1;
            }
            Tok::Year4 => year = Some(num(b, &mut pos, 4, true)? as i64),
            Tok::Year2 => year = Some(2000 + num(b, &mut pos, 2, true)? as i64),
            Tok::Month => month = num(b, &mut pos, 2, false)?,
            Tok::Day => day = num(b, &mut pos, 2, false)?,
            Tok::DaySpace => {
                if b.get(pos) == Some(&b' ') {
                    pos += 1;
                }
                day = num(b, &mut pos, 2, false)?;
            }
            Tok::Hour | Tok::Hour12 => hour = num(b, &mut pos, 2, false)?,
            Tok::Minute => {
                let start = pos;
                min = num(b, &mut pos, 2, false)?;
                minute_at = (pos == start + 2 && min <= 59).then_some(start);
            }
            Tok::Second => {
                let start = pos;
                sec = num(b, &mut pos, 2, false)?;
                seconds = (pos == start + 2 && sec <= 59).then_some((start, pos));
            }
            Tok::AmPm => {
                let r = b.get(pos..pos + 2)?;
                pm = Some(if r.eq_ignore_ascii_case(b"pm") {
                    true
                } else if r.eq_ignore_ascii_case(b"am") {
                    false
                } else {
                    return None;
                });
                pos += 2;
            }
            Tok::MonthName => month = month_name(b, &mut pos)?,
            Tok::WeekdayName => weekday_name(b, &mut pos)?,
            Tok::Frac(n) => {
                let start = pos;
                nanos = frac(b, &mut pos, *n)?;
                seconds = extend_seconds(seconds, b, start, pos);
            }
            Tok::OptFrac => {
                if matches!(b.get(pos), Some(b'.') | Some(b',')) {
                    pos += 1;
                    let start = pos;
                    nanos = frac(b, &mut pos, 0)?;
                    seconds = extend_seconds(seconds, b, start, pos);
                }
            }
            Tok::Offset => {
                let (off, n) = parse_offset(&b[pos..])?;
                offset = Some(off);
                pos += n;
            }
            Tok::ZoneName => {
                let rest = &b[pos..];
                let n = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                match &rest[..n] {
                    z if z.eq_ignore_ascii_case(b"utc")
                        || z.eq_ignore_ascii_case(b"gmt")
                        || z == b"Z" =>
                    {
                        offset = Some(0)
                    }
                    _ => return None,
                }
                pos += n;
            }
            Tok::Epoch => {
                let start = pos;
                while pos < b.len() && (b[pos].is_ascii_digit() || b[pos] == b'.') {
                    pos += 1;
                }
                epoch = Some(parse_unix(
                    std::str::from_utf8(&b[start..pos]).ok()?,
                    UnixUnit::Seconds,
                )?);
            }
        }
    }
    if pos != b.len() {
        return None;
    }
    if let Some(t) = epoch {
        return Some((t, None));
    }
    if let Some(is_pm) = pm {
        if !(1..=12).contains(&hour) {
            return None;
        }
        hour = match (hour, is_pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    let year_given = year.is_some();
    let y = year.unwrap_or_else(|| ctx.reference.to_civil().0);
    let mut t = local_to_utc(y, month, day, hour, min, sec, nanos, offset, ctx)?;
    if !year_given && t.0 > ctx.reference.0 + 86_400 * 1_000_000_000 {
        t = local_to_utc(y - 1, month, day, hour, min, sec, nanos, offset, ctx)?;
    }
    let fixed = offset.is_some() || !matches!(ctx.zone, Zone::Named(_));
    let seconds = seconds.filter(|_| year_given).map(|(start, end)| Seconds {
        start,
        end,
        minute: minute_at.filter(|&m| fixed && m + 2 <= start),
    });
    Some((t, seconds))
}

/// The seconds span extended over a fraction at `start..end`, when the
/// fraction follows the seconds with one `.` or `,` between; otherwise no
/// span (a fraction elsewhere is not handled by `Seconds::shift`).
fn extend_seconds(
    seconds: Option<(usize, usize)>,
    b: &[u8],
    start: usize,
    end: usize,
) -> Option<(usize, usize)> {
    match seconds {
        Some((s, e)) if e + 1 == start && matches!(b[e], b'.' | b',') => Some((s, end)),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn local_to_utc(
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ns: u32,
    offset: Option<i32>,
    ctx: &TimeContext,
) -> Option<Timestamp> {
    if d > days_in_month(y, mo) {
        return None;
    }
    let naive = Timestamp::from_civil(y, mo, d, h, mi, s, ns)?;
    match (offset, ctx.zone) {
        (Some(off), _) => Some(naive.minus_offset(off)),
        (None, Zone::Utc) => Some(naive),
        (None, Zone::Fixed(off)) => Some(naive.minus_offset(off)),
        (None, Zone::Named(tz)) => {
            let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
            let dt = date.and_hms_nano_opt(h, mi, s.min(59), ns)?;
            let utc = match tz.from_local_datetime(&dt) {
                LocalResult::Single(t) => t,
                LocalResult::Ambiguous(a, _) => a,
                LocalResult::None => {
                    // In a spring-forward gap: the wall time does not exist;
                    // read it with the offset in force before the gap.
                    let before = tz
                        .from_local_datetime(&(dt - chrono::Duration::hours(3)))
                        .earliest()?;
                    let off = chrono::Offset::fix(before.offset()).local_minus_utc();
                    return Some(naive.minus_offset(off));
                }
            };
            Some(Timestamp(utc.timestamp_nanos_opt()?))
        }
    }
}

fn frac(b: &[u8], pos: &mut usize, exact: u8) -> Option<u32> {
    let start = *pos;
    let mut v = 0u32;
    while *pos < b.len() && b[*pos].is_ascii_digit() {
        if *pos - start < 9 {
            v = v * 10 + (b[*pos] - b'0') as u32;
        }
        *pos += 1;
    }
    let n = *pos - start;
    if n == 0 || (exact != 0 && n != exact as usize) {
        return None;
    }
    for _ in n.min(9)..9 {
        v *= 10;
    }
    Some(v)
}

fn parse_unix(s: &str, unit: UnixUnit) -> Option<Timestamp> {
    let s = s.trim();
    let (int, fr) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let neg = int.starts_with('-');
    let digits = int.trim_start_matches('-');
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) || digits.len() > 19 {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let unit = match unit {
        UnixUnit::Auto => match digits.len() {
            0..=11 => UnixUnit::Seconds,
            12..=14 => UnixUnit::Millis,
            15..=17 => UnixUnit::Micros,
            _ => UnixUnit::Nanos,
        },
        u => u,
    };
    let mult: i64 = match unit {
        UnixUnit::Seconds => 1_000_000_000,
        UnixUnit::Millis => 1_000_000,
        UnixUnit::Micros => 1_000,
        UnixUnit::Nanos | UnixUnit::Auto => 1,
    };
    let mut ns = v.checked_mul(mult)?;
    if let Some(f) = fr {
        if f.is_empty() || !f.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let mut p = 0;
        let frac_ns = frac(f.as_bytes(), &mut p, 0)? as i64; // fraction of a second
        ns = ns.checked_add(frac_ns * mult / 1_000_000_000)?;
    }
    Some(Timestamp(if neg { -ns } else { ns }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn utc_ctx() -> TimeContext {
        TimeContext {
            zone: Zone::Utc,
            reference: Timestamp::from_civil(2026, 11, 30, 12, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn seconds_shift_matches_a_full_parse() {
        let berlin = TimeContext {
            zone: Zone::parse("Europe/Berlin").unwrap(),
            reference: Timestamp::from_civil(2026, 11, 30, 12, 0, 0, 0).unwrap(),
        };
        let cases: &[(&str, &str, &str, bool)] = &[
            (
                "%Y/%m/%d %H:%M:%S",
                "2026/11/30 00:30:56",
                "2026/11/30 00:30:07",
                true,
            ),
            (
                "%Y/%m/%d %H:%M:%S",
                "2026/11/30 00:30:56",
                "2026/11/30 01:30:56",
                false,
            ),
            (
                "%Y-%m-%dT%H:%M:%S,%3f",
                "2026-11-30T00:43:13,439",
                "2026-11-30T00:43:59,001",
                true,
            ),
            (
                "%Y-%m-%dT%H:%M:%S,%3f",
                "2026-11-30T00:43:13,439",
                "2026-11-30T00:43:13.439",
                false,
            ),
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "30/Nov/2026:10:00:03 +0000",
                "30/Nov/2026:10:00:41 +0000",
                true,
            ),
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "30/Nov/2026:10:00:03 +0000",
                "30/Nov/2026:10:00:03 +0100",
                false,
            ),
            (
                "%Y-%m-%d %H:%M:%S%.f",
                "2026-03-29 01:59:58.5",
                "2026-03-29 01:59:59.2",
                true,
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:59:59",
                "2026-03-29 03:00:00",
                false,
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:59:59",
                "2026-03-29 01:59:60",
                false,
            ),
            (
                "%b %e %H:%M:%S",
                "Nov 30 10:00:03",
                "Nov 30 10:00:04",
                false,
            ),
        ];
        for ctx in [utc_ctx(), berlin.clone()] {
            for (layout, old, new, shifts) in cases {
                let l = Layout::compile(layout).unwrap();
                let (t_old, span) = l.parse_spanned(old, &ctx).unwrap();
                let shift = span.and_then(|s| s.shift(old.as_bytes(), new.as_bytes()));
                assert_eq!(shift.is_some(), *shifts, "{layout}: {old} -> {new}");
                if let Some(d) = shift {
                    assert_eq!(l.parse(new, &ctx), Some(Timestamp(t_old.0 + d)), "{new}");
                }
            }
        }
        // Minutes: shifted when the offset is fixed (in the text, or the
        // zone's), not in a zone with daylight saving time.
        let minutes: &[(&str, &str, &str, bool, bool)] = &[
            (
                "%Y/%m/%d %H:%M:%S",
                "2026/11/30 00:30:56",
                "2026/11/30 00:31:56",
                true,
                false,
            ),
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "30/Nov/2026:10:00:03 +0100",
                "30/Nov/2026:10:59:41 +0100",
                true,
                true,
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:58:59",
                "2026-03-29 01:59:00",
                true,
                false,
            ),
            (
                "%Y-%m-%dT%H:%M:%S,%3f",
                "2026-11-30T00:43:13,439",
                "2026-11-30T00:07:59,001",
                true,
                false,
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:58:59",
                "2026-03-29 01:60:00",
                false,
                false,
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:58:59",
                "2026-03-29 01:5x:00",
                false,
                false,
            ),
        ];
        for (layout, old, new, utc, named) in minutes {
            for (ctx, shifts) in [(utc_ctx(), *utc), (berlin.clone(), *named)] {
                let l = Layout::compile(layout).unwrap();
                let (t_old, span) = l.parse_spanned(old, &ctx).unwrap();
                let shift = span.and_then(|s| s.shift(old.as_bytes(), new.as_bytes()));
                assert_eq!(shift.is_some(), shifts, "{layout}: {old} -> {new}");
                if let Some(d) = shift {
                    assert_eq!(l.parse(new, &ctx), Some(Timestamp(t_old.0 + d)), "{new}");
                }
            }
        }
        // Every pair of minutes and seconds of an hour, with a fixed offset
        // in the text and in a fixed zone: a shift is the full parse.
        for (layout, text, ctx) in [
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "30/Nov/2026:10:MM:SS -0930",
                utc_ctx(),
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-03-29 01:MM:SS",
                TimeContext {
                    zone: Zone::parse("+05:45").unwrap(),
                    reference: utc_ctx().reference,
                },
            ),
        ] {
            let l = Layout::compile(layout).unwrap();
            let at = |m: u32, s: u32| {
                text.replace("MM", &format!("{m:02}"))
                    .replace("SS", &format!("{s:02}"))
            };
            let (old, span) = l.parse_spanned(&at(17, 42), &ctx).unwrap();
            let span = span.expect("a span");
            for m in (0..60).step_by(7) {
                for s in 0..60 {
                    let new = at(m, s);
                    let d = span.shift(at(17, 42).as_bytes(), new.as_bytes());
                    assert_eq!(
                        d.map(|d| Timestamp(old.0 + d)),
                        l.parse(&new, &ctx),
                        "{new}"
                    );
                }
            }
        }
    }

    fn p(layout: &str, s: &str) -> Option<String> {
        Layout::compile(layout)
            .unwrap()
            .parse(s, &utc_ctx())
            .map(|t| t.to_rfc3339())
    }

    #[test]
    fn sample_layouts() {
        assert_eq!(
            p("%Y/%m/%d %H:%M:%S", "2026/11/30 00:30:56").as_deref(),
            Some("2026-11-30T00:30:56Z")
        );
        assert_eq!(
            p("%Y-%m-%d %H:%M:%S.%3f", "2026-11-30 00:36:36.631").as_deref(),
            Some("2026-11-30T00:36:36.631Z")
        );
        assert_eq!(
            p("%Y-%m-%d %H:%M:%S,%3f", "2026-11-30 00:39:46,605").as_deref(),
            Some("2026-11-30T00:39:46.605Z")
        );
        assert_eq!(
            p("%Y-%m-%dT%H:%M:%S,%3f", "2026-11-30T00:43:13,439").as_deref(),
            Some("2026-11-30T00:43:13.439Z")
        );
        assert_eq!(
            p("%d/%b/%Y:%H:%M:%S %z", "30/Nov/2026:00:34:12 +0100").as_deref(),
            Some("2026-11-29T23:34:12Z")
        );
        assert_eq!(
            p("%d/%b/%Y %H:%M:%S", "30/Nov/2026 00:41:06").as_deref(),
            Some("2026-11-30T00:41:06Z")
        );
        assert_eq!(
            p("%Y-%m-%d %H:%M:%S %z", "2026-11-30 00:32:29 +0000").as_deref(),
            Some("2026-11-30T00:32:29Z")
        );
        assert_eq!(
            p("rfc3339", "2026-11-30T00:32:29.123456Z").as_deref(),
            Some("2026-11-30T00:32:29.123456Z")
        );
        assert_eq!(
            p("rfc3339", "2026-11-30T00:32:29").as_deref(),
            Some("2026-11-30T00:32:29Z")
        );
        assert_eq!(
            p("unix", "1795999170").as_deref(),
            Some("2026-11-30T00:39:30Z")
        );
        assert_eq!(
            p("unix", "1795999170.25").as_deref(),
            Some("2026-11-30T00:39:30.250Z")
        );
        assert_eq!(
            p("unix_auto", "1795999170250").as_deref(),
            Some("2026-11-30T00:39:30.250Z")
        );
        assert_eq!(
            p("unix_ns", "1795999191760650939").as_deref(),
            Some("2026-11-30T00:39:51.760650939Z")
        );
        assert_eq!(
            p("%I:%M %p %d %B %Y", "12:05 am 01 January 2026").as_deref(),
            Some("2026-01-01T00:05:00Z")
        );
        assert_eq!(
            p("%a, %d %b %Y %T %Z", "Mon, 30 Nov 2026 00:00:01 GMT").as_deref(),
            Some("2026-11-30T00:00:01Z")
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(
            p("%Y/%m/%d %H:%M:%S", "2026/11/31 00:30:56"),
            None,
            "November has 30 days"
        );
        assert_eq!(
            p("%Y/%m/%d %H:%M:%S", "2026/11/30 00:30:56x"),
            None,
            "trailing text"
        );
        assert_eq!(p("%Y/%m/%d %H:%M:%S", "2026/11/30 25:30:56"), None);
        assert_eq!(p("%d/%b/%Y", "30/Foo/2026"), None);
        assert_eq!(p("unix", "12a"), None);
        assert_eq!(
            Layout::compile("%Q").unwrap_err(),
            LayoutError::Unsupported('Q')
        );
        assert_eq!(Layout::compile("abc").unwrap_err(), LayoutError::Empty);
    }

    #[test]
    fn year_inference() {
        let l = Layout::compile("%b %e %H:%M:%S").unwrap();
        let ctx = TimeContext {
            zone: Zone::Utc,
            reference: Timestamp::from_civil(2027, 1, 2, 0, 0, 0, 0).unwrap(),
        };
        assert_eq!(
            l.parse("Dec 31 23:59:59", &ctx).unwrap().to_rfc3339(),
            "2026-12-31T23:59:59Z"
        );
        assert_eq!(
            l.parse("Jan  2 10:00:00", &ctx).unwrap().to_rfc3339(),
            "2027-01-02T10:00:00Z"
        );
        assert_eq!(
            l.parse("Jan 2 23:00:00", &ctx).unwrap().to_rfc3339(),
            "2027-01-02T23:00:00Z",
            "less than a day ahead"
        );
        assert_eq!(
            l.parse("Jan 3 10:00:00", &ctx).unwrap().to_rfc3339(),
            "2026-01-03T10:00:00Z",
            "more than a day ahead"
        );
    }

    #[test]
    fn named_zones_and_dst() {
        let ctx = TimeContext {
            zone: Zone::parse("Europe/Berlin").unwrap(),
            reference: Timestamp(0),
        };
        let l = Layout::compile("%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            l.parse("2026-07-01 12:00:00", &ctx).unwrap().to_rfc3339(),
            "2026-07-01T10:00:00Z"
        );
        assert_eq!(
            l.parse("2026-12-01 12:00:00", &ctx).unwrap().to_rfc3339(),
            "2026-12-01T11:00:00Z"
        );
        // Fold (25 Oct 2026, 02:30 happens twice): the earlier instant.
        assert_eq!(
            l.parse("2026-10-25 02:30:00", &ctx).unwrap().to_rfc3339(),
            "2026-10-25T00:30:00Z"
        );
        // Gap (29 Mar 2026, 02:30 does not exist): read with the winter offset.
        assert_eq!(
            l.parse("2026-03-29 02:30:00", &ctx).unwrap().to_rfc3339(),
            "2026-03-29T01:30:00Z"
        );
        assert_eq!(Zone::parse("+05:30").unwrap(), Zone::Fixed(19800));
        assert!(Zone::parse("Mars/Base").is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_chrono(secs in 0i64..4_000_000_000, ms in 0u32..1000) {
            let dt = DateTime::<Utc>::from_timestamp(secs, ms * 1_000_000).unwrap();
            for (layout, chrono_fmt) in [
                ("%Y/%m/%d %H:%M:%S,%3f", "%Y/%m/%d %H:%M:%S,%3f"),
                ("%d/%b/%Y:%H:%M:%S.%3f %z", "%d/%b/%Y:%H:%M:%S.%3f %z"),
                ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.3f"),
            ] {
                let text = dt.format(chrono_fmt).to_string();
                let got = Layout::compile(layout).unwrap().parse(&text, &utc_ctx());
                prop_assert_eq!(got, Some(Timestamp(dt.timestamp_nanos_opt().unwrap())), "{} {}", layout, text);
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            for l in ["%Y/%m/%d %H:%M:%S", "%b %e %H:%M:%S", "rfc3339", "unix_auto", "%d/%b/%Y:%H:%M:%S %z", "%s"] {
                let _ = Layout::compile(l).unwrap().parse(&s, &utc_ctx());
            }
        }
    }
}
