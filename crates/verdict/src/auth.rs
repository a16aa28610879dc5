//! Bearer credentials (RFC 6750): 401 with a `WWW-Authenticate` challenge, and
//! the authorization check: 403.
//!
//! Three layers, which [`Contract`](crate::Contract) stacks in the contract's
//! order (maintenance 503 sits between the first two, the rate limit between
//! the last two):
//! - [`AuthenticateLayer`] resolves `Authorization: Bearer <token>` with your
//!   [`Authenticator`] and records the outcome ([`Authentication`]); it never refuses.
//! - [`RequireAuthLayer`] refuses with 401 when there are no credentials, or
//!   bad ones, except on public routes. With
//!   [`throttle_failures`](RequireAuthLayer::throttle_failures), an address
//!   that sends too many bad credentials gets 429 for a while instead, so
//!   tokens cannot be guessed at speed.
//! - [`AuthorizeLayer`] asks your [`Authorizer`] whether the principal may do
//!   this (403); [`ScopeByMethod`] is a ready one.
//!
//! Handlers read the principal with the [`Authenticated`] extractor.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{routing::get, Router};
//! use futures_util::future::BoxFuture;
//! use verdict::auth::*;
//! use verdict::ApiError;
//!
//! struct OneToken;
//! impl Authenticator for OneToken {
//!     fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Principal>, ApiError>> {
//!         Box::pin(async move {
//!             Ok((token == "secret").then(|| Principal::new("alice", ["read"])))
//!         })
//!     }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|Authenticated(p): Authenticated| async move { p.subject().to_string() }))
//!     .route_layer(AuthorizeLayer::new(ScopeByMethod))
//!     .route_layer(RequireAuthLayer::new("api"))
//!     .route_layer(AuthenticateLayer::new(Arc::new(OneToken)));
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::Method;

use crate::client_addr::ClientAddr;
use crate::guard::{Guard, GuardLayer};
use crate::headers::RetryAfter;
use crate::rate_limit::store::{Quota, RateLimitStore};
use crate::ApiError;

/// The realm of bearer challenges, in each request's extensions (put there by
/// the normalizing layer from [`Contract::realm`](crate::Contract::realm)), so
/// every 401 and 403 of a service names the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realm(pub Arc<str>);

impl Realm {
    /// The realm `extensions` carry (as the normalizing layer put it there,
    /// [`InEffect`](crate::preset::InEffect), or a `Realm` an application
    /// inserted itself), else `api`.
    pub fn of(extensions: &http::Extensions) -> Arc<str> {
        extensions
            .get::<crate::preset::InEffect>()
            .map(|e| e.realm.clone())
            .or_else(|| extensions.get::<Realm>().map(|r| r.0.clone()))
            .unwrap_or_else(|| Arc::from(DEFAULT_REALM))
    }
}

/// The scope that may do anything ([`ScopeByMethod`] lets it through
/// everywhere; maintenance lets it in).
pub const ADMIN_SCOPE: &str = "admin";

/// The realm when none is configured.
pub const DEFAULT_REALM: &str = "api";

/// Who a valid token belongs to and what it may do.
#[derive(Clone, Debug)]
pub struct Principal {
    subject: String,
    scopes: Vec<String>,
    rate_limit: Option<Quota>,
    unlimited: bool,
    extensions: http::Extensions,
}

impl Principal {
    /// A principal with `scopes`.
    pub fn new<I, T>(subject: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Principal {
            subject: subject.into(),
            scopes: scopes.into_iter().map(Into::into).collect(),
            rate_limit: None,
            unlimited: false,
            extensions: http::Extensions::new(),
        }
    }

    /// Exempt from rate limits altogether (an operator's break-glass credential).
    pub fn without_rate_limit(mut self) -> Self {
        self.unlimited = true;
        self
    }

    /// Whether it is exempt from rate limits.
    pub fn is_rate_limited(&self) -> bool {
        !self.unlimited
    }

    /// A rate limit of its own, instead of the layer's default.
    pub fn with_rate_limit(mut self, quota: Quota) -> Self {
        self.rate_limit = Some(quota);
        self
    }

    /// Attaches data of the application's own (grants, quotas...).
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The stable id of the credential's owner (a token id, never the secret).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The scopes.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether it has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Its own rate limit, if any.
    pub fn rate_limit(&self) -> Option<Quota> {
        self.rate_limit
    }

    /// Data the application attached.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }
}

/// Resolves a bearer token to a principal.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)` for an unknown, revoked or expired token; `Err` when the
    /// lookup itself failed (storage down: a 503, not a 401).
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Principal>, ApiError>>;
}

