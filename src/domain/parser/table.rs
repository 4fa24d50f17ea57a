//! The grammar as data: each command's verb, arguments, options and free text, declared once.
//!
//! The usage lines, the help texts, the role table (`permissions::required_roles`) and the
//! structured commands of Discord are all read from `FORMS`; the parsing of each form is the
//! function it names in `grammar`.

use std::sync::LazyLock;

use super::grammar::{self, Parse};
use crate::domain::command::Role;
use crate::domain::ids::Kind;
use crate::domain::permissions::{ADMIN, ANYONE, CHANGE_MANAGERS, INCIDENT_MANAGERS, MANAGERS};

/// A help topic: every command name starts with one.
#[derive(Debug, Clone, Copy)]
pub struct Topic {
    pub name: &'static str,
    /// The first line of `help <topic>`.
    pub about: &'static str,
    /// A short description of the topic's structured command (Discord's `/incident`), if it has one.
    pub structured: Option<&'static str>,
}

/// One command name of a form, with who may run it.
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    /// `incident raise`, or a single word such as `sla`.
    pub name: &'static str,
    /// Any one of these roles lets a person run it; empty means anyone may. Rules that depend on
    /// the record are checked by its handler.
    pub roles: &'static [Role],
    /// Offered as a structured command with typed options (Discord's `/incident raise`).
    pub structured: Option<Structured>,
}

/// What a structured front end shows of a verb beyond its form's slots.
#[derive(Debug, Clone, Copy)]
pub struct Structured {
    /// One line for the command picker.
    pub about: &'static str,
    /// The statuses the form's record ID autocompletes from.
    pub offer: &'static [&'static str],
    /// The free text's option name here, when it is not the slot's (`comment` on `change approve`).
    pub text_name: Option<&'static str>,
    /// The free text's description here, when it is not the slot's.
    pub text_about: Option<&'static str>,
}

/// One argument of a form, in the order the usage line shows it.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The option key, flag word, or the argument's name (a structured option's name).
    pub name: &'static str,
    pub kind: SlotKind,
    pub required: bool,
    /// Its description in structured commands; `None` leaves it out of them.
    pub about: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A record ID of this kind: `INC-n`.
    Id(Kind),
    /// Any number of record IDs of this kind: `[CHG-1 CHG-2 ...]`.
    Ids(Kind),
    /// One word, shown as `<name>` (`[name]` when optional) or as the text given (`@user`).
    Word(Option<&'static str>),
    /// One word of `values`; `hidden` ones are accepted too but not shown.
    Choice {
        values: &'static [&'static str],
        hidden: &'static [&'static str],
    },
    /// A `name:value` option: `shown` is its value in the usage line, `choices` what a structured
    /// front end offers (empty: any value).
    Opt {
        shown: &'static str,
        choices: &'static [&'static str],
    },
    /// A bare word that switches something on: `security`.
    Flag,
    /// The remaining words, as free text: `<title>`, `[text]`.
    Text,
}

impl SlotKind {
    /// Whether the parser reads it from `key:value` words or bare flags rather than by position.
    pub fn is_named(self) -> bool {
        matches!(self, SlotKind::Opt { .. } | SlotKind::Flag)
    }
}

/// One line of the grammar: the verbs it covers, their arguments, a one-sentence explanation,
/// and the function that reads its arguments.
pub struct Form {
    pub verbs: &'static [Verb],
    pub slots: &'static [Slot],
    pub about: &'static str,
    pub(super) parse: Parse,
}

impl Form {
    /// The usage line: `incident ack|resolve|close|reopen INC-n [text]`.
    pub fn usage(&'static self) -> &'static str {
        let i = FORMS
            .iter()
            .position(|f| std::ptr::eq(f, self))
            .expect("forms are in FORMS");
        USAGES[i].as_str()
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.verbs.iter().map(|v| v.name)
    }

    pub fn slot(&self, name: &str) -> Option<&'static Slot> {
        self.slots.iter().find(|s| s.name == name)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (i, verb) in self.verbs.iter().enumerate() {
            match (i, verb.name.split_once(' ')) {
                (0, _) | (_, None) => out.push_str(verb.name),
                (_, Some((_, v))) => {
                    out.push('|');
                    out.push_str(v);
                }
            }
        }
        for slot in self.slots {
            out.push(' ');
            out.push_str(&slot.render());
        }
        out
    }
}

