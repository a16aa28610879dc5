//! The gateway's access log and metrics, with the service's names so one
//! dashboard reads both: `http_requests_total{route,method,status}`,
//! `http_request_duration_seconds{route,method}`, `http_requests_in_flight`,
//! `http_problems_total{code}`, and per upstream attempt
//! `verdict_proxy_upstream_requests_total{upstream,outcome}` (`ok`,
//! `refused`, `timeout`, `invalid`) and
//! `verdict_proxy_upstream_duration_seconds{upstream}` (to the response head).
//! `GET /.verdict/metrics` renders them (Prometheus text).
//!
//! Upstreams are labelled by their position in `--upstream` (1, 2, ...), as
//! in the readiness probe: the metrics page names no address. The access
//! log, which only operators read, has the address.
//!
//! The route label is the document's path template with `--openapi`
//! (matched with `matchit`, axum's own router), else `*`: labels stay few
//! whatever the ids in the URLs.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use verdict::access_log::{method_label, Seen};

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder (the `metrics` facade has one per process);
/// a thread folds histogram samples every 5 s so memory stays flat when
/// nobody scrapes.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ])
                .expect("buckets are valid")
                .install_recorder()
                .expect("one recorder per process");
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .expect("a thread can be started");
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "Requests answered by the gateway, by route template, method and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route and method."
    );
    describe_gauge!(
        "http_requests_in_flight",
        "Requests being processed now (shedding starts at --max-in-flight)."
    );
    describe_counter!(
        "http_problems_total",
        "Error responses the gateway wrote or rewrote, by problem code."
    );
    describe_counter!(
        "verdict_proxy_upstream_requests_total",
        "Attempts to reach an upstream, by its position in --upstream and outcome \
         (ok, refused, timeout, invalid)."
    );
    describe_histogram!(
        "verdict_proxy_upstream_duration_seconds",
        Unit::Seconds,
        "Time from sending a request upstream to its response head (or failure)."
    );
    metrics::gauge!("verdict_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The counter and timer of one upstream's attempts with one outcome.
#[derive(Clone)]
pub struct Attempts {
    count: metrics::Counter,
    time: metrics::Histogram,
}

impl Attempts {
    /// For the upstream at `position` (from 1) and `outcome`.
    pub fn new(position: usize, outcome: &'static str) -> Self {
        let upstream = position.to_string();
        Attempts {
            count: metrics::counter!("verdict_proxy_upstream_requests_total", "upstream" => upstream.clone(), "outcome" => outcome),
            time: metrics::histogram!("verdict_proxy_upstream_duration_seconds", "upstream" => upstream),
        }
    }

    /// One attempt that took `took`.
    pub fn record(&self, took: Duration) {
        self.count.increment(1);
        self.time.record(took.as_secs_f64());
    }
}

/// One attempt at an upstream that failed: counted and timed (failures
/// are rare enough for a labelled lookup each).
pub fn upstream_attempt(position: usize, outcome: &'static str, took: Duration) {
    Attempts::new(position, outcome).record(took);
}

/// Which upstream answered a request, and how: put on the response by the
/// forwarding handler, read by the access log.
#[derive(Clone, Debug)]
pub struct Upstreamed {
    /// The upstream's base URL (the log is the operators').
    pub upstream: Option<String>,
    /// `ok`, `refused`, `timeout`, `invalid`, `no_upstream`.
    pub outcome: &'static str,
}

/// Path templates for the route label.
#[derive(Debug, Default)]
pub struct Routes(Option<matchit::Router<&'static str>>);

impl Routes {
    /// The document's path templates (`None`: every path is `*`).
    pub fn new(paths: Option<Vec<String>>) -> Self {
        Routes(paths.map(|paths| {
            let mut r = matchit::Router::new();
            for p in paths {
                let p: &'static str = Box::leak(p.into_boxed_str());
                let _ = r.insert(p, p);
            }
            r
        }))
    }

    fn label(&self, path: &str) -> &'static str {
        if path.starts_with("/.verdict/") {
            return match path {
                crate::HEALTH => crate::HEALTH,
                crate::METRICS => crate::METRICS,
                _ => "/.verdict/*",
            };
        }
        match &self.0 {
            None => "*",
            Some(r) => r.at(path).map_or("unmatched", |m| *m.value),
        }
    }
}

/// Outermost: metrics and one access line per request, once its response
/// head is ready (refusals by the contract's layers included).
pub async fn track(routes: Arc<Routes>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = routes.label(req.uri().path());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let res = next.run(req).await;
    in_flight.decrement(1.0);
    let took = start.elapsed();
    let status = res.status().as_u16();
    metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(took.as_secs_f64());
    if let Some(error) = verdict::format::rendered_error(&res) {
        metrics::counter!("http_problems_total", "code" => error.code().to_string()).increment(1);
    }
    let seen = res.extensions().get::<Seen>();
    let client = seen.and_then(|s| s.client).or(peer);
    let upstreamed = res.extensions().get::<Upstreamed>();
    let request_id = res
        .headers()
        .get(verdict::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        target: "verdict::access",
        method = %method,
        route,
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        bytes = http_body::Body::size_hint(res.body()).exact(),
        request_id,
        token = seen.and_then(|s| s.token.as_deref()).unwrap_or("-"),
        client = %client.map_or_else(|| "-".to_string(), |c| c.to_string()),
        upstream = upstreamed.and_then(|u| u.upstream.as_deref()).unwrap_or("-"),
        outcome = upstreamed.map_or("-", |u| u.outcome),
        "request"
    );
    res
}
