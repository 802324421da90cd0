//! Rectification of the login address (Art. 16): the customer proves the
//! current address (the request's code), then the new one (a second code).
//! One address belongs to one account: if the new address already has an
//! account, the customer chooses A or B and staff carry it out.

use chrono::Utc;
use tera::Context;

use super::{
    delete::Knowledge,
    event,
    verification::{self, Attempt},
    WResult, WorkflowError,
};
use crate::{
    connector::{AccountRef, EmailChange, EraseOutcome, ErasureReceipt, KnowledgeClaim},
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
    store::lock_addresses(&mut tx, &[&new_hash]).await?;
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
        state.keys.audit(),
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
            return Err(WorkflowError::ResendTooSoon {
                retry_after: wait as u64,
            });
        }
    }
    store::lock_addresses(&mut tx, &[&new_hash]).await?;
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
        state.keys.audit(),
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
        state.keys.audit(),
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
    match state.connector.change_email(&acc, &new, &req.id).await? {
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
            // What proved each side, for the staff case: the current address
            // by the request's own check, the new one by the code just entered.
            data["proofs"] = serde_json::json!({
                "old": {"account": acc.id, "method": verified_method(state, id).await?, "at": req.verified_at},
                "new": {"account": other.id, "method": "email_code", "at": now},
            });
            requests::set_data(&mut tx, id, &data, &["email_in_use"], None).await?;
            audit::record(
                &mut tx,
                state.keys.audit(),
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
    erased: Option<Erased<'_>>,
) -> WResult<RequestRow> {
    let choice = erased.as_ref().map(|e| e.choice);
    let id = req.id.as_str();
    let now = store::now();
    let locale = req.locale();
    let mut tx = state.db.begin().await?;
    requests::set_status(&mut tx, id, from, Status::Completed, now).await?;
    requests::set_data(&mut tx, id, &req.data(), &[], Some("changed")).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
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
    // The other systems that store the address follow (option A erased
    // the old address's account, so nothing there keeps the old address).
    let fanned = if choice == Some(Choice::A) {
        0
    } else {
        super::steps::plan_email_change(state, &mut tx, id, &req.email, new.as_str(), now).await?
    };
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
    if let Some(e) = &erased {
        // Proof of erasure to the address of the account that was erased
        // (A: the old one; B: the new one, now on the kept account).
        let to = match e.choice {
            Choice::A => req.email.as_str(),
            Choice::B => new.as_str(),
        };
        let mut data = req.data();
        data["erasure"] = serde_json::to_value(e.receipt).map_err(anyhow::Error::from)?;
        requests::set_data(&mut tx, id, &data, &[], None).await?;
        super::delete::proof_and_checklist(state, &mut tx, req, e.receipt, &[], to, false, now)
            .await?;
        let erased_hash = state.keys.lookup_hash(to);
        requests::redact_after_erasure(&mut tx, &erased_hash, id).await?;
    }
    tx.commit().await?;
    state.mail_notify.notify_one();
    if fanned > 0 {
        if let Err(e) = super::steps::run_request(state, id).await {
            tracing::warn!(error = %e, "email change steps will be retried");
        }
    }
    verification::get(state, id).await
}

/// What the lost-mailbox form established, recorded on the support case:
/// results only, never the stated postcode or house number.
pub struct LostMailbox<'a> {
    pub old: &'a Email,
    pub account: Option<&'a str>,
    pub knowledge: bool,
    /// `none` (never set up), `code_right` or `code_wrong`.
    pub authenticator: &'static str,
}

