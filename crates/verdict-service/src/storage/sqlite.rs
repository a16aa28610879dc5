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
//! (filtered lists) go to tokio's blocking pool instead.
//!
//! Why rusqlite rather than sqlx (which the PostgreSQL backend uses): sqlx's
//! SQLite driver runs each statement on a per-connection worker thread behind
//! a channel, and cannot batch writes from many requests into one commit.
//! Measured with `bench/run.sh`, that hop was most of a record read's cost.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{FromSql, Value as SqlValue};
use rusqlite::{ffi, params, params_from_iter, Connection, ErrorCode, OpenFlags, Params, Row};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::rows::{self, job_columns, json_text, parse_json, record_size, unique_value};
use super::*;
use crate::observe::fault;

/// The schema, one script per version; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../migrations/sqlite/0002_collection_identity.sql"),
];

/// The most writes one commit takes (bounds the time a batch holds the lock).
const MAX_BATCH: usize = 256;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// SQLite storage.
#[derive(Clone)]
pub struct SqliteStorage {
    readers: Arc<Readers>,
    writer: mpsc::Sender<Box<dyn PendingWrite>>,
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

/// Applies the migrations not yet applied, in one transaction.
fn migrate(conn: &Connection) -> StorageResult<()> {
    let mut applied: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
        .map_err(db_err)? as usize;
    if applied == 0 {
        // Databases written before the switch from sqlx keep their history in
        // sqlx's table; adopt it instead of re-running the first script.
        let by_sqlx = query_opt(
            conn,
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get::<_, Option<i64>>(0).map_err(db_err),
        );
        if let Ok(Some(Some(v))) = by_sqlx {
            applied = v as usize;
        }
    }
    if applied > MIGRATIONS.len() {
        return Err(StorageError::Internal(format!(
            "the database has schema version {applied}; this build knows {}",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    for script in &MIGRATIONS[applied..] {
        tx.execute_batch(script)
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

/// The read connections.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn run<T>(&self, f: impl FnOnce(&Connection) -> StorageResult<T>) -> StorageResult<T> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE;
                let conn = open_connection(&self.path, flags).map_err(db_err)?;
                conn.pragma_update(None, "query_only", true)
                    .map_err(db_err)?;
                conn
            }
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result
    }
}

/// A write waiting for the writer thread.
trait PendingWrite: Send {
    /// Runs the write inside the batch's transaction; whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn answer(self: Box<Self>, commit: Result<(), StorageError>);
}

struct Write<T, F> {
    work: Option<F>,
    outcome: Option<StorageResult<T>>,
    reply: oneshot::Sender<StorageResult<T>>,
}

impl<T, F> PendingWrite for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StorageResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = match self.work.take() {
            // A panicking write fails alone; the writer thread carries on.
            Some(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(StorageError::Internal("a write panicked".into()))),
            None => Err(StorageError::Internal("a write ran twice".into())),
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), StorageError>) {
        let answer = match (self.outcome, commit) {
            // The write's own failure says more than the commit's.
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StorageError::Internal("a write was not run".into())),
        };
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = self.reply.send(answer);
    }
}

/// The writer thread: batch, run, commit once, answer.
fn write_batches(conn: Connection, queue: mpsc::Receiver<Box<dyn PendingWrite>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        if commit.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        } else if commit.is_ok() {
            // Writes per commit is the group commit's effect, seen on /metrics.
            metrics::counter!("verdict_sqlite_commits_total").increment(1);
            metrics::counter!("verdict_sqlite_batched_writes_total").increment(batch.len() as u64);
        }
        for write in batch {
            write.answer(commit.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn PendingWrite>]) -> Result<(), StorageError> {
    execute(conn, "BEGIN IMMEDIATE", [])?;
    for write in batch.iter_mut() {
        execute(conn, "SAVEPOINT write", [])?;
        if !write.run(conn) {
            execute(conn, "ROLLBACK TO write", [])?;
        }
        execute(conn, "RELEASE write", [])?;
    }
    execute(conn, "COMMIT", [])?;
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path`, runs the migrations
    /// and starts the writer thread.
    pub async fn open(path: &Path) -> StorageResult<Self> {
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
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(conn, queue))
            .map_err(|e| StorageError::Internal(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStorage {
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            writer,
        })
    }

    /// Opens a database from a `sqlite:PATH` or `sqlite://PATH` URL (any
    /// `?query` is ignored: the connection settings are not optional).
    pub async fn open_url(url: &str) -> StorageResult<Self> {
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
        Self::open(Path::new(path)).await
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

    /// Queues a write for the next batch; answers once it is committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    ) -> StorageResult<T> {
        fault_check()?;
        let (reply, answer) = oneshot::channel();
        let write = Write {
            work: Some(f),
            outcome: None,
            reply,
        };
        self.writer
            .send(Box::new(write))
            .map_err(|_| StorageError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Internal("the SQLite writer dropped a write".into()))?
    }

    /// Writes a token with `sql`, whose nine placeholders take its columns in order.
    async fn write_token(&self, sql: &'static str, t: &TokenRow) -> StorageResult<()> {
        let t = t.clone();
        self.write(move |conn| {
            execute(
                conn,
                sql,
                params![
                    t.id,
                    t.secret_hash,
                    json_text(&t.scopes),
                    t.collections.as_ref().map(json_text),
                    t.rate_limit.map(|r| r.0 as i64),
                    t.rate_limit.map(|r| r.1 as i64),
                    t.write_quota.map(|q| q as i64),
                    t.created_at,
                    t.revoked_at,
                ],
            )
            .map(|_| ())
        })
        .await
    }
}

/// Storage is unavailable for this request when fault injection says so.
fn fault_check() -> StorageResult<()> {
    if fault::storage_unavailable() {
        return Err(StorageError::Unavailable("fault injection".into()));
    }
    Ok(())
}

/// The `(field, canonical value)` pairs `data` holds in `unique` fields.
fn unique_pairs(unique: &[String], data: &Map<String, Value>) -> Vec<(String, String)> {
    unique
        .iter()
        .filter_map(|field| unique_value(data, field).map(|v| (field.clone(), v)))
        .collect()
}

/// Inserts a record's unique values; a taken value is a 409 naming the field.
fn insert_unique_values(
    conn: &Connection,
    collection_id: i64,
    record_id: &str,
    pairs: &[(String, String)],
) -> StorageResult<()> {
    for (field, value) in pairs {
        insert(
            conn,
            "INSERT INTO unique_values (collection_id, field, value, record_id) VALUES (?1, ?2, ?3, ?4)",
            params![collection_id, field, value, record_id],
            || Conflict::Unique {
                field: field.clone(),
            },
        )?;
    }
    Ok(())
}

/// The compare-and-swap on a collection that every record write makes, in
/// its own transaction: the write stands only if the collection is still
/// the version its checks (schema, unique fields) were made against.
fn check_collection(conn: &Connection, id: i64, version: i64) -> StorageResult<()> {
    let now = query_opt(
        conn,
        "SELECT version FROM collections WHERE id = ?1",
        [id],
        |r| col::<i64>(r, "version"),
    )?;
    match now {
        None => Err(StorageError::CollectionGone),
        Some(v) if v != version => Err(StorageError::CollectionChanged),
        Some(_) => Ok(()),
    }
}

/// Inserts a record and its unique values.
fn insert_record(
    conn: &Connection,
    collection_id: i64,
    r: &RecordRow,
    unique: &[String],
) -> StorageResult<()> {
    insert(
        conn,
        "INSERT INTO records (collection_id, id, data, version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![collection_id, r.id, json_text(&r.data), r.version, r.created_at, r.updated_at],
        || Conflict::RecordExists,
    )?;
    insert_unique_values(conn, collection_id, &r.id, &unique_pairs(unique, &r.data))
}

/// Whether a job is still `owner`'s to write.
fn owns_job(conn: &Connection, id: &str, owner: &str) -> StorageResult<()> {
    let held = query_opt(
        conn,
        "SELECT 1 FROM jobs WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        [id, owner],
        |_| Ok(()),
    )?;
    held.ok_or(StorageError::NotFound)
}

const INSERT_TOKEN: &str = "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const COLLECTION_BY_ID: &str = "SELECT * FROM collections WHERE id = ?1";

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> StorageResult<()> {
        self.read(|conn| query_opt(conn, "SELECT 1", [], |_| Ok(())).map(|_| ()))
    }

