//! Discord integration, the glue between the ledger and the `opsledger-discord` adapter:
//! Discord's side of the `ChatApi` port, and what opsledger does with a verified interaction. It
//! runs slash commands (text and structured; the table is in `discord_commands.rs`), offers record
//! IDs as you type, runs buttons and forms, and answers within Discord's 3 seconds, deferring what
//! takes longer and finishing it through the outbox. An incident's room is a thread on its card;
//! one person is answered through the interaction's token (a follow-up, or the deferred response
//! edited).

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Json;
use opsledger_discord::{DiscordApi, DiscordApiError, Interaction, TextModal, Verifier, View};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::config::{Integrations, ServeArgs};
use crate::domain::reply::{Outcome, Reply};
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::ledger::{Delivery, Ledger};
use crate::outbox::{DeliveryError, OutboxWaker};
use crate::store::ListQuery;
use crate::usecase::Handled;

use super::chat::{field, item, Channels, ChatApi, ChatOp, NewRoom, Platform, RoomStyle, To};
use super::discord_commands;
use super::forms::{form_command, form_for};
use super::platform::{chat_settings, off_line, ChatGlue, ChatOn, Started};
use super::{ephemeral, person, BadInput, Delivered, Handlers};

pub use super::view;

pub const PLATFORM: &str = "discord";

super::delivery_errors!(DiscordApiError);

/// Discord wants an answer within 3 seconds; work still running after this is deferred.
pub const DEFAULT_DEFER_AFTER: Duration = Duration::from_millis(2000);

#[derive(Clone, Debug)]
pub struct DiscordConfig {
    pub verifier: Verifier,
    pub api: DiscordApi,
    pub channels: Channels,
    /// How long a command may run before its answer is deferred.
    pub defer_after: Duration,
}

#[async_trait]
impl ChatApi for DiscordConfig {
    const CHAT: Platform = Platform::new(PLATFORM, "discord-thread", RoomStyle::OnCard, "**");

    fn channels(&self) -> &Channels {
        &self.channels
    }

    /// One person is answered through the interaction's token (valid for 15 minutes): in
    /// place, the deferred response is edited; otherwise a follow-up goes to them alone, so a
    /// refused button press does not replace the card it was pressed on.
    async fn send(&self, to: To<'_>, view: &View) -> Result<Option<String>, DeliveryError> {
        let api = &self.api;
        let done = match to {
            To::Channel(channel) => return Ok(api.post_message(channel, view).await?),
            To::Message(channel, message) => api.edit_message(channel, message, view).await,
            To::Person { payload, in_place } => match field(payload, "token")? {
                token if in_place => api.edit_original(token, view).await,
                token => api.followup(token, view, true).await,
            },
        };
        done.map(|()| None).map_err(DeliveryError::from)
    }

    /// Starts a thread named after the incident on its card.
    async fn open_dm(&self, user: &str) -> Result<Option<String>, DeliveryError> {
        Ok(self.api.open_dm(user).await?)
    }

    async fn open_room(&self, room: NewRoom<'_>) -> Result<Option<String>, DeliveryError> {
        let inc = room.incident;
        let (channel, message) = room.card.ok_or_else(|| {
            DeliveryError::Permanent(format!("{}: a thread needs the card it starts on", inc.id))
        })?;
        let name = opsledger_discord::thread_name(&inc.id.to_string(), &inc.title);
        Ok(self.api.create_thread(channel, message, &name).await?)
    }
}

/// The Discord handlers: the ledger, Discord's settings and the outbox.
pub type DiscordHandlers = Handlers<DiscordConfig>;

/// The most open records read to offer 25 of them as you type.
const OFFER_SCAN: i64 = 2000;
const OFFERED: usize = 25;

/// How a finished command is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// A new message: in the channel for a change, to the sender alone otherwise.
    Message,
    /// The message the button sat on, redrawn.
    Card,
}

impl Handlers<DiscordConfig> {
    /// Answers one interaction with the JSON body Discord expects. Commands, buttons and forms
    /// are acted on once per interaction `id`: a replay of one already acted on changes nothing.
    pub async fn interaction(
        &self,
        interaction: Interaction,
    ) -> Result<(Value, Delivered), BadInput> {
        let once = match &interaction {
            Interaction::Command { id, .. }
            | Interaction::Button { id, .. }
            | Interaction::ModalSubmit { id, .. } => Some(Delivery::new(PLATFORM, id)),
            Interaction::Ping | Interaction::Autocomplete { .. } => None,
        };
        if self.seen(once.as_ref()).await {
            let reply = Reply::duplicate();
            return Ok((
                opsledger_discord::message_response(&view(&reply), true),
                Delivered::Again,
            ));
        }
        self.act(interaction, once)
            .await
            .map(|answer| (answer, Delivered::First))
    }

