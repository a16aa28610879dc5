//! What a record may be, within bounds: a collection's JSON Schema is
//! limited when it is set, and checking a record against it is bounded in
//! time (off the async threads, a few at a time) and in memory (the errors
//! listed), so no request can stall or exhaust the server by sending data
//! that makes validation expensive.
//!
//! - A schema is refused (422) past [`MAX_SCHEMA_BYTES`], [`MAX_SCHEMA_NODES`]
//!   values, or [`MAX_BRANCHES`] alternatives in one `anyOf`/`oneOf`/`allOf`.
//! - A record's data may nest at most [`MAX_DEPTH`] levels: one depth rule,
//!   well inside what every place that wraps records (exports, batch
//!   results) can still read back.
//! - Validation first asks only whether the data is valid (no error is
//!   built). Only if it is not are the errors collected: every failing field
//!   (up to [`MAX_LISTED`]) when the data and schema are small enough for
//!   that to stay cheap, else the first one (jsonschema collects every error
//!   before handing out the first, and an `anyOf` makes one per branch per
//!   value: measured 420 bytes a pair).
//! - Data larger than [`INLINE_NODES`] values is checked on the blocking
//!   pool, at most two at a time, so the async threads keep
//!   answering everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use verdict::{ApiError, FieldError};

use crate::storage::CollectionRow;

/// The largest schema, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The most JSON values a schema may hold.
pub const MAX_SCHEMA_NODES: usize = 2_000;
/// The most alternatives one `anyOf`, `oneOf` or `allOf` may list.
pub const MAX_BRANCHES: usize = 64;
/// How deep a record's data may nest.
pub const MAX_DEPTH: usize = 64;
/// The most failing fields a 422 lists.
pub const MAX_LISTED: usize = 20;
/// Past this many (schema values x data values), only the first error is listed.
const ERROR_BUDGET: usize = 20_000;
/// Data with more values than this is validated on the blocking pool.
pub const INLINE_NODES: usize = 2_000;
/// Validations running on the blocking pool at once.
const CONCURRENT: usize = 2;
/// The longest error detail kept.
const MAX_DETAIL: usize = 300;

/// `s` cut to at most `max` bytes, at a character boundary.
pub fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The number of JSON values in `v` (itself included).
fn nodes(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nodes).sum::<usize>(),
        Value::Object(o) => 1 + o.values().map(nodes).sum::<usize>(),
        _ => 1,
    }
}

/// Why a schema is refused, if it is: what to tell the client.
pub fn schema_problem(schema: &Value) -> Option<String> {
    if !schema.is_object() && !schema.is_boolean() {
        return Some("must be a JSON Schema (an object)".into());
    }
    let bytes = serde_json::to_vec(schema).map_or(usize::MAX, |b| b.len());
    if bytes > MAX_SCHEMA_BYTES {
        return Some(format!(
            "is {bytes} bytes of JSON; a schema may take at most {MAX_SCHEMA_BYTES}"
        ));
    }
    let count = nodes(schema);
    if count > MAX_SCHEMA_NODES {
        return Some(format!(
            "holds {count} values; a schema may hold at most {MAX_SCHEMA_NODES}"
        ));
    }
    if let Some((keyword, n)) = widest_combinator(schema) {
        return Some(format!(
            "has a `{keyword}` of {n} alternatives; at most {MAX_BRANCHES} are allowed"
        ));
    }
    if let Err(e) = jsonschema::validator_for(schema) {
        return Some(clip(format!("is not a valid JSON Schema: {e}"), MAX_DETAIL));
    }
    None
}

fn widest_combinator(v: &Value) -> Option<(&str, usize)> {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if let ("anyOf" | "oneOf" | "allOf", Value::Array(a)) = (k.as_str(), child) {
                    if a.len() > MAX_BRANCHES {
                        return Some((k, a.len()));
                    }
                }
                if let Some(found) = widest_combinator(child) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(widest_combinator),
        _ => None,
    }
}

/// The pointer of the first value nested deeper than [`MAX_DEPTH`], if any.
fn too_deep(v: &Value, depth: usize, path: &mut Vec<String>) -> Option<String> {
    if depth > MAX_DEPTH {
        return Some(path.iter().map(|s| format!("/{s}")).collect());
    }
    let children: Box<dyn Iterator<Item = (String, &Value)>> = match v {
        Value::Array(a) => Box::new(a.iter().enumerate().map(|(i, x)| (i.to_string(), x))),
        Value::Object(o) => Box::new(
            o.iter()
                .map(|(k, x)| (k.replace('~', "~0").replace('/', "~1"), x)),
        ),
        _ => return None,
    };
    for (key, child) in children {
        path.push(key);
        if let Some(p) = too_deep(child, depth + 1, path) {
            return Some(p);
        }
        path.pop();
    }
    None
}

