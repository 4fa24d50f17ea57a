//! Alerts become incidents: the `/alerts/...` endpoints, grouping, deduplication, resolution, reopening, recurrence, suspected changes and the deploy freeze, on both backends.
use crate::common::{self, TestDb, TestTime};

use std::sync::Arc;

use chrono::Duration;
use opsledger::domain::alerts::AlertSource;
use opsledger::domain::command::{Command, GithubCmd};
use opsledger::domain::ids::{Actor, Kind};
use opsledger::domain::policy::Policy;
use opsledger::domain::records::{AlertGroup, Change, Incident, Problem, Record};
use opsledger::domain::reply::{ButtonStyle, Event, Outcome};
use opsledger::ledger::{Ledger, TimeSource};
use opsledger::store::{ListQuery, Store};
use serde_json::{json, Value};

const TOKEN: &str = "alerts-s3cret";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/alerts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

/// One alert of a payload: fingerprint, firing or not, when it started.
struct A<'a>(&'a str, bool, &'a str);

/// A notification of group `group` (alertname) on `service`, as Alertmanager sends it.
fn payload(group: &str, service: &str, severity: &str, alerts: &[A<'_>]) -> Value {
    let items: Vec<Value> = alerts
        .iter()
        .map(|A(fp, firing, starts)| {
            json!({
                "status": if *firing { "firing" } else { "resolved" },
                "labels": {"alertname": group, "service": service, "severity": severity, "instance": format!("{service}-{fp}")},
                "annotations": {"summary": format!("{group} on {service}")},
                "startsAt": starts,
                "endsAt": if *firing { "0001-01-01T00:00:00Z".to_string() } else { "2026-12-01T12:00:00Z".to_string() },
                "generatorURL": format!("http://prometheus.example/graph?g0.expr={group}&fp={fp}"),
                "fingerprint": fp,
            })
        })
        .collect();
    let firing = alerts.iter().any(|a| a.1);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{group}\"}}"),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": "ops",
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group, "service": service, "severity": severity},
        "commonAnnotations": {"summary": format!("{group} on {service}")},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": items,
    })
}

const T0: &str = "2026-12-01T09:00:00Z";

/// Sends a notification to the ledger as the HTTP endpoint does (the adapter parses the body).
async fn notify(ledger: &Ledger, body: &Value) -> opsledger::domain::reply::Reply {
    let parsed = opsledger_alerts::parse(body.to_string().as_bytes()).expect("a notification");
    let n = opsledger::integrations::alerts::notification(parsed, AlertSource::Alertmanager);
    let actor = Actor::alerts(&n.receiver);
    ledger
        .handle(actor, Command::Alert(Box::new(n)))
        .await
        .reply
}

async fn incident(store: &Arc<dyn Store>, id: &str) -> Incident {
    match store.get(Kind::Incident, id).await.unwrap() {
        Some(Record::Incident(i)) => i,
        other => panic!("{id}: {other:?}"),
    }
}

async fn change(store: &Arc<dyn Store>, id: &str) -> Change {
    match store.get(Kind::Change, id).await.unwrap() {
        Some(Record::Change(c)) => c,
        other => panic!("{id}: {other:?}"),
    }
}

async fn all(store: &Arc<dyn Store>, kind: Kind) -> Vec<Record> {
    store.list(&ListQuery::new(kind, 1000)).await.unwrap()
}

fn rules(extra: &str) -> Policy {
    Policy::from_toml(&format!("{}\n{extra}", common::TEAM_POLICY)).expect("rules")
}

fn ledger(store: Arc<dyn Store>, policy: Policy) -> (Ledger, Arc<TestTime>) {
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = common::ledger_on(store, policy, clock.clone());
    (ledger, clock)
}

// --- the endpoint ------------------------------------------------------------------------------

async fn serve_alerts(token: Option<&str>) -> (opsledger::app::Running, String, TestDb) {
    let integrations = opsledger::config::Integrations {
        alerts_token: token.map(|t| t.to_string().into()),
        ..Default::default()
    };
    common::serve_platforms(integrations, common::TEAM_POLICY, None).await
}

