//! [`Contract`]: one builder that stacks every layer in the contract's order,
//! so a service cannot get the order wrong.
//!
//! When several things are wrong with one request, the first failure in this
//! order answers (docs/contract.md, "When several things are wrong"):
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
//! and on a router whose state is already provided (`Router<()>`). It takes
//! the router and gives back a [`ContractService`], which serves requests but
//! takes no routes: a route added after the checks were stacked would skip
//! every one of them, authentication included, so it cannot be added.
//!
//! ```compile_fail
//! use axum::{routing::get, Router};
//! use verdict::{Contract, Preset};
//!
//! let app = Contract::new(Preset::standard()).apply(Router::new().route("/", get(|| async { "ok" })));
//! // A route after `apply` would bypass every check: it does not compile.
//! let app = app.route("/admin", get(|| async { "secrets" }));
//! ```

use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::IntoMakeService;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use http::Method;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::{AuthenticateLayer, Authenticator, AuthorizeLayer, Authorizer, RequireAuthLayer};
use crate::body_limit::BodyLimitLayer;
use crate::body_timeout::{BodyTimeoutLayer, DEFAULT_BODY_TIMEOUT};
use crate::client_addr::{ClientAddrLayer, TrustedProxies};
use crate::conditional::ETagLayer;
use crate::content_type::ContentTypeLayer;
use crate::deadline::DeadlineLayer;
use crate::guard::{Chain, Except, GuardLayer};
use crate::headers::Upgrade;
use crate::load_shed::LoadShedLayer;
use crate::maintenance::{MaintenanceLayer, MaintenanceSwitch};
use crate::method::{method_not_allowed, MethodLayer};
use crate::negotiate::AcceptLayer;
use crate::normalize::NormalizeLayer;
use crate::panic::catch_panic_layer;
use crate::preset::Preset;
use crate::problems::ProblemType;
use crate::rate_limit::{Quota, RateLimitLayer, RateLimitStore};
use crate::request_id;
use crate::request_limits::RequestLimitsLayer;
use crate::retired::RetiredLayer;

pub use crate::body_limit::DEFAULT_MAX_BODY;

