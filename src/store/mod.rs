//! sqlx repositories over `AnyPool`, one code base for SQLite and PostgreSQL.
//!
//! SQLite allows one writer at a time; letting several pooled connections
//! race for the write lock makes them sleep in the busy handler, so on
//! SQLite every write goes through a one-connection pool and reads use
//! their own pool. PostgreSQL uses one pool for both.

pub mod audit;
pub mod authenticators;
pub mod cases;
pub mod codes;
pub mod customers;
pub mod exports;
pub mod inactivity;
mod nodelay;
pub mod outbox;
pub mod requests;
pub mod staff;
pub mod steps;
pub mod tasks;
pub mod webhooks;
pub mod writer;

use std::{str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyConnection, AnyPool, Executor,
};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;
pub type Conn = AnyConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub backend: Backend,
    read: AnyPool,
    write: AnyPool,
    /// The SQLite database file and the URL that opens it, when there is
    /// one (not `:memory:`).
    sqlite_file: Option<(std::path::PathBuf, String)>,
    /// When a customer last heard "unavailable" (unix seconds, 0: never).
    /// A full SQLite file still commits the readiness probe's one-row
    /// update in place, so the probe alone would keep saying ready while
    /// every new request fails.
    last_unavailable: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// How long a connection may be waited for. Short, so that while the
/// database is away a customer hears "try again later" within seconds
/// instead of a request hanging; long enough for a busy pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite writer is one connection that every write queues for (the
/// intake writer holds it up to 50 ms at a time, an export longer): a
/// longer wait there is load, not an outage, which on SQLite shows as an
/// error of the write itself.
const SQLITE_WRITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The readiness probe's whole budget: a frozen database must turn
/// `/readyz` to 503, not leave the probe hanging.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// After a customer was told "unavailable", `/readyz` stays 503 this long,
/// so a load balancer sends them elsewhere; then the probe decides again.
const NOT_READY_AFTER_FAILURE_SECS: i64 = 10;

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let (url, sqlite_file) = sqlite_url(url)?;
            let opts = AnyConnectOptions::from_str(&url)?;
            let sqlite_file = sqlite_file.map(|f| (f, url.clone()));
            let write = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(SQLITE_WRITE_ACQUIRE_TIMEOUT)
                // A ping before each batch is one more hop to SQLite's
                // worker thread (~0.3 ms under load); a local file
                // connection does not go stale the way a socket does.
                .test_before_acquire(false)
                .after_connect(|c, _| Box::pin(sqlite_writer_pragmas(c)))
                .connect_with(opts.clone())
                .await?;
            let read = AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(|c, _| Box::pin(sqlite_pragmas(c)))
                .connect_with(opts)
                .await?;
            Ok(Db {
                backend: Backend::Sqlite,
                read,
                write,
                sqlite_file,
                last_unavailable: Default::default(),
            })
        } else {
            // A host that is a path is a Unix socket: no Nagle there.
            let tcp_port = {
                let o = sqlx::postgres::PgConnectOptions::from_str(url)?;
                (!o.get_host().starts_with('/')).then(|| o.get_port())
            };
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(move |_, _| {
                    Box::pin(async move {
                        if let Some(port) = tcp_port {
                            nodelay::set_for_peer_port(port);
                        }
                        Ok(())
                    })
                })
                .connect(url)
                .await?;
            Ok(Db {
                backend: Backend::Postgres,
                read: pool.clone(),
                write: pool,
                sqlite_file: None,
                last_unavailable: Default::default(),
            })
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => MIGRATE_SQLITE.run(&self.write).await?,
            Backend::Postgres => MIGRATE_POSTGRES.run(&self.write).await?,
        }
        Ok(())
    }

    pub fn read(&self) -> &AnyPool {
        &self.read
    }

    pub fn write(&self) -> &AnyPool {
        &self.write
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.write.begin().await
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }

    /// Whether this instance can take requests: a write commits (an open
    /// connection alone says nothing about a full disk or a read-only
    /// standby), and no customer was turned away as "unavailable" in the
    /// last few seconds.
    pub async fn ready(&self) -> bool {
        let since = now()
            - self
                .last_unavailable
                .load(std::sync::atomic::Ordering::Relaxed);
        if since < NOT_READY_AFTER_FAILURE_SECS {
            return false;
        }
        match tokio::time::timeout(READY_PROBE_TIMEOUT, self.probe_write()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness probe: write failed");
                false
            }
            Err(_) => {
                tracing::warn!("readiness probe: no answer from the database");
                false
            }
        }
    }

    async fn probe_write(&self) -> sqlx::Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A customer was just told the database is unavailable.
    pub fn note_unavailable(&self) {
        self.last_unavailable
            .store(now(), std::sync::atomic::Ordering::Relaxed);
    }

    /// `VACUUM INTO`: a consistent copy of a live SQLite store, taken in
    /// one read transaction while writers go on. The file is created
    /// first, private and only if it does not exist (SQLite accepts an
    /// empty target), and synced before this returns.
    pub async fn backup_to(&self, dest: &std::path::Path) -> Result<u64, BackupError> {
        if self.backend != Backend::Sqlite {
            return Err(BackupError::Postgres);
        }
        crate::crypto::create_private(dest).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists,
            _ => BackupError::Io(e),
        })?;
        let copied = async {
            let target = dest
                .to_str()
                .ok_or_else(|| std::io::Error::other("the file name is not UTF-8"))?;
            sqlx::query("VACUUM INTO $1")
                .bind(target)
                .execute(&self.read)
                .await
                .map_err(BackupError::Db)?;
            let file = std::fs::File::open(dest)?;
            file.sync_all()?;
            Ok::<u64, BackupError>(file.metadata()?.len())
        }
        .await;
        if copied.is_err() {
            // Leave no half-written copy that looks like a backup.
            let _ = std::fs::remove_file(dest);
        }
        copied
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backup copies SQLite stores only; for PostgreSQL use pg_dump (see README, Operations)"
    )]
    Postgres,
    #[error("the backup file already exists; give a new file name")]
    Exists,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Db(sqlx::Error),
}

