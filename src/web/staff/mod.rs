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

mod customers;

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

// ---------- login, logout, enrolment ----------

async fn login_page(state: web::Data<AppState>, req: HttpRequest, session: Session) -> Page {
    let locale = ui_locale(&req, &session);
    if current(&state, &session).await.is_ok() {
        return Ok(see_other("/staff/".into()));
    }
    let ctx = base(&state, &req, &session, locale, None);
    Ok(render(&state, StatusCode::OK, "staff/login.html", &ctx))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn login_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<LoginForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    let form = form.into_inner();
    match staff_auth::login(
        &state,
        &form.email,
        SecretString::from(form.password),
        &form.code,
    )
    .await
    {
        Ok(member) => {
            let lang = session.get::<String>("staff_lang").ok().flatten();
            // A fresh session id at login (session fixation).
            session.renew();
            let now = store::now();
            let _ = session.insert(SK_ID, &member.id);
            let _ = session.insert(SK_ISSUED, now);
            let _ = session.insert(SK_SEEN, now);
            let _ = session.insert(SK_GEN, member.session_gen);
            let _ = session.insert("csrf", crate::crypto::random_token());
            if let Some(l) = lang {
                let _ = session.insert("staff_lang", l);
            }
            Ok(see_other("/staff/".into()))
        }
        Err(WorkflowError::Unauthorized) => {
            let mut ctx = base(&state, &req, &session, locale, None);
            ctx.insert("email", &form.email);
            ctx.insert("error", &crate::i18n::t(locale, "staff.login.failed"));
            Ok(render(
                &state,
                StatusCode::UNAUTHORIZED,
                "staff/login.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<CsrfOnly>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    // Only a live session may end the member's sessions: a stale cookie
    // (already logged out) is simply cleared.
    if let Ok(me) = current(&state, &session).await {
        staff_auth::logout(&state, &me.id)
            .await
            .map_err(fail(&state, locale))?;
    }
    let lang = session.get::<String>("staff_lang").ok().flatten();
    session.purge();
    if let Some(l) = lang {
        let _ = session.insert("staff_lang", l);
    }
    Ok(see_other("/staff/login".into()))
}

async fn enrol_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let token = path.into_inner();
    let mut ctx = base(&state, &req, &session, locale, None);
    match staff_auth::enrol_start(&state, &token).await {
        Ok(p) => {
            enrol_ctx(&mut ctx, &p, &token);
            Ok(render(&state, StatusCode::OK, "staff/enrol.html", &ctx))
        }
        Err(WorkflowError::Invalid { key, .. }) => {
            ctx.insert("error", &crate::i18n::t(locale, key));
            Ok(render(
                &state,
                StatusCode::GONE,
                "staff/enrol_invalid.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

fn enrol_ctx(ctx: &mut Context, p: &staff_auth::EnrolPage, token: &str) {
    ctx.insert("token", token);
    ctx.insert("staff_email", &p.email);
    ctx.insert("secret", &p.secret_b32);
    ctx.insert("otpauth_url", &p.otpauth_url);
    ctx.insert("qr", &p.qr_data_uri);
    ctx.insert("min_chars", &staff_auth::MIN_PASSWORD_CHARS);
}

#[derive(Deserialize)]
struct EnrolForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_again: String,
    #[serde(default)]
    code: String,
}

async fn enrol_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<EnrolForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    check_csrf(&state, &session, locale, &form.csrf)?;
    let token = path.into_inner();
    let form = form.into_inner();
    let result = staff_auth::enrol_finish(
        &state,
        &token,
        SecretString::from(form.password),
        SecretString::from(form.password_again),
        &form.code,
    )
    .await;
    let mut ctx = base(&state, &req, &session, locale, None);
    match result {
        Ok(codes) => {
            ctx.insert("recovery_codes", &codes);
            Ok(render(&state, StatusCode::OK, "staff/enrolled.html", &ctx))
        }
        Err(WorkflowError::Invalid { key, field }) if field != "token" => {
            let p = staff_auth::enrol_start(&state, &token)
                .await
                .map_err(fail(&state, locale))?;
            enrol_ctx(&mut ctx, &p, &token);
            ctx.insert("error", &crate::i18n::t(locale, key));
            ctx.insert("error_field", field);
            Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/enrol.html",
                &ctx,
            ))
        }
        Err(WorkflowError::Invalid { key, .. }) => {
            ctx.insert("error", &crate::i18n::t(locale, key));
            Ok(render(
                &state,
                StatusCode::GONE,
                "staff/enrol_invalid.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

// ---------- the queue ----------

#[derive(Deserialize, Default, Clone)]
struct QueueQuery {
    kind: Option<String>,
    status: Option<String>,
    assignee: Option<String>,
    overdue: Option<String>,
    /// `checklist`: cases with open checklist work, any status.
    work: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Query string for a filter link: the current filters with one changed.
fn href(q: &QueueQuery, key: &str, value: Option<&str>) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in [
        ("kind", nonempty(&q.kind)),
        ("status", nonempty(&q.status)),
        ("assignee", nonempty(&q.assignee)),
        ("overdue", nonempty(&q.overdue)),
        ("work", nonempty(&q.work)),
    ] {
        let v = if k == key { value } else { v };
        if let Some(v) = v {
            parts.push((k.to_string(), v.to_string()));
        }
    }
    if key == "after" {
        if let Some(v) = value {
            parts.push(("after".into(), v.to_string()));
        }
    }
    let qs: Vec<String> = parts
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if qs.is_empty() {
        "/staff/".into()
    } else {
        format!("/staff/?{}", qs.join("&"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn case_row(
    state: &AppState,
    locale: Locale,
    r: &RequestRow,
    names: &BTreeMap<String, String>,
    now: i64,
) -> serde_json::Value {
    let due = NaiveDate::parse_from_str(&r.due_date, "%Y-%m-%d").unwrap_or_else(|_| today(state));
    let days_left = crate::domain::deadline::days_left(due, today(state));
    serde_json::json!({
        "id": r.id,
        "reference": workflow::reference(&r.id),
        "kind": r.kind,
        "kind_label": label(locale, "staff.kinds", &r.kind),
        "status": r.status,
        "status_label": label(locale, "staff.statuses", &r.status),
        "received": date_of(state, r.received_at),
        "due_date": r.due_date,
        "days_left": days_left,
        "days_overdue": -days_left,
        "overdue": r.due_at < now && !r.status().is_final(),
        "extended": r.extension_months > 0,
        "assignee": r.assignee.as_ref().and_then(|a| names.get(a)).cloned().unwrap_or_default(),
    })
}

async fn staff_names(
    state: &AppState,
) -> Result<(BTreeMap<String, String>, Vec<staff::MemberRow>), WorkflowError> {
    let members = staff::list(&state.db).await?;
    let names = members
        .iter()
        .map(|m| (m.id.clone(), m.email.clone()))
        .collect();
    Ok((names, members))
}

async fn queue(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    query: web::Query<QueueQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let q = query.into_inner();
    let f = fail(&state, locale);
    let now = store::now();
    let mut ctx = base(&state, &req, &session, locale, Some(&me));

    let mut filter = cases::CaseFilter {
        limit: 51,
        ..Default::default()
    };
    if let Some(k) = nonempty(&q.kind) {
        filter.kind = RequestKind::parse(k);
    }
    if let Some(s) = nonempty(&q.status) {
        filter.status = Status::parse(s);
    }
    filter.assignee = match nonempty(&q.assignee) {
        None => cases::Assignee::Anyone,
        Some("none") => cases::Assignee::Unassigned,
        Some("me") => cases::Assignee::Staff(me.id.clone()),
        Some(other) => cases::Assignee::Staff(other.to_string()),
    };
    if nonempty(&q.overdue).is_some() {
        filter.overdue_at = Some(now);
    }
    filter.open_tasks = nonempty(&q.work) == Some("checklist");
    if let Some(c) = nonempty(&q.after) {
        if let Some((due, id)) = c.split_once('_') {
            if let Ok(due) = due.parse::<i64>() {
                filter.after = Some((due, id.to_string()));
            }
        }
    }
    // Look-up by request id, reference or the customer's exact address.
    if let Some(term) = nonempty(&q.q) {
        ctx.insert("q", term);
        if let Ok(u) = uuid::Uuid::parse_str(term) {
            let id = u.to_string();
            if store::requests::get(&state.db, &id)
                .await
                .map_err(|e| f(e.into()))?
                .is_some()
            {
                return Ok(see_other(format!("/staff/cases/{id}")));
            }
            ctx.insert("lookup_empty", &true);
        } else if term.contains('@') {
            match Email::parse(term) {
                Some(e) => filter.email_hash = Some(state.keys.lookup_hash(e.as_str())),
                None => {
                    ctx.insert("lookup_empty", &true);
                }
            }
        } else {
            let prefix: String = term
                .trim_start_matches(['R', 'r'])
                .trim_start_matches('-')
                .to_lowercase();
            let found = if prefix.len() == 8 && prefix.chars().all(|c| c.is_ascii_hexdigit()) {
                cases::by_reference(&state.db, &prefix)
                    .await
                    .map_err(|e| f(e.into()))?
            } else {
                vec![]
            };
            if found.len() == 1 {
                return Ok(see_other(format!("/staff/cases/{}", found[0])));
            }
            ctx.insert("lookup_empty", &true);
        }
        if filter.email_hash.is_none() {
            filter.limit = 0;
        }
    }

    let (names, members) = staff_names(&state).await.map_err(&f)?;
    let rows = if filter.limit > 0 {
        cases::queue(&state.db, &filter)
            .await
            .map_err(|e| f(e.into()))?
    } else {
        vec![]
    };
    let more = rows.len() > 50;
    let page: Vec<_> = rows.iter().take(50).collect();
    let list: Vec<_> = page
        .iter()
        .map(|r| case_row(&state, locale, r, &names, now))
        .collect();
    if filter.email_hash.is_some() && list.is_empty() {
        ctx.insert("lookup_empty", &true);
    }
    ctx.insert("cases", &list);
    if more {
        if let Some(last) = page.last() {
            ctx.insert(
                "next",
                &href(&q, "after", Some(&format!("{}_{}", last.due_at, last.id))),
            );
        }
    }
    if filter.after.is_some() {
        ctx.insert("first", &href(&q, "after", None));
    }

    // Counts beside each filter (open cases).
    let counts = cases::open_counts_cached(&state.db, &state.queue_counts, now)
        .await
        .map_err(|e| f(e.into()))?;
    let total: i64 = counts.iter().map(|c| c.n).sum();
    let count_where = |p: &dyn Fn(&cases::CountRow) -> bool| -> i64 {
        counts.iter().filter(|c| p(c)).map(|c| c.n).sum()
    };
    let cur_kind = nonempty(&q.kind).unwrap_or("");
    let cur_status = nonempty(&q.status).unwrap_or("");
    let cur_assignee = nonempty(&q.assignee).unwrap_or("");
    let kinds: Vec<_> = RequestKind::ALL
        .iter()
        .map(|k| {
            serde_json::json!({
                "label": label(locale, "staff.kinds", k.as_str()),
                "n": count_where(&|c| c.kind == k.as_str()),
                "href": href(&q, "kind", Some(k.as_str())),
                "current": cur_kind == k.as_str(),
            })
        })
        .collect();
    let statuses: Vec<_> = [Status::Escalated, Status::Processing, Status::Completed, Status::Rejected]
        .iter()
        .map(|s| {
            serde_json::json!({
                "label": label(locale, "staff.statuses", s.as_str()),
                "n": if s.is_final() { serde_json::Value::Null } else { count_where(&|c| c.status == s.as_str()).into() },
                "href": href(&q, "status", Some(s.as_str())),
                "current": cur_status == s.as_str(),
            })
        })
        .collect();
    let mut assignees = vec![
        serde_json::json!({
            "label": crate::i18n::t(locale, "staff.queue.mine"),
            "n": count_where(&|c| c.assignee.as_deref() == Some(me.id.as_str())),
            "href": href(&q, "assignee", Some("me")),
            "current": cur_assignee == "me",
        }),
        serde_json::json!({
            "label": crate::i18n::t(locale, "staff.queue.unassigned"),
            "n": count_where(&|c| c.assignee.is_none()),
            "href": href(&q, "assignee", Some("none")),
            "current": cur_assignee == "none",
        }),
    ];
    for m in members.iter().filter(|m| m.id != me.id && m.disabled == 0) {
        assignees.push(serde_json::json!({
            "label": m.email,
            "n": count_where(&|c| c.assignee.as_deref() == Some(m.id.as_str())),
            "href": href(&q, "assignee", Some(&m.id)),
            "current": cur_assignee == m.id,
        }));
    }
    // Checklist work (other systems) on cases the customer already saw
    // completed: counted, filtered, and the most urgent shown on the default
    // page, so nobody has to open old cases to find it.
    let (tasks_n, tasks_overdue) = cases::open_task_counts(&state.db, now)
        .await
        .map_err(|e| f(e.into()))?;
    ctx.insert("tasks_n", &tasks_n);
    ctx.insert("tasks_overdue", &tasks_overdue);
    ctx.insert("tasks_on", &filter.open_tasks);
    ctx.insert("tasks_href", &href(&q, "work", Some("checklist")));
    ctx.insert("tasks_all_href", &href(&q, "work", None));
    let unfiltered = nonempty(&q.kind).is_none()
        && nonempty(&q.status).is_none()
        && nonempty(&q.assignee).is_none()
        && nonempty(&q.overdue).is_none()
        && !filter.open_tasks
        && filter.after.is_none()
        && filter.email_hash.is_none();
    if unfiltered && tasks_n > 0 {
        let urgent = cases::queue(
            &state.db,
            &cases::CaseFilter {
                open_tasks: true,
                limit: 5,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| f(e.into()))?;
        let urgent: Vec<_> = urgent
            .iter()
            .map(|r| case_row(&state, locale, r, &names, now))
            .collect();
        ctx.insert("task_cases", &urgent);
    }
    ctx.insert("total", &total);
    ctx.insert("overdue_n", &counts.iter().map(|c| c.overdue).sum::<i64>());
    ctx.insert("overdue_href", &href(&q, "overdue", Some("1")));
    ctx.insert("overdue_on", &nonempty(&q.overdue).is_some());
    ctx.insert("kinds", &kinds);
    ctx.insert("statuses", &statuses);
    ctx.insert("assignees", &assignees);
    ctx.insert("clear_href", "/staff/");
    ctx.insert("kind_all_href", &href(&q, "kind", None));
    ctx.insert("status_all_href", &href(&q, "status", None));
    ctx.insert("assignee_all_href", &href(&q, "assignee", None));
    ctx.insert("overdue_all_href", &href(&q, "overdue", None));
    ctx.insert(
        "filtered",
        &(filter.kind.is_some()
            || filter.open_tasks
            || filter.status.is_some()
            || filter.overdue_at.is_some()
            || filter.assignee != cases::Assignee::Anyone),
    );
    Ok(render(&state, StatusCode::OK, "staff/queue.html", &ctx))
}

// ---------- the case page ----------

#[derive(Deserialize, Default)]
struct CaseQuery {
    template: Option<String>,
    done: Option<String>,
}

/// Built-in starting points, used when the company configures no
/// `reply_templates` of its own.
pub const REPLY_TEMPLATES: [&str; 4] = ["answer", "need_info", "done", "cannot_help"];

/// (id, title in the staff member's language, body in the customer's).
fn reply_templates(
    state: &AppState,
    staff: Locale,
    customer: Locale,
) -> Vec<(String, String, String)> {
    let configured = &state.settings.company.reply_templates;
    if !configured.is_empty() {
        return configured
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.title.get(staff).to_string(),
                    r.body.get(customer).to_string(),
                )
            })
            .collect();
    }
    REPLY_TEMPLATES
        .iter()
        .map(|t| {
            (
                t.to_string(),
                crate::i18n::t(staff, &format!("staff.reply_templates.{t}.label")),
                crate::i18n::t_args(
                    customer,
                    &format!("staff.reply_templates.{t}.body"),
                    &[("company", &state.settings.company.name)],
                ),
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn case_context(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: &Session,
    locale: Locale,
    me: &staff::StaffRow,
    row: &RequestRow,
) -> Result<Context, Fail> {
    let f = fail(state, locale);
    let now = store::now();
    let (names, members) = staff_names(state).await.map_err(&f)?;
    let mut ctx = base(state, req, session, locale, Some(me));
    ctx.insert("case", &case_row(state, locale, row, &names, now));
    ctx.insert("email", &row.email);
    ctx.insert("customer_lang", &crate::i18n::t(row.locale(), "lang.name"));
    ctx.insert("channel", &label(locale, "staff.channels", &row.channel));
    ctx.insert(
        "is_open",
        &!(row.status().is_final() || row.status() == Status::AwaitingVerification),
    );
    let data = row.data();
    if let Some(m) = data.get("message").and_then(|m| m.as_str()) {
        ctx.insert("message", m);
    }
    ctx.insert(
        "data_json",
        &serde_json::to_string_pretty(&data).unwrap_or_default(),
    );
    let reasons: Vec<String> = row
        .reasons()
        .iter()
        .map(|r| label(locale, "staff.reasons", r))
        .collect();
    ctx.insert("reasons", &reasons);

    let history = audit::for_request(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?;
    let notes = cases::notes(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?;
    let notes_by_id: BTreeMap<&str, &cases::NoteRow> =
        notes.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut verified_by = None;
    let events: Vec<_> = history
        .iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            if e.action == "verified" {
                verified_by = detail
                    .get("method")
                    .and_then(|m| m.as_str())
                    .map(str::to_string);
            }
            let note = detail
                .get("note_id")
                .and_then(|n| n.as_str())
                .and_then(|n| notes_by_id.get(n))
                .map(|n| n.body.clone());
            let facts: Vec<String> = detail
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| k.as_str() != "note_id")
                        .map(|(k, v)| match v {
                            serde_json::Value::String(s) => format!("{k}: {s}"),
                            other => format!("{k}: {other}"),
                        })
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "at": datetime_of(state, e.at),
                "actor": actor_name(locale, &e.actor, &names),
                "action": label(locale, "staff.events", &e.action),
                "from": e.from_status.as_deref().map(|s| label(locale, "staff.statuses", s)),
                "to": e.to_status.as_deref().map(|s| label(locale, "staff.statuses", s)),
                "note": note,
                "facts": facts.join(", "),
            })
        })
        .collect();
    ctx.insert("history", &events);
    // Checklists of the company's other systems (export: add their data;
    // erasure: clean them, Art. 19).
    let tasks: Vec<_> = store::tasks::for_request(&state.db, &row.id)
        .await
        .map_err(|e| f(e.into()))?
        .iter()
        .map(|t| {
            let items: Vec<store::tasks::ChecklistItem> =
                serde_json::from_str(&t.checklist).unwrap_or_default();
            serde_json::json!({
                "id": t.id,
                "kind": label(locale, "staff.tasks", &t.kind),
                "done": t.status != "open",
                "items": items.iter().map(|i| serde_json::json!({"id": i.id, "name": i.name.get(locale), "done": i.done})).collect::<Vec<_>>(),
            })
        })
        .collect();
    ctx.insert("tasks", &tasks);
    let verified = match (verified_by, row.verified_at) {
        (Some(m), _) => label(locale, "staff.verified_by", &m),
        (None, Some(_)) => label(locale, "staff.verified_by", "email_code"),
        (None, None) => crate::i18n::t(locale, "staff.verified_by.not_yet"),
    };
    ctx.insert("verified_by", &verified);
    ctx.insert("proofs", &proof_lines(state, locale, row));

    match actions::extension_allowed(state, row) {
        Ok(()) => ctx.insert("can_extend", &true),
        Err(key) => ctx.insert("extend_blocked", &crate::i18n::t(locale, key)),
    }
    ctx.insert(
        "can_execute",
        &(actions::can_execute(row.kind()) && row.status() == Status::Escalated),
    );
    let assignable: Vec<_> = members
        .iter()
        .filter(|m| m.disabled == 0 && m.enrolled_at.is_some())
        .map(|m| serde_json::json!({"id": m.id, "email": m.email, "current": row.assignee.as_deref() == Some(m.id.as_str())}))
        .collect();
    ctx.insert("members", &assignable);
    let templates: Vec<_> = reply_templates(state, locale, row.locale())
        .into_iter()
        .map(|(id, label, _)| serde_json::json!({"id": id, "label": label}))
        .collect();
    ctx.insert("templates", &templates);
    ctx.insert("template", "");
    ctx.insert("error_action", "");
    ctx.insert("failed_text", "");
    Ok(ctx)
}

/// An email collision's proofs as sentences: both addresses and the
/// knowledge check of the account the choice deletes.
fn proof_lines(state: &AppState, locale: Locale, row: &RequestRow) -> Vec<String> {
    use crate::i18n::t_args;
    workflow::change_email::proofs(row)
        .iter()
        .map(|p| {
            let at = p.at.map(|t| datetime_of(state, t)).unwrap_or_default();
            match p.side {
                "knowledge" if p.method == "matched" => t_args(
                    locale,
                    "staff.proofs.knowledge_matched",
                    &[
                        ("option", p.option.as_deref().unwrap_or("")),
                        ("account", &p.account),
                        ("tries", &p.tries.unwrap_or(1).to_string()),
                        ("max", &workflow::delete::KNOWLEDGE_ATTEMPTS.to_string()),
                        ("at", &at),
                    ],
                ),
                "knowledge" => crate::i18n::t(locale, "staff.proofs.knowledge_missing"),
                "new" if p.method == "email_code_pending" => {
                    crate::i18n::t(locale, "staff.proofs.pending")
                }
                "lost_mailbox" => t_args(
                    locale,
                    "staff.proofs.lost_mailbox",
                    &[
                        ("account", &p.account),
                        (
                            "knowledge",
                            &label(locale, "staff.proof_results", &p.method),
                        ),
                        (
                            "authenticator",
                            &label(
                                locale,
                                "staff.proof_results",
                                p.authenticator.as_deref().unwrap_or("none"),
                            ),
                        ),
                        ("at", &at),
                    ],
                ),
                "new" if p.account.is_empty() => {
                    t_args(locale, "staff.proofs.new_no_account", &[("at", &at)])
                }
                side => t_args(
                    locale,
                    &format!("staff.proofs.{side}"),
                    &[
                        ("account", &p.account),
                        ("method", &label(locale, "staff.verified_by", &p.method)),
                        ("at", &at),
                    ],
                ),
            }
        })
        .collect()
}

fn actor_name(locale: Locale, actor: &str, names: &BTreeMap<String, String>) -> String {
    match actor.strip_prefix("staff:") {
        Some(id) => names.get(id).cloned().unwrap_or_else(|| actor.to_string()),
        None => label(locale, "staff.actors", actor),
    }
}

async fn load_case(
    state: &web::Data<AppState>,
    locale: Locale,
    id: &str,
) -> Result<RequestRow, Fail> {
    workflow::verification::get(state, id)
        .await
        .map_err(|e| Fail::Err(e, locale, state.clone()))
}

async fn case_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    query: web::Query<CaseQuery>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let row = load_case(&state, locale, &path).await?;
    let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
    if let Some(t) = nonempty(&query.template) {
        // The template in the customer's language, editable before sending.
        if let Some((id, _, body)) = reply_templates(&state, locale, row.locale())
            .into_iter()
            .find(|(id, _, _)| id == t)
        {
            ctx.insert("reply_text", &body);
            ctx.insert("template", &id);
        }
    }
    if let Some(d) = nonempty(&query.done) {
        let key = format!("staff.done.{d}");
        if crate::i18n::has_key(locale, &key) {
            ctx.insert("notice", &crate::i18n::t(locale, &key));
        }
    }
    Ok(render(&state, StatusCode::OK, "staff/case.html", &ctx))
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    months: Option<i64>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

async fn case_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<ActionForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let (id, name) = path.into_inner();
    let form = form.into_inner();
    let actor = staff_auth::actor(&me.id);
    let action = match name.as_str() {
        "reject" => actions::Action::Reject {
            reason: form.text.clone(),
        },
        "ask" => actions::Action::Ask {
            message: form.text.clone(),
        },
        "extend" => actions::Action::Extend {
            months: form.months.unwrap_or(0),
            reason: form.text.clone(),
        },
        "reply" => actions::Action::Reply {
            message: form.text.clone(),
        },
        "assign" => actions::Action::Assign {
            assignee: form.assignee.clone(),
        },
        "note" => actions::Action::Note {
            text: form.text.clone(),
        },
        "execute" => actions::Action::Execute {
            override_reason: Some(form.text.clone()),
        },
        _ => return Err(Fail::Err(WorkflowError::NotFound, locale, state.clone())),
    };
    // A reply is previewed first, exactly as the customer will read it.
    if name == "reply" && form.step.as_deref() != Some("send") {
        let row = load_case(&state, locale, &id).await?;
        let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
        ctx.insert("reply_text", &form.text);
        if form.text.trim().is_empty() {
            ctx.insert("error", &crate::i18n::t(locale, "staff.errors.text_empty"));
            return Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/case.html",
                &ctx,
            ));
        }
        let mail = actions::render_reply(&state, &row, &form.text).map_err(fail(&state, locale))?;
        ctx.insert("preview_subject", &mail.subject);
        ctx.insert("preview_text", &mail.text);
        return Ok(render(&state, StatusCode::OK, "staff/preview.html", &ctx));
    }
    match actions::apply(&state, &id, &actor, &action).await {
        Ok(_) => Ok(see_other(format!("/staff/cases/{id}?done={name}"))),
        Err(
            e @ (WorkflowError::Invalid { .. }
            | WorkflowError::WrongState { .. }
            | WorkflowError::KindUnavailable
            | WorkflowError::StillBlocked { .. }),
        ) => {
            let row = load_case(&state, locale, &id).await?;
            let mut ctx = case_context(&state, &req, &session, locale, &me, &row).await?;
            let msg = match &e {
                WorkflowError::Invalid { key, .. } => crate::i18n::t(locale, key),
                WorkflowError::StillBlocked { reasons } => {
                    let labels: Vec<String> = reasons
                        .iter()
                        .map(|r| label(locale, "staff.reasons", r))
                        .collect();
                    crate::i18n::t_args(
                        locale,
                        "staff.errors.still_blocked",
                        &[("reasons", &labels.join(", "))],
                    )
                }
                WorkflowError::KindUnavailable => {
                    crate::i18n::t(locale, "staff.errors.cannot_execute")
                }
                _ => crate::i18n::t(locale, "staff.errors.wrong_state"),
            };
            ctx.insert("error", &msg);
            ctx.insert("error_action", &name);
            if name == "reply"
                || name == "reject"
                || name == "ask"
                || name == "note"
                || name == "extend"
            {
                ctx.insert("failed_text", &form.text);
            }
            let status =
                StatusCode::from_u16(e.code().1).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            Ok(render(&state, status, "staff/case.html", &ctx))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

// ---------- intake by staff ----------

async fn intake_page(state: web::Data<AppState>, req: HttpRequest, session: Session) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    intake_ctx(&state, &mut ctx, locale);
    ctx.insert("received", &today(&state).to_string());
    Ok(render(&state, StatusCode::OK, "staff/intake.html", &ctx))
}

fn intake_ctx(state: &AppState, ctx: &mut Context, locale: Locale) {
    let _ = state;
    let kinds: Vec<_> = RequestKind::ALL
        .iter()
        .filter(|k| k.available())
        .map(|k| serde_json::json!({"id": k.as_str(), "label": label(locale, "staff.kinds", k.as_str())}))
        .collect();
    ctx.insert("intake_kinds", &kinds);
    let langs: Vec<_> = Locale::ALL
        .iter()
        .map(|l| serde_json::json!({"id": l.as_str(), "label": crate::i18n::t(*l, "lang.name")}))
        .collect();
    ctx.insert("intake_langs", &langs);
    let channels: Vec<_> = ["phone", "letter", "email"]
        .iter()
        .map(|c| serde_json::json!({"id": c, "label": label(locale, "staff.channels", c)}))
        .collect();
    ctx.insert("intake_channels", &channels);
    ctx.insert("sel_kind", "");
    ctx.insert("sel_locale", "");
    ctx.insert("sel_channel", "");
}

#[derive(Deserialize)]
struct IntakeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    locale: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    received: String,
}

async fn intake_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<IntakeForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let result = workflow::staff_intake::start(
        &state,
        &workflow::staff_intake::Input {
            kind: &form.kind,
            email: &form.email,
            locale: &form.locale,
            channel: &form.channel,
            received: &form.received,
        },
        &staff_auth::actor(&me.id),
    )
    .await;
    match result {
        Ok(id) => Ok(see_other(format!("/staff/cases/{id}?done=intake"))),
        Err(
            e @ (WorkflowError::Invalid { .. }
            | WorkflowError::KindUnavailable
            | WorkflowError::RateLimited { .. }),
        ) => {
            let mut ctx = base(&state, &req, &session, locale, Some(&me));
            intake_ctx(&state, &mut ctx, locale);
            ctx.insert("error", &e.message(locale));
            ctx.insert("email", &form.email);
            ctx.insert("received", &form.received);
            ctx.insert("sel_kind", &form.kind);
            ctx.insert("sel_locale", &form.locale);
            ctx.insert("sel_channel", &form.channel);
            Ok(render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "staff/intake.html",
                &ctx,
            ))
        }
        Err(e) => Err(Fail::Err(e, locale, state.clone())),
    }
}

// ---------- register (admin) ----------

async fn register_page(state: web::Data<AppState>, req: HttpRequest, session: Session) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let reg = workflow::register::build(&state)
        .await
        .map_err(fail(&state, locale))?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    let rows: Vec<_> = reg
        .rows
        .iter()
        .rev()
        .take(200)
        .map(|r| {
            serde_json::json!({
                "reference": r.reference,
                "kind": label(locale, "staff.kinds", &r.kind),
                "channel": label(locale, "staff.channels", &r.channel),
                "received": r.received,
                "due": r.due,
                "extended": r.extension_months > 0,
                "closed": r.closed,
                "status": label(locale, "staff.statuses", &r.status),
                "outcome": r.outcome.as_deref().map(|o| label(locale, "staff.outcomes", o)).unwrap_or_default(),
                "timeliness": label(locale, "staff.timeliness", r.timeliness),
                "late": r.timeliness == "late" || r.timeliness == "overdue",
            })
        })
        .collect();
    ctx.insert("rows", &rows);
    ctx.insert("summary", &reg.summary);
    ctx.insert("shown", &rows.len());
    Ok(render(&state, StatusCode::OK, "staff/register.html", &ctx))
}

async fn register_csv(state: web::Data<AppState>, req: HttpRequest, session: Session) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let reg = workflow::register::build(&state)
        .await
        .map_err(fail(&state, locale))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"register-{}.csv\"", today(&state)),
        ))
        .body(reg.csv()))
}

// ---------- staff management (admin) ----------

async fn members_page(state: web::Data<AppState>, req: HttpRequest, session: Session) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, StatusCode::OK, "staff/members.html", &ctx))
}

