//! Every error code the service sends beyond the library's, each with its one
//! constructor and its documentation page (`GET /problems/{slug}`).
//!
//! The `catalog!` below is the only place a code is written: the enum, the
//! pages ([`CATALOG`]) and the constructors all come from it, so a code cannot
//! be sent without a page. A test walks the crate's source and fails if a
//! code is minted anywhere else (`with_code("...")`, `"code": "..."`).

use std::fmt::Display;

use verdict::headers::RetryAfter;
use verdict::problems::ProblemType;
use verdict::ApiError;

macro_rules! catalog {
    ($($variant:ident = $code:literal, $status:literal, $title:literal, $description:literal;)*) => {
        /// A code of the service's own.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Problem {
            $(
                #[doc = $description]
                $variant,
            )*
        }

        impl Problem {
            /// Every code, in the catalog's order.
            pub const ALL: &'static [Problem] = &[$(Problem::$variant),*];

            /// The `code` member of the error body.
            pub const fn code(self) -> &'static str {
                match self { $(Problem::$variant => $code),* }
            }

            /// The status it is sent with (before a preset maps it).
            pub const fn status(self) -> u16 {
                match self { $(Problem::$variant => $status),* }
            }

            /// Its title.
            pub const fn title(self) -> &'static str {
                match self { $(Problem::$variant => $title),* }
            }
        }

        /// The pages of the service's codes, for `Contract::document_problems`.
        pub const CATALOG: &[ProblemType] = &[
            $(ProblemType { code: $code, status: $status, title: $title, description: $description }),*
        ];
    };
}

catalog! {
    CollectionNotFound = "collection_not_found", 404, "Collection not found",
        "No collection has this name. List them with GET /v1/collections.";
    RecordNotFound = "record_not_found", 404, "Record not found",
        "No record has this id in this collection. List the records, or look them up by a field.";
    TokenNotFound = "token_not_found", 404, "Token not found",
        "No token has this id (or it is already revoked).";
    JobNotFound = "job_not_found", 404, "Job not found",
        "No job has this id.";
    JobResultNotReady = "job_result_not_ready", 404, "No result yet",
        "The job has not succeeded (yet): follow its monitor, GET /v1/jobs/{id}.";
    NoMatch = "no_match", 404, "No match",
        "No record has the looked-up value in that field.";
    CollectionExists = "collection_exists", 409, "Collection exists",
        "A collection (or a renamed collection's alias) already has this name. Choose another.";
    RecordExists = "record_exists", 409, "Record exists",
        "A record with the id the request gave exists. Read it, or create without an id.";
    UniqueViolation = "unique_violation", 409, "Unique value taken",
        "Another record has this value in a field the collection declares unique.";
    CollectionNotEmpty = "collection_not_empty", 409, "Collection not empty",
        "Delete the records first, or send DELETE ...?force=true.";
    JobFinished = "job_finished", 409, "Job finished",
        "A finished job cannot be cancelled.";
    JobRunning = "job_running", 409, "Job not finished",
        "A job is deleted once it has finished; cancel a queued or running one first (DELETE /v1/jobs/{id}).";
    CollectionNotGranted = "collection_not_granted", 403, "Collection not granted",
        "The token is limited to some collections, and this is not one of them (a limited token cannot create collections either).";
    WriteQuotaExceeded = "write_quota_exceeded", 403, "Write quota exceeded",
        "The token's daily write quota (update limit) is used up; it renews at 00:00 UTC.";
    IdempotencyKeyReused = "idempotency_key_reused", 409, "Idempotency key reused",
        "The Idempotency-Key was first used with another request. Use a new key for a new request.";
    IdempotencyKeyInUse = "idempotency_key_in_use", 409, "Idempotency key in use",
        "Another request with this Idempotency-Key is still being processed. Retry shortly; you will get its answer.";
    StorageUnavailable = "storage_unavailable", 503, "Storage unavailable",
        "The storage cannot be reached. Retry after `Retry-After` seconds.";
    LimitsUnavailable = "limits_unavailable", 503, "Limits unavailable",
        "The shared store of rate limits and quotas (Redis) cannot be reached, and a limit that cannot be checked is not enforced. Retry after `Retry-After` seconds.";
    CollectionChanged = "collection_changed", 409, "Collection changed",
        "The collection kept changing (its schema, unique fields or name) while the request was checked against it. Send the request again.";
    ImportQueueFull = "import_queue_full", 429, "Import queue full",
        "The token's imports waiting or running already hold as many bytes as it may queue. Start this one once some have finished; `Retry-After` suggests when to look.";
    BootstrapToken = "bootstrap_token", 409, "Bootstrap token",
        "The bootstrap admin token cannot be revoked over the API: restart the service with a new `--admin-token` to replace it.";
    BatchResponseTooLarge = "batch_response_too_large", 207, "Batch answer too large",
        "Inside a 207 batch answer: this operation ran (its `status` says how it went), but its body would have passed the size a batch's answer may have. Send it on its own.";
    BatchResponseFull = "batch_response_full", 207, "Batch answer full",
        "Inside a 207 batch answer: this operation was not run, because the batch's answer had reached its size limit before it. Send it again in another batch.";
}

