//! The status catalog: every status code the contract uses, in one table.
//!
//! This module is the single home of what the project knows about a status
//! code: its reason phrase, its class, what it means to a client, whether the
//! client may retry, and which headers must travel with it. Everything else
//! (error constructors, the normalizing layer, the preset mappings, the
//! `/problems` pages) reads this table instead of repeating it.
//!
//! ```
//! use http::StatusCode;
//! use verdict::status::{self, RequiredHeader, Retry};
//!
//! let entry = status::lookup(StatusCode::TOO_MANY_REQUESTS).unwrap();
//! assert_eq!(entry.reason, "Too Many Requests");
//! assert_eq!(entry.retry, Retry::AfterDelay);
//! assert!(entry.requires.contains(&RequiredHeader::RetryAfter));
//! ```

use http::StatusCode;

/// The five classes of RFC 9110 section 15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx.
    Redirection,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
}

impl Class {
    /// The class of any status code, listed or not.
    pub fn of(status: StatusCode) -> Class {
        match status.as_u16() {
            100..=199 => Class::Informational,
            200..=299 => Class::Success,
            300..=399 => Class::Redirection,
            400..=499 => Class::ClientError,
            _ => Class::ServerError,
        }
    }
}

/// Whether a client may send the same request again and expect another answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Retry {
    /// Not an error: nothing to retry.
    NotApplicable,
    /// The same request will fail the same way; change it first.
    No,
    /// Retry after the delay the response gives (`Retry-After`).
    AfterDelay,
    /// A transient failure (the server's, or a connection's): retrying later may succeed.
    Later,
}

/// A header a status code must carry (RFC 9110, 6585, 6750 and the contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequiredHeader {
    /// `Location`: 201, 302, 303.
    Location,
    /// `Allow`: 405.
    Allow,
    /// `WWW-Authenticate`: 401.
    WwwAuthenticate,
    /// `Retry-After`: 420, 429, 503.
    RetryAfter,
    /// `Accept-Post` or `Accept-Patch` (by request method): 415.
    AcceptPostOrPatch,
    /// `Upgrade`: 426.
    Upgrade,
}

impl RequiredHeader {
    /// The header's name, as it goes on the wire (`Accept-Post` for 415).
    pub fn name(self) -> &'static str {
        match self {
            RequiredHeader::Location => "location",
            RequiredHeader::Allow => "allow",
            RequiredHeader::WwwAuthenticate => "www-authenticate",
            RequiredHeader::RetryAfter => "retry-after",
            RequiredHeader::AcceptPostOrPatch => "accept-post",
            RequiredHeader::Upgrade => "upgrade",
        }
    }

    /// Whether `headers` satisfies this requirement.
    pub fn is_present(self, headers: &http::HeaderMap) -> bool {
        match self {
            RequiredHeader::AcceptPostOrPatch => {
                headers.contains_key("accept-post") || headers.contains_key("accept-patch")
            }
            other => headers.contains_key(other.name()),
        }
    }
}

/// One row of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The numeric code.
    pub code: u16,
    /// The reason phrase (RFC 9110, or the seed for 420).
    pub reason: &'static str,
    /// The stable snake_case `code` an error of this status gets unless it names its own.
    pub default_code: &'static str,
    /// What the status means, in one line, for a client.
    pub meaning: &'static str,
    /// Whether the client may retry.
    pub retry: Retry,
    /// Headers that must come with it.
    pub requires: &'static [RequiredHeader],
}

impl StatusEntry {
    /// The status as an [`http::StatusCode`].
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code).expect("catalog codes are valid")
    }

    /// The status's class.
    pub fn class(&self) -> Class {
        Class::of(self.status())
    }
}

use RequiredHeader as H;

macro_rules! entry {
    ($code:expr, $reason:expr, $default_code:expr, $retry:ident, [$($h:ident),*], $meaning:expr) => {
        StatusEntry {
            code: $code,
            reason: $reason,
            default_code: $default_code,
            meaning: $meaning,
            retry: Retry::$retry,
            requires: &[$(H::$h),*],
        }
    };
}

