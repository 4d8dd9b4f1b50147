//! The `_bulk` endpoint: parsing the NDJSON body and applying each item
//! to the fake's documents, as the ES reference ("Bulk API",
//! docs-bulk.html) and the specification (`specification/_global/bulk/`)
//! describe.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::wire::{self, ItemError, error_body};
use super::{ItemRule, ItemView, RequestLog, Scripted, StoredDoc};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Everything the fake knows; one lock.
#[derive(Default)]
pub(crate) struct State {
    pub indices: BTreeMap<String, IndexData>,
    pub templates: BTreeMap<String, Value>,
    pub bulk_requests: u64,
    pub items_received: u64,
    pub received_ids: Vec<String>,
    /// Per `_id`: how many times it was received, and its 1-based rank
    /// among the distinct ids received.
    pub receive_counts: HashMap<String, (u64, u64)>,
    pub script: VecDeque<Scripted>,
    pub item_rules: Vec<ItemRule>,
    pub requests: Vec<RequestLog>,
    pub auto_ids: u64,
    /// When set, stored sources keep only these dotted fields (tests that
    /// send millions of documents keep what they check, not gigabytes).
    pub keep_fields: Option<Vec<String>>,
}

/// `source` reduced to the dotted `fields` it has (as a nested object).
fn project(source: Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        let mut v = &source;
        let mut found = true;
        for part in f.split('.') {
            match v.get(part) {
                Some(x) => v = x,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            let mut o = &mut out;
            let parts: Vec<&str> = f.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                o = o
                    .entry(part.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("built as objects");
            }
            o.insert(parts[parts.len() - 1].to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// One index or data stream.
#[derive(Debug, Default)]
pub(crate) struct IndexData {
    pub data_stream: bool,
    /// What `_index` says in responses: the index itself, or the data
    /// stream's backing index `.ds-<name>-<yyyy.MM.dd>-000001`.
    pub backing: String,
    pub docs: Vec<Doc>,
    pub by_id: HashMap<String, usize>,
    pub next_seq_no: u64,
}

/// A stored document. The source is kept as compact JSON text, one
/// allocation, rather than as a `Value` tree (a map node of several hundred
/// bytes per object): a benchmark stores millions of documents, and
/// building and paging in those trees cost the fake more CPU than the
/// shipper it measures.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub id: String,
    /// Written by `serde_json` from a `Value`, so it always reads back.
    source: Box<str>,
    pub version: u64,
    pub seq_no: u64,
}

impl Doc {
    pub fn source(&self) -> Value {
        serde_json::from_str(&self.source).expect("stored sources are serde_json's own output")
    }

    pub fn stored(&self) -> StoredDoc {
        StoredDoc {
            id: self.id.clone(),
            source: self.source(),
            version: self.version,
            seq_no: self.seq_no,
        }
    }
}

impl IndexData {
    fn get(&self, id: &str) -> Option<&Doc> {
        self.by_id.get(id).map(|&i| &self.docs[i])
    }

    fn put(&mut self, id: &str, source: &Value) -> (u64, u64, bool) {
        let source = source.to_string().into_boxed_str();
        let seq_no = self.next_seq_no;
        self.next_seq_no += 1;
        match self.by_id.get(id) {
            Some(&i) => {
                let d = &mut self.docs[i];
                d.version += 1;
                d.seq_no = seq_no;
                d.source = source;
                (d.version, seq_no, false)
            }
            None => {
                self.by_id.insert(id.to_owned(), self.docs.len());
                self.docs.push(Doc {
                    id: id.to_owned(),
                    source,
                    version: 1,
                    seq_no,
                });
                (1, seq_no, true)
            }
        }
    }

    fn delete(&mut self, id: &str) -> Option<(u64, u64)> {
        let i = self.by_id.remove(id)?;
        let d = self.docs.remove(i);
        for v in self.by_id.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        let seq_no = self.next_seq_no;
        self.next_seq_no += 1;
        Some((d.version + 1, seq_no))
    }
}

/// A whole-request failure: HTTP status and body.
pub(crate) type Whole = (u16, Value);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Index,
    Create,
    Update,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

struct Op<'a> {
    action: Action,
    index: String,
    id: Option<String>,
    meta: Map<String, Value>,
    source: Option<&'a [u8]>,
}

/// Metadata fields the action line may carry ("Bulk API" > request body:
/// `_index`, `_id`, `require_alias`, `dynamic_templates`, `pipeline`,
/// `routing`, `if_seq_no`, `if_primary_term`, `version`, `version_type`,
/// and for update `retry_on_conflict` and `_source`).
const META_FIELDS: &[&str] = &[
    "_index",
    "_id",
    "routing",
    "pipeline",
    "require_alias",
    "require_data_stream",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "dynamic_templates",
    "retry_on_conflict",
    "_source",
    "list_executed_pipelines",
];

fn bad_request(kind: &str, reason: String) -> Whole {
    (400, error_body(400, kind, &reason, Map::new()))
}

fn validation(reason: String) -> Whole {
    bad_request(
        "action_request_validation_exception",
        format!("Validation Failed: 1: {reason};"),
    )
}

/// Parses the whole body first: a malformed body fails the whole request
/// and applies nothing, as in ES (`BulkRequestParser`).
fn parse<'a>(target: Option<&str>, body: &'a [u8]) -> Result<Vec<Op<'a>>, Whole> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(bad_request(
            "parse_exception",
            "request body is required".into(),
        ));
    }
    // "The final line of data must end with a newline character (\n)."
    if body.last() != Some(&b'\n') {
        return Err(bad_request(
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]".into(),
        ));
    }
    let body = &body[..body.len() - 1];
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body) {
        lines.push(&body[start..end]);
        start = end + 1;
    }
    lines.push(&body[start..]);
    let mut ops = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = trim_cr(lines[i]);
        i += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let v: Value = serde_json::from_slice(line).map_err(|e| {
            bad_request(
                "x_content_parse_exception",
                format!("[{line_no}:{}] {e}", e.column()),
            )
        })?;
        let Value::Object(obj) = v else {
            return Err(bad_request(
                "illegal_argument_exception",
                format!(
                    "Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT but found [{}]",
                    token_name(&v)
                ),
            ));
        };
        let mut entries = obj.into_iter();
        let Some((name, meta)) = entries.next() else {
            return Err(bad_request(
                "illegal_argument_exception",
                format!(
                    "Malformed action/metadata line [{line_no}], expected FIELD_NAME but found [END_OBJECT]"
                ),
            ));
        };
        if entries.next().is_some() {
            return Err(bad_request(
                "illegal_argument_exception",
                format!(
                    "Malformed action/metadata line [{line_no}], expected END_OBJECT but found [FIELD_NAME]"
                ),
            ));
        }
        let action = match name.as_str() {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            other => {
                return Err(bad_request(
                    "illegal_argument_exception",
                    format!(
                        "Malformed action/metadata line [{line_no}], expected one of [create, delete, index, update] but found [{other}]"
                    ),
                ));
            }
        };
        let Value::Object(meta) = meta else {
            return Err(bad_request(
                "illegal_argument_exception",
                format!(
                    "Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{}]",
                    token_name(&meta)
                ),
            ));
        };
        if let Some(k) = meta.keys().find(|k| !META_FIELDS.contains(&k.as_str())) {
            return Err(bad_request(
                "illegal_argument_exception",
                format!("Action/metadata line [{line_no}] contains an unknown parameter [{k}]"),
            ));
        }
        let index = match meta.get("_index") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => match target {
                Some(t) => t.to_owned(),
                None => return Err(validation("index is missing".into())),
            },
        };
        let id = match meta.get("_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        if let Some(id) = &id
            && id.len() > 512
        {
            return Err(validation(format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            )));
        }
        if matches!(action, Action::Update | Action::Delete) && id.is_none() {
            return Err(validation("id is missing".into()));
        }
        let source = if action == Action::Delete {
            None
        } else {
            let src = lines.get(i).map(|l| trim_cr(l));
            i += 1;
            match src {
                Some(s) if !s.iter().all(|b| b.is_ascii_whitespace()) => Some(s),
                _ => return Err(validation("source is missing".into())),
            }
        };
        ops.push(Op {
            action,
            index,
            id,
            meta,
            source,
        });
    }
    if ops.is_empty() {
        return Err(validation("no requests added".into()));
    }
    Ok(ops)
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn token_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

