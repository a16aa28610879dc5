//! Typed values of the headers a status requires: `Retry-After`, `Allow`,
//! `WWW-Authenticate`, `Accept-Post`/`Accept-Patch`, `Upgrade`, `Location`.
//!
//! Each type can only hold a value that is valid on the wire, so an
//! [`ApiError`](crate::ApiError) constructor that takes one cannot produce a
//! response missing, or mangling, the header its status needs.
//!
//! ```
//! use std::time::Duration;
//! use verdict::headers::RetryAfter;
//!
//! // Rounded up, never 0: a client told "0" would retry at once.
//! assert_eq!(RetryAfter::from_duration(Duration::from_millis(1)).seconds(), 1);
//! assert_eq!(RetryAfter::from_duration(Duration::from_millis(2001)).seconds(), 3);
//! ```

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// `Retry-After` in whole seconds, rounded up and at least 1.
///
/// `Retry-After: 0` (what several rate-limit crates send when the wait is
/// under a second) tells clients to hammer the server; RFC 9110 section 10.2.3
/// only allows whole seconds, so any positive wait rounds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RetryAfter(u64);

/// The delay a 503 (or any status that needs `Retry-After`) suggests when
/// nothing better is known: one second, the least RFC 9110's integer form says.
pub const DEFAULT_RETRY_AFTER: RetryAfter = RetryAfter(1);

impl RetryAfter {
    /// The header's name.
    pub const NAME: HeaderName = http::header::RETRY_AFTER;

    /// A wait of `duration`, rounded up to whole seconds, at least 1.
    pub fn from_duration(duration: Duration) -> Self {
        let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        RetryAfter(secs.max(1))
    }

    /// A wait of `seconds`, at least 1.
    pub fn from_secs(seconds: u64) -> Self {
        RetryAfter(seconds.max(1))
    }

    /// The wait in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }

    /// The header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from(self.0)
    }
}

/// `Allow`: the methods a resource supports (RFC 9110 section 10.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow(Vec<Method>);

impl Allow {
    /// The header's name.
    pub const NAME: HeaderName = http::header::ALLOW;

    /// The methods, in the order given, without duplicates.
    pub fn new(methods: impl IntoIterator<Item = Method>) -> Self {
        let mut out: Vec<Method> = Vec::new();
        for m in methods {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Allow(out)
    }

    /// Parses an `Allow` header value (`GET,HEAD` or `GET, HEAD`).
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let s = value.to_str().ok()?;
        let methods = s
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Allow::new(methods))
    }

    /// The methods.
    pub fn methods(&self) -> &[Method] {
        &self.0
    }

    /// Adds `method` if it is not listed yet.
    pub fn with(mut self, method: Method) -> Self {
        if !self.0.contains(&method) {
            self.0.push(method);
        }
        self
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        let joined = self
            .0
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        HeaderValue::from_str(&joined).expect("method names are valid header text")
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 section 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    realm: String,
    error: Option<BearerError>,
    description: Option<String>,
    scope: Option<String>,
}

/// The `error` attribute of a bearer challenge (RFC 6750 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerError {
    /// The request is malformed (sent with 400).
    InvalidRequest,
    /// The token is unknown, revoked, expired or malformed (sent with 401).
    InvalidToken,
    /// The token lacks the scope the request needs (sent with 403).
    InsufficientScope,
}

impl BearerError {
    fn as_str(self) -> &'static str {
        match self {
            BearerError::InvalidRequest => "invalid_request",
            BearerError::InvalidToken => "invalid_token",
            BearerError::InsufficientScope => "insufficient_scope",
        }
    }
}

impl Challenge {
    /// The header's name.
    pub const NAME: HeaderName = http::header::WWW_AUTHENTICATE;

    /// A challenge for a request that sent no credentials: no `error` attribute.
    pub fn bearer(realm: impl Into<String>) -> Self {
        Challenge {
            realm: realm.into(),
            error: None,
            description: None,
            scope: None,
        }
    }

    /// Adds the `error` attribute.
    pub fn error(mut self, error: BearerError) -> Self {
        self.error = Some(error);
        self
    }

    /// Adds `error_description` (quotes and backslashes are dropped: RFC 6750
    /// restricts it to printable ASCII without them).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        let d: String = description
            .into()
            .chars()
            .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
            .collect();
        self.description = Some(d);
        self
    }

    /// Adds the `scope` attribute (the scope the request needed).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .collect()
        };
        let mut v = format!("Bearer realm=\"{}\"", clean(&self.realm));
        if let Some(e) = self.error {
            v.push_str(&format!(", error=\"{}\"", e.as_str()));
        }
        if let Some(d) = &self.description {
            v.push_str(&format!(", error_description=\"{d}\""));
        }
        if let Some(s) = &self.scope {
            v.push_str(&format!(", scope=\"{}\"", clean(s)));
        }
        HeaderValue::from_str(&v).expect("challenge is printable ASCII")
    }
}

