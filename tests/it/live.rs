//! Live dashboard pages: `GET /events` on the wire, and pages left open in a real browser that
//! change by themselves when Slack, the ledger or another process (`opsledger exec`) changes a
//! record they show. On both backends.
use crate::common::{self, fake, TestDb};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use axum::Router;
use opsledger::app::Running;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::integrations::slack::SlackSettings;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["slack:UCAB1", "slack:UCAB2"]
"#;

/// A Slack Web API that accepts every call as Slack does (`ok: true` with a message `ts`), and a
/// `response_url` that answers a bare `ok`.
async fn fake_slack() -> String {
    async fn answer(uri: axum::http::Uri, body: String) -> axum::response::Response {
        if uri.path() == "/respond" {
            return fake::plain(200, "ok");
        }
        let method = uri.path().trim_start_matches("/api/").to_string();
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        axum::Json(fake::slack::ok(
            &method,
            &body,
            &fake::slack::ts(1),
            "COWN1",
        ))
        .into_response()
    }
    fake::serve(Router::new().fallback(answer)).await
}

/// `serve` on `db` with Slack on (against the fake), the system clock (Slack signs with real
/// time) and `token` for the API and the dashboard.
async fn serve(db: &TestDb, token: Option<&str>) -> (Running, String, String) {
    let slack = fake_slack().await;
    let args = ServeArgs {
        integrations: Integrations {
            slack: SlackSettings {
                slack_signing_secret: Some(SECRET.to_string().into()),
                slack_bot_token: Some("xoxb-test".to_string().into()),
                slack_api_url: format!("{slack}/api"),
                slack_incident_channel: Some("CINC".into()),
                slack_cab_channel: Some("CCAB".into()),
                ..Default::default()
            },
            ..Integrations::default()
        },
        ..common::serve_args(token)
    };
    let (running, base) = common::serve_on(db, &args, RULES).await;
    (running, base, slack)
}

/// A Slack slash command from `user`, signed as Slack signs it; the reply's text.
async fn slash(base: &str, slack: &str, user: &str, text: &str) -> String {
    let body = serde_urlencoded::to_string([
        ("token", "x"),
        ("team_id", "T1"),
        ("channel_id", "CWORK"),
        ("user_id", user),
        ("user_name", user),
        ("command", "/ops"),
        ("text", text),
        ("response_url", &format!("{slack}/respond")),
        ("trigger_id", &common::trigger_id()),
    ])
    .unwrap();
    let resp = common::slack_post(
        &reqwest::Client::new(),
        &format!("{base}/slack/commands"),
        SECRET,
        body,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let reply: serde_json::Value = resp.json().await.unwrap();
    reply.to_string()
}

/// `opsledger exec --as console:bob TEXT` in another process on `db`, as a second replica or an
/// operator's terminal would run it; when it finished.
fn exec_elsewhere(db: &TestDb, text: &str) -> Instant {
    let scratch = common::scratch::Scratch::new();
    let out = scratch
        .cmd(&["exec", "--as", "console:bob", text])
        .env("OPSLEDGER_DATABASE_URL", db.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::scratch::stderr(&out));
    Instant::now()
}

/// Waits until `script` is true in the page, then checks that was within `limit` of `since`.
async fn shown_within(
    browser: &common::webdriver::Browser,
    what: &str,
    script: &str,
    since: Instant,
    limit: Duration,
) {
    browser.until(what, script, Duration::from_secs(5)).await;
    let took = since.elapsed();
    assert!(
        took <= limit,
        "{what}: shown after {took:?}, over {limit:?}"
    );
}

/// Reads the event stream until `pred` holds for what arrived, or fails after 5 s.
async fn read_until(resp: &mut reqwest::Response, pred: impl Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pred(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("the stream ended or stalled ({other:?}) after {seen:?}"),
        }
    }
    seen
}

async fn the_event_stream_names_each_changed_record_whoever_changed_it(db: TestDb) {
    // Arrange
    let (running, base, slack) = serve(&db, None).await;
    let mut stream = reqwest::get(format!("{base}/events")).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(stream.headers()["x-accel-buffering"], "no");

    // Act: a command through Slack, then one from another process on the same database.
    slash(
        &base,
        &slack,
        "UOPS",
        "incident raise \"Checkout down\" impact:high urgency:high",
    )
    .await;
    let from_slack = read_until(&mut stream, |s| s.contains("data: INC-1")).await;
    exec_elsewhere(&db, "incident raise \"Queue stuck\" impact:low urgency:low");
    let from_exec = read_until(&mut stream, |s| s.contains("data: INC-2")).await;

    // Assert: `change` events whose data is the IDs, one per line as the script reads them.
    // A P1 opens its problem record in the same command.
    assert!(
        from_slack.contains("event: change\ndata: INC-1 PRB-1\n"),
        "{from_slack:?}"
    );
    assert!(
        from_exec.ends_with("event: change\ndata: INC-2\n\n"),
        "{from_exec:?}"
    );
    drop(stream);
    running.stop().await.unwrap();
}

