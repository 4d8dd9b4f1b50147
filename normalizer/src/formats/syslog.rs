//! Syslog: RFC 5424 and RFC 3164 (BSD), with or without `<PRI>`, and the
//! RFC 3339 timestamp variant that rsyslog writes to files. Definition in
//! `syslog.toml`; this is the `syslog` parser it names.
//!
//! RFC 3164 timestamps have no year and no zone: they are read in the
//! configured zone and the year is inferred (see the `timestamp` module).

use std::sync::LazyLock;

use schema::{Str, Timestamp, Value, f};

use crate::format::Ctx;
use crate::steps::Reject;
use crate::timestamp::Layout;

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

static BSD_TIME: LazyLock<Layout> =
    LazyLock::new(|| Layout::compile("%b %e %H:%M:%S").expect("valid"));

fn reject(why: &'static str) -> Reject {
    Reject::new(why)
}

/// Parses one syslog message into `ctx.event`.
pub fn parse(text: &Str, ctx: &mut Ctx<'_>) -> Result<(), Reject> {
    let s: &str = text;
    let mut rest = s;
    let mut pri = None;
    if let Some(r) = rest.strip_prefix('<') {
        let end = r
            .find('>')
            .filter(|&e| (1..=3).contains(&e))
            .ok_or_else(|| reject("malformed <PRI>"))?;
        let p: u32 = r[..end].parse().map_err(|_| reject("malformed <PRI>"))?;
        if p > 191 {
            return Err(reject("PRI above 191"));
        }
        pri = Some(p);
        rest = &r[end + 1..];
    }
    let five = pri.is_some() && {
        let v = rest.split(' ').next().unwrap_or("");
        !v.is_empty() && v.len() <= 2 && v.bytes().all(|c| c.is_ascii_digit()) && v != "0"
    };
    if five {
        rfc5424(text, rest, ctx)?;
    } else {
        rfc3164(text, rest, ctx)?;
    }
    if let Some(p) = pri {
        let (fac, sev) = (p / 8, p % 8);
        let ev = &mut ctx.event;
        ev.set(f::LOG_SYSLOG_PRIORITY, p as i64);
        ev.set(f::LOG_SYSLOG_FACILITY_CODE, fac as i64);
        ev.set(f::LOG_SYSLOG_FACILITY_NAME, FACILITIES[fac as usize]);
        ev.set(f::LOG_SYSLOG_SEVERITY_CODE, sev as i64);
        ev.set(f::LOG_SYSLOG_SEVERITY_NAME, SEVERITIES[sev as usize]);
        ev.set(f::LOG_LEVEL, SEVERITIES[sev as usize]);
        let error = sev <= 3;
        ev.set(
            f::EVENT_TYPE,
            schema::value::str_array(if error { &["error"] } else { &["info"] }),
        );
    } else {
        ctx.event
            .set(f::EVENT_TYPE, schema::value::str_array(&["info"]));
    }
    Ok(())
}

