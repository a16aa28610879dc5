//! Watching and testing the service: the access log, Prometheus metrics and
//! fault injection.

pub mod access;
pub mod fault;
pub mod metrics;
