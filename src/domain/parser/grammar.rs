//! The grammar after the lexer: finds the form a text names in the table, splits its words by the
//! form's slots, and reads them into a typed `Command` with one function per form.

use chrono::{DateTime, NaiveDate, Utc};

use super::lexer::{
    shown, Tok, DATE, NAME, NAME_MENTION, PLATFORM_MENTION, PULL, REPO, SHORT_TIME, VERSION,
};
use super::table::{
    form_named, overview, topic_usage, verbs_of, Form, Slot, SlotKind, Topic, TOPICS,
};
use super::{usage, UsageError};
use crate::domain::command::{
    ChangeAction, ChangeCmd, ChangeFilter, ChangeType, CiCmd, Command, IncidentAction, IncidentCmd,
    IncidentFilter, IncidentRole, Level, Mention, NcCmd, OncallCmd, ProblemAction, ProblemCmd,
    ReleaseCmd, RequestCmd, Role, RoleCmd, ServiceCmd, Window,
};
use crate::domain::ids::{Actor, Kind, RecordId};

/// Reads one form's arguments into its command.
pub(super) type Parse = fn(Ctx, Args<'_>) -> Result<Command, UsageError>;

type Parsed = Result<Command, UsageError>;

/// The command a text names, and how many tokens its name took.
pub(super) struct Resolved {
    pub(super) ctx: Ctx,
    pub(super) form: &'static Form,
    words: usize,
}

pub(super) fn resolve(top: &str, verb: Option<&str>) -> Result<Resolved, UsageError> {
    let lower = top.to_lowercase();
    if let Some((v, form)) = form_named(&lower) {
        return Ok(Resolved {
            ctx: Ctx {
                name: v.name,
                usage: form.usage(),
            },
            form,
            words: 1,
        });
    }
    let Some(topic) = TOPICS.iter().find(|t| t.name == lower).map(|t| t.name) else {
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
        Some((v, form)) => Ok(Resolved {
            ctx: Ctx {
                name: v.name,
                usage: form.usage(),
            },
            form,
            words: 2,
        }),
        None => Err(group.err(format!(
            "unknown {topic} command `{}`; one of {verbs}",
            shown(verb)
        ))),
    }
}

/// An error for text that could not be tokenised, naming the command its first words suggest.
pub(super) fn early_error(text: &str, message: String) -> UsageError {
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

/// The grammar after tokenising, shared by `parse` and `parse_parts`.
pub(super) fn parse_toks(toks: &[Tok]) -> Parsed {
    let Some(top) = toks.first() else {
        return Err(UsageError {
            command: "",
            message: "empty command; try `help`".into(),
            usage: overview(),
        });
    };
    let r = resolve(top.text, toks.get(1).map(|t| t.text))?;
    let rest = toks.get(r.words..).unwrap_or_default();
    let a = r.ctx.args(rest, r.form.slots)?;
    (r.form.parse)(r.ctx, a)
}

pub(super) fn known_topic(topic: &str) -> Result<&'static Topic, UsageError> {
    let wanted = topic.trim().to_lowercase();
    TOPICS.iter().find(|t| t.name == wanted).ok_or_else(|| {
        let names: Vec<&str> = TOPICS.iter().map(|t| t.name).collect();
        let help = Ctx::of("help");
        help.err(format!(
            "unknown help topic `{}`; topics: {}",
            shown(topic),
            names.join(", ")
        ))
    })
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

// ---- one function per form of the table ----

pub(super) fn help(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let topic = a.next().map(known_topic).transpose()?;
    a.end()?;
    Ok(Command::Help {
        topic: topic.map(|t| t.name.to_string()),
    })
}

pub(super) fn incident_raise(_c: Ctx, mut a: Args<'_>) -> Parsed {
    Ok(Command::Incident(IncidentCmd::Raise {
        impact: a.opt_with("impact", Ctx::level)?,
        urgency: a.opt_with("urgency", Ctx::level)?,
        service: a.opt_with("service", Ctx::name)?,
        ci: a.opt_with("ci", Ctx::name)?,
        security: a.flag("security"),
        title: a.required("title")?,
    }))
}

pub(super) fn incident_priority(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    a.end()?;
    let impact = a.opt_with("impact", Ctx::level)?;
    let urgency = a.opt_with("urgency", Ctx::level)?;
    if impact.is_none() && urgency.is_none() {
        return Err(
            c.err("missing impact:high|medium|low or urgency:high|medium|low; give at least one")
        );
    }
    Ok(Command::Incident(IncidentCmd::Priority {
        id,
        impact,
        urgency,
    }))
}

pub(super) fn incident_list(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let filter = a.filter(&[
        ("open", IncidentFilter::Open),
        ("mine", IncidentFilter::Mine),
        ("breached", IncidentFilter::Breached),
        ("all", IncidentFilter::All),
    ])?;
    Ok(Command::Incident(IncidentCmd::List { filter }))
}

pub(super) fn incident_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    a.end()?;
    Ok(Command::Incident(IncidentCmd::Show { id }))
}

pub(super) fn incident_major(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    a.end()?;
    Ok(Command::Incident(IncidentCmd::Major { id }))
}

pub(super) fn incident_escalate(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    a.end()?;
    Ok(Command::Incident(IncidentCmd::Escalate { id }))
}

pub(super) fn incident_role(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    let word = a
        .next()
        .ok_or_else(|| c.err("missing role: commander, comms or scribe"))?;
    let role = IncidentRole::ALL
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(word))
        .ok_or_else(|| {
            c.err(format!(
                "`{}` is not an incident role: use commander, comms or scribe",
                shown(word)
            ))
        })?;
    let who = c.mention(a.next())?;
    a.end()?;
    Ok(Command::Incident(IncidentCmd::Role { id, role, who }))
}

