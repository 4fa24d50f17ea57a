//! Fault isolation in the writer, on SQLite and PostgreSQL: a command whose writes the store
//! refuses fails alone, a store that fails for a moment is retried, text that cannot be recorded
//! is a usage error whatever the bytes, and a delivery is acted on once, in its command's own
//! transaction.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{actor, ledger_on, team_policy, TestDb, TestTime};
use opsledger::domain::ids::Kind;
use opsledger::domain::reply::Outcome;
use opsledger::ledger::Delivery;
use opsledger::store::{Backend, ListQuery, Store};

/// Runs SQL on the test database over a connection of its own.
async fn sql(db: &TestDb, backend: Backend, statements: &[&str]) {
    use sqlx::{Connection, Executor};
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
            for s in statements {
                c.execute(*s).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
            for s in statements {
                c.execute(*s).await.unwrap();
            }
        }
    }
}

/// Makes the database itself refuse any record whose title says POISON: a failure of one
/// command's own writes that no check before the store catches.
async fn poison(db: &TestDb, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            sql(
                db,
                backend,
                &["CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.title LIKE '%POISON%' \
                   BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"],
            )
            .await
        }
        Backend::Postgres => {
            sql(
                db,
                backend,
                &[
                    "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                     IF NEW.title LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
                     RETURN NEW; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER poison BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION poison()",
                ],
            )
            .await
        }
    }
}

async fn unpoison(db: &TestDb, backend: Backend) {
    let drop = match backend {
        Backend::Sqlite => "DROP TRIGGER poison",
        Backend::Postgres => "DROP TRIGGER poison ON records",
    };
    sql(db, backend, &[drop]).await;
}

async fn incidents(store: &Arc<dyn Store>) -> Vec<String> {
    store
        .list(&ListQuery::new(Kind::Incident, 10_000))
        .await
        .unwrap()
        .iter()
        .map(|r| r.title().to_string())
        .collect()
}

async fn verified(store: &Arc<dyn Store>) -> u64 {
    opsledger::app::verify_audit(&**store)
        .await
        .unwrap()
        .expect("audit chain verifies")
        .entries
}

fn team_ledger(store: &Arc<dyn Store>) -> (opsledger::ledger::Ledger, tokio::task::JoinHandle<()>) {
    ledger_on(
        store.clone(),
        team_policy(),
        TestTime::at(TestTime::default_start()),
    )
}

