//! Which rules an event can possibly match, found without evaluating them.
//!
//! For every rule the compiler derives a set of *triggers*: (field,
//! literal) pairs of which at least one must occur in the event for the
//! rule to match (a `contains`/`startswith`/`endswith`/wildcard value needs
//! its longest literal run in the field; an exact value needs the whole
//! field equal to it). Literals of all rules are gathered per field into
//! one Aho-Corasick automaton, exact values into one hash table, so an
//! event costs one pass per field it has, whatever the number of rules,
//! and only the rules whose trigger fired are evaluated in full.
//!
//! Where a value has no literal (a numeric comparison, a CIDR, `*`, a
//! regex without required literals), the field's presence is the trigger:
//! every matcher but `null` needs the field to have a value. A rule that
//! can match without any literal (a condition that holds by negation,
//! `null`, `exists: false`) is triggered by the presence of any of its
//! fields when it does not match an event that has none of them (most
//! negated filters of other log sources), and is otherwise evaluated on
//! every event. Keyword
//! searches trigger on any text field of the event; regexes on the
//! literals every match contains (from `regex-syntax`). A long text is
//! searched for a set of more than 64 literals (the keywords of the whole
//! SigmaHQ corpus) by the hashed-prefix sieve (`sieve.rs`), for fewer by Teddy then the
//! automaton.
//! Matching is case-insensitive here whatever the rule says: triggers are
//! a necessary condition, the rule itself decides. One exception: a plain
//! keyword list (case-insensitive substrings of at most 16 bytes, not
//! `'|all'`) holds exactly when one of its literals occurs, so when the
//! keyword search found one, the rule is told that this search holds and
//! does not search the texts again.

use std::collections::{BTreeMap, HashMap};

/// Tables looked up per event (by texts of the event): foldhash, several
/// times faster than SipHash on short keys. Their keys come from rules,
/// not from events, and the hasher is still seeded per process.
type FastMap<K, V> = foldhash::HashMap<K, V>;

use schema::{Event, FieldKey, Value};

use crate::condition::Cond;
use crate::dense::Dense;
use crate::matcher::{Cmp, Combine, FieldRef, ItemKind, Search, ValueMatcher};
use crate::pattern::{StrMatch, fold};
use crate::rule::Detection;
use crate::sieve::Sieve;

/// Where a trigger looks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Place {
    Field(String),
    /// Any text value of the event (keywords).
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lit {
    /// The whole (folded) value.
    Exact(String),
    /// Somewhere in the (folded) value.
    Sub(String),
    /// The value read as a number (bits of the `f64`), as `Num` compares.
    Num(u64),
    /// Any value at all: the field is present.
    Present,
}

type Triggers = Vec<(Place, Lit)>;

/// The rules each literal of one place triggers, by kind.
#[derive(Default)]
struct Lits {
    exact: FastMap<String, Vec<u32>>,
    subs: HashMap<String, Vec<u32>>,
    nums: FastMap<u64, Vec<u32>>,
    present: Vec<u32>,
}

fn add(v: &mut Vec<u32>, r: u32) {
    if v.last() != Some(&r) {
        v.push(r);
    }
}

/// Triggers of a condition: `None` when it can hold without any of them.
fn cond_triggers(c: &Cond, det: &Detection) -> Option<Triggers> {
    match c {
        Cond::Search(i) => search_triggers(&det.searches[*i]),
        Cond::Not(_) => None,
        Cond::And(cs) => best(cs.iter().map(|c| cond_triggers(c, det))),
        Cond::Or(cs) => union(cs.iter().map(|c| cond_triggers(c, det))),
        Cond::AtLeast(n, set) if *n >= set.len() => {
            best(set.iter().map(|i| search_triggers(&det.searches[*i])))
        }
        Cond::AtLeast(_, set) => union(set.iter().map(|i| search_triggers(&det.searches[*i]))),
    }
}

