//! Dashboard sign-in: sessions in signed cookies that name the person (their actor), started
//! with "Sign in with Slack" (OpenID Connect) when the Slack app's OAuth client is set, or with
//! the API token. A session lets its holder see the dashboard from anywhere, and gives "my
//! incidents" and "waiting for my vote" someone to be about.
//!
//! The cookie is `base64url(actor).expiry.HMAC-SHA256`, under `OPSLEDGER_SESSION_SECRET`: the
//! server keeps no session table, so every replica with the same secret accepts it. Written by
//! hand (a dozen lines over `hmac`) rather than with tower-sessions or axum-extra's signed jar,
//! which would bring a session store or cookie crates for one cookie.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::config::SessionArgs;
use crate::domain::ids::Actor;

use super::error::ApiError;
use super::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "opsledger_session";
/// The cookie that carries a Slack sign-in's `state` from its start to its callback.
const STATE_COOKIE: &str = "opsledger_signin";
/// How long a Slack sign-in may take, from the redirect to the callback.
const STATE_SECONDS: i64 = 600;
/// The shortest `OPSLEDGER_SESSION_SECRET` accepted.
const MIN_SECRET: usize = 32;

/// "Sign in with Slack": the Slack app's OAuth client and where Slack is.
#[derive(Clone)]
pub struct SlackSignIn {
    pub client_id: String,
    pub client_secret: Arc<SecretString>,
    /// The Web API (`SLACK_API_URL`), for `openid.connect.*`.
    pub api_url: String,
    /// Slack's authorize page.
    pub authorize_url: String,
    /// Only members of this workspace may sign in (`SLACK_TEAM_ID`).
    pub team_id: Option<String>,
}

/// Issues and reads session cookies; knows how people sign in.
#[derive(Clone)]
pub struct Sessions {
    key: Arc<SecretSlice<u8>>,
    lifetime: chrono::Duration,
    /// Cookies marked `Secure` when the public URL is HTTPS.
    secure: bool,
    public_url: String,
    token: Option<Arc<SecretString>>,
    slack: Option<SlackSignIn>,
    http: reqwest::Client,
    /// Makes each sign-in's state unique, with the time.
    counter: Arc<AtomicU64>,
}

impl Sessions {
    pub fn new(
        args: &SessionArgs,
        public_url: &str,
        token: Option<Arc<SecretString>>,
        slack: Option<SlackSignIn>,
    ) -> anyhow::Result<Sessions> {
        let key: Vec<u8> = match &args.session_secret {
            Some(s) if s.expose_secret().len() >= MIN_SECRET => s.expose_secret().as_bytes().to_vec(),
            Some(_) => anyhow::bail!(
                "OPSLEDGER_SESSION_SECRET is too short: use at least {MIN_SECRET} characters (for example `openssl rand -hex 32`)"
            ),
            None => random_key(),
        };
        Ok(Sessions {
            key: Arc::new(key.into()),
            lifetime: chrono::Duration::from_std(args.session_lifetime)
                .unwrap_or(chrono::Duration::hours(12)),
            secure: public_url.starts_with("https://"),
            public_url: public_url.trim_end_matches('/').to_string(),
            token,
            slack,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            counter: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Sessions with a random key and no way to sign in: for a router built without `serve`.
    pub fn off() -> Sessions {
        Sessions::new(&SessionArgs::default(), "http://127.0.0.1", None, None)
            .unwrap_or_else(|_| unreachable!("no secret to be too short"))
    }

    /// Whether Slack sign-in is on (for `serve`'s status line).
    pub fn slack_on(&self) -> bool {
        self.slack.is_some()
    }

    fn mac(&self, purpose: &str, data: &str) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(purpose.as_bytes());
        mac.update(b"\n");
        mac.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A session cookie's value for `actor`, valid for the configured lifetime from `now`.
    pub fn issue(&self, actor: &Actor, now: DateTime<Utc>) -> String {
        let payload = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(actor.as_str()),
            (now + self.lifetime).timestamp()
        );
        let mac = self.mac("session", &payload);
        format!("{payload}.{mac}")
    }

    /// The person a session cookie's value names, if it is ours, intact and not expired.
    pub fn actor(&self, value: &str, now: DateTime<Utc>) -> Option<Actor> {
        let (payload, mac) = value.rsplit_once('.')?;
        if !constant_time_eq::constant_time_eq(
            mac.as_bytes(),
            self.mac("session", payload).as_bytes(),
        ) {
            return None;
        }
        let (who, expires) = payload.split_once('.')?;
        if expires.parse::<i64>().ok()? <= now.timestamp() {
            return None;
        }
        let who = String::from_utf8(URL_SAFE_NO_PAD.decode(who).ok()?).ok()?;
        Actor::parse_person(&who).ok()
    }

    /// The signed-in person of a request, if any.
    pub fn viewer(&self, headers: &HeaderMap) -> Option<Actor> {
        self.actor(&cookie(headers, COOKIE)?, Utc::now())
    }

    fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: i64,
    ) -> (header::HeaderName, HeaderValue) {
        let secure = if self.secure { "; Secure" } else { "" };
        let text =
            format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
        (
            header::SET_COOKIE,
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("")),
        )
    }

