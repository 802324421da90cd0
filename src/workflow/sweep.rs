//! Periodic housekeeping: every state ends (SPEC: "leave a request without a
//! way out" is never allowed) and request data goes once its time is up.
//!
//! - waiting for the code: one reminder before the code expires, then
//!   `expired` a day after the last code, with a short notice;
//! - verified but never submitted: `expired` after 7 days, with a notice;
//! - closed: purged after the retention period, unless staff still have
//!   checklist work open on it.

use tera::Context;

use crate::{
    domain::Status,
    mail,
    store::{self, audit, codes, requests, requests::RequestRow},
    AppState,
};

use super::limits;

pub struct SweepReport {
    pub reminded: usize,
    pub expired: usize,
    pub purged: usize,
    pub archives_deleted: usize,
}

/// A code still waiting this long gets its one reminder (the code lives 15
/// minutes, so the reminder leaves a few to use it).
pub const REMINDER_AFTER_SECS: i64 = 10 * 60;
/// A verified request that was never submitted ends after a week.
pub const UNSUBMITTED_EXPIRY_SECS: i64 = 7 * 24 * 3600;

pub async fn run(state: &AppState) -> anyhow::Result<SweepReport> {
    let now = store::now();
    let reminded = remind(state, now).await?;
    let mut expired = 0;
    for id in
        requests::stale_unverified(&state.db, now - limits::UNVERIFIED_EXPIRY_SECS, 500).await?
    {
        let Some(req) = requests::get(&state.db, &id).await? else {
            continue;
        };
        if expire(
            state,
            &req,
            Status::AwaitingVerification,
            "expired_unverified",
            now,
        )
        .await?
        {
            expired += 1;
        }
    }
    for req in requests::unsubmitted(&state.db, now - UNSUBMITTED_EXPIRY_SECS, 500).await? {
        if expire(state, &req, req.status(), "expired_unsubmitted", now).await? {
            expired += 1;
        }
    }
    let months = state.settings.company.retention_months as i64;
    let cutoff = now - months * 31 * 24 * 3600;
    let mut purged = 0;
    for id in requests::purgeable(&state.db, cutoff, 500).await? {
        let mut tx = state.db.begin().await?;
        // Only the instance that actually removed the row records it.
        if !requests::delete(&mut tx, &id).await? {
            continue;
        }
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            audit::Event {
                request_id: Some(&id),
                actor: "system",
                action: "purged_after_retention",
                from_status: None,
                to_status: None,
                detail: serde_json::json!({"retention_months": months}),
            },
        )
        .await?;
        tx.commit().await?;
        purged += 1;
    }
    let mut tx = state.db.begin().await?;
    codes::prune(&mut tx, now - 2 * 3600).await?;
    tx.commit().await?;
    let archives_deleted = super::export::sweep(state).await?;
    Ok(SweepReport {
        reminded,
        expired,
        purged,
        archives_deleted,
    })
}

fn context(state: &AppState, req: &RequestRow) -> Context {
    let locale = req.locale();
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("reference", &super::reference(&req.id));
    ctx.insert("action", &super::kind_action(state, locale, req.kind()));
    ctx.insert(
        "kind_label",
        &crate::i18n::t(locale, &format!("kinds.{}.title", req.kind().as_str())),
    );
    ctx
}

/// One reminder per request whose code is about to expire unused, with a
/// link to the code page (which also sends a new code).
async fn remind(state: &AppState, now: i64) -> anyhow::Result<usize> {
    let mut n = 0;
    for req in requests::due_for_reminder(&state.db, now - REMINDER_AFTER_SECS, now, 500).await? {
        let mut tx = state.db.begin().await?;
        if !requests::claim_reminder(&mut tx, &req.id, now).await? {
            continue;
        }
        let locale = req.locale();
        let mut ctx = context(state, &req);
        ctx.insert(
            "link",
            &format!(
                "{}/{}/r/{}/code",
                state.settings.base_url,
                locale.as_str(),
                req.id
            ),
        );
        mail::enqueue(
            &mut tx,
            &state.tera,
            &state.keys,
            mail::Outgoing {
                request_id: Some(&req.id),
                to: &req.email,
                locale,
                template: "verification_reminder",
                ctx,
                secret: None,
                forget_address: false,
            },
            now,
        )
        .await?;
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            audit::Event {
                request_id: Some(&req.id),
                actor: "system",
                action: "reminder_sent",
                from_status: None,
                to_status: None,
                detail: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        n += 1;
    }
    if n > 0 {
        state.mail_notify.notify_one();
    }
    Ok(n)
}

/// Ends a request that waited too long for the customer, and tells them how
/// to start again. False when someone else moved it first.
async fn expire(
    state: &AppState,
    req: &RequestRow,
    from: Status,
    action: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let mut tx = state.db.begin().await?;
    if requests::set_status(&mut tx, &req.id, from, Status::Expired, now)
        .await
        .is_err()
    {
        return Ok(false);
    }
    audit::record(
        &mut tx,
        state.keys.audit(),
        now,
        audit::Event {
            request_id: Some(&req.id),
            actor: "system",
            action,
            from_status: Some(from.as_str()),
            to_status: Some("expired"),
            detail: serde_json::json!({}),
        },
    )
    .await?;
    let locale = req.locale();
    let mut ctx = context(state, req);
    ctx.insert(
        "link",
        &format!(
            "{}/{}/{}",
            state.settings.base_url,
            locale.as_str(),
            req.kind().slug()
        ),
    );
    ctx.insert("was_verified", &(from != Status::AwaitingVerification));
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: Some(&req.id),
            to: &req.email,
            locale,
            template: "request_expired",
            ctx,
            secret: None,
            forget_address: false,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(true)
}
