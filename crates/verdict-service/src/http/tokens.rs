//! Bearer tokens: `<id>.<secret>`. Only a SHA-256 of the secret is stored, and
//! it is compared in constant time (`subtle`). The bootstrap admin token
//! (`--admin-token`, or one generated on first start) has the id `admin` and
//! may be any string.
//!
//! Also the routes `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use futures_util::future::BoxFuture;
use rand::RngExt;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use verdict::auth::{Authenticator, Principal};
use verdict::rate_limit::Quota;
use verdict::{ApiError, FieldError, Json};

use crate::fail::{FromStorage, Reply};
use crate::state::AppState;
use crate::storage::{Storage, StorageError, TokenRow};
use crate::time::{now_ms, rfc3339};

/// The id of the bootstrap admin token.
pub const ADMIN_ID: &str = "admin";

/// The scopes a token may have.
pub const SCOPES: [&str; 3] = ["read", "write", "admin"];

/// What the service attaches to a principal: the token's grants and quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    /// The ids of the collections it may use; `None`: every collection.
    /// By id, not name: a grant follows a rename, and does not pass to a
    /// new collection created under a deleted one's name.
    pub collections: Option<Vec<i64>>,
    /// Writes per UTC day.
    pub write_quota: Option<u32>,
}

impl Grants {
    /// Whether the token may use the collection `id`.
    pub fn allows(&self, id: i64) -> bool {
        self.collections
            .as_ref()
            .is_none_or(|ids| ids.contains(&id))
    }
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new random secret: 32 bytes, base64url.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Splits a presented token into (id, secret).
fn split(token: &str) -> (&str, &str) {
    match token.split_once('.') {
        Some((id, secret)) if !id.is_empty() && id != ADMIN_ID => (id, secret),
        _ => (ADMIN_ID, token),
    }
}

/// Resolves tokens against storage.
pub struct TokenAuthenticator {
    pub storage: Arc<dyn Storage>,
}

impl Authenticator for TokenAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            let (id, secret) = split(token);
            let row = self
                .storage
                .get_token(id)
                .await
                .map_err(ApiError::from_storage)?;
            let Some(row) = row else { return Ok(None) };
            let presented = hash_secret(secret);
            let matches: bool = presented.ct_eq(&row.secret_hash).into();
            if !matches || row.revoked_at.is_some() {
                return Ok(None);
            }
            Ok(Some(principal_of(row)))
        })
    }
}

fn principal_of(row: TokenRow) -> Principal {
    // The bootstrap admin token is the operator's way in under any load (to
    // switch maintenance, revoke a token): no rate limit applies to it.
    let bootstrap = row.id == ADMIN_ID;
    let mut p = Principal::new(row.id, row.scopes).with_extension(Grants {
        collections: row.collections,
        write_quota: row.write_quota,
    });
    if let Some((n, per)) = row.rate_limit {
        p = p.with_rate_limit(Quota::new(n, Duration::from_secs(per.into())));
    }
    if bootstrap {
        p = p.without_rate_limit();
    }
    p
}

/// Installs the bootstrap admin token: the given one, or a generated one on
/// first start (returned so it can be printed once).
pub async fn bootstrap(
    storage: &dyn Storage,
    given: Option<&str>,
) -> Result<Option<String>, StorageError> {
    let row = |secret: &str| TokenRow {
        id: ADMIN_ID.to_string(),
        secret_hash: hash_secret(secret),
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        collections: None,
        rate_limit: None,
        write_quota: None,
        created_at: now_ms(),
        revoked_at: None,
    };
    match given {
        Some(secret) => {
            storage.upsert_token(&row(secret)).await?;
            Ok(None)
        }
        None => {
            if storage.get_token(ADMIN_ID).await?.is_some() {
                return Ok(None);
            }
            let secret = new_secret();
            storage.insert_token(&row(&secret)).await?;
            Ok(Some(secret))
        }
    }
}

