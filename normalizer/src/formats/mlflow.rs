//! MLflow tracking server: access logs (uvicorn, gunicorn) and the server
//! log. Definitions in `mlflow.toml`; the REST API recognizer is in
//! `ml_api.rs`.

use std::sync::LazyLock;

use regex::Regex;
use schema::f;

use super::util::get;
use crate::steps::NamedStep;

static ADMIN_CREATED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Created admin user '([^']*)'").unwrap());
static HANDLER_ERROR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^Error in (\w+): ").unwrap());

/// Security-relevant server messages.
pub static MLFLOW_SERVER: NamedStep = NamedStep {
    name: "mlflow_server",
    doc: "MLflow server messages: admin user creation (user.target.name), handler errors (error.type)",
    paths: &[],
    find: None,
    run: |ctx| {
        let Some(msg) = get(&ctx.event, f::MESSAGE) else {
            return Ok(());
        };
        if let Some(c) = ADMIN_CREATED.captures(&msg) {
            let m = c.get(1).expect("group");
            ctx.event
                .set(f::USER_TARGET_NAME, msg.slice_ref(m.as_str()));
            ctx.event.set(f::EVENT_ACTION, "admin-user-created");
            ctx.event
                .set(f::EVENT_CATEGORY, schema::value::str_array(&["iam"]));
            ctx.event.set(
                f::EVENT_TYPE,
                schema::value::str_array(&["user", "creation"]),
            );
        } else if let Some(c) = HANDLER_ERROR.captures(&msg) {
            let m = c.get(1).expect("group");
            ctx.event.set_slice(f::ERROR_TYPE, &msg, m.as_str());
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn uvicorn_access() {
        let e = parse("mlflow.uvicorn_access", r#"2026/11/30 00:30:59 INFO:     127.0.0.1:54710 - "GET /model-versions/get-artifact?path=model.pkl&name=fraud-classifier&version=1 HTTP/1.1" 500 Internal Server Error"#).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T00:30:59Z");
        assert_eq!(text(&e, "http.response.status_code"), "500");
        assert_eq!(text(&e, "event.outcome"), "failure");
        assert_eq!(text(&e, "mlops.model.name"), "fraud-classifier");
        assert_eq!(text(&e, "mlops.model.version"), "1");
        assert_eq!(text(&e, "mlops.api"), "model-versions/get-artifact");
        assert_eq!(text(&e, "source.port"), "54710");
        assert_eq!(text(&e, "log.level"), "info");
    }

    #[test]
    fn uvicorn_access_malformed() {
        for bad in [
            r#"2026/13/30 00:30:59 INFO:     127.0.0.1:54710 - "GET /x HTTP/1.1" 200 OK"#,
            "Registry store URI not provided. Using backend store URI.",
            "",
        ] {
            assert!(parse("mlflow.uvicorn_access", bad).is_err(), "{bad}");
        }
        // A damaged access line still has the server-log shape (stdout and
        // stderr are often merged): it falls back to a server message event.
        for damaged in [
            r#"2026/11/30 00:30:59 INFO:     127.0.0.1:54710 - "GET /x HTTP/1.1" abc Bad"#,
            r#"2026/11/30 00:30:59 INFO:     127.0.0.1:54710 - "GET /x HTTP/1.1"#,
        ] {
            let e = parse("mlflow.uvicorn_access", damaged).unwrap();
            assert_eq!(text(&e, "event.dataset"), "mlflow.server", "{damaged}");
            assert!(e.get("http.response.status_code").is_none());
        }
    }

    #[test]
    fn gunicorn_access_with_user_and_agent() {
        let e = parse("mlflow.gunicorn_access", r#"127.0.0.1 - mallory [30/Nov/2026:00:34:40 +0000] "PATCH /api/2.0/mlflow/users/update-admin HTTP/1.1" 403 17 "-" "python-requests/2.32.3""#).unwrap();
        assert_eq!(text(&e, "user.name"), "mallory");
        assert_eq!(text(&e, "mlops.api"), "users/update-admin");
        assert_eq!(text(&e, "user_agent.original"), "python-requests/2.32.3");
        assert_eq!(text(&e, "http.response.body.bytes"), "17");
        assert!(
            parse(
                "mlflow.gunicorn_access",
                r#"127.0.0.1 - - [30/Nov/2026:00:34:40 +0000] "GET / HTTP/1.1" 200 x "-" "-""#
            )
            .is_err()
        );
    }

    #[test]
    fn server_lines() {
        let e = parse(
            "mlflow.server",
            "2026/11/30 00:32:28 INFO mlflow.server.auth: Created admin user 'admin'.",
        )
        .unwrap();
        assert_eq!(text(&e, "log.logger"), "mlflow.server.auth");
        assert_eq!(text(&e, "user.target.name"), "admin");
        let e = parse(
            "mlflow.server",
            "[2026-11-30 00:32:29 +0000] [14264] [INFO] Starting gunicorn 26.2.0",
        )
        .unwrap();
        assert_eq!(text(&e, "process.pid"), "14264");
        assert_eq!(text(&e, "log.logger"), "gunicorn");
        let e = parse(
            "mlflow.server",
            "2026/11/30 00:31:08 INFO:     Received SIGTERM, exiting.",
        )
        .unwrap();
        assert_eq!(text(&e, "message"), "Received SIGTERM, exiting.");
        let e = parse("mlflow.server", "2026/11/30 00:30:59 ERROR mlflow.server.handlers: Error in get_model_version_artifact_handler: When an mlflow-artifacts URI was supplied\n1. Set the MLFLOW_TRACKING_URI").unwrap();
        assert_eq!(text(&e, "error.type"), "get_model_version_artifact_handler");
        assert_eq!(text(&e, "event.type"), "error");
    }
}
