//! What every chat platform does the same way, written once against the `ChatApi` port: which
//! outbox items an event needs (`ChatRouter`) and how each is sent (`ChatDeliverer`). A platform's
//! glue file implements `ChatApi` with its adapter crate. When an incident gets a room is decided
//! here (`Incident::gets_room`); how the room is made (a channel, a thread) is the platform's.

use std::sync::Arc;

use async_trait::async_trait;
use opsledger_view::View;
use serde_json::Value;

use crate::domain::records::{Incident, Record};
use crate::domain::reply::{Event, Reply};
use crate::ledger::{Router, TimeSource};
use crate::outbox::{outbox_op, Deliver, DeliveryError, NewOutbox};
use crate::store::{OutboxItem, Store};

use super::{load, payload_reply, store_retry, view};

outbox_op! {
    /// What a chat deliverer does with an outbox item. Rows stored before the platforms shared
    /// one deliverer carry the older, per-platform names, which still read.
    pub enum ChatOp {
        /// Post the record's card to the channel and remember the message.
        PostCard = "post_record",
        /// Update the record's card in place (posting it first if it was never posted).
        UpdateCard = "update_record",
        /// Post `payload.reply` to the channel.
        Reply = "reply",
        /// Open the incident's room if it gets one and has none yet, and post its card there.
        OpenRoom = "open_room" | "open_incident_channel",
        /// Post the incident's card in its room, opening the room first if it now gets one.
        RoomUpdate = "room_update" | "incident_channel_update" | "thread_update",
        /// Post `payload.reply` in the incident's room, or in the incident channel without one.
        RoomReply = "room_reply" | "incident_channel_reply" | "thread_reply",
        /// Answer one person alone with `payload.reply`, leaving what is shown as it is.
        Respond = "respond" | "interaction_followup",
        /// Answer with `payload.reply` in place of the answer that was deferred.
        RespondInPlace = "respond_in_place" | "interaction_edit",
        /// Page `payload.user` by direct message: the incident's card with Acknowledge and
        /// Escalate now.
        Page = "page",
        /// Tell `payload.user` `payload.reply` by direct message.
        DirectMessage = "direct_message",
    }
}

/// The channels a chat platform posts cards to; either may be unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels {
    /// Incident cards (and, for `RoomStyle::OnCard`, the rooms hanging on them).
    pub incident_channel: Option<String>,
    /// Change cards, for the change advisory board.
    pub cab_channel: Option<String>,
}

/// How a platform makes an incident's room, which decides where its outbox items queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStyle {
    /// A channel of its own (Slack). Its items share the outbox channel `incident:<id>`, so the
    /// room is made before anything is posted in it, whether or not an incident channel is set.
    OwnChannel,
    /// A thread on the incident's card (Discord). Its items follow the card in the incident
    /// channel's outbox channel, and without an incident channel there is no room.
    OnCard,
}

/// What the router and deliverer need to know of a platform, besides its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// The platform's name: `NewOutbox::platform`, `message_refs` of cards, actors' prefix.
    pub name: &'static str,
    /// The `message_refs` platform under which an incident's room is kept.
    pub room_ref: &'static str,
    pub rooms: RoomStyle,
    /// What goes either side of bold text in the platform's markup.
    pub bold: &'static str,
}

impl Platform {
    pub const fn new(
        name: &'static str,
        room_ref: &'static str,
        rooms: RoomStyle,
        bold: &'static str,
    ) -> Platform {
        Platform {
            name,
            room_ref,
            rooms,
            bold,
        }
    }
}

