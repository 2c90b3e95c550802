//! The attach controller: a thread that keeps the syscall programs attached exactly while
//! something is watched. The exec program reports every process that enters the scope by
//! exe name on a small control ring (always woken); the controller attaches the programs
//! and sends SIGCONT to processes the kernel stopped before their first instruction. Once
//! a second, it releases stragglers (a control record may be lost) and detaches the
//! programs when nothing has been watched for two checks in a row.
//!
//! It runs on its own thread, not on the event pipeline, so a backlog of events never
//! delays the release of a held process.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};

use super::probes::Probes;

/// How often the controller looks for idle state and stragglers.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Starts the controller thread. It stops when `stop` is set (within ~250 ms).
pub fn spawn(
    probes: Arc<Mutex<Probes>>,
    mut control: RingBuf<MapData>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("sensor-attach".into())
        .spawn(move || {
            let fd = control.as_fd().as_raw_fd();
            let mut last_check = Instant::now();
            let mut idle_checks = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                unsafe { libc::poll(&mut pfd, 1, 250) };
                let mut requests = 0usize;
                while let Some(rec) = control.next() {
                    requests += 1;
                    drop(rec);
                }
                if requests > 0 {
                    idle_checks = 0;
                    on_request(&probes);
                }
                if last_check.elapsed() >= CHECK_EVERY {
                    last_check = Instant::now();
                    idle_checks = check(&probes, idle_checks);
                }
            }
        })
}

/// Something entered the scope at exec: attach, then let held processes run.
fn on_request(probes: &Mutex<Probes>) {
    let mut p = probes.lock().expect("probes lock");
    match p.ensure_attached() {
        Ok(()) => {
            let n = p.release_held();
            if n > 0 {
                tracing::debug!(released = n, "held processes continued after attach");
            }
        }
        Err(e) => {
            // Never leave a process stopped: release it even though it runs unwatched.
            tracing::error!("attaching the syscall probes failed: {e}");
            p.release_held();
        }
    }
}

/// Periodic check; returns the updated count of consecutive idle checks.
fn check(probes: &Mutex<Probes>, idle_checks: u32) -> u32 {
    let mut p = probes.lock().expect("probes lock");
    if p.syscalls_attached() {
        p.release_held();
    } else if p.release_pending() {
        // A held process whose control record was lost.
        drop(p);
        on_request(probes);
        return 0;
    }
    if !p.syscalls_attached() {
        return 0;
    }
    if p.anything_watched() {
        return 0;
    }
    if idle_checks + 1 < 2 {
        return idle_checks + 1;
    }
    if let Err(e) = p.detach_if_idle() {
        tracing::warn!("detaching the syscall probes: {e}");
    }
    0
}