/// The media types an endpoint takes, for `Accept-Post` (RFC 9110 does not
/// define it; it is from the W3C LDP spec and widely used) or `Accept-Patch`
/// (RFC 5789 section 3.1), chosen by the request method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedMediaTypes {
    method: Method,
    types: Vec<String>,
}

impl AcceptedMediaTypes {
    /// The types `method` takes; `PATCH` gets `Accept-Patch`, anything else `Accept-Post`.
    pub fn new(method: Method, types: impl IntoIterator<Item = impl Into<String>>) -> Self {
        AcceptedMediaTypes {
            method,
            types: types.into_iter().map(Into::into).collect(),
        }
    }

    /// The media types.
    pub fn types(&self) -> &[String] {
        &self.types
    }

    /// The header's name for this method.
    pub fn header_name(&self) -> HeaderName {
        if self.method == Method::PATCH {
            HeaderName::from_static("accept-patch")
        } else {
            HeaderName::from_static("accept-post")
        }
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.types.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("application/json"))
    }
}

/// A `Location` (or other URI-reference header) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location(HeaderValue);

impl Location {
    /// The header's name.
    pub const NAME: HeaderName = http::header::LOCATION;

    /// A URI reference; `None` if it has characters a header cannot hold.
    pub fn new(uri: impl AsRef<str>) -> Option<Self> {
        HeaderValue::from_str(uri.as_ref()).ok().map(Location)
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.to_str().unwrap_or_default())
    }
}

/// An `Upgrade` protocol token (RFC 9110 section 7.8), such as `api/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade(HeaderValue);

impl Upgrade {
    /// The header's name.
    pub const NAME: HeaderName = http::header::UPGRADE;

    /// A protocol list; `None` if it is not valid header text.
    pub fn new(protocols: impl AsRef<str>) -> Option<Self> {
        HeaderValue::from_str(protocols.as_ref()).ok().map(Upgrade)
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "etag")]
    #[test]
    fn a_content_tag_made_in_one_allocation_is_the_content_tag() {
        for body in [&b""[..], b"hello", &[0xffu8; 4096]] {
            assert_eq!(
                EntityTag::header_value_for_content(body),
                EntityTag::from_content(body).header_value()
            );
        }
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(RetryAfter::from_duration(Duration::ZERO).seconds(), 1);
        assert_eq!(
            RetryAfter::from_duration(Duration::from_nanos(1)).seconds(),
            1
        );
        assert_eq!(
            RetryAfter::from_duration(Duration::from_secs(2)).seconds(),
            2
        );
        assert_eq!(
            RetryAfter::from_duration(Duration::from_millis(2500)).seconds(),
            3
        );
        assert_eq!(RetryAfter::from_secs(0).seconds(), 1);
    }

    #[test]
    fn allow_parses_and_dedups() {
        let a = Allow::parse(&HeaderValue::from_static("GET,HEAD, GET")).unwrap();
        assert_eq!(a.methods(), &[Method::GET, Method::HEAD]);
        assert_eq!(a.with(Method::OPTIONS).header_value(), "GET, HEAD, OPTIONS");
    }

    #[test]
    fn challenge_renders_rfc6750_attributes() {
        let c = Challenge::bearer("verdict")
            .error(BearerError::InvalidToken)
            .description("The token \"x\" is revoked");
        assert_eq!(
            c.header_value(),
            "Bearer realm=\"verdict\", error=\"invalid_token\", error_description=\"The token x is revoked\""
        );
    }

    #[test]
    fn accepted_types_pick_header_by_method() {
        let a = AcceptedMediaTypes::new(Method::PATCH, ["application/merge-patch+json"]);
        assert_eq!(a.header_name(), "accept-patch");
        let a = AcceptedMediaTypes::new(Method::POST, ["application/json"]);
        assert_eq!(a.header_name(), "accept-post");
    }
}

