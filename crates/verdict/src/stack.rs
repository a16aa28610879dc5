//! [`Contract`]: one builder that stacks every layer in the contract's order,
//! so a service cannot get the order wrong.
//!
//! When several things are wrong with one request, the first failure in this
//! order answers (CONTRACT.md "Ordering when several things are wrong"):
//!
//! (414/431 oversized URI or headers ->) 501 unknown method -> 410/426 retired version -> 404 unknown path -> 405
//! method not allowed -> 503 overload or maintenance -> 401 credentials -> 429
//! rate limit -> 403 scope -> 406 Accept -> 415 Content-Type -> 413 size ->
//! (the handler:) 400 syntax -> 404 missing resource -> 412/304 -> 422 -> 409.
//!
//! How the order is kept, given how axum routes (axum 0.8):
//! - `Router::layer` and `Router::route_layer` both wrap the handlers *inside*
//!   each `MethodRouter`, including its 405 fallback, and axum adds `Allow` to
//!   that 405 *outside* them. So a layer added either way runs before the 405
//!   (a 401 would win over it) and never sees `Allow`.
//! - Hence: the checks after routing (503 ... 413) are route layers; then the
//!   405 fallback of every route is replaced by one that no route layer wraps
//!   (`Router::method_not_allowed_fallback`, applied after them), so 405 wins;
//!   and the checks before routing (501, 410), the panic catcher, the
//!   normalizer and the request id wrap the *whole* router as one service,
//!   where `Allow` is visible. Route layers never wrap the router's 404
//!   fallback, so 404 wins too.
//!
//! [`Contract::apply`] must therefore be called after every route is added,
//! and on a router whose state is already provided (`Router<()>`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::Method;
use tower::ServiceBuilder;

use crate::auth::{AuthenticateLayer, Authenticator, AuthorizeLayer, Authorizer, RequireAuthLayer};
use crate::body_limit::BodyLimitLayer;
use crate::conditional::ETagLayer;
use crate::content_type::ContentTypeLayer;
use crate::deadline::DeadlineLayer;
use crate::guard::{Chain, GuardLayer};
use crate::headers::Upgrade;
use crate::load_shed::LoadShedLayer;
use crate::maintenance::{MaintenanceLayer, MaintenanceSwitch};
use crate::method::{method_not_allowed, MethodLayer};
use crate::negotiate::AcceptLayer;
use crate::normalize::NormalizeLayer;
use crate::panic::catch_panic_layer;
use crate::preset::Preset;
use crate::rate_limit::{Quota, RateLimitLayer, RateLimitStore};
use crate::request_id;
use crate::request_limits::RequestLimitsLayer;
use crate::retired::RetiredLayer;

/// The default largest JSON body: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

/// The whole contract, configured once and applied to a router.
#[derive(Clone)]
pub struct Contract {
    preset: Preset,
    realm: String,
    problem_base: String,
    authenticator: Option<Arc<dyn Authenticator>>,
    public: Vec<String>,
    authorizer: Option<Arc<dyn Authorizer>>,
    rate_limit: Option<(Arc<dyn RateLimitStore>, Option<Quota>)>,
    max_in_flight: Option<usize>,
    timeout: Option<Duration>,
    maintenance: Option<MaintenanceSwitch>,
    retired: Option<RetiredLayer>,
    accept: AcceptLayer,
    content_type: ContentTypeLayer,
    body_limit: BodyLimitLayer,
    etag: bool,
    request_limits: RequestLimitsLayer,
}

impl Default for Contract {
    fn default() -> Self {
        Contract::new(Preset::standard())
    }
}

impl Contract {
    /// The contract under `preset`: JSON representations, JSON bodies up to
    /// 1 MiB, ETags on GET; no credentials, limits or deadlines until configured.
    pub fn new(preset: Preset) -> Self {
        Contract {
            preset,
            realm: "api".to_string(),
            problem_base: "/problems".to_string(),
            authenticator: None,
            public: Vec::new(),
            authorizer: None,
            rate_limit: None,
            max_in_flight: None,
            timeout: None,
            maintenance: None,
            retired: None,
            accept: AcceptLayer::new(["application/json"]),
            content_type: ContentTypeLayer::new(),
            body_limit: BodyLimitLayer::new(DEFAULT_MAX_BODY),
            etag: true,
            request_limits: RequestLimitsLayer::default(),
        }
    }

    /// The preset.
    pub fn preset(&self) -> &Preset {
        &self.preset
    }

    /// The realm of bearer challenges (default `api`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Where problem `type` URIs point (default `/problems`).
    pub fn problem_base(mut self, base: impl Into<String>) -> Self {
        self.problem_base = base.into();
        self
    }

