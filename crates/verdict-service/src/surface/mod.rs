//! The HTTP surface, as data: one table ([`OPERATIONS`]) from which the
//! router's routes and policies (public routes, scopes, media types, body
//! limits), the authorization rules, the metrics labels and the OpenAPI
//! document ([`openapi`]) are all built, so none of them can drift from
//! another. Nothing here knows a handler: the router maps each
//! operation's id to one.

pub mod openapi;
pub mod urls;

use http::Method;

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials.
    Public,
    /// A token with this scope (`admin` may do anything).
    Scope(&'static str),
}

/// What an operation's request body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// No body.
    None,
    /// `application/json` with the named schema.
    Json(&'static str),
    /// `application/merge-patch+json` with the named schema.
    MergePatch(&'static str),
    /// `application/x-ndjson`, one record a line.
    Ndjson,
}

/// One operation of the surface.
#[derive(Clone, Copy, Debug)]
pub struct Operation {
    /// The HTTP method, in capitals (`GET`).
    pub method: &'static str,
    /// The path template, with `{name}` for each parameter (`/v1/collections/{c}`).
    pub path: &'static str,
    /// Its `operationId`, unique in the table: the router picks the handler by it.
    pub id: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Statuses of success (and redirection) it answers with.
    pub ok: &'static [u16],
    /// Error statuses of its own, beyond those every operation may send.
    pub errors: &'static [u16],
    /// What its request body is.
    pub body: RequestBody,
    /// Representations of its success responses.
    pub produces: &'static [&'static str],
}

/// The media types of most operations.
pub const JSON: &[&str] = &["application/json"];
/// The problem pages (served by the library: `Contract::document_problems`).
const PAGES: &[&str] = &["application/json", "text/html"];

macro_rules! op {
    ($m:literal $p:literal $id:literal, $summary:literal, $access:expr, ok $ok:expr, err $err:expr, $body:expr) => {
        op!($m $p $id, $summary, $access, ok $ok, err $err, $body, JSON)
    };
    ($m:literal $p:literal $id:literal, $summary:literal, $access:expr, ok $ok:expr, err $err:expr, $body:expr, $produces:expr) => {
        Operation { method: $m, path: $p, id: $id, summary: $summary, access: $access,
            ok: &$ok, errors: &$err, body: $body, produces: $produces }
    };
}

use Access::{Public, Scope};
use RequestBody as B;

