//! Request deadlines: a request still running past its deadline is answered
//! with 504 Gateway Timeout (the contract's "ran past its deadline inside the
//! stack"), and its handler's future is dropped.
//!
//! tower-http's `TimeoutLayer`, set to 504 rather than its default 408 (408 is
//! about a client that is slow to send, not a server that is slow to answer);
//! the normalizing layer gives the bare 504 its error body.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use verdict::deadline::deadline_layer;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .route_layer(deadline_layer(Duration::from_secs(30)));
//! ```

use std::time::Duration;

use http::StatusCode;
use tower_http::timeout::TimeoutLayer;

/// A layer answering 504 after `deadline`.
pub fn deadline_layer(deadline: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, deadline)
}
