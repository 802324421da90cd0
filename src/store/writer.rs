//! The intake writer's hold on the write connection, and, on SQLite, how
//! its commits reach the disk.
//!
//! Per-batch timing of the single SQLite writer (batches of ~32 requests,
//! 7.9 ms on average) showed three costs besides the SQL itself:
//!
//! - Giving the connection back to the pool and taking it again, ~1 ms:
//!   sqlx pings every connection on release, on a spawned task. The writer
//!   now keeps it while jobs keep coming (both backends).
//! - The WAL `fdatasync` inside COMMIT. While it holds the connection the
//!   writer commits with `synchronous=NORMAL`, so COMMIT only writes the
//!   WAL, and [`Deferred::flush`] syncs the WAL file while the writer goes
//!   on with the next batch. Nobody hears about a request before a flush
//!   that started after its commit returned, so a 202 still means "on
//!   disk". Other writers never see NORMAL: FULL is put back before the
//!   connection returns to the pool, and a connection whose setting could
//!   not be restored is closed instead.
//! - SQLite's automatic checkpoint, run inside the COMMIT that crosses
//!   1 000 WAL pages: every sixth batch or so waited ~10 ms while pages
//!   were copied into the database file and it was synced. The writer turns
//!   it off while it holds the connection and [`Checkpointer`] copies pages
//!   on a connection of its own. A log copied only in the background never
//!   starts over while writes keep coming, so once it passes
//!   `WAL_RESTART_FRAMES` the writer copies the few pages not yet copied
//!   itself, between two batches, and the next batch starts the log anew.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sqlx::{pool::PoolConnection, Any, Connection, Executor};
use tokio::sync::Notify;

use super::{Backend, Conn, Db};

/// How long the intake writer may keep the write connection while requests
/// keep arriving, before it lets other writers (verification, staff, the
/// mail worker) have a turn. The pool hands out the connection in order of
/// asking.
const HOLD_MAX: Duration = Duration::from_millis(50);

/// WAL pages after which the writer has the log start over (64 MiB with
/// 4 KiB pages). Larger means a rarer pause for it, and a larger file.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// What every other writer expects of the connection: FULL durability and
/// SQLite's own checkpoint threshold. Put back whether or not the intake
/// writer changed the threshold; setting it again is harmless.
const RESTORE: &str = "PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=1000";

/// How the intake writer's commits on a SQLite file are made durable
/// after the fact: committed with `synchronous=NORMAL`, then made durable
/// by [`Deferred::flush`].
#[derive(Clone)]
pub struct Deferred {
    flush: WalFlush,
    checkpointer: Arc<Checkpointer>,
}

impl Deferred {
    /// `None` on PostgreSQL, where COMMIT waits for its flush: there the
    /// same idea (`synchronous_commit=off` for intake, then one
    /// `SELECT txid_current()` per group to flush) was measured and gave
    /// 3 750 requests/s against 3 600-4 100 without it: no gain worth a
    /// second way to commit. Also `None` for an
    /// in-memory SQLite database, which is never durable. Starts the
    /// checkpointer.
    pub fn for_db(db: &Db) -> Option<Deferred> {
        if db.backend != Backend::Sqlite {
            return None;
        }
        let (file, url) = db.sqlite_file.clone()?;
        Some(Deferred {
            flush: WalFlush::new(file),
            checkpointer: Checkpointer::spawn(url),
        })
    }

    /// Makes every commit that returned before this call durable.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let flush = self.flush.clone();
        tokio::task::spawn_blocking(move || flush.flush()).await??;
        Ok(())
    }

    /// Session settings while the intake writer holds the connection.
    fn relaxed(background_checkpoints: bool) -> &'static str {
        if background_checkpoints {
            "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0"
        } else {
            "PRAGMA synchronous=NORMAL"
        }
    }
}

pub struct Writer {
    conn: Option<PoolConnection<Any>>,
    deferred: Option<Deferred>,
    /// The checkpointer copies pages while the writer holds the connection.
    background_checkpoints: bool,
    since: Instant,
}

