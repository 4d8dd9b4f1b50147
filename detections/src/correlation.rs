//! Correlation rules (Sigma correlation rules specification 2.x): counts,
//! distinct values, metrics and temporal proximity of events matched by
//! other rules, per group, in a sliding time window.
//!
//! Semantics this engine follows where the specification leaves a choice:
//! - the window slides: each event looks back `timespan` from its own
//!   `@timestamp` (events without one take the last time seen);
//! - when a correlation matches, its group's state is cleared, so one
//!   burst gives one match rather than one per further event;
//! - `value_sum`, `value_avg`, `value_min`, `value_max` and `value_median`
//!   aggregate the numeric values of `field`; `value_percentile` is the
//!   share (0-100) of the group's events in the window whose `field` has
//!   the value of the current event (a rarity measure: `lte: 1` is "this
//!   value is at most 1% of what the group did");
//! - `temporal` and `temporal_ordered` also take a boolean condition over
//!   their rules instead of a count (`a and (b or not c)`, pySigma's
//!   extended temporal conditions): it is evaluated on each event over the
//!   rules that matched in the group's window (for `temporal_ordered`, a
//!   rule counts when it matched at or after the listed rules before it
//!   that did); `not` means "did not match in the window so far";
//! - state is bounded: at most `max_groups` groups per correlation (the
//!   least recently updated is evicted, and counted) and `max_entries`
//!   events per group (the oldest dropped, and counted);
//! - each stream (a file, a connection, a request; `mlsoc hunt` puts all
//!   its logs on one timeline, one stream) has its own clock, the newest
//!   event time seen on it. A group expires when it was not updated for a
//!   whole timespan of the clock of the stream that last updated it, so a
//!   stream catching up on old logs keeps its groups while it feeds them,
//!   and the matches of a group fed by one stream do not depend on how
//!   other streams' events were interleaved with its own. Once that
//!   stream has ended (a rotated file, a closed connection, an HEC
//!   request), the newest event time of any stream is the group's clock.
//!   Expiry is decided when the group is next updated; the periodic sweep
//!   that frees idle groups applies the same test and changes no result.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use serde_norway::Value as Y;

use crate::matcher::FieldRef;
use crate::rule::{Level, Problem};

/// The correlation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    EventCount,
    ValueCount,
    Temporal,
    TemporalOrdered,
    ValueSum,
    ValueAvg,
    ValueMin,
    ValueMax,
    ValueMedian,
    ValuePercentile,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "event_count" => Kind::EventCount,
            "value_count" => Kind::ValueCount,
            "temporal" => Kind::Temporal,
            "temporal_ordered" => Kind::TemporalOrdered,
            "value_sum" => Kind::ValueSum,
            "value_avg" => Kind::ValueAvg,
            "value_min" => Kind::ValueMin,
            "value_max" => Kind::ValueMax,
            "value_median" => Kind::ValueMedian,
            "value_percentile" => Kind::ValuePercentile,
            _ => return None,
        })
    }

    fn needs_field(self) -> bool {
        !matches!(
            self,
            Kind::EventCount | Kind::Temporal | Kind::TemporalOrdered
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EventCount => "event_count",
            Kind::ValueCount => "value_count",
            Kind::Temporal => "temporal",
            Kind::TemporalOrdered => "temporal_ordered",
            Kind::ValueSum => "value_sum",
            Kind::ValueAvg => "value_avg",
            Kind::ValueMin => "value_min",
            Kind::ValueMax => "value_max",
            Kind::ValueMedian => "value_median",
            Kind::ValuePercentile => "value_percentile",
        }
    }
}

/// The `condition` map: every given bound must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounds {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
    pub eq: Option<f64>,
    pub neq: Option<f64>,
}

impl Bounds {
    pub fn holds(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
            && self.eq.is_none_or(|b| x == b)
            && self.neq.is_none_or(|b| x != b)
    }

    fn is_empty(&self) -> bool {
        *self == Bounds::default()
    }
}

/// A correlation rule as written.
#[derive(Debug, Clone)]
pub struct Correlation {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub level: Option<Level>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub kind: Kind,
    /// Referenced rules or correlations, by id or name.
    pub rules: Vec<String>,
    pub group_by: Vec<String>,
    /// Window length in nanoseconds.
    pub timespan: i64,
    pub bounds: Bounds,
    /// A temporal correlation's boolean condition over its rules
    /// (`recon_a and (recon_b or not recon_c)`), instead of a count.
    pub expr: Option<Expr>,
    pub field: Option<String>,
    /// alias -> (rule name -> field)
    pub aliases: Vec<(String, Vec<(String, String)>)>,
    pub generate: bool,
}

/// Parses `timespan` (`30s`, `5m`, `1h`, `2d`, `1w`).
pub fn parse_timespan(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1_000_000_000)
}

