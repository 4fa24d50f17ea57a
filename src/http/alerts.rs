//! `POST /alerts/alertmanager` and `POST /alerts/grafana`: check the token, parse the notification with the adapter, and hand it to the ledger as `alerts:<receiver>`.
//!
//! 404 while `OPSLEDGER_ALERTS_TOKEN` is unset, 401 without the token (checked first), 400 for a
//! body that is not a notification, 413 over the body limit (the router's layer), 503 when the
//! store failed (nothing was recorded, so the sender's retry is acted on). A rejected body
//! changes nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::error::ApiError;
use super::AppState;
use crate::domain::alerts::AlertSource;
use crate::integrations::alerts;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/alerts/alertmanager",
            post(|s, h, b| receive(s, h, b, AlertSource::Alertmanager)),
        )
        .route(
            "/alerts/grafana",
            post(|s, h, b| receive(s, h, b, AlertSource::Grafana)),
        )
}

async fn receive(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
    source: AlertSource,
) -> Result<Response, ApiError> {
    let config = app.alerts.as_ref().ok_or_else(|| {
        ApiError::NotFound("alerts are not configured (set OPSLEDGER_ALERTS_TOKEN)".into())
    })?;
    let metrics = app.ledger.metrics();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !alerts::authorized(authorization, &config.token) {
        metrics.alert("unknown", "unauthorized");
        tracing::warn!(
            source = source.as_str(),
            "rejected an alert notification without the token"
        );
        return Err(ApiError::AlertsUnauthorized);
    }
    let message = opsledger_alerts::parse(&body).map_err(|e| {
        metrics.alert("unknown", "malformed");
        ApiError::BadRequest(e.to_string())
    })?;
    let received = alerts::receive(&app.ledger, alerts::notification(message, source)).await;
    if received.result == "failed" {
        return Err(ApiError::Unavailable(anyhow::anyhow!(
            "alert notification from {} not recorded: {}",
            received.receiver,
            received.answer["ok"]
        )));
    }
    Ok(Json(received.answer).into_response())
}
