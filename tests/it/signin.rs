//! Dashboard sign-in, on both backends: "Sign in with Slack" through a fake of Slack's OpenID
//! Connect endpoints (answering as Slack's reference shows), in a real browser, to "my work";
//! the API token as the other way in; forged states and cookies refused.
use crate::common::{self, fake, TestDb};

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use opsledger::app::Running;
use opsledger::config::{Integrations, ServeArgs};
use opsledger::integrations::slack::SlackSettings;
use serde_json::json;

conformance!(
    signing_in_with_slack_shows_my_incidents_and_the_changes_waiting_for_my_vote,
    the_api_token_signs_in_an_account_and_forged_sign_ins_are_refused,
);

const RULES: &str = r#"
[roles]
admin = ["console:root"]
cab = ["slack:UDANA", "slack:UERIN"]

[people]
dana = ["slack:UDANA", "console:dana"]
"#;

const TOKEN: &str = "s3cret";

/// What the fake Slack was asked, to check the code exchange.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

/// Slack's `openid.connect.token`: form-encoded, answers JSON with `ok`.
async fn token(State(seen): State<Seen>, Form(f): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    seen.0.lock().unwrap().push(format!(
        "token code={} client_id={} secret={} redirect_uri={}",
        get("code"),
        get("client_id"),
        get("client_secret"),
        get("redirect_uri")
    ));
    if get("code") != "good-code" || get("client_secret") != "client-secret" {
        return Json(json!({"ok": false, "error": "invalid_code"})).into_response();
    }
    Json(json!({"ok": true, "access_token": "xoxp-1234", "token_type": "Bearer", "id_token": "eyJhbGciOi.e30.sig"}))
        .into_response()
}

/// Slack's `openid.connect.userInfo`, with its example's claims.
async fn user_info(headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer xoxp-1234") {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    Json(json!({
        "ok": true,
        "sub": "UDANA",
        "https://slack.com/user_id": "UDANA",
        "https://slack.com/team_id": "T0R7GR",
        "email": "dana@example.com",
        "email_verified": true,
        "name": "Dana",
        "https://slack.com/team_name": "acme",
        "https://slack.com/team_domain": "acme"
    }))
    .into_response()
}

/// Slack's authorize page, as a person who agrees at once: back to the app with a code.
async fn authorize(Query(q): Query<Vec<(String, String)>>) -> Redirect {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("scope"), "openid profile");
    assert_eq!(get("response_type"), "code");
    let back = format!(
        "{}?code=good-code&state={}",
        get("redirect_uri"),
        urlencode(&get("state"))
    );
    Redirect::to(&back)
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_string()
}

/// Serves with Sign in with Slack for members of workspace `team` (the fake's member is in
/// T0R7GR).
async fn serve_for(db: &TestDb, team: &str) -> (Running, String, Seen) {
    let seen = Seen::default();
    let slack = fake::serve(
        Router::new()
            .route("/api/openid.connect.token", post(token))
            .route("/api/openid.connect.userInfo", post(user_info))
            .route("/openid/connect/authorize", get(authorize))
            .with_state(seen.clone()),
    )
    .await;
    let args = ServeArgs {
        integrations: Integrations {
            slack: SlackSettings {
                slack_client_id: Some("123.456".into()),
                slack_client_secret: Some("client-secret".to_string().into()),
                slack_api_url: format!("{slack}/api"),
                slack_oidc_authorize_url: Some(format!("{slack}/openid/connect/authorize")),
                slack_team_id: Some(team.to_string()),
                ..Default::default()
            },
            ..Integrations::default()
        },
        ..common::serve_args(Some(TOKEN))
    };
    let (running, base) = common::serve_on(db, &args, RULES).await;
    (running, base, seen)
}

async fn serve(db: &TestDb) -> (Running, String, Seen) {
    serve_for(db, "T0R7GR").await
}

