//! The export: a confirm page, then the signed 24-hour download link that
//! asks for a fresh code unless this browser session just verified.

use actix_session::Session;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tera::Context;

use super::{
    base_context, check_csrf, csrf_token, lang, render, rest_of, see_other, verified_ids,
    PageResult,
};
use crate::{
    domain::{Locale, Status},
    store::requests::RequestRow,
    workflow::{export, reference, verification, WorkflowError},
    AppState,
};

/// Template for an export request in any state.
pub(super) fn page(
    state: &AppState,
    ctx: &mut Context,
    row: &RequestRow,
    locale: Locale,
    verified: &[String],
) -> &'static str {
    match row.status() {
        Status::Verified => "portal/export.html",
        Status::Processing => {
            ctx.insert("refresh", &true);
            "portal/status.html"
        }
        Status::Completed if row.outcome.as_deref() == Some("archive_ready") => {
            let exp = row
                .data()
                .get("download_expires_at")
                .and_then(|v| v.as_i64())
                .unwrap_or(0);
            if exp > crate::store::now() && verified.iter().any(|v| v == &row.id) {
                ctx.insert(
                    "download_href",
                    &export::download_path(state, &row.id, locale, exp),
                );
            } else if exp <= crate::store::now() {
                ctx.insert("download_expired", &true);
            }
            "portal/status.html"
        }
        _ => "portal/status.html",
    }
}

#[derive(Deserialize)]
pub(super) struct LinkQuery {
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    sig: String,
}

/// Expired, tampered or unknown: one friendly page offering a new request.
fn expired_page(state: &AppState, req: &HttpRequest, locale: Locale) -> HttpResponse {
    let mut ctx = base_context(state, locale, &rest_of(req), None);
    ctx.insert("title", &crate::i18n::t(locale, "export.expired_title"));
    ctx.insert("message", &crate::i18n::t(locale, "export.expired_text"));
    ctx.insert("again_href", &format!("/{}/export", locale.as_str()));
    ctx.insert(
        "again_label",
        &crate::i18n::t(locale, "export.expired_again"),
    );
    render(
        state,
        actix_web::http::StatusCode::GONE,
        "portal/error.html",
        &ctx,
    )
}

/// "Still being prepared": a link to an archive that is being built again.
fn preparing_page(state: &AppState, req: &HttpRequest, locale: Locale) -> HttpResponse {
    let mut ctx = base_context(state, locale, &rest_of(req), None);
    ctx.insert("title", &crate::i18n::t(locale, "export.preparing_title"));
    ctx.insert("message", &crate::i18n::t(locale, "export.preparing_text"));
    ctx.insert("refresh", &true);
    let err = WorkflowError::ExportProcessing {
        retry_after: export::PROCESSING_RETRY_AFTER_SECS,
    };
    crate::web::errors::render_error(
        state,
        actix_web::http::StatusCode::CONFLICT,
        &ctx,
        err.retry_after(),
    )
}

/// What a signed link leads to.
enum Link {
    Ready(Box<(RequestRow, export::ExportRow)>),
    Preparing,
    Gone,
}

async fn check(state: &AppState, id: &str, q: &LinkQuery) -> Link {
    if !export::link_valid(state, id, q.exp, &q.sig) {
        return Link::Gone;
    }
    let archive = match export::available(state, id).await {
        Ok(a) => a,
        Err(WorkflowError::ExportProcessing { .. }) => return Link::Preparing,
        Err(_) => return Link::Gone,
    };
    match verification::get(state, id).await {
        Ok(row) => Link::Ready(Box::new((row, archive))),
        Err(_) => Link::Gone,
    }
}

/// Answers a link that does not lead to an archive now.
fn not_ready(state: &AppState, req: &HttpRequest, locale: Locale, link: &Link) -> HttpResponse {
    match link {
        Link::Preparing => preparing_page(state, req, locale),
        _ => expired_page(state, req, locale),
    }
}

