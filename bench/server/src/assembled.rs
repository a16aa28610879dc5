//! The third side of section 1: what a careful user writes without Verdict,
//! from the ecosystem's crates, in the order they would write it (outermost
//! first): a request id (tower-http), panics caught into a 500 problem, a
//! 30 s timeout, a body limit, a per-address rate limit (tower_governor),
//! bearer authentication with RFC 9457 problems (`problem_details`), and
//! problem bodies for unknown paths and methods.
//!
//! It does less than the Verdict stack, which is the point of comparing:
//! no 406 by q-values, no 415, no ETag or 304, no 405-before-401 order (this
//! stack authenticates first, so a wrong method without a token is a 401),
//! `Retry-After` as tower_governor writes it (whole seconds, rounded down, so
//! `0` happens), and tower-http's timeout and body-limit refusals keep their
//! plain-text bodies.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use problem_details::ProblemDetails;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

/// The tokens: `bench` may read (the limit is out of reach, as on the
/// stacked side).
async fn bearer(req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some("bench") => next.run(req).await,
        Some(_) => (
            [(
                http::header::WWW_AUTHENTICATE,
                "Bearer error=\"invalid_token\"",
            )],
            ProblemDetails::from_status_code(StatusCode::UNAUTHORIZED)
                .with_detail("The token is not valid."),
        )
            .into_response(),
        None => (
            [(http::header::WWW_AUTHENTICATE, "Bearer")],
            ProblemDetails::from_status_code(StatusCode::UNAUTHORIZED)
                .with_detail("This request needs a bearer token."),
        )
            .into_response(),
    }
}

/// `routes` behind the assembled stack.
pub fn app(routes: Router) -> Router {
    let governor = GovernorConfigBuilder::default()
        .per_nanosecond(1)
        .burst_size(u32::MAX)
        .finish()
        .expect("a valid quota");
    routes
        .fallback(|| async {
            ProblemDetails::from_status_code(StatusCode::NOT_FOUND).with_detail("No such resource.")
        })
        .method_not_allowed_fallback(|| async {
            ProblemDetails::from_status_code(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::middleware::from_fn(bearer))
        .layer(GovernorLayer::new(governor))
        .layer(RequestBodyLimitLayer::new(1 << 20))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ProblemDetails::from_status_code(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}
