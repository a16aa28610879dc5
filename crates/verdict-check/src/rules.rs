//! The rules: stable ids (tests, reports and users refer to them; never
//! rename one), what each checks, how bad a failure is, where the rule comes
//! from, and which probes may run to check it.

use serde::Serialize;

/// How bad a failing rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy's own choice (which codes, which format, which mapping).
    Policy,
    /// An RFC's SHOULD.
    Should,
    /// An RFC's MUST.
    Must,
}

impl Severity {
    /// Its name, as reports show it.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Must => "must",
            Severity::Should => "should",
            Severity::Policy => "policy",
        }
    }
}

/// What a rule's probes may do to the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Judged on every exchange the audit makes; sends nothing itself.
    Passive,
    /// Requests that change nothing (GET, HEAD, OPTIONS, refused methods).
    Safe,
    /// Requests with bodies, each sent with an `If-Match` that never matches
    /// (`--allow-writes`).
    Write,
    /// Bursts that reach a rate limit (`--probe-load N`).
    Load,
}

/// One rule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    /// Its stable id.
    pub id: &'static str,
    /// What is checked.
    pub what: &'static str,
    /// How bad a failure is.
    pub severity: Severity,
    /// Which probes check it.
    pub class: Class,
    /// Where the rule comes from: an RFC section or the policy.
    pub source: &'static str,
}

macro_rules! rules {
    ($($id:literal, $severity:ident, $class:ident, $source:literal, $what:literal;)*) => {
        /// Every rule, in the order reports list them.
        pub const RULES: &[Rule] = &[
            $(Rule { id: $id, what: $what, severity: Severity::$severity, class: Class::$class, source: $source },)*
        ];
    };
}

rules! {
    "unknown-method-501", Should, Safe, "RFC 9110 §15.6.2",
        "a method no server recognizes (`BREW`) gets 501";
    "method-not-allowed-405", Must, Safe, "RFC 9110 §15.5.6",
        "a known method the path does not support gets 405, not 404, 400 or 500";
    "allow-header", Must, Safe, "RFC 9110 §15.5.6, §10.2.1",
        "405 carries `Allow`; it equals OPTIONS' `Allow`, and no method it lists gets 405";
    "options-allow", Should, Safe, "RFC 9110 §9.3.7",
        "OPTIONS answers 2xx with `Allow`";
    "head-matches-get", Must, Safe, "RFC 9110 §9.3.2",
        "HEAD gets GET's status and headers and no body";
    "not-found-404", Should, Safe, "RFC 9110 §15.5.5",
        "an unknown path under the base gets 404 with an error body";
    "auth-missing-401", Must, Safe, "RFC 6750 §3.1, RFC 9110 §15.5.2",
        "no credentials on a protected endpoint gets 401 (or the policy's mapping)";
    "auth-invalid-401", Must, Safe, "RFC 6750 §3.1",
        "a wrong token gets 401 with `error=\"invalid_token\"`";
    "auth-challenge", Must, Passive, "RFC 9110 §11.6.1",
        "every 401 carries `WWW-Authenticate`";
    "auth-scope-403", Should, Safe, "RFC 6750 §3.1, RFC 9110 §15.5.4",
        "a valid but insufficient token gets 403, not 401 or 404 (needs a second token)";
    "not-acceptable-406", Should, Safe, "RFC 9110 §12.5.1, §15.5.7",
        "an `Accept` the endpoint cannot meet (including `application/json;q=0`) gets 406, or the default representation where the policy allows it";
    "conditional-304", Should, Safe, "RFC 9110 §13.1.2, §13.1.3, §15.4.5",
        "`If-None-Match` with the current `ETag` (or `If-Modified-Since` with `Last-Modified`) gets 304 without a body, keeping `ETag`";
    "precondition-412", Must, Safe, "RFC 9110 §13.1.1, §15.5.13",
        "`If-Match` with a tag that never matches gets 412";
    "uri-too-long-414", Should, Safe, "RFC 9110 §15.5.15",
        "an oversized URI gets 414 (or 404), never a 5xx or a dropped connection";
    "headers-too-large-431", Should, Safe, "RFC 6585 §5",
        "oversized header fields get 431 (or 400), never a 5xx or a dropped connection";
    "unsupported-media-415", Should, Write, "RFC 9110 §15.5.16, RFC 7694 §3",
        "a body with a `Content-Type` the endpoint does not take gets 415 (its `Accept-Post`/`Accept-Patch`: `required-headers`)";
    "malformed-400", Should, Write, "RFC 9110 §15.5.1",
        "a body that is not JSON gets 400 (or the policy's 422)";
    "invalid-422", Should, Write, "RFC 9110 §15.5.21",
        "well-formed JSON that breaks the schema gets 422 (or the policy's 400), naming the field";
    "write-refused", Must, Write, "RFC 9110 §13.1.1",
        "a write sent with an `If-Match` that never matches is not carried out";
    "created-201", Should, Write, "RFC 9110 §15.3.2",
        "a create answers 201 with a `Location` that resolves";
    "rate-limit-429", Should, Load, "RFC 6585 §4, draft-ietf-httpapi-ratelimit-headers",
        "past the limit: 429 (or the policy's 420) with `RateLimit-*` fields (its `Retry-After` >= 1: `retry-after-positive`)";
    "error-format", Policy, Passive, "RFC 9457 §3; the policy's format",
        "every 4xx/5xx body is in the policy's format, its `Content-Type` matches, and its `status` member equals the HTTP status";
    "error-no-store", Should, Passive, "RFC 9111 §4.2.2, §5.2.2.5",
        "error responses are not cacheable (`Cache-Control: no-store`)";
    "no-body-204-304", Must, Passive, "RFC 9110 §15.3.5, §15.4.5",
        "204 and 304 carry no body";
    "location-201-3xx", Should, Passive, "RFC 9110 §15.3.2, §15.4",
        "201, 301-303, 307 and 308 carry `Location`";
    "retry-after-positive", Should, Passive, "RFC 9110 §10.2.3, RFC 6585 §4",
        "`Retry-After` on 429/503 is a positive integer or a date in the future";
    "required-headers", Should, Passive, "RFC 7694 §3, RFC 9110 §15.5.22",
        "415 carries `Accept-Post` or `Accept-Patch`; 426 carries `Upgrade` (the other statuses' headers have rules of their own)";
    "allowed-codes", Policy, Passive, "the policy's codes",
        "every observed status is in the policy's allowed set";
    "no-server-error", Must, Passive, "RFC 9110 §15.6",
        "no probe gets a 5xx other than those the policy expects";
}

