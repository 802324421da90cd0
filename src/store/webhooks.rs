//! Events out: each receiver's position in the audit trail and the
//! delivery outbox (`webhook_cursors`, `webhook_deliveries`).

use super::{Conn, Db};

/// An audit event as the event feed reads it (no detail beyond what maps
/// to an event type).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedEvent {
    pub seq: i64,
    pub request_id: Option<String>,
    pub at: i64,
    pub action: String,
    pub to_status: Option<String>,
    pub detail: String,
}

pub async fn max_seq(db: &Db) -> sqlx::Result<i64> {
    let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_events")
        .fetch_one(db.write())
        .await?;
    Ok(n.unwrap_or(0))
}

/// A new receiver starts at the present: it hears what happens from now on.
pub async fn cursor(db: &Db, receiver: &str) -> sqlx::Result<i64> {
    let start = max_seq(db).await?;
    sqlx::query(
        "INSERT INTO webhook_cursors (receiver, last_seq) VALUES ($1, $2) ON CONFLICT (receiver) DO NOTHING",
    )
    .bind(receiver)
    .bind(start)
    .execute(db.write())
    .await?;
    sqlx::query_scalar("SELECT last_seq FROM webhook_cursors WHERE receiver = $1")
        .bind(receiver)
        .fetch_one(db.write())
        .await
}

pub async fn events_after(db: &Db, seq: i64, limit: i64) -> sqlx::Result<Vec<FeedEvent>> {
    sqlx::query_as(
        "SELECT seq, request_id, at, action, to_status, detail FROM audit_events \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(db.write())
    .await
}

/// Moves a receiver's position, compare-and-set: of two instances reading
/// the same events, only one queues them.
pub async fn advance(conn: &mut Conn, receiver: &str, from: i64, to: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE webhook_cursors SET last_seq = $1 WHERE receiver = $2 AND last_seq = $3",
    )
    .bind(to)
    .bind(receiver)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn insert(
    conn: &mut Conn,
    id: &str,
    receiver: &str,
    event_type: &str,
    payload: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, receiver, event_type, payload, status, attempts, next_at, \
         lease_until, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, 0, $5)",
    )
    .bind(id)
    .bind(receiver)
    .bind(event_type)
    .bind(payload)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    pub receiver: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
}

pub async fn due(db: &Db, now: i64, limit: i64) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(
        "SELECT id, receiver, event_type, payload, attempts, created_at FROM webhook_deliveries \
         WHERE status = 'pending' AND next_at <= $1 AND lease_until < $1 ORDER BY next_at, created_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.write())
    .await
}

pub async fn lease(db: &Db, id: &str, now: i64, until: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND lease_until < $3",
    )
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn delivered(db: &Db, id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = $1, attempts = attempts + 1, \
         lease_until = 0, last_error = NULL WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(db.write())
    .await?;
    Ok(())
}

/// Another try later, or (`give_up`) kept as `failed` for the operator.
pub async fn retry(
    db: &Db,
    id: &str,
    next_at: i64,
    error: &str,
    give_up: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_at = $2, \
         lease_until = 0, last_error = $3 WHERE id = $4",
    )
    .bind(if give_up { "failed" } else { "pending" })
    .bind(next_at)
    .bind(error)
    .bind(id)
    .execute(db.write())
    .await?;
    Ok(())
}

/// Pending deliveries and the oldest one's age, for `/metrics`.
pub async fn backlog(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        .fetch_one(db.read())
        .await
}

/// Open requests past their deadline not yet noted, oldest first.
pub async fn newly_overdue(db: &Db, now: i64, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM requests WHERE due_at < $1 AND overdue_noted_at IS NULL \
         AND status IN ('verified', 'processing', 'escalated', 'awaiting_new_email') \
         ORDER BY due_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.write())
    .await
}

/// Notes a request as overdue once (compare-and-set across instances).
pub async fn note_overdue(conn: &mut Conn, id: &str, now: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE requests SET overdue_noted_at = $1 WHERE id = $2 AND overdue_noted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
