//! Fault injection (`--fault-injection`): a request with an admin token may
//! carry `Fault-Injection: panic`, `delay=<ms>` or `storage-unavailable`.
//! Without the flag the header is ignored, and the layer is not even installed.
//!
//! `storage-unavailable` runs the request inside a task-local scope that the
//! storage backends check when they take a connection, so the failure goes
//! through the same path as a real outage (503 with `Retry-After`).

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use verdict::auth::Authentication;
use verdict::ApiError;

tokio::task_local! {
    static STORAGE_DOWN: bool;
}

/// Whether the current request asked for its storage to fail.
pub fn storage_unavailable() -> bool {
    STORAGE_DOWN.try_with(|down| *down).unwrap_or(false)
}

/// The longest delay a request may ask for.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// The middleware: only admin tokens may inject faults.
pub async fn inject(req: Request, next: Next) -> Response {
    let Some(value) = req
        .headers()
        .get("fault-injection")
        .and_then(|v| v.to_str().ok())
    else {
        return next.run(req).await;
    };
    let is_admin = req
        .extensions()
        .get::<Authentication>()
        .and_then(Authentication::principal)
        .is_some_and(|p| p.has_scope("admin"));
    if !is_admin {
        return next.run(req).await;
    }
    let value = value.trim().to_ascii_lowercase();
    if value == "panic" {
        panic!("fault injection: panic requested");
    } else if value == "storage-unavailable" {
        return STORAGE_DOWN.scope(true, next.run(req)).await;
    } else if let Some(ms) = value.strip_prefix("delay=") {
        let Ok(ms) = ms.parse::<u64>() else {
            return ApiError::invalid_header(
                "Fault-Injection",
                "delay must be `delay=<milliseconds>`",
            )
            .into_response();
        };
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
        return next.run(req).await;
    }
    ApiError::invalid_header(
        "Fault-Injection",
        "expected `panic`, `delay=<ms>` or `storage-unavailable`",
    )
    .into_response()
}
