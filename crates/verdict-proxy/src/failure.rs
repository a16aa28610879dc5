//! One failure taxonomy for the upstream, with the status RFC 9110 gives
//! each: the gateway could not get a valid answer (502), did not get one in
//! time (504), or has no upstream to ask (503 with `Retry-After`). The body
//! says which class, never the upstream's address or an OS error: those go
//! to the log, with the request id.

use std::time::Duration;

use verdict::headers::RetryAfter;
use verdict::problems::ProblemType;
use verdict::ApiError;

/// Why the upstream gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused, the name did not resolve, or the
    /// connection failed otherwise before a byte was sent.
    Unreachable(String),
    /// The connection closed or reset before a response head, or what came
    /// back was not HTTP.
    InvalidResponse(String),
    /// No response head within `--upstream-timeout`.
    Timeout(String),
    /// Every upstream's circuit is open; the first closes after this long.
    NoHealthyUpstream(Duration),
}

impl Failure {
    /// Whether nothing of the request reached the upstream, so that an
    /// idempotent request may be sent to another.
    pub fn before_sending(&self) -> bool {
        matches!(self, Failure::Unreachable(_))
    }

    /// The outcome's label in logs and metrics: `refused` (unreachable in
    /// any way), `invalid`, `timeout`, `no_upstream`.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "refused",
            Failure::InvalidResponse(_) => "invalid",
            Failure::Timeout(_) => "timeout",
            Failure::NoHealthyUpstream(_) => "no_upstream",
        }
    }

    /// The error the client gets (what went wrong in detail is its logged cause).
    pub fn into_error(self) -> ApiError {
        match self {
            Failure::Unreachable(cause) => UPSTREAM_UNREACHABLE.mark(
                ApiError::bad_gateway(cause)
                    .with_detail("The upstream server could not be reached."),
            ),
            Failure::InvalidResponse(cause) => UPSTREAM_INVALID_RESPONSE.mark(
                ApiError::bad_gateway(cause)
                    .with_detail("The upstream server did not answer with a valid HTTP response."),
            ),
            Failure::Timeout(cause) => UPSTREAM_TIMEOUT.mark(
                ApiError::gateway_timeout("The upstream server did not answer in time.")
                    .with_cause(cause),
            ),
            Failure::NoHealthyUpstream(wait) => {
                NO_HEALTHY_UPSTREAM.mark(ApiError::service_unavailable(
                    RetryAfter::from_duration(wait),
                    "No upstream server is healthy now; retry after the delay given.",
                ))
            }
        }
    }
}

/// 502: unreachable upstream.
pub const UPSTREAM_UNREACHABLE: ProblemType = ProblemType {
    code: "upstream_unreachable",
    status: 502,
    title: "Upstream unreachable",
    description: "The gateway could not connect to the upstream server (refused, unresolvable, a failed TLS handshake, or failed otherwise before the request was sent). Retrying later may help.",
};

/// 502: not a valid HTTP answer.
pub const UPSTREAM_INVALID_RESPONSE: ProblemType = ProblemType {
    code: "upstream_invalid_response",
    status: 502,
    title: "Invalid upstream response",
    description: "The upstream server closed the connection before answering, or answered with something that is not HTTP.",
};

/// 504: too slow.
pub const UPSTREAM_TIMEOUT: ProblemType = ProblemType {
    code: "upstream_timeout",
    status: 504,
    title: "Upstream timeout",
    description: "The upstream server did not send a response in time (the gateway's --upstream-timeout, or the request's deadline).",
};

/// 503: every circuit open.
pub const NO_HEALTHY_UPSTREAM: ProblemType = ProblemType {
    code: "no_healthy_upstream",
    status: 503,
    title: "No healthy upstream",
    description: "Every upstream server failed recently and is rested for a while; retry after the Retry-After delay.",
};

/// 503: the shared rate limits (Redis) cannot be checked.
pub const LIMITS_UNAVAILABLE: ProblemType = ProblemType {
    code: "limits_unavailable",
    status: 503,
    title: "Limits unavailable",
    description: "The shared store of rate limits (Redis) cannot be reached, and a limit that cannot be checked is not enforced. Retry after `Retry-After` seconds.",
};

/// How the shared state (`verdict_cluster`) names its refusals at the gateway.
pub const SHARED: verdict_cluster::Problems = verdict_cluster::Problems {
    unavailable: |e| {
        LIMITS_UNAVAILABLE.mark(
            ApiError::service_unavailable(
                RetryAfter::from_secs(1),
                "The shared limits store is unreachable; retry after the delay given.",
            )
            .with_cause(e),
        )
    },
    // The gateway takes no locks.
    lock_busy: || ApiError::conflict("Another request holding this key is still running."),
};

/// The gateway's problem types, for its `/problems` pages.
pub const CATALOG: &[ProblemType] = &[
    UPSTREAM_UNREACHABLE,
    UPSTREAM_INVALID_RESPONSE,
    UPSTREAM_TIMEOUT,
    NO_HEALTHY_UPSTREAM,
    LIMITS_UNAVAILABLE,
];
