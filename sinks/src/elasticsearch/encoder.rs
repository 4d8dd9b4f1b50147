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
    pub(crate) fn encode(&self, r: &Record) -> Result<Bytes, String> {
        let target = self.target(r);
        let doc: std::borrow::Cow<'_, [u8]> = if memchr_newline(&r.doc) {
            // mlsoc serializes documents compactly, so this is rare: a
            // pretty-printed document from elsewhere. Newlines inside JSON
            // strings are always escaped, so re-serializing puts it on one line.
            match serde_json::from_slice::<serde_json::Value>(&r.doc) {
                Ok(v) => {
                    std::borrow::Cow::Owned(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
                }
                Err(e) => {
                    return Err(format!(
                        "document is not valid JSON and spans several lines, so it cannot be sent in a _bulk body: {e}"
                    ));
                }
            }
        } else {
            std::borrow::Cow::Borrowed(&r.doc[..])
        };
        let mut buf = BytesMut::with_capacity(doc.len() + target.len() + r.id.len() + 40);
        buf.put_slice(b"{\"");
        buf.put_slice(self.action.as_str().as_bytes());
        buf.put_slice(b"\":{\"_index\":");
        put_json_str(&mut buf, &target);
        if self.id == IdMode::Record && !r.id.is_empty() {
            buf.put_slice(b",\"_id\":");
            put_json_str(&mut buf, &r.id);
        }
        buf.put_slice(b"}}\n");
        buf.put_slice(&doc);
        buf.put_u8(b'\n');
        Ok(buf.freeze())
    }
}

/// A whole `_bulk` body from encoded items.
pub(crate) fn body<'a>(items: impl Iterator<Item = &'a Bytes>, len_hint: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(len_hint);
    for i in items {
        buf.put_slice(i);
    }
    buf.freeze()
}

fn put_json_str(buf: &mut BytesMut, s: &str) {
    let v = serde_json::to_vec(s).expect("a string always serializes");
    buf.put_slice(&v);
}

fn memchr_newline(b: &[u8]) -> bool {
    b.iter().any(|&c| c == b'\n' || c == b'\r')
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

    #[test]
    fn items_are_two_lines_with_escaped_meta() {
        let e = Encoder::new(&ElasticsearchConfig::new(["http://x:9200"]));
        let item = e
            .encode(&rec("mlflow.access", "a\"b", r#"{"k":"v"}"#))
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&item).unwrap(),
            "{\"create\":{\"_index\":\"logs-mlsoc.mlflow.access-default\",\"_id\":\"a\\\"b\"}}\n{\"k\":\"v\"}\n"
        );
        let mut c = ElasticsearchConfig::new(["http://x:9200"]);
        c.id = IdMode::None;
        let item = Encoder::new(&c).encode(&rec("d", "x", "{}")).unwrap();
        assert_eq!(
            std::str::from_utf8(&item).unwrap(),
            "{\"create\":{\"_index\":\"logs-mlsoc.d-default\"}}\n{}\n"
        );
    }

    #[test]
    fn multi_line_documents_are_flattened_or_refused() {
        let e = Encoder::new(&ElasticsearchConfig::new(["http://x:9200"]));
        let item = e
            .encode(&rec("d", "1", "{\n  \"a\": \"x\\ny\"\n}"))
            .unwrap();
        assert_eq!(item.iter().filter(|&&b| b == b'\n').count(), 2);
        assert!(e.encode(&rec("d", "1", "{\"a\":\n")).is_err());
    }
}
