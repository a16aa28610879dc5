//! Command line: `verdict serve` and its flags; every flag also reads an
//! environment variable (`VERDICT_LISTEN`, ...), per docs/contract.md.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use verdict::rate_limit::Quota;
use verdict::{ErrorFormat, Preset};

/// Verdict: an HTTP JSON API that keeps the status-code contract.
#[derive(Debug, Parser)]
#[command(name = "verdict", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the records API.
    Serve(ServeArgs),
    /// Copy the SQLite database to FILE while the service runs (a consistent
    /// snapshot); for PostgreSQL use pg_dump.
    Backup(BackupArgs),
    /// Put a backup in place of the SQLite database (stop the service first).
    Restore(RestoreArgs),
    /// Create, list or revoke tokens on the storage, without an admin token.
    Token(TokenArgs),
    /// Audit a live HTTP API, written in anything, against the status-code
    /// contract: probes chosen to provoke each answer, judged by rules with
    /// stable ids (exit 0: no `must` broken; 1: one is; 2: usage or connection error).
    Check(verdict_check::CheckArgs),
    /// Put the contract in front of an HTTP API written in anything: the
    /// library's layers, then the upstream; 502/503/504 for the reasons RFC
    /// 9110 gives them; upstream errors rewritten into the preset's format.
    Proxy(verdict_proxy::ProxyArgs),
    /// Print the OpenAPI document `serve` would publish at /openapi.json (for
    /// generating a client without a running service; no collection schemas).
    Openapi(OpenapiArgs),
}

/// `verdict openapi`.
#[derive(Clone, Debug, Args)]
pub struct OpenapiArgs {
    /// The preset whose codes and error format the document describes.
    #[arg(long, env = "VERDICT_PRESET", default_value = "standard", value_parser = preset_parser())]
    pub preset: Preset,
}

/// `verdict token`.
#[derive(Clone, Debug, Args)]
pub struct TokenArgs {
    /// The database, as `serve --data` names it.
    #[arg(
        long,
        env = "VERDICT_DATA",
        default_value = "./verdict-data/verdict.db",
        global = true
    )]
    pub data: String,
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// `verdict token create|list|revoke`.
#[derive(Clone, Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; its secret is printed once.
    Create {
        /// A scope: read, write or admin (repeat for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// A collection the token is limited to (repeat; none: all).
        #[arg(long = "collection")]
        collections: Vec<String>,
        /// Its own rate limit, `REQUESTS/DURATION` (`100/1m`).
        #[arg(long, value_parser = parse_quota, default_value = "off")]
        rate_limit: RateLimitArg,
        /// Writes it may make a UTC day.
        #[arg(long)]
        write_quota: Option<u32>,
    },
    /// List the tokens (never their secrets).
    List,
    /// Revoke a token: it gets 401 from then on.
    Revoke {
        /// The token's id (the part before the `.`).
        id: String,
    },
}

/// `verdict backup`.
#[derive(Clone, Debug, Args)]
pub struct BackupArgs {
    /// The database, as `serve --data` names it.
    #[arg(
        long,
        env = "VERDICT_DATA",
        default_value = "./verdict-data/verdict.db"
    )]
    pub data: String,
    /// Where to write the copy (a new file).
    pub file: std::path::PathBuf,
}

/// `verdict restore`.
#[derive(Clone, Debug, Args)]
pub struct RestoreArgs {
    /// The database to replace, as `serve --data` names it.
    #[arg(
        long,
        env = "VERDICT_DATA",
        default_value = "./verdict-data/verdict.db"
    )]
    pub data: String,
    /// The backup to restore.
    pub file: std::path::PathBuf,
    /// Restore even though the database looks open (after a crash).
    #[arg(long)]
    pub force: bool,
}

