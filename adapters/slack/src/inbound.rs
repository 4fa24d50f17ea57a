//! Inbound payloads: slash commands (form), interactions (`payload=` JSON) and Events API pushes.
//!
//! Parsed with slack-morphism's serde models, then reduced to the few plain fields opsledger uses.

use slack_morphism::prelude::{
    SlackCommandEvent, SlackEventCallbackBody, SlackInteractionActionContainer,
    SlackInteractionEvent, SlackPushEvent, SlackPushEventCallback,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a Slack slash command: {0}")]
    Command(String),
    #[error("not a Slack interaction: {0}")]
    Interaction(String),
    #[error("not a Slack event: {0}")]
    Event(String),
}

/// A `/ops <text>` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub team_id: String,
    pub user_id: String,
    pub channel_id: String,
    pub text: String,
    pub response_url: String,
    pub trigger_id: String,
}

/// Checks that every field of a form body decodes to UTF-8. serde_urlencoded would put U+FFFD
/// in place of bad bytes, recording text nobody typed; such a body is refused, naming the field.
pub fn form_is_utf8(body: &str) -> Result<(), String> {
    for pair in body.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let plus = value.replace('+', " ");
        if percent_encoding::percent_decode_str(&plus)
            .decode_utf8()
            .is_err()
        {
            return Err(format!(
                "the form field `{}` is not valid UTF-8; send it as UTF-8",
                percent_encoding::percent_decode_str(key).decode_utf8_lossy()
            ));
        }
    }
    Ok(())
}

pub fn parse_command(body: &str) -> Result<SlashCommand, ParseError> {
    form_is_utf8(body).map_err(ParseError::Command)?;
    let c: SlackCommandEvent =
        serde_urlencoded::from_str(body).map_err(|e| ParseError::Command(e.to_string()))?;
    Ok(command_from(c))
}

/// The plain command from slack-morphism's model (HTTP form or Socket Mode envelope).
pub(crate) fn command_from(c: SlackCommandEvent) -> SlashCommand {
    SlashCommand {
        team_id: c.team_id.to_string(),
        user_id: c.user_id.to_string(),
        channel_id: c.channel_id.to_string(),
        text: c.text.unwrap_or_default(),
        response_url: c.response_url.0.to_string(),
        trigger_id: c.trigger_id.to_string(),
    }
}

/// What a person did in a message or modal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A button press: `action_id` is the command verb, `value` the record ID.
    Button {
        user_id: String,
        channel_id: Option<String>,
        message_ts: Option<String>,
        action_id: String,
        value: String,
        response_url: Option<String>,
        trigger_id: String,
    },
    /// A modal submitted: `callback_id` and `private_metadata` as set when it was opened,
    /// and the text the person typed.
    ModalSubmit {
        user_id: String,
        callback_id: String,
        private_metadata: String,
        text: String,
        /// Slack's id of this submission, when it sent one: a replay carries the same.
        trigger_id: Option<String>,
    },
    /// Anything else (shortcuts, closed modals): acknowledged and ignored.
    Other { kind: String },
}

pub fn parse_interaction(body: &str) -> Result<Interaction, ParseError> {
    let bad = |e: String| ParseError::Interaction(e);
    form_is_utf8(body).map_err(bad)?;
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(body).map_err(|e| bad(e.to_string()))?;
    let payload = form
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
        .ok_or_else(|| bad("no payload field".into()))?;
    let event: SlackInteractionEvent =
        serde_json::from_str(&payload).map_err(|e| bad(e.to_string()))?;
    interaction_from(event)
}

/// The plain interaction from slack-morphism's model (HTTP form or Socket Mode envelope).
pub(crate) fn interaction_from(event: SlackInteractionEvent) -> Result<Interaction, ParseError> {
    let bad = |e: String| ParseError::Interaction(e);
    Ok(match event {
        SlackInteractionEvent::BlockActions(b) => {
            let user_id = b
                .user
                .map(|u| u.id.to_string())
                .ok_or_else(|| bad("no user".into()))?;
            let action = b
                .actions
                .unwrap_or_default()
                .into_iter()
                .next()
                .ok_or_else(|| bad("no action".into()))?;
            let (channel_id, message_ts) = match &b.container {
                SlackInteractionActionContainer::Message(m) => (
                    m.channel_id.as_ref().map(|c| c.to_string()),
                    Some(m.message_ts.to_string()),
                ),
                _ => (b.channel.as_ref().map(|c| c.id.to_string()), None),
            };
            Interaction::Button {
                user_id,
                channel_id,
                message_ts,
                action_id: action.action_id.to_string(),
                value: action.value.unwrap_or_default(),
                response_url: b.response_url.map(|u| u.0.to_string()),
                trigger_id: b.trigger_id.to_string(),
            }
        }
        SlackInteractionEvent::ViewSubmission(v) => {
            // The modal has one plain-text input; its value is the text.
            let text = v
                .view
                .state_params
                .state
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|s| first_text_value(&s))
                .unwrap_or_default();
            let (callback_id, private_metadata) = match &v.view.view {
                slack_morphism::prelude::SlackView::Modal(m) => (
                    m.callback_id
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    m.private_metadata.clone().unwrap_or_default(),
                ),
                _ => (String::new(), String::new()),
            };
            Interaction::ModalSubmit {
                user_id: v.user.id.to_string(),
                callback_id,
                private_metadata,
                text,
                trigger_id: v.trigger_id.map(|t| t.to_string()),
            }
        }
        other => Interaction::Other {
            kind: serde_json::to_value(&other)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
                .unwrap_or_else(|| "unknown".into()),
        },
    })
}

