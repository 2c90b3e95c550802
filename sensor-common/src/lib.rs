//! The one ABI shared by the kernel probes (`sensor-ebpf`) and the daemon (`sensor`).
//!
//! Every record in the ring buffer starts with an [`EventHeader`] whose `op` is an [`Op`]
//! value; the daemon decodes records through one dispatch table keyed by that opcode. All
//! structs are `#[repr(C)]` with explicit padding so both sides agree byte for byte, and
//! `aya::Pod` is implemented behind the `user` feature for map access from userspace.
#![no_std]

/// Payload bytes carried by one [`DataEvent`] record. Larger buffers are split into several
/// records with increasing `offset`.
pub const CHUNK: usize = 4096;
/// Upper bound on the bytes captured from one syscall, whatever the configuration says.
pub const MAX_CAPTURE: u32 = 64 * 1024;
/// iovecs walked per `writev`/`sendmsg`/`readv` call.
pub const MAX_IOV: u32 = 32;
/// `argv` entries captured at exec.
pub const MAX_ARGV: u32 = 64;
/// Environment entries captured at exec.
pub const MAX_ENVP: u32 = 256;
/// Entries of the kernel's basename maps (`WATCH_EXE`, `CRED_NAMES`): the most exe names
/// and credential-file names the configuration and flags may list.
pub const MAX_NAMES: u32 = 256;
/// Messages walked per `sendmmsg` call.
pub const MAX_MMSG: u32 = 4;
/// Bytes of a socket address kept (sizeof(struct sockaddr_storage)).
pub const ADDR_LEN: usize = 128;
/// Bytes of a path scanned for its basename in the kernel (longer paths are not matched).
pub const PATH_SCAN: usize = 256;

/// FNV-1a offset basis: the hash of an empty basename.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// One FNV-1a step. The kernel hashes a path's basename byte by byte (restarting at each
/// `/`) so that exe and credential-file maps are keyed by [`name_hash`] without any
/// variable-offset copying, which the verifier cannot bound cheaply.
#[inline(always)]
pub fn fnv_step(h: u64, c: u8) -> u64 {
    (h ^ c as u64).wrapping_mul(FNV_PRIME)
}

/// Key of a basename in the `WATCH_EXE` and `CRED_NAMES` maps.
pub fn name_hash(name: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &c in name {
        h = fnv_step(h, c);
    }
    h
}

/// Opcode of a ring-buffer record. Values are stable: they are the wire format.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`DataEvent`]: bytes a watched process wrote (write, writev, pwrite64, sendto, sendmsg, sendmmsg).
    Write = 1,
    /// [`DataEvent`]: bytes a watched process read from a watched (credential) fd.
    Read = 2,
    /// [`DataEvent`]: one string of an execve: `index` 0 is the filename (`arg` = [`EXEC_FILENAME`]),
    /// then argv ([`EXEC_ARGV`]) and envp ([`EXEC_ENVP`]) entries.
    ExecArg = 3,
    /// [`MetaEvent`]: execve/execveat returned `ret`; `arg0` holds `INFLIGHT_*` flags, `arg1`
    /// the parent's tgid.
    ExecDone = 4,
    /// [`MetaEvent`]: the current task forked child `fd2` (a pid).
    Fork = 5,
    /// [`MetaEvent`]: a thread-group leader exited.
    Exit = 6,
    /// [`DataEvent`]: open/openat/openat2 returned fd; data is the path, `arg` the open flags,
    /// `index` is 1 when the fd was marked for read capture.
    Open = 7,
    /// [`MetaEvent`]: fd closed.
    Close = 8,
    /// [`MetaEvent`]: dup/dup2/dup3/fcntl(F_DUPFD*) made `fd2` a copy of `fd`.
    Dup = 9,
    /// [`MetaEvent`]: connect on `fd` to `addr`, result `ret`.
    Connect = 10,
    /// [`MetaEvent`]: accept on listening `fd` returned `fd2`, peer `addr`.
    Accept = 11,
    /// [`MetaEvent`]: socket() returned `fd`; `arg0` domain, `arg1` type.
    Socket = 12,
    /// [`MetaEvent`]: pipe/pipe2/socketpair returned `fd` and `fd2` (`syscall` tells which).
    Pipe = 13,
    /// [`MetaEvent`]: sendto/sendmsg on `fd` named destination `addr` explicitly.
    SendTo = 14,
    /// [`DataEvent`]: plaintext a TLS library's write function accepted (C libraries: at
    /// return, the bytes it reports written; Go: at entry). `fd` is -1 (the tracker ties it
    /// to the socket), `arg` is the library's connection object (`SSL *`,
    /// `gnutls_session_t`, Go `*tls.Conn`), `syscall` a [`TlsFn`] value, `call_id` the
    /// call's entry time (`bpf_ktime_get_ns`).
    TlsWrite = 15,
    /// [`DataEvent`]: plaintext a TLS library's read function returned (uprobe at return);
    /// fields as [`Op::TlsWrite`].
    TlsRead = 16,
    /// [`MetaEvent`]: a watched process mmap'ed file `fd` with `PROT_EXEC` (`arg0` = prot,
    /// `arg1` = flags): a new executable object, maybe a TLS library, to look at.
    MmapExec = 17,
}

