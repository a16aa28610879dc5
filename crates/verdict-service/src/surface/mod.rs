//! The HTTP surface, as one table ([`OPERATIONS`]) that drives the router's
//! policies (public routes, scopes, media types, body limits), the metrics
//! labels and the OpenAPI document, so none of them can drift from another.

use std::sync::Arc;

use axum::routing::{delete, get, post, put};
use axum::Router;
use http::Method;
use verdict::client_addr::TrustedProxies;
use verdict::headers::Upgrade;
use verdict::{Contract, ContractService};

use crate::state::AppState;
use crate::{authz, batch, collections, fault, jobs, metrics, ops, records, tokens};

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
    pub method: &'static str,
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Statuses of success (and redirection) it answers with.
    pub ok: &'static [u16],
    /// Error statuses of its own, beyond those every operation may send.
    pub errors: &'static [u16],
    pub body: RequestBody,
    /// Representations of its success responses.
    pub produces: &'static [&'static str],
}

const JSON: &[&str] = &["application/json"];
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

/// Every operation of the reference service (CONTRACT.md "HTTP surface").
pub const OPERATIONS: &[Operation] = &[
    op!("GET" "/health" "health", "Liveness and storage reachability", Public, ok [200], err [], B::None),
    op!("GET" "/metrics" "metrics", "Prometheus metrics", Public, ok [200], err [], B::None, &["text/plain"]),
    op!("GET" "/openapi.json" "openapi", "This document", Public, ok [200], err [], B::None),
    op!("GET" "/docs" "docs", "The API documentation page", Public, ok [200], err [], B::None, &["text/html"]),
    op!("GET" "/problems" "list_problems", "Every problem type an error body may carry", Public, ok [200], err [], B::None, PAGES),
    op!("GET" "/problems/{slug}" "problem", "What a problem type means", Public, ok [200], err [404], B::None, PAGES),
    op!("POST" "/v1/tokens" "create_token", "Create a token (its secret is shown once)", Scope("admin"), ok [201], err [], B::Json("NewToken")),
    op!("GET" "/v1/tokens" "list_tokens", "List tokens", Scope("admin"), ok [200], err [], B::None),
    op!("DELETE" "/v1/tokens/{id}" "revoke_token", "Revoke a token", Scope("admin"), ok [204], err [404], B::None),
    op!("POST" "/v1/collections" "create_collection", "Create a collection", Scope("write"), ok [201], err [409], B::Json("NewCollection")),
    op!("GET" "/v1/collections" "list_collections", "List collections", Scope("read"), ok [200], err [], B::None),
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
    op!("GET" "/v1/jobs/{id}/result" "job_result", "A finished job's result", Scope("read"), ok [200], err [404], B::None),
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

/// The realm of bearer challenges.
pub const REALM: &str = "verdict";

/// The whole service: routes, the contract stack, metrics.
pub fn router(state: AppState) -> ContractService {
    let routes = Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/docs", get(ops::docs))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route(
            "/v1/collections",
            post(collections::create).get(collections::list),
        )
        .route(
            "/v1/collections/{c}",
            get(collections::show)
                .patch(collections::change)
                .delete(collections::delete),
        )
        .route(
            "/v1/collections/{c}/records",
            get(records::list).post(records::create),
        )
        .route(
            "/v1/collections/{c}/records/{id}",
            get(records::show)
                .put(records::replace)
                .patch(records::patch)
                .delete(records::delete),
        )
        .route("/v1/collections/{c}/lookup", get(records::lookup))
        .route("/v1/batch", post(batch::run))
        .route("/v1/collections/{c}/exports", post(jobs::export))
        .route("/v1/collections/{c}/imports", post(jobs::import))
        .route("/v1/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route(
            "/v1/admin/maintenance",
            put(ops::set_maintenance).get(ops::get_maintenance),
        )
        .with_state(state.clone())
        .merge(swagger_ui_dist::generate_routes(
            swagger_ui_dist::ApiDefinition {
                uri_prefix: "/docs/swagger",
                api_definition: swagger_ui_dist::OpenApiSource::Uri("/openapi.json"),
                title: Some("Verdict API"),
            },
        ));
    // Innermost, so faults happen after every check, inside the deadline and the in-flight slot.
    let routes = if state.config.fault_injection {
        routes.route_layer(axum::middleware::from_fn(fault::inject))
    } else {
        routes
    };

    let config = &state.config;
    let mut contract = Contract::new(state.error_preset())
        .realm(REALM)
        .document_problems(ops::SERVICE_PROBLEMS)
        .authenticate(Arc::new(tokens::TokenAuthenticator {
            storage: state.storage.clone(),
        }))
        .authorize(Arc::new(authz::ServiceAuthorizer {
            shared: state.shared.clone(),
            storage: state.storage.clone(),
            realm: REALM.to_string(),
        }))
        .rate_limit(
            Arc::new(crate::shared::SharedLimits(state.shared.clone())),
            config.rate_limit.0,
        )
        .max_in_flight(config.max_in_flight)
        .timeout(config.request_timeout)
        .body_timeout(Some(config.body_timeout))
        .trusted_proxies(TrustedProxies::new(config.trusted_proxies.iter().copied()))
        .maintenance(state.maintenance.clone())
        .retire("/v0", Upgrade::new("verdict-api/1").expect("valid token"))
        .max_body(config.max_body);
    if let Some(quota) = config.auth_failure_limit.0 {
        contract = contract.throttle_failed_auth(
            Arc::new(crate::shared::SharedLimits(state.shared.clone())),
            quota,
        );
    }
    for (path, media) in DOC_ASSETS {
        contract = contract.public(*path).produces(Method::GET, path, [*media]);
    }
    for op in OPERATIONS {
        let method = Method::from_bytes(op.method.as_bytes()).expect("valid method");
        if op.access == Access::Public {
            contract = contract.public(op.path);
        }
        if op.produces != JSON {
            contract = contract.produces(method.clone(), op.path, op.produces.iter().copied());
        }
        if op.body == RequestBody::Ndjson {
            contract = contract
                .consumes(method.clone(), op.path, ["application/x-ndjson"])
                .max_body_for(method, op.path, config.max_import_body);
        }
    }
    let labels = Arc::new(metrics::Routes::new(OPERATIONS.iter().map(|o| o.path)));
    let app = contract
        .apply(routes)
        .layer(axum::middleware::from_fn(move |req, next| {
            metrics::track(labels.clone(), req, next)
        }));
    let _ = state.app.set(app.clone());
    app
}
