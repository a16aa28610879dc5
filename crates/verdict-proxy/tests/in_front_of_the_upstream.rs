//! What the gateway checks before the upstream is asked, over real sockets:
//! bearer tokens (or `--pass-auth`), rate limits (shared through Redis),
//! maintenance, request bodies against the document's schemas, and the
//! metrics page. Each test also asserts what the upstream received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::response::IntoResponse;
use bytes::Bytes;
use clap::Parser;

mod common;
use common::{closed_port, gateway, Cli};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::Digest;
use tokio::net::TcpListener;

/// One request as the upstream received it.
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the recording upstream saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Received>>>);

impl Seen {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn last_headers(&self) -> HeaderMap {
        self.0
            .lock()
            .unwrap()
            .last()
            .expect("a request")
            .headers
            .clone()
    }
    fn requests(&self) -> Vec<String> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
    fn last_body(&self) -> Bytes {
        self.0
            .lock()
            .unwrap()
            .last()
            .expect("a request")
            .body
            .clone()
    }
}

/// An upstream that records every request and answers 200 `{"ok":true}`;
/// for `/private`, a plain-text 401 with its own challenge unless the
/// request has `Authorization: Bearer upstream-secret`; `/doc` has the
/// `ETag` `"v1"`, `/new` does not exist for GET. It ignores every
/// precondition, as many upstreams do.
async fn recording_upstream() -> (String, Seen) {
    let seen = Seen::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let authorized = parts
                .headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer upstream-secret");
            let path = parts.uri.path().to_string();
            let read = parts.method == http::Method::GET;
            log.0.lock().unwrap().push(Received {
                method: parts.method.to_string(),
                path: path.clone(),
                headers: parts.headers,
                body,
            });
            if read && path == "/doc" {
                return (
                    [("etag", "\"v1\""), ("cache-control", "max-age=5")],
                    axum::Json(json!({"v": 1})),
                )
                    .into_response();
            }
            if read && path == "/new" {
                return (StatusCode::NOT_FOUND, "no such thing").into_response();
            }
            if path == "/private" && !authorized {
                return (
                    StatusCode::UNAUTHORIZED,
                    [
                        ("www-authenticate", "Bearer realm=\"upstream\""),
                        ("content-type", "text/plain"),
                    ],
                    "who are you",
                )
                    .into_response();
            }
            axum::Json(json!({"ok": true})).into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("an answer in time")
        .expect("a response");
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn assert_problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(r.body["status"], status, "{}", r.body);
    assert_eq!(r.body["code"], code, "{}", r.body);
}

