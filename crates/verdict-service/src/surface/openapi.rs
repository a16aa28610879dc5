//! `/openapi.json`: OpenAPI 3.1, generated from the operations table
//! ([`crate::surface::OPERATIONS`]) and the preset, so every status the service
//! can send for an operation (under that preset) is documented on it.
//!
//! The document is built as JSON from the same table that configures the
//! router, rather than with utoipa's derive macros: the macros document
//! handlers, while here the table is what decides scopes, media types and body
//! limits, and the document must say exactly that.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{json, Map, Value};
use verdict::status;
use verdict::{ErrorFormat, Preset, Situation};

use crate::model::collections::NAME_PATTERN;
use crate::model::idempotency::KEY_PATTERN;
use crate::model::records::{DOT_IDS, FIELD_PATTERN, ID_PATTERN};
use crate::surface::{Access, Operation, RequestBody, OPERATIONS};

/// Statuses any operation may send: bad header or query, Accept, failure,
/// overload or maintenance, deadline. (The rate limit's status is the
/// preset's, added below.)
const EVERY_OPERATION: [u16; 5] = [400, 406, 500, 503, 504];
const WITH_CREDENTIALS: [u16; 2] = [401, 403];
/// 408: the body stopped arriving (or was still arriving at the deadline).
const WITH_BODY: [u16; 5] = [400, 408, 413, 415, 422];

/// The statuses `op` may answer with under `preset`.
pub fn statuses(op: &Operation, preset: &Preset) -> BTreeSet<u16> {
    let mut raw: BTreeSet<u16> = op
        .ok
        .iter()
        .chain(op.errors)
        .chain(&EVERY_OPERATION)
        .copied()
        .collect();
    if op.access != Access::Public {
        raw.extend(WITH_CREDENTIALS);
        raw.insert(preset.status_for(Situation::MissingCredentials).as_u16());
    }
    if op.body != RequestBody::None {
        raw.extend(WITH_BODY);
        raw.insert(preset.status_for(Situation::MalformedBody).as_u16());
    }
    raw.insert(preset.status_for(Situation::RateLimited).as_u16());
    raw.into_iter()
        .map(|c| preset.map(StatusCode::from_u16(c).expect("valid")).as_u16())
        .collect()
}

