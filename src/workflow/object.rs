//! Objection (Art. 21) and withdrawal of consent (Art. 7(3)).
//!
//! After the emailed-code check the customer sees the company's objection
//! purposes with their current state and picks what to stop. Withdrawal of
//! consent and objection to direct marketing take effect at once through the
//! connector; the request completes with a confirmation mail. Objection to
//! processing on legitimate interest needs the customer's reasons and goes to
//! the staff queue (`escalated`, reason `legitimate_interest_objection`);
//! staff accept it with [`staff_accept`] or reject it with the generic case
//! rejection (Art. 12(4) refusal mail).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use tera::Context;

use super::{WResult, WorkflowError};
use crate::{
    config::{ObjectionKind, ObjectionPurpose},
    connector::AccountRef,
    domain::{Email, Locale, RequestKind, Status},
    i18n::long_date,
    mail,
    store::{self, audit, requests, requests::RequestRow},
    AppState,
};

/// Queue reason of an objection that needs a balancing test.
pub const LEGITIMATE_INTEREST_REASON: &str = "legitimate_interest_objection";
pub const REASON_MAX_CHARS: usize = 5000;

/// One purpose as the verified customer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PurposeState {
    pub id: String,
    pub title: String,
    pub description: String,
    /// `consent` | `direct_marketing` | `legitimate_interest`
    pub kind: &'static str,
    /// Consent given (consent purposes) or processing running (the others).
    pub active: bool,
    /// Ticked in advance (deep link `?purpose=`, or the customer's last try).
    pub selected: bool,
}

pub enum FormState {
    Form(Vec<PurposeState>),
    NoAccount,
}

pub struct ObjectInput<'a> {
    /// Objection purpose ids from the company configuration.
    pub purposes: &'a [String],
    /// The customer's reasons; required when a legitimate-interest purpose is picked.
    pub reason: Option<&'a str>,
}

/// Whether the processing behind a purpose runs now. A consent purpose runs
/// only with consent recorded; the others run unless stopped.
fn is_active(p: &ObjectionPurpose, consents: &BTreeMap<String, bool>) -> bool {
    match consents.get(&p.consent_key) {
        Some(v) => *v,
        None => p.kind != ObjectionKind::Consent,
    }
}

async fn account(state: &AppState, req: &RequestRow) -> WResult<Option<AccountRef>> {
    let Some(email) = Email::parse(&req.email) else {
        return Ok(None);
    };
    Ok(state.connector.find_account(&email).await?)
}

fn ids_in(data: &serde_json::Value, key: &str) -> Vec<String> {
    data.get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn kind_of(req: &RequestRow) -> WResult<()> {
    if req.kind() != RequestKind::Object {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    Ok(())
}

/// The purposes with the account's current state, for the page after
/// verification. Only a verified request may see them.
pub async fn form_state(state: &AppState, req: &RequestRow) -> WResult<FormState> {
    kind_of(req)?;
    if req.status() == Status::AwaitingVerification {
        return Err(WorkflowError::NotVerified);
    }
    let Some(acc) = account(state, req).await? else {
        return Ok(FormState::NoAccount);
    };
    let consents = state.connector.consents(&acc).await?;
    let locale = req.locale();
    let preselected = ids_in(&req.data(), "preselected");
    Ok(FormState::Form(
        state
            .settings
            .company
            .objection_purposes
            .iter()
            .map(|p| PurposeState {
                id: p.id.clone(),
                title: p.title.get(locale).to_string(),
                description: p.description.get(locale).to_string(),
                kind: p.kind.as_str(),
                active: is_active(p, &consents),
                selected: preselected.contains(&p.id),
            })
            .collect(),
    ))
}

/// Remembers a deep link's `?purpose=` on a request still waiting for its
/// code, so the form after verification has it ticked. Unknown purposes are
/// ignored (a stale newsletter link must not break the flow).
pub async fn preselect(state: &AppState, id: &str, purpose: &str) -> WResult<()> {
    let Some(p) = state.settings.company.objection_purpose(purpose.trim()) else {
        return Ok(());
    };
    let mut tx = state.db.begin().await?;
    let req = requests::get_for_update(&mut tx, id)
        .await?
        .ok_or(WorkflowError::NotFound)?;
    if req.kind() != RequestKind::Object || req.status() != Status::AwaitingVerification {
        return Ok(());
    }
    let mut data = req.data();
    data["preselected"] = serde_json::json!([p.id]);
    requests::set_data(&mut tx, id, &data, &[], None).await?;
    tx.commit().await?;
    Ok(())
}

/// The chosen purposes, validated against the configuration, in its order.
fn chosen<'c>(state: &'c AppState, ids: &[String]) -> WResult<Vec<&'c ObjectionPurpose>> {
    let ids: Vec<&str> = ids
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(WorkflowError::Invalid {
            field: "purposes",
            key: "object.errors.purposes_required",
        });
    }
    let all = &state.settings.company.objection_purposes;
    if ids.iter().any(|id| !all.iter().any(|p| p.id == *id)) {
        return Err(WorkflowError::Invalid {
            field: "purposes",
            key: "object.errors.unknown_purpose",
        });
    }
    Ok(all
        .iter()
        .filter(|p| ids.contains(&p.id.as_str()))
        .collect())
}

