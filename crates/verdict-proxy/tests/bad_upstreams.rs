//! The gateway in front of deliberately bad upstreams, over real sockets:
//! each answer's status, headers and body, and that the upstream received
//! nothing for the requests the gateway refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;
use common::{closed_port, gateway};

/// How a fake upstream answers.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    Html500,
    Hang,
    ResetBeforeHead,
    ResetMidBody,
    Garbage,
    SlowBody,
    Problem404,
    Plain429,
    /// 200 with the request's head as the body, and hop-by-hop fields of its own.
    Echo,
}

/// A fake upstream: its base URL, and the request heads it received.
struct Fake {
    base: String,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn fake(kind: Upstream) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                // Keep-alive, as real upstreams are: one answer per request
                // until the client closes.
                loop {
                    let head = read_head(&mut conn).await;
                    if head.is_empty() {
                        return;
                    }
                    log.lock().unwrap().push(head.clone());
                    let reply = |status: &str, headers: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    match kind {
                        Upstream::Html500 => {
                            let r = reply(
                                "500 Internal Server Error",
                                "Content-Type: text/html\r\n",
                                "<h1>Traceback at /srv/app.py line 3</h1>",
                            );
                            let _ = conn.write_all(r.as_bytes()).await;
                        }
                        Upstream::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                        Upstream::ResetBeforeHead => {
                            let _ = conn.set_zero_linger();
                            drop(conn);
                            return;
                        }
                        Upstream::ResetMidBody => {
                            let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[1,2,3")
                            .await;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            let _ = conn.set_zero_linger();
                            drop(conn);
                            return;
                        }
                        Upstream::Garbage => {
                            let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
                        }
                        Upstream::SlowBody => {
                            let _ = conn
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n[1")
                            .await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        Upstream::Problem404 => {
                            let body = r#"{"type":"/problems/thing-not-found","title":"Thing not found","status":404,"detail":"No thing 7.","code":"thing_not_found"}"#;
                            let r = reply(
                                "404 Not Found",
                                "Content-Type: application/problem+json\r\n",
                                body,
                            );
                            let _ = conn.write_all(r.as_bytes()).await;
                        }
                        Upstream::Plain429 => {
                            let r = reply("429 Too Many Requests", "Content-Type: text/plain\r\nRetry-After: 7\r\nRateLimit-Remaining: 0\r\n", "slow down");
                            let _ = conn.write_all(r.as_bytes()).await;
                        }
                        Upstream::Echo => {
                            let body = serde_json::to_string(&head).unwrap();
                            let r = reply(
                            "200 OK",
                            "Content-Type: application/json\r\nConnection: keep-alive, x-upstream-secret\r\nX-Upstream-Secret: 1\r\nKeep-Alive: timeout=5\r\n",
                            &body,
                        );
                            let _ = conn.write_all(r.as_bytes()).await;
                        }
                    }
                    if !matches!(
                        kind,
                        Upstream::Html500
                            | Upstream::Problem404
                            | Upstream::Plain429
                            | Upstream::Echo
                    ) {
                        return;
                    }
                }
            });
        }
    });
    Fake { base, seen }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, String>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(self.body.as_ref().expect("a whole body")).expect("JSON")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(self.body.as_ref().expect("a whole body")).into_owned()
    }
}

async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &'static [u8]) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(req.body(Full::new(Bytes::from_static(body))).unwrap()),
    )
    .await
    .expect("the gateway answers in time")
    .expect("a response head");
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .map_err(|_| "the body never ended".to_string())
        .and_then(|r| r.map(|c| c.to_bytes()).map_err(|e| e.to_string()));
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn assert_problem(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    let body = r.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(r.headers["cache-control"], "no-store");
    let text = r.text();
    for internal in ["127.0.0.1", "refused", "os error", "Traceback", "/srv/"] {
        assert!(!text.contains(internal), "{internal} leaked: {text}");
    }
}

