//! The routes of the surface, one behaviour each, over a real socket.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

#[tokio::test]
async fn token_listings_never_show_secrets_and_revoked_tokens_get_401() {
    let s = common::start(&[]).await;
    let secret = s
        .token(json!({"scopes": ["read"], "rate_limit": {"requests": 5, "per_seconds": 60}}))
        .await;
    let r = s.admin("GET", "/v1/tokens").send().await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let (id, secret_part) = secret.split_once('.').unwrap();
    assert!(text.contains(id) && !text.contains(secret_part), "{text}");
    assert!(!text.contains("hash"));
    assert_eq!(
        s.call("GET", "/v1/collections")
            .token(&secret)
            .send()
            .await
            .status,
        200
    );
    assert_eq!(
        s.admin("DELETE", &format!("/v1/tokens/{id}"))
            .send()
            .await
            .status,
        204
    );
    assert_eq!(
        s.call("GET", "/v1/collections")
            .token(&secret)
            .send()
            .await
            .status,
        401
    );
    assert_eq!(
        s.admin("DELETE", &format!("/v1/tokens/{id}"))
            .send()
            .await
            .status,
        404
    );
    let r = s
        .admin("POST", "/v1/tokens")
        .json(json!({"scopes": ["root"], "rate_limit": {"requests": 0, "per_seconds": 1}}))
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    let body = r.json();
    let ptrs: Vec<String> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ptrs, vec!["/scopes/0", "/rate_limit/requests"]);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "orders"})).await;
    let send = |body: Value| {
        s.admin("POST", "/v1/collections/orders/records")
            .header("idempotency-key", "order-42")
            .json(body)
            .send()
    };
    let first = send(json!({"item": "book"})).await;
    assert_eq!(first.status, 201);
    let again = send(json!({"item": "book"})).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("idempotent-replayed"), "true");
    let list = s
        .admin("GET", "/v1/collections/orders/records")
        .send()
        .await;
    assert_eq!(
        list.json()["items"].as_array().unwrap().len(),
        1,
        "one record, not two"
    );
    send(json!({"item": "pen"}))
        .await
        .assert_error(409, "idempotency_key_reused");
}

