//! Storage: one trait per aggregate ([`TokenStore`], [`CollectionStore`],
//! [`RecordStore`], [`IdempotencyStore`], [`JobStore`], and [`Health`]),
//! which SQLite (embedded, the default) and PostgreSQL (several instances)
//! each implement; [`Stores`] holds one of each, and the cache wraps only
//! tokens and collections.
//!
//! Every write that returns `Ok` is durable (committed with fsync) before the
//! caller sends its 2xx. Writes compare-and-swap on a `version`, so a write
//! that raced another one loses with [`StorageError::VersionMismatch`] (and
//! the handler starts over, or answers 412) instead of overwriting it:
//!
//! - a record's own version, for record updates and deletes;
//! - its collection's version, for every record write: a write that was
//!   checked against a collection (its schema, its unique fields) commits
//!   only if the collection is still that version, else it fails with
//!   [`StorageError::CollectionChanged`] (or `CollectionGone`), and the
//!   handler checks it again against what the collection is now;
//! - a collection's version, for collection changes.
//!
//! Collections have a stable id: records, unique values, aliases, jobs and
//! token grants refer to it, never to the name, so a rename moves nothing and
//! a collection deleted and created again under the same name is a new one.

pub mod cached;
mod keyset;
pub mod pg;
mod rows;
mod sql;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Why a storage call failed.
#[derive(Clone, Debug)]
pub enum StorageError {
    /// The store cannot be reached (or fault injection says so): 503.
    Unavailable(String),
    /// The row to change does not exist.
    NotFound,
    /// The row changed since it was read (compare-and-swap lost): 412.
    VersionMismatch,
    /// The collection a record write was checked against has changed since.
    CollectionChanged,
    /// The collection a write names no longer exists.
    CollectionGone,
    /// A collection, record id or unique value already exists: 409.
    Conflict(Conflict),
    /// Anything else: 500, the text goes to the log only.
    Internal(String),
}

/// What a 409 is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A collection with this name exists.
    CollectionExists,
    /// A record with this id exists.
    RecordExists,
    /// Another record has this value in a unique field.
    Unique {
        /// The field.
        field: String,
    },
    /// The collection still has records.
    NotEmpty,
    /// The job has finished and cannot be cancelled.
    JobFinished,
    /// The job has not finished, so it cannot be deleted (cancel it first).
    JobRunning,
    /// The token's queued imports already hold this many bytes.
    ImportQueueFull {
        /// The bytes queued.
        queued: i64,
    },
    /// The `Idempotency-Key` was stored by another request meanwhile.
    IdempotencyKeyTaken,
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Unavailable(e) => write!(f, "storage unavailable: {e}"),
            StorageError::NotFound => f.write_str("not found"),
            StorageError::VersionMismatch => f.write_str("version mismatch"),
            StorageError::CollectionChanged => f.write_str("the collection changed"),
            StorageError::CollectionGone => f.write_str("the collection is gone"),
            StorageError::Conflict(c) => write!(f, "conflict: {c:?}"),
            StorageError::Internal(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl std::error::Error for StorageError {}

/// Result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;

/// A token as stored: the secret only as a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// Its id: the part of a presented token before the `.` (`admin` for the
    /// bootstrap token, which is presented as its bare secret).
    pub id: String,
    /// The SHA-256 of its secret (32 bytes); the secret itself is never stored.
    pub secret_hash: Vec<u8>,
    /// Its scopes: `read`, `write`, `admin`.
    pub scopes: Vec<String>,
    /// The ids of the collections it may use; `None`: every collection.
    pub collections: Option<Vec<i64>>,
    /// `(requests, per_seconds)`.
    pub rate_limit: Option<(u32, u32)>,
    /// Writes allowed per UTC day.
    pub write_quota: Option<u32>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was revoked, in milliseconds since the Unix epoch; `None`: not revoked.
    pub revoked_at: Option<i64>,
}

