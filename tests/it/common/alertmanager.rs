//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on a free port, routing
//! every alert to one webhook, so the alert tests see the notifications it really sends.
//!
//! Its route groups by `alertname` and `service` with `group_wait` and `group_interval` of 1s:
//! the first notification of a group comes about 1s after the alerts are posted, and later
//! changes (an alert added, alerts resolved) within about 1s more. An alert is resolved by
//! posting it again with `endsAt` set to now or earlier; an alert posted without `endsAt`
//! resolves by itself only after `resolve_timeout` (5m by default).

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The variable naming the Alertmanager binary; `.ci/run` sets it.
pub const ALERTMANAGER_ENV: &str = "OPSLEDGER_TEST_ALERTMANAGER";
/// Where Debian's `prometheus-alertmanager` package puts it.
const DEBIAN_BINARY: &str = "/usr/bin/prometheus-alertmanager";
const READY_WITHIN: Duration = Duration::from_secs(15);

/// A running Alertmanager; killed when dropped.
pub struct Alertmanager {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an Alertmanager that sends every notification to `webhook_url` with
/// `Authorization: Bearer <token>` and `send_resolved: true`, and waits until it is ready.
/// Panics (the test fails, it is never skipped) if the binary is missing or it does not come up.
pub async fn start(webhook_url: &str, token: &str) -> Alertmanager {
    let binary = binary();
    let dir = tempfile::tempdir().expect("temp dir for Alertmanager");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");

    // JSON is YAML, and serde_json quotes the URL and the token safely.
    let config = json!({
        "route": {
            "receiver": "opsledger",
            "group_by": ["alertname", "service"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "opsledger",
            "webhook_configs": [{
                "url": webhook_url,
                "send_resolved": true,
                "http_config": { "authorization": { "type": "Bearer", "credentials": token } },
            }],
        }],
    });
    let config_path = dir.path().join("alertmanager.yml");
    fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    let log_path = dir.path().join("alertmanager.log");
    let log = File::create(&log_path).expect("create Alertmanager log");
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.external-url={url}"))
        .arg("--cluster.listen-address=") // no HA gossip (it would listen on :9094)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    // Owned from here on, so a panic below still kills it.
    let mut am = Alertmanager {
        child,
        url,
        _dir: dir,
    };

    let client = reqwest::Client::new();
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Some(status) = am.child.try_wait().unwrap() {
            panic!(
                "Alertmanager exited ({status}) before it was ready; its log:\n{}",
                read(&log_path)
            );
        }
        let ready = client.get(format!("{}/-/ready", am.url)).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return am;
        }
        if Instant::now() >= deadline {
            panic!(
                "Alertmanager at {} not ready after {READY_WITHIN:?}; its log:\n{}",
                am.url,
                read(&log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Alertmanager {
    /// Posts `alerts` (a JSON array of `{labels, annotations, startsAt, endsAt, generatorURL}`)
    /// to `/api/v2/alerts`, as Prometheus does; asserts 200.
    pub async fn post_alerts(&self, alerts: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&alerts)
            .send()
            .await
            .expect("POST /api/v2/alerts to Alertmanager");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status.as_u16(),
            200,
            "Alertmanager refused the alerts {alerts}: {body}"
        );
    }
}

fn binary() -> PathBuf {
    let path = std::env::var_os(ALERTMANAGER_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEBIAN_BINARY));
    assert!(
        path.is_file(),
        "no Alertmanager binary at {}: install Debian's prometheus-alertmanager \
         (apt-get install prometheus-alertmanager; `bash .ci/run` does) or set {ALERTMANAGER_ENV}; \
         the alert tests need it and are never skipped",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}
