//! Tying TLS plaintext to the socket it travels on. The uprobes see a library call
//! (`SSL_write(ssl, …)`) but not the fd; the syscall probes see the fd. The socket write a
//! thread makes while its TLS write is in flight is that write's ciphertext (libraries
//! with socket BIOs, and curl's own BIO, write inside the call): a TLS write record
//! (emitted at the call's return, stamped with its entry time) takes the fd of the last
//! socket write its thread made since that entry. Libraries that encrypt into memory and
//! flush right after the call (Node), and Go (captured at entry), write afterwards: such a
//! TLS write is parked until its thread's next socket write. Either way the connection
//! object is bound to the fd, and reads use that binding (a request is written before
//! its response is read). A parked write whose socket write never comes is released
//! after a timeout with the binding known so far, or with fd -1.

use rustc_hash::FxHashMap as HashMap;
use std::time::{Duration, Instant};

use sensor_common::TlsFn;

/// How long a TLS write waits for its thread's next socket write.
pub const PARK_TIMEOUT: Duration = Duration::from_secs(2);

/// A TLS write waiting for its socket.
pub struct Parked {
    pub since: Instant,
    pub hdr: sensor_common::EventHeader,
    pub conn: u64,
    pub func: u32,
    pub data: Vec<u8>,
    pub total: u64,
    pub truncated: bool,
    pub incomplete: bool,
}

/// Connection bindings, parked writes and plaintext stream offsets.
#[derive(Default)]
pub struct TlsTies {
    /// (tgid, connection object) → fd.
    conns: HashMap<(u32, u64), i32>,
    /// Parked writes by thread, oldest first.
    parked: HashMap<u32, Vec<Parked>>,
    /// Plaintext stream offsets by (tgid, fd).
    offsets: HashMap<(u32, i32), u64>,
    /// Last socket write per thread: (time, fd).
    last_socket_write: HashMap<u32, (u64, i32)>,
}

impl TlsTies {
    /// Parks a finished TLS write of thread `hdr.pid`.
    pub fn park(&mut self, p: Parked) {
        self.parked.entry(p.hdr.pid).or_default().push(p);
    }

    /// The writes parked by thread `tid`, for its socket write on `fd` (binds them).
    pub fn take_for_socket(&mut self, tid: u32, fd: i32) -> Vec<Parked> {
        let v = self.parked.remove(&tid).unwrap_or_default();
        for p in &v {
            self.conns.insert((p.hdr.tgid, p.conn), fd);
        }
        v
    }

    /// Thread `tid` wrote to socket `fd` at `ts` (monotonic ns).
    pub fn socket_write(&mut self, tid: u32, ts: u64, fd: i32) {
        self.last_socket_write.insert(tid, (ts, fd));
    }

    /// The socket thread `tid` wrote to since `since` (a TLS call's entry), binding
    /// `conn` of `tgid` to it.
    pub fn written_during(&mut self, tgid: u32, tid: u32, since: u64, conn: u64) -> Option<i32> {
        let (ts, fd) = *self.last_socket_write.get(&tid)?;
        if ts < since {
            return None;
        }
        self.conns.insert((tgid, conn), fd);
        Some(fd)
    }

    /// Whether thread `tid` has parked writes.
    pub fn has_parked(&self, tid: u32) -> bool {
        self.parked.contains_key(&tid)
    }

    /// The fd a connection object was last bound to.
    pub fn fd_of(&self, tgid: u32, conn: u64) -> Option<i32> {
        self.conns.get(&(tgid, conn)).copied()
    }

    /// Offset of the next `len` plaintext bytes on (tgid, fd).
    pub fn advance(&mut self, tgid: u32, fd: i32, len: u64) -> u64 {
        let off = self.offsets.entry((tgid, fd)).or_insert(0);
        let at = *off;
        *off += len;
        at
    }

