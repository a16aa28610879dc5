//! # verdict
//!
//! The right status code, headers and error body for every request of an axum
//! JSON API. Mount a [`Contract`] on a router and every answer keeps the
//! contract: 501/405/404 with exact `Allow`, 401 with a bearer challenge, 429
//! with `Retry-After` and `RateLimit-*`, 406 by q-values, 415 with
//! `Accept-Post`, 413, 304/412 by ETag, 500 with an incident id and never a
//! dead server, and every error in one of three JSON formats.
//!
//! ```
//! use axum::{extract::Path, routing::get, Router};
//! use verdict::{ApiError, Contract, Json, Preset};
//!
//! async fn show(Path(id): Path<u32>) -> Result<Json<serde_json::Value>, ApiError> {
//!     if id != 1 {
//!         return Err(ApiError::not_found(format!("The record identified by {id} could not be found."))
//!             .with_code("record_not_found"));
//!     }
//!     Ok(Json(serde_json::json!({"id": 1, "name": "first"})))
//! }
//!
//! # async fn run() {
//! let app = Contract::new(Preset::standard())
//!     .max_in_flight(1024)
//!     .timeout(std::time::Duration::from_secs(30))
//!     .apply(Router::new().route("/records/{id}", get(show)));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! tokio::spawn(async move { axum::serve(listener, app).await });
//! // GET /records/2 -> 404 application/problem+json {"code": "record_not_found", ...}
//! // DELETE /records/1 -> 405, Allow: GET, HEAD, OPTIONS; BREW /records/1 -> 501
//! # }
//! ```
//!
//! Defaults worth knowing: bodies are JSON (up to 1 MiB); `PATCH` takes
//! `application/merge-patch+json` and plain `application/json`, both read as
//! RFC 7396 merge patches; [`Contract::apply`] gives back a
//! [`ContractService`], which takes no more routes (one added after the
//! checks were stacked would skip them all), so add every route first.
//!
//! The pieces, one module per concern:
//! - [`status`]: the catalog of every code; [`headers`]: typed required headers;
//! - [`ApiError`] ([`error`]): the one error type; [`format`](mod@format): the three bodies;
//! - [`preset`]: the seeds' variants and their mappings;
//! - layers: [`request_id`], [`method`], [`retired`], [`deadline`], [`load_shed`], [`maintenance`], [`auth`],
//!   [`rate_limit`], [`negotiate`], [`content_type`], [`body_limit`], [`body_timeout`],
//!   [`conditional`], [`panic`](mod@panic), [`normalize`]; and [`stack`], which orders them;
//! - extractors: [`Json`], [`Path`], [`Query`], [`RawBody`], [`conditional::Preconditions`],
//!   [`auth::Authenticated`];
//! - [`server`]: serving over TCP with header, idle and write timeouts and a
//!   connection cap;
//! - [`mod@test`]: send requests through an app in tests and assert the
//!   contract's shape of an error;
//! - `openapi` (the `utoipa` feature): every error response the contract
//!   may send, added to an adopter's utoipa document.
//!
//! A whole app to start from is `examples/todos` (tokens, rate limits,
//! ETags, maintenance and its OpenAPI document): `cargo run -p verdict
//! --example todos`.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod access_log;
pub mod auth;
pub mod body_limit;
pub mod body_timeout;
pub mod client_addr;
#[cfg(feature = "compression")]
pub mod compression;
pub mod conditional;
pub mod content_type;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod format;
pub mod guard;
pub mod headers;
mod ids;
pub mod load_shed;
pub mod maintenance;
pub mod method;
pub mod negotiate;
pub mod normalize;
#[cfg(feature = "utoipa")]
pub mod openapi;
pub mod panic;
pub mod preset;
pub mod problems;
pub mod rate_limit;
pub mod request_id;
pub mod request_limits;
pub mod retired;
mod route_table;
#[cfg(feature = "server")]
pub mod server;
pub mod stack;
pub mod status;
pub mod test;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The adoption guide's example (`docs/adopting.md`), compiled and run.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/adopting.md")]
pub struct AdoptingGuideDoctests;

pub use error::{ApiError, FieldError, Situation};
pub use extract::{Json, Path, Query, RawBody};
pub use format::ErrorFormat;
pub use preset::Preset;
pub use stack::{Contract, ContractService};
