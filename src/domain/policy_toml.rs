//! The process rules in force written back as a rules file (`opsledger policy show`), and a one-line summary.
//!
//! The output is the rules file's own schema (`RawPolicy`, which `Policy::from_toml` reads)
//! serialized, in the order of the contract's example, with every setting spelled out (built-in
//! defaults included), so that it is itself a valid rules file:
//! `Policy::from_toml(&p.to_toml()) == Ok(p)`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::ids::Actor;
use super::policy::{
    ApprovalRule, Policy, RawAlerts, RawApproval, RawChange, RawEscalation, RawFreeze, RawGithub,
    RawIncidents, RawLevels, RawOncall, RawPolicy, RawPriority, RawSla, RawStale, RawStandard,
    RawStep,
};
use super::priority::Priority;

/// The priority matrix's layout is not in its values: the written file says it.
const MATRIX_NOTE: &str = "   # rows impact high/medium/low, columns urgency high/medium/low";

impl Policy {
    /// The policy as a rules file, in the format `Policy::from_toml` reads: the same schema
    /// (`RawPolicy`), serialized.
    pub fn to_toml(&self) -> String {
        let raw = RawPolicy {
            roles: self
                .roles
                .iter()
                .map(|(role, members)| (role.as_str().to_string(), actors(members)))
                .collect(),
            people: self
                .people
                .iter()
                .map(|(person, accounts)| (person.clone(), actors(accounts)))
                .collect(),
            priority: Some(RawPriority {
                matrix: self
                    .priority
                    .matrix
                    .iter()
                    .map(|row| row.iter().map(|p| p.as_str().to_string()).collect())
                    .collect(),
            }),
            sla: Priority::ALL
                .into_iter()
                .map(|prio| {
                    let target = self.sla.target(prio);
                    let sla = RawSla {
                        respond: Some(compact(target.respond)),
                        resolve: Some(compact(target.resolve)),
                    };
                    (prio.as_str().to_string(), sla)
                })
                .collect::<BTreeMap<_, _>>(),
            change: RawChange {
                normal: Some(approval(&self.normal)),
                emergency: Some(approval(&self.emergency)),
                standard: Some(RawStandard {
                    templates: self.standard_templates.clone(),
                }),
            },
            freeze: self
                .freezes
                .iter()
                .map(|f| RawFreeze {
                    name: f.name.clone(),
                    start: time(f.start),
                    end: time(f.end),
                    allow: f.allow.iter().map(|t| t.as_str().to_string()).collect(),
                })
                .collect(),
            github: RawGithub {
                protected: self.protected_branches.clone(),
                change_pattern: Some(self.change_pattern.clone()),
                block_deploys_during: self
                    .block_deploys_during
                    .iter()
                    .map(|p| p.as_str().to_string())
                    .collect(),
            },
            alerts: Some(RawAlerts {
                service_label: Some(self.alerts.service_label.clone()),
                ci_label: Some(self.alerts.ci_label.clone()),
                severity_label: Some(self.alerts.severity_label.clone()),
                auto_resolve: Some(self.alerts.auto_resolve),
                reopen_within: Some(compact(self.alerts.reopen_within)),
                problem_after: Some(self.alerts.problem_after.into()),
                problem_within: Some(compact(self.alerts.problem_window)),
                change_window: Some(compact(self.alerts.change_window)),
                severity: self
                    .alerts
                    .severity
                    .iter()
                    .map(|(name, (impact, urgency))| {
                        let levels = RawLevels {
                            impact: impact.as_str().to_string(),
                            urgency: urgency.as_str().to_string(),
                        };
                        (name.clone(), levels)
                    })
                    .collect(),
            }),
            oncall: self
                .oncall
                .iter()
                .map(|o| RawOncall {
                    name: o.name.clone(),
                    members: o.members.clone(),
                    rotation: crate::domain::oncall::rotation_text(o.rotation),
                    start: o.start.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    handoff: o.handoff.clone(),
                    timezone: o.timezone.name().to_string(),
                })
                .collect(),
            incidents: Some(RawIncidents {
                working_hours: Some(self.working_hours.text.clone()),
                timezone: Some(self.working_hours.timezone.name().to_string()),
                commander_within: Some(compact(self.commander_within)),
                stale_after: Some(if self.stale_after.is_empty() {
                    RawStale::All(compact(self.stale_after_default))
                } else {
                    RawStale::ByPriority(
                        Priority::ALL
                            .into_iter()
                            .map(|p| (p.as_str().to_string(), compact(self.stale_after(p))))
                            .collect(),
                    )
                }),
            }),
            escalation: self
                .escalations
                .iter()
                .map(|c| RawEscalation {
                    name: c.name.clone(),
                    default: c.default,
                    page: c.page.iter().map(|p| p.as_str().to_string()).collect(),
                    steps: c.steps.iter().map(raw_step).collect(),
                    repeat: c.repeat,
                })
                .collect(),
        };
        // Strings, lists and tables only: nothing in the schema that TOML cannot hold.
        let text = toml::to_string(&raw).expect("the rules schema holds only what TOML can");
        text.replacen("[priority]\n", &format!("[priority]{MATRIX_NOTE}\n"), 1)
    }

