//! `verdict check URL`: audits a live HTTP API, written in anything, against
//! the status-code contract. It chooses requests that provoke each answer
//! RFC 9110 gives (405 with `Allow`, 406, 412, 304, 401 with a challenge,
//! ...), judges every answer by passive rules, and reports each finding
//! with its rule id, severity, RFC section and a curl line that reproduces
//! it. The rules and their ids: [`rules::RULES`] (and `docs/check.md`).
//!
//! The policy (which codes, which error format, which mappings) is one of
//! the `verdict` library's presets or `rfc9110`, or a file: the same catalog
//! the library keeps, so an API built with it and an API audited by this
//! agree on what is right.
//!
//! ```no_run
//! # async fn run() {
//! use verdict_check::{audit, Options};
//!
//! let options = Options::new("http://127.0.0.1:8080", "standard").unwrap().path("/v1/collections");
//! let (findings, summary) = audit(options).await.unwrap();
//! assert!(summary.ok, "{}", verdict_check::report::table(&findings, &summary, false));
//! # }
//! ```

#![warn(missing_docs)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use http::{HeaderName, HeaderValue};

pub mod client;
pub mod finding;
pub mod passive;
pub mod policy;
pub mod probe;
pub mod report;
pub mod rules;
pub mod target;

use crate::client::Client;
use crate::finding::Finding;
use crate::policy::Policy;
use crate::probe::{Audit, Scope};
use crate::report::Summary;
use crate::target::Endpoint;

/// `verdict check`'s arguments.
#[derive(Clone, Debug, Args)]
pub struct CheckArgs {
    /// The API's base URL (`http://127.0.0.1:8080`; a path prefix is kept).
    pub url: String,
    /// An OpenAPI 3 document (JSON) listing the endpoints to probe.
    #[arg(long)]
    pub openapi: Option<PathBuf>,
    /// A path to probe (repeat for several), when there is no document;
    /// `"GET,POST /items"` also says which methods it takes.
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// A file of paths to probe, one a line.
    #[arg(long = "paths")]
    pub paths_file: Option<PathBuf>,
    /// A bearer token for the probes; a second `--token`, weaker, enables the 403 checks.
    #[arg(long = "token")]
    pub tokens: Vec<String>,
    /// A header sent with every probe (`Name: value`; repeat for several).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// The policy: rfc9110, standard, seed-000 ... seed-004, or a policy file (JSON).
    #[arg(long, default_value = "rfc9110")]
    pub policy: String,
    /// Also send the probes with bodies (415, 400, 422), each with an
    /// `If-Match` that never matches, so that a conforming server refuses to act.
    #[arg(long)]
    pub allow_writes: bool,
    /// Also carry out one create per endpoint whose document gives a POST
    /// example (`created-201`), and delete what it created.
    #[arg(long)]
    pub allow_creates: bool,
    /// Spend up to N requests reaching the rate limit (429 with `Retry-After`).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub probe_load: u32,
    /// The most requests a second (the load probe excepted).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// The longest a `Retry-After` makes the audit wait, in seconds.
    #[arg(long, default_value_t = 5)]
    pub max_retry_wait: u64,
    /// How long to wait for one answer, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// The report's format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Fail (exit 1) on any broken rule, not only on a broken `must`.
    #[arg(long)]
    pub strict: bool,
}

/// A report's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A grid of endpoints and rules, then the failures (colours on a terminal).
    Table,
    /// One record per finding and a summary.
    Json,
    /// JUnit XML, for CI.
    Junit,
    /// One self-contained HTML page: the grid, each failure expandable to its exchange.
    Html,
}

/// What an audit is given.
#[derive(Clone, Debug)]
pub struct Options {
    base: String,
    policy: Policy,
    endpoints: Vec<Endpoint>,
    headers: Vec<(HeaderName, HeaderValue)>,
    scope: Scope,
    rate: f64,
    timeout: Duration,
    max_wait: Duration,
    strict: bool,
}

impl Options {
    /// An audit of `base` against `policy` (a name or a file).
    pub fn new(base: &str, policy: &str) -> Result<Self, String> {
        Ok(Options {
            base: base.to_string(),
            policy: Policy::load(policy)?,
            endpoints: Vec::new(),
            headers: Vec::new(),
            scope: Scope::default(),
            rate: 200.0,
            timeout: Duration::from_secs(10),
            max_wait: Duration::from_secs(5),
            strict: false,
        })
    }

    /// Also probes `path` (`"GET,POST /items"` names its methods too).
    pub fn path(mut self, path: &str) -> Self {
        self.endpoints.push(Endpoint::parse(path));
        self
    }

    /// Probes the endpoints of an OpenAPI document.
    pub fn openapi(mut self, doc: &serde_json::Value) -> Result<Self, String> {
        self.endpoints.extend(target::from_openapi(doc)?);
        Ok(self)
    }