    async fn insert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(INSERT_TOKEN, t).await
    }

    async fn upsert_token(&self, t: &TokenRow) -> StorageResult<()> {
        const UPSERT: &str = "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes,
               collections = excluded.collections, revoked_at = NULL";
        self.write_token(UPSERT, t).await
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM tokens WHERE id = ?1",
                [id],
                token_from_row,
            )
        })
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        self.scan(|conn| {
            query_all(
                conn,
                "SELECT * FROM tokens ORDER BY created_at, id",
                [],
                token_from_row,
            )
        })
        .await
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        let id = id.to_owned();
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![at, id],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<CollectionRow> {
        let c = c.clone();
        self.write(move |conn| {
            // A live alias holds its old name: creating it would shadow the redirect.
            execute(
                conn,
                "DELETE FROM aliases WHERE old_name = ?1 AND until <= ?2",
                params![c.name, c.created_at],
            )?;
            let alias = query_opt(
                conn,
                "SELECT 1 FROM aliases WHERE old_name = ?1",
                [&c.name],
                |_| Ok(()),
            )?;
            if alias.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            let mut stmt = conn
                .prepare_cached(
                    "INSERT INTO collections (name, schema, uniq, version, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 1, ?4, ?5) RETURNING *",
                )
                .map_err(db_err)?;
            let schema = c.schema.as_ref().map(json_text);
            let unique = json_text(&c.unique);
            let mut rows = stmt
                .query(params![c.name, schema, unique, c.created_at, c.updated_at])
                .map_err(db_err)?;
            // SQLite reports the name's clash when the statement first steps.
            match rows.next() {
                Ok(Some(row)) => collection_from_row(row),
                Ok(None) => Err(StorageError::Internal(
                    "INSERT ... RETURNING gave no row".into(),
                )),
                Err(e) if is_unique_violation(&e) => {
                    Err(StorageError::Conflict(Conflict::CollectionExists))
                }
                Err(e) => Err(db_err(e)),
            }
        })
        .await
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM collections WHERE name = ?1",
                [name],
                collection_from_row,
            )
        })
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| query_opt(conn, COLLECTION_BY_ID, [id], collection_from_row))
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        self.scan(|conn| {
            query_all(
                conn,
                "SELECT * FROM collections ORDER BY name",
                [],
                collection_from_row,
            )
        })
        .await
    }

    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let change = change.clone();
        self.write(move |conn| {
            let mut current = query_opt(conn, COLLECTION_BY_ID, [id], collection_from_row)?
                .ok_or(StorageError::NotFound)?;
            if current.version != expected_version {
                return Err(StorageError::VersionMismatch);
            }
            if let Some(schema) = &change.schema {
                current.schema = schema.clone();
            }
            if let Some(unique) = &change.unique {
                if unique != &current.unique {
                    // Rebuild the unique index from the records; a duplicate is a 409.
                    execute(conn, "DELETE FROM unique_values WHERE collection_id = ?1", [id])?;
                    current.unique = unique.clone();
                    let mut stmt = conn
                        .prepare_cached("SELECT * FROM records WHERE collection_id = ?1")
                        .map_err(db_err)?;
                    let mut rows = stmt.query([id]).map_err(db_err)?;
                    while let Some(row) = rows.next().map_err(db_err)? {
                        let r = record_from_row(row)?;
                        insert_unique_values(conn, id, &r.id, &unique_pairs(&current.unique, &r.data))?;
                    }
                }
            }
            if let Some((new_name, until)) = &change.rename {
                let taken = query_opt(
                    conn,
                    "SELECT 1 FROM collections WHERE name = ?1
                     UNION ALL SELECT 1 FROM aliases WHERE old_name = ?1 AND until > ?2 AND collection_id <> ?3",
                    params![new_name, change.updated_at, id],
                    |_| Ok(()),
                )?;
                if taken.is_some() {
                    return Err(StorageError::Conflict(Conflict::CollectionExists));
                }
                // The old name points here for the alias period; the new one is no alias.
                execute(
                    conn,
                    "INSERT INTO aliases (old_name, collection_id, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (old_name) DO UPDATE SET collection_id = excluded.collection_id, until = excluded.until",
                    params![current.name, id, until],
                )?;
                execute(conn, "DELETE FROM aliases WHERE old_name = ?1", [new_name])?;
                current.name = new_name.clone();
            }
            current.updated_at = change.updated_at;
            current.version += 1;
            execute(
                conn,
                "UPDATE collections SET name = ?1, schema = ?2, uniq = ?3, updated_at = ?4, version = ?5 WHERE id = ?6",
                params![
                    current.name,
                    current.schema.as_ref().map(json_text),
                    json_text(&current.unique),
                    current.updated_at,
                    current.version,
                    id
                ],
            )?;
            Ok(current)
        })
        .await
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        self.write(move |conn| {
            let exists = query_opt(conn, "SELECT 1 FROM collections WHERE id = ?1", [id], |_| Ok(()))?;
            if exists.is_none() {
                return Err(StorageError::NotFound);
            }
            let any = query_opt(
                conn,
                "SELECT 1 FROM records WHERE collection_id = ?1 LIMIT 1",
                [id],
                |_| Ok(()),
            )?;
            if any.is_some() && !force {
                return Err(StorageError::Conflict(Conflict::NotEmpty));
            }
            // Finished jobs described data that is gone; running ones stop and say why.
            execute(
                conn,
                "DELETE FROM jobs WHERE collection_id = ?1 AND state IN ('succeeded', 'failed', 'cancelled')",
                [id],
            )?;
            execute(
                conn,
                "UPDATE jobs SET state = 'failed', error = 'the collection was deleted while the job was waiting or running',
                   updated_at = ?2, lease_owner = NULL, lease_until = NULL
                 WHERE collection_id = ?1 AND state IN ('queued', 'running')",
                params![id, now],
            )?;
            execute(
                conn,
                "DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM jobs WHERE collection_id = ?1)",
                [id],
            )?;
            // Records, their unique values and aliases go by the foreign keys' cascade.
            execute(conn, "DELETE FROM collections WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT c.* FROM aliases a JOIN collections c ON c.id = a.collection_id
                 WHERE a.old_name = ?1 AND a.until > ?2",
                params![old_name, now],
                collection_from_row,
            )
        })
    }

    async fn create_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()> {
        let (collection_id, version, unique) = (c.id, c.version, c.unique.clone());
        let r = r.clone();
        let idempotent = idempotent.cloned();
        self.write(move |conn| {
            check_collection(conn, collection_id, version)?;
            if let Some(i) = &idempotent {
                let stored = execute(
                    conn,
                    "INSERT INTO idempotency (token_id, key, fingerprint, status, headers, body, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (token_id, key) DO NOTHING",
                    params![
                        i.token_id,
                        i.key,
                        i.response.fingerprint,
                        i.response.status as i64,
                        json_text(&i.response.headers),
                        i.response.body,
                        i.at
                    ],
                )?;
                if stored == 0 {
                    return Err(StorageError::Conflict(Conflict::IdempotencyKeyTaken));
                }
            }
            insert_record(conn, collection_id, &r, &unique)
        })
        .await
    }

    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM records WHERE collection_id = ?1 AND id = ?2",
                params![collection_id, id],
                record_from_row,
            )
        })
    }

    async fn update_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()> {
        let (collection_id, collection_version) = (c.id, c.version);
        let pairs = unique_pairs(&c.unique, &r.data);
        let (id, data, version, updated_at) =
            (r.id.clone(), json_text(&r.data), r.version, r.updated_at);
        self.write(move |conn| {
            check_collection(conn, collection_id, collection_version)?;
            let changed = execute(
                conn,
                "UPDATE records SET data = ?1, version = ?2, updated_at = ?3 WHERE collection_id = ?4 AND id = ?5 AND version = ?6",
                params![data, version, updated_at, collection_id, id, expected_version],
            )?;
            if changed == 0 {
                return Err(StorageError::VersionMismatch);
            }
            execute(
                conn,
                "DELETE FROM unique_values WHERE collection_id = ?1 AND record_id = ?2",
                params![collection_id, id],
            )?;
            insert_unique_values(conn, collection_id, &id, &pairs)
        })
        .await
    }

    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        let id = id.to_owned();
        self.write(move |conn| {
            // Its unique values go by the foreign key's cascade.
            let changed = execute(
                conn,
                "DELETE FROM records WHERE collection_id = ?1 AND id = ?2 AND version = ?3",
                params![collection_id, id, expected_version],
            )?;
            if changed == 0 {
                return Err(StorageError::VersionMismatch);
            }
            Ok(())
        })
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
        // Only placeholders are added to the text; field names and values are bound.
        let mut sql = String::from("SELECT * FROM records WHERE collection_id = ?");
        let mut args = vec![SqlValue::Integer(collection_id)];
        if let Some(a) = after {
            sql.push_str(" AND id > ?");
            args.push(SqlValue::Text(a.to_owned()));
        }
        for f in filters {
            sql.push_str(" AND (json_extract(data, ?) = ? OR json_extract(data, ?) = ?)");
            let path = format!("$.\"{}\"", f.field);
            // The value as text, and as the JSON scalar it spells (number, bool).
            let typed = match f.value.as_str() {
                "true" => SqlValue::Real(1.0),
                "false" => SqlValue::Real(0.0),
                v => v.parse::<f64>().map_or(SqlValue::Null, SqlValue::Real),
            };
            args.extend([
                SqlValue::Text(path.clone()),
                SqlValue::Text(f.value.clone()),
                SqlValue::Text(path),
                typed,
            ]);
        }
        // The limit is written into the text, not bound: SQLite plans for a
        // bound LIMIT's value and so re-prepares such a statement on every
        // run (a seventh of a page read's time, measured). It is a number
        // this function formats, so nothing from the client enters the SQL.
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let run = move |conn: &Connection| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let mut rows = stmt.query(params_from_iter(args)).map_err(db_err)?;
            let mut page = Page::default();
            let mut bytes = 0;
            while let Some(row) = rows.next().map_err(db_err)? {
                if bytes >= max_bytes {
                    // Rows are read one at a time: past the budget, none more.
                    page.cut_short = true;
                    break;
                }
                let record = record_from_row(row)?;
                bytes += record_size(&record);
                page.rows.push(record);
            }
            Ok(page)
        };
        if filters.is_empty() {
            // Walks the primary key: at most `limit` rows are read.
            self.read(run)
        } else {
            // A filter may read the whole collection to find a page.
            self.scan(run).await
        }
    }

    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>> {
        self.read(|conn| {
            query_opt(
                conn,
                "SELECT * FROM idempotency WHERE token_id = ?1 AND key = ?2",
                [token_id, key],
                |row| {
                    let headers: String = col(row, "headers")?;
                    let status: i64 = col(row, "status")?;
                    Ok(StoredResponse {
                        fingerprint: col(row, "fingerprint")?,
                        status: status as u16,
                        headers: parse_json(&headers)?,
                        body: col(row, "body")?,
                    })
                },
            )
        })
    }

    async fn insert_job(
        &self,
        j: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()> {
        let j = j.clone();
        let input = input.map(<[u8]>::to_vec);
        self.write(move |conn| {
            if j.input_bytes > 0 {
                let queued = query_opt(
                    conn,
                    "SELECT COALESCE(SUM(input_bytes), 0) AS queued FROM jobs
                     WHERE token_id = ?1 AND state IN ('queued', 'running')",
                    [&j.token_id],
                    |r| col::<i64>(r, "queued"),
                )?
                .unwrap_or(0);
                if queued + j.input_bytes > max_queued_bytes {
                    return Err(StorageError::Conflict(Conflict::ImportQueueFull { queued }));
                }
            }
            execute(
                conn,
                "INSERT INTO jobs (id, kind, collection_id, collection, token_id, state, processed, total, input_bytes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    j.id,
                    j.kind,
                    j.collection_id,
                    j.collection,
                    j.token_id,
                    j.state.as_str(),
                    j.processed,
                    j.total,
                    j.input_bytes,
                    j.created_at,
                    j.updated_at
                ],
            )?;
            if let Some(data) = input {
                execute(
                    conn,
                    "INSERT INTO job_inputs (job_id, data) VALUES (?1, ?2)",
                    params![j.id, data],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
        })
    }

    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            query_opt(
                conn,
                "SELECT data FROM job_inputs WHERE job_id = ?1",
                [&id],
                |r| col(r, "data"),
            )
        })
        .await
    }

    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            let kind = query_opt(conn, "SELECT kind FROM jobs WHERE id = ?1", [&id], |r| {
                col::<String>(r, "kind")
            })?;
            match kind.as_deref() {
                Some("export") => query_opt(
                    conn,
                    "SELECT data FROM job_results WHERE job_id = ?1 AND seq = ?2",
                    params![id, seq],
                    |r| col(r, "data"),
                ),
                Some(_) if seq == 0 => Ok(query_opt(
                    conn,
                    "SELECT result FROM jobs WHERE id = ?1",
                    [&id],
                    |r| col::<Option<Vec<u8>>>(r, "result"),
                )?
                .flatten()),
                _ => Ok(None),
            }
        })
        .await
    }

    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            query_all(
                conn,
                "SELECT line, errors FROM job_failures WHERE job_id = ?1 ORDER BY line",
                [&id],
                |r| {
                    let errors: String = col(r, "errors")?;
                    Ok(LineFailure {
                        line: col(r, "line")?,
                        errors: parse_json(&errors)?,
                    })
                },
            )
        })
        .await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>> {
        let owner = owner.to_owned();
        self.write(move |conn| {
            // One statement, on the one writer: two claimers never get one job.
            // Fair between tokens: the token with the fewest jobs running goes first.
            query_opt(
                conn,
                concat!(
                    "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                     WHERE id = (SELECT w.id FROM jobs w
                                 WHERE (w.state = 'queued' OR (w.state = 'running' AND w.lease_until < ?3))
                                   AND (SELECT COUNT(*) FROM jobs r WHERE r.token_id = w.token_id
                                          AND r.state = 'running' AND r.lease_until >= ?3) < ?4
                                 ORDER BY (SELECT COUNT(*) FROM jobs r WHERE r.token_id = w.token_id
                                             AND r.state = 'running' AND r.lease_until >= ?3),
                                          w.created_at
                                 LIMIT 1)
                     RETURNING ",
                    job_columns!()
                ),
                params![owner, lease_until, now, per_token],
                job_from_row,
            )
        })
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
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE jobs SET processed = ?1, lease_until = ?2, updated_at = ?3
                 WHERE id = ?4 AND lease_owner = ?5 AND state = 'running'",
                params![processed, lease_until, now, id, owner],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn export_chunk(&self, c: &ExportChunk<'_>) -> StorageResult<()> {
        let (id, owner, chunk) = (c.job_id.to_owned(), c.owner.to_owned(), c.chunk.to_vec());
        let (seq, processed, lease_until, now) = (c.seq, c.processed, c.lease_until, c.now);
        self.write(move |conn| {
            owns_job(conn, &id, &owner)?;
            if seq == 0 {
                execute(conn, "DELETE FROM job_results WHERE job_id = ?1", [&id])?;
            }
            execute(
                conn,
                "INSERT INTO job_results (job_id, seq, data) VALUES (?1, ?2, ?3)",
                params![id, seq, chunk],
            )?;
            execute(
                conn,
                "UPDATE jobs SET processed = ?1, lease_until = ?2, updated_at = ?3 WHERE id = ?4",
                params![processed, lease_until, now, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn import_step(
        &self,
        step: &ImportStep,
        describe: DescribeConflict,
    ) -> StorageResult<()> {
        let step = step.clone();
        self.write(move |conn| {
            owns_job(conn, &step.job_id, &step.owner)?;
            check_collection(conn, step.collection.id, step.collection.version)?;
            let mut failures = step.failures.clone();
            let mut imported = 0;
            for (line, record) in &step.records {
                execute(conn, "SAVEPOINT line", [])?;
                match insert_record(conn, step.collection.id, record, &step.collection.unique) {
                    Ok(()) => {
                        imported += 1;
                        execute(conn, "RELEASE line", [])?;
                    }
                    Err(StorageError::Conflict(c)) => {
                        execute(conn, "ROLLBACK TO line", [])?;
                        execute(conn, "RELEASE line", [])?;
                        failures.push(LineFailure {
                            line: *line,
                            errors: describe(record, &c),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            failures.sort_by_key(|f| f.line);
            let kept: i64 = query_opt(
                conn,
                "SELECT COUNT(*) AS n FROM job_failures WHERE job_id = ?1",
                [&step.job_id],
                |r| col(r, "n"),
            )?
            .unwrap_or(0);
            for f in failures
                .iter()
                .take((MAX_KEPT_FAILURES - kept).max(0) as usize)
            {
                execute(
                    conn,
                    "INSERT INTO job_failures (job_id, line, errors) VALUES (?1, ?2, ?3)
                     ON CONFLICT (job_id, line) DO NOTHING",
                    params![step.job_id, f.line, json_text(&f.errors)],
                )?;
            }
            execute(
                conn,
                "UPDATE jobs SET processed = ?1, imported = imported + ?2, failed = failed + ?3,
                   lease_until = ?4, updated_at = ?5 WHERE id = ?6",
                params![
                    step.processed,
                    imported,
                    failures.len() as i64,
                    step.lease_until,
                    step.now,
                    step.job_id
                ],
            )?;
            Ok(())
        })
        .await
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
        let (id, owner) = (id.to_owned(), owner.to_owned());
        let result = result.map(<[u8]>::to_vec);
        let error = error.map(str::to_owned);
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE jobs SET state = ?1, result = ?2, error = ?3, updated_at = ?4, lease_until = NULL
                 WHERE id = ?5 AND lease_owner = ?6 AND state = 'running'",
                params![state.as_str(), result, error, now, id, owner],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            execute(conn, "DELETE FROM job_inputs WHERE job_id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        let id = id.to_owned();
        self.write(move |conn| {
            let cancelled = query_opt(
                conn,
                concat!(
                    "UPDATE jobs SET state = 'cancelled', updated_at = ?1
                     WHERE id = ?2 AND state IN ('queued', 'running') RETURNING ",
                    job_columns!()
                ),
                params![now, id],
                job_from_row,
            )?;
            if let Some(job) = cancelled {
                execute(conn, "DELETE FROM job_inputs WHERE job_id = ?1", [&id])?;
                execute(conn, "DELETE FROM job_results WHERE job_id = ?1", [&id])?;
                return Ok(job);
            }
            let exists = query_opt(conn, "SELECT 1 FROM jobs WHERE id = ?1", [&id], |_| Ok(()))?;
            Err(match exists {
                Some(()) => StorageError::Conflict(Conflict::JobFinished),
                None => StorageError::NotFound,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, n: i64) -> RecordRow {
        RecordRow {
            id: id.into(),
            data: serde_json::json!({ "n": n }).as_object().unwrap().clone(),
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn collection() -> CollectionRow {
        CollectionRow {
            id: 0,
            version: 0,
            name: "things".into(),
            schema: None,
            unique: vec!["n".into()],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_together_and_a_failure_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let c = storage.create_collection(&collection()).await.unwrap();
        // 64 writers at once, every other one reusing a unique value.
        let writes = (0..64).map(|i| {
            let (storage, c) = (storage.clone(), c.clone());
            tokio::spawn(async move {
                storage
                    .create_record(&c, &record(&format!("r{i:02}"), i / 2), None)
                    .await
            })
        });
        let mut ok = 0;
        let mut conflicts = 0;
        for w in writes {
            match w.await.unwrap() {
                Ok(()) => ok += 1,
                Err(StorageError::Conflict(Conflict::Unique { field })) => {
                    assert_eq!(field, "n");
                    conflicts += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!((ok, conflicts), (32, 32));
        let listed = storage
            .list_records(c.id, None, 100, &[], usize::MAX)
            .await
            .unwrap()
            .rows;
        assert_eq!(
            listed.len(),
            32,
            "each acknowledged write is there, no other"
        );
        // A conflicting write left no unique value behind: all 32 values are taken once.
        let all_n: std::collections::BTreeSet<_> = listed
            .iter()
            .map(|r| r.data["n"].as_i64().unwrap())
            .collect();
        assert_eq!(all_n.len(), 32);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let panicked = storage
            .write(|conn| -> StorageResult<()> {
                execute(
                    conn,
                    "INSERT INTO tokens (id, secret_hash, scopes, created_at) VALUES ('t', x'00', '[]', 1)",
                    [],
                )?;
                panic!("boom")
            })
            .await;
        assert!(matches!(panicked, Err(StorageError::Internal(_))));
        storage.create_collection(&collection()).await.unwrap();
        assert!(storage.get_token("t").await.unwrap().is_none());
        assert!(storage.get_collection("things").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_database_migrated_by_sqlx_is_adopted_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
                 INSERT INTO _sqlx_migrations VALUES (1, TRUE);
                 INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('kept', '[]', 0, 0);",
            )
            .unwrap();
        }
        let storage = SqliteStorage::open(&path).await.unwrap();
        assert!(storage.get_collection("kept").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_version_1_database_moves_to_collection_ids_keeping_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(
                r#"PRAGMA user_version = 1;
                 INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('books', '["isbn"]', 0, 5);
                 INSERT INTO collections (name, uniq, created_at, updated_at) VALUES ('films', '[]', 1, 1);
                 INSERT INTO records VALUES ('books', 'b1', '{"isbn":"1"}', 1, 0, 0);
                 INSERT INTO records VALUES ('books', 'b2', '{"isbn":"2"}', 3, 0, 7);
                 INSERT INTO unique_values VALUES ('books', 'isbn', '"1"', 'b1');
                 INSERT INTO unique_values VALUES ('books', 'isbn', '"2"', 'b2');
                 INSERT INTO aliases VALUES ('novels', 'books', 9999999999999);
                 INSERT INTO tokens (id, secret_hash, scopes, collections, created_at)
                   VALUES ('t1', x'00', '["read"]', '["films","gone"]', 0);
                 INSERT INTO jobs (id, kind, collection, token_id, state, processed, total, result, created_at, updated_at)
                   VALUES ('j1', 'export', 'books', 't1', 'succeeded', 2, NULL,
                           '{"collection":"books","count":2,"records":[{"id":"b1"},{"id":"b2"}]}', 0, 0);
                 INSERT INTO jobs (id, kind, collection, token_id, state, processed, total, input, created_at, updated_at)
                   VALUES ('j2', 'import', 'films', 't1', 'running', 1, 2, x'7b7d0a7b7d', 0, 0);"#,
            )
            .unwrap();
        }
        let storage = SqliteStorage::open(&path).await.unwrap();
        let books = storage.get_collection("books").await.unwrap().unwrap();
        let films = storage.get_collection("films").await.unwrap().unwrap();
        assert_ne!(books.id, films.id);
        assert_eq!(books.unique, vec!["isbn".to_string()]);
        let b2 = storage.get_record(books.id, "b2").await.unwrap().unwrap();
        assert_eq!((b2.version, b2.updated_at), (3, 7));
        // The unique index came along: a taken value is still taken.
        let clash = RecordRow {
            id: "b3".into(),
            data: serde_json::json!({"isbn": "1"})
                .as_object()
                .unwrap()
                .clone(),
            version: 1,
            created_at: 0,
            updated_at: 0,
        };
        assert!(matches!(
            storage.create_record(&books, &clash, None).await,
            Err(StorageError::Conflict(Conflict::Unique { .. }))
        ));
        assert_eq!(
            storage
                .resolve_alias("novels", 0)
                .await
                .unwrap()
                .unwrap()
                .id,
            books.id
        );
        // Grants name ids now; the grant to a collection that does not exist is gone.
        let t1 = storage.get_token("t1").await.unwrap().unwrap();
        assert_eq!(t1.collections, Some(vec![films.id]));
        // The export's records are served from its chunk, as they were.
        let export = storage.get_job("j1").await.unwrap().unwrap();
        assert_eq!(export.collection_id, Some(books.id));
        let chunk = storage.job_result("j1", 0).await.unwrap().unwrap();
        assert_eq!(chunk, br#"{"id":"b1"},{"id":"b2"}"#);
        // The running import starts again from its first line, with its input.
        let import = storage.get_job("j2").await.unwrap().unwrap();
        assert_eq!((import.state, import.processed), (JobState::Queued, 0));
        assert_eq!(storage.job_input("j2").await.unwrap().unwrap(), b"{}\n{}");
    }
}