/// A room to open for a major incident.
#[derive(Debug, Clone, Copy)]
pub struct NewRoom<'a> {
    pub incident: &'a Incident,
    /// The (channel, message) of the incident's card, for `RoomStyle::OnCard`.
    pub card: Option<(&'a str, &'a str)>,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum To<'a> {
    /// A new message in a channel or room; the answer is its ID (`None`: posted, but the
    /// platform's answer did not say).
    Channel(&'a str),
    /// In place of a message posted earlier: (channel, message).
    Message(&'a str, &'a str),
    /// One person, addressed as the platform's handlers put it in the item's payload;
    /// `in_place` replaces the answer that was deferred, else it goes to them alone.
    Person { payload: &'a Value, in_place: bool },
}

/// What opsledger needs of a chat platform. The glue file implements it with the adapter; the
/// router and deliverer here decide what to send and when.
#[async_trait]
pub trait ChatApi: Send + Sync + 'static {
    const CHAT: Platform;

    fn channels(&self) -> &Channels;
    /// Sends `view`; for `To::Channel`, returns the new message's ID.
    async fn send(&self, to: To<'_>, view: &View) -> Result<Option<String>, DeliveryError>;
    /// Opens a room for a major incident; returns the room's ID (`None`: opened, but the
    /// platform's answer did not say).
    async fn open_room(&self, room: NewRoom<'_>) -> Result<Option<String>, DeliveryError>;
    /// Opens (or finds) the direct-message channel with one of the platform's users (the ID
    /// after `platform:` in their account), for a page; returns its ID.
    async fn open_dm(&self, user: &str) -> Result<Option<String>, DeliveryError>;
}

/// A string field of an outbox item's payload, which the platform's handlers put there.
pub(crate) fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a str, DeliveryError> {
    payload
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| DeliveryError::Permanent(format!("no {name} in the outbox item")))
}

/// An outbox item for platform `A`.
pub fn item<A: ChatApi>(
    channel: &str,
    op: ChatOp,
    record: Option<&str>,
    payload: Value,
) -> NewOutbox {
    NewOutbox::new(A::CHAT.name, channel, op, record, payload)
}

/// Turns events into one chat platform's outbox items.
#[derive(Debug, Clone)]
pub struct ChatRouter<A>(pub A);

impl<A: ChatApi> ChatRouter<A> {
    /// The outbox channel of an incident's room items, if it can have a room.
    fn room_key(&self, id: &str) -> Option<String> {
        match A::CHAT.rooms {
            RoomStyle::OwnChannel => Some(format!("incident:{id}")),
            RoomStyle::OnCard => self.0.channels().incident_channel.clone(),
        }
    }
}

impl<A: ChatApi> Router for ChatRouter<A> {
    fn route(&self, event: &Event) -> Vec<NewOutbox> {
        let channels = self.0.channels();
        let card = |channel: &Option<String>, op: ChatOp, id: &str| {
            channel
                .iter()
                .map(|c| item::<A>(c, op, Some(id), Value::Null))
                .collect::<Vec<_>>()
        };
        // Whether the incident gets a room is `Incident::gets_room`, the rule every platform
        // shares; the use case puts it in the event, so an ordinary incident costs no room item.
        let room = |op: ChatOp, id: &str, payload: Value| {
            self.room_key(id)
                .map(|key| item::<A>(&key, op, Some(id), payload))
        };
        let incidents = &channels.incident_channel;
        match event {
            Event::IncidentRaised {
                id, room: major, ..
            } => {
                let mut out = card(incidents, ChatOp::PostCard, id);
                if *major {
                    out.extend(room(ChatOp::OpenRoom, id, Value::Null));
                }
                out
            }
            Event::IncidentUpdated {
                id, room: major, ..
            } => {
                let mut out = card(incidents, ChatOp::UpdateCard, id);
                if *major {
                    out.extend(room(ChatOp::RoomUpdate, id, Value::Null));
                }
                out
            }
            Event::ChangeSubmitted { id } => card(&channels.cab_channel, ChatOp::PostCard, id),
            Event::ChangeVoted { id }
            | Event::ChangeDecided { id, .. }
            | Event::ChangeUpdated { id, .. } => {
                card(&channels.cab_channel, ChatOp::UpdateCard, id)
            }
            Event::SlaBreached {
                id,
                target,
                priority,
                nonconformity,
            } => {
                let text = format!(
                    ":rotating_light: {b}{id}{b} ({priority}) missed its {target} target; recorded as {nonconformity}",
                    b = A::CHAT.bold
                );
                let payload = reply_payload(id, text);
                let mut out: Vec<_> = room(ChatOp::RoomReply, id, payload).into_iter().collect();
                out.extend(card(incidents, ChatOp::UpdateCard, id));
                out
            }
            // A page: a direct message to each of the person's accounts on this platform, queued
            // per person so that one unreachable person holds back no one else.
            Event::Paged {
                incident, accounts, ..
            } => accounts
                .iter()
                .filter_map(|a| user_of::<A>(a))
                .map(|user| {
                    item::<A>(
                        &format!("dm:{user}"),
                        ChatOp::Page,
                        Some(incident),
                        serde_json::json!({ "user": user }),
                    )
                })
                .collect(),
            // Every nonconformity goes to the CAB channel, with a button for its corrective
            // action; the card follows it as it is corrected and closed.
            Event::NonconformityRaised { id } => card(&channels.cab_channel, ChatOp::PostCard, id),
            Event::RecordUpdated { id }
                if id
                    .parse::<crate::domain::ids::RecordId>()
                    .is_ok_and(|r| r.kind == crate::domain::ids::Kind::Nonconformity) =>
            {
                card(&channels.cab_channel, ChatOp::UpdateCard, id)
            }
            Event::ChangeReviewOverdue {
                id,
                nonconformity,
                requester,
            } => {
                let text = format!(
                    ":warning: the post-implementation review of {b}{id}{b} is overdue; recorded as {nonconformity}. Record it with `change review {id} <findings>`",
                    b = A::CHAT.bold
                );
                let payload = reply_payload(id, text);
                let mut out: Vec<_> = channels
                    .cab_channel
                    .iter()
                    .map(|c| item::<A>(c, ChatOp::Reply, Some(id), payload.clone()))
                    .collect();
                if let Some(user) = user_of::<A>(requester) {
                    let mut payload = payload;
                    payload["user"] = Value::from(user);
                    out.push(item::<A>(
                        &format!("dm:{user}"),
                        ChatOp::DirectMessage,
                        Some(id),
                        payload,
                    ));
                }
                out
            }
            Event::RoomNotice { incident, text } => room(
                ChatOp::RoomReply,
                incident,
                reply_payload(incident, text.clone()),
            )
            .into_iter()
            .collect(),
            // An escalation step that pages the channel: the room and the incident channel.
            Event::PagedChannel { incident, text } => {
                let payload = reply_payload(incident, text.clone());
                let mut out: Vec<_> = room(ChatOp::RoomReply, incident, payload.clone())
                    .into_iter()
                    .collect();
                out.extend(
                    incidents
                        .iter()
                        .map(|c| item::<A>(c, ChatOp::Reply, Some(incident), payload.clone())),
                );
                out
            }
            _ => Vec::new(),
        }
    }
}

/// Sends one chat platform's outbox items. Cards are rendered when sent, from the record as it
/// is then, so a late delivery is still right.
pub struct ChatDeliverer<A> {
    pub api: A,
    pub store: Arc<dyn Store>,
    pub time: Arc<dyn TimeSource>,
    /// Told of each page delivered.
    pub ledger: super::LedgerCell,
}

impl<A: ChatApi> ChatDeliverer<A> {
    async fn card(&self, record: &str) -> Result<View, DeliveryError> {
        let card = super::card(&*self.store, &self.time, record, A::CHAT.bold).await?;
        Ok(view(&card))
    }

    /// The direct-message channel with the item's `payload.user`, opened (or found) now.
    async fn dm(&self, item: &OutboxItem) -> Result<String, DeliveryError> {
        let user = field(&item.payload, "user")?;
        self.api
            .open_dm(user)
            .await?
            .ok_or_else(|| DeliveryError::Retry {
                after: None,
                reason: format!("no direct-message channel for {user} in the answer"),
            })
    }

    async fn post_view(&self, channel: &str, view: &View) -> Result<(), DeliveryError> {
        self.api.send(To::Channel(channel), view).await.map(|_| ())
    }

    /// The message the record's card was posted as in `channel`.
    async fn posted(&self, channel: &str, record: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .message_ref(record, A::CHAT.name, channel)
            .await
            .map_err(store_retry)
    }

    /// The incident's room, once opened.
    async fn room(&self, record: &str) -> Result<Option<String>, DeliveryError> {
        self.store
            .message_ref(record, A::CHAT.room_ref, "")
            .await
            .map_err(store_retry)
    }

    /// Posts the card and remembers the message; returns its ID. Without one (an answer that
    /// could not be read) the card is posted all the same, and a later update posts a new one
    /// rather than this post being repeated now.
    async fn post_card(
        &self,
        channel: &str,
        record: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let card = self.card(record).await?;
        let message = self.api.send(To::Channel(channel), &card).await?;
        if let Some(m) = &message {
            self.store
                .set_message_ref(record, A::CHAT.name, channel, m)
                .await
                .map_err(store_retry)?;
        }
        Ok(message)
    }

    async fn update_card(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        match self.posted(channel, record).await? {
            Some(message) => {
                let card = self.card(record).await?;
                let to = To::Message(channel, &message);
                self.api.send(to, &card).await.map(|_| ())
            }
            None => self.post_card(channel, record).await.map(|_| ()),
        }
    }

    /// Opens the room of an incident that gets one, remembers it, and posts the card there.
    /// `channel` is the item's outbox channel: the incident channel for `RoomStyle::OnCard`.
    async fn open_room(&self, channel: &str, record: &str) -> Result<(), DeliveryError> {
        let Record::Incident(inc) = load(&*self.store, record).await? else {
            return Ok(());
        };
        if !inc.gets_room() {
            return Ok(());
        }
        let card = match A::CHAT.rooms {
            RoomStyle::OwnChannel => None,
            RoomStyle::OnCard => match self.posted(channel, record).await? {
                Some(m) => Some(m),
                None => match self.post_card(channel, record).await? {
                    Some(m) => Some(m),
                    None => return Ok(()), // no message to open the room on
                },
            },
        };
        let new = NewRoom {
            incident: &inc,
            card: card.as_deref().map(|m| (channel, m)),
        };
        let Some(room) = self.api.open_room(new).await? else {
            tracing::warn!(%record, platform = A::CHAT.name, "opened the incident's room but could not read its ID");
            return Ok(());
        };
        // Remembered before anything else can fail, so a retry does not open another room.
        self.store
            .set_message_ref(record, A::CHAT.room_ref, "", &room)
            .await
            .map_err(store_retry)?;
        let card = self.card(record).await?;
        self.post_view(&room, &card).await
    }
}

#[async_trait]
impl<A: ChatApi> Deliver for ChatDeliverer<A> {
    fn platform(&self) -> &'static str {
        A::CHAT.name
    }

    fn max_backoff(&self) -> std::time::Duration {
        crate::outbox::CHAT_MAX_BACKOFF
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let record = item.record.clone().unwrap_or_default();
        let channel = item.channel.as_str();
        match item.op::<ChatOp>()? {
            ChatOp::PostCard => self.post_card(channel, &record).await.map(|_| ()),
            ChatOp::UpdateCard => self.update_card(channel, &record).await,
            ChatOp::Reply => self.post_view(channel, &view(&payload_reply(item)?)).await,
            ChatOp::OpenRoom => match self.room(&record).await? {
                // Opened by an earlier, interrupted attempt: nothing more to do.
                Some(_) => Ok(()),
                None => self.open_room(channel, &record).await,
            },
            ChatOp::RoomUpdate => match self.room(&record).await? {
                Some(room) => self.post_view(&room, &self.card(&record).await?).await,
                // Declared major or re-prioritised to P1/P2 since it was raised: open its room
                // now (which posts the card there); otherwise it has none.
                None => self.open_room(channel, &record).await,
            },
            ChatOp::RoomReply => {
                let reply = payload_reply(item)?;
                let target = match self.room(&record).await? {
                    Some(room) => room,
                    None => match &self.api.channels().incident_channel {
                        Some(c) => c.clone(),
                        None => return Ok(()),
                    },
                };
                self.post_view(&target, &view(&reply)).await
            }
            ChatOp::Page => {
                let dm = self.dm(item).await?;
                let card = super::card(&*self.store, &self.time, &record, A::CHAT.bold).await?;
                self.post_view(&dm, &view(&page(card, &record))).await?;
                let via = format!("{}:{}", A::CHAT.name, field(&item.payload, "user")?);
                super::page_delivered(&self.ledger, &record, via).await;
                Ok(())
            }
            ChatOp::DirectMessage => {
                let dm = self.dm(item).await?;
                self.post_view(&dm, &view(&payload_reply(item)?)).await
            }
            op @ (ChatOp::Respond | ChatOp::RespondInPlace) => {
                let reply = payload_reply(item)?;
                let to = To::Person {
                    payload: &item.payload,
                    in_place: op == ChatOp::RespondInPlace,
                };
                self.api.send(to, &view(&reply)).await.map(|_| ())
            }
        }
    }
}

