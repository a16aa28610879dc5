//! One connection's bounds, kept where both the bytes and the requests are
//! visible: the socket wrapper ([`GuardedIo`]) reads the connection's
//! [`ConnectionState`], which the service updates as requests start and their
//! responses finish.
//!
//! - While no request is in flight, a read that waits is timed: until the
//!   head in progress is due (header timeout), or until the connection has
//!   idled long enough (idle timeout). A request in flight is not timed here:
//!   its body has its own progress timeout, its handler its deadline.
//! - A write that waits is timed (write timeout), whatever is in flight.
//! - A response hyper writes on its own, for a request it could not parse,
//!   is replaced by the contract's error body (see [`Rejections`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::ConnectionLimits;
use crate::error::ApiError;
use crate::format::{self, RenderContext};
use crate::preset::Preset;

/// What the socket wrapper and the service share about one connection.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    opened: Instant,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// Nanoseconds after `opened` when the connection last became idle.
    idle_since: AtomicU64,
    /// Nanoseconds after `opened` (plus one) when the first byte of the next
    /// request head arrived; 0 while none has.
    head_started: AtomicU64,
    /// The read that waits untimed while a request is in flight: woken when
    /// the last one ends, so it starts timing the idle connection.
    reader: AtomicWaker,
}

impl ConnectionState {
    pub(crate) fn new() -> Self {
        ConnectionState {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            reader: AtomicWaker::new(),
        }
    }

    fn since_opened(&self) -> u64 {
        self.opened.elapsed().as_nanos() as u64
    }

    /// A request was dispatched; it is in flight until the token drops.
    pub(crate) fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// No request in flight and no request head arriving.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
    }

    /// Idle, and for at least `age` (since it opened, or since its last response).
    pub(crate) fn is_idle_for(&self, age: Duration) -> bool {
        if !self.is_idle() {
            return false;
        }
        let since = if self.served.load(Ordering::Relaxed) == 0 {
            0
        } else {
            self.idle_since.load(Ordering::Relaxed)
        };
        self.since_opened().saturating_sub(since) >= age.as_nanos() as u64
    }

    fn note_head_bytes(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started
                .store(self.since_opened() + 1, Ordering::Relaxed);
        }
    }

    /// When a read waiting now must give up, and why.
    fn read_deadline(&self, limits: &ConnectionLimits) -> (Instant, Waiting) {
        let at = |nanos: u64| self.opened + Duration::from_nanos(nanos);
        match self.head_started.load(Ordering::Relaxed) {
            0 if self.served.load(Ordering::Relaxed) == 0 => {
                (self.opened + limits.header_timeout, Waiting::FirstHead)
            }
            0 => (
                at(self.idle_since.load(Ordering::Relaxed)) + limits.idle_timeout,
                Waiting::Idle,
            ),
            started => (at(started - 1) + limits.header_timeout, Waiting::HeadBytes),
        }
    }
}

/// A request in flight on a connection; dropped when its response is sent or abandoned.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<ConnectionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        state
            .idle_since
            .store(state.since_opened(), Ordering::Relaxed);
        if state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            state.reader.wake();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    /// A new connection, for its first request.
    FirstHead,
    /// Part of a request head has arrived.
    HeadBytes,
    /// Between requests.
    Idle,
}

/// Renders what the server answers on its own (a request hyper could not
/// parse, a head that stopped arriving) in the preset's format and mapping.
#[derive(Debug)]
pub(crate) struct Rejections {
    preset: Preset,
    problem_base: String,
}

impl Rejections {
    pub(crate) fn new(preset: Preset, problem_base: String) -> Self {
        Rejections {
            preset,
            problem_base,
        }
    }

    /// A whole HTTP/1.1 response for `error`, closing the connection.
    fn response(&self, error: &ApiError) -> Vec<u8> {
        let request_id = crate::ids::new_id();
        let status = self.preset.map(error.status());
        let format = self.preset.format();
        let body = format::render(
            error,
            status,
            format,
            &RenderContext {
                request_id: Some(&request_id),
                instance: None,
                problem_base: &self.problem_base,
                head_only: false,
            },
        );
        tracing::debug!(
            status = status.as_u16(),
            request_id,
            detail = error.detail(),
            "request refused before routing"
        );
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\n\
             x-request-id: {request_id}\r\nconnection: close\r\ndate: {}\r\n\r\n",
            status.as_u16(),
            crate::status::reason(status),
            format.content_type(),
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// The contract's answer in place of hyper's own empty one, if `buf` is one.
    ///
    /// hyper answers a request it cannot parse itself, before any layer runs,
    /// with a bare status line and only `connection`, `content-length: 0` and
    /// `date` (hyper 1's `role::Server::on_error`). No response of a router
    /// under [`Contract`](crate::Contract) looks like that (every one carries
    /// `x-request-id`), so the shape identifies it.
    fn replace(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let status = hyper_rejection_status(buf)?;
        let error = match status {
            StatusCode::URI_TOO_LONG => ApiError::uri_too_long(65534),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::header_fields_too_large(
                "The request's header section is larger than this server parses.",
            ),
            _ => ApiError::bad_request(
                "The request is not valid HTTP/1.1 (its request line, header fields or framing \
                 could not be parsed).",
            )
            .with_code("malformed_request")
            .with_title("Malformed request"),
        };
        Some(self.response(&error))
    }
}

/// The status of an automatic hyper rejection in `buf`, if it is one.
fn hyper_rejection_status(buf: &[u8]) -> Option<StatusCode> {
    let status = match buf.get(..13)? {
        b"HTTP/1.1 400 " => StatusCode::BAD_REQUEST,
        b"HTTP/1.1 414 " => StatusCode::URI_TOO_LONG,
        b"HTTP/1.1 431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let only_hyper_headers = head.split("\r\n").skip(1).all(|line| {
        let name = line.split(':').next().unwrap_or("").trim();
        matches!(name, "connection" | "content-length" | "date")
            && (name != "content-length" || line.ends_with(": 0"))
    });
    (only_hyper_headers && buf.len() == end + 4).then_some(status)
}

