//! Customer pages. Every page works without JavaScript.

use actix_session::Session;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tera::Context;

use super::errors::PageError;
use crate::{
    crypto,
    domain::{Locale, RequestKind, Status},
    workflow::{self, delete, intake, question, verification, WorkflowError},
    AppState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(root))
        .route("/dev/mail", web::get().to(super::ops::dev_mail))
        .route("/dev/mail/{id}", web::get().to(super::ops::dev_mail_one))
        .route("/{lang}", web::get().to(lang_root))
        .route("/{lang}/", web::get().to(landing))
        .route("/{lang}/r/{id}", web::get().to(request_page))
        .route("/{lang}/r/{id}/code", web::get().to(code_page))
        .route("/{lang}/r/{id}/code", web::post().to(code_post))
        .route("/{lang}/r/{id}/resend", web::post().to(resend_post))
        .route("/{lang}/r/{id}/submit", web::post().to(submit_post))
        .route(
            "/{lang}/r/{id}/new-code",
            web::get().to(change_email::new_code_page),
        )
        .route(
            "/{lang}/r/{id}/new-code",
            web::post().to(change_email::new_code_post),
        )
        .route(
            "/{lang}/r/{id}/new-resend",
            web::post().to(change_email::new_resend_post),
        )
        .route(
            "/{lang}/r/{id}/choice",
            web::post().to(change_email::choice_post),
        )
        .route(
            "/{lang}/r/{id}/authenticator",
            web::get().to(authenticator::page),
        )
        .route(
            "/{lang}/r/{id}/authenticator",
            web::post().to(authenticator::confirm),
        )
        .route(
            "/{lang}/r/{id}/authenticator/remove",
            web::post().to(authenticator::remove),
        )
        .route(
            "/{lang}/change-email/lost",
            web::get().to(authenticator::lost_page),
        )
        .route(
            "/{lang}/change-email/lost",
            web::post().to(authenticator::lost_post),
        )
        .route("/{lang}/download/{id}", web::get().to(download::link_page))
        .route(
            "/{lang}/download/{id}/code",
            web::post().to(download::code_post),
        )
        .route("/{lang}/download/{id}/file", web::get().to(download::file))
        .route("/{lang}/keep/{token}", web::get().to(keep::page))
        .route("/{lang}/keep/{token}", web::post().to(keep::post))
        .route("/{lang}/privacy", web::get().to(objection::privacy_page))
        .route("/{lang}/help", web::get().to(objection::help_index))
        .route("/{lang}/help/{topic}", web::get().to(objection::help_page))
        .route("/{lang}/{kind}", web::get().to(start_page))
        .route("/{lang}/{kind}", web::post().to(start_post))
        .default_service(web::to(super::errors::not_found));
}

mod authenticator;
mod change_email;
mod download;
mod keep;
pub(crate) use download::stream as stream_archive;
mod objection;
pub mod pages;

type PageResult = Result<HttpResponse, PageError>;

fn fail(state: &web::Data<AppState>, locale: Locale, err: WorkflowError) -> PageError {
    PageError {
        err,
        locale,
        state: state.clone(),
    }
}

fn lang(state: &web::Data<AppState>, raw: &str) -> Result<Locale, PageError> {
    Locale::parse(raw)
        .filter(|l| l.as_str() == raw)
        .ok_or_else(|| fail(state, Locale::En, WorkflowError::NotFound))
}

/// Context every page needs: language, switcher links that keep the current
/// page, company name, CSRF token.
pub fn base_context(state: &AppState, locale: Locale, rest: &str, csrf: Option<&str>) -> Context {
    let mut ctx = Context::new();
    ctx.insert("lang", locale.as_str());
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("privacy_email", &state.settings.company.privacy_email);
    let switch: Vec<serde_json::Value> = Locale::ALL
        .iter()
        .map(|l| {
            serde_json::json!({
                "code": l.as_str(),
                "name": crate::i18n::t(*l, "lang.name"),
                "href": format!("/{}{}", l.as_str(), rest),
                "current": *l == locale,
            })
        })
        .collect();
    ctx.insert("languages", &switch);
    ctx.insert("csrf", csrf.unwrap_or(""));
    ctx.insert("demo", &(state.settings.mode == crate::config::Mode::Demo));
    ctx
}

/// The part of the URL after the language, query included, for the switcher.
fn rest_of(req: &HttpRequest) -> String {
    let path = req.path();
    let rest = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, r)| format!("/{r}"))
        .unwrap_or_else(|| "/".into());
    match req.query_string() {
        "" => rest,
        q => format!("{rest}?{q}"),
    }
}

fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>("csrf") {
        return t;
    }
    let t = crypto::random_token();
    let _ = session.insert("csrf", &t);
    t
}

fn check_csrf(
    state: &web::Data<AppState>,
    session: &Session,
    locale: Locale,
    given: &str,
) -> Result<(), PageError> {
    match session.get::<String>("csrf") {
        Ok(Some(expected)) if !given.is_empty() && crypto::ct_eq(&expected, given) => Ok(()),
        _ => Err(fail(state, locale, WorkflowError::Csrf)),
    }
}

fn verified_ids(session: &Session) -> Vec<String> {
    session
        .get::<Vec<String>>("verified")
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn render(
    state: &AppState,
    status: actix_web::http::StatusCode,
    template: &str,
    ctx: &Context,
) -> HttpResponse {
    match state.tera.render(template, ctx) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(error = ?e, template, "render failed");
            HttpResponse::InternalServerError().finish()
        }
    }
}

fn ok(state: &AppState, template: &str, ctx: &Context) -> HttpResponse {
    render(state, actix_web::http::StatusCode::OK, template, ctx)
}

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn root(req: HttpRequest) -> HttpResponse {
    let locale = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Locale::negotiate)
        .unwrap_or(Locale::En);
    HttpResponse::Found()
        .insert_header((header::LOCATION, format!("/{}/", locale.as_str())))
        .insert_header((header::VARY, "Accept-Language"))
        .finish()
}

async fn lang_root(state: web::Data<AppState>, path: web::Path<String>) -> PageResult {
    let locale = lang(&state, &path)?;
    Ok(see_other(format!("/{}/", locale.as_str())))
}

async fn landing(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> PageResult {
    let locale = lang(&state, &path)?;
    if let Some(page) = pages::cached(&state, &req) {
        return Ok(page);
    }
    let (template, ctx) = landing_view(&state, locale, &rest_of(&req));
    Ok(ok(&state, template, &ctx))
}

fn landing_view(state: &AppState, locale: Locale, rest: &str) -> (&'static str, Context) {
    let mut ctx = base_context(state, locale, rest, None);
    let kinds: Vec<serde_json::Value> = RequestKind::ALL
        .iter()
        .map(|k| serde_json::json!({"kind": k.as_str(), "slug": k.slug(), "available": k.available()}))
        .collect();
    ctx.insert("kinds", &kinds);
    ctx.insert(
        "complaint",
        &crate::workflow::notice::complaint_view(&state.settings.company, locale),
    );
    ("portal/landing.html", ctx)
}

#[derive(Deserialize)]
struct Prefill {
    email: Option<String>,
    /// Objection deep link: the purpose to tick after verification.
    purpose: Option<String>,
}

async fn start_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    query: web::Query<Prefill>,
) -> PageResult {
    let (raw_lang, slug) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let kind = RequestKind::from_slug(&slug)
        .ok_or_else(|| fail(&state, locale, WorkflowError::NotFound))?;
    let csrf = csrf_token(&session);
    let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    ctx.insert("kind", kind.as_str());
    ctx.insert("slug", kind.slug());
    ctx.insert("available", &kind.available());
    ctx.insert("email", query.email.as_deref().unwrap_or(""));
    objection::start_context(&state, locale, kind, query.purpose.as_deref(), &mut ctx);
    Ok(ok(&state, "portal/start.html", &ctx))
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    purpose: String,
}

async fn start_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<StartForm>,
) -> PageResult {
    let (raw_lang, slug) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let kind = RequestKind::from_slug(&slug)
        .ok_or_else(|| fail(&state, locale, WorkflowError::NotFound))?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    match intake::start(&state, kind, &form.email, locale, intake::Channel::Portal).await {
        Ok(started) => {
            if kind == RequestKind::Object && !form.purpose.is_empty() {
                workflow::object::preselect(&state, &started.id, &form.purpose)
                    .await
                    .map_err(|e| fail(&state, locale, e))?;
            }
            Ok(see_other(format!(
                "/{}/r/{}/code",
                locale.as_str(),
                started.id
            )))
        }
        Err(WorkflowError::Invalid { key, .. }) => {
            // Show the form again with the address as typed and the reason.
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("kind", kind.as_str());
            ctx.insert("slug", kind.slug());
            ctx.insert("available", &kind.available());
            ctx.insert("email", &form.email);
            objection::start_context(&state, locale, kind, Some(&form.purpose), &mut ctx);
            ctx.insert("error", &crate::i18n::t(locale, key));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/start.html",
                &ctx,
            ))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}