    /// A fresh, unguessable value: a MAC of the time and a counter under the secret key.
    fn fresh(&self, purpose: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        self.mac(purpose, &format!("{t}.{n}"))
    }

    fn redirect_uri(&self) -> String {
        format!("{}/signin/slack/callback", self.public_url)
    }
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    if let Err(e) = getrandom::getrandom(&mut key) {
        // No randomness from the system is not something to carry on without.
        panic!("cannot read random bytes for the session key: {e}");
    }
    key
}

/// A cookie's value from a request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin", get(sign_in_page).post(sign_in_with_token))
        .route("/signout", post(sign_out))
        .route("/signin/slack", get(slack_start))
        .route("/signin/slack/callback", get(slack_callback))
}

#[derive(Template)]
#[template(path = "dashboard/signin.html")]
struct SignInPage {
    title: &'static str,
    slack: bool,
    /// Whether the form asks for the API token (it is set).
    token: bool,
    who: Option<String>,
    error: Option<String>,
}

fn page(
    app: &AppState,
    who: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let html = super::dashboard::html(&SignInPage {
        title: "Sign in",
        slack: app.sessions.slack.is_some(),
        token: app.sessions.token.is_some(),
        who,
        error,
    })?;
    Ok((status, html).into_response())
}

async fn sign_in_page(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = app.sessions.viewer(&headers).map(|a| a.to_string());
    page(&app, who, None, StatusCode::OK)
}

#[derive(Debug, serde::Deserialize)]
pub struct TokenForm {
    #[serde(rename = "as")]
    who: String,
    #[serde(default)]
    token: String,
}

