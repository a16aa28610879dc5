//! `alloc-sites [stacked|assembled|bare] [--count | --measure N]`: where one
//! `GET /hello` allocates, through the full `verdict` stack, the same checks
//! assembled from the ecosystem's crates, or the bare handler, in process: each
//! allocation's size and the first frames that made it (file:line, with the
//! crate), so that the next cut is found by reading, not guessing (issue 15).
//! With `--count`, only the number.
//!
//! Build with line tables for the frames: `cargo build --profile bench
//! --bin alloc-sites` (the bench profile keeps them), then run
//! `target/release/alloc-sites`.
//!
//! The request is what wrk sends (`Host`, `Authorization`), and the app is
//! warmed up first, so one-time allocations (a rate limiter's first key, the
//! clock's calibration) are not counted.
//!
//! `--measure N` runs N requests in one function instead, for callgrind to
//! count the instructions of a request, which (unlike its time) does not
//! change with what else the machine is doing:
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='alloc_sites::measured*' target/release/alloc-sites --measure 2000`
//! (then divide by N).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::body::Body;
use tower::ServiceExt;

/// mimalloc, as the servers use, recording each allocation while `RECORDING`.
struct Recording;

static RECORDING: AtomicBool = AtomicBool::new(false);
/// With `--count`, no backtraces: only the number of allocations.
static TRACING: AtomicBool = AtomicBool::new(true);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static SITES: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while a site is being recorded: its own allocations are not sites.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

fn record(size: usize) {
    if !RECORDING.load(Ordering::Relaxed) || INSIDE.with(|i| i.replace(true)) {
        return;
    }
    COUNT.fetch_add(1, Ordering::Relaxed);
    if TRACING.load(Ordering::Relaxed) {
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        SITES.lock().expect("not poisoned").push((size, trace));
    }
    INSIDE.with(|i| i.set(false));
}

// SAFETY: every call is passed to mimalloc unchanged; recording only reads
// the layout and allocates (through this allocator, not recorded) for itself.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The first frames of `trace` that are not the allocator's or the standard
/// library's, as `crate:path:line`.
fn frames(trace: &str) -> String {
    trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .filter(|at| !at.contains("/rustc/") && !at.contains("alloc-sites.rs"))
        .take(4)
        .map(|at| {
            let file = at.rsplit_once("/src/").map_or(at, |(_, f)| f);
            // A registry crate's directory, a standard library dependency's
            // (`/rust/deps/hashbrown-*`), or this workspace's crate.
            let krate = ["/registry/src/", "/rust/deps/", "/crates/", "/bench/"]
                .iter()
                .find_map(|root| {
                    let rest = at.split(root).nth(1)?;
                    let dirs: Vec<&str> = rest.split('/').collect();
                    Some(if *root == "/registry/src/" {
                        dirs[1]
                    } else {
                        dirs[0]
                    })
                })
                .unwrap_or("?");
            format!("{krate}:{file}")
        })
        .collect::<Vec<_>>()
        .join(" < ")
}

fn request() -> http::Request<Body> {
    let mut req = http::Request::get("/hello")
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::AUTHORIZATION, "Bearer bench")
        .body(Body::empty())
        .expect("a request");
    // As `axum::serve` gives it (the assembled stack's rate limit keys on it).
    let peer: std::net::SocketAddr = ([127, 0, 0, 1], 40000).into();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    req
}

/// `n` requests through `app`, each body read to the end.
async fn serve<S>(app: &S, n: usize)
where
    S: tower::Service<http::Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let res = app.clone().oneshot(request()).await.expect("infallible");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await;
        assert!(body.is_ok_and(|b| !b.is_empty()), "the handler answered");
    }
}

/// `n` requests, alone in a function of their own so that callgrind can
/// count them alone (`--toggle-collect='alloc_sites::measured*'`).
#[inline(never)]
fn measured<S>(rt: &tokio::runtime::Runtime, app: &S, n: usize)
where
    S: tower::Service<http::Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    rt.block_on(serve(app, n));
}

/// Where one request through `app` allocates, after a warm-up (so one-time
/// work, such as the rate limiter's clock and its first key, is not
/// counted); with `--measure N`, N more requests in [`measured`] instead.
fn run<S>(app: S, args: &[String])
where
    S: tower::Service<http::Request<Body>, Response = axum::response::Response> + Clone,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(serve(&app, 100));
    if let Some(n) = args
        .iter()
        .position(|a| a == "--measure")
        .and_then(|i| args.get(i + 1))
    {
        measured(&rt, &app, n.parse().expect("a number of requests"));
        return;
    }
    let req = request();
    rt.block_on(async {
        RECORDING.store(true, Ordering::SeqCst);
        let res = app.oneshot(req).await.expect("infallible");
        let body = axum::body::to_bytes(res.into_body(), 1 << 16).await;
        RECORDING.store(false, Ordering::SeqCst);
        assert!(body.is_ok_and(|b| !b.is_empty()), "the handler answered");
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let side = match args.first().map(String::as_str) {
        Some("bare") => "bare handler",
        Some("assembled") => "hand-assembled stack",
        _ => "full stack",
    };
    let count_only = args.iter().any(|a| a == "--count");
    TRACING.store(!count_only, Ordering::SeqCst);
    match side {
        "bare handler" => run(verdict_bench_server::routes().with_state(()), &args),
        "hand-assembled stack" => run(
            verdict_bench_server::assembled::app(verdict_bench_server::routes()).with_state(()),
            &args,
        ),
        _ => run(verdict_bench_server::stacked(), &args),
    }
    if args.iter().any(|a| a == "--measure") {
        return;
    }
    let sites = SITES.lock().expect("not poisoned");
    let count = COUNT.load(Ordering::SeqCst);
    println!("{side}: {count} allocations for one request");
    if !count_only {
        for (size, trace) in sites.iter() {
            println!("{size:>6} B  {}", frames(trace));
        }
    }
}
