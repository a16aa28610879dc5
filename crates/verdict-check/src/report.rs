//! The audit's reports: a terminal grid (endpoint x rule), JSON (one record
//! per finding and a summary), and JUnit XML for CI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::finding::{Finding, Verdict};
use crate::rules::RULES;

/// Counts of an audit.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// The base URL audited.
    pub target: String,
    /// The policy judged against.
    pub policy: String,
    /// Requests sent.
    pub requests: usize,
    /// Findings that passed.
    pub passed: usize,
    /// Findings that failed.
    pub failed: usize,
    /// Findings skipped.
    pub skipped: usize,
    /// Failed findings by severity.
    pub failed_must: usize,
    /// Failed `should` findings.
    pub failed_should: usize,
    /// Failed `policy` findings.
    pub failed_policy: usize,
    /// Whether the audit passes (exit code 0).
    pub ok: bool,
}

impl Summary {
    /// Counts `findings`.
    pub fn of(
        target: &str,
        policy: &str,
        requests: usize,
        findings: &[Finding],
        strict: bool,
    ) -> Self {
        use crate::rules::Severity;
        let count = |v: Verdict| findings.iter().filter(|f| f.result == v).count();
        let failed_of = |s: Severity| {
            findings
                .iter()
                .filter(|f| f.result == Verdict::Fail && f.severity == s)
                .count()
        };
        Summary {
            target: target.to_string(),
            policy: policy.to_string(),
            requests,
            passed: count(Verdict::Pass),
            failed: count(Verdict::Fail),
            skipped: count(Verdict::Skip),
            failed_must: failed_of(Severity::Must),
            failed_should: failed_of(Severity::Should),
            failed_policy: failed_of(Severity::Policy),
            ok: !findings.iter().any(|f| f.fails_audit(strict)),
        }
    }

    /// One line.
    pub fn line(&self) -> String {
        format!(
            "{}: {} requests, {} passed, {} failed ({} must, {} should, {} policy), {} skipped, against the policy `{}`",
            if self.ok { "PASS" } else { "FAIL" },
            self.requests,
            self.passed,
            self.failed,
            self.failed_must,
            self.failed_should,
            self.failed_policy,
            self.skipped,
            self.policy
        )
    }
}

/// The worst verdict of each (endpoint, rule).
fn grid(findings: &[Finding]) -> BTreeMap<&str, BTreeMap<&'static str, Verdict>> {
    let mut g: BTreeMap<&str, BTreeMap<&'static str, Verdict>> = BTreeMap::new();
    for f in findings {
        let cell = g
            .entry(f.endpoint.as_str())
            .or_default()
            .entry(f.rule)
            .or_insert(f.result);
        *cell = (*cell).max(f.result);
    }
    g
}

/// The terminal report: the grid (rules numbered, with a legend), every
/// failure with its curl line, and the summary. `color`: ANSI colours.
pub fn table(findings: &[Finding], summary: &Summary, color: bool) -> String {
    let g = grid(findings);
    let used: Vec<(usize, &str)> = RULES
        .iter()
        .enumerate()
        .filter(|(_, r)| g.values().any(|row| row.contains_key(r.id)))
        .map(|(i, r)| (i + 1, r.id))
        .collect();
    let width = g.keys().map(|k| k.len()).max().unwrap_or(8).clamp(8, 48);
    let paint = |v: Verdict| -> String {
        let (mark, code) = match v {
            Verdict::Pass => ("ok", "32"),
            Verdict::Fail => ("XX", "31"),
            Verdict::Skip => ("..", "2"),
        };
        if color {
            format!("\x1b[{code}m{mark}\x1b[0m")
        } else {
            mark.to_string()
        }
    };
    let mut out = String::new();
    let _ = write!(out, "{:width$} ", "endpoint \\ rule");
    for (n, _) in &used {
        let _ = write!(out, "{n:>3}");
    }
    out.push('\n');
    for (endpoint, row) in &g {
        let shown: String = endpoint.chars().take(width).collect();
        let _ = write!(out, "{shown:width$} ");
        for (_, id) in &used {
            match row.get(id) {
                Some(v) => {
                    let _ = write!(out, " {}", paint(*v));
                }
                None => out.push_str("   "),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (n, id) in &used {
        let _ = writeln!(out, "{n:>3} {id}");
    }
    let failures: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .collect();
    if !failures.is_empty() {
        out.push_str("\nFailures:\n");
        for f in failures {
            let _ = writeln!(
                out,
                "- [{}] {} {} {} -> {}: expected {}; {} ({})\n    {}",
                f.severity.name(),
                f.rule,
                f.method,
                f.endpoint,
                f.status.map_or("no answer".to_string(), |s| s.to_string()),
                f.expected,
                f.detail,
                f.rfc,
                f.curl
            );
        }
    }
    out.push('\n');
    out.push_str(&summary.line());
    out.push('\n');
    out
}

/// `{"findings": [...], "summary": {...}}`.
pub fn json(findings: &[Finding], summary: &Summary) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        findings: &'a [Finding],
        summary: &'a Summary,
    }
    serde_json::to_string_pretty(&Report { findings, summary }).expect("findings serialize")
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: a suite per endpoint, a case per finding (failures and skips marked).
pub fn junit(findings: &[Finding], summary: &Summary) -> String {
    let mut by_endpoint: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_endpoint.entry(f.endpoint.as_str()).or_default().push(f);
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"verdict check {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        xml(&summary.target),
        findings.len(),
        summary.failed,
        summary.skipped
    );
    for (endpoint, list) in by_endpoint {
        let failures = list.iter().filter(|f| f.result == Verdict::Fail).count();
        let skipped = list.iter().filter(|f| f.result == Verdict::Skip).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            xml(endpoint),
            list.len()
        );
        for f in list {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{} {} {}\">",
                xml(endpoint),
                f.rule,
                xml(&f.method),
                xml(&f.path.chars().take(120).collect::<String>())
            );
            match f.result {
                Verdict::Fail => {
                    let _ = write!(
                        out,
                        "<failure type=\"{}\" message=\"expected {}; {}\">{} ({})\n{}</failure>",
                        f.severity.name(),
                        xml(&f.expected),
                        xml(&f.detail),
                        xml(&f.detail),
                        xml(f.rfc),
                        xml(&f.curl)
                    );
                }
                Verdict::Skip => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(&f.detail));
                }
                Verdict::Pass => {}
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
