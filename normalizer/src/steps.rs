//! Enrichment steps: small, named operations that derive ECS fields from
//! captures, listed in a format's `enrich`. Generic steps take arguments
//! (`addr(_client)`); component steps (`mlflow`, `ray`, `k8s_audit`, ...)
//! live beside their formats in `formats/` and read the event's fields.
//!
//! A step may reject a record (the pattern then counts as not matching);
//! a step whose inputs are absent does nothing.

use std::borrow::Cow;

use schema::{FieldId, FieldKey, Str, Value, f};

use crate::convert::parse_ip;
use crate::format::Ctx;
use crate::scan;

/// Why a record does not match a format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject(pub Cow<'static, str>);

impl Reject {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Reject {
        Reject(reason.into())
    }
}

/// A component enrichment step.
pub struct NamedStep {
    pub name: &'static str,
    /// One line for `mlsoc formats --steps` and the docs.
    pub doc: &'static str,
    /// Event paths inside kept JSON documents the step reads, so JSON
    /// formats extract them up front instead of parsing whole documents.
    pub paths: &'static [&'static str],
    /// Members the step looks for anywhere below a path of a kept JSON
    /// document (path, member names): collected in the extraction pass
    /// instead of a second pass over the document (see `RawJson::hits`).
    pub find: Option<(&'static str, &'static [&'static str])>,
    pub run: fn(&mut Ctx<'_>) -> Result<(), Reject>,
}

impl std::fmt::Debug for NamedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Where a step reads its input: a capture that is not kept (`_name`) or a
/// field of the event.
#[derive(Debug, Clone)]
pub enum Src {
    Temp(usize),
    Field(FieldKey),
}

#[derive(Debug, Clone)]
pub enum Step {
    Addr {
        from: Src,
        address: FieldId,
        ip: FieldId,
        port: FieldId,
        domain: FieldId,
    },
    RequestLine {
        from: Src,
    },
    Url,
    HttpOutcome,
    Level {
        from: Src,
    },
    TypeByLevel,
    Duration {
        from: Src,
        nanos_per_unit: f64,
    },
    Named(&'static NamedStep),
}

/// Generic steps, for docs and error messages.
pub const GENERIC_STEPS: &[(&str, &str)] = &[
    (
        "addr(SRC[, source|destination|client|server])",
        "split `host:port`, `[v6]:port` or `/ip:port` (the first of a comma-separated list) into <side>.address/.ip/.port (default side: source)",
    ),
    (
        "request_line(SRC)",
        "split `METHOD TARGET HTTP/x.y` into http.request.method, url.original, http.version (else http.request.line)",
    ),
    (
        "url",
        "split url.original into url.path, url.query, url.fragment, url.extension (and scheme/domain/port for absolute URLs)",
    ),
    (
        "http_outcome",
        "event.outcome from http.response.status_code: success below 400, failure from 400",
    ),
    (
        "level(SRC)",
        "log.level, lower-cased; one-letter levels spelled out (I -> info, W -> warning, ...)",
    ),
    (
        "type_by_level",
        "event.type [error] for error/critical/fatal levels, else [info] (when not set)",
    ),
    (
        "duration(SRC, ns|us|ms|s)",
        "event.duration in nanoseconds from a number in the given unit",
    ),
];

pub(crate) fn compile_step(
    text: &str,
    temps: &mut Vec<String>,
    named: &'static [&'static NamedStep],
) -> Result<Step, String> {
    let (name, args) = match text.find('(') {
        Some(i) => {
            let Some(inner) = text[i + 1..].strip_suffix(')') else {
                return Err(format!("enrichment step `{text}`: missing `)`"));
            };
            (
                text[..i].trim(),
                inner
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>(),
            )
        }
        None => (text.trim(), Vec::new()),
    };
    let src = |i: usize, temps: &mut Vec<String>| -> Result<Src, String> {
        let a = args
            .get(i)
            .ok_or_else(|| format!("enrichment step `{text}` needs an argument"))?;
        Ok(source(a, temps))
    };
    let no_args = |step: Step| -> Result<Step, String> {
        if args.is_empty() {
            Ok(step)
        } else {
            Err(format!("enrichment step `{name}` takes no arguments"))
        }
    };
    match name {
        "addr" => {
            let side = args.get(1).copied().unwrap_or("source");
            if !["source", "destination", "client", "server"].contains(&side) {
                return Err(format!(
                    "addr: side must be source, destination, client or server, not `{side}`"
                ));
            }
            let id =
                |leaf: &str| FieldId::lookup(&format!("{side}.{leaf}")).expect("ECS side fields");
            Ok(Step::Addr {
                from: src(0, temps)?,
                address: id("address"),
                ip: id("ip"),
                port: id("port"),
                domain: id("domain"),
            })
        }
        "request_line" => Ok(Step::RequestLine {
            from: src(0, temps)?,
        }),
        "url" => no_args(Step::Url),
        "http_outcome" => no_args(Step::HttpOutcome),
        "level" => Ok(Step::Level {
            from: src(0, temps)?,
        }),
        "type_by_level" => no_args(Step::TypeByLevel),
        "duration" => {
            let unit = match args.get(1).copied().unwrap_or("ms") {
                "ns" => 1.0,
                "us" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                other => {
                    return Err(format!(
                        "duration: unit must be ns, us, ms or s, not `{other}`"
                    ));
                }
            };
            Ok(Step::Duration {
                from: src(0, temps)?,
                nanos_per_unit: unit,
            })
        }
        other => match named.iter().find(|s| s.name == other) {
            Some(step) => no_args(Step::Named(step)),
            None => {
                let mut known: Vec<&str> = GENERIC_STEPS
                    .iter()
                    .map(|(n, _)| n.split('(').next().unwrap())
                    .collect();
                known.extend(named.iter().map(|s| s.name));
                Err(format!(
                    "unknown enrichment step `{other}` (known: {})",
                    known.join(", ")
                ))
            }
        },
    }
}

/// `_name` is a capture that is not kept; anything else is a field path.
pub(crate) fn source(name: &str, temps: &mut Vec<String>) -> Src {
    if name.starts_with('_') {
        let i = match temps.iter().position(|t| t == name) {
            Some(i) => i,
            None => {
                temps.push(name.to_string());
                temps.len() - 1
            }
        };
        Src::Temp(i)
    } else {
        Src::Field(crate::format::format_key(name))
    }
}

impl Step {
    pub(crate) fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), Reject> {
        match self {
            Step::Addr {
                from,
                address,
                ip,
                port,
                domain,
            } => {
                ctx.with_src(from, |ctx, base, s| {
                    addr(ctx, base, s, *address, *ip, *port, *domain)
                });
                Ok(())
            }
            Step::RequestLine { from } => {
                ctx.with_src(from, request_line);
                Ok(())
            }
            Step::Url => {
                // Usually set by the request-line step just before.
                if let Some(Value::Str(s)) = ctx.event.get_id_recent(f::URL_ORIGINAL) {
                    let s = s.clone();
                    split_url(ctx, &s);
                }
                Ok(())
            }
            Step::HttpOutcome => {
                if let Some(code) = ctx.event.get_i64(f::HTTP_RESPONSE_STATUS_CODE) {
                    ctx.event.set_default(
                        f::EVENT_OUTCOME,
                        if code < 400 { "success" } else { "failure" },
                    );
                }
                Ok(())
            }
            Step::Level { from } => {
                ctx.with_src(from, |ctx, _, s| {
                    let level = normalize_level(s);
                    if !level.is_empty() {
                        ctx.event.set(f::LOG_LEVEL, level);
                    }
                });
                Ok(())
            }
            Step::TypeByLevel => {
                if ctx.event.get_id(f::EVENT_TYPE).is_none() {
                    let error = matches!(
                        ctx.event.get_str(f::LOG_LEVEL),
                        Some(
                            "error"
                                | "err"
                                | "critical"
                                | "crit"
                                | "fatal"
                                | "alert"
                                | "emerg"
                                | "emergency"
                                | "severe"
                        )
                    );
                    ctx.event.set(
                        f::EVENT_TYPE,
                        schema::value::str_array(if error { &["error"] } else { &["info"] }),
                    );
                }
                Ok(())
            }
            Step::Duration {
                from,
                nanos_per_unit,
            } => {
                if let Some(n) = ctx.with_src(from, |_, _, s| s.trim().parse::<f64>()) {
                    let n = n.map_err(|_| Reject::new("duration is not a number"))?;
                    if n.is_finite() && n >= 0.0 {
                        ctx.event
                            .set(f::EVENT_DURATION, (n * nanos_per_unit).round() as i64);
                    }
                }
                Ok(())
            }
            Step::Named(step) => (step.run)(ctx),
        }
    }
}

/// Splits `host:port` forms into address/ip/port/domain fields (`s` lies
/// in `base`).
fn addr(
    ctx: &mut Ctx<'_>,
    base: &Str,
    s: &str,
    address: FieldId,
    ip_id: FieldId,
    port_id: FieldId,
    domain: FieldId,
) {
    // A list (X-Forwarded-For: "client, proxy1, proxy2") names the client first.
    let first = match scan::find(b',', s.as_bytes()) {
        Some(i) => &s[..i],
        None => s,
    }
    .trim();
    let t = first.trim_start_matches('/');
    if t.is_empty() || t == "-" {
        return;
    }
    // Fast path, the common `a.b.c.d:port`.
    if let Some(i) = scan::rfind(b':', t.as_bytes())
        && let (h, p) = (&t[..i], &t[i + 1..])
        && let (Some(ip), Ok(port)) = (parse_ipv4(h.as_bytes()), p.parse::<u16>())
    {
        ctx.event.set(ip_id, std::net::IpAddr::V4(ip));
        ctx.event.set_slice(address, base, h);
        ctx.event.set(port_id, port as i64);
        return;
    }
    let (host, port) = if let Some(ip) = parse_ipv4(t.as_bytes())
        .map(std::net::IpAddr::V4)
        .or_else(|| parse_ip(t))
    {
        ctx.event.set(ip_id, ip);
        (t, None)
    } else if let Some((h, p)) = t.rsplit_once(':') {
        match (parse_ip(h), p.parse::<u16>()) {
            (Some(ip), Ok(port)) => {
                ctx.event.set(ip_id, ip);
                (h.trim_start_matches('[').trim_end_matches(']'), Some(port))
            }
            (None, Ok(port)) if !h.contains(':') && !h.is_empty() => {
                ctx.event.set_slice(domain, base, h);
                (h, Some(port))
            }
            _ => (t, None),
        }
    } else {
        ctx.event.set_slice(domain, base, t);
        (t, None)
    };
    ctx.event.set_slice(address, base, host);
    if let Some(p) = port {
        ctx.event.set(port_id, p as i64);
    }
}

/// A dotted-quad IPv4 address, read as `Ipv4Addr::from_str` reads it (1 to
/// 3 digits per octet, no leading zeros, at most 255) without its general
/// parser, which cost a fifth of the `addr` step.
fn parse_ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, octet) in octets.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while i < s.len() && i - start < 3 && s[i].is_ascii_digit() {
            v = v * 10 + (s[i] - b'0') as u32;
            i += 1;
        }
        if i == start || (s[start] == b'0' && i - start > 1) || v > 255 {
            return None;
        }
        *octet = v as u8;
    }
    (i == s.len()).then_some(std::net::Ipv4Addr::from(octets))
}