/// A collection.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionRow {
    /// Stable identity: never reused, kept across renames.
    pub id: i64,
    /// Bumped by every change (compare-and-swap).
    pub version: i64,
    /// Its current name, unique among collections.
    pub name: String,
    /// The JSON Schema its records must match; `None`: any JSON object.
    pub schema: Option<Value>,
    /// The fields whose values no two of its records may share (empty: none).
    pub unique: Vec<String>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A record: its data, and the metadata the server keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRow {
    /// Its id, unique within its collection: the client's, or one the server made.
    pub id: String,
    /// Its fields, without the ones the server keeps (`id`, `created_at`, `updated_at`).
    pub data: Map<String, Value>,
    /// 1 when created, bumped by every update (compare-and-swap).
    pub version: i64,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it last changed, in milliseconds since the Unix epoch (strictly later on each update).
    pub updated_at: i64,
}

/// A change to a collection.
#[derive(Clone, Debug, Default)]
pub struct CollectionChange {
    /// Rename to this name; the old one stays an alias until `alias_until`.
    pub rename: Option<(String, i64)>,
    /// Replace the schema (`Some(None)` removes it).
    pub schema: Option<Option<Value>>,
    /// Replace the unique fields.
    pub unique: Option<Vec<String>>,
    /// The collection's new `updated_at`, in milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// A filter on a list: `field` equals `value` (typed as JSON when it parses).
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    /// A top-level field of the records' data.
    pub field: String,
    /// The value, as the query gave it.
    pub value: String,
}

/// What a sort key orders by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortField {
    /// The record's id.
    Id,
    /// When it was created.
    CreatedAt,
    /// When it last changed.
    UpdatedAt,
    /// A top-level field of its data; a missing field and JSON `null` sort
    /// first ascending, last descending.
    Data(String),
}

/// One key of a list's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortKey {
    /// What is compared.
    pub field: SortField,
    /// Largest first.
    pub descending: bool,
}

impl SortKey {
    /// The order of a list that asks for none: by id.
    pub const BY_ID: SortKey = SortKey {
        field: SortField::Id,
        descending: false,
    };

    /// This key's value in `row`, as a cursor keeps it (timestamps in
    /// milliseconds; a missing field as `null`).
    pub fn value_of(&self, row: &RecordRow) -> Value {
        match &self.field {
            SortField::Id => Value::String(row.id.clone()),
            SortField::CreatedAt => Value::from(row.created_at),
            SortField::UpdatedAt => Value::from(row.updated_at),
            SortField::Data(f) => row.data.get(f).cloned().unwrap_or(Value::Null),
        }
    }
}

/// What a page of a list asks for.
#[derive(Clone, Debug)]
pub struct ListRequest<'a> {
    /// Every filter must hold.
    pub filters: &'a [Filter],
    /// The order, never empty, and its last key is the id: so the order is
    /// total and a cursor names one position.
    pub sort: &'a [SortKey],
    /// Rows strictly after this position in `sort`'s order: one value per key.
    pub after: Option<&'a [Value]>,
    /// At most this many rows.
    pub limit: u32,
    /// Stop once the rows read reach this many bytes of data.
    pub max_bytes: usize,
}

impl ListRequest<'_> {
    /// Whether the list is in id order with no filter: the primary key walk
    /// that reads no more than `limit` rows.
    pub fn is_plain(&self) -> bool {
        self.filters.is_empty() && self.sort == [SortKey::BY_ID]
    }
}

/// A page of records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    /// The records, in the list's order.
    pub rows: Vec<RecordRow>,
    /// The page stopped early at its byte budget: more may follow the last row.
    pub cut_short: bool,
}

/// What a record write keeps for its `Idempotency-Key`, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// The token that sent the request (a key is the token's own).
    pub token_id: String,
    /// The request's `Idempotency-Key`.
    pub key: String,
    /// The answer to replay to a retry.
    pub response: StoredResponse,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub at: i64,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// What the request was (base64url SHA-256 of its path and body): a retry
    /// with the same key and another fingerprint is refused.
    pub fingerprint: String,
    /// The HTTP status.
    pub status: u16,
    /// The headers to send again, as (name, value).
    pub headers: Vec<(String, String)>,
    /// The body (empty when the answer had none).
    pub body: Vec<u8>,
}

