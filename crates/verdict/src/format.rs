//! The three error-body formats, and the choice between them.
//!
//! - [`ErrorFormat::Problem`]: RFC 9457 `application/problem+json` (the default);
//! - [`ErrorFormat::JsonApi`]: JSON:API `{"errors": [...]}`, `application/vnd.api+json`;
//! - [`ErrorFormat::Simple`]: `{"code": ..., "message": ...}`, `application/json`.
//!
//! The service's configured format is the default; a client that names
//! `application/problem+json` or `application/vnd.api+json` in `Accept` gets
//! that one instead ([`ErrorFormat::negotiate`]).
//!
//! ```
//! use verdict::{ApiError, ErrorFormat};
//! use verdict::format::{render, RenderContext};
//!
//! let e = ApiError::not_found("The record identified by 7 could not be found.")
//!     .with_code("record_not_found");
//! let ctx = RenderContext { request_id: Some("r-1"), instance: Some("/v1/records/7"), ..Default::default() };
//! let body: serde_json::Value =
//!     serde_json::from_slice(&render(&e, e.status(), ErrorFormat::Simple, &ctx)).unwrap();
//! assert_eq!(body["code"], "record_not_found");
//! ```

use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use crate::error::{ApiError, FieldError};
use crate::headers::{AcceptHeader, Upgrade};

/// An error-body format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ErrorFormat {
    /// RFC 9457 problem details.
    #[default]
    Problem,
    /// JSON:API error objects (seed 000).
    JsonApi,
    /// `{"code", "message"}` (seed 001).
    Simple,
}

impl ErrorFormat {
    /// Every format.
    pub const ALL: [ErrorFormat; 3] = [
        ErrorFormat::Problem,
        ErrorFormat::JsonApi,
        ErrorFormat::Simple,
    ];

    /// The media type of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            ErrorFormat::Problem => "application/problem+json",
            ErrorFormat::JsonApi => "application/vnd.api+json",
            ErrorFormat::Simple => "application/json",
        }
    }

    /// The format's name in configuration (`problem`, `jsonapi`, `simple`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorFormat::Problem => "problem",
            ErrorFormat::JsonApi => "jsonapi",
            ErrorFormat::Simple => "simple",
        }
    }

    /// The format named `name` in configuration (see [`ErrorFormat::name`]).
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format for a request: one the client names in `Accept`
    /// (`application/problem+json`, `application/vnd.api+json`), else `default`.
    pub fn negotiate(headers: &HeaderMap, default: ErrorFormat) -> ErrorFormat {
        // Only a media type ending in `+json` can pick a format: without one
        // (no `Accept`, `*/*`, `application/json`: nearly every request),
        // nothing need be parsed.
        let names_a_json_suffix = headers.get_all(http::header::ACCEPT).iter().any(|v| {
            v.as_bytes()
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"+json"))
        });
        if !names_a_json_suffix {
            return default;
        }
        let accept = AcceptHeader::from_headers(headers);
        // Only the two dedicated media types pick a format (`application/json`
        // is what every client sends); among them the higher q wins, ties go
        // to the configured default.
        [ErrorFormat::Problem, ErrorFormat::JsonApi]
            .into_iter()
            .filter(|f| accept.names(f.content_type()))
            .max_by_key(|f| (accept.quality(f.content_type()), *f == default))
            .unwrap_or(default)
    }
}

impl fmt::Display for ErrorFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an error body says, read back in the format its `Content-Type` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    /// The format the body is in.
    pub format: ErrorFormat,
    /// Its `code` (the first error's, for JSON:API), if it has one.
    pub code: Option<String>,
    /// The status it states (`status` of a problem, of JSON:API's first
    /// error); `None` for the simple format, which states none.
    pub status: Option<u16>,
}

/// Reads an error body as one of the three formats, by its `content_type`
/// (parameters ignored): what a client, a test or an auditor (`verdict
/// check`) needs to judge it. `Err` says why it is in none of them.
///
/// ```
/// use verdict::format::{inspect, ErrorFormat};
///
/// let body = br#"{"type":"/problems/not-found","title":"Not Found","status":404,"detail":"x","code":"not_found"}"#;
/// let read = inspect("application/problem+json", body).unwrap();
/// assert_eq!((read.format, read.status), (ErrorFormat::Problem, Some(404)));
/// assert!(inspect("text/html", b"<h1>404</h1>").is_err());
/// ```
pub fn inspect(content_type: &str, body: &[u8]) -> Result<ErrorBody, String> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = ErrorFormat::ALL
        .into_iter()
        .find(|f| f.content_type() == media)
        .ok_or_else(|| {
            format!("`{media}` is none of the error formats (problem+json, vnd.api+json, json)")
        })?;
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    Ok(match format {
        ErrorFormat::Problem => {
            for member in ["type", "title", "status"] {
                if value.get(member).is_none() {
                    return Err(format!("a problem document without `{member}`"));
                }
            }
            ErrorBody {
                format,
                code: text(&value["code"]),
                status: value["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
            }
        }
        ErrorFormat::JsonApi => {
            let first = value["errors"]
                .as_array()
                .and_then(|a| a.first())
                .ok_or("a JSON:API body without `errors`")?;
            ErrorBody {
                format,
                code: text(&first["code"]),
                status: first["status"].as_str().and_then(|s| s.parse().ok()),
            }
        }
        ErrorFormat::Simple => {
            if value.get("code").is_none() || value.get("message").is_none() {
                return Err("a JSON error without `code` and `message`".into());
            }
            ErrorBody {
                format,
                code: text(&value["code"]),
                status: None,
            }
        }
    })
}

