//! Operating the daemon: its counters, Prometheus metrics and health endpoints, and
//! service-manager notifications.

pub mod metrics;
pub mod notify;
pub mod stats;
