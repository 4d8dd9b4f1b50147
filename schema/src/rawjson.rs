//! A JSON document kept as its text, parsed only when a path is asked for
//! that was not extracted up front.
//!
//! Vendor documents (a Kubernetes audit event with its request object, a
//! CloudTrail record) are large and mostly not needed field by field: the
//! normalizer extracts the paths its mappings and steps read in one pass
//! that skips everything else, keeps those values, and keeps the text. The
//! output writes the text back as it was (compacted when it spans lines);
//! a lookup of any other path parses the document once, on first use.
//! Measured on Kubernetes audit events this triples throughput compared
//! with building the whole tree for every record.

use std::sync::{Arc, OnceLock};

use crate::value::{Str, Value};

/// A JSON document: its text, the values extracted from it, and (once
/// needed) the whole tree.
#[derive(Debug)]
pub struct RawJson {
    text: Str,
    /// The value of each asked path, by index (`None` when absent).
    found: Vec<Option<Value>>,
    /// Every path the extraction looked for (found or not): absent ones
    /// are known to be absent without parsing.
    asked: Arc<Asked>,
    /// Members collected below one path during extraction (see
    /// [`crate::json::PathTrie::with_find`]): the path and the hits.
    hits: Option<(Box<str>, Hits)>,
    tree: OnceLock<Value>,
    /// The values at the late paths of `asked` (see [`Asked::with_late`]),
    /// collected in one pass on first use; `None` inside if that pass
    /// failed (then lookups parse the tree).
    collected: OnceLock<Option<Box<[Vec<Value>]>>>,
    /// Whether the text holds a `\u` escape of a character a plain key
    /// segment may have (see [`escapes_plain`]): checked once, when a
    /// probe needs it.
    escapes: OnceLock<bool>,
}

/// Members found by a search: (key index, value), in document order.
type Hits = Vec<(usize, Value)>;

/// The paths an extraction looks for, with an index by path. Shared by
/// every document of a format.
#[derive(Debug, Default)]
pub struct Asked {
    paths: Vec<String>,
    index: rustc_hash::FxHashMap<String, u32>,
    /// Paths read later, by detection rules (see [`Asked::with_late`]).
    late: Option<Late>,
}

/// Paths collected together on the first lookup of any of them.
#[derive(Debug)]
struct Late {
    trie: crate::json::PathTrie,
    index: rustc_hash::FxHashMap<String, u32>,
}

/// Each path's position in `paths`.
fn index_of(paths: &[String]) -> rustc_hash::FxHashMap<String, u32> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), i as u32))
        .collect()
}

impl Asked {
    pub fn new(paths: Vec<String>) -> Asked {
        let index = index_of(&paths);
        Asked {
            paths,
            index,
            late: None,
        }
    }

    /// Also `late` paths: what the detection rules read in these
    /// documents. The first lookup of one of them (through
    /// [`crate::Event::for_each_value`]) collects all of them in one pass
    /// over the text ([`crate::json::collect`]), where each would
    /// otherwise have parsed the whole document into a tree and walked
    /// it. Paths are relative to the document, dotted.
    pub fn with_late(mut self, late: &[String]) -> Asked {
        let trie = crate::json::PathTrie::new(late.iter().map(String::as_str));
        if trie.paths().is_empty() {
            self.late = None;
            return self;
        }
        let index = index_of(trie.paths());
        self.late = Some(Late { trie, index });
        self
    }

    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    fn get(&self, path: &str) -> Option<usize> {
        self.index.get(path).map(|&i| i as usize)
    }
}

impl RawJson {
    /// `text` must be valid JSON (the extraction pass checked it). `asked`
    /// lists the paths the extraction looked for; `found` holds their
    /// values, by index, `None` for those absent.
    pub fn new(text: Str, asked: Arc<Asked>, found: Vec<Option<Value>>) -> RawJson {
        debug_assert_eq!(found.len(), asked.paths.len());
        RawJson {
            text,
            found,
            asked,
            hits: None,
            tree: OnceLock::new(),
            collected: OnceLock::new(),
            escapes: OnceLock::new(),
        }
    }

