//! Store conformance: the same tests run against SQLite and PostgreSQL (`OPSLEDGER_TEST_POSTGRES_URL`).
use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{actor, ledger_on, TestDb, TestTime};
use opsledger::app::verify_audit;
use opsledger::domain::ids::Kind;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::Record;
use opsledger::domain::reply::Outcome;
use opsledger::ledger::Ledger;
use opsledger::store::{AuditStream, ListQuery, RecordPager, Store};

conformance!(
    whole_lifecycle_of_every_record_kind_works_and_replies_name_the_record,
    refused_transition_changes_nothing_and_is_audited,
    missing_record_is_reported_by_id_and_audited,
    ids_count_from_one_per_kind_under_concurrent_commands,
    two_writers_on_one_database_never_reuse_an_id_and_keep_one_chain,
    audit_verify_names_the_entry_changed_with_plain_sql,
    audit_verify_catches_entries_cut_from_the_end,
    migrating_a_database_that_already_holds_data_keeps_it,
    list_pages_in_id_order_and_filters_by_status,
    record_pager_and_audit_stream_read_everything_once_in_order,
    records_created_in_one_batch_are_visible_to_later_commands_in_it,
    audit_command_shows_one_records_timeline_with_refusals,
    change_list_shows_open_changes_a_voters_queue_and_ones_own,
    checked_ranges_return_the_period_entries_the_timeline_query_does,
);

struct Harness {
    store: Arc<dyn Store>,
    ledger: Ledger,
    clock: Arc<TestTime>,
}

async fn harness(db: &TestDb) -> Harness {
    harness_with(db, common::team_policy()).await
}

async fn harness_with(db: &TestDb, policy: Policy) -> Harness {
    let store = db.store().await;
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = ledger_on(store.clone(), policy, clock.clone());
    Harness {
        store,
        ledger,
        clock,
    }
}

impl Harness {
    /// Runs a command that must succeed; returns the reply text.
    async fn ok(&self, who: &str, text: &str) -> String {
        common::ok(&self.ledger, who, text).await
    }

