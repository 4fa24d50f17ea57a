//! Open incidents most urgent first, in the store query itself (`ListQuery::urgent_first`): on
//! both stores the order is a sort of every open incident by breach, time left, priority and ID,
//! also after the migration fills the deadline of incidents stored before it.
use crate::common::{self, actor, write_records as write, TestDb, TestTime};

use chrono::Duration;
use opsledger::domain::command::Level;
use opsledger::domain::ids::{Kind, RecordId};
use opsledger::domain::lifecycle::NewIncident;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Incident;
use opsledger::domain::records::Record;
use opsledger::domain::status::IncidentStatus;
use opsledger::store::{ListQuery, Store};

conformance!(
    open_incidents_list_by_breach_then_time_left_then_priority,
    migrating_fills_the_deadline_of_incidents_already_stored,
    paging_by_cursor_in_urgency_order_walks_every_open_incident_once_in_order,
);

/// 60 incidents with mixed priorities, statuses, breaches and deadlines (some tied).
fn incidents() -> Vec<Record> {
    let levels = [Level::High, Level::Medium, Level::Low];
    let start = TestTime::default_start();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    (1..=60)
        .map(|n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let new = NewIncident {
                title: format!("Incident {n}"),
                impact: Some(levels[(x % 3) as usize]),
                urgency: Some(levels[(x / 3 % 3) as usize]),
                service: None,
                ci: None,
                security: false,
            };
            let id = RecordId::new(Kind::Incident, n);
            let mut i = Incident::raise(id, new, &actor("console:bob"), start, &Policy::default());
            // Deadlines on a 10-minute grid, so several tie and priority decides.
            i.response_due = start + Duration::minutes(10 * (x / 9 % 6) as i64);
            i.resolve_due = i.response_due + Duration::hours(1);
            i.breached = x / 54 % 4 == 0;
            i.status = match x / 216 % 4 {
                0 => IncidentStatus::Acknowledged,
                1 => IncidentStatus::Resolved,
                _ => IncidentStatus::New,
            };
            Record::Incident(i)
        })
        .collect()
}

/// The open incidents sorted in memory: the order the query must give.
fn expected(records: &[Record]) -> Vec<String> {
    let mut open: Vec<&Incident> = records
        .iter()
        .filter_map(|r| match r {
            Record::Incident(i) if i.status.is_open() => Some(i),
            _ => None,
        })
        .collect();
    open.sort_by_key(|i| (!i.breached, i.sla_due(), i.priority, i.id.n));
    open.iter().map(|i| i.id.to_string()).collect()
}

async fn urgent(store: &dyn Store, limit: i64) -> Vec<String> {
    let mut q = ListQuery::new(Kind::Incident, limit);
    q.statuses = vec!["new".into(), "acknowledged".into()];
    q.urgent_first = true;
    common::keys(store, &q).await
}

async fn open_incidents_list_by_breach_then_time_left_then_priority(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let records = incidents();
    write(&*store, records.clone()).await;
    let want = expected(&records);
    assert!(
        want.len() > 20 && want.len() < 60,
        "a mix: {} open",
        want.len()
    );

    // Act
    let all = urgent(&*store, 1_000).await;
    let first = urgent(&*store, 7).await;
    // An incident acknowledged moves to its resolve-by; one resolved leaves the list.
    let mut changed = records.clone();
    for r in changed.iter_mut().take(10) {
        if let Record::Incident(i) = r {
            i.status = match i.status {
                IncidentStatus::New => IncidentStatus::Acknowledged,
                _ => IncidentStatus::Resolved,
            };
        }
    }
    write(&*store, changed.iter().take(10).cloned().collect()).await;
    let after = urgent(&*store, 1_000).await;

    // Assert
    assert_eq!(all, want);
    assert_eq!(first, want[..7]);
    assert_eq!(after, expected(&changed));
    store.close().await;
}

async fn migrating_fills_the_deadline_of_incidents_already_stored(db: TestDb) {
    use sqlx::{Connection, Executor};

    // Arrange: incidents as a database before migration 0010 held them (no deadline column
    // filled) with the backfill pending, as the migration leaves such a database.
    let store = db.store().await;
    let records = incidents();
    write(&*store, records.clone()).await;
    store.close().await;
    const FORGET: &str =
        "UPDATE records SET sla_due = NULL; INSERT INTO sla_due_backfill (id) VALUES (1)";
    const FILLED: &str = "SELECT COUNT(*) FROM records WHERE sla_due IS NOT NULL";
    let forgotten: i64 = if db.url().starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        c.execute(FORGET).await.unwrap();
        sqlx::query_scalar(FILLED).fetch_one(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        c.execute(FORGET).await.unwrap();
        sqlx::query_scalar(FILLED).fetch_one(&mut c).await.unwrap()
    };

    // Act: the next start migrates.
    let store = db.store().await;
    let filled = urgent(&*store, 1_000).await;

    // Assert
    assert_eq!(
        forgotten, 0,
        "no incident had its deadline before the migration"
    );
    assert_eq!(filled, expected(&records));
    store.close().await;
}

async fn paging_by_cursor_in_urgency_order_walks_every_open_incident_once_in_order(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let records = incidents();
    write(&*store, records.clone()).await;

    // Act: pages of 7, each after the last row's place in the order.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = ListQuery::new(Kind::Incident, 7);
        q.statuses = vec!["new".into(), "acknowledged".into()];
        q.urgent_first = true;
        q.after = after.clone();
        let page = store.list(&q).await.unwrap();
        walked.extend(page.iter().map(Record::key));
        if page.len() < 7 {
            break;
        }
        after = page.last().and_then(opsledger::store::urgency_cursor);
        assert!(after.is_some(), "an open incident has a place in the order");
    }

    // Assert: the same order as one query, each incident once, none left out.
    assert_eq!(walked, expected(&records));
    store.close().await;
}
