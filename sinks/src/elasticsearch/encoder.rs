//! The `_bulk` body: for each record an action line naming its index (or
//! data stream) and `_id`, then the document, each line ending in `\n`
//! ("The final line of data must end with a newline character").

use bytes::{BufMut, Bytes, BytesMut};

use super::config::{BulkAction, DataStreamConfig, ElasticsearchConfig, IdMode, Mode};
use crate::record::Record;

/// Turns records into bulk items.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    mode: Mode,
    data_stream: DataStreamConfig,
    index: String,
    action: BulkAction,
    id: IdMode,
}

impl Encoder {
    pub(crate) fn new(config: &ElasticsearchConfig) -> Encoder {
        Encoder {
            mode: config.mode,
            data_stream: config.data_stream.clone(),
            index: config.index.clone().unwrap_or_default(),
            action: config.effective_action(),
            id: config.id,
        }
    }

    pub(crate) fn action(&self) -> BulkAction {
        self.action
    }

    /// The index or data stream of `r`.
    ///
    /// Data streams are `<type>-<dataset>-<namespace>` with the dataset
    /// under `mlsoc.`: `mlflow.access` goes to
    /// `logs-mlsoc.mlflow.access-default`, alerts (`mlsoc.alert`) to
    /// `logs-mlsoc.alert-default`, dead letters (`mlsoc.dead_letter`) to
    /// `logs-mlsoc.dead_letter-default`; all match the template's
    /// `logs-mlsoc.*`.
    pub(crate) fn target(&self, r: &Record) -> String {
        match self.mode {
            Mode::DataStream => {
                let mut ds = data_stream_part(&r.dataset);
                if !ds.starts_with("mlsoc.") {
                    ds.insert_str(0, "mlsoc.");
                }
                ds.truncate(100);
                format!(
                    "{}-{}-{}",
                    self.data_stream.kind, ds, self.data_stream.namespace
                )
            }
            Mode::Index => {
                let mut name = self
                    .index
                    .replace("{dataset}", &index_part(&r.dataset))
                    .replace("{stream}", r.stream.as_str());
                while name.starts_with(['-', '_', '+']) {
                    name.remove(0);
                }
                truncate_bytes(&mut name, 255);
                if name.is_empty() || name == "." || name == ".." {
                    name = "mlsoc".into();
                }
                name
            }
        }
    }

    /// The item for `r`: action line and document line. `Err` when the
    /// document cannot be one NDJSON line (it holds a raw newline and is
    /// not valid JSON, so it cannot be re-serialized on one line).
    pub(crate) fn encode(&self, r: &Record, cache: &mut Cache) -> Result<Encoded, String> {
        let doc = if memchr_newline(&r.doc) {
            // mlsoc serializes documents compactly, so this is rare: a
            // pretty-printed document from elsewhere. Newlines inside JSON
            // strings are always escaped, so re-serializing puts it on one line.
            match serde_json::from_slice::<serde_json::Value>(&r.doc) {
                Ok(v) => Bytes::from(serde_json::to_vec(&v).map_err(|e| e.to_string())?),
                Err(e) => {
                    return Err(format!(
                        "document is not valid JSON and spans several lines, so it cannot be sent in a _bulk body: {e}"
                    ));
                }
            }
        } else {
            // Shared, not copied: the body is the only copy.
            r.doc.clone()
        };
        // The action line up to the index name is the same for every
        // record of one stream and dataset: made once per run of them.
        if cache
            .key
            .as_ref()
            .is_none_or(|(s, d)| *s != r.stream || **d != *r.dataset)
        {
            cache.prefix.clear();
            cache.prefix.extend_from_slice(b"{\"");
            cache
                .prefix
                .extend_from_slice(self.action.as_str().as_bytes());
            cache.prefix.extend_from_slice(b"\":{\"_index\":");
            schema::json::write_str(&self.target(r), &mut cache.prefix);
            cache.key = Some((r.stream, r.dataset.clone()));
        }
        let mut buf = Vec::with_capacity(cache.prefix.len() + r.id.len() + 16);
        buf.extend_from_slice(&cache.prefix);
        if self.id == IdMode::Record && !r.id.is_empty() {
            buf.extend_from_slice(b",\"_id\":");
            schema::json::write_str(&r.id, &mut buf);
        }
        buf.extend_from_slice(b"}}\n");
        Ok(Encoded {
            action: Bytes::from(buf),
            doc,
        })
    }
}

