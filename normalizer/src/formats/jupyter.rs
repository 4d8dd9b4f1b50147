//! Jupyter Server log. Definitions in `jupyter.toml`; the REST API
//! recognizer is in `ml_api.rs`.

use std::sync::LazyLock;

use regex::Regex;
use schema::{Str, Value, f};

use super::util::get;
use crate::steps::{NamedStep, split_url};

static ACCESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{3}) ([A-Z]+) (\S+) \(([^()@]*)@([^()]*)\) ([\d.]+)ms(?: referer=(.*))?$")
        .unwrap()
});
static REQ_ERROR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)^(\d{3}) ([A-Z]+) (\S+) \(([^()@]*)\): (.*)$").unwrap());
static MESSAGES: LazyLock<Vec<(Regex, &'static str, Option<schema::FieldId>)>> =
    LazyLock::new(|| {
        vec![
            (
                Regex::new(r"^Kernel started: (\S+)").unwrap(),
                "kernel-started",
                Some(f::MLOPS_KERNEL_ID),
            ),
            (
                Regex::new(r"^Kernel shutdown: (\S+)").unwrap(),
                "kernel-shutdown",
                Some(f::MLOPS_KERNEL_ID),
            ),
            (
                Regex::new(r"^Kernel restarted: (\S+)").unwrap(),
                "kernel-restarted",
                Some(f::MLOPS_KERNEL_ID),
            ),
            (
                Regex::new(r"^Connecting to kernel ([0-9a-f-]+)\.").unwrap(),
                "kernel-connect",
                Some(f::MLOPS_KERNEL_ID),
            ),
            (
                Regex::new(r"^Starting buffering for ([0-9a-f-]+):(\S+)").unwrap(),
                "kernel-buffering",
                Some(f::MLOPS_KERNEL_ID),
            ),
            (
                Regex::new(r"^New terminal with (?:automatic|specified) name: (.+)$").unwrap(),
                "terminal-created",
                Some(f::MLOPS_TERMINAL_NAME),
            ),
            (
                Regex::new(r"^Terminal (.+) closed$").unwrap(),
                "terminal-closed",
                Some(f::MLOPS_TERMINAL_NAME),
            ),
            (
                Regex::new(r"^Uploading file to (.+)$").unwrap(),
                "file-upload",
                Some(f::MLOPS_NOTEBOOK_PATH),
            ),
            (
                Regex::new(r"^delete (.+)$").unwrap(),
                "file-delete",
                Some(f::MLOPS_NOTEBOOK_PATH),
            ),
            (
                Regex::new(r"^Saving file at (.+)$").unwrap(),
                "file-save",
                Some(f::MLOPS_NOTEBOOK_PATH),
            ),
            (
                Regex::new(r"^Accepting token-authenticated request from (\S+)$").unwrap(),
                "token-authenticated",
                Some(f::SOURCE_IP),
            ),
            (
                Regex::new(r"^Generating new user for token-authenticated request: (\S+)$")
                    .unwrap(),
                "token-user",
                Some(f::USER_NAME),
            ),
            (
                Regex::new(r"^received signal (\d+), stopping").unwrap(),
                "server-stop",
                None,
            ),
        ]
    });

fn web(ev: &mut schema::Event, ty: &'static str) {
    ev.set(f::EVENT_CATEGORY, schema::value::str_array(&["web"]));
    ev.set(f::EVENT_TYPE, ty);
}

pub static JUPYTER: NamedStep = NamedStep {
    name: "jupyter",
    doc: "Jupyter Server messages: access lines, request errors, kernel/terminal/contents activity",
    paths: &[],
    find: None,
    run: |ctx| {
        let Some(msg) = get(&ctx.event, f::MESSAGE) else {
            return Ok(());
        };
        let ev = &mut ctx.event;
        let sl = |s: &str| msg.slice_ref(s);
        if let Some(c) = ACCESS.captures(&msg) {
            let g = |i: usize| c.get(i).map(|m| m.as_str()).filter(|s| !s.is_empty());
            ev.set(
                f::HTTP_RESPONSE_STATUS_CODE,
                g(1).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0),
            );
            ev.set(f::HTTP_REQUEST_METHOD, sl(g(2).unwrap_or("")));
            let uri = sl(g(3).unwrap_or(""));
            ev.set(f::URL_ORIGINAL, uri.clone());
            if let Some(u) = g(4) {
                ev.set(f::USER_NAME, sl(u));
            }
            if let Some(ip) = g(5) {
                match crate::convert::parse_ip(ip) {
                    Some(addr) => ev.set(f::SOURCE_IP, addr),
                    None => ev.set(f::SOURCE_ADDRESS, sl(ip)),
                }
            }
            if let Some(ms) = g(6).and_then(|s| s.parse::<f64>().ok()) {
                ev.set(f::EVENT_DURATION, (ms * 1e6).round() as i64);
            }
            if let Some(r) = g(7).filter(|r| *r != "None") {
                ev.set(f::HTTP_REQUEST_REFERRER, sl(r));
            }
            web(ev, "access");
        } else if let Some(c) = REQ_ERROR.captures(&msg) {
            let g = |i: usize| c.get(i).map(|m| m.as_str()).unwrap_or("");
            ev.set(
                f::HTTP_RESPONSE_STATUS_CODE,
                g(1).parse::<i64>().unwrap_or(0),
            );
            ev.set(f::HTTP_REQUEST_METHOD, sl(g(2)));
            ev.set(f::URL_ORIGINAL, sl(g(3)));
            if let Some(addr) = crate::convert::parse_ip(g(4)) {
                ev.set(f::SOURCE_IP, addr);
            }
            ev.set(f::ERROR_MESSAGE, sl(g(5)));
            web(ev, "error");
        } else {
            for (re, action, field) in MESSAGES.iter() {
                if let Some(c) = re.captures(&msg) {
                    ev.set(f::EVENT_ACTION, *action);
                    if let (Some(id), Some(m)) = (field, c.get(1)) {
                        if *id == f::SOURCE_IP {
                            if let Some(ip) = crate::convert::parse_ip(m.as_str()) {
                                ev.set(*id, ip);
                            }
                        } else {
                            ev.set(*id, sl(m.as_str()));
                        }
                    }
                    if *action == "kernel-buffering"
                        && let Some(m) = c.get(2)
                    {
                        ev.set(f::MLOPS_SESSION_ID, sl(m.as_str()));
                    }
                    break;
                }
            }
            if ev.get_id(f::EVENT_TYPE).is_none() {
                let error = matches!(ev.get_str(f::LOG_LEVEL), Some("error" | "critical"));
                ev.set(
                    f::EVENT_TYPE,
                    schema::value::str_array(if error { &["error"] } else { &["info"] }),
                );
            }
            return Ok(());
        }
        if let Some(Value::Str(u)) = ctx.event.get_id(f::URL_ORIGINAL) {
            let u: Str = u.clone();
            split_url(ctx, &u);
        }
        if let Some(code) = ctx.event.get_i64(f::HTTP_RESPONSE_STATUS_CODE) {
            ctx.event.set(
                f::EVENT_OUTCOME,
                if code < 400 { "success" } else { "failure" },
            );
        }
        super::ml_api::jupyter(&mut ctx.event, false);
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn access_lines() {
        let e = parse("jupyter.server", "[W 2026-11-30 00:36:42.774 ServerApp] 404 GET /api/contents/../../etc/passwd (1bb84709c39c4f71a291bf62ef0713b9@127.0.0.1) 1.60ms referer=None").unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:36:42.774Z");
        assert_eq!(text(&e, "log.level"), "warning");
        assert_eq!(text(&e, "user.name"), "1bb84709c39c4f71a291bf62ef0713b9");
        assert_eq!(text(&e, "source.ip"), "127.0.0.1");
        assert_eq!(text(&e, "event.duration"), "1600000");
        assert_eq!(text(&e, "mlops.notebook.path"), "../../etc/passwd");
        assert_eq!(text(&e, "mlops.api"), "contents/get");
        assert_eq!(text(&e, "event.outcome"), "failure");
        assert!(e.get("http.request.referrer").is_none());
    }

    #[test]
    fn request_error_and_messages() {
        let e = parse("jupyter.server", "[W 2026-11-30 00:36:36.707 ServerApp] 403 POST /api/terminals (127.0.0.1): '_xsrf' argument missing from POST").unwrap();
        assert_eq!(
            text(&e, "error.message"),
            "'_xsrf' argument missing from POST"
        );
        assert_eq!(text(&e, "mlops.api"), "terminals/create");
        let e = parse(
            "jupyter.server",
            "[I 2026-11-30 00:36:41.386 ServerApp] New terminal with automatic name: miner",
        )
        .unwrap();
        assert_eq!(text(&e, "mlops.terminal.name"), "miner");
        assert_eq!(text(&e, "event.action"), "terminal-created");
        let e = parse(
            "jupyter.server",
            "[IPKernelApp] WARNING | Kernel is running over TCP without encryption.",
        )
        .unwrap();
        assert_eq!(text(&e, "log.logger"), "IPKernelApp");
        assert_eq!(text(&e, "log.level"), "warning");
        assert!(
            e.get("@timestamp").is_none(),
            "no timestamp in the line; the stream infers one"
        );
    }

    #[test]
    fn malformed() {
        assert!(parse("jupyter.server", "[W 2026-11-30 99:36:36.707 ServerApp] x").is_err());
        assert!(parse("jupyter.server", "W 2026-11-30 00:36:36.707 ServerApp] x").is_err());
    }
}
