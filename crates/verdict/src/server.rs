//! Serving a router over TCP with the bounds a public server needs: a
//! deadline for request headers, an idle timeout between requests, a write
//! timeout for clients that stop reading, a cap on open connections, and the
//! contract's error body even for requests hyper itself refuses.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use verdict::server::{ConnectionLimits, Server};
//! use verdict::{Contract, Preset};
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Contract::new(Preset::standard()).apply(Router::new().route("/", get(|| async { "ok" })));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Server::new(listener, app)
//!     .limits(ConnectionLimits::default().idle_timeout(Duration::from_secs(30)))
//!     .preset(Preset::standard())
//!     .run_until(tokio::time::sleep(Duration::from_secs(3600))) // or a shutdown signal
//!     .await
//! # }
//! ```
//!
//! Why not `axum::serve`: it takes no limits at all, so one client can hold a
//! connection (and its file descriptor) forever without sending a byte, or
//! pin a large response in memory by never reading it. hyper's own
//! `header_read_timeout` also runs while a keep-alive connection waits for
//! its next request, so it cannot tell a slow request head (seconds) from an
//! idle connection (a minute); the timeouts here are kept per connection, in
//! its socket wrapper, the one piece that sees both the bytes and the requests.
//!
//! What each bound does (defaults in [`ConnectionLimits::default`]):
//! - **header timeout** (10 s): a connection that does not deliver a complete
//!   request head in time is closed; if part of a head had arrived, it gets a
//!   408 first. A new connection must send its first head within it too.
//! - **idle timeout** (60 s): a keep-alive connection with no request in
//!   flight is closed after this long.
//! - **write timeout** (30 s): a response that makes no progress for this long
//!   (the client stopped reading) is abandoned and the connection closed, so
//!   an unread answer does not stay in memory.
//! - **max connections** (4096, and never more than the process's file
//!   limit allows): past it the server stops accepting (new connections wait
//!   in the kernel's backlog), closes its idle connections to make room, and
//!   says so in the log.
//! - Requests hyper refuses before any layer sees them (a URI over 64 KiB,
//!   malformed framing, more than 100 header fields) get the contract's error
//!   body in the preset's format and mapping, with a request id, instead of
//!   hyper's empty one. (hyper's field limit is left at its default: raising
//!   it makes hyper allocate room for that many fields on every request.)
//!
//! The request body's own progress timeout (408) is a layer:
//! `verdict::body_timeout`.

mod connection;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::util::Oneshot;
use tower::ServiceExt;
use tower_service::Service;

use self::connection::{ConnectionState, GuardedIo, InFlight, Rejections};
use crate::preset::Preset;

/// At the connection cap, idle connections are closed once they have been
/// idle this long: a client that has just connected gets the time to send
/// its request.
const REAP_AFTER: Duration = Duration::from_millis(500);

/// Timeouts and caps of the connections a [`Server`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    header_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    max_connections: usize,
}

impl Default for ConnectionLimits {
    /// 10 s for a request head, 60 s idle, 30 s without write progress,
    /// 4096 connections.
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

impl ConnectionLimits {
    /// How long a request head may take to arrive (and a new connection to send its first).
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a keep-alive connection may wait for its next request.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a response may make no progress (the client stopped reading).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The most connections open at once (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The configured cap on open connections.
    pub fn connection_cap(&self) -> usize {
        self.max_connections
    }
}

/// Serves an app (a [`ContractService`](crate::ContractService), or any
/// tower service of axum requests) on a listener within [`ConnectionLimits`].
pub struct Server<S> {
    listener: TcpListener,
    app: S,
    limits: ConnectionLimits,
    preset: Preset,
    problem_base: String,
    drain_for: Duration,
}

impl<S> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("limits", &self.limits)
            .field("preset", &self.preset.name())
            .finish_non_exhaustive()
    }
}