/// The first `value` string in a modal's `state.values` tree.
fn first_text_value(state: &serde_json::Value) -> Option<String> {
    let values = state.get("values")?.as_object()?;
    values
        .values()
        .filter_map(|block| block.as_object())
        .flat_map(|actions| actions.values())
        .find_map(|a| a.get("value").and_then(|v| v.as_str()).map(str::to_string))
}

/// An Events API push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    UrlVerification {
        challenge: String,
    },
    AppMention {
        event_id: String,
        user_id: String,
        channel_id: String,
        text: String,
    },
    Other {
        event_id: Option<String>,
    },
}

pub fn parse_event(body: &str) -> Result<Push, ParseError> {
    let push: SlackPushEvent =
        serde_json::from_str(body).map_err(|e| ParseError::Event(e.to_string()))?;
    Ok(match push {
        SlackPushEvent::UrlVerification(v) => Push::UrlVerification {
            challenge: v.challenge,
        },
        SlackPushEvent::EventCallback(cb) => push_from_callback(cb),
        _ => Push::Other { event_id: None },
    })
}

/// The plain push from slack-morphism's model (HTTP body or Socket Mode envelope).
pub(crate) fn push_from_callback(cb: SlackPushEventCallback) -> Push {
    let event_id = cb.event_id.to_string();
    match cb.event {
        SlackEventCallbackBody::AppMention(m) => Push::AppMention {
            event_id,
            user_id: m.user.to_string(),
            channel_id: m.channel.to_string(),
            text: m.content.text.unwrap_or_default(),
        },
        _ => Push::Other {
            event_id: Some(event_id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_command_form_is_parsed() {
        let body = "token=x&team_id=T1&team_domain=acme&channel_id=C1&channel_name=ops&user_id=U1&user_name=alice&command=%2Fops&text=incident+raise+Checkout+down&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=13.1.a";
        let c = parse_command(body).unwrap();
        assert_eq!(c.user_id, "U1");
        assert_eq!(c.channel_id, "C1");
        assert_eq!(c.text, "incident raise Checkout down");
        assert_eq!(c.response_url, "https://hooks.slack.com/commands/1");
    }

    #[test]
    fn block_action_button_is_parsed() {
        let payload = serde_json::json!({
            "type": "block_actions",
            "team": {"id": "T1", "domain": "acme"},
            "user": {"id": "U2", "username": "bob", "team_id": "T1"},
            "api_app_id": "A1",
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1", "is_ephemeral": false},
            "trigger_id": "13.2.b",
            "channel": {"id": "C1", "name": "incidents"},
            "response_url": "https://hooks.slack.com/actions/1",
            "actions": [{"type": "button", "action_id": "incident ack", "block_id": "b1", "value": "INC-1", "action_ts": "1700000001.000200"}]
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        match parse_interaction(&body).unwrap() {
            Interaction::Button {
                user_id,
                action_id,
                value,
                message_ts,
                channel_id,
                ..
            } => {
                assert_eq!(
                    (user_id.as_str(), action_id.as_str(), value.as_str()),
                    ("U2", "incident ack", "INC-1")
                );
                assert_eq!(message_ts.as_deref(), Some("1700000000.000100"));
                assert_eq!(channel_id.as_deref(), Some("C1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn url_verification_and_app_mention_are_parsed() {
        let v =
            parse_event(r#"{"type":"url_verification","token":"t","challenge":"abc123"}"#).unwrap();
        assert_eq!(
            v,
            Push::UrlVerification {
                challenge: "abc123".into()
            }
        );
        let m = serde_json::json!({
            "type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1", "event_time": 1700000000,
            "event": {"type": "app_mention", "user": "U1", "channel": "C1", "text": "<@UBOT> incident list", "ts": "1700000000.000100"}
        });
        assert_eq!(
            parse_event(&m.to_string()).unwrap(),
            Push::AppMention {
                event_id: "Ev1".into(),
                user_id: "U1".into(),
                channel_id: "C1".into(),
                text: "<@UBOT> incident list".into()
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_command("%%%").is_err());
        assert!(parse_interaction("payload=%7B").is_err());
        assert!(parse_event("[]").is_err());
    }
}
