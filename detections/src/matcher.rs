//! Compiled detection items and how they are evaluated against an event.

use std::net::IpAddr;

use regex::Regex;
use schema::{Event, FieldId, Timestamp, Value};

use crate::pattern::StrMatcher;

/// A field a rule reads: a registered ECS field (compared by id) or any
/// other dotted path (walked through the event's trees).
#[derive(Debug, Clone)]
pub struct FieldRef {
    pub name: String,
    id: Option<FieldId>,
    /// [`schema::event::root_bits`] of the name.
    root: [u64; 2],
}

impl FieldRef {
    pub fn new(name: &str) -> FieldRef {
        FieldRef {
            name: name.to_string(),
            id: FieldId::lookup(name),
            root: schema::event::root_bits(name),
        }
    }

    /// Calls `f` with each value of the field (array items one by one);
    /// `f` returns true to stop.
    pub fn visit<'e>(&self, ev: &'e Event, f: &mut dyn FnMut(&'e Value) -> bool) {
        if let Some(id) = self.id
            && let Some(v) = ev.get_id(id)
        {
            visit_leaves(v, f);
            return;
        }
        // No key starts with the path's first segment: absent, no scan.
        if !ev.may_have_root(self.root) {
            return;
        }
        let mut done = false;
        ev.for_each_value(&self.name, &mut |v| {
            if !done {
                done = f(v);
            }
        });
    }

    /// True when the event has the field (with any value, null included).
    pub fn exists(&self, ev: &Event) -> bool {
        let mut found = false;
        self.visit(ev, &mut |_| {
            found = true;
            true
        });
        found
    }
}

fn visit_leaves<'e>(v: &'e Value, f: &mut dyn FnMut(&'e Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| visit_leaves(i, f)),
        Value::Json(doc) => visit_leaves(doc.tree(), f),
        other => f(other),
    }
}

/// Numeric comparisons (`lt`, `lte`, `gt`, `gte`, plain equality).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    fn test(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Lt => a < b,
            Cmp::Lte => a <= b,
            Cmp::Gt => a > b,
            Cmp::Gte => a >= b,
        }
    }
}

/// The parts of a date the time modifiers extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePart {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// How a field reference compares (`fieldref` with `startswith`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Equal,
    Prefix,
    Suffix,
    Contains,
}

/// One value of a detection item, compiled.
#[derive(Debug, Clone)]
pub enum ValueMatcher {
    Str(StrMatcher),
    Num(Cmp, f64),
    Bool(bool),
    /// `null`: the field is absent or null.
    Null,
    Regex(Regex),
    /// A list of regular expressions of which any may match (`field|re:
    /// [a, b, ...]`), or one case-insensitive regex: the text is searched
    /// for their literals first and only the regexes whose literal occurs
    /// run (or their alternation, for three and more, or when a regex has
    /// no literals); `each` also gives the prefilter its literals.
    Regexes(Box<RegexList>),
    Cidr(ipnet::IpNet),
    TimePart(TimePart, Cmp, f64),
    FieldRef {
        other: FieldRef,
        kind: RefKind,
        cased: bool,
    },
}

/// Regular expressions of one list, any of which may match.
#[derive(Debug, Clone)]
pub struct RegexList {
    pub any: Regex,
    pub each: Vec<Regex>,
    gate: Option<Gate>,
}

