//! Record kinds, record IDs (`INC-7`) and actors (`slack:U024BE7LH`): the names every record and audit entry uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every kind of record the ledger keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Incident,
    Request,
    Problem,
    Change,
    Release,
    Nonconformity,
    Service,
    Ci,
    /// An alert group from a monitoring system: named by its group, not numbered.
    Alert,
    /// An on-call schedule's overrides, named by the schedule.
    Oncall,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Incident,
        Kind::Request,
        Kind::Problem,
        Kind::Change,
        Kind::Release,
        Kind::Nonconformity,
        Kind::Service,
        Kind::Ci,
        Kind::Alert,
        Kind::Oncall,
    ];

    /// The ID prefix of a numbered kind; services and CIs are named, not numbered.
    pub fn prefix(self) -> Option<&'static str> {
        match self {
            Kind::Incident => Some("INC"),
            Kind::Request => Some("REQ"),
            Kind::Problem => Some("PRB"),
            Kind::Change => Some("CHG"),
            Kind::Release => Some("REL"),
            Kind::Nonconformity => Some("NC"),
            Kind::Service | Kind::Ci | Kind::Alert | Kind::Oncall => None,
        }
    }

    pub fn from_prefix(prefix: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.prefix().is_some_and(|p| p.eq_ignore_ascii_case(prefix)))
    }

    /// The stable name used in the store and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Request => "request",
            Kind::Problem => "problem",
            Kind::Change => "change",
            Kind::Release => "release",
            Kind::Nonconformity => "nonconformity",
            Kind::Service => "service",
            Kind::Ci => "ci",
            Kind::Alert => "alert",
            Kind::Oncall => "oncall",
        }
    }

    /// The words people use in messages: "no such incident INC-99".
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Request => "service request",
            Kind::Problem => "problem",
            Kind::Change => "change",
            Kind::Release => "release",
            Kind::Nonconformity => "nonconformity",
            Kind::Service => "service",
            Kind::Ci => "configuration item",
            Kind::Alert => "alert group",
            Kind::Oncall => "on-call schedule",
        }
    }

    /// The collection name in `/api/v1/<collection>`.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Incident => "incidents",
            Kind::Request => "requests",
            Kind::Problem => "problems",
            Kind::Change => "changes",
            Kind::Release => "releases",
            Kind::Nonconformity => "nonconformities",
            Kind::Service => "services",
            Kind::Ci => "cis",
            Kind::Alert => "alerts",
            Kind::Oncall => "oncall",
        }
    }

    pub fn from_collection(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.collection() == name)
    }

    pub fn from_str_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn is_numbered(self) -> bool {
        self.prefix().is_some()
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ID of a numbered record: `INC-1`, `CHG-42`. Numbers count from 1 per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    pub kind: Kind,
    pub n: u64,
}

impl RecordId {
    pub fn new(kind: Kind, n: u64) -> Self {
        debug_assert!(kind.is_numbered());
        Self { kind, n }
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind.prefix().unwrap_or("?"), self.n)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a record ID (expected INC-n, REQ-n, PRB-n, CHG-n, REL-n or NC-n)")]
pub struct BadRecordId(pub String);

impl FromStr for RecordId {
    type Err = BadRecordId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRecordId(s.to_string());
        let (prefix, n) = s.split_once('-').ok_or_else(bad)?;
        let kind = Kind::from_prefix(prefix).ok_or_else(bad)?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok(RecordId { kind, n })
    }
}

impl Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who did something: `platform:id`, for example `slack:U024BE7LH` or `console:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Actor(String);

/// The actor platforms the domain itself knows: GitHub, the terminal, and opsledger itself and
/// its alert receivers (`alerts:<receiver>`). The chat platforms are not listed here: each glue
/// file names its own (`integrations::platform::CHAT_PLATFORMS`), and the edges that take an
/// account from a person (the rules file, `--as`, sign-in, a mention) check it against both.
pub const OWN_PLATFORMS: [&str; 4] = ["github", "console", "system", "alerts"];

/// The platforms whose actors are opsledger's own, never a person's.
const SYSTEM_PLATFORMS: [&str; 2] = ["system", "alerts"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an actor: expected platform:id, for example slack:U024BE7LH or console:alice"
)]
pub struct BadActor(pub String);

/// An account on a platform this build does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{account}` is on no platform opsledger has: use one of {}", person_platforms(.known))]
pub struct UnknownPlatform {
    pub account: String,
    pub known: &'static [&'static str],
}

