//! Retention per data category: a category of the privacy notice with
//! `retain = "6 months"` and `data = ["ip_log"]` has those rows deleted in
//! every system once they are older — the same line of the company file
//! that the privacy notice shows, so the promise and the practice cannot
//! drift apart. Runs daily inside `serve` on one instance; every run is
//! audited with its counts.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{
    config::Period,
    connector::SecondaryKind,
    store::{self, audit, inactivity},
    AppState,
};

/// What a run deleted: (notice category, data category, system, rows or
/// `None` when the system does not keep that data).
pub type Counts = Vec<(String, String, String, Option<u64>)>;

/// Called from `serve`'s housekeeping: once a day, on one instance.
pub async fn scheduled(state: &AppState) -> anyhow::Result<Option<Counts>> {
    let has_any = state
        .settings
        .company
        .privacy_notice
        .categories
        .iter()
        .any(|c| c.retain.is_some());
    if !has_any || !state.settings.run_schedules {
        return Ok(None);
    }
    let now = store::now();
    let holder = uuid::Uuid::new_v4().to_string();
    if !inactivity::take_lease(&state.db, "retention", &holder, now, now + 23 * 3600).await? {
        return Ok(None);
    }
    Ok(Some(run(state, Utc::now()).await?))
}

pub async fn run(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<Counts> {
    let mut out: Counts = Vec::new();
    let mut failures = Vec::new();
    for cat in &state.settings.company.privacy_notice.categories {
        let Some(period) = cat.retain.as_deref().and_then(Period::parse) else {
            continue;
        };
        let before = period.cutoff(now);
        for data in &cat.data {
            let primary = state.systems.primary.purge(data, before).await;
            match primary {
                Ok(n) => out.push((
                    cat.id.clone(),
                    data.clone(),
                    state.systems.primary_id.clone(),
                    n,
                )),
                Err(e) => failures.push(format!("{}: {e}", state.systems.primary_id)),
            }
            for s in &state.systems.secondaries {
                if let SecondaryKind::Http(h) = &s.kind {
                    match h.purge_category(data, before).await {
                        Ok(n) => out.push((cat.id.clone(), data.clone(), s.id.clone(), n)),
                        Err(e) => failures.push(format!("{}: {e}", s.id)),
                    }
                }
            }
        }
    }
    let counts: Vec<serde_json::Value> = out
        .iter()
        .filter(|(_, _, _, n)| n.is_some())
        .map(|(c, d, s, n)| json!({"category": c, "data": d, "system": s, "deleted": n}))
        .collect();
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        state.keys.audit(),
        now.timestamp(),
        audit::Event {
            request_id: None,
            actor: "scheduler",
            action: "retention_purged",
            from_status: None,
            to_status: None,
            detail: json!({"counts": counts, "failures": failures}),
        },
    )
    .await?;
    tx.commit().await?;
    for f in &failures {
        tracing::warn!(failure = %f, "retention purge failed for a system; tried again tomorrow");
    }
    Ok(out)
}
