//! `Idempotency-Key`: reading the key, the fingerprint of the request it was
//! first used for, and replaying the stored answer (409 if the key comes back
//! with another request).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use verdict::ApiError;

use crate::model::idempotency::valid_idempotency_key;
use crate::storage::StoredResponse;

/// The `Idempotency-Key` of a request, if it has one (400 if malformed).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(key) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    key.to_str()
        .ok()
        .filter(|k| valid_idempotency_key(k))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            ApiError::invalid_header(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters (spaces only inside)",
            )
        })
}

/// What identifies a request for its key: its path and body.
pub fn fingerprint(path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// A stored answer, replayed: 409 if the key was first used for another request.
pub fn replayed(stored: StoredResponse, fingerprint: &str) -> Result<Response, ApiError> {
    if stored.fingerprint != fingerprint {
        // 409, not the IETF draft's 422: the request itself is valid; it
        // conflicts with what the key already stands for.
        return Err(crate::problems::idempotency_key_reused());
    }
    let mut res = answer(stored);
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(res)
}

/// A stored response as a response.
pub fn answer(stored: StoredResponse) -> Response {
    let mut res = Response::new(axum::body::Body::from(stored.body));
    *res.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (n, v) in stored.headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            res.headers_mut().insert(n, v);
        }
    }
    res
}
