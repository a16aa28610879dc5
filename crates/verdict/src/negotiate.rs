//! `Accept` negotiation: 406 Not Acceptable when the client admits none of a
//! resource's representations.
//!
//! `Accept` is parsed with its q-values (RFC 9110 section 12.5.1), so
//! `application/json;q=0` is a refusal even beside `*/*`, and the most specific
//! range decides. On success the chosen media type is put in the request's
//! extensions as [`Negotiated`] for the handler.
//!
//! ```
//! use axum::{routing::get, Router};
//! use verdict::negotiate::{AcceptLayer, Negotiated};
//!
//! let app: Router = Router::new()
//!     .route("/report", get(|n: axum::Extension<Negotiated>| async move { n.0.media_type().to_string() }))
//!     .route_layer(AcceptLayer::new(["application/json", "text/csv"]));
//! ```
//!
//! (No crate parses `Accept` with q-values and RFC 9110's precedence rules
//! without pulling in a web framework, so the parser is here, in ~80 lines.)

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use http::{HeaderMap, Method};

use crate::guard::{Guard, GuardLayer};
use crate::route_table::RouteTable;
use crate::ApiError;

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

/// The representation [`AcceptLayer`] chose, in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated(Arc<str>);

impl Negotiated {
    /// The chosen media type (`application/json`, `text/csv`...).
    pub fn media_type(&self) -> &str {
        &self.0
    }
}

/// Layer answering 406 when `Accept` admits none of a route's representations.
///
/// Every route gets the default list; [`AcceptLayer::route`] gives one
/// method and route (its matched path) a list of its own.
pub type AcceptLayer = GuardLayer<AcceptGuard>;

/// The check behind [`AcceptLayer`].
#[derive(Clone, Debug)]
pub struct AcceptGuard {
    table: Arc<RouteTable<Vec<Arc<str>>>>,
}

impl AcceptLayer {
    /// Every route offers `representations` (in the server's order of preference).
    pub fn new<I, T>(representations: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Arc<str>>,
    {
        GuardLayer::from_guard(AcceptGuard {
            table: Arc::new(RouteTable::new(
                representations.into_iter().map(Into::into).collect(),
            )),
        })
    }

    /// `method` on `path` (as routed: `/records/{id}`) offers `representations` instead.
    pub fn route<I, T>(mut self, method: Method, path: &str, representations: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<Arc<str>>,
    {
        let table = Arc::make_mut(&mut self.guard_mut().table);
        table.insert(
            method,
            path,
            representations.into_iter().map(Into::into).collect(),
        );
        self
    }
}

impl Guard for AcceptGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
        let offered = self.table.get(req.method(), path);
        if offered.is_empty() {
            return Ok(());
        }
        let accept = AcceptHeader::from_headers(req.headers());
        let names: Vec<&str> = offered.iter().map(|s| &**s).collect();
        match accept.negotiate(&names) {
            Some(chosen) => {
                let chosen = offered
                    .iter()
                    .find(|o| &***o == chosen)
                    .cloned()
                    .expect("chosen from offered");
                req.extensions_mut().insert(Negotiated(chosen));
                Ok(())
            }
            None => Err(ApiError::not_acceptable(&names)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(v: &'static str) -> AcceptHeader {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, HeaderValue::from_static(v));
        AcceptHeader::from_headers(&h)
    }

    #[test]
    fn q_zero_refuses_even_beside_a_wildcard() {
        let a = accept("application/json;q=0, */*");
        assert_eq!(a.quality("application/json"), 0);
        assert_eq!(a.negotiate(&["application/json"]), None);
        assert_eq!(
            a.negotiate(&["application/json", "text/csv"]),
            Some("text/csv")
        );
    }

    #[test]
    fn most_specific_range_wins_and_q_orders() {
        let a = accept("text/*;q=0.3, text/csv;q=0.9, application/json;q=0.5");
        assert_eq!(a.quality("text/csv"), 900);
        assert_eq!(a.quality("text/plain"), 300);
        assert_eq!(
            a.negotiate(&["application/json", "text/csv"]),
            Some("text/csv")
        );
    }

    #[test]
    fn missing_or_empty_accept_takes_the_servers_first_choice() {
        let a = AcceptHeader::from_headers(&HeaderMap::new());
        assert_eq!(
            a.negotiate(&["application/json", "text/csv"]),
            Some("application/json")
        );
        let a = accept("");
        assert_eq!(a.negotiate(&["application/json"]), Some("application/json"));
    }

    #[test]
    fn malformed_members_are_skipped_and_params_ignored() {
        let a = accept("garbage, application/json; charset=utf-8, text/csv;q=2");
        assert_eq!(a.quality("application/json"), 1000);
        assert_eq!(a.quality("text/csv"), 0);
        assert_eq!(parse_qvalue("0.125"), Some(125));
        assert_eq!(parse_qvalue("1.001"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
    }

    #[test]
    fn names_ignores_wildcards() {
        let a = accept("*/*, application/vnd.api+json;q=0.1");
        assert!(a.names("application/vnd.api+json"));
        assert!(!a.names("application/problem+json"));
    }
}
