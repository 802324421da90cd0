//! A reference company API for privacy-portal's HTTP connector protocol,
//! version 1 (see `docs/connector-protocol.md`), over its own SQLite file.
//!
//! Companies copy it as a starting point; the portal's tests start it
//! in-process over real HTTP:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let cfg = reference_company::Config::new("/tmp/shop.sqlite".into(), b"secret".to_vec());
//! reference_company::import_jsonl(&cfg.db_path, r#"{"external_id":"C-1","email":"a@example.nl"}"#).await?;
//! let shop = reference_company::start(cfg, "127.0.0.1:0").await?;
//! // … point the portal at shop.url() …
//! assert_eq!(shop.control.calls("erase"), 0);
//! shop.stop().await;
//! # Ok(()) }
//! ```

mod api;
pub mod signature;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use sqlx::SqlitePool;

pub use store::Counts;

/// Records per `export` page unless configured otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file; created with its tables when missing.
    pub db_path: PathBuf,
    /// The signing secret shared with the portal, already decoded
    /// (see [`signature::decode_secret`]).
    pub secret: Vec<u8>,
    /// Answer `erase` with 202 `pending` and erase on a later `erase-status`.
    pub async_erase: bool,
    /// Records per `export` page.
    pub page_size: usize,
}

impl Config {
    /// Synchronous erasure, pages of [`DEFAULT_PAGE_SIZE`].
    pub fn new(db_path: PathBuf, secret: Vec<u8>) -> Config {
        Config {
            db_path,
            secret,
            async_erase: false,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// What the server has seen, for tests and operators.
#[derive(Default)]
struct Counters {
    calls: HashMap<String, usize>,
    /// Per (operation, webhook-id or request_id).
    calls_by_key: HashMap<(String, String), usize>,
    refused_signatures: usize,
    while_down: usize,
    erasures_executed: HashMap<String, usize>,
}

/// State shared by the HTTP workers and [`Control`].
struct Shared {
    pool: SqlitePool,
    secret: Vec<u8>,
    page_size: usize,
    /// Changes run one at a time, so "have we seen this request_id?" and
    /// "do it and remember it" cannot interleave between two calls.
    write_lock: tokio::sync::Mutex<()>,
    down: AtomicBool,
    async_erase: AtomicBool,
    pending_polls: AtomicUsize,
    delay_ms: AtomicU64,
    counters: Mutex<Counters>,
}

impl Shared {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }
    fn async_erase(&self) -> bool {
        self.async_erase.load(Ordering::Relaxed)
    }
    fn pending_polls(&self) -> usize {
        self.pending_polls.load(Ordering::Relaxed)
    }
    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }
    fn count_call(&self, op: &str, webhook_id: &str, request_id: Option<&str>) {
        let mut c = self.counters();
        *c.calls.entry(op.to_string()).or_default() += 1;
        let mut keys = vec![webhook_id];
        keys.extend(request_id.filter(|r| *r != webhook_id));
        for key in keys {
            *c.calls_by_key
                .entry((op.to_string(), key.to_string()))
                .or_default() += 1;
        }
    }
}

/// A handle on a running server: switch behaviour, read counters, look at
/// the company's data. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// While down, every call answers 503 (nothing else happens).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::Relaxed);
    }

    /// Switches between synchronous and asynchronous (202 + `erase-status`)
    /// erasure for erasures that start from now on.
    pub fn set_async_erase(&self, on: bool) {
        self.shared.async_erase.store(on, Ordering::Relaxed);
    }

    /// How many `erase-status` polls answer `pending` before the erasure
    /// runs (default 1).
    pub fn set_pending_polls(&self, polls: usize) {
        self.shared.pending_polls.store(polls, Ordering::Relaxed);
    }

    /// Delays every call before it is handled (to test the portal's
    /// timeouts). The call is still carried out after the delay, like a slow
    /// server whose answer arrives after the portal gave up.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Accepted (correctly signed) calls of an operation, whatever they answered.
    pub fn calls(&self, op: &str) -> usize {
        self.shared.counters().calls.get(op).copied().unwrap_or(0)
    }

    /// Accepted calls of an operation carrying this webhook-id or request_id.
    pub fn calls_for(&self, op: &str, id: &str) -> usize {
        let c = self.shared.counters();
        c.calls_by_key
            .get(&(op.to_string(), id.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Calls refused with 401 (bad signature or stale timestamp).
    pub fn refused_signatures(&self) -> usize {
        self.shared.counters().refused_signatures
    }

    /// Calls answered 503 because the server was set down.
    pub fn calls_while_down(&self) -> usize {
        self.shared.counters().while_down
    }

    /// How many times the erasure for this request_id actually ran (should
    /// never exceed 1).
    pub fn erasures_executed(&self, request_id: &str) -> usize {
        let c = self.shared.counters();
        c.erasures_executed.get(request_id).copied().unwrap_or(0)
    }

    /// Accepted `erase` and `erase-status` calls with this request_id.
    pub fn erase_calls(&self, request_id: &str) -> usize {
        self.calls_for("erase", request_id) + self.calls_for("erase-status", request_id)
    }

    /// Loads more customers into the running server's database.
    pub async fn import_jsonl(&self, text: &str) -> anyhow::Result<usize> {
        store::import_jsonl(&self.shared.pool, text).await
    }

    /// The account id holding this address (case-insensitive), if any.
    pub async fn account_by_email(&self, email: &str) -> anyhow::Result<Option<String>> {
        store::account_by_email(&self.shared.pool, email).await
    }

    /// The address on an account; `None` once erased or when unknown.
    pub async fn customer_email(&self, id: &str) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT email FROM customers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.shared.pool)
                .await?
                .flatten(),
        )
    }

    /// True once an erasure blanked the account.
    pub async fn is_erased(&self, id: &str) -> anyhow::Result<bool> {
        let at: Option<Option<String>> =
            sqlx::query_scalar("SELECT erased_at FROM customers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.shared.pool)
                .await?;
        Ok(matches!(at, Some(Some(_))))
    }

    pub async fn consents(&self, id: &str) -> anyhow::Result<BTreeMap<String, bool>> {
        store::consents(&self.shared.pool, id).await
    }

    /// Rows per list (orders, payments, contacts, ip_log) of an account.
    pub async fn counts(&self, id: &str) -> anyhow::Result<Counts> {
        store::counts(&self.shared.pool, id).await
    }

    /// The database itself, for checks the helpers above do not cover.
    pub fn pool(&self) -> &SqlitePool {
        &self.shared.pool
    }
}

