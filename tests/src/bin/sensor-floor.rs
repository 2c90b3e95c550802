//! Benchmark helper: attaches only empty syscall programs of the sensor's own eBPF object
//! (the floor the real programs are compared against), prints `floor attached` on stderr
//! and holds them until SIGTERM/SIGINT.
//!
//! Usage: `sensor-floor [tracepoints|btf|none|enter-tracepoints]`: the exit hook besides
//! the empty `sys_enter` program (default: per-syscall exit tracepoints, as the sensor
//! uses); `enter-tracepoints` puts the entry side on per-syscall tracepoints too.
//! `sensor-floor --count` prints how many syscall-tracepoint links of any sensor instance
//! exist machine-wide.

use sensor::kernel::probes::{ExitHook, Floor};

fn main() {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--count") {
        // For the benchmark: is any sensor's syscall program attached right now?
        println!(
            "syscall_links {}",
            sensor::kernel::probes::machine_syscall_links()
        );
        return;
    }
    let (hook, per_syscall_enter) = match arg.as_deref() {
        None | Some("tracepoints") => (Some(ExitHook::PerSyscall), false),
        Some("btf") => (Some(ExitHook::Btf), false),
        Some("none") => (None, false),
        Some("enter-tracepoints") => (Some(ExitHook::PerSyscall), true),
        Some(other) => {
            eprintln!(
                "sensor-floor: unknown mode {other:?} (tracepoints|btf|none|enter-tracepoints)"
            );
            std::process::exit(2);
        }
    };
    let floor = match Floor::attach_with(hook, per_syscall_enter) {
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