/// What [`AuthenticateLayer`] found, in the request's extensions.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// No `Authorization` header.
    Anonymous,
    /// A valid token.
    Authenticated(Arc<Principal>),
    /// Credentials that are malformed, unknown or revoked; the text says which.
    Invalid(&'static str),
}

impl Authentication {
    /// The principal, if the credentials were valid.
    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Authentication::Authenticated(p) => Some(p),
            _ => None,
        }
    }
}

/// RFC 6750 `b64token`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Layer that resolves bearer credentials into an [`Authentication`].
pub type AuthenticateLayer = GuardLayer<AuthenticateGuard>;

/// The check behind [`AuthenticateLayer`].
#[derive(Clone)]
pub struct AuthenticateGuard {
    authenticator: Arc<dyn Authenticator>,
}

impl std::fmt::Debug for AuthenticateGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateGuard").finish_non_exhaustive()
    }
}

impl AuthenticateLayer {
    /// Resolves tokens with `authenticator`.
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        GuardLayer::from_guard(AuthenticateGuard { authenticator })
    }
}

impl Guard for AuthenticateGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let mut given = req.headers().get_all(http::header::AUTHORIZATION).iter();
        if given.nth(1).is_some() {
            // Proxies disagree on which of two wins; refusing both is the only safe reading.
            return Err(ApiError::invalid_header(
                "Authorization",
                "it appears more than once; send one",
            ));
        }
        let outcome = match req.headers().get(http::header::AUTHORIZATION) {
            None => Authentication::Anonymous,
            Some(value) => {
                let text = value.to_str().unwrap_or("");
                match text.split_once(' ') {
                    Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                        let token = token.trim();
                        if !is_b64token(token) {
                            Authentication::Invalid("The bearer token is malformed.")
                        } else {
                            match self.authenticator.authenticate(token).await? {
                                Some(p) => Authentication::Authenticated(Arc::new(p)),
                                None => Authentication::Invalid(
                                    "The bearer token is unknown or has been revoked.",
                                ),
                            }
                        }
                    }
                    _ => Authentication::Invalid(
                        "The Authorization header must be `Bearer <token>`.",
                    ),
                }
            }
        };
        req.extensions_mut().insert(outcome);
        Ok(())
    }
}

/// Layer answering 401 to requests without valid credentials, except on public routes.
pub type RequireAuthLayer = GuardLayer<RequireAuthGuard>;

/// The check behind [`RequireAuthLayer`].
#[derive(Clone)]
pub struct RequireAuthGuard {
    realm: Arc<str>,
    public: Arc<Vec<String>>,
    failures: Option<FailureThrottle>,
}

impl std::fmt::Debug for RequireAuthGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireAuthGuard")
            .field("realm", &self.realm)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl RequireAuthLayer {
    /// Requires credentials on every route; `realm` goes in the challenge.
    pub fn new(realm: impl Into<Arc<str>>) -> Self {
        GuardLayer::from_guard(RequireAuthGuard {
            realm: realm.into(),
            public: Arc::new(Vec::new()),
            failures: None,
        })
    }

    /// Lets the route `path` (as routed: `/health`, `/problems/{slug}`) through without credentials.
    pub fn public(mut self, path: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.guard_mut().public).push(path.into());
        self
    }

    /// Throttles credential guessing: each request with invalid credentials
    /// spends one of its client address's `quota` in `store`; once it is used
    /// up, every request from that address that carries credentials, valid or
    /// not, gets 429 with `Retry-After` until the budget comes back. Requests
    /// from other addresses, and requests without credentials, are not
    /// affected, so an attacker cannot lock a real token out from elsewhere.
    /// The address is the client's ([`ClientAddr`]: the peer's, or what a
    /// trusted proxy reports); without `ConnectInfo` nothing is throttled.
    pub fn throttle_failures(mut self, store: Arc<dyn RateLimitStore>, quota: Quota) -> Self {
        self.guard_mut().failures = Some(FailureThrottle {
            store,
            quota,
            blocked: Arc::default(),
        });
        self
    }
}

/// Failed authentications per client address.
#[derive(Clone)]
struct FailureThrottle {
    store: Arc<dyn RateLimitStore>,
    quota: Quota,
    /// Addresses whose budget ran out, until when.
    blocked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
}

/// Addresses kept blocked at most; past it, expired entries are swept.
const MAX_BLOCKED: usize = 100_000;