fn token(rest: &str) -> (&str, &str) {
    match rest.find(' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    }
}

fn rfc5424(text: &Str, rest: &str, ctx: &mut Ctx<'_>) -> Result<(), Reject> {
    let sl = |s: &str| text.slice_ref(s);
    let (version, rest) = token(rest);
    let (ts, rest) = token(rest);
    let (host, rest) = token(rest);
    let (app, rest) = token(rest);
    let (procid, rest) = token(rest);
    let (msgid, rest) = token(rest);
    if msgid.is_empty() {
        return Err(reject("RFC 5424 header is incomplete"));
    }
    let ev = &mut ctx.event;
    ev.set(f::LOG_SYSLOG_VERSION, sl(version));
    if ts != "-" {
        let t = Timestamp::parse_rfc3339(ts)
            .ok_or_else(|| reject("RFC 5424 timestamp is not RFC 3339"))?;
        ev.set(f::AT_TIMESTAMP, t);
    }
    if host != "-" {
        ev.set(f::LOG_SYSLOG_HOSTNAME, sl(host));
        ev.set(f::HOST_HOSTNAME, sl(host));
    }
    if app != "-" {
        ev.set(f::LOG_SYSLOG_APPNAME, sl(app));
        ev.set(f::PROCESS_NAME, sl(app));
    }
    if procid != "-" {
        ev.set(f::LOG_SYSLOG_PROCID, sl(procid));
        if let Ok(pid) = procid.parse::<i64>() {
            ev.set(f::PROCESS_PID, pid);
        }
    }
    if msgid != "-" {
        ev.set(f::LOG_SYSLOG_MSGID, sl(msgid));
    }
    let msg = if let Some(r) = rest.strip_prefix('-') {
        r
    } else if rest.starts_with('[') {
        let (sd, after) = structured_data(text, rest)?;
        ev.set(f::LOG_SYSLOG_STRUCTURED_DATA, sd);
        after
    } else {
        return Err(reject(
            "RFC 5424 structured data must be `-` or start with `[`",
        ));
    };
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    if !msg.is_empty() {
        ev.set(f::MESSAGE, sl(msg));
    }
    Ok(())
}

/// `[id k="v" ...][id2 ...]` -> {id: {k: v}}; returns the rest after it.
fn structured_data<'a>(text: &Str, mut s: &'a str) -> Result<(Value, &'a str), Reject> {
    let mut elements = Vec::new();
    while let Some(r) = s.strip_prefix('[') {
        let id_end = r
            .find([' ', ']'])
            .ok_or_else(|| reject("unterminated structured data"))?;
        let id = &r[..id_end];
        if id.is_empty() {
            return Err(reject("empty SD-ID"));
        }
        let mut p = &r[id_end..];
        let mut params = Vec::new();
        loop {
            if let Some(after) = p.strip_prefix(']') {
                p = after;
                break;
            }
            let q = p
                .strip_prefix(' ')
                .ok_or_else(|| reject("malformed structured data"))?;
            let eq = q.find("=\"").ok_or_else(|| reject("malformed SD-PARAM"))?;
            let name = &q[..eq];
            let vstart = &q[eq + 2..];
            let mut value = String::new();
            let mut chars = vstart.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e @ ('"' | '\\' | ']'))) => value.push(e),
                        Some((_, other)) => {
                            value.push('\\');
                            value.push(other);
                        }
                        None => break,
                    },
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| reject("unterminated SD-PARAM value"))?;
            params.push((text.slice_ref(name), Value::Str(Str::from(value))));
            p = &vstart[end + 1..];
        }
        elements.push((text.slice_ref(id), Value::Object(params)));
        s = p;
    }
    Ok((Value::Object(elements), s))
}