fn search_triggers(s: &Search) -> Option<Triggers> {
    match s {
        Search::And(items) => best(items.iter().map(|it| {
            let place = || Place::Field(it.field.name.clone());
            match &it.kind {
                ItemKind::Exists(true) => Some(vec![(place(), Lit::Present)]),
                ItemKind::Exists(false) => None,
                // Different from all of them: still a value.
                ItemKind::Values(Combine::None, _) => Some(vec![(place(), Lit::Present)]),
                ItemKind::Values(Combine::All, ms) => {
                    best(ms.iter().map(|m| value_triggers(place(), m)))
                }
                ItemKind::Values(Combine::Any, ms) => {
                    union(ms.iter().map(|m| value_triggers(place(), m)))
                }
            }
        })),
        Search::Or(list) => union(list.iter().map(search_triggers)),
        Search::All(list) => best(list.iter().map(search_triggers)),
        Search::Keywords(k) => {
            let per = k.values.iter().map(|m| value_triggers(Place::Any, m));
            if k.all { best(per) } else { union(per) }
        }
    }
}

/// Triggers of a rule that can hold by negation (`not`, `null`,
/// `exists: false`), so has no literal to wait for: when it does not hold
/// on an event without any field, it cannot hold on an event that lacks
/// all the fields it reads (its searches see the same nothing), so one of
/// them must be present. `None` when it reads the event's text (keywords)
/// or holds on the empty event: then it is evaluated on every event.
fn absent_triggers(det: &Detection) -> Option<Triggers> {
    let mut fields = Vec::new();
    if !detection_fields(det, &mut fields) || fields.is_empty() {
        return None;
    }
    if det.matches(&Event::new()) {
        return None;
    }
    fields.sort();
    fields.dedup();
    Some(
        fields
            .into_iter()
            .map(|f| (Place::Field(f), Lit::Present))
            .collect(),
    )
}

/// Adds the fields a detection (its filters included) reads to `out`;
/// false when it also reads anything else (keywords read the event's text).
fn detection_fields(det: &Detection, out: &mut Vec<String>) -> bool {
    det.searches.iter().all(|s| search_fields(s, out))
        && det.filters.iter().all(|f| detection_fields(f, out))
}

fn search_fields(s: &Search, out: &mut Vec<String>) -> bool {
    match s {
        Search::And(items) => {
            for it in items {
                out.push(it.field.name.clone());
                if let ItemKind::Values(_, ms) = &it.kind {
                    for m in ms {
                        if let ValueMatcher::FieldRef { other, .. } = m {
                            out.push(other.name.clone());
                        }
                    }
                }
            }
            true
        }
        Search::Or(list) | Search::All(list) => list.iter().all(|s| search_fields(s, out)),
        Search::Keywords(_) => false,
    }
}

/// ECS fields with a few values that most events carry: a trigger on one
/// of them lets most events through, so another part of the rule is
/// preferred.
const COMMON_FIELDS: &[&str] = &[
    "event.outcome",
    "event.kind",
    "event.category",
    "event.type",
    "event.module",
    "event.dataset",
    "mlops.component",
    "http.request.method",
    "http.version",
    "log.level",
    "cloud.provider",
    "orchestrator.type",
    "network.protocol",
    "network.transport",
];

/// Longest literal searched: a longer one is searched by its first
/// `SUB_MAX` bytes (a necessary condition, rarely weaker in practice: the
/// rule decides). This keeps the automata small, and their walk can cut a
/// long text into segments that overlap by a pattern's length.
const SUB_MAX: usize = 16;
/// Shortest literal worth indexing: shorter ones match almost everything.
const MIN_LITERAL: usize = 2;
/// Most literals taken from one regex.
const MAX_REGEX_LITERALS: usize = 64;

/// What must occur for one value matcher to match: its literal, else the
/// field's presence. Keywords (`Place::Any`) have no presence to fall
/// back on.
fn value_triggers(place: Place, m: &ValueMatcher) -> Option<Triggers> {
    let present = |place: Place| match place {
        Place::Field(_) => Some(vec![(place, Lit::Present)]),
        Place::Any => None,
    };
    match m {
        ValueMatcher::Null => None,
        ValueMatcher::Str(sm) => {
            let lit = match &sm.m {
                StrMatch::Exact(s) if matches!(place, Place::Field(_)) => {
                    Some(Lit::Exact(fold(s).into_owned()))
                }
                StrMatch::Any => None,
                _ => sm
                    .required_literal()
                    .filter(|l| l.len() >= MIN_LITERAL)
                    .map(|l| Lit::Sub(fold(l).into_owned())),
            };
            match lit {
                Some(l) => Some(vec![(place, l)]),
                None => present(place),
            }
        }
        ValueMatcher::Num(Cmp::Eq, x) if matches!(place, Place::Field(_)) => {
            Some(vec![(place, Lit::Num(x.to_bits()))])
        }
        ValueMatcher::Regexes(list) => union(
            list.each
                .iter()
                .map(|re| value_triggers(place.clone(), &ValueMatcher::Regex(re.clone()))),
        ),
        ValueMatcher::Regex(re) => match regex_literals(re.as_str()) {
            Some(lits) => Some(
                lits.into_iter()
                    .map(|l| (place.clone(), Lit::Sub(l)))
                    .collect(),
            ),
            None => present(place),
        },
        _ => present(place),
    }
}

