//! The company's own data: customers and what hangs off them, in one SQLite
//! file. A real company replaces this module with queries on its own tables;
//! the HTTP side (`api.rs`) only needs the functions below.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// Known columns get their own column; every other field of a row is kept
/// in `extra` and comes back in the export (the portal must not lose fields
/// it does not know). Child tables use their own `seq` as the paging key:
/// an explicit INTEGER PRIMARY KEY, which VACUUM never renumbers.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS customers (
    id            TEXT PRIMARY KEY,
    email         TEXT COLLATE NOCASE UNIQUE,
    name          TEXT,
    locale        TEXT,
    postcode      TEXT,
    house_number  TEXT,
    phone         TEXT,
    iban          TEXT,
    created_at    TEXT,
    balance_cents INTEGER NOT NULL DEFAULT 0,
    consents      TEXT NOT NULL DEFAULT '{}',
    extra         TEXT NOT NULL DEFAULT '{}',
    erased_at     TEXT,
    -- Last sign of life besides orders (a 'keep my account' click).
    active_at     TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    seq         INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    order_id    TEXT,
    placed_at   TEXT,
    status      TEXT,
    total_cents INTEGER,
    currency    TEXT,
    extra       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders(customer_id);
CREATE TABLE IF NOT EXISTS payments (
    seq          INTEGER PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    method       TEXT,
    amount_cents INTEGER,
    collected_at TEXT,
    extra        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS payments_customer ON payments(customer_id);
CREATE TABLE IF NOT EXISTS contacts (
    seq         INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    at          TEXT,
    channel     TEXT,
    summary     TEXT,
    extra       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS contacts_customer ON contacts(customer_id);
CREATE TABLE IF NOT EXISTS ip_log (
    seq         INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id),
    at          TEXT,
    ip          TEXT,
    extra       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS ip_log_customer ON ip_log(customer_id);
-- One row per erasure request_id: what makes a retried erasure harmless.
CREATE TABLE IF NOT EXISTS erase_jobs (
    request_id  TEXT PRIMARY KEY,
    customer_id TEXT,               -- NULL: nobody matched
    polls       INTEGER NOT NULL DEFAULT 0,
    executions  INTEGER NOT NULL DEFAULT 0,
    result      TEXT                -- the answer once done; NULL while pending
);
-- Stored answers of change-email and stop, per request_id.
CREATE TABLE IF NOT EXISTS idempotency (
    operation  TEXT NOT NULL,
    request_id TEXT NOT NULL,
    response   TEXT NOT NULL,
    PRIMARY KEY (operation, request_id)
);
";

/// Why orders and payments outlive an erasure (Art. 17(3)(b) GDPR and the
/// bookkeeping law: seven years in the Netherlands, also enough for Sweden).
pub const RETENTION_REASON: &str = "bookkeeping_7_years";

/// A SEPA direct debit may be reversed by the customer's bank for 8 weeks.
pub const DIRECT_DEBIT_REVERSAL_DAYS: i64 = 56;

pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true)
        // Erased data should not linger in free pages of the file.
        .pragma("secure_delete", "ON");
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    Ok(pool)
}

/// Loads customers in the portal's import format (CONTRACT.md, one JSON
/// object a line). A customer already present (same `external_id`) is
/// replaced. Returns the number of customers read.
pub async fn import_jsonl(pool: &SqlitePool, text: &str) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Map<String, Value> = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a JSON object", i + 1))?;
        import_one(&mut tx, row)
            .await
            .with_context(|| format!("line {}", i + 1))?;
        n += 1;
    }
    tx.commit().await?;
    Ok(n)
}

