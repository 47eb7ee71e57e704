//! JSON errors of the HTTP API: `{"error": {"code": "...", "message": "..."}}`.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// An API error; its code is stable and machine-readable.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (e.g. a pid that is not a positive integer).
    #[error("{0}")]
    BadRequest(String),
    /// The resource does not exist (e.g. a pid gocpu does not track).
    #[error("{0}")]
    NotFound(String),
    /// The daemon failed internally.
    #[error("{0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = Body {
            error: Inner {
                code,
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// Parses a pid path segment: a positive decimal integer that fits a pid.
pub fn parse_pid(raw: &str) -> Result<u32, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid pid {raw:?}: expected a positive integer"));
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match raw.parse::<u32>() {
        Ok(0) | Err(_) => Err(bad()),
        // Linux pids are at most 2^22 (PID_MAX_LIMIT).
        Ok(p) if p > 4_194_304 => Err(bad()),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_parsing_accepts_only_positive_pids() {
        assert!(matches!(parse_pid("1"), Ok(1)));
        assert!(matches!(parse_pid("4194304"), Ok(4194304)));
        for bad in [
            "",
            "0",
            "-1",
            "+5",
            "abc",
            "12a",
            " 1",
            "99999999999",
            "4194305",
            "1.0",
        ] {
            assert!(
                matches!(parse_pid(bad), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