/// The literals of a list's regexes (folded, as the prefilter takes them:
/// every match of a regex contains one of its literals), searched in the
/// folded text before any regex runs, so that only the regexes whose
/// literal occurs run. The alternation of a list mixing case-insensitive
/// patterns has no literal prefilter of its own: its lazy DFA steps
/// through every byte, about ten times the cost of a few `memmem`
/// searches (the pack's secret-in-log rule on Kubernetes audit lines:
/// 3.1 µs for the alternation, 0.6 µs for the searches).
#[derive(Debug, Clone)]
struct Gate {
    /// Per literal, the regexes (bits of `each`) that need it.
    lits: Vec<(memchr::memmem::Finder<'static>, u64)>,
}

/// Most literals a gate searches; beyond, the alternation is cheaper.
const GATE_MAX_LITERALS: usize = 16;

/// A regex's literals as the gate searches them: a long list (`-----BEGIN
/// (RSA |EC |...)?PRIVATE KEY-----` has 14) becomes their common prefix,
/// or their distinct first three bytes; any of those occurs wherever one
/// of the literals does. `None` when that still leaves more than eight.
fn gate_literals(mut lits: Vec<String>) -> Option<Vec<String>> {
    if lits.is_empty() {
        // No literal to wait for: the regex must always run.
        return None;
    }
    if lits.len() <= 4 {
        return Some(lits);
    }
    let first = lits[0].clone();
    let mut common = first.len();
    for l in &lits[1..] {
        common = common.min(
            first
                .char_indices()
                .zip(l.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(l.len()), |((i, _), _)| i),
        );
    }
    if common >= 3 {
        return Some(vec![first[..common].to_string()]);
    }
    for l in &mut lits {
        let mut end = 3.min(l.len());
        while !l.is_char_boundary(end) {
            end += 1;
        }
        l.truncate(end);
    }
    lits.sort();
    lits.dedup();
    (lits.len() <= 8).then_some(lits)
}

impl Gate {
    fn new(each: &[Regex]) -> Option<Gate> {
        if each.len() > 64 {
            return None;
        }
        let mut by_lit: Vec<(String, u64)> = Vec::new();
        for (i, re) in each.iter().enumerate() {
            for l in gate_literals(crate::prefilter::regex_literals(re.as_str())?)? {
                match by_lit.iter_mut().find(|(x, _)| *x == l) {
                    Some((_, bits)) => *bits |= 1 << i,
                    None => by_lit.push((l, 1 << i)),
                }
            }
        }
        if by_lit.len() > GATE_MAX_LITERALS {
            return None;
        }
        let lits = by_lit
            .into_iter()
            .map(|(l, bits)| (memchr::memmem::Finder::new(l.as_bytes()).into_owned(), bits))
            .collect();
        Some(Gate { lits })
    }
}

impl RegexList {
    /// One regex matching where any of `each` matches, built as `each`
    /// were (`flags` sets their case, multi-line and dot flags and size
    /// limits); `each` back when the alternation exceeds the limits.
    pub fn new(
        each: Vec<Regex>,
        flags: impl Fn(&mut regex::RegexBuilder),
    ) -> Result<Self, Vec<Regex>> {
        let alt = each
            .iter()
            .map(|r| format!("(?:{})", r.as_str()))
            .collect::<Vec<_>>()
            .join("|");
        let mut b = regex::RegexBuilder::new(&alt);
        flags(&mut b);
        match b.build() {
            Ok(any) => {
                let gate = Gate::new(&each);
                Ok(RegexList { any, each, gate })
            }
            Err(_) => Err(each),
        }
    }

    /// One regex behind a literal gate, when its literals make one.
    pub fn gated(re: Regex) -> Option<RegexList> {
        let each = vec![re];
        let gate = Some(Gate::new(&each)?);
        Some(RegexList {
            any: each[0].clone(),
            each,
            gate,
        })
    }

    /// Whether any of the regexes matches `t`.
    pub fn is_match(&self, t: &str) -> bool {
        let Some(gate) = &self.gate else {
            return self.any.is_match(t);
        };
        let folded = crate::pattern::fold(t);
        let mut want = 0u64;
        for (f, bits) in &gate.lits {
            if want & bits != *bits && f.find(folded.as_bytes()).is_some() {
                want |= bits;
            }
        }
        match want.count_ones() {
            0 => false,
            // Two scans by regexes with literal prefilters of their own
            // still cost less than the alternation's.
            1 | 2 => (0..self.each.len())
                .filter(|i| want >> i & 1 == 1)
                .any(|i| self.each[i].is_match(t)),
            _ => self.any.is_match(t),
        }
    }
}

/// The text form of a scalar value, as it is matched against strings.
fn text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    v.to_text()
}

