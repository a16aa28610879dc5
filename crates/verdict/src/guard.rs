//! [`Guard`]: a check that runs before a request reaches its handler and may
//! refuse it with an [`ApiError`], the shape most of the contract's layers share.
//!
//! Each concern (406, 415, 413, 401, 429, 403, 503...) is its own guard in its
//! own module; this module only turns a guard into a tower [`Layer`].
//!
//! A [`Check`] is the simpler kind: it decides at once, from the request
//! alone, and leaves nothing to finish (414/431, 410). Its layer calls the
//! service inside it directly, with no boxed future and no copy of that
//! service per request, which a [`Guard`]'s layer needs because its check
//! may wait.
//!
//! ```
//! use axum::{extract::Request, routing::get, Router};
//! use verdict::{guard::{Guard, GuardLayer}, ApiError};
//!
//! #[derive(Clone)]
//! struct NoTeapots;
//!
//! impl Guard for NoTeapots {
//!     type State = ();
//!     async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
//!         if req.headers().contains_key("x-teapot") {
//!             return Err(ApiError::bad_request("No teapots here."));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(GuardLayer::from_guard(NoTeapots));
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::ApiError;

/// A check on a request before its handler runs.
pub trait Guard: Clone + Send + Sync + 'static {
    /// What the check hands to [`Guard::finish`] (rate-limit counters, a permit...).
    type State: Send + 'static;

    /// Lets the request through (possibly adding extensions) or refuses it.
    fn check(
        &self,
        req: &mut Request,
    ) -> impl Future<Output = Result<Self::State, ApiError>> + Send;

    /// Runs on the response of a request the check let through.
    fn finish(&self, state: Self::State, res: &mut Response) {
        let _ = (state, res);
    }

    /// Runs on the error of a later check that refused a request this one let
    /// through (a rate limit adds its `RateLimit-*` headers to the 403 after it).
    fn annotate(&self, state: Self::State, error: ApiError) -> ApiError {
        let _ = state;
        error
    }
}

/// Two guards run in order as one: `A`, then `B` if `A` let the request through.
///
/// The contract's checks after routing are one chain in one layer, because
/// each axum route layer costs a boxed-service clone and a boxed future per
/// request; a chain of ten costs one of each.
#[derive(Clone, Debug)]
pub struct Chain<A, B>(pub A, pub B);

impl<A: Guard, B: Guard> Guard for Chain<A, B> {
    type State = (A::State, B::State);

    async fn check(&self, req: &mut Request) -> Result<Self::State, ApiError> {
        let a = self.0.check(req).await?;
        match self.1.check(req).await {
            Ok(b) => Ok((a, b)),
            Err(e) => Err(self.0.annotate(a, e)),
        }
    }

    fn finish(&self, (a, b): Self::State, res: &mut Response) {
        self.1.finish(b, res);
        self.0.finish(a, res);
    }

    fn annotate(&self, (a, b): Self::State, error: ApiError) -> ApiError {
        self.0.annotate(a, self.1.annotate(b, error))
    }
}

/// An optional guard: `None` lets every request through.
impl<G: Guard> Guard for Option<G> {
    type State = Option<G::State>;

    async fn check(&self, req: &mut Request) -> Result<Self::State, ApiError> {
        match self {
            Some(g) => g.check(req).await.map(Some),
            None => Ok(None),
        }
    }

    fn finish(&self, state: Self::State, res: &mut Response) {
        if let (Some(g), Some(s)) = (self, state) {
            g.finish(s, res);
        }
    }

    fn annotate(&self, state: Self::State, error: ApiError) -> ApiError {
        match (self, state) {
            (Some(g), Some(s)) => g.annotate(s, error),
            _ => error,
        }
    }
}

/// A guard that lets the routes `routes` through unchecked (matched by their
/// route template, `MatchedPath`): probes must answer under load, rate limits
/// and maintenance, or an orchestrator restarts a healthy process.
#[derive(Clone, Debug)]
pub struct Except<G> {
    guard: G,
    routes: std::sync::Arc<[String]>,
}

impl<G> Except<G> {
    /// `guard`, except on `routes`.
    pub fn new(guard: G, routes: impl IntoIterator<Item = String>) -> Self {
        Except {
            guard,
            routes: routes.into_iter().collect(),
        }
    }

