//! A minimal W3C WebDriver client for the browser tests (headless Chromium),
//! with the chromedriver launcher and the axe-core scan. Built only with
//! `--features browser-tests`.
//!
//! WebDriver is spoken directly over HTTP with `reqwest` (the W3C protocol is a
//! handful of JSON calls). fantoccini with its default features off exposes no
//! public plain-HTTP connector (`ClientBuilder::new` wants a
//! `hyper_util::...::HttpConnector`, and hyper-util is not a dependency of this
//! crate), so it cannot connect without a Cargo.toml change.
//!
//! Environment: PORTAL_CHROMEDRIVER (default /usr/bin/chromedriver),
//! PORTAL_CHROMIUM (default /usr/bin/chromium), PORTAL_AXE_JS (default
//! `node_modules/axe-core/axe.min.js` in the crate root; `npm ci` installs it).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use serde_json::{json, Value};

/// How long to wait for an element, chromedriver's start, a page.
pub const WAIT: Duration = Duration::from_secs(15);
pub const POLL: Duration = Duration::from_millis(100);
/// The W3C key under which an element reference travels.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// CSS viewport of the phone the customer holds.
pub const PHONE: (u32, u32) = (412, 915);

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

// ---------- chromedriver ----------

/// A chromedriver process on a free port; killed on drop.
pub struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    pub async fn start() -> Chromedriver {
        let bin = env_or("PORTAL_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = super::free_listener().local_addr().unwrap().port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver {bin}: {e}"));
        let mut driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!("chromedriver {bin} exited at start: {status}");
            }
            let ready = match http.get(format!("{}/status", driver.url)).send().await {
                Ok(res) => res
                    .json::<Value>()
                    .await
                    .map(|v| v["value"]["ready"] == true)
                    .unwrap_or(false),
                Err(_) => false,
            };
            if ready {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer /status on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------- a minimal W3C WebDriver client ----------

/// One Chromium session. `close()` ends it; if a test panics first, drop
/// ends the session (so Chromium exits) before chromedriver is killed.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    closed: bool,
    // Field order matters for drop: the session is deleted in `drop`, then
    // chromedriver is killed, then the profile directory removed.
    driver: Chromedriver,
    _profile: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    css: String,
}

impl Browser {
    /// A phone-sized browser (customers).
    pub async fn launch() -> Browser {
        Self::launch_sized(PHONE).await
    }