impl Problem {
    /// `error` (built with the status this code has) marked with the code and title.
    fn mark(self, error: ApiError) -> ApiError {
        debug_assert_eq!(error.status().as_u16(), self.status(), "{}", self.code());
        error.with_code(self.code()).with_title(self.title())
    }
}

/// `404 collection_not_found`: `name`, or (`None`) a collection deleted while
/// the request was processed.
pub fn collection_not_found(name: Option<&str>) -> ApiError {
    let detail = match name {
        Some(name) => format!("The collection identified by {name} could not be found."),
        None => "The collection was deleted while this request was processed.".to_string(),
    };
    Problem::CollectionNotFound.mark(ApiError::not_found(detail))
}

/// `404 record_not_found`.
pub fn record_not_found(id: &str) -> ApiError {
    Problem::RecordNotFound.mark(ApiError::not_found(format!(
        "The record identified by {id} could not be found."
    )))
}

/// `404 token_not_found`.
pub fn token_not_found(id: &str) -> ApiError {
    Problem::TokenNotFound.mark(ApiError::not_found(format!(
        "The token identified by {id} could not be found."
    )))
}

/// `404 job_not_found`.
pub fn job_not_found(id: &str) -> ApiError {
    Problem::JobNotFound.mark(ApiError::not_found(format!(
        "The job identified by {id} could not be found."
    )))
}

/// `404 job_result_not_ready`: the job is in `state`.
pub fn job_result_not_ready(id: &str, state: &str) -> ApiError {
    Problem::JobResultNotReady.mark(ApiError::not_found(format!(
        "The job {id} has no result: it is {state}."
    )))
}

/// `404 no_match`: no record of `collection` has `field` = `value`.
pub fn no_match(collection: &str, field: &str, value: &str) -> ApiError {
    Problem::NoMatch.mark(ApiError::not_found(format!(
        "No record of {collection} has {field} = {value}."
    )))
}

/// `409 collection_exists`.
pub fn collection_exists() -> ApiError {
    Problem::CollectionExists.mark(ApiError::conflict(
        "A collection with this name already exists.",
    ))
}

/// `409 record_exists`.
pub fn record_exists() -> ApiError {
    Problem::RecordExists.mark(ApiError::conflict("A record with this id already exists."))
}

/// `409 unique_violation` on `field`.
pub fn unique_violation(field: &str) -> ApiError {
    Problem::UniqueViolation.mark(ApiError::conflict(format!(
        "Another record already has this value in the unique field `{field}`."
    )))
}

/// `409 collection_not_empty`.
pub fn collection_not_empty() -> ApiError {
    Problem::CollectionNotEmpty.mark(ApiError::conflict(
        "The collection still has records; delete them first or pass ?force=true.",
    ))
}

/// `409 job_running`.
pub fn job_running() -> ApiError {
    Problem::JobRunning.mark(ApiError::conflict(
        "The job has not finished; cancel it first (DELETE /v1/jobs/{id}), then delete it.",
    ))
}

