//! Compiled formats and the registry that holds them.
//!
//! A [`FormatSpec`] (TOML) compiles into a [`Format`]: dissect patterns or
//! regexes with their capture targets resolved to field ids and ECS types,
//! timestamp layouts, enrichment steps and JSON mappings. Parsing a record
//! then involves no name lookups.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use rustc_hash::FxHashMap;
use schema::{Event, FieldKey, FieldType, Str, Value, f};
use serde::Deserialize;

use crate::convert::{json_to_value, text_to_value};
use crate::dissect::{Dissect, Span};
use crate::multiline::Multiline;
use crate::spec::{FormatFile, FormatSpec, OnMismatch, PatternSpec};
use crate::steps::{NamedStep, Reject, Src, Step, compile_step, source};
use crate::timestamp::{Layout, TimeContext, Zone};

/// A format definition could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{origin}: {source}")]
    Toml {
        origin: String,
        source: toml::de::Error,
    },
    #[error("{origin}: cannot read: {source}")]
    Io {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: format `{name}`: {reason}")]
    Invalid {
        origin: String,
        name: String,
        reason: String,
    },
}

/// The state a record is parsed in: the event being built, the captures
/// that are not kept (`_name`, as spans of the record's text), and the
/// time context.
pub struct Ctx<'a> {
    pub event: Event,
    pub time: &'a TimeContext,
    /// The text the captures are spans of.
    text: Option<&'a Str>,
    temps: &'a mut Vec<Option<Span>>,
    ts_cache: Option<&'a mut TsCache>,
}

