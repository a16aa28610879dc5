//! `verdict::compression` through a real router: compressed bodies get their
//! own strong ETags, and conditional requests naming them still work.

#![cfg(feature = "compression")]

use axum::routing::get;
use axum::Router;
use verdict::compression::CompressionLayer;
use verdict::conditional::{EntityTag, Preconditions, Validators};
use verdict::test::TestClient;
use verdict::{ApiError, Contract, Preset};

const BIG: &str = "[\"a long list of items, repeated to be worth compressing\"]";

async fn document(pre: Preconditions) -> Result<&'static str, ApiError> {
    pre.check_write(Some(&Validators::new(Some(EntityTag::strong("v1")), None)))?;
    Ok("replaced")
}

fn app() -> TestClient {
    let body: &'static str = Box::leak(BIG.repeat(50).into_boxed_str());
    let routes = Router::new()
        .route("/list", get(move || async move { body }))
        .route("/doc", get(|| async { "small" }).put(document));
    TestClient::new(
        Contract::new(Preset::standard())
            .apply(routes)
            .layer(CompressionLayer::new()),
    )
}

#[tokio::test]
async fn compressed_responses_get_their_own_etag_and_304_on_it() {
    let client = app();
    let plain = client.get("/list").send().await;
    plain.assert_status(200);
    let plain_tag = plain.header("etag").to_string();
    let gz = client
        .get("/list")
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    let gz_tag = gz.header("etag").to_string();
    assert_eq!(
        gz_tag,
        format!("{}-gzip\"", plain_tag.trim_end_matches('"'))
    );

    let again = client
        .get("/list")
        .header("accept-encoding", "gzip")
        .header("if-none-match", &gz_tag)
        .send()
        .await;
    again.assert_status(304);
    assert_eq!(again.header("etag"), gz_tag);

    // Small bodies are left alone.
    let small = client
        .get("/doc")
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert!(small.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn if_match_on_an_encoded_tag_matches_the_resource() {
    let client = app();
    client
        .put("/doc")
        .header("if-match", "\"v1-br\"")
        .send()
        .await
        .assert_status(200);
    client
        .put("/doc")
        .header("if-match", "\"v0-br\"")
        .send()
        .await
        .assert_problem(412, "precondition_failed");
}

#[tokio::test]
async fn an_accept_encoding_that_rules_out_everything_is_disregarded() {
    let client = app();
    let r = client
        .get("/list")
        .header("accept-encoding", "identity;q=0, *;q=0")
        .send()
        .await;
    r.assert_status(200);
    assert!(r.headers.get("content-encoding").is_none());
}