/// The action line's start for the last stream and dataset encoded.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    key: Option<(crate::record::Stream, std::sync::Arc<str>)>,
    prefix: Vec<u8>,
}

/// One `_bulk` item: its action line (with its newline) and its document
/// (one line, without).
#[derive(Debug, Clone)]
pub(crate) struct Encoded {
    action: Bytes,
    doc: Bytes,
}

impl Encoded {
    /// Bytes in the body.
    pub(crate) fn len(&self) -> usize {
        self.action.len() + self.doc.len() + 1
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.action);
        buf.put_slice(&self.doc);
        buf.put_u8(b'\n');
    }

    #[cfg(test)]
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut b = BytesMut::new();
        self.write(&mut b);
        b.to_vec()
    }
}

/// A whole `_bulk` body from encoded items, in one allocation.
pub(crate) fn body<'a>(items: impl Iterator<Item = &'a Encoded> + Clone) -> Bytes {
    let mut buf = BytesMut::with_capacity(items.clone().map(Encoded::len).sum());
    for i in items {
        i.write(&mut buf);
    }
    buf.freeze()
}

/// Whether `b` holds a line break (SIMD scan: every document passes here).
fn memchr_newline(b: &[u8]) -> bool {
    memchr::memchr2(b'\n', b'\r', b).is_some()
}

/// A dataset as a data stream name part: lowercase `a-z0-9_.`, no `-`
/// (the separator of the name's parts).
fn data_stream_part(dataset: &str) -> String {
    let s: String = dataset
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('.').to_owned();
    if s.is_empty() { "unknown".into() } else { s }
}

