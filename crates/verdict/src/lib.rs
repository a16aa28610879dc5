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
//! let app: Router = Contract::new(Preset::standard())
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
//! The pieces, one module per concern:
//! - [`status`]: the catalog of every code; [`headers`]: typed required headers;
//! - [`ApiError`] ([`error`]): the one error type; [`format`](mod@format): the three bodies;
//! - [`preset`]: the seeds' variants and their mappings;
//! - layers: [`request_id`], [`method`], [`retired`], [`deadline`], [`load_shed`], [`maintenance`], [`auth`],
//!   [`rate_limit`], [`negotiate`], [`content_type`], [`body_limit`],
//!   [`conditional`], [`panic`](mod@panic), [`normalize`]; and [`stack`], which orders them;
//! - extractors: [`Json`], [`Query`], [`conditional::Preconditions`],
//!   [`auth::Authenticated`].

#![warn(missing_docs)]

pub mod auth;
pub mod body_limit;
pub mod conditional;
pub mod content_type;
pub mod deadline;
pub mod error;
pub mod extract;
pub mod format;
pub mod guard;
pub mod headers;
pub mod load_shed;
pub mod maintenance;
pub mod method;
pub mod negotiate;
pub mod normalize;
pub mod panic;
pub mod preset;
pub mod problems;
pub mod rate_limit;
pub mod request_id;
pub mod request_limits;
pub mod retired;
mod route_table;
pub mod stack;
pub mod status;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

pub use error::{ApiError, FieldError, Situation};
pub use extract::{Json, Query};
pub use format::ErrorFormat;
pub use preset::Preset;
pub use stack::Contract;
