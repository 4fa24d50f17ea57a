//! Search and filters behind the `Store` port: title words through SQLite FTS5 and PostgreSQL
//! full-text search, the filters by status, priority, service and assignee, and newest-first
//! cursor paging, the same on both backends; and the dashboard's list and search pages.
use crate::common::{self, actor, write_records as write, TestDb, TestTime};

use opsledger::domain::command::Level;
use opsledger::domain::ids::{Kind, RecordId};
use opsledger::domain::lifecycle::NewIncident;
use opsledger::domain::policy::Policy;
use opsledger::domain::records::{Incident, Record};
use opsledger::domain::status::IncidentStatus;
use opsledger::domain::text::search_words;
use opsledger::store::{ListQuery, Store};

conformance!(
    title_words_find_records_of_one_kind_as_words_or_their_starts,
    a_new_title_is_found_by_its_words_and_no_longer_by_the_old_ones,
    migrating_indexes_the_titles_of_records_already_stored,
    filters_and_newest_first_pages_walk_exactly_the_matching_records,
    the_list_and_search_pages_find_a_record_by_a_title_word,
);

fn incident(n: u64, title: &str, service: Option<&str>) -> Incident {
    let new = NewIncident {
        title: title.into(),
        impact: Some(Level::Medium),
        urgency: Some(Level::Medium),
        service: service.map(str::to_string),
        ci: None,
        security: false,
    };
    Incident::raise(
        RecordId::new(Kind::Incident, n),
        new,
        &actor("console:bob"),
        TestTime::default_start(),
        &Policy::default(),
    )
}

async fn search(store: &dyn Store, kind: Kind, text: &str) -> Vec<String> {
    let mut q = ListQuery::new(kind, 100);
    q.words = search_words(text);
    common::keys(store, &q).await
}

const TITLES: [&str; 5] = [
    "Checkout down in EU",
    "Disk filling on db-01",
    "Checkout slow",
    "Zürich office offline",
    "Payments: 502 from PSP",
];

async fn title_words_find_records_of_one_kind_as_words_or_their_starts(db: TestDb) {
    // Arrange: incidents, and a change whose title shares a word with them.
    let store = db.store().await;
    let mut records: Vec<Record> = TITLES
        .iter()
        .enumerate()
        .map(|(n, t)| Record::Incident(incident(n as u64 + 1, t, None)))
        .collect();
    let l = common::ledger_on(
        store.clone(),
        Policy::default(),
        TestTime::at(TestTime::default_start()),
    )
    .0;
    common::ok(
        &l,
        "console:bob",
        "change request \"Upgrade checkout DB\" type:normal",
    )
    .await;
    drop(l);
    write(&*store, std::mem::take(&mut records)).await;

    // Act and assert
    let s = &*store;
    assert_eq!(
        search(s, Kind::Incident, "checkout").await,
        ["INC-1", "INC-3"]
    );
    assert_eq!(
        search(s, Kind::Incident, "CHECK").await,
        ["INC-1", "INC-3"],
        "a word's start, any case"
    );
    assert_eq!(
        search(s, Kind::Incident, "slow checkout").await,
        ["INC-3"],
        "every word"
    );
    assert_eq!(search(s, Kind::Incident, "db-01").await, ["INC-2"]);
    assert_eq!(search(s, Kind::Incident, "zürich").await, ["INC-4"]);
    assert_eq!(search(s, Kind::Incident, "502").await, ["INC-5"]);
    assert_eq!(
        search(s, Kind::Change, "checkout").await,
        ["CHG-1"],
        "one kind at a time"
    );
    assert!(search(s, Kind::Incident, "upgrade").await.is_empty());
    assert!(search(s, Kind::Incident, "outage").await.is_empty());
    // Query syntax of either engine is only words here.
    assert!(search(s, Kind::Incident, "\"* OR NOT ' & | :*")
        .await
        .is_empty());
    assert_eq!(
        search(s, Kind::Incident, "payments: (502)").await,
        ["INC-5"]
    );
    store.close().await;
}