/// Whether any of the matchers matches the non-null value `v`: its text is
/// made, and folded, at most once.
fn any_matches(ms: &[ValueMatcher], v: &Value, ev: &Event) -> bool {
    let t = text(v);
    let mut folded: Option<std::borrow::Cow<'_, str>> = None;
    ms.iter().any(|m| match (m, &t) {
        (ValueMatcher::Str(_), None) => false,
        (ValueMatcher::Str(sm), Some(t)) if sm.cased => sm.matches_prefolded(t, t),
        (ValueMatcher::Str(sm), Some(t)) => {
            let f = folded.get_or_insert_with(|| crate::pattern::fold(t));
            sm.matches_prefolded(t, f)
        }
        (other, _) => other.matches(v, ev),
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl ValueMatcher {
    /// Matches one non-null value.
    fn matches(&self, v: &Value, ev: &Event) -> bool {
        match self {
            ValueMatcher::Str(m) => text(v).is_some_and(|t| m.matches(&t)),
            ValueMatcher::Num(cmp, x) => number(v).is_some_and(|n| cmp.test(n, *x)),
            ValueMatcher::Bool(b) => match v {
                Value::Bool(x) => x == b,
                Value::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            ValueMatcher::Null => false,
            ValueMatcher::Regex(re) => text(v).is_some_and(|t| re.is_match(&t)),
            ValueMatcher::Regexes(list) => text(v).is_some_and(|t| list.is_match(&t)),
            ValueMatcher::Cidr(net) => {
                let ip: Option<IpAddr> = match v {
                    Value::Ip(ip) => Some(*ip),
                    Value::Str(s) => s.trim().parse().ok(),
                    _ => None,
                };
                ip.is_some_and(|ip| net.contains(&ip))
            }
            ValueMatcher::TimePart(part, cmp, x) => {
                let t = match v {
                    Value::Time(t) => Some(*t),
                    Value::Str(s) => Timestamp::parse_rfc3339(s),
                    _ => None,
                };
                t.and_then(|t| time_part(t, *part))
                    .is_some_and(|n| cmp.test(n as f64, *x))
            }
            ValueMatcher::FieldRef { other, kind, cased } => {
                let Some(mine) = text(v) else { return false };
                let mut hit = false;
                other.visit(ev, &mut |o| {
                    if let Some(theirs) = text(o) {
                        let (a, b) = if *cased {
                            (mine.clone(), theirs)
                        } else {
                            (
                                std::borrow::Cow::Owned(crate::pattern::fold(&mine).into_owned()),
                                std::borrow::Cow::Owned(crate::pattern::fold(&theirs).into_owned()),
                            )
                        };
                        hit = match kind {
                            RefKind::Equal => a == b,
                            RefKind::Prefix => a.starts_with(&*b),
                            RefKind::Suffix => a.ends_with(&*b),
                            RefKind::Contains => a.contains(&*b),
                        };
                    }
                    hit
                });
                hit
            }
        }
    }
}

fn time_part(t: Timestamp, part: TimePart) -> Option<i64> {
    use chrono::{Datelike, Timelike};
    let secs = t.0.div_euclid(1_000_000_000);
    let dt = chrono::DateTime::from_timestamp(secs, 0)?;
    Some(match part {
        TimePart::Minute => dt.minute() as i64,
        TimePart::Hour => dt.hour() as i64,
        TimePart::Day => dt.day() as i64,
        TimePart::Week => dt.iso_week().week() as i64,
        TimePart::Month => dt.month() as i64,
        TimePart::Year => dt.year() as i64,
    })
}

/// How the values of one detection item combine.
#[derive(Debug, Clone)]
pub enum Combine {
    /// Any value matches (a list is OR).
    Any,
    /// Every value matches (`all`).
    All,
    /// No value matches, and the field has a value (`neq`).
    None,
}

/// `field|modifiers: values`, compiled.
#[derive(Debug, Clone)]
pub struct Item {
    pub field: FieldRef,
    pub kind: ItemKind,
}

#[derive(Debug, Clone)]
pub enum ItemKind {
    Exists(bool),
    Values(Combine, Vec<ValueMatcher>),
}

impl Item {
    pub fn matches(&self, ev: &Event) -> bool {
        match &self.kind {
            ItemKind::Exists(want) => self.field.exists(ev) == *want,
            ItemKind::Values(combine, ms) => match combine {
                // Several values (a list): each value of the field is read,
                // and folded, once for all of them.
                Combine::Any
                    if ms.len() > 1 && !ms.iter().any(|m| matches!(m, ValueMatcher::Null)) =>
                {
                    let mut hit = false;
                    self.field.visit(ev, &mut |v| {
                        hit = !matches!(v, Value::Null) && any_matches(ms, v, ev);
                        hit
                    });
                    hit
                }
                Combine::Any => ms.iter().any(|m| self.one(m, ev)),
                Combine::All => ms.iter().all(|m| self.one(m, ev)),
                Combine::None => {
                    let mut has_value = false;
                    let mut hit = false;
                    self.field.visit(ev, &mut |v| {
                        if matches!(v, Value::Null) {
                            return false;
                        }
                        has_value = true;
                        hit = ms.iter().any(|m| m.matches(v, ev));
                        hit
                    });
                    has_value && !hit
                }
            },
        }
    }

    fn one(&self, m: &ValueMatcher, ev: &Event) -> bool {
        if let ValueMatcher::Null = m {
            let mut any = false;
            let mut null = false;
            self.field.visit(ev, &mut |v| {
                any = true;
                null = matches!(v, Value::Null);
                null
            });
            return !any || null;
        }
        let mut hit = false;
        self.field.visit(ev, &mut |v| {
            hit = !matches!(v, Value::Null) && m.matches(v, ev);
            hit
        });
        hit
    }
}

/// Keyword searches: values looked for in every field of the event.
#[derive(Debug, Clone)]
pub struct Keywords {
    pub all: bool,
    pub values: Vec<ValueMatcher>,
    /// When every value is a case-insensitive substring (the usual
    /// keyword): one automaton over the folded substrings, so each text
    /// of the event is scanned once for all of them.
    ac: Option<aho_corasick::AhoCorasick>,
}

/// The (folded) substring of a plain keyword: a case-insensitive,
/// non-empty `contains`.
fn plain_substring(v: &ValueMatcher) -> Option<&str> {
    match v {
        ValueMatcher::Str(sm) if !sm.cased => match &sm.m {
            crate::pattern::StrMatch::Contains(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    }
}

impl Keywords {
    pub fn new(all: bool, values: Vec<ValueMatcher>) -> Keywords {
        let subs: Option<Vec<&str>> = values.iter().map(plain_substring).collect();
        // The patterns are folded; ignoring ASCII case, the automaton reads
        // an ASCII text as it is (folding it would only lower-case it).
        let ac = subs.filter(|s| s.len() > 1).and_then(|s| {
            aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(s)
                .ok()
        });
        Keywords { all, values, ac }
    }
}

impl Keywords {
    /// The literals of a search that holds exactly when one of them occurs,
    /// ignoring ASCII case, in a text of [`keyword_texts`]: a list (not
    /// `'|all'`) of plain case-insensitive substrings, all ASCII. `None`
    /// for any other search.
    pub fn any_of_literals(&self) -> Option<Vec<&str>> {
        if self.all {
            return None;
        }
        self.values
            .iter()
            .map(|v| plain_substring(v).filter(|s| s.is_ascii()))
            .collect()
    }

    pub fn matches(&self, ev: &Event) -> bool {
        // The usual keyword list: each text is folded and scanned once,
        // as it comes, and the search stops at the first hit.
        if let Some(ac) = &self.ac {
            let mut seen = vec![false; if self.all { self.values.len() } else { 0 }];
            let mut hit = false;
            keyword_texts(ev, &mut |t| {
                let folded = if t.is_ascii() {
                    std::borrow::Cow::Borrowed(t)
                } else {
                    crate::pattern::fold(t)
                };
                if !self.all {
                    hit = ac.is_match(folded.as_ref());
                    return hit;
                }
                for m in ac.find_overlapping_iter(folded.as_ref()) {
                    seen[m.pattern().as_usize()] = true;
                }
                false
            });
            return if self.all {
                seen.iter().all(|s| *s)
            } else {
                hit
            };
        }
        // Every text searched, folded once for all the keywords.
        let mut texts: Vec<(String, String)> = Vec::new();
        keyword_texts(ev, &mut |t| {
            texts.push((t.to_string(), crate::pattern::fold(t).into_owned()));
            false
        });
        let one = |m: &ValueMatcher| match m {
            ValueMatcher::Str(sm) => texts.iter().any(|(t, f)| sm.matches_prefolded(t, f)),
            other => texts
                .iter()
                .any(|(t, _)| other.matches(&Value::Str(schema::Str::from(t.as_str())), ev)),
        };
        if self.all {
            self.values.iter().all(one)
        } else {
            self.values.iter().any(one)
        }
    }
}

/// The texts keyword searches read: `event.original` and `message` when
/// the event keeps its original record (a normalized line holds every
/// field as it was written; a JSON record with escapes is read decoded,
/// since `\u003c` hides a `<` an attacker wrote), else every value of the
/// event (JSON events evaluated as given). `f` returns true to stop.
pub fn keyword_texts(ev: &Event, f: &mut dyn FnMut(&str) -> bool) {
    if let Some(orig) = ev.get_id(schema::f::EVENT_ORIGINAL).and_then(Value::as_str) {
        let stop = if orig.trim_start().starts_with(['{', '['])
            && memchr::memchr(b'\\', orig.as_bytes()).is_some()
        {
            with_unescaped(orig, f)
        } else {
            f(orig)
        };
        if stop {
            return;
        }
        if let Some(m) = ev.get_id(schema::f::MESSAGE) {
            visit_all_leaves(m, &mut |leaf| leaf.to_text().is_some_and(|t| f(&t)));
        }
        return;
    }
    for (_, v) in ev.iter() {
        if visit_all_leaves(v, &mut |leaf| leaf.to_text().is_some_and(|t| f(&t))) {
            return;
        }
    }
}

thread_local! {
    /// The last JSON text decoded on this thread, and its decoding: the
    /// prefilter and every keyword rule it picks read the same event.
    static UNESCAPED: std::cell::RefCell<(String, String)> = Default::default();
}

/// `f` of `orig` decoded (see [`unescape_json_text`]), decoded once for
/// successive calls on the same text.
fn with_unescaped(orig: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
    // A huge record is not kept: a thread would hold two copies of it.
    const KEEP_MAX: usize = 64 * 1024;
    if orig.len() > KEEP_MAX {
        return f(&unescape_json_text(orig));
    }
    UNESCAPED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut last) => {
            if last.0 != orig {
                // The buffers are reused from record to record.
                last.1.clear();
                unescape_json_into(orig, &mut last.1);
                last.0.clear();
                last.0.push_str(orig);
            }
            f(&last.1)
        }
        // Called from `f` itself: no cache.
        Err(_) => f(&unescape_json_text(orig)),
    })
}

/// A JSON text with its string escapes decoded (`\"`, `\\`, `\/`,
/// `\n`..., `\uXXXX` with surrogate pairs); anything else is kept as is.
pub fn unescape_json_text(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    unescape_json_into(t, &mut out);
    out
}

/// [`unescape_json_text`] appended to `out`.
fn unescape_json_into(t: &str, out: &mut String) {
    let mut rest = t;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i..];
        let mut chars = esc[1..].chars();
        let (decoded, used) = match chars.next() {
            Some('"') => (Some('"'), 2),
            Some('\\') => (Some('\\'), 2),
            Some('/') => (Some('/'), 2),
            Some('b') => (Some('\u{8}'), 2),
            Some('f') => (Some('\u{c}'), 2),
            Some('n') => (Some('\n'), 2),
            Some('r') => (Some('\r'), 2),
            Some('t') => (Some('\t'), 2),
            Some('u') => {
                let hex = |s: &str| -> Option<u32> {
                    (s.len() >= 4 && s.is_char_boundary(4))
                        .then(|| u32::from_str_radix(&s[..4], 16).ok())
                        .flatten()
                };
                match hex(&esc[2..]) {
                    Some(hi @ 0xD800..=0xDBFF) if esc[6..].starts_with("\\u") => {
                        match hex(&esc[8..]) {
                            Some(lo @ 0xDC00..=0xDFFF) => (
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)),
                                12,
                            ),
                            _ => (None, 1),
                        }
                    }
                    Some(cp) => match char::from_u32(cp) {
                        Some(c) => (Some(c), 6),
                        None => (None, 1),
                    },
                    None => (None, 1),
                }
            }
            _ => (None, 1),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push('\\'),
        }
        rest = &esc[used..];
    }
    out.push_str(rest);
}