impl<'a> Ctx<'a> {
    pub fn new(time: &'a TimeContext, temps: &'a mut Vec<Option<Span>>) -> Ctx<'a> {
        Ctx {
            event: Event::new(),
            time,
            text: None,
            temps,
            ts_cache: None,
        }
    }

    fn cached(time: &'a TimeContext, text: &'a Str, scratch: &'a mut Scratch) -> Ctx<'a> {
        Ctx {
            event: Event::with_capacity(scratch.fields),
            time,
            text: Some(text),
            temps: &mut scratch.temps,
            ts_cache: Some(&mut scratch.ts_cache),
        }
    }

    /// The text of a capture that is not kept.
    fn temp(&self, i: usize) -> Option<&'a str> {
        let (a, b) = (*self.temps.get(i)?)?;
        Some(&self.text?[a..b])
    }

    /// Runs `f` with a step input, when present, as a `&str` and a `Str` it
    /// lies in (to build field values from it with `Event::set_slice`). A
    /// capture is a span of the record's text: no string is built for it.
    /// A field's value is cloned, since `f` may change the event it lives
    /// in.
    pub fn with_src<R>(
        &mut self,
        src: &Src,
        f: impl FnOnce(&mut Ctx<'a>, &Str, &str) -> R,
    ) -> Option<R> {
        match src {
            Src::Temp(i) => {
                let s = self.temp(*i)?;
                let text = self.text?;
                Some(f(self, text, s))
            }
            Src::Field(_) => {
                let s = self.read(src)?;
                Some(f(self, &s, &s))
            }
        }
    }

    /// Reads a step input.
    pub fn read(&self, src: &Src) -> Option<Str> {
        match src {
            Src::Temp(i) => {
                let s = self.temp(*i)?;
                Some(self.text?.slice_ref(s))
            }
            Src::Field(k) => {
                let v = match k {
                    FieldKey::Known(id) => self.event.get_id(*id)?,
                    FieldKey::Custom(_) => self.event.get(k.name())?,
                };
                match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// Why a pattern did not match a record. The message is written only when
/// no pattern (and no fallback format) matches: most records that miss a
/// pattern match the next one.
enum Miss<'f> {
    /// The dissect pattern got through this many fields.
    Shape(&'f Dissect, usize),
    Regex(&'f Regex),
    Whole(&'f Regex),
    Split(&'static str),
    Reject(Reject),
}

impl Miss<'_> {
    fn into_reject(self) -> Reject {
        match self {
            Miss::Shape(d, _) => Reject::new(format!("does not have the shape `{}`", d.source())),
            Miss::Regex(re) => Reject::new(format!("does not match the regex `{}`", re.as_str())),
            Miss::Whole(re) => Reject::new(format!(
                "does not match the whole of the regex `{}`",
                re.as_str()
            )),
            Miss::Split(name) => Reject::new(format!("is not of a shape `{name}` splits")),
            Miss::Reject(r) => r,
        }
    }
}

impl From<Reject> for Miss<'_> {
    fn from(r: Reject) -> Self {
        Miss::Reject(r)
    }
}

/// Where a capture goes.
#[derive(Debug, Clone)]
enum Target {
    /// A registered field, converted to its type.
    Field(schema::FieldId, FieldType),
    /// Any other field, kept as text.
    Custom(FieldKey),
    Temp(usize),
    Skip,
}

#[derive(Debug)]
enum AltKind {
    Dissect(Dissect, Vec<Target>),
    Regex(Regex, Vec<(usize, Target)>),
    Delegate(String, usize),
    /// (name, splitter, targets of its captures).
    Split(&'static str, Splitter, Vec<Target>),
}

#[derive(Debug)]
struct Alt {
    kind: AltKind,
    set: Vec<(FieldKey, Value)>,
    steps: Vec<Step>,
    /// Leading dissect fields in common with the pattern before (see
    /// `Dissect::shared_fields`): when that one fails past them, this one
    /// resumes there instead of splitting the line again.
    shared: usize,
    /// The regex the record must match for this alternative to be tried
    /// (`verify`).
    verify: Option<Regex>,
    /// A fast path (`verify` or `split`): its misses are reported only
    /// when no other alternative was tried.
    fast: bool,
}

#[derive(Debug)]
struct JsonBody {
    /// Every path the format reads, pulled out in one pass.
    trie: schema::json::PathTrie,
    /// The same paths, shared by every kept document.
    asked: std::sync::Arc<schema::rawjson::Asked>,
    /// (path index, regex, the same test without the regex engine when
    /// it has a simple form).
    require: Vec<(usize, Regex, Test)>,
    explode: Option<String>,
    /// Finds `"member"` (the quoted name of `explode`) in a record's text:
    /// built once, not for every record.
    explode_finder: Option<memchr::memmem::Finder<'static>>,
    /// The extraction tells whether `explode` is a top-level array member
    /// (see `PathTrie::probe`): a record without one is mapped from that
    /// one pass, without looking for the member first.
    explode_probed: bool,
    keep: Option<String>,
    /// The key of `keep` (a non-empty one), made once.
    keep_key: Option<FieldKey>,
    /// (field, type, keep arrays, path index).
    fields: Vec<(FieldKey, FieldType, bool, usize)>,
    /// Path index of the timestamp.
    timestamp: Option<usize>,
}

/// A requirement's regex in a form tested without the regex engine, when
/// it has one.
#[derive(Debug, PartialEq)]
enum Test {
    /// `.` (any value, the common requirement). Kept as the check it
    /// replaced: a value other than the empty string.
    NonEmpty,
    /// `^literal`: the value starts with the text.
    Prefix(String),
    /// `^literal$`: the value is the text (`$` is the end of the text).
    Equal(String),
    Regex,
}

impl Test {
    fn of(re: &str) -> Test {
        if re == "." {
            return Test::NonEmpty;
        }
        let Some(rest) = re.strip_prefix('^') else {
            return Test::Regex;
        };
        let mut lit = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                // An escaped meta character is itself (`\<` and others
                // are not literals).
                '\\' => match chars.next() {
                    Some(n) if ".+*?()|[]{}^$\\/-".contains(n) => lit.push(n),
                    _ => return Test::Regex,
                },
                '$' if chars.as_str().is_empty() => return Test::Equal(lit),
                c if c.is_ascii_alphanumeric() || "-_/:@=,".contains(c) => lit.push(c),
                _ => return Test::Regex,
            }
        }
        Test::Prefix(lit)
    }
}

/// A parser written in code (syslog).
pub type BuiltinParser = fn(&Str, &mut Ctx<'_>) -> Result<(), Reject>;

/// A splitter written in code (`split`): on success `spans[i]` is the span
/// of its capture `i` (`None` when not captured); false when it does not
/// take the record.
pub type Splitter = fn(&str, &mut Vec<Option<Span>>) -> bool;

enum Body {
    Patterns(Vec<Alt>),
    /// Boxed: much larger than the other variants.
    Json(Box<JsonBody>),
    Builtin(&'static str, BuiltinParser),
    Plain,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Patterns(a) => write!(f, "Patterns({})", a.len()),
            Body::Json(_) => f.write_str("Json"),
            Body::Builtin(n, _) => write!(f, "Builtin({n})"),
            Body::Plain => f.write_str("Plain"),
        }
    }
}

#[derive(Debug)]
enum TsSrc {
    Temp(usize),
    Field(FieldKey),
    /// A path of a JSON format (its index is in the JSON body).
    Json,
}

#[derive(Debug)]
struct TimestampRule {
    src: TsSrc,
    layouts: Vec<Layout>,
    zone: Option<Zone>,
}

/// A compiled format.
#[derive(Debug)]
pub struct Format {
    pub name: String,
    pub dataset: Str,
    pub module: Str,
    pub component: Option<Str>,
    pub description: String,
    pub example: Option<String>,
    pub priority: i32,
    pub auto: bool,
    /// Defined by mlsoc (false for formats from configuration files).
    pub builtin: bool,
    pub(crate) hint: Option<Regex>,
    pub(crate) path_hint: Option<Regex>,
    pub(crate) strip_ansi: bool,
    pub(crate) source_path: Option<(Regex, Vec<(FieldKey, String)>)>,
    pub(crate) multiline: Option<Multiline>,
    pub(crate) on_mismatch: OnMismatch,
    fallback: Vec<(String, usize)>,
    null_values: Vec<String>,
    body: Body,
    timestamp: Option<TimestampRule>,
    set: Vec<(FieldKey, Value)>,
    steps: Vec<Step>,
    temps: Vec<String>,
}

/// Buffers reused from record to record.
pub struct Scratch {
    spans: Vec<Option<Span>>,
    /// Where each dissect field ended (see `Dissect::resume`).
    ends: Vec<usize>,
    temps: Vec<Option<Span>>,
    ts_cache: TsCache,
    /// The capacity events are made with: room for the fields of the
    /// stream's last event (see `Scratch::saw_fields`), so that events of
    /// formats with many fields do not grow (a copy of the fields) as they
    /// are filled.
    fields: usize,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            spans: Vec::new(),
            ends: Vec::new(),
            temps: Vec::new(),
            ts_cache: TsCache::default(),
            fields: 32,
        }
    }
}

impl Scratch {
    /// Notes the number of fields of a finished event of the stream: the
    /// next event is made with room for as many (events of a stream are
    /// mostly alike; an odd one changes the capacity of the one after it).
    pub(crate) fn saw_fields(&mut self, n: usize) {
        // A power of two: mimalloc serves other sizes of this order
        // (kilobytes) by over-allocating, several times slower.
        self.fields = n.next_power_of_two().clamp(32, 128);
    }
}

/// The last timestamp text parsed and its value: consecutive records of a
/// busy log often carry the same second.
#[derive(Default)]
pub(crate) struct TsCache {
    rule: usize,
    raw: Vec<u8>,
    ts: Option<schema::Timestamp>,
    /// Where the seconds of `raw` are: a text that differs only there is
    /// read as a shift of `ts`.
    seconds: Option<crate::timestamp::Seconds>,
}

impl Format {
    /// True when the format reads JSON documents.
    pub fn is_json(&self) -> bool {
        matches!(self.body, Body::Json(_))
    }

    /// True for formats that accept any text (`parser = "plain"`).
    pub fn accepts_anything(&self) -> bool {
        matches!(self.body, Body::Plain)
    }

    /// The event of a record that matched no pattern of a free-form log:
    /// the text as `message`, plus the format's fixed fields.
    pub(crate) fn message_event(&self, text: &Str) -> Event {
        let mut ev = Event::new();
        ev.set(f::MESSAGE, text.clone());
        for (k, v) in &self.set {
            if let FieldKey::Known(id) = k
                && (*id == f::EVENT_KIND || *id == f::EVENT_CATEGORY)
            {
                ev.set(*id, v.clone());
            }
        }
        ev.set(f::EVENT_TYPE, schema::value::str_array(&["info"]));
        ev.set(f::EVENT_DATASET, self.dataset.clone());
        ev.set(f::EVENT_MODULE, self.module.clone());
        if let Some(c) = &self.component {
            ev.set(f::MLOPS_COMPONENT, c.clone());
        }
        ev
    }

    /// The JSON member whose array elements become events, if any.
    pub fn explode(&self) -> Option<&str> {
        match &self.body {
            Body::Json(j) => j.explode.as_deref(),
            _ => None,
        }
    }

    /// Parses `text` as this format, pushing one event (several for exploded
    /// JSON documents) onto `out`. The events carry the parsed fields,
    /// `@timestamp` when the record has one, and dataset/module/component;
    /// the caller adds `event.original` and provenance.
    pub(crate) fn parse(
        &self,
        reg: &Registry,
        text: &Str,
        time: &TimeContext,
        scratch: &mut Scratch,
        depth: u8,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let first = match &self.body {
            Body::Patterns(alts) => {
                let mut first_miss = None;
                // Misses of fast paths (`verify`): reported only when no
                // other alternative was tried.
                let mut fast_miss = None;
                let mut resume = 0;
                for (i, alt) in alts.iter().enumerate() {
                    if let Some(v) = &alt.verify
                        && !v.is_match(text)
                    {
                        fast_miss.get_or_insert(Miss::Regex(v));
                        resume = 0;
                        continue;
                    }
                    match self.parse_alt(reg, alt, resume, text, time, scratch, depth, out) {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            resume = match (&e, alts.get(i + 1)) {
                                (Miss::Shape(_, got), Some(next)) => next.shared.min(*got),
                                _ => 0,
                            };
                            if alt.fast {
                                fast_miss.get_or_insert(e);
                            } else {
                                first_miss.get_or_insert(e);
                            }
                        }
                    }
                }
                first_miss
                    .or(fast_miss)
                    .unwrap_or(Miss::Reject(Reject::new("no patterns")))
            }
            Body::Json(j) => match self.parse_json(j, text, time, scratch, out) {
                Ok(()) => return Ok(()),
                Err(e) => Miss::Reject(e),
            },
            Body::Builtin(_, parser) => {
                self.reset_temps(scratch);
                let mut ctx = Ctx::cached(time, text, scratch);
                match parser(text, &mut ctx).and_then(|()| self.finish(&mut ctx, &[], &[])) {
                    Ok(()) => {
                        out.push(ctx.event);
                        return Ok(());
                    }
                    Err(e) => Miss::Reject(e),
                }
            }
            Body::Plain => {
                self.reset_temps(scratch);
                let mut ctx = Ctx::cached(time, text, scratch);
                ctx.event.set(f::MESSAGE, text.clone());
                self.finish(&mut ctx, &[], &[])?;
                out.push(ctx.event);
                return Ok(());
            }
        };
        if depth == 0 {
            for (_, idx) in &self.fallback {
                if reg.formats[*idx]
                    .parse(reg, text, time, scratch, depth + 1, out)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(first.into_reject())
    }

    fn reset_temps(&self, scratch: &mut Scratch) {
        if scratch.temps.len() == self.temps.len() {
            scratch.temps.fill(None);
        } else {
            scratch.temps.clear();
            scratch.temps.resize(self.temps.len(), None);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_alt<'f>(
        &self,
        reg: &Registry,
        alt: &'f Alt,
        resume: usize,
        text: &Str,
        time: &TimeContext,
        scratch: &mut Scratch,
        depth: u8,
        out: &mut Vec<Event>,
    ) -> Result<(), Miss<'f>> {
        self.reset_temps(scratch);
        match &alt.kind {
            AltKind::Delegate(_, idx) => {
                if depth > 1 {
                    return Err(Miss::Reject(Reject::new(
                        "delegation is at most two levels deep",
                    )));
                }
                Ok(reg.formats[*idx].parse(reg, text, time, scratch, depth + 1, out)?)
            }
            AltKind::Dissect(d, targets) => {
                let mut spans = std::mem::take(&mut scratch.spans);
                if let Err(got) = d.resume(text.as_bytes(), &mut spans, &mut scratch.ends, resume) {
                    scratch.spans = spans;
                    return Err(Miss::Shape(d, got));
                }
                Ok(self.map_spans(alt, targets, spans, text, time, scratch, out)?)
            }
            AltKind::Split(name, split, targets) => {
                let mut spans = std::mem::take(&mut scratch.spans);
                if !split(text, &mut spans) {
                    scratch.spans = spans;
                    return Err(Miss::Split(name));
                }
                Ok(self.map_spans(alt, targets, spans, text, time, scratch, out)?)
            }
            AltKind::Regex(re, targets) => {
                let mut locs = re.capture_locations();
                let Some(m) = re.captures_read(&mut locs, text) else {
                    return Err(Miss::Regex(re));
                };
                if m.start() != 0 || m.end() != text.len() {
                    return Err(Miss::Whole(re));
                }
                let mut ctx = Ctx::cached(time, text, scratch);
                for (group, target) in targets {
                    if let Some((a, b)) = locs.get(*group) {
                        self.assign(&mut ctx, target, text, a, b)?;
                    }
                }
                self.finish(&mut ctx, &alt.set, &alt.steps)?;
                out.push(ctx.event);
                Ok(())
            }
        }
    }

    /// Stores the captures of a dissect pattern or splitter (`spans`, by
    /// slot) and finishes the event.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn map_spans(
        &self,
        alt: &Alt,
        targets: &[Target],
        spans: Vec<Option<Span>>,
        text: &Str,
        time: &TimeContext,
        scratch: &mut Scratch,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let event = {
            let mut ctx = Ctx::cached(time, text, scratch);
            let mut result = Ok(());
            for (slot, span) in spans.iter().enumerate() {
                if let Some((a, b)) = *span
                    && let Err(e) = self.assign(&mut ctx, &targets[slot], text, a, b)
                {
                    result = Err(e);
                    break;
                }
            }
            result
                .and_then(|()| self.finish(&mut ctx, &alt.set, &alt.steps))
                .map(|()| ctx.event)
        };
        // The buffer goes back for the next record, whatever the outcome.
        scratch.spans = spans;
        out.push(event?);
        Ok(())
    }

    /// Inlined into the capture loops: as a call, its entry and exit were
    /// about a fifth of its cost on `nginx.ingress` (17 captures a line).
    #[inline(always)]
    fn assign(
        &self,
        ctx: &mut Ctx<'_>,
        target: &Target,
        text: &Str,
        a: usize,
        b: usize,
    ) -> Result<(), Reject> {
        if a == b {
            return Ok(());
        }
        let s = &text[a..b];
        if !self.null_values.is_empty() && self.null_values.iter().any(|n| n == s) {
            return Ok(());
        }
        match target {
            Target::Skip => {}
            Target::Temp(i) => ctx.temps[*i] = Some((a, b)),
            Target::Custom(k) => ctx.event.insert(k.clone(), Value::Str(text.slice_ref(s))),
            Target::Field(id, ty) if ty.is_text() => ctx.event.set_slice(*id, text, s),
            // Status codes and sizes: the common non-text capture.
            Target::Field(id, FieldType::Long) if let Some(n) = crate::convert::parse_i64(s) => {
                ctx.event.set(*id, Value::Int(n))
            }
            Target::Field(id, ty) => match crate::convert::str_to_value(s, *ty)
                .or_else(|| text_to_value(text.slice_ref(s), *ty))
            {
                Some(v) => ctx.event.set(*id, v),
                None => {
                    return Err(Reject::new(format!(
                        "{}: `{}` is not of type {:?}",
                        id.name(),
                        clip(s),
                        ty
                    )));
                }
            },
        }
        Ok(())
    }

    /// Timestamp, fixed fields and enrichment steps.
    fn finish(
        &self,
        ctx: &mut Ctx<'_>,
        alt_set: &[(FieldKey, Value)],
        alt_steps: &[Step],
    ) -> Result<(), Reject> {
        if let Some(rule) = &self.timestamp {
            let field;
            let raw = match &rule.src {
                TsSrc::Temp(i) => ctx.temp(*i),
                TsSrc::Field(k) => {
                    field = ctx
                        .event
                        .get(k.name())
                        .and_then(|v| v.to_text().map(|c| c.into_owned()));
                    field.as_deref()
                }
                TsSrc::Json => None,
            };
            if let Some(raw) = raw {
                self.apply_timestamp(ctx, rule, raw)?;
            }
        }
        for (k, v) in alt_set.iter().chain(&self.set) {
            match k {
                FieldKey::Known(id) => ctx.event.set_default(*id, v.clone()),
                other => {
                    if ctx.event.get(other.name()).is_none() {
                        ctx.event.insert(other.clone(), v.clone());
                    }
                }
            }
        }
        for step in alt_steps.iter().chain(&self.steps) {
            step.run(ctx)?;
        }
        ctx.event
            .set_default(f::EVENT_DATASET, self.dataset.clone());
        ctx.event.set_default(f::EVENT_MODULE, self.module.clone());
        // The ML API steps set the component just before: look from the end.
        if let Some(c) = &self.component
            && ctx.event.get_id_recent(f::MLOPS_COMPONENT).is_none()
        {
            ctx.event.set(f::MLOPS_COMPONENT, c.clone());
        }
        Ok(())
    }

    fn apply_timestamp(
        &self,
        ctx: &mut Ctx<'_>,
        rule: &TimestampRule,
        raw: &str,
    ) -> Result<(), Reject> {
        let key = rule as *const TimestampRule as usize;
        if let Some(c) = ctx.ts_cache.as_deref_mut()
            && c.rule == key
            && let Some(t) = c.ts
        {
            if c.raw == raw.as_bytes() {
                ctx.event.set(f::AT_TIMESTAMP, t);
                return Ok(());
            }
            if let Some(shift) = c.seconds.and_then(|s| s.shift(&c.raw, raw.as_bytes())) {
                let t = schema::Timestamp(t.0 + shift);
                c.raw.clear();
                c.raw.extend_from_slice(raw.as_bytes());
                c.ts = Some(t);
                ctx.event.set(f::AT_TIMESTAMP, t);
                return Ok(());
            }
        }
        let zoned;
        let time = match rule.zone {
            Some(z) => {
                zoned = TimeContext {
                    zone: z,
                    reference: ctx.time.reference,
                };
                &zoned
            }
            None => ctx.time,
        };
        for (i, l) in rule.layouts.iter().enumerate() {
            if let Some((t, seconds)) = l.parse_spanned(raw, time) {
                // A shifted text is read by the layout that read this one
                // only if no layout before it would take it first.
                let seconds = seconds.filter(|_| i == 0);
                ctx.event.set(f::AT_TIMESTAMP, t);
                if let Some(c) = ctx.ts_cache.as_deref_mut() {
                    c.rule = key;
                    c.raw.clear();
                    c.raw.extend_from_slice(raw.as_bytes());
                    c.ts = Some(t);
                    c.seconds = seconds;
                }
                return Ok(());
            }
        }
        Err(Reject::new(format!(
            "timestamp `{}` does not fit {}",
            clip(raw),
            rule.layouts
                .iter()
                .map(|l| format!("`{}`", l.source()))
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    fn parse_json(
        &self,
        j: &JsonBody,
        text: &Str,
        time: &TimeContext,
        scratch: &mut Scratch,
        out: &mut Vec<Event>,
    ) -> Result<(), Reject> {
        let trimmed = text.trim_start();
        let items = match j.explode.as_deref() {
            Some("") if trimmed.starts_with('[') => Some(array_items(text)?),
            Some(member) if !member.is_empty() && trimmed.starts_with('{') => {
                if j.explode_probed
                    && let Ok(Some(ev)) = self.map_json_unless(j, text, text, time, scratch, true)
                {
                    out.push(ev);
                    return Ok(());
                }
                // A document with the member as an array, or a record that
                // is refused: looked at as before the probe.
                explode_items(text, member, j.explode_finder.as_ref())?
            }
            _ => None,
        };
        if let Some(items) = items {
            let member = j.explode.as_deref().unwrap_or("");
            let start = out.len();
            for (i, item) in items.iter().enumerate() {
                match self.map_json(j, text, item, time, scratch) {
                    Ok(mut ev) => {
                        ev.set_slice(f::EVENT_ORIGINAL, text, item);
                        ev.set(f::EVENT_SEQUENCE, i as i64);
                        out.push(ev);
                    }
                    Err(e) => {
                        out.truncate(start);
                        return Err(Reject::new(format!("{member}[{i}]: {}", e.0)));
                    }
                }
            }
            return Ok(());
        }
        if !trimmed.starts_with('{') {
            return Err(Reject::new("not a JSON object"));
        }
        let ev = self.map_json(j, text, text, time, scratch)?;
        out.push(ev);
        Ok(())
    }

    /// Maps one JSON object (`part`, a slice of `text`) to an event.
    fn map_json(
        &self,
        j: &JsonBody,
        text: &Str,
        part: &str,
        time: &TimeContext,
        scratch: &mut Scratch,
    ) -> Result<Event, Reject> {
        self.map_json_unless(j, text, part, time, scratch, false)
            .map(|ev| ev.expect("without `unless_probed` every mapping ends in an event"))
    }

    /// `map_json`, or `None` (before anything else is done) when
    /// `unless_probed` and the extraction found the explode member as an
    /// array.
    fn map_json_unless(
        &self,
        j: &JsonBody,
        text: &Str,
        part: &str,
        time: &TimeContext,
        scratch: &mut Scratch,
        unless_probed: bool,
    ) -> Result<Option<Event>, Reject> {
        let merge = j.keep.as_deref() == Some("");
        let (vals, whole) = if merge {
            // ECS documents are merged field by field: build the whole tree.
            let doc =
                schema::json::parse_slice(text, part).map_err(|e| Reject::new(e.to_string()))?;
            if !matches!(doc, Value::Object(_)) {
                return Err(Reject::new("not a JSON object"));
            }
            let vals = j.trie.paths().iter().map(|p| doc.at(p).cloned()).collect();
            (
                schema::json::Extracted {
                    values: vals,
                    hits: Vec::new(),
                    probed: false,
                },
                Some(doc),
            )
        } else {
            let vals = schema::json::extract(text, part, &j.trie).map_err(|e| match e {
                schema::json::JsonError::NotAnObject(_) => Reject::new("not a JSON object"),
                other => Reject::new(other.to_string()),
            })?;
            (vals, None)
        };
        let schema::json::Extracted {
            values: vals,
            hits,
            probed,
        } = vals;
        if unless_probed && probed {
            return Ok(None);
        }
        let paths = j.trie.paths();
        for (idx, re, test) in &j.require {
            let ok = vals[*idx]
                .as_ref()
                .and_then(Value::to_text)
                .is_some_and(|t| match test {
                    Test::NonEmpty => !t.is_empty(),
                    Test::Prefix(p) => t.starts_with(p.as_str()),
                    Test::Equal(p) => *t == **p,
                    Test::Regex => re.is_match(&t),
                });
            if !ok {
                return Err(Reject::new(format!(
                    "`{}` is missing or does not match `{}`",
                    paths[*idx],
                    re.as_str()
                )));
            }
        }
        self.reset_temps(scratch);
        let mut ctx = Ctx::cached(time, text, scratch);
        for (key, ty, array, idx) in &j.fields {
            if let Some(v) = vals[*idx]
                .as_ref()
                .and_then(|v| json_to_value(v, *ty, *array))
            {
                ctx.event.insert(key.clone(), v);
            }
        }
        if let (Some(rule), Some(idx)) = (&self.timestamp, j.timestamp)
            && let Some(raw) = vals[idx].as_ref().and_then(Value::to_text)
        {
            self.apply_timestamp(&mut ctx, rule, &raw)?;
        }
        match (j.keep.as_deref(), whole) {
            (Some(""), Some(doc)) => merge_top_level(&mut ctx.event, doc),
            (Some(_), _) => {
                let mut doc =
                    schema::rawjson::RawJson::new(text.slice_ref(part), j.asked.clone(), vals);
                if let Some(under) = j.trie.find_under() {
                    doc = doc.with_hits(under, hits);
                }
                if let Some(key) = &j.keep_key {
                    ctx.event
                        .insert(key.clone(), Value::Json(std::sync::Arc::new(doc)));
                }
            }
            (None, _) => {}
        }
        self.finish(&mut ctx, &[], &[])?;
        Ok(Some(ctx.event))
    }
}

/// The raw JSON text of each element of `member` when the document has that
/// member as an array.
///
/// `finder` finds the quoted name of `member` (see [`member_finder`]).
fn explode_items<'t>(
    text: &'t str,
    member: &str,
    finder: Option<&memchr::memmem::Finder<'static>>,
) -> Result<Option<Vec<&'t str>>, Reject> {
    // Most records are single events: look for the member's name before
    // parsing the document's top level.
    let found = match finder {
        Some(f) => f.find(text.as_bytes()).is_some(),
        None => member_finder(member).find(text.as_bytes()).is_some(),
    };
    if !found {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Top<'a>(
        #[serde(borrow)] BTreeMap<std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue>,
    );
    let top: Top<'t> =
        serde_json::from_str(text).map_err(|e| Reject::new(format!("invalid JSON: {e}")))?;
    let Some(raw) = top.0.get(member) else {
        return Ok(None);
    };
    let items: Vec<&'t serde_json::value::RawValue> = match serde_json::from_str(raw.get()) {
        Ok(items) => items,
        Err(_) => return Ok(None),
    };
    Ok(Some(items.into_iter().map(|r| r.get()).collect()))
}

/// A finder of `"member"`: the name of a member as a key, or a string
/// value, in a document's text.
fn member_finder(member: &str) -> memchr::memmem::Finder<'static> {
    let quoted = [b"\"", member.as_bytes(), b"\""].concat();
    memchr::memmem::Finder::new(&quoted).into_owned()
}

/// The raw JSON text of each element of a top-level array.
fn array_items(text: &str) -> Result<Vec<&str>, Reject> {
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(text).map_err(|e| Reject::new(format!("invalid JSON: {e}")))?;
    Ok(items.into_iter().map(|r| r.get()).collect())
}

/// Merges a JSON object into the event's top level, flattening ECS objects
/// (as `Event::from_json` does); fields already set by the format win.
fn merge_top_level(event: &mut Event, doc: Value) {
    let Value::Object(members) = doc else { return };
    let mut text = Vec::new();
    schema::json::write_value(&Value::Object(members), &mut text);
    let parsed = match String::from_utf8(text)
        .ok()
        .and_then(|s| Event::from_json(&Str::from(s)).ok())
    {
        Some(e) => e,
        None => return,
    };
    for (k, v) in parsed.iter() {
        if event.get(k.name()).is_none() {
            event.insert(k.clone(), v.clone());
        }
    }
}

fn clip(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_string();
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// All formats, built-in and from configuration.
#[derive(Debug)]
pub struct Registry {
    pub(crate) formats: Vec<Format>,
    by_name: FxHashMap<String, usize>,
    /// Auto-detectable formats, highest priority first.
    pub(crate) detect_order: Vec<usize>,
}

impl Registry {
    /// The built-in formats.
    pub fn builtin() -> Registry {
        Registry::load(&[]).unwrap_or_else(|e| panic!("built-in formats compile (tested): {e}"))
    }

    /// Prepares the JSON documents the formats keep whole (a CloudTrail
    /// record under `aws.cloudtrail`, a Kubernetes audit event under
    /// `kubernetes.audit`) for the field paths detection rules read
    /// (`paths`, full dotted paths; see `detections::Engine::field_paths`):
    /// the first lookup of one of those below a kept document collects
    /// them all in one pass over its text, instead of parsing the whole
    /// document into a tree and walking it for each. Returns how many
    /// paths were taken, summed over the formats.
    pub fn read_also(&mut self, paths: &[String]) -> usize {
        let mut taken = 0;
        for f in &mut self.formats {
            let Body::Json(j) = &mut f.body else { continue };
            let Some(key) = &j.keep_key else { continue };
            let prefix = format!("{}.", key.name());
            // Paths the extraction pass already takes are served from its
            // values: collecting them again would cost a second pass over
            // the text of every document (a Kubernetes audit event's `verb`
            // is read by most rules).
            let first = j.trie.paths();
            let late: Vec<String> = paths
                .iter()
                .filter_map(|p| p.strip_prefix(&prefix))
                .filter(|p| !p.is_empty() && !first.iter().any(|f| f == p))
                .map(str::to_string)
                .collect();
            if late.is_empty() {
                continue;
            }
            taken += late.len();
            let asked = schema::rawjson::Asked::new(j.trie.paths().to_vec()).with_late(&late);
            j.asked = std::sync::Arc::new(asked);
        }
        taken
    }

    /// Built-in formats plus those in the given TOML files.
    pub fn with_files(paths: &[impl AsRef<Path>]) -> Result<Registry, FormatError> {
        let mut user = Vec::new();
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).map_err(|source| FormatError::Io {
                origin: p.display().to_string(),
                source,
            })?;
            user.push((p.display().to_string(), text));
        }
        Registry::load(&user)
    }

    /// Built-in formats plus user definitions given as (origin, TOML text).
    pub fn load(user: &[(String, String)]) -> Result<Registry, FormatError> {
        let mut specs = Vec::new();
        for (origin, text) in crate::formats::BUILTIN {
            let file: FormatFile = toml::from_str(text).map_err(|source| FormatError::Toml {
                origin: origin.to_string(),
                source,
            })?;
            specs.extend(
                file.format
                    .into_iter()
                    .map(|s| (origin.to_string(), true, s)),
            );
        }
        for (origin, text) in user {
            let file: FormatFile = toml::from_str(text).map_err(|source| FormatError::Toml {
                origin: origin.clone(),
                source,
            })?;
            specs.extend(file.format.into_iter().map(|s| (origin.clone(), false, s)));
        }
        Registry::compile(specs)
    }

    fn compile(specs: Vec<(String, bool, FormatSpec)>) -> Result<Registry, FormatError> {
        let mut formats = Vec::with_capacity(specs.len());
        let mut by_name = FxHashMap::default();
        let mut origins = Vec::new();
        for (origin, builtin, spec) in specs {
            let name = spec.name.clone();
            let invalid = |reason: String| FormatError::Invalid {
                origin: origin.clone(),
                name: name.clone(),
                reason,
            };
            if by_name.contains_key(&name) {
                return Err(invalid("a format with this name is already defined".into()));
            }
            let format = compile_format(spec, builtin).map_err(invalid)?;
            by_name.insert(name, formats.len());
            formats.push(format);
            origins.push(origin);
        }
        // Resolve delegations now that every name is known.
        for i in 0..formats.len() {
            let resolve = |n: &str| by_name.get(n).copied();
            let mut unknown = None;
            for (n, idx) in formats[i].fallback.iter_mut() {
                match resolve(n) {
                    Some(j) => *idx = j,
                    None => unknown = Some(n.clone()),
                }
            }
            if let Body::Patterns(alts) = &mut formats[i].body {
                for alt in alts {
                    if let AltKind::Delegate(n, idx) = &mut alt.kind {
                        match resolve(n) {
                            Some(j) => *idx = j,
                            None => unknown = Some(n.clone()),
                        }
                    }
                }
            }
            if let Some(n) = unknown {
                return Err(FormatError::Invalid {
                    origin: origins[i].clone(),
                    name: formats[i].name.clone(),
                    reason: format!("refers to unknown format `{n}`"),
                });
            }
        }
        let mut detect_order: Vec<usize> =
            (0..formats.len()).filter(|&i| formats[i].auto).collect();
        detect_order.sort_by_key(|&i| (std::cmp::Reverse(formats[i].priority), i));
        Ok(Registry {
            formats,
            by_name,
            detect_order,
        })
    }

    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, name: &str) -> Option<&Format> {
        self.index(name).map(|i| &self.formats[i])
    }

    pub fn format(&self, idx: usize) -> &Format {
        &self.formats[idx]
    }

    /// The names of all formats, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.formats.iter().map(|f| f.name.as_str()).collect();
        v.sort_unstable();
        v
    }
}

