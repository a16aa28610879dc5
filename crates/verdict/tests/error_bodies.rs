//! Error bodies through a real router: formats, negotiation, headers, leaks.

mod common;

use common::*;
use verdict::{ErrorFormat, Preset};

#[tokio::test]
async fn missing_resource_is_a_problem_document_naming_it() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items/9")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 404);
    assert_error_shape(&r);
    assert_eq!(r.content_type(), "application/problem+json");
    let b = r.json();
    assert_eq!(b["type"], "/problems/record-not-found");
    assert_eq!(b["title"], "Record not found");
    assert_eq!(b["status"], 404);
    assert_eq!(b["code"], "record_not_found");
    assert_eq!(
        b["detail"],
        "The record identified by 9 could not be found."
    );
    assert_eq!(b["instance"], "/items/9");
    assert_eq!(b["request_id"], r.header("x-request-id"));
}

#[tokio::test]
async fn client_request_id_is_echoed_on_success_and_error() {
    let s = stack(Preset::standard());
    let ok = req("GET", "/health")
        .header("x-request-id", "abc-123")
        .send(&s.app)
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id"), "abc-123");
    let err = req("GET", "/nope")
        .header("x-request-id", "abc-124")
        .send(&s.app)
        .await;
    assert_eq!(err.header("x-request-id"), "abc-124");
    assert_eq!(err.json()["request_id"], "abc-124");
}

#[tokio::test]
async fn accept_selects_jsonapi_or_problem_over_the_configured_format() {
    let s = stack(Preset::standard().with_format(ErrorFormat::Simple));
    let simple = req("GET", "/items/9")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(simple.content_type(), "application/json");
    assert_eq!(simple.json()["code"], "record_not_found");
    assert!(simple.json()["message"].as_str().unwrap().contains("9"));

    let jsonapi = req("GET", "/items/9")
        .token("reader-token")
        .header("accept", "application/json, application/vnd.api+json")
        .send(&s.app)
        .await;
    assert_eq!(jsonapi.content_type(), "application/vnd.api+json");
    let b = jsonapi.json();
    assert_eq!(b["errors"][0]["status"], "404");
    assert_eq!(b["errors"][0]["code"], "record_not_found");

    let problem = req("GET", "/items/9")
        .token("reader-token")
        .header("accept", "application/problem+json")
        .send(&s.app)
        .await;
    // The resource itself is JSON only, so this Accept is a 406 -- rendered as asked.
    assert_eq!(problem.status, 406);
    assert_eq!(problem.content_type(), "application/problem+json");
}

#[tokio::test]
async fn validation_errors_point_at_each_field_in_jsonapi() {
    let s = stack(Preset::by_name("seed-000").unwrap());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .json(r#"{"name": 5, "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.content_type(), "application/vnd.api+json");
    let e = &r.json()["errors"][0];
    assert_eq!(e["source"]["pointer"], "/name");
    assert_eq!(e["detail"], "must be a string, not an integer");
}

#[tokio::test]
async fn bare_statuses_and_axum_rejections_are_normalized() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/bare-conflict")
        .token("writer-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 409);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "conflict");

    // axum's own Json extractor answers in plain text; it leaves as JSON.
    let r = req("POST", "/rejected")
        .token("writer-token")
        .json("{")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r);
    assert_eq!(r.content_type(), "application/problem+json");
    assert!(!String::from_utf8_lossy(&r.bytes).contains("Failed to parse"));

    let r = req("GET", "/no/such/path").send(&s.app).await;
    assert_eq!(r.status, 404);
    assert_error_shape(&r);
    assert_eq!(r.json()["detail"], "No resource exists at /no/such/path.");
}

#[tokio::test]
async fn head_errors_have_headers_but_no_body() {
    let s = stack(Preset::standard());
    let r = req("HEAD", "/items/9")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 404);
    assert_error_shape(&r);
    assert!(r.bytes.is_empty());
}

#[tokio::test]
async fn panics_are_500s_with_an_incident_id_and_no_leak() {
    let s = stack(Preset::standard());
    let r = req("GET", "/panic")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 500);
    assert_error_shape(&r);
    let text = String::from_utf8_lossy(&r.bytes).to_string();
    assert!(!text.contains("secret") && !text.contains(".rs"), "{text}");
    let b = r.json();
    let incident = b["incident_id"].as_str().unwrap();
    assert_eq!(incident.len(), 32);
    assert!(b["detail"].as_str().unwrap().contains(incident));
    // The router still serves.
    let after = req("GET", "/health").send(&s.app).await;
    assert_eq!(after.status, 200);
}
