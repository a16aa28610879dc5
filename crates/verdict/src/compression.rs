//! Response compression (gzip, brotli, zstd by `Accept-Encoding`) that keeps
//! entity tags and conditional requests right.
//!
//! The compressing is tower-http's [`tower_http::compression`]. What this
//! layer adds is what RFC 9110 asks of it and tower-http leaves to the
//! application:
//!
//! - **A strong `ETag` names one sequence of bytes** (section 8.8.3), so the
//!   gzip encoding of a record cannot carry the tag of its identity encoding.
//!   A compressed response's strong tag gets the coding as a suffix
//!   (`"3f1c…"` becomes `"3f1c…-gzip"`), and the suffix is taken off the tags
//!   of incoming `If-Match` / `If-None-Match` before the application sees
//!   them: the coding changes the bytes, not the resource's state, so
//!   `If-Match: "3f1c…-gzip"` on a PATCH still matches, and `If-None-Match`
//!   on a GET still gives 304. A 304 answers with the tag the client holds.
//!   Weak tags are left alone (they already mean "equivalent", not "identical").
//! - **Never a 406 carrying a 200's body.** When `Accept-Encoding` rules out
//!   every coding, identity included (`identity;q=0, *;q=0`), tower-http
//!   overwrites the status with 406 and keeps the body. This layer puts the
//!   application's status back: the header is disregarded, as RFC 9110
//!   section 12.5.3 lets a server do, and the identity encoding is sent.
//! - **A threshold that pays**: bodies under [`DEFAULT_MIN_SIZE`] bytes (1 KiB,
//!   so error bodies and single small records) are sent as they are; gzip
//!   makes a 40-byte body larger. Images, gRPC and event streams are never
//!   compressed. `Vary: Accept-Encoding` is added by tower-http.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::compression::CompressionLayer;
//! use verdict::{Contract, Preset};
//!
//! let routes = Router::new().route("/items", get(|| async { "[]" }));
//! // Outside the contract's stack, so that rendered error bodies are compressed too.
//! let app = Contract::new(Preset::standard())
//!     .apply(routes)
//!     .layer(CompressionLayer::new());
//! # let _ = app;
//! ```

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, StatusCode};
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_layer::Layer;
use tower_service::Service;

use crate::conditional::split_tags;
use crate::headers::EntityTag;

/// Bodies smaller than this many bytes are not compressed.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// The content codings this layer may apply, as they appear in
/// `Content-Encoding` and as the suffix of an entity tag.
const CODINGS: [&str; 4] = ["gzip", "br", "zstd", "deflate"];

/// Compresses responses by `Accept-Encoding`, keeping entity tags exact.
/// See the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct CompressionLayer {
    min_size: u64,
}

impl CompressionLayer {
    /// gzip, brotli and zstd, for bodies of [`DEFAULT_MIN_SIZE`] bytes or more.
    pub fn new() -> Self {
        CompressionLayer {
            min_size: DEFAULT_MIN_SIZE,
        }
    }

    /// Compresses only bodies of at least `bytes` bytes (a body of unknown
    /// length, such as a stream, is always compressed).
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = bytes;
        self
    }
}

impl Default for CompressionLayer {
    fn default() -> Self {
        Self::new()
    }
}

type Compressing<S> = tower_http::compression::Compression<StatusMarker<S>, Worthwhile>;

impl<S> Layer<S> for CompressionLayer {
    type Service = Compression<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let predicate = SizeAbove::new(self.min_size)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE);
        Compression {
            inner: tower_http::compression::Compression::new(StatusMarker { inner })
                .compress_when(Worthwhile(predicate)),
        }
    }
}

/// The predicate: at least the threshold, and not images, gRPC or events.
#[derive(Clone)]
struct Worthwhile(Combined);

type Combined = tower_http::compression::predicate::And<
    tower_http::compression::predicate::And<
        tower_http::compression::predicate::And<SizeAbove, NotForContentType>,
        NotForContentType,
    >,
    NotForContentType,
>;

impl Predicate for Worthwhile {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: http_body::Body,
    {
        self.0.should_compress(response)
    }
}

impl std::fmt::Debug for Worthwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worthwhile")
    }
}

/// The service of [`CompressionLayer`].
#[derive(Clone)]
pub struct Compression<S> {
    inner: Compressing<S>,
}

impl<S> std::fmt::Debug for Compression<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compression").finish_non_exhaustive()
    }
}

