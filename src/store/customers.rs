//! The built-in customer store: tables in the portal database filled by
//! `accounts import` (JSON Lines, CONTRACT.md) and by `demo`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Conn, Db};
use crate::domain::Email;

#[derive(Debug, Clone, Deserialize)]
pub struct ImportOrder {
    pub id: String,
    pub placed_at: String,
    pub status: String,
    pub total_cents: i64,
    pub currency: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportPayment {
    pub method: String,
    pub amount_cents: i64,
    pub collected_at: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportContact {
    pub at: String,
    pub channel: String,
    pub summary: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportIp {
    pub at: String,
    pub ip: String,
}

/// One line of the import file. Unknown fields are kept in `extra` and come
/// back in the export: the customer has a right to see everything held.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportRecord {
    pub external_id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub postcode: String,
    #[serde(default)]
    pub house_number: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub iban: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub balance_cents: i64,
    #[serde(default)]
    pub orders: Vec<ImportOrder>,
    #[serde(default)]
    pub payments: Vec<ImportPayment>,
    #[serde(default)]
    pub consents: BTreeMap<String, bool>,
    #[serde(default)]
    pub contacts: Vec<ImportContact>,
    #[serde(default)]
    pub ip_log: Vec<ImportIp>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

const ORDER_STATUSES: [&str; 3] = ["open", "delivered", "cancelled"];
const PAYMENT_METHODS: [&str; 6] = [
    "direct_debit",
    "ideal",
    "card",
    "invoice",
    "swish",
    "klarna",
];

fn rfc3339(field: &str, v: &str) -> Result<(), String> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|_| ())
        .map_err(|_| format!("{field} is not an RFC 3339 time"))
}

impl ImportRecord {
    /// Checks what the portal's rules depend on; returns the normalised email.
    pub fn validate(&self) -> Result<Email, String> {
        if self.external_id.trim().is_empty() {
            return Err("external_id is empty".into());
        }
        let email = Email::parse(&self.email).ok_or("email is not a valid address")?;
        if let Some(l) = &self.locale {
            if crate::domain::Locale::parse(l).is_none() {
                return Err("locale must be nl, sv or en".into());
            }
        }
        if let Some(c) = &self.created_at {
            rfc3339("created_at", c)?;
        }
        for o in &self.orders {
            if !ORDER_STATUSES.contains(&o.status.as_str()) {
                return Err(format!(
                    "order status must be one of {}",
                    ORDER_STATUSES.join(", ")
                ));
            }
            rfc3339("orders.placed_at", &o.placed_at)?;
        }
        for p in &self.payments {
            if !PAYMENT_METHODS.contains(&p.method.as_str()) {
                return Err(format!(
                    "payment method must be one of {}",
                    PAYMENT_METHODS.join(", ")
                ));
            }
            rfc3339("payments.collected_at", &p.collected_at)?;
        }
        for c in &self.contacts {
            rfc3339("contacts.at", &c.at)?;
        }
        for i in &self.ip_log {
            rfc3339("ip_log.at", &i.at)?;
        }
        Ok(email)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Upserted {
    Inserted,
    Updated,
}

#[derive(Debug, thiserror::Error)]
pub enum UpsertError {
    #[error("the email address already belongs to another account")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("maps of JSON values serialise")
}

/// Whether the customer with this `external_id` was erased (its stub stays).
pub async fn external_id_erased(db: &super::Db, external_id: &str) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM customers WHERE external_id = $1 AND erased_at IS NOT NULL",
    )
    .bind(external_id)
    .fetch_one(db.read())
    .await?;
    Ok(n > 0)
}

/// Idempotent: the same line imported twice leaves one identical account.
pub async fn upsert(
    conn: &mut Conn,
    r: &ImportRecord,
    email: &Email,
    now: i64,
) -> Result<Upserted, UpsertError> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM customers WHERE external_id = $1")
            .bind(&r.external_id)
            .fetch_optional(&mut *conn)
            .await?;
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    if owner.is_some() && owner != existing {
        return Err(UpsertError::EmailTaken);
    }
    let (id, outcome) = match existing {
        Some(id) => {
            sqlx::query(
                "UPDATE customers SET email = $1, name = $2, locale = $3, postcode = $4, house_number = $5, \
                 phone = $6, iban = $7, created_at = $8, balance_cents = $9, consents = $10, extra = $11, \
                 updated_at = $12 WHERE id = $13",
            )
            .bind(email.as_str())
            .bind(&r.name)
            .bind(&r.locale)
            .bind(&r.postcode)
            .bind(&r.house_number)
            .bind(&r.phone)
            .bind(&r.iban)
            .bind(&r.created_at)
            .bind(r.balance_cents)
            .bind(json(&r.consents))
            .bind(json(&r.extra))
            .bind(now)
            .bind(&id)
            .execute(&mut *conn)
            .await?;
            for table in [
                "customer_orders",
                "customer_payments",
                "customer_contacts",
                "customer_ip_log",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE customer_id = $1"
                )))
                .bind(&id)
                .execute(&mut *conn)
                .await?;
            }
            (id, Upserted::Updated)
        }
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO customers (id, external_id, email, name, locale, postcode, house_number, phone, iban, \
                 created_at, balance_cents, consents, extra, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&id)
            .bind(&r.external_id)
            .bind(email.as_str())
            .bind(&r.name)
            .bind(&r.locale)
            .bind(&r.postcode)
            .bind(&r.house_number)
            .bind(&r.phone)
            .bind(&r.iban)
            .bind(&r.created_at)
            .bind(r.balance_cents)
            .bind(json(&r.consents))
            .bind(json(&r.extra))
            .bind(now)
            .execute(&mut *conn)
            .await?;
            (id, Upserted::Inserted)
        }
    };
    for o in &r.orders {
        sqlx::query(
            "INSERT INTO customer_orders (customer_id, id, placed_at, status, total_cents, currency, extra) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(&o.id)
        .bind(&o.placed_at)
        .bind(&o.status)
        .bind(o.total_cents)
        .bind(&o.currency)
        .bind(json(&o.extra))
        .execute(&mut *conn)
        .await?;
    }
    for (i, p) in r.payments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO customer_payments (customer_id, position, method, amount_cents, collected_at, extra) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(i as i64)
        .bind(&p.method)
        .bind(p.amount_cents)
        .bind(&p.collected_at)
        .bind(json(&p.extra))
        .execute(&mut *conn)
        .await?;
    }
    for (i, c) in r.contacts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO customer_contacts (customer_id, position, at, channel, summary, extra) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(i as i64)
        .bind(&c.at)
        .bind(&c.channel)
        .bind(&c.summary)
        .bind(json(&c.extra))
        .execute(&mut *conn)
        .await?;
    }
    for (i, ip) in r.ip_log.iter().enumerate() {
        sqlx::query(
            "INSERT INTO customer_ip_log (customer_id, position, at, ip) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(i as i64)
        .bind(&ip.at)
        .bind(&ip.ip)
        .execute(&mut *conn)
        .await?;
    }
    Ok(outcome)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CustomerRef {
    pub id: String,
    pub external_id: String,
    pub locale: Option<String>,
}

pub async fn find_by_email(db: &Db, email: &Email) -> sqlx::Result<Option<CustomerRef>> {
    sqlx::query_as("SELECT id, external_id, locale FROM customers WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(db.read())
        .await
}

/// What staff see of an account on the customer card: its ids, its address
/// (unless erased) and whether it was erased — nothing else.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardAccount {
    pub id: String,
    pub external_id: String,
    pub email: String,
    pub erased_at: Option<i64>,
}

/// An account by the company's id (`C-1001`) or the store's own id.
pub async fn card_by_id(db: &Db, id: &str) -> sqlx::Result<Option<CardAccount>> {
    sqlx::query_as(
        "SELECT id, external_id, email, erased_at FROM customers WHERE external_id = $1 OR id = $1 LIMIT 1",
    )
    .bind(id)
    .fetch_optional(db.read())
    .await
}

pub async fn card_by_email(db: &Db, email: &Email) -> sqlx::Result<Option<CardAccount>> {
    sqlx::query_as("SELECT id, external_id, email, erased_at FROM customers WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(db.read())
        .await
}

pub async fn count(db: &Db) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(db.read())
        .await
}

/// What the customer states is compared here, never shown: the stored values
/// do not leave this module except as a yes/no.
pub async fn knowledge_matches(
    db: &Db,
    id: &str,
    postcode: &str,
    house_number: &str,
) -> sqlx::Result<bool> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT postcode, house_number FROM customers WHERE id = $1")
            .bind(id)
            .fetch_optional(db.read())
            .await?;
    Ok(match row {
        // Both compared always, so timing does not tell which field differed.
        Some((pc, hn)) => {
            let a = crate::domain::knowledge::matches(postcode, &pc);
            let b = crate::domain::knowledge::matches(house_number, &hn);
            a & b
        }
        None => false,
    })
}

