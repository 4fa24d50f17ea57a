//! The index GitHub's events find records by (`record_terms`): on both stores it finds exactly
//! what a scan of every record finds, after links change, within one batch, and after the
//! migration that added it to a database already holding records.
use crate::common::{actor, write_records as write, TestDb, TestTime};

use opsledger::domain::command::ChangeType;
use opsledger::domain::ids::{Kind, RecordId};
use opsledger::domain::lifecycle::NewChange;
use opsledger::domain::records::{
    change_term, pr_term, repo_term, sha_term, tag_term, Change, Link, Record, Release,
};
use opsledger::store::{ListQuery, RecordPager, Store, TermQuery};
use opsledger::usecase::UnitOfWork;

conformance!(
    the_index_finds_what_a_scan_finds_as_links_change,
    a_batch_finds_its_own_writes_before_they_are_flushed,
    migrating_builds_the_index_of_records_already_stored,
    reads_made_ahead_answer_as_reads_one_by_one_before_and_after_a_flush,
);

fn change(n: u64, prs: &[(&str, u64)]) -> Record {
    let new = NewChange {
        title: format!("Change {n}"),
        change_type: ChangeType::Normal,
        risk: None,
        service: None,
        window: None,
        template: None,
    };
    let mut c = Change::request(
        RecordId::new(Kind::Change, n),
        new,
        &actor("console:alice"),
        TestTime::default_start(),
    );
    c.links = prs
        .iter()
        .map(|(repo, number)| Link::pull_request(repo, *number))
        .collect();
    Record::Change(c)
}

fn release(n: u64, repo: Option<&str>, version: &str, commits: &[String]) -> Record {
    let mut r = Release::create(
        RecordId::new(Kind::Release, n),
        version.to_string(),
        repo.map(str::to_string),
        Vec::new(),
        &actor("console:alice"),
        TestTime::default_start(),
    );
    r.commits = commits.to_vec();
    // Each ships one or two of the first changes.
    r.changes = (1..=1 + n % 2)
        .map(|c| RecordId::new(Kind::Change, (n + c) % 5 + 1))
        .collect();
    Record::Release(r)
}

fn keys(records: &[Record]) -> Vec<String> {
    records.iter().map(Record::key).collect()
}

/// What a scan of every record finds for `q`: newest first, as the index answers.
async fn scan(store: &dyn Store, q: &TermQuery) -> Vec<String> {
    let all: Vec<Record> = RecordPager::new(store, ListQuery::new(q.kind, 7))
        .collect()
        .await
        .unwrap();
    let mut found: Vec<String> = all
        .iter()
        .rev()
        .filter(|r| r.index_terms().contains(&q.term))
        .filter(|r| q.before.is_none_or(|b| r.number().unwrap().n < b))
        .map(Record::key)
        .collect();
    if let Some(limit) = q.limit {
        found.truncate(limit as usize);
    }
    found
}

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

fn queries() -> Vec<TermQuery> {
    let mut terms = Vec::new();
    for repo in ["acme/api", "acme/web", "acme/none"] {
        terms.push((Kind::Release, repo_term(repo)));
        for n in 0..6 {
            terms.push((Kind::Change, pr_term(repo, n)));
        }
        terms.push((Kind::Change, pr_term(repo, 99)));
        for v in 0..5 {
            terms.push((Kind::Release, tag_term(repo, &format!("v{v}"))));
        }
        for n in 0..15 {
            terms.push((Kind::Release, sha_term(repo, &sha(n))));
        }
    }
    for n in 1..=6 {
        terms.push((Kind::Release, change_term(&format!("CHG-{n}"))));
    }
    let mut out = Vec::new();
    for (kind, term) in terms {
        let all = TermQuery::new(kind, term);
        let mut newest_before = all.clone();
        newest_before.before = Some(7);
        newest_before.limit = Some(1);
        let mut two = all.clone();
        two.limit = Some(2);
        out.extend([all, newest_before, two]);
    }
    out
}

async fn assert_index_matches_scan(store: &dyn Store) -> usize {
    let mut hits = 0;
    for q in queries() {
        let found = keys(&store.find(&q).await.unwrap());
        assert_eq!(found, scan(store, &q).await, "{q:?}");
        hits += found.len();
    }
    hits
}

