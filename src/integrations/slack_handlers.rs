//! What opsledger does with a Slack slash command, interaction or event, whichever transport
//! brought it (HTTP or Socket Mode): the same handlers serve both.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::domain::ids::Actor;
use crate::domain::reply::{Outcome, Reply};
use crate::ledger::{Delivery, Ledger};
use crate::outbox::OutboxWaker;
use crate::store::NewOutbox;

use super::forms::{form_command, form_for};
use super::slack::{op, view, SlackConfig, PLATFORM};
use super::{ephemeral, Delivered};

/// Input Slack sent that cannot be acted on (answered 400 over HTTP).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The Slack handlers: the ledger, Slack's settings and the outbox.
#[derive(Clone)]
pub struct SlackHandlers {
    pub ledger: Ledger,
    pub config: Arc<SlackConfig>,
    pub outbox: Option<OutboxWaker>,
}

impl std::fmt::Debug for SlackHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackHandlers")
    }
}

fn person(user_id: &str) -> Result<Actor, BadInput> {
    Actor::parse_person(&format!("slack:{user_id}")).map_err(|e| BadInput(e.to_string()))
}

impl SlackHandlers {
    /// A slash command: runs it and returns the response body (in the channel or ephemeral).
    /// A replay of one already acted on (same `trigger_id`) changes nothing.
    pub async fn command(
        &self,
        cmd: opsledger_slack::SlashCommand,
    ) -> Result<(Value, Delivered), BadInput> {
        let actor = person(&cmd.user_id)?;
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

    /// Whether a delivery was already acted on (as committed): answered at once as a repeat.
    async fn seen(&self, d: &Option<Delivery>) -> bool {
        match d {
            Some(d) => self
                .ledger
                .store()
                .delivery_seen(d.platform, &d.id)
                .await
                .unwrap_or(false),
            None => false,
        }
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
                let actor = person(&user_id)?;
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
                            let payload = json!({ "reply": hint, "response_url": url });
                            self.enqueue(
                                &channel_id.unwrap_or_default(),
                                op::RESPOND,
                                Some(value),
                                payload,
                            )
                            .await;
                        }
                    }
                    return Ok((None, Delivered::First));
                }
                // A replayed press (same trigger) already acted on is acknowledged and dropped;
                // one whose first delivery is still running is caught in the writer.
                let once = delivery(&trigger_id);
                if self.seen(&once).await {
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
                            let payload = json!({ "reply": handled.reply, "response_url": url });
                            this.enqueue(&channel, op::RESPOND, Some(value), payload)
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
                let actor = person(&user_id)?;
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
                if self.seen(&once).await {
                    tracing::debug!(%event_id, "dropped a redelivered Slack event");
                    return Ok((None, Delivered::Again));
                }
                let actor = person(&user_id)?;
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
                    this.enqueue(
                        &channel_id,
                        op::REPLY,
                        handled.reply.record.clone(),
                        payload,
                    )
                    .await;
                });
                Ok((None, Delivered::First))
            }
            opsledger_slack::Push::Other { .. } => Ok((None, Delivered::First)),
        }
    }

    /// Queues one message outside a command (a reply to a mention, an explanation to one person).
    async fn enqueue(&self, channel: &str, op: &str, record: Option<String>, payload: Value) {
        let item = NewOutbox {
            platform: PLATFORM.into(),
            channel: channel.into(),
            op: op.into(),
            record,
            payload,
        };
        super::enqueue(self.ledger.store(), self.outbox.as_ref(), item).await;
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
