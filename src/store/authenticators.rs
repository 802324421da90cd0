//! Customers' authenticator apps (sealed TOTP secret, last used time step),
//! their recovery codes (hashed), and the lost-mailbox attempt counters.

use super::{Conn, Db};

pub async fn enrolled(db: &Db, account_id: &str) -> sqlx::Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM customer_authenticators WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(db.read())
            .await?;
    Ok(n > 0)
}

/// Replaces whatever the account had with a new authenticator whose first
/// code used `step`, and a fresh set of recovery codes.
pub async fn replace(
    conn: &mut Conn,
    account_id: &str,
    sealed_secret: &str,
    step: i64,
    recovery_hashes: &[String],
    now: i64,
) -> sqlx::Result<()> {
    forget(conn, account_id).await?;
    sqlx::query(
        "INSERT INTO customer_authenticators (account_id, secret, last_step, enrolled_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(account_id)
    .bind(sealed_secret)
    .bind(step)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for h in recovery_hashes {
        sqlx::query("INSERT INTO customer_recovery_codes (account_id, code_hash) VALUES ($1, $2)")
            .bind(account_id)
            .bind(h)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Removes an account's authenticator and recovery codes (also on erasure).
pub async fn forget(conn: &mut Conn, account_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM customer_recovery_codes WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM customer_authenticators WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The sealed secret and the last time step used.
pub async fn secret(db: &Db, account_id: &str) -> sqlx::Result<Option<(String, i64)>> {
    sqlx::query_as("SELECT secret, last_step FROM customer_authenticators WHERE account_id = $1")
        .bind(account_id)
        .fetch_optional(db.read())
        .await
}

/// Uses time step `step` once: true for exactly one caller, however many
/// present the same code at the same moment (compare-and-set, row counted).
pub async fn consume_step(db: &Db, account_id: &str, step: i64) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE customer_authenticators SET last_step = $1 WHERE account_id = $2 AND last_step < $1",
    )
    .bind(step)
    .bind(account_id)
    .execute(db.write())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Uses a recovery code once (compare-and-set, row counted).
pub async fn consume_recovery_code(
    db: &Db,
    account_id: &str,
    code_hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE customer_recovery_codes SET used_at = $1 \
         WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(account_id)
    .bind(code_hash)
    .execute(db.write())
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Counts one lost-mailbox attempt under each key and returns, per key, how
/// many there were since `since` including this one. Counting after the
/// insert keeps parallel attempts (also on other instances) within a limit.
pub async fn count_attempt(db: &Db, keys: &[&str], now: i64, since: i64) -> sqlx::Result<Vec<i64>> {
    let mut tx = db.begin().await?;
    for key in keys {
        sqlx::query("INSERT INTO fallback_failures (key_hash, at) VALUES ($1, $2)")
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let mut counts = Vec::with_capacity(keys.len());
    for key in keys {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fallback_failures WHERE key_hash = $1 AND at >= $2",
        )
        .bind(key)
        .bind(since)
        .fetch_one(db.write())
        .await?;
        counts.push(n);
    }
    Ok(counts)
}
