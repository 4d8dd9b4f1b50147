//! Conformance with the Sigma specification (SigmaHQ/sigma-specification):
//! the repository's example documents (copied under `tests/spec/`, see its
//! README) load and match the events the specification describes, and
//! miss the near misses; the examples written in the specification's text
//! behave as the text says. Each test cites the section it checks:
//! "rules spec" is `specification/sigma-rules-specification.md`,
//! "modifiers appendix" is `specification/sigma-appendix-modifiers.md`,
//! "correlation spec" and "filters spec" the correlation rules and filters
//! specifications.
//!
//! The condition and wildcard tests here cover what the unit tests of
//! `condition.rs` and `pattern.rs` do not: whole rules, conditions given as
//! lists, identifiers that begin with an operator's letters, escapes
//! combined with modifiers, keywords.

use std::path::{Path, PathBuf};

use detections::correlation::{Expr, Kind};
use detections::{Engine, ErrorKind, Hit, Level, Limits, Loaded, Loader, Loading};
use schema::{Event, Str};

fn spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/spec")
}

fn load_file(rel: &str) -> Loading {
    Loader::default().load_paths(&[spec_dir().join(rel)])
}

fn load_text(yaml: &str) -> Loading {
    let mut l = Loading::default();
    Loader::default().load_text(yaml, Path::new("inline.yml"), &mut l);
    l
}

fn errors(l: &Loading) -> Vec<String> {
    l.errors.iter().map(|e| e.to_string()).collect()
}

/// The one rule of a text that must load.
fn rule(yaml: &str) -> Loaded {
    let mut l = load_text(yaml);
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    assert_eq!(l.rules.len(), 1);
    l.rules.pop().unwrap()
}

fn ev(json: &str) -> Event {
    Event::from_json(&Str::from(json)).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn fires(r: &Loaded, json: &str) -> bool {
    r.rule.detection.matches(&ev(json))
}

/// Asserts which events the rule matches.
fn check(r: &Loaded, hits: &[&str], misses: &[&str]) {
    for h in hits {
        assert!(fires(r, h), "`{}` should match {h}", r.rule.title);
    }
    for m in misses {
        assert!(!fires(r, m), "`{}` should not match {m}", r.rule.title);
    }
}

// ---------------------------------------------------------------------
// The specification repository's example rules (tests/rules, tests/schema/rules)
// ---------------------------------------------------------------------

// Rules spec, "File Structure" and "Components": every attribute of the
// example is read (title, id, related, status, taxonomy, description,
// references, author, date, modified, tags, logsource, detection,
// falsepositives, level); "Maps": `Provider_Name: 'Application Error'`
// matches that field; "General": values are case-insensitive.
#[test]
fn rule_1_loads_with_its_metadata_and_matches_its_selection() {
    for rel in ["rules/rule_1.yml", "schema/rules/rule_1.yml"] {
        let mut l = load_file(rel);
        assert!(l.errors.is_empty(), "{rel}: {:?}", errors(&l));
        assert_eq!(l.rules.len(), 1, "{rel}");
        let r = l.rules.pop().unwrap();
        let m = &r.rule;
        assert_eq!(m.title, "A Title");
        assert_eq!(
            m.id.as_deref(),
            Some("545a5da6-f103-4919-a519-e9aec1026ee4")
        );
        assert_eq!(m.status.as_deref(), Some("test"));
        assert_eq!(
            m.description.as_deref(),
            Some("a very good information string that need to be written")
        );
        assert_eq!(m.references, ["https://123.456", "https://789.963"]);
        assert_eq!(m.author.as_deref(), Some("SomeOne"));
        // Rules spec, "Date"/"Modified": YYYY-MM-DD, written unquoted.
        assert_eq!(m.date.as_deref(), Some("2017-05-09"));
        assert_eq!(m.modified.as_deref(), Some("2023-04-14"));
        assert_eq!(
            m.tags,
            ["attack.defense-evasion", "attack.t1211", "attack.t1562.001"]
        );
        assert_eq!(m.logsource.product.as_deref(), Some("windows"));
        assert_eq!(m.logsource.service.as_deref(), Some("application"));
        assert_eq!(m.logsource.category, None);
        assert_eq!(m.falsepositives, ["a string"]);
        assert_eq!(m.level, Some(Level::High));
        assert_eq!(r.origin.line, 1);
        check(
            &r,
            &[
                r#"{"Provider_Name":"Application Error"}"#,
                r#"{"Provider_Name":"APPLICATION ERROR","EventID":1000}"#,
                r#"{"Provider_Name":["Other","Application Error"]}"#,
            ],
            &[
                r#"{"Provider_Name":"Application Error 2"}"#,
                r#"{"Provider_Name":"Application"}"#,
                r#"{"Provider_Name":" Application Error"}"#,
                r#"{"Provider":{"Name":"Application Error"}}"#,
                r#"{"Message":"Application Error"}"#,
                r#"{}"#,
            ],
        );
    }
}

// Rules spec, "Taxonomy": `taxonomy: ecs` rules use ECS field names, which
// is what mlsoc's events carry; a dotted field name reaches the nested
// field as well as a flat key.
#[test]
fn rule_ecs_matches_the_ecs_field() {
    let mut l = load_file("rules/rule_ecs.yml");
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    let r = l.rules.pop().unwrap();
    assert_eq!(r.rule.logsource.category.as_deref(), Some("network"));
    assert_eq!(r.rule.logsource.service.as_deref(), Some("dns"));
    check(
        &r,
        &[
            r#"{"dns":{"question":{"name":"sigmahq"}}}"#,
            r#"{"dns.question.name":"SigmaHQ"}"#,
        ],
        &[
            r#"{"dns":{"question":{"name":"sigmahq.io"}}}"#,
            r#"{"dns":{"question":{"name":"www.sigmahq"}}}"#,
            r#"{"dns":{"question":{"type":"sigmahq"}}}"#,
            r#"{"url":{"domain":"sigmahq"}}"#,
        ],
    );
}

// Rules spec, "Identification": the id is globally unique. The
// specification's own examples rules/rule_1.yml and rules/rule_ecs.yml
// share one id, so loading the folder keeps the first and reports the
// second with the place of the first.
#[test]
fn the_spec_rules_folder_has_a_duplicate_id_that_is_reported() {
    let l = load_file("rules");
    assert_eq!(l.files, 2);
    assert_eq!(l.rules.len(), 1, "{:?}", errors(&l));
    assert!(l.rules[0].origin.path.ends_with("rule_1.yml"));
    assert_eq!(l.errors.len(), 1);
    let e = &l.errors[0];
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.path.ends_with("rule_ecs.yml"), "{e}");
    assert!(
        e.message
            .contains("id 545a5da6-f103-4919-a519-e9aec1026ee4 is already used")
            && e.message.contains("rule_1.yml:1"),
        "{e}"
    );
}

