//! Erasure (Art. 17): the customer states postcode and house number and
//! consents; blockers send the request to staff; otherwise the account is
//! erased at once and the customer gets proof of what was deleted, what the
//! law makes us keep, and which other systems staff will clean (Art. 19).

use chrono::{NaiveDate, Utc};
use tera::Context;

use super::{event, WResult, WorkflowError};
use crate::{
    connector::{AccountRef, ErasureReceipt, KnowledgeClaim},
    domain::{blockers::Blocker, Email, Locale, RequestKind, Status},
    i18n::{long_date, t, t_args},
    mail,
    store::{self, audit, requests, requests::RequestRow},
    AppState,
};

/// Tries at stating postcode and house number before the request closes.
pub const KNOWLEDGE_ATTEMPTS: i64 = 5;

pub struct DeleteInput<'a> {
    pub postcode: &'a str,
    pub house_number: &'a str,
    pub confirm: bool,
    /// No account under the address: the customer asks to be removed from
    /// the company's other systems (newsletter, mailbox, recordings) only.
    pub other_systems_only: bool,
}

/// What the page after verification shows.
pub enum FormState {
    Form,
    NoAccount,
}

async fn account(state: &AppState, req: &RequestRow) -> WResult<Option<AccountRef>> {
    let Some(email) = Email::parse(&req.email) else {
        return Ok(None);
    };
    Ok(state.connector.find_account(&email).await?)
}

pub async fn form_state(state: &AppState, req: &RequestRow) -> WResult<FormState> {
    Ok(match account(state, req).await? {
        Some(_) => FormState::Form,
        None => FormState::NoAccount,
    })
}

pub async fn submit(state: &AppState, id: &str, input: &DeleteInput<'_>) -> WResult<RequestRow> {
    let req = super::verification::get(state, id).await?;
    if req.kind() != RequestKind::Delete {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    match req.status() {
        Status::Verified => {}
        Status::AwaitingVerification => return Err(WorkflowError::NotVerified),
        // A repeated submit answers with the current state; erasure runs once.
        _ => return Ok(req),
    }
    let acc = account(state, &req).await?;
    if acc.is_none() && input.other_systems_only {
        return without_account(state, &req).await;
    }
    let claim = KnowledgeClaim {
        postcode: input.postcode,
        house_number: input.house_number,
    };
    require_claim(&claim)?;
    if !input.confirm {
        return Err(WorkflowError::Invalid {
            field: "confirm",
            key: "errors.consent_required",
        });
    }
    let acc = acc.ok_or(WorkflowError::NoAccount)?;

    let now = store::now();
    match knowledge_try(
        state,
        id,
        Status::Verified,
        &acc,
        &claim,
        serde_json::json!({}),
    )
    .await?
    {
        None => {
            let current = super::verification::get(state, id).await?;
            return if current.status() == Status::Verified {
                Err(WorkflowError::DetailsLocked)
            } else {
                Ok(current)
            };
        }
        Some(Knowledge::Mismatch { left, mut tx }) => {
            if left <= 0 {
                requests::set_status(&mut tx, id, Status::Verified, Status::Cancelled, now).await?;
                requests::set_data(
                    &mut tx,
                    id,
                    &req.data(),
                    &[],
                    Some("details_mismatch_limit"),
                )
                .await?;
                audit::record(
                    &mut tx,
                    state.keys.audit(),
                    now,
                    event(
                        id,
                        "system",
                        "closed_after_mismatches",
                        Some(Status::Verified),
                        Some(Status::Cancelled),
                        serde_json::json!({}),
                    ),
                )
                .await?;
            }
            tx.commit().await?;
            return Err(mismatch_error(left));
        }
        Some(Knowledge::Matched { .. }) => {}
    }

    let blockers = state.connector.deletion_blockers(&acc, Utc::now()).await?;
    if !blockers.is_empty() {
        return escalate(state, &req, &blockers, Status::Verified, now).await;
    }
    erase_and_complete(state, &req, &acc, Status::Verified, "customer", None).await
}

/// The primary system found blockers when its erasure step ran (it could
/// not be asked while the customer waited): the request goes to staff
/// with the same mail as a blocked deletion.
pub(super) async fn escalate_blocked(
    state: &AppState,
    id: &str,
    blockers: &[Blocker],
) -> WResult<()> {
    let req = super::verification::get(state, id).await?;
    escalate(state, &req, blockers, Status::Processing, store::now()).await?;
    Ok(())
}

/// A deletion for an address without an account: there is no account to
/// erase, but the address may still be in the company's other systems. The
/// request completes with a checklist for staff to clean those, and the
/// customer is told what happens.
async fn without_account(state: &AppState, req: &RequestRow) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let now = store::now();
    let locale = req.locale();
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Verified, Status::Completed, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return super::verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    requests::set_data(&mut tx, id, &req.data(), &[], Some("other_systems")).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            "customer",
            "erasure_without_account",
            Some(Status::Verified),
            Some(Status::Completed),
            serde_json::json!({}),
        ),
    )
    .await?;
    super::other_systems_task(state, &mut tx, id, "erasure_other_systems", req.due_at, now).await?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("due_date", &due_long(locale, &req.due_date));
    let others: Vec<&str> = state
        .settings
        .company
        .other_systems
        .iter()
        .map(|s| s.name.get(locale))
        .collect();
    ctx.insert("other_systems", &others);
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "erasure_no_account",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    super::verification::get(state, id).await
}

