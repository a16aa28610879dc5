//! Conditional requests (RFC 9110 section 13): `ETag`, `Last-Modified`,
//! `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`.
//!
//! Two pieces:
//! - [`Preconditions`], an extractor a handler evaluates against the current
//!   [`Validators`] of its resource: a write whose `If-Match` fails gets a 412
//!   with the current `ETag`; a GET whose `If-None-Match` matches gets a 304.
//! - [`ETagLayer`], for GET and HEAD responses: gives a strong `ETag` (a hash of
//!   the body) to any 200 that lacks one, and answers 304 when the client's
//!   copy is current, keeping `ETag`, `Cache-Control`, `Vary` and the other
//!   headers RFC 9110 section 15.4.5 says a 304 carries.
//!
//! Under a preset that does not allow 304 (seed-003), conditional GETs get the
//! full 200; a failed `If-Match` is still refused (mapped to the preset's code).
//!
//! ```
//! use axum::{routing::put, Router};
//! use verdict::conditional::{EntityTag, Preconditions, Validators};
//! use verdict::ApiError;
//!
//! async fn replace(pre: Preconditions) -> Result<&'static str, ApiError> {
//!     let current = Validators::new(Some(EntityTag::strong("v7")), None);
//!     pre.check_write(Some(&current))?; // 412 with `ETag: "v7"` if If-Match names another version
//!     Ok("replaced")
//! }
//!
//! let app: Router = Router::new().route("/doc", put(replace));
//! ```

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderName};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

pub use crate::headers::EntityTag;
use crate::preset::Preset;
use crate::ApiError;

/// `*` or a list of entity tags, as in `If-Match` and `If-None-Match`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagCondition {
    /// `*`: any current representation.
    Any,
    /// The listed tags.
    Tags(Vec<EntityTag>),
}

impl TagCondition {
    fn from_headers(headers: &HeaderMap, name: HeaderName) -> Result<Option<Self>, ApiError> {
        let mut tags = Vec::new();
        let mut any = false;
        let mut present = false;
        for value in headers.get_all(&name) {
            present = true;
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid_header(name.as_str(), "it is not ASCII text"))?;
            for item in split_tags(text) {
                if item == "*" {
                    any = true;
                } else {
                    tags.push(EntityTag::parse(item).ok_or_else(|| {
                        ApiError::invalid_header(
                            name.as_str(),
                            "expected `*` or a list of entity tags such as `\"v1\"` or `W/\"v1\"`",
                        )
                    })?);
                }
            }
        }
        Ok(match (present, any) {
            (false, _) => None,
            (true, true) => Some(TagCondition::Any),
            (true, false) => Some(TagCondition::Tags(tags)),
        })
    }

    fn matches(&self, current: Option<&EntityTag>, strong: bool) -> bool {
        match (self, current) {
            (TagCondition::Any, current) => current.is_some(),
            (TagCondition::Tags(_), None) => false,
            (TagCondition::Tags(tags), Some(cur)) => tags.iter().any(|t| {
                if strong {
                    t.strong_eq(cur)
                } else {
                    t.weak_eq(cur)
                }
            }),
        }
    }
}

/// Splits a tag list on commas outside quotes.
pub(crate) fn split_tags(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|t| !t.is_empty());
    out
}

/// The validators of a resource's current representation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    /// The current entity tag.
    pub etag: Option<EntityTag>,
    /// When it last changed (second precision on the wire).
    pub last_modified: Option<SystemTime>,
}

impl Validators {
    /// Validators of a current representation.
    pub fn new(etag: Option<EntityTag>, last_modified: Option<SystemTime>) -> Self {
        Validators {
            etag,
            last_modified,
        }
    }

    /// Adds `ETag` and `Last-Modified` to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(tag) = &self.etag {
            headers.insert(header::ETAG, tag.header_value());
        }
        if let Some(t) = self.last_modified {
            headers.insert(header::LAST_MODIFIED, http_date(t));
        }
    }

    /// The validators a response carries in `ETag` and `Last-Modified`
    /// (unparsable values are left out).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Validators {
            etag: headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(EntityTag::parse),
            last_modified: headers
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok()),
        }
    }
}

fn http_date(t: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("HTTP dates are ASCII")
}

