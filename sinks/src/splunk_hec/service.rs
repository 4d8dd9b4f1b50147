//! Transport: one HTTP request to the collector, and what its answer means.
//!
//! Every request carries `Authorization: Splunk <token>` (marked sensitive,
//! so the HTTP stack never logs it) and `X-Splunk-Request-Channel: <uuid>`
//! (one random channel per sink instance, as Vector does: required when the
//! token has indexer acknowledgement, harmless otherwise).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::config::{Compression, Secret, SplunkHecConfig};

/// The HEC error code table ("Troubleshoot HTTP Event Collector"; see
/// `shared/reference/wire-contracts.md` 4.2).
pub mod code {
    pub const SUCCESS: i64 = 0;
    pub const TOKEN_DISABLED: i64 = 1;
    pub const TOKEN_REQUIRED: i64 = 2;
    pub const INVALID_AUTHORIZATION: i64 = 3;
    pub const INVALID_TOKEN: i64 = 4;
    pub const NO_DATA: i64 = 5;
    pub const INVALID_DATA_FORMAT: i64 = 6;
    pub const INCORRECT_INDEX: i64 = 7;
    pub const INTERNAL_ERROR: i64 = 8;
    pub const SERVER_BUSY: i64 = 9;
    pub const CHANNEL_MISSING: i64 = 10;
    pub const INVALID_CHANNEL: i64 = 11;
    pub const EVENT_REQUIRED: i64 = 12;
    pub const EVENT_BLANK: i64 = 13;
    pub const ACK_DISABLED: i64 = 14;
    pub const INDEXED_FIELDS: i64 = 15;
    pub const QUERY_AUTH_DISABLED: i64 = 16;
    pub const HEALTHY: i64 = 17;
    pub const QUEUES_FULL: i64 = 18;
    pub const ACK_UNAVAILABLE: i64 = 19;
    pub const QUEUES_FULL_ACK_UNAVAILABLE: i64 = 20;
    pub const SHUTTING_DOWN: i64 = 23;
}

/// What the collector said to one `/services/collector/event` request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `{"text":"Success","code":0}`, with `ackId` when the token has
    /// indexer acknowledgement.
    Success { ack_id: Option<u64> },
    /// Any other HTTP answer.
    Error {
        status: u16,
        code: Option<i64>,
        text: String,
        /// `invalid-event-number`: 0-based index of the event where the
        /// collector stopped.
        invalid_event: Option<usize>,
    },
    /// No HTTP answer: connection refused or reset, timeout, TLS failure.
    Transport { timeout: bool, message: String },
}

impl Answer {
    /// Value of the `status` label of `mlsoc_sink_requests_total`.
    pub fn status_label(&self) -> String {
        match self {
            Answer::Success { .. } => "200".into(),
            Answer::Error { status, .. } => status.to_string(),
            Answer::Transport { .. } => "error".into(),
        }
    }

