//! Bearer tokens: `<id>.<secret>`. Only a SHA-256 of the secret is stored (and
//! compared in constant time where a token is authenticated). The bootstrap
//! admin token (`--admin-token`, or one generated on first start) has the id
//! `admin` and may be any string.

use base64::Engine;
use rand::RngExt;
use sha2::{Digest, Sha256};

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

/// The positions of `scopes` that are not scopes.
pub fn invalid_scopes(scopes: &[String]) -> Vec<usize> {
    scopes
        .iter()
        .enumerate()
        .filter(|(_, s)| !SCOPES.contains(&s.as_str()))
        .map(|(i, _)| i)
        .collect()
}

/// What is stored of a secret: its SHA-256 (compared in constant time).
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new random secret: 32 bytes, base64url.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Splits a presented token into (id, secret).
pub fn split(token: &str) -> (&str, &str) {
    match token.split_once('.') {
        Some((id, secret)) if !id.is_empty() && id != ADMIN_ID => (id, secret),
        _ => (ADMIN_ID, token),
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
