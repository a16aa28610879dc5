//! `verdict check` against an upstream in json-server's mould (HTML 404s,
//! no 405 or 501, no `Cache-Control` on errors, `If-Match` ignored, any
//! body taken): red on its own, green behind the gateway with the
//! upstream's description (docs/check-examples/json-server.openapi.json, the
//! document `bench/check-peers.sh` gives the real json-server).

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use verdict_check::{audit, report, Options};

mod common;
use common::gateway;

/// json-server 0.17's answers, as far as the checker's probes go.
async fn sloppy(req: Request) -> Response {
    let weak_etag = [("etag", "W/\"1f-abc\"")];
    match (req.method().clone(), req.uri().path()) {
        (Method::GET | Method::HEAD, "/books") => {
            (weak_etag, axum::Json(json!([{"id": 1, "title": "Dune"}]))).into_response()
        }
        (Method::POST, "/books") => (
            StatusCode::CREATED,
            [("location", "/books/2")],
            axum::Json(json!({"id": 2})),
        )
            .into_response(),
        (Method::GET | Method::HEAD, "/books/1") => {
            (weak_etag, axum::Json(json!({"id": 1, "title": "Dune"}))).into_response()
        }
        (Method::PUT | Method::PATCH | Method::DELETE, "/books/1") => {
            axum::Json(json!({"id": 1})).into_response()
        }
        (method, path) => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html; charset=utf-8")],
            format!("<pre>Cannot {method} {path}</pre>"),
        )
            .into_response(),
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn check(base: &str) -> (bool, String) {
    let options = Options::new(base, "rfc9110")
        .unwrap()
        .path("GET,POST /books")
        .path("GET,PUT,PATCH,DELETE /books/1")
        .writes(true)
        .creates(true);
    let (findings, summary) = audit(options).await.unwrap();
    (summary.ok, report::table(&findings, &summary, false))
}

#[tokio::test]
async fn the_checker_is_red_on_a_sloppy_upstream_and_green_through_the_gateway() {
    let upstream = serve(axum::Router::new().fallback(sloppy)).await;
    let (ok, table) = check(&upstream).await;
    assert!(!ok, "the sloppy upstream alone breaks musts:\n{table}");
    for rule in ["method-not-allowed-405", "precondition-412"] {
        assert!(table.contains(rule), "{rule} fails alone:\n{table}");
    }

    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(
        &doc,
        include_str!("../../../docs/check-examples/json-server.openapi.json"),
    )
    .unwrap();
    let gateway = gateway(&["--upstream", &upstream, "--openapi", doc.to_str().unwrap()]).await;
    let (ok, table) = check(&gateway).await;
    assert!(
        ok,
        "through the gateway nothing a must says is broken:\n{table}"
    );
}