/// Every operation of the reference service (docs/contract.md, "The reference service").
pub const OPERATIONS: &[Operation] = &[
    op!("GET" "/health" "health", "Readiness: storage and the shared store answer (the body says what is wrong)", Public, ok [200], err [], B::None),
    op!("GET" "/livez" "livez", "Liveness: the process answers", Public, ok [200], err [], B::None),
    op!("GET" "/metrics" "metrics", "Prometheus metrics", Public, ok [200], err [], B::None, &["text/plain"]),
    op!("GET" "/openapi.json" "openapi", "This document", Public, ok [200], err [], B::None),
    op!("GET" "/docs" "docs", "The API documentation page", Public, ok [200], err [], B::None, &["text/html"]),
    op!("GET" "/problems" "list_problems", "Every problem type an error body may carry", Public, ok [200], err [], B::None, PAGES),
    op!("GET" "/problems/{slug}" "problem", "What a problem type means", Public, ok [200], err [404], B::None, PAGES),
    op!("POST" "/v1/tokens" "create_token", "Create a token (its secret is shown once)", Scope("admin"), ok [201], err [], B::Json("NewToken")),
    op!("GET" "/v1/tokens" "list_tokens", "List tokens", Scope("admin"), ok [200], err [], B::None),
    op!("GET" "/v1/tokens/{id}" "get_token", "Read a token (never its secret)", Scope("admin"), ok [200, 304], err [404], B::None),
    op!("DELETE" "/v1/tokens/{id}" "revoke_token", "Revoke a token", Scope("admin"), ok [204], err [404], B::None),
    op!("POST" "/v1/collections" "create_collection", "Create a collection", Scope("write"), ok [201], err [409], B::Json("NewCollection")),
    op!("GET" "/v1/collections" "list_collections", "List collections", Scope("read"), ok [200, 304], err [], B::None),
    op!("GET" "/v1/collections/{c}" "get_collection", "Read a collection", Scope("read"), ok [200, 302, 304], err [404], B::None),
    op!("PATCH" "/v1/collections/{c}" "change_collection", "Rename a collection or change its schema", Scope("write"), ok [200, 302], err [404, 409, 412], B::MergePatch("CollectionPatch")),
    op!("DELETE" "/v1/collections/{c}" "delete_collection", "Delete a collection (409 if not empty, unless ?force=true)", Scope("write"), ok [204, 302], err [404, 409], B::None),
    op!("GET" "/v1/collections/{c}/records" "list_records", "A page of records", Scope("read"), ok [200, 302, 304], err [404], B::None, &["application/json", "text/csv"]),
    op!("POST" "/v1/collections/{c}/records" "create_record", "Create a record", Scope("write"), ok [201, 302], err [404, 409], B::Json("NewRecord")),
    op!("GET" "/v1/collections/{c}/records/{id}" "get_record", "Read a record", Scope("read"), ok [200, 302, 304], err [404], B::None),
    op!("PUT" "/v1/collections/{c}/records/{id}" "replace_record", "Replace a record", Scope("write"), ok [200, 302], err [404, 409, 412], B::Json("RecordData")),
    op!("PATCH" "/v1/collections/{c}/records/{id}" "patch_record", "Merge-patch a record (RFC 7396)", Scope("write"), ok [200, 302], err [404, 409, 412], B::MergePatch("RecordData")),
    op!("DELETE" "/v1/collections/{c}/records/{id}" "delete_record", "Delete a record", Scope("write"), ok [204, 302], err [404, 412], B::None),
    op!("GET" "/v1/collections/{c}/lookup" "lookup", "Find records by a field: 303 to one, 300 for several", Scope("read"), ok [300, 302, 303], err [404], B::None),
    op!("POST" "/v1/batch" "batch", "Run up to 100 operations", Scope("read"), ok [207], err [], B::Json("Batch")),
    op!("POST" "/v1/collections/{c}/exports" "export", "Start an export job", Scope("write"), ok [202, 302], err [404, 429], B::None),
    op!("POST" "/v1/collections/{c}/imports" "import", "Start an NDJSON import job", Scope("write"), ok [202, 302], err [404, 429], B::Ndjson),
    op!("GET" "/v1/jobs/{id}" "get_job", "A job's state; 303 to its result once done", Scope("read"), ok [200, 303], err [404], B::None),
    op!("DELETE" "/v1/jobs/{id}" "cancel_job", "Cancel a job that has not finished", Scope("write"), ok [204], err [404, 409], B::None),
    op!("GET" "/v1/jobs/{id}/result" "job_result", "A finished job's result (an export's also as NDJSON, which an import takes back)", Scope("read"), ok [200], err [404], B::None, &["application/json", "application/x-ndjson"]),
    op!("DELETE" "/v1/jobs/{id}/result" "delete_job", "Delete a finished job and its result before its retention ends (409 while it runs: cancel it first)", Scope("write"), ok [204], err [404, 409], B::None),
    op!("GET" "/v1/admin/maintenance" "get_maintenance", "Maintenance mode", Scope("admin"), ok [200], err [], B::None),
    op!("PUT" "/v1/admin/maintenance" "set_maintenance", "Turn maintenance mode on or off", Scope("admin"), ok [200], err [], B::Json("Maintenance")),
];

/// The Swagger UI page and assets `/docs` serves (from the `swagger-ui-dist`
/// crate, which embeds them), with their media types.
pub const DOC_ASSETS: &[(&str, &str)] = &[
    ("/docs/swagger", "text/html"),
    ("/docs/swagger/", "text/html"),
    ("/docs/swagger/swagger-ui.css", "text/css"),
    ("/docs/swagger/swagger-ui-bundle.js", "text/javascript"),
    ("/docs/swagger/swagger-ui.css.map", "application/json"),
    ("/docs/swagger/swagger-ui-bundle.js.map", "application/json"),
    ("/docs/swagger/oauth2-redirect.html", "text/html"),
    ("/docs/swagger/oauth2-redirect.js", "text/javascript"),
];

/// The operation `method` on the routed `path`.
pub fn operation(method: &Method, path: &str) -> Option<&'static Operation> {
    let m = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    OPERATIONS.iter().find(|o| o.method == m && o.path == path)
}

/// Who may call `method` on the routed path: the operation's access, the
/// docs page's assets are public, and anything else needs `admin` (no route
/// gets a scope by accident).
pub fn access(method: &Method, routed: &str) -> Access {
    if let Some(op) = operation(method, routed) {
        return op.access;
    }
    if DOC_ASSETS.iter().any(|(path, _)| *path == routed) {
        return Access::Public;
    }
    Access::Scope("admin")
}

/// The probes: public, and never refused by load shedding, maintenance or
/// rate limits (`Contract::probe`), so an orchestrator sees the process as
/// it is.
pub const PROBES: &[&str] = &["/health", "/livez", "/metrics"];

/// The realm of bearer challenges.
pub const REALM: &str = "verdict";
