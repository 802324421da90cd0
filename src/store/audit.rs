//! The audit trail: append-only and tamper-evident. Each event carries the
//! hash of the event before it, so a changed, inserted or removed row breaks
//! the chain (`privacy-portal audit verify`). Details carry no personal
//! data — the request id links an event to its request, which is purged on
//! schedule; free text written by staff lives in `case_notes`.

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::Conn;
use crate::crypto::AuditKey;

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

/// What an event's hash covers: the previous hash and every stored field.
pub struct Hashed<'a> {
    pub prev: &'a str,
    pub request_id: Option<&'a str>,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: Option<&'a str>,
    pub detail: &'a str,
}

impl Hashed<'_> {
    /// Length-prefixed, so that no two different events encode alike.
    fn encode(&self, mut update: impl FnMut(&[u8])) {
        let mut part = |p: Option<&[u8]>| match p {
            None => update(&[0u8]),
            Some(b) => {
                update(&[1u8]);
                update(&(b.len() as u64).to_be_bytes());
                update(b);
            }
        };
        part(Some(self.prev.as_bytes()));
        part(self.request_id.map(str::as_bytes));
        part(Some(&self.at.to_be_bytes()));
        part(Some(self.actor.as_bytes()));
        part(Some(self.action.as_bytes()));
        part(self.from_status.map(str::as_bytes));
        part(self.to_status.map(str::as_bytes));
        part(Some(self.detail.as_bytes()));
    }
}

/// Hash version 1: plain SHA-256, which anyone who can write the database
/// can recompute after an edit. Only checked (events written before
/// migration 0016), never written.
pub fn unkeyed_hash(e: &Hashed<'_>) -> String {
    let mut h = Sha256::new();
    h.update(b"privacy-portal/audit/v1");
    e.encode(|b| h.update(b));
    hex::encode(h.finalize())
}

/// Hash version 2: HMAC-SHA256 under the audit key derived from
/// `PORTAL_SECRET_KEY`.
pub fn keyed_hash(key: &AuditKey, e: &Hashed<'_>) -> String {
    let mut mac = key.mac();
    mac.update(b"privacy-portal/audit/v2");
    e.encode(|b| mac.update(b));
    hex::encode(mac.finalize().into_bytes())
}

/// The hash version every new event is written with.
const KEYED: i64 = 2;
const UNKEYED: i64 = 1;

/// Appends many events in one statement, chained in slice order (the
/// intake writer's batch). `insert_rows` inserts in slice order, so `seq`
/// follows the chain, which `audit verify` checks.
pub async fn record_many(
    conn: &mut Conn,
    key: &AuditKey,
    events: &[(i64, Event<'_>)],
) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    lock_chain(conn).await?;
    let rows = chained(conn, key, events).await?;
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
    key: &AuditKey,
    events: &'e [(i64, Event<'a>)],
) -> sqlx::Result<Vec<ChainedEvent<'e, 'a>>> {
    let mut prev = chain_head(conn).await?;
    let mut rows = Vec::with_capacity(events.len());
    for (at, e) in events {
        let detail = e.detail.to_string();
        let hash = keyed_hash(
            key,
            &Hashed {
                prev: &prev,
                request_id: e.request_id,
                at: *at,
                actor: e.actor,
                action: e.action,
                from_status: e.from_status,
                to_status: e.to_status,
                detail: &detail,
            },
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
        from_status, to_status, detail, prev_hash, hash, hash_version)";
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
            KEYED.into(),
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

pub async fn record(conn: &mut Conn, key: &AuditKey, at: i64, e: Event<'_>) -> sqlx::Result<()> {
    record_many(conn, key, &[(at, e)]).await
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
    hash_version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Events checked and found linked.
    pub checked: u64,
    /// Of those, the ones linked without the key (written before migration
    /// 0016). A trail that is all unkeyed after the upgrade was rewritten.
    pub unkeyed: u64,
    /// Events written before the chain existed (migration 0003), not linked.
    pub unchained: u64,
    /// The first event whose link or content does not match, and why.
    pub broken: Option<(i64, &'static str)>,
}

/// Whether migration 0016 has run: `audit verify` migrates nothing.
pub async fn has_hash_versions(db: &super::Db) -> bool {
    sqlx::query("SELECT hash_version FROM audit_events LIMIT 1")
        .fetch_optional(db.read())
        .await
        .is_ok()
}

/// Walks the whole trail in order and recomputes every link. Unkeyed
/// events are accepted only before the first keyed one: the chain switches
/// once, when the portal is upgraded; an unkeyed event after a keyed one
/// is one that somebody without the key wrote.
pub async fn verify_chain(db: &super::Db, key: &AuditKey) -> sqlx::Result<ChainReport> {
    let mut report = ChainReport {
        checked: 0,
        unkeyed: 0,
        unchained: 0,
        broken: None,
    };
    let mut expected_prev: Option<String> = None;
    let mut keyed_seen = false;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<ChainRow> = sqlx::query_as(
            "SELECT seq, request_id, at, actor, action, from_status, to_status, detail, prev_hash, hash, \
             hash_version FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000",
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
            let fields = Hashed {
                prev,
                request_id: r.request_id.as_deref(),
                at: r.at,
                actor: &r.actor,
                action: &r.action,
                from_status: r.from_status.as_deref(),
                to_status: r.to_status.as_deref(),
                detail: &r.detail,
            };
            match r.hash_version {
                UNKEYED if keyed_seen => {
                    report.broken = Some((
                        r.seq,
                        "written without the key after the chain was keyed (an event was changed or inserted)",
                    ));
                    return Ok(report);
                }
                UNKEYED => {
                    if unkeyed_hash(&fields) != hash {
                        report.broken = Some((r.seq, "content was changed after it was written"));
                        return Ok(report);
                    }
                    report.unkeyed += 1;
                }
                KEYED => {
                    if !crate::crypto::ct_eq(&keyed_hash(key, &fields), hash) {
                        // The first keyed event fails alike whether it was
                        // changed or the key is not the server's; the wrong
                        // key is by far the likelier.
                        report.broken = Some((
                            r.seq,
                            if keyed_seen {
                                "content was changed after it was written"
                            } else {
                                "the chain does not verify with this key: PORTAL_SECRET_KEY is not the key the server writes with, or this event was changed"
                            },
                        ));
                        return Ok(report);
                    }
                    keyed_seen = true;
                }
                _ => {
                    report.broken = Some((r.seq, "unknown hash version"));
                    return Ok(report);
                }
            }
            report.checked += 1;
            expected_prev = Some(hash.to_string());
        }
    }
}