/// Whether an error means the database is away for now rather than that
/// something is wrong: refused or broken connections, a pool that found
/// none in time, a server shutting down or out of resources, SQLite's full
/// disk, I/O error or lock. Walks the whole chain of causes.
pub fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(e) = c.downcast_ref::<sqlx::Error>() {
            return sqlx_unavailable(e);
        }
        if let Some(e) = c.downcast_ref::<std::io::Error>() {
            if io_storage_full(e) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

fn io_storage_full(e: &std::io::Error) -> bool {
    // ENOSPC and EDQUOT on Linux.
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28 | 122))
}

fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                // 08: connection exception; 53: insufficient resources
                // (disk full, too many connections); 57P: shutdown and
                // terminated connections; 55000: "database is not
                // currently accepting connections".
                return code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "55000";
            }
            // SQLite's extended result code; the low byte is the primary one.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| c & 0xff);
            // BUSY, LOCKED, IOERR, FULL, CANTOPEN
            matches!(primary, Some(5 | 6 | 10 | 13 | 14))
        }
        _ => false,
    }
}

/// A new row id: a UUID whose first 48 bits are the time (v7), so rows
/// arriving together sit next to each other in every index keyed by id. With
/// random ids each intake batch dirtied one page per request in each such
/// index — most of what SQLite wrote to disk. The 74 random bits keep ids
/// unguessable; the creation time they reveal is shown to the customer anyway.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Bound parameters per SQLite statement we allow ourselves (SQLite's own
/// limit is 32 766).
const SQLITE_MAX_PARAMS: usize = 4096;

