//! `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/{id}` (the token
//! rules are `crate::model::tokens`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use verdict::{ApiError, FieldError, Json};

use crate::http::fail::Reply;
use crate::model::time::{now_ms, rfc3339};
use crate::model::tokens::{hash_secret, invalid_scopes, new_secret, ADMIN_ID};
use crate::state::AppState;
use crate::storage::{StorageError, TokenRow};
use crate::surface::urls;

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

/// The body of `POST /v1/tokens`: its scopes, and optionally the collections
/// it may use, a rate limit and a daily write quota.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    scopes: Vec<String>,
    collections: Option<Vec<String>>,
    rate_limit: Option<NewRateLimit>,
    #[serde(default, deserialize_with = "crate::http::integer::opt_u32")]
    write_quota: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRateLimit {
    #[serde(deserialize_with = "crate::http::integer::u32")]
    requests: u32,
    #[serde(deserialize_with = "crate::http::integer::u32")]
    per_seconds: u32,
}

/// `POST /v1/tokens`.
pub async fn create(State(st): State<AppState>, Json(body): Json<NewToken>) -> Reply {
    let mut errors = Vec::new();
    if body.scopes.is_empty() {
        errors.push(FieldError::new("/scopes", "must name at least one scope"));
    }
    for i in invalid_scopes(&body.scopes) {
        errors.push(FieldError::new(
            format!("/scopes/{i}"),
            "must be read, write or admin",
        ));
    }
    let mut granted = Vec::new();
    let mut names = HashMap::new();
    if let Some(cs) = &body.collections {
        for (i, c) in cs.iter().enumerate() {
            if !crate::model::collections::valid_name(c) {
                errors.push(FieldError::new(
                    format!("/collections/{i}"),
                    crate::model::collections::NAME_RULE,
                ));
                continue;
            }
            // A grant is to a collection (its id), so it must exist now.
            match st.storage.collections.get_collection(c).await? {
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
    st.storage.tokens.insert_token(&row).await?;
    let mut out = token_json(&row, &names);
    out["token"] = Value::String(format!("{id}.{secret}"));
    let mut res = crate::http::representation::tagged(StatusCode::CREATED, &out, row.created_at);
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&urls::token(&id)).expect("uuid"),
    );
    // The secret is in this body, once: no cache may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// `GET /v1/tokens`.
pub async fn list(State(st): State<AppState>) -> Reply {
    let rows = st.storage.tokens.list_tokens().await?;
    let names: HashMap<i64, String> = st
        .storage
        .collections
        .list_collections()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let items: Vec<Value> = rows.iter().map(|t| token_json(t, &names)).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `GET /v1/tokens/{id}`: one token (never its secret), where the 201 of
/// its creation points; a revoked one is shown as revoked.
pub async fn show(State(st): State<AppState>, Path(id): Path<String>) -> Reply {
    let Some(row) = st.storage.tokens.get_token(&id).await? else {
        return Err(crate::problems::token_not_found(&id).into());
    };
    let names: HashMap<i64, String> = st
        .storage
        .collections
        .list_collections()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    Ok(crate::http::representation::tagged(
        StatusCode::OK,
        &token_json(&row, &names),
        row.revoked_at.unwrap_or(row.created_at),
    ))
}

/// `DELETE /v1/tokens/{id}` (the bootstrap admin token cannot be revoked
/// here: it is the operator's, replaced by restarting with `--admin-token`).
pub async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> Reply {
    if id == ADMIN_ID {
        return Err(crate::problems::bootstrap_token().into());
    }
    match st.storage.tokens.revoke_token(&id, now_ms()).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(crate::problems::token_not_found(&id).into()),
        Err(e) => Err(e.into()),
    }
}
