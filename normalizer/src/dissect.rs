//! Dissect patterns: split a line at literal delimiters, without regular
//! expressions.
//!
//! A pattern is text with fields: `%{source.address} - %{user.name} [%{_ts}]`.
//! Each field takes the text up to the first occurrence of the literal that
//! follows it; the last field takes the rest of the line, or, when the
//! pattern ends with a literal, everything up to that literal at the end of
//! the line (so a quoted user agent may itself contain quotes). A leading
//! literal must start the line.
//!
//! Field forms, after Elastic's dissect processor:
//! - `%{name}`: capture into `name`;
//! - `%{}` or `%{?name}`: match but do not keep;
//! - `%{+name}`: extend the earlier capture `name` to the end of this one,
//!   delimiters included (`%{_ts} %{+_ts}` captures `2026/11/30 00:30:56`);
//! - `%{name->}`: after the field, skip repeats of the literal that follows
//!   (padding, as in `INFO:     127.0.0.1`).
//!
//! Matching costs one `memchr`/`memmem` scan per literal, which is why the
//! built-in access-log formats use dissect rather than regex.

use memchr::memmem;

/// A pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DissectError {
    #[error("unclosed field at byte {0} (a field is written %{{name}})")]
    Unclosed(usize),
    #[error(
        "fields `{0}` and `{1}` follow each other with no literal between them, so there is no place to split"
    )]
    Adjacent(String, String),
    #[error("`%{{+{0}}}` appends to a field that does not come earlier in the pattern")]
    AppendWithoutBase(String),
    #[error("the pattern has no fields")]
    NoFields,
}

/// What a field does with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// Capture into the slot with this index (see [`Dissect::names`]).
    Capture(usize),
    /// Extend the capture in this slot.
    Append(usize),
    Skip,
}

#[derive(Debug, Clone)]
struct Field {
    kind: FieldKind,
    /// Literal after the field; empty for the last field when the pattern
    /// ends with it.
    literal: Vec<u8>,
    finder: Option<memmem::Finder<'static>>,
    padding: bool,
    /// This field's literal is the pattern's last element and must end the line.
    suffix: bool,
}

/// Literals up to this long are found by `find_short` rather than a
/// `memmem::Finder`, whose set-up costs more than the search on a short
/// line when the literal is a couple of bytes (`" `, ` - "`).
const SHORT: usize = 4;

