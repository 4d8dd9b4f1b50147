//! The daemon's HTTP endpoint: `/metrics` in the Prometheus text format and
//! `/health` (200 while the pipeline runs, 503 once it is shutting down).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Installs the process-wide metrics recorder (once) and returns its handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let h = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    Ok(HANDLE.get_or_init(|| h).clone())
}

#[derive(Clone)]
struct Api {
    metrics: PrometheusHandle,
    healthy: Arc<AtomicBool>,
}

/// Serves the endpoint until `stop`. Returns the bound address at once.
pub async fn serve(
    address: SocketAddr,
    metrics: PrometheusHandle,
    healthy: Arc<AtomicBool>,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("api: cannot listen on {address}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health))
        .with_state(Api { metrics, healthy });
    let task = tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "api server failed");
        }
    });
    Ok((bound, task))
}

async fn metrics_handler(State(api): State<Api>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        api.metrics.render(),
    )
}

async fn health(State(api): State<Api>) -> impl IntoResponse {
    if api.healthy.load(Ordering::Relaxed) {
        (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"status\":\"ok\"}",
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "application/json")],
            "{\"status\":\"shutting_down\"}",
        )
    }
}