fn schemas() -> Value {
    let unique_field = json!({"type": "string", "minLength": 1, "maxLength": 128,
        "not": {"enum": crate::model::records::RESERVED}});
    let field_errors = json!({"type": "array", "items": {"type": "object",
        "properties": {"pointer": {"type": "string"}, "detail": {"type": "string"}},
        "required": ["pointer", "detail"]}});
    json!({
        "Problem": {"type": "object", "description": "RFC 9457 problem details",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "instance": {"type": "string"}, "code": {"type": "string"},
                "request_id": {"type": "string"}, "incident_id": {"type": "string"},
                "errors": field_errors}},
        "JsonApiErrors": {"type": "object", "required": ["errors"],
            "properties": {"errors": {"type": "array", "items": {"type": "object",
                "required": ["status", "code", "title", "detail"],
                "properties": {"status": {"type": "string"}, "code": {"type": "string"},
                    "title": {"type": "string"}, "detail": {"type": "string"},
                    "source": {"type": "object", "properties": {"pointer": {"type": "string"}}}}}}}},
        "SimpleError": {"type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "errors": field_errors}},
        "Record": {"type": "object", "required": ["id", "created_at", "updated_at"],
            "properties": {"id": {"type": "string"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"}},
            "additionalProperties": true},
        "RecordData": {"type": "object", "description": "The record's fields (`id`, `created_at` and `updated_at` are ignored).",
            "additionalProperties": true},
        "NewRecord": {"type": "object", "description": "The record's fields, and optionally its `id`.",
            "properties": {"id": {"type": "string", "pattern": ID_PATTERN, "not": {"enum": DOT_IDS}}},
            "additionalProperties": true},
        "NewToken": {"type": "object", "additionalProperties": false, "required": ["scopes"],
            "properties": {
                "scopes": {"type": "array", "minItems": 1, "items": {"enum": ["read", "write", "admin"]}},
                "collections": {"type": ["array", "null"], "items": {"type": "string", "pattern": NAME_PATTERN}},
                "rate_limit": {"type": ["object", "null"], "additionalProperties": false, "required": ["requests", "per_seconds"],
                    "properties": {"requests": {"type": "integer", "minimum": 1, "maximum": 4294967295u64},
                        "per_seconds": {"type": "integer", "minimum": 1, "maximum": 4294967295u64}}},
                "write_quota": {"type": ["integer", "null"], "minimum": 0, "maximum": 4294967295u64}}},
        "NewCollection": {"type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                "schema": {"type": ["object", "boolean", "null"]},
                "unique": {"type": ["array", "null"], "items": unique_field.clone()}}},
        "CollectionPatch": {"type": "object", "additionalProperties": false,
            "properties": {"name": {"type": ["string", "null"], "pattern": NAME_PATTERN},
                "schema": {"type": ["object", "boolean", "null"]},
                "unique": {"type": ["array", "null"], "items": unique_field.clone()}}},
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
    })
}

fn error_content() -> Value {
    let mut m = Map::new();
    for (format, schema) in [
        (ErrorFormat::Problem, "Problem"),
        (ErrorFormat::JsonApi, "JsonApiErrors"),
        (ErrorFormat::Simple, "SimpleError"),
    ] {
        m.insert(
            format.content_type().to_string(),
            json!({"schema": {"$ref": format!("#/components/schemas/{schema}")}}),
        );
    }
    Value::Object(m)
}

fn header(description: &str) -> Value {
    json!({"description": description, "schema": {"type": "string"}})
}

fn response(op: &Operation, code: u16) -> Value {
    let reason = status::reason(StatusCode::from_u16(code).expect("valid"));
    let mut r = Map::new();
    r.insert("description".into(), Value::String(reason.to_string()));
    let mut headers = Map::new();
    for h in status::required_headers(StatusCode::from_u16(code).expect("valid")) {
        let name = match h {
            status::RequiredHeader::AcceptPostOrPatch if op.method == "PATCH" => "Accept-Patch",
            status::RequiredHeader::AcceptPostOrPatch => "Accept-Post",
            other => other.name(),
        };
        headers.insert(name.to_string(), header("required by the status"));
    }
    if code == 202 {
        headers.insert("Location".into(), header("the job's monitor"));
    }
    if code >= 400 {
        r.insert("content".into(), error_content());
    } else if !matches!(code, 204 | 304 | 302 | 303) {
        let schema = match (op.id, code) {
            ("get_record" | "create_record" | "replace_record" | "patch_record", _)
            | ("lookup", 200) => {
                json!({"$ref": "#/components/schemas/Record"})
            }
            _ => json!({"type": "object"}),
        };
        let mut content = Map::new();
        for media in op.produces {
            let s = if media.starts_with("application/json") {
                schema.clone()
            } else {
                json!({"type": "string"})
            };
            content.insert(media.to_string(), json!({"schema": s}));
        }
        r.insert("content".into(), Value::Object(content));
    }
    if !headers.is_empty() {
        r.insert("headers".into(), Value::Object(headers));
    }
    if let Some(l) = links(op, code) {
        r.insert("links".into(), l);
    }
    Value::Object(r)
}

fn parameters(op: &Operation) -> Vec<Value> {
    let mut ps = Vec::new();
    for seg in op.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let schema = if name == "slug" {
                json!({"type": "string", "enum": problem_slugs()})
            } else {
                json!({"type": "string"})
            };
            ps.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
        }
    }
    match op.id {
        "list_records" => {
            ps.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}));
            ps.push(json!({"name": "cursor", "in": "query",
                "description": "`next_cursor` of the previous page (with the same `sort`)",
                "schema": {"type": "string"}}));
            ps.push(json!({"name": "sort", "in": "query",
                "description": "up to 4 keys separated by commas: `id`, `created_at`, `updated_at` or a field, `-` in front for descending; the id breaks ties. A missing or null field sorts first ascending, last descending",
                "schema": {"type": "string", "example": "-created_at,title"}}));
            ps.push(json!({"name": "count", "in": "query",
                "description": "`true` adds `total`, the number of records the filters match (a count costs a scan of them)",
                "schema": {"type": "string", "enum": ["true", "false"]}}));
            ps.push(json!({"name": "filter", "in": "query", "style": "deepObject", "explode": true,
                "description": "equality filters, `filter[field]=value` (a value that reads as a number or `true`/`false` also matches that JSON value); any other parameter is a 400",
                "schema": {"type": "object", "propertyNames": {"pattern": FIELD_PATTERN},
                    "additionalProperties": {"type": "string"}}}));
        }
        "lookup" => ps.push(json!({"name": "match", "in": "query", "required": true,
            "description": "exactly one `field=value`", "style": "form", "explode": true,
            "schema": {"type": "object", "minProperties": 1, "maxProperties": 1,
                "propertyNames": {"pattern": FIELD_PATTERN},
                "additionalProperties": {"type": "string"}}})),
        "delete_collection" => {
            ps.push(json!({"name": "force", "in": "query", "schema": {"enum": ["true", "false"]}}))
        }
        "create_record" => ps.push(json!({"name": "Idempotency-Key", "in": "header",
            "schema": {"type": "string", "pattern": KEY_PATTERN}})),
        _ => {}
    }
    ps
}

