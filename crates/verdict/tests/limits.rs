//! Rate limits (429/420), load shedding and maintenance (503), deadlines (504),
//! retired versions (410/426).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{Contract, Preset};

#[tokio::test]
async fn every_limited_response_carries_ratelimit_headers_and_429_a_retry_after() {
    let s = stack(Preset::standard());
    let first = req("GET", "/items/1")
        .token("limited-token")
        .send(&s.app)
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-limit"), "2");
    assert_eq!(first.header("ratelimit-remaining"), "1");
    let second = req("GET", "/items/9")
        .token("limited-token")
        .send(&s.app)
        .await;
    assert_eq!(second.status, 404);
    assert_eq!(second.header("ratelimit-remaining"), "0");
    let third = req("GET", "/items/1")
        .token("limited-token")
        .send(&s.app)
        .await;
    assert_eq!(third.status, 429);
    assert_error_shape(&third);
    let retry: u64 = third.header("retry-after").parse().unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(third.header("ratelimit-remaining"), "0");
    assert_eq!(third.json()["code"], "rate_limited");
    // Other tokens have their own budget.
    assert_eq!(
        req("GET", "/items/1")
            .token("reader-token")
            .send(&s.app)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn retry_after_is_rounded_up_never_zero() {
    let contract = Contract::new(Preset::standard());
    let s = stack_with(contract);
    // A quota refilling every 10 ms: the wait is a fraction of a second.
    let store = Arc::new(InMemoryStore::new());
    let q = Quota::new(1, Duration::from_millis(10));
    assert!(store.decide("k", q).allowed);
    let d = store.decide("k", q);
    assert!(!d.allowed && d.retry_after < Duration::from_secs(1));
    assert_eq!(
        verdict::headers::RetryAfter::from_duration(d.retry_after).seconds(),
        1
    );
    drop(s);
}

#[tokio::test]
async fn seed_001_rate_limits_with_420_and_keeps_retry_after() {
    let s = stack(Preset::by_name("seed-001").unwrap());
    for _ in 0..2 {
        req("GET", "/items/1")
            .token("limited-token")
            .send(&s.app)
            .await;
    }
    let r = req("GET", "/items/1")
        .token("limited-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status.as_u16(), 420);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json()["code"], "rate_limited");
}

#[tokio::test]
async fn seed_002_rate_limits_with_503_and_keeps_retry_after() {
    let s = stack(Preset::by_name("seed-002").unwrap());
    for _ in 0..2 {
        req("GET", "/items/1")
            .token("limited-token")
            .send(&s.app)
            .await;
    }
    let r = req("GET", "/items/1")
        .token("limited-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 20);
}

#[tokio::test]
async fn requests_past_the_deadline_get_504() {
    let s = stack(Preset::standard());
    let r = req("GET", "/slow").token("reader-token").send(&s.app).await;
    assert_eq!(r.status, 504);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "gateway_timeout");
}

#[tokio::test]
async fn requests_beyond_max_in_flight_are_shed_with_503_and_retry_after() {
    let s = stack_with(Contract::new(Preset::standard()).max_in_flight(1));
    let app = s.app.clone();
    let slow =
        tokio::spawn(async move { req("GET", "/slow").token("reader-token").send(&app).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let shed = req("GET", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(shed.status, 503);
    assert_error_shape(&shed);
    assert_eq!(shed.header("retry-after"), "1");
    assert_eq!(shed.json()["code"], "overloaded");
    assert_eq!(slow.await.unwrap().status, 504);
    // The slot is free again.
    assert_eq!(
        req("GET", "/items/1")
            .token("reader-token")
            .send(&s.app)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn maintenance_is_503_for_all_but_admins() {
    let s = stack(Preset::standard());
    s.maintenance.enable(90);
    let r = req("GET", "/items/1")
        .token("reader-token")
        .send(&s.app)
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "90");
    assert_eq!(r.json()["code"], "maintenance");
    // Before credentials: an anonymous request also gets 503, not 401.
    assert_eq!(req("GET", "/items/1").send(&s.app).await.status, 503);
    assert_eq!(
        req("GET", "/items/1")
            .token("admin-token")
            .send(&s.app)
            .await
            .status,
        200
    );
    s.maintenance.disable();
    assert_eq!(
        req("GET", "/items/1")
            .token("reader-token")
            .send(&s.app)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn retired_versions_are_gone_or_need_an_upgrade() {
    let s = stack(Preset::standard());
    let r = req("GET", "/v0/items/1").send(&s.app).await;
    assert_eq!(r.status, 410);
    assert_error_shape(&r);
    assert_eq!(r.json()["code"], "retired_version");
    assert!(!r.headers.contains_key("upgrade"));
    let s = stack(Preset::by_name("seed-003").unwrap());
    let r = req("POST", "/v0").send(&s.app).await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("upgrade"), "api/v1");
    let s = stack(Preset::by_name("seed-000").unwrap());
    assert_eq!(req("GET", "/v0/x").send(&s.app).await.status, 404);
    // `/v0x` is not under `/v0`.
    let s = stack(Preset::standard());
    assert_eq!(req("GET", "/v0x").send(&s.app).await.status, 404);
}

#[tokio::test]
async fn oversized_uris_and_header_sections_get_414_and_431_with_bodies() {
    let s = stack(Preset::standard());
    let long = format!("/items?x={}", "a".repeat(9000));
    let r = req("GET", &long).send(&s.app).await;
    assert_eq!(r.status, 414);
    assert_error_shape(&r);
    let mut big = req("GET", "/health");
    for i in 0..40 {
        big = big.header(&format!("x-filler-{i}"), &"v".repeat(1000));
    }
    let r = big.send(&s.app).await;
    assert_eq!(r.status, 431);
    assert_error_shape(&r);
    let s = stack(Preset::by_name("seed-004").unwrap());
    assert_eq!(req("GET", &long).send(&s.app).await.status, 400);
}

/// axum caps `String`, `Bytes` and `Json` bodies at 2 MiB unless told
/// otherwise; the contract's own limit is the only one, above 2 MiB too.
#[tokio::test]
async fn a_body_over_axums_2_mib_default_passes_when_the_contract_allows_more() {
    let routes = axum::Router::new().route(
        "/uploads",
        axum::routing::post(|body: String| async move { body.len().to_string() }),
    );
    let app = Contract::new(Preset::standard())
        .max_body(4 << 20)
        .apply(routes);
    let three_mib = format!("\"{}\"", "a".repeat((3 << 20) - 2));
    let ok = req("POST", "/uploads").json(&three_mib).send(&app).await;
    assert_eq!(ok.status, 200, "{:?}", String::from_utf8_lossy(&ok.bytes));
    assert_eq!(ok.bytes, (3usize << 20).to_string());
    let five_mib = format!("\"{}\"", "a".repeat((5 << 20) - 2));
    let refused = req("POST", "/uploads").json(&five_mib).send(&app).await;
    assert_eq!(refused.status, 413);
    assert_error_shape(&refused);
}
