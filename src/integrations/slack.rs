//! Slack integration: routes events to channel posts and in-place updates, and delivers them with
//! the `opsledger-slack` adapter. Messages are rendered when they are sent, from the record as it
//! is then, so a late delivery is still correct.

use std::sync::Arc;

use async_trait::async_trait;
use opsledger_slack::{SlackApi, SlackApiError, View, ViewButton};
use secrecy::SecretString;

use crate::domain::ids::Kind;
use crate::domain::reply::{ButtonStyle, Event, Reply};
use crate::ledger::{Clock, Router};
use crate::outbox::{Deliver, DeliveryError};
use crate::store::{NewOutbox, OutboxItem, Store};
use crate::usecase::render;

pub const PLATFORM: &str = "slack";

/// Outbox operations the Slack deliverer knows.
pub mod op {
    /// Post the record's card to the channel and remember its `ts`.
    pub const POST_RECORD: &str = "post_record";
    /// Update the record's card in place (posting it first if it was never posted).
    pub const UPDATE_RECORD: &str = "update_record";
    /// Post a reply (`payload.reply`) to the channel.
    pub const REPLY: &str = "reply";
    /// Answer through a response URL (`payload.response_url`), visible to one person.
    pub const RESPOND: &str = "respond";
}

#[derive(Clone)]
pub struct SlackConfig {
    pub signing_secret: SecretString,
    pub api: SlackApi,
    pub incident_channel: Option<String>,
    pub cab_channel: Option<String>,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("incident_channel", &self.incident_channel)
            .field("cab_channel", &self.cab_channel)
            .finish_non_exhaustive()
    }
}

/// Maps a neutral reply to the adapter's view.
pub fn view(reply: &Reply) -> View {
    View {
        text: reply.text.clone(),
        fields: reply
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect(),
        buttons: reply
            .buttons
            .iter()
            .map(|b| ViewButton {
                label: b.label.clone(),
                action_id: b.action.clone(),
                value: b.record.clone(),
                style: match b.style {
                    ButtonStyle::Primary => Some("primary".into()),
                    ButtonStyle::Danger => Some("danger".into()),
                    ButtonStyle::Default => None,
                },
            })
            .collect(),
    }
}

fn item(channel: &str, op: &str, record: &str, payload: serde_json::Value) -> NewOutbox {
    NewOutbox {
        platform: PLATFORM.to_string(),
        channel: channel.to_string(),
        op: op.to_string(),
        record: Some(record.to_string()),
        payload,
    }
}

impl Router for SlackConfig {
    fn route(&self, event: &Event) -> Vec<NewOutbox> {
        let none = serde_json::Value::Null;
        let on = |channel: &Option<String>, op: &str, id: &str| {
            channel
                .iter()
                .map(|c| item(c, op, id, none.clone()))
                .collect::<Vec<_>>()
        };
        match event {
            Event::IncidentRaised { id, .. } => on(&self.incident_channel, op::POST_RECORD, id),
            Event::IncidentUpdated { id, .. } => on(&self.incident_channel, op::UPDATE_RECORD, id),
            Event::ChangeSubmitted { id } => on(&self.cab_channel, op::POST_RECORD, id),
            Event::ChangeVoted { id }
            | Event::ChangeDecided { id, .. }
            | Event::ChangeUpdated { id, .. } => on(&self.cab_channel, op::UPDATE_RECORD, id),
            Event::SlaBreached {
                id,
                target,
                priority,
                nonconformity,
            } => {
                let text = format!(":rotating_light: *{id}* ({priority}) missed its {target} target; recorded as {nonconformity}");
                let reply = Reply::ok(Some(id.clone()), text);
                let mut out = on(&self.incident_channel, op::REPLY, id);
                for o in &mut out {
                    o.payload = serde_json::json!({ "reply": reply });
                }
                out.extend(on(&self.incident_channel, op::UPDATE_RECORD, id));
                out
            }
            _ => Vec::new(),
        }
    }
}

/// Sends Slack outbox items.
pub struct SlackDeliverer {
    pub config: SlackConfig,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

fn retry(e: SlackApiError) -> DeliveryError {
    match e {
        SlackApiError::Retry { after, reason } => DeliveryError::Retry { after, reason },
        SlackApiError::Permanent(p) => DeliveryError::Permanent(p),
    }
}

impl SlackDeliverer {
    async fn card(&self, record: &str) -> Result<View, DeliveryError> {
        let kind = record
            .parse::<crate::domain::ids::RecordId>()
            .map(|id| id.kind)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let found = self
            .store
            .get(kind, record)
            .await
            .map_err(|e| DeliveryError::Retry {
                after: None,
                reason: e.to_string(),
            })?
            .ok_or_else(|| DeliveryError::Permanent(format!("no such {} {record}", kind.noun())))?;
        Ok(view(&render::record(&found, self.clock.now())))
    }

    async fn post_card(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        let card = self.card(record).await?;
        let ts = self
            .config
            .api
            .post_message(channel, &card)
            .await
            .map_err(retry)?;
        self.store
            .set_message_ref(record, PLATFORM, channel, &ts)
            .await
            .map_err(|e| DeliveryError::Retry {
                after: None,
                reason: e.to_string(),
            })
    }
}

fn payload_reply(item: &OutboxItem) -> Result<Reply, DeliveryError> {
    serde_json::from_value(item.payload.get("reply").cloned().unwrap_or_default())
        .map_err(|e| DeliveryError::Permanent(format!("outbox item {} has no reply: {e}", item.id)))
}

#[async_trait]
impl Deliver for SlackDeliverer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let record = item.record.clone().unwrap_or_default();
        match item.op.as_str() {
            op::POST_RECORD => self.post_card(&item.channel, &record).await,
            op::UPDATE_RECORD => {
                let existing = self
                    .store
                    .message_ref(&record, PLATFORM, &item.channel)
                    .await
                    .map_err(|e| DeliveryError::Retry {
                        after: None,
                        reason: e.to_string(),
                    })?;
                match existing {
                    Some(ts) => {
                        let card = self.card(&record).await?;
                        self.config
                            .api
                            .update_message(&item.channel, &ts, &card)
                            .await
                            .map_err(retry)
                    }
                    None => self.post_card(&item.channel, &record).await,
                }
            }
            op::REPLY => {
                let reply = payload_reply(item)?;
                self.config
                    .api
                    .post_message(&item.channel, &view(&reply))
                    .await
                    .map(|_| ())
                    .map_err(retry)
            }
            op::RESPOND => {
                let reply = payload_reply(item)?;
                let url = item
                    .payload
                    .get("response_url")
                    .and_then(|u| u.as_str())
                    .ok_or_else(|| DeliveryError::Permanent("no response_url".into()))?;
                self.config
                    .api
                    .respond(url, &view(&reply))
                    .await
                    .map_err(retry)
            }
            other => Err(DeliveryError::Permanent(format!(
                "unknown slack outbox op `{other}`"
            ))),
        }
    }
}

/// Whether a kind of record has a card worth posting (used by the HTTP handlers' replies).
pub fn is_card_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Incident | Kind::Change)
}