pub(super) fn incident_assign(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    let assignee = c.mention(a.next())?;
    a.end()?;
    Ok(Command::Incident(IncidentCmd::Assign { id, assignee }))
}

pub(super) fn incident_note(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    Ok(Command::Incident(IncidentCmd::Note {
        id,
        text: a.required("note text")?,
    }))
}

pub(super) fn incident_act(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    let action = match c.verb() {
        "ack" => IncidentAction::Ack,
        "resolve" => IncidentAction::Resolve,
        "close" => IncidentAction::Close,
        "reopen" => IncidentAction::Reopen,
        other => return Err(c.err(format!("unknown incident command `{other}`"))),
    };
    Ok(Command::Incident(IncidentCmd::Act {
        action,
        id,
        text: a.text(),
    }))
}

pub(super) fn request_raise(_c: Ctx, mut a: Args<'_>) -> Parsed {
    Ok(Command::Request(RequestCmd::Raise {
        service: a.opt_with("service", Ctx::name)?,
        title: a.required("title")?,
    }))
}

pub(super) fn request_act(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Request)?;
    Ok(Command::Request(match c.verb() {
        "fulfil" => RequestCmd::Fulfil { id, text: a.text() },
        "close" => RequestCmd::Close { id, text: a.text() },
        other => return Err(c.err(format!("unknown request command `{other}`"))),
    }))
}

pub(super) fn request_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Request)?;
    a.end()?;
    Ok(Command::Request(RequestCmd::Show { id }))
}

pub(super) fn problem_open(c: Ctx, mut a: Args<'_>) -> Parsed {
    let from = match a.opt("from") {
        None => Vec::new(),
        Some(list) => c.list(list, "incident ID", |v| {
            c.record_id(Some(v), Kind::Incident)
        })?,
    };
    Ok(Command::Problem(ProblemCmd::Open {
        title: a.required("title")?,
        from,
    }))
}

pub(super) fn problem_link(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Problem)?;
    let incident = a.id(Kind::Incident)?;
    a.end()?;
    Ok(Command::Problem(ProblemCmd::Link { id, incident }))
}

pub(super) fn problem_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Problem)?;
    a.end()?;
    Ok(Command::Problem(ProblemCmd::Show { id }))
}

pub(super) fn problem_act(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Problem)?;
    let (action, what) = match c.verb() {
        "rootcause" => (ProblemAction::RootCause, "root cause"),
        "workaround" => (ProblemAction::Workaround, "workaround"),
        "resolve" => (ProblemAction::Resolve, "text"),
        "close" => (ProblemAction::Close, "text"),
        other => return Err(c.err(format!("unknown problem command `{other}`"))),
    };
    let text = a.required(what)?;
    Ok(Command::Problem(ProblemCmd::Act { action, id, text }))
}

pub(super) const CHANGE_ACTIONS: [ChangeAction; 9] = [
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

pub(super) fn change_request(c: Ctx, mut a: Args<'_>) -> Parsed {
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
    Ok(Command::Change(ChangeCmd::Request {
        change_type,
        risk: a.opt_with("risk", Ctx::level)?,
        service: a.opt_with("service", Ctx::name)?,
        window: a.opt_with("window", Ctx::window)?,
        template: a.opt_with("template", Ctx::name)?,
        title: a.required("title")?,
    }))
}

pub(super) fn change_act(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Change)?;
    let verb = c.verb();
    let action = CHANGE_ACTIONS
        .into_iter()
        .find(|act| act.verb() == verb)
        .ok_or_else(|| c.err(format!("unknown change command `{verb}`")))?;
    let text = a.text();
    if action == ChangeAction::Review {
        if let Some(clear) = cleared(c, id, text.as_deref())? {
            return Ok(clear);
        }
    }
    Ok(Command::Change(ChangeCmd::Act { action, id, text }))
}

