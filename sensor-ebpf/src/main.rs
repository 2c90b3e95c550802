//! Kernel half of the token sensor: tracepoint programs that decide, per syscall, whether the
//! calling process is in a watched scope and, if so, copy the metadata and payload bytes the
//! daemon needs into one ring buffer.
//!
//! Design (see the reference cost model and the README's figures): the syscall programs are
//! attached only while something is watched; `sys_enter` returns after one bit test for the
//! syscalls the sensor ignores and after one more (the scope bitmap) for processes outside
//! every scope; writes are captured at entry straight into reserved ring slots; only the
//! syscalls that need their return value are completed at exit. Process lifecycle and exec
//! (with exe-name matching and the full environment) come from the always-attached `sched`
//! tracepoints. Nothing here scans content: that is the daemon's job.
#![no_std]
#![no_main]
// Atomic read-modify-write on map values (the scope bitmap): the BPF target's `core` has no
// `fetch_*` methods, the intrinsics lower to BPF atomic instructions.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod common;
mod dns;
mod env;
mod exec;
mod sched;
mod syscalls;
mod tls;
mod walk;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
