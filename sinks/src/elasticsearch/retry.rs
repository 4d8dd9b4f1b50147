//! What to do with an answer: per request (status) and per item (the
//! `items` of a 200), following `shared/reference/wire-contracts.md` §4.1.
//!
//! Unlike Vector's sink (which drops items its retry logic does not retry,
//! issues #140, #2968, #10146), every item ends delivered, duplicate,
//! retried, or dead-lettered with Elasticsearch's reason.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::config::BulkAction;

/// What happened to one item of a `_bulk` request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ItemOutcome {
    /// 2xx: stored.
    Delivered,
    /// 409 `version_conflict_engine_exception` on `create`: a document
    /// with this `_id` is already stored, sent by an earlier attempt whose
    /// answer was lost. Delivered.
    Duplicate,
    /// 429 `es_rejected_execution_exception` or 5xx: send again.
    Retry { status: u16, reason: String },
    /// Any other failure (400 `document_parsing_exception` /
    /// `mapper_parsing_exception`, `illegal_argument_exception`, 404
    /// `index_not_found_exception`, ...): will fail again, dead-letter it.
    Reject { status: u16, reason: String },
}

/// What to do with a whole request, from its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestVerdict {
    /// 2xx: read the items.
    Items,
    /// 429, 5xx (and anything unexpected): send the same request again.
    Retry,
    /// 401 / 403: credentials or privileges; an operator can fix them, so
    /// retry with backoff (and say so loudly) rather than drop.
    RetryAuth,
    /// 413: the body is over `http.max_content_length`; split it.
    Split,
    /// Other 4xx: the request itself is refused; dead-letter its items.
    Reject,
}

pub(crate) fn request_verdict(status: u16) -> RequestVerdict {
    match status {
        200..=299 => RequestVerdict::Items,
        401 | 403 => RequestVerdict::RetryAuth,
        413 => RequestVerdict::Split,
        // 408 Request Timeout comes from proxies; the request may succeed.
        408 | 429 => RequestVerdict::Retry,
        400..=499 => RequestVerdict::Reject,
        // 5xx, and 1xx / 3xx that reqwest did not resolve: not an answer
        // about the documents, try again.
        _ => RequestVerdict::Retry,
    }
}

#[derive(Deserialize)]
struct BulkResponse<'a> {
    #[serde(default)]
    errors: bool,
    #[serde(borrow)]
    items: Vec<Item<'a>>,
}

/// One item of the answer: `{"<action>": {"status": ..., ...}}`, read
/// without building a map per item (an answer has an item per document).
/// `None` for an empty object.
struct Item<'a>(Option<(Cow<'a, str>, ItemResult)>);

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Item<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a _bulk item: an object with one action")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Item<'a>, A::Error> {
                #[derive(Deserialize)]
                struct Op<'a>(#[serde(borrow)] Cow<'a, str>);
                let first = map
                    .next_entry::<Op<'a>, ItemResult>()?
                    .map(|(op, r)| (op.0, r));
                // Elasticsearch writes one action per item; any other key
                // is read (the answer must be valid JSON) and left.
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Item(first))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads the `items` of a 2xx `_bulk` answer, in request order. `Err`
/// when the answer is not a bulk response or has a different number of
/// items than were sent: then nobody knows which documents were stored,
/// and the caller retries the whole request (ids make that safe).
pub(crate) fn item_outcomes(
    body: &[u8],
    sent: usize,
    action: BulkAction,
) -> Result<Vec<ItemOutcome>, String> {
    let resp: BulkResponse = serde_json::from_slice(body)
        .map_err(|e| format!("the _bulk answer is not a bulk response: {e}"))?;
    if resp.items.len() != sent {
        return Err(format!(
            "the _bulk answer has {} items for {sent} sent",
            resp.items.len()
        ));
    }
    let mut out = Vec::with_capacity(sent);
    for (i, item) in resp.items.into_iter().enumerate() {
        let Some((op, r)) = item.0 else {
            return Err(format!("item {i} of the _bulk answer is empty"));
        };
        out.push(classify(&op, r, action));
    }
    if !resp.errors && out.iter().any(|o| !matches!(o, ItemOutcome::Delivered)) {
        tracing::debug!("_bulk answer says errors: false but has failed items; trusting the items");
    }
    Ok(out)
}

fn classify(op: &str, r: ItemResult, action: BulkAction) -> ItemOutcome {
    if (200..300).contains(&r.status) {
        return ItemOutcome::Delivered;
    }
    let (kind, reason) = error_parts(r.error.as_ref());
    if r.status == 409
        && action == BulkAction::Create
        && op == "create"
        && kind == "version_conflict_engine_exception"
    {
        return ItemOutcome::Duplicate;
    }
    let reason = format!("{kind}: {reason}");
    if r.status == 429 || (500..600).contains(&r.status) {
        ItemOutcome::Retry {
            status: r.status,
            reason,
        }
    } else {
        ItemOutcome::Reject {
            status: r.status,
            reason,
        }
    }
}

/// `error.type` and `error.reason` of an `ErrorCause` (or a bare string).
fn error_parts(e: Option<&Value>) -> (String, String) {
    match e {
        Some(Value::Object(o)) => (
            o.get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error")
                .to_owned(),
            o.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("(no reason given)")
                .to_owned(),
        ),
        Some(Value::String(s)) => ("error".into(), s.clone()),
        _ => ("unknown_error".into(), "(no error given)".into()),
    }
}

