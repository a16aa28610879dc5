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

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;

use crate::auth::Authentication;
use crate::client_addr::ClientAddr;
use crate::guard::{Guard, GuardLayer};
use crate::headers::RetryAfter;
use crate::ApiError;

pub(crate) mod store;

#[cfg(feature = "rate-limit")]
pub use store::InMemoryStore;
pub use store::{Quota, RateDecision, RateLimitStore};

/// Layer that spends a request of the caller's budget, or refuses with 429.
pub type RateLimitLayer = GuardLayer<RateLimitGuard>;

/// The check behind [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimitGuard {
    store: Arc<dyn RateLimitStore>,
    default_quota: Option<Quota>,
}

impl std::fmt::Debug for RateLimitGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitGuard")
            .field("default_quota", &self.default_quota)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// Limits with `store`; callers without a quota of their own get `default_quota`
    /// (`None`: unlimited).
    pub fn new(store: Arc<dyn RateLimitStore>, default_quota: Option<Quota>) -> Self {
        if let Some(quota) = default_quota {
            store.prepare(quota);
        }
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
        if principal.is_some_and(|p| !p.is_rate_limited()) {
            return None;
        }
        let quota = principal
            .and_then(|p| p.rate_limit())
            .or(self.default_quota)?;
        let key = match principal {
            Some(p) => {
                let subject = p.subject();
                let mut key = String::with_capacity(4 + subject.len());
                key.push_str("sub:");
                key.push_str(subject);
                key
            }
            // Behind trusted proxies, the address they report (client_addr).
            None => match ClientAddr::of(req.extensions()) {
                Some(ClientAddr(ip)) => format!("ip:{ip}"),
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
        let decision = match self.store.check_now(&key, quota) {
            Some(decision) => decision?,
            None => self.store.check(&key, quota).await?,
        };
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
