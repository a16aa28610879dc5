//! What the contract costs: each body format, the full layer stack on a
//! trivial handler against the bare handler (same run, so compare ratios),
//! the rate-limit decision and the conditional check.
//!
//! `cargo bench -p verdict`

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use divan::{black_box, Bencher};
use futures_util::future::BoxFuture;
use http::Request;
use tower::ServiceExt;
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::conditional::{EntityTag, Preconditions, Validators};
use verdict::format::{render, RenderContext};
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, ErrorFormat, FieldError, Preset};

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

struct OneToken;

impl Authenticator for OneToken {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(
            async move { Ok((token == "t").then(|| Principal::new("bench", ["read", "write"]))) },
        )
    }
}

fn routes() -> Router {
    Router::new().route("/hello", get(|| async { "hello" }))
}

fn full_stack() -> verdict::ContractService {
    Contract::new(Preset::standard())
        .authenticate(Arc::new(OneToken))
        .authorize(Arc::new(ScopeByMethod))
        .rate_limit(
            Arc::new(InMemoryStore::new()),
            Some(Quota::new(u32::MAX, Duration::from_secs(1))),
        )
        .max_in_flight(10_000)
        .timeout(Duration::from_secs(30))
        .apply(routes())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn run<S>(b: Bencher, app: S, path: &'static str, token: Option<&'static str>)
where
    S: tower::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone,
{
    let rt = runtime();
    // Made once: the client's work of writing the header is not the stack's.
    let authorization =
        token.map(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).expect("a header"));
    b.bench_local(|| {
        let mut req = Request::get(path);
        if let Some(value) = &authorization {
            req = req.header(http::header::AUTHORIZATION, value.clone());
        }
        let res = rt
            .block_on(app.clone().oneshot(req.body(Body::empty()).unwrap()))
            .unwrap();
        black_box(res.status());
    });
}

/// The stack built up one feature at a time, so that the difference between
/// neighbouring steps is what that feature costs (issue 15: where the time goes).
const STEPS: [&str; 6] = [
    "1 always-on, no ETag",
    "2 + ETag",
    "3 + auth",
    "4 + rate limit",
    "5 + shedding",
    "6 + deadline (full)",
];

fn stack_up_to(step: &str) -> verdict::ContractService {
    let n: u8 = step[..1].parse().expect("a numbered step");
    let mut c = Contract::new(Preset::standard()).etag(n >= 2);
    if n >= 3 {
        c = c
            .authenticate(Arc::new(OneToken))
            .authorize(Arc::new(ScopeByMethod));
    }
    if n >= 4 {
        c = c.rate_limit(
            Arc::new(InMemoryStore::new()),
            Some(Quota::new(u32::MAX, Duration::from_secs(1))),
        );
    }
    if n >= 5 {
        c = c.max_in_flight(10_000);
    }
    if n >= 6 {
        c = c.timeout(Duration::from_secs(30));
    }
    c.apply(routes())
}

mod stack {
    use super::*;

    #[divan::bench(args = STEPS)]
    fn cumulative(b: Bencher, step: &str) {
        run(b, stack_up_to(step), "/hello", Some("t"));
    }

    #[divan::bench]
    fn bare_handler(b: Bencher) {
        // As `axum::serve` runs a router: its state given once, up front.
        // The same request as the stack's, token included (ignored here).
        run(b, routes().with_state(()), "/hello", Some("t"));
    }

    #[divan::bench]
    fn full_stack_success(b: Bencher) {
        run(b, full_stack(), "/hello", Some("t"));
    }

    #[divan::bench]
    fn full_stack_404(b: Bencher) {
        run(b, full_stack(), "/nope", Some("t"));
    }

    #[divan::bench]
    fn full_stack_401(b: Bencher) {
        run(b, full_stack(), "/hello", None);
    }
}

mod formats {
    use super::*;

    fn error() -> ApiError {
        ApiError::validation_failed(vec![
            FieldError::new("/name", "is required"),
            FieldError::new("/price", "must be a non-negative integer, not a string"),
        ])
    }

    #[divan::bench(args = ErrorFormat::ALL)]
    fn render_422(format: ErrorFormat) -> bytes::Bytes {
        let e = error();
        let ctx = RenderContext {
            request_id: Some("3f1c0d9e-8f7a-4d2b-9a61-0c5e2b7d4a10"),
            instance: Some("/v1/collections/books/records"),
            ..Default::default()
        };
        render(black_box(&e), e.status(), format, &ctx)
    }
}

#[divan::bench]
fn rate_limit_decision(b: Bencher) {
    let store = InMemoryStore::new();
    let q = Quota::new(1_000_000, Duration::from_secs(1));
    b.bench_local(|| black_box(store.decide(black_box("sub:bench"), q)));
}

#[divan::bench]
fn conditional_check(b: Bencher) {
    let (parts, ()) = Request::get("/x")
        .header("if-none-match", "\"a\", \"b\", W/\"c\"")
        .body(())
        .unwrap()
        .into_parts();
    let current = Validators::new(Some(EntityTag::strong("c")), None);
    b.bench_local(|| {
        let pre = Preconditions::from_parts(black_box(&parts)).unwrap();
        black_box(pre.check(Some(&current)).is_err())
    });
}
