//! Helpers shared by the component steps.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use schema::{Event, FieldId, Str, Value};

use crate::scan;

/// The string value of a registered field, shared (no copy).
pub fn get(ev: &Event, id: FieldId) -> Option<Str> {
    match ev.get_id(id)? {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// The string at a dotted path (into kept documents), shared.
pub fn get_path(ev: &Event, path: &str) -> Option<Str> {
    match ev.get(path)? {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

/// Percent-decodes a path segment or value (`+` stays `+`). Invalid UTF-8
/// after decoding is replaced, not dropped.
pub fn decode(s: &str) -> Cow<'_, str> {
    if scan::find(b'%', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    percent_decode_str(s).decode_utf8_lossy()
}

/// Percent-decodes a query-string value (`+` is a space).
pub fn decode_query(s: &str) -> Cow<'_, str> {
    if scan::find2(b'%', b'+', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    Cow::Owned(percent_decode_str(&plus).decode_utf8_lossy().into_owned())
}

/// The decoded value of the first query parameter named `name`.
pub fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    scan::split(query, b'&').find_map(|kv| {
        let (k, v) = scan::split_once(kv, b'=').unwrap_or((kv, ""));
        (decode_query(k) == name).then(|| decode_query(v))
    })
}

/// Sets a field from decoded text, sharing `whole`'s buffer when the text
/// is a slice of it.
pub fn set_text(ev: &mut Event, id: FieldId, whole: &Str, text: Cow<'_, str>) {
    if text.is_empty() {
        return;
    }
    match text {
        Cow::Borrowed(b) if within(whole, b) => ev.set_slice(id, whole, b),
        other => ev.set(id, Str::from(other.as_ref())),
    }
}

fn within(whole: &str, part: &str) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

/// `process.command_line` and `process.name` (the first word's base name)
/// from a command line.
pub fn set_command(ev: &mut Event, cmd: &Str) {
    let trimmed = cmd.trim();
    if trimmed.is_empty() {
        return;
    }
    ev.set_slice(schema::f::PROCESS_COMMAND_LINE, cmd, trimmed);
    if let Some(first) = trimmed.split_whitespace().next() {
        let name = first.rsplit('/').next().unwrap_or(first);
        if !name.is_empty() {
            ev.set_slice(schema::f::PROCESS_NAME, cmd, name);
        }
    }
}

/// Sets `mlops.api` and `event.action` to the same operation name.
pub fn set_api(ev: &mut Event, api: &'static str) {
    ev.set(schema::f::MLOPS_API, api);
    ev.set_default(schema::f::EVENT_ACTION, api);
}

/// Like `set_api` for names built at run time.
pub fn set_api_owned(ev: &mut Event, api: String) {
    let s = Str::from(api);
    ev.set(schema::f::MLOPS_API, s.clone());
    ev.set_default(schema::f::EVENT_ACTION, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode("..%2F..%2Fetc%2Fpasswd"), "../../etc/passwd");
        assert_eq!(decode("%2e%2e/x"), "../x");
        assert_eq!(decode("%ff"), "\u{fffd}");
        assert_eq!(decode_query("a+b%20c"), "a b c");
        assert_eq!(
            query_param("path=..%2F..&run_uuid=2b", "path").as_deref(),
            Some("../..")
        );
        assert_eq!(
            query_param("x&run_uuid=2b", "run_uuid").as_deref(),
            Some("2b")
        );
        assert_eq!(query_param("x=1", "y"), None);
    }
}