/// The name is not `problem`, `jsonapi` or `simple`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown error format `{}` (expected problem, jsonapi or simple)",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for ErrorFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// What a body needs from the request it answers.
#[derive(Clone, Copy, Debug)]
pub struct RenderContext<'a> {
    /// The request id (`X-Request-Id`).
    pub request_id: Option<&'a str>,
    /// The request path, for `instance`.
    pub instance: Option<&'a str>,
    /// Where problem types are documented: `type` is `{problem_base}/{slug}`.
    pub problem_base: &'a str,
    /// A HEAD request: no body at all.
    pub head_only: bool,
}

impl Default for RenderContext<'_> {
    fn default() -> Self {
        RenderContext {
            request_id: None,
            instance: None,
            problem_base: "/problems",
            head_only: false,
        }
    }
}

/// The slug of a `code` in a problem `type` URI: `record_not_found` -> `record-not-found`.
pub fn slug(code: &str) -> String {
    code.replace('_', "-")
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct JsonApiDocument<'a> {
    errors: Vec<JsonApiError<'a>>,
}

#[derive(Serialize)]
struct JsonApiError<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    status: String,
    code: &'a str,
    title: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<JsonApiSource<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<JsonApiMeta<'a>>,
}

#[derive(Serialize)]
struct JsonApiSource<'a> {
    pointer: &'a str,
}

#[derive(Serialize)]
struct JsonApiMeta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Simple<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

/// Renders `error` as sent with `status` (which may differ from the error's
/// own under a preset) in `format`.
pub fn render<'a>(
    error: &'a ApiError,
    status: StatusCode,
    format: ErrorFormat,
    ctx: &RenderContext<'a>,
) -> Bytes {
    let result = match format {
        ErrorFormat::Problem => serde_json::to_vec(&Problem {
            kind: format!("{}/{}", ctx.problem_base, slug(error.code())),
            title: error.title(),
            status: status.as_u16(),
            detail: error.detail(),
            instance: ctx.instance,
            code: error.code(),
            request_id: ctx.request_id,
            incident_id: error.incident_id(),
            errors: error.field_errors(),
            extensions: error.extensions(),
        }),
        ErrorFormat::JsonApi => {
            let status = status.as_u16().to_string();
            let one = |detail: &'a str, pointer: Option<&'a str>| JsonApiError {
                id: error.incident_id(),
                status: status.clone(),
                code: error.code(),
                title: error.title(),
                detail,
                source: pointer.map(|pointer| JsonApiSource { pointer }),
                meta: (ctx.request_id.is_some() || !error.extensions().is_empty()).then(|| {
                    JsonApiMeta {
                        request_id: ctx.request_id,
                        extensions: error.extensions(),
                    }
                }),
            };
            let errors: Vec<JsonApiError<'_>> = if error.field_errors().is_empty() {
                vec![one(error.detail(), None)]
            } else {
                error
                    .field_errors()
                    .iter()
                    .map(|f| one(&f.detail, Some(&f.pointer)))
                    .collect()
            };
            serde_json::to_vec(&JsonApiDocument { errors })
        }
        ErrorFormat::Simple => serde_json::to_vec(&Simple {
            code: error.code(),
            message: error.detail(),
            errors: error.field_errors(),
            extensions: error.extensions(),
        }),
    };
    Bytes::from(result.expect("error bodies are plain data and always serialize"))
}

/// Marks a response the library built from an [`ApiError`], so that the
/// normalizing layer re-renders it faithfully instead of guessing from the status.
#[derive(Clone, Debug)]
pub(crate) struct Rendered(pub(crate) Arc<ApiError>);

/// The error a response was rendered from, if it is an error the contract's
/// stack rendered: for metrics and logs that count refusals by problem code
/// (`overloaded`, `rate_limited`, `maintenance`, ...), outside the stack.
pub fn rendered_error<B>(res: &http::Response<B>) -> Option<&ApiError> {
    res.extensions().get::<Rendered>().map(|r| &*r.0)
}

