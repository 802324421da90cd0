use sqlx::FromRow;

use super::{Conn, Db};
use crate::domain::{request, RequestKind, Status};

#[derive(Debug, Clone, FromRow)]
pub struct RequestRow {
    pub id: String,
    pub kind: String,
    pub locale: String,
    pub email: String,
    pub email_hash: String,
    pub status: String,
    pub channel: String,
    pub received_at: i64,
    pub verified_at: Option<i64>,
    pub paused_seconds: i64,
    pub extension_months: i64,
    pub due_date: String,
    pub due_at: i64,
    pub token_hash: Option<String>,
    pub reasons: String,
    pub data: String,
    pub outcome: Option<String>,
    pub assignee: Option<String>,
    pub closed_at: Option<i64>,
    pub updated_at: i64,
}

impl RequestRow {
    pub fn status(&self) -> Status {
        Status::parse(&self.status).expect("status column holds known values")
    }
    pub fn kind(&self) -> RequestKind {
        RequestKind::parse(&self.kind).expect("kind column holds known values")
    }
    pub fn locale(&self) -> crate::domain::Locale {
        crate::domain::Locale::parse(&self.locale).unwrap_or(crate::domain::Locale::En)
    }
    pub fn reasons(&self) -> Vec<String> {
        serde_json::from_str(&self.reasons).unwrap_or_default()
    }
    pub fn data(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| serde_json::json!({}))
    }
}

const COLUMNS: &str = "id, kind, locale, email, email_hash, status, channel, received_at, verified_at, \
    paused_seconds, extension_months, due_date, due_at, token_hash, reasons, data, outcome, assignee, \
    closed_at, updated_at";

pub struct NewRequest<'a> {
    pub id: &'a str,
    pub kind: RequestKind,
    pub locale: &'a str,
    pub email: &'a str,
    pub email_hash: &'a str,
    pub channel: &'a str,
    pub received_at: i64,
    pub due_date: &'a str,
    pub due_at: i64,
}

pub async fn insert(conn: &mut Conn, r: &NewRequest<'_>) -> sqlx::Result<()> {
    insert_many(conn, std::slice::from_ref(r)).await
}

/// Many new requests in one statement (the intake writer's batch).
pub async fn insert_many(conn: &mut Conn, rows: &[NewRequest<'_>]) -> sqlx::Result<()> {
    super::insert_rows(conn, rows).await
}

impl super::InsertRow for NewRequest<'_> {
    const INTO: &'static str =
        "INSERT INTO requests (id, kind, locale, email, email_hash, status, channel, \
        received_at, due_date, due_at, updated_at)";
    fn size(&self) -> usize {
        200 + self.email.len()
    }
    fn cells(&self) -> Vec<super::Cell<'_>> {
        vec![
            self.id.into(),
            self.kind.as_str().into(),
            self.locale.into(),
            self.email.into(),
            self.email_hash.into(),
            Status::AwaitingVerification.as_str().into(),
            self.channel.into(),
            self.received_at.into(),
            self.due_date.into(),
            self.due_at.into(),
            self.received_at.into(),
        ]
    }
}

pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM requests WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(db.read())
        .await
}

