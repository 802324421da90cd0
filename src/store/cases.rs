//! The staff queue, case notes and the register (issue 7).

use sqlx::FromRow;

use super::{requests::RequestRow, Conn, Db};
use crate::domain::{RequestKind, Status};

const COLUMNS: &str = "id, kind, locale, email, email_hash, status, channel, received_at, verified_at, \
    paused_seconds, extension_months, due_date, due_at, token_hash, reasons, data, outcome, assignee, \
    closed_at, updated_at";

/// Statuses a human works on; the queue's default.
pub const OPEN: [Status; 2] = [Status::Escalated, Status::Processing];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Anyone,
    Unassigned,
    Staff(String),
}

#[derive(Debug, Clone)]
pub struct CaseFilter {
    pub status: Option<Status>,
    pub kind: Option<RequestKind>,
    pub assignee: Assignee,
    pub overdue_at: Option<i64>,
    /// Look-up by customer address: its keyed hash (any status).
    pub email_hash: Option<String>,
    /// Only cases with open checklist work (other systems), in any status:
    /// an automatic erasure or export completes for the customer while staff
    /// still have systems to clean or add.
    pub open_tasks: bool,
    /// Only cases with a company-system step that is not settled (waiting,
    /// retrying or failed), in any status.
    pub open_steps: bool,
    /// Keyset cursor: (due_at, id) of the last row of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

impl Default for CaseFilter {
    fn default() -> Self {
        CaseFilter {
            status: None,
            kind: None,
            assignee: Assignee::Anyone,
            overdue_at: None,
            email_hash: None,
            open_tasks: false,
            open_steps: false,
            after: None,
            limit: 50,
        }
    }
}

/// Most urgent due date first, so overdue cases lead.
pub async fn queue(db: &Db, f: &CaseFilter) -> sqlx::Result<Vec<RequestRow>> {
    // SQLite's planner, given the statistics of a large table, prefers the
    // counts index (kind, assignee, status, …) for an assignee filter and
    // then sorts every open case (20 000 in the benchmark: 35–90 ms); the
    // due-date indexes read just the first page in order (< 1 ms).
    // PostgreSQL picks them by itself.
    // A case whose systems still owe a step stays in the default queue even
    // when the customer saw it completed (an email change, an objection).
    let default_view =
        f.status.is_none() && f.email_hash.is_none() && !f.open_tasks && !f.open_steps;
    let with_steps = default_view && super::steps::any_unsettled(db).await?;
    let hint = match (
        db.backend,
        f.status,
        &f.email_hash,
        f.kind,
        f.open_tasks || f.open_steps || with_steps,
    ) {
        (super::Backend::Sqlite, None, None, None, false) => " INDEXED BY requests_open_due",
        (super::Backend::Sqlite, None, None, Some(_), false) => " INDEXED BY requests_open_kind",
        _ => "",
    };
    let mut sql = format!("SELECT {COLUMNS} FROM requests{hint} WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    match (f.status, &f.email_hash, f.open_tasks || f.open_steps) {
        (Some(_), _, _) => sql.push_str(&format!(" AND status = {}", next())),
        (None, Some(_), _) | (None, None, true) => {}
        (None, None, false) if with_steps => sql.push_str(&format!(
            " AND (status IN ('escalated', 'processing') OR id IN ({}))",
            super::steps::UNSETTLED_REQUESTS
        )),
        (None, None, false) => sql.push_str(" AND status IN ('escalated', 'processing')"),
    }
    if f.open_steps {
        sql.push_str(&format!(
            " AND id IN ({})",
            super::steps::UNSETTLED_REQUESTS
        ));
    }
    if f.open_tasks {
        sql.push_str(" AND id IN (SELECT request_id FROM staff_tasks WHERE status = 'open')");
    }
    if f.email_hash.is_some() {
        sql.push_str(&format!(" AND email_hash = {}", next()));
    }
    if f.kind.is_some() {
        sql.push_str(&format!(" AND kind = {}", next()));
    }
    match &f.assignee {
        Assignee::Anyone => {}
        Assignee::Unassigned => sql.push_str(" AND assignee IS NULL"),
        Assignee::Staff(_) => sql.push_str(&format!(" AND assignee = {}", next())),
    }
    if f.overdue_at.is_some() {
        sql.push_str(&format!(" AND due_at < {}", next()));
    }
    if f.after.is_some() {
        let (a, b, c) = (next(), next(), next());
        sql.push_str(&format!(
            " AND (due_at > {a} OR (due_at = {b} AND id > {c}))"
        ));
    }
    sql.push_str(&format!(" ORDER BY due_at, id LIMIT {}", next()));
    let mut q = sqlx::query_as::<_, RequestRow>(sqlx::AssertSqlSafe(sql));
    if let Some(s) = f.status {
        q = q.bind(s.as_str());
    }
    if let Some(h) = &f.email_hash {
        q = q.bind(h.clone());
    }
    if let Some(k) = f.kind {
        q = q.bind(k.as_str());
    }
    if let Assignee::Staff(s) = &f.assignee {
        q = q.bind(s.clone());
    }
    if let Some(t) = f.overdue_at {
        q = q.bind(t);
    }
    if let Some((due, id)) = &f.after {
        q = q.bind(*due).bind(*due).bind(id.clone());
    }
    q.bind(f.limit).fetch_all(db.read()).await
}

/// One group of open cases, for the counts beside each filter.
#[derive(Debug, Clone, FromRow)]
pub struct CountRow {
    pub kind: String,
    pub status: String,
    pub assignee: Option<String>,
    pub n: i64,
    /// How many of the `n` are overdue.
    pub overdue: i64,
}

/// Counting 20 000 open cases takes longer than the rest of the queue page,
/// and nobody acts on the exact count of a queue that long: above this many
/// open cases the counts may be a few seconds old. Smaller queues are always
/// counted exactly.
pub const CACHE_COUNTS_FROM: i64 = 1000;
const COUNTS_TTL: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Default)]
struct CachedCounts {
    counts: Option<(std::time::Instant, std::sync::Arc<Vec<CountRow>>)>,
    refreshing: bool,
}

