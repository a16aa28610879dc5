//! How handlers fail: [`Fail`] is an [`ApiError`] or, rarely, another early
//! response (a 302 to a renamed collection). Storage errors map to the
//! contract's codes here, in one place.

use axum::response::{IntoResponse, Response};
use verdict::ApiError;

use crate::problems;
use crate::storage::{Conflict, StorageError};

/// A handler's early exit.
#[derive(Debug)]
pub struct Fail(pub Response);

/// What handlers return.
pub type Reply = Result<Response, Fail>;

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail(e.into_response())
    }
}

impl From<StorageError> for Fail {
    fn from(e: StorageError) -> Self {
        Fail::from(ApiError::from_storage(e))
    }
}

/// The contract's answer to each storage failure.
pub trait FromStorage {
    /// Maps a storage error; the cause goes to the log only.
    fn from_storage(e: StorageError) -> ApiError;
}

impl FromStorage for ApiError {
    fn from_storage(e: StorageError) -> ApiError {
        match e {
            StorageError::Unavailable(cause) => problems::storage_unavailable(cause),
            StorageError::NotFound => ApiError::not_found("The resource could not be found."),
            StorageError::VersionMismatch => ApiError::precondition_failed(None).with_detail(
                "The resource changed while this request was processed; fetch it again.",
            ),
            // Handlers retry these against the collection as it now is; one
            // that still escapes lost too many races, or found it deleted.
            StorageError::CollectionChanged => problems::collection_changed(),
            StorageError::CollectionGone => problems::collection_not_found(None),
            StorageError::Conflict(c) => conflict(c),
            StorageError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

fn conflict(c: Conflict) -> ApiError {
    match c {
        Conflict::CollectionExists => problems::collection_exists(),
        Conflict::RecordExists => problems::record_exists(),
        Conflict::Unique { field } => problems::unique_violation(&field),
        Conflict::NotEmpty => problems::collection_not_empty(),
        Conflict::JobFinished => problems::job_finished(),
        Conflict::JobRunning => problems::job_running(),
        Conflict::ImportQueueFull { queued } => problems::import_queue_full(queued),
        Conflict::IdempotencyKeyTaken => problems::idempotency_key_in_use(),
    }
}
