//! Customers' authenticator apps: enrolled after an emailed-code check, used
//! (with postcode and house number) when the mailbox is lost.

use tera::Context;

use super::{staff_auth, WResult, WorkflowError};
use crate::{
    connector::{AccountRef, KnowledgeClaim},
    domain::{Email, Locale, RequestKind},
    mail,
    store::{self, audit, requests::RequestRow},
    AppState,
};

pub const RECOVERY_CODES: usize = 10;
/// Fallback failures allowed per hour, per address and per client.
pub const FALLBACK_FAILURES_PER_ADDRESS: i64 = 5;
pub const FALLBACK_FAILURES_PER_CLIENT: i64 = 10;

pub async fn account_of(state: &AppState, req: &RequestRow) -> WResult<Option<AccountRef>> {
    match Email::parse(&req.email) {
        Some(e) => Ok(state.connector.find_account(&e).await?),
        None => Ok(None),
    }
}

pub async fn enrolled(state: &AppState, acc: &AccountRef) -> WResult<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM customer_authenticators WHERE account_id = $1")
            .bind(&acc.id)
            .fetch_one(state.db.read())
            .await?;
    Ok(n > 0)
}

pub struct Setup {
    pub secret_b32: String,
    pub qr_data_uri: String,
}

/// A new secret to show as QR code and text; kept by the caller (in the
/// encrypted session) until the first code confirms it.
pub fn new_setup(state: &AppState, label: &str) -> WResult<Setup> {
    let secret_b32 = totp_rs::Secret::generate().to_base32();
    setup_for(state, &secret_b32, label)
}

pub fn setup_for(state: &AppState, secret_b32: &str, label: &str) -> WResult<Setup> {
    let t = staff_auth::totp(state, secret_b32, label)?;
    let url = t.to_url().map_err(|e| anyhow::anyhow!("totp url: {e}"))?;
    let qr = qrcode::QrCode::new(url.as_bytes()).map_err(|e| anyhow::anyhow!("qr: {e}"))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    use base64::Engine;
    Ok(Setup {
        secret_b32: secret_b32.to_string(),
        qr_data_uri: format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        ),
    })
}

fn recovery_hash(state: &AppState, account_id: &str, code: &str) -> String {
    state.keys.token_hash(&format!(
        "customer-recovery:{account_id}:{}",
        staff_auth::normalise_code(code)
    ))
}