/// The state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a worker to claim it.
    Queued,
    /// Claimed by a worker, under a lease that its progress renews.
    Running,
    /// Done; its result is stored.
    Succeeded,
    /// Stopped by an error ([`JobRow::error`] says why).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Its name, as stored and shown: `queued`, `running`, `succeeded`,
    /// `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state [`JobState::as_str`] names `s`; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// An export or import job (its state; the input and result are read apart).
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// Its id (a UUIDv7, as 32 hex digits).
    pub id: String,
    /// `export` or `import`.
    pub kind: String,
    /// The collection's id; `None` once the collection was deleted.
    pub collection_id: Option<i64>,
    /// The collection's name when the job was created.
    pub collection: String,
    /// The id of the token that created it.
    pub token_id: String,
    /// Where it is.
    pub state: JobState,
    /// Export: records written; import: input lines gone through.
    pub processed: i64,
    /// Import: the input's lines (blank ones counted); `None` for an export.
    pub total: Option<i64>,
    /// Import: records created, and lines that failed.
    pub imported: i64,
    /// Import: lines that failed (every one, even past [`MAX_KEPT_FAILURES`]).
    pub failed: i64,
    /// Bytes of the input (an import's NDJSON), counted against the token's queue.
    pub input_bytes: i64,
    /// Why it failed; `None` unless it failed.
    pub error: Option<String>,
    /// When it was queued, in milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When its state or progress last changed, in milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// One failed line of an import.
#[derive(Clone, Debug, PartialEq)]
pub struct LineFailure {
    /// Its line number in the input (1-based, blank lines counted).
    pub line: i64,
    /// What is wrong: `[{"pointer", "detail"}]`.
    pub errors: Value,
}

/// One step of an import, committed whole: its records, its failures and
/// the job's progress, so a resumed import starts exactly where this left off.
#[derive(Clone, Debug)]
pub struct ImportStep {
    /// The job's id.
    pub job_id: String,
    /// The worker holding the job's lease: the write commits only while it still does.
    pub owner: String,
    /// The collection the records were checked against.
    pub collection: CollectionRow,
    /// Records to create, by line.
    pub records: Vec<(i64, RecordRow)>,
    /// Lines that failed before storage (not JSON, invalid).
    pub failures: Vec<LineFailure>,
    /// The input lines gone through after this step.
    pub processed: i64,
    /// The lease's new end, in milliseconds since the Unix epoch.
    pub lease_until: i64,
    /// Now, in milliseconds since the Unix epoch (the job's new `updated_at`).
    pub now: i64,
}

/// One chunk of an export: records as comma-separated JSON objects.
#[derive(Clone, Copy, Debug)]
pub struct ExportChunk<'a> {
    /// The job's id.
    pub job_id: &'a str,
    /// The worker holding the job's lease: the write commits only while it still does.
    pub owner: &'a str,
    /// Its place among the job's chunks, from 0.
    pub seq: i64,
    /// The records, as comma-separated JSON objects.
    pub chunk: &'a [u8],
    /// Records written so far, this chunk's included.
    pub processed: i64,
    /// The lease's new end, in milliseconds since the Unix epoch.
    pub lease_until: i64,
    /// Now, in milliseconds since the Unix epoch (the job's new `updated_at`).
    pub now: i64,
}

/// How an import step's record that could not be stored is described.
pub type DescribeConflict = fn(&RecordRow, &Conflict) -> Value;

/// Failures an import keeps line by line; past it only the count grows.
pub const MAX_KEPT_FAILURES: i64 = 1000;

/// Whether the store answers.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// `Ok` if a trivial query succeeds.
    async fn ping(&self) -> StorageResult<()>;
}