    /// The token of the probes, and a weaker one for the 403 checks.
    pub fn tokens(mut self, token: Option<&str>, weak: Option<&str>) -> Self {
        self.scope.token = token.map(str::to_string);
        self.scope.weak_token = weak.map(str::to_string);
        self
    }

    /// Whether to send the write probes.
    pub fn writes(mut self, on: bool) -> Self {
        self.scope.writes = on;
        self
    }

    /// Whether to carry out (and undo) the creates the document has examples for.
    pub fn creates(mut self, on: bool) -> Self {
        self.scope.creates = on;
        self
    }

    /// The load probe's budget (0: none).
    pub fn load(mut self, requests: u32) -> Self {
        self.scope.load = requests;
        self
    }

    /// The longest a `Retry-After` makes the audit wait.
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Fail on any broken rule.
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    fn from_args(args: &CheckArgs) -> Result<Self, String> {
        let mut o = Options::new(&args.url, &args.policy)?;
        o.rate = args.rate;
        o.timeout = Duration::from_secs(args.timeout.max(1));
        o.max_wait = Duration::from_secs(args.max_retry_wait);
        o.strict = args.strict;
        o.scope = Scope {
            token: args.tokens.first().cloned(),
            weak_token: args.tokens.get(1).cloned(),
            writes: args.allow_writes,
            load: args.probe_load,
            creates: args.allow_creates,
        };
        for h in &args.headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("--header `{h}`: write `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("--header `{h}`: `{}` is not a header name", name.trim()))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("--header `{h}`: the value is not header text"))?;
            o.headers.push((name, value));
        }
        if let Some(file) = &args.openapi {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("--openapi {}: {e}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("--openapi {}: not JSON: {e}", file.display()))?;
            o = o.openapi(&doc)?;
        }
        if let Some(file) = &args.paths_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("--paths {}: {e}", file.display()))?;
            o.endpoints.extend(target::from_lines(&text));
        }
        for p in &args.paths {
            o = o.path(p);
        }
        Ok(o)
    }
}

/// The most endpoints `Link` headers may add to an audit.
const MAX_DISCOVERED: usize = 20;

/// Runs the audit: every endpoint's probes (and those of the paths `Link`
/// headers name), then the load probe.
pub async fn audit(options: Options) -> Result<(Vec<Finding>, Summary), String> {
    let mut endpoints = options.endpoints.clone();
    if endpoints.is_empty() {
        endpoints.push(Endpoint::path("/"));
    }
    let mut client = Client::new(
        &options.base,
        options.headers.clone(),
        options.rate,
        options.timeout,
    )?;
    client.max_wait(options.max_wait);
    let mut audit = Audit {
        client: &mut client,
        policy: &options.policy,
        scope: &options.scope,
        findings: Vec::new(),
        discovered: Vec::new(),
    };
    audit.whole_api().await;
    if audit.client.log.iter().all(|e| e.outcome.is_err()) {
        let why = audit.client.log[0]
            .outcome
            .clone()
            .err()
            .unwrap_or_default();
        return Err(format!("{} does not answer: {why}", options.base));
    }
    let progress = std::io::stderr().is_terminal();
    // The endpoints given, then (up to MAX_DISCOVERED) those `Link` headers name.
    let mut n = 0;
    while n < endpoints.len() {
        if progress {
            eprint!(
                "\r[{}/{}] {:60}",
                n + 1,
                endpoints.len(),
                endpoints[n].template
            );
        }
        let ep = endpoints[n].clone();
        audit.endpoint(&ep).await;
        for path in std::mem::take(&mut audit.discovered) {
            let known = endpoints.iter().any(|e| e.path == path);
            if !known && endpoints.len() < options.endpoints.len().max(1) + MAX_DISCOVERED {
                endpoints.push(Endpoint::path(&path));
            }
        }
        n += 1;
    }
    if progress {
        eprintln!();
    }
    if options.scope.load > 0 {
        let target = endpoints
            .iter()
            .find(|e| e.protected != Some(false))
            .unwrap_or(&endpoints[0]);
        audit.load(target).await;
    }
    let findings = audit.findings;
    let summary = Summary::of(
        &options.base,
        &options.policy.name,
        client.log.len(),
        &findings,
        options.strict,
    );
    Ok((findings, summary))
}

/// `verdict check`: audits, prints the report, and gives the exit code: 0
/// when no `must` (with `--strict`, no rule) fails, 1 when one does, 2 for a
/// usage or connection error.
pub async fn run(args: CheckArgs) -> i32 {
    let options = match Options::from_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("verdict check: {e}");
            return 2;
        }
    };
    match audit(options).await {
        Ok((findings, summary)) => {
            let text = match args.format {
                Format::Table => {
                    report::table(&findings, &summary, std::io::stdout().is_terminal())
                }
                Format::Json => report::json(&findings, &summary),
                Format::Junit => report::junit(&findings, &summary),
                Format::Html => report::html(&findings, &summary),
            };
            println!("{text}");
            if summary.ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("verdict check: {e}");
            2
        }
    }
}