    async fn status(&self, kind: Kind, key: &str) -> String {
        self.store
            .get(kind, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"))
            .status()
    }
}

async fn whole_lifecycle_of_every_record_kind_works_and_replies_name_the_record(db: TestDb) {
    let h = harness(&db).await;
    // Incident: raise, ack, resolve, reopen, resolve, close.
    assert!(h
        .ok(
            "console:alice",
            "incident raise Checkout down impact:high urgency:medium service:shop"
        )
        .await
        .starts_with("INC-1 raised"));
    assert!(h
        .ok("console:bob", "incident ack INC-1 on it")
        .await
        .contains("INC-1"));
    h.ok("console:bob", "incident resolve INC-1 restarted the pool")
        .await;
    h.ok("console:alice", "incident reopen INC-1 still failing")
        .await;
    h.ok("console:bob", "incident resolve INC-1 raised pool size")
        .await;
    h.ok("console:alice", "incident close INC-1").await;
    assert_eq!(h.status(Kind::Incident, "INC-1").await, "closed");
    // Problem from the incident: root cause makes it a known error, then resolve and close.
    assert!(h
        .ok("console:alice", "problem open Pool exhaustion from:INC-1")
        .await
        .contains("PRB-1"));
    h.ok(
        "console:alice",
        "problem rootcause PRB-1 connection leak in checkout",
    )
    .await;
    assert_eq!(h.status(Kind::Problem, "PRB-1").await, "known_error");
    h.ok("console:alice", "problem resolve PRB-1 leak fixed")
        .await;
    h.ok("console:alice", "problem close PRB-1 verified for a week")
        .await;
    assert_eq!(h.status(Kind::Problem, "PRB-1").await, "closed");
    let Some(Record::Incident(inc)) = h.store.get(Kind::Incident, "INC-1").await.unwrap() else {
        panic!()
    };
    assert_eq!(
        inc.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        vec!["PRB-1"]
    );
    // Service request.
    assert!(h
        .ok("console:carol", "request raise New laptop service:it")
        .await
        .contains("REQ-1"));
    h.ok("console:dave", "request fulfil REQ-1 shipped").await;
    h.ok("console:dave", "request close REQ-1").await;
    assert_eq!(h.status(Kind::Request, "REQ-1").await, "closed");
    // Change: request, submit, two approvals, start, complete, review, close; a PR link.
    h.ok(
        "console:alice",
        "change request \"Upgrade Postgres\" type:normal risk:high service:shop",
    )
    .await;
    h.ok("console:alice", "change link CHG-1 acme/shop#42")
        .await;
    h.ok("console:alice", "change submit CHG-1").await;
    h.ok("console:cab1", "change approve CHG-1").await;
    assert!(h
        .ok("console:cab2", "change approve CHG-1 looks safe")
        .await
        .contains("CHG-1 approved"));
    h.ok("console:alice", "change start CHG-1").await;
    h.ok("console:alice", "change complete CHG-1").await;
    h.ok("console:alice", "change review CHG-1 no issues").await;
    h.ok("console:alice", "change close CHG-1").await;
    let Some(Record::Change(chg)) = h.store.get(Kind::Change, "CHG-1").await.unwrap() else {
        panic!()
    };
    assert_eq!(chg.status.as_str(), "closed");
    assert_eq!(chg.approvals.len(), 2);
    assert_eq!(chg.links[0].url, "https://github.com/acme/shop/pull/42");
    // Release with the change, deployed twice, then rolled back.
    assert!(h
        .ok(
            "console:alice",
            "release create v1.2.0 repo:acme/shop CHG-1"
        )
        .await
        .contains("REL-1"));
    h.ok("console:alice", "release deploy REL-1 env:staging")
        .await;
    h.ok("console:alice", "release deploy REL-1 env:production")
        .await;
    h.ok("console:alice", "release rollback REL-1 errors spiked")
        .await;
    let Some(Record::Release(rel)) = h.store.get(Kind::Release, "REL-1").await.unwrap() else {
        panic!()
    };
    assert_eq!(rel.deployments.len(), 2);
    assert_eq!(rel.status.as_str(), "rolled_back");
    // Configuration: service, CIs with a dependency.
    h.ok("console:alice", "service add shop owner:@alice").await;
    h.ok("console:alice", "ci add shop-db type:database service:shop")
        .await;
    h.ok(
        "console:alice",
        "ci add shop-api type:app service:shop depends:shop-db",
    )
    .await;
    let Some(Record::Ci(ci)) = h.store.get(Kind::Ci, "shop-api").await.unwrap() else {
        panic!()
    };
    assert_eq!(ci.depends, vec!["shop-db".to_string()]);
    // Nonconformity: raise, correct, close.
    assert!(h
        .ok(
            "console:auditor",
            "nc raise Change deployed without ticket record:CHG-1"
        )
        .await
        .contains("NC-1"));
    h.ok("console:alice", "nc correct NC-1 added a pipeline check")
        .await;
    h.ok("console:auditor", "nc close NC-1").await;
    assert_eq!(h.status(Kind::Nonconformity, "NC-1").await, "closed");
    // Roles.
    h.ok("console:root", "role grant @carol cab").await;
    let grants = h.store.grants().await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].actor.as_str(), "console:carol");
    // The whole trail verifies.
    let report = verify_audit(&*h.store)
        .await
        .unwrap()
        .expect("chain intact");
    assert!(report.entries > 30, "{} entries", report.entries);
}

