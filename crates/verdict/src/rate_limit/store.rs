//! Where rate-limit decisions are made and budgets kept: the [`Quota`], the
//! [`RateDecision`], the [`RateLimitStore`] trait, and the in-process
//! [`InMemoryStore`]. Apart from the layer so that what only needs a quota
//! (a principal's own limit, the failed-authentication throttle) does not
//! depend on the layer.

#[cfg(feature = "rate-limit")]
use std::cell::Cell;
#[cfg(feature = "rate-limit")]
use std::collections::HashMap;
#[cfg(feature = "rate-limit")]
use std::num::NonZeroU32;
#[cfg(feature = "rate-limit")]
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
#[cfg(feature = "rate-limit")]
use governor::clock::{Clock, DefaultClock};
#[cfg(feature = "rate-limit")]
use governor::middleware::StateInformationMiddleware;
#[cfg(feature = "rate-limit")]
use governor::state::keyed::DefaultKeyedStateStore;
#[cfg(feature = "rate-limit")]
use governor::RateLimiter;
use http::{HeaderMap, HeaderName, HeaderValue};

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

// Made at compile time: `from_static` at run time checks the name on every call.
const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl RateDecision {
    /// Writes `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
    /// (seconds, rounded up).
    pub fn apply(&self, headers: &mut HeaderMap) {
        let reset = self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0);
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
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

    /// The same decision when the store can make it without waiting (one
    /// in memory can): `Some`, and [`check`](Self::check) is not called.
    /// The default, `None`, always goes through `check`. This spares a
    /// boxed future per request on the stores that never wait.
    fn check_now(&self, key: &str, quota: Quota) -> Option<Result<RateDecision, ApiError>> {
        let _ = (key, quota);
        None
    }

    /// Told once, when a layer is built, the quota most of its requests
    /// will be checked under (its default), so that the store can make that
    /// one the cheapest to reach. The default does nothing.
    fn prepare(&self, quota: Quota) {
        let _ = quota;
    }
}

#[cfg(feature = "rate-limit")]
type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// In-process GCRA store (`governor`), one keyed limiter per distinct quota.
///
/// The quota it is prepared for (the layer's default; else the first it
/// sees) has its limiter read with no lock and no reference count; others
/// are looked up in a map. A lock or a count touched by every request is a cache line
/// the worker threads pass back and forth.
#[cfg(feature = "rate-limit")]
pub struct InMemoryStore {
    first: OnceLock<(Quota, Keyed)>,
    others: RwLock<HashMap<Quota, Arc<Keyed>>>,
}

#[cfg(feature = "rate-limit")]
impl Default for InMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "rate-limit")]
impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore").finish_non_exhaustive()
    }
}

#[cfg(feature = "rate-limit")]
/// How often (in checks) idle keys are swept so memory stays bounded.
const SWEEP_EVERY: u64 = 10_000;

#[cfg(feature = "rate-limit")]
impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryStore {
            first: OnceLock::new(),
            others: RwLock::new(HashMap::new()),
        }
    }

    fn new_limiter(quota: Quota) -> Keyed {
        let burst = NonZeroU32::new(quota.requests).expect("at least 1");
        let gq =
            governor::Quota::with_period(quota.replenish_interval().max(Duration::from_nanos(1)))
                .expect("period is positive")
                .allow_burst(burst);
        RateLimiter::dashmap(gq).with_middleware()
    }

    /// Runs `f` on `quota`'s limiter.
    fn with_limiter<R>(&self, quota: Quota, f: impl FnOnce(&Keyed) -> R) -> R {
        let (first_quota, first) = self.first.get_or_init(|| (quota, Self::new_limiter(quota)));
        if *first_quota == quota {
            return f(first);
        }
        let found = self
            .others
            .read()
            .expect("not poisoned")
            .get(&quota)
            .cloned();
        let limiter = found.unwrap_or_else(|| {
            self.others
                .write()
                .expect("not poisoned")
                .entry(quota)
                .or_insert_with(|| Arc::new(Self::new_limiter(quota)))
                .clone()
        });
        f(&limiter)
    }

    /// Forgets keys whose budget is whole again, every [`SWEEP_EVERY`]
    /// checks on a thread, so memory stays bounded (counted per thread: a
    /// counter of the store's own would be written by every request).
    fn sweep_now_and_then(&self) {
        thread_local! {
            static CHECKS: Cell<u64> = const { Cell::new(0) };
        }
        let n = CHECKS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n % SWEEP_EVERY == 0 {
            if let Some((_, first)) = self.first.get() {
                first.retain_recent();
            }
            for l in self.others.read().expect("not poisoned").values() {
                l.retain_recent();
            }
        }
    }

    /// Synchronous decision (the trait's future just wraps it).
    pub fn decide(&self, key: &str, quota: Quota) -> RateDecision {
        self.sweep_now_and_then();
        self.with_limiter(quota, |limiter| Self::decide_with(limiter, key, quota))
    }

    fn decide_with(limiter: &Keyed, key: &str, quota: Quota) -> RateDecision {
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

#[cfg(feature = "rate-limit")]
impl RateLimitStore for InMemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<RateDecision, ApiError>> {
        let d = self.decide(key, quota);
        Box::pin(async move { Ok(d) })
    }

    fn check_now(&self, key: &str, quota: Quota) -> Option<Result<RateDecision, ApiError>> {
        Some(Ok(self.decide(key, quota)))
    }

    /// Gives `quota` the limiter read with no lock, unless a quota already has it.
    fn prepare(&self, quota: Quota) {
        self.first.get_or_init(|| (quota, Self::new_limiter(quota)));
    }
}

#[cfg(all(test, feature = "rate-limit"))]
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

#[cfg(all(test, feature = "rate-limit"))]
mod prepared_quota_tests {
    use super::*;

    #[test]
    fn the_prepared_quota_keeps_its_place_whichever_quota_is_checked_first() {
        let store = InMemoryStore::new();
        let default = Quota::new(100, Duration::from_secs(1));
        let own = Quota::new(1, Duration::from_secs(3600));
        store.prepare(default);
        assert!(store.decide("sub:tiny", own).allowed);
        assert!(!store.decide("sub:tiny", own).allowed, "its own budget");
        assert_eq!(store.first.get().map(|(q, _)| *q), Some(default));
        assert_eq!(store.decide("sub:bench", default).remaining, 99);
        // Preparing again changes nothing.
        store.prepare(own);
        assert_eq!(store.first.get().map(|(q, _)| *q), Some(default));
    }
}

#[cfg(all(test, feature = "rate-limit"))]
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
