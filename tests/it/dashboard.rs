//! The dashboard, loaded in a real browser: Debian's chromium, headless, reads each page's DOM
//! and takes a screenshot of it (both kept under the target directory's `dashboard-screenshots`).
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use chrono::Duration;
use common::TestTime;
use opsledger::app;
use opsledger::domain::policy::Policy;

/// The browser: CI installs Debian's `chromium`; without it this test fails, it does not skip.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("the dashboard test needs a browser: install Debian's chromium (apt-get install chromium); .ci/run does");
}

/// Runs chromium headless and returns its exit status and what it printed. Output goes to a
/// file rather than a pipe: chromium's helper processes outlive it and would hold a pipe open.
fn browser(args: &[&str], url: &str, profile: &Path) -> (bool, String) {
    let out = profile.join("stdout.txt");
    let status = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run chromium");
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap_or_default(),
    )
}

/// The page's DOM as the browser built it, and its screenshot.
fn load(url: &str, shot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let (ok, dom) = browser(&["--dump-dom"], url, profile.path());
    assert!(ok, "chromium --dump-dom {url} failed");
    let (ok, _) = browser(
        &[&format!("--screenshot={}", shot.display())],
        url,
        profile.path(),
    );
    assert!(ok, "chromium --screenshot {url} failed");
    let bytes = std::fs::read(shot).unwrap_or_default();
    assert!(
        bytes.starts_with(b"\x89PNG"),
        "{} is a PNG screenshot",
        shot.display()
    );
    dom
}