/// Compiled schemas, by collection and version, and the bound on validations
/// running off the async threads.
pub struct Schemas {
    compiled: Mutex<HashMap<i64, (i64, Arc<Compiled>)>>,
    blocking: Arc<Semaphore>,
}

impl Default for Schemas {
    fn default() -> Self {
        Schemas {
            compiled: Mutex::default(),
            blocking: Arc::new(Semaphore::new(CONCURRENT)),
        }
    }
}

struct Compiled {
    validator: jsonschema::Validator,
    nodes: usize,
}

impl Schemas {
    fn compiled(&self, c: &CollectionRow, schema: &Value) -> Result<Arc<Compiled>, ApiError> {
        let mut map = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((version, v)) = map.get(&c.id) {
            if *version == c.version {
                return Ok(v.clone());
            }
        }
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| ApiError::internal(format!("stored schema does not compile: {e}")))?;
        let compiled = Arc::new(Compiled {
            validator,
            nodes: nodes(schema),
        });
        map.insert(c.id, (c.version, compiled.clone()));
        Ok(compiled)
    }

    /// Checks `data` against `c`'s depth rule and schema: 422 naming the
    /// failing fields. Gives the data back.
    pub async fn validate(
        &self,
        c: &CollectionRow,
        data: Map<String, Value>,
    ) -> Result<Map<String, Value>, ApiError> {
        let instance = Value::Object(data);
        if let Some(pointer) = too_deep(&instance, 0, &mut Vec::new()) {
            return Err(ApiError::validation_failed(vec![FieldError::new(
                pointer,
                format!("nests deeper than {MAX_DEPTH} levels"),
            )]));
        }
        let Some(schema) = &c.schema else {
            return Ok(into_map(instance));
        };
        let compiled = self.compiled(c, schema)?;
        let size = nodes(&instance);
        let (outcome, instance) = if size <= INLINE_NODES {
            let outcome = check(&compiled, &instance, size);
            (outcome, instance)
        } else {
            let _permit = self
                .blocking
                .clone()
                .acquire_owned()
                .await
                .map_err(ApiError::internal)?;
            tokio::task::spawn_blocking(move || {
                let outcome = check(&compiled, &instance, size);
                (outcome, instance)
            })
            .await
            .map_err(ApiError::internal)?
        };
        outcome.map(|()| into_map(instance))
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn field_error(e: &jsonschema::ValidationError<'_>) -> FieldError {
    FieldError::new(
        e.instance_path().to_string(),
        clip(e.to_string(), MAX_DETAIL),
    )
}

/// The validation itself: cheap yes/no first, errors only if needed, bounded.
fn check(compiled: &Compiled, instance: &Value, size: usize) -> Result<(), ApiError> {
    let validator = &compiled.validator;
    if validator.is_valid(instance) {
        return Ok(());
    }
    if compiled.nodes.saturating_mul(size) <= ERROR_BUDGET {
        let errors: Vec<FieldError> = validator
            .iter_errors(instance)
            .take(MAX_LISTED)
            .map(|e| field_error(&e))
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::validation_failed(errors));
        }
    }
    let first = validator.validate(instance).err();
    let errors = vec![first.map_or_else(
        || FieldError::new("", "does not match the collection's schema"),
        |e| field_error(&e),
    )];
    Err(ApiError::validation_failed(errors).with_detail(
        "The request body does not match the collection's schema; the first failing field is named \
         (the body is too large for every failing field to be listed).",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clipping_never_cuts_a_character() {
        let s = "é".repeat(200);
        let clipped = clip(s, 301);
        assert!(clipped.len() <= 301 + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short".into(), 300), "short");
    }

    #[test]
    fn schemas_past_the_bounds_are_refused_with_a_reason() {
        assert!(schema_problem(&json!({"type": "object"})).is_none());
        let wide = json!({"items": {"anyOf": (0..300).map(|i| json!({"pattern": format!("^{i}$")})).collect::<Vec<_>>()}});
        assert!(schema_problem(&wide).unwrap().contains("anyOf"));
        let big = json!({"enum": (0..3000).collect::<Vec<_>>()});
        assert!(schema_problem(&big).unwrap().contains("values"));
        assert!(schema_problem(&json!(3)).is_some());
        assert!(schema_problem(&json!({"type": 7}))
            .unwrap()
            .contains("not a valid"));
    }

    #[test]
    fn depth_is_bounded_and_the_place_named() {
        let mut v = json!(1);
        for _ in 0..70 {
            v = json!({"a": v});
        }
        let p = too_deep(&v, 0, &mut Vec::new()).unwrap();
        assert_eq!(p.matches("/a").count(), MAX_DEPTH + 1);
        assert!(too_deep(&json!({"a": [1, {"b": 2}]}), 0, &mut Vec::new()).is_none());
    }
}