// ---------------------------------------------------------------------
// Examples in the text of the rules specification
// ---------------------------------------------------------------------

// Rules spec, "Yaml File": the simple example rule; the value
// 'C:\Windows\System32\whoami.exe' has plain single backslashes ("Escape
// Character": a backslash not before a wildcard is a plain backslash).
#[test]
fn whoami_example() {
    let r = rule(
        r"
title: Whoami Execution
description: Detects a whoami.exe execution
references:
      - https://speakerdeck.com/heirhabarov/hunting-for-privilege-escalation-in-windows-environment
author: Florian Roth
date: 2019-10-23
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image: 'C:\Windows\System32\whoami.exe'
    condition: selection
level: high
",
    );
    check(
        &r,
        &[
            r#"{"Image":"C:\\Windows\\System32\\whoami.exe"}"#,
            r#"{"Image":"c:\\windows\\system32\\WHOAMI.EXE"}"#,
        ],
        &[
            r#"{"Image":"C:\\Windows\\SysWOW64\\whoami.exe"}"#,
            r#"{"Image":"C:/Windows/System32/whoami.exe"}"#,
            r#"{"Image":"C:\\Windows\\System32\\whoami.exe.bak"}"#,
            r#"{"CommandLine":"C:\\Windows\\System32\\whoami.exe"}"#,
        ],
    );
}

// Rules spec, "Lists": a list of strings is OR-linked and applied to the
// whole event (keywords); "General": case-insensitive.
#[test]
fn list_of_strings_is_a_keyword_or() {
    let r = rule(
        r"
title: keywords
logsource: {product: windows}
detection:
    keywords:
        - 'EVILSERVICE'
        - 'svchost.exe -n evil'
    condition: keywords
",
    );
    check(
        &r,
        &[
            r#"{"ServiceName":"EvilService"}"#,
            r#"{"CommandLine":"C:\\Windows\\svchost.exe -n evil -k x"}"#,
            r#"{"a":{"b":["x","installed evilservice now"]}}"#,
        ],
        &[
            r#"{"ServiceName":"Evil Service"}"#,
            r#"{"CommandLine":"svchost.exe -n good"}"#,
            r#"{"CommandLine":"svchost.exe  -n evil"}"#,
        ],
    );
}

// Rules spec, "Lists": a list of maps is OR-linked; the example's value
// '\\example.exe' (double backslash) is one plain backslash ("Escape
// Character").
#[test]
fn list_of_maps_is_an_or() {
    let r = rule(
        r"
title: list of maps
logsource: {product: windows}
detection:
    selection:
        - Image|endswith: '\\example.exe'
        - Description|contains: 'Test executable'
    condition: selection
",
    );
    check(
        &r,
        &[
            r#"{"Image":"C:\\Temp\\example.exe"}"#,
            r#"{"Description":"A test Executable for X"}"#,
            r#"{"Image":"C:\\x.exe","Description":"test executable"}"#,
        ],
        &[
            r#"{"Image":"C:\\Temp\\myexample.exe"}"#,
            r#"{"Image":"C:\\Temp\\\\example.exe.old"}"#,
            r#"{"Description":"Test-executable"}"#,
            r#"{"Image":"example.exe"}"#,
        ],
    );
}

// Rules spec, "Maps": map items are AND-linked, a list value is an OR:
// EventLog 'Security' and (EventID 517 or 1102); the second example mixes
// numbers and quoted strings.
#[test]
fn maps_and_their_value_lists() {
    let r = rule(
        r"
title: maps
logsource: {product: windows}
detection:
    selection:
        EventLog: Security
        EventID:
            - 517
            - 1102
    condition: selection
",
    );
    check(
        &r,
        &[
            r#"{"EventLog":"Security","EventID":517}"#,
            r#"{"EventLog":"security","EventID":1102}"#,
            r#"{"EventLog":"Security","EventID":"1102"}"#,
        ],
        &[
            r#"{"EventLog":"Security","EventID":4624}"#,
            r#"{"EventLog":"System","EventID":517}"#,
            r#"{"EventID":517}"#,
            r#"{"EventLog":"Security"}"#,
        ],
    );
    let r = rule(
        r"
title: maps 2
logsource: {product: windows}
detection:
    selection:
          EventLog: Security
          EventID: 4769
          TicketOptions: '0x40810000'
          TicketEncryption: '0x17'
    condition: selection
",
    );
    check(
        &r,
        &[
            r#"{"EventLog":"Security","EventID":4769,"TicketOptions":"0x40810000","TicketEncryption":"0x17"}"#,
        ],
        &[
            // '0x17' is a string: the number 23 is not it.
            r#"{"EventLog":"Security","EventID":4769,"TicketOptions":"0x40810000","TicketEncryption":23}"#,
            r#"{"EventLog":"Security","EventID":4769,"TicketOptions":"0x40810000"}"#,
            r#"{"EventLog":"Security","EventID":4768,"TicketOptions":"0x40810000","TicketEncryption":"0x17"}"#,
        ],
    );
}

