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

/// Drains the ring buffer on readiness (forced wakeups) and on a timer (batched records).
pub async fn read_ring(
    mut fd: AsyncFd<RingBuf<MapData>>,
    tx: mpsc::Sender<Vec<RawEvent>>,
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
            {
                let ring = fd.get_mut();
                while batch.len() < BATCH {
                    let Some(item) = ring.next() else { break };
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
            if n > 0 && tx.send(batch).await.is_err() {
                return;
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