/// Dana's work (she is `slack:UDANA` and `console:dana`), and others'.
async fn seed(l: &opsledger::ledger::Ledger) {
    let run = |who: &'static str, text: &'static str| async move {
        common::ok(l, who, text).await;
    };
    run(
        "console:dana",
        "incident raise \"Dana's disk\" impact:low urgency:low",
    )
    .await;
    run(
        "slack:UDANA",
        "incident raise \"Dana's printer\" impact:low urgency:low",
    )
    .await;
    run(
        "console:bob",
        "incident raise \"Bob's VPN\" impact:low urgency:low",
    )
    .await;
    run(
        "console:bob",
        "change request \"Bob's upgrade\" type:normal",
    )
    .await;
    run("console:bob", "change submit CHG-1").await;
    run(
        "console:dana",
        "change request \"Dana's own change\" type:normal",
    )
    .await;
    run("console:dana", "change submit CHG-2").await;
    run(
        "console:bob",
        "change request \"Voted already\" type:normal",
    )
    .await;
    run("console:bob", "change submit CHG-3").await;
    run("slack:UDANA", "change approve CHG-3").await;
}

async fn signing_in_with_slack_shows_my_incidents_and_the_changes_waiting_for_my_vote(db: TestDb) {
    // Arrange
    let (running, base, seen) = serve(&db).await;
    seed(&running.ledger).await;
    let browser = common::webdriver::Browser::start().await;

    // Act: "Sign in with Slack", through Slack's authorize page and back.
    browser.open(&format!("{base}/mine")).await;
    let before = browser
        .eval("return document.querySelector('main').innerText")
        .await;
    browser.open(&format!("{base}/signin")).await;
    browser
        .eval("document.querySelector('a[href=\"/signin/slack\"]').click(); return true")
        .await;
    browser
        .until(
            "back from Slack on my page",
            "return location.pathname === '/mine' && document.querySelector('main') !== null \
             && document.querySelector('main').innerText.includes('Signed in as')",
            std::time::Duration::from_secs(10),
        )
        .await;
    let page = browser
        .eval(
            "return {
            text: document.querySelector('main').innerText,
            mine: [...document.querySelectorAll('main table')][0].innerText,
            votes: [...document.querySelectorAll('main table')][1].innerText,
        }",
        )
        .await;
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let backend = format!("{:?}", db.store().await.backend()).to_lowercase();
    browser
        .screenshot(&shots.join(format!("my-work-{backend}.png")))
        .await;
    browser.quit().await;

    // Assert
    assert!(
        before.as_str().unwrap().contains("Sign in to see"),
        "{before}"
    );
    let text = page["text"].as_str().unwrap();
    assert!(
        text.contains("Signed in as slack:UDANA (also console:dana)"),
        "{text}"
    );
    // Hers from either account; not Bob's.
    let mine = page["mine"].as_str().unwrap();
    assert!(
        mine.contains("Dana's disk") && mine.contains("Dana's printer"),
        "{mine}"
    );
    assert!(!mine.contains("Bob's VPN"), "{mine}");
    // Bob's change waits for her; her own and the one she voted on do not.
    let votes = page["votes"].as_str().unwrap();
    assert!(votes.contains("CHG-1"), "{votes}");
    assert!(
        !votes.contains("CHG-2") && !votes.contains("CHG-3"),
        "{votes}"
    );
    // The code was exchanged with the app's client and the callback it was sent to.
    let calls = seen.0.lock().unwrap().clone();
    assert_eq!(
        calls,
        [format!(
            "token code=good-code client_id=123.456 secret=client-secret redirect_uri={base}/signin/slack/callback"
        )]
    );
    running.stop().await.unwrap();
}