async fn post(base: &str, path: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn scrape(base: &str) -> String {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    resp.text().await.unwrap()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test]
async fn without_a_token_the_alert_endpoints_are_not_there() {
    let (running, base, _db) = serve_alerts(None).await;
    let body = fixture("alertmanager-0.25-firing.json")
        .to_string()
        .into_bytes();
    for path in ["/alerts/alertmanager", "/alerts/grafana"] {
        let (status, answer) = post(&base, path, Some(&bearer()), body.clone()).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("OPSLEDGER_ALERTS_TOKEN"),
            "{answer}"
        );
    }
    assert!(all(running.ledger.store(), Kind::Incident).await.is_empty());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_rejected_notification_gets_401_400_or_413_and_changes_nothing() {
    // Arrange
    let (running, base, _db) = serve_alerts(Some(TOKEN)).await;
    let good = fixture("alertmanager-0.25-firing.json")
        .to_string()
        .into_bytes();
    let path = "/alerts/alertmanager";
    let head = running.ledger.store().chain_head().await.unwrap();

    // Act and assert: no credentials, a wrong token, a wrong scheme.
    for auth in [None, Some("Bearer nope"), Some("Token alerts-s3cret")] {
        let (status, answer) = post(&base, path, auth, good.clone()).await;
        assert_eq!(status, 401, "{auth:?}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("basic auth"),
            "{answer}"
        );
    }
    // Malformed bodies say what is wrong.
    for (body, says) in [
        (b"not json".to_vec(), "not an alert notification"),
        (
            br#"{"receiver":"ops","status":"firing","alerts":[]}"#.to_vec(),
            "groupKey",
        ),
        (
            br#"{"groupKey":"k","receiver":"ops","status":"on fire","alerts":[]}"#.to_vec(),
            "\"firing\" or \"resolved\"",
        ),
    ] {
        let (status, answer) = post(&base, path, Some(&bearer()), body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    // Over 1 MiB.
    let mut big = fixture("alertmanager-0.25-firing.json");
    big["commonAnnotations"]["description"] = json!("x".repeat(1024 * 1024));
    let (status, _) = post(&base, path, Some(&bearer()), big.to_string().into_bytes()).await;
    assert_eq!(status, 413);

    // Nothing was recorded, not even an audit entry.
    let store = running.ledger.store();
    assert!(all(store, Kind::Incident).await.is_empty());
    assert!(all(store, Kind::Alert).await.is_empty());
    assert_eq!(store.chain_head().await.unwrap(), head);
    let metrics = scrape(&base).await;
    assert!(
        metrics.contains(
            r#"opsledger_alert_notifications_total{receiver="unknown",result="unauthorized"} 3"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"opsledger_alert_notifications_total{receiver="unknown",result="malformed"} 3"#
        ),
        "{metrics}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn alertmanagers_own_notifications_raise_one_incident_note_a_new_alert_and_report_resolution()
{
    // Arrange: the three notifications Alertmanager 0.25 sent for one group.
    let (running, base, _db) = serve_alerts(Some(TOKEN)).await;
    let path = "/alerts/alertmanager";
    let send = |body: Value, auth: String| {
        let base = base.clone();
        async move { post(&base, path, Some(&auth), body.to_string().into_bytes()).await }
    };
    let store = running.ledger.store().clone();
    let basic = {
        use base64::Engine;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("alertmanager:{TOKEN}"));
        format!("Basic {creds}")
    };

    // Act 1: the first firing notification, with basic auth as Alertmanager can send it.
    let (status, answer) = send(fixture("alertmanager-0.25-firing.json"), basic).await;

    // Assert 1: one incident, priority from severity critical, service and CI from the labels.
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["ok"].as_str().unwrap().contains("INC-1 raised"),
        "{answer}"
    );
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.title, "Checkout error rate above 5%");
    assert_eq!(inc.priority.to_string(), "P1");
    assert_eq!(inc.service.as_deref(), Some("checkout"));
    assert_eq!(inc.ci.as_deref(), Some("checkout-1:8080"));
    assert_eq!(inc.reporter.as_str(), "alerts:opsledger");
    let description = inc.description.clone().unwrap();
    assert!(
        description.contains("http://prometheus.example:9090/graph?"),
        "{description}"
    );
    assert!(description.contains("5xx ratio is 7.2%"), "{description}");
    assert_eq!(inc.alert.as_ref().unwrap().firing, 1);

    // Act 2: the same notification again (a repeat), then the group with a second alert.
    let (_, repeat) = send(fixture("alertmanager-0.25-firing.json"), bearer()).await;
    let after_repeat = incident(&store, "INC-1").await;
    let (status, second) = send(fixture("alertmanager-0.25-two-firing.json"), bearer()).await;

    // Assert 2: the repeat changed nothing; the new fingerprint added a note with its link.
    assert!(
        repeat["ok"].as_str().unwrap().contains("no change"),
        "{repeat}"
    );
    assert_eq!(after_repeat, inc);
    assert_eq!(status, 200);
    assert!(
        second["ok"]
            .as_str()
            .unwrap()
            .contains("INC-1: alert firing"),
        "{second}"
    );
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.notes.len(), 1, "{:?}", inc.notes);
    assert!(
        inc.notes[0].text.starts_with("alert firing: HighErrorRate"),
        "{:?}",
        inc.notes
    );
    assert_eq!(inc.alert.as_ref().unwrap().firing, 2);

    // Act 3: the first notification replayed, then the group resolved.
    let (_, replay) = send(fixture("alertmanager-0.25-firing.json"), bearer()).await;
    let (status, resolved) = send(fixture("alertmanager-0.25-resolved.json"), bearer()).await;

    // Assert 3: the replay changed nothing; resolution is noted, and the card offers Resolve
    // first. Without auto_resolve the incident stays open for a person to resolve.
    assert!(
        replay["ok"].as_str().unwrap().contains("no change"),
        "{replay}"
    );
    assert_eq!(status, 200);
    assert!(
        resolved["ok"].as_str().unwrap().contains("all 2 alerts"),
        "{resolved}"
    );
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.status.as_str(), "new");
    assert_eq!(inc.notes.len(), 2);
    assert!(inc.notes[1].text.contains("resolved"), "{:?}", inc.notes);
    let card = running
        .ledger
        .handle_text(common::actor("console:bob"), "incident show INC-1")
        .await
        .reply;
    assert_eq!(card.buttons[0].label, "Resolve");
    assert_eq!(card.buttons[0].style, ButtonStyle::Primary);
    assert!(
        card.fields
            .iter()
            .any(|f| f.value.starts_with("all 2 resolved")),
        "{:?}",
        card.fields
    );
    assert_eq!(all(&store, Kind::Incident).await.len(), 1);

    // The counts by receiver and result.
    let metrics = scrape(&base).await;
    for (result, n) in [("raised", 1), ("unchanged", 2), ("updated", 2)] {
        let line = format!(
            r#"opsledger_alert_notifications_total{{receiver="opsledger",result="{result}"}} {n}"#
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn grafanas_documented_payload_is_taken_at_its_own_path() {
    let (running, base, _db) = serve_alerts(Some(TOKEN)).await;
    let body = fixture("grafana-docs-sample.json").to_string().into_bytes();
    let (status, answer) = post(&base, "/alerts/grafana", Some(&bearer()), body).await;
    assert_eq!(status, 200, "{answer}");
    let inc = incident(running.ledger.store(), "INC-1").await;
    assert_eq!(inc.title, "High memory usage, High CPU usage");
    assert_eq!(inc.reporter.as_str(), "alerts:My-Super-Webhook");
    let d = inc.description.unwrap();
    assert!(
        d.contains("https://play.grafana.org/alerting/1afz29v7z/edit"),
        "{d}"
    );
    assert!(
        d.contains("https://play.grafana.org/alerting/d1rdpdv7k/edit"),
        "{d}"
    );
    let Some(Record::Alert(group)) = running
        .ledger
        .store()
        .get(Kind::Alert, &inc.alert.unwrap().group)
        .await
        .unwrap()
    else {
        panic!("the alert group")
    };
    assert_eq!(group.source, "grafana");
    assert_eq!(group.alerts.len(), 2);
    running.stop().await.unwrap();
}

// --- behaviour, on both backends ----------------------------------------------------------------

conformance!(
    repeats_and_replays_change_nothing_and_a_new_fingerprint_adds_a_note,
    auto_resolve_resolves_as_the_receiver_naming_the_alerts,
    a_group_firing_again_reopens_within_the_window_and_raises_a_linked_incident_after,
    a_recurring_group_opens_a_problem_linked_to_all_its_incidents,
    a_change_in_progress_on_the_service_is_a_suspected_cause_until_cleared,
    deployments_wait_while_the_service_has_an_open_p1,
);

async fn repeats_and_replays_change_nothing_and_a_new_fingerprint_adds_a_note(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let (ledger, _) = ledger(store.clone(), rules(""));
    let first = payload("DiskFull", "db", "warning", &[A("f1", true, T0)]);
    let two = payload(
        "DiskFull",
        "db",
        "warning",
        &[A("f1", true, T0), A("f2", true, T0)],
    );

    // Act
    notify(&ledger, &first).await;
    let head = store.chain_head().await.unwrap().0;
    let repeat = notify(&ledger, &first).await;
    notify(&ledger, &two).await;
    notify(&ledger, &two).await;
    notify(&ledger, &first).await;

    // Assert: one incident (warning is medium/medium, P3), one note for f2.
    assert!(repeat.text.contains("no change"), "{}", repeat.text);
    let incidents = all(&store, Kind::Incident).await;
    assert_eq!(incidents.len(), 1);
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.priority.to_string(), "P3");
    assert_eq!(inc.notes.len(), 1, "{:?}", inc.notes);
    assert!(inc.notes[0].text.contains("fp=f2"), "{:?}", inc.notes);
    // Each repeat is in the audit trail as received, with no record changed.
    let trail = store.audit_after(head, 100).await.unwrap();
    let repeats: Vec<_> = trail
        .iter()
        .filter(|e| e.outcome.contains("no change"))
        .collect();
    assert_eq!(repeats.len(), 3, "{trail:?}");
    assert!(repeats.iter().all(|e| e.after.is_none()));
}

async fn auto_resolve_resolves_as_the_receiver_naming_the_alerts(db: TestDb) {
    // Arrange
    let store = db.store().await;
    let (ledger, clock) = ledger(store.clone(), rules("[alerts]\nauto_resolve = true"));
    notify(
        &ledger,
        &payload(
            "Latency",
            "shop",
            "critical",
            &[A("a", true, T0), A("b", true, T0)],
        ),
    )
    .await;
    clock.advance(Duration::minutes(20));

    // Act: one alert resolves, then the other.
    notify(
        &ledger,
        &payload(
            "Latency",
            "shop",
            "critical",
            &[A("a", false, T0), A("b", true, T0)],
        ),
    )
    .await;
    let still_open = incident(&store, "INC-1").await;
    notify(
        &ledger,
        &payload(
            "Latency",
            "shop",
            "critical",
            &[A("a", false, T0), A("b", false, T0)],
        ),
    )
    .await;

    // Assert
    assert_eq!(still_open.status.as_str(), "new");
    assert!(
        still_open.notes[0].text.contains("1 of 2 firing"),
        "{:?}",
        still_open.notes
    );
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.status.as_str(), "resolved");
    let resolution = inc.resolution.clone().unwrap();
    assert!(resolution.contains("all 2 alerts"), "{resolution}");
    assert!(resolution.contains("Latency"), "{resolution}");
    assert_eq!(inc.notes.last().unwrap().actor.as_str(), "alerts:ops");
    // Nobody responded: no acknowledgement time to count.
    assert_eq!(inc.acknowledged_at, None);
    // A repeat of the resolved group does not touch it.
    let again = notify(
        &ledger,
        &payload(
            "Latency",
            "shop",
            "critical",
            &[A("a", false, T0), A("b", false, T0)],
        ),
    )
    .await;
    assert!(again.text.contains("no change"));
}

async fn a_group_firing_again_reopens_within_the_window_and_raises_a_linked_incident_after(
    db: TestDb,
) {
    // Arrange: an incident acknowledged, then resolved by a person.
    let store = db.store().await;
    let (ledger, clock) = ledger(store.clone(), rules(""));
    let firing = payload("Errors", "shop", "warning", &[A("e", true, T0)]);
    notify(&ledger, &firing).await;
    common::ok(&ledger, "console:bob", "incident ack INC-1").await;
    // A repeat never touches an acknowledged incident.
    assert!(notify(&ledger, &firing).await.text.contains("no change"));
    notify(
        &ledger,
        &payload("Errors", "shop", "warning", &[A("e", false, T0)]),
    )
    .await;
    common::ok(&ledger, "console:bob", "incident resolve INC-1 restarted").await;
    assert!(
        notify(&ledger, &firing).await.text.contains("no change"),
        "a replay"
    );

    // Act 1: the alert fires again (a new startsAt) 2 hours later.
    clock.advance(Duration::hours(2));
    let reopened = notify(
        &ledger,
        &payload(
            "Errors",
            "shop",
            "warning",
            &[A("e", true, "2026-12-01T11:00:00Z")],
        ),
    )
    .await;

    // Assert 1
    assert!(
        reopened.text.contains("INC-1 reopened"),
        "{}",
        reopened.text
    );
    assert_eq!(
        incident(&store, "INC-1").await.status.as_str(),
        "acknowledged"
    );

    // Act 2: resolved and closed; it fires again: a closed incident is final.
    notify(
        &ledger,
        &payload(
            "Errors",
            "shop",
            "warning",
            &[A("e", false, "2026-12-01T11:00:00Z")],
        ),
    )
    .await;
    common::ok(&ledger, "console:bob", "incident resolve INC-1 again").await;
    clock.advance(Duration::hours(25));
    let later = notify(
        &ledger,
        &payload(
            "Errors",
            "shop",
            "warning",
            &[A("e", true, "2026-12-02T12:00:00Z")],
        ),
    )
    .await;

    // Assert 2: more than 24 hours after: a new incident, linked to the earlier one.
    assert!(later.text.contains("INC-2 raised"), "{}", later.text);
    let inc2 = incident(&store, "INC-2").await;
    assert_eq!(inc2.recurs, vec!["INC-1".parse().unwrap()]);
    assert_eq!(incident(&store, "INC-1").await.status.as_str(), "resolved");
    let card = common::run(&ledger, "console:bob", "incident show INC-2").await;
    assert!(card
        .fields
        .iter()
        .any(|f| f.name == "Recurs" && f.value == "INC-1"));
}

async fn a_recurring_group_opens_a_problem_linked_to_all_its_incidents(db: TestDb) {
    // Arrange: auto_resolve, so each firing after the window raises a new incident.
    let store = db.store().await;
    let (ledger, clock) = ledger(
        store.clone(),
        rules("[alerts]\nauto_resolve = true\nreopen_within = \"1h\""),
    );
    let starts = [
        "2026-12-01T09:00:00Z",
        "2026-12-02T09:00:00Z",
        "2026-12-03T09:00:00Z",
        "2026-12-04T09:00:00Z",
    ];

    // Act: four firings a day apart, each resolved.
    for (i, s) in starts.iter().enumerate() {
        notify(
            &ledger,
            &payload("OOM", "api", "warning", &[A("o", true, s)]),
        )
        .await;
        notify(
            &ledger,
            &payload("OOM", "api", "warning", &[A("o", false, s)]),
        )
        .await;
        if i < 3 {
            clock.advance(Duration::days(1));
        }
    }

    // Assert: the third incident opened PRB-1, linked to INC-1..3; the fourth joined it.
    assert_eq!(all(&store, Kind::Incident).await.len(), 4);
    let Some(Record::Problem(p)) = store.get(Kind::Problem, "PRB-1").await.unwrap() else {
        panic!("PRB-1")
    };
    let p: Problem = p;
    let ids: Vec<String> = p.incidents.iter().map(|i| i.to_string()).collect();
    assert_eq!(ids, ["INC-1", "INC-2", "INC-3", "INC-4"]);
    assert!(p.title.starts_with("Recurring alert"), "{}", p.title);
    assert_eq!(p.opened_by.as_str(), "alerts:ops");
    for id in ["INC-1", "INC-2", "INC-3", "INC-4"] {
        assert_eq!(
            incident(&store, id).await.problems,
            vec!["PRB-1".parse().unwrap()],
            "{id}"
        );
    }
    assert_eq!(all(&store, Kind::Problem).await.len(), 1);
    // Audited like anything else.
    let trail = store.audit_for("PRB-1", 0, 100).await.unwrap();
    assert!(trail
        .iter()
        .any(|e| e.actor == "alerts:ops" && e.action == "alert"));
}

async fn a_change_in_progress_on_the_service_is_a_suspected_cause_until_cleared(db: TestDb) {
    // Arrange: CHG-1 on shop started; CHG-2 on shop completed 1h ago; CHG-3 on shop completed
    // 3h ago; CHG-4 on another service in progress.
    let store = db.store().await;
    let (ledger, clock) = ledger(store.clone(), rules(""));
    for (n, service) in [(1, "shop"), (2, "shop"), (3, "shop"), (4, "cart")] {
        common::ok(
            &ledger,
            "console:alice",
            &format!("change request Change {n} type:normal service:{service}"),
        )
        .await;
        common::ok(&ledger, "console:alice", &format!("change submit CHG-{n}")).await;
        common::ok(&ledger, "console:cab1", &format!("change approve CHG-{n}")).await;
        common::ok(&ledger, "console:cab2", &format!("change approve CHG-{n}")).await;
    }
    common::ok(&ledger, "console:alice", "change start CHG-3").await;
    common::ok(&ledger, "console:alice", "change complete CHG-3").await;
    clock.advance(Duration::hours(2));
    common::ok(&ledger, "console:alice", "change start CHG-2").await;
    common::ok(&ledger, "console:alice", "change complete CHG-2").await;
    clock.advance(Duration::hours(1));
    common::ok(&ledger, "console:alice", "change start CHG-1").await;
    common::ok(&ledger, "console:alice", "change start CHG-4").await;

    // Act
    notify(
        &ledger,
        &payload("Errors", "shop", "warning", &[A("e", true, T0)]),
    )
    .await;

    // Assert: CHG-1 and CHG-2 are suspected, on both records and on the cards.
    let inc = incident(&store, "INC-1").await;
    let suspects: Vec<String> = inc
        .suspected_changes
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(suspects, ["CHG-1", "CHG-2"]);
    for id in ["CHG-1", "CHG-2"] {
        let c = change(&store, id).await;
        assert_eq!(c.suspected_incidents.len(), 1, "{id}");
        assert_eq!(c.suspected_incidents[0].incident.to_string(), "INC-1");
        let card = common::run(&ledger, "console:bob", &format!("change show {id}")).await;
        assert!(
            card.fields
                .iter()
                .any(|f| f.name == "Suspected incidents" && f.value == "INC-1"),
            "{:?}",
            card.fields
        );
    }
    for id in ["CHG-3", "CHG-4"] {
        assert!(
            change(&store, id).await.suspected_incidents.is_empty(),
            "{id}"
        );
    }
    let card = common::run(&ledger, "console:bob", "incident show INC-1").await;
    assert!(
        card.fields
            .iter()
            .any(|f| f.name == "Suspected changes" && f.value == "CHG-1, CHG-2"),
        "{:?}",
        card.fields
    );

    // The report counts CHG-1 and CHG-2 as failed while their links stand (CHG-3 succeeded).
    let report = common::ok(&ledger, "console:bob", "report").await;
    assert!(
        report.contains("1 successful, 2 failed, 2 of them by incidents"),
        "{report}"
    );

    // Act 2: the requester may not clear their own change; another change manager may.
    common::refused(
        &ledger,
        "console:alice",
        "change review CHG-2 cleared INC-1 unrelated",
        "segregation-of-duties",
    )
    .await;
    common::ok(
        &ledger,
        "console:root",
        "role grant @console:carol change-manager",
    )
    .await;
    let usage = common::run(&ledger, "console:carol", "change review CHG-2 cleared").await;
    assert_eq!(usage.outcome, Outcome::Usage, "{}", usage.text);
    let cleared = common::ok(
        &ledger,
        "console:carol",
        "change review CHG-2 cleared INC-1 the errors came from the CDN",
    )
    .await;

    // Assert 2
    assert!(cleared.contains("INC-1 cleared"), "{cleared}");
    let c = change(&store, "CHG-2").await;
    assert_eq!(
        c.suspected_incidents[0]
            .cleared_by
            .as_ref()
            .unwrap()
            .as_str(),
        "console:carol"
    );
    assert_eq!(c.review, None, "clearing is not the review");
    common::refused(
        &ledger,
        "console:carol",
        "change review CHG-2 cleared INC-1 twice",
        "lifecycle",
    )
    .await;
    let report = common::ok(&ledger, "console:bob", "report").await;
    assert!(
        report.contains("2 successful, 1 failed, 1 of them by incidents"),
        "{report}"
    );
}

async fn deployments_wait_while_the_service_has_an_open_p1(db: TestDb) {
    // Arrange: an approved change on shop in release v1.0.0 of acme/shop.
    let store = db.store().await;
    let (ledger, _) = ledger(
        store.clone(),
        rules("[github]\nblock_deploys_during = [\"P1\"]"),
    );
    common::ok(
        &ledger,
        "console:alice",
        "change request Deploy type:normal service:shop",
    )
    .await;
    common::ok(&ledger, "console:alice", "change submit CHG-1").await;
    common::ok(&ledger, "console:cab1", "change approve CHG-1").await;
    common::ok(&ledger, "console:cab2", "change approve CHG-1").await;
    common::ok(
        &ledger,
        "console:alice",
        "release create v1.0.0 repo:acme/shop CHG-1",
    )
    .await;
    let gate = || {
        Command::Github(GithubCmd::DeploymentGate {
            repo: "acme/shop".into(),
            sha: String::new(),
            reference: "v1.0.0".into(),
            environment: "production".into(),
            callback_url: "http://github.test/callback".into(),
            installation: None,
        })
    };
    let decide = |events: Vec<Event>| {
        events
            .into_iter()
            .find_map(|e| match e {
                Event::DeploymentGateDecided {
                    approved, comment, ..
                } => Some((approved, comment)),
                _ => None,
            })
            .expect("a decision")
    };
    let github = Actor::parse("github:octocat").unwrap();
    assert!(
        decide(ledger.handle(github.clone(), gate()).await.events).0,
        "approved at first"
    );

    // Act: a critical alert on shop raises a P1.
    notify(
        &ledger,
        &payload("Down", "shop", "critical", &[A("d", true, T0)]),
    )
    .await;
    let (approved, comment) = decide(ledger.handle(github.clone(), gate()).await.events);

    // Assert: rejected, naming the incident; approved again once it is resolved.
    assert!(!approved);
    assert!(comment.contains("INC-1 (P1"), "{comment}");
    assert!(comment.contains("service shop"), "{comment}");
    common::ok(&ledger, "console:bob", "incident ack INC-1").await;
    common::ok(&ledger, "console:bob", "incident resolve INC-1 fixed").await;
    assert!(decide(ledger.handle(github, gate()).await.events).0);
}

#[tokio::test]
async fn an_alert_receiver_cannot_run_anything_else() {
    let db = common::sqlite_db();
    let (ledger, _) = ledger(db.store().await, rules(""));
    for text in ["incident raise x", "incident ack INC-1", "report"] {
        let r = ledger.handle_text(Actor::alerts("ops"), text).await.reply;
        assert_eq!(
            r.outcome,
            Outcome::Refused {
                rule: "role".into()
            },
            "{text}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn the_evidence_pack_lists_alert_born_incidents_with_their_links_and_the_report_counts_them()
{
    // Arrange: one alert-born incident, acknowledged after 10 minutes; one raised by hand.
    let db = common::sqlite_db();
    let store = db.store().await;
    let (ledger, clock) = ledger(store.clone(), rules(""));
    notify(
        &ledger,
        &payload("Errors", "shop", "warning", &[A("e", true, T0)]),
    )
    .await;
    clock.advance(Duration::minutes(10));
    common::ok(&ledger, "console:bob", "incident ack INC-1").await;
    common::ok(&ledger, "console:bob", "incident raise Printer on fire").await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("pack");

    // Act
    opsledger::export::export(store.as_ref(), None, None, &dir, clock.now(), false)
        .await
        .unwrap();

    // Assert
    let page = std::fs::read_to_string(dir.join("clauses/9.1.html")).unwrap();
    assert!(page.contains("INC-1"), "{page}");
    assert!(!page.contains("INC-2"), "{page}");
    assert!(
        page.contains("<a href=\"http://prometheus.example/graph?g0.expr=Errors&#38;fp=e\">"),
        "{page}"
    );
    let alerts = std::fs::read_to_string(dir.join("alerts.csv")).unwrap();
    assert!(alerts.contains("INC-1"), "{alerts}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["total"]["incidents_from_alerts"], 1);
    assert_eq!(report["total"]["alert_incident_share_pct"], 50.0);
    assert_eq!(
        report["total"]["alert_mean_time_to_acknowledge_secs"],
        600.0
    );
}

#[tokio::test]
async fn the_alert_group_is_a_record_the_api_serves() {
    let db = common::sqlite_db();
    let store = db.store().await;
    let (ledger, _) = ledger(store.clone(), rules(""));
    let reply = notify(
        &ledger,
        &payload("Errors", "shop", "warning", &[A("e", true, T0)]),
    )
    .await;
    let key = reply.record.unwrap();
    assert!(key.starts_with("alert-"), "{key}");
    let Some(Record::Alert(g)) = store.get(Kind::Alert, &key).await.unwrap() else {
        panic!("{key}")
    };
    let g: AlertGroup = g;
    assert_eq!(g.incident.unwrap().to_string(), "INC-1");
    assert_eq!(g.status_str(), "firing");
    let audit = common::ok(&ledger, "console:bob", &format!("audit {key}")).await;
    assert!(audit.contains("alerts:ops"), "{audit}");
}

// --- a real Alertmanager ------------------------------------------------------------------------

/// Polls `probe` until it gives a value, for at most 20 s (Alertmanager waits `group_wait` and
/// `group_interval`, 1 s each here).
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_raises_one_incident_adds_a_note_and_reports_resolution() {
    // Arrange: opsledger with the token, and Debian's Alertmanager delivering to it with the
    // token as bearer credentials.
    let (running, base, _db) = serve_alerts(Some(TOKEN)).await;
    let am = common::alertmanager::start(&format!("{base}/alerts/alertmanager"), TOKEN).await;
    let store = running.ledger.store().clone();
    let started = (chrono::Utc::now() - Duration::minutes(1)).to_rfc3339();
    let alert = |instance: &str, ends: Option<String>| {
        let mut a = json!({
            "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical", "instance": instance},
            "annotations": {"summary": "Checkout error rate above 5%"},
            "startsAt": started,
            "generatorURL": format!("http://prometheus.example:9090/graph?instance={instance}"),
        });
        if let Some(e) = ends {
            a["endsAt"] = json!(e);
        }
        a
    };

    // Act 1: one alert.
    am.post_alerts(json!([alert("checkout-1", None)])).await;

    // Assert 1: raised once, P1 on checkout.
    let inc = eventually("INC-1", || {
        let store = store.clone();
        async move {
            match store.get(Kind::Incident, "INC-1").await.unwrap() {
                Some(Record::Incident(i)) => Some(i),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(inc.priority.to_string(), "P1");
    assert_eq!(inc.service.as_deref(), Some("checkout"));
    assert_eq!(inc.reporter.as_str(), "alerts:opsledger");

    // Act 2: a second alert joins the group.
    am.post_alerts(json!([alert("checkout-2", None)])).await;

    // Assert 2: a note on the same incident.
    eventually("the note for the second alert", || {
        let store = store.clone();
        async move {
            let i = incident(&store, "INC-1").await;
            i.notes
                .iter()
                .any(|n| n.text.contains("instance=checkout-2"))
                .then_some(())
        }
    })
    .await;

    // Act 3: both resolved.
    let now = chrono::Utc::now().to_rfc3339();
    am.post_alerts(json!([
        alert("checkout-1", Some(now.clone())),
        alert("checkout-2", Some(now))
    ]))
    .await;

    // Assert 3: the resolution is reported, and there is still one incident.
    eventually("the resolution note", || {
        let store = store.clone();
        async move {
            let i = incident(&store, "INC-1").await;
            i.notes
                .iter()
                .any(|n| n.text.contains("all 2 alerts") && n.text.contains("resolved"))
                .then_some(())
        }
    })
    .await;
    assert_eq!(all(&store, Kind::Incident).await.len(), 1);
    drop(am);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_documented_alertmanager_payload_takes_its_severity_from_the_rules_file() {
    // Arrange: the docs' sample pages with `severity: page`, which the rules map to high/high.
    let db = common::sqlite_db();
    let store = db.store().await;
    let (ledger, _) = ledger(
        store.clone(),
        rules("[alerts.severity]\npage = { impact = \"high\", urgency = \"high\" }"),
    );

    // Act
    let reply = notify(&ledger, &fixture("alertmanager-docs-sample.json")).await;

    // Assert: one incident for the firing alert; the resolved one was never seen firing.
    assert!(reply.text.contains("INC-1 raised"), "{}", reply.text);
    let inc = incident(&store, "INC-1").await;
    assert_eq!(inc.title, "Filesystem has less than 10% space left.");
    assert_eq!(inc.priority.to_string(), "P1");
    assert_eq!(inc.reporter.as_str(), "alerts:ops-pager");
    let alert = inc.alert.unwrap();
    assert_eq!((alert.firing, alert.total), (1, 1));
    assert!(inc
        .description
        .unwrap()
        .contains("https://runbooks.example.com/node/filesystem-almost-full"),);
    // With the built-in map, `page` is unknown: the usual medium/medium.
    let db = common::sqlite_db();
    let store = db.store().await;
    let (plain, _) = self::ledger(store.clone(), rules(""));
    notify(&plain, &fixture("alertmanager-docs-sample.json")).await;
    assert_eq!(incident(&store, "INC-1").await.priority.to_string(), "P3");
}
