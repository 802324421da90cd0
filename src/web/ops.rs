use actix_web::{http::header, web, HttpRequest, HttpResponse};
use include_dir::{include_dir, Dir};

use crate::{config::Mode, AppState};

static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/healthz", web::head().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/readyz", web::head().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/static/{file:.*}", web::get().to(static_file));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.db.ping().await {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unreachable")
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(n) = crate::store::outbox::backlog(&state.db).await {
        state.metrics.outbox_backlog.set(n);
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

async fn static_file(path: web::Path<String>) -> HttpResponse {
    match STATIC.get_file(path.as_str()) {
        Some(f) => {
            let ct = match path.rsplit('.').next() {
                Some("css") => "text/css; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("png") => "image/png",
                _ => "application/octet-stream",
            };
            HttpResponse::Ok()
                .content_type(ct)
                .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
                .body(f.contents())
        }
        None => HttpResponse::NotFound().finish(),
    }
}

fn demo_only(state: &AppState) -> bool {
    state.settings.mode == Mode::Demo
}

/// The dev mailbox: exists only in demo mode.
pub async fn dev_mail(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !demo_only(&state) {
        return super::errors::not_found(req, state).await;
    }
    let locale = super::errors::locale_of(&req);
    let mails = crate::store::outbox::dev_list(&state.db, 100)
        .await
        .unwrap_or_default();
    let mut ctx = super::portal::base_context(&state, locale, "/", None);
    ctx.insert("mails", &mails);
    match state.tera.render("dev/mail.html", &ctx) {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

pub async fn dev_mail_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<i64>,
) -> HttpResponse {
    if !demo_only(&state) {
        return super::errors::not_found(req, state).await;
    }
    let locale = super::errors::locale_of(&req);
    let Some(mail) = crate::store::outbox::dev_get(&state.db, *path)
        .await
        .ok()
        .flatten()
    else {
        return super::errors::not_found(req, state).await;
    };
    let mut ctx = super::portal::base_context(&state, locale, "/", None);
    ctx.insert("mail", &mail);
    match state.tera.render("dev/mail_one.html", &ctx) {
        Ok(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}