async fn refused_transition_changes_nothing_and_is_audited(db: TestDb) {
    let h = harness(&db).await;
    h.ok("console:alice", "incident raise Disk full").await;
    let before = h.store.get(Kind::Incident, "INC-1").await.unwrap();

    let r = h
        .ledger
        .handle_text(actor("console:alice"), "incident close INC-1")
        .await
        .reply;

    assert_eq!(
        r.outcome,
        Outcome::Refused {
            rule: "lifecycle".into()
        }
    );
    assert_eq!(
        r.text,
        "INC-1 is new; closed is not allowed from there (allowed next: acknowledged)"
    );
    assert_eq!(h.store.get(Kind::Incident, "INC-1").await.unwrap(), before);
    let trail = h.store.audit_for("INC-1", 0, 100).await.unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[1].actor, "console:alice");
    assert_eq!(trail[1].action, "incident close");
    assert!(
        trail[1]
            .outcome
            .starts_with("refused (lifecycle): INC-1 is new"),
        "{}",
        trail[1].outcome
    );
    assert_eq!(trail[1].after, None);
}

async fn missing_record_is_reported_by_id_and_audited(db: TestDb) {
    let h = harness(&db).await;
    let r = h
        .ledger
        .handle_text(actor("console:bob"), "incident ack INC-99")
        .await
        .reply;
    assert_eq!(r.outcome, Outcome::NotFound);
    assert_eq!(r.text, "no such incident INC-99");
    let trail = h.store.audit_for("INC-99", 0, 10).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert!(trail[0].outcome.starts_with("not found"));
}

async fn ids_count_from_one_per_kind_under_concurrent_commands(db: TestDb) {
    let h = harness(&db).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let ledger = h.ledger.clone();
        let text = if i % 4 == 0 {
            format!("change request c{i} type:normal")
        } else {
            format!("incident raise i{i}")
        };
        tasks.push(tokio::spawn(async move {
            ledger.handle_text(actor("console:load"), &text).await.reply
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.outcome, Outcome::Ok, "{}", reply.text);
        ids.push(reply.record.unwrap());
    }
    let incidents: BTreeSet<String> = ids
        .iter()
        .filter(|i| i.starts_with("INC-"))
        .cloned()
        .collect();
    let changes: BTreeSet<String> = ids
        .iter()
        .filter(|i| i.starts_with("CHG-"))
        .cloned()
        .collect();
    assert_eq!(incidents, (1..=150).map(|n| format!("INC-{n}")).collect());
    assert_eq!(changes, (1..=50).map(|n| format!("CHG-{n}")).collect());
    // A record ID never comes back, even after a restart of the ledger on the same store.
    drop(h.ledger);
    let (ledger, _w) = ledger_on(h.store.clone(), common::team_policy(), h.clock.clone());
    let r = ledger
        .handle_text(actor("console:load"), "incident raise after restart")
        .await
        .reply;
    assert_eq!(r.record.as_deref(), Some("INC-151"));
}

async fn two_writers_on_one_database_never_reuse_an_id_and_keep_one_chain(db: TestDb) {
    // Two stores with their own pools and ledgers stand in for two processes (replicas).
    let a = harness(&db).await;
    let b = harness(&db).await;
    let mut tasks = Vec::new();
    for i in 0..120 {
        let ledger = if i % 2 == 0 {
            a.ledger.clone()
        } else {
            b.ledger.clone()
        };
        tasks.push(tokio::spawn(async move {
            ledger
                .handle_text(actor("console:load"), &format!("incident raise r{i}"))
                .await
                .reply
        }));
    }
    let mut ids = BTreeSet::new();
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.outcome, Outcome::Ok, "{}", reply.text);
        assert!(
            ids.insert(reply.record.unwrap()),
            "an ID was handed out twice"
        );
    }
    assert_eq!(ids, (1..=120).map(|n| format!("INC-{n}")).collect());
    let report = verify_audit(&*a.store)
        .await
        .unwrap()
        .expect("one unbroken chain");
    assert_eq!(report.entries, 120);
}

