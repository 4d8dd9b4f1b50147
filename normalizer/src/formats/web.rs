//! Web server and proxy access logs (nginx, Apache, ingress-nginx,
//! Werkzeug, moto). Definitions in `web.toml`; these formats only combine
//! generic steps and the ML API recognizers of `ml_api.rs`.

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

    /// The format as shipped (a dissect fast path, then the regex) gives the
    /// same event, or the same reason for refusing the line, as a copy that
    /// only has the regex, over the sample and thousands of variants of it;
    /// and the fast path alone takes the common lines and leaves the others.
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
        assert!(pats[1].contains("verify = ") && pats[1].contains("dissect = "));
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
                ],
            ),
            (1, &["alice", "-", "a\"b", "bob smith"]),
            (
                2,
                &[
                    "30/Nov/2026:23:59:59 -0800",
                    "30/Nov/2026:10:15:02",
                    "x]y",
                    "",
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
                ],
            ),
            (4, &["2000", "20", "-", "abc"]),
            (5, &["-", "00", "12345678901234567890"]),
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
            (8, &["-", "1x"]),
            (9, &["1.5.2", "-", "0"]),
            (10, &["", "a b", "ns-svc-80"]),
            (11, &["alt", "", "a b"]),
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
                ],
            ),
            (13, &["0, 214", "0 : 214", "-", ":"]),
            (14, &["0.001, 0.040", "0.001 : 0.040", "-"]),
            (15, &["502, 200", "502 : 200", "-", ":"]),
            (16, &["-", "a,b", "x y", ""]),
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
        for _ in 0..3000 {
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
            fast > 1000 && slow_ok > 500 && refused > 500,
            "{fast} {slow_ok} {refused}"
        );
        // The lines the fast path must leave to the regex.
        for l in [
            &sample.lines().nth(4).unwrap().to_string(),
            &join(&{
                let mut p = bases[0].clone();
                p[7] = "ua \\\" x".into();
                p
            }),
        ] {
            assert!(l.contains(", ") || l.contains("\\\""), "{l}");
            assert!(run("ingress.fast", l).is_err(), "{l}");
            assert!(run("ingress.regex", l).is_ok(), "{l}");
        }
    }
}