/// Truncates to whole seconds, as HTTP dates are.
fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The request's preconditions; extract it in a handler and [`check`](Self::check) it.
///
/// A malformed `If-Match` or `If-None-Match` is a 400. A malformed date in
/// `If-Modified-Since` or `If-Unmodified-Since` is ignored, as RFC 9110
/// sections 13.1.3 and 13.1.4 require.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preconditions {
    method: Method,
    if_match: Option<TagCondition>,
    if_none_match: Option<TagCondition>,
    if_modified_since: Option<SystemTime>,
    if_unmodified_since: Option<SystemTime>,
    not_modified_allowed: bool,
}

/// What a failed precondition answers: 304 (reads) or 412 (writes).
#[derive(Debug)]
pub enum PreconditionOutcome {
    /// 304: the client's copy is current (boxed: a response is large).
    NotModified(Box<Response>),
    /// 412: the condition does not hold.
    Failed(ApiError),
}

impl IntoResponse for PreconditionOutcome {
    fn into_response(self) -> Response {
        match self {
            PreconditionOutcome::NotModified(r) => *r,
            PreconditionOutcome::Failed(e) => e.into_response(),
        }
    }
}

impl Preconditions {
    /// Reads the conditional headers of a request.
    pub fn from_parts(parts: &Parts) -> Result<Self, ApiError> {
        let date = |name: HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| httpdate::parse_http_date(s).ok())
        };
        let preset = Preset::of(&parts.extensions);
        Ok(Preconditions {
            method: parts.method.clone(),
            if_match: TagCondition::from_headers(&parts.headers, header::IF_MATCH)?,
            if_none_match: TagCondition::from_headers(&parts.headers, header::IF_NONE_MATCH)?,
            if_modified_since: date(header::IF_MODIFIED_SINCE),
            if_unmodified_since: date(header::IF_UNMODIFIED_SINCE),
            not_modified_allowed: preset.is_none_or(|p| p.allows(StatusCode::NOT_MODIFIED)),
        })
    }

    /// Whether the request carries any precondition.
    pub fn is_conditional(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.if_unmodified_since.is_some()
    }

    /// Whether the request carries `If-Match` or `If-Unmodified-Since` (for a
    /// service that makes writes conditional: 428 when this is false).
    pub fn has_write_condition(&self) -> bool {
        self.if_match.is_some() || self.if_unmodified_since.is_some()
    }

    /// Evaluates the preconditions in RFC 9110 section 13.2.2's order against
    /// `current` (`None`: the resource has no current representation).
    pub fn check(&self, current: Option<&Validators>) -> Result<(), PreconditionOutcome> {
        let etag = current.and_then(|c| c.etag.as_ref());
        let last_modified = current.and_then(|c| c.last_modified);
        let failed = || PreconditionOutcome::Failed(ApiError::precondition_failed(etag));

        // 1. If-Match (strong comparison), else 2. If-Unmodified-Since.
        if let Some(cond) = &self.if_match {
            if !cond.matches(etag, true) {
                return Err(failed());
            }
        } else if let (Some(since), Some(lm)) = (self.if_unmodified_since, last_modified) {
            if seconds(lm) > seconds(since) {
                return Err(failed());
            }
        }
        let is_read = self.method == Method::GET || self.method == Method::HEAD;
        // 3. If-None-Match (weak comparison), else 4. If-Modified-Since (reads only).
        // Under a preset without 304 (seed-003) a read whose copy is current
        // simply gets the full 200.
        let not_modified = || match self.not_modified_allowed {
            true => Err(self.not_modified(current)),
            false => Ok(()),
        };
        if let Some(cond) = &self.if_none_match {
            if cond.matches(etag, false) {
                return if is_read {
                    not_modified()
                } else {
                    Err(failed())
                };
            }
        } else if let (true, Some(since), Some(lm)) =
            (is_read, self.if_modified_since, last_modified)
        {
            if seconds(lm) <= seconds(since) {
                return not_modified();
            }
        }
        Ok(())
    }

    /// [`check`](Self::check) for a write (PUT, PATCH, DELETE, POST), which can
    /// only fail with 412, as an [`ApiError`] for `?`.
    pub fn check_write(&self, current: Option<&Validators>) -> Result<(), ApiError> {
        match self.check(current) {
            Ok(()) => Ok(()),
            Err(PreconditionOutcome::Failed(e)) => Err(e),
            // Only GET and HEAD are ever "not modified"; on any other method a
            // matching If-None-Match already failed above.
            Err(PreconditionOutcome::NotModified(_)) => Err(ApiError::precondition_failed(
                current.and_then(|c| c.etag.as_ref()),
            )),
        }
    }

    /// [`check`](Self::check) against the validators of a 2xx response, for
    /// whoever did not evaluate the preconditions before producing it (a
    /// gateway in front of an upstream that ignores them): a 304 keeps the
    /// headers RFC 9110 section 15.4.5 lists from that response.
    pub fn check_response(&self, headers: &HeaderMap) -> Result<(), PreconditionOutcome> {
        let current = Validators::from_headers(headers);
        match self.check(Some(&current)) {
            Err(PreconditionOutcome::NotModified(mut res)) => {
                for name in KEPT_ON_304 {
                    if let Some(v) = headers.get(&name) {
                        res.headers_mut().insert(name, v.clone());
                    }
                }
                Err(PreconditionOutcome::NotModified(res))
            }
            other => other,
        }
    }

    fn not_modified(&self, current: Option<&Validators>) -> PreconditionOutcome {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        if let Some(v) = current {
            v.apply(res.headers_mut());
        }
        PreconditionOutcome::NotModified(Box::new(res))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Preconditions::from_parts(parts)
    }
}

