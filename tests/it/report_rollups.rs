//! The report's rollups equal a full fold of the records: random histories of incidents and
//! changes (raised, acknowledged, resolved, reprioritised, paged, breached; changes voted on and
//! implemented; over several days and services) go through the real ledger on a fake clock,
//! then the report from the rollups is compared with the one folded from every record, for the
//! whole span and for each day; chat's `report` shows the same; and rollups built afresh from
//! the records (a database that had none) equal them too. SQLite and PostgreSQL.
use crate::common::{self, TestDb, TestTime};

use chrono::{Duration, NaiveDate};
use opsledger::domain::command::Command;
use opsledger::domain::ids::Actor;
use opsledger::domain::policy::Policy;
use opsledger::domain::report::ServiceReport;
use opsledger::ledger::{Ledger, TimeSource};
use opsledger::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:carol", "console:dave"]
ecab = ["console:carol"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]

[people]
alice = ["console:alice"]
bob = ["console:bob"]

[[oncall]]
name = "ops"
members = ["alice", "bob"]
rotation = "weekly"
start = "2026-11-23T09:00:00"
timezone = "Europe/Berlin"

[[escalation]]
name = "ops"
default = true
page = ["P1", "P2"]
steps = [
  { notify = "oncall:ops" },
  { wait = "5m" },
  { notify = "oncall:ops", next = true },
  { wait = "10m" },
  { notify = "role:incident-manager" },
  { notify = "channel" },
]

[sla.P3]
respond = "5m"
resolve = "1h"

[sla.P4]
respond = "30m"
resolve = "4h"
"#;

/// One step of a history. Record numbers may name records that do not exist (yet): the
/// ledger refuses those, which is part of the history too.
#[derive(Debug, Clone)]
enum Step {
    Raise {
        impact: u8,
        urgency: u8,
        service: u8,
    },
    Incident {
        verb: u8,
        n: u8,
    },
    Reprioritise {
        n: u8,
        impact: u8,
    },
    Escalate {
        n: u8,
    },
    /// Moves the clock on by this many minutes, then runs the deadline timer.
    Wait {
        minutes: u16,
    },
    Request {
        kind: u8,
        service: u8,
    },
    Change {
        verb: u8,
        n: u8,
    },
    /// Takes a change through its lifecycle, `upto` steps of it, ending `end`
    /// (`CHANGE_ENDS`).
    Drive {
        n: u8,
        upto: u8,
        end: u8,
    },
    /// Acknowledges and resolves an incident at once.
    Settle {
        n: u8,
    },
}

const LEVELS: [&str; 3] = ["high", "medium", "low"];
const INCIDENT_VERBS: [&str; 4] = ["ack", "resolve", "close", "reopen"];
const CHANGE_TYPES: [&str; 3] = ["standard", "normal", "emergency"];
/// How a driven change ends, after it was submitted, approved twice and started (or, for a
/// rejection, once submitted).
const CHANGE_ENDS: [&str; 4] = ["complete", "fail", "rollback", "reject"];
/// Change steps with who takes them.
const CHANGE_VERBS: [(&str, &str); 10] = [
    ("submit", "console:bob"),
    ("approve", "console:carol"),
    ("approve", "console:dave"),
    ("reject", "console:carol"),
    ("start", "console:bob"),
    ("complete", "console:bob"),
    ("fail", "console:bob"),
    ("rollback", "console:bob"),
    ("review", "console:alice"),
    ("close", "console:alice"),
];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3u8, 0..3u8, 0..4u8).prop_map(|(impact, urgency, service)| Step::Raise { impact, urgency, service }),
        4 => (0..4u8, 1..8u8).prop_map(|(verb, n)| Step::Incident { verb, n }),
        1 => (1..8u8, 0..3u8).prop_map(|(n, impact)| Step::Reprioritise { n, impact }),
        1 => (1..8u8).prop_map(|n| Step::Escalate { n }),
        3 => prop_oneof![1..30u16, 30..600u16, 600..2000u16].prop_map(|minutes| Step::Wait { minutes }),
        2 => (0..3u8, 0..4u8).prop_map(|(kind, service)| Step::Request { kind, service }),
        3 => (0..10u8, 1..5u8).prop_map(|(verb, n)| Step::Change { verb, n }),
        2 => (1..5u8, 2..6u8, 0..4u8).prop_map(|(n, upto, end)| Step::Drive { n, upto, end }),
        2 => (1..8u8).prop_map(|n| Step::Settle { n }),
    ]
}