// Rules spec, "Special Field Values": `null` is the field being null (or
// absent); a "not null" is a negated selection.
#[test]
fn null_and_not_null() {
    let r = rule(
        r"
title: not null
logsource: {product: windows}
detection:
    selection:
        EventID: 4738
    filter:
        PasswordLastSet: null
    condition: selection and not filter
",
    );
    check(
        &r,
        &[
            r#"{"EventID":4738,"PasswordLastSet":"2026-11-30"}"#,
            r#"{"EventID":4738,"PasswordLastSet":""}"#,
        ],
        &[
            r#"{"EventID":4738,"PasswordLastSet":null}"#,
            r#"{"EventID":4738}"#,
            r#"{"EventID":4739,"PasswordLastSet":"2026-11-30"}"#,
        ],
    );
    // The "Valid Example": '' and null as their own selections.
    let r = rule(
        r"
title: empty or null
logsource: {product: windows}
detection:
    selection_main:
        FieldA: 'something'
    selection_empty1:
        FieldB: ''
    selection_empty2:
        FieldB: null
    condition: selection_main and 1 of selection_empty*
",
    );
    check(
        &r,
        &[
            r#"{"FieldA":"something","FieldB":""}"#,
            r#"{"FieldA":"something","FieldB":null}"#,
            r#"{"FieldA":"something"}"#,
        ],
        &[
            r#"{"FieldA":"something","FieldB":"x"}"#,
            r#"{"FieldA":"something else","FieldB":""}"#,
        ],
    );
}

// Rules spec, "Special Field Values": "null cannot be part of a list of
// field values" — the specification's "Invalid Example" is refused.
#[test]
fn null_in_a_value_list_is_refused() {
    let l = load_text(
        r"
title: invalid
logsource: {product: windows}
detection:
    selection_main:
        FieldA: 'something'
        FieldB:
            - ''
            - null
    condition: selection_main
",
    );
    assert!(l.rules.is_empty());
    assert_eq!(l.errors.len(), 1);
    let e = &l.errors[0];
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("null"), "{e}");
    assert_eq!(e.line, 7, "the line of `FieldB:`: {e}");
}

