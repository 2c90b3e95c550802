//! `stdout`: one line per alert on standard output (today's behaviour, and the default
//! when `outputs` is empty). A line is written whole under the stdout lock, so it never
//! interleaves with `--print-events` lines.

use std::io::Write;

use super::{Item, SendError, Sink};

/// Standard output.
#[derive(Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn batch_max(&self) -> usize {
        500
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        for it in items {
            lock.write_all(&it.line).map_err(SendError::transient)?;
            lock.write_all(b"\n").map_err(SendError::transient)?;
        }
        lock.flush().map_err(SendError::transient)
    }
}
