//! A fixture API that keeps the contract (built with the `verdict` library),
//! served over a real socket, audits clean; then each breakage, one at a
//! time, makes exactly its rule fail and nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::future::BoxFuture;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};
use verdict::auth::{Authenticator, Principal, ScopeByMethod};
use verdict::conditional::{EntityTag, Preconditions, Validators};
use verdict::rate_limit::{InMemoryStore, Quota};
use verdict::{ApiError, Contract, Json, Preset};
use verdict_check::finding::{Finding, Verdict};
use verdict_check::{audit, Options};

struct Tokens;

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        Box::pin(async move {
            Ok(match token {
                "good" => Some(Principal::new("good", ["read", "write"]).without_rate_limit()),
                "weak" => Some(Principal::new("weak", ["none"]).without_rate_limit()),
                "tiny" => Some(
                    Principal::new("tiny", ["read"])
                        .with_rate_limit(Quota::new(3, Duration::from_secs(60))),
                ),
                _ => None,
            })
        })
    }
}

async fn show(Path(id): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    if id != "verdict-check-0" {
        return Err(ApiError::not_found(format!("No item `{id}`.")).with_code("item_not_found"));
    }
    Ok(axum::Json(json!({"id": id, "name": "first"})))
}

async fn replace(
    pre: Preconditions,
    Json(body): Json<Value>,
) -> Result<axum::Json<Value>, ApiError> {
    pre.check_write(Some(&Validators::new(Some(EntityTag::strong("v1")), None)))?;
    Ok(axum::Json(body))
}

/// Creates nothing, but answers as a create does: 201 and where the item
/// is. In the contract's order: the precondition (the list's current tag),
/// then the body's content.
async fn create(
    pre: Preconditions,
    Json(body): Json<Value>,
) -> Result<impl IntoResponse, ApiError> {
    pre.check_write(Some(&Validators::new(
        Some(EntityTag::strong("list-v1")),
        None,
    )))?;
    if !body["name"].is_string() {
        return Err(ApiError::validation_failed(vec![verdict::FieldError::new(
            "/name",
            "a string is required",
        )]));
    }
    Ok((
        StatusCode::CREATED,
        [("location", "/items/verdict-check-0")],
        axum::Json(json!({"id": "verdict-check-0"})),
    ))
}

/// The fixture's document: its paths, methods, and the create's example.
fn document() -> Value {
    json!({"openapi": "3.1.0", "security": [{"bearer": []}], "paths": {
        "/items": {"get": {}, "post": {"requestBody": {"content": {"application/json": {"example": {"name": "x"}}}}}},
        "/items/{id}": {"get": {}, "put": {"requestBody": {"content": {"application/json": {}}}}},
    }})
}

/// What a breakage does to the fixture, around everything.
type Breakage = fn(Request, Next) -> BoxFuture<'static, Response>;

