//! Several instances behave as one service: two servers on two ports share
//! one PostgreSQL database and one Redis. Budgets are one budget, idempotent
//! replays and jobs cross instances, and outages of PostgreSQL or Redis are
//! 503s that heal by themselves.

mod common;

use std::time::Duration;

use common::{Proxy, Server};
use serde_json::json;

fn prefix() -> String {
    format!("verdict-test-{}", uuid::Uuid::new_v4().simple())
}

/// Two instances on one fresh database and one Redis prefix.
async fn pair(extra: &[&str]) -> (Server, Server) {
    let data = common::fresh_postgres().await;
    let prefix = prefix();
    let mut flags = vec![
        "--shared",
        "redis://127.0.0.1:6379",
        "--shared-prefix",
        &prefix,
    ];
    flags.extend_from_slice(extra);
    let a = common::start_on(tempfile::tempdir().unwrap(), data.clone(), &flags).await;
    let b = common::start_on(tempfile::tempdir().unwrap(), data, &flags).await;
    (a, b)
}

#[tokio::test]
async fn a_rate_limit_of_n_gives_exactly_n_successes_across_instances() {
    if !common::postgres_and_redis_or_skip("rate limit across instances").await {
        return;
    }
    let (a, b) = pair(&[]).await;
    let token = a
        .token(json!({"scopes": ["read"], "rate_limit": {"requests": 7, "per_seconds": 3600}}))
        .await;
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = s.call("GET", "/v1/collections").token(&token).send().await;
        match r.status.as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!((ok, limited), (7, 13));
}