/// A TCP stream with the connection's read and write timeouts, and hyper's
/// own rejections replaced.
pub(crate) struct GuardedIo {
    io: TcpStream,
    state: Arc<ConnectionState>,
    limits: ConnectionLimits,
    rejections: Arc<Rejections>,
    read_timer: Option<(Instant, Pin<Box<Sleep>>)>,
    write_timer: Option<Pin<Box<Sleep>>>,
    write_timer_armed: bool,
    /// Bytes to send in place of what hyper wrote, and how many are sent.
    replacement: Option<(Vec<u8>, usize)>,
}

impl GuardedIo {
    pub(crate) fn new(
        io: TcpStream,
        state: Arc<ConnectionState>,
        limits: ConnectionLimits,
        rejections: Arc<Rejections>,
    ) -> Self {
        GuardedIo {
            io,
            state,
            limits,
            rejections,
            read_timer: None,
            write_timer: None,
            write_timer_armed: false,
            replacement: None,
        }
    }

    /// Whether a read that waits since now has waited too long.
    fn read_timed_out(&mut self, cx: &mut Context<'_>) -> Option<Waiting> {
        let (deadline, waiting) = self.state.read_deadline(&self.limits);
        let (at, timer) = self.read_timer.get_or_insert_with(|| {
            (
                deadline,
                Box::pin(tokio::time::sleep_until(deadline.into())),
            )
        });
        if *at != deadline {
            timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            *at = deadline;
        }
        timer.as_mut().poll(cx).is_ready().then_some(waiting)
    }

    /// Polls a write that did not progress against the write timeout.
    fn write_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.limits.write_timeout;
        let timer = self
            .write_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.write_timer_armed {
            timer.as_mut().reset(deadline);
            self.write_timer_armed = true;
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// Runs a write, timing it while it makes no progress.
    fn timed_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match write(Pin::new(&mut self.io), cx) {
            Poll::Ready(out) => {
                self.write_timer_armed = false;
                Poll::Ready(out)
            }
            Poll::Pending if self.write_timed_out(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Sends the rest of a replacement response, if one is queued.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = self.replacement.take() {
            if sent == bytes.len() {
                self.replacement = Some((bytes, sent));
                return Poll::Ready(Ok(()));
            }
            let rest = &bytes[sent..];
            match self.timed_write(cx, |io, cx| io.poll_write(cx, rest)) {
                Poll::Ready(Ok(n)) => self.replacement = Some((bytes, sent + n)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.replacement = Some((bytes, sent));
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes hyper's bytes as written; queues the replacement instead if they
    /// are one of its rejections. `None`: write them as they are.
    fn intercept(&mut self, cx: &mut Context<'_>, first: &[u8], total: usize) -> Option<usize> {
        if self.replacement.is_some() {
            // The connection is closing after a replaced rejection: hyper's
            // own bytes for it are not sent.
            return Some(total);
        }
        if self.state.in_flight.load(Ordering::Acquire) != 0 {
            return None;
        }
        let replacement = self.rejections.replace(first)?;
        self.replacement = Some((replacement, 0));
        // Best effort now; flush and shutdown finish it.
        let _ = self.drain_replacement(cx);
        Some(total)
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.note_head_bytes();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.state.in_flight.load(Ordering::Acquire) != 0 {
                    this.state.reader.register(cx.waker());
                    // The last request may have ended since the check.
                    if this.state.in_flight.load(Ordering::Acquire) != 0 {
                        return Poll::Pending;
                    }
                }
                match this.read_timed_out(cx) {
                    None => Poll::Pending,
                    Some(waiting) => {
                        if waiting == Waiting::HeadBytes {
                            // RFC 9110 15.5.9: the client did not finish its request in time.
                            let error = ApiError::request_timeout(
                                "The request head stopped arriving before it was complete.",
                            );
                            this.replacement = Some((this.rejections.response(&error), 0));
                            let _ = this.drain_replacement(cx);
                        }
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            match waiting {
                                Waiting::Idle => "the connection was idle too long",
                                _ => "the request head did not arrive in time",
                            },
                        )))
                    }
                }
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(n) = this.intercept(cx, buf, buf.len()) {
            return Poll::Ready(Ok(n));
        }
        this.timed_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let total = bufs.iter().map(|b| b.len()).sum();
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        if let Some(n) = this.intercept(cx, first, total) {
            return Poll::Ready(Ok(n));
        }
        this.timed_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain_replacement(cx))?;
        this.timed_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain_replacement(cx))?;
        this.timed_write(cx, |io, cx| io.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_rejections_are_recognized_and_nothing_else() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 24 Nov 2026 14:24:29 GMT\r\n\r\n";
        assert_eq!(
            hyper_rejection_status(bare),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nx-request-id: 1\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hyper_rejection_status(ours), None);
        let empty_but_ours =
            b"HTTP/1.1 400 Bad Request\r\nx-request-id: 1\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_rejection_status(empty_but_ours), None);
        assert_eq!(hyper_rejection_status(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn replacements_follow_the_preset() {
        let bare =
            b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let seed4 = Rejections::new(Preset::by_name("seed-004").unwrap(), "/problems".into());
        let out = String::from_utf8(seed4.replace(bare).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
        assert!(out.contains("x-request-id: "), "{out}");
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 400);
        assert_eq!(body["code"], "uri_too_long");
    }
}