pub async fn deletion_facts(
    db: &Db,
    id: &str,
) -> anyhow::Result<crate::domain::blockers::DeletionFacts> {
    let open_orders: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM customer_orders WHERE customer_id = $1 AND status = 'open'",
    )
    .bind(id)
    .fetch_one(db.read())
    .await?;
    let balance_cents: i64 =
        sqlx::query_scalar("SELECT balance_cents FROM customers WHERE id = $1")
            .bind(id)
            .fetch_one(db.read())
            .await?;
    let debits: Vec<String> =
        sqlx::query_scalar("SELECT collected_at FROM customer_payments WHERE customer_id = $1 AND method = 'direct_debit'")
            .bind(id)
            .fetch_all(db.read())
            .await?;
    let direct_debits = debits
        .iter()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&chrono::Utc)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(crate::domain::blockers::DeletionFacts {
        open_orders: open_orders as usize,
        balance_cents,
        direct_debits,
    })
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ErasureCounts {
    pub orders_retained: i64,
    pub payments_retained: i64,
    pub contacts_deleted: i64,
    pub ip_log_deleted: i64,
    /// What the account held before erasure, so the proof lists only that.
    pub had_contact_details: bool,
    pub had_address: bool,
    pub had_bank_details: bool,
    pub had_consents: bool,
}

