//! Mattermost integration, the glue between the ledger and the `opsledger-mattermost` adapter:
//! Mattermost's side of the `ChatApi` port, and what opsledger does with a verified slash
//! command, button click or dialog submission. Mattermost signs nothing, so a slash command is
//! checked by its token and a click or a dialog by the HMAC opsledger put in its context. An
//! incident's room is a channel of its own; one person is answered with an ephemeral post.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Json;
use opsledger_mattermost::{MattermostApi, MattermostApiError, View};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::config::{Integrations, ServeArgs};
use crate::domain::reply::Outcome;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::{Delivery, Ledger};
use crate::outbox::{DeliveryError, OutboxWaker};

use super::chat::{field, Channels, ChatApi, NewRoom, Platform, RoomStyle, To};
use super::forms::{form_command, form_for};
use super::platform::{chat_settings, off_line, ChatGlue, ChatOn, Started};
use super::{ephemeral, person, BadInput, Delivered, Handlers};

pub use super::view;

pub const PLATFORM: &str = "mattermost";

super::delivery_errors!(MattermostApiError);

#[derive(Clone, Debug)]
pub struct MattermostConfig {
    pub api: MattermostApi,
    pub channels: Channels,
    /// The team incident channels are opened in (`MATTERMOST_TEAM_ID`).
    pub team_id: Option<String>,
    pub command_token: Arc<SecretString>,
    pub action_secret: Arc<SecretString>,
    /// Where buttons and dialogs post back: `<OPSLEDGER_PUBLIC_URL>/mattermost`.
    pub callback_base: String,
    /// The bot's own user ID, read once, for direct-message channels.
    bot_id: Arc<tokio::sync::OnceCell<String>>,
}

impl MattermostConfig {
    fn actions_url(&self) -> String {
        format!("{}/actions", self.callback_base)
    }

    fn attachments(&self, view: &View) -> Value {
        opsledger_mattermost::attachments(
            view,
            &self.actions_url(),
            self.action_secret.expose_secret(),
        )
    }
}

#[async_trait]
impl ChatApi for MattermostConfig {
    const CHAT: Platform = Platform::new(
        PLATFORM,
        "mattermost-incident-channel",
        RoomStyle::OwnChannel,
        "**",
    );

    fn channels(&self) -> &Channels {
        &self.channels
    }

    /// One person is answered with an ephemeral post in the channel they acted in.
    async fn send(&self, to: To<'_>, view: &View) -> Result<Option<String>, DeliveryError> {
        let cards = self.attachments(view);
        let done = match to {
            To::Channel(channel) => return Ok(Some(self.api.create_post(channel, cards).await?)),
            To::Message(_, post) => self.api.patch_post(post, cards).await,
            To::Person { payload, .. } => {
                let (user, channel) = (field(payload, "user_id")?, field(payload, "channel_id")?);
                self.api.ephemeral_post(user, channel, cards).await
            }
        };
        done.map(|()| None).map_err(DeliveryError::from)
    }

    async fn open_dm(&self, user: &str) -> Result<Option<String>, DeliveryError> {
        let bot = self
            .bot_id
            .get_or_try_init(|| self.api.me())
            .await
            .map_err(DeliveryError::from)?;
        Ok(Some(self.api.direct_channel(bot, user).await?))
    }

    /// Opens `inc-<n>-<words>` in the team and adds the reporter when they are a Mattermost user.
    async fn open_room(&self, room: NewRoom<'_>) -> Result<Option<String>, DeliveryError> {
        let inc = room.incident;
        let team = self.team_id.as_deref().ok_or_else(|| {
            DeliveryError::Permanent("set MATTERMOST_TEAM_ID to open incident channels".into())
        })?;
        let name = opsledger_mattermost::incident_channel_name(inc.id.n, &inc.title);
        let display: String = format!("{} {}", inc.id, inc.title)
            .chars()
            .take(64)
            .collect();
        let (_, channel) = self.api.create_channel(team, &name, &display).await?;
        if let Some(user) = inc.reporter.as_str().strip_prefix("mattermost:") {
            if let Err(e) = self.api.add_member(&channel, user).await {
                tracing::warn!(error = %e, %channel, "could not add the reporter to the incident channel");
            }
        }
        Ok(Some(channel))
    }
}

