use super::{Conn, Db};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaffRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: i64,
    /// When the current password and authenticator were set: sessions
    /// started before it (before a reset) are no longer valid.
    pub enrolled_at: Option<i64>,
    /// Raised by logout, a login reset and disabling: a session cookie
    /// issued under an older generation is dead.
    pub session_gen: i64,
}

const ROW_COLUMNS: &str = "id, email, role, disabled, enrolled_at, session_gen";

pub async fn insert(
    conn: &mut Conn,
    id: &str,
    email: &str,
    role: &str,
    enrol_token_hash: &str,
    enrol_expires_at: i64,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO staff (id, email, role, enrol_token_hash, enrol_expires_at, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6)",
    )
    .bind(id)
    .bind(email)
    .bind(role)
    .bind(enrol_token_hash)
    .bind(enrol_expires_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn by_email(db: &Db, email: &str) -> sqlx::Result<Option<StaffRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM staff WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(db.read())
    .await
}

pub async fn add_token(
    conn: &mut Conn,
    staff_id: &str,
    token_hash: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO staff_tokens (token_hash, staff_id, created_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(staff_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn by_token(db: &Db, token_hash: &str) -> sqlx::Result<Option<StaffRow>> {
    sqlx::query_as(
        "SELECT s.id, s.email, s.role, s.disabled, s.enrolled_at, s.session_gen \
         FROM staff_tokens t JOIN staff s ON s.id = t.staff_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND s.disabled = 0",
    )
    .bind(token_hash)
    .fetch_optional(db.read())
    .await
}

pub async fn count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM staff")
        .fetch_one(db.read())
        .await
}

// ---------- enrolment and login (issue 7) ----------

/// What login needs to decide; never logged.
#[derive(Clone, sqlx::FromRow)]
pub struct StaffAuth {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: i64,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_last_step: i64,
    pub enrolled_at: Option<i64>,
    pub session_gen: i64,
}

impl StaffAuth {
    pub fn row(&self) -> StaffRow {
        StaffRow {
            id: self.id.clone(),
            email: self.email.clone(),
            role: self.role.clone(),
            disabled: self.disabled,
            enrolled_at: self.enrolled_at,
            session_gen: self.session_gen,
        }
    }
}

const AUTH_COLUMNS: &str =
    "id, email, role, disabled, password_hash, totp_secret, totp_last_step, enrolled_at, session_gen";

pub async fn auth_by_email(db: &Db, email: &str) -> sqlx::Result<Option<StaffAuth>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {AUTH_COLUMNS} FROM staff WHERE email = $1"
    )))
    .bind(email)
    .fetch_optional(db.write())
    .await
}

pub async fn by_id(db: &Db, id: &str) -> sqlx::Result<Option<StaffRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ROW_COLUMNS} FROM staff WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.read())
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Enrolment {
    pub id: String,
    pub email: String,
    pub role: String,
    pub totp_pending: Option<String>,
}

/// A staff member whose enrolment link is still valid and unused.
pub async fn by_enrol_token(
    db: &Db,
    token_hash: &str,
    now: i64,
) -> sqlx::Result<Option<Enrolment>> {
    sqlx::query_as(
        "SELECT id, email, role, totp_pending FROM staff WHERE enrol_token_hash = $1 \
         AND enrol_expires_at > $2 AND enrolled_at IS NULL AND disabled = 0",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.write())
    .await
}

/// Forgets the password, authenticator and recovery codes of an active
/// member, ends their sessions, revokes their API tokens and arms a new
/// enrolment link (a lost phone or password).
pub async fn reset_enrolment(
    conn: &mut Conn,
    id: &str,
    enrol_token_hash: &str,
    enrol_expires_at: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE staff SET password_hash = NULL, totp_secret = NULL, totp_pending = NULL, enrolled_at = NULL, \
         enrol_token_hash = $1, enrol_expires_at = $2, session_gen = session_gen + 1 \
         WHERE id = $3 AND disabled = 0",
    )
    .bind(enrol_token_hash)
    .bind(enrol_expires_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if res.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM staff_recovery_codes WHERE staff_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    revoke_tokens(conn, id).await?;
    Ok(true)
}

