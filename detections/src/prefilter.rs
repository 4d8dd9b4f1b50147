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
//! A rule without such a set (a condition that can hold by negation, a
//! regex, a numeric comparison, `null`, `exists`) is evaluated on every
//! event. Keyword searches trigger on any text field of the event.
//! Matching is case-insensitive here whatever the rule says: triggers are
//! a necessary condition, the rule itself decides.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use schema::{Event, FieldKey, Value};

use crate::condition::Cond;
use crate::matcher::{Combine, FieldRef, ItemKind, Search, ValueMatcher};
use crate::pattern::{StrMatch, fold};
use crate::rule::Detection;

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
}

type Triggers = Vec<(Place, Lit)>;

/// Literal -> rules, for exact values and for substrings of one place.
type Lits = HashMap<String, Vec<u32>>;

/// Triggers of a condition: `None` when it can hold without any literal.
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
        Search::And(items) => {
            best(items.iter().map(|it| match &it.kind {
                ItemKind::Exists(_) => None,
                ItemKind::Values(Combine::None, _) => None,
                ItemKind::Values(Combine::All, ms) => best(ms.iter().map(|m| {
                    value_trigger(Place::Field(it.field.name.clone()), m).map(|t| vec![t])
                })),
                ItemKind::Values(Combine::Any, ms) => union(ms.iter().map(|m| {
                    value_trigger(Place::Field(it.field.name.clone()), m).map(|t| vec![t])
                })),
            }))
        }
        Search::Or(list) => union(list.iter().map(search_triggers)),
        Search::All(list) => best(list.iter().map(search_triggers)),
        Search::Keywords(k) => {
            let per = k
                .values
                .iter()
                .map(|m| value_trigger(Place::Any, m).map(|t| vec![t]));
            if k.all { best(per) } else { union(per) }
        }
    }
}

/// Shortest literal worth indexing: shorter ones match almost everything.
const MIN_LITERAL: usize = 2;

fn value_trigger(place: Place, m: &ValueMatcher) -> Option<(Place, Lit)> {
    let ValueMatcher::Str(sm) = m else {
        return None;
    };
    let lit = match &sm.m {
        StrMatch::Exact(s) if matches!(place, Place::Field(_)) => Lit::Exact(fold(s).into_owned()),
        StrMatch::Any => return None,
        _ => {
            let l = sm.required_literal()?;
            if l.len() < MIN_LITERAL {
                return None;
            }
            Lit::Sub(fold(l).into_owned())
        }
    };
    Some((place, lit))
}

/// All alternatives must have triggers; the union is necessary.
fn union(parts: impl Iterator<Item = Option<Triggers>>) -> Option<Triggers> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    (!out.is_empty()).then_some(out)
}

/// Any one part's triggers are necessary: take the most selective.
fn best(parts: impl Iterator<Item = Option<Triggers>>) -> Option<Triggers> {
    parts.flatten().filter(|t| !t.is_empty()).min_by_key(|t| {
        // Fewer alternatives, exact values and long literals first.
        let weak: usize = t
            .iter()
            .map(|(_, l)| match l {
                Lit::Exact(_) => 1,
                Lit::Sub(s) if s.len() >= 6 => 2,
                Lit::Sub(_) => 6,
            })
            .sum();
        weak
    })
}

/// Literals of one place, compiled.
#[derive(Debug)]
struct Index {
    field: Option<FieldRef>,
    exact: HashMap<String, Vec<u32>>,
    subs: Option<AhoCorasick>,
    /// Rules of each substring pattern.
    sub_rules: Vec<Vec<u32>>,
}