async fn import_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    mut row: Map<String, Value>,
) -> anyhow::Result<()> {
    let mut text = |key: &str| -> anyhow::Result<Option<String>> {
        match row.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            // House numbers sometimes arrive as numbers.
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => bail!("{key} must be a string"),
        }
    };
    let email = text("email")?;
    // A newsletter tool's file may hold only addresses: the address is the id.
    let id = match (text("external_id")?, &email) {
        (Some(id), _) => id,
        (None, Some(email)) => email.to_lowercase(),
        (None, None) => bail!("external_id or email is required"),
    };
    let (name, locale, postcode) = (text("name")?, text("locale")?, text("postcode")?);
    let (house_number, phone, iban) = (text("house_number")?, text("phone")?, text("iban")?);
    let created_at = text("created_at")?;
    let balance_cents = match row.remove("balance_cents") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().context("balance_cents must be an integer")?,
    };
    let consents = match row.remove("consents") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) if m.values().all(Value::is_boolean) => m,
        Some(_) => bail!("consents must map keys to true/false"),
    };
    let mut children = BTreeMap::new();
    for key in ["orders", "payments", "contacts", "ip_log"] {
        match row.remove(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.iter().all(Value::is_object) => {
                children.insert(key, Value::Array(a).to_string());
            }
            Some(_) => bail!("{key} must be a list of objects"),
        }
    }

    // Replacing a customer replaces what hangs off it.
    for sql in [
        "DELETE FROM orders WHERE customer_id = $1",
        "DELETE FROM payments WHERE customer_id = $1",
        "DELETE FROM contacts WHERE customer_id = $1",
        "DELETE FROM ip_log WHERE customer_id = $1",
    ] {
        sqlx::query(sql).bind(&id).execute(&mut **tx).await?;
    }
    sqlx::query(
        "INSERT INTO customers (id, email, name, locale, postcode, house_number, phone, iban,
                                created_at, balance_cents, consents, extra)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (id) DO UPDATE SET
            email = excluded.email, name = excluded.name, locale = excluded.locale,
            postcode = excluded.postcode, house_number = excluded.house_number,
            phone = excluded.phone, iban = excluded.iban, created_at = excluded.created_at,
            balance_cents = excluded.balance_cents, consents = excluded.consents,
            extra = excluded.extra, erased_at = NULL",
    )
    .bind(&id)
    .bind(&email)
    .bind(name)
    .bind(locale)
    .bind(postcode)
    .bind(house_number)
    .bind(phone)
    .bind(iban)
    .bind(created_at)
    .bind(balance_cents)
    .bind(Value::Object(consents).to_string())
    .bind(Value::Object(row).to_string())
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            anyhow::anyhow!("another customer already has this email address")
        }
        _ => e.into(),
    })?;

    // One statement per list: SQLite walks the JSON array itself, which
    // keeps an import of 100 000 orders to seconds. json_remove keeps
    // whatever fields we have no column for.
    let inserts = [
        (
            "orders",
            "INSERT INTO orders (customer_id, order_id, placed_at, status, total_cents, currency, extra)
             SELECT $1, json_extract(value, '$.id'), json_extract(value, '$.placed_at'),
                    json_extract(value, '$.status'), json_extract(value, '$.total_cents'),
                    json_extract(value, '$.currency'),
                    json_remove(value, '$.id', '$.placed_at', '$.status', '$.total_cents', '$.currency')
             FROM json_each($2)",
        ),
        (
            "payments",
            "INSERT INTO payments (customer_id, method, amount_cents, collected_at, extra)
             SELECT $1, json_extract(value, '$.method'), json_extract(value, '$.amount_cents'),
                    json_extract(value, '$.collected_at'),
                    json_remove(value, '$.method', '$.amount_cents', '$.collected_at')
             FROM json_each($2)",
        ),
        (
            "contacts",
            "INSERT INTO contacts (customer_id, at, channel, summary, extra)
             SELECT $1, json_extract(value, '$.at'), json_extract(value, '$.channel'),
                    json_extract(value, '$.summary'),
                    json_remove(value, '$.at', '$.channel', '$.summary')
             FROM json_each($2)",
        ),
        (
            "ip_log",
            "INSERT INTO ip_log (customer_id, at, ip, extra)
             SELECT $1, json_extract(value, '$.at'), json_extract(value, '$.ip'),
                    json_remove(value, '$.at', '$.ip')
             FROM json_each($2)",
        ),
    ];
    for (key, sql) in inserts {
        if let Some(list) = children.get(key) {
            sqlx::query(sql)
                .bind(&id)
                .bind(list)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// The account id for an address, compared case-insensitively.
pub async fn account_by_email(pool: &SqlitePool, email: &str) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
            .bind(email)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn account_exists(pool: &SqlitePool, id: &str) -> anyhow::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

/// "1012ab" = "1012 AB", "12" ≠ "12a".
fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// True when both the postcode and the house number match. An erased
/// account (no address any more) never matches.
pub async fn knowledge_matches(
    pool: &SqlitePool,
    id: &str,
    postcode: &str,
    house_number: &str,
) -> anyhow::Result<bool> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT postcode, house_number FROM customers WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((Some(pc), Some(hn))) => {
            normalise(&pc) == normalise(postcode) && normalise(&hn) == normalise(house_number)
        }
        _ => false,
    })
}