impl Writer {
    /// Takes the write connection. With `deferred`, commits made through
    /// it are durable only after [`Deferred::flush`].
    pub async fn acquire(db: &Db, deferred: Option<&Deferred>) -> sqlx::Result<Writer> {
        let mut conn = db.write.acquire().await?;
        let deferred = deferred.cloned();
        let background_checkpoints = deferred.as_ref().is_some_and(|d| d.checkpointer.running());
        if deferred.is_some() {
            if let Err(e) = conn
                .execute(Deferred::relaxed(background_checkpoints))
                .await
            {
                conn.close_on_drop();
                return Err(e);
            }
        }
        Ok(Writer {
            conn: Some(conn),
            deferred,
            background_checkpoints,
            since: Instant::now(),
        })
    }

    /// Whether the writer has had the connection long enough.
    pub fn should_yield(&self) -> bool {
        self.since.elapsed() >= HOLD_MAX
    }

    pub fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("writer already released")
    }

    /// After a commit: wakes the checkpointer, and when the log has grown
    /// long, copies what it has not yet copied so the log starts over.
    pub async fn after_commit(&mut self) {
        if !self.background_checkpoints {
            return;
        }
        let Some(ckpt) = self.deferred.as_ref().map(|d| &d.checkpointer) else {
            return;
        };
        if ckpt.frames.load(Ordering::Relaxed) < WAL_RESTART_FRAMES {
            ckpt.wake.notify_one();
            return;
        }
        let conn = self.conn.as_mut().expect("writer already released");
        // Busy (the checkpointer is in a pass): try again after the next
        // batch, when less will be left.
        if let Ok((0, log, done)) =
            sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&mut **conn)
                .await
        {
            if log == done {
                ckpt.frames.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Gives the connection back with the usual durability (and SQLite's
    /// own checkpoints) restored.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if self.deferred.is_some() && conn.execute(RESTORE).await.is_err() {
                conn.close_on_drop();
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped without `release` (a panic, shutdown): the settings were
        // not restored, so the connection must not serve anyone else.
        if let Some(conn) = self.conn.as_mut() {
            if self.deferred.is_some() {
                conn.close_on_drop();
            }
        }
    }
}

/// Copies WAL pages into the database file on its own connection, woken
/// after intake commits; PASSIVE, so it never waits for or blocks a reader
/// or the writer.
pub struct Checkpointer {
    /// Pages in the log at the last pass.
    frames: AtomicI64,
    wake: Notify,
    running: AtomicBool,
}

impl Checkpointer {
    fn spawn(url: String) -> Arc<Checkpointer> {
        let me = Arc::new(Checkpointer {
            frames: AtomicI64::new(0),
            wake: Notify::new(),
            running: AtomicBool::new(false),
        });
        let ckpt = me.clone();
        tokio::spawn(async move {
            let mut conn = match sqlx::AnyConnection::connect(&url).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "checkpointer could not connect; the writer checkpoints");
                    return;
                }
            };
            if let Err(e) = super::sqlite_pragmas(&mut conn).await {
                tracing::warn!(error = %e, "checkpointer setup failed; the writer checkpoints");
                return;
            }
            ckpt.running.store(true, Ordering::Relaxed);
            loop {
                tokio::select! {
                    _ = ckpt.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok((_, log, _)) => ckpt.frames.store(log, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %e, "background checkpoint failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        me
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
}

/// Flushes a SQLite database's WAL file to disk.
#[derive(Clone)]
pub struct WalFlush {
    db_file: PathBuf,
    wal_file: PathBuf,
}

impl WalFlush {
    fn new(db_file: PathBuf) -> WalFlush {
        let mut wal = db_file.clone().into_os_string();
        wal.push("-wal");
        WalFlush {
            db_file,
            wal_file: PathBuf::from(wal),
        }
    }

    /// Makes every commit that returned before this call durable.
    /// `fdatasync` works per file, not per descriptor, so a descriptor of
    /// our own flushes what SQLite's connection wrote. The file is opened
    /// each time so that a WAL that was deleted and made anew is the one
    /// flushed. A missing WAL means the last connection closed, which
    /// copies the log into the database file first; that file is flushed
    /// then, to be sure.
    pub fn flush(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.wal_file) {
            Ok(f) => f.sync_data(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::File::open(&self.db_file)?.sync_data()
            }
            Err(e) => Err(e),
        }
    }
}
