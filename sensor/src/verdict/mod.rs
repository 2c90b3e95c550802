//! Verdicts: where a found token went relative to its workspace's boundary. The monitor
//! learns each workspace's secrets, scans what its processes send, names the destination
//! from the bytes ([`protocols`]) and classifies the sink ([`boundary`]) into an alert.

pub mod alert;
pub mod boundary;
pub mod budget;
pub mod env_reads;
pub mod hpack;
pub mod monitor;
pub mod printable;
pub mod protocols;
