//! Who may run which command: the static role table, checked before any record is touched.
//!
//! Commands whose rule depends on the record (votes, implementing a change, closing an incident)
//! are checked where the record is loaded; see `lifecycle` and the use cases.

use super::command::{Command, Role};
use super::ids::Actor;
use super::lifecycle::Refusal;
use super::parser;
use super::policy::Policy;

pub const ADMIN: &[Role] = &[Role::Admin];
pub const INCIDENT_MANAGERS: &[Role] = &[Role::IncidentManager, Role::Admin];
pub const CHANGE_MANAGERS: &[Role] = &[Role::ChangeManager, Role::Admin];
pub const MANAGERS: &[Role] = &[Role::IncidentManager, Role::ChangeManager, Role::Admin];
pub const ANYONE: &[Role] = &[];

/// The roles, any one of which lets a person run `command`; empty means anyone may. Typed
/// commands take theirs from their verb in the grammar table (`parser::FORMS`).
pub fn required_roles(command: &Command) -> &'static [Role] {
    match command {
        Command::OutboxDrop { .. } => ADMIN,
        other => parser::roles_of(other.name()).unwrap_or(ANYONE),
    }
}

/// "`role grant` needs the admin role; console:bob has none of them".
pub fn role_refusal(action: &str, actor: &Actor, roles: &[Role]) -> Refusal {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let need = match names.as_slice() {
        [one] => format!("the {one} role"),
        many => format!("one of the roles {}", many.join(", ")),
    };
    Refusal::new(
        "role",
        format!("`{action}` needs {need}, which {actor} does not hold; an admin can grant it with `role grant @{actor} {}`", names[0]),
    )
}

/// Checks the static table for one command.
pub fn check(command: &Command, actor: &Actor, policy: &Policy) -> Result<(), Refusal> {
    let roles = required_roles(command);
    // An alert receiver reports alerts and does nothing else; only a receiver reports them.
    if actor.platform() == "alerts" || matches!(command, Command::Alert(_)) {
        return if actor.platform() == "alerts" && matches!(command, Command::Alert(_)) {
            Ok(())
        } else if actor.platform() == "alerts" {
            Err(Refusal::new(
                "role",
                format!(
                    "{actor} is an alert receiver: it may report alerts and nothing else, not `{}`",
                    command.name()
                ),
            ))
        } else {
            Err(Refusal::new(
                "role",
                "only the alert webhook (/alerts/alertmanager, /alerts/grafana) reports alerts",
            ))
        };
    }
    // The deadline timer's tick is the system's alone; the system account has no other privileges.
    if matches!(command, Command::Tick | Command::PageDelivered { .. }) {
        return if *actor == Actor::system() {
            Ok(())
        } else {
            Err(Refusal::new(
                "role",
                "only opsledger's own clock runs `sla check`",
            ))
        };
    }
    // GitHub's reports come from the webhook alone, as the GitHub user who acted or the system.
    if matches!(command, Command::Github(_)) {
        return if actor.platform() == "github" || *actor == Actor::system() {
            Ok(())
        } else {
            Err(Refusal::new(
                "role",
                "only GitHub's webhook reports pull requests, pushes, releases and deployments",
            ))
        };
    }
    if roles.is_empty() || policy.has_any_role(actor, roles) {
        Ok(())
    } else {
        Err(role_refusal(command.name(), actor, roles))
    }
}

/// Record-dependent rule: the owner of a record, or a holder of one of `roles`.
pub fn check_owner_or(
    action: &str,
    actor: &Actor,
    owner: &Actor,
    roles: &[Role],
    policy: &Policy,
) -> Result<(), Refusal> {
    if policy.same_person(actor, owner) || policy.has_any_role(actor, roles) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(Refusal::new(
            "role",
            format!(
                "`{action}` is for {owner} or a holder of {}; {actor} is neither",
                names.join(" or ")
            ),
        ))
    }
}

