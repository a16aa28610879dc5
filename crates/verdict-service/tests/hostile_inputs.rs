//! What an ordinary token (or no token) can send to hurt the service, over a
//! real socket: each input is answered with the right code and a clear body,
//! never a 500, a silent change of meaning, or a leak.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes on a new connection; the whole answer (status, head, body).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    (
        head[9..12].parse().unwrap(),
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_failing_field_of_multibyte_text_is_a_422_not_a_500() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "notes", "schema": {
        "type": "object", "properties": {"text": {"type": "string", "pattern": "^[a-z]+$"}}}}))
        .await;
    let r = s
        .admin("POST", "/v1/collections/notes/records")
        .json(json!({"text": "é".repeat(200)}))
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["errors"][0]["pointer"], "/text");
    // A schema whose own error message is long and multibyte.
    let bad_pattern = format!("(a{}", "é".repeat(200));
    let r = s
        .admin("POST", "/v1/collections")
        .json(json!({"name": "broken", "schema": {"properties": {"x": {"pattern": bad_pattern}}}}))
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["errors"][0]["pointer"], "/schema");
    // In an import, such a line fails alone; the job goes on.
    let ndjson = format!(
        "{{\"text\": \"ok\"}}\n{{\"text\": \"{}\"}}\n{{\"text\": \"fine\"}}\n",
        "é".repeat(200)
    );
    let r = s
        .admin("POST", "/v1/collections/notes/imports")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let result = finished_job(&s, r.header("location")).await;
    assert_eq!(result["imported"], 2, "{result}");
    assert_eq!(result["failed"][0]["line"], 2, "{result}");
}

/// Waits for a job to finish; its result.
async fn finished_job(s: &common::Server, monitor: &str) -> Value {
    for _ in 0..400 {
        let r = s.admin("GET", monitor).send().await;
        if r.status == 303 {
            let result = s.admin("GET", &format!("{monitor}/result")).send().await;
            assert_eq!(result.status, 200, "{}", result.text());
            return result.json();
        }
        assert_ne!(r.json()["state"], "failed", "{}", r.text());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the job did not finish");
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({"a": v});
    }
    v
}

#[tokio::test]
async fn one_depth_rule_keeps_every_accepted_record_exportable() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "deep"})).await;
    // The record's own object is level 1: `deep` nests 63 more, 64 in all.
    let r = s
        .admin("POST", "/v1/collections/deep/records")
        .json(json!({"id": "ok", "deep": nested(62)}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s
        .admin("POST", "/v1/collections/deep/records")
        .json(json!({"id": "too-deep", "deep": nested(125)}))
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    assert!(r.json()["errors"][0]["pointer"]
        .as_str()
        .unwrap()
        .starts_with("/deep/a/a"));
    let r = s.admin("POST", "/v1/collections/deep/exports").send().await;
    let result = finished_job(&s, r.header("location")).await;
    assert_eq!(result["count"], 1);
    assert_eq!(result["records"][0]["id"], "ok");
}

#[tokio::test]
async fn csv_cells_that_a_spreadsheet_would_run_are_neutralized() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "sheet"})).await;
    s.record(
        "sheet",
        json!({"id": "r1", "formula": "=HYPERLINK(\"http://x\")", "at": "@SUM(A1)",
               "minus": "-2+3", "n": -5, "=evil": "plain"}),
    )
    .await;
    let r = s
        .admin("GET", "/v1/collections/sheet/records")
        .header("accept", "text/csv")
        .send()
        .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let mut lines = text.lines();
    let head = lines.next().unwrap();
    assert!(head.contains("'=evil"), "{head}");
    let row = lines.next().unwrap();
    assert!(row.contains("'=HYPERLINK"), "{row}");
    assert!(row.contains("'@SUM(A1)"), "{row}");
    assert!(row.contains("'-2+3"), "{row}");
    assert!(row.contains(",-5,") || row.ends_with(",-5"), "{row}");
}

