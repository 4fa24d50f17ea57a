//! Slack integration, the glue between the ledger and the `opsledger-slack` adapter: Slack's side
//! of the `ChatApi` port, and what opsledger does with a slash command, interaction or event,
//! whichever transport brought it (HTTP or Socket Mode: the same handlers serve both). An
//! incident's room is a channel of its own (`inc-<n>-<slug>`, suffixed when the name is taken),
//! its reporter invited; one person is answered through a `response_url`.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use opsledger_slack::{SlackApi, SlackApiError, View};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::config::Integrations;
use crate::domain::reply::{Outcome, Reply};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::{Delivery, Ledger};
use crate::outbox::{DeliveryError, OutboxWaker};

use super::chat::{field, item, Channels, ChatApi, ChatOp, NewRoom, Platform, RoomStyle, To};
use super::forms::{form_command, form_for};
use super::platform::{chat_settings, off_line, ChatGlue, ChatOn, Started, Task};
use super::{ephemeral, person, BadInput, Delivered, Handlers};

pub use super::view;

pub const PLATFORM: &str = "slack";

super::delivery_errors!(SlackApiError);

#[derive(Clone, Debug)]
pub struct SlackConfig {
    /// Set for Slack over HTTP; Socket Mode alone needs none.
    pub signing_secret: Option<SecretString>,
    pub api: SlackApi,
    pub channels: Channels,
}

#[async_trait]
impl ChatApi for SlackConfig {
    const CHAT: Platform = Platform::new(
        PLATFORM,
        "slack-incident-channel",
        RoomStyle::OwnChannel,
        "*",
    );

    fn channels(&self) -> &Channels {
        &self.channels
    }

    /// One person is answered through the `response_url` the handlers kept; Slack answers a
    /// bare `ok` there, which the adapter reads as done.
    async fn send(&self, to: To<'_>, view: &View) -> Result<Option<String>, DeliveryError> {
        let done = match to {
            To::Channel(channel) => return Ok(self.api.post_message(channel, view).await?),
            To::Message(channel, ts) => self.api.update_message(channel, ts, view).await,
            To::Person { payload, .. } => {
                let url = field(payload, "response_url")?;
                self.api.respond(url, view).await
            }
        };
        done.map(|()| None).map_err(DeliveryError::from)
    }

    async fn open_dm(&self, user: &str) -> Result<Option<String>, DeliveryError> {
        Ok(self.api.open_dm(user).await?)
    }

    /// Creates `inc-<n>-<slug>` (or, when that name is taken, `inc-<n>-<slug>-2`, ...) and
    /// invites the reporter when they are a Slack user.
    async fn open_room(&self, room: NewRoom<'_>) -> Result<Option<String>, DeliveryError> {
        let inc = room.incident;
        let name = opsledger_slack::incident_channel_name(inc.id.n, &inc.title);
        let (used, channel) = self.api.create_channel(&name).await?;
        if used != name {
            tracing::info!(record = %inc.id, wanted = %name, channel = %used, "incident channel name was taken; used a suffixed one");
        }
        let reporter = inc.reporter.as_str().strip_prefix("slack:");
        if let (Some(channel), Some(user)) = (&channel, reporter) {
            if let Err(e) = self.api.invite(channel, &[user.to_string()]).await {
                tracing::warn!(error = %e, %channel, "could not invite the reporter to the incident channel");
            }
        }
        Ok(channel)
    }
}

/// The Slack handlers: the ledger, Slack's settings and the outbox.
pub type SlackHandlers = Handlers<SlackConfig>;

impl Handlers<SlackConfig> {
    /// A slash command: runs it and returns the response body (in the channel or ephemeral).
    /// A replay of one already acted on (same `trigger_id`) changes nothing.
    pub async fn command(
        &self,
        cmd: opsledger_slack::SlashCommand,
    ) -> Result<(Value, Delivered), BadInput> {
        let actor = person(PLATFORM, &cmd.user_id)?;
        let handled = match delivery(&cmd.trigger_id) {
            Some(d) => self.ledger.handle_text_once(actor, &cmd.text, d).await,
            None => self.ledger.handle_text(actor, &cmd.text).await,
        };
        let delivered = Delivered::of(&handled.reply);
        let eph = ephemeral(&handled.reply, !handled.events.is_empty());
        Ok((
            opsledger_slack::command_response(&view(&handled.reply), eph),
            delivered,
        ))
    }

