//! The HTTP side of the protocol: one route, `POST /{operation}`, signed.

use std::sync::Arc;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::{signature, store, Shared};

pub const OPERATIONS: [&str; 10] = [
    "ping",
    "lookup",
    "knowledge",
    "blockers",
    "export",
    "erase",
    "erase-status",
    "change-email",
    "consents",
    "stop",
];

/// How a call can fail, and the status the portal sees.
enum Fail {
    /// 400: the body does not say what the operation needs.
    BadRequest(String),
    /// 404 with an error code.
    NotFound(&'static str),
    /// 500: our fault; the portal retries.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Self {
        Fail::Internal(e)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Internal(e.into())
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Internal(e.into())
    }
}

fn error(status: StatusCode, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": code }))
}

pub async fn call(
    req: HttpRequest,
    op: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if shared.is_down() {
        shared.counters().while_down += 1;
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
    let delay = shared.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let webhook_id = header("webhook-id");
    // Over the raw bytes, before any parsing: the signature covers exactly
    // what was sent.
    if let Err(refusal) = signature::verify(
        &shared.secret,
        webhook_id,
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        shared.counters().refused_signatures += 1;
        tracing::warn!(operation = %op, reason = refusal.code(), "refused a call");
        return error(StatusCode::UNAUTHORIZED, refusal.code());
    }
    let op = op.into_inner();
    if !OPERATIONS.contains(&op.as_str()) {
        return error(StatusCode::NOT_FOUND, "unknown_operation");
    }
    let body = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        _ => return error(StatusCode::BAD_REQUEST, "body must be a JSON object"),
    };
    let request_id = body.get("request_id").and_then(Value::as_str);
    shared.count_call(&op, webhook_id.unwrap_or_default(), request_id);

    match dispatch(&shared, &op, &body).await {
        Ok((status, answer)) => HttpResponse::build(status).json(answer),
        Err(Fail::BadRequest(msg)) => error(StatusCode::BAD_REQUEST, &msg),
        Err(Fail::NotFound(code)) => error(StatusCode::NOT_FOUND, code),
        Err(Fail::Internal(e)) => {
            // The error names tables and SQL, never the customer's data.
            tracing::error!(operation = %op, "failed: {e:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

fn field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, Fail> {
    body.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Fail::BadRequest(format!("{key} (a string) is required")))
}

/// The customer a call is about: `account` (our id) from the primary role,
/// `email` from the secondary role. `None`: we hold nobody by that name.
async fn subject(shared: &Shared, body: &Map<String, Value>) -> Result<Option<String>, Fail> {
    if let Some(id) = body.get("account").and_then(Value::as_str) {
        return Ok(store::account_exists(&shared.pool, id)
            .await?
            .then(|| id.to_string()));
    }
    if let Some(email) = body.get("email").and_then(Value::as_str) {
        return Ok(store::account_by_email(&shared.pool, email).await?);
    }
    Err(Fail::BadRequest("account or email is required".into()))
}

const OK: StatusCode = StatusCode::OK;

async fn dispatch(
    shared: &Shared,
    op: &str,
    body: &Map<String, Value>,
) -> Result<(StatusCode, Value), Fail> {
    let pool = &shared.pool;
    match op {
        "ping" => Ok((OK, json!({"ok": true}))),
        // Scheduled anonymisation: who has been inactive, and "keep my account".
        "inactive" => {
            let before = field(body, "before")?;
            let before = chrono::DateTime::parse_from_rfc3339(before)
                .map_err(|_| Fail::BadRequest("before must be RFC 3339".into()))?
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let cursor = body.get("cursor").and_then(Value::as_str).unwrap_or("");
            let (accounts, next) = store::inactive(pool, &before, cursor, 500).await?;
            Ok((OK, json!({"accounts": accounts, "next_cursor": next})))
        }
        // Retention per category: rows older than `before` go.
        "purge" => {
            let category = field(body, "category")?;
            let before = chrono::DateTime::parse_from_rfc3339(field(body, "before")?)
                .map_err(|_| Fail::BadRequest("before must be RFC 3339".into()))?
                .with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let _one_writer = shared.write_lock.lock().await;
            match store::purge(pool, category, &before).await? {
                Some(n) => Ok((OK, json!({"deleted": n}))),
                None => Ok((StatusCode::NOT_FOUND, json!({"error": "unknown_category"}))),
            }
        }
        "touch" => {
            let id = field(body, "account")?;
            let at = body
                .get("at")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                });
            let _one_writer = shared.write_lock.lock().await;
            store::touch(pool, id, &at).await?;
            Ok((OK, json!({"ok": true})))
        }
        "lookup" => {
            let account = store::account_by_email(pool, field(body, "email")?).await?;
            Ok((OK, json!({ "account": account })))
        }
        "knowledge" => {
            let (postcode, house_number) = (field(body, "postcode")?, field(body, "house_number")?);
            let id = field(body, "account")?;
            let matched = store::knowledge_matches(pool, id, postcode, house_number).await?;
            Ok((OK, json!({ "match": matched })))
        }
        "blockers" => {
            let blockers = match subject(shared, body).await? {
                Some(id) => store::blockers(pool, &id, chrono::Utc::now()).await?,
                None => vec![],
            };
            Ok((OK, json!({ "blockers": blockers })))
        }
        "export" => {
            let cursor = match body.get("cursor") {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) => Some(c.as_str()),
                Some(_) => return Err(Fail::BadRequest("cursor must be a string or null".into())),
            };
            let id = subject(shared, body).await?;
            Ok((OK, export(shared, id, cursor).await?))
        }
        "erase" => {
            let request_id = field(body, "request_id")?;
            let id = subject(shared, body).await?;
            erase(shared, request_id, id).await
        }
        "erase-status" => erase_status(shared, field(body, "request_id")?).await,
        "change-email" => {
            let (new_email, request_id) = (field(body, "new_email")?, field(body, "request_id")?);
            let _one_writer = shared.write_lock.lock().await;
            if let Some(answer) = stored_answer(shared, op, request_id).await? {
                return Ok((OK, answer));
            }
            let mut tx = pool.begin().await?;
            let result = match subject(shared, body).await? {
                Some(id) => match store::change_email(&mut tx, &id, new_email).await? {
                    store::EmailChange::Changed => "changed",
                    store::EmailChange::Taken => "taken",
                },
                // Nobody by that name here: nothing to move.
                None => "changed",
            };
            let answer = json!({ "result": result });
            store_answer(&mut tx, op, request_id, &answer).await?;
            tx.commit().await?;
            Ok((OK, answer))
        }
        "consents" => {
            let consents = match subject(shared, body).await? {
                Some(id) => store::consents(pool, &id).await?,
                None => Default::default(),
            };
            Ok((OK, json!({ "consents": consents })))
        }
        "stop" => {
            let request_id = field(body, "request_id")?;
            let keys: Vec<String> = body
                .get("keys")
                .and_then(|k| serde_json::from_value(k.clone()).ok())
                .ok_or_else(|| Fail::BadRequest("keys (a list of strings) is required".into()))?;
            let _one_writer = shared.write_lock.lock().await;
            if let Some(answer) = stored_answer(shared, op, request_id).await? {
                return Ok((OK, answer));
            }
            let mut tx = pool.begin().await?;
            if let Some(id) = subject(shared, body).await? {
                store::stop(&mut tx, &id, &keys).await?;
            }
            let answer = json!({"ok": true});
            store_answer(&mut tx, op, request_id, &answer).await?;
            tx.commit().await?;
            Ok((OK, answer))
        }
        _ => Err(Fail::NotFound("unknown_operation")),
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// The answer given to an earlier call with this request_id, if any: a
/// change runs at most once per (operation, request_id). Callers hold
/// `write_lock` from here until their own answer is stored.
async fn stored_answer(shared: &Shared, op: &str, request_id: &str) -> Result<Option<Value>, Fail> {
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT response FROM idempotency WHERE operation = $1 AND request_id = $2",
    )
    .bind(op)
    .bind(request_id)
    .fetch_optional(&shared.pool)
    .await?;
    Ok(stored.map(|s| serde_json::from_str(&s)).transpose()?)
}

async fn store_answer(tx: &mut Tx, op: &str, request_id: &str, answer: &Value) -> Result<(), Fail> {
    sqlx::query("INSERT INTO idempotency (operation, request_id, response) VALUES ($1, $2, $3)")
        .bind(op)
        .bind(request_id)
        .bind(answer.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One page of records, keyset-paged over (category, seq).
async fn export(shared: &Shared, id: Option<String>, cursor: Option<&str>) -> Result<Value, Fail> {
    let Some(id) = id else {
        return Ok(json!({"records": [], "next_cursor": null}));
    };
    let (mut cat, mut after) = match cursor {
        None => (0, 0),
        Some(c) => parse_cursor(c).ok_or_else(|| Fail::BadRequest("unknown cursor".into()))?,
    };
    let page_size = shared.page_size.max(1);
    let mut records = Vec::new();
    let mut last = (0, 0);
    while cat < store::CATEGORIES.len() {
        // One more than fits tells whether another page follows.
        let want = (page_size - records.len() + 1) as i64;
        let rows =
            store::category_page(&shared.pool, &id, store::CATEGORIES[cat], after, want).await?;
        for (seq, data) in rows {
            if records.len() == page_size {
                let next = format!("{}:{}", store::CATEGORIES[last.0], last.1);
                return Ok(json!({"records": records, "next_cursor": next}));
            }
            records.push(json!({"category": store::CATEGORIES[cat], "data": data}));
            last = (cat, seq);
        }
        cat += 1;
        after = 0;
    }
    Ok(json!({"records": records, "next_cursor": null}))
}

fn parse_cursor(cursor: &str) -> Option<(usize, i64)> {
    let (category, seq) = cursor.split_once(':')?;
    let cat = store::CATEGORIES.iter().position(|c| *c == category)?;
    Some((cat, seq.parse().ok()?))
}

fn pending() -> (StatusCode, Value) {
    (StatusCode::ACCEPTED, json!({"status": "pending"}))
}

async fn erase(
    shared: &Shared,
    request_id: &str,
    id: Option<String>,
) -> Result<(StatusCode, Value), Fail> {
    let _one_writer = shared.write_lock.lock().await;
    let job: Option<Option<String>> =
        sqlx::query_scalar("SELECT result FROM erase_jobs WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&shared.pool)
            .await?;
    match job {
        Some(Some(result)) => return Ok((OK, serde_json::from_str(&result)?)),
        Some(None) => return Ok(pending()),
        None => {}
    }
    let mut tx = shared.pool.begin().await?;
    sqlx::query("INSERT INTO erase_jobs (request_id, customer_id) VALUES ($1, $2)")
        .bind(request_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if shared.async_erase() {
        tx.commit().await?;
        return Ok(pending());
    }
    let result = execute_erasure(shared, tx, request_id, id.as_deref()).await?;
    Ok((OK, result))
}

async fn erase_status(shared: &Shared, request_id: &str) -> Result<(StatusCode, Value), Fail> {
    let _one_writer = shared.write_lock.lock().await;
    let job: Option<(Option<String>, i64, Option<String>)> =
        sqlx::query_as("SELECT customer_id, polls, result FROM erase_jobs WHERE request_id = $1")
            .bind(request_id)
            .fetch_optional(&shared.pool)
            .await?;
    let Some((id, polls, result)) = job else {
        return Err(Fail::NotFound("unknown_request"));
    };
    if let Some(result) = result {
        return Ok((OK, serde_json::from_str(&result)?));
    }
    if (polls as usize) < shared.pending_polls() {
        sqlx::query("UPDATE erase_jobs SET polls = polls + 1 WHERE request_id = $1")
            .bind(request_id)
            .execute(&shared.pool)
            .await?;
        return Ok(pending());
    }
    let tx = shared.pool.begin().await?;
    let result = execute_erasure(shared, tx, request_id, id.as_deref()).await?;
    Ok((OK, result))
}

/// The erasure itself and its stored answer, in one transaction: either
/// both happen or neither, so a crash in between cannot erase twice.
async fn execute_erasure(
    shared: &Shared,
    mut tx: Tx,
    request_id: &str,
    id: Option<&str>,
) -> Result<Value, Fail> {
    let result = match id {
        Some(id) => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            store::erase(&mut tx, id, &now).await?
        }
        None => json!({"status": "done", "deleted": [], "retained": []}),
    };
    sqlx::query(
        "UPDATE erase_jobs SET result = $2, executions = executions + 1 WHERE request_id = $1",
    )
    .bind(request_id)
    .bind(result.to_string())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    *shared
        .counters()
        .erasures_executed
        .entry(request_id.to_string())
        .or_default() += 1;
    tracing::info!(request_id, "erasure executed");
    Ok(result)
}