fn to_value(v: &toml::Value) -> Result<Value, String> {
    Ok(match v {
        toml::Value::String(s) => Value::Str(Str::from(s.as_str())),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(x) => Value::Float(*x),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_value).collect::<Result<_, _>>()?),
        other => return Err(format!("unsupported value `{other}` in `set`")),
    })
}

/// The key of a field a format definition names. An unregistered name is
/// interned (each distinct name leaked once, however many registries are
/// loaded), so the key is cloned into every event without an allocation.
pub(crate) fn format_key(name: &str) -> FieldKey {
    use std::sync::{LazyLock, Mutex};
    static NAMES: LazyLock<Mutex<rustc_hash::FxHashSet<&'static str>>> =
        LazyLock::new(Default::default);
    if let Some(id) = schema::FieldId::lookup(name) {
        return FieldKey::Known(id);
    }
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let interned = match names.get(name) {
        Some(n) => *n,
        None => {
            let n: &'static str = Box::leak(name.to_owned().into_boxed_str());
            names.insert(n);
            n
        }
    };
    FieldKey::from_static(interned)
}

fn compile_set(set: &BTreeMap<String, toml::Value>) -> Result<Vec<(FieldKey, Value)>, String> {
    set.iter()
        .map(|(k, v)| {
            let key = format_key(k);
            let mut value = to_value(v).map_err(|e| format!("set.{k}: {e}"))?;
            // One-element arrays of ECS array fields are stored as the element
            // (no allocation per event); they are still written as arrays.
            if let (FieldKey::Known(id), Value::Array(items)) = (&key, &value)
                && id.def().array
                && items.len() == 1
            {
                value = items[0].clone();
            }
            Ok((key, value))
        })
        .collect()
}

