//! The todos example (`examples/todos`), served by `verdict::server` on a
//! real socket and driven the way a client would: through every status its
//! stack can send, each answer checked for its format and required headers,
//! and against the example's OpenAPI document, which must list it.

#[path = "../examples/todos/app.rs"]
#[allow(dead_code, unreachable_pub)]
mod app;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use verdict::server::Server;
use verdict::Preset;

struct Reply {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn serve(preset: Preset, settings: app::Settings, todos: app::Todos) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = app::app(preset.clone(), &settings, todos);
    tokio::spawn(Server::new(listener, service).preset(preset).run());
    addr
}

/// One request on its own connection; `head` is the request line and headers.
async fn send(addr: SocketAddr, head: &str, body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{head}\r\nHost: todos\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    parts.next();
    let status = parts.next().unwrap().parse().unwrap();
    let reason = parts.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        reason,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// The responses the example's document lists for `method path`.
fn documented(doc: &Value, method: &str, path: &str) -> Vec<String> {
    doc["paths"][path][method.to_ascii_lowercase()]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is in the document"))
        .keys()
        .cloned()
        .collect()
}

/// Checks what every error answer of the contract must be, and that the
/// document lists the status under the operation (`route` is its template).
fn check(doc: &Value, reply: &Reply, status: u16, method: &str, route: &str) {
    assert_eq!(
        reply.status, status,
        "{method} {route}: {} {}",
        reply.status, reply.body
    );
    assert!(
        reply.header("x-request-id").is_some(),
        "{method} {route} {status} has a request id"
    );
    assert!(
        documented(doc, method, route).contains(&status.to_string()),
        "{method} {route}: {status} is in the OpenAPI document"
    );
    if status >= 400 {
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{method} {route} {status}"
        );
        let body = reply.json();
        assert_eq!(body["status"], status, "{body}");
        assert!(
            body["code"].is_string() && body["detail"].is_string(),
            "{body}"
        );
        let required: &[&str] = match status {
            401 => &["www-authenticate"],
            405 => &["allow"],
            415 => &["accept-post"],
            429 | 503 => &["retry-after"],
            _ => &[],
        };
        for name in required {
            assert!(reply.header(name).is_some(), "{status} carries {name}");
        }
    }
}

