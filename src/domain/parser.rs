//! The chat command parser: text in, a typed `Command` or a usage error for that one command out.

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;

use super::command::{
    ChangeAction, ChangeCmd, ChangeType, CiCmd, Command, IncidentAction, IncidentCmd,
    IncidentFilter, Level, Mention, NcCmd, ProblemAction, ProblemCmd, ReleaseCmd, RequestCmd, Role,
    RoleCmd, ServiceCmd, Window,
};
use super::ids::{Actor, Kind, RecordId};

/// The longest command text accepted, in characters: chat messages are short, and a bound keeps
/// every regex and error message cheap.
pub const MAX_CHARS: usize = 4000;

/// What went wrong with a command's text, with the usage line of the command it was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}\nusage: {usage}")]
pub struct UsageError {
    /// The command the text was meant to be, such as `incident raise`, or `""` when unknown.
    pub command: &'static str,
    pub message: String,
    pub usage: &'static str,
}

/// One line of the grammar: the command names it covers, its usage and a one-sentence explanation.
struct Form {
    names: &'static [&'static str],
    usage: &'static str,
    about: &'static str,
}

/// Help topics, in overview order; every command name starts with one of them.
const TOPICS: &[(&str, &str)] = &[
    (
        "incident",
        "Incidents are unplanned interruptions or degradations of a service.",
    ),
    (
        "request",
        "Service requests are routine asks users make of a service.",
    ),
    (
        "problem",
        "Problems are the underlying causes of one or more incidents.",
    ),
    (
        "change",
        "Changes are planned modifications to services, approved before they start.",
    ),
    (
        "release",
        "Releases are versions of software deployed to environments.",
    ),
    (
        "service",
        "Services are what you deliver; incidents, changes and CIs belong to them.",
    ),
    (
        "ci",
        "Configuration items are the components services are built from.",
    ),
    (
        "nc",
        "Nonconformities are departures from the process, each with a corrective action.",
    ),
    (
        "role",
        "Roles say who may do what; grants and revocations are audited.",
    ),
    (
        "sla",
        "SLA clocks measure response and resolution time against the targets.",
    ),
    (
        "report",
        "Reports summarise service management for a period.",
    ),
    (
        "audit",
        "The audit trail records every action and refusal on a record.",
    ),
    ("help", "Help lists the commands and explains each."),
];

const FORMS: &[Form] = &[
    Form {
        names: &["incident raise"],
        usage: "incident raise <title> [impact:high|medium|low] [urgency:high|medium|low] [service:NAME] [ci:NAME] [security]",
        about: "Record a new incident; impact and urgency set its priority, `security` marks it as a security incident.",
    },
    Form {
        names: &["incident ack", "incident resolve", "incident close", "incident reopen"],
        usage: "incident ack|resolve|close|reopen INC-n [text]",
        about: "Acknowledge, resolve, close or reopen an incident, with an optional note.",
    },
    Form {
        names: &["incident show"],
        usage: "incident show INC-n",
        about: "Show an incident with its priority, assignee and SLA clocks.",
    },
    Form {
        names: &["incident assign"],
        usage: "incident assign INC-n @user",
        about: "Make someone the assignee of an incident.",
    },
    Form {
        names: &["incident note"],
        usage: "incident note INC-n <text>",
        about: "Add a note to the timeline of an incident.",
    },
    Form {
        names: &["incident list"],
        usage: "incident list [open|mine|breached|all]",
        about: "List open incidents (the default), yours, those past an SLA target, or all.",
    },
    Form {
        names: &["incident major"],
        usage: "incident major INC-n",
        about: "Declare a major incident: it gets a linked problem to find the underlying cause.",
    },
    Form {
        names: &["incident priority"],
        usage: "incident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]",
        about: "Re-assess an incident's impact or urgency (at least one); its priority and SLA due times follow.",
    },
    Form {
        names: &["request raise"],
        usage: "request raise <title> [service:NAME]",
        about: "Record a new service request.",
    },
    Form {
        names: &["request fulfil", "request close"],
        usage: "request fulfil|close REQ-n [text]",
        about: "Mark a service request fulfilled, or close it, with an optional note.",
    },
    Form {
        names: &["request show"],
        usage: "request show REQ-n",
        about: "Show a service request.",
    },
    Form {
        names: &["problem open"],
        usage: "problem open <title> [from:INC-1,INC-2]",
        about: "Open a problem, optionally linked to the incidents it explains.",
    },
    Form {
        names: &["problem link"],
        usage: "problem link PRB-n INC-n",
        about: "Link an incident to a problem.",
    },
    Form {
        names: &["problem rootcause", "problem workaround", "problem resolve", "problem close"],
        usage: "problem rootcause|workaround|resolve|close PRB-n <text>",
        about: "Record the root cause or a workaround of a problem, or resolve or close it.",
    },
    Form {
        names: &["problem show"],
        usage: "problem show PRB-n",
        about: "Show a problem with its linked incidents.",
    },
    Form {
        names: &["change request"],
        usage: "change request <title> type:standard|normal|emergency [risk:low|medium|high] [service:NAME] [window:2026-12-01T22:00Z..2026-12-01T23:00Z] [template:NAME]",
        about: "Request a change; standard changes follow a pre-approved template, normal and emergency ones need CAB or ECAB approval.",
    },
    Form {
        names: &[
            "change submit",
            "change approve",
            "change reject",
            "change start",
            "change complete",
            "change fail",
            "change rollback",
            "change review",
            "change close",
        ],
        usage: "change submit|approve|reject|start|complete|fail|rollback|review|close CHG-n [text]",
        about: "Move a change through its lifecycle: submit it, vote on it, implement it, review and close it.",
    },
    Form {
        names: &["change show"],
        usage: "change show CHG-n",
        about: "Show a change with its votes, window and linked pull requests.",
    },
    Form {
        names: &["change link"],
        usage: "change link CHG-n owner/repo#123",
        about: "Link a GitHub pull request to a change.",
    },
    Form {
        names: &["release create"],
        usage: "release create <version> [repo:owner/name] [CHG-1 CHG-2 ...]",
        about: "Record a release and the changes it ships.",
    },
    Form {
        names: &["release deploy"],
        usage: "release deploy REL-n env:NAME",
        about: "Record the deployment of a release to an environment.",
    },
    Form {
        names: &["release rollback"],
        usage: "release rollback REL-n [text]",
        about: "Record that a release was rolled back, with an optional reason.",
    },
    Form {
        names: &["release show"],
        usage: "release show REL-n",
        about: "Show a release with its changes and deployments.",
    },
    Form {
        names: &["service add"],
        usage: "service add <name> [owner:@user]",
        about: "Add a service to the catalogue, optionally with its owner.",
    },
    Form {
        names: &["service show"],
        usage: "service show <name>",
        about: "Show a service and its owner.",
    },
    Form {
        names: &["ci add"],
        usage: "ci add <name> [type:KIND] [service:NAME] [depends:NAME,...]",
        about: "Add a configuration item, its service and what it depends on.",
    },
    Form {
        names: &["ci show"],
        usage: "ci show <name>",
        about: "Show a configuration item with its dependencies.",
    },
    Form {
        names: &["nc raise"],
        usage: "nc raise <title> [record:ID]",
        about: "Record a nonconformity by hand, optionally about one record.",
    },
    Form {
        names: &["nc list"],
        usage: "nc list [open]",
        about: "List nonconformities, or only the open ones.",
    },
    Form {
        names: &["nc correct"],
        usage: "nc correct NC-n <corrective action>",
        about: "Record the corrective action taken for a nonconformity.",
    },
    Form {
        names: &["nc close"],
        usage: "nc close NC-n",
        about: "Close a nonconformity once its corrective action is done.",
    },
    Form {
        names: &["nc show"],
        usage: "nc show NC-n",
        about: "Show a nonconformity.",
    },
    Form {
        names: &["role grant", "role revoke"],
        usage: "role grant|revoke @user admin|incident-manager|change-manager|cab|ecab",
        about: "Give someone a role, or take it away.",
    },
    Form {
        names: &["sla"],
        usage: "sla INC-n",
        about: "Show the SLA clocks of an incident.",
    },
    Form {
        names: &["report"],
        usage: "report [from:YYYY-MM-DD] [to:YYYY-MM-DD]",
        about: "Summarise incidents, changes and SLA performance for a period (not in this build yet).",
    },
    Form {
        names: &["audit"],
        usage: "audit ID",
        about: "Show the audit trail of a record, service or CI.",
    },
    Form {
        names: &["help"],
        usage: "help [topic]",
        about: "List all commands, or explain the commands of one topic.",
    },
];

/// The usage of every form of each topic, one per line; built once so errors can borrow it statically.
static TOPIC_USAGE: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    TOPICS
        .iter()
        .map(|(topic, _)| {
            let lines: Vec<&str> = forms_of(topic).map(|f| f.usage).collect();
            (*topic, lines.join("\n"))
        })
        .collect()
});

/// One line per topic: its verbs, or the usage of a single-word command.
static OVERVIEW: LazyLock<String> = LazyLock::new(|| {
    let mut out = String::from("commands (`help <topic>` for details):");
    for (topic, _) in TOPICS {
        let verbs = verbs_of(topic);
        let line = if verbs.is_empty() {
            forms_of(topic)
                .map(|f| f.usage)
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!("{topic} {}", verbs.join("|"))
        };
        out.push('\n');
        out.push_str(&line);
    }
    out
});

fn forms_of(topic: &str) -> impl Iterator<Item = &'static Form> + '_ {
    FORMS
        .iter()
        .filter(move |f| f.names.iter().any(|n| topic_word(n) == topic))
}

fn topic_word(name: &str) -> &str {
    name.split_once(' ').map_or(name, |(t, _)| t)
}

/// The second words of a topic's commands; empty for single-word commands such as `sla`.
fn verbs_of(topic: &str) -> Vec<&'static str> {
    forms_of(topic)
        .flat_map(|f| f.names.iter())
        .filter_map(|n| n.split_once(' ').map(|(_, v)| v))
        .collect()
}

fn form_named(name: &str) -> Option<(&'static str, &'static Form)> {
    FORMS
        .iter()
        .find_map(|f| f.names.iter().find(|n| **n == name).map(|n| (*n, f)))
}

fn overview() -> &'static str {
    OVERVIEW.as_str()
}

fn topic_usage(topic: &str) -> Option<&'static str> {
    TOPIC_USAGE
        .iter()
        .find(|(t, _)| *t == topic)
        .map(|(_, u)| u.as_str())
}

/// The usage of one command (`incident raise`) or of every command of a topic (`incident`).
pub fn usage(command: &str) -> Option<&'static str> {
    let command = command.trim().to_lowercase();
    form_named(&command)
        .map(|(_, f)| f.usage)
        .or_else(|| topic_usage(&command))
}

