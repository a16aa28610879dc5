//! Watching and testing the service: Prometheus metrics and fault injection.

pub mod fault;
pub mod metrics;