async fn members_ctx(
    state: &web::Data<AppState>,
    ctx: &mut Context,
    locale: Locale,
) -> Result<(), Fail> {
    let members = staff::list(&state.db)
        .await
        .map_err(|e| Fail::Err(e.into(), locale, state.clone()))?;
    let list: Vec<_> = members
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id, "email": m.email,
                "role": label(locale, "staff.roles", &m.role),
                "enrolled": m.enrolled_at.is_some(),
                "disabled": m.disabled != 0,
            })
        })
        .collect();
    ctx.insert("members", &list);
    Ok(())
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

async fn members_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<MemberForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    require_admin(&me, &state, locale)?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let result = staff_auth::add(&state, &form.email, &form.role, &staff_auth::actor(&me.id)).await;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    let status = match result {
        Ok(link) => {
            ctx.insert("enrol_link", &link);
            StatusCode::OK
        }
        Err(e @ WorkflowError::Invalid { .. }) => {
            ctx.insert("error", &e.message(locale));
            ctx.insert("email", &form.email);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(e) => return Err(Fail::Err(e, locale, state.clone())),
    };
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, status, "staff/members.html", &ctx))
}

/// An admin's action on another member's account. Never on one's own:
/// disabling or resetting it would end the very session doing it, with no
/// way back in.
async fn admin_acting_on_other(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    session: &Session,
    member_id: &str,
    csrf: &str,
) -> Result<(Locale, staff::StaffRow), Fail> {
    let locale = ui_locale(req, session);
    let me = current(state, session).await?;
    require_admin(&me, state, locale)?;
    check_csrf(state, session, locale, csrf)?;
    if member_id == me.id {
        return Err(Fail::Err(WorkflowError::Forbidden, locale, state.clone()));
    }
    Ok((locale, me))
}

