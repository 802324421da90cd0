//! Warned inactive accounts (`inactivity_notices`) and one-instance job
//! leases (`job_leases`).

use super::{Conn, Db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Notice {
    pub system: String,
    pub account: String,
    pub status: String,
    pub warned_at: i64,
    pub anonymise_at: i64,
    pub checked_at: i64,
    pub request_id: Option<String>,
}

pub async fn get(db: &Db, system: &str, account: &str) -> sqlx::Result<Option<Notice>> {
    sqlx::query_as(
        "SELECT system, account, status, warned_at, anonymise_at, checked_at, request_id \
         FROM inactivity_notices WHERE system = $1 AND account = $2",
    )
    .bind(system)
    .bind(account)
    .fetch_optional(db.write())
    .await
}

/// The warning, once: false when another run warned first.
pub async fn insert_warned(
    conn: &mut Conn,
    system: &str,
    account: &str,
    anonymise_at: i64,
    keep_hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO inactivity_notices (system, account, status, warned_at, anonymise_at, keep_hash, checked_at) \
         VALUES ($1, $2, 'warned', $3, $4, $5, $3) ON CONFLICT (system, account) DO NOTHING",
    )
    .bind(system)
    .bind(account)
    .bind(now)
    .bind(anonymise_at)
    .bind(keep_hash)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves a notice on, compare-and-set on the statuses it may come from.
pub async fn transition(
    conn: &mut Conn,
    system: &str,
    account: &str,
    from: &[&str],
    to: &str,
    now: i64,
    request_id: Option<&str>,
) -> sqlx::Result<bool> {
    let list = from
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ");
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE inactivity_notices SET status = $1, checked_at = $2, request_id = COALESCE($3, request_id) \
         WHERE system = $4 AND account = $5 AND status IN ({list})"
    )))
    .bind(to)
    .bind(now)
    .bind(request_id)
    .bind(system)
    .bind(account)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn by_keep_hash(db: &Db, hash: &str) -> sqlx::Result<Option<Notice>> {
    sqlx::query_as(
        "SELECT system, account, status, warned_at, anonymise_at, checked_at, request_id \
         FROM inactivity_notices WHERE keep_hash = $1",
    )
    .bind(hash)
    .fetch_optional(db.write())
    .await
}

/// Open warnings (warned or blocked) of a system.
pub async fn open(db: &Db, system: &str) -> sqlx::Result<Vec<Notice>> {
    sqlx::query_as(
        "SELECT system, account, status, warned_at, anonymise_at, checked_at, request_id \
         FROM inactivity_notices WHERE system = $1 AND status IN ('warned', 'blocked')",
    )
    .bind(system)
    .fetch_all(db.write())
    .await
}

/// Forgets a notice (the account became active again: a later period of
/// inactivity warns afresh).
pub async fn remove(conn: &mut Conn, system: &str, account: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM inactivity_notices WHERE system = $1 AND account = $2 AND status IN ('warned', 'blocked', 'kept')")
        .bind(system)
        .bind(account)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the named job until `until` unless another holder has it; true
/// when this caller may run it.
pub async fn take_lease(
    db: &Db,
    name: &str,
    holder: &str,
    now: i64,
    until: i64,
) -> sqlx::Result<bool> {
    sqlx::query("INSERT INTO job_leases (name, holder, until) VALUES ($1, '', 0) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .execute(db.write())
        .await?;
    let r =
        sqlx::query("UPDATE job_leases SET holder = $1, until = $2 WHERE name = $3 AND until < $4")
            .bind(holder)
            .bind(until)
            .bind(name)
            .bind(now)
            .execute(db.write())
            .await?;
    Ok(r.rows_affected() == 1)
}
