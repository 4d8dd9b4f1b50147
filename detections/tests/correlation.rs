//! Correlation rules and meta filters, from the Sigma correlation rules
//! specification (2.x) and the filters specification: each test cites the
//! section it checks.

use std::path::Path;

use detections::{Engine, Hit, Limits, Loader, Loading};
use schema::{Event, Str};

fn engine(yaml: &str) -> Engine {
    let mut loading = Loading::default();
    Loader::default().load_text(yaml, Path::new("test.yml"), &mut loading);
    assert!(
        loading.errors.is_empty(),
        "{:?}",
        loading
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let (e, errors) = Engine::build(loading);
    assert!(errors.is_empty(), "{errors:?}");
    e
}

fn ev(json: &str) -> Event {
    Event::from_json(&Str::from(json)).unwrap()
}

/// Runs events (JSON lines) and returns, per hit, (rule or correlation
/// title, lines involved).
fn run(e: &Engine, events: &[String]) -> Vec<(String, Vec<u64>)> {
    let mut s = e.session(Limits::default());
    let mut out = Vec::new();
    for (i, j) in events.iter().enumerate() {
        let mut hits = Vec::new();
        s.process(e, &ev(j), i as u64 + 1, &mut hits);
        for h in hits {
            out.push(match h {
                Hit::Rule(r) => (e.rules()[r].rule.title.clone(), vec![i as u64 + 1]),
                Hit::Correlation(m) => (e.correlation(m.correlation).title.clone(), m.lines),
            });
        }
    }
    out
}

fn at(sec: u32, rest: &str) -> String {
    format!(
        r#"{{"@timestamp":"2026-11-30T10:{:02}:{:02}Z",{rest}}}"#,
        sec / 60,
        sec % 60
    )
}

const FAILED_LOGIN: &str = r#"
title: Failed MLflow login
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
name: failed_login
logsource: {product: mlflow}
detection:
  selection:
    http.response.status_code: 401
  condition: selection
level: low
"#;

/// Three failed logins from one address within a minute.
const BRUTE_FORCE: &str = r#"
title: Brute force
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition:
    gte: 3
level: high
"#;

// Correlation specification, "Event Count (event_count)": counts events of
// the referred rules per group in the timespan; `generate` defaults to
// false, so the referred rule does not alert on its own.
#[test]
fn event_count_per_group_in_window() {
    let yaml = format!("{FAILED_LOGIN}---\n{BRUTE_FORCE}");
    let e = engine(&yaml);
    let ip =
        |a: &str| format!(r#""source":{{"ip":"{a}"}},"http":{{"response":{{"status_code":401}}}}"#);
    let events = vec![
        at(0, &ip("10.0.0.1")),
        at(10, &ip("10.0.0.2")),
        at(20, &ip("10.0.0.1")),
        at(100, &ip("10.0.0.1")), // 80 s after the first: the window slid
        at(110, &ip("10.0.0.1")),
        at(115, &ip("10.0.0.1")), // 3 within 60 s: lines 4, 5, 6
        at(116, &ip("10.0.0.2")),
    ];
    let hits = run(&e, &events);
    assert_eq!(hits, vec![("Brute force".to_string(), vec![4, 5, 6])]);
}

// Correlation specification, "Generate": with `generate: true` the referred
// rules are also reported on their own.
#[test]
fn generate_reports_the_referred_rule_too() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Brute force
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {gte: 2}
  generate: true
"#
    );
    let e = engine(&yaml);
    let one = r#""source":{"ip":"10.0.0.1"},"http":{"response":{"status_code":401}}"#;
    let hits = run(&e, &[at(0, one), at(1, one)]);
    let titles: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        titles,
        ["Failed MLflow login", "Failed MLflow login", "Brute force"]
    );
}

// Correlation specification, "Value Count (value_count)": distinct values of
// `field` per group (password spraying: many users from one address).
#[test]
fn value_count_counts_distinct_values() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Password spraying
correlation:
  type: value_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10m
  condition:
    field: user.name
    gte: 3
