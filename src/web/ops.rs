use actix_web::{http::header, web, HttpRequest, HttpResponse};
use include_dir::{include_dir, Dir};

use secrecy::ExposeSecret;

use crate::{config::Mode, AppState};

static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/healthz", web::head().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/readyz", web::head().to(readyz))
        .route("/metrics", web::get().to(public_metrics))
        .route("/static/{file:.*}", web::get().to(static_file));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// 200 only when a write commits (see `Db::ready`); a load balancer takes
/// the instance out while the database or its disk is away, and back in
/// by itself once a write works again.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = state.db.ready().await;
    state.metrics.ready.set(i64::from(ready));
    if ready {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .insert_header((
                header::RETRY_AFTER,
                crate::workflow::UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
            ))
            .body("database unavailable")
    }
}

/// `/metrics` on the public listener: only with the bearer token of
/// `PORTAL_METRICS_TOKEN`; without one configured it does not exist here.
async fn public_metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some(expected) = &state.settings.metrics_token else {
        return super::errors::not_found(req, state).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !crate::crypto::ct_eq(given.trim(), expected.expose_secret()) {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .finish();
    }
    metrics(state).await
}

/// The routes of the separate metrics listener (`PORTAL_METRICS_BIND`):
/// nothing but `/metrics`, open to whoever can reach that address, unless a
/// token is configured.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/metrics",
        web::get().to(|state: web::Data<AppState>, req: HttpRequest| async move {
            if state.settings.metrics_token.is_some() {
                public_metrics(state, req).await
            } else {
                metrics(state).await
            }
        }),
    );
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Ok(n) = crate::store::outbox::backlog(&state.db).await {
        state.metrics.outbox_backlog.set(n);
    }
    // Scraped whether or not anything polls /readyz, for the "not ready" alert.
    state.metrics.ready.set(i64::from(state.db.ready().await));
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

/// The dev mailbox exists only in demo mode, and only for the machine it
/// runs on: it shows every code and link. A forwarding header means a
/// proxy on this machine passed the request on for someone else.
async fn dev_mailbox_refusal(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Option<HttpResponse> {
    if state.settings.mode != Mode::Demo {
        return Some(super::errors::not_found(req.clone(), state.clone()).await);
    }
    let loopback = req.peer_addr().is_some_and(|a| match a.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    });
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| req.headers().contains_key(*h));
    if !loopback || forwarded {
        let locale = super::errors::locale_of(req);
        return Some(super::errors::page(
            state,
            &crate::workflow::WorkflowError::Forbidden,
            locale,
        ));
    }
    None
}

pub async fn dev_mail(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(refusal) = dev_mailbox_refusal(&state, &req).await {
        return refusal;
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
    if let Some(refusal) = dev_mailbox_refusal(&state, &req).await {
        return refusal;
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
