//! `--tokens FILE`: bearer tokens checked at the gateway, in the service's
//! model: a token is `<id>.<secret>`, only the SHA-256 of its secret is kept
//! (compared in constant time), and its scopes say what it may do (`read`
//! for GET/HEAD/OPTIONS, `write` for the rest, `admin` for anything). A
//! token may carry its own rate limit and an expiry.
//!
//! The file is JSON, written by the operator (the secret itself is never in
//! it; `printf %s "$SECRET" | sha256sum` gives the hash):
//!
//! ```json
//! {"tokens": [
//!   {"id": "ci", "secret_sha256": "9f86d0…", "scopes": ["read"],
//!    "rate_limit": "100/1m", "expires_at": "2027-01-01T00:00:00Z"}
//! ]}
//! ```
//!
//! A request the gateway authenticated reaches the upstream without its
//! `Authorization` header (the upstream never sees the secret) and with
//! [`PRINCIPAL`] and [`SCOPES`] instead; those two are removed from every
//! incoming request, so a client cannot claim them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use verdict::auth::{Authenticator, Authorizer, Principal, ScopeByMethod};
use verdict::rate_limit::Quota;
use verdict::ApiError;

/// The token id the gateway authenticated, sent upstream.
pub const PRINCIPAL: &str = "x-verdict-principal";
/// That token's scopes, space-separated, sent upstream.
pub const SCOPES: &str = "x-verdict-scopes";

/// The scopes a token may have (the service's).
const KNOWN_SCOPES: [&str; 3] = ["read", "write", "admin"];

/// One token of the file.
#[derive(Debug)]
struct Token {
    secret_sha256: [u8; 32],
    scopes: Vec<String>,
    rate_limit: Option<Quota>,
    expires_at: Option<SystemTime>,
}

/// The tokens of a `--tokens` file, by id.
#[derive(Debug)]
pub struct TokenFile {
    tokens: HashMap<String, Token>,
}

impl TokenFile {
    /// Reads and checks `file`; the error names the token and field at fault.
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--tokens {}: {e}", file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("--tokens {}: not JSON: {e}", file.display()))?;
        Self::from_value(&doc).map_err(|e| format!("--tokens {}: {e}", file.display()))
    }

    /// The tokens of an already-parsed file.
    pub fn from_value(doc: &Value) -> Result<Self, String> {
        let list = doc["tokens"]
            .as_array()
            .ok_or("no `tokens` array at the top")?;
        let mut tokens = HashMap::new();
        for (i, t) in list.iter().enumerate() {
            let at = |field: &str| format!("tokens[{i}].{field}");
            let id = t["id"]
                .as_str()
                .filter(|id| !id.is_empty() && !id.contains('.'))
                .ok_or_else(|| format!("{}: a non-empty string without a dot", at("id")))?;
            let hash = t["secret_sha256"]
                .as_str()
                .and_then(hex32)
                .ok_or_else(|| format!("{}: 64 hex digits", at("secret_sha256")))?;
            let scopes: Vec<String> = t["scopes"]
                .as_array()
                .ok_or_else(|| format!("{}: an array", at("scopes")))?
                .iter()
                .map(|s| {
                    s.as_str()
                        .filter(|s| KNOWN_SCOPES.contains(s))
                        .map(str::to_string)
                        .ok_or_else(|| format!("{}: each one of read, write, admin", at("scopes")))
                })
                .collect::<Result<_, _>>()?;
            let rate_limit = match &t["rate_limit"] {
                Value::Null => None,
                Value::String(s) => {
                    Some(parse_quota(s).map_err(|e| format!("{}: {e}", at("rate_limit")))?)
                }
                _ => return Err(format!("{}: a string like 100/1m", at("rate_limit"))),
            };
            let expires_at = match &t["expires_at"] {
                Value::Null => None,
                Value::String(s) => Some(
                    humantime::parse_rfc3339_weak(s)
                        .map_err(|e| format!("{}: an RFC 3339 time: {e}", at("expires_at")))?,
                ),
                _ => return Err(format!("{}: an RFC 3339 time", at("expires_at"))),
            };
            let token = Token {
                secret_sha256: hash,
                scopes,
                rate_limit,
                expires_at,
            };
            if tokens.insert(id.to_string(), token).is_some() {
                return Err(format!("{}: `{id}` is given twice", at("id")));
            }
        }
        Ok(TokenFile { tokens })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    fn check(&self, presented: &str, now: SystemTime) -> Option<Principal> {
        let (id, secret) = presented.split_once('.')?;
        let token = self.tokens.get(id)?;
        let digest = Sha256::digest(secret.as_bytes());
        let matches: bool = digest.as_slice().ct_eq(&token.secret_sha256).into();
        if !matches || token.expires_at.is_some_and(|at| at <= now) {
            return None;
        }
        let mut principal = Principal::new(id, token.scopes.iter().cloned());
        if let Some(quota) = token.rate_limit {
            principal = principal.with_rate_limit(quota);
        }
        Some(principal)
    }
}

