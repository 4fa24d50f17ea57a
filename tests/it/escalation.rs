//! Escalation chains: an incident of a paging priority walks its chain on the clock, every page audited; an acknowledgement stops it; webhook pages are signed; two replicas page each step once.
use crate::common::{self, TestDb, TestTime};

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use opsledger::domain::command::Command;
use opsledger::domain::ids::{Actor, Kind};
use opsledger::domain::policy::Policy;
use opsledger::domain::records::{Incident, Record};
use opsledger::ledger::Ledger;
use opsledger::store::Store;
use serde_json::Value;

const RULES: &str = r#"
[roles]
admin = ["console:root"]
incident-manager = ["console:ines"]

[people]
alice = ["console:alice", "slack:UALICE"]
bob = ["console:bob", "discord:4242"]
ines = ["console:ines"]

[[oncall]]
name = "payments"
members = ["alice", "bob"]
rotation = "weekly"
start = "2026-11-30T09:00:00"
timezone = "Europe/Berlin"

[[escalation]]
name = "payments"
default = true
page = ["P1", "P2"]
steps = [
  { notify = "oncall:payments" },
  { wait = "5m" },
  { notify = "oncall:payments", next = true },
  { wait = "10m" },
  { notify = "role:incident-manager" },
  { notify = "channel" },
  { webhook = "https://pager.example/hook" },
]
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const T0: &str = "2026-12-01T10:00:00Z";

async fn incident(store: &Arc<dyn Store>, id: &str) -> Incident {
    match store.get(Kind::Incident, id).await.unwrap() {
        Some(Record::Incident(i)) => i,
        other => panic!("{id}: {other:?}"),
    }
}

async fn tick(ledger: &Ledger) -> String {
    ledger
        .handle(Actor::system(), Command::Tick)
        .await
        .reply
        .text
}

/// Who each page of the incident went to, in order.
async fn paged(store: &Arc<dyn Store>, id: &str) -> Vec<String> {
    incident(store, id)
        .await
        .escalation
        .map(|e| e.pages.into_iter().map(|p| p.who).collect())
        .unwrap_or_default()
}

conformance!(
    a_service_pages_through_the_chain_it_names,
    a_stale_incident_gets_one_nudge_naming_its_assignee_or_the_person_on_call,
    a_major_incident_without_a_commander_gets_one_reminder,
    an_unacknowledged_p1_walks_its_chain_step_by_step_on_the_clock,
    the_first_acknowledgement_stops_the_chain,
    escalate_now_runs_the_next_steps_without_waiting,
);

async fn escalate_now_runs_the_next_steps_without_waiting(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let clock = TestTime::at(at(T0));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Payments down impact:high urgency:high",
    )
    .await;

    // Act: alice, paged, escalates after a minute instead of waiting five.
    clock.set(at("2026-12-01T10:01:00Z"));
    let first = common::ok(&ledger, "slack:UALICE", "incident escalate INC-1").await;
    let second = common::ok(&ledger, "console:alice", "incident escalate INC-1").await;

    // Assert
    assert!(
        first.starts_with("INC-1 escalated by slack:UALICE: paged bob"),
        "{first}"
    );
    assert!(second.contains("paged ines, channel, webhook"), "{second}");
    assert_eq!(
        paged(&store, "INC-1").await,
        ["alice", "bob", "ines", "channel", "webhook"]
    );
    let refused = common::refused(
        &ledger,
        "console:alice",
        "incident escalate INC-1",
        "lifecycle",
    )
    .await;
    assert!(refused.contains("no escalation under way"), "{refused}");
}

