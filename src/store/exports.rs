//! Export jobs and the archives they build, kept in the database so that a
//! restart loses no job and every instance can serve every archive.
//!
//! A job is leased, not locked: the lease token names the worker's attempt,
//! every chunk write and the final hand-over check it, and a lease that runs
//! out (the process died) lets another worker take the job.

use sqlx::FromRow;

use super::{Backend, Conn, Db};

#[derive(Debug, Clone, FromRow)]
pub struct Job {
    pub request_id: String,
    pub account_id: String,
    /// Including this one.
    pub attempts: i64,
    /// The attempt's token; its chunks are stored under it.
    pub lease: String,
}

/// Stores the job; called in the transaction that moves the request to
/// `processing`, so the two cannot part. `false` if it already has one.
pub async fn insert_job(
    conn: &mut Conn,
    request_id: &str,
    account_id: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO export_jobs (request_id, account_id, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, 0, $3, $3) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(request_id)
    .bind(account_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Leases one due job (due, and not leased or its lease ran out) to a new
/// attempt, or `None` when nothing is due.
///
/// PostgreSQL: `FOR UPDATE SKIP LOCKED`, so workers on several instances
/// take different jobs without waiting for each other. SQLite has one
/// writer at a time: a compare-and-set on the lease, whose row count says
/// whether this worker won.
pub async fn claim_job(db: &Db, now: i64, lease_secs: i64) -> sqlx::Result<Option<Job>> {
    let lease = super::new_id();
    match db.backend {
        Backend::Postgres => {
            sqlx::query_as(
                "UPDATE export_jobs SET lease = $1, locked_until = $2, attempts = attempts + 1 \
                 WHERE request_id = (SELECT request_id FROM export_jobs WHERE next_attempt_at <= $3 \
                   AND (locked_until IS NULL OR locked_until <= $3) \
                   ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING request_id, account_id, attempts, lease",
            )
            .bind(&lease)
            .bind(now + lease_secs)
            .bind(now)
            .fetch_optional(db.write())
            .await
        }
        Backend::Sqlite => {
            let due: Vec<String> = sqlx::query_scalar(
                "SELECT request_id FROM export_jobs WHERE next_attempt_at <= $1 \
                 AND (locked_until IS NULL OR locked_until <= $1) ORDER BY next_attempt_at LIMIT 8",
            )
            .bind(now)
            .fetch_all(db.read())
            .await?;
            for request_id in due {
                // Taken only if nobody leased it since we looked.
                let won: Option<Job> = sqlx::query_as(
                    "UPDATE export_jobs SET lease = $1, locked_until = $2, attempts = attempts + 1 \
                     WHERE request_id = $3 AND (locked_until IS NULL OR locked_until <= $4) \
                     RETURNING request_id, account_id, attempts, lease",
                )
                .bind(&lease)
                .bind(now + lease_secs)
                .bind(&request_id)
                .bind(now)
                .fetch_optional(db.write())
                .await?;
                if won.is_some() {
                    return Ok(won);
                }
            }
            Ok(None)
        }
    }
}

/// Extends a lease still held; `false` when another worker has the job now
/// (or it is gone).
pub async fn renew(db: &Db, request_id: &str, lease: &str, until: i64) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE export_jobs SET locked_until = $1 WHERE request_id = $2 AND lease = $3",
    )
    .bind(until)
    .bind(request_id)
    .bind(lease)
    .execute(db.write())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Stores one chunk of the attempt's archive, only while the attempt still
/// holds the job: a worker whose lease was taken over stops writing.
pub async fn write_chunk(
    db: &Db,
    request_id: &str,
    lease: &str,
    seq: i64,
    data: Vec<u8>,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO export_chunks (archive_id, seq, data) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM export_jobs WHERE request_id = $4 AND lease = $1)",
    )
    .bind(lease)
    .bind(seq)
    .bind(data)
    .bind(request_id)
    .execute(db.write())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Ends the job of the attempt holding `lease`; `false` if that attempt no
/// longer holds it (then nothing may follow from this attempt).
pub async fn end_job(conn: &mut Conn, request_id: &str, lease: &str) -> sqlx::Result<bool> {
    let res = sqlx::query("DELETE FROM export_jobs WHERE request_id = $1 AND lease = $2")
        .bind(request_id)
        .bind(lease)
        .execute(conn)
        .await?;
    Ok(res.rows_affected() == 1)
}