#[tokio::test]
async fn guessing_tokens_is_throttled_per_address_without_locking_the_real_one_out() {
    let s = common::start(&["--auth-failure-limit", "5/1m"]).await;
    let good = s.token(json!({"scopes": ["read"]})).await;
    for i in 0..5 {
        let r = s
            .call("GET", "/v1/collections")
            .token(&format!("guess.{i}"))
            .send()
            .await;
        r.assert_error(401, "invalid_token");
    }
    let r = s
        .call("GET", "/v1/collections")
        .token("guess.6")
        .send()
        .await;
    r.assert_error(429, "authentication_throttled");
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    // From the guessing address even a right token waits...
    let r = s.call("GET", "/v1/collections").token(&good).send().await;
    assert_eq!(r.status, 429);
    // ...while from another address the token works.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let conn = socket.connect(s.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .unwrap();
    tokio::spawn(connection);
    let res = sender
        .send_request(
            http::Request::get("/v1/collections")
                .header("host", "127.0.0.1")
                .header("authorization", format!("Bearer {good}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn requests_hyper_refuses_are_answered_in_the_presets_format() {
    let s = common::start(&[]).await;
    let many: String = (0..1200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, head, body) = raw(
        s.addr,
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert!(head.contains("x-request-id: "), "{head}");
    assert_eq!(body["code"], "request_header_fields_too_large");
    let (status, _, body) = raw(
        s.addr,
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).as_bytes(),
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(body["status"], 414);
    let (status, _, body) = raw(s.addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed_request");

    // Seed 000 has neither 431 nor 414, and writes JSON:API.
    let seed0 = common::start(&["--preset", "seed-000"]).await;
    let (status, head, body) = raw(
        seed0.addr,
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{head}");
    assert!(head.contains("application/vnd.api+json"), "{head}");
    assert_eq!(body["errors"][0]["status"], "400");
    let (status, _, _) = raw(
        seed0.addr,
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)).as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn maintenance_takes_only_a_sane_retry_after_whether_on_or_off() {
    let s = common::start(&[]).await;
    for body in [
        json!({"enabled": true, "retry_after_seconds": 18446744073709551615u64}),
        json!({"enabled": false, "retry_after_seconds": 31536001}),
        json!({"enabled": true, "retry_after_seconds": 0}),
    ] {
        let r = s
            .admin("PUT", "/v1/admin/maintenance")
            .json(body.clone())
            .send()
            .await;
        r.assert_error(422, "validation_failed");
        assert_eq!(
            r.json()["errors"][0]["pointer"],
            "/retry_after_seconds",
            "{body}"
        );
    }
    let r = s
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true, "retry_after_seconds": 86400}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let reader = s.token(json!({"scopes": ["read"]})).await;
    let r = s.call("GET", "/v1/collections").token(&reader).send().await;
    r.assert_error(503, "maintenance");
    assert_eq!(r.header("retry-after"), "86400");
}

#[tokio::test]
async fn a_write_only_token_writes_without_reading_anything_back() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "inbox"})).await;
    s.record("inbox", json!({"id": "m1", "secret": "TOPSECRET"}))
        .await;
    let writer = s.token(json!({"scopes": ["write"]})).await;
    let r = s
        .call("PATCH", "/v1/collections/inbox/records/m1")
        .token(&writer)
        .merge_patch(json!({}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.bytes.is_empty());
    assert!(r.headers.contains_key("etag"));
    let r = s
        .call("POST", "/v1/collections/inbox/records")
        .token(&writer)
        .json(json!({"id": "m2", "text": "hi"}))
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert!(r.bytes.is_empty(), "{}", r.text());
    assert_eq!(r.header("location"), "/v1/collections/inbox/records/m2");
    let r = s
        .call("GET", "/v1/collections/inbox/records/m1")
        .token(&writer)
        .send()
        .await;
    r.assert_error(403, "insufficient_scope");
}

#[tokio::test]
async fn bodies_that_json_would_misread_are_refused_and_named() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "things"})).await;
    let r = s
        .admin("POST", "/v1/collections/things/records")
        .header("content-type", "application/json")
        .body(r#"{"n": 99999999999999999999}"#)
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["errors"][0]["pointer"], "/n");
    let r = s
        .admin("POST", "/v1/collections/things/records")
        .header("content-type", "application/json")
        .body(r#"{"n": 1e999}"#)
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    let r = s
        .admin("POST", "/v1/collections/things/records")
        .header("content-type", "application/json")
        .body(r#"{"a": 1, "a": 2}"#)
        .send()
        .await;
    r.assert_error(400, "malformed_body");
    assert!(r.json()["detail"].as_str().unwrap().contains("`a`"));
    for id in [".", ".."] {
        let r = s
            .admin("POST", "/v1/collections/things/records")
            .json(json!({"id": id}))
            .send()
            .await;
        r.assert_error(422, "validation_failed");
        assert_eq!(r.json()["errors"][0]["pointer"], "/id");
    }
    // What 64 bits hold is kept exactly.
    let r = s
        .admin("POST", "/v1/collections/things/records")
        .header("content-type", "application/json")
        .body(r#"{"id": "big", "n": 18446744073709551615, "m": -9223372036854775808}"#)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let got = s
        .admin("GET", "/v1/collections/things/records/big")
        .send()
        .await;
    assert!(
        got.text().contains("18446744073709551615"),
        "{}",
        got.text()
    );
}

#[tokio::test]
async fn two_authorization_headers_are_a_400() {
    let s = common::start(&[]).await;
    let reader = s.token(json!({"scopes": ["read"]})).await;
    let r = s
        .call("GET", "/v1/collections")
        .token(&reader)
        .header("authorization", &format!("Bearer {}", common::ADMIN))
        .send()
        .await;
    r.assert_error(400, "invalid_header");
}

#[tokio::test]
async fn a_new_tokens_secret_is_never_cached_and_its_answer_has_an_etag() {
    let s = common::start(&[]).await;
    let r = s
        .admin("POST", "/v1/tokens")
        .json(json!({"scopes": ["read"]}))
        .send()
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(r.header("etag").starts_with('"'));
    assert!(r.json()["token"].as_str().is_some());
}

#[tokio::test]
async fn the_bootstrap_admin_cannot_be_revoked_over_the_api_nor_rate_limited() {
    let s = common::start(&["--rate-limit", "2/1m"]).await;
    let other_admin = s.token(json!({"scopes": ["admin"]})).await;
    let r = s
        .call("DELETE", "/v1/tokens/admin")
        .token(&other_admin)
        .send()
        .await;
    r.assert_error(409, "bootstrap_token");
    // Past the default limit of 2 a minute, the bootstrap admin still gets through.
    for _ in 0..5 {
        let r = s.admin("GET", "/v1/admin/maintenance").send().await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Other admin tokens are limited like any token.
    let mut limited = false;
    for _ in 0..3 {
        let r = s
            .call("GET", "/v1/admin/maintenance")
            .token(&other_admin)
            .send()
            .await;
        limited |= r.status == 429;
    }
    assert!(limited);
}

#[tokio::test]
async fn an_import_reports_each_line_by_its_number_and_a_repeated_id_as_failed() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "people"})).await;
    let ndjson = "{\"id\": \"p1\", \"name\": \"Ann\"}\n\n\n{\"id\": \"p1\", \"name\": \"Ann\"}\nnot json\n{\"name\": \"Bo\"}\n";
    let r = s
        .admin("POST", "/v1/collections/people/imports")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await;
    assert_eq!(r.status, 202);
    let result = finished_job(&s, r.header("location")).await;
    assert_eq!(result["imported"], 2, "{result}");
    assert_eq!(result["failed_count"], 2, "{result}");
    // Lines as an editor numbers them: the repeated id is line 4, the bad JSON line 5.
    assert_eq!(result["failed"][0]["line"], 4, "{result}");
    assert_eq!(result["failed"][0]["errors"][0]["pointer"], "/id");
    assert_eq!(result["failed"][1]["line"], 5, "{result}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    // A public route that is rate limited (probes such as /health are not).
    async fn send(s: &common::Server, forwarded: &str) -> common::Reply {
        s.call("GET", "/problems")
            .header("x-forwarded-for", forwarded)
            .send()
            .await
    }
    // The proxy (here, the test itself on 127.0.0.1) is trusted: the
    // addresses it reports are the clients.
    let s = common::start(&["--rate-limit", "1/1m", "--trusted-proxy", "127.0.0.1/32"]).await;
    assert_eq!(send(&s, "198.51.100.1").await.status, 200);
    assert_eq!(send(&s, "198.51.100.2").await.status, 200);
    send(&s, "198.51.100.1")
        .await
        .assert_error(429, "rate_limited");
    // Untrusted, a forwarded address is ignored: every request is the peer's.
    let s = common::start(&["--rate-limit", "1/1m"]).await;
    assert_eq!(send(&s, "198.51.100.1").await.status, 200);
    send(&s, "198.51.100.2")
        .await
        .assert_error(429, "rate_limited");
}