async fn an_unacknowledged_p1_walks_its_chain_step_by_step_on_the_clock(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let clock = TestTime::at(at(T0));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );

    // Act 1: a P1 is raised; alice is on call this week.
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Payments down impact:high urgency:high",
    )
    .await;

    // Assert 1: the first step paged alice at once, through her accounts.
    let inc = incident(&store, "INC-1").await;
    let esc = inc.escalation.clone().expect("a chain started");
    assert_eq!(esc.chain, "payments");
    assert_eq!(esc.pages.len(), 1);
    assert_eq!(esc.pages[0].who, "alice");
    // Its chat accounts: the terminal has no direct messages.
    assert_eq!(esc.pages[0].via, ["slack:UALICE"]);
    assert_eq!(esc.next_at, Some(at("2026-12-01T10:05:00Z")));

    // Act 2: the clock moves; before the wait ends nothing happens.
    clock.set(at("2026-12-01T10:04:59Z"));
    tick(&ledger).await;
    assert_eq!(paged(&store, "INC-1").await, ["alice"]);
    clock.set(at("2026-12-01T10:05:00Z"));
    tick(&ledger).await;
    // The next person in the rotation: bob.
    assert_eq!(paged(&store, "INC-1").await, ["alice", "bob"]);
    clock.set(at("2026-12-01T10:15:00Z"));
    let text = tick(&ledger).await;

    // Assert 2: the incident managers, the channel and the webhook, then the chain ran out.
    assert!(text.contains("INC-1: 3 paged"), "{text}");
    assert_eq!(
        paged(&store, "INC-1").await,
        ["alice", "bob", "ines", "channel", "webhook"]
    );
    let inc = incident(&store, "INC-1").await;
    let esc = inc.escalation.unwrap();
    assert_eq!(esc.stopped.as_deref(), Some("ran out of steps"));
    assert_eq!(esc.next_at, None);
    let trail = store.audit_for("INC-1", 0, 200).await.unwrap();
    let pages: Vec<&str> = trail
        .iter()
        .filter(|e| e.action == "page")
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(pages.len(), 6, "{pages:#?}");
    assert_eq!(
        pages[0],
        "ok: paged alice via slack:UALICE, step 1 (oncall:payments) of escalation payments, round 1"
    );
    assert!(
        pages[1].starts_with("ok: paged bob via discord:4242, step 3"),
        "{}",
        pages[1]
    );
    assert!(
        pages[4].contains("paged webhook via webhook, step 7 (https://pager.example/hook)"),
        "{}",
        pages[4]
    );
    assert_eq!(
        pages[5],
        "ok: escalation payments ran out of steps with nobody acknowledging"
    );
    // A later tick pages nobody again.
    clock.set(at("2026-12-01T12:00:00Z"));
    tick(&ledger).await;
    assert_eq!(paged(&store, "INC-1").await.len(), 5);
    // The report: three pages to people, inside working hours (Tuesday 10:00 UTC), none
    // acknowledged, one chain that ran out.
    let report = opsledger::reports::service_report(store.as_ref(), None, None, at(T0))
        .await
        .unwrap();
    let t = &report.total;
    assert_eq!(t.pages, 3);
    assert_eq!(t.pages_by_person["alice"], 1);
    assert_eq!(t.pages_by_person["ines"], 1);
    assert_eq!(t.pages_outside_working_hours, 0);
    assert_eq!(t.mean_time_page_to_acknowledge_secs, None);
    assert_eq!(t.escalations_ran_out, 1);

    // A P3 pages nobody; re-prioritised to P2 (unacknowledged), its chain starts.
    common::ok(&ledger, "console:carl", "incident raise Slow reports").await;
    assert!(incident(&store, "INC-2").await.escalation.is_none());
    common::ok(
        &ledger,
        "console:ines",
        "incident priority INC-2 impact:high urgency:medium",
    )
    .await;
    assert_eq!(paged(&store, "INC-2").await, ["alice"]);
}

