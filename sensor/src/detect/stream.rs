//! Streaming detection: bytes arrive in writes of any size, and a token split across two
//! or more writes must be found once, at its stream offset. Each stream keeps the tail of
//! what it saw (as long as the longest token) and rescans it with the next chunk; findings
//! that lie entirely in the already-scanned tail are not reported again.

use super::engine::{Engine, Finding, ScanOptions};
use super::learned::LearnedSecrets;

/// Per-stream state (one per process + fd).
#[derive(Default)]
pub struct StreamScanner {
    tail: Vec<u8>,
    /// Stream offset of `tail[0]`.
    tail_offset: u64,
    /// Stream offset of the next byte.
    next: u64,
    reported: Vec<(String, u64)>,
}

impl StreamScanner {
    /// A scanner at stream offset 0.
    pub fn new() -> StreamScanner {
        StreamScanner::default()
    }

    /// Feeds the next chunk (at `offset`; a gap resets the carried tail).
    pub fn feed(&mut self, engine: &Engine, learned: Option<&LearnedSecrets>, offset: u64, chunk: &[u8], opts: ScanOptions) -> Vec<Finding> {
        if offset != self.next {
            self.tail.clear();
            self.tail_offset = offset;
        }
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let base = self.tail_offset;
        let mut open = None;
        let found = engine.scan_with_learned_open(&buf, base, learned, opts, &mut open);
        let mut out = Vec::new();
        for f in found {
            // Already reported when the carried tail was scanned with the previous chunk.
            if self.reported.iter().any(|(fp, o)| *fp == f.fingerprint && *o == f.offset) {
                continue;
            }
            self.reported.push((f.fingerprint.clone(), f.offset));
            out.push(f);
        }
        if self.reported.len() > 256 {
            let cut = self.reported.len() - 128;
            self.reported.drain(..cut);
        }
        // Carry over only what a token crossing into the next chunk needs: the fixed overlap
        // (keyword + look-back, longest learned form), any keyword whose window is still
        // open, and a base64 run that reaches the end.
        let keep = engine.min_overlap().max(learned.map(|l| l.max_len()).unwrap_or(0));
        let mut start = buf.len().saturating_sub(keep);
        if let Some(o) = open {
            start = start.min(o);
        }
        if let Some(r) = super::engine::trailing_run_start(&buf) {
            start = start.min(r);
        }
        self.tail_offset = base + start as u64;
        self.tail = buf.split_off(start);
        // Secrets must not linger in freed buffers.
        zeroize::Zeroize::zeroize(&mut buf);
        self.next = offset + chunk.len() as u64;
        out
    }
}

impl Drop for StreamScanner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.tail);
    }
}
