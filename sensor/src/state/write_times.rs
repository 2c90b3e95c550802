//! When each write of a stream happened, kept while writes wait in a scan batch, so a
//! finding carries the time of the write that contained the token rather than the time of
//! the batch's last write.
//!
//! Every `EventBody::Write` carries its `stream_offset` and its event's `time` is the
//! syscall's entry time as the kernel stamped it (the first record of the call). The
//! monitor records `(stream_offset, time)` per appended write and asks for the time at a
//! finding's stream offset.

use std::time::SystemTime;

/// Start offsets and times of the writes of one stream not yet scanned, in stream order.
#[derive(Clone, Debug, Default)]
pub struct WriteTimes {
    writes: Vec<(u64, SystemTime)>,
}

impl WriteTimes {
    /// Records a write that starts at `stream_offset`.
    pub fn push(&mut self, stream_offset: u64, time: SystemTime) {
        // A write that does not continue the stream (a gap, a rewind after a seek) starts a
        // new sequence: earlier entries can no longer be asked for.
        if self.writes.last().is_some_and(|(o, _)| *o > stream_offset) {
            self.writes.clear();
        }
        self.writes.push((stream_offset, time));
    }

    /// Time of the write containing the byte at `stream_offset` (the last write starting at
    /// or before it); `None` when nothing recorded starts before it.
    pub fn time_at(&self, stream_offset: u64) -> Option<SystemTime> {
        let i = self.writes.partition_point(|(o, _)| *o <= stream_offset);
        i.checked_sub(1).map(|i| self.writes[i].1)
    }

    /// Forgets writes entirely before `stream_offset` (scanned, beyond any carry-over),
    /// keeping the one that contains it.
    pub fn forget_before(&mut self, stream_offset: u64) {
        let i = self.writes.partition_point(|(o, _)| *o <= stream_offset);
        if i > 1 {
            self.writes.drain(..i - 1);
        }
    }

    /// Number of writes recorded.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn finding_gets_the_time_of_its_write() {
        let mut w = WriteTimes::default();
        w.push(0, t(10)); // bytes 0..40: the token
        w.push(40, t(55)); // bytes 40..80
        assert_eq!(w.time_at(0), Some(t(10)));
        assert_eq!(w.time_at(39), Some(t(10)));
        assert_eq!(w.time_at(40), Some(t(55)));
        assert_eq!(w.time_at(1000), Some(t(55)));
        w.forget_before(45);
        assert_eq!(w.len(), 1);
        assert_eq!(w.time_at(45), Some(t(55)));
        assert_eq!(w.time_at(10), None);
    }

    #[test]
    fn a_rewind_starts_over() {
        let mut w = WriteTimes::default();
        w.push(100, t(1));
        w.push(0, t(2));
        assert_eq!(w.len(), 1);
        assert_eq!(w.time_at(5), Some(t(2)));
        assert!(WriteTimes::default().time_at(0).is_none());
    }
}
