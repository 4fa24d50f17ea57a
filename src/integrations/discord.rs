//! Discord integration: routes events to channel posts, in-place edits and major-incident
//! threads, delivers them with the `opsledger-discord` adapter, and defines the slash commands
//! (one table drives both their registration and their mapping to the grammar).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opsledger_discord::{
    CommandSpec, DiscordApi, DiscordApiError, OptionSpec, SubcommandSpec, Verifier, View,
};

use crate::domain::command::Command;
use crate::domain::ids::Kind;
use crate::domain::parser::{self, Part, UsageError};
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

// --- Slash commands ------------------------------------------------------------------------

/// How an option's value enters the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Free text, taken literally (titles, reasons).
    Literal,
    /// One word, such as a record ID or a version.
    Word,
    /// Several words separated by spaces or commas (record IDs).
    Words,
    /// A `key:value` option of the grammar, under this key.
    Key(&'static str),
}

/// Which records an ID option offers as you type: this kind, in these statuses.
type Offer = Option<(Kind, &'static [&'static str])>;

struct Opt {
    name: &'static str,
    description: &'static str,
    required: bool,
    choices: &'static [&'static str],
    role: Role,
    offer: Offer,
}

struct Sub {
    command: &'static str,
    name: &'static str,
    description: &'static str,
    options: &'static [Opt],
}

const LEVELS: &[&str] = &["high", "medium", "low"];

const fn text(name: &'static str, description: &'static str, required: bool) -> Opt {
    Opt {
        name,
        description,
        required,
        choices: &[],
        role: Role::Literal,
        offer: None,
    }
}

const fn key(
    name: &'static str,
    description: &'static str,
    required: bool,
    choices: &'static [&'static str],
) -> Opt {
    Opt {
        name,
        description,
        required,
        choices,
        role: Role::Key(name),
        offer: None,
    }
}

const fn id(description: &'static str, kind: Kind, statuses: &'static [&'static str]) -> Opt {
    Opt {
        name: "id",
        description,
        required: true,
        choices: &[],
        role: Role::Word,
        offer: Some((kind, statuses)),
    }
}

/// The structured commands: the common actions, with typed options.
const STRUCTURED: &[Sub] = &[
    Sub {
        command: "incident",
        name: "raise",
        description: "Raise an incident",
        options: &[
            text("title", "What is wrong", true),
            key(
                "impact",
                "How much of the service is affected",
                false,
                LEVELS,
            ),
            key("urgency", "How fast it must be fixed", false, LEVELS),
            key("service", "The affected service", false, &[]),
        ],
    },
    Sub {
        command: "incident",
        name: "ack",
        description: "Acknowledge an incident",
        options: &[
            id("The incident", Kind::Incident, &["new"]),
            text("text", "A note", false),
        ],
    },
    Sub {
        command: "incident",
        name: "resolve",
        description: "Resolve an incident",
        options: &[
            id("The incident", Kind::Incident, &["new", "acknowledged"]),
            text("text", "How it was resolved", false),
        ],
    },
    Sub {
        command: "change",
        name: "request",
        description: "Request a change",
        options: &[
            text("title", "What will change", true),
            key(
                "type",
                "standard, normal or emergency",
                true,
                &["standard", "normal", "emergency"],
            ),
            key("risk", "How risky it is", false, LEVELS),
            key("service", "The service it changes", false, &[]),
            key("window", "2026-12-01T22:00Z..2026-12-01T23:00Z", false, &[]),
            key("template", "A pre-approved standard change", false, &[]),
        ],
    },
    Sub {
        command: "change",
        name: "approve",
        description: "Approve a change (CAB)",
        options: &[
            id("The change", Kind::Change, &["submitted"]),
            text("comment", "A comment for the record", false),
        ],
    },
    Sub {
        command: "change",
        name: "reject",
        description: "Reject a change (CAB)",
        options: &[
            id("The change", Kind::Change, &["submitted"]),
            text("reason", "Why it is rejected", false),
        ],
    },
    Sub {
        command: "release",
        name: "create",
        description: "Create a release",
        options: &[
            Opt {
                name: "version",
                description: "The version, such as 1.4.0",
                required: true,
                choices: &[],
                role: Role::Word,
                offer: None,
            },
            key("repo", "owner/name", false, &[]),
            Opt {
                name: "changes",
                description: "The changes it ships: CHG-1 CHG-2",
                required: false,
                choices: &[],
                role: Role::Words,
                offer: None,
            },
        ],
    },
];

/// The top-level commands: `/ops command:<text>` for the whole grammar, and the structured ones.
pub fn command_specs() -> Vec<CommandSpec> {
    let mut specs = vec![CommandSpec {
        name: "ops",
        description: "Run any opsledger command, such as: incident list open",
        options: vec![OptionSpec {
            name: "command",
            description: "The command text (try: help)",
            required: true,
            choices: &[],
            autocomplete: false,
        }],
        subcommands: Vec::new(),
    }];
    for sub in STRUCTURED {
        let spec = SubcommandSpec {
            name: sub.name,
            description: sub.description,
            options: sub
                .options
                .iter()
                .map(|o| OptionSpec {
                    name: o.name,
                    description: o.description,
                    required: o.required,
                    choices: o.choices,
                    autocomplete: o.offer.is_some(),
                })
                .collect(),
        };
        match specs.iter_mut().find(|s| s.name == sub.command) {
            Some(s) => s.subcommands.push(spec),
            None => specs.push(CommandSpec {
                name: sub.command,
                description: match sub.command {
                    "incident" => "Raise and work incidents",
                    "change" => "Request changes and vote on them",
                    _ => "Create releases",
                },
                options: Vec::new(),
                subcommands: vec![spec],
            }),
        }
    }
    specs
}

fn find(command: &str, sub: Option<&str>) -> Option<&'static Sub> {
    STRUCTURED
        .iter()
        .find(|s| s.command == command && Some(s.name) == sub)
}