async fn audit_verify_names_the_entry_changed_with_plain_sql(db: TestDb) {
    let h = harness(&db).await;
    h.ok("console:alice", "incident raise One").await;
    h.ok("console:alice", "incident raise Two").await;
    h.ok("console:bob", "incident ack INC-1").await;
    h.ok("console:bob", "incident ack INC-2").await;
    assert_eq!(verify_audit(&*h.store).await.unwrap().unwrap().entries, 4);

    // The table refuses updates outright; a tamperer must first remove the guard.
    let tamper_blocked = "UPDATE audit SET actor = 'console:mallory' WHERE seq = 3";
    let sql_disable: &[&str] = if db.url().starts_with("sqlite") {
        &["DROP TRIGGER audit_no_update"]
    } else {
        &["ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete"]
    };
    let blocked = raw_exec(db.url(), &[tamper_blocked]).await;
    assert!(blocked.is_err(), "the audit table accepted an UPDATE");
    let mut steps = sql_disable.to_vec();
    steps.push(tamper_blocked);
    raw_exec(db.url(), &steps).await.expect("tamper");

    let broken = verify_audit(&*h.store).await.unwrap().unwrap_err();
    assert_eq!(
        broken.to_string(),
        "audit entry 3 was altered: its stored hash does not match its content"
    );
}

async fn audit_verify_catches_entries_cut_from_the_end(db: TestDb) {
    let h = harness(&db).await;
    for i in 0..4 {
        h.ok("console:alice", &format!("incident raise n{i}")).await;
    }
    let disable = if db.url().starts_with("sqlite") {
        "DROP TRIGGER audit_no_delete"
    } else {
        "ALTER TABLE audit DISABLE TRIGGER audit_no_update_or_delete"
    };

    raw_exec(db.url(), &[disable, "DELETE FROM audit WHERE seq = 4"])
        .await
        .expect("cut");

    let broken = verify_audit(&*h.store).await.unwrap().unwrap_err();
    assert_eq!(
        broken.to_string(),
        "the audit trail ends at entry 3 but the chain head records entry 4: the newest entries were removed or altered"
    );
}

/// Runs plain SQL statements against the test database, outside opsledger.
async fn raw_exec(url: &str, statements: &[&str]) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        for s in statements {
            sqlx::query(s).execute(&mut c).await?;
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await?;
        for s in statements {
            sqlx::query(s).execute(&mut c).await?;
        }
    }
    Ok(())
}

async fn migrating_a_database_that_already_holds_data_keeps_it(db: TestDb) {
    use opsledger::domain::audit::{AuditEntry, GENESIS};
    use opsledger::domain::ids::RecordId;
    use opsledger::domain::lifecycle::NewIncident;
    use opsledger::domain::records::Incident;
    use sqlx::migrate::Migrator;
    use sqlx::Connection;
    use std::borrow::Cow;

    // Arrange: a database at the first schema version, holding an incident written the way
    // that version wrote it.
    let sqlite = db.url().starts_with("sqlite");
    let all = if sqlite {
        opsledger::store::SqliteStore::migrator()
    } else {
        opsledger::store::PgStore::migrator()
    };
    let first = Migrator {
        migrations: Cow::Owned(vec![all.migrations[0].clone()]),
        ..Migrator::DEFAULT
    };
    let now = TestTime::default_start();
    let new = NewIncident {
        title: "Legacy outage".into(),
        impact: None,
        urgency: None,
        service: None,
        ci: None,
        security: false,
    };
    let inc = Record::Incident(Incident::raise(
        RecordId::new(Kind::Incident, 1),
        new,
        &actor("console:old"),
        now,
        &Policy::default(),
    ));
    let entry = AuditEntry::next(
        0,
        GENESIS,
        now,
        "console:old",
        Some("INC-1".into()),
        "incident raise",
        None,
        Some(inc.to_json_string()),
        "ok".into(),
    );
    let statements = [
        format!(
            "INSERT INTO records (kind, key, num, title, status, created_at, updated_at, data) VALUES ('incident', 'INC-1', 1, 'Legacy outage', 'new', '{t}', '{t}', '{d}')",
            t = opsledger::domain::audit::format_time(now),
            d = inc.to_json_string().replace('\'', "''")
        ),
        "INSERT INTO counters (kind, last) VALUES ('incident', 1)".to_string(),
        format!(
            "INSERT INTO audit (seq, at, actor, record, action, before_json, after_json, outcome, prev_hash, hash) VALUES (1, '{}', 'console:old', 'INC-1', 'incident raise', NULL, '{}', 'ok', '{}', '{}')",
            entry.at,
            entry.after.clone().unwrap().replace('\'', "''"),
            entry.prev_hash,
            entry.hash
        ),
        format!("UPDATE chain_head SET seq = 1, hash = '{}' WHERE id = 1", entry.hash),
    ];
    if sqlite {
        let mut c = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url()))
            .await
            .unwrap();
        first.run(&mut c).await.unwrap();
        for s in &statements {
            sqlx::query(s).execute(&mut c).await.unwrap();
        }
    } else {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        first.run(&mut c).await.unwrap();
        for s in &statements {
            sqlx::query(s).execute(&mut c).await.unwrap();
        }
    }

    // Act: open the store, which applies the remaining migrations.
    let h = harness(&db).await;

    // Assert: the old record reads back, numbering continues, the chain still verifies.
    assert_eq!(
        h.store.get(Kind::Incident, "INC-1").await.unwrap(),
        Some(inc)
    );
    let r = h.ok("console:new", "incident raise After upgrade").await;
    assert!(r.starts_with("INC-2 raised"), "{r}");
    h.ok("console:root", "role grant @carol cab").await;
    assert_eq!(verify_audit(&*h.store).await.unwrap().unwrap().entries, 3);
}