fn keys(purposes: &[&ObjectionPurpose]) -> Vec<String> {
    let mut k: Vec<String> = purposes.iter().map(|p| p.consent_key.clone()).collect();
    k.dedup();
    k
}

fn titles(state: &AppState, locale: Locale, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| state.settings.company.objection_purpose(id))
        .map(|p| p.title.get(locale).to_string())
        .collect()
}

fn due_long(locale: Locale, due_date: &str) -> String {
    NaiveDate::parse_from_str(due_date, "%Y-%m-%d")
        .map(|d| long_date(locale, d))
        .unwrap_or_default()
}

pub async fn submit(state: &AppState, id: &str, input: &ObjectInput<'_>) -> WResult<RequestRow> {
    let req = super::verification::get(state, id).await?;
    kind_of(&req)?;
    match req.status() {
        Status::Verified => {}
        Status::AwaitingVerification => return Err(WorkflowError::NotVerified),
        // A repeated submit answers with the current state and changes nothing.
        _ => return Ok(req),
    }
    let acc = account(state, &req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    let purposes = chosen(state, input.purposes)?;
    let (now_stop, pending): (Vec<&ObjectionPurpose>, Vec<&ObjectionPurpose>) =
        purposes.iter().partition(|p| p.kind.immediate());
    let reason = input.reason.map(str::trim).unwrap_or("");
    if !pending.is_empty() && reason.is_empty() {
        return Err(WorkflowError::Invalid {
            field: "reason",
            key: "object.errors.reason_required",
        });
    }
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(WorkflowError::Invalid {
            field: "reason",
            key: "object.errors.reason_too_long",
        });
    }

    // Withdrawal and direct-marketing objections take effect before the
    // customer hears "done"; repeating this is harmless.
    if !now_stop.is_empty() {
        state
            .connector
            .apply_objections(&acc, &keys(&now_stop), &req.id)
            .await?;
    }

    let stopped: Vec<String> = now_stop.iter().map(|p| p.id.clone()).collect();
    let waiting: Vec<String> = pending.iter().map(|p| p.id.clone()).collect();
    let to = if waiting.is_empty() {
        Status::Completed
    } else {
        Status::Escalated
    };
    let now = store::now();
    let mut data = req.data();
    data["objection"] = serde_json::json!({"stopped": stopped, "pending": waiting});
    if !reason.is_empty() {
        // Staff read the customer's words where they read every message.
        data["message"] = serde_json::json!(reason);
    }
    let reasons: &[&str] = if waiting.is_empty() {
        &[]
    } else {
        &[LEGITIMATE_INTEREST_REASON]
    };
    let outcome = waiting.is_empty().then_some("objection_applied");

    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Verified, to, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return super::verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    requests::set_data(&mut tx, id, &data, reasons, outcome).await?;
    let fanned =
        super::steps::plan_stop(state, &mut tx, id, &req.email, &keys(&now_stop), now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(id),
            actor: "customer",
            action: if waiting.is_empty() {
                "objection_applied"
            } else {
                "objection_escalated"
            },
            from_status: Some(Status::Verified.as_str()),
            to_status: Some(to.as_str()),
            detail: serde_json::json!({
                "stopped": stopped,
                "pending": waiting,
                "reason_chars": reason.chars().count(),
            }),
        },
    )
    .await?;
    let locale = req.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("due_date", &due_long(locale, &req.due_date));
    ctx.insert("stopped", &titles(state, locale, &stopped));
    ctx.insert("pending", &titles(state, locale, &waiting));
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: if stopped.is_empty() {
                "objection_received"
            } else {
                "objection_confirmed"
            },
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    if fanned > 0 {
        // The other systems are told now; the runner retries any that is down.
        if let Err(e) = super::steps::run_request(state, id).await {
            tracing::warn!(error = %e, "objection steps will be retried");
        }
    }
    super::verification::get(state, id).await
}