/// `change review CHG-n cleared INC-m <why>`: the review text starting with `cleared` clears an
/// incident suspected of being caused by the change.
fn cleared(c: Ctx, id: RecordId, text: Option<&str>) -> Result<Option<Command>, UsageError> {
    let Some(rest) = text.and_then(|t| {
        let (first, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        first.eq_ignore_ascii_case("cleared").then_some(rest.trim())
    }) else {
        return Ok(None);
    };
    let usage =
        "after `cleared`, name the incident and why: change review CHG-n cleared INC-m <why>";
    let (inc, why) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let incident = inc
        .parse::<RecordId>()
        .ok()
        .filter(|r| r.kind == Kind::Incident)
        .ok_or_else(|| c.err(usage))?;
    let why = why.trim();
    if why.is_empty() {
        return Err(c.err(usage));
    }
    Ok(Some(Command::Change(ChangeCmd::Clear {
        id,
        incident,
        text: why.to_string(),
    })))
}

pub(super) fn change_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Change)?;
    a.end()?;
    Ok(Command::Change(ChangeCmd::Show { id }))
}

pub(super) fn change_link(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Change)?;
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
    Ok(Command::Change(ChangeCmd::Link { id, repo, number }))
}

pub(super) fn change_list(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let filter = a.filter(&[
        ("open", ChangeFilter::Open),
        ("waiting", ChangeFilter::Waiting),
        ("mine", ChangeFilter::Mine),
    ])?;
    Ok(Command::Change(ChangeCmd::List { filter }))
}

pub(super) fn release_create(c: Ctx, mut a: Args<'_>) -> Parsed {
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
    Ok(Command::Release(ReleaseCmd::Create {
        version: version.to_string(),
        repo,
        changes,
    }))
}

pub(super) fn release_deploy(c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Release)?;
    a.end()?;
    let env = a
        .opt_with("env", Ctx::name)?
        .ok_or_else(|| c.err("missing env:NAME"))?;
    Ok(Command::Release(ReleaseCmd::Deploy { id, env }))
}

pub(super) fn release_rollback(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Release)?;
    Ok(Command::Release(ReleaseCmd::Rollback {
        id,
        text: a.text(),
    }))
}

pub(super) fn release_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Release)?;
    a.end()?;
    Ok(Command::Release(ReleaseCmd::Show { id }))
}

pub(super) fn service_add(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let name = a.name("service name")?;
    a.end()?;
    let owner = a.opt_with("owner", |c, _, v| c.mention(Some(v)))?;
    let escalation = a.opt_with("escalation", Ctx::name)?;
    Ok(Command::Service(ServiceCmd::Add {
        name,
        owner,
        escalation,
    }))
}

pub(super) fn service_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let name = a.name("service name")?;
    a.end()?;
    Ok(Command::Service(ServiceCmd::Show { name }))
}

pub(super) fn ci_add(c: Ctx, mut a: Args<'_>) -> Parsed {
    let name = a.name("CI name")?;
    a.end()?;
    let depends = match a.opt("depends") {
        None => Vec::new(),
        Some(list) => c.list(list, "CI name", |v| c.name_value("", v))?,
    };
    Ok(Command::Ci(CiCmd::Add {
        name,
        ci_type: a.opt_with("type", Ctx::name)?,
        service: a.opt_with("service", Ctx::name)?,
        depends,
    }))
}

pub(super) fn ci_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let name = a.name("CI name")?;
    a.end()?;
    Ok(Command::Ci(CiCmd::Show { name }))
}

pub(super) fn oncall_who(c: Ctx, mut a: Args<'_>) -> Parsed {
    let schedule = a.next().map(|w| c.name_value("", w)).transpose()?;
    a.end()?;
    Ok(Command::Oncall(OncallCmd::Who { schedule }))
}

pub(super) fn oncall_show(c: Ctx, mut a: Args<'_>) -> Parsed {
    let word = a.next().ok_or_else(|| c.err("missing schedule name"))?;
    let schedule = c.name_value("", word)?;
    a.end()?;
    Ok(Command::Oncall(OncallCmd::Show { schedule }))
}

pub(super) fn oncall_override(c: Ctx, mut a: Args<'_>) -> Parsed {
    let word = a.next().ok_or_else(|| c.err("missing schedule name"))?;
    let schedule = c.name_value("", word)?;
    let who = c.mention(a.next())?;
    let time = |c: Ctx, key: &str, v: &str| {
        timestamp(v).ok_or_else(|| {
            c.err(format!(
                "`{key}:{}` is not a time: use {key}:2026-12-24T18:00Z",
                shown(v)
            ))
        })
    };
    let from = a
        .opt_with("from", time)?
        .ok_or_else(|| c.err("missing from:<time>"))?;
    let to = a
        .opt_with("to", time)?
        .ok_or_else(|| c.err("missing to:<time>"))?;
    a.end()?;
    if to <= from {
        return Err(c.err(format!("to:{to} is not after from:{from}")));
    }
    Ok(Command::Oncall(OncallCmd::Override {
        schedule,
        who,
        from,
        to,
    }))
}

