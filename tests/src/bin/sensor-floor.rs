//! Benchmark helper: attaches only empty syscall programs of the sensor's own eBPF object
//! (the floor the real programs are compared against), prints `floor attached` on stderr
//! and holds them until SIGTERM/SIGINT.
//!
//! Usage: `sensor-floor [tracepoints|btf|none]`: the exit hook besides the empty
//! `sys_enter` program (default: per-syscall exit tracepoints, as the sensor uses).

use sensor::kernel::probes::{ExitHook, Floor};

fn main() {
    let hook = match std::env::args().nth(1).as_deref() {
        None | Some("tracepoints") => Some(ExitHook::PerSyscall),
        Some("btf") => Some(ExitHook::Btf),
        Some("none") => None,
        Some(other) => {
            eprintln!("sensor-floor: unknown exit hook {other:?} (tracepoints|btf|none)");
            std::process::exit(2);
        }
    };
    let floor = match Floor::attach(hook) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("sensor-floor: error: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("floor attached");
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
    drop(floor);
}
