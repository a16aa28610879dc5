//! Collections: `POST/GET /v1/collections`, `GET/PATCH/DELETE /v1/collections/{c}`.
//!
//! A collection may carry a JSON Schema its records must satisfy and a list of
//! unique fields. A rename leaves the old name as a 302 alias for the alias
//! period (`--alias-period`); under a preset without 302 the old name is served
//! as the new one.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{json, Value};
use verdict::auth::Authenticated;
use verdict::conditional::Preconditions;
use verdict::{ApiError, FieldError, Json};

use crate::http::fail::Reply;
use crate::http::representation::{collection_json, tagged, validators_of};
use crate::http::resolve::{not_found, reload, resolve};
use crate::model::collections::{valid_name, NAME_RULE};
use crate::model::time::now_ms;
use crate::model::tokens::Grants;
use crate::state::AppState;
use crate::storage::{CollectionChange, CollectionRow, StorageError};
use crate::surface::urls;

/// The body of `POST /v1/collections`: a name, and optionally a JSON Schema
/// and unique fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    name: String,
    schema: Option<Value>,
    unique: Option<Vec<String>>,
}

/// Field rules shared by create and change: 422 with a pointer each.
fn check_definition(
    name: Option<&str>,
    schema: Option<&Value>,
    unique: Option<&[String]>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(n) = name {
        if !valid_name(n) {
            errors.push(FieldError::new("/name", NAME_RULE));
        }
    }
    if let Some(s) = schema {
        if let Some(problem) = crate::validation::schema_problem(s) {
            errors.push(FieldError::new("/schema", problem));
        }
    }
    if let Some(u) = unique {
        for (i, f) in u.iter().enumerate() {
            let chars = f.chars().count();
            if chars == 0 || chars > 128 || crate::model::records::RESERVED.contains(&f.as_str()) {
                errors.push(FieldError::new(
                    format!("/unique/{i}"),
                    "must name a field of the records (not id, created_at or updated_at)",
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

/// `POST /v1/collections`.
pub async fn create(State(st): State<AppState>, Json(body): Json<NewCollection>) -> Reply {
    let unique = body.unique.unwrap_or_default();
    check_definition(Some(&body.name), body.schema.as_ref(), Some(&unique))?;
    let now = now_ms();
    let row = CollectionRow {
        id: 0,
        version: 0,
        name: body.name,
        schema: body.schema,
        unique,
        created_at: now,
        updated_at: now,
    };
    let row = st.storage.collections.create_collection(&row).await?;
    let mut res = tagged(StatusCode::CREATED, &collection_json(&row), row.updated_at);
    res.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&urls::collection(&row.name)).expect("valid name"),
    );
    Ok(res)
}

/// `GET /v1/collections`: the ones the token may see.
pub async fn list(State(st): State<AppState>, Authenticated(p): Authenticated) -> Reply {
    let rows = st.storage.collections.list_collections().await?;
    let grants = p.extension::<Grants>();
    let items: Vec<Value> = rows
        .iter()
        .filter(|c| grants.is_none_or(|g| g.allows(c.id)) || p.has_scope("admin"))
        .map(collection_json)
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `GET /v1/collections/{c}`.
pub async fn show(State(st): State<AppState>, Path(name): Path<String>, uri: Uri) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    Ok(tagged(StatusCode::OK, &collection_json(&c), c.updated_at))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectionPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    schema: Option<Option<Value>>,
    unique: Option<Vec<String>>,
}

/// Tells an absent member (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Value>>, D::Error> {
    Option::<Value>::deserialize(d).map(Some)
}

/// `PATCH /v1/collections/{c}` (merge patch): rename, change the schema or
/// unique fields. Compare-and-swap on the collection's version: with
/// `If-Match`, a change that lost a race is a 412; without, it is applied to
/// the collection as it now is.
pub async fn change(
    State(st): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    pre: Preconditions,
    Json(body): Json<Value>,
) -> Reply {
    let mut c = resolve(&st, &name, &uri).await?;
    pre.check_write(Some(&validators_of(&collection_json(&c), c.updated_at)))?;
    let patch: CollectionPatch = verdict::extract::from_value(body)?;
    let schema = patch.schema.as_ref().and_then(|s| s.as_ref());
    check_definition(patch.name.as_deref(), schema, patch.unique.as_deref())?;
    for _ in 0..crate::model::records::WRITE_ATTEMPTS {
        // Strictly later, so Last-Modified moves even within one millisecond.
        let now = now_ms().max(c.updated_at + 1);
        let alias_until = now + st.config.alias_period.as_millis() as i64;
        let change = CollectionChange {
            rename: patch
                .name
                .clone()
                .filter(|n| *n != c.name)
                .map(|n| (n, alias_until)),
            schema: patch.schema.clone(),
            unique: patch.unique.clone(),
            updated_at: now,
        };
        match st
            .storage
            .collections
            .update_collection(c.id, c.version, &change)
            .await
        {
            Ok(updated) => {
                return Ok(tagged(
                    StatusCode::OK,
                    &collection_json(&updated),
                    updated.updated_at,
                ))
            }
            Err(StorageError::VersionMismatch) => {
                // Judge the precondition again against what won the race.
                c = reload(&st, &c).await?;
                pre.check_write(Some(&validators_of(&collection_json(&c), c.updated_at)))?;
            }
            Err(StorageError::NotFound) => return Err(not_found(&name).into()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::conflict(
        "The collection kept changing while this request was processed; send it again.",
    )
    .into())
}

/// The query of `DELETE /v1/collections/{c}`: `force=true` deletes a
/// collection that still has records.
#[derive(Deserialize)]
pub struct DeleteQuery {
    force: Option<String>,
}

/// `DELETE /v1/collections/{c}` (409 when it has records, unless `?force=true`).
pub async fn delete(
    State(st): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    verdict::Query(q): verdict::Query<DeleteQuery>,
) -> Reply {
    let force = match q.force.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid_query("force", "must be true or false").into()),
    };
    let c = resolve(&st, &name, &uri).await?;
    match st
        .storage
        .collections
        .delete_collection(c.id, force, now_ms())
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(not_found(&name).into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        assert!(valid_name("books"));
        assert!(valid_name("b-2_x"));
        assert!(!valid_name("Books"));
        assert!(!valid_name("2books"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