fn num(v: &Y) -> Option<f64> {
    match v {
        Y::Number(n) => n.as_f64(),
        Y::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a correlation document.
pub fn correlation_from_yaml(doc: &Y) -> Result<Correlation, Problem> {
    let m = crate::rule::meta(doc)?;
    let c = doc
        .get("correlation")
        .filter(|c| c.is_mapping())
        .ok_or_else(|| Problem::at("`correlation` must be a map", "correlation"))?;
    let kind_s = c
        .get("type")
        .and_then(Y::as_str)
        .ok_or_else(|| Problem::at("`correlation.type` is missing", "correlation"))?;
    let kind = Kind::parse(kind_s).ok_or_else(|| {
        Problem::at(
            format!(
                "`type: {kind_s}` is not a correlation type (event_count, value_count, temporal, temporal_ordered, value_sum, value_avg, value_min, value_max, value_median, value_percentile)"
            ),
            "type",
        )
    })?;
    let rules = crate::rule::rule_refs(c, "correlation")?;
    let group_by: Vec<String> = match c.get("group-by") {
        None | Some(Y::Null) => Vec::new(),
        Some(Y::String(s)) => vec![s.clone()],
        Some(Y::Sequence(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| Problem::at("`group-by` must list field names", "group-by"))?,
        Some(_) => return Err(Problem::at("`group-by` must list field names", "group-by")),
    };
    let ts = c
        .get("timespan")
        .and_then(|t| match t {
            Y::String(s) => Some(s.clone()),
            Y::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| Problem::at("`correlation.timespan` is missing", "correlation"))?;
    let timespan = parse_timespan(&ts).ok_or_else(|| {
        Problem::at(
            format!("`timespan: {ts}` is not a number followed by s, m, h, d or w"),
            "timespan",
        )
    })?;
    let mut bounds = Bounds::default();
    let mut field = None;
    let mut expr = None;
    match c.get("condition") {
        None | Some(Y::Null) => {}
        Some(Y::Mapping(map)) => {
            for (k, v) in map {
                let key = k.as_str().unwrap_or("");
                if key == "field" {
                    field = v.as_str().map(str::to_string);
                    if field.is_none() {
                        return Err(Problem::at(
                            "`condition.field` must be a field name",
                            "field",
                        ));
                    }
                    continue;
                }
                let x = num(v).ok_or_else(|| {
                    Problem::at(format!("`condition.{key}` must be a number"), "condition")
                })?;
                let slot = match key {
                    "gt" => &mut bounds.gt,
                    "gte" => &mut bounds.gte,
                    "lt" => &mut bounds.lt,
                    "lte" => &mut bounds.lte,
                    "eq" => &mut bounds.eq,
                    "neq" => &mut bounds.neq,
                    other => {
                        return Err(Problem::at(
                            format!(
                                "`condition.{other}` is not one of gt, gte, lt, lte, eq, neq, field"
                            ),
                            "condition",
                        ));
                    }
                };
                *slot = Some(x);
            }
        }
        Some(Y::String(text)) if matches!(kind, Kind::Temporal | Kind::TemporalOrdered) => {
            expr =
                Some(parse_expr(text, &rules).map_err(|m| {
                    Problem::at(format!("`correlation.condition`: {m}"), "condition")
                })?);
        }
        Some(_) => {
            return Err(Problem::at(
                "`correlation.condition` must be a map (gt, gte, lt, lte, eq, neq, field), or for a temporal correlation a boolean expression of its rules",
                "condition",
            ));
        }
    }
    if bounds.is_empty() && !matches!(kind, Kind::Temporal | Kind::TemporalOrdered) {
        return Err(Problem::at(
            format!(
                "a {} correlation needs a `condition` (gt, gte, lt, lte, eq or neq)",
                kind.as_str()
            ),
            "correlation",
        ));
    }
    if kind.needs_field() && field.is_none() {
        return Err(Problem::at(
            format!("a {} correlation needs `condition.field`", kind.as_str()),
            "condition",
        ));
    }
    let mut aliases = Vec::new();
    if let Some(a) = c.get("aliases") {
        let Y::Mapping(map) = a else {
            return Err(Problem::at("`aliases` must be a map", "aliases"));
        };
        for (alias, per_rule) in map {
            let alias = alias
                .as_str()
                .ok_or_else(|| Problem::at("alias names must be strings", "aliases"))?;
            let Y::Mapping(pr) = per_rule else {
                return Err(Problem::at(
                    format!("alias `{alias}` must map rule names to fields"),
                    alias,
                ));
            };
            let mut fields = Vec::new();
            for (r, f) in pr {
                match (r.as_str(), f.as_str()) {
                    (Some(r), Some(f)) => fields.push((r.to_string(), f.to_string())),
                    _ => {
                        return Err(Problem::at(
                            format!("alias `{alias}` must map rule names to fields"),
                            alias,
                        ));
                    }
                }
            }
            aliases.push((alias.to_string(), fields));
        }
    }
    let generate = match c.get("generate").or_else(|| doc.get("generate")) {
        None | Some(Y::Null) => false,
        Some(Y::Bool(b)) => *b,
        Some(_) => return Err(Problem::at("`generate` must be true or false", "generate")),
    };
    Ok(Correlation {
        title: m.title,
        id: m.id,
        name: m.name,
        description: m.description,
        level: m.level,
        tags: m.tags,
        references: m.references,
        kind,
        rules,
        group_by,
        timespan,
        bounds,
        expr,
        field,
        aliases,
        generate,
    })
}

/// A boolean condition over a temporal correlation's rules (by position in
/// `rules`): pySigma's extended temporal conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Rule(usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// Whether the condition holds when the rules marked in `present`
    /// matched in the window.
    pub fn holds(&self, present: &[bool]) -> bool {
        match self {
            Expr::Rule(i) => present[*i],
            Expr::Not(e) => !e.holds(present),
            Expr::And(es) => es.iter().all(|e| e.holds(present)),
            Expr::Or(es) => es.iter().any(|e| e.holds(present)),
        }
    }
}

/// Parses `a and (b or not c)` (keywords in any case; `not` binds
/// tightest, then `and`, then `or`) over the names in `rules`.
fn parse_expr(text: &str, rules: &[String]) -> Result<Expr, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        if c == '(' || c == ')' {
            tokens.push(c.to_string());
            rest = &rest[1..];
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .unwrap_or(rest.len());
        tokens.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    if tokens.len() > 1024 {
        return Err("the expression is too long".into());
    }
    struct P<'a> {
        t: &'a [String],
        i: usize,
        rules: &'a [String],
        depth: usize,
    }
    impl P<'_> {
        fn peek(&self) -> Option<&str> {
            self.t.get(self.i).map(String::as_str)
        }
        fn kw(&self, k: &str) -> bool {
            self.peek().is_some_and(|t| t.eq_ignore_ascii_case(k))
        }
        fn or(&mut self) -> Result<Expr, String> {
            let mut v = vec![self.and()?];
            while self.kw("or") {
                self.i += 1;
                v.push(self.and()?);
            }
            Ok(if v.len() == 1 {
                v.remove(0)
            } else {
                Expr::Or(v)
            })
        }
        fn and(&mut self) -> Result<Expr, String> {
            let mut v = vec![self.not()?];
            while self.kw("and") {
                self.i += 1;
                v.push(self.not()?);
            }
            Ok(if v.len() == 1 {
                v.remove(0)
            } else {
                Expr::And(v)
            })
        }
        fn not(&mut self) -> Result<Expr, String> {
            if self.kw("not") {
                self.i += 1;
                return Ok(Expr::Not(Box::new(self.not()?)));
            }
            self.atom()
        }
        fn atom(&mut self) -> Result<Expr, String> {
            match self.peek() {
                Some("(") => {
                    self.depth += 1;
                    if self.depth > 64 {
                        return Err("parentheses nested too deep".into());
                    }
                    self.i += 1;
                    let e = self.or()?;
                    if self.peek() != Some(")") {
                        return Err("a `(` is not closed".into());
                    }
                    self.i += 1;
                    self.depth -= 1;
                    Ok(e)
                }
                Some(name)
                    if !["and", "or", "not", ")"]
                        .iter()
                        .any(|k| name.eq_ignore_ascii_case(k)) =>
                {
                    let pos =
                        self.rules.iter().position(|r| r == name).ok_or_else(|| {
                            format!("`{name}` is not one of the correlation's rules")
                        })?;
                    self.i += 1;
                    Ok(Expr::Rule(pos))
                }
                Some(t) => Err(format!("expected a rule name, found `{t}`")),
                None => Err("the expression ends too early".into()),
            }
        }
    }
    let mut p = P {
        t: &tokens,
        i: 0,
        rules,
        depth: 0,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected `{t}`"));
    }
    Ok(e)
}

/// What a correlation reads from an event matched by one of its inputs.
#[derive(Debug, Clone)]
pub(crate) struct InputFields {
    /// One field per `group-by` entry (alias resolved for this input).
    pub group: Vec<FieldRef>,
    pub value: Option<FieldRef>,
}

/// A correlation resolved against the loaded rules.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub def: Correlation,
    /// For each input (in `rules` order): what it is.
    pub(crate) inputs: Vec<Input>,
    pub(crate) fields: Vec<InputFields>,
}

