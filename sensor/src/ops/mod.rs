//! Operating the daemon: its counters (and, as they land, metrics and reload).

pub mod stats;
