//! What both SQL backends share: JSON columns, unique-field values, and the
//! decoding of rows into the storage types (one macro, instantiated for each
//! backend's row type, since the SQL differs by dialect but the columns do not).

use serde_json::{Map, Value};

use super::StorageResult;
use super::{RecordRow, StorageError};

pub(crate) fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("values serialize")
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> StorageResult<T> {
    serde_json::from_str(s).map_err(|e| StorageError::Internal(format!("corrupt JSON column: {e}")))
}

/// The columns of a job's state (never its input or result), for `concat!`.
macro_rules! job_columns {
    () => {
        "id, kind, collection_id, collection, token_id, state, processed, total, imported, failed, input_bytes, error, created_at, updated_at"
    };
}

pub(crate) use job_columns;

/// What a record weighs against a page's byte budget: its data's JSON text,
/// about what it adds to the page.
pub(crate) fn record_size(r: &RecordRow) -> usize {
    // Measured without serializing: keys and strings by length, the rest small.
    fn size(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len() + 2,
            Value::Array(a) => 2 + a.iter().map(|x| size(x) + 1).sum::<usize>(),
            Value::Object(o) => 2 + o.iter().map(|(k, x)| k.len() + 4 + size(x)).sum::<usize>(),
            _ => 8,
        }
    }
    r.id.len()
        + 80
        + r.data
            .iter()
            .map(|(k, v)| k.len() + 4 + size(v))
            .sum::<usize>()
}

/// The canonical text of a unique field's value, or `None` when it is absent or null.
pub(crate) fn unique_value(data: &Map<String, Value>, field: &str) -> Option<String> {
    match data.get(field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(json_text(v)),
    }
}

/// Defines `token_from_row`, `collection_from_row`, `record_from_row` and
/// `job_from_row` for a backend's row type. The backend's module provides
/// `col(row, name) -> StorageResult<T>`, which reads one column by name.
macro_rules! row_decoders {
    ($row:ty) => {
        pub(crate) fn token_from_row(row: &$row) -> StorageResult<TokenRow> {
            let scopes: String = col(row, "scopes")?;
            let collections: Option<String> = col(row, "collections")?;
            let rate_requests: Option<i64> = col(row, "rate_requests")?;
            let rate_per: Option<i64> = col(row, "rate_per_seconds")?;
            let quota: Option<i64> = col(row, "write_quota")?;
            Ok(TokenRow {
                id: col(row, "id")?,
                secret_hash: col(row, "secret_hash")?,
                scopes: parse_json(&scopes)?,
                collections: collections.as_deref().map(parse_json).transpose()?,
                rate_limit: rate_requests
                    .zip(rate_per)
                    .map(|(r, p)| (r as u32, p as u32)),
                write_quota: quota.map(|q| q as u32),
                created_at: col(row, "created_at")?,
                revoked_at: col(row, "revoked_at")?,
            })
        }

        pub(crate) fn collection_from_row(row: &$row) -> StorageResult<CollectionRow> {
            let schema: Option<String> = col(row, "schema")?;
            let uniq: String = col(row, "uniq")?;
            Ok(CollectionRow {
                id: col(row, "id")?,
                version: col(row, "version")?,
                name: col(row, "name")?,
                schema: schema.as_deref().map(parse_json).transpose()?,
                unique: parse_json(&uniq)?,
                created_at: col(row, "created_at")?,
                updated_at: col(row, "updated_at")?,
            })
        }

        pub(crate) fn record_from_row(row: &$row) -> StorageResult<RecordRow> {
            let data: String = col(row, "data")?;
            Ok(RecordRow {
                id: col(row, "id")?,
                data: parse_json(&data)?,
                version: col(row, "version")?,
                created_at: col(row, "created_at")?,
                updated_at: col(row, "updated_at")?,
            })
        }

        pub(crate) fn job_from_row(row: &$row) -> StorageResult<JobRow> {
            let state: String = col(row, "state")?;
            Ok(JobRow {
                id: col(row, "id")?,
                kind: col(row, "kind")?,
                collection_id: col(row, "collection_id")?,
                collection: col(row, "collection")?,
                token_id: col(row, "token_id")?,
                state: JobState::parse(&state)
                    .ok_or_else(|| StorageError::Internal(format!("bad job state {state}")))?,
                processed: col(row, "processed")?,
                total: col(row, "total")?,
                imported: col(row, "imported")?,
                failed: col(row, "failed")?,
                input_bytes: col(row, "input_bytes")?,
                error: col(row, "error")?,
                created_at: col(row, "created_at")?,
                updated_at: col(row, "updated_at")?,
            })
        }
    };
}

pub(crate) use row_decoders;
