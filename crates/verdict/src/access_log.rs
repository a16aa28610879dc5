//! What an access line needs from inside the contract's stack, for a
//! logging layer that sits outside it (and so sees every response as sent,
//! refusals included): [`annotate`], a route layer, copies the token that
//! was authenticated and the client address (after trusted proxies) onto
//! the response as [`Seen`]; [`method_label`] keeps the method field of logs
//! and metrics to a bounded set.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::access_log::{annotate, Seen};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(axum::middleware::from_fn(annotate));
//! // An outer layer reads `res.extensions().get::<Seen>()` for its line.
//! ```

use std::net::IpAddr;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Authentication;
use crate::client_addr::ClientAddr;

/// What the inside of the stack knew about a request, on its response.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The authenticated principal's subject (a token id), if any.
    pub token: Option<String>,
    /// The client's address, after trusted proxies.
    pub client: Option<IpAddr>,
}

/// Route layer (inside the contract): carries the token id and the client
/// address out on the response. A request refused before its route (a 401,
/// a 429) has no [`Seen`].
pub async fn annotate(req: Request, next: Next) -> Response {
    let seen = Seen {
        token: req
            .extensions()
            .get::<Authentication>()
            .and_then(Authentication::principal)
            .map(|p| p.subject().to_string()),
        client: ClientAddr::of(req.extensions()).map(|c| c.0),
    };
    let mut res = next.run(req).await;
    res.extensions_mut().insert(seen);
    res
}

/// The method as a label: RFC 9110's methods, PATCH and QUERY by name, any
/// other as `other`, so made-up methods (answered 501) cannot grow a
/// metric's label set.
pub fn method_label(method: &http::Method) -> &'static str {
    const KNOWN: [&str; 10] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        let brew = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&brew), "other");
    }
}