/// The customer's statement of postcode and house number, required before
/// any account is erased (a deletion, or the account an email-collision
/// choice deletes).
pub(super) fn require_claim(claim: &KnowledgeClaim<'_>) -> WResult<()> {
    if claim.postcode.trim().is_empty() {
        return Err(WorkflowError::Invalid {
            field: "postcode",
            key: "errors.postcode_required",
        });
    }
    if claim.house_number.trim().is_empty() {
        return Err(WorkflowError::Invalid {
            field: "house_number",
            key: "errors.house_number_required",
        });
    }
    Ok(())
}

pub(super) enum Knowledge {
    Matched {
        tries: i64,
    },
    /// Recorded (audit event) in `tx`, which the caller commits, adding what
    /// else a mismatch means for its flow.
    Mismatch {
        left: i64,
        tx: store::Tx,
    },
}

/// One of the `KNOWLEDGE_ATTEMPTS` tries at an account's postcode and house
/// number, reserved before the check so parallel tries stay within the
/// limit. `None` when no try is left (or the request left `status`).
pub(super) async fn knowledge_try(
    state: &AppState,
    id: &str,
    status: Status,
    acc: &AccountRef,
    claim: &KnowledgeClaim<'_>,
    detail: serde_json::Value,
) -> WResult<Option<Knowledge>> {
    let Some(tries) =
        requests::reserve_knowledge_try(&state.db, id, status, KNOWLEDGE_ATTEMPTS).await?
    else {
        return Ok(None);
    };
    if state.connector.check_knowledge(acc, claim).await? {
        return Ok(Some(Knowledge::Matched { tries }));
    }
    let left = KNOWLEDGE_ATTEMPTS - tries;
    let mut detail = detail;
    detail["attempts_left"] = serde_json::json!(left);
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        store::now(),
        event(id, "customer", "details_mismatch", None, None, detail),
    )
    .await?;
    Ok(Some(Knowledge::Mismatch { left, tx }))
}

pub(super) fn mismatch_error(left: i64) -> WorkflowError {
    if left <= 0 {
        WorkflowError::DetailsLocked
    } else {
        WorkflowError::DetailsMismatch {
            attempts_left: left,
        }
    }
}

fn blocker_sentences(locale: Locale, blockers: &[Blocker]) -> Vec<String> {
    blockers
        .iter()
        .map(|b| match b {
            Blocker::RecentDirectDebit { possible_from } => t_args(
                locale,
                "delete.reasons.recent_direct_debit",
                &[("date", &long_date(locale, *possible_from))],
            ),
            other => t(locale, &format!("delete.reasons.{}", other.code())),
        })
        .collect()
}

async fn escalate(
    state: &AppState,
    req: &RequestRow,
    blockers: &[Blocker],
    from: Status,
    now: i64,
) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let codes: Vec<&str> = blockers.iter().map(Blocker::code).collect();
    let mut data = req.data();
    data["consent"] = serde_json::json!(true);
    data["blockers"] = serde_json::to_value(blockers).map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, from, Status::Escalated, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return super::verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    requests::set_data(&mut tx, id, &data, &codes, None).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            if from == Status::Verified {
                "customer"
            } else {
                "system"
            },
            "deletion_blocked",
            Some(from),
            Some(Status::Escalated),
            serde_json::json!({"reasons": codes}),
        ),
    )
    .await?;
    let locale = req.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("reasons", &blocker_sentences(locale, blockers));
    ctx.insert("due_date", &due_long(locale, &req.due_date));
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "deletion_blocked",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    super::verification::get(state, id).await
}

