//! The normalizing layer: every response leaves the stack in the contract's shape.
//!
//! - An error the library built (marked in the response extensions) is re-rendered in the
//!   format the request negotiated, with the request id and `instance`.
//! - An error built elsewhere (axum's plain-text rejections, tower-http's empty
//!   413 or 504, a handler's bare `StatusCode`) becomes a full error body too,
//!   keeping the headers it had (`Allow`, `Retry-After`...).
//! - The preset is applied to every response, error or not: the status of
//!   preset-dependent situations, then the mapping to allowed codes; a header
//!   the final status needs is added (`Retry-After: 1`, a bearer challenge) or,
//!   if it cannot be known, the class's generic code is sent instead.
//! - Every error gets `Cache-Control: no-store`; a HEAD gets no body.
//!
//! It also puts the [`Preset`] and the [`Realm`](crate::auth::Realm) in the request's extensions
//! for inner layers (one entry, [`InEffect`]: read them with [`Preset::of`]
//! and [`Realm::of`](crate::auth::Realm::of)), and runs the request inside a `tracing` span named
//! `request` that carries the request id, method and path.
//!
//! It is where errors are logged, once each, whoever built them: a 500 at
//! `error` with its incident id and cause, 502-504 at `warn` with how long
//! the request ran, the rest at `debug`; each event names its request id,
//! method and path itself.
//!
//! The span is at `debug`, as tower-http's `TraceLayer` makes its own: a
//! span a subscriber keeps costs every request its fields formatted and its
//! enter and exit on each poll (about 3% of a record read's samples in
//! `verdict serve` at `info`), while the events that matter carry the
//! request's identity anyway. An application whose own logs inside handlers
//! should carry the request id enables it: `RUST_LOG=info,verdict::normalize=debug`.
//!
//! A status with no standard reason phrase (420) gets the catalog's on the
//! status line, so hyper does not send `420 <none>`.
//!
//! ```
//! use axum::{routing::get, Router};
//! use http::StatusCode;
//! use verdict::{normalize::NormalizeLayer, Preset};
//!
//! // A bare 409 from a handler leaves as a problem+json body.
//! let app: Router = Router::new()
//!     .route("/", get(|| async { StatusCode::CONFLICT }))
//!     .layer(NormalizeLayer::new(Preset::standard()));
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ApiError;
use crate::format::{self, ErrorFormat, RenderContext, Rendered};
use crate::headers::{Challenge, RetryAfter, DEFAULT_RETRY_AFTER};
use crate::preset::{InEffect, Preset};
use crate::status::{self, RequiredHeader};

#[derive(Clone, Debug)]
struct Config {
    /// The preset and realm: what this layer applies, and what inner
    /// layers read from each request's extensions.
    in_effect: InEffect,
    problem_base: String,
}

/// Layer that normalizes every response; apply it with `Router::layer`.
#[derive(Clone, Debug)]
pub struct NormalizeLayer {
    config: Arc<Config>,
}

impl NormalizeLayer {
    /// Normalizes to `preset`, with problem types under `/problems` and the realm `api`.
    pub fn new(preset: Preset) -> Self {
        NormalizeLayer {
            config: Arc::new(Config {
                in_effect: InEffect {
                    preset,
                    realm: Arc::from("api"),
                },
                problem_base: "/problems".to_string(),
            }),
        }
    }

    /// Where problem `type`s point (`{base}/{slug}`).
    pub fn problem_base(mut self, base: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).problem_base = base.into();
        self
    }

    /// The realm of bearer challenges added to bare 401s.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.config).in_effect.realm = Arc::from(realm.into());
        self
    }
}

impl<S> Layer<S> for NormalizeLayer {
    type Service = Normalize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Normalize {
            config: self.config.clone(),
            inner,
        }
    }
}

/// The service of [`NormalizeLayer`].
#[derive(Clone, Debug)]
pub struct Normalize<S> {
    config: Arc<Config>,
    inner: S,
}

/// What the response needs to know of its request. Kept as the request's
/// own values (shared bytes, not copies): most responses are not errors
/// and never read them.
struct RequestFacts {
    request_id: Option<HeaderValue>,
    method: Method,
    uri: http::Uri,
    format: ErrorFormat,
    head: bool,
    started: std::time::Instant,
}

impl RequestFacts {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().and_then(|v| v.to_str().ok())
    }
}

impl<S> Service<Request> for Normalize<S>
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

    fn call(&mut self, mut req: Request) -> Self::Future {
        let config = self.config.clone();
        let facts = RequestFacts {
            request_id: req.headers().get(crate::request_id::HEADER).cloned(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            format: ErrorFormat::negotiate(req.headers(), config.in_effect.preset.format()),
            head: req.method() == Method::HEAD,
            started: std::time::Instant::now(),
        };
        req.extensions_mut().insert(config.in_effect.clone());
        let span = tracing::debug_span!(
            "request",
            request_id = facts.request_id().unwrap_or("-"),
            method = %facts.method,
            path = facts.uri.path(),
        );
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            span,
            config,
            facts: Some(facts),
        }
    }
}