    /// Keeps the members the extraction collected below `under`.
    pub fn with_hits(mut self, under: &str, hits: Vec<(usize, Value)>) -> RawJson {
        self.hits = Some((under.into(), hits));
        self
    }

    /// The members collected below `under` during extraction, as
    /// [`crate::json::find_keys`] would return them; `None` when the
    /// extraction did not look there.
    pub fn hits(&self, under: &str) -> Option<&[(usize, Value)]> {
        match &self.hits {
            Some((u, h)) if **u == *under => Some(h),
            _ => None,
        }
    }

    /// A document with nothing extracted: every lookup parses it.
    pub fn unparsed(text: Str) -> RawJson {
        RawJson::new(text, Arc::new(Asked::default()), Vec::new())
    }

    /// The document's text as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The same text as a shared `Str`, for zero-copy parsing of parts.
    pub fn source(&self) -> &Str {
        &self.text
    }

    /// The whole document, parsed on first use.
    pub fn tree(&self) -> &Value {
        self.tree
            .get_or_init(|| crate::json::parse_value(&self.text).unwrap_or(Value::Null))
    }

    /// The values at `path` when it is one of the late paths of the
    /// document's [`Asked`] (leaves, arrays passed through and flattened,
    /// as [`crate::Event::for_each_value`] returns them); all late paths
    /// are collected on the first call. `None` for other paths.
    pub fn collected(&self, path: &str) -> Option<&[Value]> {
        let late = self.asked.late.as_ref()?;
        let i = *late.index.get(path)? as usize;
        let all = self
            .collected
            .get_or_init(|| {
                crate::json::collect(&self.text, &self.text, &late.trie)
                    .ok()
                    .map(Vec::into_boxed_slice)
            })
            .as_ref()?;
        Some(&all[i])
    }

    /// True once the whole tree has been parsed.
    pub fn is_parsed(&self) -> bool {
        self.tree.get().is_some()
    }

    /// The value at a dotted path: from the extracted values when the path
    /// is one of them or lies under one, else from the whole tree.
    pub fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self.tree());
        }
        if let Some(tree) = self.tree.get() {
            return tree.at(path);
        }
        // The path itself, then each shorter prefix ("a.b.c", "a.b", "a").
        let mut end = path.len();
        loop {
            let prefix = &path[..end];
            if let Some(i) = self.asked.get(prefix) {
                return match &self.found[i] {
                    Some(v) if end == path.len() => Some(v),
                    Some(v) => v.at(&path[end + 1..]),
                    None => None,
                };
            }
            match prefix.rfind('.') {
                Some(dot) => end = dot,
                None => break,
            }
        }
        if !self.may_have(path) {
            return None;
        }
        self.tree().at(path)
    }

    /// False when nothing can be at `path` (a dotted path, arrays
    /// transparent or indexed): the key of its last segment does not occur
    /// in the text. Saves parsing a document for a path it does not have
    /// (detection rules look for `requestObject.spec.volumes.hostPath` in
    /// every Kubernetes audit event). Sound: a key whose last segment is
    /// `hostPath` ends with the bytes `hostPath"` in the text unless one of
    /// its characters is written as a `\u` escape, and then (or for a
    /// segment with other characters, or a numeric one, which may be an
    /// array index) this answers true and the document is parsed.
    pub fn may_have(&self, path: &str) -> bool {
        if self.tree.get().is_some() {
            return true;
        }
        let last = path.rsplit('.').next().unwrap_or(path);
        let mut needle = [0u8; 64];
        if last.is_empty()
            || last.len() >= needle.len()
            || last.bytes().all(|b| b.is_ascii_digit())
            || !last.bytes().all(plain_key_byte)
        {
            return true;
        }
        let text = self.text.as_bytes();
        if *self.escapes.get_or_init(|| escapes_plain(text)) {
            return true;
        }
        needle[..last.len()].copy_from_slice(last.as_bytes());
        needle[last.len()] = b'"';
        memchr::memmem::find(text, &needle[..=last.len()]).is_some()
    }
}

