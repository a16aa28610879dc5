//! The OpenAPI document says what the service sends: every success body
//! seen over a socket validates against the schema documented for its
//! operation and status, with the headers it documents; and the document is
//! typed enough for a generated client.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

/// The documented operation of `method` on a concrete `path`.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> (&'a str, &'a Value) {
    let path = path.split('?').next().unwrap();
    for (template, item) in doc["paths"].as_object().unwrap() {
        let (t, p): (Vec<&str>, Vec<&str>) =
            (template.split('/').collect(), path.split('/').collect());
        let matches = t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()));
        if matches {
            if let Some(op) = item.get(method.to_ascii_lowercase()) {
                return (template, op);
            }
        }
    }
    panic!("{method} {path} is not documented");
}

/// Checks `reply` against what the document says of `method path`.
fn check(
    doc: &Value,
    method: &str,
    path: &str,
    reply: &common::Reply,
    seen: &mut BTreeSet<String>,
) {
    let (_, op) = operation(doc, method, path);
    let code = reply.status.as_u16().to_string();
    let documented = op["responses"]
        .get(&code)
        .unwrap_or_else(|| panic!("{method} {path}: {code} is not documented"));
    seen.insert(format!("{} {code}", op["operationId"].as_str().unwrap()));
    for name in documented["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        // Headers every such answer carries (others depend on the request).
        if ["ETag", "Location", "X-Request-Id", "Last-Modified"].contains(&name.as_str()) {
            assert!(
                reply.headers.contains_key(name.as_str()),
                "{method} {path} {code}: no {name}"
            );
        }
    }
    let Some(schema) = documented["content"]["application/json"].get("schema") else {
        return;
    };
    let content_type = reply.header("content-type");
    if !content_type.starts_with("application/json") {
        return;
    }
    let root = json!({"allOf": [schema], "components": doc["components"]});
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| {
            panic!("{method} {path} {code}: the documented schema does not compile: {e}")
        });
    let body = reply.json();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {code}: {errors:?}\n{body}"
    );
}

