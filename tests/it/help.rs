//! The help texts as a user reads them, snapshotted (tests/it/snapshots), so that a change to
//! the grammar's wording or layout shows as a diff in review.
use crate::common::{self, TestTime};

use opsledger::domain::reply::Outcome;

/// `help`, then `help TOPIC` for every topic the overview lists, then a usage error.
#[tokio::test]
async fn the_overview_and_every_topic_read_as_snapshotted() {
    // Arrange
    let db = common::sqlite_db();
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = common::ledger_on(db.store().await, common::team_policy(), clock);

    // Act
    let overview = common::ok(&ledger, "console:bob", "help").await;
    let mut topics = Vec::new();
    for topic in [
        "incident", "request", "problem", "change", "release", "service", "ci", "nc", "role",
        "oncall", "sla", "report", "audit", "help",
    ] {
        let text = common::ok(&ledger, "console:bob", &format!("help {topic}")).await;
        topics.push((topic, text));
    }
    let wrong = common::run(&ledger, "console:bob", "change frobnicate CHG-1").await;

    // Assert
    insta::assert_snapshot!("overview", overview);
    for (topic, text) in &topics {
        assert!(overview.contains(topic), "the overview names {topic}");
        insta::assert_snapshot!(format!("topic_{topic}"), text);
    }
    assert!(
        matches!(wrong.outcome, Outcome::Usage),
        "{:?}",
        wrong.outcome
    );
    insta::assert_snapshot!("usage_error", wrong.text);
}
