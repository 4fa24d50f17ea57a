//! Integrations: the glue between the ledger and each platform adapter crate.
//!
//! Each integration routes committed events to outbox messages, delivers them through its
//! adapter, and turns the adapter's plain inbound values into ledger commands. What every chat
//! platform does the same way lives once in `chat.rs` (routing and delivery, behind the `ChatApi`
//! port) and here (the handler shell every front end shares, the mapping of replies to views,
//! queueing a message outside a command); `forms.rs` has the forms.

pub mod alerts;

/// The ledger, for deliverers built before it starts (the routers come first): set once
/// `serve` has started it. A deliverer reports what the platforms confirmed through it (a page
/// delivered).
pub type LedgerCell = std::sync::Arc<std::sync::OnceLock<crate::ledger::Ledger>>;

/// Notes that a page of `record` went out through `via`, when the ledger is there to hear it;
/// the delivery stands either way.
pub(crate) async fn page_delivered(ledger: &LedgerCell, record: &str, via: String) {
    let (Some(ledger), Ok(incident)) = (ledger.get(), record.parse()) else {
        return;
    };
    let command = crate::domain::command::Command::PageDelivered { incident, via };
    let handled = ledger
        .handle(crate::domain::ids::Actor::system(), command)
        .await;
    if handled.reply.outcome != crate::domain::reply::Outcome::Ok {
        tracing::warn!(%record, reply = %handled.reply.text, "could not note a page's delivery");
    }
}
pub mod chat;
pub mod discord;
pub mod discord_commands;
pub mod forms;
pub mod github;
pub mod mattermost;
pub mod pages;
pub mod platform;
pub mod slack;

use std::sync::Arc;

use opsledger_view::{ButtonStyle, View, ViewButton};

use crate::domain::ids::{Actor, RecordId};
use crate::domain::records::Record;
use crate::domain::reply::{Outcome, Reply};
use crate::ledger::{Delivery, Ledger, TimeSource};
use crate::outbox::{DeliveryError, OutboxWaker};
use crate::store::{NewOutbox, OutboxItem, Store, StoreError, WriteSet};
use crate::usecase::render;

/// Maps a neutral reply to the view every chat adapter renders. A refusal names the rule that
/// refused it, so the person knows what would satisfy it.
pub fn view(reply: &Reply) -> View {
    let rule = match &reply.outcome {
        Outcome::Refused { rule } => Some(("Refused by rule".to_string(), rule.clone())),
        _ => None,
    };
    View {
        text: reply.text.clone(),
        fields: reply
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .chain(rule)
            .collect(),
        buttons: reply
            .buttons
            .iter()
            .map(|b| ViewButton {
                label: b.label.clone(),
                action: b.action.clone(),
                record: b.record.clone(),
                style: match b.style {
                    crate::domain::reply::ButtonStyle::Primary => ButtonStyle::Primary,
                    crate::domain::reply::ButtonStyle::Danger => ButtonStyle::Danger,
                    crate::domain::reply::ButtonStyle::Default => ButtonStyle::Default,
                },
            })
            .collect(),
    }
}

/// Every adapter sorts its API failures into the same two kinds, `Retry { after, reason }` and
/// `Permanent(reason)`; this maps an adapter's error type onto the outbox's (`?` then converts).
macro_rules! delivery_errors {
    ($error:ident) => {
        impl From<$error> for $crate::outbox::DeliveryError {
            fn from(e: $error) -> Self {
                match e {
                    $error::Retry { after, reason } => Self::Retry { after, reason },
                    $error::Permanent(why) => Self::Permanent(why),
                }
            }
        }
    };
}
pub(crate) use delivery_errors;

/// A store failure during delivery: the store may be back soon, so try again.
pub(crate) fn store_retry(e: StoreError) -> DeliveryError {
    DeliveryError::Retry {
        after: None,
        reason: e.to_string(),
    }
}

/// The record as it is now.
pub(crate) async fn load(store: &dyn Store, record: &str) -> Result<Record, DeliveryError> {
    let kind = record
        .parse::<RecordId>()
        .map(|id| id.kind)
        .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    store
        .get(kind, record)
        .await
        .map_err(store_retry)?
        .ok_or_else(|| DeliveryError::Permanent(format!("no such {} {record}", kind.noun())))
}

/// The record's card as it is now: messages are rendered when sent, so a late delivery is right.
pub(crate) async fn card(
    store: &dyn Store,
    time: &Arc<dyn TimeSource>,
    record: &str,
    bold: &str,
) -> Result<Reply, DeliveryError> {
    Ok(render::record(
        &load(store, record).await?,
        time.now(),
        bold,
    ))
}

