//! Transport: one client of the official `elasticsearch` crate per
//! endpoint (its `TransportBuilder` does auth headers, gzip request bodies,
//! TLS roots and the request timeout), round-robin over the endpoints with
//! failover to the next one when a node cannot be reached.
//!
//! The answer is returned raw (status and body bytes): the sink reads every
//! item of a `_bulk` answer itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials as EsCredentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::Method;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::IndicesPutIndexTemplateParts;

use super::config::{Compression, Credentials, ElasticsearchConfig};

/// An answer: HTTP status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// No endpoint could be connected to (refused, unreachable, DNS, TLS
    /// handshake).
    Connect(String),
    /// No answer within `request_timeout`.
    Timeout(String),
    /// The connection broke mid-request or mid-answer.
    Other(String),
}

impl SendError {
    /// Metrics label.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            SendError::Connect(_) => "connection",
            SendError::Timeout(_) => "timeout",
            SendError::Other(_) => "transport",
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(m) => write!(f, "cannot connect: {m}"),
            SendError::Timeout(m) => write!(f, "timed out: {m}"),
            SendError::Other(m) => write!(f, "{m}"),
        }
    }
}

struct Node {
    /// The endpoint as configured (it never holds credentials: the config
    /// check refuses URLs with them). Shown in logs.
    url: String,
    client: Elasticsearch,
}

/// The cluster's endpoints.
pub(crate) struct Service {
    nodes: Vec<Node>,
    next: AtomicUsize,
    timeout: Duration,
}

// No derive: the clients' Debug would show the credentials.
impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field(
                "endpoints",
                &self.nodes.iter().map(|n| &n.url).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn new(
        config: &ElasticsearchConfig,
        creds: &Credentials,
    ) -> Result<Service, String> {
        let ca = match &config.tls.ca_file {
            Some(path) if config.tls.verify => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!(
                        "tls.ca_file: cannot read `{}`: {}",
                        path.display(),
                        e.kind()
                    )
                })?;
                Some(pem)
            }
            _ => None,
        };
        let mut nodes = Vec::with_capacity(config.endpoints.len());
        for raw in &config.endpoints {
            let url = super::config::check_endpoint(raw)?;
            let mut b = TransportBuilder::new(SingleNodeConnectionPool::new(url))
                .timeout(config.request_timeout)
                .request_body_compression(config.compression == Compression::Gzip)
                .enable_meta_header(false);
            b = match creds {
                Credentials::None => b,
                Credentials::Basic { user, password } => b.auth(EsCredentials::Basic(
                    user.clone(),
                    password.expose().to_owned(),
                )),
                Credentials::ApiKey(encoded) => {
                    b.auth(EsCredentials::EncodedApiKey(encoded.expose().to_owned()))
                }
            };
            if !config.tls.verify {
                b = b.cert_validation(CertificateValidation::None);
            } else if let Some(pem) = &ca {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    format!(
                        "tls.ca_file: `{}` holds no usable PEM certificate: {e}",
                        config
                            .tls
                            .ca_file
                            .as_deref()
                            .unwrap_or(std::path::Path::new(""))
                            .display()
                    )
                })?;
                b = b.cert_validation(CertificateValidation::Full(cert));
            }
            // The build error names what is wrong with the TLS setup; it
            // never holds credentials.
            let transport = b
                .build()
                .map_err(|e| format!("endpoints: cannot set up a client for `{raw}`: {e}"))?;
            nodes.push(Node {
                url: raw.trim().to_owned(),
                client: Elasticsearch::new(transport),
            });
        }
        Ok(Service {
            nodes,
            next: AtomicUsize::new(0),
            timeout: config.request_timeout,
        })
    }

    /// POSTs a `_bulk` body (NDJSON, ends with `\n`). Starts at the next
    /// endpoint in turn and moves on to the following one when a node
    /// cannot be connected to.
    ///
    /// The body goes out as it is: through the client's generic `send`
    /// (the same request `client.bulk()` makes), a `Bytes` body is not
    /// copied again, where `bulk()`'s body (a list of items) is written
    /// into a new buffer grown from 1 KiB for every request.
    pub(crate) async fn bulk(&self, body: Bytes) -> Result<Answer, SendError> {
        self.with_failover(|client| {
            let body = body.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                client
                    .send(
                        Method::Post,
                        "/_bulk",
                        headers,
                        Option::<&()>::None,
                        Some(body),
                        None,
                    )
                    .await
            }
        })
        .await
    }

    /// PUTs index template `name`.
    pub(crate) async fn put_index_template(
        &self,
        name: &str,
        template: &serde_json::Value,
    ) -> Result<Answer, SendError> {
        self.with_failover(|client| {
            let template = template.clone();
            async move {
                client
                    .indices()
                    .put_index_template(IndicesPutIndexTemplateParts::Name(name))
                    .body(template)
                    .send()
                    .await
            }
        })
        .await
    }

    async fn with_failover<'a, F, Fut>(&'a self, call: F) -> Result<Answer, SendError>
    where
        F: Fn(&'a Elasticsearch) -> Fut,
        Fut: std::future::Future<
                Output = Result<elasticsearch::http::response::Response, elasticsearch::Error>,
            >,
    {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut last = SendError::Connect("no endpoint".into());
        for k in 0..n {
            let node = &self.nodes[(start + k) % n];
            // The crate's timeout covers connecting and the whole answer;
            // this one is a backstop in case a body stream stalls.
            let attempt = async {
                let resp = call(&node.client).await?;
                let status = resp.status_code().as_u16();
                let body = resp.bytes().await?;
                Ok::<_, elasticsearch::Error>(Answer { status, body })
            };
            match tokio::time::timeout(self.timeout + Duration::from_secs(5), attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    let err = classify(&e, &node.url);
                    if let SendError::Connect(msg) = &err {
                        if n > 1 {
                            tracing::warn!(endpoint = %node.url, error = %msg, "Elasticsearch endpoint unreachable; trying the next one");
                        }
                        last = err;
                        continue;
                    }
                    return Err(err);
                }
                Err(_) => {
                    return Err(SendError::Timeout(format!(
                        "{}: no answer within {:?}",
                        node.url, self.timeout
                    )));
                }
            }
        }
        Err(last)
    }
}

/// Sorts a client error and words it with its causes (the chain ends in
/// the OS error, e.g. "Connection refused"). The chain holds URLs and
/// socket errors, never request headers, so no credentials.
fn classify(e: &elasticsearch::Error, endpoint: &str) -> SendError {
    let mut msg = format!("{endpoint}: {e}");
    let mut src = std::error::Error::source(e);
    let mut connect = false;
    let mut timeout = e.is_timeout();
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            connect |= r.is_connect();
            timeout |= r.is_timeout();
        }
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    if timeout {
        SendError::Timeout(msg)
    } else if connect {
        SendError::Connect(msg)
    } else {
        SendError::Other(msg)
    }
}