#[tokio::test]
async fn the_todos_example_answers_every_status_as_its_openapi_document_says() {
    let preset = Preset::standard();
    let doc = serde_json::to_value(app::openapi(&preset)).unwrap();
    let todos = app::Todos::default();
    let settings = app::Settings {
        requests_per_minute: 1000,
        max_body: 1024,
        ..app::Settings::default()
    };
    let addr = serve(preset, settings, todos.clone()).await;
    let w = "Authorization: Bearer writer";
    let json_type = "Content-Type: application/json";

    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}\r\n{json_type}"),
        r#"{"title":"write docs"}"#,
    )
    .await;
    check(&doc, &r, 201, "POST", "/todos");
    assert_eq!(r.json()["id"], 1);
    let etag = r
        .header("etag")
        .expect("a new todo has an ETag")
        .to_string();

    let r = send(addr, &format!("GET /todos HTTP/1.1\r\n{w}"), "").await;
    check(&doc, &r, 200, "GET", "/todos");
    assert_eq!(r.json()[0]["title"], "write docs");

    let r = send(
        addr,
        &format!("GET /todos/1 HTTP/1.1\r\n{w}\r\nIf-None-Match: {etag}"),
        "",
    )
    .await;
    check(&doc, &r, 304, "GET", "/todos/{id}");
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}\r\n{json_type}"),
        r#"{"title": "#,
    )
    .await;
    check(&doc, &r, 400, "POST", "/todos");

    let r = send(addr, "GET /todos HTTP/1.1", "").await;
    check(&doc, &r, 401, "GET", "/todos");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"realm="todos""#));

    let r = send(
        addr,
        "DELETE /todos/1 HTTP/1.1\r\nAuthorization: Bearer reader",
        "",
    )
    .await;
    check(&doc, &r, 403, "DELETE", "/todos/{id}");

    let r = send(addr, &format!("GET /todos/7 HTTP/1.1\r\n{w}"), "").await;
    check(&doc, &r, 404, "GET", "/todos/{id}");
    assert_eq!(r.json()["code"], "todo_not_found");

    let r = send(addr, &format!("GET /todos/abc HTTP/1.1\r\n{w}"), "").await;
    check(&doc, &r, 400, "GET", "/todos/{id}");
    assert_eq!(r.json()["code"], "invalid_path_parameter");

    let r = send(addr, "PUT /health HTTP/1.1", "").await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    check(&doc, &r, 405, "GET", "/health");

    let r = send(
        addr,
        &format!("GET /todos HTTP/1.1\r\n{w}\r\nAccept: text/html"),
        "",
    )
    .await;
    check(&doc, &r, 406, "GET", "/todos");

    let r = send(
        addr,
        &format!("PATCH /todos/1 HTTP/1.1\r\n{w}\r\n{json_type}\r\nIf-Match: \"99\""),
        r#"{"done":true}"#,
    )
    .await;
    check(&doc, &r, 412, "PATCH", "/todos/{id}");
    assert_eq!(r.header("etag"), Some(etag.as_str()));

    let r = send(
        addr,
        &format!("PATCH /todos/1 HTTP/1.1\r\n{w}\r\n{json_type}\r\nIf-Match: {etag}"),
        r#"{"done":true}"#,
    )
    .await;
    check(&doc, &r, 200, "PATCH", "/todos/{id}");
    assert_eq!(r.json()["done"], true);

    let big = format!(r#"{{"title":"{}"}}"#, "x".repeat(2000));
    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}\r\n{json_type}"),
        &big,
    )
    .await;
    check(&doc, &r, 413, "POST", "/todos");

    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}\r\nContent-Type: text/plain"),
        "buy milk",
    )
    .await;
    check(&doc, &r, 415, "POST", "/todos");

    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}\r\n{json_type}"),
        r#"{"title":"","done":"no"}"#,
    )
    .await;
    check(&doc, &r, 422, "POST", "/todos");

    let r = send(addr, &format!("BREW /todos HTTP/1.1\r\n{w}"), "").await;
    assert_eq!(r.status, 501, "{}", r.body);

    todos.maintenance.enable(30);
    let r = send(addr, &format!("GET /todos HTTP/1.1\r\n{w}"), "").await;
    check(&doc, &r, 503, "GET", "/todos");
    assert_eq!(r.header("retry-after"), Some("30"));
    todos.maintenance.disable();

    let r = send(addr, &format!("DELETE /todos/1 HTTP/1.1\r\n{w}"), "").await;
    check(&doc, &r, 204, "DELETE", "/todos/{id}");
}

#[tokio::test]
async fn a_rate_limited_client_gets_the_documented_429_and_seed_001_says_enhance_your_calm() {
    for (preset, status) in [
        (Preset::standard(), 429),
        (Preset::by_name("seed-001").unwrap(), 420),
    ] {
        let doc = serde_json::to_value(app::openapi(&preset)).unwrap();
        let settings = app::Settings {
            requests_per_minute: 2,
            ..app::Settings::default()
        };
        let addr = serve(preset, settings, app::Todos::default()).await;
        let mut last = None;
        for _ in 0..3 {
            last = Some(
                send(
                    addr,
                    "GET /todos HTTP/1.1\r\nAuthorization: Bearer reader",
                    "",
                )
                .await,
            );
        }
        let r = last.unwrap();
        assert_eq!(r.status, status, "{}", r.body);
        assert!(
            documented(&doc, "GET", "/todos").contains(&status.to_string()),
            "{status} is documented"
        );
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1);
        assert!(r.header("ratelimit-limit").is_some() || r.header("ratelimit").is_some());
        if status == 420 {
            assert_eq!(r.reason, "Enhance Your Calm");
        }
    }
}