/// Index names ES accepts ("Create index API" > path parameters): lowercase;
/// no `\ / * ? " < > | ` space `,` `#` `:`; not starting with `-`, `_`, `+`;
/// not `.` or `..`; at most 255 bytes.
fn index_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.to_lowercase() != name {
        return Some("must be lowercase".into());
    }
    if name.starts_with(['-', '_', '+']) {
        return Some("must not start with '_', '-', or '+'".into());
    }
    if name == "." || name == ".." {
        return Some("must not be '.' or '..'".into());
    }
    if name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',']) {
        return Some(
            r#"must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]"#.into(),
        );
    }
    if name.contains('#') {
        return Some("must not contain '#'".into());
    }
    if name.contains(':') {
        return Some("must not contain ':'".into());
    }
    if name.len() > 255 {
        return Some("index name is too long, (256 > 255)".into());
    }
    None
}

/// Whether writing to `name` creates a data stream: the highest-priority
/// index template whose `index_patterns` match has `data_stream: {}`. ES
/// ships templates `logs` (`logs-*-*`), `metrics` (`metrics-*-*`),
/// `traces` (`traces-*-*`) and `synthetics` (`synthetics-*-*`) at
/// priority 100, all data streams ("Data streams" > "Set up a data stream").
fn creates_data_stream(templates: &BTreeMap<String, Value>, name: &str) -> bool {
    let builtin = ["logs-*-*", "metrics-*-*", "traces-*-*", "synthetics-*-*"];
    let mut best: Option<(i64, bool)> =
        builtin.iter().any(|p| glob(p, name)).then_some((100, true));
    for t in templates.values() {
        let patterns = t["index_patterns"]
            .as_array()
            .cloned()
            .or_else(|| t["index_patterns"].as_str().map(|s| vec![json!(s)]))
            .unwrap_or_default();
        if !patterns
            .iter()
            .filter_map(Value::as_str)
            .any(|p| glob(p, name))
        {
            continue;
        }
        let prio = t["priority"].as_i64().unwrap_or(0);
        if best.is_none_or(|(p, _)| prio > p) {
            best = Some((prio, t.get("data_stream").is_some()));
        }
    }
    best.is_some_and(|(_, ds)| ds)
}

