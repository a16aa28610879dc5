//! The embedded default: SQLite through sqlx, in WAL mode with
//! `synchronous=FULL`, so a commit is on disk (fsync) before it returns and a
//! `kill -9` at any moment loses no acknowledged write and leaves no half-written
//! one (each write is one transaction).

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

use super::rows::{self, is_unique_violation, json_text, parse_json, unique_value};
use super::*;
use crate::fault;

/// The migrations, embedded in the binary.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("initial"),
        MigrationType::Simple,
        include_str!("../../migrations/sqlite/0001_initial.sql").into_sql_str(),
        false,
    )])
}

/// SQLite storage.
#[derive(Clone, Debug)]
pub struct SqliteStorage {
    pool: SqlitePool,
}

fn db_err(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StorageError::Unavailable(e.to_string())
        }
        // Busy, or the disk is full: the transaction was rolled back whole;
        // a retry later may succeed (503), it is not a bug (500).
        sqlx::Error::Database(d)
            if d.message().contains("database is locked")
                || d.message().contains("disk is full") =>
        {
            StorageError::Unavailable(e.to_string())
        }
        _ => StorageError::Internal(e.to_string()),
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and runs the migrations.
    pub async fn open(path: &Path) -> StorageResult<Self> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Unavailable(format!("cannot create {dir:?}: {e}"))
                })?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        Self::connect(options).await
    }

    /// Opens a database from a `sqlite:` URL.
    pub async fn open_url(url: &str) -> StorageResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> StorageResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
        // One process owns an SQLite file: jobs still "running" were running in
        // a process that died, so they go back to the queue at once instead of
        // waiting out their lease.
        sqlx::query("UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL WHERE state = 'running'")
            .execute(&pool)
            .await
            .map_err(db_err)?;
        Ok(SqliteStorage { pool })
    }

    /// The pool, unless fault injection makes storage unavailable for this request.
    fn pool(&self) -> StorageResult<&SqlitePool> {
        if fault::storage_unavailable() {
            return Err(StorageError::Unavailable("fault injection".into()));
        }
        Ok(&self.pool)
    }

    /// Writes a token with `sql`, whose nine placeholders take its columns in order.
    async fn write_token(&self, sql: &'static str, t: &TokenRow) -> StorageResult<()> {
        sqlx::query(sql)
            .bind(&t.id)
            .bind(&t.secret_hash)
            .bind(json_text(&t.scopes))
            .bind(t.collections.as_ref().map(json_text))
            .bind(t.rate_limit.map(|r| r.0 as i64))
            .bind(t.rate_limit.map(|r| r.1 as i64))
            .bind(t.write_quota.map(|q| q as i64))
            .bind(t.created_at)
            .bind(t.revoked_at)
            .execute(self.pool()?)
            .await
            .map(|_| ())
            .map_err(db_err)
    }
}

rows::row_decoders!(SqliteRow);

