//! Staff accounts: enrolment (password + TOTP + recovery codes) and login.
//!
//! Login answers identically for unknown addresses, wrong passwords, wrong
//! codes and locked accounts, and every path does one argon2 verification
//! so the timing is alike too.

use std::sync::OnceLock;

use argon2::{
    password_hash::{phc::PasswordHash, PasswordHasher, PasswordVerifier},
    Argon2,
};
use secrecy::{ExposeSecret, SecretString};
use totp_rs::{Builder, Secret, Totp};

use super::{WResult, WorkflowError};
use crate::{
    crypto,
    domain::Email,
    store::{self, audit, staff},
    AppState,
};

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const RECOVERY_CODES: usize = 10;
pub const ENROL_TTL_SECS: i64 = 24 * 3600;
/// Sessions end 8 h after login, or after 30 min without a request.
pub const SESSION_ABSOLUTE_SECS: i64 = 8 * 3600;
pub const SESSION_IDLE_SECS: i64 = 30 * 60;
/// At most this many argon2 computations (m = 19 MiB each) at once.
pub const HASH_PERMITS: usize = 2;

/// Concurrent argon2 computations: `HASH_PERMITS`, but always one core
/// fewer than the machine has, so a login storm leaves a core for serving
/// everything else (on 2 cores: 1 at a time, ~25 logins/s).
pub fn hash_permits() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_sub(1).clamp(1, HASH_PERMITS)
}
/// Failures older than this are forgotten.
const FAILURE_WINDOW_SECS: i64 = 3600;

/// The wait imposed after the n-th failure in a row: a growing delay, then
/// a temporary lock.
pub fn lock_secs(failures: i64) -> i64 {
    match failures {
        ..=2 => 0,
        3 => 30,
        4 => 120,
        _ => 15 * 60,
    }
}

/// Whether a staff session that began at `issued` and was last used at
/// `seen` is still valid at `now` (8 h absolute, 30 min idle).
pub fn session_alive(issued: i64, seen: i64, now: i64) -> bool {
    now - issued <= SESSION_ABSOLUTE_SECS && now - seen <= SESSION_IDLE_SECS && seen >= issued
}

pub fn actor(staff_id: &str) -> String {
    format!("staff:{staff_id}")
}

// ---------- password hashing on a bounded blocking pool ----------

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> WResult<T> {
    let _permit = state
        .password_pool
        .acquire()
        .await
        .map_err(|e| anyhow::anyhow!("hash pool closed: {e}"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WorkflowError::Internal(anyhow::anyhow!("hash task failed: {e}")))
}

pub async fn hash_password(state: &AppState, password: SecretString) -> WResult<String> {
    blocking(state, move || {
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
    .map_err(WorkflowError::Internal)
}

/// A hash of a random password, verified against when there is no real one
/// so unknown addresses cost the same time as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(crypto::random_token().as_bytes())
            .map(|h| h.to_string())
            .expect("argon2 hashes a random password")
    })
}

pub async fn verify_password(
    state: &AppState,
    password: SecretString,
    phc: Option<String>,
) -> WResult<bool> {
    blocking(state, move || {
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
        let ok = PasswordHash::new(&phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        real && ok
    })
    .await
}

// ---------- TOTP ----------

pub(crate) fn totp(state: &AppState, secret_b32: &str, account: &str) -> WResult<Totp> {
    let secret = Secret::try_from_base32(secret_b32)
        .map_err(|_| anyhow::anyhow!("stored TOTP secret is not base32"))?;
    let issuer: String = state
        .settings
        .company
        .name
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let account: String = account.chars().filter(|c| *c != ':').collect();
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| WorkflowError::Internal(anyhow::anyhow!("totp: {e}")))
}

/// The time step a 6-digit code belongs to (±1 step of clock skew).
pub(crate) fn totp_step(t: &Totp, code: &str) -> Option<i64> {
    let now = u64::try_from(store::now()).ok()?;
    t.check(code, now).and_then(|s| i64::try_from(s).ok())
}

pub(crate) fn normalise_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_lowercase()
}

fn recovery_hash(state: &AppState, staff_id: &str, code: &str) -> String {
    state
        .keys
        .token_hash(&format!("recovery:{staff_id}:{}", normalise_code(code)))
}

