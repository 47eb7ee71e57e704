//! The HTTP API (axum): `/metrics`, `/processes`, `/processes/{pid}`, `/daemon`, `/healthz`,
//! `/readyz`.
pub mod daemon;
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
    http::{HeaderMap, StatusCode, header},
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

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route, as OpenAPI spells its path (the router and the document must agree: tested).
pub const ROUTES: [&str; 11] = [
    "/metrics",
    "/daemon",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/processes",
    "/processes/{pid}",
    "/processes/{pid}/hotspots",
    "/processes/{pid}/threads",
    "/processes/{pid}/pprof",
    "/processes/{pid}/flamegraph.svg",
];

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route("/processes", get(processes::list))
        .route("/processes/{pid}", get(processes::detail))
        .route("/processes/{pid}/hotspots", get(hotspots::hotspots_handler))
        .route("/processes/{pid}/threads", get(threads::threads_handler))
        .route("/processes/{pid}/pprof", get(exports::pprof_handler))
        .route(
            "/processes/{pid}/flamegraph.svg",
            get(exports::flamegraph_handler),
        )
        .route("/daemon", get(daemon::daemon_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

/// `/metrics`: OpenMetrics when the client asks for it (Prometheus does), the classic text
/// format otherwise.
async fn metrics_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let format =
        metrics::Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Encoding locks the model and the probe manager briefly: do it off the async workers.
    let registry = Arc::clone(&state.registry);
    let text = tokio::task::spawn_blocking(move || metrics::render(&registry, format))
        .await
        .map_err(|e| ApiError::Internal(format!("metrics task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("metrics encoding failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], text))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn openapi_documents_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort_unstable();
        let mut routes = ROUTES.to_vec();
        routes.sort_unstable();
        assert_eq!(documented, routes);
        // The router registers every route (an unknown path answers 404 through the fallback,
        // so check the source of truth: each ROUTES entry appears in `router`).
        let src = include_str!("mod.rs");
        for r in ROUTES {
            assert!(src.contains(&format!("\"{r}\"")), "{r} not routed");
        }
    }
}
