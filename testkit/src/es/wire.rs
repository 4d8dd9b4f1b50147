//! Error bodies and small wire details of Elasticsearch, as its REST layer
//! writes them.
//!
//! Shape of every error (`specification/_types/Base.ts`, `ErrorResponseBase`):
//! `{"error":{"root_cause":[{"type","reason"}],"type","reason",...},"status":N}`.

use serde_json::{Map, Value, json};

/// The body ES writes for a failed request: the cause, repeated as the
/// only root cause, and the status.
pub fn error_body(status: u16, kind: &str, reason: &str, extra: Map<String, Value>) -> Value {
    let mut cause = Map::new();
    cause.insert("type".into(), kind.into());
    cause.insert("reason".into(), reason.into());
    cause.extend(extra);
    let mut error = cause.clone();
    error.insert(
        "root_cause".into(),
        Value::Array(vec![Value::Object(cause)]),
    );
    json!({"error": error, "status": status})
}

/// A realistic whole-request error body for `status`, used by scripted
/// failures. `None`: ES (or the proxy in front of it) sends no JSON body.
pub fn scripted_body(status: u16, path: &str) -> Option<Value> {
    let none = Map::new;
    Some(match status {
        // `http.max_content_length` exceeded: Netty's aggregator answers
        // "413 Request Entity Too Large" with `content-length: 0`
        // (elastic/elasticsearch#2902, #76705).
        413 => return None,
        // Proxies in front of a cluster (502/504) answer with HTML, not JSON.
        502 | 504 => return None,
        401 => error_body(
            401,
            "security_exception",
            &format!("missing authentication credentials for REST request [{path}]"),
            www_authenticate(),
        ),
        403 => error_body(
            403,
            "security_exception",
            "action [indices:data/write/bulk] is unauthorized for user [mlsoc] with effective roles [viewer], this action is granted by the index privileges [create_doc,create,index,write,all]",
            none(),
        ),
        // The coordinating node's indexing pressure limit
        // (`indexing_pressure.memory.limit`): the whole bulk is refused.
        429 => error_body(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=52428800, max_coordinating_and_primary_bytes=53687091]",
            none(),
        ),
        503 => error_body(
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
            none(),
        ),
        404 => error_body(
            404,
            "index_not_found_exception",
            "no such index [mlsoc]",
            none(),
        ),
        400 => error_body(
            400,
            "illegal_argument_exception",
            "scripted failure",
            none(),
        ),
        s => error_body(s, "exception", "scripted failure", none()),
    })
}

/// `header.WWW-Authenticate` that ES adds to its 401 errors (and as the
/// HTTP header).
pub fn www_authenticate() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "header".into(),
        json!({"WWW-Authenticate": [r#"Basic realm="security", charset="UTF-8""#, "ApiKey"]}),
    );
    m
}

/// The per-item error of a `_bulk` response (`BulkResponseItemBase.error`,
/// an `ErrorCause`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    /// The item's `status`.
    pub status: u16,
    /// `error.type`.
    pub kind: String,
    /// `error.reason`. `{id}` and `{index}` are replaced by the item's.
    pub reason: String,
    /// `error.caused_by`, when ES gives one.
    pub caused_by: Option<(String, String)>,
}

impl ItemError {
    pub fn new(status: u16, kind: impl Into<String>, reason: impl Into<String>) -> ItemError {
        ItemError {
            status,
            kind: kind.into(),
            reason: reason.into(),
            caused_by: None,
        }
    }

    /// A 400 `document_parsing_exception` (ES 8+; `mapper_parsing_exception`
    /// before) for a value that does not fit the field's mapped type, worded
    /// as ES words it:
    /// `[1:27] failed to parse field [http.response.status_code] of type [long]
    /// in document with id 'x'. Preview of field's value: 'abc'`.
    pub fn mapping(field: &str, field_type: &str, preview: &str) -> ItemError {
        ItemError {
            status: 400,
            kind: "document_parsing_exception".into(),
            reason: format!(
                "[1:27] failed to parse field [{field}] of type [{field_type}] in document with id '{{id}}'. Preview of field's value: '{preview}'"
            ),
            caused_by: Some((
                "illegal_argument_exception".into(),
                format!("For input string: \"{preview}\""),
            )),
        }
    }