/// An entity tag (RFC 9110 section 8.8.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    /// A strong tag; `opaque` may not contain `"` (such characters are dropped).
    pub fn strong(opaque: impl Into<String>) -> Self {
        EntityTag {
            weak: false,
            opaque: clean(opaque.into()),
        }
    }

    /// A weak tag (`W/"..."`).
    pub fn weak(opaque: impl Into<String>) -> Self {
        EntityTag {
            weak: true,
            opaque: clean(opaque.into()),
        }
    }

    /// A strong tag from a hash of `bytes` (xxh3-128: fast, and collisions need
    /// 2^64 versions of one resource).
    #[cfg(feature = "etag")]
    pub fn from_content(bytes: &[u8]) -> Self {
        EntityTag::strong(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes)))
    }

    /// [`from_content`](Self::from_content)'s tag as a header value, made
    /// in one allocation: the `ETag` layer tags every GET, and the string
    /// and its quoted copy would cost three.
    #[cfg(feature = "etag")]
    pub fn header_value_for_content(bytes: &[u8]) -> HeaderValue {
        let mut quoted = [b'"'; 34];
        quoted[1..33].copy_from_slice(&crate::ids::lower_hex(xxhash_rust::xxh3::xxh3_128(bytes)));
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(quoted))
            .expect("a quoted hex digest is a valid header value")
    }

    /// Whether the tag is weak.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// The opaque part, without quotes.
    pub fn opaque(&self) -> &str {
        &self.opaque
    }

    /// Strong comparison: both strong and the same (for `If-Match`).
    pub fn strong_eq(&self, other: &EntityTag) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque part (for `If-None-Match`).
    pub fn weak_eq(&self, other: &EntityTag) -> bool {
        self.opaque == other.opaque
    }

    /// Parses one tag (`"abc"` or `W/"abc"`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (weak, rest) = match s.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
        // etagc = %x21 / %x23-7E / obs-text
        if opaque
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            Some(EntityTag {
                weak,
                opaque: opaque.to_string(),
            })
        } else {
            None
        }
    }

    /// The header value.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&self.to_string()).expect("opaque tags are valid header text")
    }
}

fn clean(s: String) -> String {
    s.chars()
        .filter(|c| *c == '!' || ('#'..='~').contains(c))
        .collect()
}

impl fmt::Display for EntityTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weak {
            f.write_str("W/")?;
        }
        write!(f, "\"{}\"", self.opaque)
    }
}

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MediaRange {
    kind: String,
    subtype: String,
    /// Quality in thousandths (0..=1000).
    q: u16,
}

/// A parsed `Accept` header (all `Accept` fields of the request, joined).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptHeader {
    ranges: Vec<MediaRange>,
    present: bool,
}

impl AcceptHeader {
    /// Parses the request's `Accept` fields. Members that do not parse are
    /// skipped (RFC 9110 lets a server ignore a bad field rather than fail).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut out = AcceptHeader::default();
        for value in headers.get_all(http::header::ACCEPT) {
            out.present = true;
            let Ok(text) = value.to_str() else { continue };
            for member in text.split(',') {
                if let Some(range) = parse_range(member) {
                    out.ranges.push(range);
                }
            }
        }
        out
    }

    /// Whether the request sent an `Accept` with at least one valid range.
    pub fn is_restrictive(&self) -> bool {
        self.present && !self.ranges.is_empty()
    }

    /// The quality (0..=1000) the client gives `media_type` (`type/subtype`):
    /// that of the most specific matching range, 0 if none matches, 1000 when
    /// there is no `Accept` at all.
    pub fn quality(&self, media_type: &str) -> u16 {
        if !self.is_restrictive() {
            return 1000;
        }
        let (kind, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        let mut best: Option<(u8, u16)> = None;
        for r in &self.ranges {
            let specificity = if r.kind == "*" && r.subtype == "*" {
                1
            } else if r.kind.eq_ignore_ascii_case(kind) && r.subtype == "*" {
                2
            } else if r.kind.eq_ignore_ascii_case(kind) && r.subtype.eq_ignore_ascii_case(subtype) {
                3
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, r.q));
            }
        }
        best.map(|(_, q)| q).unwrap_or(0)
    }

    /// The available type the client prefers (highest q above 0; ties go to
    /// the server's order), or `None` if it accepts none of them.
    pub fn negotiate<'a>(&self, available: &[&'a str]) -> Option<&'a str> {
        let mut best: Option<(&'a str, u16)> = None;
        for &a in available {
            let q = self.quality(a);
            if q > 0 && best.is_none_or(|(_, bq)| q > bq) {
                best = Some((a, q));
            }
        }
        best.map(|(a, _)| a)
    }

    /// Whether the client names `media_type` itself (not by a wildcard) with q above 0.
    pub fn names(&self, media_type: &str) -> bool {
        let (kind, subtype) = media_type.split_once('/').unwrap_or((media_type, ""));
        self.ranges.iter().any(|r| {
            r.q > 0 && r.kind.eq_ignore_ascii_case(kind) && r.subtype.eq_ignore_ascii_case(subtype)
        })
    }
}

fn parse_range(member: &str) -> Option<MediaRange> {
    let mut parts = member.split(';');
    let media = parts.next()?.trim();
    let (kind, subtype) = media.split_once('/')?;
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
    if !token(kind) || !token(subtype) || (kind == "*" && subtype != "*") {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
    }
    Some(MediaRange {
        kind: kind.to_ascii_lowercase(),
        subtype: subtype.to_ascii_lowercase(),
        q,
    })
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}
