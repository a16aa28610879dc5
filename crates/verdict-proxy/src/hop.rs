//! Proxy hygiene (RFC 9110 §7.6): hop-by-hop fields, and every field the
//! `Connection` header names, are the connection's, not the message's, so
//! they are stripped both ways; `Via` says a proxy was on the way, and
//! `Forwarded` (RFC 7239) tells the upstream who the client was.

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

/// The fields that are always hop-by-hop.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The `Via` this gateway adds.
pub const VIA: &str = "1.1 verdict";

/// Removes the hop-by-hop fields and those `Connection` names.
pub fn strip(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends `Via: 1.1 verdict`.
pub fn add_via(headers: &mut HeaderMap) {
    headers.append(header::VIA, HeaderValue::from_static(VIA));
}

/// Appends `Forwarded: for=...;proto=http;host=...` for the client.
pub fn add_forwarded(headers: &mut HeaderMap, client: Option<IpAddr>, host: Option<&str>) {
    let mut value = match client {
        Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        Some(IpAddr::V4(ip)) => format!("for={ip}"),
        None => "for=unknown".to_string(),
    };
    value.push_str(";proto=http");
    if let Some(host) = host.filter(|h| h.bytes().all(|b| b.is_ascii_graphic())) {
        value.push_str(&format!(";host=\"{host}\""));
    }
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.append(HeaderName::from_static("forwarded"), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_names_the_client() {
        let mut h = HeaderMap::new();
        add_forwarded(
            &mut h,
            Some("127.0.0.1".parse().unwrap()),
            Some("api.example"),
        );
        assert_eq!(
            h["forwarded"],
            "for=127.0.0.1;proto=http;host=\"api.example\""
        );
    }
}
