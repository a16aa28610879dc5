//! Rate limiting by key (GCRA): 429 (or 420 under seed-001) with `Retry-After`,
//! and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` on every
//! limited response, refused or not.
//!
//! The key is the authenticated principal's subject, else the client address
//! (axum's `ConnectInfo<SocketAddr>`). The quota is the principal's own, else
//! the layer's default. Decisions come from a [`RateLimitStore`]: the default
//! [`InMemoryStore`] uses `governor`'s GCRA; a shared store (Redis) implements
//! the same trait so several instances share one budget.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use axum::{routing::get, Router};
//! use verdict::rate_limit::{InMemoryStore, Quota, RateLimitLayer};
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(RateLimitLayer::new(
//!         Arc::new(InMemoryStore::new()),
//!         Some(Quota::new(100, Duration::from_secs(60))),
//!     ));
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use futures_util::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::RateLimiter;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::auth::Authentication;
use crate::guard::{Guard, GuardLayer};
use crate::headers::RetryAfter;
use crate::ApiError;

/// `requests` per `per`: a burst of `requests`, refilled evenly over `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests allowed in a window (at least 1).
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl Quota {
    /// `requests` (at least 1) per `per` (at least 1 ms).
    pub fn new(requests: u32, per: Duration) -> Self {
        Quota {
            requests: requests.max(1),
            per: per.max(Duration::from_millis(1)),
        }
    }

    /// The time one request's share of the budget takes to come back.
    pub fn replenish_interval(&self) -> Duration {
        self.per / self.requests
    }
}

/// One rate-limit decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota's size.
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// Until the budget is whole again.
    pub reset: Duration,
    /// For a refusal: until the next request may pass.
    pub retry_after: Duration,
}

impl RateDecision {
    /// Writes `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// (seconds, rounded up).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let reset = self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0);
        headers.insert(
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(self.limit),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(self.remaining),
        );
        headers.insert(
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(reset),
        );
    }

    /// Adds the same headers to an error (a refusal, or a later check's).
    pub fn annotate(&self, mut error: ApiError) -> ApiError {
        let mut headers = HeaderMap::new();
        self.apply(&mut headers);
        for (name, value) in headers {
            if let Some(name) = name {
                error = error.with_header(name, value);
            }
        }
        error
    }
}

/// Where decisions are made and budgets kept.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Spends one request of `key`'s budget under `quota`, if there is one left.
    /// `Err` when the store cannot decide (unreachable): the request gets a 503.
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<RateDecision, ApiError>>;
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// In-process GCRA store (`governor`), one keyed limiter per distinct quota.
pub struct InMemoryStore {
    limiters: RwLock<HashMap<Quota, Arc<Keyed>>>,
    checks: AtomicU64,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore").finish_non_exhaustive()
    }
}

/// How often (in checks) idle keys are swept so memory stays bounded.
const SWEEP_EVERY: u64 = 10_000;

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryStore {
            limiters: RwLock::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    fn limiter(&self, quota: Quota) -> Arc<Keyed> {
        if let Some(l) = self.limiters.read().expect("not poisoned").get(&quota) {
            return l.clone();
        }
        let burst = NonZeroU32::new(quota.requests).expect("at least 1");
        let gq =
            governor::Quota::with_period(quota.replenish_interval().max(Duration::from_nanos(1)))
                .expect("period is positive")
                .allow_burst(burst);
        self.limiters
            .write()
            .expect("not poisoned")
            .entry(quota)
            .or_insert_with(|| Arc::new(RateLimiter::dashmap(gq).with_middleware()))
            .clone()
    }

    /// Synchronous decision (the trait's future just wraps it).
    pub fn decide(&self, key: &str, quota: Quota) -> RateDecision {
        let limiter = self.limiter(quota);
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for l in self.limiters.read().expect("not poisoned").values() {
                l.retain_recent();
            }
        }
        let interval = quota.replenish_interval();
        match limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateDecision {
                    allowed: true,
                    limit: quota.requests,
                    remaining,
                    reset: interval * (quota.requests - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                // The limiter's own clock: building a new one (quanta calibrates)
                // on every refusal made 429s slower than successes.
                let wait = not_until.wait_time_from(limiter.clock().now());
                RateDecision {
                    allowed: false,
                    limit: quota.requests,
                    remaining: 0,
                    reset: interval * quota.requests,
                    retry_after: wait,
                }
            }
        }
    }
}

impl RateLimitStore for InMemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<RateDecision, ApiError>> {
        let d = self.decide(key, quota);
        Box::pin(async move { Ok(d) })
    }
}

/// Layer that spends a request of the caller's budget, or refuses with 429.
pub type RateLimitLayer = GuardLayer<RateLimitGuard>;

/// The check behind [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimitGuard {
    store: Arc<dyn RateLimitStore>,
    default_quota: Option<Quota>,
}

impl RateLimitLayer {
    /// Limits with `store`; callers without a quota of their own get `default_quota`
    /// (`None`: unlimited).
    pub fn new(store: Arc<dyn RateLimitStore>, default_quota: Option<Quota>) -> Self {
        GuardLayer::from_guard(RateLimitGuard {
            store,
            default_quota,
        })
    }
}

impl RateLimitGuard {
    fn key_and_quota(&self, req: &Request) -> Option<(String, Quota)> {
        let principal = req
            .extensions()
            .get::<Authentication>()
            .and_then(Authentication::principal);
        let quota = principal
            .and_then(|p| p.rate_limit())
            .or(self.default_quota)?;
        let key = match principal {
            Some(p) => format!("sub:{}", p.subject()),
            None => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
                None => "anonymous".to_string(),
            },
        };
        Some((key, quota))
    }
}

impl Guard for RateLimitGuard {
    type State = Option<RateDecision>;

    async fn check(&self, req: &mut Request) -> Result<Self::State, ApiError> {
        let Some((key, quota)) = self.key_and_quota(req) else {
            return Ok(None);
        };
        let decision = self.store.check(&key, quota).await?;
        if decision.allowed {
            return Ok(Some(decision));
        }
        let err = ApiError::rate_limited(RetryAfter::from_duration(decision.retry_after));
        Err(decision.annotate(err))
    }

    fn finish(&self, state: Self::State, res: &mut Response) {
        if let Some(d) = state {
            d.apply(res.headers_mut());
        }
    }

    fn annotate(&self, state: Self::State, error: ApiError) -> ApiError {
        match state {
            Some(d) => d.annotate(error),
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_exactly_the_burst_then_refuses_with_a_wait() {
        let store = InMemoryStore::new();
        let q = Quota::new(3, Duration::from_secs(60));
        let rem: Vec<u32> = (0..3).map(|_| store.decide("k", q).remaining).collect();
        assert_eq!(rem, vec![2, 1, 0]);
        let d = store.decide("k", q);
        assert!(!d.allowed);
        assert!(
            d.retry_after > Duration::from_secs(19) && d.retry_after <= Duration::from_secs(20)
        );
        assert!(
            store.decide("other", q).allowed,
            "keys have separate budgets"
        );
    }
}

#[cfg(test)]
mod slow_quota_tests {
    use super::*;

    #[test]
    fn long_windows_refuse_past_the_burst() {
        let store = InMemoryStore::new();
        let q = Quota::new(2, Duration::from_secs(3600));
        let got: Vec<bool> = (0..3).map(|_| store.decide("k", q).allowed).collect();
        assert_eq!(got, vec![true, true, false]);
    }
}