/// Literals (folded) of which every match of the regex contains one, when
/// the regex has such a set.
pub(crate) fn regex_literals(pattern: &str) -> Option<Vec<String>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    // Of the candidate sets, the one whose shortest literal is longest
    // (the first one on a tie).
    let mut best: Option<Vec<String>> = None;
    let shortest = |v: &[String]| v.iter().map(String::len).min().unwrap_or(0);
    let mut consider = |mut set: Vec<String>| {
        set.sort();
        set.dedup();
        if best.as_ref().is_none_or(|b| shortest(&set) > shortest(b)) {
            best = Some(set);
        }
    };
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let mut ex = Extractor::new();
        ex.kind(kind).limit_total(MAX_REGEX_LITERALS);
        let seq = ex.extract(&hir);
        let Some(lits) = seq.literals() else { continue };
        if lits.is_empty() || lits.len() > MAX_REGEX_LITERALS {
            continue;
        }
        let mut out: Vec<String> = Vec::with_capacity(lits.len());
        for l in lits {
            match std::str::from_utf8(l.as_bytes()) {
                Ok(t) if t.len() >= MIN_LITERAL => out.push(fold(t).into_owned()),
                _ => {
                    out.clear();
                    break;
                }
            }
        }
        if !out.is_empty() {
            consider(out);
        }
    }
    // Literals inside the regex: `(^|[^a-z])hf_[A-Za-z0-9]{34}` has no
    // literal prefix or suffix, but every match contains `hf_`.
    if let Some(inner) = inner_literals(&hir) {
        consider(inner);
    }
    best
}

/// A character class that stands for one character whatever its case
/// (`[Kk]`, or `k` under `(?i)`): that character, folded.
fn class_char(class: &regex_syntax::hir::Class) -> Option<String> {
    use regex_syntax::hir::Class;
    let Class::Unicode(u) = class else {
        return None;
    };
    let mut folded: Option<String> = None;
    let mut n = 0;
    for r in u.iter() {
        for c in r.start()..=r.end() {
            n += 1;
            if n > 4 {
                return None;
            }
            let f: String = c.to_lowercase().collect();
            match &folded {
                None => folded = Some(f),
                Some(prev) if *prev == f => {}
                Some(_) => return None,
            }
        }
    }
    folded
}