/// An input of a correlation: a detection rule or another correlation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Rule(usize),
    Correlation(usize),
}

/// One event seen by a correlation group.
#[derive(Debug, Clone)]
struct Entry {
    ts: i64,
    input: usize,
    value: Option<String>,
    lines: Lines,
}

/// The input line numbers of an entry: one for a rule match (nearly
/// always), several for a chained correlation; one needs no allocation.
#[derive(Debug, Clone)]
enum Lines {
    One(u64),
    Many(Box<[u64]>),
}

impl Lines {
    fn new(lines: &[u64]) -> Lines {
        match lines {
            [one] => Lines::One(*one),
            more => Lines::Many(more.into()),
        }
    }
}

impl std::ops::Deref for Lines {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        match self {
            Lines::One(one) => std::slice::from_ref(one),
            Lines::Many(more) => more,
        }
    }
}

/// A group's key: the values of the group-by fields, shared by the group
/// table and the recency queue (a clone is a reference count), with the
/// tick of the group's last update. A recency entry whose tick is not its
/// key's is stale: the queue tells without hashing the key (whose strings
/// are cold by the time the entry comes up), and without a table lookup.
#[derive(Debug, Clone)]
struct Key(Arc<KeyData>);

#[derive(Debug)]
struct KeyData {
    values: Box<[String]>,
    /// The values' hash in the group table (computed once: the table
    /// grows, and evicts, without hashing the strings again).
    hash: u64,
    /// Tick of the group's last update; [`GONE`] once it left the table.
    last_update: std::sync::atomic::AtomicU64,
}

/// The tick of a key whose group left the table.
const GONE: u64 = u64::MAX;