/// A failed attempt: the job waits until `next_at`. `error` is a category.
pub async fn retry_later(
    conn: &mut Conn,
    request_id: &str,
    lease: &str,
    next_at: i64,
    error: &str,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE export_jobs SET lease = NULL, locked_until = NULL, next_attempt_at = $1, last_error = $2 \
         WHERE request_id = $3 AND lease = $4",
    )
    .bind(next_at)
    .bind(error)
    .bind(request_id)
    .bind(lease)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Gives a job back untried (shutdown): due at once, the attempt not counted.
pub async fn release(db: &Db, request_id: &str, lease: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE export_jobs SET lease = NULL, locked_until = NULL, attempts = attempts - 1, \
         next_attempt_at = $1 WHERE request_id = $2 AND lease = $3",
    )
    .bind(now)
    .bind(request_id)
    .bind(lease)
    .execute(db.write())
    .await?;
    Ok(())
}

/// Export requests in `processing` with neither a job nor an archive:
/// started before jobs were stored (migration 0012), when the archive was
/// built by a task that a restart lost.
pub async fn unjobbed(db: &Db, limit: i64) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT id, email FROM requests r WHERE kind = 'export' AND status = 'processing' \
         AND NOT EXISTS (SELECT 1 FROM export_jobs j WHERE j.request_id = r.id) \
         AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.request_id = r.id) LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// One archive per export request.
#[derive(Debug, Clone, FromRow)]
pub struct ExportRow {
    pub request_id: String,
    /// `storage = 'database'`: the archive id of its chunks; `'file'`: a
    /// file under `PORTAL_EXPORT_DIR` (archives from before 0012).
    pub file_name: String,
    pub storage: String,
    pub size_bytes: i64,
    pub expires_at: i64,
    pub deleted_at: Option<i64>,
}

impl ExportRow {
    pub fn in_database(&self) -> bool {
        self.storage == "database"
    }
}

/// Records the archive the attempt `archive_id` stored in chunks.
pub async fn insert_archive(
    conn: &mut Conn,
    request_id: &str,
    archive_id: &str,
    size: i64,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO exports (request_id, file_name, storage, size_bytes, created_at, expires_at) \
         VALUES ($1, $2, 'database', $3, $4, $5)",
    )
    .bind(request_id)
    .bind(archive_id)
    .bind(size)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(db: &Db, request_id: &str) -> sqlx::Result<Option<ExportRow>> {
    sqlx::query_as(
        "SELECT request_id, file_name, storage, size_bytes, expires_at, deleted_at FROM exports \
         WHERE request_id = $1",
    )
    .bind(request_id)
    .fetch_optional(db.read())
    .await
}

/// One chunk, `None` past the last.
pub async fn read_chunk(db: &Db, archive_id: &str, seq: i64) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM export_chunks WHERE archive_id = $1 AND seq = $2")
        .bind(archive_id)
        .bind(seq)
        .fetch_optional(db.read())
        .await
}

pub async fn delete_chunks(conn: &mut Conn, archive_id: &str) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM export_chunks WHERE archive_id = $1")
            .bind(archive_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Chunks no archive and no running attempt owns: left by a process that
/// died mid-build, or by an attempt that lost its lease.
pub async fn delete_orphan_chunks(db: &Db) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM export_chunks WHERE archive_id NOT IN \
           (SELECT file_name FROM exports WHERE storage = 'database' AND deleted_at IS NULL) \
         AND archive_id NOT IN (SELECT lease FROM export_jobs WHERE lease IS NOT NULL)",
    )
    .execute(db.write())
    .await?
    .rows_affected())
}

/// Archives whose download has expired and that are not yet deleted.
pub async fn expired(db: &Db, now: i64, limit: i64) -> sqlx::Result<Vec<ExportRow>> {
    sqlx::query_as(
        "SELECT request_id, file_name, storage, size_bytes, expires_at, deleted_at FROM exports \
         WHERE deleted_at IS NULL AND expires_at <= $1 LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// `false` when another run marked it first (only that run audits it).
pub async fn mark_deleted(conn: &mut Conn, request_id: &str, now: i64) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE exports SET deleted_at = $1 WHERE request_id = $2 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// (jobs, of which failed at least once, oldest job's created_at) for the metrics.
pub async fn job_stats(db: &Db) -> sqlx::Result<(i64, i64, Option<i64>)> {
    sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0), \
         MIN(created_at) FROM export_jobs",
    )
    .fetch_one(db.read())
    .await
}
