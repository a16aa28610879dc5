//! A small service built on the whole contract stack, and a client for it.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::{get, post, put};
use axum::Router;
use futures_util::future::BoxFuture;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::ServiceExt;
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::conditional::{EntityTag, Preconditions, Validators};
use verdict::headers::Upgrade;
use verdict::maintenance::MaintenanceSwitch;
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, Json, Preset, Query};

pub struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            Ok(match token {
                "admin-token" => Some(Principal::new("admin", ["admin", "read", "write"])),
                "reader-token" => Some(Principal::new("reader", ["read"])),
                "writer-token" => Some(Principal::new("writer", ["read", "write"])),
                "limited-reader-token" => Some(
                    Principal::new("limited-reader", ["read"])
                        .with_rate_limit(Quota::new(1, Duration::from_secs(60))),
                ),
                "limited-token" => Some(
                    Principal::new("limited", ["read", "write"])
                        .with_rate_limit(Quota::new(2, Duration::from_secs(60))),
                ),
                _ => None,
            })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub price: u32,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub limit: Option<u16>,
}

fn current() -> Validators {
    Validators::new(Some(EntityTag::strong("v1")), None)
}

async fn boom() -> &'static str {
    panic!("secret panic text at /src/x.rs")
}

async fn show(Path(id): Path<u32>) -> Result<axum::Json<Value>, ApiError> {
    if id != 1 {
        return Err(ApiError::not_found(format!(
            "The record identified by {id} could not be found."
        ))
        .with_code("record_not_found")
        .with_title("Record not found"));
    }
    Ok(axum::Json(json!({"id": 1, "name": "first", "price": 3})))
}

/// Keeps the contract's order: 400 syntax, 404 missing, 412, 422, 409.
async fn replace(
    Path(id): Path<u32>,
    pre: Preconditions,
    Json(body): Json<Value>,
) -> Result<axum::Json<Value>, ApiError> {
    if id != 1 {
        return Err(ApiError::not_found(format!(
            "The record identified by {id} could not be found."
        )));
    }
    pre.check_write(Some(&current()))?;
    let item: Item = verdict::extract::from_value(body)?;
    if item.name == "taken" {
        return Err(ApiError::conflict("The name `taken` is in use.").with_code("name_taken"));
    }
    Ok(axum::Json(
        json!({"id": id, "name": item.name, "price": item.price}),
    ))
}

async fn create(Json(item): Json<Item>) -> impl axum::response::IntoResponse {
    (
        StatusCode::CREATED,
        [(header::LOCATION, "/items/2")],
        axum::Json(json!({"id": 2, "name": item.name})),
    )
}

async fn list(
    Query(q): Query<ListQuery>,
    negotiated: Option<axum::Extension<verdict::negotiate::Negotiated>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let n = q.limit.unwrap_or(10);
    match negotiated.as_ref().map(|n| n.0.media_type()) {
        Some("text/csv") => {
            ([(header::CONTENT_TYPE, "text/csv")], format!("id\n{n}\n")).into_response()
        }
        _ => (
            [
                (header::CACHE_CONTROL, "max-age=60"),
                (header::VARY, "Accept"),
            ],
            axum::Json(json!({"items": [], "limit": n})),
        )
            .into_response(),
    }
}

/// Answers with catalog codes no other route produces, the way a handler would.
async fn echo(Path(code): Path<u16>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let located = |status: u16| {
        (
            StatusCode::from_u16(status).unwrap(),
            [(header::LOCATION, "/items/1")],
            axum::Json(json!({"see": "/items/1"})),
        )
            .into_response()
    };
    match code {
        202 | 302 | 303 => located(code),
        207 | 300 => (
            StatusCode::from_u16(code).unwrap(),
            axum::Json(json!({"results": []})),
        )
            .into_response(),
        414 => ApiError::uri_too_long(2048).into_response(),
        428 => ApiError::precondition_required("Send If-Match.").into_response(),
        431 => ApiError::header_fields_too_large("Too many cookies.").into_response(),
        502 => ApiError::bad_gateway("upstream refused").into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

pub struct Stack {
    pub app: verdict::ContractService,
    pub maintenance: MaintenanceSwitch,
}

pub fn stack(preset: Preset) -> Stack {
    stack_with(Contract::new(preset))
}

pub fn stack_with(contract: Contract) -> Stack {
    let maintenance = MaintenanceSwitch::new();
    let nested = Router::new().route("/thing", get(|| async { "nested" }).delete(|| async { "" }));
    let routes = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/items", get(list).post(create))
        .route("/items/{id}", get(show).put(replace))
        .route(
            "/imports",
            post(|body: String| async move { body.len().to_string() }),
        )
        .route("/panic", get(boom))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "late"
            }),
        )
        .route("/bare-conflict", put(|| async { StatusCode::CONFLICT }))
        .route("/rejected", post(|_: axum::Json<Item>| async { "never" }))
        .route("/echo/{code}", get(echo))
        .nest("/nested", nested);
    let app = contract
        .authenticate(Arc::new(Tokens))
        .public("/health")
        .authorize(Arc::new(ScopeByMethod))
        .rate_limit(Arc::new(InMemoryStore::new()), None)
        .maintenance(maintenance.clone())
        .timeout(Duration::from_millis(150))
        .retire("/v0", Upgrade::new("api/v1").unwrap())
        .produces(Method::GET, "/items", ["application/json", "text/csv"])
        .consumes(Method::POST, "/imports", ["application/x-ndjson"])
        .max_body_for(Method::POST, "/imports", 16)
        .apply(routes);
    Stack { app, maintenance }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: bytes::Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.bytes))
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type")
    }
}

pub struct Req {
    builder: http::request::Builder,
    body: Body,
}

pub fn req(method: &str, uri: &str) -> Req {
    Req {
        builder: Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri),
        body: Body::empty(),
    }
}

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &str) -> Self {
        self.header("content-type", "application/json").body(body)
    }

    pub fn body(mut self, body: &str) -> Self {
        self.builder = self.builder.header("content-length", body.len());
        self.body = Body::from(body.to_string());
        self
    }

    pub async fn send(self, app: &verdict::ContractService) -> Reply {
        let request = self.builder.body(self.body).unwrap();
        let res = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = res.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            bytes: body.collect().await.unwrap().to_bytes(),
        }
    }
}

/// Asserts the contract's invariants for any error reply.
pub fn assert_error_shape(r: &Reply) {
    assert!(r.status.as_u16() >= 400, "{r:?}");
    assert_eq!(r.header("cache-control"), "no-store", "{r:?}");
    assert!(r.headers.contains_key("x-request-id"), "{r:?}");
    if let Some(missing) = verdict::status::missing_header(r.status, &r.headers) {
        panic!("{} lacks {missing:?}: {r:?}", r.status);
    }
}

/// Log lines, captured.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The log of this test binary at `level` and up, collected by one
    /// global subscriber (thread-local ones race with tracing's cached
    /// interest when tests run in parallel): the first call's level holds
    /// for the binary. Tests find their own lines by request id.
    pub fn install(level: tracing::Level) -> Captured {
        static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(level)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            captured
        })
        .clone()
    }
}
