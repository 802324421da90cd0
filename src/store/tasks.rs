//! Staff tasks that are not customer requests: the other systems to clean
//! after an erasure (Art. 19) or to add to an export (Art. 15).

use serde::{Deserialize, Serialize};

use super::{Conn, Db};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub id: String,
    pub name: crate::config::Texts,
    pub done: bool,
}

pub async fn insert(
    conn: &mut Conn,
    request_id: &str,
    kind: &str,
    checklist: &[ChecklistItem],
    due_at: i64,
    now: i64,
) -> sqlx::Result<String> {
    let id = crate::store::new_id();
    sqlx::query(
        "INSERT INTO staff_tasks (id, request_id, kind, checklist, status, due_at, created_at) \
         VALUES ($1, $2, $3, $4, 'open', $5, $6)",
    )
    .bind(&id)
    .bind(request_id)
    .bind(kind)
    .bind(serde_json::to_string(checklist).expect("checklist serialises"))
    .bind(due_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct TaskRow {
    pub id: String,
    pub request_id: String,
    pub kind: String,
    pub checklist: String,
    pub status: String,
    pub due_at: i64,
    pub created_at: i64,
    pub done_at: Option<i64>,
    pub done_by: Option<String>,
}

pub async fn for_request(db: &Db, request_id: &str) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(
        "SELECT id, request_id, kind, checklist, status, due_at, created_at, done_at, done_by FROM staff_tasks \
         WHERE request_id = $1 ORDER BY created_at",
    )
    .bind(request_id)
    .fetch_all(db.read())
    .await
}

/// Open tasks, most urgent first.
pub async fn open(db: &Db, limit: i64) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(
        "SELECT id, request_id, kind, checklist, status, due_at, created_at, done_at, done_by FROM staff_tasks \
         WHERE status = 'open' ORDER BY due_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db.read())
    .await
}
