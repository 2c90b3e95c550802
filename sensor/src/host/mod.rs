//! Machine facts the daemon reads from the host: `/proc`, cgroupfs, tracefs and the kernel's
//! BTF. Nothing here imports from the rest of the crate.

pub mod btf;
pub mod cgroupfs;
pub mod elf;
pub mod procfs;
pub mod tracefs;
