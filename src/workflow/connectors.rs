//! The operator's go-live checks of the company's systems:
//! `connectors check` (can each be reached, with the right secret?) and
//! `connectors preview EMAIL` (what each holds for one address; a dry run).

use std::collections::BTreeMap;

use crate::{
    connector::{
        http::{CallError, Subject},
        AccountRef, SecondaryKind,
    },
    domain::Email,
    store::{self, audit},
    AppState,
};

/// One line per system: `ok   shop (http, primary): ping answered`.
pub async fn check(state: &AppState) -> Vec<(String, bool)> {
    let sys = &state.systems;
    let mut out = Vec::new();
    let line = |ok: bool, id: &str, what: &str, detail: String| {
        (
            format!(
                "{:<4} {id} ({what}): {detail}",
                if ok { "ok" } else { "FAIL" }
            ),
            ok,
        )
    };
    if let Some(q) = &sys.primary_sql {
        // The mapping was checked against the live schema when the state
        // was built; a wrong name never gets this far.
        let what = format!("sql {}, primary", q.backend().name());
        out.push(match q.ping().await {
            Ok(()) => line(
                true,
                &sys.primary_id,
                &what,
                "database answers; every mapped table and column exists".into(),
            ),
            Err(e) => line(false, &sys.primary_id, &what, e.to_string()),
        });
        for w in q.index_warnings() {
            out.push((format!("warn {}: {w}", sys.primary_id), true));
        }
    }
    match &sys.primary_http {
        _ if sys.primary_sql.is_some() => {}
        Some(h) => out.push(match h.ping().await {
            Ok(()) => line(
                true,
                &sys.primary_id,
                "http, primary",
                "ping answered".into(),
            ),
            Err(e) => line(false, &sys.primary_id, "http, primary", e.to_string()),
        }),
        None => out.push(match state.db.ready().await {
            true => line(
                true,
                &sys.primary_id,
                "built-in store, primary",
                "database answers".into(),
            ),
            false => line(
                false,
                &sys.primary_id,
                "built-in store, primary",
                "the database does not answer".into(),
            ),
        }),
    }
    for s in &sys.secondaries {
        out.push(match &s.kind {
            SecondaryKind::Http(h) => match h.ping().await {
                Ok(()) => line(true, &s.id, "http", "ping answered".into()),
                Err(e) => line(false, &s.id, "http", e.to_string()),
            },
            SecondaryKind::Email { to, .. } => match smtp_check(state).await {
                Ok(()) => line(
                    true,
                    &s.id,
                    "email",
                    format!("instructions go to {to}; the mail server answers"),
                ),
                Err(e) => line(false, &s.id, "email", e),
            },
        });
    }
    out
}

async fn smtp_check(state: &AppState) -> Result<(), String> {
    use secrecy::ExposeSecret;
    let Some(url) = &state.settings.smtp_url else {
        return match state.settings.mode {
            crate::config::Mode::Demo => Ok(()),
            crate::config::Mode::Serve => Err("PORTAL_SMTP_URL is not set".into()),
        };
    };
    let smtp = crate::mail::transport::Smtp::new(
        url.expose_secret(),
        state.settings.mail_timing.send_timeout,
    )?;
    smtp.check()
        .await
        .map_err(|why| format!("the mail server does not answer ({why})"))
}

/// What each system holds for `email`, counted; nothing is changed and no
/// value is printed (an operator's terminal is not the place for them).
pub async fn preview(state: &AppState, email: &str) -> anyhow::Result<Vec<String>> {
    let email = Email::parse(email).ok_or_else(|| anyhow::anyhow!("not an email address"))?;
    let sys = &state.systems;
    let mut out = Vec::new();
    match sys.primary.find_account(&email).await {
        Ok(None) => out.push(format!("{} (primary): no account", sys.primary_id)),
        Err(e) => out.push(format!("{} (primary): {e}", sys.primary_id)),
        Ok(Some(acc)) => {
            out.push(format!("{} (primary): account {}", sys.primary_id, acc.id));
            match sys
                .primary
                .deletion_blockers(&acc, chrono::Utc::now())
                .await
            {
                Ok(b) if b.is_empty() => out.push("  blockers: none".into()),
                Ok(b) => out.push(format!(
                    "  blockers: {}",
                    b.iter().map(|b| b.code()).collect::<Vec<_>>().join(", ")
                )),
                Err(e) => out.push(format!("  blockers: {e}")),
            }
            match sys.primary.consents(&acc).await {
                Ok(c) => out.push(format!("  consents: {}", consent_line(&c))),
                Err(e) => out.push(format!("  consents: {e}")),
            }
            out.push(format!(
                "  holds: {}",
                match count_primary(state, &acc).await {
                    Ok(c) => counts_line(&c),
                    Err(e) => e.to_string(),
                }
            ));
            if let Some(q) = &sys.primary_sql {
                match q.preview(&acc).await {
                    Ok(tables) => {
                        for t in tables {
                            out.push(format!(
                                "  erasure: {} {} row(s): {}",
                                t.table,
                                t.rows,
                                match t.action {
                                    "delete" => "deleted",
                                    "erase" => "personal columns erased",
                                    "keep" => "kept, personal columns erased",
                                    _ => "unchanged",
                                }
                            ));
                        }
                    }
                    Err(e) => out.push(format!("  erasure: {e}")),
                }
            }
        }
    }
    for s in &sys.secondaries {
        match &s.kind {
            SecondaryKind::Http(h) => {
                let subject = Subject::Email(email.as_str().to_string());
                let holds = match count_secondary(h, &subject).await {
                    Ok(c) => counts_line(&c),
                    Err(CallError::Unsupported(_)) => "does not offer exports".into(),
                    Err(e) => e.to_string(),
                };
                out.push(format!("{} (http): holds: {holds}", s.id));
                match h.consents(&subject).await {
                    Ok(c) => out.push(format!("  consents: {}", consent_line(&c))),
                    Err(CallError::Unsupported(_)) => {}
                    Err(e) => out.push(format!("  consents: {e}")),
                }
            }
            SecondaryKind::Email { to, .. } => out.push(format!(
                "{} (email): told by mail at {to} on erasure and objection",
                s.id
            )),
        }
    }
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        store::now(),
        audit::Event {
            request_id: None,
            actor: "operator",
            action: "connectors_preview",
            from_status: None,
            to_status: None,
            // The address stays out of the permanent trail.
            detail: serde_json::json!({"systems": 1 + sys.secondaries.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(out)
}

fn consent_line(c: &BTreeMap<String, bool>) -> String {
    if c.is_empty() {
        return "none".into();
    }
    c.iter()
        .map(|(k, v)| format!("{k}={}", if *v { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(", ")
}

fn counts_line(c: &BTreeMap<String, usize>) -> String {
    if c.is_empty() {
        return "nothing".into();
    }
    c.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn count_primary(
    state: &AppState,
    acc: &AccountRef,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .systems
            .primary
            .export_records(acc, cursor.as_deref())
            .await?;
        for (cat, _) in page.records {
            *counts.entry(cat).or_insert(0) += 1;
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(counts),
        }
    }
}

async fn count_secondary(
    h: &crate::connector::http::HttpSystem,
    subject: &Subject,
) -> Result<BTreeMap<String, usize>, CallError> {
    let mut counts = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = h.export_page(subject, cursor.as_deref()).await?;
        for (cat, _) in page.records {
            *counts.entry(cat).or_insert(0) += 1;
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(counts),
        }
    }
}