async fn the_first_acknowledgement_stops_the_chain(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let clock = TestTime::at(at(T0));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Payments down impact:high urgency:high",
    )
    .await;

    // Act: bob (not paged yet) acknowledges after two minutes.
    clock.set(at("2026-12-01T10:02:00Z"));
    common::ok(&ledger, "console:bob", "incident ack INC-1").await;
    clock.set(at("2026-12-01T10:30:00Z"));
    tick(&ledger).await;

    // Assert
    let esc = incident(&store, "INC-1").await.escalation.unwrap();
    assert_eq!(esc.stopped.as_deref(), Some("acknowledged by console:bob"));
    assert_eq!(esc.pages.len(), 1, "nobody paged after the ack");
    assert_eq!(
        esc.pages[0].acknowledged_by.as_ref().unwrap().as_str(),
        "console:bob"
    );
    assert_eq!(
        esc.pages[0].acknowledged_at,
        Some(at("2026-12-01T10:02:00Z"))
    );
    let summary = common::ok(&ledger, "console:bob", "report").await;
    assert!(
        summary.contains("Pages: 1 (0 outside working hours), page to acknowledgement 2m00s; escalations that ran out of steps: 0"),
        "{summary}"
    );
    // Outside working hours (a Saturday night), counted as such.
    clock.set(at("2026-12-05T03:00:00Z"));
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Night outage impact:high urgency:high",
    )
    .await;
    let report =
        opsledger::reports::service_report(store.as_ref(), None, None, at("2026-12-05T03:00:00Z"))
            .await
            .unwrap();
    assert_eq!(report.total.pages, 2);
    assert_eq!(report.total.pages_outside_working_hours, 1);
    // The evidence pack lists the pages with the incidents (clause 8.6.1).
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("pack");
    opsledger::export::export(
        store.as_ref(),
        None,
        None,
        &dir,
        at("2026-12-05T03:00:00Z"),
        false,
    )
    .await
    .unwrap();
    let pages = std::fs::read_to_string(dir.join("pages.csv")).unwrap();
    let rows: Vec<&str> = pages.lines().collect();
    assert_eq!(rows.len(), 3, "{pages}");
    assert_eq!(
        rows[1],
        "INC-1,payments,1,1,oncall:payments,alice,slack:UALICE,2026-12-01T10:00:00Z,false,,console:bob,2026-12-01T10:02:00Z"
    );
    let page = std::fs::read_to_string(dir.join("clauses/8.6.1.html")).unwrap();
    assert!(page.contains("pages.csv"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_page_each_step_once() {
    let Some(db) = common::postgres_db().await else {
        return;
    };
    // Arrange: two ledgers (two writers, two connection pools) on one database.
    let clock = TestTime::at(at(T0));
    let a = db.store().await;
    let b = db.store().await;
    let policy = Policy::from_toml(RULES).unwrap();
    let (one, _w1) = common::ledger_on(a.clone(), policy.clone(), clock.clone());
    let (two, _w2) = common::ledger_on(b, policy, clock.clone());
    for n in 1..=5 {
        common::ok(
            &one,
            "console:carl",
            &format!("incident raise Outage {n} impact:high urgency:high"),
        )
        .await;
    }

    // Act: both tick at once at each deadline.
    for t in ["2026-12-01T10:05:00Z", "2026-12-01T10:15:00Z"] {
        clock.set(at(t));
        let (x, y) = tokio::join!(tick(&one), tick(&two));
        let _ = (x, y);
    }

    // Assert: every incident paged each person once.
    for n in 1..=5 {
        let id = format!("INC-{n}");
        assert_eq!(
            paged(&a, &id).await,
            ["alice", "bob", "ines", "channel", "webhook"],
            "{id}"
        );
        let trail = a.audit_for(&id, 0, 200).await.unwrap();
        assert_eq!(
            trail.iter().filter(|e| e.action == "page").count(),
            6,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_page_is_posted_signed_through_the_outbox() {
    // Arrange: a bridge that records what it gets.
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let sink = got.clone();
    let bridge = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    );
    let bridge = common::fake::serve(bridge).await;
    let rules = format!(
        "{}\n[[escalation]]\nname = \"bridge\"\ndefault = true\npage = [\"P1\"]\nsteps = [{{ notify = \"ines\" }}, {{ webhook = \"{bridge}/hook\" }}]\n",
        RULES.split("[[escalation]]").next().unwrap()
    );
    let integrations = opsledger::config::Integrations {
        page_webhook_secret: Some("bridge-secret".to_string().into()),
        ..Default::default()
    };
    let (running, _base, _db) = common::serve_platforms(integrations, &rules, None).await;

    // Act
    let raised = running
        .ledger
        .handle_text(
            common::actor("console:carl"),
            "incident raise Card payments failing impact:high urgency:high",
        )
        .await
        .reply;
    assert!(raised.text.starts_with("INC-1 raised"), "{}", raised.text);

    // Assert: one POST, signed as documented, naming the incident and whom it paged.
    let (headers, body) = common::fake::until(
        "the webhook page",
        std::time::Duration::from_secs(15),
        || got.lock().unwrap().first().cloned(),
        || got.lock().unwrap().len(),
    )
    .await;
    let want = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"bridge-secret").unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    assert_eq!(headers["x-opsledger-signature"], want.as_str());
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["incident"], "INC-1");
    assert_eq!(doc["priority"], "P1");
    assert_eq!(doc["title"], "Card payments failing");
    assert_eq!(doc["step"], 2);
    // The delivery is noted on the page, with its time, and audited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let esc = incident(running.ledger.store(), "INC-1")
            .await
            .escalation
            .unwrap();
        let hook = esc.pages.iter().find(|p| p.who == "webhook").unwrap();
        if hook.delivered.iter().any(|d| d.via == "webhook") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "delivery not noted: {esc:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let trail = running
        .ledger
        .store()
        .audit_for("INC-1", 0, 50)
        .await
        .unwrap();
    assert!(
        trail.iter().any(|e| e.action == "page delivered"
            && e.actor == "system:opsledger"
            && e.outcome == "ok: page to webhook (step 2) delivered via webhook"),
        "{trail:?}"
    );
    // ines has no chat account: the webhook is what reaches her, and the audit says so.
    assert_eq!(doc["paged"], serde_json::json!(["ines"]));
    let trail = running
        .ledger
        .store()
        .audit_for("INC-1", 0, 50)
        .await
        .unwrap();
    assert!(
        trail.iter().any(|e| e.action == "page"
            && e.outcome.starts_with(
                "ok: paged ines via no chat account (only a webhook step reaches them)"
            )),
        "{trail:?}"
    );
    assert!(
        doc["link"].as_str().unwrap().ends_with("/records/INC-1"),
        "{doc}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "posted once");
    running.stop().await.unwrap();
}

async fn a_major_incident_without_a_commander_gets_one_reminder(db: TestDb) {
    // Arrange: two P1s (major incidents); the second gets a commander at once.
    let store = db.store().await;
    let clock = TestTime::at(at(T0));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    let mut events = ledger.subscribe();
    for title in ["Outage one", "Outage two"] {
        common::ok(
            &ledger,
            "console:carl",
            &format!("incident raise {title} impact:high urgency:high"),
        )
        .await;
    }
    let set = common::ok(
        &ledger,
        "console:ines",
        "incident role INC-2 commander @alice",
    )
    .await;
    assert_eq!(set, "INC-2: console:alice is commander");
    common::ok(&ledger, "console:ines", "incident role INC-2 scribe @bob").await;
    let usage = common::run(&ledger, "console:ines", "incident role INC-2 captain @bob").await;
    assert!(
        usage.text.contains("is not an incident role"),
        "{}",
        usage.text
    );

    // Act: the default commander_within is 10 minutes.
    clock.set(at("2026-12-01T10:09:00Z"));
    tick(&ledger).await;
    let early = incident(&store, "INC-1").await.commander_reminded_at;
    clock.set(at("2026-12-01T10:10:00Z"));
    let text = tick(&ledger).await;
    clock.set(at("2026-12-01T10:20:00Z"));
    tick(&ledger).await;

    // Assert: INC-1 reminded once, in its room; INC-2 never.
    assert_eq!(early, None);
    assert!(
        text.contains("INC-1: reminded that it has no commander"),
        "{text}"
    );
    assert_eq!(
        incident(&store, "INC-1").await.commander_reminded_at,
        Some(at("2026-12-01T10:10:00Z"))
    );
    assert_eq!(incident(&store, "INC-2").await.commander_reminded_at, None);
    let mut notices = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let opsledger::domain::reply::Event::RoomNotice { incident, text } = e {
            notices.push((incident, text));
        }
    }
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "INC-1");
    assert!(
        notices[0].1.contains("incident role INC-1 commander"),
        "{}",
        notices[0].1
    );
    let card = common::run(&ledger, "console:bob", "incident show INC-2").await;
    let fields: Vec<(String, String)> =
        card.fields.into_iter().map(|f| (f.name, f.value)).collect();
    assert!(
        fields.contains(&("Commander".into(), "console:alice".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("Scribe".into(), "console:bob".into())),
        "{fields:?}"
    );
    let trail = store.audit_for("INC-2", 0, 100).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.action == "incident role" && e.actor == "console:ines"));
}