    /// The same failure with the pre-8.0 type name `mapper_parsing_exception`
    /// (still what OpenSearch and older clusters send).
    pub fn mapper_parsing(field: &str, field_type: &str, preview: &str) -> ItemError {
        ItemError {
            kind: "mapper_parsing_exception".into(),
            ..ItemError::mapping(field, field_type, preview)
        }
    }

    /// A 429 `es_rejected_execution_exception`: the write thread pool's queue
    /// of the shard's node is full. Clients retry these items.
    pub fn rejected() -> ItemError {
        ItemError::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of org.elasticsearch.action.support.replication.TransportWriteAction$1/WrappedActionListener{bulk-primary-op} on EsThreadPoolExecutor[name = fake-node-1/write, queue capacity = 10000, task execution EWMA = 1.2ms, total task execution time = 4.1s]",
        )
    }

    /// A 503 `unavailable_shards_exception` (primary shard not active).
    pub fn unavailable() -> ItemError {
        ItemError::new(
            503,
            "unavailable_shards_exception",
            "[{index}][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [[{index}][0]] containing [1] requests]",
        )
    }

    /// A 404 `index_not_found_exception` (the target must exist:
    /// `require_alias`, or auto-creation disabled).
    pub fn index_not_found() -> ItemError {
        ItemError::new(404, "index_not_found_exception", "no such index [{index}]")
    }

    pub(crate) fn to_json(&self, index: &str, id: &str) -> Value {
        let fill = |s: &str| s.replace("{id}", id).replace("{index}", index);
        let mut e = json!({"type": self.kind, "reason": fill(&self.reason)});
        if let Some((t, r)) = &self.caused_by {
            e["caused_by"] = json!({"type": t, "reason": fill(r)});
        }
        if self.kind.ends_with("_exception") && self.status != 429 {
            e["index_uuid"] = json!(index_uuid(index));
            e["index"] = json!(index);
        }
        e
    }
}

/// A stable `index_uuid` for an index name (ES: a random UUID per index).
pub fn index_uuid(index: &str) -> String {
    use base64::Engine as _;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in index.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let mut bytes = h.to_le_bytes().to_vec();
    bytes.extend_from_slice(&h.rotate_left(29).to_le_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..16])
}

/// A 20-character id like the ones ES generates (URL-safe base64 of a
/// time-based UUID): unique within the process.
pub fn auto_id(seq: u64) -> String {
    use base64::Engine as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut bytes = Vec::with_capacity(15);
    bytes.extend_from_slice(&nanos.to_be_bytes()[1..]);
    bytes.extend_from_slice(&seq.to_be_bytes()[1..]);
    bytes.push(std::process::id() as u8);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..15])
}

/// `yyyy.MM.dd` of today (UTC), as in a data stream's backing index name
/// (`.ds-<data-stream>-<yyyy.MM.dd>-<generation>`).
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}.{m:02}.{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_root_cause_and_status() {
        let b = error_body(400, "illegal_argument_exception", "bad", Map::new());
        assert_eq!(b["status"], 400);
        assert_eq!(b["error"]["type"], "illegal_argument_exception");
        assert_eq!(b["error"]["root_cause"][0]["reason"], "bad");
    }

    #[test]
    fn ids_are_twenty_chars_and_unique() {
        let a = auto_id(1);
        let b = auto_id(2);
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert_eq!(t.len(), 10);
        assert!(t.starts_with("20"), "{t}");
    }

    #[test]
    fn item_error_fills_id() {
        let e = ItemError::mapping("a", "long", "x").to_json("idx", "doc-1");
        assert!(e["reason"].as_str().unwrap().contains("'doc-1'"));
        assert_eq!(e["index"], "idx");
    }
}