/// Literals (folded) of which every match of `hir` contains one, found
/// anywhere in the expression: a concatenation needs each of its parts
/// (the best part is taken, adjacent characters joined into one
/// literal), an alternation one of its branches.
fn inner_literals(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    use regex_syntax::hir::HirKind;
    let strength = |v: &[String]| {
        (
            v.iter().map(String::len).min().unwrap_or(0),
            std::cmp::Reverse(v.len()),
        )
    };
    match hir.kind() {
        HirKind::Literal(l) => {
            let t = std::str::from_utf8(&l.0).ok()?;
            (t.len() >= MIN_LITERAL).then(|| vec![fold(t).into_owned()])
        }
        HirKind::Class(c) => class_char(c)
            .filter(|t| t.len() >= MIN_LITERAL)
            .map(|t| vec![t]),
        HirKind::Capture(c) => inner_literals(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => inner_literals(&r.sub),
        HirKind::Alternation(branches) => {
            let mut out = Vec::new();
            for b in branches {
                out.extend(inner_literals(b)?);
                if out.len() > MAX_REGEX_LITERALS {
                    return None;
                }
            }
            Some(out)
        }
        HirKind::Concat(parts) => {
            let mut candidates: Vec<Vec<String>> = Vec::new();
            let mut run = String::new();
            let flush = |run: &mut String, candidates: &mut Vec<Vec<String>>| {
                if run.len() >= MIN_LITERAL {
                    candidates.push(vec![std::mem::take(run)]);
                }
                run.clear();
            };
            for p in parts {
                match p.kind() {
                    HirKind::Literal(l) => match std::str::from_utf8(&l.0) {
                        Ok(t) => run.push_str(&fold(t)),
                        Err(_) => flush(&mut run, &mut candidates),
                    },
                    HirKind::Class(c) => match class_char(c) {
                        Some(t) => run.push_str(&t),
                        None => flush(&mut run, &mut candidates),
                    },
                    // Zero-width: the text on both sides is contiguous.
                    HirKind::Look(_) | HirKind::Empty => {}
                    _ => {
                        flush(&mut run, &mut candidates);
                        if let Some(set) = inner_literals(p) {
                            candidates.push(set);
                        }
                    }
                }
            }
            flush(&mut run, &mut candidates);
            candidates.into_iter().max_by_key(|c| strength(c))
        }
        _ => None,
    }
}

/// All alternatives must have triggers; the union is necessary.
fn union(parts: impl Iterator<Item = Option<Triggers>>) -> Option<Triggers> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    (!out.is_empty()).then_some(out)
}

/// Any one part's triggers are necessary: take the most selective. A set
/// is as weak as its weakest alternative (`GET`, `200` and presence are
/// weak; long literals are strong); ties go to the set with fewer
/// alternatives.
fn best(parts: impl Iterator<Item = Option<Triggers>>) -> Option<Triggers> {
    let strength = |p: &Place, l: &Lit| match l {
        // Any value of a field with a handful of values is common, however
        // long: `event.outcome: success` is on most events.
        _ if matches!(p, Place::Field(f) if COMMON_FIELDS.contains(&f.as_str())) => 1,
        Lit::Exact(s) => s.len() + 2,
        Lit::Sub(s) => s.len(),
        Lit::Num(_) => 3,
        Lit::Present => 0,
    };
    parts.flatten().filter(|t| !t.is_empty()).max_by_key(|t| {
        let weakest = t.iter().map(|(p, l)| strength(p, l)).min().unwrap_or(0);
        (weakest, std::cmp::Reverse(t.len()))
    })
}

/// Literals of one place, compiled.
#[derive(Debug)]
struct Index {
    field: Option<FieldRef>,
    present: Vec<u32>,
    nums: FastMap<u64, Vec<u32>>,
    exact: FastMap<String, Vec<u32>>,
    /// Every occurrence of the substring patterns, with their rules.
    subs: Option<Dense>,
    /// For small pattern sets (Teddy's 64 at most): a SIMD search of the
    /// ASCII-lower-cased text for the leftmost occurrence of any pattern.
    /// Most texts hold none and skip the automaton, whose walk costs about
    /// 10 instructions a byte, each step waiting on the previous one's
    /// memory load (against about 2 instructions a byte for this);
    /// otherwise the automaton starts at that occurrence, as no pattern
    /// occurs before it. Larger sets cut into several Teddy searches of 64
    /// cost more than the automaton (measured: 9 parts for 548 keywords
    /// took twice as long, each part finding candidates to verify in most
    /// texts).
    quick: Option<aho_corasick::packed::Searcher>,
    /// For larger pattern sets, the search of long texts (see
    /// [`crate::sieve`]). With the 522 keyword literals of the SigmaHQ
    /// corpus, the all-rules benchmark went from 760-800 to about 630 ns an
    /// event with it (AVX2).
    sieve: Option<Sieve>,
}

/// The shortest text searched by [`Index::sieve`] rather than the automaton.
const SIEVE_MIN_TEXT: usize = 32;

/// The most patterns given a [`Index::quick`] search.
const QUICK_MAX_PATTERNS: usize = 64;

/// The quick search of a pattern set, when Teddy (SIMD) can run it: the
/// patterns ASCII-lower-cased, as the text it searches is.
fn quick_searcher(patterns: &[String]) -> Option<aho_corasick::packed::Searcher> {
    if patterns.is_empty() || patterns.len() > QUICK_MAX_PATTERNS {
        return None;
    }
    aho_corasick::packed::Config::new()
        .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
        .only_teddy(true)
        .builder()
        .extend(patterns.iter().map(|p| p.to_ascii_lowercase()))
        .build()
}

