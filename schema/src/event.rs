//! The normalized event: an ECS document.
//!
//! Storage is flat: a short vector of `(key, value)` pairs where registered
//! ECS fields are keyed by [`FieldId`] (an integer compare finds them) and
//! vendor documents that have no ECS equivalent (a Kubernetes
//! `requestObject`, a CloudTrail `requestParameters`) are kept as object
//! trees under one key. A dotted path reaches both: `url.path` is a key,
//! `kubernetes.audit.objectRef.resource` walks into the tree stored at
//! `kubernetes.audit`. Serialization nests dotted keys into objects, as ECS
//! documents are written.

use std::cmp::Ordering;
use std::net::IpAddr;

use crate::field::{FieldId, FieldKey, f};
use crate::time::Timestamp;
use crate::value::{Str, Value};

/// One normalized record.
#[derive(Debug, Default)]
pub struct Event {
    fields: Vec<(FieldKey, Value)>,
    /// A bit per registered field id (see [`Known::bit`]) set when a
    /// field with that id may be present: most lookups of absent fields end here without a scan.
    known: Known,
    /// Bit `len % 64` is set for the byte length of each unregistered key
    /// stored: inserting a key whose bit is clear (a format's vendor
    /// fields, of distinct lengths) adds it without comparing it with
    /// every entry.
    customs: u64,
    /// The first path segments of the stored keys, hashed to one bit in
    /// each word (see [`root_bits`]), computed on first use and cleared by
    /// any change: a lookup of an unregistered path whose root is absent
    /// ends there.
    roots: [std::sync::atomic::AtomicU64; 2],
}

/// Drops only the entries that own something. Most own nothing (numbers,
/// addresses, times, inline and static strings, registered keys), and the
/// drop glue the vector would call for each of them was 6% of the
/// instructions of the access-log benchmarks.
impl Drop for Event {
    fn drop(&mut self) {
        let len = self.fields.len();
        let entries = self.fields.as_mut_ptr();
        // SAFETY: the length is set to 0 first, so the vector drops none of
        // the entries and a panic below leaks the rest instead of dropping
        // any twice. Each of the `len` initialized entries is then dropped
        // once, or skipped when dropping it would do nothing (`owns`).
        unsafe {
            self.fields.set_len(0);
            for i in 0..len {
                let entry = entries.add(i);
                if owns(&*entry) {
                    std::ptr::drop_in_place(entry);
                }
            }
        }
    }
}

/// Whether dropping an entry does anything.
#[inline(always)]
fn owns((k, v): &(FieldKey, Value)) -> bool {
    match v {
        Value::Null
        | Value::Bool(_)
        | Value::Int(_)
        | Value::Float(_)
        | Value::Ip(_)
        | Value::Time(_) => !matches!(k, FieldKey::Known(_)),
        Value::Str(s) => s.is_shared() || !matches!(k, FieldKey::Known(_)),
        Value::Array(_) | Value::Object(_) | Value::Json(_) => true,
    }
}

