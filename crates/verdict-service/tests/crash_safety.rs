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

/// Under `--log-json` every line the service writes to stderr is JSON, a
/// handler's panic included; RUST_LOG chooses what is logged; each request
/// has one access line.
#[tokio::test]
async fn under_log_json_every_line_is_json_with_one_access_line_per_request_and_panics_included() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let data = common::fresh_data(dir.path()).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data", &data])
        .args([
            "--admin-token",
            common::ADMIN,
            "--fault-injection",
            "--log-json",
        ])
        .env_remove("VERDICT_LOG")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = stdout.next_line().await.unwrap().expect("listening");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    let client = common::client();
    let panicked = client
        .request(
            hyper::Request::get(format!("{base}/v1/collections"))
                .header("authorization", format!("Bearer {}", common::ADMIN))
                .header("fault-injection", "panic")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    // A refusal is logged at debug: shown only because RUST_LOG asks for it.
    let refused = client
        .request(
            hyper::Request::get(format!("{base}/v1/collections"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let served = client
        .request(
            hyper::Request::get(format!("{base}/v1/collections"))
                .header("authorization", format!("Bearer {}", common::ADMIN))
                .header("x-request-id", "access-log-1")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    child.start_kill().unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut lines = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(5), stderr.next_line()).await
    {
        lines.push(line);
    }
    assert!(!lines.is_empty());
    for line in &lines {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not JSON: {line}");
    }
    assert!(
        lines.iter().any(|l| l.contains("a thread panicked")),
        "the panic is one JSON event: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "RUST_LOG=debug shows debug events"
    );
    // One access line per request, with what an operator greps for.
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "verdict::access")
        .collect();
    assert_eq!(access.len(), 3, "{access:?}");
    let line = access
        .iter()
        .find(|v| v["fields"]["request_id"] == "access-log-1")
        .expect("the served request's line");
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/v1/collections");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["token"], "admin");
    assert_eq!(fields["client"], "127.0.0.1");
    assert!(fields["duration_ms"].as_f64().is_some());
    assert!(access
        .iter()
        .any(|v| v["fields"]["status"] == 401 && v["fields"]["token"] == "-"));
}

/// A start that fails on "address in use" burns nothing: the admin token is
/// generated (and printed) only by a start that got its port.
#[tokio::test]
async fn a_start_that_cannot_listen_does_not_burn_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("verdict.db");
    let data = data.to_str().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let run = |listen: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--listen", &listen, "--data", data])
            .env_remove("VERDICT_ADMIN_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let failed = run(port.clone()).wait_with_output().unwrap();
    assert!(!failed.status.success());
    let out = String::from_utf8_lossy(&failed.stdout);
    assert!(!out.contains("admin token"), "{out}");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("cannot listen"));

    let mut started = run("127.0.0.1:0".into());
    let stdout = started.stdout.take().unwrap();
    let lines: Vec<String> = {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let done = line.starts_with("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    };
    started.kill().unwrap();
    let _ = started.wait();
    let text = lines.join("\n");
    assert!(text.contains("admin token (shown once"), "{text}");
    assert!(text.contains("docs on http://"), "{text}");
    assert!(text.contains("with SQLite at"), "{text}");
}
