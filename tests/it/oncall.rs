//! On-call schedules: who is on call by rotation and override, the next two weeks, and overrides as audited records that never overlap, on both backends.
use crate::common::{self, TestDb, TestTime};

use chrono::{DateTime, Utc};
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;

const RULES: &str = r#"
[roles]
admin = ["console:root"]
incident-manager = ["console:ines"]

[people]
alice = ["console:alice", "slack:UALICE"]
bob = ["console:bob", "slack:UBOB"]
carol = ["console:carol"]
dave = ["console:dave", "discord:4242"]

[[oncall]]
name = "payments"
members = ["alice", "bob", "carol"]
rotation = "weekly"
start = "2026-11-30T09:00:00"
handoff = "Mon 09:00"
timezone = "Europe/Berlin"

[[oncall]]
name = "db"
members = ["slack:UDBA"]
rotation = "12h"
start = "2026-11-30T08:00"
timezone = "UTC"
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

conformance!(
    who_is_on_call_follows_the_rotation_and_an_override_wins,
    overrides_never_overlap_and_are_for_members_or_incident_managers,
);

async fn who_is_on_call_follows_the_rotation_and_an_override_wins(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let clock = TestTime::at(at("2026-11-29T12:00:00Z"));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );

    // Act and assert: before the first shift, then in the first week.
    let before = common::ok(&ledger, "console:zed", "oncall who payments").await;
    assert_eq!(
        before,
        "payments: nobody yet; it starts Mon 30 Nov 09:00 CET"
    );
    clock.set(at("2026-12-01T12:00:00Z"));
    let who = common::ok(&ledger, "console:zed", "oncall who").await;
    assert_eq!(
        who,
        "payments: alice (console:alice, slack:UALICE) until Mon 07 Dec 09:00 CET, then bob (console:bob, slack:UBOB) until Mon 14 Dec 09:00 CET\n\
         db: slack:UDBA until Tue 01 Dec 20:00 UTC, then slack:UDBA until Wed 02 Dec 08:00 UTC"
    );

    // Act: bob arranges cover for Christmas.
    let set = common::ok(
        &ledger,
        "console:bob",
        "oncall override payments @dave from:2026-12-24T18:00Z to:2026-12-27T09:00Z",
    )
    .await;

    // Assert: the override wins while it lasts, and shows in the next two weeks.
    assert_eq!(
        set,
        "payments: dave on call from Thu 24 Dec 19:00 CET to Sun 27 Dec 10:00 CET (instead of alice)"
    );
    clock.set(at("2026-12-25T12:00:00Z"));
    let christmas = common::ok(&ledger, "console:zed", "oncall who payments").await;
    assert_eq!(
        christmas,
        "payments: dave (console:dave, discord:4242) [override] until Sun 27 Dec 10:00 CET, then alice (console:alice, slack:UALICE) until Mon 28 Dec 09:00 CET"
    );
    clock.set(at("2026-12-20T12:00:00Z"));
    let show = common::ok(&ledger, "console:zed", "oncall show payments").await;
    let lines: Vec<&str> = show.lines().collect();
    assert_eq!(
        lines,
        [
            "payments (weekly, Europe/Berlin), the next 14 days:",
            // The shift under way is shown whole.
            "Mon 14 Dec 09:00 CET to Mon 21 Dec 09:00 CET: carol (console:carol)",
            "Mon 21 Dec 09:00 CET to Thu 24 Dec 19:00 CET: alice (console:alice, slack:UALICE)",
            "Thu 24 Dec 19:00 CET to Sun 27 Dec 10:00 CET: dave (console:dave, discord:4242) [override]",
            "Sun 27 Dec 10:00 CET to Mon 28 Dec 09:00 CET: alice (console:alice, slack:UALICE)",
            "Mon 28 Dec 09:00 CET to Mon 04 Jan 09:00 CET: bob (console:bob, slack:UBOB)",
        ]
    );

    // The override is a record, and its making is audited.
    let Some(Record::Oncall(rec)) = store.get(Kind::Oncall, "payments").await.unwrap() else {
        panic!("the payments record")
    };
    assert_eq!(rec.overrides.len(), 1);
    assert_eq!(rec.overrides[0].by.as_str(), "console:bob");
    let trail = store.audit_for("payments", 0, 100).await.unwrap();
    assert!(
        trail.iter().any(|e| e.action == "oncall override"
            && e.actor == "console:bob"
            && e.after.is_some()),
        "{trail:?}"
    );
}

