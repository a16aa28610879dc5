//! `--openapi FILE`: the upstream's own description, so the gateway answers
//! 404 for a path it does not have, 405 with the exact `Allow` for a method a
//! path does not take, and 406/415 against the media types of each
//! operation, before the upstream sees the request.
//!
//! A JSON request body is checked against the operation's schema: 400 when
//! it is not JSON (or is missing where the body is `required`), 422 naming
//! every failing field (JSON Pointer, up to [`MAX_FIELD_ERRORS`]) when it
//! breaks the schema. `$ref`s into `#/components` resolve; OpenAPI 3.0's
//! schemas are read as JSON Schema draft 4 with `nullable: true` as a
//! `"null"` type, 3.1's as draft 2020-12. Bodies are read whole for this
//! (they are already capped by `--max-body`); operations without a JSON
//! schema stream through untouched.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::handler::Handler;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::Method;
use serde_json::Value;
use verdict::error::FieldError;
use verdict::extract::RawBody;
use verdict::{ApiError, Contract};

/// The most failing fields named in one 422.
pub const MAX_FIELD_ERRORS: usize = 20;

/// The methods an OpenAPI path item may name.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation: its path template, method, and media types.
#[derive(Clone, Debug)]
struct Operation {
    path: String,
    method: Method,
    /// What its 2xx responses may be (empty: not stated, not checked).
    produces: Vec<&'static str>,
    /// What its request body may be (empty: not stated, not checked).
    consumes: Vec<&'static str>,
    /// The schema of its JSON request body, if the document gives one.
    body: Option<Arc<BodySchema>>,
}

/// A compiled request-body schema.
struct BodySchema {
    validator: jsonschema::Validator,
    required: bool,
}

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySchema")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// The operations of a document.
#[derive(Clone, Debug)]
pub struct Document {
    operations: Vec<Operation>,
}

impl Document {
    /// Reads an OpenAPI 3 document (JSON).
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--openapi {}: {e}", file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("--openapi {}: not JSON: {e}", file.display()))?;
        Self::from_value(&doc).map_err(|e| format!("--openapi {}: {e}", file.display()))
    }

    /// The operations of `doc`.
    pub fn from_value(doc: &Value) -> Result<Self, String> {
        let paths = doc["paths"].as_object().ok_or("no `paths`")?;
        let version_30 = doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0"));
        let mut operations = Vec::new();
        for (path, item) in paths {
            if !path.starts_with('/') {
                return Err(format!("the path `{path}` does not start with /"));
            }
            for name in METHODS {
                let Some(op) = item.get(name) else { continue };
                let method = Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                    .expect("a known method");
                let mut produces = Vec::new();
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    if status.starts_with('2') {
                        for media in response["content"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, _)| k)
                        {
                            produces.push(leak(media));
                        }
                    }
                }
                let consumes = op["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| leak(k))
                    .collect();
                produces.sort_unstable();
                produces.dedup();
                let body = body_schema(doc, &op["requestBody"], version_30)
                    .map_err(|e| format!("{} {path}: {e}", method.as_str()))?;
                operations.push(Operation {
                    path: path.clone(),
                    method,
                    produces,
                    consumes,
                    body,
                });
            }
        }
        if operations.is_empty() {
            return Err("no operation in `paths`".into());
        }
        Ok(Document { operations })
    }

    /// A route for each documented path, on its documented methods, to `handler`.
    pub fn routes<H, T, S>(&self, handler: H) -> Router<S>
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let mut by_path: BTreeMap<&str, MethodRouter<S>> = BTreeMap::new();
        for op in &self.operations {
            let filter = MethodFilter::try_from(op.method.clone()).expect("a routable method");
            let mut route = on(filter, handler.clone());
            if let Some(schema) = &op.body {
                route = route.layer(axum::middleware::from_fn_with_state(
                    schema.clone(),
                    check_body,
                ));
            }
            let merged = match by_path.remove(op.path.as_str()) {
                Some(existing) => existing.merge(route),
                None => route,
            };
            by_path.insert(op.path.as_str(), merged);
        }
        by_path
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            })
    }

    /// Every documented path template (for metrics labels).
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.operations.iter().map(|o| o.path.clone()).collect();
        paths.dedup();
        paths
    }

    /// `contract` told what each operation produces and consumes.
    pub fn media_types(&self, mut contract: Contract) -> Contract {
        for op in &self.operations {
            if !op.produces.is_empty() {
                contract =
                    contract.produces(op.method.clone(), &op.path, op.produces.iter().copied());
            }
            if !op.consumes.is_empty() {
                contract =
                    contract.consumes(op.method.clone(), &op.path, op.consumes.iter().copied());
            }
        }
        contract
    }
}

