//! The audit's HTTP client: every request it sends, paced, with what came
//! back kept as an [`Exchange`] for the rules to judge and the report to
//! reproduce (as a curl line).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;

/// The most of a response body kept (bodies are judged, not stored).
const MAX_BODY: usize = 1 << 20;

/// One request and what came back.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The method sent.
    pub method: Method,
    /// The path and query sent (under the base URL).
    pub path: String,
    /// The headers sent.
    pub request_headers: HeaderMap,
    /// The body sent.
    pub request_body: Bytes,
    /// The answer, or why there was none.
    pub outcome: Result<Answer, String>,
    /// The base URL, for the curl line.
    base: String,
}

/// A response.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body (up to 1 MiB).
    pub body: Bytes,
}

impl Answer {
    /// A header as text (`""` when absent or not text).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Exchange {
    /// The status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().map(|a| a.status.as_u16())
    }

    /// The exchange as text: the request's line and headers, then the
    /// response's status, headers and the start of its body (for the HTML
    /// report's expandable failures).
    pub fn transcript(&self) -> String {
        let mut out = format!("{} {}\n", self.method, shorten(&self.path, 200));
        for (name, value) in &self.request_headers {
            out.push_str(&format!(
                "{name}: {}\n",
                shorten(value.to_str().unwrap_or("<binary>"), 200)
            ));
        }
        if !self.request_body.is_empty() {
            out.push_str(&format!(
                "\n{}\n",
                shorten(&String::from_utf8_lossy(&self.request_body), 500)
            ));
        }
        out.push('\n');
        match &self.outcome {
            Ok(a) => {
                out.push_str(&format!(
                    "{} {}\n",
                    a.status.as_u16(),
                    a.status.canonical_reason().unwrap_or("")
                ));
                for (name, value) in &a.headers {
                    out.push_str(&format!(
                        "{name}: {}\n",
                        shorten(value.to_str().unwrap_or("<binary>"), 200)
                    ));
                }
                if !a.body.is_empty() {
                    out.push_str(&format!(
                        "\n{}\n",
                        shorten(&String::from_utf8_lossy(&a.body), 2000)
                    ));
                }
            }
            Err(e) => out.push_str(&format!("(no answer: {e})\n")),
        }
        out
    }

    /// A curl command that sends the same request.
    pub fn curl(&self) -> String {
        let mut out = format!("curl -si -X {}", self.method);
        for (name, value) in &self.request_headers {
            // Long values (the oversized-header probes) are abbreviated.
            let value = shorten(value.to_str().unwrap_or(""), 80);
            out.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
        }
        if !self.request_body.is_empty() {
            out.push_str(&format!(
                " --data-binary {}",
                shell_quote(&String::from_utf8_lossy(&self.request_body))
            ));
        }
        let url = shorten(&format!("{}{}", self.base, self.path), 200);
        out.push_str(&format!(" {}", shell_quote(&url)));
        out
    }
}

/// `s`, cut to about `max` bytes (on a character boundary) with the length said.
fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...({} bytes)", &s[..end], s.len())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// Path and query under the base.
    pub path: String,
    /// Headers beyond the audit's own (`--header`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl Call {
    /// `method path`, no headers, no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Call {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// With a header (an invalid one is dropped: probes build their own).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.push((n, v));
        }
        self
    }

    /// With `Authorization: Bearer token`.
    pub fn bearer(self, token: Option<&str>) -> Self {
        match token {
            Some(t) => self.header("authorization", &format!("Bearer {t}")),
            None => self,
        }
    }

    /// With a body and its `Content-Type`.
    pub fn body(self, content_type: &str, body: impl Into<Bytes>) -> Self {
        let mut c = self.header("content-type", content_type);
        c.body = body.into();
        c
    }
}

/// Sends the audit's requests, at most `rate` a second.
pub struct Client {
    base: String,
    authority: String,
    extra: Vec<(HeaderName, HeaderValue)>,
    hyper: Hyper<HttpConnector, Full<Bytes>>,
    interval: Duration,
    next: Instant,
    timeout: Duration,
    paced: bool,
    max_wait: Duration,
    /// Every exchange so far.
    pub log: Vec<Exchange>,
}

impl Client {
    /// A client for `base` (`http://host:port/prefix`).
    pub fn new(
        base: &str,
        extra: Vec<(HeaderName, HeaderValue)>,
        rate: f64,
        timeout: Duration,
    ) -> Result<Self, String> {
        let base = base.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .map_err(|e| format!("`{base}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(format!(
                    "`{other}://` is not supported yet: audit over http:// (put a local TLS-terminating proxy in front)"
                ))
            }
            None => return Err(format!("`{base}` has no scheme: write http://host:port")),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{base}` has no host"))?
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        Ok(Client {
            base,
            authority,
            extra,
            hyper: Hyper::builder(TokioExecutor::new())
                .pool_max_idle_per_host(4)
                .build(connector),
            interval: Duration::from_secs_f64(1.0 / rate.max(0.1)),
            next: Instant::now(),
            timeout,
            paced: true,
            max_wait: Duration::from_secs(5),
            log: Vec::new(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether requests wait for the pace (the load probe sends as fast as it can).
    pub fn unpaced(&mut self, unpaced: bool) {
        self.paced = !unpaced;
    }

    /// Waits `seconds` (a `Retry-After` the API asked for, up to the
    /// longest wait) before the next request.
    pub fn back_off(&mut self, seconds: u64) {
        let wait = Duration::from_secs(seconds).min(self.max_wait);
        self.next = self.next.max(Instant::now() + wait);
    }

    /// The longest a `Retry-After` makes the audit wait (5 s by default).
    pub fn max_wait(&mut self, wait: Duration) {
        self.max_wait = wait;
    }

    /// Sends `call` (after the pace allows) and keeps the exchange; its index in the log.
    pub async fn send(&mut self, call: Call) -> usize {
        let now = Instant::now();
        if self.paced && self.next > now {
            tokio::time::sleep(self.next - now).await;
        }
        self.next = Instant::now() + self.interval;
        let mut headers = HeaderMap::new();
        for (n, v) in self.extra.iter().chain(&call.headers) {
            headers.insert(n.clone(), v.clone());
        }
        let uri = format!("{}{}", self.base, call.path);
        let outcome = self
            .fetch(&call.method, &uri, &headers, call.body.clone())
            .await;
        if let Ok(answer) = &outcome {
            if matches!(answer.status.as_u16(), 429 | 420 | 503) {
                // Paced by the API's own Retry-After, within reason.
                if let Ok(secs) = answer.header("retry-after").parse::<u64>() {
                    self.back_off(secs);
                }
            }
        }
        self.log.push(Exchange {
            method: call.method,
            path: call.path,
            request_headers: headers,
            request_body: call.body,
            outcome,
            base: self.base.clone(),
        });
        self.log.len() - 1
    }

    async fn fetch(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(http::header::HOST, &self.authority);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("the request cannot be built: {e}"))?;
        let res = tokio::time::timeout(self.timeout, self.hyper.request(req))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| format!("no answer: {e}"))?;
        let (parts, body) = res.into_parts();
        let head_only = method == Method::HEAD;
        let body = if head_only {
            Bytes::new()
        } else {
            // Read to the end (so the connection can be reused), keeping
            // the first MAX_BODY bytes.
            let read = async {
                let mut body = body;
                let mut kept = Vec::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| format!("the body broke off: {e}"))?;
                    if let Some(data) = frame.data_ref() {
                        let room = MAX_BODY.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Ok::<_, String>(Bytes::from(kept))
            };
            tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| format!("the body did not finish within {:?}", self.timeout))??
        };
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