/// Bearer tokens (their secrets hashed).
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token.
    async fn insert_token(&self, token: &TokenRow) -> StorageResult<()>;
    /// Inserts or replaces (the bootstrap admin token when `--admin-token` changes).
    async fn upsert_token(&self, token: &TokenRow) -> StorageResult<()>;
    /// The token with this id, revoked or not; `None` if there is none.
    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>>;
    /// Every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>>;
    /// Marks a token revoked; `NotFound` if it does not exist or already is.
    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()>;
}

/// Collections, their aliases, and (on delete) what refers to them.
#[async_trait]
pub trait CollectionStore: Send + Sync + 'static {
    /// Creates a collection (its `id` and `version` are assigned); the row as stored.
    async fn create_collection(&self, collection: &CollectionRow) -> StorageResult<CollectionRow>;
    /// The collection named `name` now (aliases are not followed: see
    /// [`CollectionStore::resolve_alias`]).
    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>>;
    /// The collection with this id, whatever its name now.
    async fn get_collection_by_id(&self, id: i64) -> StorageResult<Option<CollectionRow>>;
    /// Every collection, by name.
    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>>;
    /// Applies `change` if the collection is still `expected_version`
    /// (`VersionMismatch` if not, `NotFound` if it is gone); a rename leaves
    /// an alias. The row as stored.
    async fn update_collection(
        &self,
        id: i64,
        expected_version: i64,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow>;
    /// Deletes a collection with its records and aliases; `Conflict(NotEmpty)`
    /// if it has records and not `force`. Its finished jobs go with it; its
    /// queued and running jobs fail, saying why.
    async fn delete_collection(&self, id: i64, force: bool, now: i64) -> StorageResult<()>;
    /// The collection an old name still points to, while its alias lasts.
    async fn resolve_alias(&self, old_name: &str, now: i64)
        -> StorageResult<Option<CollectionRow>>;
    /// Says that what this store holds of the collection `name` may be stale
    /// (a write lost its compare-and-swap on it): a cache forgets it.
    fn stale(&self, name: &str) {
        let _ = name;
    }
}

/// Records, with their unique values and idempotent answers.
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Inserts a record (checking unique fields) if `collection` is still
    /// that version, with the idempotent answer in the same transaction
    /// (`Conflict(IdempotencyKeyTaken)` if the key was stored meanwhile).
    async fn create_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
        idempotent: Option<&IdempotentAnswer>,
    ) -> StorageResult<()>;
    /// The record `id` of the collection `collection_id`, if it exists.
    async fn get_record(&self, collection_id: i64, id: &str) -> StorageResult<Option<RecordRow>>;
    /// Replaces a record whose version is still `expected_version`, if
    /// `collection` is still that version.
    async fn update_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()>;
    /// Deletes a record whose version is still `expected_version`.
    async fn delete_record(
        &self,
        collection_id: i64,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()>;
    /// Up to `limit` records after `after` in the list's order, matching
    /// every filter, stopping after the record that brings the page's data
    /// to `max_bytes` (always at least one).
    async fn list_records(&self, collection_id: i64, list: &ListRequest<'_>)
        -> StorageResult<Page>;

    /// How many records of the collection pass every filter.
    async fn count_records(&self, collection_id: i64, filters: &[Filter]) -> StorageResult<u64>;
}

/// The stored answers of idempotent creates (`Idempotency-Key`).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// The response stored for the key `key` of the token `token_id`, if any.
    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>>;
    /// Forgets the answers stored before `before` (ms since the Unix epoch);
    /// how many.
    async fn purge_idempotent(&self, before: i64) -> StorageResult<u64>;
}