// Rules spec, "Field Existence": `exists: true` needs the field, whatever
// its value (modifiers appendix, `exists`: "not its value, be it empty or
// null").
#[test]
fn field_existence() {
    let r = rule(
        r"
title: exists
logsource: {product: windows}
detection:
    selection:
        EventID: 4738
        PasswordLastSet|exists: true
    condition: selection
",
    );
    check(
        &r,
        &[
            r#"{"EventID":4738,"PasswordLastSet":"x"}"#,
            r#"{"EventID":4738,"PasswordLastSet":""}"#,
            r#"{"EventID":4738,"PasswordLastSet":null}"#,
        ],
        &[r#"{"EventID":4738}"#, r#"{"EventID":4738,"Password":"x"}"#],
    );
}

// Rules spec, "Keywords search": a keyword list is an OR over the whole
// event; `'|all':` makes it an AND.
#[test]
fn keyword_search_and_all() {
    let r = rule(
        r"
title: mimikatz keywords
logsource: {product: windows}
detection:
    mimikatz_keywords:
        - 'event::clear'
        - 'event::drop'
    condition: mimikatz_keywords
",
    );
    check(
        &r,
        &[
            r#"{"CommandLine":"mimikatz.exe privilege::debug event::clear exit"}"#,
            r#"{"ScriptBlockText":"EVENT::DROP"}"#,
        ],
        &[r#"{"CommandLine":"mimikatz.exe event::list"}"#],
    );
    let r = rule(
        r"
title: all keywords
logsource: {product: windows}
detection:
    keywords_cmdlet:
        '|all':
            - 'OabVirtualDirectory'
            - ' -ExternalUrl '
    condition: keywords_cmdlet
",
    );
    check(
        &r,
        &[
            r#"{"Payload":"Set-OabVirtualDirectory -Identity x -ExternalUrl 'http://evil'"}"#,
            // The two keywords may be in different fields.
            r#"{"Cmdlet":"Set-OabVirtualDirectory","Args":"x -ExternalUrl y"}"#,
        ],
        &[
            r#"{"Payload":"Set-OabVirtualDirectory -Identity x"}"#,
            r#"{"Payload":"Get-Thing -ExternalUrl x"}"#,
            r#"{"Payload":"Set-OabVirtualDirectory -ExternalUrlX"}"#,
        ],
    );
}

// Rules spec, "Placeholders": "If the tool isn't able to handle
// placeholders, it must reject the rule"; without `expand`, `%name%` is a
// literal value.
#[test]
fn placeholders_without_values_are_rejected() {
    let l = load_text(
        r"
title: placeholder
logsource: {product: windows}
detection:
    selection:
        User|expand: '%Administrators%'
    condition: selection
",
    );
    assert!(l.rules.is_empty());
    assert_eq!(l.errors.len(), 1);
    assert_eq!(l.errors[0].kind, ErrorKind::Placeholder);
    assert!(l.errors[0].message.contains("%Administrators%"));
    let r = rule(
        r"
title: literal percent
logsource: {product: windows}
detection:
    selection:
        User: '%Administrators%'
    condition: selection
",
    );
    check(
        &r,
        &[r#"{"User":"%administrators%"}"#],
        &[r#"{"User":"admin"}"#],
    );
    // `\%plain%name%`: `%plain` is plain, `%name%` the placeholder.
    let mut p = detections::Placeholders::new();
    p.insert("name".into(), vec!["bob".into(), "eve*".into()]);
    let mut l = Loading::default();
    Loader::new(p).load_text(
        r"
title: escaped percent
logsource: {product: windows}
detection:
    selection:
        User|expand: '\%plain%name%'
    condition: selection
",
        Path::new("p.yml"),
        &mut l,
    );
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    check(
        &l.rules[0],
        &[r#"{"User":"%plainbob"}"#, r#"{"User":"%PLAINeve-admin"}"#],
        &[r#"{"User":"%plain%name%"}"#, r#"{"User":"plainbob"}"#],
    );
}

// ---------------------------------------------------------------------
// Condition forms (rules spec, "Condition") beyond condition.rs's tests
// ---------------------------------------------------------------------

const FIVE: &str = r"
title: conditions
logsource: {product: test}
detection:
    selection_a:
        a: 'x'
    selection_b:
        b: 'x'
    filter_one:
        f1: 'x'
    filter_two:
        - f2: 'x'
        - f3: 'x'
    keywords:
        - 'needle'
    condition: COND
";

fn with_condition(cond: &str) -> Loaded {
    rule(&FIVE.replace("COND", cond))
}

// Rules spec, "Condition": "The condition can be a list ... They are
// logically linked with OR."
#[test]
fn a_list_of_conditions_is_an_or() {
    let r = rule(
        r"
title: two conditions
logsource: {product: test}
detection:
    sel1:
        a: 'x'
    sel2:
        b: 'x'
    filter:
        c: 'x'
    condition:
        - sel1 and not filter
        - sel2
",
    );
    check(
        &r,
        &[
            r#"{"a":"x"}"#,
            r#"{"b":"x"}"#,
            r#"{"b":"x","c":"x"}"#,
            r#"{"a":"x","b":"x","c":"x"}"#,
        ],
        &[r#"{"a":"x","c":"x"}"#, r#"{"c":"x"}"#],
    );
}

// Rules spec, "Condition", precedence: `x of` binds tighter than `not`, so
// `not 1 of filter_*` negates the whole group, and `and` binds tighter
// than `or` across `of` groups.
#[test]
fn of_groups_with_not_and_or() {
    let r = with_condition("all of selection_* and not 1 of filter_*");
    check(
        &r,
        &[r#"{"a":"x","b":"x"}"#],
        &[
            r#"{"a":"x","b":"x","f1":"x"}"#,
            r#"{"a":"x","b":"x","f3":"x"}"#,
            r#"{"a":"x"}"#,
        ],
    );
    let r = with_condition("1 of selection_* and keywords or 1 of filter_*");
    check(
        &r,
        &[
            r#"{"a":"x","m":"the needle"}"#,
            r#"{"f2":"x"}"#,
            r#"{"b":"x","f1":"x"}"#,
        ],
        &[r#"{"a":"x"}"#, r#"{"m":"needle"}"#],
    );
    // Brackets change it.
    let r = with_condition("1 of selection_* and (keywords or 1 of filter_*)");
    check(
        &r,
        &[r#"{"a":"x","m":"needle"}"#, r#"{"b":"x","f3":"x"}"#],
        &[r#"{"f2":"x"}"#, r#"{"m":"needle"}"#],
    );
}

// Rules spec, "1/all of them": across every search identifier (keywords
// and lists of maps included); "Negation with 'not'", "Brackets": nested
// brackets and a double negation.
#[test]
fn them_brackets_and_double_negation() {
    let r = with_condition("all of them");
    check(
        &r,
        &[r#"{"a":"x","b":"x","f1":"x","f3":"x","m":"needle"}"#],
        &[r#"{"a":"x","b":"x","f1":"x","f3":"x"}"#],
    );
    let r = with_condition("1 of them");
    check(
        &r,
        &[r#"{"m":"a needle"}"#, r#"{"f3":"x"}"#],
        &[r#"{"z":"x"}"#],
    );
    let r = with_condition("not not selection_a");
    check(&r, &[r#"{"a":"x"}"#], &[r#"{"b":"x"}"#]);
    let r = with_condition("((selection_a or (selection_b)) and not (filter_one or filter_two))");
    check(
        &r,
        &[r#"{"a":"x"}"#, r#"{"b":"x"}"#],
        &[r#"{"a":"x","f1":"x"}"#, r#"{"b":"x","f2":"x"}"#, r#"{}"#],
    );
    let r = with_condition("not (selection_a and selection_b)");
    check(&r, &[r#"{"a":"x"}"#, r#"{}"#], &[r#"{"a":"x","b":"x"}"#]);
}

// Rules spec, "1/all of search-identifier-pattern": "Matching is done with
// * wildcards (any number of characters) at arbitrary positions in the
// pattern".
#[test]
fn identifier_patterns_with_wildcards_anywhere() {
    let r = with_condition("1 of *_one or all of sel*_?");
    check(
        &r,
        &[r#"{"f1":"x"}"#, r#"{"a":"x","b":"x"}"#],
        &[r#"{"a":"x"}"#, r#"{"f2":"x"}"#],
    );
    let r = with_condition("all of *");
    check(
        &r,
        &[r#"{"a":"x","b":"x","f1":"x","f2":"x","m":"needle"}"#],
        &[r#"{"a":"x","b":"x","f1":"x","f2":"x"}"#],
    );
}

// Rules spec, "Condition": identifiers are names, so ones that begin with
// the letters of an operator (`order`, `android`, `notable`, `offset`,
// `them_all`, `all_x`) are identifiers, not operators.
#[test]
fn identifiers_that_begin_with_operator_words() {
    let r = rule(
        r"
title: operator-like names
logsource: {product: test}
detection:
    order:
        a: 'x'
    android:
        b: 'x'
    notable:
        c: 'x'
    offset:
        d: 'x'
    them_all:
        e: 'x'
    all_x:
        f: 'x'
    condition: order and android and not notable or offset and them_all and all_x
",
    );
    check(
        &r,
        &[
            r#"{"a":"x","b":"x"}"#,
            r#"{"d":"x","e":"x","f":"x","c":"x"}"#,
        ],
        &[r#"{"a":"x","b":"x","c":"x"}"#, r#"{"d":"x","e":"x"}"#],
    );
}

// Rules spec, "Condition": a condition naming an identifier the rule does
// not define, or a pattern that matches none, is an error at its line.
#[test]
fn unknown_identifiers_are_errors_with_their_line() {
    for (cond, msg) in [
        (
            "selection_a and selection_c",
            "`selection_c` is not a search identifier",
        ),
        ("1 of nothing_*", "`nothing_*` matches no search identifier"),
        ("selection_a and", "ends where"),
    ] {
        let l = load_text(&FIVE.replace("COND", cond));
        assert!(l.rules.is_empty(), "{cond}");
        assert_eq!(l.errors.len(), 1, "{cond}");
        let e = &l.errors[0];
        assert_eq!(e.kind, ErrorKind::Invalid, "{cond}");
        assert!(e.message.contains(msg), "{cond}: {e}");
        assert_eq!(e.line, 16, "{cond}: the line of `condition:`: {e}");
    }
}

// ---------------------------------------------------------------------
// Wildcards and escapes (rules spec, "String Wildcard", "Escape
// Character") beyond pattern.rs's tests: whole rules, with modifiers
// ---------------------------------------------------------------------

fn one_value(field_mods: &str, value: &str) -> Loaded {
    rule(&format!(
        "title: w\nlogsource: {{product: test}}\ndetection:\n    selection:\n        {field_mods}: '{value}'\n    condition: selection\n"
    ))
}

// "String Wildcard": `?` is one mandatory character, anywhere, repeated;
// `*` may match nothing.
#[test]
fn wildcards_at_the_ends_and_repeated() {
    check(
        &one_value("v", "??"),
        &[r#"{"v":"ab"}"#, r#"{"v":"é!"}"#],
        &[r#"{"v":"a"}"#, r#"{"v":"abc"}"#, r#"{"v":""}"#],
    );
    check(
        &one_value("v", "?dmin*"),
        &[r#"{"v":"admin"}"#, r#"{"v":"Xdministrator"}"#],
        &[r#"{"v":"dmin"}"#],
    );
    check(
        &one_value("v", "a*b"),
        &[r#"{"v":"ab"}"#, r#"{"v":"a--b"}"#],
        &[r#"{"v":"a--bc"}"#, r#"{"v":"ba"}"#],
    );
    check(
        &one_value("v", "*"),
        &[r#"{"v":"anything"}"#, r#"{"v":""}"#],
        &[r#"{"w":"x"}"#, r#"{"v":null}"#],
    );
}

// "Escape Character" with the `contains`, `startswith` and `endswith`
// modifiers: an escaped wildcard stays a plain character inside the
// wildcards the modifier adds.
#[test]
fn escaped_wildcards_inside_modifiers() {
    check(
        &one_value("v|contains", r"a\*b"),
        &[r#"{"v":"xxa*byy"}"#],
        &[r#"{"v":"xxaZbyy"}"#, r#"{"v":"xxabyy"}"#],
    );
    check(
        &one_value("v|startswith", r"what\?"),
        &[r#"{"v":"what? is that"}"#],
        &[r#"{"v":"whatX is that"}"#],
    );
    check(
        &one_value("v|endswith", r"\\*"),
        // `\\*` is a backslash followed by a wildcard: after endswith's
        // own `*`, any value with a backslash.
        &[r#"{"v":"C:\\dir\\"}"#, r#"{"v":"C:\\dir\\file"}"#],
        &[r#"{"v":"C:/dir/file"}"#],
    );
    check(
        &one_value("v|contains", r"\\\*"),
        &[r#"{"v":"dir\\*x"}"#],
        &[r#"{"v":"dir\\x"}"#, r#"{"v":"dir*x"}"#],
    );
}

// "Escape Character": "Three or four backslashes are handled as double
// backslash"; a backslash at the very end is a plain backslash.
#[test]
fn three_or_four_backslashes_and_a_trailing_one() {
    for v in [r"\\\server", r"\\\\server"] {
        check(
            &one_value("v", v),
            &[r#"{"v":"\\\\server"}"#],
            &[r#"{"v":"\\server"}"#, r#"{"v":"\\\\\\server"}"#],
        );
    }
    check(
        &one_value("v", r"C:\"),
        &[r#"{"v":"c:\\"}"#],
        &[r#"{"v":"c:"}"#, r#"{"v":"c:\\\\"}"#],
    );
    // Four backslashes then a wildcard: two plain backslashes, then `*`.
    check(
        &one_value("v", r"\\\\*"),
        &[r#"{"v":"\\\\host\\share"}"#],
        &[r#"{"v":"\\host"}"#],
    );
}

// "String Wildcard" in keyword lists, and `cased` (modifiers appendix)
// with wildcards: the literal parts are case-sensitive.
#[test]
fn wildcards_in_keywords_and_with_cased() {
    let r = rule(
        r"
title: wildcard keywords
logsource: {product: test}
detection:
    keywords:
        - 'EVIL*SERVICE'
        - 'run?.exe'
    condition: keywords
",
    );
    check(
        &r,
        &[
            r#"{"m":"the evil little service started"}"#,
            r#"{"m":"spawned run1.exe"}"#,
        ],
        &[r#"{"m":"service evil"}"#, r#"{"m":"run.exe"}"#],
    );
    check(
        &one_value("v|cased", "Evil*Corp?"),
        &[r#"{"v":"EvilSoftCorp1"}"#],
        &[r#"{"v":"evilSoftCorp1"}"#, r#"{"v":"EvilSoftcorp1"}"#],
    );
}

// Modifiers appendix, `re`: the value is a regular expression, so `*`,
// `?` and backslashes are the regex's, never Sigma wildcards or escapes.
#[test]
fn regex_values_are_not_wildcards() {
    check(
        &one_value("v|re", r"^a.?b\d+$"),
        &[r#"{"v":"ab1"}"#, r#"{"v":"aXb22"}"#],
        &[r#"{"v":"a??b1"}"#, r#"{"v":"AB1"}"#, r#"{"v":"ab"}"#],
    );
}

// ---------------------------------------------------------------------
// Correlation and filter examples (correlation spec, filters spec)
// ---------------------------------------------------------------------

fn build(l: Loading) -> Engine {
    let (e, errs) = Engine::build(l);
    assert!(
        errs.is_empty(),
        "{:?}",
        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    e
}

/// Runs JSON events through a session: (title of what fired, line).
fn run(e: &Engine, events: &[String]) -> Vec<(String, u64)> {
    let mut s = e.session(Limits::default());
    let mut out = Vec::new();
    for (i, j) in events.iter().enumerate() {
        let mut hits = Vec::new();
        s.process(e, &ev(j), i as u64 + 1, &mut hits);
        for h in hits {
            out.push(match h {
                Hit::Rule(r) => (e.rules()[r].rule.title.clone(), i as u64 + 1),
                Hit::Correlation(m) => (e.correlation(m.correlation).title.clone(), i as u64 + 1),
            });
        }
    }
    out
}

fn at(min: u32, sec: u32, rest: &str) -> String {
    format!(r#"{{"@timestamp":"2026-11-30T10:{min:02}:{sec:02}Z",{rest}}}"#)
}

/// Loads a fixture together with base rules written for it.
fn fixture_with(rel: &str, base_rules: &str) -> Loading {
    let mut l = load_file(rel);
    Loader::default().load_text(base_rules, Path::new("base.yml"), &mut l);
    l
}

/// (fixture, type, rules, group-by, timespan in seconds)
type Expected = (
    &'static str,
    Kind,
    &'static [&'static str],
    &'static [&'static str],
    i64,
);

// Correlation spec, "Correlation section" and "Correlation Types"; the
// repository's tests/correlation and tests/schema/correlation examples.
// Today every example whose `condition` is a map loads as a correlation
// with the type, rules, group-by, timespan and bounds it writes; the two
// `*_condition.yml` examples, which write the temporal condition as a
// string (`recon_cmd_a AND recon_cmd_b AND recon_cmd_c`, not in the 2.x
// correlation specification, whose "Condition" is "a map of exactly one
// condition criterion"), are refused as Invalid.
#[test]
fn correlation_and_filter_examples_load_as_written() {
    let expect: &[Expected] = &[
        (
            "correlation/event_count_ecs.yml",
            Kind::EventCount,
            &["5638f7c0-ac70-491d-8465-2a65075e0d86"],
            &["dns.question.name"],
            3600,
        ),
        (
            "correlation/value_avg.yml",
            Kind::ValueAvg,
            &["rule_a_id"],
            &["SourceIP", "User"],
            86400,
        ),
        (
            "correlation/value_max.yml",
            Kind::ValueMax,
            &["rule_a_id"],
            &["field1", "field2"],
            1800,
        ),
        (
            "correlation/value_min.yml",
            Kind::ValueMin,
            &["request_to_website"],
            &["domainName", "Username"],
            86400,
        ),
        (
            "correlation/value_percentile.yml",
            Kind::ValuePercentile,
            &["process_creation"],
            &["ComputerName"],
            86400,
        ),
        (
            "schema/correlation/event_count.yml",
            Kind::EventCount,
            &["5638f7c0-ac70-491d-8465-2a65075e0d86"],
            &["ComputerName"],
            3600,
        ),
        (
            "schema/correlation/temporal.yml",
            Kind::Temporal,
            &["recon_cmd_a", "recon_cmd_b", "recon_cmd_c"],
            &["ComputerName", "User"],
            300,
        ),
        (
            "schema/correlation/temporal_ordered.yml",
            Kind::TemporalOrdered,
            &["recon_cmd_a", "recon_cmd_b", "recon_cmd_c"],
            &["ComputerName", "User"],
            300,
        ),
        (
            "schema/correlation/value_count.yml",
            Kind::ValueCount,
            &["5638f7c0-ac70-491d-8465-2a65075e0d86"],
            &["ComputerName", "WorkstationName"],
            86400,
        ),
        (
            "schema/correlation/value_sum.yml",
            Kind::ValueSum,
            &["website_access"],
            &["SourceIP", "User"],
            3600,
        ),
    ];
    for &(rel, kind, rules, group_by, secs) in expect {
        let l = load_file(rel);
        assert!(l.errors.is_empty(), "{rel}: {:?}", errors(&l));
        assert!(l.rules.is_empty() && l.filters.is_empty(), "{rel}");
        assert_eq!(l.correlations.len(), 1, "{rel}");
        let c = &l.correlations[0].correlation;
        assert_eq!(c.kind, kind, "{rel}");
        assert_eq!(c.rules, rules, "{rel}");
        assert_eq!(c.group_by, group_by, "{rel}");
        assert_eq!(c.timespan, secs * 1_000_000_000, "{rel}");
    }
    let b = |rel: &str| load_file(rel).correlations[0].correlation.clone();
    assert_eq!(b("correlation/event_count_ecs.yml").bounds.gte, Some(100.0));
    let avg = b("correlation/value_avg.yml");
    assert_eq!(
        (avg.field.as_deref(), avg.bounds.gt),
        (Some("BytesOut"), Some(500.0))
    );
    let min = b("correlation/value_min.yml");
    assert_eq!(
        (min.field.as_deref(), min.bounds.lte),
        (Some("BytesOut"), Some(400.0))
    );
    let vc = b("schema/correlation/value_count.yml");
    assert_eq!(
        (vc.field.as_deref(), vc.bounds.gte),
        (Some("User"), Some(100.0))
    );
    let vs = b("schema/correlation/value_sum.yml");
    assert_eq!(
        (vs.field.as_deref(), vs.bounds.gt),
        (Some("bytes_sent"), Some(1e6))
    );

    // The spec repository's schema tests give temporal correlations a
    // boolean condition over their rules (pySigma's extended temporal
    // conditions, SEP "Condition Extension in Temporal Correlation Rules").
    for (rel, kind) in [
        ("schema/correlation/temporal_condition.yml", Kind::Temporal),
        (
            "schema/correlation/temporal_ordered_condition.yml",
            Kind::TemporalOrdered,
        ),
    ] {
        let c = b(rel);
        assert_eq!(c.kind, kind, "{rel}");
        assert_eq!(
            c.expr,
            Some(Expr::And(vec![Expr::Rule(0), Expr::Rule(1), Expr::Rule(2)])),
            "{rel}"
        );
    }

    // Filters spec, "Global filter": both examples load as filters.
    for (rel, field) in [
        ("filter/filter_1.yml", "User"),
        ("filter/filter_ecs.yml", "dns.question.name"),
    ] {
        let l = load_file(rel);
        assert!(l.errors.is_empty(), "{rel}: {:?}", errors(&l));
        assert_eq!(l.filters.len(), 1, "{rel}");
        let f = &l.filters[0].filter;
        assert_eq!(
            f.rules,
            [
                "6f3e2987-db24-4c78-a860-b4f4095a7095",
                "df0841c0-9846-4e9f-ad8a-7df91571771b"
            ],
            "{rel}"
        );
        assert_eq!(f.detection.names, ["selection"], "{rel}: {field}");
    }
}

// Filters spec, "Global filter" and its example: the filter's selection is
// applied to the named rules as AND NOT (accounts starting with `adm_`
// are tuned out of both rules), and to no other rule.
#[test]
fn correlation_and_filter_examples_filter_tunes_the_named_rules() {
    let base = r"
title: Data Compressed - rar.exe
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\rar.exe'
    condition: selection
---
title: Login on jump host
id: df0841c0-9846-4e9f-ad8a-7df91571771b
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\mstsc.exe'
    condition: selection
---
title: Unfiltered
id: 11111111-2222-4333-8444-555555555555
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\rar.exe'
    condition: selection
";
    let e = build(fixture_with("filter/filter_1.yml", base));
    let events = [
        r#"{"Image":"C:\\Program Files\\WinRAR\\rar.exe","User":"alice"}"#.to_string(),
        r#"{"Image":"C:\\Program Files\\WinRAR\\rar.exe","User":"adm_alice"}"#.to_string(),
        r#"{"Image":"C:\\Windows\\mstsc.exe","User":"ADM_bob"}"#.to_string(),
        r#"{"Image":"C:\\Windows\\mstsc.exe","User":"bob_adm_"}"#.to_string(),
    ];
    assert_eq!(
        run(&e, &events),
        [
            ("Data Compressed - rar.exe".to_string(), 1),
            ("Unfiltered".to_string(), 1),
            ("Unfiltered".to_string(), 2),
            ("Login on jump host".to_string(), 4),
        ]
    );
    // A filter naming rules that are not loaded is reported.
    let (_, errs) = Engine::build(load_file("filter/filter_ecs.yml"));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0]
            .message
            .contains("no loaded rule has the id or name `6f3e2987")
    );
}

// Correlation spec, "Event Count (event_count)" with the repository's
// tests/correlation/event_count_ecs.yml: 100 events of the referred rule
// for one `dns.question.name` within 1h match; 99 do not, nor 100 spread
// over two names.
#[test]
fn correlation_and_filter_examples_event_count_fires_at_100() {
    let base = r"
title: Failed login
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
logsource: {category: network, service: dns}
detection:
    selection:
        event.outcome: failure
    condition: selection
";
    let e = build(fixture_with("correlation/event_count_ecs.yml", base));
    let q = |name: &str, n: u32| -> Vec<String> {
        (0..n)
            .map(|i| {
                at(
                    i / 60,
                    i % 60,
                    &format!(r#""event":{{"outcome":"failure"}},"dns":{{"question":{{"name":"{name}"}}}}"#),
                )
            })
            .collect()
    };
    let hits = run(&e, &q("evil.example", 100));
    assert_eq!(hits, [("Many failed logins".to_string(), 100)]);
    assert!(run(&e, &q("evil.example", 99)).is_empty());
    let mut mixed = q("a.example", 50);
    mixed.extend(q("b.example", 50));
    assert!(run(&e, &mixed).is_empty());
}

// Correlation spec, "Temporal Proximity (temporal)" / "Ordered Temporal
// Proximity" with tests/schema/correlation/temporal*.yml: the three recon
// rules for one ComputerName and User within 5 minutes, in any order for
// `temporal`, in the listed order for `temporal_ordered`.
#[test]
fn correlation_and_filter_examples_temporal_and_ordered() {
    let base = r"
title: recon a
name: recon_cmd_a
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\whoami.exe'
    condition: selection
---
title: recon b
name: recon_cmd_b
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\net.exe'
    condition: selection
---
title: recon c
name: recon_cmd_c
logsource: {category: process_creation, product: windows}
detection:
    selection:
        Image|endswith: '\ipconfig.exe'
    condition: selection
";
    let p = |m: u32, exe: &str, user: &str| {
        at(
            m,
            0,
            &format!(
                r#""Image":"C:\\Windows\\System32\\{exe}","ComputerName":"ws1","User":"{user}""#
            ),
        )
    };
    let reversed = vec![
        p(0, "ipconfig.exe", "eve"),
        p(1, "net.exe", "eve"),
        p(2, "whoami.exe", "eve"),
    ];
    let ordered = vec![
        p(0, "whoami.exe", "eve"),
        p(1, "net.exe", "eve"),
        p(2, "ipconfig.exe", "eve"),
    ];
    let two_users = vec![
        p(0, "whoami.exe", "eve"),
        p(1, "net.exe", "bob"),
        p(2, "ipconfig.exe", "eve"),
    ];
    let too_slow = vec![
        p(0, "whoami.exe", "eve"),
        p(1, "net.exe", "eve"),
        p(6, "ipconfig.exe", "eve"),
    ];
    let corr = |hits: Vec<(String, u64)>| -> Vec<u64> {
        hits.into_iter()
            .filter(|(t, _)| t.starts_with("Recon"))
            .map(|(_, l)| l)
            .collect()
    };
    let t = build(fixture_with("schema/correlation/temporal.yml", base));
    assert_eq!(corr(run(&t, &reversed)), [3]);
    assert_eq!(corr(run(&t, &ordered)), [3]);
    assert!(corr(run(&t, &two_users)).is_empty());
    assert!(corr(run(&t, &too_slow)).is_empty());
    let o = build(fixture_with(
        "schema/correlation/temporal_ordered.yml",
        base,
    ));
    assert_eq!(corr(run(&o, &ordered)), [3]);
    assert!(corr(run(&o, &reversed)).is_empty());
    assert!(corr(run(&o, &two_users)).is_empty());
}

// Correlation spec, "Examples: Failed Logins Followed by Successful
// Login": a chain in one multi-document file, rules referred to by name;
// ten failed logins (EventID 4625 or 529) of one User then a successful
// one (4624 or 528) within 10 minutes match; nine do not; only the
// outermost correlation is reported ("Generate": referred rules are not
// reported on their own by default).
#[test]
fn correlation_and_filter_examples_failed_logins_then_success() {
    let l = load_file("specification/correlation_failed_logins_then_success.yml");
    assert!(l.errors.is_empty(), "{:?}", errors(&l));
    assert_eq!((l.rules.len(), l.correlations.len()), (2, 2));
    let e = build(l);
    let login = |sec: u32, id: u32, user: &str| {
        at(
            sec / 60,
            sec % 60,
            &format!(r#""EventID":{id},"User":"{user}""#),
        )
    };
    let mut events: Vec<String> = (0..10)
        .map(|i| login(i * 10, if i % 2 == 0 { 4625 } else { 529 }, "alice"))
        .collect();
    events.push(login(200, 4624, "bob"));
    events.push(login(210, 4624, "alice"));
    let hits = run(&e, &events);
    assert_eq!(
        hits,
        [(
            "Correlation - Multiple Failed Logins Followed by Successful Login".to_string(),
            12
        )]
    );
    // Nine failures are not "multiple" (gte: 10).
    let nine: Vec<String> = events[1..].to_vec();
    assert!(run(&e, &nine).is_empty());
}

// Correlation spec, "Temporal Proximity (temporal)": the example in the
// specification's text has `type: temporal` at the indentation of
// `correlation:`, which is not valid YAML; it is reported as such, at its
// line, not loaded half-way.
#[test]
fn correlation_and_filter_examples_malformed_temporal_example_is_a_yaml_error() {
    let l = load_text(
        "correlation:\ntype: temporal\n    rules:\n        - recon_cmd_a\n        - recon_cmd_b\n        - recon_cmd_c\n    group-by:\n        - ComputerName\n        - User\n    timespan: 5m\n",
    );
    assert!(l.rules.is_empty() && l.correlations.is_empty());
    assert_eq!(l.errors.len(), 1);
    assert_eq!(l.errors[0].kind, ErrorKind::Yaml);
    assert_eq!(l.errors[0].line, 3, "{}", l.errors[0]);
}