/// `verdict serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VERDICT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Storage: a SQLite file path (or `sqlite:` URL), or `postgres://...`.
    #[arg(
        long,
        env = "VERDICT_DATA",
        default_value = "./verdict-data/verdict.db"
    )]
    pub data: String,

    /// The admin token; without it one is generated on first start and printed once.
    #[arg(long, env = "VERDICT_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: Option<String>,

    /// `standard`, or a seed's variant: `seed-000` ... `seed-004`.
    #[arg(long, env = "VERDICT_PRESET", default_value = "standard", value_parser = preset_parser())]
    pub preset: Preset,

    /// Error-body format, overriding the preset's: `problem`, `jsonapi`, `simple`.
    #[arg(long, env = "VERDICT_ERROR_FORMAT", value_parser = format_parser())]
    pub error_format: Option<ErrorFormat>,

    /// Deadline of a request (504 past it).
    #[arg(long, env = "VERDICT_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Requests in flight before load shedding (503).
    #[arg(long, env = "VERDICT_MAX_IN_FLIGHT", default_value_t = 1024, value_parser = parse_positive)]
    pub max_in_flight: usize,

    /// Honour `Fault-Injection` headers from admin tokens.
    #[arg(long, env = "VERDICT_FAULT_INJECTION")]
    pub fault_injection: bool,

    /// Largest JSON body: bytes, or with a unit (`KiB`/`MiB`/`GiB` and the
    /// shorthands `k`/`M`/`G` are powers of 1024; `kB`/`MB`/`GB` of 1000).
    #[arg(long, env = "VERDICT_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Memory for records kept for point reads in SQLite mode (exact: the
    /// writer forgets what it changes before acknowledging it); `0` turns it
    /// off. PostgreSQL mode has none. Same units as `--max-body`.
    #[arg(long, env = "VERDICT_RECORD_CACHE", default_value = "64MiB", value_parser = parse_size)]
    pub record_cache: u64,

    /// Largest NDJSON import body.
    #[arg(long, env = "VERDICT_MAX_IMPORT_BODY", default_value = "64MiB", value_parser = parse_size)]
    pub max_import_body: u64,

    /// Import inputs one token may have queued or running at once (bytes);
    /// past it, a new import is refused with 429 until some finish.
    #[arg(long, env = "VERDICT_MAX_QUEUED_IMPORT_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub max_queued_import_bytes: u64,

    /// Jobs (exports, imports) run at once; the next goes to the token with
    /// the fewest running.
    #[arg(long, env = "VERDICT_JOB_WORKERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub job_workers: u16,

    /// A request head (and a new connection's first one) must arrive within this.
    #[arg(long, env = "VERDICT_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A request body that sends nothing for this long is answered 408.
    #[arg(long, env = "VERDICT_BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// A keep-alive connection with no request in flight is closed after this.
    #[arg(long, env = "VERDICT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// A response the client stops reading is abandoned after this long without progress.
    #[arg(long, env = "VERDICT_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Connections open at once (lowered to what the open-file limit allows);
    /// past it, idle connections are closed and new ones wait.
    #[arg(long, env = "VERDICT_MAX_CONNECTIONS", default_value_t = 4096, value_parser = parse_positive)]
    pub max_connections: usize,

    /// Requests with invalid credentials one client address may send
    /// (`REQUESTS/DURATION`, or `off`); past it, that address gets 429.
    #[arg(long, env = "VERDICT_AUTH_FAILURE_LIMIT", default_value = "20/1m", value_parser = parse_quota)]
    pub auth_failure_limit: RateLimitArg,

    /// How long a renamed collection's old name answers 302.
    #[arg(long, env = "VERDICT_ALIAS_PERIOD", default_value = "7days", value_parser = parse_duration)]
    pub alias_period: Duration,

    /// Rate limit of tokens without one of their own and of anonymous
    /// clients: `REQUESTS/DURATION` (`600/1m`), or `off`.
    #[arg(long, env = "VERDICT_RATE_LIMIT", default_value = "600/1m", value_parser = parse_quota)]
    pub rate_limit: RateLimitArg,

    /// Jobs (exports, imports) a token may start: `REQUESTS/DURATION`, or `off`.
    /// Past it: 429 (a resource's rate limit; never 420).
    #[arg(long, env = "VERDICT_JOB_RATE_LIMIT", default_value = "60/1h", value_parser = parse_quota)]
    pub job_rate_limit: RateLimitArg,

    /// Share rate limits, write quotas, idempotency locks and maintenance mode
    /// with other instances through Redis (`redis://127.0.0.1:6379`).
    #[arg(long, env = "VERDICT_SHARED")]
    pub shared: Option<String>,

    /// When Redis is unreachable: `fail` (503 with Retry-After) or `local`
    /// (this instance's own limits, with a warning).
    #[arg(
        long,
        env = "VERDICT_SHARED_UNAVAILABLE",
        value_enum,
        default_value = "fail"
    )]
    pub shared_unavailable: crate::cluster::WhenUnavailable,

    /// Prefix of the keys in Redis (several services may share one Redis).
    #[arg(long, env = "VERDICT_SHARED_PREFIX", default_value = "verdict")]
    pub shared_prefix: String,

    /// A proxy (or network of proxies, CIDR) whose `Forwarded` /
    /// `X-Forwarded-For` is believed for the client's address (rate limits,
    /// failed-authentication limits); repeat for several. Without it the
    /// peer's address is the client's.
    #[arg(
        long = "trusted-proxy",
        env = "VERDICT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// How long an `Idempotency-Key`'s answer is kept (a retry after that
    /// runs anew).
    #[arg(long, env = "VERDICT_IDEMPOTENCY_RETENTION", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_retention: Duration,

    /// How long a finished job (its state, result and report) is kept.
    #[arg(long, env = "VERDICT_JOB_RETENTION", default_value = "7days", value_parser = parse_duration)]
    pub job_retention: Duration,

    /// Origins whose browsers may call the API (`https://app.example`; repeat
    /// for several, or `*` for any). Without it, no CORS headers are sent.
    #[arg(
        long = "cors-origin",
        env = "VERDICT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Send bodies as they are, never gzip, brotli or zstd (for a reverse
    /// proxy that compresses itself). By default a body of 1 KiB or more is
    /// compressed when `Accept-Encoding` asks for it.
    #[arg(long, env = "VERDICT_NO_COMPRESSION")]
    pub no_compression: bool,

    /// Log lines as JSON instead of text. What is logged is set by
    /// VERDICT_LOG, else RUST_LOG (e.g. `info` or `info,verdict=debug`;
    /// default `info`).
    #[arg(long, env = "VERDICT_LOG_JSON")]
    pub log_json: bool,
}

