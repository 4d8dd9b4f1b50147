//! Value modifiers (Sigma modifiers appendix 2.1.0): a detection item
//! `field|mod1|mod2: values` compiled into an [`Item`].

use base64::Engine as _;

use crate::matcher::{Cmp, Combine, FieldRef, Item, ItemKind, RefKind, TimePart, ValueMatcher};
use crate::pattern::{SigmaStr, StrMatcher, Tok};

/// Placeholder values for the `expand` modifier, by name (without `%`).
pub type Placeholders = std::collections::BTreeMap<String, Vec<String>>;

/// A rule value before it is compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

/// Values during the transformation modifiers.
#[derive(Debug, Clone)]
enum Val {
    Str(SigmaStr),
    Bytes(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
}

/// Limits that keep hostile rules bounded: values per detection item
/// after expansion (SigmaHQ's vulnerable-driver rule lists about 5,000
/// hashes), and the compiled size of one regex (the default of the
/// `regex` crate; SigmaHQ's largest needs more than 1 MiB).
pub const MAX_EXPANSION: usize = 65_536;
pub const REGEX_SIZE_LIMIT: usize = 10 << 20;
/// The longest regex text accepted: the parser's syntax tree takes about
/// 200 bytes per byte of pattern before the size limit can apply (SigmaHQ's
/// longest regex is about 600 bytes).
pub const MAX_REGEX_TEXT: usize = 64 << 10;

const KNOWN: &[&str] = &[
    "contains",
    "startswith",
    "endswith",
    "all",
    "exists",
    "cased",
    "neq",
    "windash",
    "re",
    "i",
    "m",
    "s",
    "base64",
    "base64offset",
    "utf16le",
    "wide",
    "utf16be",
    "utf16",
    "lt",
    "lte",
    "gt",
    "gte",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "cidr",
    "expand",
    "fieldref",
];

/// Compiles `field|mods: values`. `field` may be empty (keywords).
pub fn compile_item(
    field: &str,
    mods: &[&str],
    values: &[RawValue],
    placeholders: &Placeholders,
) -> Result<(Option<FieldRef>, ItemKind), String> {
    for m in mods {
        if !KNOWN.contains(m) {
            return Err(format!("unknown modifier `{m}`"));
        }
    }
    let has = |m: &str| mods.contains(&m);
    if values.is_empty() {
        return Err("an empty list of values matches nothing".into());
    }
    let field_ref = (!field.is_empty()).then(|| FieldRef::new(field));

    if has("exists") {
        if mods.len() != 1 {
            return Err("`exists` cannot be combined with other modifiers".into());
        }
        return match values {
            [RawValue::Bool(b)] => Ok((field_ref, ItemKind::Exists(*b))),
            [RawValue::Str(s)] if s == "true" || s == "false" => {
                Ok((field_ref, ItemKind::Exists(s == "true")))
            }
            _ => Err("`exists` takes one value, true or false".into()),
        };
    }
    if has("all") && values.len() < 2 {
        return Err("`all` needs a list of at least two values (modifiers appendix: single values may not use it)".into());
    }
    for sub in ["i", "m", "s"] {
        if has(sub) && !has("re") {
            return Err(format!("`{sub}` is a sub-modifier of `re`"));
        }
    }
    let is_re = has("re");
    let expand = has("expand");
    let cased = has("cased");

    // Values as Sigma strings: with `re` the text is the regex as written.
    let mut vals: Vec<Val> = values
        .iter()
        .map(|v| match v {
            RawValue::Str(s) if is_re => Val::Str(SigmaStr::literal(s)),
            RawValue::Str(s) => Val::Str(SigmaStr::parse(s, expand)),
            RawValue::Int(i) => Val::Num(*i as f64),
            RawValue::Float(f) => Val::Num(*f),
            RawValue::Bool(b) => Val::Bool(*b),
            RawValue::Null => Val::Null,
        })
        .collect();

    // Transformation modifiers, in the order written.
    for m in mods {
        vals = match *m {
            "windash" => flat(vals, |v| match v {
                Val::Str(s) => Ok(windash(&s)?.into_iter().map(Val::Str).collect()),
                other => Ok(vec![other]),
            })?,
            "base64" => flat(vals, |v| {
                Ok(vec![Val::Str(SigmaStr::literal(&b64(&bytes(&v)?)))])
            })?,
            "base64offset" => flat(vals, |v| {
                let b = bytes(&v)?;
                Ok(base64_offsets(&b)
                    .into_iter()
                    .map(|s| Val::Str(SigmaStr::literal(&s)))
                    .collect())
            })?,
            "utf16le" | "wide" => flat(vals, |v| Ok(vec![Val::Bytes(utf16(&v, false, false)?)]))?,
            "utf16be" => flat(vals, |v| Ok(vec![Val::Bytes(utf16(&v, true, false)?)]))?,
            "utf16" => flat(vals, |v| Ok(vec![Val::Bytes(utf16(&v, false, true)?)]))?,
            "contains" | "startswith" | "endswith" if !has("fieldref") => {
                flat(vals, |v| match v {
                    Val::Str(mut s) => {
                        if *m != "startswith" {
                            s.prepend_many();
                        }
                        if *m != "endswith" {
                            s.append_many();
                        }
                        Ok(vec![Val::Str(s)])
                    }
                    Val::Bytes(b) => {
                        let mut s = SigmaStr::literal(&String::from_utf8_lossy(&b));
                        if *m != "startswith" {
                            s.prepend_many();
                        }
                        if *m != "endswith" {
                            s.append_many();
                        }
                        Ok(vec![Val::Str(s)])
                    }
                    Val::Num(n) => {
                        let mut s = SigmaStr::literal(&num_text(n));
                        if *m != "startswith" {
                            s.prepend_many();
                        }
                        if *m != "endswith" {
                            s.append_many();
                        }
                        Ok(vec![Val::Str(s)])
                    }
                    _ => Err(format!("`{m}` applies to strings")),
                })?
            }
            "expand" => flat(vals, |v| match v {
                Val::Str(s) => expand_placeholders(&s, placeholders),
                other => Ok(vec![other]),
            })?,
            _ => vals,
        };
        if vals.len() > MAX_EXPANSION {
            return Err(format!(
                "the modifiers expand the values to more than {MAX_EXPANSION} alternatives"
            ));
        }
    }

    let combine = if has("neq") {
        Combine::None
    } else if has("all") {
        Combine::All
    } else {
        Combine::Any
    };

    let time_part = [
        ("minute", TimePart::Minute),
        ("hour", TimePart::Hour),
        ("day", TimePart::Day),
        ("week", TimePart::Week),
        ("month", TimePart::Month),
        ("year", TimePart::Year),
    ]
    .into_iter()
    .find(|(n, _)| has(n))
    .map(|(_, p)| p);
    let cmp = [
        ("lt", Cmp::Lt),
        ("lte", Cmp::Lte),
        ("gt", Cmp::Gt),
        ("gte", Cmp::Gte),
    ]
    .into_iter()
    .find(|(n, _)| has(n))
    .map(|(_, c)| c);

    let re_flags = |b: &mut regex::RegexBuilder| {
        b.case_insensitive(has("i"))
            .multi_line(has("m"))
            .dot_matches_new_line(has("s"))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT);
    };
    let mut out = Vec::with_capacity(vals.len());
    for v in vals {
        let m = if is_re {
            let Val::Str(s) = v else {
                return Err("`re` applies to strings".into());
            };
            let text = s.plain_text();
            if text.len() > MAX_REGEX_TEXT {
                return Err(format!(
                    "invalid regex: the pattern is {} bytes, over the limit of {MAX_REGEX_TEXT}",
                    text.len()
                ));
            }
            // The flags are also written into the pattern, so that what
            // reads the pattern back (the prefilter's literals, the
            // literal gates of a regex list) reads it as it matches: under
            // `i`, `s` also matches `ſ`, which lower-casing does not give.
            let inline: String = ["i", "m", "s"].into_iter().filter(|f| has(f)).collect();
            let pattern = if inline.is_empty() {
                text.to_string()
            } else {
                format!("(?{inline}){text}")
            };
            let mut b = regex::RegexBuilder::new(&pattern);
            re_flags(&mut b);
            ValueMatcher::Regex(b.build().map_err(|e| format!("invalid regex: {e}"))?)
        } else if has("cidr") {
            let t = match v {
                Val::Str(s) => s.plain_text(),
                _ => return Err("`cidr` applies to network strings".into()),
            };
            let net = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{t}` is not a CIDR network"))?;
            ValueMatcher::Cidr(net.trunc())
        } else if let Some(part) = time_part {
            let n = num(&v).ok_or("time modifiers compare numbers")?;
            ValueMatcher::TimePart(part, cmp.unwrap_or(Cmp::Eq), n)
        } else if let Some(c) = cmp {
            ValueMatcher::Num(c, num(&v).ok_or("`lt`/`lte`/`gt`/`gte` compare numbers")?)
        } else if has("fieldref") {
            let Val::Str(s) = v else {
                return Err("`fieldref` takes field names".into());
            };
            let kind = if has("contains") {
                RefKind::Contains
            } else if has("startswith") {
                RefKind::Prefix
            } else if has("endswith") {
                RefKind::Suffix
            } else {
                RefKind::Equal
            };
            ValueMatcher::FieldRef {
                other: FieldRef::new(&s.plain_text()),
                kind,
                cased,
            }
        } else {
            match v {
                Val::Str(s) => {
                    if s.has_placeholders() {
                        unreachable!("placeholders are only parsed with `expand`")
                    }
                    ValueMatcher::Str(StrMatcher::new(&s, cased))
                }
                Val::Bytes(b) => ValueMatcher::Str(StrMatcher::new(
                    &SigmaStr::literal(&String::from_utf8_lossy(&b)),
                    cased,
                )),
                Val::Num(n) => ValueMatcher::Num(Cmp::Eq, n),
                Val::Bool(b) => ValueMatcher::Bool(b),
                Val::Null => ValueMatcher::Null,
            }
        };
        out.push(m);
    }
    if is_re && matches!(combine, Combine::Any) && out.len() > 1 {
        // Any of several regexes: a literal gate, then the regexes whose
        // literal occurs (or one alternation that scans the text once).
        let each: Vec<regex::Regex> = out
            .drain(..)
            .filter_map(|m| match m {
                ValueMatcher::Regex(re) => Some(re),
                _ => None,
            })
            .collect();
        out = match crate::matcher::RegexList::new(each, re_flags) {
            Ok(list) => vec![ValueMatcher::Regexes(Box::new(list))],
            Err(each) => each.into_iter().map(ValueMatcher::Regex).collect(),
        };
    } else if is_re && has("i") {
        // A case-insensitive regex has no literal prefilter in the regex
        // crate (its literals in every case are too many): searched for
        // its literals first, as a list of one (`RegexList::gated`).
        for m in &mut out {
            if let ValueMatcher::Regex(re) = m
                && let Some(list) = crate::matcher::RegexList::gated(re.clone())
            {
                *m = ValueMatcher::Regexes(Box::new(list));
            }
        }
    }
    Ok((field_ref, ItemKind::Values(combine, out)))
}

/// Builds an [`Item`] for a named field.
pub fn item(
    field: &str,
    mods: &[&str],
    values: &[RawValue],
    placeholders: &Placeholders,
) -> Result<Item, String> {
    let (f, kind) = compile_item(field, mods, values, placeholders)?;
    Ok(Item {
        field: f.expect("a named field"),
        kind,
    })
}

fn flat(vals: Vec<Val>, f: impl Fn(Val) -> Result<Vec<Val>, String>) -> Result<Vec<Val>, String> {
    let mut out = Vec::with_capacity(vals.len());
    for v in vals {
        out.extend(f(v)?);
        if out.len() > MAX_EXPANSION {
            return Err(format!(
                "the modifiers expand the values to more than {MAX_EXPANSION} alternatives"
            ));
        }
    }
    Ok(out)
}

fn num_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Num(n) => Some(*n),
        Val::Str(s) => s.plain_text().trim().parse().ok(),
        _ => None,
    }
}

fn bytes(v: &Val) -> Result<Vec<u8>, String> {
    Ok(match v {
        Val::Str(s) => s.plain_text().into_bytes(),
        Val::Bytes(b) => b.clone(),
        Val::Num(n) => num_text(*n).into_bytes(),
        _ => return Err("encoding modifiers apply to strings".into()),
    })
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The three encodings of `b` at offsets 0, 1 and 2 of a larger
/// base64 text, without the characters that depend on the neighbours
/// (modifiers appendix, `base64offset`).
fn base64_offsets(b: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut padded = vec![b' '; i];
            padded.extend_from_slice(b);
            let enc = b64(&padded);
            let end_cut = END[(b.len() + i) % 3];
            let end = enc.len().saturating_sub(end_cut);
            enc.get(START[i]..end).unwrap_or("").to_string()
        })
        .collect()
}

fn utf16(v: &Val, big_endian: bool, bom: bool) -> Result<Vec<u8>, String> {
    let text = match v {
        Val::Str(s) => s.plain_text(),
        Val::Num(n) => num_text(*n),
        _ => return Err("UTF-16 modifiers apply to strings".into()),
    };
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if bom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for u in text.encode_utf16() {
        if big_endian {
            out.extend_from_slice(&u.to_be_bytes());
        } else {
            out.extend_from_slice(&u.to_le_bytes());
        }
    }
    Ok(out)
}

const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// Every variant of `s` with each option dash (a `-` or `/` that starts a
/// word, after a non-word character or at the start) replaced by each of
/// the five dash characters (modifiers appendix, `windash`).
fn windash(s: &SigmaStr) -> Result<Vec<SigmaStr>, String> {
    let mut out = vec![SigmaStr(Vec::new())];
    for t in &s.0 {
        match t {
            Tok::Lit(text) => {
                // Split the literal at option dashes.
                let chars: Vec<char> = text.chars().collect();
                let mut pieces: Vec<Vec<String>> = Vec::new();
                let mut cur = String::new();
                for (i, &c) in chars.iter().enumerate() {
                    let prev_word = i > 0 && is_word(chars[i - 1]);
                    let next_word = chars.get(i + 1).is_some_and(|&n| is_word(n));
                    if DASHES.contains(&c) && !prev_word && next_word {
                        pieces.push(vec![std::mem::take(&mut cur)]);
                        pieces.push(DASHES.iter().map(|d| d.to_string()).collect());
                    } else {
                        cur.push(c);
                    }
                }
                pieces.push(vec![cur]);
                for alts in pieces {
                    if alts.len() == 1 {
                        for o in &mut out {
                            push_lit(o, &alts[0]);
                        }
                    } else {
                        let mut next = Vec::with_capacity(out.len() * alts.len());
                        for o in &out {
                            for a in &alts {
                                let mut v = o.clone();
                                push_lit(&mut v, a);
                                next.push(v);
                            }
                        }
                        out = next;
                        if out.len() > MAX_EXPANSION {
                            return Err(format!(
                                "`windash` expands the value to more than {MAX_EXPANSION} alternatives"
                            ));
                        }
                    }
                }
            }
            other => {
                for o in &mut out {
                    o.0.push(other.clone());
                }
            }
        }
    }
    Ok(out)
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn push_lit(s: &mut SigmaStr, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Tok::Lit(last)) = s.0.last_mut() {
        last.push_str(text);
    } else {
        s.0.push(Tok::Lit(text.to_string()));
    }
}

fn expand_placeholders(s: &SigmaStr, placeholders: &Placeholders) -> Result<Vec<Val>, String> {
    let mut out = vec![SigmaStr(Vec::new())];
    for t in &s.0 {
        match t {
            Tok::Placeholder(name) => {
                let values = placeholders.get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                    format!("placeholder `%{name}%` has no configured values (the `expand` modifier needs them)")
                })?;
                let mut next = Vec::with_capacity(out.len() * values.len());
                for o in &out {
                    for v in values {
                        let mut n = o.clone();
                        // Configured values may use wildcards.
                        n.0.extend(SigmaStr::parse(v, false).0);
                        next.push(n);
                    }
                }
                out = next;
                if out.len() > MAX_EXPANSION {
                    return Err(format!(
                        "placeholders expand to more than {MAX_EXPANSION} alternatives"
                    ));
                }
            }
            other => {
                for o in &mut out {
                    o.0.push(other.clone());
                }
            }
        }
    }
    Ok(out.into_iter().map(Val::Str).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::{Event, Value};

    fn ev(pairs: &[(&str, Value)]) -> Event {
        let mut e = Event::new();
        for (k, v) in pairs {
            e.insert(*k, v.clone());
        }
        e
    }

    fn s(v: &str) -> RawValue {
        RawValue::Str(v.to_string())
    }

    fn check(field: &str, mods: &[&str], values: &[RawValue], e: &Event) -> bool {
        item(field, mods, values, &Placeholders::new())
            .unwrap()
            .matches(e)
    }

    fn cmd(c: &str) -> Event {
        ev(&[("process.command_line", Value::from(c.to_string()))])
    }

    /// A list of regexes is compiled into one alternation: it must match
    /// exactly where one of them, compiled alone, matches. Inline flags
    /// stay inside their own alternative (`(?i)` of one does not make
    /// another case-insensitive), anchors and the `m`/`s`/`i` modifiers
    /// keep their meaning.
    #[test]
    fn a_list_of_regexes_matches_as_its_members() {
        let lists: &[(&[&str], &[&str])] = &[
            (&["(?i)abc", "XYZ", "^start", "end$", "a.b"], &["re"]),
            (&["^two$", "x.y", "(?-i)CASE"], &["re", "m", "s"]),
            (&["^two$", "x.y", "(?-i)CASE"], &["re", "i"]),
        ];
        let texts = [
            "ABC",
            "abc",
            "xyz",
            "XYZ",
            "start here",
            "not start",
            "the end",
            "end not",
            "one\ntwo\nthree",
            "two",
            "x\ny",
            "xzy",
            "a\nb",
            "case",
            "CASE",
            "",
        ];
        for (pats, mods) in lists {
            let values: Vec<RawValue> = pats.iter().map(|p| s(p)).collect();
            let list = item("message", mods, &values, &Placeholders::new()).unwrap();
            let ItemKind::Values(_, ms) = &list.kind else {
                panic!("values")
            };
            assert!(
                matches!(ms.as_slice(), [ValueMatcher::Regexes(_)]),
                "one alternation for {pats:?}"
            );
            for t in texts {
                let e = ev(&[("message", Value::from(t.to_string()))]);
                let alone = pats.iter().any(|p| check("message", mods, &[s(p)], &e));
                assert_eq!(list.matches(&e), alone, "{pats:?} {mods:?} on {t:?}");
            }
        }
        // `all` keeps them apart (every one must match).
        let all = item(
            "message",
            &["re", "all"],
            &[s("a"), s("b")],
            &Placeholders::new(),
        )
        .unwrap();
        let ItemKind::Values(_, ms) = &all.kind else {
            panic!("values")
        };
        assert_eq!(ms.len(), 2);
    }

    // Modifiers appendix, generic modifiers: contains, startswith, endswith.
    #[test]
    fn contains_startswith_endswith() {
        let e = cmd("C:\\Windows\\System32\\cmd.exe /c whoami");
        assert!(check(
            "process.command_line",
            &["contains"],
            &[s("WHOAMI")],
            &e
        ));
        assert!(check(
            "process.command_line",
            &["startswith"],
            &[s("c:\\windows")],
            &e
        ));
        assert!(check(
            "process.command_line",
            &["endswith"],
            &[s("whoami")],
            &e
        ));
        assert!(!check(
            "process.command_line",
            &["endswith"],
            &[s("cmd.exe")],
            &e
        ));
        assert!(
            !check("process.command_line", &[], &[s("whoami")], &e),
            "plain is exact"
        );
    }

    // Modifiers appendix, `all`: the list is linked with AND.
    #[test]
    fn all_links_with_and() {
        let e = cmd("net user admin /add");
        let v = [s("net"), s("/add")];
        assert!(check("process.command_line", &["contains", "all"], &v, &e));
        let v = [s("net"), s("/delete")];
        assert!(!check("process.command_line", &["contains", "all"], &v, &e));
        assert!(
            check("process.command_line", &["contains"], &v, &e),
            "without all: OR"
        );
        let err = compile_item("f", &["all"], &[s("one")], &Placeholders::new()).unwrap_err();
        assert!(err.contains("at least two"), "{err}");
    }

    // Modifiers appendix, `exists`: presence only, null and empty count.
    #[test]
    fn exists() {
        let e = ev(&[("user.name", Value::Null), ("url.path", Value::from(""))]);
        assert!(check("user.name", &["exists"], &[RawValue::Bool(true)], &e));
        assert!(check("url.path", &["exists"], &[RawValue::Bool(true)], &e));
        assert!(check(
            "source.ip",
            &["exists"],
            &[RawValue::Bool(false)],
            &e
        ));
        assert!(!check(
            "source.ip",
            &["exists"],
            &[RawValue::Bool(true)],
            &e
        ));
    }

    // Modifiers appendix, `cased`.
    #[test]
    fn cased() {
        let e = cmd("Invoke-Mimikatz");
        assert!(check(
            "process.command_line",
            &["contains"],
            &[s("mimikatz")],
            &e
        ));
        assert!(!check(
            "process.command_line",
            &["contains", "cased"],
            &[s("mimikatz")],
            &e
        ));
        assert!(check(
            "process.command_line",
            &["contains", "cased"],
            &[s("Mimikatz")],
            &e
        ));
    }

    // Modifiers appendix, `neq`, for strings and numbers.
    #[test]
    fn neq() {
        let e = ev(&[
            ("user.name", Value::from("alice")),
            ("http.response.status_code", Value::Int(200)),
        ]);
        assert!(check("user.name", &["neq"], &[s("bob")], &e));
        assert!(!check("user.name", &["neq"], &[s("ALICE")], &e));
        assert!(!check("user.name", &["neq"], &[s("bob"), s("alice")], &e));
        assert!(check(
            "http.response.status_code",
            &["neq"],
            &[RawValue::Int(404)],
            &e
        ));
        assert!(!check(
            "http.response.status_code",
            &["neq"],
            &[RawValue::Int(200)],
            &e
        ));
        assert!(
            !check("source.ip", &["neq"], &[s("x")], &e),
            "an absent field is not different"
        );
    }

    // Modifiers appendix, `windash`: -, /, en dash, em dash, horizontal bar.
    #[test]
    fn windash_variants() {
        for c in [
            "ping -n 1",
            "ping /n 1",
            "ping \u{2013}n 1",
            "ping \u{2014}n 1",
            "ping \u{2015}n 1",
        ] {
            assert!(
                check(
                    "process.command_line",
                    &["windash", "contains"],
                    &[s(" -n ")],
                    &cmd(c)
                ),
                "{c}"
            );
        }
        assert!(!check(
            "process.command_line",
            &["windash", "contains"],
            &[s(" -n ")],
            &cmd("ping +n 1")
        ));
        // A dash inside a word is not an option dash.
        let vars = windash(&SigmaStr::parse("x-y -a", false)).unwrap();
        assert_eq!(vars.len(), 5);
    }

    // Modifiers appendix, `re` and its i/m/s sub-modifiers: case-sensitive by default.
    #[test]
    fn regex_and_flags() {
        let e = cmd("powershell -EncodedCommand AAAA\nsecond line");
        assert!(check(
            "process.command_line",
            &["re"],
            &[s("-Enc[a-z]+")],
            &e
        ));
        assert!(!check(
            "process.command_line",
            &["re"],
            &[s("-enc[a-z]+")],
            &e
        ));
        assert!(check(
            "process.command_line",
            &["re", "i"],
            &[s("-enc[a-z]+")],
            &e
        ));
        assert!(!check("process.command_line", &["re"], &[s("^second")], &e));
        assert!(check(
            "process.command_line",
            &["re", "m"],
            &[s("^second")],
            &e
        ));
        assert!(!check(
            "process.command_line",
            &["re"],
            &[s("AAAA.second")],
            &e
        ));
        assert!(check(
            "process.command_line",
            &["re", "s"],
            &[s("AAAA.second")],
            &e
        ));
        // Backslashes are the regex's own, not Sigma escapes.
        assert!(check(
            "process.command_line",
            &["re"],
            &[s("\\bsecond\\b")],
            &e
        ));
        let err = compile_item("f", &["re"], &[s("(")], &Placeholders::new()).unwrap_err();
        assert!(err.contains("invalid regex"), "{err}");
        // A long pattern is refused before it is parsed: a 3 MiB
        // alternation used to take 600 MiB to compile.
        let long = "a|".repeat(1_500_000) + "b";
        let err = compile_item("f", &["re"], &[s(&long)], &Placeholders::new()).unwrap_err();
        assert!(err.contains("over the limit of 65536"), "{err}");
        let huge = "(a{1000}){1000}".to_string();
        assert!(
            compile_item("f", &["re"], &[s(&huge)], &Placeholders::new()).is_err(),
            "size limit"
        );
        assert!(compile_item("f", &["i"], &[s("x")], &Placeholders::new()).is_err());
    }

    // Modifiers appendix, encoding: base64, base64offset, utf16le/wide, utf16be, utf16.
    #[test]
    fn encodings() {
        // base64('cmd') = 'Y21k'
        assert!(check(
            "message",
            &["base64"],
            &[s("cmd")],
            &ev(&[("message", "Y21k".into())])
        ));
        // base64offset finds the value at any offset of a larger encoded text.
        for prefix in ["", "a", "ab", "abc"] {
            let text = format!("{prefix}http://evil/payload and more");
            let enc = b64(text.as_bytes());
            let e = ev(&[("message", Value::from(enc.clone()))]);
            assert!(
                check(
                    "message",
                    &["base64offset", "contains"],
                    &[s("http://evil/")],
                    &e
                ),
                "offset {} in {enc}",
                prefix.len()
            );
        }
        // utf16le: 'cmd' -> 63 00 6d 00 64 00; with base64: 'YwBtAGQA'.
        let e = ev(&[("message", "xxYwBtAGQAxx".into())]);
        assert!(check(
            "message",
            &["wide", "base64", "contains"],
            &[s("cmd")],
            &e
        ));
        assert!(check(
            "message",
            &["utf16le", "base64", "contains"],
            &[s("cmd")],
            &e
        ));
        // utf16be: 00 63 00 6d 00 64 -> 'AGMAbQBk'
        let e = ev(&[("message", "AGMAbQBk".into())]);
        assert!(check("message", &["utf16be", "base64"], &[s("cmd")], &e));
        // utf16 with BOM: ff fe 63 00 6d 00 64 00 -> '//5jAG0AZAA='
        let e = ev(&[("message", "//5jAG0AZAA=".into())]);
        assert!(check("message", &["utf16", "base64"], &[s("cmd")], &e));
    }

    // Modifiers appendix, numeric modifiers.
    #[test]
    fn numeric() {
        let e = ev(&[
            ("http.response.body.bytes", Value::Int(5000)),
            ("size", "12.5".into()),
        ]);
        assert!(check(
            "http.response.body.bytes",
            &["gt"],
            &[RawValue::Int(4999)],
            &e
        ));
        assert!(!check(
            "http.response.body.bytes",
            &["gt"],
            &[RawValue::Int(5000)],
            &e
        ));
        assert!(check(
            "http.response.body.bytes",
            &["gte"],
            &[RawValue::Int(5000)],
            &e
        ));
        assert!(check(
            "http.response.body.bytes",
            &["lt"],
            &[RawValue::Int(5001)],
            &e
        ));
        assert!(check(
            "http.response.body.bytes",
            &["lte"],
            &[RawValue::Int(5000)],
            &e
        ));
        assert!(
            check("size", &["lt"], &[RawValue::Float(13.0)], &e),
            "numbers written as text"
        );
        assert!(check(
            "http.response.body.bytes",
            &[],
            &[RawValue::Int(5000)],
            &e
        ));
        assert!(check("http.response.body.bytes", &[], &[s("5000")], &e));
    }

    // Modifiers appendix, time modifiers.
    #[test]
    fn time_parts() {
        let t = schema::Timestamp::parse_rfc3339("2026-11-30T23:45:10Z").unwrap();
        let e = ev(&[("@timestamp", Value::Time(t))]);
        assert!(check("@timestamp", &["hour"], &[RawValue::Int(23)], &e));
        assert!(check("@timestamp", &["minute"], &[RawValue::Int(45)], &e));
        assert!(check("@timestamp", &["day"], &[RawValue::Int(30)], &e));
        assert!(check("@timestamp", &["month"], &[RawValue::Int(11)], &e));
        assert!(check("@timestamp", &["year"], &[RawValue::Int(2026)], &e));
        assert!(check("@timestamp", &["week"], &[RawValue::Int(49)], &e));
        assert!(check(
            "@timestamp",
            &["hour", "gte"],
            &[RawValue::Int(20)],
            &e
        ));
        assert!(!check(
            "@timestamp",
            &["hour", "lt"],
            &[RawValue::Int(6)],
            &e
        ));
    }

    // Modifiers appendix, `cidr`, IPv4 and IPv6.
    #[test]
    fn cidr() {
        let e = ev(&[("source.ip", Value::Ip("10.1.2.3".parse().unwrap()))]);
        assert!(check("source.ip", &["cidr"], &[s("10.0.0.0/8")], &e));
        assert!(!check("source.ip", &["cidr"], &[s("192.168.0.0/16")], &e));
        let e6 = ev(&[("source.ip", "2001:db8::1".into())]);
        assert!(check("source.ip", &["cidr"], &[s("2001:db8::/32")], &e6));
        assert!(!check("source.ip", &["cidr"], &[s("10.0.0.0/8")], &e6));
        assert!(compile_item("f", &["cidr"], &[s("10.0.0.0/99")], &Placeholders::new()).is_err());
    }

    // Modifiers appendix, `expand`; rules specification, "Placeholders".
    #[test]
    fn expand() {
        let mut p = Placeholders::new();
        p.insert("Admins".into(), vec!["root".into(), "adm*".into()]);
        let it = item("user.name", &["expand"], &[s("%Admins%")], &p).unwrap();
        assert!(it.matches(&ev(&[("user.name", "root".into())])));
        assert!(it.matches(&ev(&[("user.name", "administrator".into())])));
        assert!(!it.matches(&ev(&[("user.name", "alice".into())])));
        let err = compile_item("user.name", &["expand"], &[s("%Other%")], &p).unwrap_err();
        assert!(err.contains("no configured values"), "{err}");
        // Without `expand`, % is plain.
        assert!(check(
            "user.name",
            &[],
            &[s("%Admins%")],
            &ev(&[("user.name", "%admins%".into())])
        ));
    }

    // Modifiers appendix, `fieldref`, also with `neq`.
    #[test]
    fn fieldref() {
        let e = ev(&[
            ("user.name", "alice".into()),
            ("user.target.name", "ALICE".into()),
            ("x", "bob".into()),
        ]);
        assert!(check(
            "user.name",
            &["fieldref"],
            &[s("user.target.name")],
            &e
        ));
        assert!(!check("user.name", &["fieldref"], &[s("x")], &e));
        assert!(check("user.name", &["fieldref", "neq"], &[s("x")], &e));
        assert!(!check(
            "user.name",
            &["fieldref", "neq"],
            &[s("user.target.name")],
            &e
        ));
        assert!(!check(
            "user.name",
            &["fieldref", "cased"],
            &[s("user.target.name")],
            &e
        ));
    }

    // Rules specification, "Special Field Values": null and ''.
    #[test]
    fn null_and_empty() {
        let e = ev(&[("a", Value::Null), ("b", "".into()), ("c", "x".into())]);
        assert!(check("a", &[], &[RawValue::Null], &e));
        assert!(check("missing", &[], &[RawValue::Null], &e));
        assert!(!check("c", &[], &[RawValue::Null], &e));
        assert!(check("b", &[], &[s("")], &e));
        assert!(!check("c", &[], &[s("")], &e));
        assert!(!check("missing", &[], &[s("")], &e));
    }

    #[test]
    fn unknown_modifiers_are_refused() {
        let err = compile_item("f", &["contain"], &[s("x")], &Placeholders::new()).unwrap_err();
        assert!(err.contains("unknown modifier `contain`"));
    }

    #[test]
    fn arrays_match_any_element() {
        let e = ev(&[(
            "user.group.name",
            Value::Array(vec!["a".into(), "admins".into()]),
        )]);
        assert!(check("user.group.name", &[], &[s("admins")], &e));
        assert!(!check("user.group.name", &[], &[s("b")], &e));
    }
}
