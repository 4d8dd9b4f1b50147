//! JSON in and out.
//!
//! Reading uses serde_json with a visitor that turns strings without escapes
//! into slices of the input (no copy), so a 2 KB audit event costs a handful
//! of allocations. Writing streams the event's flat keys as nested objects
//! without building an intermediate tree.

use std::fmt;

use serde::Serializer as _;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::event::{Event, cmp_keys};
use crate::field::{FieldKey, f, is_object_prefix};
use crate::time::Timestamp;
use crate::value::{Str, Value};

/// A JSON document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or cut short: serde_json's message says where.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
}

/// Parses a whole string as one JSON value. Strings without escapes become
/// slices of `src`.
pub fn parse_value(src: &Str) -> Result<Value, JsonError> {
    parse_slice(src, src)
}

/// Parses `part`, which must be a sub-slice of `src` (as handed out by a
/// borrowed `RawValue`), slicing strings out of `src`.
pub fn parse_slice(src: &Str, part: &str) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_str(part);
    let v = ValueSeed { src }.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

pub(crate) fn read_event(src: &Str) -> Result<Event, JsonError> {
    let members = match parse_value(src)? {
        Value::Object(m) => m,
        other => return Err(JsonError::NotAnObject(kind_name(&other))),
    };
    let mut fields: Vec<(FieldKey, Value)> = Vec::with_capacity(members.len() + 8);
    let mut path = String::new();
    for (k, v) in members {
        path.clear();
        path.push_str(&k);
        flatten_into(&mut fields, &mut path, v);
    }
    Ok(Event::from_fields(fields))
}

fn flatten_into(fields: &mut Vec<(FieldKey, Value)>, path: &mut String, v: Value) {
    if let Value::Object(members) = v {
        if is_object_prefix(path) {
            let len = path.len();
            for (k, child) in members {
                path.truncate(len);
                path.push('.');
                path.push_str(&k);
                flatten_into(fields, path, child);
            }
            path.truncate(len);
            return;
        }
        return push_replace(fields, FieldKey::new(path), Value::Object(members));
    }
    let key = FieldKey::new(path);
    let v = match (&key, v) {
        (FieldKey::Known(id), Value::Str(s)) if *id == f::AT_TIMESTAMP => {
            match Timestamp::parse_rfc3339(&s) {
                Some(t) => Value::Time(t),
                None => Value::Str(s),
            }
        }
        (_, v) => v,
    };
    push_replace(fields, key, v);
}

fn push_replace(fields: &mut Vec<(FieldKey, Value)>, key: FieldKey, v: Value) {
    if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = v;
    } else {
        fields.push((key, v));
    }
}

pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) | Value::Ip(_) | Value::Time(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) | Value::Json(_) => "an object",
    }
}