/// The payload of a `Reply`, `RoomReply` or `DirectMessage` item: a plain reply about `record`.
fn reply_payload(record: &str, text: String) -> Value {
    serde_json::json!({ "reply": Reply::ok(Some(record.to_string()), text) })
}

/// The platform's user ID in one of a person's accounts (`slack:U1` → `U1` for Slack), if the
/// account is on platform `A`.
fn user_of<A: ChatApi>(account: &str) -> Option<&str> {
    account.strip_prefix(A::CHAT.name)?.strip_prefix(':')
}

/// A page: the incident's card as it is now, headed as a page, with the two buttons a paged
/// person needs.
fn page(mut card: Reply, record: &str) -> Reply {
    use crate::domain::reply::ButtonStyle;
    card.text = format!(":rotating_light: You are paged: {}", card.text);
    card.buttons.clear();
    card.button("Acknowledge", "incident ack", record, ButtonStyle::Primary)
        .button(
            "Escalate now",
            "incident escalate",
            record,
            ButtonStyle::Danger,
        )
}

#[cfg(test)]
mod tests {
    use super::ChatOp::{self, *};
    use crate::outbox::OutboxOp;

    const ALL: [ChatOp; 10] = [
        PostCard,
        UpdateCard,
        Reply,
        OpenRoom,
        RoomUpdate,
        RoomReply,
        Respond,
        RespondInPlace,
        Page,
        DirectMessage,
    ];