impl Index {
    /// Marks the rules of every pattern occurring in `text`, matched
    /// ignoring ASCII case; `lower` is `text` ASCII-lower-cased (same
    /// length, same offsets).
    fn scan_subs(&self, text: &str, lower: &str, mark: &mut impl FnMut(u32)) {
        if let Some(sieve) = &self.sieve
            && text.len() >= SIEVE_MIN_TEXT
        {
            sieve.scan(text.as_bytes(), mark);
        } else if let Some(dense) = &self.subs {
            let start = match &self.quick {
                Some(q) => match q.find(lower) {
                    Some(m) => m.start(),
                    None => return,
                },
                None => 0,
            };
            dense.scan(&text.as_bytes()[start..], mark);
        }
    }

    fn scan_number(&self, v: &Value, mark: &mut impl FnMut(u32)) {
        if self.nums.is_empty() {
            return;
        }
        let n = match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        // -0.0 and 0.0 compare equal: index both by 0.0.
        if let Some(n) = n.map(|n| if n == 0.0 { 0.0 } else { n })
            && let Some(rules) = self.nums.get(&n.to_bits())
        {
            rules.iter().for_each(|r| mark(*r));
        }
    }
}

/// The compiled prefilter of a rule set.
#[derive(Debug, Default)]
pub struct Prefilter {
    /// Rules evaluated on every event.
    always: Vec<u32>,
    indexes: Vec<Index>,
    by_id: Vec<u32>,
    by_name: FastMap<String, u32>,
    /// Indexes of paths inside stored trees, by every proper prefix of the path.
    tree_roots: FastMap<String, Vec<u32>>,
    any: Option<u32>,
    /// Per rule: the keyword search (its index in the rule's searches) that
    /// is known to hold when the rule was marked by a keyword literal
    /// ([`proven_keyword_search`]), else `NONE`.
    proven: Vec<u32>,
    rules: usize,
}

const NONE: u32 = u32::MAX;

/// Reusable per-stream memory of the prefilter.
#[derive(Debug, Default)]
pub struct Scratch {
    stamp: Vec<u32>,
    /// Per rule: the epoch of the last event on which a keyword literal
    /// marked it.
    by_keyword: Vec<u32>,
    epoch: u32,
    candidates: Vec<u32>,
    folded: String,
    /// Per distinct route: 0 not tested for this event, 1 no, 2 yes
    /// (cleared per event by the engine).
    pub(crate) routes: Vec<u8>,
    /// Views of the engine `views_of` by log source key (see
    /// `Engine::eval_with`), and the key being built.
    pub(crate) views: FastMap<Box<[u8]>, Option<std::sync::Arc<Prefilter>>>,
    pub(crate) views_of: u64,
    pub(crate) view_key: Vec<u8>,
    /// The last key looked up, and its view.
    pub(crate) last_view: Option<(Vec<u8>, Option<std::sync::Arc<Prefilter>>)>,
}