/// The compiled JSON schema of a request body, if it has one.
fn body_schema(
    doc: &Value,
    request_body: &Value,
    version_30: bool,
) -> Result<Option<Arc<BodySchema>>, String> {
    let request_body = resolve(doc, request_body);
    let Some(content) = request_body["content"].as_object() else {
        return Ok(None);
    };
    let Some(schema) = content
        .iter()
        .find(|(media, _)| is_json(media))
        .and_then(|(_, m)| m.get("schema"))
    else {
        return Ok(None);
    };
    // The schema inside a root that carries the document's `components`, so
    // that `#/components/...` references resolve against it.
    let mut root = serde_json::json!({
        "allOf": [schema],
        "components": doc.get("components").cloned().unwrap_or(Value::Null),
    });
    let mut options = jsonschema::options();
    if version_30 {
        nullable_as_type(&mut root);
        options = options.with_draft(jsonschema::Draft::Draft4);
    } else {
        options = options.with_draft(jsonschema::Draft::Draft202012);
    }
    let validator = options
        .build(&root)
        .map_err(|e| format!("the request body's schema does not compile: {e}"))?;
    Ok(Some(Arc::new(BodySchema {
        validator,
        required: request_body["required"].as_bool().unwrap_or(false),
    })))
}

/// A `$ref` to `#/components/...` followed once (a request body may be one).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(&Value::Null),
        None => v,
    }
}

fn is_json(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or("").trim();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// OpenAPI 3.0's `nullable: true` next to a `type`, as JSON Schema says it.
fn nullable_as_type(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), serde_json::json!([t, "null"]));
                }
            }
            map.values_mut().for_each(nullable_as_type);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_as_type),
        _ => {}
    }
}

/// Route layer of an operation with a body schema: 400 for a body that is
/// not JSON, 422 naming the fields that break the schema; else the request
/// goes on with the very bytes the client sent.
async fn check_body(State(schema): State<Arc<BodySchema>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let is_json_body = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    let req = Request::from_parts(parts, body);
    if !is_json_body && !verdict::content_type::has_body(req.headers()) {
        if schema.required {
            return ApiError::malformed_body("This operation takes a JSON request body.")
                .into_response();
        }
        return next.run(req).await;
    }
    if !is_json_body {
        // A body in another media type the document accepts: not ours to read.
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match RawBody::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(RawBody(bytes)) => bytes,
        Err(e) => return e.into_response(),
    };
    let value = match verdict::extract::parse_value(&bytes) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let errors: Vec<FieldError> = schema
        .validator
        .iter_errors(&value)
        .take(MAX_FIELD_ERRORS)
        .map(|e| FieldError::new(e.instance_path().to_string(), clip(e.to_string())))
        .collect();
    if !errors.is_empty() {
        return ApiError::validation_failed(errors).into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// A detail cut to 200 characters (a schema message may quote a long value).
fn clip(mut s: String) -> String {
    if s.len() > 200 {
        let mut end = 197;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// A media type from the document, kept for the process's life (the
/// contract's tables take `&'static str`; a document is read once, at start).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_gives_operations_with_their_media_types() {
        let doc = serde_json::json!({"paths": {"/things/{id}": {
            "get": {"responses": {"200": {"content": {"application/json": {}}}, "404": {}}},
            "put": {"requestBody": {"content": {"application/json": {}}}},
        }}});
        let d = Document::from_value(&doc).unwrap();
        assert_eq!(d.operations.len(), 2);
        assert_eq!(d.operations[0].produces, vec!["application/json"]);
        assert!(Document::from_value(&serde_json::json!({"paths": {}})).is_err());
    }

    #[test]
    fn body_schemas_resolve_component_refs_and_read_30s_nullable() {
        let doc = serde_json::json!({
            "openapi": "3.0.3",
            "components": {"schemas": {"Thing": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"}, "note": {"type": "string", "nullable": true}},
            }}},
            "paths": {"/things": {"post": {"requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}}},
        });
        let d = Document::from_value(&doc).unwrap();
        let body = d.operations[0].body.as_ref().expect("a schema");
        assert!(body.required);
        assert!(body
            .validator
            .is_valid(&serde_json::json!({"name": "a", "note": null})));
        assert!(!body.validator.is_valid(&serde_json::json!({"note": "x"})));
        assert!(!body.validator.is_valid(&serde_json::json!({"name": 1})));
    }
}