async fn the_index_finds_what_a_scan_finds_as_links_change(db: TestDb) {
    // Arrange: changes linking pull requests of two repositories (some several, some none) and
    // releases of two repositories (and of none) sharing tags and commits.
    let store = db.store().await;
    let mut records = Vec::new();
    for i in 1..=30 {
        let mut prs = Vec::new();
        if i % 3 != 0 {
            prs.push(("acme/api", i % 5));
        }
        if i % 4 == 0 {
            prs.push(("acme/web", i % 2));
        }
        records.push(change(i, &prs));
    }
    for i in 1..=12 {
        let repo = match i {
            _ if i % 5 == 0 => None,
            _ if i % 2 == 0 => Some("acme/api"),
            _ => Some("acme/web"),
        };
        records.push(release(
            i,
            repo,
            &format!("v{}", i % 4),
            &[sha(i), sha(i + 1)],
        ));
    }
    write(&*store, records).await;

    // Act + Assert: every term, whole and newest-before-7 and first-two, as a scan finds it.
    let hits = assert_index_matches_scan(&*store).await;
    assert!(hits > 100, "the queries find records ({hits})");

    // Act: links and commits change, one record at a time and several in one write.
    for i in 1..=10 {
        write(&*store, vec![change(i, &[])]).await;
    }
    write(
        &*store,
        vec![
            change(20, &[("acme/api", 99), ("acme/web", 1)]),
            change(21, &[("acme/api", 99)]),
            release(2, Some("acme/web"), "v4", &[sha(14)]),
            release(4, None, "v0", &[sha(4)]),
        ],
    )
    .await;

    // Assert: the index follows; old terms no longer find the records.
    assert_index_matches_scan(&*store).await;
    let pr99 = TermQuery::new(Kind::Change, pr_term("acme/api", 99));
    assert_eq!(
        keys(&store.find(&pr99).await.unwrap()),
        ["CHG-21", "CHG-20"]
    );
    let api1 = TermQuery::new(Kind::Change, pr_term("acme/api", 1));
    assert!(!keys(&store.find(&api1).await.unwrap()).contains(&"CHG-6".to_string()));
}

async fn a_batch_finds_its_own_writes_before_they_are_flushed(db: TestDb) {
    // Arrange: two stored changes linking acme/api#1.
    let store = db.store().await;
    write(
        &*store,
        vec![change(1, &[("acme/api", 1)]), change(2, &[("acme/api", 1)])],
    )
    .await;
    let mut uow = UnitOfWork::new(store.begin().await.unwrap());

    // Act: the batch unlinks CHG-2 and creates CHG-3 linking #1 and CHG-4 linking #2.
    for r in [
        change(2, &[]),
        change(3, &[("acme/api", 1)]),
        change(4, &[("acme/api", 2)]),
    ] {
        let json = r.to_json_string();
        uow.put(r, json);
    }

    // Assert: the batch sees its own state, limits and bounds included.
    let pr1 = TermQuery::new(Kind::Change, pr_term("acme/api", 1));
    let pr2 = TermQuery::new(Kind::Change, pr_term("acme/api", 2));
    assert_eq!(keys(&uow.find(&pr1).await.unwrap()), ["CHG-3", "CHG-1"]);
    assert_eq!(keys(&uow.find(&pr2).await.unwrap()), ["CHG-4"]);
    let mut newest = pr1.clone();
    newest.limit = Some(1);
    assert_eq!(keys(&uow.find(&newest).await.unwrap()), ["CHG-3"]);
    // The stored newest below 3 is CHG-2, which the batch unlinked: the next one counts.
    newest.before = Some(3);
    assert_eq!(keys(&uow.find(&newest).await.unwrap()), ["CHG-1"]);
    // Others see none of it until the batch commits; then the store agrees.
    assert_eq!(keys(&store.find(&pr1).await.unwrap()), ["CHG-2", "CHG-1"]);
    uow.commit().await.unwrap();
    assert_eq!(keys(&store.find(&pr1).await.unwrap()), ["CHG-3", "CHG-1"]);
    assert_eq!(keys(&store.find(&pr2).await.unwrap()), ["CHG-4"]);
}