/// `DataEvent::syscall` of [`Op::TlsWrite`]/[`Op::TlsRead`]: which library call it was.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFn {
    /// OpenSSL/BoringSSL `SSL_write`/`SSL_read` (also `_ex`).
    OpenSsl = 1,
    /// GnuTLS `gnutls_record_send`/`gnutls_record_recv`.
    GnuTls = 2,
    /// Go `crypto/tls.(*Conn).Write`/`Read`.
    Go = 3,
}

impl TlsFn {
    /// Decodes the wire value.
    pub fn from_u32(v: u32) -> Option<TlsFn> {
        Some(match v {
            1 => TlsFn::OpenSsl,
            2 => TlsFn::GnuTls,
            3 => TlsFn::Go,
            _ => return None,
        })
    }
}

/// Arguments of a TLS write or read call saved at entry until its return
/// (kernel-internal, shared for layout checks).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsCallArgs {
    /// Connection object.
    pub conn: u64,
    /// Source or destination buffer.
    pub buf: u64,
    /// `size_t *` that receives the length (`SSL_write_ex`/`SSL_read_ex`), or 0 when the
    /// return value is the length.
    pub len_ptr: u64,
    /// `bpf_ktime_get_ns()` at entry: the records' `call_id`, so userspace can tell which
    /// socket writes happened inside the call.
    pub ts: u64,
    /// A [`TlsFn`] value.
    pub func: u32,
    pub _pad: u32,
}

impl Op {
    /// Decodes a wire opcode.
    pub fn from_u32(v: u32) -> Option<Op> {
        Some(match v {
            1 => Op::Write,
            2 => Op::Read,
            3 => Op::ExecArg,
            4 => Op::ExecDone,
            5 => Op::Fork,
            6 => Op::Exit,
            7 => Op::Open,
            8 => Op::Close,
            9 => Op::Dup,
            10 => Op::Connect,
            11 => Op::Accept,
            12 => Op::Socket,
            13 => Op::Pipe,
            14 => Op::SendTo,
            15 => Op::TlsWrite,
            16 => Op::TlsRead,
            17 => Op::MmapExec,
            _ => return None,
        })
    }
}

/// `DataEvent::arg` of an [`Op::ExecArg`] record: which string it is.
pub const EXEC_FILENAME: u64 = 0;
/// See [`EXEC_FILENAME`].
pub const EXEC_ARGV: u64 = 1;
/// See [`EXEC_FILENAME`].
pub const EXEC_ENVP: u64 = 2;

/// `DataEvent::flags`: last record of this call.
pub const F_LAST: u32 = 1;
/// `DataEvent::flags`: the call moved more bytes than were captured (limit reached).
pub const F_TRUNCATED: u32 = 2;
/// `DataEvent::flags`: a user-memory read failed; `len` is 0.
pub const F_FAULT: u32 = 4;