impl Authenticator for TokenFile {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
        let found = self.check(token, SystemTime::now());
        Box::pin(async move { Ok(found) })
    }
}

/// Who may do what at the gateway: the service's rule (reads need `read`,
/// other methods `write`, `admin` anything), and the metrics page needs `admin`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayScopes;

impl Authorizer for GatewayScopes {
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        request: &'a http::request::Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        if request.uri.path() == crate::METRICS && !principal.has_scope("admin") {
            let realm = verdict::auth::Realm::of(&request.extensions);
            return Box::pin(async move { Err(ApiError::insufficient_scope(&realm, "admin")) });
        }
        ScopeByMethod.authorize(principal, request)
    }
}

/// `100/1m` -> 100 requests a minute (`humantime` durations).
pub fn parse_quota(s: &str) -> Result<Quota, String> {
    let (n, per) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not REQUESTS/DURATION (like 100/1m)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{n}` is not a count of at least 1"))?;
    let per: Duration =
        humantime::parse_duration(per.trim()).map_err(|e| format!("`{per}`: {e}"))?;
    if per.is_zero() {
        return Err(format!("`{s}`: the period must be longer than zero"));
    }
    Ok(Quota::new(n, per))
}

/// 64 hex digits as 32 bytes. (Hand-written: four lines do not warrant a crate.)
fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(s: &str) -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn a_token_is_its_id_and_a_secret_whose_hash_matches() {
        let file = TokenFile::from_value(&serde_json::json!({"tokens": [
            {"id": "ci", "secret_sha256": sha("s3cret"), "scopes": ["read"], "rate_limit": "5/1s"},
            {"id": "old", "secret_sha256": sha("x"), "scopes": ["write"], "expires_at": "2020-01-01T00:00:00Z"},
        ]}))
        .unwrap();
        let now = SystemTime::now();
        let p = file.check("ci.s3cret", now).expect("valid");
        assert_eq!(p.subject(), "ci");
        assert_eq!(p.scopes(), ["read"]);
        assert_eq!(p.rate_limit(), Some(Quota::new(5, Duration::from_secs(1))));
        assert!(file.check("ci.wrong", now).is_none());
        assert!(file.check("s3cret", now).is_none(), "no id");
        assert!(file.check("nobody.s3cret", now).is_none());
        assert!(file.check("old.x", now).is_none(), "expired");
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_field() {
        let bad =
            |t: Value| TokenFile::from_value(&serde_json::json!({"tokens": [t]})).unwrap_err();
        assert!(
            bad(serde_json::json!({"id": "a", "secret_sha256": "zz", "scopes": []}))
                .contains("secret_sha256")
        );
        assert!(
            bad(serde_json::json!({"id": "a", "secret_sha256": sha("x"), "scopes": ["root"]}))
                .contains("scopes")
        );
        assert!(
            bad(serde_json::json!({"id": "a.b", "secret_sha256": sha("x"), "scopes": []}))
                .contains("id")
        );
        assert!(bad(serde_json::json!({"id": "a", "secret_sha256": sha("x"), "scopes": [], "rate_limit": "0/1s"})).contains("rate_limit"));
    }

    #[test]
    fn quotas_parse() {
        assert_eq!(
            parse_quota("600/1m"),
            Ok(Quota::new(600, Duration::from_secs(60)))
        );
        assert!(parse_quota("600").is_err());
        assert!(parse_quota("x/1s").is_err());
        assert!(parse_quota("1/0s").is_err());
    }
}
