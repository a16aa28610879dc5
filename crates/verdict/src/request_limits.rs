//! 414 URI Too Long and 431 Request Header Fields Too Large, as full error
//! bodies, before anything else looks at the request.
//!
//! hyper has limits of its own (a 64 KiB URI, its buffer, 100 header fields
//! by default); these are no higher, so a client that passes a sane limit gets
//! the contract's answer from here. (What hyper refuses first,
//! `verdict::server` answers in the contract's format too.)
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::Layer;
//! use verdict::request_limits::RequestLimitsLayer;
//!
//! let routes: Router = Router::new().route("/", get(|| async { "ok" }));
//! let app: Router = Router::new().fallback_service(RequestLimitsLayer::new(8 * 1024, 32 * 1024).layer(routes));
//! ```

use axum::extract::Request;

use crate::guard::{Check, CheckLayer};
use crate::ApiError;

/// Layer refusing over-long URIs (414) and over-large header sections (431).
pub type RequestLimitsLayer = CheckLayer<RequestLimitsGuard>;

/// The check behind [`RequestLimitsLayer`].
#[derive(Clone, Copy, Debug)]
pub struct RequestLimitsGuard {
    max_uri: usize,
    max_headers: usize,
    max_fields: usize,
}

impl RequestLimitsLayer {
    /// URIs up to `max_uri` bytes, header sections (names and values) up to `max_headers`.
    pub fn new(max_uri: usize, max_headers: usize) -> Self {
        CheckLayer::from_check(RequestLimitsGuard {
            max_uri,
            max_headers,
            max_fields: DEFAULT_MAX_FIELDS,
        })
    }

    /// At most `n` header fields (default 100).
    pub fn max_fields(mut self, n: usize) -> Self {
        self.check_mut().max_fields = n;
        self
    }
}

/// Header fields a request may carry unless configured otherwise.
pub const DEFAULT_MAX_FIELDS: usize = 100;

impl Default for RequestLimitsLayer {
    /// 8 KiB URIs (RFC 9110 recommends supporting at least 8000 octets), 32 KiB
    /// of headers in at most 100 fields.
    fn default() -> Self {
        Self::new(8 * 1024, 32 * 1024)
    }
}

impl Check for RequestLimitsGuard {
    fn check(&self, req: &Request) -> Result<(), ApiError> {
        let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if uri_len > self.max_uri {
            return Err(ApiError::uri_too_long(self.max_uri));
        }
        let fields = req.headers().len();
        if fields > self.max_fields {
            return Err(ApiError::header_fields_too_large(format!(
                "The request has {fields} header fields; the limit is {}.",
                self.max_fields
            )));
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if header_bytes > self.max_headers {
            return Err(ApiError::header_fields_too_large(format!(
                "The request's headers take {header_bytes} bytes; the limit is {}.",
                self.max_headers
            )));
        }
        Ok(())
    }
}
