//! The one HTTP error type: logs the internal cause, answers with a short message and never leaks it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token: send `Authorization: Bearer <OPSLEDGER_API_TOKEN>`")]
    Unauthorized,
    #[error("missing or wrong credentials: send `Authorization: Bearer <OPSLEDGER_ALERTS_TOKEN>`, or basic auth with the token as the password")]
    AlertsUnauthorized,
    /// A platform request (Slack, Discord, GitHub) whose signature did not verify.
    #[error("the request signature is missing, stale or wrong")]
    BadSignature,
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than the {} KiB limit", .0 / 1024)]
    PayloadTooLarge(usize),
    #[error("the database is not answering")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::AlertsUnauthorized | ApiError::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &self {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                tracing::error!(error = ?cause, "request failed");
            }
            _ => {}
        }
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}