async fn list_pages_in_id_order_and_filters_by_status(db: TestDb) {
    let h = harness(&db).await;
    for i in 1..=12 {
        h.ok("console:alice", &format!("incident raise n{i}")).await;
    }
    for id in [2, 5, 11] {
        h.ok("console:bob", &format!("incident ack INC-{id}")).await;
    }
    let mut seen = Vec::new();
    let mut q = ListQuery::new(Kind::Incident, 5);
    loop {
        let page = h.store.list(&q).await.unwrap();
        seen.extend(page.iter().map(|r| r.key()));
        if page.len() < 5 {
            break;
        }
        q.after = page.last().map(|r| r.key());
    }
    assert_eq!(
        seen,
        (1..=12).map(|n| format!("INC-{n}")).collect::<Vec<_>>(),
        "INC-10 sorts after INC-9"
    );
    let mut acked = ListQuery::new(Kind::Incident, 50);
    acked.statuses = vec!["acknowledged".into()];
    let keys: Vec<String> = h
        .store
        .list(&acked)
        .await
        .unwrap()
        .iter()
        .map(|r| r.key())
        .collect();
    assert_eq!(keys, vec!["INC-2", "INC-5", "INC-11"]);
    let mine = h.ok("console:bob", "incident list mine").await;
    assert!(mine.starts_with("your open incidents (3):"), "{mine}");
}

async fn record_pager_and_audit_stream_read_everything_once_in_order(db: TestDb) {
    // Arrange: seven incidents, one acknowledged: eight audit entries.
    let h = harness(&db).await;
    for i in 1..=7 {
        h.ok("console:alice", &format!("incident raise n{i}")).await;
    }
    h.ok("console:bob", "incident ack INC-3").await;
    let store: &dyn Store = &*h.store;
    let keys = |ns: &[u32]| ns.iter().map(|n| format!("INC-{n}")).collect::<Vec<_>>();

    // Act: pages of three records, the chain three entries at a time.
    let mut pager = RecordPager::new(store, ListQuery::new(Kind::Incident, 3));
    let mut pages = Vec::new();
    while let Some(page) = pager.next_page().await.unwrap() {
        let ids: Vec<String> = page.iter().map(|r| r.key()).collect();
        pages.push((ids, pager.cursor().map(str::to_string)));
    }
    let mut exact = RecordPager::new(store, ListQuery::new(Kind::Incident, 7));
    let whole = exact.next_page().await.unwrap().map(|p| p.len());
    let mut stream = AuditStream::open(store, 3).await.unwrap();
    let (head, _) = stream.head();
    let mut seqs = Vec::new();
    while let Some(page) = stream.next_page().await.unwrap() {
        assert!(page.len() <= 3, "a page holds at most three entries");
        seqs.extend(page.iter().map(|e| e.seq));
    }
    let mut opened_before = AuditStream::open(store, 100).await.unwrap();
    h.ok("console:bob", "incident ack INC-4").await;
    let mut read = 0;
    while let Some(page) = opened_before.next_page().await.unwrap() {
        read += page.len();
    }

    // Assert: every record once, in ID order, the cursor set only while a page follows.
    assert_eq!(
        pages,
        vec![
            (keys(&[1, 2, 3]), Some("INC-3".to_string())),
            (keys(&[4, 5, 6]), Some("INC-6".to_string())),
            (keys(&[7]), None),
        ]
    );
    assert_eq!(whole, Some(7));
    assert_eq!(
        exact.cursor(),
        None,
        "a page ending at the last record is the last"
    );
    assert!(exact.next_page().await.unwrap().is_none());
    // Every entry up to the head, in order; one committed after the stream opened is left out.
    assert_eq!(head, 8);
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    assert_eq!(read, 8);
}