fn due_long(locale: Locale, due_date: &str) -> String {
    NaiveDate::parse_from_str(due_date, "%Y-%m-%d")
        .map(|d| long_date(locale, d))
        .unwrap_or_default()
}

/// Staff carry out an escalated deletion: blockers are checked again, and
/// only an explicit, audited override reason erases despite them.
pub async fn staff_execute(
    state: &AppState,
    id: &str,
    actor: &str,
    override_reason: Option<&str>,
) -> WResult<RequestRow> {
    let req = super::verification::get(state, id).await?;
    if req.kind() != RequestKind::Delete {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    if req.status() != Status::Escalated {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let Some(acc) = account(state, &req).await? else {
        return Err(WorkflowError::NoAccount);
    };
    let blockers = state.connector.deletion_blockers(&acc, Utc::now()).await?;
    let override_reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
    if !blockers.is_empty() && override_reason.is_none() {
        return Err(WorkflowError::StillBlocked {
            reasons: blockers.iter().map(|b| b.code().to_string()).collect(),
        });
    }
    let overridden: Vec<&str> = blockers.iter().map(Blocker::code).collect();
    let why = override_reason.map(|r| (r, overridden));
    erase_and_complete(state, &req, &acc, Status::Escalated, actor, why).await
}

pub(super) async fn erase_and_complete(
    state: &AppState,
    req: &RequestRow,
    acc: &AccountRef,
    from: Status,
    actor: &str,
    override_reason: Option<(&str, Vec<&str>)>,
) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let now = store::now();
    // Claim the erasure first: whoever moves the request to processing erases.
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, from, Status::Processing, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return super::verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    // Whoever started the erasure is named on its completion, which the
    // step runner may record minutes later.
    let mut data = req.data();
    data["erasure_by"] = serde_json::json!(actor);
    let reasons = req.reasons();
    let reasons: Vec<&str> = reasons.iter().map(String::as_str).collect();
    requests::set_data(&mut tx, id, &data, &reasons, None).await?;
    let mut detail = serde_json::json!({});
    if let Some((reason, overridden)) = &override_reason {
        // The staff member's words are the record of why the rule was set
        // aside: a case note, which the audit event points to.
        let note = super::reason_note(&mut tx, id, actor, Some(reason), now).await?;
        detail = serde_json::json!({"note_id": note, "overridden_blockers": overridden});
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            actor,
            "erasure_started",
            Some(from),
            Some(Status::Processing),
            detail,
        ),
    )
    .await?;
    tx.commit().await?;

    // Every system gets its step in the same transaction as the status;
    // they run now, and the runner retries whatever a system could not do.
    let mut tx = state.db.begin().await?;
    super::steps::plan_erasure(state, &mut tx, id, &req.email, acc, false, now).await?;
    tx.commit().await?;
    if let Err(e) = super::steps::run_request(state, id).await {
        tracing::warn!(error = %e, "erasure steps will be retried");
    }
    super::verification::get(state, id).await
}

/// Completes a deletion once every system's erasure step is settled.
pub(super) async fn complete_from_steps(
    state: &AppState,
    req: &RequestRow,
    receipts: &[super::steps::SystemReceipt],
) -> WResult<()> {
    let by = req.data()["erasure_by"]
        .as_str()
        .unwrap_or("system")
        .to_string();
    complete(state, req, receipts, &by).await?;
    Ok(())
}

async fn complete(
    state: &AppState,
    req: &RequestRow,
    receipts: &[super::steps::SystemReceipt],
    actor: &str,
) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let now = store::now();
    let receipt = merged(receipts);
    let receipt = &receipt;
    let mut data = req.data();
    data["consent"] = serde_json::json!(true);
    data["erasure"] = serde_json::to_value(receipt).map_err(anyhow::Error::from)?;
    data["erasure_systems"] = serde_json::to_value(receipts).map_err(anyhow::Error::from)?;

    let mut tx = state.db.begin().await?;
    requests::set_status(&mut tx, id, Status::Processing, Status::Completed, now).await?;
    requests::set_data(&mut tx, id, &data, &[], Some("erased")).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            actor,
            "erased",
            Some(Status::Processing),
            Some(Status::Completed),
            serde_json::json!({"receipt": receipt}),
        ),
    )
    .await?;
    proof_and_checklist(
        state, &mut tx, req, receipt, receipts, &req.email, true, now,
    )
    .await?;
    requests::redact_after_erasure(&mut tx, &req.email_hash, id).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    super::verification::get(state, id).await
}