    fn exempt(&self, req: &Request) -> bool {
        !self.routes.is_empty()
            && req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .is_some_and(|m| self.routes.iter().any(|r| r == m.as_str()))
    }
}

impl<G: Guard> Guard for Except<G> {
    type State = Option<G::State>;

    async fn check(&self, req: &mut Request) -> Result<Self::State, ApiError> {
        if self.exempt(req) {
            return Ok(None);
        }
        self.guard.check(req).await.map(Some)
    }

    fn finish(&self, state: Self::State, res: &mut Response) {
        if let Some(s) = state {
            self.guard.finish(s, res);
        }
    }

    fn annotate(&self, state: Self::State, error: ApiError) -> ApiError {
        match state {
            Some(s) => self.guard.annotate(s, error),
            None => error,
        }
    }
}

/// Takes the inner service that `poll_ready` made ready, leaving a clone in
/// its place (tower's rule: the clone is not ready, the polled instance is).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// The [`Layer`] of a [`Guard`].
#[derive(Clone, Debug)]
pub struct GuardLayer<G> {
    guard: G,
}

impl<G> GuardLayer<G> {
    /// Wraps a guard.
    pub fn from_guard(guard: G) -> Self {
        GuardLayer { guard }
    }

    pub(crate) fn guard_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// The guard, to compose it into a [`Chain`].
    pub fn into_guard(self) -> G {
        self.guard
    }
}

impl<G: Clone, S> Layer<S> for GuardLayer<G> {
    type Service = Guarded<G, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guarded {
            guard: Arc::new(self.guard.clone()),
            inner,
        }
    }
}

/// The [`Service`] of a [`GuardLayer`].
///
/// The guard is shared: each request takes it into its future, and a chain
/// of guards holds tables and lists, so an `Arc` clone (one count) replaces
/// a deep copy per request.
#[derive(Clone, Debug)]
pub struct Guarded<G, S> {
    guard: Arc<G>,
    inner: S,
}

impl<G, S> Service<Request> for Guarded<G, S>
where
    G: Guard,
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let guard = self.guard.clone();
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            match guard.check(&mut req).await {
                Ok(state) => {
                    let Ok(res) = inner.call(req).await;
                    let mut res = res.into_response();
                    guard.finish(state, &mut res);
                    Ok(res)
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

/// A check that decides at once from the request alone and has nothing to
/// finish on the response: [`CheckLayer`] runs it with no future of its own.
pub trait Check: Clone + Send + Sync + 'static {
    /// Lets the request through or refuses it.
    fn check(&self, req: &Request) -> Result<(), ApiError>;
}

/// The [`Layer`] of a [`Check`].
#[derive(Clone, Debug)]
pub struct CheckLayer<C> {
    check: C,
}

impl<C> CheckLayer<C> {
    /// Wraps a check.
    pub fn from_check(check: C) -> Self {
        CheckLayer { check }
    }

    pub(crate) fn check_mut(&mut self) -> &mut C {
        &mut self.check
    }

    /// The check.
    pub fn check(&self) -> &C {
        &self.check
    }
}

impl<C: Clone, S> Layer<S> for CheckLayer<C> {
    type Service = Checked<C, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Checked {
            check: self.check.clone(),
            inner,
        }
    }
}

/// The [`Service`] of a [`CheckLayer`].
#[derive(Clone, Debug)]
pub struct Checked<C, S> {
    check: C,
    inner: S,
}

impl<C, S> Service<Request> for Checked<C, S>
where
    C: Check,
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CheckedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match self.check.check(&req) {
            Ok(()) => CheckedFuture {
                inner: Some(self.inner.call(req)),
                refusal: None,
            },
            Err(e) => CheckedFuture {
                inner: None,
                refusal: Some(e.into_response()),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Checked`]: the inner service's, or the refusal.
    pub struct CheckedFuture<F> {
        #[pin]
        inner: Option<F>,
        refusal: Option<Response>,
    }
}

impl<F> Future for CheckedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => Poll::Ready(Ok(this.refusal.take().expect("polled after completion"))),
        }
    }
}