/// Common header of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    /// An [`Op`] value.
    pub op: u32,
    /// Thread-group id (the process id userspace sees).
    pub tgid: u32,
    /// Thread id.
    pub pid: u32,
    /// Real uid of the task.
    pub uid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) at emission.
    pub ts_ns: u64,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
}

/// Size of the fixed part of a [`DataEvent`] before `data`.
pub const DATA_HDR_LEN: usize = core::mem::size_of::<EventHeader>() + 48;

/// A record carrying bytes (payloads, paths, exec strings). Only `DATA_HDR_LEN + len` bytes
/// are sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataEvent {
    pub hdr: EventHeader,
    /// Identifies the syscall: records with the same (tgid, pid, call_id) belong together.
    pub call_id: u64,
    /// Bytes the syscall moved (its return value), or a string's length.
    pub total: u64,
    /// Op-specific: open flags, exec string kind.
    pub arg: u64,
    /// File descriptor the bytes went to or came from.
    pub fd: i32,
    /// x86_64 syscall number.
    pub syscall: u32,
    /// Offset of `data` within the bytes of this call.
    pub offset: u32,
    /// Valid bytes in `data`.
    pub len: u32,
    /// Op-specific index (exec string index, open capture mark).
    pub index: u32,
    /// `F_*` flags.
    pub flags: u32,
    pub data: [u8; CHUNK],
}

/// A fixed-size record for everything that is not bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MetaEvent {
    pub hdr: EventHeader,
    pub ret: i64,
    pub arg0: u64,
    pub arg1: u64,
    pub fd: i32,
    pub fd2: i32,
    pub syscall: u32,
    pub addr_len: u32,
    pub addr: [u8; ADDR_LEN],
}

/// Runtime configuration written by the daemon into the `CONFIG` array (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KConfig {
    /// The daemon's own tgid: never in scope.
    pub self_tgid: u32,
    /// Bytes captured per syscall (≤ [`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Offset of `child_pid` in the `sched:sched_process_fork` record (from its format file).
    pub fork_child_pid_off: u32,
    /// Ring-buffer fill level in bytes above which a record forces a consumer wakeup.
    pub wakeup_bytes: u32,
    /// Offset of `real_parent` in `struct task_struct` (from BTF); 0 = unknown.
    pub task_real_parent_off: u32,
    /// Offset of `tgid` in `struct task_struct` (from BTF); 0 = unknown.
    pub task_tgid_off: u32,
    /// Number of watched cgroups; 0 lets unwatched tasks skip the cgroup lookup.
    pub cgroups: u32,
    pub _pad: u32,
}

/// Value of the `WATCH_TGID` map.
pub const SCOPE_PID: u32 = 1;

/// Indices of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Records lost because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 0;
    /// Syscalls whose arguments could not be saved (in-flight map full).
    pub const INFLIGHT_FULL: u32 = 1;
    /// Payload captures cut short: more than 32 segments (iovecs), or a failed tail call.
    pub const STEPS_EXHAUSTED: u32 = 2;
    /// Processes the kernel could not add to the watch map (map full).
    pub const WATCH_FULL: u32 = 3;
    /// Number of counters.
    pub const N: u32 = 4;
}

/// Saved syscall arguments between sys_enter and sys_exit (kernel-internal, shared for tests).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Inflight {
    pub nr: u64,
    pub args: [u64; 6],
    /// Scope flags at entry (e.g. exe matched at execve).
    pub flags: u64,
}

/// `Inflight::flags`: execve of a watched exe name; add the process to the scope on success.
pub const INFLIGHT_EXE_MATCH: u64 = 1;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for KConfig {}
    unsafe impl aya::Pod for Inflight {}
    unsafe impl aya::Pod for TlsCallArgs {}
}

const _: () = {
    assert!(core::mem::size_of::<EventHeader>() == 32);
    assert!(core::mem::size_of::<DataEvent>() == DATA_HDR_LEN + CHUNK);
    assert!(core::mem::size_of::<MetaEvent>() == 32 + 24 + 16 + ADDR_LEN);
    assert!(core::mem::size_of::<KConfig>() == 32);
    assert!(core::mem::size_of::<TlsCallArgs>() == 40);
};
