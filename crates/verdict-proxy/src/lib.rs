//! `verdict proxy --upstream URL`: the contract in front of an HTTP API
//! written in anything, and the one honest source of 502, 503 and 504.
//!
//! Every request goes through the `verdict` library's stack, verbatim (the
//! same layers `verdict serve` runs): 414/431, 501 for unrecognized methods,
//! 410/426 for retired prefixes, 503 when shedding (`--max-in-flight`), 413
//! past `--max-body`, a deadline (`--request-timeout`). A refused request
//! never reaches the upstream. What the upstream cannot give becomes one of
//! [`failure::Failure`]'s classes: refused, unresolvable or otherwise
//! unreachable -> 502, reset or not HTTP -> 502, too slow -> 504, every
//! circuit open -> 503 with `Retry-After`; the body names the class, the log
//! the details. `https://` upstreams are verified against Mozilla's roots
//! and `--upstream-ca`; a failed handshake is a 502 like a refused connection.
//!
//! Upstream errors that are not in the preset's format (HTML, plain text,
//! foreign JSON) are rewritten into it, keeping the status and `Retry-After`,
//! `WWW-Authenticate`, `Allow`, `Location`, `RateLimit-*`; an upstream error
//! that already conforms passes untouched, and so does every answer with
//! `--normalize off`. 2xx and 3xx answers stream through, never buffered.
//! Hop-by-hop fields are stripped both ways (RFC 9110 §7.6.1), `Via` and
//! `Forwarded` added, the request id sent upstream in `X-Request-Id`.
//!
//! In front of the upstream, too: bearer tokens in the service's model
//! (`--tokens`, [`tokens`]; or `--pass-auth`), the library's rate limiter
//! (`--rate-limit`, shared with other gateways and services through Redis
//! with `--shared`), maintenance (`--maintenance-file`, or the shared switch),
//! request bodies against the document's schemas ([`document`]), and the
//! service's access log and metrics ([`observe`]).
//!
//! ```no_run
//! # async fn run() {
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     proxy: verdict_proxy::ProxyArgs,
//! }
//! let cli = Cli::parse_from(["gateway", "--upstream", "http://127.0.0.1:3000"]);
//! let code = verdict_proxy::run(cli.proxy).await;
//! # let _ = code;
//! # }
//! ```

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use clap::{Args, ValueEnum};
use http::header;
use http_body_util::BodyExt;
use verdict::auth::Authentication;
use verdict::client_addr::ClientAddr;
use verdict::conditional::Preconditions;
use verdict::format::ErrorFormat;
use verdict::headers::Upgrade;
use verdict::maintenance::MaintenanceSwitch;
use verdict::normalize::Verbatim;
use verdict::rate_limit::Quota;
use verdict::{Contract, ContractService, Preset};
use verdict_cluster::{Shared, SharedLimits, WhenUnavailable};

pub mod document;
pub mod failure;
pub mod hop;
pub mod observe;
pub mod precondition;
pub mod tokens;
pub mod upstream;

use crate::observe::Upstreamed;
use crate::upstream::Upstreams;

/// The most of an upstream error body read to judge whether it conforms.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Where the gateway's own problem pages are (under a prefix no upstream
/// path is likely to use).
pub const PROBLEM_BASE: &str = "/.verdict/problems";

/// The gateway's readiness probe: 200 while an upstream may be asked, 503
/// when every circuit is open; the body lists the upstreams' states by
/// their position in `--upstream` (never their addresses). Never shed.
pub const HEALTH: &str = "/.verdict/health";

/// The gateway's metrics (Prometheus text). Public without `--tokens`;
/// with it, for tokens with the `admin` scope.
pub const METRICS: &str = "/.verdict/metrics";