#[tokio::test]
async fn an_html_500_becomes_a_problem_with_the_same_status_and_nothing_of_the_page() {
    let up = fake(Upstream::Html500).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 500, "internal_error");
}

#[tokio::test]
async fn a_conforming_problem_from_the_upstream_passes_untouched() {
    let up = fake(Upstream::Problem404).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send("GET", &format!("{gw}/things/7"), &[], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "thing_not_found");
    assert_eq!(r.json()["detail"], "No thing 7.");
}

#[tokio::test]
async fn a_plain_429_is_rewritten_keeping_retry_after_and_its_ratelimit_fields() {
    let up = fake(Upstream::Plain429).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 429, "too_many_requests");
    // (the catalog's code for a bare 429)
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.headers["ratelimit-remaining"], "0");
    // Under seed-001, the preset's 420.
    let gw = gateway(&["--upstream", &up.base, "--preset", "seed-001"]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_eq!(r.status.as_u16(), 420);
    assert_eq!(r.headers["retry-after"], "7");
}

#[tokio::test]
async fn a_refused_connection_is_502_upstream_unreachable() {
    let gw = gateway(&["--upstream", &closed_port().await]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 502, "upstream_unreachable");
}

#[tokio::test]
async fn a_hanging_upstream_is_504_upstream_timeout() {
    let up = fake(Upstream::Hang).await;
    let gw = gateway(&["--upstream", &up.base, "--upstream-timeout", "300ms"]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 504, "upstream_timeout");
}

#[tokio::test]
async fn a_reset_before_the_head_and_garbage_bytes_are_502_invalid_response() {
    for kind in [Upstream::ResetBeforeHead, Upstream::Garbage] {
        let up = fake(kind).await;
        let gw = gateway(&["--upstream", &up.base]).await;
        let r = send(
            "POST",
            &format!("{gw}/things"),
            &[("content-type", "application/json")],
            b"{}",
        )
        .await;
        assert_problem(&r, 502, "upstream_invalid_response");
    }
}

#[tokio::test]
async fn a_failure_after_the_head_resets_the_stream_rather_than_sending_a_second_status() {
    let up = fake(Upstream::ResetMidBody).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_err(),
        "a truncated body must not look whole: {:?}",
        r.body
    );

    let up = fake(Upstream::SlowBody).await;
    let gw = gateway(&["--upstream", &up.base, "--upstream-timeout", "300ms"]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_err(), "a stalled body is cut: {:?}", r.body);
}

