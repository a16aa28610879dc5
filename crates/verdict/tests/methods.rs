//! 501, 405 with an exact `Allow`, OPTIONS and HEAD through a real router.

mod common;

use common::*;
use verdict::Preset;

#[tokio::test]
async fn unknown_method_is_501_even_on_unknown_paths() {
    let s = stack(Preset::standard());
    for path in ["/items", "/nowhere"] {
        let r = req("BREW", path).send(&s.app).await;
        assert_eq!(r.status, 501, "{path}");
        assert_error_shape(&r);
        assert_eq!(r.json()["code"], "unknown_method");
    }
}

#[tokio::test]
async fn method_not_allowed_lists_exactly_the_supported_methods() {
    let s = stack(Preset::standard());
    let r = req("DELETE", "/items")
        .token("admin-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 405);
    assert_error_shape(&r);
    assert_eq!(r.header("allow"), "GET, HEAD, POST, OPTIONS");
    for m in ["TRACE", "QUERY"] {
        let r = req(m, "/items/1").send(&s.app).await;
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), "GET, HEAD, PUT, OPTIONS");
    }
}

#[tokio::test]
async fn nested_routers_get_allow_too() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/nested/thing").send(&s.app).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET, HEAD, DELETE, OPTIONS");
    let r = req("OPTIONS", "/nested/thing").send(&s.app).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), "GET, HEAD, DELETE, OPTIONS");
}

#[tokio::test]
async fn options_answers_204_with_allow_and_no_credentials() {
    let s = stack(Preset::standard());
    let r = req("OPTIONS", "/items/1").send(&s.app).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), "GET, HEAD, PUT, OPTIONS");
    assert!(r.bytes.is_empty());
    let r = req("OPTIONS", "/nowhere").send(&s.app).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn head_works_wherever_get_does_with_the_same_headers() {
    let s = stack(Preset::standard());
    let get = req("GET", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    let head = req("HEAD", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(head.status, 200);
    assert!(head.bytes.is_empty());
    assert_eq!(get.header("etag"), head.header("etag"));
    assert_eq!(get.header("content-type"), head.header("content-type"));
}

#[tokio::test]
async fn presets_without_501_answer_unknown_methods_as_not_allowed() {
    let s = stack(Preset::by_name("seed-004").unwrap());
    let r = req("BREW", "/items").send(&s.app).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET, HEAD, POST, OPTIONS");
    let s = stack(Preset::by_name("seed-002").unwrap());
    let r = req("DELETE", "/items")
        .token("admin-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 501, "seed-002's 501 is 'method not supported'");
    let s = stack(Preset::by_name("seed-000").unwrap());
    let r = req("BREW", "/items").send(&s.app).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["status"], "400");
}