/// `verdict proxy`'s arguments.
#[derive(Clone, Debug, Args)]
pub struct ProxyArgs {
    /// Where to listen.
    #[arg(long, env = "VERDICT_PROXY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// An upstream (`http://host:port` or `https://host:port`); repeat for
    /// several (round robin, each rested after 3 failures in a row).
    #[arg(long = "upstream", required = true)]
    pub upstreams: Vec<String>,
    /// Certificates (PEM) trusted for `https://` upstreams besides the
    /// public roots: a private CA, or a self-signed upstream's own.
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// The preset whose codes and error format the gateway keeps.
    #[arg(long, default_value = "standard", value_parser = preset_parser())]
    pub preset: Preset,
    /// The error-body format, overriding the preset's: `problem`, `jsonapi`, `simple`.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["problem", "jsonapi", "simple"]))]
    pub error_format: Option<String>,
    /// How long to wait for an upstream's connection and response head
    /// (then 504), and the longest its body may stall (then the stream is reset).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// A request's whole deadline at the gateway (then 504).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// How long a failing upstream is rested before it is tried again.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_rest: Duration,
    /// Requests processed at once; past it, 503 with Retry-After.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,
    /// The largest request body passed on, in bytes (then 413).
    #[arg(long, default_value_t = 10 << 20)]
    pub max_body: u64,
    /// A retired path prefix (410, or 426 under presets that have it);
    /// repeat for several.
    #[arg(long = "retired")]
    pub retired: Vec<String>,
    /// Rewrite upstream errors that are not in the preset's format into it
    /// (`on`), or pass every upstream answer as it is (`off`).
    #[arg(long, value_enum, default_value_t = Normalize::On)]
    pub normalize: Normalize,
    /// An OpenAPI 3 document (JSON) of the upstream: only its paths and
    /// methods are passed on (404 for another path, 405 with the exact
    /// `Allow` for another method), and `Accept` (406) and `Content-Type`
    /// (415) are checked against the media types it gives each operation.
    #[arg(long)]
    pub openapi: Option<std::path::PathBuf>,
    /// Bearer tokens checked at the gateway (a JSON file of hashed secrets
    /// and scopes; see `verdict_proxy::tokens`): 401 without a valid token,
    /// 403 without the scope the method needs. The upstream gets the token's
    /// id in `X-Verdict-Principal`, never the secret.
    #[arg(long, conflicts_with = "pass_auth")]
    pub tokens: Option<PathBuf>,
    /// Leave authentication to the upstream: `Authorization` passes through
    /// untouched. The default when `--tokens` is not given; say it to make
    /// the choice explicit.
    #[arg(long)]
    pub pass_auth: bool,
    /// Requests each client may make (`REQUESTS/PERIOD`, like `600/1m`):
    /// per token with `--tokens` (a token's own `rate_limit` wins), else
    /// per client address. Past it, 429 with `Retry-After`.
    #[arg(long, value_parser = tokens::parse_quota)]
    pub rate_limit: Option<Quota>,
    /// Redis (`redis://host:port`) holding the rate limits and maintenance
    /// switch, shared with other gateways and with `verdict serve` instances
    /// given the same URL and `--shared-prefix`.
    #[arg(long, env = "VERDICT_SHARED")]
    pub shared: Option<String>,
    /// Prefix of the keys in Redis.
    #[arg(long, env = "VERDICT_SHARED_PREFIX", default_value = "verdict")]
    pub shared_prefix: String,
    /// When Redis cannot be reached: `fail` (503 with `Retry-After`) or
    /// `local` (this gateway's own limits, with a warning).
    #[arg(long, value_enum, default_value_t = WhenUnavailable::Fail)]
    pub shared_unavailable: WhenUnavailable,
    /// While this file exists, every request but the probes is answered 503
    /// (maintenance), with `Retry-After` = the number in the file, else 60.
    /// Checked every second.
    #[arg(long)]
    pub maintenance_file: Option<PathBuf>,
    /// Log lines as JSON instead of text.
    #[arg(long)]
    pub log_json: bool,
}

