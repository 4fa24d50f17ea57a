//! A small W3C WebDriver client for Debian's chromedriver and chromium, headless: open a page,
//! run a script in it and read its answer, with the colour scheme and window size a test asks.
//!
//! Written here rather than taken from a crate (fantoccini, thirtyfour) because the tests need
//! four endpoints, and those crates bring their own HTTP stack and a second TLS setup.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A program on the PATH, or a failure that says how to install it: the browser tests do not skip.
pub fn program(names: &[&str], package: &str) -> PathBuf {
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("the browser tests need {names:?}: install Debian's {package} (apt-get install {package}); .ci/run does");
}

/// chromedriver with one headless chromium session; `quit` ends both.
pub struct Browser {
    driver: Child,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = program(&["chromium", "chromium-browser"], "chromium");
        let chromedriver = program(&["chromedriver"], "chromium-driver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // A browser that stops answering fails the test instead of hanging it.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            }
        }}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver made no session: {answer}"))
            .to_string();
        Browser {
            driver,
            session: format!("{base}/session/{session}"),
            http,
            _profile: profile,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let answer: Value = self
            .http
            .post(format!("{}{path}", self.session))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            answer["value"].get("error").is_none(),
            "{path} failed: {answer}"
        );
        answer["value"].clone()
    }

    /// Loads a page and waits until it has loaded.
    pub async fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `return` gives the answer) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Runs `script` until it returns true, and says how long that took; fails the test after
    /// `within`. Polled every 20 ms, so the time is at most that late.
    pub async fn until(&self, what: &str, script: &str, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{what}: not seen within {within:?}; the page says {}",
                self.eval("return document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Saves a PNG of the window to `path` (kept as a CI artifact under the target directory).
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let answer: Value = self
            .http
            .get(format!("{}/screenshot", self.session))
            .send()
            .await
            .expect("screenshot")
            .json()
            .await
            .expect("screenshot answer");
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().expect("a base64 PNG"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// `prefers-color-scheme` as the page sees it: `light` or `dark`.
    pub async fn color_scheme(&self, scheme: &str) {
        let features = json!([{ "name": "prefers-color-scheme", "value": scheme }]);
        self.post(
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setEmulatedMedia", "params": { "features": features } }),
        )
        .await;
    }

    /// The window's size in CSS pixels.
    pub async fn window(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await;
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
