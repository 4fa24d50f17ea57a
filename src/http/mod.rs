//! The HTTP server: health, readiness, metrics and the read API, behind tracing, timeout and body-limit layers.

use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::ledger::Ledger;

mod alerts;
mod api;
mod dashboard;
pub mod error;
mod github;
mod lists;
pub mod live;
pub mod server;
pub mod session;

use error::ApiError;

/// Bodies above this get 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub ledger: Ledger,
    pub api_token: Option<Arc<SecretString>>,
    /// The handlers of each chat platform that is on, by its name; its endpoints (in its glue
    /// file) take theirs back with `chat_handlers`.
    pub chat: Arc<BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>>,
    /// The GitHub webhook's handlers when GitHub is on.
    pub github: Option<crate::integrations::github::GithubHandlers>,
    /// The alert endpoints' settings when `OPSLEDGER_ALERTS_TOKEN` is set.
    pub alerts: Option<crate::integrations::alerts::AlertsConfig>,
    /// What open dashboard pages are told as records change (`GET /events`).
    pub live: live::Live,
    /// Dashboard sign-in: session cookies, and how people sign in.
    pub sessions: session::Sessions,
}

impl AppState {
    /// A chat platform's handlers, when it is on.
    pub fn chat_handlers<H: Any>(&self, platform: &str) -> Option<&H> {
        self.chat.get(platform)?.downcast_ref::<H>()
    }
}

pub fn router(state: AppState) -> Router {
    let platforms = crate::integrations::platform::CHAT_PLATFORMS
        .iter()
        .fold(github::routes().merge(alerts::routes()), |routes, p| {
            routes.merge(p.routes())
        });
    let api = Router::new()
        .route("/api/v1/audit", get(api::audit))
        .route("/api/v1/reports", get(api::report))
        .route("/api/v1/{collection}", get(api::list))
        .route("/api/v1/{collection}/{id}", get(api::get))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(dashboard::routes(state.clone()))
        .merge(session::routes())
        .merge(platforms.route_layer(middleware::from_fn_with_state(state.clone(), count_inbound)))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(middleware::from_fn(plain_text_uri))
        // Router layers wrap every route, the 405 answers and the fallback, so the body limit
        // holds for unknown paths and wrong methods too; observe sees (and counts) its 413s.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn readyz(State(app): State<AppState>) -> Result<&'static str, ApiError> {
    app.ledger
        .store()
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok("ready")
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    // The depth is read at scrape time, so it is right whichever replica delivered.
    match app.ledger.store().outbox_pending().await {
        Ok(n) => app.ledger.metrics().set_outbox_pending(n),
        Err(e) => tracing::warn!(error = %e, "cannot read the outbox depth for /metrics"),
    }
    match app.ledger.store().outbox_parked().await {
        Ok(n) => app.ledger.metrics().set_outbox_parked(n),
        Err(e) => tracing::warn!(error = %e, "cannot read the parked messages for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.ledger.metrics().render(),
    )
}

/// Whether a request carries `Authorization: Bearer <token>` (compared in constant time).
pub(crate) fn has_bearer(req: &Request, token: &SecretString) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    constant_time_eq::constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
}

/// Bearer-token check for the API. Without a configured token the server is loopback-only
/// (start-up refuses anything else), so every caller is local.
async fn require_token(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &app.api_token {
        if !has_bearer(&req, token) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

/// Answers 400 to a path or query that decodes to bytes that are not UTF-8 or to control or
/// bidirectional characters, naming the problem, before any handler (or the store) sees it.
async fn plain_text_uri(req: Request, next: Next) -> Result<Response, ApiError> {
    let uri = req.uri();
    let parts = std::iter::once(uri.path()).chain(
        uri.query()
            .into_iter()
            .flat_map(|q| q.split('&').flat_map(|kv| kv.split('='))),
    );
    for part in parts {
        let plus = part.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&plus).collect::<Vec<u8>>();
        let text = crate::domain::text::utf8(&decoded)
            .map_err(|e| ApiError::BadRequest(format!("the URL: {e}")))?;
        crate::domain::text::check(text)
            .map_err(|e| ApiError::BadRequest(format!("the URL: {e}")))?;
    }
    Ok(next.run(req).await)
}

/// Answers 413 to a body over `BODY_LIMIT` whatever the route or method: at once when its
/// `Content-Length` says so, otherwise (a chunked body) after reading at most the limit.
async fn limit_body(req: Request, next: Next) -> Result<Response, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > BODY_LIMIT as u64 => Err(ApiError::PayloadTooLarge(BODY_LIMIT)),
        // hyper ends the body at its declared length, so it cannot grow past the limit.
        Some(_) => Ok(next.run(req).await),
        None if req.body().size_hint().exact() == Some(0) => Ok(next.run(req).await),
        None => {
            let (parts, body) = req.into_parts();
            let bytes = read_limited(body, BODY_LIMIT).await?;
            Ok(next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await)
        }
    }
}

/// Reads a whole body, failing with 413 as soon as it passes `limit` bytes.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Marks a response to a delivery already processed, for the inbound count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redelivery;

/// Counts each request from a platform by what it got: `ok`, `bad_signature`, `bad_request`,
/// `duplicate` (a redelivery, answered 200 and ignored), `off` (the platform is not configured),
/// `too_large` or `error`.
async fn count_inbound(State(app): State<AppState>, req: Request, next: Next) -> Response {
    // Each platform's endpoints live under `/<platform>/`.
    let platform = match req.uri().path().split('/').nth(1) {
        Some(p) if crate::integrations::platform::actor_platforms().contains(&p) => p.to_string(),
        _ => "other".to_string(),
    };
    let resp = next.run(req).await;
    let result = match resp.status().as_u16() {
        _ if resp.extensions().get::<Redelivery>().is_some() => "duplicate",
        200..=299 => "ok",
        401 => "bad_signature",
        400 => "bad_request",
        404 => "off",
        413 => "too_large",
        _ => "error",
    };
    app.ledger.metrics().inbound(&platform, result);
    resp
}

async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    app.ledger
        .metrics()
        .http(&route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Whether an address only accepts local connections.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
