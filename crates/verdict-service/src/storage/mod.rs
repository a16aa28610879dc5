//! Storage behind one small trait: SQLite (embedded, the default) and
//! PostgreSQL (several instances) implement it.
//!
//! Every write that returns `Ok` is durable (committed with fsync) before the
//! caller sends its 2xx. Record writes compare-and-swap on `version`, so a
//! write that raced another one loses with [`StorageError::VersionMismatch`]
//! (and the handler starts over) instead of overwriting it. Collection changes
//! do not yet compare-and-swap (see docs/service.md).

pub mod cached;
pub mod pg;
mod rows;
pub mod sqlite;

use std::fmt;

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
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Unavailable(e) => write!(f, "storage unavailable: {e}"),
            StorageError::NotFound => f.write_str("not found"),
            StorageError::VersionMismatch => f.write_str("version mismatch"),
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
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    /// `None`: every collection.
    pub collections: Option<Vec<String>>,
    /// `(requests, per_seconds)`.
    pub rate_limit: Option<(u32, u32)>,
    /// Writes allowed per UTC day.
    pub write_quota: Option<u32>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A collection.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionRow {
    pub name: String,
    pub schema: Option<Value>,
    pub unique: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A record: its data, and the metadata the server keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRow {
    pub id: String,
    pub data: Map<String, Value>,
    pub version: i64,
    pub created_at: i64,
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
    pub updated_at: i64,
}

/// A filter on a list: `field` equals `value` (typed as JSON when it parses).
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

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

/// An export or import job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub collection: String,
    pub token_id: String,
    pub state: JobState,
    pub processed: i64,
    pub total: Option<i64>,
    pub input: Option<Vec<u8>>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Everything the service keeps.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Whether the store answers.
    async fn ping(&self) -> StorageResult<()>;

    // -- tokens --
    async fn insert_token(&self, token: &TokenRow) -> StorageResult<()>;
    /// Inserts or replaces (the bootstrap admin token when `--admin-token` changes).
    async fn upsert_token(&self, token: &TokenRow) -> StorageResult<()>;
    async fn get_token(&self, id: &str) -> StorageResult<Option<TokenRow>>;
    async fn list_tokens(&self) -> StorageResult<Vec<TokenRow>>;
    /// Marks a token revoked; `NotFound` if it does not exist or already is.
    async fn revoke_token(&self, id: &str, at: i64) -> StorageResult<()>;

    // -- collections --
    async fn create_collection(&self, collection: &CollectionRow) -> StorageResult<()>;
    async fn get_collection(&self, name: &str) -> StorageResult<Option<CollectionRow>>;
    async fn list_collections(&self) -> StorageResult<Vec<CollectionRow>>;
    /// Applies `change`; a rename moves the records and leaves an alias.
    async fn update_collection(
        &self,
        name: &str,
        change: &CollectionChange,
    ) -> StorageResult<CollectionRow>;
    /// Deletes a collection; `Conflict(NotEmpty)` if it has records and not `force`.
    async fn delete_collection(&self, name: &str, force: bool) -> StorageResult<()>;
    /// The current name of a renamed collection, while its alias lasts.
    async fn resolve_alias(&self, old_name: &str, now: i64) -> StorageResult<Option<String>>;

    // -- records --
    /// Inserts a record (checking unique fields).
    async fn create_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
    ) -> StorageResult<()>;
    async fn get_record(&self, collection: &str, id: &str) -> StorageResult<Option<RecordRow>>;
    /// Replaces a record whose version is still `expected_version`.
    async fn update_record(
        &self,
        collection: &CollectionRow,
        record: &RecordRow,
        expected_version: i64,
    ) -> StorageResult<()>;
    /// Deletes a record whose version is still `expected_version`.
    async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        expected_version: i64,
    ) -> StorageResult<()>;
    /// Up to `limit` records with ids after `after`, in id order, matching every filter.
    async fn list_records(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[Filter],
    ) -> StorageResult<Vec<RecordRow>>;

    // -- idempotency --
    async fn get_idempotent(
        &self,
        token_id: &str,
        key: &str,
    ) -> StorageResult<Option<StoredResponse>>;
    /// Keeps the first response for a key; a second writer's is ignored.
    async fn put_idempotent(
        &self,
        token_id: &str,
        key: &str,
        response: &StoredResponse,
        at: i64,
    ) -> StorageResult<()>;

    // -- jobs --
    async fn insert_job(&self, job: &JobRow) -> StorageResult<()>;
    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>>;
    /// Claims a queued job (or one whose lease expired) for `owner` until `lease_until`.
    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> StorageResult<Option<JobRow>>;
    /// Records progress and extends the lease; `NotFound` if the job was
    /// cancelled or claimed by someone else meanwhile.
    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        total: Option<i64>,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()>;
    /// Finishes a job the owner holds.
    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        result: Option<&Value>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()>;
    /// Cancels a job that has not finished; `Conflict` once finished.
    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow>;
}
