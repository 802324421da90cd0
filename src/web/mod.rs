//! Thin HTTP layer: parse input into domain types, call one workflow
//! function, render HTML or JSON.

pub mod api;
pub mod csrf;
pub mod errors;
pub mod forwarded;
pub mod middleware;
pub mod ops;
pub mod portal;
pub mod staff;
pub mod staff_api;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(ops::routes)
        .service(
            web::scope("/api/v1")
                .configure(api::routes)
                .configure(staff_api::routes),
        )
        .configure(staff::routes)
        .configure(portal::routes);
}

/// The client's address: the one function everything keyed on the client
/// uses (the per-client limit, the lost-mailbox counter). The TCP peer,
/// unless that is a trusted proxy (`PORTAL_TRUSTED_PROXIES`); then the
/// address the proxies name (see [`forwarded`]).
pub fn client_ip(req: &actix_web::HttpRequest) -> std::net::IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    match req.app_data::<web::Data<crate::AppState>>() {
        Some(state) if !state.settings.trusted_proxies.is_empty() => {
            forwarded::client_addr(peer, &state.settings.trusted_proxies, req.headers())
        }
        _ => peer,
    }
}