/// The rule with `id`.
///
/// # Panics
///
/// If there is none: ids are fixed in this table, so a wrong one is a bug.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no rule `{id}`"))
}

/// The rules as a Markdown table (for `docs/check.md`, which a test keeps in step).
pub fn markdown() -> String {
    let mut out = String::from(
        "| id | what is checked | severity | class | source |\n|---|---|---|---|---|\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "| `{}` | {} | {} | {:?} | {} |\n",
            r.id,
            r.what,
            r.severity.name(),
            r.class,
            r.source
        ));
    }
    out.replace("| Passive |", "| passive |")
        .replace("| Safe |", "| safe |")
        .replace("| Write |", "| write |")
        .replace("| Load |", "| load |")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "{} twice", r.id);
            assert!(r
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        }
    }
}

#[cfg(test)]
mod docs {
    /// `docs/check.md` carries the rule table exactly as [`super::markdown`]
    /// writes it (`VERDICT_BLESS=1 cargo test -p verdict-check` rewrites it).
    #[test]
    fn the_docs_page_lists_every_rule() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/check.md");
        let page = std::fs::read_to_string(&path).unwrap();
        let (start, end) = ("<!-- rules:start -->\n", "<!-- rules:end -->");
        let a = page.find(start).expect("the page has the rules' markers") + start.len();
        let b = page.find(end).expect("the rules' end marker");
        let table = super::markdown();
        if std::env::var_os("VERDICT_BLESS").is_some() {
            std::fs::write(&path, format!("{}{}{}", &page[..a], table, &page[b..])).unwrap();
            return;
        }
        assert_eq!(
            &page[a..b],
            table,
            "docs/check.md's rule table is stale: run with VERDICT_BLESS=1"
        );
    }
}