#[tokio::test]
async fn pages_follow_cursors_and_filters_and_serve_csv() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "people"})).await;
    for i in 0..7 {
        s.record("people", json!({"id": format!("p{i}"), "team": if i % 2 == 0 { "red" } else { "blue" }, "age": 20 + i})).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/collections/people/records?limit=2&filter%5Bteam%5D=red".to_string();
    loop {
        let r = s.admin("GET", &path).send().await;
        assert_eq!(r.status, 200);
        for item in r.json()["items"].as_array().unwrap() {
            assert_eq!(item["team"], "red");
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match r.headers.get("link") {
            Some(link) => {
                let link = link.to_str().unwrap();
                path = link[1..link.find('>').unwrap()].to_string();
                assert!(r.json()["next_cursor"].is_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, vec!["p0", "p2", "p4", "p6"]);
    let r = s
        .admin("GET", "/v1/collections/people/records?filter[age]=23")
        .send()
        .await;
    assert_eq!(
        r.json()["items"][0]["id"],
        "p3",
        "numbers filter as numbers"
    );
    let r = s
        .admin("GET", "/v1/collections/people/records?limit=2")
        .header("accept", "text/csv")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("text/csv"));
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,created_at,updated_at,age,team");
    assert!(lines[1].starts_with("p0,"));
    assert_eq!(lines.len(), 3);
    s.admin("GET", "/v1/collections/people/records?cursor=%%%")
        .send()
        .await
        .assert_error(400, "invalid_query");
    // Another API's pagination, or a field outside the filter namespace, is a
    // 400 naming the parameter, never an empty page.
    for param in ["page=2", "offset=10", "per_page=5", "team=red", "order=age"] {
        let r = s
            .admin("GET", &format!("/v1/collections/people/records?{param}"))
            .send()
            .await;
        r.assert_error(400, "invalid_query");
        let name = param.split('=').next().unwrap();
        assert!(
            r.json()["detail"].as_str().unwrap().contains(name),
            "{param}: {}",
            r.json()
        );
    }
    let head = s
        .admin("HEAD", "/v1/collections/people/records/p1")
        .send()
        .await;
    assert_eq!(head.status, 200);
    assert!(head.bytes.is_empty() && head.headers.contains_key("etag"));
}

#[tokio::test]
async fn collections_change_schema_and_unique_fields_and_delete_by_force() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "items"})).await;
    s.record("items", json!({"id": "a", "sku": "1"})).await;
    s.record("items", json!({"id": "b", "sku": "1"})).await;
    // Making `sku` unique while two records share a value is a conflict.
    let r = s
        .admin("PATCH", "/v1/collections/items")
        .merge_patch(json!({"unique": ["sku"]}))
        .send()
        .await;
    r.assert_error(409, "unique_violation");
    let r = s
        .admin("PATCH", "/v1/collections/items")
        .merge_patch(json!({"schema": {"type": "object", "required": ["sku"]}}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    s.admin("POST", "/v1/collections/items/records")
        .json(json!({"name": "no sku"}))
        .send()
        .await
        .assert_error(422, "validation_failed");
    let r = s
        .admin("PATCH", "/v1/collections/items")
        .merge_patch(json!({"schema": {"type": 5}}))
        .send()
        .await;
    r.assert_error(422, "validation_failed");
    assert_eq!(r.json()["errors"][0]["pointer"], "/schema");
    s.admin("DELETE", "/v1/collections/items")
        .send()
        .await
        .assert_error(409, "collection_not_empty");
    assert_eq!(
        s.admin("DELETE", "/v1/collections/items?force=true")
            .send()
            .await
            .status,
        204
    );
    s.admin("GET", "/v1/collections/items")
        .send()
        .await
        .assert_error(404, "collection_not_found");
}

#[tokio::test]
async fn a_running_import_can_be_cancelled_and_then_not_again() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "bulk"})).await;
    let ndjson: String = (0..20_000).map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let r = s
        .admin("POST", "/v1/collections/bulk/imports")
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await;
    assert_eq!(r.status, 202);
    let job = r.header("location").to_string();
    assert_eq!(s.admin("DELETE", &job).send().await.status, 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = s.admin("GET", &job).send().await;
    assert_eq!(state.status, 200);
    assert_eq!(state.json()["state"], "cancelled");
    s.admin("DELETE", &job)
        .send()
        .await
        .assert_error(409, "job_finished");
    s.admin("GET", &format!("{job}/result"))
        .send()
        .await
        .assert_error(404, "job_result_not_ready");
    s.admin("GET", "/v1/jobs/nope")
        .send()
        .await
        .assert_error(404, "job_not_found");
}

#[tokio::test]
async fn operations_pages_are_served_offline() {
    let s = common::start(&[]).await;
    let _ = s.admin("GET", "/v1/collections").send().await;
    let m = s.call("GET", "/metrics").send().await;
    assert_eq!(m.status, 200);
    assert!(
        m.text().contains(
            "http_requests_total{route=\"/v1/collections\",method=\"GET\",status=\"200\"}"
        ),
        "{}",
        m.text()
    );
    assert!(m.text().contains("http_request_duration_seconds_bucket"));
    let doc = s.call("GET", "/openapi.json").send().await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["paths"]["/v1/collections/{c}/records/{id}"]["put"]["responses"]["412"].is_object()
    );
    let p = s.call("GET", "/problems/record-not-found").send().await;
    assert_eq!(p.json()["status"], 404);
    s.call("GET", "/problems/no-such-thing")
        .send()
        .await
        .assert_error(404, "problem_type_not_found");
    let page = s.call("GET", "/docs").send().await;
    assert_eq!(page.status, 200);
    let html = page.text();
    let outside: Vec<&str> = html
        .split(['"', '\''])
        .filter(|t| t.starts_with("http") || t.starts_with("//"))
        .collect();
    assert!(
        outside.is_empty(),
        "the docs page refers to other hosts: {outside:?}"
    );
    for asset in [
        "/docs/swagger/swagger-ui-bundle.js",
        "/docs/swagger/swagger-ui.css",
    ] {
        let r = s.call("GET", asset).send().await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.bytes.len() > 10_000);
    }
    let m = s.admin("GET", "/v1/admin/maintenance").send().await;
    assert_eq!(
        m.json(),
        json!({"enabled": false, "retry_after_seconds": null})
    );
}