    /// A button press or a modal submission. `Some(body)` is an answer for Slack (modal errors);
    /// `None` is a plain acknowledgement.
    pub async fn interaction(
        &self,
        interaction: opsledger_slack::Interaction,
    ) -> Result<(Option<Value>, Delivered), BadInput> {
        match interaction {
            opsledger_slack::Interaction::Button {
                user_id,
                action_id,
                value,
                response_url,
                channel_id,
                trigger_id,
                ..
            } => {
                let actor = person(PLATFORM, &user_id)?;
                // Resolving and rejecting ask for text first: a modal, opened while the trigger lives.
                if let Some(modal) = modal_for(&action_id, &value) {
                    if let Err(e) = self.config.api.open_modal(&trigger_id, &modal).await {
                        tracing::warn!(error = %e, "could not open a Slack modal");
                        if let Some(url) = response_url {
                            let hint = Reply::refused(
                                Some(value.clone()),
                                "slack",
                                format!("could not open the form; type `/ops {action_id} {value} <text>` instead"),
                            );
                            let channel = channel_id.unwrap_or_default();
                            self.respond_later(&channel, &value, &hint, &url).await;
                        }
                    }
                    return Ok((None, Delivered::First));
                }
                // A replayed press (same trigger) already acted on is acknowledged and dropped;
                // one whose first delivery is still running is caught in the writer.
                let once = delivery(&trigger_id);
                if self.seen(once.as_ref()).await {
                    return Ok((None, Delivered::Again));
                }
                // Acknowledge at once; the vote or transition runs after, and its result reaches
                // Slack through the outbox: an updated card, or an explanation to the presser alone.
                let this = self.clone();
                tokio::spawn(async move {
                    let text = format!("{action_id} {value}");
                    let handled = match once {
                        Some(d) => this.ledger.handle_text_once(actor, &text, d).await,
                        None => this.ledger.handle_text(actor, &text).await,
                    };
                    if !matches!(handled.reply.outcome, Outcome::Ok | Outcome::Duplicate) {
                        if let Some(url) = response_url {
                            let channel = channel_id.unwrap_or_else(|| "response_url".into());
                            this.respond_later(&channel, &value, &handled.reply, &url)
                                .await;
                        }
                    }
                });
                Ok((None, Delivered::First))
            }
            opsledger_slack::Interaction::ModalSubmit {
                user_id,
                callback_id,
                private_metadata,
                text,
                trigger_id,
            } => {
                let actor = person(PLATFORM, &user_id)?;
                let form_error = |message: String| {
                    Some(json!({
                        "response_action": "errors",
                        "errors": { opsledger_slack::MODAL_TEXT_BLOCK: message },
                    }))
                };
                // The form's text is recorded as typed, so it is checked as typed text is.
                if let Err(bad) = crate::domain::text::check(&text) {
                    return Ok((form_error(bad.to_string()), Delivered::First));
                }
                let command = form_command(&callback_id, &private_metadata, &text)
                    .ok_or_else(|| BadInput(format!("unknown modal `{callback_id}`")))?;
                // Fast enough to answer in the submission's own response: a refusal shows in the form.
                let once = trigger_id.as_deref().and_then(delivery);
                let handled = self.ledger.handle_once(actor, command, once).await;
                match handled.reply.outcome {
                    Outcome::Ok => Ok((None, Delivered::First)),
                    Outcome::Duplicate => Ok((None, Delivered::Again)),
                    _ => Ok((form_error(handled.reply.text), Delivered::First)),
                }
            }
            opsledger_slack::Interaction::Other { .. } => Ok((None, Delivered::First)),
        }
    }

    /// An Events API push. `Some(body)` answers it (URL verification).
    pub async fn event(
        &self,
        push: opsledger_slack::Push,
    ) -> Result<(Option<Value>, Delivered), BadInput> {
        match push {
            opsledger_slack::Push::UrlVerification { challenge } => {
                Ok((Some(json!({ "challenge": challenge })), Delivered::First))
            }
            opsledger_slack::Push::AppMention {
                event_id,
                user_id,
                channel_id,
                text,
            } => {
                // Slack redelivers an event it thinks we missed (X-Slack-Retry-Num, same
                // event_id). The event is noted in its command's own transaction, so a retry of
                // one whose command failed is acted on, and one already acted on is dropped.
                let once = delivery(&event_id);
                if self.seen(once.as_ref()).await {
                    tracing::debug!(%event_id, "dropped a redelivered Slack event");
                    return Ok((None, Delivered::Again));
                }
                let actor = person(PLATFORM, &user_id)?;
                let this = self.clone();
                tokio::spawn(async move {
                    let text = strip_mentions(&text);
                    let handled = match once {
                        Some(d) => this.ledger.handle_text_once(actor, text, d).await,
                        None => this.ledger.handle_text(actor, text).await,
                    };
                    if handled.reply.outcome == Outcome::Duplicate {
                        return;
                    }
                    let payload = json!({ "reply": handled.reply });
                    this.enqueue(item::<SlackConfig>(
                        &channel_id,
                        ChatOp::Reply,
                        handled.reply.record.as_deref(),
                        payload,
                    ))
                    .await;
                });
                Ok((None, Delivered::First))
            }
            opsledger_slack::Push::Other { .. } => Ok((None, Delivered::First)),
        }
    }

