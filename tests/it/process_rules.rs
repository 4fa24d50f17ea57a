//! The process rules on both backends: roles, CAB quorum and vetoes, segregation of duties,
//! freezes, emergency reviews, SLA breaches with escalation, and major incidents.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{actor, ledger_on, TestDb, TestTime};
use opsledger::deadline_timer::DeadlineTimer;
use opsledger::domain::command::Command;
use opsledger::domain::ids::{Actor, Kind};
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;
use opsledger::domain::reply::{Event, Outcome};
use opsledger::ledger::Ledger;
use opsledger::store::{ListQuery, Store};
use tokio::sync::broadcast;

conformance!(
    a_whole_cab_meeting_plays_out_under_the_rules,
    roles_are_checked_granted_and_revoked_with_an_audit_entry,
    a_major_incident_gets_a_problem_that_cannot_close_without_a_root_cause,
    changing_the_priority_moves_the_sla_due_times,
    two_instances_escalate_each_breach_exactly_once,
    owners_and_managers_alone_act_on_records_and_the_cmdb_stays_consistent,
);

/// The team's rules plus a person with two accounts, an emergency review window and a freeze.
const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:cab1", "console:cab2", "console:cab3"]
ecab = ["console:cab1"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]

[people]
carol = ["console:cab3", "slack:UCAROL"]

[change.emergency]
approvals = 1
voters = "ecab"
review_within = "72h"

[[freeze]]
name = "year-end"
start = "2026-12-20T00:00:00Z"
end = "2027-01-04T00:00:00Z"
allow = ["emergency"]
"#;

struct Team {
    store: Arc<dyn Store>,
    ledger: Ledger,
    clock: Arc<TestTime>,
    events: broadcast::Receiver<Event>,
}

async fn team(db: &TestDb) -> Team {
    let store = db.store().await;
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    let events = ledger.subscribe();
    Team {
        store,
        ledger,
        clock,
        events,
    }
}

impl Team {
    async fn ok(&self, who: &str, text: &str) -> String {
        common::ok(&self.ledger, who, text).await
    }

    /// Runs a command that a rule must refuse; returns the message.
    async fn refused(&self, who: &str, text: &str, rule: &str) -> String {
        common::refused(&self.ledger, who, text, rule).await
    }

    async fn tick(&self) -> String {
        self.ledger
            .handle(Actor::system(), Command::Tick)
            .await
            .reply
            .text
    }