impl Clone for Event {
    fn clone(&self) -> Event {
        Event {
            fields: self.fields.clone(),
            known: self.known,
            customs: self.customs,
            roots: [0, 1].map(|i| {
                std::sync::atomic::AtomicU64::new(
                    self.roots[i].load(std::sync::atomic::Ordering::Relaxed),
                )
            }),
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.fields == other.fields
    }
}

/// Tag (in `tags`) of events whose `@timestamp` was not in the record: the
/// normalizer took the time of the previous record of the stream, or the
/// time the record was read.
pub const TAG_TIMESTAMP_INFERRED: &str = "timestamp_inferred";

/// The bits of a path's first segment in [`Event::roots_mask`]: one in
/// each word, from two parts of one hash (a two-hash Bloom filter; with 15
/// roots about 5% of absent roots pass).
pub fn root_bits(path: &str) -> [u64; 2] {
    let root = path.split('.').next().unwrap_or("");
    // FNV-1a: stable, cheap on short segments.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in root.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    [1u64 << (h % 63), 1u64 << ((h >> 32) % 64)]
}

/// The bit of an unregistered key in [`Event`]'s `customs`: its length
/// modulo 64.
#[inline(always)]
fn custom_bit(name: &str) -> u64 {
    1 << (name.len() & 63)
}

/// Marks a computed mask (bit 63 is never a root bit).
const ROOTS_DONE: u64 = 1 << 63;

/// Bit [`Known::bit`] of its id set for every registered field that may
/// be present, as two words: a `u128` shift by a variable amount takes
/// several instructions, and this test runs a dozen times per field set.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Known([u64; 2]);

impl Known {
    /// The bit of an id: its low seven bits folded with the next ones.
    /// Ids are positions in the sorted registry, and `id % 128` alone put
    /// fields that go together on one bit (`event.module` and
    /// `url.original`, `event.outcome` and `url.path`, `@timestamp` and
    /// `event.duration` are 2304, 1792 and 512 apart), so that setting the
    /// second one scanned the event for it.
    #[inline(always)]
    fn bit(id: FieldId) -> u32 {
        (id.0 ^ (id.0 >> 7)) as u32 & 127
    }

    #[inline(always)]
    fn has(self, id: FieldId) -> bool {
        let b = Known::bit(id);
        self.0[(b >> 6) as usize] & (1 << (b & 63)) != 0
    }

    #[inline(always)]
    fn add(&mut self, id: FieldId) {
        let b = Known::bit(id);
        self.0[(b >> 6) as usize] |= 1 << (b & 63);
    }
}

/// As the `u128` the bits were stored in before.
impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bits = (self.0[1] as u128) << 64 | self.0[0] as u128;
        std::fmt::Debug::fmt(&bits, f)
    }
}

impl Event {
    pub fn new() -> Event {
        Event::with_capacity(32)
    }

    pub fn with_capacity(n: usize) -> Event {
        Event {
            fields: Vec::with_capacity(n),
            known: Known::default(),
            customs: 0,
            roots: Default::default(),
        }
    }

    /// The bits of the first segments of the stored keys ([`root_bits`]).
    pub fn roots_mask(&self) -> [u64; 2] {
        use std::sync::atomic::Ordering;
        // `lo` is published after `hi` (release/acquire): a thread that
        // sees a computed `lo` sees its `hi`.
        let lo = self.roots[0].load(Ordering::Acquire);
        if lo != 0 {
            return [lo, self.roots[1].load(Ordering::Relaxed)];
        }
        // A registered name is always stored as its id, and found by it:
        // a path search only needs the keys it cannot find that way
        // (unregistered names, and trees a longer path can lead into).
        let m = self.fields.iter().fold([ROOTS_DONE, 0], |m, (k, v)| {
            if matches!(k, FieldKey::Known(_))
                && !matches!(v, Value::Object(_) | Value::Json(_) | Value::Array(_))
            {
                return m;
            }
            let b = root_bits(k.name());
            [m[0] | b[0], m[1] | b[1]]
        });
        self.roots[1].store(m[1], Ordering::Relaxed);
        self.roots[0].store(m[0], Ordering::Release);
        m
    }

    /// False when no stored key that a search by path must look at (an
    /// unregistered name, or a tree under a registered one) starts with
    /// the first segment of `path` (`bits` = [`root_bits`] of it); true
    /// means one may. Registered fields are found by id, not by this.
    #[inline]
    pub fn may_have_root(&self, bits: [u64; 2]) -> bool {
        let m = self.roots_mask();
        m[0] & bits[0] != 0 && m[1] & bits[1] != 0
    }

    #[inline(always)]
    fn changed(&mut self) {
        *self.roots[0].get_mut() = 0;
    }