impl Slot {
    fn render(&self) -> String {
        let optional = |s: String| {
            if self.required {
                s
            } else {
                format!("[{s}]")
            }
        };
        let prefix = |k: Kind| k.prefix().unwrap_or("?");
        match self.kind {
            SlotKind::Id(k) => format!("{}-n", prefix(k)),
            SlotKind::Ids(k) => format!("[{p}-1 {p}-2 ...]", p = prefix(k)),
            SlotKind::Word(Some(shown)) => shown.to_string(),
            SlotKind::Word(None) | SlotKind::Text if self.required => format!("<{}>", self.name),
            SlotKind::Word(None) | SlotKind::Text => format!("[{}]", self.name),
            SlotKind::Choice { values, .. } => optional(values.join("|")),
            SlotKind::Opt { shown, .. } => optional(format!("{}:{shown}", self.name)),
            SlotKind::Flag => format!("[{}]", self.name),
        }
    }
}

// ---- builders, so each line of the table reads like its usage ----

const fn verb(name: &'static str) -> Verb {
    only(ANYONE, name)
}

const fn only(roles: &'static [Role], name: &'static str) -> Verb {
    Verb {
        name,
        roles,
        structured: None,
    }
}

impl Verb {
    const fn structured(self, about: &'static str) -> Verb {
        Verb {
            structured: Some(Structured {
                about,
                offer: &[],
                text_name: None,
                text_about: None,
            }),
            ..self
        }
    }

    /// The statuses its record ID autocompletes from (after `structured`).
    const fn offers(self, statuses: &'static [&'static str]) -> Verb {
        match self.structured {
            Some(mut s) => {
                s.offer = statuses;
                Verb {
                    structured: Some(s),
                    ..self
                }
            }
            None => self,
        }
    }

    /// Its free text's structured name (if not the slot's) and description (after `structured`).
    const fn text(self, name: Option<&'static str>, about: &'static str) -> Verb {
        match self.structured {
            Some(mut s) => {
                s.text_name = name;
                s.text_about = Some(about);
                Verb {
                    structured: Some(s),
                    ..self
                }
            }
            None => self,
        }
    }
}

const fn slot(name: &'static str, kind: SlotKind, required: bool) -> Slot {
    Slot {
        name,
        kind,
        required,
        about: None,
    }
}

impl Slot {
    /// Offered in structured commands, with this description.
    const fn about(self, about: &'static str) -> Slot {
        Slot {
            about: Some(about),
            ..self
        }
    }
}

const fn id(kind: Kind) -> Slot {
    slot("id", SlotKind::Id(kind), true)
}

const fn title() -> Slot {
    slot("title", SlotKind::Text, true)
}

const fn text(name: &'static str) -> Slot {
    slot(name, SlotKind::Text, true)
}

const fn note() -> Slot {
    slot("text", SlotKind::Text, false)
}

const fn word(name: &'static str) -> Slot {
    slot(name, SlotKind::Word(None), true)
}

const fn shown(name: &'static str, shown: &'static str) -> Slot {
    slot(name, SlotKind::Word(Some(shown)), true)
}

const fn choice(name: &'static str, values: &'static [&'static str], required: bool) -> Slot {
    slot(
        name,
        SlotKind::Choice {
            values,
            hidden: &[],
        },
        required,
    )
}

/// An optional `key:value` option.
const fn opt(key: &'static str, shown: &'static str) -> Slot {
    slot(
        key,
        SlotKind::Opt {
            shown,
            choices: &[],
        },
        false,
    )
}

/// An optional `key:value` option whose structured front end offers `choices`.
const fn opt_of(key: &'static str, shown: &'static str, choices: &'static [&'static str]) -> Slot {
    slot(key, SlotKind::Opt { shown, choices }, false)
}