/// Headers a 304 keeps from the 200 it stands for (RFC 9110 section 15.4.5).
const KEPT_ON_304: [HeaderName; 6] = [
    header::ETAG,
    header::LAST_MODIFIED,
    header::CACHE_CONTROL,
    header::VARY,
    header::CONTENT_LOCATION,
    header::EXPIRES,
];

/// Largest body [`ETagLayer`] buffers to hash; larger ones pass untagged.
#[cfg(feature = "etag")]
const MAX_HASHED_BODY: usize = 8 * 1024 * 1024;

/// Whether a 200 is to be tagged from its body: it has no `ETag` of its own
/// and its body is known to be small enough to buffer.
#[cfg(feature = "etag")]
fn wants_content_tag(parts: &http::response::Parts, body: &Body) -> bool {
    !parts.headers.contains_key(header::ETAG)
        && http_body::Body::size_hint(body)
            .upper()
            .is_some_and(|n| n as usize <= MAX_HASHED_BODY)
}

/// Without the `etag` feature, only handlers' own `ETag`s are used.
#[cfg(not(feature = "etag"))]
fn wants_content_tag(_: &http::response::Parts, _: &Body) -> bool {
    false
}

#[cfg(feature = "etag")]
fn content_tag(bytes: &[u8]) -> HeaderValue {
    EntityTag::header_value_for_content(bytes)
}

#[cfg(not(feature = "etag"))]
fn content_tag(_: &[u8]) -> HeaderValue {
    unreachable!("no body is read to be tagged without the etag feature")
}

/// Layer that tags GET/HEAD 200 responses with a strong `ETag` and answers
/// `If-None-Match` / `If-Modified-Since` with 304.
#[derive(Clone, Copy, Debug, Default)]
pub struct ETagLayer;

impl<S> Layer<S> for ETagLayer {
    type Service = ETag<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ETag { inner }
    }
}

/// The service of [`ETagLayer`].
#[derive(Clone, Debug)]
pub struct ETag<S> {
    inner: S,
}

impl<S> Service<Request> for ETag<S>
where
    S: Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = ETagFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let is_head = req.method() == Method::HEAD;
        if req.method() != Method::GET && !is_head {
            return ETagFuture::passing(self.inner.call(req), None);
        }
        if is_head {
            // Run as GET so the tag is the hash of the body a GET would get;
            // axum drops the body of the HEAD response after us.
            *req.method_mut() = Method::GET;
        }
        let (parts, body) = req.into_parts();
        match Preconditions::from_parts(&parts) {
            Ok(pre) => {
                ETagFuture::passing(self.inner.call(Request::from_parts(parts, body)), Some(pre))
            }
            Err(e) => ETagFuture {
                inner: None,
                pre: None,
                reading: None,
                refusal: Some(e.into_response()),
            },
        }
    }
}

