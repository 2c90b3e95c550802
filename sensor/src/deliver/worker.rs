//! One thread per output: reads that output's deliveries from the outbox strictly in
//! order, renders them in its format and sends batches; acknowledges on success; on a
//! transient failure waits (exponential backoff with jitter, or the peer's `Retry-After`)
//! and retries the same head, so order is preserved; on a permanent failure parks the item
//! as failed, raises an error alert (to the other outputs) and moves on. A slow or dead
//! output only ever delays itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::formats::Format;
use super::outbox::{now_ms, DeliveryState, Outbox};
use super::sinks::{Item, SendError, Sink};

/// A wake-up flag with a condition variable (the writer rings it after each commit).
#[derive(Default)]
pub struct Wake {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    /// Wakes the waiter.
    pub fn ring(&self) {
        *self.flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits for a ring or `d`.
    pub fn wait(&self, d: Duration) {
        let g = self.flag.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, d, |rung| !*rung)
            .unwrap_or_else(|e| e.into_inner());
        *g = false;
    }
}

/// Counters of one output.
#[derive(Debug, Default)]
pub struct OutputStats {
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub failed: AtomicU64,
}

/// The first retry waits about this long; each further one doubles it.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// `Retry-After` is honoured up to this.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(6 * 3600);

/// Backoff before attempt `attempts + 1`: base·2^(attempts−1), capped, with full jitter in
/// its upper half (so many sensors do not retry in step).
pub fn backoff(attempts: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(cap);
    let r = u64::from_le_bytes(crate::redact::random_bytes(8)[..8].try_into().expect("8"));
    let half = exp / 2;
    half + Duration::from_nanos(r % (half.as_nanos() as u64).max(1))
}

/// How an output worker reports an error alert back into the pipeline.
pub type RaiseFn = Arc<dyn Fn(Vec<u8>, Option<String>) + Send + Sync>;

/// The worker of one output.
pub struct OutputWorker {
    pub id: String,
    pub format: Format,
    pub sink: Box<dyn Sink>,
    pub outbox: Arc<Outbox>,
    pub wake: Arc<Wake>,
    pub stop: Arc<AtomicBool>,
    /// Delivery deadline once stopping.
    pub deadline: Arc<Mutex<Option<Instant>>>,
    pub max_backoff: Duration,
    pub stats: Arc<OutputStats>,
    pub raise: RaiseFn,
    pub host: super::record::HostInfo,
    /// Set when this output is gone for good.
    pub closed: Arc<Closed>,
}

/// An output that is gone for good, and why: the daemon waits on it to stop.
#[derive(Default)]
pub struct Closed {
    why: Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Closed {
    /// Records the first reason and wakes the waiter.
    pub fn close(&self, why: String) {
        self.why
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
        self.notify.notify_one();
    }

    /// Resolves with the reason once an output closed.
    pub async fn wait(&self) -> String {
        loop {
            if let Some(w) = self.why.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return w;
            }
            self.notify.notified().await;
        }
    }
}

impl OutputWorker {
    fn stopping(&self) -> Option<Instant> {
        if self.stop.load(Ordering::Acquire) {
            Some(
                self.deadline
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(Instant::now),
            )
        } else {
            None
        }
    }

