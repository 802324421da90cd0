use sqlx::FromRow;

use super::{Backend, Conn, Db};

pub struct NewMail<'a> {
    pub id: &'a str,
    pub request_id: Option<&'a str>,
    pub to_addr: &'a str,
    pub template: &'a str,
    /// What the worker renders `template` with at send time (JSON). The
    /// subject and body columns stay empty; they hold mail queued before
    /// migration 0008.
    pub context: &'a str,
    /// A secret (the code) sealed with the outbox key; put into the bodies
    /// only at send time and wiped once the server accepted the mail.
    pub sealed_secret: Option<&'a str>,
    /// Drop the recipient (and the request's address) once delivered.
    pub forget_address: bool,
}

pub async fn insert(conn: &mut Conn, m: &NewMail<'_>, now: i64) -> sqlx::Result<()> {
    insert_many(conn, std::slice::from_ref(m), now).await
}

pub async fn insert_many(conn: &mut Conn, mails: &[NewMail<'_>], now: i64) -> sqlx::Result<()> {
    super::insert_rows(conn, &queued(mails, now)).await
}

/// A mail as queued at `.1` (its first attempt is due at once).
struct Queued<'m, 'a>(&'m NewMail<'a>, i64);

fn queued<'m, 'a>(mails: &'m [NewMail<'a>], now: i64) -> Vec<Queued<'m, 'a>> {
    mails.iter().map(|m| Queued(m, now)).collect()
}

impl super::InsertRow for Queued<'_, '_> {
    const INTO: &'static str =
        "INSERT INTO outbox (id, request_id, to_addr, template, subject, body_text, \
        body_html, context, sealed_secret, status, attempts, created_at, next_attempt_at, \
        forget_address)";
    fn size(&self) -> usize {
        let m = self.0;
        m.context.len() + m.to_addr.len() + 200
    }
    fn cells(&self) -> Vec<super::Cell<'_>> {
        let (m, now) = (self.0, self.1);
        vec![
            m.id.into(),
            m.request_id.into(),
            m.to_addr.into(),
            m.template.into(),
            "".into(),
            "".into(),
            "".into(),
            m.context.into(),
            m.sealed_secret.into(),
            "pending".into(),
            0_i64.into(),
            now.into(),
            now.into(),
            (m.forget_address as i64).into(),
        ]
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: String,
    pub to_addr: Option<String>,
    pub template: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub context: Option<String>,
    pub sealed_secret: Option<String>,
    pub attempts: i64,
}

/// Leases due mails to this worker. The lease (not a held lock) is what
/// keeps two instances from sending the same mail at once, so a worker that
/// dies mid-send only delays the mail until the lease runs out.
pub async fn claim(db: &Db, now: i64, lease_secs: i64, limit: i64) -> sqlx::Result<Vec<Claimed>> {
    let skip_locked = match db.backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET locked_until = $1, attempts = attempts + 1 WHERE id IN ( \
           SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
           AND (locked_until IS NULL OR locked_until <= $2) ORDER BY next_attempt_at LIMIT $3{skip_locked}) \
         RETURNING id, to_addr, template, subject, body_text, body_html, context, sealed_secret, attempts"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now + lease_secs)
        .bind(now)
        .bind(limit)
        .fetch_all(db.write())
        .await
}

pub async fn mark_sent(db: &Db, id: &str, now: i64) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    // The proof of erasure is the last mail to an erased address: after it,
    // neither the outbox nor the request keeps the address.
    sqlx::query(
        "UPDATE requests SET email = '' WHERE id = (SELECT request_id FROM outbox WHERE id = $1 AND forget_address = 1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE outbox SET to_addr = NULL WHERE id <> $1 AND request_id = \
         (SELECT request_id FROM outbox WHERE id = $1 AND forget_address = 1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE outbox SET to_addr = NULL WHERE id = $1 AND forget_address = 1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE outbox SET status = 'sent', sent_at = $1, sealed_secret = NULL, locked_until = NULL, last_error = NULL \
         WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// `error` is a category, never the server's text (which may quote the address).
pub async fn mark_retry(db: &Db, id: &str, next_at: i64, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3")
        .bind(next_at)
        .bind(error)
        .bind(id)
        .execute(db.write())
        .await?;
    Ok(())
}

/// Gives a leased mail back without counting the attempt.
pub async fn release(db: &Db, id: &str, next_at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox SET locked_until = NULL, attempts = attempts - 1, next_attempt_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(next_at)
    .bind(id)
    .execute(db.write())
    .await?;
    Ok(())
}

/// A permanent refusal (e.g. mailbox does not exist): retrying cannot help.
pub async fn mark_failed(db: &Db, id: &str, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET status = 'failed', sealed_secret = NULL, locked_until = NULL, last_error = $1 WHERE id = $2")
        .bind(error)
        .bind(id)
        .execute(db.write())
        .await?;
    Ok(())
}

pub async fn backlog(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
        .fetch_one(db.read())
        .await
}

pub async fn next_due(db: &Db) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
        .fetch_one(db.read())
        .await
}

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct DevMail {
    pub id: i64,
    pub to_addr: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub at: i64,
}

pub async fn dev_deliver(
    db: &Db,
    outbox_id: &str,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO dev_mailbox (outbox_id, to_addr, subject, body_text, body_html, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(outbox_id)
    .bind(to)
    .bind(subject)
    .bind(text)
    .bind(html)
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(())
}

pub async fn dev_list(db: &Db, limit: i64) -> sqlx::Result<Vec<DevMail>> {
    sqlx::query_as("SELECT id, to_addr, subject, body_text, body_html, at FROM dev_mailbox ORDER BY id DESC LIMIT $1")
        .bind(limit)
        .fetch_all(db.read())
        .await
}

pub async fn dev_get(db: &Db, id: i64) -> sqlx::Result<Option<DevMail>> {
    sqlx::query_as(
        "SELECT id, to_addr, subject, body_text, body_html, at FROM dev_mailbox WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.read())
    .await
}