impl Prefilter {
    /// Builds the prefilter of `detections` (rule index = position; `None`:
    /// a rule that never runs).
    pub fn build<'a>(detections: impl Iterator<Item = Option<&'a Detection>>) -> Prefilter {
        let mut per_place: HashMap<Place, Lits> = HashMap::new();
        let mut always = Vec::new();
        let mut proven = Vec::new();
        let mut rules = 0;
        for (i, det) in detections.enumerate() {
            rules += 1;
            proven.push(NONE);
            let Some(det) = det else { continue };
            let t = union(det.conditions.iter().map(|c| cond_triggers(c, det)))
                .or_else(|| absent_triggers(det));
            match t {
                None => always.push(i as u32),
                Some(t) => {
                    let r = i as u32;
                    if let Some(s) = proven_keyword_search(det, &t) {
                        proven[i] = s as u32;
                    }
                    for (place, lit) in t {
                        let l = per_place.entry(place).or_default();
                        match lit {
                            Lit::Exact(s) => add(l.exact.entry(s).or_default(), r),
                            Lit::Sub(s) => add(l.subs.entry(s).or_default(), r),
                            Lit::Num(bits) => {
                                let x = f64::from_bits(bits);
                                let key = if x == 0.0 { 0.0f64.to_bits() } else { bits };
                                add(l.nums.entry(key).or_default(), r)
                            }
                            Lit::Present => add(&mut l.present, r),
                        }
                    }
                }
            }
        }
        let mut p = Prefilter {
            always,
            proven,
            by_id: vec![NONE; schema::field::registry().len()],
            rules,
            ..Prefilter::default()
        };
        let mut places: Vec<(Place, Lits)> = per_place.into_iter().collect();
        places.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
        for (place, lits) in places {
            let idx = p.indexes.len() as u32;
            let Lits {
                exact,
                subs,
                nums,
                present,
            } = lits;
            // Long literals are searched by their first SUB_MAX bytes.
            let mut cut: BTreeMap<String, Vec<u32>> = BTreeMap::new();
            for (pattern, rules) in subs {
                let mut end = pattern.len().min(SUB_MAX);
                while !pattern.is_char_boundary(end) {
                    end -= 1;
                }
                cut.entry(pattern[..end].to_string())
                    .or_default()
                    .extend(rules);
            }
            let (patterns, sub_rules): (Vec<String>, Vec<Vec<u32>>) = cut
                .into_iter()
                .map(|(p, mut rules)| {
                    rules.sort_unstable();
                    rules.dedup();
                    (p, rules)
                })
                .unzip();
            let dense = if patterns.is_empty() {
                None
            } else {
                match Dense::new(&patterns, &sub_rules) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        // Sound without it: its rules run on every event.
                        tracing::warn!(place = ?place, error = %e, "literals not indexed");
                        p.always.extend(sub_rules.iter().flatten());
                        None
                    }
                }
            };
            let field = match &place {
                Place::Field(name) => Some(FieldRef::new(name)),
                Place::Any => None,
            };
            match &place {
                Place::Any => p.any = Some(idx),
                Place::Field(name) => {
                    if let Some(id) = schema::FieldId::lookup(name) {
                        p.by_id[id.index()] = idx;
                    }
                    p.by_name.insert(name.clone(), idx);
                    let mut rest = name.as_str();
                    while let Some(dot) = rest.rfind('.') {
                        rest = &rest[..dot];
                        p.tree_roots.entry(rest.to_string()).or_default().push(idx);
                    }
                }
            }
            let quick = quick_searcher(&patterns);
            let sieve = if quick.is_none() && dense.is_some() && patterns.len() > QUICK_MAX_PATTERNS
            {
                Sieve::new(&patterns, &sub_rules)
            } else {
                None
            };
            p.indexes.push(Index {
                sieve,
                field,
                present,
                nums,
                exact,
                subs: dense,
                quick,
            });
        }
        p.always.sort_unstable();
        p.always.dedup();
        p
    }

    /// Rules evaluated on every event, and rules in total.
    pub fn counts(&self) -> (usize, usize) {
        (self.always.len(), self.rules)
    }

    /// Calls `f` with the index of every rule the event may match, each
    /// once, in increasing order, and the index of a keyword search of the
    /// rule that is known to hold on the event (the prefilter found one of
    /// its literals, which it searches exactly as the search does), so that
    /// it is not searched again.
    pub fn candidates(
        &self,
        ev: &Event,
        scratch: &mut Scratch,
        f: &mut impl FnMut(usize, Option<usize>),
    ) {
        if scratch.stamp.len() < self.rules {
            scratch.stamp.resize(self.rules, 0);
            scratch.by_keyword.resize(self.rules, 0);
        }
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.stamp.iter_mut().for_each(|s| *s = 0);
            scratch.by_keyword.iter_mut().for_each(|s| *s = 0);
            scratch.epoch = 1;
        }
        let epoch = scratch.epoch;
        scratch.candidates.clear();
        let stamp = &mut scratch.stamp;
        let by_keyword = &mut scratch.by_keyword;
        let cands = &mut scratch.candidates;
        let mut mark = |r: u32| {
            let s = &mut stamp[r as usize];
            if *s != epoch {
                *s = epoch;
                cands.push(r);
            }
        };
        let folded = &mut scratch.folded;
        for (key, value) in ev.iter() {
            let idx = match key {
                FieldKey::Known(id) => self.by_id[id.index()],
                FieldKey::Custom(name) => self.by_name.get(name.as_str()).copied().unwrap_or(NONE),
            };
            if idx != NONE {
                scan_value(&self.indexes[idx as usize], value, folded, &mut mark);
            }
            if matches!(value, Value::Object(_) | Value::Json(_) | Value::Array(_))
                && let Some(under) = self.tree_roots.get(key.name())
            {
                for &i in under {
                    let index = &self.indexes[i as usize];
                    if let Some(field) = &index.field {
                        field.visit(ev, &mut |v| {
                            index.present.iter().for_each(|r| mark(*r));
                            scan_leaf(index, v, folded, &mut mark);
                            false
                        });
                    }
                }
            }
        }
        if let Some(any) = self.any {
            let index = &self.indexes[any as usize];
            crate::matcher::keyword_texts(ev, &mut |t| {
                scan_text(index, t, folded, &mut |r| {
                    by_keyword[r as usize] = epoch;
                    mark(r)
                });
                false
            });
        }
        for &r in &self.always {
            mark(r);
        }
        cands.sort_unstable();
        for &r in cands.iter() {
            let s = self.proven[r as usize];
            let known = (s != NONE && by_keyword[r as usize] == epoch).then_some(s as usize);
            f(r as usize, known);
        }
    }
}

