//! PostgreSQL storage, for several instances behind one load balancer
//! (`--data postgres://...`). The same semantics as SQLite: each write is one
//! transaction, committed (and, with PostgreSQL's defaults, flushed) before the
//! 2xx; conditional writes compare-and-swap on `version`; jobs are claimed with
//! `FOR UPDATE SKIP LOCKED`, so any instance may take one, and a job whose
//! instance died is taken over once its lease expires.
//!
//! The SQL mirrors `sqlite.rs` statement for statement (placeholders `$n`,
//! JSONB operators for filters); the shared behaviour is proven by running the
//! same service test suite against both (`VERDICT_TEST_STORAGE=postgres`).

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

use super::rows::{self, json_text, parse_json, unique_value};
use super::*;
use crate::fault;

/// The migrations, embedded in the binary.
fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("initial"),
        MigrationType::Simple,
        include_str!("../../migrations/postgres/0001_initial.sql").into_sql_str(),
        false,
    )])
}

/// PostgreSQL storage.
#[derive(Clone, Debug)]
pub struct PgStorage {
    pool: PgPool,
}

fn db_err(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StorageError::Unavailable(e.to_string())
        }
        // Connection exceptions (08xxx), shutdown or start-up (57P0x), a full
        // disk (53100): the server is unreachable or cannot write now (503).
        sqlx::Error::Database(d)
            if d.code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53100") =>
        {
            StorageError::Unavailable(e.to_string())
        }
        _ => StorageError::Internal(e.to_string()),
    }
}

impl PgStorage {
    /// Connects to `url` and runs the migrations (under an advisory lock, so
    /// instances starting together do not race).
    pub async fn open(url: &str) -> StorageResult<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StorageError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Short, so a request fails fast with 503 while the server is down.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        migrator()
            .run(&pool)
            .await
            .map_err(|e| StorageError::Internal(format!("migration failed: {e}")))?;
        Ok(PgStorage { pool })
    }

    /// The pool, unless fault injection makes storage unavailable for this request.
    fn pool(&self) -> StorageResult<&PgPool> {
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// One column of a row, by name (what `rows::row_decoders!` reads with).
fn col<'r, T>(row: &'r PgRow, name: &str) -> StorageResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name)
        .map_err(|e| StorageError::Internal(format!("column {name}: {e}")))
}

rows::row_decoders!(PgRow);

