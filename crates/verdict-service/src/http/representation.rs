//! Representations with their validators: a JSON body sent with a strong
//! `ETag` (a hash of the bytes sent) and `Last-Modified`, and the JSON of a
//! collection.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use verdict::conditional::{EntityTag, Validators};

use crate::model::time::{rfc3339, system_time};
use crate::storage::CollectionRow;
use crate::surface::urls;

/// The JSON of a collection.
pub fn collection_json(c: &CollectionRow) -> Value {
    json!({
        "name": c.name,
        "schema": c.schema,
        "unique": c.unique,
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "records": urls::records(&c.name),
    })
}

/// A JSON response with strong `ETag` and `Last-Modified`.
pub fn tagged(status: StatusCode, body: &impl Serialize, updated_at: i64) -> Response {
    let bytes = serde_json::to_vec(body).expect("values serialize");
    let validators = validators_of_bytes(&bytes, updated_at);
    let mut res = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response();
    validators.apply(res.headers_mut());
    res
}

/// The validators of a representation, as [`tagged`] sends them.
pub fn validators_of(body: &impl Serialize, updated_at: i64) -> Validators {
    validators_of_bytes(
        &serde_json::to_vec(body).expect("values serialize"),
        updated_at,
    )
}

fn validators_of_bytes(bytes: &[u8], updated_at: i64) -> Validators {
    Validators::new(
        Some(EntityTag::from_content(bytes)),
        Some(system_time(updated_at)),
    )
}