fn code_context(
    state: &AppState,
    req: &HttpRequest,
    locale: Locale,
    csrf: &str,
    row: &crate::store::requests::RequestRow,
) -> Context {
    let mut ctx = base_context(state, locale, &rest_of(req), Some(csrf));
    ctx.insert("id", &row.id);
    ctx.insert("kind", &row.kind);
    ctx.insert("minutes", &(workflow::limits::CODE_TTL_SECS / 60));
    ctx
}

async fn code_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let row = verification::get(&state, &id)
        .await
        .map_err(|e| fail(&state, locale, e))?;
    if row.status() != Status::AwaitingVerification {
        return Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)));
    }
    let csrf = csrf_token(&session);
    let ctx = code_context(&state, &req, locale, &csrf, &row);
    Ok(ok(&state, "portal/code.html", &ctx))
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn code_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CodeForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    match verification::check_code(&state, &id, &form.code).await {
        Ok(_) => {
            remember_verified(&session, &id);
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(e @ (WorkflowError::InvalidCode { .. } | WorkflowError::Invalid { .. })) => {
            let row = verification::get(&state, &id)
                .await
                .map_err(|e| fail(&state, locale, e))?;
            let csrf = csrf_token(&session);
            let mut ctx = code_context(&state, &req, locale, &csrf, &row);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/code.html",
                &ctx,
            ))
        }
        Err(WorkflowError::WrongState { .. }) => {
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn resend_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let outcome = verification::resend(&state, &id).await;
    let row = verification::get(&state, &id)
        .await
        .map_err(|e| fail(&state, locale, e))?;
    if row.status() != Status::AwaitingVerification {
        return Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)));
    }
    let csrf = csrf_token(&session);
    let mut ctx = code_context(&state, &req, locale, &csrf, &row);
    match outcome {
        Ok(()) => ctx.insert("notice", &crate::i18n::t(locale, "code.resent")),
        Err(e @ (WorkflowError::RateLimited { .. } | WorkflowError::ResendTooSoon { .. })) => {
            ctx.insert("error", &e.message(locale))
        }
        Err(e) => return Err(fail(&state, locale, e)),
    }
    Ok(ok(&state, "portal/code.html", &ctx))
}

/// Marks `id` as proven in this browser. A new session after the identity
/// check: nothing from before it carries the verified state (session
/// fixation); only the latest few requests, to keep the cookie small.
pub(super) fn remember_verified(session: &Session, id: &str) {
    let mut ids = verified_ids(session);
    session.renew();
    ids.retain(|x| x != id);
    ids.push(id.to_string());
    let keep = ids.len().saturating_sub(5);
    let _ = session.insert("verified", &ids[keep..]);
    let _ = session.insert("csrf", crypto::random_token());
}

/// The request after verification: the next step for its kind, or its status.
async fn request_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    let row = verification::get(&state, &id)
        .await
        .map_err(|e| fail(&state, locale, e))?;
    if row.status() == Status::AwaitingVerification {
        return Ok(see_other(format!("/{}/r/{}/code", locale.as_str(), id)));
    }
    if !verified_ids(&session).contains(&id) {
        return Err(fail(&state, locale, WorkflowError::NotVerified));
    }
    let csrf = csrf_token(&session);
    let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
    ctx.insert("id", &row.id);
    ctx.insert("reference", &workflow::reference(&row.id));
    ctx.insert("kind", &row.kind);
    ctx.insert("status", &row.status);
    if let Ok(d) = chrono::NaiveDate::parse_from_str(&row.due_date, "%Y-%m-%d") {
        ctx.insert("due_date", &crate::i18n::long_date(locale, d));
    }
    let template = match (row.kind(), row.status()) {
        (RequestKind::Question, Status::Verified) => "portal/question.html",
        (RequestKind::Delete, Status::Verified) => match delete::form_state(&state, &row)
            .await
            .map_err(|e| fail(&state, locale, e))?
        {
            delete::FormState::Form => "portal/delete.html",
            delete::FormState::NoAccount => {
                ctx.insert("no_account", &true);
                "portal/status.html"
            }
        },
        (RequestKind::Delete, Status::Escalated) => {
            ctx.insert("reasons", &delete::reasons_for_page(locale, &row));
            "portal/status.html"
        }
        (RequestKind::Export, _) => {
            download::page(&state, &mut ctx, &row, locale, &verified_ids(&session))
        }
        (RequestKind::ChangeEmail, _) => change_email::page(&state, &mut ctx, &row, locale)
            .await
            .map_err(|e| fail(&state, locale, e))?,
        (RequestKind::Object, _) => objection::page(&state, &mut ctx, &row, locale)
            .await
            .map_err(|e| fail(&state, locale, e))?,
        _ => "portal/status.html",
    };
    ctx.insert("outcome", &row.outcome);
    if template == "portal/status.html"
        && row.status() != Status::Cancelled
        && authenticator::offer(&state, &row).await
    {
        ctx.insert(
            "offer_authenticator",
            &format!("/{}/r/{}/authenticator", locale.as_str(), row.id),
        );
    }
    Ok(ok(&state, template, &ctx))
}