    async fn act(
        &self,
        interaction: Interaction,
        once: Option<Delivery>,
    ) -> Result<Value, BadInput> {
        match interaction {
            Interaction::Ping => Ok(opsledger_discord::pong()),
            Interaction::Command {
                token,
                user_id,
                name,
                subcommand,
                options,
                ..
            } => {
                let actor = person(PLATFORM, &user_id)?;
                let Some(parsed) =
                    discord_commands::slash_command(&name, subcommand.as_deref(), &options)
                else {
                    let reply = Reply::usage(format!(
                        "`/{name}` is not an opsledger command in this version; run `opsledger discord register` again"
                    ));
                    return Ok(opsledger_discord::message_response(&view(&reply), true));
                };
                let slow = parsed.as_ref().is_ok_and(discord_commands::known_slow);
                let ledger = self.ledger.clone();
                let work =
                    tokio::spawn(
                        async move { ledger.handle_parsed_once(actor, parsed, once).await },
                    );
                Ok(self
                    .answer_within(work, &token, slow, Answer::Message)
                    .await)
            }
            Interaction::Autocomplete {
                name,
                subcommand,
                focused,
                value,
                ..
            } => {
                let choices = self
                    .offers(&name, subcommand.as_deref(), &focused, &value)
                    .await;
                Ok(opsledger_discord::autocomplete(&choices))
            }
            Interaction::Button {
                token,
                user_id,
                custom_id,
                ..
            } => {
                let actor = person(PLATFORM, &user_id)?;
                let (action, record) = opsledger_discord::split_custom_id(&custom_id)
                    .ok_or_else(|| BadInput(format!("unknown button `{custom_id}`")))?;
                // Resolving and rejecting ask for text first, in a form.
                if let Some(form) = form_for(action, record) {
                    return Ok(opsledger_discord::modal(&TextModal {
                        custom_id: opsledger_discord::custom_id(action, record),
                        title: form.title.to_string(),
                        label: form.label,
                    }));
                }
                let ledger = self.ledger.clone();
                let text = format!("{action} {record}");
                let work = tokio::spawn(async move {
                    ledger
                        .handle_parsed_once(actor, crate::domain::parser::parse(&text), once)
                        .await
                });
                Ok(self.answer_within(work, &token, false, Answer::Card).await)
            }
            Interaction::ModalSubmit {
                token,
                user_id,
                message_id,
                custom_id,
                text,
                ..
            } => {
                let actor = person(PLATFORM, &user_id)?;
                // The form's text is recorded as typed, so it is checked as typed text is.
                if let Err(bad) = crate::domain::text::check(&text) {
                    let reply = Reply::usage(bad.to_string());
                    return Ok(opsledger_discord::message_response(&view(&reply), true));
                }
                let command = opsledger_discord::split_custom_id(&custom_id)
                    .and_then(|(action, record)| form_command(action, record, &text))
                    .ok_or_else(|| BadInput(format!("unknown form `{custom_id}`")))?;
                let ledger = self.ledger.clone();
                let work =
                    tokio::spawn(async move { ledger.handle_once(actor, command, once).await });
                let answer = if message_id.is_some() {
                    Answer::Card
                } else {
                    Answer::Message
                };
                Ok(self.answer_within(work, &token, false, answer).await)
            }
        }
    }

    /// The answer to a finished command. A button's (or its form's) answer is the card it was
    /// pressed on, redrawn with the new state (a vote shows the tally and the decision); a
    /// refusal goes to the presser alone.
    fn answer(kind: Answer, handled: &Handled) -> Value {
        let eph = ephemeral(&handled.reply, !handled.events.is_empty());
        match kind {
            Answer::Card if handled.reply.outcome == Outcome::Ok => {
                opsledger_discord::update_response(&view(&handled.reply))
            }
            _ => opsledger_discord::message_response(&view(&handled.reply), eph),
        }
    }

    /// Answers with the command's result when it finishes within the budget; otherwise (and at
    /// once when it is known to be slow) answers "deferred" and lets the outbox deliver the
    /// result by editing the original response when the command is done.
    async fn answer_within(
        &self,
        mut work: JoinHandle<Handled>,
        token: &str,
        slow: bool,
        answer: Answer,
    ) -> Value {
        let budget = if slow {
            std::time::Duration::ZERO
        } else {
            self.config.defer_after
        };
        // No budget defers without waiting: tokio's timer rounds a zero timeout up to its next
        // tick, in which a quick command would sometimes finish and be answered directly.
        let finished = if budget.is_zero() {
            None
        } else {
            tokio::time::timeout(budget, &mut work).await.ok()
        };
        match finished {
            Some(Ok(handled)) => Self::answer(answer, &self.refreshed(handled).await),
            Some(Err(e)) => {
                tracing::error!(error = %e, "a Discord command task failed");
                let reply = Reply::failed("something went wrong; nothing was changed");
                opsledger_discord::message_response(&view(&reply), true)
            }
            None => {
                let this = self.clone();
                let token = token.to_string();
                tokio::spawn(async move {
                    let handled = match work.await {
                        Ok(h) => this.refreshed(h).await,
                        Err(_) => Handled::reply(Reply::failed("something went wrong")),
                    };
                    let record = handled.reply.record.clone();
                    let payload = json!({ "reply": handled.reply, "token": token });
                    // Each interaction is its own outbox channel; the token itself (a
                    // credential for 15 minutes) stays out of the channel key and the logs.
                    let key = format!("interaction:{}", &token_digest(&token)[..16]);
                    // A refused button press goes to the presser alone, leaving the card.
                    let op = if answer == Answer::Card && handled.reply.outcome != Outcome::Ok {
                        ChatOp::Respond
                    } else {
                        ChatOp::RespondInPlace
                    };
                    this.enqueue(item::<DiscordConfig>(&key, op, record.as_deref(), payload))
                        .await;
                });
                if answer == Answer::Card {
                    opsledger_discord::deferred_update()
                } else {
                    opsledger_discord::deferred(slow)
                }
            }
        }
    }

