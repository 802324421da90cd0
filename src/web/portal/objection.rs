//! The privacy notice, the guidance pages and the objection pages.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::{web, HttpRequest};
use tera::Context;

use super::{base_context, csrf_token, fail, lang, ok, render, rest_of, PageResult};
use crate::{
    domain::{Locale, RequestKind, Status},
    store::requests::RequestRow,
    workflow::{notice, object, WResult, WorkflowError},
    AppState,
};

/// `/{lang}/privacy`: the Art. 13 information from the company configuration.
pub(super) async fn privacy_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let locale = lang(&state, &path)?;
    if let Some(page) = super::pages::cached(&state, &req) {
        return Ok(page);
    }
    let (template, ctx) = privacy_view(&state, locale, &rest_of(&req));
    Ok(ok(&state, template, &ctx))
}

pub(super) fn privacy_view(
    state: &AppState,
    locale: Locale,
    rest: &str,
) -> (&'static str, Context) {
    let mut ctx = base_context(state, locale, rest, None);
    ctx.insert("notice", &notice::view(&state.settings.company, locale));
    ("portal/privacy.html", ctx)
}

/// `/{lang}/help`: the list of guidance topics.
pub(super) async fn help_index(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let locale = lang(&state, &path)?;
    if let Some(page) = super::pages::cached(&state, &req) {
        return Ok(page);
    }
    let (template, ctx) = help_index_view(&state, locale, &rest_of(&req));
    Ok(ok(&state, template, &ctx))
}

pub(super) fn help_index_view(
    state: &AppState,
    locale: Locale,
    rest: &str,
) -> (&'static str, Context) {
    let mut ctx = base_context(state, locale, rest, None);
    ctx.insert(
        "topics",
        &notice::guidance_links(&state.settings.company, locale),
    );
    ("portal/help_index.html", ctx)
}

/// `/{lang}/help/{topic}`: steps for a change made in the company's own app.
pub(super) async fn help_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw_lang, topic) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    if let Some(page) = super::pages::cached(&state, &req) {
        return Ok(page);
    }
    let (template, ctx) = help_view(&state, locale, &topic, &rest_of(&req))
        .ok_or_else(|| fail(&state, locale, WorkflowError::NotFound))?;
    Ok(ok(&state, template, &ctx))
}

pub(super) fn help_view(
    state: &AppState,
    locale: Locale,
    topic: &str,
    rest: &str,
) -> Option<(&'static str, Context)> {
    let company = &state.settings.company;
    let view = notice::guidance(company, locale, topic)?;
    let mut ctx = base_context(state, locale, rest, None);
    let others: Vec<_> = notice::guidance_links(company, locale)
        .into_iter()
        .filter(|g| g.id != view.id)
        .collect();
    ctx.insert("topic", &view);
    ctx.insert("others", &others);
    Some(("portal/help.html", ctx))
}

/// The start page of a deep link `/{lang}/object?purpose=newsletter`: names
/// the purpose and carries it through the form.
pub(super) fn start_context(
    state: &AppState,
    locale: Locale,
    kind: RequestKind,
    purpose: Option<&str>,
    ctx: &mut Context,
) {
    if kind != RequestKind::Object {
        return;
    }
    if let Some(p) = purpose.and_then(|p| state.settings.company.objection_purpose(p.trim())) {
        ctx.insert("purpose", &p.id);
        let notice = match &p.stop {
            Some(stop) => crate::i18n::t_args(
                locale,
                "object.preselected_stop",
                &[("stop", stop.get(locale))],
            ),
            None => crate::i18n::t_args(
                locale,
                "object.preselected",
                &[("title", p.title.get(locale))],
            ),
        };
        ctx.insert("purpose_notice", &notice);
    }
}

/// Picks the template for an objection in any state.
pub(super) async fn page(
    state: &AppState,
    ctx: &mut Context,
    row: &RequestRow,
    locale: Locale,
) -> WResult<&'static str> {
    if row.status() == Status::Verified {
        return Ok(match object::form_state(state, row).await? {
            object::FormState::Form(purposes) => {
                ctx.insert("purposes", &purposes);
                "portal/object.html"
            }
            object::FormState::NoAccount => {
                ctx.insert("no_account", &true);
                "portal/object_status.html"
            }
        });
    }
    ctx.insert("summary", &object::summary(state, locale, row));
    Ok("portal/object_status.html")
}

/// The ticked purposes of the form: checkboxes named `purpose_{id}`.
pub(super) fn ticked(fields: &HashMap<String, String>) -> Vec<String> {
    let mut ids: Vec<String> = fields
        .keys()
        .filter_map(|k| k.strip_prefix("purpose_"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// The form again with the reason, the ticks and the words as given.
#[allow(clippy::too_many_arguments)]
pub(super) async fn form_again(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    row: &RequestRow,
    ticked: &[String],
    reason: &str,
    err: WorkflowError,
) -> PageResult {
    let mut purposes = match object::form_state(state, row)
        .await
        .map_err(|e| fail(state, locale, e))?
    {
        object::FormState::Form(p) => p,
        object::FormState::NoAccount => return Err(fail(state, locale, WorkflowError::NoAccount)),
    };
    for p in &mut purposes {
        p.selected = ticked.contains(&p.id);
    }
    let csrf = csrf_token(session);
    let mut ctx = base_context(state, locale, &rest_of(req), Some(&csrf));
    ctx.insert("id", &row.id);
    ctx.insert("kind", &row.kind);
    ctx.insert("purposes", &purposes);
    ctx.insert("reason", reason);
    ctx.insert("error", &err.message(locale));
    if let WorkflowError::Invalid { field, .. } = &err {
        ctx.insert("error_field", field);
    }
    Ok(render(
        state,
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        "portal/object.html",
        &ctx,
    ))
}
