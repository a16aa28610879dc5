//! The document's schemas: request bodies, every success body the service
//! sends, the three error formats, and each collection's own record schema.
//!
//! Written as JSON Schema (OpenAPI 3.1 is JSON Schema 2020-12) next to the
//! handlers' JSON, which is built with `json!`, not from derived types; a
//! test in `tests/surface.rs` sends every operation over a socket and
//! validates each success body against the schema documented here, so the
//! two cannot drift apart.

use serde_json::{json, Map, Value};

use crate::model::collections::NAME_PATTERN;
use crate::model::records::{DOT_IDS, ID_PATTERN, RESERVED};
use crate::storage::CollectionRow;

fn date_time(what: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": what,
        "example": "2026-11-24T09:30:00.000Z"})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"type": "object", "required": ["items"], "additionalProperties": false,
        "properties": {"items": {"type": "array", "items": reference(name)}}})
}

/// The schema a success response of `op_id` with `code` carries as JSON, if
/// it has a JSON body.
pub fn success(op_id: &str, code: u16) -> Option<Value> {
    Some(match (op_id, code) {
        (_, 204 | 304) => return None,
        (_, 302) => reference("Moved"),
        ("health", _) => reference("Health"),
        ("livez", _) => reference("Alive"),
        ("openapi", _) => {
            json!({"type": "object", "additionalProperties": true, "description": "This OpenAPI 3.1 document."})
        }
        ("list_problems", _) => list_of("ProblemType"),
        ("problem", _) => reference("ProblemType"),
        ("create_token", _) => reference("NewTokenSecret"),
        ("list_tokens", _) => list_of("Token"),
        ("get_token", _) => reference("Token"),
        ("create_collection" | "get_collection" | "change_collection", _) => {
            reference("Collection")
        }
        ("list_collections", _) => list_of("Collection"),
        ("list_records", _) => reference("RecordPage"),
        ("get_record" | "create_record" | "replace_record" | "patch_record", _) => {
            reference("Record")
        }
        ("lookup", 300) => reference("Choices"),
        ("lookup", _) => return None,
        ("batch", _) => reference("BatchResults"),
        ("export" | "import" | "get_job", _) => reference("Job"),
        ("job_result", _) => {
            json!({"oneOf": [reference("ExportResult"), reference("ImportResult")]})
        }
        ("get_maintenance" | "set_maintenance", _) => reference("MaintenanceState"),
        _ => return None,
    })
}

/// Every schema of the document; `collections` adds `Record_<name>` for
/// each collection given (the caller's own, when it sent a token).
pub fn components(collections: &[CollectionRow]) -> Value {
    let Value::Object(mut all) = fixed() else {
        unreachable!("an object")
    };
    for c in collections {
        all.insert(format!("Record_{}", c.name), collection_record(c));
    }
    Value::Object(all)
}

/// A record of `c`: a `Record` whose fields also follow the collection's
/// stored schema (embedded as stored, under its own `$id`).
fn collection_record(c: &CollectionRow) -> Value {
    let mut parts = vec![reference("Record")];
    if let Some(schema) = &c.schema {
        let mut stored = schema.clone();
        if let Value::Object(m) = &mut stored {
            // Its own base, so that a `$ref: "#/$defs/..."` inside resolves
            // against the stored schema, not against this document.
            m.entry("$id")
                .or_insert_with(|| json!(format!("urn:verdict:collection:{}", c.name)));
            m.remove("$schema");
        }
        parts.push(stored);
    }
    let mut schema = Map::new();
    schema.insert(
        "description".into(),
        json!(format!(
            "A record of the collection `{}`{}.",
            c.name,
            if c.schema.is_some() {
                ", whose fields follow the collection's JSON Schema"
            } else {
                " (no schema: any fields)"
            }
        )),
    );
    schema.insert("allOf".into(), Value::Array(parts));
    Value::Object(schema)
}