/// Filter counts of a large queue. When they are older than the TTL the
/// page still gets them at once, and one background task counts anew, so
/// no agent waits for the count (stale-while-revalidate).
#[derive(Clone, Default)]
pub struct CountsCache(std::sync::Arc<std::sync::Mutex<CachedCounts>>);

impl CountsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CachedCounts> {
        // The data is a cache: a panic elsewhere cannot leave it unusable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self, counts: &std::sync::Arc<Vec<CountRow>>) {
        let total: i64 = counts.iter().map(|c| c.n).sum();
        let mut c = self.lock();
        c.refreshing = false;
        c.counts =
            (total >= CACHE_COUNTS_FROM).then(|| (std::time::Instant::now(), counts.clone()));
    }
}

pub async fn open_counts_cached(
    db: &Db,
    cache: &CountsCache,
    now: i64,
) -> sqlx::Result<std::sync::Arc<Vec<CountRow>>> {
    {
        let mut c = cache.lock();
        if let Some((at, counts)) = c.counts.clone() {
            if at.elapsed() >= COUNTS_TTL && !c.refreshing {
                c.refreshing = true;
                let (db, cache) = (db.clone(), cache.clone());
                tokio::spawn(async move {
                    match open_counts(&db, now).await {
                        Ok(fresh) => cache.store(&std::sync::Arc::new(fresh)),
                        Err(e) => {
                            tracing::warn!(error = %e, "refreshing the queue counts failed");
                            cache.lock().refreshing = false;
                        }
                    }
                });
            }
            return Ok(counts);
        }
    }
    let counts = std::sync::Arc::new(open_counts(db, now).await?);
    cache.store(&counts);
    Ok(counts)
}

/// Grouped in the order of the `requests_open_counts` index (migration
/// 0007), which covers the query.
pub async fn open_counts(db: &Db, now: i64) -> sqlx::Result<Vec<CountRow>> {
    sqlx::query_as(
        "SELECT kind, assignee, status, COUNT(*) AS n, \
         CAST(SUM(CASE WHEN due_at < $1 THEN 1 ELSE 0 END) AS BIGINT) AS overdue \
         FROM requests WHERE status IN ('escalated', 'processing') GROUP BY kind, assignee, status",
    )
    .bind(now)
    .fetch_all(db.read())
    .await
}