fn visit_all_leaves<'e>(v: &'e Value, f: &mut dyn FnMut(&'e Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| visit_all_leaves(i, f)),
        Value::Object(members) => members.iter().any(|(_, c)| visit_all_leaves(c, f)),
        Value::Json(doc) => visit_all_leaves(doc.tree(), f),
        other => f(other),
    }
}

/// A search identifier's definition.
#[derive(Debug, Clone)]
pub enum Search {
    /// A map: every item matches.
    And(Vec<Item>),
    /// A list: any element matches.
    Or(Vec<Search>),
    /// A map mixing fields and keyword keys (`'|all': [...]`): all hold.
    All(Vec<Search>),
    Keywords(Keywords),
}

/// Relative cost of evaluating a matcher, for ordering the operands of
/// `and`/`or` so the cheap ones run first and the expensive ones (regular
/// expressions, keyword scans of every field) are often skipped: `secret
/// and not expected` with a regex over the raw line and an exact value
/// tests the exact value first. Operands are pure, so the order changes
/// the time only, never the result.
pub(crate) trait Cost {
    fn cost(&self) -> u32;
}

impl Cost for ValueMatcher {
    fn cost(&self) -> u32 {
        use crate::pattern::StrMatch;
        match self {
            ValueMatcher::Str(sm) => match &sm.m {
                StrMatch::Exact(_) | StrMatch::Any => 1,
                StrMatch::Prefix(_) | StrMatch::Suffix(_) => 2,
                StrMatch::Contains(_) => 4,
                StrMatch::Glob(_) => 8,
            },
            ValueMatcher::Regex(_) => 64,
            ValueMatcher::Regexes(list) => 64 + list.each.len() as u32,
            ValueMatcher::FieldRef { .. } => 4,
            ValueMatcher::Num(..)
            | ValueMatcher::Bool(_)
            | ValueMatcher::Null
            | ValueMatcher::Cidr(_)
            | ValueMatcher::TimePart(..) => 1,
        }
    }
}