    /// Answers the person through the outbox, on the `response_url` Slack gave with the request.
    async fn respond_later(&self, channel: &str, record: &str, reply: &Reply, url: &str) {
        let payload = json!({ "reply": reply, "response_url": url });
        let answer = item::<SlackConfig>(channel, ChatOp::Respond, Some(record), payload);
        self.enqueue(answer).await;
    }
}

/// Socket Mode delivers the same payloads over a WebSocket: the same handlers answer them.
#[async_trait::async_trait]
impl opsledger_slack::SocketHandler for SlackHandlers {
    async fn command(&self, command: opsledger_slack::SlashCommand) -> Value {
        match SlackHandlers::command(self, command).await {
            Ok((body, _)) => body,
            Err(BadInput(e)) => json!({ "response_type": "ephemeral", "text": e }),
        }
    }

    async fn interaction(&self, interaction: opsledger_slack::Interaction) {
        match SlackHandlers::interaction(self, interaction).await {
            Ok((Some(answer), _)) => {
                tracing::info!(%answer, "a refused form submission over Socket Mode (Slack shows no form errors there)")
            }
            Ok((None, _)) => {}
            Err(BadInput(e)) => {
                tracing::warn!(error = %e, "bad Slack interaction over Socket Mode")
            }
        }
    }

    async fn event(&self, push: opsledger_slack::Push) {
        if let Err(BadInput(e)) = SlackHandlers::event(self, push).await {
            tracing::warn!(error = %e, "bad Slack event over Socket Mode");
        }
    }
}

chat_settings! {
    /// Slack's settings.
    SlackSettings, "SLACK", slack_api_url = "https://slack.com/api",
    slack_incident_channel, slack_cab_channel,
    {
        #[arg(long, env = "SLACK_SIGNING_SECRET", hide_env_values = true)]
        pub slack_signing_secret: Option<SecretString>,
        #[arg(long, env = "SLACK_BOT_TOKEN", hide_env_values = true)]
        pub slack_bot_token: Option<SecretString>,
        #[arg(long, env = "SLACK_APP_TOKEN", hide_env_values = true)]
        pub slack_app_token: Option<SecretString>,
        /// The Slack app's OAuth client ID and secret: with both, the dashboard offers "Sign in
        /// with Slack" (OpenID Connect).
        #[arg(long, env = "SLACK_CLIENT_ID")]
        pub slack_client_id: Option<String>,
        #[arg(long, env = "SLACK_CLIENT_SECRET", hide_env_values = true)]
        pub slack_client_secret: Option<SecretString>,
        /// Slack's authorize page for Sign in with Slack (tests point it at a fake).
        #[arg(long, env = "SLACK_OIDC_AUTHORIZE_URL")]
        pub slack_oidc_authorize_url: Option<String>,
        /// The workspace whose members may sign in to the dashboard with Slack (`T0123...`);
        /// unset, any workspace the app can be installed in.
        #[arg(long, env = "SLACK_TEAM_ID")]
        pub slack_team_id: Option<String>,
    }
}

/// "Sign in with Slack" for the dashboard, when the app's OAuth client ID and secret are set.
pub fn sign_in(s: &SlackSettings) -> Option<crate::http::session::SlackSignIn> {
    Some(crate::http::session::SlackSignIn {
        client_id: s.slack_client_id.clone().filter(|c| !c.is_empty())?,
        client_secret: std::sync::Arc::new(s.slack_client_secret.clone()?),
        api_url: s.slack_api_url.trim_end_matches('/').to_string(),
        authorize_url: s
            .slack_oidc_authorize_url
            .clone()
            .unwrap_or_else(|| opsledger_slack::oidc::AUTHORIZE_URL.to_string()),
        team_id: s.slack_team_id.clone().filter(|t| !t.is_empty()),
    })
}

impl ChatGlue for SlackConfig {
    fn status_line(i: &Integrations) -> String {
        let http = i.slack.slack_signing_secret.is_some();
        let socket = i.slack.slack_app_token.is_some();
        if i.slack.slack_bot_token.is_none() || !(http || socket) {
            return off_line(
                PLATFORM,
                &[
                    ("SLACK_SIGNING_SECRET", http),
                    ("SLACK_BOT_TOKEN", i.slack.slack_bot_token.is_some()),
                ],
            );
        }
        let transports = match (http, socket) {
            (true, true) => "Socket Mode, and HTTP endpoints /slack/*",
            (false, true) => "Socket Mode",
            _ => "HTTP endpoints /slack/commands, /slack/interactions, /slack/events",
        };
        i.slack.on_line(PLATFORM, transports)
    }