const fn flag(name: &'static str) -> Slot {
    slot(name, SlotKind::Flag, false)
}

const fn form(
    verbs: &'static [Verb],
    slots: &'static [Slot],
    about: &'static str,
    parse: Parse,
) -> Form {
    Form {
        verbs,
        slots,
        about,
        parse,
    }
}

const LEVELS: &[&str] = &["high", "medium", "low"];
const LEVEL: &str = "high|medium|low";

/// Help topics, in overview order; every command name starts with one of them.
pub static TOPICS: &[Topic] = &[
    topic(
        "incident",
        "Incidents are unplanned interruptions or degradations of a service.",
        Some("Raise and work incidents"),
    ),
    topic(
        "request",
        "Service requests are routine asks users make of a service.",
        None,
    ),
    topic(
        "problem",
        "Problems are the underlying causes of one or more incidents.",
        None,
    ),
    topic(
        "change",
        "Changes are planned modifications to services, approved before they start.",
        Some("Request changes and vote on them"),
    ),
    topic(
        "release",
        "Releases are versions of software deployed to environments.",
        Some("Create releases"),
    ),
    topic(
        "service",
        "Services are what you deliver; incidents, changes and CIs belong to them.",
        None,
    ),
    topic(
        "ci",
        "Configuration items are the components services are built from.",
        None,
    ),
    topic(
        "nc",
        "Nonconformities are departures from the process, each with a corrective action.",
        None,
    ),
    topic(
        "role",
        "Roles say who may do what; grants and revocations are audited.",
        None,
    ),
    topic(
        "oncall",
        "On-call schedules say who answers incidents: a rotation from the rules file, and overrides.",
        None,
    ),
    topic(
        "sla",
        "SLA clocks measure response and resolution time against the targets.",
        None,
    ),
    topic(
        "report",
        "Reports summarise service management for a period.",
        None,
    ),
    topic(
        "audit",
        "The audit trail records every action and refusal on a record.",
        None,
    ),
    topic("help", "Help lists the commands and explains each.", None),
];

const fn topic(name: &'static str, about: &'static str, structured: Option<&'static str>) -> Topic {
    Topic {
        name,
        about,
        structured,
    }
}