    #[test]
    fn every_op_name_rows_were_stored_under_still_reads() {
        let stored = [
            ("post_record", PostCard),
            ("update_record", UpdateCard),
            ("reply", Reply),
            ("respond", Respond),
            ("open_incident_channel", OpenRoom),
            ("incident_channel_update", RoomUpdate),
            ("incident_channel_reply", RoomReply),
            ("thread_update", RoomUpdate),
            ("thread_reply", RoomReply),
            ("interaction_edit", RespondInPlace),
            ("interaction_followup", Respond),
        ];
        for (name, op) in stored {
            assert_eq!(name.parse::<ChatOp>(), Ok(op), "{name}");
        }
        assert!("post".parse::<ChatOp>().is_err());
    }

    #[test]
    fn each_op_is_stored_under_one_name_that_reads_back() {
        let names: std::collections::HashSet<_> = ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(names.len(), ALL.len());
        for op in ALL {
            assert_eq!(op.as_str().parse::<ChatOp>(), Ok(op));
            assert_eq!(op.to_string(), op.as_str());
        }
    }
}

#[cfg(test)]
mod routing {
    use super::*;

    /// A platform that is never called: routing alone is under test.
    struct Quiet(Channels);

    #[async_trait]
    impl ChatApi for Quiet {
        const CHAT: Platform = Platform::new("quiet", "quiet-room", RoomStyle::OwnChannel, "*");
        fn channels(&self) -> &Channels {
            &self.0
        }
        async fn send(&self, _: To<'_>, _: &View) -> Result<Option<String>, DeliveryError> {
            unreachable!("routing sends nothing")
        }
        async fn open_room(&self, _: NewRoom<'_>) -> Result<Option<String>, DeliveryError> {
            unreachable!("routing opens nothing")
        }
        async fn open_dm(&self, _: &str) -> Result<Option<String>, DeliveryError> {
            unreachable!("routing opens nothing")
        }
    }