#[tokio::test]
async fn concurrent_unconditional_patches_all_succeed_and_none_is_lost() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "counters"})).await;
    s.record("counters", json!({"id": "c"})).await;
    let patches = (0..20).map(|i| {
        let call = s
            .admin("PATCH", "/v1/collections/counters/records/c")
            .merge_patch(json!({ format!("k{i}"): i }));
        async move { call.send().await }
    });
    let replies = futures_util::future::join_all(patches).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let now = s
        .admin("GET", "/v1/collections/counters/records/c")
        .send()
        .await
        .json();
    for i in 0..20 {
        assert_eq!(now[format!("k{i}")], i, "patch {i} was lost: {now}");
    }
}

#[tokio::test]
async fn imports_take_bodies_over_two_mebibytes_and_apply_the_id_rule() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "bulk"})).await;
    // Over axum's own 2 MiB default: the route's 64 MiB limit is the one that holds.
    let line = format!("{{\"pad\": \"{}\"}}\n", "x".repeat(1000));
    let mut body = line.repeat(3000);
    body.push_str("{\"id\": \"bad id/with?chars\"}\n");
    let r = s
        .admin("POST", "/v1/collections/bulk/imports")
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.header("location").to_string();
    let mut result = Value::Null;
    for _ in 0..600 {
        let r = s.admin("GET", &job).send().await;
        if r.status == 303 {
            result = s.admin("GET", r.header("location")).send().await.json();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(result["imported"], 3000, "{result}");
    assert_eq!(result["failed"][0]["line"], 3001);
    assert_eq!(result["failed"][0]["errors"][0]["pointer"], "/id");
}

#[tokio::test]
async fn an_idempotent_retry_of_a_failed_create_runs_again_and_keeps_its_error_body() {
    let s = common::start(&["--preset", "seed-000"]).await;
    s.collection(json!({"name": "strict", "schema": {"type": "object", "required": ["title"]}}))
        .await;
    for _ in 0..2 {
        let r = s
            .admin("POST", "/v1/collections/strict/records")
            .header("idempotency-key", "k1")
            .json(json!({"other": 1}))
            .send()
            .await;
        assert_eq!(r.status, 422);
        assert_eq!(r.header("content-type"), "application/vnd.api+json");
        assert_eq!(r.json()["errors"][0]["code"], "validation_failed");
    }
}

#[tokio::test]
async fn filters_that_look_like_numbers_but_are_not_json_match_as_text() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "nums"})).await;
    s.record("nums", json!({"id": "a", "v": ".5"})).await;
    for q in [
        "filter[v]=.5",
        "filter[v]=01",
        "filter[v]=%2B1",
        "filter[v]=5.",
    ] {
        let r = s
            .admin("GET", &format!("/v1/collections/nums/records?{q}"))
            .send()
            .await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
    }
    let r = s
        .admin("GET", "/v1/collections/nums/records?filter[v]=.5")
        .send()
        .await;
    assert_eq!(r.json()["items"][0]["id"], "a");
}

