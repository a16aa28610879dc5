//! Request bodies that stop arriving: 408 Request Timeout, a client's fault,
//! answered as soon as no byte has come for the body timeout, so the request
//! gives its in-flight slot back at once instead of holding it until the
//! deadline (and then being told 504, a server error, for the client's delay).
//!
//! [`BodyTimeoutLayer`] wraps each request body that is not already complete
//! and records its [`BodyProgress`] in the request's extensions. The
//! extractors that read bodies ([`Json`](crate::Json),
//! [`RawBody`](crate::RawBody)) answer 408 when the body timed out,
//! and the `deadline` layer answers 408 instead of 504
//! when the deadline passes while the body is still waiting on the client.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use tower::Layer;
//! use verdict::body_timeout::BodyTimeoutLayer;
//! use verdict::extract::RawBody;
//!
//! let routes: Router = Router::new().route("/upload", post(|RawBody(b): RawBody| async move { b.len().to_string() }));
//! let app: Router = Router::new().fallback_service(BodyTimeoutLayer::new(Duration::from_secs(10)).layer(routes));
//! ```
//!
//! Written here rather than taken from tower-http's `RequestBodyTimeoutLayer`,
//! which arms a timer before polling for every frame (a timer registration per
//! request even when the body is already buffered) and cannot say afterwards
//! whether the body was waiting on the client; this one arms its timer only
//! when the body is not ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

/// The default: 10 s without a byte of the body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request body stands, shared by its reader and the layers around it.
#[derive(Clone, Debug, Default)]
pub struct BodyProgress(Arc<AtomicU8>);

const WAITING: u8 = 1;
const COMPLETE: u8 = 2;
const TIMED_OUT: u8 = 4;

impl BodyProgress {
    fn set(&self, flag: u8) {
        self.0.fetch_or(flag, Ordering::AcqRel);
    }

    fn clear(&self, flag: u8) {
        self.0.fetch_and(!flag, Ordering::AcqRel);
    }

    fn has(&self, flag: u8) -> bool {
        self.0.load(Ordering::Acquire) & flag != 0
    }

    /// The whole body has arrived.
    pub fn is_complete(&self) -> bool {
        self.has(COMPLETE)
    }

    /// Its reader is waiting for bytes the client has not sent.
    pub fn is_waiting_on_client(&self) -> bool {
        self.has(WAITING) && !self.has(COMPLETE)
    }

    /// No byte came for the body timeout.
    pub fn timed_out(&self) -> bool {
        self.has(TIMED_OUT)
    }
}

/// The error a timed-out body yields to its reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body stopped arriving")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Layer giving every request body a progress timeout.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeoutLayer {
    idle: Duration,
}

impl BodyTimeoutLayer {
    /// A body that sends no byte for `idle` fails with [`BodyTimedOut`].
    pub fn new(idle: Duration) -> Self {
        BodyTimeoutLayer { idle }
    }
}

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyTimeout {
            inner,
            idle: self.idle,
        }
    }
}

/// The service of [`BodyTimeoutLayer`].
#[derive(Clone, Debug)]
pub struct BodyTimeout<S> {
    inner: S,
    idle: Duration,
}

impl<S: Service<Request>> Service<Request> for BodyTimeout<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // A request without a body (most GETs) costs nothing.
        if !req.body().is_end_stream() {
            let progress = BodyProgress::default();
            req.extensions_mut().insert(progress.clone());
            let body = std::mem::take(req.body_mut());
            *req.body_mut() = Body::new(TimedBody {
                inner: body,
                idle: self.idle,
                timer: None,
                progress,
            });
        }
        self.inner.call(req)
    }
}

pin_project! {
    struct TimedBody {
        #[pin]
        inner: Body,
        idle: Duration,
        #[pin]
        timer: Option<Sleep>,
        progress: BodyProgress,
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer.set(None);
                this.progress.clear(WAITING);
                if frame.is_none() || this.inner.is_end_stream() {
                    this.progress.set(COMPLETE);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                this.progress.set(WAITING);
                if this.timer.is_none() {
                    this.timer.set(Some(tokio::time::sleep(*this.idle)));
                }
                let timer = this.timer.as_pin_mut().expect("just set");
                ready!(timer.poll(cx));
                this.progress.set(TIMED_OUT);
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
