//! REST calls (messages, threads, interaction follow-ups, command registration) through
//! serenity's HTTP client pointed at `DISCORD_API_URL`, with errors sorted into "try again
//! later" and "will never work".
//!
//! Serenity's in-process rate limiter is off: it sends to discord.com whatever the proxy origin
//! says, and the durable outbox already sends one message per channel at a time and backs off
//! after a 429. Successful answers are read for the one field needed (the new ID) rather than
//! as whole serenity models, so a field Discord adds or omits cannot fail a delivery that
//! already happened.

use std::time::Duration;

use serenity::all::{ApplicationId, ChannelId, CreateThread, GuildId, MessageId};
use serenity::http::{Http, HttpBuilder, HttpError, LightMethod, Request, Route};

use crate::commands::CommandSpec;
use crate::render::{create_message, edit_message, edit_response, followup_message, View};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscordApiError {
    /// Rate limited, a 5xx, or the network: try again (after `after` when Discord said so).
    #[error("discord is unavailable: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// A request Discord will never accept as it is (unknown channel, missing access, ...).
    #[error("discord refused the request: {0}")]
    Permanent(String),
}

/// A Discord REST client for one bot, pointed at `DISCORD_API_URL`.
#[derive(Clone)]
pub struct DiscordApi {
    http: std::sync::Arc<Http>,
    origin: String,
    application_id: ApplicationId,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// What Discord sends back for a created message or channel: only the ID is needed.
#[derive(serde::Deserialize)]
struct Created {
    id: String,
}

/// A 429 or a 5xx is worth retrying, as is the network; any other refusal will not change.
fn classify(e: serenity::Error) -> DiscordApiError {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            let status = r.status_code.as_u16();
            let reason = format!("HTTP {status} {}", r.error.message)
                .trim()
                .to_string();
            if status == 429 || r.status_code.is_server_error() {
                DiscordApiError::Retry {
                    after: None,
                    reason,
                }
            } else {
                DiscordApiError::Permanent(reason)
            }
        }
        serenity::Error::Http(HttpError::Url(u)) => {
            DiscordApiError::Permanent(format!("bad request URL: {u}"))
        }
        other => DiscordApiError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
}

fn snowflake(what: &str, id: &str) -> Result<u64, DiscordApiError> {
    id.parse::<u64>()
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| DiscordApiError::Permanent(format!("{what} `{id}` is not a Discord ID")))
}

impl DiscordApi {
    /// `origin` is the API origin, normally `https://discord.com` (requests go to
    /// `<origin>/api/v10/...`).
    pub fn new(
        bot_token: &str,
        application_id: &str,
        origin: &str,
    ) -> Result<DiscordApi, DiscordApiError> {
        let application_id =
            ApplicationId::new(snowflake("DISCORD_APPLICATION_ID", application_id)?);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| {
                DiscordApiError::Permanent(format!("cannot build the HTTP client: {e}"))
            })?;
        let origin = origin.trim_end_matches('/').to_string();
        let http = HttpBuilder::new(bot_token.trim())
            .client(client)
            .proxy(origin.clone())
            .ratelimiter_disabled(true)
            .application_id(application_id)
            .build();
        Ok(DiscordApi {
            http: std::sync::Arc::new(http),
            origin,
            application_id,
        })
    }

    async fn send(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, DiscordApiError> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        let response = self
            .http
            .request(Request::new(route, method).body(body))
            .await
            .map_err(classify)?;
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| DiscordApiError::Retry {
                after: None,
                reason: format!("reading the response: {e}"),
            })
    }

    async fn created(
        &self,
        route: Route<'_>,
        body: serde_json::Value,
    ) -> Result<String, DiscordApiError> {
        let bytes = self.send(route, LightMethod::Post, Some(body)).await?;
        serde_json::from_slice::<Created>(&bytes)
            .map(|c| c.id)
            .map_err(|e| DiscordApiError::Permanent(format!("unexpected answer from Discord: {e}")))
    }

    /// Posts a message; returns its ID, which later edits need.
    pub async fn post_message(
        &self,
        channel: &str,
        view: &View,
    ) -> Result<String, DiscordApiError> {
        let channel_id = ChannelId::new(snowflake("channel", channel)?);
        let body = serde_json::to_value(create_message(view)).unwrap_or_default();
        self.created(Route::ChannelMessages { channel_id }, body)
            .await
    }

    /// Replaces a message in place.
    pub async fn edit_message(
        &self,
        channel: &str,
        message: &str,
        view: &View,
    ) -> Result<(), DiscordApiError> {
        let route = Route::ChannelMessage {
            channel_id: ChannelId::new(snowflake("channel", channel)?),
            message_id: MessageId::new(snowflake("message", message)?),
        };
        let body = serde_json::to_value(edit_message(view)).unwrap_or_default();
        self.send(route, LightMethod::Patch, Some(body))
            .await
            .map(|_| ())
    }

    /// Starts a thread on a message; returns the thread's channel ID.
    pub async fn create_thread(
        &self,
        channel: &str,
        message: &str,
        name: &str,
    ) -> Result<String, DiscordApiError> {
        let route = Route::ChannelMessageThreads {
            channel_id: ChannelId::new(snowflake("channel", channel)?),
            message_id: MessageId::new(snowflake("message", message)?),
        };
        let body = serde_json::to_value(CreateThread::new(name)).unwrap_or_default();
        self.created(route, body).await
    }

    /// Replaces a deferred interaction's response (the token is valid for 15 minutes).
    pub async fn edit_original(&self, token: &str, view: &View) -> Result<(), DiscordApiError> {
        let route = Route::WebhookOriginalInteractionResponse {
            application_id: self.application_id,
            token,
        };
        let body = serde_json::to_value(edit_response(view)).unwrap_or_default();
        self.send(route, LightMethod::Patch, Some(body))
            .await
            .map(|_| ())
    }

    /// Sends a follow-up message for an interaction, to the person alone when `ephemeral`.
    pub async fn followup(
        &self,
        token: &str,
        view: &View,
        ephemeral: bool,
    ) -> Result<(), DiscordApiError> {
        let route = Route::WebhookFollowupMessages {
            application_id: self.application_id,
            token,
        };
        let body = serde_json::to_value(followup_message(view, ephemeral)).unwrap_or_default();
        self.send(route, LightMethod::Post, Some(body))
            .await
            .map(|_| ())
    }

    /// Replaces the application's commands, globally or in one server (where they show at once);
    /// returns the registered names.
    pub async fn register_commands(
        &self,
        guild: Option<&str>,
        specs: &[CommandSpec],
    ) -> Result<Vec<String>, DiscordApiError> {
        let application_id = self.application_id;
        let route = match guild {
            Some(g) => Route::GuildCommands {
                application_id,
                guild_id: GuildId::new(snowflake("guild", g)?),
            },
            None => Route::Commands { application_id },
        };
        let body = serde_json::to_value(specs.iter().map(CommandSpec::build).collect::<Vec<_>>())
            .unwrap_or_default();
        let bytes = self.send(route, LightMethod::Put, Some(body)).await?;
        #[derive(serde::Deserialize)]
        struct Registered {
            name: String,
        }
        serde_json::from_slice::<Vec<Registered>>(&bytes)
            .map(|v| v.into_iter().map(|r| r.name).collect())
            .map_err(|e| DiscordApiError::Permanent(format!("unexpected answer from Discord: {e}")))
    }
}