pub async fn set_assignee(
    conn: &mut Conn,
    id: &str,
    assignee: Option<&str>,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE requests SET assignee = $1, updated_at = $2 WHERE id = $3")
        .bind(assignee)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_outcome(conn: &mut Conn, id: &str, outcome: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE requests SET outcome = $1 WHERE id = $2")
        .bind(outcome)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Compare-and-set on `extension_months = 0`: a case is extended once.
pub async fn set_extension(
    conn: &mut Conn,
    id: &str,
    months: i64,
    due_date: &str,
    due_at: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE requests SET extension_months = $1, due_date = $2, due_at = $3, updated_at = $4 \
         WHERE id = $5 AND extension_months = 0",
    )
    .bind(months)
    .bind(due_date)
    .bind(due_at)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct NoteRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub body: String,
}

pub async fn add_note(
    conn: &mut Conn,
    request_id: &str,
    actor: &str,
    kind: &str,
    body: &str,
    now: i64,
) -> sqlx::Result<String> {
    let id = crate::store::new_id();
    sqlx::query(
        "INSERT INTO case_notes (id, request_id, at, actor, kind, body) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(request_id)
    .bind(now)
    .bind(actor)
    .bind(kind)
    .bind(body)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn notes(db: &Db, request_id: &str) -> sqlx::Result<Vec<NoteRow>> {
    sqlx::query_as(
        "SELECT id, at, actor, kind, body FROM case_notes WHERE request_id = $1 ORDER BY at, id",
    )
    .bind(request_id)
    .fetch_all(db.read())
    .await
}

/// How many cases have open checklist work (other systems), and how many
/// of those are past their due date.
pub async fn open_task_counts(db: &Db, now: i64) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.due_at < $1 THEN 1 ELSE 0 END), 0) FROM requests r \
         WHERE r.id IN (SELECT request_id FROM staff_tasks WHERE status = 'open')",
    )
    .bind(now)
    .fetch_one(db.read())
    .await
}

/// What the daily digest lists: references and kinds, never addresses.
#[derive(Debug, Clone, FromRow)]
pub struct DigestRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub due_date: String,
    pub due_at: i64,
    pub received_at: i64,
    pub open_tasks: i64,
}

/// Open work for the digest: cases that need a human, plus any case with
/// open checklist work, most urgent first.
pub async fn digest(db: &Db, limit: i64) -> sqlx::Result<Vec<DigestRow>> {
    sqlx::query_as(
        "SELECT r.id, r.kind, r.status, r.due_date, r.due_at, r.received_at, \
         (SELECT COUNT(*) FROM staff_tasks t WHERE t.request_id = r.id AND t.status = 'open') AS open_tasks \
         FROM requests r WHERE r.status IN ('escalated', 'processing') \
         OR r.id IN (SELECT request_id FROM staff_tasks WHERE status = 'open') \
         ORDER BY r.due_at, r.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// Claims the digest of one day: true for exactly one caller (instance).
pub async fn claim_digest(db: &Db, day: &str, now: i64) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "INSERT INTO digests (day, sent_at) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
    )
    .bind(day)
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// What the register needs of a request: no address, no free text.
#[derive(Debug, Clone, FromRow)]
pub struct RegisterRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub channel: String,
    pub received_at: i64,
    pub paused_seconds: i64,
    pub extension_months: i64,
    pub due_date: String,
    pub due_at: i64,
    pub outcome: Option<String>,
    pub closed_at: Option<i64>,
}

/// Every request a customer actually made: submitted after the identity
/// check (or entered by staff). Requests never verified, or verified and never
/// submitted, were not requests of anyone yet.
pub async fn register(
    db: &Db,
    after: Option<(i64, String)>,
    limit: i64,
) -> sqlx::Result<Vec<RegisterRow>> {
    let (cursor_at, cursor_id) = after.unwrap_or((i64::MIN, String::new()));
    sqlx::query_as(
        "SELECT id, kind, status, channel, received_at, paused_seconds, extension_months, due_date, due_at, \
         outcome, closed_at FROM requests \
         WHERE status NOT IN ('awaiting_verification', 'verified', 'expired') \
         AND (received_at > $1 OR (received_at = $2 AND id > $3)) ORDER BY received_at, id LIMIT $4",
    )
    .bind(cursor_at)
    .bind(cursor_at)
    .bind(cursor_id)
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// Ids whose short reference ("R-1A2B3C4D") matches; at most two.
pub async fn by_reference(db: &Db, prefix8: &str) -> sqlx::Result<Vec<String>> {
    // The last 8 characters of the 36-character id.
    sqlx::query_scalar("SELECT id FROM requests WHERE substr(id, 29, 8) = $1 LIMIT 2")
        .bind(prefix8)
        .fetch_all(db.read())
        .await
}

/// Saves a task's checklist; compare-and-set on the previous JSON so two
/// staff ticking at once cannot lose a tick.
#[allow(clippy::too_many_arguments)]
pub async fn update_task_checklist(
    conn: &mut Conn,
    task_id: &str,
    request_id: &str,
    old_checklist: &str,
    new_checklist: &str,
    done: bool,
    actor: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE staff_tasks SET checklist = $1, status = $2, done_at = $3, done_by = $4 \
         WHERE id = $5 AND request_id = $6 AND checklist = $7",
    )
    .bind(new_checklist)
    .bind(if done { "done" } else { "open" })
    .bind(done.then_some(now))
    .bind(done.then_some(actor))
    .bind(task_id)
    .bind(request_id)
    .bind(old_checklist)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}
