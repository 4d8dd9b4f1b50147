//! TorchServe access, frontend/worker and metrics logs. Definitions in
//! `torchserve.toml`; the API recognizer is in `ml_api.rs`.

use std::sync::LazyLock;

use regex::Regex;
use schema::{Str, f};

use super::util::get;
use crate::steps::{NamedStep, Reject};

/// Worker thread names: `W-9000-fraud-scorer_1.0` (+ `-stdout`/`-stderr`).
static WORKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^W-\d+-(.+)_([^_]+?)(?:-(?:stdout|stderr))?$").unwrap());
static UNREGISTERED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Model (\S+) unregistered\.").unwrap());

pub static TORCHSERVE_LOG: NamedStep = NamedStep {
    name: "torchserve_log",
    doc: "TorchServe log: model name/version from worker thread names, model unregistration",
    paths: &[],
    find: None,
    run: |ctx| {
        if let Some(thread) = get(&ctx.event, f::PROCESS_THREAD_NAME)
            && let Some(c) = WORKER.captures(&thread)
        {
            ctx.event
                .set_default(f::MLOPS_MODEL_NAME, thread.slice_ref(&c[1]));
            ctx.event
                .set_default(f::MLOPS_MODEL_VERSION, thread.slice_ref(&c[2]));
        }
        if let Some(msg) = get(&ctx.event, f::MESSAGE)
            && let Some(c) = UNREGISTERED.captures(&msg)
        {
            ctx.event.set_slice(f::MLOPS_MODEL_NAME, &msg, &c[1]);
            ctx.event.set(f::EVENT_ACTION, "model-unregistered");
        }
        Ok(())
    },
};

pub static TORCHSERVE_METRIC: NamedStep = NamedStep {
    name: "torchserve_metric",
    doc: "TorchServe metric dimensions and context (`k:v,...` lists): model name/version, level, host name, request id",
    paths: &[],
    find: None,
    run: |ctx| {
        for key in [
            "torchserve.metric.dimensions_raw",
            "torchserve.metric.context_raw",
        ] {
            if let Some(schema::Value::Str(list)) = ctx.event.remove(key) {
                metric_pairs(&mut ctx.event, &list)?;
            }
        }
        Ok(())
    },
};

/// Parses the `k:v,k:v` lists of a metrics line.
pub(crate) fn metric_pairs(ev: &mut schema::Event, list: &Str) -> Result<(), Reject> {
    for pair in list.split(',') {
        let Some((k, v)) = pair.split_once(':') else {
            continue;
        };
        let v = list.slice_ref(v);
        match k {
            "ModelName" => ev.set(f::MLOPS_MODEL_NAME, v),
            "ModelVersion" => ev.set(f::MLOPS_MODEL_VERSION, v),
            "Level" => ev.insert("torchserve.metric.level", v),
            "hostname" => ev.set(f::HOST_HOSTNAME, v),
            "requestID" => ev.set(f::MLOPS_INFERENCE_REQUEST_ID, v),
            "timestamp" => {}
            other => ev.insert(format!("torchserve.metric.dimensions.{other}").as_str(), v),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn access_and_log_and_metrics() {
        let e = parse("torchserve.access", r#"2026-11-30T00:43:13,941 - /127.0.0.1:59398 "POST /models?url=file%3A%2F%2F%2Fetc%2Fpasswd&initial_workers=1&model_name=backdoor HTTP/1.1" 500 4"#).unwrap();
        assert_eq!(text(&e, "mlops.model.url"), "file:///etc/passwd");
        assert_eq!(text(&e, "event.duration"), "4000000");
        assert_eq!(text(&e, "source.port"), "59398");
        assert!(
            e.get("http.response.body.bytes").is_none(),
            "the last number is a duration"
        );
        let e = parse("torchserve.log", r#"2026-11-30T00:43:13,439 [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - /127.0.0.1:59344 "POST /models?url=http%3A%2F%2F203.0.113.7%2Fevil.mar HTTP/1.1" 400 44"#).unwrap();
        assert_eq!(text(&e, "event.dataset"), "torchserve.access");
        assert_eq!(text(&e, "process.thread.name"), "epollEventLoopGroup-3-1");
        let e = parse("torchserve.log", "2026-11-30T00:43:11,013 [INFO ] W-9000-fraud-scorer_1.0-stdout MODEL_LOG - model_name: fraud-scorer, batchSize: 1").unwrap();
        assert_eq!(text(&e, "mlops.model.name"), "fraud-scorer");
        assert_eq!(text(&e, "mlops.model.version"), "1.0");
        assert_eq!(text(&e, "log.logger"), "MODEL_LOG");
        let e = parse("torchserve.metrics", "2026-11-30T00:43:11,081 - PredictionTime.ms:0.05|#ModelName:fraud-scorer,Level:Model|#hostname:vm,requestID:86d5dd95-3f05-463a-aecb-d8398f57c4e7,timestamp:1795999391").unwrap();
        assert_eq!(text(&e, "mlops.metric.name"), "PredictionTime");
        assert_eq!(text(&e, "mlops.metric.unit"), "ms");
        assert_eq!(text(&e, "mlops.metric.value"), "0.05");
        assert_eq!(text(&e, "mlops.model.name"), "fraud-scorer");
        assert_eq!(
            text(&e, "mlops.inference.request_id"),
            "86d5dd95-3f05-463a-aecb-d8398f57c4e7"
        );
        assert_eq!(text(&e, "event.kind"), "metric");
        assert!(e.get("torchserve.metric.dimensions_raw").is_none());
        assert!(
            parse(
                "torchserve.metrics",
                "2026-11-30T00:43:11,081 - PredictionTime.ms:fast|#x|#y"
            )
            .is_err()
        );
        assert!(
            parse(
                "torchserve.access",
                r#"2026-11-30T00:43:13,941 - /127.0.0.1:59398 "GET / HTTP/1.1" 500"#
            )
            .is_err()
        );
    }
}