pub async fn get_for_update(conn: &mut Conn, id: &str) -> sqlx::Result<Option<RequestRow>> {
    let sql = format!("SELECT {COLUMNS} FROM requests WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Illegal(#[from] request::IllegalTransition),
    /// Someone else moved the request first; the caller re-reads and answers
    /// with the current state.
    #[error("the request changed concurrently")]
    Raced,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Compare-and-set status change: refuses illegal transitions and loses
/// gracefully to a concurrent change.
pub async fn set_status(
    conn: &mut Conn,
    id: &str,
    from: Status,
    to: Status,
    now: i64,
) -> Result<(), TransitionError> {
    request::transition(from, to)?;
    let closed = if to.is_final() { Some(now) } else { None };
    let res = sqlx::query(
        "UPDATE requests SET status = $1, updated_at = $2, closed_at = COALESCE($3, closed_at) \
         WHERE id = $4 AND status = $5",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(closed)
    .bind(id)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    if res.rows_affected() == 1 {
        Ok(())
    } else {
        Err(TransitionError::Raced)
    }
}

pub async fn set_verified(
    conn: &mut Conn,
    id: &str,
    verified_at: i64,
    paused_seconds: i64,
    due_date: &str,
    due_at: i64,
    token_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE requests SET verified_at = $1, paused_seconds = $2, due_date = $3, due_at = $4, \
         token_hash = $5 WHERE id = $6",
    )
    .bind(verified_at)
    .bind(paused_seconds)
    .bind(due_date)
    .bind(due_at)
    .bind(token_hash)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_data(
    conn: &mut Conn,
    id: &str,
    data: &serde_json::Value,
    reasons: &[&str],
    outcome: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE requests SET data = $1, reasons = $2, outcome = COALESCE($3, outcome) WHERE id = $4")
        .bind(data.to_string())
        .bind(serde_json::to_string(reasons).expect("strings serialise"))
        .bind(outcome)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Reserves one knowledge-check try (postcode + house number) while the
/// request is in `status`; `None` once `limit` tries are used or the status
/// moved. Reserving before checking keeps parallel submits within the limit.
pub async fn reserve_knowledge_try(
    db: &Db,
    id: &str,
    status: Status,
    limit: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE requests SET knowledge_attempts = knowledge_attempts + 1 \
         WHERE id = $1 AND status = $2 AND knowledge_attempts < $3 RETURNING knowledge_attempts",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(limit)
    .fetch_optional(db.write())
    .await
}

/// Every request made for one address (by its keyed hash), newest first;
/// the hash stays after an erasure, so the history can still be found.
pub async fn by_email_hash(db: &Db, email_hash: &str, limit: i64) -> sqlx::Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE email_hash = $1 ORDER BY received_at DESC, id LIMIT $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(email_hash)
        .bind(limit)
        .fetch_all(db.read())
        .await
}

/// Requests still waiting for their code whose last code went out before
/// `older_than`. The clock runs from the code, not from the day of receipt,
/// which staff may have entered in the past.
pub async fn stale_unverified(db: &Db, older_than: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT r.id FROM requests r WHERE r.status = 'awaiting_verification' \
         AND COALESCE((SELECT MAX(c.created_at) FROM verification_codes c WHERE c.request_id = r.id), \
         r.updated_at) < $1 ORDER BY r.received_at LIMIT $2",
    )
    .bind(older_than)
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// Requests still waiting for their code whose live code went out before
/// `sent_before` and has not expired at `now`, not yet reminded.
pub async fn due_for_reminder(
    db: &Db,
    sent_before: i64,
    now: i64,
    limit: i64,
) -> sqlx::Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests r WHERE r.status = 'awaiting_verification' \
         AND r.reminded_at IS NULL AND EXISTS (SELECT 1 FROM verification_codes c \
         WHERE c.request_id = r.id AND c.state = 'active' AND c.created_at <= $1 \
         AND c.expires_at > $2) ORDER BY r.received_at LIMIT $3"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sent_before)
        .bind(now)
        .bind(limit)
        .fetch_all(db.read())
        .await
}

/// Claims the one reminder of a request: true for exactly one caller.
pub async fn claim_reminder(conn: &mut Conn, id: &str, now: i64) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE requests SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL \
         AND status = 'awaiting_verification'",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Verified requests the customer never submitted (or whose new address was
/// never confirmed), verified before `verified_before`.
pub async fn unsubmitted(
    db: &Db,
    verified_before: i64,
    limit: i64,
) -> sqlx::Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE status IN ('verified', 'awaiting_new_email') \
         AND verified_at < $1 ORDER BY verified_at LIMIT $2"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(verified_before)
        .bind(limit)
        .fetch_all(db.read())
        .await
}

pub async fn purgeable(db: &Db, closed_before: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT r.id FROM requests r WHERE r.closed_at IS NOT NULL AND r.closed_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM staff_tasks t WHERE t.request_id = r.id AND t.status = 'open') \
         ORDER BY r.closed_at LIMIT $2",
    )
    .bind(closed_before)
    .bind(limit)
    .fetch_all(db.read())
    .await
}

/// After an erasure the person's data must not live on in the portal's own
/// records: their other closed requests keep dates, kind and outcome (the
/// register needs those) but lose the address, the data (texts, other
/// addresses), staff notes and the content of mail already sent; the erased
/// request's own sent mail is emptied too. Returns how many requests were redacted.
pub async fn redact_after_erasure(
    conn: &mut Conn,
    email_hash: &str,
    erased_request: &str,
) -> sqlx::Result<u64> {
    let others: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM requests WHERE email_hash = $1 AND id <> $2 AND closed_at IS NOT NULL",
    )
    .bind(email_hash)
    .bind(erased_request)
    .fetch_all(&mut *conn)
    .await?;
    for id in &others {
        sqlx::query("UPDATE requests SET email = '', data = '{}' WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM case_notes WHERE request_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    for id in others.iter().map(String::as_str).chain([erased_request]) {
        sqlx::query(
            "UPDATE outbox SET to_addr = NULL, subject = '', body_text = '', body_html = '', \
             context = NULL, sealed_secret = NULL WHERE request_id = $1 AND status NOT IN ('pending', 'held')",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(others.len() as u64)
}

/// Removes a request with its codes and mail; false when it was already
/// gone (another instance purged it first).
pub async fn delete(conn: &mut Conn, id: &str) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM verification_codes WHERE request_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM outbox WHERE request_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let res = sqlx::query("DELETE FROM requests WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(res.rows_affected() == 1)
}
