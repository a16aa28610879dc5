//! Helpers for an application's own tests: send a request through the app
//! (as a client at some address), and assert that an error keeps the
//! contract: its status, its `code`, a body in one of the three formats,
//! `Cache-Control: no-store`, a request id, and the headers its status
//! requires.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::test::TestClient;
//! use verdict::{Contract, Preset};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let app = Contract::new(Preset::standard()).apply(Router::new().route("/todos", get(|| async { "[]" })));
//! let client = TestClient::new(app);
//! client.get("/todos").send().await.assert_status(200);
//! client.delete("/todos").send().await.assert_problem(405, "method_not_allowed");
//! client.get("/nope").send().await.assert_problem(404, "not_found");
//! # });
//! ```

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::stack::ContractService;

/// An app under test, and the address its requests come from.
#[derive(Clone, Debug)]
pub struct TestClient {
    app: ContractService,
    peer: SocketAddr,
}

impl TestClient {
    /// Requests to `app`, from `127.0.0.1:40000`.
    pub fn new(app: ContractService) -> Self {
        TestClient {
            app,
            peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        }
    }

    /// Requests from `peer` instead (its `ConnectInfo`).
    pub fn from_addr(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// A request with any method.
    pub fn request(&self, method: Method, uri: &str) -> TestRequest {
        TestRequest {
            client: self.clone(),
            builder: Request::builder().method(method).uri(uri),
            body: Bytes::new(),
        }
    }

    /// `GET uri`.
    pub fn get(&self, uri: &str) -> TestRequest {
        self.request(Method::GET, uri)
    }

    /// `POST uri`.
    pub fn post(&self, uri: &str) -> TestRequest {
        self.request(Method::POST, uri)
    }

    /// `PUT uri`.
    pub fn put(&self, uri: &str) -> TestRequest {
        self.request(Method::PUT, uri)
    }

    /// `PATCH uri`.
    pub fn patch(&self, uri: &str) -> TestRequest {
        self.request(Method::PATCH, uri)
    }

    /// `DELETE uri`.
    pub fn delete(&self, uri: &str) -> TestRequest {
        self.request(Method::DELETE, uri)
    }
}

/// A request being built.
#[derive(Debug)]
pub struct TestRequest {
    client: TestClient,
    builder: http::request::Builder,
    body: Bytes,
}

impl TestRequest {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (and its `Content-Type`).
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("values serialize"))
    }

    /// A body as it is (and its `Content-Length`).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.builder = self.builder.header("content-length", self.body.len());
        self
    }

    /// Sends it through the app.
    pub async fn send(self) -> TestResponse {
        let mut req = self
            .builder
            .body(Body::from(self.body))
            .expect("a valid request");
        req.extensions_mut().insert(ConnectInfo(self.client.peer));
        let Ok(res) = self.client.app.oneshot(req).await;
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .expect("the body can be read")
            .to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// What the app answered.
#[derive(Clone, Debug)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value (panics if it is absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {} {:?}", self.status, self.headers))
    }

    /// Asserts the status.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts an error that keeps the contract: this status and `code`, a
    /// body in one of the three formats with the status in it, the content
    /// type of that format, `Cache-Control: no-store`, `X-Request-Id`, and
    /// the headers the status requires (`Allow`, `Retry-After`...).
    pub fn assert_problem(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.header("cache-control"), "no-store");
        assert!(
            self.headers.contains_key(crate::request_id::HEADER),
            "no X-Request-Id"
        );
        if let Some(missing) = crate::status::missing_header(self.status, &self.headers) {
            panic!("{} lacks the {} header", self.status, missing.name());
        }
        let content_type = self.header("content-type");
        let body = self.json();
        let (got_code, got_status) = match content_type {
            "application/problem+json" => (
                body["code"].as_str(),
                body["status"].as_u64().map(|s| s.to_string()),
            ),
            "application/vnd.api+json" => (
                body["errors"][0]["code"].as_str(),
                body["errors"][0]["status"].as_str().map(str::to_string),
            ),
            "application/json" => (body["code"].as_str(), Some(status.to_string())),
            other => panic!("{other} is none of the three error formats"),
        };
        assert_eq!(got_code, Some(code), "{body}");
        assert_eq!(
            got_status.as_deref(),
            Some(status.to_string().as_str()),
            "{body}"
        );
        self
    }
}
