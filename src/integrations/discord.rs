//! Discord integration: routes events to channel posts, in-place edits and major-incident
//! threads, and delivers them with the `opsledger-discord` adapter. The slash commands are in
//! `discord_commands.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opsledger_discord::{DiscordApi, DiscordApiError, Verifier, View};

use crate::domain::records::Record;
use crate::domain::reply::{Event, Reply};
use crate::ledger::{Router, TimeSource};
use crate::outbox::{Deliver, DeliveryError};
use crate::store::{NewOutbox, OutboxItem, Store};

pub use super::view;
use super::{load, payload_reply, store_retry};

pub const PLATFORM: &str = "discord";

/// Outbox operations the Discord deliverer knows.
pub mod op {
    /// Post the record's card to the channel and remember its message ID.
    pub const POST_RECORD: &str = "post_record";
    /// Edit the record's card in place (posting it first if it was never posted).
    pub const UPDATE_RECORD: &str = "update_record";
    /// For a major incident: start its thread on the card (once) or post the card in it.
    pub const THREAD_UPDATE: &str = "thread_update";
    /// Post `payload.reply` in the incident's thread, or in the channel without one.
    pub const THREAD_REPLY: &str = "thread_reply";
    /// Replace a deferred interaction's response with `payload.reply` (`payload.token`).
    pub const INTERACTION_EDIT: &str = "interaction_edit";
    /// Send `payload.reply` as a follow-up to the interaction (`payload.token`), to the person
    /// alone: a refused button press must not replace the card it was pressed on.
    pub const INTERACTION_FOLLOWUP: &str = "interaction_followup";
}

/// The `message_refs` platform under which an incident's thread is kept.
const THREAD: &str = "discord-thread";

/// Discord wants an answer within 3 seconds; work still running after this is deferred.
pub const DEFAULT_DEFER_AFTER: Duration = Duration::from_millis(2000);

#[derive(Clone)]
pub struct DiscordConfig {
    pub verifier: Verifier,
    pub api: DiscordApi,
    pub incident_channel: Option<String>,
    pub cab_channel: Option<String>,
    /// How long a command may run before its answer is deferred.
    pub defer_after: Duration,
}

impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("incident_channel", &self.incident_channel)
            .field("cab_channel", &self.cab_channel)
            .finish_non_exhaustive()
    }
}

pub(crate) fn item(
    channel: &str,
    op: &str,
    record: Option<&str>,
    payload: serde_json::Value,
) -> NewOutbox {
    NewOutbox {
        platform: PLATFORM.to_string(),
        channel: channel.to_string(),
        op: op.to_string(),
        record: record.map(String::from),
        payload,
    }
}

