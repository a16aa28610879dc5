//! `verdict::server` on a real socket: header, idle and write timeouts, the
//! connection cap, 408 for bodies that stop arriving, and hyper's own
//! refusals answered in the contract's format.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::{get, post};
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use verdict::server::{ConnectionLimits, Server};
use verdict::{Contract, Json, Preset};

fn routes() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|Json(v): Json<serde_json::Value>| async move { axum::Json(v) }),
        )
        .route(
            // 64 MiB, produced as it is sent: only a reading client gets it all.
            "/big",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 1 << 20]);
                let stream = futures_util::stream::iter(
                    (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(stream)
            }),
        )
}

async fn serve_with(contract: Contract, limits: ConnectionLimits, preset: Preset) -> SocketAddr {
    let app = contract.apply(routes());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new(listener, app)
            .limits(limits)
            .preset(preset)
            .run(),
    );
    addr
}

fn short() -> ConnectionLimits {
    ConnectionLimits::default()
        .header_timeout(Duration::from_millis(400))
        .idle_timeout(Duration::from_millis(1500))
        .write_timeout(Duration::from_millis(500))
}

async fn serve(limits: ConnectionLimits) -> SocketAddr {
    serve_with(
        Contract::new(Preset::standard()),
        limits,
        Preset::standard(),
    )
    .await
}

/// Reads until the server closes the connection (or `within` passes: `None`).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn split(raw: &[u8]) -> (u16, String, serde_json::Value) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let addr = serve(short()).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut silent, Duration::from_secs(5))
        .await
        .expect("the server closes it");
    assert!(got.is_empty(), "nothing was asked, nothing is answered");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_request_head_that_stops_arriving_gets_408_and_the_connection_closes() {
    let addr = serve(short()).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        .await
        .unwrap();
    let raw = read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .expect("closed after the answer");
    let (status, head, body) = split(&raw);
    assert_eq!(status, 408, "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body["code"], "request_timeout");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_lasts_the_idle_timeout_not_the_header_timeout() {
    let addr = serve(short()).await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.write_all(request).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Longer than the header timeout, shorter than the idle timeout: still open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    conn.write_all(request).await.unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then idle past the idle timeout: closed.
    let started = Instant::now();
    let rest = read_until_closed(&mut conn, Duration::from_secs(5))
        .await
        .expect("closed when idle");
    assert!(rest.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let addr = serve(short()).await;
    let mut reader = TcpStream::connect(addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read while the server writes: its writes stall, then it gives up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = read_until_closed(&mut reader, Duration::from_secs(10))
        .await
        .expect("the server closed the connection");
    assert!(
        got.len() < 32 << 20,
        "the server gave up long before the 64 MiB were sent ({} bytes came)",
        got.len()
    );
}

#[tokio::test]
async fn past_the_connection_cap_idle_connections_make_room_for_new_clients() {
    let limits = short()
        .header_timeout(Duration::from_secs(30))
        .idle_timeout(Duration::from_secs(30))
        .max_connections(4);
    let addr = serve(limits).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let started = Instant::now();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut client, Duration::from_secs(5))
        .await
        .expect("served, though 8 idle sockets came first");
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, serde_json::Value) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    let raw = read_until_closed(&mut conn, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    split(&raw)
}

#[tokio::test]
async fn requests_hyper_refuses_get_the_contracts_body_and_mapping() {
    let addr = serve(short()).await;
    let many: String = (0..1200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, head, body) = raw_exchange(
        addr,
        format!("GET /hello HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431);
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("x-request-id: "), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert_eq!(body["status"], 431);

    let long = "a".repeat(70_000);
    let (status, _, body) = raw_exchange(
        addr,
        format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(body["code"], "uri_too_long");

    let (status, _, body) = raw_exchange(addr, b"GARBAGE\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "malformed_request");

    // Over the header section's size (32 KiB) in few fields: the layer answers.
    let some: String = (0..40)
        .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(1000)))
        .collect();
    let (status, head, body) = raw_exchange(
        addr,
        format!("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{some}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431, "{head}");
    assert!(
        body["detail"].as_str().unwrap().contains("the limit is"),
        "{body}"
    );
    assert_eq!(body["instance"], "/hello");
}

#[tokio::test]
async fn a_strict_preset_never_sends_the_codes_it_lacks_even_for_hypers_refusals() {
    let preset = Preset::by_name("seed-004").unwrap();
    let addr = serve_with(Contract::new(preset.clone()), short(), preset).await;
    let long = "a".repeat(70_000);
    let (status, head, body) = raw_exchange(
        addr,
        format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{head}");
    assert_eq!(body["status"], 400);
    let many: String = (0..1200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, _, _) = raw_exchange(
        addr,
        format!("GET /hello HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_at_once_and_frees_its_slot() {
    let contract = Contract::new(Preset::standard())
        .max_in_flight(1)
        .timeout(Duration::from_secs(30))
        .body_timeout(Some(Duration::from_millis(300)));
    let addr = serve_with(contract, ConnectionLimits::default(), Preset::standard()).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": ",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The one slot is held by the slow body: another request is shed.
    let (status, _, _) = raw_exchange(
        addr,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 503);
    let started = Instant::now();
    let raw = read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    let (status, head, body) = split(&raw);
    assert_eq!(status, 408, "{head}");
    assert_eq!(body["code"], "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
    let (status, _, _) = raw_exchange(
        addr,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "the slot came back");
}

#[tokio::test]
async fn a_body_still_trickling_at_the_deadline_is_408_not_504() {
    let contract = Contract::new(Preset::standard())
        .timeout(Duration::from_millis(600))
        .body_timeout(Some(Duration::from_secs(5)));
    let addr = serve_with(contract, ConnectionLimits::default(), Preset::standard()).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    )
    .await
    .unwrap();
    let trickle = tokio::spawn(async move {
        // A byte every 100 ms (never idle for the body timeout), stopping
        // short of the 100 promised; the deadline comes while it waits.
        for _ in 0..5 {
            slow.write_all(b" ").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut raw)).await;
        raw
    });
    let raw = trickle.await.unwrap();
    let (status, head, _) = split(&raw);
    assert_eq!(status, 408, "{head}");
}
