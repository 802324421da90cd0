//! Rectification of the login address (Art. 16): the customer proves the
//! current address (the request's code), then the new one (a second code).
//! One address belongs to one account: if the new address already has an
//! account, the customer chooses A or B and staff carry it out.

use chrono::Utc;
use tera::Context;

use super::{
    event,
    verification::{self, Attempt},
    WResult, WorkflowError,
};
use crate::{
    connector::{AccountRef, EmailChange},
    domain::{blockers::Blocker, Email, RequestKind, Status},
    mail,
    store::{self, audit, codes, requests, requests::RequestRow},
    AppState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Delete the old account, keep the new one.
    A,
    /// Delete the new account, move the new address to the old one.
    B,
}

impl Choice {
    pub fn parse(s: &str) -> Option<Choice> {
        match s.trim() {
            "A" | "a" => Some(Choice::A),
            "B" | "b" => Some(Choice::B),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::A => "A",
            Choice::B => "B",
        }
    }
}

fn new_email_of(req: &RequestRow) -> WResult<Email> {
    req.data()
        .get("new_email")
        .and_then(|v| v.as_str())
        .and_then(Email::parse)
        .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("request has no new address")))
}

async fn current_account(state: &AppState, req: &RequestRow) -> WResult<Option<AccountRef>> {
    match Email::parse(&req.email) {
        Some(e) => Ok(state.connector.find_account(&e).await?),
        None => Ok(None),
    }
}

pub async fn has_account(state: &AppState, req: &RequestRow) -> WResult<bool> {
    Ok(current_account(state, req).await?.is_some())
}