/// Every command, in help order.
pub static FORMS: &[Form] = &[
    form(
        &[verb("incident raise").structured("Raise an incident")],
        &[
            title().about("What is wrong"),
            opt_of("impact", LEVEL, LEVELS).about("How much of the service is affected"),
            opt_of("urgency", LEVEL, LEVELS).about("How fast it must be fixed"),
            opt("service", "NAME").about("The affected service"),
            opt("ci", "NAME"),
            flag("security"),
        ],
        "Record a new incident; impact and urgency set its priority, `security` marks it as a security incident.",
        grammar::incident_raise,
    ),
    form(
        &[
            verb("incident ack").structured("Acknowledge an incident").offers(&["new"]).text(None, "A note"),
            verb("incident resolve")
                .structured("Resolve an incident")
                .offers(&["new", "acknowledged"])
                .text(None, "How it was resolved"),
            verb("incident close"),
            verb("incident reopen"),
        ],
        &[id(Kind::Incident).about("The incident"), note()],
        "Acknowledge, resolve, close or reopen an incident, with an optional note.",
        grammar::incident_act,
    ),
    form(
        &[verb("incident show")],
        &[id(Kind::Incident)],
        "Show an incident with its priority, assignee and SLA clocks.",
        grammar::incident_show,
    ),
    form(
        &[verb("incident assign")],
        &[id(Kind::Incident), shown("user", "@user")],
        "Make someone the assignee of an incident.",
        grammar::incident_assign,
    ),
    form(
        &[verb("incident note")],
        &[id(Kind::Incident), text("text")],
        "Add a note to the timeline of an incident.",
        grammar::incident_note,
    ),
    form(
        &[verb("incident list")],
        &[choice("filter", &["open", "mine", "breached", "all"], false)],
        "List open incidents (the default), yours, those past an SLA target, or all.",
        grammar::incident_list,
    ),
    form(
        &[only(INCIDENT_MANAGERS, "incident major")],
        &[id(Kind::Incident)],
        "Declare a major incident: it gets a linked problem to find the underlying cause.",
        grammar::incident_major,
    ),
    form(
        &[verb("incident escalate")],
        &[id(Kind::Incident)],
        "Run the incident's escalation chain's next steps now instead of after the wait.",
        grammar::incident_escalate,
    ),
    form(
        &[verb("incident role")],
        &[
            id(Kind::Incident),
            choice("role", &["commander", "comms", "scribe"], true),
            shown("user", "@user"),
        ],
        "Give someone a role in the response: the commander leads it, comms keeps people informed, the scribe keeps the record.",
        grammar::incident_role,
    ),
    form(
        &[only(INCIDENT_MANAGERS, "incident priority")],
        &[
            id(Kind::Incident),
            opt_of("impact", LEVEL, LEVELS),
            opt_of("urgency", LEVEL, LEVELS),
        ],
        "Re-assess an incident's impact or urgency (at least one); its priority and SLA due times follow.",
        grammar::incident_priority,
    ),
    form(
        &[verb("request raise")],
        &[title(), opt("service", "NAME")],
        "Record a new service request.",
        grammar::request_raise,
    ),
    form(
        &[verb("request fulfil"), verb("request close")],
        &[id(Kind::Request), note()],
        "Mark a service request fulfilled, or close it, with an optional note.",
        grammar::request_act,
    ),
    form(
        &[verb("request show")],
        &[id(Kind::Request)],
        "Show a service request.",
        grammar::request_show,
    ),
    form(
        &[verb("problem open")],
        &[title(), opt("from", "INC-1,INC-2")],
        "Open a problem, optionally linked to the incidents it explains.",
        grammar::problem_open,
    ),
    form(
        &[verb("problem link")],
        &[id(Kind::Problem), slot("incident", SlotKind::Id(Kind::Incident), true)],
        "Link an incident to a problem.",
        grammar::problem_link,
    ),
    form(
        &[
            verb("problem rootcause"),
            verb("problem workaround"),
            only(INCIDENT_MANAGERS, "problem resolve"),
            only(INCIDENT_MANAGERS, "problem close"),
        ],
        &[id(Kind::Problem), text("text")],
        "Record the root cause or a workaround of a problem, or resolve or close it.",
        grammar::problem_act,
    ),
    form(
        &[verb("problem show")],
        &[id(Kind::Problem)],
        "Show a problem with its linked incidents.",
        grammar::problem_show,
    ),
    form(
        &[verb("change request").structured("Request a change")],
        &[
            title().about("What will change"),
            slot(
                "type",
                SlotKind::Opt {
                    shown: "standard|normal|emergency",
                    choices: &["standard", "normal", "emergency"],
                },
                true,
            )
            .about("standard, normal or emergency"),
            opt_of("risk", "low|medium|high", LEVELS).about("How risky it is"),
            opt("service", "NAME").about("The service it changes"),
            opt("window", "2026-12-01T22:00Z..2026-12-01T23:00Z").about("2026-12-01T22:00Z..2026-12-01T23:00Z"),
            opt("template", "NAME").about("A pre-approved standard change"),
        ],
        "Request a change; standard changes follow a pre-approved template, normal and emergency ones need CAB or ECAB approval.",
        grammar::change_request,
    ),
    form(
        &[
            verb("change submit"),
            verb("change approve")
                .structured("Approve a change (CAB)")
                .offers(&["submitted"])
                .text(Some("comment"), "A comment for the record"),
            verb("change reject")
                .structured("Reject a change (CAB)")
                .offers(&["submitted"])
                .text(Some("reason"), "Why it is rejected"),
            verb("change start"),
            verb("change complete"),
            verb("change fail"),
            verb("change rollback"),
            only(CHANGE_MANAGERS, "change review"),
            only(CHANGE_MANAGERS, "change close"),
        ],
        &[id(Kind::Change).about("The change"), note()],
        "Move a change through its lifecycle: submit it, vote on it, implement it, review and close it. `change review CHG-n cleared INC-m <why>` clears an incident suspected of being caused by the change.",
        grammar::change_act,
    ),
    form(
        &[verb("change show")],
        &[id(Kind::Change)],
        "Show a change with its votes, window and linked pull requests.",
        grammar::change_show,
    ),
    form(
        &[verb("change link")],
        &[id(Kind::Change), shown("pull", "owner/repo#123")],
        "Link a GitHub pull request to a change.",
        grammar::change_link,
    ),
    form(
        &[verb("change list").structured("List changes: open ones, those waiting for your vote, or yours")],
        &[choice("filter", &["open", "waiting", "mine"], false)
            .about("open (the default), waiting for your vote, or mine")],
        "List open changes (the default), those waiting for your vote, or your own open ones.",
        grammar::change_list,
    ),
    form(
        &[only(CHANGE_MANAGERS, "release create").structured("Create a release")],
        &[
            word("version").about("The version, such as 1.4.0"),
            opt("repo", "owner/name").about("owner/name"),
            slot("changes", SlotKind::Ids(Kind::Change), false).about("The changes it ships: CHG-1 CHG-2"),
        ],
        "Record a release and the changes it ships.",
        grammar::release_create,
    ),
    form(
        &[only(CHANGE_MANAGERS, "release deploy")],
        &[id(Kind::Release), slot("env", SlotKind::Opt { shown: "NAME", choices: &[] }, true)],
        "Record the deployment of a release to an environment.",
        grammar::release_deploy,
    ),
    form(
        &[only(CHANGE_MANAGERS, "release rollback")],
        &[id(Kind::Release), note()],
        "Record that a release was rolled back, with an optional reason.",
        grammar::release_rollback,
    ),
    form(
        &[verb("release show")],
        &[id(Kind::Release)],
        "Show a release with its changes and deployments.",
        grammar::release_show,
    ),
    form(
        &[only(CHANGE_MANAGERS, "service add")],
        &[word("name"), opt("owner", "@user"), opt("escalation", "NAME")],
        "Add a service to the catalogue, optionally with its owner and the escalation chain its incidents page through.",
        grammar::service_add,
    ),
    form(
        &[verb("service show")],
        &[word("name")],
        "Show a service and its owner.",
        grammar::service_show,
    ),
    form(
        &[only(CHANGE_MANAGERS, "ci add")],
        &[word("name"), opt("type", "KIND"), opt("service", "NAME"), opt("depends", "NAME,...")],
        "Add a configuration item, its service and what it depends on.",
        grammar::ci_add,
    ),
    form(
        &[verb("ci show")],
        &[word("name")],
        "Show a configuration item with its dependencies.",
        grammar::ci_show,
    ),
    form(
        &[verb("nc raise")],
        &[title(), opt("record", "ID")],
        "Record a nonconformity by hand, optionally about one record.",
        grammar::nc_raise,
    ),
    form(
        &[verb("nc list")],
        // `all` was the default before `open` existed; still accepted, no longer shown.
        &[slot("filter", SlotKind::Choice { values: &["open"], hidden: &["all"] }, false)],
        "List nonconformities, or only the open ones.",
        grammar::nc_list,
    ),
    form(
        &[only(MANAGERS, "nc correct")],
        &[id(Kind::Nonconformity), text("corrective action")],
        "Record the corrective action taken for a nonconformity.",
        grammar::nc_correct,
    ),
    form(
        &[only(ADMIN, "nc close")],
        &[id(Kind::Nonconformity)],
        "Close a nonconformity once its corrective action is done.",
        grammar::nc_close,
    ),
    form(
        &[verb("nc show")],
        &[id(Kind::Nonconformity)],
        "Show a nonconformity.",
        grammar::nc_show,
    ),
    form(
        &[only(ADMIN, "role grant"), only(ADMIN, "role revoke")],
        &[
            shown("user", "@user"),
            choice("role", &["admin", "incident-manager", "change-manager", "cab", "ecab"], true),
        ],
        "Give someone a role, or take it away.",
        grammar::role,
    ),
    form(
        &[verb("oncall who")],
        &[slot("schedule", SlotKind::Word(None), false)],
        "Say who is on call now and next, and until when: on one schedule, or on each.",
        grammar::oncall_who,
    ),
    form(
        &[verb("oncall show")],
        &[word("schedule")],
        "List who is on call on a schedule over the next 14 days.",
        grammar::oncall_show,
    ),
    form(
        &[verb("oncall override")],
        &[
            word("schedule"),
            shown("user", "@user"),
            slot("from", SlotKind::Opt { shown: "2026-12-24T18:00Z", choices: &[] }, true),
            slot("to", SlotKind::Opt { shown: "2026-12-27T09:00Z", choices: &[] }, true),
        ],
        "Put someone on call instead of the rotation, from one time to another; overrides may not overlap.",
        grammar::oncall_override,
    ),
    form(
        &[verb("sla")],
        &[id(Kind::Incident)],
        "Show the SLA clocks of an incident.",
        grammar::sla,
    ),
    form(
        &[verb("report")],
        &[opt("from", "YYYY-MM-DD"), opt("to", "YYYY-MM-DD")],
        "Summarise incidents, changes and SLA performance for a period (not in this build yet).",
        grammar::report,
    ),
    form(
        &[verb("audit")],
        &[shown("record", "ID")],
        "Show the audit trail of a record, service or CI.",
        grammar::audit,
    ),
    form(
        &[verb("help")],
        &[slot("topic", SlotKind::Word(None), false)],
        "List all commands, or explain the commands of one topic.",
        grammar::help,
    ),
];