    /// Open records of the option's kind and statuses that match what was typed, newest first.
    async fn offers(
        &self,
        name: &str,
        sub: Option<&str>,
        option: &str,
        typed: &str,
    ) -> Vec<(String, String)> {
        let Some((kind, statuses)) = discord_commands::offer(name, sub, option) else {
            return Vec::new();
        };
        let mut q = ListQuery::new(kind, OFFER_SCAN);
        q.statuses = statuses.iter().map(|s| s.to_string()).collect();
        let records = match self.ledger.store().list(&q).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read records to offer");
                return Vec::new();
            }
        };
        let typed = typed.trim().to_lowercase();
        records
            .iter()
            .rev()
            .filter_map(|r| {
                let id = r.key();
                let title = r.title();
                let shown = format!("{id} · {title}");
                (typed.is_empty() || shown.to_lowercase().contains(&typed))
                    .then(|| (shown, id.to_string()))
            })
            .take(OFFERED)
            .collect()
    }
}

chat_settings! {
    /// Discord's settings: an application's public key, bot token and ID.
    DiscordSettings, "DISCORD", discord_api_url = "https://discord.com",
    discord_incident_channel, discord_cab_channel,
    {
        #[arg(long, env = "DISCORD_PUBLIC_KEY")]
        pub discord_public_key: Option<String>,
        #[arg(long, env = "DISCORD_BOT_TOKEN", hide_env_values = true)]
        pub discord_bot_token: Option<SecretString>,
        #[arg(long, env = "DISCORD_APPLICATION_ID")]
        pub discord_application_id: Option<String>,
    }
}

impl ChatGlue for DiscordConfig {
    fn status_line(i: &Integrations) -> String {
        let vars = [
            ("DISCORD_PUBLIC_KEY", i.discord.discord_public_key.is_some()),
            ("DISCORD_BOT_TOKEN", i.discord.discord_bot_token.is_some()),
            (
                "DISCORD_APPLICATION_ID",
                i.discord.discord_application_id.is_some(),
            ),
        ];
        if !vars.iter().all(|(_, set)| *set) {
            return off_line(PLATFORM, &vars);
        }
        i.discord
            .on_line(PLATFORM, "HTTP endpoint /discord/interactions")
    }

    /// On when the public key, bot token and application ID are all set.
    fn configure(i: &Integrations) -> anyhow::Result<Option<Self>> {
        let Some(key) = &i.discord.discord_public_key else {
            return Ok(None);
        };
        let Some(api) = api(i)? else {
            return Ok(None);
        };
        let verifier =
            Verifier::new(key).map_err(|e| anyhow::anyhow!("{e} (check DISCORD_PUBLIC_KEY)"))?;
        Ok(Some(DiscordConfig {
            verifier,
            api,
            channels: i.discord.channels(),
            defer_after: DEFAULT_DEFER_AFTER,
        }))
    }

    fn routes() -> axum::Router<AppState> {
        axum::Router::new().route("/discord/interactions", post(http_interactions))
    }
}

/// The Discord REST client when the bot token and application ID are set (enough for
/// `discord register`; serving interactions also needs the public key).
pub fn api(i: &Integrations) -> anyhow::Result<Option<DiscordApi>> {
    let (Some(token), Some(app)) = (
        &i.discord.discord_bot_token,
        &i.discord.discord_application_id,
    ) else {
        return Ok(None);
    };
    DiscordApi::new(token.expose_secret(), app, &i.discord.discord_api_url)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("cannot set up the Discord client: {e}"))
}

#[async_trait]
impl ChatOn for DiscordConfig {
    /// Tests shorten the time before an answer is deferred.
    fn serve_settings(&mut self, args: &ServeArgs, _public_url: &str) {
        if let Some(d) = args.discord_defer_after {
            self.defer_after = d;
        }
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

/// `POST /discord/interactions`: verify Discord's Ed25519 signature and timestamp, parse the
/// interaction with the adapter, and answer it. Every request that fails verification gets 401
/// and changes nothing: Discord probes the endpoint with bad signatures and removes one that
/// accepts them.
async fn http_interactions(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let discord = app
        .chat_handlers::<DiscordHandlers>(PLATFORM)
        .ok_or_else(|| {
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
    Ok(delivered.mark(Json(answer).into_response()))
}

fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
