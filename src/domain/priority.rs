//! Incident priority from the impact × urgency matrix, and SLA due times from the priority's targets.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    P1,
    P2,
    P3,
    P4,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    /// `P1`..`P4`, as the rules file and the API write them.
    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rows are impact high/medium/low, columns urgency high/medium/low.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityMatrix {
    pub matrix: [[Priority; 3]; 3],
}

impl Default for PriorityMatrix {
    fn default() -> Self {
        use Priority::*;
        PriorityMatrix {
            matrix: [[P1, P2, P3], [P2, P3, P4], [P3, P4, P4]],
        }
    }
}

impl PriorityMatrix {
    pub fn priority(&self, impact: Level, urgency: Level) -> Priority {
        self.matrix[impact.index()][urgency.index()]
    }
}

/// How long the service desk has to respond to, and to resolve, an incident of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaTarget {
    pub respond: Duration,
    pub resolve: Duration,
}

/// SLA targets for every priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaTargets {
    pub targets: [SlaTarget; 4],
}

impl Default for SlaTargets {
    /// Built-in targets: P1 15m/4h, P2 30m/8h, P3 4h/3d, P4 1d/5d.
    fn default() -> Self {
        let t = |respond_min: u64, resolve_h: u64| SlaTarget {
            respond: Duration::from_secs(respond_min * 60),
            resolve: Duration::from_secs(resolve_h * 3600),
        };
        SlaTargets {
            targets: [t(15, 4), t(30, 8), t(240, 72), t(1440, 120)],
        }
    }
}

impl SlaTargets {
    pub fn target(&self, p: Priority) -> SlaTarget {
        self.targets[p as usize]
    }

    /// Response and resolution due times for an incident of priority `p` opened at `opened`.
    pub fn due(&self, p: Priority, opened: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let t = self.target(p);
        (add(opened, t.respond), add(opened, t.resolve))
    }
}

/// Adds a duration, saturating at the far future rather than panicking on absurd targets.
pub fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// "in 14m", "3h 2m ago": a compact, human countdown for chat replies.
pub fn countdown(now: DateTime<Utc>, due: DateTime<Utc>) -> String {
    let secs = (due - now).num_seconds();
    let text = human(secs.unsigned_abs());
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} overdue")
    }
}

/// How close an SLA clock is to its deadline, as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// A missed target is recorded.
    Breached,
    /// Past the deadline, the breach not recorded yet.
    Overdue,
    /// A quarter or less of the target's time is left.
    Soon,
    Ok,
}

impl Urgency {
    /// The clock counting from `started` to `due`, read at `now`.
    pub fn of(
        now: DateTime<Utc>,
        started: DateTime<Utc>,
        due: DateTime<Utc>,
        breached: bool,
    ) -> Self {
        let span = (due - started).num_seconds().max(1);
        let left = (due - now).num_seconds();
        if breached {
            Urgency::Breached
        } else if left < 0 {
            Urgency::Overdue
        } else if left * 4 <= span {
            Urgency::Soon
        } else {
            Urgency::Ok
        }
    }

    /// Its CSS class and its word, so colour is never the only signal.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Breached => "breached",
            Urgency::Overdue => "overdue",
            Urgency::Soon => "soon",
            Urgency::Ok => "ok",
        }
    }
}

fn human(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urgency_turns_soon_at_a_quarter_left_then_overdue_and_breached_wins() {
        use super::Urgency;
        let t = |m: i64| chrono::DateTime::UNIX_EPOCH + chrono::Duration::minutes(m);
        // A 60-minute target started at 0.
        assert_eq!(Urgency::of(t(0), t(0), t(60), false), Urgency::Ok);
        assert_eq!(Urgency::of(t(44), t(0), t(60), false), Urgency::Ok);
        assert_eq!(Urgency::of(t(45), t(0), t(60), false), Urgency::Soon);
        assert_eq!(Urgency::of(t(60), t(0), t(60), false), Urgency::Soon);
        assert_eq!(Urgency::of(t(61), t(0), t(60), false), Urgency::Overdue);
        assert_eq!(Urgency::of(t(10), t(0), t(60), true), Urgency::Breached);
        // A deadline at its start (a zero target) is soon, not a division by zero.
        assert_eq!(Urgency::of(t(0), t(0), t(0), false), Urgency::Soon);
        assert!(Urgency::Breached < Urgency::Overdue && Urgency::Soon < Urgency::Ok);
    }

    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_matrix_gives_p1_for_high_high_and_p4_for_low_low() {
        let m = PriorityMatrix::default();
        assert_eq!(m.priority(Level::High, Level::High), Priority::P1);
        assert_eq!(m.priority(Level::High, Level::Low), Priority::P3);
        assert_eq!(m.priority(Level::Medium, Level::Medium), Priority::P3);
        assert_eq!(m.priority(Level::Low, Level::High), Priority::P3);
        assert_eq!(m.priority(Level::Low, Level::Low), Priority::P4);
    }

    #[test]
    fn due_times_follow_the_priority_targets() {
        let opened = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let (respond, resolve) = SlaTargets::default().due(Priority::P1, opened);
        assert_eq!(
            respond,
            Utc.with_ymd_and_hms(2026, 11, 29, 10, 15, 0).unwrap()
        );
        assert_eq!(
            resolve,
            Utc.with_ymd_and_hms(2026, 11, 29, 14, 0, 0).unwrap()
        );
        let (_, resolve) = SlaTargets::default().due(Priority::P4, opened);
        assert_eq!(
            resolve,
            Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap()
        );
    }

    #[test]
    fn absurd_targets_saturate_instead_of_panicking() {
        let opened = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        assert_eq!(
            add(opened, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    #[test]
    fn countdown_reads_like_a_person_would_say_it() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        assert_eq!(
            countdown(now, now + chrono::Duration::minutes(14)),
            "in 14m"
        );
        assert_eq!(
            countdown(now, now - chrono::Duration::minutes(90)),
            "1h 30m overdue"
        );
        assert_eq!(
            countdown(now, now + chrono::Duration::hours(50)),
            "in 2d 2h"
        );
    }
}
