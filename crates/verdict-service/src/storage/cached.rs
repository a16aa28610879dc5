//! A read cache in front of any [`Storage`], for the two rows every request
//! reads: its token and its collection.
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
        let generation = self.generation.load(Ordering::Acquire);
        let row = read.await?;
        if let Some(row) = &row {
            if self.generation.load(Ordering::Acquire) == generation {
                self.rows
                    .insert(key.to_owned(), (Instant::now(), Arc::new(row.clone())));
            }
        }
        Ok(row)
    }

    /// Forgets `keys`; any read in flight will not be kept.
    fn forget(&self, keys: &[&str]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            self.rows.remove(*key);
        }
    }
}

/// A [`Storage`] that caches tokens and collections.
pub struct CachedStorage {
    inner: Arc<dyn Storage>,
    tokens: RowCache<TokenRow>,
    collections: RowCache<CollectionRow>,
}

impl CachedStorage {
    /// Caches in front of `inner`, each row fresh for [`FRESH_FOR`].
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self::with_freshness(inner, FRESH_FOR)
    }

    /// Caches in front of `inner`, each row fresh for `fresh_for`.
    pub fn with_freshness(inner: Arc<dyn Storage>, fresh_for: Duration) -> Self {
        CachedStorage {
            inner,
            tokens: RowCache::new(fresh_for),
            collections: RowCache::new(fresh_for),
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
impl Storage for CachedStorage {
    async fn ping(&self) -> StorageResult<()> {
        self.inner.ping().await
    }

    async fn insert_token(&self, token: &TokenRow) -> StorageResult<()> {
        changing!(
            self.tokens,
            [&token.id],
            self.inner.insert_token(token).await
        )
    }

    async fn upsert_token(&self, token: &TokenRow) -> StorageResult<()> {
        changing!(
            self.tokens,
            [&token.id],
            self.inner.upsert_token(token).await
        )
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        self.tokens.get_or_read(id, self.inner.get_token(id)).await
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        self.inner.list_tokens().await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        changing!(self.tokens, [id], self.inner.revoke_token(id, at).await)
    }

    async fn create_collection(&self, collection: &CollectionRow) -> StorageResult<CollectionRow> {
        changing!(
            self.collections,
            [&collection.name],
            self.inner.create_collection(collection).await
        )
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        self.collections
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
            self.collections,
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
            self.collections,
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

    async fn create_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()> {
        let result = self
            .inner
            .create_record(collection, record, idempotent)
            .await;
        self.forget_stale(collection, &result);
        result
    }

    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>> {
        self.inner.get_record(collection_id, id).await
    }

    async fn update_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()> {
        let result = self
            .inner
            .update_record(collection, record, expected_version)
            .await;
        self.forget_stale(collection, &result);
        result
    }

    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        self.inner
            .delete_record(collection_id, id, expected_version)
            .await
    }

    async fn list_records(
        &self,
        collection_id: i64,
        after: Option<&str>,
        limit: u32,
        filters: &[Filter],
        max_bytes: usize,
    ) -> StorageResult<Page> {
        self.inner
            .list_records(collection_id, after, limit, filters, max_bytes)
            .await
    }

    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>> {
        self.inner.get_idempotent(token_id, key).await
    }

    async fn insert_job(
        &self,
        job: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()> {
        self.inner.insert_job(job, input, max_queued_bytes).await
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        self.inner.get_job(id).await
    }

    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>> {
        self.inner.job_input(id).await
    }

    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        self.inner.job_result(id, seq).await
    }

    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>> {
        self.inner.job_failures(id).await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>> {
        self.inner
            .claim_job(owner, now, lease_until, per_token)
            .await
    }

    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()> {
        self.inner
            .job_progress(id, owner, processed, lease_until, now)
            .await
    }

    async fn export_chunk(&self, chunk: &ExportChunk<'_>) -> StorageResult<()> {
        self.inner.export_chunk(chunk).await
    }

    async fn import_step(
        &self,
        step: &ImportStep,
        describe: DescribeConflict,
    ) -> StorageResult<()> {
        let result = self.inner.import_step(step, describe).await;
        self.forget_stale(&step.collection, &result);
        result
    }

    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        result: Option<&[u8]>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()> {
        self.inner
            .finish_job(id, owner, state, result, error, now)
            .await
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        self.inner.cancel_job(id, now).await
    }
}

impl CachedStorage {
    /// A write that found its collection changed or gone read it from this
    /// cache (another instance changed it): forget it, so the retry reads it anew.
    fn forget_stale(&self, collection: &CollectionRow, result: &StorageResult<()>) {
        if matches!(
            result,
            Err(StorageError::CollectionChanged | StorageError::CollectionGone)
        ) {
            self.collections.forget(&[&collection.name]);
        }
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

    async fn stores(fresh_for: Duration) -> (tempfile::TempDir, Arc<dyn Storage>, CachedStorage) {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Storage> =
            Arc::new(SqliteStorage::open(&dir.path().join("db")).await.unwrap());
        let cached = CachedStorage::with_freshness(inner.clone(), fresh_for);
        (dir, inner, cached)
    }

    #[tokio::test]
    async fn a_revocation_through_the_cache_is_seen_at_once() {
        let (_dir, _inner, cached) = stores(Duration::from_secs(3600)).await;
        cached.insert_token(&token("t1")).await.unwrap();
        assert!(cached
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        cached.revoke_token("t1", 5).await.unwrap();
        assert_eq!(
            cached.get_token("t1").await.unwrap().unwrap().revoked_at,
            Some(5)
        );
    }

    #[tokio::test]
    async fn a_change_made_elsewhere_is_seen_once_the_row_expires() {
        let (_dir, inner, cached) = stores(Duration::from_millis(200)).await;
        inner.insert_token(&token("t1")).await.unwrap();
        assert!(cached
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        // Another instance revokes it: this one still serves its cached row...
        inner.revoke_token("t1", 5).await.unwrap();
        assert!(cached
            .get_token("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());
        // ...until the row expires.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            cached.get_token("t1").await.unwrap().unwrap().revoked_at,
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
        let c = cached.create_collection(&c).await.unwrap();
        assert!(cached.get_collection("old").await.unwrap().is_some());
        let change = CollectionChange {
            rename: Some(("new".into(), 10)),
            updated_at: 1,
            ..Default::default()
        };
        let renamed = cached
            .update_collection(c.id, c.version, &change)
            .await
            .unwrap();
        assert!(cached.get_collection("old").await.unwrap().is_none());
        assert_eq!(
            cached.get_collection("new").await.unwrap().unwrap().name,
            "new"
        );
        assert_eq!(renamed.version, c.version + 1);
        cached.delete_collection(c.id, false, 2).await.unwrap();
        assert!(cached.get_collection("new").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn unknown_ids_are_not_cached() {
        let (_dir, inner, cached) = stores(Duration::from_secs(3600)).await;
        assert!(cached.get_token("later").await.unwrap().is_none());
        inner.insert_token(&token("later")).await.unwrap();
        assert!(cached.get_token("later").await.unwrap().is_some());
    }
}
