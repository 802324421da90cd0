use chrono::NaiveDate;
use tera::Context;

use super::{limits, WResult, WorkflowError};
use crate::{
    domain::{RequestKind, Status},
    mail,
    store::{self, audit, requests, requests::RequestRow},
    AppState,
};

/// A question always needs a human: it goes to the staff queue and the
/// customer gets a confirmation stating the legal due date.
pub async fn submit(state: &AppState, id: &str, message: &str) -> WResult<RequestRow> {
    let message = message.trim();
    if message.is_empty() {
        return Err(WorkflowError::Invalid {
            field: "message",
            key: "errors.message_empty",
        });
    }
    if message.chars().count() > limits::QUESTION_MAX_CHARS {
        return Err(WorkflowError::Invalid {
            field: "message",
            key: "errors.message_too_long",
        });
    }
    let now = store::now();
    let mut tx = state.db.begin().await?;
    let req = requests::get_for_update(&mut tx, id)
        .await?
        .ok_or(WorkflowError::NotFound)?;
    if req.kind() != RequestKind::Question {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    match req.status() {
        Status::Verified => {}
        Status::AwaitingVerification => return Err(WorkflowError::NotVerified),
        // Submitting twice answers with the current state and changes nothing.
        _ => return Ok(req),
    }
    requests::set_data(
        &mut tx,
        id,
        &serde_json::json!({"message": message}),
        &["question"],
        None,
    )
    .await?;
    requests::set_status(&mut tx, id, Status::Verified, Status::Escalated, now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(id),
            actor: "customer",
            action: "question_submitted",
            from_status: Some("verified"),
            to_status: Some("escalated"),
            detail: serde_json::json!({"chars": message.chars().count()}),
        },
    )
    .await?;
    let locale = req.locale();
    let due = NaiveDate::parse_from_str(&req.due_date, "%Y-%m-%d").map_err(anyhow::Error::from)?;
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("due_date", &crate::i18n::long_date(locale, due));
    ctx.insert("message", message);
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "question_received",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    requests::get(&state.db, id)
        .await?
        .ok_or(WorkflowError::NotFound)
}