/// Help text: an overview of all commands, or the usage lines and explanations of one topic.
pub fn help(topic: Option<&str>) -> Result<String, UsageError> {
    let Some(topic) = topic else {
        return Ok(overview().to_string());
    };
    let (name, about) = known_topic(topic)?;
    let mut out = format!("{name}: {about}");
    for form in forms_of(name) {
        out.push_str(&format!("\n{}\n    {}", form.usage, form.about));
    }
    Ok(out)
}

fn known_topic(topic: &str) -> Result<(&'static str, &'static str), UsageError> {
    let wanted = topic.trim().to_lowercase();
    TOPICS
        .iter()
        .find(|(t, _)| *t == wanted)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = TOPICS.iter().map(|(t, _)| *t).collect();
            let help = Ctx::of("help");
            help.err(format!(
                "unknown help topic `{}`; topics: {}",
                shown(topic),
                names.join(", ")
            ))
        })
}

/// User text quoted in an error, cut short so a long token cannot flood the reply.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("parser regexes are valid")
}

/// A token is a quoted group (the closing quote must end the word, so `'it's down'` is one token),
/// a stray opening quote (unterminated), or a plain word.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r#"(?s)"(.*?)"(?:\s|$)|'(.*?)'(?:\s|$)|“(.*?)”(?:\s|$)|‘(.*?)’(?:\s|$)|(["'“‘])|([^\s"'“‘]\S*)"#,
    )
});
static NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9_.-]{1,100}$"));
static VERSION: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$"));
static REPO: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"));
static PULL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#([0-9]+)$"));
static PLATFORM_MENTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^<@!?([A-Za-z0-9]+)(?:\|[^<>]*)?>$"));
static NAME_MENTION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^@([A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?)$"));
/// RFC 3339 without seconds, which people type: `2026-12-01T22:00Z`.
static SHORT_TIME: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2})([Zz]|[+-][0-9]{2}:[0-9]{2})$")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| regex(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tok<'a> {
    text: &'a str,
    /// Quoted tokens are always literal words: never options, flags or IDs' companions.
    quoted: bool,
}

fn tokenize(text: &str) -> Result<Vec<Tok<'_>>, String> {
    let mut toks = Vec::new();
    for caps in TOKEN.captures_iter(text) {
        if let Some(q) = (1..=4).find_map(|i| caps.get(i)) {
            toks.push(Tok {
                text: q.as_str(),
                quoted: true,
            });
        } else if let Some(word) = caps.get(6) {
            toks.push(Tok {
                text: word.as_str(),
                quoted: false,
            });
        } else {
            let from = caps
                .get(5)
                .map_or("", |m| text.get(m.start()..).unwrap_or(""));
            let start = from.split_whitespace().next().unwrap_or("");
            return Err(format!("unterminated quote in `{}`", shown(start)));
        }
    }
    Ok(toks)
}

/// The command a text names, and how many tokens its name took.
struct Resolved {
    ctx: Ctx,
    words: usize,
}

fn resolve(top: &str, verb: Option<&str>) -> Result<Resolved, UsageError> {
    let lower = top.to_lowercase();
    if let Some((name, form)) = form_named(&lower) {
        return Ok(Resolved {
            ctx: Ctx {
                name,
                usage: form.usage,
            },
            words: 1,
        });
    }
    let Some(&(topic, _)) = TOPICS.iter().find(|(t, _)| *t == lower) else {
        return Err(UsageError {
            command: "",
            message: format!("unknown command `{}`; try `help`", shown(top)),
            usage: overview(),
        });
    };
    let group = Ctx {
        name: topic,
        usage: topic_usage(topic).unwrap_or(overview()),
    };
    let verbs = verbs_of(topic).join(", ");
    let Some(verb) = verb else {
        return Err(group.err(format!("missing {topic} command: one of {verbs}")));
    };
    let mut verb_lower = verb.to_lowercase();
    if topic == "request" && verb_lower == "fulfill" {
        verb_lower = "fulfil".into();
    }
    match form_named(&format!("{topic} {verb_lower}")) {
        Some((name, form)) => Ok(Resolved {
            ctx: Ctx {
                name,
                usage: form.usage,
            },
            words: 2,
        }),
        None => Err(group.err(format!(
            "unknown {topic} command `{}`; one of {verbs}",
            shown(verb)
        ))),
    }
}

/// An error for text that could not be tokenised, naming the command its first words suggest.
fn early_error(text: &str, message: String) -> UsageError {
    let mut words = text.split_whitespace();
    let (command, usage) = match words.next().map(|top| resolve(top, words.next())) {
        Some(Ok(r)) => (r.ctx.name, r.ctx.usage),
        Some(Err(e)) => (e.command, e.usage),
        None => ("", overview()),
    };
    UsageError {
        command,
        message,
        usage,
    }
}

/// Parse one chat command. Adapters strip `/ops` and bot mentions before calling this.
pub fn parse(text: &str) -> Result<Command, UsageError> {
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        let message = format!("command too long: {chars} characters, at most {MAX_CHARS}");
        return Err(early_error(text, message));
    }
    // Before anything else reads it: such text is refused whatever command it was meant to be.
    if let Err(bad) = super::text::check(text) {
        return Err(early_error(text, bad.to_string()));
    }
    let toks = tokenize(text).map_err(|m| early_error(text, m))?;
    parse_toks(&toks)
}

/// One piece of a command given in parts (Discord's structured commands): a plain word such as a
/// record ID, a `key:value` option, or free text taken literally (never read as options or quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Read as an unquoted word of the text, so it may also be a flag such as `security`.
    Word(&'a str),
    /// Read as the unquoted word `key:value`; an unknown key leaves it a plain word, as in text.
    Opt(&'a str, &'a str),
    /// Blank text is left out, so an empty optional field means the same as an absent one.
    Literal(&'a str),
}

impl Part<'_> {
    /// Characters as typed, to apply the same `MAX_CHARS` bound as `parse`.
    fn chars(&self) -> usize {
        match self {
            Part::Word(s) | Part::Literal(s) => s.chars().count(),
            Part::Opt(k, v) => k.chars().count() + 1 + v.chars().count(),
        }
    }
}

