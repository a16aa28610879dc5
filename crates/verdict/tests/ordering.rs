//! One request, one answer: with several faults at once, the first in
//! docs/contract.md's order wins. Each step sends its fault plus every later one.

mod common;

use common::*;
use verdict::Preset;

const BAD_ITEM: &str = r#"{"name": 5, "price": 1}"#;
const TAKEN: &str = r#"{"name": "taken", "price": 1}"#;

async fn status_of(s: &Stack, r: Req) -> u16 {
    r.send(&s.app).await.status.as_u16()
}

#[tokio::test]
async fn unknown_method_beats_retired_version_and_unknown_path() {
    let s = stack(Preset::standard());
    assert_eq!(status_of(&s, req("BREW", "/v0/nope")).await, 501);
}

#[tokio::test]
async fn retired_version_beats_unknown_path_and_credentials() {
    let s = stack(Preset::standard());
    s.maintenance.enable(5);
    assert_eq!(
        status_of(&s, req("DELETE", "/v0/nope").header("accept", "text/html")).await,
        410
    );
}

#[tokio::test]
async fn unknown_path_beats_maintenance_credentials_and_media_types() {
    let s = stack(Preset::standard());
    s.maintenance.enable(5);
    let r = req("PUT", "/nope")
        .header("accept", "text/html")
        .header("content-type", "text/plain")
        .body("x");
    assert_eq!(status_of(&s, r).await, 404);
}

#[tokio::test]
async fn method_not_allowed_beats_maintenance_and_credentials() {
    let s = stack(Preset::standard());
    s.maintenance.enable(5);
    let r = req("DELETE", "/items/1")
        .token("nope")
        .header("accept", "text/html");
    let reply = r.send(&s.app).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), "GET, HEAD, PUT, OPTIONS");
}

#[tokio::test]
async fn maintenance_beats_credentials_and_everything_after() {
    let s = stack(Preset::standard());
    s.maintenance.enable(5);
    let r = req("PUT", "/items/1")
        .token("nope")
        .header("accept", "text/html")
        .json("{");
    assert_eq!(status_of(&s, r).await, 503);
}

#[tokio::test]
async fn bad_credentials_beat_rate_limit_scope_and_media_types() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("nope")
        .header("accept", "text/html")
        .header("content-type", "text/plain")
        .body("x");
    assert_eq!(status_of(&s, r).await, 401);
}

#[tokio::test]
async fn rate_limit_beats_scope_accept_and_content_type() {
    let s = stack(Preset::standard());
    assert_eq!(
        status_of(&s, req("GET", "/items/1").token("limited-reader-token")).await,
        200
    );
    let r = req("PUT", "/items/1")
        .token("limited-reader-token")
        .header("accept", "text/html")
        .header("content-type", "text/plain")
        .body("x");
    assert_eq!(status_of(&s, r).await, 429);
}

#[tokio::test]
async fn missing_scope_beats_accept_content_type_and_size() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("reader-token")
        .header("accept", "text/html")
        .header("content-type", "text/plain")
        .body(&"x".repeat(2 << 20));
    assert_eq!(status_of(&s, r).await, 403);
}

#[tokio::test]
async fn not_acceptable_beats_content_type_size_and_syntax() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("accept", "text/html")
        .header("content-type", "text/plain")
        .body(&"x".repeat(2 << 20));
    assert_eq!(status_of(&s, r).await, 406);
}

#[tokio::test]
async fn unsupported_media_type_beats_size_and_syntax() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("content-type", "text/plain")
        .body(&"{".repeat(2 << 20));
    assert_eq!(status_of(&s, r).await, 415);
}

#[tokio::test]
async fn content_too_large_beats_syntax_and_missing_resource() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/9")
        .token("writer-token")
        .json(&"{".repeat(2 << 20));
    assert_eq!(status_of(&s, r).await, 413);
}

#[tokio::test]
async fn syntax_beats_missing_resource_and_preconditions() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/9")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json("{");
    assert_eq!(status_of(&s, r).await, 400);
}

#[tokio::test]
async fn missing_resource_beats_preconditions_validation_and_conflict() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/9")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json(BAD_ITEM);
    assert_eq!(status_of(&s, r).await, 404);
}

#[tokio::test]
async fn failed_precondition_beats_validation_and_conflict() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json(BAD_ITEM);
    assert_eq!(status_of(&s, r).await, 412);
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json(TAKEN);
    assert_eq!(status_of(&s, r).await, 412);
}

#[tokio::test]
async fn validation_beats_conflict_and_conflict_beats_success() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v1\"")
        .json(BAD_ITEM);
    assert_eq!(status_of(&s, r).await, 422);
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v1\"")
        .json(TAKEN);
    assert_eq!(status_of(&s, r).await, 409);
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v1\"")
        .json(r#"{"name": "fine", "price": 2}"#);
    assert_eq!(status_of(&s, r).await, 200);
}
