//! Scheduled anonymisation of inactive accounts (`[company.inactivity]`):
//! the primary system names the accounts without activity; each gets a
//! warning mail with a one-click "keep my account" link, and, if nothing
//! happened by the day, the same erasure as a customer's deletion
//! (blockers, per-system steps, proof mail), with the scheduler as actor.
//! A blocked account is skipped and tried again the next day, never sent
//! to staff as if the customer had asked.
//!
//! Each account moves by compare-and-set (`inactivity_notices`), so two
//! instances warn and erase it once; `serve` also takes an hourly lease so
//! only one instance does the work.

use chrono::{DateTime, Months, TimeZone, Utc};
use serde_json::json;
use tera::Context;

use crate::{
    connector::AccountRef,
    domain::{Email, Locale, RequestKind, Status},
    i18n::long_date,
    mail,
    store::{self, audit, inactivity, requests},
    AppState,
};

/// What a run did (or, dry, would do) for one account: no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub system: String,
    pub account: String,
    /// `warn`, `anonymise`, `blocked`, `wait`
    pub action: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} ({})",
            self.system, self.account, self.action, self.detail
        )
    }
}

const DAY: i64 = 24 * 3600;

/// Called from `serve`'s housekeeping: at most once an hour, on one
/// instance.
pub async fn scheduled(state: &AppState) -> anyhow::Result<Vec<Line>> {
    if state.settings.company.inactivity.is_none() || !state.settings.run_schedules {
        return Ok(Vec::new());
    }
    let now = store::now();
    let holder = uuid::Uuid::new_v4().to_string();
    if !inactivity::take_lease(&state.db, "anonymise", &holder, now, now + 3600).await? {
        return Ok(Vec::new());
    }
    run(state, Utc::now(), false).await
}