pub async fn set_totp_pending(conn: &mut Conn, id: &str, sealed: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE staff SET totp_pending = $1 WHERE id = $2 AND enrolled_at IS NULL")
        .bind(sealed)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Single use: only succeeds while the link is unused.
#[allow(clippy::too_many_arguments)]
pub async fn complete_enrolment(
    conn: &mut Conn,
    id: &str,
    token_hash: &str,
    password_hash: &str,
    totp_sealed: &str,
    step: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE staff SET password_hash = $1, totp_secret = $2, totp_pending = NULL, totp_last_step = $3, \
         enrol_token_hash = NULL, enrol_expires_at = NULL, enrolled_at = $4 \
         WHERE id = $5 AND enrol_token_hash = $6 AND enrolled_at IS NULL",
    )
    .bind(password_hash)
    .bind(totp_sealed)
    .bind(step)
    .bind(now)
    .bind(id)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

pub async fn add_recovery_code(
    conn: &mut Conn,
    staff_id: &str,
    code_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO staff_recovery_codes (staff_id, code_hash) VALUES ($1, $2)")
        .bind(staff_id)
        .bind(code_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Burns a recovery code; false when unknown or already used.
pub async fn use_recovery_code(
    conn: &mut Conn,
    staff_id: &str,
    code_hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE staff_recovery_codes SET used_at = $1 WHERE staff_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(staff_id)
    .bind(code_hash)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Each TOTP time step is usable once: false when this step (or a later
/// one) was used already.
pub async fn use_totp_step(conn: &mut Conn, staff_id: &str, step: i64) -> sqlx::Result<bool> {
    let res =
        sqlx::query("UPDATE staff SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1")
            .bind(step)
            .bind(staff_id)
            .execute(conn)
            .await?;
    Ok(res.rows_affected() == 1)
}

/// Recent login failures for one typed address (known or not).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct LoginFailures {
    pub failures: i64,
    pub last_failed_at: i64,
    pub locked_until: Option<i64>,
}

pub async fn login_failures(db: &Db, key_hash: &str) -> sqlx::Result<Option<LoginFailures>> {
    sqlx::query_as(
        "SELECT failures, last_failed_at, locked_until FROM staff_login_failures WHERE key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(db.read())
    .await
}

/// Counts one more failure for an address (restarting the count when the
/// last one is older than `window_start`) and returns the new state. An
/// attempt while a lock runs tests no password, so it changes nothing. One
/// atomic statement: parallel failures are all counted, and on PostgreSQL
/// the row stays locked until the transaction ends.
pub async fn count_login_failure(
    conn: &mut Conn,
    key_hash: &str,
    now: i64,
    window_start: i64,
) -> sqlx::Result<LoginFailures> {
    sqlx::query_as(
        "INSERT INTO staff_login_failures AS f (key_hash, failures, last_failed_at, locked_until) \
         VALUES ($1, 1, $2, NULL) ON CONFLICT (key_hash) DO UPDATE SET \
         failures = CASE WHEN f.locked_until > $2 THEN f.failures \
                         WHEN f.last_failed_at > $3 THEN f.failures + 1 ELSE 1 END, \
         last_failed_at = CASE WHEN f.locked_until > $2 THEN f.last_failed_at ELSE $2 END \
         RETURNING failures, last_failed_at, locked_until",
    )
    .bind(key_hash)
    .bind(now)
    .bind(window_start)
    .fetch_one(conn)
    .await
}

/// Sets the lock of an address and forgets the addresses with neither a
/// failure since `forget_before` nor a running lock: the same two writes
/// on every failed login, whoever's address it was.
pub async fn set_login_lock(
    conn: &mut Conn,
    key_hash: &str,
    locked_until: Option<i64>,
    now: i64,
    forget_before: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE staff_login_failures SET locked_until = $1 WHERE key_hash = $2")
        .bind(locked_until)
        .bind(key_hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM staff_login_failures WHERE last_failed_at < $1 \
         AND (locked_until IS NULL OR locked_until < $2)",
    )
    .bind(forget_before)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn forget_login_failures(conn: &mut Conn, key_hash: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM staff_login_failures WHERE key_hash = $1")
        .bind(key_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a member: cookies issued before stop working.
pub async fn end_sessions(conn: &mut Conn, staff_id: &str) -> sqlx::Result<bool> {
    let res = sqlx::query("UPDATE staff SET session_gen = session_gen + 1 WHERE id = $1")
        .bind(staff_id)
        .execute(conn)
        .await?;
    Ok(res.rows_affected() == 1)
}

async fn revoke_tokens(conn: &mut Conn, staff_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE staff_tokens SET revoked_at = $1 WHERE staff_id = $2 AND revoked_at IS NULL",
    )
    .bind(super::now())
    .bind(staff_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct MemberRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub disabled: i64,
    pub enrolled_at: Option<i64>,
}

pub async fn list(db: &Db) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as("SELECT id, email, role, disabled, enrolled_at FROM staff ORDER BY email")
        .fetch_all(db.read())
        .await
}

/// Disabling also ends the member's sessions and revokes their API tokens.
pub async fn set_disabled(conn: &mut Conn, id: &str, disabled: bool) -> sqlx::Result<bool> {
    let res = sqlx::query("UPDATE staff SET disabled = $1 WHERE id = $2")
        .bind(disabled as i64)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if disabled {
        end_sessions(conn, id).await?;
        revoke_tokens(conn, id).await?;
    }
    Ok(res.rows_affected() == 1)
}

/// Demo only: sets a known password and TOTP secret, enrolled at once.
pub async fn set_demo_credentials(
    conn: &mut Conn,
    email: &str,
    password_hash: &str,
    totp_sealed: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let res = sqlx::query(
        "UPDATE staff SET password_hash = $1, totp_secret = $2, totp_pending = NULL, totp_last_step = 0, \
         enrol_token_hash = NULL, enrol_expires_at = NULL, enrolled_at = $3, disabled = 0 \
         WHERE email = $4",
    )
    .bind(password_hash)
    .bind(totp_sealed)
    .bind(now)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(res.rows_affected() == 1)
}