fn check_kind(req: &RequestRow) -> WResult<()> {
    if req.kind() != RequestKind::ChangeEmail {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    Ok(())
}

/// Step 2: the new address; a code goes there.
pub async fn submit_new_email(state: &AppState, id: &str, raw_new: &str) -> WResult<RequestRow> {
    let req = verification::get(state, id).await?;
    check_kind(&req)?;
    match req.status() {
        Status::Verified => {}
        Status::AwaitingVerification => return Err(WorkflowError::NotVerified),
        _ => return Ok(req),
    }
    let new = Email::parse(raw_new).ok_or(WorkflowError::Invalid {
        field: "new_email",
        key: "errors.invalid_email",
    })?;
    if new.as_str() == req.email {
        return Err(WorkflowError::Invalid {
            field: "new_email",
            key: "errors.same_email",
        });
    }
    current_account(state, &req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    let now = store::now();
    let new_hash = state.keys.lookup_hash(new.as_str());
    let mut tx = state.db.begin().await?;
    if codes::sent_to_address_since(&mut tx, &new_hash, now - 3600).await?
        >= super::limits::CODES_PER_ADDRESS_HOUR
    {
        return Err(WorkflowError::RateLimited { retry_after: 3600 });
    }
    match requests::set_status(&mut tx, id, Status::Verified, Status::AwaitingNewEmail, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    let mut data = req.data();
    data["new_email"] = serde_json::json!(new.as_str());
    requests::set_data(&mut tx, id, &data, &[], None).await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "customer",
            "new_email_given",
            Some(Status::Verified),
            Some(Status::AwaitingNewEmail),
            serde_json::json!({}),
        ),
    )
    .await?;
    super::intake::issue_code(
        state,
        &mut tx,
        id,
        RequestKind::ChangeEmail,
        &new,
        &new_hash,
        req.locale(),
        now,
        "new-code",
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    state.metrics.codes_sent.inc();
    verification::get(state, id).await
}

pub async fn resend_new_code(state: &AppState, id: &str) -> WResult<()> {
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = verification::load(&mut tx, id).await?;
    check_kind(&req)?;
    if req.status() != Status::AwaitingNewEmail {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let new = new_email_of(&req)?;
    let new_hash = state.keys.lookup_hash(new.as_str());
    if let Some(last) = codes::last_sent_for_request(&mut tx, id).await? {
        let wait = last + super::limits::RESEND_COOLDOWN_SECS - now;
        if wait > 0 {
            return Err(WorkflowError::RateLimited {
                retry_after: wait as u64,
            });
        }
    }
    if codes::sent_to_address_since(&mut tx, &new_hash, now - 3600).await?
        >= super::limits::CODES_PER_ADDRESS_HOUR
    {
        return Err(WorkflowError::RateLimited { retry_after: 3600 });
    }
    super::intake::issue_code(
        state,
        &mut tx,
        id,
        RequestKind::ChangeEmail,
        &new,
        &new_hash,
        req.locale(),
        now,
        "new-code",
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "customer",
            "code_resent",
            None,
            None,
            serde_json::json!({"to": "new_address"}),
        ),
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(())
}

/// Step 3: the code sent to the new address. Free address → changed at once;
/// taken → escalated with `email_in_use` and the two options.
pub async fn verify_new_email(state: &AppState, id: &str, raw_code: &str) -> WResult<RequestRow> {
    let code = verification::clean_code(raw_code);
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = verification::load(&mut tx, id).await?;
    check_kind(&req)?;
    if req.status() != Status::AwaitingNewEmail {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let new = new_email_of(&req)?;
    let new_hash = state.keys.lookup_hash(new.as_str());
    if let Attempt::Wrong(e) =
        verification::attempt(state, &mut tx, id, &new_hash, &code, now).await?
    {
        tx.commit().await?;
        return Err(e);
    }
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "customer",
            "new_email_verified",
            None,
            None,
            serde_json::json!({"method": "email_code"}),
        ),
    )
    .await?;
    // The connector writes through its own transaction (on SQLite the one
    // write connection), so this one ends first.
    tx.commit().await?;
    state.metrics.verification("ok");

    let acc = current_account(state, &req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    match state.connector.change_email(&acc, &new).await? {
        EmailChange::Changed => {
            finish_changed(
                state,
                &req,
                &new,
                Status::AwaitingNewEmail,
                "customer",
                None,
            )
            .await
        }
        EmailChange::Taken(other) => {
            let mut tx = state.db.begin().await?;
            requests::set_status(
                &mut tx,
                id,
                Status::AwaitingNewEmail,
                Status::Escalated,
                now,
            )
            .await?;
            let mut data = req.data();
            data["old_account"] = serde_json::json!(acc.id);
            data["new_account"] = serde_json::json!(other.id);
            requests::set_data(&mut tx, id, &data, &["email_in_use"], None).await?;
            audit::record(
                &mut tx,
                now,
                event(
                    id,
                    "customer",
                    "email_in_use",
                    Some(Status::AwaitingNewEmail),
                    Some(Status::Escalated),
                    serde_json::json!({}),
                ),
            )
            .await?;
            tx.commit().await?;
            verification::get(state, id).await
        }
    }
}

/// Security notice to the old address, confirmation to the new one.
async fn finish_changed(
    state: &AppState,
    req: &RequestRow,
    new: &Email,
    from: Status,
    actor: &str,
    choice: Option<Choice>,
) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let now = store::now();
    let locale = req.locale();
    let mut tx = state.db.begin().await?;
    requests::set_status(&mut tx, id, from, Status::Completed, now).await?;
    requests::set_data(&mut tx, id, &req.data(), &[], Some("changed")).await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            actor,
            "email_changed",
            Some(from),
            Some(Status::Completed),
            serde_json::json!({"choice": choice.map(Choice::as_str)}),
        ),
    )
    .await?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    ctx.insert("masked_new", &mask(new.as_str()));
    ctx.insert("choice", &choice.map(Choice::as_str).unwrap_or(""));
    for (to, template) in [
        (req.email.as_str(), "email_changed_old"),
        (new.as_str(), "email_changed_new"),
    ] {
        // Option A deletes the account of the old address: the old address
        // hears of that in the confirmation to the new one, not separately.
        if choice == Some(Choice::A) && template == "email_changed_old" {
            continue;
        }
        mail::enqueue(
            &mut tx,
            &state.tera,
            &state.keys,
            mail::Outgoing {
                request_id: Some(id),
                to,
                locale,
                template,
                ctx: ctx.clone(),
                secret: None,
                forget_address: false,
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    state.mail_notify.notify_one();
    verification::get(state, id).await
}

/// "a•••@example.nl": enough to recognise, not enough to harvest.
pub fn mask(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}•••@{domain}")
        }
        None => "•••".into(),
    }
}

