//! A read cache in front of the token and collection stores, for the two
//! rows every request reads: its token and its collection. It wraps only
//! those two stores ([`Stores::cached`]); records and jobs go straight to
//! the backend.
//!
//! Without it, a record read costs three storage round trips, two of them for
//! rows that almost never change. With it, those two come from memory.
//!
//! Freshness:
//! - A change made through this instance (a revoked token, a renamed or
//!   deleted collection) drops the cached row at once, before the change is
//!   acknowledged, so this instance never serves it stale.
//! - A change made by another instance (PostgreSQL behind several) reaches
//!   this one within [`FRESH_FOR`], when the cached row expires.
//! - A read that raced a change is not cached: every change bumps a
//!   generation, and a row read under an older generation is served but not
//!   kept.
//!
//! Only rows that exist are cached: caching misses would let anyone fill the
//! cache with made-up token ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use quick_cache::sync::Cache;

use super::*;

/// How long a cached row is served before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Rows kept per kind (tokens, collections); the least used are evicted beyond.
const CAPACITY: usize = 10_000;

/// Cached rows of one kind, by key.
struct RowCache<T> {
    rows: Cache<String, (Instant, Arc<T>)>,
    generation: AtomicU64,
    fresh_for: Duration,
}

impl<T: Clone> RowCache<T> {
    fn new(fresh_for: Duration) -> Self {
        RowCache {
            rows: Cache::new(CAPACITY),
            generation: AtomicU64::new(0),
            fresh_for,
        }
    }

    /// The cached row, or the one `read` fetches (kept unless a change raced it).
    async fn get_or_read<F>(&self, key: &str, read: F) -> StorageResult<Option<T>>
    where
        F: std::future::Future<Output = StorageResult<Option<T>>>,
    {
        // An injected outage must reach the store, as a real one would.
        if !crate::observe::fault::storage_unavailable() {
            if let Some((at, row)) = self.rows.get(key) {
                if at.elapsed() < self.fresh_for {
                    return Ok(Some(T::clone(&row)));
                }
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let row = read.await?;
        if let Some(row) = &row {
            // Kept, then checked: a change that raced the read either
            // removes the row itself (kept before its forget) or is seen here
            // (kept after its bump). Checking first would leave a window.
            self.rows
                .insert(key.to_owned(), (Instant::now(), Arc::new(row.clone())));
            if self.generation.load(Ordering::SeqCst) != generation {
                self.rows.remove(key);
            }
        }
        Ok(row)
    }

    /// Forgets `keys`; any read in flight will not be kept.
    fn forget(&self, keys: &[&str]) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            self.rows.remove(*key);
        }
    }
}

/// A [`TokenStore`] that caches tokens by id.
pub struct CachedTokens {
    inner: Arc<dyn TokenStore>,
    rows: RowCache<TokenRow>,
}

impl CachedTokens {
    /// Caches in front of `inner`, each row fresh for `fresh_for`.
    pub fn new(inner: Arc<dyn TokenStore>, fresh_for: Duration) -> Self {
        CachedTokens {
            inner,
            rows: RowCache::new(fresh_for),
        }
    }
}

/// A [`CollectionStore`] that caches collections by name.
pub struct CachedCollections {
    inner: Arc<dyn CollectionStore>,
    rows: RowCache<CollectionRow>,
}

impl CachedCollections {
    /// Caches in front of `inner`, each row fresh for `fresh_for`.
    pub fn new(inner: Arc<dyn CollectionStore>, fresh_for: Duration) -> Self {
        CachedCollections {
            inner,
            rows: RowCache::new(fresh_for),
        }
    }
}

/// Runs a change, forgetting `keys` of `cache` both before it (so no read
/// started meanwhile is kept) and after it (so nothing read before survives).
macro_rules! changing {
    ($cache:expr, [$($key:expr),*], $change:expr) => {{
        $cache.forget(&[$($key),*]);
        let result = $change;
        $cache.forget(&[$($key),*]);
        result
    }};
}

#[async_trait]
impl TokenStore for CachedTokens {
    async fn insert_token(&self, token: &TokenRow) -> StorageResult<()> {
        changing!(self.rows, [&token.id], self.inner.insert_token(token).await)
    }

    async fn upsert_token(&self, token: &TokenRow) -> StorageResult<()> {
        changing!(self.rows, [&token.id], self.inner.upsert_token(token).await)
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        self.rows.get_or_read(id, self.inner.get_token(id)).await
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        self.inner.list_tokens().await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        changing!(self.rows, [id], self.inner.revoke_token(id, at).await)
    }
}

