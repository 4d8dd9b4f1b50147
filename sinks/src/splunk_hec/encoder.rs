//! The wire format: one HEC event envelope per record, concatenated (not a
//! JSON array), as "Format events for HTTP Event Collector" describes:
//!
//! ```json
//! {"time":1433188255.500000,"host":"h","source":"s","sourcetype":"mlsoc:mlflow.access","index":"i","event":{...},"fields":{"event.dataset":"mlflow.access"}}
//! ```
//!
//! `time` is epoch seconds with a fraction (microseconds here: "the default
//! time format is epoch time format, in the format <sec>.<ms>"), and
//! `fields` are indexed fields whose values are strings or arrays of
//! strings.

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;

use super::config::SplunkHecConfig;
use crate::record::{Record, Stream};

/// Builds envelopes for one sink's configuration.
#[derive(Debug, Clone)]
pub struct Encoder {
    index: Option<String>,
    sourcetype: Option<String>,
    source: Option<String>,
    host: Option<String>,
    fields: Vec<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    event: &'a RawValue,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Encoder {
    pub fn new(config: &SplunkHecConfig) -> Encoder {
        Encoder {
            index: config.index.clone(),
            sourcetype: config.sourcetype.clone(),
            source: config.source.clone(),
            host: config.host.clone(),
            fields: config.fields.clone(),
        }
    }

    /// The sourcetype of `record`.
    pub fn sourcetype(&self, record: &Record) -> String {
        match &self.sourcetype {
            Some(t) if t.contains('{') => t
                .replace("{dataset}", &record.dataset)
                .replace("{stream}", record.stream.as_str()),
            Some(t) => t.clone(),
            None => match record.stream {
                Stream::Events => format!("mlsoc:{}", record.dataset),
                Stream::Alerts => "mlsoc:alert".to_owned(),
                Stream::DeadLetters => "mlsoc:dead_letter".to_owned(),
            },
        }
    }

    /// The envelope of `record`, or why it cannot be sent (its document is
    /// not a JSON object: HEC would refuse it with "Invalid data format").
    pub fn encode(&self, record: &Record) -> Result<Bytes, String> {
        let text =
            std::str::from_utf8(&record.doc).map_err(|e| format!("document is not UTF-8: {e}"))?;
        let event: &RawValue =
            serde_json::from_str(text).map_err(|e| format!("document is not JSON: {e}"))?;
        if !event.get().starts_with('{') {
            return Err("document is not a JSON object".into());
        }
        let fields = if self.fields.is_empty() {
            serde_json::Map::new()
        } else {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("document is not JSON: {e}"))?;
            indexed_fields(&doc, &self.fields)
        };
        let time_text = record.time_ns.map(epoch_seconds);
        let time = match &time_text {
            Some(t) => {
                Some(serde_json::from_str::<&RawValue>(t).map_err(|e| format!("time {t}: {e}"))?)
            }
            None => None,
        };
        let sourcetype = self.sourcetype(record);
        let env = Envelope {
            time,
            host: self.host.as_deref().or(record.host.as_deref()),
            source: self.source.as_deref().unwrap_or(&record.source),
            sourcetype: &sourcetype,
            index: self.index.as_deref(),
            event,
            fields,
        };
        serde_json::to_vec(&env)
            .map(Bytes::from)
            .map_err(|e| format!("cannot encode: {e}"))
    }
}

/// `time_ns` as epoch seconds with six decimals (`1433188255.500000`).
pub fn epoch_seconds(time_ns: i64) -> String {
    let secs = time_ns.div_euclid(1_000_000_000);
    let micros = time_ns.rem_euclid(1_000_000_000) / 1000;
    format!("{secs}.{micros:06}")
}

