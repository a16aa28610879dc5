//! 401 with the RFC 6750 challenge, 403 by scope, public routes.

mod common;

use common::*;
use verdict::Preset;

#[tokio::test]
async fn missing_credentials_get_a_bare_bearer_challenge() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items/1").send(&s.app).await;
    assert_eq!(r.status, 401);
    assert_error_shape(&r);
    assert_eq!(r.header("www-authenticate"), "Bearer realm=\"api\"");
    assert_eq!(r.json()["code"], "missing_credentials");
}

#[tokio::test]
async fn unknown_or_malformed_tokens_get_invalid_token() {
    let s = stack(Preset::standard());
    for auth in [
        "Bearer nope",
        "Bearer bad token",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ] {
        let r = req("GET", "/items/1")
            .header("authorization", auth)
            .send(&s.app)
            .await;
        assert_eq!(r.status, 401, "{auth}");
        assert_error_shape(&r);
        assert!(
            r.header("www-authenticate")
                .contains("error=\"invalid_token\""),
            "{auth}: {}",
            r.header("www-authenticate")
        );
        assert_eq!(r.json()["code"], "invalid_token");
    }
}

#[tokio::test]
async fn a_token_without_the_scope_is_forbidden_with_insufficient_scope() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("reader-token")
        .json(r#"{"name": "a", "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 403);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "insufficient_scope");
    assert!(r
        .header("www-authenticate")
        .contains("error=\"insufficient_scope\""));
    assert!(r.header("www-authenticate").contains("scope=\"write\""));
}

#[tokio::test]
async fn public_routes_need_no_credentials() {
    let s = stack(Preset::standard());
    assert_eq!(req("GET", "/health").send(&s.app).await.status, 200);
}

#[tokio::test]
async fn seed_001_answers_missing_credentials_with_400_but_bad_ones_with_401() {
    let s = stack(Preset::by_name("seed-001").unwrap());
    let r = req("GET", "/items/1").send(&s.app).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({"code": "missing_credentials",
        "message": "This request needs credentials: send `Authorization: Bearer <token>`."})
    );
    let r = req("GET", "/items/1").token("nope").send(&s.app).await;
    assert_eq!(r.status, 401);
}
