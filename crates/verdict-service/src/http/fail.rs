//! How handlers fail: [`Fail`] is an [`ApiError`] or, rarely, another early
//! response (a 302 to a renamed collection). Storage errors map to the
//! contract's codes here, in one place.

use axum::response::{IntoResponse, Response};
use verdict::headers::RetryAfter;
use verdict::ApiError;

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
            StorageError::Unavailable(cause) => ApiError::service_unavailable(
                RetryAfter::from_secs(1),
                "The storage is unreachable; retry after the delay given.",
            )
            .with_code("storage_unavailable")
            .with_title("Storage unavailable")
            .with_cause(cause),
            StorageError::NotFound => ApiError::not_found("The resource could not be found."),
            StorageError::VersionMismatch => ApiError::precondition_failed(None).with_detail(
                "The resource changed while this request was processed; fetch it again.",
            ),
            // Handlers retry these against the collection as it now is; one
            // that still escapes lost too many races, or found it deleted.
            StorageError::CollectionChanged => ApiError::conflict(
                "The collection changed while this request was processed; send it again.",
            )
            .with_code("collection_changed")
            .with_title("Collection changed"),
            StorageError::CollectionGone => {
                ApiError::not_found("The collection was deleted while this request was processed.")
                    .with_code("collection_not_found")
                    .with_title("Collection not found")
            }
            StorageError::Conflict(c) => conflict(c),
            StorageError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

fn conflict(c: Conflict) -> ApiError {
    match c {
        Conflict::CollectionExists => {
            ApiError::conflict("A collection with this name already exists.")
                .with_code("collection_exists")
                .with_title("Collection exists")
        }
        Conflict::RecordExists => ApiError::conflict("A record with this id already exists.")
            .with_code("record_exists")
            .with_title("Record exists"),
        Conflict::Unique { field } => ApiError::conflict(format!(
            "Another record already has this value in the unique field `{field}`."
        ))
        .with_code("unique_violation")
        .with_title("Unique value taken"),
        Conflict::NotEmpty => ApiError::conflict(
            "The collection still has records; delete them first or pass ?force=true.",
        )
        .with_code("collection_not_empty")
        .with_title("Collection not empty"),
        Conflict::JobFinished => {
            ApiError::conflict("The job has already finished; it cannot be cancelled.")
                .with_code("job_finished")
                .with_title("Job finished")
        }
        Conflict::ImportQueueFull { queued } => ApiError::resource_rate_limited(
            RetryAfter::from_secs(30),
            format!(
                "This token's imports already queued or running hold {queued} bytes, its limit; \
                 start this one once some have finished."
            ),
        )
        .with_code("import_queue_full")
        .with_title("Import queue full"),
        Conflict::IdempotencyKeyTaken => ApiError::conflict(
            "Another request with this Idempotency-Key is being processed; retry it shortly.",
        )
        .with_code("idempotency_key_in_use")
        .with_title("Idempotency key in use"),
    }
}