async fn a_stale_incident_gets_one_nudge_naming_its_assignee_or_the_person_on_call(db: TestDb) {
    // Arrange: P3s go stale after 4 hours by default; one assigned to bob, one to nobody.
    let store = db.store().await;
    let clock = TestTime::at(at(T0));
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    );
    let mut events = ledger.subscribe();
    common::ok(&ledger, "console:carl", "incident raise Slow search").await;
    common::ok(&ledger, "console:carl", "incident raise Odd logs").await;
    common::ok(&ledger, "console:ines", "incident assign INC-1 @bob").await;

    // Act: nothing before four hours; at four, each is nudged once.
    clock.set(at("2026-12-01T13:59:00Z"));
    let early = tick(&ledger).await;
    clock.set(at("2026-12-01T14:00:00Z"));
    let due = tick(&ledger).await;
    clock.set(at("2026-12-01T20:00:00Z"));
    let later = tick(&ledger).await;
    // A note re-arms it: four hours after the note, one more nudge.
    common::ok(&ledger, "console:bob", "incident note INC-1 still digging").await;
    clock.set(at("2026-12-02T00:00:00Z"));
    let again = tick(&ledger).await;

    // Assert
    assert_eq!(early, "no deadlines due");
    assert!(due.contains("INC-1: nudged, no update for 4h"), "{due}");
    assert!(due.contains("INC-2: nudged, no update for 4h"), "{due}");
    assert_eq!(later, "no deadlines due");
    assert_eq!(again, "INC-1: nudged, no update for 4h");
    let mut notices = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let opsledger::domain::reply::Event::RoomNotice { incident, text } = e {
            notices.push((incident, text));
        }
    }
    assert_eq!(notices.len(), 3, "{notices:?}");
    // The two due at once may come in either order.
    notices[..2].sort();
    assert_eq!(
        notices[0].1,
        ":hourglass: INC-1 (P3) has had no update for 4h: console:bob, its assignee"
    );
    // Nobody assigned: the person on call on the default chain's schedule (alice this week).
    assert_eq!(
        notices[1].1,
        ":hourglass: INC-2 (P3) has had no update for 4h: alice, on call"
    );
    let trail = store.audit_for("INC-2", 0, 50).await.unwrap();
    assert!(trail.iter().any(|e| e.action == "stale nudge"), "{trail:?}");
}

async fn a_service_pages_through_the_chain_it_names(db: TestDb) {
    // Arrange: besides the default chain (P1, P2), one for P3s that pages bob.
    let store = db.store().await;
    let rules = format!(
        "{RULES}\n[[escalation]]\nname = \"db\"\npage = [\"P3\"]\nsteps = [{{ notify = \"bob\" }}]\n"
    );
    let (ledger, _writer) = common::ledger_on(
        store.clone(),
        Policy::from_toml(&rules).unwrap(),
        TestTime::at(at(T0)),
    );
    let unknown = common::refused(
        &ledger,
        "console:root",
        "service add db escalation:nightly",
        "escalation",
    )
    .await;
    assert!(unknown.contains("no escalation chain nightly"), "{unknown}");
    common::ok(&ledger, "console:root", "service add db escalation:db").await;

    // Act
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Replication lag service:db",
    )
    .await;
    common::ok(
        &ledger,
        "console:carl",
        "incident raise Replication lag elsewhere",
    )
    .await;

    // Assert: the service's chain paged bob for its P3; the default chain pages no P3.
    assert_eq!(paged(&store, "INC-1").await, ["bob"]);
    assert!(incident(&store, "INC-2").await.escalation.is_none());
}
