//! The audit's reports: a terminal grid (endpoint x rule), JSON (one record
//! per finding and a summary), JUnit XML for CI, and one self-contained
//! HTML page.

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

fn html_text(s: &str) -> String {
    xml(s).replace('\'', "&#39;")
}

/// One self-contained page (no script, no outside request): the endpoint x
/// rule grid, the rules with their sources, and each failure expandable to
/// its exchange and curl line.
pub fn html(findings: &[Finding], summary: &Summary) -> String {
    let g = grid(findings);
    let used: Vec<(usize, &crate::rules::Rule)> = RULES
        .iter()
        .enumerate()
        .filter(|(_, r)| g.values().any(|row| row.contains_key(r.id)))
        .map(|(i, r)| (i + 1, r))
        .collect();
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(
        out,
        "<title>verdict check: {}</title>",
        html_text(&summary.target)
    );
    out.push_str(
        "<style>\n\
         body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111}\n\
         h1{font-size:20px} .summary{padding:8px 12px;border-radius:4px;display:inline-block}\n\
         .ok{background:#d8f5dd} .bad{background:#fbdada}\n\
         table.grid{border-collapse:collapse;margin:16px 0}\n\
         .grid th,.grid td{border:1px solid #ccc;padding:2px 6px;text-align:center}\n\
         .grid th.ep{text-align:left;font-weight:normal;font-family:monospace}\n\
         td.pass{background:#2e9d4a;color:#fff} td.fail{background:#d2302c;color:#fff} td.skip{background:#e6e6e6;color:#777}\n\
         details{margin:6px 0} summary{cursor:pointer} pre{background:#f6f6f6;padding:8px;overflow:auto;white-space:pre-wrap}\n\
         .sev-must{color:#b00020;font-weight:bold} .sev-should{color:#a15c00} .sev-policy{color:#3050a0}\n\
         </style></head><body>\n",
    );
    let _ = writeln!(
        out,
        "<h1>verdict check: {}</h1>",
        html_text(&summary.target)
    );
    let _ = writeln!(
        out,
        "<p class=\"summary {}\">{}</p>",
        if summary.ok { "ok" } else { "bad" },
        html_text(&summary.line())
    );
    out.push_str("<table class=\"grid\"><thead><tr><th>endpoint \\ rule</th>");
    for (n, r) in &used {
        let _ = write!(out, "<th title=\"{}\">{n}</th>", html_text(r.id));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (endpoint, row) in &g {
        let _ = write!(out, "<tr><th class=\"ep\">{}</th>", html_text(endpoint));
        for (_, r) in &used {
            match row.get(r.id) {
                Some(Verdict::Pass) => {
                    let _ = write!(out, "<td class=\"pass\" title=\"{} passed\">ok</td>", r.id);
                }
                Some(Verdict::Fail) => {
                    let _ = write!(out, "<td class=\"fail\" title=\"{} failed\">XX</td>", r.id);
                }
                Some(Verdict::Skip) => {
                    let _ = write!(out, "<td class=\"skip\" title=\"{} skipped\">..</td>", r.id);
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n<ol>\n");
    for (n, r) in &used {
        let _ = writeln!(
            out,
            "<li value=\"{n}\"><code>{}</code> <span class=\"sev-{}\">{}</span>: {} ({})</li>",
            r.id,
            r.severity.name(),
            r.severity.name(),
            html_text(r.what),
            html_text(r.source)
        );
    }
    out.push_str("</ol>\n");
    let failures: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result == Verdict::Fail)
        .collect();
    let _ = writeln!(out, "<h2>Failures ({})</h2>", failures.len());
    for f in failures {
        let _ = writeln!(
            out,
            "<details><summary><span class=\"sev-{}\">{}</span> <code>{}</code> {} {}: expected {}; {}</summary>\
             <p>{}</p><pre>{}</pre><pre>{}</pre></details>",
            f.severity.name(),
            f.severity.name(),
            f.rule,
            html_text(&f.method),
            html_text(&f.endpoint),
            html_text(&f.expected),
            html_text(&f.detail),
            html_text(f.rfc),
            html_text(&f.transcript),
            html_text(&f.curl)
        );
    }
    out.push_str("</body></html>\n");
    out
}