/// A change of address for someone who cannot reach the old mailbox and was
/// not proven by an authenticator: a change_email case for support, started
/// at the new address (whose code the customer enters like any request's).
/// Once that code is entered the case goes to staff (`lost_mailbox`).
pub async fn start_lost_mailbox(
    state: &AppState,
    new: &Email,
    locale: crate::domain::Locale,
    facts: &LostMailbox<'_>,
) -> WResult<String> {
    let started = super::intake::start(
        state,
        RequestKind::ChangeEmail,
        new.as_str(),
        locale,
        super::intake::Channel::Portal,
    )
    .await?;
    let now = store::now();
    let data = serde_json::json!({
        "lost_mailbox": true,
        "old_email": facts.old.as_str(),
        "new_email": new.as_str(),
        "old_account": facts.account,
        "proofs": {
            "new": {"method": "email_code_pending"},
            "lost_mailbox": {
                "account": facts.account.unwrap_or("none"),
                "knowledge": if facts.knowledge { "matched" } else { "no_match" },
                "authenticator": facts.authenticator,
                "at": now,
            },
        },
    });
    let mut tx = state.db.begin().await?;
    requests::set_data(&mut tx, &started.id, &data, &[], None).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            &started.id,
            "customer",
            "lost_mailbox_case",
            None,
            None,
            serde_json::json!({
                "knowledge": if facts.knowledge { "matched" } else { "no_match" },
                "authenticator": facts.authenticator,
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(started.id)
}

/// Staff change the login address of a lost-mailbox case through the
/// connector. The new address is proven by its code; the old account only by
/// what the form recorded, so a knowledge check that did not match needs an
/// explicit, audited reason.
async fn staff_change_lost_mailbox(
    state: &AppState,
    req: &RequestRow,
    actor: &str,
    override_reason: Option<&str>,
) -> WResult<RequestRow> {
    let id = req.id.as_str();
    let data = req.data();
    let matched = data["proofs"]["lost_mailbox"]["knowledge"].as_str() == Some("matched");
    let override_reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
    if !matched && override_reason.is_none() {
        return Err(WorkflowError::Invalid {
            field: "text",
            key: "errors.lost_mailbox_unmatched",
        });
    }
    let old = data
        .get("old_email")
        .and_then(|v| v.as_str())
        .and_then(Email::parse)
        .ok_or(WorkflowError::NoAccount)?;
    let new = Email::parse(&req.email)
        .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("request without address")))?;
    let acc = state
        .connector
        .find_account(&old)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Escalated, Status::Processing, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    let note = super::reason_note(&mut tx, id, actor, override_reason, now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            actor,
            "lost_mailbox_change",
            Some(Status::Escalated),
            Some(Status::Processing),
            serde_json::json!({"note_id": note}),
        ),
    )
    .await?;
    tx.commit().await?;
    if let EmailChange::Taken(_) = state.connector.change_email(&acc, &new, &req.id).await? {
        let mut tx = state.db.begin().await?;
        requests::set_status(&mut tx, id, Status::Processing, Status::Escalated, now).await?;
        requests::set_data(&mut tx, id, &data, &["email_in_use"], None).await?;
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            event(
                id,
                "system",
                "email_in_use",
                Some(Status::Processing),
                Some(Status::Escalated),
                serde_json::json!({}),
            ),
        )
        .await?;
        tx.commit().await?;
        return Err(WorkflowError::Invalid {
            field: "text",
            key: "errors.lost_mailbox_taken",
        });
    }
    // The notice goes to the old address (as for any change), the
    // confirmation to the new one.
    let mut as_old = req.clone();
    as_old.email = old.as_str().to_string();
    finish_changed(state, &as_old, &new, Status::Processing, actor, None).await
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

/// What an account holds, in numbers only: enough to choose which of two
/// accounts to keep, nothing personal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    pub orders: usize,
    pub open_orders: usize,
    /// Still to pay; 0 when nothing is owed.
    pub balance_cents: i64,
}

/// Pages the connector's export are counted to at most: an account with
/// more orders than this shows the count so far.
const HOLDINGS_MAX_PAGES: usize = 50;