async fn a_new_title_is_found_by_its_words_and_no_longer_by_the_old_ones(db: TestDb) {
    // Arrange
    let store = db.store().await;
    write(
        &*store,
        vec![Record::Incident(incident(1, "Printer jam", None))],
    )
    .await;
    let before = search(&*store, Kind::Incident, "printer").await;

    // Act: the record written again with another title, then again with it unchanged.
    let mut renamed = incident(1, "Scanner offline", None);
    write(&*store, vec![Record::Incident(renamed.clone())]).await;
    renamed.status = IncidentStatus::Acknowledged;
    write(&*store, vec![Record::Incident(renamed)]).await;

    // Assert
    assert_eq!(before, ["INC-1"]);
    assert!(search(&*store, Kind::Incident, "printer").await.is_empty());
    assert_eq!(search(&*store, Kind::Incident, "scanner").await, ["INC-1"]);
    store.close().await;
}

async fn migrating_indexes_the_titles_of_records_already_stored(db: TestDb) {
    use sqlx::{Connection, Executor};

    // Arrange: records stored, then the database taken back to before migration 0011.
    let store = db.store().await;
    write(
        &*store,
        TITLES
            .iter()
            .enumerate()
            .map(|(n, t)| Record::Incident(incident(n as u64 + 1, t, None)))
            .collect(),
    )
    .await;
    store.close().await;
    if db.url().starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        c.execute(
            "DROP TRIGGER records_fts_insert; DROP TRIGGER records_fts_update; \
             DROP TABLE records_fts; DELETE FROM _sqlx_migrations WHERE version = 11",
        )
        .await
        .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(db.url()).await.unwrap();
        c.execute(
            "ALTER TABLE records DROP COLUMN title_words; \
             DELETE FROM _sqlx_migrations WHERE version = 11",
        )
        .await
        .unwrap();
    }

    // Act: the next start migrates.
    let store = db.store().await;
    let found = search(&*store, Kind::Incident, "checkout").await;

    // Assert
    assert_eq!(found, ["INC-1", "INC-3"]);
    store.close().await;
}

async fn filters_and_newest_first_pages_walk_exactly_the_matching_records(db: TestDb) {
    // Arrange: 130 incidents over three services, two assignees, four priorities, three
    // statuses, and half with "disk" in the title.
    let store = db.store().await;
    let records: Vec<Record> = (1..=130u64)
        .map(|n| {
            let service = ["shop", "search", "office"][(n % 3) as usize];
            let mut i = incident(
                n,
                &format!("{} {n}", if n % 2 == 0 { "Disk full" } else { "Slow page" }),
                Some(service),
            );
            i.priority = opsledger::domain::priority::Priority::parse(
                ["P1", "P2", "P3", "P4"][(n / 2 % 4) as usize],
            )
            .unwrap();
            i.assignee = (n % 5 != 0).then(|| actor(["slack:UA", "slack:UB"][(n % 2) as usize]));
            i.status = [
                IncidentStatus::New,
                IncidentStatus::Acknowledged,
                IncidentStatus::Resolved,
            ][(n / 7 % 3) as usize];
            Record::Incident(i)
        })
        .collect();
    write(&*store, records.clone()).await;
    let incidents: Vec<&Incident> = records
        .iter()
        .map(|r| match r {
            Record::Incident(i) => i,
            _ => unreachable!(),
        })
        .collect();

    for (name, filter) in [
        ("everything", ListQuery::new(Kind::Incident, 0)),
        ("acknowledged P3 in shop", {
            let mut q = ListQuery::new(Kind::Incident, 0);
            q.statuses = vec!["acknowledged".into()];
            q.priority = Some("P3".into());
            q.service = Some("shop".into());
            q
        }),
        ("assigned to UA with the word disk", {
            let mut q = ListQuery::new(Kind::Incident, 0);
            q.assignee = Some("slack:UA".into());
            q.words = vec!["disk".into()];
            q
        }),
    ] {
        // The records the filter selects, newest first, sorted in memory.
        let want: Vec<String> = incidents
            .iter()
            .rev()
            .filter(|i| {
                (filter.statuses.is_empty() || filter.statuses.contains(&i.status.to_string()))
                    && filter
                        .priority
                        .as_deref()
                        .is_none_or(|p| i.priority.as_str() == p)
                    && filter
                        .service
                        .as_deref()
                        .is_none_or(|s| i.service.as_deref() == Some(s))
                    && filter.assignee.as_deref().is_none_or(|a| {
                        i.assignee.as_ref().map(|x| x.to_string()).as_deref() == Some(a)
                    })
                    && (filter.words.is_empty() || i.title.starts_with("Disk"))
            })
            .map(|i| i.id.to_string())
            .collect();
        assert!(!want.is_empty(), "{name}: the data has some");

        // Act: pages of 17, each after the last key of the one before.
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let mut q = filter.clone();
            q.limit = 17;
            q.newest_first = true;
            q.after = after.clone();
            let page = store.list(&q).await.unwrap();
            walked.extend(page.iter().map(Record::key));
            if page.len() < 17 {
                break;
            }
            after = page.last().map(Record::key);
        }

        // Assert
        assert_eq!(walked, want, "{name}");
    }
    store.close().await;
}

