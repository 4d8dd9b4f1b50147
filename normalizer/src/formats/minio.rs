//! MinIO audit log. Definitions in `minio.toml`.

use schema::f;

use super::util::{get, get_path};
use crate::steps::NamedStep;

pub static MINIO_AUDIT: NamedStep = NamedStep {
    name: "minio_audit",
    doc: "MinIO audit: outcome from the status code, event.type from the API name, client address from remotehost, server host and port, duration",
    paths: &[
        "minio.audit.remotehost",
        "minio.audit.requestHost",
        "minio.audit.api.timeToResponse",
    ],
    find: None,
    run: |ctx| {
        let ev = &mut ctx.event;
        if let Some(code) = ev.get_i64(f::HTTP_RESPONSE_STATUS_CODE) {
            ev.set(
                f::EVENT_OUTCOME,
                if code < 400 { "success" } else { "failure" },
            );
        }
        let action = get(ev, f::EVENT_ACTION).unwrap_or_default();
        ev.set(f::EVENT_TYPE, super::cloudtrail::action_type(&action));
        if let Some(host) = get_path(ev, "minio.audit.remotehost") {
            let h = host
                .rsplit_once(':')
                .filter(|(a, p)| !a.contains(':') && p.bytes().all(|c| c.is_ascii_digit()))
                .map_or(&*host, |(a, _)| a);
            match crate::convert::parse_ip(h) {
                Some(ip) => ev.set(f::SOURCE_IP, ip),
                None => ev.set_slice(f::SOURCE_ADDRESS, &host, h),
            }
        }
        if let Some(host) = get_path(ev, "minio.audit.requestHost") {
            match host.rsplit_once(':').filter(|(h, p)| {
                !h.contains(':') && !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())
            }) {
                Some((h, p)) => {
                    ev.set_slice(f::URL_DOMAIN, &host, h);
                    if let Ok(port) = p.parse::<i64>() {
                        ev.set(f::URL_PORT, port);
                    }
                }
                None => ev.set(f::URL_DOMAIN, host),
            }
        }
        if ev.get_id(f::EVENT_DURATION).is_none() {
            // Older MinIO writes timeToResponse as text ("5238411ns").
            if let Some(t) = get_path(ev, "minio.audit.api.timeToResponse")
                && let Some(ns) = t.strip_suffix("ns").and_then(|n| n.parse::<i64>().ok())
            {
                ev.set(f::EVENT_DURATION, ns);
            }
        }
        Ok(())
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn audit_entry() {
        let e = parse("minio.audit", r#"{"version":"1","deploymentid":"d","time":"2026-11-30T10:40:00.123456789Z","event":"","trigger":"incoming","api":{"name":"DeleteObject","bucket":"datasets","object":"fraud/train.parquet","status":"Forbidden","statusCode":403,"rx":0,"tx":0},"remotehost":"10.0.7.12:41234","requestID":"R1","userAgent":"aws-cli/2","requestPath":"/datasets/fraud/train.parquet","requestHost":"minio:9000","accessKey":"svc-notebook","parentUser":"alice"}"#).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T10:40:00.123456789Z");
        assert_eq!(text(&e, "source.ip"), "10.0.7.12");
        assert_eq!(text(&e, "event.outcome"), "failure");
        assert_eq!(text(&e, "event.type"), "deletion");
        assert_eq!(text(&e, "aws.s3.object.key"), "fraud/train.parquet");
        assert_eq!(text(&e, "user.name"), "svc-notebook");
        assert!(
            parse(
                "minio.audit",
                r#"{"version":"1","time":"2026-11-30T10:40:00Z"}"#
            )
            .is_err()
        );
    }
}
