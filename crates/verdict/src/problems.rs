//! What each problem `type` means: every error body's `type` is
//! `/problems/{slug}`, a page the server serves. This module documents the
//! codes the library itself emits (and every catalog status's default code);
//! an application adds its own with [`ProblemType`] and serves them all with
//! [`lookup`].
//!
//! ```
//! use verdict::problems::{self, ProblemType};
//!
//! const MINE: &[ProblemType] = &[ProblemType {
//!     code: "record_not_found", status: 404, title: "Record not found",
//!     description: "No record has this id in this collection. Check the id, or list the records.",
//! }];
//! assert_eq!(problems::lookup("record-not-found", MINE).unwrap().status, 404);
//! assert_eq!(problems::lookup("rate-limited", MINE).unwrap().status, 429);
//! ```

use serde::Serialize;

use crate::status::CATALOG;

/// One documented problem type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemType {
    /// The `code` of the error bodies (snake_case).
    pub code: &'static str,
    /// The status it is sent with (before any preset mapping).
    pub status: u16,
    /// Its title.
    pub title: &'static str,
    /// What it means and what to do about it.
    pub description: &'static str,
}

/// The codes the library's constructors and layers emit beyond the catalog defaults.
pub const LIBRARY: &[ProblemType] = &[
    ProblemType { code: "malformed_body", status: 400, title: "Malformed request body",
        description: "The body is not well-formed JSON (some presets answer 422). Fix its syntax and send it again." },
    ProblemType { code: "invalid_query", status: 400, title: "Invalid query parameter",
        description: "A query parameter has a value the endpoint does not accept; the detail names it and says what it must be." },
    ProblemType { code: "invalid_header", status: 400, title: "Invalid header",
        description: "A request header is malformed (an `If-Match` that is not a list of entity tags, say); the detail names it." },
    ProblemType { code: "missing_credentials", status: 401, title: "Credentials required",
        description: "Send `Authorization: Bearer <token>` (seed-001's preset answers 400)." },
    ProblemType { code: "invalid_token", status: 401, title: "Invalid credentials",
        description: "The bearer token is malformed, unknown or revoked. Get a new token." },
    ProblemType { code: "insufficient_scope", status: 403, title: "Insufficient scope",
        description: "The token is valid but lacks the scope this request needs; `WWW-Authenticate` names it." },
    ProblemType { code: "validation_failed", status: 422, title: "Validation failed",
        description: "The body is well-formed but breaks the rules; `errors` names each failing field by JSON Pointer." },
    ProblemType { code: "rate_limited", status: 429, title: "Rate limited",
        description: "The rate limit is used up (seed-001's preset answers 420). Wait the `Retry-After` seconds; `RateLimit-*` headers show the budget." },
    ProblemType { code: "resource_rate_limited", status: 429, title: "Resource rate limited",
        description: "The budget of this resource (jobs started, say) is used up for now. Wait the `Retry-After` seconds." },
    ProblemType { code: "retired_version", status: 410, title: "API version retired",
        description: "This API version was retired (seed-003's preset answers 426 with `Upgrade`). Move to the current version." },
    ProblemType { code: "unknown_method", status: 501, title: "Unknown method",
        description: "The server does not recognize this HTTP method at all. Use one the resource's `Allow` lists." },
    ProblemType { code: "overloaded", status: 503, title: "Overloaded",
        description: "The server shed this request under load. Retry after `Retry-After` seconds." },
    ProblemType { code: "maintenance", status: 503, title: "In maintenance",
        description: "The service is in maintenance. Retry after `Retry-After` seconds." },
];

/// The documented problem whose slug (`record-not-found`) or code is `slug`:
/// the application's own first, then the library's, then the catalog defaults.
pub fn lookup(slug: &str, application: &[ProblemType]) -> Option<ProblemType> {
    let code = slug.replace('-', "_");
    application
        .iter()
        .chain(LIBRARY)
        .find(|p| p.code == code)
        .copied()
        .or_else(|| {
            CATALOG
                .iter()
                .find(|e| e.default_code == code && e.code >= 400)
                .map(|e| ProblemType {
                    code: e.default_code,
                    status: e.code,
                    title: e.reason,
                    description: e.meaning,
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_codes_are_unique_snake_case_and_errors() {
        let mut seen = std::collections::HashSet::new();
        for p in LIBRARY {
            assert!(seen.insert(p.code), "{}", p.code);
            assert!(p.code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!(p.status >= 400);
        }
        assert_eq!(lookup("not-found", &[]).unwrap().status, 404);
        assert!(lookup("ok", &[]).is_none());
        assert!(lookup("nope", &[]).is_none());
    }
}