/// A dataset inside an index name: lowercase, characters ES refuses
/// (`\ / * ? " < > | , # :` and spaces) replaced by `_`.
fn index_part(dataset: &str) -> String {
    let s: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stream;

    fn rec(dataset: &str, id: &str, doc: &str) -> Record {
        Record {
            stream: Stream::Events,
            doc: Bytes::from(doc.to_owned()),
            dataset: dataset.into(),
            time_ns: None,
            host: None,
            source: "s".into(),
            id: id.into(),
        }
    }

    #[test]
    fn data_stream_names() {
        let e = Encoder::new(&ElasticsearchConfig::new(["http://x:9200"]));
        assert_eq!(
            e.target(&rec("mlflow.access", "1", "{}")),
            "logs-mlsoc.mlflow.access-default"
        );
        assert_eq!(
            e.target(&rec("mlsoc.alert", "1", "{}")),
            "logs-mlsoc.alert-default"
        );
        assert_eq!(
            e.target(&rec("mlsoc.dead_letter", "1", "{}")),
            "logs-mlsoc.dead_letter-default"
        );
        assert_eq!(
            e.target(&rec("Evil-Name/../x", "1", "{}")),
            "logs-mlsoc.evil_name_.._x-default"
        );
    }

    #[test]
    fn index_names() {
        let mut c = ElasticsearchConfig::new(["http://x:9200"]);
        c.mode = Mode::Index;
        c.index = Some("mlsoc-{stream}-{dataset}".into());
        let e = Encoder::new(&c);
        assert_eq!(
            e.target(&rec("MLflow.Access", "1", "{}")),
            "mlsoc-events-mlflow.access"
        );
        assert_eq!(e.target(&rec("a b/c", "1", "{}")), "mlsoc-events-a_b_c");
        c.index = Some("{dataset}".into());
        let e = Encoder::new(&c);
        assert_eq!(e.target(&rec("_x", "1", "{}")), "x");
    }

    /// A document with a line break anywhere (past the first SIMD block
    /// too) is put on one line when it is JSON, and refused when not: a
    /// raw newline would split the item in the NDJSON body.
    #[test]
    fn multi_line_documents_are_flattened_or_refused() {
        let e = Encoder::new(&ElasticsearchConfig::new(["http://x:9200"]));
        let item = e
            .encode(
                &rec("d", "1", "{\n  \"a\": \"x\\ny\"\n}"),
                &mut Cache::default(),
            )
            .unwrap();
        assert_eq!(item.to_vec().iter().filter(|&&b| b == b'\n').count(), 2);
        let pad = "p".repeat(100);
        for brk in ["\n", "\r\n", "\r"] {
            let doc = format!("{{\"a\": \"{pad}\",{brk}  \"b\": [1,{brk}2]}}");
            let item = e
                .encode(&rec("d", "x", &doc), &mut Cache::default())
                .unwrap();
            let text = String::from_utf8(item.to_vec()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2, "{text:?}");
            let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
            assert_eq!(v["b"], serde_json::json!([1, 2]));
            assert!(!lines[1].contains('\r'));
            let bad = format!("{{\"a\": \"{pad}\",{brk} oops");
            let err = e
                .encode(&rec("d", "x", &bad), &mut Cache::default())
                .unwrap_err();
            assert!(err.contains("spans several lines"), "{err}");
        }
        // No break: the document is sent as it is.
        let doc = format!("{{\"a\":\"{pad}\"}}");
        let item = e
            .encode(&rec("d", "x", &doc), &mut Cache::default())
            .unwrap();
        assert!(
            String::from_utf8(item.to_vec())
                .unwrap()
                .ends_with(&format!("{doc}\n"))
        );
    }

    #[test]
    fn items_are_two_lines_with_escaped_meta() {
        let e = Encoder::new(&ElasticsearchConfig::new(["http://x:9200"]));
        let item = e
            .encode(
                &rec("mlflow.access", "a\"b", r#"{"k":"v"}"#),
                &mut Cache::default(),
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&item.to_vec()).unwrap(),
            "{\"create\":{\"_index\":\"logs-mlsoc.mlflow.access-default\",\"_id\":\"a\\\"b\"}}\n{\"k\":\"v\"}\n"
        );
        let mut c = ElasticsearchConfig::new(["http://x:9200"]);
        c.id = IdMode::None;
        let item = Encoder::new(&c)
            .encode(&rec("d", "x", "{}"), &mut Cache::default())
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&item.to_vec()).unwrap(),
            "{\"create\":{\"_index\":\"logs-mlsoc.d-default\"}}\n{}\n"
        );
    }

    /// One cache over records of alternating streams and datasets gives
    /// each the action line a fresh cache gives, with data streams and
    /// with an index named after stream and dataset (fails when the
    /// cached index name outlives its dataset or stream).
    #[test]
    fn the_action_line_cache_follows_stream_and_dataset() {
        let mut by_stream = ElasticsearchConfig::new(["http://x:9200"]);
        by_stream.mode = Mode::Index;
        by_stream.index = Some("{stream}-{dataset}".into());
        let encoders = [
            Encoder::new(&ElasticsearchConfig::new(["http://x:9200"])),
            Encoder::new(&by_stream),
        ];
        let mut records = Vec::new();
        for (i, d) in ["a", "a", "b", "a", "a\"q", "b"].iter().enumerate() {
            let mut r = rec(d, &format!("id{i}"), "{}");
            if i == 1 {
                r.stream = Stream::Alerts;
            }
            records.push(r);
        }
        for e in encoders {
            let mut cache = Cache::default();
            for r in &records {
                assert_eq!(
                    e.encode(r, &mut cache).unwrap().to_vec(),
                    e.encode(r, &mut Cache::default()).unwrap().to_vec()
                );
            }
        }
    }
}