async fn member_disable(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Page {
    let (locale, me) = admin_acting_on_other(&state, &req, &session, &path, &form.csrf).await?;
    staff_auth::set_disabled(&state, &path, true, &staff_auth::actor(&me.id))
        .await
        .map_err(fail(&state, locale))?;
    Ok(see_other("/staff/members".into()))
}

async fn member_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Page {
    let (locale, me) = admin_acting_on_other(&state, &req, &session, &path, &form.csrf).await?;
    let member = staff::by_id(&state.db, &path)
        .await
        .map_err(|e| Fail::Err(e.into(), locale, state.clone()))?
        .ok_or_else(|| Fail::Err(WorkflowError::NotFound, locale, state.clone()))?;
    let link = staff_auth::reset_login(&state, &member.id, &staff_auth::actor(&me.id))
        .await
        .map_err(fail(&state, locale))?;
    let mut ctx = base(&state, &req, &session, locale, Some(&me));
    ctx.insert("enrol_link", &link);
    ctx.insert("reset_email", &member.email);
    members_ctx(&state, &mut ctx, locale).await?;
    Ok(render(&state, StatusCode::OK, "staff/members.html", &ctx))
}

#[derive(Deserialize)]
struct TaskForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    done: String,
}

/// Ticks one item of the case's other-systems checklist.
async fn task_action(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    path: web::Path<String>,
    form: web::Form<TaskForm>,
) -> Page {
    let locale = ui_locale(&req, &session);
    let me = current(&state, &session).await?;
    check_csrf(&state, &session, locale, &form.csrf)?;
    let id = path.into_inner();
    actions::tick_task(
        &state,
        &id,
        &staff_auth::actor(&me.id),
        &form.task,
        &form.item,
        form.done == "1",
    )
    .await
    .map_err(fail(&state, locale))?;
    Ok(see_other(format!("/staff/cases/{id}?done=task")))
}
