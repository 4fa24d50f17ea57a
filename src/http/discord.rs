//! `POST /discord/interactions`: verify Discord's Ed25519 signature and timestamp, parse the
//! interaction with the adapter, and answer it with the Discord handlers.
//!
//! Every request that fails verification gets 401 and changes nothing: Discord probes the
//! endpoint with bad signatures and removes one that accepts them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};

use crate::integrations::BadInput;

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/discord/interactions", post(interactions))
}

async fn interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let discord = app.discord.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "Discord is not configured (set DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN and DISCORD_APPLICATION_ID)"
                .into(),
        )
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = app.ledger.time().now().timestamp();
    discord
        .config
        .verifier
        .verify(
            header(opsledger_discord::SIGNATURE_HEADER),
            header(opsledger_discord::TIMESTAMP_HEADER),
            &body,
            now,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "rejected a Discord request");
            ApiError::BadSignature
        })?;
    let interaction = opsledger_discord::parse_interaction(&body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (answer, delivered) = discord
        .interaction(interaction)
        .await
        .map_err(|BadInput(e)| ApiError::BadRequest(e))?;
    let mut response = Json(answer).into_response();
    if delivered == crate::integrations::Delivered::Again {
        response.extensions_mut().insert(super::Redelivery);
    }
    Ok(response)
}