fn regex(what: &str, s: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("{what}: invalid regex: {e}"))
}

fn target(name: &str, temps: &mut Vec<String>) -> Target {
    if name.starts_with('_') {
        match source(name, temps) {
            Src::Temp(i) => Target::Temp(i),
            Src::Field(_) => unreachable!(),
        }
    } else if name.is_empty() || name.starts_with('?') {
        Target::Skip
    } else {
        match format_key(name) {
            FieldKey::Known(id) => Target::Field(id, id.ty()),
            custom => Target::Custom(custom),
        }
    }
}

fn named_steps() -> &'static [&'static NamedStep] {
    crate::formats::STEPS
}

fn compile_format(spec: FormatSpec, builtin: bool) -> Result<Format, String> {
    if spec.name.is_empty() || spec.name.contains(char::is_whitespace) {
        return Err("a format name must be non-empty and without spaces".into());
    }
    let dataset = spec.dataset.clone().unwrap_or_else(|| spec.name.clone());
    let module = spec
        .module
        .clone()
        .or_else(|| spec.component.clone())
        .unwrap_or_else(|| dataset.split('.').next().unwrap_or(&dataset).to_string());
    let mut temps: Vec<String> = Vec::new();

    let kinds = [
        spec.parser.is_some(),
        !spec.pattern.is_empty(),
        spec.json.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err("give exactly one of `parser`, `[[format.pattern]]` or `[format.json]`".into());
    }
    let body = if let Some(p) = &spec.parser {
        match p.as_str() {
            "plain" => Body::Plain,
            name => match crate::formats::PARSERS.iter().find(|(n, _)| *n == name) {
                Some((n, parser)) => Body::Builtin(n, *parser),
                None => {
                    return Err(format!(
                        "unknown parser `{name}` (known: plain, {})",
                        crate::formats::PARSERS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            },
        }
    } else if let Some(j) = &spec.json {
        // Every path the format reads: requirements, mappings, the timestamp
        // and the paths its steps read inside the kept document.
        let mut paths: Vec<String> = Vec::new();
        let index = |p: &str, paths: &mut Vec<String>| match paths.iter().position(|q| q == p) {
            Some(i) => i,
            None => {
                paths.push(p.to_string());
                paths.len() - 1
            }
        };
        let require = j
            .require
            .iter()
            .map(|(p, r)| {
                Ok((
                    index(p, &mut paths),
                    regex(&format!("json.require.{p}"), r)?,
                    Test::of(r),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let fields = j
            .fields
            .iter()
            .map(|(field, path)| {
                let key = format_key(field);
                let (ty, array) = match &key {
                    FieldKey::Known(id) => (id.ty(), id.def().array),
                    FieldKey::Custom(_) => (FieldType::Keyword, false),
                };
                // `path[]` keeps every element of an array, whatever the field.
                let (path, array) = match path.strip_suffix("[]") {
                    Some(p) => (p, true),
                    None => (path.as_str(), array),
                };
                (key, ty, array, index(path, &mut paths))
            })
            .collect();
        let timestamp = spec.timestamp.as_ref().map(|t| index(&t.field, &mut paths));
        let mut find = None;
        if let Some(keep) = j.keep.as_deref().filter(|k| !k.is_empty()) {
            let prefix = format!("{keep}.");
            for step in &spec.enrich {
                if let Some(named) = named_steps().iter().find(|n| n.name == step.trim()) {
                    for p in named.paths {
                        if let Some(rest) = p.strip_prefix(&prefix) {
                            index(rest, &mut paths);
                        }
                    }
                    if let Some((under, keys)) = named.find
                        && let Some(rest) = under.strip_prefix(&prefix)
                    {
                        if find.is_some() {
                            return Err(format!(
                                "step `{}`: only one step of a format can search the kept document",
                                named.name
                            ));
                        }
                        find = Some((rest, keys));
                    }
                }
            }
        }
        let mut trie = schema::json::PathTrie::new(paths.iter().map(String::as_str));
        if let Some((under, keys)) = find {
            trie = trie.with_find(under, keys);
        }
        // A member name with a dot would be a path in the trie.
        let explode_probed = match (j.explode.as_deref(), j.keep.as_deref()) {
            (Some(m), keep) if !m.is_empty() && !m.contains('.') && keep != Some("") => {
                trie.probe(m)
            }
            _ => false,
        };
        debug_assert_eq!(trie.paths(), &paths[..]);
        let asked = std::sync::Arc::new(schema::rawjson::Asked::new(paths.clone()));
        Body::Json(Box::new(JsonBody {
            trie,
            asked,
            require,
            explode: j.explode.clone(),
            explode_finder: j
                .explode
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(member_finder),
            explode_probed,
            keep: j.keep.clone(),
            keep_key: j.keep.as_deref().filter(|k| !k.is_empty()).map(format_key),
            fields,
            timestamp,
        }))
    } else {
        let mut alts: Vec<Alt> = Vec::new();
        for (i, p) in spec.pattern.iter().enumerate() {
            let mut alt =
                compile_alt(p, &mut temps).map_err(|e| format!("pattern {}: {e}", i + 1))?;
            if let (
                Some(Alt {
                    kind: AltKind::Dissect(before, _),
                    ..
                }),
                AltKind::Dissect(d, _),
            ) = (alts.last(), &alt.kind)
            {
                alt.shared = d.shared_fields(before);
            }
            alts.push(alt);
        }
        Body::Patterns(alts)
    };

    let timestamp = match &spec.timestamp {
        None => None,
        Some(ts) => {
            if ts.layouts.is_empty() {
                return Err("timestamp.layouts is empty".into());
            }
            let layouts = ts
                .layouts
                .iter()
                .map(|l| Layout::compile(l).map_err(|e| format!("timestamp layout `{l}`: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let zone = ts.timezone.as_deref().map(Zone::parse).transpose()?;
            let src = if matches!(body, Body::Json(_)) {
                TsSrc::Json
            } else {
                match source(&ts.field, &mut temps) {
                    Src::Temp(i) => TsSrc::Temp(i),
                    Src::Field(k) => TsSrc::Field(k),
                }
            };
            Some(TimestampRule { src, layouts, zone })
        }
    };
    let steps = spec
        .enrich
        .iter()
        .map(|s| compile_step(s, &mut temps, named_steps()))
        .collect::<Result<Vec<_>, _>>()?;
    let source_path = match &spec.source_path {
        None => None,
        Some(p) => {
            let re = regex("source_path.regex", &p.regex)?;
            let names: Vec<&str> = re.capture_names().flatten().collect();
            let mut fields = Vec::new();
            for (field, group) in &p.fields {
                if !names.contains(&group.as_str()) {
                    return Err(format!(
                        "source_path: the regex has no group named `{group}`"
                    ));
                }
                fields.push((format_key(field), group.clone()));
            }
            Some((re, fields))
        }
    };
    let multiline = spec
        .multiline
        .as_ref()
        .map(Multiline::compile)
        .transpose()?;
    Ok(Format {
        dataset: Str::from(dataset),
        module: Str::from(module),
        component: spec.component.as_deref().map(Str::from),
        description: spec.description,
        example: spec.example,
        priority: spec.priority,
        auto: spec.auto,
        builtin,
        hint: spec.hint.as_deref().map(|h| regex("hint", h)).transpose()?,
        path_hint: spec
            .path_hint
            .as_deref()
            .map(|h| regex("path_hint", h))
            .transpose()?,
        strip_ansi: spec.strip_ansi,
        source_path,
        multiline,
        on_mismatch: spec.on_mismatch,
        fallback: spec
            .fallback
            .iter()
            .map(|n| (n.clone(), usize::MAX))
            .collect(),
        null_values: spec.null_values,
        body,
        timestamp,
        set: compile_set(&spec.set)?,
        steps,
        temps,
        name: spec.name,
    })
}

fn compile_alt(p: &PatternSpec, temps: &mut Vec<String>) -> Result<Alt, String> {
    let rename = |capture: &str| -> String {
        p.fields
            .iter()
            .find(|(_, c)| c.as_str() == capture)
            .map(|(field, _)| field.clone())
            .unwrap_or_else(|| capture.replace("__", "."))
    };
    let kind = match (&p.dissect, &p.regex, &p.format, &p.split) {
        (None, None, None, Some(name)) => {
            let Some((name, names, split)) =
                crate::formats::SPLITTERS.iter().find(|(n, _, _)| n == name)
            else {
                return Err(format!(
                    "unknown splitter `{name}` (known: {})",
                    crate::formats::SPLITTERS
                        .iter()
                        .map(|(n, _, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let targets = names.iter().map(|n| target(&rename(n), temps)).collect();
            AltKind::Split(name, *split, targets)
        }
        (Some(d), None, None, None) => {
            let d = Dissect::compile(d).map_err(|e| format!("dissect: {e}"))?;
            let targets = d
                .names()
                .iter()
                .map(|n| target(&rename(n), temps))
                .collect();
            AltKind::Dissect(d, targets)
        }
        (None, Some(r), None, None) => {
            let re = regex("regex", r)?;
            let mut targets = Vec::new();
            for (i, name) in re.capture_names().enumerate() {
                if let Some(name) = name {
                    targets.push((i, target(&rename(name), temps)));
                }
            }
            AltKind::Regex(re, targets)
        }
        (None, None, Some(name), None) => AltKind::Delegate(name.clone(), usize::MAX),
        _ => return Err("give exactly one of `dissect`, `regex`, `format` or `split`".into()),
    };
    let steps = p
        .enrich
        .iter()
        .map(|s| compile_step(s, temps, named_steps()))
        .collect::<Result<Vec<_>, _>>()?;
    let verify = p
        .verify
        .as_deref()
        .map(|v| regex("verify", v))
        .transpose()?;
    let fast = verify.is_some() || matches!(kind, AltKind::Split(..));
    Ok(Alt {
        kind,
        set: compile_set(&p.set)?,
        steps,
        shared: 0,
        verify,
        fast,
    })
}

#[cfg(test)]
mod tests {
    use super::Test;

    /// Rule paths that the extraction pass of a kept document already
    /// takes are served from its values, not collected in a second pass.
    #[test]
    fn read_also_leaves_out_paths_the_extraction_takes() {
        let mut reg = super::Registry::builtin();
        let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let taken = reg.read_also(&paths(&[
            "kubernetes.audit.verb",
            "kubernetes.audit.objectRef.apiGroup",
            "aws.cloudtrail.eventName",
            "source.ip",
        ]));
        assert_eq!(taken, 0);
        let taken = reg.read_also(&paths(&[
            "kubernetes.audit.verb",
            "kubernetes.audit.requestObject.spec.hostPID",
            "aws.cloudtrail.resources.ARN",
        ]));
        assert_eq!(taken, 2);
    }

    #[test]
    fn requirement_tests_agree_with_their_regex() {
        let cases = [
            (".", Test::NonEmpty),
            (r"^audit\.k8s\.io/", Test::Prefix("audit.k8s.io/".into())),
            ("^Event$", Test::Equal("Event".into())),
            ("^", Test::Prefix(String::new())),
            ("^$", Test::Equal(String::new())),
            (r"^a\$", Test::Prefix("a$".into())),
            (r"^a\\b", Test::Prefix(r"a\b".into())),
            ("Event", Test::Regex),
            ("^Ev.nt$", Test::Regex),
            ("^a$b", Test::Regex),
            (r"^\d", Test::Regex),
            (r"^\<a", Test::Regex),
            ("^(?i)event", Test::Regex),
            ("^é", Test::Regex),
            ("^a|b", Test::Regex),
        ];
        let texts = [
            "",
            "Event",
            "event",
            "Events",
            "xEvent",
            "Event\n",
            "audit.k8s.io/v1",
            "auditXk8s.io/v1",
            "a",
            "a$",
            "a$b",
            r"a\b",
            "ab",
            "b",
            "1",
            "\n",
        ];
        for (re, want) in cases {
            let test = Test::of(re);
            assert_eq!(test, want, "{re}");
            let regex = regex::Regex::new(re).unwrap();
            for t in texts {
                let got = match &test {
                    Test::NonEmpty => !t.is_empty(),
                    Test::Prefix(p) => t.starts_with(p.as_str()),
                    Test::Equal(p) => t == p,
                    Test::Regex => regex.is_match(t),
                };
                if re != "." {
                    assert_eq!(got, regex.is_match(t), "{re} on {t:?}");
                }
            }
        }
    }
}
