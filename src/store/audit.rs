//! The audit trail: append-only and tamper-evident. Each event carries the
//! hash of the event before it, so a changed, inserted or removed row breaks
//! the chain (`privacy-portal audit verify`). Details carry no personal
//! data — the request id links an event to its request, which is purged on
//! schedule; free text written by staff lives in `case_notes`.

use sha2::{Digest, Sha256};

use super::Conn;

/// Serialises chain appends on PostgreSQL (any constant works; this one
/// spells "audit" in ASCII).
const CHAIN_LOCK: i64 = 0x61_75_64_69_74;

pub struct Event<'a> {
    pub request_id: Option<&'a str>,
    pub actor: &'a str,
    pub action: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub detail: serde_json::Value,
}

/// SHA-256 over the previous hash and every stored field, length-prefixed
/// so that no two different events can encode alike.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    prev: &str,
    request_id: Option<&str>,
    at: i64,
    actor: &str,
    action: &str,
    from_status: Option<&str>,
    to_status: Option<&str>,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"privacy-portal/audit/v1");
    let mut part = |p: Option<&[u8]>| match p {
        None => h.update([0u8]),
        Some(b) => {
            h.update([1u8]);
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
    };
    part(Some(prev.as_bytes()));
    part(request_id.map(str::as_bytes));
    part(Some(&at.to_be_bytes()));
    part(Some(actor.as_bytes()));
    part(Some(action.as_bytes()));
    part(from_status.map(str::as_bytes));
    part(to_status.map(str::as_bytes));
    part(Some(detail.as_bytes()));
    hex::encode(h.finalize())
}

/// Appends many events in one statement, chained in slice order (the
/// intake writer's batch). `insert_rows` inserts in slice order, so `seq`
/// follows the chain, which `audit verify` checks.
pub async fn record_many(conn: &mut Conn, events: &[(i64, Event<'_>)]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    lock_chain(conn).await?;
    let rows = chained(conn, events).await?;
    super::insert_rows(conn, &rows).await
}

/// An event with its place in the chain, ready to insert.
struct ChainedEvent<'e, 'a> {
    at: i64,
    event: &'e Event<'a>,
    detail: String,
    prev: String,
    hash: String,
}

/// Links `events` to the chain's head, in slice order. The chain must be
/// locked; they must be inserted in this transaction, in this order.
async fn chained<'e, 'a>(
    conn: &mut Conn,
    events: &'e [(i64, Event<'a>)],
) -> sqlx::Result<Vec<ChainedEvent<'e, 'a>>> {
    let mut prev = chain_head(conn).await?;
    let mut rows = Vec::with_capacity(events.len());
    for (at, e) in events {
        let detail = e.detail.to_string();
        let hash = event_hash(
            &prev,
            e.request_id,
            *at,
            e.actor,
            e.action,
            e.from_status,
            e.to_status,
            &detail,
        );
        rows.push(ChainedEvent {
            at: *at,
            event: e,
            detail,
            prev,
            hash: hash.clone(),
        });
        prev = hash;
    }
    Ok(rows)
}

impl super::InsertRow for ChainedEvent<'_, '_> {
    const INTO: &'static str = "INSERT INTO audit_events (request_id, at, actor, action, \
        from_status, to_status, detail, prev_hash, hash)";
    fn size(&self) -> usize {
        300 + self.detail.len()
    }
    fn cells(&self) -> Vec<super::Cell<'_>> {
        let e = self.event;
        vec![
            e.request_id.into(),
            self.at.into(),
            e.actor.into(),
            e.action.into(),
            e.from_status.into(),
            e.to_status.into(),
            self.detail.as_str().into(),
            self.prev.as_str().into(),
            self.hash.as_str().into(),
        ]
    }
}

/// Takes the chain's lock until the transaction ends (PostgreSQL; SQLite
/// writes are serialised already). Taking it again in the same transaction
/// is harmless.
pub async fn lock_chain(conn: &mut Conn) -> sqlx::Result<()> {
    if super::backend_of(conn) == super::Backend::Postgres {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_xact_lock({CHAIN_LOCK})"
        )))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The chain's last hash. Under the chain's lock, two appends can never
/// read the same last hash.
async fn chain_head(conn: &mut Conn) -> sqlx::Result<String> {
    let prev: Option<Option<String>> =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(prev.flatten().unwrap_or_default())
}

pub async fn record(conn: &mut Conn, at: i64, e: Event<'_>) -> sqlx::Result<()> {
    record_many(conn, &[(at, e)]).await
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub detail: String,
}

pub async fn for_request(db: &super::Db, request_id: &str) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(
        "SELECT seq, at, actor, action, from_status, to_status, detail FROM audit_events \
         WHERE request_id = $1 ORDER BY seq",
    )
    .bind(request_id)
    .fetch_all(db.read())
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ChainRow {
    seq: i64,
    request_id: Option<String>,
    at: i64,
    actor: String,
    action: String,
    from_status: Option<String>,
    to_status: Option<String>,
    detail: String,
    prev_hash: Option<String>,
    hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Events checked and found linked.
    pub checked: u64,
    /// Events written before the chain existed (migration 0003), not linked.
    pub unchained: u64,
    /// The first event whose link or content does not match, and why.
    pub broken: Option<(i64, &'static str)>,
}

/// Walks the whole trail in order and recomputes every link.
pub async fn verify_chain(db: &super::Db) -> sqlx::Result<ChainReport> {
    let mut report = ChainReport {
        checked: 0,
        unchained: 0,
        broken: None,
    };
    let mut expected_prev: Option<String> = None;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "SELECT seq, request_id, at, actor, action, from_status, to_status, detail, prev_hash, hash \
             FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000",
        )
        .bind(after)
        .fetch_all(db.read())
        .await?;
        let Some(last) = rows.last() else {
            return Ok(report);
        };
        after = last.seq;
        for r in rows {
            let Some(hash) = r.hash.as_deref() else {
                if expected_prev.is_some() {
                    report.broken = Some((r.seq, "hash missing"));
                    return Ok(report);
                }
                report.unchained += 1;
                continue;
            };
            let prev = r.prev_hash.as_deref().unwrap_or("");
            if prev != expected_prev.as_deref().unwrap_or("") {
                report.broken = Some((
                    r.seq,
                    "does not link to the event before it (an event was removed, inserted or changed)",
                ));
                return Ok(report);
            }
            let again = event_hash(
                prev,
                r.request_id.as_deref(),
                r.at,
                &r.actor,
                &r.action,
                r.from_status.as_deref(),
                r.to_status.as_deref(),
                &r.detail,
            );
            if again != hash {
                report.broken = Some((r.seq, "content was changed after it was written"));
                return Ok(report);
            }
            report.checked += 1;
            expected_prev = Some(hash.to_string());
        }
    }
}