async fn notify(
    state: &AppState,
    req: &RequestRow,
    template: &str,
    now: i64,
    conn: &mut store::Conn,
) -> WResult<()> {
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    mail::enqueue(
        conn,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(&req.id),
            to: &req.email,
            locale: req.locale(),
            template,
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    Ok(())
}

/// Confirms the first code and stores the authenticator; returns the
/// recovery codes, shown once.
pub async fn confirm(
    state: &AppState,
    req: &RequestRow,
    secret_b32: &str,
    code: &str,
) -> WResult<Vec<String>> {
    let acc = account_of(state, req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    let t = staff_auth::totp(state, secret_b32, "customer")?;
    let step = staff_auth::totp_step(&t, &staff_auth::normalise_code(code)).ok_or(
        WorkflowError::Invalid {
            field: "code",
            key: "errors.totp_wrong",
        },
    )?;
    let now = store::now();
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| staff_auth::new_recovery_code())
        .collect();
    let mut tx = state.db.begin().await?;
    sqlx::query("DELETE FROM customer_recovery_codes WHERE account_id = $1")
        .bind(&acc.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM customer_authenticators WHERE account_id = $1")
        .bind(&acc.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO customer_authenticators (account_id, secret, last_step, enrolled_at) VALUES ($1, $2, $3, $4)")
        .bind(&acc.id)
        .bind(state.keys.seal(secret_b32))
        .bind(step)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    for c in &codes {
        sqlx::query("INSERT INTO customer_recovery_codes (account_id, code_hash) VALUES ($1, $2)")
            .bind(&acc.id)
            .bind(recovery_hash(state, &acc.id, c))
            .execute(&mut *tx)
            .await?;
    }
    audit::record(
        &mut tx,
        now,
        audit::Event {
            request_id: Some(&req.id),
            actor: "customer",
            action: "authenticator_enrolled",
            from_status: None,
            to_status: None,
            detail: serde_json::json!({}),
        },
    )
    .await?;
    notify(state, req, "authenticator_added", now, &mut tx).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(codes)
}

pub async fn remove(state: &AppState, req: &RequestRow) -> WResult<()> {
    let acc = account_of(state, req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    forget(&mut tx, &acc.id).await?;
    audit::record(
        &mut tx,
        now,
        audit::Event {
            request_id: Some(&req.id),
            actor: "customer",
            action: "authenticator_removed",
            from_status: None,
            to_status: None,
            detail: serde_json::json!({}),
        },
    )
    .await?;
    notify(state, req, "authenticator_removed", now, &mut tx).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(())
}

/// Removes an account's authenticator (also on erasure).
pub async fn forget(conn: &mut store::Conn, account_id: &str) -> sqlx::Result<()> {
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

pub struct FallbackInput<'a> {
    pub email: &'a str,
    pub code: &'a str,
    pub postcode: &'a str,
    pub house_number: &'a str,
    pub new_email: &'a str,
    pub locale: Locale,
    pub client: &'a str,
}

pub enum FallbackOutcome {
    /// Identity proven: a change_email request waiting for the new address's code.
    Verified { id: String, token: String },
    /// Postcode and house number match but no authenticator was ever set up:
    /// support takes it from here, reached through the new address.
    NeedsSupport { id: String },
}

async fn failures(conn: &mut store::Conn, key: &str, since: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM fallback_failures WHERE key_hash = $1 AND at >= $2")
        .bind(key)
        .bind(since)
        .fetch_one(conn)
        .await
}

/// "I can't access my mailbox": old address + authenticator code (or a
/// recovery code) + postcode + house number, all of which must match. A
/// failure says only that the details do not match.
pub async fn fallback(state: &AppState, input: &FallbackInput<'_>) -> WResult<FallbackOutcome> {
    let new = Email::parse(input.new_email).ok_or(WorkflowError::Invalid {
        field: "new_email",
        key: "errors.invalid_email",
    })?;
    let old = Email::parse(input.email).ok_or(WorkflowError::Invalid {
        field: "email",
        key: "errors.invalid_email",
    })?;
    if old == new {
        return Err(WorkflowError::Invalid {
            field: "new_email",
            key: "errors.same_email",
        });
    }
    let now = store::now();
    let address_key = state
        .keys
        .lookup_hash(&format!("fallback-address:{}", old.as_str()));
    let client_key = state
        .keys
        .lookup_hash(&format!("fallback-client:{}", input.client));
    {
        let mut conn = state.db.read().acquire().await?;
        if failures(&mut conn, &address_key, now - 3600).await? >= FALLBACK_FAILURES_PER_ADDRESS
            || failures(&mut conn, &client_key, now - 3600).await? >= FALLBACK_FAILURES_PER_CLIENT
        {
            return Err(WorkflowError::TooManyAttempts {
                retry_after: Some(3600),
            });
        }
    }
    let mismatch = || async {
        let mut tx = state.db.begin().await?;
        for key in [&address_key, &client_key] {
            sqlx::query("INSERT INTO fallback_failures (key_hash, at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Err::<FallbackOutcome, WorkflowError>(WorkflowError::FallbackMismatch)
    };

    // Every check runs whatever the earlier ones said, so the answer's
    // timing does not tell which detail was wrong.
    let acc = state.connector.find_account(&old).await?;
    let acc_id = acc.as_ref().map(|a| a.id.clone()).unwrap_or_default();
    let knowledge = match &acc {
        Some(a) => {
            state
                .connector
                .check_knowledge(
                    a,
                    &KnowledgeClaim {
                        postcode: input.postcode,
                        house_number: input.house_number,
                    },
                )
                .await?
        }
        None => false,
    };
    let stored: Option<(String, i64)> = sqlx::query_as(
        "SELECT secret, last_step FROM customer_authenticators WHERE account_id = $1",
    )
    .bind(&acc_id)
    .fetch_optional(state.db.read())
    .await?;
    let code = staff_auth::normalise_code(input.code);
    let mut totp_step = None;
    let mut recovery = false;
    if let Some((sealed, last_step)) = &stored {
        if let Some(secret) = state.keys.open(sealed) {
            let t = staff_auth::totp(state, &secret, "customer")?;
            // A time step is good once: a code seen over a shoulder cannot be replayed.
            totp_step = staff_auth::totp_step(&t, &code).filter(|s| s > last_step);
        }
        if totp_step.is_none() {
            let hash = recovery_hash(state, &acc_id, &code);
            let used = sqlx::query("UPDATE customer_recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL")
                .bind(now)
                .bind(&acc_id)
                .bind(&hash)
                .execute(state.db.write())
                .await?;
            recovery = used.rows_affected() == 1;
        }
    }
    let second_factor = totp_step.is_some() || recovery;

    if acc.is_some() && knowledge && stored.is_none() {
        // They know the account's details but never set up an authenticator:
        // support must help. The question goes to the new address, which the
        // customer proves with a code like any other request.
        let started = super::intake::start(
            state,
            RequestKind::Question,
            new.as_str(),
            input.locale,
            super::intake::Channel::Portal,
        )
        .await?;
        let mut tx = state.db.begin().await?;
        sqlx::query("UPDATE requests SET data = $1 WHERE id = $2")
            .bind(serde_json::json!({"lost_mailbox": true, "message_hint": "change_email_without_authenticator"}).to_string())
            .bind(&started.id)
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            now,
            audit::Event {
                request_id: Some(&started.id),
                actor: "customer",
                action: "lost_mailbox_without_authenticator",
                from_status: None,
                to_status: None,
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        return Ok(FallbackOutcome::NeedsSupport { id: started.id });
    }
    if !(acc.is_some() && knowledge && second_factor) {
        return mismatch().await;
    }

    // Proven: a change_email request verified by authenticator + knowledge.
    let acc = acc.expect("checked above");
    if let Some(step) = totp_step {
        sqlx::query("UPDATE customer_authenticators SET last_step = $1 WHERE account_id = $2 AND last_step < $1")
            .bind(step)
            .bind(&acc.id)
            .execute(state.db.write())
            .await?;
    }
    let id = super::intake::start_verified(
        state,
        RequestKind::ChangeEmail,
        &old,
        input.locale,
        if recovery { "recovery_code" } else { "totp" },
    )
    .await?;
    super::change_email::submit_new_email(state, &id.0, new.as_str()).await?;
    Ok(FallbackOutcome::Verified {
        id: id.0,
        token: id.1,
    })
}