    async fn record(&self, kind: Kind, key: &str) -> Record {
        self.store
            .get(kind, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"))
    }

    fn drain_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    async fn ncs(&self) -> Vec<Record> {
        self.store
            .list(&ListQuery::new(Kind::Nonconformity, 100))
            .await
            .unwrap()
    }
}

async fn a_whole_cab_meeting_plays_out_under_the_rules(db: TestDb) {
    let mut t = team(&db).await;

    // A normal change reaches quorum; the requester cannot vote on it.
    t.ok(
        "console:alice",
        "change request \"Upgrade Postgres\" type:normal risk:high",
    )
    .await;
    t.ok("console:alice", "change submit CHG-1").await;
    let msg = t
        .refused(
            "console:alice",
            "change approve CHG-1",
            "segregation-of-duties",
        )
        .await;
    assert_eq!(msg, "you requested CHG-1, so you cannot vote on it");
    let msg = t
        .refused("console:dave", "change approve CHG-1", "cab-membership")
        .await;
    assert!(
        msg.starts_with("only cab members vote on normal changes and console:dave is not one"),
        "{msg}"
    );
    t.ok("console:cab3", "change approve CHG-1 ok").await;
    let msg = t
        .refused("console:alice", "change start CHG-1", "cab-quorum")
        .await;
    assert_eq!(
        msg,
        "CHG-1 needs 2 approvals from cab; it has 1 (console:cab3)"
    );
    // Carol changes her vote from her other account: it replaces the first, it does not add.
    let counted = t
        .ok(
            "slack:UCAROL",
            "change approve CHG-1 ok once the rollback plan is in",
        )
        .await;
    assert!(counted.contains("1/2 approvals"), "{counted}");
    assert!(t
        .ok("console:cab2", "change approve CHG-1")
        .await
        .contains("CHG-1 approved"));
    let msg = t
        .refused("console:cab1", "change approve CHG-1", "lifecycle")
        .await;
    assert_eq!(
        msg,
        "CHG-1 is approved; votes are closed once a change is decided"
    );
    let Record::Change(chg) = t.record(Kind::Change, "CHG-1").await else {
        panic!()
    };
    let voters: Vec<&str> = chg.approvals.iter().map(|a| a.voter.as_str()).collect();
    assert_eq!(voters, vec!["slack:UCAROL", "console:cab2"]);
    assert_eq!(
        chg.approvals[0].comment.as_deref(),
        Some("ok once the rollback plan is in")
    );

    // One reject vetoes.
    t.ok(
        "console:bob",
        "change request \"Drop legacy API\" type:normal",
    )
    .await;
    t.ok("console:bob", "change submit CHG-2").await;
    t.ok("console:cab1", "change approve CHG-2").await;
    assert!(t
        .ok("console:cab2", "change reject CHG-2 no rollback plan")
        .await
        .contains("CHG-2 rejected"));
    assert_eq!(t.record(Kind::Change, "CHG-2").await.status(), "rejected");

    // A window inside the freeze is refused when it is scheduled.
    let msg = t
        .refused("console:bob", "change request \"Resize disks\" type:normal window:2026-12-22T22:00Z..2026-12-22T23:00Z", "change-freeze")
        .await;
    assert_eq!(
        msg,
        "this change is a normal change and the year-end freeze (2026-12-20T00:00Z..2027-01-04T00:00Z) allows only emergency changes; it ends 2027-01-04T00:00Z; pick a window after it ends"
    );
    // An approved change with no window cannot start once the freeze begins.
    t.clock.set("2026-12-21T09:00:00Z".parse().unwrap());
    let msg = t
        .refused("console:alice", "change start CHG-1", "change-freeze")
        .await;
    assert!(
        msg.starts_with("CHG-1 is a normal change and the year-end freeze"),
        "{msg}"
    );

    // An emergency change needs the ECAB; its review is overdue after 72h and raises an NC.
    t.ok(
        "console:bob",
        "change request \"Hotfix TLS\" type:emergency",
    )
    .await;
    t.ok("console:bob", "change submit CHG-3").await;
    let msg = t
        .refused("console:cab2", "change approve CHG-3", "cab-membership")
        .await;
    assert!(
        msg.starts_with("only ecab members vote on emergency changes"),
        "{msg}"
    );
    t.ok("console:cab1", "change approve CHG-3").await;
    t.ok("console:bob", "change start CHG-3").await;
    t.ok("console:bob", "change complete CHG-3").await;
    t.clock.advance(chrono::Duration::hours(71));
    assert_eq!(t.tick().await, "no deadlines due");
    t.clock.advance(chrono::Duration::hours(2));
    assert_eq!(t.tick().await, "CHG-3 review overdue (NC-1)");
    assert_eq!(
        t.tick().await,
        "no deadlines due",
        "an overdue review is raised once"
    );

    // An SLA breach is recorded, raises an NC and is escalated.
    t.drain_events();
    t.ok(
        "console:dave",
        "incident raise Checkout down impact:high urgency:high",
    )
    .await;
    t.clock.advance(chrono::Duration::minutes(16));
    let text = t.tick().await;
    // A P1 is a major incident: ten minutes without a commander, its room was reminded too.
    assert_eq!(
        text,
        "INC-1: reminded that it has no commander\nINC-1 breached its response target (NC-2)"
    );
    let Record::Incident(inc) = t.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert!(inc.breached);
    let events = t.drain_events();
    assert!(
        events.contains(&Event::SlaBreached {
            id: "INC-1".into(),
            target: "response".into(),
            priority: "P1".into(),
            nonconformity: "NC-2".into()
        }),
        "{events:?}"
    );
    let ncs = t.ncs().await;
    let rules: Vec<(String, String)> = ncs
        .iter()
        .map(|r| match r {
            Record::Nonconformity(n) => (
                n.rule.clone(),
                n.record.map(|x| x.to_string()).unwrap_or_default(),
            ),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        rules,
        vec![
            ("emergency-review".into(), "CHG-3".into()),
            ("sla.response".into(), "INC-1".into())
        ]
    );

    // Every refusal above is on the record's timeline.
    let trail = t.store.audit_for("CHG-1", 0, 100).await.unwrap();
    let refusals: Vec<&str> = trail
        .iter()
        .filter(|e| e.outcome.starts_with("refused"))
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(
        refusals[2].starts_with("refused (cab-quorum): CHG-1 needs 2 approvals"),
        "{refusals:?}"
    );
    let breach = t.store.audit_for("INC-1", 0, 100).await.unwrap();
    assert!(breach
        .iter()
        .any(|e| e.action == "sla breach" && e.actor == "system:opsledger"));
}

async fn roles_are_checked_granted_and_revoked_with_an_audit_entry(db: TestDb) {
    let t = team(&db).await;
    let msg = t
        .refused("console:bob", "role grant @dave cab", "role")
        .await;
    assert_eq!(
        msg,
        "`role grant` needs the admin role, which console:bob does not hold; an admin can grant it with `role grant @console:bob admin`"
    );
    // An account on a platform this build does not have is refused, naming the ones it has.
    let unknown = t
        .refused("console:root", "role grant @irc:dave cab", "mention")
        .await;
    assert_eq!(
        unknown,
        "`irc:dave` is on no platform opsledger has: use one of slack, discord, mattermost, github, console"
    );
    t.ok("console:root", "role grant @dave cab").await;
    t.ok("console:bob", "change request Patch type:normal")
        .await;
    t.ok("console:bob", "change submit CHG-1").await;
    // The grant takes effect at once, even for the next command in the same batch.
    t.ok("console:dave", "change approve CHG-1").await;
    t.ok("console:root", "role revoke @dave cab").await;
    t.refused("console:dave", "change approve CHG-1", "cab-membership")
        .await;
    let trail = t.store.audit_for("console:dave", 0, 10).await.unwrap();
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("console:root", "role grant"),
            ("console:root", "role revoke")
        ]
    );
    // Managed commands name the role they need.
    let msg = t.refused("console:bob", "nc close NC-1", "role").await;
    assert!(msg.starts_with("`nc close` needs the admin role"), "{msg}");
    let msg = t.refused("console:bob", "change close CHG-1", "role").await;
    assert!(
        msg.starts_with("`change close` needs one of the roles change-manager, admin"),
        "{msg}"
    );
}

