//! `POST /v1/batch`: up to 100 operations, each run through the whole service
//! (every layer, the caller's credentials, its rate limit) as if sent alone;
//! the answer is 207 with one status and body per operation.
//!
//! The answer is bounded: the operations' bodies together take at most
//! [`MAX_BATCH_RESPONSE`] bytes. The operation whose body would pass it keeps
//! its status and headers (it ran) but gets, instead of its body, an `error`
//! saying so; the operations after it are not run (so a batch of a hundred
//! large reads costs what its answer can hold, not a hundred reads), and
//! each reports `"status": null` with an `error` saying to send it again.
//! Bodies are embedded as the JSON they are, not parsed and written again.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tower::ServiceExt;
use verdict::{ApiError, FieldError, Json};

use crate::problems::Problem;

use crate::http::fail::Reply;
use crate::state::AppState;

/// Most operations in one batch.
pub const MAX_OPERATIONS: usize = 100;
/// The most bytes the operations' bodies take in one batch's answer.
pub const MAX_BATCH_RESPONSE: usize = 8 << 20;

/// One operation's result (`status` is `None` for one that was not run).
#[derive(Serialize)]
struct OpResult {
    status: Option<u16>,
    headers: BTreeMap<String, String>,
    body: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

/// The body of `POST /v1/batch`: the operations to run, in order.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    operations: Vec<Operation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Operation {
    method: String,
    path: String,
    body: Option<Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Headers an operation may not set: they come from the operation itself (ignored).
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// Headers of an operation's answer worth returning.
const KEPT: [HeaderName; 6] = [
    header::LOCATION,
    header::ETAG,
    header::LAST_MODIFIED,
    header::RETRY_AFTER,
    header::ALLOW,
    header::CONTENT_TYPE,
];

fn check(batch: &Batch) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if batch.operations.is_empty() || batch.operations.len() > MAX_OPERATIONS {
        errors.push(FieldError::new(
            "/operations",
            format!("must hold 1 to {MAX_OPERATIONS} operations"),
        ));
    }
    for (i, op) in batch.operations.iter().enumerate() {
        if Method::from_bytes(op.method.as_bytes()).is_err() {
            errors.push(FieldError::new(
                format!("/operations/{i}/method"),
                "must be an HTTP method",
            ));
        }
        if !op.path.starts_with('/') || op.path.parse::<http::Uri>().is_err() {
            errors.push(FieldError::new(
                format!("/operations/{i}/path"),
                "must be a path starting with /",
            ));
        } else if op.path.starts_with("/v1/batch") {
            errors.push(FieldError::new(
                format!("/operations/{i}/path"),
                "may not be a batch",
            ));
        }
        for name in op.headers.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                errors.push(FieldError::new(
                    format!(
                        "/operations/{i}/headers/{}",
                        name.replace('~', "~0").replace('/', "~1")
                    ),
                    "is not a header an operation may set",
                ));
            }
        }
        for (name, value) in &op.headers {
            if !value.chars().all(|c| (' '..='~').contains(&c))
                || HeaderValue::from_str(value).is_err()
            {
                errors.push(FieldError::new(
                    format!("/operations/{i}/headers/{name}"),
                    "must be visible ASCII",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation_failed(errors))
    }
}

/// `POST /v1/batch`.
pub async fn run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Json(batch): Json<Batch>,
) -> Reply {
    check(&batch)?;
    let app = st
        .app
        .get()
        .cloned()
        .ok_or_else(|| ApiError::internal("batch before the app was built"))?;
    let request_id = headers
        .get(verdict::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("batch")
        .to_string();
    let mut results = Vec::with_capacity(batch.operations.len());
    let mut budget = MAX_BATCH_RESPONSE;
    let mut full = false;
    for (i, op) in batch.operations.into_iter().enumerate() {
        if full {
            results.push(OpResult {
                status: None,
                headers: BTreeMap::new(),
                body: None,
                error: Some(json!({
                    "code": Problem::BatchResponseFull.code(),
                    "detail": format!(
                        "Not run: the batch's answer reached its limit of {MAX_BATCH_RESPONSE} bytes \
                         before this operation; send it again in another batch."
                    ),
                })),
            });
            continue;
        }
        let method = Method::from_bytes(op.method.as_bytes()).expect("checked");
        let mut req = Request::builder().method(method.clone()).uri(&op.path);
        // The caller's credentials and preferences, unless the operation sets its own.
        for name in [header::AUTHORIZATION, header::ACCEPT] {
            if let Some(v) = headers.get(&name) {
                if !op
                    .headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case(name.as_str()))
                {
                    req = req.header(name, v.clone());
                }
            }
        }
        req = req.header(verdict::request_id::HEADER, format!("{request_id}-{i}"));
        let body = match &op.body {
            Some(b) => {
                if !op
                    .headers
                    .keys()
                    .any(|k| k.eq_ignore_ascii_case("content-type"))
                {
                    let ct = if method == Method::PATCH {
                        "application/merge-patch+json"
                    } else {
                        "application/json"
                    };
                    req = req.header(header::CONTENT_TYPE, ct);
                }
                let bytes = serde_json::to_vec(b).expect("values serialize");
                req = req.header(header::CONTENT_LENGTH, bytes.len());
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        for (k, v) in &op.headers {
            // Framing comes from the operation itself.
            if FRAMING.iter().any(|f| k.eq_ignore_ascii_case(f)) {
                continue;
            }
            req = req.header(k.as_str(), v.as_str());
        }
        let request = req.body(body).map_err(ApiError::internal)?;
        let Ok(res) = app.clone().oneshot(request).await;
        let (parts, body) = res.into_parts();
        let kept: BTreeMap<String, String> = KEPT
            .iter()
            .filter_map(|n| {
                Some((
                    n.to_string(),
                    parts.headers.get(n)?.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        let status = Some(parts.status.as_u16());
        // The body, if it fits what is left of the answer's budget.
        let bytes = match axum::body::to_bytes(body, budget).await {
            Ok(bytes) => bytes,
            Err(_) => {
                full = true;
                results.push(OpResult {
                    status,
                    headers: kept,
                    body: None,
                    error: Some(json!({
                        "code": Problem::BatchResponseTooLarge.code(),
                        "detail": format!(
                            "This operation ran, but its answer would pass the {MAX_BATCH_RESPONSE} bytes \
                             a batch's answer may take ({budget} were left); send it on its own."
                        ),
                    })),
                });
                continue;
            }
        };
        budget -= bytes.len();
        results.push(OpResult {
            status,
            headers: kept,
            body: embed(bytes),
            error: None,
        });
    }
    #[derive(Serialize)]
    struct Answer {
        results: Vec<OpResult>,
    }
    // Serialized from the raw bodies (a `json!` would parse each one again).
    let body = serde_json::to_vec(&Answer { results }).map_err(ApiError::internal)?;
    Ok((
        StatusCode::MULTI_STATUS,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// An operation's body in the result: its JSON as it is, other text as a
/// string, nothing as `null`.
fn embed(bytes: bytes::Bytes) -> Option<Box<RawValue>> {
    if bytes.is_empty() {
        return None;
    }
    let text = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match RawValue::from_string(text) {
        Ok(raw) => Some(raw),
        Err(_) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            RawValue::from_string(Value::String(text).to_string()).ok()
        }
    }
}
