//! The upstreams: round robin over those whose circuit is closed, passive
//! health (consecutive failures open a circuit for a while), and one request
//! forwarded with the failure taxonomy of [`crate::failure`].

use std::error::Error as _;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use std::path::Path;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::failure::Failure;

/// Consecutive failures that open an upstream's circuit.
pub const FAILURES_TO_OPEN: u32 = 3;

/// One upstream server.
struct Upstream {
    /// `http://host:port` (a path prefix is kept).
    base: String,
    /// Its scheme and authority, parsed once.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Its path prefix without the trailing `/` (`""` for none).
    prefix: String,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// The counter and timer of its successful attempts, looked up once
    /// (a labelled lookup per request is measurable at this rate).
    ok: crate::observe::Attempts,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The upstreams and the client that reaches them.
#[derive(Debug)]
pub struct Upstreams {
    list: Vec<Upstream>,
    next: AtomicUsize,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    timeout: Duration,
    rest: Duration,
}

/// The roots `https://` upstreams are verified against: Mozilla's (compiled
/// in, from `webpki-roots`: nothing is fetched at run time), plus the
/// certificates of `ca_file` (PEM) for a private CA or a self-signed upstream.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("--upstream-ca {}: {e}", file.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--upstream-ca {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--upstream-ca {}: no PEM certificate in it",
                file.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("--upstream-ca {}: {e}", file.display()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // ALPN (HTTP/1.1 only) is set by the connector builder.
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Upstreams {
    /// `bases` (`http://host:port` or `https://...`), with a connect and
    /// response-head `timeout`, resting a failing upstream for `rest`;
    /// `https://` upstreams are verified against Mozilla's roots and the
    /// certificates in `ca_file`.
    pub fn new(
        bases: &[String],
        timeout: Duration,
        rest: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        if bases.is_empty() {
            return Err("give at least one --upstream http://host:port".into());
        }
        let mut list = Vec::new();
        for b in bases {
            let uri: Uri = b
                .parse()
                .map_err(|e| format!("--upstream {b}: not a URL: {e}"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
                return Err(format!(
                    "--upstream {b}: write http://host:port or https://host:port"
                ));
            }
            let parts = uri.into_parts();
            list.push(Upstream {
                base: b.trim_end_matches('/').to_string(),
                scheme: parts.scheme.expect("checked above"),
                authority: parts.authority.expect("checked above"),
                prefix: parts
                    .path_and_query
                    .map(|p| p.path().trim_end_matches('/').to_string())
                    .unwrap_or_default(),
                failures: AtomicU32::new(0),
                open_until: Mutex::new(None),
                ok: crate::observe::Attempts::new(list.len() + 1, "ok"),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        // https:// needs the TCP connector to let it through.
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        Ok(Upstreams {
            list,
            next: AtomicUsize::new(0),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            rest,
        })
    }

    /// The base URL of the upstream at `position` (from 0).
    pub fn base(&self, position: usize) -> &str {
        &self.list[position].base
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never: `new` refuses that).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The next upstream whose circuit is closed (round robin), skipping
    /// `tried`; or how long until the first circuit closes.
    fn pick(&self, tried: &[usize]) -> Result<usize, Duration> {
        let now = Instant::now();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut soonest = self.rest;
        for k in 0..self.list.len() {
            let i = (start + k) % self.list.len();
            if tried.contains(&i) {
                continue;
            }
            let mut open = self.list[i].open_until.lock().expect("not poisoned");
            match *open {
                Some(until) if until > now => soonest = soonest.min(until - now),
                Some(_) => {
                    // Half open: one request tries it again.
                    *open = None;
                    return Ok(i);
                }
                None => return Ok(i),
            }
        }
        Err(soonest)
    }

    /// Each upstream's state now: its base, whether its circuit is open
    /// (resting), and its failures in a row.
    pub fn states(&self) -> Vec<(String, bool, u32)> {
        let now = Instant::now();
        self.list
            .iter()
            .map(|u| {
                let open = u
                    .open_until
                    .lock()
                    .expect("not poisoned")
                    .is_some_and(|until| until > now);
                (u.base.clone(), open, u.failures.load(Ordering::Relaxed))
            })
            .collect()
    }

    fn succeeded(&self, i: usize) {
        self.list[i].failures.store(0, Ordering::Relaxed);
    }

    fn failed(&self, i: usize) {
        let n = self.list[i].failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= FAILURES_TO_OPEN {
            *self.list[i].open_until.lock().expect("not poisoned") =
                Some(Instant::now() + self.rest);
            self.list[i].failures.store(0, Ordering::Relaxed);
            tracing::warn!(upstream = %self.list[i].base, rest_s = self.rest.as_secs(), "upstream circuit opened");
        }
    }

    /// Sends `req` (whose URI is the path and query) to an upstream; an
    /// idempotent request that never reached one is tried on the next.
    /// On success, the upstream's position in the list (from 0) comes with the answer.
    pub async fn forward(
        &self,
        req: Request<Body>,
    ) -> Result<(Response<hyper::body::Incoming>, usize), Failure> {
        let (parts, body) = req.into_parts();
        let retryable = matches!(
            parts.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        // Only a request without a body to lose is sent twice (below).
        let mut body = Some(body);
        let mut tried = Vec::new();
        loop {
            let i = self.pick(&tried).map_err(Failure::NoHealthyUpstream)?;
            tried.push(i);
            let upstream = &self.list[i];
            let uri = upstream
                .uri_for(&parts.uri)
                .map_err(|e| Failure::InvalidResponse(format!("upstream URI: {e}")))?;
            let mut out = Request::new(body.take().unwrap_or_else(Body::empty));
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.headers_mut() = parts.headers.clone();
            let sent = Instant::now();
            let result = tokio::time::timeout(self.timeout, self.client.request(out)).await;
            let failure = match result {
                Ok(Ok(res)) => {
                    self.succeeded(i);
                    upstream.ok.record(sent.elapsed());
                    return Ok((res, i));
                }
                Err(_) => Failure::Timeout(format!(
                    "{}: no response head within {:?}",
                    upstream.base, self.timeout
                )),
                Ok(Err(e)) => classify(&upstream.base, &e),
            };
            crate::observe::upstream_attempt(i + 1, failure.label(), sent.elapsed());
            self.failed(i);
            let again = retryable
                && failure.before_sending()
                && tried.len() < self.list.len()
                && !verdict::content_type::has_body(&parts.headers);
            if !again {
                return Err(failure);
            }
            tracing::info!(upstream = %upstream.base, failure = failure.label(), "retrying on another upstream");
        }
    }
}

impl Upstream {
    /// The upstream's URI for a request to `uri` (its path and query, under
    /// the upstream's own prefix).
    fn uri_for(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let path_and_query = if self.prefix.is_empty() {
            http::uri::PathAndQuery::try_from(path_and_query)?
        } else {
            http::uri::PathAndQuery::try_from(format!("{}{path_and_query}", self.prefix))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

/// The class of a client error: connect errors (refused, DNS, connect
/// timeout) before anything was sent; the rest after.
fn classify(base: &str, e: &hyper_util::client::legacy::Error) -> Failure {
    let mut chain = String::new();
    let mut source = e.source();
    let mut timed_out = false;
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        timed_out |= s.to_string().contains("timed out");
        source = s.source();
    }
    let cause = format!("{base}: {e}{chain}");
    if e.is_connect() {
        if timed_out {
            Failure::Timeout(cause)
        } else {
            Failure::Unreachable(cause)
        }
    } else {
        Failure::InvalidResponse(cause)
    }
}

/// A body that fails if the upstream sends nothing for `idle` (a stalled
/// body after the head has gone out can only reset the stream).
pub fn with_idle_timeout(body: hyper::body::Incoming, idle: Duration) -> Body {
    use futures_util::StreamExt;
    use http_body_util::BodyExt;
    let frames = http_body_util::BodyStream::new(body.map_err(std::io::Error::other));
    let stream =
        futures_util::stream::unfold((frames, false), move |(mut frames, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, frames.next()).await {
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Some((Ok::<Bytes, std::io::Error>(data), (frames, false))),
                    // Trailers are hop-by-hop material here: dropped.
                    Err(_) => Some((Ok(Bytes::new()), (frames, false))),
                },
                Ok(Some(Err(e))) => Some((Err(e), (frames, true))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the upstream body stalled",
                    )),
                    (frames, true),
                )),
            }
        });
    Body::from_stream(stream.fuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstreams_prefix_is_kept_in_front_of_the_path_and_query() {
        let ups = Upstreams::new(
            &[
                "http://127.0.0.1:1/api/".into(),
                "http://127.0.0.1:2".into(),
            ],
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        let uri: Uri = "/things/7?q=1".parse().unwrap();
        assert_eq!(
            ups.list[0].uri_for(&uri).unwrap(),
            "http://127.0.0.1:1/api/things/7?q=1"
        );
        assert_eq!(
            ups.list[1].uri_for(&uri).unwrap(),
            "http://127.0.0.1:2/things/7?q=1"
        );
        assert!(Upstreams::new(&["ftp://x".into()], Duration::ZERO, Duration::ZERO, None).is_err());
    }
}