async fn overrides_never_overlap_and_are_for_members_or_incident_managers(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let clock = TestTime::at(at("2026-12-01T12:00:00Z"));
    let (ledger, _writer) =
        common::ledger_on(store.clone(), Policy::from_toml(RULES).unwrap(), clock);
    common::ok(
        &ledger,
        "console:carol",
        "oncall override payments @dave from:2026-12-24T18:00Z to:2026-12-27T09:00Z",
    )
    .await;

    // Act and assert
    let overlap = common::refused(
        &ledger,
        "console:alice",
        "oncall override payments @bob from:2026-12-26T00:00Z to:2026-12-28T00:00Z",
        "oncall-override",
    )
    .await;
    assert!(
        overlap.contains("dave is already on call instead"),
        "{overlap}"
    );
    let stranger = common::refused(
        &ledger,
        "console:zed",
        "oncall override payments @zed from:2026-12-28T00:00Z to:2026-12-29T00:00Z",
        "role",
    )
    .await;
    assert!(stranger.contains("alice, bob, carol"), "{stranger}");
    common::refused(
        &ledger,
        "console:alice",
        "oncall override payments @bob from:2026-11-01T00:00Z to:2026-11-02T00:00Z",
        "oncall-override",
    )
    .await;
    // An incident manager may; right after the other one is not an overlap.
    common::ok(
        &ledger,
        "console:ines",
        "oncall override payments @bob from:2026-12-27T09:00Z to:2026-12-28T00:00Z",
    )
    .await;
    let unknown = common::run(&ledger, "console:alice", "oncall show billing").await;
    assert_eq!(
        unknown.text,
        "no on-call schedule billing: the rules file has payments, db"
    );
    let usage = common::run(
        &ledger,
        "console:alice",
        "oncall override payments @bob from:2026-12-28T00:00Z to:2026-12-27T00:00Z",
    )
    .await;
    assert!(usage.text.contains("is not after"), "{}", usage.text);
    let Some(Record::Oncall(rec)) = store.get(Kind::Oncall, "payments").await.unwrap() else {
        panic!("the payments record")
    };
    assert_eq!(rec.overrides.len(), 2);
}

#[tokio::test]
async fn the_dashboard_shows_who_is_on_call_and_two_weeks_with_overrides() {
    // Arrange: the real clock; an override starting in an hour.
    let (running, base, _db) =
        common::serve_platforms(opsledger::config::Integrations::default(), RULES, None).await;
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    let soon = Utc::now() + chrono::Duration::hours(1);
    let text = format!(
        "oncall override payments @dave from:{} to:{}",
        fmt(soon),
        fmt(soon + chrono::Duration::hours(6))
    );
    let reply = running
        .ledger
        .handle_text(common::actor("console:carol"), &text)
        .await
        .reply;
    assert!(reply.text.contains("dave on call"), "{}", reply.text);

    // Act
    let page = reqwest::get(format!("{base}/oncall"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert
    assert!(page.contains("<h2>payments</h2>"), "{page}");
    assert!(page.contains("<h2>db</h2>"), "{page}");
    assert!(
        page.contains("weekly, Europe/Berlin: alice, bob, carol"),
        "{page}"
    );
    let now_row = page
        .lines()
        .find(|l| l.contains("<th>Now</th>"))
        .unwrap_or_default();
    assert!(
        ["alice", "bob", "carol"]
            .iter()
            .any(|m| now_row.contains(m)),
        "{now_row}"
    );
    assert!(page.contains("dave (override)"), "{page}");
    assert!(page.contains("<a href=\"/oncall\">On call</a>"), "{page}");
    running.stop().await.unwrap();
}