    /// One line saying what the rules amount to, for `opsledger policy check`.
    pub fn summary(&self) -> String {
        let roles: Vec<String> = self
            .roles
            .iter()
            .map(|(role, members)| format!("{} {}", role.as_str(), members.len()))
            .collect();
        let roles = if roles.is_empty() {
            "no roles".to_string()
        } else {
            format!("roles {}", roles.join(", "))
        };
        let review = self
            .emergency
            .review_within
            .map(|d| format!(", reviewed within {}", compact(d)))
            .unwrap_or_default();
        format!(
            "{roles}; {}; normal changes need {} from {}; emergency changes {} from {}{review}; {}; {}; {}",
            count(self.people.len(), "person", "people"),
            count(self.normal.approvals as usize, "approval", "approvals"),
            self.normal.voters.as_str(),
            count(self.emergency.approvals as usize, "approval", "approvals"),
            self.emergency.voters.as_str(),
            count(
                self.standard_templates.len(),
                "standard template",
                "standard templates"
            ),
            count(self.freezes.len(), "freeze", "freezes"),
            count(
                self.protected_branches.len(),
                "protected branch",
                "protected branches"
            ),
        )
    }
}

fn raw_step(step: &crate::domain::escalation::Step) -> RawStep {
    use crate::domain::escalation::{Step, Target};
    match step {
        Step::Notify(t) => RawStep {
            notify: Some(t.text()),
            next: matches!(t, Target::Oncall { next: true, .. }).then_some(true),
            ..RawStep::default()
        },
        Step::Wait(d) => RawStep {
            wait: Some(compact(*d)),
            ..RawStep::default()
        },
        Step::Webhook(url) => RawStep {
            webhook: Some(url.clone()),
            ..RawStep::default()
        },
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn approval(rule: &ApprovalRule) -> RawApproval {
    RawApproval {
        approvals: Some(rule.approvals.into()),
        voters: Some(rule.voters.as_str().to_string()),
        review_within: rule.review_within.map(compact),
    }
}

fn actors(set: &BTreeSet<Actor>) -> Vec<String> {
    set.iter().map(|a| a.as_str().to_string()).collect()
}

/// RFC 3339 in UTC, with fractional seconds only when there are any: `2026-12-20T00:00:00Z`.
fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The shortest exact spelling in one unit: `15m`, `4h`, `72h`; otherwise humantime's own form,
/// which it parses back exactly.
fn compact(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        humantime::format_duration(d).to_string()
    } else if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::domain::command::{ChangeType, Role};
    use crate::domain::policy::Freeze;

    /// The example from the contract's "Process rules file" section, verbatim (the integration
    /// tests use the same file).
    const CONTRACT_EXAMPLE: &str = include_str!("../../tests/fixtures/contract-rules.toml");

    fn actor(s: &str) -> Actor {
        Actor::parse(s).expect("test actor")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_built_in_defaults_round_trip() {
        // Arrange
        let policy = Policy::default();

        // Act
        let text = policy.to_toml();

        // Assert
        assert_eq!(Policy::from_toml(&text), Ok(policy), "{text}");
    }

    #[test]
    fn the_contract_example_round_trips() {
        // Arrange
        let policy = Policy::from_toml(CONTRACT_EXAMPLE).expect("contract example loads");

        // Act
        let text = policy.to_toml();

        // Assert
        assert_eq!(Policy::from_toml(&text), Ok(policy), "{text}");
    }

    #[test]
    fn defaults_are_spelled_out_in_compact_durations() {
        // Arrange
        let policy = Policy::default();

        // Act
        let text = policy.to_toml();

        // Assert
        for expected in [
            "[sla.P1]\nrespond = \"15m\"\nresolve = \"4h\"\n",
            "[sla.P3]\nrespond = \"4h\"\nresolve = \"72h\"\n",
            "[sla.P4]\nrespond = \"24h\"\nresolve = \"120h\"\n",
            "[change.normal]\napprovals = 2\nvoters = \"cab\"\n",
            "[change.emergency]\napprovals = 1\nvoters = \"ecab\"\nreview_within = \"72h\"\n",
            "matrix = [[\"P1\", \"P2\", \"P3\"], [\"P2\", \"P3\", \"P4\"], [\"P3\", \"P4\", \"P4\"]]\n",
        ] {
            assert!(text.contains(expected), "want {expected:?} in\n{text}");
        }
        assert!(!text.contains("[[freeze]]"), "{text}");
    }

    #[test]
    fn the_contract_example_is_written_in_the_contract_layout() {
        // Arrange
        let policy = Policy::from_toml(CONTRACT_EXAMPLE).expect("contract example loads");

        // Act
        let text = policy.to_toml();

        // Assert
        for expected in [
            "[roles]\nadmin = [\"console:root\"]\ncab = [\"discord:4242\", \"slack:U0CAB1\", \"slack:U0CAB2\"]\necab = [\"slack:U0CAB1\"]\n",
            "[people]\nalice = [\"discord:4141\", \"github:alice\", \"slack:U0ALICE\"]\n",
            "[change.standard]\ntemplates = [\"restart-service\", \"rotate-certificate\"]\n",
            "[[freeze]]\nname = \"year-end\"\nstart = \"2026-12-20T00:00:00Z\"\nend = \"2027-01-04T00:00:00Z\"\nallow = [\"emergency\"]\n",
            "[github]\nprotected = [\"acme/shop:main\"]\n",
        ] {
            assert!(text.contains(expected), "want {expected:?} in\n{text}");
        }
        let sections: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(sections.first(), Some(&"[roles]"));
        // The contract's sections, then the ones its open issues add.
        let github = sections.iter().position(|s| *s == "[github]").unwrap();
        assert_eq!(sections[github + 1], "[alerts]", "{text}");
        assert!(
            sections[github + 2..]
                .iter()
                .all(|s| s.starts_with("[alerts.severity.") || *s == "[incidents]"),
            "{text}"
        );
        assert_eq!(sections.last(), Some(&"[incidents]"));
    }

    #[test]
    fn the_alerts_section_is_read_checked_and_written_back() {
        // Arrange
        let text = r#"
[github]
block_deploys_during = ["P1", "P2"]

[alerts]
service_label = "app"
auto_resolve = true
reopen_within = "12h"
problem_after = 5
change_window = "30m"

[alerts.severity]
page = { impact = "high", urgency = "medium" }
"#;

        // Act
        let policy = Policy::from_toml(text).expect("loads");
        let written = policy.to_toml();

        // Assert
        assert_eq!(
            policy.block_deploys_during,
            vec![Priority::P1, Priority::P2]
        );
        let a = &policy.alerts;
        assert_eq!(a.service_label, "app");
        assert_eq!(a.ci_label, "instance");
        assert!(a.auto_resolve);
        assert_eq!(a.reopen_within, Duration::from_secs(12 * 3600));
        assert_eq!(a.problem_after, 5);
        assert_eq!(a.change_window, Duration::from_secs(30 * 60));
        use crate::domain::command::Level;
        assert_eq!(a.severity["page"], (Level::High, Level::Medium));
        assert_eq!(a.severity["critical"], (Level::High, Level::High));
        assert_eq!(Policy::from_toml(&written), Ok(policy), "{written}");
        for (bad, says) in [
            ("[alerts]\nreopen_within = \"soon\"", "alerts.reopen_within"),
            (
                "[alerts]\nproblem_after = 0",
                "alerts.problem_after must be at least 1",
            ),
            (
                "[alerts]\nci_label = \" \"",
                "alerts.ci_label must name a label",
            ),
            (
                "[alerts.severity]\npage = { impact = \"huge\", urgency = \"low\" }",
                "alerts.severity.page.impact must be high, medium or low",
            ),
            (
                "[github]\nblock_deploys_during = [\"P9\"]",
                "github.block_deploys_during",
            ),
            ("[alerts]\nunknown = 1", "unknown field"),
        ] {
            let err = Policy::from_toml(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn oncall_schedules_are_read_checked_and_written_back() {
        // Arrange
        let text = r#"
[people]
alice = ["slack:U1"]

[[oncall]]
name = "payments"
members = ["alice", "discord:42"]
rotation = "weekly"
start = "2026-11-30T09:00:00"
handoff = "Mon 09:00"
timezone = "Europe/Berlin"

[[oncall]]
name = "night"
members = ["alice"]
rotation = "12h"
start = "2026-11-30T20:00"
timezone = "UTC"
"#;

        // Act
        let policy = Policy::from_toml(text).expect("loads");
        let written = policy.to_toml();

        // Assert
        assert_eq!(policy.oncall.len(), 2);
        assert_eq!(
            policy.schedule("payments").unwrap().timezone.name(),
            "Europe/Berlin"
        );
        assert_eq!(Policy::from_toml(&written), Ok(policy), "{written}");
        let base = "[people]\nalice = [\"slack:U1\"]\n[[oncall]]\nname = \"p\"\n";
        for (bad, says) in [
            ("members = [\"zoe\"]\nrotation = \"daily\"\nstart = \"2026-11-30T09:00\"\ntimezone = \"UTC\"", "oncall[0].members has `zoe`, which is neither a name in [people]"),
            ("members = []\nrotation = \"daily\"\nstart = \"2026-11-30T09:00\"\ntimezone = \"UTC\"", "oncall[0].members must name at least one person"),
            ("members = [\"alice\"]\nrotation = \"fortnightly\"\nstart = \"2026-11-30T09:00\"\ntimezone = \"UTC\"", "oncall[0].rotation is `fortnightly`"),
            ("members = [\"alice\"]\nrotation = \"daily\"\nstart = \"30/11/2026\"\ntimezone = \"UTC\"", "oncall[0].start is `30/11/2026`"),
            ("members = [\"alice\"]\nrotation = \"daily\"\nstart = \"2026-11-30T09:00\"\ntimezone = \"Berlin\"", "oncall[0].timezone is `Berlin`"),
            ("members = [\"alice\"]\nrotation = \"weekly\"\nstart = \"2026-11-30T09:00\"\nhandoff = \"Tue 09:00\"\ntimezone = \"UTC\"", "oncall[0].start is 2026-11-30T09:00 (Mon), not at the handoff Tue 09:00"),
            ("members = [\"system:opsledger\"]\nrotation = \"daily\"\nstart = \"2026-11-30T09:00\"\ntimezone = \"UTC\"", "neither a name in [people] nor an account"),
        ] {
            let err = Policy::from_toml(&format!("{base}{bad}")).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn escalation_chains_are_read_checked_and_written_back() {
        // Arrange: the issue's example chain.
        let base = r#"
[roles]
incident-manager = ["slack:UIM"]

[people]
alice = ["slack:U1"]

[[oncall]]
name = "payments"
members = ["alice"]
rotation = "weekly"
start = "2026-11-30T09:00:00"
timezone = "Europe/Berlin"
"#;
        let chain = r#"
[[escalation]]
name = "payments"
default = true
page = ["P1", "P2"]
steps = [
  { notify = "oncall:payments" },
  { wait = "5m" },
  { notify = "oncall:payments", next = true },
  { wait = "10m" },
  { notify = "role:incident-manager" },
  { notify = "channel" },
  { webhook = "https://pager.example/hook" },
]
repeat = 1
"#;

        // Act
        let policy = Policy::from_toml(&format!("{base}{chain}")).expect("loads");
        let written = policy.to_toml();

        // Assert
        let c = policy.default_chain().expect("a default chain");
        assert_eq!(c.steps.len(), 7);
        assert_eq!(c.repeat, 1);
        assert_eq!(Policy::from_toml(&written), Ok(policy.clone()), "{written}");
        let step = |s: &str| format!("{base}[[escalation]]\nname = \"x\"\nsteps = [{s}]\n");
        for (bad, says) in [
            (
                step("{ notify = \"oncall:billing\" }"),
                "escalation[0].steps[0].notify names the schedule `billing`",
            ),
            (
                step("{ notify = \"role:boss\" }"),
                "names `boss`, not a role",
            ),
            (
                step("{ notify = \"zoe\" }"),
                "escalation[0].steps[0].notify is `zoe`",
            ),
            (
                step("{ wait = \"5m\" }"),
                "escalation[0].steps must have at least one notify step",
            ),
            (
                step("{ notify = \"alice\" }, { wait = \"30s\" }"),
                "escalation[0].steps[1].wait is `30s`; a wait is at least 1m",
            ),
            (
                step("{ notify = \"alice\", next = true }"),
                "`next` applies to oncall:<schedule> only",
            ),
            (
                step("{ notify = \"alice\", wait = \"5m\" }"),
                "must be one of",
            ),
            (
                step("{ notify = \"alice\" }, { webhook = \"ftp://x\" }"),
                "it must be an http(s) URL",
            ),
            (
                format!(
                    "{base}{chain}{}",
                    chain.replace("name = \"payments\"", "name = \"other\"")
                ),
                "escalation[1].default is set on `payments` too",
            ),
        ] {
            let err = Policy::from_toml(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn awkward_names_and_values_are_escaped_and_round_trip() {
        // Arrange: names TOML cannot take bare, a pattern full of backslashes and quotes,
        // odd durations, a freeze with sub-second times, and every role.
        let mut policy = Policy::default();
        for role in Role::ALL {
            policy
                .roles
                .insert(role, BTreeSet::from([actor("console:root")]));
        }
        policy.roles.insert(Role::Cab, BTreeSet::new());
        policy.people = BTreeMap::from([
            (
                "Zoë \"Z\" O'Brien".to_string(),
                BTreeSet::from([actor("slack:U1"), actor("github:zoe")]),
            ),
            ("tab\there\nnewline".to_string(), BTreeSet::new()),
            (String::new(), BTreeSet::from([actor("discord:1")])),
        ]);
        policy.sla.targets[1].respond = Duration::from_secs(90);
        policy.sla.targets[1].resolve = Duration::from_secs(3 * 86_400 + 1);
        policy.sla.targets[2].respond = Duration::from_millis(1500);
        policy.normal.review_within = Some(Duration::from_secs(45 * 60));
        policy.normal.voters = Role::ChangeManager;
        policy.emergency.approvals = 3;
        policy.standard_templates = vec!["a \"quoted\" template".into(), "back\\slash".into()];
        policy.freezes = vec![
            Freeze {
                name: "black friday \u{1F6D2}".into(),
                start: at("2026-11-27T00:00:00.250Z"),
                end: at("2026-11-30T23:59:59Z"),
                allow: vec![ChangeType::Standard, ChangeType::Emergency],
            },
            Freeze {
                name: "quiet".into(),
                start: at("2027-01-01T00:00:00Z"),
                end: at("2027-01-02T00:00:00Z"),
                allow: Vec::new(),
            },
        ];
        policy.protected_branches = vec!["acme/shop:main".into(), "acme/api:release/*".into()];
        policy.change_pattern = r#"(?i)\b(?:CHG|change)[-_ ]?(\d+)\b|"CHG-(\d+)""#.into();

        // Act
        let text = policy.to_toml();

        // Assert
        assert_eq!(Policy::from_toml(&text), Ok(policy), "{text}");
    }

    #[test]
    fn compact_durations_use_the_largest_exact_unit() {
        assert_eq!(compact(Duration::from_secs(15 * 60)), "15m");
        assert_eq!(compact(Duration::from_secs(4 * 3600)), "4h");
        assert_eq!(compact(Duration::from_secs(3 * 86_400)), "72h");
        assert_eq!(compact(Duration::from_secs(61)), "61s");
        assert_eq!(compact(Duration::from_millis(1500)), "1s 500ms");
    }

    #[test]
    fn summary_of_the_contract_example_names_its_rules() {
        // Arrange
        let policy = Policy::from_toml(CONTRACT_EXAMPLE).expect("contract example loads");

        // Act
        let summary = policy.summary();

        // Assert
        assert_eq!(
            summary,
            "roles admin 1, cab 3, ecab 1; 1 person; normal changes need 2 approvals from cab; \
             emergency changes 1 approval from ecab, reviewed within 72h; 2 standard templates; \
             1 freeze; 1 protected branch"
        );
        assert!(!summary.contains('\n'));
    }

    #[test]
    fn summary_of_the_defaults_counts_empty_lists_too() {
        // Arrange
        let policy = Policy::default();

        // Act
        let summary = policy.summary();

        // Assert
        assert!(summary.contains("; 0 people; "), "{summary}");
        assert!(
            summary.contains("normal changes need 2 approvals from cab"),
            "{summary}"
        );
        assert!(
            summary.ends_with("0 standard templates; 0 freezes; 0 protected branches"),
            "{summary}"
        );
    }

    #[test]
    fn summary_without_roles_says_so() {
        // Arrange
        let policy = Policy {
            roles: BTreeMap::new(),
            ..Policy::default()
        };

        // Act
        let summary = policy.summary();

        // Assert
        assert!(summary.starts_with("no roles; "), "{summary}");
    }
}
