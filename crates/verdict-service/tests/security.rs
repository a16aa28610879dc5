//! Every route x {no token, bad token, revoked token, wrong scope, another
//! collection's grant}: exactly the 401 or 403 docs/contract.md says, and never data.
//! And no 5xx body carries a file path, SQL or panic text.

mod common;

use serde_json::json;
use verdict_service::surface::{Access, OPERATIONS};

/// A value planted in the data; no refused request may ever see it.
const SECRET: &str = "TOPSECRET-7f3a";

fn concrete(path: &str, job: &str) -> String {
    path.replace("{c}", "books")
        .replace("/v1/jobs/{id}", &format!("/v1/jobs/{job}"))
        .replace("/v1/tokens/{id}", "/v1/tokens/someid")
        .replace("{id}", "b1")
        .replace("{slug}", "not-found")
}

#[tokio::test]
async fn every_route_refuses_bad_credentials_with_exactly_401_or_403_and_never_data() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "books"})).await;
    s.collection(json!({"name": "other"})).await;
    s.record("books", json!({"id": "b1", "title": SECRET}))
        .await;
    let job = s
        .admin("POST", "/v1/collections/books/exports")
        .send()
        .await;
    let job = job.json()["id"].as_str().unwrap().to_string();

    let revoked = s.token(json!({"scopes": ["read", "write", "admin"]})).await;
    let id = revoked.split('.').next().unwrap();
    assert_eq!(
        s.admin("DELETE", &format!("/v1/tokens/{id}"))
            .send()
            .await
            .status,
        204
    );
    let read_only = s.token(json!({"scopes": ["read"]})).await;
    let write_only = s.token(json!({"scopes": ["write"]})).await;
    let reader_writer = s.token(json!({"scopes": ["read", "write"]})).await;
    let other_grant = s
        .token(json!({"scopes": ["read", "write"], "collections": ["other"]}))
        .await;

    let mut checked = 0;
    for op in OPERATIONS {
        let Access::Scope(scope) = op.access else {
            continue;
        };
        let path = concrete(op.path, &job);
        let wrong_scope = match scope {
            "read" => &write_only,
            "write" => &read_only,
            _ => &reader_writer,
        };
        let mut cases: Vec<(&str, Option<&str>, u16, &str)> = vec![
            ("no token", None, 401, "missing_credentials"),
            ("bad token", Some("nobody.nothing"), 401, "invalid_token"),
            ("revoked token", Some(&revoked), 401, "invalid_token"),
            ("wrong scope", Some(wrong_scope), 403, "insufficient_scope"),
        ];
        // A grant to another collection: refused on anything of `books`
        // (and on creating collections); admin routes refuse by scope first.
        let about_books = path.contains("/books") || path.starts_with("/v1/jobs/");
        if scope == "admin" {
            cases.push(("other grant", Some(&other_grant), 403, "insufficient_scope"));
        } else if about_books || (op.method == "POST" && op.path == "/v1/collections") {
            cases.push((
                "other grant",
                Some(&other_grant),
                403,
                "collection_not_granted",
            ));
        }
        for (case, token, status, code) in cases {
            let mut call = s.call(op.method, &path);
            if let Some(t) = token {
                call = call.token(t);
            }
            call = match op.body {
                verdict_service::surface::RequestBody::None => call,
                verdict_service::surface::RequestBody::Ndjson => call
                    .header("content-type", "application/x-ndjson")
                    .body("{\"title\": \"x\"}\n"),
                verdict_service::surface::RequestBody::MergePatch(_) => {
                    call.merge_patch(json!({"title": "x"}))
                }
                verdict_service::surface::RequestBody::Json(_) => call.json(json!({"title": "x"})),
            };
            let r = call.send().await;
            let text = r.text();
            assert_eq!(
                r.status.as_u16(),
                status,
                "{} {path} with {case}: {text}",
                op.method
            );
            r.assert_error(status, code);
            assert!(
                !text.contains(SECRET),
                "{} {path} with {case} leaked data: {text}",
                op.method
            );
            if status == 401 {
                assert!(r.header("www-authenticate").starts_with("Bearer "));
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    // The grant also filters listings.
    let r = s
        .call("GET", "/v1/collections")
        .token(&other_grant)
        .send()
        .await;
    assert_eq!(r.status, 200);
    let names: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["other"]);
    // Batch runs each operation with the caller's own credentials.
    let r = s
        .call("POST", "/v1/batch")
        .token(&other_grant)
        .json(
            json!({"operations": [{"method": "GET", "path": "/v1/collections/books/records/b1"}]}),
        )
        .send()
        .await;
    assert_eq!(r.status, 207);
    assert_eq!(r.json()["results"][0]["status"], 403);
    assert!(!r.text().contains(SECRET));
}

#[tokio::test]
async fn server_errors_never_carry_paths_sql_or_panic_text() {
    let s = common::start(&["--fault-injection", "--request-timeout", "1s"]).await;
    s.collection(json!({"name": "books"})).await;
    let mut bodies = Vec::new();
    for fault in ["panic", "storage-unavailable", "delay=1500"] {
        for path in [
            "/v1/collections/books",
            "/v1/collections/books/records",
            "/health",
        ] {
            let r = s
                .admin("GET", path)
                .header("fault-injection", fault)
                .send()
                .await;
            assert!(r.status.is_server_error(), "{fault} {path}: {}", r.status);
            bodies.push(r.text());
        }
    }
    for body in bodies {
        let lower = body.to_lowercase();
        for leak in [
            ".rs",
            "/src/",
            "/tmp",
            "/root",
            "select ",
            "insert ",
            "sqlite",
            "panicked",
            "thread",
            "fault injection",
            "backtrace",
        ] {
            assert!(!lower.contains(leak), "a 5xx body leaks `{leak}`: {body}");
        }
    }
}