/// Every table on a page, in order, as its data rows (rows with a `<td>`), each as its cells'
/// text with tags stripped: what a reader sees in it.
fn tables(dom: &str) -> Vec<Vec<Vec<String>>> {
    let table = regex::Regex::new(r"(?s)<table.*?</table>").unwrap();
    let cell = regex::Regex::new(r"(?s)<td[^>]*>(.*?)</td>").unwrap();
    let tag = regex::Regex::new(r"<[^>]*>").unwrap();
    table
        .find_iter(dom)
        .map(|t| {
            t.as_str()
                .split("<tr")
                .filter(|row| row.contains("<td"))
                .map(|row| {
                    cell.captures_iter(row)
                        .map(|c| tag.replace_all(&c[1], "").trim().to_string())
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// The first cell of each row.
fn first_cells(rows: &[Vec<String>]) -> Vec<&str> {
    rows.iter().map(|r| r[0].as_str()).collect()
}

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["console:cab1", "console:cab2"]
change-manager = ["console:alice"]
incident-manager = ["console:alice"]

[[freeze]]
name = "year-end"
start = "2026-12-03T00:00:00Z"
end = "2026-12-06T00:00:00Z"
allow = ["emergency"]
"#;

/// Runs the SLA clock once and checks that it recorded `id`'s breach.
async fn tick_breaches(l: &opsledger::ledger::Ledger, id: &str) {
    let tick = l
        .handle(
            opsledger::domain::ids::Actor::system(),
            opsledger::domain::command::Command::Tick,
        )
        .await;
    let said = &tick.reply.text;
    assert!(said.contains(&format!("{id} breached")), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_page_renders_its_records_in_a_real_browser() {
    // Arrange: a breached P1, an open P3, a change waiting for votes, an approved change with a
    // window, a deployed release; spread over the last weeks for the charts.
    let db = common::sqlite_db();
    let clock = TestTime::at(TestTime::default_start() - Duration::days(14));
    let running = app::serve(
        &common::serve_args(None),
        db.store().await,
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    )
    .await
    .unwrap();
    let l = running.ledger.clone();
    let run = |who: &'static str, text: String| {
        let l = l.clone();
        async move {
            common::ok(&l, who, &text).await;
        }
    };
    run(
        "console:bob",
        "incident raise \"Old outage\" impact:high urgency:high service:shop".into(),
    )
    .await;
    // Acknowledged before the clock moves: the deadline timer runs on this clock too, and an
    // unacknowledged P1 two hours old would be a breach whenever the timer saw it first.
    run("console:bob", "incident ack INC-1".into()).await;
    clock.advance(Duration::hours(2));
    run("console:bob", "incident resolve INC-1 fixed".into()).await;
    clock.advance(Duration::days(14) - Duration::hours(2));
    run(
        "console:bob",
        "incident raise \"Checkout down\" impact:high urgency:high service:shop".into(),
    )
    .await;
    run(
        "console:bob",
        "incident raise \"Slow search\" impact:medium urgency:medium service:search".into(),
    )
    .await;
    clock.advance(Duration::minutes(20));
    tick_breaches(&l, "INC-2").await;
    run(
        "console:bob",
        "change request \"Upgrade DB\" type:normal window:2026-12-01T22:00Z..2026-12-01T23:00Z"
            .into(),
    )
    .await;
    run("console:bob", "change submit CHG-1".into()).await;
    run("console:cab1", "change approve CHG-1".into()).await;
    run("console:cab2", "change approve CHG-1".into()).await;
    run(
        "console:bob",
        "change request \"Rotate keys\" type:normal".into(),
    )
    .await;
    run("console:bob", "change submit CHG-2".into()).await;
    run("console:cab1", "change approve CHG-2 fine by me".into()).await;
    run("console:alice", "release create 3.1 CHG-1".into()).await;
    run("console:alice", "release deploy REL-1 env:prod".into()).await;
    let base = format!("http://{}", running.addr);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // Act
    let pages: Vec<(&str, String)> = {
        let (base, shots) = (base.clone(), shots.clone());
        tokio::task::spawn_blocking(move || {
            [
                ("overview", "/"),
                ("calendar", "/calendar"),
                ("releases", "/releases"),
                ("charts", "/charts"),
                ("record", "/records/CHG-2"),
                ("shipped", "/records/CHG-1"),
                ("report", "/report?from=2026-11-01&to=2026-11-30"),
            ]
            .into_iter()
            .map(|(name, path)| {
                let dom = load(&format!("{base}{path}"), &shots.join(format!("{name}.png")));
                // Kept beside the screenshot, for a reviewer to read what the browser built.
                std::fs::write(shots.join(format!("{name}.html")), &dom).unwrap();
                (name, dom)
            })
            .collect()
        })
        .await
        .unwrap()
    };

    // Assert
    let dom = |name: &str| pages.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let overview = dom("overview");
    // Without JavaScript a page is still whole, with a link that loads it again.
    for (name, page) in &pages {
        assert!(
            page.contains(r#"<a href="" class="refresh">Refresh</a>"#),
            "{name} has a refresh link"
        );
    }
    let open = &tables(&overview)[0];
    assert_eq!(open.len(), 2, "two open incidents: {open:?}");
    assert!(overview.contains("Checkout down") && overview.contains("Slow search"));
    assert!(
        !overview.contains("Old outage"),
        "resolved incidents are not open"
    );
    assert!(
        overview.contains("class=\"breached\""),
        "the breach is marked"
    );
    assert!(overview.contains("overdue"), "the countdown says overdue");
    assert!(
        overview.contains("CAB queue (1)") && overview.contains("1/2"),
        "votes against the quorum"
    );
    let calendar = dom("calendar");
    assert!(calendar.contains("CHG-1") && calendar.contains("2026-12-01 22:00"));
    assert!(calendar.contains("year-end") && calendar.contains("<svg"));
    let releases = dom("releases");
    assert!(releases.contains("REL-1") && releases.contains("3.1") && releases.contains("prod"));
    let charts = dom("charts");
    for title in [
        "Incidents per week",
        "Mean time to resolve (hours)",
        "Change success rate (%)",
    ] {
        assert!(charts.contains(title), "{title}");
    }
    assert_eq!(charts.matches("<svg").count(), 3);
    let record = dom("record");
    assert!(
        record.contains("Rotate keys") && record.contains("change approve"),
        "{record}"
    );
    // A change's page links the release that ships it.
    let shipped = dom("shipped");
    assert!(
        shipped.contains(r#"<tr><th>release</th><td><a href="/records/REL-1">REL-1</a></td></tr>"#),
        "{shipped}"
    );
    let report = dom("report");
    assert!(
        report.contains("Service report") && report.contains("all services"),
        "{report}"
    );
    assert!(
        report.contains("shop") && report.contains("Nonconformities raised: 1"),
        "{report}"
    );
    // What each page shows, table by table.
    let overview = tables(&overview);
    assert_eq!(overview.len(), 2, "open incidents, then the CAB queue");
    assert_eq!(
        first_cells(&overview[0]),
        ["INC-2", "INC-3"],
        "{overview:?}"
    );
    assert_eq!(first_cells(&overview[1]), ["CHG-2"], "{overview:?}");
    let calendar = tables(&calendar);
    assert_eq!(
        calendar,
        [
            vec![vec![
                "CHG-1",
                "Upgrade DB",
                "normal",
                "approved",
                "2026-12-01 22:00 – 2026-12-01 23:00"
            ]],
            vec![vec![
                "year-end",
                "2026-12-03 00:00",
                "2026-12-06 00:00",
                "emergency"
            ]],
        ]
    );
    let releases = tables(&releases);
    assert_eq!(releases.len(), 1);
    assert_eq!(first_cells(&releases[0]), ["REL-1"], "{releases:?}");
    let labels: Vec<&str> = regex::Regex::new(r#"<svg[^>]*aria-label="([^"]*)""#)
        .unwrap()
        .captures_iter(&charts)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "Incidents per week",
            "Mean time to resolve (hours)",
            "Change success rate (%)"
        ]
    );
    let timeline = tables(&record).pop().unwrap();
    let actions: Vec<&str> = timeline.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(
        actions,
        ["change request", "change submit", "change approve"],
        "the record's timeline, oldest first"
    );
    let report = tables(&report);
    assert_eq!(
        first_cells(&report[0]),
        ["all services", "(no service)", "search", "shop"]
    );
    assert_eq!(
        report[0][0][1], "3",
        "incidents in the period, all services"
    );
    for name in [
        "overview", "calendar", "releases", "charts", "record", "report",
    ] {
        assert!(shots.join(format!("{name}.png")).exists());
    }
    // The ledger's writer ends once every handle to it is gone.
    drop(l);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn with_a_token_a_request_a_local_proxy_forwarded_needs_it_too() {
    // Arrange: a server with a token; requests come from loopback, some through a proxy.
    let db = common::sqlite_db();
    let app = common::spawn_app_with(db, Some("s3cret")).await;
    let get = |forwarded: bool| {
        let mut r = app.client.get(app.url("/"));
        if forwarded {
            r = r.header("x-forwarded-for", "203.0.113.9");
        }
        r.send()
    };

    // Act
    let local = get(false).await.unwrap();
    let proxied = get(true).await.unwrap();

    // Assert
    assert_eq!(local.status(), 200, "this machine needs no token");
    assert_eq!(proxied.status(), 401, "a forwarded request does");
    app.stop().await;
}

#[tokio::test]
async fn with_a_token_the_dashboard_wants_it_from_other_machines() {
    // Arrange: the router alone has no peer address, as for a request from elsewhere.
    use tower::ServiceExt;
    let db = common::sqlite_db();
    let clock = TestTime::at(TestTime::default_start());
    let (ledger, _writer) = common::ledger_on(db.store().await, common::team_policy(), clock);
    let state = opsledger::http::AppState {
        ledger,
        api_token: Some(Arc::new("s3cret".to_string().into())),
        chat: Default::default(),
        github: None,
        alerts: None,
        live: opsledger::http::live::Live::off(),
        sessions: opsledger::http::session::Sessions::off(),
    };
    let router = opsledger::http::router(state);
    let request = |auth: Option<&str>| {
        let mut b = axum::http::Request::builder().uri("/");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(axum::body::Body::empty()).unwrap()
    };

    // Act
    let without = router.clone().oneshot(request(None)).await.unwrap();
    let wrong = router
        .clone()
        .oneshot(request(Some("Bearer nope")))
        .await
        .unwrap();
    let with = router
        .oneshot(request(Some("Bearer s3cret")))
        .await
        .unwrap();

    // Assert
    assert_eq!(without.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(with.status(), 200);
}

conformance!(urgency_shows_in_colour_and_in_words_in_light_and_dark_and_the_page_fits_a_phone);

async fn urgency_shows_in_colour_and_in_words_in_light_and_dark_and_the_page_fits_a_phone(
    db: common::TestDb,
) {
    // Arrange: a P1 past its 15 minutes and breached, a P3 with 5 of its 4 hours left (amber),
    // a P2 with 10 of its 30 minutes left: so time left, not priority, orders the last two.
    let clock = TestTime::at(TestTime::default_start());
    let running = app::serve(
        &common::serve_args(None),
        db.store().await,
        Policy::from_toml(RULES).unwrap(),
        clock.clone(),
    )
    .await
    .unwrap();
    let l = running.ledger.clone();
    let raise = |text: &'static str| {
        let l = l.clone();
        async move { common::ok(&l, "console:bob", text).await }
    };
    raise("incident raise \"Printer jam\" impact:medium urgency:medium service:office").await;
    clock.advance(Duration::minutes(215));
    raise("incident raise \"Disk filling\" impact:high urgency:medium service:shop").await;
    raise("incident raise \"Checkout down\" impact:high urgency:high service:shop").await;
    clock.advance(Duration::minutes(20));
    tick_breaches(&l, "INC-3").await;
    // And a change before the CAB, one vote in, for the README's picture.
    raise("change request \"Upgrade the payments database\" type:normal").await;
    raise("change submit CHG-1").await;
    common::ok(&l, "console:cab1", "change approve CHG-1 after the backup").await;
    let base = format!("http://{}", running.addr);
    let css = reqwest::get(format!("{base}/assets/dashboard.css"))
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // Act
    let browser = common::webdriver::Browser::start().await;
    browser.open(&format!("{base}/")).await;
    const ROWS: &str = "return [...document.querySelectorAll('tbody tr')]
        .filter(r => r.querySelector('.prio'))
        .map(r => ({
            title: r.cells[2].textContent,
            class: r.className,
            background: getComputedStyle(r).backgroundColor,
            chip: r.querySelector('.prio').textContent,
            chipBackground: getComputedStyle(r.querySelector('.prio')).backgroundColor,
            sla: r.cells[6].textContent,
        }));";
    let light = browser.eval(ROWS).await;
    // The README's screenshot of the overview and the CAB queue (docs/img/overview.png is a
    // copy of this file).
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    browser.window(1200, 780).await;
    browser
        .screenshot(&shots.join(if db.url().starts_with("sqlite") {
            "overview-urgency.png".to_string()
        } else {
            "overview-urgency-postgres.png".to_string()
        }))
        .await;
    browser.window(1280, 900).await;
    browser.color_scheme("dark").await;
    let dark = browser.eval(ROWS).await;
    let dark_body = browser
        .eval("return getComputedStyle(document.body).backgroundColor")
        .await;
    browser.color_scheme("light").await;
    browser.window(375, 800).await;
    let phone = browser
        .eval("return [document.documentElement.scrollWidth, window.innerWidth, document.querySelector('table').scrollWidth > document.querySelector('table').clientWidth]")
        .await;
    browser.quit().await;

    // Assert
    let row = |rows: &serde_json::Value, title: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["title"] == title)
            .unwrap_or_else(|| panic!("no row {title} in {rows}"))
            .clone()
    };
    // Most urgent first: the breach, then the least time left, whatever the priority.
    let order: Vec<&str> = light
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["Checkout down", "Printer jam", "Disk filling"]);
    let breached = row(&light, "Checkout down");
    assert_eq!(breached["class"], "urgency-breached", "{breached}");
    assert_eq!(breached["background"], "rgb(253, 232, 232)", "{breached}");
    assert_eq!(breached["chip"], "P1");
    assert_eq!(breached["chipBackground"], "rgb(179, 38, 30)", "{breached}");
    let sla = breached["sla"].as_str().unwrap();
    assert!(
        sla.contains("5m overdue") && sla.contains("breached"),
        "{sla}"
    );
    let soon = row(&light, "Printer jam");
    assert_eq!(soon["class"], "urgency-soon", "{soon}");
    assert_eq!(soon["background"], "rgb(255, 244, 214)", "{soon}");
    assert_eq!(soon["chip"], "P3");
    assert_eq!(soon["sla"], "respond in 5m due soon", "{soon}");
    let ok = row(&light, "Disk filling");
    assert_eq!(ok["class"], "urgency-ok", "{ok}");
    assert_eq!(ok["background"], "rgba(0, 0, 0, 0)", "{ok}");
    assert_eq!(ok["chip"], "P2");
    assert_eq!(ok["sla"], "respond in 10m", "{ok}");
    // The reader's dark setting: the same words, darker colours.
    assert_eq!(dark_body, "rgb(17, 20, 24)");
    let breached = row(&dark, "Checkout down");
    assert_eq!(breached["background"], "rgb(58, 21, 24)", "{breached}");
    assert_eq!(
        breached["chipBackground"], "rgb(255, 138, 128)",
        "{breached}"
    );
    // A phone: the page is no wider than the screen; the incidents table scrolls in its box.
    let (page, screen, table_scrolls) = (&phone[0], &phone[1], &phone[2]);
    assert!(
        page.as_u64().unwrap() <= screen.as_u64().unwrap(),
        "page {page} px wide on a {screen} px screen"
    );
    assert_eq!(table_scrolls, true, "{phone}");
    // The ledger's writer ends when its last handle does.
    drop(l);
    running.stop().await.unwrap();
}