pub fn backend_of(conn: &Conn) -> Backend {
    if conn.backend_name() == "PostgreSQL" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Serialises work on these addresses (their lookup hashes) across
/// instances until the transaction ends, so that a per-address limit
/// (codes an hour, wrong codes an hour) is one count-and-insert that no
/// other instance interleaves with. PostgreSQL only: SQLite's writes are
/// serialised already. Locks are taken in sorted order (no deadlocks), in the
/// two-key space so they never meet the audit chain's single-key lock.
pub async fn lock_addresses(conn: &mut Conn, hashes: &[&str]) -> sqlx::Result<()> {
    if backend_of(conn) != Backend::Postgres || hashes.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<&str> = hashes.to_vec();
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(7001, hashtext(h)) \
         FROM unnest(string_to_array($1, ',')) WITH ORDINALITY AS k(h, n) ORDER BY n",
    )
    .bind(keys.join(","))
    .execute(conn)
    .await?;
    Ok(())
}

/// Splits rows for multi-row INSERTs of `width` values per row.
///
/// PostgreSQL: while every connection has TCP_NODELAY (see [`nodelay`]),
/// statements are only kept under 1 MiB. Otherwise no statement carries
/// more than about 12 KiB of values: a message that TLS splits into two
/// records (16 KiB each) goes out in two writes, and the second waited
/// ~40 ms for PostgreSQL's delayed ACK (Nagle) — batched intake on
/// PostgreSQL fell to a quarter before this limit.
///
/// SQLite has no wire, so a chunk is only kept under the bound-parameter
/// limit; every extra statement is parsed again, as they are not cached.
fn chunks_by_size<'r, T>(
    conn: &Conn,
    rows: &'r [T],
    width: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&'r [T]> {
    if backend_of(conn) == Backend::Sqlite {
        return rows
            .chunks((SQLITE_MAX_PARAMS / width.max(1)).max(1))
            .collect();
    }
    let budget: usize = if nodelay::all_connections() {
        1024 * 1024
    } else {
        12 * 1024
    };
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let n = size(r) + 64;
        if i > start && bytes + n > budget {
            out.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// One value of a row to insert. Every column we insert in bulk is TEXT or
/// BIGINT on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    Text(Option<&'a str>),
    Int(i64),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Self {
        Cell::Text(Some(s))
    }
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(s: Option<&'a str>) -> Self {
        Cell::Text(s)
    }
}

impl From<i64> for Cell<'_> {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

/// One row of a table that takes bulk INSERTs.
pub trait InsertRow {
    /// `INSERT INTO table (columns…)`
    const INTO: &'static str;
    /// Rough bytes on the wire, for [`chunks_by_size`].
    fn size(&self) -> usize;
    /// The row's values, in the order of the columns in [`Self::INTO`];
    /// every row of a type gives the same kinds of cell.
    fn cells(&self) -> Vec<Cell<'_>>;
}

/// Inserts `rows` with as few statements as the backend allows.
///
/// PostgreSQL gets one array per column and `SELECT … FROM unnest(…)`:
/// one statement text for any number of rows, so it stays prepared — one
/// round trip, and no parsing and planning of a new text for every batch
/// size as a multi-row `VALUES` list needed (intake on PostgreSQL: +12–17 %
/// requests/s in alternating runs). SQLite has no round trips and no
/// arrays: a multi-row `VALUES` list.
pub async fn insert_rows<T: InsertRow>(conn: &mut Conn, rows: &[T]) -> sqlx::Result<()> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let kinds = first.cells();
    let width = kinds.len();
    let postgres = backend_of(conn) == Backend::Postgres;
    for chunk in chunks_by_size(conn, rows, width, T::size) {
        let q = if postgres {
            let sql = format!("{} {}", T::INTO, unnest_select(&kinds));
            pg_arrays(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk, width)
        } else {
            let sql = format!(
                "{} VALUES {}",
                T::INTO,
                vec![format!("({})", params(conn, 1, width)); chunk.len()].join(", ")
            );
            // One statement per batch size would crowd out the rest of
            // sqlx's statement cache.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == 1);
            for r in chunk {
                for c in r.cells() {
                    q = match c {
                        Cell::Text(t) => q.bind(t),
                        Cell::Int(n) => q.bind(n),
                    };
                }
            }
            q
        };
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `SELECT c1, c2, … FROM unnest($1::text[], $2::bigint[], …) WITH
/// ORDINALITY … ORDER BY o` for rows shaped like `kinds`: rows go in in
/// slice order, so serial columns (the audit trail's `seq`) follow it.
fn unnest_select(kinds: &[Cell<'_>]) -> String {
    let arrays = kinds
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Cell::Text(_) => format!("${}::text[]", i + 1),
            Cell::Int(_) => format!("${}::bigint[]", i + 1),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let names = (1..=kinds.len())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS u({names}, o) ORDER BY o")
}

/// Binds one PostgreSQL array literal per column. The Any driver binds no
/// arrays, so each goes as text and the statement casts it.
fn pg_arrays<'q, T: InsertRow>(mut q: AnyQuery<'q>, rows: &[T], width: usize) -> AnyQuery<'q> {
    let mut columns = vec![String::from("{"); width];
    for (r, row) in rows.iter().enumerate() {
        for (col, cell) in columns.iter_mut().zip(row.cells()) {
            if r > 0 {
                col.push(',');
            }
            push_array_element(col, cell);
        }
    }
    for mut col in columns {
        col.push('}');
        q = q.bind(col);
    }
    q
}

