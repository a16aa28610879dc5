//! What a new adopter hit, each through a real router: errors the log never
//! saw, a realm that did not reach every challenge, `420 <none>` on the status
//! line, PATCH refusing plain JSON, a path parameter nobody named.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::routing::{get, patch};
use axum::Router;
use common::Captured;
use futures_util::future::BoxFuture;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use verdict::auth::{Authenticated, Authenticator, Principal, ScopeByMethod};
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, Json, Path, Preset};

struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            Ok(match token {
                "reader" => Some(Principal::new("reader", ["read"])),
                "writer" => Some(Principal::new("writer", ["read", "write"])),
                _ => None,
            })
        })
    }
}

async fn send(
    app: &verdict::ContractService,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, serde_json::Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

fn todos(contract: Contract) -> verdict::ContractService {
    let routes = Router::new()
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/todos/{id}",
            patch(
                |Path(id): Path<u32>, Json(body): Json<serde_json::Value>| async move {
                    axum::Json(serde_json::json!({"id": id, "patch": body}))
                },
            )
            .get(|Path(id): Path<u32>| async move { id.to_string() }),
        )
        .route(
            "/me",
            get(|Authenticated(p): Authenticated| async move { p.subject().to_string() }),
        );
    contract
        .authenticate(Arc::new(Tokens))
        .authorize(Arc::new(ScopeByMethod))
        .public("/me")
        .public("/broken")
        .public("/slow")
        .timeout(Duration::from_millis(100))
        .realm("todos")
        .apply(routes)
}

