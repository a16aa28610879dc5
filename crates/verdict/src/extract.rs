//! Extractors with typed rejections that speak the client's language:
//! [`Json`] tells a body that is not JSON (400, or 422 under some presets)
//! from JSON whose content is wrong (422, each field named by JSON Pointer),
//! and [`Query`] names the query parameter that is wrong (400).
//!
//! Neither echoes serde's or Rust's internals (`struct CreateToken`, `u32`):
//! messages are rewritten in JSON's terms (`must be an integer`).
//!
//! JSON is read strictly, so that what the handler sees is what the client
//! meant: an object with the same key twice is malformed (400 naming the key,
//! not "last one wins"), and an integer outside what 64 bits hold, or a
//! number outside a double's range, is refused with 422 naming the field
//! instead of silently becoming an approximate float.
//! [`RawBody`] reads a body whole for handlers that parse it themselves.
//! A body that stops arriving is a 408 (see `verdict::body_timeout`).
//!
//! ```
//! use axum::{routing::post, Router};
//! use serde::Deserialize;
//! use verdict::Json;
//!
//! #[derive(Deserialize)]
//! struct NewItem { name: String, price: u32 }
//!
//! async fn create(Json(item): Json<NewItem>) -> String {
//!     format!("{} costs {}", item.name, item.price)
//! }
//!
//! let app: Router = Router::new().route("/items", post(create));
//! // `{"name": 1}` -> 422 with errors [{"pointer": "/name", "detail": "must be a string, not an integer"}, ...]
//! ```

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::body_limit::{BodyLimit, DEFAULT_MAX_BODY};
use crate::body_timeout::BodyProgress;
use crate::content_type::media_type;
use crate::error::FieldError;
use crate::headers::AcceptedMediaTypes;
use crate::ApiError;

/// A JSON request body deserialized into `T` (also a JSON response).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

fn is_json_media_type(t: &str) -> bool {
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let method = req.method().clone();
        match media_type(req.headers()) {
            Some(t) if is_json_media_type(&t) => {}
            got => {
                let accepted = crate::content_type::default_media_types(&method);
                return Err(ApiError::unsupported_media_type(
                    AcceptedMediaTypes::new(method, accepted.iter().copied()),
                    got.as_deref(),
                ));
            }
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = read_body(req, state, limit).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads the whole body: 413 over the limit, 408 if it stopped arriving.
pub(crate) async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: Option<u64>,
) -> Result<Bytes, ApiError> {
    let progress = req.extensions().get::<BodyProgress>().cloned();
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if progress.as_ref().is_some_and(BodyProgress::timed_out) {
            ApiError::request_timeout(
                "The request body stopped arriving before it was complete; send it again.",
            )
        } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::content_too_large(limit.unwrap_or(DEFAULT_MAX_BODY))
        } else {
            ApiError::bad_request("The request body could not be read.")
                .with_cause(rejection.body_text())
        }
    })
}

/// The request body, read whole (for handlers that parse it themselves):
/// 413 over the route's limit, 408 if it stopped arriving, 400 if the
/// connection broke off.
#[derive(Clone, Debug, Default)]
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        read_body(req, state, limit).await.map(RawBody)
    }
}

/// Deserializes an already-parsed JSON body into `T`: 422 naming every
/// failing field (up to 20).
///
/// For handlers that keep the contract's order (404 missing resource, then
/// 412, then 422): extract `Json<serde_json::Value>` (only syntax is checked,
/// 400), look the resource up, check preconditions, then call this.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    match T::deserialize(&value) {
        Ok(t) => Ok(t),
        Err(_) => Err(invalid_content::<T>(value, None)),
    }
}

/// The 422 for `value`, which does not deserialize into `T`: every failing
/// field, in the order they come in `text` when it is known.
fn invalid_content<T: DeserializeOwned>(value: serde_json::Value, text: Option<&[u8]>) -> ApiError {
    let mut errors = collect::all_errors::<T>(value);
    if let Some(text) = text {
        let pointers: Vec<String> = errors.iter().map(|(p, _)| p.clone()).collect();
        let places = strict::positions(text, &pointers);
        let mut placed: Vec<(usize, (String, String))> = places.into_iter().zip(errors).collect();
        placed.sort_by_key(|(at, _)| *at);
        errors = placed.into_iter().map(|(_, e)| e).collect();
    }
    if errors.is_empty() {
        // Unreachable in practice: the lenient pass found what serde refused.
        errors.push((String::new(), "is not valid".to_string()));
    }
    ApiError::validation_failed(
        errors
            .into_iter()
            .map(|(pointer, detail)| FieldError::new(pointer, detail))
            .collect(),
    )
}

/// Parses `bytes` as JSON into `T`: 400 (malformed, or a key given twice in
/// one object) or 422 (wrong content, naming every failing field in document
/// order, or a number it cannot keep exactly).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_value(bytes)?;
    match serde_json::from_value::<T>(value) {
        Ok(t) => Ok(t),
        // The value was moved into the attempt: read it again, only on this path.
        Err(_) => Err(invalid_content::<T>(parse_value(bytes)?, Some(bytes))),
    }
}

