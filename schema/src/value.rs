//! Field values.
//!
//! Strings are [`Str`]: short ones inline, long ones shared slices of the
//! original line, so a parser hands out field values without allocating.

use std::net::IpAddr;
use std::sync::Arc;

pub use crate::text::Str;

use crate::time::Timestamp;

/// Keys of an object value: slices of the input where possible.
pub type ObjectKey = Str;

/// The value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Str),
    Ip(IpAddr),
    Time(Timestamp),
    Array(Vec<Value>),
    /// A JSON object kept as a tree; keys keep their input order.
    Object(Vec<(ObjectKey, Value)>),
    /// A JSON document kept as text, parsed on demand (see `rawjson`).
    Json(Arc<crate::rawjson::RawJson>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Value::Ip(ip) => Some(*ip),
            Value::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn as_time(&self) -> Option<Timestamp> {
        match self {
            Value::Time(t) => Some(*t),
            Value::Str(s) => Timestamp::parse_rfc3339(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            Value::Json(doc) => doc.tree().as_array(),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(ObjectKey, Value)]> {
        match self {
            Value::Object(o) => Some(o),
            Value::Json(doc) => doc.tree().as_object(),
            _ => None,
        }
    }

    /// The value itself, or the parsed tree of a kept JSON document.
    pub fn resolved(&self) -> &Value {
        match self {
            Value::Json(doc) => doc.tree(),
            other => other,
        }
    }

    /// The value at a dotted path inside object values. Keys may contain
    /// dots themselves; a numeric segment indexes an array.
    pub fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        match self {
            Value::Object(members) => {
                for (k, child) in members {
                    if **k == *path {
                        return Some(child);
                    }
                    if let Some(rest) = path.strip_prefix(&**k).and_then(|r| r.strip_prefix('.'))
                        && let Some(found) = child.at(rest)
                    {
                        return Some(found);
                    }
                }
                None
            }
            Value::Array(items) => {
                let (head, rest) = path.split_once('.').unwrap_or((path, ""));
                items.get(head.parse::<usize>().ok()?)?.at(rest)
            }
            Value::Json(doc) => doc.at(path),
            _ => None,
        }
    }

    /// The member of an object value.
    pub fn member(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// Scalar values rendered as text the way they are serialized
    /// (strings unquoted); `None` for null, arrays and objects.
    pub fn to_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        match self {
            Value::Str(s) => Some(Cow::Borrowed(s)),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Float(f) => Some(Cow::Owned(f.to_string())),
            Value::Ip(std::net::IpAddr::V4(v4)) => {
                let mut text = Vec::with_capacity(15);
                crate::json::write_ipv4(v4, &mut text);
                Some(Cow::Owned(
                    String::from_utf8(text).expect("digits and dots"),
                ))
            }
            Value::Ip(ip) => Some(Cow::Owned(ip.to_string())),
            Value::Time(t) => Some(Cow::Owned(t.to_rfc3339())),
            Value::Null | Value::Array(_) | Value::Object(_) | Value::Json(_) => None,
        }
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Str(Str::from_static(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Str::from(s))
    }
}

impl From<Str> for Value {
    fn from(s: Str) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<IpAddr> for Value {
    fn from(ip: IpAddr) -> Self {
        Value::Ip(ip)
    }
}

impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Value::Time(t)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

/// Builds an array of static strings (`event.category`, `event.type`). A
/// single item is stored as a plain string (no allocation): fields that ECS
/// defines as arrays are written as arrays whatever their stored form.
pub fn str_array(items: &'static [&'static str]) -> Value {
    match items {
        [one] => Value::Str(Str::from_static(one)),
        _ => Value::Array(
            items
                .iter()
                .map(|s| Value::Str(Str::from_static(s)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Addresses as text are what `Display` writes.
        #[test]
        fn ip_text_is_the_display_form(v4 in any::<u32>(), v6 in any::<u128>()) {
            for ip in [
                std::net::IpAddr::from(std::net::Ipv4Addr::from(v4)),
                std::net::IpAddr::from(std::net::Ipv6Addr::from(v6)),
            ] {
                let text = Value::Ip(ip).to_text().map(|t| t.into_owned());
                prop_assert_eq!(text, Some(ip.to_string()));
            }
        }
    }

    #[test]
    fn ipv4_text_at_the_edges_of_each_octet_width() {
        for (octets, want) in [
            ([0, 0, 0, 0], "0.0.0.0"),
            ([9, 10, 99, 100], "9.10.99.100"),
            ([255, 255, 255, 255], "255.255.255.255"),
            ([10, 0, 200, 7], "10.0.200.7"),
        ] {
            let v = Value::Ip(std::net::Ipv4Addr::from(octets).into());
            assert_eq!(v.to_text().as_deref(), Some(want));
        }
    }
}
