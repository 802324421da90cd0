//! Requests that reached the company by phone, letter or email (EDPB
//! 01/2022 §52): staff enter them, the customer gets the code mail to
//! continue in the portal, and the legal clock starts on the day staff
//! say the request was received.

use chrono::{NaiveDate, TimeZone};

use super::{intake, limits, WResult, WorkflowError};
use crate::{
    domain::{Email, Locale, RequestKind},
    store::{self, audit, codes, requests},
    AppState,
};

pub const CHANNELS: [&str; 3] = ["phone", "letter", "email"];
/// How far back a received date may lie.
pub const MAX_AGE_DAYS: i64 = 62;

pub struct Input<'a> {
    pub kind: &'a str,
    pub email: &'a str,
    pub locale: &'a str,
    pub channel: &'a str,
    /// `YYYY-MM-DD`, the day the company received the request.
    pub received: &'a str,
}

fn invalid(field: &'static str, key: &'static str) -> WorkflowError {
    WorkflowError::Invalid { field, key }
}

/// Returns the new request's id.
pub async fn start(state: &AppState, input: &Input<'_>, actor: &str) -> WResult<String> {
    let kind = RequestKind::parse(input.kind).ok_or(invalid("kind", "errors.invalid_kind"))?;
    let locale = Locale::parse(input.locale)
        .filter(|l| l.as_str() == input.locale)
        .ok_or(invalid("locale", "errors.invalid_locale"))?;
    if !CHANNELS.contains(&input.channel) {
        return Err(invalid("channel", "staff.errors.invalid_channel"));
    }
    let email = Email::parse(input.email).ok_or(invalid("email", "errors.invalid_email"))?;
    if !kind.available() {
        return Err(WorkflowError::KindUnavailable);
    }
    let country = state.settings.company.country;
    let tz = country.timezone();
    let now = store::now();
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let day = NaiveDate::parse_from_str(input.received.trim(), "%Y-%m-%d")
        .map_err(|_| invalid("received", "staff.errors.received_date"))?;
    if day > today || (today - day).num_days() > MAX_AGE_DAYS {
        return Err(invalid("received", "staff.errors.received_date"));
    }
    // Receipt is the start of that day in the company's time zone (today:
    // now), which is the calendar day the deadline counts from.
    let received_at = if day == today {
        now
    } else {
        tz.from_local_datetime(&day.and_hms_opt(12, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.timestamp())
            .unwrap_or(now)
    };
    let email_hash = state.keys.lookup_hash(email.as_str());
    let id = crate::store::new_id();
    let (due_date, due_at) = intake::month_due(state, received_at, 0);

    let mut tx = state.db.begin().await?;
    store::lock_addresses(&mut tx, &[&email_hash]).await?;
    let sent = codes::sent_to_address_since(&mut tx, &email_hash, now - 3600).await?;
    if sent >= limits::CODES_PER_ADDRESS_HOUR {
        return Err(WorkflowError::RateLimited { retry_after: 3600 });
    }
    requests::insert(
        &mut tx,
        &requests::NewRequest {
            id: &id,
            kind,
            locale: locale.as_str(),
            email: email.as_str(),
            email_hash: &email_hash,
            channel: input.channel,
            received_at,
            due_date: &due_date,
            due_at,
        },
    )
    .await?;
    // The identity-check pause starts when the code goes out, not on the
    // (earlier) day of receipt.
    requests::set_data(
        &mut tx,
        &id,
        &serde_json::json!({"entered_at": now}),
        &[],
        None,
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),now,
        audit::Event {
            request_id: Some(&id),
            actor,
            action: "request_created",
            from_status: None,
            to_status: Some("awaiting_verification"),
            detail: serde_json::json!({"kind": kind.as_str(), "locale": locale.as_str(), "channel": input.channel, "received": day.to_string()}),
        },
    )
    .await?;
    intake::issue_code(
        state,
        &mut tx,
        &id,
        kind,
        &email,
        &email_hash,
        locale,
        now,
        "code",
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    state.metrics.requests_created.inc();
    state.metrics.codes_sent.inc();
    Ok(id)
}
