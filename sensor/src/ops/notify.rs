//! systemd service notifications (`sd_notify`): the unit is `Type=notify`, so systemd
//! considers the daemon started only once it says `READY=1` — after the probes are
//! attached, not when the process exists — and, with `WatchdogSec=`, restarts it when the
//! periodic `WATCHDOG=1` stops coming. Outside systemd (`NOTIFY_SOCKET` unset) every
//! function here does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Set by [`ready`]: the watchdog is pinged only after `READY=1` (the housekeeping tick
/// starts inside the sensor's start, before the daemon has said it is ready).
static READY: AtomicBool = AtomicBool::new(false);

/// Tells the service manager the daemon is up: probes attached, detection running.
/// Returns whether a notification was sent.
pub fn ready() -> bool {
    READY.store(true, Ordering::Release);
    send(&[
        NotifyState::Ready,
        NotifyState::Status("probes attached, detecting"),
    ])
}

/// Tells the service manager the daemon is shutting down (probes being detached).
pub fn stopping() -> bool {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("detaching probes"),
    ])
}

/// How often [`watchdog_ping`] really pings: half of `WATCHDOG_USEC` (systemd's advice),
/// or `None` when the unit has no watchdog (or it is meant for another pid).
pub fn watchdog_interval() -> Option<Duration> {
    static INTERVAL: OnceLock<Option<Duration>> = OnceLock::new();
    *INTERVAL.get_or_init(|| {
        sd_notify::watchdog_enabled()
            .filter(|d| !d.is_zero())
            .map(|d| d / 2)
    })
}

/// Pings the watchdog if half its interval has passed since the last ping. Cheap when the
/// watchdog is off; meant to be called from a periodic task (the pipeline's housekeeping
/// tick, whose stalling is exactly what the watchdog should notice). Returns whether a
/// ping was sent.
pub fn watchdog_ping() -> bool {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let Some(interval) = watchdog_interval() else {
        return false;
    };
    if !READY.load(Ordering::Acquire) {
        return false;
    }
    let now = Instant::now();
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        if !due(*last, now, interval) {
            return false;
        }
        *last = Some(now);
    }
    send(&[NotifyState::Watchdog])
}

/// Is a ping due at `now`, the last one having been sent at `last`?
fn due(last: Option<Instant>, now: Instant, interval: Duration) -> bool {
    last.is_none_or(|l| now.saturating_duration_since(l) >= interval)
}

fn send(states: &[NotifyState]) -> bool {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return false;
    }
    match sd_notify::notify(states) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("sd_notify to the service manager failed: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ping_is_due_then_only_after_the_interval() {
        let t0 = Instant::now();
        let i = Duration::from_secs(15);
        assert!(due(None, t0, i));
        assert!(!due(Some(t0), t0 + Duration::from_secs(14), i));
        assert!(due(Some(t0), t0 + i, i));
        assert!(due(Some(t0), t0 + Duration::from_secs(40), i));
    }
}