/// `*` wildcards, as in `index_patterns`.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// One item's outcome as written in `items`: done (stored, deleted, not
/// found or a no-op), or failed with its `error`.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub(crate) enum ItemOut {
    Done(Done),
    Failed(Value),
}

/// A successful item, its fields in the order ES writes them.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Done {
    #[serde(rename = "_index")]
    backing: String,
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_version")]
    version: u64,
    result: &'static str,
    #[serde(rename = "_shards")]
    shards: Shards,
    #[serde(rename = "_seq_no")]
    seq_no: u64,
    #[serde(rename = "_primary_term")]
    primary_term: u64,
    status: u16,
}

#[derive(Debug, serde::Serialize)]
struct Shards {
    total: u32,
    successful: u32,
    failed: u32,
}

fn item_ok(
    backing: &str,
    id: &str,
    version: u64,
    seq_no: u64,
    result: &'static str,
    status: u16,
) -> ItemOut {
    ItemOut::Done(Done {
        backing: backing.to_owned(),
        id: id.to_owned(),
        version,
        result,
        shards: Shards {
            total: 2,
            successful: 1,
            failed: 0,
        },
        seq_no,
        primary_term: 1,
        status,
    })
}

fn item_err_value(index: &str, id: &str, e: &ItemError) -> Value {
    json!({
        "_index": index,
        "_id": id,
        "status": e.status,
        "error": e.to_json(index, id),
    })
}

fn item_err(index: &str, id: &str, e: &ItemError) -> ItemOut {
    ItemOut::Failed(item_err_value(index, id, e))
}

