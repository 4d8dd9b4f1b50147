//! The prefilter never drops a match: over the whole SigmaHQ corpus and
//! events built from every rule's own values (plus the normalizer's golden
//! outputs), the rules found through the prefilter are exactly the rules
//! found by evaluating every rule.

use std::path::PathBuf;

use detections::matcher::{ItemKind, Search, ValueMatcher};
use detections::pattern::{StrMatch, Tok};
use detections::{Engine, Loader};
use schema::{Event, Str, Value};

fn corpus() -> Vec<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma/sigmahq");
    assert!(p.is_dir(), "SigmaHQ corpus expected at {}", p.display());
    vec![p]
}

/// A text the matcher accepts (case-folded patterns are matched
/// case-insensitively).
fn sample(m: &ValueMatcher) -> Option<Value> {
    Some(match m {
        ValueMatcher::Str(s) => Value::from(match &s.m {
            StrMatch::Exact(x) => x.clone(),
            StrMatch::Prefix(x) => format!("{x}tail"),
            StrMatch::Suffix(x) => format!("head{x}"),
            StrMatch::Contains(x) => format!("head{x}tail"),
            StrMatch::Any => "anything".to_string(),
            StrMatch::Glob(toks) => toks
                .iter()
                .map(|t| match t {
                    Tok::Lit(l) | Tok::Placeholder(l) => l.as_str(),
                    Tok::Many => "",
                    Tok::One => "a",
                })
                .collect(),
        }),
        ValueMatcher::Num(_, x) => Value::Float(*x),
        ValueMatcher::Bool(b) => Value::Bool(*b),
        _ => return None,
    })
}

fn events_for(s: &Search, out: &mut Vec<Event>) {
    match s {
        Search::And(items) => {
            let mut e = Event::new();
            for it in items {
                if let ItemKind::Values(_, ms) = &it.kind
                    && let Some(v) = ms.iter().find_map(sample)
                {
                    e.insert(it.field.name.as_str(), v);
                }
            }
            out.push(e);
        }
        Search::Or(list) | Search::All(list) => {
            list.iter().take(3).for_each(|s| events_for(s, out))
        }
        Search::Keywords(k) => {
            if let Some(v) = k.values.iter().find_map(sample) {
                let mut e = Event::new();
                e.insert("message", v);
                out.push(e);
            }
        }
    }
}

/// Asserts that the prefiltered evaluation finds, on every event, exactly
/// the rules a full evaluation finds; returns the number of matches.
fn same_matches(engine: &Engine, events: &[Event]) -> usize {
    let mut scratch = detections::prefilter::Scratch::default();
    let mut hits = 0usize;
    for e in events {
        let mut fast = Vec::new();
        engine.eval_with(e, &mut scratch, &mut |i| fast.push(i));
        let mut all = Vec::new();
        engine.eval_all(e, &mut |i| all.push(i));
        assert_eq!(fast, all, "event {}", e.to_json_string());
        hits += all.len();
    }
    hits
}

#[test]
fn prefiltered_matches_equal_full_evaluation() {
    let loading = Loader::default().load_paths(&corpus());
    let (engine, errors) = Engine::build(loading);
    assert!(errors.is_empty());
    let (always, total) = engine.prefilter_counts();
    println!("prefilter: {always} of {total} rules evaluated on every event");
    assert!(
        always * 5 < total,
        "most rules must be indexed: {always} of {total}"
    );

    let mut events = Vec::new();
    for l in engine.rules() {
        for s in &l.rule.detection.searches {
            events_for(s, &mut events);
        }
    }
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/golden");
    for f in std::fs::read_dir(&golden).unwrap().filter_map(Result::ok) {
        if f.path().to_string_lossy().ends_with(".expected.ndjson") {
            for line in std::fs::read_to_string(f.path()).unwrap().lines() {
                if let Ok(e) = Event::from_json(&Str::from(line)) {
                    events.push(e);
                }
            }
        }
    }
    let hits = same_matches(&engine, &events);
    let checked = events.len();
    println!("{checked} events, {hits} matches, identical with and without the prefilter");
    assert!(
        hits > total / 2,
        "the generated events must exercise most rules: {hits} matches"
    );
}

