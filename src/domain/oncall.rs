//! On-call schedules, pure: rotations in a time zone, overrides, and who is on call when.
//!
//! Daily and weekly shifts change hands at the same wall-clock time in the schedule's zone, so a
//! handoff stays at 09:00 across daylight saving (a shift is then an hour shorter or longer); a
//! rotation of a fixed duration (`12h`) counts real time from its start.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::ids::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Daily,
    Weekly,
    /// A fixed length of real time, at least an hour.
    Every(Duration),
}

/// One `[[oncall]]` schedule of the rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    /// In turn order: a `[people]` name or a `platform:id` account.
    pub members: Vec<String>,
    pub rotation: Rotation,
    /// When the first shift starts, in the schedule's zone.
    pub start: NaiveDateTime,
    /// The handoff as written (`Mon 09:00`), when given; it matches `start`.
    pub handoff: Option<String>,
    pub timezone: Tz,
}

/// An override made from chat: `who` is on call from `from` until `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// A `[people]` name or an account.
    pub who: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

/// Who is on call for a stretch of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub who: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Set when an override, not the rotation, put them there.
    pub overridden: bool,
}

/// Why a schedule in the rules file cannot be used: the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        problem: problem.into(),
    }
}

/// `daily`, `weekly`, or a duration of at least an hour (`12h`).
pub fn parse_rotation(s: &str) -> Result<Rotation, ScheduleError> {
    match s {
        "daily" => Ok(Rotation::Daily),
        "weekly" => Ok(Rotation::Weekly),
        other => humantime::parse_duration(other)
            .ok()
            .filter(|d| *d >= Duration::from_secs(3600))
            .map(Rotation::Every)
            .ok_or_else(|| {
                bad(
                    "rotation",
                    format!(
                        "is `{other}`; use daily, weekly, or a duration of at least 1h such as 12h"
                    ),
                )
            }),
    }
}

pub fn rotation_text(r: Rotation) -> String {
    match r {
        Rotation::Daily => "daily".to_string(),
        Rotation::Weekly => "weekly".to_string(),
        Rotation::Every(d) => humantime::format_duration(d).to_string(),
    }
}

/// A local time such as `2026-11-30T09:00:00` or `2026-11-30T09:00`.
pub fn parse_start(s: &str) -> Result<NaiveDateTime, ScheduleError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .map_err(|_| {
            bad(
                "start",
                format!("is `{s}`; use a local time such as 2026-11-30T09:00:00 (no zone: `timezone` gives it)"),
            )
        })
}

pub fn parse_timezone(s: &str) -> Result<Tz, ScheduleError> {
    s.parse::<Tz>().map_err(|_| {
        bad(
            "timezone",
            format!("is `{s}`; use an IANA zone such as Europe/Berlin or UTC"),
        )
    })
}

/// Checks `handoff` (`Mon 09:00` for weekly, `09:00` for daily) against the start.
pub fn check_handoff(
    handoff: &str,
    rotation: Rotation,
    start: NaiveDateTime,
) -> Result<(), ScheduleError> {
    let (day, time) = match handoff.split_once(' ') {
        Some((d, t)) => (Some(d), t),
        None => (None, handoff),
    };
    let time = NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| {
        bad(
            "handoff",
            format!("is `{handoff}`; use `Mon 09:00` (weekly) or `09:00` (daily)"),
        )
    })?;
    let day = match day {
        Some(d) => Some(d.parse::<Weekday>().map_err(|_| {
            bad(
                "handoff",
                format!("names `{d}`, not a day: use Mon, Tue, ... Sun"),
            )
        })?),
        None => None,
    };
    match (rotation, day) {
        (Rotation::Every(_), _) => {
            return Err(bad(
                "handoff",
                "applies to daily and weekly rotations; a rotation of a fixed length changes hands every length from `start`",
            ))
        }
        (Rotation::Daily, Some(_)) => {
            return Err(bad("handoff", "of a daily rotation is a time only, such as 09:00"))
        }
        (Rotation::Weekly, None) => {
            return Err(bad("handoff", "of a weekly rotation names a day, such as Mon 09:00"))
        }
        _ => {}
    }
    if start.time() != time || day.is_some_and(|d| d != start.weekday()) {
        return Err(bad(
            "start",
            format!(
                "is {} ({}), not at the handoff {handoff}: the first shift starts at a handoff",
                start.format("%Y-%m-%dT%H:%M"),
                start.weekday()
            ),
        ));
    }
    Ok(())
}

