//! `POST /v1/batch`: up to 100 operations, each run through the whole service
//! (every layer, the caller's credentials, its rate limit) as if sent alone;
//! the answer is 207 with one status and body per operation.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use verdict::{ApiError, FieldError, Json};

use crate::fail::Reply;
use crate::state::AppState;

/// Most operations in one batch.
pub const MAX_OPERATIONS: usize = 100;
/// Largest body an operation's answer may have in the batch result.
const MAX_RESULT_BODY: usize = 4 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    operations: Vec<Operation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
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
    for (i, op) in batch.operations.into_iter().enumerate() {
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
        // An answer too large to include is reported as such: the operation
        // ran, and the others still get their results.
        let Ok(bytes) = axum::body::to_bytes(body, MAX_RESULT_BODY).await else {
            results.push(
                json!({"status": parts.status.as_u16(), "headers": {}, "body": null,
                "body_omitted": format!("larger than {MAX_RESULT_BODY} bytes")}),
            );
            continue;
        };
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        let kept: BTreeMap<String, String> = KEPT
            .iter()
            .filter_map(|n| {
                Some((
                    n.to_string(),
                    parts.headers.get(n)?.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        results.push(json!({"status": parts.status.as_u16(), "headers": kept, "body": body}));
    }
    Ok((
        StatusCode::MULTI_STATUS,
        axum::Json(json!({ "results": results })),
    )
        .into_response())
}