/// Parses a command given as its name (`"incident raise"`, `"change approve"`) and parts; the
/// result and the errors are exactly those of `parse` for the equivalent text.
///
/// Only `name` names the command, so a part is never taken for its verb. Parts that text could
/// not express (a word or option value containing whitespace) are refused rather than split.
pub fn parse_parts(name: &str, parts: &[Part<'_>]) -> Result<Command, UsageError> {
    let chars = name.chars().count() + parts.iter().map(Part::chars).sum::<usize>();
    if chars > MAX_CHARS {
        let message = format!("command too long: {chars} characters, at most {MAX_CHARS}");
        return Err(early_error(name, message));
    }
    let texts = std::iter::once(name).chain(parts.iter().flat_map(|p| match *p {
        Part::Word(w) | Part::Literal(w) => [w, ""],
        Part::Opt(k, v) => [k, v],
    }));
    for t in texts {
        if let Err(bad) = super::text::check(t) {
            return Err(early_error(name, bad.to_string()));
        }
    }
    let mut words = name.split_whitespace();
    let Some(top) = words.next() else {
        return parse_toks(&[]);
    };
    let c = resolve(top, words.next())?.ctx;
    // The same whitespace as the tokeniser's `\s`, which is Unicode's White_Space.
    let spaced = |s: &str| s.chars().any(char::is_whitespace);
    // Options are joined into owned `key:value` words first, so the tokens can borrow them.
    let mut owned: Vec<(Cow<'_, str>, bool)> = name
        .split_whitespace()
        .map(|w| (Cow::Borrowed(w), false))
        .collect();
    for part in parts {
        match *part {
            Part::Word("") => return Err(c.err("empty value: give one word")),
            // Splitting would shift every later word, e.g. turn an ID's tail into a note.
            Part::Word(w) if spaced(w) => {
                return Err(c.err(format!("`{}` must be one word", shown(w))))
            }
            Part::Word(w) => owned.push((Cow::Borrowed(w), false)),
            Part::Opt(k, _) if k.is_empty() || k.contains(':') || spaced(k) => {
                return Err(c.err(format!("`{}` is not an option name", shown(k))))
            }
            // Some checks trim (lists such as `depends:db, cache`), so refuse rather than mend.
            Part::Opt(k, v) if spaced(v) => {
                return Err(c.err(format!("`{}` must be one word", shown(&format!("{k}:{v}")))))
            }
            Part::Opt(k, v) => owned.push((Cow::Owned(format!("{k}:{v}")), false)),
            Part::Literal(t) if t.trim().is_empty() => {}
            Part::Literal(t) => owned.push((Cow::Borrowed(t), true)),
        }
    }
    let toks: Vec<Tok<'_>> = owned
        .iter()
        .map(|(text, quoted)| Tok {
            text,
            quoted: *quoted,
        })
        .collect();
    parse_toks(&toks)
}

/// The grammar after tokenising, shared by `parse` and `parse_parts`.
fn parse_toks(toks: &[Tok]) -> Result<Command, UsageError> {
    let Some(top) = toks.first() else {
        return Err(UsageError {
            command: "",
            message: "empty command; try `help`".into(),
            usage: overview(),
        });
    };
    let r = resolve(top.text, toks.get(1).map(|t| t.text))?;
    let rest = toks.get(r.words..).unwrap_or_default();
    let c = r.ctx;
    let (topic, verb) = c.name.split_once(' ').unwrap_or((c.name, ""));
    match topic {
        "help" => {
            let mut a = c.args(rest, &[], &[])?;
            let topic = a.next().map(known_topic).transpose()?;
            a.end()?;
            Ok(Command::Help {
                topic: topic.map(|(t, _)| t.to_string()),
            })
        }
        "incident" => incident(c, verb, rest).map(Command::Incident),
        "request" => request(c, verb, rest).map(Command::Request),
        "problem" => problem(c, verb, rest).map(Command::Problem),
        "change" => change(c, verb, rest).map(Command::Change),
        "release" => release(c, verb, rest).map(Command::Release),
        "service" => service(c, verb, rest).map(Command::Service),
        "ci" => ci(c, verb, rest).map(Command::Ci),
        "nc" => nc(c, verb, rest).map(Command::Nc),
        "role" => role(c, verb, rest).map(Command::Role),
        "sla" => {
            let mut a = c.args(rest, &[], &[])?;
            let id = a.id(Kind::Incident)?;
            a.end()?;
            Ok(Command::Sla { id })
        }
        "report" => {
            let a = c.args(rest, &["from", "to"], &[])?;
            let from = a.opt_with("from", Ctx::date)?;
            let to = a.opt_with("to", Ctx::date)?;
            a.end()?;
            if let (Some(f), Some(t)) = (from, to) {
                if f > t {
                    return Err(c.err(format!("from:{f} is after to:{t}")));
                }
            }
            Ok(Command::Report { from, to })
        }
        "audit" => {
            let mut a = c.args(rest, &[], &[])?;
            let target = a.next().ok_or_else(|| c.err("missing record ID or name"))?;
            a.end()?;
            let record = match target.parse::<RecordId>() {
                Ok(id) => id.to_string(),
                Err(_) if NAME.is_match(target) => target.to_string(),
                Err(_) => {
                    return Err(c.err(format!(
                        "`{}` is neither a record ID such as INC-3 nor a service or CI name",
                        shown(target)
                    )))
                }
            };
            Ok(Command::Audit { record })
        }
        _ => Err(c.err(format!("unknown command `{}`", c.name))),
    }
}

fn incident(c: Ctx, verb: &str, rest: &[Tok]) -> Result<IncidentCmd, UsageError> {
    if verb == "raise" {
        let mut a = c.args(rest, &["impact", "urgency", "service", "ci"], &["security"])?;
        return Ok(IncidentCmd::Raise {
            impact: a.opt_with("impact", Ctx::level)?,
            urgency: a.opt_with("urgency", Ctx::level)?,
            service: a.opt_with("service", Ctx::name)?,
            ci: a.opt_with("ci", Ctx::name)?,
            security: a.flag("security"),
            title: a.required("title")?,
        });
    }
    if verb == "priority" {
        let mut a = c.args(rest, &["impact", "urgency"], &[])?;
        let id = a.id(Kind::Incident)?;
        a.end()?;
        let impact = a.opt_with("impact", Ctx::level)?;
        let urgency = a.opt_with("urgency", Ctx::level)?;
        if impact.is_none() && urgency.is_none() {
            return Err(c.err(
                "missing impact:high|medium|low or urgency:high|medium|low; give at least one",
            ));
        }
        return Ok(IncidentCmd::Priority {
            id,
            impact,
            urgency,
        });
    }
    let mut a = c.args(rest, &[], &[])?;
    if verb == "list" {
        let filter = match a.next() {
            None => IncidentFilter::default(),
            Some(f) => c.one_of(
                "",
                f,
                &[
                    ("open", IncidentFilter::Open),
                    ("mine", IncidentFilter::Mine),
                    ("breached", IncidentFilter::Breached),
                    ("all", IncidentFilter::All),
                ],
            )?,
        };
        a.end()?;
        return Ok(IncidentCmd::List { filter });
    }
    let id = a.id(Kind::Incident)?;
    let action = match verb {
        "show" => {
            a.end()?;
            return Ok(IncidentCmd::Show { id });
        }
        "major" => {
            a.end()?;
            return Ok(IncidentCmd::Major { id });
        }
        "assign" => {
            let assignee = c.mention(a.next())?;
            a.end()?;
            return Ok(IncidentCmd::Assign { id, assignee });
        }
        "note" => {
            return Ok(IncidentCmd::Note {
                id,
                text: a.required("note text")?,
            })
        }
        "ack" => IncidentAction::Ack,
        "resolve" => IncidentAction::Resolve,
        "close" => IncidentAction::Close,
        "reopen" => IncidentAction::Reopen,
        other => return Err(c.err(format!("unknown incident command `{other}`"))),
    };
    Ok(IncidentCmd::Act {
        action,
        id,
        text: a.text(),
    })
}

fn request(c: Ctx, verb: &str, rest: &[Tok]) -> Result<RequestCmd, UsageError> {
    if verb == "raise" {
        let mut a = c.args(rest, &["service"], &[])?;
        return Ok(RequestCmd::Raise {
            service: a.opt_with("service", Ctx::name)?,
            title: a.required("title")?,
        });
    }
    let mut a = c.args(rest, &[], &[])?;
    let id = a.id(Kind::Request)?;
    Ok(match verb {
        "fulfil" => RequestCmd::Fulfil { id, text: a.text() },
        "close" => RequestCmd::Close { id, text: a.text() },
        _ => {
            a.end()?;
            RequestCmd::Show { id }
        }
    })
}

fn problem(c: Ctx, verb: &str, rest: &[Tok]) -> Result<ProblemCmd, UsageError> {
    if verb == "open" {
        let mut a = c.args(rest, &["from"], &[])?;
        let from = match a.opt("from") {
            None => Vec::new(),
            Some(list) => c.list(list, "incident ID", |v| {
                c.record_id(Some(v), Kind::Incident)
            })?,
        };
        return Ok(ProblemCmd::Open {
            title: a.required("title")?,
            from,
        });
    }
    let mut a = c.args(rest, &[], &[])?;
    let id = a.id(Kind::Problem)?;
    let action = match verb {
        "link" => {
            let incident = a.id(Kind::Incident)?;
            a.end()?;
            return Ok(ProblemCmd::Link { id, incident });
        }
        "show" => {
            a.end()?;
            return Ok(ProblemCmd::Show { id });
        }
        "rootcause" => ProblemAction::RootCause,
        "workaround" => ProblemAction::Workaround,
        "resolve" => ProblemAction::Resolve,
        _ => ProblemAction::Close,
    };
    let text = a.required(match action {
        ProblemAction::RootCause => "root cause",
        ProblemAction::Workaround => "workaround",
        _ => "text",
    })?;
    Ok(ProblemCmd::Act { action, id, text })
}

const CHANGE_ACTIONS: [ChangeAction; 9] = [
    ChangeAction::Submit,
    ChangeAction::Approve,
    ChangeAction::Reject,
    ChangeAction::Start,
    ChangeAction::Complete,
    ChangeAction::Fail,
    ChangeAction::Rollback,
    ChangeAction::Review,
    ChangeAction::Close,
];

fn change(c: Ctx, verb: &str, rest: &[Tok]) -> Result<ChangeCmd, UsageError> {
    if verb == "request" {
        let keys = ["type", "risk", "service", "window", "template"];
        let mut a = c.args(rest, &keys, &[])?;
        let change_type = a
            .opt_with("type", |c, _, v| {
                c.one_of(
                    "type:",
                    v,
                    &[
                        ("standard", ChangeType::Standard),
                        ("normal", ChangeType::Normal),
                        ("emergency", ChangeType::Emergency),
                    ],
                )
            })?
            .ok_or_else(|| c.err("missing type:standard|normal|emergency"))?;
        return Ok(ChangeCmd::Request {
            change_type,
            risk: a.opt_with("risk", Ctx::level)?,
            service: a.opt_with("service", Ctx::name)?,
            window: a.opt_with("window", Ctx::window)?,
            template: a.opt_with("template", Ctx::name)?,
            title: a.required("title")?,
        });
    }
    let mut a = c.args(rest, &[], &[])?;
    let id = a.id(Kind::Change)?;
    match verb {
        "show" => {
            a.end()?;
            Ok(ChangeCmd::Show { id })
        }
        "link" => {
            let pull = a
                .next()
                .ok_or_else(|| c.err("missing pull request owner/repo#123"))?;
            a.end()?;
            let caps = PULL.captures(pull).ok_or_else(|| {
                c.err(format!(
                    "`{}` is not a pull request: use owner/repo#123",
                    shown(pull)
                ))
            })?;
            let repo = caps.get(1).map_or("", |m| m.as_str()).to_string();
            let number = caps
                .get(2)
                .and_then(|m| m.as_str().parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    c.err(format!(
                        "`{}` has no valid pull request number",
                        shown(pull)
                    ))
                })?;
            Ok(ChangeCmd::Link { id, repo, number })
        }
        _ => {
            let action = CHANGE_ACTIONS
                .into_iter()
                .find(|act| act.verb() == verb)
                .ok_or_else(|| c.err(format!("unknown change command `{verb}`")))?;
            Ok(ChangeCmd::Act {
                action,
                id,
                text: a.text(),
            })
        }
    }
}

fn release(c: Ctx, verb: &str, rest: &[Tok]) -> Result<ReleaseCmd, UsageError> {
    match verb {
        "create" => {
            let mut a = c.args(rest, &["repo"], &[])?;
            let version = a.next().ok_or_else(|| c.err("missing version"))?;
            if version.parse::<RecordId>().is_ok() || !VERSION.is_match(version) {
                return Err(c.err(format!(
                    "`{}` is not a version such as 1.4.0",
                    shown(version)
                )));
            }
            let mut changes = Vec::new();
            while let Some(word) = a.next() {
                let id = c.record_id(Some(word), Kind::Change)?;
                if !changes.contains(&id) {
                    changes.push(id);
                }
            }
            let repo = a.opt_with("repo", |c, _, v| {
                if REPO.is_match(v) {
                    Ok(v.to_string())
                } else {
                    Err(c.err(format!(
                        "`repo:{}` is not a repository: use repo:owner/name",
                        shown(v)
                    )))
                }
            })?;
            Ok(ReleaseCmd::Create {
                version: version.to_string(),
                repo,
                changes,
            })
        }
        "deploy" => {
            let mut a = c.args(rest, &["env"], &[])?;
            let id = a.id(Kind::Release)?;
            a.end()?;
            let env = a
                .opt_with("env", Ctx::name)?
                .ok_or_else(|| c.err("missing env:NAME"))?;
            Ok(ReleaseCmd::Deploy { id, env })
        }
        _ => {
            let mut a = c.args(rest, &[], &[])?;
            let id = a.id(Kind::Release)?;
            if verb == "rollback" {
                return Ok(ReleaseCmd::Rollback { id, text: a.text() });
            }
            a.end()?;
            Ok(ReleaseCmd::Show { id })
        }
    }
}

fn service(c: Ctx, verb: &str, rest: &[Tok]) -> Result<ServiceCmd, UsageError> {
    let keys: &[&str] = if verb == "add" { &["owner"] } else { &[] };
    let mut a = c.args(rest, keys, &[])?;
    let name = a.name("service name")?;
    a.end()?;
    if verb == "show" {
        return Ok(ServiceCmd::Show { name });
    }
    let owner = a.opt_with("owner", |c, _, v| c.mention(Some(v)))?;
    Ok(ServiceCmd::Add { name, owner })
}

fn ci(c: Ctx, verb: &str, rest: &[Tok]) -> Result<CiCmd, UsageError> {
    let keys: &[&str] = if verb == "add" {
        &["type", "service", "depends"]
    } else {
        &[]
    };
    let mut a = c.args(rest, keys, &[])?;
    let name = a.name("CI name")?;
    a.end()?;
    if verb == "show" {
        return Ok(CiCmd::Show { name });
    }
    let depends = match a.opt("depends") {
        None => Vec::new(),
        Some(list) => c.list(list, "CI name", |v| c.name_value("", v))?,
    };
    Ok(CiCmd::Add {
        name,
        ci_type: a.opt_with("type", Ctx::name)?,
        service: a.opt_with("service", Ctx::name)?,
        depends,
    })
}

fn nc(c: Ctx, verb: &str, rest: &[Tok]) -> Result<NcCmd, UsageError> {
    if verb == "raise" {
        let mut a = c.args(rest, &["record"], &[])?;
        let record = a.opt_with("record", |c, _, v| {
            v.parse::<RecordId>().map_err(|_| {
                c.err(format!(
                    "`record:{}` is not a record ID such as INC-3",
                    shown(v)
                ))
            })
        })?;
        return Ok(NcCmd::Raise {
            title: a.required("title")?,
            record,
        });
    }
    let mut a = c.args(rest, &[], &[])?;
    if verb == "list" {
        let open_only = match a.next() {
            None => false,
            Some(f) => c.one_of("", f, &[("open", true), ("all", false)])?,
        };
        a.end()?;
        return Ok(NcCmd::List { open_only });
    }
    let id = a.id(Kind::Nonconformity)?;
    if verb == "correct" {
        return Ok(NcCmd::Correct {
            id,
            action: a.required("corrective action")?,
        });
    }
    a.end()?;
    Ok(if verb == "close" {
        NcCmd::Close { id }
    } else {
        NcCmd::Show { id }
    })
}

fn role(c: Ctx, verb: &str, rest: &[Tok]) -> Result<RoleCmd, UsageError> {
    let mut a = c.args(rest, &[], &[])?;
    let user = c.mention(a.next())?;
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let role = match a.next() {
        None => return Err(c.err(format!("missing role: one of {}", roles.join("|")))),
        Some(r) => Role::parse(r).ok_or_else(|| {
            c.err(format!(
                "`{}` is not a role: use {}",
                shown(r),
                roles.join("|")
            ))
        })?,
    };
    a.end()?;
    Ok(if verb == "grant" {
        RoleCmd::Grant { user, role }
    } else {
        RoleCmd::Revoke { user, role }
    })
}

/// The command being parsed: every error names it and carries its usage.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    name: &'static str,
    usage: &'static str,
}

