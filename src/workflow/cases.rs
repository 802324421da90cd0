//! Staff actions on a case. The HTML case page and the staff API call these
//! same functions. Each is one transaction: the status change (through the
//! compare-and-set `requests::set_status`), its audit event with the staff
//! member as actor, and the customer's email where they must hear of it.
//! Free text (reasons, replies, notes) is stored in `case_notes`, purged
//! with the request; the audit event points to it and holds no text.

use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use tera::Context;

use super::{WResult, WorkflowError};
use crate::{
    domain::{RequestKind, Status},
    mail,
    store::{self, audit, cases, requests, requests::RequestRow, staff},
    AppState,
};

pub const TEXT_MAX_CHARS: usize = 5000;
pub const MAX_EXTENSION_MONTHS: i64 = 2;

/// The actions of the staff API (`POST /api/v1/staff/cases/{id}/actions`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Art. 12(4) refusal, mailed to the customer with their rights.
    Reject { reason: String },
    /// Ask the customer for information (mailed).
    Ask { message: String },
    /// Once, by 1 or 2 months, within the first month; reason mailed.
    Extend { months: i64, reason: String },
    /// Mailed to the customer; answers (completes) a question.
    Reply { message: String },
    /// Staff id, or null to unassign.
    Assign { assignee: Option<String> },
    /// Internal; never mailed.
    Note { text: String },
    /// Carry out the request: erase (delete), carry out the collision choice
    /// (change_email), stop the processing objected to (object).
    Execute {
        #[serde(default)]
        override_reason: Option<String>,
    },
    /// Run a company system's step again now (`system` = its id).
    RetryStep { system: String },
    /// Mark a company system's step done by hand; the reason is kept.
    CompleteStep { system: String, reason: String },
}

fn text<'a>(raw: &'a str, field: &'static str) -> WResult<&'a str> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(WorkflowError::Invalid {
            field,
            key: "staff.errors.text_empty",
        });
    }
    if t.chars().count() > TEXT_MAX_CHARS {
        return Err(WorkflowError::Invalid {
            field,
            key: "staff.errors.text_long",
        });
    }
    Ok(t)
}

async fn load(conn: &mut store::Conn, id: &str) -> WResult<RequestRow> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(WorkflowError::NotFound);
    }
    requests::get_for_update(conn, id)
        .await?
        .ok_or(WorkflowError::NotFound)
}

/// Cases staff can still act on towards the customer.
fn require_open(row: &RequestRow) -> WResult<()> {
    match row.status() {
        s if s.is_final() || s == Status::AwaitingVerification => {
            Err(WorkflowError::WrongState { status: s.as_str() })
        }
        _ => Ok(()),
    }
}

async fn reload(state: &AppState, id: &str) -> WResult<RequestRow> {
    requests::get(&state.db, id)
        .await?
        .ok_or(WorkflowError::NotFound)
}

fn due_long(row: &RequestRow) -> String {
    NaiveDate::parse_from_str(&row.due_date, "%Y-%m-%d")
        .map(|d| crate::i18n::long_date(row.locale(), d))
        .unwrap_or_else(|_| row.due_date.clone())
}

/// What every case mail knows: company, reference, kind, due date, rights.
fn mail_context(state: &AppState, row: &RequestRow) -> Context {
    let locale = row.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    ctx.insert("reference", &super::reference(&row.id));
    ctx.insert(
        "kind_label",
        &crate::i18n::t(locale, &format!("kinds.{}.title", row.kind)),
    );
    ctx.insert("due_date", &due_long(row));
    let complaint = super::notice::complaint_view(&state.settings.company, locale);
    ctx.insert("authority", &complaint.authority);
    ctx.insert("complaint_url", complaint.complaint_url);
    if let (Some(also), Some(url)) = (&complaint.also, complaint.also_url) {
        ctx.insert("also_authority", also);
        ctx.insert("also_url", url);
    }
    ctx
}

