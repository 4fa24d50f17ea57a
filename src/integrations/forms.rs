//! The forms buttons open before their command runs (resolving an incident, rejecting a change
//! ask for text), shared by every chat platform so they ask the same things.

use crate::domain::command::{ChangeAction, ChangeCmd, Command, IncidentAction, IncidentCmd};
use crate::domain::ids::{Kind, RecordId};

/// A one-field form, in neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub title: &'static str,
    /// The question, naming the record.
    pub label: String,
    pub submit: &'static str,
}

/// The form a button's action needs before it runs, if it needs text.
pub fn form_for(action: &str, record: &str) -> Option<Form> {
    let (title, label, submit) = match action {
        "incident resolve" => ("Resolve incident", "How was it resolved?", "Resolve"),
        "change reject" => ("Reject change", "Why is it rejected?", "Reject"),
        "nc correct" => (
            "Corrective action",
            "What was done to correct it?",
            "Record",
        ),
        _ => return None,
    };
    Some(Form {
        title,
        label: format!("{label} ({record})"),
        submit,
    })
}

/// The typed command a submitted form runs; built directly so the free text is never re-parsed.
pub fn form_command(action: &str, record: &str, text: &str) -> Option<Command> {
    let id: RecordId = record.parse().ok()?;
    let text = Some(text.trim().to_string()).filter(|t| !t.is_empty());
    match (action, id.kind) {
        ("incident resolve", Kind::Incident) => Some(Command::Incident(IncidentCmd::Act {
            action: IncidentAction::Resolve,
            id,
            text,
        })),
        ("change reject", Kind::Change) => Some(Command::Change(ChangeCmd::Act {
            action: ChangeAction::Reject,
            id,
            text,
        })),
        // The corrective action is required; an empty form gets the usage line instead.
        ("nc correct", Kind::Nonconformity) => {
            text.map(|action| Command::Nc(crate::domain::command::NcCmd::Correct { id, action }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_known_forms_become_commands() {
        assert!(super::form_command("incident resolve", "INC-1", "fixed").is_some());
        assert!(super::form_command("incident resolve", "CHG-1", "fixed").is_none());
        assert!(super::form_command("role grant", "INC-1", "x").is_none());
    }

    #[test]
    fn only_resolve_reject_and_correct_ask_for_text() {
        assert!(super::form_for("incident resolve", "INC-1").is_some());
        assert!(super::form_for("change reject", "CHG-1").is_some());
        assert!(super::form_for("nc correct", "NC-1").is_some());
        assert!(super::form_command("nc correct", "NC-1", "re-trained the team").is_some());
        assert!(super::form_for("change approve", "CHG-1").is_none());
    }
}
