//! Detector time per workspace. The detector is one serial stage: a watched process that
//! floods it with bytes that are expensive to scan (keyword floods, long encoded runs)
//! would otherwise delay every other workspace's findings by seconds and make the kernel
//! drop records for everyone. Each workspace gets a bucket of detector time that refills
//! at `scan_budget_ms` per second and holds at most one second's worth; while it is empty
//! the workspace's further payload is scanned for its learned secrets only (exact and
//! fast on any content; the format rules are skipped) and counted, and a
//! `detection_degraded` alert names the workspace — blinding the sensor is itself a signal
//! (T1562.001), never silent. Lost kernel records are reported the same way, on the
//! workspace that wrote the most just before.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::alert::{new_id, Alert, Chain, Sink, Verdict};
use super::boundary::Boundary;
use crate::detect::rules::Severity;
use crate::state::events::{FdKind, ProcessRef};

/// How fast the recent-bytes figure of a workspace decays, per second (half-life ~1 s).
const RECENT_DECAY_PER_SEC: f64 = 0.5;

/// One workspace's share of detector time.
pub struct ScanBudget {
    /// Detector seconds left (negative: owed by a scan that overran).
    left: f64,
    at: Instant,
    /// Payload bytes and writes scanned for learned secrets only (whole run).
    pub degraded_bytes: u64,
    pub degraded_writes: u64,
    /// Payload bytes written recently (decaying): which workspace was busiest.
    recent: f64,
    recent_at: Instant,
    /// The latest writer, named by loss alerts.
    pub last_writer: Option<Arc<ProcessRef>>,
}

impl ScanBudget {
    /// A full bucket for a budget of `rate` detector seconds per second.
    pub fn new(rate: f64) -> ScanBudget {
        let now = Instant::now();
        ScanBudget {
            left: rate,
            at: now,
            degraded_bytes: 0,
            degraded_writes: 0,
            recent: 0.0,
            recent_at: now,
            last_writer: None,
        }
    }

    /// Records a write of `len` bytes by `writer`; false when the bucket is empty (the
    /// write is then scanned for learned secrets only, and counted as degraded).
    pub fn admit(&mut self, rate: f64, len: usize, writer: &Arc<ProcessRef>) -> bool {
        let now = Instant::now();
        self.decay(now);
        self.recent += len as f64;
        if self
            .last_writer
            .as_ref()
            .is_none_or(|w| !Arc::ptr_eq(w, writer))
        {
            self.last_writer = Some(writer.clone());
        }
        if !self.refill(rate, now) {
            return true;
        }
        self.degraded_bytes += len as u64;
        self.degraded_writes += 1;
        false
    }

    /// Whether the bucket is empty now (refilled to now first).
    pub fn exhausted(&mut self, rate: f64) -> bool {
        self.refill(rate, Instant::now())
    }

    /// Adds what `rate` earned since the last refill (at most one second's worth); true
    /// when the bucket is still empty.
    fn refill(&mut self, rate: f64, now: Instant) -> bool {
        self.left = (self.left + now.duration_since(self.at).as_secs_f64() * rate).min(rate);
        self.at = now;
        self.left <= 0.0
    }

    /// Charges detector time spent scanning this workspace's bytes.
    pub fn charge(&mut self, seconds: f64) {
        self.left -= seconds;
    }

    /// Recent bytes (decayed to now).
    pub fn recent(&mut self) -> f64 {
        self.decay(Instant::now());
        self.recent
    }

    fn decay(&mut self, now: Instant) {
        let dt = now.duration_since(self.recent_at).as_secs_f64();
        if dt > 0.0 {
            self.recent *= RECENT_DECAY_PER_SEC.powf(dt);
            self.recent_at = now;
        }
    }
}

/// A `detection_degraded` alert on `process`'s workspace.
pub fn degraded_alert(process: Arc<ProcessRef>, detail: String) -> Alert {
    Alert {
        kind: "finding",
        id: new_id(),
        time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        verdict: Verdict::DetectionDegraded,
        severity: Severity::Medium,
        mitre: vec!["T1562.001".into()],
        workspace: (*process.workspace).clone(),
        tid: process.pid,
        sink: Sink {
            kind: "detector",
            fd: -1,
            fd_kind: FdKind::Unknown,
            endpoint: None,
            syscall: "",
            host: None,
            host_source: None,
            tls: None,
            dns_query: None,
            boundary: Boundary::Unknown,
        },
        chain: Chain {
            source: super::alert::SecretSource {
                kind: "none",
                ..Default::default()
            },
            sender_pid: process.pid,
            sender_exe: process.exe.clone(),
            ..Default::default()
        },
        process,
        harvest: None,
        count: 1,
        repeat_of: None,
        last_seen: None,
        detail: Some(detail),
        finding: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc_ref() -> Arc<ProcessRef> {
        Arc::new(ProcessRef::fixture(1, "/bin/x", &[]))
    }

    #[test]
    fn an_empty_bucket_degrades_until_it_refills() {
        let p = proc_ref();
        let mut b = ScanBudget::new(0.05);
        assert!(b.admit(0.05, 100, &p));
        b.charge(0.2); // a scan overran the budget by 150 ms
        assert!(!b.admit(0.05, 100, &p));
        assert_eq!((b.degraded_bytes, b.degraded_writes), (100, 1));
        // 0.15 s owed at 0.05 s/s: refilled after ~3 s, not before.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!b.admit(0.05, 10, &p));
        b.charge(-0.2); // as if three seconds had passed
        assert!(b.admit(0.05, 10, &p));
        assert_eq!(b.degraded_bytes, 110);
    }

    #[test]
    fn recent_bytes_decay() {
        let p = proc_ref();
        let mut b = ScanBudget::new(1.0);
        b.admit(1.0, 1_000_000, &p);
        let r0 = b.recent();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let r1 = b.recent();
        assert!(r1 < r0 && r1 > r0 * 0.5, "{r0} {r1}");
    }
}