/// `--normalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Normalize {
    /// Upstream errors in another format are rewritten into the preset's.
    On,
    /// Upstream answers pass as they are.
    Off,
}

fn preset_parser() -> impl clap::builder::TypedValueParser<Value = Preset> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(verdict::preset::PRESET_NAMES)
        .map(|name| Preset::by_name(&name).expect("a listed preset"))
}

/// What the forwarding handler needs.
#[derive(Debug)]
struct Gateway {
    upstreams: Upstreams,
    normalize: Normalize,
    idle: Duration,
    /// Whether the gateway checked the bearer token itself (`--tokens`).
    authenticates: bool,
}

/// The gateway as a service: the contract's stack around the forwarding handler.
///
/// Call it inside a Tokio runtime: with `--shared` or `--maintenance-file`
/// it starts the task that follows the maintenance switch.
pub fn build(args: &ProxyArgs) -> Result<ContractService, String> {
    // First: the upstreams' counters are registered with it.
    let metrics = observe::handle();
    let tokens = match &args.tokens {
        Some(file) => Some(Arc::new(tokens::TokenFile::read(file)?)),
        None => None,
    };
    let gateway = Arc::new(Gateway {
        upstreams: Upstreams::new(
            &args.upstreams,
            args.upstream_timeout,
            args.upstream_rest,
            args.upstream_ca.as_deref(),
        )?,
        normalize: args.normalize,
        idle: args.upstream_timeout,
        authenticates: tokens.is_some(),
    });
    let document = match &args.openapi {
        Some(file) => Some(document::Document::read(file)?),
        None => None,
    };
    let shared = Arc::new(match &args.shared {
        Some(url) => Shared::redis(
            url,
            &args.shared_prefix,
            args.shared_unavailable,
            failure::SHARED,
        )?,
        None => Shared::local(failure::SHARED),
    });
    let route_labels = Arc::new(observe::Routes::new(document.as_ref().map(|d| d.paths())));
    let routes = match &document {
        // Only what the document lists is passed on.
        Some(doc) => doc.routes(forward),
        None => Router::new()
            .route("/", any(forward))
            .route("/{*path}", any(forward)),
    }
    .route(HEALTH, axum::routing::get(health))
    .route(
        METRICS,
        axum::routing::get(move || std::future::ready(metrics.render())),
    )
    .with_state(gateway)
    // What only the inside knows (token, client address), out to the access log.
    .route_layer(axum::middleware::from_fn(verdict::access_log::annotate));
    let mut preset = args.preset.clone();
    if let Some(format) = args.error_format.as_deref().and_then(ErrorFormat::by_name) {
        preset = preset.with_format(format);
    }
    let maintenance = MaintenanceSwitch::new();
    let mut contract = Contract::new(preset)
        .problem_base(PROBLEM_BASE)
        .document_problems(failure::CATALOG)
        .probe(HEALTH)
        .maintenance(maintenance.clone())
        .max_in_flight(args.max_in_flight as usize)
        .timeout(args.request_timeout)
        .max_body(args.max_body)
        // Without a document the upstream decides what it takes and gives
        // (no 406/415 on its behalf); it tags its own representations.
        .check_media_types(document.is_some())
        .etag(false);
    if let Some(doc) = &document {
        contract = doc.media_types(contract);
    }
    if let Some(tokens) = tokens {
        contract = contract
            .authenticate(tokens)
            .authorize(Arc::new(tokens::GatewayScopes))
            .public(HEALTH);
    }
    if args.rate_limit.is_some() || args.tokens.is_some() {
        // With tokens and no --rate-limit, only tokens with their own limit are limited.
        contract = contract.rate_limit(Arc::new(SharedLimits(shared.clone())), args.rate_limit);
    }
    if args.shared.is_some() || args.maintenance_file.is_some() {
        follow_maintenance(shared, args.maintenance_file.clone(), maintenance);
    }
    for retired in &args.retired {
        let (prefix, successor) = retired.split_once('=').unwrap_or((retired, "HTTP/1.1"));
        let upgrade = Upgrade::new(successor)
            .ok_or_else(|| format!("--retired {retired}: `{successor}` is not a protocol token"))?;
        contract = contract.retire(prefix, upgrade);
    }
    let service = contract.apply(routes);
    // Outermost, so refusals by the contract's layers are counted and logged too.
    Ok(service.layer(axum::middleware::from_fn(move |req, next| {
        observe::track(route_labels.clone(), req, next)
    })))
}

