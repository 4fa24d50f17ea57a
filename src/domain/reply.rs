//! Neutral replies and events: what a use case answers, for each adapter to render its own way.

use serde::{Deserialize, Serialize};

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    Ok,
    /// A rule refused the action; `rule` names it (for example `lifecycle` or `segregation-of-duties`).
    Refused {
        rule: String,
    },
    /// The text was not a valid command.
    Usage,
    /// A record the command names does not exist.
    NotFound,
    /// The store failed; nothing was changed.
    Failed,
    /// A platform delivered the same request again (a retry or a replay); it was acted on
    /// the first time and nothing was changed now.
    Duplicate,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The short form kept in the audit trail and in metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused { .. } => "refused",
            Outcome::Usage => "usage",
            Outcome::NotFound => "not_found",
            Outcome::Failed => "failed",
            Outcome::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    Primary,
    Danger,
    Default,
}

/// A button an adapter may render; pressing it runs `action` (a command verb such as `incident ack`) on `record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub action: String,
    pub record: String,
    pub style: ButtonStyle,
}

/// The neutral answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub outcome: Outcome,
    /// The record the command touched, if any; the text always names it too.
    pub record: Option<String>,
    pub text: String,
    pub fields: Vec<Field>,
    pub buttons: Vec<Button>,
}

impl Reply {
    pub fn ok(record: Option<String>, text: impl Into<String>) -> Self {
        Reply {
            outcome: Outcome::Ok,
            record,
            text: text.into(),
            fields: Vec::new(),
            buttons: Vec::new(),
        }
    }

    pub fn refused(record: Option<String>, rule: &str, text: impl Into<String>) -> Self {
        Reply {
            outcome: Outcome::Refused {
                rule: rule.to_string(),
            },
            ..Reply::ok(record, text)
        }
    }

    pub fn usage(text: impl Into<String>) -> Self {
        Reply {
            outcome: Outcome::Usage,
            ..Reply::ok(None, text)
        }
    }

    pub fn not_found(record: impl Into<String>, text: impl Into<String>) -> Self {
        Reply {
            outcome: Outcome::NotFound,
            ..Reply::ok(Some(record.into()), text)
        }
    }

    pub fn failed(text: impl Into<String>) -> Self {
        Reply {
            outcome: Outcome::Failed,
            ..Reply::ok(None, text)
        }
    }

    /// The answer to a request a platform delivered again.
    pub fn duplicate() -> Self {
        Reply {
            outcome: Outcome::Duplicate,
            ..Reply::ok(
                None,
                "this request was already received and acted on; nothing was changed again",
            )
        }
    }

    pub fn field(mut self, name: &str, value: impl Into<String>) -> Self {
        self.fields.push(Field {
            name: name.to_string(),
            value: value.into(),
        });
        self
    }

    pub fn button(mut self, label: &str, action: &str, record: &str, style: ButtonStyle) -> Self {
        self.buttons.push(Button {
            label: label.to_string(),
            action: action.to_string(),
            record: record.to_string(),
            style,
        });
        self
    }

    /// Plain text for terminals and logs: the text, one `name: value` line per field, and for
    /// a refusal the rule that refused it.
    pub fn to_plain_text(&self) -> String {
        let mut out = self.text.clone();
        for f in &self.fields {
            out.push_str(&format!("\n  {}: {}", f.name, f.value));
        }
        if let Outcome::Refused { rule } = &self.outcome {
            out.push_str(&format!("\n  refused by rule: {rule}"));
        }
        out
    }
}