async fn serve(breakage: Option<Breakage>) -> String {
    let routes = Router::new()
        .route(
            "/items",
            get(|| async {
                (
                    [("link", "</items/verdict-check-0>; rel=\"item\"")],
                    axum::Json(json!([{"id": "verdict-check-0"}])),
                )
            })
            .post(create),
        )
        .route("/items/{id}", get(show).put(replace));
    let app = Contract::new(Preset::standard())
        .authenticate(Arc::new(Tokens))
        .authorize(Arc::new(ScopeByMethod))
        .rate_limit(Arc::new(InMemoryStore::new()), None)
        .apply(routes);
    let app = match breakage {
        Some(b) => app.layer(axum::middleware::from_fn(b)),
        None => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

async fn failures(breakage: Option<Breakage>) -> (BTreeSet<&'static str>, Vec<Finding>) {
    let base = serve(breakage).await;
    failures_under(&base, "standard").await
}

async fn failures_under(base: &str, policy: &str) -> (BTreeSet<&'static str>, Vec<Finding>) {
    let options = Options::new(base, policy)
        .unwrap()
        .openapi(&document())
        .unwrap()
        .tokens(Some("good"), Some("weak"))
        .writes(true)
        .creates(true)
        .strict(true);
    let (findings, _) = audit(options).await.unwrap();
    let failed = findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .map(|f| f.rule)
        .collect();
    (failed, findings)
}

fn report(findings: &[Finding]) -> String {
    findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .map(|f| {
            format!(
                "{} {} {}: {} / {}",
                f.rule, f.method, f.path, f.expected, f.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_fixture_keeps_every_rule() {
    let (failed, findings) = failures(None).await;
    assert!(failed.is_empty(), "{}", report(&findings));
    // The probes reached what they judge.
    let passed: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.result == Verdict::Pass)
        .map(|f| f.rule)
        .collect();
    for rule in [
        "unknown-method-501",
        "method-not-allowed-405",
        "allow-header",
        "options-allow",
        "head-matches-get",
        "not-found-404",
        "auth-missing-401",
        "auth-invalid-401",
        "auth-challenge",
        "auth-scope-403",
        "not-acceptable-406",
        "conditional-304",
        "precondition-412",
        "uri-too-long-414",
        "headers-too-large-431",
        "unsupported-media-415",
        "malformed-400",
        "write-refused",
        "error-format",
        "error-no-store",
        "no-body-204-304",
        "allowed-codes",
    ] {
        assert!(passed.contains(rule), "{rule} was never judged: {passed:?}");
    }
}

#[tokio::test]
async fn paths_named_by_link_headers_are_probed_too() {
    let base = serve(None).await;
    let options = Options::new(&base, "standard")
        .unwrap()
        .path("/items")
        .tokens(Some("good"), None);
    let (findings, summary) = audit(options).await.unwrap();
    assert!(summary.ok);
    assert!(
        findings
            .iter()
            .any(|f| f.endpoint == "/items/verdict-check-0"
                && f.rule == "conditional-304"
                && f.result == Verdict::Pass),
        "the linked item was not probed"
    );
}

#[tokio::test]
async fn the_load_probe_finds_the_rate_limit_with_its_fields() {
    let base = serve(None).await;
    let options = Options::new(&base, "standard")
        .unwrap()
        .path("/items")
        .tokens(Some("tiny"), None)
        .load(10)
        .max_wait(Duration::ZERO);
    let (findings, summary) = audit(options).await.unwrap();
    let load = findings
        .iter()
        .find(|f| f.rule == "rate-limit-429")
        .unwrap();
    assert_eq!(load.result, Verdict::Pass, "{}", load.detail);
    assert!(
        summary.ok,
        "{}",
        verdict_check::report::table(&findings, &summary, false)
    );
}

macro_rules! breakage {
    ($name:ident, $rule:literal, |$req:ident, $next:ident| $body:expr) => {
        #[tokio::test]
        async fn $name() {
            fn breaking($req: Request, $next: Next) -> BoxFuture<'static, Response> {
                Box::pin(async move { $body })
            }
            let (failed, findings) = failures(Some(breaking)).await;
            assert_eq!(failed, BTreeSet::from([$rule]), "{}", report(&findings));
        }
    };
}

breakage!(
    a_405_without_allow_breaks_allow_header,
    "allow-header",
    |req, next| {
        let mut res = next.run(req).await;
        if res.status() == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut().remove("allow");
        }
        res
    }
);

breakage!(
    a_404_for_an_unknown_method_breaks_unknown_method_501,
    "unknown-method-501",
    |req, next| {
        if req.method().as_str() == "BREW" {
            return ApiError::not_found("No such thing.").into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_401_without_a_challenge_breaks_auth_challenge,
    "auth-challenge",
    |req, next| {
        let mut res = next.run(req).await;
        res.headers_mut().remove("www-authenticate");
        res
    }
);

breakage!(
    plain_text_errors_break_error_format,
    "error-format",
    |req, next| {
        let res = next.run(req).await;
        if res.status().as_u16() < 400 {
            return res;
        }
        let (mut parts, _) = res.into_parts();
        parts
            .headers
            .insert("content-type", HeaderValue::from_static("text/plain"));
        parts.headers.remove("content-length");
        Response::from_parts(parts, axum::body::Body::from("something went wrong"))
    }
);

breakage!(
    an_ignored_if_none_match_breaks_conditional_304,
    "conditional-304",
    |req, next| {
        let mut req = req;
        req.headers_mut().remove("if-none-match");
        next.run(req).await
    }
);

breakage!(
    an_ignored_if_match_on_get_breaks_precondition_412,
    "precondition-412",
    |req, next| {
        let mut req = req;
        if req.method() == http::Method::GET {
            req.headers_mut().remove("if-match");
        }
        next.run(req).await
    }
);

breakage!(
    an_ignored_accept_breaks_not_acceptable_406,
    "not-acceptable-406",
    |req, next| {
        let mut req = req;
        req.headers_mut().remove("accept");
        next.run(req).await
    }
);

breakage!(
    cacheable_errors_break_error_no_store,
    "error-no-store",
    |req, next| {
        let mut res = next.run(req).await;
        res.headers_mut().remove("cache-control");
        res
    }
);

breakage!(
    a_403_for_no_credentials_breaks_auth_missing_401,
    "auth-missing-401",
    |req, next| {
        if !req.headers().contains_key("authorization") {
            return ApiError::forbidden("Who are you?").into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_404_for_a_wrong_method_breaks_method_not_allowed_405,
    "method-not-allowed-405",
    |req, next| {
        let res = next.run(req).await;
        if res.status() == StatusCode::METHOD_NOT_ALLOWED {
            return ApiError::not_found("No such thing.").into_response();
        }
        res
    }
);

breakage!(
    a_200_for_an_unknown_path_breaks_not_found_404,
    "not-found-404",
    |req, next| {
        if req.uri().path() == "/verdict-check-no-such-path" {
            return axum::Json(json!({"ok": true})).into_response();
        }
        next.run(req).await
    }
);

breakage!(
    options_without_allow_breaks_options_allow,
    "options-allow",
    |req, next| {
        let options = req.method() == http::Method::OPTIONS;
        let mut res = next.run(req).await;
        if options {
            res.headers_mut().remove("allow");
        }
        res
    }
);

breakage!(
    a_head_with_another_type_breaks_head_matches_get,
    "head-matches-get",
    |req, next| {
        let head = req.method() == http::Method::HEAD;
        let mut res = next.run(req).await;
        if head {
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
        }
        res
    }
);

breakage!(
    a_400_for_an_unsupported_type_breaks_unsupported_media_415,
    "unsupported-media-415",
    |req, next| {
        let res = next.run(req).await;
        if res.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return ApiError::bad_request("Bad.").into_response();
        }
        res
    }
);

/// Debian's Chromium, or `None` when it is not installed and this is not CI.
fn chromium() -> Option<&'static str> {
    let path = "/usr/bin/chromium";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must install Debian's chromium (apt-get install chromium) before the tests");
    }
    eprintln!("skipped: no /usr/bin/chromium");
    None
}

#[tokio::test]
async fn the_html_report_shows_the_grid_in_a_headless_browser() {
    fn breaking(req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let mut res = next.run(req).await;
            res.headers_mut().remove("cache-control");
            res
        })
    }
    let base = serve(Some(breaking)).await;
    let options = Options::new(&base, "standard")
        .unwrap()
        .path("/items")
        .path("/items/verdict-check-0")
        .tokens(Some("good"), Some("weak"));
    let (findings, summary) = audit(options).await.unwrap();
    let page = verdict_check::report::html(&findings, &summary);
    // Self-contained: nothing for a browser to fetch.
    for outside in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(outside), "{outside} in the page");
    }
    assert!(page.contains("<details>") && page.contains("error-no-store"));
    assert!(
        page.contains("cache-control") || page.contains("Cache-Control"),
        "the exchange is shown"
    );
    let Some(browser) = chromium() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("verdict-check-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("report.html");
    let shot = dir.join("report.png");
    std::fs::write(&html, &page).unwrap();
    // (Blocking is fine: the fixture has answered everything by now.)
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--disable-background-networking",
            "--window-size=1200,800",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The grid's cells are there: the pass green and the fail red.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let count = |rgb: [u8; 3]| {
        pixels[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| {
                p[0].abs_diff(rgb[0]) < 8 && p[1].abs_diff(rgb[1]) < 8 && p[2].abs_diff(rgb[2]) < 8
            })
            .count()
    };
    let (green, red) = (count([0x2e, 0x9d, 0x4a]), count([0xd2, 0x30, 0x2c]));
    assert!(green > 200 && red > 200, "green {green}, red {red} pixels");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn retry_after_zero_breaks_retry_after_positive() {
    fn breaking(req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let mut res = next.run(req).await;
            if res.status() == StatusCode::TOO_MANY_REQUESTS {
                res.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("0"));
            }
            res
        })
    }
    let base = serve(Some(breaking)).await;
    let options = Options::new(&base, "standard")
        .unwrap()
        .path("/items")
        .tokens(Some("tiny"), None)
        .load(10)
        .max_wait(Duration::ZERO)
        .strict(true);
    let (findings, _) = audit(options).await.unwrap();
    let failed: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from(["retry-after-positive"]),
        "{}",
        report(&findings)
    );
}

