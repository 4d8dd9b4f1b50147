//! Web server and proxy access logs (nginx, Apache, ingress-nginx,
//! Werkzeug, moto). Definitions in `web.toml`; these formats combine
//! generic steps and the ML API recognizers of `ml_api.rs`, and
//! `nginx.ingress` splits its common lines with `split_ingress`.

use crate::dissect::Span;

/// Capture names of the `nginx_ingress` splitter: the groups of the
/// format's regex, in order.
pub(crate) const INGRESS_NAMES: &[&str] = &[
    "_client",
    "user__name",
    "_ts",
    "_request",
    "http__response__status_code",
    "http__response__body__bytes",
    "http__request__referrer",
    "user_agent__original",
    "http__request__bytes",
    "_rt",
    "up_name",
    "up_alt",
    "up_addr",
    "up_len",
    "up_time",
    "up_status",
    "http__request__id",
];

/// Classes of the ingress regex on ASCII bytes, one bit each.
const NONWS: u8 = 1; // `\S` (`u8::is_ascii_whitespace` leaves out `\x0b`)
const DIGIT: u8 = 2; // `\d`
const RT: u8 = 4; // `[\d.]`
const ELEMENT: u8 = 8; // `[^\s,]`

static CLASSES: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut c = 0;
    while c < 128 {
        let ws = matches!(c as u8, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
        if !ws {
            t[c] |= NONWS;
            if c as u8 != b',' {
                t[c] |= ELEMENT;
            }
        }
        if (c as u8).is_ascii_digit() {
            t[c] |= DIGIT | RT;
        }
        if c as u8 == b'.' {
            t[c] |= RT;
        }
        c += 1;
    }
    t
};

/// The end of the run of bytes of `class` from `pos` (ASCII text).
#[inline]
fn run(b: &[u8], mut pos: usize, class: u8) -> usize {
    while pos < b.len() && CLASSES[(b[pos] & 0x7f) as usize] & class != 0 {
        pos += 1;
    }
    pos
}

/// The end of a run of at least one byte of `class` from `pos`.
#[inline]
fn run1(b: &[u8], pos: usize, class: u8) -> Option<usize> {
    let end = run(b, pos, class);
    (end > pos).then_some(end)
}

/// Where `lit` ends when it starts at `pos` (compared as an array: no
/// `memcmp` call for a few bytes).
#[inline(always)]
fn lit<const N: usize>(b: &[u8], pos: usize, lit: &[u8; N]) -> Option<usize> {
    let end = pos + N;
    (b.get(pos..end)? == lit).then_some(end)
}

/// `[^\]]*` from `pos`: up to the next `]`.
#[inline]
fn bracket(b: &[u8], pos: usize) -> Option<usize> {
    Some(pos + memchr::memchr(b']', &b[pos..])?)
}

/// `(?:[^"\\]|\\.)*` from `pos`: up to the first `"` no `\` escapes (`.` is
/// any character but `\n`).
#[inline]
fn quoted(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += memchr::memchr2(b'"', b'\\', &b[pos..])?;
        if b[pos] == b'"' {
            return Some(pos);
        }
        match b.get(pos + 1) {
            Some(&c) if c != b'\n' => pos += 2,
            _ => return None,
        }
    }
}

/// `[^\s,]+(?:(?:, | : )[^\s,]+)*` from `pos`, without ` : ` joins.
#[inline]
fn list(b: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos = run1(b, pos, ELEMENT)?;
        if b.get(pos) == Some(&b',') && b.get(pos + 1) == Some(&b' ') {
            pos += 2;
        } else {
            return Some(pos);
        }
    }
}