async fn records_created_in_one_batch_are_visible_to_later_commands_in_it(db: TestDb) {
    let h = harness(&db).await;
    // Fire raise and ack together so they are likely to share a batch; the ack must see the raise.
    let (a, b) = tokio::join!(
        h.ledger
            .handle_text(actor("console:alice"), "incident raise Same batch"),
        async {
            tokio::task::yield_now().await;
            h.ledger
                .handle_text(actor("console:bob"), "incident ack INC-1")
                .await
        }
    );
    assert_eq!(a.reply.outcome, Outcome::Ok);
    assert_eq!(b.reply.outcome, Outcome::Ok, "{}", b.reply.text);
    assert_eq!(h.status(Kind::Incident, "INC-1").await, "acknowledged");
    h.clock.advance(chrono::Duration::minutes(1));
}

async fn audit_command_shows_one_records_timeline_with_refusals(db: TestDb) {
    let h = harness(&db).await;
    h.ok("console:alice", "change request Rotate keys type:normal")
        .await;
    h.ok("console:alice", "change submit CHG-1").await;
    let refused = h
        .ledger
        .handle_text(actor("console:alice"), "change approve CHG-1")
        .await
        .reply;
    assert_eq!(
        refused.outcome,
        Outcome::Refused {
            rule: "segregation-of-duties".into()
        }
    );
    h.ok("console:bob", "incident raise Unrelated").await;

    let timeline = h.ok("console:auditor", "audit CHG-1").await;

    let lines: Vec<&str> = timeline.lines().collect();
    assert_eq!(lines[0], "CHG-1 timeline (3 entries):");
    assert!(
        lines[1].contains("console:alice change request: ok"),
        "{timeline}"
    );
    assert!(
        lines[2].contains("console:alice change submit: ok"),
        "{timeline}"
    );
    assert!(
        lines[3].contains("change approve: refused (segregation-of-duties): you requested CHG-1"),
        "{timeline}"
    );
    assert!(!timeline.contains("Unrelated"));
    let missing = h
        .ledger
        .handle_text(actor("console:auditor"), "audit CHG-9")
        .await
        .reply;
    assert_eq!(missing.outcome, Outcome::NotFound);
}

