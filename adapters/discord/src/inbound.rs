//! Interaction payloads, deserialized with serenity's model and reduced to plain values: who,
//! where, which command or button, and the text they carry.

use serenity::all::{
    ActionRowComponent, CommandDataOption, CommandDataOptionValue, Interaction as Raw, User,
};

/// One interaction, in platform-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// Discord checking the endpoint: answer with `pong()`.
    Ping,
    /// A slash command: `name` is the top-level command (`ops`, `incident`), `subcommand` the
    /// chosen subcommand, and `options` its values as text, in the order given.
    Command {
        /// The interaction's own id: a replay of the same request carries the same one.
        id: String,
        token: String,
        user_id: String,
        channel_id: String,
        name: String,
        subcommand: Option<String>,
        options: Vec<(String, String)>,
    },
    /// Someone is typing into an option with autocomplete: `focused` names it, `value` is the
    /// text so far.
    Autocomplete {
        user_id: String,
        name: String,
        subcommand: Option<String>,
        focused: String,
        value: String,
    },
    /// A button on a message.
    Button {
        /// The interaction's own id: a replay of the same request carries the same one.
        id: String,
        token: String,
        user_id: String,
        channel_id: String,
        message_id: String,
        custom_id: String,
    },
    /// A submitted modal; `text` is its text input.
    ModalSubmit {
        /// The interaction's own id: a replay of the same request carries the same one.
        id: String,
        token: String,
        user_id: String,
        channel_id: String,
        /// The message whose button opened the modal, if any.
        message_id: Option<String>,
        custom_id: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a Discord interaction: {0}")]
    Malformed(String),
    #[error("unsupported interaction: {0}")]
    Unsupported(String),
}

/// Who acted: in a server the member's user, in a DM the user (serenity fills `user` from
/// `member.user` for server interactions).
fn user_id(user: &User) -> String {
    user.id.get().to_string()
}

/// The subcommand, if the command has one, and the options to read.
fn flatten(options: &[CommandDataOption]) -> (Option<String>, &[CommandDataOption]) {
    match options.first() {
        Some(CommandDataOption {
            name,
            value: CommandDataOptionValue::SubCommand(inner),
            ..
        }) => (Some(name.clone()), inner),
        _ => (None, options),
    }
}

fn text(value: &CommandDataOptionValue) -> Option<String> {
    Some(match value {
        CommandDataOptionValue::String(s) => s.clone(),
        CommandDataOptionValue::Integer(i) => i.to_string(),
        CommandDataOptionValue::Number(n) => n.to_string(),
        CommandDataOptionValue::Boolean(b) => b.to_string(),
        CommandDataOptionValue::Autocomplete { value, .. } => value.clone(),
        CommandDataOptionValue::User(u) => format!("<@{}>", u.get()),
        _ => return None,
    })
}

/// Parses a verified request body.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, ParseError> {
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| ParseError::Malformed(e.to_string()))?;
    Ok(match raw {
        Raw::Ping(_) => Interaction::Ping,
        Raw::Command(c) => {
            let (subcommand, options) = flatten(&c.data.options);
            Interaction::Command {
                id: c.id.get().to_string(),
                token: c.token.clone(),
                user_id: user_id(&c.user),
                channel_id: c.channel_id.get().to_string(),
                name: c.data.name.clone(),
                subcommand,
                options: options
                    .iter()
                    .filter_map(|o| text(&o.value).map(|v| (o.name.clone(), v)))
                    .collect(),
            }
        }
        Raw::Autocomplete(c) => {
            let (subcommand, options) = flatten(&c.data.options);
            let focused = options
                .iter()
                .find(|o| matches!(o.value, CommandDataOptionValue::Autocomplete { .. }))
                .ok_or_else(|| {
                    ParseError::Malformed("autocomplete without a focused option".into())
                })?;
            Interaction::Autocomplete {
                user_id: user_id(&c.user),
                name: c.data.name.clone(),
                subcommand,
                focused: focused.name.clone(),
                value: text(&focused.value).unwrap_or_default(),
            }
        }
        Raw::Component(c) => Interaction::Button {
            id: c.id.get().to_string(),
            token: c.token.clone(),
            user_id: user_id(&c.user),
            channel_id: c.channel_id.get().to_string(),
            message_id: c.message.id.get().to_string(),
            custom_id: c.data.custom_id.clone(),
        },
        Raw::Modal(m) => {
            let text = m
                .data
                .components
                .iter()
                .flat_map(|row| row.components.iter())
                .find_map(|c| match c {
                    ActionRowComponent::InputText(t) => Some(t.value.clone().unwrap_or_default()),
                    _ => None,
                })
                .unwrap_or_default();
            Interaction::ModalSubmit {
                id: m.id.get().to_string(),
                token: m.token.clone(),
                user_id: user_id(&m.user),
                channel_id: m.channel_id.get().to_string(),
                message_id: m.message.as_ref().map(|msg| msg.id.get().to_string()),
                custom_id: m.data.custom_id.clone(),
                text,
            }
        }
        other => {
            return Err(ParseError::Unsupported(format!("{:?}", other.kind())));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_parses() {
        let body = br#"{"id":"1","application_id":"2","type":1,"token":"t","version":1}"#;
        assert_eq!(parse_interaction(body), Ok(Interaction::Ping));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            parse_interaction(b"{\"type\":99}"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_interaction(b"not json"),
            Err(ParseError::Malformed(_))
        ));
    }
}
