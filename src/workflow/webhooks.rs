//! Events out: the company's tools (a ticket system, a chat channel) hear
//! of requests as they move, signed the Standard Webhooks way like the
//! connector calls. Events are read from the audit trail — every state
//! change is there already, so no flow can forget to announce one — and
//! queued per receiver in a delivery outbox that retries with backoff and
//! survives restarts. At least once; `webhook-id` is the delivery's id, the
//! same on every retry. Bodies carry ids, kind, status and dates, never an
//! address or a name.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::{
    config::WebhookConfig,
    store::{self, audit, webhooks},
    AppState,
};

/// A configured receiver, its secret read from the environment at start.
pub struct Receiver {
    pub url: String,
    secret: secrecy::SecretBox<Vec<u8>>,
    events: Option<Vec<String>>,
}

impl Receiver {
    pub fn from_config(c: &WebhookConfig) -> anyhow::Result<Receiver> {
        let raw = std::env::var(&c.secret_env)
            .map_err(|_| anyhow::anyhow!("webhook {}: {} is not set", c.url, c.secret_env))?;
        let secret = crate::connector::http::parse_secret(&raw)
            .map_err(|e| anyhow::anyhow!("webhook {}: {e}", c.url))?;
        Ok(Receiver {
            url: c.url.clone(),
            secret: secrecy::SecretBox::new(Box::new(secret)),
            events: c.events.clone(),
        })
    }

    fn wants(&self, event: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|list| list.iter().any(|e| e == event))
    }
}

/// The event an audit entry announces, if any.
pub fn event_type(action: &str, to_status: Option<&str>, detail: &str) -> Option<&'static str> {
    match (action, to_status) {
        ("request_created", _) => Some("request.received"),
        ("deadline_passed", _) => Some("request.overdue"),
        ("step_failed", _) => {
            let d: Value = serde_json::from_str(detail).unwrap_or(Value::Null);
            (d["operation"] == "erase").then_some("erasure.step_failed")
        }
        (_, Some("verified")) => Some("request.verified"),
        (_, Some("escalated")) => Some("request.escalated"),
        (_, Some("completed")) => Some("request.completed"),
        (_, Some("rejected")) => Some("request.rejected"),
        _ => None,
    }
}

/// Queues what each receiver has not heard yet. Returns the deliveries
/// queued.
pub async fn enqueue(state: &AppState) -> anyhow::Result<usize> {
    let mut queued = 0;
    for r in &state.webhooks {
        let from = webhooks::cursor(&state.db, &r.url).await?;
        let events = webhooks::events_after(&state.db, from, 500).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            continue;
        };
        let now = store::now();
        let mut rows = Vec::new();
        for e in &events {
            let Some(kind) = event_type(&e.action, e.to_status.as_deref(), &e.detail) else {
                continue;
            };
            if !r.wants(kind) {
                continue;
            }
            let Some(id) = &e.request_id else { continue };
            // A purged request has nothing left to say.
            let Some(req) = store::requests::get(&state.db, id).await? else {
                continue;
            };
            let at = DateTime::<Utc>::from_timestamp(e.at, 0).unwrap_or_default();
            let status = e.to_status.clone().unwrap_or_else(|| req.status.clone());
            let body = json!({
                "type": kind,
                "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "data": {
                    "id": req.id,
                    "reference": super::reference(&req.id),
                    "kind": req.kind,
                    "status": status,
                    "due_date": req.due_date,
                    "reasons": req.reasons(),
                }
            });
            rows.push((format!("msg_{}", uuid::Uuid::now_v7().simple()), kind, body));
        }
        let mut tx = state.db.begin().await?;
        if !webhooks::advance(&mut tx, &r.url, from, last).await? {
            // Another instance queued these; it will deliver them.
            continue;
        }
        for (id, kind, body) in &rows {
            webhooks::insert(&mut tx, id, &r.url, kind, &body.to_string(), now).await?;
        }
        tx.commit().await?;
        queued += rows.len();
    }
    Ok(queued)
}

/// Deliveries are retried for a week, then kept as `failed` for the
/// operator (and logged).
const GIVE_UP_AFTER_SECS: i64 = 7 * 24 * 3600;