impl Key {
    fn new(values: Vec<String>, hash: u64) -> Key {
        Key(Arc::new(KeyData {
            values: values.into_boxed_slice(),
            hash,
            last_update: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    fn last_update(&self) -> u64 {
        self.0
            .last_update
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_last_update(&self, tick: u64) {
        self.0
            .last_update
            .store(tick, std::sync::atomic::Ordering::Relaxed);
    }

    fn values(&self) -> &[String] {
        &self.0.values
    }

    fn hash(&self) -> u64 {
        self.0.hash
    }
}

#[derive(Debug)]
struct Group {
    key: Key,
    entries: VecDeque<Entry>,
    /// Aggregates of the window kept as entries come and go, so that
    /// judging the window after each event costs O(inputs) or O(log n)
    /// instead of a scan of up to `max_entries` entries (a scan made a
    /// busy group cost O(n) per event: quadratic, and an attacker's lever).
    agg: Aggregates,
    /// The clock of the stream that last updated the group (`stream`), at
    /// that update: expiry measures idleness on that clock.
    seen_at: i64,
    stream: u64,
}

#[derive(Debug, Default)]
struct Aggregates {
    /// Entries popped from the front so far: `entries[j]` is the group's
    /// entry number `popped + j`.
    popped: u64,
    /// `value_count`, `value_percentile`: how many entries of the window
    /// carry each value.
    distinct: HashMap<String, u32>,
    /// `temporal`, `temporal_ordered`: per input, the numbers of its
    /// entries in the window, oldest first.
    by_input: Vec<VecDeque<u64>>,
    /// `value_sum`, `value_avg`: the exact sum of the window's integer
    /// values, how many values are numbers, and how many of those are
    /// not integers (then the window is summed again, in order).
    int_sum: i128,
    numbers: usize,
    non_integers: usize,
}

/// A value as `value_sum`/`value_avg` see it.
enum Number {
    Int(i64),
    Other,
}

fn number(v: &str) -> Option<Number> {
    let v = v.trim();
    match v.parse::<i64>() {
        Ok(i) => Some(Number::Int(i)),
        Err(_) => v.parse::<f64>().ok().map(|_| Number::Other),
    }
}

impl Group {
    fn new(key: Key) -> Group {
        Group {
            key,
            entries: VecDeque::new(),
            agg: Aggregates::default(),
            seen_at: i64::MIN,
            stream: 0,
        }
    }

    /// This group's allocations for a new group `key` (an evicted group
    /// makes room for a new one: its buffers are reused, not freed and
    /// allocated again).
    fn recycle(mut self, key: Key) -> Group {
        self.key = key;
        self.clear();
        self
    }

    /// Empties the window (an expired group starts again).
    fn clear(&mut self) {
        self.entries.clear();
        let agg = &mut self.agg;
        agg.popped = 0;
        agg.distinct.clear();
        agg.by_input.iter_mut().for_each(VecDeque::clear);
        agg.int_sum = 0;
        agg.numbers = 0;
        agg.non_integers = 0;
    }

    /// Whether the group sat idle for more than `span` of `clock`, the
    /// clock of the stream that last updated it.
    fn idle(&self, clock: i64, span: i64) -> bool {
        self.seen_at < clock.saturating_sub(span)
    }

    /// Entry number `n`, while it is in the window.
    fn entry(&self, n: u64) -> &Entry {
        &self.entries[(n - self.agg.popped) as usize]
    }

    fn push(&mut self, kind: Kind, e: Entry) {
        let agg = &mut self.agg;
        match kind {
            Kind::ValueCount | Kind::ValuePercentile => {
                if let Some(v) = &e.value {
                    *agg.distinct.entry(v.clone()).or_insert(0) += 1;
                }
            }
            Kind::Temporal | Kind::TemporalOrdered => {
                if agg.by_input.len() <= e.input {
                    agg.by_input.resize_with(e.input + 1, VecDeque::new);
                }
                let n = agg.popped + self.entries.len() as u64;
                agg.by_input[e.input].push_back(n);
            }
            Kind::ValueSum | Kind::ValueAvg => match e.value.as_deref().and_then(number) {
                Some(Number::Int(i)) => {
                    agg.int_sum += i128::from(i);
                    agg.numbers += 1;
                }
                Some(Number::Other) => {
                    agg.numbers += 1;
                    agg.non_integers += 1;
                }
                None => {}
            },
            _ => {}
        }
        self.entries.push_back(e);
    }

    fn pop_front(&mut self, kind: Kind) {
        let Some(e) = self.entries.pop_front() else {
            return;
        };
        let agg = &mut self.agg;
        agg.popped += 1;
        match kind {
            Kind::ValueCount | Kind::ValuePercentile => {
                if let Some(v) = e.value
                    && let std::collections::hash_map::Entry::Occupied(mut o) =
                        agg.distinct.entry(v)
                {
                    *o.get_mut() -= 1;
                    if *o.get() == 0 {
                        o.remove();
                    }
                }
            }
            Kind::Temporal | Kind::TemporalOrdered => {
                // The oldest entry of the window is the oldest of its input.
                if let Some(q) = agg.by_input.get_mut(e.input) {
                    q.pop_front();
                }
            }
            Kind::ValueSum | Kind::ValueAvg => match e.value.as_deref().and_then(number) {
                Some(Number::Int(i)) => {
                    agg.int_sum -= i128::from(i);
                    agg.numbers -= 1;
                }
                Some(Number::Other) => {
                    agg.numbers -= 1;
                    agg.non_integers -= 1;
                }
                None => {}
            },
            _ => {}
        }
    }

    /// Whether input `i` has an entry in the window.
    fn has_input(&self, i: usize) -> bool {
        self.agg.by_input.get(i).is_some_and(|q| !q.is_empty())
    }
}

/// A correlation match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Index of the correlation.
    pub correlation: usize,
    /// The group's values, in `group-by` order.
    pub group: Vec<(String, String)>,
    /// The aggregate that met the condition (count, distinct count, sum...).
    pub value: f64,
    /// Input line numbers (or record numbers) of the events involved.
    pub lines: Vec<u64>,
    /// Time of the event that completed the match.
    pub ts: i64,
}

/// Limits of the correlation state.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_groups: usize,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 100_000,
            max_entries: 10_000,
        }
    }
}

/// Counters of the state's bounds at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub groups_evicted: u64,
    pub entries_dropped: u64,
    pub groups_expired: u64,
}