/// Every line of the repository's samples (real captures, attack
/// scenarios, hand-written vendor examples), normalized.
fn sample_events() -> Vec<Event> {
    sample_events_with(normalizer::Registry::builtin())
}

/// [`sample_events`] normalized with the formats of `reg`.
fn sample_events_with(reg: normalizer::Registry) -> Vec<Event> {
    use normalizer::{Normalizer, Options, Output};
    use schema::{RawRecord, Source, Timestamp};
    fn walk(d: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if !p.to_string_lossy().ends_with(".gz") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples"),
        &mut files,
    );
    files.sort();
    let norm = Normalizer::new(reg, Options::default());
    let mut events = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read(&f) else {
            continue;
        };
        let source = Source::file(f.display().to_string());
        let mut stream = norm.stream(source.clone(), Some(Timestamp(1_796_000_000_000_000_000)));
        let mut out = Vec::new();
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            stream.push(
                RawRecord {
                    bytes: bytes::Bytes::copy_from_slice(line),
                    source: source.clone(),
                    offset: 0,
                    line: n as u64 + 1,
                    received: Timestamp(1_796_000_000_000_000_000),
                    overflow_len: None,
                },
                &mut out,
            );
        }
        stream.finish(&mut out);
        events.extend(out.into_iter().filter_map(|o| match o {
            Output::Event(e) => Some(e),
            Output::Dead(_) => None,
        }));
    }
    events
}

/// The same for mlsoc's own rule pack as `mlsoc hunt` runs it (pipelines,
/// routing, default placeholders) over every sample line: its regex
/// keyword rules (secrets in any log line) are indexed by the literals
/// inside their regexes, and still find every match.
#[test]
fn prefiltered_pack_matches_equal_full_evaluation() {
    let loader = Loader::new(detections::pack::default_placeholders().unwrap())
        .with_pipelines(detections::Pipeline::builtin());
    let (engine, errors) = Engine::build(detections::pack::load(&loader));
    assert!(errors.is_empty(), "{errors:?}");
    let (always, total) = engine.prefilter_counts();
    assert_eq!(
        always, 0,
        "every rule of the pack has a trigger ({total} rules)"
    );
    let events = sample_events();
    let hits = same_matches(&engine, &events);
    println!(
        "{} events, {hits} matches, identical with and without the prefilter",
        events.len()
    );
    assert!(
        events.len() > 5000 && hits > 100,
        "{} events, {hits} matches",
        events.len()
    );
}

/// The whole SigmaHQ corpus as `mlsoc hunt --rules` runs it (built-in
/// pipelines, routing, the pack) over every sample line: each log source
/// gets a prefilter of its own rules (a view), and finds what a full
/// evaluation finds.
#[test]
fn routed_views_match_full_evaluation() {
    let loader = Loader::new(detections::pack::default_placeholders().unwrap())
        .with_pipelines(detections::Pipeline::builtin());
    let mut loading = loader.load_paths(&corpus());
    let pack = detections::pack::load(&loader);
    loading.rules.extend(pack.rules);
    loading.correlations.extend(pack.correlations);
    let (engine, _) = Engine::build(loading);
    let mut events = sample_events();
    // More log sources than the engine gives views (64): the rest take the
    // prefilter of every rule with a route test per rule.
    let base: Vec<Event> = events.iter().take(400).cloned().collect();
    for (i, e) in base.into_iter().enumerate() {
        let mut e = e;
        e.insert(
            "event.dataset",
            Value::from(format!("custom.source{}", i % 100)),
        );
        events.push(e);
    }
    let hits = same_matches(&engine, &events);
    println!("{} events, {hits} matches", events.len());
    assert!(hits > 100, "{hits} matches");
}

