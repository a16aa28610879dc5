//! Records: the fields the server keeps, client-chosen ids, the JSON
//! representation, merge patch (RFC 7396), and how often a write retries.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::time::rfc3339;
use crate::storage::RecordRow;

/// Members of a representation the server sets.
pub const RESERVED: [&str; 3] = ["id", "created_at", "updated_at"];

/// A page stops after the record that brings it to this many bytes (so a
/// page of large records is short, and has a next cursor).
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// What a client-chosen id may be.
pub const ID_RULE: &str =
    "must be 1 to 128 characters: letters, digits, `_`, `-` or `.`, and not `.` or `..`";

/// [`valid_id`] as a regular expression, for the OpenAPI document, which
/// also refuses `.` and `..` (a test checks the two agree).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.-]{1,128}$";

/// Ids the pattern lets through that are still refused.
pub const DOT_IDS: [&str; 2] = [".", ".."];

/// Whether `id` may name a record (`.` and `..` would make a `Location`
/// that clients resolve to another path).
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !DOT_IDS.contains(&id)
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// What a field name in a filter or lookup may be, as a regular expression
/// for the OpenAPI document (a test checks it agrees with [`valid_field_name`]).
pub const FIELD_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// Whether `f` may name a field in a filter or lookup.
pub fn valid_field_name(f: &str) -> bool {
    (1..=128).contains(&f.len())
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// How often a write is re-applied after losing a race to another writer.
pub const WRITE_ATTEMPTS: usize = 64;

/// RFC 7396 section 2.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The representation of a record: its data and the fields the server keeps
/// (`id`, `created_at`, `updated_at`), keys in order.
pub fn record_json(r: &RecordRow) -> RecordJson<'_> {
    RecordJson(r)
}

/// A record's representation, serialized straight from the row: building a
/// `Value` first copied every record's data once more (measured on pages).
pub struct RecordJson<'a>(&'a RecordRow);

impl Serialize for RecordJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let (created_at, updated_at) = (rfc3339(r.created_at), rfc3339(r.updated_at));
        // Sorted, as the data's keys are: the two merge into one sorted object.
        let server = [
            ("created_at", created_at.as_str()),
            ("id", r.id.as_str()),
            ("updated_at", updated_at.as_str()),
        ];
        let mut server = server.into_iter().peekable();
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &r.data {
            if matches!(key.as_str(), "created_at" | "id" | "updated_at") {
                continue; // the server's own value wins
            }
            while let Some((k, v)) = server.next_if(|(k, _)| *k < key.as_str()) {
                map.serialize_entry(k, v)?;
            }
            map.serialize_entry(key, value)?;
        }
        for (k, v) in server {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_and_the_validator_agree() {
        let pattern = regex::Regex::new(ID_PATTERN).unwrap();
        let field = regex::Regex::new(FIELD_PATTERN).unwrap();
        let alphabet = ["a", "Z", "0", "_", "-", ".", "/", "é", " ", "%"];
        let mut samples: Vec<String> = vec![String::new(), "a".repeat(128), "a".repeat(129)];
        for x in alphabet {
            samples.push(x.to_string());
            for y in alphabet {
                samples.push(format!("{x}{y}"));
            }
        }
        for s in samples {
            let by_pattern = pattern.is_match(&s) && !DOT_IDS.contains(&s.as_str());
            assert_eq!(valid_id(&s), by_pattern, "{s:?}");
            assert_eq!(valid_field_name(&s), field.is_match(&s), "{s:?}");
        }
    }
}
