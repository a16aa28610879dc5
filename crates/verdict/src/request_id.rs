//! `X-Request-Id` on every response: the client's own id echoed, else a new
//! UUID; and the [`RequestId`] extractor for handlers that log or return it.
//!
//! Built on tower-http's `SetRequestIdLayer` and `PropagateRequestIdLayer`;
//! [`Contract`](crate::Contract) installs both around the whole router.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::Layer;
//! use verdict::request_id::{self, RequestId};
//!
//! let routes: Router = Router::new().route("/", get(|id: RequestId| async move { id.to_string() }));
//! let app = request_id::set_layer().layer(request_id::propagate_layer().layer(routes));
//! ```

use std::fmt;

use axum::extract::FromRequestParts;
use http::request::Parts;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::ApiError;

/// The header's name.
pub const HEADER: &str = "x-request-id";

/// Sets `X-Request-Id` on requests that lack one (a UUID v4).
pub fn set_layer() -> SetRequestIdLayer<MakeRequestUuid> {
    SetRequestIdLayer::x_request_id(MakeRequestUuid)
}

/// Copies the request's `X-Request-Id` onto its response.
pub fn propagate_layer() -> PropagateRequestIdLayer {
    PropagateRequestIdLayer::x_request_id()
}

/// The request's id, for a handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|s| RequestId(s.to_string()))
            .ok_or_else(|| ApiError::internal("no request id: install request_id::set_layer"))
    }
}