/// The running state of every correlation.
#[derive(Debug)]
pub struct State {
    limits: Limits,
    /// Per correlation, its groups by key (hashed once per event with a
    /// keyed SipHash: the keys are what the logs say, so an attacker
    /// chooses them).
    groups: Vec<HashTable<Group>>,
    hasher: std::hash::RandomState,
    /// Per correlation, group keys in the order they were last updated,
    /// with the tick of that update; entries whose tick is older than the
    /// group's `last_update` are stale and skipped. Eviction of the least
    /// recently updated group is then amortized O(1) instead of a scan of
    /// every group (which made each new group cost O(max_groups): an
    /// attacker varying source addresses could stall detection).
    recency: Vec<VecDeque<(u64, Key)>>,
    tick: u64,
    pub stats: Stats,
    /// Each open stream's clock: the newest event time seen on it.
    clocks: HashMap<u64, i64>,
    /// The newest event time of any stream: paces the sweeps.
    last_ts: i64,
    last_sweep: i64,
    /// Events since the last sweep: a stream catching up on old logs
    /// does not move `last_ts`, and its idle groups are freed too.
    since_sweep: usize,
}

/// When and where an event happened, as the correlation state sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    /// The event's time.
    pub ts: i64,
    /// Its stream.
    pub stream: u64,
    /// That stream's clock, this event included ([`State::advance`]).
    pub now: i64,
}

impl State {
    pub fn new(n: usize, limits: Limits) -> State {
        State {
            limits,
            groups: (0..n).map(|_| HashTable::new()).collect(),
            hasher: std::hash::RandomState::new(),
            recency: (0..n).map(|_| VecDeque::new()).collect(),
            tick: 0,
            stats: Stats::default(),
            clocks: HashMap::new(),
            last_ts: 0,
            last_sweep: i64::MIN,
            since_sweep: 0,
        }
    }

    /// The clock of `stream`, if it has seen an event.
    pub(crate) fn clock(&self, stream: u64) -> Option<i64> {
        self.clocks.get(&stream).copied()
    }

    /// Moves the clock of `stream` on to `ts` (clocks never go back: an
    /// event older than the newest seen leaves it); returns where the
    /// event happened.
    pub(crate) fn advance(&mut self, stream: u64, ts: i64) -> At {
        let clock = self.clocks.entry(stream).or_insert(ts);
        *clock = (*clock).max(ts);
        self.last_ts = self.last_ts.max(ts);
        self.since_sweep += 1;
        At {
            ts,
            stream,
            now: *clock,
        }
    }

    /// No more events will come on `stream`: its clock is forgotten. Its
    /// groups are measured on the newest clock of all streams from then
    /// on.
    pub(crate) fn end_stream(&mut self, stream: u64) {
        self.clocks.remove(&stream);
    }

    /// Number of live groups across all correlations.
    pub fn group_count(&self) -> usize {
        self.groups.iter().map(HashTable::len).sum()
    }