    /// `HEC code N: text` (or `HTTP S: text` without a code), for logs and
    /// dead letters.
    pub fn describe(&self) -> String {
        match self {
            Answer::Success { .. } => "Success".into(),
            Answer::Error {
                status, code, text, ..
            } => match code {
                Some(c) => format!("HEC code {c}: {text}"),
                None => format!("HTTP {status}: {text}"),
            },
            Answer::Transport { message, .. } => message.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default, rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(default, rename = "invalid-event-number")]
    invalid_event: Option<i64>,
}

#[derive(Deserialize)]
struct AckReply {
    acks: HashMap<String, bool>,
}

/// Reads an answer's status and body.
pub fn parse_answer(status: u16, body: &[u8]) -> Answer {
    let reply: Option<Reply> = serde_json::from_slice(body).ok();
    // Only a HEC success delivers: a 200 from something else (a proxy's
    // login page) does not.
    if status == 200
        && let Some(r) = &reply
        && (r.code == Some(code::SUCCESS)
            || (r.code.is_none() && r.text.as_deref() == Some("Success")))
    {
        return Answer::Success { ack_id: r.ack_id };
    }
    let (code, text, invalid_event) = match reply {
        Some(r) => (
            r.code,
            r.text.unwrap_or_default(),
            r.invalid_event.and_then(|n| usize::try_from(n).ok()),
        ),
        None => (None, excerpt(body), None),
    };
    Answer::Error {
        status,
        code,
        text,
        invalid_event,
    }
}

/// The start of a non-JSON body, printable, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The HTTP side of the sink.
pub struct HecService {
    client: reqwest::Client,
    event_url: String,
    ack_url: String,
    compression: Compression,
    channel: String,
}

impl HecService {
    pub fn new(config: &SplunkHecConfig, token: &Secret) -> Result<HecService, String> {
        let base = config.endpoint.trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|e| format!("endpoint `{base}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("endpoint `{base}`: scheme must be http or https"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("endpoint: put credentials in `token`, not in the URL".into());
        }
        let channel = uuid::Uuid::new_v4().to_string();
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Splunk {}", token.expose()))
            .map_err(|_| "the HEC token cannot be sent in a header".to_owned())?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        headers.insert(
            "X-Splunk-Request-Channel",
            HeaderValue::from_str(&channel).expect("a uuid is a valid header value"),
        );
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("mlsoc/", env!("CARGO_PKG_VERSION")))
            // Answers are never compressed by us; leave them alone.
            .no_gzip();
        if let Some(ca) = &config.tls.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls.ca_file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("tls.ca_file {}: no certificate", ca.display()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if !config.tls.verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HecService {
            client,
            event_url: format!("{base}/services/collector/event"),
            ack_url: format!("{base}/services/collector/ack"),
            compression: config.compression,
            channel,
        })
    }

    /// The channel this sink sends on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Posts a body of concatenated envelopes.
    pub async fn send(&self, body: Vec<u8>) -> Answer {
        let mut req = self
            .client
            .post(&self.event_url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let body = match self.compression {
            Compression::None => body,
            Compression::Gzip => {
                req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
                gzip(&body)
            }
        };
        match req.body(body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(b) => parse_answer(status, &b),
                    Err(e) => transport(e),
                }
            }
            Err(e) => transport(e),
        }
    }

    /// Asks which of `ids` are indexed. Ids the collector does not mention
    /// count as not yet indexed.
    pub async fn poll_acks(&self, ids: &[u64]) -> Result<HashMap<u64, bool>, Answer> {
        let body = serde_json::json!({ "acks": ids });
        let resp = self
            .client
            .post(&self.ack_url)
            .json(&body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status != 200 {
            return Err(parse_answer(status, &bytes));
        }
        let reply: AckReply = serde_json::from_slice(&bytes).map_err(|_| Answer::Error {
            status,
            code: None,
            text: format!("unexpected ack answer: {}", excerpt(&bytes)),
            invalid_event: None,
        })?;
        Ok(reply
            .acks
            .into_iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
            .collect())
    }
}

fn transport(e: reqwest::Error) -> Answer {
    // reqwest's message names the URL (never the token, which is a header)
    // and the cause chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    Answer::Transport {
        timeout: e.is_timeout(),
        message,
    }
}

pub fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hec_answers() {
        assert_eq!(
            parse_answer(200, br#"{"text":"Success","code":0}"#),
            Answer::Success { ack_id: None }
        );
        assert_eq!(
            parse_answer(200, br#"{"text":"Success","code":0,"ackId":7}"#),
            Answer::Success { ack_id: Some(7) }
        );
        let a = parse_answer(
            400,
            br#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#,
        );
        assert_eq!(
            a,
            Answer::Error {
                status: 400,
                code: Some(6),
                text: "Invalid data format".into(),
                invalid_event: Some(3)
            }
        );
        assert_eq!(a.describe(), "HEC code 6: Invalid data format");
        assert_eq!(a.status_label(), "400");
        let proxy = parse_answer(502, b"<html>\nBad gateway</html>");
        assert_eq!(proxy.describe(), "HTTP 502: <html> Bad gateway</html>");
        assert!(matches!(
            parse_answer(200, b"<html>login</html>"),
            Answer::Error { status: 200, .. }
        ));
        assert!(matches!(
            parse_answer(200, b"{}"),
            Answer::Error { status: 200, .. }
        ));
    }
}
