//! The HTTP API (axum): `/metrics`, `/processes`, `/processes/{pid}`, `/healthz`, `/readyz`.
pub mod error;
pub mod exports;
pub mod hotspots;
pub mod processes;
pub mod threads;
pub mod window;

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::registry::Registry;

use crate::{api::error::ApiError, ingest::Shared, metrics};

/// State shared by the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The daemon's shared state.
    pub shared: Arc<Shared>,
    /// The metrics registry.
    pub registry: Arc<Registry>,
}

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/processes", get(processes::list))
        .route("/processes/{pid}", get(processes::detail))
        .route("/processes/{pid}/hotspots", get(hotspots::hotspots_handler))
        .route("/processes/{pid}/threads", get(threads::threads_handler))
        .route("/processes/{pid}/pprof", get(exports::pprof_handler))
        .route("/processes/{pid}/flamegraph.svg", get(exports::flamegraph_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    // Encoding locks the model and the probe manager briefly: do it off the async workers.
    let registry = Arc::clone(&state.registry);
    let text = tokio::task::spawn_blocking(move || metrics::render(&registry))
        .await
        .map_err(|e| ApiError::Internal(format!("metrics task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("metrics encoding failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
}

/// Liveness: the HTTP server answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: probes loaded and the initial process scan done.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.shared.stats.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