#[tokio::test]
async fn a_bare_500_from_a_handler_is_logged_with_its_incident_id_and_request_id() {
    let log = Captured::install(tracing::Level::DEBUG);
    let app = todos(Contract::new(Preset::standard()));
    let (status, _, body) = send(
        &app,
        Request::get("/broken")
            .header("x-request-id", "req-500")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 500);
    let incident = body["incident_id"].as_str().unwrap().to_string();
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains(&incident))
        .unwrap_or_else(|| panic!("no log line has incident {incident}:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("req-500"), "{line}");
    assert_eq!(text.matches(&incident).count(), 1, "logged once:\n{text}");
}

#[tokio::test]
async fn a_504_past_the_deadline_is_logged_at_warn_with_how_long_it_ran() {
    let log = Captured::install(tracing::Level::DEBUG);
    let app = todos(Contract::new(Preset::standard()));
    let (status, _, _) = send(
        &app,
        Request::get("/slow")
            .header("x-request-id", "req-504")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 504);
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("status=504") && l.contains("req-504"))
        .unwrap_or_else(|| panic!("no 504 of req-504 in the log:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("req-504"), "{line}");
    assert!(line.contains("elapsed_ms="), "{line}");
}

#[tokio::test]
async fn the_configured_realm_reaches_every_challenge() {
    let app = todos(Contract::new(Preset::standard()));
    let challenge = |h: &http::HeaderMap| h["www-authenticate"].to_str().unwrap().to_string();
    // 403 insufficient_scope from the authorizer.
    let (status, headers, _) = send(
        &app,
        Request::patch("/todos/1")
            .header("authorization", "Bearer reader")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        challenge(&headers).contains("realm=\"todos\""),
        "{headers:?}"
    );
    // 401 from the Authenticated extractor on a public route.
    let (status, headers, _) = send(&app, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(challenge(&headers), "Bearer realm=\"todos\"");
    // 401 from the layer.
    let (status, headers, _) =
        send(&app, Request::get("/todos/1").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(challenge(&headers), "Bearer realm=\"todos\"");
}

#[tokio::test]
async fn a_420_carries_its_reason_phrase_on_the_status_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let contract = Contract::new(Preset::by_name("seed-001").unwrap()).rate_limit(
        Arc::new(InMemoryStore::new()),
        Some(Quota::new(1, Duration::from_secs(60))),
    );
    let app = todos(contract);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(verdict::server::Server::new(listener, app).run());
    let mut status_lines = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /todos/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer reader\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        status_lines.push(text.lines().next().unwrap().to_string());
    }
    assert_eq!(status_lines[0], "HTTP/1.1 200 OK");
    assert_eq!(status_lines[1], "HTTP/1.1 420 Enhance Your Calm");
}

#[tokio::test]
async fn every_status_the_catalog_has_gets_a_reason_phrase() {
    for entry in verdict::status::CATALOG {
        let reason = entry.status().canonical_reason().unwrap_or(entry.reason);
        assert!(!reason.is_empty(), "{}", entry.code);
    }
}

#[tokio::test]
async fn patch_takes_plain_json_as_a_merge_patch_and_says_both_when_refusing() {
    let app = todos(Contract::new(Preset::standard()));
    for media in ["application/json", "application/merge-patch+json"] {
        let (status, _, body) = send(
            &app,
            Request::patch("/todos/7")
                .header("authorization", "Bearer writer")
                .header("content-type", media)
                .body(Body::from(r#"{"done": true}"#))
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{media}: {body}");
        assert_eq!(body["patch"]["done"], true);
    }
    let (status, headers, _) = send(
        &app,
        Request::patch("/todos/7")
            .header("authorization", "Bearer writer")
            .header("content-type", "text/plain")
            .body(Body::from("done"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(
        headers["accept-patch"],
        "application/merge-patch+json, application/json"
    );
}

#[tokio::test]
async fn a_path_parameter_that_does_not_parse_is_a_400_naming_it() {
    let app = todos(Contract::new(Preset::standard()));
    let (status, _, body) = send(
        &app,
        Request::get("/todos/abc")
            .header("authorization", "Bearer reader")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_path_parameter");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("`id`"), "{detail}");
    assert!(detail.contains("non-negative integer"), "{detail}");
}

#[test]
#[should_panic(expected = "Contract::public(\"/helth\") names no route")]
fn a_typo_in_a_public_route_is_refused_at_start_up() {
    let routes = Router::new().route("/health", get(|| async { "ok" }));
    let _ = Contract::new(Preset::standard())
        .authenticate(Arc::new(Tokens))
        .public("/helth")
        .apply(routes);
}

#[test]
#[should_panic(expected = "Contract::max_body_for(\"/uploads\") names no route")]
fn a_route_setting_without_its_nest_prefix_is_refused_at_start_up() {
    let api = Router::new().route("/uploads", axum::routing::post(|| async { "" }));
    let routes = Router::new().nest("/api", api);
    let _ = Contract::new(Preset::standard())
        .max_body_for(http::Method::POST, "/uploads", 1 << 20)
        .apply(routes);
}

#[tokio::test]
async fn route_settings_that_name_real_routes_apply() {
    let api = Router::new()
        .route(
            "/uploads",
            axum::routing::post(|body: String| async move { body.len().to_string() }),
        )
        .route("/open/{id}", get(|| async { "open" }));
    let app = Contract::new(Preset::standard())
        .authenticate(Arc::new(Tokens))
        .public("/api/open/{id}")
        .consumes(http::Method::POST, "/api/uploads", ["text/plain"])
        .max_body_for(http::Method::POST, "/api/uploads", 4)
        .apply(Router::new().nest("/api", api));
    let (status, _, _) = send(
        &app,
        Request::get("/api/open/7").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "public without credentials");
    let (status, _, _) = send(
        &app,
        Request::post("/api/uploads")
            .header("authorization", "Bearer writer")
            .header("content-type", "text/plain")
            .header("content-length", "10")
            .body(Body::from("0123456789"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413, "the route's own limit");
}

#[tokio::test]
async fn a_422_names_every_failing_field_in_document_order() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NewTodo {
        title: String,
        priority: u8,
        due: Option<String>,
        tags: Vec<String>,
    }
    let app = Contract::new(Preset::standard()).apply(Router::new().route(
        "/todos",
        axum::routing::post(|Json(_): Json<NewTodo>| async { StatusCode::CREATED }),
    ));
    let (status, _, body) = send(
        &app,
        Request::post("/todos")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"tags": ["a", 2], "priority": 300, "colour": "red", "due": 5}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    // As they come in the body; the missing `title` after them.
    assert_eq!(
        pointers,
        ["/tags/1", "/priority", "/colour", "/due", "/title"],
        "{body}"
    );
    assert_eq!(
        body["detail"],
        "5 fields of the request body are not valid."
    );
}

#[tokio::test]
async fn every_problem_type_has_a_page_in_json_and_html_without_credentials() {
    const MINE: &[verdict::problems::ProblemType] = &[verdict::problems::ProblemType {
        code: "todo_not_found",
        status: 404,
        title: "Todo not found",
        description: "No todo has this id.",
    }];
    let app = todos(Contract::new(Preset::standard()).document_problems(MINE));
    let (status, _, body) = send(
        &app,
        Request::get("/problems/todo-not-found")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "/problems/todo-not-found");
    assert_eq!(body["status"], 404);
    let (status, _, body) =
        send(&app, Request::get("/problems").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    for code in [
        "todo_not_found",
        "rate_limited",
        "invalid_token",
        "not_found",
        "gateway_timeout",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let res = app
        .clone()
        .oneshot(
            Request::get("/problems/rate-limited")
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        page.contains("Rate limited") && page.contains("429"),
        "{page}"
    );
    let (status, _, body) = send(
        &app,
        Request::get("/problems/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "problem_type_not_found");
}

#[tokio::test]
async fn a_trusted_proxy_reports_the_client_and_an_untrusted_one_is_ignored() {
    use verdict::client_addr::{ClientAddr, TrustedProxies};
    let app = Contract::new(Preset::standard())
        .trusted_proxies(TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]))
        .apply(Router::new().route(
            "/whoami",
            get(|ClientAddr(ip): ClientAddr| async move { ip.to_string() }),
        ));
    let ask = |peer: [u8; 4], forwarded: &'static str| {
        let mut req = Request::get("/whoami")
            .header("x-forwarded-for", forwarded)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                peer, 5000,
            ))));
        let app = app.clone();
        async move {
            let res = app.oneshot(req).await.unwrap();
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
        }
    };
    assert_eq!(ask([10, 0, 0, 5], "203.0.113.7").await, "203.0.113.7");
    assert_eq!(ask([192, 0, 2, 9], "203.0.113.7").await, "192.0.2.9");
}

#[tokio::test]
async fn extension_members_reach_the_client_in_each_format() {
    let app = Contract::new(Preset::standard()).apply(Router::new().route(
        "/pay",
        get(|| async {
            Err::<(), _>(
                ApiError::forbidden("Your balance is too low.")
                    .with_code("out_of_credit")
                    .with_extension("balance", 30),
            )
        }),
    ));
    for (accept, pointer) in [
        ("application/json, application/problem+json", "/balance"),
        (
            "application/json, application/vnd.api+json",
            "/errors/0/meta/balance",
        ),
    ] {
        let (status, _, body) = send(
            &app,
            Request::get("/pay")
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 403);
        assert_eq!(
            body.pointer(pointer),
            Some(&serde_json::json!(30)),
            "{accept}: {body}"
        );
    }
    let simple = Contract::new(Preset::by_name("seed-001").unwrap()).apply(Router::new().route(
        "/pay",
        get(|| async { Err::<(), _>(ApiError::forbidden("Low.").with_extension("balance", 30)) }),
    ));
    let (_, _, body) = send(&simple, Request::get("/pay").body(Body::empty()).unwrap()).await;
    assert_eq!(body["balance"], 30, "{body}");
}