/// `error` as a response in `format` with `status` (the preset's): the body,
/// the headers the error carries (and `Upgrade` on a 426), `no-store`.
pub(crate) fn response(
    error: &ApiError,
    status: StatusCode,
    format: ErrorFormat,
    ctx: &RenderContext<'_>,
) -> Response {
    let body = if ctx.head_only {
        Bytes::new()
    } else {
        render(error, status, format, ctx)
    };
    let mut res = Response::new(axum::body::Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    for (name, value) in error.headers().iter() {
        h.append(name, value.clone());
    }
    if status.as_u16() == 426 {
        if let Some(up) = error.upgrade() {
            h.insert(Upgrade::NAME, up.header_value());
        }
    }
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    res.extensions_mut()
        .insert(Rendered(Arc::new(error.clone())));
    res
}

impl IntoResponse for ApiError {
    /// Renders as `application/problem+json` with the standard statuses; the
    /// normalizing layer (part of every [`Contract`](crate::Contract))
    /// re-renders it in the negotiated format, applies the preset, and logs
    /// it, once.
    fn into_response(self) -> Response {
        let status = self.status();
        response(
            &self,
            status,
            ErrorFormat::Problem,
            &RenderContext::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::{json, Value};

    fn ctx() -> RenderContext<'static> {
        RenderContext {
            request_id: Some("req-1"),
            instance: Some("/v1/things/1"),
            ..Default::default()
        }
    }

    fn body(e: &ApiError, f: ErrorFormat) -> Value {
        serde_json::from_slice(&render(e, e.status(), f, &ctx())).unwrap()
    }

    #[test]
    fn problem_details_follow_rfc9457() {
        let e = ApiError::not_found("The record identified by 1 could not be found.")
            .with_code("record_not_found")
            .with_title("Record not found");
        assert_eq!(
            body(&e, ErrorFormat::Problem),
            json!({
                "type": "/problems/record-not-found", "title": "Record not found", "status": 404,
                "detail": "The record identified by 1 could not be found.",
                "instance": "/v1/things/1", "code": "record_not_found", "request_id": "req-1"
            })
        );
    }

    #[test]
    fn validation_errors_name_every_field_in_each_format() {
        let e = ApiError::validation_failed(vec![
            FieldError::new("/name", "is required"),
            FieldError::new("/age", "must be a number"),
        ]);
        let p = body(&e, ErrorFormat::Problem);
        assert_eq!(
            p["errors"][1],
            json!({"pointer": "/age", "detail": "must be a number"})
        );
        let j = body(&e, ErrorFormat::JsonApi);
        assert_eq!(j["errors"].as_array().unwrap().len(), 2);
        assert_eq!(j["errors"][0]["status"], "422");
        assert_eq!(j["errors"][0]["source"]["pointer"], "/name");
        let s = body(&e, ErrorFormat::Simple);
        assert_eq!(s["code"], "validation_failed");
        assert_eq!(s["errors"][0]["pointer"], "/name");
    }

    #[test]
    fn extension_members_appear_in_every_format_and_never_replace_the_standard_ones() {
        let e = ApiError::forbidden("Your balance is too low.")
            .with_extension("balance", 30)
            .with_extension("accounts", ["/account/12345"])
            .with_extension("status", 200)
            .with_extension("code", "mine");
        let p = body(&e, ErrorFormat::Problem);
        assert_eq!(p["balance"], 30);
        assert_eq!(p["accounts"][0], "/account/12345");
        assert_eq!(p["status"], 403);
        assert_eq!(p["code"], "forbidden");
        let j = body(&e, ErrorFormat::JsonApi);
        assert_eq!(j["errors"][0]["meta"]["balance"], 30);
        assert_eq!(j["errors"][0]["meta"]["request_id"], "req-1");
        let s = body(&e, ErrorFormat::Simple);
        assert_eq!(s["balance"], 30);
        assert_eq!(s["code"], "forbidden");
    }

    #[test]
    fn rendered_status_is_the_one_sent() {
        let e = ApiError::not_found("x");
        let v: Value = serde_json::from_slice(&render(
            &e,
            StatusCode::BAD_REQUEST,
            ErrorFormat::JsonApi,
            &ctx(),
        ))
        .unwrap();
        assert_eq!(v["errors"][0]["status"], "400");
    }

    #[test]
    fn accept_picks_a_named_format_else_the_default() {
        let mut h = HeaderMap::new();
        assert_eq!(
            ErrorFormat::negotiate(&h, ErrorFormat::Simple),
            ErrorFormat::Simple
        );
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            ErrorFormat::negotiate(&h, ErrorFormat::JsonApi),
            ErrorFormat::JsonApi
        );
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/json, application/vnd.api+json"),
        );
        assert_eq!(
            ErrorFormat::negotiate(&h, ErrorFormat::Problem),
            ErrorFormat::JsonApi
        );
        h.insert(
            http::header::ACCEPT,
            HeaderValue::from_static(
                "application/problem+json;q=0.9, application/vnd.api+json;q=0.5",
            ),
        );
        assert_eq!(
            ErrorFormat::negotiate(&h, ErrorFormat::Simple),
            ErrorFormat::Problem
        );
        assert_eq!(
            "jsonapi".parse::<ErrorFormat>().unwrap(),
            ErrorFormat::JsonApi
        );
        assert!("xml".parse::<ErrorFormat>().is_err());
    }
}
