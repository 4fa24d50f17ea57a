//! The durable outbox on both backends: enqueued with the command's transaction, delivered in
//! order per channel with retries and `Retry-After`, permanent failures given up, inbound
//! deliveries deduplicated across replicas, and message references kept.
use crate::common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::{TestDb, TestTime};
use opsledger::domain::audit::format_time;
use opsledger::ledger::{SystemTimeSource, TimeSource};
use opsledger::outbox::{Deliver, DeliveryError, OutboxWorker};
use opsledger::store::{NewOutbox, OutboxItem, Store};
use opsledger::usecase::UnitOfWork;

conformance!(
    enqueued_items_become_visible_only_when_their_transaction_commits,
    each_channel_is_served_oldest_first_and_a_retrying_head_holds_back_only_its_channel,
    retries_honour_retry_after_and_keep_order_without_blocking_other_channels,
    a_permanent_failure_is_given_up_and_the_channel_moves_on,
    items_for_a_platform_without_a_deliverer_stay_pending,
    two_workers_on_one_database_deliver_each_item_once_in_order,
    an_inbound_delivery_is_first_only_once_even_across_replicas,
    message_refs_round_trip_and_are_replaced,
    retention_purges_only_old_delivered_items_and_old_delivery_ids_in_batches,
    a_pass_claims_and_marks_many_items_at_once_each_with_its_own_time,
);

fn item(platform: &str, channel: &str, n: i64) -> NewOutbox {
    NewOutbox {
        platform: platform.into(),
        channel: channel.into(),
        op: "post".into(),
        record: Some(format!("INC-{n}")),
        payload: serde_json::json!({ "n": n, "text": format!("message {n}") }),
    }
}

fn n_of(item: &OutboxItem) -> i64 {
    item.payload["n"].as_i64().expect("payload n")
}

fn at(t: DateTime<Utc>, ms: i64) -> String {
    format_time(t + chrono::Duration::milliseconds(ms))
}

/// Enqueues the items through a unit of work and commits.
async fn enqueue(store: &Arc<dyn Store>, items: Vec<NewOutbox>, now: DateTime<Utc>) {
    let mut uow = UnitOfWork::new(store.begin().await.expect("begin"));
    for i in items {
        uow.enqueue(i, now);
    }
    uow.commit().await.expect("commit");
}

/// One outbox row's columns, read with plain SQL over a connection of its own.
async fn outbox_row<T>(db: &TestDb, columns: &str, id: i64) -> T
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    use sqlx::Connection;
    let sql = format!("SELECT {columns} FROM outbox WHERE id = $1");
    if db.url().starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::query_as(&sql)
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

/// (attempts, delivered, failed, last_error) of one row.
async fn row_state(db: &TestDb, id: i64) -> (i64, bool, bool, Option<String>) {
    let row: (i64, Option<String>, Option<String>, Option<String>) =
        outbox_row(db, "attempts, delivered_at, failed_at, last_error", id).await;
    (row.0, row.1.is_some(), row.2.is_some(), row.3)
}

async fn delivered_at(db: &TestDb, id: i64) -> Option<String> {
    let row: (Option<String>,) = outbox_row(db, "delivered_at", id).await;
    row.0
}

/// The worker's pass claims its items in one call and marks the delivered ones in another:
/// more items than one statement takes (70 = 64 + 4 + 1 + 1), each claimed once, and each
/// marked with its own delivery time, once.
async fn a_pass_claims_and_marks_many_items_at_once_each_with_its_own_time(db: TestDb) {
    let store = db.store().await;
    let now = TestTime::default_start();
    let t = format_time(now);
    let lease = at(now, 120_000);
    enqueue(
        &store,
        (1..=71)
            .map(|n| item("slack", &format!("C{n}"), n))
            .collect(),
        now,
    )
    .await;
    let due = store.outbox_due(&t, 100).await.unwrap();
    assert_eq!(due.len(), 71);
    let ids: Vec<i64> = due.iter().map(|i| i.id).collect();
    let (first, last) = ids.split_at(70);

    let mut claimed = store
        .outbox_claim_many(first, &t, &lease, "a")
        .await
        .unwrap();
    claimed.sort_unstable();
    assert_eq!(claimed, first, "every due item is claimed");
    assert!(store
        .outbox_claim_many(first, &t, &lease, "b")
        .await
        .unwrap()
        .is_empty());
    // A mix of claimed and unclaimed: only the unclaimed one is this caller's.
    assert_eq!(
        store
            .outbox_claim_many(&ids[65..], &t, &lease, "b")
            .await
            .unwrap(),
        last
    );
    assert!(store.outbox_due(&t, 100).await.unwrap().is_empty());

    let marks: Vec<(i64, String)> = first
        .iter()
        .enumerate()
        .map(|(k, id)| (*id, at(now, 1000 + i64::try_from(k).unwrap())))
        .collect();
    store.outbox_delivered_many(&marks).await.unwrap();
    for (id, when) in &marks {
        assert_eq!(delivered_at(&db, *id).await.as_deref(), Some(when.as_str()));
        assert_eq!(row_state(&db, *id).await, (1, true, false, None));
    }
    assert_eq!(delivered_at(&db, last[0]).await, None);
    // Marked again (a redelivery after a lapsed claim): the first mark stands.
    store
        .outbox_delivered_many(&[(first[0], at(now, 9_000))])
        .await
        .unwrap();
    assert_eq!(
        delivered_at(&db, first[0]).await.as_deref(),
        Some(marks[0].1.as_str())
    );
    assert_eq!(row_state(&db, first[0]).await, (1, true, false, None));
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
}