async fn holdings(state: &AppState, acc: &AccountRef) -> WResult<Holdings> {
    let mut h = Holdings::default();
    let mut cursor: Option<String> = None;
    for _ in 0..HOLDINGS_MAX_PAGES {
        let page = state
            .connector
            .export_records(acc, cursor.as_deref())
            .await?;
        h.orders += page.records.iter().filter(|(c, _)| c == "orders").count();
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    for b in state.connector.deletion_blockers(acc, Utc::now()).await? {
        match b {
            Blocker::OpenOrder { orders } => h.open_orders = orders,
            Blocker::OutstandingBalance { cents } => h.balance_cents = cents,
            _ => {}
        }
    }
    Ok(h)
}

/// What each option of a collision deletes: (A: the current account,
/// B: the account of the new address).
pub async fn collision_holdings(
    state: &AppState,
    req: &RequestRow,
) -> WResult<Option<(Holdings, Holdings)>> {
    let (Some(a), Some(b)) = (
        account_to_delete(req, Choice::A),
        account_to_delete(req, Choice::B),
    ) else {
        return Ok(None);
    };
    Ok(Some((
        holdings(state, &a).await?,
        holdings(state, &b).await?,
    )))
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

/// How the request's own address was proven (emailed code, or authenticator
/// with postcode and house number when the mailbox was lost).
async fn verified_method(state: &AppState, id: &str) -> WResult<String> {
    let events = audit::for_request(&state.db, id).await?;
    Ok(events
        .iter()
        .rev()
        .find(|e| e.action == "verified")
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
        .and_then(|d| d.get("method").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| "email_code".into()))
}

/// The knowledge check of the account the choice deletes, once it matched.
fn knowledge_proof(req: &RequestRow) -> Option<serde_json::Value> {
    let data = req.data();
    let k = data.get("proofs")?.get("knowledge")?;
    (k.get("result")?.as_str()? == "matched").then(|| k.clone())
}

/// The customer's choice, recorded for staff (who carry it out). Whichever
/// account the choice deletes must pass that account's own knowledge check
/// first (postcode and house number, 5 tries), as a deletion would: the codes
/// prove the two addresses, not the right to erase either account.
pub async fn choose(
    state: &AppState,
    id: &str,
    choice: Choice,
    claim: &KnowledgeClaim<'_>,
) -> WResult<RequestRow> {
    let req = verification::get(state, id).await?;
    check_kind(&req)?;
    if req.status() != Status::Escalated || !req.reasons().iter().any(|r| r == "email_in_use") {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    // The first proven choice stands; a repeat answers with the current state.
    if knowledge_proof(&req).is_some() {
        return Ok(req);
    }
    super::delete::require_claim(claim)?;
    let target = account_to_delete(&req, choice)
        .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("collision without accounts")))?;
    let detail = serde_json::json!({"option": choice.as_str()});
    let tries =
        match super::delete::knowledge_try(state, id, Status::Escalated, &target, claim, detail)
            .await?
        {
            None => return Err(WorkflowError::DetailsLocked),
            Some(Knowledge::Mismatch { left, tx }) => {
                tx.commit().await?;
                return Err(super::delete::mismatch_error(left));
            }
            Some(Knowledge::Matched { tries }) => tries,
        };
    let now = store::now();
    let blockers = state
        .connector
        .deletion_blockers(&target, Utc::now())
        .await?;
    let mut data = req.data();
    data["choice"] = serde_json::json!(choice.as_str());
    data["blockers"] = serde_json::to_value(&blockers).map_err(anyhow::Error::from)?;
    data["proofs"]["knowledge"] = serde_json::json!({
        "account": target.id,
        "option": choice.as_str(),
        "result": "matched",
        "tries": tries,
        "at": now,
    });
    let mut tx = state.db.begin().await?;
    requests::set_data(&mut tx, id, &data, &["email_in_use"], None).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        event(
            id,
            "customer",
            "collision_choice",
            None,
            None,
            serde_json::json!({"option": choice.as_str(), "knowledge": "matched"}),
        ),
    )
    .await?;
    // The customer hears that the choice arrived and what happens next.
    let locale = req.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("option", choice.as_str());
    let due = chrono::NaiveDate::parse_from_str(&req.due_date, "%Y-%m-%d")
        .map(|d| crate::i18n::long_date(locale, d))
        .unwrap_or_default();
    ctx.insert("due_date", &due);
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "collision_choice",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    verification::get(state, id).await
}

/// One line of a collision case's proof, for staff: which account, proven how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// `old`, `new` or `knowledge` (the check of the account the choice deletes).
    pub side: &'static str,
    pub account: String,
    /// `email_code`, `totp`, `recovery_code`, `matched` or `missing`.
    pub method: String,
    pub at: Option<i64>,
    pub tries: Option<i64>,
    pub option: Option<String>,
    /// Lost-mailbox cases: what the authenticator said (`none`, `code_right`, `code_wrong`).
    pub authenticator: Option<String>,
}