fn sha256_hex(s: &str) -> String {
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `--tokens` file with a reader (`reader.r3ad`), a writer
/// (`writer.wr1te`, at most 2 requests a minute) and an admin (`ops.adm1n`).
fn tokens_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("tokens.json");
    let doc = json!({"tokens": [
        {"id": "reader", "secret_sha256": sha256_hex("r3ad"), "scopes": ["read"]},
        {"id": "writer", "secret_sha256": sha256_hex("wr1te"), "scopes": ["read", "write"], "rate_limit": "2/1m"},
        {"id": "ops", "secret_sha256": sha256_hex("adm1n"), "scopes": ["admin"]},
    ]});
    std::fs::write(&path, doc.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn with_tokens_the_gateway_answers_401_and_403_and_the_upstream_never_sees_the_secret() {
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&["--upstream", &upstream, "--tokens", &tokens_file(&dir)]).await;

    let r = send("GET", &format!("{gw}/things"), &[], "").await;
    assert_problem(&r, 401, "missing_credentials");
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let r = send(
        "GET",
        &format!("{gw}/things"),
        &[("authorization", "Bearer reader.wrong")],
        "",
    )
    .await;
    assert_problem(&r, 401, "invalid_token");
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let r = send(
        "POST",
        &format!("{gw}/things"),
        &[
            ("authorization", "Bearer reader.r3ad"),
            ("content-type", "application/json"),
        ],
        "{}",
    )
    .await;
    assert_problem(&r, 403, "insufficient_scope");
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("scope=\"write\""));
    assert_eq!(seen.count(), 0, "refused requests never reach the upstream");

    // A client cannot claim to be someone: the gateway's own headers are replaced.
    let r = send(
        "GET",
        &format!("{gw}/things"),
        &[
            ("authorization", "Bearer reader.r3ad"),
            ("x-verdict-principal", "ops"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let h = seen.last_headers();
    assert_eq!(h["x-verdict-principal"], "reader");
    assert_eq!(h["x-verdict-scopes"], "read");
    assert!(
        !h.contains_key("authorization"),
        "the secret stays at the gateway"
    );

    // The probe is public; the metrics page is for admins.
    assert_eq!(
        send("GET", &format!("{gw}/.verdict/health"), &[], "")
            .await
            .status,
        200
    );
    let r = send(
        "GET",
        &format!("{gw}/.verdict/metrics"),
        &[("authorization", "Bearer reader.r3ad")],
        "",
    )
    .await;
    assert_problem(&r, 403, "insufficient_scope");
    let r = send(
        "GET",
        &format!("{gw}/.verdict/metrics"),
        &[("authorization", "Bearer ops.adm1n")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn with_pass_auth_the_upstream_decides_and_its_challenge_is_kept() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(&["--upstream", &upstream, "--pass-auth"]).await;
    let r = send(
        "GET",
        &format!("{gw}/private"),
        &[("x-verdict-principal", "ops")],
        "",
    )
    .await;
    // The upstream's plain-text 401, in the preset's format, with its own challenge.
    assert_problem(&r, 401, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"upstream\"");
    assert!(!seen.last_headers().contains_key("x-verdict-principal"));
    let r = send(
        "GET",
        &format!("{gw}/private"),
        &[("authorization", "Bearer upstream-secret")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        seen.last_headers()["authorization"],
        "Bearer upstream-secret"
    );
    assert!(
        Cli::try_parse_from([
            "gw",
            "--upstream",
            &upstream,
            "--pass-auth",
            "--tokens",
            "x"
        ])
        .is_err(),
        "--pass-auth and --tokens exclude each other"
    );
}

#[tokio::test]
async fn past_the_rate_limit_the_answer_is_429_with_retry_after_and_the_upstream_is_spared() {
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // Per client address without tokens.
    let gw = gateway(&["--upstream", &upstream, "--rate-limit", "2/1m"]).await;
    for remaining in ["1", "0"] {
        let r = send("GET", &format!("{gw}/things"), &[], "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["ratelimit-limit"], "2");
        assert_eq!(r.headers["ratelimit-remaining"], remaining);
    }
    let r = send("GET", &format!("{gw}/things"), &[], "").await;
    assert_problem(&r, 429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(seen.count(), 2);

    // With tokens: a token's own limit, per token.
    let gw = gateway(&["--upstream", &upstream, "--tokens", &tokens_file(&dir)]).await;
    let writer = [("authorization", "Bearer writer.wr1te")];
    for _ in 0..2 {
        assert_eq!(
            send("GET", &format!("{gw}/a"), &writer, "").await.status,
            200
        );
    }
    assert_problem(
        &send("GET", &format!("{gw}/a"), &writer, "").await,
        429,
        "rate_limited",
    );
    // The reader has no limit of its own, and there is no --rate-limit.
    for _ in 0..3 {
        let r = send(
            "GET",
            &format!("{gw}/a"),
            &[("authorization", "Bearer reader.r3ad")],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
    }
}

/// Whether Redis answers on 127.0.0.1:6379; without it (and without `CI`)
/// the shared-limit test skips, saying so.
async fn redis_or_skip(test: &str) -> bool {
    let up = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect("127.0.0.1:6379"),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !up {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: Redis (127.0.0.1:6379) is needed under CI"
        );
        eprintln!(
            "skipping {test}: Redis is not reachable on 127.0.0.1:6379 (set CI=true to require it)"
        );
    }
    up
}

#[tokio::test]
async fn two_gateways_sharing_redis_spend_one_budget() {
    if !redis_or_skip("two_gateways_sharing_redis_spend_one_budget").await {
        return;
    }
    let (upstream, seen) = recording_upstream().await;
    let prefix = format!("gw-test-{}", std::process::id());
    let flags = [
        "--upstream",
        &upstream,
        "--rate-limit",
        "3/1m",
        "--shared",
        "redis://127.0.0.1:6379",
        "--shared-prefix",
        &prefix,
    ];
    let (a, b) = (gateway(&flags).await, gateway(&flags).await);
    let mut statuses = Vec::new();
    for gw in [&a, &b, &a, &b] {
        statuses.push(
            send("GET", &format!("{gw}/x"), &[], "")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "one budget of 3 across both gateways"
    );
    assert_eq!(seen.count(), 3);
}

#[tokio::test]
async fn while_the_maintenance_file_exists_every_request_but_the_probe_is_503() {
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maintenance");
    let gw = gateway(&[
        "--upstream",
        &upstream,
        "--maintenance-file",
        file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(send("GET", &format!("{gw}/x"), &[], "").await.status, 200);
    std::fs::write(&file, "120\n").unwrap();
    let mut r = send("GET", &format!("{gw}/x"), &[], "").await;
    for _ in 0..30 {
        if r.status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = send("GET", &format!("{gw}/x"), &[], "").await;
    }
    assert_problem(&r, 503, "maintenance");
    assert_eq!(r.headers["retry-after"], "120");
    assert_eq!(
        send("GET", &format!("{gw}/.verdict/health"), &[], "")
            .await
            .status,
        200
    );
    let before = seen.count();
    std::fs::remove_file(&file).unwrap();
    let mut r = send("GET", &format!("{gw}/x"), &[], "").await;
    for _ in 0..30 {
        if r.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = send("GET", &format!("{gw}/x"), &[], "").await;
    }
    assert_eq!(r.status, 200, "maintenance ends with the file");
    assert_eq!(
        seen.count(),
        before + 1,
        "nothing reached the upstream during maintenance"
    );
}

#[tokio::test]
async fn bodies_that_break_the_documents_schema_are_400_or_422_and_never_reach_the_upstream() {
    let (upstream, seen) = recording_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(
        &doc,
        json!({
            "openapi": "3.0.3",
            "components": {"schemas": {"Thing": {
                "type": "object", "required": ["name"], "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "price": {"type": "integer", "minimum": 0},
                    "note": {"type": "string", "nullable": true},
                },
            }}},
            "paths": {"/things": {"post": {
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Thing"}}}},
                "responses": {"201": {"content": {"application/json": {}}}},
            }}},
        })
        .to_string(),
    )
    .unwrap();
    let gw = gateway(&["--upstream", &upstream, "--openapi", doc.to_str().unwrap()]).await;
    let json_type = [("content-type", "application/json")];
    let url = format!("{gw}/things");

    let r = send(
        "POST",
        &url,
        &json_type,
        r#"{"name": "a", "price": -1, "extra": 1}"#,
    )
    .await;
    assert_problem(&r, 422, "validation_failed");
    let pointers: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(pointers.contains(&"/price"), "{}", r.body);
    assert!(
        pointers.contains(&""),
        "the extra field is the object's error: {}",
        r.body
    );
    assert_problem(
        &send("POST", &url, &json_type, r#"{"name": }"#).await,
        400,
        "malformed_body",
    );
    assert_problem(&send("POST", &url, &[], "").await, 400, "malformed_body");
    assert_eq!(seen.count(), 0, "the upstream saw none of them");

    let body = r#"{"name":"a",  "price":3, "note":null}"#;
    let r = send("POST", &url, &json_type, body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        seen.last_body(),
        body.as_bytes(),
        "the very bytes the client sent"
    );
}

#[tokio::test]
async fn the_metrics_page_counts_requests_by_route_and_upstream_attempts_by_outcome() {
    let (upstream, _seen) = recording_upstream().await;
    let closed = closed_port().await;
    // Upstream 1 answers, upstream 2 refuses connections.
    let gw = gateway(&["--upstream", &upstream, "--upstream", &closed]).await;
    for _ in 0..4 {
        send(
            "POST",
            &format!("{gw}/things"),
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(
            http::Request::get(format!("{gw}/.verdict/metrics"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        has(r#"verdict_proxy_upstream_requests_total{upstream="1",outcome="ok"}"#),
        "{text}"
    );
    assert!(
        has(r#"verdict_proxy_upstream_requests_total{upstream="2",outcome="refused"}"#),
        "{text}"
    );
    assert!(
        has(r#"http_requests_total{route="*",method="POST",status="502"}"#),
        "{text}"
    );
    assert!(
        has(r#"http_problems_total{code="upstream_unreachable"}"#),
        "{text}"
    );
    assert!(!text.contains("127.0.0.1"), "the page names no address");
}

#[tokio::test]
async fn preconditions_the_upstream_ignores_are_judged_at_the_gateway() {
    let (upstream, seen) = recording_upstream().await;
    let gw = gateway(&["--upstream", &upstream]).await;
    let doc = format!("{gw}/doc");

    // Reads: the upstream's 200 is judged against its own validators.
    let r = send("GET", &doc, &[("if-match", "\"v0\"")], "").await;
    assert_problem(&r, 412, "precondition_failed");
    assert_eq!(r.headers["etag"], "\"v1\"");
    let r = send("GET", &doc, &[("if-none-match", "W/\"v1\"")], "").await;
    assert_eq!(r.status, 304);
    assert_eq!(r.headers["etag"], "\"v1\"");
    assert_eq!(
        r.headers["cache-control"], "max-age=5",
        "a 304 keeps what RFC 9110 §15.4.5 lists"
    );
    assert_eq!(
        send("GET", &doc, &[("if-match", "\"v1\"")], "")
            .await
            .status,
        200
    );

    // A write whose If-Match fails never reaches the upstream: only the GET
    // that read the current version did.
    let before = seen.count();
    let json_type = ("content-type", "application/json");
    let r = send("PUT", &doc, &[("if-match", "\"v0\""), json_type], "{}").await;
    assert_problem(&r, 412, "precondition_failed");
    assert_eq!(
        r.headers["etag"], "\"v1\"",
        "the current version, to retry with"
    );
    assert_eq!(seen.requests()[before..], ["GET /doc"]);

    // One that holds is forwarded with its condition, for the upstream's own check.
    let r = send("PUT", &doc, &[("if-match", "\"v1\""), json_type], "{}").await;
    assert_eq!(r.status, 200);
    assert_eq!(seen.requests()[before + 1..], ["GET /doc", "PUT /doc"]);
    assert_eq!(seen.last_headers()["if-match"], "\"v1\"");

    // If-None-Match: * creates only what does not exist yet.
    let r = send("PUT", &doc, &[("if-none-match", "*"), json_type], "{}").await;
    assert_problem(&r, 412, "precondition_failed");
    let r = send(
        "PUT",
        &format!("{gw}/new"),
        &[("if-none-match", "*"), json_type],
        "{}",
    )
    .await;
    assert_eq!(r.status, 200);
    // A malformed condition is the client's error.
    let r = send("GET", &doc, &[("if-match", "v1")], "").await;
    assert_problem(&r, 400, "invalid_header");
}
