//! Connection limits end to end: a slowloris flood starves neither `/healthz` nor a signed Slack command and is closed after the header-read timeout; over the cap with every connection busy a newcomer is refused at once; shutdown closes waiting connections and finishes requests in flight; `serve` raises the soft open-file limit and stays healthy with few descriptors.
use crate::common::{self, fake};

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use opsledger::app::{self, Running};
use opsledger::config::{ConnectionLimits, Integrations, ServeArgs};
use opsledger::domain::policy::Policy;
use opsledger::integrations::slack::SlackSettings;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// Half a request head: the blank line that ends it never comes.
const HALF_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";

/// A request whose head is complete and whose chunked body never ends: the router reads the
/// body before routing, so the request stays in flight.
const ENDLESS_BODY: &[u8] =
    b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";

/// A fake Slack Web API that records the methods called.
async fn fake_slack() -> (common::fake::Recorder<String>, String) {
    let calls = common::fake::Recorder::<String>::default();
    let app = Router::new().route(
        "/api/{method}",
        post({
            let calls = calls.clone();
            move |axum::extract::Path(method): axum::extract::Path<String>, body: String| async move {
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let answer = fake::slack::ok(&method, &body, &fake::slack::ts(1), "CINC1");
                calls.push(method);
                Json(answer)
            }
        }),
    );
    (calls, format!("{}/api", fake::serve(app).await))
}

/// Serves with Slack on (against `slack_api`) and these connection limits.
async fn serve(slack_api: &str, limits: ConnectionLimits) -> (Running, common::TestDb) {
    let db = common::sqlite_db();
    let args = ServeArgs {
        integrations: Integrations {
            slack: SlackSettings {
                slack_signing_secret: Some(SECRET.to_string().into()),
                slack_bot_token: Some("xoxb-test".to_string().into()),
                slack_api_url: slack_api.to_string(),
                slack_incident_channel: Some("CINC".into()),
                ..Default::default()
            },
            ..Integrations::default()
        },
        connections: limits,
        ..common::serve_args(None)
    };
    let running = app::serve(
        &args,
        db.store().await,
        Policy::default(),
        app::system_time_source(),
    )
    .await
    .expect("serve");
    (running, db)
}

fn limits(max: usize, header_timeout: Duration) -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: header_timeout,
        max_connections: Some(max),
    }
}

/// Opens a connection, sends `bytes`, and reads until the server closes it; resolves to when
/// that happened (`None`: still open after `give_up`).
async fn hold(
    addr: SocketAddr,
    bytes: &'static [u8],
    give_up: Duration,
) -> JoinHandle<Option<Instant>> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(bytes).await.expect("send");
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let closed = async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return Instant::now(),
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(give_up, closed).await.ok()
    })
}

