//! Who may do what: the scope each operation needs (read from the surface's
//! table, nothing derived from paths), collection grants, and the daily write
//! quota ("update limit"): all 403s, decided before the body is read.

use futures_util::future::BoxFuture;
use http::request::Parts;
use verdict::auth::{Authorizer, Principal};
use verdict::ApiError;

use crate::model::tokens::Grants;
use crate::problems;
use crate::surface::{self, Access};

/// The collection a request names, if its operation's path has `{c}`.
fn collection_of<'a>(operation_path: &str, path: &'a str) -> Option<&'a str> {
    operation_path.strip_prefix("/v1/collections/{c}")?;
    let rest = path.strip_prefix("/v1/collections/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// The service's authorizer.
pub struct ServiceAuthorizer {
    /// Where the daily write quotas are counted (across instances with `--shared`).
    pub shared: std::sync::Arc<crate::cluster::Shared>,
    /// Where the collections a path names are looked up, to check grants by id.
    pub storage: crate::storage::Stores,
    /// The realm its 403s name in their `WWW-Authenticate` challenge.
    pub realm: String,
}

impl ServiceAuthorizer {
    /// The id of the collection a path names (by its name or a live alias).
    async fn collection_id(&self, name: &str) -> Result<Option<i64>, ApiError> {
        use crate::http::fail::FromStorage;
        if let Some(c) = self
            .storage
            .collections
            .get_collection(name)
            .await
            .map_err(ApiError::from_storage)?
        {
            return Ok(Some(c.id));
        }
        let aliased = self
            .storage
            .collections
            .resolve_alias(name, crate::model::time::now_ms())
            .await
            .map_err(ApiError::from_storage)?;
        Ok(aliased.map(|c| c.id))
    }

    async fn check(&self, principal: &Principal, request: &Parts) -> Result<(), ApiError> {
        let path = request.uri.path();
        let routed = request
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(|m| m.as_str())
            .unwrap_or("");
        let operation = surface::operation(&request.method, routed);
        let needed = match surface::access(&request.method, routed) {
            Access::Public => return Ok(()),
            Access::Scope(s) => s,
        };
        let admin = principal.has_scope("admin");
        if !admin && !principal.has_scope(needed) {
            return Err(ApiError::insufficient_scope(&self.realm, needed));
        }
        let grants = principal.extension::<Grants>();
        if let (false, Some(grants)) = (admin, grants.filter(|g| g.collections.is_some())) {
            if operation.is_some_and(|o| o.id == "create_collection") {
                return Err(problems::collection_not_granted(None));
            }
            if let Some(c) = collection_of(routed, path) {
                // By id: a grant follows a rename and does not pass to a new
                // collection that took a deleted one's name. An unknown name
                // is refused alike, so a token cannot probe what exists.
                let granted = self
                    .collection_id(c)
                    .await?
                    .is_some_and(|id| grants.allows(id));
                if !granted {
                    return Err(problems::collection_not_granted(Some(c)));
                }
            }
        }
        // The quota counts the operations that need the write scope.
        let is_write = needed == "write";
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
                .spend_write(principal.subject(), *quota, crate::model::time::now_ms())
                .await?;
            if !spent {
                return Err(problems::write_quota_exceeded(*quota));
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
    fn the_collection_is_read_only_where_the_operation_names_one() {
        assert_eq!(
            collection_of(
                "/v1/collections/{c}/records/{id}",
                "/v1/collections/books/records/1"
            ),
            Some("books")
        );
        assert_eq!(collection_of("/v1/collections", "/v1/collections"), None);
        assert_eq!(collection_of("/v1/jobs/{id}", "/v1/jobs/x"), None);
    }
}