/// A 200's body being read to be hashed. A handler's body is nearly always
/// one frame, which is kept as it is (no copy); a second frame starts a
/// buffer.
struct Reading {
    parts: http::response::Parts,
    body: Body,
    first: Option<bytes::Bytes>,
    rest: Option<bytes::BytesMut>,
    pre: Preconditions,
}

pin_project_lite::pin_project! {
    /// The response future of [`ETag`]: the handler's, then (for a 200 to a
    /// GET or HEAD) its body read, tagged and judged against the request's
    /// conditions. A named future, not a boxed one: this layer runs on
    /// every request.
    pub struct ETagFuture<F> {
        #[pin]
        inner: Option<F>,
        // The request's conditions; `None` for a method that is not tagged.
        pre: Option<Preconditions>,
        reading: Option<Reading>,
        // Malformed conditions, answered without calling the handler.
        refusal: Option<Response>,
    }
}

impl<F> ETagFuture<F> {
    fn passing(inner: F, pre: Option<Preconditions>) -> Self {
        ETagFuture {
            inner: Some(inner),
            pre,
            reading: None,
            refusal: None,
        }
    }
}

impl<F> std::future::Future for ETagFuture<F>
where
    F: std::future::Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::{ready, Poll};
        let mut this = self.project();
        if let Some(refusal) = this.refusal.take() {
            return Poll::Ready(Ok(refusal));
        }
        if let Some(handler) = this.inner.as_mut().as_pin_mut() {
            let Ok(res) = ready!(handler.poll(cx));
            this.inner.set(None);
            let Some(pre) = this.pre.take() else {
                return Poll::Ready(Ok(res));
            };
            if res.status() != StatusCode::OK {
                return Poll::Ready(Ok(res));
            }
            let (parts, body) = res.into_parts();
            if !wants_content_tag(&parts, &body) {
                return Poll::Ready(Ok(judge(pre, parts, body)));
            }
            *this.reading = Some(Reading {
                parts,
                body,
                first: None,
                rest: None,
                pre,
            });
        }
        let reading = this.reading.as_mut().expect("polled after completion");
        loop {
            let frame = ready!(http_body::Body::poll_frame(
                std::pin::Pin::new(&mut reading.body),
                cx
            ));
            let Some(frame) = frame else { break };
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers: a buffered body has none to send
                },
                Err(e) => {
                    *this.reading = None;
                    return Poll::Ready(Ok(ApiError::internal(e).into_response()));
                }
            };
            match (&reading.first, &mut reading.rest) {
                (None, _) => reading.first = Some(data),
                (Some(head), None) => {
                    let mut joined = bytes::BytesMut::from(&head[..]);
                    joined.extend_from_slice(&data);
                    reading.rest = Some(joined);
                }
                (Some(_), Some(joined)) => joined.extend_from_slice(&data),
            }
        }
        let Reading {
            mut parts,
            first,
            rest,
            pre,
            ..
        } = this.reading.take().expect("read above");
        let bytes = match rest {
            Some(joined) => joined.freeze(),
            None => first.unwrap_or_default(),
        };
        parts.headers.insert(header::ETAG, content_tag(&bytes));
        Poll::Ready(Ok(judge(pre, parts, Body::from(bytes))))
    }
}