    #[test]
    fn a_room_notice_goes_to_the_room_alone() {
        let notice = ops(Event::RoomNotice {
            incident: "INC-1".into(),
            text: "no commander".into(),
        });
        assert_eq!(
            notice,
            [("incident:INC-1".to_string(), "room_reply".to_string())]
        );
    }

    #[test]
    fn a_page_goes_to_each_account_on_the_platform_one_queue_per_person() {
        let paged = ops(Event::Paged {
            incident: "INC-1".into(),
            who: "alice".into(),
            accounts: vec!["quiet:U1".into(), "slack:U9".into(), "quiet:U2".into()],
            chain: "payments".into(),
            step: 1,
        });
        assert_eq!(
            paged,
            [
                ("dm:U1".to_string(), "page".to_string()),
                ("dm:U2".to_string(), "page".to_string())
            ]
        );
    }

    fn ops(event: Event) -> Vec<(String, String)> {
        let router = ChatRouter(Quiet(Channels {
            incident_channel: Some("CINC".into()),
            cab_channel: None,
        }));
        router
            .route(&event)
            .into_iter()
            .map(|i| (i.channel, i.op))
            .collect()
    }

    #[test]
    fn room_items_are_queued_only_for_incidents_that_get_a_room() {
        let raised = |room| Event::IncidentRaised {
            id: "INC-1".into(),
            priority: "P3".into(),
            room,
        };
        let updated = |room| Event::IncidentUpdated {
            id: "INC-1".into(),
            status: "acknowledged".into(),
            room,
        };
        let card = |op: &str| ("CINC".to_string(), op.to_string());
        let room = |op: &str| ("incident:INC-1".to_string(), op.to_string());
        assert_eq!(ops(raised(false)), [card("post_record")]);
        assert_eq!(ops(raised(true)), [card("post_record"), room("open_room")]);
        assert_eq!(ops(updated(false)), [card("update_record")]);
        assert_eq!(
            ops(updated(true)),
            [card("update_record"), room("room_update")]
        );
    }
}
