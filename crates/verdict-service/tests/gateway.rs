//! `verdict proxy` as operators run it: the real binary in front of the
//! service, its access log, and a gateway following the maintenance switch
//! the service publishes through Redis.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

/// The `verdict` binary running `proxy` with `args`; its base URL, and its
/// log (stderr) as lines.
async fn spawn_gateway(
    args: &[&str],
) -> (
    tokio::process::Child,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .arg("proxy")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = out.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_string();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("the gateway listens in time");
    let log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    (child, base, log)
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

/// GET `url` with hyper's client.
async fn get(url: &str, token: Option<&str>) -> Reply {
    use http_body_util::{BodyExt, Empty};
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut req = http::Request::get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = client
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn the_gateway_logs_one_json_line_per_request_with_its_upstream_and_outcome() {
    let service = common::start(&[]).await;
    let upstream = format!("http://{}", service.addr);
    let (_gw, base, mut log) = spawn_gateway(&["--upstream", &upstream, "--log-json"]).await;
    let r = get(&format!("{base}/v1/collections"), None).await;
    // The service's own 401 passes (it conforms); the request id is the gateway's.
    assert_eq!(r.status, 401);
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = log.next_line().await.unwrap() {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["target"] == "verdict::access" {
                return v;
            }
        }
        panic!("the log ended without an access line");
    })
    .await
    .expect("an access line in time");
    let fields = &line["fields"];
    assert_eq!(fields["status"], 401, "{line}");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "*");
    assert_eq!(fields["request_id"], request_id.as_str());
    assert_eq!(fields["upstream"], upstream.as_str());
    assert_eq!(fields["outcome"], "ok");
    assert_eq!(fields["client"], "127.0.0.1");
}

#[tokio::test]
async fn a_gateway_follows_the_maintenance_switch_the_service_publishes_in_redis() {
    if !common::postgres_and_redis_or_skip("gateway following maintenance").await {
        return;
    }
    let prefix = format!("verdict-gw-{}", uuid::Uuid::new_v4().simple());
    let shared = [
        "--shared",
        "redis://127.0.0.1:6379",
        "--shared-prefix",
        &prefix,
    ];
    let service = common::start(&shared).await;
    let upstream = format!("http://{}", service.addr);
    let mut args = vec!["--upstream", upstream.as_str()];
    args.extend(shared);
    let (_gw, base, _log) = spawn_gateway(&args).await;
    assert_eq!(get(&format!("{base}/livez"), None).await.status, 200);

    let r = service
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": true, "retry_after_seconds": 9}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The gateway answers itself: its own problem type, its own Retry-After.
    let r = get(&format!("{base}/anything"), None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["code"], "maintenance");
    assert_eq!(r.headers["retry-after"], "9");
    assert_eq!(
        get(&format!("{base}/.verdict/health"), None).await.status,
        200
    );

    service
        .admin("PUT", "/v1/admin/maintenance")
        .json(json!({"enabled": false}))
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get(&format!("{base}/livez"), None).await.status, 200);
}

#[tokio::test]
async fn the_readme_gateway_in_three_lines_turns_an_html_404_into_a_problem() {
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok()
    };
    if !(have("curl") && have("python3")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl and python3 are needed under CI"
        );
        eprintln!("skipping: the README's gateway lines need curl and python3");
        return;
    }
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("<!-- gateway:start -->")
        .expect("the gateway block");
    let end = readme.find("<!-- gateway:end -->").expect("its end");
    let block = readme[start..end]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    // Free ports instead of 3000 and 8081, so that parallel runs do not meet.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
            .to_string()
    };
    let script = block.replace("3000", &free()).replace("8081", &free());
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_verdict"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .args(["-c", &format!("set -e\n{script}\nkill $(jobs -p)\n")])
            .env("PATH", path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the lines finish")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // After the gateway's two start-up lines, curl's output: its last answer
    // (on a slow machine a 502 may come first, while Python starts).
    let text = &stdout[stdout.rfind("HTTP/1.1 ").expect("curl's output")..];
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{text}\n{log}"
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{text}"
    );
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["code"], "not_found");
    assert!(
        !text.contains("<html") && !text.contains("<!DOCTYPE"),
        "{text}"
    );
}