"#
    );
    let e = engine(&yaml);
    let ev = |u: &str| {
        format!(
            r#""source":{{"ip":"10.0.0.9"}},"user":{{"name":"{u}"}},"http":{{"response":{{"status_code":401}}}}"#
        )
    };
    let hits = run(
        &e,
        &[
            at(0, &ev("alice")),
            at(1, &ev("alice")),
            at(2, &ev("bob")),
            at(3, &ev("bob")),
        ],
    );
    assert!(hits.is_empty(), "two distinct users only: {hits:?}");
    let hits = run(
        &e,
        &[
            at(0, &ev("alice")),
            at(1, &ev("alice")),
            at(2, &ev("bob")),
            at(3, &ev("carol")),
        ],
    );
    assert_eq!(
        hits,
        vec![("Password spraying".to_string(), vec![1, 2, 3, 4])]
    );
}

const RECON: &str = r#"
title: A
name: recon_a
logsource: {product: linux}
detection: {s: {process.name: whoami}, condition: s}
---
title: B
name: recon_b
logsource: {product: linux}
detection: {s: {process.name: id}, condition: s}
---
title: C
name: recon_c
logsource: {product: linux}
detection: {s: {process.name: hostname}, condition: s}
"#;

fn proc(name: &str, user: &str) -> String {
    format!(r#""process":{{"name":"{name}"}},"user":{{"name":"{user}"}}"#)
}

// Correlation specification, "Temporal Proximity (temporal)": all referred
// rules match within the timespan, in any order, with the same group values.
#[test]
fn temporal_any_order_same_group() {
    let yaml = format!(
        "{RECON}---\n{}",
        r#"
title: Recon burst
correlation:
  type: temporal
  rules: [recon_a, recon_b, recon_c]
  group-by: [user.name]
  timespan: 5m
"#
    );
    let e = engine(&yaml);
    let hits = run(
        &e,
        &[
            at(0, &proc("hostname", "eve")),
            at(10, &proc("whoami", "bob")),
            at(20, &proc("whoami", "eve")),
            at(30, &proc("id", "bob")),
            at(40, &proc("id", "eve")),
        ],
    );
    assert_eq!(hits, vec![("Recon burst".to_string(), vec![1, 3, 5])]);
    // Outside the timespan: no match.
    let hits = run(
        &e,
        &[
            at(0, &proc("hostname", "eve")),
            at(200, &proc("whoami", "eve")),
            at(400, &proc("id", "eve")),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
}

// Correlation specification, "Ordered Temporal Proximity (temporal_ordered)":
// like temporal, and the events appear in the order of `rules`.
#[test]
fn temporal_ordered_needs_the_order() {
    let yaml = format!(
        "{RECON}---\n{}",
        r#"
title: Ordered recon
correlation:
  type: temporal_ordered
  rules: [recon_a, recon_b]
  group-by: [user.name]
  timespan: 5m
"#
    );
    let e = engine(&yaml);
    let wrong = run(
        &e,
        &[at(0, &proc("id", "eve")), at(10, &proc("whoami", "eve"))],
    );
    assert!(wrong.is_empty(), "{wrong:?}");
    let right = run(
        &e,
        &[at(0, &proc("whoami", "eve")), at(10, &proc("id", "eve"))],
    );
    assert_eq!(right, vec![("Ordered recon".to_string(), vec![1, 2])]);
}

const DOWNLOAD: &str = r#"
title: Model artifact download
name: artifact_download
logsource: {product: mlflow}
detection:
  s: {mlops.api: artifacts/download}
  condition: s
"#;

fn dl(user: &str, bytes: i64) -> String {
    format!(
        r#""user":{{"name":"{user}"}},"mlops":{{"api":"artifacts/download"}},"http":{{"response":{{"body":{{"bytes":{bytes}}}}}}}"#
    )
}

// Correlation specification 2.1, metric correlations: value_sum and value_avg
// of a numeric field per group.
#[test]
fn value_sum_and_avg() {
    let sum = engine(&format!(
        "{DOWNLOAD}---\n{}",
        r#"
title: Bulk download
correlation:
  type: value_sum
  rules: [artifact_download]
  group-by: [user.name]
  timespan: 1h
  condition: {field: http.response.body.bytes, gt: 1000}
"#
    ));
    let hits = run(
        &sum,
        &[
            at(0, &dl("a", 400)),
            at(1, &dl("b", 900)),
            at(2, &dl("a", 700)),
        ],
    );
    assert_eq!(hits, vec![("Bulk download".to_string(), vec![1, 3])]);
    let avg = engine(&format!(
        "{DOWNLOAD}---\n{}",
        r#"
title: Large average
correlation:
  type: value_avg
  rules: [artifact_download]
  group-by: [user.name]
  timespan: 1h
  condition: {field: http.response.body.bytes, gte: 500}
"#
    ));
    let hits = run(
        &avg,
        &[
            at(0, &dl("a", 100)),
            at(1, &dl("a", 800)),
            at(2, &dl("a", 800)),
        ],
    );
    assert_eq!(hits, vec![("Large average".to_string(), vec![1, 2, 3])]);
}

// Correlation specification 2.1, value_percentile (the specification's test
// example: a value at most 1% of what the group did). This engine reads it as
// the share of the group's events in the window with the current value.
#[test]
fn value_percentile_flags_rare_values() {
    let e = engine(&format!(
        "{DOWNLOAD}---\n{}",
        r#"
title: Rare user for this model
correlation:
  type: value_percentile
  rules: [artifact_download]
  group-by: [mlops.api]
  timespan: 1d
  condition: {field: user.name, lte: 10}
"#
    ));
    let mut events: Vec<String> = (0..19).map(|i| at(i, &dl("ci-bot", 10))).collect();
    events.push(at(30, &dl("mallory", 10)));
    let hits = run(&e, &events);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].1.contains(&20));
}

// Correlation specification, "Field Name Aliases": group-by an alias that
// names a different field per referred rule.
#[test]
fn aliases_join_different_fields() {
    let yaml = r#"
title: Internal error
name: internal_error
logsource: {category: webserver}
detection: {s: {http.response.status_code: 500}, condition: s}
---
title: New connection
name: new_network_connection
logsource: {category: network_connection}
detection: {s: {event.category: network}, condition: s}
---
title: Error then connection back
correlation:
  type: temporal
  rules: [internal_error, new_network_connection]
  group-by: [internal_ip]
  timespan: 10s
  aliases:
    internal_ip:
      internal_error: destination.ip
      new_network_connection: source.ip
"#;
    let e = engine(yaml);
    let err = r#""destination":{"ip":"10.0.0.5"},"http":{"response":{"status_code":500}}"#;
    let conn_same = r#""source":{"ip":"10.0.0.5"},"event":{"category":"network"}"#;
    let conn_other = r#""source":{"ip":"10.0.0.6"},"event":{"category":"network"}"#;
    assert!(run(&e, &[at(0, err), at(1, conn_other)]).is_empty());
    assert_eq!(
        run(&e, &[at(0, err), at(1, conn_same)]),
        vec![("Error then connection back".to_string(), vec![1, 2])]
    );
}

// Correlation specification, "Related rules": a correlation may refer to
// another correlation (chaining): many failed logins, then a success.
#[test]
fn chained_correlations() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Successful login
name: success
logsource: {product: mlflow}
detection: {s: {http.response.status_code: 200}, condition: s}
---
title: Many failures
name: many_failed
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 5m
  condition: {gte: 2}
---
title: Brute force succeeded
correlation:
  type: temporal_ordered
  rules: [many_failed, success]
  group-by: [source.ip]
  timespan: 10m
level: critical
"#
    );
    let e = engine(&yaml);
    let f = r#""source":{"ip":"10.0.0.7"},"http":{"response":{"status_code":401}}"#;
    let ok = r#""source":{"ip":"10.0.0.7"},"http":{"response":{"status_code":200}}"#;
    let hits = run(&e, &[at(0, f), at(1, f), at(2, ok)]);
    let titles: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(titles, ["Brute force succeeded"], "{hits:?}");
    assert_eq!(hits[0].1, vec![1, 2, 3]);
}