impl<S> Service<Request> for Compression<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The tags the client sent with a coding suffix, by their bare form,
        // so that a 304 can answer with the tag the client holds.
        let mut held: Vec<(String, &'static str)> = Vec::new();
        for name in [header::IF_MATCH, header::IF_NONE_MATCH] {
            strip_codings(req.headers_mut(), name, &mut held);
        }
        let future = self.inner.call(req);
        Box::pin(async move {
            let Ok(res) = future.await;
            let (mut parts, body) = res.into_parts();
            if let Some(InnerStatus(status)) = parts.extensions.remove::<InnerStatus>() {
                // tower-http's 406 for an `Accept-Encoding` that rules out
                // identity: the body is the application's, so is the status.
                parts.status = status;
            }
            let coding = parts
                .headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| CODINGS.iter().find(|c| v.eq_ignore_ascii_case(c)).copied());
            let tag = parts
                .headers
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .and_then(EntityTag::parse)
                .filter(|t| !t.is_weak());
            if let Some(tag) = tag {
                let suffix = match coding {
                    Some(coding) => Some(coding),
                    None if parts.status == StatusCode::NOT_MODIFIED => held
                        .iter()
                        .find(|(bare, _)| bare == tag.opaque())
                        .map(|(_, coding)| *coding),
                    None => None,
                };
                if let Some(suffix) = suffix {
                    let encoded = EntityTag::strong(format!("{}-{suffix}", tag.opaque()));
                    if let Ok(value) = HeaderValue::from_str(&encoded.to_string()) {
                        parts.headers.insert(header::ETAG, value);
                    }
                }
            }
            Ok(Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// Rewrites the tag list in `name` without coding suffixes, noting each
/// stripped tag in `held`.
fn strip_codings(
    headers: &mut HeaderMap,
    name: HeaderName,
    held: &mut Vec<(String, &'static str)>,
) {
    let Some(value) = headers.get(&name).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let mut changed = false;
    let items: Vec<String> = split_tags(value)
        .into_iter()
        .map(|item| {
            let Some(tag) = EntityTag::parse(item) else {
                return item.to_string();
            };
            let stripped = CODINGS.iter().find_map(|coding| {
                tag.opaque()
                    .strip_suffix(coding)
                    .and_then(|rest| rest.strip_suffix('-'))
                    .map(|bare| (bare.to_string(), *coding))
            });
            match stripped {
                Some((bare, coding)) if !tag.is_weak() => {
                    changed = true;
                    held.push((bare.clone(), coding));
                    EntityTag::strong(bare).to_string()
                }
                _ => item.to_string(),
            }
        })
        .collect();
    // Several header lines are left as they are unless one of them changed;
    // then they are joined into one list (the same list, RFC 9110 section 5.3).
    if changed {
        let others: Vec<String> = headers
            .get_all(&name)
            .iter()
            .skip(1)
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let mut joined = items.join(", ");
        for other in others {
            joined.push_str(", ");
            joined.push_str(&other);
        }
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(name, v);
        }
    }
}

/// The status the application answered, carried past tower-http.
#[derive(Clone, Copy, Debug)]
struct InnerStatus(StatusCode);

/// Notes the application's status when tower-http might overwrite it.
#[derive(Clone, Debug)]
struct StatusMarker<S> {
    inner: S,
}

impl<S> Service<Request> for StatusMarker<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let future = self.inner.call(req);
        Box::pin(async move {
            let Ok(mut res) = future.await;
            if res.status() != StatusCode::NOT_ACCEPTABLE {
                let status = res.status();
                res.extensions_mut().insert(InnerStatus(status));
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_suffixes_are_taken_off_strong_tags_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static(r#""a-gzip", W/"b-br", "c", "d-zstd""#),
        );
        let mut held = Vec::new();
        strip_codings(&mut headers, header::IF_NONE_MATCH, &mut held);
        assert_eq!(headers[header::IF_NONE_MATCH], r#""a", W/"b-br", "c", "d""#);
        assert_eq!(
            held,
            vec![("a".to_string(), "gzip"), ("d".to_string(), "zstd")]
        );
    }

    #[test]
    fn a_list_without_suffixes_is_left_as_sent() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        let mut held = Vec::new();
        strip_codings(&mut headers, header::IF_MATCH, &mut held);
        assert_eq!(headers[header::IF_MATCH], "*");
        assert!(held.is_empty());
    }
}
