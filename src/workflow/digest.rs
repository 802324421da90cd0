//! The daily digest to the privacy address: new cases, cases due within 5
//! days, overdue cases and open checklist work, so staff learn of new work
//! without watching the queue. References and kinds only, never personal
//! data. Sent once a local day (from 07:00), whichever instance gets there
//! first.

use chrono::{TimeZone, Timelike, Utc};
use tera::Context;

use crate::{
    domain::{deadline::Country, Locale},
    mail,
    store::{self, cases},
    AppState,
};

/// The hour (company time) from which the day's digest goes out.
pub const SEND_FROM_HOUR: u32 = 7;
pub const DUE_SOON_DAYS: i64 = 5;

/// The language of the company's own staff mail.
pub fn staff_locale(country: Country) -> Locale {
    match country {
        Country::NL => Locale::Nl,
        Country::SE => Locale::Sv,
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Digest {
    pub new: usize,
    pub due_soon: usize,
    pub overdue: usize,
    pub checklist: usize,
}

/// Sends today's digest if it is due and not yet sent; `None` when nothing
/// was sent (too early, already sent, or no open work at all).
pub async fn run(state: &AppState, now: i64) -> anyhow::Result<Option<Digest>> {
    let tz = state.settings.company.country.timezone();
    let local = tz.from_utc_datetime(
        &chrono::DateTime::<Utc>::from_timestamp(now, 0)
            .unwrap_or_default()
            .naive_utc(),
    );
    if local.hour() < SEND_FROM_HOUR {
        return Ok(None);
    }
    let day = local.format("%Y-%m-%d").to_string();
    let rows = cases::digest(&state.db, 1000).await?;
    if rows.is_empty() || !cases::claim_digest(&state.db, &day, now).await? {
        return Ok(None);
    }
    let locale = staff_locale(state.settings.company.country);
    let line = |r: &cases::DigestRow| {
        serde_json::json!({
            "reference": super::reference(&r.id),
            "kind": crate::i18n::t(locale, &format!("staff.kinds.{}", r.kind)),
            "due_date": r.due_date,
            "link": format!("{}/staff/cases/{}", state.settings.base_url, r.id),
        })
    };
    let soon = now + DUE_SOON_DAYS * 24 * 3600;
    let open = |r: &&cases::DigestRow| r.status == "escalated" || r.status == "processing";
    let new: Vec<_> = rows
        .iter()
        .filter(|r| r.received_at >= now - 24 * 3600)
        .map(line)
        .collect();
    let overdue: Vec<_> = rows
        .iter()
        .filter(open)
        .filter(|r| r.due_at < now)
        .map(line)
        .collect();
    let due_soon: Vec<_> = rows
        .iter()
        .filter(open)
        .filter(|r| r.due_at >= now && r.due_at < soon)
        .map(line)
        .collect();
    let checklist: Vec<_> = rows.iter().filter(|r| r.open_tasks > 0).map(line).collect();
    let digest = Digest {
        new: new.len(),
        due_soon: due_soon.len(),
        overdue: overdue.len(),
        checklist: checklist.len(),
    };
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("day", &day);
    ctx.insert("new_cases", &new);
    ctx.insert("due_soon", &due_soon);
    ctx.insert("overdue", &overdue);
    ctx.insert("checklist", &checklist);
    ctx.insert("queue_link", &format!("{}/staff/", state.settings.base_url));
    let mut tx = state.db.begin().await?;
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: None,
            to: &state.settings.company.privacy_email,
            locale,
            template: "staff_digest",
            ctx,
            secret: None,
            forget_address: false,
        },
        store::now(),
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(Some(digest))
}
