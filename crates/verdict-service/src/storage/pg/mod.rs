//! PostgreSQL storage, for several instances behind one load balancer
//! (`--data postgres://...`). The same semantics as SQLite: each write is one
//! transaction, committed (and, with PostgreSQL's defaults, flushed) before the
//! 2xx; conditional writes compare-and-swap on `version`; jobs are claimed with
//! `FOR UPDATE SKIP LOCKED`, so any instance may take one, and a job whose
//! instance died is taken over once its lease expires.
//!
//! The SQL mirrors `sqlite/` statement for statement (placeholders `$n`,
//! JSONB operators for filters); the shared behaviour is proven by running the
//! same service test suite against both (`VERDICT_TEST_STORAGE=postgres`).

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Row, SqlSafeStr};

use super::rows::{self, job_columns, json_text, parse_json, record_size, unique_value};
use super::*;
use crate::observe::fault;

mod collections;
mod jobs;
mod records;
mod tokens;

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
            include_str!("../../../migrations/postgres/0001_initial.sql"),
        ),
        migration(
            2,
            "collection identity",
            include_str!("../../../migrations/postgres/0002_collection_identity.sql"),
        ),
        migration(
            3,
            "retention",
            include_str!("../../../migrations/postgres/0003_retention.sql"),
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
        // One connection first, for the real cause of a failure (a pool
        // that cannot connect only says that it timed out).
        if let Err(e) = sqlx::postgres::PgConnection::connect_with(&options).await {
            return Err(StorageError::Unavailable(why_not(&e, &options)));
        }
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

    /// A transaction on the pool.
    async fn begin(&self) -> StorageResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool()?.begin().await.map_err(db_err)
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

/// What an operator should read when PostgreSQL refuses the first
/// connection: the cause, and what to do (never the password).
fn why_not(e: &sqlx::Error, options: &PgConnectOptions) -> String {
    let (host, port) = (options.get_host(), options.get_port());
    let database = options.get_database().unwrap_or("postgres");
    let user = options.get_username();
    match e {
        sqlx::Error::Io(io) => format!("cannot connect to PostgreSQL at {host}:{port}: {io}"),
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => format!(
            "database \"{database}\" does not exist on {host}:{port}: create it with \
             `createdb -h {host} -p {port} -U {user} {database}`"
        ),
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "28P01" || c == "28000") => {
            format!(
                "PostgreSQL at {host}:{port} refused user \"{user}\": {}",
                d.message()
            )
        }
        sqlx::Error::Tls(tls) => format!("TLS to PostgreSQL at {host}:{port} failed: {tls}"),
        other => format!("PostgreSQL at {host}:{port}: {other}"),
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

/// A statement with its bound parameters.
type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

// One helper per way a statement is run, so each query reads as one
// statement and maps its errors to the contract's in one place.

/// Runs a statement; the number of rows it changed.
async fn execute<'c>(on: impl sqlx::PgExecutor<'c>, query: Query<'_>) -> StorageResult<u64> {
    query
        .execute(on)
        .await
        .map(|done| done.rows_affected())
        .map_err(db_err)
}

/// Commits a transaction: the write is durable once this returns `Ok`.
async fn commit(tx: sqlx::Transaction<'_, sqlx::Postgres>) -> StorageResult<()> {
    tx.commit().await.map_err(db_err)
}

/// The first row of a query, decoded.
async fn fetch_opt<'c, T>(
    on: impl sqlx::PgExecutor<'c>,
    query: Query<'_>,
    decode: impl Fn(&PgRow) -> StorageResult<T>,
) -> StorageResult<Option<T>> {
    let row = query.fetch_optional(on).await.map_err(db_err)?;
    row.as_ref().map(decode).transpose()
}

/// Every row of a query, decoded.
async fn fetch_all<'c, T>(
    on: impl sqlx::PgExecutor<'c>,
    query: Query<'_>,
    decode: impl Fn(&PgRow) -> StorageResult<T>,
) -> StorageResult<Vec<T>> {
    let rows = query.fetch_all(on).await.map_err(db_err)?;
    rows.iter().map(decode).collect()
}

#[async_trait]
impl Health for PgStorage {
    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1")
            .execute(self.pool()?)
            .await
            .map(|_| ())
            .map_err(db_err)
    }
}