impl Router for DiscordConfig {
    fn route(&self, event: &Event) -> Vec<NewOutbox> {
        // Thread operations use the incident channel as their outbox channel too, so they run
        // after the card they hang on has been posted.
        let on = |channel: &Option<String>, ops: &[&str], id: &str| {
            channel
                .iter()
                .flat_map(|c| {
                    ops.iter()
                        .map(move |op| item(c, op, Some(id), serde_json::Value::Null))
                })
                .collect::<Vec<_>>()
        };
        match event {
            Event::IncidentRaised { id, .. } => on(
                &self.incident_channel,
                &[op::POST_RECORD, op::THREAD_UPDATE],
                id,
            ),
            Event::IncidentUpdated { id, .. } => on(
                &self.incident_channel,
                &[op::UPDATE_RECORD, op::THREAD_UPDATE],
                id,
            ),
            Event::ChangeSubmitted { id } => on(&self.cab_channel, &[op::POST_RECORD], id),
            Event::ChangeVoted { id }
            | Event::ChangeDecided { id, .. }
            | Event::ChangeUpdated { id, .. } => on(&self.cab_channel, &[op::UPDATE_RECORD], id),
            Event::SlaBreached {
                id,
                target,
                priority,
                nonconformity,
            } => {
                let text = format!(
                    ":rotating_light: **{id}** ({priority}) missed its {target} target; recorded as {nonconformity}"
                );
                let reply = Reply::ok(Some(id.clone()), text);
                self.incident_channel
                    .iter()
                    .flat_map(|c| {
                        [
                            item(
                                c,
                                op::THREAD_REPLY,
                                Some(id),
                                serde_json::json!({ "reply": reply }),
                            ),
                            item(c, op::UPDATE_RECORD, Some(id), serde_json::Value::Null),
                        ]
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Sends Discord outbox items.
pub struct DiscordDeliverer {
    pub config: DiscordConfig,
    pub store: Arc<dyn Store>,
    pub time: Arc<dyn TimeSource>,
}

fn retry(e: DiscordApiError) -> DeliveryError {
    match e {
        DiscordApiError::Retry { after, reason } => DeliveryError::Retry { after, reason },
        DiscordApiError::Permanent(p) => DeliveryError::Permanent(p),
    }
}

/// An incident that gets a room (`Incident::gets_room`) gets a thread.
fn is_major(record: &Record) -> bool {
    matches!(record, Record::Incident(i) if i.gets_room())
}

impl DiscordDeliverer {
    async fn card(&self, record: &str) -> Result<View, DeliveryError> {
        Ok(view(&super::card(&*self.store, &self.time, record).await?))
    }

    /// Posts the card and remembers the message; returns its ID (`None` when Discord's answer
    /// did not say: posted all the same, and a later update posts a new card).
    async fn post_card(
        &self,
        channel: &str,
        record: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let card = self.card(record).await?;
        let message = self
            .config
            .api
            .post_message(channel, &card)
            .await
            .map_err(retry)?;
        if let Some(m) = &message {
            self.store
                .set_message_ref(record, PLATFORM, channel, m)
                .await
                .map_err(store_retry)?;
        }
        Ok(message)
    }

    async fn posted(&self, channel: &str, record: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .message_ref(record, PLATFORM, channel)
            .await
            .map_err(store_retry)
    }

    async fn thread(&self, record: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .message_ref(record, THREAD, "")
            .await
            .map_err(store_retry)
    }

    async fn update_card(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        match self.posted(channel, record).await? {
            Some(message) => {
                let card = self.card(record).await?;
                self.config
                    .api
                    .edit_message(channel, &message, &card)
                    .await
                    .map_err(retry)
            }
            None => self.post_card(channel, record).await.map(|_| ()),
        }
    }

    /// Opens the thread of a major incident on its card, or posts the card in the open thread.
    async fn thread_update(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        if let Some(thread) = self.thread(record).await? {
            let card = self.card(record).await?;
            return self
                .config
                .api
                .post_message(&thread, &card)
                .await
                .map(|_| ())
                .map_err(retry);
        }
        let found = load(&*self.store, record).await?;
        if !is_major(&found) {
            return Ok(());
        }
        let message = match self.posted(channel, record).await? {
            Some(m) => m,
            None => match self.post_card(channel, record).await? {
                Some(m) => m,
                None => return Ok(()), // no message ID to start the thread on
            },
        };
        let Record::Incident(inc) = &found else {
            return Ok(());
        };
        let name = opsledger_discord::thread_name(record, &inc.title);
        let thread = self
            .config
            .api
            .create_thread(channel, &message, &name)
            .await
            .map_err(retry)?;
        let Some(thread) = thread else {
            tracing::warn!(%record, "started the incident's thread but could not read its ID");
            return Ok(());
        };
        // Remembered before anything else can fail, so a retry does not start another thread.
        self.store
            .set_message_ref(record, THREAD, "", &thread)
            .await
            .map_err(store_retry)?;
        let card = self.card(record).await?;
        self.config
            .api
            .post_message(&thread, &card)
            .await
            .map(|_| ())
            .map_err(retry)
    }
}

#[async_trait]
impl Deliver for DiscordDeliverer {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn max_backoff(&self) -> std::time::Duration {
        crate::outbox::CHAT_MAX_BACKOFF
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let record = item.record.clone().unwrap_or_default();
        match item.op.as_str() {
            op::POST_RECORD => self.post_card(&item.channel, &record).await.map(|_| ()),
            op::UPDATE_RECORD => self.update_card(&item.channel, &record).await,
            op::THREAD_UPDATE => self.thread_update(&item.channel, &record).await,
            op::THREAD_REPLY => {
                let reply = payload_reply(item)?;
                let target = self
                    .thread(&record)
                    .await?
                    .unwrap_or_else(|| item.channel.clone());
                self.config
                    .api
                    .post_message(&target, &view(&reply))
                    .await
                    .map(|_| ())
                    .map_err(retry)
            }
            op::INTERACTION_EDIT | op::INTERACTION_FOLLOWUP => {
                let reply = payload_reply(item)?;
                let token = item
                    .payload
                    .get("token")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| DeliveryError::Permanent("no interaction token".into()))?;
                let api = &self.config.api;
                let sent = if item.op == op::INTERACTION_EDIT {
                    api.edit_original(token, &view(&reply)).await
                } else {
                    api.followup(token, &view(&reply), true).await
                };
                sent.map_err(retry)
            }
            other => Err(DeliveryError::Permanent(format!(
                "unknown discord outbox op `{other}`"
            ))),
        }
    }
}