impl Ctx {
    fn of(name: &'static str) -> Ctx {
        Ctx {
            name,
            usage: usage(name).unwrap_or(overview()),
        }
    }

    fn err(self, message: impl Into<String>) -> UsageError {
        UsageError {
            command: self.name,
            message: message.into(),
            usage: self.usage,
        }
    }

    /// Split tokens into `key:value` options with a known key, bare flags, and the other words.
    fn args<'a>(
        self,
        toks: &[Tok<'a>],
        keys: &[&'static str],
        flags: &[&'static str],
    ) -> Result<Args<'a>, UsageError> {
        let mut a = Args {
            c: self,
            words: Vec::new(),
            pos: 0,
            opts: Vec::new(),
            flags: Vec::new(),
        };
        for tok in toks {
            if tok.quoted {
                a.words.push(tok.text);
                continue;
            }
            let option = tok.text.split_once(':').and_then(|(key, value)| {
                keys.iter()
                    .find(|k| k.eq_ignore_ascii_case(key))
                    .map(|k| (*k, value))
            });
            let flag = flags.iter().find(|f| f.eq_ignore_ascii_case(tok.text));
            if let Some((key, value)) = option {
                if a.opts.iter().any(|(k, _)| *k == key) {
                    return Err(self.err(format!("option `{key}:` given twice")));
                }
                if value.is_empty() {
                    return Err(self.err(format!(
                        "option `{key}:` needs a value right after the colon; quote the text if `{key}:` is part of it"
                    )));
                }
                a.opts.push((key, value));
            } else if let Some(flag) = flag {
                if a.flags.contains(flag) {
                    return Err(self.err(format!("`{flag}` given twice")));
                }
                a.flags.push(flag);
            } else {
                a.words.push(tok.text);
            }
        }
        Ok(a)
    }

    fn one_of<T: Copy>(
        self,
        prefix: &str,
        value: &str,
        allowed: &[(&str, T)],
    ) -> Result<T, UsageError> {
        allowed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(value))
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.err(format!(
                    "`{prefix}{}` is not allowed: use {prefix}{}",
                    shown(value),
                    names.join("|")
                ))
            })
    }

    fn level(self, key: &str, value: &str) -> Result<Level, UsageError> {
        let levels = [
            ("high", Level::High),
            ("medium", Level::Medium),
            ("low", Level::Low),
        ];
        self.one_of(&format!("{key}:"), value, &levels)
    }

    fn name(self, key: &str, value: &str) -> Result<String, UsageError> {
        self.name_value(&format!("{key}:"), value)
    }

    /// Service, CI, template and environment names: one word of letters, digits, `-`, `_`, `.`;
    /// `prefix` is the option key, if any, to echo the token as typed.
    fn name_value(self, prefix: &str, value: &str) -> Result<String, UsageError> {
        if NAME.is_match(value) {
            Ok(value.to_string())
        } else {
            Err(self.err(format!(
                "`{prefix}{}` is not a valid name: use up to 100 letters, digits, `-`, `_` or `.`",
                shown(value)
            )))
        }
    }

    fn record_id(self, word: Option<&str>, kind: Kind) -> Result<RecordId, UsageError> {
        let (noun, prefix) = (kind.noun(), kind.prefix().unwrap_or("?"));
        let expected = format!("{} {noun} ID ({prefix}-n)", article(noun));
        let word = word.ok_or_else(|| self.err(format!("missing {noun} ID ({prefix}-n)")))?;
        match word.parse::<RecordId>() {
            Ok(id) if id.kind == kind => Ok(id),
            Ok(id) => Err(self.err(format!(
                "`{id}` is {} {} ID; expected {expected}",
                article(id.kind.noun()),
                id.kind.noun()
            ))),
            Err(_) => Err(self.err(format!("`{}` is not {expected}", shown(word)))),
        }
    }

    /// A comma-separated option value such as `INC-1,INC-2`; duplicates are dropped.
    fn list<T: PartialEq>(
        self,
        value: &str,
        what: &str,
        item: impl Fn(&str) -> Result<T, UsageError>,
    ) -> Result<Vec<T>, UsageError> {
        let mut out = Vec::new();
        for part in value.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(self.err(format!("empty {what} in `{}`", shown(value))));
            }
            let v = item(part)?;
            if !out.contains(&v) {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn mention(self, word: Option<&str>) -> Result<Mention, UsageError> {
        let word = word.ok_or_else(|| self.err("missing user: @name or a mention"))?;
        if let Some(id) = PLATFORM_MENTION.captures(word).and_then(|c| c.get(1)) {
            return Ok(Mention::PlatformId(id.as_str().to_string()));
        }
        let name = NAME_MENTION
            .captures(word)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
        match name {
            // `@platform:id` names an actor directly, so the platform must be one we know.
            Some(name) if !name.contains(':') || Actor::parse(name).is_ok() => {
                Ok(Mention::Name(name.to_string()))
            }
            _ => Err(self.err(format!(
                "`{}` is not a user: use @name, @platform:id or a mention",
                shown(word)
            ))),
        }
    }

    fn window(self, _key: &str, value: &str) -> Result<Window, UsageError> {
        let bad = || {
            self.err(format!(
                "`window:{}` is not a window: use window:2026-12-01T22:00Z..2026-12-01T23:00Z",
                shown(value)
            ))
        };
        let (start, end) = value.split_once("..").ok_or_else(bad)?;
        let (start, end) = (
            timestamp(start).ok_or_else(bad)?,
            timestamp(end).ok_or_else(bad)?,
        );
        if end <= start {
            return Err(self.err(format!(
                "window ends at {end} which is not after its start {start}"
            )));
        }
        Ok(Window { start, end })
    }

    fn date(self, key: &str, value: &str) -> Result<NaiveDate, UsageError> {
        let date = if DATE.is_match(value) {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
        } else {
            None
        };
        date.ok_or_else(|| {
            self.err(format!(
                "`{key}:{}` is not a date: use {key}:YYYY-MM-DD",
                shown(value)
            ))
        })
    }
}

fn timestamp(s: &str) -> Option<DateTime<Utc>> {
    let full = match SHORT_TIME.captures(s) {
        Some(c) => format!("{}:00{}", c.get(1)?.as_str(), c.get(2)?.as_str()),
        None => s.to_string(),
    };
    DateTime::parse_from_rfc3339(&full)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The tokens after the command words, split into positional words, options and flags.
struct Args<'a> {
    c: Ctx,
    words: Vec<&'a str>,
    pos: usize,
    opts: Vec<(&'static str, &'a str)>,
    flags: Vec<&'static str>,
}