fn file_href(locale: Locale, id: &str, q: &LinkQuery) -> String {
    format!(
        "/{}/download/{}/file?exp={}&sig={}",
        locale.as_str(),
        id,
        q.exp,
        q.sig
    )
}

fn code_form(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    id: &str,
    q: &LinkQuery,
) -> Context {
    let csrf = csrf_token(session);
    let mut ctx = base_context(state, locale, &rest_of(req), Some(&csrf));
    ctx.insert("id", id);
    ctx.insert("exp", &q.exp);
    ctx.insert("sig", &q.sig);
    ctx.insert("minutes", &(crate::workflow::limits::CODE_TTL_SECS / 60));
    ctx
}

pub(super) async fn link_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    q: web::Query<LinkQuery>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let link = check(&state, &id, &q).await;
    if !matches!(link, Link::Ready(..)) {
        return Ok(not_ready(&state, &req, locale, &link));
    }
    if verified_ids(&session).iter().any(|v| v == &id) {
        return Ok(see_other(file_href(locale, &id, &q)));
    }
    let here = format!(
        "/{}/download/{}?exp={}&sig={}",
        locale.as_str(),
        id,
        q.exp,
        q.sig
    );
    let mut ctx = code_form(&state, &req, &session, locale, &id, &q);
    match export::send_download_code(&state, &id, locale, &here).await {
        Ok(()) => {}
        Err(e @ WorkflowError::RateLimited { .. }) => ctx.insert("error", &e.message(locale)),
        Err(WorkflowError::DownloadExpired) => return Ok(expired_page(&state, &req, locale)),
        Err(e) => return Err(super::fail(&state, locale, e)),
    }
    Ok(render(
        &state,
        actix_web::http::StatusCode::OK,
        "portal/download_code.html",
        &ctx,
    ))
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    exp: i64,
    #[serde(default)]
    sig: String,
}

pub(super) async fn code_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let q = LinkQuery {
        exp: form.exp,
        sig: form.sig.clone(),
    };
    let link = check(&state, &id, &q).await;
    if !matches!(link, Link::Ready(..)) {
        return Ok(not_ready(&state, &req, locale, &link));
    }
    match export::check_download_code(&state, &id, &form.code).await {
        Ok(()) => {
            let mut ids = verified_ids(&session);
            session.renew();
            ids.retain(|x| x != &id);
            ids.push(id.clone());
            let keep = ids.len().saturating_sub(5);
            let _ = session.insert("verified", &ids[keep..]);
            let _ = session.insert("csrf", crate::crypto::random_token());
            Ok(see_other(file_href(locale, &id, &q)))
        }
        Err(
            e @ (WorkflowError::InvalidCode { .. }
            | WorkflowError::CodeExpired
            | WorkflowError::TooManyAttempts { .. }),
        ) => {
            let mut ctx = code_form(&state, &req, &session, locale, &id, &q);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/download_code.html",
                &ctx,
            ))
        }
        Err(e) => Err(super::fail(&state, locale, e)),
    }
}

pub(super) async fn file(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    q: web::Query<LinkQuery>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let (row, archive) = match check(&state, &id, &q).await {
        Link::Ready(ready) => *ready,
        link => return Ok(not_ready(&state, &req, locale, &link)),
    };
    if !verified_ids(&session).iter().any(|v| v == &id) {
        return Ok(see_other(format!(
            "/{}/download/{}?exp={}&sig={}",
            locale.as_str(),
            id,
            q.exp,
            q.sig
        )));
    }
    export::record_download(&state, &id, "portal")
        .await
        .map_err(|e| super::fail(&state, locale, e))?;
    Ok(stream(&state, &row, &archive))
}

/// The decrypted zip as an attachment.
pub(crate) fn stream(
    state: &AppState,
    row: &RequestRow,
    archive: &export::ExportRow,
) -> HttpResponse {
    let rx = export::open_stream(state, &row.id, archive);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (chunk.map(actix_web::web::Bytes::from), rx))
    });
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"privacy-export-{}.zip\"",
                reference(&row.id)
            ),
        ))
        .streaming(body)
}
