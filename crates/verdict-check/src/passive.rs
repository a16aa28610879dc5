//! The passive rules, judged on every exchange the audit makes: what any
//! answer with its status must carry, whatever the request was.

use std::time::SystemTime;

use http::{Method, StatusCode};

use crate::client::Exchange;
use crate::finding::{Finding, Verdict};
use crate::policy::Policy;

/// The passive findings on `exchange` (sent for `endpoint`); `expected_5xx`
/// are server errors the probe asked for (501 for an unknown method, 503
/// under load), which `no-server-error` does not count.
pub fn judge(
    exchange: &Exchange,
    endpoint: &str,
    policy: &Policy,
    expected_5xx: &[u16],
) -> Vec<Finding> {
    let Ok(answer) = &exchange.outcome else {
        return Vec::new();
    };
    let status = answer.status.as_u16();
    let mut out = Vec::new();
    let mut judged = |id: &'static str, ok: bool, expected: &str, detail: String| {
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        out.push(Finding::on(
            id, endpoint, exchange, verdict, expected, detail,
        ));
    };

    if status == 401 {
        let challenge = answer.header("www-authenticate");
        judged(
            "auth-challenge",
            !challenge.is_empty(),
            "WWW-Authenticate",
            if challenge.is_empty() {
                "a 401 without WWW-Authenticate".into()
            } else {
                format!("WWW-Authenticate: {challenge}")
            },
        );
    }

    if status >= 400 && exchange.method != Method::HEAD {
        let (ok, expected, detail) = error_format(exchange, policy);
        judged("error-format", ok, &expected, detail);
        let cache = answer.header("cache-control").to_ascii_lowercase();
        judged(
            "error-no-store",
            cache.contains("no-store"),
            "Cache-Control: no-store",
            if cache.is_empty() {
                "no Cache-Control: a cache may keep this error (RFC 9111 heuristics)".into()
            } else {
                format!("Cache-Control: {cache}")
            },
        );
    }

    if matches!(status, 204 | 304) {
        judged(
            "no-body-204-304",
            answer.body.is_empty(),
            "no body",
            format!("{} bytes of body", answer.body.len()),
        );
    }

    if matches!(status, 201 | 301 | 302 | 303 | 307 | 308) {
        let location = answer.header("location");
        judged(
            "location-201-3xx",
            !location.is_empty(),
            "Location",
            if location.is_empty() {
                format!("a {status} without Location")
            } else {
                format!("Location: {location}")
            },
        );
    }

    if matches!(status, 420 | 429 | 503) {
        let value = answer.header("retry-after");
        let ok = retry_after_positive(value);
        judged(
            "retry-after-positive",
            ok,
            "Retry-After: a positive number of seconds, or a future date",
            if value.is_empty() {
                "no Retry-After".into()
            } else {
                format!("Retry-After: {value}")
            },
        );
    }

    // Location, Allow, WWW-Authenticate and Retry-After have rules of their own.
    use verdict::status::RequiredHeader;
    if let Some(missing) =
        verdict::status::missing_header(answer.status, &answer.headers).filter(|h| {
            matches!(
                h,
                RequiredHeader::AcceptPostOrPatch | RequiredHeader::Upgrade
            )
        })
    {
        judged(
            "required-headers",
            false,
            missing.name(),
            format!("a {status} without {}", missing.name()),
        );
    }

    judged(
        "allowed-codes",
        policy.allows(status),
        &format!("a code the policy `{}` allows", policy.name),
        format!("{status}"),
    );

    if status >= 500 {
        judged(
            "no-server-error",
            expected_5xx.contains(&status),
            "no server error",
            format!(
                "{} {}",
                status,
                answer.status.canonical_reason().unwrap_or("")
            ),
        );
    }
    out
}

/// Whether an error body keeps the policy's format: `(ok, expected, detail)`.
fn error_format(exchange: &Exchange, policy: &Policy) -> (bool, String, String) {
    let answer = exchange.outcome.as_ref().expect("judged on answers");
    let status = answer.status.as_u16();
    let content_type = answer.header("content-type");
    let wanted = policy.error_format(&exchange.request_headers);
    let expected = match wanted {
        Some(f) => format!("a {} body ({})", f.name(), f.content_type()),
        None => "an error body whose `status` (if any) is the HTTP status".to_string(),
    };
    let read = verdict::format::inspect(content_type, &answer.body);
    match (wanted, read) {
        (Some(_), Err(why)) => (false, expected, format!("{content_type:?}: {why}")),
        (None, Err(_)) => (
            true,
            expected,
            "not one of the three formats (the policy accepts any)".into(),
        ),
        (Some(f), Ok(body)) if body.format != f => (
            false,
            expected,
            format!("a {} body ({content_type})", body.format.name()),
        ),
        (_, Ok(body)) => match body.status {
            Some(s) if s != status => (
                false,
                expected,
                format!("the body says status {s}, the HTTP status is {status}"),
            ),
            _ => (
                true,
                expected,
                format!("{content_type}, code {:?}", body.code.unwrap_or_default()),
            ),
        },
    }
}

/// A positive delay in seconds, or an HTTP date in the future.
pub fn retry_after_positive(value: &str) -> bool {
    if value.is_empty() {
        return false;
    }
    if let Ok(secs) = value.trim().parse::<u64>() {
        return secs >= 1;
    }
    httpdate::parse_http_date(value.trim()).is_ok_and(|at| at > SystemTime::now())
}

/// The status a probe expected, as text for reports.
pub fn describe(status: u16) -> String {
    match StatusCode::from_u16(status) {
        Ok(s) => format!("{} {}", status, s.canonical_reason().unwrap_or("")),
        Err(_) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_must_be_positive_or_future() {
        assert!(retry_after_positive("1") && retry_after_positive("120"));
        assert!(
            !retry_after_positive("0") && !retry_after_positive("") && !retry_after_positive("-3")
        );
        assert!(!retry_after_positive("Wed, 21 Oct 2015 07:28:00 GMT"));
        let later =
            httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(600));
        assert!(retry_after_positive(&later));
    }
}