/// Every documented problem type's slug.
fn problem_slugs() -> Vec<String> {
    let mut slugs: Vec<String> = verdict::problems::all(crate::problems::CATALOG)
        .iter()
        .map(|p| verdict::format::slug(p.code))
        .collect();
    slugs.sort();
    slugs
}

/// OpenAPI links: where the values a response carries lead, so a client (or
/// Schemathesis's stateful phase) can go from a created resource to its operations.
fn links(op: &Operation, code: u16) -> Option<Value> {
    let to = |ids: &[&str], params: Value| -> Value {
        let mut m = Map::new();
        for id in ids {
            m.insert(
                id.to_string(),
                json!({"operationId": id, "parameters": params.clone()}),
            );
        }
        Value::Object(m)
    };
    let collection = json!({"c": "$response.body#/name"});
    let record = json!({"c": "$request.path.c", "id": "$response.body#/id"});
    let job = json!({"id": "$response.body#/id"});
    Some(match (op.id, code) {
        ("create_collection", 200 | 201) => to(
            &[
                "get_collection",
                "change_collection",
                "delete_collection",
                "list_records",
                "create_record",
                "export",
                "import",
            ],
            collection,
        ),
        ("create_record", 200 | 201) => to(
            &[
                "get_record",
                "replace_record",
                "patch_record",
                "delete_record",
            ],
            record,
        ),
        ("export" | "import", 200 | 202) => to(&["get_job", "cancel_job", "job_result"], job),
        ("create_token", 200 | 201) => to(&["revoke_token"], job),
        ("get_job", 200 | 303) => to(
            &["job_result", "cancel_job"],
            json!({"id": "$request.path.id"}),
        ),
        _ => return None,
    })
}

fn request_body(op: &Operation) -> Option<Value> {
    let (media, schema) = match op.body {
        RequestBody::None => return None,
        RequestBody::Json(s) => (
            "application/json",
            json!({"$ref": format!("#/components/schemas/{s}")}),
        ),
        RequestBody::MergePatch(s) => (
            "application/merge-patch+json",
            json!({"$ref": format!("#/components/schemas/{s}")}),
        ),
        // Any body is accepted (202); the job's result names each bad line.
        RequestBody::Ndjson => (
            "application/x-ndjson",
            json!({"description": "One JSON object a line; each line becomes a record."}),
        ),
    };
    Some(
        json!({"required": op.body != RequestBody::Ndjson, "content": {media: {"schema": schema}}}),
    )
}

/// The document for the service under `preset`.
pub fn document(preset: &Preset) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in OPERATIONS {
        let mut responses = Map::new();
        for code in statuses(op, preset) {
            responses.insert(code.to_string(), response(op, code));
        }
        let mut o = json!({
            "operationId": op.id,
            "summary": op.summary,
            "parameters": parameters(op),
            "responses": responses,
        });
        if let Access::Scope(scope) = op.access {
            o["security"] = json!([{"bearer": [scope]}]);
            o["description"] = Value::String(format!(
                "Needs a token with the `{scope}` scope (or `admin`)."
            ));
        } else {
            o["security"] = json!([]);
        }
        if let Some(b) = request_body(op) {
            o["requestBody"] = b;
        }
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method.to_ascii_lowercase()] = o;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Verdict records API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Collections of JSON records that keep the status-code contract. Preset: {preset}."),
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_only_codes_its_preset_allows() {
        for preset in Preset::all() {
            let doc = document(&preset);
            for op in OPERATIONS {
                let responses = &doc["paths"][op.path][op.method.to_ascii_lowercase()]["responses"];
                let codes: Vec<u16> = responses
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.parse().unwrap())
                    .collect();
                assert!(
                    codes
                        .iter()
                        .all(|c| preset.allows(StatusCode::from_u16(*c).unwrap())),
                    "{preset} {}",
                    op.id
                );
                assert!(codes.contains(&preset.map(StatusCode::INTERNAL_SERVER_ERROR).as_u16()));
            }
        }
    }

    #[test]
    fn seed_001_documents_420_and_400_for_missing_credentials() {
        let preset = Preset::by_name("seed-001").unwrap();
        let op = OPERATIONS.iter().find(|o| o.id == "get_record").unwrap();
        let s = statuses(op, &preset);
        assert!(s.contains(&420) && !s.contains(&429) && s.contains(&400));
    }
}
