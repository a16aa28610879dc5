//! ETag, 304 and 412 through a real router.

mod common;

use common::*;
use verdict::Preset;

#[tokio::test]
async fn get_responses_carry_a_strong_etag_of_their_body() {
    let s = stack(Preset::standard());
    let a = req("GET", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    let b = req("GET", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    let tag = a.header("etag");
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    assert_eq!(tag, b.header("etag"));
    let other = req("GET", "/items?limit=3")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_ne!(tag, other.header("etag"));
}

#[tokio::test]
async fn conditional_get_returns_304_when_etag_matches() {
    let s = stack(Preset::standard());
    let first = req("GET", "/items")
        .token("reader-token")
        .send(&s.app)
        .await;
    let tag = first.header("etag").to_string();
    for cond in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"zzz\", {tag}"),
        "*".to_string(),
    ] {
        let r = req("GET", "/items")
            .token("reader-token")
            .header("if-none-match", &cond)
            .send(&s.app)
            .await;
        assert_eq!(r.status, 304, "{cond}");
        assert!(r.bytes.is_empty());
        assert_eq!(r.header("etag"), tag);
        assert_eq!(r.header("cache-control"), "max-age=60");
        assert_eq!(r.header("vary"), "Accept");
        assert!(r.headers.contains_key("x-request-id"));
    }
    let r = req("GET", "/items")
        .token("reader-token")
        .header("if-none-match", "\"other\"")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn failed_if_match_on_a_write_is_412_with_the_current_etag() {
    let s = stack(Preset::standard());
    let body = r#"{"name": "a", "price": 1}"#;
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json(body)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 412);
    assert_error_shape(&r);
    assert_eq!(r.header("etag"), "\"v1\"");
    for ok in ["\"v1\"", "*", "\"v0\", \"v1\""] {
        let r = req("PUT", "/items/1")
            .token("writer-token")
            .header("if-match", ok)
            .json(body)
            .send(&s.app)
            .await;
        assert_eq!(r.status, 200, "{ok}");
    }
    // A weak tag never matches If-Match (strong comparison).
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "W/\"v1\"")
        .json(body)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 412);
}

#[tokio::test]
async fn malformed_if_match_is_400() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "v1")
        .json(r#"{"name": "a", "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_header");
}

#[tokio::test]
async fn presets_without_304_send_the_full_200_and_still_refuse_failed_if_match() {
    let s = stack(Preset::by_name("seed-003").unwrap());
    let first = req("GET", "/items")
        .token("reader-token")
        .send(&s.app)
        .await;
    let r = req("GET", "/items")
        .token("reader-token")
        .header("if-none-match", first.header("etag"))
        .send(&s.app)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.bytes, first.bytes);
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .header("if-match", "\"v0\"")
        .json(r#"{"name": "a", "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400, "seed-003 has no 412: refused with its 400");
}
