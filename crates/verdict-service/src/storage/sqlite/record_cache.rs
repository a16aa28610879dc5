//! Records kept in memory for point reads (`GET` one record), kept exact by
//! the writer thread, which sees every change: SQLite mode has one process
//! per database file and one thread that writes.
//!
//! Every write the writer commits says what it touched (`Touches`): the
//! record writes name their keys, and any other write (a collection deleted,
//! an import applied, a retention purge) says it may have touched anything.
//! After the batch's commit, and before any of its callers hears back, the
//! writer bumps an epoch and forgets what was touched (everything, for
//! "anything"). So once a write is acknowledged, no read is served the record
//! as it was before it.
//!
//! A read that misses reads SQLite, keeps the row, then looks at the epoch
//! again: if a write was committed meanwhile, it forgets the row it just
//! kept (it may be older than that write). Checking after keeping, not before,
//! is what closes the race: a stale row is either removed by the writer (kept
//! before the writer's forget) or by its reader (kept after the bump).
//!
//! The cache is bounded by an estimate of the rows' memory (see
//! [`DEFAULT_BYTES`]); the least used go first. PostgreSQL mode has no record
//! cache: several instances write there, and none sees every change.

use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::*;

/// The memory the cache may hold by default: 64 MiB, by an estimate of each
/// row's memory (its JSON size, twice over, plus a fixed overhead).
pub const DEFAULT_BYTES: u64 = 64 << 20;

/// What a write may have changed among the records.
#[derive(Clone, Debug)]
pub(super) enum Touches {
    /// These records (collection id, record id).
    Records(Vec<(i64, String)>),
    /// No record at all (a token, a job's lease).
    NoRecord,
    /// Possibly any record.
    Anything,
}

type Key = (i64, String);

/// An estimate of a cached row's memory: its JSON size, twice over for
/// `serde_json`'s maps and allocations, and a fixed overhead.
fn weight(row: &RecordRow) -> u64 {
    rows::record_size(row) as u64 * 2 + 256
}

#[derive(Clone)]
struct ByMemory;

impl Weighter<Key, RecordRow> for ByMemory {
    fn weight(&self, _key: &Key, row: &RecordRow) -> u64 {
        weight(row)
    }
}

/// The record cache.
pub(super) struct RecordCache {
    rows: Option<Cache<Key, RecordRow, ByMemory>>,
    epoch: AtomicU64,
}

impl RecordCache {
    /// A cache of about `bytes` of rows (0: none).
    pub(super) fn new(bytes: u64) -> Self {
        let rows = (bytes > 0).then(|| {
            // quick_cache sizes its tables by an item estimate: 1 KiB a row.
            let items = (bytes / 1024).clamp(16, 1 << 20) as usize;
            Cache::with_weighter(items, bytes, ByMemory)
        });
        RecordCache {
            rows,
            epoch: AtomicU64::new(0),
        }
    }

    /// The record, from memory or from `read` (kept unless a write raced it).
    pub(super) fn get_or_read(
        &self,
        collection_id: i64,
        id: &str,
        read: impl FnOnce() -> StorageResult<Option<RecordRow>>,
    ) -> StorageResult<Option<RecordRow>> {
        let Some(rows) = &self.rows else {
            return read();
        };
        let key = (collection_id, id.to_owned());
        // An injected outage must reach the store, as a real one would.
        if !fault::storage_unavailable() {
            if let Some(row) = rows.get(&key) {
                return Ok(Some(row));
            }
        }
        let seen = self.epoch.load(Ordering::SeqCst);
        let row = read()?;
        if let Some(row) = &row {
            rows.insert(key.clone(), row.clone());
            if self.epoch.load(Ordering::SeqCst) != seen {
                rows.remove(&key);
            }
        }
        Ok(row)
    }

    /// Called by the writer thread after a batch's commit (or rollback),
    /// before its callers hear back: forgets what the write touched.
    pub(super) fn forget(&self, touches: &Touches) {
        let Some(rows) = &self.rows else { return };
        match touches {
            Touches::NoRecord => {}
            Touches::Records(keys) => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                for key in keys {
                    rows.remove(key);
                }
            }
            Touches::Anything => {
                self.epoch.fetch_add(1, Ordering::SeqCst);
                rows.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64) -> RecordRow {
        RecordRow {
            id: "r".into(),
            data: serde_json::json!({"v": version})
                .as_object()
                .unwrap()
                .clone(),
            version,
            created_at: 0,
            updated_at: version,
        }
    }

    #[test]
    fn a_read_raced_by_a_write_is_not_kept() {
        let cache = RecordCache::new(1 << 20);
        // The write commits (and is forgotten) while the read is in SQLite.
        let got = cache
            .get_or_read(1, "r", || {
                cache.forget(&Touches::Records(vec![(1, "r".into())]));
                Ok(Some(row(1)))
            })
            .unwrap();
        assert_eq!(got.unwrap().version, 1, "the read is answered");
        let again = cache.get_or_read(1, "r", || Ok(Some(row(2)))).unwrap();
        assert_eq!(
            again.unwrap().version,
            2,
            "but not kept: the next read goes to SQLite"
        );
        let hit = cache
            .get_or_read(1, "r", || panic!("served from memory"))
            .unwrap();
        assert_eq!(hit.unwrap().version, 2);
    }

    #[test]
    fn writes_forget_what_they_touched_and_other_writes_forget_everything() {
        let cache = RecordCache::new(1 << 20);
        for id in ["a", "b"] {
            cache.get_or_read(1, id, || Ok(Some(row(1)))).unwrap();
        }
        cache.forget(&Touches::NoRecord);
        cache.forget(&Touches::Records(vec![(1, "a".into())]));
        let read_again = std::cell::Cell::new(0);
        let read = || {
            read_again.set(read_again.get() + 1);
            Ok(Some(row(2)))
        };
        cache.get_or_read(1, "a", read).unwrap();
        cache.get_or_read(1, "b", read).unwrap();
        assert_eq!(read_again.get(), 1, "only a was forgotten");
        cache.forget(&Touches::Anything);
        cache.get_or_read(1, "b", read).unwrap();
        assert_eq!(read_again.get(), 2, "everything was forgotten");
        let none = RecordCache::new(0);
        none.get_or_read(1, "a", read).unwrap();
        none.get_or_read(1, "a", read).unwrap();
        assert_eq!(read_again.get(), 4, "a cache of 0 bytes keeps nothing");
    }
}
