//! The real binary, killed with SIGKILL: no acknowledged write is lost or
//! half-written, and a job survives the restart.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::Child;

struct Binary {
    child: Child,
    base: String,
}

/// Starts `verdict serve` on a free port with `data`; waits until it listens.
async fn start(data: &str) -> Binary {
    let (child, base) = common::spawn_binary(&[
        "--rate-limit",
        "off",
        "--job-rate-limit",
        "off",
        "--data",
        data,
        "--admin-token",
        common::ADMIN,
    ])
    .await;
    Binary { child, base }
}

async fn send(base: &str, method: &str, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
    use http_body_util::{BodyExt, Full};
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {}", common::ADMIN));
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            serde_json::to_vec(&b).unwrap()
        }
        None => Vec::new(),
    };
    let res = common::client()
        .request(req.body(Full::new(bytes::Bytes::from(bytes))).unwrap())
        .await
        .ok()?;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.ok()?.to_bytes();
    Some((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

#[tokio::test]
async fn acknowledged_creates_survive_sigkill_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let mut server = start(&data).await;
    let (s, _) = send(
        &server.base,
        "POST",
        "/v1/collections",
        Some(json!({"name": "log"})),
    )
    .await
    .unwrap();
    assert_eq!(s, 201);

    // Writers send creates as fast as they can; the 201s they get are the ledger.
    let acked: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let base = server.base.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = format!("w{w}-{n}");
                let body = json!({"id": id, "writer": w, "n": n, "payload": "x".repeat(200)});
                match send(
                    &base,
                    "POST",
                    "/v1/collections/log/records",
                    Some(body.clone()),
                )
                .await
                {
                    Some((201, _)) => acked.lock().unwrap().push((id, body)),
                    Some((status, b)) => panic!("unexpected {status}: {b}"),
                    None => return, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.start_kill().unwrap(); // SIGKILL
    server.child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the writers got going: {}", acked.len());

    let server = start(&data).await;
    for (id, body) in &acked {
        let (status, got) = send(
            &server.base,
            "GET",
            &format!("/v1/collections/log/records/{id}"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "acknowledged record {id} is lost");
        for key in ["writer", "n", "payload"] {
            assert_eq!(got[key], body[key], "record {id} is not intact");
        }
    }
    // Whatever else was committed (a write whose 201 never arrived) is whole too.
    let mut cursor: Option<String> = None;
    let mut total = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/collections/log/records?limit=1000&cursor={c}"),
            None => "/v1/collections/log/records?limit=1000".into(),
        };
        let (status, page) = send(&server.base, "GET", &path, None).await.unwrap();
        assert_eq!(status, 200);
        for r in page["items"].as_array().unwrap() {
            assert_eq!(
                r["payload"].as_str().unwrap().len(),
                200,
                "half-written record {r}"
            );
            total += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert!(total >= acked.len());
}

#[tokio::test]
async fn an_import_running_at_sigkill_finishes_after_the_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let mut server = start(&data).await;
    let (s, _) = send(
        &server.base,
        "POST",
        "/v1/collections",
        Some(json!({"name": "bulk"})),
    )
    .await
    .unwrap();
    assert_eq!(s, 201);
    let lines = 6000;
    // Every 500th line is not JSON, and blank lines are sprinkled in: the
    // report must name each bad line by its number, those before the restart
    // included.
    let mut ndjson = String::new();
    let mut bad_lines = Vec::new();
    let mut number = 0;
    for i in 0..lines {
        if i % 700 == 0 {
            ndjson.push('\n');
            number += 1;
        }
        number += 1;
        if i % 500 == 250 {
            ndjson.push_str("{not json\n");
            bad_lines.push(number);
        } else {
            ndjson.push_str(&format!("{{\"n\": {i}}}\n"));
        }
    }
    let res = common::client()
        .request(
            http::Request::post(format!("{}/v1/collections/bulk/imports", server.base))
                .header("authorization", format!("Bearer {}", common::ADMIN))
                .header("content-type", "application/x-ndjson")
                .body(http_body_util::Full::new(bytes::Bytes::from(ndjson)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job = res.headers()["location"].to_str().unwrap().to_string();
    // Let it get going, then kill the server mid-import.
    for _ in 0..200 {
        let (_, state) = send(&server.base, "GET", &job, None).await.unwrap();
        if state["processed"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();

    let server = start(&data).await;
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, state) = send(&server.base, "GET", &job, None).await.unwrap();
        last = state.clone();
        if status == 303 || state["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        last["state"], "succeeded",
        "the job finished after the restart: {last}"
    );
    let (_, result) = send(&server.base, "GET", &format!("{job}/result"), None)
        .await
        .unwrap();
    let reported: Vec<i64> = result["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["line"].as_i64().unwrap())
        .collect();
    assert_eq!(reported, bad_lines, "{result}");
    assert_eq!(result["failed_count"], bad_lines.len(), "{result}");
    assert_eq!(result["imported"], lines - bad_lines.len(), "{result}");
    // Every line exactly once.
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/collections/bulk/records?limit=1000&cursor={c}"),
            None => "/v1/collections/bulk/records?limit=1000".into(),
        };
        let (_, page) = send(&server.base, "GET", &path, None).await.unwrap();
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(count, lines - bad_lines.len());
}

#[tokio::test]
async fn idempotent_creates_retried_after_sigkill_make_one_record_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let mut server = start(&data).await;
    let (s, _) = send(
        &server.base,
        "POST",
        "/v1/collections",
        Some(json!({"name": "orders"})),
    )
    .await
    .unwrap();
    assert_eq!(s, 201);
    // Creates without an id (the server makes one), each under its own key,
    // as fast as they go; the server is killed in the middle.
    let keys = 400;
    let sent = |base: String, key: usize| async move {
        use http_body_util::{BodyExt, Full};
        let req = http::Request::post(format!("{base}/v1/collections/orders/records"))
            .header("authorization", format!("Bearer {}", common::ADMIN))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("order-{key}"))
            .body(Full::new(bytes::Bytes::from(
                serde_json::to_vec(&json!({"order": key})).unwrap(),
            )))
            .unwrap();
        let res = common::client().request(req).await.ok()?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some((
            status,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        ))
    };
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let base = server.base.clone();
            tokio::spawn(async move {
                for key in (w..keys).step_by(8) {
                    if sent(base.clone(), key).await.is_none() {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    // The client retries every key after the restart: each finds its first
    // answer (or makes the record now), never a second record.
    let server = start(&data).await;
    let mut ids = std::collections::BTreeSet::new();
    for key in 0..keys {
        let (status, body) = sent(server.base.clone(), key).await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["order"], key, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), keys, "one record per key");
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/collections/orders/records?limit=1000&cursor={c}"),
            None => "/v1/collections/orders/records?limit=1000".into(),
        };
        let (_, page) = send(&server.base, "GET", &path, None).await.unwrap();
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(count, keys, "no key made a second record");
}