/// A token's JSON; its grants by the collections' current names (a deleted
/// collection's grant is not shown: it grants nothing).
fn token_json(t: &TokenRow, names: &HashMap<i64, String>) -> Value {
    let collections = t.collections.as_ref().map(|ids| {
        ids.iter()
            .filter_map(|id| names.get(id))
            .collect::<Vec<_>>()
    });
    json!({
        "id": t.id,
        "scopes": t.scopes,
        "collections": collections,
        "rate_limit": t.rate_limit.map(|(r, p)| json!({"requests": r, "per_seconds": p})),
        "write_quota": t.write_quota,
        "created_at": rfc3339(t.created_at),
        "revoked": t.revoked_at.is_some(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    scopes: Vec<String>,
    collections: Option<Vec<String>>,
    rate_limit: Option<NewRateLimit>,
    #[serde(default, deserialize_with = "crate::integer::opt_u32")]
    write_quota: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRateLimit {
    #[serde(deserialize_with = "crate::integer::u32")]
    requests: u32,
    #[serde(deserialize_with = "crate::integer::u32")]
    per_seconds: u32,
}

/// `POST /v1/tokens`.
pub async fn create(State(st): State<AppState>, Json(body): Json<NewToken>) -> Reply {
    let mut errors = Vec::new();
    if body.scopes.is_empty() {
        errors.push(FieldError::new("/scopes", "must name at least one scope"));
    }
    for (i, s) in body.scopes.iter().enumerate() {
        if !SCOPES.contains(&s.as_str()) {
            errors.push(FieldError::new(
                format!("/scopes/{i}"),
                "must be read, write or admin",
            ));
        }
    }
    let mut granted = Vec::new();
    let mut names = HashMap::new();
    if let Some(cs) = &body.collections {
        for (i, c) in cs.iter().enumerate() {
            if !crate::collections::valid_name(c) {
                errors.push(FieldError::new(
                    format!("/collections/{i}"),
                    crate::collections::NAME_RULE,
                ));
                continue;
            }
            // A grant is to a collection (its id), so it must exist now.
            match st.storage.get_collection(c).await? {
                Some(row) => {
                    granted.push(row.id);
                    names.insert(row.id, row.name);
                }
                None => errors.push(FieldError::new(
                    format!("/collections/{i}"),
                    "names no collection; create it first",
                )),
            }
        }
    }
    if let Some(r) = &body.rate_limit {
        if r.requests == 0 {
            errors.push(FieldError::new(
                "/rate_limit/requests",
                "must be at least 1",
            ));
        }
        if r.per_seconds == 0 {
            errors.push(FieldError::new(
                "/rate_limit/per_seconds",
                "must be at least 1",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation_failed(errors).into());
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let secret = new_secret();
    let row = TokenRow {
        id: id.clone(),
        secret_hash: hash_secret(&secret),
        scopes: body.scopes,
        collections: body.collections.as_ref().map(|_| granted),
        rate_limit: body.rate_limit.map(|r| (r.requests, r.per_seconds)),
        write_quota: body.write_quota,
        created_at: now_ms(),
        revoked_at: None,
    };
    st.storage.insert_token(&row).await?;
    let mut out = token_json(&row, &names);
    out["token"] = Value::String(format!("{id}.{secret}"));
    let mut res = crate::collections::tagged(StatusCode::CREATED, &out, row.created_at);
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/tokens/{id}")).expect("uuid"),
    );
    // The secret is in this body, once: no cache may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /v1/tokens`.
pub async fn list(State(st): State<AppState>) -> Reply {
    let rows = st.storage.list_tokens().await?;
    let names: HashMap<i64, String> = st
        .storage
        .list_collections()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let items: Vec<Value> = rows.iter().map(|t| token_json(t, &names)).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `DELETE /v1/tokens/{id}` (the bootstrap admin token cannot be revoked
/// here: it is the operator's, replaced by restarting with `--admin-token`).
pub async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> Reply {
    if id == ADMIN_ID {
        return Err(ApiError::conflict(
            "The bootstrap admin token cannot be revoked through the API; restart the service with a new --admin-token to replace it.",
        )
        .with_code("bootstrap_token")
        .with_title("Bootstrap token")
        .into());
    }
    match st.storage.revoke_token(&id, now_ms()).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(ApiError::not_found(format!(
            "The token identified by {id} could not be found."
        ))
        .with_code("token_not_found")
        .into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_secret() {
        assert_eq!(split("abc.def"), ("abc", "def"));
        assert_eq!(
            split("plain-admin-secret"),
            (ADMIN_ID, "plain-admin-secret")
        );
        assert_eq!(split("admin.x"), (ADMIN_ID, "admin.x"));
        assert_eq!(hash_secret("x").len(), 32);
        assert_ne!(new_secret(), new_secret());
    }
}
