//! What an operator's log says of a failed request when it is kept at
//! `info`, the usual level in production: the request span is at `debug`
//! (it costs every request when kept), so each error event must name its
//! request itself. Its own test binary, for its own global subscriber.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::Captured;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use verdict::{ApiError, Contract, Preset};

/// This binary's log, at `info`.
fn log_at_info() -> Captured {
    Captured::install(tracing::Level::INFO)
}

fn app() -> verdict::ContractService {
    let routes = Router::new()
        .route(
            "/orders/{id}",
            get(|| async { Err::<(), _>(ApiError::internal("the ledger is locked")) }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    Contract::new(Preset::standard())
        .timeout(Duration::from_millis(50))
        .apply(routes)
}

async fn get_with_id(path: &str, id: &str) -> (StatusCode, serde_json::Value) {
    let res = app()
        .oneshot(
            Request::get(path)
                .header("x-request-id", id)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

fn line_with(log: &Captured, needle: &str) -> String {
    let text = log.text();
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line has {needle}:\n{text}"))
        .to_string()
}

#[tokio::test]
async fn a_500_logged_at_info_names_its_request_id_method_and_path() {
    let log = log_at_info();
    let (status, body) = get_with_id("/orders/17", "req-info-500").await;
    assert_eq!(status, 500);
    let incident = body["incident_id"].as_str().expect("an incident id");
    let line = line_with(&log, incident);
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("request_id=\"req-info-500\""), "{line}");
    assert!(line.contains("method=\"GET\""), "{line}");
    assert!(line.contains("path=\"/orders/17\""), "{line}");
    assert!(line.contains("the ledger is locked"), "the cause: {line}");
}

#[tokio::test]
async fn a_504_logged_at_info_names_its_request_id_and_no_debug_span_is_kept() {
    let log = log_at_info();
    let (status, _) = get_with_id("/slow", "req-info-504").await;
    assert_eq!(status, 504);
    let line = line_with(&log, "req-info-504");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("status=504"), "{line}");
    assert!(line.contains("path=\"/slow\""), "{line}");
    // At info the `request` span is not kept, so the line has no span prefix.
    assert!(!line.contains("request{"), "{line}");
}
