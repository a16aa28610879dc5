//! What must hold for any bytes a client sends, checked on stable Rust with
//! generated inputs (the same properties cargo-fuzz checks longer, in
//! `fuzz/`): no parser panics, nothing a client sends is a 500, and every
//! malformed input is answered with an error body that keeps the contract.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
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
        Box::pin(async move { Ok((token == "ok").then(|| Principal::new("p", ["read", "write"]))) })
    }
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Item {
    name: String,
    price: u32,
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: Option<u16>,
    flag: Option<bool>,
}

fn app() -> ContractService {
    Contract::new(Preset::standard())
        .authenticate(Arc::new(OneToken))
        .authorize(Arc::new(ScopeByMethod))
        .apply(
            Router::new()
                .route(
                    "/items/{id}",
                    get(|Path(id): Path<u32>, pre: Preconditions| async move {
                        pre.check_write(None)?;
                        Ok::<_, ApiError>(id.to_string())
                    })
                    .put(|Path(_): Path<u32>, Json(_): Json<Item>| async { "ok" }),
                )
                .route("/items", get(|Query(_): Query<Page>| async { "[]" })),
        )
}

/// Sends `req`; asserts the answer is no 500 and, if an error, a JSON body
/// with `no-store`. The status.
fn check(req: Request<Body>) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Ok(res) = app().oneshot(req).await;
        let status = res.status().as_u16();
        assert_ne!(status, 500);
        if status >= 400 {
            assert_eq!(res.headers()["cache-control"], "no-store");
            let body = res.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).expect("a JSON error body");
        }
        status
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_body_is_a_2xx_400_or_422_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = verdict::extract::parse_json::<serde_json::Value>(&body) {
            prop_assert!(matches!(e.status().as_u16(), 400 | 422));
        }
        let req = Request::put("/items/1")
            .header("authorization", "Bearer ok")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body))
            .unwrap();
        let status = check(req);
        prop_assert!(matches!(status, 200 | 400 | 422), "{status}");
    }

    #[test]
    fn any_json_object_names_its_failing_fields(
        name in proptest::option::of(any::<i64>().prop_map(serde_json::Value::from)),
        price in proptest::option::of("[a-z]{0,4}|-?[0-9]{1,12}"),
        extra in proptest::option::of(any::<bool>()),
    ) {
        let mut o = serde_json::Map::new();
        if let Some(n) = name { o.insert("name".into(), n); }
        if let Some(p) = price { o.insert("price".into(), serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p))); }
        if let Some(x) = extra { o.insert("extra".into(), x.into()); }
        let text = serde_json::to_vec(&o).unwrap();
        match verdict::extract::parse_json::<Item>(&text) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.status().as_u16(), 422);
                prop_assert!(!e.field_errors().is_empty());
                for f in e.field_errors() {
                    prop_assert!(f.pointer.starts_with('/'), "{:?}", f);
                    prop_assert!(!f.detail.contains("struct"), "{:?}", f);
                }
            }
        }
    }

    #[test]
    fn any_value_of_a_parsed_header_is_never_a_500(
        which in 0usize..7,
        value in "[ -~]{0,80}",
    ) {
        let name = ["accept", "if-match", "if-none-match", "if-modified-since", "authorization", "content-type", "x-request-id"][which];
        let mut req = Request::get("/items/1");
        if name != "authorization" {
            req = req.header("authorization", "Bearer ok");
        }
        let req = req.header(name, value.as_str()).body(Body::empty()).unwrap();
        check(req);
    }

    #[test]
    fn any_query_or_path_segment_is_never_a_500(q in "[a-z=&%0-9+.~-]{0,40}", seg in "[A-Za-z0-9%._~-]{1,20}") {
        for uri in [format!("/items?{q}"), format!("/items/{seg}")] {
            if let Ok(req) = Request::get(uri.as_str()).header("authorization", "Bearer ok").body(Body::empty()) {
                check(req);
            }
        }
    }
}
