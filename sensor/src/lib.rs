//! Library of the token-exfiltration sensor: kernel probe loading, record decoding, process
//! and fd state, scopes and the running pipeline. The `sensor` binary is a thin CLI over it;
//! integration tests drive it directly.

pub mod btf;
pub mod cgroups;
pub mod config;
pub mod decode;
pub mod detect;
pub mod doctor;
pub mod events;
pub mod probes;
pub mod procfs;
pub mod redact;
pub mod scan;
pub mod scope;
pub mod sensor;
pub mod state;
pub mod stats;