async fn healthz(client: &reqwest::Client, addr: SocketAddr) -> Result<String, String> {
    let resp = client
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status == 200 {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

async fn slash_command(client: &reqwest::Client, addr: SocketAddr, text: &str) -> Value {
    let body = serde_urlencoded::to_string([
        ("token", "x"),
        ("team_id", "T1"),
        ("team_domain", "acme"),
        ("channel_id", "CWORK"),
        ("channel_name", "work"),
        ("user_id", "U1"),
        ("user_name", "u1"),
        ("command", "/ops"),
        ("text", text),
        ("response_url", "http://127.0.0.1:9/respond"),
        ("trigger_id", "13.1.a"),
    ])
    .unwrap();
    let resp = common::slack_post(
        client,
        &format!("http://{addr}/slack/commands"),
        SECRET,
        body,
    )
    .timeout(Duration::from_secs(1))
    .send()
    .await
    .expect("the slash command is answered within a second");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_flood_neither_starves_health_checks_nor_outlives_the_header_timeout() {
    // Arrange: a cap of 64 and a 2-second header timeout, and 100 connections that each send
    // half a request head and never finish it.
    let (slack, slack_api) = fake_slack().await;
    let header_timeout = Duration::from_secs(2);
    let (running, _db) = serve(&slack_api, limits(64, header_timeout)).await;
    let addr = running.addr;
    let mut slow = Vec::new();
    for _ in 0..100 {
        slow.push(hold(addr, HALF_HEAD, Duration::from_secs(8)).await);
    }
    let flooded = Instant::now();
    let client = reqwest::Client::new();

    // Act: health checks and a signed slash command, while the slow connections fill the cap.
    let mut checks = Vec::new();
    for _ in 0..3 {
        checks.push(healthz(&client, addr).await);
    }
    let answer = slash_command(
        &client,
        addr,
        "incident raise Checkout down impact:high urgency:medium",
    )
    .await;
    let checked = flooded.elapsed();
    let open_while_checked = slow.iter().filter(|h| !h.is_finished()).count();
    let mut closed_after = Vec::new();
    for h in slow {
        closed_after.push(h.await.unwrap().map(|at| at.duration_since(flooded)));
    }

    // Assert: every check was answered, before the header timeout could have freed anything.
    for c in &checks {
        assert_eq!(c.as_deref(), Ok("ok"));
    }
    assert!(
        answer["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("INC-1 raised: Checkout down"),
        "{answer}"
    );
    assert!(
        checked < Duration::from_millis(1500),
        "checks took {checked:?}"
    );
    assert!(
        open_while_checked >= 50,
        "the slow connections held the cap while the checks ran ({open_while_checked} open)"
    );
    // The server closed every slow connection: the oldest to make room, the rest once their
    // header timeout ran out.
    let still_open = closed_after.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "slow connections the server never closed");
    let timed_out = closed_after
        .iter()
        .flatten()
        .filter(|at| **at >= header_timeout - Duration::from_millis(500))
        .count();
    assert!(
        timed_out >= 50,
        "most slow connections lasted until the header timeout ({timed_out} did): {closed_after:?}"
    );
    assert!(
        closed_after
            .iter()
            .flatten()
            .all(|at| *at < header_timeout + Duration::from_secs(3)),
        "{closed_after:?}"
    );
    // The outbox still reached Slack, and the server still answers.
    slack
        .wait_for("the incident post", |c| {
            c.iter().any(|m| m == "chat.postMessage")
        })
        .await;
    // A new client: the first one's pooled connection has been idle past the header timeout,
    // so the server may have closed it (as it should) just as the client reuses it.
    let client = reqwest::Client::new();
    assert_eq!(healthz(&client, addr).await.as_deref(), Ok("ok"));
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("opsledger_http_connections_shed_total{reason=\"displaced\"}")
            && metrics.contains("opsledger_http_connections_shed_total{reason=\"header_timeout\"}"),
        "{metrics}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_with_every_connection_busy_a_newcomer_is_refused_at_once() {
    // Arrange: a cap of 4, filled with requests in flight.
    let (_slack, slack_api) = fake_slack().await;
    let (running, _db) = serve(&slack_api, limits(4, Duration::from_secs(2))).await;
    let addr = running.addr;
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(ENDLESS_BODY).await.unwrap();
        busy.push(conn);
    }
    // The server marks a connection busy once it has read its head.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    let started = Instant::now();
    let mut newcomer = TcpStream::connect(addr).await.unwrap();
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(2), newcomer.read_to_end(&mut answer)).await;
    let refused_in = started.elapsed();
    // One request in flight ends (its client goes away): its connection frees a slot.
    drop(busy.pop());
    let client = reqwest::Client::new();
    let mut health = Err(String::new());
    for _ in 0..20 {
        health = healthz(&client, addr).await;
        if health.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert!(read.is_ok(), "the newcomer was left waiting");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(refused_in < Duration::from_secs(1), "{refused_in:?}");
    assert_eq!(health.as_deref(), Ok("ok"));
    drop(busy);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_waiting_connections_at_once_and_lets_a_request_in_flight_finish() {
    // Arrange: the default 10-second header timeout, a slow head and a request in flight.
    let (_slack, slack_api) = fake_slack().await;
    let (running, _db) = serve(&slack_api, ConnectionLimits::default()).await;
    let addr = running.addr;
    let slow = hold(addr, HALF_HEAD, Duration::from_secs(8)).await;
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight.write_all(ENDLESS_BODY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: stop, and finish the request's body while the server stops.
    let started = Instant::now();
    let stopping = tokio::spawn(running.stop());
    let slow_closed = slow.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waited_for_the_request = !stopping.is_finished();
    in_flight.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), in_flight.read_to_end(&mut answer)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), stopping).await;

    // Assert: the slow connection was closed at once, not after its 10 seconds; the request in
    // flight got its answer (405: /healthz takes GET only) before the server stopped.
    let slow_closed = slow_closed.expect("the slow connection was closed");
    assert!(slow_closed.duration_since(started) < Duration::from_secs(2));
    assert!(
        waited_for_the_request,
        "stop did not wait for the request in flight"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    stopped
        .expect("stopped within 5 seconds")
        .unwrap()
        .expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `opsledger serve` under `sh -c "ulimit ..."`, on a free port, with none of the host's
/// settings; returns the child and its port.
fn serve_with_ulimit(ulimit: &str, db: &std::path::Path, env: &[(&str, &str)]) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit {ulimit} && exec \"$0\" serve"))
        .arg(env!("CARGO_BIN_EXE_opsledger"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if ["OPSLEDGER_", "SLACK_", "DISCORD_", "GITHUB_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            cmd.env_remove(&name);
        }
    }
    cmd.env(
        "OPSLEDGER_DATABASE_URL",
        format!("sqlite://{}", db.display()),
    )
    .env("OPSLEDGER_BIND", format!("127.0.0.1:{port}"))
    .env("RUST_LOG", "info")
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    (cmd.spawn().expect("spawn serve"), port)
}

/// `GET /healthz` with a bare request; the status line, or why not.
fn get_healthz(port: u16, within: Duration) -> Result<String, String> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(within)).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    Ok(answer.lines().next().unwrap_or("").to_string())
}

