//! `GET /processes/{pid}/pprof` (gzipped pprof protobuf for `go tool pprof`) and
//! `GET /processes/{pid}/flamegraph.svg` (interactive flame graph coloured by class).
use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};

use crate::{
    api::{AppState, error::ApiError, window::ProfileRequest},
    export::{flamegraph, pprof},
};

/// `GET /processes/{pid}/pprof?seconds=N`.
pub async fn pprof_handler(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = ProfileRequest::parse(&state.shared, &raw, &q, &["seconds"])?;
    let (samples, exe) = req.samples(&state.shared)?;
    let hz = state.shared.config.sampling.cpu_clock_hz.max(1);
    let period = 1_000_000_000 / i64::try_from(hz).unwrap_or(1);
    let duration = i64::try_from(req.seconds)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000);
    let body = tokio::task::spawn_blocking(move || pprof::encode(&samples, period, duration, &exe))
        .await
        .map_err(|e| ApiError::Internal(format!("pprof task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("pprof encoding failed: {e}")))?;
    let disposition = format!("attachment; filename=\"gocpu-{}.pb.gz\"", req.pid);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `GET /processes/{pid}/flamegraph.svg?seconds=N`.
pub async fn flamegraph_handler(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = ProfileRequest::parse(&state.shared, &raw, &q, &["seconds"])?;
    let (samples, exe) = req.samples(&state.shared)?;
    let title = format!("gocpu: pid {} ({exe}), last {} s", req.pid, req.seconds);
    let svg = tokio::task::spawn_blocking(move || flamegraph::render(&samples, &title))
        .await
        .map_err(|e| ApiError::Internal(format!("flame graph task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("flame graph failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