/// The first occurrence of `lit` (2 to `SHORT` bytes) in `hay`: `memchr`
/// for its first byte, then a compare of the rest.
#[inline]
fn find_short(lit: &[u8], hay: &[u8]) -> Option<usize> {
    let (first, rest) = lit.split_first()?;
    let mut from = 0;
    while let Some(i) = crate::scan::find(*first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A compiled dissect pattern.
#[derive(Debug, Clone)]
pub struct Dissect {
    prefix: Vec<u8>,
    fields: Vec<Field>,
    names: Vec<String>,
    /// Capture slots of the fields before field `i`: `0..slots_before[i]`.
    slots_before: Vec<usize>,
    source: String,
}

/// A captured span of the input: `start..end` byte offsets.
pub type Span = (usize, usize);

impl Dissect {
    pub fn compile(pattern: &str) -> Result<Dissect, DissectError> {
        let mut prefix = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut raw_names: Vec<String> = Vec::new();
        let mut rest = pattern;
        let mut consumed = 0;
        loop {
            let Some(open) = rest.find("%{") else {
                let lit = rest.as_bytes().to_vec();
                match fields.last_mut() {
                    Some(f) => {
                        f.literal = lit;
                        f.suffix = !f.literal.is_empty();
                    }
                    None => prefix = lit,
                }
                break;
            };
            let lit = rest.as_bytes()[..open].to_vec();
            match fields.last_mut() {
                Some(f) => {
                    if lit.is_empty() {
                        return Err(DissectError::Adjacent(
                            raw_names.last().cloned().unwrap_or_default(),
                            rest[open + 2..].split('}').next().unwrap_or("").to_string(),
                        ));
                    }
                    f.literal = lit;
                }
                None => prefix = lit,
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find('}') else {
                return Err(DissectError::Unclosed(consumed + open));
            };
            let mut spec = &after[..close];
            raw_names.push(spec.to_string());
            let padding = spec.ends_with("->");
            if padding {
                spec = &spec[..spec.len() - 2];
            }
            let kind = if spec.is_empty() || spec.starts_with('?') {
                FieldKind::Skip
            } else if let Some(base) = spec.strip_prefix('+') {
                match names.iter().position(|n| n == base) {
                    Some(i) => FieldKind::Append(i),
                    None => return Err(DissectError::AppendWithoutBase(base.to_string())),
                }
            } else {
                match names.iter().position(|n| n == spec) {
                    Some(i) => FieldKind::Capture(i),
                    None => {
                        names.push(spec.to_string());
                        FieldKind::Capture(names.len() - 1)
                    }
                }
            };
            fields.push(Field {
                kind,
                literal: Vec::new(),
                finder: None,
                padding,
                suffix: false,
            });
            consumed += open + 2 + close + 1;
            rest = &after[close + 1..];
        }
        if fields.is_empty() {
            return Err(DissectError::NoFields);
        }
        for f in &mut fields {
            if f.literal.len() > SHORT && !f.suffix {
                f.finder = Some(memmem::Finder::new(&f.literal).into_owned());
            }
        }
        // Slots captured by the fields before each field.
        let mut slots_before = Vec::with_capacity(fields.len() + 1);
        let mut slots = 0;
        for f in &fields {
            slots_before.push(slots);
            if let FieldKind::Capture(i) = f.kind {
                slots = slots.max(i + 1);
            }
        }
        slots_before.push(slots);
        Ok(Dissect {
            prefix,
            fields,
            names,
            slots_before,
            source: pattern.to_string(),
        })
    }

    /// How many leading fields `self` has in common with `other` (same
    /// prefix, and each field the same capture slot, kind and literal): a
    /// match of `other` that got past them can be resumed by `self` there
    /// (see [`Dissect::resume`]).
    pub fn shared_fields(&self, other: &Dissect) -> usize {
        if self.prefix != other.prefix {
            return 0;
        }
        self.fields
            .iter()
            .zip(&other.fields)
            .take_while(|(a, b)| {
                a.kind == b.kind
                    && a.literal == b.literal
                    && a.padding == b.padding
                    && !a.suffix
                    && !b.suffix
            })
            .count()
    }

    /// Names of the capture slots, in order of first appearance.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Matches a line; on success `spans[i]` is the span of slot `i`
    /// (`None` if the slot was not captured). Returns false if the line does
    /// not have the pattern's shape.
    pub fn matches(&self, line: &[u8], spans: &mut Vec<Option<Span>>) -> bool {
        self.resume(line, spans, &mut Vec::new(), 0).is_ok()
    }

    /// Matches a line as [`Dissect::matches`] does, starting at field
    /// `from`. `ends[i]` is where field `i` ended; a failed match leaves the
    /// spans and ends of the fields it got through and returns how many
    /// those are. With `from > 0`, `spans` and `ends` must be those a match
    /// of a pattern sharing at least `from` fields (see
    /// [`Dissect::shared_fields`]) left after getting through `from` fields:
    /// that work is not done again.
    pub fn resume(
        &self,
        line: &[u8],
        spans: &mut Vec<Option<Span>>,
        ends: &mut Vec<usize>,
        from: usize,
    ) -> Result<(), usize> {
        let mut pos;
        if from == 0 {
            spans.clear();
            spans.resize(self.names.len(), None);
            ends.clear();
            match self.prefix[..] {
                [] => {}
                [c] => {
                    if line.first() != Some(&c) {
                        return Err(0);
                    }
                }
                _ => {
                    if !line.starts_with(&self.prefix) {
                        return Err(0);
                    }
                }
            }
            pos = self.prefix.len();
        } else {
            debug_assert!(ends.len() >= from);
            spans.truncate(self.slots_before[from]);
            spans.resize(self.names.len(), None);
            ends.truncate(from);
            pos = ends[from - 1];
        }
        let n = self.fields.len();
        for (i, field) in self.fields.iter().enumerate().skip(from) {
            let (end, next) = if field.suffix {
                let Some(end) = line.len().checked_sub(field.literal.len()) else {
                    return Err(i);
                };
                if end < pos || !line.ends_with(&field.literal) {
                    return Err(i);
                }
                (end, line.len())
            } else if field.literal.is_empty() {
                debug_assert_eq!(i, n - 1);
                (line.len(), line.len())
            } else {
                let hay = &line[pos..];
                let found = match &field.finder {
                    Some(finder) => finder.find(hay),
                    None if field.literal.len() == 1 => crate::scan::find(field.literal[0], hay),
                    None => find_short(&field.literal, hay),
                };
                let Some(at) = found else { return Err(i) };
                let mut next = pos + at + field.literal.len();
                if field.padding {
                    if let [c] = field.literal[..] {
                        next += line[next..].iter().take_while(|&&b| b == c).count();
                    } else {
                        while line[next..].starts_with(&field.literal) {
                            next += field.literal.len();
                        }
                    }
                }
                (pos + at, next)
            };
            match field.kind {
                FieldKind::Capture(slot) => spans[slot] = Some((pos, end)),
                FieldKind::Append(slot) => {
                    if let Some((start, _)) = spans[slot] {
                        spans[slot] = Some((start, end));
                    } else {
                        spans[slot] = Some((pos, end));
                    }
                }
                FieldKind::Skip => {}
            }
            pos = next;
            ends.push(pos);
        }
        if pos == line.len() { Ok(()) } else { Err(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(p: &str, line: &str) -> Option<Vec<(String, String)>> {
        let d = Dissect::compile(p).unwrap();
        let mut spans = Vec::new();
        if !d.matches(line.as_bytes(), &mut spans) {
            return None;
        }
        Some(
            d.names()
                .iter()
                .zip(spans)
                .filter_map(|(n, s)| s.map(|(a, b)| (n.clone(), line[a..b].to_string())))
                .collect(),
        )
    }

    fn pairs(v: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn combined_log_line() {
        let p = r#"%{source.address} %{?ident} %{user.name} [%{_ts}] "%{_request}" %{status} %{bytes} "%{referrer}" "%{ua}""#;
        let line = r#"127.0.0.1 - admin [30/Nov/2026:00:34:12 +0000] "GET /x?a=1 HTTP/1.1" 401 137 "-" "python-requests/2.32.3 \"quoted\"""#;
        assert_eq!(
            run(p, line),
            pairs(&[
                ("source.address", "127.0.0.1"),
                ("user.name", "admin"),
                ("_ts", "30/Nov/2026:00:34:12 +0000"),
                ("_request", "GET /x?a=1 HTTP/1.1"),
                ("status", "401"),
                ("bytes", "137"),
                ("referrer", "-"),
                ("ua", r#"python-requests/2.32.3 \"quoted\""#),
            ])
        );
    }

    #[test]
    fn append_and_padding() {
        let p = r#"%{_ts} %{+_ts} %{_level}:%{->} %{_client} - "%{_request}" %{status} %{?reason}"#;
        let line =
            r#"2026/11/30 00:30:56 INFO:     127.0.0.1:54658 - "GET /health HTTP/1.1" 200 OK"#;
        assert_eq!(
            run(p, line),
            pairs(&[
                ("_ts", "2026/11/30 00:30:56"),
                ("_level", "INFO"),
                ("_client", "127.0.0.1:54658"),
                ("_request", "GET /health HTTP/1.1"),
                ("status", "200"),
            ])
        );
    }

    #[test]
    fn mismatches() {
        let p = r#"[%{a}] %{b}"#;
        assert!(run(p, "x [a] b").is_none(), "prefix must match");
        assert!(run(p, "[a b").is_none(), "missing delimiter");
        assert_eq!(run(p, "[a] "), pairs(&[("a", "a"), ("b", "")]));
        let q = r#"%{a} "%{b}""#;
        assert!(run(q, r#"x "y"#).is_none(), "suffix must match");
        assert!(
            run(q, "x\"").is_none(),
            "suffix cannot overlap the delimiter before it"
        );
    }

    #[test]
    fn compile_errors() {
        assert_eq!(
            Dissect::compile("%{a}%{b}").unwrap_err(),
            DissectError::Adjacent("a".into(), "b".into())
        );
        assert!(matches!(
            Dissect::compile("%{a"),
            Err(DissectError::Unclosed(0))
        ));
        assert!(matches!(
            Dissect::compile("%{+a} %{b}"),
            Err(DissectError::AppendWithoutBase(_))
        ));
        assert_eq!(
            Dissect::compile("plain").unwrap_err(),
            DissectError::NoFields
        );
    }

    proptest! {
        #[test]
        fn find_short_finds_the_first(hay in proptest::collection::vec(0u8..4, 0..60), lit in proptest::collection::vec(0u8..4, 2..=SHORT)) {
            let naive = hay.windows(lit.len()).position(|w| w == &lit[..]);
            prop_assert_eq!(find_short(&lit, &hay), naive);
        }

        #[test]
        fn never_panics_and_spans_are_in_bounds(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            for p in [r#"%{a} [%{b}] "%{c}" %{d}"#, "%{a}->%{b->} %{+a}", r#"x%{a}"y""#] {
                let d = Dissect::compile(p).unwrap();
                let mut spans = Vec::new();
                if d.matches(&line, &mut spans) {
                    for (s, e) in spans.into_iter().flatten() {
                        prop_assert!(s <= e && e <= line.len());
                    }
                }
            }
        }
    }
}
