//! Operating the daemon: its counters, service-manager notifications (and, as they land,
//! metrics and reload).

pub mod notify;
pub mod stats;
