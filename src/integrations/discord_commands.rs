//! Discord's slash commands: `/ops` for the whole grammar, and a structured command for each verb
//! the grammar table marks structured, with its options, names and autocomplete read from there.

use opsledger_discord::{CommandSpec, OptionSpec, SubcommandSpec};

use crate::domain::command::Command;
use crate::domain::ids::Kind;
use crate::domain::parser::{self, Form, Part, Slot, SlotKind, Structured, UsageError, Verb};

/// Which records an ID option offers as you type: this kind, in these statuses.
type Offer = Option<(Kind, &'static [&'static str])>;

/// One option of a structured command: a slot of its form, under the name Discord shows.
struct Opt {
    name: &'static str,
    description: &'static str,
    slot: &'static Slot,
}

/// A structured command: a verb of the grammar with its form.
struct Sub {
    verb: &'static Verb,
    structured: Structured,
    form: &'static Form,
}

impl Sub {
    /// `incident` and `raise` of `incident raise`.
    fn words(&self) -> (&'static str, &'static str) {
        self.verb
            .name
            .split_once(' ')
            .unwrap_or((self.verb.name, ""))
    }

    /// The form's slots that have a description, in usage order; the free text under the
    /// verb's own name and description when it gives them.
    fn options(&self) -> impl Iterator<Item = Opt> + '_ {
        self.form.slots.iter().filter_map(|slot| {
            let text = slot.kind == SlotKind::Text;
            let description = match self.structured.text_about {
                Some(about) if text => about,
                _ => slot.about?,
            };
            let name = match self.structured.text_name {
                Some(name) if text => name,
                _ => slot.name,
            };
            Some(Opt {
                name,
                description,
                slot,
            })
        })
    }

    fn offer(&self, opt: &Opt) -> Offer {
        match opt.slot.kind {
            SlotKind::Id(kind) if !self.structured.offer.is_empty() => {
                Some((kind, self.structured.offer))
            }
            _ => None,
        }
    }
}

impl Opt {
    /// What Discord offers to pick from: an option's or a choice's values.
    fn choices(&self) -> &'static [&'static str] {
        match self.slot.kind {
            SlotKind::Opt { choices, .. } => choices,
            SlotKind::Choice { values, .. } => values,
            _ => &[],
        }
    }
}

/// Every structured command, in the grammar's order.
fn structured() -> impl Iterator<Item = Sub> {
    parser::FORMS.iter().flat_map(|form| {
        form.verbs.iter().filter_map(move |verb| {
            Some(Sub {
                verb,
                structured: verb.structured?,
                form,
            })
        })
    })
}

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
    for sub in structured() {
        let (command, name) = sub.words();
        let spec = SubcommandSpec {
            name,
            description: sub.structured.about,
            options: sub
                .options()
                .map(|o| OptionSpec {
                    name: o.name,
                    description: o.description,
                    required: o.slot.required,
                    choices: o.choices(),
                    autocomplete: sub.offer(&o).is_some(),
                })
                .collect(),
        };
        match specs.iter_mut().find(|s| s.name == command) {
            Some(s) => s.subcommands.push(spec),
            None => specs.push(CommandSpec {
                name: command,
                description: parser::TOPICS
                    .iter()
                    .find(|t| t.name == command)
                    .and_then(|t| t.structured)
                    .unwrap_or(sub.structured.about),
                options: Vec::new(),
                subcommands: vec![spec],
            }),
        }
    }
    specs
}

fn find(command: &str, sub: Option<&str>) -> Option<Sub> {
    structured().find(|s| s.words() == (command, sub.unwrap_or_default()) && sub.is_some())
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
    for opt in spec.options() {
        let Some((_, value)) = options.iter().find(|(k, _)| k == opt.name) else {
            continue;
        };
        match opt.slot.kind {
            // Free text is taken literally (titles, reasons).
            SlotKind::Text => parts.push(Part::Literal(value)),
            // Several IDs, separated by spaces or commas.
            SlotKind::Ids(_) => parts.extend(
                value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|w| !w.is_empty())
                    .map(Part::Word),
            ),
            SlotKind::Opt { .. } => parts.push(Part::Opt(opt.slot.name, value.trim())),
            // A flag is switched on by its own word.
            SlotKind::Flag if value.trim() == "true" => parts.push(Part::Word(opt.slot.name)),
            SlotKind::Flag => {}
            SlotKind::Id(_) | SlotKind::Word(_) | SlotKind::Choice { .. } => {
                parts.push(Part::Word(value.trim()))
            }
        }
    }
    Some(parser::parse_parts(spec.verb.name, &parts))
}

/// The records an autocompleting option offers, if it offers any.
pub fn offer(name: &str, sub: Option<&str>, option: &str) -> Offer {
    let spec = find(name, sub)?;
    let opt = spec.options().find(|o| o.name == option)?;
    spec.offer(&opt)
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

    #[test]
    fn every_structured_option_names_a_slot_of_its_verbs_form_and_parses() {
        let specs = command_specs();
        let mut checked = 0;
        for spec in specs.iter().skip(1) {
            for sub in &spec.subcommands {
                let name = format!("{} {}", spec.name, sub.name);
                let (verb, form) = parser::form_named(&name).expect("a grammar verb");
                let structured = verb.structured.expect("marked structured");
                let mut given = Vec::new();
                for o in &sub.options {
                    let slot = form
                        .slot(o.name)
                        .or_else(|| {
                            (structured.text_name == Some(o.name))
                                .then(|| form.slots.iter().find(|s| s.kind == SlotKind::Text))
                                .flatten()
                        })
                        .unwrap_or_else(|| panic!("/{name} {}: no such grammar option", o.name));
                    assert_eq!(o.required, slot.required, "/{name} {}", o.name);
                    let value = parser::tests::example(slot);
                    // Discord sends an option's value without its key.
                    let value = match slot.kind {
                        SlotKind::Opt { .. } => value
                            .split_once(':')
                            .map_or(value.clone(), |(_, v)| v.to_string()),
                        _ => value,
                    };
                    given.push((o.name, value));
                }
                let options: Vec<(String, String)> = given
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                let parsed = slash_command(spec.name, Some(sub.name), &options)
                    .expect("known")
                    .unwrap_or_else(|e| panic!("/{name} {options:?}: {e}"));
                assert_eq!(parsed.name(), name);
                for o in &sub.options {
                    for choice in o.choices {
                        let mut with = options.clone();
                        if let Some(v) = with.iter_mut().find(|(k, _)| k == o.name) {
                            v.1 = choice.to_string();
                        }
                        let parsed =
                            slash_command(spec.name, Some(sub.name), &with).expect("known");
                        assert!(parsed.is_ok(), "/{name} {}:{choice}: {parsed:?}", o.name);
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, structured().count());
    }
}
