//! mlsoc's Sigma detection engine.
//!
//! Reads rules as the Sigma community writes them (specification 2.1.0:
//! rule documents, every value modifier, the full condition grammar,
//! correlation rules, meta filters, multi-document files), compiles each
//! detection into matchers over [`schema::Event`] fields, and evaluates
//! them event by event without copying field values. Correlations keep a
//! bounded, expiring state per group ([`Session`]).

pub mod alert;
pub mod condition;
pub mod correlation;
mod dense;
pub mod filter;
pub mod loader;
pub mod matcher;
pub mod modifiers;
pub mod pack;
pub mod pattern;
pub mod pipeline;
pub mod prefilter;
pub mod rule;
mod sieve;

/// Helpers of the unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// A xorshift generator of indexes below `n`: random enough to build
    /// varied texts, and the same on every run.
    pub(crate) fn indexes(mut seed: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        }
    }

    /// The patterns occurring in `text` ignoring ASCII case, each once,
    /// sorted, by aho-corasick's own overlapping search: the reference the
    /// prefilter's literal searches are checked against.
    pub(crate) fn overlapping<P: AsRef<[u8]>>(patterns: &[P], text: &[u8]) -> Vec<u32> {
        let ac = aho_corasick::AhoCorasickBuilder::new()
            .match_kind(aho_corasick::MatchKind::Standard)
            .ascii_case_insensitive(true)
            .build(patterns)
            .unwrap();
        let mut v: Vec<u32> = ac
            .find_overlapping_iter(text)
            .map(|m| m.pattern().as_u32())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

use std::collections::HashMap;

pub use correlation::{Limits, Match as CorrelationMatch, Stats as CorrelationStats};
pub use loader::{
    ErrorKind, Loaded, LoadedCorrelation, LoadedFilter, Loader, Loading, Origin, RuleError,
};
pub use modifiers::Placeholders;
pub use pipeline::{Pipeline, PipelineError, Route};
pub use rule::{Level, LogSource, Rule};

use correlation::{Compiled, Input, InputFields};
use matcher::FieldRef;

/// What evaluating one rule cost over a run ([`Engine::eval_profiled`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCost {
    /// Events the rule was evaluated on (routed to it, and let through
    /// by the prefilter).
    pub evaluations: u64,
    /// Of those, the events it matched.
    pub matches: u64,
    /// Time spent evaluating it, in nanoseconds.
    pub nanos: u64,
}

/// Rules, filters and correlations, resolved against each other.
#[derive(Debug, Default)]
pub struct Engine {
    rules: Vec<Loaded>,
    /// Whether a rule's matches are reported on their own (false when the
    /// rule only feeds correlations that do not `generate` it).
    standalone: Vec<bool>,
    correlations: Vec<(Compiled, Origin)>,
    corr_standalone: Vec<bool>,
    /// For each rule: the correlations it feeds (correlation, input position).
    rule_consumers: Vec<Vec<(usize, usize)>>,
    /// For each correlation: the correlations it feeds.
    corr_consumers: Vec<Vec<(usize, usize)>>,
    spans: Vec<i64>,
    prefilter: prefilter::Prefilter,
    /// Distinct routes of the rules, and each rule's (`u32::MAX`: none).
    routes: Vec<pipeline::Route>,
    rule_route: Vec<u32>,
    /// The fields the routes read (sorted, distinct).
    route_fields: Vec<RouteField>,
    /// Prefilters of the rules routed to one combination of the route
    /// fields' values (a log source), built when an event of it first
    /// comes.
    views: std::sync::Mutex<Views>,
    /// Tells engines apart in a [`prefilter::Scratch`] that caches views.
    id: u64,
}

/// Most log sources (combinations of route field values) given a prefilter
/// of their own; events of others use the prefilter of every rule.
const MAX_VIEWS: usize = 64;

#[derive(Debug, Default)]
struct Views {
    map: foldhash::HashMap<Box<[u8]>, std::sync::Arc<prefilter::Prefilter>>,
    /// Keys whose view a thread is building.
    building: foldhash::HashSet<Box<[u8]>>,
}

