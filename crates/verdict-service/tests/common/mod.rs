//! A real server on a real socket (in this process, or the real binary), and
//! an HTTP client for it.
#![allow(dead_code)]

pub mod tour;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use verdict_service::config::{Cli, Command};

pub const ADMIN: &str = "test-admin-secret";

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A server on 127.0.0.1, with a fresh data directory.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    client: HttpClient,
    /// Every status this server answered through [`Server::send`] (for preset checks).
    pub seen: Arc<Mutex<Vec<(String, u16)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The PostgreSQL server tests use (trust auth on the CI machine).
pub fn postgres_admin_url() -> String {
    std::env::var("VERDICT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether this run tests the PostgreSQL backend (`VERDICT_TEST_STORAGE=postgres`).
pub fn on_postgres() -> bool {
    std::env::var("VERDICT_TEST_STORAGE").is_ok_and(|v| v == "postgres")
}

/// A fresh, empty PostgreSQL database; its URL.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed: {e}"));
    let name = format!("verdict_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// `--data` for a new server: a SQLite file in `dir`, or a fresh PostgreSQL
/// database when this run tests PostgreSQL.
pub async fn fresh_data(dir: &std::path::Path) -> String {
    if on_postgres() {
        fresh_postgres().await
    } else {
        dir.join("verdict.db").to_string_lossy().into_owned()
    }
}

/// Starts the service in this process with `extra` flags.
pub async fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = fresh_data(dir.path()).await;
    start_on(dir, data, extra).await
}

/// Starts the service in this process on `data` (which instances may share).
pub async fn start_on(dir: tempfile::TempDir, data: String, extra: &[&str]) -> Server {
    let mut argv = vec![
        "verdict".to_string(),
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data".into(),
        data,
        "--admin-token".into(),
        ADMIN.into(),
    ];
    // Limits a suite sends past on purpose are off unless a test sets them.
    for flag in ["--rate-limit", "--auth-failure-limit"] {
        if !extra.contains(&flag) {
            argv.extend([flag.to_string(), "off".to_string()]);
        }
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!("serve was asked for")
    };
    let storage = verdict_service::open_storage_cached(&args.data, args.record_cache)
        .await
        .unwrap();
    let service = verdict_service::build(args, storage).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = verdict_service::serve_on(listener, service).await;
    });
    Server {
        addr,
        dir,
        client: client(),
        seen: Arc::new(Mutex::new(Vec::new())),
        task,
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {:?}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {} {:?}", self.status, self.headers))
            .to_str()
            .unwrap()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The contract's invariants of an error reply.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.header("cache-control"), "no-store");
        assert!(self.headers.contains_key("x-request-id"));
        if let Some(h) = verdict::status::missing_header(self.status, &self.headers) {
            panic!("{} lacks {h:?}", self.status);
        }
        if !self.bytes.is_empty() {
            let body = self.json();
            let got = body["code"]
                .as_str()
                .or(body["errors"][0]["code"].as_str())
                .unwrap_or_default()
                .to_string();
            assert_eq!(got, code, "{}", self.text());
        }
    }
}

pub struct Call<'a> {
    server: &'a Server,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn call(&self, method: &str, path: &str) -> Call<'_> {
        Call {
            server: self,
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// An admin call.
    pub fn admin(&self, method: &str, path: &str) -> Call<'_> {
        self.call(method, path).token(ADMIN)
    }

    /// Makes a token with `body` (JSON) and returns its secret.
    pub async fn token(&self, body: Value) -> String {
        let r = self.admin("POST", "/v1/tokens").json(body).send().await;
        assert!(r.status.is_success(), "{}", r.text());
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// Makes a collection.
    pub async fn collection(&self, body: Value) {
        let r = self
            .admin("POST", "/v1/collections")
            .json(body)
            .send()
            .await;
        assert!(r.status.is_success(), "{}", r.text());
    }

    /// Makes a record and returns its representation.
    pub async fn record(&self, collection: &str, body: Value) -> Value {
        let r = self
            .admin("POST", &format!("/v1/collections/{collection}/records"))
            .json(body)
            .send()
            .await;
        assert!(r.status.is_success(), "{}", r.text());
        r.json()
    }

    pub fn statuses(&self) -> Vec<(String, u16)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: Value) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
    }

    pub fn merge_patch(self, body: Value) -> Self {
        self.header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(&body).unwrap())
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Reply {
        let uri = format!("http://{}{}", self.server.addr, self.path);
        let mut req = Request::builder().method(self.method.clone()).uri(uri);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(self.body)).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(30), self.server.client.request(req))
            .await
            .expect("the server answers in time")
            .expect("the request goes through");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        self.server.seen.lock().unwrap().push((
            format!("{} {}", self.method, self.path),
            parts.status.as_u16(),
        ));
        Reply {
            status: parts.status,
            headers: parts.headers,
            bytes,
        }
    }
}

/// Whether PostgreSQL and Redis answer; without them (and without `CI`) the
/// scale-out tests skip, saying so; under `CI` they must run.
pub async fn postgres_and_redis_or_skip(test: &str) -> bool {
    let pg = tokio::net::TcpStream::connect("127.0.0.1:5432")
        .await
        .is_ok();
    let redis = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok();
    if pg && redis {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are needed under CI"
        );
    }
    eprintln!("skipping {test}: PostgreSQL or Redis is not reachable on 127.0.0.1 (set CI=true to require them)");
    false
}

/// A TCP proxy the test can cut and restore, standing for a server that goes away.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        drop(socket);
        let p = Proxy {
            port,
            target: target.parse().unwrap(),
            tasks: Arc::default(),
        };
        p.up();
        p
    }

    /// Accepts and forwards connections.
    pub fn up(&self) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], self.port)))
            .unwrap();
        let listener = socket.listen(128).unwrap();
        let target = self.target;
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(conn);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the port and every connection through it.
    pub fn down(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// Starts the real `verdict` binary with `args` (after `serve`); waits until it
/// listens and returns it with its base URL. It is killed when dropped.
pub async fn spawn_binary(args: &[&str]) -> (tokio::process::Child, String) {
    spawn_binary_limited(None, args).await
}

/// As [`spawn_binary`], with the process's open-file limit set to `files`
/// (through the shell's `ulimit`, which then `exec`s the binary).
pub async fn spawn_binary_limited(
    files: Option<u32>,
    args: &[&str],
) -> (tokio::process::Child, String) {
    spawn_binary_logging(files, args, std::process::Stdio::null()).await
}

/// As [`spawn_binary_limited`], with the log (stderr) going to `log`.
pub async fn spawn_binary_logging(
    files: Option<u32>,
    args: &[&str],
    log: std::process::Stdio,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let binary = env!("CARGO_BIN_EXE_verdict");
    let mut command = match files {
        Some(n) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(binary);
            c
        }
        None => tokio::process::Command::new(binary),
    };
    let mut child = command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_string();
            }
        }
        panic!("the binary exited before listening");
    })
    .await
    .expect("the binary listens in time");
    (child, base)
}

/// A process's resident memory now and at its peak, in MiB (Linux's `/proc`).
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("a live process");
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