impl<'a> Args<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.pos).copied();
        self.pos += usize::from(word.is_some());
        word
    }

    fn id(&mut self, kind: Kind) -> Result<RecordId, UsageError> {
        let word = self.next();
        self.c.record_id(word, kind)
    }

    fn name(&mut self, what: &str) -> Result<String, UsageError> {
        let word = self
            .next()
            .ok_or_else(|| self.c.err(format!("missing {what}")))?;
        self.c.name_value("", word)
    }

    /// The remaining words joined with single spaces, if there are any.
    fn text(&mut self) -> Option<String> {
        let rest = self.words.get(self.pos..).unwrap_or_default();
        self.pos = self.words.len();
        let words: Vec<&str> = rest
            .iter()
            .map(|w| w.trim())
            .filter(|w| !w.is_empty())
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    fn required(&mut self, what: &str) -> Result<String, UsageError> {
        self.text()
            .ok_or_else(|| self.c.err(format!("missing {what}")))
    }

    /// Refuse leftover words: `incident show INC-1 extra` is a mistake, not a note.
    fn end(&self) -> Result<(), UsageError> {
        let rest = self.words.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            Ok(())
        } else {
            Err(self.c.err(format!(
                "unexpected `{}`: `{}` takes nothing more",
                shown(&rest.join(" ")),
                self.c.name
            )))
        }
    }

    fn opt(&self, key: &str) -> Option<&'a str> {
        self.opts.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn opt_with<T>(
        &self,
        key: &str,
        parse: impl Fn(Ctx, &str, &str) -> Result<T, UsageError>,
    ) -> Result<Option<T>, UsageError> {
        self.opt(key).map(|v| parse(self.c, key, v)).transpose()
    }

    fn flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Command {
        parse(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
    }

    fn err(text: &str) -> UsageError {
        match parse(text) {
            Err(e) => e,
            Ok(cmd) => panic!("`{text}` should be refused, got {cmd:?}"),
        }
    }

    fn id(s: &str) -> RecordId {
        s.parse().expect("test ID")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn raise(title: &str) -> IncidentCmd {
        IncidentCmd::Raise {
            title: title.into(),
            impact: None,
            urgency: None,
            service: None,
            ci: None,
            security: false,
        }
    }

    // ---- help ----

    #[test]
    fn help_without_topic() {
        let cmd = ok("help");
        assert_eq!(cmd, Command::Help { topic: None });
    }

    #[test]
    fn help_with_topic_is_normalised_to_lower_case() {
        let cmd = ok("help Incident");
        assert_eq!(
            cmd,
            Command::Help {
                topic: Some("incident".into())
            }
        );
    }

    #[test]
    fn help_with_unknown_topic_lists_topics() {
        let e = err("help frobnicate");
        assert_eq!(e.command, "help");
        assert!(
            e.message.contains("unknown help topic `frobnicate`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("incident, request"), "{}", e.message);
    }

    #[test]
    fn help_text_overview_names_every_topic() {
        let text = help(None).expect("overview");
        for (topic, _) in TOPICS {
            assert!(
                text.lines().any(|l| l.starts_with(topic)),
                "{topic} missing from\n{text}"
            );
        }
        assert!(text.contains(
            "incident raise|ack|resolve|close|reopen|show|assign|note|list|major|priority"
        ));
    }

    #[test]
    fn help_text_for_each_topic_has_usage_and_explanations() {
        for (topic, _) in TOPICS {
            let text = help(Some(topic)).expect("topic help");
            assert!(text.starts_with(&format!("{topic}: ")), "{text}");
            for form in forms_of(topic) {
                assert!(text.contains(form.usage), "{topic}: {}", form.usage);
                assert!(text.contains(form.about), "{topic}: {}", form.about);
            }
        }
    }

    #[test]
    fn help_text_for_unknown_topic_is_an_error() {
        let e = help(Some("bogus")).expect_err("unknown topic");
        assert_eq!(e.command, "help");
        assert!(e.message.contains("topics: incident"), "{}", e.message);
    }

    #[test]
    fn usage_of_a_command_and_of_a_topic() {
        assert_eq!(
            usage("change link"),
            Some("change link CHG-n owner/repo#123")
        );
        assert_eq!(
            usage("INCIDENT ACK"),
            Some("incident ack|resolve|close|reopen INC-n [text]")
        );
        let all = usage("nc").expect("topic usage");
        assert_eq!(all.lines().count(), 5);
        assert_eq!(usage("frobnicate"), None);
    }

    // ---- incident ----

    #[test]
    fn incident_raise_with_unquoted_title() {
        let cmd = ok("incident raise Checkout down");
        assert_eq!(cmd, Command::Incident(raise("Checkout down")));
    }

    #[test]
    fn incident_raise_with_quoted_title_and_options() {
        let cmd = ok(
            r#"incident raise "Checkout down" impact:high urgency:low service:shop ci:db-1 security"#,
        );
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Raise {
                title: "Checkout down".into(),
                impact: Some(Level::High),
                urgency: Some(Level::Low),
                service: Some("shop".into()),
                ci: Some("db-1".into()),
                security: true,
            })
        );
    }

    #[test]
    fn incident_raise_options_anywhere_and_case_insensitive() {
        let cmd = ok("  Incident   RAISE  Impact:High Checkout  SECURITY down  ");
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Raise {
                title: "Checkout down".into(),
                impact: Some(Level::High),
                urgency: None,
                service: None,
                ci: None,
                security: true,
            })
        );
    }

    #[test]
    fn incident_raise_unknown_key_stays_in_title() {
        let cmd = ok("incident raise DB: slow queries on host:db1");
        assert_eq!(
            cmd,
            Command::Incident(raise("DB: slow queries on host:db1"))
        );
    }

    #[test]
    fn incident_raise_with_curly_and_single_quotes() {
        let curly = ok("incident raise “Checkout down” impact:medium");
        let single = ok("incident raise 'it's down' ‘for real’");
        assert_eq!(
            curly,
            Command::Incident(IncidentCmd::Raise {
                title: "Checkout down".into(),
                impact: Some(Level::Medium),
                urgency: None,
                service: None,
                ci: None,
                security: false,
            })
        );
        assert_eq!(single, Command::Incident(raise("it's down for real")));
    }

    #[test]
    fn incident_raise_quoted_option_and_flag_are_title_words() {
        let cmd = ok(r#"incident raise "impact:high" 'security' review"#);
        assert_eq!(cmd, Command::Incident(raise("impact:high security review")));
    }

    #[test]
    fn incident_act_verbs_with_and_without_text() {
        let cases = [
            ("ack", IncidentAction::Ack),
            ("resolve", IncidentAction::Resolve),
            ("close", IncidentAction::Close),
            ("reopen", IncidentAction::Reopen),
        ];
        for (verb, action) in cases {
            let bare = ok(&format!("incident {verb} inc-3"));
            let noted = ok(&format!("incident {verb} INC-3 restarted the  pod"));
            assert_eq!(
                bare,
                Command::Incident(IncidentCmd::Act {
                    action,
                    id: id("INC-3"),
                    text: None
                })
            );
            assert_eq!(
                noted,
                Command::Incident(IncidentCmd::Act {
                    action,
                    id: id("INC-3"),
                    text: Some("restarted the pod".into())
                })
            );
        }
    }

    #[test]
    fn incident_major_declares_a_major_incident() {
        // Arrange
        let text = "incident major inc-7";

        // Act
        let cmd = ok(text);

        // Assert
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Major { id: id("INC-7") })
        );
        assert_eq!(cmd.name(), "incident major");
    }

    #[test]
    fn incident_major_without_an_id_is_refused() {
        let e = err("incident major");
        assert_eq!(e.command, "incident major");
        assert_eq!(e.message, "missing incident ID (INC-n)");
        assert_eq!(e.usage, "incident major INC-n");
    }

    #[test]
    fn incident_major_with_another_kind_of_id_is_refused() {
        let e = err("incident major CHG-2");
        assert_eq!(e.command, "incident major");
        assert_eq!(
            e.message,
            "`CHG-2` is a change ID; expected an incident ID (INC-n)"
        );
    }

    #[test]
    fn incident_major_with_text_after_the_id_is_refused() {
        for text in [
            "incident major INC-1 checkout is down",
            "incident major INC-1 impact:high",
        ] {
            let e = err(text);
            assert_eq!(e.command, "incident major", "{text}");
            assert!(
                e.message.starts_with("unexpected `")
                    && e.message.ends_with("`incident major` takes nothing more"),
                "{text}: {}",
                e.message
            );
        }
    }

    #[test]
    fn incident_priority_with_impact_urgency_or_both() {
        // Arrange
        let cases = [
            (
                "incident priority INC-4 impact:high",
                Some(Level::High),
                None,
            ),
            (
                "incident priority INC-4 urgency:Low",
                None,
                Some(Level::Low),
            ),
            (
                "Incident PRIORITY urgency:medium inc-4 IMPACT:low",
                Some(Level::Low),
                Some(Level::Medium),
            ),
        ];
        for (text, impact, urgency) in cases {
            // Act
            let cmd = ok(text);

            // Assert
            assert_eq!(
                cmd,
                Command::Incident(IncidentCmd::Priority {
                    id: id("INC-4"),
                    impact,
                    urgency
                }),
                "{text}"
            );
            assert_eq!(cmd.name(), "incident priority");
        }
    }

    #[test]
    fn incident_priority_without_impact_or_urgency_is_refused() {
        let e = err("incident priority INC-4");
        assert_eq!(e.command, "incident priority");
        assert_eq!(
            e.message,
            "missing impact:high|medium|low or urgency:high|medium|low; give at least one"
        );
        assert_eq!(
            e.usage,
            "incident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]"
        );
    }

    #[test]
    fn incident_priority_with_a_bad_level_lists_the_levels() {
        let impact = err("incident priority INC-4 impact:critical");
        let urgency = err("incident priority INC-4 impact:high urgency:asap");
        assert_eq!(impact.command, "incident priority");
        assert_eq!(
            impact.message,
            "`impact:critical` is not allowed: use impact:high|medium|low"
        );
        assert_eq!(
            urgency.message,
            "`urgency:asap` is not allowed: use urgency:high|medium|low"
        );
    }

    #[test]
    fn incident_priority_without_an_id_or_with_a_wrong_id_is_refused() {
        let missing = err("incident priority impact:high");
        let wrong = err("incident priority REQ-4 impact:high");
        let stray = err("incident priority INC-4 impact:high now");
        assert_eq!(missing.command, "incident priority");
        assert_eq!(missing.message, "missing incident ID (INC-n)");
        assert_eq!(
            wrong.message,
            "`REQ-4` is a service request ID; expected an incident ID (INC-n)"
        );
        assert_eq!(
            stray.message,
            "unexpected `now`: `incident priority` takes nothing more"
        );
    }

    #[test]
    fn incident_priority_option_given_twice_is_refused() {
        let e = err("incident priority INC-4 impact:high impact:low");
        assert_eq!(e.command, "incident priority");
        assert_eq!(e.message, "option `impact:` given twice");
    }

    #[test]
    fn help_for_incident_explains_major_and_priority() {
        let text = help(Some("incident")).expect("topic help");
        assert!(text.contains("\nincident major INC-n\n    Declare a major incident"));
        assert!(text.contains(
            "\nincident priority INC-n [impact:high|medium|low] [urgency:high|medium|low]\n    Re-assess"
        ));
    }

    #[test]
    fn the_deadline_timer_tick_cannot_be_typed() {
        // Arrange: the name the internal command carries in metrics and the audit trail.
        let name = Command::Tick.name();

        // Act
        let typed = parse(name);

        // Assert
        assert_eq!(usage(name), None);
        let e = typed.expect_err("`sla check` is not a chat command");
        assert_eq!(e.command, "sla");
    }

    #[test]
    fn incident_show() {
        let cmd = ok("incident show INC-12");
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Show { id: id("INC-12") })
        );
    }

    #[test]
    fn incident_assign_with_every_mention_form() {
        let cases = [
            ("<@U123>", Mention::PlatformId("U123".into())),
            ("<@U123|alice>", Mention::PlatformId("U123".into())),
            (
                "<@!80351110224678912>",
                Mention::PlatformId("80351110224678912".into()),
            ),
            ("<@123>", Mention::PlatformId("123".into())),
            ("@alice", Mention::Name("alice".into())),
            ("@slack:U123", Mention::Name("slack:U123".into())),
        ];
        for (mention, assignee) in cases {
            let cmd = ok(&format!("incident assign INC-1 {mention}"));
            assert_eq!(
                cmd,
                Command::Incident(IncidentCmd::Assign {
                    id: id("INC-1"),
                    assignee
                })
            );
        }
    }

    #[test]
    fn incident_note() {
        let cmd = ok("incident note INC-2 customer says: impact:high");
        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Note {
                id: id("INC-2"),
                text: "customer says: impact:high".into()
            })
        );
    }

    #[test]
    fn incident_list_with_each_filter() {
        let cases = [
            ("incident list", IncidentFilter::Open),
            ("incident list open", IncidentFilter::Open),
            ("incident list MINE", IncidentFilter::Mine),
            ("incident list breached", IncidentFilter::Breached),
            ("incident list all", IncidentFilter::All),
        ];
        for (text, filter) in cases {
            let cmd = ok(text);
            assert_eq!(
                cmd,
                Command::Incident(IncidentCmd::List { filter }),
                "{text}"
            );
        }
    }

    // ---- request ----

    #[test]
    fn request_raise_with_and_without_service() {
        let bare = ok("request raise New laptop");
        let with = ok("request raise New laptop service:it-desk");
        assert_eq!(
            bare,
            Command::Request(RequestCmd::Raise {
                title: "New laptop".into(),
                service: None
            })
        );
        assert_eq!(
            with,
            Command::Request(RequestCmd::Raise {
                title: "New laptop".into(),
                service: Some("it-desk".into())
            })
        );
    }

    #[test]
    fn request_fulfil_and_close_with_and_without_text() {
        let fulfil = ok("request fulfil REQ-4");
        let fulfill = ok("request fulfill REQ-4 shipped");
        let close = ok("request close req-4 duplicate");
        assert_eq!(
            fulfil,
            Command::Request(RequestCmd::Fulfil {
                id: id("REQ-4"),
                text: None
            })
        );
        assert_eq!(
            fulfill,
            Command::Request(RequestCmd::Fulfil {
                id: id("REQ-4"),
                text: Some("shipped".into())
            })
        );
        assert_eq!(
            close,
            Command::Request(RequestCmd::Close {
                id: id("REQ-4"),
                text: Some("duplicate".into())
            })
        );
        assert_eq!(
            ok("request close REQ-4"),
            Command::Request(RequestCmd::Close {
                id: id("REQ-4"),
                text: None
            })
        );
    }

    #[test]
    fn request_show() {
        let cmd = ok("request show REQ-9");
        assert_eq!(cmd, Command::Request(RequestCmd::Show { id: id("REQ-9") }));
    }

    // ---- problem ----

    #[test]
    fn problem_open_with_and_without_incidents() {
        let bare = ok("problem open Disk fills up");
        let from = ok("problem open Disk fills up from:inc-1,INC-2,INC-1");
        assert_eq!(
            bare,
            Command::Problem(ProblemCmd::Open {
                title: "Disk fills up".into(),
                from: vec![]
            })
        );
        assert_eq!(
            from,
            Command::Problem(ProblemCmd::Open {
                title: "Disk fills up".into(),
                from: vec![id("INC-1"), id("INC-2")]
            })
        );
    }

    #[test]
    fn problem_link() {
        let cmd = ok("problem link PRB-1 INC-7");
        assert_eq!(
            cmd,
            Command::Problem(ProblemCmd::Link {
                id: id("PRB-1"),
                incident: id("INC-7")
            })
        );
    }

    #[test]
    fn problem_act_verbs_take_text() {
        let cases = [
            ("rootcause", ProblemAction::RootCause),
            ("workaround", ProblemAction::Workaround),
            ("resolve", ProblemAction::Resolve),
            ("close", ProblemAction::Close),
        ];
        for (verb, action) in cases {
            let cmd = ok(&format!("problem {verb} PRB-2 log rotation was off"));
            assert_eq!(
                cmd,
                Command::Problem(ProblemCmd::Act {
                    action,
                    id: id("PRB-2"),
                    text: "log rotation was off".into()
                })
            );
        }
    }

    #[test]
    fn problem_show() {
        let cmd = ok("problem show PRB-2");
        assert_eq!(cmd, Command::Problem(ProblemCmd::Show { id: id("PRB-2") }));
    }

    // ---- change ----

    #[test]
    fn change_request_with_only_type() {
        let cmd = ok("change request Upgrade Postgres type:normal");
        assert_eq!(
            cmd,
            Command::Change(ChangeCmd::Request {
                title: "Upgrade Postgres".into(),
                change_type: ChangeType::Normal,
                risk: None,
                service: None,
                window: None,
                template: None,
            })
        );
    }

    #[test]
    fn change_request_with_every_option() {
        let text = "change request type:Standard \"Rotate cert\" risk:LOW service:shop \
                    window:2026-12-01T22:00Z..2026-12-01T23:00:30+01:00 template:rotate-certificate";
        let cmd = ok(text);
        assert_eq!(
            cmd,
            Command::Change(ChangeCmd::Request {
                title: "Rotate cert".into(),
                change_type: ChangeType::Standard,
                risk: Some(Level::Low),
                service: Some("shop".into()),
                window: Some(Window {
                    start: at("2026-12-01T22:00:00Z"),
                    end: at("2026-12-01T22:00:30Z")
                }),
                template: Some("rotate-certificate".into()),
            })
        );
    }

    #[test]
    fn change_request_emergency_with_full_rfc3339_window() {
        let cmd = ok("change request Hotfix type:emergency window:2026-12-01T22:00:00Z..2026-12-01T23:00:00Z");
        let Command::Change(ChangeCmd::Request {
            change_type,
            window,
            ..
        }) = cmd
        else {
            panic!("not a change request: {cmd:?}");
        };
        assert_eq!(change_type, ChangeType::Emergency);
        assert_eq!(
            window,
            Some(Window {
                start: at("2026-12-01T22:00:00Z"),
                end: at("2026-12-01T23:00:00Z")
            })
        );
    }

    #[test]
    fn change_act_verbs_with_and_without_text() {
        for action in CHANGE_ACTIONS {
            let bare = ok(&format!("change {} CHG-5", action.verb().to_uppercase()));
            let noted = ok(&format!("change {} chg-5 looks good", action.verb()));
            assert_eq!(
                bare,
                Command::Change(ChangeCmd::Act {
                    action,
                    id: id("CHG-5"),
                    text: None
                })
            );
            assert_eq!(
                noted,
                Command::Change(ChangeCmd::Act {
                    action,
                    id: id("CHG-5"),
                    text: Some("looks good".into())
                })
            );
        }
    }

    #[test]
    fn change_show() {
        let cmd = ok("change show CHG-5");
        assert_eq!(cmd, Command::Change(ChangeCmd::Show { id: id("CHG-5") }));
    }

    #[test]
    fn change_link_to_pull_request() {
        let cmd = ok("change link CHG-5 acme/shop.web#123");
        assert_eq!(
            cmd,
            Command::Change(ChangeCmd::Link {
                id: id("CHG-5"),
                repo: "acme/shop.web".into(),
                number: 123
            })
        );
    }

    // ---- release ----

    #[test]
    fn release_create_with_version_only() {
        let cmd = ok("release create 1.4.0");
        assert_eq!(
            cmd,
            Command::Release(ReleaseCmd::Create {
                version: "1.4.0".into(),
                repo: None,
                changes: vec![]
            })
        );
    }

    #[test]
    fn release_create_with_repo_and_changes() {
        let cmd = ok("release create v2.0.0-rc.1 CHG-1 repo:acme/shop chg-2");
        assert_eq!(
            cmd,
            Command::Release(ReleaseCmd::Create {
                version: "v2.0.0-rc.1".into(),
                repo: Some("acme/shop".into()),
                changes: vec![id("CHG-1"), id("CHG-2")],
            })
        );
    }

    #[test]
    fn release_deploy() {
        let cmd = ok("release deploy REL-3 env:production");
        assert_eq!(
            cmd,
            Command::Release(ReleaseCmd::Deploy {
                id: id("REL-3"),
                env: "production".into()
            })
        );
    }

    #[test]
    fn release_rollback_with_and_without_text() {
        let bare = ok("release rollback REL-3");
        let noted = ok("release rollback REL-3 error rate up");
        assert_eq!(
            bare,
            Command::Release(ReleaseCmd::Rollback {
                id: id("REL-3"),
                text: None
            })
        );
        assert_eq!(
            noted,
            Command::Release(ReleaseCmd::Rollback {
                id: id("REL-3"),
                text: Some("error rate up".into())
            })
        );
    }

    #[test]
    fn release_show() {
        let cmd = ok("release show rel-3");
        assert_eq!(cmd, Command::Release(ReleaseCmd::Show { id: id("REL-3") }));
    }

    // ---- service and ci ----

    #[test]
    fn service_add_with_and_without_owner() {
        let bare = ok("service add shop");
        let owned = ok("service add shop owner:<@U123|alice>");
        assert_eq!(
            bare,
            Command::Service(ServiceCmd::Add {
                name: "shop".into(),
                owner: None
            })
        );
        assert_eq!(
            owned,
            Command::Service(ServiceCmd::Add {
                name: "shop".into(),
                owner: Some(Mention::PlatformId("U123".into()))
            })
        );
    }

    #[test]
    fn service_show() {
        let cmd = ok("service show shop");
        assert_eq!(
            cmd,
            Command::Service(ServiceCmd::Show {
                name: "shop".into()
            })
        );
    }

    #[test]
    fn ci_add_with_and_without_options() {
        let bare = ok("ci add db-1");
        let full = ok("ci add db-1 type:database service:shop depends:host-1,host_2,host-1");
        assert_eq!(
            bare,
            Command::Ci(CiCmd::Add {
                name: "db-1".into(),
                ci_type: None,
                service: None,
                depends: vec![]
            })
        );
        assert_eq!(
            full,
            Command::Ci(CiCmd::Add {
                name: "db-1".into(),
                ci_type: Some("database".into()),
                service: Some("shop".into()),
                depends: vec!["host-1".into(), "host_2".into()],
            })
        );
    }

    #[test]
    fn ci_show() {
        let cmd = ok("ci show db-1");
        assert_eq!(
            cmd,
            Command::Ci(CiCmd::Show {
                name: "db-1".into()
            })
        );
    }

    // ---- nc ----

    #[test]
    fn nc_raise_with_and_without_record() {
        let bare = ok("nc raise Change started without approval");
        let with = ok("nc raise Change started without approval record:chg-4");
        assert_eq!(
            bare,
            Command::Nc(NcCmd::Raise {
                title: "Change started without approval".into(),
                record: None
            })
        );
        assert_eq!(
            with,
            Command::Nc(NcCmd::Raise {
                title: "Change started without approval".into(),
                record: Some(id("CHG-4"))
            })
        );
    }

    #[test]
    fn nc_list_all_or_open() {
        let all = ok("nc list");
        let open = ok("nc list open");
        assert_eq!(all, Command::Nc(NcCmd::List { open_only: false }));
        assert_eq!(open, Command::Nc(NcCmd::List { open_only: true }));
    }

    #[test]
    fn nc_correct_close_and_show() {
        let correct = ok("nc correct NC-1 added a CI check");
        let close = ok("nc close nc-1");
        let show = ok("nc show NC-1");
        assert_eq!(
            correct,
            Command::Nc(NcCmd::Correct {
                id: id("NC-1"),
                action: "added a CI check".into()
            })
        );
        assert_eq!(close, Command::Nc(NcCmd::Close { id: id("NC-1") }));
        assert_eq!(show, Command::Nc(NcCmd::Show { id: id("NC-1") }));
    }

    // ---- role, sla, report, audit ----

    #[test]
    fn role_grant_and_revoke_every_role() {
        for role in Role::ALL {
            let grant = ok(&format!(
                "role grant @alice {}",
                role.as_str().to_uppercase()
            ));
            let revoke = ok(&format!("role revoke <@U9> {}", role.as_str()));
            assert_eq!(
                grant,
                Command::Role(RoleCmd::Grant {
                    user: Mention::Name("alice".into()),
                    role
                })
            );
            assert_eq!(
                revoke,
                Command::Role(RoleCmd::Revoke {
                    user: Mention::PlatformId("U9".into()),
                    role
                })
            );
        }
    }

    #[test]
    fn sla_of_an_incident() {
        let cmd = ok("sla inc-8");
        assert_eq!(cmd, Command::Sla { id: id("INC-8") });
    }

    #[test]
    fn report_with_and_without_dates() {
        let bare = ok("report");
        let from = ok("report from:2026-01-01");
        let both = ok("report to:2026-03-31 from:2026-01-01");
        assert_eq!(
            bare,
            Command::Report {
                from: None,
                to: None
            }
        );
        assert_eq!(
            from,
            Command::Report {
                from: Some(day("2026-01-01")),
                to: None
            }
        );
        assert_eq!(
            both,
            Command::Report {
                from: Some(day("2026-01-01")),
                to: Some(day("2026-03-31"))
            }
        );
    }

    #[test]
    fn audit_of_a_record_id_or_a_name() {
        let record = ok("audit inc-3");
        let name = ok("audit web-shop");
        assert_eq!(
            record,
            Command::Audit {
                record: "INC-3".into()
            }
        );
        assert_eq!(
            name,
            Command::Audit {
                record: "web-shop".into()
            }
        );
    }

    // ---- malformed input ----

    #[test]
    fn empty_input_points_at_help() {
        for text in ["", "   ", "\n\t"] {
            let e = err(text);
            assert_eq!(e.command, "");
            assert!(
                e.message.contains("empty command") && e.message.contains("help"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn unknown_command_gives_the_overview() {
        let e = err("frobnicate the thing");
        assert_eq!(e.command, "");
        assert_eq!(e.message, "unknown command `frobnicate`; try `help`");
        assert_eq!(e.usage, overview());
    }

    #[test]
    fn unknown_verb_gives_all_forms_of_the_topic() {
        let e = err("incident frobnicate INC-1");
        assert_eq!(e.command, "incident");
        assert!(
            e.message.contains("unknown incident command `frobnicate`"),
            "{}",
            e.message
        );
        assert!(e.usage.contains("incident raise") && e.usage.contains("incident list"));
    }

    #[test]
    fn missing_verb_gives_all_forms_of_the_topic() {
        let e = err("change");
        assert_eq!(e.command, "change");
        assert!(
            e.message.contains("missing change command"),
            "{}",
            e.message
        );
        assert!(e.usage.contains("change link"), "{}", e.usage);
    }

    #[test]
    fn missing_id_is_refused() {
        let e = err("incident ack");
        assert_eq!(e.command, "incident ack");
        assert_eq!(e.message, "missing incident ID (INC-n)");
        assert_eq!(e.usage, "incident ack|resolve|close|reopen INC-n [text]");
    }

    #[test]
    fn wrong_kind_of_id_names_the_expected_kind() {
        let e = err("incident ack CHG-1");
        assert_eq!(e.command, "incident ack");
        assert_eq!(
            e.message,
            "`CHG-1` is a change ID; expected an incident ID (INC-n)"
        );
    }

    #[test]
    fn malformed_id_is_refused() {
        let e = err("problem link PRB-1 INC-0");
        assert_eq!(e.command, "problem link");
        assert!(
            e.message.contains("`INC-0` is not an incident ID"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_option_value_lists_allowed_values() {
        let e = err("incident raise Checkout down impact:huge");
        assert_eq!(e.command, "incident raise");
        assert_eq!(
            e.message,
            "`impact:huge` is not allowed: use impact:high|medium|low"
        );
    }

    #[test]
    fn bad_change_type_and_missing_type_are_refused() {
        let bad = err("change request Upgrade type:yolo");
        let missing = err("change request Upgrade risk:low");
        assert_eq!(bad.command, "change request");
        assert!(
            bad.message.contains("type:standard|normal|emergency"),
            "{}",
            bad.message
        );
        assert_eq!(missing.message, "missing type:standard|normal|emergency");
    }

    #[test]
    fn option_without_value_is_refused() {
        let e = err("incident raise Checkout down service: shop");
        assert_eq!(e.command, "incident raise");
        assert!(
            e.message.contains("`service:` needs a value"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_option_is_refused() {
        let e = err("incident raise Checkout impact:high IMPACT:low");
        assert_eq!(e.command, "incident raise");
        assert_eq!(e.message, "option `impact:` given twice");
    }

    #[test]
    fn missing_title_is_refused() {
        let bare = err("incident raise impact:high");
        let empty = err(r#"request raise "" service:shop"#);
        assert_eq!(bare.command, "incident raise");
        assert_eq!(bare.message, "missing title");
        assert_eq!(empty.command, "request raise");
        assert_eq!(empty.message, "missing title");
    }

    #[test]
    fn missing_text_is_refused_where_required() {
        let note = err("incident note INC-1");
        let cause = err("problem rootcause PRB-1");
        let correct = err("nc correct NC-1");
        assert_eq!(note.message, "missing note text");
        assert_eq!(cause.message, "missing root cause");
        assert_eq!(correct.message, "missing corrective action");
    }

    #[test]
    fn unterminated_quote_is_refused() {
        let e = err(r#"incident raise "Checkout down impact:high"#);
        assert_eq!(e.command, "incident raise");
        assert!(e.message.contains("unterminated quote"), "{}", e.message);
        let curly = err("incident raise “Checkout down");
        assert!(
            curly.message.contains("unterminated quote"),
            "{}",
            curly.message
        );
    }

    #[test]
    fn window_ending_before_it_starts_is_refused() {
        let e = err("change request X type:normal window:2026-12-01T23:00Z..2026-12-01T22:00Z");
        assert_eq!(e.command, "change request");
        assert!(e.message.contains("not after its start"), "{}", e.message);
    }

    #[test]
    fn unparsable_window_is_refused() {
        for window in [
            "tomorrow",
            "2026-12-01T22:00Z",
            "2026-13-01T22:00Z..2026-12-01T23:00Z",
            "..",
        ] {
            let e = err(&format!("change request X type:normal window:{window}"));
            assert_eq!(e.command, "change request");
            assert!(
                e.message.contains("is not a window"),
                "{window}: {}",
                e.message
            );
        }
    }

    #[test]
    fn bad_report_dates_are_refused() {
        let bad = err("report from:2026-02-30");
        let short = err("report to:2026-1-5");
        let reversed = err("report from:2026-03-01 to:2026-01-01");
        assert_eq!(bad.command, "report");
        assert_eq!(
            bad.message,
            "`from:2026-02-30` is not a date: use from:YYYY-MM-DD"
        );
        assert!(short.message.contains("is not a date"), "{}", short.message);
        assert_eq!(reversed.message, "from:2026-03-01 is after to:2026-01-01");
    }

    #[test]
    fn bad_mentions_are_refused() {
        for mention in ["alice", "@", "<@>", "@irc:alice", "<#C123>", "@a b"] {
            let e = err(&format!("incident assign INC-1 {mention}"));
            assert_eq!(e.command, "incident assign");
            assert!(
                e.message.contains("is not a user") || e.message.contains("unexpected"),
                "{mention}: {}",
                e.message
            );
        }
        let missing = err("role grant");
        assert_eq!(missing.message, "missing user: @name or a mention");
    }

    #[test]
    fn help_with_more_than_one_topic_is_refused() {
        let unknown = err("help a b");
        let extra = err("help incident raise");
        assert_eq!(unknown.command, "help");
        assert!(
            unknown.message.contains("unknown help topic `a`"),
            "{}",
            unknown.message
        );
        assert_eq!(
            extra.message,
            "unexpected `raise`: `help` takes nothing more"
        );
    }

    #[test]
    fn audit_of_something_that_is_neither_id_nor_name_is_refused() {
        let e = err("audit a/b");
        assert_eq!(e.command, "audit");
        assert!(e.message.contains("neither a record ID"), "{}", e.message);
        assert_eq!(err("audit").message, "missing record ID or name");
    }

    #[test]
    fn bad_role_is_refused() {
        let e = err("role grant @alice boss");
        assert_eq!(e.command, "role grant");
        assert!(e.message.contains("`boss` is not a role"), "{}", e.message);
    }

    #[test]
    fn text_after_show_id_is_refused() {
        for text in [
            "incident show INC-1 now",
            "change show CHG-1 please",
            "nc close NC-1 done",
            "sla INC-1 x",
        ] {
            let e = err(text);
            assert!(
                e.message.starts_with("unexpected `"),
                "{text}: {}",
                e.message
            );
        }
        let e = err("change show CHG-1 please");
        assert_eq!(e.command, "change show");
        assert_eq!(
            e.message,
            "unexpected `please`: `change show` takes nothing more"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        let service = err("incident raise X service:a/b");
        let list = err("ci add db depends:a,,b");
        let spaced = err(r#"service add "web shop""#);
        assert!(
            service
                .message
                .contains("`service:a/b` is not a valid name"),
            "{}",
            service.message
        );
        assert!(list.message.contains("empty CI name"), "{}", list.message);
        assert!(
            spaced.message.contains("`web shop` is not a valid name"),
            "{}",
            spaced.message
        );
    }

    #[test]
    fn bad_pull_request_links_are_refused() {
        for pull in [
            "acme/shop",
            "acme/shop#0",
            "acme shop#1",
            "acme/sh op#1",
            "acme/shop#99999999999999999999999",
        ] {
            let e = err(&format!("change link CHG-1 {pull}"));
            assert_eq!(e.command, "change link");
        }
        let e = err("change link CHG-1 acme/shop#0");
        assert!(
            e.message.contains("no valid pull request number"),
            "{}",
            e.message
        );
    }

    #[test]
    fn release_create_refuses_stray_words_and_missing_version() {
        let stray = err("release create 1.0 CHG-1 hello");
        let missing = err("release create CHG-1 CHG-2");
        let repo = err("release create 1.0 repo:acme");
        assert!(
            stray.message.contains("`hello` is not a change ID"),
            "{}",
            stray.message
        );
        assert!(
            missing.message.contains("is not a version"),
            "{}",
            missing.message
        );
        assert!(
            repo.message.contains("is not a repository"),
            "{}",
            repo.message
        );
        assert!(err("release deploy REL-1")
            .message
            .contains("missing env:NAME"));
    }

    #[test]
    fn oversized_input_is_refused_with_the_command_named() {
        let text = format!("incident raise {}", "é".repeat(MAX_CHARS));
        let e = err(&text);
        assert_eq!(e.command, "incident raise");
        assert!(e.message.starts_with("command too long"), "{}", e.message);
    }

    #[test]
    fn input_at_the_limit_is_accepted() {
        let prefix = "incident raise ";
        let text = format!("{prefix}{}", "x".repeat(MAX_CHARS - prefix.len()));
        let cmd = parse(&text);
        assert!(cmd.is_ok(), "{cmd:?}");
    }

    // ---- commands given in parts ----

    fn ok_parts(name: &str, parts: &[Part<'_>]) -> Command {
        parse_parts(name, parts).unwrap_or_else(|e| panic!("`{name}` {parts:?} should parse: {e}"))
    }

    fn err_parts(name: &str, parts: &[Part<'_>]) -> UsageError {
        match parse_parts(name, parts) {
            Err(e) => e,
            Ok(cmd) => panic!("`{name}` {parts:?} should be refused, got {cmd:?}"),
        }
    }

    #[test]
    fn parts_literal_title_keeps_option_like_words_while_options_apply() {
        let parts = [
            Part::Literal("DB slow impact:high"),
            Part::Opt("impact", "low"),
            Part::Opt("service", "db"),
        ];

        let cmd = ok_parts("incident raise", &parts);

        assert_eq!(
            cmd,
            Command::Incident(IncidentCmd::Raise {
                title: "DB slow impact:high".into(),
                impact: Some(Level::Low),
                urgency: None,
                service: Some("db".into()),
                ci: None,
                security: false,
            })
        );
    }

    #[test]
    fn parts_literal_with_quotes_and_flags_is_taken_verbatim() {
        let title = r#"Checkout down impact:high "x" security 'y"#;

        let cmd = ok_parts("incident raise", &[Part::Literal(title)]);

        assert_eq!(cmd, Command::Incident(raise(title)));
    }

    #[test]
    fn parts_change_approve_with_id_and_quoted_text() {
        let parts = [Part::Word("CHG-3"), Part::Literal("looks \"fine\"")];

        let cmd = ok_parts("change approve", &parts);

        assert_eq!(
            cmd,
            Command::Change(ChangeCmd::Act {
                action: ChangeAction::Approve,
                id: id("CHG-3"),
                text: Some("looks \"fine\"".into()),
            })
        );
    }

    #[test]
    fn parts_give_the_same_command_as_the_equivalent_text() {
        let cases: [(&str, &str, &[Part<'_>]); 5] = [
            (
                r#"change request "Upgrade DB" type:normal risk:high window:2026-12-01T22:00Z..2026-12-01T23:00Z"#,
                "change request",
                &[
                    Part::Literal("Upgrade DB"),
                    Part::Opt("type", "normal"),
                    Part::Opt("risk", "high"),
                    Part::Opt("window", "2026-12-01T22:00Z..2026-12-01T23:00Z"),
                ],
            ),
            (
                "release create 1.2.0 repo:acme/shop CHG-1 CHG-2",
                "release create",
                &[
                    Part::Word("1.2.0"),
                    Part::Opt("repo", "acme/shop"),
                    Part::Word("CHG-1"),
                    Part::Word("CHG-2"),
                ],
            ),
            (
                "incident raise \"Login fails\" security urgency:high",
                "incident raise",
                &[
                    Part::Literal("Login fails"),
                    Part::Word("security"),
                    Part::Opt("urgency", "high"),
                ],
            ),
            (
                "role grant @alice cab",
                "role grant",
                &[Part::Word("@alice"), Part::Word("cab")],
            ),
            ("help incident", "help", &[Part::Word("incident")]),
        ];

        for (text, name, parts) in cases {
            let from_text = ok(text);

            let from_parts = ok_parts(name, parts);

            assert_eq!(from_parts, from_text, "{text}");
        }
    }

    #[test]
    fn parts_give_the_same_errors_as_the_equivalent_text() {
        let cases: [(&str, &str, &[Part<'_>]); 5] = [
            (
                "incident raise Outage impact:huge",
                "incident raise",
                &[Part::Literal("Outage"), Part::Opt("impact", "huge")],
            ),
            (
                "change approve INC-3",
                "change approve",
                &[Part::Word("INC-3")],
            ),
            (
                "release create 1.2.0 repo:nope",
                "release create",
                &[Part::Word("1.2.0"), Part::Opt("repo", "nope")],
            ),
            ("incident frobnicate", "incident frobnicate", &[]),
            ("", "", &[]),
        ];

        for (text, name, parts) in cases {
            let from_text = err(text);

            let from_parts = err_parts(name, parts);

            assert_eq!(from_parts, from_text, "{text}");
        }
    }

    #[test]
    fn parts_word_must_be_one_nonempty_word() {
        for word in ["CHG 3", "CHG-3\n", ""] {
            let e = err_parts("change show", &[Part::Word(word)]);

            assert_eq!(e.command, "change show", "{word:?}");
            assert!(e.message.contains("one word"), "{word:?}: {e}");
        }
    }

    #[test]
    fn parts_option_value_with_a_space_is_refused_naming_the_option() {
        let parts = [Part::Word("my-ci"), Part::Opt("depends", "db, cache")];

        let e = err_parts("ci add", &parts);

        assert_eq!(e.command, "ci add");
        assert_eq!(e.message, "`depends:db, cache` must be one word");
    }

    #[test]
    fn parts_option_with_a_malformed_key_is_refused() {
        for key in ["", "impact:x", "imp act"] {
            let parts = [Part::Literal("Outage"), Part::Opt(key, "low")];

            let e = err_parts("incident raise", &parts);

            assert!(e.message.contains("not an option name"), "{key:?}: {e}");
        }
    }

    #[test]
    fn parts_blank_literal_counts_as_absent() {
        let act = ok_parts(
            "change approve",
            &[Part::Word("CHG-3"), Part::Literal("  ")],
        );
        let missing = err_parts("incident raise", &[Part::Literal("")]);

        assert_eq!(
            act,
            Command::Change(ChangeCmd::Act {
                action: ChangeAction::Approve,
                id: id("CHG-3"),
                text: None,
            })
        );
        assert_eq!(missing, err("incident raise"));
    }

    #[test]
    fn parts_name_alone_names_the_command() {
        let e = err_parts("incident", &[Part::Word("raise"), Part::Literal("Outage")]);

        assert_eq!(e.command, "incident");
        assert!(e.message.starts_with("missing incident command"), "{e}");
    }

    #[test]
    fn parts_longer_than_the_text_limit_are_refused() {
        let long = "x".repeat(MAX_CHARS);

        let e = err_parts("incident raise", &[Part::Literal(&long)]);

        assert_eq!(e.command, "incident raise");
        assert!(e.message.starts_with("command too long"), "{e}");
    }

    // ---- properties ----

    const GRAMMARISH: &[&str] = &[
        "incident",
        "raise",
        "ack",
        "show",
        "assign",
        "note",
        "list",
        "major",
        "priority",
        "urgency:low",
        "impact:bogus",
        "check",
        "change",
        "request",
        "link",
        "release",
        "create",
        "deploy",
        "role",
        "grant",
        "audit",
        "report",
        "help",
        "nc",
        "ci",
        "service",
        "add",
        "sla",
        "problem",
        "open",
        "CHG-1",
        "INC-2",
        "REL-3",
        "NC-0",
        "impact:",
        "impact:high",
        "type:normal",
        "window:",
        "..",
        "2026-12-01T22:00Z",
        "from:2026-01-01",
        "\"",
        "'",
        "“",
        "”",
        "‘",
        "’",
        "\"a b\"",
        "<@",
        "<@U1>",
        "@",
        "@alice",
        "security",
        "#",
        "acme/shop#1",
        "depends:a,b",
        ":",
        "é",
        "\u{0}",
        "\n",
        "owner:@x",
        "env:prod",
    ];

    fn grammarish() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let token = prop_oneof![
            3 => proptest::sample::select(GRAMMARISH).prop_map(String::from),
            1 => "\\PC{0,5}",
            1 => any::<char>().prop_map(String::from),
        ];
        let sep = proptest::sample::select(&[" ", "  ", "", "\t", "\u{a0}"][..]);
        proptest::collection::vec((token, sep), 0..10)
            .prop_map(|parts| parts.into_iter().map(|(t, s)| format!("{t}{s}")).collect())
    }

    fn check_invariants(text: &str) {
        if text.chars().any(crate::domain::text::forbidden) {
            let e = parse(text).expect_err("text with control characters is refused");
            assert!(e.message.contains("character"), "{text:?}: {}", e.message);
            return;
        }
        match parse(text) {
            Ok(cmd) => {
                // The SLA clock's internal command is never typed.
                assert_ne!(cmd, Command::Tick, "{text:?}");
                // The command's name is what the text's first words say (modulo case and `fulfill`).
                let name = cmd.name();
                let toks = tokenize(text).expect("parsed text tokenises");
                let said: Vec<String> = toks
                    .iter()
                    .take(name.split(' ').count())
                    .map(|t| t.text.to_lowercase().replace("fulfill", "fulfil"))
                    .collect();
                assert_eq!(said.join(" "), name, "{text:?}");
                assert!(usage(name).is_some(), "{name}");
            }
            Err(e) => {
                assert!(!e.usage.is_empty(), "{text:?}");
                assert!(!e.message.is_empty(), "{text:?}");
                assert!(
                    e.command.is_empty() || usage(e.command) == Some(e.usage),
                    "{e:?}"
                );
            }
        }
    }

    #[test]
    fn control_and_bidi_characters_are_usage_errors_that_name_them() {
        let e = parse("incident raise a\u{0}b impact:low urgency:low").unwrap_err();
        assert_eq!(e.command, "incident raise");
        assert!(e.message.contains("NUL, U+0000"), "{}", e.message);
        let e = parse("incident note INC-1 pay \u{202e}gnp.exe").unwrap_err();
        assert!(e.message.contains("bidirectional"), "{}", e.message);
        let e = parse_parts(
            "incident raise",
            &[Part::Literal("ok\u{1b}[2J"), Part::Opt("impact", "low")],
        )
        .unwrap_err();
        assert!(e.message.contains("escape, U+001B"), "{}", e.message);
        let e = parse_parts("incident raise", &[Part::Opt("service", "a\u{2066}")]).unwrap_err();
        assert!(e.message.contains("U+2066"), "{}", e.message);
        // Tab and newline stay ordinary white space.
        assert!(parse("incident raise a\tb\nc impact:low").is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn parse_never_panics_on_arbitrary_text(text in proptest::prelude::any::<String>()) {
            check_invariants(&text);
        }

        #[test]
        fn parse_never_panics_on_grammarish_text(text in grammarish()) {
            check_invariants(&text);
        }

        #[test]
        fn literal_titles_survive_parts(title in "\\PC{0,60}") {
            let cmd = parse_parts("incident raise", &[Part::Literal(&title), Part::Opt("impact", "low")]);
            if title.trim().is_empty() {
                proptest::prop_assert!(cmd.is_err(), "{title:?}: {cmd:?}");
            } else {
                let Ok(Command::Incident(IncidentCmd::Raise { title: got, impact, .. })) = cmd else {
                    panic!("{title:?}: {cmd:?}");
                };
                proptest::prop_assert_eq!(got, title.trim());
                proptest::prop_assert_eq!(impact, Some(Level::Low));
            }
        }

        #[test]
        fn quoted_titles_survive_parsing(title in "[^\"\\s\\pC][^\"\\pC]{0,40}[^\"\\s\\pC]") {
            let cmd = parse(&format!("incident raise \"{title}\" impact:low"));
            let Ok(Command::Incident(IncidentCmd::Raise { title: got, impact, .. })) = cmd else {
                panic!("{title:?}: {cmd:?}");
            };
            proptest::prop_assert_eq!(got, title);
            proptest::prop_assert_eq!(impact, Some(Level::Low));
        }
    }
}