/// Every status code of the contract, in numeric order.
pub const CATALOG: &[StatusEntry] = &[
    entry!(200, "OK", "ok", NotApplicable, [], "The request succeeded."),
    entry!(201, "Created", "created", NotApplicable, [Location],
        "The request created a resource; `Location` names it."),
    entry!(202, "Accepted", "accepted", NotApplicable, [],
        "The request was accepted and runs asynchronously; `Location` names its monitor."),
    entry!(204, "No Content", "no_content", NotApplicable, [],
        "The request succeeded and there is nothing to send back."),
    entry!(207, "Multi-Status", "multi_status", NotApplicable, [],
        "The body carries one status per operation of a batch."),
    entry!(300, "Multiple Choices", "multiple_choices", NotApplicable, [],
        "Several resources match; the body lists them for the client to choose."),
    entry!(302, "Found", "found", NotApplicable, [Location],
        "The resource is temporarily at the URI in `Location`."),
    entry!(303, "See Other", "see_other", NotApplicable, [Location],
        "The answer is at the URI in `Location`; fetch it with GET."),
    entry!(304, "Not Modified", "not_modified", NotApplicable, [],
        "The client's cached representation is still current; the validators (`ETag`) come along."),
    entry!(400, "Bad Request", "bad_request", No, [],
        "The request is malformed: fix its syntax, parameters or headers before sending it again."),
    entry!(401, "Unauthorized", "unauthorized", No, [WwwAuthenticate],
        "Credentials are missing or not valid: send a valid bearer token."),
    entry!(403, "Forbidden", "forbidden", No, [],
        "The credentials are valid but do not allow this request."),
    entry!(404, "Not Found", "not_found", No, [],
        "Nothing exists at this URI, or the resource named does not exist."),
    entry!(405, "Method Not Allowed", "method_not_allowed", No, [Allow],
        "The resource does not support this method; `Allow` lists those it does."),
    entry!(406, "Not Acceptable", "not_acceptable", No, [],
        "None of the resource's representations is acceptable under the request's `Accept`."),
    entry!(408, "Request Timeout", "request_timeout", Later, [],
        "The request did not arrive in time (its headers or body stopped coming); send it again."),
    entry!(409, "Conflict", "conflict", No, [],
        "The request conflicts with the resource's current state."),
    entry!(410, "Gone", "gone", No, [],
        "The resource or API version was retired and will not come back."),
    entry!(412, "Precondition Failed", "precondition_failed", No, [],
        "A condition of the request (`If-Match`, `If-Unmodified-Since`) does not hold; `ETag` names the current version."),
    entry!(413, "Content Too Large", "content_too_large", No, [],
        "The request body is larger than the server accepts."),
    entry!(414, "URI Too Long", "uri_too_long", No, [],
        "The request URI is longer than the server accepts."),
    entry!(415, "Unsupported Media Type", "unsupported_media_type", No, [AcceptPostOrPatch],
        "The body's `Content-Type` is not one this endpoint takes."),
    entry!(420, "Enhance Your Calm", "enhance_your_calm", AfterDelay, [RetryAfter],
        "Rate limited: wait for `Retry-After` seconds before the next request."),
    entry!(422, "Unprocessable Content", "unprocessable_content", No, [],
        "The body is well-formed but its content is not valid; each failing field is named."),
    entry!(426, "Upgrade Required", "upgrade_required", No, [Upgrade],
        "This API version is retired; move to the one `Upgrade` names."),
    entry!(428, "Precondition Required", "precondition_required", No, [],
        "This request must be conditional: send `If-Match`."),
    entry!(429, "Too Many Requests", "too_many_requests", AfterDelay, [RetryAfter],
        "Rate limited: wait for `Retry-After` seconds before the next request."),
    entry!(431, "Request Header Fields Too Large", "request_header_fields_too_large", No, [],
        "The request's headers are larger than the server accepts."),
    entry!(500, "Internal Server Error", "internal_error", Later,
        [], "An unexpected failure; the body's incident id identifies it in the server's log."),
    entry!(501, "Not Implemented", "not_implemented", No, [],
        "The server does not recognize the request method."),
    entry!(502, "Bad Gateway", "bad_gateway", Later, [],
        "The upstream server is unreachable or did not answer with HTTP."),
    entry!(503, "Service Unavailable", "service_unavailable", AfterDelay, [RetryAfter],
        "The service is overloaded, in maintenance or without its storage; retry after `Retry-After`."),
    entry!(504, "Gateway Timeout", "gateway_timeout", Later, [],
        "The request ran past its deadline inside the service."),
];

/// The catalog row of `status`, if the contract uses it.
pub fn lookup(status: StatusCode) -> Option<&'static StatusEntry> {
    let code = status.as_u16();
    CATALOG
        .binary_search_by_key(&code, |e| e.code)
        .ok()
        .map(|i| &CATALOG[i])
}

/// The reason phrase of `status`: the catalog's, else `http`'s, else `"Unknown"`.
pub fn reason(status: StatusCode) -> &'static str {
    lookup(status)
        .map(|e| e.reason)
        .or_else(|| status.canonical_reason())
        .unwrap_or("Unknown")
}

/// The headers `status` requires (empty for codes outside the catalog).
pub fn required_headers(status: StatusCode) -> &'static [RequiredHeader] {
    lookup(status).map(|e| e.requires).unwrap_or(&[])
}

/// The header `status` requires that `headers` lacks, if any.
pub fn missing_header(status: StatusCode, headers: &http::HeaderMap) -> Option<RequiredHeader> {
    required_headers(status)
        .iter()
        .copied()
        .find(|h| !h.is_present(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_and_unique() {
        assert!(CATALOG.windows(2).all(|w| w[0].code < w[1].code));
    }

    #[test]
    fn catalog_holds_every_contract_code() {
        let contract = [
            200, 201, 202, 204, 207, 300, 302, 303, 304, 400, 401, 403, 404, 405, 406, 408, 409,
            410, 412, 413, 414, 415, 420, 422, 426, 428, 429, 431, 500, 501, 502, 503, 504,
        ];
        let ours: Vec<u16> = CATALOG.iter().map(|e| e.code).collect();
        assert_eq!(ours, contract);
    }

    #[test]
    fn default_codes_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for e in CATALOG {
            assert!(
                e.default_code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                e.default_code
            );
            assert!(seen.insert(e.default_code));
        }
    }

    #[test]
    fn required_headers_follow_the_rfcs() {
        let req = |c| required_headers(StatusCode::from_u16(c).unwrap());
        assert_eq!(req(405), &[H::Allow]);
        assert_eq!(req(401), &[H::WwwAuthenticate]);
        assert_eq!(req(429), &[H::RetryAfter]);
        assert_eq!(req(503), &[H::RetryAfter]);
        assert_eq!(req(426), &[H::Upgrade]);
        assert_eq!(req(201), &[H::Location]);
        assert!(req(404).is_empty());
        assert!(req(599).is_empty());
    }

    #[test]
    fn classes_and_retry_agree() {
        for e in CATALOG {
            match e.class() {
                Class::Success | Class::Redirection => assert_eq!(e.retry, Retry::NotApplicable),
                _ => assert_ne!(e.retry, Retry::NotApplicable, "{}", e.code),
            }
        }
        assert_eq!(
            reason(StatusCode::from_u16(420).unwrap()),
            "Enhance Your Calm"
        );
    }
}
