//! TestApp: the real application on a random port with its own database
//! (SQLite in a temp dir, or a fresh PostgreSQL schema when
//! PORTAL_TEST_POSTGRES_URL is set) and a real SMTP server (mailin-embedded)
//! on another random port.
#![allow(dead_code)]

use std::{
    io::Write,
    net::TcpListener,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use privacy_portal::{
    config::{self, Mode, Settings},
    AppState, Server,
};
use secrecy::SecretString;

/// A scripted SMTP server that misbehaves on purpose.
pub mod fake_smtp;

/// The reference company API as the portal's connected systems.
pub mod connectors;

/// WebDriver client, chromedriver launcher and axe-core scan for the browser tests.
#[cfg(feature = "browser-tests")]
pub mod webdriver;

// ---------- captured logs ----------

#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static LOGS: OnceLock<LogBuffer> = OnceLock::new();

/// Everything the application logged in this test binary, at debug level.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get().expect("logging set up").0.lock().unwrap()).into_owned()
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            // The test SMTP server's own log is not the portal's.
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,mailin=off,mailin_embedded=off",
            ))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            // Timestamps are digits that a random 6-digit code can match by chance.
            .without_time()
            .try_init();
        buf
    });
}

// ---------- SMTP ----------

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw: String,
}

#[derive(Clone, Default)]
pub struct Mailbox(Arc<Mutex<Vec<Mail>>>);

#[derive(Clone)]
struct Collector {
    inbox: Mailbox,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for Collector {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        let parsed = mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("parsable mail");
        self.inbox.0.lock().unwrap().push(Mail {
            to: self.to.iter().map(|t| t.to_lowercase()).collect(),
            subject: parsed.subject().unwrap_or_default().to_string(),
            text: parsed
                .body_text(0)
                .map(|c| c.into_owned())
                .unwrap_or_default(),
            html: parsed
                .body_html(0)
                .map(|c| c.into_owned())
                .unwrap_or_default(),
            raw: String::from_utf8_lossy(&self.data).into_owned(),
        });
        mailin_embedded::response::OK
    }
}

impl Mailbox {
    /// Starts a real SMTP server on `listener` in a background thread.
    pub fn serve(listener: TcpListener) -> Mailbox {
        let inbox = Mailbox::default();
        let handler = Collector {
            inbox: inbox.clone(),
            to: vec![],
            data: vec![],
        };
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(handler);
            server
                .with_name("mx.test")
                // One thread per open connection: more than lettre's pool
                // can hold (10), so pooled idle connections never leave a
                // new one waiting for its greeting (a 20 s send timeout).
                .with_num_threads(16)
                .with_tcp_listener(listener);
            let _ = server.serve();
        });
        inbox
    }

    pub fn all(&self) -> Vec<Mail> {
        self.0.lock().unwrap().clone()
    }

    pub fn to(&self, addr: &str) -> Vec<Mail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == addr))
            .collect()
    }

    /// Waits until `addr` has received `n` mails; returns them in order.
    pub async fn wait_for(&self, addr: &str, n: usize) -> Vec<Mail> {
        // Generous: CI runs many servers at once on two cores.
        for _ in 0..600 {
            let got = self.to(addr);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{addr} did not receive {n} mail(s) within 10 s; got {}",
            self.to(addr).len()
        );
    }
}

/// The 6-digit code from a code mail's text body.
pub fn code_in(mail: &Mail) -> String {
    let re = regex::Regex::new(r"(?m)^\s*(\d{6})\s*$").unwrap();
    re.captures(&mail.text).expect("a code line in the mail")[1].to_string()
}

// ---------- waiting ----------

