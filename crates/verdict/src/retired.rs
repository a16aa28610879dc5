//! Retired API versions: 410 Gone (426 Upgrade Required with `Upgrade` under
//! seed-003) for every request under a retired path prefix, before routing.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::retired::RetiredLayer;
//! use verdict::headers::Upgrade;
//!
//! let app: Router = Router::new()
//!     .route("/v1/items", get(|| async { "[]" }))
//!     .layer(RetiredLayer::new("/v0", Upgrade::new("api/v1").unwrap()));
//! ```

use std::sync::Arc;

use axum::extract::Request;

use crate::guard::{Check, CheckLayer};
use crate::headers::Upgrade;
use crate::ApiError;

/// Layer refusing requests under retired prefixes.
pub type RetiredLayer = CheckLayer<RetiredGuard>;

/// The check behind [`RetiredLayer`].
#[derive(Clone, Debug)]
pub struct RetiredGuard {
    prefixes: Arc<Vec<(String, Upgrade)>>,
}

impl RetiredLayer {
    /// Retires everything under `prefix` (`/v0` covers `/v0` and `/v0/...`), whose
    /// successor `Upgrade` names.
    pub fn new(prefix: impl Into<String>, successor: Upgrade) -> Self {
        CheckLayer::from_check(RetiredGuard {
            prefixes: Arc::new(vec![(
                prefix.into().trim_end_matches('/').to_string(),
                successor,
            )]),
        })
    }

    /// Retires another prefix.
    pub fn and(mut self, prefix: impl Into<String>, successor: Upgrade) -> Self {
        Arc::make_mut(&mut self.check_mut().prefixes)
            .push((prefix.into().trim_end_matches('/').to_string(), successor));
        self
    }
}

impl Check for RetiredGuard {
    fn check(&self, req: &Request) -> Result<(), ApiError> {
        let path = req.uri().path();
        for (prefix, successor) in self.prefixes.iter() {
            let under = path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if under {
                return Err(ApiError::retired_version(
                    format!(
                        "The API under {prefix} has been retired; use {} instead.",
                        successor
                            .header_value()
                            .to_str()
                            .unwrap_or("the current version")
                    ),
                    successor.clone(),
                ));
            }
        }
        Ok(())
    }
}
