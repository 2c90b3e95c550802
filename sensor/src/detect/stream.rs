//! Streaming detection: bytes arrive in writes of any size, and a token split across two
//! or more writes must be found once, at its stream offset. Each stream keeps the tail of
//! what it saw (as long as the longest token, at most [`MAX_CARRY`]) and rescans it with the next chunk; findings
//! that lie entirely in the already-scanned tail are not reported again. Bytes may also be
//! appended without scanning and scanned later as one batch (the sensor batches small
//! writes this way), in the same buffer.

use super::engine::{Engine, Finding, ScanOptions};
use super::learned::LearnedSecrets;
use rustc_hash::FxHashSet as HashSet;
use std::io::Read;

/// Most bytes a stream carries into its next scan beyond the fixed overlap: a token split
/// across writes is found when it is at most this long (every built-in format is, but for
/// PEM keys over 4 KiB).
pub const MAX_CARRY: usize = 4096;

/// Per-stream state (one per process + fd).
#[derive(Default)]
pub struct StreamScanner {
    /// The carried tail, then bytes not scanned yet (kept between calls so that a long
    /// stream reuses one allocation).
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    tail_offset: u64,
    /// Bytes at the end of `buf` not scanned yet.
    pending: usize,
    /// (fingerprint, offset) of findings in the carried tail, reported already.
    reported: HashSet<(String, u64)>,
}

impl StreamScanner {
    /// A scanner at stream offset 0.
    pub fn new() -> StreamScanner {
        StreamScanner::default()
    }

    /// Stream offset of the next byte (the end of what was appended).
    pub fn position(&self) -> u64 {
        self.tail_offset + self.buf.len() as u64
    }

    /// Bytes appended but not scanned yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends the next chunk without scanning it. A chunk that does not continue the
    /// stream (at `offset`) starts it afresh: the carried tail is dropped, and so are
    /// bytes not scanned yet — scan them first.
    pub fn append(&mut self, offset: u64, chunk: &[u8]) {
        if offset != self.position() {
            zeroize::Zeroize::zeroize(&mut self.buf);
            self.buf.clear();
            self.tail_offset = offset;
            self.pending = 0;
        }
        self.reserve(chunk.len());
        self.buf.extend_from_slice(chunk);
        self.pending += chunk.len();
    }

    /// Feeds the next chunk (at `offset`; a gap resets the carried tail) and scans.
    pub fn feed(
        &mut self,
        engine: &Engine,
        learned: Option<&LearnedSecrets>,
        offset: u64,
        chunk: &[u8],
        opts: ScanOptions,
    ) -> Vec<Finding> {
        self.append(offset, chunk);
        self.scan(engine, learned, opts)
    }

    /// Makes room for `more` bytes. Growing a `Vec` frees the old allocation as is, so
    /// the move is done here, wiping the old one: stream bytes (secrets among them) are
    /// only ever freed zeroized, here or on drop.
    fn reserve(&mut self, more: usize) {
        if self.buf.capacity() - self.buf.len() >= more {
            return;
        }
        let mut grown = Vec::with_capacity((self.buf.len() + more).next_power_of_two());
        grown.extend_from_slice(&self.buf);
        zeroize::Zeroize::zeroize(&mut self.buf);
        self.buf = grown;
    }

    /// Reads up to `max` bytes from `reader` straight into the stream (no intermediate
    /// copy) and scans them; `None` at the end of the input.
    pub fn feed_from(
        &mut self,
        engine: &Engine,
        reader: &mut impl Read,
        max: usize,
        opts: ScanOptions,
    ) -> std::io::Result<Option<Vec<Finding>>> {
        self.reserve(max);
        let n = reader.take(max as u64).read_to_end(&mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.pending += n;
        Ok(Some(self.scan(engine, None, opts)))
    }

    /// Scans the bytes appended since the last scan (with the carried tail), then keeps
    /// the new tail.
    pub fn scan(
        &mut self,
        engine: &Engine,
        learned: Option<&LearnedSecrets>,
        opts: ScanOptions,
    ) -> Vec<Finding> {
        if self.pending == 0 {
            return Vec::new();
        }
        self.pending = 0;
        let base = self.tail_offset;
        let mut open = None;
        let found = engine.scan_with_learned_open(&self.buf, base, learned, opts, &mut open);
        // Findings in the carried tail were reported when it was scanned before.
        let out: Vec<Finding> = found
            .into_iter()
            .filter(|f| !self.reported.contains(&(f.fingerprint.clone(), f.offset)))
            .collect();
        // Carry over only what a token crossing into the next chunk needs: the fixed overlap
        // (keyword + look-back, longest learned form), any keyword whose window is still
        // open, and a base64 run that reaches the end.
        let keep = engine
            .min_overlap()
            .max(learned.map(|l| l.max_len()).unwrap_or(0));
        let len = self.buf.len();
        let mut start = len.saturating_sub(keep);
        if let Some(o) = open {
            start = start.min(o);
        }
        if let Some(r) = super::engine::trailing_run_start(&self.buf) {
            start = start.min(r);
        }
        // But never more than `MAX_CARRY`: each scan re-reads the tail, and an open window
        // of a long-token rule (a PEM key may run 20 KB) would otherwise make a stream of
        // small writes rescan the same bytes many times over.
        start = start.max(len.saturating_sub(keep.max(MAX_CARRY)));
        self.tail_offset = base + start as u64;
        // Only findings that start in the new tail can be found again.
        let tail = self.tail_offset;
        self.reported.retain(|(_, o)| *o >= tail);
        self.reported.extend(
            out.iter()
                .filter(|f| f.offset >= tail)
                .map(|f| (f.fingerprint.clone(), f.offset)),
        );
        // The buffer is kept (and wiped when dropped or outgrown, see `reserve`).
        self.buf.copy_within(start.., 0);
        self.buf.truncate(len - start);
        out
    }
}

impl Drop for StreamScanner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}
