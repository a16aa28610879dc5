//! What every handler shares.

use std::sync::{Arc, OnceLock};

use verdict::maintenance::MaintenanceSwitch;
use verdict::Preset;

use crate::config::ServeArgs;
use crate::storage::Stores;

/// Shared state of one server: one `Arc`, so that axum's clones of it (the
/// handler's service, each `State` extractor: several per request) count
/// one reference instead of a dozen. Cloned field by field, its `Arc`s were
/// about 6% of a record read's samples under load (`perf record -g`,
/// BENCHMARKS.md): each count is a cache line the two workers fight over.
#[derive(Clone)]
pub struct AppState(Arc<StateParts>);

impl AppState {
    /// The state made of its parts.
    pub fn new(parts: StateParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateParts;

    fn deref(&self) -> &StateParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct StateParts {
    /// The stores (tokens and collections behind the cache).
    pub storage: Stores,
    /// The command line it was started with.
    pub config: Arc<ServeArgs>,
    /// The preset it answers under (`--preset`).
    pub preset: Preset,
    /// This instance's maintenance mode, which the contract's layer answers 503 from.
    pub maintenance: MaintenanceSwitch,
    /// Limits, quotas, locks and maintenance, shared across instances with `--shared`.
    pub shared: Arc<crate::cluster::Shared>,
    /// Compiled schemas, and the bound on validations off the async threads.
    pub schemas: Arc<crate::validation::Schemas>,
    /// Wakes the job worker when a job is queued (it also polls every second).
    pub jobs: Arc<tokio::sync::Notify>,
    /// The whole service, for batch operations (set once it is built).
    pub app: Arc<OnceLock<verdict::ContractService>>,
}

impl StateParts {
    /// The preset errors are rendered with: `--preset`, with `--error-format`
    /// over its format.
    pub fn error_preset(&self) -> Preset {
        match self.config.error_format {
            Some(f) => self.preset.clone().with_format(f),
            None => self.preset.clone(),
        }
    }
}
