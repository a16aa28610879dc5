//! Methods: 501 for a method the server does not recognize at all, 405 with an
//! exact `Allow` for one a path does not support, and `OPTIONS` answered with
//! 204 and `Allow` on every route.
//!
//! Recognized methods are RFC 9110's eight, `PATCH` and `QUERY`. axum already
//! knows which methods each route supports (also in nested routers) and puts
//! them in the `Allow` of its 405; this layer turns that 405 into a full error
//! body, adds `OPTIONS` (which it answers itself), and answers `OPTIONS` requests.
//! Under a preset without 501 (seed-004), unknown methods go to the router and
//! get its 405 with `Allow`.
//!
//! The layer must wrap the *whole* router, not go through `Router::layer`:
//! axum adds `Allow` outside the per-route layers, so a layer added with
//! `Router::layer` sees a 405 without it. [`Contract`](crate::Contract) does this.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower::Layer;
//! use verdict::method::MethodLayer;
//!
//! let routes: Router = Router::new().route("/items", get(|| async { "[]" }));
//! let app: Router = Router::new().fallback_service(MethodLayer::new().layer(routes));
//! // BREW /items -> 501; DELETE /items -> 405, Allow: GET, HEAD, OPTIONS; OPTIONS /items -> 204
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::headers::Allow;
use crate::preset::Preset;
use crate::ApiError;

/// Whether the server recognizes `method` (RFC 9110's eight, PATCH, QUERY).
pub fn is_recognized(method: &Method) -> bool {
    matches!(
        method.as_str(),
        "GET"
            | "HEAD"
            | "POST"
            | "PUT"
            | "DELETE"
            | "CONNECT"
            | "OPTIONS"
            | "TRACE"
            | "PATCH"
            | "QUERY"
    )
}

/// The 405 fallback [`Contract`](crate::Contract) gives every route, so that
/// no route layer (credentials, limits) runs before a 405. axum adds `Allow`.
pub(crate) async fn method_not_allowed() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

/// Layer for 501, 405 and OPTIONS; it must wrap the whole router.
#[derive(Clone, Copy, Debug, Default)]
pub struct MethodLayer;

impl MethodLayer {
    /// The layer.
    pub fn new() -> Self {
        MethodLayer
    }
}

impl<S> Layer<S> for MethodLayer {
    type Service = MethodService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MethodService { inner }
    }
}

/// The service of [`MethodLayer`].
#[derive(Clone, Debug)]
pub struct MethodService<S> {
    inner: S,
}

impl<S> Service<Request> for MethodService<S>
where
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = req.method().clone();
        if !is_recognized(&method) {
            let allows_501 =
                Preset::of(req.extensions()).is_none_or(|p| p.allows(StatusCode::NOT_IMPLEMENTED));
            if allows_501 {
                let res = ApiError::not_implemented(&method).into_response();
                return ResponseFuture {
                    routed: None,
                    answered: Some(res),
                    method,
                };
            }
        }
        ResponseFuture {
            routed: Some(self.inner.call(req)),
            answered: None,
            method,
        }
    }
}

pin_project! {
    /// The response future of [`MethodService`]: the router's, or a 501
    /// answered without it.
    pub struct ResponseFuture<F> {
        #[pin]
        routed: Option<F>,
        answered: Option<Response>,
        method: Method,
    }
}

impl<F, R> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.routed.as_pin_mut() {
            Some(routed) => {
                let Ok(res) = ready!(routed.poll(cx));
                Poll::Ready(Ok(complete_405(this.method, res.into_response())))
            }
            None => Poll::Ready(Ok(this.answered.take().expect("polled after completion"))),
        }
    }
}

/// The router's 405 with `OPTIONS` added to its `Allow` and a full error
/// body; an `OPTIONS` request's 405 becomes its 204. Other answers pass.
fn complete_405(method: &Method, res: Response) -> Response {
    if res.status() != StatusCode::METHOD_NOT_ALLOWED
        || res.extensions().get::<crate::format::Rendered>().is_some()
    {
        return res;
    }
    let allow = res
        .headers()
        .get(Allow::NAME)
        .and_then(Allow::parse)
        .unwrap_or_else(|| Allow::new([]))
        .with(Method::OPTIONS);
    if method == Method::OPTIONS {
        let mut ok = Response::new(Body::empty());
        *ok.status_mut() = StatusCode::NO_CONTENT;
        ok.headers_mut().insert(Allow::NAME, allow.header_value());
        return ok;
    }
    ApiError::method_not_allowed(method, allow).into_response()
}