/// The configured `paths` found in `doc`, nested (`{"event":{"dataset":..}}`)
/// or flat (`{"event.dataset":..}`), as HEC indexed fields: strings, or
/// arrays of strings. Objects and nulls are left out.
pub fn indexed_fields(
    doc: &serde_json::Value,
    paths: &[String],
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for path in paths {
        let found = doc.get(path.as_str()).or_else(|| {
            path.split('.')
                .try_fold(doc, |v, part| v.as_object()?.get(part))
        });
        let Some(value) = found else { continue };
        let value = match value {
            serde_json::Value::Array(items) => {
                let items: Vec<serde_json::Value> = items
                    .iter()
                    .filter_map(scalar_text)
                    .map(serde_json::Value::String)
                    .collect();
                if items.is_empty() {
                    continue;
                }
                serde_json::Value::Array(items)
            }
            v => match scalar_text(v) {
                Some(s) => serde_json::Value::String(s),
                None => continue,
            },
        };
        out.insert(path.clone(), value);
    }
    out
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(stream: Stream, doc: &str) -> Record {
        Record {
            stream,
            doc: Bytes::from(doc.to_owned()),
            dataset: "mlflow.access".into(),
            time_ns: Some(1_433_188_255_500_123_456),
            host: Some("ml-1".into()),
            source: "/var/log/mlflow.log".into(),
            id: "id-1".into(),
        }
    }

    #[test]
    fn envelope_carries_metadata_and_the_document() {
        let mut c = SplunkHecConfig::new("http://x", "t");
        c.index = Some("mlsoc".into());
        c.fields = vec![
            "event.dataset".into(),
            "mlops.component".into(),
            "tags".into(),
            "http.response.status_code".into(),
            "missing.field".into(),
            "flat.key".into(),
        ];
        let enc = Encoder::new(&c);
        let doc = r#"{"event":{"dataset":"mlflow.access"},"mlops":{"component":"mlflow"},"tags":["a",1,{"x":1}],"http":{"response":{"status_code":404}},"flat.key":"v"}"#;
        let out = enc.encode(&record(Stream::Events, doc)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "time": 1433188255.500123,
                "host": "ml-1",
                "source": "/var/log/mlflow.log",
                "sourcetype": "mlsoc:mlflow.access",
                "index": "mlsoc",
                "event": serde_json::from_str::<serde_json::Value>(doc).unwrap(),
                "fields": {
                    "event.dataset": "mlflow.access",
                    "mlops.component": "mlflow",
                    "tags": ["a", "1"],
                    "http.response.status_code": "404",
                    "flat.key": "v",
                }
            })
        );
        // The time is written with its microseconds, not as a rounded float.
        assert!(
            std::str::from_utf8(&out)
                .unwrap()
                .starts_with(r#"{"time":1433188255.500123,"#)
        );
    }

    #[test]
    fn sourcetypes_and_overrides() {
        let enc = Encoder::new(&SplunkHecConfig::new("http://x", "t"));
        assert_eq!(enc.sourcetype(&record(Stream::Alerts, "{}")), "mlsoc:alert");
        assert_eq!(
            enc.sourcetype(&record(Stream::DeadLetters, "{}")),
            "mlsoc:dead_letter"
        );
        let mut c = SplunkHecConfig::new("http://x", "t");
        c.sourcetype = Some("ml:{stream}:{dataset}".into());
        c.host = Some("fixed".into());
        c.source = Some("mlsoc".into());
        let enc = Encoder::new(&c);
        let mut r = record(Stream::Events, "{}");
        r.time_ns = None;
        r.host = None;
        let v: serde_json::Value = serde_json::from_slice(&enc.encode(&r).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"host":"fixed","source":"mlsoc","sourcetype":"ml:events:mlflow.access","event":{}})
        );
    }

    #[test]
    fn refuses_documents_that_are_not_objects() {
        let enc = Encoder::new(&SplunkHecConfig::new("http://x", "t"));
        for doc in ["[1]", "\"s\"", "{\"a\":", "", "nul"] {
            assert!(enc.encode(&record(Stream::Events, doc)).is_err(), "{doc}");
        }
        let mut r = record(Stream::Events, "{}");
        r.doc = Bytes::from_static(b"{\"a\":\"\xff\"}");
        assert!(enc.encode(&r).is_err());
    }

    #[test]
    fn epoch_seconds_keeps_microseconds() {
        assert_eq!(epoch_seconds(0), "0.000000");
        assert_eq!(
            epoch_seconds(1_500_000_000_000_001_999),
            "1500000000.000001"
        );
        assert_eq!(epoch_seconds(-1), "-1.999999");
    }
}