/// What a slash command means: the grammar's text (`/ops`), or a structured command's parts
/// parsed into a typed command. `None` for a command this build does not know.
pub fn slash_command(
    name: &str,
    sub: Option<&str>,
    options: &[(String, String)],
) -> Option<Result<Command, UsageError>> {
    if name == "ops" {
        let text = options
            .iter()
            .find(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        return Some(parser::parse(text));
    }
    let spec = find(name, sub)?;
    let mut parts = Vec::new();
    for opt in spec.options {
        let Some((_, value)) = options.iter().find(|(k, _)| k == opt.name) else {
            continue;
        };
        match opt.role {
            Role::Literal => parts.push(Part::Literal(value)),
            Role::Word => parts.push(Part::Word(value.trim())),
            Role::Words => parts.extend(
                value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|w| !w.is_empty())
                    .map(Part::Word),
            ),
            Role::Key(k) => parts.push(Part::Opt(k, value.trim())),
        }
    }
    Some(parser::parse_parts(
        &format!("{} {}", spec.command, spec.name),
        &parts,
    ))
}

/// The records an autocompleting option offers, if it offers any.
pub fn offer(name: &str, sub: Option<&str>, option: &str) -> Offer {
    find(name, sub)?
        .options
        .iter()
        .find(|o| o.name == option)
        .and_then(|o| o.offer)
}

/// Slow to answer whatever the load: deferred at once rather than after the budget.
pub fn known_slow(command: &Command) -> bool {
    matches!(command, Command::Report { .. } | Command::Audit { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::{ChangeType, IncidentCmd, Level};

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_structured_option_is_registered_once_per_subcommand() {
        let specs = command_specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
        assert_eq!(names, ["ops", "incident", "change", "release"]);
        let incident = &specs[1];
        let subs: Vec<&str> = incident.subcommands.iter().map(|s| s.name).collect();
        assert_eq!(subs, ["raise", "ack", "resolve"]);
        let ack = &incident.subcommands[1];
        assert!(ack.options[0].autocomplete && ack.options[0].required);
    }

    #[test]
    fn a_structured_raise_keeps_its_title_literally() {
        let parsed = slash_command(
            "incident",
            Some("raise"),
            &opts(&[("title", "Checkout down urgency:low"), ("impact", "high")]),
        )
        .unwrap()
        .unwrap();
        match parsed {
            Command::Incident(IncidentCmd::Raise {
                title,
                impact,
                urgency,
                ..
            }) => {
                assert_eq!(title, "Checkout down urgency:low");
                assert_eq!(impact, Some(Level::High));
                assert_eq!(urgency, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_structured_change_request_reads_its_type() {
        let parsed = slash_command(
            "change",
            Some("request"),
            &opts(&[("title", "Rotate keys"), ("type", "emergency")]),
        )
        .unwrap()
        .unwrap();
        assert!(matches!(
            parsed,
            Command::Change(crate::domain::command::ChangeCmd::Request {
                change_type: ChangeType::Emergency,
                ..
            })
        ));
    }

    #[test]
    fn a_bad_option_is_a_usage_error_and_an_unknown_command_is_none() {
        let bad = slash_command("incident", Some("ack"), &opts(&[("id", "CHG-1")]));
        assert!(bad.unwrap().is_err());
        assert!(slash_command("deploy", None, &[]).is_none());
    }

    #[test]
    fn id_options_offer_records_in_the_statuses_the_action_accepts() {
        assert_eq!(
            offer("change", Some("approve"), "id"),
            Some((Kind::Change, &["submitted"][..]))
        );
        assert_eq!(offer("incident", Some("raise"), "title"), None);
    }
}