pub(super) fn nc_raise(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let record = a.opt_with("record", |c, _, v| {
        v.parse::<RecordId>().map_err(|_| {
            c.err(format!(
                "`record:{}` is not a record ID such as INC-3",
                shown(v)
            ))
        })
    })?;
    Ok(Command::Nc(NcCmd::Raise {
        title: a.required("title")?,
        record,
    }))
}

pub(super) fn nc_list(_c: Ctx, mut a: Args<'_>) -> Parsed {
    // Without a word, all of them.
    let open_only = a.filter(&[("open", true), ("all", false)])?;
    Ok(Command::Nc(NcCmd::List { open_only }))
}

pub(super) fn nc_correct(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Nonconformity)?;
    Ok(Command::Nc(NcCmd::Correct {
        id,
        action: a.required("corrective action")?,
    }))
}

pub(super) fn nc_close(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Nonconformity)?;
    a.end()?;
    Ok(Command::Nc(NcCmd::Close { id }))
}

pub(super) fn nc_show(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Nonconformity)?;
    a.end()?;
    Ok(Command::Nc(NcCmd::Show { id }))
}

pub(super) fn role(c: Ctx, mut a: Args<'_>) -> Parsed {
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
    Ok(Command::Role(match c.verb() {
        "grant" => RoleCmd::Grant { user, role },
        "revoke" => RoleCmd::Revoke { user, role },
        other => return Err(c.err(format!("unknown role command `{other}`"))),
    }))
}

pub(super) fn sla(_c: Ctx, mut a: Args<'_>) -> Parsed {
    let id = a.id(Kind::Incident)?;
    a.end()?;
    Ok(Command::Sla { id })
}

pub(super) fn report(c: Ctx, a: Args<'_>) -> Parsed {
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

pub(super) fn audit(c: Ctx, mut a: Args<'_>) -> Parsed {
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

/// The command being parsed: every error names it and carries its usage.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    pub(super) name: &'static str,
    pub(super) usage: &'static str,
}

impl Ctx {
    fn of(name: &'static str) -> Ctx {
        Ctx {
            name,
            usage: usage(name).unwrap_or(overview()),
        }
    }

    /// The second word of the command's name: `ack` in `incident ack`.
    fn verb(self) -> &'static str {
        self.name.split_once(' ').map_or("", |(_, v)| v)
    }

    pub(super) fn err(self, message: impl Into<String>) -> UsageError {
        UsageError {
            command: self.name,
            message: message.into(),
            usage: self.usage,
        }
    }

    /// Split tokens into `key:value` options and bare flags the form declares, and the other words.
    pub(super) fn args<'a>(
        self,
        toks: &[Tok<'a>],
        slots: &'static [Slot],
    ) -> Result<Args<'a>, UsageError> {
        let named = |kind: fn(&SlotKind) -> bool| slots.iter().filter(move |s| kind(&s.kind));
        let mut a = Args {
            c: self,
            slots,
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
                named(|k| matches!(k, SlotKind::Opt { .. }))
                    .find(|s| s.name.eq_ignore_ascii_case(key))
                    .map(|s| (s.name, value))
            });
            let flag = named(|k| matches!(k, SlotKind::Flag))
                .find(|s| s.name.eq_ignore_ascii_case(tok.text))
                .map(|s| s.name);
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
                if a.flags.contains(&flag) {
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
pub(super) struct Args<'a> {
    c: Ctx,
    /// The form's slots: only the options and flags they name are read.
    slots: &'static [Slot],
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

    /// A list's one optional word, such as `mine` in `incident list mine`, and nothing after it;
    /// the default without one.
    fn filter<T: Copy + Default>(&mut self, allowed: &[(&str, T)]) -> Result<T, UsageError> {
        let filter = match self.next() {
            None => T::default(),
            Some(f) => self.c.one_of("", f, allowed)?,
        };
        self.end()?;
        Ok(filter)
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

    /// Reading a name the form does not declare is a bug in the table; the grammar's
    /// consistency tests parse every form, so they catch it.
    fn declared(&self, name: &str, kind: fn(&SlotKind) -> bool) {
        debug_assert!(
            self.slots.iter().any(|s| s.name == name && kind(&s.kind)),
            "`{}` reads `{name}`, which its form does not declare",
            self.c.name
        );
    }

    fn opt(&self, key: &str) -> Option<&'a str> {
        self.declared(key, |k| matches!(k, SlotKind::Opt { .. }));
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
        self.declared(flag, |k| matches!(k, SlotKind::Flag));
        self.flags.contains(&flag)
    }
}