/// Splits a request line (`line` lies in `base`).
fn request_line(ctx: &mut Ctx<'_>, base: &Str, line: &str) {
    let parsed = (|| {
        let (method, rest) = scan::split_once(line, b' ')?;
        if method.is_empty()
            || !method
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c == b'-' || c == b'_')
        {
            return None;
        }
        let (target, version) = match scan::rsplit_once(rest, b' ') {
            Some((t, p)) if p.starts_with("HTTP/") => (t, Some(&p[5..])),
            _ if !rest.contains(' ') => (rest, None),
            _ => return None,
        };
        if target.is_empty() {
            return None;
        }
        Some((method, target, version))
    })();
    match parsed {
        Some((method, target, version)) => {
            ctx.event.set_slice(f::HTTP_REQUEST_METHOD, base, method);
            ctx.event.set_slice(f::URL_ORIGINAL, base, target);
            if let Some(v) = version.filter(|v| !v.is_empty()) {
                ctx.event.set_slice(f::HTTP_VERSION, base, v);
            }
        }
        None if !line.is_empty() && line != "-" => {
            ctx.event.set_slice(f::HTTP_REQUEST_LINE, base, line)
        }
        None => {}
    }
}

/// Splits a request target or URL into ECS url.* fields. Values are kept as
/// logged (not percent-decoded): detections see what the client sent.
pub(crate) fn split_url(ctx: &mut Ctx<'_>, s: &Str) {
    let mut rest: &str = s;
    // One scan finds the query or the fragment, whichever comes first (a
    // `?` after the `#` is part of the fragment).
    let (query, fragment) = match scan::find2(b'#', b'?', rest.as_bytes()) {
        None => (None, None),
        Some(i) if rest.as_bytes()[i] == b'#' => (None, Some(i)),
        Some(i) => (
            Some(i),
            scan::find(b'#', &rest.as_bytes()[i + 1..]).map(|j| i + 1 + j),
        ),
    };
    if let Some(i) = fragment {
        let frag = &rest[i + 1..];
        if !frag.is_empty() {
            ctx.event.set_slice(f::URL_FRAGMENT, s, frag);
        }
        rest = &rest[..i];
    }
    if let Some(i) = query {
        let q = &rest[i + 1..];
        if !q.is_empty() {
            ctx.event.set_slice(f::URL_QUERY, s, q);
        }
        rest = &rest[..i];
    }
    // Origin-form targets ("/path") are the common case; only others can be absolute URLs.
    let absolute = if rest.starts_with('/') {
        None
    } else {
        rest.find("://")
    };
    if let Some(scheme_end) = absolute.filter(|&i| {
        i > 0
            && rest[..i]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
    }) {
        ctx.event
            .set(f::URL_SCHEME, s.slice_ref(&rest[..scheme_end]));
        let after = &rest[scheme_end + 3..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p))
                if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) && !h.ends_with(':') =>
            {
                (h, p.parse::<u16>().ok())
            }
            _ => (hostport, None),
        };
        if !host.is_empty() {
            ctx.event.set_slice(f::URL_DOMAIN, s, host);
        }
        if let Some(p) = port {
            ctx.event.set(f::URL_PORT, p as i64);
        }
        rest = path;
    }
    if !rest.is_empty() {
        ctx.event.set_slice(f::URL_PATH, s, rest);
        let last = match scan::rfind(b'/', rest.as_bytes()) {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        if let Some(dot) = scan::rfind(b'.', last.as_bytes()) {
            let ext = &last[dot + 1..];
            if !ext.is_empty()
                && dot > 0
                && ext.len() <= 16
                && ext.bytes().all(|c| c.is_ascii_alphanumeric())
            {
                ctx.event.set_slice(f::URL_EXTENSION, s, ext);
            }
        }
    }
}

