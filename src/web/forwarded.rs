//! The client's address behind trusted reverse proxies
//! (`PORTAL_TRUSTED_PROXIES`).
//!
//! Each proxy appends the address it got the request from, so the list in
//! `X-Forwarded-For` (or RFC 7239 `Forwarded`) grows to the right. Whatever
//! the client sent comes first and can be made up; only the entries our own
//! proxies appended can be believed. Read from the right, the first address
//! that is not one of our proxies is the client.
//!
//! `X-Forwarded-For` wins over `Forwarded` when both are present: nginx,
//! Caddy and most load balancers append to the former and pass the latter
//! through untouched, as the client wrote it.

use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The client address for a request whose TCP peer is `peer`.
pub fn client_addr(peer: IpAddr, trusted: &[IpNet], headers: &HeaderMap) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key("x-forwarded-for") {
        list(headers, "x-forwarded-for")
            .map(|h| parse_node(h).map(|ip| ip.to_canonical()))
            .collect()
    } else {
        list(headers, "forwarded")
            .filter_map(forwarded_for)
            .map(|h| parse_node(h).map(|ip| ip.to_canonical()))
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // "unknown", an obfuscated name or garbage: nothing to the left
        // of it can be tied to a proxy of ours.
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The comma-separated elements of every instance of header `name`, in order.
fn list<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The `for=` parameter of one `Forwarded` element
/// (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("for")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &str) -> Vec<IpNet> {
        crate::config::parse_trusted_proxies(s).unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_addr(ip("198.51.100.1"), &nets("10.0.0.0/8"), &h),
            ip("198.51.100.1")
        );
        assert_eq!(client_addr(ip("10.0.0.1"), &[], &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets("10.0.0.0/8");
        // The client made up the first entry; our two proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("203.0.113.9"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("203.0.113.9"));
        // All hops trusted: the leftmost is as far as we can see.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("10.1.1.1"));
        // Garbage stops the walk at the last hop a proxy of ours named.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, nonsense, 10.0.0.7")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("10.0.0.7"));
        // No header: the proxy itself.
        assert_eq!(
            client_addr(ip("10.0.0.1"), &trusted, &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rfc_7239_forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let trusted = nets("10.0.0.0/8,::1");
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.7;by=10.0.0.1",
        )]);
        assert_eq!(
            client_addr(ip("::1"), &trusted, &h),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[("forwarded", "For=\"192.0.2.60:8080\"")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("192.0.2.60"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("10.0.0.1"));
        // Passed through from the client while the proxy wrote X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_addr(ip("10.0.0.1"), &trusted, &h), ip("203.0.113.9"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_addr(ip("::ffff:10.0.0.1"), &nets("10.0.0.0/8"), &h),
            ip("203.0.113.9")
        );
    }
}