async fn the_list_and_search_pages_find_a_record_by_a_title_word(db: TestDb) {
    // Arrange
    let app = common::spawn_app_with(db, None).await;
    for t in TITLES {
        let said = app
            .exec(
                "console:bob",
                &format!("incident raise \"{t}\" impact:low urgency:low service:shop"),
            )
            .await;
        assert!(said.text.contains("INC-"), "{}", said.text);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| {
        let (client, url) = (client.clone(), app.url(path));
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string());
            (status, location, resp.text().await.unwrap())
        }
    };

    // Act: the search box in a browser, then the pages over HTTP.
    let browser = common::webdriver::Browser::start().await;
    browser.open(&app.url("/")).await;
    browser
        .eval(
            "const box = document.querySelector('form.search input[name=q]');
               box.value = 'slow check'; box.form.submit(); return true",
        )
        .await;
    browser
        .until(
            "the search results",
            "return location.pathname === '/search' && document.querySelector('main') !== null",
            std::time::Duration::from_secs(5),
        )
        .await;
    let in_browser = browser
        .eval("return [...document.querySelectorAll('main tbody tr')].map(r => r.cells[0].textContent + ' ' + r.cells[1].textContent)")
        .await;
    browser.quit().await;
    let (s1, _, found) = get("/search?q=checkout").await;
    let (s2, to, _) = get("/search?q=INC-4").await;
    let (s3, _, none) = get("/search?q=INC-99").await;
    let (s4, _, listed) = get("/list/incidents?q=slow&service=shop&status=new").await;
    let (s5, _, bad) = get("/list/incidents?after=CHG-1").await;
    let (s6, _, missing) = get("/list/services").await;

    // Assert: every word, as a word's start, any case.
    assert_eq!(in_browser, serde_json::json!(["INC-3 Checkout slow"]));
    assert_eq!((s1, s2, s3, s4, s5, s6), (200, 303, 200, 200, 400, 404));
    assert!(
        found.contains("Checkout down in EU") && found.contains("Checkout slow"),
        "{found}"
    );
    assert!(!found.contains("Disk filling"), "{found}");
    assert_eq!(to.as_deref(), Some("/records/INC-4"));
    assert!(
        none.contains("No record has an ID or title words like"),
        "{none}"
    );
    assert!(
        listed.contains("Checkout slow") && !listed.contains("Checkout down"),
        "{listed}"
    );
    assert!(bad.contains("not a page of this list"), "{bad}");
    assert!(missing.contains("no list"), "{missing}");
    app.stop().await;
}