pin_project! {
    /// The response future of [`Normalize`]: the inner future and the
    /// normalizing both run in the request's span, so the error logged
    /// carries the request id.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        config: Arc<Config>,
        facts: Option<RequestFacts>,
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
        let _entered = this.span.enter();
        let Ok(res) = ready!(this.inner.poll(cx));
        let facts = this.facts.take().expect("polled after completion");
        Poll::Ready(Ok(normalize(this.config, &facts, res.into_response())))
    }
}

/// Marks a response that leaves the normalizing layer as it is: an answer
/// from elsewhere already in the contract's shape, such as a gateway's
/// upstream error in the preset's format (`verdict proxy` passes those
/// untouched, and everything with `--normalize off`). Put it in the
/// response's extensions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verbatim;

fn normalize(config: &Config, facts: &RequestFacts, mut res: Response) -> Response {
    if res.extensions_mut().remove::<Verbatim>().is_some() {
        return res;
    }
    let preset = &config.in_effect.preset;
    let status = res.status();
    let rendered = res.extensions_mut().remove::<Rendered>();
    if rendered.is_none() && !status.is_client_error() && !status.is_server_error() {
        let mapped = preset.map(status);
        if mapped != status {
            *res.status_mut() = ensure_headers(config, None, mapped, res.headers_mut());
        }
        give_reason_phrase(&mut res);
        return res;
    }
    let error = match rendered {
        Some(Rendered(e)) => e,
        None => Arc::new(foreign(status, facts.uri.path())),
    };
    error.log(
        facts.started.elapsed(),
        facts.request_id().unwrap_or("-"),
        &facts.method,
        facts.uri.path(),
    );
    let wanted = match error.situation() {
        Some(situation) => preset.status_for(situation),
        None => preset.map(status),
    };
    let final_status = ensure_headers(config, Some(&error), wanted, res.headers_mut());
    let ctx = RenderContext {
        request_id: facts.request_id(),
        instance: Some(facts.uri.path()),
        problem_base: &config.problem_base,
        head_only: facts.head,
    };
    let body = if facts.head {
        Body::empty()
    } else {
        Body::from(format::render(&error, final_status, facts.format, &ctx))
    };
    *res.status_mut() = final_status;
    *res.body_mut() = body;
    let h = res.headers_mut();
    h.remove(CONTENT_LENGTH);
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(facts.format.content_type()),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.extensions_mut().insert(Rendered(error));
    give_reason_phrase(&mut res);
    res
}

/// The catalog's reason phrase for a status `http` has none for (420), so
/// the status line says `420 Enhance Your Calm`, not `420 <none>`.
fn give_reason_phrase(res: &mut Response) {
    if res.status().canonical_reason().is_none() {
        if let Some(entry) = status::lookup(res.status()) {
            res.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(
                    entry.reason.as_bytes(),
                ));
        }
    }
}

/// Adds what `status` requires and can be defaulted; falls back to the class's
/// generic code when a required header cannot be known (an `Allow` nobody gave).
fn ensure_headers(
    config: &Config,
    error: Option<&ApiError>,
    status: StatusCode,
    headers: &mut http::HeaderMap,
) -> StatusCode {
    let Some(missing) = status::missing_header(status, headers) else {
        return status;
    };
    match missing {
        RequiredHeader::RetryAfter => {
            headers.insert(RetryAfter::NAME, DEFAULT_RETRY_AFTER.header_value());
            status
        }
        RequiredHeader::WwwAuthenticate => {
            headers.insert(
                Challenge::NAME,
                Challenge::bearer(&*config.in_effect.realm).header_value(),
            );
            status
        }
        RequiredHeader::Upgrade if error.and_then(ApiError::upgrade).is_some() => {
            let up = error.and_then(ApiError::upgrade).expect("checked");
            headers.insert(crate::headers::Upgrade::NAME, up.header_value());
            status
        }
        _ => {
            let generic = match status.as_u16() {
                100..=399 => StatusCode::OK,
                400..=499 => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            config.in_effect.preset.map(generic)
        }
    }
}

/// An error for a bare status built outside the library (its headers stay on
/// the response, which is rendered in place).
fn foreign(status: StatusCode, path: &str) -> ApiError {
    match status.as_u16() {
        404 => {
            let shown: String = path.chars().take(200).collect();
            ApiError::not_found(format!("No resource exists at {shown}."))
        }
        500 => ApiError::internal("a handler answered 500 without an ApiError"),
        // A bare 429 from elsewhere (a gateway's upstream) is a rate limit
        // all the same: the preset's status for it (seed-001's 420).
        429 => ApiError::foreign(status, "Too many requests; retry after the delay given.")
            .in_situation(crate::Situation::RateLimited),
        _ => {
            let detail = status::lookup(status)
                .map(|e| e.meaning)
                .or(status.canonical_reason())
                .unwrap_or("The request failed.");
            ApiError::foreign(status, detail)
        }
    }
}