/// A local time as an instant in `tz`: the earlier of two in a repeated hour, and the first
/// instant after a skipped one.
fn instant(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..4 {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

impl Schedule {
    /// When shift `k` (0 = the first) begins.
    pub fn boundary(&self, k: i64) -> DateTime<Utc> {
        match self.rotation {
            Rotation::Daily => instant(self.timezone, self.start + chrono::Duration::days(k)),
            Rotation::Weekly => instant(self.timezone, self.start + chrono::Duration::weeks(k)),
            Rotation::Every(d) => {
                let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1));
                instant(self.timezone, self.start) + d * (k as i32)
            }
        }
    }

    /// The shift of the rotation at `at`, if the schedule has begun.
    pub fn rotation_at(&self, at: DateTime<Utc>) -> Option<Shift> {
        let first = self.boundary(0);
        if at < first || self.members.is_empty() {
            return None;
        }
        let nominal = match self.rotation {
            Rotation::Daily => 86_400,
            Rotation::Weekly => 7 * 86_400,
            Rotation::Every(d) => d.as_secs().max(1) as i64,
        };
        let mut k = (at - first).num_seconds() / nominal;
        while self.boundary(k + 1) <= at {
            k += 1;
        }
        while k > 0 && self.boundary(k) > at {
            k -= 1;
        }
        let n = self.members.len() as i64;
        Some(Shift {
            who: self.members[k.rem_euclid(n) as usize].clone(),
            from: self.boundary(k),
            until: self.boundary(k + 1),
            overridden: false,
        })
    }

    /// Who is on call at `at`: an override covering it, else the rotation, cut short where an
    /// override begins.
    pub fn on_call(&self, at: DateTime<Utc>, overrides: &[Override]) -> Option<Shift> {
        if let Some(o) = overrides.iter().find(|o| o.from <= at && at < o.to) {
            return Some(Shift {
                who: o.who.clone(),
                from: o.from,
                until: o.to,
                overridden: true,
            });
        }
        let mut shift = self.rotation_at(at)?;
        if let Some(next) = overrides
            .iter()
            .filter(|o| o.from > at && o.from < shift.until)
            .map(|o| o.from)
            .min()
        {
            shift.until = next;
        }
        if let Some(prev) = overrides
            .iter()
            .filter(|o| o.to <= at && o.to > shift.from)
            .map(|o| o.to)
            .max()
        {
            shift.from = prev;
        }
        Some(shift)
    }

    /// Who is on call from `from` until `to`, stretch by stretch (from the schedule's start if
    /// that is later).
    pub fn shifts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        overrides: &[Override],
    ) -> Vec<Shift> {
        let mut out = Vec::new();
        let mut t = from.max(self.boundary(0));
        // Bounded: a year of hourly shifts at most.
        while t < to && out.len() < 9000 {
            let Some(s) = self.on_call(t, overrides) else {
                break;
            };
            t = s.until;
            out.push(s);
        }
        out
    }

    /// An instant as the schedule's people read it: `Mon 07 Dec 09:00 CET`.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.timezone)
            .format("%a %d %b %H:%M %Z")
            .to_string()
    }
}

/// Working hours (`[incidents] working_hours`, `timezone`): the days and the local times the
/// service report counts pages inside of.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkingHours {
    /// As written: `Mon-Fri 09:00-17:00`.
    pub text: String,
    pub days: Vec<Weekday>,
    pub from: NaiveTime,
    pub to: NaiveTime,
    pub timezone: Tz,
}

impl Default for WorkingHours {
    fn default() -> Self {
        WorkingHours::parse("Mon-Fri 09:00-17:00", "UTC").expect("valid built-in working hours")
    }
}

impl WorkingHours {
    /// `Mon-Fri 09:00-17:00`, `Mon,Wed,Fri 08:00-16:30`, in the zone `timezone`.
    pub fn parse(text: &str, timezone: &str) -> Result<WorkingHours, ScheduleError> {
        let problem = || {
            bad(
                "working_hours",
                format!("is `{text}`; write days and times such as Mon-Fri 09:00-17:00"),
            )
        };
        let (days, times) = text.trim().split_once(' ').ok_or_else(problem)?;
        let day = |d: &str| d.trim().parse::<Weekday>().map_err(|_| problem());
        let mut list = Vec::new();
        for part in days.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (mut d, end) = (day(a)?, day(b)?);
                    loop {
                        list.push(d);
                        if d == end || list.len() > 7 {
                            break;
                        }
                        d = d.succ();
                    }
                }
                None => list.push(day(part)?),
            }
        }
        let (from, to) = times.trim().split_once('-').ok_or_else(problem)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| problem());
        let (from, to) = (time(from)?, time(to)?);
        if to <= from {
            return Err(problem());
        }
        Ok(WorkingHours {
            text: text.trim().to_string(),
            days: list,
            from,
            to,
            timezone: parse_timezone(timezone)?,
        })
    }

    /// Whether `at` falls within them.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        self.days.contains(&local.weekday()) && local.time() >= self.from && local.time() < self.to
    }
}