#[tokio::test]
async fn refused_requests_never_reach_the_upstream() {
    let up = fake(Upstream::Echo).await;
    let gw = gateway(&[
        "--upstream",
        &up.base,
        "--retired",
        "/v0",
        "--max-body",
        "16",
    ])
    .await;
    let r = send("BREW", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 501, "unknown_method");
    let r = send("GET", &format!("{gw}/v0/things"), &[], b"").await;
    assert_eq!(r.status, 410);
    let r = send(
        "POST",
        &format!("{gw}/things"),
        &[("content-type", "application/json")],
        b"[1,2,3,4,5,6,7,8,9,10]",
    )
    .await;
    assert_problem(&r, 413, "content_too_large");
    let long = format!("{gw}/things?q={}", "a".repeat(20_000));
    let r = send("GET", &long, &[], b"").await;
    assert_eq!(r.status, 414);
    assert!(
        up.seen.lock().unwrap().is_empty(),
        "the upstream saw {:?}",
        up.seen.lock().unwrap()
    );
    // And what is not refused goes through.
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn hop_by_hop_fields_are_stripped_both_ways_and_via_forwarded_and_the_request_id_added() {
    let up = fake(Upstream::Echo).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send(
        "GET",
        &format!("{gw}/things?x=1"),
        &[
            ("connection", "x-client-secret"),
            ("x-client-secret", "s"),
            ("te", "trailers"),
            ("x-request-id", "req-42"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    let upstream_saw = r.json().as_str().unwrap().to_ascii_lowercase();
    assert!(
        upstream_saw.starts_with("get /things?x=1 http/1.1"),
        "{upstream_saw}"
    );
    assert!(!upstream_saw.contains("x-client-secret"), "{upstream_saw}");
    assert!(!upstream_saw.contains("\r\nte:"), "{upstream_saw}");
    assert!(upstream_saw.contains("via: 1.1 verdict"), "{upstream_saw}");
    assert!(
        upstream_saw.contains("forwarded: for=127.0.0.1;proto=http"),
        "{upstream_saw}"
    );
    assert!(
        upstream_saw.contains("x-request-id: req-42"),
        "{upstream_saw}"
    );
    // And on the way back.
    assert!(!r.headers.contains_key("x-upstream-secret"));
    assert!(!r.headers.contains_key("keep-alive"));
    assert_eq!(r.headers["via"], "1.1 verdict");
    assert_eq!(r.headers["x-request-id"], "req-42");
}

#[tokio::test]
async fn with_normalize_off_every_upstream_answer_passes_as_it_is() {
    let up = fake(Upstream::Html500).await;
    let gw = gateway(&["--upstream", &up.base, "--normalize", "off"]).await;
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.headers["content-type"], "text/html");
    assert!(r.text().contains("Traceback"));
}

#[tokio::test]
async fn a_down_upstream_is_rested_and_with_none_left_the_answer_is_503_no_healthy_upstream() {
    let good = fake(Upstream::Echo).await;
    let down = closed_port().await;
    let gw = gateway(&[
        "--upstream",
        &down,
        "--upstream",
        &good.base,
        "--upstream-rest",
        "5s",
    ])
    .await;
    // GETs that meet the refusing upstream are sent on to the other.
    for _ in 0..6 {
        let r = send("GET", &format!("{gw}/things"), &[], b"").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(good.seen.lock().unwrap().len(), 6);
    // A POST with a body is never sent twice: while the down one is rested,
    // POSTs all reach the good one.
    let r = send(
        "POST",
        &format!("{gw}/things"),
        &[("content-type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(r.status, 200);

    let gw = gateway(&["--upstream", &closed_port().await, "--upstream-rest", "5s"]).await;
    for _ in 0..3 {
        let r = send("GET", &format!("{gw}/things"), &[], b"").await;
        assert_problem(&r, 502, "upstream_unreachable");
    }
    let r = send("GET", &format!("{gw}/things"), &[], b"").await;
    assert_problem(&r, 503, "no_healthy_upstream");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");
}

#[tokio::test]
async fn the_gateways_problem_types_are_documented_under_its_own_prefix() {
    let up = fake(Upstream::Echo).await;
    let gw = gateway(&["--upstream", &up.base]).await;
    let r = send(
        "GET",
        &format!("{gw}/.verdict/problems/upstream-timeout"),
        &[("accept", "application/json")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], 504);
    assert!(up.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn with_a_document_unknown_paths_are_404_wrong_methods_405_and_media_types_checked() {
    let up = fake(Upstream::Echo).await;
    let dir = std::env::temp_dir().join(format!("verdict-proxy-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("openapi.json");
    std::fs::write(
        &doc,
        serde_json::json!({"openapi": "3.1.0", "paths": {
            "/things": {
                "get": {"responses": {"200": {"content": {"application/json": {}}}}},
                "post": {"requestBody": {"content": {"application/json": {}}}, "responses": {"201": {}}},
            },
            "/things/{id}": {"get": {"responses": {"200": {"content": {"application/json": {}}}}}, "delete": {}},
        }})
        .to_string(),
    )
    .unwrap();
    let gw = gateway(&["--upstream", &up.base, "--openapi", doc.to_str().unwrap()]).await;

    let r = send("GET", &format!("{gw}/nothing/here"), &[], b"").await;
    assert_problem(&r, 404, "not_found");
    let r = send(
        "PUT",
        &format!("{gw}/things"),
        &[("content-type", "application/json")],
        b"{}",
    )
    .await;
    assert_problem(&r, 405, "method_not_allowed");
    let allow = r.headers["allow"].to_str().unwrap().to_string();
    assert!(
        allow.contains("GET") && allow.contains("POST") && !allow.contains("PUT"),
        "{allow}"
    );
    let r = send(
        "GET",
        &format!("{gw}/things"),
        &[("accept", "text/html")],
        b"",
    )
    .await;
    assert_problem(&r, 406, "not_acceptable");
    let r = send(
        "POST",
        &format!("{gw}/things"),
        &[("content-type", "text/plain")],
        b"hello",
    )
    .await;
    assert_problem(&r, 415, "unsupported_media_type");
    assert_eq!(r.headers["accept-post"], "application/json");
    assert!(
        up.seen.lock().unwrap().is_empty(),
        "{:?}",
        up.seen.lock().unwrap()
    );

    // What the document has goes through.
    let r = send("GET", &format!("{gw}/things/7"), &[], b"").await;
    assert_eq!(r.status, 200);
    let r = send("DELETE", &format!("{gw}/things/7"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.seen.lock().unwrap().len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_readiness_probe_reports_the_upstreams_and_is_503_when_all_rest() {
    let good = fake(Upstream::Echo).await;
    let down = closed_port().await;
    let gw = gateway(&[
        "--upstream",
        &down,
        "--upstream",
        &good.base,
        "--upstream-rest",
        "5s",
    ])
    .await;
    let r = send("GET", &format!("{gw}/.verdict/health"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstreams"].as_array().unwrap().len(), 2);
    for _ in 0..4 {
        send("GET", &format!("{gw}/things"), &[], b"").await;
    }
    let r = send("GET", &format!("{gw}/.verdict/health"), &[], b"").await;
    assert_eq!(r.status, 200);
    let states: Vec<String> = r.json()["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["resting", "ok"], "{}", r.text());
    assert!(
        good.seen
            .lock()
            .unwrap()
            .iter()
            .all(|h| !h.contains(".verdict")),
        "the probe is the gateway's own"
    );

    let gw = gateway(&["--upstream", &closed_port().await, "--upstream-rest", "5s"]).await;
    for _ in 0..3 {
        send("GET", &format!("{gw}/things"), &[], b"").await;
    }
    let r = send("GET", &format!("{gw}/.verdict/health"), &[], b"").await;
    assert_problem(&r, 503, "no_healthy_upstream");
    assert!(r.headers.contains_key("retry-after"));
}

/// An upstream speaking HTTPS with the self-signed certificate in
/// `tests/tls/` (made for these tests only: `CN=verdict test upstream`,
/// `subjectAltName=IP:127.0.0.1`); it answers every request 200 `{"tls":true}`.
async fn tls_upstream() -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/upstream.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/upstream.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"tls":true}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    base
}

#[tokio::test]
async fn an_https_upstream_is_verified_and_a_tls_failure_is_502_upstream_unreachable() {
    let upstream = tls_upstream().await;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/upstream.crt");
    let gw = gateway(&["--upstream", &upstream, "--upstream-ca", ca]).await;
    let r = send("GET", &format!("{gw}/x"), &[], b"").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["tls"], true);

    // Without the certificate trusted, the handshake fails: 502, and the
    // body says nothing of certificates.
    let gw = gateway(&["--upstream", &upstream]).await;
    let r = send("GET", &format!("{gw}/x"), &[], b"").await;
    assert_problem(&r, 502, "upstream_unreachable");
    assert!(
        !r.text().to_lowercase().contains("certificate"),
        "{}",
        r.text()
    );

    // https:// to a server that speaks plain HTTP (it answers the
    // ClientHello with a 400, as plain servers do): the handshake fails too.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let gw = gateway(&["--upstream", &https]).await;
    assert_problem(
        &send("GET", &format!("{gw}/x"), &[], b"").await,
        502,
        "upstream_unreachable",
    );
}