// State is bounded: the least recently updated group is evicted at the cap,
// and counted.
#[test]
fn group_state_is_bounded_and_counted() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Brute force
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1h
  condition: {gte: 2}
"#
    );
    let e = engine(&yaml);
    let mut s = e.session(Limits {
        max_groups: 10,
        max_entries: 100,
    });
    let mut hits = Vec::new();
    for i in 0..50u32 {
        let j = at(
            i,
            &format!(
                r#""source":{{"ip":"10.0.1.{i}"}},"http":{{"response":{{"status_code":401}}}}"#
            ),
        );
        s.process(&e, &ev(&j), i as u64 + 1, &mut hits);
    }
    assert!(hits.is_empty());
    assert_eq!(s.groups(), 10);
    assert_eq!(s.stats().groups_evicted, 40);
    // An old group was evicted: its second event starts over.
    let again = at(
        51,
        r#""source":{"ip":"10.0.1.0"},"http":{"response":{"status_code":401}}"#,
    );
    s.process(&e, &ev(&again), 52, &mut hits);
    assert!(hits.is_empty());
    // Groups expire once their newest event leaves the window: an event an
    // hour and a half later finds the table full (one more eviction, after the
    // one for line 52), then
    // the nine others expire.
    let late_fail = r#"{"@timestamp":"2026-11-30T12:00:00Z","source":{"ip":"10.9.9.9"},"http":{"response":{"status_code":401}}}"#;
    s.process(&e, &ev(late_fail), 54, &mut hits);
    assert!(hits.is_empty());
    assert_eq!(s.groups(), 1, "only the new group is left");
    assert_eq!(s.stats().groups_evicted, 42);
    assert_eq!(s.stats().groups_expired, 9);
}

