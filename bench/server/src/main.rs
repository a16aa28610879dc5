//! `verdict-bench-server bare|stacked|assembled ADDR`: the same trivial
//! handler served by bare axum, behind the full `verdict` stack (request id,
//! credentials, rate limit, scopes, negotiation, content type, body limit,
//! ETag, deadline, load shedding, panic catching, normalizing), or behind the
//! same checks as a careful user assembles them from tower-http,
//! tower_governor and a problem-details crate (`assembled.rs`), for
//! `bench/run.sh`.
//!
//! Under `bare`, `GET /unavailable` is a static 503 with `Retry-After`: the
//! floor the probe measures a shed against.
//!
//! Under `stacked`, `Bearer bench` is a token with a limit too large to reach;
//! `Bearer tiny` has 1 request an hour, so it answers 429 after the first.
//!
//! `verdict-bench-server probe ...` times shed requests instead (see `probe.rs`).

use std::net::SocketAddr;

use verdict_bench_server::{assembled, routes, stacked};

mod probe;

// The same allocator as `verdict serve`, for both sides.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "stacked".into());
    if mode == "probe" {
        let args: Vec<String> = args.collect();
        let (addr, path) = (args[0].clone(), args[1].clone());
        let seconds: f64 = args[2].parse().expect("seconds");
        let auth = args.get(3).cloned();
        tokio::task::spawn_blocking(move || probe::run(&addr, &path, seconds, auth.as_deref()))
            .await
            .expect("the probe ran")
            .expect("the server answered");
        return;
    }
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()
        .expect("an address");
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match mode.as_str() {
        "bare" => axum::serve(
            listener,
            routes()
                // The floor of goal 5: the cheapest 503 + Retry-After axum
                // can send, timed by the probe under the same load as a shed.
                .route(
                    "/unavailable",
                    axum::routing::get(|| async {
                        (
                            http::StatusCode::SERVICE_UNAVAILABLE,
                            [(http::header::RETRY_AFTER, "1")],
                            "{}",
                        )
                    }),
                )
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .unwrap(),
        // Served as it is: ConnectInfo included, one router less than
        // `into_make_service_with_connect_info`.
        "stacked" => axum::serve(listener, stacked())
            .with_graceful_shutdown(shutdown)
            .await
            .unwrap(),
        "assembled" => axum::serve(
            listener,
            assembled::app(routes()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .unwrap(),
        other => panic!("mode must be bare, stacked or assembled, not {other}"),
    }
}