/// The platforms of `known` a person can act from (all but opsledger's own), for messages.
fn person_platforms(known: &[&str]) -> String {
    known
        .iter()
        .filter(|p| !SYSTEM_PLATFORMS.contains(p))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `p` is shaped as a platform's name: a lowercase word of at most 32 characters.
/// Only the shape is checked, so a record whose actor's platform was since removed still loads.
pub fn is_platform_name(p: &str) -> bool {
    p.len() <= 32
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Actor {
    /// Parses `platform:id` by its shape; which platforms exist is the edges' check.
    pub fn parse(s: &str) -> Result<Self, BadActor> {
        let (platform, id) = s.split_once(':').ok_or_else(|| BadActor(s.to_string()))?;
        let id_ok = !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if is_platform_name(platform) && id_ok {
            Ok(Actor(s.to_string()))
        } else {
            Err(BadActor(s.to_string()))
        }
    }

    /// Parses an actor a person claims to be (`exec --as`, chat identities): the `system` and
    /// `alerts` platforms are opsledger's own and cannot be claimed.
    pub fn parse_person(s: &str) -> Result<Self, BadActor> {
        let a = Actor::parse(s)?;
        if SYSTEM_PLATFORMS.contains(&a.platform()) {
            return Err(BadActor(s.to_string()));
        }
        Ok(a)
    }

    /// Checks that the account is on one of `known`: the chat platforms a build has and the
    /// domain's own, for an account a person gave.
    pub fn known_on(&self, known: &'static [&'static str]) -> Result<(), UnknownPlatform> {
        if known.contains(&self.platform()) {
            Ok(())
        } else {
            Err(UnknownPlatform {
                account: self.0.clone(),
                known,
            })
        }
    }

    /// The actor opsledger itself uses for automatic actions (the deadline timer, webhooks).
    pub fn system() -> Self {
        Actor("system:opsledger".to_string())
    }

    /// The system actor an alert receiver acts as: `alerts:<receiver>`, the receiver's name with
    /// anything an actor ID cannot hold replaced by `-` (and cut to 128 characters).
    pub fn alerts(receiver: &str) -> Self {
        let id: String = receiver
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .take(128)
            .collect();
        let id = if id.is_empty() {
            "default".to_string()
        } else {
            id
        };
        Actor(format!("alerts:{id}"))
    }

    /// Whether the account is on a chat platform, which can send it a direct message (the
    /// terminal, GitHub and opsledger's own accounts cannot).
    pub fn is_chat(&self) -> bool {
        !matches!(self.platform(), "console" | "github")
            && !SYSTEM_PLATFORMS.contains(&self.platform())
    }

    pub fn platform(&self) -> &str {
        self.0.split_once(':').map(|(p, _)| p).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Actor {
    type Error = BadActor;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Actor::parse(&s)
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> String {
        a.0
    }
}

impl FromStr for Actor {
    type Err = BadActor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Actor::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_round_trip_and_normalise_case() {
        let id: RecordId = "inc-12".parse().unwrap();
        assert_eq!(id, RecordId::new(Kind::Incident, 12));
        assert_eq!(id.to_string(), "INC-12");
        assert_eq!(
            "NC-3".parse::<RecordId>().unwrap().kind,
            Kind::Nonconformity
        );
    }

    #[test]
    fn malformed_record_ids_are_refused() {
        for bad in [
            "INC", "INC-", "INC-0", "INC-x", "FOO-1", "INC--1", "INC-1a", "-1",
        ] {
            assert!(bad.parse::<RecordId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn actors_need_a_platform_shaped_name_and_an_id() {
        assert_eq!(Actor::parse("slack:U024BE7LH").unwrap().platform(), "slack");
        assert!(Actor::parse("console:alice").is_ok());
        // A platform no build knows still parses: stored records outlive a removed platform.
        assert!(Actor::parse("irc:alice").is_ok());
        assert!(Actor::parse("alice").is_err());
        assert!(Actor::parse(":alice").is_err());
        assert!(Actor::parse("Slack:U1").is_err());
        assert!(Actor::parse("1rc:alice").is_err());
        assert!(Actor::parse(&format!("{}:x", "a".repeat(33))).is_err());
        assert!(Actor::parse("slack:").is_err());
        assert!(Actor::parse("slack:a b").is_err());
    }

    #[test]
    fn only_chat_accounts_can_be_messaged() {
        for (a, chat) in [
            ("slack:U1", true),
            ("discord:42", true),
            ("console:alice", false),
            ("github:octocat", false),
            ("system:opsledger", false),
            ("alerts:ops", false),
        ] {
            assert_eq!(Actor::parse(a).unwrap().is_chat(), chat, "{a}");
        }
    }
}