#[tokio::test]
async fn probes_answer_past_the_rate_limit_under_load_and_in_maintenance() {
    let s = common::start(&[
        "--rate-limit",
        "5/1m",
        "--max-in-flight",
        "2",
        "--fault-injection",
    ])
    .await;
    // Past an anonymous client's budget of 5, /problems is refused; the probes are not.
    for _ in 0..6 {
        s.call("GET", "/problems").send().await;
    }
    s.call("GET", "/problems")
        .send()
        .await
        .assert_error(429, "rate_limited");
    for _ in 0..10 {
        for probe in ["/health", "/livez", "/metrics"] {
            let r = s.call("GET", probe).send().await;
            assert_eq!(r.status, 200, "{probe}: {}", r.text());
        }
    }
    let ready = s.call("GET", "/health").send().await.json();
    assert_eq!(ready["storage"], "ok");
    assert_eq!(ready["maintenance"], false);

    // Both in-flight slots held: work is shed, probes are not.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            s.admin("GET", "/v1/collections")
                .header("fault-injection", "delay=800")
                .send()
        })
        .collect();
    let (during, _) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let shed = s.admin("GET", "/v1/collections").send().await;
            let probe = s.call("GET", "/health").send().await;
            (shed, probe)
        },
        futures_util::future::join_all(slow)
    );
    during.0.assert_error(503, "overloaded");
    assert_eq!(during.1.status, 200, "{}", during.1.text());

    // In maintenance the instance stays ready (it answers clients 503 itself)
    // and says so.
    s.admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true, "retry_after_seconds": 60}))
        .send()
        .await;
    let r = s.call("GET", "/health").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["maintenance"], true);
    assert_eq!(s.call("GET", "/livez").send().await.status, 200);
    // (admins keep working in maintenance; everyone else is refused)
    s.call("GET", "/v1/collections")
        .send()
        .await
        .assert_error(503, "maintenance");

    // Each kind of refusal is counted, by its problem code; storage and the
    // process report themselves.
    let metrics = s.call("GET", "/metrics").send().await.text();
    for code in ["rate_limited", "overloaded", "maintenance"] {
        let line = format!("http_problems_total{{code=\"{code}\"}} ");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
            .parse()
            .unwrap();
        assert!(count >= 1.0, "{line}{count}");
    }
    for line in [
        "verdict_storage_up 1",
        "# HELP http_problems_total",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_cpu_seconds_total ",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("verdict_shared_up"),
        "no --shared: {metrics}"
    );
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let s = common::start(&[]).await;
    for i in 0..30 {
        let r = s.call(&format!("BREW{i}"), "/v1/collections").send().await;
        assert_eq!(r.status, 501);
    }
    let metrics = s.call("GET", "/metrics").send().await.text();
    assert!(!metrics.contains("method=\"BREW"), "{metrics}");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    // Every metric says what it is; the version and the requests in flight are there.
    for line in [
        "# HELP http_requests_total",
        "# HELP http_request_duration_seconds",
        "# HELP http_requests_in_flight",
        "verdict_build_info{version=",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn browsers_on_an_allowed_origin_get_cors_on_preflights_and_on_errors() {
    let s = common::start(&["--cors-origin", "https://app.example"]).await;
    let preflight = s
        .call("OPTIONS", "/v1/collections")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await;
    assert!(preflight.status.is_success(), "{}", preflight.status);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        "https://app.example"
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .contains("POST"));
    let allowed = preflight
        .header("access-control-allow-headers")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("idempotency-key"),
        "{allowed}"
    );

    // An error carries CORS too, and exposes what a client reads.
    let refused = s
        .call("GET", "/v1/collections")
        .header("origin", "https://app.example")
        .send()
        .await;
    refused.assert_error(401, "missing_credentials");
    assert_eq!(
        refused.header("access-control-allow-origin"),
        "https://app.example"
    );
    let exposed = refused
        .header("access-control-expose-headers")
        .to_ascii_lowercase();
    for name in [
        "etag",
        "location",
        "retry-after",
        "ratelimit-remaining",
        "x-request-id",
        "link",
    ] {
        assert!(exposed.contains(name), "{name} in {exposed}");
    }

    // Another origin gets nothing to read with.
    let other = s
        .call("GET", "/health")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn without_cors_origins_no_cors_headers_are_sent() {
    let s = common::start(&[]).await;
    let r = s
        .call("GET", "/health")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn idempotent_answers_and_finished_jobs_expire_after_their_retention() {
    let s = common::start(&["--idempotency-retention", "1s", "--job-retention", "1s"]).await;
    s.collection(json!({"name": "kept"})).await;
    let create = || {
        s.admin("POST", "/v1/collections/kept/records")
            .header("idempotency-key", "order-1")
            .json(json!({"title": "a"}))
    };
    let first = create().send().await;
    assert_eq!(first.status, 201);
    let replay = create().send().await;
    assert_eq!(replay.header("idempotent-replayed"), "true");
    assert_eq!(replay.json()["id"], first.json()["id"]);

    let job = s
        .admin("POST", "/v1/collections/kept/imports")
        .header("content-type", "application/x-ndjson")
        .body("{\"n\": 1}\n{\"n\": 2}\n")
        .send()
        .await;
    assert_eq!(job.status, 202);
    let monitor = job.header("location").to_string();
    for _ in 0..200 {
        if s.admin("GET", &monitor).send().await.status == 303 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.admin("GET", &monitor).send().await.status, 303);

    tokio::time::sleep(Duration::from_millis(2600)).await;
    s.admin("GET", &monitor)
        .send()
        .await
        .assert_error(404, "job_not_found");
    let again = create().send().await;
    assert_eq!(
        again.status, 201,
        "the key's answer expired: the request runs anew"
    );
    assert!(!again.headers.contains_key("idempotent-replayed"));
    assert_ne!(again.json()["id"], first.json()["id"]);
}

/// Wait for a job's monitor to point at its result; the result's path.
async fn finished(s: &common::Server, monitor: &str) -> String {
    for _ in 0..300 {
        let r = s.admin("GET", monitor).send().await;
        if r.status == 303 {
            return r.header("location").to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{monitor} did not finish");
}

#[tokio::test]
async fn an_export_as_ndjson_imports_back_into_the_same_records() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "src"})).await;
    s.collection(json!({"name": "dst"})).await;
    for i in 0..5 {
        s.record(
            "src",
            json!({"id": format!("r{i}"), "n": i, "tags": ["a", i]}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // A changed record: updated_at after created_at.
    s.admin("PATCH", "/v1/collections/src/records/r2")
        .merge_patch(json!({"n": 20}))
        .send()
        .await;

    let export = s.admin("POST", "/v1/collections/src/exports").send().await;
    assert_eq!(export.status, 202);
    let result = finished(&s, export.header("location")).await;
    let lines = s
        .admin("GET", &result)
        .header("accept", "application/x-ndjson")
        .send()
        .await;
    assert_eq!(lines.status, 200);
    assert_eq!(lines.header("content-type"), "application/x-ndjson");
    assert_eq!(lines.text().lines().count(), 5);

    let import = s
        .admin("POST", "/v1/collections/dst/imports")
        .header("content-type", "application/x-ndjson")
        .body(lines.text())
        .send()
        .await;
    assert_eq!(import.status, 202);
    finished(&s, import.header("location")).await;

    let page = |name: &str| {
        let path = format!("/v1/collections/{name}/records");
        let call = s.admin("GET", &path);
        async move { call.send().await.json()["items"].clone() }
    };
    let (before, after) = (page("src").await, page("dst").await);
    assert_eq!(
        before, after,
        "ids, fields, created_at and updated_at all kept"
    );
    assert_ne!(after[2]["created_at"], after[2]["updated_at"]);

    // An import's report has no line-per-record form.
    s.admin("GET", &finished(&s, import.header("location")).await)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .assert_error(406, "not_acceptable");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

#[tokio::test]
async fn a_compressed_page_has_its_own_etag_and_still_gets_304() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "notes"})).await;
    for i in 0..40 {
        s.record(
            "notes",
            json!({"n": i, "text": "a note long enough to be worth compressing"}),
        )
        .await;
    }
    let page = "/v1/collections/notes/records?limit=100";
    let plain = s.admin("GET", page).send().await;
    assert_eq!(plain.status, 200);
    assert!(plain.headers.get("content-encoding").is_none());
    let plain_tag = plain.header("etag").to_string();

    let gz = s
        .admin("GET", page)
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(gz.status, 200);
    assert_eq!(gz.header("content-encoding"), "gzip");
    let vary: Vec<&str> = gz
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        vary.join(",")
            .to_ascii_lowercase()
            .contains("accept-encoding"),
        "{vary:?}"
    );
    assert!(
        gz.bytes.len() * 3 < plain.bytes.len(),
        "{} vs {}",
        gz.bytes.len(),
        plain.bytes.len()
    );
    assert_eq!(gunzip(&gz.bytes), plain.bytes.to_vec());
    // A strong tag names one sequence of bytes: the gzip bytes get their own.
    let gz_tag = gz.header("etag").to_string();
    assert_eq!(
        gz_tag,
        format!("{}-gzip\"", plain_tag.trim_end_matches('"'))
    );

    for (coding, suffix) in [("br", "-br\""), ("zstd", "-zstd\"")] {
        let r = s
            .admin("GET", page)
            .header("accept-encoding", coding)
            .send()
            .await;
        assert_eq!(r.header("content-encoding"), coding);
        assert!(r.header("etag").ends_with(suffix), "{}", r.header("etag"));
    }

    // The compressed copy is still current: 304, naming the tag the client holds.
    let again = s
        .admin("GET", page)
        .header("accept-encoding", "gzip")
        .header("if-none-match", &gz_tag)
        .send()
        .await;
    assert_eq!(again.status, 304);
    assert!(again.bytes.is_empty());
    assert_eq!(again.header("etag"), gz_tag);
    // And the identity tag still works for a client that does not compress.
    let again = s
        .admin("GET", page)
        .header("if-none-match", &plain_tag)
        .send()
        .await;
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), plain_tag);

    // An `Accept-Encoding` that rules out everything is disregarded, never a
    // 406 carrying a page.
    let none = s
        .admin("GET", page)
        .header("accept-encoding", "identity;q=0, *;q=0")
        .send()
        .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.bytes, plain.bytes);
}