/// Staff accept an escalated legitimate-interest objection: the connector
/// stops the processing, the request completes and the customer is told.
/// (Rejection is the generic case rejection with reasons, Art. 12(4).)
pub async fn staff_accept(state: &AppState, id: &str, actor: &str) -> WResult<RequestRow> {
    let req = super::verification::get(state, id).await?;
    kind_of(&req)?;
    if req.status() != Status::Escalated {
        return Err(WorkflowError::WrongState {
            status: req.status().as_str(),
        });
    }
    let data = req.data();
    let pending_ids = data
        .get("objection")
        .map(|o| ids_in(o, "pending"))
        .unwrap_or_default();
    let pending: Vec<&ObjectionPurpose> = pending_ids
        .iter()
        .filter_map(|id| state.settings.company.objection_purpose(id))
        .collect();
    let acc = account(state, &req)
        .await?
        .ok_or(WorkflowError::NoAccount)?;
    if !pending.is_empty() {
        state
            .connector
            .apply_objections(&acc, &keys(&pending), &req.id)
            .await?;
    }
    let now = store::now();
    let mut data = data;
    data["objection"]["accepted"] = serde_json::json!(pending_ids);
    let reasons = req.reasons();
    let reasons: Vec<&str> = reasons.iter().map(String::as_str).collect();
    let mut tx = state.db.begin().await?;
    match requests::set_status(&mut tx, id, Status::Escalated, Status::Completed, now).await {
        Ok(()) => {}
        Err(requests::TransitionError::Raced) => return super::verification::get(state, id).await,
        Err(e) => return Err(e.into()),
    }
    requests::set_data(&mut tx, id, &data, &reasons, Some("objection_accepted")).await?;
    let fanned =
        super::steps::plan_stop(state, &mut tx, id, &req.email, &keys(&pending), now).await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(id),
            actor,
            action: "objection_accepted",
            from_status: Some(Status::Escalated.as_str()),
            to_status: Some(Status::Completed.as_str()),
            detail: serde_json::json!({"accepted": pending_ids}),
        },
    )
    .await?;
    let locale = req.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(id));
    ctx.insert("accepted", &titles(state, locale, &pending_ids));
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(id),
            to: &req.email,
            locale,
            template: "objection_accepted",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    if fanned > 0 {
        // The other systems are told now; the runner retries any that is down.
        if let Err(e) = super::steps::run_request(state, id).await {
            tracing::warn!(error = %e, "objection steps will be retried");
        }
    }
    super::verification::get(state, id).await
}

/// What the status page of an objection lists, in the customer's language.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub stopped: Vec<String>,
    pub pending: Vec<String>,
    pub accepted: Vec<String>,
}

pub fn summary(state: &AppState, locale: Locale, req: &RequestRow) -> Summary {
    let data = req.data();
    let Some(o) = data.get("objection") else {
        return Summary::default();
    };
    Summary {
        stopped: titles(state, locale, &ids_in(o, "stopped")),
        pending: titles(state, locale, &ids_in(o, "pending")),
        accepted: titles(state, locale, &ids_in(o, "accepted")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Texts;

    fn purpose(kind: ObjectionKind) -> ObjectionPurpose {
        ObjectionPurpose {
            id: "p".into(),
            title: Texts::default(),
            description: Texts::default(),
            kind,
            consent_key: "k".into(),
            stop: None,
        }
    }

    #[test]
    fn consent_runs_only_when_given_other_kinds_until_stopped() {
        let none = BTreeMap::new();
        let on = BTreeMap::from([("k".to_string(), true)]);
        let off = BTreeMap::from([("k".to_string(), false)]);
        let consent = purpose(ObjectionKind::Consent);
        assert!(!is_active(&consent, &none));
        assert!(is_active(&consent, &on));
        assert!(!is_active(&consent, &off));
        for kind in [
            ObjectionKind::DirectMarketing,
            ObjectionKind::LegitimateInterest,
        ] {
            let p = purpose(kind);
            assert!(is_active(&p, &none));
            assert!(!is_active(&p, &off));
        }
        assert!(ObjectionKind::Consent.immediate());
        assert!(ObjectionKind::DirectMarketing.immediate());
        assert!(!ObjectionKind::LegitimateInterest.immediate());
    }
}
