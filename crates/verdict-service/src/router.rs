//! Assembly: the routes, built from the surface's table (each operation's id
//! mapped to its handler, so a route cannot exist without its operation),
//! the `Contract` configured from the table and the flags, and metrics.

use std::sync::Arc;

use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::Method;
use verdict::client_addr::TrustedProxies;
use verdict::headers::Upgrade;
use verdict::{Contract, ContractService};

use crate::access::{authenticate::TokenAuthenticator, authorize::ServiceAuthorizer};
use crate::cluster::SharedLimits;
use crate::http::{batch, collections, jobs, ops, records, tokens};
use crate::observe::{fault, metrics};
use crate::state::AppState;
use crate::surface::{Access, Operation, RequestBody, DOC_ASSETS, JSON, OPERATIONS, PROBES, REALM};

/// The handler of `op`, on the method the table gives it.
fn handler(op: &Operation) -> MethodRouter<AppState> {
    let method = Method::from_bytes(op.method.as_bytes()).expect("the table has valid methods");
    let on_method = MethodFilter::try_from(method).expect("the table has routable methods");
    match op.id {
        "health" => on(on_method, ops::health),
        "livez" => on(on_method, ops::livez),
        "metrics" => on(on_method, ops::metrics),
        "openapi" => on(on_method, ops::openapi),
        "docs" => on(on_method, ops::docs),
        "create_token" => on(on_method, tokens::create),
        "list_tokens" => on(on_method, tokens::list),
        "get_token" => on(on_method, tokens::show),
        "revoke_token" => on(on_method, tokens::revoke),
        "create_collection" => on(on_method, collections::create),
        "list_collections" => on(on_method, collections::list),
        "get_collection" => on(on_method, collections::show),
        "change_collection" => on(on_method, collections::change),
        "delete_collection" => on(on_method, collections::delete),
        "list_records" => on(on_method, records::list),
        "create_record" => on(on_method, records::create),
        "get_record" => on(on_method, records::show),
        "replace_record" => on(on_method, records::replace),
        "patch_record" => on(on_method, records::patch),
        "delete_record" => on(on_method, records::delete),
        "lookup" => on(on_method, records::lookup),
        "batch" => on(on_method, batch::run),
        "export" => on(on_method, jobs::export),
        "import" => on(on_method, jobs::import),
        "get_job" => on(on_method, jobs::show),
        "cancel_job" => on(on_method, jobs::cancel),
        "job_result" => on(on_method, jobs::result),
        "delete_job" => on(on_method, jobs::delete_finished),
        "get_maintenance" => on(on_method, ops::get_maintenance),
        "set_maintenance" => on(on_method, ops::set_maintenance),
        other => panic!("the operation `{other}` has no handler"),
    }
}

/// The routes of every operation the service itself handles (the problem
/// pages are the library's: `Contract::document_problems`).
fn routes() -> Router<AppState> {
    let mut by_path: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for op in OPERATIONS
        .iter()
        .filter(|o| !o.path.starts_with("/problems"))
    {
        let route = handler(op);
        match by_path.iter_mut().find(|(p, _)| *p == op.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(route),
            None => by_path.push((op.path, route)),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods)
        })
}

/// The whole service: routes, the contract stack, metrics.
pub fn router(state: AppState) -> ContractService {
    let routes = routes()
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

    // What only the inside knows (token, client address), out to the access log.
    let routes = routes.route_layer(axum::middleware::from_fn(verdict::access_log::annotate));

    let config = &state.config;
    let mut contract = Contract::new(state.error_preset())
        .realm(REALM)
        .document_problems(crate::problems::CATALOG)
        .authenticate(Arc::new(TokenAuthenticator {
            storage: state.storage.clone(),
        }))
        .authorize(Arc::new(ServiceAuthorizer {
            shared: state.shared.clone(),
            storage: state.storage.clone(),
            realm: REALM.to_string(),
        }))
        .rate_limit(
            Arc::new(SharedLimits(state.shared.clone())),
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
        contract =
            contract.throttle_failed_auth(Arc::new(SharedLimits(state.shared.clone())), quota);
    }
    for probe in PROBES {
        contract = contract.probe(*probe);
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
    // Outside the metrics and the access log, which count the bytes the
    // application produced; inside CORS, whose headers are not compressed.
    let app = if state.config.no_compression {
        app
    } else {
        app.layer(verdict::compression::CompressionLayer::new())
    };
    let app = match cors(&state.config.cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    let _ = state.app.set(app.clone());
    app
}

/// CORS for `--cors-origin`, outside everything so that errors carry it too
/// (a browser shows a network error, not our problem body, without it) and
/// preflights are answered before credentials are asked for.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use http::header::{self, HeaderName};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| http::HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    let name = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_UNMODIFIED_SINCE,
                name("idempotency-key"),
                name("x-request-id"),
            ])
            // What a client needs to read: validators, where things went,
            // when to come back, its budget, and the id to quote.
            .expose_headers([
                header::ETAG,
                header::LAST_MODIFIED,
                header::LOCATION,
                header::RETRY_AFTER,
                header::LINK,
                name("ratelimit-limit"),
                name("ratelimit-remaining"),
                name("ratelimit-reset"),
                name("x-request-id"),
                name("idempotent-replayed"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
