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

#[tokio::test]
async fn two_authorization_headers_are_a_400_whichever_comes_first() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items/1")
        .header("authorization", "Bearer reader-token")
        .header("authorization", "Bearer admin-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "invalid_header");
}

mod throttled_guessing {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::ConnectInfo;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use verdict::rate_limit::{InMemoryStore, Quota};
    use verdict::{Contract, Preset};

    async fn send(
        app: &verdict::ContractService,
        from: [u8; 4],
        token: &str,
    ) -> (u16, serde_json::Value) {
        let mut req = Request::get("/items/1")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((from, 40000))));
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").cloned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        if status == 429 {
            assert!(retry.is_some(), "429 carries Retry-After");
        }
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn an_address_guessing_tokens_is_throttled_and_no_other_address_is() {
        let contract = Contract::new(Preset::standard()).throttle_failed_auth(
            Arc::new(InMemoryStore::new()),
            Quota::new(3, Duration::from_secs(60)),
        );
        let app = super::common::stack_with(contract).app;
        let guesser = [10, 0, 0, 1];
        for i in 0..3 {
            assert_eq!(send(&app, guesser, &format!("guess-{i}")).await.0, 401);
        }
        let (status, body) = send(&app, guesser, "guess-3").await;
        assert_eq!(status, 429);
        assert_eq!(body["code"], "authentication_throttled");
        // Even a right guess from that address is refused while it waits...
        assert_eq!(send(&app, guesser, "reader-token").await.0, 429);
        // ...while the real token's owner, elsewhere, is not locked out.
        assert_eq!(send(&app, [10, 0, 0, 2], "reader-token").await.0, 200);
        assert_eq!(send(&app, [10, 0, 0, 2], "wrong").await.0, 401);
    }
}