/// Export and import jobs: queue, leases, inputs, results, progress.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Queues a job with its input; `Conflict(ImportQueueFull)` if the
    /// token's queued and running inputs would pass `max_queued_bytes`.
    async fn insert_job(
        &self,
        job: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()>;
    /// The job `id` (its state, not its input or result), if it exists.
    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>>;
    /// An import's input.
    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>>;
    /// A finished job's result: an import's document, or one chunk of an
    /// export's records (`seq` from 0; `None` past the last).
    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>>;
    /// An import's kept line failures, in line order.
    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>>;
    /// Claims a queued job (or one whose lease expired) for `owner` until
    /// `lease_until`: of the tokens with jobs waiting and fewer than
    /// `per_token` running, the one with the fewest running goes first, then
    /// the oldest job.
    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>>;
    /// Records progress and extends the lease; `NotFound` if the job was
    /// cancelled or claimed by someone else meanwhile.
    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()>;
    /// Stores one chunk of an export's records with its progress (chunk 0
    /// drops what an earlier run of the job wrote); `NotFound` if the job is
    /// no longer this owner's.
    async fn export_chunk(&self, chunk: &ExportChunk<'_>) -> StorageResult<()>;
    /// Commits one import step whole (see [`ImportStep`]); `NotFound` if the
    /// job is no longer this owner's, `CollectionChanged`/`CollectionGone`
    /// if the collection moved on.
    async fn import_step(&self, step: &ImportStep, describe: DescribeConflict)
        -> StorageResult<()>;
    /// Finishes a job the owner holds, with its result document.
    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        result: Option<&[u8]>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()>;
    /// Cancels a job that has not finished; `Conflict(JobFinished)` once finished.
    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow>;
    /// Deletes the jobs that finished before `before` (ms since the Unix
    /// epoch), with their inputs, results and failures; how many.
    async fn purge_jobs(&self, before: i64) -> StorageResult<u64>;
    /// Deletes a finished job with its input, result and failures;
    /// `Conflict(JobRunning)` while it is queued or running.
    async fn delete_finished_job(&self, id: &str) -> StorageResult<()>;
    /// How many jobs are in each state now (for the metrics).
    async fn count_jobs(&self) -> StorageResult<Vec<(JobState, u64)>>;
}

/// A backend: every store in one (SQLite, PostgreSQL).
pub trait Backend:
    Health + TokenStore + CollectionStore + RecordStore + IdempotencyStore + JobStore
{
}

impl<T> Backend for T where
    T: Health + TokenStore + CollectionStore + RecordStore + IdempotencyStore + JobStore
{
}

/// The stores the service uses, one per aggregate, so a wrapper (the cache)
/// wraps only the ones it changes.
#[derive(Clone)]
pub struct Stores {
    /// Whether the store answers.
    pub health: Arc<dyn Health>,
    /// Bearer tokens (read through the cache once [`Stores::cached`]).
    pub tokens: Arc<dyn TokenStore>,
    /// Collections and their aliases (read through the cache once [`Stores::cached`]).
    pub collections: Arc<dyn CollectionStore>,
    /// Records, with their unique values and idempotent answers.
    pub records: Arc<dyn RecordStore>,
    /// The stored answers of idempotent creates.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Export and import jobs.
    pub jobs: Arc<dyn JobStore>,
}

impl Stores {
    /// Every store from one backend.
    pub fn new<B: Backend>(backend: Arc<B>) -> Self {
        Stores {
            health: backend.clone(),
            tokens: backend.clone(),
            collections: backend.clone(),
            records: backend.clone(),
            idempotency: backend.clone(),
            jobs: backend,
        }
    }

    /// The same stores, with tokens and collections read through the cache.
    pub fn cached(self) -> Self {
        self.cached_for(cached::FRESH_FOR)
    }

    /// As [`Stores::cached`], each cached row fresh for `fresh_for`.
    pub fn cached_for(self, fresh_for: std::time::Duration) -> Self {
        Stores {
            tokens: Arc::new(cached::CachedTokens::new(self.tokens, fresh_for)),
            collections: Arc::new(cached::CachedCollections::new(self.collections, fresh_for)),
            ..self
        }
    }
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stores")
    }
}