    /// On when the bot token and the signing secret or the app token (Socket Mode) are set.
    fn configure(i: &Integrations) -> anyhow::Result<Option<Self>> {
        let Some(token) = &i.slack.slack_bot_token else {
            return Ok(None);
        };
        if i.slack.slack_signing_secret.is_none() && i.slack.slack_app_token.is_none() {
            return Ok(None);
        }
        let api = SlackApi::new(token.expose_secret(), &i.slack.slack_api_url).map_err(|e| {
            anyhow::anyhow!(
                "cannot set up the Slack client for SLACK_API_URL={}: {e}",
                i.slack.slack_api_url
            )
        })?;
        Ok(Some(SlackConfig {
            signing_secret: i.slack.slack_signing_secret.clone(),
            api,
            channels: i.slack.channels(),
        }))
    }

    fn routes() -> axum::Router<AppState> {
        axum::Router::new()
            .route("/slack/commands", post(http_commands))
            .route("/slack/interactions", post(http_interactions))
            .route("/slack/events", post(http_events))
    }
}

#[async_trait]
impl ChatOn for SlackConfig {
    /// With `SLACK_APP_TOKEN` set, Socket Mode answers through the same handlers.
    async fn start(
        self: Box<Self>,
        ledger: Ledger,
        outbox: Option<OutboxWaker>,
        i: &Integrations,
    ) -> anyhow::Result<Started> {
        let handlers = Handlers::new(ledger, *self, outbox);
        let task: Option<Box<dyn Task>> = match &i.slack.slack_app_token {
            Some(app_token) => Some(Box::new(
                opsledger_slack::SocketMode::start(
                    &i.slack.slack_api_url,
                    app_token.expose_secret(),
                    Arc::new(handlers.clone()),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot start Slack Socket Mode with SLACK_APP_TOKEN: {e}")
                })?,
            )),
            None => None,
        };
        Ok(Started {
            handlers: Arc::new(handlers),
            task,
        })
    }
}

#[async_trait]
impl Task for opsledger_slack::SocketMode {
    async fn stop(self: Box<Self>) {
        opsledger_slack::SocketMode::stop(*self).await;
    }
}

/// The Slack handlers, or 404 when Slack is off.
fn http_slack(app: &AppState) -> Result<&SlackHandlers, ApiError> {
    app.chat_handlers::<SlackHandlers>(PLATFORM).ok_or_else(|| {
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

fn answer(body: Option<Value>) -> Response {
    match body {
        Some(b) => Json(b).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn http_commands(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = http_slack(&app)?;
    let form = verified(slack, &headers, &body)?;
    // Text that is not UTF-8 is the person's usage error: shown to them alone, like any other.
    if let Err(e) = opsledger_slack::form_is_utf8(form) {
        return Ok(Json(json!({ "response_type": "ephemeral", "text": e })).into_response());
    }
    let cmd = opsledger_slack::parse_command(form).map_err(bad)?;
    let (response, delivered) = slack.command(cmd).await.map_err(|BadInput(e)| bad(e))?;
    Ok(delivered.mark(Json(response).into_response()))
}

async fn http_interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = http_slack(&app)?;
    let interaction =
        opsledger_slack::parse_interaction(verified(slack, &headers, &body)?).map_err(bad)?;
    let (body, delivered) = slack
        .interaction(interaction)
        .await
        .map_err(|BadInput(e)| bad(e))?;
    Ok(delivered.mark(answer(body)))
}

async fn http_events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let slack = http_slack(&app)?;
    let push = opsledger_slack::parse_event(verified(slack, &headers, &body)?).map_err(bad)?;
    let (body, delivered) = slack.event(push).await.map_err(|BadInput(e)| bad(e))?;
    Ok(delivered.mark(answer(body)))
}

/// A Slack delivery to act on once, by its id (an empty id is no id).
fn delivery(id: &str) -> Option<Delivery> {
    (!id.is_empty()).then(|| Delivery::new(PLATFORM, id))
}

/// The Slack modal for a button's form, if it needs one.
fn modal_for(action_id: &str, record: &str) -> Option<opsledger_slack::TextModal> {
    let form = form_for(action_id, record)?;
    Some(opsledger_slack::TextModal {
        callback_id: action_id.to_string(),
        private_metadata: record.to_string(),
        title: form.title.to_string(),
        label: form.label,
        submit: form.submit.to_string(),
    })
}

/// `<@UBOT> incident list` → `incident list`.
fn strip_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@") {
        match after.find('>') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    #[test]
    fn leading_mentions_are_stripped() {
        assert_eq!(
            super::strip_mentions("<@U123> incident list"),
            "incident list"
        );
        assert_eq!(super::strip_mentions("  <@U1> <@U2>help"), "help");
        assert_eq!(super::strip_mentions("<@U1 broken"), "<@U1 broken");
    }
}
