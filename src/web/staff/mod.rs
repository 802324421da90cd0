//! Staff pages under `/staff/`: login with password + TOTP, the queue by
//! legal deadline, the case page with its actions, intake by staff, the
//! register and staff management (admin). Every page works without
//! JavaScript; every form carries the session's CSRF token.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::{
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse, ResponseError,
};
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use tera::Context;

mod admin;
mod auth;
mod case;
mod customers;
mod intake;
mod queue;

use admin::*;
use auth::*;
use case::*;
use intake::*;
use queue::*;

use super::csrf;
use crate::{
    domain::{Email, Locale, RequestKind, Status},
    store::{self, audit, cases, requests::RequestRow, staff},
    workflow::{self, cases as actions, staff_auth, WorkflowError},
    AppState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/staff",
        web::get().to(|| async { see_other("/staff/".into()) }),
    )
    .service(
        web::scope("/staff")
            .route("/", web::get().to(queue))
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login_post))
            .route("/logout", web::post().to(logout))
            .route("/enrol/{token}", web::get().to(enrol_page))
            .route("/enrol/{token}", web::post().to(enrol_post))
            .route("/cases/{id}", web::get().to(case_page))
            .route("/cases/{id}/task", web::post().to(task_action))
            .route("/cases/{id}/{action}", web::post().to(case_action))
            .route("/intake", web::get().to(intake_page))
            .route("/customers", web::get().to(customers::page))
            .route("/intake", web::post().to(intake_post))
            .route("/register", web::get().to(register_page))
            .route("/register-of-processing", web::get().to(admin::record_page))
            .route(
                "/register-of-processing.csv",
                web::get().to(admin::record_csv),
            )
            .route("/register.csv", web::get().to(register_csv))
            .route("/members", web::get().to(members_page))
            .route("/members", web::post().to(members_post))
            .route("/members/{id}/disable", web::post().to(member_disable))
            .route("/members/{id}/reset", web::post().to(member_reset))
            .default_service(web::to(super::errors::not_found)),
    );
}

// ---------- errors ----------

/// A staff page error: back to the login page, or the translated error page.
pub enum Fail {
    Login,
    Err(WorkflowError, Locale, web::Data<AppState>),
}

impl std::fmt::Debug for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Login => f.write_str("login required"),
            Fail::Err(e, ..) => e.fmt(f),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl ResponseError for Fail {
    fn status_code(&self) -> StatusCode {
        match self {
            Fail::Login => StatusCode::SEE_OTHER,
            Fail::Err(e, ..) => {
                StatusCode::from_u16(e.code().1).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
    fn error_response(&self) -> HttpResponse {
        match self {
            Fail::Login => see_other("/staff/login".into()),
            Fail::Err(e, locale, state) => super::errors::page(state, e, *locale),
        }
    }
}

type Page = Result<HttpResponse, Fail>;

fn see_other(location: String) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn render(state: &AppState, status: StatusCode, template: &str, ctx: &Context) -> HttpResponse {
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

// ---------- language, session, context ----------

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// The staff member's language: `?lang=` (remembered), else the browser's.
fn ui_locale(req: &HttpRequest, session: &Session) -> Locale {
    if let Ok(q) = web::Query::<LangQuery>::from_query(req.query_string()) {
        if let Some(l) = q.lang.as_deref().and_then(Locale::parse) {
            let _ = session.insert("staff_lang", l.as_str());
            return l;
        }
    }
    if let Some(l) = session
        .get::<String>("staff_lang")
        .ok()
        .flatten()
        .and_then(|s| Locale::parse(&s))
    {
        return l;
    }
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Locale::negotiate)
        .unwrap_or(Locale::En)
}

const SK_ID: &str = "staff_id";
const SK_ISSUED: &str = "staff_issued";
const SK_SEEN: &str = "staff_seen";
/// The member's session generation at login; see `staff::end_sessions`.
const SK_GEN: &str = "staff_gen";

/// The signed-in staff member, enforcing 8 h absolute and 30 min idle.
async fn current(state: &AppState, session: &Session) -> Result<staff::StaffRow, Fail> {
    let id = session
        .get::<String>(SK_ID)
        .ok()
        .flatten()
        .ok_or(Fail::Login)?;
    let issued = session.get::<i64>(SK_ISSUED).ok().flatten().unwrap_or(0);
    let seen = session.get::<i64>(SK_SEEN).ok().flatten().unwrap_or(0);
    let generation = session.get::<i64>(SK_GEN).ok().flatten();
    let now = store::now();
    if !staff_auth::session_alive(issued, seen, now) {
        end_session(session);
        return Err(Fail::Login);
    }
    let row = staff::by_id(&state.db, &id)
        .await
        .ok()
        .flatten()
        // Logout, a reset and disabling raise the generation: the cookie
        // is still well signed, but its session is over.
        .filter(|s| {
            s.disabled == 0
                && s.enrolled_at.is_some_and(|e| issued >= e)
                && generation == Some(s.session_gen)
        })
        .ok_or_else(|| {
            end_session(session);
            Fail::Login
        })?;
    let _ = session.insert(SK_SEEN, now);
    Ok(row)
}

fn end_session(session: &Session) {
    session.remove(SK_ID);
    session.remove(SK_ISSUED);
    session.remove(SK_SEEN);
    session.remove(SK_GEN);
}

fn require_admin(
    me: &staff::StaffRow,
    state: &web::Data<AppState>,
    locale: Locale,
) -> Result<(), Fail> {
    if me.role == "admin" {
        Ok(())
    } else {
        Err(Fail::Err(WorkflowError::Forbidden, locale, state.clone()))
    }
}

fn base(
    state: &AppState,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    me: Option<&staff::StaffRow>,
) -> Context {
    let mut ctx = Context::new();
    ctx.insert("lang", locale.as_str());
    ctx.insert("company", &state.settings.company.name);
    ctx.insert("csrf", &csrf::token(session));
    let path = req.path();
    let switch: Vec<serde_json::Value> = Locale::ALL
        .iter()
        .map(|l| {
            serde_json::json!({
                "code": l.as_str(),
                "name": crate::i18n::t(*l, "lang.name"),
                "href": format!("{path}?lang={}", l.as_str()),
                "current": *l == locale,
            })
        })
        .collect();
    ctx.insert("languages", &switch);
    if let Some(me) = me {
        ctx.insert("me_email", &me.email);
        ctx.insert("me_admin", &(me.role == "admin"));
    }
    ctx
}

fn check_csrf(
    state: &web::Data<AppState>,
    session: &Session,
    locale: Locale,
    given: &str,
) -> Result<(), Fail> {
    if csrf::valid(session, given) {
        Ok(())
    } else {
        Err(Fail::Err(WorkflowError::Csrf, locale, state.clone()))
    }
}

fn fail(state: &web::Data<AppState>, locale: Locale) -> impl Fn(WorkflowError) -> Fail + '_ {
    move |e| Fail::Err(e, locale, state.clone())
}

fn date_of(state: &AppState, t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&state.settings.company.country.timezone())
        .format("%Y-%m-%d")
        .to_string()
}

fn datetime_of(state: &AppState, t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&state.settings.company.country.timezone())
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn today(state: &AppState) -> NaiveDate {
    Utc::now()
        .with_timezone(&state.settings.company.country.timezone())
        .date_naive()
}

/// A translated label, or the raw value when there is no translation.
fn label(locale: Locale, prefix: &str, value: &str) -> String {
    let key = format!("{prefix}.{value}");
    if crate::i18n::has_key(locale, &key) {
        crate::i18n::t(locale, &key)
    } else {
        value.to_string()
    }
}
