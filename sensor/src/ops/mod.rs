//! Operating the daemon: its counters, Prometheus metrics and health endpoints, and
//! service-manager notifications, live reload.

pub mod metrics;
pub mod notify;
pub mod reload;
pub mod stats;