async fn a_major_incident_gets_a_problem_that_cannot_close_without_a_root_cause(db: TestDb) {
    let t = team(&db).await;
    // A P1 is major from the start.
    let raised = t
        .ok(
            "console:dave",
            "incident raise Payments down impact:high urgency:high",
        )
        .await;
    assert!(raised.starts_with("INC-1 raised"), "{raised}");
    let Record::Incident(inc) = t.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert!(inc.major);
    assert_eq!(
        inc.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        vec!["PRB-1"]
    );
    // A P3 becomes major when an incident manager says so.
    t.ok(
        "console:dave",
        "incident raise Slow search impact:medium urgency:medium",
    )
    .await;
    t.refused("console:dave", "incident major INC-2", "role")
        .await;
    assert!(t
        .ok("console:alice", "incident major INC-2")
        .await
        .contains("PRB-2 opened"));
    t.refused("console:alice", "incident major INC-2", "major-incident")
        .await;
    // Its problem reaches resolved with only a workaround, but cannot close without a root cause.
    t.ok(
        "console:alice",
        "problem workaround PRB-2 restart the indexer",
    )
    .await;
    t.ok("console:alice", "problem resolve PRB-2 indexer replaced")
        .await;
    let msg = t
        .refused(
            "console:alice",
            "problem close PRB-2 done",
            "major-incident-root-cause",
        )
        .await;
    assert_eq!(
        msg,
        "PRB-2 was opened for major incident INC-2, so it needs a root cause before it closes: `problem rootcause PRB-2 <cause>`"
    );
}

async fn changing_the_priority_moves_the_sla_due_times(db: TestDb) {
    let t = team(&db).await;
    t.ok(
        "console:dave",
        "incident raise Flaky login impact:low urgency:low",
    )
    .await;
    let Record::Incident(before) = t.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert_eq!(before.priority.as_str(), "P4");
    let text = t
        .ok(
            "console:alice",
            "incident priority INC-1 impact:high urgency:medium",
        )
        .await;
    assert!(text.starts_with("INC-1 re-prioritised P4 -> P2"), "{text}");
    let Record::Incident(after) = t.record(Kind::Incident, "INC-1").await else {
        panic!()
    };
    assert_eq!(
        after.response_due,
        before.created_at + chrono::Duration::minutes(30)
    );
    assert_eq!(
        after.resolve_due,
        before.created_at + chrono::Duration::hours(8)
    );
    // The clock now watches the earlier deadline.
    t.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(t.tick().await, "INC-1 breached its response target (NC-1)");
}

