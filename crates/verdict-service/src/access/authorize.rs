//! Who may do what: scopes by route, collection grants, and the daily write
//! quota ("update limit"): all 403s, decided before the body is read.

use futures_util::future::BoxFuture;
use http::request::Parts;
use http::Method;
use verdict::auth::{Authorizer, Principal};
use verdict::ApiError;

use crate::tokens::Grants;

/// The scope a route needs.
pub fn scope_for(method: &Method, path: &str) -> &'static str {
    if path.starts_with("/v1/tokens") || path.starts_with("/v1/admin") {
        return "admin";
    }
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => "read",
        _ if path == "/v1/batch" => "read",
        _ => "write",
    }
}

/// The collection a path names (`/v1/collections/{c}/...`).
pub fn collection_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v1/collections/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// The service's authorizer.
pub struct ServiceAuthorizer {
    pub shared: std::sync::Arc<crate::shared::Shared>,
    pub storage: std::sync::Arc<dyn crate::storage::Storage>,
    pub realm: String,
}

impl ServiceAuthorizer {
    /// The id of the collection a path names (by its name or a live alias).
    async fn collection_id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        use crate::fail::FromStorage;
        if let Some(c) = self
            .storage
            .get_collection(name)
            .await
            .map_err(ApiError::from_storage)?
        {
            return Ok(Some(c.id));
        }
        let aliased = self
            .storage
            .resolve_alias(name, crate::time::now_ms())
            .await
            .map_err(ApiError::from_storage)?;
        Ok(aliased.map(|c| c.id))
    }

    async fn check(&self, principal: &Principal, request: &Parts) -> Result<(), ApiError> {
        let path = request.uri.path();
        // The scope is the operation's (by its routed path), else the method's.
        let routed = request
            .extensions
            .get::<axum::extract::MatchedPath>()
            .and_then(|m| crate::api::operation(&request.method, m.as_str()));
        let needed = match routed.map(|o| o.access) {
            Some(crate::api::Access::Scope(s)) => s,
            Some(crate::api::Access::Public) => return Ok(()),
            None => scope_for(&request.method, path),
        };
        let admin = principal.has_scope("admin");
        if !admin && !principal.has_scope(needed) {
            return Err(ApiError::insufficient_scope(&self.realm, needed));
        }
        let grants = principal.extension::<Grants>();
        if let (false, Some(grants)) = (admin, grants.filter(|g| g.collections.is_some())) {
            if path == "/v1/collections" && request.method == Method::POST {
                return Err(ApiError::forbidden(
                    "This token is limited to some collections and cannot create new ones.",
                )
                .with_code("collection_not_granted"));
            }
            if let Some(c) = collection_of(path) {
                // By id: a grant follows a rename and does not pass to a new
                // collection that took a deleted one's name. An unknown name
                // is refused alike, so a token cannot probe what exists.
                let granted = self
                    .collection_id(c)
                    .await?
                    .is_some_and(|id| grants.allows(id));
                if !granted {
                    return Err(ApiError::forbidden(format!(
                        "This token has no grant for the collection `{c}`."
                    ))
                    .with_code("collection_not_granted")
                    .with_title("Collection not granted"));
                }
            }
        }
        let is_write = !matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS)
            && path != "/v1/batch";
        if let (
            true,
            Some(Grants {
                write_quota: Some(quota),
                ..
            }),
        ) = (is_write, grants)
        {
            let spent = self
                .shared
                .spend_write(principal.subject(), *quota, crate::time::now_ms())
                .await?;
            if !spent {
                return Err(ApiError::forbidden(format!(
                    "This token's daily write quota of {quota} is used up; it renews at 00:00 UTC."
                ))
                .with_code("write_quota_exceeded")
                .with_title("Write quota exceeded"));
            }
        }
        Ok(())
    }
}

impl Authorizer for ServiceAuthorizer {
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(self.check(principal, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_collections_by_path() {
        assert_eq!(scope_for(&Method::GET, "/v1/tokens"), "admin");
        assert_eq!(scope_for(&Method::GET, "/v1/collections/a/records"), "read");
        assert_eq!(scope_for(&Method::PATCH, "/v1/collections/a"), "write");
        assert_eq!(
            collection_of("/v1/collections/books/records/1"),
            Some("books")
        );
        assert_eq!(collection_of("/v1/collections"), None);
    }
}
