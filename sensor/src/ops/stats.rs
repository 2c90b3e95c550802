//! Counters of the pipeline (records read, decode errors, losses), shared between the reader
//! and the tracker and reported as a metric line, so that no loss is ever silent.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Userspace pipeline counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Ring-buffer records read.
    pub records: AtomicU64,
    /// Records that failed to decode.
    pub decode_errors: AtomicU64,
    /// Enriched events produced.
    pub events: AtomicU64,
    /// Calls whose records were partly lost (assembled with gaps or timed out).
    pub incomplete_calls: AtomicU64,
    /// Ring-buffer records the kernel lost (mirrors the kernel counter).
    pub kernel_ringbuf_full: AtomicU64,
    /// Syscalls the kernel could not follow (in-flight map full).
    pub kernel_inflight_full: AtomicU64,
    /// Calls cut by the per-call record bound.
    pub kernel_steps_exhausted: AtomicU64,
    /// Processes the kernel could not add to its watch map.
    pub kernel_watch_full: AtomicU64,
    /// Enriched events by kind (indexed like [`EVENT_KINDS`]).
    pub events_by_kind: [AtomicU64; EVENT_KINDS.len()],
    /// Processes in the tracker's table.
    pub tracked_processes: AtomicU64,
}

/// Event kinds counted in [`Stats::events_by_kind`].
pub const EVENT_KINDS: [&str; 10] = [
    "exec", "fork", "exit", "open", "read", "write", "connect", "accept", "close", "dup",
];

impl Stats {
    /// Counts one event of `kind` (one of [`EVENT_KINDS`]; others count only in `events`).
    pub fn inc_kind(&self, kind: &str) {
        if let Some(i) = EVENT_KINDS.iter().position(|k| *k == kind) {
            self.events_by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A point-in-time copy of [`Stats`].
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub records: u64,
    pub decode_errors: u64,
    pub events: u64,
    pub incomplete_calls: u64,
    pub kernel_ringbuf_full: u64,
    pub kernel_inflight_full: u64,
    pub kernel_steps_exhausted: u64,
    pub kernel_watch_full: u64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            records: g(&self.records),
            decode_errors: g(&self.decode_errors),
            events: g(&self.events),
            incomplete_calls: g(&self.incomplete_calls),
            kernel_ringbuf_full: g(&self.kernel_ringbuf_full),
            kernel_inflight_full: g(&self.kernel_inflight_full),
            kernel_steps_exhausted: g(&self.kernel_steps_exhausted),
            kernel_watch_full: g(&self.kernel_watch_full),
        }
    }

    /// Total events lost anywhere in the pipeline.
    pub fn lost(&self) -> u64 {
        let s = self.snapshot();
        s.kernel_ringbuf_full + s.kernel_inflight_full + s.decode_errors
    }
}