/// The whole contract, configured once and applied to a router.
#[derive(Clone)]
pub struct Contract {
    preset: Preset,
    realm: String,
    problem_base: String,
    authenticator: Option<Arc<dyn Authenticator>>,
    public: Vec<String>,
    probes: Vec<String>,
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
    media_types: bool,
    request_limits: RequestLimitsLayer,
    body_timeout: Option<Duration>,
    failed_auth: Option<(Arc<dyn RateLimitStore>, Quota)>,
    /// Every route string given to the builder, with the method that took
    /// it, checked against the router's routes when `apply` runs.
    named_routes: Vec<(&'static str, String)>,
    problem_pages: Option<&'static [ProblemType]>,
    trusted_proxies: TrustedProxies,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("preset", &self.preset.name())
            .field("realm", &self.realm)
            .field("public", &self.public)
            .field("probes", &self.probes)
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Contract {
    fn default() -> Self {
        Contract::new(Preset::standard())
    }
}

impl Contract {
    /// The contract under `preset`: JSON representations; JSON bodies up to
    /// 1 MiB (`PATCH` takes `application/merge-patch+json` and plain
    /// `application/json` alike, both as RFC 7396 merge patches: most
    /// clients send the latter); a body that sends nothing for 10 s answered
    /// 408; ETags on GET; no credentials, limits or deadlines until configured.
    pub fn new(preset: Preset) -> Self {
        Contract {
            preset,
            realm: "api".to_string(),
            problem_base: "/problems".to_string(),
            authenticator: None,
            public: Vec::new(),
            probes: Vec::new(),
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
            media_types: true,
            request_limits: RequestLimitsLayer::default(),
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            failed_auth: None,
            named_routes: Vec::new(),
            problem_pages: None,
            trusted_proxies: TrustedProxies::default(),
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

    /// Believes the client address that these proxies report (`Forwarded`,
    /// `X-Forwarded-For`), for rate limits and logs; see
    /// [`client_addr`](crate::client_addr). By default no proxy is trusted:
    /// the peer's address is the client's.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// Serves what each problem `type` means: `GET {problem_base}` lists them
    /// all, `GET {problem_base}/{slug}` shows one, as JSON or HTML, without
    /// credentials: the library's codes, every status's default, and the
    /// application's own `types` (listed first, so they win a name clash).
    pub fn document_problems(mut self, types: &'static [ProblemType]) -> Self {
        self.problem_pages = Some(types);
        self
    }

    /// Requires bearer credentials resolved by `authenticator` (401 otherwise).
    pub fn authenticate(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }

    /// Lets `path` (as routed) through without credentials.
    pub fn public(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.named_routes.push(("public", path.clone()));
        self.public.push(path);
        self
    }

    /// `path` is a probe (a health check, metrics): public, and never
    /// refused by load shedding, maintenance or a rate limit, so an
    /// orchestrator sees the process as it is even when it sheds or limits
    /// everyone else. Its handler still runs under the deadline.
    pub fn probe(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.named_routes.push(("probe", path.clone()));
        self.public.push(path.clone());
        self.probes.push(path);
        self
    }

    /// Throttles credential guessing: past `quota` requests with invalid
    /// credentials from one client address, that address gets 429 (see
    /// [`RequireAuthLayer::throttle_failures`]).
    pub fn throttle_failed_auth(mut self, store: Arc<dyn RateLimitStore>, quota: Quota) -> Self {
        self.failed_auth = Some((store, quota));
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
        self.named_routes.push(("produces", path.to_string()));
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
        self.named_routes.push(("consumes", path.to_string()));
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
        self.named_routes.push(("max_body_for", path.to_string()));
        self.body_limit = self.body_limit.route(method, path, bytes);
        self
    }

    /// The longest URI (414) and largest header section (431) taken.
    pub fn request_limits(mut self, max_uri: usize, max_headers: usize) -> Self {
        self.request_limits = RequestLimitsLayer::new(max_uri, max_headers);
        self
    }

    /// A request body that sends no byte for `timeout` is answered 408 (the
    /// default is 10 s); `None` lets bodies take as long as the deadline.
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Whether `Accept` (406) and `Content-Type` (415) are checked against
    /// what each route produces and consumes (default on). A gateway in
    /// front of an API it does not describe turns this off: the upstream
    /// decides what it takes and gives.
    pub fn check_media_types(mut self, on: bool) -> Self {
        self.media_types = on;
        self
    }

    /// Whether GET responses get ETags and 304s from [`ETagLayer`] (default on).
    pub fn etag(mut self, on: bool) -> Self {
        self.etag = on;
        self
    }

    /// Stacks every layer onto `router`, in the contract's order, and gives
    /// back the service to serve: it takes no more routes (one added now
    /// would skip every check), so add them all before.
    ///
    /// # Panics
    ///
    /// If a path given to [`public`](Self::public), [`produces`](Self::produces),
    /// [`consumes`](Self::consumes) or [`max_body_for`](Self::max_body_for) is
    /// not a route of `router` as written (with any `nest` prefix): such a
    /// setting would never apply, and a route meant to be public would stay
    /// private, silently. A misconfiguration is refused at start-up, as axum
    /// refuses overlapping routes.
    pub fn apply(mut self, router: Router) -> ContractService {
        let router = match self.problem_pages {
            Some(types) => {
                let base = self.problem_base.trim_end_matches('/').to_string();
                let slug = format!("{base}/{{slug}}");
                for path in [base.clone(), slug] {
                    self.public.push(path.clone());
                    self.accept =
                        self.accept
                            .route(Method::GET, &path, crate::problems::PAGE_MEDIA_TYPES);
                }
                router.merge(crate::problems::routes(&base, types))
            }
            None => router,
        };
        for (setting, path) in &self.named_routes {
            if !route_exists(&router, path) {
                panic!(
                    "verdict: Contract::{setting}(\"{path}\") names no route of the router given to \
                     Contract::apply; give the route's path as written in `.route()`, with any \
                     `.nest()` prefix, or the setting never applies"
                );
            }
        }
        let mut r = router;
        if r.has_routes() {
            // The checks after routing, in the contract's order, as one guard.
            let realm = self.realm.clone();
            let failed_auth = self.failed_auth.clone();
            let require = self.authenticator.as_ref().map(|_| {
                let layer = self
                    .public
                    .iter()
                    .fold(RequireAuthLayer::new(realm.clone()), |l, p| {
                        l.public(p.clone())
                    });
                match failed_auth {
                    Some((store, quota)) => layer.throttle_failures(store, quota),
                    None => layer,
                }
                .into_guard()
            });
            // Probes skip the checks that refuse for the server's sake, not the request's.
            let checks = Chain(
                self.max_in_flight
                    .map(|n| Except::new(LoadShedLayer::new(n).into_guard(), self.probes.clone())),
                Chain(
                    self.authenticator
                        .map(|a| AuthenticateLayer::new(a).into_guard()),
                    Chain(
                        self.maintenance.map(|m| {
                            Except::new(MaintenanceLayer::new(m).into_guard(), self.probes.clone())
                        }),
                        Chain(
                            require,
                            Chain(
                                self.rate_limit.map(|(s, q)| {
                                    Except::new(
                                        RateLimitLayer::new(s, q).into_guard(),
                                        self.probes.clone(),
                                    )
                                }),
                                Chain(
                                    self.authorizer
                                        .map(|a| AuthorizeLayer::from_arc(a).into_guard()),
                                    Chain(
                                        self.media_types.then(|| self.accept.into_guard()),
                                        Chain(
                                            self.media_types
                                                .then(|| self.content_type.into_guard()),
                                            self.body_limit.into_guard(),
                                        ),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
            );
            // One route layer for the four concerns, outermost first: axum
            // boxes each route layer's service and its future per request
            // (and `Router::layer` as much again), so four route layers cost
            // four of each, one costs one.
            r = r.route_layer(
                ServiceBuilder::new()
                    .option_layer(self.timeout.map(DeadlineLayer::new))
                    .layer(GuardLayer::from_guard(checks))
                    .option_layer(self.etag.then_some(ETagLayer))
                    // The body-limit guard enforces each route's limit; axum's
                    // own default (2 MiB for `Bytes`, `String`, `Json`) would
                    // silently cap every route below a larger configured limit.
                    .layer(axum::extract::DefaultBodyLimit::disable()),
            );
            // After the route layers, so that no check runs before a 405.
            r = r.method_not_allowed_fallback(method_not_allowed);
        }
        // A router called as a service turns each handler and its route
        // layers into a route on every request (clones, boxes, the layers
        // built again) unless its state was given first; `with_state` does
        // that once, here (`axum::serve` would, but the router is wrapped).
        let r: Router = r.with_state(());
        let whole = ServiceBuilder::new()
            .layer(request_id::SetRequestIdLayer)
            .layer(
                NormalizeLayer::new(self.preset)
                    .problem_base(self.problem_base)
                    .realm(self.realm),
            )
            .layer(catch_panic_layer())
            .layer(self.request_limits)
            .layer(MethodLayer::new())
            .option_layer(self.retired)
            .option_layer(self.body_timeout.map(BodyTimeoutLayer::new))
            .layer(ClientAddrLayer::new(self.trusted_proxies))
            .service(r);
        ContractService {
            app: BoxCloneSyncService::new(whole),
        }
    }
}

/// Whether `template` is the path of one of `router`'s routes.
///
/// axum does not list a router's routes, so the router is asked: a request for
/// the template (its parameters filled in) is sent through a copy of it with a
/// route layer that answers at once with the route it matched, before any
/// handler runs. Routing is synchronous, so the answer is ready on the first
/// poll.
fn route_exists(router: &Router, template: &str) -> bool {
    use axum::extract::MatchedPath;
    use futures_util::FutureExt;
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Probe;
    #[derive(Clone)]
    struct Matched(String);

    if !router.has_routes() {
        return false;
    }
    let concrete: String = {
        let mut out = String::new();
        let mut in_param = false;
        for c in template.chars() {
            match c {
                '{' => {
                    in_param = true;
                    out.push_str("probe");
                }
                '}' => in_param = false,
                c if !in_param => out.push(c),
                _ => {}
            }
        }
        out
    };
    let probing = router.clone().route_layer(axum::middleware::from_fn(
        |req: Request, next: axum::middleware::Next| async move {
            if req.extensions().get::<Probe>().is_none() {
                return next.run(req).await;
            }
            let mut res = http::StatusCode::NO_CONTENT.into_response();
            if let Some(m) = req.extensions().get::<MatchedPath>() {
                res.extensions_mut().insert(Matched(m.as_str().to_owned()));
            }
            res
        },
    ));
    let Ok(mut req) = http::Request::get(concrete).body(axum::body::Body::empty()) else {
        return false;
    };
    req.extensions_mut().insert(Probe);
    match probing.oneshot(req).now_or_never() {
        Some(Ok(res)) => res
            .extensions()
            .get::<Matched>()
            .is_some_and(|m| m.0 == template),
        // Not answered at once: cannot tell, so do not refuse.
        _ => true,
    }
}

/// The contract's layers and the router inside them, as one boxed service.
type BoxedApp = BoxCloneSyncService<Request, Response, Infallible>;

/// A router with the contract applied, as [`Contract::apply`] gives it back:
/// a service to serve (`axum::serve(listener, app)`, [`crate::server::Server`],
/// or as a tower service), not a router, so no route can be added after the
/// checks were stacked. Layers that wrap the whole service can still be added
/// ([`layer`](Self::layer)).
///
/// It is the contract's service itself, not a router around it: an outer
/// router would route every request twice (the second time to its only
/// fallback) and box it once more.
#[derive(Clone)]
pub struct ContractService {
    app: BoxedApp,
}

impl std::fmt::Debug for ContractService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContractService").finish_non_exhaustive()
    }
}

impl ContractService {
    /// Wraps the whole service, the contract's layers included, in `layer`
    /// (metrics, access logs: what should see every response as sent).
    pub fn layer<L>(self, layer: L) -> Self
    where
        L: Layer<BoxedApp>,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        use tower::ServiceExt;
        let wrapped = layer
            .layer(self.app)
            .map_response(IntoResponse::into_response)
            .map_err(Into::into);
        ContractService {
            app: BoxCloneSyncService::new(wrapped),
        }
    }

    /// As a router (its fallback), for what takes one.
    fn into_router(self) -> Router {
        Router::new().fallback_service(self.app)
    }

    /// For `hyper` or `axum::serve` with a make-service. (`axum::serve(listener,
    /// app)` with the service itself routes each request once less, and
    /// gives handlers the peer's address too.)
    pub fn into_make_service(self) -> IntoMakeService<Router> {
        self.into_router().into_make_service()
    }

    /// For `axum::serve`, with the peer's address in each request's
    /// extensions (rate limits of anonymous callers key on it).
    /// `axum::serve(listener, app)` with the service itself does the same
    /// for less.
    pub fn into_make_service_with_connect_info<C>(
        self,
    ) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, C> {
        self.into_router()
            .into_make_service_with_connect_info::<C>()
    }
}

impl<B> Service<http::Request<B>> for ContractService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = <BoxedApp as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.app.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.app.call(req.map(axum::body::Body::new))
    }
}

/// For `axum::serve(listener, app)`: each connection's requests carry the
/// peer's address as axum's `ConnectInfo<L::Addr>` (`ConnectInfo<SocketAddr>`
/// on TCP), as `into_make_service_with_connect_info` would give them.
impl<L: Listener> Service<IncomingStream<'_, L>> for ContractService
where
    L::Addr: Clone + Send + Sync + 'static,
{
    type Response = Connected<L::Addr>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(Connected {
            app: self.clone(),
            peer: stream.remote_addr().clone(),
        }))
    }
}

/// A [`ContractService`] on one connection of `axum::serve`: puts the
/// peer's address in each request's extensions.
#[derive(Clone, Debug)]
pub struct Connected<A> {
    app: ContractService,
    peer: A,
}

impl<A> Service<Request> for Connected<A>
where
    A: Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = <BoxedApp as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.app.app.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer.clone()));
        self.app.app.call(req)
    }
}