// A file read from its start while another source is live: its events
// are hours behind the newest event time. Its brute force is counted on its
// own times, and its group is not expired between its events because the
// live source's clock moved on.
#[test]
fn a_stream_catching_up_on_old_logs_keeps_its_groups() {
    let yaml = format!("{FAILED_LOGIN}---\n{BRUTE_FORCE}");
    let e = engine(&yaml);
    let fail = |t: &str, ip: &str| {
        format!(
            r#"{{"@timestamp":"2026-11-30T{t}Z","source":{{"ip":"{ip}"}},"http":{{"response":{{"status_code":401}}}}}}"#
        )
    };
    let events = vec![
        fail("12:00:00", "10.7.7.1"), // live
        fail("10:00:00", "10.0.0.1"), // old file
        fail("12:00:02", "10.7.7.2"), // live: two seconds on, a sweep
        fail("10:00:01", "10.0.0.1"),
        fail("12:00:04", "10.7.7.3"), // another sweep
        fail("10:00:02", "10.0.0.1"), // third failure within the minute
    ];
    let hits = run(&e, &events);
    assert_eq!(
        hits,
        vec![("Brute force".to_string(), vec![2, 4, 6])],
        "the old file's brute force is found"
    );
    // Idle groups still expire: a whole timespan of the newest clock later,
    // the live sources' groups and nothing else are gone.
    let mut s = e.session(Limits::default());
    let mut out = Vec::new();
    for (i, j) in events.iter().take(5).enumerate() {
        s.process(&e, &ev(j), i as u64 + 1, &mut out);
    }
    assert_eq!(s.groups(), 4);
    s.process(&e, &ev(&fail("12:01:01", "10.7.7.4")), 6, &mut out);
    // The window starts at 12:00:01: 10.7.7.1 (last updated when the
    // newest time was 12:00:00) expired; 10.0.0.1 (updated at 12:00:02 on
    // that clock, although its events are from 10:00), 10.7.7.2, 10.7.7.3
    // and the new one stay.
    assert_eq!(s.groups(), 4);
    assert_eq!(s.stats().groups_expired, 1);
    assert!(out.is_empty());
}