/// Splits an ingress-nginx line as the regex of `nginx.ingress` in
/// `web.toml` does, or returns false; `spans[i]` is the span of group `i`
/// of [`INGRESS_NAMES`]. It takes ASCII lines only (where `\S`, `\s` and
/// `\d` are ASCII classes), and, of those, exactly the ones the regex
/// matches with no ` : ` between the elements of an upstream list.
///
/// Such a match is the regex's only one, and the one found here. Up to the
/// upstream fields each group has a single way to match: a class
/// repetition ends where its class does, since the text after it in the
/// regex starts with a byte out of the class (`\d{3}` is a run of exactly
/// three digits); a quoted field ends at the first `"` that no `\` escapes.
/// In the upstream fields, cut the text at its spaces into words, and join
/// the words that a `, ` separates (a word ending in `,` can only go on
/// with the next one, the elements holding no `,`): call these units. Four
/// lists and the request id are five units when no ` : ` joins elements,
/// the split taken here; each ` : ` join merges three units (an element, a
/// `:` word, an element) into one, so the line of a match with `n` joins
/// has `5 + 2n` units: not this line. Lines whose lists are joined by
/// ` : ` are left to the regex.
pub(crate) fn split_ingress(line: &str, spans: &mut Vec<Option<Span>>) -> bool {
    spans.clear();
    if !line.is_ascii() {
        return false;
    }
    split_ascii(line.as_bytes(), spans).is_some()
}