/// A batch's reads made ahead (`get_many`, `find_many`, and the unit of work's prefetch) give
/// what one read at a time gives, see the batch's own writes, and are not used once a flush
/// has written to the transaction.
async fn reads_made_ahead_answer_as_reads_one_by_one_before_and_after_a_flush(db: TestDb) {
    // Arrange: CHG-1 and CHG-2 link acme/api#1, CHG-3 links #2; CHG-9 does not exist.
    let store = db.store().await;
    write(
        &*store,
        vec![
            change(1, &[("acme/api", 1)]),
            change(2, &[("acme/api", 1), ("acme/api", 2)]),
            change(3, &[("acme/api", 2)]),
        ],
    )
    .await;
    let pr1 = pr_term("acme/api", 1);
    let pr2 = pr_term("acme/api", 2);
    let none = pr_term("acme/api", 99);

    // The store's own batch reads.
    let mut tx = store.begin().await.unwrap();
    let wanted: Vec<String> = ["CHG-3", "CHG-9", "CHG-1"].map(String::from).to_vec();
    let mut got = keys(&tx.get_many(Kind::Change, &wanted).await.unwrap());
    got.sort();
    assert_eq!(got, ["CHG-1", "CHG-3"]);
    let mut pairs: Vec<(String, String)> = tx
        .find_many(Kind::Change, &[pr1.clone(), pr2.clone(), none.clone()])
        .await
        .unwrap()
        .into_iter()
        .map(|(term, r)| (term, r.key()))
        .collect();
    pairs.sort();
    let pair = |t: &str, k: &str| (t.to_string(), k.to_string());
    assert_eq!(
        pairs,
        [
            pair(&pr1, "CHG-1"),
            pair(&pr1, "CHG-2"),
            pair(&pr2, "CHG-2"),
            pair(&pr2, "CHG-3"),
        ]
    );
    drop(tx);

    // The unit of work: read ahead, then asked one at a time.
    let mut uow = UnitOfWork::new(store.begin().await.unwrap());
    uow.prefetch_records(Kind::Change, wanted.clone())
        .await
        .unwrap();
    uow.prefetch_terms(Kind::Change, vec![pr1.clone(), pr2.clone(), none.clone()])
        .await
        .unwrap();
    for key in &wanted {
        assert_eq!(
            uow.get(Kind::Change, key).await.unwrap().map(|r| r.key()),
            store.get(Kind::Change, key).await.unwrap().map(|r| r.key()),
            "{key}"
        );
    }
    let find = |term: &str| TermQuery::new(Kind::Change, term.to_string());
    for term in [&pr1, &pr2, &none] {
        assert_eq!(
            keys(&uow.find(&find(term)).await.unwrap()),
            keys(&store.find(&find(term)).await.unwrap()),
            "{term}"
        );
    }
    // The batch's own write counts at once: CHG-2 unlinks #1.
    let unlinked = change(2, &[("acme/api", 2)]);
    let json = unlinked.to_json_string();
    uow.put(unlinked, json);
    assert_eq!(keys(&uow.find(&find(&pr1)).await.unwrap()), ["CHG-1"]);
    assert_eq!(
        keys(&uow.find(&find(&pr2)).await.unwrap()),
        ["CHG-3", "CHG-2"]
    );
    // After a flush (a list flushes), the transaction is asked, not the stale read-ahead:
    // the stored CHG-2 no longer carries #1.
    uow.list(&ListQuery::new(Kind::Change, 10)).await.unwrap();
    assert_eq!(keys(&uow.find(&find(&pr1)).await.unwrap()), ["CHG-1"]);
    assert_eq!(
        keys(&uow.find(&find(&pr2)).await.unwrap()),
        ["CHG-3", "CHG-2"]
    );
    uow.commit().await.unwrap();
    assert_eq!(keys(&store.find(&find(&pr1)).await.unwrap()), ["CHG-1"]);
}

async fn migrating_builds_the_index_of_records_already_stored(db: TestDb) {
    use sqlx::migrate::Migrator;
    use sqlx::Connection;
    use std::borrow::Cow;

    // Arrange: a database at the schema before the index, holding a change that links a pull
    // request and a release with a commit, written as that version wrote them.
    let sqlite = db.url().starts_with("sqlite");
    let all = if sqlite {
        opsledger::store::SqliteStore::migrator()
    } else {
        opsledger::store::PgStore::migrator()
    };
    let before: Vec<_> = all
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect();
    let old = Migrator {
        migrations: Cow::Owned(before),
        ..Migrator::DEFAULT
    };
    let records = [
        change(1, &[("acme/api", 5)]),
        release(1, Some("acme/api"), "v1", &[sha(1)]),
    ];
    let at = opsledger::domain::audit::format_time(TestTime::default_start());
    let statements: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "INSERT INTO records (kind, key, num, title, status, created_at, updated_at, data) \
                 VALUES ('{}', '{}', 1, 't', '{}', '{at}', '{at}', '{}')",
                r.kind().as_str(),
                r.key(),
                r.status(),
                r.to_json_string().replace('\'', "''")
            )
        })
        .collect();
    if sqlite {
        let mut c = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url()))
            .await
            .unwrap();
        old.run(&mut c).await.unwrap();
        for s in &statements {
            sqlx::query(s).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        old.run(&mut c).await.unwrap();
        for s in &statements {
            sqlx::query(s).execute(&mut c).await.unwrap();
        }
    }

    // Act: open the store, which applies the index's migration and builds it.
    let store = db.store().await;

    // Assert: the stored records are found by their terms; opening again changes nothing.
    let pr = TermQuery::new(Kind::Change, pr_term("acme/api", 5));
    let tag = TermQuery::new(Kind::Release, tag_term("acme/api", "v1"));
    let commit = TermQuery::new(Kind::Release, sha_term("acme/api", &sha(1)));
    assert_eq!(keys(&store.find(&pr).await.unwrap()), ["CHG-1"]);
    assert_eq!(keys(&store.find(&tag).await.unwrap()), ["REL-1"]);
    assert_eq!(keys(&store.find(&commit).await.unwrap()), ["REL-1"]);
    store.close().await;
    let store = db.store().await;
    assert_eq!(keys(&store.find(&pr).await.unwrap()), ["CHG-1"]);
    assert_index_matches_scan(&*store).await;
}
