//! A real browser for the pages people look at: Debian's headless Chromium driven through
//! `chromedriver` (WebDriver, with the `fantoccini` client).
//!
//! [`Browser::start`] finds both programs with [`super::tool`] (a skip on a laptop, a failure
//! under `CI=true`), starts `chromedriver` on a free loopback port in its own process group
//! and opens one Chromium session with a fresh profile. Chromium may resolve no host name
//! but the loopback addresses (`--host-resolver-rules`), so a page that reaches out to a CDN
//! fails loudly instead of working by chance on a connected laptop; every request the page
//! makes is also recorded (Chromium's performance log), and [`Browser::external_requests`]
//! lists the ones that left the page's own origin. [`Browser::console_errors`] reads the
//! page's console (errors, CSP violations, failed loads). Screenshots go to
//! `target/test-artefacts/`.
//!
//! ```ignore
//! let Some(browser) = common::browser::Browser::start().await else { return };
//! browser.goto(&daemon.url("/ui")).await;
//! browser.phone().await;
//! browser.screenshot("ui-phone").await;
//! assert_eq!(browser.console_errors().await, Vec::<String>::new());
//! assert_eq!(browser.external_requests(&daemon.url("/")).await, Vec::<String>::new());
//! browser.close().await;
//! ```

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A phone's viewport (CSS pixels), for screenshots and responsive checks.
pub const PHONE: (u32, u32) = (390, 844);
/// A desktop or wall screen's viewport.
pub const DESKTOP: (u32, u32) = (1366, 900);

/// One Chromium session and its `chromedriver`; both stop on [`Browser::close`] or drop.
#[derive(Debug)]
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    /// The fresh Chromium profile, removed after the session.
    _profile: tempfile::TempDir,
}

/// `POST /session/{id}/se/log`: chromedriver's log endpoint (not in the W3C protocol), which
/// returns and clears the entries of one log (`browser` or `performance`).
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "type": self.0 }).to_string()))
    }
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session; `None` after
    /// [`super::skip`] when either is not installed (`apt-get install chromium
    /// chromium-driver`), which fails the test under `CI=true`.
    pub async fn start() -> Option<Browser> {
        let chromium = super::tool("chromium", "chromium")?;
        let chromedriver = super::tool("chromedriver", "chromium-driver")?;
        let port = free_port();
        let driver = {
            use std::os::unix::process::CommandExt;
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so the browser it starts stops with it.
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        let profile = tempfile::tempdir().expect("browser profile directory");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                    // No name resolves but loopback: an external asset cannot load.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("the capabilities are an object"),
        };
        let mut browser = Browser { client: None, driver, _profile: profile };
        let url = format!("http://127.0.0.1:{port}");
        // The WebDriver client is built on rustls; the process may have several providers.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let deadline = tokio::time::Instant::now() + super::WAIT;
        let client = loop {
            match ClientBuilder::rustls()
                .expect("WebDriver client")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session at {url} within {:?}: {e}", super::WAIT),
            }
        };
        browser.client = Some(client);
        Some(browser)
    }

    /// The WebDriver client, to find and click elements and run scripts.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open until close")
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The visible text of the whole page, read in one script so that a page re-rendering
    /// (or a form's navigation) between finding the body and reading it cannot leave a
    /// stale element behind.
    pub async fn text(&self) -> String {
        let text = self
            .client()
            .execute("return document.body ? document.body.innerText : '';", vec![])
            .await
            .expect("the body's text");
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (bounded by [`super::WAIT`]) until the page's text contains `needle`, and
    /// returns the text; panics with the last text seen otherwise.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never showed {needle:?}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sets the viewport to a phone's size.
    pub async fn phone(&self) {
        self.resize(PHONE).await;
    }

    /// Sets the viewport to a desktop's size.
    pub async fn desktop(&self) {
        self.resize(DESKTOP).await;
    }

    async fn resize(&self, (width, height): (u32, u32)) {
        self.client().set_window_size(width, height).await.expect("resize the window");
    }

    /// Saves a PNG of the viewport as `target/test-artefacts/NAME.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("screenshot");
        let dir = artefacts();
        std::fs::create_dir_all(&dir).expect("create target/test-artefacts");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// The console messages at level SEVERE since the last call: script errors, failed
    /// loads, Content-Security-Policy violations.
    pub async fn console_errors(&self) -> Vec<String> {
        self.log("browser")
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The network URLs (`http`, `https`, `ws`, `wss`) requested since the last call that are
    /// not under `origin` (e.g. `http://127.0.0.1:8080/`). `data:` and `blob:` URLs are the
    /// page's own, `chrome:` ones the browser's.
    pub async fn external_requests(&self, origin: &str) -> Vec<String> {
        self.log("performance")
            .await
            .into_iter()
            .filter_map(|e| {
                let m: Value = serde_json::from_str(e["message"].as_str()?).ok()?;
                let m = &m["message"];
                (m["method"] == "Network.requestWillBeSent")
                    .then(|| m["params"]["request"]["url"].as_str().map(str::to_owned))?
            })
            .filter(|u| {
                let network = ["http:", "https:", "ws:", "wss:"].iter().any(|s| u.starts_with(s));
                network && !u.starts_with(origin)
            })
            .collect()
    }

    async fn log(&self, which: &'static str) -> Vec<Value> {
        match self.client().issue_cmd(ReadLog(which)).await {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => panic!("chromedriver's {which} log is not a list: {other}"),
            Err(e) => panic!("read chromedriver's {which} log: {e}"),
        }
    }

    /// Ends the session and stops chromedriver and the browser.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: chromedriver and the Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
    }
}

/// Where screenshots are saved: `target/test-artefacts/` (kept after the run).
pub fn artefacts() -> PathBuf {
    super::repo().join("target").join("test-artefacts")
}

/// A loopback TCP port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
