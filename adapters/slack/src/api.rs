//! Web API calls (chat.postMessage, chat.update, response URLs) through slack-morphism's client,
//! with errors sorted into "try again later" and "will never work".

use std::time::Duration;

use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::blocks::{content, View};

pub(crate) type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackApiError {
    /// Rate limited, a 5xx, or the network: try again (after `after` when Slack said so).
    #[error("slack is unavailable: {reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// A request Slack will never accept as it is (`channel_not_found`, `invalid_auth`, ...).
    #[error("slack refused the request: {0}")]
    Permanent(String),
}

/// A Slack Web API client for one bot token, pointed at `SLACK_API_URL`.
#[derive(Clone)]
pub struct SlackApi {
    client: std::sync::Arc<SlackClient<Connector>>,
    token: SlackApiToken,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackApi")
    }
}

/// Slack answers `ok: false` with these codes for trouble on its side: worth retrying.
const TRANSIENT_CODES: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

fn classify(e: SlackClientError) -> SlackApiError {
    match e {
        SlackClientError::RateLimitError(r) => SlackApiError::Retry {
            after: r.retry_after,
            reason: "rate limited (429)".into(),
        },
        SlackClientError::HttpError(h)
            if h.status_code.is_server_error() || matches!(h.status_code.as_u16(), 408 | 429) =>
        {
            SlackApiError::Retry {
                after: None,
                reason: format!("HTTP {}", h.status_code.as_u16()),
            }
        }
        SlackClientError::HttpError(h) => {
            SlackApiError::Permanent(format!("HTTP {}", h.status_code.as_u16()))
        }
        SlackClientError::ApiError(a) => api_error(&a.code),
        // A request that cannot be written as JSON will never be.
        SlackClientError::ProtocolError(p) if p.json_body.is_none() => {
            SlackApiError::Permanent(format!("cannot encode the request: {}", p.json_error))
        }
        // The network, a connection closed early, a timeout.
        other => SlackApiError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
}

/// A readable `{"ok": false, "error": code}`: transient codes are retried, the rest never work.
fn api_error(code: &str) -> SlackApiError {
    if TRANSIENT_CODES.contains(&code) {
        SlackApiError::Retry {
            after: None,
            reason: code.to_string(),
        }
    } else {
        SlackApiError::Permanent(code.to_string())
    }
}

/// Sorts a call's result. A 2xx whose body cannot be read (not JSON, or not the shape asked
/// for) means the call took effect: it is `Ok(None)` with the body logged, never a retry that
/// would post again. A readable body that says the call failed is an error.
fn answer<T>(
    method: &str,
    result: Result<T, SlackClientError>,
) -> Result<Option<T>, SlackApiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        // slack-morphism reads only 200 and 204 as success; another 2xx took effect too.
        Err(SlackClientError::HttpError(h)) if h.status_code.is_success() => {
            tracing::warn!(
                method,
                status = h.status_code.as_u16(),
                body = h.http_response_body.as_deref().unwrap_or_default(),
                "Slack answered an unexpected 2xx; counting the call as done"
            );
            Ok(None)
        }
        Err(SlackClientError::ProtocolError(p)) if p.json_body.is_some() => {
            tracing::warn!(
                method,
                body = p.json_body.as_deref().unwrap_or_default(),
                error = %p.json_error,
                "Slack answered 2xx with a body that cannot be read; counting the call as done"
            );
            Ok(None)
        }
        Err(e) => Err(classify(e)),
    }
}

/// A JSON answer that says `ok: false` without an `error` code (slack-morphism only checks
/// `error`) is a failure too.
fn checked(v: Option<serde_json::Value>) -> Result<Option<serde_json::Value>, SlackApiError> {
    match v {
        Some(v) if v.get("ok") == Some(&serde_json::Value::Bool(false)) => {
            Err(api_error(v["error"].as_str().unwrap_or("ok_false")))
        }
        v => Ok(v),
    }
}

/// A string field of a 2xx answer; a missing one is logged (the call took effect all the same).
fn field(method: &str, v: &Option<serde_json::Value>, path: &[&str]) -> Option<String> {
    let v = v.as_ref()?;
    let found = path
        .iter()
        .try_fold(v, |cur, key| cur.get(*key))
        .and_then(|f| f.as_str())
        .map(str::to_string);
    if found.is_none() {
        tracing::warn!(method, body = %v, field = path.join("."), "Slack's 2xx answer lacks a field; counting the call as done");
    }
    found
}

/// How many names `create_channel` tries (`name`, `name-2`, ...) before giving up.
pub const CHANNEL_NAME_TRIES: u32 = 20;