async fn send(
    state: &AppState,
    conn: &mut store::Conn,
    row: &RequestRow,
    template: &str,
    ctx: Context,
    now: i64,
) -> WResult<()> {
    mail::enqueue(
        conn,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(&row.id),
            to: &row.email,
            locale: row.locale(),
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

#[allow(clippy::too_many_arguments)]
async fn event(
    conn: &mut store::Conn,
    key: &crate::crypto::AuditKey,
    now: i64,
    id: &str,
    actor: &str,
    action: &str,
    from: Option<Status>,
    to: Option<Status>,
    detail: serde_json::Value,
) -> WResult<()> {
    audit::record(
        conn,
        key,
        now,
        audit::Event {
            request_id: Some(id),
            actor,
            action,
            from_status: from.map(Status::as_str),
            to_status: to.map(Status::as_str),
            detail,
        },
    )
    .await?;
    Ok(())
}

/// Art. 12(4): refuse with reasons, the right to complain to the
/// supervisory authority and the right to a judicial remedy.
pub async fn reject(state: &AppState, id: &str, actor: &str, reason: &str) -> WResult<RequestRow> {
    let reason = text(reason, "reason")?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    require_open(&row)?;
    let from = row.status();
    requests::set_status(&mut tx, id, from, Status::Rejected, now).await?;
    cases::set_outcome(&mut tx, id, "rejected").await?;
    let note = cases::add_note(&mut tx, id, actor, "reject_reason", reason, now).await?;
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        "rejected",
        Some(from),
        Some(Status::Rejected),
        serde_json::json!({"note_id": note, "mailed": true}),
    )
    .await?;
    let mut ctx = mail_context(state, &row);
    ctx.insert("reason", reason);
    send(state, &mut tx, &row, "case_rejected", ctx, now).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    reload(state, id).await
}

/// Asks the customer for what staff need to decide; the case stays open.
pub async fn ask(state: &AppState, id: &str, actor: &str, message: &str) -> WResult<RequestRow> {
    let message = text(message, "message")?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    require_open(&row)?;
    let note = cases::add_note(&mut tx, id, actor, "info_request", message, now).await?;
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        "info_requested",
        None,
        None,
        serde_json::json!({"note_id": note, "mailed": true}),
    )
    .await?;
    let mut ctx = mail_context(state, &row);
    ctx.insert("message", message);
    send(state, &mut tx, &row, "case_info_request", ctx, now).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    reload(state, id).await
}

fn today(state: &AppState) -> NaiveDate {
    Utc::now()
        .with_timezone(&state.settings.company.country.timezone())
        .date_naive()
}

/// Art. 12(3): once, and only while the first month is still running.
pub fn extension_allowed(state: &AppState, row: &RequestRow) -> Result<(), &'static str> {
    if row.extension_months > 0 {
        return Err("staff.errors.already_extended");
    }
    if row.status().is_final() || row.status() == Status::AwaitingVerification {
        return Err("staff.errors.extension_closed");
    }
    match NaiveDate::parse_from_str(&row.due_date, "%Y-%m-%d") {
        Ok(due) if today(state) <= due => Ok(()),
        _ => Err("staff.errors.extension_too_late"),
    }
}

pub async fn extend(
    state: &AppState,
    id: &str,
    actor: &str,
    months: i64,
    reason: &str,
) -> WResult<RequestRow> {
    let reason = text(reason, "reason")?;
    if !(1..=MAX_EXTENSION_MONTHS).contains(&months) {
        return Err(WorkflowError::Invalid {
            field: "months",
            key: "staff.errors.extension_months",
        });
    }
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    extension_allowed(state, &row).map_err(|key| WorkflowError::Invalid {
        field: "months",
        key,
    })?;
    let (due, due_at) =
        super::intake::month_due(state, row.received_at + row.paused_seconds, months as u32);
    if !cases::set_extension(&mut tx, id, months, &due, due_at, now).await? {
        return Err(WorkflowError::Invalid {
            field: "months",
            key: "staff.errors.already_extended",
        });
    }
    let note = cases::add_note(&mut tx, id, actor, "extension_reason", reason, now).await?;
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        "extended",
        None,
        None,
        serde_json::json!({"months": months, "old_due_date": row.due_date, "due_date": due.to_string(), "note_id": note, "mailed": true}),
    )
    .await?;
    let updated = requests::get_for_update(&mut tx, id)
        .await?
        .ok_or(WorkflowError::NotFound)?;
    let mut ctx = mail_context(state, &updated);
    ctx.insert("reason", reason);
    ctx.insert("months", &months);
    send(state, &mut tx, &updated, "case_extended", ctx, now).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    reload(state, id).await
}

/// The reply mail exactly as the customer will get it (for the preview).
pub fn render_reply(state: &AppState, row: &RequestRow, message: &str) -> WResult<mail::Rendered> {
    let mut ctx = mail_context(state, row);
    ctx.insert("message", message.trim());
    Ok(mail::render(&state.tera, row.locale(), "case_reply", &ctx)?)
}

/// Sends a reply; for a question the reply is the answer and completes it.
pub async fn reply(state: &AppState, id: &str, actor: &str, message: &str) -> WResult<RequestRow> {
    let message = text(message, "message")?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    require_open(&row)?;
    let note = cases::add_note(&mut tx, id, actor, "reply", message, now).await?;
    let (from, to) = if row.kind() == RequestKind::Question {
        let from = row.status();
        requests::set_status(&mut tx, id, from, Status::Completed, now).await?;
        cases::set_outcome(&mut tx, id, "answered").await?;
        (Some(from), Some(Status::Completed))
    } else {
        (None, None)
    };
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        "replied",
        from,
        to,
        serde_json::json!({"note_id": note, "mailed": true}),
    )
    .await?;
    let mut ctx = mail_context(state, &row);
    ctx.insert("message", message);
    send(state, &mut tx, &row, "case_reply", ctx, now).await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    reload(state, id).await
}