/// Something that happened, for adapters to act on after the command committed
/// (post to a channel, update a CAB message, set a GitHub status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    IncidentRaised {
        id: String,
        priority: String,
        /// `Incident::gets_room` as the command left it, so routers queue room work only for
        /// the incidents that get a room.
        #[serde(default)]
        room: bool,
    },
    IncidentUpdated {
        id: String,
        status: String,
        #[serde(default)]
        room: bool,
    },
    ChangeSubmitted {
        id: String,
    },
    ChangeVoted {
        id: String,
    },
    ChangeDecided {
        id: String,
        status: String,
    },
    ChangeUpdated {
        id: String,
        status: String,
    },
    ReleaseCreated {
        id: String,
    },
    ReleaseDeployed {
        id: String,
        env: String,
    },
    NonconformityRaised {
        id: String,
    },
    /// An SLA target was missed: chat adapters escalate it.
    SlaBreached {
        id: String,
        target: String,
        priority: String,
        nonconformity: String,
    },
    /// An emergency change's post-implementation review is overdue.
    ChangeReviewOverdue {
        id: String,
        nonconformity: String,
        /// Who requested the change: they are told directly.
        #[serde(default)]
        requester: String,
    },
    RecordUpdated {
        id: String,
    },
    /// A pull request was linked to changes (or names none on a protected branch): its status
    /// and comment are due.
    PullRequestLinked {
        repo: String,
        number: u64,
        sha: String,
        changes: Vec<String>,
        protected: bool,
        installation: Option<u64>,
    },
    /// A release from a repository whose commits are to be collected from GitHub.
    ReleaseNeedsCommits {
        id: String,
        installation: Option<u64>,
    },
    /// An escalation step paged a person: each of their chat accounts gets a direct message.
    Paged {
        incident: String,
        who: String,
        accounts: Vec<String>,
        chain: String,
        step: usize,
    },
    /// An escalation step paged the incident's room and the incident channel.
    PagedChannel {
        incident: String,
        text: String,
    },
    /// A notice for the incident's room alone (a major incident still without a commander).
    RoomNotice {
        incident: String,
        text: String,
    },
    /// An escalation step's webhook: `body` is POSTed to `url`, signed.
    PageWebhook {
        incident: String,
        url: String,
        body: String,
    },
    /// A deployment protection rule was decided: GitHub is to be told on its callback URL.
    DeploymentGateDecided {
        repo: String,
        callback_url: String,
        environment: String,
        approved: bool,
        comment: String,
        installation: Option<u64>,
    },
}

impl Event {
    /// The records this event says changed, by ID: what an open dashboard page showing one of
    /// them reloads for. Empty for events about something outside the records (a GitHub call).
    pub fn records(&self) -> Vec<&str> {
        match self {
            Event::IncidentRaised { id, .. }
            | Event::IncidentUpdated { id, .. }
            | Event::ChangeSubmitted { id }
            | Event::ChangeVoted { id }
            | Event::ChangeDecided { id, .. }
            | Event::ChangeUpdated { id, .. }
            | Event::ReleaseCreated { id }
            | Event::ReleaseDeployed { id, .. }
            | Event::NonconformityRaised { id }
            | Event::RecordUpdated { id }
            | Event::ReleaseNeedsCommits { id, .. } => vec![id.as_str()],
            Event::SlaBreached {
                id, nonconformity, ..
            }
            | Event::ChangeReviewOverdue {
                id, nonconformity, ..
            } => vec![id.as_str(), nonconformity.as_str()],
            Event::PullRequestLinked { changes, .. } => {
                changes.iter().map(String::as_str).collect()
            }
            Event::Paged { incident, .. }
            | Event::PagedChannel { incident, .. }
            | Event::RoomNotice { incident, .. }
            | Event::PageWebhook { incident, .. } => vec![incident.as_str()],
            Event::DeploymentGateDecided { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn an_event_names_the_records_it_changed() {
        let voted = Event::ChangeVoted { id: "CHG-7".into() };
        let breach = Event::SlaBreached {
            id: "INC-2".into(),
            target: "respond".into(),
            priority: "P1".into(),
            nonconformity: "NC-1".into(),
        };
        let linked = Event::PullRequestLinked {
            repo: "acme/shop".into(),
            number: 4,
            sha: "abc".into(),
            changes: vec!["CHG-1".into(), "CHG-2".into()],
            protected: true,
            installation: None,
        };
        assert_eq!(voted.records(), ["CHG-7"]);
        assert_eq!(breach.records(), ["INC-2", "NC-1"]);
        assert_eq!(linked.records(), ["CHG-1", "CHG-2"]);
    }
}
