//! The ring-buffer reader: drains the kernel's records on readiness (forced wakeups) and on
//! a timer (batched records), decodes each and hands them on in batches through a bounded
//! channel, counting what it cannot decode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::decode::{decode, RawEvent};
use crate::ops::stats::Stats;

/// Records per channel message.
pub const BATCH: usize = 256;

/// A batch of records and the queue bytes it holds until the tracker has handed its events
/// on: the queue between the ring and the detector is bounded in bytes, not records (16 KiB
/// payload records made a record bound worth a gigabyte and seconds of backlog).
pub type Batch = (Vec<RawEvent>, tokio::sync::OwnedSemaphorePermit);

/// Drains the ring buffer on readiness (forced wakeups) and on a timer (batched records).
pub async fn read_ring(
    mut fd: AsyncFd<RingBuf<MapData>>,
    tx: mpsc::Sender<Batch>,
    bytes: Arc<tokio::sync::Semaphore>,
    max_bytes: u32,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    poll: Duration,
) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        tokio::select! {
            guard = fd.readable_mut() => {
                match guard {
                    Ok(mut g) => {
                        g.clear_ready();
                    }
                    Err(e) => {
                        tracing::error!("ring buffer poll failed: {e}");
                        tokio::time::sleep(poll).await;
                    }
                }
            }
            _ = tick.tick() => {}
        }
        // Drain everything available, in batches so the channel can apply backpressure.
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            let mut size = 0usize;
            {
                let ring = fd.get_mut();
                while batch.len() < BATCH {
                    let Some(item) = ring.next() else { break };
                    size += item.len();
                    Stats::inc(&stats.records);
                    match decode(&item) {
                        Ok(ev) => batch.push(ev),
                        Err(e) => {
                            Stats::inc(&stats.decode_errors);
                            tracing::warn!("undecodable ring-buffer record: {e}");
                        }
                    }
                }
            }
            let n = batch.len();
            if n > 0 {
                // Waits while the queue holds `max_bytes`: the ring then fills and the kernel
                // counts what it drops, instead of a backlog growing behind the detector.
                let want = (size.max(1) as u64).min(max_bytes as u64) as u32;
                let Ok(permit) = bytes.clone().acquire_many_owned(want).await else {
                    return;
                };
                if tx.send((batch, permit)).await.is_err() {
                    return;
                }
            }
            if n < BATCH {
                break;
            }
        }
        if stopping {
            return;
        }
    }
}