/// Threads that meet a new log source at the same time: one builds its
/// view, the others evaluate with the prefilter of every rule meanwhile,
/// and all find what a full evaluation finds.
#[test]
fn threads_meeting_a_new_log_source_agree_with_full_evaluation() {
    let loader = Loader::new(detections::pack::default_placeholders().unwrap())
        .with_pipelines(detections::Pipeline::builtin());
    let mut loading = loader.load_paths(&corpus());
    loading.rules.extend(detections::pack::load(&loader).rules);
    let (engine, _) = Engine::build(loading);
    let events = sample_events();
    // The reference, without views: the engine's view cache stays empty
    // until the threads start.
    let want: Vec<Vec<usize>> = events
        .iter()
        .map(|e| {
            let mut all = Vec::new();
            engine.eval_all(e, &mut |i| all.push(i));
            all
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (engine, events, want) = (&engine, &events, &want);
            s.spawn(move || {
                let mut scratch = detections::prefilter::Scratch::default();
                // Each thread starts at another place of the samples.
                let n = events.len();
                for k in 0..n {
                    let i = (k + t * n / 4) % n;
                    let mut got = Vec::new();
                    engine.eval_with(&events[i], &mut scratch, &mut |r| got.push(r));
                    assert_eq!(got, want[i], "thread {t}, event {i}");
                }
            });
        }
    });
}

/// Kept documents (CloudTrail records, Kubernetes audit events) prepared
/// for the paths the rules read (`Registry::read_also`, as `mlsoc run`
/// and `hunt` do) give every rule, SigmaHQ's and the pack's, the same
/// matches as documents parsed into trees, over every sample line; and
/// fewer of them are parsed whole.
#[test]
fn collected_paths_match_like_parsed_documents() {
    let loader = Loader::new(detections::pack::default_placeholders().unwrap())
        .with_pipelines(detections::Pipeline::builtin());
    let mut loading = loader.load_paths(&corpus());
    let pack = detections::pack::load(&loader);
    loading.rules.extend(pack.rules);
    let (engine, _) = Engine::build(loading);
    let paths = engine.field_paths();
    let mut reg = normalizer::Registry::builtin();
    let taken = reg.read_also(&paths);
    assert!(taken > 10, "paths below kept documents: {taken}");
    let plain = sample_events();
    let late = sample_events_with(reg);
    assert_eq!(plain.len(), late.len());
    let mut scratch = detections::prefilter::Scratch::default();
    let mut hits = 0;
    let parsed = |e: &Event| {
        e.iter()
            .filter(|(_, v)| matches!(v, Value::Json(d) if d.is_parsed()))
            .count()
    };
    let (mut parsed_plain, mut parsed_late, mut kept) = (0, 0, 0);
    for (a, b) in plain.iter().zip(&late) {
        let mut want = Vec::new();
        engine.eval_with(a, &mut scratch, &mut |i| want.push(i));
        let mut got = Vec::new();
        engine.eval_with(b, &mut scratch, &mut |i| got.push(i));
        assert_eq!(got, want, "event {}", a.to_json_string());
        hits += want.len();
        kept += b
            .iter()
            .filter(|(_, v)| matches!(v, Value::Json(_)))
            .count();
        parsed_plain += parsed(a);
        parsed_late += parsed(b);
    }
    println!(
        "{} events, {hits} matches; of {kept} kept documents, {parsed_plain} parsed whole before, {parsed_late} now",
        plain.len()
    );
    assert!(hits > 100, "{hits} matches");
    assert!(
        parsed_late * 4 < parsed_plain,
        "documents parsed whole: {parsed_late} with the paths collected, {parsed_plain} without"
    );
}