// Eviction follows recency of update, not of creation: a group updated
// late survives a new group that arrives when the table is full.
#[test]
fn eviction_takes_the_least_recently_updated_group() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Brute force
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1h
  condition: {gte: 3}
"#
    );
    let e = engine(&yaml);
    let mut s = e.session(Limits {
        max_groups: 10,
        max_entries: 100,
    });
    let fail = |ip: u32| {
        format!(r#""source":{{"ip":"10.0.1.{ip}"}},"http":{{"response":{{"status_code":401}}}}"#)
    };
    let mut hits = Vec::new();
    let mut n = 0u32;
    let mut feed = |s: &mut detections::Session, ip: u32, hits: &mut Vec<_>| {
        n += 1;
        s.process(&e, &ev(&at(n, &fail(ip))), n as u64, hits);
    };
    for ip in 0..10 {
        feed(&mut s, ip, &mut hits);
    }
    feed(&mut s, 0, &mut hits); // group 0 is now the most recent
    feed(&mut s, 10, &mut hits); // evicts group 1, the least recently updated
    assert_eq!(s.stats().groups_evicted, 1);
    assert!(hits.is_empty());
    feed(&mut s, 0, &mut hits); // third event of group 0: it survived
    assert_eq!(hits.len(), 1, "{hits:?}");
    hits.clear();
    feed(&mut s, 1, &mut hits);
    feed(&mut s, 1, &mut hits); // group 1 started over: two events only
    assert!(hits.is_empty(), "{hits:?}");
}

// Filters specification: the filter's detection is applied to the rules it
// names as AND NOT.
#[test]
fn filters_exclude_from_the_named_rules_only() {
    let yaml = r#"
title: Model deletion
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
logsource: {product: mlflow}
detection: {s: {mlops.api: registered-models/delete}, condition: s}
---
title: Experiment deletion
id: df0841c0-9846-4e9f-ad8a-7df91571771b
logsource: {product: mlflow}
detection: {s: {mlops.api: experiments/delete}, condition: s}
---
title: Release identities are allowed to delete models
logsource: {product: mlflow}
filter:
  rules:
    - 6f3e2987-db24-4c78-a860-b4f4095a7095
  selection:
    user.name|startswith: 'release-'
  condition: selection
"#;
    let e = engine(yaml);
    let del = |api: &str, user: &str| {
        format!(r#"{{"mlops":{{"api":"{api}"}},"user":{{"name":"{user}"}}}}"#)
    };
    let hits = run(
        &e,
        &[
            del("registered-models/delete", "release-bot"),
            del("registered-models/delete", "mallory"),
            del("experiments/delete", "release-bot"),
        ],
    );
    let got: Vec<(&str, u64)> = hits.iter().map(|h| (h.0.as_str(), h.1[0])).collect();
    assert_eq!(got, [("Model deletion", 2), ("Experiment deletion", 3)]);
}

#[test]
fn unresolvable_references_are_reported() {
    let mut loading = Loading::default();
    Loader::default().load_text(
        r#"
title: Orphan
correlation: {type: event_count, rules: [nothing_here], group-by: [a], timespan: 1h, condition: {gte: 1}}
---
title: Orphan filter
logsource: {product: x}
filter: {rules: [nope], s: {a: b}, condition: s}
---
title: Bad type
correlation: {type: event_sum, rules: [x], timespan: 1h, condition: {gte: 1}}
---
title: Bad span
correlation: {type: event_count, rules: [x], timespan: 1y, condition: {gte: 1}}
---
title: Needs field
correlation: {type: value_count, rules: [x], timespan: 1h, condition: {gte: 1}}
"#,
        Path::new("bad.yml"),
        &mut loading,
    );
    let load_errors: Vec<String> = loading.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(load_errors.len(), 3, "{load_errors:?}");
    assert!(load_errors[0].contains("`type: event_sum` is not a correlation type"));
    assert!(load_errors[1].contains("`timespan: 1y`"));
    assert!(load_errors[2].contains("needs `condition.field`"));
    let (_, errors) = Engine::build(loading);
    let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        msgs.iter().any(|m| m.contains("`nothing_here`")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("`nope`")), "{msgs:?}");
    assert!(msgs[0].starts_with("bad.yml:"));
}

