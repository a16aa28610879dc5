//! The active probes: requests chosen to provoke each answer RFC 9110 gives,
//! per endpoint, and the judgment of what came back. Every exchange is also
//! judged by the passive rules.

use std::collections::BTreeSet;

use http::Method;

use crate::client::{Call, Client};
use crate::finding::{Finding, Verdict};
use crate::passive::{self, describe};
use crate::policy::Policy;
use crate::target::{allow_set, Endpoint};

/// An entity tag no representation has.
const NEVER: &str = "\"verdict-check-never-matches\"";
/// A token no API issued.
const INVALID_TOKEN: &str = "verdict-check-invalid-token";
/// Methods a path may take, in the order a 405 probe tries them.
const KNOWN: [&str; 5] = ["DELETE", "PUT", "PATCH", "POST", "GET"];

/// What the audit may do, and with which credentials.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The token for every probe (the first `--token`).
    pub token: Option<String>,
    /// A weaker token, for the 403 checks (the second `--token`).
    pub weak_token: Option<String>,
    /// Send bodies (`--allow-writes`), each with an `If-Match` that never matches.
    pub writes: bool,
    /// Requests the load probe may spend (`--probe-load N`; 0: none).
    pub load: u32,
    /// Carry out one create per endpoint that documents an example body
    /// (`--allow-creates`), then delete what was created.
    pub creates: bool,
}

/// The audit in progress: the client, the policy, the findings so far.
pub struct Audit<'a> {
    /// Sends and keeps every exchange.
    pub client: &'a mut Client,
    /// What the API promises.
    pub policy: &'a Policy,
    /// What the audit may do.
    pub scope: &'a Scope,
    /// Every finding so far.
    pub findings: Vec<Finding>,
    /// Paths under the base that `Link` headers named, to probe too.
    pub discovered: Vec<String>,
}

