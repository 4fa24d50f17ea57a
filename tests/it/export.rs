//! The evidence pack: a seeded period exported, and every clause file checked.
use crate::common;

use chrono::Duration;
use common::{ok, TestTime};
use opsledger::domain::policy::Policy;
use opsledger::ledger::TimeSource;

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:carol", "console:dave"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]
"#;

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn a_seeded_period_exports_every_clause_with_its_records_timelines_and_proof() {
    // Arrange: one record of each kind on 2026-11-29, and an incident the day before.
    let db = common::sqlite_db();
    let store = db.store().await;
    let clock = TestTime::at(TestTime::default_start() - Duration::days(1));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    ok(
        &ledger,
        "console:bob",
        "incident raise \"Day before\" impact:low urgency:low",
    )
    .await; // INC-1
    clock.advance(Duration::days(1));
    ok(&ledger, "console:alice", "service add shop").await;
    ok(
        &ledger,
        "console:alice",
        "ci add shop-db type:database service:shop",
    )
    .await;
    ok(&ledger, "console:bob", "incident raise \"Card data seen in logs\" impact:medium urgency:high service:shop security").await; // INC-2
    ok(&ledger, "console:bob", "request raise \"New laptop\"").await;
    ok(
        &ledger,
        "console:bob",
        "problem open \"Logs leak\" from:INC-2",
    )
    .await;
    ok(
        &ledger,
        "console:bob",
        "change request \"Mask card numbers\" type:normal service:shop",
    )
    .await;
    ok(&ledger, "console:bob", "change submit CHG-1").await;
    ok(
        &ledger,
        "console:carol",
        "change approve CHG-1 \"mask, then verify\"",
    )
    .await;
    ok(&ledger, "console:dave", "change approve CHG-1").await;
    ok(&ledger, "console:bob", "change start CHG-1").await;
    ok(&ledger, "console:bob", "change complete CHG-1").await;
    ok(
        &ledger,
        "console:alice",
        "change review CHG-1 masking belongs in the logger",
    )
    .await;
    ok(&ledger, "console:alice", "release create 2.1 CHG-1").await;
    ok(&ledger, "console:alice", "release deploy REL-1 env:prod").await;
    ok(
        &ledger,
        "console:alice",
        "nc raise \"Logs kept card data\" INC-2",
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("pack");
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 29);

    // Act
    let summary = opsledger::export::export(&*store, day, day, &dir, clock.now(), false)
        .await
        .unwrap();
    let again = opsledger::export::export(&*store, day, day, &dir, clock.now(), false).await;

    // Assert: the index maps every clause to its page and data.
    let index = read(&dir, "index.html");
    for c in opsledger::export::CLAUSES {
        assert!(
            index.contains(&format!("<td>{}</td>", c.number)),
            "index lists {}",
            c.number
        );
        assert!(index.contains(c.page), "index links {}", c.page);
        assert!(dir.join(c.page).exists(), "{} written", c.page);
        for f in c.files {
            assert!(dir.join(f).exists(), "{f} written");
        }
    }
    let counts: std::collections::BTreeMap<_, _> = summary.clause_records.iter().cloned().collect();
    assert_eq!(counts["8.2.6"], 2, "the service and its CI");
    assert_eq!(counts["8.5.1.2"], 1);
    assert_eq!(counts["8.5.3"], 1);
    assert_eq!(counts["8.6.1"], 1, "INC-1 is outside the period");
    assert_eq!(counts["8.6.2"], 1);
    assert_eq!(counts["8.6.3"], 1);
    assert_eq!(counts["8.7.3.3"], 1);
    assert_eq!(counts["10.1"], 1);
    assert_eq!(counts["10.2"], 1);
    // Each clause page lists its records.
    for (page, expect) in [
        ("clauses/8.2.6.html", "shop-db"),
        ("clauses/8.5.1.2.html", "Mask card numbers"),
        ("clauses/8.5.3.html", "REL-1"),
        ("clauses/8.6.1.html", "INC-2"),
        ("clauses/8.6.2.html", "New laptop"),
        ("clauses/8.6.3.html", "Logs leak"),
        ("clauses/8.7.3.3.html", "Card data seen in logs"),
        (
            "clauses/9.1.html",
            "Service report 2026-11-29 to 2026-11-29",
        ),
        ("clauses/10.1.html", "Logs kept card data"),
        ("clauses/10.2.html", "CHG-1"),
    ] {
        assert!(read(&dir, page).contains(expect), "{page} shows {expect}");
    }
    assert!(!read(&dir, "clauses/8.6.1.html").contains("Day before"));
    // CSV and JSON per record type.
    let incidents: serde_json::Value = serde_json::from_str(&read(&dir, "incidents.json")).unwrap();
    assert_eq!(incidents.as_array().unwrap().len(), 1);
    assert_eq!(incidents[0]["id"], "INC-2");
    let csv = read(&dir, "changes.csv");
    assert!(
        csv.starts_with("id,title,status,created_at,updated_at,type,risk"),
        "{csv}"
    );
    assert!(
        csv.contains("CHG-1,Mask card numbers,closed")
            || csv.contains("CHG-1,Mask card numbers,completed"),
        "{csv}"
    );
    let approvals = read(&dir, "approvals.csv");
    assert!(
        approvals.contains("CHG-1,console:carol,approve")
            && approvals.contains("mask, then verify"),
        "{approvals}"
    );
    assert!(read(&dir, "report.txt").contains("incidents: 1"));
    // Timelines: the period's audit entries, with their records; the day before's are left out.
    let timeline = read(&dir, "timeline.csv");
    assert!(timeline.contains("CHG-1,") && timeline.contains("change approve"));
    assert!(!timeline.contains("INC-1,"), "{timeline}");
    assert_eq!(
        timeline.lines().count() as u64,
        summary.timeline_entries + 1
    );
    // Proof: the chain's ends and the verify result, as `audit verify` sees them.
    let verified = opsledger::app::verify_audit(&*store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.verify, "verified");
    assert_eq!(summary.audit_entries, verified.entries);
    assert_eq!(summary.last_hash, verified.last_hash);
    assert!(index.contains(&summary.first_hash) && index.contains(&verified.last_hash));
    // A second export into the same directory is refused rather than mixed in.
    assert!(again.unwrap_err().to_string().contains("is not empty"));
}

