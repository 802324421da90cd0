use serde::Serialize;

use super::{intake, limits, WResult, WorkflowError};
use crate::{
    crypto,
    domain::{Email, Status},
    store::{self, audit, codes, requests, requests::RequestRow},
    AppState,
};

pub struct Verified {
    /// Bearer token for the JSON API; shown once, stored hashed.
    pub token: String,
}

pub(crate) async fn load(conn: &mut store::Conn, id: &str) -> WResult<RequestRow> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(WorkflowError::NotFound);
    }
    requests::get_for_update(conn, id)
        .await?
        .ok_or(WorkflowError::NotFound)
}

pub(crate) fn clean_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect()
}

/// Outcome of one try at the live code of a request.
pub(crate) enum Attempt {
    /// Right code, now consumed; the transaction stays open for the caller.
    Matched,
    /// Wrong code: recorded in the transaction, which the caller must commit
    /// before answering, so that neither parallel guesses nor an aborted
    /// connection get free attempts.
    Wrong(WorkflowError),
}

/// One try at the request's live code, counted against the code (5 tries)
/// and against the address the code went to (10 wrong tries an hour across
/// all its requests).
pub(crate) async fn attempt(
    state: &AppState,
    tx: &mut store::Conn,
    id: &str,
    email_hash: &str,
    code: &str,
    now: i64,
) -> WResult<Attempt> {
    // Count and record as one step per address, across instances too.
    store::lock_addresses(tx, &[email_hash]).await?;
    let failures = codes::failures_since(tx, email_hash, now - 3600).await?;
    if failures >= limits::FAILURES_PER_ADDRESS_HOUR {
        state.metrics.verification("address_locked");
        return Err(WorkflowError::TooManyAttempts {
            retry_after: Some(3600),
        });
    }
    let (code_id, code_hash, attempts) =
        match codes::reserve_attempt(tx, id, limits::ATTEMPTS_PER_CODE, now).await? {
            codes::Reserve::Attempt {
                code_id,
                code_hash,
                attempts,
            } => (code_id, code_hash, attempts),
            codes::Reserve::Expired => {
                state.metrics.verification("expired");
                return Err(WorkflowError::CodeExpired);
            }
            codes::Reserve::NoCode => {
                state.metrics.verification("no_code");
                return Err(WorkflowError::TooManyAttempts { retry_after: None });
            }
        };
    let given = state.keys.code_hash(id, code);
    if !crypto::ct_eq(&given, &code_hash) {
        codes::record_failure(tx, email_hash, now).await?;
        let left = limits::ATTEMPTS_PER_CODE - attempts;
        if left <= 0 {
            codes::burn(tx, &code_id).await?;
        }
        audit::record(
            tx,
            state.keys.audit(),
            now,
            audit::Event {
                request_id: Some(id),
                actor: "customer",
                action: if left <= 0 {
                    "code_burnt"
                } else {
                    "code_wrong"
                },
                from_status: None,
                to_status: None,
                detail: serde_json::json!({"attempts_left": left}),
            },
        )
        .await?;
        state.metrics.verification("wrong");
        return Ok(Attempt::Wrong(if left <= 0 {
            WorkflowError::TooManyAttempts { retry_after: None }
        } else {
            WorkflowError::InvalidCode {
                attempts_left: left,
            }
        }));
    }
    if !codes::consume(tx, &code_id).await? {
        return Err(WorkflowError::CodeExpired);
    }
    Ok(Attempt::Matched)
}

/// Checks the code that proves the request's address.
pub async fn check_code(state: &AppState, id: &str, raw_code: &str) -> WResult<Verified> {
    let code = clean_code(raw_code);
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = load(&mut tx, id).await?;
    if req.status() != Status::AwaitingVerification {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    if let Attempt::Wrong(e) = attempt(state, &mut tx, id, &req.email_hash, &code, now).await? {
        tx.commit().await?;
        return Err(e);
    }
    requests::set_status(
        &mut tx,
        id,
        Status::AwaitingVerification,
        Status::Verified,
        now,
    )
    .await?;
    // The legal clock stood still while we waited for the customer (EDPB
    // 01/2022 §159): the month runs from the local day of verification, so a
    // code entered a minute after the request does not cost the customer a day.
    // Staff-entered requests (received by phone or letter) pause from the
    // moment the code went out, not from the earlier day of receipt.
    let pause_from = req
        .data()
        .get("entered_at")
        .and_then(|v| v.as_i64())
        .unwrap_or(req.received_at)
        .max(req.received_at);
    let paused = (now - pause_from).max(0);
    // = `now` for portal requests; for staff-entered ones the month runs from
    // the day of receipt plus the time the code was waiting.
    let (due_date, due_at) = intake::month_due(state, req.received_at + paused, 0);
    let token = crypto::random_token();
    requests::set_verified(
        &mut tx,
        id,
        now,
        paused,
        &due_date,
        due_at,
        &state.keys.token_hash(&token),
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),now,
        audit::Event {
            request_id: Some(id),
            actor: "customer",
            action: "verified",
            from_status: Some("awaiting_verification"),
            to_status: Some("verified"),
            detail: serde_json::json!({"method": "email_code", "paused_seconds": paused, "due_date": due_date}),
        },
    )
    .await?;
    // A lost-mailbox case: the new address is now proven; support takes it from here.
    if super::is_lost_mailbox(&req) {
        to_support(&mut tx, state.keys.audit(), &req, now).await?;
    }
    tx.commit().await?;
    state.metrics.verification("ok");
    Ok(Verified { token })
}