#[tokio::test]
async fn a_write_conditioned_on_a_compressed_records_etag_applies() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "docs"})).await;
    let id = s.record("docs", json!({"body": "x".repeat(4000)})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/collections/docs/records/{id}");
    let gz = s
        .admin("GET", &path)
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    let tag = gz.header("etag").to_string();
    assert!(tag.ends_with("-gzip\""), "{tag}");

    let patched = s
        .admin("PATCH", &path)
        .header("if-match", &tag)
        .merge_patch(json!({"title": "kept"}))
        .send()
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    // The same tag is now stale.
    let stale = s
        .admin("PATCH", &path)
        .header("if-match", &tag)
        .merge_patch(json!({"title": "lost"}))
        .send()
        .await;
    stale.assert_error(412, "precondition_failed");

    // Small bodies are sent as they are: gzip would make them larger.
    let small = s.record("docs", json!({"t": 1})).await;
    let small = s
        .admin(
            "GET",
            &format!(
                "/v1/collections/docs/records/{}",
                small["id"].as_str().unwrap()
            ),
        )
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert!(small.headers.get("content-encoding").is_none());
    assert!(!small.header("etag").contains("-gzip"));
}

#[tokio::test]
async fn without_compression_bodies_are_sent_as_they_are() {
    let s = common::start(&["--no-compression"]).await;
    s.collection(json!({"name": "docs"})).await;
    let id = s.record("docs", json!({"body": "x".repeat(4000)})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .admin("GET", &format!("/v1/collections/docs/records/{id}"))
        .header("accept-encoding", "gzip, br, zstd")
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("content-encoding").is_none());
    assert!(r.json()["body"].as_str().unwrap().len() == 4000);
}