async fn change_list_shows_open_changes_a_voters_queue_and_ones_own(db: TestDb) {
    // Arrange: cab2 has a second account, slack:UCAB2, which requests CHG-3.
    let rules = format!(
        "{}\n[people]\ncarol = [\"console:cab2\", \"slack:UCAB2\"]\n",
        common::TEAM_POLICY
    );
    let h = harness_with(&db, Policy::from_toml(&rules).unwrap()).await;
    h.ok("console:alice", "change request One type:normal")
        .await;
    h.ok("console:alice", "change submit CHG-1").await;
    h.ok("console:cab1", "change approve CHG-1").await;
    h.ok("console:bob", "change request Two type:emergency")
        .await;
    h.ok("console:bob", "change submit CHG-2").await;
    h.ok("slack:UCAB2", "change request Three type:normal")
        .await;
    h.ok("slack:UCAB2", "change submit CHG-3").await;
    h.ok("console:alice", "change request Four type:normal")
        .await;
    h.ok("console:bob", "change request Five type:normal").await;
    h.ok("console:bob", "change submit CHG-5").await;
    h.ok("console:cab3", "change reject CHG-5 no rollback plan")
        .await;
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    };
    let entries = || async { verify_audit(&*h.store).await.unwrap().unwrap().entries };
    let before = entries().await;

    // Act
    let open = h.ok("console:bob", "change list").await;
    let cab1 = h.ok("console:cab1", "change list waiting").await;
    let cab2 = h.ok("console:cab2", "change list waiting").await;
    let carol_on_slack = h.ok("slack:UCAB2", "change list WAITING").await;
    let bob_waiting = h.ok("console:bob", "change list waiting").await;
    let alice_mine = h.ok("console:alice", "change list mine").await;
    let carol_mine = h.ok("console:cab2", "change list mine").await;

    // Assert
    assert!(open.starts_with("open changes (4):"), "{open}");
    assert_eq!(keys(&open), ["CHG-1", "CHG-2", "CHG-3", "CHG-4"]);
    assert!(open.contains("CHG-2 [submitted] Two"), "{open}");
    // cab1 voted on CHG-1 already and is on the ECAB, which votes on the emergency CHG-2.
    assert!(
        cab1.starts_with("changes waiting for your vote (2):"),
        "{cab1}"
    );
    assert_eq!(keys(&cab1), ["CHG-2", "CHG-3"]);
    // carol requested CHG-3 from another account, and is not on the ECAB.
    assert_eq!(keys(&cab2), ["CHG-1"]);
    assert_eq!(keys(&carol_on_slack), ["CHG-1"]);
    assert_eq!(bob_waiting, "No changes waiting for your vote.");
    assert!(
        alice_mine.starts_with("your open changes (2):"),
        "{alice_mine}"
    );
    assert_eq!(keys(&alice_mine), ["CHG-1", "CHG-4"]);
    assert_eq!(keys(&carol_mine), ["CHG-3"]);
    assert_eq!(entries().await, before + 7, "every list is audited");
    h.ok("console:cab2", "change approve CHG-1").await;
    assert_eq!(
        h.ok("slack:UCAB2", "change list waiting").await,
        "No changes waiting for your vote."
    );
}

async fn checked_ranges_return_the_period_entries_the_timeline_query_does(db: TestDb) {
    use opsledger::domain::audit::{format_time, join};
    // Arrange: nine entries an hour apart; the period holds the third to the seventh.
    let h = harness(&db).await;
    let start = TestTime::default_start();
    for i in 0..9 {
        h.clock.set(start + chrono::Duration::hours(i));
        h.ok("console:alice", &format!("incident raise t{i}")).await;
    }
    let from = format_time(start + chrono::Duration::hours(2));
    let to = format_time(start + chrono::Duration::hours(7));
    let (head, head_hash) = h.store.chain_head().await.unwrap();

    // Act: the export's way, ranges of four checked and their period entries kept, against
    // the timeline query over the whole trail.
    let mut segments = Vec::new();
    let mut rows = Vec::new();
    for lo in (1..=head).step_by(4) {
        let (seg, part) = h
            .store
            .audit_check_in_period(lo, (lo + 3).min(head), (&from, &to))
            .await
            .unwrap();
        segments.push(seg);
        rows.extend(part);
    }
    let want = h
        .store
        .audit_in_period(0, head, (&from, &to), 100)
        .await
        .unwrap();

    // Assert: the same entries, in order, and the ranges join to a verified chain.
    assert_eq!(head, 9);
    assert_eq!(
        rows.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7]
    );
    assert_eq!(rows, want);
    assert_eq!(join(segments, head, &head_hash), (9, Ok(head_hash.clone())));
}