    /// A browser whose viewport is `size` CSS pixels (staff: a laptop).
    pub async fn launch_sized(size: (u32, u32)) -> Browser {
        let driver = Chromedriver::start().await;
        let profile = tempfile::tempdir().unwrap();
        let chromium = env_or("PORTAL_CHROMIUM", "/usr/bin/chromium");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {"script": 30_000, "pageLoad": 30_000, "implicit": 0},
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            format!("--window-size={},{}", size.0, size.1),
                            format!("--user-data-dir={}", profile.path().display()),
                        ],
                        // New headless clamps the window to >= 500 px wide, so
                        // the phone viewport itself is emulated.
                        "mobileEmulation": {
                            "deviceMetrics": {"width": size.0, "height": size.1, "pixelRatio": 1.0}
                        }
                    }
                }
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let res = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("chromedriver reachable");
        let status = res.status();
        let body: Value = res.json().await.expect("JSON from chromedriver");
        assert!(
            status.is_success(),
            "new session failed ({status}): {}",
            body["value"]
        );
        let session = body["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        let browser = Browser {
            http,
            session,
            closed: false,
            driver,
            _profile: profile,
        };
        // A page that asks for the device width, as the portal's pages do.
        browser
            .goto("data:text/html,<meta name=viewport content=width=device-width>")
            .await;
        let width = browser
            .execute("return document.documentElement.clientWidth;")
            .await;
        assert_eq!(width, size.0, "viewport width");
        browser
    }

    /// Sends one WebDriver command; Err carries the W3C error code and message.
    pub async fn try_cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (String, String)> {
        let url = format!("{}/session/{}{}", self.driver.url, self.session, path);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let ok = res.status().is_success();
        let json: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: no JSON: {e}"));
        let value = json["value"].clone();
        if ok {
            Ok(value)
        } else {
            Err((
                value["error"].as_str().unwrap_or("unknown").to_string(),
                value["message"].as_str().unwrap_or_default().to_string(),
            ))
        }
    }

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method.clone(), path, body).await {
            Ok(v) => v,
            Err((code, msg)) => panic!("WebDriver {method} {path} failed: {code}: {msg}"),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> reqwest::Url {
        let url = self.get("/url").await;
        reqwest::Url::parse(url.as_str().expect("URL string")).unwrap()
    }

    /// Reloads the current page (as the browser's reload button does).
    pub async fn refresh(&self) {
        self.post("/refresh", json!({})).await;
    }

    /// The cookies of the current page as one `Cookie:` header value
    /// (WebDriver also returns HttpOnly cookies), for fetching a URL with
    /// this browser's session from outside it.
    pub async fn cookie_header(&self) -> String {
        let cookies = self.get("/cookie").await;
        cookies
            .as_array()
            .expect("a cookie list")
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap_or_default(),
                    c["value"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A Chrome DevTools Protocol command through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// Waits (bounded) until `css` matches an element on the current page.
    pub async fn wait_for(&self, css: &str) -> Element<'_> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .try_cmd(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(v) => {
                    let id = v[ELEMENT_KEY].as_str().expect("element id").to_string();
                    return Element {
                        browser: self,
                        id,
                        css: css.to_string(),
                    };
                }
                // "no such element", or the page is mid-navigation.
                Err((code, msg)) => {
                    if Instant::now() >= deadline {
                        let url = self.get("/url").await;
                        panic!("no element {css:?} on {url} within {WAIT:?} ({code}: {msg})");
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The element `css` matches on the current page right now, if any.
    pub async fn find(&self, css: &str) -> Option<Element<'_>> {
        let found = self
            .try_cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()?;
        Some(Element {
            browser: self,
            id: found[ELEMENT_KEY].as_str()?.to_string(),
            css: css.to_string(),
        })
    }

    /// `<html lang>` of the current page.
    pub async fn html_lang(&self) -> String {
        self.wait_for("html")
            .await
            .attr("lang")
            .await
            .unwrap_or_default()
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    pub async fn execute_async(&self, script: &str) -> Value {
        self.post("/execute/async", json!({"script": script, "args": []}))
            .await
    }

    /// A PNG of the viewport (a 412 px wide phone), saved under docs/screenshots/.
    pub async fn screenshot(&self, name: &str) {
        let b64 = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64 screenshot"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "screenshot is a PNG");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &png).unwrap();
        println!("screenshot: {} ({} bytes)", path.display(), png.len());
    }

    pub async fn close(mut self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
        self.closed = true;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // A test failed before close(): end the session synchronously (no
        // async in drop) so Chromium exits before chromedriver is killed.
        let addr = self.driver.url.trim_start_matches("http://").to_string();
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session
            );
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}

impl Element<'_> {
    fn path(&self, what: &str) -> String {
        format!("/element/{}/{what}", self.id)
    }

    pub async fn click(&self) {
        self.browser.post(&self.path("click"), json!({})).await;
    }

    pub async fn send_keys(&self, text: &str) {
        self.browser
            .post(&self.path("value"), json!({ "text": text }))
            .await;
    }

    pub async fn text(&self) -> String {
        let v = self.browser.get(&self.path("text")).await;
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn attr(&self, name: &str) -> Option<String> {
        let v = self
            .browser
            .get(&self.path(&format!("attribute/{name}")))
            .await;
        v.as_str().map(str::to_string)
    }

    pub async fn prop(&self, name: &str) -> Value {
        self.browser
            .get(&self.path(&format!("property/{name}")))
            .await
    }

    pub async fn displayed(&self) -> bool {
        self.browser.get(&self.path("displayed")).await == true
    }

    pub async fn assert_visible(&self) {
        assert!(self.displayed().await, "{} is not visible", self.css);
    }
}

// ---------- axe-core ----------

pub fn axe_source() -> String {
    let path = std::env::var("PORTAL_AXE_JS")
        .ok()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node_modules/axe-core/axe.min.js")
        });
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core not found at {} ({e}); run `npm ci` or set PORTAL_AXE_JS",
            path.display()
        )
    });
    assert!(src.len() > 100_000, "{} looks truncated", path.display());
    src
}