impl Audit<'_> {
    /// Sends `call` for `endpoint`, judges it passively, and returns the exchange's index.
    async fn send(&mut self, endpoint: &str, call: Call, expected_5xx: &[u16]) -> usize {
        let i = self.client.send(call).await;
        // A method refused, or a rate limit, where the policy maps it to a
        // 5xx (seed-002: 501 and 503) is the policy's answer, not a server error.
        let mut expected: Vec<u16> = expected_5xx.to_vec();
        expected.extend(
            [
                self.policy.expected(405),
                self.policy.expected(501),
                self.policy.rate_limited(),
            ]
            .into_iter()
            .filter(|s| *s >= 500),
        );
        let found = passive::judge(&self.client.log[i], endpoint, self.policy, &expected);
        self.findings.extend(found);
        i
    }

    fn status(&self, i: usize) -> Option<u16> {
        self.client.log[i].status()
    }

    fn header(&self, i: usize, name: &str) -> String {
        self.client.log[i]
            .outcome
            .as_ref()
            .map(|a| a.header(name).to_string())
            .unwrap_or_default()
    }

    /// Records `id` on exchange `i`: pass when `ok`.
    fn judge(
        &mut self,
        id: &'static str,
        endpoint: &str,
        i: usize,
        ok: bool,
        expected: String,
        detail: String,
    ) {
        if id != "rate-limit-429" && self.status(i) == Some(self.policy.rate_limited()) && !ok {
            // The budget ran out, not the rule: nothing to judge.
            let why = format!(
                "rate limited ({}): use a token without a limit, or a lower --rate",
                describe(self.policy.rate_limited())
            );
            self.findings.push(Finding::skipped(id, endpoint, why));
            return;
        }
        let verdict = if ok { Verdict::Pass } else { Verdict::Fail };
        let f = Finding::on(id, endpoint, &self.client.log[i], verdict, expected, detail);
        self.findings.push(f);
    }

    /// Records `id` on exchange `i` as expecting `want`.
    fn expect_status(&mut self, id: &'static str, endpoint: &str, i: usize, want: &[u16]) -> bool {
        let got = self.status(i);
        let ok = got.is_some_and(|s| want.contains(&s));
        let expected = want
            .iter()
            .map(|s| describe(*s))
            .collect::<Vec<_>>()
            .join(" or ");
        let detail = match &self.client.log[i].outcome {
            Ok(a) => describe(a.status.as_u16()),
            Err(e) => e.clone(),
        };
        self.judge(id, endpoint, i, ok, expected, detail);
        ok
    }

    fn skip(&mut self, id: &'static str, endpoint: &str, why: impl Into<String>) {
        self.findings.push(Finding::skipped(id, endpoint, why));
    }

    /// The checks made once for the whole API: an unknown path, an
    /// oversized URI, oversized headers.
    pub async fn whole_api(&mut self) {
        const WHOLE: &str = "*";
        let token = self.scope.token.clone();
        let i = self
            .send(
                WHOLE,
                Call::new(Method::GET, "/verdict-check-no-such-path").bearer(token.as_deref()),
                &[],
            )
            .await;
        let want = self.policy.expected(404);
        self.expect_status("not-found-404", WHOLE, i, &[want]);

        let long = format!("/verdict-check?q={}", "a".repeat(16 * 1024));
        let i = self
            .send(
                WHOLE,
                Call::new(Method::GET, long).bearer(token.as_deref()),
                &[],
            )
            .await;
        let (a, b) = (self.policy.expected(414), self.policy.expected(404));
        self.expect_status("uri-too-long-414", WHOLE, i, &[a, b]);

        let big = "a".repeat(48 * 1024);
        let call = Call::new(Method::GET, "/")
            .bearer(token.as_deref())
            .header("x-verdict-check", &big);
        let i = self.send(WHOLE, call, &[]).await;
        let (a, b) = (self.policy.expected(431), self.policy.expected(400));
        self.expect_status("headers-too-large-431", WHOLE, i, &[a, b]);
    }

    /// Every probe of one endpoint.
    pub async fn endpoint(&mut self, ep: &Endpoint) {
        let name = ep.template.clone();
        let name = name.as_str();
        let token = self.scope.token.clone();
        let token = token.as_deref();

        // OPTIONS: 2xx with Allow, which tells the methods.
        let opt = self
            .send(
                name,
                Call::new(Method::OPTIONS, &ep.path).bearer(token),
                &[],
            )
            .await;
        let options_allow = self.header(opt, "allow");
        let options_ok =
            self.status(opt).is_some_and(|s| (200..300).contains(&s)) && !options_allow.is_empty();
        self.judge(
            "options-allow",
            name,
            opt,
            options_ok,
            "2xx with Allow".into(),
            format!(
                "{} Allow: {options_allow:?}",
                self.status(opt).map(describe).unwrap_or_default()
            ),
        );
        let mut known: BTreeSet<String> = ep.methods.clone();
        if options_ok {
            known.extend(allow_set(&options_allow));
        }

        // GET, the baseline of the safe probes.
        let get = self
            .send(name, Call::new(Method::GET, &ep.path).bearer(token), &[])
            .await;
        let get_status = self.status(get);
        if get_status == Some(self.policy.expected(405)) {
            known.extend(allow_set(&self.header(get, "allow")));
        }
        let readable = get_status.is_some_and(|s| (200..300).contains(&s));

        self.unknown_method(name, ep, token).await;
        self.not_allowed(name, ep, token, &known, (opt, options_ok), get)
            .await;
        if readable {
            self.head(name, ep, token, get).await;
            self.accept(name, ep, token, get).await;
            self.conditional(name, ep, token, get).await;
        } else {
            for id in [
                "head-matches-get",
                "not-acceptable-406",
                "conditional-304",
                "precondition-412",
            ] {
                self.skip(
                    id,
                    name,
                    format!(
                        "GET is not 2xx here ({})",
                        get_status.map(describe).unwrap_or("no answer".into())
                    ),
                );
            }
        }
        self.auth(name, ep, get).await;
        if self.scope.writes {
            self.writes(name, ep, token, &known).await;
        }
        if self.scope.creates {
            self.create(name, ep, token).await;
        } else {
            self.skip(
                "created-201",
                name,
                "needs --allow-creates (a create that is carried out, then deleted)",
            );
        }
        let links = self.header(get, "link");
        self.discover(&links);
    }

    /// Notes the paths under the base that a `Link` value names.
    fn discover(&mut self, links: &str) {
        let base = self.client.base().to_string();
        let prefix = base
            .split_once("://")
            .map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
        for target in crate::target::link_targets(links) {
            let path = match target.strip_prefix(&base) {
                Some(p) => p.to_string(),
                None if target.starts_with('/') => target
                    .strip_prefix(&format!("/{prefix}"))
                    .filter(|_| !prefix.is_empty())
                    .map_or(target.clone(), str::to_string),
                None => continue,
            };
            let path = path.split(['?', '#']).next().unwrap_or("").to_string();
            if path.starts_with('/') && !self.discovered.contains(&path) {
                self.discovered.push(path);
            }
        }
    }

    /// `created-201`: the document's example body, POSTed for real; 201
    /// with a `Location` that resolves; then the created resource is deleted.
    async fn create(&mut self, name: &str, ep: &Endpoint, token: Option<&str>) {
        let Some(example) = ep.example.clone() else {
            self.skip(
                "created-201",
                name,
                "no POST with a documented JSON example here",
            );
            return;
        };
        let call = Call::new(Method::POST, &ep.path)
            .bearer(token)
            .body("application/json", example.to_string());
        let i = self.send(name, call, &[]).await;
        let want = self.policy.expected(201);
        let location = self.header(i, "location");
        if self.status(i) != Some(want) {
            self.expect_status("created-201", name, i, &[want]);
            return;
        }
        if location.is_empty() {
            // location-201-3xx has judged it; nothing to resolve.
            self.skip("created-201", name, "no Location to resolve");
            return;
        }
        let path = location
            .strip_prefix(self.client.base())
            .unwrap_or(&location)
            .to_string();
        let read = self
            .send(name, Call::new(Method::GET, &path).bearer(token), &[])
            .await;
        let ok = self.status(read).is_some_and(|s| (200..300).contains(&s));
        let detail = format!(
            "Location: {location} -> {}",
            self.status(read)
                .map(describe)
                .unwrap_or("no answer".into())
        );
        self.judge(
            "created-201",
            name,
            read,
            ok,
            "201 with a Location that resolves".into(),
            detail,
        );
        // Leave nothing behind.
        self.send(name, Call::new(Method::DELETE, &path).bearer(token), &[])
            .await;
    }

    async fn unknown_method(&mut self, name: &str, ep: &Endpoint, token: Option<&str>) {
        let brew = Method::from_bytes(b"BREW").expect("a token");
        let want = self.policy.expected(501);
        let i = self
            .send(name, Call::new(brew, &ep.path).bearer(token), &[want])
            .await;
        self.expect_status("unknown-method-501", name, i, &[want]);
    }

    async fn not_allowed(
        &mut self,
        name: &str,
        ep: &Endpoint,
        token: Option<&str>,
        known: &BTreeSet<String>,
        (opt, options_ok): (usize, bool),
        get: usize,
    ) {
        if known.is_empty() {
            self.skip(
                "method-not-allowed-405",
                name,
                "the methods of this path are unknown (no document, no Allow)",
            );
            self.skip("allow-header", name, "no 405 to judge");
            return;
        }
        let Some(method) = KNOWN.iter().find(|m| !known.contains(**m)) else {
            self.skip(
                "method-not-allowed-405",
                name,
                "every common method is allowed here",
            );
            self.skip("allow-header", name, "no 405 to judge");
            return;
        };
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let want = self.policy.expected(405);
        let i = self
            .send(name, Call::new(method, &ep.path).bearer(token), &[])
            .await;
        if !self.expect_status("method-not-allowed-405", name, i, &[want]) {
            self.skip("allow-header", name, "no 405 to judge");
            return;
        }
        let allow = self.header(i, "allow");
        let listed = allow_set(&allow);
        let mut problems = Vec::new();
        if allow.is_empty() {
            problems.push("the 405 has no Allow".to_string());
        }
        if options_ok {
            let options = allow_set(&self.header(opt, "allow"));
            if options != listed {
                problems.push(format!("OPTIONS says {options:?}, the 405 says {listed:?}"));
            }
        }
        // (Only where 405 is its own code: a preset that maps it to 400
        // cannot tell a refused method from a bad request.)
        if want == 405 && listed.contains("GET") && self.status(get) == Some(want) {
            problems.push("GET is listed, yet GET got 405".into());
        }
        if want == 405 && listed.contains("OPTIONS") && self.status(opt) == Some(want) {
            problems.push("OPTIONS is listed, yet OPTIONS got 405".into());
        }
        let ok = problems.is_empty();
        let detail = if ok {
            format!("Allow: {allow}")
        } else {
            problems.join("; ")
        };
        self.judge(
            "allow-header",
            name,
            i,
            ok,
            "Allow, the same as OPTIONS'".into(),
            detail,
        );
    }

    async fn head(&mut self, name: &str, ep: &Endpoint, token: Option<&str>, get: usize) {
        let i = self
            .send(name, Call::new(Method::HEAD, &ep.path).bearer(token), &[])
            .await;
        let mut problems = Vec::new();
        if self.status(i) != self.status(get) {
            problems.push(format!(
                "HEAD {:?}, GET {:?}",
                self.status(i),
                self.status(get)
            ));
        }
        for h in ["content-type", "etag"] {
            let (a, b) = (self.header(i, h), self.header(get, h));
            if a != b && h == "content-type" {
                problems.push(format!("{h}: HEAD {a:?}, GET {b:?}"));
            }
            if h == "etag" && !b.is_empty() && a.is_empty() {
                problems.push("GET has an ETag, HEAD none".into());
            }
        }
        let ok = problems.is_empty();
        let detail = if ok {
            "the same status and headers".to_string()
        } else {
            problems.join("; ")
        };
        self.judge(
            "head-matches-get",
            name,
            i,
            ok,
            "GET's status and headers, no body".into(),
            detail,
        );
    }

    async fn accept(&mut self, name: &str, ep: &Endpoint, token: Option<&str>, get: usize) {
        let want = self.policy.expected(406);
        let mut allowed = vec![want];
        if self.policy.accept_fallback {
            allowed.extend(self.status(get));
        }
        let i = self
            .send(
                name,
                Call::new(Method::GET, &ep.path)
                    .bearer(token)
                    .header("accept", "application/x-verdict-check"),
                &[],
            )
            .await;
        let ok = self.expect_status("not-acceptable-406", name, i, &allowed);
        if ok
            && self
                .header(get, "content-type")
                .starts_with("application/json")
        {
            let i = self
                .send(
                    name,
                    Call::new(Method::GET, &ep.path)
                        .bearer(token)
                        .header("accept", "application/json;q=0"),
                    &[],
                )
                .await;
            self.expect_status("not-acceptable-406", name, i, &allowed);
        }
    }

    async fn conditional(&mut self, name: &str, ep: &Endpoint, token: Option<&str>, get: usize) {
        let want = self.policy.expected(304);
        let etag = self.header(get, "etag");
        let modified = self.header(get, "last-modified");
        if want != 304 {
            self.skip(
                "conditional-304",
                name,
                format!("the policy `{}` sends no 304", self.policy.name),
            );
        } else if etag.is_empty() && modified.is_empty() {
            self.skip(
                "conditional-304",
                name,
                "the GET has neither ETag nor Last-Modified",
            );
        } else {
            let (header, value) = if etag.is_empty() {
                ("if-modified-since", modified)
            } else {
                ("if-none-match", etag.clone())
            };
            let i = self
                .send(
                    name,
                    Call::new(Method::GET, &ep.path)
                        .bearer(token)
                        .header(header, &value),
                    &[],
                )
                .await;
            let got = self.status(i);
            let kept = self.header(i, "etag");
            if got == self.status(get) && !etag.is_empty() && !kept.is_empty() && kept != etag {
                // A new representation between the two requests (a counter, a clock).
                self.skip(
                    "conditional-304",
                    name,
                    format!("the representation changed between the requests ({etag} then {kept})"),
                );
                let want = self.policy.expected(412);
                let i = self
                    .send(
                        name,
                        Call::new(Method::GET, &ep.path)
                            .bearer(token)
                            .header("if-match", NEVER),
                        &[],
                    )
                    .await;
                self.expect_status("precondition-412", name, i, &[want]);
                return;
            }
            let ok = got == Some(304) && (etag.is_empty() || !kept.is_empty());
            let detail = format!(
                "{header}: {value} -> {}{}",
                got.map(describe).unwrap_or("no answer".into()),
                if got == Some(304) && kept.is_empty() && !etag.is_empty() {
                    " without ETag"
                } else {
                    ""
                }
            );
            self.judge(
                "conditional-304",
                name,
                i,
                ok,
                "304 Not Modified, keeping ETag".into(),
                detail,
            );
        }
        let want = self.policy.expected(412);
        let i = self
            .send(
                name,
                Call::new(Method::GET, &ep.path)
                    .bearer(token)
                    .header("if-match", NEVER),
                &[],
            )
            .await;
        self.expect_status("precondition-412", name, i, &[want]);
    }

    async fn auth(&mut self, name: &str, ep: &Endpoint, get: usize) {
        let token = self.scope.token.clone();
        let anonymous = self.send(name, Call::new(Method::GET, &ep.path), &[]).await;
        let missing = self.policy.missing_credentials();
        let anon_status = self.status(anonymous);
        let with_token = self.status(get);
        let public = match ep.protected {
            Some(p) => !p,
            None => match token {
                // The same answer with and without the token: nothing is protected here.
                Some(_) => anon_status == with_token && anon_status != Some(missing),
                None => anon_status.is_some_and(|s| s < 400),
            },
        };
        if public {
            for id in ["auth-missing-401", "auth-invalid-401", "auth-scope-403"] {
                self.skip(id, name, "the endpoint answers without credentials");
            }
            return;
        }
        self.expect_status("auth-missing-401", name, anonymous, &[missing]);

        let want = self.policy.expected(401);
        let i = self
            .send(
                name,
                Call::new(Method::GET, &ep.path).bearer(Some(INVALID_TOKEN)),
                &[],
            )
            .await;
        let challenge = self.header(i, "www-authenticate");
        // A missing challenge is `auth-challenge`'s to report; here, its error code.
        let ok = self.status(i) == Some(want)
            && (want != 401 || challenge.is_empty() || challenge.contains("invalid_token"));
        let detail = format!(
            "{}; WWW-Authenticate: {challenge:?}",
            self.status(i).map(describe).unwrap_or("no answer".into())
        );
        self.judge(
            "auth-invalid-401",
            name,
            i,
            ok,
            format!("{} with error=\"invalid_token\"", describe(want)),
            detail,
        );

        let readable = with_token.is_some_and(|s| (200..300).contains(&s));
        match self.scope.weak_token.clone() {
            None => self.skip("auth-scope-403", name, "needs a second, weaker --token"),
            Some(_) if !readable => self.skip(
                "auth-scope-403",
                name,
                "the first token cannot read it either (nothing to compare)",
            ),
            Some(weak) => {
                let i = self
                    .send(
                        name,
                        Call::new(Method::GET, &ep.path).bearer(Some(&weak)),
                        &[],
                    )
                    .await;
                if self.status(i).is_some_and(|s| s < 400) {
                    self.skip(
                        "auth-scope-403",
                        name,
                        "the second token may read this endpoint",
                    );
                } else {
                    let want = self.policy.expected(403);
                    self.expect_status("auth-scope-403", name, i, &[want]);
                }
            }
        }
    }

    async fn writes(
        &mut self,
        name: &str,
        ep: &Endpoint,
        token: Option<&str>,
        known: &BTreeSet<String>,
    ) {
        let writable: Vec<&str> = ["POST", "PUT", "PATCH"]
            .into_iter()
            .filter(|m| known.contains(*m))
            .collect();
        if writable.is_empty() {
            for id in [
                "unsupported-media-415",
                "malformed-400",
                "invalid-422",
                "write-refused",
            ] {
                self.skip(id, name, "no write method here");
            }
            return;
        }
        for m in writable {
            let method = Method::from_bytes(m.as_bytes()).expect("a method");
            let documented = ep.consumes.get(m);
            if documented.is_some_and(|media| media.is_empty()) {
                // A body it does not read could not stop it from acting.
                for id in ["unsupported-media-415", "malformed-400", "invalid-422"] {
                    self.skip(id, name, format!("{m} takes no body here"));
                }
                continue;
            }
            let takes_json = documented.is_none_or(|media| {
                media
                    .iter()
                    .any(|t| t.contains("json") && !t.contains("ndjson"))
            });
            let json_type = match documented.and_then(|media| {
                media
                    .iter()
                    .find(|t| t.contains("json") && !t.contains("ndjson"))
            }) {
                Some(t) => t.clone(),
                None if m == "PATCH" => "application/merge-patch+json".to_string(),
                None => "application/json".to_string(),
            };
            let json_type = json_type.as_str();
            let base = || {
                Call::new(method.clone(), &ep.path)
                    .bearer(token)
                    .header("if-match", NEVER)
            };

            let call = base().body("text/plain", "verdict-check");
            let want = self.policy.expected(415);
            self.write_probe(name, call, "unsupported-media-415", want, "the media type")
                .await;

            if !takes_json {
                for id in ["malformed-400", "invalid-422"] {
                    self.skip(id, name, format!("{m} takes no JSON here"));
                }
                continue;
            }
            let call = base().body(json_type, "{\"verdict-check\": ");
            let want = self.policy.malformed_body();
            self.write_probe(name, call, "malformed-400", want, "the body")
                .await;

            // (The precondition before the content is the order RFC 9110 §13.2.2 gives.)
            let call = base().body(json_type, "[\"verdict-check\"]");
            let want = self.policy.expected(422);
            self.write_probe(name, call, "invalid-422", want, "the content")
                .await;
        }
    }

    /// One write probe: `call` (with its never-matching `If-Match`) judged
    /// by `write-refused`, then by `rule` expecting `want`, unless the write
    /// was carried out or the precondition answered first (412), which make
    /// `rule` moot.
    async fn write_probe(
        &mut self,
        name: &str,
        call: Call,
        rule: &'static str,
        want: u16,
        judged: &str,
    ) {
        let i = self.send(name, call, &[]).await;
        let acted = self.refused(name, i);
        if acted {
            self.skip(rule, name, "the write was carried out (write-refused)");
        } else if self.status(i) == Some(self.policy.expected(412)) && want != 412 {
            self.skip(
                rule,
                name,
                format!("the precondition was judged before {judged} (412)"),
            );
        } else {
            self.expect_status(rule, name, i, &[want]);
        }
    }

    /// `write-refused` on a write sent with a never-matching `If-Match`;
    /// whether the write was carried out (then the probe's own rule is moot).
    fn refused(&mut self, name: &str, i: usize) -> bool {
        let acted = self.status(i).is_some_and(|s| (200..300).contains(&s));
        let detail = match self.status(i) {
            Some(s) if acted => format!(
                "{}: the write was carried out despite If-Match: {NEVER}",
                describe(s)
            ),
            Some(s) => describe(s),
            None => "no answer".into(),
        };
        self.judge(
            "write-refused",
            name,
            i,
            !acted,
            "refused (4xx)".into(),
            detail,
        );
        acted
    }

    /// The load probe: GETs until the rate limit answers, within the budget.
    pub async fn load(&mut self, ep: &Endpoint) {
        let name = ep.template.clone();
        let token = self.scope.token.clone();
        let want = self.policy.rate_limited();
        self.client.unpaced(true);
        let mut hit = None;
        for _ in 0..self.scope.load {
            let i = self
                .send(
                    &name,
                    Call::new(Method::GET, &ep.path).bearer(token.as_deref()),
                    &[503],
                )
                .await;
            if self.status(i) == Some(want) || self.status(i) == Some(429) {
                hit = Some(i);
                break;
            }
        }
        self.client.unpaced(false);
        let Some(i) = hit else {
            self.skip(
                "rate-limit-429",
                &name,
                format!("no rate limit reached in {} requests", self.scope.load),
            );
            return;
        };
        let retry = self.header(i, "retry-after");
        let mut problems = Vec::new();
        if self.status(i) != Some(want) {
            problems.push(format!(
                "{} instead of the policy's {}",
                describe(self.status(i).unwrap_or(0)),
                describe(want)
            ));
        }
        // (Its Retry-After is judged by the passive `retry-after-positive`.)
        let fields = [
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit",
            "ratelimit-policy",
        ];
        if !fields.iter().any(|h| !self.header(i, h).is_empty()) {
            problems.push("no RateLimit-* fields".into());
        }
        let ok = problems.is_empty();
        let detail = if ok {
            format!("Retry-After: {retry}")
        } else {
            problems.join("; ")
        };
        self.judge(
            "rate-limit-429",
            &name,
            i,
            ok,
            format!("{} with RateLimit-* fields", describe(want)),
            detail,
        );
    }
}