/// One element of a PostgreSQL array literal. Text is always quoted, so
/// that no value can read as `NULL` or as a delimiter, with `"` and `\`
/// backslash-escaped; inside quotes everything else stands for itself.
fn push_array_element(out: &mut String, cell: Cell<'_>) {
    match cell {
        Cell::Int(n) => out.push_str(&n.to_string()),
        Cell::Text(None) => out.push_str("NULL"),
        Cell::Text(Some(s)) => {
            out.push('"');
            let mut rest = s;
            while let Some(i) = rest.find(['"', '\\']) {
                out.push_str(&rest[..i]);
                out.push('\\');
                out.push_str(&rest[i..=i]);
                rest = &rest[i + 1..];
            }
            out.push_str(rest);
            out.push('"');
        }
    }
}

/// `$first, $first+1, …` (`n` of them), or `?, ?, …` on SQLite, which
/// looks numbered and named parameters up by a linear scan, both when
/// parsing and when sqlx binds them: a 64-row batch of `$n` spent a quarter
/// of the writer thread's time in `strncmp`.
pub fn params(conn: &Conn, first: usize, n: usize) -> String {
    let numbered = backend_of(conn) == Backend::Postgres;
    (first..first + n)
        .map(|i| {
            if numbered {
                format!("${i}")
            } else {
                "?".to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // FULL: a 202 means the request is on disk, not only in the WAL buffer.
    conn.execute(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; \
         PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
    )
    .await?;
    Ok(())
}

/// The single writer keeps the index pages it appends to in its own 32 MiB
/// cache and reads through mmap instead of a pread per page: intake spent
/// much of its time re-reading pages. Only the writer: on the eight read
/// connections the same settings would multiply, and a mapped file counts
/// in the process's resident memory.
async fn sqlite_writer_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlite_pragmas(conn).await?;
    conn.execute("PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456;")
        .await?;
    Ok(())
}

/// Makes the file (and its folder) if missing, so `demo` works on a fresh
/// clone. Returns the URL to connect with and the file, if any.
fn sqlite_url(url: &str) -> anyhow::Result<(String, Option<std::path::PathBuf>)> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" {
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
    }
    let query = if query.is_empty() {
        "mode=rwc".to_string()
    } else if query.contains("mode=") {
        query.to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    let file = (path != ":memory:" && !query.contains("mode=memory"))
        .then(|| std::path::PathBuf::from(path));
    if let Some(f) = &file {
        create_private(f)?;
    }
    Ok((format!("sqlite://{path}?{query}"), file))
}

/// Creates a missing database file readable by its owner only: it holds
/// every request. SQLite gives its -wal and -shm files the same mode. An
/// existing file keeps the mode its operator chose.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    match crate::crypto::create_private(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