/// A server started with [`start`].
pub struct Running {
    pub addr: SocketAddr,
    pub control: Control,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The base URL to configure in the portal, e.g. `http://127.0.0.1:9090`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting calls, finishes the ones in flight, closes the database.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.control.shared.pool.close().await;
    }
}

/// Loads customers in the portal's import format into a database file
/// (created when missing). Returns the number of customers read.
pub async fn import_jsonl(db_path: &Path, text: &str) -> anyhow::Result<usize> {
    let pool = store::open(db_path).await?;
    let n = store::import_jsonl(&pool, text).await;
    pool.close().await;
    n
}

/// Opens the database and serves the protocol on `bind` (`127.0.0.1:0`
/// picks a free port; see [`Running::addr`]). Runs on the caller's tokio
/// runtime until [`Running::stop`].
pub async fn start(cfg: Config, bind: &str) -> anyhow::Result<Running> {
    let pool = store::open(&cfg.db_path).await?;
    let shared = Arc::new(Shared {
        pool,
        secret: cfg.secret,
        page_size: cfg.page_size,
        write_lock: tokio::sync::Mutex::new(()),
        down: AtomicBool::new(false),
        async_erase: AtomicBool::new(cfg.async_erase),
        pending_polls: AtomicUsize::new(1),
        delay_ms: AtomicU64::new(0),
        counters: Mutex::new(Counters::default()),
    });
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(shared.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // Export answers are large, requests small.
            .app_data(web::PayloadConfig::new(64 * 1024))
            .route("/{operation}", web::post().to(api::call))
    })
    .workers(2)
    .listen(listener)?
    .shutdown_timeout(2)
    .disable_signals()
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Running {
        addr,
        control: Control { shared },
        handle,
        task,
    })
}