#[test]
fn correlation_cycles_are_refused() {
    let mut loading = Loading::default();
    Loader::default().load_text(
        r#"
title: A
name: a
correlation: {type: temporal, rules: [b], timespan: 1h}
---
title: B
name: b
correlation: {type: temporal, rules: [a], timespan: 1h}
"#,
        Path::new("cycle.yml"),
        &mut loading,
    );
    let (e, errors) = Engine::build(loading);
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("refers to itself")),
        "{errors:?}"
    );
    assert_eq!(e.correlations().count(), 0);
}

// pySigma's extended temporal conditions (Sigma specification repository,
// schema tests `temporal_condition.yml`; SEP "Condition Extension in
// Temporal Correlation Rules"): a boolean expression over the rules
// replaces "all of them".
#[test]
fn temporal_boolean_condition() {
    let yaml = format!(
        "{RECON}---\n{}",
        r#"
title: Recon without hostname
correlation:
  type: temporal
  rules: [recon_a, recon_b, recon_c]
  group-by: [user.name]
  timespan: 5m
  condition: recon_a AND (recon_b or recon_c) and not recon_c
"#
    );
    let e = engine(&yaml);
    // whoami then id: a and b, no c.
    let hits = run(
        &e,
        &[at(0, &proc("whoami", "eve")), at(10, &proc("id", "eve"))],
    );
    assert_eq!(
        hits,
        vec![("Recon without hostname".to_string(), vec![1, 2])]
    );
    // hostname in the window: the `not` holds no more.
    let hits = run(
        &e,
        &[
            at(0, &proc("hostname", "eve")),
            at(10, &proc("whoami", "eve")),
            at(20, &proc("id", "eve")),
        ],
    );
    assert!(hits.is_empty(), "{hits:?}");
    // Unknown names and broken expressions are refused with a reason.
    for (cond, why) in [
        (
            "recon_a and recon_x",
            "`recon_x` is not one of the correlation's rules",
        ),
        ("recon_a and (recon_b", "a `(` is not closed"),
        ("recon_a recon_b", "unexpected `recon_b`"),
        ("not", "ends too early"),
    ] {
        let doc = format!(
            "{RECON}---\ntitle: X\ncorrelation:\n  type: temporal\n  rules: [recon_a, recon_b]\n  group-by: [user.name]\n  timespan: 5m\n  condition: '{cond}'\n"
        );
        let mut loading = Loading::default();
        Loader::default().load_text(&doc, Path::new("t.yml"), &mut loading);
        assert_eq!(loading.errors.len(), 1, "{cond}");
        assert!(
            loading.errors[0].message.contains(why),
            "{cond}: {}",
            loading.errors[0]
        );
    }
}

// The same for temporal_ordered: a rule counts when it matched after the
// rules before it in `rules` that did.
#[test]
fn temporal_ordered_boolean_condition() {
    let yaml = format!(
        "{RECON}---\n{}",
        r#"
title: Ordered a then b or c
correlation:
  type: temporal_ordered
  rules: [recon_a, recon_b, recon_c]
  group-by: [user.name]
  timespan: 5m
  condition: recon_a and (recon_b or recon_c)
"#
    );
    let e = engine(&yaml);
    let wrong = run(
        &e,
        &[
            at(0, &proc("hostname", "eve")),
            at(10, &proc("whoami", "eve")),
        ],
    );
    assert!(wrong.is_empty(), "{wrong:?}");
    let right = run(
        &e,
        &[
            at(0, &proc("whoami", "eve")),
            at(10, &proc("hostname", "eve")),
        ],
    );
    assert_eq!(
        right,
        vec![("Ordered a then b or c".to_string(), vec![1, 2])]
    );
}

