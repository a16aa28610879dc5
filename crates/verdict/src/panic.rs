//! A panic in a handler is a 500 for that request, never a dead server: the
//! client gets an incident id, the log gets the same id with the panic message.
//!
//! Built on tower-http's `CatchPanicLayer`, with a panic handler that makes
//! an [`ApiError::internal`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::panic::catch_panic_layer;
//!
//! async fn boom() -> &'static str {
//!     panic!("bug")
//! }
//!
//! let app: Router = Router::new()
//!     .route("/boom", get(boom))
//!     .layer(catch_panic_layer());
//! ```

use std::any::Any;

use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use crate::ApiError;

/// Turns a panic into a 500 [`ApiError`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PanicToError;

impl ResponseForPanic for PanicToError {
    type ResponseBody = axum::body::Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response {
        let message = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".to_string());
        ApiError::internal(format!("handler panicked: {message}")).into_response()
    }
}

/// The layer: tower-http's `CatchPanicLayer` with [`PanicToError`].
pub fn catch_panic_layer() -> CatchPanicLayer<PanicToError> {
    CatchPanicLayer::custom(PanicToError)
}