/// Parses `bytes` as a JSON value, strictly (see the module's docs).
pub fn parse_value(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_body(
            "The request body is empty; send a JSON document.",
        ));
    }
    let value = match serde_json::from_slice::<strict::Strict>(bytes) {
        Ok(strict::Strict(value)) => value,
        Err(e) => return Err(syntax_error(bytes, &e)),
    };
    if strict::may_hold_a_long_integer(bytes) {
        if let Some(pointer) = strict::find_number(bytes, strict::integer_out_of_range) {
            return Err(ApiError::validation_failed(vec![FieldError::new(
                pointer,
                "is an integer too large to keep exactly (the range is -9223372036854775808 to 18446744073709551615); send it as a string",
            )]));
        }
    }
    Ok(value)
}

/// The 400 (or 422) for a body serde_json could not read.
fn syntax_error(bytes: &[u8], e: &serde_json::Error) -> ApiError {
    let at = format!("at line {}, column {}", e.line(), e.column());
    if e.is_data() {
        // The one data error of a strict parse: a key given twice.
        let key = strict::duplicate_key_of(e);
        let pointer = strict::pointer_of_duplicate(bytes).unwrap_or_default();
        return ApiError::malformed_body(format!(
            "The request body gives the key `{key}` twice in the object at `{pointer}` ({at}); each key may appear once."
        ));
    }
    let message = e.to_string();
    let problem = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(m, _)| m);
    if problem == "number out of range" {
        if let Some(pointer) = strict::find_number(bytes, strict::float_out_of_range) {
            return ApiError::validation_failed(vec![FieldError::new(
                pointer,
                "is a number outside the range of a 64-bit floating point number",
            )]);
        }
    }
    ApiError::malformed_body(format!(
        "The request body is not valid JSON: {problem} {at}."
    ))
}

/// A serde path as a JSON Pointer (RFC 6901 escapes).
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Serde's expectation in JSON's terms.
fn json_kind(expected: &str) -> String {
    let e = expected.trim();
    let kind = if e.starts_with("struct ") || e == "a map" || e.starts_with("map") {
        "an object"
    } else if e.starts_with("a sequence") || e.starts_with("tuple") || e.starts_with("an array") {
        "an array"
    } else if e.starts_with("enum ") {
        "one of the allowed values"
    } else if e == "a string" || e == "a borrowed string" || e == "a character" || e == "char" {
        "a string"
    } else if e == "a boolean" || e == "bool" {
        "a boolean"
    } else if ["u8", "u16", "u32", "u64", "u128", "usize"].contains(&e) {
        "a non-negative integer"
    } else if ["i8", "i16", "i32", "i64", "i128", "isize"].contains(&e) || e == "integer" {
        "an integer"
    } else if e == "f32" || e == "f64" || e == "a number" {
        "a number"
    } else if e == "unit" || e == "null" {
        "null"
    } else if e.contains("struct") || e.contains("::") {
        "a value of another type"
    } else {
        return e.to_string();
    };
    kind.to_string()
}

/// What serde found, in JSON's terms (`integer `5`` -> `an integer`).
fn json_found(found: &str) -> &'static str {
    let f = found.trim();
    if f.starts_with("string") {
        "a string"
    } else if f.starts_with("integer") {
        "an integer"
    } else if f.starts_with("floating point") {
        "a number"
    } else if f.starts_with("boolean") {
        "a boolean"
    } else if f.starts_with("sequence") {
        "an array"
    } else if f.starts_with("map") {
        "an object"
    } else if f.starts_with("unit") || f.starts_with("null") {
        "null"
    } else {
        "another value"
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = s.split_once(start)?.1;
    Some(rest.split_once(end).map_or(rest, |(a, _)| a))
}

