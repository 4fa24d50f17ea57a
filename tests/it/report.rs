//! The service report on a seeded data set whose answers are worked out by hand below, through
//! chat, the API and the CLI.
use crate::common;

use std::sync::Arc;

use chrono::Duration;
use common::{ok, TestTime};
use opsledger::domain::command::Command;
use opsledger::domain::ids::Actor;
use opsledger::domain::policy::Policy;
use opsledger::domain::report::{Section, ServiceReport};
use opsledger::ledger::Ledger;

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:carol", "console:dave"]
ecab = ["console:carol"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]

[sla.P3]
respond = "5m"
resolve = "1h"
"#;

/// Seeds the day 2026-11-29 (the test clock starts there at 10:00 UTC); one incident the day
/// before lies outside the period.
async fn seed(ledger: &Ledger, clock: &Arc<TestTime>) {
    clock.advance(-Duration::days(1));
    ok(
        ledger,
        "console:bob",
        "incident raise \"Yesterday\" impact:low urgency:low service:shop",
    )
    .await; // INC-1, out of period, and settled that day
    ok(ledger, "console:bob", "incident ack INC-1").await;
    ok(ledger, "console:bob", "incident resolve INC-1 done").await;
    clock.advance(Duration::days(1));
    // INC-2, shop, P1 at 10:00; acknowledged after 10 min, resolved after 70 min: SLA met.
    ok(
        ledger,
        "console:bob",
        "incident raise \"Checkout down\" impact:high urgency:high service:shop",
    )
    .await;
    clock.advance(Duration::minutes(10));
    ok(ledger, "console:bob", "incident ack INC-2").await;
    clock.advance(Duration::minutes(60));
    ok(ledger, "console:bob", "incident resolve INC-2 restarted").await;
    // INC-3, shop, P4 at 11:10; acknowledged after 30 min; open, so its SLA is not decided.
    ok(
        ledger,
        "console:bob",
        "incident raise \"Slow images\" impact:low urgency:low service:shop",
    )
    .await;
    clock.advance(Duration::minutes(30));
    ok(ledger, "console:bob", "incident ack INC-3").await;
    // INC-4, no service, P3 at 11:40; its 5 min response target passes: a breach and NC-1.
    ok(
        ledger,
        "console:bob",
        "incident raise \"Odd logs\" impact:medium urgency:medium",
    )
    .await;
    clock.advance(Duration::minutes(10));
    let tick = ledger.handle(Actor::system(), Command::Tick).await;
    assert!(
        tick.reply.text.contains("INC-4 breached"),
        "{}",
        tick.reply.text
    );
    ok(ledger, "console:alice", "nc correct NC-1 paged the owner").await;
    // Changes: CHG-1 normal completed, CHG-2 emergency failed, CHG-3 rejected, CHG-4 draft.
    ok(
        ledger,
        "console:bob",
        "change request \"Upgrade DB\" type:normal service:shop",
    )
    .await;
    ok(ledger, "console:bob", "change submit CHG-1").await;
    ok(ledger, "console:carol", "change approve CHG-1").await;
    ok(ledger, "console:dave", "change approve CHG-1").await;
    ok(ledger, "console:bob", "change start CHG-1").await;
    ok(ledger, "console:bob", "change complete CHG-1").await;
    ok(
        ledger,
        "console:bob",
        "change request \"Hotfix\" type:emergency service:shop",
    )
    .await;
    ok(ledger, "console:bob", "change submit CHG-2").await;
    ok(ledger, "console:carol", "change approve CHG-2").await;
    ok(ledger, "console:bob", "change start CHG-2").await;
    ok(ledger, "console:bob", "change fail CHG-2 disk full").await;
    ok(
        ledger,
        "console:bob",
        "change request \"Risky\" type:normal",
    )
    .await;
    ok(ledger, "console:bob", "change submit CHG-3").await;
    ok(ledger, "console:carol", "change reject CHG-3 no plan").await;
    ok(
        ledger,
        "console:bob",
        "change request \"Later\" type:normal",
    )
    .await;
    // A release of CHG-1 deployed once. Problems: PRB-1 opened by the P1 itself, PRB-2 open,
    // PRB-3 a known error.
    ok(ledger, "console:alice", "release create 1.0 CHG-1").await;
    ok(ledger, "console:alice", "release deploy REL-1 env:prod").await;
    ok(
        ledger,
        "console:bob",
        "problem open \"Flaky checkout\" from:INC-2",
    )
    .await;
    ok(ledger, "console:bob", "problem open \"Leaky cache\"").await;
    ok(
        ledger,
        "console:bob",
        "problem workaround PRB-3 restart nightly",
    )
    .await;
}

fn service<'a>(r: &'a ServiceReport, name: &str) -> &'a Section {
    r.services.iter().find(|s| s.service == name).unwrap()
}

