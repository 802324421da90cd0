//! Customers' authenticator apps: enrolled after an emailed-code check, used
//! (with postcode and house number) when the mailbox is lost.

use tera::Context;

use super::{staff_auth, WResult, WorkflowError};
use crate::{
    connector::{AccountRef, KnowledgeClaim},
    domain::{Email, Locale, RequestKind},
    mail,
    store::{self, audit, authenticators, requests::RequestRow},
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
    Ok(authenticators::enrolled(&state.db, &acc.id).await?)
}

pub struct Setup {
    pub secret_b32: String,
    /// The key in groups of four, as people copy it from a screen.
    pub secret_grouped: String,
    /// `otpauth://…`: opens the authenticator app on the phone showing the
    /// page, where a QR code cannot be scanned.
    pub otpauth_url: String,
    pub qr_data_uri: String,
}

/// "ABCD EFGH IJ…"; authenticator apps ignore the spaces.
pub fn grouped(secret_b32: &str) -> String {
    let chars: Vec<char> = secret_b32.trim_end_matches('=').chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
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
        secret_grouped: grouped(secret_b32),
        otpauth_url: url,
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
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| recovery_hash(state, &acc.id, c))
        .collect();
    let mut tx = state.db.begin().await?;
    authenticators::replace(
        &mut tx,
        &acc.id,
        &state.keys.seal(secret_b32),
        step,
        &hashes,
        now,
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
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
        state.keys.audit(),
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
    authenticators::forget(conn, account_id).await
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
    /// Not everything could be confirmed (or no authenticator was ever set
    /// up): a change_email case for support, started at the new address,
    /// which the customer proves with its code. The same answer for every
    /// combination of details, so it tells nothing about the account.
    ForSupport { id: String },
}

/// "I can't access my mailbox": old address + authenticator code (or a
/// recovery code) + postcode + house number. All matching proves the
/// customer at once; anything else becomes a case for support, answered
/// identically, with the knowledge check's result recorded (never the values).
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
    // Every attempt counts, whatever its outcome: the limit then says nothing
    // about which details were right.
    let counts =
        authenticators::count_attempt(&state.db, &[&address_key, &client_key], now, now - 3600)
            .await?;
    if counts.first().copied().unwrap_or(0) > FALLBACK_FAILURES_PER_ADDRESS
        || counts.get(1).copied().unwrap_or(0) > FALLBACK_FAILURES_PER_CLIENT
    {
        return Err(WorkflowError::TooManyAttempts {
            retry_after: Some(3600),
        });
    }

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
    let stored = authenticators::secret(&state.db, &acc_id).await?;
    let code = staff_auth::normalise_code(input.code);
    let mut totp_step = None;
    if let Some((sealed, last_step)) = &stored {
        if let Some(secret) = state.keys.open(sealed) {
            let t = staff_auth::totp(state, &secret, "customer")?;
            totp_step = staff_auth::totp_step(&t, &code).filter(|s| s > last_step);
        }
    }
    // A second factor counts only once it is used up: the time step (or the
    // recovery code) is taken by compare-and-set before anything is started,
    // so one code seen over a shoulder, or sent in parallel, proves once.
    let mut method = None;
    if acc.is_some() && knowledge && stored.is_some() {
        if let Some(step) = totp_step {
            if authenticators::consume_step(&state.db, &acc_id, step).await? {
                method = Some("totp");
            }
        } else if !code.is_empty() {
            let hash = recovery_hash(state, &acc_id, &code);
            if authenticators::consume_recovery_code(&state.db, &acc_id, &hash, now).await? {
                method = Some("recovery_code");
            }
        }
    }

    if let (Some(method), Some(_)) = (method, &acc) {
        let id = super::intake::start_verified(
            state,
            RequestKind::ChangeEmail,
            &old,
            input.locale,
            method,
        )
        .await?;
        super::change_email::submit_new_email(state, &id.0, new.as_str()).await?;
        return Ok(FallbackOutcome::Verified {
            id: id.0,
            token: id.1,
        });
    }

    let facts = super::change_email::LostMailbox {
        old: &old,
        account: acc.as_ref().map(|a| a.id.as_str()),
        knowledge,
        authenticator: match (&stored, totp_step) {
            (None, _) => "none",
            (Some(_), Some(_)) => "code_right",
            (Some(_), None) => "code_wrong",
        },
    };
    let id = super::change_email::start_lost_mailbox(state, &new, input.locale, &facts).await?;
    {
        // The address hears that someone tried, in case it was not its owner.
        // Sent whether or not it has an account, so the work (and the
        // answer's timing) does not depend on it.
        let mut tx = state.db.begin().await?;
        let mut ctx = Context::new();
        ctx.insert("company", &state.settings.company.name);
        ctx.insert("privacy_email", &state.settings.company.privacy_email);
        mail::enqueue(
            &mut tx,
            &state.tera,
            &state.keys,
            mail::Outgoing {
                request_id: Some(&id),
                to: old.as_str(),
                locale: input.locale,
                template: "lost_mailbox_tried",
                ctx,
                secret: None,
                forget_address: false,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        state.mail_notify.notify_one();
    }
    Ok(FallbackOutcome::ForSupport { id })
}