/// The Mattermost handlers: the ledger, Mattermost's settings and the outbox.
pub type MattermostHandlers = Handlers<MattermostConfig>;

fn delivery(id: &str) -> Option<Delivery> {
    (!id.is_empty()).then(|| Delivery::new(PLATFORM, id))
}

impl Handlers<MattermostConfig> {
    /// A slash command: runs it and returns the response body (in the channel or ephemeral).
    pub async fn command(
        &self,
        cmd: opsledger_mattermost::SlashCommand,
    ) -> Result<(Value, Delivered), BadInput> {
        let actor = person(PLATFORM, &cmd.user_id)?;
        let c = &self.config;
        let text = match self.with_user_ids(&cmd.text).await {
            Ok(text) => text,
            Err(failed) => {
                let answer = opsledger_mattermost::command_response(
                    &view(&failed),
                    opsledger_mattermost::Ephemeral::Yes,
                    &c.actions_url(),
                    c.action_secret.expose_secret(),
                );
                return Ok((answer, Delivered::First));
            }
        };
        let handled = match delivery(&cmd.trigger_id) {
            Some(d) => self.ledger.handle_text_once(actor, &text, d).await,
            None => self.ledger.handle_text(actor, &text).await,
        };
        let delivered = Delivered::of(&handled.reply);
        let to = if ephemeral(&handled.reply, !handled.events.is_empty()) {
            opsledger_mattermost::Ephemeral::Yes
        } else {
            opsledger_mattermost::Ephemeral::No
        };
        Ok((
            opsledger_mattermost::command_response(
                &view(&handled.reply),
                to,
                &c.actions_url(),
                c.action_secret.expose_secret(),
            ),
            delivered,
        ))
    }

    /// The command's `@username` mentions as user IDs, so `@bob` names `mattermost:<Bob's ID>`
    /// as a Slack or Discord mention names its user; a name Mattermost does not know stays as
    /// typed (a `[people]` name). When Mattermost cannot answer, the command is not run: the
    /// mention would otherwise name the wrong account.
    async fn with_user_ids(&self, text: &str) -> Result<String, crate::domain::reply::Reply> {
        let names = opsledger_mattermost::mentioned_usernames(text);
        if names.is_empty() {
            return Ok(text.to_string());
        }
        match self.config.api.user_ids(&names).await {
            Ok(ids) => Ok(opsledger_mattermost::with_user_ids(text, &ids)),
            Err(e) => {
                tracing::warn!(error = %e, "could not look up mentioned Mattermost users");
                let then = match e {
                    MattermostApiError::Retry { .. } => "try again in a moment",
                    MattermostApiError::Permanent(_) => {
                        "ask whoever runs opsledger to check the bot account (its log says why)"
                    }
                };
                Err(crate::domain::reply::Reply::failed(format!(
                    "could not look up @{} in Mattermost; nothing was done, {then}",
                    names.join(", @")
                )))
            }
        }
    }

    /// A button click whose context was verified: the card updated in place, a refusal to the
    /// presser alone, or, for resolving and rejecting, a dialog asking for the text first.
    pub async fn action(
        &self,
        req: opsledger_mattermost::ActionRequest,
        signed: opsledger_mattermost::SignedAction,
    ) -> Result<(Value, Delivered), BadInput> {
        let actor = person(PLATFORM, &req.user_id)?;
        let c = &self.config;
        let secret = c.action_secret.expose_secret();
        if let Some(form) = form_for(&signed.action, &signed.record) {
            let dialog = opsledger_mattermost::text_dialog(
                form.title,
                &form.label,
                form.submit,
                &signed.action,
                &signed.record,
                secret,
            );
            let url = format!("{}/dialogs", c.callback_base);
            return match c.api.open_dialog(&req.trigger_id, &url, dialog).await {
                Ok(()) => Ok((json!({}), Delivered::First)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not open a Mattermost dialog");
                    let hint = format!(
                        "could not open the form; type `/ops {} {} <text>` instead",
                        signed.action, signed.record
                    );
                    Ok((
                        opsledger_mattermost::action_response(
                            None,
                            Some(&hint),
                            &c.actions_url(),
                            secret,
                        ),
                        Delivered::First,
                    ))
                }
            };
        }
        let text = format!("{} {}", signed.action, signed.record);
        let handled = match delivery(&req.trigger_id) {
            Some(d) => self.ledger.handle_text_once(actor, &text, d).await,
            None => self.ledger.handle_text(actor, &text).await,
        };
        let delivered = Delivered::of(&handled.reply);
        let answer = match handled.reply.outcome {
            Outcome::Ok => {
                let card = self.refreshed(handled).await;
                opsledger_mattermost::action_response(
                    Some(&view(&card.reply)),
                    None,
                    &c.actions_url(),
                    secret,
                )
            }
            Outcome::Duplicate => json!({}),
            _ => opsledger_mattermost::action_response(
                None,
                Some(&handled.reply.text),
                &c.actions_url(),
                secret,
            ),
        };
        Ok((answer, delivered))
    }