/// 60 random bits as "xxxxx-xxxxx-xxxxx" (hex): typed, not remembered.
pub(crate) fn new_recovery_code() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    let h = hex::encode(b);
    format!("{}-{}-{}", &h[..5], &h[5..10], &h[10..15])
}

// ---------- adding staff ----------

/// Creates a staff member and returns the one-time enrolment link.
pub async fn add(state: &AppState, raw_email: &str, role: &str, by: &str) -> WResult<String> {
    let email = Email::parse(raw_email).ok_or(WorkflowError::Invalid {
        field: "email",
        key: "errors.invalid_email",
    })?;
    if !matches!(role, "agent" | "admin") {
        return Err(WorkflowError::Invalid {
            field: "role",
            key: "staff.errors.invalid_role",
        });
    }
    if staff::by_email(&state.db, email.as_str()).await?.is_some() {
        return Err(WorkflowError::Invalid {
            field: "email",
            key: "staff.errors.staff_exists",
        });
    }
    let token = crypto::random_token();
    let now = store::now();
    let id = uuid::Uuid::new_v4().to_string();
    let mut tx = state.db.begin().await?;
    staff::insert(
        &mut tx,
        &id,
        email.as_str(),
        role,
        &state.keys.token_hash(&token),
        now + ENROL_TTL_SECS,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(
            by,
            "staff_added",
            serde_json::json!({"staff_id": id, "role": role}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(enrol_link(state, &token))
}

fn enrol_link(state: &AppState, token: &str) -> String {
    format!("{}/staff/enrol/{}", state.settings.base_url, token)
}

/// An audit event about staff accounts (no request).
fn staff_event<'a>(actor: &'a str, action: &'a str, detail: serde_json::Value) -> audit::Event<'a> {
    audit::Event {
        request_id: None,
        actor,
        action,
        from_status: None,
        to_status: None,
        detail,
    }
}

/// A member lost their phone or password: the old password, authenticator
/// and recovery codes stop working, their sessions end, their API tokens
/// are revoked (whoever has the phone may have them too), and a new
/// one-time enrolment link (24 h) is returned for the admin to hand over.
pub async fn reset_login(state: &AppState, id: &str, by: &str) -> WResult<String> {
    let token = crypto::random_token();
    let now = store::now();
    let mut tx = state.db.begin().await?;
    if !staff::reset_enrolment(
        &mut tx,
        id,
        &state.keys.token_hash(&token),
        now + ENROL_TTL_SECS,
    )
    .await?
    {
        return Err(WorkflowError::NotFound);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(by, "staff_login_reset", serde_json::json!({"staff_id": id})),
    )
    .await?;
    tx.commit().await?;
    Ok(enrol_link(state, &token))
}

/// Ends every session of the member, this one and any copy of its cookie.
pub async fn logout(state: &AppState, id: &str) -> WResult<()> {
    let now = store::now();
    let mut tx = state.db.begin().await?;
    if !staff::end_sessions(&mut tx, id).await? {
        return Err(WorkflowError::NotFound);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(&actor(id), "staff_logout", serde_json::json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_disabled(state: &AppState, id: &str, disabled: bool, by: &str) -> WResult<()> {
    let now = store::now();
    let mut tx = state.db.begin().await?;
    if !staff::set_disabled(&mut tx, id, disabled).await? {
        return Err(WorkflowError::NotFound);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(
            by,
            if disabled {
                "staff_disabled"
            } else {
                "staff_enabled"
            },
            serde_json::json!({"staff_id": id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Demo mode only: gives the demo staff member a fresh password and TOTP
/// secret so `privacy-portal demo` can print a working login. Returns
/// (password, base32 secret).
pub async fn demo_credentials(state: &AppState, email: &str) -> WResult<(String, String)> {
    if state.settings.mode != crate::config::Mode::Demo {
        return Err(WorkflowError::Forbidden);
    }
    let password = format!("demo-{}", &crypto::random_token()[..16]);
    let secret = Secret::generate().to_base32();
    let phc = hash_password(state, SecretString::from(password.clone())).await?;
    let mut tx = state.db.begin().await?;
    if !staff::set_demo_credentials(
        &mut tx,
        email,
        &phc,
        &state.keys.seal(&secret),
        store::now(),
    )
    .await?
    {
        return Err(WorkflowError::NotFound);
    }
    staff::forget_login_failures(&mut tx, &failure_key(state, email)).await?;
    tx.commit().await?;
    Ok((password, secret))
}

// ---------- enrolment ----------

pub struct EnrolPage {
    pub email: String,
    pub secret_b32: String,
    pub otpauth_url: String,
    /// `data:image/svg+xml;base64,…` — an image, so CSP needs no inline style.
    pub qr_data_uri: String,
}

async fn enrolment(state: &AppState, token: &str) -> WResult<staff::Enrolment> {
    staff::by_enrol_token(&state.db, &state.keys.token_hash(token), store::now())
        .await?
        .ok_or(WorkflowError::Invalid {
            field: "token",
            key: "staff.errors.enrol_link_invalid",
        })
}

/// Shows the TOTP secret to enrol; the same secret until enrolment ends.
pub async fn enrol_start(state: &AppState, token: &str) -> WResult<EnrolPage> {
    let e = enrolment(state, token).await?;
    let secret_b32 = match e.totp_pending.as_deref().and_then(|s| state.keys.open(s)) {
        Some(s) => s,
        None => {
            let s = Secret::generate().to_base32();
            let mut tx = state.db.begin().await?;
            staff::set_totp_pending(&mut tx, &e.id, &state.keys.seal(&s)).await?;
            tx.commit().await?;
            s
        }
    };
    let t = totp(state, &secret_b32, &e.email)?;
    let otpauth_url = t
        .to_url()
        .map_err(|e| WorkflowError::Internal(anyhow::anyhow!("totp url: {e}")))?;
    let qr = qrcode::QrCode::new(otpauth_url.as_bytes())
        .map_err(|e| WorkflowError::Internal(anyhow::anyhow!("qr: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(220, 220)
        .build();
    use base64::Engine;
    let qr_data_uri = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    );
    Ok(EnrolPage {
        email: e.email,
        secret_b32,
        otpauth_url,
        qr_data_uri,
    })
}

/// Sets the password and confirms TOTP with a first code; returns the
/// recovery codes, shown once and stored only hashed.
pub async fn enrol_finish(
    state: &AppState,
    token: &str,
    password: SecretString,
    password_again: SecretString,
    code: &str,
) -> WResult<Vec<String>> {
    let e = enrolment(state, token).await?;
    let chars = password.expose_secret().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WorkflowError::Invalid {
            field: "password",
            key: "staff.errors.password_short",
        });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WorkflowError::Invalid {
            field: "password",
            key: "staff.errors.password_long",
        });
    }
    if !crypto::ct_eq(password.expose_secret(), password_again.expose_secret()) {
        return Err(WorkflowError::Invalid {
            field: "password_again",
            key: "staff.errors.password_mismatch",
        });
    }
    let secret_b32 = e
        .totp_pending
        .as_deref()
        .and_then(|s| state.keys.open(s))
        .ok_or(WorkflowError::Invalid {
            field: "code",
            key: "staff.errors.enrol_restart",
        })?;
    let t = totp(state, &secret_b32, &e.email)?;
    let step = totp_step(&t, &normalise_code(code)).ok_or(WorkflowError::Invalid {
        field: "code",
        key: "staff.errors.totp_wrong",
    })?;
    let phc = hash_password(state, password).await?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let done = staff::complete_enrolment(
        &mut tx,
        &e.id,
        &state.keys.token_hash(token),
        &phc,
        &state.keys.seal(&secret_b32),
        step,
        now,
    )
    .await?;
    if !done {
        return Err(WorkflowError::Invalid {
            field: "token",
            key: "staff.errors.enrol_link_invalid",
        });
    }
    for c in &codes {
        staff::add_recovery_code(&mut tx, &e.id, &recovery_hash(state, &e.id, c)).await?;
    }
    // New credentials: a lock earned by the old ones (or a guesser) ends.
    staff::forget_login_failures(&mut tx, &failure_key(state, &e.email)).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(
            &actor(&e.id),
            "staff_enrolled",
            serde_json::json!({"staff_id": e.id, "recovery_codes": RECOVERY_CODES}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

// ---------- login ----------

/// The key of the failure record of a typed address. Unknown addresses
/// get one too, so a failed login costs the same work whoever's address it
/// was (and the table names no address).
pub fn failure_key(state: &AppState, raw_email: &str) -> String {
    let typed = Email::parse(raw_email)
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|| raw_email.trim().to_lowercase());
    state.keys.lookup_hash(&format!("staff-login:{typed}"))
}

/// Email + password + TOTP code (or a recovery code). Every failure is the
/// same `Unauthorized`, whatever the reason, and does the same work: one
/// argon2 verification, one failure record, one audit event.
pub async fn login(
    state: &AppState,
    raw_email: &str,
    password: SecretString,
    code: &str,
) -> WResult<staff::StaffRow> {
    let now = store::now();
    let key = failure_key(state, raw_email);
    let member = match Email::parse(raw_email) {
        Some(email) => staff::auth_by_email(&state.db, email.as_str()).await?,
        None => None,
    }
    .filter(|m| m.disabled == 0 && m.enrolled_at.is_some() && m.password_hash.is_some());
    let locked = staff::login_failures(&state.db, &key)
        .await?
        .and_then(|f| f.locked_until)
        .is_some_and(|t| t > now);
    // While locked, even the right password fails, with the same work.
    let phc = member
        .as_ref()
        .filter(|_| !locked)
        .and_then(|m| m.password_hash.clone());
    let password_ok = verify_password(state, password, phc).await?;
    let mut tx = state.db.begin().await?;
    let m = match member {
        Some(m) if password_ok && second_factor(state, &mut tx, &m, code, now).await? => m,
        other => {
            let actor = other.map_or_else(|| "anonymous".to_string(), |m| actor(&m.id));
            let (failures, locked_seconds) = count_failure(&mut tx, &key, now).await?;
            audit::record(
                &mut tx,
                state.keys.audit(),
                now,
                staff_event(
                    &actor,
                    "staff_login_failed",
                    serde_json::json!({"failures": failures, "locked_seconds": locked_seconds}),
                ),
            )
            .await?;
            tx.commit().await?;
            return Err(WorkflowError::Unauthorized);
        }
    };
    staff::forget_login_failures(&mut tx, &key).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        staff_event(&actor(&m.id), "staff_login", serde_json::json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(m.row())
}

/// Counts a failed login for `key`; returns the failures in a row and the
/// lock it started (0 when none). A failure while a lock runs leaves the
/// count and the lock as they are: hammering a locked account must not
/// keep its owner out longer.
async fn count_failure(conn: &mut store::Conn, key: &str, now: i64) -> WResult<(i64, i64)> {
    let window_start = now - FAILURE_WINDOW_SECS;
    let f = staff::count_login_failure(conn, key, now, window_start).await?;
    let running = f.locked_until.filter(|t| *t > now);
    let wait = if running.is_some() {
        0
    } else {
        lock_secs(f.failures)
    };
    let locked_until = running.or((wait > 0).then_some(now + wait));
    staff::set_login_lock(conn, key, locked_until, now, window_start).await?;
    Ok((f.failures, wait))
}

async fn second_factor(
    state: &AppState,
    conn: &mut store::Conn,
    m: &staff::StaffAuth,
    raw: &str,
    now: i64,
) -> WResult<bool> {
    let code = normalise_code(raw);
    if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        let Some(secret) = m.totp_secret.as_deref().and_then(|s| state.keys.open(s)) else {
            return Ok(false);
        };
        let t = totp(state, &secret, &m.email)?;
        return match totp_step(&t, &code) {
            Some(step) => Ok(staff::use_totp_step(conn, &m.id, step).await?),
            None => Ok(false),
        };
    }
    if code.is_empty() || code.len() > 32 {
        return Ok(false);
    }
    Ok(staff::use_recovery_code(conn, &m.id, &recovery_hash(state, &m.id, &code), now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_after_8_hours_or_30_idle_minutes() {
        let t0 = 1_000_000;
        assert!(session_alive(t0, t0, t0));
        assert!(session_alive(t0, t0 + 7 * 3600, t0 + 7 * 3600 + 29 * 60));
        assert!(!session_alive(t0, t0 + 3600, t0 + 3600 + 31 * 60), "idle");
        assert!(
            !session_alive(t0, t0 + 8 * 3600, t0 + 8 * 3600 + 1),
            "absolute"
        );
    }

    #[test]
    fn failures_grow_into_a_lock() {
        assert_eq!(lock_secs(1), 0);
        assert_eq!(lock_secs(2), 0);
        assert!(lock_secs(3) > 0 && lock_secs(4) > lock_secs(3));
        assert_eq!(lock_secs(5), 15 * 60);
        assert_eq!(lock_secs(50), 15 * 60);
    }
}
