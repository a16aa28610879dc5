//! The app every target sends its requests through: the whole contract, with
//! routes that use each extractor, and the checks every answer must pass.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::conditional::Preconditions;
use verdict::{ApiError, Contract, ContractService, Json, Path, Preset, Query};

struct OneToken;

impl Authenticator for OneToken {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(
            async move { Ok((token == "fuzz").then(|| Principal::new("fuzz", ["read", "write"]))) },
        )
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
pub struct Item {
    pub name: String,
    pub price: u32,
    pub tags: Option<Vec<String>>,
    pub nested: Option<Box<Item>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: Option<u16>,
    cursor: Option<String>,
    flag: Option<bool>,
}

fn app() -> ContractService {
    let routes = Router::new()
        .route(
            "/items/{id}",
            get(|Path(id): Path<u32>, pre: Preconditions| async move {
                pre.check_write(None)?;
                Ok::<_, ApiError>(id.to_string())
            })
            .put(|Path(_): Path<u32>, Json(_): Json<Item>| async { "ok" }),
        )
        .route("/items", get(|Query(_): Query<Page>| async { "[]" }));
    Contract::new(Preset::standard())
        .authenticate(Arc::new(OneToken))
        .authorize(Arc::new(ScopeByMethod))
        .apply(routes)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Sends `req` through the app and checks what every answer must be: never a
/// 500 (nothing a client sends is the server's fault here), and every error a
/// JSON body with `Cache-Control: no-store`.
pub fn check(req: Request<Body>) {
    static APP: OnceLock<ContractService> = OnceLock::new();
    let app = APP.get_or_init(app).clone();
    let res: Response<Body> = runtime().block_on(async move {
        let Ok(res) = app.oneshot(req).await;
        res
    });
    let status = res.status();
    assert_ne!(status.as_u16(), 500, "a client's bytes made a 500");
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            res.headers().get("cache-control").map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        let body = runtime()
            .block_on(res.into_body().collect())
            .expect("a body")
            .to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).expect("a JSON error body");
    }
}