/// 64 valid commands and 20 poison ones, all at once: every valid one commits with its normal
/// answer, each poison one fails alone, and the chain still verifies.
async fn one_commands_store_failure_fails_it_alone(db: TestDb) {
    let store = db.store().await;
    poison(&db, store.backend()).await;
    let (ledger, writer) = team_ledger(&store);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..84 {
        let ledger = ledger.clone();
        let poisoned = i % 4 == 1 && i < 80;
        let text = if poisoned {
            format!("incident raise POISON {i} impact:low urgency:low")
        } else {
            format!("incident raise valid {i} impact:low urgency:low")
        };
        tasks.spawn(async move {
            let h = ledger.handle_text(actor("console:alice"), &text).await;
            (poisoned, text, h.reply)
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (poisoned, text, reply) = done.unwrap();
        if poisoned {
            assert_eq!(reply.outcome, Outcome::Failed, "{text}: {}", reply.text);
            assert!(
                reply.text.contains("other commands were not affected"),
                "{}",
                reply.text
            );
            failed += 1;
        } else {
            assert_eq!(reply.outcome, Outcome::Ok, "{text}: {}", reply.text);
            assert!(reply.text.contains("INC-"), "{}", reply.text);
            ok += 1;
        }
    }
    assert_eq!((ok, failed), (64, 20));
    let titles = incidents(&store).await;
    assert_eq!(titles.len(), 64, "{titles:?}");
    assert!(titles.iter().all(|t| t.starts_with("valid")));
    // Numbers are never reused or skipped by a failed command: 1..=64.
    let last = store
        .list(&ListQuery::new(Kind::Incident, 10_000))
        .await
        .unwrap();
    assert_eq!(last.last().unwrap().key(), "INC-64");
    assert!(verified(&store).await >= 64);
    drop(ledger);
    writer.await.unwrap();
}

/// The whole store fails for a moment, longer than its own wait: the writer tries again and
/// the caller never hears of it.
async fn a_transient_store_failure_is_retried(db: TestDb) {
    let store = db.store().await;
    let backend = store.backend();
    let (ledger, writer) = team_ledger(&store);
    common::ok(&ledger, "console:alice", "incident raise before impact:low").await;
    match backend {
        Backend::Sqlite => {
            // Another process holds the write lock past the 10 s busy timeout: SQLITE_BUSY.
            use sqlx::{Connection, Executor};
            let mut other = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
            other.execute("BEGIN IMMEDIATE").await.unwrap();
            let command = tokio::spawn({
                let ledger = ledger.clone();
                async move {
                    ledger
                        .handle_text(actor("console:alice"), "incident raise during impact:low")
                        .await
                }
            });
            tokio::time::sleep(Duration::from_secs(11)).await;
            other.execute("COMMIT").await.unwrap();
            let reply = command.await.unwrap().reply;
            assert_eq!(reply.outcome, Outcome::Ok, "{}", reply.text);
        }
        Backend::Postgres => {
            // The writer's connection is killed while it waits for the chain-head lock that
            // another session holds: the server closes it (57P01), and the writer reconnects.
            use sqlx::{Connection, Executor};
            let mut other = sqlx::PgConnection::connect(db.url()).await.unwrap();
            other.execute("BEGIN").await.unwrap();
            other
                .execute("UPDATE chain_head SET batches = batches WHERE id = 1")
                .await
                .unwrap();
            let command = tokio::spawn({
                let ledger = ledger.clone();
                async move {
                    ledger
                        .handle_text(actor("console:alice"), "incident raise during impact:low")
                        .await
                }
            });
            let mut killed = 0;
            for _ in 0..100 {
                let n: Vec<(bool,)> = sqlx::query_as(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND wait_event_type = 'Lock'",
                )
                .fetch_all(&mut other)
                .await
                .unwrap();
                killed += n.len();
                if killed > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(killed > 0, "the writer never waited on the lock");
            tokio::time::sleep(Duration::from_millis(200)).await;
            other.execute("COMMIT").await.unwrap();
            let reply = command.await.unwrap().reply;
            assert_eq!(reply.outcome, Outcome::Ok, "{}", reply.text);
        }
    }
    assert_eq!(incidents(&store).await, ["before", "during"]);
    verified(&store).await;
    drop(ledger);
    writer.await.unwrap();
}

/// A tiny deterministic generator: the same cases on every run, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A string of characters that stress text handling: controls, bidi, quotes, non-ASCII.
    fn text(&mut self, len: usize) -> String {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', ' ', ' ', '"', '\'', ':', '@', '#', '<', '>', '\\', '\t', '\n', '\r',
            '\0', '\u{1}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\u{200e}', '\u{202a}',
            '\u{202e}', '\u{2066}', '\u{2069}', '\u{feff}', '\u{fffd}', 'é', '日', '🚨', '“', '”',
            '\u{a0}', '\u{2028}',
        ];
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// Whatever the characters, a command through the whole write path never gets a store error
/// (nor a panic): text with a control or bidirectional character is a usage error naming it,
/// and the rest is recorded as typed, alike on both backends.
async fn any_text_is_recorded_or_refused_never_a_store_error(db: TestDb) {
    let store = db.store().await;
    let (ledger, writer) = team_ledger(&store);
    common::ok(&ledger, "console:alice", "incident raise base impact:low").await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let len = (rng.next() % 24) as usize;
        let body = rng.text(len);
        let text = match i % 4 {
            0 => format!("incident raise x{body} impact:low"),
            1 => format!("incident note INC-1 {body}"),
            2 => format!("change request \"{body}\" type:normal"),
            _ => body.clone(),
        };
        let ledger = ledger.clone();
        tasks.spawn(async move {
            let reply = ledger
                .handle_text(actor("console:alice"), &text)
                .await
                .reply;
            (text, reply)
        });
    }
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        let (text, reply) = done.expect("no panic");
        assert_ne!(reply.outcome, Outcome::Failed, "{text:?}: {}", reply.text);
        if text.chars().any(opsledger::domain::text::forbidden) {
            assert_eq!(reply.outcome, Outcome::Usage, "{text:?}: {}", reply.text);
            assert!(reply.text.contains("U+"), "{text:?}: {}", reply.text);
            refused += 1;
        }
    }
    assert!(
        refused > 100,
        "the generator made too few bad texts: {refused}"
    );
    // What was recorded holds no forbidden character.
    for r in store
        .list(&ListQuery::new(Kind::Incident, 10_000))
        .await
        .unwrap()
    {
        assert!(!r.title().chars().any(opsledger::domain::text::forbidden));
    }
    verified(&store).await;
    drop(ledger);
    writer.await.unwrap();
}

/// A delivery is noted with its command: replays are acted on once, concurrent or not, and a
/// delivery whose command failed is acted on when the platform retries it.
async fn a_delivery_is_acted_on_once_and_only_when_its_command_committed(db: TestDb) {
    let store = db.store().await;
    let backend = store.backend();
    let (ledger, writer) = team_ledger(&store);
    // Five replays at once, and five more after: one incident.
    let d = Delivery::new("slack", "13345224609.738474920.8088930838d88f008e0");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (ledger, d) = (ledger.clone(), d.clone());
        tasks.spawn(async move {
            ledger
                .handle_text_once(actor("console:alice"), "incident raise once impact:low", d)
                .await
                .reply
                .outcome
        });
    }
    let mut outcomes = Vec::new();
    while let Some(o) = tasks.join_next().await {
        outcomes.push(o.unwrap());
    }
    for _ in 0..5 {
        outcomes.push(
            ledger
                .handle_text_once(
                    actor("console:alice"),
                    "incident raise once impact:low",
                    d.clone(),
                )
                .await
                .reply
                .outcome,
        );
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == Outcome::Ok).count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Duplicate)
            .count(),
        9,
        "{outcomes:?}"
    );
    assert_eq!(incidents(&store).await, ["once"]);
    assert!(store.delivery_seen("slack", &d.id).await.unwrap());
    // The same id on another platform is another delivery.
    let other = Delivery::new("discord", d.id.clone());
    let h = ledger
        .handle_text_once(
            actor("console:alice"),
            "incident raise other impact:low",
            other,
        )
        .await;
    assert_eq!(h.reply.outcome, Outcome::Ok, "{}", h.reply.text);

    // A delivery whose command failed is not noted, so its retry is acted on.
    poison(&db, backend).await;
    let d = Delivery::new("slack", "Ev0POISON");
    let h = ledger
        .handle_text_once(
            actor("console:alice"),
            "incident raise POISON impact:low",
            d.clone(),
        )
        .await;
    assert_eq!(h.reply.outcome, Outcome::Failed, "{}", h.reply.text);
    assert!(!store.delivery_seen("slack", "Ev0POISON").await.unwrap());
    unpoison(&db, backend).await;
    let h = ledger
        .handle_text_once(
            actor("console:alice"),
            "incident raise POISON impact:low",
            d.clone(),
        )
        .await;
    assert_eq!(h.reply.outcome, Outcome::Ok, "{}", h.reply.text);
    let h = ledger
        .handle_text_once(
            actor("console:alice"),
            "incident raise POISON impact:low",
            d,
        )
        .await;
    assert_eq!(h.reply.outcome, Outcome::Duplicate, "{}", h.reply.text);
    assert_eq!(incidents(&store).await, ["once", "other", "POISON"]);
    verified(&store).await;
    drop(ledger);
    writer.await.unwrap();
}

conformance!(
    one_commands_store_failure_fails_it_alone,
    a_transient_store_failure_is_retried,
    any_text_is_recorded_or_refused_never_a_store_error,
    a_delivery_is_acted_on_once_and_only_when_its_command_committed,
);