fn scan_leaf(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    index.scan_number(v, mark);
    if let Some(text) = v.to_text() {
        scan_text(index, &text, folded, mark);
    }
}

fn scan_text(index: &Index, text: &str, folded: &mut String, mark: &mut impl FnMut(u32)) {
    if text.is_ascii() {
        // ASCII: the automaton ignores ASCII case itself (the same as
        // folding); the exact table and the quick search take the
        // lower-cased text.
        let lowered = !index.exact.is_empty() || (index.quick.is_some() && index.subs.is_some());
        if lowered {
            folded.clear();
            folded.push_str(text);
            folded.make_ascii_lowercase();
        }
        if !index.exact.is_empty()
            && let Some(rules) = index.exact.get(folded.as_str())
        {
            rules.iter().for_each(|r| mark(*r));
        }
        index.scan_subs(text, if lowered { folded } else { text }, mark);
        return;
    }
    // Otherwise Unicode folding, as the matchers do (`K`, the Kelvin sign,
    // folds to an ASCII `k`).
    *folded = fold(text).into_owned();
    if let Some(rules) = index.exact.get(folded.as_str()) {
        rules.iter().for_each(|r| mark(*r));
    }
    // Folding lower-cases ASCII letters: the folded text is its own
    // lower-cased form.
    index.scan_subs(folded, folded, mark);
}

/// The keyword search of `det` that holds whenever the prefilter marks the
/// rule by a keyword literal of its `triggers`: one whose literals are all
/// searched exactly (not cut to [`SUB_MAX`] bytes, as long as
/// [`MIN_LITERAL`]), and that holds when any of them occurs
/// ([`crate::matcher::Keywords::any_of_literals`]), with every keyword
/// literal of the triggers among its own (another search's literal would
/// prove nothing about this one).
fn proven_keyword_search(det: &Detection, triggers: &Triggers) -> Option<usize> {
    let lits: Vec<&str> = triggers
        .iter()
        .filter_map(|(p, l)| match (p, l) {
            (Place::Any, Lit::Sub(s)) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    if lits.is_empty() {
        return None;
    }
    det.searches.iter().position(|s| {
        let Search::Keywords(k) = s else { return false };
        let Some(own) = k.any_of_literals() else {
            return false;
        };
        own.iter()
            .all(|o| (MIN_LITERAL..=SUB_MAX).contains(&o.len()) && fold(o) == *o)
            && lits.iter().all(|l| own.contains(l))
    })
}

/// The values of one field (arrays flattened).
fn scan_value(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    index.present.iter().for_each(|r| mark(*r));
    scan_items(index, v, folded, mark);
}

fn scan_items(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| scan_items(index, i, folded, mark)),
        Value::Json(doc) => scan_items(index, doc.tree(), folded, mark),
        Value::Object(_) | Value::Null => {}
        other => scan_leaf(index, other, folded, mark),
    }
}

#[cfg(test)]
mod tests {
    use super::{Index, quick_searcher, regex_literals, scan_text};
    use crate::dense::Dense;

