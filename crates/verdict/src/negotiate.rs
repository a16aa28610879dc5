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
use http::Method;

use crate::guard::{Guard, GuardLayer};
use crate::route_table::RouteTable;
use crate::ApiError;

pub use crate::headers::AcceptHeader;

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
        // No `Accept`, or one that is `*/*` or names an offered type
        // exactly (what most clients send): that representation, with no
        // parsing.
        let at_once = {
            let mut values = req.headers().get_all(http::header::ACCEPT).iter();
            match (values.next(), values.next()) {
                (None, _) => Some(&offered[0]),
                (Some(v), None) if v.as_bytes() == b"*/*" => Some(&offered[0]),
                (Some(v), None) => offered.iter().find(|o| o.as_bytes() == v.as_bytes()),
                _ => None,
            }
        };
        if let Some(chosen) = at_once {
            let chosen = chosen.clone();
            req.extensions_mut().insert(Negotiated(chosen));
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
    use http::HeaderMap;
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
        // A q-value outside RFC 9110's grammar drops its member.
        assert_eq!(accept("a/b;q=0.125, c/d").quality("a/b"), 125);
        assert_eq!(accept("a/b;q=1.001, c/d").quality("a/b"), 0);
        assert_eq!(accept("a/b;q=0.1234, c/d").quality("a/b"), 0);
    }

    #[test]
    fn names_ignores_wildcards() {
        let a = accept("*/*, application/vnd.api+json;q=0.1");
        assert!(a.names("application/vnd.api+json"));
        assert!(!a.names("application/problem+json"));
    }
}