/// Rewrites a serde message for the client; returns the pointer it is about
/// (a missing or unknown field names itself) and the detail.
fn client_message(pointer: &str, message: &str) -> (String, String) {
    if let Some(field) = between(message, "missing field `", "`") {
        // The path stops at the object that lacks the field.
        let field = field.replace('~', "~0").replace('/', "~1");
        return (format!("{pointer}/{field}"), "is required".to_string());
    }
    if message.starts_with("unknown field `") {
        // The path already ends at the unknown field itself.
        return (pointer.to_string(), "is not an allowed field".to_string());
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        return (
            pointer.to_string(),
            format!("must be {}, not {}", json_kind(expected), json_found(found)),
        );
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return (
            pointer.to_string(),
            format!("must be {}", json_kind(expected)),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let variants = rest.split_once("expected ").map_or("", |(_, v)| v);
        return (pointer.to_string(), format!("must be {variants}"));
    }
    if message.starts_with("invalid length") {
        let expected = message.split_once(", expected ").map_or("", |(_, e)| e);
        if expected.contains("struct ") || expected.contains("::") {
            return (pointer.to_string(), "must be an object".to_string());
        }
        return (pointer.to_string(), format!("must have {expected}"));
    }
    // Messages of the application's own `Deserialize` impls are meant for clients.
    let safe = !message.contains("struct ") && !message.contains("::");
    let detail = if safe { message } else { "is not valid" };
    (pointer.to_string(), detail.to_string())
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters deserialized into `T` (as axum's `Path`); one that does
/// not parse is a 400 that names it (`The path parameter `id` is not valid:
/// must be a non-negative integer`), not axum's plain-text rejection.
///
/// ```
/// use axum::{routing::get, Router};
/// use verdict::Path;
///
/// async fn show(Path(id): Path<u32>) -> String {
///     id.to_string()
/// }
///
/// let app: Router = Router::new().route("/todos/{id}", get(show));
/// // GET /todos/abc -> 400 {"code": "invalid_path_parameter", "detail": "The path parameter `id` ..."}
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        let rejection = match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => return Ok(Path(value)),
            Err(r) => r,
        };
        let PathRejection::FailedToDeserializePathParams(failed) = rejection else {
            return Err(ApiError::internal(format!(
                "the Path extractor on a route without those parameters: {rejection}"
            )));
        };
        // A lone parameter's name is not in the error: find it by its value.
        let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .ok();
        let name_of = |value: &str| -> String {
            raw.as_ref()
                .and_then(|raw| {
                    raw.iter()
                        .find(|(_, v)| *v == value)
                        .map(|(k, _)| k.to_string())
                })
                .unwrap_or_else(|| "parameter".to_string())
        };
        let (name, detail) = match failed.into_kind() {
            ErrorKind::ParseErrorAtKey {
                key, expected_type, ..
            } => (key, format!("must be {}", json_kind(expected_type))),
            ErrorKind::ParseError {
                value,
                expected_type,
            } => (
                name_of(&value),
                format!("must be {}", json_kind(expected_type)),
            ),
            ErrorKind::ParseErrorAtIndex {
                index,
                expected_type,
                ..
            } => (
                format!("#{}", index + 1),
                format!("must be {}", json_kind(expected_type)),
            ),
            ErrorKind::InvalidUtf8InPathParam { key } => (key, "is not valid UTF-8".to_string()),
            ErrorKind::DeserializeError { key, message, .. } => {
                let (_, detail) = client_message("", &message);
                (key, detail)
            }
            other => {
                return Err(ApiError::internal(format!(
                    "path parameters do not fit the Path extractor's type: {other}"
                )))
            }
        };
        Err(ApiError::invalid_path_parameter(&name, detail))
    }
}

/// Query parameters deserialized into `T`; a bad one is a 400 that names it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let pointer = pointer_of(e.path());
                let message = e.inner().to_string();
                let (pointer, detail) = client_message(&pointer, &message);
                let name = pointer.trim_start_matches('/');
                let detail = if detail == message && message.contains("invalid digit") {
                    "must be an integer".to_string()
                } else if message.contains("invalid digit") || message.contains("invalid float") {
                    "must be a number".to_string()
                } else {
                    detail
                };
                if name.is_empty() {
                    ApiError::bad_request(format!("The query string is not valid: {detail}."))
                        .with_code("invalid_query")
                } else {
                    ApiError::invalid_query(name, detail)
                }
            })
    }
}

mod collect;
mod strict;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    #[serde(deny_unknown_fields)]
    struct Item {
        name: String,
        price: u32,
        tags: Option<Vec<String>>,
    }

    fn err(body: &str) -> ApiError {
        parse_json::<Item>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn syntax_errors_are_malformed_bodies() {
        let e = err("{\"name\": ");
        assert_eq!(e.code(), "malformed_body");
        assert!(e.detail().contains("line 1"), "{}", e.detail());
        assert_eq!(err("").code(), "malformed_body");
    }

    #[test]
    fn content_errors_name_the_field_without_rust_internals() {
        let e = err(r#"{"name": 5, "price": 1}"#);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.field_errors()[0],
            FieldError::new("/name", "must be a string, not an integer")
        );
        let e = err(r#"{"name": "a"}"#);
        assert_eq!(
            e.field_errors()[0],
            FieldError::new("/price", "is required")
        );
        let e = err(r#"{"name": "a", "price": -1}"#);
        assert_eq!(e.field_errors()[0].pointer, "/price");
        assert!(
            !e.field_errors()[0].detail.contains("u32"),
            "{:?}",
            e.field_errors()
        );
        let e = err(r#"{"name": "a", "price": 1, "tags": [1]}"#);
        assert_eq!(e.field_errors()[0].pointer, "/tags/0");
        let e = err(r#"[1]"#);
        assert!(
            !e.field_errors()[0].detail.contains("struct"),
            "{:?}",
            e.field_errors()
        );
        let e = err(r#"{"name": "a", "price": 1, "x/y": 1}"#);
        assert_eq!(e.field_errors()[0].pointer, "/x~1y");
    }
}