/// Inserts the unique values of `record`; a taken value is a 409 naming the field.
async fn insert_unique_values(
    tx: &mut sqlx::SqliteConnection,
    collection: &CollectionRow,
    record: &RecordRow,
) -> StorageResult<()> {
    for field in &collection.unique {
        let Some(value) = unique_value(&record.data, field) else {
            continue;
        };
        let r = sqlx::query(
            "INSERT INTO unique_values (collection, field, value, record_id) VALUES (?, ?, ?, ?)",
        )
        .bind(&collection.name)
        .bind(field)
        .bind(value)
        .bind(&record.id)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::Unique {
                    field: field.clone(),
                }))
            }
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok(())
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.pool()?)
            .await
            .map(|_| ())
            .map_err(db_err)
    }

    async fn insert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(
            "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            t,
        )
        .await
    }

    async fn upsert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(
            "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes,
               collections = excluded.collections, revoked_at = NULL",
            t,
        )
        .await
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>> {
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
            .fetch_all(self.pool()?)
            .await
            .map_err(db_err)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()> {
        let r = sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(at)
            .bind(id)
            .execute(self.pool()?)
            .await
            .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        // A live alias holds its old name: creating it would shadow the redirect.
        sqlx::query("DELETE FROM aliases WHERE old_name = ? AND until <= ?")
            .bind(&c.name)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let alias = sqlx::query("SELECT 1 FROM aliases WHERE old_name = ?")
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if alias.is_some() {
            return Err(StorageError::Conflict(Conflict::CollectionExists));
        }
        let r = sqlx::query(
            "INSERT INTO collections (name, schema, uniq, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&c.name)
        .bind(c.schema.as_ref().map(json_text))
        .bind(json_text(&c.unique))
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::CollectionExists))
            }
            Err(e) => return Err(db_err(e)),
        }
        tx.commit().await.map_err(db_err)
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query("SELECT * FROM collections WHERE name = ?")
            .bind(name)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>> {
        let rows = sqlx::query("SELECT * FROM collections ORDER BY name")
            .fetch_all(self.pool()?)
            .await
            .map_err(db_err)?;
        rows.iter().map(collection_from_row).collect()
    }

    async fn update_collection(
        &self,
        name: &str,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM collections WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut current = match row {
            Some(r) => collection_from_row(&r)?,
            None => return Err(StorageError::NotFound),
        };
        if let Some(schema) = &change.schema {
            current.schema = schema.clone();
        }
        if let Some(unique) = &change.unique {
            if unique != &current.unique {
                // Rebuild the unique index from the records; a duplicate is a 409.
                sqlx::query("DELETE FROM unique_values WHERE collection = ?")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                current.unique = unique.clone();
                let rows = sqlx::query("SELECT * FROM records WHERE collection = ?")
                    .bind(name)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                for r in &rows {
                    insert_unique_values(&mut tx, &current, &record_from_row(r)?).await?;
                }
            }
        }
        current.updated_at = change.updated_at;
        sqlx::query("UPDATE collections SET schema = ?, uniq = ?, updated_at = ? WHERE name = ?")
            .bind(current.schema.as_ref().map(json_text))
            .bind(json_text(&current.unique))
            .bind(current.updated_at)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some((new_name, until)) = &change.rename {
            let taken = sqlx::query(
                "SELECT 1 FROM collections WHERE name = ?1
                 UNION ALL SELECT 1 FROM aliases WHERE old_name = ?1 AND until > ?2",
            )
            .bind(new_name)
            .bind(change.updated_at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if taken.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            for sql in [
                "UPDATE collections SET name = ?1 WHERE name = ?2",
                "UPDATE records SET collection = ?1 WHERE collection = ?2",
                "UPDATE unique_values SET collection = ?1 WHERE collection = ?2",
                "UPDATE jobs SET collection = ?1 WHERE collection = ?2",
                "UPDATE aliases SET new_name = ?1 WHERE new_name = ?2",
            ] {
                sqlx::query(sql)
                    .bind(new_name)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            sqlx::query(
                "INSERT INTO aliases (old_name, new_name, until) VALUES (?, ?, ?)
                 ON CONFLICT (old_name) DO UPDATE SET new_name = excluded.new_name, until = excluded.until",
            )
            .bind(name)
            .bind(new_name)
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM aliases WHERE old_name = ?")
                .bind(new_name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            current.name = new_name.clone();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(current)
    }

    async fn delete_collection(&self, name: &str, force: bool) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let exists = sqlx::query("SELECT 1 FROM collections WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StorageError::NotFound);
        }
        let any = sqlx::query("SELECT 1 FROM records WHERE collection = ? LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if any.is_some() && !force {
            return Err(StorageError::Conflict(Conflict::NotEmpty));
        }
        for sql in [
            "DELETE FROM records WHERE collection = ?",
            "DELETE FROM unique_values WHERE collection = ?",
            "DELETE FROM aliases WHERE new_name = ?",
            "DELETE FROM collections WHERE name = ?",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn resolve_alias(&self, old_name: &str, now: i64) -> StorageResult<Option<String>> {
        let row = sqlx::query("SELECT new_name FROM aliases WHERE old_name = ? AND until > ?")
            .bind(old_name)
            .bind(now)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| r.get("new_name")))
    }

    async fn create_record(&self, c: &CollectionRow, r: &RecordRow) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let res = sqlx::query(
            "INSERT INTO records (collection, id, data, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.name)
        .bind(&r.id)
        .bind(json_text(&r.data))
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::RecordExists))
            }
            Err(e) => return Err(db_err(e)),
        }
        insert_unique_values(&mut tx, c, r).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_record(&self, collection: &str, id: &str) -> StorageResult<Option<RecordRow>> {
        let row = sqlx::query("SELECT * FROM records WHERE collection = ? AND id = ?")
            .bind(collection)
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(record_from_row).transpose()
    }

    async fn update_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let res = sqlx::query(
            "UPDATE records SET data = ?, version = ?, updated_at = ? WHERE collection = ? AND id = ? AND version = ?",
        )
        .bind(json_text(&r.data))
        .bind(r.version)
        .bind(r.updated_at)
        .bind(&c.name)
        .bind(&r.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StorageError::VersionMismatch);
        }
        sqlx::query("DELETE FROM unique_values WHERE collection = ? AND record_id = ?")
            .bind(&c.name)
            .bind(&r.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_unique_values(&mut tx, c, r).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let res =
            sqlx::query("DELETE FROM records WHERE collection = ? AND id = ? AND version = ?")
                .bind(collection)
                .bind(id)
                .bind(expected_version)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StorageError::VersionMismatch);
        }
        sqlx::query("DELETE FROM unique_values WHERE collection = ? AND record_id = ?")
            .bind(collection)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn list_records(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[Filter],
    ) -> StorageResult<Vec<RecordRow>> {
        // Only placeholders are added to the text; field names and values are bound.
        let mut sql = String::from("SELECT * FROM records WHERE collection = ?");
        if after.is_some() {
            sql.push_str(" AND id > ?");
        }
        for _ in filters {
            sql.push_str(" AND (json_extract(data, ?) = ? OR json_extract(data, ?) = ?)");
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(collection);
        if let Some(a) = after {
            q = q.bind(a);
        }
        for f in filters {
            let path = format!("$.\"{}\"", f.field);
            // The value as text, and as the JSON scalar it spells (number, bool).
            let typed: Option<f64> = match f.value.as_str() {
                "true" => Some(1.0),
                "false" => Some(0.0),
                v => v.parse::<f64>().ok(),
            };
            q = q
                .bind(path.clone())
                .bind(f.value.clone())
                .bind(path)
                .bind(typed);
        }
        let rows = q
            .bind(limit as i64)
            .fetch_all(self.pool()?)
            .await
            .map_err(db_err)?;
        rows.iter().map(record_from_row).collect()
    }

    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>> {
        let row = sqlx::query("SELECT * FROM idempotency WHERE token_id = ? AND key = ?")
            .bind(token_id)
            .bind(key)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let headers: String = row.get("headers");
        let status: i64 = row.get("status");
        Ok(Some(StoredResponse {
            fingerprint: row.get("fingerprint"),
            status: status as u16,
            headers: parse_json(&headers)?,
            body: row.get("body"),
        }))
    }

    async fn put_idempotent(
        &self,
        token_id: &str,
        key: &str,
        r: &StoredResponse,
        at: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO idempotency (token_id, key, fingerprint, status, headers, body, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token_id, key) DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(&r.fingerprint)
        .bind(r.status as i64)
        .bind(json_text(&r.headers))
        .bind(&r.body)
        .bind(at)
        .execute(self.pool()?)
        .await
        .map(|_| ())
        .map_err(db_err)
    }

    async fn insert_job(&self, j: &JobRow) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, collection, token_id, state, processed, total, input, result, error, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(&j.collection)
        .bind(&j.token_id)
        .bind(j.state.as_str())
        .bind(j.processed)
        .bind(j.total)
        .bind(&j.input)
        .bind(j.result.as_ref().map(json_text))
        .bind(&j.error)
        .bind(j.created_at)
        .bind(j.updated_at)
        .execute(self.pool()?)
        .await
        .map(|_| ())
        .map_err(db_err)
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> StorageResult<Option<JobRow>> {
        // One statement: SQLite runs it atomically, so two claimers never get one job.
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, updated_at = ?3
             WHERE id = (SELECT id FROM jobs
                         WHERE state = 'queued' OR (state = 'running' AND lease_until < ?3)
                         ORDER BY created_at LIMIT 1)
             RETURNING *",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .fetch_optional(self.pool()?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        total: Option<i64>,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()> {
        let r = sqlx::query(
            "UPDATE jobs SET processed = ?, total = COALESCE(?, total), lease_until = ?, updated_at = ?
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(processed)
        .bind(total)
        .bind(lease_until)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(self.pool()?)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        result: Option<&Value>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()> {
        let r = sqlx::query(
            "UPDATE jobs SET state = ?, result = ?, error = ?, updated_at = ?, input = NULL, lease_until = NULL
             WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(result.map(json_text))
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(self.pool()?)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        let row = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at = ?, input = NULL
             WHERE id = ? AND state IN ('queued', 'running') RETURNING *",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool()?)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => job_from_row(&r),
            None => match self.get_job(id).await? {
                Some(_) => Err(StorageError::Conflict(Conflict::JobFinished)),
                None => Err(StorageError::NotFound),
            },
        }
    }
}