/// Inserts the unique values of `record`; a taken value is a 409 naming the field.
async fn insert_unique_values(
    tx: &mut sqlx::PgConnection,
    collection: &CollectionRow,
    record: &RecordRow,
) -> StorageResult<()> {
    for field in &collection.unique {
        let Some(value) = unique_value(&record.data, field) else {
            continue;
        };
        let r = sqlx::query(
            "INSERT INTO unique_values (collection, field, value, record_id) VALUES ($1, $2, $3, $4)",
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
impl Storage for PgStorage {
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            t,
        )
        .await
    }

    async fn upsert_token(&self, t: &TokenRow) -> StorageResult<()> {
        self.write_token(
            "INSERT INTO tokens (id, secret_hash, scopes, collections, rate_requests, rate_per_seconds, write_quota, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes,
               collections = excluded.collections, revoked_at = NULL",
            t,
        )
        .await
    }

    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
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
        let r =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
        sqlx::query("DELETE FROM aliases WHERE old_name = $1 AND until <= $2")
            .bind(&c.name)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let alias = sqlx::query("SELECT 1 FROM aliases WHERE old_name = $1")
            .bind(&c.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if alias.is_some() {
            return Err(StorageError::Conflict(Conflict::CollectionExists));
        }
        let r = sqlx::query(
            "INSERT INTO collections (name, schema, uniq, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
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
        let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
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
        let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
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
                sqlx::query("DELETE FROM unique_values WHERE collection = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                current.unique = unique.clone();
                let rows = sqlx::query("SELECT * FROM records WHERE collection = $1")
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
        sqlx::query(
            "UPDATE collections SET schema = $1, uniq = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(current.schema.as_ref().map(json_text))
        .bind(json_text(&current.unique))
        .bind(current.updated_at)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some((new_name, until)) = &change.rename {
            let taken = sqlx::query(
                "SELECT 1 FROM collections WHERE name = $1
                 UNION ALL SELECT 1 FROM aliases WHERE old_name = $1 AND until > $2",
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
                "UPDATE collections SET name = $1 WHERE name = $2",
                "UPDATE records SET collection = $1 WHERE collection = $2",
                "UPDATE unique_values SET collection = $1 WHERE collection = $2",
                "UPDATE jobs SET collection = $1 WHERE collection = $2",
                "UPDATE aliases SET new_name = $1 WHERE new_name = $2",
            ] {
                sqlx::query(sql)
                    .bind(new_name)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            sqlx::query(
                "INSERT INTO aliases (old_name, new_name, until) VALUES ($1, $2, $3)
                 ON CONFLICT (old_name) DO UPDATE SET new_name = excluded.new_name, until = excluded.until",
            )
            .bind(name)
            .bind(new_name)
            .bind(until)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query("DELETE FROM aliases WHERE old_name = $1")
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
        let exists = sqlx::query("SELECT 1 FROM collections WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StorageError::NotFound);
        }
        let any = sqlx::query("SELECT 1 FROM records WHERE collection = $1 LIMIT 1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if any.is_some() && !force {
            return Err(StorageError::Conflict(Conflict::NotEmpty));
        }
        for sql in [
            "DELETE FROM records WHERE collection = $1",
            "DELETE FROM unique_values WHERE collection = $1",
            "DELETE FROM aliases WHERE new_name = $1",
            "DELETE FROM collections WHERE name = $1",
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
        let row = sqlx::query("SELECT new_name FROM aliases WHERE old_name = $1 AND until > $2")
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
            "INSERT INTO records (collection, id, data, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
        let row = sqlx::query("SELECT * FROM records WHERE collection = $1 AND id = $2")
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
            "UPDATE records SET data = $1, version = $2, updated_at = $3 WHERE collection = $4 AND id = $5 AND version = $6",
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
        sqlx::query("DELETE FROM unique_values WHERE collection = $1 AND record_id = $2")
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
            sqlx::query("DELETE FROM records WHERE collection = $1 AND id = $2 AND version = $3")
                .bind(collection)
                .bind(id)
                .bind(expected_version)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StorageError::VersionMismatch);
        }
        sqlx::query("DELETE FROM unique_values WHERE collection = $1 AND record_id = $2")
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
        let mut sql = String::from("SELECT * FROM records WHERE collection = $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if after.is_some() {
            sql.push_str(&format!(" AND id > ${}", next()));
        }
        for _ in filters {
            let (f, text, typed) = (next(), next(), next());
            sql.push_str(&format!(
                " AND ((data::jsonb ->> ${f}) = ${text} OR (data::jsonb -> ${f}) = ${typed}::jsonb)"
            ));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", next()));
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(collection);
        if let Some(a) = after {
            q = q.bind(a);
        }
        for f in filters {
            // The value as text, and as the JSON scalar it spells (number, bool).
            let typed = match f.value.as_str() {
                "true" | "false" => Some(f.value.clone()),
                // Only what JSON itself calls a number (`.5` or `01` would not cast).
                v => serde_json::from_str::<serde_json::Number>(v)
                    .ok()
                    .map(|n| n.to_string()),
            };
            q = q.bind(f.field.clone()).bind(f.value.clone()).bind(typed);
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
        let row = sqlx::query("SELECT * FROM idempotency WHERE token_id = $1 AND key = $2")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_id, key) DO NOTHING",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
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
        // SKIP LOCKED: concurrent claimers on other instances pass over a row
        // being claimed instead of waiting for it, and never get the same job.
        let row = sqlx::query(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id = (SELECT id FROM jobs
                         WHERE state = 'queued' OR (state = 'running' AND lease_until < $3)
                         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
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
            "UPDATE jobs SET processed = $1, total = COALESCE($2, total), lease_until = $3, updated_at = $4
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
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
            "UPDATE jobs SET state = $1, result = $2, error = $3, updated_at = $4, input = NULL, lease_until = NULL
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
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
            "UPDATE jobs SET state = 'cancelled', updated_at = $1, input = NULL
             WHERE id = $2 AND state IN ('queued', 'running') RETURNING *",
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