#[tokio::test]
async fn the_report_adds_up_to_the_hand_worked_figures_in_chat_the_api_and_the_cli() {
    // Arrange
    let db = common::sqlite_db();
    let store = db.store().await;
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    seed(&ledger, &clock).await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 29);

    // Act
    let report = opsledger::reports::service_report(
        &*store,
        day,
        day,
        opsledger::ledger::TimeSource::now(&*clock),
    )
    .await
    .unwrap();
    let chat = ok(
        &ledger,
        "console:bob",
        "report from:2026-11-29 to:2026-11-29",
    )
    .await;

    // Assert: every incident of the day, by priority; the one from the day before is left out.
    let t = &report.total;
    assert_eq!(t.incidents, 3);
    assert_eq!(t.incidents_by_priority.get("P1"), Some(&1));
    assert_eq!(t.incidents_by_priority.get("P3"), Some(&1));
    assert_eq!(t.incidents_by_priority.get("P4"), Some(&1));
    // MTTA: (10 min + 30 min) / 2 = 20 min; MTTR: INC-2 alone, 70 min.
    assert_eq!(t.mean_time_to_acknowledge_secs, Some(1200.0));
    assert_eq!(t.mean_time_to_resolve_secs, Some(4200.0));
    // SLA: decided for INC-2 (met) and INC-4 (breached): 1 of 2.
    assert_eq!((t.sla_met, t.sla_measured, t.sla_breaches), (1, 2, 1));
    assert_eq!(t.sla_attainment_pct, Some(50.0));
    // Changes: 4; successful 1, failed 1, rejected 1, open 1; success 1/(1+1); emergency 1/4.
    assert_eq!(t.changes, 4);
    assert_eq!(t.changes_by_type.get("normal"), Some(&3));
    assert_eq!(t.changes_by_type.get("emergency"), Some(&1));
    for (outcome, n) in [
        ("successful", 1),
        ("failed", 1),
        ("rejected", 1),
        ("open", 1),
    ] {
        assert_eq!(t.changes_by_outcome.get(outcome), Some(&n), "{outcome}");
    }
    assert_eq!(t.change_success_rate_pct, Some(50.0));
    assert_eq!(t.emergency_change_share_pct, Some(25.0));
    // By service: shop has INC-2, INC-3, CHG-1 and CHG-2; INC-4 and CHG-3, CHG-4 have none.
    let shop = service(&report, "shop");
    assert_eq!((shop.incidents, shop.sla_met, shop.sla_measured), (2, 1, 1));
    assert_eq!(shop.sla_attainment_pct, Some(100.0));
    assert_eq!(shop.changes, 2);
    assert_eq!(shop.change_success_rate_pct, Some(50.0));
    assert_eq!(shop.emergency_change_share_pct, Some(50.0));
    let none = service(&report, "(no service)");
    assert_eq!((none.incidents, none.sla_breaches), (1, 1));
    assert_eq!(none.sla_attainment_pct, Some(0.0));
    assert_eq!(none.mean_time_to_acknowledge_secs, None);
    // Releases, problems, nonconformities.
    assert_eq!(report.releases.len(), 1);
    assert_eq!(report.releases[0].changes, ["CHG-1"]);
    assert_eq!(report.deployments, 1);
    assert_eq!((report.open_problems, report.known_errors), (2, 1));
    assert_eq!(
        (
            report.nonconformities_raised,
            report.nonconformities_open,
            report.nonconformities_corrected
        ),
        (1, 0, 1)
    );
    // Chat: the compact summary with a link to the full report.
    assert!(chat.contains("Incidents: 3 (P1 1, P2 0, P3 1, P4 1); MTTA 20m00s, MTTR 1h10m; SLA 50% met, 1 breaches"), "{chat}");
    assert!(chat.contains("success rate 50%"), "{chat}");
    assert!(
        chat.contains("/report?from=2026-11-29&to=2026-11-29"),
        "{chat}"
    );
}

#[tokio::test]
async fn the_api_serves_the_report_and_refuses_bad_dates() {
    // Arrange
    let app = common::spawn_app().await;
    app.exec(
        "console:dave",
        "incident raise Checkout down impact:high urgency:high service:shop",
    )
    .await;

    // Act
    let get = |q: &str| {
        app.client
            .get(app.url(&format!("/api/v1/reports{q}")))
            .send()
    };
    let ok = get("?from=2026-11-29&to=2026-11-29").await.unwrap();
    let bad = get("?from=yesterday").await.unwrap();
    let reversed = get("?from=2026-11-30&to=2026-11-29").await.unwrap();

    // Assert
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["total"]["incidents"], 1);
    assert_eq!(body["services"][0]["service"], "shop");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("not a date"));
    assert_eq!(reversed.status(), 400);
    app.stop().await;
}

#[test]
fn the_cli_prints_the_report_as_text_or_json() {
    // Arrange
    let scratch = common::scratch::Scratch::new();
    let raised = scratch.exec(
        "console:dave",
        "incident raise Checkout down impact:high urgency:high service:shop",
    );
    assert!(raised.status.success());

    // Act
    let text = scratch.run(&["report"]);
    let json = scratch.run(&["report", "--json"]);
    let reversed = scratch.run(&["report", "--from", "2026-12-02", "--to", "2026-12-01"]);

    // Assert
    assert!(text.status.success(), "{}", common::scratch::stderr(&text));
    let out = common::scratch::stdout(&text);
    assert!(out.contains("all services\n  incidents: 1"), "{out}");
    assert!(out.contains("shop"), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&common::scratch::stdout(&json)).unwrap();
    assert_eq!(doc["total"]["incidents_by_priority"]["P1"], 1);
    assert!(!reversed.status.success());
    assert!(common::scratch::stderr(&reversed).contains("is after"));
}