/// `409 job_finished`.
pub fn job_finished() -> ApiError {
    Problem::JobFinished.mark(ApiError::conflict(
        "The job has already finished; it cannot be cancelled.",
    ))
}

/// `403 collection_not_granted`: for `collection`, or (`None`) for creating one.
pub fn collection_not_granted(collection: Option<&str>) -> ApiError {
    let detail = match collection {
        Some(c) => format!("This token has no grant for the collection `{c}`."),
        None => "This token is limited to some collections and cannot create new ones.".to_string(),
    };
    Problem::CollectionNotGranted.mark(ApiError::forbidden(detail))
}

/// `403 write_quota_exceeded`.
pub fn write_quota_exceeded(quota: u32) -> ApiError {
    Problem::WriteQuotaExceeded.mark(ApiError::forbidden(format!(
        "This token's daily write quota of {quota} is used up; it renews at 00:00 UTC."
    )))
}

/// `409 idempotency_key_reused`.
pub fn idempotency_key_reused() -> ApiError {
    Problem::IdempotencyKeyReused.mark(ApiError::conflict(
        "This Idempotency-Key was first used for a different request; use a new key.",
    ))
}

/// How the shared state (`verdict_cluster`) names its refusals here.
pub const SHARED: verdict_cluster::Problems = verdict_cluster::Problems {
    unavailable: |e| limits_unavailable(e),
    lock_busy: idempotency_key_in_use,
};

/// `409 idempotency_key_in_use`.
pub fn idempotency_key_in_use() -> ApiError {
    Problem::IdempotencyKeyInUse.mark(ApiError::conflict(
        "Another request with this Idempotency-Key is still being processed; retry it shortly.",
    ))
}

/// `503 storage_unavailable`; `cause` goes to the log only.
pub fn storage_unavailable(cause: impl Display) -> ApiError {
    Problem::StorageUnavailable.mark(
        ApiError::service_unavailable(
            RetryAfter::from_secs(1),
            "The storage is unreachable; retry after the delay given.",
        )
        .with_cause(cause),
    )
}

/// `503 limits_unavailable`; `cause` goes to the log only.
pub fn limits_unavailable(cause: impl Display) -> ApiError {
    Problem::LimitsUnavailable.mark(
        ApiError::service_unavailable(
            RetryAfter::from_secs(1),
            "The shared limits store is unreachable; retry after the delay given.",
        )
        .with_cause(cause),
    )
}

/// `409 collection_changed`.
pub fn collection_changed() -> ApiError {
    Problem::CollectionChanged.mark(ApiError::conflict(
        "The collection kept changing while this request was processed; send it again.",
    ))
}

/// `429 import_queue_full`: the token's queued imports hold `queued` bytes.
pub fn import_queue_full(queued: i64) -> ApiError {
    Problem::ImportQueueFull.mark(ApiError::resource_rate_limited(
        RetryAfter::from_secs(30),
        format!(
            "This token's imports already queued or running hold {queued} bytes, its limit; \
             start this one once some have finished."
        ),
    ))
}

/// `409 bootstrap_token`.
pub fn bootstrap_token() -> ApiError {
    Problem::BootstrapToken.mark(ApiError::conflict(
        "The bootstrap admin token cannot be revoked through the API; restart the service \
         with a new --admin-token to replace it.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_apart_from_the_library_s() {
        let mut seen = std::collections::HashSet::new();
        for p in Problem::ALL {
            assert!(seen.insert(p.code()), "{} twice", p.code());
            assert!(
                !verdict::problems::LIBRARY
                    .iter()
                    .any(|l| l.code == p.code()),
                "{} is the library's",
                p.code()
            );
        }
        assert_eq!(CATALOG.len(), Problem::ALL.len());
    }

    /// No code is minted outside this module: every `with_code("...")` or
    /// `"code": "..."` in the crate's source is here. (A code built from the
    /// catalog, `Problem::X.code()`, is how the rest of the crate names one.)
    #[test]
    fn no_code_is_minted_outside_the_catalog() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") || path.ends_with("problems.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                    if compact.contains("with_code(\"") || compact.contains("\"code\":\"") {
                        offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "codes minted outside problems.rs:\n{}",
            offenders.join("\n")
        );
    }
}