/// Rules that hold by negation are triggered by the presence of one of
/// their fields when they do not hold on an event without fields: an
/// event lacking all of them skips them, and still gets the same result
/// as a full evaluation whichever of the fields (filters' fields and
/// `fieldref` targets included, nested or flat) it has.
#[test]
fn negated_rules_wait_for_one_of_their_fields() {
    let rules = r#"
title: not a selection, with a null filter
id: 00000000-0000-0000-0000-000000000001
logsource: {product: test}
detection:
    selection:
        Image|endswith: '.exe'
    filter_null:
        Image: null
    condition: not selection and not filter_null
---
title: negated fieldref
id: 00000000-0000-0000-0000-000000000002
logsource: {product: test}
detection:
    same:
        user.name|fieldref: source.user.name
    condition: not same
---
title: held by an absent field
id: 00000000-0000-0000-0000-000000000003
logsource: {product: test}
detection:
    selection:
        id.orig_h|cidr: '10.0.0.0/8'
    condition: not selection
---
title: negated keywords
id: 00000000-0000-0000-0000-000000000004
logsource: {product: test}
detection:
    keywords:
        - 'needle'
    selection:
        Image|contains: 'x'
    condition: not keywords and not selection
---
title: exists false and null, negated
id: 00000000-0000-0000-0000-000000000005
logsource: {product: test}
detection:
    exists:
        Image|exists: false
    other:
        ParentImage: null
    condition: not exists and not other
---
title: held on the empty event, but for a filter
id: 00000000-0000-0000-0000-000000000006
logsource: {product: test}
detection:
    selection:
        Image|endswith: '.exe'
    condition: not selection
---
title: only for admin
logsource: {product: test}
filter:
    rules:
        - 00000000-0000-0000-0000-000000000006
    selection:
        User: admin
    condition: not selection
"#;
    let mut loading = detections::Loading::default();
    Loader::default().load_text(rules, std::path::Path::new("negated.yml"), &mut loading);
    assert!(loading.errors.is_empty(), "{:?}", loading.errors);
    let (engine, errors) = Engine::build(loading);
    assert!(errors.is_empty(), "{errors:?}");
    let (always, total) = engine.prefilter_counts();
    // The second holds on the empty event (`not same`: no values to
    // compare), the third too (no address in the range), the fourth reads
    // the event's text: evaluated on every event. The first, fifth and
    // sixth (whose filter's field counts) wait for their fields.
    assert_eq!((always, total), (3, 6));

    let json = |s: &str| Event::from_json(&Str::from(s)).unwrap();
    let events = [
        json(r#"{"message":"nothing here"}"#),
        json(r#"{"message":"needle"}"#),
        json(r#"{"Image":"C:\\a.exe"}"#),
        json(r#"{"Image":"C:\\a.dll"}"#),
        json(r#"{"Image":null}"#),
        json(r#"{"ParentImage":"p"}"#),
        json(r#"{"user":{"name":"a"},"source":{"user":{"name":"a"}}}"#),
        json(r#"{"user":{"name":"a"},"source":{"user":{"name":"b"}}}"#),
        json(r#"{"source":{"user":{"name":"b"}}}"#),
        json(r#"{"id":{"orig_h":"10.1.2.3"}}"#),
        json(r#"{"id.orig_h":"10.1.2.3"}"#),
        json(r#"{"id":{"orig_h":"192.0.2.1"}}"#),
        json(r#"{"Image":"i","ParentImage":"p"}"#),
        json(r#"{"User":"admin"}"#),
    ];
    let hits = same_matches(&engine, &events);
    // Checked by hand per event (14 events): rule 1 holds on `a.dll` and
    // `i`; rule 2 on every event but the one with equal names; rule 3 on
    // every event but the two in 10/8; rule 4 on every event but the one
    // with `needle` and the one with an `x` in Image; rule 5 where Image
    // exists and ParentImage has a value (one event); rule 6 where User is
    // admin and Image does not end in `.exe` (one event).
    let expected = 2 + 13 + 12 + 12 + 1 + 1;
    assert_eq!(hits, expected);
}

/// A keyword search the prefilter found one of the literals of is not
/// searched again (rules specification, "Keywords search": a list of
/// keywords holds when any of them occurs). That shortcut holds only for
/// the search whose own literal was found, searched as written: not for
/// another keyword search of the same rule, not for a literal the
/// prefilter searched by its first 16 bytes, not for a cased keyword
/// (the prefilter ignores case).
#[test]
fn keyword_searches_are_known_to_hold_only_by_their_own_literals() {
    let yaml = r#"
title: two keyword lists
id: 9a1d3c2e-0000-4000-8000-000000000001
logsource: {product: test}
detection:
    kw_a: ['alphaword']
    kw_b: ['betaword']
    condition: (kw_a or kw_b) and not kw_a
---
title: long keyword
id: 9a1d3c2e-0000-4000-8000-000000000002
logsource: {product: test}
detection:
    keywords: ['abcdefghijklmnopqrstu', 'shortkw']
    condition: keywords
---
title: cased keyword
id: 9a1d3c2e-0000-4000-8000-000000000003
logsource: {product: test}
detection:
    keywords:
        '|cased': ['casedword', 'otherword']
    condition: keywords
---
title: plain keyword
id: 9a1d3c2e-0000-4000-8000-000000000004
logsource: {product: test}
detection:
    keywords: ['needle']
    condition: keywords
"#;
    let mut loading = detections::Loading::default();
    Loader::default().load_text(yaml, std::path::Path::new("kw.yml"), &mut loading);
    assert!(loading.errors.is_empty());
    let (engine, errors) = Engine::build(loading);
    assert!(errors.is_empty(), "{errors:?}");
    let titles = |msg: &str| {
        let mut e = Event::new();
        e.insert("message", Value::from(msg.to_string()));
        let mut scratch = detections::prefilter::Scratch::default();
        let mut fast = Vec::new();
        engine.eval_with(&e, &mut scratch, &mut |i| fast.push(i));
        let mut all = Vec::new();
        engine.eval_all(&e, &mut |i| all.push(i));
        assert_eq!(fast, all, "{msg}");
        fast.iter()
            .map(|i| engine.rules()[*i].rule.title.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles("x BETAWORD y"), ["two keyword lists"]);
    assert!(titles("x alphaword betaword y").is_empty());
    // The first 16 bytes of the long keyword only.
    assert!(titles("abcdefghijklmnopXYZ").is_empty());
    assert_eq!(titles("ABCDEFGHIJKLMNOPQRSTU"), ["long keyword"]);
    assert_eq!(titles("a ShortKW"), ["long keyword"]);
    assert!(titles("CasedWord OTHERWORD").is_empty());
    assert_eq!(titles("a casedword"), ["cased keyword"]);
    assert_eq!(titles("Needle in a haystack"), ["plain keyword"]);
}

/// `|re|i` matches as the regex crate's case-insensitive mode does (simple
/// Unicode case folding): `s` also matches the long s `ſ` (U+017F) and `k`
/// the Kelvin sign (U+212A). Lower-casing the text does not turn `ſ` into
/// `s`, so a literal taken from the pattern as written (`secret`) would
/// turn away a line an attacker spelled `ſecret`: the literals must come
/// from the pattern with its flags. Same for a list of regexes, whose
/// texts are searched for each regex's literals before it runs.
#[test]
fn case_insensitive_regexes_keep_unicode_case_variants() {
    let rules = r#"
title: one case-insensitive regex
id: 00000000-0000-0000-0000-000000000011
logsource: {product: test}
detection:
    selection:
        message|re|i: 'secret_access_key\s*='
    condition: selection
---
title: a list of case-insensitive regexes
id: 00000000-0000-0000-0000-000000000012
logsource: {product: test}
detection:
    selection:
        message|re|i:
            - 'secret_access_key\s*='
            - 'mlflow_tracking_token'
            - 'xmrig'
    condition: selection
---
title: a list of case-sensitive regexes
id: 00000000-0000-0000-0000-000000000013
logsource: {product: test}
detection:
    selection:
        message|re:
            - 'AKIA[0-9A-Z]{16}'
            - '://[^/@]*:[^/@]*@'
    condition: selection
"#;
    let mut loading = detections::Loading::default();
    Loader::default().load_text(rules, std::path::Path::new("case.yml"), &mut loading);
    assert!(loading.errors.is_empty(), "{:?}", loading.errors);
    let (engine, errors) = Engine::build(loading);
    assert!(errors.is_empty(), "{errors:?}");
    let ev = |m: &str| {
        let mut e = Event::new();
        e.insert("message", Value::from(m.to_string()));
        e
    };
    let events = [
        ev("aws_secret_access_key = abc"),
        ev("AWS_SECRET_ACCESS_KEY=abc"),
        ev("aws_\u{17f}ecret_acce\u{17f}\u{17f}_key=abc"),
        ev("aws_secret_access_\u{212a}ey=abc"),
        ev("MLFLOW_TRACKING_TO\u{212a}EN=x"),
        ev("start XMRIG now"),
        ev("nothing to see"),
        ev("key AKIAABCDEFGHIJKLMNOP and https://u:p@host/"),
        ev("key akiaabcdefghijklmnop"),
        ev("https://host/path"),
    ];
    let hits = same_matches(&engine, &events);
    // By hand: rules 1 and 2 on the first four events, rule 2 on the fifth
    // and sixth; rule 3 on the eighth only (case-sensitive).
    assert_eq!(hits, 4 * 2 + 2 + 1);
}