    /// A dialog's submission whose state was verified: runs the form's command; a refusal shows
    /// in the dialog (`errors`).
    pub async fn dialog(
        &self,
        sub: opsledger_mattermost::DialogSubmission,
        signed: opsledger_mattermost::SignedAction,
    ) -> Result<(Value, Delivered), BadInput> {
        if sub.cancelled {
            return Ok((json!({}), Delivered::First));
        }
        let actor = person(PLATFORM, &sub.user_id)?;
        let text = sub
            .submission
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let form_error = |message: String| json!({ "errors": { "text": message } });
        // The form's text is recorded as typed, so it is checked as typed text is.
        if let Err(bad) = crate::domain::text::check(&text) {
            return Ok((form_error(bad.to_string()), Delivered::First));
        }
        let command = form_command(&signed.action, &signed.record, &text)
            .ok_or_else(|| BadInput(format!("unknown form `{}`", signed.action)))?;
        let handled = self.ledger.handle_once(actor, command, None).await;
        match handled.reply.outcome {
            Outcome::Ok => Ok((json!({}), Delivered::First)),
            Outcome::Duplicate => Ok((json!({}), Delivered::Again)),
            _ => Ok((form_error(handled.reply.text), Delivered::First)),
        }
    }
}

chat_settings! {
    /// Mattermost's settings: the server, the bot account's token, the team, and the secrets
    /// its requests are checked with.
    MattermostSettings, "MATTERMOST", mattermost_url = "", env "MATTERMOST_URL",
    mattermost_incident_channel, mattermost_cab_channel,
    {
        #[arg(long, env = "MATTERMOST_BOT_TOKEN", hide_env_values = true)]
        pub mattermost_bot_token: Option<SecretString>,
        #[arg(long, env = "MATTERMOST_TEAM_ID")]
        pub mattermost_team_id: Option<String>,
        #[arg(long, env = "MATTERMOST_COMMAND_TOKEN", hide_env_values = true)]
        pub mattermost_command_token: Option<SecretString>,
        #[arg(long, env = "MATTERMOST_ACTION_SECRET", hide_env_values = true)]
        pub mattermost_action_secret: Option<SecretString>,
    }
}

impl ChatGlue for MattermostConfig {
    fn status_line(i: &Integrations) -> String {
        let m = &i.mattermost;
        let vars = [
            ("MATTERMOST_URL", !m.mattermost_url.is_empty()),
            ("MATTERMOST_BOT_TOKEN", m.mattermost_bot_token.is_some()),
            (
                "MATTERMOST_COMMAND_TOKEN",
                m.mattermost_command_token.is_some(),
            ),
            (
                "MATTERMOST_ACTION_SECRET",
                m.mattermost_action_secret.is_some(),
            ),
        ];
        if !vars.iter().all(|(_, set)| *set) {
            return off_line(PLATFORM, &vars);
        }
        m.on_line(
            PLATFORM,
            "HTTP endpoints /mattermost/commands, /mattermost/actions, /mattermost/dialogs",
        )
    }