fn rfc3164(text: &Str, rest: &str, ctx: &mut Ctx<'_>) -> Result<(), Reject> {
    let sl = |s: &str| text.slice_ref(s);
    // Timestamp: "Mmm dd hh:mm:ss" or RFC 3339 (rsyslog's file format).
    let (t, after) = if rest.len() >= 16
        && rest.as_bytes()[15] == b' '
        && BSD_TIME.parse(&rest[..15], ctx.time).is_some()
    {
        (BSD_TIME.parse(&rest[..15], ctx.time), &rest[16..])
    } else {
        let (tok, after) = token(rest);
        match Timestamp::parse_rfc3339(tok) {
            Some(t) => (Some(t), after),
            None => return Err(reject("not syslog: no RFC 3164 or RFC 3339 timestamp")),
        }
    };
    let ev = &mut ctx.event;
    if let Some(t) = t {
        ev.set(f::AT_TIMESTAMP, t);
    }
    let (host, rest) = token(after);
    if host.is_empty()
        || host.contains(':') && !host.contains('.') && host.parse::<std::net::IpAddr>().is_err()
    {
        return Err(reject("not syslog: no host name after the timestamp"));
    }
    ev.set(f::LOG_SYSLOG_HOSTNAME, sl(host));
    ev.set(f::HOST_HOSTNAME, sl(host));
    // TAG[PID]: MSG
    let tag_end = rest.find(['[', ':', ' ']).unwrap_or(rest.len());
    let tag = &rest[..tag_end];
    let mut msg = rest;
    if !tag.is_empty() && tag_end < rest.len() {
        let r = &rest[tag_end..];
        let (pid, r) = match r.strip_prefix('[') {
            Some(p) => match p.find(']') {
                Some(e) => (Some(&p[..e]), &p[e + 1..]),
                None => (None, r),
            },
            None => (None, r),
        };
        if let Some(m) = r.strip_prefix(':') {
            ev.set(f::LOG_SYSLOG_APPNAME, sl(tag));
            ev.set(f::PROCESS_NAME, sl(tag));
            if let Some(pid) = pid {
                ev.set(f::LOG_SYSLOG_PROCID, sl(pid));
                if let Ok(n) = pid.parse::<i64>() {
                    ev.set(f::PROCESS_PID, n);
                }
            }
            msg = m.strip_prefix(' ').unwrap_or(m);
        }
    }
    if !msg.is_empty() {
        ev.set(f::MESSAGE, sl(msg));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};
    use proptest::prelude::*;

    #[test]
    fn rfc5424_examples() {
        // RFC 5424 section 6.5, examples 1 and 3.
        let e = parse("syslog", "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!(text(&e, "@timestamp"), "2003-10-11T22:14:15.003Z");
        assert_eq!(text(&e, "log.syslog.facility.name"), "auth");
        assert_eq!(text(&e, "log.syslog.severity.name"), "crit");
        assert_eq!(text(&e, "host.hostname"), "mymachine.example.com");
        assert_eq!(text(&e, "process.name"), "su");
        assert_eq!(text(&e, "log.syslog.msgid"), "ID47");
        assert_eq!(
            text(&e, "message"),
            "'su root' failed for lonvick on /dev/pts/8"
        );
        let e = parse("syslog", r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry..."#).unwrap();
        assert_eq!(
            text(
                &e,
                "log.syslog.structured_data.exampleSDID@32473.eventSource"
            ),
            "Application"
        );
        assert_eq!(
            text(&e, "log.syslog.structured_data.examplePriority@32473.class"),
            "high"
        );
        assert_eq!(text(&e, "message"), "An application event log entry...");
        let e = parse("syslog", r#"<14>1 - - - - - [a x="q\"uo\]te"]"#).unwrap();
        assert_eq!(text(&e, "log.syslog.structured_data.a.x"), r#"q"uo]te"#);
    }

    #[test]
    fn rfc3164_examples() {
        // RFC 3164 section 5.4.
        let e = parse(
            "syslog",
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        )
        .unwrap();
        assert!(text(&e, "@timestamp").ends_with("-10-11T22:14:15Z"));
        assert_eq!(text(&e, "process.name"), "su");
        assert_eq!(text(&e, "host.hostname"), "mymachine");
        let e = parse("syslog", "Nov 30 00:41:06 ml-head-0 sshd[4242]: Accepted publickey for ray from 10.0.3.7 port 50000").unwrap();
        assert_eq!(text(&e, "process.pid"), "4242");
        assert_eq!(
            text(&e, "message"),
            "Accepted publickey for ray from 10.0.3.7 port 50000"
        );
        let e = parse(
            "syslog",
            "2026-11-30T00:41:06.123456+00:00 ml-head-0 kernel: oom-kill",
        )
        .unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:41:06.123456Z");
    }

    #[test]
    fn malformed() {
        for bad in [
            "<999>1 - - - - - -",
            "<34>1 notatime host app - - -",
            "<34>1 2003-10-11T22:14:15Z host",
            "Foo 11 22:14:15 host x: y",
            "<34>1 2003-10-11T22:14:15Z h a p m [unterminated",
            "plain text line",
            "<3",
        ] {
            assert!(parse("syslog", bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "(<[0-9]{1,3}>)?[ -~\u{feff}\\[\\]\"\\\\]{0,80}") {
            let _ = parse("syslog", &s);
        }
    }
}