#[derive(Debug, Serialize)]
pub struct Blocker {
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub async fn blockers(
    pool: &SqlitePool,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<Blocker>> {
    let mut out = Vec::new();
    let open: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE customer_id = $1 AND status = 'open' ORDER BY seq",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    for order in open {
        out.push(Blocker {
            reason: "open_order",
            until: None,
            detail: order,
        });
    }
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance_cents FROM customers WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    if let Some(cents) = balance.filter(|c| *c > 0) {
        out.push(Blocker {
            reason: "outstanding_balance",
            until: None,
            detail: Some(cents.to_string()),
        });
    }
    let debits: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT collected_at FROM payments WHERE customer_id = $1 AND method = 'direct_debit'",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let reversal = chrono::Duration::days(DIRECT_DEBIT_REVERSAL_DAYS);
    let latest = debits
        .iter()
        .flatten()
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|at| at.with_timezone(&chrono::Utc) + reversal)
        .filter(|until| *until > now)
        .max();
    if let Some(until) = latest {
        out.push(Blocker {
            reason: "recent_direct_debit",
            until: Some(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            detail: None,
        });
    }
    Ok(out)
}

/// Export order: profile, then each list, then consents. A cursor is
/// "{category}:{seq}", the last record sent; profile and consents have one
/// record, with seq 1.
pub const CATEGORIES: [&str; 6] = [
    "profile", "orders", "payments", "contacts", "ip_log", "consents",
];

fn object(text: &str) -> anyhow::Result<Map<String, Value>> {
    match serde_json::from_str(text)? {
        Value::Object(m) => Ok(m),
        _ => bail!("not a JSON object in the database"),
    }
}

/// Up to `limit` records of one category after `after`, in seq order.
/// Only `limit` rows are ever read: a customer with 100 000 orders is served
/// one page at a time.
pub async fn category_page(
    pool: &SqlitePool,
    id: &str,
    category: &str,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<(i64, Map<String, Value>)>> {
    let list_sql = match category {
        "profile" | "consents" => {
            if after >= 1 || limit < 1 {
                return Ok(vec![]);
            }
            let row = sqlx::query(
                "SELECT json_object('id', id, 'email', email, 'name', name, 'locale', locale,
                        'postcode', postcode, 'house_number', house_number, 'phone', phone,
                        'iban', iban, 'created_at', created_at, 'balance_cents', balance_cents),
                        extra, consents
                 FROM customers WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(vec![]) };
            let data = if category == "profile" {
                let mut data = object(row.try_get(0)?)?;
                // An erased or address-only customer: no empty fields.
                data.retain(|_, v| !v.is_null());
                data.extend(object(row.try_get(1)?)?);
                data
            } else {
                object(row.try_get(2)?)?
            };
            return Ok(if data.is_empty() {
                vec![]
            } else {
                vec![(1, data)]
            });
        }
        "orders" => {
            "SELECT seq, json_object('id', order_id, 'placed_at', placed_at, 'status', status,
                    'total_cents', total_cents, 'currency', currency), extra
             FROM orders WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        }
        "payments" => {
            "SELECT seq, json_object('method', method, 'amount_cents', amount_cents,
                    'collected_at', collected_at), extra
             FROM payments WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        }
        "contacts" => {
            "SELECT seq, json_object('at', at, 'channel', channel, 'summary', summary), extra
             FROM contacts WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        }
        "ip_log" => {
            "SELECT seq, json_object('at', at, 'ip', ip), extra
             FROM ip_log WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        }
        other => bail!("unknown category {other}"),
    };
    let rows = sqlx::query(list_sql)
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut data = object(row.try_get(1)?)?;
        data.extend(object(row.try_get(2)?)?);
        out.push((row.try_get(0)?, data));
    }
    Ok(out)
}