/// How long [`eventually`] waits: generous, as CI runs many servers at
/// once on two cores.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Ok`, for what background work (the mail
/// worker, the sweeper) does in its own time. A fixed sleep is either too
/// short on a busy machine or wasted on an idle one. Fails after
/// [`EVENTUALLY`] naming `what` and the last thing `check` saw.
pub async fn eventually<T, E, F, Fut>(what: &str, mut check: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("not within {EVENTUALLY:?}: {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

// ---------- database ----------

pub fn postgres_url() -> Option<String> {
    std::env::var("PORTAL_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh database for one test: a temp SQLite file, or a new schema in the
/// PostgreSQL database named by PORTAL_TEST_POSTGRES_URL (dropped with it).
pub async fn fresh_database(tmp: &tempfile::TempDir) -> String {
    match postgres_url() {
        None => format!("sqlite://{}/portal.db", tmp.path().display()),
        Some(base) => {
            use sqlx::Connection;
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("PORTAL_TEST_POSTGRES_URL is set but PostgreSQL is unreachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
    }
}

/// The `privacy-portal` binary with no PORTAL_* setting inherited from
/// the environment the tests run in.
pub fn portal_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_privacy-portal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTAL_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

pub fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

// ---------- the app ----------

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub mail: Mailbox,
    pub smtp_port: u16,
    pub client: reqwest::Client,
    pub server: Option<Server>,
    pub database_url: String,
    /// Shared by [`TestApp::spawn_sibling`] (links, tokens, archive keys).
    secret_key: SecretString,
    _tmp: tempfile::TempDir,
}

pub fn test_settings(database_url: String, port: u16, smtp_port: u16) -> Settings {
    Settings {
        mode: Mode::Serve,
        database_url,
        bind: format!("127.0.0.1:{port}"),
        base_url: format!("http://127.0.0.1:{port}"),
        smtp_url: Some(SecretString::from(format!("smtp://127.0.0.1:{smtp_port}"))),
        mail_from: "Kaasboer Privacy <privacy@kaasboer.example>".into(),
        secret_key: SecretString::from(config::generate_secret_hex()),
        company: config::parse_company(config::DEMO_COMPANY_TOML, "test").unwrap(),
        client_rate_limit_per_minute: 0,
        mail_retry_base: Duration::from_millis(200),
        mail_retry_max: Duration::from_secs(2),
        worker_interval: Duration::from_millis(200),
        connector_retry_base: std::time::Duration::from_millis(300),
        connector_retry_max: std::time::Duration::from_secs(2),
        run_schedules: true,
        mail_timing: privacy_portal::mail::Timing {
            send_timeout: Duration::from_secs(5),
            lease: Duration::from_secs(8),
            ..Default::default()
        },
        export_dir: std::env::temp_dir().join(format!(
            "portal-test-exports-{}",
            uuid::Uuid::new_v4().simple()
        )),
        metrics_bind: None,
        metrics_token: None,
        trusted_proxies: Vec::new(),
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        // The server closes a connection idle for 5 s (actix keep-alive); a
        // test that waits for a TOTP step must not reuse such a connection
        // (the request would fail with an incomplete message).
        .pool_idle_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let smtp = free_listener();
        let smtp_port = smtp.local_addr().unwrap().port();
        let mail = Mailbox::serve(smtp);
        Self::spawn_inner(adjust, mail, smtp_port, None).await
    }

    /// The SMTP server is not running yet; start it later with `start_smtp`.
    pub async fn spawn_without_smtp() -> TestApp {
        let smtp = free_listener();
        let smtp_port = smtp.local_addr().unwrap().port();
        drop(smtp);
        Self::spawn_inner(|_| {}, Mailbox::default(), smtp_port, None).await
    }

    /// Another instance of the same deployment, as behind a load balancer:
    /// the same database, secret key and mail server (the customers are
    /// already there). `self` may be stopped; keep it alive while the
    /// sibling runs: on SQLite the database file lies in `self`'s temp dir.
    pub async fn spawn_sibling(&self) -> TestApp {
        self.spawn_sibling_with(|_| {}).await
    }

    /// A sibling with settings of its own (the same company file, say).
    #[allow(dead_code)]
    pub async fn spawn_sibling_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let secret = self.secret_key.clone();
        Self::spawn_inner(
            move |s| {
                s.secret_key = secret;
                adjust(s);
            },
            self.mail.clone(),
            self.smtp_port,
            Some(self.database_url.clone()),
        )
        .await
    }

    pub fn start_smtp(&mut self) {
        let listener =
            TcpListener::bind(("127.0.0.1", self.smtp_port)).expect("SMTP port still free");
        self.mail = Mailbox::serve(listener);
    }

    async fn spawn_inner(
        adjust: impl FnOnce(&mut Settings),
        mail: Mailbox,
        smtp_port: u16,
        shared_database: Option<String>,
    ) -> TestApp {
        init_logs();
        let tmp = tempfile::tempdir().unwrap();
        let sibling = shared_database.is_some();
        let database_url = match shared_database {
            Some(url) => url,
            None => fresh_database(&tmp).await,
        };
        let listener = free_listener();
        let port = listener.local_addr().unwrap().port();
        let mut settings = test_settings(database_url.clone(), port, smtp_port);
        adjust(&mut settings);
        let secret_key = settings.secret_key.clone();
        let state = privacy_portal::build_state(settings)
            .await
            .expect("app state");
        if !sibling {
            let seed = privacy_portal::demo::customers()
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            let report = privacy_portal::import::import(&state, std::io::Cursor::new(seed))
                .await
                .unwrap();
            assert!(report.errors.is_empty());
        }
        let server = Server::start(state, listener).await.expect("server starts");
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            port,
            mail,
            smtp_port,
            client: client(),
            server: Some(server),
            database_url,
            secret_key,
            _tmp: tmp,
        }
    }

    pub fn state(&self) -> &AppState {
        self.server.as_ref().unwrap().state.get_ref()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create(&self, kind: &str, email: &str, locale: &str) -> String {
        let res = self
            .post_json(
                "/api/v1/requests",
                serde_json::json!({"kind": kind, "email": email, "locale": locale}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let body: serde_json::Value = res.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    /// Creates a request and verifies it with the mailed code; returns (id, token).
    pub async fn verified(&self, kind: &str, email: &str, locale: &str) -> (String, String) {
        let before = self.mail.to(email).len();
        let id = self.create(kind, email, locale).await;
        let mails = self.mail.wait_for(email, before + 1).await;
        let code = code_in(mails.last().unwrap());
        let res = self
            .post_json(
                &format!("/api/v1/requests/{id}/verify"),
                serde_json::json!({"code": code}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        (id, body["token"].as_str().unwrap().to_string())
    }

    pub async fn staff_token(&self) -> String {
        let state = self.state();
        let _ = privacy_portal::cli::add_staff(state, "agent@kaasboer.example", "agent").await;
        privacy_portal::cli::staff_token(state, "agent@kaasboer.example")
            .await
            .unwrap()
    }

    pub async fn scalar(&self, sql: &'static str, bind: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(bind.to_string())
            .fetch_one(self.state().db.read())
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

/// Fetches a page and returns (status, body, csrf token if the page has a form).
pub async fn page(client: &reqwest::Client, url: &str) -> (u16, String, Option<String>) {
    let res = client.get(url).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
    let csrf = re.captures(&body).map(|c| c[1].to_string());
    (status, body, csrf)
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap()
        .to_string()
}
