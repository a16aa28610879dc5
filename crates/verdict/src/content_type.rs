//! `Content-Type`: 415 Unsupported Media Type, with `Accept-Post` or
//! `Accept-Patch` naming what the endpoint takes.
//!
//! By default `POST` and `PUT` take `application/json`, and `PATCH` takes
//! `application/merge-patch+json` (RFC 7396) and `application/json`: most
//! clients send the latter, and a JSON object patch has one sensible meaning
//! either way, RFC 7396's (members replace, `null` removes), so refusing it
//! would only make clients guess; [`ContentTypeLayer::route`] sets another
//! list for one route (NDJSON for an import, say). Only requests that carry a
//! body are checked; parameters such as `charset` are ignored.
//!
//! ```
//! use axum::{routing::post, Router};
//! use http::Method;
//! use verdict::content_type::ContentTypeLayer;
//!
//! let app: Router = Router::new()
//!     .route("/imports", post(|| async { "" }))
//!     .route_layer(ContentTypeLayer::new().route(Method::POST, "/imports", ["application/x-ndjson"]));
//! ```

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use http::{HeaderMap, Method};

use crate::guard::{Guard, GuardLayer};
use crate::headers::AcceptedMediaTypes;
use crate::ApiError;

/// The media type of `headers`' `Content-Type`, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

/// Whether the request has a body (a non-zero `Content-Length`, or chunked).
pub fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// What `method` takes by default: merge-patch JSON and JSON for `PATCH`
/// (merge-patch first: it is what `Accept-Patch` should advertise), JSON else.
pub fn default_media_types(method: &Method) -> &'static [&'static str] {
    if *method == Method::PATCH {
        &["application/merge-patch+json", "application/json"]
    } else {
        &["application/json"]
    }
}

/// Layer answering 415 to bodies of a media type the route does not take.
pub type ContentTypeLayer = GuardLayer<ContentTypeGuard>;

/// The check behind [`ContentTypeLayer`].
#[derive(Clone, Debug)]
pub struct ContentTypeGuard {
    routes: Arc<Vec<(Method, String, Vec<String>)>>,
}

impl Default for ContentTypeLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentTypeLayer {
    /// JSON for POST and PUT; merge-patch JSON or JSON for PATCH.
    pub fn new() -> Self {
        GuardLayer::from_guard(ContentTypeGuard {
            routes: Arc::new(Vec::new()),
        })
    }

    /// `method` on `path` (as routed) takes `types` instead.
    pub fn route<I, T>(mut self, method: Method, path: &str, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let routes = Arc::make_mut(&mut self.guard_mut().routes);
        routes.retain(|(m, p, _)| !(*m == method && p == path));
        routes.push((
            method,
            path.to_string(),
            types.into_iter().map(Into::into).collect(),
        ));
        self
    }
}

impl ContentTypeGuard {
    fn accepted(&self, method: &Method, path: Option<&str>) -> Vec<String> {
        if let Some(path) = path {
            if let Some((_, _, t)) = self
                .routes
                .iter()
                .find(|(m, p, _)| m == method && p == path)
            {
                return t.clone();
            }
        }
        default_media_types(method)
            .iter()
            .map(|t| t.to_string())
            .collect()
    }
}

impl Guard for ContentTypeGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let method = req.method();
        if !matches!(*method, Method::POST | Method::PUT | Method::PATCH)
            || !has_body(req.headers())
        {
            return Ok(());
        }
        let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
        let accepted = self.accepted(method, path);
        let got = media_type(req.headers());
        if got
            .as_ref()
            .is_some_and(|g| accepted.iter().any(|a| a == g))
        {
            return Ok(());
        }
        Err(ApiError::unsupported_media_type(
            AcceptedMediaTypes::new(method.clone(), accepted),
            got.as_deref(),
        ))
    }
}