// A group made in the place of an evicted one starts empty (its buffers
// are reused), and a group that matched and left the table is not evicted
// again through its old recency entries.
#[test]
fn groups_made_after_an_eviction_start_empty() {
    let yaml = format!(
        "{FAILED_LOGIN}---\n{}",
        r#"
title: Password spraying
correlation:
  type: value_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1h
  condition: {gte: 3, field: user.name}
"#
    );
    let e = engine(&yaml);
    let mut s = e.session(Limits {
        max_groups: 2,
        max_entries: 100,
    });
    let fail = |ip: u32, user: &str| {
        format!(
            r#""source":{{"ip":"10.0.2.{ip}"}},"user":{{"name":"{user}"}},"http":{{"response":{{"status_code":401}}}}"#
        )
    };
    let mut hits = Vec::new();
    let mut n = 0u32;
    let mut feed = |s: &mut detections::Session, ip: u32, user: &str, hits: &mut Vec<_>| {
        n += 1;
        s.process(&e, &ev(&at(n, &fail(ip, user))), n as u64, hits);
    };
    // Group 1 holds two users, group 2 one: no match yet.
    feed(&mut s, 1, "alice", &mut hits);
    feed(&mut s, 1, "bob", &mut hits);
    feed(&mut s, 2, "carol", &mut hits);
    assert!(hits.is_empty());
    // Group 3 evicts group 1 (least recently updated) and reuses its
    // buffers: one user, not three.
    feed(&mut s, 3, "dave", &mut hits);
    assert_eq!(s.stats().groups_evicted, 1);
    assert!(hits.is_empty(), "{hits:?}");
    feed(&mut s, 3, "erin", &mut hits);
    assert!(
        hits.is_empty(),
        "a recycled group kept the evicted one's users: {hits:?}"
    );
    feed(&mut s, 3, "frank", &mut hits);
    assert_eq!(hits.len(), 1, "{hits:?}");
    hits.clear();
    // Group 3 matched and left the table; group 2 is the only one. Two
    // new groups: the first fills the table, the second evicts group 2
    // (group 3's old recency entries are skipped, not counted).
    assert_eq!(s.groups(), 1);
    feed(&mut s, 4, "gina", &mut hits);
    feed(&mut s, 5, "hank", &mut hits);
    assert_eq!(s.stats().groups_evicted, 2);
    assert_eq!(s.groups(), 2);
    // Group 2 was the one evicted: its earlier user no longer counts.
    feed(&mut s, 2, "ivan", &mut hits);
    feed(&mut s, 2, "judy", &mut hits);
    assert!(hits.is_empty(), "{hits:?}");
}

/// Runs events given as (stream, record number, JSON line) and returns the
/// correlation matches as (title, lines); `ends` lists streams to end after
/// the event at that position.
fn run_streams(
    e: &Engine,
    events: &[(u64, u64, &str)],
    ends: &[(usize, u64)],
) -> Vec<(String, Vec<u64>)> {
    let mut s = e.session(Limits::default());
    let mut out = Vec::new();
    for (n, &(stream, record, j)) in events.iter().enumerate() {
        let event = ev(j);
        let mut rule_hits = Vec::new();
        e.eval(&event, &mut |i| rule_hits.push(i));
        let mut hits = Vec::new();
        s.process_hits(e, &event, stream, record, &rule_hits, &mut hits);
        for h in hits {
            if let Hit::Correlation(m) = h {
                out.push((e.correlation(m.correlation).title.clone(), m.lines));
            }
        }
        for &(_, ended) in ends.iter().filter(|(at, _)| *at == n) {
            s.end_stream(ended);
        }
    }
    out
}