/// Lower-cases a level and spells out one-letter levels.
pub fn normalize_level(s: &str) -> Str {
    // Levels are mostly bare words, which none of the trims change.
    let bare = match s.as_bytes() {
        [first, .., last] => first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric(),
        _ => false,
    };
    let t = if bare {
        s
    } else {
        s.trim()
            .trim_matches(|c| c == '[' || c == ']' || c == ':')
            .trim()
    };
    let word = match t {
        "I" | "i" => "info",
        "W" | "w" => "warning",
        "E" | "e" => "error",
        "D" | "d" => "debug",
        "C" | "c" => "critical",
        "F" | "f" => "fatal",
        "T" | "t" => "trace",
        _ => {
            const COMMON: [&str; 12] = [
                "debug", "info", "warning", "warn", "error", "critical", "fatal", "trace",
                "notice", "err", "crit", "alert",
            ];
            if let Some(c) = COMMON.iter().find(|c| c.eq_ignore_ascii_case(t)) {
                return Str::from_static(c);
            }
            return if t.bytes().all(|c| !c.is_ascii_uppercase()) {
                Str::from(t)
            } else {
                Str::from(t.to_ascii_lowercase())
            };
        }
    };
    Str::from_static(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Ctx;
    use crate::timestamp::TimeContext;

    fn with_ctx(run: impl FnOnce(&mut Ctx<'_>)) -> schema::Event {
        let time = TimeContext::default();
        let mut temps = Vec::new();
        let mut ctx = Ctx::new(&time, &mut temps);
        run(&mut ctx);
        ctx.event
    }

    fn s(e: &schema::Event, id: FieldId) -> Option<String> {
        e.get_id(id)
            .and_then(|v| v.to_text())
            .map(|c| c.into_owned())
    }

    #[test]
    fn addr_forms() {
        for (input, ip, port) in [
            ("127.0.0.1:54658", Some("127.0.0.1"), Some("54658")),
            ("/127.0.0.1:59344", Some("127.0.0.1"), Some("59344")),
            ("[::1]:8080", Some("::1"), Some("8080")),
            ("::1", Some("::1"), None),
            ("10.1.2.3", Some("10.1.2.3"), None),
            ("gateway.internal:443", None, Some("443")),
        ] {
            let base = Str::from(input);
            let e = with_ctx(|ctx| {
                addr(
                    ctx,
                    &base,
                    &base,
                    f::SOURCE_ADDRESS,
                    f::SOURCE_IP,
                    f::SOURCE_PORT,
                    f::SOURCE_DOMAIN,
                )
            });
            assert_eq!(s(&e, f::SOURCE_IP).as_deref(), ip, "{input}");
            assert_eq!(s(&e, f::SOURCE_PORT).as_deref(), port, "{input}");
        }
        let base = Str::from("gateway.internal:443");
        let e = with_ctx(|ctx| {
            addr(
                ctx,
                &base,
                &base,
                f::SOURCE_ADDRESS,
                f::SOURCE_IP,
                f::SOURCE_PORT,
                f::SOURCE_DOMAIN,
            )
        });
        assert_eq!(s(&e, f::SOURCE_DOMAIN).as_deref(), Some("gateway.internal"));
        assert_eq!(
            s(&e, f::SOURCE_ADDRESS).as_deref(),
            Some("gateway.internal")
        );
    }

    #[test]
    fn request_lines() {
        let base = Str::from("GET /a b?x=1 HTTP/1.1");
        let e = with_ctx(|ctx| request_line(ctx, &base, &base));
        assert_eq!(s(&e, f::HTTP_REQUEST_METHOD).as_deref(), Some("GET"));
        assert_eq!(s(&e, f::URL_ORIGINAL).as_deref(), Some("/a b?x=1"));
        assert_eq!(s(&e, f::HTTP_VERSION).as_deref(), Some("1.1"));
        let base = Str::from("\\x16\\x03\\x01");
        let e = with_ctx(|ctx| request_line(ctx, &base, &base));
        assert_eq!(
            s(&e, f::HTTP_REQUEST_LINE).as_deref(),
            Some("\\x16\\x03\\x01")
        );
        assert_eq!(e.get_id(f::HTTP_REQUEST_METHOD), None);
        let base = Str::from("-");
        let e = with_ctx(|ctx| request_line(ctx, &base, &base));
        assert!(e.is_empty());
    }

    #[test]
    fn urls() {
        let e = with_ctx(|ctx| {
            split_url(
                ctx,
                &Str::from("/api/2.0/mlflow-artifacts/artifacts/model.pkl?path=..%2F#frag"),
            )
        });
        assert_eq!(
            s(&e, f::URL_PATH).as_deref(),
            Some("/api/2.0/mlflow-artifacts/artifacts/model.pkl")
        );
        assert_eq!(s(&e, f::URL_QUERY).as_deref(), Some("path=..%2F"));
        assert_eq!(s(&e, f::URL_FRAGMENT).as_deref(), Some("frag"));
        assert_eq!(s(&e, f::URL_EXTENSION).as_deref(), Some("pkl"));
        let e = with_ctx(|ctx| {
            split_url(
                ctx,
                &Str::from("http://user@10.0.0.1:8080/v2/models/x/infer"),
            )
        });
        assert_eq!(s(&e, f::URL_SCHEME).as_deref(), Some("http"));
        assert_eq!(s(&e, f::URL_DOMAIN).as_deref(), Some("10.0.0.1"));
        assert_eq!(s(&e, f::URL_PORT).as_deref(), Some("8080"));
        assert_eq!(s(&e, f::URL_PATH).as_deref(), Some("/v2/models/x/infer"));
        let e = with_ctx(|ctx| split_url(ctx, &Str::from("/.env")));
        assert_eq!(s(&e, f::URL_EXTENSION), None, "a dot file has no extension");
    }

    #[test]
    fn levels() {
        assert_eq!(&*normalize_level("W"), "warning");
        assert_eq!(&*normalize_level("[INFO ]"), "info");
        assert_eq!(&*normalize_level("WARNING"), "warning");
        assert_eq!(&*normalize_level("SUCC"), "succ");
    }
}