/// `service:svc-N`, or none for the last choice.
fn service(n: u8) -> String {
    if n < 3 {
        format!(" service:svc-{n}")
    } else {
        String::new()
    }
}

async fn apply(ledger: &Ledger, clock: &TestTime, step: &Step) {
    let (who, text) = match step {
        Step::Drive { n, upto, end } => {
            let end = CHANGE_ENDS[*end as usize];
            let path: &[(&str, &str)] = if end == "reject" {
                &[("console:bob", "submit"), ("console:carol", "reject")]
            } else {
                &[
                    ("console:bob", "submit"),
                    ("console:carol", "approve"),
                    ("console:dave", "approve"),
                    ("console:bob", "start"),
                    ("console:bob", end),
                ]
            };
            for (who, verb) in path.iter().take(*upto as usize) {
                common::run(ledger, who, &format!("change {verb} CHG-{n} reason")).await;
            }
            return;
        }
        Step::Settle { n } => {
            for verb in ["ack", "resolve"] {
                common::run(
                    ledger,
                    "console:bob",
                    &format!("incident {verb} INC-{n} done"),
                )
                .await;
            }
            return;
        }
        Step::Raise {
            impact,
            urgency,
            service: s,
        } => (
            "console:bob",
            format!(
                "incident raise \"Outage\" impact:{} urgency:{}{}",
                LEVELS[*impact as usize],
                LEVELS[*urgency as usize],
                service(*s)
            ),
        ),
        Step::Incident { verb, n } => (
            "console:bob",
            format!("incident {} INC-{n} done", INCIDENT_VERBS[*verb as usize]),
        ),
        Step::Reprioritise { n, impact } => (
            "console:alice",
            format!(
                "incident priority INC-{n} impact:{}",
                LEVELS[*impact as usize]
            ),
        ),
        Step::Escalate { n } => ("console:alice", format!("incident escalate INC-{n}")),
        Step::Wait { minutes } => {
            clock.advance(Duration::minutes(i64::from(*minutes)));
            ledger.handle(Actor::system(), Command::Tick).await;
            return;
        }
        Step::Request { kind, service: s } => (
            "console:bob",
            format!(
                "change request \"Change\" type:{}{}",
                CHANGE_TYPES[*kind as usize],
                service(*s)
            ),
        ),
        Step::Change { verb, n } => {
            let (verb, who) = CHANGE_VERBS[*verb as usize];
            (who, format!("change {verb} CHG-{n} reason"))
        }
    };
    // Refusals (a missing record, a transition the lifecycle forbids) are part of the history.
    common::run(ledger, who, &text).await;
}

async fn from_rollups(store: &dyn Store, from: NaiveDate, to: NaiveDate) -> ServiceReport {
    opsledger::reports::service_report(store, Some(from), Some(to), chrono::Utc::now())
        .await
        .expect("report from the rollups")
}

async fn folded(store: &dyn Store, from: NaiveDate, to: NaiveDate) -> ServiceReport {
    opsledger::reports::service_report_full(store, Some(from), Some(to), chrono::Utc::now())
        .await
        .expect("report from every record")
}

/// The rollups and the full fold agree for the whole span of the history and for each day.
async fn agree(store: &dyn Store, first: NaiveDate, last: NaiveDate) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        from_rollups(store, first, last).await,
        folded(store, first, last).await
    );
    let mut day = first;
    while day <= last {
        prop_assert_eq!(
            from_rollups(store, day, day).await,
            folded(store, day, day).await,
            "day {}",
            day
        );
        day += Duration::days(1);
    }
    Ok(())
}