    /// Feeds the event matched by `input` of correlation `ci`; returns a
    /// match when the correlation's condition now holds.
    // A `Key`'s atomic tick is not part of its hash or equality (the
    // values are): mutating it cannot move a key in the table.
    #[allow(clippy::mutable_key_type)]
    pub(crate) fn observe(
        &mut self,
        ci: usize,
        corr: &Compiled,
        input_pos: usize,
        ev: &schema::Event,
        at: At,
        lines: &[u64],
    ) -> Option<Match> {
        self.tick += 1;
        let ts = at.ts;
        let f = &corr.fields[input_pos];
        let mut key: Vec<Cow<'_, str>> = Vec::with_capacity(f.group.len());
        for g in &f.group {
            // An event without a group field does not join any group.
            key.push(first_text(g, ev)?);
        }
        let value = match &f.value {
            Some(v) => Some(first_text(v, ev)?.into_owned()),
            None => None,
        };
        let span = corr.def.timespan;
        let limits = self.limits;
        // As `[String]` hashes (the `Key`s in the table).
        let hash = self.hasher.hash_one(&key[..]);
        let same = |g: &Group| g.key.values().iter().eq(key.iter());
        let groups = &mut self.groups[ci];
        let recency = &mut self.recency[ci];
        let found = groups.find_bucket_index(hash, same);
        let group = match found.and_then(|i| groups.get_bucket_mut(i)) {
            Some(group) => {
                let clock = if group.stream == at.stream {
                    at.now
                } else {
                    clock_of(&self.clocks, group.stream, self.last_ts)
                };
                if group.idle(clock, span) {
                    group.clear();
                    self.stats.groups_expired += 1;
                }
                group
            }
            None => {
                let mut recycled = None;
                if groups.len() >= limits.max_groups {
                    // Evict the least recently updated group.
                    while let Some((tick, oldest)) = recency.pop_front() {
                        if oldest.last_update() == tick
                            && let Ok(entry) = groups
                                .find_entry(oldest.hash(), |g| Arc::ptr_eq(&g.key.0, &oldest.0))
                        {
                            let g = entry.remove().0;
                            oldest.set_last_update(GONE);
                            self.stats.groups_evicted += 1;
                            recycled = Some(g);
                            break;
                        }
                    }
                }
                let key = Key::new(key.iter().map(|v| v.to_string()).collect(), hash);
                let group = match recycled {
                    Some(g) => g.recycle(key),
                    None => Group::new(key),
                };
                groups
                    .insert_unique(hash, group, |g| g.key.hash())
                    .into_mut()
            }
        };
        group.seen_at = at.now;
        group.stream = at.stream;
        let key = group.key.clone();
        key.set_last_update(self.tick);
        recency.push_back((self.tick, key.clone()));
        let kind = corr.def.kind;
        group.push(
            kind,
            Entry {
                ts,
                input: input_pos,
                value,
                lines: Lines::new(lines),
            },
        );
        // Slide the window: drop what is older than `timespan` before `ts`.
        let start = ts.saturating_sub(span);
        while group.entries.front().is_some_and(|e| e.ts < start) {
            group.pop_front(kind);
        }
        if group.entries.len() > limits.max_entries {
            let excess = group.entries.len() - limits.max_entries;
            for _ in 0..excess {
                group.pop_front(kind);
            }
            self.stats.entries_dropped += excess as u64;
        }
        let result = evaluate(corr, group);
        let out = result.map(|(value, lines)| Match {
            correlation: ci,
            group: corr
                .def
                .group_by
                .iter()
                .cloned()
                .zip(key.values().iter().cloned())
                .collect(),
            value,
            lines,
            ts,
        });
        if out.is_some() {
            if let Ok(entry) = groups.find_entry(hash, |g| Arc::ptr_eq(&g.key.0, &key.0)) {
                entry.remove();
            }
            key.set_last_update(GONE);
        }
        let recency = &mut self.recency[ci];
        if recency.len() > 2 * groups.len() + 64 {
            // Drop the stale entries so the queue stays proportional to
            // the live groups.
            recency.retain(|(t, k)| k.last_update() == *t);
        }
        out
    }

    /// Frees the groups that sat idle for more than their `timespan` on
    /// the clock of the stream that last updated them: the test `observe`
    /// applies when such a group is updated again, so sweeping changes no
    /// result, only memory. Runs at most once per second of the newest
    /// event time, or when as many events as there are groups (at least
    /// 65,536) came since the last sweep. `spans` holds each
    /// correlation's `timespan`.
    pub(crate) fn expire(&mut self, spans: &[i64]) {
        let by_time = self.last_ts.saturating_sub(self.last_sweep) >= 1_000_000_000;
        let by_count = self.since_sweep >= 1 << 16 && self.since_sweep >= self.group_count();
        if !by_time && !by_count {
            return;
        }
        self.last_sweep = self.last_ts;
        self.since_sweep = 0;
        let (clocks, newest) = (&self.clocks, self.last_ts);
        for (groups, span) in self.groups.iter_mut().zip(spans) {
            let before = groups.len();
            groups.retain(|g| {
                let keep = !g.idle(clock_of(clocks, g.stream, newest), *span);
                if !keep {
                    g.key.set_last_update(GONE);
                }
                keep
            });
            self.stats.groups_expired += (before - groups.len()) as u64;
        }
    }
}

/// The clock that measures the idleness of a group `stream` updated last:
/// that stream's, or the newest of all (`newest`) once the stream ended.
fn clock_of(clocks: &HashMap<u64, i64>, stream: u64, newest: i64) -> i64 {
    clocks.get(&stream).copied().unwrap_or(newest)
}

fn first_text<'e>(f: &FieldRef, ev: &'e schema::Event) -> Option<Cow<'e, str>> {
    let mut out = None;
    f.visit(ev, &mut |v| {
        out = v.to_text();
        out.is_some()
    });
    out
}