fn failed_at(t: &str, ip: &str) -> String {
    format!(
        r#"{{"@timestamp":"2026-11-30T{t}Z","source":{{"ip":"{ip}"}},"http":{{"response":{{"status_code":401}}}}}}"#
    )
}

// Each stream has its own clock: a group fed by one stream matches the
// same way however that stream's events were interleaved with another
// stream's, here a live one two hours ahead. Stream 1 also goes out of
// order: 10.0.0.1 sat idle for more than the minute of its own stream's
// clock (which reached 10:05) and starts again, whether or not a sweep
// ran in between.
#[test]
fn matches_of_one_stream_do_not_depend_on_the_interleaving_of_others() {
    let yaml = format!("{FAILED_LOGIN}---\n{BRUTE_FORCE}");
    let e = engine(&yaml);
    let a: Vec<String> = [
        ("10:00:00", "10.0.0.1"),
        ("10:00:10", "10.0.0.1"),
        ("10:05:00", "10.0.0.2"),
        ("10:00:20", "10.0.0.1"), // older than the clock: 10.0.0.1 expired
        ("10:00:30", "10.0.0.1"),
        ("10:05:10", "10.0.0.2"),
        ("10:05:20", "10.0.0.2"), // third within the minute: a match
    ]
    .iter()
    .map(|(t, ip)| failed_at(t, ip))
    .collect();
    let b: Vec<String> = [
        ("12:00:00", "10.9.0.1"),
        ("12:00:02", "10.9.0.2"),
        ("12:00:04", "10.9.0.3"),
    ]
    .iter()
    .map(|(t, ip)| failed_at(t, ip))
    .collect();
    let expected = vec![("Brute force".to_string(), vec![3, 6, 7])];
    // Every interleaving of the two streams that keeps each one's order:
    // the positions of stream 2's three events among the ten.
    let mut runs = 0;
    for i in 0..10 {
        for j in i + 1..10 {
            for k in j + 1..10 {
                let (mut ai, mut bi) = (0, 0);
                let mut events = Vec::new();
                for pos in 0..10 {
                    if pos == i || pos == j || pos == k {
                        events.push((2, 101 + bi as u64, b[bi].as_str()));
                        bi += 1;
                    } else {
                        events.push((1, 1 + ai as u64, a[ai].as_str()));
                        ai += 1;
                    }
                }
                assert_eq!(
                    run_streams(&e, &events, &[]),
                    expected,
                    "stream 2 at positions {i}, {j}, {k}"
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 120);
}

// A stream that ends (a rotated file read to its end) leaves its groups:
// another stream can go on feeding them, and their idleness is measured on
// the newest clock of all streams from then on.
#[test]
fn groups_outlive_the_stream_that_ended() {
    let yaml = format!("{FAILED_LOGIN}---\n{BRUTE_FORCE}");
    let e = engine(&yaml);
    let old = [
        failed_at("10:00:00", "10.0.0.1"),
        failed_at("10:00:10", "10.0.0.1"),
    ];
    let continued = failed_at("10:00:20", "10.0.0.1");
    let events = [
        (1, 1, old[0].as_str()),
        (1, 2, old[1].as_str()),
        (2, 3, continued.as_str()),
    ];
    assert_eq!(
        run_streams(&e, &events, &[(1, 1)]),
        vec![("Brute force".to_string(), vec![1, 2, 3])]
    );
    // When the newest clock is two minutes on (another address's event),
    // the group has expired, although the failure itself is within the
    // minute of the old ones.
    let other = failed_at("10:02:10", "10.0.0.9");
    let events = [
        (1, 1, old[0].as_str()),
        (1, 2, old[1].as_str()),
        (2, 3, other.as_str()),
        (2, 4, continued.as_str()),
    ];
    assert_eq!(run_streams(&e, &events, &[(1, 1)]), vec![]);
    // While the old stream is open, its own clock (10:00:10) decides.
    assert_eq!(
        run_streams(&e, &events, &[]),
        vec![("Brute force".to_string(), vec![1, 2, 4])]
    );
}
