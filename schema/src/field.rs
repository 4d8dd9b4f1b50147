//! The field registry: every ECS 9.4 field plus mlsoc's own (`mlops.*` and a
//! few Filebeat-style extras), each with its ECS type.
//!
//! Registered fields are addressed by a [`FieldId`] (a `u16` index into a
//! table sorted by name), so events store and compare them without touching
//! strings. Any other dotted name is a [`FieldKey::Custom`].

use std::fmt;
use std::sync::LazyLock;

use compact_str::CompactString;
use rustc_hash::FxHashMap;

/// The ECS data type of a registered field, which decides how a parser's
/// text is converted when it is stored in that field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Keyword,
    Wildcard,
    Text,
    Long,
    Float,
    Boolean,
    Date,
    Ip,
    Object,
    Flattened,
    GeoPoint,
}

impl FieldType {
    /// True for the string-like types (keyword, wildcard, text).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Keyword | FieldType::Wildcard | FieldType::Text
        )
    }
}

/// A registered field.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// Dotted name, e.g. `http.response.status_code`.
    pub name: &'static str,
    pub ty: FieldType,
    /// ECS says the field always holds an array (`normalize: array`).
    pub array: bool,
    /// Defined by ECS itself (false for mlsoc's own fields).
    pub ecs: bool,
}

/// Index of a registered field. Ids follow the sorted order of the names, so
/// comparing ids compares names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) u16);

include!(concat!(env!("OUT_DIR"), "/fields_gen.rs"));

static BY_NAME: LazyLock<FxHashMap<&'static str, FieldId>> = LazyLock::new(|| {
    FIELDS
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name, FieldId(i as u16)))
        .collect()
});

impl FieldId {
    /// Looks a dotted name up in the registry.
    pub fn lookup(name: &str) -> Option<FieldId> {
        BY_NAME.get(name).copied()
    }

    /// The field's position in [`registry`] (for tables indexed by field).
    pub fn index(self) -> usize {
        self.0 as usize
    }

    pub fn def(self) -> &'static FieldDef {
        &FIELDS[self.0 as usize]
    }

    pub fn name(self) -> &'static str {
        FIELDS[self.0 as usize].name
    }

    pub fn ty(self) -> FieldType {
        FIELDS[self.0 as usize].ty
    }
}

/// All registered fields, sorted by name.
pub fn registry() -> &'static [FieldDef] {
    &FIELDS
}

/// True if `prefix` names an object that holds registered fields
/// (`url`, `http.request`, `mlops.model`, ...).
pub fn is_object_prefix(prefix: &str) -> bool {
    static PREFIXES: LazyLock<rustc_hash::FxHashSet<&'static str>> = LazyLock::new(|| {
        let mut set = rustc_hash::FxHashSet::default();
        for d in FIELDS.iter() {
            let mut rest = d.name;
            while let Some(i) = rest.rfind('.') {
                rest = &rest[..i];
                set.insert(rest);
            }
        }
        set
    });
    PREFIXES.contains(prefix)
}

/// The key of a field stored in an event: a registered field, or any other
/// dotted name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum FieldKey {
    Known(FieldId),
    Custom(CompactString),
}

impl FieldKey {
    /// The key for a dotted name: registered if the registry knows it.
    pub fn new(name: &str) -> FieldKey {
        match FieldId::lookup(name) {
            Some(id) => FieldKey::Known(id),
            None => FieldKey::Custom(CompactString::new(name)),
        }
    }

    /// The key for a dotted name known for the life of the program (the
    /// fields a format definition names): an unregistered name is kept as
    /// a reference, so cloning the key, as parsers do for every event,
    /// copies it instead of allocating a string longer than 24 bytes.
    pub fn from_static(name: &'static str) -> FieldKey {
        match FieldId::lookup(name) {
            Some(id) => FieldKey::Known(id),
            None => FieldKey::Custom(CompactString::const_new(name)),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            FieldKey::Known(id) => id.name(),
            FieldKey::Custom(s) => s,
        }
    }

    pub fn id(&self) -> Option<FieldId> {
        match self {
            FieldKey::Known(id) => Some(*id),
            FieldKey::Custom(_) => None,
        }
    }

    /// Orders keys by name, comparing ids when both are registered.
    pub fn cmp_name(&self, other: &FieldKey) -> std::cmp::Ordering {
        match (self, other) {
            (FieldKey::Known(a), FieldKey::Known(b)) => a.cmp(b),
            _ => self.name().cmp(other.name()),
        }
    }
}

impl From<FieldId> for FieldKey {
    fn from(id: FieldId) -> Self {
        FieldKey::Known(id)
    }
}

impl From<&str> for FieldKey {
    fn from(name: &str) -> Self {
        FieldKey::new(name)
    }
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_and_lookup_round_trips() {
        let reg = registry();
        assert!(
            reg.len() > 2600,
            "ECS 9.4 has 2,604 fields, we have {}",
            reg.len()
        );
        for w in reg.windows(2) {
            assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
        }
        for d in reg {
            let id = FieldId::lookup(d.name).unwrap();
            assert_eq!(id.name(), d.name);
        }
        assert_eq!(FieldId::lookup("no.such.field"), None);
    }

    #[test]
    fn registered_names_need_no_escaping_and_sort_like_segments() {
        // The JSON writer relies on both: keys are written unescaped and
        // ordered by id.
        for d in registry() {
            assert!(
                d.name.bytes().all(|c| c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || c == b'_'
                    || c == b'.'
                    || c == b'@'),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn constants_name_their_fields() {
        assert_eq!(f::AT_TIMESTAMP.name(), "@timestamp");
        assert_eq!(f::URL_PATH.name(), "url.path");
        assert_eq!(f::HTTP_RESPONSE_STATUS_CODE.ty(), FieldType::Long);
        assert_eq!(f::SOURCE_IP.ty(), FieldType::Ip);
        assert_eq!(f::MLOPS_MODEL_NAME.name(), "mlops.model.name");
        assert!(!f::MLOPS_MODEL_NAME.def().ecs);
        assert!(f::EVENT_CATEGORY.def().array);
    }

    #[test]
    fn object_prefixes() {
        assert!(is_object_prefix("http.request"));
        assert!(is_object_prefix("mlops"));
        assert!(!is_object_prefix("url.path"));
        assert!(!is_object_prefix("kubernetes"));
    }

    #[test]
    fn static_keys_equal_built_keys() {
        for name in [
            "url.path",
            "nginx_ingress_controller.upstream.response.status_code",
            "x",
        ] {
            let a = FieldKey::from_static(name);
            assert_eq!(a, FieldKey::new(name));
            assert_eq!(a.clone(), FieldKey::new(name));
            assert_eq!(a.name(), name);
        }
    }

    #[test]
    fn key_ordering_matches_names() {
        let a = FieldKey::new("url.path");
        let b = FieldKey::new("aws.cloudtrail.eventName");
        let c = FieldKey::new("@timestamp");
        assert_eq!(a.cmp_name(&b), std::cmp::Ordering::Greater);
        assert_eq!(c.cmp_name(&b), std::cmp::Ordering::Less);
    }
}
