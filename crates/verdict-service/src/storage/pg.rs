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
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

use super::rows::{self, job_columns, json_text, parse_json, record_size, unique_value};
use super::*;
use crate::observe::fault;

/// The migrations, embedded in the binary.
fn migrator() -> Migrator {
    let migration = |version, name, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "initial",
            include_str!("../../migrations/postgres/0001_initial.sql"),
        ),
        migration(
            2,
            "collection identity",
            include_str!("../../migrations/postgres/0002_collection_identity.sql"),
        ),
    ])
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
    collection_id: i64,
    unique: &[String],
    record: &RecordRow,
) -> StorageResult<()> {
    for field in unique {
        let Some(value) = unique_value(&record.data, field) else {
            continue;
        };
        let r = sqlx::query(
            "INSERT INTO unique_values (collection_id, field, value, record_id) VALUES ($1, $2, $3, $4)",
        )
        .bind(collection_id)
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

/// Inserts a record and its unique values.
async fn insert_record(
    tx: &mut sqlx::PgConnection,
    collection_id: i64,
    unique: &[String],
    r: &RecordRow,
) -> StorageResult<()> {
    let res = sqlx::query(
        "INSERT INTO records (collection_id, id, data, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(collection_id)
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
    insert_unique_values(tx, collection_id, unique, r).await
}

/// The compare-and-swap on a collection that every record write makes, in
/// its own transaction. `FOR SHARE` holds the row until the commit, so a
/// concurrent change or deletion of the collection waits for this write (and
/// this write for it): the check cannot go stale before the commit.
async fn check_collection(tx: &mut sqlx::PgConnection, id: i64, version: i64) -> StorageResult<()> {
    let row = sqlx::query("SELECT version FROM collections WHERE id = $1 FOR SHARE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
    match row.map(|r| r.get::<i64, _>("version")) {
        None => Err(StorageError::CollectionGone),
        Some(v) if v != version => Err(StorageError::CollectionChanged),
        Some(_) => Ok(()),
    }
}

/// Whether a job is still `owner`'s to write (locking its row for the transaction).
async fn owns_job(tx: &mut sqlx::PgConnection, id: &str, owner: &str) -> StorageResult<()> {
    let held = sqlx::query(
        "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running' FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    held.map(|_| ()).ok_or(StorageError::NotFound)
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

    async fn create_collection(&self, c: &CollectionRow) -> StorageResult<CollectionRow> {
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
            "INSERT INTO collections (name, schema, uniq, version, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5) RETURNING *",
        )
        .bind(&c.name)
        .bind(c.schema.as_ref().map(json_text))
        .bind(json_text(&c.unique))
        .bind(c.created_at)
        .bind(c.updated_at)
        .fetch_one(&mut *tx)
        .await;
        let created = match r {
            Ok(row) => collection_from_row(&row)?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::CollectionExists))
            }
            Err(e) => return Err(db_err(e)),
        };
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query("SELECT * FROM collections WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query("SELECT * FROM collections WHERE id = $1")
            .bind(id)
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
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM collections WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut current = match row {
            Some(r) => collection_from_row(&r)?,
            None => return Err(StorageError::NotFound),
        };
        if current.version != expected_version {
            return Err(StorageError::VersionMismatch);
        }
        if let Some(schema) = &change.schema {
            current.schema = schema.clone();
        }
        if let Some(unique) = &change.unique {
            if unique != &current.unique {
                // Rebuild the unique index from the records; a duplicate is a 409.
                sqlx::query("DELETE FROM unique_values WHERE collection_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                current.unique = unique.clone();
                let rows = sqlx::query("SELECT * FROM records WHERE collection_id = $1")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_err)?;
                for r in &rows {
                    insert_unique_values(&mut tx, id, &current.unique, &record_from_row(r)?)
                        .await?;
                }
            }
        }
        if let Some((new_name, until)) = &change.rename {
            let taken = sqlx::query(
                "SELECT 1 FROM collections WHERE name = $1
                 UNION ALL SELECT 1 FROM aliases WHERE old_name = $1 AND until > $2 AND collection_id <> $3",
            )
            .bind(new_name)
            .bind(change.updated_at)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if taken.is_some() {
                return Err(StorageError::Conflict(Conflict::CollectionExists));
            }
            sqlx::query(
                "INSERT INTO aliases (old_name, collection_id, until) VALUES ($1, $2, $3)
                 ON CONFLICT (old_name) DO UPDATE SET collection_id = excluded.collection_id, until = excluded.until",
            )
            .bind(&current.name)
            .bind(id)
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
        current.updated_at = change.updated_at;
        current.version += 1;
        let r = sqlx::query(
            "UPDATE collections SET name = $1, schema = $2, uniq = $3, updated_at = $4, version = $5 WHERE id = $6",
        )
        .bind(&current.name)
        .bind(current.schema.as_ref().map(json_text))
        .bind(json_text(&current.unique))
        .bind(current.updated_at)
        .bind(current.version)
        .bind(id)
        .execute(&mut *tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StorageError::Conflict(Conflict::CollectionExists))
            }
            Err(e) => return Err(db_err(e)),
        }
        tx.commit().await.map_err(db_err)?;
        Ok(current)
    }

    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let exists = sqlx::query("SELECT 1 FROM collections WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(StorageError::NotFound);
        }
        let any = sqlx::query("SELECT 1 FROM records WHERE collection_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if any.is_some() && !force {
            return Err(StorageError::Conflict(Conflict::NotEmpty));
        }
        // Finished jobs described data that is gone; running ones stop and say why.
        sqlx::query(
            "DELETE FROM jobs WHERE collection_id = $1 AND state IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE jobs SET state = 'failed', error = 'the collection was deleted while the job was waiting or running',
               updated_at = $2, lease_owner = NULL, lease_until = NULL
             WHERE collection_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "DELETE FROM job_inputs WHERE job_id IN (SELECT id FROM jobs WHERE collection_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Records, their unique values and aliases go by the foreign keys' cascade.
        sqlx::query("DELETE FROM collections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn resolve_alias(
        &self,
        old_name: &str,
        now: i64,
    ) -> StorageResult<Option<CollectionRow>> {
        let row = sqlx::query(
            "SELECT c.* FROM aliases a JOIN collections c ON c.id = a.collection_id
             WHERE a.old_name = $1 AND a.until > $2",
        )
        .bind(old_name)
        .bind(now)
        .fetch_optional(self.pool()?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(collection_from_row).transpose()
    }

    async fn create_record(
        &self,
        c: &CollectionRow,
        r: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        check_collection(&mut tx, c.id, c.version).await?;
        if let Some(i) = idempotent {
            let stored = sqlx::query(
                "INSERT INTO idempotency (token_id, key, fingerprint, status, headers, body, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_id, key) DO NOTHING",
            )
            .bind(&i.token_id)
            .bind(&i.key)
            .bind(&i.response.fingerprint)
            .bind(i.response.status as i64)
            .bind(json_text(&i.response.headers))
            .bind(&i.response.body)
            .bind(i.at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if stored.rows_affected() == 0 {
                return Err(StorageError::Conflict(Conflict::IdempotencyKeyTaken));
            }
        }
        insert_record(&mut tx, c.id, &c.unique, r).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>> {
        let row = sqlx::query("SELECT * FROM records WHERE collection_id = $1 AND id = $2")
            .bind(collection_id)
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
        check_collection(&mut tx, c.id, c.version).await?;
        let res = sqlx::query(
            "UPDATE records SET data = $1, version = $2, updated_at = $3 WHERE collection_id = $4 AND id = $5 AND version = $6",
        )
        .bind(json_text(&r.data))
        .bind(r.version)
        .bind(r.updated_at)
        .bind(c.id)
        .bind(&r.id)
        .bind(expected_version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StorageError::VersionMismatch);
        }
        sqlx::query("DELETE FROM unique_values WHERE collection_id = $1 AND record_id = $2")
            .bind(c.id)
            .bind(&r.id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_unique_values(&mut tx, c.id, &c.unique, r).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()> {
        // Its unique values go by the foreign key's cascade.
        let res = sqlx::query(
            "DELETE FROM records WHERE collection_id = $1 AND id = $2 AND version = $3",
        )
        .bind(collection_id)
        .bind(id)
        .bind(expected_version)
        .execute(self.pool()?)
        .await
        .map_err(db_err)?;
        if res.rows_affected() == 0 {
            return Err(StorageError::VersionMismatch);
        }
        Ok(())
    }

    async fn list_records(
        &self,
        collection_id: i64,
        after: Option<&str>,
        limit: u32,
        filters: &[Filter],
        max_bytes: usize,
    ) -> StorageResult<Page> {
        use futures_util::TryStreamExt;
        // Only placeholders are added to the text; field names and values are bound.
        let mut sql = String::from("SELECT * FROM records WHERE collection_id = $1");
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
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(collection_id);
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
        let pool = self.pool()?;
        let mut rows = q.bind(limit as i64).fetch(pool);
        let mut page = Page::default();
        let mut bytes = 0;
        // Rows are taken one at a time: past the byte budget, none more.
        while let Some(row) = rows.try_next().await.map_err(db_err)? {
            if bytes >= max_bytes {
                page.cut_short = true;
                break;
            }
            let record = record_from_row(&row)?;
            bytes += record_size(&record);
            page.rows.push(record);
        }
        Ok(page)
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
        let headers: String = col(&row, "headers")?;
        let status: i64 = col(&row, "status")?;
        Ok(Some(StoredResponse {
            fingerprint: col(&row, "fingerprint")?,
            status: status as u16,
            headers: parse_json(&headers)?,
            body: col(&row, "body")?,
        }))
    }

    async fn insert_job(
        &self,
        j: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        if j.input_bytes > 0 {
            // One token's queue is checked and grown one request at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(format!("verdict-job-queue:{}", j.token_id))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let queued: i64 = sqlx::query(
                "SELECT COALESCE(SUM(input_bytes), 0)::BIGINT AS queued FROM jobs
                 WHERE token_id = $1 AND state IN ('queued', 'running')",
            )
            .bind(&j.token_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .get("queued");
            if queued + j.input_bytes > max_queued_bytes {
                return Err(StorageError::Conflict(Conflict::ImportQueueFull { queued }));
            }
        }
        sqlx::query(
            "INSERT INTO jobs (id, kind, collection_id, collection, token_id, state, processed, total, input_bytes, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(j.collection_id)
        .bind(&j.collection)
        .bind(&j.token_id)
        .bind(j.state.as_str())
        .bind(j.processed)
        .bind(j.total)
        .bind(j.input_bytes)
        .bind(j.created_at)
        .bind(j.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(data) = input {
            sqlx::query("INSERT INTO job_inputs (job_id, data) VALUES ($1, $2)")
                .bind(&j.id)
                .bind(data)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool()?)
        .await
        .map_err(db_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT data FROM job_inputs WHERE job_id = $1")
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(|r| col(r, "data")).transpose()
    }

    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        let pool = self.pool()?;
        let kind: Option<String> = sqlx::query("SELECT kind FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db_err)?
            .map(|r| r.get("kind"));
        let row = match kind.as_deref() {
            Some("export") => {
                sqlx::query("SELECT data FROM job_results WHERE job_id = $1 AND seq = $2")
                    .bind(id)
                    .bind(seq)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?
            }
            Some(_) if seq == 0 => {
                sqlx::query("SELECT result AS data FROM jobs WHERE id = $1 AND result IS NOT NULL")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?
            }
            _ => None,
        };
        row.as_ref().map(|r| col(r, "data")).transpose()
    }

    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>> {
        let rows =
            sqlx::query("SELECT line, errors FROM job_failures WHERE job_id = $1 ORDER BY line")
                .bind(id)
                .fetch_all(self.pool()?)
                .await
                .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let errors: String = col(r, "errors")?;
                Ok(LineFailure {
                    line: col(r, "line")?,
                    errors: parse_json(&errors)?,
                })
            })
            .collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>> {
        // SKIP LOCKED: concurrent claimers on other instances pass over a row
        // being claimed instead of waiting for it, and never get the same job.
        // Fair between tokens: the token with the fewest jobs running goes first.
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id = (SELECT w.id FROM jobs w
                         CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM jobs r
                                   WHERE r.token_id = w.token_id AND r.state = 'running' AND r.lease_until >= $3) running
                         WHERE (w.state = 'queued' OR (w.state = 'running' AND w.lease_until < $3))
                           AND running.n < $4
                         ORDER BY running.n, w.created_at
                         LIMIT 1 FOR UPDATE OF w SKIP LOCKED)
             RETURNING ",
            job_columns!()
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(per_token))
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
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()> {
        let r = sqlx::query(
            "UPDATE jobs SET processed = $1, lease_until = $2, updated_at = $3
             WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
        )
        .bind(processed)
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

    async fn export_chunk(&self, c: &ExportChunk<'_>) -> StorageResult<()> {
        let (id, owner, seq, chunk) = (c.job_id, c.owner, c.seq, c.chunk);
        let (processed, lease_until, now) = (c.processed, c.lease_until, c.now);
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        owns_job(&mut tx, id, owner).await?;
        if seq == 0 {
            sqlx::query("DELETE FROM job_results WHERE job_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        sqlx::query("INSERT INTO job_results (job_id, seq, data) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(seq)
            .bind(chunk)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE jobs SET processed = $1, lease_until = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(processed)
        .bind(lease_until)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn import_step(
        &self,
        step: &ImportStep,
        describe: DescribeConflict,
    ) -> StorageResult<()> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        owns_job(&mut tx, &step.job_id, &step.owner).await?;
        check_collection(&mut tx, step.collection.id, step.collection.version).await?;
        let mut failures = step.failures.clone();
        let mut imported = 0i64;
        for (line, record) in &step.records {
            sqlx::query("SAVEPOINT line")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            match insert_record(&mut tx, step.collection.id, &step.collection.unique, record).await
            {
                Ok(()) => {
                    imported += 1;
                    sqlx::query("RELEASE SAVEPOINT line")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                Err(StorageError::Conflict(c)) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT line")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    failures.push(LineFailure {
                        line: *line,
                        errors: describe(record, &c),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        failures.sort_by_key(|f| f.line);
        let kept: i64 = sqlx::query("SELECT COUNT(*) AS n FROM job_failures WHERE job_id = $1")
            .bind(&step.job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .get("n");
        for f in failures
            .iter()
            .take((MAX_KEPT_FAILURES - kept).max(0) as usize)
        {
            sqlx::query(
                "INSERT INTO job_failures (job_id, line, errors) VALUES ($1, $2, $3)
                 ON CONFLICT (job_id, line) DO NOTHING",
            )
            .bind(&step.job_id)
            .bind(f.line)
            .bind(json_text(&f.errors))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        sqlx::query(
            "UPDATE jobs SET processed = $1, imported = imported + $2, failed = failed + $3,
               lease_until = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(step.processed)
        .bind(imported)
        .bind(failures.len() as i64)
        .bind(step.lease_until)
        .bind(step.now)
        .bind(&step.job_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
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
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let r = sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, error = $3, updated_at = $4, lease_until = NULL
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        sqlx::query("DELETE FROM job_inputs WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        let mut tx = self.pool()?.begin().await.map_err(db_err)?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'cancelled', updated_at = $1
             WHERE id = $2 AND state IN ('queued', 'running') RETURNING ",
            job_columns!()
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            drop(tx);
            return match self.get_job(id).await? {
                Some(_) => Err(StorageError::Conflict(Conflict::JobFinished)),
                None => Err(StorageError::NotFound),
            };
        };
        for sql in [
            "DELETE FROM job_inputs WHERE job_id = $1",
            "DELETE FROM job_results WHERE job_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        job_from_row(&row)
    }
}