/// A tagged 200 judged against the request's conditions: itself, a 304
/// keeping its cache fields, or a 412.
fn judge(pre: Preconditions, parts: http::response::Parts, body: Body) -> Response {
    // Most requests make no condition, and then every check passes.
    if !pre.is_conditional() {
        return Response::from_parts(parts, body);
    }
    let current = Validators::from_headers(&parts.headers);
    match pre.check(Some(&current)) {
        Err(PreconditionOutcome::NotModified(_)) => {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            for name in KEPT_ON_304 {
                for v in parts.headers.get_all(&name) {
                    res.headers_mut().append(name.clone(), v.clone());
                }
            }
            res
        }
        Err(PreconditionOutcome::Failed(e)) => e.into_response(),
        Ok(()) => Response::from_parts(parts, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(method: Method, headers: &[(&'static str, &'static str)]) -> Preconditions {
        let mut req = http::Request::builder().method(method);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (parts, ()) = req.body(()).unwrap().into_parts();
        Preconditions::from_parts(&parts).unwrap()
    }

    #[test]
    fn a_response_is_judged_by_its_own_validators_and_a_304_keeps_its_cache_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let read = pre(Method::GET, &[("if-none-match", "\"v1\"")]);
        match read.check_response(&headers) {
            Err(PreconditionOutcome::NotModified(res)) => {
                assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
                assert_eq!(res.headers()[header::CACHE_CONTROL], "max-age=5");
                assert!(!res.headers().contains_key(header::CONTENT_TYPE));
            }
            other => panic!("expected 304, got {other:?}"),
        }
        let failing = pre(Method::GET, &[("if-match", "\"v0\"")]);
        assert!(matches!(
            failing.check_response(&headers),
            Err(PreconditionOutcome::Failed(_))
        ));
        assert!(pre(Method::GET, &[("if-match", "\"v1\"")])
            .check_response(&headers)
            .is_ok());
    }

    fn v(tag: &str) -> Validators {
        Validators::new(Some(EntityTag::strong(tag)), None)
    }

    #[test]
    fn parses_and_compares_tags_as_rfc9110_says() {
        let w = EntityTag::parse("W/\"1\"").unwrap();
        let s = EntityTag::parse("\"1\"").unwrap();
        assert!(w.is_weak() && !s.is_weak());
        assert!(w.weak_eq(&s) && !w.strong_eq(&s) && s.strong_eq(&s));
        assert!(EntityTag::parse("1").is_none());
        assert!(EntityTag::parse("\"a\"b\"").is_none());
        assert_eq!(split_tags("\"a,b\", W/\"c\" ,"), vec!["\"a,b\"", "W/\"c\""]);
    }

    #[test]
    fn if_match_uses_strong_comparison_and_star_needs_a_resource() {
        assert!(pre(Method::PUT, &[("if-match", "\"1\"")])
            .check(Some(&v("1")))
            .is_ok());
        assert!(pre(Method::PUT, &[("if-match", "W/\"1\"")])
            .check(Some(&v("1")))
            .is_err());
        assert!(pre(Method::PUT, &[("if-match", "\"0\", \"1\"")])
            .check(Some(&v("1")))
            .is_ok());
        assert!(pre(Method::PUT, &[("if-match", "*")])
            .check(Some(&v("1")))
            .is_ok());
        assert!(pre(Method::PUT, &[("if-match", "*")]).check(None).is_err());
    }

    #[test]
    fn if_none_match_is_weak_and_gives_304_on_reads_412_on_writes() {
        let get = pre(Method::GET, &[("if-none-match", "W/\"1\"")]);
        assert!(matches!(
            get.check(Some(&v("1"))),
            Err(PreconditionOutcome::NotModified(_))
        ));
        let put = pre(Method::PUT, &[("if-none-match", "*")]);
        assert!(matches!(
            put.check(Some(&v("1"))),
            Err(PreconditionOutcome::Failed(_))
        ));
        assert!(put.check(None).is_ok());
    }

    #[test]
    fn dates_are_compared_at_second_precision_and_bad_dates_ignored() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_000_500);
        let cur = Validators::new(None, Some(t));
        let since = "Mon, 12 Jan 1970 13:46:40 GMT"; // 1_000_000 s
        let get = pre(Method::GET, &[("if-modified-since", since)]);
        assert!(matches!(
            get.check(Some(&cur)),
            Err(PreconditionOutcome::NotModified(_))
        ));
        let put = pre(Method::PUT, &[("if-unmodified-since", since)]);
        assert!(put.check(Some(&cur)).is_ok());
        let bad = pre(Method::GET, &[("if-modified-since", "yesterday")]);
        assert!(!bad.is_conditional());
    }

    #[test]
    fn failed_if_match_carries_the_current_etag() {
        let Err(PreconditionOutcome::Failed(e)) =
            pre(Method::PATCH, &[("if-match", "\"old\"")]).check(Some(&v("new")))
        else {
            panic!("expected 412")
        };
        assert_eq!(e.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(e.headers()["etag"], "\"new\"");
    }
}