impl Cost for Item {
    fn cost(&self) -> u32 {
        match &self.kind {
            ItemKind::Exists(_) => 1,
            // A list of exact values is read and folded once.
            ItemKind::Values(_, ms) => ms.iter().map(Cost::cost).fold(1u32, u32::saturating_add),
        }
    }
}

impl Cost for Search {
    fn cost(&self) -> u32 {
        match self {
            Search::And(items) => items.iter().map(Cost::cost).fold(0, u32::saturating_add),
            Search::Or(list) | Search::All(list) => {
                list.iter().map(Cost::cost).fold(0, u32::saturating_add)
            }
            // Every text of the event.
            Search::Keywords(k) => k
                .values
                .iter()
                .map(Cost::cost)
                .fold(256, u32::saturating_add),
        }
    }
}

impl Search {
    /// Orders the items of maps, and the alternatives of lists, cheapest
    /// first (stable: equal costs keep the rule's order).
    pub(crate) fn order_by_cost(&mut self) {
        match self {
            Search::And(items) => items.sort_by_key(Cost::cost),
            Search::Or(list) | Search::All(list) => {
                list.iter_mut().for_each(Search::order_by_cost);
                list.sort_by_key(Cost::cost);
            }
            Search::Keywords(_) => {}
        }
    }

