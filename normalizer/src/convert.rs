//! Conversion of captured text and JSON values to the ECS type of the field
//! they are stored in.

use std::net::IpAddr;

use schema::{FieldType, Str, Timestamp, Value};

/// Converts captured text for a field of type `ty`. `None` when the text is
/// not of that type (a status code that is not a number, an address that is
/// not an IP): a text format then does not match the record.
pub fn text_to_value(s: Str, ty: FieldType) -> Option<Value> {
    if ty.is_text()
        || matches!(
            ty,
            FieldType::Object | FieldType::Flattened | FieldType::GeoPoint
        )
    {
        return Some(Value::Str(s));
    }
    str_to_value(&s, ty)
}

/// Converts text to a non-text type without keeping the text; `None` for
/// text types and for text that is not of the type.
pub fn str_to_value(s: &str, ty: FieldType) -> Option<Value> {
    Some(match ty {
        FieldType::Long => Value::Int(parse_i64(s)?),
        FieldType::Float => {
            let f: f64 = s.trim().parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            Value::Float(f)
        }
        FieldType::Boolean => match s {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => return None,
        },
        FieldType::Ip => Value::Ip(parse_ip(s)?),
        FieldType::Date => Value::Time(Timestamp::parse_rfc3339(s)?),
        _ => return None,
    })
}

/// Converts a JSON value for a field of type `ty`; arrays become their first
/// element unless the field is an array field.
pub fn json_to_value(v: &Value, ty: FieldType, array: bool) -> Option<Value> {
    match v {
        Value::Array(items) if array => {
            let out: Vec<Value> = items
                .iter()
                .filter_map(|i| json_to_value(i, ty, false))
                .collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Array(items) => items.iter().find_map(|i| json_to_value(i, ty, false)),
        Value::Null | Value::Object(_) => None,
        Value::Str(s) if s.is_empty() => None,
        Value::Str(s) => text_to_value(s.clone(), ty),
        Value::Int(i) => match ty {
            FieldType::Long => Some(Value::Int(*i)),
            FieldType::Float => Some(Value::Float(*i as f64)),
            FieldType::Date => Timestamp::from_unix_seconds(*i).map(Value::Time),
            t if t.is_text() => Some(Value::Str(Str::from(i.to_string()))),
            _ => None,
        },
        Value::Float(x) => match ty {
            FieldType::Float => Some(Value::Float(*x)),
            FieldType::Long if x.fract() == 0.0 && x.abs() < 9.0e18 => Some(Value::Int(*x as i64)),
            t if t.is_text() => Some(Value::Str(Str::from(x.to_string()))),
            _ => None,
        },
        Value::Bool(b) => match ty {
            FieldType::Boolean => Some(Value::Bool(*b)),
            t if t.is_text() => Some(Value::Str(Str::from_static(if *b {
                "true"
            } else {
                "false"
            }))),
            _ => None,
        },
        other => Some(other.clone()),
    }
}

pub fn parse_i64(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

/// An IP address, also in `[v6]` brackets or with a `%zone` suffix.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let s = s.split_once('%').map_or(s, |(a, _)| a);
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &'static str, ty: FieldType) -> Option<Value> {
        text_to_value(Str::from_static(s), ty)
    }

    #[test]
    fn text_conversions() {
        assert_eq!(t("404", FieldType::Long), Some(Value::Int(404)));
        assert_eq!(t("40x", FieldType::Long), None);
        assert_eq!(t("", FieldType::Long), None);
        assert_eq!(t("99999999999999999999", FieldType::Long), None);
        assert_eq!(t("1.5", FieldType::Float), Some(Value::Float(1.5)));
        assert_eq!(t("NaN", FieldType::Float), None);
        assert_eq!(
            t("::1", FieldType::Ip),
            Some(Value::Ip("::1".parse().unwrap()))
        );
        assert_eq!(
            t("[fe80::1%eth0]", FieldType::Ip),
            Some(Value::Ip("fe80::1".parse().unwrap()))
        );
        assert_eq!(t("localhost", FieldType::Ip), None);
        assert_eq!(t("x", FieldType::Keyword), Some(Value::from("x")));
    }

    #[test]
    fn json_conversions() {
        let arr = Value::Array(vec!["10.0.0.1".into(), "10.0.0.2".into()]);
        assert_eq!(
            json_to_value(&arr, FieldType::Ip, false),
            Some(Value::Ip("10.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            json_to_value(&Value::Int(201), FieldType::Long, false),
            Some(Value::Int(201))
        );
        assert_eq!(
            json_to_value(&Value::from("201"), FieldType::Long, false),
            Some(Value::Int(201))
        );
        assert_eq!(
            json_to_value(&Value::Int(7), FieldType::Keyword, false),
            Some(Value::from("7".to_string()))
        );
        assert_eq!(
            json_to_value(&Value::from("s3.amazonaws.com"), FieldType::Ip, false),
            None
        );
        assert_eq!(json_to_value(&Value::Null, FieldType::Keyword, false), None);
    }
}