/// A failed request's reason: `"<error.type>: <error.reason>"` from ES's
/// error body, `error` as ES writes it for REST-level failures, or the
/// status and the start of whatever else came back (a proxy's page).
pub(crate) fn request_error(status: u16, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        match v.get("error") {
            Some(e @ Value::Object(_)) => {
                let (k, r) = error_parts(Some(e));
                return format!("{k}: {r}");
            }
            Some(Value::String(s)) => return s.clone(),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status} with no body")
    } else {
        format!("HTTP {status}: {text}")
    }
}

/// The `type` part of a failure reason (for logs, where reasons may quote
/// document values and so stay out).
pub(crate) fn reason_kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(request_verdict(200), RequestVerdict::Items);
        assert_eq!(request_verdict(429), RequestVerdict::Retry);
        assert_eq!(request_verdict(503), RequestVerdict::Retry);
        assert_eq!(request_verdict(401), RequestVerdict::RetryAuth);
        assert_eq!(request_verdict(403), RequestVerdict::RetryAuth);
        assert_eq!(request_verdict(413), RequestVerdict::Split);
        assert_eq!(request_verdict(400), RequestVerdict::Reject);
        assert_eq!(request_verdict(404), RequestVerdict::Reject);
    }

    #[test]
    fn items_in_order() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","_id":"1","status":201,"result":"created"}},
            {"create":{"_index":"i","_id":"2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[2]: version conflict, document already exists (current version [1])"}}},
            {"create":{"_index":"i","_id":"3","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"i","_id":"4","status":400,"error":{"type":"document_parsing_exception","reason":"[1:27] failed to parse field [n] of type [long]"}}},
            {"create":{"_index":"i","_id":"5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}},
            {"create":{"_index":"i","_id":"6","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [i]"}}}
        ]}"#;
        let out = item_outcomes(body, 6, BulkAction::Create).unwrap();
        assert_eq!(out[0], ItemOutcome::Delivered);
        assert_eq!(out[1], ItemOutcome::Duplicate);
        assert!(matches!(out[2], ItemOutcome::Retry { status: 429, .. }));
        assert_eq!(
            out[3],
            ItemOutcome::Reject {
                status: 400,
                reason:
                    "document_parsing_exception: [1:27] failed to parse field [n] of type [long]"
                        .into()
            }
        );
        assert!(matches!(out[4], ItemOutcome::Retry { status: 503, .. }));
        assert!(matches!(out[5], ItemOutcome::Reject { status: 404, .. }));
    }

    #[test]
    fn a_409_with_index_is_not_a_duplicate() {
        let body = br#"{"errors":true,"items":[{"index":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"x"}}}]}"#;
        let out = item_outcomes(body, 1, BulkAction::Index).unwrap();
        assert!(matches!(out[0], ItemOutcome::Reject { status: 409, .. }));
    }

    #[test]
    fn wrong_item_count_or_garbage_is_an_error() {
        let body = br#"{"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert!(item_outcomes(body, 2, BulkAction::Create).is_err());
        assert!(item_outcomes(b"<html>", 1, BulkAction::Create).is_err());
        assert!(item_outcomes(b"{\"errors\":false}", 1, BulkAction::Create).is_err());
        // An empty item, an item that is not an object, a truncated answer.
        let empty = br#"{"errors":true,"items":[{"create":{"status":201}},{}]}"#;
        assert!(item_outcomes(empty, 2, BulkAction::Create).is_err());
        let array = br#"{"errors":true,"items":[["create"]]}"#;
        assert!(item_outcomes(array, 1, BulkAction::Create).is_err());
        let cut = br#"{"errors":true,"items":[{"create":{"status":201}},{"create":{"sta"#;
        assert!(item_outcomes(cut, 2, BulkAction::Create).is_err());
    }

    // The action name is read as written, escapes included; the item's
    // other fields and any key after the action are read and left.
    #[test]
    fn item_action_names_with_escapes_and_extra_keys() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"cr\u0065ate":{"_index":"x","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"_index":"x","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"},"_shards":{"total":1}},"extra":[1,{"a":null}]},
            {"index":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}}
        ]}"#;
        let out = item_outcomes(body, 3, BulkAction::Create).unwrap();
        assert_eq!(out[0], ItemOutcome::Duplicate);
        assert_eq!(out[1], ItemOutcome::Duplicate);
        assert_eq!(
            out[2],
            ItemOutcome::Reject {
                status: 409,
                reason: "version_conflict_engine_exception: exists".into()
            }
        );
    }

    #[test]
    fn request_errors() {
        assert_eq!(
            request_error(
                400,
                br#"{"error":{"root_cause":[],"type":"illegal_argument_exception","reason":"bad"},"status":400}"#
            ),
            "illegal_argument_exception: bad"
        );
        assert_eq!(
            request_error(
                406,
                br#"{"error":"Content-Type header [x] is not supported","status":406}"#
            ),
            "Content-Type header [x] is not supported"
        );
        assert_eq!(request_error(413, b""), "HTTP 413 with no body");
        assert_eq!(
            request_error(502, b"<html>\nBad Gateway</html>"),
            "HTTP 502: <html> Bad Gateway</html>"
        );
        assert_eq!(
            reason_kind("mapper_parsing_exception: x: y"),
            "mapper_parsing_exception"
        );
    }
}