#[derive(Deserialize)]
struct SubmitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    postcode: String,
    #[serde(default)]
    house_number: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    confirm: Option<String>,
    /// delete without an account: clean the other systems only.
    #[serde(default)]
    other_systems_only: Option<String>,
    #[serde(default)]
    new_email: String,
    /// object: the customer's reasons
    #[serde(default)]
    reason: String,
    /// object: the ticked `purpose_{id}` checkboxes
    #[serde(flatten)]
    extra: std::collections::HashMap<String, String>,
}

async fn submit_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<SubmitForm>,
) -> PageResult {
    let (raw_lang, id) = path.into_inner();
    let locale = lang(&state, &raw_lang)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    if !verified_ids(&session).contains(&id) {
        return Err(fail(&state, locale, WorkflowError::NotVerified));
    }
    let row = verification::get(&state, &id)
        .await
        .map_err(|e| fail(&state, locale, e))?;
    let result = match row.kind() {
        RequestKind::Question => question::submit(&state, &id, &form.message)
            .await
            .map(|_| ()),
        RequestKind::Delete => {
            let input = delete::DeleteInput {
                postcode: &form.postcode,
                house_number: &form.house_number,
                confirm: form.confirm.is_some(),
                other_systems_only: form.other_systems_only.is_some(),
            };
            delete::submit(&state, &id, &input).await.map(|_| ())
        }
        RequestKind::Export => workflow::export::submit(state.clone().into_inner(), &id)
            .await
            .map(|_| ()),
        RequestKind::ChangeEmail => {
            workflow::change_email::submit_new_email(&state, &id, &form.new_email)
                .await
                .map(|_| ())
        }
        RequestKind::Object => {
            let input = workflow::object::ObjectInput {
                purposes: &objection::ticked(&form.extra),
                reason: Some(&form.reason),
            };
            workflow::object::submit(&state, &id, &input)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) | Err(WorkflowError::DetailsLocked) => {
            Ok(see_other(format!("/{}/r/{}", locale.as_str(), id)))
        }
        Err(e @ (WorkflowError::Invalid { .. } | WorkflowError::DetailsMismatch { .. }))
            if row.kind() == RequestKind::Delete =>
        {
            // The form again with the reason and what the customer typed
            // (a typo is fixed, not retyped; the consent stays ticked).
            // Only their own input comes back, never the stored details.
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("id", &row.id);
            ctx.insert("kind", &row.kind);
            ctx.insert("error", &e.message(locale));
            ctx.insert("postcode", &form.postcode);
            ctx.insert("house_number", &form.house_number);
            ctx.insert("confirmed", &form.confirm.is_some());
            if let WorkflowError::Invalid { field, .. } = &e {
                ctx.insert("error_field", field);
            }
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/delete.html",
                &ctx,
            ))
        }
        Err(e @ WorkflowError::Invalid { .. }) if row.kind() == RequestKind::Object => {
            let ticked = objection::ticked(&form.extra);
            objection::form_again(
                &state,
                &req,
                &session,
                locale,
                &row,
                &ticked,
                &form.reason,
                e,
            )
            .await
        }
        Err(e @ (WorkflowError::Invalid { .. } | WorkflowError::RateLimited { .. }))
            if row.kind() == RequestKind::ChangeEmail =>
        {
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("id", &row.id);
            ctx.insert("kind", &row.kind);
            ctx.insert("new_email", &form.new_email);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/change_email.html",
                &ctx,
            ))
        }
        Err(e @ WorkflowError::Invalid { .. }) => {
            let csrf = csrf_token(&session);
            let mut ctx = base_context(&state, locale, &rest_of(&req), Some(&csrf));
            ctx.insert("id", &row.id);
            ctx.insert("kind", &row.kind);
            ctx.insert("message", &form.message);
            ctx.insert("error", &e.message(locale));
            Ok(render(
                &state,
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "portal/question.html",
                &ctx,
            ))
        }
        Err(e) => Err(fail(&state, locale, e)),
    }
}