/// Erases one customer and says what went and what stayed. Orders and
/// payments stay (bookkeeping law) with the customer's id but nothing else
/// that identifies them. Runs inside the caller's transaction.
pub async fn erase(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &str,
    now: &str,
) -> anyhow::Result<Value> {
    let row = sqlx::query(
        "SELECT email, name, phone, postcode, house_number, iban, consents, extra
         FROM customers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(json!({"status":"done","deleted":[],"retained":[]}));
    };
    let mut personal = false;
    for col in ["email", "name", "phone", "postcode", "house_number"] {
        personal |= row.try_get::<Option<String>, _>(col)?.is_some();
    }
    personal |= !object(row.try_get("extra")?)?.is_empty();
    let had_iban = row.try_get::<Option<String>, _>("iban")?.is_some();
    let had_consents = !object(row.try_get("consents")?)?.is_empty();

    let contacts = sqlx::query("DELETE FROM contacts WHERE customer_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let ip_log = sqlx::query("DELETE FROM ip_log WHERE customer_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE customers SET email = NULL, name = NULL, phone = NULL, postcode = NULL,
                house_number = NULL, iban = NULL, consents = '{}', extra = '{}', erased_at = $2
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await?;

    let deleted: Vec<&str> = [
        ("profile", personal),
        ("bank_details", had_iban),
        ("contacts", contacts > 0),
        ("ip_log", ip_log > 0),
        ("consents", had_consents),
    ]
    .into_iter()
    .filter_map(|(category, held)| held.then_some(category))
    .collect();
    let mut retained = Vec::new();
    for (category, sql) in [
        (
            "orders",
            "SELECT count(*) FROM orders WHERE customer_id = $1",
        ),
        (
            "payments",
            "SELECT count(*) FROM payments WHERE customer_id = $1",
        ),
    ] {
        let count: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
        if count > 0 {
            retained
                .push(json!({"category": category, "count": count, "reason": RETENTION_REASON}));
        }
    }
    Ok(json!({"status":"done","deleted":deleted,"retained":retained}))
}

pub enum EmailChange {
    Changed,
    Taken,
}

pub async fn change_email(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &str,
    new_email: &str,
) -> anyhow::Result<EmailChange> {
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM customers WHERE email = $1")
        .bind(new_email)
        .fetch_optional(&mut **tx)
        .await?;
    if owner.is_some_and(|owner| owner != id) {
        return Ok(EmailChange::Taken);
    }
    sqlx::query("UPDATE customers SET email = $2 WHERE id = $1")
        .bind(id)
        .bind(new_email)
        .execute(&mut **tx)
        .await?;
    Ok(EmailChange::Changed)
}

pub async fn consents(pool: &SqlitePool, id: &str) -> anyhow::Result<BTreeMap<String, bool>> {
    let text: Option<String> = sqlx::query_scalar("SELECT consents FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(match text {
        Some(t) => serde_json::from_str(&t)?,
        None => BTreeMap::new(),
    })
}

/// Sets these consent keys to false, whether or not they were held.
pub async fn stop(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: &str,
    keys: &[String],
) -> anyhow::Result<()> {
    let text: Option<String> = sqlx::query_scalar("SELECT consents FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(text) = text else { return Ok(()) };
    let mut consents: BTreeMap<String, bool> = serde_json::from_str(&text)?;
    for key in keys {
        consents.insert(key.clone(), false);
    }
    sqlx::query("UPDATE customers SET consents = $2 WHERE id = $1")
        .bind(id)
        .bind(serde_json::to_string(&consents)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many rows of each list a customer has; for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub orders: i64,
    pub payments: i64,
    pub contacts: i64,
    pub ip_log: i64,
}

pub async fn counts(pool: &SqlitePool, id: &str) -> anyhow::Result<Counts> {
    let (orders, payments, contacts, ip_log) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM orders WHERE customer_id = $1),
                (SELECT count(*) FROM payments WHERE customer_id = $1),
                (SELECT count(*) FROM contacts WHERE customer_id = $1),
                (SELECT count(*) FROM ip_log WHERE customer_id = $1)",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok(Counts {
        orders,
        payments,
        contacts,
        ip_log,
    })
}

/// Live accounts whose last activity (account created, last order, last
/// "keep my account") is before `before` (RFC 3339, compared as text: all
/// stored times are UTC `…Z`), after `cursor` by id.
pub async fn inactive(
    pool: &SqlitePool,
    before: &str,
    cursor: &str,
    limit: i64,
) -> anyhow::Result<(Vec<serde_json::Value>, Option<String>)> {
    // (id, email, locale, last activity)
    type ActivityRow = (String, Option<String>, Option<String>, Option<String>);
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT c.id, c.email, c.locale, \
           MAX(COALESCE(c.created_at, ''), COALESCE(c.active_at, ''), \
               COALESCE((SELECT MAX(o.placed_at) FROM orders o WHERE o.customer_id = c.id), '')) \
         FROM customers c WHERE c.erased_at IS NULL AND c.id > ? ORDER BY c.id LIMIT ?",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.0.clone()))
        .flatten();
    let list = rows
        .into_iter()
        .filter(|(_, _, _, last)| last.as_deref().is_some_and(|l| !l.is_empty() && l < before))
        .map(|(id, email, locale, last)| {
            serde_json::json!({"account": id, "email": email, "locale": locale, "last_activity": last})
        })
        .collect();
    Ok((list, next))
}

pub async fn touch(pool: &SqlitePool, id: &str, at: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE customers SET active_at = ? WHERE id = ? AND erased_at IS NULL")
        .bind(at)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Retention: rows of a category older than `before` (RFC 3339 UTC text).
pub async fn purge(pool: &SqlitePool, category: &str, before: &str) -> anyhow::Result<Option<u64>> {
    let sql = match category {
        "ip_log" => "DELETE FROM ip_log WHERE at < ?",
        "contacts" => "DELETE FROM contacts WHERE at < ?",
        _ => return Ok(None),
    };
    Ok(Some(
        sqlx::query(sql)
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    ))
}