/// The aggregate of a group's window and the lines involved, when the
/// condition holds. Costs O(inputs) or O(log n) for event and value
/// counts, sums, averages, percentiles and the temporal kinds (from the
/// group's aggregates); min, max and median still read the window.
fn evaluate(corr: &Compiled, group: &Group) -> Option<(f64, Vec<u64>)> {
    let def = &corr.def;
    let entries = &group.entries;
    let agg = &group.agg;
    let inputs = corr.inputs.len();
    let all_lines = || {
        entries
            .iter()
            .flat_map(|e| e.lines.iter().copied())
            .collect::<Vec<_>>()
    };
    let numbers = || {
        entries
            .iter()
            .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
    };
    let sum = || {
        if agg.non_integers == 0 {
            agg.int_sum as f64
        } else {
            numbers().sum()
        }
    };
    let x = match def.kind {
        Kind::EventCount => entries.len() as f64,
        Kind::ValueCount => agg.distinct.len() as f64,
        Kind::Temporal if def.expr.is_some() => {
            let seen: Vec<bool> = (0..inputs).map(|i| group.has_input(i)).collect();
            let n = seen.iter().filter(|s| **s).count();
            return def
                .expr
                .as_ref()
                .is_some_and(|x| x.holds(&seen))
                .then(|| (n as f64, all_lines()));
        }
        Kind::TemporalOrdered if def.expr.is_some() => {
            // Each rule in the order listed counts as present when it
            // matched at or after the rules before it that did.
            let mut seen = vec![false; inputs];
            let mut lines = Vec::new();
            let mut after = i64::MIN;
            for (i, s) in seen.iter_mut().enumerate() {
                let Some(q) = agg.by_input.get(i) else {
                    continue;
                };
                if let Some(e) = q.iter().map(|&n| group.entry(n)).find(|e| e.ts >= after) {
                    *s = true;
                    after = e.ts;
                    lines.extend_from_slice(&e.lines);
                }
            }
            let n = seen.iter().filter(|s| **s).count();
            return def
                .expr
                .as_ref()
                .is_some_and(|x| x.holds(&seen))
                .then_some((n as f64, lines));
        }
        Kind::Temporal => {
            let n = (0..inputs).filter(|&i| group.has_input(i)).count();
            if def.bounds.is_empty() {
                if n == inputs {
                    return Some((n as f64, all_lines()));
                }
                return None;
            }
            n as f64
        }
        Kind::TemporalOrdered => {
            // Inputs in the order listed, each after the previous one: the
            // first entry of input 0, then the first of input 1 after it...
            let mut next = 0;
            let mut lines = Vec::new();
            let mut after: Option<u64> = None;
            while next < inputs {
                let Some(q) = agg.by_input.get(next) else {
                    break;
                };
                let at = match after {
                    None => 0,
                    Some(a) => q.partition_point(|&n| n <= a),
                };
                let Some(&n) = q.get(at) else {
                    break;
                };
                lines.extend_from_slice(&group.entry(n).lines);
                after = Some(n);
                next += 1;
            }
            if def.bounds.is_empty() {
                return (next == inputs).then_some((next as f64, lines));
            }
            next as f64
        }
        Kind::ValueSum => sum(),
        Kind::ValueAvg => {
            if agg.numbers == 0 {
                return None;
            }
            sum() / agg.numbers as f64
        }
        Kind::ValueMin => numbers().reduce(f64::min)?,
        Kind::ValueMax => numbers().reduce(f64::max)?,
        Kind::ValueMedian => median(numbers().collect())?,
        Kind::ValuePercentile => {
            let current = entries.back()?.value.as_deref()?;
            let same = agg.distinct.get(current).copied().unwrap_or(0);
            100.0 * same as f64 / entries.len() as f64
        }
    };
    def.bounds.holds(x).then(|| (x, all_lines()))
}

