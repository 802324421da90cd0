//! Errors as RFC 9457 problem+json for the API and as a friendly page in the
//! customer's language for the portal. Internal details never reach either.

use actix_web::{http::header, web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use tera::Context;

use crate::{domain::Locale, workflow::WorkflowError, AppState};

pub fn locale_of(req: &HttpRequest) -> Locale {
    super::middleware::path_locale(req.path()).unwrap_or_else(|| {
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Locale::negotiate)
            .unwrap_or(Locale::En)
    })
}

fn status_of(err: &WorkflowError) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(err.code().1).expect("codes are valid HTTP statuses")
}

/// Marks a response that told someone the database is unavailable, so
/// that `/readyz` hears of it (see `middleware::observe`).
pub struct StorageUnavailable;

fn mark(err: &WorkflowError, mut res: HttpResponse) -> HttpResponse {
    if matches!(err, WorkflowError::Unavailable) {
        res.extensions_mut().insert(StorageUnavailable);
    }
    res
}

fn log_internal(err: &WorkflowError) {
    if let WorkflowError::Internal(e) = err {
        // sqlx and anyhow messages name tables and constraints, not values.
        tracing::error!(error = %e, "internal error");
    }
}

pub fn problem(err: &WorkflowError, locale: Locale) -> HttpResponse {
    log_internal(err);
    let (code, status) = err.code();
    let mut body = json!({
        "type": format!("https://privacy-portal.invalid/problems/{code}"),
        "title": crate::i18n::t(locale, &format!("problems.{code}")),
        "status": status,
        "code": code,
        "detail": err.message(locale),
    });
    match err {
        WorkflowError::InvalidCode { attempts_left }
        | WorkflowError::DetailsMismatch { attempts_left } => {
            body["attempts_left"] = json!(attempts_left)
        }
        WorkflowError::StillBlocked { reasons } => body["reasons"] = json!(reasons),
        WorkflowError::Invalid { field, .. } => body["field"] = json!(field),
        WorkflowError::WrongState { status } => body["current_status"] = json!(status),
        _ => {}
    }
    let mut res = HttpResponse::build(status_of(err));
    res.content_type("application/problem+json");
    if let Some(s) = err.retry_after() {
        res.insert_header((header::RETRY_AFTER, s.max(1).to_string()));
    }
    mark(err, res.body(body.to_string()))
}

pub fn page(state: &AppState, err: &WorkflowError, locale: Locale) -> HttpResponse {
    log_internal(err);
    let mut ctx = super::portal::base_context(state, locale, "/", None);
    ctx.insert(
        "title",
        &crate::i18n::t(locale, &format!("problems.{}", err.code().0)),
    );
    ctx.insert("message", &err.message(locale));
    mark(
        err,
        render_error(state, status_of(err), &ctx, err.retry_after()),
    )
}

pub fn render_error(
    state: &AppState,
    status: actix_web::http::StatusCode,
    ctx: &Context,
    retry_after: Option<u64>,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8");
    if let Some(s) = retry_after {
        res.insert_header((header::RETRY_AFTER, s.max(1).to_string()));
    }
    match state.tera.render("portal/error.html", ctx) {
        Ok(html) => res.body(html),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            res.body("Error")
        }
    }
}

/// API error type: a workflow error plus the language to explain it in.
#[derive(Debug)]
pub struct ApiError(pub WorkflowError, pub Locale);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        status_of(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        problem(&self.0, self.1)
    }
}

/// Portal error type: renders the translated error page.
pub struct PageError {
    pub err: WorkflowError,
    pub locale: Locale,
    pub state: web::Data<AppState>,
}

impl std::fmt::Debug for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.err.fmt(f)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.err.fmt(f)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        status_of(&self.err)
    }
    fn error_response(&self) -> HttpResponse {
        page(&self.state, &self.err, self.locale)
    }
}

/// Translated 404 for any unmatched path.
pub async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let locale = locale_of(&req);
    if req.path().starts_with("/api/") {
        return problem(&WorkflowError::NotFound, locale);
    }
    page(&state, &WorkflowError::NotFound, locale)
}

/// Malformed JSON bodies answer in problem+json like every other API error.
pub fn json_error(err: actix_web::error::JsonPayloadError, req: &HttpRequest) -> actix_web::Error {
    let _ = err;
    ApiError(
        WorkflowError::Invalid {
            field: "body",
            key: "errors.invalid_json",
        },
        locale_of(req),
    )
    .into()
}
