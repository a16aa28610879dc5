//! Request deadlines: a request still running past its deadline is answered
//! with 504 Gateway Timeout (the contract's "ran past its deadline inside the
//! stack"), and its handler's future is dropped. The normalizing layer gives
//! the bare 504 its error body.
//!
//! If at that moment the handler is waiting for request body bytes the client
//! has not sent ([`BodyProgress`]), the delay is the client's: the answer is
//! 408 Request Timeout instead, and the connection is closed after it.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use verdict::deadline::DeadlineLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(DeadlineLayer::new(Duration::from_secs(30)));
//! ```
//!
//! Written here rather than taken from tower-http's `TimeoutLayer`, which
//! arms a timer before it first polls the handler: registering in tokio's
//! timer wheel (and waking the driver) was about a tenth of a fast request's
//! CPU, measured with perf in `bench/`. This layer polls the handler first and
//! arms the timer only when the handler is not done at once. (tower's own
//! `Timeout` polls first too, but answers with an error that would need
//! another layer and a box to become a response.)

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::body_timeout::BodyProgress;
use tower_layer::Layer;
use tower_service::Service;

/// A layer answering 504 after the deadline.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    deadline: Duration,
}

impl DeadlineLayer {
    /// Answers 504 when a request runs past `deadline`.
    pub fn new(deadline: Duration) -> Self {
        DeadlineLayer { deadline }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            deadline: self.deadline,
        }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Deadline<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let body = req.extensions().get::<BodyProgress>().cloned();
        ResponseFuture {
            inner: self.inner.call(req),
            at: Instant::now() + self.deadline,
            timer: None,
            body,
        }
    }
}

pin_project! {
    /// The response future of [`Deadline`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        at: Instant,
        #[pin]
        timer: Option<Sleep>,
        body: Option<BodyProgress>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out);
        }
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep_until(*this.at)));
        }
        if let Some(timer) = this.timer.as_pin_mut() {
            ready!(timer.poll(cx));
        }
        let mut res = Response::new(B::default());
        if this
            .body
            .as_ref()
            .is_some_and(BodyProgress::is_waiting_on_client)
        {
            *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
            res.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        } else {
            *res.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        }
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_handler_past_its_deadline_is_answered_504_and_a_quick_one_is_not() {
        let app: Router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            )
            .route("/quick", get(|| async { "ok" }))
            .route_layer(DeadlineLayer::new(Duration::from_millis(50)));
        let slow = app
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(slow.status(), StatusCode::GATEWAY_TIMEOUT);
        let quick = app
            .oneshot(Request::get("/quick").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(quick.status(), StatusCode::OK);
    }
}
