//! The client's address, as rate limits and logs should see it: the peer's
//! (axum's `ConnectInfo`), or, when the peer is a proxy you trust, the
//! address that proxy reports in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For`.
//!
//! Only trusted proxies are believed: anyone can send an `X-Forwarded-For`,
//! so from an untrusted peer it is ignored and the peer's address is the
//! client's. Of the addresses a trusted proxy reports, the client is the
//! last one (reading from the right) that is not itself a trusted proxy: the
//! ones before it were written by the client, and could be anything.
//!
//! Without `ConnectInfo` (a router served by `axum::serve(listener, app)`
//! rather than with `into_make_service_with_connect_info`, or by
//! [`crate::server::Server`], which provides it) there is no address: every
//! anonymous caller shares one rate-limit budget, and failed authentications
//! are not throttled.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::client_addr::{ClientAddr, TrustedProxies};
//! use verdict::{Contract, Preset};
//!
//! async fn whoami(ClientAddr(ip): ClientAddr) -> String {
//!     ip.to_string()
//! }
//!
//! let app = Contract::new(Preset::standard())
//!     // nginx on the same host, and the load balancers' network.
//!     .trusted_proxies(TrustedProxies::new(["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]))
//!     .apply(Router::new().route("/whoami", get(whoami)));
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, Request};
use ipnet::IpNet;
use tower_layer::Layer;
use tower_service::Service;

use crate::ApiError;

/// The networks whose connections may report the client's address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trusts connections from these networks (`127.0.0.1/32`, `10.0.0.0/8`).
    pub fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        TrustedProxies(networks.into_iter().collect())
    }

    /// Whether `ip` is one of them.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether none is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a connection from `peer` that carried `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(&peer) {
            return peer;
        }
        let reported = forwarded_for(headers);
        let mut client = peer;
        // From the right: each hop was added by the proxy after it; stop at the
        // first one that is not a trusted proxy.
        for ip in reported.iter().rev() {
            client = *ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// The addresses a request's `Forwarded` (preferred) or `X-Forwarded-For`
/// fields report, in order; unparsable or obfuscated entries are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value.trim().trim_matches('"')))
                    .flatten()
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| parse_node(s.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|ip| ip.parse().ok())
}

/// The client's address, in the request's extensions (put there by
/// [`ClientAddrLayer`], which every [`Contract`](crate::Contract) installs),
/// and an extractor for handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client of a request: as [`ClientAddrLayer`] found it, else the peer's.
    pub fn of(extensions: &http::Extensions) -> Option<ClientAddr> {
        extensions.get::<ClientAddr>().copied().or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| ClientAddr(c.0.ip()))
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        ClientAddr::of(&parts.extensions).ok_or_else(|| {
            ApiError::internal("no client address: serve the app with ConnectInfo<SocketAddr>")
        })
    }
}

/// Layer that finds each request's [`ClientAddr`]: read it with the
/// extractor or [`ClientAddr::of`] (the extensions hold it only when a
/// trusted proxy reported an address other than the peer's).
#[derive(Clone, Debug, Default)]
pub struct ClientAddrLayer {
    trusted: TrustedProxies,
}

impl ClientAddrLayer {
    /// Believes `Forwarded` / `X-Forwarded-For` from `trusted` proxies only.
    pub fn new(trusted: TrustedProxies) -> Self {
        ClientAddrLayer { trusted }
    }
}

impl<S> Layer<S> for ClientAddrLayer {
    type Service = ClientAddrService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddrService {
            inner,
            trusted: self.trusted.clone(),
        }
    }
}

/// The service of [`ClientAddrLayer`].
#[derive(Clone, Debug)]
pub struct ClientAddrService<S> {
    inner: S,
    trusted: TrustedProxies,
}

impl<S, B> Service<Request<B>> for ClientAddrService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(peer) = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
        {
            let client = self.trusted.client(peer, req.headers());
            // The peer's own address needs no entry: `ClientAddr::of` falls
            // back to it (an entry is a box and a map slot per request).
            if client != peer {
                req.extensions_mut().insert(ClientAddr(client));
            }
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_as_far_as_trust_goes() {
        let trusted = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            trusted.client(ip("203.0.113.9"), &spoofed),
            ip("203.0.113.9")
        );
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &chain), ip("198.51.100.7"));
        let forwarded = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"",
        )]);
        assert_eq!(
            trusted.client(ip("10.0.0.2"), &forwarded),
            ip("2001:db8::17")
        );
        let nothing = headers(&[("x-forwarded-for", "unknown, _hidden")]);
        assert_eq!(trusted.client(ip("10.0.0.2"), &nothing), ip("10.0.0.2"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.2"), &chain),
            ip("10.0.0.2")
        );
    }
}
