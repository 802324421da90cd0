//! Periodic housekeeping: expire requests never verified, purge closed
//! requests past retention (SPEC: keep request data no longer than needed).

use crate::{
    domain::Status,
    store::{self, audit, codes, requests},
    AppState,
};

use super::limits;

pub struct SweepReport {
    pub expired: usize,
    pub purged: usize,
    pub archives_deleted: usize,
}

pub async fn run(state: &AppState) -> anyhow::Result<SweepReport> {
    let now = store::now();
    let mut expired = 0;
    for id in
        requests::stale_unverified(&state.db, now - limits::UNVERIFIED_EXPIRY_SECS, 500).await?
    {
        let mut tx = state.db.begin().await?;
        if requests::set_status(
            &mut tx,
            &id,
            Status::AwaitingVerification,
            Status::Expired,
            now,
        )
        .await
        .is_ok()
        {
            audit::record(
                &mut tx,
                now,
                audit::Event {
                    request_id: Some(&id),
                    actor: "system",
                    action: "expired_unverified",
                    from_status: Some("awaiting_verification"),
                    to_status: Some("expired"),
                    detail: serde_json::json!({}),
                },
            )
            .await?;
            tx.commit().await?;
            expired += 1;
        }
    }
    let months = state.settings.company.retention_months as i64;
    let cutoff = now - months * 31 * 24 * 3600;
    let mut purged = 0;
    for id in requests::purgeable(&state.db, cutoff, 500).await? {
        let mut tx = state.db.begin().await?;
        requests::delete(&mut tx, &id).await?;
        audit::record(
            &mut tx,
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
        expired,
        purged,
        archives_deleted,
    })
}
