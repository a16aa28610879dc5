//! A finding: one rule judged on one exchange (or skipped, saying why).

use serde::Serialize;

use crate::client::Exchange;
use crate::rules::{rule, Severity};

/// How a rule fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not judged (the detail says why).
    Skip,
    /// Kept.
    Pass,
    /// Broken.
    Fail,
}

/// One rule judged once. Serialized as the `--format json` record (a
/// documented, stable shape: `docs/check.md`).
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The rule's id.
    pub rule: &'static str,
    /// How bad a failure is.
    pub severity: Severity,
    /// pass, fail or skip.
    pub result: Verdict,
    /// The endpoint, as documented or given (`/items/{id}`; `*` for the
    /// checks made once for the whole API).
    pub endpoint: String,
    /// The method sent.
    pub method: String,
    /// The path sent.
    pub path: String,
    /// The status received (`null`: no answer, or nothing sent).
    pub status: Option<u16>,
    /// What the rule expected.
    pub expected: String,
    /// What was seen, or why the rule was skipped.
    pub detail: String,
    /// Where the rule comes from.
    pub rfc: &'static str,
    /// A curl command that sends the same request (empty when nothing was sent).
    pub curl: String,
    /// The exchange as text, for the HTML report (not in the JSON record).
    #[serde(skip)]
    pub transcript: String,
}

impl Finding {
    /// `id` judged on `exchange`.
    pub fn on(
        id: &'static str,
        endpoint: &str,
        exchange: &Exchange,
        result: Verdict,
        expected: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        let r = rule(id);
        Finding {
            rule: r.id,
            severity: r.severity,
            result,
            endpoint: endpoint.to_string(),
            method: exchange.method.to_string(),
            path: exchange.path.clone(),
            status: exchange.status(),
            expected: expected.into(),
            detail: detail.into(),
            rfc: r.source,
            curl: exchange.curl(),
            transcript: if result == Verdict::Fail {
                exchange.transcript()
            } else {
                String::new()
            },
        }
    }

    /// `id` skipped on `endpoint` without a request.
    pub fn skipped(id: &'static str, endpoint: &str, why: impl Into<String>) -> Self {
        let r = rule(id);
        Finding {
            rule: r.id,
            severity: r.severity,
            result: Verdict::Skip,
            endpoint: endpoint.to_string(),
            method: String::new(),
            path: String::new(),
            status: None,
            expected: String::new(),
            detail: why.into(),
            rfc: r.source,
            curl: String::new(),
            transcript: String::new(),
        }
    }

    /// Whether this finding fails the audit: a broken `must`; with
    /// `strict`, any broken rule (`should` and `policy` too).
    pub fn fails_audit(&self, strict: bool) -> bool {
        self.result == Verdict::Fail && (strict || self.severity == Severity::Must)
    }
}