impl Index {
    fn scan(&self, text: &str, mark: &mut impl FnMut(u32)) {
        if !self.exact.is_empty()
            && let Some(rules) = self.exact.get(text)
        {
            rules.iter().for_each(|r| mark(*r));
        }
        if let Some(ac) = &self.subs {
            for m in ac.find_overlapping_iter(text) {
                self.sub_rules[m.pattern().as_usize()]
                    .iter()
                    .for_each(|r| mark(*r));
            }
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
    by_name: HashMap<String, u32>,
    /// Indexes of paths inside stored trees, by every proper prefix of the path.
    tree_roots: HashMap<String, Vec<u32>>,
    any: Option<u32>,
    rules: usize,
}

const NONE: u32 = u32::MAX;

/// Reusable per-stream memory of the prefilter.
#[derive(Debug, Default)]
pub struct Scratch {
    stamp: Vec<u32>,
    epoch: u32,
    candidates: Vec<u32>,
    folded: String,
    /// Per distinct route: 0 not tested for this event, 1 no, 2 yes
    /// (cleared per event by the engine).
    pub(crate) routes: Vec<u8>,
}

impl Prefilter {
    /// Builds the prefilter of `detections` (rule index = position).
    pub fn build<'a>(detections: impl Iterator<Item = &'a Detection>) -> Prefilter {
        let mut per_place: HashMap<Place, (Lits, Lits)> = HashMap::new();
        let mut always = Vec::new();
        let mut rules = 0;
        for (i, det) in detections.enumerate() {
            rules += 1;
            let t = union(det.conditions.iter().map(|c| cond_triggers(c, det)));
            match t {
                None => always.push(i as u32),
                Some(t) => {
                    for (place, lit) in t {
                        let (exact, subs) = per_place.entry(place).or_default();
                        let (map, key) = match lit {
                            Lit::Exact(s) => (&mut *exact, s),
                            Lit::Sub(s) => (&mut *subs, s),
                        };
                        let v = map.entry(key).or_default();
                        if v.last() != Some(&(i as u32)) {
                            v.push(i as u32);
                        }
                    }
                }
            }
        }
        let mut p = Prefilter {
            always,
            by_id: vec![NONE; schema::field::registry().len()],
            rules,
            ..Prefilter::default()
        };
        let mut places: Vec<(Place, (Lits, Lits))> = per_place.into_iter().collect();
        places.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
        for (place, (exact, subs)) in places {
            let idx = p.indexes.len() as u32;
            let (patterns, sub_rules): (Vec<String>, Vec<Vec<u32>>) = subs.into_iter().unzip();
            let ac = (!patterns.is_empty()).then(|| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .expect("literal patterns build an automaton")
            });
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
            p.indexes.push(Index {
                field,
                exact,
                subs: ac,
                sub_rules,
            });
        }
        p
    }

    /// Rules evaluated on every event, and rules in total.
    pub fn counts(&self) -> (usize, usize) {
        (self.always.len(), self.rules)
    }

    /// Calls `f` with the index of every rule the event may match, each
    /// once, in increasing order.
    pub fn candidates(&self, ev: &Event, scratch: &mut Scratch, f: &mut impl FnMut(usize)) {
        if scratch.stamp.len() < self.rules {
            scratch.stamp.resize(self.rules, 0);
        }
        scratch.epoch = scratch.epoch.wrapping_add(1);
        if scratch.epoch == 0 {
            scratch.stamp.iter_mut().for_each(|s| *s = 0);
            scratch.epoch = 1;
        }
        let epoch = scratch.epoch;
        scratch.candidates.clear();
        let stamp = &mut scratch.stamp;
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
                            scan_leaf(index, v, folded, &mut mark);
                            false
                        });
                    }
                }
            }
            if let Some(any) = self.any {
                scan_all(&self.indexes[any as usize], value, folded, &mut mark);
            }
        }
        for &r in &self.always {
            mark(r);
        }
        cands.sort_unstable();
        for &r in cands.iter() {
            f(r as usize);
        }
    }
}

fn scan_leaf(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    let Some(text) = v.to_text() else { return };
    let t = fold(&text);
    match t {
        std::borrow::Cow::Borrowed(b) => index.scan(b, mark),
        std::borrow::Cow::Owned(o) => {
            *folded = o;
            index.scan(folded, mark);
        }
    }
}

fn scan_value(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| scan_value(index, i, folded, mark)),
        Value::Json(doc) => scan_value(index, doc.tree(), folded, mark),
        Value::Object(_) | Value::Null => {}
        other => scan_leaf(index, other, folded, mark),
    }
}

fn scan_all(index: &Index, v: &Value, folded: &mut String, mark: &mut impl FnMut(u32)) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| scan_all(index, i, folded, mark)),
        Value::Object(members) => members
            .iter()
            .for_each(|(_, c)| scan_all(index, c, folded, mark)),
        Value::Json(doc) => scan_all(index, doc.tree(), folded, mark),
        Value::Null => {}
        other => scan_leaf(index, other, folded, mark),
    }
}