fn next_engine_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The texts of each route field from a view key: its tested values, or
/// when it has only others, one text that no route tests for.
fn decode_view_key(mut key: &[u8], fields: &[RouteField]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); fields.len()];
    let mut i = 0;
    while key.len() >= 4 && i < fields.len() {
        let n = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
        key = &key[4..];
        if n >= u32::MAX - 1 {
            if n == u32::MAX - 1 && out[i].is_empty() {
                let mut other = String::from("\0");
                while fields[i].tested.contains(&other) {
                    other.push('\0');
                }
                out[i].push(other);
            }
            i += 1;
            continue;
        }
        let n = (n as usize).min(key.len());
        out[i].push(String::from_utf8_lossy(&key[..n]).into_owned());
        key = &key[n..];
    }
    out
}

/// The fields every route reads (sorted, distinct), each with the values
/// some route compares it with (sorted, distinct).
fn route_fields(routes: &[pipeline::Route]) -> Vec<RouteField> {
    let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (name, values) in routes.iter().flat_map(|r| r.tests()) {
        by_name
            .entry(name)
            .or_default()
            .extend(values.iter().cloned());
    }
    by_name
        .into_iter()
        .map(|(name, mut tested)| {
            tested.sort_unstable();
            tested.dedup();
            RouteField {
                field: FieldRef::new(name),
                tested,
            }
        })
        .collect()
}

/// A field routes read.
#[derive(Debug)]
struct RouteField {
    field: FieldRef,
    /// The values routes compare it with: an event's other values only
    /// count as "present".
    tested: Vec<String>,
}

/// The prefilter of the rules, their distinct routes and each rule's route.
fn index(rules: &[Loaded]) -> (prefilter::Prefilter, Vec<pipeline::Route>, Vec<u32>) {
    // Rules for log sources no pipeline maps never run.
    let prefilter = prefilter::Prefilter::build(rules.iter().map(|l| {
        (!l.route
            .as_ref()
            .is_some_and(pipeline::Route::matches_nothing))
        .then_some(&l.rule.detection)
    }));
    let (routes, rule_route) = routes_of(rules);
    (prefilter, routes, rule_route)
}

/// Distinct routes and each rule's index into them.
fn routes_of(rules: &[Loaded]) -> (Vec<pipeline::Route>, Vec<u32>) {
    let mut routes: Vec<pipeline::Route> = Vec::new();
    let mut index: HashMap<pipeline::Route, u32> = HashMap::new();
    let per_rule = rules
        .iter()
        .map(|l| match &l.route {
            None => u32::MAX,
            Some(r) => *index.entry(r.clone()).or_insert_with(|| {
                routes.push(r.clone());
                (routes.len() - 1) as u32
            }),
        })
        .collect();
    (routes, per_rule)
}

/// One thing the engine found.
#[derive(Debug, Clone, PartialEq)]
pub enum Hit {
    /// A detection rule matched the event (index into [`Engine::rules`]).
    Rule(usize),
    /// A correlation rule's condition was met.
    Correlation(CorrelationMatch),
}

impl Engine {
    /// Rules only (no filters, no correlations).
    pub fn new(rules: Vec<Loaded>) -> Engine {
        let n = rules.len();
        let (prefilter, routes, rule_route) = index(&rules);
        Engine {
            route_fields: route_fields(&routes),
            id: next_engine_id(),
            routes,
            rule_route,
            rules,
            standalone: vec![true; n],
            rule_consumers: vec![Vec::new(); n],
            prefilter,
            ..Engine::default()
        }
    }