fn account_to_delete(req: &RequestRow, choice: Choice) -> Option<AccountRef> {
    let data = req.data();
    let key = match choice {
        Choice::A => "old_account",
        Choice::B => "new_account",
    };
    data.get(key)
        .and_then(|v| v.as_str())
        .map(|id| AccountRef { id: id.to_string() })
}

/// The customer's choice, recorded for staff (who carry it out). Blockers on
/// the account to be deleted are computed now so staff see them at once.
pub async fn choose(state: &AppState, id: &str, choice: Choice) -> WResult<RequestRow> {
    let req = verification::get(state, id).await?;
    check_kind(&req)?;
    if req.status() != Status::Escalated || !req.reasons().iter().any(|r| r == "email_in_use") {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let target = account_to_delete(&req, choice)
        .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("collision without accounts")))?;
    let blockers = state
        .connector
        .deletion_blockers(&target, Utc::now())
        .await?;
    let now = store::now();
    let mut data = req.data();
    data["choice"] = serde_json::json!(choice.as_str());
    data["blockers"] = serde_json::to_value(&blockers).map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin().await?;
    requests::set_data(&mut tx, id, &data, &["email_in_use"], None).await?;
    audit::record(
        &mut tx,
        now,
        event(
            id,
            "customer",
            "collision_choice",
            None,
            None,
            serde_json::json!({"option": choice.as_str()}),
        ),
    )
    .await?;
    tx.commit().await?;
    verification::get(state, id).await
}

pub fn recorded_choice(req: &RequestRow) -> Option<Choice> {
    req.data()
        .get("choice")
        .and_then(|v| v.as_str())
        .and_then(Choice::parse)
}

/// Staff carry out the customer's choice. The deletion blockers apply to the
/// account being deleted; only an explicit override reason sets them aside.
pub async fn staff_execute(
    state: &AppState,
    id: &str,
    actor: &str,
    override_reason: Option<&str>,
) -> WResult<RequestRow> {
    let req = verification::get(state, id).await?;
    check_kind(&req)?;
    if req.status() != Status::Escalated {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let choice = recorded_choice(&req).ok_or(WorkflowError::Invalid {
        field: "choice",
        key: "errors.choice_missing",
    })?;
    let target = account_to_delete(&req, choice)
        .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("collision without accounts")))?;
    let blockers: Vec<Blocker> = state
        .connector
        .deletion_blockers(&target, Utc::now())
        .await?;
    let override_reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
    if !blockers.is_empty() && override_reason.is_none() {
        return Err(WorkflowError::StillBlocked {
            reasons: blockers.iter().map(|b| b.code().to_string()).collect(),
        });
    }
    let new = new_email_of(&req)?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Escalated, Status::Processing, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    let overridden: Vec<&str> = blockers.iter().map(Blocker::code).collect();
    audit::record(
        &mut tx,
        now,
        event(
            id,
            actor,
            "collision_execute",
            Some(Status::Escalated),
            Some(Status::Processing),
            serde_json::json!({"option": choice.as_str(), "override_reason": override_reason, "overridden_blockers": overridden}),
        ),
    )
    .await?;
    tx.commit().await?;

    let receipt = state.connector.erase(&target).await?;
    let mut tx = state.db.begin().await?;
    super::authenticator::forget(&mut tx, &target.id).await?;
    tx.commit().await?;
    if choice == Choice::B {
        let old = account_to_delete(&req, Choice::A)
            .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("no old account")))?;
        if let EmailChange::Taken(_) = state.connector.change_email(&old, &new).await? {
            return Err(WorkflowError::Internal(anyhow::anyhow!(
                "address still taken after erasure"
            )));
        }
    }
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        store::now(),
        event(
            id,
            actor,
            "erased",
            None,
            None,
            serde_json::json!({"receipt": receipt, "option": choice.as_str()}),
        ),
    )
    .await?;
    tx.commit().await?;
    finish_changed(state, &req, &new, Status::Processing, actor, Some(choice)).await
}