#[tokio::test]
async fn the_document_declares_each_error_format_once_and_every_reference_resolves() {
    for preset in Preset::all() {
        let name = preset.name();
        let doc = serde_json::to_value(app::openapi(&preset)).unwrap();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{name}: {target} resolves");
        }
        // Every operation documents its 4xx in the preset's own media type.
        let media = preset.format().content_type();
        let ops = doc["paths"].as_object().unwrap();
        for (path, item) in ops {
            for (method, op) in item.as_object().unwrap() {
                for (code, response) in op["responses"].as_object().unwrap() {
                    if code.as_str() >= "400" {
                        assert!(
                            response["content"].get(media).is_some(),
                            "{name}: {method} {path} {code} in {media}: {response}"
                        );
                    }
                }
            }
        }
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    }
}

#[tokio::test]
async fn the_todos_example_answers_what_the_stack_refuses_before_any_handler() {
    let preset = Preset::standard();
    let doc = serde_json::to_value(app::openapi(&preset)).unwrap();
    let settings = app::Settings {
        body_timeout: Duration::from_millis(300),
        ..app::Settings::default()
    };
    let addr = serve(preset, settings, app::Todos::default()).await;
    let w = "Authorization: Bearer writer";

    // 408: the body stalls after 10 of its 100 bytes.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /todos HTTP/1.1\r\nHost: todos\r\n{w}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"title\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut raw))
        .await
        .expect("a 408 well before the test's patience runs out")
        .unwrap();
    let text = String::from_utf8_lossy(&raw[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(documented(&doc, "POST", "/todos").contains(&"408".to_string()));

    let long = format!("GET /todos?q={} HTTP/1.1\r\n{w}", "a".repeat(9000));
    let r = send(addr, &long, "").await;
    check(&doc, &r, 414, "GET", "/todos");

    let big_header = format!(
        "GET /todos HTTP/1.1\r\n{w}\r\nX-Padding: {}",
        "b".repeat(40_000)
    );
    let r = send(addr, &big_header, "").await;
    check(&doc, &r, 431, "GET", "/todos");

    let r = send(addr, &format!("GET /v0/todos HTTP/1.1\r\n{w}"), "").await;
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(r.json()["status"], 410);
}

#[tokio::test]
async fn a_failed_save_is_a_logged_500_and_a_stuck_one_a_504() {
    let preset = Preset::standard();
    let doc = serde_json::to_value(app::openapi(&preset)).unwrap();
    let w = "Authorization: Bearer writer\r\nContent-Type: application/json";
    let dir = std::env::temp_dir().join(format!("verdict-todos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Saving onto a directory fails: the io::Error becomes a 500 with an
    // incident id, and its cause (a file path) stays out of the body.
    let settings = app::Settings {
        save_to: Some(dir.clone()),
        ..app::Settings::default()
    };
    let addr = serve(preset.clone(), settings, app::Todos::default()).await;
    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}"),
        r#"{"title":"a"}"#,
    )
    .await;
    check(&doc, &r, 500, "POST", "/todos");
    assert!(r.json()["incident_id"].is_string(), "{}", r.body);
    assert!(!r.body.contains(dir.to_str().unwrap()), "{}", r.body);

    // Saving into a FIFO nobody reads never finishes: the deadline answers 504.
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping the 504 half: mkfifo is not available");
        return;
    }
    let settings = app::Settings {
        save_to: Some(fifo.clone()),
        deadline: Duration::from_millis(200),
        ..app::Settings::default()
    };
    let addr = serve(preset, settings, app::Todos::default()).await;
    let r = send(
        addr,
        &format!("POST /todos HTTP/1.1\r\n{w}"),
        r#"{"title":"a"}"#,
    )
    .await;
    check(&doc, &r, 504, "POST", "/todos");
    // Unblock the writer thread so the test process can exit cleanly.
    let _ =
        std::fs::File::open(&fifo).and_then(|mut f| std::io::copy(&mut f, &mut std::io::sink()));
    let _ = std::fs::remove_dir_all(&dir);
}
