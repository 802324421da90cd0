//! Thin HTTP layer: parse input into domain types, call one workflow
//! function, render HTML or JSON.

pub mod api;
pub mod csrf;
pub mod errors;
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

/// Client address for per-client limits. The portal is expected behind a
/// reverse proxy only if that proxy rewrites the peer address (see docs).
pub fn client_ip(req: &actix_web::HttpRequest) -> std::net::IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}
