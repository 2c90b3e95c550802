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
        let r = items
            .iter()
            .try_for_each(|it| {
                lock.write_all(&it.line)?;
                lock.write_all(b"\n")
            })
            .and_then(|()| lock.flush());
        r.map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => SendError::Closed {
                error: format!("stdout: {e} (its reader has exited)"),
            },
            _ => SendError::transient(e),
        })
    }
}
