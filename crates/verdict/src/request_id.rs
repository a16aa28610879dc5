//! `X-Request-Id` on every request and response: the client's own id kept
//! (when it is a sane header value), else a new one; the same id on the
//! response, and in the [`RequestId`] extractor for handlers that log or
//! return it.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::Layer;
//! use verdict::request_id::{RequestId, SetRequestIdLayer};
//!
//! let routes: Router = Router::new().route("/", get(|id: RequestId| async move { id.to_string() }));
//! let app = SetRequestIdLayer.layer(routes);
//! ```
//!
//! Written here rather than taken from tower-http's request-id layers, which
//! need the `uuid` crate to make ids; this one makes them with the standard
//! library, and is one layer instead of two.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::ApiError;

/// The header's name.
pub const HEADER: &str = "x-request-id";

/// [`HEADER`] as a header name, made at compile time.
const HEADER_NAME: HeaderName = HeaderName::from_static(HEADER);

/// The longest client-given id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

/// Whether a client's id is kept: short visible ASCII.
fn acceptable(v: &HeaderValue) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.as_bytes().iter().all(|b| (0x21..0x7f).contains(b))
}

/// Layer that gives every request an `X-Request-Id` and its response the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct SetRequestIdLayer;

impl<S> Layer<S> for SetRequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId { inner }
    }
}

/// The service of [`SetRequestIdLayer`].
#[derive(Clone, Debug)]
pub struct SetRequestId<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestId<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let name = HEADER_NAME;
        let id = match req.headers().get(&name) {
            Some(v) if acceptable(v) => v.clone(),
            _ => {
                // One allocation, shared by the request's header and the
                // response's: `Bytes::from_owner` keeps the array, and a
                // clone counts a reference instead of copying.
                let v = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(
                    crate::ids::new_id_bytes(),
                ))
                .expect("ids are hex");
                req.headers_mut().insert(name, v.clone());
                v
            }
        };
        ResponseFuture {
            inner: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project! {
    /// The response future of [`SetRequestId`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            res.headers_mut().entry(HEADER_NAME).or_insert(id);
        }
        Poll::Ready(Ok(res))
    }
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
            .ok_or_else(|| ApiError::internal("no request id: install SetRequestIdLayer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_sane_id_is_kept_and_garbage_replaced() {
        assert!(acceptable(&HeaderValue::from_static("req-42")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"x".repeat(200)).unwrap()
        ));
    }
}