    fn recompute_known(&mut self) {
        let mut known = Known::default();
        let mut customs = 0;
        for (k, _) in &self.fields {
            match k {
                FieldKey::Known(id) => known.add(*id),
                FieldKey::Custom(name) => customs |= custom_bit(name),
            }
        }
        self.known = known;
        self.customs = customs;
    }

    /// Number of top-level entries (registered fields and trees).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Sets a field, replacing an earlier value of the same key.
    pub fn insert(&mut self, key: impl Into<FieldKey>, value: impl Into<Value>) {
        self.changed();
        let key = key.into();
        if let FieldKey::Known(id) = key {
            return self.set(id, value);
        }
        let value = value.into();
        let bit = custom_bit(key.name());
        if self.customs & bit != 0
            && let Some(slot) = self.fields.iter_mut().find(|(k, _)| *k == key)
        {
            slot.1 = value;
        } else {
            self.customs |= bit;
            self.fields.push((key, value));
        }
    }

    /// Sets a registered field (the fast path for parsers).
    ///
    /// Inlined, so that a value built by the caller goes straight into its
    /// slot instead of being written to the stack and read back (see
    /// [`Event::set_slice`]).
    #[inline(always)]
    pub fn set(&mut self, id: FieldId, value: impl Into<Value>) {
        let value = value.into();
        if self.known.has(id) {
            return self.replace(id, value);
        }
        self.known.add(id);
        self.push_known(id, value);
    }

    #[inline(always)]
    fn push_known(&mut self, id: FieldId, value: Value) {
        self.changed();
        self.fields.reserve(1);
        let len = self.fields.len();
        self.fields.spare_capacity_mut()[0].write((FieldKey::Known(id), value));
        // SAFETY: the slot at `len` was reserved and has just been written.
        unsafe { self.fields.set_len(len + 1) };
    }

    /// `set` of a field that may be present already.
    #[inline(never)]
    fn replace(&mut self, id: FieldId, value: Value) {
        // The new value may be a tree where the old one was not.
        self.changed();
        for (k, v) in self.fields.iter_mut() {
            if let FieldKey::Known(k) = k
                && *k == id
            {
                *v = value;
                return;
            }
        }
        self.push_known(id, value);
    }

    /// Sets a registered field to `sub`, a slice of `base` (see
    /// [`Str::slice_ref`]). The string is built in its slot of the event
    /// rather than built elsewhere and moved: a just-written short string
    /// read back for the move stalled on store forwarding, measured as a
    /// quarter of the time of `set` on the access-log benchmark.
    #[inline]
    pub fn set_slice(&mut self, id: FieldId, base: &Str, sub: &str) {
        if self.known.has(id) {
            for (k, v) in self.fields.iter_mut() {
                if let FieldKey::Known(k) = k
                    && *k == id
                {
                    match v {
                        Value::Str(s) => s.assign_slice_ref(base, sub),
                        other => *other = Value::Str(base.slice_ref(sub)),
                    }
                    return;
                }
            }
        }
        self.known.add(id);
        self.push_known(id, Value::Str(Str::new()));
        if let Some((_, Value::Str(s))) = self.fields.last_mut() {
            s.assign_slice_ref(base, sub);
        }
    }

    /// Sets a registered field only if it has no value yet.
    #[inline(always)]
    pub fn set_default(&mut self, id: FieldId, value: impl Into<Value>) {
        if self.known.has(id) && self.get_id(id).is_some() {
            return;
        }
        self.known.add(id);
        self.push_known(id, value.into());
    }

