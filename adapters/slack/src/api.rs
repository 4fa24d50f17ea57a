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
            if h.status_code.is_server_error() || h.status_code.as_u16() == 429 =>
        {
            SlackApiError::Retry {
                after: None,
                reason: format!("HTTP {}", h.status_code.as_u16()),
            }
        }
        SlackClientError::HttpError(h) => {
            SlackApiError::Permanent(format!("HTTP {}", h.status_code.as_u16()))
        }
        SlackClientError::ApiError(a) if TRANSIENT_CODES.contains(&a.code.as_str()) => {
            SlackApiError::Retry {
                after: None,
                reason: a.code,
            }
        }
        SlackClientError::ApiError(a) => SlackApiError::Permanent(a.code),
        other => SlackApiError::Retry {
            after: None,
            reason: other.to_string(),
        },
    }
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

    /// Posts a message; returns its `ts`, which later updates need.
    pub async fn post_message(&self, channel: &str, view: &View) -> Result<String, SlackApiError> {
        let session = self.client.open_session(&self.token);
        let req =
            SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_string()), content(view));
        let resp = session.chat_post_message(&req).await.map_err(classify)?;
        Ok(resp.ts.to_string())
    }

    /// Replaces a message in place.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        view: &View,
    ) -> Result<(), SlackApiError> {
        let session = self.client.open_session(&self.token);
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_string()),
            content(view),
            SlackTs(ts.to_string()),
        );
        session.chat_update(&req).await.map_err(classify)?;
        Ok(())
    }

    /// Answers through an interaction's or command's `response_url` (ephemeral by default).
    pub async fn respond(&self, response_url: &str, view: &View) -> Result<(), SlackApiError> {
        let url = response_url
            .parse()
            .map_err(|_| SlackApiError::Permanent(format!("`{response_url}` is not a URL")))?;
        let req = SlackApiPostWebhookMessageRequest::new(content(view));
        self.client
            .respond_to_event(&SlackResponseUrl(url), &req)
            .await
            .map_err(classify)?;
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
        let session = self.client.open_session(&self.token);
        session
            .views_open(&SlackApiViewsOpenRequest::new(
                SlackTriggerId(trigger_id.to_string()),
                view,
            ))
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Creates a public channel; returns its ID.
    pub async fn create_channel(&self, name: &str) -> Result<String, SlackApiError> {
        let session = self.client.open_session(&self.token);
        let resp = session
            .conversations_create(&SlackApiConversationsCreateRequest::new(name.to_string()))
            .await
            .map_err(classify)?;
        Ok(resp.channel.id.to_string())
    }

    /// Invites people to a channel.
    pub async fn invite(&self, channel: &str, users: &[String]) -> Result<(), SlackApiError> {
        let session = self.client.open_session(&self.token);
        let users = users.iter().map(|u| SlackUserId(u.clone())).collect();
        session
            .conversations_invite(&SlackApiConversationsInviteRequest::new(
                SlackChannelId(channel.to_string()),
                users,
            ))
            .await
            .map_err(classify)?;
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
}