/// What every erasure leaves behind, whichever flow erased the account: the
/// Art. 19 checklist of the company's other systems for staff, and the proof
/// of erasure to the customer listing what was deleted and what was kept.
#[allow(clippy::too_many_arguments)]
pub(super) async fn proof_and_checklist(
    state: &AppState,
    tx: &mut store::Conn,
    req: &RequestRow,
    receipt: &ErasureReceipt,
    systems_done: &[super::steps::SystemReceipt],
    to: &str,
    forget_address: bool,
    now: i64,
) -> WResult<()> {
    let id = req.id.as_str();
    let locale = req.locale();
    let systems = &state.settings.company.other_systems;
    super::other_systems_task(state, tx, id, "erasure_other_systems", req.due_at, now).await?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    let today = Utc::now()
        .with_timezone(&state.settings.company.country.timezone())
        .date_naive();
    ctx.insert("erased_on", &long_date(locale, today));
    // An anonymisation after inactivity was not asked for: say why instead.
    ctx.insert("inactive", &(req.channel == "scheduler"));
    let deleted = deleted_labels(locale, receipt);
    ctx.insert("deleted", &deleted);
    let retained = retained_labels(locale, receipt);
    ctx.insert("retained", &retained);
    // With several systems, each says what it did: from its own answer.
    if systems_done.len() > 1 {
        let per: Vec<serde_json::Value> = systems_done
            .iter()
            .map(|s| {
                let note = match s.status {
                    super::steps::StepStatus::Skipped => Some(t(locale, "delete.systems_skipped")),
                    super::steps::StepStatus::Manual => Some(t(locale, "delete.systems_manual")),
                    _ if s.receipt.deleted.is_empty() && s.receipt.retained.is_empty() => {
                        Some(t(locale, "delete.systems_skipped"))
                    }
                    _ => None,
                };
                serde_json::json!({
                    "name": state.systems.name(&s.system, locale),
                    "deleted": deleted_labels(locale, &s.receipt),
                    "retained": retained_labels(locale, &s.receipt),
                    "note": note,
                })
            })
            .collect();
        ctx.insert("systems", &per);
    }
    let others: Vec<&str> = systems.iter().map(|s| s.name.get(locale)).collect();
    ctx.insert("other_systems", &others);
    mail::enqueue(
        tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to,
            locale,
            template: "erasure_proof",
            ctx,
            secret: None,
            forget_address,
        },
        now,
    )
    .await?;
    Ok(())
}

/// One receipt for the whole request (the case and the API).
fn merged(receipts: &[super::steps::SystemReceipt]) -> ErasureReceipt {
    let mut out = ErasureReceipt::default();
    for r in receipts {
        for d in &r.receipt.deleted {
            if !out.deleted.contains(d) {
                out.deleted.push(d.clone());
            }
        }
        out.retained.extend(r.receipt.retained.iter().cloned());
    }
    out
}

/// A category in the customer's words; a system's own category name the
/// portal has no words for is shown readably (`loyalty_points` → "Loyalty points").
pub fn category_label(locale: Locale, category: &str) -> String {
    let key = format!("delete.category.{category}");
    if crate::i18n::has_key(locale, &key) {
        return t(locale, &key);
    }
    let words = category.replace(['_', '-'], " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn deleted_labels(locale: Locale, receipt: &ErasureReceipt) -> Vec<String> {
    receipt
        .deleted
        .iter()
        .map(|c| category_label(locale, c))
        .collect()
}

fn retained_labels(locale: Locale, receipt: &ErasureReceipt) -> Vec<String> {
    receipt
        .retained
        .iter()
        .map(|r| {
            let key = format!("delete.retained.{}", r.category);
            if crate::i18n::has_key(locale, &key) {
                t_args(locale, &key, &[("count", &r.count.to_string())])
            } else {
                t_args(
                    locale,
                    "delete.retained_other",
                    &[
                        ("category", &category_label(locale, &r.category)),
                        ("count", &r.count.to_string()),
                    ],
                )
            }
        })
        .collect()
}

/// Sentences for the status page of an escalated deletion.
pub fn reasons_for_page(locale: Locale, req: &RequestRow) -> Vec<String> {
    let blockers: Vec<Blocker> = req
        .data()
        .get("blockers")
        .cloned()
        .and_then(|b| serde_json::from_value(b).ok())
        .unwrap_or_default();
    blocker_sentences(locale, &blockers)
}