breakage!(
    a_403_for_a_wrong_token_breaks_auth_invalid_401,
    "auth-invalid-401",
    |req, next| {
        let wrong = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes().ends_with(b"verdict-check-invalid-token"));
        if wrong {
            return ApiError::forbidden("Not you.").into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_404_for_a_token_without_the_scope_breaks_auth_scope_403,
    "auth-scope-403",
    |req, next| {
        let res = next.run(req).await;
        if res.status() == StatusCode::FORBIDDEN {
            return ApiError::not_found("No such thing.").into_response();
        }
        res
    }
);

breakage!(
    a_400_for_a_long_uri_breaks_uri_too_long_414,
    "uri-too-long-414",
    |req, next| {
        if req.uri().to_string().len() > 8 * 1024 {
            return ApiError::bad_request("Too long.").into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_404_for_large_headers_breaks_headers_too_large_431,
    "headers-too-large-431",
    |req, next| {
        if req.headers().contains_key("x-verdict-check") {
            return ApiError::not_found("No such thing.").into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_422_for_malformed_json_breaks_malformed_400,
    "malformed-400",
    |req, next| {
        let res = next.run(req).await;
        if res.status() == StatusCode::BAD_REQUEST {
            return ApiError::validation_failed(vec![]).into_response();
        }
        res
    }
);

breakage!(
    a_write_despite_if_match_breaks_write_refused,
    "write-refused",
    |req, next| {
        if req.method() == http::Method::PUT {
            return axum::Json(json!({"stored": true})).into_response();
        }
        next.run(req).await
    }
);

breakage!(
    a_415_without_accept_post_breaks_required_headers,
    "required-headers",
    |req, next| {
        let mut res = next.run(req).await;
        res.headers_mut().remove("accept-post");
        res.headers_mut().remove("accept-patch");
        res
    }
);

#[tokio::test]
async fn a_429_without_ratelimit_fields_breaks_rate_limit_429() {
    fn breaking(req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let mut res = next.run(req).await;
            for h in [
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                "ratelimit",
                "ratelimit-policy",
            ] {
                res.headers_mut().remove(h);
            }
            res
        })
    }
    let base = serve(Some(breaking)).await;
    let options = Options::new(&base, "standard")
        .unwrap()
        .path("/items")
        .tokens(Some("tiny"), None)
        .load(10)
        .max_wait(Duration::ZERO)
        .strict(true);
    let (findings, _) = audit(options).await.unwrap();
    let failed: BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .map(|f| f.rule)
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from(["rate-limit-429"]),
        "{}",
        report(&findings)
    );
}

breakage!(
    a_201_without_location_breaks_location_201_3xx,
    "location-201-3xx",
    |req, next| {
        let mut res = next.run(req).await;
        if res.status() == StatusCode::CREATED {
            res.headers_mut().remove("location");
        }
        res
    }
);

breakage!(
    a_location_that_does_not_resolve_breaks_created_201,
    "created-201",
    |req, next| {
        let mut res = next.run(req).await;
        if res.status() == StatusCode::CREATED {
            res.headers_mut()
                .insert("location", HeaderValue::from_static("/items/gone"));
        }
        res
    }
);

#[tokio::test]
async fn a_code_outside_the_policy_breaks_allowed_codes() {
    fn breaking(req: Request, next: Next) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            let mut res = next.run(req).await;
            if res.status() == StatusCode::OK {
                *res.status_mut() = StatusCode::NON_AUTHORITATIVE_INFORMATION;
            }
            res
        })
    }
    let base = serve(Some(breaking)).await;
    // The codes the fixture sends when it keeps the contract, 203 not among them.
    let dir = std::env::temp_dir().join(format!("verdict-check-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("team.json");
    std::fs::write(
        &policy,
        r#"{"extends": "standard", "allowed": [200, 201, 204, 304, 400, 401, 403, 404, 405, 406, 412, 413, 414, 415, 422, 429, 431, 501]}"#,
    )
    .unwrap();
    let (failed, findings) = failures_under(&base, policy.to_str().unwrap()).await;
    assert_eq!(
        failed,
        BTreeSet::from(["allowed-codes"]),
        "{}",
        report(&findings)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