/// The median of `v`; `None` when it is empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl Problem {
    pub(crate) fn at(message: impl Into<String>, near: &str) -> Problem {
        Problem {
            message: message.into(),
            near: Some(near.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans() {
        assert_eq!(parse_timespan("90m"), Some(90 * 60 * 1_000_000_000));
        assert_eq!(parse_timespan("1d"), Some(86_400 * 1_000_000_000));
        assert_eq!(parse_timespan("10s"), Some(10_000_000_000));
        assert_eq!(parse_timespan("0s"), None);
        assert_eq!(parse_timespan("1y"), None);
        assert_eq!(parse_timespan("h"), None);
        assert_eq!(parse_timespan(""), None);
        assert_eq!(parse_timespan("99999999999999999d"), None);
    }

    #[test]
    fn bounds() {
        let b = Bounds {
            gt: Some(100.0),
            lte: Some(200.0),
            ..Bounds::default()
        };
        assert!(!b.holds(100.0));
        assert!(b.holds(101.0));
        assert!(b.holds(200.0));
        assert!(!b.holds(201.0));
    }

    /// The window judged by reading every entry: the definition the
    /// incremental `evaluate` must agree with.
    fn evaluate_scan(corr: &Compiled, group: &Group) -> Option<(f64, Vec<u64>)> {
        let def = &corr.def;
        let entries = &group.entries;
        let all_lines = || {
            entries
                .iter()
                .flat_map(|e| e.lines.iter().copied())
                .collect::<Vec<_>>()
        };
        let numbers = || {
            entries
                .iter()
                .filter_map(|e| e.value.as_deref()?.trim().parse::<f64>().ok())
        };
        let x = match def.kind {
            Kind::EventCount => entries.len() as f64,
            Kind::ValueCount => {
                let mut v: Vec<&str> = entries.iter().filter_map(|e| e.value.as_deref()).collect();
                v.sort_unstable();
                v.dedup();
                v.len() as f64
            }
            Kind::Temporal if def.expr.is_some() => {
                let mut seen = vec![false; corr.inputs.len()];
                for e in entries {
                    seen[e.input] = true;
                }
                let n = seen.iter().filter(|s| **s).count();
                return def
                    .expr
                    .as_ref()
                    .is_some_and(|x| x.holds(&seen))
                    .then(|| (n as f64, all_lines()));
            }
            Kind::TemporalOrdered if def.expr.is_some() => {
                // Each rule in the order listed counts as present when it
                // matched at or after the rules before it that did.
                let mut seen = vec![false; corr.inputs.len()];
                let mut lines = Vec::new();
                let mut after = i64::MIN;
                for (i, s) in seen.iter_mut().enumerate() {
                    if let Some(e) = entries.iter().find(|e| e.input == i && e.ts >= after) {
                        *s = true;
                        after = e.ts;
                        lines.extend_from_slice(&e.lines);
                    }
                }
                let n = seen.iter().filter(|s| **s).count();
                return def
                    .expr
                    .as_ref()
                    .is_some_and(|x| x.holds(&seen))
                    .then_some((n as f64, lines));
            }
            Kind::Temporal => {
                let mut seen = vec![false; corr.inputs.len()];
                for e in entries {
                    seen[e.input] = true;
                }
                let n = seen.iter().filter(|s| **s).count();
                if def.bounds.is_empty() {
                    if n == corr.inputs.len() {
                        return Some((n as f64, all_lines()));
                    }
                    return None;
                }
                n as f64
            }
            Kind::TemporalOrdered => {
                // Inputs in the order listed, each after the previous one.
                let mut next = 0;
                let mut lines = Vec::new();
                for e in entries {
                    if next < corr.inputs.len() && e.input == next {
                        lines.extend_from_slice(&e.lines);
                        next += 1;
                    }
                }
                if def.bounds.is_empty() {
                    return (next == corr.inputs.len()).then_some((next as f64, lines));
                }
                next as f64
            }
            Kind::ValueSum => numbers().sum(),
            Kind::ValueAvg => {
                let (s, n) = numbers().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
                if n == 0 {
                    return None;
                }
                s / n as f64
            }
            Kind::ValueMin => numbers().reduce(f64::min)?,
            Kind::ValueMax => numbers().reduce(f64::max)?,
            Kind::ValueMedian => median(numbers().collect())?,
            Kind::ValuePercentile => {
                let current = entries.back()?.value.as_deref()?;
                let same = entries
                    .iter()
                    .filter(|e| e.value.as_deref() == Some(current))
                    .count();
                100.0 * same as f64 / entries.len() as f64
            }
        };
        def.bounds.holds(x).then(|| (x, all_lines()))
    }

    fn compiled(yaml: &str, inputs: usize) -> Compiled {
        let doc: Y = serde_norway::from_str(yaml).expect("yaml");
        Compiled {
            def: correlation_from_yaml(&doc).expect("correlation"),
            inputs: (0..inputs).map(Input::Rule).collect(),
            fields: Vec::new(),
        }
    }

    /// Every kind, and the temporal kinds with a condition.
    fn every_kind() -> Vec<Compiled> {
        let mut out = Vec::new();
        for kind in [
            "event_count",
            "value_count",
            "value_sum",
            "value_avg",
            "value_min",
            "value_max",
            "value_median",
            "value_percentile",
        ] {
            out.push(compiled(
                &format!(
                    "title: t\ncorrelation:\n  type: {kind}\n  rules: [a, b, c]\n  group-by: [h]\n  timespan: 1h\n  condition:\n    gte: 3\n    field: x\n"
                ),
                3,
            ));
        }
        for kind in ["temporal", "temporal_ordered"] {
            out.push(compiled(
                &format!("title: t\ncorrelation:\n  type: {kind}\n  rules: [a, b, c]\n  group-by: [h]\n  timespan: 1h\n"),
                3,
            ));
            out.push(compiled(
                &format!("title: t\ncorrelation:\n  type: {kind}\n  rules: [a, b, c]\n  group-by: [h]\n  timespan: 1h\n  condition:\n    gte: 2\n"),
                3,
            ));
            out.push(compiled(
                &format!("title: t\ncorrelation:\n  type: {kind}\n  rules: [a, b, c]\n  group-by: [h]\n  timespan: 1h\n  condition: a and (c or not b)\n"),
                3,
            ));
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
        /// The aggregates kept as entries come and go judge the window as
        /// reading every entry does, after every push and pop, for every
        /// kind (out-of-order times and non-numeric values included).
        #[test]
        fn incremental_evaluation_agrees_with_reading_the_window(
            ops in proptest::collection::vec((0usize..3, -5i64..40, 0usize..9, 0usize..4), 1..60)
        ) {
            const VALUES: [&str; 9] = ["1", "2", " 7 ", "-3", "2.5", "x", "", "1e2", "9223372036854775807"];
            for corr in every_kind() {
                let mut g = Group::new(Key::new(Vec::new(), 0));
                for (n, &(input, ts, value, pops)) in ops.iter().enumerate() {
                    g.push(corr.def.kind, Entry {
                        ts,
                        input,
                        value: (value != 6).then(|| VALUES[value].to_string()),
                        lines: Lines::new(&[n as u64]),
                    });
                    proptest::prop_assert_eq!(evaluate(&corr, &g), evaluate_scan(&corr, &g), "{:?} after a push", corr.def.kind);
                    for _ in 0..pops.saturating_sub(2) {
                        g.pop_front(corr.def.kind);
                        proptest::prop_assert_eq!(evaluate(&corr, &g), evaluate_scan(&corr, &g), "{:?} after a pop", corr.def.kind);
                    }
                }
            }
        }
    }
}