/// Sends what is due. Returns the deliveries that went through.
pub async fn deliver(state: &AppState, client: &reqwest::Client) -> anyhow::Result<usize> {
    let now = store::now();
    let mut sent = 0;
    for d in webhooks::due(&state.db, now, 100).await? {
        let Some(r) = state.webhooks.iter().find(|r| r.url == d.receiver) else {
            continue;
        };
        if !webhooks::lease(&state.db, &d.id, now, now + 60).await? {
            continue;
        }
        let ts = Utc::now().timestamp();
        use secrecy::ExposeSecret;
        let sig =
            crate::connector::http::sign(r.secret.expose_secret(), &d.id, ts, d.payload.as_bytes());
        let result = client
            .post(&r.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(d.payload.clone())
            .send()
            .await;
        let error = match result {
            Ok(resp) if resp.status().is_success() => None,
            Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timed out".to_string()),
            Err(_) => Some("connection failed".to_string()),
        };
        let now = store::now();
        match error {
            None => {
                webhooks::delivered(&state.db, &d.id, now).await?;
                sent += 1;
            }
            Some(why) => {
                let give_up = now - d.created_at > GIVE_UP_AFTER_SECS;
                let base = state.settings.connector_retry_base.as_secs_f64();
                let max = state.settings.connector_retry_max.as_secs_f64();
                let wait = (base * 2f64.powi(d.attempts.clamp(0, 20) as i32)).min(max);
                let next = now + (wait.ceil() as i64).max(1);
                webhooks::retry(&state.db, &d.id, next, &why, give_up).await?;
                if give_up {
                    tracing::warn!(event = %d.event_type, error = %why, "webhook given up after a week");
                } else if d.attempts == 0 {
                    tracing::warn!(event = %d.event_type, error = %why, "webhook receiver did not take an event; retrying");
                }
            }
        }
    }
    Ok(sent)
}

/// Notes requests newly past their legal deadline, once each, in the audit
/// trail (which the event feed turns into `request.overdue`).
pub async fn note_overdue(state: &AppState) -> anyhow::Result<usize> {
    let now = store::now();
    let mut n = 0;
    for id in webhooks::newly_overdue(&state.db, now, 200).await? {
        let mut tx = state.db.begin().await?;
        if !webhooks::note_overdue(&mut tx, &id, now).await? {
            continue;
        }
        audit::record(
            &mut tx,
            state.keys.audit(),
            now,
            super::event(&id, "system", "deadline_passed", None, None, json!({})),
        )
        .await?;
        tx.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// The background loop: overdue notes, queueing, delivery.
pub async fn run(
    state: std::sync::Arc<AppState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("privacy-portal/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook client could not start");
            return;
        }
    };
    loop {
        if let Err(e) = note_overdue(&state).await {
            tracing::warn!(error = %e, "overdue check failed");
        }
        if !state.webhooks.is_empty() {
            if let Err(e) = enqueue(&state).await {
                tracing::warn!(error = %e, "webhook queueing failed");
            }
            if let Err(e) = deliver(&state, &client).await {
                tracing::warn!(error = %e, "webhook delivery failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(state.settings.worker_interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_map_to_the_contracts_event_types() {
        assert_eq!(
            event_type("request_created", None, "{}"),
            Some("request.received")
        );
        assert_eq!(
            event_type("verified", Some("verified"), "{}"),
            Some("request.verified")
        );
        assert_eq!(
            event_type("deletion_blocked", Some("escalated"), "{}"),
            Some("request.escalated")
        );
        assert_eq!(
            event_type("erased", Some("completed"), "{}"),
            Some("request.completed")
        );
        assert_eq!(
            event_type("rejected", Some("rejected"), "{}"),
            Some("request.rejected")
        );
        assert_eq!(
            event_type("deadline_passed", None, "{}"),
            Some("request.overdue")
        );
        assert_eq!(
            event_type("step_failed", None, r#"{"operation":"erase"}"#),
            Some("erasure.step_failed")
        );
        assert_eq!(
            event_type("step_failed", None, r#"{"operation":"stop"}"#),
            None
        );
        assert_eq!(event_type("note_added", None, "{}"), None);
    }
}
