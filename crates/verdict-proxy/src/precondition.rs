//! Conditional requests for upstreams that ignore them (RFC 9110 §13): many
//! do (json-server answers 200 to a GET whose `If-Match` names another
//! version, and carries out a PUT whose `If-Match` fails). The gateway
//! evaluates the preconditions itself, with the library's
//! [`Preconditions`], against what the upstream says is current:
//!
//! - a GET or HEAD is forwarded with its conditions (an upstream that can
//!   answer 304 itself still does); if the upstream answers 2xx anyway, the
//!   gateway judges that answer's `ETag` / `Last-Modified`: 412 for a failed
//!   `If-Match` / `If-Unmodified-Since`, 304 for a current `If-None-Match`
//!   / `If-Modified-Since`;
//! - a write (any other method) with a condition first costs a GET of the
//!   same URI: its validators (or its 404/410: no current representation)
//!   decide; a failed condition is a 412 with the current `ETag`, and the
//!   write never reaches the upstream. A passing one is forwarded with its
//!   conditions, so an upstream that checks them still closes the window
//!   between the gateway's GET and the write, which the gateway alone cannot.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Method, Request, StatusCode};
use verdict::conditional::{PreconditionOutcome, Preconditions, Validators};

use crate::upstream::Upstreams;

/// Headers that make no sense on the GET that reads a write's current state.
const NOT_ON_THE_PROBE: [header::HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::EXPECT,
];

/// Whether `method` only reads.
pub fn is_read(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// For a conditional write: reads the target's current validators upstream
/// and answers the 412 if the condition fails (`Err` is the answer to send).
pub async fn check_write(
    upstreams: &Upstreams,
    pre: &Preconditions,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let mut probe = Request::builder().method(Method::GET).uri(uri.clone());
    for (name, value) in headers {
        if !NOT_ON_THE_PROBE.contains(name) {
            probe = probe.header(name, value);
        }
    }
    let probe = probe
        .body(Body::empty())
        .map_err(|e| verdict::ApiError::internal(e).into_response())?;
    let current = match upstreams.forward(probe).await {
        Ok((res, _)) if res.status().is_success() => Some(Validators::from_headers(res.headers())),
        Ok((res, _)) if matches!(res.status(), StatusCode::NOT_FOUND | StatusCode::GONE) => None,
        // The upstream refused even to read it (401, 403, 5xx...): let it
        // answer the write itself.
        Ok(_) => return Ok(()),
        Err(failure) => return Err(failure.into_error().into_response()),
    };
    pre.check_write(current.as_ref())
        .map_err(IntoResponse::into_response)
}

/// For a read the upstream answered 2xx: the 304 or 412 it should have been,
/// or `None` to send the upstream's answer.
pub fn judge_read(pre: &Preconditions, headers: &HeaderMap) -> Option<Response> {
    match pre.check_response(headers) {
        Ok(()) => None,
        Err(PreconditionOutcome::NotModified(res)) => Some(*res),
        Err(PreconditionOutcome::Failed(e)) => Some(e.into_response()),
    }
}