/// Keeps `switch` on while the maintenance file exists or the shared switch
/// (set by `verdict serve`'s admin API, with the same `--shared`) is on.
fn follow_maintenance(shared: Arc<Shared>, file: Option<PathBuf>, switch: MaintenanceSwitch) {
    tokio::spawn(async move {
        let mut known_shared = None;
        loop {
            let from_file = match &file {
                Some(f) => match tokio::fs::read_to_string(f).await {
                    Ok(text) => Some(text.trim().parse::<u64>().unwrap_or(60)),
                    Err(_) => None,
                },
                None => None,
            };
            if shared.is_shared() {
                // While Redis is away, the last known state holds.
                if let Ok(state) = shared.maintenance().await {
                    known_shared = state;
                }
            }
            match from_file.or(known_shared) {
                Some(retry_after) => switch.enable(retry_after.max(1)),
                None => switch.disable(),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// `GET /.verdict/health`: never shed; 503 (with `Retry-After`) when no
/// upstream may be asked now.
async fn health(State(gw): State<Arc<Gateway>>) -> Response {
    let states = gw.upstreams.states();
    // By position in the --upstream list: a public probe names no address.
    let upstreams: Vec<serde_json::Value> = states
        .iter()
        .enumerate()
        .map(|(i, (_, open, failures))| {
            serde_json::json!({
                "upstream": i + 1,
                "state": if *open { "resting" } else { "ok" },
                "failures_in_a_row": failures,
            })
        })
        .collect();
    if states.iter().all(|(_, open, _)| *open) {
        return failure::Failure::NoHealthyUpstream(Duration::from_secs(1))
            .into_error()
            .with_extension("upstreams", upstreams)
            .into_response();
    }
    axum::Json(serde_json::json!({"status": "ok", "upstreams": upstreams})).into_response()
}

/// Forwards one request, and shapes what comes back.
async fn forward(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let client = ClientAddr::of(&parts.extensions).map(|c| c.0);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    hop::strip(&mut parts.headers);
    hop::add_via(&mut parts.headers);
    hop::add_forwarded(&mut parts.headers, client, host.as_deref());
    // Only the gateway says who the caller is.
    parts.headers.remove(tokens::PRINCIPAL);
    parts.headers.remove(tokens::SCOPES);
    if gw.authenticates {
        // The upstream gets who, never the secret.
        parts.headers.remove(header::AUTHORIZATION);
        let principal = parts
            .extensions
            .get::<Authentication>()
            .and_then(Authentication::principal);
        if let Some(p) = principal {
            if let Ok(v) = http::HeaderValue::from_str(p.subject()) {
                parts.headers.insert(tokens::PRINCIPAL, v);
            }
            if let Ok(v) = http::HeaderValue::from_str(&p.scopes().join(" ")) {
                parts.headers.insert(tokens::SCOPES, v);
            }
        }
    }
    // The upstream's own authority goes in Host (the client's is in Forwarded).
    parts.headers.remove(header::HOST);
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let pre = match Preconditions::from_parts(&parts) {
        Ok(pre) => pre.is_conditional().then_some(pre),
        Err(malformed) => return malformed.into_response(),
    };
    if let Some(pre) = pre.as_ref().filter(|_| !precondition::is_read(&method)) {
        if let Err(refused) =
            precondition::check_write(&gw.upstreams, pre, &parts.uri, &parts.headers).await
        {
            return refused;
        }
    }
    match gw.upstreams.forward(Request::from_parts(parts, body)).await {
        Ok((res, position)) => {
            let upstream = gw.upstreams.base(position).to_string();
            tracing::debug!(%method, %path, %upstream, status = res.status().as_u16(), "upstream answered");
            let judged = match &pre {
                Some(pre) if precondition::is_read(&method) && res.status().is_success() => {
                    precondition::judge_read(pre, res.headers())
                }
                _ => None,
            };
            let mut res = match judged {
                Some(answer) => answer,
                None => shape(&gw, res).await,
            };
            res.extensions_mut().insert(Upstreamed {
                upstream: Some(upstream),
                outcome: "ok",
            });
            res
        }
        Err(failure) => {
            let outcome = failure.label();
            tracing::warn!(%method, %path, outcome, "upstream failed");
            let mut res = failure.into_error().into_response();
            res.extensions_mut().insert(Upstreamed {
                upstream: None,
                outcome,
            });
            res
        }
    }
}

/// The upstream's answer, as the client gets it.
async fn shape(gw: &Gateway, res: http::Response<hyper::body::Incoming>) -> Response {
    let (mut parts, body) = res.into_parts();
    // The client speaks HTTP/1.1 with the gateway, whatever the upstream
    // spoke, and gets the status's own reason phrase (hyper keeps an
    // upstream's unusual one, "404 File not found", in the extensions).
    parts.version = http::Version::HTTP_11;
    parts.extensions = http::Extensions::new();
    hop::strip(&mut parts.headers);
    hop::add_via(&mut parts.headers);
    let error = parts.status.is_client_error() || parts.status.is_server_error();
    if gw.normalize == Normalize::Off || !error {
        let mut res = Response::from_parts(parts, upstream::with_idle_timeout(body, gw.idle));
        if gw.normalize == Normalize::Off {
            res.extensions_mut().insert(Verbatim);
        }
        return res;
    }
    // An error: read it (up to the cap) to see whether it keeps the format.
    let limited = http_body_util::Limited::new(body, MAX_ERROR_BODY);
    let bytes = tokio::time::timeout(gw.idle, limited.collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let encoded = parts.headers.contains_key(header::CONTENT_ENCODING);
    if let Some(bytes) = bytes.filter(|_| !encoded) {
        let conforms = verdict::format::inspect(&content_type, &bytes)
            .is_ok_and(|b| b.status.is_none_or(|s| s == parts.status.as_u16()));
        if conforms {
            parts.headers.remove(header::CONTENT_LENGTH);
            let mut res = Response::from_parts(parts, Body::from(bytes));
            res.extensions_mut().insert(Verbatim);
            return res;
        }
    }
    // Not in the format: the contract's stack renders the status anew,
    // keeping the headers that matter (Retry-After, Allow, ...).
    for h in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
    ] {
        parts.headers.remove(h);
    }
    tracing::debug!(
        status = parts.status.as_u16(),
        content_type,
        "upstream error rewritten into the preset's format"
    );
    Response::from_parts(parts, Body::empty())
}

/// `verdict proxy`: serves until SIGINT or SIGTERM; the exit code.
pub async fn run(args: ProxyArgs) -> i32 {
    let app = match build(&args) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("verdict proxy: {e}");
            return 2;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("verdict proxy: cannot listen on {}: {e}", args.listen);
            return 1;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!(
        "verdict proxy {} in front of {}, preset {}",
        env!("CARGO_PKG_VERSION"),
        args.upstreams.join(", "),
        args.preset
    );
    println!("listening on http://{local}");
    tracing::info!(address = %local, upstreams = ?args.upstreams, "verdict proxy serving");
    let server = verdict::server::Server::new(listener, app)
        .preset(args.preset.clone())
        .problem_base(PROBLEM_BASE);
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = ctrl_c.await;
        }
    };
    match server.run_until(shutdown).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("verdict proxy: {e}");
            1
        }
    }
}
