//! The process rules in force written back as a rules file (`opsledger policy show`), and a one-line summary.
//!
//! The output is the same TOML that `Policy::from_toml` reads, in the order of the contract's
//! example, with every setting spelled out (built-in defaults included), so that it is itself a
//! valid rules file: `Policy::from_toml(&p.to_toml()) == Ok(p)`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::ids::Actor;
use super::policy::{ApprovalRule, Policy};
use super::priority::Priority;

impl Policy {
    /// The policy as a rules file, in the format `Policy::from_toml` reads.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();

        out.push_str("[roles]\n");
        for (role, members) in &self.roles {
            line(&mut out, role.as_str(), actors(members));
        }

        out.push_str("\n[people]\n");
        for (person, accounts) in &self.people {
            line(&mut out, person, actors(accounts));
        }

        out.push_str(
            "\n[priority]   # rows impact high/medium/low, columns urgency high/medium/low\n",
        );
        let rows = self
            .priority
            .matrix
            .iter()
            .map(|row| strings(row.iter().map(|p| p.as_str())))
            .collect();
        line(&mut out, "matrix", toml::Value::Array(rows));

        for prio in Priority::ALL {
            let target = self.sla.target(prio);
            let _ = writeln!(out, "\n[sla.{prio}]");
            line(&mut out, "respond", duration(target.respond));
            line(&mut out, "resolve", duration(target.resolve));
        }

        out.push_str("\n[change.normal]\n");
        approval(&mut out, &self.normal);
        out.push_str("\n[change.emergency]\n");
        approval(&mut out, &self.emergency);
        out.push_str("\n[change.standard]\n");
        line(
            &mut out,
            "templates",
            strings(self.standard_templates.iter().map(String::as_str)),
        );

        for freeze in &self.freezes {
            out.push_str("\n[[freeze]]\n");
            line(&mut out, "name", string(&freeze.name));
            line(&mut out, "start", time(freeze.start));
            line(&mut out, "end", time(freeze.end));
            line(
                &mut out,
                "allow",
                strings(freeze.allow.iter().map(|t| t.as_str())),
            );
        }

        out.push_str("\n[github]\n");
        line(
            &mut out,
            "protected",
            strings(self.protected_branches.iter().map(String::as_str)),
        );
        line(&mut out, "change_pattern", string(&self.change_pattern));
        out
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

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `key = value` with the key quoted and the value escaped as TOML needs them.
fn line(out: &mut String, key: &str, value: toml::Value) {
    let mut one = toml::Table::new();
    one.insert(key.to_string(), value);
    out.push_str(&one.to_string());
}

fn approval(out: &mut String, rule: &ApprovalRule) {
    line(
        out,
        "approvals",
        toml::Value::Integer(rule.approvals.into()),
    );
    line(out, "voters", string(rule.voters.as_str()));
    if let Some(within) = rule.review_within {
        line(out, "review_within", duration(within));
    }
}

fn string(s: &str) -> toml::Value {
    toml::Value::String(s.to_string())
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> toml::Value {
    toml::Value::Array(items.map(string).collect())
}

fn actors(set: &BTreeSet<Actor>) -> toml::Value {
    strings(set.iter().map(Actor::as_str))
}

/// RFC 3339 in UTC, with fractional seconds only when there are any: `2026-12-20T00:00:00Z`.
fn time(at: DateTime<Utc>) -> toml::Value {
    string(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn duration(d: Duration) -> toml::Value {
    string(&compact(d))
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

    /// The example from the contract's "Process rules file" section, verbatim.
    const CONTRACT_EXAMPLE: &str = r#"
[roles]                      # who may do what; `role grant` adds at run time (audited)
admin = ["console:root"]
cab   = ["slack:U0CAB1", "slack:U0CAB2", "discord:4242"]
ecab  = ["slack:U0CAB1"]

[people]                     # one person, several accounts: segregation of duties spans them
alice = ["slack:U0ALICE", "discord:4141", "github:alice"]

[priority]                   # rows impact high/medium/low, columns urgency high/medium/low
matrix = [["P1", "P2", "P3"], ["P2", "P3", "P4"], ["P3", "P4", "P4"]]

[sla.P1]
respond = "15m"
resolve = "4h"

[change.normal]
approvals = 2                # approvals from `cab` needed; one reject rejects
[change.emergency]
approvals = 1
voters = "ecab"
review_within = "72h"
[change.standard]
templates = ["restart-service", "rotate-certificate"]   # pre-approved

[[freeze]]
name = "year-end"
start = "2026-12-20T00:00:00Z"
end = "2027-01-04T00:00:00Z"
allow = ["emergency"]

[github]
protected = ["acme/shop:main"]   # merges here need an approved change
change_pattern = "CHG-(\\d+)"
"#;

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
        assert_eq!(sections.last(), Some(&"[github]"));
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