/// Every form's usage line, rendered once so errors can borrow them statically.
static USAGES: LazyLock<Vec<String>> = LazyLock::new(|| FORMS.iter().map(Form::render).collect());

/// The usage of every form of each topic, one per line.
static TOPIC_USAGE: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    TOPICS
        .iter()
        .map(|t| {
            let lines: Vec<&str> = forms_of(t.name).map(Form::usage).collect();
            (t.name, lines.join("\n"))
        })
        .collect()
});

/// One line per topic: its verbs, or the usage of a single-word command.
static OVERVIEW: LazyLock<String> = LazyLock::new(|| {
    let mut out = String::from("commands (`help <topic>` for details):");
    for t in TOPICS {
        let verbs = verbs_of(t.name);
        let line = if verbs.is_empty() {
            forms_of(t.name)
                .map(Form::usage)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!("{} {}", t.name, verbs.join("|"))
        };
        out.push('\n');
        out.push_str(&line);
    }
    out
});

pub fn forms_of(topic: &str) -> impl Iterator<Item = &'static Form> + '_ {
    FORMS
        .iter()
        .filter(move |f| f.names().any(|n| topic_word(n) == topic))
}

pub(super) fn topic_word(name: &str) -> &str {
    name.split_once(' ').map_or(name, |(t, _)| t)
}

/// The second words of a topic's commands; empty for single-word commands such as `sla`.
pub(super) fn verbs_of(topic: &str) -> Vec<&'static str> {
    forms_of(topic)
        .flat_map(|f| f.names())
        .filter_map(|n| n.split_once(' ').map(|(_, v)| v))
        .collect()
}

/// The form and verb of a command name such as `incident ack`.
pub fn form_named(name: &str) -> Option<(&'static Verb, &'static Form)> {
    FORMS
        .iter()
        .find_map(|f| f.verbs.iter().find(|v| v.name == name).map(|v| (v, f)))
}

pub(super) fn overview() -> &'static str {
    OVERVIEW.as_str()
}

pub(super) fn topic_usage(topic: &str) -> Option<&'static str> {
    TOPIC_USAGE
        .iter()
        .find(|(t, _)| *t == topic)
        .map(|(_, u)| u.as_str())
}