    pub fn matches(&self, ev: &Event) -> bool {
        match self {
            Search::And(items) => items.iter().all(|i| i.matches(ev)),
            Search::Or(list) => list.iter().any(|s| s.matches(ev)),
            Search::All(list) => list.iter().all(|s| s.matches(ev)),
            Search::Keywords(k) => k.matches(ev),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{SigmaStr, StrMatcher};

    fn kw(all: bool, words: &[&str]) -> Keywords {
        Keywords::new(
            all,
            words
                .iter()
                .map(|w| {
                    let mut s = SigmaStr::parse(w, false);
                    s.prepend_many();
                    s.append_many();
                    ValueMatcher::Str(StrMatcher::new(&s, false))
                })
                .collect(),
        )
    }

    #[test]
    fn json_text_unescaping() {
        assert_eq!(
            unescape_json_text(r#"{"a":"\u003cscript\u003e \"q\" \/etc\/passwd \\x \n"}"#),
            "{\"a\":\"<script> \"q\" /etc/passwd \\x \n\"}"
        );
        // A surrogate pair, a lone surrogate, a short and a bad escape.
        assert_eq!(unescape_json_text(r"\ud83d\ude00"), "\u{1f600}");
        assert_eq!(unescape_json_text(r"\ud83dx"), r"\ud83dx");
        assert_eq!(unescape_json_text(r"end\u00"), r"end\u00");
        assert_eq!(unescape_json_text(r"\q\"), r"\q\");
        assert_eq!(
            unescape_json_text("é\\u00e9"),
            "é\\u00e9".replace("\\u00e9", "é")
        );
    }

    // Keywords read the original record of a normalized event, and every
    // value of an event without one.
    #[test]
    fn keywords_read_the_original_record_or_every_value() {
        let mut normalized = Event::new();
        normalized.set(schema::f::EVENT_ORIGINAL, "GET /.git/config HTTP/1.1");
        normalized.set(schema::f::URL_PATH, "/decoded/only/here");
        assert!(kw(false, &["/.GIT/"]).matches(&normalized));
        assert!(!kw(false, &["decoded/only"]).matches(&normalized));
        assert!(kw(true, &["get", "config"]).matches(&normalized));
        assert!(!kw(true, &["get", "absent"]).matches(&normalized));
        let mut raw = Event::new();
        raw.insert(
            "a",
            Value::Array(vec![Value::from("first"), Value::from("x /.git/ y")]),
        );
        raw.insert(
            "b",
            Value::Object(vec![(schema::Str::from("c"), Value::from("nested text"))]),
        );
        assert!(kw(false, &["/.git/"]).matches(&raw));
        assert!(kw(true, &["first", "nested"]).matches(&raw));
        assert!(!kw(false, &["missing"]).matches(&raw));
        // One keyword only: no automaton, the same answers.
        assert!(kw(false, &["nested"]).matches(&raw));
        // A JSON record's text escapes characters: its decoded values are
        // searched too.
        let mut json = Event::new();
        json.set(
            schema::f::EVENT_ORIGINAL,
            r#"{"requestURI":"/api?q=\u003cscript\u003e"}"#,
        );
        json.insert("kubernetes.audit.requestURI", "/api?q=<script>");
        assert!(kw(false, &["<script>"]).matches(&json));
    }

    // The decoded text is kept for the next search of the same record: a
    // different record, even of the same length, is decoded anew.
    #[test]
    fn decoded_text_follows_the_record() {
        let event = |orig: &str| {
            let mut e = Event::new();
            e.set(schema::f::EVENT_ORIGINAL, orig.to_string());
            e
        };
        let first = event(r#"{"u":"\u003cscript\u003e"}"#);
        let second = event(r#"{"u":"\u003cstyle \u003e"}"#);
        assert_eq!(
            first
                .get("event.original")
                .map(|v| v.as_str().unwrap().len()),
            second
                .get("event.original")
                .map(|v| v.as_str().unwrap().len())
        );
        let script = kw(false, &["<script>"]);
        let style = kw(false, &["<style >"]);
        assert!(script.matches(&first));
        assert!(!style.matches(&first));
        assert!(style.matches(&second));
        assert!(!script.matches(&second));
        assert!(script.matches(&first));
        // A record too large to keep is decoded all the same.
        let big = event(&format!(
            r#"{{"u":"{}\u003cstyle \u003e"}}"#,
            "x".repeat(70_000)
        ));
        assert!(style.matches(&big));
        assert!(!script.matches(&big));
        assert!(script.matches(&first));
        // ASCII case is ignored on the text as it is, non-ASCII text folded.
        assert!(kw(false, &["<SCRIPT>", "zzz"]).matches(&first));
        assert!(kw(false, &["ÉTÉ", "zzz"]).matches(&event("un été")));
    }

    /// Lists built as `|re` and `|re|i` build them: flags written into
    /// each pattern, and on the builder.
    fn regex_list(pats: &[&str], insensitive: bool) -> RegexList {
        let flags = |b: &mut regex::RegexBuilder| {
            b.case_insensitive(insensitive);
        };
        let each = pats
            .iter()
            .map(|p| {
                let p = if insensitive {
                    format!("(?i){p}")
                } else {
                    p.to_string()
                };
                let mut b = regex::RegexBuilder::new(&p);
                flags(&mut b);
                b.build().unwrap()
            })
            .collect();
        RegexList::new(each, flags).unwrap()
    }

    fn secret_lists() -> Vec<RegexList> {
        vec![
            // The pack's secret-in-log rule: cased regexes and inline `(?i)`.
            regex_list(
                &[
                    r"(^|[^A-Za-z0-9_]|%[0-9A-Fa-f]{2})hf_[A-Za-z0-9]{34}([^A-Za-z0-9]|$)",
                    r"(^|[^A-Za-z0-9]|%[0-9A-Fa-f]{2})(AKIA|ASIA)[0-9A-Z]{16}([^A-Za-z0-9]|$)",
                    r#"(?i)secret_?access_?key['"]?(\s*[:=]\s*|\s+)['"]?[A-Za-z0-9/+]{4}"#,
                    r#"(?i)\b[a-z][a-z0-9+.-]*://[^\s/:@'"]*:[^\s/@'"*\[<${][^\s/@'"]*@[a-z0-9_.\[-]"#,
                    r"(?i)\bMLFLOW_TRACKING_(PASSWORD|TOKEN)\s*[=:]",
                    r"-----BEGIN ((RSA|EC|OPENSSH) )?PRIVATE KEY-----",
                ],
                false,
            ),
            // `|re|i`.
            regex_list(
                &[r"stratum\d?\+(tcp|ssl)://", r"\bxmrig\b", r"kubectl\s+exec"],
                true,
            ),
            // A regex without literals: no gate, the alternation decides.
            regex_list(&[r"[0-9]{3}", r"hf_x"], false),
        ]
    }

    #[test]
    fn regex_list_gates_on_literals_and_agrees_with_the_alternation() {
        let lists = secret_lists();
        assert!(lists[0].gate.is_some() && lists[1].gate.is_some());
        assert!(lists[2].gate.is_none());
        let yes = [
            "token hf_abcdefghijklmnopqrstuvwxyz01234567 used",
            "x=AKIAABCDEFGHIJKLMNOP;",
            "Secret_Access_Key = abcd",
            "aws_\u{17f}ecret_access_key=abcd",
            "https://alice:pw@mlflow.example",
            "MLFLOW_TRACKING_PASSWORD=pw",
            "-----BEGIN EC PRIVATE KEY-----",
        ];
        for t in yes {
            assert!(lists[0].is_match(t), "{t}");
        }
        for t in [
            "https://mlflow.example/api",
            "hf_short",
            "akiaabcdefghijklmnop",
            "",
        ] {
            assert!(!lists[0].is_match(t), "{t}");
        }
        assert!(lists[1].is_match("pool STRATUM+TCP://x"));
        // `(?i)s` matches the long s, which folding leaves as it is: the
        // gate has the literals of the pattern with its flag (`tratum`).
        assert!(lists[1].is_match("pool \u{17f}tratum+tcp://x"));
        assert!(lists[1].is_match("run XMRIG"));
        assert!(lists[1].is_match("kubectl   EXEC"));
        assert!(!lists[1].is_match("xmrigger"));
    }

    proptest::proptest! {
        /// Texts made of the literals' pieces, their case and Unicode
        /// variants: the gated list says what its alternation says.
        #[test]
        fn gated_regex_lists_agree_with_their_alternation(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "hf_", "abcdefghij", "KLMNOPQRST", "0123456789", "AKIA", "asia", "Secret",
                "\u{17f}ecret", "_access_", "KEY", "\u{212a}ey", "=", " ", "://", "alice:pw@",
                "host", "MLFLOW_TRACKING_", "TOKEN", "-----BEGIN ", "EC ", "PRIVATE KEY-----",
                "stratum", "+tcp", "://", "xmrig", "XMRIG", "kubectl", "exec", "%3D", "\"", "\n",
                "é", "İ", "\u{3a3}", "\u{17f}", "tratum", "\u{212a}", "ubectl",
            ]), 0..12)
        ) {
            let t: String = parts.concat();
            for list in secret_lists() {
                proptest::prop_assert_eq!(list.is_match(&t), list.any.is_match(&t), "{:?}", t);
            }
        }
    }

    #[test]
    fn gate_literals_shorten_long_lists_to_what_each_literal_contains() {
        let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            gate_literals(v(&["akia", "asia"])),
            Some(v(&["akia", "asia"]))
        );
        let keys = v(&[
            "-----begin rsa private key-----",
            "-----begin ec private key-----",
            "-----begin private key-----",
            "-----begin dsa private key-----",
            "-----begin pgp private key block-----",
        ]);
        assert_eq!(gate_literals(keys), Some(v(&["-----begin "])));
        assert_eq!(
            gate_literals(v(&["abcx", "abdx", "xyz1", "xyz2", "éèa"])),
            Some(v(&["abc", "abd", "xyz", "éè"]))
        );
        let many: Vec<String> = (0..20).map(|i| format!("{i:03}zz")).collect();
        assert_eq!(gate_literals(many), None);
        assert_eq!(gate_literals(Vec::new()), None);
    }
}
