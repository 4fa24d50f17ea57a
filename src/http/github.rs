//! `POST /github/webhook`: verify `X-Hub-Signature-256` with the adapter (octocrab's verifier),
//! parse the delivery, and hand it to the GitHub handlers, which act on each delivery once.
//!
//! 401 for a bad signature (checked first), 400 only for missing headers or a body that is not a
//! JSON object: a delivery GitHub sends is never refused for its content, since GitHub counts
//! refusals as failures and disables a hook that fails too often.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/github/webhook", post(webhook))
}

async fn webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let github = app.github.as_ref().ok_or_else(|| {
        ApiError::NotFound("GitHub is not configured (set GITHUB_WEBHOOK_SECRET)".into())
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    opsledger_github::verify(
        github.config.webhook_secret.expose_secret(),
        header(opsledger_github::SIGNATURE_HEADER),
        &body,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "rejected a GitHub delivery");
        ApiError::BadSignature
    })?;
    let event = header(opsledger_github::EVENT_HEADER)
        .ok_or_else(|| ApiError::BadRequest("missing X-GitHub-Event header".into()))?
        .to_string();
    let delivery = header(opsledger_github::DELIVERY_HEADER)
        .ok_or_else(|| ApiError::BadRequest("missing X-GitHub-Delivery header".into()))?
        .to_string();
    let parsed = opsledger_github::parse_event(&event, &body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let answer = github
        .delivery(&event, &delivery, parsed)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let duplicate = answer["ok"] == "already processed";
    let mut resp = Json(answer).into_response();
    if duplicate {
        resp.extensions_mut().insert(super::Redelivery);
    }
    Ok(resp)
}
