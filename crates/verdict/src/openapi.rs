//! The contract in an adopter's OpenAPI document (utoipa; the `utoipa`
//! feature): every error response each operation may get, in the body
//! format the preset sends, with the headers its status requires.
//!
//! Add [`ContractResponses`] as a modifier of the document: it walks every
//! operation and adds what the stack may answer there (and was not already
//! documented): 400, 404, 405, 406, 414, 431, 500, 503 everywhere; 401 and
//! 403 where the operation needs credentials; 408, 413, 415 and 422 where it
//! takes a body; 429 with `Retry-After` and `RateLimit-*` when requests are
//! rate limited; 504 when requests have a deadline; 304 and `ETag` for GET;
//! 412 with the current `ETag` for PUT, PATCH and DELETE (`If-Match`).
//! Every status is mapped by the preset (seed-004 documents 400 where
//! standard documents 413), and its body is the preset's format, defined once
//! under `components/schemas`.
//!
//! ```
//! use utoipa::openapi::{OpenApiBuilder, PathsBuilder, path::{HttpMethod, OperationBuilder, PathItem}};
//! use utoipa::Modify;
//! use verdict::openapi::ContractResponses;
//! use verdict::Preset;
//!
//! let mut doc = OpenApiBuilder::new()
//!     .paths(PathsBuilder::new().path("/todos", PathItem::new(HttpMethod::Get, OperationBuilder::new())))
//!     .build();
//! ContractResponses::new(Preset::standard()).modify(&mut doc);
//! let get = doc.paths.paths["/todos"].get.as_ref().unwrap();
//! assert!(get.responses.responses.contains_key("406"));
//! ```
//!
//! [`ApiError`] is also `utoipa::IntoResponses` (its statuses, for an
//! operation's `responses(...)`), and [`Json`],
//! [`Query`] and [`Path`] pass their inner type's
//! schema or parameters through, as axum's own do with utoipa.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use serde_json::{json, Value};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{Components, OpenApi, RefOr};
use utoipa::{IntoParams, IntoResponses, Modify, PartialSchema, ToSchema};

use crate::error::{ApiError, Situation};
use crate::extract::{Json, Path, Query};
use crate::format::ErrorFormat;
use crate::preset::Preset;
use crate::status::{self, RequiredHeader};

/// Adds the contract's error responses to every operation of a document.
#[derive(Clone, Debug)]
pub struct ContractResponses {
    preset: Preset,
    rate_limited: bool,
    deadline: bool,
}

impl ContractResponses {
    /// The responses `preset` sends, with rate limits and deadlines.
    pub fn new(preset: Preset) -> Self {
        ContractResponses {
            preset,
            rate_limited: true,
            deadline: true,
        }
    }

    /// Whether requests are rate limited (429 and `RateLimit-*`; default yes).
    pub fn rate_limited(mut self, on: bool) -> Self {
        self.rate_limited = on;
        self
    }

    /// Whether requests have a deadline (504; default yes).
    pub fn deadline(mut self, on: bool) -> Self {
        self.deadline = on;
        self
    }

    /// The statuses an operation may get from the stack, as the preset sends them.
    fn statuses(&self, method: &Method, credentials: bool, body: bool) -> BTreeSet<u16> {
        let mut raw: Vec<StatusCode> = [400, 404, 405, 406, 414, 431, 500, 503]
            .iter()
            .map(|c| StatusCode::from_u16(*c).expect("valid"))
            .collect();
        if credentials {
            raw.push(self.preset.status_for(Situation::MissingCredentials));
            raw.extend([StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]);
        }
        if body {
            raw.push(self.preset.status_for(Situation::MalformedBody));
            raw.extend([408, 413, 415, 422].map(|c| StatusCode::from_u16(c).expect("valid")));
        }
        if self.rate_limited {
            raw.push(self.preset.status_for(Situation::RateLimited));
        }
        if self.deadline {
            raw.push(StatusCode::GATEWAY_TIMEOUT);
        }
        if *method == Method::GET {
            raw.push(StatusCode::NOT_MODIFIED);
        }
        if [Method::PUT, Method::PATCH, Method::DELETE].contains(method) {
            // A write may be conditional (`If-Match`): `Preconditions::check_write`.
            raw.push(StatusCode::PRECONDITION_FAILED);
        }
        raw.into_iter()
            .map(|s| self.preset.map(s).as_u16())
            .collect()
    }

