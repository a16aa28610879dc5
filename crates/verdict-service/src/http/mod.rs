//! The handlers, one module per resource, and the pieces they share: how a
//! handler fails ([`fail`]), representations with validators
//! ([`representation`]), finding a collection through its aliases
//! ([`resolve`]), idempotent creates ([`idempotency`]), CSV ([`csv`]) and
//! integers in bodies ([`integer`]).
//!
//! Handlers depend on `model`, `storage`, `problems` and `surface`; no
//! handler module imports another.

pub mod batch;
pub mod collections;
pub mod csv;
pub mod fail;
pub mod idempotency;
pub mod integer;
pub mod jobs;
pub mod ops;
pub mod records;
pub mod representation;
pub mod resolve;
pub mod tokens;
