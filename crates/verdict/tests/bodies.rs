//! 406, 415, 413, and the JSON and query extractors' 400/422.

mod common;

use common::*;
use verdict::Preset;

#[tokio::test]
async fn accept_with_q_zero_for_json_is_406() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items/1")
        .token("reader-token")
        .header("accept", "application/json;q=0, */*;q=0.5")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 406);
    assert_error_shape(&r);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("application/json"));
    let r = req("GET", "/items/1")
        .token("reader-token")
        .header("accept", "text/html")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 406);
}

#[tokio::test]
async fn a_route_with_csv_serves_it_by_q_value() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items")
        .token("reader-token")
        .header("accept", "application/json;q=0.5, text/csv")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "text/csv");
    let r = req("GET", "/items")
        .token("reader-token")
        .header("accept", "*/*")
        .send(&s.app)
        .await;
    assert_eq!(r.content_type(), "application/json");
}

#[tokio::test]
async fn wrong_content_type_is_415_with_accept_post_or_patch() {
    let s = stack(Preset::standard());
    let r = req("POST", "/items")
        .token("writer-token")
        .header("content-type", "text/plain")
        .body("hello")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 415);
    assert_error_shape(&r);
    assert_eq!(r.header("accept-post"), "application/json");
    let r = req("POST", "/imports")
        .token("writer-token")
        .json("{}")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("accept-post"), "application/x-ndjson");
    let r = req("POST", "/items")
        .token("writer-token")
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"name": "a", "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("location"), "/items/2");
}

#[tokio::test]
async fn bodies_over_the_route_limit_are_413() {
    let s = stack(Preset::standard());
    let r = req("POST", "/imports")
        .token("writer-token")
        .header("content-type", "application/x-ndjson")
        .body("{\"a\": 1}\n{\"b\": 2}\n{\"c\": 3}\n")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 413);
    assert_error_shape(&r);
    assert!(r.json()["detail"].as_str().unwrap().contains("16 bytes"));
    let r = req("POST", "/imports")
        .token("writer-token")
        .header("content-type", "application/x-ndjson")
        .body("{\"a\": 1}\n")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn streamed_bodies_over_the_limit_are_413() {
    use axum::body::Body;
    use tower::ServiceExt;
    let s = stack(Preset::standard());
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"x\": 1}\n"))),
    );
    let request = http::Request::post("/imports")
        .header("authorization", "Bearer writer-token")
        .header("content-type", "application/x-ndjson")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(chunks))
        .unwrap();
    let res = s.app.clone().oneshot(request).await.unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn malformed_json_is_400_and_bad_content_is_422() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .json("{\"name\": ")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "malformed_body");
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .json(r#"{"name": "a", "price": "cheap"}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 422);
    let b = r.json();
    assert_eq!(b["code"], "validation_failed");
    assert_eq!(b["errors"][0]["pointer"], "/price");
    assert_eq!(
        b["errors"][0]["detail"],
        "must be a non-negative integer, not a string"
    );
}

#[tokio::test]
async fn seeds_000_and_001_answer_malformed_json_with_422() {
    for name in ["seed-000", "seed-001"] {
        let s = stack(Preset::by_name(name).unwrap());
        let r = req("PUT", "/items/1")
            .token("writer-token")
            .json("nope")
            .send(&s.app)
            .await;
        assert_eq!(r.status, 422, "{name}");
    }
}

#[tokio::test]
async fn an_invalid_query_parameter_is_400_naming_it() {
    let s = stack(Preset::standard());
    let r = req("GET", "/items?limit=abc")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r);
    let b = r.json();
    assert_eq!(b["code"], "invalid_query");
    assert_eq!(
        b["detail"],
        "The query parameter `limit` is not valid: must be an integer"
    );
    let ok = req("GET", "/items?limit=5")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(ok.json()["limit"], 5);
}

#[tokio::test]
async fn a_key_given_twice_is_a_400_naming_the_key_not_last_one_wins() {
    let s = stack(Preset::standard());
    let r = req("POST", "/items")
        .token("writer-token")
        .json(r#"{"name": "a", "price": 1, "name": "b"}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    assert_error_shape(&r);
    let body = r.json();
    assert_eq!(body["code"], "malformed_body");
    assert!(
        body["detail"].as_str().unwrap().contains("`name`"),
        "{body}"
    );
    // Seed 000 answers a malformed body with 422, this one too.
    let s = stack(Preset::by_name("seed-000").unwrap());
    let r = req("POST", "/items")
        .token("writer-token")
        .json(r#"{"name": "a", "name": "b", "price": 1}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn numbers_that_cannot_be_kept_exactly_are_422_naming_the_field() {
    let s = stack(Preset::standard());
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .json(r#"{"name": "a", "price": 1, "extra": {"big": 99999999999999999999}}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["pointer"], "/extra/big");
    let r = req("PUT", "/items/1")
        .token("writer-token")
        .json(r#"{"name": "a", "price": 1e400}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["pointer"], "/price");
    // The largest integers 64 bits hold are taken as they are.
    let r = req("POST", "/items")
        .token("writer-token")
        .json(r#"{"name": "18446744073709551615", "price": 4294967295}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
}

#[tokio::test]
async fn a_syntax_error_says_what_and_where_without_internals() {
    let s = stack(Preset::standard());
    let r = req("POST", "/items")
        .token("writer-token")
        .json(r#"{"name": "a",}"#)
        .send(&s.app)
        .await;
    assert_eq!(r.status, 400);
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("line 1"), "{detail}");
    assert!(!detail.contains("serde"), "{detail}");
}