/// `name` with the `n`th suffix (`-2`, `-3`, ...; the first try is `name` itself), at most 80
/// characters as Slack requires.
pub fn suffixed_channel_name(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_string();
    }
    let suffix = format!("-{n}");
    let room = 80usize.saturating_sub(suffix.len());
    let base: String = name.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

impl SlackApi {
    /// `base_url` is the Web API base, normally `https://slack.com/api`.
    pub fn new(token: &str, base_url: &str) -> Result<SlackApi, SlackApiError> {
        let connector = SlackClientHyperConnector::with_connector(https_connector()?)
            .with_slack_api_url(base_url.trim_end_matches('/'));
        Ok(SlackApi {
            client: std::sync::Arc::new(SlackClient::new(connector)),
            token: SlackApiToken::new(SlackApiTokenValue(token.to_string())),
        })
    }

    /// A Web API method, its answer read as plain JSON so that a field Slack adds or omits
    /// cannot fail a call that took effect (`answer`).
    async fn call<RQ>(
        &self,
        method: &str,
        req: &RQ,
    ) -> Result<Option<serde_json::Value>, SlackApiError>
    where
        RQ: serde::Serialize + Send + Sync,
    {
        let session = self.client.open_session(&self.token);
        let result = session
            .http_session_api
            .http_post::<RQ, serde_json::Value>(method, req, None)
            .await;
        checked(answer(method, result)?)
    }

    /// Posts a message; returns its `ts`, which later updates need (`None` when Slack's 2xx
    /// answer did not say: the message is posted all the same).
    pub async fn post_message(
        &self,
        channel: &str,
        view: &View,
    ) -> Result<Option<String>, SlackApiError> {
        let req =
            SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_string()), content(view));
        let v = self.call("chat.postMessage", &req).await?;
        Ok(field("chat.postMessage", &v, &["ts"]))
    }

    /// Replaces a message in place.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        view: &View,
    ) -> Result<(), SlackApiError> {
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            content(view),
            SlackTs(ts.to_string()),
        );
        self.call("chat.update", &req).await?;
        Ok(())
    }

    /// Answers through an interaction's or command's `response_url` (ephemeral by default).
    /// Slack answers a bare `ok` (text/plain) there.
    pub async fn respond(&self, response_url: &str, view: &View) -> Result<(), SlackApiError> {
        let url = response_url
            .parse()
            .map_err(|_| SlackApiError::Permanent(format!("`{response_url}` is not a URL")))?;
        let req = SlackApiPostWebhookMessageRequest::new(content(view));
        answer(
            "response_url",
            self.client
                .respond_to_event(&SlackResponseUrl(url), &req)
                .await,
        )?;
        Ok(())
    }
}

/// HTTPS with the system's roots, and plain HTTP for local test servers.
pub(crate) fn https_connector() -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    SlackApiError,
> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| SlackApiError::Permanent(format!("no TLS root certificates: {e}")))?
        .https_or_http()
        .enable_http1()
        .build())
}

/// A one-field modal asking for text before a command runs (a resolution, a reason to reject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextModal {
    /// Comes back as the submission's `callback_id`: the command verb, such as `incident resolve`.
    pub callback_id: String,
    /// Comes back as `private_metadata`: the record ID.
    pub private_metadata: String,
    pub title: String,
    pub label: String,
    pub submit: String,
}

/// The block ID of the modal's text input; submission errors are shown against it.
pub const MODAL_TEXT_BLOCK: &str = "text";

impl SlackApi {
    /// Opens a modal for the person who pressed a button (the trigger is valid for 3 seconds).
    pub async fn open_modal(
        &self,
        trigger_id: &str,
        modal: &TextModal,
    ) -> Result<(), SlackApiError> {
        let input = SlackInputBlock::new(
            modal.label.clone().into(),
            SlackInputBlockElement::PlainTextInput(
                SlackBlockPlainTextInputElement::new()
                    .with_action_id(SlackActionId("value".into()))
                    .with_multiline(true),
            ),
        )
        .with_block_id(SlackBlockId(MODAL_TEXT_BLOCK.into()));
        let view = SlackView::Modal(
            SlackModalView::new(modal.title.clone().into(), vec![input.into()])
                .with_submit(modal.submit.clone().into())
                .with_close("Cancel".into())
                .with_callback_id(SlackCallbackId(modal.callback_id.clone()))
                .with_private_metadata(modal.private_metadata.clone()),
        );
        self.call(
            "views.open",
            &SlackApiViewsOpenRequest::new(SlackTriggerId(trigger_id.to_string()), view),
        )
        .await?;
        Ok(())
    }