pub const INCIDENT_CLOSERS: &[Role] = INCIDENT_MANAGERS;
pub const CHANGE_IMPLEMENTERS: &[Role] = CHANGE_MANAGERS;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parser::parse;

    fn actor(s: &str) -> Actor {
        Actor::parse(s).unwrap()
    }

    #[test]
    fn role_grant_needs_an_admin_and_says_how_to_get_there() {
        let p = Policy::default();
        let cmd = parse("role grant @bob cab").unwrap();
        let err = check(&cmd, &actor("console:bob"), &p).unwrap_err();
        assert_eq!(err.rule, "role");
        assert_eq!(
            err.message,
            "`role grant` needs the admin role, which console:bob does not hold; an admin can grant it with `role grant @console:bob admin`"
        );
        assert!(check(&cmd, &actor("console:root"), &p).is_ok());
    }

    #[test]
    fn everyday_commands_need_no_role() {
        let p = Policy::default();
        for text in [
            "incident raise x",
            "incident ack INC-1",
            "change request x type:normal",
            "change submit CHG-1",
            "nc raise x",
            "audit INC-1",
        ] {
            assert!(
                check(&parse(text).unwrap(), &actor("slack:U1"), &p).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn managed_commands_need_their_manager_role() {
        let mut p = Policy::default();
        p.roles
            .entry(Role::ChangeManager)
            .or_default()
            .insert(actor("slack:CM"));
        let close = parse("change close CHG-1").unwrap();
        assert!(check(&close, &actor("slack:CM"), &p).is_ok());
        assert_eq!(
            check(&close, &actor("slack:U1"), &p).unwrap_err().rule,
            "role"
        );
        let nc_close = parse("nc close NC-1").unwrap();
        assert!(check(&nc_close, &actor("slack:CM"), &p).is_err());
    }

    #[test]
    fn the_system_account_runs_the_clock_and_nothing_else() {
        let p = Policy::default();
        assert!(check(&Command::Tick, &Actor::system(), &p).is_ok());
        assert!(check(&Command::Tick, &actor("console:root"), &p).is_err());
        // Only the outbox (as opsledger) says a page was delivered.
        let delivered = Command::PageDelivered {
            incident: "INC-1".parse().unwrap(),
            via: "slack:U1".into(),
        };
        assert!(check(&delivered, &Actor::system(), &p).is_ok());
        assert!(check(&delivered, &actor("console:root"), &p).is_err());
        let drop = Command::OutboxDrop { id: 1 };
        assert!(check(&drop, &actor("console:root"), &p).is_ok());
        assert!(check(&drop, &actor("console:bob"), &p).is_err());
        let grant = parse("role grant @mallory admin").unwrap();
        assert_eq!(
            check(&grant, &Actor::system(), &p).unwrap_err().rule,
            "role"
        );
    }

    #[test]
    fn owners_may_act_on_their_own_records() {
        let p = Policy::default();
        let owner = actor("slack:U1");
        assert!(check_owner_or("change start", &owner, &owner, CHANGE_IMPLEMENTERS, &p).is_ok());
        let err = check_owner_or(
            "change start",
            &actor("slack:U2"),
            &owner,
            CHANGE_IMPLEMENTERS,
            &p,
        )
        .unwrap_err();
        assert_eq!(err.message, "`change start` is for slack:U1 or a holder of change-manager or admin; slack:U2 is neither");
    }

    /// The role table of docs/rules.md, row by row: the commands it names and who may run them.
    fn documented_rows() -> Vec<(Vec<String>, String)> {
        let doc = include_str!("../../docs/rules.md");
        let table = doc
            .split("| commands | who may run them |")
            .nth(1)
            .expect("docs/rules.md has the role table");
        table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let names = cells[1]
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .flat_map(|name| {
                        // `change request/submit/link` names three commands.
                        let (topic, verbs) = name.split_once(' ').unwrap_or((name, ""));
                        verbs
                            .split('/')
                            .map(|v| format!("{topic} {v}").trim().to_string())
                            .collect::<Vec<_>>()
                    })
                    .filter(|name| parser::TOPICS.iter().any(|t| name.starts_with(t.name)))
                    .collect();
                (names, cells[2].to_string())
            })
            .collect()
    }

    /// "incident-manager, change-manager or admin" as roles; `None` for a rule in words.
    fn roles_in(who: &str) -> Option<Vec<Role>> {
        if who == "anyone" {
            return Some(Vec::new());
        }
        who.replace(" or ", ", ")
            .split(", ")
            .map(Role::parse)
            .collect()
    }

    #[test]
    fn an_alert_receiver_reports_alerts_and_nothing_else() {
        use crate::domain::alerts::{AlertNotification, AlertSource};
        let p = Policy::default();
        let alert = Command::Alert(Box::new(AlertNotification {
            source: AlertSource::Alertmanager,
            receiver: "ops".to_string(),
            group_key: "{}:{}".to_string(),
            firing: true,
            group_labels: Default::default(),
            common_labels: Default::default(),
            common_annotations: Default::default(),
            external_url: String::new(),
            truncated_alerts: 0,
            alerts: Vec::new(),
        }));
        let receiver = Actor::alerts("ops");
        assert!(check(&alert, &receiver, &p).is_ok());
        // Not even an admin, nor the system, reports alerts by hand.
        assert_eq!(
            check(&alert, &actor("console:root"), &p).unwrap_err().rule,
            "role"
        );
        assert_eq!(
            check(&alert, &Actor::system(), &p).unwrap_err().rule,
            "role"
        );
        for text in [
            "incident raise x",
            "incident ack INC-1",
            "help",
            "audit INC-1",
        ] {
            let err = check(&parse(text).unwrap(), &receiver, &p).unwrap_err();
            assert!(err.message.contains("alert receiver"), "{text}: {err:?}");
        }
        assert!(Actor::parse_person("alerts:ops").is_err());
        assert_eq!(
            Actor::alerts("team X/webhook").as_str(),
            "alerts:team-X-webhook"
        );
    }

    #[test]
    fn the_documented_role_table_names_forms_and_their_roles() {
        let rows = documented_rows();
        assert!(rows.len() >= 5, "{rows:?}");
        for (names, who) in &rows {
            for name in names {
                let roles = parser::roles_of(name).unwrap_or_else(|| {
                    panic!("docs/rules.md names `{name}`, which no form declares")
                });
                if let Some(want) = roles_in(who) {
                    assert_eq!(roles, want.as_slice(), "{name}: docs say {who}");
                }
            }
        }
        // And every verb that needs a role is in the documented table.
        for form in parser::FORMS {
            for verb in form.verbs.iter().filter(|v| !v.roles.is_empty()) {
                assert!(
                    rows.iter()
                        .any(|(names, _)| names.iter().any(|n| n == verb.name)),
                    "`{}` needs a role but docs/rules.md does not say so",
                    verb.name
                );
            }
        }
    }
}
