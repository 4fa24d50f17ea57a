//! Discord's slash commands: one table drives both their registration with Discord and their
//! mapping onto the command grammar, and it says which record options autocomplete from.

use opsledger_discord::{CommandSpec, OptionSpec, SubcommandSpec};

use crate::domain::command::Command;
use crate::domain::ids::Kind;
use crate::domain::parser::{self, Part, UsageError};

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
