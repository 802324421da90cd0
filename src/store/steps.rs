//! Per-system steps of a request (`connector_steps`) and the keyed hashes
//! of erased subjects (`erased_subjects`).

use serde::Serialize;

use super::{Conn, Db};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waits for the primary system's erasure before it may run.
    Waiting,
    Pending,
    /// The system answered 202; its progress is asked for again.
    Polling,
    Done,
    /// The system does not support the operation or holds nothing.
    Skipped,
    /// Needs staff: retrying on its own would not help.
    Failed,
    /// Marked done by staff, with a reason.
    Manual,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Waiting => "waiting",
            StepStatus::Pending => "pending",
            StepStatus::Polling => "polling",
            StepStatus::Done => "done",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        Some(match s {
            "waiting" => StepStatus::Waiting,
            "pending" => StepStatus::Pending,
            "polling" => StepStatus::Polling,
            "done" => StepStatus::Done,
            "skipped" => StepStatus::Skipped,
            "failed" => StepStatus::Failed,
            "manual" => StepStatus::Manual,
            _ => return None,
        })
    }

    /// Nothing more will happen without staff or was needed.
    pub fn settled(self) -> bool {
        matches!(
            self,
            StepStatus::Done | StepStatus::Skipped | StepStatus::Manual
        )
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub id: String,
    pub request_id: String,
    pub system: String,
    pub operation: String,
    status: String,
    pub attempts: i64,
    pub next_at: i64,
    pub error: Option<String>,
    pub params: Option<String>,
    pub result: Option<String>,
    pub account: Option<String>,
    pub done_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl StepRow {
    pub fn status(&self) -> StepStatus {
        // Written only through `StepStatus::as_str`; an unknown value is a
        // step nobody may touch without staff.
        StepStatus::parse(&self.status).unwrap_or(StepStatus::Failed)
    }

    pub fn params(&self) -> serde_json::Value {
        self.params
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn result(&self) -> serde_json::Value {
        self.result
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

const COLUMNS: &str = "id, request_id, system, operation, status, attempts, next_at, error, \
                       params, result, account, done_by, created_at, updated_at";

pub struct NewStep<'a> {
    pub request_id: &'a str,
    pub system: &'a str,
    pub operation: &'a str,
    pub status: StepStatus,
    pub params: serde_json::Value,
    pub account: Option<&'a str>,
}

/// Inserts a step unless that system already has one for this request and
/// operation (a repeated start must not run a step twice).
pub async fn insert(conn: &mut Conn, s: &NewStep<'_>, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO connector_steps (id, request_id, system, operation, status, attempts, next_at, \
         lease_until, params, account, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, $8, $6, $6) \
         ON CONFLICT (request_id, system, operation) DO NOTHING",
    )
    .bind(super::new_id())
    .bind(s.request_id)
    .bind(s.system)
    .bind(s.operation)
    .bind(s.status.as_str())
    .bind(now)
    .bind(s.params.to_string())
    .bind(s.account)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn for_request(db: &Db, request_id: &str) -> sqlx::Result<Vec<StepRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM connector_steps WHERE request_id = $1 ORDER BY created_at, system, operation"
    )))
    .bind(request_id)
    .fetch_all(db.write())
    .await
}

pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<StepRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM connector_steps WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.write())
    .await
}

/// Steps whose time has come, oldest first.
pub async fn due(db: &Db, now: i64, limit: i64) -> sqlx::Result<Vec<StepRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM connector_steps \
         WHERE status IN ('pending', 'polling') AND next_at <= $1 AND lease_until < $1 \
         ORDER BY next_at LIMIT $2"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(db.write())
    .await
}

/// Takes a step for one run; false when another worker (or instance) has
/// it, or it is no longer due.
pub async fn lease(db: &Db, id: &str, now: i64, until: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE connector_steps SET lease_until = $1 \
         WHERE id = $2 AND lease_until < $3 AND status IN ('pending', 'polling')",
    )
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// What a run (or staff) made of a step.
pub struct Outcome<'a> {
    pub status: StepStatus,
    pub attempts: i64,
    pub next_at: i64,
    pub error: Option<&'a str>,
    pub result: Option<&'a serde_json::Value>,
    pub account: Option<&'a str>,
    pub done_by: Option<&'a str>,
}