    /// Removes a field (by exact key) and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.changed();
        let i = self.fields.iter().position(|(k, _)| k.name() == name)?;
        let v = self.fields.remove(i).1;
        self.recompute_known();
        Some(v)
    }

    pub fn remove_id(&mut self, id: FieldId) -> Option<Value> {
        self.changed();
        if !self.known.has(id) {
            return None;
        }
        let i = self.fields.iter().position(|(k, _)| k.id() == Some(id))?;
        let v = self.fields.remove(i).1;
        self.recompute_known();
        Some(v)
    }

    /// Iterates over the stored entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&FieldKey, &Value)> {
        self.fields.iter().map(|(k, v)| (k, v))
    }

    /// The value of a registered field.
    #[inline]
    pub fn get_id(&self, id: FieldId) -> Option<&Value> {
        if !self.known.has(id) {
            return None;
        }
        for (k, v) in &self.fields {
            if let FieldKey::Known(k) = k
                && *k == id
            {
                return Some(v);
            }
        }
        None
    }

    /// [`Event::get_id`] scanning from the field added last: for a field
    /// that was just set (a step reading what the step before it set), the
    /// scan ends after a few entries instead of going through the event.
    /// The same value as `get_id` unless the event repeats the key, which
    /// only an event read from a document can (`set`, `set_default` and
    /// `insert` replace or keep a present field).
    #[inline]
    pub fn get_id_recent(&self, id: FieldId) -> Option<&Value> {
        if !self.known.has(id) {
            return None;
        }
        self.fields.iter().rev().find_map(|(k, v)| match k {
            FieldKey::Known(k) if *k == id => Some(v),
            _ => None,
        })
    }

    /// The value at a dotted path: a stored key, or a path into an object
    /// tree stored under a prefix of it. Arrays are not walked (see
    /// [`Event::for_each_value`]).
    pub fn get(&self, path: &str) -> Option<&Value> {
        if let Some(id) = FieldId::lookup(path)
            && let Some(v) = self.get_id(id)
        {
            return Some(v);
        }
        for (k, v) in &self.fields {
            let name = k.name();
            if let FieldKey::Custom(_) = k
                && name == path
            {
                return Some(v);
            }
            // Only objects and documents have paths below them.
            if matches!(v, Value::Object(_) | Value::Json(_) | Value::Array(_))
                && let Some(rest) = strip_segment_prefix(path, name)
                && let Some(found) = walk(v, rest)
            {
                return Some(found);
            }
        }
        None
    }

    /// Calls `f` with every value at a dotted path, walking through arrays
    /// on the way and flattening an array found at the end: the values a
    /// matcher has to consider for a field that may be multi-valued.
    pub fn for_each_value<'a>(&'a self, path: &str, f: &mut dyn FnMut(&'a Value)) {
        for (k, v) in &self.fields {
            let name = k.name();
            if name == path {
                leaves(v, f);
            } else if let Some(rest) = strip_segment_prefix(path, name) {
                walk_all(v, rest, f);
            }
        }
    }

    pub fn get_str(&self, id: FieldId) -> Option<&str> {
        self.get_id(id)?.as_str()
    }

    pub fn get_i64(&self, id: FieldId) -> Option<i64> {
        self.get_id(id)?.as_i64()
    }

    pub fn get_ip(&self, id: FieldId) -> Option<IpAddr> {
        self.get_id(id)?.as_ip()
    }

    /// `@timestamp`.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.get_id(f::AT_TIMESTAMP)?.as_time()
    }

    /// Whether `@timestamp` was inferred (the record had no time of its
    /// own; see [`TAG_TIMESTAMP_INFERRED`]).
    pub fn timestamp_inferred(&self) -> bool {
        match self.get_id(f::TAGS) {
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(TAG_TIMESTAMP_INFERRED)),
            Some(v) => v.as_str() == Some(TAG_TIMESTAMP_INFERRED),
            None => false,
        }
    }

    /// `event.original`: the record as it was read.
    pub fn original(&self) -> Option<&str> {
        self.get_str(f::EVENT_ORIGINAL)
    }

    /// `event.dataset`.
    pub fn dataset(&self) -> Option<&str> {
        self.get_str(f::EVENT_DATASET)
    }

    /// Serializes the event as one line of JSON (no trailing newline),
    /// nesting dotted keys into objects.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        crate::json::write_event(&self.fields, out);
    }

    pub fn to_json_string(&self) -> String {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON output is UTF-8")
    }

    /// Reads an event from a JSON object. Objects under ECS field sets
    /// (`event`, `url`, `http.request`, ...) are flattened into registered
    /// fields; other objects are kept as trees. `@timestamp` is read as a
    /// time when it is RFC 3339; every other value keeps its JSON type.
    pub fn from_json(src: &Str) -> Result<Event, crate::json::JsonError> {
        crate::json::read_event(src)
    }

    pub(crate) fn from_fields(fields: Vec<(FieldKey, Value)>) -> Event {
        let mut e = Event {
            fields,
            known: Known::default(),
            customs: 0,
            roots: Default::default(),
        };
        e.recompute_known();
        e
    }
}

