//! Load shedding: past a bound on requests in flight, 503 with `Retry-After`
//! at once, instead of queueing until every request is slow.
//!
//! (tower's `LoadShed` works through `poll_ready`, which axum's router does not
//! propagate per route; a semaphore checked in `call` does the same job here.)
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::load_shed::LoadShedLayer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(LoadShedLayer::new(512));
//! ```

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::guard::{Guard, GuardLayer};
use crate::headers::DEFAULT_RETRY_AFTER;
use crate::ApiError;

/// Layer that sheds requests beyond `max_in_flight` with 503.
pub type LoadShedLayer = GuardLayer<LoadShedGuard>;

/// The check behind [`LoadShedLayer`].
#[derive(Clone, Debug)]
pub struct LoadShedGuard {
    slots: Arc<Semaphore>,
}

impl LoadShedLayer {
    /// At most `max_in_flight` requests run at once (shared by every route the layer wraps).
    pub fn new(max_in_flight: usize) -> Self {
        GuardLayer::from_guard(LoadShedGuard {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        })
    }
}

impl Guard for LoadShedGuard {
    type State = OwnedSemaphorePermit;

    async fn check(&self, _req: &mut Request) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(DEFAULT_RETRY_AFTER))
    }

    fn finish(&self, permit: OwnedSemaphorePermit, _res: &mut Response) {
        drop(permit);
    }
}