/// Legal reason stored with what is kept: invoices and payments stay 7 years
/// (NL: art. 52 AWR, 2:10 BW; SE: 7 kap. bokföringslagen), stripped of
/// everything that names the customer.
pub const RETENTION_REASON: &str = "bookkeeping_7_years";

/// Erases the account in one transaction. The row stays as a stub holding
/// only the external id (the link the bookkeeping needs); the address
/// becomes a value no one can type, so the account cannot be found again.
/// name, phone, postcode, house number, IBAN, consents (JSON).
type Held = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

pub async fn erase(conn: &mut Conn, id: &str, now: i64) -> sqlx::Result<ErasureCounts> {
    let held: Option<Held> = sqlx::query_as(
        "SELECT name, phone, postcode, house_number, iban, consents FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let (name, phone, postcode, house_number, iban, consents) = held.unwrap_or_default();
    let filled = |s: &str| !s.trim().is_empty();
    let tombstone = format!("erased-{}@erased.invalid", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "UPDATE customers SET email = $1, name = '', locale = NULL, postcode = '', house_number = '', phone = NULL, \
         iban = NULL, consents = '{}', extra = '{}', erased_at = $2, updated_at = $2 WHERE id = $3",
    )
    .bind(&tombstone)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // Unknown fields may hold anything (a delivery address, a phone number):
    // only the bookkeeping columns survive.
    let orders = sqlx::query(
        "UPDATE customer_orders SET extra = '{}', retention_reason = $1 WHERE customer_id = $2",
    )
    .bind(RETENTION_REASON)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let payments = sqlx::query(
        "UPDATE customer_payments SET extra = '{}', retention_reason = $1 WHERE customer_id = $2",
    )
    .bind(RETENTION_REASON)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let contacts = sqlx::query("DELETE FROM customer_contacts WHERE customer_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let ips = sqlx::query("DELETE FROM customer_ip_log WHERE customer_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(ErasureCounts {
        orders_retained: orders as i64,
        payments_retained: payments as i64,
        contacts_deleted: contacts as i64,
        ip_log_deleted: ips as i64,
        had_contact_details: filled(&name) || phone.as_deref().is_some_and(filled),
        had_address: filled(&postcode) || filled(&house_number),
        had_bank_details: iban.as_deref().is_some_and(filled),
        had_consents: !matches!(consents.trim(), "" | "{}"),
    })
}

/// Moves the account to `new`; returns the other account's id when the
/// address is already taken (and changes nothing then).
pub async fn change_email(
    conn: &mut Conn,
    id: &str,
    new: &Email,
    now: i64,
) -> sqlx::Result<Option<String>> {
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
        .bind(new.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match owner {
        Some(other) if other != id => Ok(Some(other)),
        Some(_) => Ok(None),
        None => {
            sqlx::query("UPDATE customers SET email = $1, updated_at = $2 WHERE id = $3")
                .bind(new.as_str())
                .bind(now)
                .bind(id)
                .execute(conn)
                .await?;
            Ok(None)
        }
    }
}

/// The account's consents and objections (`{"newsletter": true}`); an
/// account without any, or an erased one, has an empty map.
pub async fn consents(db: &Db, id: &str) -> anyhow::Result<BTreeMap<String, bool>> {
    let raw: Option<String> = sqlx::query_scalar("SELECT consents FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(db.read())
        .await?;
    Ok(match raw {
        Some(r) => serde_json::from_str(&r)?,
        None => BTreeMap::new(),
    })
}

/// Sets these consent keys to false (withdrawal, objection). Other keys and
/// unknown fields are kept as they are.
pub async fn withdraw_consents(
    conn: &mut Conn,
    id: &str,
    keys: &[String],
    now: i64,
) -> anyhow::Result<()> {
    // Take the row's write lock first, so a parallel change cannot be lost
    // between reading and writing the map.
    sqlx::query("UPDATE customers SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let raw: Option<String> = sqlx::query_scalar("SELECT consents FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(raw) = raw else {
        return Ok(());
    };
    let mut map: BTreeMap<String, Value> = serde_json::from_str(&raw)?;
    for k in keys {
        map.insert(k.clone(), Value::Bool(false));
    }
    sqlx::query("UPDATE customers SET consents = $1 WHERE id = $2")
        .bind(json(&map))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn merge_extra(obj: &mut serde_json::Map<String, Value>, extra: &str) {
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(extra) {
        for (k, v) in extra {
            obj.entry(k).or_insert(v);
        }
    }
}

#[derive(sqlx::FromRow)]
struct ProfileRow {
    external_id: String,
    email: String,
    name: String,
    locale: Option<String>,
    postcode: String,
    house_number: String,
    phone: Option<String>,
    iban: Option<String>,
    created_at: Option<String>,
    balance_cents: i64,
    consents: String,
    extra: String,
}

pub async fn export_profile(db: &Db, id: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let r: ProfileRow = sqlx::query_as(
        "SELECT external_id, email, name, locale, postcode, house_number, phone, iban, created_at, balance_cents, \
         consents, extra FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(db.read())
    .await?;
    let mut obj = serde_json::Map::new();
    obj.insert("external_id".into(), r.external_id.into());
    obj.insert("email".into(), r.email.into());
    obj.insert("name".into(), r.name.into());
    obj.insert("locale".into(), r.locale.into());
    obj.insert("postcode".into(), r.postcode.into());
    obj.insert("house_number".into(), r.house_number.into());
    obj.insert("phone".into(), r.phone.into());
    obj.insert("iban".into(), r.iban.into());
    obj.insert("created_at".into(), r.created_at.into());
    obj.insert("balance_cents".into(), r.balance_cents.into());
    obj.insert(
        "consents".into(),
        serde_json::from_str(&r.consents).unwrap_or(Value::Null),
    );
    merge_extra(&mut obj, &r.extra);
    Ok(obj)
}

pub async fn export_page(
    db: &Db,
    id: &str,
    category: &str,
    offset: i64,
    limit: i64,
) -> anyhow::Result<Vec<Value>> {
    let rows: Vec<Value> = match category {
        "orders" => {
            let rows: Vec<(String, String, String, i64, String, String)> = sqlx::query_as(
                "SELECT id, placed_at, status, total_cents, currency, extra FROM customer_orders WHERE customer_id = $1 \
                 ORDER BY id LIMIT $2 OFFSET $3",
            )
            .bind(id)
            .bind(limit)
            .bind(offset)
            .fetch_all(db.read())
            .await?;
            rows.into_iter()
                .map(|(oid, placed_at, status, total, currency, extra)| {
                    let mut o = serde_json::Map::new();
                    o.insert("id".into(), oid.into());
                    o.insert("placed_at".into(), placed_at.into());
                    o.insert("status".into(), status.into());
                    o.insert("total_cents".into(), total.into());
                    o.insert("currency".into(), currency.into());
                    merge_extra(&mut o, &extra);
                    Value::Object(o)
                })
                .collect()
        }
        "payments" => {
            let rows: Vec<(String, i64, String, String)> = sqlx::query_as(
                "SELECT method, amount_cents, collected_at, extra FROM customer_payments WHERE customer_id = $1 \
                 ORDER BY position LIMIT $2 OFFSET $3",
            )
            .bind(id)
            .bind(limit)
            .bind(offset)
            .fetch_all(db.read())
            .await?;
            rows.into_iter()
                .map(|(method, amount, at, extra)| {
                    let mut o = serde_json::Map::new();
                    o.insert("method".into(), method.into());
                    o.insert("amount_cents".into(), amount.into());
                    o.insert("collected_at".into(), at.into());
                    merge_extra(&mut o, &extra);
                    Value::Object(o)
                })
                .collect()
        }
        "contacts" => {
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT at, channel, summary, extra FROM customer_contacts WHERE customer_id = $1 \
                 ORDER BY position LIMIT $2 OFFSET $3",
            )
            .bind(id)
            .bind(limit)
            .bind(offset)
            .fetch_all(db.read())
            .await?;
            rows.into_iter()
                .map(|(at, channel, summary, extra)| {
                    let mut o = serde_json::Map::new();
                    o.insert("at".into(), at.into());
                    o.insert("channel".into(), channel.into());
                    o.insert("summary".into(), summary.into());
                    merge_extra(&mut o, &extra);
                    Value::Object(o)
                })
                .collect()
        }
        "ip_log" => {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT at, ip FROM customer_ip_log WHERE customer_id = $1 ORDER BY position LIMIT $2 OFFSET $3",
            )
            .bind(id)
            .bind(limit)
            .bind(offset)
            .fetch_all(db.read())
            .await?;
            rows.into_iter()
                .map(|(at, ip)| serde_json::json!({"at": at, "ip": ip}))
                .collect()
        }
        other => anyhow::bail!("unknown export category {other}"),
    };
    Ok(rows)
}

/// A live account with what tells when it was last active.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: String,
    pub email: String,
    pub locale: Option<String>,
    pub created_at: Option<String>,
    pub active_at: Option<i64>,
    pub last_order: Option<String>,
}

/// Live (not erased) accounts after `after` by id, with their signs of life.
pub async fn activity_page(db: &Db, after: &str, limit: i64) -> sqlx::Result<Vec<ActivityRow>> {
    sqlx::query_as(
        "SELECT c.id, c.email, c.locale, c.created_at, c.active_at, \
         (SELECT MAX(o.placed_at) FROM customer_orders o WHERE o.customer_id = c.id) AS last_order \
         FROM customers c WHERE c.erased_at IS NULL AND c.id > $1 ORDER BY c.id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db.read())
    .await
}

pub async fn record_activity(conn: &mut Conn, id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE customers SET active_at = $1 WHERE id = $2 AND erased_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows of a data category older than `before` (RFC 3339 UTC text, as the
/// import stores it), deleted; `None` for a category the store does not keep.
pub async fn purge_older(
    conn: &mut Conn,
    category: &str,
    before: &str,
) -> sqlx::Result<Option<u64>> {
    let sql = match category {
        "ip_log" => "DELETE FROM customer_ip_log WHERE at < $1",
        "contacts" => "DELETE FROM customer_contacts WHERE at < $1",
        "orders" => "DELETE FROM customer_orders WHERE placed_at < $1",
        "payments" => "DELETE FROM customer_payments WHERE collected_at < $1",
        _ => return Ok(None),
    };
    let r = sqlx::query(sql).bind(before).execute(conn).await?;
    Ok(Some(r.rows_affected()))
}