impl ServeArgs {
    /// The storage in use, for the start-up output and logs: the SQLite
    /// path, or PostgreSQL's host and database, never a password.
    pub fn storage_label(&self) -> String {
        let data = &self.data;
        if let Some(rest) = data
            .strip_prefix("postgres://")
            .or_else(|| data.strip_prefix("postgresql://"))
        {
            let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
            let host_and_db = host_and_db.split('?').next().unwrap_or("");
            return format!("PostgreSQL at {host_and_db}");
        }
        format!("SQLite at {}", data.strip_prefix("sqlite:").unwrap_or(data))
    }
}

/// A default rate limit, or none (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitArg(pub Option<Quota>);

/// The admin token travels as an RFC 6750 bearer token, and a `.` would read
/// as `<id>.<secret>`: letters, digits and `-_~+/` only.
fn parse_admin_token(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.contains('.')
        && s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err("use letters, digits and - _ ~ + / (no `.`): it is sent as a bearer token".into())
    }
}

/// `--preset`: one of the presets' names (listed by `--help` and in errors).
fn preset_parser() -> impl clap::builder::TypedValueParser<Value = Preset> {
    let names: Vec<&'static str> = Preset::all().iter().map(Preset::name).collect();
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| Preset::by_name(&name).expect("a listed preset"))
}

/// `--error-format`: one of the three formats' names.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = ErrorFormat> {
    clap::builder::PossibleValuesParser::new(["problem", "jsonapi", "simple"]).map(
        |name| match name.as_str() {
            "jsonapi" => ErrorFormat::JsonApi,
            "simple" => ErrorFormat::Simple,
            _ => ErrorFormat::Problem,
        },
    )
}

/// A count that must be at least 1 (0 would refuse every request).
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// `30s`, `1m`, `7days`...
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("expected a duration such as 30s, 1m or 7days ({e})"))
}

/// `1048576`, `64k`, `1MiB`, `2M` ...
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    // IEC units and the one-letter shorthands (as nginx reads `1m`) are
    // powers of 1024; SI units mean what they say, powers of 1000.
    let mult: u64 = match unit.trim() {
        "" | "b" | "B" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, kB, MB or GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// `600/1m` -> 600 requests per minute; `off` -> no limit.
pub fn parse_quota(s: &str) -> Result<RateLimitArg, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(RateLimitArg(None));
    }
    let (n, per) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not REQUESTS/DURATION"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a count"))?;
    let per = parse_duration(per)?;
    Ok(RateLimitArg(Some(Quota::new(n, per))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_must_travel_as_bearer_tokens() {
        assert!(parse_admin_token("s3cret-Token_~+/==").is_ok());
        assert!(parse_admin_token("has.dot").is_err());
        assert!(parse_admin_token("has space").is_err());
        assert!(parse_admin_token("").is_err());
    }

    #[test]
    fn sizes_and_quotas_parse() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("10"), Ok(10));
        assert!(parse_size("x").is_err());
        assert_eq!(parse_size("1MB"), Ok(1_000_000), "MB means what it says");
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("1 furlong").is_err());
        assert_eq!(
            parse_quota("600/1m"),
            Ok(RateLimitArg(Some(Quota::new(600, Duration::from_secs(60)))))
        );
        assert_eq!(parse_quota("off"), Ok(RateLimitArg(None)));
    }

    fn serve(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["verdict", "serve"].iter().chain(args))
    }

    #[test]
    fn the_storage_label_never_shows_a_password() {
        let args = |data: &str| match serve(&["--data", data]).unwrap().command {
            Command::Serve(a) => a,
            _ => unreachable!("serve was asked for"),
        };
        assert_eq!(
            args("postgres://app:s3cret@db.internal:5432/verdict?sslmode=require").storage_label(),
            "PostgreSQL at db.internal:5432/verdict"
        );
        assert_eq!(args("./data/v.db").storage_label(), "SQLite at ./data/v.db");
    }

    #[test]
    fn bad_flags_are_refused_with_what_would_be_right() {
        let e = serve(&["--max-in-flight", "0"]).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        let e = serve(&["--preset", "seed-9"]).unwrap_err().to_string();
        assert!(e.contains("seed-004") && e.contains("standard"), "{e}");
        let e = serve(&["--error-format", "xml"]).unwrap_err().to_string();
        assert!(e.contains("jsonapi"), "{e}");
        let e = serve(&["--request-timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a duration such as 30s"), "{e}");
        assert!(serve(&["--preset", "seed-001", "--error-format", "simple"]).is_ok());
    }
}