/// If `path` is `prefix` followed by `.` and more, the rest after the dot.
#[inline]
pub(crate) fn strip_segment_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    // The dot after the prefix is checked first: most keys fail there
    // without comparing the prefix itself.
    if path.as_bytes().get(prefix.len()) != Some(&b'.') || !path.starts_with(prefix) {
        return None;
    }
    Some(&path[prefix.len() + 1..])
}

/// Walks a dotted path through object members (keys may themselves contain
/// dots, so every split point is tried, longest key first).
fn walk<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Value::Json(doc) = v {
        return doc.at(path);
    }
    let Value::Object(members) = v else {
        return None;
    };
    for (k, child) in members {
        if **k == *path {
            return Some(child);
        }
        if let Some(rest) = strip_segment_prefix(path, k)
            && let Some(found) = walk(child, rest)
        {
            return Some(found);
        }
    }
    None
}

/// The values at a dotted path below `v`, as [`Event::for_each_value`]
/// finds them below a field (arrays passed through, the end flattened).
pub fn walk_value<'a>(v: &'a Value, path: &str, f: &mut dyn FnMut(&'a Value)) {
    walk_all(v, path, f)
}

fn walk_all<'a>(v: &'a Value, path: &str, f: &mut dyn FnMut(&'a Value)) {
    match v {
        Value::Object(members) => {
            for (k, child) in members {
                if **k == *path {
                    leaves(child, f);
                } else if let Some(rest) = strip_segment_prefix(path, k) {
                    walk_all(child, rest, f);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_all(item, path, f);
            }
        }
        // A path the detection rules read: collected with the others in
        // one pass over the text, without building the whole tree.
        Value::Json(doc) if let Some(found) = doc.collected(path) => {
            found.iter().for_each(&mut *f);
        }
        Value::Json(doc) => match doc.at(path) {
            // An extracted value, or a path without arrays on the way.
            Some(found) => leaves(found, f),
            None if doc.may_have(path) => walk_all(doc.tree(), path, f),
            None => {}
        },
        _ => {}
    }
}

fn leaves<'a>(v: &'a Value, f: &mut dyn FnMut(&'a Value)) {
    match v {
        Value::Array(items) => {
            for item in items {
                leaves(item, f);
            }
        }
        Value::Json(doc) => leaves(doc.tree(), f),
        other => f(other),
    }
}

/// Orders keys segment by segment (`a.b` < `a.b.c` < `a.b-c`), so that keys
/// sharing an object prefix are adjacent when serialized.
pub(crate) fn cmp_keys(a: &FieldKey, b: &FieldKey) -> Ordering {
    match (a, b) {
        // Registered names use only [a-z0-9_@.], where byte order equals
        // segment order, and ids follow byte order.
        (FieldKey::Known(x), FieldKey::Known(y)) => x.cmp(y),
        _ => cmp_dotted(a.name().as_bytes(), b.name().as_bytes()),
    }
}

/// `a.split('.').cmp(b.split('.'))` without splitting: byte order where `.`
/// (the end of a segment) sorts before every other byte, and the end of
/// the name before `.`.
#[inline]
fn cmp_dotted(a: &[u8], b: &[u8]) -> Ordering {
    let same = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(same), b.get(same)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) | (Some(b'.'), Some(_)) => Ordering::Less,
        (Some(_), None) | (Some(_), Some(b'.')) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::f;

    #[test]
    fn unregistered_keys_are_replaced_whatever_their_lengths() {
        let mut e = Event::new();
        // `aa.b` and `cc.d` share a length (and a bit of `customs`); `x.y`
        // and a key 64 bytes longer share one too.
        let long = format!("x.y{}", "z".repeat(64));
        for (k, v) in [("aa.b", 1), ("cc.d", 2), ("x.y", 3), (long.as_str(), 4)] {
            e.insert(k, Value::Int(v));
        }
        e.insert("cc.d", Value::Int(20));
        e.insert("aa.b", Value::Int(10));
        e.insert(long.as_str(), Value::Int(40));
        e.insert("x.y", Value::Int(30));
        e.set(f::MESSAGE, "m");
        let got: Vec<(String, Option<i64>)> = e
            .iter()
            .map(|(k, v)| (k.name().to_string(), v.as_i64()))
            .collect();
        assert_eq!(
            got,
            [
                ("aa.b".to_string(), Some(10)),
                ("cc.d".to_string(), Some(20)),
                ("x.y".to_string(), Some(30)),
                (long.clone(), Some(40)),
                ("message".to_string(), None),
            ]
        );
        // After a removal the others are still found and replaced.
        assert_eq!(e.remove("aa.b"), Some(Value::Int(10)));
        e.insert("cc.d", Value::Int(21));
        e.insert("aa.b", Value::Int(11));
        assert_eq!(e.len(), 5);
        assert_eq!(e.get("cc.d"), Some(&Value::Int(21)));
        assert_eq!(e.get("aa.b"), Some(&Value::Int(11)));
        // So in a clone, and in an event read from JSON.
        let mut c = e.clone();
        c.insert("x.y", Value::Int(31));
        assert_eq!(c.len(), 5);
        let mut j = Event::from_json(&Str::from(r#"{"vendor":{"k":1},"other.key":2}"#)).unwrap();
        let n = j.len();
        j.insert("other.key", Value::Int(3));
        assert_eq!(j.len(), n);
        assert_eq!(j.get("other.key"), Some(&Value::Int(3)));
    }

    fn obj(members: Vec<(&'static str, Value)>) -> Value {
        Value::Object(
            members
                .into_iter()
                .map(|(k, v)| (Str::from_static(k), v))
                .collect(),
        )
    }

    /// A path whose last key is not in a raw document's text is answered
    /// without parsing it; every other lookup finds what the parsed tree
    /// holds, including keys written with `\u` escapes and dotted keys
    /// (fails if the probe wrongly rules a path out, or parses anyway).
    #[test]
    fn raw_documents_are_not_parsed_for_keys_they_lack() {
        let doc = |text: &str| {
            let mut e = Event::new();
            e.insert(
                "k.obj",
                Value::Json(std::sync::Arc::new(crate::rawjson::RawJson::unparsed(
                    Str::from(text.to_string()),
                ))),
            );
            e
        };
        let values = |e: &Event, path: &str| {
            let mut out = Vec::new();
            e.for_each_value(path, &mut |v| out.push(v.to_text().map(|t| t.into_owned())));
            out
        };
        let parsed = |e: &Event| match e.get("k.obj") {
            Some(Value::Json(d)) => d.is_parsed(),
            _ => panic!("a raw document"),
        };
        let plain = doc(
            r#"{"spec":{"volumes":[{"hostPath":{"path":"/"}},{"name":"x"}],"a.b":{"c":"dotted"}}}"#,
        );
        assert!(values(&plain, "k.obj.spec.volumes.hostPath.secret").is_empty());
        assert!(values(&plain, "k.obj.spec.nothere").is_empty());
        assert!(!parsed(&plain), "absent keys need no parse");
        assert_eq!(
            values(&plain, "k.obj.spec.volumes.hostPath.path"),
            [Some("/".to_string())]
        );
        assert!(parsed(&plain));
        let dotted = doc(r#"{"spec":{"a.b":{"c":"dotted"}}}"#);
        assert_eq!(
            values(&dotted, "k.obj.spec.a.b.c"),
            [Some("dotted".to_string())]
        );
        // `hostP\u0061th` is `hostPath`: the probe must not rule it out.
        let escaped = doc(r#"{"spec":{"hostP\u0061th":{"p\u0061th":"/etc"}}}"#);
        assert_eq!(
            values(&escaped, "k.obj.spec.hostPath.path"),
            [Some("/etc".to_string())]
        );
        // Array indexes and other characters are looked up in the tree.
        let arr = doc(r#"{"items":["a","b"],"odd key":{"x":1}}"#);
        assert_eq!(
            arr.get("k.obj.items.1").and_then(Value::to_text).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn recent_lookup_finds_what_get_id_finds() {
        let mut e = Event::new();
        assert_eq!(e.get_id_recent(f::URL_PATH), None);
        e.set(f::URL_PATH, "/a");
        e.insert("custom.thing", 3i64);
        e.set(f::URL_QUERY, "q");
        for id in [f::URL_PATH, f::URL_QUERY, f::URL_ORIGINAL] {
            assert_eq!(e.get_id_recent(id), e.get_id(id));
        }
        e.set(f::URL_PATH, "/b");
        assert_eq!(
            e.get_id_recent(f::URL_PATH).and_then(Value::as_str),
            Some("/b")
        );
    }

    #[test]
    fn set_get_replace() {
        let mut e = Event::new();
        e.set(f::URL_PATH, "/a");
        e.set(f::URL_PATH, "/b");
        e.insert("custom.thing", 3i64);
        assert_eq!(e.len(), 2);
        assert_eq!(e.get_str(f::URL_PATH), Some("/b"));
        assert_eq!(e.get("url.path").and_then(Value::as_str), Some("/b"));
        assert_eq!(e.get("custom.thing").and_then(Value::as_i64), Some(3));
        assert_eq!(e.get("custom"), None);
        e.set_default(f::URL_PATH, "/c");
        assert_eq!(e.get_str(f::URL_PATH), Some("/b"));
        assert_eq!(
            e.remove("url.path")
                .and_then(|v| v.as_str().map(str::to_owned)),
            Some("/b".into())
        );
        assert_eq!(e.get_id(f::URL_PATH), None);
    }

    #[test]
    fn root_filter_never_hides_a_present_root() {
        let mut e = Event::new();
        assert!(!e.may_have_root(root_bits("kubernetes.audit.verb")));
        e.insert("kubernetes.audit", Value::Object(vec![]));
        e.insert("CommandLine", "x");
        e.set(f::URL_PATH, "/a");
        for p in ["kubernetes.audit.verb", "kubernetes", "CommandLine"] {
            assert!(e.may_have_root(root_bits(p)), "{p}");
        }
        // A registered field with a plain value is found by its id: no
        // path search needs its root.
        assert!(!e.may_have_root(root_bits("url.anything")));
        assert_eq!(e.get("url.path").and_then(Value::as_str), Some("/a"));
        // A registered field holding a tree: longer paths lead into it.
        e.set(f::URL_PATH, Value::Object(vec![]));
        assert!(e.may_have_root(root_bits("url.path.x")));
        e.set(f::URL_PATH, "/a");
        // Most absent roots are ruled out (a Bloom filter: some may pass).
        let absent = (0..200)
            .filter(|i| !e.may_have_root(root_bits(&format!("root{i}.x"))))
            .count();
        assert!(absent > 150, "{absent} of 200 ruled out");
        // Any change recomputes the mask.
        e.insert("zeek", "y");
        assert!(e.may_have_root(root_bits("zeek.id")));
        let copy = e.clone();
        assert!(copy.may_have_root(root_bits("zeek.id")));
        e.remove("zeek");
        let mut other = Event::new();
        other.insert("zeek", "y");
        assert!(other.may_have_root(root_bits("zeek")));
    }

    #[test]
    fn set_slice_builds_and_replaces() {
        let line =
            Str::from("GET /api/2.0/mlflow/registered-models/search?max_results=100 HTTP/1.1");
        let mut e = Event::new();
        e.set_slice(f::HTTP_REQUEST_METHOD, &line, &line[..3]);
        e.set_slice(f::URL_ORIGINAL, &line, &line[4..60]);
        e.set_slice(f::URL_ORIGINAL, &line, &line[4..8]);
        e.set_default(f::HTTP_REQUEST_METHOD, "POST");
        assert_eq!(e.len(), 2);
        assert_eq!(e.get_str(f::HTTP_REQUEST_METHOD), Some("GET"));
        assert_eq!(e.get_str(f::URL_ORIGINAL), Some("/api"));
    }

    #[test]
    fn paths_walk_into_trees_and_arrays() {
        let mut e = Event::new();
        e.insert(
            "kubernetes.audit",
            obj(vec![
                ("verb", "create".into()),
                (
                    "requestObject",
                    obj(vec![(
                        "spec",
                        obj(vec![(
                            "containers",
                            Value::Array(vec![
                                obj(vec![("image", "a:1".into())]),
                                obj(vec![(
                                    "image",
                                    Value::Array(vec!["b:2".into(), "c:3".into()]),
                                )]),
                            ]),
                        )]),
                    )]),
                ),
                ("app.kubernetes.io/name", "dotted-key".into()),
            ]),
        );
        assert_eq!(
            e.get("kubernetes.audit.verb").and_then(Value::as_str),
            Some("create")
        );
        assert_eq!(
            e.get("kubernetes.audit.app.kubernetes.io/name")
                .and_then(Value::as_str),
            Some("dotted-key")
        );
        assert_eq!(
            e.get("kubernetes.audit.requestObject.spec.containers.image"),
            None
        );
        let mut seen = vec![];
        e.for_each_value(
            "kubernetes.audit.requestObject.spec.containers.image",
            &mut |v| seen.push(v.as_str().unwrap().to_string()),
        );
        assert_eq!(seen, ["a:1", "b:2", "c:3"]);
        assert_eq!(e.get("kubernetes.auditx"), None);
    }

    #[test]
    fn key_order_is_by_segment() {
        let k = |s: &str| FieldKey::new(s);
        assert_eq!(cmp_keys(&k("a.b"), &k("a.b-c")), Ordering::Less);
        assert_eq!(cmp_keys(&k("a.b.c"), &k("a.b-c")), Ordering::Less);
        assert_eq!(cmp_keys(&k("@timestamp"), &k("url.path")), Ordering::Less);
        assert_eq!(
            cmp_keys(&k("url.path"), &k("url.original")),
            Ordering::Greater
        );
        assert_eq!(cmp_keys(&k("a.b"), &k("a.b")), Ordering::Equal);
        assert_eq!(cmp_keys(&k("a"), &k("a.")), Ordering::Less);
        assert_eq!(cmp_keys(&k("a..b"), &k("a.b")), Ordering::Less);
    }

    proptest::proptest! {
        /// The byte comparison orders names as comparing their segments does.
        #[test]
        fn dotted_order_is_segment_order(a in "[a.b\\-_z@é]{0,10}", b in "[a.b\\-_z@é]{0,10}") {
            let by_segments = a.split('.').cmp(b.split('.'));
            proptest::prop_assert_eq!(cmp_dotted(a.as_bytes(), b.as_bytes()), by_segments);
            proptest::prop_assert_eq!(
                cmp_keys(&FieldKey::new(&a), &FieldKey::new(&b)),
                by_segments,
                "{:?} {:?}", a, b
            );
        }
    }
}
