//! Library of the token-exfiltration sensor. The modules follow the flow of a byte:
//! [`host`] facts → [`kernel`] probes, scopes, reader and decoder → [`state`] (processes,
//! fds, reassembly) → [`detect`] (rules, learned secrets) → [`verdict`] (boundary, alerts).
//! The `sensor` binary is a thin CLI over it; integration tests drive it directly.

pub mod config;
pub mod deliver;
pub mod detect;
pub mod host;
pub mod input;
pub mod kernel;
pub mod ops;
pub mod redact;
pub mod revoke;
pub mod scan;
pub mod sensor;
pub mod state;
pub mod verdict;