async fn to_support(
    tx: &mut store::Conn,
    key: &crate::crypto::AuditKey,
    req: &RequestRow,
    now: i64,
) -> WResult<()> {
    requests::set_status(tx, &req.id, Status::Verified, Status::Escalated, now).await?;
    let mut data = req.data();
    data["proofs"]["new"] = serde_json::json!({"method": "email_code", "at": now});
    requests::set_data(tx, &req.id, &data, &["lost_mailbox"], None).await?;
    audit::record(
        tx,
        key,
        now,
        audit::Event {
            request_id: Some(&req.id),
            actor: "system",
            action: "escalated",
            from_status: Some("verified"),
            to_status: Some("escalated"),
            detail: serde_json::json!({"reason": "lost_mailbox"}),
        },
    )
    .await?;
    Ok(())
}

pub async fn resend(state: &AppState, id: &str) -> WResult<()> {
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = load(&mut tx, id).await?;
    if req.status() != Status::AwaitingVerification {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    if let Some(last) = codes::last_sent_for_request(&mut tx, id).await? {
        let wait = last + limits::RESEND_COOLDOWN_SECS - now;
        if wait > 0 {
            return Err(WorkflowError::ResendTooSoon {
                retry_after: wait as u64,
            });
        }
    }
    store::lock_addresses(&mut tx, &[&req.email_hash]).await?;
    if codes::sent_to_address_since(&mut tx, &req.email_hash, now - 3600).await?
        >= limits::CODES_PER_ADDRESS_HOUR
    {
        return Err(WorkflowError::RateLimited { retry_after: 3600 });
    }
    let email =
        Email::parse(&req.email).ok_or_else(|| anyhow::anyhow!("stored address does not parse"))?;
    intake::issue_code(
        state,
        &mut tx,
        id,
        req.kind(),
        &email,
        &req.email_hash,
        req.locale(),
        now,
        "code",
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(id),
            actor: "customer",
            action: "code_resent",
            from_status: None,
            to_status: None,
            detail: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    state.metrics.codes_sent.inc();
    Ok(())
}

/// How long a closed request's bearer token still shows its outcome.
pub const TOKEN_AFTER_CLOSE_SECS: i64 = 31 * 24 * 3600;

/// The request a bearer token belongs to.
pub async fn authorize_token(state: &AppState, id: &str, token: &str) -> WResult<RequestRow> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(WorkflowError::Unauthorized);
    }
    let req = requests::get(&state.db, id)
        .await?
        .ok_or(WorkflowError::Unauthorized)?;
    match &req.token_hash {
        Some(h) if crypto::ct_eq(h, &state.keys.token_hash(token)) => {}
        _ => return Err(WorkflowError::Unauthorized),
    }
    // A token lives as long as its request: not past its expiry, and for a
    // month after the request closed (to read the outcome).
    let lapsed = req.status() == Status::Expired
        || req
            .closed_at
            .is_some_and(|c| c < store::now() - TOKEN_AFTER_CLOSE_SECS);
    if lapsed {
        return Err(WorkflowError::Unauthorized);
    }
    Ok(req)
}

pub async fn get(state: &AppState, id: &str) -> WResult<RequestRow> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(WorkflowError::NotFound);
    }
    requests::get(&state.db, id)
        .await?
        .ok_or(WorkflowError::NotFound)
}

/// What the customer (API) may see of their request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: String,
    pub reference: String,
    pub kind: String,
    pub status: String,
    pub received_at: String,
    pub due_at: String,
    pub due_date: String,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// export: until when the archive can be downloaded
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_expires_at: Option<String>,
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl From<&RequestRow> for RequestView {
    fn from(r: &RequestRow) -> Self {
        RequestView {
            id: r.id.clone(),
            reference: super::reference(&r.id),
            kind: r.kind.clone(),
            status: r.status.clone(),
            received_at: rfc3339(r.received_at),
            due_at: rfc3339(r.due_at),
            due_date: r.due_date.clone(),
            reasons: r.reasons(),
            outcome: r.outcome.clone(),
            download_expires_at: r
                .data()
                .get("download_expires_at")
                .and_then(|v| v.as_i64())
                .map(rfc3339),
        }
    }
}