/// Signs in as the account named, proven by the API token (when one is set: without it the
/// dashboard is open to this machine alone, and anyone at it may say who they are).
async fn sign_in_with_token(
    State(app): State<AppState>,
    Form(f): Form<TokenForm>,
) -> Result<Response, ApiError> {
    if let Some(token) = &app.sessions.token {
        if !constant_time_eq::constant_time_eq(f.token.as_bytes(), token.expose_secret().as_bytes())
        {
            return page(
                &app,
                None,
                Some("That is not the API token.".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
    }
    let who = match crate::domain::text::check(f.who.trim()).map_err(|e| e.to_string()).and_then(|()| {
        crate::integrations::platform::parse_person(f.who.trim()).map_err(|e| e.to_string())
    }) {
        Ok(a) => a,
        Err(e) => {
            return page(
                &app,
                None,
                Some(format!("{e}: give your account as platform:id, for example slack:U024BE7LH or console:alice.")),
                StatusCode::BAD_REQUEST,
            )
        }
    };
    Ok(signed_in(&app, &who, None))
}

/// Sets the session cookie for `who` and goes to their page.
fn signed_in(app: &AppState, who: &Actor, clear: Option<&str>) -> Response {
    let s = &app.sessions;
    let value = s.issue(who, Utc::now());
    let mut resp = Redirect::to("/mine").into_response();
    let (name, v) = s.set_cookie(COOKIE, &value, s.lifetime.num_seconds());
    resp.headers_mut().append(name, v);
    if let Some(c) = clear {
        let (name, v) = s.set_cookie(c, "", 0);
        resp.headers_mut().append(name, v);
    }
    tracing::info!(actor = %who, "signed in to the dashboard");
    resp
}

async fn sign_out(State(app): State<AppState>) -> Response {
    let mut resp = Redirect::to("/signin").into_response();
    let (name, v) = app.sessions.set_cookie(COOKIE, "", 0);
    resp.headers_mut().append(name, v);
    resp
}

/// Sends the browser to Slack, with a `state` it must bring back.
async fn slack_start(State(app): State<AppState>) -> Result<Response, ApiError> {
    let s = &app.sessions;
    let Some(slack) = &s.slack else {
        return Err(ApiError::NotFound(
            "Sign in with Slack is off: set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET".into(),
        ));
    };
    let state = s.fresh("state");
    let nonce = s.fresh("nonce");
    let url = opsledger_slack::oidc::authorize_url(
        &slack.authorize_url,
        &slack.client_id,
        &s.redirect_uri(),
        &state,
        &nonce,
        slack.team_id.as_deref(),
    );
    let mut resp = Redirect::to(&url).into_response();
    let (name, v) = s.set_cookie(STATE_COOKIE, &state, STATE_SECONDS);
    resp.headers_mut().append(name, v);
    Ok(resp)
}

#[derive(Debug, serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Where Slack sends the browser back: the state checked, the code exchanged for the person.
async fn slack_callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Callback>, QueryRejection>,
) -> Result<Response, ApiError> {
    let s = &app.sessions;
    let Some(slack) = &s.slack else {
        return Err(ApiError::NotFound("Sign in with Slack is off".into()));
    };
    let cb = super::lists::params(q)?;
    if let Some(e) = cb.error {
        return page(
            &app,
            None,
            Some(format!("Slack did not sign you in ({e}).")),
            StatusCode::UNAUTHORIZED,
        );
    }
    let expected = cookie(&headers, STATE_COOKIE).unwrap_or_default();
    let given = cb.state.unwrap_or_default();
    if expected.is_empty()
        || !constant_time_eq::constant_time_eq(expected.as_bytes(), given.as_bytes())
    {
        return page(
            &app,
            None,
            Some("This sign-in was not started here or took too long: sign in again.".into()),
            StatusCode::BAD_REQUEST,
        );
    }
    let code = cb.code.unwrap_or_default();
    let found = opsledger_slack::oidc::identify(
        &s.http,
        &slack.api_url,
        &slack.client_id,
        slack.client_secret.expose_secret(),
        &code,
        &s.redirect_uri(),
    )
    .await;
    let who = match found {
        Ok(id) if slack.team_id.is_some() && id.team_id != slack.team_id => {
            tracing::warn!(user = %id.user_id, team = ?id.team_id, "refused a Slack sign-in from another workspace");
            return page(
                &app,
                None,
                Some("You signed in to another Slack workspace than this dashboard's.".into()),
                StatusCode::FORBIDDEN,
            );
        }
        Ok(id) => Actor::parse_person(&format!("slack:{}", id.user_id)),
        Err(e @ opsledger_slack::oidc::OidcError::Refused(_)) => {
            return page(
                &app,
                None,
                Some(format!("{e}. Sign in again.")),
                StatusCode::UNAUTHORIZED,
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "Sign in with Slack failed");
            return page(
                &app,
                None,
                Some("Slack could not confirm who you are just now: try again in a minute.".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    match who {
        Ok(who) => Ok(signed_in(&app, &who, Some(STATE_COOKIE))),
        Err(e) => page(
            &app,
            None,
            Some(format!("Slack named no usable account ({e}).")),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(secret: &str) -> Sessions {
        let args = SessionArgs {
            session_secret: Some(secret.to_string().into()),
            session_lifetime: std::time::Duration::from_secs(3600),
        };
        Sessions::new(&args, "https://ops.example.com/", None, None).unwrap()
    }

    #[test]
    fn a_session_names_its_person_until_it_expires_and_only_under_its_key() {
        let s = sessions(&"k".repeat(32));
        let now = Utc::now();
        let alice = Actor::parse("slack:U024BE7LH").unwrap();
        let value = s.issue(&alice, now);
        assert_eq!(s.actor(&value, now), Some(alice.clone()));
        assert_eq!(
            s.actor(&value, now + chrono::Duration::minutes(59)),
            Some(alice)
        );
        assert_eq!(
            s.actor(&value, now + chrono::Duration::minutes(61)),
            None,
            "expired"
        );
        assert_eq!(
            sessions(&"j".repeat(32)).actor(&value, now),
            None,
            "another key"
        );
        // Another person, or a later expiry, under the old MAC.
        let (payload, mac) = value.rsplit_once('.').unwrap();
        let (_, expiry) = payload.split_once('.').unwrap();
        let forged = format!("{}.{expiry}.{mac}", URL_SAFE_NO_PAD.encode("slack:UBOSS"));
        assert_eq!(s.actor(&forged, now), None);
        let later = format!(
            "{}.{}.{mac}",
            payload.split_once('.').unwrap().0,
            expiry.parse::<i64>().unwrap() + 86_400
        );
        assert_eq!(s.actor(&later, now), None);
        assert_eq!(s.actor("garbage", now), None);
        // A system account is no person, whatever the cookie says.
        let system = s.issue(&Actor::system(), now);
        assert_eq!(s.actor(&system, now), None);
    }

    #[test]
    fn a_short_secret_is_refused_at_start_and_https_cookies_are_secure() {
        let args = SessionArgs {
            session_secret: Some("short".to_string().into()),
            ..SessionArgs::default()
        };
        let err = Sessions::new(&args, "http://x", None, None).err().unwrap();
        assert!(
            err.to_string()
                .contains("OPSLEDGER_SESSION_SECRET is too short"),
            "{err}"
        );
        let (_, v) = sessions(&"k".repeat(32)).set_cookie(COOKIE, "v", 60);
        assert_eq!(
            v.to_str().unwrap(),
            "opsledger_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; opsledger_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
