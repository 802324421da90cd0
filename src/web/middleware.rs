use std::time::Instant;

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, Method},
    middleware::Next,
    web, HttpResponse,
};
use governor::clock::{Clock, DefaultClock};

use crate::{domain::Locale, AppState};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let https = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.secure_cookies())
        .unwrap_or(false);
    let is_static = req.path().starts_with("/static/");
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::HeaderName::from_static("permissions-policy"),
        header::HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        // Pages can carry personal data: never keep them in shared caches.
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    if https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    Ok(res)
}

/// Metrics and one log line per request: the matched route pattern, never
/// the path or query (they can hold an address or a request id).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = res.status().as_u16();
    if let Some(state) = &state {
        if res
            .response()
            .extensions()
            .contains::<super::errors::StorageUnavailable>()
        {
            state.db.note_unavailable();
        }
    }
    if let Some(state) = state {
        state
            .metrics
            .http_requests
            .get_or_create(&crate::metrics::HttpLabels {
                route: route.clone(),
                method: method.clone(),
                status,
            })
            .inc();
    }
    tracing::debug!(%method, %route, status, ms = started.elapsed().as_millis() as u64, "http");
    Ok(res)
}

/// Per-client-address limit on every mutating call (CONTRACT.md).
pub async fn client_limit(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() == Method::POST {
        if let Some(state) = req.app_data::<web::Data<AppState>>().cloned() {
            if let Some(limiter) = &state.client_limiter {
                let ip = super::client_ip(req.request());
                if let Err(not_until) = limiter.check_key(&ip) {
                    let wait = not_until
                        .wait_time_from(DefaultClock::default().now())
                        .as_secs()
                        .max(1);
                    let err = crate::workflow::WorkflowError::RateLimited { retry_after: wait };
                    let locale = super::errors::locale_of(req.request());
                    let res: HttpResponse = if req.path().starts_with("/api/") {
                        super::errors::problem(&err, locale)
                    } else {
                        super::errors::page(&state, &err, locale)
                    };
                    return Ok(req.into_response(res));
                }
            }
        }
    }
    next.call(req).await
}

pub fn path_locale(path: &str) -> Option<Locale> {
    path.trim_start_matches('/')
        .split('/')
        .next()
        .and_then(Locale::parse)
}