    fn index(patterns: &[&str], quick: bool) -> Index {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Index {
            field: None,
            present: Vec::new(),
            nums: Default::default(),
            exact: [("ab".to_string(), vec![1000])].into_iter().collect(),
            subs: Some(
                Dense::new(
                    &patterns,
                    &(0..patterns.len() as u32)
                        .map(|i| vec![i])
                        .collect::<Vec<_>>(),
                )
                .unwrap(),
            ),
            quick: if quick {
                Some(quick_searcher(&patterns).expect("Teddy builds on this machine"))
            } else {
                None
            },
            sieve: None,
        }
    }

    fn marks(index: &Index, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut folded = String::new();
        scan_text(index, text, &mut folded, &mut |r| out.push(r));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The quick search only skips texts and prefixes where no pattern
    /// occurs: on every text, the rules marked are those of the
    /// automaton alone. Texts are random runs of pattern pieces in mixed
    /// case, with non-ASCII letters (`ſ` and the Kelvin sign fold to
    /// ASCII letters; `é` does not), so patterns overlap, repeat and sit
    /// at both ends; fails when the search starts past an occurrence or
    /// misses one in another case.
    #[test]
    fn quick_search_marks_what_the_automaton_marks() {
        let patterns = [
            "hf_",
            "://",
            "secre",
            "ſecre",
            "akia",
            "asia",
            "sia",
            "ab",
            "a",
            "kkk",
            "é:",
            "-----begin rsa private key-----",
        ];
        let (slow, quick) = (index(&patterns, false), index(&patterns, true));
        let pieces = [
            "hf",
            "_",
            ":",
            "//",
            "/",
            "SeCrE",
            "secr",
            "e",
            "ſ",
            "AKIA",
            "ASI",
            "A",
            "b",
            "B",
            "K",
            "\u{212a}",
            "k",
            "é",
            "É",
            " ",
            "x",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----begin",
            "\n",
        ];
        let mut next = crate::testutil::indexes(0x9e37_79b9_7f4a_7c15u64);
        let mut hits = 0;
        for _ in 0..20_000 {
            let len = next(12);
            let text: String = (0..len).map(|_| pieces[next(pieces.len())]).collect();
            let want = marks(&slow, &text);
            hits += usize::from(!want.is_empty());
            assert_eq!(marks(&quick, &text), want, "text {text:?}");
        }
        // The texts do exercise matches (not only the empty case).
        assert!(hits > 10_000, "{hits}");
    }

    fn lits(p: &str) -> Option<Vec<String>> {
        regex_literals(p)
    }

    #[test]
    fn literals_inside_a_regex_are_triggers() {
        // No literal prefix or suffix, but `hf_` is in every match.
        assert_eq!(
            lits(r"(^|[^A-Za-z0-9_]|%[0-9A-Fa-f]{2})hf_[A-Za-z0-9]{34}([^A-Za-z0-9]|$)"),
            Some(vec!["hf_".to_string()])
        );
        assert_eq!(
            lits(r"(^|[^A-Za-z0-9])(AKIA|ASIA)[0-9A-Z]{16}([^A-Za-z0-9]|$)"),
            Some(vec!["akia".to_string(), "asia".to_string()])
        );
        // Case-insensitive letters are classes in the syntax tree; they
        // still make a literal (`k` also stands for the Kelvin sign, which
        // folds to `k`), and optional parts split it. `s` does not: `ſ`
        // matches it under (?i) but folds to itself, as texts are folded.
        assert_eq!(lits(r"x+(?i)token_?key"), Some(vec!["token".to_string()]));
        assert_eq!(lits(r"\d(?i)kkk\d"), Some(vec!["kkk".to_string()]));
        assert_eq!(lits(r"\d(?i)as\d"), None);
        // Zero-width assertions do not split a literal.
        assert_eq!(
            lits(r"\bpassword\b=\S+"),
            Some(vec!["password=".to_string()])
        );
        // Nothing required: an optional literal, or single characters.
        assert_eq!(lits(r"[a-z]+(foo)?\d"), None);
        assert_eq!(lits(r"a.b"), None);
        // An alternation needs a literal in every branch.
        assert_eq!(lits(r"[a-z]+(foo|[0-9]+)[a-z]+"), None);
    }
}