fn wait_healthy(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        if get_healthz(port, Duration::from_secs(2)).is_ok_and(|l| l.contains("200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("serve never answered /healthz");
}

/// SIGTERM, then the exit status (within 10 s) and stderr.
fn terminate(mut child: Child) -> (Option<std::process::ExitStatus>, String) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = None;
    while status.is_none() && Instant::now() < deadline {
        status = child.try_wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (status, err)
}

/// The soft and hard "Max open files" of a process, from /proc.
#[cfg(target_os = "linux")]
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let mut words = line["Max open files".len()..].split_whitespace();
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn serve_raises_its_soft_open_file_limit_to_the_hard_limit() {
    // Arrange: a soft limit of 256 under a higher hard limit.
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    if hard <= 256 {
        eprintln!("skipped: the hard open-file limit ({hard}) leaves nothing to raise");
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // Act
    let (mut child, port) = serve_with_ulimit("-S -n 256", &dir.path().join("x.db"), &[]);
    wait_healthy(&mut child, port);
    let (soft_now, hard_now) = open_file_limits(child.id());
    let (status, err) = terminate(child);

    // Assert
    assert_eq!(soft_now, hard_now, "stderr:\n{err}");
    assert_eq!(hard_now, hard.to_string());
    assert!(
        err.contains("raised the open-file limit") && err.contains("from=256"),
        "{err}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
}

#[test]
fn with_256_descriptors_serve_stays_healthy_under_300_slow_connections() {
    // Arrange: soft and hard limits of 256, so raising cannot help: the default cap must keep
    // accept from running out of descriptors. A 30-second header timeout frees nothing here.
    let _ = opsledger::http::server::raise_nofile_limit();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = serve_with_ulimit(
        "-n 256",
        &dir.path().join("x.db"),
        &[("OPSLEDGER_HEADER_READ_TIMEOUT", "30s")],
    );
    wait_healthy(&mut child, port);
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(HALF_HEAD).unwrap();
        slow.push(conn);
    }

    // Act
    let started = Instant::now();
    let health: Vec<_> = (0..3)
        .map(|_| get_healthz(port, Duration::from_secs(2)))
        .collect();
    let took = started.elapsed();
    let (status, err) = terminate(child);

    // Assert: answered at once, and SIGTERM did not wait for the slow connections.
    for h in &health {
        assert!(
            h.as_ref().is_ok_and(|l| l.starts_with("HTTP/1.0 200")),
            "{health:?}\nstderr:\n{err}"
        );
    }
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(err.contains("max_connections=192"), "{err}");
    assert!(!err.contains("Too many open files"), "{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    drop(slow);
}
