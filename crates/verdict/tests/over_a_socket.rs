//! The stack served by hyper on a real socket, driven the way a client would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{Contract, Preset};

async fn boom() -> &'static str {
    panic!("handler bug")
}

async fn serve(contract: Contract) -> SocketAddr {
    let routes = Router::new()
        .route(
            "/hello",
            get(|| async { axum::Json(serde_json::json!({"hello": "world"})) }),
        )
        .route("/boom", get(boom))
        .route(
            "/id",
            get(|id: verdict::request_id::RequestId| async move { id.0 }),
        );
    let app = contract.apply(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    addr
}

/// One HTTP/1.1 exchange on a fresh connection: (status, raw head, body).
async fn exchange(addr: SocketAddr, request_line: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{request_line} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn anonymous_clients_are_limited_by_address() {
    let contract = Contract::new(Preset::standard()).rate_limit(
        Arc::new(InMemoryStore::new()),
        Some(Quota::new(2, Duration::from_secs(60))),
    );
    let addr = serve(contract).await;
    let (s1, h1, _) = exchange(addr, "GET /hello").await;
    assert_eq!(s1, 200);
    assert!(h1.contains("ratelimit-remaining: 1"), "{h1}");
    let (s2, _, _) = exchange(addr, "GET /hello").await;
    assert_eq!(s2, 200);
    let (s3, h3, body) = exchange(addr, "GET /hello").await;
    assert_eq!(s3, 429);
    assert!(h3.contains("retry-after: 30"), "{h3}");
    assert!(h3.contains("content-type: application/problem+json"));
    assert!(body.contains("\"code\":\"rate_limited\""));
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_keeps_serving() {
    let addr = serve(Contract::new(Preset::standard())).await;
    let panics = (0..8).map(|_| tokio::spawn(exchange(addr, "GET /boom")));
    for p in panics {
        let (status, head, body) = p.await.unwrap();
        assert_eq!(status, 500);
        assert!(head.contains("cache-control: no-store"));
        assert!(
            body.contains("incident_id") && !body.contains("handler bug"),
            "{body}"
        );
    }
    let (status, head, _) = exchange(addr, "GET /hello").await;
    assert_eq!(status, 200);
    assert!(head.contains("etag: \""), "{head}");
    assert!(head.contains("x-request-id: "), "{head}");
}

#[tokio::test]
async fn handlers_see_the_request_id_the_client_gets() {
    let addr = serve(Contract::new(Preset::standard())).await;
    let (status, head, body) = exchange(addr, "GET /id").await;
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("x-request-id: {body}")),
        "{head} / {body}"
    );
    assert_eq!(body.len(), 36, "a UUID: {body}");
}

#[tokio::test]
async fn served_as_it_is_the_contract_gives_handlers_the_peers_address() {
    // `axum::serve(listener, app)` with no make-service: the cheaper path
    // (no router around the contract) keeps ConnectInfo, so rate limits of
    // anonymous callers still key on the address.
    let routes = Router::new().route(
        "/peer",
        get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            },
        ),
    );
    let app = Contract::new(Preset::standard())
        .rate_limit(
            Arc::new(InMemoryStore::new()),
            Some(Quota::new(1, Duration::from_secs(60))),
        )
        .apply(routes);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (status, head, body) = exchange(addr, "GET /peer").await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "127.0.0.1");
    assert!(head.contains("x-request-id: "), "{head}");
    let (status, head, _) = exchange(addr, "GET /peer").await;
    assert_eq!(status, 429, "the address's quota of one is spent: {head}");
}