    /// Parked writes older than [`PARK_TIMEOUT`] (all of them when `all`).
    pub fn expired(&mut self, now: Instant, all: bool) -> Vec<Parked> {
        let mut out = Vec::new();
        self.parked.retain(|_, v| {
            let (old, keep): (Vec<Parked>, Vec<Parked>) = std::mem::take(v)
                .into_iter()
                .partition(|p| all || now.duration_since(p.since) > PARK_TIMEOUT);
            out.extend(old);
            *v = keep;
            !v.is_empty()
        });
        out
    }

    /// An fd was closed or reused: its plaintext stream and bindings end.
    pub fn fd_closed(&mut self, tgid: u32, fd: i32) {
        self.offsets.remove(&(tgid, fd));
        self.conns.retain(|(t, _), f| !(*t == tgid && *f == fd));
    }

    /// A process is gone (`threads`: its thread ids, as far as known).
    pub fn forget(&mut self, tgid: u32) {
        self.offsets.retain(|(t, _), _| *t != tgid);
        self.conns.retain(|(t, _), _| *t != tgid);
        self.last_socket_write.remove(&tgid);
    }

    /// Drops per-thread socket-write times older than `horizon_ns` (threads come and go).
    pub fn trim(&mut self, now_ns: u64, horizon_ns: u64) {
        self.last_socket_write
            .retain(|_, (ts, _)| now_ns.saturating_sub(*ts) < horizon_ns);
    }
}

/// Stack label of a [`TlsFn`] wire value.
pub fn stack_name(func: u32) -> &'static str {
    match TlsFn::from_u32(func) {
        Some(TlsFn::OpenSsl) => "openssl",
        Some(TlsFn::GnuTls) => "gnutls",
        Some(TlsFn::Go) => "go",
        None => "unknown",
    }
}

/// The library function of a TLS write (shown where a syscall name would be).
pub fn write_fn_name(func: u32) -> &'static str {
    match TlsFn::from_u32(func) {
        Some(TlsFn::OpenSsl) => "SSL_write",
        Some(TlsFn::GnuTls) => "gnutls_record_send",
        Some(TlsFn::Go) => "tls.(*Conn).Write",
        None => "tls_write",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(tid: u32, conn: u64) -> Parked {
        Parked {
            since: Instant::now(),
            hdr: sensor_common::EventHeader {
                tgid: 10,
                pid: tid,
                ..Default::default()
            },
            conn,
            func: 1,
            data: b"x".to_vec(),
            total: 1,
            truncated: false,
            incomplete: false,
        }
    }

    #[test]
    fn parked_writes_bind_to_the_next_socket_write_of_their_thread() {
        let mut t = TlsTies::default();
        t.park(parked(11, 0xaaa));
        t.park(parked(12, 0xbbb));
        assert!(t.has_parked(11));
        let got = t.take_for_socket(11, 5);
        assert_eq!(got.len(), 1);
        assert_eq!(t.fd_of(10, 0xaaa), Some(5));
        assert_eq!(t.fd_of(10, 0xbbb), None);
        assert_eq!(t.advance(10, 5, 7), 0);
        assert_eq!(t.advance(10, 5, 3), 7);
        t.fd_closed(10, 5);
        assert_eq!(t.fd_of(10, 0xaaa), None);
        assert_eq!(t.advance(10, 5, 1), 0);
        // A write whose ciphertext went out inside the call binds at once.
        t.socket_write(13, 1_000, 7);
        assert_eq!(t.written_during(10, 13, 900, 0xccc), Some(7));
        assert_eq!(t.fd_of(10, 0xccc), Some(7));
        assert_eq!(t.written_during(10, 13, 1_100, 0xddd), None);
        t.trim(10_000, 5_000);
        assert_eq!(t.written_during(10, 13, 0, 0xddd), None);
        assert!(t.expired(Instant::now(), false).is_empty());
        assert_eq!(t.expired(Instant::now(), true).len(), 1);
        assert!(!t.has_parked(12));
    }
}
