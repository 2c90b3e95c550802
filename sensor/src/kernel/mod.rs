//! The kernel side as the daemon drives it: preflight checks, loading and attaching the
//! probes, scopes written into their maps, the ring-buffer reader and the record decoder.

pub mod decode;
pub mod doctor;
pub mod probes;
pub mod reader;
pub mod scope;
pub mod uprobes;
