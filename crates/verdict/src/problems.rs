//! What each problem `type` means: every error body's `type` is
//! `/problems/{slug}`, a page the server serves. This module documents the
//! codes the library itself emits (and every catalog status's default code);
//! an application adds its own with [`ProblemType`].
//!
//! [`Contract::document_problems`](crate::Contract::document_problems) mounts
//! the pages: `GET /problems` lists every type, `GET /problems/{slug}` shows
//! one, as JSON or (by `Accept`) HTML, without credentials. Or serve them
//! yourself with [`lookup`].
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

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::header::CONTENT_TYPE;
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;
use crate::negotiate::Negotiated;
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

impl ProblemType {
    /// `error` carrying this type's code and title (its status and detail
    /// are the error's own).
    pub fn mark(&self, error: crate::ApiError) -> crate::ApiError {
        error.with_code(self.code).with_title(self.title)
    }
}

/// The codes the library's constructors and layers emit beyond the catalog defaults.
pub const LIBRARY: &[ProblemType] = &[
    ProblemType { code: "problem_type_not_found", status: 404, title: "Problem type not found",
        description: "No problem type has this name. Every `type` an error body carries is documented; `GET /problems` lists them." },
    ProblemType { code: "request_timeout", status: 408, title: "Request Timeout",
        description: "The request did not arrive in time: its head, or its body, stopped coming. Send it again, without pauses." },
    ProblemType { code: "malformed_body", status: 400, title: "Malformed request body",
        description: "The body is not well-formed JSON (some presets answer 422). Fix its syntax and send it again." },
    ProblemType { code: "invalid_query", status: 400, title: "Invalid query parameter",
        description: "A query parameter has a value the endpoint does not accept; the detail names it and says what it must be." },
    ProblemType { code: "invalid_path_parameter", status: 400, title: "Invalid path parameter",
        description: "A parameter in the URI's path has a value the endpoint cannot read (letters where a number goes, say); the detail names it." },
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
    ProblemType { code: "authentication_throttled", status: 429, title: "Too many failed authentications",
        description: "Too many requests with invalid credentials came from this address (seed-001's preset answers 420). Wait the `Retry-After` seconds, then send a valid token." },
    ProblemType { code: "malformed_request", status: 400, title: "Malformed request",
        description: "The request is not valid HTTP/1.1: its request line, header fields or framing could not be parsed." },
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

/// Every documented type: the application's, the library's, then the
/// catalog's defaults (each code once, the first one found).
pub fn all(application: &[ProblemType]) -> Vec<ProblemType> {
    let defaults = CATALOG
        .iter()
        .filter(|e| e.code >= 400)
        .map(|e| ProblemType {
            code: e.default_code,
            status: e.code,
            title: e.reason,
            description: e.meaning,
        });
    let mut out: Vec<ProblemType> = Vec::new();
    for p in application.iter().chain(LIBRARY).copied().chain(defaults) {
        if !out.iter().any(|q| q.code == p.code) {
            out.push(p);
        }
    }
    out
}

/// The routes of the pages: `{base}` and `{base}/{slug}`.
pub(crate) fn routes(base: &str, application: &'static [ProblemType]) -> Router {
    let base = base.trim_end_matches('/').to_string();
    Router::new()
        .route(&base, get(index))
        .route(&format!("{base}/{{slug}}"), get(page))
        .with_state(Pages {
            base: base.clone(),
            application,
        })
}

/// The representations the pages offer.
pub(crate) const PAGE_MEDIA_TYPES: [&str; 2] = ["application/json", "text/html"];

#[derive(Clone)]
struct Pages {
    base: String,
    application: &'static [ProblemType],
}

fn wants_html(negotiated: &Option<Extension<Negotiated>>) -> bool {
    negotiated
        .as_ref()
        .is_some_and(|n| n.0.media_type() == "text/html")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title></head><body>{body}</body></html>\n",
        html_escape(title)
    );
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn problem_json(base: &str, p: &ProblemType) -> serde_json::Value {
    json!({
        "type": format!("{base}/{}", crate::format::slug(p.code)),
        "code": p.code,
        "status": p.status,
        "title": p.title,
        "description": p.description,
    })
}

/// `GET {base}`: every problem type.
async fn index(State(pages): State<Pages>, negotiated: Option<Extension<Negotiated>>) -> Response {
    let all = all(pages.application);
    if wants_html(&negotiated) {
        let items: String = all
            .iter()
            .map(|p| {
                format!(
                    "<li><a href=\"{}/{}\"><code>{}</code></a> ({}) {}</li>",
                    html_escape(&pages.base),
                    crate::format::slug(p.code),
                    html_escape(p.code),
                    p.status,
                    html_escape(p.title)
                )
            })
            .collect();
        return html(
            "Problem types",
            &format!("<h1>Problem types</h1><ul>{items}</ul>"),
        );
    }
    let items: Vec<serde_json::Value> = all.iter().map(|p| problem_json(&pages.base, p)).collect();
    axum::Json(json!({ "items": items })).into_response()
}

/// `GET {base}/{slug}`: one problem type, or 404.
async fn page(
    State(pages): State<Pages>,
    Path(slug): Path<String>,
    negotiated: Option<Extension<Negotiated>>,
) -> Response {
    let Some(p) = lookup(&slug, pages.application) else {
        let shown: String = slug.chars().take(100).collect();
        return ApiError::not_found(format!("No problem type is called {shown}."))
            .with_code("problem_type_not_found")
            .with_title("Problem type not found")
            .into_response();
    };
    if wants_html(&negotiated) {
        return html(
            p.title,
            &format!(
                "<h1>{}</h1><p>Status {} &middot; code <code>{}</code></p><p>{}</p>",
                html_escape(p.title),
                p.status,
                html_escape(p.code),
                html_escape(p.description)
            ),
        );
    }
    axum::Json(problem_json(&pages.base, &p)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `code` literal the library's sources give an error.
    fn codes_in_sources() -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Code: not the unit tests, nor the examples in doc comments.
                    let text = text.split("#[cfg(test)]").next().unwrap_or("");
                    let code: String = text
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    for piece in code.split("with_code(\"").skip(1) {
                        out.push(piece.split('"').next().unwrap().to_string());
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn every_code_the_library_can_send_has_a_page() {
        let codes = codes_in_sources();
        assert!(codes.len() > 10, "{codes:?}");
        for code in codes
            .iter()
            .map(String::as_str)
            .chain(CATALOG.iter().map(|e| e.default_code))
        {
            if CATALOG
                .iter()
                .any(|e| e.default_code == code && e.code < 400)
            {
                continue;
            }
            assert!(lookup(code, &[]).is_some(), "`{code}` has no problem page");
        }
    }

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
