//! REST calls (messages, threads, interaction follow-ups, command registration) through
//! serenity's HTTP client pointed at `DISCORD_API_URL`, with errors sorted into "try again
//! later" and "will never work".
//!
//! Serenity's in-process rate limiter is off: it sends to discord.com whatever the proxy origin
//! says, and the durable outbox already sends one message per channel at a time and waits as
//! long as a 429 says. Requests are built with serenity's routes and sent here, so the answer's
//! status, `Retry-After` and body are all at hand (serenity's error drops `Retry-After`).
//! Successful answers are read for the one field needed (the new ID) rather than as whole
//! serenity models, and a 2xx whose body cannot be read still counts as done, so a field
//! Discord adds or omits cannot fail (and repeat) a delivery that already happened.

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
    /// The client `http` was built with; requests go through it directly.
    client: reqwest::Client,
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

/// A request serenity could not build (a bad URL or header) will never work; anything else
/// serenity reports before an answer arrives is the network.
fn classify(e: serenity::Error) -> DiscordApiError {
    match e {
        serenity::Error::Http(HttpError::Url(u)) => {
            DiscordApiError::Permanent(format!("bad request URL: {u}"))
        }
        serenity::Error::Http(HttpError::InvalidHeader(h)) => {
            DiscordApiError::Permanent(format!("bad request header: {h}"))
        }
        other => DiscordApiError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
}

/// What Discord's error body says: `{"message": ..., "code": ..., "retry_after": 1.5, "global": false}`.
#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after: Option<f64>,
}

/// Sorts a non-2xx answer: a 429, 408 or 5xx is worth retrying, after the body's
/// `retry_after` (seconds, fractional) or else the `Retry-After` header when Discord sent one;
/// any other refusal will not change.
pub fn refusal(status: u16, retry_after_header: Option<&str>, body: &[u8]) -> DiscordApiError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let seconds = |s: f64| (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    let after = parsed.retry_after.and_then(seconds).or_else(|| {
        retry_after_header
            .and_then(|h| h.trim().parse::<f64>().ok())
            .and_then(seconds)
    });
    let reason = format!("HTTP {status} {}", parsed.message)
        .trim()
        .to_string();
    if status == 429 || status == 408 || (500..600).contains(&status) {
        DiscordApiError::Retry { after, reason }
    } else {
        DiscordApiError::Permanent(reason)
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
            .client(client.clone())
            .proxy(origin.clone())
            .ratelimiter_disabled(true)
            .application_id(application_id)
            .build();
        Ok(DiscordApi {
            http: std::sync::Arc::new(http),
            client,
            origin,
            application_id,
        })
    }

    /// Sends one request. A 2xx is `Ok` with its body, or with no body when it cannot be read
    /// (the call took effect all the same); anything else is sorted by `refusal`.
    async fn send(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>, DiscordApiError> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        let path = route.path().to_string();
        let request = Request::new(route, method)
            .body(body)
            .build(&self.client, self.http.token(), Some(&self.origin))
            .map_err(classify)?
            .build()
            .map_err(|e| DiscordApiError::Permanent(format!("cannot build the request: {e}")))?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| DiscordApiError::Retry {
                after: None,
                reason: format!("{path}: {e}"),
            })?;
        let status = response.status();
        let header = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await;
        if status.is_success() {
            return Ok(match bytes {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "Discord's 2xx answer could not be read; counting the call as done");
                    Vec::new()
                }
            });
        }
        let bytes = bytes.map(|b| b.to_vec()).unwrap_or_default();
        Err(refusal(status.as_u16(), header.as_deref(), &bytes))
    }

    /// Creates something; returns its ID, or `None` when the 2xx answer does not say (it was
    /// created all the same, so it is not sent again).
    async fn created(
        &self,
        route: Route<'_>,
        body: serde_json::Value,
    ) -> Result<Option<String>, DiscordApiError> {
        let bytes = self.send(route, LightMethod::Post, Some(body)).await?;
        match serde_json::from_slice::<Created>(&bytes) {
            Ok(c) => Ok(Some(c.id)),
            Err(e) => {
                tracing::warn!(
                    body = %String::from_utf8_lossy(&bytes),
                    error = %e,
                    "Discord's 2xx answer has no readable id; counting the call as done"
                );
                Ok(None)
            }
        }
    }

    /// Posts a message; returns its ID, which later edits need (`None`: posted, ID unknown).
    pub async fn post_message(
        &self,
        channel: &str,
        view: &View,
    ) -> Result<Option<String>, DiscordApiError> {
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

    /// Starts a thread on a message; returns the thread's channel ID (`None`: started, ID
    /// unknown).
    pub async fn create_thread(
        &self,
        channel: &str,
        message: &str,
        name: &str,
    ) -> Result<Option<String>, DiscordApiError> {
        let route = Route::ChannelMessageThreads {
            channel_id: ChannelId::new(snowflake("channel", channel)?),
            message_id: MessageId::new(snowflake("message", message)?),
        };
        let body = serde_json::to_value(CreateThread::new(name)).unwrap_or_default();
        self.created(route, body).await
    }

    /// Opens (or finds) the bot's direct-message channel with one user, for a page; returns the
    /// channel's ID (`None`: opened, ID unknown).
    pub async fn open_dm(&self, user: &str) -> Result<Option<String>, DiscordApiError> {
        let recipient = snowflake("user", user)?;
        self.created(
            Route::UserMeDmChannels,
            serde_json::json!({ "recipient_id": recipient.to_string() }),
        )
        .await
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
        match serde_json::from_slice::<Vec<Registered>>(&bytes) {
            Ok(v) => Ok(v.into_iter().map(|r| r.name).collect()),
            Err(e) => {
                // Registered all the same: name what was sent.
                tracing::warn!(error = %e, "Discord's answer to the registration could not be read");
                Ok(specs.iter().map(|s| s.name.to_string()).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_waits_as_long_as_discord_says() {
        let body =
            br#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#;
        assert_eq!(
            refusal(429, Some("2"), body),
            DiscordApiError::Retry {
                after: Some(Duration::from_millis(1500)),
                reason: "HTTP 429 You are being rate limited.".into()
            }
        );
        // Only the header: its whole seconds.
        assert!(matches!(
            refusal(429, Some("3"), b""),
            DiscordApiError::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            refusal(502, None, b"<html>bad gateway</html>"),
            DiscordApiError::Retry { after: None, .. }
        ));
        assert_eq!(
            refusal(
                404,
                None,
                br#"{"message": "Unknown Channel", "code": 10003}"#
            ),
            DiscordApiError::Permanent("HTTP 404 Unknown Channel".into())
        );
        assert!(matches!(
            refusal(
                403,
                None,
                br#"{"message": "Missing Access", "code": 50001}"#
            ),
            DiscordApiError::Permanent(_)
        ));
    }
}