/// Empties the rollups and marks them unbuilt, as in a database from before they existed.
async fn forget_rollups(url: &str) {
    use sqlx::Connection;
    const SQL: [&str; 3] = [
        "DELETE FROM report_rollups",
        "DELETE FROM report_rollup_pages",
        "UPDATE report_rollup_state SET built = 0",
    ];
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        for sql in SQL {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        for sql in SQL {
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

/// Which figures a history reached, so the test can tell its histories were not all trivial.
fn reached(r: &ServiceReport) -> [(&'static str, bool); 12] {
    let t = &r.total;
    let by =
        |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0) > 0;
    [
        ("acknowledged", t.mean_time_to_acknowledge_secs.is_some()),
        ("resolved", t.mean_time_to_resolve_secs.is_some()),
        ("breached", t.sla_breaches > 0),
        ("met", t.sla_met > 0),
        ("paged", t.pages > 0),
        (
            "page acknowledged",
            t.mean_time_page_to_acknowledge_secs.is_some(),
        ),
        ("ran out", t.escalations_ran_out > 0),
        ("two services", r.services.len() > 1),
        ("successful change", by(&t.changes_by_outcome, "successful")),
        ("failed change", by(&t.changes_by_outcome, "failed")),
        ("rejected change", by(&t.changes_by_outcome, "rejected")),
        ("emergency change", by(&t.changes_by_type, "emergency")),
    ]
}

async fn history_agrees(
    db: TestDb,
    steps: Vec<Step>,
    seen: &std::sync::Mutex<std::collections::BTreeMap<&'static str, bool>>,
) -> Result<(), TestCaseError> {
    // Arrange
    let store = db.store().await;
    let start = TestTime::default_start();
    let clock = TestTime::at(start);
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );

    // Act
    for s in &steps {
        apply(&ledger, &clock, s).await;
    }
    let (first, last) = (
        start.date_naive() - Duration::days(1),
        clock.now().date_naive(),
    );
    let chat = common::run(
        &ledger,
        "console:bob",
        &format!("report from:{first} to:{last}"),
    )
    .await
    .text;

    // Assert: the rollups equal the fold, and chat shows the folded figures.
    agree(&*store, first, last).await?;
    let full = folded(&*store, first, last).await;
    for (figure, hit) in reached(&full) {
        *seen.lock().unwrap().entry(figure).or_default() |= hit;
    }
    let shown = |text: &str| {
        text.split("\nFull report:")
            .next()
            .unwrap_or("")
            .to_string()
    };
    prop_assert_eq!(shown(&chat), shown(&full.summary("")));

    // Assert: rollups built from the records alone (on migrate) equal the fold too; without
    // them the report would be empty, so the comparison above could fail.
    forget_rollups(db.url()).await;
    if full.total.incidents + full.total.changes > 0 {
        prop_assert_ne!(from_rollups(&*store, first, last).await, full);
    }
    store.migrate().await.expect("migrate builds the rollups");
    agree(&*store, first, last).await?;
    Ok(())
}

/// Runs `cases` random histories, each on a fresh database `db` makes.
fn check<F, Fut>(cases: u32, db: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<TestDb>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A fixed seed: the same histories every run, so the coverage check below cannot flake.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let histories = proptest::collection::vec(step(), 1..60);
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::new());
    runner
        .run(&histories, |steps| {
            rt.block_on(async {
                match db().await {
                    Some(db) => history_agrees(db, steps, &seen).await,
                    None => Ok(()),
                }
            })
        })
        .unwrap();
    // Across enough cases, every kind of figure was exercised (none when PostgreSQL is skipped).
    if cases >= 20 {
        let missing: Vec<_> = seen
            .into_inner()
            .unwrap()
            .into_iter()
            .filter(|(_, hit)| !hit)
            .collect();
        assert!(missing.is_empty(), "no history reached {missing:?}");
    }
}

#[test]
fn rollups_equal_a_full_fold_of_random_histories_on_sqlite() {
    check(24, || async { Some(common::sqlite_db()) });
}

#[test]
fn rollups_equal_a_full_fold_of_random_histories_on_postgres() {
    check(6, common::postgres_db);
}
