//! Authentication: a presented bearer token against the stored ones, and the
//! bootstrap admin token installed at start.

use std::time::Duration;

use futures_util::future::BoxFuture;
use subtle::ConstantTimeEq;
use verdict::auth::{Authenticator, Principal};
use verdict::rate_limit::Quota;
use verdict::ApiError;

use crate::http::fail::FromStorage;
use crate::model::time::now_ms;
use crate::model::tokens::{hash_secret, new_secret, split, Grants, ADMIN_ID, SCOPES};
use crate::storage::{StorageError, Stores, TokenRow};

/// Resolves tokens against storage.
pub struct TokenAuthenticator {
    /// Where the tokens are looked up.
    pub storage: Stores,
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
                .tokens
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
    storage: &Stores,
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
            storage.tokens.upsert_token(&row(secret)).await?;
            Ok(None)
        }
        None => {
            if storage.tokens.get_token(ADMIN_ID).await?.is_some() {
                return Ok(None);
            }
            let secret = new_secret();
            storage.tokens.insert_token(&row(&secret)).await?;
            Ok(Some(secret))
        }
    }
}