/// The override of `list` that overlaps `from..to`, if any.
pub fn overlapping(list: &[Override], from: DateTime<Utc>, to: DateTime<Utc>) -> Option<&Override> {
    list.iter().find(|o| from < o.to && o.from < to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn payments() -> Schedule {
        Schedule {
            name: "payments".into(),
            members: vec!["alice".into(), "bob".into(), "carol".into()],
            rotation: Rotation::Weekly,
            start: parse_start("2026-11-30T09:00:00").unwrap(),
            handoff: Some("Mon 09:00".into()),
            timezone: parse_timezone("Europe/Berlin").unwrap(),
        }
    }

    #[test]
    fn members_take_weekly_turns_from_the_start_at_local_handoff_time() {
        let s = payments();
        // 09:00 in Berlin is 08:00Z in winter.
        assert_eq!(s.boundary(0), at("2026-11-30T08:00:00Z"));
        let now = s.rotation_at(at("2026-12-01T12:00:00Z")).unwrap();
        assert_eq!(now.who, "alice");
        assert_eq!(now.until, at("2026-12-07T08:00:00Z"));
        assert_eq!(
            s.rotation_at(at("2026-12-07T08:00:00Z")).unwrap().who,
            "bob"
        );
        assert_eq!(
            s.rotation_at(at("2026-12-14T07:59:59Z")).unwrap().who,
            "bob"
        );
        assert_eq!(
            s.rotation_at(at("2026-12-14T08:00:00Z")).unwrap().who,
            "carol"
        );
        assert_eq!(
            s.rotation_at(at("2026-12-21T08:00:00Z")).unwrap().who,
            "alice"
        );
        assert_eq!(
            s.rotation_at(at("2026-11-30T07:59:59Z")),
            None,
            "before the start"
        );
    }

    #[test]
    fn the_handoff_stays_at_nine_in_berlin_across_daylight_saving() {
        // Summer time begins on Sunday 2027-03-28: Monday 09:00 is 08:00Z before, 07:00Z after.
        let s = payments();
        let before = s.rotation_at(at("2027-03-24T12:00:00Z")).unwrap();
        assert_eq!(before.from, at("2027-03-22T08:00:00Z"));
        assert_eq!(
            before.until,
            at("2027-03-29T07:00:00Z"),
            "a week one hour short"
        );
        let after = s.rotation_at(at("2027-03-29T07:00:00Z")).unwrap();
        assert_ne!(after.who, before.who);
        assert_eq!(s.local(after.from), "Mon 29 Mar 09:00 CEST");
        // And back in October (2027-10-31): 09:00 CEST is 07:00Z, 09:00 CET 08:00Z.
        let autumn = s.rotation_at(at("2027-10-27T12:00:00Z")).unwrap();
        assert_eq!(autumn.from, at("2027-10-25T07:00:00Z"));
        assert_eq!(
            autumn.until,
            at("2027-11-01T08:00:00Z"),
            "a week one hour long"
        );
        // Turns keep counting: 2027-03-22 is week 16 (bob), 2027-03-29 week 17 (carol), and
        // 2027-05-03 week 22 (bob again).
        assert_eq!(before.who, "bob");
        assert_eq!(after.who, "carol");
        assert_eq!(
            s.rotation_at(at("2027-05-03T07:00:00Z")).unwrap().who,
            "bob"
        );
    }

    #[test]
    fn a_daily_rotation_at_a_skipped_local_time_starts_at_the_first_instant_after() {
        let s = Schedule {
            rotation: Rotation::Daily,
            start: parse_start("2027-03-26T02:30").unwrap(),
            handoff: None,
            ..payments()
        };
        // 2027-03-28 02:30 does not exist in Berlin: clocks go from 02:00 to 03:00 (01:00Z).
        assert_eq!(s.boundary(2), at("2027-03-28T01:00:00Z"));
        assert_eq!(s.boundary(3), at("2027-03-29T00:30:00Z"));
    }

    #[test]
    fn a_fixed_rotation_counts_real_time() {
        let s = Schedule {
            rotation: parse_rotation("12h").unwrap(),
            start: parse_start("2027-03-27T20:00").unwrap(),
            handoff: None,
            ..payments()
        };
        // Across the spring change, 12h of real time: 20:00 CET, then 09:00 CEST (07:00Z).
        assert_eq!(s.boundary(1), at("2027-03-28T07:00:00Z"));
        assert_eq!(
            s.rotation_at(at("2027-03-28T07:00:00Z")).unwrap().who,
            "bob"
        );
    }

    #[test]
    fn an_override_wins_over_the_rotation_and_cuts_its_shifts() {
        let s = payments();
        let o = Override {
            who: "dave".into(),
            from: at("2026-12-24T17:00:00Z"),
            to: at("2026-12-27T08:00:00Z"),
            by: Actor::parse("slack:U1").unwrap(),
            at: at("2026-12-01T00:00:00Z"),
        };
        let list = vec![o.clone()];
        let christmas = s.on_call(at("2026-12-25T12:00:00Z"), &list).unwrap();
        assert_eq!(
            (christmas.who.as_str(), christmas.overridden),
            ("dave", true)
        );
        let before = s.on_call(at("2026-12-24T10:00:00Z"), &list).unwrap();
        // The week from Monday 21 December is the fourth: alice's again.
        assert_eq!(before.who, "alice");
        assert_eq!(before.until, o.from, "alice hands over to dave");
        let after = s.on_call(at("2026-12-27T09:00:00Z"), &list).unwrap();
        assert_eq!((after.who.as_str(), after.from), ("alice", o.to));
        let week = s.shifts(
            at("2026-12-21T08:00:00Z"),
            at("2026-12-28T08:00:00Z"),
            &list,
        );
        let who: Vec<&str> = week.iter().map(|s| s.who.as_str()).collect();
        assert_eq!(who, ["alice", "dave", "alice"]);
        assert!(overlapping(
            &list,
            at("2026-12-26T00:00:00Z"),
            at("2026-12-28T00:00:00Z")
        )
        .is_some());
        assert!(overlapping(&list, o.to, at("2026-12-28T00:00:00Z")).is_none());
    }

    #[test]
    fn working_hours_are_local_days_and_times() {
        let w = WorkingHours::parse("Mon-Fri 09:00-17:00", "Europe/Berlin").unwrap();
        assert_eq!(w.days.len(), 5);
        // Tuesday 08:30Z is 09:30 in Berlin; 16:30Z is 17:30.
        assert!(w.contains(at("2026-12-01T08:30:00Z")));
        assert!(!w.contains(at("2026-12-01T16:30:00Z")));
        assert!(!w.contains(at("2026-12-05T10:00:00Z")), "a Saturday");
        let odd = WorkingHours::parse("Mon,Wed 08:00-12:00", "UTC").unwrap();
        assert_eq!(odd.days, [Weekday::Mon, Weekday::Wed]);
        assert!(WorkingHours::parse("weekdays", "UTC").is_err());
        assert!(WorkingHours::parse("Mon-Fri 17:00-09:00", "UTC").is_err());
    }

    #[test]
    fn rules_file_values_are_checked_with_reasons() {
        assert_eq!(parse_rotation("weekly"), Ok(Rotation::Weekly));
        assert!(parse_rotation("30m")
            .unwrap_err()
            .problem
            .contains("at least 1h"));
        assert!(parse_timezone("Mars/Olympus").is_err());
        let start = parse_start("2026-11-30T09:00:00").unwrap();
        assert_eq!(check_handoff("Mon 09:00", Rotation::Weekly, start), Ok(()));
        assert_eq!(
            check_handoff("Tue 09:00", Rotation::Weekly, start)
                .unwrap_err()
                .field,
            "start"
        );
        assert!(check_handoff("09:00", Rotation::Weekly, start).is_err());
        assert_eq!(check_handoff("09:00", Rotation::Daily, start), Ok(()));
        assert!(check_handoff("9 o'clock", Rotation::Daily, start).is_err());
        assert!(check_handoff("09:00", Rotation::Every(Duration::from_secs(7200)), start).is_err());
    }
}
