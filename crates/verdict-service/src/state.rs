//! What every handler shares.

use std::sync::{Arc, OnceLock};

use verdict::maintenance::MaintenanceSwitch;
use verdict::Preset;

use crate::config::ServeArgs;
use crate::storage::Stores;

/// Shared state of one server.
#[derive(Clone)]
pub struct AppState {
    pub storage: Stores,
    pub config: Arc<ServeArgs>,
    pub preset: Preset,
    pub maintenance: MaintenanceSwitch,
    /// Limits, quotas, locks and maintenance, shared across instances with `--shared`.
    pub shared: Arc<crate::cluster::Shared>,
    /// Compiled schemas, and the bound on validations off the async threads.
    pub schemas: Arc<crate::validation::Schemas>,
    pub jobs: Arc<tokio::sync::Notify>,
    /// The whole service, for batch operations (set once it is built).
    pub app: Arc<OnceLock<verdict::ContractService>>,
}

impl AppState {
    /// The preset errors are rendered with: `--preset`, with `--error-format`
    /// over its format.
    pub fn error_preset(&self) -> Preset {
        match self.config.error_format {
            Some(f) => self.preset.clone().with_format(f),
            None => self.preset.clone(),
        }
    }
}