/// A `_bulk` answer, serialized as ES writes it without building a JSON
/// tree of every item.
#[derive(Debug, serde::Serialize)]
pub(crate) struct BulkAnswer {
    pub errors: bool,
    pub took: u64,
    #[serde(serialize_with = "action_maps")]
    pub items: Vec<(&'static str, ItemOut)>,
}

/// Each item as `{"<action>": <outcome>}`.
fn action_maps<S: Serializer>(
    items: &[(&'static str, ItemOut)],
    ser: S,
) -> Result<S::Ok, S::Error> {
    struct One<'a>(&'a str, &'a ItemOut);
    impl Serialize for One<'_> {
        fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
            let mut m = ser.serialize_map(Some(1))?;
            m.serialize_entry(self.0, self.1)?;
            m.end()
        }
    }
    ser.collect_seq(items.iter().map(|(action, item)| One(action, item)))
}

/// Applies a `_bulk` request. Items are answered in request order
/// (`BulkResponse.items`: "The result of each operation in the bulk
/// request, in the order they were submitted"); HTTP 200 even when items
/// failed, with `errors: true`.
pub(crate) fn process(
    state: &mut State,
    target: Option<&str>,
    body: &[u8],
    started: Instant,
) -> Result<BulkAnswer, Whole> {
    let ops = parse(target, body)?;
    let mut items = Vec::with_capacity(ops.len());
    for op in ops {
        items.push(apply(state, op));
    }
    Ok(BulkAnswer {
        errors: items.iter().any(|(_, i)| matches!(i, ItemOut::Failed(_))),
        took: started.elapsed().as_millis() as u64,
        items,
    })
}

fn apply(state: &mut State, op: Op<'_>) -> (&'static str, ItemOut) {
    let action = op.action.name();
    state.items_received += 1;
    let ordinal = state.items_received;
    // ES assigns auto-generated ids on the coordinating node, before the
    // item runs, so failed items carry one too.
    let id = match &op.id {
        Some(id) => id.clone(),
        None => {
            state.auto_ids += 1;
            wire::auto_id(state.auto_ids)
        }
    };
    let (attempt, first_seen) = match &op.id {
        Some(id) => {
            state.received_ids.push(id.clone());
            let next = state.receive_counts.len() as u64 + 1;
            match state.receive_counts.get_mut(id) {
                Some((n, rank)) => {
                    *n += 1;
                    (*n, *rank)
                }
                None => {
                    state.receive_counts.insert(id.clone(), (1, next));
                    (1, next)
                }
            }
        }
        None => (1, ordinal),
    };
    if !state.item_rules.is_empty() {
        let source_text = op.source.map(String::from_utf8_lossy);
        let view = ItemView {
            action,
            index: &op.index,
            id: op.id.as_deref(),
            source: source_text.as_deref(),
            attempt,
            first_seen,
            ordinal,
        };
        if let Some(rule) = state.item_rules.iter().find(|r| (r.matches)(&view)) {
            return (action, item_err(&op.index, &id, &rule.error));
        }
    }
    if let Some(problem) = index_name_problem(&op.index) {
        return (
            action,
            item_err(
                &op.index,
                &id,
                &ItemError::new(
                    400,
                    "invalid_index_name_exception",
                    format!("Invalid index name [{}], {problem}", op.index),
                ),
            ),
        );
    }
    let data_stream = match state.indices.get(&op.index) {
        Some(ix) => ix.data_stream,
        None => creates_data_stream(&state.templates, &op.index),
    };
    if data_stream && op.action != Action::Create {
        // "Data streams" > "Add documents to a data stream": "you must use
        // the create operation"; other op types are refused per item.
        return (
            action,
            item_err(
                &op.index,
                &id,
                &ItemError::new(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                ),
            ),
        );
    }
    if op.meta.get("require_alias").and_then(Value::as_bool) == Some(true) {
        return (
            action,
            item_err(
                &op.index,
                &id,
                &ItemError::new(
                    404,
                    "index_not_found_exception",
                    format!(
                        "no such index [{}] and [require_alias] request flag is [true] and [{}] is not an alias",
                        op.index, op.index
                    ),
                ),
            ),
        );
    }
    // Only the kept fields of a document are stored when asked
    // (benchmarks): the document is checked whole, but only their
    // members are built into JSON trees.
    let source = match op
        .source
        .map(|s| parse_source(s, state.keep_fields.as_deref()))
    {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return (action, item_err(&op.index, &id, &e)),
        None => None,
    };
    if data_stream
        && let Some(src) = &source
        && !src.has_timestamp
    {
        return (
            action,
            item_err(
                &op.index,
                &id,
                &ItemError::new(
                    400,
                    "document_parsing_exception",
                    "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing",
                ),
            ),
        );
    }
    if !state.indices.contains_key(&op.index) {
        let backing = if data_stream {
            format!(".ds-{}-{}-000001", op.index, wire::today())
        } else {
            op.index.clone()
        };
        state.indices.insert(
            op.index.clone(),
            IndexData {
                data_stream,
                backing,
                ..IndexData::default()
            },
        );
    }
    let source = source.map(|s| s.doc);
    let ix = state.indices.get_mut(&op.index).expect("inserted above");
    let backing = ix.backing.clone();
    if let Some(conflict) = seq_no_conflict(&op.meta, ix.get(&id), &id) {
        return (action, item_err(&backing, &id, &conflict));
    }
    let out = match op.action {
        Action::Create => {
            if let Some(existing) = ix.get(&id) {
                // "create: Indexes the specified document if it does not
                // already exist" — else 409.
                let mut e = ItemError::new(
                    409,
                    "version_conflict_engine_exception",
                    format!(
                        "[{{id}}]: version conflict, document already exists (current version [{}])",
                        existing.version
                    ),
                );
                e.caused_by = None;
                let mut v = item_err_value(&backing, &id, &e);
                v["error"]["shard"] = json!("0");
                ItemOut::Failed(v)
            } else {
                let (version, seq_no, _) = ix.put(&id, &source.unwrap_or_default());
                item_ok(&backing, &id, version, seq_no, "created", 201)
            }
        }
        Action::Index => {
            let (version, seq_no, created) = ix.put(&id, &source.unwrap_or_default());
            if created {
                item_ok(&backing, &id, version, seq_no, "created", 201)
            } else {
                item_ok(&backing, &id, version, seq_no, "updated", 200)
            }
        }
        Action::Delete => match ix.delete(&id) {
            Some((version, seq_no)) => item_ok(&backing, &id, version, seq_no, "deleted", 200),
            // Not an error: `result: not_found`, status 404, no `error`.
            None => {
                let seq_no = ix.next_seq_no;
                ix.next_seq_no += 1;
                item_ok(&backing, &id, 1, seq_no, "not_found", 404)
            }
        },
        Action::Update => update(ix, &backing, &id, source.unwrap_or_default()),
    };
    (action, out)
}

/// A document as received: a JSON object (reduced to the kept fields when
/// some are given), and whether it has `@timestamp`.
#[derive(Debug, PartialEq)]
struct Source {
    doc: Value,
    has_timestamp: bool,
}

/// Checks a document whole in one pass and builds only the members that
/// are kept (all of them when `keep` is `None`), then projects them on the
/// kept fields.
fn parse_source(s: &[u8], keep: Option<&[String]>) -> Result<Source, ItemError> {
    let parse_error = |e: serde_json::Error| {
        ItemError::new(
            400,
            "document_parsing_exception",
            format!("[1:{}] failed to parse: {e}", e.column()),
        )
    };
    // Valid UTF-8 first, so that members skipped unread are checked too.
    let Ok(text) = std::str::from_utf8(s) else {
        return Err(match serde_json::from_slice::<Value>(s) {
            Err(e) => parse_error(e),
            Ok(_) => ItemError::new(
                400,
                "document_parsing_exception",
                "[1:1] failed to parse: invalid UTF-8",
            ),
        });
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let scanned =
        serde::Deserializer::deserialize_any(&mut de, Scan { keep }).map_err(parse_error)?;
    de.end().map_err(parse_error)?;
    let Some((members, has_timestamp)) = scanned else {
        return Err(ItemError::new(
            400,
            "document_parsing_exception",
            "[1:1] Malformed content, must start with an object",
        ));
    };
    let doc = match keep {
        Some(fields) => project(Value::Object(members), fields),
        None => Value::Object(members),
    };
    Ok(Source { doc, has_timestamp })
}

/// The one pass of [`parse_source`]: `None` for a value that is not an
/// object (read to its end, so that errors in it are still found), else
/// the kept members and whether `@timestamp` is one of the keys.
struct Scan<'k> {
    keep: Option<&'k [String]>,
}

/// A member name, borrowed from the document unless it has escapes.
#[derive(serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl<'de> serde::de::Visitor<'de> for Scan<'_> {
    type Value = Option<(Map<String, Value>, bool)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut members = Map::new();
        let mut has_timestamp = false;
        while let Some(Key(k)) = m.next_key()? {
            has_timestamp |= k == "@timestamp";
            let kept = self
                .keep
                .is_none_or(|keep| keep.iter().any(|f| f.split('.').next() == Some(&*k)));
            if kept {
                // A repeated member keeps its last value, as in a whole parse.
                members.insert(k.into_owned(), m.next_value()?);
            } else {
                m.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(Some((members, has_timestamp)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

fn seq_no_conflict(
    meta: &Map<String, Value>,
    current: Option<&Doc>,
    _id: &str,
) -> Option<ItemError> {
    let want_seq = meta.get("if_seq_no")?.as_u64()?;
    let want_term = meta.get("if_primary_term").and_then(Value::as_u64)?;
    match current {
        Some(d) if d.seq_no == want_seq && want_term == 1 => None,
        Some(d) => Some(ItemError::new(
            409,
            "version_conflict_engine_exception",
            format!(
                "[{{id}}]: version conflict, required seqNo [{want_seq}], primary term [{want_term}]. current document has seqNo [{}] and primary term [1]",
                d.seq_no
            ),
        )),
        None => Some(ItemError::new(
            409,
            "version_conflict_engine_exception",
            format!(
                "[{{id}}]: version conflict, required seqNo [{want_seq}], primary term [{want_term}]. but no document was found"
            ),
        )),
    }
}

/// `update` with a partial `doc` (merged), `doc_as_upsert` or `upsert`.
/// Scripts are not run by the fake.
fn update(ix: &mut IndexData, backing: &str, id: &str, body: Value) -> ItemOut {
    if body.get("script").is_some() {
        return item_err(
            backing,
            id,
            &ItemError::new(
                400,
                "illegal_argument_exception",
                "the fake Elasticsearch does not run scripts",
            ),
        );
    }
    let doc = body.get("doc").cloned();
    match ix.get(id).map(Doc::source) {
        Some(mut current) => {
            let Some(doc) = doc else {
                return item_err(
                    backing,
                    id,
                    &ItemError::new(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: script or doc is missing;",
                    ),
                );
            };
            let before = current.clone();
            merge(&mut current, doc);
            if current == before && body["detect_noop"].as_bool() != Some(false) {
                let d = ix.get(id).expect("present");
                return item_ok(backing, id, d.version, d.seq_no, "noop", 200);
            }
            let (version, seq_no, _) = ix.put(id, &current);
            item_ok(backing, id, version, seq_no, "updated", 200)
        }
        None => {
            let upsert = if body["doc_as_upsert"].as_bool() == Some(true) {
                doc
            } else {
                body.get("upsert").cloned()
            };
            match upsert {
                Some(u) => {
                    let (version, seq_no, _) = ix.put(id, &u);
                    item_ok(backing, id, version, seq_no, "created", 201)
                }
                None => item_err(
                    backing,
                    id,
                    &ItemError::new(
                        404,
                        "document_missing_exception",
                        "[{id}]: document missing",
                    ),
                ),
            }
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer as a client reads it.
    fn run(state: &mut State, body: &str) -> Result<Value, Whole> {
        process(state, None, body.as_bytes(), Instant::now())
            .map(|a| serde_json::to_value(&a).expect("answers serialize"))
    }

    #[test]
    fn final_newline_is_required() {
        let mut s = State::default();
        let (status, body) = run(&mut s, "{\"index\":{\"_index\":\"a\"}}\n{}").unwrap_err();
        assert_eq!(status, 400);
        assert_eq!(
            body["error"]["reason"],
            "The bulk request must be terminated by a newline [\\n]"
        );
    }

    #[test]
    fn create_conflicts_on_existing_id() {
        let mut s = State::default();
        let body = "{\"create\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n";
        let r = run(&mut s, body).unwrap();
        assert_eq!(r["errors"], false);
        assert_eq!(r["items"][0]["create"]["status"], 201);
        let r = run(&mut s, body).unwrap();
        assert_eq!(r["errors"], true);
        assert_eq!(r["items"][0]["create"]["status"], 409);
        assert_eq!(
            r["items"][0]["create"]["error"]["type"],
            "version_conflict_engine_exception"
        );
        assert_eq!(s.receive_counts["1"], (2, 1));
    }

    #[test]
    fn all_actions() {
        let mut s = State::default();
        let body = concat!(
            "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n",
            "{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":2}\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"doc\":{\"y\":3}}\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"2\"}}\n{\"doc\":{\"y\":3}}\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"3\"}}\n{\"doc\":{\"y\":3},\"doc_as_upsert\":true}\n",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"3\"}}\n",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"3\"}}\n",
            "{\"index\":{\"_index\":\"a\"}}\n{\"auto\":true}\n",
        );
        let r = run(&mut s, body).unwrap();
        let items = r["items"].as_array().unwrap();
        let st: Vec<(String, u64)> = items
            .iter()
            .map(|i| {
                let (k, v) = i.as_object().unwrap().iter().next().unwrap();
                (k.clone(), v["status"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(
            st,
            vec![
                ("index".into(), 201),
                ("index".into(), 200),
                ("update".into(), 200),
                ("update".into(), 404),
                ("update".into(), 201),
                ("delete".into(), 200),
                ("delete".into(), 404),
                ("index".into(), 201),
            ]
        );
        assert_eq!(
            items[3]["update"]["error"]["type"],
            "document_missing_exception"
        );
        assert!(items[6]["delete"].get("error").is_none());
        assert_eq!(r["errors"], true);
        let a = &s.indices["a"];
        assert_eq!(a.get("1").unwrap().source(), json!({"x": 2, "y": 3}));
        assert_eq!(a.docs.len(), 2);
        assert_eq!(items[7]["index"]["_id"].as_str().unwrap().len(), 20);
    }

    #[test]
    fn data_streams_take_create_only_and_need_a_timestamp() {
        let mut s = State::default();
        let body = concat!(
            "{\"create\":{\"_index\":\"logs-app-default\",\"_id\":\"1\"}}\n{\"@timestamp\":\"2024-01-01T00:00:00Z\"}\n",
            "{\"index\":{\"_index\":\"logs-app-default\",\"_id\":\"2\"}}\n{\"@timestamp\":\"2024-01-01T00:00:00Z\"}\n",
            "{\"create\":{\"_index\":\"logs-app-default\",\"_id\":\"3\"}}\n{\"no\":\"ts\"}\n",
        );
        let r = run(&mut s, body).unwrap();
        assert_eq!(r["items"][0]["create"]["status"], 201);
        assert!(
            r["items"][0]["create"]["_index"]
                .as_str()
                .unwrap()
                .starts_with(".ds-logs-app-default-")
        );
        assert_eq!(r["items"][1]["index"]["status"], 400);
        assert_eq!(r["items"][2]["create"]["status"], 400);
    }

    #[test]
    fn malformed_requests_fail_whole() {
        let mut s = State::default();
        for (body, kind) in [
            ("{\"frob\":{}}\n", "illegal_argument_exception"),
            (
                "{\"index\":{\"_type\":\"x\"}}\n{}\n",
                "illegal_argument_exception",
            ),
            (
                "{\"index\":{}}\n{}\n",
                "action_request_validation_exception",
            ),
            (
                "{\"index\":{\"_index\":\"a\"}}\n",
                "action_request_validation_exception",
            ),
            ("not json\n", "x_content_parse_exception"),
            ("\n", "parse_exception"),
        ] {
            let (status, e) = run(&mut s, body).unwrap_err();
            assert_eq!(status, 400, "{body}");
            assert_eq!(e["error"]["type"], kind, "{body}: {e}");
        }
        assert!(s.indices.is_empty());
    }

    #[test]
    fn per_item_parse_errors() {
        let mut s = State::default();
        let body = concat!(
            "{\"index\":{\"_index\":\"Upper\"}}\n{}\n",
            "{\"index\":{\"_index\":\"a\"}}\n{broken\n",
            "{\"index\":{\"_index\":\"a\"}}\n[1]\n",
        );
        let r = run(&mut s, body).unwrap();
        assert_eq!(
            r["items"][0]["index"]["error"]["type"],
            "invalid_index_name_exception"
        );
        assert_eq!(
            r["items"][1]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert_eq!(r["items"][2]["index"]["status"], 400);
    }

    #[test]
    fn globs() {
        assert!(glob("logs-*-*", "logs-a-b"));
        assert!(!glob("logs-*-*", "logs-a"));
        assert!(glob("logs-mlsoc.*", "logs-mlsoc.x-default"));
        assert!(glob("*", "x"));
        assert!(!glob("a", "b"));
    }

    /// A document is checked as a whole but built only where kept: the
    /// outcome is that of parsing the whole document with serde_json and
    /// projecting it, errors included, with and without kept fields.
    #[test]
    fn kept_fields_parse_like_the_whole_document() {
        let keep = vec!["event.dataset".to_string(), "@timestamp".to_string()];
        let docs: Vec<&[u8]> = vec![
            br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"dataset":"a","x":1},"big":[1,2,{"c":"d"}]}"#,
            br#"{"event":{"dataset":"a"},"event":{"dataset":"b"}}"#,
            br#"{"ev\u0065nt":{"dataset":"escaped key"},"n":null}"#,
            br#"{"@timest\u0061mp":1}"#,
            br#"  {"other": true}"#,
            br#"{}"#,
            br#"[1,2]"#,
            br#""text""#,
            br#"{"event":{"dataset":"a"},"bad":[1,}"#,
            br#"{"event":"#,
            br#"{"a":1} trailing"#,
            b"{\"skipped\":\"\xff\",\"event\":{\"dataset\":\"a\"}}",
            b"{\"event\":{\"dataset\":\"\xc3\"}}",
            b"",
        ];
        for doc in docs {
            let reference = match serde_json::from_slice::<Value>(doc) {
                Err(e) => Err(format!("[1:{}] failed to parse: {e}", e.column())),
                Ok(Value::Object(m)) => Ok((
                    project(Value::Object(m.clone()), &keep),
                    Value::Object(m.clone()),
                    m.contains_key("@timestamp"),
                )),
                Ok(_) => Err("[1:1] Malformed content, must start with an object".into()),
            };
            let text = String::from_utf8_lossy(doc);
            let reason = |e: ItemError| {
                assert_eq!(
                    (e.status, e.kind.as_str()),
                    (400, "document_parsing_exception")
                );
                e.reason
            };
            let kept = parse_source(doc, Some(&keep)).map_err(reason);
            let whole = parse_source(doc, None).map_err(reason);
            match reference {
                Ok((projected, all, ts)) => {
                    assert_eq!(
                        kept,
                        Ok(Source {
                            doc: projected,
                            has_timestamp: ts
                        }),
                        "{text}"
                    );
                    assert_eq!(
                        whole,
                        Ok(Source {
                            doc: all,
                            has_timestamp: ts
                        }),
                        "{text}"
                    );
                }
                Err(reason) => {
                    assert_eq!(kept, Err(reason.clone()), "{text}");
                    assert_eq!(whole, Err(reason), "{text}");
                }
            }
        }
    }
}
