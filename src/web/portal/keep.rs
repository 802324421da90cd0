//! "Keep my account": the one-click link in the inactivity warning. The
//! link opens a page with one button (a mail scanner that follows links
//! must not keep an account by itself); the button records activity.

use actix_session::Session;
use actix_web::{web, HttpRequest};
use serde::Deserialize;

use super::{base_context, check_csrf, csrf_token, fail, lang, ok, rest_of, PageResult};
use crate::{workflow::WorkflowError, AppState};

pub(super) async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw, token) = path.into_inner();
    let locale = lang(&state, &raw)?;
    let csrf = csrf_token(&session);
    let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    ctx.insert("token", &token);
    Ok(ok(&state, "portal/keep.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct KeepForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<KeepForm>,
) -> PageResult {
    let (raw, token) = path.into_inner();
    let locale = lang(&state, &raw)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let kept = crate::workflow::anonymise::keep(&state, &token)
        .await
        .map_err(|e| fail(&state, locale, WorkflowError::from(e)))?;
    if !kept {
        return Err(fail(&state, locale, WorkflowError::NotFound));
    }
    let mut ctx = base_context(&state, locale, &rest_of(&req), None);
    ctx.insert("kept", &true);
    Ok(ok(&state, "portal/keep.html", &ctx))
}
