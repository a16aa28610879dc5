//! [`ApiError`]: the one error type handlers and layers return.
//!
//! It keeps what the client is told (status, `code`, title, detail, per-field
//! errors) apart from what only the log sees (the cause), in the manner of
//! dropshot's `HttpError`. Constructors that need a header take its typed
//! value, so an error whose status requires a header cannot be built without it.
//!
//! ```
//! use verdict::ApiError;
//! use verdict::headers::RetryAfter;
//!
//! let e = ApiError::not_found("The record identified by 42 could not be found.")
//!     .with_code("record_not_found")
//!     .with_title("Record not found");
//! assert_eq!(e.status(), 404);
//!
//! let e = ApiError::rate_limited(RetryAfter::from_secs(3));
//! assert_eq!(e.headers()["retry-after"], "3");
//!
//! // A status that needs a header cannot be made through the generic constructor.
//! assert!(ApiError::new(http::StatusCode::METHOD_NOT_ALLOWED, "no").is_err());
//! ```

use std::borrow::Cow;
use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::headers::{
    AcceptedMediaTypes, Allow, BearerError, Challenge, EntityTag, RetryAfter, Upgrade,
};
use crate::status::{self, RequiredHeader};

/// Member names the body formats use themselves: no extension may take them.
const RESERVED_MEMBERS: [&str; 11] = [
    "type",
    "title",
    "status",
    "detail",
    "instance",
    "code",
    "message",
    "request_id",
    "incident_id",
    "errors",
    "meta",
];

/// A failing field of a request body, named by a JSON Pointer (RFC 6901).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON Pointer into the request body (`/name`, `/items/0/price`; `""` for the whole body).
    pub pointer: String,
    /// What is wrong with it, in the client's terms.
    pub detail: String,
}

impl FieldError {
    /// A failing field.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// A situation whose status differs between presets (docs/contract.md, "Presets").
///
/// An error built for one of these carries it, and the normalizing layer picks
/// the status the configured [`Preset`](crate::Preset) gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Situation {
    /// The body is not well-formed JSON (400, or 422 under seeds 000 and 001).
    MalformedBody,
    /// No credentials at all (401, or 400 under seed 001).
    MissingCredentials,
    /// A rate limit is used up (429, or 420 under seed 001).
    RateLimited,
    /// A retired API version (410, or 426 under seed 003).
    RetiredVersion,
}

/// The status `code` is not allowed by [`ApiError::new`]: it requires a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequiresHeader {
    /// The status asked for.
    pub status: StatusCode,
    /// The header it needs; use the dedicated constructor that takes it.
    pub header: RequiredHeader,
}

impl fmt::Display for RequiresHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status {} requires the {} header; use its dedicated ApiError constructor",
            self.status.as_u16(),
            self.header.name()
        )
    }
}

impl std::error::Error for RequiresHeader {}

/// An error response: what the client reads, and a cause only the log sees.
#[derive(Clone, Debug)]
pub struct ApiError {
    inner: Box<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Cow<'static, str>,
    cause: Option<String>,
    field_errors: Vec<FieldError>,
    headers: HeaderMap,
    situation: Option<Situation>,
    incident_id: Option<String>,
    upgrade: Option<Upgrade>,
    extensions: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// The one place an `ApiError` is assembled; callers guarantee required headers.
    fn build(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        let entry = status::lookup(status);
        ApiError {
            inner: Box::new(Inner {
                status,
                code: Cow::Borrowed(entry.map(|e| e.default_code).unwrap_or("error")),
                title: Cow::Borrowed(status::reason(status)),
                detail: detail.into(),
                cause: None,
                field_errors: Vec::new(),
                headers: HeaderMap::new(),
                situation: None,
                incident_id: None,
                upgrade: None,
                extensions: serde_json::Map::new(),
            }),
        }
    }

    fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.insert(name, value);
        self
    }

    /// An error of any status that requires no header; the others have their own constructors.
    pub fn new(
        status: StatusCode,
        detail: impl Into<Cow<'static, str>>,
    ) -> Result<Self, RequiresHeader> {
        match status::required_headers(status).first() {
            Some(&header) => Err(RequiresHeader { status, header }),
            None => Ok(Self::build(status, detail)),
        }
    }

    /// Marks the error as a preset-dependent situation (crate-internal: the
    /// public constructors set it where it applies).
    pub(crate) fn in_situation(mut self, situation: Situation) -> Self {
        self.inner.situation = Some(situation);
        self
    }

    /// An error for a status a response already carries (the normalizing
    /// layer's view of a bare status from elsewhere; its headers come along).
    pub(crate) fn foreign(status: StatusCode, detail: &'static str) -> Self {
        Self::build(status, detail)
    }

    // ---- 4xx -------------------------------------------------------------

    /// 400: the request is malformed (a bad query parameter, a malformed header...).
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::BAD_REQUEST, detail)
    }

    /// 400 (422 under some presets): the body is not well-formed JSON.
    pub fn malformed_body(detail: impl Into<Cow<'static, str>>) -> Self {
        let mut e = Self::build(StatusCode::BAD_REQUEST, detail)
            .with_code("malformed_body")
            .with_title("Malformed request body");
        e.inner.situation = Some(Situation::MalformedBody);
        e
    }

    /// 400: the query parameter `name` is not valid.
    pub fn invalid_query(name: &str, detail: impl fmt::Display) -> Self {
        Self::build(
            StatusCode::BAD_REQUEST,
            format!("The query parameter `{name}` is not valid: {detail}"),
        )
        .with_code("invalid_query")
        .with_title("Invalid query parameter")
    }

    /// 400: the path parameter `name` is not valid (`abc` where a number goes).
    pub fn invalid_path_parameter(name: &str, detail: impl fmt::Display) -> Self {
        Self::build(
            StatusCode::BAD_REQUEST,
            format!("The path parameter `{name}` is not valid: {detail}"),
        )
        .with_code("invalid_path_parameter")
        .with_title("Invalid path parameter")
    }

    /// 400: the request header `name` is malformed.
    pub fn invalid_header(name: &str, detail: impl fmt::Display) -> Self {
        Self::build(
            StatusCode::BAD_REQUEST,
            format!("The `{name}` header is not valid: {detail}"),
        )
        .with_code("invalid_header")
        .with_title("Invalid header")
    }

    /// 401 (400 under seed 001): the request carries no credentials.
    pub fn missing_credentials(realm: &str) -> Self {
        let mut e = Self::unauthorized(
            Challenge::bearer(realm),
            "This request needs credentials: send `Authorization: Bearer <token>`.",
        )
        .with_code("missing_credentials")
        .with_title("Credentials required");
        e.inner.situation = Some(Situation::MissingCredentials);
        e
    }

    /// 401: the credentials sent are unknown, revoked, expired or malformed.
    pub fn invalid_token(realm: &str, detail: impl Into<Cow<'static, str>>) -> Self {
        let detail = detail.into();
        Self::unauthorized(
            Challenge::bearer(realm)
                .error(BearerError::InvalidToken)
                .description(detail.as_ref()),
            detail,
        )
        .with_code("invalid_token")
        .with_title("Invalid credentials")
    }

    /// 401 with the given `WWW-Authenticate` challenge.
    pub fn unauthorized(challenge: Challenge, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::UNAUTHORIZED, detail)
            .header(Challenge::NAME, challenge.header_value())
    }

    /// 403: the identity is known but not allowed to do this.
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::FORBIDDEN, detail)
    }

    /// 403 with RFC 6750's `insufficient_scope` challenge: the token lacks `scope`.
    pub fn insufficient_scope(realm: &str, scope: &str) -> Self {
        Self::build(
            StatusCode::FORBIDDEN,
            format!("This request needs a token with the `{scope}` scope."),
        )
        .with_code("insufficient_scope")
        .with_title("Insufficient scope")
        .header(
            Challenge::NAME,
            Challenge::bearer(realm)
                .error(BearerError::InsufficientScope)
                .scope(scope)
                .header_value(),
        )
    }

    /// 404: a missing resource; say which (`The record identified by 42 could not be found.`).
    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::NOT_FOUND, detail)
    }

    /// 405: `method` is known but this resource supports only `allow`.
    pub fn method_not_allowed(method: &Method, allow: Allow) -> Self {
        let listed = allow
            .methods()
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        Self::build(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("This resource does not support {method}; it supports {listed}."),
        )
        .header(Allow::NAME, allow.header_value())
    }

    /// 406: nothing in `Accept` matches the representations `available`.
    pub fn not_acceptable(available: &[&str]) -> Self {
        Self::build(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "The Accept header admits none of this resource's representations: {}.",
                available.join(", ")
            ),
        )
    }

    /// 408: the client stopped sending its request (headers or body) before it
    /// was complete. A client's fault, never a 504; the connection is closed
    /// after the answer (RFC 9110 section 15.5.9).
    pub fn request_timeout(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::REQUEST_TIMEOUT, detail)
            .header(http::header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// 409: the request conflicts with the current state (a duplicate name, a non-empty collection).
    pub fn conflict(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::CONFLICT, detail)
    }

    /// 410: the resource was removed for good.
    pub fn gone(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::GONE, detail)
    }

    /// 410 (426 with `Upgrade` under seed 003): a retired API version.
    pub fn retired_version(detail: impl Into<Cow<'static, str>>, successor: Upgrade) -> Self {
        let mut e = Self::build(StatusCode::GONE, detail)
            .with_code("retired_version")
            .with_title("API version retired");
        e.inner.situation = Some(Situation::RetiredVersion);
        e.inner.upgrade = Some(successor);
        e
    }

    /// 412: `If-Match` or `If-Unmodified-Since` does not hold; carries the current `ETag`.
    pub fn precondition_failed(current: Option<&EntityTag>) -> Self {
        let e = Self::build(
            StatusCode::PRECONDITION_FAILED,
            "The resource has changed since the version the request's precondition names.",
        );
        match current {
            Some(tag) => e.header(http::header::ETAG, tag.header_value()),
            None => e,
        }
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn content_too_large(limit: u64) -> Self {
        Self::build(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than this endpoint's limit of {limit} bytes."),
        )
    }

    /// 414: the URI is longer than `limit` bytes.
    pub fn uri_too_long(limit: usize) -> Self {
        Self::build(
            StatusCode::URI_TOO_LONG,
            format!("The request URI is longer than the limit of {limit} bytes."),
        )
    }

    /// 415: the body's media type is not one of `accepted`.
    pub fn unsupported_media_type(accepted: AcceptedMediaTypes, got: Option<&str>) -> Self {
        let got = match got {
            Some(t) => format!("`{}`", t.chars().take(100).collect::<String>()),
            None => "no Content-Type".to_string(),
        };
        let name = accepted.header_name();
        let value = accepted.header_value();
        Self::build(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "The request body has {got}; this endpoint takes {}.",
                accepted.types().join(", ")
            ),
        )
        .header(name, value)
    }

    /// 422: well-formed content that breaks the rules; each failing field is named.
    pub fn validation_failed(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => "One field of the request body is not valid.".to_string(),
            n => format!("{n} fields of the request body are not valid."),
        };
        let mut e = Self::build(StatusCode::UNPROCESSABLE_ENTITY, detail)
            .with_code("validation_failed")
            .with_title("Validation failed");
        e.inner.field_errors = errors;
        e
    }

    /// 428: this request must be conditional.
    pub fn precondition_required(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::PRECONDITION_REQUIRED, detail)
    }

    /// 429 (420 under seed 001): a rate limit is used up.
    pub fn rate_limited(retry_after: RetryAfter) -> Self {
        let mut e = Self::build(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "The rate limit is used up; retry in {} seconds.",
                retry_after.seconds()
            ),
        )
        .with_code("rate_limited")
        .with_title("Rate limited")
        .header(RetryAfter::NAME, retry_after.header_value());
        e.inner.situation = Some(Situation::RateLimited);
        e
    }

    /// 429 for a budget of one resource (jobs started per hour, say): unlike
    /// [`rate_limited`](Self::rate_limited), never 420 under seed-001, whose
    /// 429 is "the rate limit exhausted for the resource".
    pub fn resource_rate_limited(
        retry_after: RetryAfter,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::build(StatusCode::TOO_MANY_REQUESTS, detail)
            .with_code("resource_rate_limited")
            .with_title("Resource rate limited")
            .header(RetryAfter::NAME, retry_after.header_value())
    }

    /// 431: the request's headers are too large.
    pub fn header_fields_too_large(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, detail)
    }

    // ---- 5xx -------------------------------------------------------------

    /// 500: an unexpected failure. `cause` goes to the log only, with an incident
    /// id that the client also gets.
    pub fn internal(cause: impl fmt::Display) -> Self {
        let incident = crate::ids::new_id().replace('-', "");
        let mut e = Self::build(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("An unexpected error occurred. Quote incident {incident} when you report it."),
        )
        .with_cause(cause);
        e.inner.incident_id = Some(incident);
        e
    }

    /// 501: the request method is not one the server recognizes.
    pub fn not_implemented(method: &Method) -> Self {
        let shown: String = method.as_str().chars().take(32).collect();
        Self::build(
            StatusCode::NOT_IMPLEMENTED,
            format!("The method {shown} is not recognized by this server."),
        )
        .with_code("unknown_method")
        .with_title("Unknown method")
    }

    /// 502: the upstream is unreachable or did not answer with HTTP.
    pub fn bad_gateway(cause: impl fmt::Display) -> Self {
        Self::build(
            StatusCode::BAD_GATEWAY,
            "The upstream server could not be reached or did not answer with HTTP.",
        )
        .with_cause(cause)
    }

    /// 503 for the reason in `detail`, with `Retry-After`.
    pub fn service_unavailable(
        retry_after: RetryAfter,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::build(StatusCode::SERVICE_UNAVAILABLE, detail)
            .header(RetryAfter::NAME, retry_after.header_value())
    }

    /// 503: shed under load.
    pub fn overloaded(retry_after: RetryAfter) -> Self {
        Self::service_unavailable(
            retry_after,
            "The server is at capacity and shed this request; retry after the delay given.",
        )
        .with_code("overloaded")
        .with_title("Overloaded")
    }

    /// 503: maintenance mode.
    pub fn maintenance(retry_after: RetryAfter) -> Self {
        Self::service_unavailable(
            retry_after,
            "The service is in maintenance; retry after the delay given.",
        )
        .with_code("maintenance")
        .with_title("In maintenance")
    }

    /// 504: the request ran past its deadline.
    pub fn gateway_timeout(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::build(StatusCode::GATEWAY_TIMEOUT, detail)
    }

    // ---- builders ----------------------------------------------------------

    /// The stable snake_case `code` (defaults to the status's, as `not_found`).
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.inner.code = code.into();
        self
    }

    /// A short, human title for this kind of problem (defaults to the reason phrase).
    pub fn with_title(mut self, title: impl Into<Cow<'static, str>>) -> Self {
        self.inner.title = title.into();
        self
    }

    /// Replaces the detail the client reads.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.inner.detail = detail.into();
        self
    }

    /// What went wrong, for the log only: never rendered into a response.
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.inner.cause = Some(cause.to_string());
        self
    }

    /// Adds a member of the application's own to the body (RFC 9457 section
    /// 3.2 "extension members": `balance`, `accounts`...). It appears beside
    /// the standard members in the problem and simple formats, and in each
    /// error's `meta` in JSON:API. The names the formats use themselves
    /// (`type`, `title`, `status`, `detail`, `instance`, `code`, `message`,
    /// `request_id`, `incident_id`, `errors`) are refused: the member is not
    /// added, so it can never hide what the contract says.
    ///
    /// ```
    /// use verdict::ApiError;
    ///
    /// let e = ApiError::forbidden("Your balance is too low.").with_extension("balance", 30);
    /// assert_eq!(e.extensions()["balance"], 30);
    /// ```
    pub fn with_extension(mut self, name: impl Into<String>, value: impl serde::Serialize) -> Self {
        let name = name.into();
        if RESERVED_MEMBERS.contains(&name.as_str()) {
            return self;
        }
        if let Ok(value) = serde_json::to_value(value) {
            self.inner.extensions.insert(name, value);
        }
        self
    }

    /// Adds one failing field.
    pub fn with_field_error(mut self, error: FieldError) -> Self {
        self.inner.field_errors.push(error);
        self
    }

    /// Adds a response header (`ETag`, `Vary`...). Required headers come from the constructors.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.append(name, value);
        self
    }

    // ---- accessors ---------------------------------------------------------

    /// The status, before any preset mapping.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.inner.code
    }

    /// The title.
    pub fn title(&self) -> &str {
        &self.inner.title
    }

    /// The detail for the client.
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// The cause for the log (never rendered).
    pub fn cause(&self) -> Option<&str> {
        self.inner.cause.as_deref()
    }

    /// Per-field errors.
    pub fn field_errors(&self) -> &[FieldError] {
        &self.inner.field_errors
    }

    /// The headers that go with the response.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// The application's own members of the body.
    pub fn extensions(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.inner.extensions
    }

    /// The incident id of a 500, also logged with the cause.
    pub fn incident_id(&self) -> Option<&str> {
        self.inner.incident_id.as_deref()
    }

    /// The preset-dependent situation, if this error is one.
    pub fn situation(&self) -> Option<Situation> {
        self.inner.situation
    }

    /// The `Upgrade` to send if this error ends up as a 426.
    pub fn upgrade(&self) -> Option<&Upgrade> {
        self.inner.upgrade.as_ref()
    }

    /// Logs the error, once, when the normalizing layer sends it, with the
    /// request it answers (its id, method and path); `ran` is how long the
    /// request took. A 500 is an incident (error, with its incident id and
    /// cause); 502-504 are the service's trouble (warn); 501 and 4xx are the
    /// client's (debug).
    pub(crate) fn log(
        &self,
        ran: std::time::Duration,
        request_id: &str,
        method: &Method,
        path: &str,
    ) {
        let status = self.inner.status.as_u16();
        let code = &*self.inner.code;
        let cause = self.inner.cause.as_deref().unwrap_or("-");
        let elapsed_ms = ran.as_secs_f64() * 1000.0;
        let method = method.as_str();
        match status {
            500 => tracing::error!(
                status,
                code,
                incident_id = self.inner.incident_id.as_deref().unwrap_or("-"),
                cause,
                elapsed_ms,
                request_id,
                method,
                path,
                "request failed"
            ),
            502..=599 => tracing::warn!(
                status,
                code,
                cause,
                elapsed_ms,
                request_id,
                method,
                path,
                "request failed"
            ),
            _ => tracing::debug!(
                status,
                code,
                cause,
                request_id,
                method,
                path,
                "request refused"
            ),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.inner.status.as_u16(),
            self.inner.code,
            self.inner.detail
        )
    }
}

