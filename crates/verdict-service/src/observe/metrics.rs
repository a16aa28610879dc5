//! `/metrics`: Prometheus text from the `metrics` ecosystem: requests by
//! route, method and status, latency histograms by route, error responses by
//! problem code (sheds, rate-limit and maintenance refusals among them), the
//! health of storage and Redis, jobs, and the process's own figures.
//!
//! The route label is the operation's path template (`/v1/collections/{c}`),
//! matched with `matchit` (axum's own router) against the operations table, so
//! labels stay few whatever the ids in the URLs.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder (the `metrics` facade has one per process).
///
/// Histogram samples are kept raw until the next upkeep folds them into
/// buckets; rendering `/metrics` runs it, but nobody may scrape, so a thread
/// runs it every 5 s (without it memory grew about 20 bytes a
/// request, forever).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
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

/// Help text for every metric, and the build's version as a gauge.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "Requests answered, by route template, method and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route and method."
    );
    describe_gauge!(
        "http_requests_in_flight",
        "Requests being processed now (load shedding starts at --max-in-flight)."
    );
    describe_counter!(
        "verdict_sqlite_commits_total",
        "SQLite commits (each one fsync), carrying one or more writes."
    );
    describe_counter!(
        "verdict_sqlite_batched_writes_total",
        "Writes committed to SQLite; divided by the commits, the group-commit batch size."
    );
    describe_counter!(
        "verdict_jobs_finished_total",
        "Jobs that ended, by kind (export, import) and state (succeeded, failed)."
    );
    describe_gauge!(
        "verdict_jobs",
        "Jobs kept in storage now, by state (queued, running, succeeded, failed, cancelled), read at each scrape."
    );
    describe_histogram!(
        "verdict_job_duration_seconds",
        Unit::Seconds,
        "How long a job ran in this process, by kind."
    );
    describe_counter!(
        "http_problems_total",
        "Error responses by problem code: `overloaded` counts requests shed past \
         --max-in-flight, `rate_limited` rate-limit refusals, `maintenance` refusals \
         in maintenance mode."
    );
    describe_gauge!(
        "verdict_storage_up",
        "1 if the database answered at the last scrape, else 0."
    );
    describe_gauge!(
        "verdict_shared_up",
        "1 if Redis (--shared) answered at the last scrape, 0 if not; absent without --shared."
    );
    describe_gauge!(
        "verdict_build_info",
        "1, labelled with the running version."
    );
    metrics::gauge!("verdict_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    process().describe();
}

/// The process's own figures (CPU seconds, resident and virtual memory, open
/// file descriptors and their limit, threads, start time), as
/// `process_*` metrics, read at each scrape.
pub fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Path templates for labels.
pub struct Routes(matchit::Router<&'static str>);

impl Routes {
    /// From the operations table.
    pub fn new(paths: impl IntoIterator<Item = &'static str>) -> Self {
        let mut r = matchit::Router::new();
        for p in paths {
            let _ = r.insert(p, p);
        }
        Routes(r)
    }

    fn label(&self, path: &str) -> &'static str {
        match self.0.at(path) {
            Ok(m) => m.value,
            Err(_) if path.starts_with("/v0") => "/v0/*",
            Err(_) => "unmatched",
        }
    }
}

/// The handles of one (route, method, status)'s request metrics.
#[derive(Clone)]
struct RequestMetrics {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

thread_local! {
    /// Each thread's handles, by (route, method, status). `metrics::counter!`
    /// with labels builds its key (a label vector, the status as a string),
    /// hashes it and looks it up in the recorder's registry on every call;
    /// a handle, once had, records without any of that. Route and method
    /// labels are `'static` and few, statuses are few: the map stays small.
    static REQUEST_METRICS: std::cell::RefCell<
        std::collections::HashMap<(&'static str, &'static str, u16), RequestMetrics>,
    > = std::cell::RefCell::new(std::collections::HashMap::new());
}

fn request_metrics(route: &'static str, method: &'static str, status: u16) -> RequestMetrics {
    REQUEST_METRICS.with(|cache| {
        cache
            .borrow_mut()
            .entry((route, method, status))
            .or_insert_with(|| RequestMetrics {
                requests: metrics::counter!("http_requests_total", "route" => route, "method" => method, "status" => status.to_string()),
                duration: metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method),
            })
            .clone()
    })
}

/// The middleware, around the whole service: metrics, and the access log
/// line (with the same route label).
pub async fn track(routes: Arc<Routes>, req: Request, next: Next) -> Response {
    static IN_FLIGHT: OnceLock<metrics::Gauge> = OnceLock::new();
    let start = Instant::now();
    let method = verdict::access_log::method_label(req.method());
    let route = routes.label(req.uri().path());
    // The recorder is installed before the first request (`crate::build`),
    // so the handle kept here is the recorder's.
    let in_flight = IN_FLIGHT.get_or_init(|| metrics::gauge!("http_requests_in_flight"));
    in_flight.increment(1.0);
    let res = super::access::log(route, req, next).await;
    in_flight.decrement(1.0);
    let handles = request_metrics(route, method, res.status().as_u16());
    handles.requests.increment(1);
    handles.duration.record(start.elapsed().as_secs_f64());
    if let Some(error) = verdict::format::rendered_error(&res) {
        // Codes come from the catalogs, a bounded set.
        metrics::counter!("http_problems_total", "code" => error.code().to_string()).increment(1);
    }
    res
}