#[tokio::test]
async fn every_success_body_matches_its_documented_schema() {
    let s = common::start(&[]).await;
    let doc = s.admin("GET", "/openapi.json").send().await.json();
    let mut seen = BTreeSet::new();
    macro_rules! call {
        ($method:literal, $path:expr $(, $m:ident($($a:expr),*))*) => {{
            let path: String = $path.to_string();
            let reply = s.admin($method, &path)$(.$m($($a),*))*.send().await;
            assert!(reply.status.as_u16() < 400, "{} {path}: {}", $method, reply.text());
            check(&doc, $method, &path, &reply, &mut seen);
            reply
        }};
    }
    call!("GET", "/health");
    call!("GET", "/livez");
    call!("GET", "/problems", header("accept", "application/json"));
    call!(
        "GET",
        "/problems/rate-limited",
        header("accept", "application/json")
    );
    call!(
        "POST",
        "/v1/tokens",
        json(json!({"scopes": ["read"], "rate_limit": {"requests": 10, "per_seconds": 60}}))
    );
    call!("GET", "/v1/tokens");
    call!(
        "POST",
        "/v1/collections",
        json(json!({"name": "books", "unique": ["isbn"],
        "schema": {"type": "object", "properties": {"title": {"type": "string"}}}}))
    );
    call!("GET", "/v1/collections");
    call!("GET", "/v1/collections/books");
    call!(
        "PATCH",
        "/v1/collections/books",
        merge_patch(json!({"name": "novels"}))
    );
    call!("GET", "/v1/collections/books");
    let created = call!(
        "POST",
        "/v1/collections/novels/records",
        json(json!({"title": "Dune", "isbn": "1"}))
    );
    let id = created.json()["id"].as_str().unwrap().to_string();
    let record = format!("/v1/collections/novels/records/{id}");
    call!("GET", &record);
    call!(
        "PUT",
        &record,
        json(json!({"title": "Dune", "isbn": "1", "year": 1965}))
    );
    call!("PATCH", &record, merge_patch(json!({"year": 1966})));
    call!(
        "POST",
        "/v1/collections/novels/records",
        json(json!({"title": "Emma", "isbn": "2", "year": 1966}))
    );
    call!(
        "GET",
        "/v1/collections/novels/records?count=true&sort=-year&limit=1"
    );
    call!("GET", "/v1/collections/novels/lookup?year=1966");
    call!(
        "POST",
        "/v1/batch",
        json(json!({"operations": [
        {"method": "GET", "path": record},
        {"method": "GET", "path": "/v1/collections/novels/records/missing"}]}))
    );
    let export = call!("POST", "/v1/collections/novels/exports");
    let monitor = export.header("location").to_string();
    call!("GET", &monitor);
    let mut result = None;
    for _ in 0..300 {
        let r = s.admin("GET", &monitor).send().await;
        if r.status == 303 {
            result = Some(r.header("location").to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call!("GET", result.expect("the export finishes"));
    call!("GET", "/v1/admin/maintenance");
    call!(
        "PUT",
        "/v1/admin/maintenance",
        json(json!({"enabled": false}))
    );
    call!("DELETE", &record);

    for expected in [
        "create_token 201",
        "list_tokens 200",
        "create_collection 201",
        "get_collection 302",
        "list_records 200",
        "lookup 300",
        "batch 207",
        "export 202",
        "job_result 200",
        "replace_record 200",
        "patch_record 200",
        "delete_record 204",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} not exercised: {seen:?}"
        );
    }
    // 200 while it runs, 303 once done: either is checked.
    assert!(seen.iter().any(|s| s.starts_with("get_job ")), "{seen:?}");
}

#[tokio::test]
async fn the_document_types_tokens_and_shows_each_readable_collections_schema() {
    let s = common::start(&[]).await;
    s.collection(
        json!({"name": "books", "schema": {"type": "object", "required": ["title"],
        "properties": {"title": {"type": "string"}}}}),
    )
    .await;
    s.collection(json!({"name": "secret"})).await;
    let reader = s
        .token(json!({"scopes": ["read"], "collections": ["books"]}))
        .await;

    let anonymous = s.call("GET", "/openapi.json").send().await.json();
    let schemas = anonymous["components"]["schemas"].as_object().unwrap();
    assert!(
        !schemas.keys().any(|k| k.starts_with("Record_")),
        "names are not public"
    );
    // The one-time secret is typed, not `{"type": "object"}`.
    assert_eq!(
        schemas["NewTokenSecret"]["properties"]["token"]["type"],
        "string"
    );
    assert_eq!(
        schemas["Record"]["properties"]["created_at"]["format"],
        "date-time"
    );
    let get = &anonymous["paths"]["/v1/collections/{c}/records/{id}"]["get"];
    assert_eq!(get["tags"][0], "records");
    for h in [
        "ETag",
        "Last-Modified",
        "X-Request-Id",
        "RateLimit-Remaining",
    ] {
        assert!(get["responses"]["200"]["headers"].get(h).is_some(), "{h}");
    }
    let names: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"If-None-Match") && names.contains(&"X-Request-Id"),
        "{names:?}"
    );
    let patch = &anonymous["paths"]["/v1/collections/{c}/records/{id}"]["patch"];
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "If-Match"));
    assert!(
        anonymous["components"]["securitySchemes"]["bearer"]["description"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );

    // The preset's error format is listed first, as the docs page shows it.
    let text = s.call("GET", "/openapi.json").send().await.text();
    let error = text.find("\"404\"").unwrap();
    let problem = text[error..].find("application/problem+json").unwrap();
    let simple = text[error..].find("application/json").unwrap_or(usize::MAX);
    assert!(problem < simple, "problem+json first");

    let mine = s
        .call("GET", "/openapi.json")
        .token(&reader)
        .send()
        .await
        .json();
    let schemas = mine["components"]["schemas"].as_object().unwrap();
    assert_eq!(schemas["Record_books"]["allOf"][1]["required"][0], "title");
    assert!(
        !schemas.contains_key("Record_secret"),
        "a collection the token may not use"
    );
}

/// `clients/typescript`'s tools (`npm ci` there installs them), or `None`
/// when they are not installed and this is not CI.
fn typescript_tools() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/typescript");
    if dir.join("node_modules/.bin/openapi-typescript").exists() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI must run `npm ci --prefix clients/typescript` before the tests");
    }
    eprintln!("skipped: no TypeScript tools (run `npm ci --prefix clients/typescript`)");
    None
}

#[tokio::test]
async fn a_typescript_client_generated_from_the_document_compiles() {
    let Some(tools) = typescript_tools() else {
        return;
    };
    let s = common::start(&[]).await;
    let doc = s.call("GET", "/openapi.json").send().await.bytes;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("openapi.json"), &doc).unwrap();
    for file in ["client.ts", "tsconfig.json"] {
        std::fs::copy(tools.join(file), work.path().join(file)).unwrap();
    }
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(tools.join("node_modules/.bin").join(program))
            .args(args)
            .current_dir(work.path())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        "openapi-typescript",
        &["openapi.json", "--output", "api.d.ts"],
    );
    let types = std::fs::read_to_string(work.path().join("api.d.ts")).unwrap();
    // (`webhooks` and `$defs`, which the document does not have, are always generated so.)
    let untyped: Vec<&str> = types
        .lines()
        .filter(|l| {
            l.contains("Record<string, never>")
                && !l.contains("type webhooks")
                && !l.contains("type $defs")
        })
        .collect();
    assert!(untyped.is_empty(), "untyped: {untyped:?}");
    run("tsc", &["-p", "."]);
}
