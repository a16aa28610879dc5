//! Finding the collection a path names: by its name, or by a renamed
//! collection's old name during the alias period (302, or the collection
//! itself under presets without 302); 404 otherwise.

use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;
use verdict::headers::Location;
use verdict::ApiError;

use crate::http::fail::Fail;
use crate::model::time::now_ms;
use crate::state::AppState;
use crate::storage::CollectionRow;
use crate::surface::urls;

/// 404 `collection_not_found` for `name`.
pub fn not_found(name: &str) -> ApiError {
    crate::problems::collection_not_found(Some(name))
}

/// Finds a collection by the name in the path, following a live alias:
/// a 302 to the same URI under the new name, or (presets without 302) the
/// collection itself.
pub async fn resolve(st: &AppState, name: &str, uri: &Uri) -> Result<CollectionRow, Fail> {
    if let Some(c) = st.storage.collections.get_collection(name).await? {
        return Ok(c);
    }
    let Some(c) = st.storage.collections.resolve_alias(name, now_ms()).await? else {
        return Err(not_found(name).into());
    };
    if st.preset.allows(StatusCode::FOUND) {
        let path = uri.path();
        let prefix = urls::collection(name);
        let rest = path.strip_prefix(&prefix).unwrap_or("");
        let mut target = format!("{}{rest}", urls::collection(&c.name));
        if let Some(q) = uri.query() {
            target.push('?');
            target.push_str(q);
        }
        let location =
            Location::new(&target).ok_or_else(|| ApiError::internal("bad alias target"))?;
        let res = (
            StatusCode::FOUND,
            [(header::LOCATION, location.header_value())],
            axum::Json(json!({"moved_to": c.name, "location": target})),
        )
            .into_response();
        return Err(Fail(res));
    }
    Ok(c)
}

/// The collection as it is now (read from storage, never from a cache): for a
/// write that lost its compare-and-swap to a change of the collection.
pub async fn reload(st: &AppState, c: &CollectionRow) -> Result<CollectionRow, Fail> {
    // What a cache holds under its name is stale too: the next request reads it anew.
    st.storage.collections.stale(&c.name);
    st.storage
        .collections
        .get_collection_by_id(c.id)
        .await?
        .ok_or_else(|| not_found(&c.name).into())
}

/// 404 for a collection that was deleted while a request used it.
pub fn gone(st: &AppState, c: &CollectionRow) -> Fail {
    st.storage.collections.stale(&c.name);
    not_found(&c.name).into()
}
