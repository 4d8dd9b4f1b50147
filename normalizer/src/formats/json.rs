//! Generic JSON lines and ECS JSON. Definitions in `json.toml`.

use std::sync::LazyLock;

use schema::{Str, Value, f};

use crate::steps::{NamedStep, normalize_level};
use crate::timestamp::Layout;

const TIME_KEYS: &[&str] = &[
    "@timestamp",
    "timestamp",
    "time",
    "ts",
    "date",
    "datetime",
    "eventTime",
    "event_time",
    "asctime",
    "t",
];
const MESSAGE_KEYS: &[&str] = &["message", "msg", "log", "text"];
const LEVEL_KEYS: &[&str] = &[
    "level",
    "severity",
    "levelname",
    "lvl",
    "loglevel",
    "log.level",
];
const LOGGER_KEYS: &[&str] = &["logger", "logger_name", "log.logger"];
const ERROR_KEYS: &[&str] = &["error", "err", "exception"];

static LAYOUTS: LazyLock<Vec<Layout>> = LazyLock::new(|| {
    [
        "rfc3339",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S,%3f",
        "%Y/%m/%d %H:%M:%S%.f",
        "%d/%b/%Y:%H:%M:%S %z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ]
    .iter()
    .map(|l| Layout::compile(l).expect("valid layout"))
    .collect()
});
static UNIX: LazyLock<Layout> = LazyLock::new(|| Layout::compile("unix_auto").expect("valid"));

fn find<'v>(doc: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    keys.iter().find_map(|k| doc.at(k))
}

#[cfg(test)]
#[test]
fn declared_paths_cover_the_keys() {
    for k in TIME_KEYS
        .iter()
        .chain(MESSAGE_KEYS)
        .chain(LEVEL_KEYS)
        .chain(LOGGER_KEYS)
        .chain(ERROR_KEYS)
    {
        assert!(
            JSON_COMMON.paths.contains(&format!("json.{k}").as_str()),
            "{k}"
        );
    }
}

pub static JSON_COMMON: NamedStep = NamedStep {
    name: "json_common",
    doc: "Generic JSON: @timestamp, message, log.level, log.logger and error.message from common keys of the document kept under json.*",
    paths: &[
        "json.@timestamp",
        "json.timestamp",
        "json.time",
        "json.ts",
        "json.date",
        "json.datetime",
        "json.eventTime",
        "json.event_time",
        "json.asctime",
        "json.t",
        "json.message",
        "json.msg",
        "json.log",
        "json.text",
        "json.level",
        "json.severity",
        "json.levelname",
        "json.lvl",
        "json.loglevel",
        "json.log.level",
        "json.logger",
        "json.logger_name",
        "json.log.logger",
        "json.error",
        "json.err",
        "json.exception",
    ],
    find: None,
    run: |ctx| {
        let Some(doc) = ctx.event.get("json").cloned() else {
            return Ok(());
        };
        if let Some(t) = find(&doc, TIME_KEYS) {
            let parsed = match t {
                Value::Str(s) => LAYOUTS
                    .iter()
                    .find_map(|l| l.parse(s, ctx.time))
                    .or_else(|| UNIX.parse(s, ctx.time)),
                Value::Int(i) => UNIX.parse(&i.to_string(), ctx.time),
                // The shortest decimal form of the float is what the producer wrote.
                Value::Float(x) if x.is_finite() && *x >= 0.0 => {
                    UNIX.parse(&x.to_string(), ctx.time)
                }
                _ => None,
            };
            if let Some(ts) = parsed {
                ctx.event.set(f::AT_TIMESTAMP, ts);
            }
        }
        if let Some(Value::Str(m)) = find(&doc, MESSAGE_KEYS) {
            ctx.event.set(f::MESSAGE, m.clone());
        }
        if let Some(Value::Str(l)) = find(&doc, LEVEL_KEYS) {
            ctx.event.set(f::LOG_LEVEL, normalize_level(l));
        }
        if let Some(Value::Str(l)) = find(&doc, LOGGER_KEYS) {
            ctx.event.set(f::LOG_LOGGER, l.clone());
        }
        if let Some(Value::Str(e)) = find(&doc, ERROR_KEYS) {
            ctx.event.set(f::ERROR_MESSAGE, e.clone());
        }
        let _ = Str::from_static("");
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, parse_all, text};

    #[test]
    fn generic_json() {
        let e = parse("json", r#"{"ts": 1795999170.5, "level": "WARNING", "msg": "slow inference", "model": {"name": "resnet50"}, "latency_ms": 912}"#).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:39:30.500Z");
        assert_eq!(text(&e, "log.level"), "warning");
        assert_eq!(text(&e, "message"), "slow inference");
        assert_eq!(text(&e, "json.model.name"), "resnet50");
        assert_eq!(text(&e, "json.latency_ms"), "912");
        let e = parse(
            "json",
            r#"{"time": "2026-11-30 10:00:00,250", "message": "x"}"#,
        )
        .unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T10:00:00.250Z");
        let all = parse_all("json", r#"[{"a":1},{"a":2}]"#).unwrap();
        assert_eq!(all.len(), 2);
        for bad in [
            r#"{"a": 1"#,
            r#"{"a": tru}"#,
            "[1, 2",
            "not json",
            r#"{"a":1} trailing"#,
        ] {
            assert!(parse("json", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ecs_json_is_kept_flat() {
        let e = parse("ecs", r#"{"@timestamp":"2026-11-30T10:50:00.000Z","log.level":"info","message":"model loaded","ecs.version":"1.6.0","service":{"name":"model-gateway"},"custom":{"k":"v"}}"#).unwrap();
        assert_eq!(text(&e, "service.name"), "model-gateway");
        assert_eq!(text(&e, "custom.k"), "v");
        assert_eq!(text(&e, "event.dataset"), "generic.ecs");
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T10:50:00Z");
    }
}