impl FailureThrottle {
    /// The wait left for `ip`, if it is blocked.
    fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        let blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *blocked.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Spends one failure of `ip`'s budget; the wait if it is used up.
    async fn fail(&self, ip: IpAddr) -> Result<Option<Duration>, ApiError> {
        let decision = self
            .store
            .check(&format!("authfail:{ip}"), self.quota)
            .await?;
        if decision.allowed {
            return Ok(None);
        }
        let wait = decision.retry_after.max(Duration::from_secs(1));
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED {
                blocked.clear();
            }
        }
        blocked.insert(ip, Instant::now() + wait);
        Ok(Some(wait))
    }
}

fn throttled(wait: Duration) -> ApiError {
    let retry = RetryAfter::from_duration(wait);
    ApiError::rate_limited(retry)
        .with_code("authentication_throttled")
        .with_title("Too many failed authentications")
        .with_detail(format!(
            "Too many requests with invalid credentials came from this address; retry in {} seconds.",
            retry.seconds()
        ))
}

impl RequireAuthGuard {
    fn is_public(&self, req: &Request) -> bool {
        req.extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| self.public.iter().any(|q| q == p.as_str()))
    }
}

impl Guard for RequireAuthGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        if self.is_public(req) {
            return Ok(());
        }
        let outcome = req.extensions().get::<Authentication>();
        let peer = ClientAddr::of(req.extensions()).map(|c| c.0);
        if let (Some(throttle), Some(ip)) = (&self.failures, peer) {
            if !matches!(outcome, Some(Authentication::Anonymous) | None) {
                if let Some(wait) = throttle.blocked_for(ip) {
                    return Err(throttled(wait));
                }
            }
            if let Some(Authentication::Invalid(why)) = outcome {
                if let Some(wait) = throttle.fail(ip).await? {
                    return Err(throttled(wait));
                }
                return Err(ApiError::invalid_token(&self.realm, *why));
            }
        }
        match outcome {
            Some(Authentication::Authenticated(_)) => Ok(()),
            Some(Authentication::Invalid(why)) => Err(ApiError::invalid_token(&self.realm, *why)),
            Some(Authentication::Anonymous) | None => {
                Err(ApiError::missing_credentials(&self.realm))
            }
        }
    }
}

/// Decides whether a principal may make a request (403 if not).
pub trait Authorizer: Send + Sync + 'static {
    /// `Err` with a 403 (or any other error) to refuse.
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Reads need `read`, other methods `write`; `admin` may do anything.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScopeByMethod;

impl ScopeByMethod {
    /// The scope `method` needs.
    pub fn scope_for(method: &Method) -> &'static str {
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => "read",
            _ => "write",
        }
    }
}

impl Authorizer for ScopeByMethod {
    fn authorize<'a>(
        &'a self,
        principal: &'a Principal,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        let needed = Self::scope_for(&request.method);
        let ok = principal.has_scope(needed) || principal.has_scope(ADMIN_SCOPE);
        let realm = Realm::of(&request.extensions);
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(ApiError::insufficient_scope(&realm, needed))
            }
        })
    }
}

/// Layer answering 403 when the [`Authorizer`] refuses the principal.
pub type AuthorizeLayer = GuardLayer<AuthorizeGuard>;

/// The check behind [`AuthorizeLayer`].
#[derive(Clone)]
pub struct AuthorizeGuard {
    authorizer: Arc<dyn Authorizer>,
}

impl std::fmt::Debug for AuthorizeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeGuard").finish_non_exhaustive()
    }
}

impl AuthorizeLayer {
    /// Authorizes with `authorizer`.
    pub fn new(authorizer: impl Authorizer) -> Self {
        Self::from_arc(Arc::new(authorizer))
    }

    /// Authorizes with a shared `authorizer`.
    pub fn from_arc(authorizer: Arc<dyn Authorizer>) -> Self {
        GuardLayer::from_guard(AuthorizeGuard { authorizer })
    }
}

impl Guard for AuthorizeGuard {
    type State = ();

    async fn check(&self, req: &mut Request) -> Result<(), ApiError> {
        let Some(principal) = req
            .extensions()
            .get::<Authentication>()
            .and_then(Authentication::principal)
            .cloned()
        else {
            // Anonymous requests reached here only on public routes.
            return Ok(());
        };
        let (parts, body) = std::mem::take(req).into_parts();
        let verdict = self.authorizer.authorize(&principal, &parts).await;
        *req = Request::from_parts(parts, body);
        verdict
    }
}

/// Extractor for the authenticated principal (401 if there is none).
#[derive(Clone, Debug)]
pub struct Authenticated(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Authentication>()
            .and_then(Authentication::principal)
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| ApiError::missing_credentials(&Realm::of(&parts.extensions)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64token_follows_rfc6750() {
        assert!(is_b64token("abc.DEF-123_~+/=="));
        assert!(!is_b64token("a b"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("tok\"en"));
    }
}
