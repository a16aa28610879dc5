//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so a
//! commit is on disk (fsync) before it returns, and a `kill -9` at any moment
//! loses no acknowledged write and leaves no half-written one.
//!
//! # Group commit
//!
//! Every write goes to one writer thread, which owns the only connection that
//! writes. It takes all the writes waiting in its queue, runs each in its own
//! savepoint inside one transaction, and commits them together: one fsync
//! acknowledges the whole batch. No caller hears back before that commit has
//! returned. A write that fails (a conflict, a lost compare-and-swap, a panic)
//! rolls back to its savepoint alone; a commit that fails (a full disk) fails
//! every write of its batch, none of which was acknowledged. Under load this
//! turns one fsync per write into one per batch, without relaxing durability;
//! alone, a write waits for nobody.
//!
//! # Reads
//!
//! Reads use a small pool of connections (WAL lets them run beside the writer,
//! each seeing the last commit) and run on the calling task: a point read from
//! SQLite's page cache takes a few microseconds, less than handing it to
//! another thread would. Scans whose length the caller does not bound
//! (filtered lists) go to tokio's blocking pool instead. A record's point read
//! is served from memory when it can be ([`record_cache`]): the writer thread
//! sees every change, so it keeps that cache exact.
//!
//! Why rusqlite rather than sqlx (which the PostgreSQL backend uses): sqlx's
//! SQLite driver runs each statement on a per-connection worker thread behind
//! a channel, and cannot batch writes from many requests into one commit.
//! Measured with `bench/run.sh`, that hop was most of a record read's cost.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{FromSql, Value as SqlValue};
use rusqlite::{ffi, params, params_from_iter, Connection, ErrorCode, OpenFlags, Params, Row};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::rows::{self, job_columns, json_text, parse_json, record_size, unique_value};
use super::*;
use crate::observe::fault;

pub mod backup;
mod collections;
mod engine;
mod jobs;
mod migrate;
pub mod record_cache;
mod records;
#[cfg(test)]
mod tests;
mod tokens;

use engine::{write_batches, PendingWrite, Readers, Write};
use migrate::migrate;
use record_cache::{RecordCache, Touches};

/// SQLite storage.
#[derive(Clone)]
pub struct SqliteStorage {
    readers: Arc<Readers>,
    writer: mpsc::Sender<Box<dyn PendingWrite>>,
    records: Arc<RecordCache>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.readers.path)
            .finish_non_exhaustive()
    }
}

fn db_err(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        // Busy, a full disk, a failing disk: the transaction was rolled back
        // whole; a retry later may succeed (503), it is not a bug (500).
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen,
        ) => StorageError::Unavailable(e.to_string()),
        _ => StorageError::Internal(e.to_string()),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// One column of a row, by name (what `rows::row_decoders!` reads with).
fn col<T: FromSql>(row: &Row<'_>, name: &str) -> StorageResult<T> {
    row.get(name)
        .map_err(|e| StorageError::Internal(format!("column {name}: {e}")))
}

rows::row_decoders!(Row<'_>);

/// Runs a statement; the number of rows it changed.
fn execute(conn: &Connection, sql: &str, params: impl Params) -> StorageResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db_err)
}

/// Runs an INSERT; a primary-key or unique clash is the conflict `on_clash` names.
fn insert(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    on_clash: impl FnOnce() -> Conflict,
) -> StorageResult<()> {
    match conn.prepare_cached(sql).and_then(|mut s| s.execute(params)) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StorageError::Conflict(on_clash())),
        Err(e) => Err(db_err(e)),
    }
}

/// The first row of a query, decoded.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    decode: impl FnOnce(&Row<'_>) -> StorageResult<T>,
) -> StorageResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query(params).map_err(db_err)?;
    match rows.next().map_err(db_err)? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Every row of a query, decoded.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut decode: impl FnMut(&Row<'_>) -> StorageResult<T>,
) -> StorageResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let mut rows = stmt.query(params).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, runs the migrations
    /// and starts the writer thread, with a record cache of
    /// [`record_cache::DEFAULT_BYTES`].
    pub async fn open(path: &Path) -> StorageResult<Self> {
        Self::open_with_cache(path, record_cache::DEFAULT_BYTES).await
    }

    /// As [`open`](Self::open), with a record cache of about `cache_bytes`
    /// (0: none).
    pub async fn open_with_cache(path: &Path, cache_bytes: u64) -> StorageResult<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Unavailable(format!("cannot create {dir:?}: {e}"))
                })?;
            }
        }
        let conn = open_connection(path, OpenFlags::default()).map_err(db_err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Unavailable(format!(
                "SQLite refused WAL mode for {path:?} (got {mode})"
            )));
        }
        migrate(&conn)?;
        // One process owns an SQLite file: jobs still "running" were running in
        // a process that died, so they go back to the queue at once instead of
        // waiting out their lease.
        execute(
            &conn,
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE state = 'running'",
            [],
        )?;
        let (writer, queue) = mpsc::channel();
        let records = Arc::new(RecordCache::new(cache_bytes));
        let kept = records.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(conn, queue, &kept))
            .map_err(|e| StorageError::Internal(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStorage {
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            writer,
            records,
        })
    }

    /// Opens a database from a `sqlite:PATH` or `sqlite://PATH` URL (any
    /// `?query` is ignored: the connection settings are not optional).
    pub async fn open_url(url: &str) -> StorageResult<Self> {
        Self::open_url_with_cache(url, record_cache::DEFAULT_BYTES).await
    }

    /// As [`open_url`](Self::open_url), with a record cache of about
    /// `cache_bytes` (0: none).
    pub async fn open_url_with_cache(url: &str, cache_bytes: u64) -> StorageResult<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StorageError::Unavailable(format!("not a sqlite: URL: {url}")))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(StorageError::Unavailable(
                "SQLite needs a file: an in-memory database cannot be shared by the writer and the readers".into(),
            ));
        }
        Self::open_with_cache(Path::new(path), cache_bytes).await
    }

    /// Runs a bounded read on this task.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StorageResult<T>) -> StorageResult<T> {
        fault_check()?;
        self.readers.run(f)
    }

    /// Runs a read of unbounded length on the blocking pool.
    async fn scan<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        fault_check()?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.run(f))
            .await
            .map_err(|e| StorageError::Internal(format!("a scan failed: {e}")))?
    }

    /// Queues a write for the next batch; answers once it is committed. It
    /// may touch any record (the record cache forgets everything).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        self.write_touching(Touches::Anything, f).await
    }

    /// [`write`](Self::write), saying which records it may change.
    async fn write_touching<T: Send + 'static>(
        &self,
        touches: Touches,
        f: impl FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        fault_check()?;
        let (reply, answer) = oneshot::channel();
        let write = Write {
            work: Some(f),
            outcome: None,
            reply,
            touches,
        };
        self.writer
            .send(Box::new(write))
            .map_err(|_| StorageError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Internal("the SQLite writer dropped a write".into()))?
    }
}

/// Storage is unavailable for this request when fault injection says so.
fn fault_check() -> StorageResult<()> {
    if fault::storage_unavailable() {
        return Err(StorageError::Unavailable("fault injection".into()));
    }
    Ok(())
}

#[async_trait]
impl Health for SqliteStorage {
    async fn ping(&self) -> StorageResult<()> {
        self.read(|conn| query_opt(conn, "SELECT 1", [], |_| Ok(())).map(|_| ()))
    }
}