/// The bytes of a key segment that [`RawJson::may_have`] looks for as
/// they are: ASCII letters, digits, `_` and `-`.
fn plain_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `text` holds a `\u` escape that may spell a [`plain_key_byte`]
/// (or one that cannot be read, to be safe). Escapes of other characters
/// cannot hide a plain key: Go writes `&`, `<` and `>` as `\u0026`,
/// `\u003c` and `\u003e`, so every Kubernetes audit event with a query
/// string has some, and answering true for any escape parsed those
/// events whole for each absent path a rule reads.
fn escapes_plain(text: &[u8]) -> bool {
    memchr::memmem::find_iter(text, b"\\u").any(|i| {
        let Some(hex) = text.get(i + 2..i + 6) else {
            return true;
        };
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return true;
        }
        let code = hex
            .iter()
            .fold(0u32, |n, &h| n * 16 + (h as char).to_digit(16).unwrap_or(0));
        code < 0x80 && plain_key_byte(code as u8)
    })
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.text == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(text: &str) -> RawJson {
        RawJson::unparsed(Str::from(text))
    }

    /// What a Kubernetes audit event with a query string looks like to the
    /// probe: Go's `\u0026` does not make absent keys possible, escapes of
    /// key characters (or unreadable ones) do.
    #[test]
    fn escapes_of_other_characters_do_not_hide_keys() {
        let go = r#"{"requestURI":"/api/v1/pods?a=1\u0026b=2","objectRef":{"resource":"pods"},"x":"\u003c\u003e"}"#;
        assert!(!doc(go).may_have("objectRef.subresource"));
        assert!(doc(go).may_have("objectRef.resource"));
        for hiding in [
            r#"{"objectRef":{"sub\u0072esource":"log"}}"#,
            r#"{"objectRef":{"subresourc\u0065":"log"}}"#,
            r#"{"objectRef":{"x":"\u005f"}}"#,
            r#"{"objectRef":{"x":"\u002D"}}"#,
            r#"{"objectRef":{"x":"\\u0041"}}"#,
            r#"{"objectRef":{"x":"\u00zz"}}"#,
            r#"{"objectRef":{"x":"\u00"#,
        ] {
            assert!(doc(hiding).may_have("objectRef.subresource"), "{hiding}");
        }
        for harmless in [
            r#"{"objectRef":{"x":"\u00e9\u2028\ud83d\ude00\u0000\u007f"}}"#,
            r#"{"objectRef":{"x":"\u0020\u002e\u002F"}}"#,
        ] {
            assert!(
                !doc(harmless).may_have("objectRef.subresource"),
                "{harmless}"
            );
        }
    }

    proptest! {
        /// Sound: whenever the key is in the document, however its
        /// characters are escaped and whatever other escapes the text has,
        /// the probe answers true and the lookup finds it.
        #[test]
        fn a_present_key_is_never_ruled_out(
            key in "[A-Za-z0-9_-]{1,12}",
            escaped in proptest::collection::vec(any::<bool>(), 12),
            upper in any::<bool>(),
            noise in proptest::sample::select(vec!["", r"\u0026", r"\u003c\u003e", r"\u00e9", r"\n"]),
        ) {
            prop_assume!(!key.bytes().all(|b| b.is_ascii_digit()));
            let spelled: String = key
                .chars()
                .zip(&escaped)
                .map(|(c, &e)| match (e, upper) {
                    (true, false) => format!("\\u{:04x}", c as u32),
                    (true, true) => format!("\\u{:04X}", c as u32),
                    (false, _) => c.to_string(),
                })
                .collect();
            let text = format!(r#"{{"q":"a{noise}b","obj":{{"{spelled}":7}}}}"#);
            let d = doc(&text);
            let path = format!("obj.{key}");
            prop_assert!(d.may_have(&path), "{}", text);
            prop_assert_eq!(d.at(&path), Some(&Value::from(7i64)), "{}", text);
        }
    }
}
