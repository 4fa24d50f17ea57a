//! The HTTP surface of `serve`: health, readiness, metrics, the `/api/v1` read API (shapes,
//! pagination, bearer token, errors) and the 1 MiB body limit, against a real server.
use crate::common;

use chrono::DateTime;
use common::TestApp;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs a path and returns the status and the JSON body.
async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let resp = app.client.get(app.url(path)).send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("GET {path} answered {status} with non-JSON `{text}`: {e}"));
    (status, json)
}

/// Runs chat commands as `console:alice`, asserting each one succeeded.
async fn run_all(app: &TestApp, commands: &[&str]) {
    for text in commands {
        let reply = app.exec("console:alice", text).await;
        assert!(reply.outcome.is_ok(), "`{text}` failed: {}", reply.text);
    }
}

fn assert_rfc3339(record: &Value, field: &str) {
    let value = record[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {record}"));
    assert!(
        DateTime::parse_from_rfc3339(value).is_ok(),
        "{field} `{value}` is not RFC 3339"
    );
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items is a list")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_a_token() {
    // Arrange: a server that requires a token for the API.
    let app = common::spawn_app_with(common::sqlite_db(), Some("s3cret")).await;

    // Act
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();

    // Assert
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready");
    assert_eq!(metrics.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_commands_by_name_and_outcome_and_time_http_requests() {
    // Arrange: one accepted, one refused and one malformed command, and one API call.
    let app = common::spawn_app().await;
    app.exec("console:alice", "incident raise Checkout down impact:high")
        .await;
    app.exec("console:alice", "incident close INC-1").await;
    app.exec("console:alice", "incident ack").await;
    let (status, _) = get_json(&app, "/api/v1/incidents").await;
    assert_eq!(status, 200);

    // Act
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    let content_type = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    let text = resp.text().await.unwrap();

    // Assert: OpenMetrics text with the command counter and the HTTP latency histogram.
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    for line in [
        r#"opsledger_commands_total{command="incident raise",outcome="ok"} 1"#,
        r#"opsledger_commands_total{command="incident close",outcome="refused"} 1"#,
        r#"opsledger_commands_total{command="incident ack",outcome="usage"} 1"#,
        r#"opsledger_http_request_seconds_count{route="/api/v1/{collection}",status="200"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn incident_json_has_every_contract_field() {
    // Arrange: the test clock stands at 2026-11-29T10:00:00Z; P1 responds in 15m, resolves in 4h.
    let app = common::spawn_app().await;
    run_all(
        &app,
        &["incident raise Checkout down impact:high urgency:high service:checkout"],
    )
    .await;

    // Act
    let (status, inc) = get_json(&app, "/api/v1/incidents/INC-1").await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(inc["id"], "INC-1");
    assert_eq!(inc["title"], "Checkout down");
    assert_eq!(inc["status"], "new");
    assert_eq!(inc["impact"], "high");
    assert_eq!(inc["urgency"], "high");
    assert_eq!(inc["priority"], "P1");
    assert_eq!(inc["service"], "checkout");
    assert_eq!(inc["assignee"], Value::Null);
    assert_eq!(inc["reporter"], "console:alice");
    assert_eq!(inc["breached"], false);
    for field in ["created_at", "updated_at", "response_due", "resolve_due"] {
        assert_rfc3339(&inc, field);
    }
    let at = |f: &str| DateTime::parse_from_rfc3339(inc[f].as_str().unwrap()).unwrap();
    assert_eq!(at("created_at").to_rfc3339(), "2026-11-29T10:00:00+00:00");
    assert_eq!(at("response_due").to_rfc3339(), "2026-11-29T10:15:00+00:00");
    assert_eq!(at("resolve_due").to_rfc3339(), "2026-11-29T14:00:00+00:00");
    app.stop().await;
}

#[tokio::test]
async fn change_json_has_type_risk_requester_approvals_and_links() {
    // Arrange: a normal change with a linked pull request and one CAB vote.
    let app = common::spawn_app().await;
    run_all(
        &app,
        &[
            "change request Upgrade database type:normal risk:high",
            "change link CHG-1 acme/shop#12",
            "change submit CHG-1",
        ],
    )
    .await;
    let vote = app
        .exec("console:cab1", "change approve CHG-1 looks fine")
        .await;
    assert!(vote.outcome.is_ok(), "{}", vote.text);

    // Act
    let (status, chg) = get_json(&app, "/api/v1/changes/CHG-1").await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(chg["id"], "CHG-1");
    assert_eq!(chg["title"], "Upgrade database");
    assert_eq!(chg["status"], "submitted");
    assert_eq!(chg["type"], "normal");
    assert_eq!(chg["risk"], "high");
    assert_eq!(chg["requester"], "console:alice");
    assert_rfc3339(&chg, "created_at");
    assert_rfc3339(&chg, "updated_at");
    let approvals = chg["approvals"].as_array().expect("approvals list");
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["voter"], "console:cab1");
    assert_eq!(approvals[0]["decision"], "approve");
    assert_eq!(approvals[0]["comment"], "looks fine");
    assert_rfc3339(&approvals[0], "at");
    let links = chg["links"].as_array().expect("links list");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["kind"], "pull_request");
    assert_eq!(links[0]["repo"], "acme/shop");
    assert_eq!(links[0]["number"], 12);
    assert_eq!(links[0]["sha"], Value::Null);
    assert_eq!(links[0]["url"], "https://github.com/acme/shop/pull/12");
    app.stop().await;
}

#[tokio::test]
async fn release_json_has_version_repo_changes_commits_and_deployments() {
    // Arrange
    let app = common::spawn_app().await;
    run_all(
        &app,
        &[
            "change request Upgrade database type:normal",
            "release create 1.2.0 repo:acme/shop CHG-1",
        ],
    )
    .await;

    // Act
    let (status, rel) = get_json(&app, "/api/v1/releases/REL-1").await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(rel["id"], "REL-1");
    assert_eq!(rel["status"], "planned");
    assert_eq!(rel["version"], "1.2.0");
    assert_eq!(rel["repo"], "acme/shop");
    assert_eq!(rel["changes"], serde_json::json!(["CHG-1"]));
    assert_eq!(rel["commits"], serde_json::json!([]));
    assert_eq!(rel["deployments"], serde_json::json!([]));
    assert!(rel["title"].is_string(), "{rel}");
    assert_rfc3339(&rel, "created_at");
    assert_rfc3339(&rel, "updated_at");
    app.stop().await;
}

#[tokio::test]
async fn list_endpoint_pages_with_cursor_until_next_is_null() {
    // Arrange: seven incidents, read three at a time.
    let app = common::spawn_app().await;
    for n in 1..=7 {
        run_all(&app, &[&format!("incident raise Outage {n}")]).await;
    }

    // Act: follow `next` until it is null.
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/api/v1/incidents?limit=3".to_string();
    loop {
        let (status, page) = get_json(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        pages.push(page["items"].as_array().unwrap().len());
        match page["next"].as_str() {
            Some(cursor) => path = format!("/api/v1/incidents?limit=3&cursor={cursor}"),
            None => {
                assert_eq!(page["next"], Value::Null, "{page}");
                break;
            }
        }
        assert!(pages.len() < 10, "pagination does not end");
    }

    // Assert: every ID once, in order, in pages of 3, 3 and 1.
    let expected: Vec<String> = (1..=7).map(|n| format!("INC-{n}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, vec![3, 3, 1]);
    app.stop().await;
}

#[tokio::test]
async fn list_pages_in_numeric_order_and_a_full_last_page_has_no_next() {
    // Arrange: twelve incidents, so INC-10 sorts after INC-9 only if ordered by number.
    let app = common::spawn_app().await;
    for n in 1..=12 {
        run_all(&app, &[&format!("incident raise Outage {n}")]).await;
    }

    // Act: three pages of exactly four.
    let (_, first) = get_json(&app, "/api/v1/incidents?limit=4").await;
    let (_, second) = get_json(&app, "/api/v1/incidents?limit=4&cursor=INC-4").await;
    let (_, third) = get_json(&app, "/api/v1/incidents?limit=4&cursor=INC-8").await;

    // Assert
    assert_eq!(ids(&first), ["INC-1", "INC-2", "INC-3", "INC-4"]);
    assert_eq!(first["next"], "INC-4");
    assert_eq!(ids(&second), ["INC-5", "INC-6", "INC-7", "INC-8"]);
    assert_eq!(second["next"], "INC-8");
    assert_eq!(ids(&third), ["INC-9", "INC-10", "INC-11", "INC-12"]);
    assert_eq!(
        third["next"],
        Value::Null,
        "no empty page after a full last one"
    );
    app.stop().await;
}

#[tokio::test]
async fn status_filter_lists_only_records_in_those_statuses() {
    // Arrange: three incidents, the second acknowledged.
    let app = common::spawn_app().await;
    run_all(
        &app,
        &[
            "incident raise One",
            "incident raise Two",
            "incident raise Three",
            "incident ack INC-2",
        ],
    )
    .await;

    // Act
    let (_, acked) = get_json(&app, "/api/v1/incidents?status=acknowledged").await;
    let (_, new) = get_json(&app, "/api/v1/incidents?status=new").await;

    // Assert
    assert_eq!(ids(&acked), ["INC-2"]);
    assert_eq!(acked["items"][0]["status"], "acknowledged");
    assert_eq!(acked["items"][0]["assignee"], "console:alice");
    assert_eq!(ids(&new), ["INC-1", "INC-3"]);
    assert_eq!(new["next"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn api_requires_the_bearer_token_when_one_is_configured() {
    // Arrange
    let app = common::spawn_app_with(common::sqlite_db(), Some("s3cret")).await;
    run_all(&app, &["incident raise Checkout down"]).await;
    let url = app.url("/api/v1/incidents/INC-1");

    // Act
    let none = app.client.get(&url).send().await.unwrap();
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    let basic = app
        .client
        .get(&url)
        .header("authorization", "Basic czNjcmV0")
        .send()
        .await
        .unwrap();
    let right = app
        .client
        .get(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();

    // Assert
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("OPSLEDGER_API_TOKEN"),
        "{body}"
    );
    assert_eq!(wrong.status(), 401);
    assert_eq!(basic.status(), 401);
    assert_eq!(right.status(), 200);
    let inc: Value = right.json().await.unwrap();
    assert_eq!(inc["id"], "INC-1");
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn audit_endpoint_needs_the_token_too() {
    // Arrange
    let app = common::spawn_app_with(common::sqlite_db(), Some("s3cret")).await;

    // Act
    let none = app
        .client
        .get(app.url("/api/v1/audit?record=INC-1"))
        .send()
        .await
        .unwrap();
    let right = app
        .client
        .get(app.url("/api/v1/audit?record=INC-1"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(none.status(), 401);
    assert_eq!(right.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn missing_record_is_404_naming_it() {
    // Arrange
    let app = common::spawn_app().await;

    // Act
    let (status, body) = get_json(&app, "/api/v1/incidents/INC-99").await;

    // Assert
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no such incident INC-99");
    app.stop().await;
}

#[tokio::test]
async fn record_id_in_the_wrong_collection_is_404_pointing_to_the_right_one() {
    // Arrange
    let app = common::spawn_app().await;

    // Act
    let (status, body) = get_json(&app, "/api/v1/incidents/CHG-1").await;

    // Assert
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/v1/changes/CHG-1"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_collection_and_unknown_path_are_404() {
    // Arrange
    let app = common::spawn_app().await;

    // Act
    let (collection, body) = get_json(&app, "/api/v1/tickets").await;
    let (item, _) = get_json(&app, "/api/v1/tickets/T-1").await;
    let (path, _) = get_json(&app, "/nothing/here").await;

    // Assert
    assert_eq!(collection, 404);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("tickets"), "{error}");
    assert!(error.contains("incidents"), "{error}");
    assert_eq!(item, 404);
    assert_eq!(path, 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_limit_is_400_with_a_json_message() {
    // Arrange
    let app = common::spawn_app().await;

    // Act
    let (zero, zero_body) = get_json(&app, "/api/v1/incidents?limit=0").await;
    let (huge, huge_body) = get_json(&app, "/api/v1/incidents?limit=100000").await;
    let (word, word_body) = get_json(&app, "/api/v1/incidents?limit=lots").await;

    // Assert
    assert_eq!(zero, 400);
    assert_eq!(zero_body["error"], "limit must be between 1 and 500, not 0");
    assert_eq!(huge, 400);
    assert!(
        huge_body["error"].as_str().unwrap().contains("100000"),
        "{huge_body}"
    );
    assert_eq!(word, 400);
    assert!(
        word_body["error"].as_str().unwrap().contains("limit"),
        "{word_body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_the_api_did_not_give_out_is_400() {
    // Arrange
    let app = common::spawn_app().await;
    run_all(&app, &["incident raise One"]).await;

    // Act
    let (garbage, body) = get_json(&app, "/api/v1/incidents?cursor=banana").await;
    let (other_kind, _) = get_json(&app, "/api/v1/incidents?cursor=CHG-1").await;

    // Assert
    assert_eq!(garbage, 400);
    assert!(body["error"].as_str().unwrap().contains("banana"), "{body}");
    assert_eq!(other_kind, 400);
    app.stop().await;
}

#[tokio::test]
async fn services_and_cis_are_read_by_name() {
    // Arrange
    let app = common::spawn_app().await;
    run_all(
        &app,
        &[
            "service add checkout",
            "service add billing",
            "ci add db-1 type:database service:checkout",
        ],
    )
    .await;

    // Act
    let (svc_status, svc) = get_json(&app, "/api/v1/services/checkout").await;
    let (ci_status, ci) = get_json(&app, "/api/v1/cis/db-1").await;
    let (_, services) = get_json(&app, "/api/v1/services").await;
    let (missing, missing_body) = get_json(&app, "/api/v1/services/nope").await;

    // Assert
    assert_eq!(svc_status, 200);
    assert_eq!(svc["id"], "checkout");
    assert_eq!(svc["title"], "checkout");
    assert!(svc["status"].is_string(), "{svc}");
    assert_rfc3339(&svc, "created_at");
    assert_rfc3339(&svc, "updated_at");
    assert_eq!(ci_status, 200);
    assert_eq!(ci["id"], "db-1");
    assert_eq!(ci["type"], "database");
    assert_eq!(ci["service"], "checkout");
    assert_eq!(ids(&services), ["billing", "checkout"]);
    assert_eq!(services["next"], Value::Null);
    assert_eq!(missing, 404);
    assert_eq!(missing_body["error"], "no such service nope");
    app.stop().await;
}

#[tokio::test]
async fn audit_endpoint_returns_one_records_timeline_in_order() {
    // Arrange: two actions on INC-1, one on INC-2.
    let app = common::spawn_app().await;
    run_all(
        &app,
        &[
            "incident raise One",
            "incident raise Two",
            "incident ack INC-1",
        ],
    )
    .await;

    // Act
    let (status, trail) = get_json(&app, "/api/v1/audit?record=INC-1").await;
    let (no_record, no_record_body) = get_json(&app, "/api/v1/audit").await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(trail["record"], "INC-1");
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["incident raise", "incident ack"]);
    assert_eq!(trail["items"][0]["actor"], "console:alice");
    assert_eq!(trail["next"], Value::Null);
    assert_eq!(no_record, 400);
    assert!(
        no_record_body["error"]
            .as_str()
            .unwrap()
            .contains("record="),
        "{no_record_body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn body_over_one_mib_gets_413_on_any_route_and_method() {
    // Arrange: a 2 MiB body.
    let app = common::spawn_app().await;
    let big = vec![b'x'; 2 * 1024 * 1024];

    // Act: an API route, the health check (GET only) and a path that does not exist.
    let mut statuses = Vec::new();
    for path in ["/api/v1/incidents", "/healthz", "/no/such/path"] {
        let resp = app
            .client
            .post(app.url(path))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON error body");
        statuses.push((path, status.as_u16(), body["error"].is_string()));
    }

    // Assert
    assert_eq!(
        statuses,
        [
            ("/api/v1/incidents", 413, true),
            ("/healthz", 413, true),
            ("/no/such/path", 413, true),
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn chunked_body_over_one_mib_gets_413_without_a_content_length() {
    // Arrange: a raw HTTP/1.1 request whose body is chunked, so no length is declared up front.
    let app = common::spawn_app().await;
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /no/such/path HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();

    // Act: send 64 KiB chunks until just past 1 MiB; the server may answer (and stop
    // reading) before the end, so write errors are expected and ignored.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..17 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if conn.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;

    // Assert
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 413"),
        "expected 413, got: {}",
        response.lines().next().unwrap_or("<nothing>")
    );
    app.stop().await;
}

#[tokio::test]
async fn small_bodies_still_reach_their_routes() {
    // Arrange
    let app = common::spawn_app().await;

    // Act: a small body on a GET route, and a POST to a GET-only route.
    let get = app
        .client
        .get(app.url("/api/v1/incidents"))
        .body("hello")
        .send()
        .await
        .unwrap();
    let post = app
        .client
        .post(app.url("/healthz"))
        .body("hello")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(get.status(), 200);
    assert_eq!(post.status(), 405);
    app.stop().await;
}
