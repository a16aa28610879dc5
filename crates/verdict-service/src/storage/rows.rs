//! What both SQL backends share: JSON columns, unique-field values, and the
//! decoding of rows into the storage types (one macro, instantiated for each
//! backend's row type, since the SQL differs by dialect but the columns do not).

use serde_json::{Map, Value};

use super::StorageError;
use super::StorageResult;

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

pub(crate) fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("values serialize")
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> StorageResult<T> {
    serde_json::from_str(s).map_err(|e| StorageError::Internal(format!("corrupt JSON column: {e}")))
}

/// The canonical text of a unique field's value, or `None` when it is absent or null.
pub(crate) fn unique_value(data: &Map<String, Value>, field: &str) -> Option<String> {
    match data.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(json_text(v)),
    }
}

/// Defines `token_from_row`, `collection_from_row`, `record_from_row` and
/// `job_from_row` for a backend's row type.
macro_rules! row_decoders {
    ($row:ty) => {
        pub(crate) fn token_from_row(row: &$row) -> StorageResult<TokenRow> {
            let scopes: String = row.get("scopes");
            let collections: Option<String> = row.get("collections");
            let rate_requests: Option<i64> = row.get("rate_requests");
            let rate_per: Option<i64> = row.get("rate_per_seconds");
            let quota: Option<i64> = row.get("write_quota");
            Ok(TokenRow {
                id: row.get("id"),
                secret_hash: row.get("secret_hash"),
                scopes: parse_json(&scopes)?,
                collections: collections.as_deref().map(parse_json).transpose()?,
                rate_limit: rate_requests
                    .zip(rate_per)
                    .map(|(r, p)| (r as u32, p as u32)),
                write_quota: quota.map(|q| q as u32),
                created_at: row.get("created_at"),
                revoked_at: row.get("revoked_at"),
            })
        }

        pub(crate) fn collection_from_row(row: &$row) -> StorageResult<CollectionRow> {
            let schema: Option<String> = row.get("schema");
            let uniq: String = row.get("uniq");
            Ok(CollectionRow {
                name: row.get("name"),
                schema: schema.as_deref().map(parse_json).transpose()?,
                unique: parse_json(&uniq)?,
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
            })
        }

        pub(crate) fn record_from_row(row: &$row) -> StorageResult<RecordRow> {
            let data: String = row.get("data");
            Ok(RecordRow {
                id: row.get("id"),
                data: parse_json(&data)?,
                version: row.get("version"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
            })
        }

        pub(crate) fn job_from_row(row: &$row) -> StorageResult<JobRow> {
            let state: String = row.get("state");
            let result: Option<String> = row.get("result");
            Ok(JobRow {
                id: row.get("id"),
                kind: row.get("kind"),
                collection: row.get("collection"),
                token_id: row.get("token_id"),
                state: JobState::parse(&state)
                    .ok_or_else(|| StorageError::Internal(format!("bad job state {state}")))?,
                processed: row.get("processed"),
                total: row.get("total"),
                input: row.get("input"),
                result: result.as_deref().map(parse_json).transpose()?,
                error: row.get("error"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
            })
        }
    };
}

pub(crate) use row_decoders;