async fn wait_until_nothing_pending(store: &Arc<dyn Store>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let pending = store.outbox_pending().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} outbox items still pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One call to the fake deliverer.
#[derive(Debug, Clone)]
struct Attempt {
    id: i64,
    channel: String,
    n: i64,
    at: Instant,
    ok: bool,
}

/// A deliverer that answers from a per-channel script of failures, then succeeds, and notes
/// every call and whether two calls for one channel ever overlapped.
struct Fake {
    platform: &'static str,
    script: Mutex<HashMap<String, VecDeque<DeliveryError>>>,
    log: Mutex<Vec<Attempt>>,
    in_flight: Mutex<HashMap<String, usize>>,
    overlapped: Mutex<bool>,
    pause: Duration,
}

impl Fake {
    fn new(platform: &'static str) -> Fake {
        Fake {
            platform,
            script: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            overlapped: Mutex::new(false),
            pause: Duration::ZERO,
        }
    }

    fn failing(self, channel: &str, errors: Vec<DeliveryError>) -> Fake {
        self.script
            .lock()
            .unwrap()
            .insert(channel.into(), errors.into());
        self
    }

    fn log(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// The payload numbers delivered successfully on a channel, in delivery order.
    fn delivered(&self, channel: &str) -> Vec<i64> {
        self.log()
            .iter()
            .filter(|a| a.ok && a.channel == channel)
            .map(|a| a.n)
            .collect()
    }

    fn attempts_on(&self, channel: &str) -> Vec<Attempt> {
        self.log()
            .into_iter()
            .filter(|a| a.channel == channel)
            .collect()
    }
}

#[async_trait]
impl Deliver for Fake {
    fn platform(&self) -> &'static str {
        self.platform
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let at = Instant::now();
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            let n = in_flight.entry(item.channel.clone()).or_default();
            *n += 1;
            if *n > 1 {
                *self.overlapped.lock().unwrap() = true;
            }
        }
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        let outcome = self
            .script
            .lock()
            .unwrap()
            .get_mut(&item.channel)
            .and_then(|q| q.pop_front());
        *self
            .in_flight
            .lock()
            .unwrap()
            .get_mut(&item.channel)
            .unwrap() -= 1;
        self.log.lock().unwrap().push(Attempt {
            id: item.id,
            channel: item.channel.clone(),
            n: n_of(item),
            at,
            ok: outcome.is_none(),
        });
        match outcome {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn system_time_source() -> Arc<dyn TimeSource> {
    Arc::new(SystemTimeSource)
}

async fn enqueued_items_become_visible_only_when_their_transaction_commits(db: TestDb) {
    let store = db.store().await;
    let now = TestTime::default_start();
    let soon = at(now, 1000);

    // A transaction that enqueued (and wrote, flushed) but has not committed.
    let mut uow = UnitOfWork::new(store.begin().await.unwrap());
    uow.enqueue(item("slack", "C1", 1), now);
    uow.enqueue(item("slack", "C1", 2), now);
    uow.enqueue(item("github", "o/r#7", 3), now);
    uow.flush().await.unwrap();
    assert!(store.outbox_due(&soon, 100).await.unwrap().is_empty());
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert_eq!(store.outbox_next_attempt().await.unwrap(), None);

    uow.commit().await.unwrap();

    assert_eq!(store.outbox_pending().await.unwrap(), 3);
    assert_eq!(
        store.outbox_next_attempt().await.unwrap(),
        Some(format_time(now))
    );
    assert!(
        store
            .outbox_due(&at(now, -1), 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing is due before it was enqueued"
    );
    let due = store.outbox_due(&format_time(now), 100).await.unwrap();
    assert_eq!(
        due.iter().map(n_of).collect::<Vec<_>>(),
        vec![1, 3],
        "the head of each channel"
    );
    let first = &due[0];
    assert_eq!(
        (
            first.platform.as_str(),
            first.channel.as_str(),
            first.op.as_str(),
            first.record.as_deref(),
            first.attempts,
            first.created_at.as_str(),
        ),
        (
            "slack",
            "C1",
            "post",
            Some("INC-1"),
            0,
            format_time(now).as_str()
        )
    );
    assert_eq!(first.payload, item("slack", "C1", 1).payload);
    assert!(due[1].id > first.id, "ids follow enqueue order");

    // A transaction that enqueued and then rolled back leaves nothing behind.
    let mut uow = UnitOfWork::new(store.begin().await.unwrap());
    uow.enqueue(item("slack", "C9", 9), now);
    uow.flush().await.unwrap();
    drop(uow);
    assert_eq!(store.outbox_pending().await.unwrap(), 3);
    // And the store still takes writes afterwards.
    enqueue(&store, vec![item("slack", "C9", 10)], now).await;
    let due = store.outbox_due(&soon, 100).await.unwrap();
    assert_eq!(due.iter().map(n_of).collect::<Vec<_>>(), vec![1, 3, 10]);
}

async fn each_channel_is_served_oldest_first_and_a_retrying_head_holds_back_only_its_channel(
    db: TestDb,
) {
    let store = db.store().await;
    let now = TestTime::default_start();
    let t = format_time(now);
    enqueue(
        &store,
        vec![
            item("slack", "C1", 1),
            item("slack", "C1", 2),
            item("slack", "C2", 3),
        ],
        now,
    )
    .await;
    enqueue(&store, vec![item("slack", "C1", 4)], now).await;
    let ids = |items: Vec<OutboxItem>| items.iter().map(n_of).collect::<Vec<_>>();
    let due = store.outbox_due(&t, 100).await.unwrap();
    assert_eq!(ids(due.clone()), vec![1, 3]);
    let id1 = due[0].id;
    let id3 = due[1].id;

    // C1's head fails and is due again in 10 s: C1 waits behind it, C2 does not.
    store
        .outbox_retry(id1, 1, &t, &at(now, 10_000), "429 rate limited", true)
        .await
        .unwrap();
    assert_eq!(ids(store.outbox_due(&t, 100).await.unwrap()), vec![3]);
    store.outbox_delivered(id3, &t).await.unwrap();
    assert!(store.outbox_due(&t, 100).await.unwrap().is_empty());
    assert_eq!(
        store.outbox_next_attempt().await.unwrap(),
        Some(at(now, 10_000)),
        "the next attempt is the retrying head's, not its waiting successors'"
    );
    let retried = store.outbox_due(&at(now, 10_000), 100).await.unwrap();
    assert_eq!(ids(retried.clone()), vec![1]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(
        row_state(&db, id1).await,
        (1, false, false, Some("429 rate limited".into()))
    );

    // Given up, the head no longer holds the channel back.
    store
        .outbox_give_up(id1, &t, "channel_not_found")
        .await
        .unwrap();
    assert_eq!(
        row_state(&db, id1).await,
        (2, false, true, Some("channel_not_found".into()))
    );
    let due = store.outbox_due(&t, 100).await.unwrap();
    assert_eq!(ids(due.clone()), vec![2]);
    assert_eq!(store.outbox_pending().await.unwrap(), 2);

    // A claim is taken once; while held, the item and its channel are not due.
    let id2 = due[0].id;
    assert!(store
        .outbox_claim(id2, &t, &at(now, 120_000), "test")
        .await
        .unwrap());
    assert!(!store
        .outbox_claim(id2, &t, &at(now, 120_000), "test")
        .await
        .unwrap());
    assert!(store.outbox_due(&t, 100).await.unwrap().is_empty());
    store.outbox_delivered(id2, &t).await.unwrap();
    assert_eq!(row_state(&db, id2).await, (1, true, false, None));
    assert_eq!(ids(store.outbox_due(&t, 100).await.unwrap()), vec![4]);

    // Settling a settled item changes nothing.
    store
        .outbox_retry(id3, 5, &t, &t, "late", false)
        .await
        .unwrap();
    store.outbox_give_up(id2, &t, "late").await.unwrap();
    assert_eq!(row_state(&db, id3).await, (1, true, false, None));
    assert_eq!(row_state(&db, id2).await, (1, true, false, None));
    assert_eq!(store.outbox_pending().await.unwrap(), 1);
}

async fn retries_honour_retry_after_and_keep_order_without_blocking_other_channels(db: TestDb) {
    let store = db.store().await;
    let after = Duration::from_millis(200);
    let base = Duration::from_millis(10);
    let rate_limited = || DeliveryError::Retry {
        after: Some(after),
        reason: "429 ratelimited".into(),
    };
    let server_error = || DeliveryError::Retry {
        after: None,
        reason: "500 internal error".into(),
    };
    let fake = Arc::new(Fake::new("slack").failing(
        "A",
        vec![
            rate_limited(),
            rate_limited(),
            rate_limited(),
            server_error(),
            server_error(),
        ],
    ));
    let now = Utc::now();
    enqueue(
        &store,
        vec![
            item("slack", "A", 1),
            item("slack", "B", 1),
            item("slack", "A", 2),
            item("slack", "B", 2),
        ],
        now,
    )
    .await;
    enqueue(
        &store,
        vec![item("slack", "A", 3), item("slack", "B", 3)],
        now,
    )
    .await;

    let worker = OutboxWorker::spawn_with(
        store.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        system_time_source(),
        None,
        base,
    );
    worker.wake();
    wait_until_nothing_pending(&store, Duration::from_secs(20)).await;
    worker.stop().await;

    // Every item delivered exactly once, in enqueue order within its channel.
    assert_eq!(fake.delivered("A"), vec![1, 2, 3]);
    assert_eq!(fake.delivered("B"), vec![1, 2, 3]);
    let mut ok_ids: Vec<i64> = fake.log().iter().filter(|a| a.ok).map(|a| a.id).collect();
    ok_ids.sort_unstable();
    ok_ids.dedup();
    assert_eq!(
        ok_ids.len(),
        6,
        "each item delivered once: {:?}",
        fake.log()
    );
    assert!(!*fake.overlapped.lock().unwrap());

    // A1 was tried six times before A2 was tried at all.
    let a = fake.attempts_on("A");
    assert_eq!(a.len(), 8, "{a:?}");
    assert!(a[..6].iter().all(|x| x.n == 1), "{a:?}");
    assert!(a[..5].iter().all(|x| !x.ok) && a[5].ok);

    // Retry-After (200 ms) is honoured after each 429, then the backoff (10 ms · 2^(n-1))
    // after the 500s: attempt 4 waits 80 ms, attempt 5 160 ms.
    let gaps: Vec<Duration> = a.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps[..3].iter().enumerate() {
        assert!(
            *gap >= after,
            "retry {} came {gap:?} after a 429 asking for {after:?}",
            i + 1
        );
        assert!(*gap < after + Duration::from_secs(2), "{gap:?}");
    }
    assert!(gaps[3] >= base * 8, "{gaps:?}");
    assert!(gaps[4] >= base * 16, "{gaps:?}");
    assert!(gaps[3] < Duration::from_secs(2) && gaps[4] < Duration::from_secs(2));

    // Channel B did not wait for channel A.
    let b_done = fake.attempts_on("B").iter().map(|x| x.at).max().unwrap();
    assert!(b_done < a[5].at, "channel B waited for channel A");
    assert_eq!(fake.attempts_on("B").len(), 3);
}

async fn a_permanent_failure_is_given_up_and_the_channel_moves_on(db: TestDb) {
    let store = db.store().await;
    let fake = Arc::new(Fake::new("slack").failing(
        "C",
        vec![DeliveryError::Permanent("channel_not_found".into())],
    ));
    enqueue(
        &store,
        vec![
            item("slack", "C", 1),
            item("slack", "C", 2),
            item("slack", "D", 3),
        ],
        Utc::now(),
    )
    .await;
    let started = Instant::now();
    let worker = OutboxWorker::spawn(
        store.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        system_time_source(),
        None,
    );
    wait_until_nothing_pending(&store, Duration::from_secs(10)).await;
    worker.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "giving up must not wait for a backoff"
    );

    let c = fake.attempts_on("C");
    assert_eq!(
        c.iter().map(|x| (x.n, x.ok)).collect::<Vec<_>>(),
        vec![(1, false), (2, true)]
    );
    assert_eq!(fake.delivered("D"), vec![3]);
    assert_eq!(
        row_state(&db, c[0].id).await,
        (1, false, true, Some("channel_not_found".into()))
    );
    assert_eq!(row_state(&db, c[1].id).await, (1, true, false, None));
}

async fn items_for_a_platform_without_a_deliverer_stay_pending(db: TestDb) {
    let store = db.store().await;
    let fake = Arc::new(Fake::new("slack"));
    let now = Utc::now();
    enqueue(
        &store,
        vec![item("discord", "X", 1), item("slack", "S", 2)],
        now,
    )
    .await;
    let worker = OutboxWorker::spawn(
        store.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        system_time_source(),
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.delivered("S").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the slack item was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    worker.stop().await;

    assert_eq!(store.outbox_pending().await.unwrap(), 1);
    let later = Utc::now();
    assert!(
        store
            .outbox_due(&format_time(later), 100)
            .await
            .unwrap()
            .is_empty(),
        "set aside for a while, not fetched on every pass"
    );
    let due = store.outbox_due(&at(later, 31_000), 100).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].platform.as_str(), due[0].attempts), ("discord", 0));
    assert_eq!(row_state(&db, due[0].id).await, (0, false, false, None));
}

async fn two_workers_on_one_database_deliver_each_item_once_in_order(db: TestDb) {
    // Two replicas, each with its own pool and worker, sharing one deliverer's log.
    let store1 = db.store().await;
    let store2 = db.store().await;
    let mut fake = Fake::new("slack");
    fake.pause = Duration::from_millis(3);
    let fake = Arc::new(fake);
    let channels = ["C1", "C2", "C3", "C4"];
    let now = Utc::now();
    for round in 0..3 {
        let items = (0..4)
            .flat_map(|k| {
                channels
                    .iter()
                    .map(move |c| item("slack", c, round * 4 + k))
            })
            .collect();
        enqueue(if round % 2 == 0 { &store1 } else { &store2 }, items, now).await;
    }
    let w1 = OutboxWorker::spawn(
        store1.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        system_time_source(),
        None,
    );
    let w2 = OutboxWorker::spawn(
        store2.clone(),
        vec![fake.clone() as Arc<dyn Deliver>],
        system_time_source(),
        None,
    );
    wait_until_nothing_pending(&store1, Duration::from_secs(20)).await;
    w1.stop().await;
    w2.stop().await;

    let log = fake.log();
    assert_eq!(log.len(), 48, "each item attempted once: {log:?}");
    for c in channels {
        assert_eq!(fake.delivered(c), (0..12).collect::<Vec<_>>(), "{c}");
    }
    assert!(
        !*fake.overlapped.lock().unwrap(),
        "two deliveries for one channel ran at once"
    );
}

async fn an_inbound_delivery_is_first_only_once_even_across_replicas(db: TestDb) {
    let one = db.store().await;
    let two = db.store().await;
    let t = format_time(Utc::now());
    assert!(one.first_delivery("slack", "Ev01", &t).await.unwrap());
    assert!(!one.first_delivery("slack", "Ev01", &t).await.unwrap());
    assert!(!two.first_delivery("slack", "Ev01", &t).await.unwrap());
    assert!(
        two.first_delivery("github", "Ev01", &t).await.unwrap(),
        "ids are per platform"
    );

    // Both replicas receive the same redeliveries at the same moment: one wins each.
    for i in 0..20 {
        let id = format!("gh-{i}");
        let (a, b) = tokio::join!(
            one.first_delivery("github", &id, &t),
            two.first_delivery("github", &id, &t)
        );
        assert!(a.unwrap() ^ b.unwrap(), "{id}: exactly one first delivery");
    }

    // A delivery whose processing failed is forgotten, so the redelivery counts as first.
    one.forget_delivery("github", "gh-0").await.unwrap();
    assert!(two.first_delivery("github", "gh-0", &t).await.unwrap());
    assert!(
        !one.first_delivery("slack", "Ev01", &t).await.unwrap(),
        "others are kept"
    );
}

async fn message_refs_round_trip_and_are_replaced(db: TestDb) {
    let store = db.store().await;
    assert_eq!(
        store.message_ref("INC-1", "slack", "C1").await.unwrap(),
        None
    );
    store
        .set_message_ref("INC-1", "slack", "C1", "1712345678.000100")
        .await
        .unwrap();
    store
        .set_message_ref("INC-1", "slack", "C2", "1712345678.000200")
        .await
        .unwrap();
    assert_eq!(
        store
            .message_ref("INC-1", "slack", "C1")
            .await
            .unwrap()
            .as_deref(),
        Some("1712345678.000100")
    );
    store
        .set_message_ref("INC-1", "slack", "C1", "1712345679.000300")
        .await
        .unwrap();
    assert_eq!(
        store
            .message_ref("INC-1", "slack", "C1")
            .await
            .unwrap()
            .as_deref(),
        Some("1712345679.000300")
    );
    assert_eq!(
        store
            .message_ref("INC-1", "slack", "C2")
            .await
            .unwrap()
            .as_deref(),
        Some("1712345678.000200")
    );
    assert_eq!(
        store.message_ref("INC-1", "github", "C1").await.unwrap(),
        None
    );
    assert_eq!(
        store.message_ref("INC-2", "slack", "C1").await.unwrap(),
        None
    );
}

/// Retention deletes delivered items and delivery IDs older than their ages, a batch at a time,
/// and nothing else: pending, failed and young rows stay, and the outbox keeps working.
async fn retention_purges_only_old_delivered_items_and_old_delivery_ids_in_batches(db: TestDb) {
    use opsledger::retention::{purge, Retention, BATCH};
    let store = db.store().await;
    let start = TestTime::default_start();
    let day = chrono::Duration::days(1);
    let old = format_time(start);
    // More than two batches of old delivered items on one channel, and one given up.
    let n = 2 * BATCH + 5;
    enqueue(
        &store,
        (0..n).map(|i| item("slack", "C1", i)).collect(),
        start,
    )
    .await;
    let mut ids = Vec::new();
    while let Some(head) = store.outbox_due(&old, 1).await.unwrap().pop() {
        ids.push(head.id);
        store.outbox_delivered(head.id, &old).await.unwrap();
    }
    assert_eq!(ids.len() as i64, n);
    enqueue(&store, vec![item("slack", "C2", -1)], start).await;
    let failed = store.outbox_due(&old, 10).await.unwrap()[0].id;
    store
        .outbox_give_up(failed, &old, "channel_not_found")
        .await
        .unwrap();
    // Ten days later: one young delivered item, one pending.
    let later = start + day * 10;
    enqueue(
        &store,
        vec![item("slack", "C3", -2), item("slack", "C4", -3)],
        later,
    )
    .await;
    let due = store.outbox_due(&format_time(later), 10).await.unwrap();
    store
        .outbox_delivered(due[0].id, &format_time(later))
        .await
        .unwrap();
    let pending = due[1].id;

    for i in 0..n {
        assert!(store
            .first_delivery("github", &format!("old-{i}"), &old)
            .await
            .unwrap());
    }
    assert!(store
        .first_delivery("slack", "young", &format_time(later))
        .await
        .unwrap());

    let retention = Retention {
        outbox: std::time::Duration::from_secs(5 * 86_400),
        deliveries: std::time::Duration::from_secs(3 * 86_400),
    };
    let purged = purge(&*store, retention, later + day).await.unwrap();
    assert_eq!((purged.outbox, purged.deliveries), (n as u64, n as u64));
    for id in [ids[0], ids[ids.len() - 1]] {
        assert_eq!(
            store.outbox_entry(id).await.unwrap(),
            None,
            "item {id} was purged"
        );
    }
    assert!(
        store.outbox_entry(failed).await.unwrap().is_some(),
        "failed items stay"
    );
    assert!(
        store.outbox_entry(pending).await.unwrap().is_some(),
        "pending items stay"
    );
    assert!(
        store.outbox_entry(due[0].id).await.unwrap().is_some(),
        "young items stay"
    );
    assert!(
        !store.first_delivery("slack", "young", &old).await.unwrap(),
        "young IDs stay"
    );
    // A purged ID is new again: that is why delivery IDs outlive the redelivery windows.
    assert!(store.first_delivery("github", "old-0", &old).await.unwrap());

    // Nothing left to purge; the outbox still orders and delivers.
    let again = purge(&*store, retention, later + day).await.unwrap();
    assert_eq!((again.outbox, again.deliveries), (0, 1));
    enqueue(&store, vec![item("slack", "C1", 99)], later).await;
    let due = store.outbox_due(&format_time(later), 10).await.unwrap();
    let mut heads = due.iter().map(n_of).collect::<Vec<_>>();
    heads.sort();
    assert_eq!(heads, vec![-3, 99]);
}