/// Saves an outcome, compare-and-set on the status the caller saw, and
/// drops the call's parameters (the address) once the step is settled.
pub async fn save(
    conn: &mut Conn,
    id: &str,
    seen: StepStatus,
    o: &Outcome<'_>,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE connector_steps SET status = $1, attempts = $2, next_at = $3, error = $4, \
         result = COALESCE($5, result), account = COALESCE($6, account), done_by = COALESCE($7, done_by), \
         params = CASE WHEN $8 THEN NULL ELSE params END, lease_until = 0, updated_at = $9 \
         WHERE id = $10 AND status = $11",
    )
    .bind(o.status.as_str())
    .bind(o.attempts)
    .bind(o.next_at)
    .bind(o.error)
    .bind(o.result.map(|v| v.to_string()))
    .bind(o.account)
    .bind(o.done_by)
    .bind(o.status.settled())
    .bind(now)
    .bind(id)
    .bind(seen.as_str())
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The primary erased: the other systems' erasure steps may run.
pub async fn release_waiting(conn: &mut Conn, request_id: &str, now: i64) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE connector_steps SET status = 'pending', next_at = $1, updated_at = $1 \
         WHERE request_id = $2 AND status = 'waiting'",
    )
    .bind(now)
    .bind(request_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Removes an operation's steps that never ran (the erasure went to staff
/// because of a blocker; it starts afresh when staff execute it).
pub async fn remove_unsettled(
    conn: &mut Conn,
    request_id: &str,
    operation: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM connector_steps WHERE request_id = $1 AND operation = $2 \
         AND status IN ('waiting', 'pending')",
    )
    .bind(request_id)
    .bind(operation)
    .execute(conn)
    .await?;
    Ok(())
}

/// A sub-select of the requests with a step that is not settled (waiting,
/// retrying or failed), for the queue's filters.
pub const UNSETTLED_REQUESTS: &str = "SELECT request_id FROM connector_steps \
     WHERE status IN ('waiting', 'pending', 'polling', 'failed')";

pub async fn any_unsettled(db: &Db) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM connector_steps \
         WHERE status IN ('waiting', 'pending', 'polling', 'failed') LIMIT 1) t",
    )
    .fetch_one(db.read())
    .await?;
    Ok(n > 0)
}

/// Cases with a step that is not settled, and how many of those have a
/// failed step (staff must act).
pub async fn unsettled_counts(db: &Db) -> sqlx::Result<(i64, i64)> {
    let row: (i64, i64) = sqlx::query_as(
        "SELECT COUNT(DISTINCT request_id), \
         COUNT(DISTINCT CASE WHEN status = 'failed' THEN request_id END) \
         FROM connector_steps WHERE status IN ('waiting', 'pending', 'polling', 'failed')",
    )
    .fetch_one(db.read())
    .await?;
    Ok(row)
}

/// Forgets the steps of purged requests.
pub async fn purge_orphans(conn: &mut Conn) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "DELETE FROM connector_steps WHERE NOT EXISTS \
         (SELECT 1 FROM requests r WHERE r.id = connector_steps.request_id)",
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

pub async fn record_erased(
    conn: &mut Conn,
    hash: &str,
    system: &str,
    request_id: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO erased_subjects (hash, system, request_id, erased_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (hash) DO NOTHING",
    )
    .bind(hash)
    .bind(system)
    .bind(request_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn is_erased(db: &Db, hash: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM erased_subjects WHERE hash = $1")
        .bind(hash)
        .fetch_one(db.read())
        .await?;
    Ok(n > 0)
}

/// For `/metrics`: steps not settled, steps failed for staff, and when the
/// oldest step that is failing (failed, or retrying after an error) began.
pub async fn gauges(db: &Db) -> sqlx::Result<(i64, i64, Option<i64>)> {
    sqlx::query_as(
        "SELECT \
           COUNT(CASE WHEN status IN ('waiting', 'pending', 'polling', 'failed') THEN 1 END), \
           COUNT(CASE WHEN status = 'failed' THEN 1 END), \
           MIN(CASE WHEN status = 'failed' OR (status IN ('pending', 'polling') AND error IS NOT NULL) \
               THEN created_at END) \
         FROM connector_steps",
    )
    .fetch_one(db.read())
    .await
}

/// Gives a step back after a run that failed half-way (a database error
/// after the call), so it is tried again at once instead of after the lease.
pub async fn release(db: &Db, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE connector_steps SET lease_until = 0 WHERE id = $1")
        .bind(id)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Deletions still processing whose every erasure step is settled: their
/// completion did not happen (it failed, or the instance stopped), so the
/// runner completes them.
pub async fn settled_erasures(db: &Db, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT r.id FROM requests r WHERE r.status = 'processing' AND r.kind = 'delete' \
         AND EXISTS (SELECT 1 FROM connector_steps s WHERE s.request_id = r.id AND s.operation = 'erase') \
         AND NOT EXISTS (SELECT 1 FROM connector_steps s WHERE s.request_id = r.id \
             AND s.operation = 'erase' AND s.status NOT IN ('done', 'skipped', 'manual')) \
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.write())
    .await
}