    /// Requires bearer credentials resolved by `authenticator` (401 otherwise).
    pub fn authenticate(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Lets `path` (as routed) through without credentials.
    pub fn public(mut self, path: impl Into<String>) -> Self {
        self.public.push(path.into());
        self
    }

    /// Checks each authenticated request with `authorizer` (403 when refused).
    pub fn authorize(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Rate-limits with `store`; callers without a quota of their own get `default`.
    pub fn rate_limit(mut self, store: Arc<dyn RateLimitStore>, default: Option<Quota>) -> Self {
        self.rate_limit = Some((store, default));
        self
    }

    /// Sheds requests beyond `n` in flight with 503.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self
    }

    /// Answers 504 when a request runs past `deadline`.
    pub fn timeout(mut self, deadline: Duration) -> Self {
        self.timeout = Some(deadline);
        self
    }

    /// Answers 503 while `switch` is on (admins pass).
    pub fn maintenance(mut self, switch: MaintenanceSwitch) -> Self {
        self.maintenance = Some(switch);
        self
    }

    /// Retires everything under `prefix` (410, or 426 with `Upgrade: successor`).
    pub fn retire(mut self, prefix: &str, successor: Upgrade) -> Self {
        self.retired = Some(match self.retired.take() {
            None => RetiredLayer::new(prefix, successor),
            Some(l) => l.and(prefix, successor),
        });
        self
    }

    /// `method` on `path` offers these representations (default: JSON only).
    pub fn produces<I: IntoIterator<Item = &'static str>>(
        mut self,
        method: Method,
        path: &str,
        types: I,
    ) -> Self {
        self.accept = self.accept.route(method, path, types);
        self
    }

    /// `method` on `path` takes bodies of these media types.
    pub fn consumes<I: IntoIterator<Item = &'static str>>(
        mut self,
        method: Method,
        path: &str,
        types: I,
    ) -> Self {
        self.content_type = self.content_type.route(method, path, types);
        self
    }

    /// The largest body any route takes (default 1 MiB).
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.body_limit = BodyLimitLayer::new(bytes);
        self
    }

    /// The largest body `method` on `path` takes.
    pub fn max_body_for(mut self, method: Method, path: &str, bytes: u64) -> Self {
        self.body_limit = self.body_limit.route(method, path, bytes);
        self
    }

    /// The longest URI (414) and largest header section (431) taken.
    pub fn request_limits(mut self, max_uri: usize, max_headers: usize) -> Self {
        self.request_limits = RequestLimitsLayer::new(max_uri, max_headers);
        self
    }

    /// Whether GET responses get ETags and 304s from [`ETagLayer`] (default on).
    pub fn etag(mut self, on: bool) -> Self {
        self.etag = on;
        self
    }

    /// Stacks every layer onto `router`, in the contract's order. Call it after
    /// the last route is added: route layers only wrap the routes that exist.
    pub fn apply(self, router: Router) -> Router {
        let mut r = router;
        if r.has_routes() {
            // The checks after routing, in the contract's order, as one guard.
            let realm = self.realm.clone();
            let require = self.authenticator.as_ref().map(|_| {
                self.public
                    .iter()
                    .fold(RequireAuthLayer::new(realm.clone()), |l, p| {
                        l.public(p.clone())
                    })
                    .into_guard()
            });
            let checks = Chain(
                self.max_in_flight
                    .map(|n| LoadShedLayer::new(n).into_guard()),
                Chain(
                    self.authenticator
                        .map(|a| AuthenticateLayer::new(a).into_guard()),
                    Chain(
                        self.maintenance
                            .map(|m| MaintenanceLayer::new(m).into_guard()),
                        Chain(
                            require,
                            Chain(
                                self.rate_limit
                                    .map(|(s, q)| RateLimitLayer::new(s, q).into_guard()),
                                Chain(
                                    self.authorizer
                                        .map(|a| AuthorizeLayer::from_arc(a).into_guard()),
                                    Chain(
                                        self.accept.into_guard(),
                                        Chain(
                                            self.content_type.into_guard(),
                                            self.body_limit.into_guard(),
                                        ),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            );
            // Innermost first: each route_layer wraps the ones before it.
            if self.etag {
                r = r.route_layer(ETagLayer);
            }
            r = r.route_layer(GuardLayer::from_guard(checks));
            if let Some(deadline) = self.timeout {
                r = r.route_layer(DeadlineLayer::new(deadline));
            }
            // The body-limit guard enforces each route's limit; axum's own
            // default (2 MiB for `Bytes`, `String`, `Json`) would silently cap
            // every route below a larger configured limit.
            r = r.layer(axum::extract::DefaultBodyLimit::disable());
            // After the route layers, so that no check runs before a 405.
            r = r.method_not_allowed_fallback(method_not_allowed);
        }
        let whole = ServiceBuilder::new()
            .layer(request_id::set_layer())
            .layer(request_id::propagate_layer())
            .layer(
                NormalizeLayer::new(self.preset)
                    .problem_base(self.problem_base)
                    .realm(self.realm),
            )
            .layer(catch_panic_layer())
            .layer(self.request_limits)
            .layer(MethodLayer::new())
            .option_layer(self.retired)
            .service(r);
        Router::new().fallback_service(whole)
    }
}
