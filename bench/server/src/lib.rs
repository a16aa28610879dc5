//! What the bench server's binaries share: the trivial handler, the full
//! `verdict` stack around it, and the same checks assembled from the
//! ecosystem's crates (`verdict-bench-server`, and `alloc-sites`, which
//! lists where one request allocates and counts its instructions).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, ContractService, Preset};

pub mod assembled;

/// `bench` may read and write; `tiny` has one request an hour.
pub struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            Ok(match token {
                "bench" => Some(Principal::new("bench", ["read", "write"])),
                "tiny" => Some(
                    Principal::new("tiny", ["read"])
                        .with_rate_limit(Quota::new(1, Duration::from_secs(3600))),
                ),
                _ => None,
            })
        })
    }
}

/// `GET /hello`: a small JSON body.
pub fn routes() -> Router {
    Router::new().route(
        "/hello",
        get(|| async { axum::Json(serde_json::json!({"hello": "world"})) }),
    )
}

/// The full stack around [`routes`]: credentials, scopes, a rate limit out
/// of reach, load shedding, a deadline, and everything always on.
pub fn stacked() -> ContractService {
    Contract::new(Preset::standard())
        .authenticate(Arc::new(Tokens))
        .authorize(Arc::new(ScopeByMethod))
        .rate_limit(
            Arc::new(InMemoryStore::new()),
            Some(Quota::new(u32::MAX, Duration::from_secs(1))),
        )
        .max_in_flight(4096)
        .timeout(Duration::from_secs(30))
        .apply(routes())
}
