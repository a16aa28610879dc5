//! Body size: 413 Content Too Large, up front when `Content-Length` says so,
//! else as soon as a streamed body passes the limit.
//!
//! The limit is per route ([`BodyLimitLayer::route`]): JSON bodies default to
//! 1 MiB, while an NDJSON import may take more. The body is wrapped in
//! `http_body_util::Limited`, and [`Json`](crate::Json) turns its error into 413.
//!
//! ```
//! use axum::{routing::post, Router};
//! use http::Method;
//! use verdict::body_limit::BodyLimitLayer;
//!
//! let app: Router = Router::new()
//!     .route("/imports", post(|| async { "" }))
//!     .route_layer(BodyLimitLayer::new(1 << 20).route(Method::POST, "/imports", 64 << 20));
//! ```

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use http::Method;
use http_body_util::Limited;

use crate::guard::{Guard, GuardLayer};
use crate::route_table::RouteTable;
use crate::ApiError;

/// The default largest body: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// The body limit of the current request, in its extensions (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit(pub u64);

/// Layer answering 413 to bodies over the route's limit.
pub type BodyLimitLayer = GuardLayer<BodyLimitGuard>;

/// The check behind [`BodyLimitLayer`].
#[derive(Clone, Debug)]
pub struct BodyLimitGuard {
    table: Arc<RouteTable<u64>>,
}

impl BodyLimitLayer {
    /// Every route takes bodies up to `bytes`.
    pub fn new(bytes: u64) -> Self {
        GuardLayer::from_guard(BodyLimitGuard {
            table: Arc::new(RouteTable::new(bytes)),
        })
    }

    /// `method` on `path` (as routed) takes up to `bytes` instead.
    pub fn route(mut self, method: Method, path: &str, bytes: u64) -> Self {
        Arc::make_mut(&mut self.guard_mut().table).insert(method, path, bytes);
        self
    }
}

impl Guard for BodyLimitGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        // No body (most GETs): nothing to limit, nothing to wrap.
        if http_body::Body::is_end_stream(req.body()) {
            return Ok(());
        }
        let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
        let limit = *self.table.get(req.method(), path);
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::content_too_large(limit));
        }
        req.extensions_mut().insert(BodyLimit(limit));
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(Limited::new(body, limit as usize));
        Ok(())
    }
}