/// Warns and anonymises what is due at `now`; with `dry_run`, only says so.
pub async fn run(state: &AppState, now: DateTime<Utc>, dry_run: bool) -> anyhow::Result<Vec<Line>> {
    let Some(cfg) = state.settings.company.inactivity else {
        return Ok(Vec::new());
    };
    let sys = &state.systems;
    let system = sys.primary_id.clone();
    let months = Months::new(cfg.anonymise_after_months);
    let warn = chrono::Duration::days(cfg.warn_days_before.into());
    // Inactive long enough to be warned: the period ends within the warning window.
    let Some(warn_before) = now.checked_sub_months(months).map(|t| t + warn) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = sys.primary.inactive(warn_before, cursor.as_deref()).await?;
        for acc in page.accounts {
            seen.insert(acc.account.clone());
            let line = |action, detail: String| Line {
                system: system.clone(),
                account: acc.account.clone(),
                action,
                detail,
            };
            let mut notice = inactivity::get(&state.db, &system, &acc.account).await?;
            if notice.as_ref().is_some_and(|n| n.status == "kept") {
                // Kept once, inactive again since: a new warning.
                if !dry_run {
                    let mut tx = state.db.begin().await?;
                    inactivity::remove(&mut tx, &system, &acc.account).await?;
                    tx.commit().await?;
                }
                notice = None;
            }
            let due = acc
                .last_activity
                .checked_add_months(months)
                .unwrap_or(acc.last_activity);
            match notice {
                None => {
                    let anonymise_at = due.max(now + warn);
                    out.push(line(
                        "warn",
                        format!(
                            "inactive since {}; anonymised from {}",
                            acc.last_activity.date_naive(),
                            anonymise_at.date_naive()
                        ),
                    ));
                    if !dry_run {
                        warn_account(state, &system, &acc, anonymise_at, now).await?;
                    }
                }
                Some(n) if matches!(n.status.as_str(), "warned" | "blocked") => {
                    // Activity after the warning ends it (the account is
                    // then not listed; see the clean-up below).
                    if now.timestamp() < n.anonymise_at {
                        out.push(line(
                            "wait",
                            format!(
                                "warned; anonymised from {}",
                                Utc.timestamp_opt(n.anonymise_at, 0)
                                    .single()
                                    .map(|d| d.date_naive().to_string())
                                    .unwrap_or_default()
                            ),
                        ));
                        continue;
                    }
                    if n.status == "blocked" && now.timestamp() - n.checked_at < DAY {
                        out.push(line("blocked", "tried again tomorrow".into()));
                        continue;
                    }
                    let account = AccountRef {
                        id: acc.account.clone(),
                    };
                    let blockers = sys.primary.deletion_blockers(&account, now).await?;
                    if !blockers.is_empty() {
                        let codes: Vec<&str> = blockers.iter().map(|b| b.code()).collect();
                        out.push(line("blocked", codes.join(", ")));
                        if !dry_run {
                            let mut tx = state.db.begin().await?;
                            inactivity::transition(
                                &mut tx,
                                &system,
                                &acc.account,
                                &["warned", "blocked"],
                                "blocked",
                                now.timestamp(),
                                None,
                            )
                            .await?;
                            tx.commit().await?;
                        }
                        continue;
                    }
                    out.push(line("anonymise", "no activity since the warning".into()));
                    if !dry_run {
                        anonymise(state, &system, &acc, now).await?;
                    }
                }
                Some(_) => {}
            }
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if !dry_run {
        // Warned accounts that are no longer inactive were used again.
        for n in inactivity::open(&state.db, &system).await? {
            if !seen.contains(&n.account) {
                let mut tx = state.db.begin().await?;
                inactivity::remove(&mut tx, &system, &n.account).await?;
                tx.commit().await?;
            }
        }
    }
    Ok(out)
}

async fn warn_account(
    state: &AppState,
    system: &str,
    acc: &crate::connector::InactiveAccount,
    anonymise_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let token = crate::crypto::random_token();
    let locale = acc
        .locale
        .as_deref()
        .and_then(Locale::parse)
        .unwrap_or(Locale::En);
    let tz = state.settings.company.country.timezone();
    let mut tx = state.db.begin().await?;
    if !inactivity::insert_warned(
        &mut tx,
        system,
        &acc.account,
        anonymise_at.timestamp(),
        &state.keys.token_hash(&token),
        now.timestamp(),
    )
    .await?
    {
        return Ok(());
    }
    let mut ctx = Context::new();
    ctx.insert("company", &state.settings.company.name);
    ctx.insert(
        "since",
        &long_date(locale, acc.last_activity.with_timezone(&tz).date_naive()),
    );
    ctx.insert(
        "on",
        &long_date(locale, anonymise_at.with_timezone(&tz).date_naive()),
    );
    ctx.insert(
        "keep_url",
        &format!(
            "{}/{}/keep/{token}",
            state.settings.base_url,
            locale.as_str()
        ),
    );
    mail::enqueue(
        &mut tx,
        &state.tera,
        &state.keys,
        mail::Outgoing {
            request_id: None,
            to: &acc.email,
            locale,
            template: "inactivity_warning",
            ctx,
            secret: None,
            forget_address: true,
        },
        now.timestamp(),
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now.timestamp(),
        audit::Event {
            request_id: None,
            actor: "scheduler",
            action: "inactivity_warned",
            from_status: None,
            to_status: None,
            detail: json!({"system": system, "account": acc.account,
                           "anonymise_on": anonymise_at.date_naive().to_string()}),
        },
    )
    .await?;
    tx.commit().await?;
    state.mail_notify.notify_one();
    Ok(())
}

/// The same erasure a customer's deletion runs, as a request of its own
/// (channel `scheduler`) so the case, the steps and the proof are there.
async fn anonymise(
    state: &AppState,
    system: &str,
    acc: &crate::connector::InactiveAccount,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(email) = Email::parse(&acc.email) else {
        anyhow::bail!("the system gave an account without a valid address");
    };
    let locale = acc
        .locale
        .as_deref()
        .and_then(Locale::parse)
        .unwrap_or(Locale::En);
    let id = store::new_id();
    let ts = now.timestamp();
    let (due_date, due_at) = super::intake::month_due(state, ts, 0);
    let email_hash = state.keys.lookup_hash(email.as_str());
    let mut tx = state.db.begin().await?;
    if !inactivity::transition(
        &mut tx,
        system,
        &acc.account,
        &["warned", "blocked"],
        "anonymised",
        ts,
        Some(&id),
    )
    .await?
    {
        // Another instance took it.
        return Ok(());
    }
    requests::insert(
        &mut tx,
        &requests::NewRequest {
            id: &id,
            kind: RequestKind::Delete,
            locale: locale.as_str(),
            email: email.as_str(),
            email_hash: &email_hash,
            channel: "scheduler",
            received_at: ts,
            due_date: &due_date,
            due_at,
        },
    )
    .await?;
    requests::set_status(
        &mut tx,
        &id,
        Status::AwaitingVerification,
        Status::Verified,
        ts,
    )
    .await?;
    requests::set_data(
        &mut tx,
        &id,
        &json!({"consent": true, "inactive_since": acc.last_activity.to_rfc3339()}),
        &[],
        None,
    )
    .await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        ts,
        audit::Event {
            request_id: Some(&id),
            actor: "scheduler",
            action: "request_created",
            from_status: None,
            to_status: Some(Status::Verified.as_str()),
            detail: json!({"kind": "delete", "channel": "scheduler", "system": system}),
        },
    )
    .await?;
    tx.commit().await?;
    let Some(req) = requests::get(&state.db, &id).await? else {
        anyhow::bail!("the new request vanished");
    };
    let account = AccountRef {
        id: acc.account.clone(),
    };
    super::delete::erase_and_complete(state, &req, &account, Status::Verified, "scheduler", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The one-click "keep my account": records activity through the primary
/// system and ends the warning. False when the link is unknown or spent.
pub async fn keep(state: &AppState, token: &str) -> anyhow::Result<bool> {
    let hash = state.keys.token_hash(token.trim());
    let Some(n) = inactivity::by_keep_hash(&state.db, &hash).await? else {
        return Ok(false);
    };
    if !matches!(n.status.as_str(), "warned" | "blocked") {
        return Ok(n.status == "kept");
    }
    let now = Utc::now();
    state
        .systems
        .primary
        .record_activity(
            &AccountRef {
                id: n.account.clone(),
            },
            now,
        )
        .await?;
    let mut tx = state.db.begin().await?;
    if inactivity::transition(
        &mut tx,
        &n.system,
        &n.account,
        &["warned", "blocked"],
        "kept",
        now.timestamp(),
        None,
    )
    .await?
    {
        audit::record(
            &mut tx,
            state.keys.audit(),
            now.timestamp(),
            audit::Event {
                request_id: None,
                actor: "customer",
                action: "inactivity_kept",
                from_status: None,
                to_status: None,
                detail: json!({"system": n.system, "account": n.account}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}
