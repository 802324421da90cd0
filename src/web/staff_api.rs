//! Staff API: the queue of cases that need a human, most urgent first.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::errors::{locale_of, ApiError};
use crate::{
    domain::{RequestKind, Status},
    store::{audit, requests, staff},
    workflow::{verification::RequestView, WorkflowError},
    AppState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/staff/cases", web::get().to(list))
        .route("/staff/cases/{id}", web::get().to(case))
        .route("/staff/cases/{id}/actions", web::post().to(action));
}

async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<staff::StaffRow, ApiError> {
    let locale = locale_of(req);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError(WorkflowError::Unauthorized, locale))?;
    staff::by_token(&state.db, &state.keys.token_hash(token.trim()))
        .await
        .map_err(|e| ApiError(e.into(), locale))?
        .ok_or(ApiError(WorkflowError::Unauthorized, locale))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    kind: Option<String>,
    overdue: Option<bool>,
    /// `me`, `none` (unassigned) or a staff id.
    assignee: Option<String>,
    /// `checklist`: cases with open checklist work (other systems), any status.
    work: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct CaseSummary {
    #[serde(flatten)]
    request: RequestView,
    days_left: i64,
    overdue: bool,
}

#[derive(Serialize)]
struct CaseList {
    cases: Vec<CaseSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    next: Option<String>,
}

fn summary(state: &AppState, r: &requests::RequestRow, now: i64) -> CaseSummary {
    let tz = state.settings.company.country.timezone();
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let due = chrono::NaiveDate::parse_from_str(&r.due_date, "%Y-%m-%d").unwrap_or(today);
    CaseSummary {
        request: RequestView::from(r),
        days_left: crate::domain::deadline::days_left(due, today),
        overdue: r.due_at < now,
    }
}

#[utoipa::path(get, path = "/api/v1/staff/cases", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "filter by status (default: escalated and processing)"),
           ("kind" = Option<String>, Query), ("overdue" = Option<bool>, Query),
           ("assignee" = Option<String>, Query, description = "`me`, `none` (unassigned) or a staff id"),
           ("work" = Option<String>, Query, description = "`checklist`: cases with open checklist work for other systems; `systems`: cases with a company-system step waiting or failed; both in any status"),
           ("after" = Option<String>, Query, description = "keyset cursor from `next`")),
    responses((status = 200, description = "cases, most urgent due date first"), (status = 401, description = "unauthorized")))]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let member = authenticate(&state, &req).await?;
    let locale = locale_of(&req);
    let bad = |field| {
        ApiError(
            WorkflowError::Invalid {
                field,
                key: "errors.invalid_filter",
            },
            locale,
        )
    };
    let status = match &q.status {
        Some(s) => Some(Status::parse(s).ok_or_else(|| bad("status"))?),
        None => None,
    };
    let kind = match &q.kind {
        Some(k) => Some(RequestKind::parse(k).ok_or_else(|| bad("kind"))?),
        None => None,
    };
    let after = match &q.after {
        Some(c) => {
            let (due, id) = c.split_once('_').ok_or_else(|| bad("after"))?;
            Some((
                due.parse::<i64>().map_err(|_| bad("after"))?,
                id.to_string(),
            ))
        }
        None => None,
    };
    let (open_tasks, open_steps) = match q.work.as_deref().map(str::trim) {
        None | Some("") => (false, false),
        Some("checklist") => (true, false),
        Some("systems") => (false, true),
        Some(_) => return Err(bad("work")),
    };
    let now = crate::store::now();
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let assignee = match q.assignee.as_deref().map(str::trim) {
        None | Some("") => crate::store::cases::Assignee::Anyone,
        Some("none") => crate::store::cases::Assignee::Unassigned,
        Some("me") => crate::store::cases::Assignee::Staff(member.id.clone()),
        Some(other) => crate::store::cases::Assignee::Staff(other.to_string()),
    };
    let rows = crate::store::cases::queue(
        &state.db,
        &crate::store::cases::CaseFilter {
            status,
            kind,
            assignee,
            overdue_at: q.overdue.filter(|o| *o).map(|_| now),
            email_hash: None,
            open_tasks,
            open_steps,
            after,
            limit: limit + 1,
        },
    )
    .await
    .map_err(|e| ApiError(e.into(), locale))?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|r| format!("{}_{}", r.due_at, r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(CaseList {
        cases: page.iter().map(|r| summary(&state, r, now)).collect(),
        next,
    }))
}

#[utoipa::path(get, path = "/api/v1/staff/cases/{id}", security(("bearer" = [])),
    responses((status = 200, description = "the case with its facts and history"), (status = 404, description = "not_found")))]
pub async fn case(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authenticate(&state, &req).await?;
    let locale = locale_of(&req);
    let row = crate::workflow::verification::get(&state, &path)
        .await
        .map_err(|e| ApiError(e, locale))?;
    let history = audit::for_request(&state.db, &row.id)
        .await
        .map_err(|e| ApiError(e.into(), locale))?;
    let tasks: Vec<serde_json::Value> = crate::store::tasks::for_request(&state.db, &row.id)
        .await
        .map_err(|e| ApiError(e.into(), locale))?
        .iter()
        .map(|t| {
            let items: serde_json::Value =
                serde_json::from_str(&t.checklist).unwrap_or_else(|_| serde_json::json!([]));
            serde_json::json!({"id": t.id, "kind": t.kind, "status": t.status, "items": items,
                "done_at": t.done_at, "done_by": t.done_by})
        })
        .collect();
    let steps = crate::workflow::steps::view(&state, &row.id, locale)
        .await
        .map_err(|e| ApiError(e, locale))?;
    let now = crate::store::now();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "case": summary(&state, &row, now),
        "tasks": tasks,
        "steps": steps,
        "email": row.email,
        "locale": row.locale,
        "channel": row.channel,
        "verified": row.verified_at.is_some(),
        "facts": row.data(),
        "history": history,
    })))
}

#[utoipa::path(post, path = "/api/v1/staff/cases/{id}/actions", security(("bearer" = [])),
    request_body = crate::workflow::cases::Action,
    responses((status = 200, description = "the case after the action"),
              (status = 409, description = "wrong_state"), (status = 422, description = "invalid_input"),
              (status = 401, description = "unauthorized")))]
pub async fn action(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: Result<web::Json<crate::workflow::cases::Action>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let member = authenticate(&state, &req).await?;
    let locale = locale_of(&req);
    let body = body.map_err(|_| {
        ApiError(
            WorkflowError::Invalid {
                field: "action",
                key: "staff.errors.invalid_action",
            },
            locale,
        )
    })?;
    let actor = crate::workflow::staff_auth::actor(&member.id);
    let row = crate::workflow::cases::apply(&state, &path, &actor, &body)
        .await
        .map_err(|e| ApiError(e, locale))?;
    let now = crate::store::now();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "case": summary(&state, &row, now),
        "assignee": row.assignee,
        "extension_months": row.extension_months,
    })))
}