async fn the_api_token_signs_in_an_account_and_forged_sign_ins_are_refused(db: TestDb) {
    // Arrange: requests as from another machine (a proxy's forwarding header), without cookies
    // kept between them.
    let (running, base, _seen) = serve(&db).await;
    seed(&running.ledger).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let remote = |req: reqwest::RequestBuilder| req.header("x-forwarded-for", "203.0.113.7");
    let session_of = |resp: &reqwest::Response| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("opsledger_session="))
            .map(|c| c.split(';').next().unwrap().to_string())
    };

    // Act
    let anonymous = remote(http.get(format!("{base}/mine")))
        .send()
        .await
        .unwrap();
    let sign_in_page = remote(http.get(format!("{base}/signin")))
        .send()
        .await
        .unwrap();
    let wrong = remote(http.post(format!("{base}/signin")))
        .form(&[("as", "console:dana"), ("token", "nope")])
        .send()
        .await
        .unwrap();
    let system = remote(http.post(format!("{base}/signin")))
        .form(&[("as", "system:opsledger"), ("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let right = remote(http.post(format!("{base}/signin")))
        .form(&[("as", "console:dana"), ("token", TOKEN)])
        .send()
        .await
        .unwrap();
    let cookie = session_of(&right).expect("a session cookie");
    let mine = remote(http.get(format!("{base}/mine")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let events = remote(http.get(format!("{base}/events")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let tampered = remote(http.get(format!("{base}/mine")))
        .header(
            "cookie",
            cookie.replace("opsledger_session=", "opsledger_session=x"),
        )
        .send()
        .await
        .unwrap();
    // A callback whose state this browser was never given, and a code Slack refuses.
    let start = remote(http.get(format!("{base}/signin/slack")))
        .send()
        .await
        .unwrap();
    let state_cookie = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap();
    let state = state_cookie
        .trim_start_matches("opsledger_signin=")
        .to_string();
    let forged_state = remote(http.get(format!(
        "{base}/signin/slack/callback?code=good-code&state=someone-elses"
    )))
    .header("cookie", &state_cookie)
    .send()
    .await
    .unwrap();
    let bad_code = remote(http.get(format!(
        "{base}/signin/slack/callback?code=stolen&state={}",
        urlencode(&state)
    )))
    .header("cookie", &state_cookie)
    .send()
    .await
    .unwrap();
    // A member of another workspace than the dashboard's.
    let (other, other_base, _) = serve_for(&db, "TOTHER").await;
    let start = remote(http.get(format!("{other_base}/signin/slack")))
        .send()
        .await
        .unwrap();
    let other_state = start
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap();
    let asked = start.headers()["location"].to_str().unwrap().to_string();
    let elsewhere = remote(http.get(format!(
        "{other_base}/signin/slack/callback?code=good-code&state={}",
        urlencode(other_state.trim_start_matches("opsledger_signin="))
    )))
    .header("cookie", &other_state)
    .send()
    .await
    .unwrap();
    other.stop().await.unwrap();
    let out = remote(http.post(format!("{base}/signout")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(
        anonymous.status(),
        401,
        "the dashboard wants a sign-in from elsewhere"
    );
    assert_eq!(sign_in_page.status(), 200);
    let sign_in_page = sign_in_page.text().await.unwrap();
    assert!(sign_in_page.contains("Sign in with Slack") && sign_in_page.contains("API token"));
    assert_eq!(wrong.status(), 401);
    assert!(session_of(&wrong).is_none());
    assert_eq!(system.status(), 400);
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/mine");
    let set = right.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Max-Age=43200"),
        "{set}"
    );
    assert_eq!(mine.status(), 200);
    let mine = mine.text().await.unwrap();
    assert!(
        mine.contains("/records/INC-1")
            && mine.contains("/records/INC-2")
            && !mine.contains("/records/INC-3"),
        "{mine}"
    );
    assert_eq!(events.status(), 200, "a session may follow live updates");
    drop(events);
    assert_eq!(tampered.status(), 401);
    assert_eq!(start.status(), 303);
    assert!(start.headers()["location"]
        .to_str()
        .unwrap()
        .contains("client_id=123.456"));
    assert_eq!(forged_state.status(), 400);
    assert_eq!(bad_code.status(), 401);
    assert!(bad_code.text().await.unwrap().contains("invalid_code"));
    assert!(asked.contains("team=TOTHER"), "{asked}");
    assert_eq!(elsewhere.status(), 403);
    assert!(session_of(&elsewhere).is_none());
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    running.stop().await.unwrap();
}