    /// Applies filters to the rules they name and resolves correlations.
    /// Documents that cannot be resolved are left out and reported.
    pub fn build(loading: Loading) -> (Engine, Vec<RuleError>) {
        let Loading {
            mut rules,
            correlations,
            filters,
            ..
        } = loading;
        let mut errors = Vec::new();
        let err = |o: &Origin, message: String| RuleError {
            path: o.path.clone(),
            line: o.line,
            kind: ErrorKind::Invalid,
            message,
        };
        // Rules by id and by name.
        let mut rule_ref: HashMap<String, usize> = HashMap::new();
        for (i, l) in rules.iter().enumerate() {
            if let Some(id) = &l.rule.id {
                rule_ref.insert(id.clone(), i);
            }
            if let Some(name) = &l.rule.name {
                rule_ref.entry(name.clone()).or_insert(i);
            }
        }
        for f in &filters {
            for r in &f.filter.rules {
                match rule_ref.get(r) {
                    Some(&i) => rules[i]
                        .rule
                        .detection
                        .filters
                        .push(f.filter.detection.clone()),
                    None => errors.push(err(
                        &f.origin,
                        format!(
                            "filter `{}`: no loaded rule has the id or name `{r}`",
                            f.filter.title
                        ),
                    )),
                }
            }
        }
        let mut corr_ref: HashMap<String, usize> = HashMap::new();
        for (i, c) in correlations.iter().enumerate() {
            if let Some(id) = &c.correlation.id {
                corr_ref.insert(id.clone(), i);
            }
            if let Some(name) = &c.correlation.name {
                corr_ref.entry(name.clone()).or_insert(i);
            }
        }
        // Resolve inputs; a correlation with an unknown input is dropped.
        let mut resolved: Vec<Option<Vec<Input>>> = Vec::with_capacity(correlations.len());
        for c in &correlations {
            let mut inputs = Vec::new();
            let mut ok = true;
            for r in &c.correlation.rules {
                match (rule_ref.get(r), corr_ref.get(r)) {
                    (Some(&i), _) => inputs.push(Input::Rule(i)),
                    (None, Some(&j)) => inputs.push(Input::Correlation(j)),
                    (None, None) => {
                        errors.push(err(
                            &c.origin,
                            format!(
                                "correlation `{}`: no loaded rule or correlation has the id or name `{r}`",
                                c.correlation.title
                            ),
                        ));
                        ok = false;
                    }
                }
            }
            resolved.push(ok.then_some(inputs));
        }
        // Cycles among correlations are refused.
        for start in 0..correlations.len() {
            if resolved[start].is_some()
                && reaches(
                    start,
                    start,
                    &resolved,
                    &mut vec![false; correlations.len()],
                )
            {
                errors.push(err(
                    &correlations[start].origin,
                    format!(
                        "correlation `{}` refers to itself through its inputs",
                        correlations[start].correlation.title
                    ),
                ));
                resolved[start] = None;
            }
        }
        // Keep the resolvable ones; renumber.
        let mut new_index = vec![None; correlations.len()];
        let mut kept = Vec::new();
        for (i, c) in correlations.into_iter().enumerate() {
            if resolved[i].is_some() {
                new_index[i] = Some(kept.len());
                kept.push((i, c));
            }
        }
        let mut compiled: Vec<(Compiled, Origin)> = Vec::new();
        for (old, c) in kept {
            let mut inputs = Vec::new();
            let mut ok = true;
            for inp in resolved[old].clone().unwrap_or_default() {
                match inp {
                    Input::Rule(i) => inputs.push(Input::Rule(i)),
                    Input::Correlation(j) => match new_index[j] {
                        Some(nj) => inputs.push(Input::Correlation(nj)),
                        None => ok = false,
                    },
                }
            }
            if !ok {
                errors.push(err(
                    &c.origin,
                    format!(
                        "correlation `{}`: an input correlation could not be loaded",
                        c.correlation.title
                    ),
                ));
                continue;
            }
            let def = c.correlation;
            let mut fields = Vec::new();
            for (pos, inp) in inputs.iter().enumerate() {
                let input_names: Vec<&str> = {
                    let mut v = vec![def.rules[pos].as_str()];
                    if let Input::Rule(i) = inp
                        && let Some(n) = &rules[*i].rule.name
                    {
                        v.push(n);
                    }
                    v
                };
                let resolve = |name: &str| -> Result<FieldRef, String> {
                    match def.aliases.iter().find(|(a, _)| a == name) {
                        Some((alias, per_rule)) => per_rule
                            .iter()
                            .find(|(r, _)| input_names.contains(&r.as_str()))
                            .map(|(_, f)| FieldRef::new(f))
                            .ok_or_else(|| {
                                format!(
                                    "alias `{alias}` names no field for input `{}`",
                                    def.rules[pos]
                                )
                            }),
                        None => Ok(FieldRef::new(name)),
                    }
                };
                let group: Result<Vec<FieldRef>, String> =
                    def.group_by.iter().map(|g| resolve(g)).collect();
                let value = def.field.as_deref().map(resolve).transpose();
                match (group, value) {
                    (Ok(group), Ok(value)) => fields.push(InputFields { group, value }),
                    (Err(e), _) | (_, Err(e)) => {
                        errors.push(err(&c.origin, format!("correlation `{}`: {e}", def.title)));
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                continue;
            }
            compiled.push((
                Compiled {
                    def,
                    inputs,
                    fields,
                },
                c.origin,
            ));
        }
        // A correlation dropped above may be the input of a kept one: such
        // inputs were renumbered into `compiled` order already only when kept.
        let n = rules.len();
        let mut rule_consumers = vec![Vec::new(); n];
        let mut corr_consumers = vec![Vec::new(); compiled.len()];
        let mut standalone = vec![true; n];
        let mut referenced = vec![false; n];
        let mut corr_standalone = vec![true; compiled.len()];
        let mut corr_referenced = vec![false; compiled.len()];
        let mut generated = vec![false; n];
        let mut corr_generated = vec![false; compiled.len()];
        for (ci, (c, _)) in compiled.iter().enumerate() {
            for (pos, inp) in c.inputs.iter().enumerate() {
                match *inp {
                    Input::Rule(i) => {
                        rule_consumers[i].push((ci, pos));
                        referenced[i] = true;
                        generated[i] |= c.def.generate;
                    }
                    Input::Correlation(j) if j < corr_consumers.len() => {
                        corr_consumers[j].push((ci, pos));
                        corr_referenced[j] = true;
                        corr_generated[j] |= c.def.generate;
                    }
                    Input::Correlation(_) => {}
                }
            }
        }
        for i in 0..n {
            standalone[i] = !referenced[i] || generated[i];
        }
        for j in 0..compiled.len() {
            corr_standalone[j] = !corr_referenced[j] || corr_generated[j];
        }
        let spans = compiled.iter().map(|(c, _)| c.def.timespan).collect();
        let (prefilter, routes, rule_route) = index(&rules);
        (
            Engine {
                route_fields: route_fields(&routes),
                id: next_engine_id(),
                views: Default::default(),
                routes,
                rule_route,
                prefilter,
                rules,
                standalone,
                correlations: compiled,
                corr_standalone,
                rule_consumers,
                corr_consumers,
                spans,
            },
            errors,
        )
    }

    pub fn rules(&self) -> &[Loaded] {
        &self.rules
    }

    /// Whether rule `i` alerts on its own (it is not only the input of
    /// correlations that do not `generate` its matches).
    pub fn rule_alerts(&self, i: usize) -> bool {
        self.standalone[i]
    }

    /// Whether rule `i` is an input of some correlation: only those matches
    /// need the (stateful, sequential) correlation step; the others can be
    /// turned into alerts wherever the rule was evaluated.
    pub fn feeds_correlations(&self, i: usize) -> bool {
        !self.rule_consumers[i].is_empty()
    }

    /// Whether correlation `i` alerts on its own (it is not only the input
    /// of another correlation).
    pub fn correlation_alerts(&self, i: usize) -> bool {
        self.corr_standalone[i]
    }

    pub fn correlations(&self) -> impl Iterator<Item = (&correlation::Correlation, &Origin)> {
        self.correlations.iter().map(|(c, o)| (&c.def, o))
    }

    pub fn correlation(&self, i: usize) -> &correlation::Correlation {
        &self.correlations[i].0.def
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Calls `hit` with the index of every detection rule the event
    /// matches, in rule order (filters applied; correlations not run).
    pub fn eval(&self, ev: &schema::Event, hit: &mut impl FnMut(usize)) {
        self.eval_with(ev, &mut prefilter::Scratch::default(), hit);
    }

    /// [`Engine::eval`] with reusable memory: only the rules the
    /// prefilter lets through are evaluated.
    pub fn eval_with(
        &self,
        ev: &schema::Event,
        scratch: &mut prefilter::Scratch,
        hit: &mut impl FnMut(usize),
    ) {
        self.candidates(ev, scratch, &mut |i, holds| {
            if self.rules[i].rule.detection.matches_given(ev, holds) {
                hit(i);
            }
        });
    }

    /// [`Engine::eval_with`] that also counts, per rule, the evaluations,
    /// the matches and the time they took (`costs` is indexed like
    /// [`Engine::rules`] and grown to their number): what `mlsoc rules
    /// profile` reports. Returns the event's own totals (evaluations,
    /// matches, time of the rule evaluations). Clock reads around each
    /// evaluation make it slower than `eval_with`; the proportions are
    /// what it is for.
    pub fn eval_profiled(
        &self,
        ev: &schema::Event,
        scratch: &mut prefilter::Scratch,
        costs: &mut Vec<RuleCost>,
        hit: &mut impl FnMut(usize),
    ) -> RuleCost {
        if costs.len() < self.rules.len() {
            costs.resize(self.rules.len(), RuleCost::default());
        }
        let mut event = RuleCost::default();
        self.candidates(ev, scratch, &mut |i, holds| {
            let started = std::time::Instant::now();
            let matched = self.rules[i].rule.detection.matches_given(ev, holds);
            let nanos = started.elapsed().as_nanos() as u64;
            let c = &mut costs[i];
            c.nanos += nanos;
            c.evaluations += 1;
            event.nanos += nanos;
            event.evaluations += 1;
            if matched {
                c.matches += 1;
                event.matches += 1;
                hit(i);
            }
        });
        event
    }

    /// Calls `f` with every rule that is routed to the event and that the
    /// prefilter lets through (with the keyword search the prefilter found
    /// to hold, if any), in rule order.
    #[inline(always)]
    fn candidates(
        &self,
        ev: &schema::Event,
        scratch: &mut prefilter::Scratch,
        f: &mut impl FnMut(usize, Option<usize>),
    ) {
        if let Some(view) = self.view(ev, scratch) {
            // Every rule of the view is routed to the event.
            view.candidates(ev, scratch, f);
            return;
        }
        let mut routes = std::mem::take(&mut scratch.routes);
        routes.clear();
        routes.resize(self.routes.len(), 0);
        self.prefilter.candidates(ev, scratch, &mut |i, holds| {
            if self.routed(i, ev, &mut routes) {
                f(i, holds);
            }
        });
        scratch.routes = routes;
    }

    /// The prefilter of the rules routed to the event's log source: the
    /// literals of other log sources' rules are not searched for. `None`
    /// when no rule has a route, or when there are already
    /// [`MAX_VIEWS`] log sources.
    fn view(
        &self,
        ev: &schema::Event,
        scratch: &mut prefilter::Scratch,
    ) -> Option<std::sync::Arc<prefilter::Prefilter>> {
        if self.route_fields.is_empty() {
            return None;
        }
        // The key: for each route field, the values of the event that some
        // route compares it with (length-prefixed), then whether it has
        // any value at all. Other values do not change any route's
        // outcome, so the number of keys stays small.
        let mut key = std::mem::take(&mut scratch.view_key);
        key.clear();
        for rf in &self.route_fields {
            let mut present = false;
            rf.field.visit(ev, &mut |v| {
                if let Some(t) = v.to_text() {
                    present = true;
                    if rf.tested.binary_search_by(|x| x.as_str().cmp(&t)).is_ok() {
                        key.extend_from_slice(&(t.len() as u32).to_le_bytes());
                        key.extend_from_slice(t.as_bytes());
                    }
                }
                false
            });
            key.extend_from_slice(&(u32::MAX - present as u32).to_le_bytes());
        }
        if scratch.views_of != self.id {
            scratch.views.clear();
            scratch.last_view = None;
            scratch.views_of = self.id;
        }
        // Events of a stream mostly come from one log source.
        if let Some((last, view)) = &scratch.last_view
            && *last == key
        {
            let view = view.clone();
            scratch.view_key = key;
            return view;
        }
        let found = match scratch.views.get(key.as_slice()) {
            Some(v) => v.clone(),
            None => {
                let Some(v) = self.shared_view(&key) else {
                    // Another thread is building this view: the prefilter
                    // of every rule meanwhile, and nothing remembered.
                    scratch.view_key = key;
                    return None;
                };
                if scratch.views.len() < 4 * MAX_VIEWS {
                    scratch
                        .views
                        .insert(key.clone().into_boxed_slice(), v.clone());
                }
                v
            }
        };
        // The key becomes the last one; the previous last key's buffer is
        // reused for the next key (no allocation when log sources alternate).
        let (mut last, _) = scratch
            .last_view
            .replace((key, found.clone()))
            .unwrap_or_default();
        last.clear();
        scratch.view_key = last;
        found
    }

    /// The view of a key from the engine's cache, built on first use;
    /// `Some(None)` when there are too many views, `None` while another
    /// thread builds this one (building a view of the SigmaHQ corpus takes
    /// tens of millions of instructions: two workers meeting the same new
    /// log source built it twice).
    #[allow(clippy::option_option)]
    fn shared_view(&self, key: &[u8]) -> Option<Option<std::sync::Arc<prefilter::Prefilter>>> {
        {
            let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = views.map.get(key) {
                return Some(Some(v.clone()));
            }
            if views.map.len() >= MAX_VIEWS {
                return Some(None);
            }
            if !views.building.insert(key.into()) {
                return None;
            }
        }
        // Built outside the lock: other threads keep evaluating.
        let texts = decode_view_key(key, &self.route_fields);
        let lookup = |name: &str| -> &[String] {
            match self
                .route_fields
                .binary_search_by(|f| f.field.name.as_str().cmp(name))
            {
                Ok(i) => &texts[i],
                Err(_) => &[],
            }
        };
        let view =
            prefilter::Prefilter::build(self.rules.iter().zip(&self.rule_route).map(|(l, &r)| {
                let routed = r == u32::MAX || self.routes[r as usize].matches_texts(&lookup);
                routed.then_some(&l.rule.detection)
            }));
        let view = std::sync::Arc::new(view);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.building.remove(key);
        if views.map.len() >= MAX_VIEWS {
            return Some(None);
        }
        Some(Some(
            views.map.entry(key.into()).or_insert_with(|| view).clone(),
        ))
    }

    /// Whether the event belongs to rule `i`'s log source (each distinct
    /// route is tested once per event).
    fn routed(&self, i: usize, ev: &schema::Event, cache: &mut [u8]) -> bool {
        let r = self.rule_route[i];
        if r == u32::MAX {
            return true;
        }
        let c = &mut cache[r as usize];
        if *c == 0 {
            *c = 1 + self.routes[r as usize].matches(ev) as u8;
        }
        *c == 2
    }

    /// Every rule evaluated on the event, without the prefilter (the
    /// reference the prefilter is tested against).
    pub fn eval_all(&self, ev: &schema::Event, hit: &mut impl FnMut(usize)) {
        let mut routes = vec![0; self.routes.len()];
        for (i, l) in self.rules.iter().enumerate() {
            if self.routed(i, ev, &mut routes) && l.rule.detection.matches(ev) {
                hit(i);
            }
        }
    }

    /// Every field path a rule or filter reads, sorted, each once: what a
    /// normalizer can prepare for them (see
    /// `normalizer::Registry::read_also`).
    pub fn field_paths(&self) -> Vec<String> {
        fn search(s: &matcher::Search, out: &mut std::collections::BTreeSet<String>) {
            match s {
                matcher::Search::And(items) => {
                    for i in items {
                        out.insert(i.field.name.clone());
                        if let matcher::ItemKind::Values(_, ms) = &i.kind {
                            for m in ms {
                                if let matcher::ValueMatcher::FieldRef { other, .. } = m {
                                    out.insert(other.name.clone());
                                }
                            }
                        }
                    }
                }
                matcher::Search::Or(ss) | matcher::Search::All(ss) => {
                    ss.iter().for_each(|s| search(s, out))
                }
                matcher::Search::Keywords(_) => {}
            }
        }
        fn detection(d: &rule::Detection, out: &mut std::collections::BTreeSet<String>) {
            d.searches.iter().for_each(|s| search(s, out));
            d.filters.iter().for_each(|f| detection(f, out));
        }
        let mut out = std::collections::BTreeSet::new();
        for l in &self.rules {
            detection(&l.rule.detection, &mut out);
        }
        out.into_iter().collect()
    }

    /// Rules the prefilter cannot skip (evaluated on every event), and
    /// rules in total.
    pub fn prefilter_counts(&self) -> (usize, usize) {
        self.prefilter.counts()
    }

    /// Rules whose log source no pipeline maps: they see no event.
    pub fn unrouted(&self) -> usize {
        self.rules
            .iter()
            .filter(|l| {
                l.route
                    .as_ref()
                    .is_some_and(pipeline::Route::matches_nothing)
            })
            .count()
    }

    /// A fresh correlation state for a stream of events.
    pub fn session(&self, limits: Limits) -> Session {
        Session {
            state: correlation::State::new(self.correlations.len(), limits),
            last_ts: 0,
            hits: Vec::new(),
            scratch: prefilter::Scratch::default(),
        }
    }
}

fn reaches(
    from: usize,
    target: usize,
    resolved: &[Option<Vec<Input>>],
    seen: &mut Vec<bool>,
) -> bool {
    let Some(inputs) = &resolved[from] else {
        return false;
    };
    for inp in inputs {
        if let Input::Correlation(j) = *inp {
            if j == target {
                return true;
            }
            if !seen[j] {
                seen[j] = true;
                if reaches(j, target, resolved, seen) {
                    return true;
                }
            }
        }
    }
    false
}

/// The running state of an engine over one stream of events.
#[derive(Debug)]
pub struct Session {
    state: correlation::State,
    last_ts: i64,
    hits: Vec<usize>,
    scratch: prefilter::Scratch,
}

impl Session {
    /// Evaluates one event of a one-stream input; `record` numbers it (the
    /// input line number for `mlsoc eval`). Detection rule matches that are
    /// reported on their own and correlation matches are appended to `out`.
    pub fn process(
        &mut self,
        engine: &Engine,
        ev: &schema::Event,
        record: u64,
        out: &mut Vec<Hit>,
    ) {
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        engine.eval_with(ev, &mut self.scratch, &mut |i| hits.push(i));
        self.process_hits(engine, ev, 0, record, &hits, out);
        self.hits = hits;
    }

    /// [`Session::process`] with the detection rule matches already known
    /// (from [`Engine::eval_with`], run elsewhere, for instance on another
    /// thread): only the correlations run here. `stream` names where the
    /// event comes from (a file, a connection): each stream has its own
    /// clock for the expiry of correlation groups, so that how streams
    /// were interleaved does not change the matches of a group one stream
    /// feeds (see the `correlation` module). Events of one stream come in
    /// their order.
    pub fn process_hits(
        &mut self,
        engine: &Engine,
        ev: &schema::Event,
        stream: u64,
        record: u64,
        rule_hits: &[usize],
        out: &mut Vec<Hit>,
    ) {
        let ts = match ev.timestamp() {
            Some(t) => t.0,
            None => self.state.clock(stream).unwrap_or(self.last_ts),
        };
        self.last_ts = self.last_ts.max(ts);
        let mut at = None;
        for &i in rule_hits {
            if engine.standalone[i] {
                out.push(Hit::Rule(i));
            }
            for &(ci, pos) in &engine.rule_consumers[i] {
                let at = *at.get_or_insert_with(|| self.state.advance(stream, ts));
                self.feed(engine, ci, pos, ev, at, &[record], out, 0);
            }
        }
        if !engine.correlations.is_empty() {
            self.state.expire(&engine.spans);
        }
    }

    /// No more events will come on `stream` (the file was read to its end
    /// and deleted, the connection closed): its clock is forgotten.
    pub fn end_stream(&mut self, stream: u64) {
        self.state.end_stream(stream);
    }

    #[allow(clippy::too_many_arguments)]
    fn feed(
        &mut self,
        engine: &Engine,
        ci: usize,
        pos: usize,
        ev: &schema::Event,
        at: correlation::At,
        lines: &[u64],
        out: &mut Vec<Hit>,
        depth: usize,
    ) {
        let Some(m) = self
            .state
            .observe(ci, &engine.correlations[ci].0, pos, ev, at, lines)
        else {
            return;
        };
        if depth < 16 {
            for &(parent, ppos) in &engine.corr_consumers[ci] {
                self.feed(engine, parent, ppos, ev, at, &m.lines, out, depth + 1);
            }
        }
        if engine.corr_standalone[ci] {
            out.push(Hit::Correlation(m));
        }
    }

    /// Counters of evicted and expired correlation state.
    pub fn stats(&self) -> CorrelationStats {
        self.state.stats
    }

    /// Live correlation groups.
    pub fn groups(&self) -> usize {
        self.state.group_count()
    }
}