impl<S> Server<S>
where
    S: Service<
            Request<axum::body::Body>,
            Response = Response<axum::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    /// Serves `app` on `listener`; each request carries its peer's address
    /// as axum's [`ConnectInfo`].
    pub fn new(listener: TcpListener, app: S) -> Self {
        Server {
            listener,
            app,
            limits: ConnectionLimits::default(),
            preset: Preset::standard(),
            problem_base: "/problems".to_string(),
            drain_for: Duration::from_secs(30),
        }
    }

    /// The connection limits.
    pub fn limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The preset whose format and mapping the server's own refusals use
    /// (the same one the router's [`Contract`](crate::Contract) keeps).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Where problem `type`s point (as [`Contract::problem_base`](crate::Contract::problem_base)).
    pub fn problem_base(mut self, base: impl Into<String>) -> Self {
        self.problem_base = base.into();
        self
    }

    /// How long a shutdown waits for requests in flight (default 30 s).
    pub fn drain_for(mut self, grace: Duration) -> Self {
        self.drain_for = grace;
        self
    }

    /// Serves until the process ends.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests
    /// in flight finish (up to [`drain_for`](Self::drain_for)) and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let cap = effective_cap(self.limits.max_connections);
        let limits = ConnectionLimits {
            max_connections: cap,
            ..self.limits
        };
        let slots = Arc::new(Semaphore::new(cap));
        let (closing_tx, closing_rx) = watch::channel(false);
        // Bumped when the cap is reached: idle connections close to make room.
        let (reap_tx, reap_rx) = watch::channel(0u64);
        let rejections = Arc::new(Rejections::new(self.preset, self.problem_base));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true);
        let at_cap_warned = AtomicU64::new(0);
        let started = Instant::now();
        let mut shutdown = pin!(shutdown);
        loop {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    let now = started.elapsed().as_secs() + 1;
                    let last = at_cap_warned.load(Ordering::Relaxed);
                    if now >= last + 10 {
                        at_cap_warned.store(now, Ordering::Relaxed);
                        tracing::warn!(
                            max_connections = cap,
                            "connection limit reached: new connections wait in the listen backlog \
                             and idle ones are closed to make room (raise --max-connections, or \
                             put a proxy with its own limits in front)"
                        );
                    }
                    // Ask idle connections to close until one does, checking
                    // again as others become idle long enough.
                    let mut permit = None;
                    while permit.is_none() {
                        reap_tx.send_modify(|n| *n += 1);
                        tokio::select! {
                            p = slots.clone().acquire_owned() => permit = Some(p.expect("never closed")),
                            _ = tokio::time::sleep(REAP_AFTER / 2) => {}
                            _ = &mut shutdown => break,
                        }
                    }
                    match permit {
                        Some(p) => p,
                        None => break,
                    }
                }
            };
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::new(ConnectionState::new());
            let io = GuardedIo::new(stream, state.clone(), limits, rejections.clone());
            let service = ConnectionService {
                app: self.app.clone(),
                remote,
                state: state.clone(),
            };
            let connection = builder.serve_connection(TokioIo::new(io), service);
            let mut closing = closing_rx.clone();
            let mut reap = reap_rx.clone();
            // Only what is asked from now on concerns this connection.
            reap.borrow_and_update();
            tokio::spawn(async move {
                let mut connection = pin!(connection);
                loop {
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(e) = result {
                                tracing::debug!(error = %e, %remote, "connection ended with an error");
                            }
                            break;
                        }
                        Ok(()) = closing.changed() => {
                            if state.is_idle() {
                                break;
                            }
                            connection.as_mut().graceful_shutdown();
                        }
                        Ok(()) = reap.changed() => {
                            if state.is_idle_for(REAP_AFTER) {
                                break;
                            }
                        }
                    }
                }
                drop(permit);
            });
        }
        drop(self.listener);
        let _ = closing_tx.send(true);
        // Every connection holds a permit until it has closed.
        let _ = tokio::time::timeout(self.drain_for, slots.acquire_many(cap as u32)).await;
        Ok(())
    }
}

/// The cap, lowered to what the process's open-file limit allows (with room
/// for the listener, storage and logs), so the cap is reached before the
/// process runs out of file descriptors and stops accepting anyone.
fn effective_cap(wanted: usize) -> usize {
    const RESERVED: usize = 64;
    match open_file_limit() {
        Some(limit) if limit <= wanted + RESERVED => {
            let cap = limit.saturating_sub(RESERVED).max(1);
            tracing::warn!(
                wanted,
                open_file_limit = limit,
                cap,
                "the open-file limit is lower than --max-connections needs; capping connections"
            );
            cap
        }
        _ => wanted,
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<usize> {
    None
}

/// What `axum::serve` does with accept errors: a client that went away is
/// nothing; running out of file descriptors is logged and waited out.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The app as hyper sees it, on one connection: adds [`ConnectInfo`] and
/// keeps the connection's count of requests in flight.
#[derive(Clone)]
struct ConnectionService<S> {
    app: S,
    remote: SocketAddr,
    state: Arc<ConnectionState>,
}

impl<S> hyper::service::Service<Request<Incoming>> for ConnectionService<S>
where
    S: Service<
            Request<axum::body::Body>,
            Response = Response<axum::body::Body>,
            Error = Infallible,
        > + Clone,
{
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ConnectionFuture<S>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = self.state.begin_request();
        req.extensions_mut().insert(ConnectInfo(self.remote));
        ConnectionFuture {
            inner: self.app.clone().oneshot(req.map(axum::body::Body::new)),
            in_flight: Some(in_flight),
        }
    }
}

pin_project! {
    /// The response future of [`ConnectionService`].
    struct ConnectionFuture<S>
    where
        S: Service<Request<axum::body::Body>>,
    {
        #[pin]
        inner: Oneshot<S, Request<axum::body::Body>>,
        in_flight: Option<InFlight>,
    }
}

impl<S> Future for ConnectionFuture<S>
where
    S: Service<
        Request<axum::body::Body>,
        Response = Response<axum::body::Body>,
        Error = Infallible,
    >,
{
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = std::task::ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(res.map(|body| TrackedBody {
            inner: body,
            _in_flight: in_flight,
        })))
    }
}

pin_project! {
    /// A response body that counts as a request in flight until hyper has
    /// sent it (or dropped it).
    struct TrackedBody {
        #[pin]
        inner: axum::body::Body,
        _in_flight: Option<InFlight>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