#[async_trait]
impl CollectionStore for CachedCollections {
    async fn create_collection(&self, collection: &CollectionRow) -> StorageResult<CollectionRow> {
        changing!(
            self.rows,
            [&collection.name],
            self.inner.create_collection(collection).await
        )
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        self.rows
            .get_or_read(name, self.inner.get_collection(name))
            .await
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        self.inner.get_collection_by_id(id).await
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        self.inner.list_collections().await
    }

    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        // The cache is keyed by name: forget every name the collection had or gets.
        let before = self.inner.get_collection_by_id(id).await?;
        let old = before.as_ref().map_or("", |c| c.name.as_str());
        let new = change.rename.as_ref().map_or("", |(to, _)| to.as_str());
        changing!(
            self.rows,
            [old, new],
            self.inner
                .update_collection(id, expected_version, change)
                .await
        )
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        let before = self.inner.get_collection_by_id(id).await?;
        let name = before.as_ref().map_or("", |c| c.name.as_str());
        changing!(
            self.rows,
            [name],
            self.inner.delete_collection(id, force, now).await
        )
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        self.inner.resolve_alias(old_name, now).await
    }

    /// A write found the collection changed or gone after reading it from
    /// this cache (another instance changed it): forget it, so the retry
    /// reads it anew.
    fn stale(&self, name: &str) {
        self.rows.forget(&[name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::SqliteStorage;

    fn token(id: &str) -> TokenRow {
        TokenRow {
            id: id.into(),
            secret_hash: vec![1; 32],
            scopes: vec!["read".into()],
            collections: None,
            rate_limit: None,
            write_quota: None,
            created_at: 0,
            revoked_at: None,
        }
    }

    /// The backend's stores, and the same stores cached.
    async fn stores(fresh_for: Duration) -> (tempfile::TempDir, Stores, Stores) {
        let dir = tempfile::tempdir().unwrap();
        let inner = Stores::new(Arc::new(
            SqliteStorage::open(&dir.path().join("db")).await.unwrap(),
        ));
        let cached = inner.clone().cached_for(fresh_for);
        (dir, inner, cached)
    }

    #[tokio::test]
    async fn a_revocation_through_the_cache_is_seen_at_once() {
        let (_dir, _inner, cached) = stores(Duration::from_secs(3600)).await;
        cached.tokens.insert_token(&token("t1")).await.unwrap();
        assert!(cached
            .tokens
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        cached.tokens.revoke_token("t1", 5).await.unwrap();
        assert_eq!(
            cached
                .tokens
                .get_token("t1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(5)
        );
    }

    #[tokio::test]
    async fn a_change_made_elsewhere_is_seen_once_the_row_expires() {
        let (_dir, inner, cached) = stores(Duration::from_millis(200)).await;
        inner.tokens.insert_token(&token("t1")).await.unwrap();
        assert!(cached
            .tokens
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        // Another instance revokes it: this one still serves its cached row...
        inner.tokens.revoke_token("t1", 5).await.unwrap();
        assert!(cached
            .tokens
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        // ...until the row expires.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            cached
                .tokens
                .get_token("t1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(5)
        );
    }

    #[tokio::test]
    async fn a_renamed_collection_is_forgotten_under_both_names() {
        let (_dir, _inner, cached) = stores(Duration::from_secs(3600)).await;
        let c = CollectionRow {
            id: 0,
            version: 0,
            name: "old".into(),
            schema: None,
            unique: vec![],
            created_at: 0,
            updated_at: 0,
        };
        let c = cached.collections.create_collection(&c).await.unwrap();
        assert!(cached
            .collections
            .get_collection("old")
            .await
            .unwrap()
            .is_some());
        let change = CollectionChange {
            rename: Some(("new".into(), 10)),
            updated_at: 1,
            ..Default::default()
        };
        let renamed = cached
            .collections
            .update_collection(c.id, c.version, &change)
            .await
            .unwrap();
        assert!(cached
            .collections
            .get_collection("old")
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            cached
                .collections
                .get_collection("new")
                .await
                .unwrap()
                .unwrap()
                .name,
            "new"
        );
        assert_eq!(renamed.version, c.version + 1);
        cached
            .collections
            .delete_collection(c.id, false, 2)
            .await
            .unwrap();
        assert!(cached
            .collections
            .get_collection("new")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn unknown_ids_are_not_cached() {
        let (_dir, inner, cached) = stores(Duration::from_secs(3600)).await;
        assert!(cached.tokens.get_token("later").await.unwrap().is_none());
        inner.tokens.insert_token(&token("later")).await.unwrap();
        assert!(cached.tokens.get_token("later").await.unwrap().is_some());
    }
}
