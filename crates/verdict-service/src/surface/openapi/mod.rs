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

use crate::model::idempotency::KEY_PATTERN;
use crate::model::records::FIELD_PATTERN;
use crate::storage::CollectionRow;
use crate::surface::{Access, Operation, RequestBody, OPERATIONS};

mod schemas;

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

/// Whether `op` reads one resource whose representation has validators.
fn has_validators(op: &Operation) -> bool {
    matches!(
        op.id,
        "get_record"
            | "create_record"
            | "replace_record"
            | "patch_record"
            | "get_collection"
            | "create_collection"
            | "change_collection"
            | "create_token"
            | "get_token"
    )
}

/// The headers a response of `op` with `code` carries, beyond those its
/// status requires.
fn response_headers(op: &Operation, code: u16, headers: &mut Map<String, Value>) {
    headers.insert(
        "X-Request-Id".into(),
        header("The request's id (the client's own if it sent a valid one); error bodies quote it"),
    );
    if op.access != Access::Public && code < 500 {
        for (name, what) in [
            ("RateLimit-Limit", "Requests allowed in the current window"),
            ("RateLimit-Remaining", "Requests left in the current window"),
            ("RateLimit-Reset", "Seconds until the window resets"),
        ] {
            headers.insert(
                name.into(),
                json!({"description": what, "schema": {"type": "integer", "minimum": 0}}),
            );
        }
    }
    if (200..300).contains(&code) || code == 304 {
        if has_validators(op) || matches!(op.id, "list_records" | "list_collections") {
            headers.insert(
                "ETag".into(),
                header("A strong tag of these bytes; send it in `If-None-Match` (304) or `If-Match` (412 if stale). A compressed body's tag ends in `-gzip`, `-br` or `-zstd`"),
            );
        }
        if has_validators(op) {
            headers.insert(
                "Last-Modified".into(),
                header("`updated_at`, as an HTTP date; for `If-Modified-Since` / `If-Unmodified-Since`"),
            );
        }
    }
    match (op.id, code) {
        ("list_records", 200) => {
            headers.insert(
                "Link".into(),
                header("`<...>; rel=\"next\"`: the next page, when there is one"),
            );
            headers.insert(
                "X-Total-Count".into(),
                json!({"description": "With `count=true`: the records the filters match", "schema": {"type": "integer"}}),
            );
        }
        ("create_record", 201) => {
            headers.insert(
                "Idempotent-Replayed".into(),
                header("`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`"),
            );
        }
        _ => {}
    }
    if matches!(code, 201 | 302 | 303) {
        headers.insert("Location".into(), header("Where the resource is"));
    }
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
    response_headers(op, code, &mut headers);
    if code >= 400 {
        r.insert("content".into(), error_content());
    } else if !matches!(code, 204 | 303 | 304) {
        let mut content = Map::new();
        for media in op.produces {
            let s = if media.starts_with("application/json") {
                schemas::success(op.id, code)
            } else {
                Some(json!({"type": "string"}))
            };
            if let Some(s) = s {
                content.insert(media.to_string(), json!({"schema": s}));
            }
        }
        if !content.is_empty() {
            r.insert("content".into(), Value::Object(content));
        }
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
            let (schema, what) = match name {
                "slug" => (
                    json!({"type": "string", "enum": problem_slugs()}),
                    "A problem type's slug",
                ),
                "c" => (
                    json!({"type": "string"}),
                    "The collection's name (an old name answers 302 to the new one)",
                ),
                "id" if op.path.starts_with("/v1/jobs") => {
                    (json!({"type": "string"}), "The job's id")
                }
                "id" if op.path.starts_with("/v1/tokens") => {
                    (json!({"type": "string"}), "The token's id (not its secret)")
                }
                _ => (json!({"type": "string"}), "The record's id"),
            };
            ps.push(json!({"name": name, "in": "path", "required": true, "description": what, "schema": schema}));
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
            "description": "Makes a retry safe: the same key with the same request replays the first answer (`Idempotent-Replayed: true`); with another request it is a 409",
            "schema": {"type": "string", "pattern": KEY_PATTERN}})),
        _ => {}
    }
    // What the server parses (an empty value is no condition); anything
    // else is a 400 `invalid_header`.
    let tag_list = json!({"type": "string", "description": "`*` or entity tags such as `\"3f1c\"`",
        "pattern": r#"^(|\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#});
    let date = json!({"type": "string", "description": "An HTTP date, such as `Tue, 24 Nov 2026 09:30:00 GMT`"});
    if op.method == "GET" && has_validators(op)
        || matches!(op.id, "list_records" | "list_collections")
    {
        ps.push(
            json!({"name": "If-None-Match", "in": "header", "schema": tag_list,
            "description": "304 when the current representation's tag is one of these"}),
        );
        ps.push(
            json!({"name": "If-Modified-Since", "in": "header", "schema": date,
            "description": "304 when not changed since (ignored with If-None-Match)"}),
        );
    }
    if matches!(op.method, "PUT" | "PATCH" | "DELETE") && op.errors.contains(&412) {
        ps.push(json!({"name": "If-Match", "in": "header", "schema": tag_list,
            "description": "Apply only if the current tag is one of these, else 412 (lost-update protection)"}));
        ps.push(
            json!({"name": "If-Unmodified-Since", "in": "header", "schema": date,
            "description": "Apply only if not changed since, else 412"}),
        );
    }
    ps.push(json!({"name": "X-Request-Id", "in": "header", "schema": {"type": "string"},
        "description": "Your id for this request (1 to 128 visible ASCII characters), echoed back and quoted in logs and error bodies; one is made when it is absent or not such an id"}));
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

/// The tag of an operation, by its path.
fn tag(op: &Operation) -> &'static str {
    let p = op.path;
    if p.starts_with("/v1/collections/{c}/records") || p.starts_with("/v1/collections/{c}/lookup") {
        "records"
    } else if p.starts_with("/v1/collections/{c}/exports")
        || p.starts_with("/v1/collections/{c}/imports")
        || p.starts_with("/v1/jobs")
    {
        "jobs"
    } else if p.starts_with("/v1/collections") {
        "collections"
    } else if p.starts_with("/v1/tokens") {
        "tokens"
    } else if p.starts_with("/v1/batch") {
        "batch"
    } else if p.starts_with("/problems") {
        "problems"
    } else {
        "operations"
    }
}

const TAGS: [(&str, &str); 7] = [
    (
        "records",
        "JSON records of a collection: ETags, conditional writes, merge patch, pages",
    ),
    (
        "collections",
        "Named sets of records, each with an optional JSON Schema and unique fields",
    ),
    (
        "jobs",
        "Exports and imports that run in the background (202, then a monitor)",
    ),
    ("batch", "Several operations in one request (207)"),
    (
        "tokens",
        "Bearer tokens: scopes, collections, rate limits (admin)",
    ),
    (
        "operations",
        "Probes, metrics, maintenance mode and this document",
    ),
    ("problems", "What each problem type of an error body means"),
];

/// The document for the service under `preset`; `collections` adds each
/// one's record schema (`Record_<name>`), for a caller that may read them.
pub fn document(preset: &Preset, collections: &[CollectionRow]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in OPERATIONS {
        let mut responses = Map::new();
        for code in statuses(op, preset) {
            responses.insert(code.to_string(), response(op, code));
        }
        let mut o = json!({
            "operationId": op.id,
            "summary": op.summary,
            "tags": [tag(op)],
            "parameters": parameters(op),
            "responses": responses,
        });
        if let Access::Scope(scope) = op.access {
            o["security"] = json!([{"bearer": [scope]}]);
            o["description"] = Value::String(match scope {
                "admin" => "Needs a token with the `admin` scope.".to_string(),
                _ => format!("Needs a token with the `{scope}` scope (or `admin`)."),
            });
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
    let mut description = format!(
        "Collections of JSON records that keep the status-code contract. Preset: {preset}; \
         error bodies are `{}` unless `Accept` asks for another of the three formats.",
        preset.format().content_type()
    );
    if !collections.is_empty() {
        description.push_str(
            " Each collection's records are described by `Record_<name>` in the components.",
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Verdict records API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "servers": [{"url": "/"}],
        "tags": TAGS.iter().map(|(name, what)| json!({"name": name, "description": what})).collect::<Vec<_>>(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "ID.SECRET",
                "description": "A token from `POST /v1/tokens` (admin), `verdict token create`, or the admin token \
                    printed at first start (or given with `--admin-token`), sent as `Authorization: Bearer ID.SECRET`. \
                    A missing or bad token is a 401 with `WWW-Authenticate: Bearer`; a token without the operation's scope is a 403."}},
            "schemas": schemas::components(collections),
        },
        "paths": paths,
    })
}

/// `doc` as JSON text, with `first` listed first wherever media types are
/// keys (`content` maps): Swagger UI shows the first as the example, and the
/// one the server sends unless asked otherwise is the one to show.
/// (`serde_json::Map` sorts its keys; its order-keeping feature would change
/// every map in the process, record bodies and their ETags included.)
pub fn to_json(doc: &Value, first: &str) -> Vec<u8> {
    struct Ordered<'a>(&'a Value, &'a str);
    impl serde::Serialize for Ordered<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{SerializeMap, SerializeSeq};
            match self.0 {
                Value::Object(m) => {
                    let mut out = s.serialize_map(Some(m.len()))?;
                    let front = m.get_key_value(self.1);
                    if let Some((k, v)) = front {
                        out.serialize_entry(k, &Ordered(v, self.1))?;
                    }
                    for (k, v) in m.iter().filter(|(k, _)| k.as_str() != self.1) {
                        out.serialize_entry(k, &Ordered(v, self.1))?;
                    }
                    out.end()
                }
                Value::Array(a) => {
                    let mut out = s.serialize_seq(Some(a.len()))?;
                    for v in a {
                        out.serialize_element(&Ordered(v, self.1))?;
                    }
                    out.end()
                }
                other => other.serialize(s),
            }
        }
    }
    serde_json::to_vec(&Ordered(doc, first)).expect("a document serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_only_codes_its_preset_allows() {
        for preset in Preset::all() {
            let doc = document(&preset, &[]);
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
