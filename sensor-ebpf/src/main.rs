//! Kernel half of the token sensor: tracepoint programs that decide, per syscall, whether the
//! calling process is in a watched scope and, if so, copy the metadata and payload bytes the
//! daemon needs into one ring buffer.
//!
//! Design (see the reference cost model): two raw tracepoints on `sys_enter`/`sys_exit` with a
//! switch on the syscall number do all per-syscall work; a process outside every scope costs a
//! jump-table miss or two hash lookups. Arguments are saved at entry and the bytes are read at
//! exit, when the return value says how many were really moved. Process lifecycle comes from
//! the `sched` tracepoints. Nothing here scans content: that is the daemon's job.
#![no_std]
#![no_main]

mod common;
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
