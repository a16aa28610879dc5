//! Maintenance mode: 503 with `Retry-After` for everyone but admins.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::maintenance::{MaintenanceLayer, MaintenanceSwitch};
//!
//! let switch = MaintenanceSwitch::new();
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(MaintenanceLayer::new(switch.clone()));
//! switch.enable(120); // from now on: 503, Retry-After: 120
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::Request;

use crate::auth::Authentication;
use crate::guard::{Guard, GuardLayer};
use crate::headers::RetryAfter;
use crate::ApiError;

/// A shared on/off switch with the `Retry-After` to send while on.
#[derive(Clone, Debug, Default)]
pub struct MaintenanceSwitch {
    state: Arc<(AtomicBool, AtomicU64)>,
}

impl MaintenanceSwitch {
    /// A switch that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns maintenance on; clients are told to retry in `retry_after_seconds` (at least 1).
    pub fn enable(&self, retry_after_seconds: u64) {
        self.state
            .1
            .store(retry_after_seconds.max(1), Ordering::Relaxed);
        self.state.0.store(true, Ordering::Release);
    }

    /// Turns maintenance off.
    pub fn disable(&self) {
        self.state.0.store(false, Ordering::Release);
    }

    /// `Some(retry after)` while on.
    pub fn status(&self) -> Option<RetryAfter> {
        self.state
            .0
            .load(Ordering::Acquire)
            .then(|| RetryAfter::from_secs(self.state.1.load(Ordering::Relaxed)))
    }
}

/// Layer answering 503 while the switch is on, unless the caller has the bypass scope.
pub type MaintenanceLayer = GuardLayer<MaintenanceGuard>;

/// The check behind [`MaintenanceLayer`].
#[derive(Clone, Debug)]
pub struct MaintenanceGuard {
    switch: MaintenanceSwitch,
    bypass_scope: Arc<str>,
}

impl MaintenanceLayer {
    /// Obeys `switch`; tokens with the `admin` scope pass.
    pub fn new(switch: MaintenanceSwitch) -> Self {
        GuardLayer::from_guard(MaintenanceGuard {
            switch,
            bypass_scope: crate::auth::ADMIN_SCOPE.into(),
        })
    }
}

impl Guard for MaintenanceGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let Some(retry) = self.switch.status() else {
            return Ok(());
        };
        let bypass = req
            .extensions()
            .get::<Authentication>()
            .and_then(Authentication::principal)
            .is_some_and(|p| p.has_scope(&self.bypass_scope));
        if bypass {
            Ok(())
        } else {
            Err(ApiError::maintenance(retry))
        }
    }
}
