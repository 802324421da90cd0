//! What each of the company's systems does for a request, one step per
//! system and operation (`connector_steps`): planned in the transaction
//! that moves the request, run at once, and retried with backoff by the
//! background runner until done or handed to staff. A system that stays
//! down holds only its own step; the case shows what waits.
//!
//! Erasure runs the primary first (its blockers, then its erasure), then
//! every other system; the request completes, and the proof mail goes out,
//! when every step is settled. Email changes and objections reach the
//! secondary systems after the primary has answered the customer.

use chrono::Utc;
use serde_json::{json, Value};

pub use crate::store::steps::StepStatus;

use super::{event, WResult};
use crate::{
    connector::{
        http::{CallError, Subject},
        AccountRef, EraseOutcome, SecondaryKind,
    },
    domain::{Locale, RequestKind, Status},
    store::{
        self, audit,
        steps::{self, NewStep, Outcome, StepRow},
    },
    AppState,
};

pub const ERASE: &str = "erase";
pub const CHANGE_EMAIL: &str = "change_email";
pub const STOP: &str = "stop";

/// A step runs at most this long before another worker may take it.
const LEASE_SECS: i64 = 120;

/// Plans an erasure on every system: the primary's step (with the blocker
/// check when it has not been made yet) and the others waiting for it.
pub(crate) async fn plan_erasure(
    state: &AppState,
    tx: &mut store::Conn,
    request_id: &str,
    email: &str,
    acc: &AccountRef,
    check_blockers: bool,
    now: i64,
) -> WResult<()> {
    let sys = &state.systems;
    steps::insert(
        tx,
        &NewStep {
            request_id,
            system: &sys.primary_id,
            operation: ERASE,
            status: StepStatus::Pending,
            params: json!({"email": email, "check_blockers": check_blockers}),
            account: Some(&acc.id),
        },
        now,
    )
    .await?;
    for s in &sys.secondaries {
        steps::insert(
            tx,
            &NewStep {
                request_id,
                system: &s.id,
                operation: ERASE,
                status: StepStatus::Waiting,
                params: json!({"email": email}),
                account: None,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Plans an email change on the secondary systems (the primary changed
/// the login already, while the customer waited).
pub(crate) async fn plan_email_change(
    state: &AppState,
    tx: &mut store::Conn,
    request_id: &str,
    old: &str,
    new: &str,
    now: i64,
) -> WResult<usize> {
    let mut n = 0;
    for s in &state.systems.secondaries {
        if let SecondaryKind::Http(_) = s.kind {
            steps::insert(
                tx,
                &NewStep {
                    request_id,
                    system: &s.id,
                    operation: CHANGE_EMAIL,
                    status: StepStatus::Pending,
                    params: json!({"email": old, "new_email": new}),
                    account: None,
                },
                now,
            )
            .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Plans a stop of processing on every secondary system that declares one
/// of the consent keys.
pub(crate) async fn plan_stop(
    state: &AppState,
    tx: &mut store::Conn,
    request_id: &str,
    email: &str,
    keys: &[String],
    now: i64,
) -> WResult<usize> {
    let mut n = 0;
    for s in &state.systems.secondaries {
        let mine: Vec<&String> = keys.iter().filter(|k| s.consent_keys.contains(k)).collect();
        if mine.is_empty() {
            continue;
        }
        steps::insert(
            tx,
            &NewStep {
                request_id,
                system: &s.id,
                operation: STOP,
                status: StepStatus::Pending,
                params: json!({"email": email, "keys": mine}),
                account: None,
            },
            now,
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// Runs a request's due steps now (after planning them, or after staff
/// asked for a retry), so a customer whose systems answer at once sees the
/// result at once.
pub async fn run_request(state: &AppState, request_id: &str) -> anyhow::Result<()> {
    // Each settled primary erasure releases the others: run until nothing
    // more became due. A step the background runner holds right now is
    // waited for a few seconds, so whoever waits (a customer, a staff
    // member) sees the outcome rather than "processing" by a hair.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut rounds = 0;
    loop {
        let now = store::now();
        let due: Vec<StepRow> = steps::for_request(&state.db, request_id)
            .await?
            .into_iter()
            .filter(|s| {
                matches!(s.status(), StepStatus::Pending | StepStatus::Polling) && s.next_at <= now
            })
            .collect();
        if due.is_empty() {
            break;
        }
        let (mut ran, mut held) = (false, false);
        for s in due {
            if run_step(state, s).await? {
                ran = true;
            } else {
                held = true;
            }
        }
        rounds += 1;
        if ran && rounds <= state.systems.secondaries.len() + 2 {
            continue;
        }
        if held && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        break;
    }
    // The runner that finished the last step may still be completing it.
    finish_erasure_if_settled(state, request_id).await
}

/// The background runner's round: every due step of every request, then
/// any deletion whose steps are all settled but which did not complete.
pub async fn run_due(state: &AppState) -> anyhow::Result<usize> {
    let now = store::now();
    let due = steps::due(&state.db, now, 50).await?;
    let mut n = 0;
    for s in due {
        if run_step(state, s).await? {
            n += 1;
        }
    }
    for id in steps::settled_erasures(&state.db, 20).await? {
        finish_erasure_if_settled(state, &id).await?;
    }
    Ok(n)
}

enum Done {
    /// The step finished; the value is what the system answered.
    Finished(Value),
    Skipped(&'static str),
    /// Ask again later (202 pending, or an instruction mail not yet sent).
    Polling(Value),
    /// The primary found blockers: the request goes to staff.
    Blocked(Vec<crate::domain::blockers::Blocker>),
}

/// Runs one step once; false when another worker had it.
async fn run_step(state: &AppState, step: StepRow) -> anyhow::Result<bool> {
    let now = store::now();
    if !steps::lease(&state.db, &step.id, now, now + LEASE_SECS).await? {
        return Ok(false);
    }
    let id = step.id.clone();
    let r = run_leased(state, step).await;
    if r.is_err() {
        // Tried again at the next round, not after the lease.
        let _ = steps::release(&state.db, &id).await;
    }
    r
}

async fn run_leased(state: &AppState, step: StepRow) -> anyhow::Result<bool> {
    let seen = step.status();
    let outcome = attempt(state, &step).await;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let (status, result, error, next_at) = match outcome {
        Ok(Done::Finished(v)) => (StepStatus::Done, Some(v), None, now),
        Ok(Done::Skipped(why)) => (StepStatus::Skipped, None, Some(why.to_string()), now),
        // A 202 erasure (or a queued instruction mail) is asked about again
        // after the first retry interval.
        Ok(Done::Polling(v)) => (StepStatus::Polling, Some(v), None, now + backoff(state, 0)),
        Ok(Done::Blocked(blockers)) => {
            steps::remove_unsettled(&mut tx, &step.request_id, ERASE).await?;
            tx.commit().await?;
            super::delete::escalate_blocked(state, &step.request_id, &blockers).await?;
            return Ok(true);
        }
        Err(e) if e.retryable() => {
            let wait = backoff(state, step.attempts);
            (StepStatus::Pending, None, Some(e.to_string()), now + wait)
        }
        Err(e) => (StepStatus::Failed, None, Some(e.to_string()), now),
    };
    // A retry keeps the step's state (pending or polling) so a 202
    // erasure is asked about, not started again.
    let status = if status == StepStatus::Pending && seen == StepStatus::Polling {
        StepStatus::Polling
    } else {
        status
    };
    let attempts = step.attempts + 1;
    let saved = steps::save(
        &mut tx,
        &step.id,
        seen,
        &Outcome {
            status,
            attempts,
            next_at,
            error: error.as_deref(),
            result: result.as_ref(),
            account: None,
            done_by: None,
        },
        now,
    )
    .await?;
    if !saved {
        return Ok(false);
    }
    let first_failure = error.is_some() && !status.settled() && step.error.is_none();
    if status.settled() || status == StepStatus::Failed || first_failure {
        let action = match status {
            StepStatus::Done => "step_done",
            StepStatus::Skipped => "step_skipped",
            StepStatus::Failed => "step_failed",
            _ => "step_retrying",
        };
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            event(
                &step.request_id,
                "system",
                action,
                None,
                None,
                json!({"system": step.system, "operation": step.operation, "attempts": attempts,
                       "error": error}),
            ),
        )
        .await?;
    }
    if step.operation == ERASE && status.settled() && step.system == state.systems.primary_id {
        primary_erased(state, &mut tx, &step, now).await?;
    }
    tx.commit().await?;
    state.mail_notify.notify_one();
    if status == StepStatus::Failed || first_failure {
        // The error text (shown to staff) may quote the company's answer;
        // the log gets the step and its state only.
        tracing::warn!(
            system = %step.system,
            operation = %step.operation,
            status = status.as_str(),
            "connector step did not succeed"
        );
    }
    if step.operation == ERASE && status.settled() {
        finish_erasure_if_settled(state, &step.request_id).await?;
    }
    Ok(true)
}

fn backoff(state: &AppState, attempts: i64) -> i64 {
    let base = state.settings.connector_retry_base.as_secs_f64();
    let max = state.settings.connector_retry_max.as_secs_f64();
    let wait = (base * 2f64.powi(attempts.clamp(0, 20) as i32)).min(max);
    (wait.ceil() as i64).max(1)
}

/// After the primary erased: the portal's own data on the account goes, the
/// erased identifiers are remembered (keyed hashes), and the other systems
/// may run.
async fn primary_erased(
    state: &AppState,
    tx: &mut store::Conn,
    step: &StepRow,
    now: i64,
) -> anyhow::Result<()> {
    if let Some(acc) = &step.account {
        super::authenticator::forget(tx, acc).await?;
        let h = state
            .keys
            .lookup_hash(&format!("erased-account\u{0}{}\u{0}{acc}", step.system));
        steps::record_erased(tx, &h, &step.system, Some(&step.request_id), now).await?;
    }
    if let Some(email) = step.params().get("email").and_then(Value::as_str) {
        if let Some(e) = crate::domain::Email::parse(email) {
            let h = erased_email_hash(state, &e);
            steps::record_erased(tx, &h, &step.system, Some(&step.request_id), now).await?;
        }
    }
    steps::release_waiting(tx, &step.request_id, now).await?;
    Ok(())
}

/// The keyed hash under which an erased address is remembered.
pub fn erased_email_hash(state: &AppState, email: &crate::domain::Email) -> String {
    erased_email_hash_with(&state.keys, email)
}

pub fn erased_email_hash_with(keys: &crate::crypto::Keys, email: &crate::domain::Email) -> String {
    keys.lookup_hash(&format!("erased-email\u{0}{}", email.as_str()))
}

async fn attempt(state: &AppState, step: &StepRow) -> Result<Done, CallError> {
    let params = step.params();
    let email = params
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let polling = step.status() == StepStatus::Polling;
    let sys = &state.systems;
    if step.system == sys.primary_id {
        let acc = AccountRef {
            id: step.account.clone().unwrap_or_default(),
        };
        return match step.operation.as_str() {
            ERASE => {
                if !polling && params.get("check_blockers") == Some(&json!(true)) {
                    let blockers = sys
                        .primary
                        .deletion_blockers(&acc, Utc::now())
                        .await
                        .map_err(call_error)?;
                    if !blockers.is_empty() {
                        return Ok(Done::Blocked(blockers));
                    }
                }
                let out = if polling {
                    sys.primary.erase_status(&acc, &step.request_id).await
                } else {
                    sys.primary.erase(&acc, &step.request_id).await
                };
                erase_outcome(out.map_err(call_error)?)
            }
            _ => Ok(Done::Skipped("nothing to do on the primary")),
        };
    }
    let Some(s) = sys.secondary(&step.system) else {
        return Err(CallError::Refused {
            status: 0,
            detail: "this system is no longer configured".into(),
        });
    };
    let subject = Subject::Email(email.clone());
    match &s.kind {
        SecondaryKind::Http(h) => match step.operation.as_str() {
            ERASE => match h.erase(&subject, &step.request_id, &step.id, polling).await {
                Ok(out) => erase_outcome(out),
                Err(CallError::Unsupported(_)) => Ok(Done::Skipped("unsupported")),
                Err(e) => Err(e),
            },
            CHANGE_EMAIL => {
                let new = params
                    .get("new_email")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match h
                    .change_email(&subject, new, &step.request_id, &step.id)
                    .await
                {
                    Ok(true) => Ok(Done::Finished(json!({"result": "changed"}))),
                    Ok(false) => Err(CallError::Refused {
                        status: 409,
                        detail:
                            "the new address already belongs to another customer in this system"
                                .into(),
                    }),
                    Err(CallError::Unsupported(_)) => Ok(Done::Skipped("unsupported")),
                    Err(e) => Err(e),
                }
            }
            STOP => {
                let keys: Vec<String> = params
                    .get("keys")
                    .and_then(|k| serde_json::from_value(k.clone()).ok())
                    .unwrap_or_default();
                match h.stop(&subject, &keys, &step.request_id, &step.id).await {
                    Ok(()) => Ok(Done::Finished(json!({"keys": keys}))),
                    Err(CallError::Unsupported(_)) => Ok(Done::Skipped("unsupported")),
                    Err(e) => Err(e),
                }
            }
            _ => Ok(Done::Skipped("unknown operation")),
        },
        SecondaryKind::Email { to, language, .. } => {
            instruct_by_mail(state, step, &email, to, *language, polling).await
        }
    }
}

fn erase_outcome(out: EraseOutcome) -> Result<Done, CallError> {
    match out {
        EraseOutcome::Pending => Ok(Done::Polling(json!({"status": "pending"}))),
        EraseOutcome::Done(r) => Ok(Done::Finished(
            serde_json::to_value(&r).map_err(|e| CallError::BadAnswer(e.to_string()))?,
        )),
    }
}

fn call_error(e: anyhow::Error) -> CallError {
    match e.downcast::<CallError>() {
        Ok(c) => c,
        // The built-in store: a database error is worth another try.
        Err(e) => CallError::Unavailable(e.to_string()),
    }
}

/// `kind = "email"`: the instruction goes to the processor's address
/// through the outbox; the step is done once the mail server accepted it
/// (the duty to inform), and staff tick the checklist when the processor
/// confirms.
async fn instruct_by_mail(
    state: &AppState,
    step: &StepRow,
    email: &str,
    to: &str,
    language: Locale,
    polling: bool,
) -> Result<Done, CallError> {
    let db_err = |e: &dyn std::fmt::Display| CallError::Unavailable(e.to_string());
    if polling {
        let id = step
            .result()
            .get("outbox")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default();
        return match store::outbox::status_of(&state.db, &id)
            .await
            .map_err(|e| db_err(&e))?
            .as_deref()
        {
            Some("sent") => Ok(Done::Finished(json!({"instructed": to, "outbox": id}))),
            Some("held") => Err(CallError::Unavailable(
                "the instruction mail is held: the mail server refused it for now".into(),
            )),
            Some("failed") => Err(CallError::Refused {
                status: 0,
                detail: "the mail server refused the instruction".into(),
            }),
            _ => Ok(Done::Polling(json!({"outbox": id}))),
        };
    }
    let keys: Vec<String> = step
        .params()
        .get("keys")
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .unwrap_or_default();
    let mut ctx = tera::Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(&step.request_id));
    ctx.insert("customer", email);
    ctx.insert("operation", &step.operation);
    ctx.insert("keys", &keys);
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    let now = store::now();
    let mut tx = state.db.begin().await.map_err(|e| db_err(&e))?;
    let id = crate::mail::enqueue_id(
        &mut tx,
        &state.tera,
        &state.keys,
        crate::mail::Outgoing {
            request_id: Some(&step.request_id),
            to,
            locale: language,
            template: "processor_instruction",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await
    .map_err(|e| db_err(&e))?;
    tx.commit().await.map_err(|e| db_err(&e))?;
    state.mail_notify.notify_one();
    Ok(Done::Polling(json!({"outbox": id})))
}

/// Completes an erasure whose every step is settled: the proof lists per
/// system what it deleted and kept, from what the systems answered.
async fn finish_erasure_if_settled(state: &AppState, request_id: &str) -> anyhow::Result<()> {
    let all: Vec<StepRow> = steps::for_request(&state.db, request_id)
        .await?
        .into_iter()
        .filter(|s| s.operation == ERASE)
        .collect();
    if all.is_empty() || !all.iter().all(|s| s.status().settled()) {
        return Ok(());
    }
    let req = store::requests::get(&state.db, request_id).await?;
    let Some(req) = req else { return Ok(()) };
    if req.status() != Status::Processing {
        return Ok(());
    }
    let mut receipts = Vec::new();
    for s in &all {
        let r: crate::connector::ErasureReceipt = match s.status() {
            StepStatus::Done => serde_json::from_value(s.result()).unwrap_or_default(),
            _ => Default::default(),
        };
        receipts.push(SystemReceipt {
            system: s.system.clone(),
            status: s.status(),
            receipt: r,
        });
    }
    if req.kind() == RequestKind::Delete {
        match super::delete::complete_from_steps(state, &req, &receipts).await {
            // Another runner completed it first: nothing more to do.
            Err(super::WorkflowError::WrongState { .. }) => {}
            other => other.map_err(anyhow::Error::from)?,
        }
    }
    Ok(())
}

/// One system's part of an erasure, for the proof and the case.
#[derive(Debug, serde::Serialize)]
pub struct SystemReceipt {
    pub system: String,
    pub status: StepStatus,
    pub receipt: crate::connector::ErasureReceipt,
}

/// Staff retry a step now (after fixing a secret, or once the system is
/// back), or mark it done by hand with a reason.
pub async fn staff_retry(
    state: &AppState,
    request_id: &str,
    system: &str,
    actor: &str,
) -> WResult<()> {
    let list = steps::for_request(&state.db, request_id).await?;
    let Some(step) = list
        .iter()
        .find(|s| s.system == system && !s.status().settled() && s.status() != StepStatus::Waiting)
    else {
        return Err(super::WorkflowError::NotFound);
    };
    let now = store::now();
    let to = if step.status() == StepStatus::Polling {
        StepStatus::Polling
    } else {
        StepStatus::Pending
    };
    let mut tx = state.db.begin().await?;
    let ok = steps::save(
        &mut tx,
        &step.id,
        step.status(),
        &Outcome {
            status: to,
            attempts: step.attempts,
            next_at: now,
            error: step.error.as_deref(),
            result: None,
            account: None,
            done_by: None,
        },
        now,
    )
    .await?;
    if !ok {
        return Err(super::WorkflowError::NotFound);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            request_id,
            actor,
            "step_retry_requested",
            None,
            None,
            json!({"system": system, "operation": step.operation}),
        ),
    )
    .await?;
    tx.commit().await?;
    run_request(state, request_id).await?;
    Ok(())
}

pub async fn staff_complete(
    state: &AppState,
    request_id: &str,
    system: &str,
    actor: &str,
    reason: &str,
) -> WResult<()> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(super::WorkflowError::Invalid {
            field: "reason",
            key: "staff.errors.text_empty",
        });
    }
    let list = steps::for_request(&state.db, request_id).await?;
    let Some(step) = list
        .iter()
        .find(|s| s.system == system && !s.status().settled())
    else {
        return Err(super::WorkflowError::NotFound);
    };
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let ok = steps::save(
        &mut tx,
        &step.id,
        step.status(),
        &Outcome {
            status: StepStatus::Manual,
            attempts: step.attempts,
            next_at: now,
            error: step.error.as_deref(),
            result: None,
            account: None,
            done_by: Some(actor),
        },
        now,
    )
    .await?;
    if !ok {
        return Err(super::WorkflowError::NotFound);
    }
    let note = super::reason_note(&mut tx, request_id, actor, Some(reason), now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            request_id,
            actor,
            "step_completed_by_staff",
            None,
            None,
            json!({"system": system, "operation": step.operation, "note_id": note}),
        ),
    )
    .await?;
    if step.operation == ERASE && step.system == state.systems.primary_id {
        steps::release_waiting(&mut tx, request_id, now).await?;
    }
    tx.commit().await?;
    if step.operation == ERASE {
        run_request(state, request_id).await?;
        finish_erasure_if_settled(state, request_id).await?;
    }
    Ok(())
}

/// A step as staff and the staff API see it.
#[derive(Debug, serde::Serialize)]
pub struct StepView {
    pub system: String,
    pub system_name: String,
    pub operation: String,
    pub status: StepStatus,
    pub attempts: i64,
    pub error: Option<String>,
    /// The system's own account id (an erased account stays identifiable
    /// to staff without personal data).
    pub account: Option<String>,
    pub next_attempt_at: Option<i64>,
    pub result: Value,
    pub done_by: Option<String>,
    pub updated_at: i64,
}

pub async fn view(state: &AppState, request_id: &str, locale: Locale) -> WResult<Vec<StepView>> {
    Ok(steps::for_request(&state.db, request_id)
        .await?
        .into_iter()
        .map(|s| {
            let st = s.status();
            StepView {
                system_name: state.systems.name(&s.system, locale),
                next_attempt_at: matches!(st, StepStatus::Pending | StepStatus::Polling)
                    .then_some(s.next_at),
                result: s.result(),
                status: st,
                attempts: s.attempts,
                error: s.error.clone(),
                account: s.account.clone(),
                done_by: s.done_by.clone(),
                updated_at: s.updated_at,
                system: s.system,
                operation: s.operation,
            }
        })
        .collect())
}