#[tokio::test]
async fn a_write_quota_is_one_budget_across_instances() {
    if !common::postgres_and_redis_or_skip("write quota across instances").await {
        return;
    }
    let (a, b) = pair(&[]).await;
    a.collection(json!({"name": "notes"})).await;
    let token = a
        .token(json!({"scopes": ["read", "write"], "write_quota": 4}))
        .await;
    let mut statuses = Vec::new();
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        let r = s
            .call("POST", "/v1/collections/notes/records")
            .token(&token)
            .json(json!({"n": i}))
            .send()
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        6,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_idempotent_post_replays_on_the_other_instance() {
    if !common::postgres_and_redis_or_skip("idempotency across instances").await {
        return;
    }
    let (a, b) = pair(&[]).await;
    a.collection(json!({"name": "orders"})).await;
    async fn post(s: &Server) -> common::Reply {
        s.admin("POST", "/v1/collections/orders/records")
            .header("idempotency-key", "order-7")
            .json(json!({"item": "lamp"}))
            .send()
            .await
    }
    let first = post(&a).await;
    assert_eq!(first.status, 201);
    let again = post(&b).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), "true");
    // Concurrent first attempts on both instances make one record.
    let (x, y) = tokio::join!(
        a.admin("POST", "/v1/collections/orders/records")
            .header("idempotency-key", "order-8")
            .json(json!({"item": "desk"}))
            .send(),
        b.admin("POST", "/v1/collections/orders/records")
            .header("idempotency-key", "order-8")
            .json(json!({"item": "desk"}))
            .send(),
    );
    assert_eq!((x.status.as_u16(), y.status.as_u16()), (201, 201));
    assert_eq!(x.json()["id"], y.json()["id"]);
    let list = a
        .admin("GET", "/v1/collections/orders/records")
        .send()
        .await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_job_started_on_one_instance_is_read_to_completion_on_the_other() {
    if !common::postgres_and_redis_or_skip("jobs across instances").await {
        return;
    }
    let (a, b) = pair(&[]).await;
    a.collection(json!({"name": "items"})).await;
    for i in 0..30 {
        a.record("items", json!({"n": i})).await;
    }
    let r = a
        .admin("POST", "/v1/collections/items/exports")
        .send()
        .await;
    assert_eq!(r.status, 202);
    let job = r.header("location").to_string();
    let mut done = None;
    for _ in 0..200 {
        let r = b.admin("GET", &job).send().await;
        if r.status == 303 {
            done = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = done.expect("the export finishes");
    let result = b.admin("GET", done.header("location")).send().await;
    assert_eq!(result.json()["count"], 30);
}

#[tokio::test]
async fn maintenance_switched_on_one_instance_holds_on_the_other() {
    if !common::postgres_and_redis_or_skip("maintenance across instances").await {
        return;
    }
    let (a, b) = pair(&[]).await;
    let reader = a.token(json!({"scopes": ["read"]})).await;
    let r = a
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true, "retry_after_seconds": 9}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = b.call("GET", "/v1/collections").token(&reader).send().await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "9");
    a.admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": false}))
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        b.call("GET", "/v1/collections")
            .token(&reader)
            .send()
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn postgres_going_away_is_503_and_health_503_then_heals_without_a_restart() {
    if !common::postgres_and_redis_or_skip("PostgreSQL outage").await {
        return;
    }
    let data = common::fresh_postgres().await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let via_proxy = data.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let s = common::start_on(tempfile::tempdir().unwrap(), via_proxy, &[]).await;
    s.collection(json!({"name": "books"})).await;
    assert_eq!(s.call("GET", "/health").send().await.status, 200);

    proxy.down();
    let health = s.call("GET", "/health").send().await;
    health.assert_error(503, "storage_unavailable");
    assert!(health.header("retry-after").parse::<u64>().unwrap() >= 1);
    let r = s.admin("GET", "/v1/collections/books").send().await;
    r.assert_error(503, "storage_unavailable");

    proxy.up();
    let mut healed = false;
    for _ in 0..50 {
        if s.call("GET", "/health").send().await.status == 200 {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healed, "the service recovers once PostgreSQL is back");
    assert_eq!(
        s.admin("GET", "/v1/collections/books").send().await.status,
        200
    );
}

#[tokio::test]
async fn redis_going_away_is_503_under_fail_and_local_limits_under_local_then_heals() {
    if !common::postgres_and_redis_or_skip("Redis outage").await {
        return;
    }
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let redis = format!("redis://127.0.0.1:{}", proxy.port);
    let prefix = prefix();
    let fail = common::start(&[
        "--shared",
        &redis,
        "--shared-prefix",
        &prefix,
        "--rate-limit",
        "1000/1m",
    ])
    .await;
    let local = common::start(&[
        "--shared",
        &redis,
        "--shared-prefix",
        &prefix,
        "--rate-limit",
        "1000/1m",
        "--shared-unavailable",
        "local",
    ])
    .await;
    // A token of its own: the bootstrap admin token is exempt from rate limits.
    let reader = fail.token(json!({"scopes": ["read"]})).await;
    let local_reader = local.token(json!({"scopes": ["read"]})).await;
    assert_eq!(
        fail.call("GET", "/v1/collections")
            .token(&reader)
            .send()
            .await
            .status,
        200
    );

    proxy.down();
    fail.call("GET", "/v1/collections")
        .token(&reader)
        .send()
        .await
        .assert_error(503, "limits_unavailable");
    let r = local
        .call("GET", "/v1/collections")
        .token(&local_reader)
        .send()
        .await;
    assert_eq!(
        r.status,
        200,
        "local mode serves with its own limits: {}",
        r.text()
    );
    assert_eq!(r.header("ratelimit-limit"), "1000");

    proxy.up();
    let mut healed = false;
    for _ in 0..50 {
        if fail
            .call("GET", "/v1/collections")
            .token(&reader)
            .send()
            .await
            .status
            == 200
        {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healed, "the service recovers once Redis is back");
}

/// Starts the real binary on `data`, sharing Redis under `prefix`.
async fn binary(data: &str, prefix: &str) -> (tokio::process::Child, String) {
    common::spawn_binary(&[
        "--rate-limit",
        "off",
        "--job-rate-limit",
        "off",
        "--data",
        data,
        "--admin-token",
        common::ADMIN,
        "--shared",
        "redis://127.0.0.1:6379",
        "--shared-prefix",
        prefix,
    ])
    .await
}

#[tokio::test]
async fn a_job_whose_instance_is_killed_is_finished_by_the_other() {
    if !common::postgres_and_redis_or_skip("job takeover").await {
        return;
    }
    let data = common::fresh_postgres().await;
    let prefix = prefix();
    let (mut a, a_base) = binary(&data, &prefix).await;
    let client = common::client();
    let call = |base: &str, method: &str, path: &str, ct: Option<&str>, body: String| {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("authorization", format!("Bearer {}", common::ADMIN));
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        client.request(
            req.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
    };
    let r = call(
        &a_base,
        "POST",
        "/v1/collections",
        Some("application/json"),
        r#"{"name": "bulk"}"#.into(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let lines = 4000;
    let ndjson: String = (0..lines).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let r = call(
        &a_base,
        "POST",
        "/v1/collections/bulk/imports",
        Some("application/x-ndjson"),
        ndjson,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    let job = r.headers()["location"].to_str().unwrap().to_string();
    // The second instance starts only now, so the first one claims the job.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let (_b, b_base) = binary(&data, &prefix).await;
    let mut state = String::new();
    for _ in 0..400 {
        let r = call(&b_base, "GET", &job, None, String::new())
            .await
            .unwrap();
        let status = r.status();
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        state = v["state"].as_str().unwrap_or_default().to_string();
        if status == 303 || state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        state, "succeeded",
        "the other instance took the job over and finished it"
    );
    let r = call(
        &b_base,
        "GET",
        &format!("{job}/result"),
        None,
        String::new(),
    )
    .await
    .unwrap();
    let body = http_body_util::BodyExt::collect(r.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["imported"], lines, "{v}");
}

/// `?sslmode=require` (as managed databases ask) connects over TLS, and the
/// service works as on a plain connection.
#[tokio::test]
async fn postgresql_over_tls_when_the_url_asks_for_it() {
    if !common::postgres_and_redis_or_skip("postgresql_over_tls_when_the_url_asks_for_it").await {
        return;
    }
    use sqlx::Connection;
    let url = common::fresh_postgres().await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let tls = format!("{url}?sslmode=require");
    let s = common::start_on(tempfile::tempdir().unwrap(), tls, &[]).await;
    s.collection(json!({"name": "secure"})).await;
    s.record("secure", json!({"id": "r1"})).await;
    let mut admin = sqlx::PgConnection::connect(&common::postgres_admin_url())
        .await
        .unwrap();
    let encrypted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.datname = '{database}' AND s.ssl"
    )))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(encrypted > 0, "the service's connections use TLS");
}
