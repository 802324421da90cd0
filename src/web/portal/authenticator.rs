//! Setting up an authenticator after a code check, and the lost-mailbox
//! fallback of the email change.

use actix_session::Session;
use actix_web::{web, HttpRequest};
use serde::Deserialize;

use super::{
    base_context, check_csrf, csrf_token, fail, lang, ok, render, rest_of, see_other, verified_ids,
    PageResult,
};
use crate::{
    domain::Locale,
    workflow::{authenticator, verification, WorkflowError},
    AppState,
};

fn pending_key(id: &str) -> String {
    format!("totp_pending:{id}")
}

async fn verified_request(
    state: &web::Data<AppState>,
    session: &Session,
    locale: Locale,
    id: &str,
) -> Result<crate::store::requests::RequestRow, super::PageError> {
    if !verified_ids(session).iter().any(|v| v == id) {
        return Err(fail(state, locale, WorkflowError::NotVerified));
    }
    verification::get(state, id)
        .await
        .map_err(|e| fail(state, locale, e))
}

/// Whether to offer the set-up on a verified request's page.
pub(super) async fn offer(state: &AppState, row: &crate::store::requests::RequestRow) -> bool {
    match authenticator::account_of(state, row).await {
        Ok(Some(acc)) => !authenticator::enrolled(state, &acc).await.unwrap_or(true),
        _ => false,
    }
}

pub(super) async fn page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let row = verified_request(&state, &session, locale, &id).await?;
    let acc = authenticator::account_of(&state, &row)
        .await
        .map_err(|e| fail(&state, locale, e))?
        .ok_or_else(|| fail(&state, locale, WorkflowError::NoAccount))?;
    let csrf = csrf_token(&session);
    let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    ctx.insert("id", &id);
    if authenticator::enrolled(&state, &acc)
        .await
        .map_err(|e| fail(&state, locale, e))?
    {
        ctx.insert("enrolled", &true);
        return Ok(ok(&state, "portal/authenticator.html", &ctx));
    }
    let secret = match session.get::<String>(&pending_key(&id)).ok().flatten() {
        Some(s) => s,
        None => {
            let setup = authenticator::new_setup(&state, &state.settings.company.name)
                .map_err(|e| fail(&state, locale, e))?;
            let _ = session.insert(pending_key(&id), &setup.secret_b32);
            setup.secret_b32
        }
    };
    let setup = authenticator::setup_for(&state, &secret, &state.settings.company.name)
        .map_err(|e| fail(&state, locale, e))?;
    ctx.insert("secret", &setup.secret_grouped);
    ctx.insert("otpauth_url", &setup.otpauth_url);
    ctx.insert("qr", &setup.qr_data_uri);
    Ok(ok(&state, "portal/authenticator.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub(super) async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<ConfirmForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let row = verified_request(&state, &session, locale, &id).await?;
    let Some(secret) = session.get::<String>(&pending_key(&id)).ok().flatten() else {
        return Ok(see_other(format!(
            "/{}/r/{}/authenticator",
            locale.as_str(),
            id
        )));
    };
    let csrf = csrf_token(&session);
    let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    ctx.insert("id", &id);
    match authenticator::confirm(&state, &row, &secret, &form.code).await {
        Ok(codes) => {
            session.remove(&pending_key(&id));
            ctx.insert("recovery_codes", &codes);
            Ok(ok(&state, "portal/recovery_codes.html", &ctx))
        }
        Err(e @ WorkflowError::Invalid { .. }) => {
            let setup = authenticator::setup_for(&state, &secret, &state.settings.company.name)
                .map_err(|e| fail(&state, locale, e))?;
            ctx.insert("secret", &setup.secret_grouped);
            ctx.insert("otpauth_url", &setup.otpauth_url);
            ctx.insert("qr", &setup.qr_data_uri);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/authenticator.html",
                &ctx,
            ))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn remove(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let row = verified_request(&state, &session, locale, &id).await?;
    authenticator::remove(&state, &row)
        .await
        .map_err(|e| fail(&state, locale, e))?;
    Ok(see_other(format!(
        "/{}/r/{}/authenticator",
        locale.as_str(),
        id
    )))
}

pub(super) async fn lost_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> PageResult {
    let locale = lang(&state, &path)?;
    let csrf = csrf_token(&session);
    let ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    Ok(ok(&state, "portal/lost_mailbox.html", &ctx))
}

#[derive(Deserialize)]
pub(super) struct LostForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    house_number: String,
    #[serde(default)]
    new_email: String,
}

pub(super) async fn lost_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<LostForm>,
) -> PageResult {
    let locale = lang(&state, &path)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let client = super::super::client_ip(&req).to_string();
    let input = authenticator::FallbackInput {
        email: &form.email,
        code: &form.code,
        postcode: &form.postcode,
        house_number: &form.house_number,
        new_email: &form.new_email,
        locale,
        client: &client,
    };
    match authenticator::fallback(&state, &input).await {
        Ok(authenticator::FallbackOutcome::Verified { id, .. }) => {
            let mut ids = verified_ids(&session);
            session.renew();
            ids.push(id.clone());
            let keep = ids.len().saturating_sub(5);
            let _ = session.insert("verified", &ids[keep..]);
            let _ = session.insert("csrf", crate::crypto::random_token());
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Ok(authenticator::FallbackOutcome::ForSupport { id }) => {
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert(
                "notice",
                &crate::i18n::t(locale, "authenticator.lost.for_support"),
            );
            ctx.insert("next", &format!("/{}/r/{}/code", locale.as_str(), id));
            Ok(ok(&state, "portal/lost_mailbox.html", &ctx))
        }
        Err(
            e @ (WorkflowError::FallbackMismatch
            | WorkflowError::Invalid { .. }
            | WorkflowError::TooManyAttempts { .. }
            | WorkflowError::RateLimited { .. }),
        ) => {
            let status = actix_web::http::StatusCode::from_u16(e.code().1)
                .unwrap_or(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY);
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("error", &e.message(locale));
            ctx.insert("email", &form.email);
            ctx.insert("new_email", &form.new_email);
            Ok(render(&state, status, "portal/lost_mailbox.html", &ctx))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}
