//! What every handler shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use serde_json::Value;
use verdict::maintenance::MaintenanceSwitch;
use verdict::Preset;

use crate::config::ServeArgs;
use crate::storage::Storage;

/// Shared state of one server.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub config: Arc<ServeArgs>,
    pub preset: Preset,
    pub maintenance: MaintenanceSwitch,
    /// Limits, quotas, locks and maintenance, shared across instances with `--shared`.
    pub shared: Arc<crate::shared::Shared>,
    pub schemas: Arc<SchemaCache>,
    pub jobs: Arc<tokio::sync::Notify>,
    /// The whole service, for batch operations (set once it is built).
    pub app: Arc<OnceLock<Router>>,
}

/// Compiled JSON Schemas, by collection and its `updated_at`.
#[derive(Default)]
pub struct SchemaCache {
    compiled: Mutex<HashMap<String, (i64, Arc<jsonschema::Validator>)>>,
}

impl SchemaCache {
    /// The compiled schema of a collection (compiled on first use).
    pub fn get(
        &self,
        collection: &str,
        updated_at: i64,
        schema: &Value,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        let mut map = self.compiled.lock().expect("not poisoned");
        if let Some((at, v)) = map.get(collection) {
            if *at == updated_at {
                return Ok(v.clone());
            }
        }
        let v = Arc::new(jsonschema::validator_for(schema).map_err(|e| e.to_string())?);
        map.insert(collection.to_string(), (updated_at, v.clone()));
        Ok(v)
    }
}