    /// Creates a public channel named `name`; when Slack answers `name_taken` (another install
    /// in the workspace, or a channel someone made, has it), tries `name-2`, `name-3`, ... up to
    /// `CHANNEL_NAME_TRIES` names. Returns the name used and the channel's ID (`None` when
    /// Slack's 2xx answer did not say).
    pub async fn create_channel(
        &self,
        name: &str,
    ) -> Result<(String, Option<String>), SlackApiError> {
        for n in 1..=CHANNEL_NAME_TRIES {
            let candidate = suffixed_channel_name(name, n);
            let req = SlackApiConversationsCreateRequest::new(candidate.clone());
            match self.call("conversations.create", &req).await {
                Ok(v) => {
                    let id = field("conversations.create", &v, &["channel", "id"]);
                    return Ok((candidate, id));
                }
                Err(SlackApiError::Permanent(code)) if code == "name_taken" => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SlackApiError::Permanent(format!(
            "name_taken: {name} and {} suffixed names are all taken",
            CHANNEL_NAME_TRIES - 1
        )))
    }

    /// Opens (or finds) the direct-message channel with one person, for a page; returns its ID
    /// (`None` when Slack's 2xx answer did not say). `users` is a comma-separated list in
    /// Slack's reference, so it is sent as that string, not as slack-morphism's array.
    pub async fn open_dm(&self, user: &str) -> Result<Option<String>, SlackApiError> {
        let v = self
            .call("conversations.open", &serde_json::json!({ "users": user }))
            .await?;
        Ok(field("conversations.open", &v, &["channel", "id"]))
    }

    /// Invites people to a channel.
    pub async fn invite(&self, channel: &str, users: &[String]) -> Result<(), SlackApiError> {
        let users = users.iter().map(|u| SlackUserId(u.clone())).collect();
        self.call(
            "conversations.invite",
            &SlackApiConversationsInviteRequest::new(SlackChannelId(channel.to_string()), users),
        )
        .await?;
        Ok(())
    }
}

/// A Slack channel name for an incident: `inc-12-checkout-down` (lowercase, at most 80 characters).
pub fn incident_channel_name(number: u64, title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut name = format!("inc-{number}-{}", slug.trim_end_matches('-'));
    name.truncate(80);
    name.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn incident_channel_names_are_slack_safe() {
        assert_eq!(
            super::incident_channel_name(12, "Checkout down!"),
            "inc-12-checkout-down"
        );
        assert_eq!(
            super::incident_channel_name(3, "  DB: très slow / 500s "),
            "inc-3-db-tr-s-slow-500s"
        );
        assert_eq!(super::incident_channel_name(1, "日本"), "inc-1");
        assert!(super::incident_channel_name(7, &"x".repeat(200)).len() <= 80);
    }

    #[test]
    fn suffixed_names_keep_within_eighty_characters() {
        assert_eq!(
            super::suffixed_channel_name("inc-1-checkout-down", 1),
            "inc-1-checkout-down"
        );
        assert_eq!(
            super::suffixed_channel_name("inc-1-checkout-down", 2),
            "inc-1-checkout-down-2"
        );
        let long = super::suffixed_channel_name(&"x".repeat(80), 12);
        assert_eq!(long.len(), 80);
        assert!(long.ends_with("x-12"));
    }

    #[test]
    fn unreadable_two_hundreds_count_as_done_and_failures_are_sorted() {
        use slack_morphism::errors::*;
        let unreadable = SlackClientError::ProtocolError(SlackClientProtocolError {
            json_error: serde_json::from_str::<serde_json::Value>("ok").unwrap_err(),
            json_body: Some("ok".into()),
        });
        assert_eq!(
            super::answer::<()>("chat.postMessage", Err(unreadable)),
            Ok(None)
        );
        let api =
            |code: &str| SlackClientError::ApiError(SlackClientApiError::new(code.to_string()));
        assert_eq!(
            super::answer::<()>("chat.postMessage", Err(api("channel_not_found"))),
            Err(super::SlackApiError::Permanent("channel_not_found".into()))
        );
        assert!(matches!(
            super::answer::<()>("chat.postMessage", Err(api("ratelimited"))),
            Err(super::SlackApiError::Retry { .. })
        ));
        assert_eq!(
            super::checked(Some(serde_json::json!({"ok": false}))),
            Err(super::SlackApiError::Permanent("ok_false".into()))
        );
        let http = |code: u16| {
            SlackClientError::HttpError(SlackClientHttpError::new(
                http::StatusCode::from_u16(code).unwrap(),
            ))
        };
        assert!(matches!(
            super::classify(http(503)),
            super::SlackApiError::Retry { .. }
        ));
        assert_eq!(
            super::answer::<()>("chat.postMessage", Err(http(202))),
            Ok(None)
        );
        assert_eq!(
            super::classify(http(404)),
            super::SlackApiError::Permanent("HTTP 404".into())
        );
    }
}
