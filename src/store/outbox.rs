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
    pub created_at: i64,
}

/// Leases due mails to this worker under `token`. The lease (not a held
/// lock) is what keeps two instances from sending the same mail at once, so
/// a worker that dies mid-send only delays the mail until the lease runs
/// out. Every later change of a leased row checks the token.
pub async fn claim(
    db: &Db,
    token: &str,
    now: i64,
    lease_secs: i64,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    let skip_locked = match db.backend {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE outbox SET locked_until = $1, lease_token = $2, attempts = attempts + 1 WHERE id IN ( \
           SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $3 \
           AND (locked_until IS NULL OR locked_until <= $3) ORDER BY next_attempt_at LIMIT $4{skip_locked}) \
         RETURNING id, to_addr, template, subject, body_text, body_html, context, sealed_secret, attempts, created_at"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now + lease_secs)
        .bind(token)
        .bind(now)
        .bind(limit)
        .fetch_all(db.write())
        .await
}

/// Extends a lease right before the send, if it is still ours: false when
/// another worker took the mail over after our lease ran out (it sends it,
/// we must not). The new lease outlasts the bounded send.
pub async fn renew(db: &Db, id: &str, token: &str, until: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET locked_until = $1 WHERE id = $2 AND lease_token = $3 AND status = 'pending'",
    )
    .bind(until)
    .bind(id)
    .bind(token)
    .execute(db.write())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a leased mail sent; false (and nothing changed) when the lease is
/// no longer ours.
pub async fn mark_sent(db: &Db, id: &str, token: &str, now: i64) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE outbox SET status = 'sent', sent_at = $1, sealed_secret = NULL, locked_until = NULL, \
         lease_token = NULL, last_error = NULL WHERE id = $2 AND lease_token = $3 AND status = 'pending'",
    )
    .bind(now)
    .bind(id)
    .bind(token)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
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
    tx.commit().await?;
    Ok(true)
}

/// Defers a leased mail. `error` is a category, never the server's text
/// (which may quote the address).
pub async fn mark_retry(
    db: &Db,
    id: &str,
    token: &str,
    next_at: i64,
    error: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE outbox SET next_attempt_at = $1, locked_until = NULL, lease_token = NULL, last_error = $2 \
         WHERE id = $3 AND lease_token = $4 AND status = 'pending'",
    )
    .bind(next_at)
    .bind(error)
    .bind(id)
    .bind(token)
    .execute(db.write())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a leased mail back without counting the attempt.
pub async fn release(db: &Db, id: &str, token: &str, next_at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox SET locked_until = NULL, lease_token = NULL, attempts = attempts - 1, next_attempt_at = $1 \
         WHERE id = $2 AND lease_token = $3 AND status = 'pending'",
    )
    .bind(next_at)
    .bind(id)
    .bind(token)
    .execute(db.write())
    .await?;
    Ok(())
}

/// How a leased mail ends without being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Retrying cannot help (no or a broken recipient, a lost secret).
    Failed,
    /// A code mail whose code is no longer valid: nothing worth sending.
    Expired,
    /// Refused for good by the server, or retried for too long: kept for
    /// the operator and tried again after a restart and on a slow schedule.
    Held,
}

impl Unsent {
    pub fn as_str(self) -> &'static str {
        match self {
            Unsent::Failed => "failed",
            Unsent::Expired => "expired",
            Unsent::Held => "held",
        }
    }
}

/// Ends a leased mail as `how` with a reason category, and records it in
/// the audit trail of its request: the customer will not hear from us
/// unless someone acts. A held mail keeps its sealed secret so a retry can
/// still send it; the others drop it.
pub async fn mark_unsent(
    db: &Db,
    key: &crate::crypto::AuditKey,
    id: &str,
    token: &str,
    how: Unsent,
    error: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let keep_secret = match how {
        Unsent::Held => "sealed_secret",
        Unsent::Failed | Unsent::Expired => "NULL",
    };
    let sql = format!(
        "UPDATE outbox SET status = $1, sealed_secret = {keep_secret}, locked_until = NULL, lease_token = NULL, \
         last_error = $2 WHERE id = $3 AND lease_token = $4 AND status = 'pending' RETURNING request_id, template"
    );
    let row: Option<(Option<String>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(how.as_str())
        .bind(error)
        .bind(id)
        .bind(token)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((request_id, template)) = row else {
        return Ok(false);
    };
    super::audit::record(
        &mut tx,
        key,
        now,
        super::audit::Event {
            request_id: request_id.as_deref(),
            actor: "mail",
            action: match how {
                Unsent::Failed => "mail_failed",
                Unsent::Expired => "mail_expired",
                Unsent::Held => "mail_held",
            },
            from_status: None,
            to_status: None,
            detail: serde_json::json!({"outbox_id": id, "template": template, "reason": error}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Puts held mail back in the queue (at start, where the configuration may
/// have been fixed, and on a slow schedule). Returns how many.
pub async fn requeue_held(db: &Db, now: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE outbox SET status = 'pending', next_attempt_at = $1, locked_until = NULL, lease_token = NULL \
         WHERE status = 'held'",
    )
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(done.rows_affected())
}

/// The server is back: mail deferred because it could not be reached is
/// due now rather than at the end of its backoff.
pub async fn retry_unreachable_now(db: &Db, now: i64, reasons: &[&str]) -> sqlx::Result<u64> {
    let mut total = 0;
    for reason in reasons {
        let done = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE status = 'pending' AND next_attempt_at > $1 \
             AND last_error = $2",
        )
        .bind(now)
        .bind(*reason)
        .execute(db.write())
        .await?;
        total += done.rows_affected();
    }
    Ok(total)
}

/// (creation time of the oldest queued mail, number of held mails).
pub async fn queue_health(db: &Db) -> sqlx::Result<(Option<i64>, i64)> {
    sqlx::query_as(
        "SELECT MIN(CASE WHEN status = 'pending' THEN created_at END), \
         COUNT(CASE WHEN status = 'held' THEN 1 END) FROM outbox WHERE status IN ('pending', 'held')",
    )
    .fetch_one(db.read())
    .await
}

pub async fn last_sent_at(db: &Db) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MAX(sent_at) FROM outbox WHERE status = 'sent'")
        .fetch_one(db.read())
        .await
}

pub async fn backlog(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
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

/// A queued mail's status (`pending`, `sent`, `failed`, …), or None once purged.
pub async fn status_of(db: &Db, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(db.write())
        .await
}
