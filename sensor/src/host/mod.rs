//! Machine facts the daemon reads from the host: `/proc`, cgroupfs, tracefs, the kernel's
//! BTF and the kubelet's pod files. Nothing here imports from the rest of the crate.

pub mod btf;
pub mod cgroupfs;
pub mod containers;
pub mod elf;
pub mod kubelet;
pub mod memory;
pub mod procfs;
pub mod tracefs;
