//! Hostile rule files: each is refused with a `RuleError` of the right
//! kind and a message that says why, or loads, within bounded time and
//! memory, and never panics. Every case runs on a thread with a 10 s
//! guard: a hang fails the test instead of stalling the suite (the bound
//! is a hang guard, not a speed claim).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use detections::loader::MAX_RULE_FILE_BYTES;
use detections::{ErrorKind, Loaded, Loader, Loading, RuleError};
use schema::{Event, Str};

const GUARD: Duration = Duration::from_secs(10);

/// Runs `f` on its own thread (with the default 2 MiB stack, so deep
/// recursion would show) and fails if it takes longer than the guard or
/// panics.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(what.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(GUARD) {
        Ok(v) => {
            handle.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: did not finish in {GUARD:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The thread panicked: surface its message.
            match handle.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => panic!("{what}: the thread ended without a result"),
            }
        }
    }
}

fn load_text(text: String) -> Loading {
    let mut l = Loading::default();
    Loader::default().load_text(&text, Path::new("hostile.yml"), &mut l);
    l
}

/// A file in a fresh temporary directory (removed on drop).
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!("mlsoc-hostile-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn load_file(name: &str, bytes: Vec<u8>) -> Loading {
    let name = name.to_string();
    bounded(&name.clone(), move || {
        let f = TempFile::new(&name, &bytes);
        Loader::default().load_paths(std::slice::from_ref(&f.path))
    })
}