    /// Runs until stopped (and drained, or its head is waiting, or the deadline passed).
    pub fn run(mut self) {
        // After a permanent failure of a batch, its items go one by one to find the bad one.
        let mut single_until: Option<u64> = None;
        loop {
            let stopping = self.stopping();
            if stopping.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let max = if single_until.is_some() {
                1
            } else {
                self.sink.batch_max()
            };
            let batch = match self.outbox.pending(&self.id, max) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(output = %self.id, "outbox read failed: {e}");
                    self.wake.wait(Duration::from_secs(1));
                    continue;
                }
            };
            let Some(head) = batch.first() else {
                if stopping.is_some() {
                    break;
                }
                // Also polls, so `sensor outbox retry` from another process is picked up.
                self.wake.wait(Duration::from_secs(1));
                continue;
            };
            let now = now_ms();
            if head.state.not_before_ms > now {
                if stopping.is_some() {
                    break;
                }
                self.wake.wait(Duration::from_millis(
                    (head.state.not_before_ms - now).min(1000),
                ));
                continue;
            }
            let last_seq = batch.last().map(|p| p.seq).unwrap_or(head.seq);
            if single_until.is_some_and(|s| head.seq > s) {
                single_until = None;
            }
            let (items, bad): (Vec<_>, Vec<_>) = batch
                .iter()
                .map(|p| (p, serde_json::from_slice::<Value>(&p.json)))
                .partition(|(_, v)| v.is_ok());
            for (p, e) in bad {
                self.park(
                    p.seq,
                    &p.state,
                    format!(
                        "stored alert does not parse: {}",
                        e.err().map(|e| e.to_string()).unwrap_or_default()
                    ),
                    &Value::Null,
                );
            }
            let (metas, items): (Vec<(u64, DeliveryState)>, Vec<Item>) = items
                .into_iter()
                .map(|(p, v)| {
                    let alert = v.expect("partitioned");
                    let line = self.format.render(&p.json, &alert);
                    let id = super::record::s(&alert, "/id").to_string();
                    ((p.seq, p.state.clone()), Item { id, alert, line })
                })
                .unzip();
            if items.is_empty() {
                continue;
            }
            match self.sink.send(&items) {
                Ok(()) => {
                    let seqs: Vec<u64> = metas.iter().map(|(s, _)| *s).collect();
                    if let Err(e) = self.outbox.ack(&self.id, &seqs) {
                        tracing::error!(output = %self.id, "outbox ack failed (will redeliver): {e}");
                    }
                    self.stats
                        .delivered
                        .fetch_add(seqs.len() as u64, Ordering::Relaxed);
                }
                Err(SendError::Transient { error, retry_after }) => {
                    let (seq, st) = &metas[0];
                    let attempts = st.attempts + 1;
                    let wait = match retry_after {
                        Some(d) => d.min(RETRY_AFTER_MAX),
                        None => backoff(attempts, self.max_backoff),
                    };
                    tracing::warn!(output = %self.id, attempts, retry_in = ?wait, "delivery failed: {error}");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let next = DeliveryState {
                        attempts,
                        not_before_ms: now_ms() + wait.as_millis() as u64,
                        failed: false,
                        last_error: Some(error),
                    };
                    if let Err(e) = self.outbox.set_state(&self.id, *seq, &next) {
                        tracing::error!(output = %self.id, "outbox update failed: {e}");
                        self.wake.wait(wait);
                    }
                }
                Err(SendError::Closed { error }) => {
                    tracing::error!(output = %self.id, "output closed: {error}; its alerts stay queued for the next run");
                    self.closed.close(format!("output {}: {error}", self.id));
                    return;
                }
                Err(SendError::Permanent { error }) => {
                    if items.len() > 1 {
                        tracing::warn!(output = %self.id, "batch rejected ({error}); sending its alerts one by one");
                        single_until = Some(last_seq);
                        continue;
                    }
                    let (seq, st) = &metas[0];
                    self.park(*seq, st, error, &items[0].alert);
                }
            }
        }
    }

    /// Parks an item as failed and raises an error alert about it (not for error alerts:
    /// two outputs rejecting each other's errors would never stop).
    fn park(&self, seq: u64, st: &DeliveryState, error: String, alert: &Value) {
        tracing::error!(output = %self.id, seq, "delivery failed permanently: {error}");
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        let failed = DeliveryState {
            attempts: st.attempts + 1,
            not_before_ms: 0,
            failed: true,
            last_error: Some(error.clone()),
        };
        if let Err(e) = self.outbox.set_state(&self.id, seq, &failed) {
            tracing::error!(output = %self.id, "outbox update failed: {e}");
        }
        let kind = super::record::s(alert, "/type");
        if kind != "error" {
            let mut m = serde_json::Map::new();
            m.insert(
                "error".into(),
                json!({
                    "code": "delivery_failed",
                    "output": self.id,
                    "alert_id": super::record::s(alert, "/id"),
                    "alert_type": kind,
                    "message": error,
                    "hint": "fix the output, then `sensor outbox retry`",
                }),
            );
            (self.raise)(
                super::record::internal("error", "high", m, &self.host),
                Some(self.id.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let cap = Duration::from_secs(60);
        for a in 1..12u32 {
            let d = backoff(a, cap);
            let exp = Duration::from_secs(1u64 << (a - 1)).min(cap);
            assert!(d >= exp / 2 && d <= exp, "attempt {a}: {d:?} vs {exp:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(5, cap)).collect();
        assert!(samples.len() > 10, "jitter");
    }
}