/// The reply an outbox item carries in `payload.reply`.
pub(crate) fn payload_reply(item: &OutboxItem) -> Result<Reply, DeliveryError> {
    serde_json::from_value(item.payload.get("reply").cloned().unwrap_or_default())
        .map_err(|e| DeliveryError::Permanent(format!("outbox item {} has no reply: {e}", item.id)))
}

/// Input a platform sent that cannot be acted on (answered 400 over HTTP).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// The person a platform says acted, as `<platform>:<user ID>`; no one may claim to be
/// `system:opsledger`.
pub(crate) fn person(platform: &str, user_id: &str) -> Result<Actor, BadInput> {
    Actor::parse_person(&format!("{platform}:{user_id}")).map_err(|e| BadInput(e.to_string()))
}

/// One front end's handlers: the ledger, the platform's settings (`C`) and the outbox. Each
/// platform's glue adds what it does with its requests (`impl Handlers<SlackConfig>`); they act
/// only through the `Ledger`.
pub struct Handlers<C> {
    pub ledger: Ledger,
    pub config: Arc<C>,
    pub outbox: Option<OutboxWaker>,
}

impl<C> Clone for Handlers<C> {
    fn clone(&self) -> Self {
        Handlers {
            ledger: self.ledger.clone(),
            config: self.config.clone(),
            outbox: self.outbox.clone(),
        }
    }
}

impl<C> std::fmt::Debug for Handlers<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<Self>())
    }
}

impl<C> Handlers<C> {
    pub fn new(ledger: Ledger, config: C, outbox: Option<OutboxWaker>) -> Handlers<C> {
        Handlers {
            ledger,
            config: Arc::new(config),
            outbox,
        }
    }

    /// Whether a delivery was already acted on (as committed): answered at once as a repeat.
    pub(crate) async fn seen(&self, d: Option<&Delivery>) -> bool {
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

    /// Queues one message outside a command (a reply to a mention, an answer to one person).
    pub(crate) async fn enqueue(&self, item: NewOutbox) {
        enqueue(self.ledger.store(), self.outbox.as_ref(), item).await;
    }
}

impl<C: chat::ChatApi> Handlers<C> {
    /// After a successful change, the reply shows the record's card as it now is, so the
    /// message a button sat on carries the current state and the right buttons.
    pub(crate) async fn refreshed(
        &self,
        handled: crate::usecase::Handled,
    ) -> crate::usecase::Handled {
        if handled.reply.outcome != crate::domain::reply::Outcome::Ok || handled.events.is_empty() {
            return handled;
        }
        let Some(id) = handled.reply.record.clone() else {
            return handled;
        };
        match load(&**self.ledger.store(), &id).await {
            Ok(record) => {
                let now = self.ledger.time().now();
                let mut card = crate::usecase::render::record(&record, now, C::CHAT.bold);
                card.text = format!("{}\n{}", handled.reply.text, card.text);
                crate::usecase::Handled {
                    reply: card,
                    events: handled.events,
                }
            }
            Err(_) => handled,
        }
    }
}

/// Whether a platform request was new or a repeat of one already acted on (counted apart in
/// `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    First,
    Again,
}

impl Delivered {
    pub fn of(reply: &Reply) -> Delivered {
        if reply.outcome == Outcome::Duplicate {
            Delivered::Again
        } else {
            Delivered::First
        }
    }

    /// Marks the HTTP answer to a repeat, for the inbound count in `/metrics`.
    pub fn mark(self, mut response: axum::response::Response) -> axum::response::Response {
        if self == Delivered::Again {
            response.extensions_mut().insert(crate::http::Redelivery);
        }
        response
    }
}

/// Refusals, usage help and read-only answers go to the sender alone; changes to the channel.
pub(crate) fn ephemeral(reply: &Reply, changed: bool) -> bool {
    reply.outcome != Outcome::Ok || !changed
}

/// Queues one message outside a command (a reply to a mention, a deferred answer) and wakes the
/// outbox worker.
pub(crate) async fn enqueue(store: &Arc<dyn Store>, waker: Option<&OutboxWaker>, item: NewOutbox) {
    let now = crate::domain::audit::format_time(chrono::Utc::now());
    let platform = item.platform.clone();
    let result = async {
        let mut tx = store.begin().await?;
        tx.write(WriteSet {
            outbox: vec![(item, now)],
            ..WriteSet::default()
        })
        .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            if let Some(w) = waker {
                w.wake();
            }
        }
        Err(e) => tracing::error!(error = %e, %platform, "could not queue a message"),
    }
}