    fn schema_name(&self) -> &'static str {
        match self.preset.format() {
            ErrorFormat::Problem => "Problem",
            ErrorFormat::JsonApi => "JsonApiErrors",
            ErrorFormat::Simple => "SimpleError",
        }
    }

    /// The response object of `code` for an operation with `method`.
    fn response(&self, code: u16, method: &Method) -> Option<Response> {
        let status = StatusCode::from_u16(code).ok()?;
        let mut headers = serde_json::Map::new();
        let header =
            |description: &str| json!({"description": description, "schema": {"type": "string"}});
        headers.insert(
            "X-Request-Id".into(),
            header("The request's id (the client's own, if it sent one), also in the log."),
        );
        for required in status::required_headers(status) {
            let (name, what) = match required {
                RequiredHeader::Allow => ("Allow", "The methods the resource supports."),
                RequiredHeader::WwwAuthenticate => (
                    "WWW-Authenticate",
                    "The bearer challenge (RFC 6750), with `error=\"invalid_token\"` when a token was given.",
                ),
                RequiredHeader::RetryAfter => ("Retry-After", "Seconds to wait before retrying (at least 1)."),
                RequiredHeader::AcceptPostOrPatch if *method == Method::PATCH => {
                    ("Accept-Patch", "The media types the endpoint takes.")
                }
                RequiredHeader::AcceptPostOrPatch => ("Accept-Post", "The media types the endpoint takes."),
                RequiredHeader::Upgrade => ("Upgrade", "The API version to move to."),
                RequiredHeader::Location => ("Location", "Where the resource is."),
            };
            headers.insert(name.into(), header(what));
        }
        if self.rate_limited && matches!(code, 420 | 429) {
            for (name, what) in [
                ("RateLimit-Limit", "The requests the budget allows."),
                ("RateLimit-Remaining", "The requests left."),
                (
                    "RateLimit-Reset",
                    "Seconds until the budget is whole again.",
                ),
            ] {
                headers.insert(name.into(), header(what));
            }
        }
        let entry = status::lookup(status);
        let description = match entry {
            Some(e) => format!("{}: {}", e.reason, e.meaning),
            None => status::reason(status).to_string(),
        };
        let mut response = json!({"description": description, "headers": headers});
        if code == 304 || code == 412 {
            response["headers"]["ETag"] = header("The current representation's entity tag.");
        }
        if code >= 400 {
            response["content"] = json!({
                self.preset.format().content_type(): {
                    "schema": {"$ref": format!("#/components/schemas/{}", self.schema_name())}
                }
            });
        }
        serde_json::from_value(response).ok()
    }

    fn add_schemas(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        for (name, schema) in error_schemas() {
            if let Ok(schema) = serde_json::from_value::<Schema>(schema) {
                components
                    .schemas
                    .entry(name.to_string())
                    .or_insert(RefOr::T(schema));
            }
        }
    }

    fn modify_operation(&self, method: &Method, op: &mut Operation, doc_security: bool) {
        let credentials = match &op.security {
            Some(requirements) => !requirements.is_empty(),
            None => doc_security,
        };
        let body = op.request_body.is_some();
        for code in self.statuses(method, credentials, body) {
            let key = code.to_string();
            if op.responses.responses.contains_key(&key) {
                continue;
            }
            if let Some(response) = self.response(code, method) {
                op.responses.responses.insert(key, RefOr::T(response));
            }
        }
        if *method == Method::GET {
            if let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") {
                if let Ok(etag) = serde_json::from_value(json!({
                    "description": "The representation's entity tag, for If-None-Match and If-Match.",
                    "schema": {"type": "string"}
                })) {
                    ok.headers.entry("ETag".to_string()).or_insert(etag);
                }
            }
        }
    }
}

impl Modify for ContractResponses {
    fn modify(&self, doc: &mut OpenApi) {
        self.add_schemas(doc);
        let doc_security = doc.security.as_ref().is_some_and(|s| !s.is_empty());
        for item in doc.paths.paths.values_mut() {
            for (method, op) in [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
                (Method::OPTIONS, &mut item.options),
                (Method::TRACE, &mut item.trace),
            ] {
                if let Some(op) = op {
                    self.modify_operation(&method, op, doc_security);
                }
            }
        }
    }
}

/// The schemas of the three error formats, as `components/schemas` holds them.
fn error_schemas() -> [(&'static str, Value); 4] {
    let string = json!({"type": "string"});
    [
        (
            "FieldError",
            json!({"type": "object", "required": ["pointer", "detail"],
                "description": "A failing field of the request body, named by a JSON Pointer (RFC 6901).",
                "properties": {"pointer": string, "detail": string}}),
        ),
        (
            "Problem",
            json!({"type": "object", "description": "RFC 9457 problem details (application/problem+json).",
                "required": ["type", "title", "status", "detail", "code"],
                "properties": {
                    "type": {"type": "string", "description": "A page that says what the problem means."},
                    "title": string, "status": {"type": "integer"}, "detail": string,
                    "instance": string,
                    "code": {"type": "string", "description": "A stable snake_case name of the problem."},
                    "request_id": string,
                    "incident_id": {"type": "string", "description": "Of a 500: the same id is in the server's log."},
                    "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}},
                "additionalProperties": true}),
        ),
        (
            "JsonApiErrors",
            json!({"type": "object", "description": "JSON:API error objects (application/vnd.api+json).",
                "required": ["errors"],
                "properties": {"errors": {"type": "array", "items": {"type": "object",
                    "required": ["status", "code", "title", "detail"],
                    "properties": {"id": string, "status": string, "code": string, "title": string,
                        "detail": string,
                        "source": {"type": "object", "properties": {"pointer": string}},
                        "meta": {"type": "object", "additionalProperties": true}}}}}}),
        ),
        (
            "SimpleError",
            json!({"type": "object", "description": "`{\"code\", \"message\"}` (application/json).",
                "required": ["code", "message"],
                "properties": {"code": string, "message": string,
                    "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}}},
                "additionalProperties": true}),
        ),
    ]
}

/// The statuses an [`ApiError`] of the standard preset may have, as
/// problem details: for an operation's `responses(...)`.
impl IntoResponses for ApiError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let contract = ContractResponses::new(Preset::standard());
        contract
            .statuses(&Method::POST, true, true)
            .into_iter()
            .filter(|c| *c >= 400)
            .filter_map(|c| {
                Some((
                    c.to_string(),
                    RefOr::T(contract.response(c, &Method::POST)?),
                ))
            })
            .collect()
    }
}

impl<T: ToSchema> PartialSchema for Json<T> {
    fn schema() -> RefOr<Schema> {
        T::schema()
    }
}

impl<T: ToSchema> ToSchema for Json<T> {
    fn name() -> Cow<'static, str> {
        T::name()
    }
}

impl<T: IntoParams> IntoParams for Query<T> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<utoipa::openapi::path::Parameter> {
        T::into_params(|| Some(ParameterIn::Query))
    }
}

impl<T: IntoParams> IntoParams for Path<T> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<utoipa::openapi::path::Parameter> {
        T::into_params(|| Some(ParameterIn::Path))
    }
}