/// Every page of `path` (which has no query yet besides `query`), following
/// `next_cursor`, as (id, n, title).
async fn walk(s: &common::Server, path: &str, query: &str) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?{query}&cursor={c}"),
            None => format!("{path}?{query}"),
        };
        let r = s.admin("GET", &url).send().await;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let body = r.json();
        for item in body["items"].as_array().unwrap() {
            out.push((
                item["id"].as_str().unwrap().to_string(),
                item.get("n").cloned().unwrap_or(Value::Null),
                item["title"].clone(),
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => {
                // The Link header carries the same sort, for clients that follow it.
                assert!(r.header("link").contains("sort="), "{}", r.header("link"));
                cursor = Some(c.to_string());
            }
            None => break,
        }
        assert!(out.len() <= 100, "the pages never end");
    }
    out
}

#[tokio::test]
async fn lists_sort_on_several_keys_across_pages_and_count_their_matches() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "books"})).await;
    let titles = ["delta", "alpha", "charlie", "bravo", "echo"];
    for i in 0..23 {
        let mut body =
            json!({"title": titles[i % 5], "shelf": if i % 3 == 0 { "top" } else { "low" }});
        // Repeated numbers, so the title and then the id break ties; some
        // records have no `n` or a null one.
        match i % 7 {
            5 => {}
            6 => body["n"] = Value::Null,
            k => body["n"] = json!(k % 4),
        }
        s.record("books", body).await;
    }
    let path = "/v1/collections/books/records";
    let all = walk(&s, path, "limit=100").await;
    assert_eq!(all.len(), 23);

    let expected = |descending_n: bool| {
        let mut rows = all.clone();
        rows.sort_by(|a, b| {
            let n = |v: &Value| v.as_f64();
            let by_n = match (n(&a.1), n(&b.1)) {
                (None, None) => std::cmp::Ordering::Equal,
                // Missing and null come first ascending, last descending.
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap(),
            };
            let by_n = if descending_n { by_n.reverse() } else { by_n };
            by_n.then(a.2.as_str().cmp(&b.2.as_str()))
                .then(a.0.cmp(&b.0))
        });
        rows
    };
    assert_eq!(
        walk(&s, path, "limit=4&sort=-n,title").await,
        expected(true)
    );
    assert_eq!(
        walk(&s, path, "limit=3&sort=n,title").await,
        expected(false)
    );
    // Descending by id, across pages.
    let mut by_id_desc: Vec<String> = all.iter().map(|r| r.0.clone()).collect();
    by_id_desc.reverse();
    let got: Vec<String> = walk(&s, path, "limit=5&sort=-id")
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(got, by_id_desc);
    // By creation time, newest first, over pages.
    let mut stamps = Vec::new();
    let mut url = format!("{path}?sort=-created_at&limit=6");
    loop {
        let page = s.admin("GET", &url).send().await.json();
        for item in page["items"].as_array().unwrap() {
            stamps.push(item["created_at"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{path}?sort=-created_at&limit=6&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(stamps.len(), 23);
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");

    // The total counts what the filters match, not what the page holds.
    let top = s
        .admin(
            "GET",
            &format!("{path}?filter%5Bshelf%5D=top&count=true&limit=2"),
        )
        .send()
        .await;
    assert_eq!(top.json()["total"], 8);
    assert_eq!(top.json()["items"].as_array().unwrap().len(), 2);
    assert_eq!(top.header("x-total-count"), "8");
    assert!(s
        .admin("GET", path)
        .send()
        .await
        .json()
        .get("total")
        .is_none());

    // What cannot be meant is refused, naming the parameter.
    for (query, param) in [
        ("sort=n,n", "sort"),
        ("sort=id,n", "sort"),
        ("sort=a$b", "sort"),
        ("count=yes", "count"),
    ] {
        let r = s.admin("GET", &format!("{path}?{query}")).send().await;
        r.assert_error(400, "invalid_query");
        assert!(r.text().contains(param), "{}", r.text());
    }
    // A cursor belongs to its sort.
    let first = s
        .admin("GET", &format!("{path}?sort=-n&limit=2"))
        .send()
        .await
        .json();
    let cursor = first["next_cursor"].as_str().unwrap();
    s.admin("GET", &format!("{path}?sort=n&cursor={cursor}"))
        .send()
        .await
        .assert_error(400, "invalid_query");
    s.admin("GET", &format!("{path}?cursor={cursor}"))
        .send()
        .await
        .assert_error(400, "invalid_query");
}

#[tokio::test]
async fn a_finished_job_is_deleted_with_its_result_and_a_running_one_is_not() {
    let s = common::start(&["--fault-injection"]).await;
    s.collection(json!({"name": "big"})).await;
    for i in 0..5 {
        s.record("big", json!({"n": i})).await;
    }
    let export = s.admin("POST", "/v1/collections/big/exports").send().await;
    assert_eq!(export.status, 202);
    let monitor = export.header("location").to_string();
    let result = finished(&s, &monitor).await;
    assert_eq!(s.admin("GET", &result).send().await.status, 200);

    // Jobs are counted by state at each scrape.
    let metrics = s.call("GET", "/metrics").send().await.text();
    assert!(
        metrics.contains("verdict_jobs{state=\"succeeded\"} "),
        "{metrics}"
    );

    // A reader may not delete; a writer may, once.
    let reader = s.token(json!({"scopes": ["read"]})).await;
    s.call("DELETE", &result)
        .token(&reader)
        .send()
        .await
        .assert_error(403, "insufficient_scope");
    let gone = s.admin("DELETE", &result).send().await;
    assert_eq!(gone.status, 204, "{}", gone.text());
    s.admin("GET", &monitor)
        .send()
        .await
        .assert_error(404, "job_not_found");
    s.admin("GET", &result)
        .send()
        .await
        .assert_error(404, "job_not_found");
    s.admin("DELETE", &result)
        .send()
        .await
        .assert_error(404, "job_not_found");

    // A job still queued or running is cancelled first, not deleted.
    let slow = s
        .admin("POST", "/v1/collections/big/imports")
        .header("content-type", "application/x-ndjson")
        .body("{\"n\": 1}\n".repeat(20_000))
        .send()
        .await;
    assert_eq!(slow.status, 202);
    let monitor = slow.header("location").to_string();
    let job = s.admin("GET", &monitor).send().await.json();
    if job["state"] == "queued" || job["state"] == "running" {
        s.admin("DELETE", &format!("{monitor}/result"))
            .send()
            .await
            .assert_error(409, "job_running");
    }
}

#[tokio::test]
async fn a_streamed_export_result_is_compressed_to_its_end() {
    let s = common::start(&[]).await;
    s.collection(json!({"name": "many"})).await;
    for i in 0..30 {
        s.record(
            "many",
            json!({"n": i, "text": "enough text to pass the compression threshold"}),
        )
        .await;
    }
    let export = s.admin("POST", "/v1/collections/many/exports").send().await;
    let result = finished(&s, export.header("location")).await;
    for accept in ["application/json", "application/x-ndjson"] {
        let r = s
            .admin("GET", &result)
            .header("accept", accept)
            .header("accept-encoding", "gzip")
            .send()
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), "gzip");
        let text = String::from_utf8(gunzip(&r.bytes)).unwrap();
        let count = match accept {
            "application/json" => serde_json::from_str::<Value>(&text).unwrap()["records"]
                .as_array()
                .unwrap()
                .len(),
            _ => text.lines().count(),
        };
        assert_eq!(count, 30, "{accept}");
    }
}