struct ValueSeed<'s> {
    src: &'s Str,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn borrowed(&self, s: &str) -> Str {
        let base = self.src.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        if p >= base && p + s.len() <= base + self.src.len() {
            self.src.slice_ref(s)
        } else {
            Str::from(s)
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v)
            .map(Value::Int)
            .unwrap_or(Value::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value, E> {
        Ok(Value::Str(self.borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(Str::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(Str::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(v) = seq.next_element_seed(ValueSeed { src: self.src })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(k) = map.next_key_seed(KeySeed { src: self.src })? {
            let v = map.next_value_seed(ValueSeed { src: self.src })?;
            members.push((k, v));
        }
        Ok(Value::Object(members))
    }
}

struct KeySeed<'s> {
    src: &'s Str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Str, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Str;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str, E> {
        Ok(ValueSeed { src: self.src }.borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Str, E> {
        Ok(Str::from(v))
    }
}

// ------------------------------------------------------------- extraction

/// The set of dotted paths to pull out of a document in one pass.
#[derive(Debug, Clone, Default)]
pub struct PathTrie {
    nodes: Vec<TrieNode>,
    paths: Vec<String>,
    find: Option<TrieFind>,
    /// A top-level member whose value is only checked for being an array
    /// (see [`PathTrie::with_probe`]).
    probe: Option<Box<str>>,
}

/// Members to collect anywhere below one node (see [`PathTrie::with_find`]).
#[derive(Debug, Clone)]
struct TrieFind {
    node: usize,
    under: String,
    keys: Vec<String>,
}

/// What one extraction pass found.
#[derive(Debug, Default)]
pub struct Extracted {
    /// The value of each path of the trie, by index (`None` when absent).
    pub values: Vec<Option<Value>>,
    /// With [`PathTrie::with_find`]: (key index, value) of each member
    /// found, in document order.
    pub hits: Vec<(usize, Value)>,
    /// With [`PathTrie::with_probe`]: whether the document has the member
    /// with an array value.
    pub probed: bool,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    children: Vec<(Box<str>, usize)>,
    /// Index of the path ending here.
    terminal: Option<usize>,
    /// Every path ending at or under this node, with its rest below it.
    below: Vec<(usize, String)>,
}

impl PathTrie {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> PathTrie {
        let mut t = PathTrie {
            nodes: vec![TrieNode::default()],
            paths: Vec::new(),
            find: None,
            probe: None,
        };
        for p in paths {
            if p.is_empty() || t.paths.iter().any(|q| q == p) {
                continue;
            }
            let mut node = 0;
            for seg in p.split('.') {
                node = match t.nodes[node].children.iter().find(|(k, _)| &**k == seg) {
                    Some((_, c)) => *c,
                    None => {
                        t.nodes.push(TrieNode::default());
                        let c = t.nodes.len() - 1;
                        t.nodes[node].children.push((seg.into(), c));
                        c
                    }
                };
            }
            t.nodes[node].terminal = Some(t.paths.len());
            t.paths.push(p.to_string());
        }
        for n in 0..t.nodes.len() {
            let mut below = Vec::new();
            t.under(n, &mut String::new(), 0, &mut below);
            t.nodes[n].below = below;
        }
        t
    }

    /// Also collects, in the same pass, the value of every member named one
    /// of `keys` anywhere below the object at `under` (as [`find_keys`]
    /// does in a pass of its own). One such search per trie; a later call
    /// replaces an earlier one.
    pub fn with_find(mut self, under: &str, keys: &[&str]) -> PathTrie {
        let mut node = 0;
        for seg in under.split('.').filter(|s| !s.is_empty()) {
            node = match self.nodes[node].children.iter().find(|(k, _)| &**k == seg) {
                Some((_, c)) => *c,
                None => {
                    // A node on no path: nothing below it to fill.
                    self.nodes.push(TrieNode::default());
                    let c = self.nodes.len() - 1;
                    self.nodes[node].children.push((seg.into(), c));
                    c
                }
            };
        }
        if node == 0 {
            // The whole document is searched: see `probe`.
            self.probe = None;
        }
        self.find = Some(TrieFind {
            node,
            under: under.to_string(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        });
        self
    }

    /// Also tells, in the same pass, whether the document has a top-level
    /// member named `key` whose value is an array (the array is checked,
    /// not built: [`Extracted::probed`]). Refused (false, and the trie is
    /// unchanged) when `key` is the first segment of a path, or when
    /// [`PathTrie::with_find`] searches the whole document: the member is
    /// then visited for those. Call it after `with_find`.
    pub fn probe(&mut self, key: &str) -> bool {
        let first = |p: &str| p.split('.').next() == Some(key);
        if self.paths.iter().any(|p| first(p)) || self.find.as_ref().is_some_and(|f| f.node == 0) {
            return false;
        }
        self.probe = Some(key.into());
        true
    }

    /// The path below which [`PathTrie::with_find`] collects members.
    pub fn find_under(&self) -> Option<&str> {
        self.find.as_ref().map(|f| f.under.as_str())
    }

    /// The paths, in the order their values are returned.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Paths ending at or under a node, with their suffix below it
    /// (`depth` segments so far: an empty segment is one too, so `a.` below
    /// `a` is `""` joined after a dot, not the node itself).
    fn under(
        &self,
        node: usize,
        prefix: &mut String,
        depth: usize,
        out: &mut Vec<(usize, String)>,
    ) {
        if let Some(t) = self.nodes[node].terminal {
            out.push((t, prefix.clone()));
        }
        for (k, c) in &self.nodes[node].children {
            let len = prefix.len();
            if depth > 0 {
                prefix.push('.');
            }
            prefix.push_str(k);
            self.under(*c, prefix, depth + 1, out);
            prefix.truncate(len);
        }
    }
}

/// Parses `part` (a sub-slice of `src`, or `src` itself) as a JSON object,
/// checking its syntax, and returns the value of each path of the trie
/// (`None` when absent). Only the values on the paths are built; the rest
/// of the document is skipped without allocating.
pub fn extract(src: &Str, part: &str, trie: &PathTrie) -> Result<Extracted, JsonError> {
    let mut out = vec![None; trie.paths.len()];
    let mut hits = Vec::new();
    let mut probed = false;
    let mut de = serde_json::Deserializer::from_str(part);
    let is_object = part.trim_start().starts_with('{');
    if !is_object {
        // Still check the syntax, for a precise error.
        serde::de::IgnoredAny::deserialize(&mut de)?;
        de.end()?;
        return Err(JsonError::NotAnObject("not an object"));
    }
    ExtractSeed {
        src,
        trie,
        node: 0,
        finding: false,
        out: &mut out,
        hits: &mut hits,
        probed: &mut probed,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(Extracted {
        values: out,
        hits,
        probed,
    })
}

/// [`find_keys`] over a value already built.
fn collect_keys(v: &Value, keys: &[String], out: &mut Vec<(usize, Value)>) {
    match v {
        Value::Object(members) => {
            for (k, child) in members {
                match keys.iter().position(|key| **key == **k) {
                    Some(i) => out.push((i, child.clone())),
                    None => collect_keys(child, keys, out),
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                collect_keys(i, keys, out);
            }
        }
        _ => {}
    }
}

use serde::Deserialize as _;

/// Visitor methods that pass over scalars (for visitors that only look
/// into objects and arrays).
macro_rules! skip_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

struct ExtractSeed<'s, 'o> {
    src: &'s Str,
    trie: &'s PathTrie,
    node: usize,
    /// Below the trie's find node: members named one of its keys are hits.
    finding: bool,
    out: &'o mut Vec<Option<Value>>,
    hits: &'o mut Vec<(usize, Value)>,
    probed: &'o mut bool,
}

impl<'s> ExtractSeed<'s, '_> {
    /// The keys to collect in this value: below the find node, or at it.
    fn find_keys(&self) -> Option<&'s [String]> {
        let trie: &'s PathTrie = self.trie;
        let f = trie.find.as_ref()?;
        (self.finding || f.node == self.node).then_some(&f.keys[..])
    }

    /// A whole value was built at this node: fill every path at or under it.
    fn fill(&mut self, v: Value) {
        let below = &self.trie.nodes[self.node].below;
        if let [(idx, rest)] = &below[..]
            && rest.is_empty()
        {
            self.out[*idx] = Some(v);
            return;
        }
        for (idx, rest) in below {
            if let Some(found) = v.at(rest) {
                self.out[*idx] = Some(found.clone());
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for ExtractSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 's> Visitor<'de> for ExtractSeed<'s, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        // A path runs through an array: build the array, then look inside.
        let v = ValueSeed { src: self.src }.visit_seq(seq)?;
        if let Some(keys) = self.find_keys() {
            collect_keys(&v, keys, self.hits);
        }
        self.fill(v);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let node = &self.trie.nodes[self.node];
        let keys = self.find_keys();
        while let Some(key) = map.next_key_seed(CowKey)? {
            let child = node
                .children
                .iter()
                .find(|(k, _)| **k == *key)
                .map(|&(_, c)| c);
            let hit = keys.and_then(|ks| ks.iter().position(|k| **k == *key));
            match (child, hit) {
                (Some(child), None) if self.trie.nodes[child].terminal.is_none() => {
                    map.next_value_seed(ExtractSeed {
                        src: self.src,
                        trie: self.trie,
                        node: child,
                        finding: keys.is_some(),
                        out: &mut *self.out,
                        hits: &mut *self.hits,
                        probed: &mut *self.probed,
                    })?;
                }
                (Some(child), hit) => {
                    // Wanted whole (and possibly paths below it too).
                    let v = map.next_value_seed(ValueSeed { src: self.src })?;
                    // Searched if below the find node, or if it is the find node.
                    let search = keys.or_else(|| {
                        let f = self.trie.find.as_ref()?;
                        (f.node == child).then_some(&f.keys[..])
                    });
                    match (hit, search) {
                        (Some(i), _) => self.hits.push((i, v.clone())),
                        (None, Some(ks)) => collect_keys(&v, ks, self.hits),
                        (None, None) => {}
                    }
                    let mut sub = ExtractSeed {
                        src: self.src,
                        trie: self.trie,
                        node: child,
                        finding: false,
                        out: &mut *self.out,
                        hits: &mut *self.hits,
                        probed: &mut *self.probed,
                    };
                    sub.fill(v);
                }
                (None, Some(i)) => {
                    let v = map.next_value_seed(ValueSeed { src: self.src })?;
                    self.hits.push((i, v));
                }
                (None, None) => match keys {
                    Some(ks) => map.next_value_seed(FindSeed {
                        src: self.src,
                        path: &[],
                        keys: ks,
                        out: &mut *self.hits,
                    })?,
                    None if self.node == 0
                        && self.trie.probe.as_deref().is_some_and(|p| *p == *key) =>
                    {
                        // The last one wins, as in a map of the members.
                        *self.probed = map.next_value_seed(ArrayProbe)?;
                    }
                    None => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(())
    }
}

/// The values at each path of `trie` in `part` (a sub-slice of `src`),
/// walked as [`crate::Event::for_each_value`] walks a parsed tree: arrays
/// on the way are passed through (every element), member keys may hold
/// dots (`"a.b"` matches the segments `a`, `b`), and an array at the end
/// of a path is flattened. One pass; only the values at the paths are
/// built, everything else is skipped. By path index, in document order.
pub fn collect(src: &Str, part: &str, trie: &PathTrie) -> Result<Vec<Vec<Value>>, JsonError> {
    let mut out = vec![Vec::new(); trie.paths.len()];
    let mut de = serde_json::Deserializer::from_str(part);
    CollectSeed {
        src,
        trie,
        node: 0,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// Pushes the leaves of `v` (arrays flattened, as `Event::for_each_value`
/// hands them out).
fn push_leaves(v: Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(items) => items.into_iter().for_each(|i| push_leaves(i, out)),
        Value::Json(doc) => push_leaves(doc.tree().clone(), out),
        other => out.push(other),
    }
}

struct CollectSeed<'s, 'o> {
    src: &'s Str,
    trie: &'s PathTrie,
    node: usize,
    out: &'o mut Vec<Vec<Value>>,
}

impl CollectSeed<'_, '_> {
    /// The node reached from this one by the segments of a member key;
    /// `None` when no path goes that way.
    fn child(&self, key: &str) -> Option<usize> {
        let mut node = self.node;
        for seg in key.split('.') {
            node = self.trie.nodes[node]
                .children
                .iter()
                .find(|(k, _)| **k == *seg)
                .map(|&(_, c)| c)?;
        }
        Some(node)
    }

    /// A member value built whole at `node`, where a path ends: its leaves
    /// for that path, and the values below it for longer paths.
    fn fill(&mut self, node: usize, v: Value) {
        let terminal = self.trie.nodes[node].terminal;
        for (idx, rest) in &self.trie.nodes[node].below {
            if Some(*idx) == terminal {
                continue;
            }
            let out = &mut self.out[*idx];
            crate::event::walk_value(&v, rest, &mut |found| out.push(found.clone()));
        }
        if let Some(t) = terminal {
            push_leaves(v, &mut self.out[t]);
        }
    }
}

impl<'de> DeserializeSeed<'de> for CollectSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CollectSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Arrays on the way are transparent: each element at the same node.
        while seq
            .next_element_seed(CollectSeed {
                src: self.src,
                trie: self.trie,
                node: self.node,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(CowKey)? {
            match self.child(&key) {
                Some(child) if self.trie.nodes[child].terminal.is_some() => {
                    let v = map.next_value_seed(ValueSeed { src: self.src })?;
                    self.fill(child, v);
                }
                Some(child) => map.next_value_seed(CollectSeed {
                    src: self.src,
                    trie: self.trie,
                    node: child,
                    out: &mut *self.out,
                })?,
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Checks a value, telling whether it is an array.
struct ArrayProbe;

impl<'de> DeserializeSeed<'de> for ArrayProbe {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArrayProbe {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(true)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(false)
    }
}

/// Finds, anywhere below the object at `under` (a dotted path), the values
/// of members named one of `keys`, without building the rest of the
/// document: (key index, value) in document order. Used to read a few keys
/// out of large nested documents (the images of a Kubernetes object).
pub fn find_keys(
    src: &Str,
    text: &str,
    under: &str,
    keys: &[&str],
) -> Result<Vec<(usize, Value)>, JsonError> {
    let path: Vec<&str> = if under.is_empty() {
        Vec::new()
    } else {
        under.split('.').collect()
    };
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    FindSeed {
        src,
        path: &path,
        keys: &keys,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

struct FindSeed<'s, 'o> {
    src: &'s Str,
    path: &'s [&'s str],
    keys: &'s [String],
    out: &'o mut Vec<(usize, Value)>,
}

impl<'de> DeserializeSeed<'de> for FindSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FindSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(FindSeed {
                src: self.src,
                path: self.path,
                keys: self.keys,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(CowKey)? {
            match self.path.split_first() {
                Some((first, rest)) => {
                    if *first == &*key {
                        map.next_value_seed(FindSeed {
                            src: self.src,
                            path: rest,
                            keys: self.keys,
                            out: &mut *self.out,
                        })?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                None => match self.keys.iter().position(|k| **k == *key) {
                    Some(i) => {
                        let v = map.next_value_seed(ValueSeed { src: self.src })?;
                        self.out.push((i, v));
                    }
                    None => map.next_value_seed(FindSeed {
                        src: self.src,
                        path: &[],
                        keys: self.keys,
                        out: &mut *self.out,
                    })?,
                },
            }
        }
        Ok(())
    }
}

/// The value of the first member named `key` of the top-level object
/// `text` (a sub-slice of `src`), built, as `parse_slice(src, text)?.at(key)`
/// finds it for a key without dots, but without building the other
/// members (the rest of the document is only checked). `None` when the
/// document has no such member or is not an object.
pub fn top_member(src: &Str, text: &str, key: &str) -> Result<Option<Value>, JsonError> {
    let mut out = None;
    let mut de = serde_json::Deserializer::from_str(text);
    TopMemberSeed {
        src,
        key,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

struct TopMemberSeed<'s, 'o> {
    src: &'s Str,
    key: &'s str,
    out: &'o mut Option<Value>,
}

impl<'de> DeserializeSeed<'de> for TopMemberSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopMemberSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key_seed(CowKey)? {
            if self.out.is_none() && *k == *self.key {
                *self.out = Some(map.next_value_seed(ValueSeed { src: self.src })?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// An object key as a borrowed string when it has no escapes: keys that
/// are only compared cost no copy.
struct CowKey;

impl<'de> DeserializeSeed<'de> for CowKey {
    type Value = std::borrow::Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowKey {
    type Value = std::borrow::Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }
}

// ---------------------------------------------------------------- writing

#[derive(Clone, Copy)]
struct Level<'a> {
    name: &'a str,
    /// `name` is an interned registry segment.
    interned: bool,
    first: bool,
    last_key: &'a str,
    last_interned: bool,
}

/// The dotted segments of every registered field, computed once. Equal
/// segments are the same `&'static str` (interned), so the writer compares
/// them by address.
static SEGMENTS: std::sync::LazyLock<Vec<Box<[&'static str]>>> = std::sync::LazyLock::new(|| {
    let mut interned: rustc_hash::FxHashMap<&'static str, &'static str> =
        rustc_hash::FxHashMap::default();
    crate::field::registry()
        .iter()
        .map(|d| {
            d.name
                .split('.')
                .map(|seg| *interned.entry(seg).or_insert(seg))
                .collect()
        })
        .collect()
});

/// For each registered field and segment, the bytes written for it:
/// `"seg":{` for parents, `"leaf":` for the last one.
/// Per field, per segment: the bytes to write.
type KeyBytes = Vec<Box<[Box<[u8]>]>>;

static KEY_BYTES: std::sync::LazyLock<KeyBytes> = std::sync::LazyLock::new(|| {
    SEGMENTS
        .iter()
        .map(|segs| {
            segs.iter()
                .enumerate()
                .map(|(i, seg)| {
                    let tail: &[u8] = if i + 1 == segs.len() { b":" } else { b":{" };
                    [b"\"", seg.as_bytes(), b"\"", tail]
                        .concat()
                        .into_boxed_slice()
                })
                .collect()
        })
        .collect()
});

/// Segment equality: by address for two interned registry segments.
#[inline]
fn same_segment(a: &str, a_interned: bool, b: &str, b_interned: bool) -> bool {
    if a_interned && b_interned {
        std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()
    } else {
        a == b
    }
}

/// Buffers the writer reuses from event to event (per thread).
#[derive(Default)]
struct Scratch {
    known: Vec<u32>,
    custom: Vec<u16>,
    order: Vec<u16>,
    /// The layouts of the last key sets written (at most `PLANS`).
    plans: Vec<Plan>,
    /// State of the random choice of the plan to replace when all slots
    /// are taken.
    evict: u64,
}

/// How the fields of one key set (keys in the event's order) are laid out:
/// the bytes before each value (commas, keys, objects opened and closed)
/// and after the last one. The layout depends on the keys only, and the
/// events of a format mostly share theirs, so it is worked out once (key
/// sort, segment comparisons, nesting) and replayed.
#[derive(Default)]
struct Plan {
    keys: Vec<FieldKey>,
    /// (field index, end of the bytes before its value, ECS array field).
    steps: Vec<(u16, u32, bool)>,
    bytes: Vec<u8>,
}

/// Layouts kept per thread: a worker may alternate between a few formats.
const PLANS: usize = 32;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Deepest object nesting the writer opens; deeper keys are written with
/// their remaining segments as one dotted key.
const MAX_DEPTH: usize = 8;

pub(crate) fn write_event(fields: &[(FieldKey, Value)], out: &mut Vec<u8>) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => write_event_with(fields, out, &mut scratch),
        // Re-entered (cannot happen today): use fresh buffers.
        Err(_) => write_event_with(fields, out, &mut Scratch::default()),
    })
}

fn write_event_with(fields: &[(FieldKey, Value)], out: &mut Vec<u8>, scratch: &mut Scratch) {
    let found = scratch.plans.iter().position(|p| {
        p.keys.len() == fields.len() && p.keys.iter().zip(fields).all(|(k, (f, _))| k == f)
    });
    let slot = match found {
        Some(slot) => slot,
        None => {
            let slot = if scratch.plans.len() < PLANS {
                scratch.plans.push(Plan::default());
                scratch.plans.len() - 1
            } else {
                // A slot picked at random (xorshift): unlike replacing the
                // oldest, it keeps hitting on part of a cycle of more key
                // sets than slots.
                let mut x = scratch.evict | 1;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                scratch.evict = x;
                (x % PLANS as u64) as usize
            };
            let mut plan = std::mem::take(&mut scratch.plans[slot]);
            build_plan(fields, &mut plan, scratch);
            scratch.plans[slot] = plan;
            slot
        }
    };
    let plan = &scratch.plans[slot];
    // One allocation for the document rather than a doubling every time
    // it outgrows the buffer (an audit event is several kilobytes).
    let guess = estimate(fields);
    out.reserve(guess + guess / 16);
    let mut from = 0;
    for &(i, end, array) in &plan.steps {
        out.extend_from_slice(&plan.bytes[from..end as usize]);
        from = end as usize;
        let value = &fields[i as usize].1;
        // ECS array fields are arrays in the document even when one value
        // is stored as a scalar.
        let wrap = array && !matches!(value, Value::Array(_));
        if wrap {
            out.push(b'[');
        }
        write_value(value, out);
        if wrap {
            out.push(b']');
        }
    }
    out.extend_from_slice(&plan.bytes[from..]);
}

/// Works out the layout of the fields' keys (see [`Plan`]).
fn build_plan(fields: &[(FieldKey, Value)], plan: &mut Plan, scratch: &mut Scratch) {
    let Plan {
        keys,
        steps,
        bytes: out,
    } = plan;
    keys.clear();
    keys.extend(fields.iter().map(|(k, _)| k.clone()));
    steps.clear();
    out.clear();
    // Registered keys sort by id (their names use only [a-z0-9_@.], where
    // byte order is segment order); the few others by segments; then merge.
    // (id << 16 | index): sorting plain integers is the cheapest sort.
    let Scratch {
        known,
        custom,
        order,
        ..
    } = scratch;
    known.clear();
    custom.clear();
    order.clear();
    for (i, (k, _)) in fields.iter().enumerate() {
        match k {
            FieldKey::Known(id) => known.push((id.0 as u32) << 16 | i as u32),
            FieldKey::Custom(_) => custom.push(i as u16),
        }
    }
    known.sort_unstable();
    let known_index = |k: u32| (k & 0xffff) as u16;
    if !custom.is_empty() {
        custom.sort_unstable_by(|&a, &b| cmp_keys(&fields[a as usize].0, &fields[b as usize].0));
    }
    let (mut a, mut b) = (0, 0);
    while a < known.len() || b < custom.len() {
        let take_known = b == custom.len()
            || (a < known.len()
                && cmp_keys(
                    &fields[known_index(known[a]) as usize].0,
                    &fields[custom[b] as usize].0,
                ) != std::cmp::Ordering::Greater);
        if take_known {
            order.push(known_index(known[a]));
            a += 1;
        } else {
            order.push(custom[b]);
            b += 1;
        }
    }
    let segments = &*SEGMENTS;
    let key_bytes = &*KEY_BYTES;
    let empty = Level {
        name: "",
        interned: false,
        first: true,
        last_key: "",
        last_interned: false,
    };
    let mut stack: [Level<'_>; MAX_DEPTH + 1] = std::array::from_fn(|_| Level { ..empty });
    let mut depth = 0usize; // open objects below the root
    out.push(b'{');
    let mut split: Vec<&str> = Vec::new();
    for &i in order.iter() {
        let key = &fields[i as usize].0;
        let interned = matches!(key, FieldKey::Known(_));
        let (name, segs): (&str, &[&str]) = match key {
            FieldKey::Known(id) => (id.name(), &segments[id.0 as usize]),
            FieldKey::Custom(c) => {
                split.clear();
                let mut from = 0;
                for dot in memchr::memchr_iter(b'.', c.as_bytes()) {
                    split.push(&c[from..dot]);
                    from = dot + 1;
                }
                split.push(&c[from..]);
                (c.as_str(), &split)
            }
        };
        let parents = segs.len() - 1;
        // Keep the open objects this key shares, close the rest.
        let mut common = 0;
        while common < depth
            && common < parents
            && same_segment(
                stack[common + 1].name,
                stack[common + 1].interned,
                segs[common],
                interned,
            )
        {
            common += 1;
        }
        while depth > common {
            depth -= 1;
            out.push(b'}');
        }
        let mut j = common;
        while j < parents && depth < MAX_DEPTH {
            let level = &mut stack[depth];
            if same_segment(level.last_key, level.last_interned, segs[j], interned) {
                // A value was already written under this name at this level
                // (scalar `a.b` before `a.b.c`): write the rest as one dotted
                // key instead of repeating the name.
                break;
            }
            comma(level, out);
            match key {
                FieldKey::Known(id) => out.extend_from_slice(&key_bytes[id.0 as usize][j]),
                FieldKey::Custom(_) => {
                    write_str(segs[j], out);
                    out.extend_from_slice(b":{");
                }
            }
            level.last_key = segs[j];
            level.last_interned = interned;
            depth += 1;
            stack[depth] = Level {
                name: segs[j],
                interned,
                first: true,
                last_key: "",
                last_interned: false,
            };
            j += 1;
        }
        // The rest of the name from segment j (segments may be interned
        // copies, so count the bytes rather than compare addresses).
        let offset: usize = segs[..j].iter().map(|s| s.len() + 1).sum();
        let leaf = if j == parents {
            segs[j]
        } else {
            &name[offset..]
        };
        let level = &mut stack[depth];
        comma(level, out);
        match key {
            FieldKey::Known(id) if j == parents => {
                out.extend_from_slice(&key_bytes[id.0 as usize][j])
            }
            _ => {
                write_key(leaf, key, out);
                out.push(b':');
            }
        }
        let array = matches!(key, FieldKey::Known(id) if id.def().array);
        steps.push((i, out.len() as u32, array));
        level.last_key = leaf;
        // A dotted remainder (`b.c` after a scalar `b`) is not a segment.
        level.last_interned = interned && j == parents;
    }
    for _ in 0..depth {
        out.push(b'}');
    }
    out.push(b'}');
}

/// About how many bytes the fields take as JSON, escapes aside: a guess
/// that costs one look at each value (nested values are not visited).
fn estimate(fields: &[(FieldKey, Value)]) -> usize {
    fn len(v: &Value) -> usize {
        match v {
            Value::Str(s) => s.len() + 2,
            Value::Json(doc) => doc.text().len(),
            Value::Array(items) => items.len() * 24 + 2,
            Value::Object(members) => members.len() * 32 + 2,
            _ => 24,
        }
    }
    fields
        .iter()
        .map(|(k, v)| k.name().len() + 4 + len(v))
        .sum::<usize>()
        + 2
}

/// A key segment: registered names are plain ASCII and need no escaping.
#[inline]
fn write_key(seg: &str, key: &FieldKey, out: &mut Vec<u8>) {
    if let FieldKey::Known(_) = key {
        out.push(b'"');
        out.extend_from_slice(seg.as_bytes());
        out.push(b'"');
    } else {
        write_str(seg, out);
    }
}

#[inline]
fn comma(level: &mut Level<'_>, out: &mut Vec<u8>) {
    if level.first {
        level.first = false;
    } else {
        out.push(b',');
    }
}

/// The bytes of `w` (little-endian) that JSON strings must escape (`"`,
/// `\\` and control characters below 0x20): the high bit of each such byte
/// is set. Exact for the lowest flagged byte, which is all the writer uses
/// (a borrow can flag a clean byte only above a flagged one).
#[inline(always)]
fn escape_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let below_20 = w.wrapping_sub(LO * 0x20);
    // `"` and `\\` become zero bytes.
    let q = w ^ (LO * b'"' as u64);
    let bs = w ^ (LO * b'\\' as u64);
    // (The high bit of `!w` is that of `!q` and `!bs`.)
    (below_20 | q.wrapping_sub(LO) | bs.wrapping_sub(LO)) & !w & HI
}

/// Bit `k` set when byte `k` of the block must be escaped (below 0x20, a
/// quote or a backslash).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn escape_mask16(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 target; the load reads the 16
    // bytes of `block` (unaligned load).
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let bslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: max(v, 0x1f) == 0x1f.
        let ctl = _mm_set1_epi8(0x1f);
        let low = _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, bslash), low)) as u32
    }
}

/// For each byte: 0 when it is written as is, otherwise the letter of its
/// escape (`\"`, `\n`, ...), `u` for the `\u00XX` form, as serde_json
/// writes them.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = b'u';
        c += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

/// Writes the escape of a byte that needs one.
#[inline(always)]
fn write_escape(c: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[c as usize] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(c >> 4) as usize],
            HEX[(c & 15) as usize],
        ]),
        short => out.extend_from_slice(&[b'\\', short]),
    }
}

/// Writes the 16 bytes of `block`, escaping the bytes whose bits are set
/// in `m` (from [`escape_mask16`]): every escape of the block in one pass.
/// The text between escapes is moved with fixed-size 16-byte copies (no
/// call to `memcpy`) into room reserved for the worst case, each copy
/// overwritten past its end by what follows.
#[cfg(target_arch = "x86_64")]
#[inline]
fn write_block_escaped(block: &[u8; 16], mut m: u32, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Every byte escaped as `\u00XX`, and a whole 16-byte copy made at the
    // furthest point.
    const ROOM: usize = 16 * 6 + 16;
    // The block followed by 16 bytes, so that a 16-byte copy can start at
    // any of its positions.
    let mut text = [0u8; 32];
    text[..16].copy_from_slice(block);
    out.reserve(ROOM);
    let mut len = out.len();
    let mut from = 0usize;
    let dst = out.as_mut_ptr();
    // SAFETY: `reserve` made room for ROOM bytes after `len`. The text
    // copied before each escape ends `16 - 1` bytes at most past what is
    // kept; what is kept plus the escapes is at most 16 * 6 bytes, so every
    // write ends within `len + ROOM`. Reads of `text` start at `from <= 16`
    // and take 16 bytes of its 32. `set_len` covers only bytes written.
    unsafe {
        while m != 0 {
            let k = m.trailing_zeros() as usize;
            std::ptr::copy_nonoverlapping(text.as_ptr().add(from), dst.add(len), 16);
            len += k - from;
            let c = text[k];
            match ESCAPE[c as usize] {
                b'u' => {
                    let e = [
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[(c >> 4) as usize],
                        HEX[(c & 15) as usize],
                    ];
                    std::ptr::copy_nonoverlapping(e.as_ptr(), dst.add(len), 6);
                    len += 6;
                }
                short => {
                    std::ptr::copy_nonoverlapping([b'\\', short].as_ptr(), dst.add(len), 2);
                    len += 2;
                }
            }
            from = k + 1;
            m &= m - 1;
        }
        std::ptr::copy_nonoverlapping(text.as_ptr().add(from), dst.add(len), 16);
        len += 16 - from;
        out.set_len(len);
    }
}

/// Writes a JSON string literal, escaping exactly as serde_json does
/// (tested against it). Sixteen bytes at a time on x86_64: a block with
/// nothing to escape is copied whole, otherwise all its escapes are
/// written in one pass ([`write_block_escaped`]; JSON texts such as
/// `event.original` of an audit log have a quote every few bytes). Then
/// eight bytes at a time, each word copied whole (a fixed-size store, no
/// call to `memcpy`) and cut back to its first byte to escape, which is
/// escaped, the writer going on from the byte after it.
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    // The quotes, and the whole last word copied before it is cut back.
    out.reserve(b.len() + 10);
    out.push(b'"');
    let mut i = 0;
    // Sixteen bytes at a time where SSE2 is (every x86_64), then words.
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = b.get(i..i + 16) {
        let block: &[u8; 16] = chunk.try_into().expect("16 bytes");
        let m = escape_mask16(block);
        if m == 0 {
            out.extend_from_slice(block);
        } else {
            write_block_escaped(block, m, out);
        }
        i += 16;
    }
    while let Some(chunk) = b.get(i..i + 8) {
        let word: &[u8; 8] = chunk.try_into().expect("8 bytes");
        let m = escape_mask(u64::from_le_bytes(*word));
        let at = out.len();
        out.extend_from_slice(word);
        if m == 0 {
            i += 8;
            continue;
        }
        let k = (m.trailing_zeros() / 8) as usize;
        out.truncate(at + k);
        write_escape(word[k], out);
        i += k + 1;
    }
    // The last few bytes, padded with spaces (which never need escaping).
    while i < b.len() {
        let left = b.len() - i;
        let mut pad = [b' '; 8];
        pad[..left].copy_from_slice(&b[i..]);
        let m = escape_mask(u64::from_le_bytes(pad));
        let at = out.len();
        out.extend_from_slice(&pad);
        let k = if m == 0 {
            left
        } else {
            (m.trailing_zeros() / 8) as usize
        };
        out.truncate(at + k);
        if k == left {
            break;
        }
        write_escape(pad[k], out);
        i += k + 1;
    }
    out.push(b'"');
}

/// Writes one value as JSON.
pub fn write_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let mut ser = serde_json::Serializer::new(out);
            (&mut ser).serialize_i64(*i).expect("Vec write");
        }
        Value::Float(x) if x.is_finite() => {
            let mut ser = serde_json::Serializer::new(out);
            (&mut ser).serialize_f64(*x).expect("Vec write");
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Str(s) => write_str(s, out),
        Value::Ip(std::net::IpAddr::V4(v4)) => {
            out.push(b'"');
            write_ipv4(v4, out);
            out.push(b'"');
        }
        Value::Ip(ip) => {
            out.push(b'"');
            use std::io::Write;
            write!(out, "{ip}").expect("Vec write");
            out.push(b'"');
        }
        Value::Time(t) => {
            out.push(b'"');
            t.write_rfc3339(out);
            out.push(b'"');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Json(doc) => {
            let text = doc.text().trim();
            // The text is valid JSON; written as is unless it spans lines
            // (pretty-printed documents), which NDJSON cannot hold.
            if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
                out.extend_from_slice(text.as_bytes());
            } else {
                write_value(doc.tree(), out);
            }
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

/// Writes an IPv4 address in dotted decimal, as `Display` does (without
/// the formatting machinery, which costs ten times more).
pub(crate) fn write_ipv4(v4: &std::net::Ipv4Addr, out: &mut Vec<u8>) {
    for (i, o) in v4.octets().iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        let (buf, n) = itoa_u8(*o);
        out.extend_from_slice(&buf[..n]);
    }
}

/// Decimal digits of a byte: (digits, count).
fn itoa_u8(v: u8) -> ([u8; 3], usize) {
    if v >= 100 {
        ([b'0' + v / 100, b'0' + v / 10 % 10, b'0' + v % 10], 3)
    } else if v >= 10 {
        ([b'0' + v / 10, b'0' + v % 10, 0], 2)
    } else {
        ([b'0' + v, 0, 0], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::f;
    use proptest::prelude::*;
    use serde_json::json;

    fn to_json(e: &Event) -> serde_json::Value {
        let s = e.to_json_string();
        serde_json::from_str(&s).unwrap_or_else(|err| panic!("invalid JSON {s}: {err}"))
    }

    #[test]
    fn nests_dotted_keys() {
        let mut e = Event::new();
        e.set(f::URL_PATH, "/x");
        e.set(
            f::AT_TIMESTAMP,
            Timestamp::from_civil(2026, 11, 30, 0, 0, 1, 0).unwrap(),
        );
        e.set(f::HTTP_RESPONSE_STATUS_CODE, 404i64);
        e.set(f::HTTP_REQUEST_METHOD, "GET");
        e.set(
            f::SOURCE_IP,
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap(),
        );
        e.set(f::URL_QUERY, "a=\"b\"\n");
        e.insert(
            "kubernetes.audit",
            Value::Object(vec![(Str::from_static("verb"), "get".into())]),
        );
        assert_eq!(
            to_json(&e),
            json!({
                "@timestamp": "2026-11-30T00:00:01Z",
                "http": {"request": {"method": "GET"}, "response": {"status_code": 404}},
                "kubernetes": {"audit": {"verb": "get"}},
                "source": {"ip": "127.0.0.1"},
                "url": {"path": "/x", "query": "a=\"b\"\n"}
            })
        );
    }

    #[test]
    fn ecs_array_fields_are_written_as_arrays() {
        let mut e = Event::new();
        e.set(f::EVENT_CATEGORY, "web");
        e.set(
            f::EVENT_TYPE,
            crate::value::str_array(&["user", "creation"]),
        );
        e.set(f::EVENT_KIND, "event");
        assert_eq!(
            to_json(&e),
            json!({"event": {"category": ["web"], "type": ["user", "creation"], "kind": "event"}})
        );
    }

    #[test]
    fn very_deep_keys_stay_valid_json() {
        let mut e = Event::new();
        let deep = (0..30)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(".");
        e.insert(deep.as_str(), 1i64);
        e.insert("k0.other", 2i64);
        let v = to_json(&e);
        assert_eq!(v["k0"]["other"], 2);
        let mut cur = &v;
        for i in 0..MAX_DEPTH {
            cur = &cur[format!("k{i}")];
        }
        let rest = (MAX_DEPTH..30)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(".");
        assert_eq!(cur[rest.as_str()], 1);
    }

    /// Writes events of many key sets, each key set several times with
    /// other values (scalars and arrays in ECS array fields), more key sets
    /// than the writer keeps layouts for: every document is the one a
    /// writer with no layout kept writes.
    #[test]
    fn replayed_layouts_write_what_a_fresh_writer_writes() {
        let pool: Vec<&str> = vec![
            "@timestamp",
            "event.category",
            "event.kind",
            "url.path",
            "http.response.status_code",
            "a.b",
            "a.b.c",
            "a.b-c",
            "k0.k1.k2.k3.k4.k5.k6.k7.k8.k9",
            "k0.k1.x",
            "nginx_ingress_controller.upstream.response.status_code",
            "x",
            "source.ip",
            "tags",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let key_sets: Vec<Vec<&str>> = (0..3 * PLANS)
            .map(|_| {
                let mut keys: Vec<&str> = pool.iter().copied().filter(|_| next(2) == 0).collect();
                // Insertion order varies too.
                if next(2) == 0 {
                    keys.reverse();
                }
                keys
            })
            .collect();
        for round in 0..400 {
            let keys = &key_sets[next(key_sets.len() as u64) as usize];
            let mut e = Event::new();
            for k in keys {
                let v: Value = match next(4) {
                    0 => Value::Int(round),
                    1 => Value::Str(Str::from(format!("v\"{round}"))),
                    2 => crate::value::str_array(&["p", "q"]),
                    _ => Value::Null,
                };
                e.insert(*k, v);
            }
            let mut replayed = Vec::new();
            e.write_json(&mut replayed);
            let fields: Vec<(FieldKey, Value)> =
                e.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut fresh = Vec::new();
            write_event_with(&fields, &mut fresh, &mut Scratch::default());
            assert_eq!(
                String::from_utf8(replayed).unwrap(),
                String::from_utf8(fresh).unwrap(),
                "{keys:?}"
            );
        }
        let kept = SCRATCH.with(|cell| cell.borrow().plans.len());
        assert_eq!(kept, PLANS, "layouts were replaced");
    }

    #[test]
    fn conflicting_scalar_and_object_stay_valid_json() {
        let mut e = Event::new();
        e.insert("a.b", 1i64);
        e.insert("a.b.c", 2i64);
        e.insert("a.b-c", 3i64);
        e.insert(
            "k",
            Value::Object(vec![(Str::from_static("x"), 1i64.into())]),
        );
        e.insert("k.y", 2i64);
        let s = e.to_json_string();
        assert_eq!(s, r#"{"a":{"b":1,"b.c":2,"b-c":3},"k":{"x":1},"k.y":2}"#);
    }

    #[test]
    fn reads_back_what_it_writes() {
        let src = Str::from(
            r#"{"@timestamp":"2026-11-30T00:00:01.5Z","event":{"dataset":"x.y","category":["web"]},"url.path":"/a","kubernetes":{"audit":{"verb":"get","n":[1,2.5,null,true]}},"big":18446744073709551615,"esc":"a\"b"}"#,
        );
        let e = Event::from_json(&src).unwrap();
        assert_eq!(
            e.timestamp().unwrap().to_rfc3339(),
            "2026-11-30T00:00:01.500Z"
        );
        assert_eq!(e.dataset(), Some("x.y"));
        assert_eq!(e.get_str(f::URL_PATH), Some("/a"));
        assert_eq!(
            e.get("kubernetes.audit.verb").and_then(Value::as_str),
            Some("get")
        );
        assert_eq!(e.get("esc").and_then(Value::as_str), Some("a\"b"));
        let again = Event::from_json(&Str::from(e.to_json_string())).unwrap();
        assert_eq!(to_json(&again), to_json(&e));
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            Event::from_json(&Str::from("[1]")),
            Err(JsonError::NotAnObject("an array"))
        ));
        let err = Event::from_json(&Str::from(r#"{"a": "#)).unwrap_err();
        assert!(err.to_string().contains("EOF"), "{err}");
        let deep = "[".repeat(100_000);
        assert!(
            parse_value(&Str::from(deep)).is_err(),
            "deep nesting is refused, not a stack overflow"
        );
    }

    #[test]
    fn extraction_takes_only_the_paths_asked_for() {
        let src = Str::from(
            r#"{"verb":"create","user":{"username":"alice","groups":["a","b"]},"objectRef":{"resource":"pods","name":"x"},"sourceIPs":["10.0.0.1","10.0.0.2"],"big":{"deep":[1,2,{"x":"y"}]},"spec":{"containers":[{"image":"i1"},{"image":"i2"}]},"weird\"key":1}"#,
        );
        let trie = PathTrie::new([
            "verb",
            "user.username",
            "user.groups",
            "objectRef",
            "objectRef.name",
            "sourceIPs",
            "missing.path",
            "spec.containers.1.image",
            "spec.containers",
        ]);
        let got = extract(&src, &src, &trie).unwrap().values;
        let text = |i: usize| {
            got[i].as_ref().map(|v| {
                let mut o = Vec::new();
                write_value(v, &mut o);
                String::from_utf8(o).unwrap()
            })
        };
        assert_eq!(text(0).as_deref(), Some(r#""create""#));
        assert_eq!(text(1).as_deref(), Some(r#""alice""#));
        assert_eq!(text(2).as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(
            text(3).as_deref(),
            Some(r#"{"resource":"pods","name":"x"}"#)
        );
        assert_eq!(text(4).as_deref(), Some(r#""x""#));
        assert_eq!(text(5).as_deref(), Some(r#"["10.0.0.1","10.0.0.2"]"#));
        assert_eq!(text(6), None);
        assert_eq!(text(7).as_deref(), Some(r#""i2""#));
        assert_eq!(
            text(8).as_deref(),
            Some(r#"[{"image":"i1"},{"image":"i2"}]"#)
        );
        assert!(
            extract(&src, &src[..src.len() - 2], &trie).is_err(),
            "truncated documents are refused"
        );
        assert!(matches!(
            extract(&src, "[1]", &trie),
            Err(JsonError::NotAnObject(_))
        ));
    }

    #[test]
    fn finds_keys_below_a_path() {
        let src = Str::from(
            r#"{"kind":"x","requestObject":{"spec":{"containers":[{"image":"a:1","securityContext":{"privileged":true}},{"image":"b:2"}],"image":"top"}},"responseObject":{"image":"not-this"}}"#,
        );
        let got = find_keys(&src, &src, "requestObject", &["image", "privileged"]).unwrap();
        let flat: Vec<(usize, String)> = got
            .iter()
            .map(|(i, v)| (*i, v.to_text().unwrap().into_owned()))
            .collect();
        assert_eq!(
            flat,
            [
                (0, "a:1".into()),
                (1, "true".into()),
                (0, "b:2".into()),
                (0, "top".into())
            ]
        );
        assert!(
            find_keys(&src, &src, "absent", &["image"])
                .unwrap()
                .is_empty()
        );
        assert!(find_keys(&src, &src[..20], "requestObject", &["image"]).is_err());
    }

    #[test]
    fn probe_tells_a_top_level_array_member() {
        let mut trie = PathTrie::new(["a", "b.c"]);
        assert!(trie.probe("Records"));
        let run = |doc: &str| {
            let src = Str::from(doc);
            let got = extract(&src, &src, &trie).unwrap();
            (got.probed, got.values)
        };
        let (probed, values) = run(r#"{"a":1,"Records":[{"a":2},3],"b":{"c":4}}"#);
        assert!(probed);
        assert_eq!(values, [Some(Value::Int(1)), Some(Value::Int(4))]);
        assert!(!run(r#"{"a":1,"Records":{"x":[1]}}"#).0);
        assert!(!run(r#"{"a":1,"Records":null}"#).0);
        assert!(!run(r#"{"b":{"Records":[1]}}"#).0, "not at the top level");
        assert!(!run(r#"{"x":"Records","y":["Records"]}"#).0);
        // The last of repeated members counts, as in a map of the members.
        assert!(!run(r#"{"Records":[1],"Records":2}"#).0);
        assert!(run(r#"{"Records":2,"Records":[]}"#).0);
        assert!(
            extract(
                &Str::from(r#"{"Records":[1,]}"#),
                r#"{"Records":[1,]}"#,
                &trie
            )
            .is_err()
        );
        // Refused for a key that paths start with, or under a search of the
        // whole document.
        assert!(!PathTrie::new(["Records.x"]).probe("Records"));
        assert!(
            !PathTrie::new(["a"])
                .with_find("", &["image"])
                .probe("Records")
        );
        let mut t = PathTrie::new(["a"]);
        assert!(t.probe("Records"));
        let t = t.with_find("", &["image"]);
        let src = Str::from(r#"{"Records":[1]}"#);
        assert!(!extract(&src, &src, &t).unwrap().probed);
    }

    #[test]
    fn top_member_is_the_member_at_of_the_parsed_document() {
        let src = Str::from(
            r#"{"kind":"x","a":{"requestObject":1},"requestObject":{"spec":{"entrypoint":"main","templates":[{"name":"main"}]}},"requestObject":2,"z":[1,{"b":null}]}"#,
        );
        let tree = parse_value(&src).unwrap();
        for key in ["requestObject", "kind", "z", "a", "absent", "spec"] {
            assert_eq!(
                top_member(&src, &src, key).unwrap().as_ref(),
                tree.at(key),
                "{key}"
            );
        }
        assert!(top_member(&src, &src, "requestObject").unwrap().is_some());
        assert_eq!(top_member(&src, "[1,2]", "a").unwrap(), None);
        assert_eq!(top_member(&src, "3", "a").unwrap(), None);
        assert!(top_member(&src, &src[..30], "kind").is_err());
    }

    #[test]
    fn extraction_collects_found_keys_in_the_same_pass() {
        let src = Str::from(
            r#"{"kind":"x","requestObject":{"spec":{"containers":[{"image":"a:1","securityContext":{"privileged":true}},{"image":"b:2"}],"image":"top","entrypoint":"run.sh"}},"responseObject":{"image":"not-this"}}"#,
        );
        let keys = ["image", "privileged"];
        let flat = |hits: &[(usize, Value)]| -> Vec<(usize, String)> {
            hits.iter()
                .map(|(i, v)| (*i, v.to_text().unwrap().into_owned()))
                .collect()
        };
        let expected = flat(&find_keys(&src, &src, "requestObject", &keys).unwrap());
        assert_eq!(expected.len(), 4);
        // A path through the searched object, one beside it, and one that
        // ends on the searched object itself (built whole, then searched).
        for paths in [
            vec!["kind", "requestObject.spec.entrypoint"],
            vec!["responseObject.image"],
            vec!["requestObject", "kind"],
            vec!["requestObject.spec.containers"],
        ] {
            let trie = PathTrie::new(paths.iter().copied()).with_find("requestObject", &keys);
            assert_eq!(trie.find_under(), Some("requestObject"));
            let got = extract(&src, &src, &trie).unwrap();
            assert_eq!(flat(&got.hits), expected, "paths {paths:?}");
            for (p, v) in paths.iter().zip(&got.values) {
                let whole = parse_value(&src).unwrap();
                assert_eq!(v.as_ref(), whole.at(p), "path {p}");
            }
        }
        let plain = extract(&src, &src, &PathTrie::new(["kind"])).unwrap();
        assert!(plain.hits.is_empty(), "no search asked, no hits");
    }

    #[test]
    fn raw_documents_answer_paths_and_write_back_their_text() {
        use crate::rawjson::RawJson;
        let text = Str::from(r#"{"a":{"b":1},"c":[{"d":"x"},{"d":"y"}]}"#);
        let trie = PathTrie::new(["a.b"]);
        let found = extract(&text, &text, &trie).unwrap().values;
        let asked = std::sync::Arc::new(crate::rawjson::Asked::new(trie.paths().to_vec()));
        let doc = std::sync::Arc::new(RawJson::new(text.clone(), asked, found));
        let mut e = Event::new();
        e.insert("vendor.doc", Value::Json(doc.clone()));
        assert_eq!(e.get("vendor.doc.a.b").and_then(Value::as_i64), Some(1));
        assert!(!doc.is_parsed(), "an extracted path needs no parse");
        let mut ds = Vec::new();
        e.for_each_value("vendor.doc.c.d", &mut |v| {
            ds.push(v.as_str().unwrap().to_string())
        });
        assert_eq!(ds, ["x", "y"]);
        assert!(doc.is_parsed(), "other paths parse the document once");
        let asked = RawJson::new(
            text.clone(),
            std::sync::Arc::new(crate::rawjson::Asked::new(vec!["x.y".to_string()])),
            vec![None],
        );
        assert_eq!(asked.at("x.y.z"), None);
        assert!(
            !asked.is_parsed(),
            "a path looked for and not found is known absent"
        );
        assert_eq!(
            e.to_json_string(),
            r#"{"vendor":{"doc":{"a":{"b":1},"c":[{"d":"x"},{"d":"y"}]}}}"#
        );
        let pretty = RawJson::unparsed(Str::from("{\n  \"a\": 1\n}"));
        let mut out = Vec::new();
        write_value(&Value::Json(std::sync::Arc::new(pretty)), &mut out);
        assert_eq!(
            out, br#"{"a":1}"#,
            "multi-line documents are compacted for NDJSON"
        );
    }

    #[test]
    fn strings_are_zero_copy_slices() {
        let src = Str::from(
            r#"{"k":"a-long-value-without-any-escapes-in-it-longer-than-inline","short":"x"}"#,
        );
        let v = parse_value(&src).unwrap();
        let s = v.member("k").unwrap().as_str().unwrap();
        let base = src.as_ptr() as usize;
        assert!(
            (s.as_ptr() as usize) >= base && (s.as_ptr() as usize) < base + src.len(),
            "long strings are slices"
        );
        assert_eq!(v.member("short").unwrap().as_str(), Some("x"));
    }

    #[test]
    fn escape_mask_finds_the_first_byte_to_escape() {
        let escaped = |c: u8| c < 0x20 || c == b'"' || c == b'\\';
        // Every byte value at every offset, in words filled with every
        // byte value (bytes to escape before it included).
        for fill in 0..=255u8 {
            for c in 0..=255u8 {
                for at in 0..8 {
                    let mut word = [fill; 8];
                    word[at] = c;
                    let first = word.iter().position(|&x| escaped(x));
                    let m = escape_mask(u64::from_le_bytes(word));
                    let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                    assert_eq!(got, first, "{word:?}");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn escape_mask16_flags_exactly_the_bytes_to_escape() {
        let escaped = |c: u8| c < 0x20 || c == b'"' || c == b'\\';
        for fill in 0..=255u8 {
            for c in 0..=255u8 {
                for at in 0..16 {
                    let mut block = [fill; 16];
                    block[at] = c;
                    let want = block
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| escaped(**x))
                        .fold(0u32, |m, (k, _)| m | 1 << k);
                    assert_eq!(escape_mask16(&block), want, "{block:?}");
                }
            }
        }
    }

    fn escapes_like_serde_json(t: &str) {
        let mut mine = Vec::new();
        write_str(t, &mut mine);
        assert_eq!(
            String::from_utf8(mine).unwrap(),
            serde_json::to_string(t).unwrap(),
            "{t:?}"
        );
    }

    /// Every set of positions escaped in a 16-byte block, with the short
    /// and the longest escape (a block of 16 control bytes is the most
    /// the writer must make room for), after a clean block and before a
    /// tail.
    #[test]
    fn every_set_of_escapes_in_a_block_matches_serde_json() {
        for bits in 0..=u16::MAX {
            for esc in ['"', '\u{1}'] {
                let block: String = (0..16)
                    .map(|k| if bits >> k & 1 == 1 { esc } else { 'a' })
                    .collect();
                escapes_like_serde_json(&format!("0123456789abcdef{block}tail"));
            }
        }
    }

    #[test]
    fn every_escape_at_every_offset_matches_serde_json() {
        let specials: Vec<char> = (0u8..0x20)
            .map(char::from)
            .chain(['"', '\\', '\u{7f}', 'é', '€', '𝄞'])
            .collect();
        for len in 0..26 {
            for at in 0..len {
                for &c in &specials {
                    let mut s: String = "x".repeat(at);
                    s.push(c);
                    s.push_str(&"y".repeat(len - at - 1));
                    // Also followed by more escapes at the end.
                    for extra in ["", "\"", "\\\n"] {
                        escapes_like_serde_json(&format!("{s}{extra}"));
                    }
                }
            }
        }
    }

    /// JSON texts of objects whose keys are drawn from a few segments,
    /// some dotted, some repeated, with arrays at every level.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            (-5i64..5).prop_map(|n| n.to_string()),
            "[a-z]{0,3}".prop_map(|s| format!("\"{s}\"")),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("a|b|c|a[.]b|b[.]c|a[.]b[.]c|", inner), 0..5).prop_map(
                    |members| {
                        let m: Vec<String> = members
                            .into_iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", m.join(","))
                    }
                ),
            ]
        })
    }

    proptest! {
        #[test]
        fn escaping_matches_serde_json(s in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f])*") {
            let mut mine = Vec::new();
            write_str(&s, &mut mine);
            prop_assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&s).unwrap());
        }

        /// Long strings mixing clean runs of every length with bytes to
        /// escape and multi-byte characters, so that escapes fall at every
        /// offset of the eight-byte words and in the tail.
        #[test]
        fn escaping_long_mixed_strings_matches_serde_json(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-z0-9 /:.,{}]{0,40}",
                    Just("\"".to_string()),
                    Just("\\".to_string()),
                    "[\\x00-\\x1f\\x7f]",
                    "[\u{80}-\u{7ff}\u{800}-\u{ffff}\u{10000}-\u{10ffff}]{1,3}",
                ],
                0..80,
            )
        ) {
            let s = parts.concat();
            let mut mine = b"prefix".to_vec();
            write_str(&s, &mut mine);
            let want = format!("prefix{}", serde_json::to_string(&s).unwrap());
            prop_assert_eq!(String::from_utf8(mine).unwrap(), want);
        }

        /// One collection pass finds, for every path, the values the walk
        /// of the parsed tree finds (the walk `for_each_value` does), in the
        /// same order: keys with dots, arrays on the way and at the end,
        /// repeated keys, paths that nest.
        #[test]
        fn collect_finds_what_the_tree_walk_finds(
            doc in json_text(),
            paths in proptest::collection::vec("[abc]([.][abc]){0,3}|a[.]b[.]|[.]a", 1..6),
        ) {
            let src = Str::from(doc.as_str());
            let tree = parse_value(&src).unwrap();
            let trie = PathTrie::new(paths.iter().map(String::as_str));
            let got = collect(&src, &src, &trie).unwrap();
            for (i, p) in trie.paths().iter().enumerate() {
                let mut want = Vec::new();
                crate::event::walk_value(&tree, p, &mut |v| want.push(v.clone()));
                prop_assert_eq!(&got[i], &want, "path {} in {}", p, doc);
            }
        }

        #[test]
        fn ipv4_is_written_like_display(a: u8, b: u8, c: u8, d: u8) {
            let ip = std::net::IpAddr::from([a, b, c, d]);
            let mut out = Vec::new();
            write_value(&Value::Ip(ip), &mut out);
            prop_assert_eq!(String::from_utf8(out).unwrap(), format!("\"{ip}\""));
        }

        #[test]
        fn any_json_text_round_trips(s in "\\PC*") {
            let mut e = Event::new();
            e.set(f::MESSAGE, s.clone());
            let back: serde_json::Value = serde_json::from_str(&e.to_json_string()).unwrap();
            prop_assert_eq!(back["message"].as_str().unwrap(), s.as_str());
        }
    }
}