    /// On when the server, bot token, command token and action secret are all set.
    fn configure(i: &Integrations) -> anyhow::Result<Option<Self>> {
        let m = &i.mattermost;
        let (Some(token), Some(command), Some(secret)) = (
            &m.mattermost_bot_token,
            &m.mattermost_command_token,
            &m.mattermost_action_secret,
        ) else {
            return Ok(None);
        };
        if m.mattermost_url.is_empty() {
            return Ok(None);
        }
        let api = MattermostApi::new(&m.mattermost_url, token.expose_secret()).map_err(|e| {
            anyhow::anyhow!(
                "cannot set up the Mattermost client for MATTERMOST_URL={}: {e}",
                m.mattermost_url
            )
        })?;
        Ok(Some(MattermostConfig {
            api,
            channels: m.channels(),
            team_id: m.mattermost_team_id.clone().filter(|t| !t.is_empty()),
            command_token: Arc::new(command.clone()),
            action_secret: Arc::new(secret.clone()),
            callback_base: String::new(),
            bot_id: Arc::new(tokio::sync::OnceCell::new()),
        }))
    }

    fn routes() -> axum::Router<AppState> {
        axum::Router::new()
            .route("/mattermost/commands", post(http_commands))
            .route("/mattermost/actions", post(http_actions))
            .route("/mattermost/dialogs", post(http_dialogs))
    }
}

#[async_trait]
impl ChatOn for MattermostConfig {
    /// Buttons and dialogs post back to this server's public address.
    fn serve_settings(&mut self, _args: &ServeArgs, public_url: &str) {
        self.callback_base = format!("{}/mattermost", public_url.trim_end_matches('/'));
    }

    async fn start(
        self: Box<Self>,
        ledger: Ledger,
        outbox: Option<OutboxWaker>,
        _: &Integrations,
    ) -> anyhow::Result<Started> {
        Started::handlers(ledger, *self, outbox)
    }
}

fn handlers(app: &AppState) -> Result<&MattermostHandlers, ApiError> {
    app.chat_handlers::<MattermostHandlers>(PLATFORM).ok_or_else(|| {
        ApiError::NotFound(
            "Mattermost is not configured (set MATTERMOST_URL, MATTERMOST_BOT_TOKEN, MATTERMOST_COMMAND_TOKEN and MATTERMOST_ACTION_SECRET)"
                .into(),
        )
    })
}

/// `POST /mattermost/commands`: the token compared in constant time (401 and nothing changed
/// when it differs), then the command run.
async fn http_commands(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let mm = handlers(&app)?;
    let cmd = opsledger_mattermost::parse_command(&body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    opsledger_mattermost::verify_token(&cmd.token, mm.config.command_token.expose_secret())
        .map_err(|e| {
            tracing::warn!(error = %e, "rejected a Mattermost slash command");
            ApiError::BadSignature
        })?;
    let (answer, delivered) = mm
        .command(cmd)
        .await
        .map_err(|BadInput(e)| ApiError::BadRequest(e))?;
    Ok(delivered.mark(Json(answer).into_response()))
}

/// `POST /mattermost/actions`: a click whose context opsledger did not sign (or was altered)
/// gets 401 and changes nothing.
async fn http_actions(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let mm = handlers(&app)?;
    let req = opsledger_mattermost::parse_action(&body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let signed =
        opsledger_mattermost::verify_context(mm.config.action_secret.expose_secret(), &req.context)
            .map_err(|e| {
                tracing::warn!(error = %e, "rejected a Mattermost button click");
                ApiError::BadSignature
            })?;
    let (answer, delivered) = mm
        .action(req, signed)
        .await
        .map_err(|BadInput(e)| ApiError::BadRequest(e))?;
    Ok(delivered.mark(Json(answer).into_response()))
}

/// `POST /mattermost/dialogs`: the dialog's state must carry opsledger's signature.
async fn http_dialogs(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let mm = handlers(&app)?;
    let sub = opsledger_mattermost::parse_dialog(&body)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let state: Value = serde_json::from_str(&sub.state).unwrap_or(Value::Null);
    let signed =
        opsledger_mattermost::verify_context(mm.config.action_secret.expose_secret(), &state)
            .map_err(|e| {
                tracing::warn!(error = %e, "rejected a Mattermost dialog submission");
                ApiError::BadSignature
            })?;
    let (answer, delivered) = mm
        .dialog(sub, signed)
        .await
        .map_err(|BadInput(e)| ApiError::BadRequest(e))?;
    Ok(delivered.mark(Json(answer).into_response()))
}
