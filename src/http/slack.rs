//! `/slack/commands`, `/slack/interactions`, `/slack/events`: verify Slack's signature, parse the
//! payload with the adapter, and hand it to the Slack handlers (shared with Socket Mode).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;

use crate::integrations::slack_handlers::{BadInput, SlackHandlers};

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
}

/// The Slack handlers, or 404 when Slack is off.
fn slack(app: &AppState) -> Result<&SlackHandlers, ApiError> {
    app.slack.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "Slack is not configured (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)".into(),
        )
    })
}

/// Checks the v0 signature and the timestamp; a failure is a 401 that changes nothing.
fn verified<'b>(
    slack: &SlackHandlers,
    headers: &HeaderMap,
    body: &'b Bytes,
) -> Result<&'b str, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::BadRequest("body is not UTF-8".into()))?;
    let secret = slack.config.signing_secret.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "Slack over HTTP is off: SLACK_SIGNING_SECRET is unset (Socket Mode only)".into(),
        )
    })?;
    opsledger_slack::verify_request(
        secret.expose_secret(),
        header(opsledger_slack::TIMESTAMP_HEADER),
        header(opsledger_slack::SIGNATURE_HEADER),
        text,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "rejected a Slack request");
        ApiError::BadSignature
    })?;
    Ok(text)
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn answer(body: Option<serde_json::Value>) -> Response {
    match body {
        Some(b) => Json(b).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn commands(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = slack(&app)?;
    let cmd = opsledger_slack::parse_command(verified(slack, &headers, &body)?).map_err(bad)?;
    let response = slack.command(cmd).await.map_err(|BadInput(e)| bad(e))?;
    Ok(Json(response).into_response())
}

async fn interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = slack(&app)?;
    let interaction =
        opsledger_slack::parse_interaction(verified(slack, &headers, &body)?).map_err(bad)?;
    Ok(answer(
        slack
            .interaction(interaction)
            .await
            .map_err(|BadInput(e)| bad(e))?,
    ))
}

async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = slack(&app)?;
    let push = opsledger_slack::parse_event(verified(slack, &headers, &body)?).map_err(bad)?;
    Ok(answer(
        slack.event(push).await.map_err(|BadInput(e)| bad(e))?,
    ))
}
