//! `/slack/commands`, `/slack/interactions`, `/slack/events`: verify Slack's signature, parse the
//! payload with the adapter, and hand it to the Slack handlers (shared with Socket Mode).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::ExposeSecret;

use crate::integrations::slack::SlackHandlers;
use crate::integrations::{BadInput, Delivered};

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
    let secret = slack.config.signing_secret.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "Slack over HTTP is off: SLACK_SIGNING_SECRET is unset (Socket Mode only)".into(),
        )
    })?;
    // The signature first, over the raw bytes: a forged body is a 401 whatever it holds.
    opsledger_slack::verify_request_bytes(
        secret.expose_secret(),
        header(opsledger_slack::TIMESTAMP_HEADER),
        header(opsledger_slack::SIGNATURE_HEADER),
        body,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, "rejected a Slack request");
        ApiError::BadSignature
    })?;
    crate::domain::text::utf8(body).map_err(|e| ApiError::BadRequest(format!("the body: {e}")))
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Marks the answer to a request that was a repeat, for the inbound count.
fn mark(mut response: Response, delivered: Delivered) -> Response {
    if delivered == Delivered::Again {
        response.extensions_mut().insert(super::Redelivery);
    }
    response
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
    let form = verified(slack, &headers, &body)?;
    // Text that is not UTF-8 is the person's usage error: shown to them alone, like any other.
    if let Err(e) = opsledger_slack::form_is_utf8(form) {
        return Ok(
            Json(serde_json::json!({ "response_type": "ephemeral", "text": e })).into_response(),
        );
    }
    let cmd = opsledger_slack::parse_command(form).map_err(bad)?;
    let (response, delivered) = slack.command(cmd).await.map_err(|BadInput(e)| bad(e))?;
    Ok(mark(Json(response).into_response(), delivered))
}

async fn interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = slack(&app)?;
    let interaction =
        opsledger_slack::parse_interaction(verified(slack, &headers, &body)?).map_err(bad)?;
    let (body, delivered) = slack
        .interaction(interaction)
        .await
        .map_err(|BadInput(e)| bad(e))?;
    Ok(mark(answer(body), delivered))
}

async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = slack(&app)?;
    let push = opsledger_slack::parse_event(verified(slack, &headers, &body)?).map_err(bad)?;
    let (body, delivered) = slack.event(push).await.map_err(|BadInput(e)| bad(e))?;
    Ok(mark(answer(body), delivered))
}
