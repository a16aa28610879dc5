//! The access log: one line per request, at info, through `tracing` (JSON
//! with `--log-json`): method, route template, status, duration, response
//! bytes, request id, token id and client address.
//!
//! Two pieces, because the contract's layers sit between them: the
//! library's `verdict::access_log::annotate`, a route layer inside the
//! contract, copies what only the inside knows (the token that was
//! authenticated, the client address after trusted proxies) into the
//! response's extensions; [`log`], outside everything, sees every response
//! as sent (refusals too) and writes the line. A request refused
//! before its route (a 401, a 429) has no token id in its line.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use verdict::access_log::Seen;

/// Outermost: writes one line per request once its response head is ready
/// (`route` is the operation's template, for few distinct values).
pub async fn log(route: &'static str, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let res = next.run(req).await;
    let seen = res.extensions().get::<Seen>();
    let client = seen.and_then(|s| s.client).or(peer);
    let token = seen.and_then(|s| s.token.as_deref()).unwrap_or("-");
    let request_id = res
        .headers()
        .get(verdict::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The body's length when it is known now (the header is often set only
    // later, by hyper); for a stream, or a compressed body, the field is left out.
    let bytes: Option<u64> = http_body::Body::size_hint(res.body()).exact();
    tracing::info!(
        target: "verdict::access",
        method = %method,
        route,
        status = res.status().as_u16(),
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        bytes,
        request_id,
        token,
        client = %OrDash(client),
        "request"
    );
    res
}

/// A field's value, or `-` when there is none: written straight into the
/// line, with no string of its own.
struct OrDash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}