async fn an_open_page_shows_a_slack_vote_and_another_process_s_command_by_itself(db: TestDb) {
    // Arrange: a change waiting for two CAB votes, and the overview open in chromium.
    let (running, base, slack) = serve(&db, None).await;
    let l = running.ledger.clone();
    common::ok(
        &l,
        "console:bob",
        "change request \"Upgrade DB\" type:normal",
    )
    .await;
    common::ok(&l, "console:bob", "change link CHG-1 acme/shop#12").await;
    common::ok(&l, "console:bob", "change submit CHG-1").await;
    drop(l);
    let browser = common::webdriver::Browser::start().await;
    browser.open(&format!("{base}/")).await;
    let live = "return document.documentElement.classList.contains('live')";
    browser
        .until("the event stream opens", live, Duration::from_secs(5))
        .await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let backend = format!("{:?}", db.store().await.backend()).to_lowercase();

    // Act and assert: a vote in Slack shows on the CAB queue within a second.
    let reply = slash(&base, &slack, "UCAB1", "change approve CHG-1 looks safe").await;
    let sent = Instant::now();
    assert!(reply.contains("CHG-1"), "{reply}");
    let queue_row = "return [...document.querySelectorAll('main tr')]
        .some(r => r.cells[0] && r.cells[0].textContent === 'CHG-1'
                   && r.textContent.includes('1/2') && r.textContent.includes('slack:UCAB1'))";
    shown_within(
        &browser,
        "the vote on the CAB queue",
        queue_row,
        sent,
        Duration::from_secs(1),
    )
    .await;

    // A command from another process (as a second replica's would be) within 2 s.
    let ran = exec_elsewhere(
        &db,
        "incident raise \"Queue stuck\" impact:high urgency:medium",
    );
    let incident_row = "return [...document.querySelectorAll('main tr')]
        .some(r => r.textContent.includes('Queue stuck'))";
    shown_within(
        &browser,
        "the incident on the overview",
        incident_row,
        ran,
        Duration::from_secs(2),
    )
    .await;
    browser
        .screenshot(&shots.join(format!("live-overview-{backend}.png")))
        .await;

    // A record page follows its record: the second vote approves the change.
    browser.open(&format!("{base}/records/CHG-1")).await;
    browser
        .until("the event stream opens", live, Duration::from_secs(5))
        .await;
    slash(&base, &slack, "UCAB2", "change approve CHG-1").await;
    let approved = Instant::now();
    let status = "return [...document.querySelectorAll('main tr')]
        .some(r => r.cells.length === 2 && r.cells[0].textContent === 'status'
                   && r.cells[1].textContent === 'approved')";
    shown_within(
        &browser,
        "the approval on the record page",
        status,
        approved,
        Duration::from_secs(2),
    )
    .await;

    // The record page: the tally with its voters, the pull request, who did what.
    let page = browser
        .eval("return {
            tally: document.querySelector('.tally').textContent,
            votes: [...document.querySelectorAll('main h2')].find(h => h.textContent === 'Approval')
                .nextElementSibling.nextElementSibling.innerText,
            pr: [...document.querySelectorAll('main a')].filter(a => a.textContent === 'acme/shop#12').map(a => a.href),
            timeline: [...document.querySelectorAll('main table')].pop().innerText,
        }")
        .await;
    assert_eq!(page["tally"], "2 of 2 approvals", "{page}");
    let votes = page["votes"].as_str().unwrap();
    assert!(
        votes.contains("slack:UCAB1\tapprove\tlooks safe"),
        "{votes}"
    );
    assert!(votes.contains("slack:UCAB2\tapprove"), "{votes}");
    assert_eq!(
        page["pr"],
        serde_json::json!(["https://github.com/acme/shop/pull/12"])
    );
    let timeline = page["timeline"].as_str().unwrap();
    for who_did in [
        "console:bob\tchange submit",
        "slack:UCAB1\tchange approve",
        "slack:UCAB2\tchange approve",
    ] {
        assert!(timeline.contains(who_did), "{who_did} in {timeline}");
    }
    // Not reloaded whole by a change: the page swapped its content in place.
    let swapped = browser
        .eval("return document.documentElement.hasAttribute('data-updated') && performance.getEntriesByType('navigation').length === 1")
        .await;
    assert_eq!(swapped, true);
    // Told it fell behind, the page reloads whole (a new navigation), then follows again.
    browser
        .eval("window.beforeReload = true; window.opsledgerLive.dispatchEvent(new MessageEvent('reload', {data: 'behind'})); return true")
        .await;
    browser
        .until(
            "the page reloads whole",
            "return window.beforeReload === undefined && document.documentElement.classList.contains('live')",
            Duration::from_secs(5),
        )
        .await;
    browser
        .screenshot(&shots.join(format!("live-record-{backend}.png")))
        .await;
    browser.quit().await;
    running.stop().await.unwrap();
}

async fn the_event_stream_asks_what_the_pages_ask(db: TestDb) {
    // Arrange: a token; the request forwarded by a local proxy, so it is not local.
    let (running, base, _slack) = serve(&db, Some("s3cret")).await;
    let get = |auth: Option<&'static str>| {
        let base = base.clone();
        async move {
            let mut req = reqwest::Client::new()
                .get(format!("{base}/events"))
                .header("x-forwarded-for", "203.0.113.9");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send().await.unwrap()
        }
    };

    // Act
    let without = get(None).await;
    let with = get(Some("Bearer s3cret")).await;
    let script = reqwest::get(format!("{base}/assets/live.js"))
        .await
        .unwrap();

    // Assert
    assert_eq!(without.status(), 401);
    assert_eq!(with.status(), 200);
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    drop(with);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_ends_an_open_event_stream() {
    // Arrange
    let db = common::sqlite_db();
    let (running, base, _slack) = serve(&db, None).await;
    let mut stream = reqwest::get(format!("{base}/events")).await.unwrap();

    // Act
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.stop()).await;
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;

    // Assert: the server stopped without waiting for the page, and the stream ended cleanly.
    assert!(matches!(stopped, Ok(Ok(()))), "{stopped:?}");
    assert!(matches!(rest, Ok(Ok(None))), "{rest:?}");
}

conformance!(
    the_event_stream_names_each_changed_record_whoever_changed_it,
    an_open_page_shows_a_slack_vote_and_another_process_s_command_by_itself,
    the_event_stream_asks_what_the_pages_ask,
);