/// What proved each account of an email collision, so staff see plainly
/// that both addresses and the account to delete were checked.
pub fn proofs(req: &RequestRow) -> Vec<Proof> {
    let data = req.data();
    let Some(p) = data.get("proofs") else {
        return Vec::new();
    };
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let mut out = Vec::new();
    if let Some(v) = p.get("lost_mailbox") {
        out.push(Proof {
            side: "lost_mailbox",
            account: text(v, "account").unwrap_or_default(),
            method: text(v, "knowledge").unwrap_or_else(|| "no_match".into()),
            at: v.get("at").and_then(|x| x.as_i64()),
            tries: None,
            option: None,
            authenticator: text(v, "authenticator"),
        });
    }
    for side in ["old", "new"] {
        if let Some(v) = p.get(side) {
            out.push(Proof {
                side,
                account: text(v, "account").unwrap_or_default(),
                method: text(v, "method").unwrap_or_else(|| "email_code".into()),
                at: v.get("at").and_then(|x| x.as_i64()),
                tries: None,
                option: None,
                authenticator: None,
            });
        }
    }
    if p.get("old").is_none() {
        return out;
    }
    out.push(match p.get("knowledge") {
        Some(k) => Proof {
            side: "knowledge",
            account: text(k, "account").unwrap_or_default(),
            method: text(k, "result").unwrap_or_else(|| "missing".into()),
            at: k.get("at").and_then(|x| x.as_i64()),
            tries: k.get("tries").and_then(|x| x.as_i64()),
            option: text(k, "option"),
            authenticator: None,
        },
        None => Proof {
            side: "knowledge",
            account: String::new(),
            method: "missing".into(),
            at: None,
            tries: None,
            option: None,
            authenticator: None,
        },
    });
    out
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
    if super::is_lost_mailbox(&req) && !req.reasons().iter().any(|r| r == "email_in_use") {
        return staff_change_lost_mailbox(state, &req, actor, override_reason).await;
    }
    let choice = recorded_choice(&req).ok_or(WorkflowError::Invalid {
        field: "choice",
        key: "errors.choice_missing",
    })?;
    // Without the deleted account's own knowledge check nothing is erased,
    // whoever asks (also cases recorded before the check existed).
    let proven = knowledge_proof(&req)
        .and_then(|k| k.get("option").and_then(|o| o.as_str()).map(str::to_string));
    if proven.as_deref() != Some(choice.as_str()) {
        return Err(WorkflowError::Invalid {
            field: "choice",
            key: "errors.collision_unproven",
        });
    }
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
    let note = super::reason_note(&mut tx, id, actor, override_reason, now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),now,
        event(
            id,
            actor,
            "collision_execute",
            Some(Status::Escalated),
            Some(Status::Processing),
            serde_json::json!({"option": choice.as_str(), "note_id": note, "overridden_blockers": overridden}),
        ),
    )
    .await?;
    tx.commit().await?;

    let receipt = erase_waiting(state, &target, id).await?;
    let mut tx = state.db.begin().await?;
    super::authenticator::forget(&mut tx, &target.id).await?;
    tx.commit().await?;
    if choice == Choice::B {
        let old = account_to_delete(&req, Choice::A)
            .ok_or_else(|| WorkflowError::Internal(anyhow::anyhow!("no old account")))?;
        if let EmailChange::Taken(_) = state.connector.change_email(&old, &new, &req.id).await? {
            return Err(WorkflowError::Internal(anyhow::anyhow!(
                "address still taken after erasure"
            )));
        }
    }
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
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
    let erased = Erased {
        choice,
        receipt: &receipt,
    };
    finish_changed(state, &req, &new, Status::Processing, actor, Some(erased)).await
}

/// The collision's erasure runs while staff wait: a system that erases
/// asynchronously is asked again for a short while.
async fn erase_waiting(state: &AppState, target: &AccountRef, id: &str) -> WResult<ErasureReceipt> {
    let mut out = state.connector.erase(target, id).await?;
    for _ in 0..20 {
        match out {
            EraseOutcome::Done(r) => return Ok(r),
            EraseOutcome::Pending => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                out = state.connector.erase_status(target, id).await?;
            }
        }
    }
    match out {
        EraseOutcome::Done(r) => Ok(r),
        EraseOutcome::Pending => Err(WorkflowError::SystemUnavailable),
    }
}

/// A collision carried out: which option, and what the erasure left.
struct Erased<'a> {
    choice: Choice,
    receipt: &'a ErasureReceipt,
}