fn split_ascii(b: &[u8], spans: &mut Vec<Option<Span>>) -> Option<()> {
    // _client, user
    let e = run1(b, 0, NONWS)?;
    spans.push(Some((0, e)));
    let mut pos = lit(b, e, b" - ")?;
    let e = run1(b, pos, NONWS)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b" [")?;
    // _ts (`[^\]]+`)
    let e = bracket(b, pos).filter(|&e| e > pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"] \"")?;
    // _request
    let e = quoted(b, pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"\" ")?;
    // status (`\d{3}`), bytes
    let e = run(b, pos, DIGIT);
    if e - pos != 3 {
        return None;
    }
    spans.push(Some((pos, e)));
    pos = lit(b, e, b" ")?;
    let e = run1(b, pos, DIGIT)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b" \"")?;
    // referrer, user agent
    let e = quoted(b, pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"\" \"")?;
    let e = quoted(b, pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"\" ")?;
    // request bytes, _rt
    let e = run1(b, pos, DIGIT)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b" ")?;
    let e = run1(b, pos, RT)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b" [")?;
    // up_name, up_alt
    let e = bracket(b, pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"] [")?;
    let e = bracket(b, pos)?;
    spans.push(Some((pos, e)));
    pos = lit(b, e, b"] ")?;
    // Four upstream lists, each followed by one space.
    for _ in 0..4 {
        let e = list(b, pos)?;
        spans.push(Some((pos, e)));
        pos = lit(b, e, b" ")?;
    }
    // The request id, to the end.
    let e = run1(b, pos, NONWS)?;
    spans.push(Some((pos, e)));
    (e == b.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn combined_and_common() {
        let e = parse("combined", r#"203.0.113.9 - - [30/Nov/2026:10:15:02 +0100] "POST /api/2.0/mlflow/users/create HTTP/1.1" 200 54 "-" "curl/8.5.0""#).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T09:15:02Z");
        assert_eq!(text(&e, "mlops.component"), "mlflow");
        assert_eq!(text(&e, "mlops.api"), "users/create");
        assert_eq!(text(&e, "event.dataset"), "http.access");
        assert!(e.get("http.request.referrer").is_none(), "`-` is absent");
        let e = parse("combined", r#"10.0.0.1 - - [30/Nov/2026:10:15:02 +0000] "GET /x HTTP/1.1" 200 1 "-" "UA" "203.0.113.4, 10.0.0.1""#).unwrap();
        assert_eq!(text(&e, "client.address"), "203.0.113.4");
        assert_eq!(text(&e, "client.ip"), "203.0.113.4");
        assert!(e.get("client.domain").is_none());
        let e = parse(
            "combined",
            r#"10.0.0.1 - - [30/Nov/2026:10:15:02 +0000] "\x16\x03\x01\x02\x00" 400 157 "-" "-""#,
        )
        .unwrap();
        assert_eq!(text(&e, "http.request.line"), r"\x16\x03\x01\x02\x00");
        let e = parse("common", r#"10.0.4.21 - jane [30/Nov/2026:10:15:02 +0000] "GET /predictions/fraud HTTP/1.1" 200 512"#).unwrap();
        assert_eq!(text(&e, "mlops.component"), "torchserve");
        assert_eq!(text(&e, "user.name"), "jane");
        assert!(
            parse(
                "common",
                r#"10.0.4.21 - jane [30/Nov/2026:10:15:02 +0000] "GET / HTTP/1.1" 200 5x"#
            )
            .is_err()
        );
        assert!(
            parse(
                "combined",
                r#"10.0.4.21 - jane [30/Nov/2026:10:15:02] "GET / HTTP/1.1" 200 5 "-" "-""#
            )
            .is_err(),
            "no zone"
        );
    }

    #[test]
    fn ingress_and_moto() {
        let e = parse("nginx.ingress", r#"10.244.0.1 - - [30/Nov/2026:10:15:02 +0000] "POST /v1/models/fraud:predict HTTP/1.1" 200 52 "-" "python-requests/2.32.3" 311 0.012 [kserve-fraud-predictor-80] [] 10.244.1.17:8080 52 0.011 200 5f1c3e5b"#).unwrap();
        assert_eq!(text(&e, "mlops.model.name"), "fraud");
        assert_eq!(text(&e, "mlops.component"), "kserve");
        assert_eq!(text(&e, "event.duration"), "12000000");
        assert_eq!(text(&e, "http.request.bytes"), "311");
        assert_eq!(
            text(&e, "nginx_ingress_controller.upstream.name"),
            "kserve-fraud-predictor-80"
        );
        let e = parse("moto", "127.0.0.1 - - [30/Nov/2026 00:41:33] \"\u{1b}[31m\u{1b}[1mGET /ml-models/fraud/model.pkl HTTP/1.1\u{1b}[0m\" 403 -").unwrap();
        assert_eq!(text(&e, "aws.s3.bucket.name"), "ml-models");
        assert_eq!(text(&e, "http.response.status_code"), "403");
        assert!(
            text(&e, "event.original").contains('\u{1b}'),
            "the original keeps the colour codes"
        );
    }

    /// The format as shipped (the splitter, then the regex) gives the same
    /// event, or the same reason for refusing the line, as a copy that only
    /// has the regex, over the sample and thousands of variants of it; and
    /// the splitter alone gives the regex's event for every line it takes,
    /// takes the common lines and leaves the others.
    #[test]
    fn ingress_fast_path_is_the_regex() {
        use crate::format::{Registry, Scratch};
        use crate::timestamp::{TimeContext, Zone};
        use schema::{Event, Str};

        let web = crate::formats::BUILTIN
            .iter()
            .find(|(o, _)| o.ends_with("web.toml"))
            .expect("web.toml")
            .1;
        // The first [[format]] block is nginx.ingress.
        let start = web.find("[[format]]").expect("a format");
        let end = start
            + 1
            + web[start + 1..]
                .find("\n[[format]]")
                .expect("a second format");
        let block = &web[start..end];
        assert!(block.contains("name = \"nginx.ingress\""), "{block}");
        let pats: Vec<&str> = block.split("[[format.pattern]]").collect();
        assert_eq!(pats.len(), 3, "head, fast path, regex");
        assert!(pats[1].contains("split = "));
        assert!(pats[2].contains("regex = ") && !pats[2].contains("verify"));
        let copy = |name: &str, keep: &str| {
            format!(
                "{}[[format.pattern]]{keep}",
                pats[0].replace("name = \"nginx.ingress\"", &format!("name = \"{name}\""))
            )
            .replace("priority = 30", "priority = 30\nauto = false")
        };
        let user = vec![
            (
                "regex-only.toml".to_string(),
                copy("ingress.regex", pats[2]),
            ),
            ("fast-only.toml".to_string(), copy("ingress.fast", pats[1])),
        ];
        let reg = Registry::load(&user).expect("the copies compile");
        let time = TimeContext {
            zone: Zone::Utc,
            reference: schema::Timestamp::from_civil(2026, 11, 30, 12, 0, 0, 0).unwrap(),
        };
        let run = |format: &str, line: &str| -> Result<Vec<String>, String> {
            let mut out: Vec<Event> = Vec::new();
            reg.get(format)
                .expect("format")
                .parse(
                    &reg,
                    &Str::from(line),
                    &time,
                    &mut Scratch::default(),
                    0,
                    &mut out,
                )
                .map_err(|r| r.0.into_owned())?;
            Ok(out
                .iter()
                .map(|e| format!("{:?} {}", e.iter().collect::<Vec<_>>(), e.to_json_string()))
                .collect())
        };

        // Split the sample lines into their 17 fields with the regex.
        let re_text = pats[2]
            .lines()
            .find_map(|l| l.strip_prefix("regex = '"))
            .and_then(|l| l.strip_suffix('\''))
            .expect("the regex line");
        let re = regex::Regex::new(re_text).unwrap();
        let sample = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../samples/handwritten/nginx/ingress.log"),
        )
        .unwrap();
        let bases: Vec<Vec<String>> = sample
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let c = re.captures(l).unwrap_or_else(|| panic!("sample line: {l}"));
                (1..=17).map(|i| c[i].to_string()).collect()
            })
            .collect();
        assert!(bases.len() >= 10);
        let join = |p: &[String]| {
            format!(
                "{} - {} [{}] \"{}\" {} {} \"{}\" \"{}\" {} {} [{}] [{}] {} {} {} {} {}",
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                p[5],
                p[6],
                p[7],
                p[8],
                p[9],
                p[10],
                p[11],
                p[12],
                p[13],
                p[14],
                p[15],
                p[16]
            )
        };
        // Values to put in each field (index), valid or not for the regex.
        let variants: &[(usize, &[&str])] = &[
            (
                0,
                &[
                    "2001:db8::7",
                    "::1",
                    "fe80::1%eth0",
                    "-",
                    "10.0.0.1,10.0.0.2",
                    "a\\b",
                    "a\tb",
                    "a\u{b}b",
                    "ä",
                    "",
                ],
            ),
            (1, &["alice", "-", "a\"b", "bob smith", "a\x0cb", "\u{a0}"]),
            (
                2,
                &[
                    "30/Nov/2026:23:59:59 -0800",
                    "30/Nov/2026:10:15:02",
                    "x]y",
                    "",
                    "30/Nov/2026:10:15:02 +0000\" \"x",
                    "\n",
                ],
            ),
            (
                3,
                &[
                    "GET /a\\\"b\\\" HTTP/1.1",
                    "GET /q?x=\\\" \\\" HTTP/1.1",
                    "GET /a\"b HTTP/1.1",
                    "GET /a\\\\ HTTP/1.1",
                    "\\x16\\x03\\x01",
                    "",
                    "-",
                    "GET /é HTTP/1.1",
                    "GET /a\" 200 1 \"b HTTP/1.1",
                    // A trailing backslash escapes the closing quote.
                    "GET /a\\",
                    "GET /a\\\nb HTTP/1.1",
                    "GET /a\nb HTTP/1.1",
                    "GET /a\tb HTTP/1.1",
                    "\\\\\\\"",
                ],
            ),
            (4, &["2000", "20", "-", "abc", "\u{663}00", "2 0"]),
            (5, &["-", "00", "12345678901234567890", "1 2", "\u{661}"]),
            (6, &["https://x/\\\" \\\"y", "a\"b", "\\\\", "", "ref\\"]),
            (
                7,
                &[
                    "Mozilla/5.0 \\\"quoted\\\" (x)",
                    "ua \\\" \" ua",
                    "ua\" \"ua",
                    "",
                    "curl/8 \\\\",
                    "ua\\",
                ],
            ),
            (8, &["-", "1x", "", "\u{661}"]),
            (9, &["1.5.2", "-", "0", ".", "", "1 .2", "1\u{661}"]),
            (10, &["", "a b", "ns-svc-80", "a] [b", "\u{e9}"]),
            (11, &["alt", "", "a b", "a] b"]),
            (
                12,
                &[
                    "10.0.0.1:80, 10.0.0.2:80",
                    "10.0.0.1:80 : 10.0.0.2:80",
                    "10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80",
                    "-",
                    "[2001:db8::1]:8080",
                    "a,b",
                    ":",
                    "a, b, c",
                    "a, b : c, d",
                    "a,",
                    ", a",
                    "a ,b",
                    "a,  b",
                    "a, ,b",
                    "a :b",
                    "a: b",
                    "a\tb",
                    "a,\tb",
                    "",
                    "\u{e9}, b",
                ],
            ),
            (
                13,
                &["0, 214", "0 : 214", "-", ":", "0, 1, 2", "0,", "", "0 214"],
            ),
            (
                14,
                &[
                    "0.001, 0.040",
                    "0.001 : 0.040",
                    "-",
                    "0.1, 0.2, 0.3",
                    ", 1",
                    "a\u{b}",
                ],
            ),
            (
                15,
                &[
                    "502, 200",
                    "502 : 200",
                    "-",
                    ":",
                    "502, 502, 200",
                    "5,0",
                    "5 :",
                ],
            ),
            (16, &["-", "a,b", "x y", "", "a, b", ":", "a\t", "\u{e9}"]),
        ];
        let mut lines: Vec<String> = sample.lines().map(str::to_owned).collect();
        for base in &bases {
            for (field, values) in variants {
                for v in *values {
                    let mut p = base.clone();
                    p[*field] = v.to_string();
                    lines.push(join(&p));
                }
            }
        }
        // Random combinations of several changes (a fixed LCG).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for _ in 0..6000 {
            let mut p = bases[next(bases.len())].clone();
            for _ in 0..1 + next(4) {
                let (field, values) = variants[next(variants.len())];
                p[field] = values[next(values.len())].to_string();
            }
            lines.push(join(&p));
        }
        // Extra spaces and cut lines.
        for base in &bases {
            let l = join(base);
            lines.push(format!("{l} "));
            lines.push(format!(" {l}"));
            lines.push(l.replace("] [", "]  ["));
            lines.push(l[..l.len() - 5].to_string());
        }

        let (mut fast, mut slow_ok, mut refused) = (0, 0, 0);
        for l in &lines {
            let want = run("ingress.regex", l);
            assert_eq!(run("nginx.ingress", l), want, "shipped vs regex only: {l}");
            match run("ingress.fast", l) {
                Ok(got) => {
                    assert_eq!(Ok(&got), want.as_ref(), "fast path vs regex only: {l}");
                    fast += 1;
                }
                Err(_) if want.is_ok() => slow_ok += 1,
                Err(_) => refused += 1,
            }
        }
        // The comparison covers all three cases, often.
        assert!(
            fast > 1500 && slow_ok > 300 && refused > 2000,
            "{fast} {slow_ok} {refused}"
        );
        // The splitter takes every sample line, upstream lists and escaped
        // quotes included.
        for l in sample
            .lines()
            .filter(|l| !l.trim().is_empty())
            .chain([join(&{
                let mut p = bases[0].clone();
                p[7] = "ua \\\" x".into();
                p
            })
            .as_str()])
        {
            assert!(run("ingress.fast", l).is_ok(), "{l}");
        }
        // The lines it must leave to the regex: upstream lists joined by
        // ` : `, text that is not ASCII.
        for (field, value) in [(12, "10.0.0.1:80 : 10.0.0.2:80"), (7, "ua \u{e9}")] {
            let l = join(&{
                let mut p = bases[0].clone();
                p[field] = value.into();
                p
            });
            assert!(run("ingress.fast", &l).is_err(), "{l}");
            assert!(run("ingress.regex", &l).is_ok(), "{l}");
        }
    }
}
