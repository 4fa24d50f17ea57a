//! Slash-command definitions in neutral terms, turned into serenity's `CreateCommand` for
//! registration. Discord allows options beside subcommands on no command, so each structured
//! command is a top-level command with subcommands.

use serenity::all::{CommandOptionType, CreateCommand, CreateCommandOption};

/// A top-level command: either plain options (`/ops command:<text>`) or subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub options: Vec<OptionSpec>,
    pub subcommands: Vec<SubcommandSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubcommandSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub options: Vec<OptionSpec>,
}

/// A text option; with `choices` Discord offers only those, with `autocomplete` it asks us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
    pub choices: &'static [&'static str],
    pub autocomplete: bool,
}

fn option(o: &OptionSpec) -> CreateCommandOption {
    let mut opt = CreateCommandOption::new(CommandOptionType::String, o.name, o.description)
        .required(o.required);
    for c in o.choices {
        opt = opt.add_string_choice(*c, *c);
    }
    if o.autocomplete {
        opt = opt.set_autocomplete(true);
    }
    opt
}

impl CommandSpec {
    pub(crate) fn build(&self) -> CreateCommand {
        let mut cmd = CreateCommand::new(self.name).description(self.description);
        for o in &self.options {
            cmd = cmd.add_option(option(o));
        }
        for s in &self.subcommands {
            let mut sub =
                CreateCommandOption::new(CommandOptionType::SubCommand, s.name, s.description);
            for o in &s.options {
                sub = sub.add_sub_option(option(o));
            }
            cmd = cmd.add_option(sub);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subcommand_with_choices_and_autocomplete_serializes_as_discord_expects() {
        let spec = CommandSpec {
            name: "incident",
            description: "Incidents",
            options: vec![],
            subcommands: vec![SubcommandSpec {
                name: "ack",
                description: "Acknowledge",
                options: vec![
                    OptionSpec {
                        name: "id",
                        description: "Incident",
                        required: true,
                        choices: &[],
                        autocomplete: true,
                    },
                    OptionSpec {
                        name: "impact",
                        description: "Impact",
                        required: false,
                        choices: &["high", "low"],
                        autocomplete: false,
                    },
                ],
            }],
        };
        let json = serde_json::to_value(spec.build()).unwrap();
        assert_eq!(json["name"], "incident");
        let sub = &json["options"][0];
        assert_eq!(sub["type"], 1);
        assert_eq!(sub["options"][0]["type"], 3);
        assert_eq!(sub["options"][0]["autocomplete"], true);
        assert_eq!(sub["options"][0]["required"], true);
        assert_eq!(sub["options"][1]["choices"][1]["value"], "low");
    }
}
