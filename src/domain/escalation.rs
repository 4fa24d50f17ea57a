//! Escalation chains, pure: the `[[escalation]]` steps of the rules file and how an incident walks them.
//!
//! A chain's steps run in order: each `notify` or `webhook` step pages at once, a `wait` step
//! sets the incident's next deadline, which the SLA clock's tick acts on (inside the writer's
//! lock, so with several replicas each step runs once). The chain stops at the first
//! acknowledgement or at resolution; after its last step it starts again `repeat` more times.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::Role;
use super::ids::Actor;
use super::priority::Priority;

/// Who a `notify` step pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The person on call on a schedule now (or, with `next`, the one after them).
    Oncall { schedule: String, next: bool },
    /// Every holder of a role.
    Role(Role),
    /// A `[people]` name or an account.
    Person(String),
    /// The incident's room and the incident channel.
    Channel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Notify(Target),
    Wait(Duration),
    /// POST a signed JSON document to a bridge (SMS, phone).
    Webhook(String),
}

/// One `[[escalation]]` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// Serves incidents whose service names no chain.
    pub default: bool,
    /// The priorities that start it.
    pub page: Vec<Priority>,
    pub steps: Vec<Step>,
    /// How many more times it starts over after its last step.
    pub repeat: u32,
}

/// Where an incident stands on its chain, kept on the incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub chain: String,
    /// The next step to run (an index into the chain's steps).
    pub step: usize,
    /// 0 for the first pass, then one more for each repeat.
    pub round: u32,
    /// When the next step is due, while a wait is under way.
    pub next_at: Option<DateTime<Utc>>,
    /// Why it stopped: `acknowledged by ...`, `resolved`, `ran out of steps`.
    pub stopped: Option<String>,
    pub started_at: DateTime<Utc>,
    pub pages: Vec<Page>,
}

/// A page delivered through one account (or the webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivered {
    pub via: String,
    pub at: DateTime<Utc>,
}

/// One page: who was paged, by which step, through what, and their answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based, as people count steps.
    pub step: usize,
    pub round: u32,
    /// The step's target as written (`oncall:payments`), and whom it named.
    pub target: String,
    pub who: String,
    /// Where it went: accounts (`slack:U1`), `webhook`, `channel`.
    pub via: Vec<String>,
    pub at: DateTime<Utc>,
    /// Sent outside the working hours of the rules file (`[incidents] working_hours`).
    #[serde(default)]
    pub outside_hours: bool,
    /// Where and when the outbox delivered it (each account, or `webhook`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered: Vec<Delivered>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
}

impl Target {
    /// The step as the rules file writes it.
    pub fn text(&self) -> String {
        match self {
            Target::Oncall { schedule, .. } => format!("oncall:{schedule}"),
            Target::Role(r) => format!("role:{}", r.as_str()),
            Target::Person(p) => p.clone(),
            Target::Channel => "channel".to_string(),
        }
    }
}

impl Chain {
    /// Whether an incident of this priority starts the chain.
    pub fn pages(&self, p: Priority) -> bool {
        self.page.contains(&p)
    }
}

impl Escalation {
    pub fn start(chain: &Chain, now: DateTime<Utc>) -> Escalation {
        Escalation {
            chain: chain.name.clone(),
            step: 0,
            round: 0,
            next_at: None,
            stopped: None,
            started_at: now,
            pages: Vec::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.stopped.is_none()
    }

    /// Runs the chain from where it stands at `now`: returns the paging steps due now (their
    /// indexes), and leaves the state at the next wait's end, or stopped when the steps (and
    /// repeats) ran out.
    pub fn advance(&mut self, chain: &Chain, now: DateTime<Utc>) -> Vec<usize> {
        let mut due = Vec::new();
        if !self.is_running() || self.next_at.is_some_and(|t| t > now) {
            return due;
        }
        self.next_at = None;
        // Bounded: a chain with no wait pages each of its steps once per round.
        let mut guard = chain.steps.len() * (chain.repeat as usize + 1) + 1;
        while guard > 0 {
            guard -= 1;
            if self.step >= chain.steps.len() {
                if self.round < chain.repeat {
                    self.round += 1;
                    self.step = 0;
                    continue;
                }
                self.stopped = Some("ran out of steps".to_string());
                return due;
            }
            let i = self.step;
            self.step += 1;
            match &chain.steps[i] {
                Step::Wait(d) => {
                    let d = chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX);
                    self.next_at = Some(now + d);
                    return due;
                }
                Step::Notify(_) | Step::Webhook(_) => due.push(i),
            }
        }
        due
    }

    /// Stops the chain (an acknowledgement, a resolution) and credits the pages answered.
    pub fn stop(&mut self, why: String, by: Option<&Actor>, now: DateTime<Utc>) {
        if !self.is_running() {
            return;
        }
        self.stopped = Some(why);
        self.next_at = None;
        if let Some(by) = by {
            for p in self
                .pages
                .iter_mut()
                .filter(|p| p.acknowledged_at.is_none())
            {
                p.acknowledged_by = Some(by.clone());
                p.acknowledged_at = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn chain(repeat: u32) -> Chain {
        Chain {
            name: "payments".into(),
            default: true,
            page: vec![Priority::P1],
            steps: vec![
                Step::Notify(Target::Oncall {
                    schedule: "payments".into(),
                    next: false,
                }),
                Step::Wait(Duration::from_secs(300)),
                Step::Notify(Target::Role(Role::IncidentManager)),
                Step::Webhook("https://pager.example/hook".into()),
            ],
            repeat,
        }
    }

    #[test]
    fn steps_run_until_a_wait_and_resume_when_it_ends() {
        let c = chain(0);
        let t0 = at("2026-12-01T10:00:00Z");
        let mut e = Escalation::start(&c, t0);
        assert_eq!(e.advance(&c, t0), vec![0]);
        assert_eq!(e.next_at, Some(at("2026-12-01T10:05:00Z")));
        // Before the wait ends, nothing; a second tick at the same moment, nothing.
        assert!(e.advance(&c, at("2026-12-01T10:04:59Z")).is_empty());
        assert_eq!(e.advance(&c, at("2026-12-01T10:05:00Z")), vec![2, 3]);
        assert_eq!(e.stopped.as_deref(), Some("ran out of steps"));
        assert!(e.advance(&c, at("2026-12-01T11:00:00Z")).is_empty());
    }

    #[test]
    fn a_repeat_starts_the_chain_over_and_a_stop_ends_it() {
        let c = chain(1);
        let t0 = at("2026-12-01T10:00:00Z");
        let mut e = Escalation::start(&c, t0);
        e.advance(&c, t0);
        assert_eq!(e.advance(&c, at("2026-12-01T10:05:00Z")), vec![2, 3, 0]);
        assert_eq!(e.round, 1);
        e.pages.push(Page {
            step: 1,
            round: 1,
            target: "oncall:payments".into(),
            who: "alice".into(),
            via: vec!["slack:U1".into()],
            at: t0,
            outside_hours: false,
            delivered: Vec::new(),
            acknowledged_by: None,
            acknowledged_at: None,
        });
        let bob = Actor::parse("slack:UBOB").unwrap();
        e.stop(
            "acknowledged by slack:UBOB".into(),
            Some(&bob),
            at("2026-12-01T10:06:00Z"),
        );
        assert!(!e.is_running());
        assert_eq!(e.pages[0].acknowledged_by.as_ref(), Some(&bob));
        assert!(e.advance(&c, at("2026-12-01T10:20:00Z")).is_empty());
    }
}
