//! Slack integration: routes events to channel posts and in-place updates, and delivers them with
//! the `opsledger-slack` adapter. Messages are rendered when they are sent, from the record as it
//! is then, so a late delivery is still correct.

use std::sync::Arc;

use async_trait::async_trait;
use opsledger_slack::{SlackApi, SlackApiError, View};
use secrecy::SecretString;

use crate::domain::ids::Kind;
use crate::domain::reply::{Event, Reply};
use crate::ledger::{Router, TimeSource};
use crate::outbox::{Deliver, DeliveryError};
use crate::store::{NewOutbox, OutboxItem, Store};

pub use super::view;
use super::{payload_reply, store_retry};

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
    /// Create the incident's own channel, invite the reporter, post the summary there.
    pub const OPEN_INCIDENT_CHANNEL: &str = "open_incident_channel";
    /// Post the record's card in the incident's own channel, if it has one.
    pub const INCIDENT_CHANNEL_UPDATE: &str = "incident_channel_update";
    /// Post `payload.reply` in the incident's own channel, or the incident channel without one.
    pub const INCIDENT_CHANNEL_REPLY: &str = "incident_channel_reply";
}

/// The `message_refs` platform under which an incident's own channel is kept.
const OWN_CHANNEL: &str = "slack-incident-channel";

/// Items about one incident's own channel share this outbox channel key, so they go in order:
/// the channel is created before anything is posted in it.
fn own_channel_key(id: &str) -> String {
    format!("incident:{id}")
}

#[derive(Clone)]
pub struct SlackConfig {
    /// Set for Slack over HTTP; Socket Mode alone needs none.
    pub signing_secret: Option<SecretString>,
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
            // Whether the incident gets a channel is decided when the item is delivered, by
            // `Incident::gets_room`, the rule every platform shares.
            Event::IncidentRaised { id, .. } => {
                let mut out = on(&self.incident_channel, op::POST_RECORD, id);
                out.push(item(
                    &own_channel_key(id),
                    op::OPEN_INCIDENT_CHANNEL,
                    id,
                    none.clone(),
                ));
                out
            }
            Event::IncidentUpdated { id, .. } => {
                let mut out = on(&self.incident_channel, op::UPDATE_RECORD, id);
                out.push(item(
                    &own_channel_key(id),
                    op::INCIDENT_CHANNEL_UPDATE,
                    id,
                    none.clone(),
                ));
                out
            }
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
                let mut out = vec![item(
                    &own_channel_key(id),
                    op::INCIDENT_CHANNEL_REPLY,
                    id,
                    serde_json::json!({ "reply": reply }),
                )];
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
    pub time: Arc<dyn TimeSource>,
}

fn retry(e: SlackApiError) -> DeliveryError {
    match e {
        SlackApiError::Retry { after, reason } => DeliveryError::Retry { after, reason },
        SlackApiError::Permanent(p) => DeliveryError::Permanent(p),
    }
}

impl SlackDeliverer {
    async fn card(&self, record: &str) -> Result<View, DeliveryError> {
        Ok(view(&super::card(&*self.store, &self.time, record).await?))
    }

    async fn post_card(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        let card = self.card(record).await?;
        let ts = self
            .config
            .api
            .post_message(channel, &card)
            .await
            .map_err(retry)?;
        // Without a `ts` (an answer that could not be read) the card is posted all the same;
        // a later update then posts a new one rather than repeating this post now.
        match ts {
            Some(ts) => self
                .store
                .set_message_ref(record, PLATFORM, channel, &ts)
                .await
                .map_err(store_retry),
            None => Ok(()),
        }
    }
}

impl SlackDeliverer {
    async fn own_channel(&self, record: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .message_ref(record, OWN_CHANNEL, "")
            .await
            .map_err(store_retry)
    }

    /// Creates `inc-<n>-<slug>` (or, when that name is taken, `inc-<n>-<slug>-2`, ...), invites
    /// the reporter when they are a Slack user, posts the card.
    async fn open_incident_channel(&self, record: &str) -> Result<(), DeliveryError> {
        if self.own_channel(record).await?.is_some() {
            return Ok(()); // created by an earlier, interrupted attempt
        }
        let Some(crate::domain::records::Record::Incident(inc)) = self
            .store
            .get(Kind::Incident, record)
            .await
            .map_err(store_retry)?
        else {
            return Err(DeliveryError::Permanent(format!(
                "no such incident {record}"
            )));
        };
        if !inc.gets_room() {
            return Ok(());
        }
        let name = opsledger_slack::incident_channel_name(inc.id.n, &inc.title);
        let (used, channel) = self.config.api.create_channel(&name).await.map_err(retry)?;
        let Some(channel) = channel else {
            // Created, but Slack's answer did not say its ID: nothing more can be posted there.
            tracing::warn!(%record, channel = %used, "created the incident channel but could not read its ID");
            return Ok(());
        };
        if used != name {
            tracing::info!(%record, wanted = %name, channel = %used, "incident channel name was taken; used a suffixed one");
        }
        // Remember the channel before anything else can fail, so a retry does not create another.
        self.store
            .set_message_ref(record, OWN_CHANNEL, "", &channel)
            .await
            .map_err(store_retry)?;
        if inc.reporter.platform() == PLATFORM {
            let user = inc
                .reporter
                .as_str()
                .trim_start_matches("slack:")
                .to_string();
            if let Err(e) = self.config.api.invite(&channel, &[user]).await {
                tracing::warn!(error = %e, %channel, "could not invite the reporter to the incident channel");
            }
        }
        self.post_card(&channel, record).await
    }
}

#[async_trait]
impl Deliver for SlackDeliverer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn max_backoff(&self) -> std::time::Duration {
        crate::outbox::CHAT_MAX_BACKOFF
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
                    .map_err(store_retry)?;
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
            op::OPEN_INCIDENT_CHANNEL => self.open_incident_channel(&record).await,
            op::INCIDENT_CHANNEL_UPDATE => match self.own_channel(&record).await? {
                Some(channel) => {
                    let card = self.card(&record).await?;
                    self.config
                        .api
                        .post_message(&channel, &card)
                        .await
                        .map(|_| ())
                        .map_err(retry)
                }
                // Declared major or re-prioritised to P1/P2 since it was raised: open its room
                // now (which posts the card there); otherwise it has none.
                None => self.open_incident_channel(&record).await,
            },
            op::INCIDENT_CHANNEL_REPLY => {
                let reply = payload_reply(item)?;
                let channel = match self.own_channel(&record).await? {
                    Some(c) => c,
                    None => match &self.config.incident_channel {
                        Some(c) => c.clone(),
                        None => return Ok(()),
                    },
                };
                self.config
                    .api
                    .post_message(&channel, &view(&reply))
                    .await
                    .map(|_| ())
                    .map_err(retry)
            }
            other => Err(DeliveryError::Permanent(format!(
                "unknown slack outbox op `{other}`"
            ))),
        }
    }
}