pub async fn assign(
    state: &AppState,
    id: &str,
    actor: &str,
    assignee: Option<&str>,
) -> WResult<RequestRow> {
    let assignee = assignee.map(str::trim).filter(|a| !a.is_empty());
    if let Some(a) = assignee {
        match staff::by_id(&state.db, a).await? {
            Some(s) if s.disabled == 0 => {}
            _ => {
                return Err(WorkflowError::Invalid {
                    field: "assignee",
                    key: "staff.errors.unknown_assignee",
                })
            }
        }
    }
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    require_open(&row)?;
    cases::set_assignee(&mut tx, id, assignee, now).await?;
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        if assignee.is_some() {
            "assigned"
        } else {
            "unassigned"
        },
        None,
        None,
        serde_json::json!({"assignee": assignee, "previous": row.assignee}),
    )
    .await?;
    tx.commit().await?;
    reload(state, id).await
}

/// Internal note: never mailed, allowed on closed cases too.
pub async fn note(state: &AppState, id: &str, actor: &str, body: &str) -> WResult<RequestRow> {
    let body = text(body, "text")?;
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let row = load(&mut tx, id).await?;
    if row.status() == Status::AwaitingVerification {
        return Err(WorkflowError::WrongState {
            status: row.status().as_str(),
        });
    }
    let note = cases::add_note(&mut tx, id, actor, "note", body, now).await?;
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        "note_added",
        None,
        None,
        serde_json::json!({"note_id": note}),
    )
    .await?;
    tx.commit().await?;
    reload(state, id).await
}

/// Ticks (or unticks) one item of a case's "other systems" checklist
/// (export: data added by hand; erasure: system cleaned, Art. 19). The task
/// is done when every item is.
pub async fn tick_task(
    state: &AppState,
    id: &str,
    actor: &str,
    task_id: &str,
    item_id: &str,
    done: bool,
) -> WResult<RequestRow> {
    let now = store::now();
    let tasks = store::tasks::for_request(&state.db, id).await?;
    let task = tasks
        .iter()
        .find(|t| t.id == task_id)
        .ok_or(WorkflowError::NotFound)?;
    let mut items: Vec<store::tasks::ChecklistItem> =
        serde_json::from_str(&task.checklist).map_err(anyhow::Error::from)?;
    let item = items
        .iter_mut()
        .find(|i| i.id == item_id)
        .ok_or(WorkflowError::NotFound)?;
    item.done = done;
    let all_done = items.iter().all(|i| i.done);
    let new = serde_json::to_string(&items).map_err(anyhow::Error::from)?;
    let mut tx = state.db.begin().await?;
    if !cases::update_task_checklist(
        &mut tx,
        task_id,
        id,
        &task.checklist,
        &new,
        all_done,
        actor,
        now,
    )
    .await?
    {
        return Err(WorkflowError::WrongState { status: "changed" });
    }
    event(
        &mut tx,
        state.keys.audit(),
        now,
        id,
        actor,
        if done {
            "task_item_done"
        } else {
            "task_item_reopened"
        },
        None,
        None,
        serde_json::json!({"task": task.kind, "item": item_id, "task_done": all_done}),
    )
    .await?;
    tx.commit().await?;
    reload(state, id).await
}

/// Whether this build can carry out a case of this kind from the queue.
pub fn can_execute(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Delete | RequestKind::ChangeEmail | RequestKind::Object
    )
}

/// Carries out the request; the kind's own workflow decides what that means
/// and writes its own audit events and mail.
pub async fn execute(
    state: &AppState,
    id: &str,
    actor: &str,
    override_reason: Option<&str>,
) -> WResult<RequestRow> {
    let row = super::verification::get(state, id).await?;
    match row.kind() {
        RequestKind::Delete => {
            let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
            super::delete::staff_execute(state, id, actor, reason).await
        }
        // The customer's collision choice (A or B); blockers of the account
        // being deleted apply, with the same override.
        RequestKind::ChangeEmail => {
            let reason = override_reason.map(str::trim).filter(|r| !r.is_empty());
            super::change_email::staff_execute(state, id, actor, reason).await
        }
        // Accepting a legitimate-interest objection stops the processing.
        RequestKind::Object => super::object::staff_accept(state, id, actor).await,
        _ => Err(WorkflowError::KindUnavailable),
    }
}

pub async fn apply(
    state: &AppState,
    id: &str,
    actor: &str,
    action: &Action,
) -> WResult<RequestRow> {
    match action {
        Action::Reject { reason } => reject(state, id, actor, reason).await,
        Action::Ask { message } => ask(state, id, actor, message).await,
        Action::Extend { months, reason } => extend(state, id, actor, *months, reason).await,
        Action::Reply { message } => reply(state, id, actor, message).await,
        Action::Assign { assignee } => assign(state, id, actor, assignee.as_deref()).await,
        Action::Note { text } => note(state, id, actor, text).await,
        Action::Execute { override_reason } => {
            execute(state, id, actor, override_reason.as_deref()).await
        }
        Action::RetryStep { system } => {
            super::steps::staff_retry(state, id, system, actor).await?;
            super::verification::get(state, id).await
        }
        Action::CompleteStep { system, reason } => {
            let reason = text(reason, "reason")?;
            super::steps::staff_complete(state, id, system, actor, reason).await?;
            super::verification::get(state, id).await
        }
    }
}