/// The single error of a loading that loaded nothing.
fn only_error(l: &Loading) -> &RuleError {
    assert!(l.rules.is_empty(), "nothing should load");
    assert_eq!(
        l.errors.len(),
        1,
        "{:?}",
        l.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    &l.errors[0]
}

fn expect_error(l: &Loading, kind: ErrorKind, says: &str) {
    let e = only_error(l);
    assert_eq!(e.kind, kind, "{e}");
    assert!(
        e.message.contains(says),
        "the message should say `{says}`: {e}"
    );
}

/// A rule with `detection` lines (indented by 4) and condition.
fn rule(detection: &str, condition: &str) -> String {
    format!(
        "title: hostile\nlogsource:\n    product: test\ndetection:\n{detection}    condition: {condition}\n"
    )
}

fn ev(json: &str) -> Event {
    Event::from_json(&Str::from(json)).unwrap()
}

fn one_rule(l: Loading) -> Loaded {
    assert!(
        l.errors.is_empty(),
        "{:?}",
        l.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(l.rules.len(), 1);
    l.rules.into_iter().next().unwrap()
}

#[test]
fn yaml_nested_ten_thousand_levels() {
    // Flow sequences, flow maps and block maps, 10,000 deep.
    let flow_seq = rule(
        &format!(
            "    sel:\n        f: {}x{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        "sel",
    );
    let flow_map = rule(
        &format!(
            "    sel:\n        f: {}x{}\n",
            "{a: ".repeat(10_000),
            "}".repeat(10_000)
        ),
        "sel",
    );
    let mut block = String::from("    sel:\n");
    for i in 0..10_000 {
        block.push_str(&" ".repeat(8 + i));
        block.push_str("a:\n");
    }
    let block = rule(&block, "sel");
    for (what, text) in [
        ("flow sequences", flow_seq),
        ("flow maps", flow_map),
        ("block maps", block),
    ] {
        let l = bounded(what, move || load_text(text));
        expect_error(&l, ErrorKind::Yaml, "recursion limit exceeded");
        assert!(l.errors[0].line >= 6, "{what}: {}", l.errors[0]);
    }
}

#[test]
fn yaml_alias_bomb() {
    // "Billion laughs": nine levels of nine aliases each, 9^9 strings if
    // expanded.
    let mut text = String::from("title: lol\nlogsource: {product: test}\nlols:\n");
    text.push_str(
        "  l0: &l0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        text.push_str(&format!(
            "  l{i}: &l{i} [{}]\n",
            [prev.as_str(); 9].join(",")
        ));
    }
    text.push_str("detection:\n    sel:\n        f: *l9\n    condition: sel\n");
    let l = bounded("alias bomb", move || load_text(text));
    expect_error(&l, ErrorKind::Yaml, "repetition limit exceeded");
}

#[test]
fn huge_regexes_are_refused() {
    // Compiles to more than the regex size limit.
    let l = bounded("regex size", || {
        load_text(rule("    sel:\n        f|re: '(a{1000}){1000}'\n", "sel"))
    });
    expect_error(&l, ErrorKind::Invalid, "invalid regex");
    assert!(
        only_error(&l).message.contains("size limit"),
        "{}",
        l.errors[0]
    );
    // A long (3 MiB) regex text, under the file size limit: refused
    // before it is parsed (it used to compile, taking 600 MiB).
    let big = "a|".repeat(1_500_000) + "b";
    let l = bounded("regex text", move || {
        load_text(rule(&format!("    sel:\n        f|re: '{big}'\n"), "sel"))
    });
    expect_error(&l, ErrorKind::Invalid, "invalid regex");
    assert!(
        l.errors[0].message.contains("over the limit of"),
        "{}",
        l.errors[0]
    );
    assert_eq!(l.errors[0].line, 6);
    // A pattern at the limit with a simple structure still loads.
    let ok = "ab|".repeat(20_000) + "c";
    let r = one_rule(bounded("regex at limit", move || {
        load_text(rule(
            &format!("    sel:\n        f|re: '^({ok})$'\n"),
            "sel",
        ))
    }));
    assert!(r.rule.detection.matches(&ev(r#"{"f":"ab"}"#)));
    assert!(!r.rule.detection.matches(&ev(r#"{"f":"abc"}"#)));
}

#[test]
fn catastrophic_regexes_run_in_linear_time() {
    let r = one_rule(bounded("compile", || {
        load_text(rule(
            "    sel:\n        f|re:\n            - '(a+)+$'\n            - '(a|aa)+$'\n            - '(.*a){20}$'\n            - '^(a|a?)+$'\n",
            "sel",
        ))
    }));
    let value = "a".repeat(100_000) + "!";
    let json = format!(r#"{{"f":"{value}"}}"#);
    let (miss, hit) = bounded("evaluate", move || {
        let miss = r.rule.detection.matches(&ev(&json));
        let hit = r.rule.detection.matches(&ev(r#"{"f":"aaaa"}"#));
        (miss, hit)
    });
    assert!(!miss, "no pattern matches a value ending in '!'");
    assert!(hit);
}

#[test]
fn ten_thousand_values_load_and_match() {
    let mut sel = String::from("    sel:\n        f:\n");
    for i in 0..10_000 {
        sel.push_str(&format!("            - 'value-{i:05}'\n"));
    }
    let r = one_rule(bounded("load", move || load_text(rule(&sel, "sel"))));
    bounded("match", move || {
        for hit in ["value-00000", "VALUE-05000", "value-09999"] {
            assert!(
                r.rule
                    .detection
                    .matches(&ev(&format!(r#"{{"f":"{hit}"}}"#))),
                "{hit}"
            );
        }
        for miss in ["value-10000", "value-0000", "value-00000 "] {
            assert!(
                !r.rule
                    .detection
                    .matches(&ev(&format!(r#"{{"f":"{miss}"}}"#))),
                "{miss}"
            );
        }
    });
}

#[test]
fn invalid_yaml_says_where() {
    let l = load_text(rule("    sel:\n        f: 'unterminated\n", "sel"));
    let e = only_error(&l);
    assert_eq!(e.kind, ErrorKind::Yaml, "{e}");
    assert!(e.message.starts_with("not valid YAML: "), "{e}");
    assert!(e.line >= 6, "{e}");
    let l = load_text("title: x\n  bad indent: y\n: z\n".to_string());
    let e = only_error(&l);
    assert_eq!(e.kind, ErrorKind::Yaml, "{e}");
    assert_eq!(e.line, 2, "{e}");
    // Tabs for indentation.
    let l = load_text("title: x\ndetection:\n\tsel: 1\n".to_string());
    assert_eq!(only_error(&l).kind, ErrorKind::Yaml);
}

#[test]
fn non_utf8_file() {
    let mut bytes = rule("    sel:\n        f: 'caf", "sel").into_bytes();
    bytes.extend_from_slice(&[0xE9, b'\'', b'\n']);
    let l = load_file("latin1.yml", bytes);
    expect_error(&l, ErrorKind::Io, "not UTF-8");
    // The offset of the bad byte is given.
    assert!(l.errors[0].message.contains("offset"), "{}", l.errors[0]);
    // UTF-16 with a byte order mark.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("title: x\n".encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    expect_error(&load_file("utf16.yml", utf16), ErrorKind::Io, "not UTF-8");
}

#[test]
fn file_over_the_size_limit() {
    let mut text = rule("    sel:\n        f: 'x'\n", "sel");
    text.push('#');
    text.push_str(&"x".repeat(MAX_RULE_FILE_BYTES as usize));
    text.push('\n');
    let l = load_file("big.yml", text.into_bytes());
    expect_error(&l, ErrorKind::Io, "over the limit");
    assert!(
        l.errors[0]
            .message
            .contains(&MAX_RULE_FILE_BYTES.to_string()),
        "{}",
        l.errors[0]
    );
    // Exactly at the limit is read (a comment-padded valid rule).
    let mut text = rule("    sel:\n        f: 'x'\n", "sel");
    let pad = MAX_RULE_FILE_BYTES as usize - text.len() - 2;
    text.push('#');
    text.push_str(&"x".repeat(pad));
    text.push('\n');
    assert_eq!(text.len() as u64, MAX_RULE_FILE_BYTES);
    let l = load_file("limit.yml", text.into_bytes());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.rules.len(), 1);
}

#[test]
fn condition_nested_a_thousand_parentheses() {
    let cond = format!("{}sel{}", "(".repeat(1000), ")".repeat(1000));
    let l = bounded("parens", move || {
        load_text(rule("    sel:\n        f: 'x'\n", &cond))
    });
    expect_error(&l, ErrorKind::Invalid, "nests deeper than");
    assert_eq!(l.errors[0].line, 7, "{}", l.errors[0]);
    let cond = format!("{}sel", "not ".repeat(1000));
    let l = bounded("nots", move || {
        load_text(rule("    sel:\n        f: 'x'\n", &cond))
    });
    expect_error(&l, ErrorKind::Invalid, "nests deeper than");
    // Long but flat conditions are fine: 10,000 terms.
    let cond = vec!["sel"; 10_000].join(" or ");
    let r = one_rule(bounded("flat", move || {
        load_text(rule("    sel:\n        f: 'x'\n", &cond))
    }));
    assert!(r.rule.detection.matches(&ev(r#"{"f":"x"}"#)));
}

#[test]
fn identifier_pattern_that_matches_nothing() {
    let l = load_text(rule("    selection:\n        f: 'x'\n", "1 of filter_*"));
    expect_error(
        &l,
        ErrorKind::Invalid,
        "`filter_*` matches no search identifier",
    );
    let l = load_text(rule(
        "    selection:\n        f: 'x'\n",
        "selection and not 1 of filter_*",
    ));
    expect_error(
        &l,
        ErrorKind::Invalid,
        "`filter_*` matches no search identifier",
    );
    // A count that does not fit, and a count larger than the set.
    let l = load_text(rule(
        "    selection:\n        f: 'x'\n",
        "99999999999999999999999999 of them",
    ));
    expect_error(&l, ErrorKind::Invalid, "not a usable count");
}

#[test]
fn windash_expansion_is_limited() {
    // 20 option dashes: 5^20 variants.
    let value = (0..20)
        .map(|i| format!("-o{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let l = bounded("windash", move || {
        load_text(rule(
            &format!("    sel:\n        f|windash: '{value}'\n"),
            "sel",
        ))
    });
    expect_error(&l, ErrorKind::Invalid, "windash");
    assert!(
        l.errors[0].message.contains("alternatives"),
        "{}",
        l.errors[0]
    );
    assert_eq!(l.errors[0].line, 6, "{}", l.errors[0]);
    // Six dashes (15,625 variants) are within the limit and match.
    let value = (0..6)
        .map(|i| format!("-o{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let r = one_rule(bounded("windash 6", move || {
        load_text(rule(
            &format!("    sel:\n        f|windash|contains: '{value}'\n"),
            "sel",
        ))
    }));
    assert!(
        r.rule
            .detection
            .matches(&ev(r#"{"f":"x /o0 -o1 /o2 -o3 /o4 \u2013o5"}"#))
    );
    assert!(
        !r.rule
            .detection
            .matches(&ev(r#"{"f":"x /o0 -o1 /o2 -o3 /o4 +o5"}"#))
    );
}

/// xorshift: deterministic bytes.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn binary_garbage() {
    for seed in 1..=20u64 {
        let bytes = garbage(seed, 64 * 1024);
        let l = load_file(&format!("garbage{seed}.yml"), bytes);
        let e = only_error(&l);
        assert_eq!(e.kind, ErrorKind::Io, "{e}");
        assert!(e.message.contains("not UTF-8"), "{e}");
    }
    // Garbage that is valid UTF-8: ASCII bytes, control characters
    // included, as text.
    for seed in 1..=50u64 {
        let text: String = garbage(seed, 16 * 1024)
            .into_iter()
            .map(|b| (b & 0x7F) as char)
            .collect();
        let l = bounded("ascii garbage", move || load_text(text));
        assert!(l.rules.is_empty(), "seed {seed}");
        assert!(
            !l.errors.is_empty(),
            "seed {seed}: garbage must be reported"
        );
        for e in &l.errors {
            assert!(
                matches!(e.kind, ErrorKind::Yaml | ErrorKind::Invalid),
                "seed {seed}: {e}"
            );
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn many_documents_and_many_identifiers() {
    // 5,000 documents in one file.
    let mut text = String::new();
    for i in 0..5_000 {
        text.push_str(&format!(
            "title: r{i}\nid: 00000000-0000-4000-8000-{i:012}\nlogsource: {{product: test}}\ndetection:\n    sel:\n        f: 'v{i}'\n    condition: sel\n---\n"
        ));
    }
    let l = bounded("documents", move || load_text(text));
    assert!(l.errors.is_empty());
    assert_eq!(l.rules.len(), 5_000);
    assert_eq!(l.rules[4_999].origin.line, 4_999 * 8 + 1);
    // 200 search identifiers (past the 64 the evaluator memoises).
    let mut det = String::new();
    for i in 0..200 {
        det.push_str(&format!("    s{i}:\n        f{i}: 'x'\n"));
    }
    let r = one_rule(bounded("identifiers", move || {
        load_text(rule(&det, "s199 and all of s1* and not s0"))
    }));
    let mut json = String::from("{");
    for i in 1..200 {
        json.push_str(&format!("\"f{i}\":\"x\","));
    }
    json.push_str("\"g\":1}");
    assert!(r.rule.detection.matches(&ev(&json)));
    let with_s0 = json.replacen('{', "{\"f0\":\"x\",", 1);
    assert!(!r.rule.detection.matches(&ev(&with_s0)));
}

#[test]
fn nested_lists_of_maps_are_bounded() {
    // Lists of lists 100 deep inside a search identifier.
    let det = format!("    sel: {}{{f: x}}{}\n", "[".repeat(100), "]".repeat(100));
    let l = bounded("lists", move || load_text(rule(&det, "sel")));
    expect_error(&l, ErrorKind::Invalid, "nest too deeply");
}