#[test]
fn the_cli_writes_the_pack_and_says_what_it_wrote() {
    // Arrange
    let scratch = common::scratch::Scratch::new();
    assert!(scratch
        .exec(
            "console:dave",
            "incident raise Checkout down impact:high urgency:high"
        )
        .status
        .success());
    let dir = scratch.path("pack");

    // Act
    let run = scratch.run(&["export", "--out", dir.to_str().unwrap()]);

    // Assert
    assert!(run.status.success(), "{}", common::scratch::stderr(&run));
    let out = common::scratch::stdout(&run);
    assert!(
        out.contains("audit chain") && out.contains("verified"),
        "{out}"
    );
    assert!(dir.join("index.html").exists());
    assert!(std::fs::read_to_string(dir.join("incidents.csv"))
        .unwrap()
        .contains("Checkout down"));
}

/// A tampered trail: the pack is still written, with the whole period's timeline, and its proof
/// names the first broken entry and how many verified before it.
#[tokio::test]
async fn a_broken_chain_is_named_in_the_proof_and_the_timeline_is_still_written() {
    use sqlx::{Connection, Executor};
    let db = common::sqlite_db();
    let store = db.store().await;
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, writer) = common::ledger_on(store.clone(), Policy::default(), clock.clone());
    for i in 0..4 {
        ok(
            &ledger,
            "console:bob",
            &format!("incident raise Broken {i}"),
        )
        .await;
    }
    drop(ledger);
    let _ = writer.await;
    let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    c.execute("DROP TRIGGER audit_no_update").await.unwrap();
    c.execute("UPDATE audit SET actor = 'console:mallory' WHERE seq = 3")
        .await
        .unwrap();
    c.close().await.unwrap();

    let out = tempfile::tempdir().unwrap();
    let summary = opsledger::export::export(
        &*store,
        None,
        None,
        &out.path().join("pack"),
        clock.now(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        summary.verify,
        "audit entry 3 was altered: its stored hash does not match its content"
    );
    assert_eq!(
        summary.audit_entries, 2,
        "the entries before the altered one verified"
    );
    assert_eq!(summary.timeline_entries, 4);
    let timeline = read(&out.path().join("pack"), "timeline.csv");
    assert_eq!(timeline.lines().count(), 5, "{timeline}");
    assert!(timeline.contains("console:mallory"), "{timeline}");
}