pub const AXE_RUN: &str = "const done = arguments[arguments.length - 1];
if (typeof axe === 'undefined') { done({error: 'axe is not defined'}); return; }
axe.run(document, {resultTypes: ['violations']})
  .then(r => done({
    version: axe.version,
    passes: r.passes.length,
    violations: r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.map(n => n.target.join(' '))
    }))
  }))
  .catch(e => done({violations: [{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]}));";

/// Injects axe-core into the current page and runs it; returns (axe version,
/// passing rule count, violations). Panics if axe is not there to run.
pub async fn run_axe(browser: &Browser, axe: &str, page: &str) -> (String, u64, Vec<Value>) {
    // WebDriver scripts are not subject to the page's CSP in Chromium.
    browser.execute(axe).await;
    let version = browser
        .execute("return (typeof axe === 'object' && axe && axe.version) || null;")
        .await;
    assert!(
        version.is_string(),
        "axe-core was not injected into {page} (window.axe is undefined); the scan cannot run"
    );
    let result = browser.execute_async(AXE_RUN).await;
    assert!(
        result["error"].is_null(),
        "axe on {page}: {}",
        result["error"]
    );
    let passes = result["passes"].as_u64().unwrap_or(0);
    assert!(
        passes > 0,
        "axe on {page} checked nothing (0 passing rules): {result}"
    );
    let violations = result["violations"].as_array().cloned().unwrap_or_default();
    (version.as_str().unwrap().to_string(), passes, violations)
}

/// Per-page counts of axe violations by impact, for the summary.
#[derive(Default)]
pub struct AxeLog(Vec<(String, [usize; 4])>);

pub const IMPACTS: [&str; 4] = ["minor", "moderate", "serious", "critical"];

impl AxeLog {
    /// Injects axe-core into the current page and runs it. Fails the test on
    /// any serious or critical violation; minor/moderate ones are printed.
    pub async fn scan(&mut self, browser: &Browser, axe: &str, page: &str) {
        let (version, passes, violations) = run_axe(browser, axe, page).await;
        let mut counts = [0usize; 4];
        let mut blocking = Vec::new();
        for v in &violations {
            let impact = v["impact"].as_str().unwrap_or("unknown");
            let line = format!(
                "[{impact}] {}: {} at {}",
                v["id"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                v["nodes"]
            );
            match IMPACTS.iter().position(|i| *i == impact) {
                Some(i) => counts[i] += 1,
                None => counts[3] += 1,
            }
            if impact == "minor" || impact == "moderate" {
                println!("axe warning on {page}: {line}");
            } else {
                blocking.push(line);
            }
        }
        println!(
            "axe {version} on {page}: {passes} rules passed; violations: {}",
            summary(&counts)
        );
        self.0.push((page.to_string(), counts));
        assert!(
            blocking.is_empty(),
            "axe found serious/critical accessibility violations on {page}:\n{}",
            blocking.join("\n")
        );
    }

    pub fn print(&self) {
        println!("axe summary (minor/moderate/serious/critical):");
        for (page, counts) in &self.0 {
            println!("  {page:<16} {}", summary(counts));
        }
    }
}

pub fn summary(counts: &[usize; 4]) -> String {
    IMPACTS
        .iter()
        .zip(counts)
        .map(|(i, n)| format!("{i} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