fn fixed() -> Value {
    let unique_field = json!({"type": "string", "minLength": 1, "maxLength": 128,
        "not": {"enum": RESERVED}});
    let field_errors = json!({"type": "array", "items": {"type": "object",
        "properties": {"pointer": {"type": "string", "description": "A JSON Pointer (RFC 6901) into the request body"},
            "detail": {"type": "string"}},
        "required": ["pointer", "detail"]}});
    let scopes =
        json!({"type": "array", "minItems": 1, "items": {"enum": ["read", "write", "admin"]}});
    let rate_limit = json!({"type": ["object", "null"], "additionalProperties": false, "required": ["requests", "per_seconds"],
        "properties": {"requests": {"type": "integer", "minimum": 1, "maximum": 4294967295u64},
            "per_seconds": {"type": "integer", "minimum": 1, "maximum": 4294967295u64}}});
    let token_properties = json!({
        "id": {"type": "string", "description": "The token's id: the part before the `.` of its secret"},
        "scopes": scopes,
        "collections": {"type": ["array", "null"], "items": {"type": "string"},
            "description": "The collections it may use; null: every collection"},
        "rate_limit": rate_limit,
        "write_quota": {"type": ["integer", "null"], "minimum": 0, "description": "Writes a day; null: no quota"},
        "created_at": date_time("When it was created"),
        "revoked": {"type": "boolean"},
    });
    let token_required = json!([
        "id",
        "scopes",
        "collections",
        "rate_limit",
        "write_quota",
        "created_at",
        "revoked"
    ]);
    let mut secret_properties = token_properties.clone();
    secret_properties["token"] = json!({"type": "string", "pattern": "^[0-9a-f]{32}\\.[A-Za-z0-9_-]+$",
        "description": "The secret, `ID.SECRET`: shown in this answer only, stored hashed. Send it as `Authorization: Bearer ID.SECRET`."});
    let mut secret_required = token_required.clone();
    secret_required
        .as_array_mut()
        .expect("array")
        .push(json!("token"));
    let mut all = json!({
        "Problem": {"type": "object", "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {"type": {"type": "string", "description": "A URI of the problem type; its page says what it means"},
                "title": {"type": "string"},
                "status": {"type": "integer", "description": "The HTTP status, as sent"},
                "detail": {"type": "string", "description": "What went wrong with this request"},
                "instance": {"type": "string"},
                "code": {"type": "string", "description": "A stable code, for programs"},
                "request_id": {"type": "string", "description": "The X-Request-Id of the request"},
                "incident_id": {"type": "string"},
                "errors": field_errors},
            "example": {"type": "/problems/record-not-found", "title": "Record not found", "status": 404,
                "detail": "No record `r1` in `books`.", "code": crate::problems::Problem::RecordNotFound.code(),
                "instance": "/v1/collections/books/records/r1", "request_id": "01JD3XK6Q2"}},
        "JsonApiErrors": {"type": "object", "required": ["errors"],
            "properties": {"errors": {"type": "array", "items": {"type": "object",
                "required": ["status", "code", "title", "detail"],
                "properties": {"status": {"type": "string"}, "code": {"type": "string"},
                    "title": {"type": "string"}, "detail": {"type": "string"},
                    "source": {"type": "object", "properties": {"pointer": {"type": "string"}}}}}}}},
        "SimpleError": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "errors": field_errors}},
        "Record": {"type": "object", "required": ["id", "created_at", "updated_at"],
            "description": "A record: its own fields, and the three the server keeps.",
            "properties": {"id": {"type": "string", "pattern": ID_PATTERN},
                "created_at": date_time("When it was created"),
                "updated_at": date_time("When it last changed (`Last-Modified`)")},
            "additionalProperties": true,
            "example": {"id": "r1", "title": "Dune", "year": 1965,
                "created_at": "2026-11-24T09:30:00.000Z", "updated_at": "2026-11-24T09:30:00.000Z"}},
        "RecordPage": {"type": "object", "required": ["items", "next_cursor", "limit"],
            "additionalProperties": false,
            "properties": {"items": {"type": "array", "items": reference("Record")},
                "next_cursor": {"type": ["string", "null"], "description": "The next page's `cursor`; null on the last page"},
                "limit": {"type": "integer"},
                "total": {"type": "integer", "minimum": 0, "description": "With `count=true`: the records the filters match"}}},
        "RecordData": {"type": "object", "description": "The record's fields (`id`, `created_at` and `updated_at` are ignored).",
            "additionalProperties": true, "example": {"title": "Dune", "year": 1965}},
        "NewRecord": {"type": "object", "description": "The record's fields, and optionally its `id`.",
            "properties": {"id": {"type": "string", "pattern": ID_PATTERN, "not": {"enum": DOT_IDS}}},
            "additionalProperties": true, "example": {"title": "Dune", "year": 1965}},
        "Choices": {"type": "object", "required": ["choices", "truncated"], "additionalProperties": false,
            "properties": {"choices": {"type": "array", "items": {"type": "object", "required": ["id", "location"],
                "properties": {"id": {"type": "string"}, "location": {"type": "string"}}}},
                "truncated": {"type": "boolean"}}},
        "Moved": {"type": "object", "required": ["moved_to", "location"],
            "description": "The collection was renamed: `Location` is its new URL.",
            "properties": {"moved_to": {"type": "string"}, "location": {"type": "string"}}},
        "Collection": {"type": "object", "additionalProperties": false,
            "required": ["name", "schema", "unique", "created_at", "updated_at", "records"],
            "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                "schema": {"type": ["object", "boolean", "null"], "additionalProperties": true, "description": "The JSON Schema its records follow"},
                "unique": {"type": "array", "items": {"type": "string"}},
                "created_at": date_time("When it was created"),
                "updated_at": date_time("When it last changed"),
                "records": {"type": "string", "description": "The URL of its records"}}},
    });
    // In two parts: one `json!` this size passes the macro recursion limit.
    let rest = json!({
        "Token": {"type": "object", "additionalProperties": false, "required": token_required,
            "properties": token_properties},
        "NewTokenSecret": {"type": "object", "additionalProperties": false, "required": secret_required,
            "properties": secret_properties},
        "Job": {"type": "object", "required": ["id", "kind", "collection", "state", "processed", "total",
                "error", "created_at", "updated_at", "monitor", "result"],
            "additionalProperties": false,
            "properties": {"id": {"type": "string"}, "kind": {"enum": ["export", "import"]},
                "collection": {"type": "string"},
                "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                "processed": {"type": "integer"}, "total": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
                "created_at": date_time("When it was queued"), "updated_at": date_time("Its last progress"),
                "monitor": {"type": "string", "description": "This job's URL"},
                "result": {"type": ["string", "null"], "description": "Its result's URL, once succeeded"},
                "imported": {"type": "integer"}, "failed": {"type": "integer"}}},
        "ExportResult": {"type": "object", "required": ["collection", "count", "records"],
            "properties": {"collection": {"type": "string"}, "count": {"type": "integer"},
                "records": {"type": "array", "items": reference("Record")}}},
        "ImportResult": {"type": "object",
            "required": ["collection", "lines", "imported", "failed_count", "failed", "failed_truncated"],
            "properties": {"collection": {"type": "string"}, "lines": {"type": "integer"},
                "imported": {"type": "integer"}, "failed_count": {"type": "integer"},
                "failed": {"type": "array", "items": {"type": "object", "required": ["line", "errors"],
                    "properties": {"line": {"type": "integer"}, "errors": field_errors}}},
                "failed_truncated": {"type": "boolean"}}},
        "BatchResults": {"type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": {"type": "object",
                "required": ["status", "headers", "body"],
                "properties": {"status": {"type": ["integer", "null"], "description": "null: not run"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "body": {"description": "The operation's JSON body, or null"},
                    "error": {"type": "object", "required": ["code", "detail"],
                        "description": "Why the operation was not run, or its body not kept",
                        "properties": {"code": {"type": "string"}, "detail": {"type": "string"}}}}}}}},
        "Health": {"type": "object", "required": ["status", "storage", "shared", "maintenance"],
            "properties": {"status": {"const": "ok"}, "storage": {"const": "ok"},
                "shared": {"enum": ["local", "ok", "unreachable"],
                    "description": "Redis (`--shared`): not used, answering, or away (limits fall back to this instance's)"},
                "maintenance": {"type": "boolean"}}},
        "Alive": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "ProblemType": {"type": "object", "required": ["type", "code", "status", "title", "description"],
            "properties": {"type": {"type": "string"}, "code": {"type": "string"},
                "status": {"type": "integer"}, "title": {"type": "string"}, "description": {"type": "string"}}},
        "MaintenanceState": {"type": "object", "required": ["enabled", "retry_after_seconds"],
            "properties": {"enabled": {"type": "boolean"}, "retry_after_seconds": {"type": ["integer", "null"]}}},
        "NewToken": {"type": "object", "additionalProperties": false, "required": ["scopes"],
            "properties": {
                "scopes": scopes,
                "collections": {"type": ["array", "null"], "items": {"type": "string", "pattern": NAME_PATTERN}},
                "rate_limit": rate_limit,
                "write_quota": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295u64}},
            "example": {"scopes": ["read"], "rate_limit": {"requests": 100, "per_seconds": 60}}},
        "NewCollection": {"type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                "schema": {"type": ["object", "boolean", "null"], "additionalProperties": true},
                "unique": {"type": ["array", "null"], "items": unique_field.clone()}},
            "example": {"name": "books", "schema": {"type": "object", "required": ["title"],
                "properties": {"title": {"type": "string"}}}, "unique": ["isbn"]}},
        "CollectionPatch": {"type": "object", "additionalProperties": false,
            "properties": {"name": {"type": ["string", "null"], "pattern": NAME_PATTERN},
                "schema": {"type": ["object", "boolean", "null"], "additionalProperties": true},
                "unique": {"type": ["array", "null"], "items": unique_field}}},
        "Batch": {"type": "object", "additionalProperties": false, "required": ["operations"],
            "properties": {"operations": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                "type": "object", "additionalProperties": false, "required": ["method", "path"],
                "properties": {
                    "method": {"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                    "path": {"type": "string", "pattern": "^/[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*$", "not": {"pattern": "^/v1/batch"}},
                    "body": {},
                    "headers": {"type": "object",
                        "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                        "additionalProperties": {"type": "string", "pattern": "^[ -~]*$"}}}}}}},
        "Maintenance": {"type": "object", "additionalProperties": false, "required": ["enabled"],
            "properties": {"enabled": {"type": "boolean"},
                "retry_after_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": 86400}}},
    });
    if let (Value::Object(all), Value::Object(rest)) = (&mut all, rest) {
        all.extend(rest);
    }
    all
}