async fn two_instances_escalate_each_breach_exactly_once(db: TestDb) {
    // Two ledgers with their own pools and SLA clocks: two `serve` processes on one database.
    let mut a = team(&db).await;
    let b = team(&db).await;
    let timer_a = DeadlineTimer::spawn(a.ledger.clone(), a.clock.clone());
    let timer_b = DeadlineTimer::spawn(b.ledger.clone(), b.clock.clone());
    for i in 0..6 {
        let t = if i % 2 == 0 { &a } else { &b };
        t.ok(
            "console:dave",
            &format!("incident raise Outage {i} impact:high urgency:high"),
        )
        .await;
    }
    // Both replicas see the deadlines pass at the same moment.
    a.clock.advance(chrono::Duration::minutes(16));
    b.clock.advance(chrono::Duration::minutes(16));
    timer_a.wake();
    timer_b.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.ncs().await.len() < 6 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let any duplicate have its chance before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    timer_a.stop().await;
    timer_b.stop().await;

    let ncs = a.ncs().await;
    let mut breached: Vec<String> = ncs
        .iter()
        .map(|r| match r {
            Record::Nonconformity(n) => n.record.map(|x| x.to_string()).unwrap_or_default(),
            _ => unreachable!(),
        })
        .collect();
    breached.sort();
    assert_eq!(
        breached,
        (1..=6).map(|n| format!("INC-{n}")).collect::<Vec<_>>(),
        "one NC per breach"
    );
    let escalations = a
        .drain_events()
        .into_iter()
        .filter(|e| matches!(e, Event::SlaBreached { .. }))
        .count();
    assert!(
        escalations <= 6,
        "{escalations} escalations from one replica"
    );
    assert!(opsledger::app::verify_audit(&*a.store)
        .await
        .unwrap()
        .is_ok());
}

async fn owners_and_managers_alone_act_on_records_and_the_cmdb_stays_consistent(db: TestDb) {
    let t = team(&db).await;
    t.ok("console:dave", "incident raise Disk full").await;
    t.ok("console:bob", "incident ack INC-1").await;
    t.ok("console:bob", "incident resolve INC-1 cleaned up")
        .await;
    let msg = t
        .refused("console:bob", "incident close INC-1", "role")
        .await;
    assert_eq!(msg, "`incident close` is for console:dave or a holder of incident-manager or admin; console:bob is neither");
    t.ok("console:dave", "incident close INC-1").await;

    t.ok("console:dave", "change request Patch kernel type:normal")
        .await;
    t.ok("console:dave", "change submit CHG-1").await;
    t.ok("console:cab1", "change approve CHG-1").await;
    t.ok("console:cab2", "change approve CHG-1").await;
    let msg = t.refused("console:bob", "change start CHG-1", "role").await;
    assert!(
        msg.starts_with(
            "`change start` is for console:dave or a holder of change-manager or admin"
        ),
        "{msg}"
    );
    t.ok("console:alice", "change start CHG-1").await;

    t.ok("console:alice", "service add shop").await;
    let msg = t
        .refused("console:alice", "service add shop", "unique-name")
        .await;
    assert_eq!(msg, "service shop already exists");
    let msg = t
        .refused(
            "console:alice",
            "ci add shop-db service:warehouse",
            "cmdb-integrity",
        )
        .await;
    assert_eq!(
        msg,
        "no such service warehouse; add it first with `service add warehouse`"
    );
    let msg = t
        .refused(
            "console:alice",
            "ci add shop-api service:shop depends:shop-db",
            "cmdb-integrity",
        )
        .await;
    assert_eq!(msg, "shop-api depends on shop-db, which is not a configuration item; add it first with `ci add shop-db`");
}

/// With the real clock: a breach is acted on within a second of its due time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_timer_detects_a_breach_within_one_second_of_its_due_time() {
    let db = common::sqlite_db();
    let store = db.store().await;
    let policy = Policy::from_toml("[sla.P4]\nrespond = \"2s\"\nresolve = \"1h\"\n").unwrap();
    let clock: Arc<dyn opsledger::ledger::TimeSource> =
        Arc::new(opsledger::ledger::SystemTimeSource);
    let (ledger, _writer) =
        opsledger::app::start_ledger(store.clone(), policy, clock.clone(), "http://x".into());
    let mut events = ledger.subscribe();
    let timer = DeadlineTimer::spawn(ledger.clone(), clock);

    let raised = ledger
        .handle_text(
            actor("console:dave"),
            "incident raise Flaky cron impact:low urgency:low",
        )
        .await;
    assert_eq!(raised.reply.outcome, Outcome::Ok);

    let escalated = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::SlaBreached { id, .. }) = events.recv().await {
                return id;
            }
        }
    })
    .await
    .expect("no escalation within 5 s");
    timer.stop().await;
    assert_eq!(escalated, "INC-1");
    assert!(
        ledger
            .metrics()
            .render()
            .contains(r#"opsledger_sla_breaches_total{target="response"} 1"#),
        "the breach is counted in /metrics"
    );
    let Some(Record::Incident(inc)) = store.get(Kind::Incident, "INC-1").await.unwrap() else {
        panic!()
    };
    let late = inc.response_breached_at.unwrap() - inc.response_due;
    assert!(
        late >= chrono::Duration::zero(),
        "acted before the due time: {late}"
    );
    assert!(
        late < chrono::Duration::seconds(1),
        "acted {late} after the due time"
    );
}
