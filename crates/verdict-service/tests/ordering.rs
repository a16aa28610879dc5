//! docs/contract.md's order over a real socket: each request carries several
//! faults, and the first in the contract's order answers.

mod common;

use serde_json::json;

#[tokio::test]
async fn the_first_failure_in_the_contracts_order_answers() {
    let s = common::start(&["--max-body", "1k"]).await;
    s.collection(json!({"name": "books", "schema": {"type": "object", "required": ["title"]}, "unique": ["isbn"]})).await;
    s.record("books", json!({"id": "b1", "title": "Dune", "isbn": "1"}))
        .await;
    let reader = s.token(json!({"scopes": ["read"]})).await;
    let limited = s
        .token(json!({"scopes": ["read"], "rate_limit": {"requests": 1, "per_seconds": 3600}}))
        .await;
    let writer = s.token(json!({"scopes": ["read", "write"]})).await;
    let big = "x".repeat(2000);
    let cases: Vec<(&str, common::Call<'_>, u16)> = vec![
        ("501 before 410 and 404", s.call("BREW", "/v0/nothing"), 501),
        ("410 before 404 and 401", s.call("GET", "/v0/nothing"), 410),
        (
            "404 path before 405 and 401",
            s.call("DELETE", "/v1/nothing"),
            404,
        ),
        (
            "405 before 401",
            s.call("DELETE", "/v1/collections").token("bad.token"),
            405,
        ),
        (
            "401 before 403, 406 and 415",
            s.call("POST", "/v1/collections/books/records")
                .token("bad.token")
                .header("accept", "text/html")
                .header("content-type", "text/plain")
                .body("x"),
            401,
        ),
        (
            "403 before 406, 415 and 413",
            s.call("POST", "/v1/collections/books/records")
                .token(&reader)
                .header("accept", "text/html")
                .header("content-type", "text/plain")
                .body(big.clone()),
            403,
        ),
        (
            "406 before 415 and 413",
            s.call("POST", "/v1/collections/books/records")
                .token(&writer)
                .header("accept", "text/html")
                .header("content-type", "text/plain")
                .body(big.clone()),
            406,
        ),
        (
            "415 before 413 and 400",
            s.call("POST", "/v1/collections/books/records")
                .token(&writer)
                .header("content-type", "text/plain")
                .body(big.clone()),
            415,
        ),
        (
            "413 before 400",
            s.call("POST", "/v1/collections/books/records")
                .token(&writer)
                .header("content-type", "application/json")
                .body(format!("{{{big}")),
            413,
        ),
        (
            "400 before 404 record",
            s.call("PUT", "/v1/collections/books/records/nope")
                .token(&writer)
                .header("content-type", "application/json")
                .body("{"),
            400,
        ),
        (
            "404 record before a body that is not an object (422)",
            s.call("PUT", "/v1/collections/books/records/nope")
                .token(&writer)
                .json(json!([1, 2])),
            404,
        ),
        (
            "404 record before 412 and 422",
            s.call("PUT", "/v1/collections/books/records/nope")
                .token(&writer)
                .header("if-match", "\"old\"")
                .json(json!({"title": 5})),
            404,
        ),
        (
            "412 before 422",
            s.call("PUT", "/v1/collections/books/records/b1")
                .token(&writer)
                .header("if-match", "\"old\"")
                .json(json!({"title": 5})),
            412,
        ),
        (
            "422 before 409",
            s.call("POST", "/v1/collections/books/records")
                .token(&writer)
                .json(json!({"isbn": "1"})),
            422,
        ),
        (
            "409 last",
            s.call("POST", "/v1/collections/books/records")
                .token(&writer)
                .json(json!({"title": "Emma", "isbn": "1"})),
            409,
        ),
    ];
    for (name, call, want) in cases {
        let r = call.send().await;
        assert_eq!(r.status.as_u16(), want, "{name}: {}", r.text());
    }
    // 429 before 403: the limited reader spends its one request, then tries to write.
    assert_eq!(
        s.call("GET", "/v1/collections")
            .token(&limited)
            .send()
            .await
            .status,
        200
    );
    let r = s
        .call("POST", "/v1/collections/books/records")
        .token(&limited)
        .json(json!({"title": "x"}))
        .send()
        .await;
    assert_eq!(r.status, 429, "{}", r.text());
    // 503 (maintenance) before 401.
    s.admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(s.call("GET", "/v1/collections").send().await.status, 503);
    assert_eq!(
        s.call("DELETE", "/v1/collections").send().await.status,
        405,
        "405 still first"
    );
}
