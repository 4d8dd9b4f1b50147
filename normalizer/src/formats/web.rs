//! Web server and proxy access logs (nginx, Apache, ingress-nginx,
//! Werkzeug, moto). Definitions in `web.toml`; these formats only combine
//! generic steps and the ML API recognizers of `ml_api.rs`.

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, text};

    #[test]
    fn combined_and_common() {
        let e = parse("combined", r#"203.0.113.9 - - [30/Nov/2026:10:15:02 +0100] "POST /api/2.0/mlflow/users/create HTTP/1.1" 200 54 "-" "curl/8.5.0""#).unwrap();
        assert_eq!(text(&e, "@timestamp"), "2026-11-30T09:15:02Z");
        assert_eq!(text(&e, "mlops.component"), "mlflow");
        assert_eq!(text(&e, "mlops.api"), "users/create");
        assert_eq!(text(&e, "event.dataset"), "http.access");
        assert!(e.get("http.request.referrer").is_none(), "`-` is absent");
        let e = parse("combined", r#"10.0.0.1 - - [30/Nov/2026:10:15:02 +0000] "GET /x HTTP/1.1" 200 1 "-" "UA" "203.0.113.4, 10.0.0.1""#).unwrap();
        assert_eq!(text(&e, "client.address"), "203.0.113.4");
        assert_eq!(text(&e, "client.ip"), "203.0.113.4");
        assert!(e.get("client.domain").is_none());
        let e = parse(
            "combined",
            r#"10.0.0.1 - - [30/Nov/2026:10:15:02 +0000] "\x16\x03\x01\x02\x00" 400 157 "-" "-""#,
        )
        .unwrap();
        assert_eq!(text(&e, "http.request.line"), r"\x16\x03\x01\x02\x00");
        let e = parse("common", r#"10.0.4.21 - jane [30/Nov/2026:10:15:02 +0000] "GET /predictions/fraud HTTP/1.1" 200 512"#).unwrap();
        assert_eq!(text(&e, "mlops.component"), "torchserve");
        assert_eq!(text(&e, "user.name"), "jane");
        assert!(
            parse(
                "common",
                r#"10.0.4.21 - jane [30/Nov/2026:10:15:02 +0000] "GET / HTTP/1.1" 200 5x"#
            )
            .is_err()
        );
        assert!(
            parse(
                "combined",
                r#"10.0.4.21 - jane [30/Nov/2026:10:15:02] "GET / HTTP/1.1" 200 5 "-" "-""#
            )
            .is_err(),
            "no zone"
        );
    }

    #[test]
    fn ingress_and_moto() {
        let e = parse("nginx.ingress", r#"10.244.0.1 - - [30/Nov/2026:10:15:02 +0000] "POST /v1/models/fraud:predict HTTP/1.1" 200 52 "-" "python-requests/2.32.3" 311 0.012 [kserve-fraud-predictor-80] [] 10.244.1.17:8080 52 0.011 200 5f1c3e5b"#).unwrap();
        assert_eq!(text(&e, "mlops.model.name"), "fraud");
        assert_eq!(text(&e, "mlops.component"), "kserve");
        assert_eq!(text(&e, "event.duration"), "12000000");
        assert_eq!(text(&e, "http.request.bytes"), "311");
        assert_eq!(
            text(&e, "nginx_ingress_controller.upstream.name"),
            "kserve-fraud-predictor-80"
        );
        let e = parse("moto", "127.0.0.1 - - [30/Nov/2026 00:41:33] \"\u{1b}[31m\u{1b}[1mGET /ml-models/fraud/model.pkl HTTP/1.1\u{1b}[0m\" 403 -").unwrap();
        assert_eq!(text(&e, "aws.s3.bucket.name"), "ml-models");
        assert_eq!(text(&e, "http.response.status_code"), "403");
        assert!(
            text(&e, "event.original").contains('\u{1b}'),
            "the original keeps the colour codes"
        );
    }
}
