//! Operating the daemon: its counters, Prometheus metrics and health endpoints.

pub mod metrics;
pub mod stats;