/// `?` on any error in a handler: a 500 whose body carries an incident id
/// and nothing of the error, while the log gets the error and its sources.
///
/// (This is why `ApiError` itself is not a `std::error::Error`, like
/// `anyhow::Error`: the blanket conversion would otherwise include it.)
///
/// ```
/// use verdict::ApiError;
///
/// fn load(path: &str) -> Result<String, ApiError> {
///     Ok(std::fs::read_to_string(path)?) // an io::Error becomes a logged 500
/// }
/// let e = load("/no/such/file").unwrap_err();
/// assert_eq!(e.status(), 500);
/// assert!(!e.detail().contains("/no/such/file"));
/// assert!(e.cause().unwrap().contains("No such file"));
/// ```
impl<E: std::error::Error + Send + Sync + 'static> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::internal(chain(&e))
    }
}

/// An error and its sources, `outer: inner: innermost`, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(feature = "anyhow")]
/// `?` on an `anyhow::Error`: a logged 500, as for any error.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::CATALOG;

    #[test]
    fn generic_constructor_refuses_statuses_that_need_headers() {
        for entry in CATALOG {
            let made = ApiError::new(entry.status(), "x");
            assert_eq!(made.is_ok(), entry.requires.is_empty(), "{}", entry.code);
        }
    }

    #[test]
    fn dedicated_constructors_carry_their_required_headers() {
        let cases = [
            ApiError::method_not_allowed(&Method::PUT, Allow::new([Method::GET])),
            ApiError::missing_credentials("api"),
            ApiError::invalid_token("api", "revoked"),
            ApiError::rate_limited(RetryAfter::from_secs(1)),
            ApiError::overloaded(RetryAfter::from_secs(1)),
            ApiError::unsupported_media_type(
                AcceptedMediaTypes::new(Method::POST, ["application/json"]),
                Some("text/plain"),
            ),
        ];
        for e in cases {
            assert_eq!(status::missing_header(e.status(), e.headers()), None, "{e}");
        }
    }

    #[test]
    fn internal_errors_hide_the_cause_but_keep_an_incident_id() {
        let e = ApiError::internal("SELECT * FROM secrets failed at /etc/x.rs:10");
        assert!(!e.detail().contains("SELECT"));
        let id = e.incident_id().unwrap();
        assert!(e.detail().contains(id));
        assert_eq!(
            e.cause(),
            Some("SELECT * FROM secrets failed at /etc/x.rs:10")
        );
    }
}
