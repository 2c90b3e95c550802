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
/// Entries of the kernel's basename maps (`WATCH_EXE`, `CRED_NAMES`): the most exe names
/// and credential-file names the configuration and flags may list.
pub const MAX_NAMES: u32 = 256;
/// Messages walked per `sendmmsg` call.
pub const MAX_MMSG: u32 = 4;
/// Bytes of a socket address kept (sizeof(struct sockaddr_storage)).
pub const ADDR_LEN: usize = 128;
/// Bytes of a path scanned for its basename in the kernel (`PATH_MAX`).
pub const PATH_SCAN: usize = 4096;
/// Bytes of an exec's argument + environment block sent (a larger block is marked
/// truncated; the daemon then reads `/proc/<pid>/environ`).
pub const MAX_EXEC_BLOCK: usize = 64 * CHUNK;
/// Chunks of the exec block sent per program run (the program tail-calls itself).
pub const EXEC_CHUNKS_PER_RUN: usize = 16;

/// Syscalls the entry program looks at, with their tracepoint names (the kernel builds its
/// entry bitmap from the numbers).
pub const ENTER_SYSCALLS: [(u64, &str); 41] = [
    (1, "write"),
    (2, "open"),
    (3, "close"),
    (9, "mmap"),
    (11, "munmap"),
    (18, "pwrite64"),
    (20, "writev"),
    (22, "pipe"),
    (25, "mremap"),
    (32, "dup"),
    (33, "dup2"),
    (40, "sendfile64"),
    (41, "socket"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (46, "sendmsg"),
    (53, "socketpair"),
    (60, "exit"),
    (72, "fcntl"),
    (101, "ptrace"),
    (231, "exit_group"),
    (257, "openat"),
    (275, "splice"),
    (276, "tee"),
    (278, "vmsplice"),
    (288, "accept4"),
    (292, "dup3"),
    (293, "pipe2"),
    (296, "pwritev"),
    (307, "sendmmsg"),
    (310, "process_vm_readv"),
    (311, "process_vm_writev"),
    (326, "copy_file_range"),
    (328, "pwritev2"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (427, "io_uring_register"),
    (436, "close_range"),
    (437, "openat2"),
    (438, "pidfd_getfd"),
];

/// Syscalls whose return value the probes need (fds, byte counts), with their tracepoint
/// names: the only ones the exit program completes. The kernel builds its exit bitmap from
/// the numbers; the daemon attaches `syscalls:sys_exit_<name>` per entry when it uses
/// per-syscall exit tracepoints.
pub const EXIT_SYSCALLS: [(u64, &str); 18] = [
    (2, "open"),
    (22, "pipe"),
    (32, "dup"),
    (33, "dup2"),
    (41, "socket"),
    (42, "connect"),
    (43, "accept"),
    (53, "socketpair"),
    (72, "fcntl"),
    (257, "openat"),
    (288, "accept4"),
    (292, "dup3"),
    (293, "pipe2"),
    (437, "openat2"),
    (40, "sendfile64"),
    (275, "splice"),
    (276, "tee"),
    (326, "copy_file_range"),
];

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
    /// [`DataEvent`]: bytes a watched process received on a DNS socket (`index` =
    /// [`READ_DNS`]): a socket connected to port 53, or an unconnected UDP socket that sent
    /// to port 53. Taken at `sock:sock_recv_length` (socket receives only, with the byte
    /// count) from the buffer of the receiving read/readv/recvfrom/recvmsg call; `arg` is the
    /// IP protocol (6 TCP, 17 UDP). File reads are not followed (credential files are read
    /// by the daemon when they are opened).
    Read = 2,
    /// [`DataEvent`]: part of a successful exec, read from the new image at
    /// `sched_process_exec`: the filename (`arg` = [`EXEC_FILENAME`], up to `PATH_MAX`), then
    /// the argument and environment block ([`EXEC_BLOCK`]) in chunks (`offset`; `F_LAST` on
    /// the last chunk, `F_TRUNCATED` when the block was cut).
    ExecArg = 3,
    /// [`MetaEvent`]: the exec completed (`ret` 0); `arg0` holds `EXEC_F_*` flags, `arg1`
    /// the parent's tgid.
    ExecDone = 4,
    /// [`MetaEvent`]: the current task forked child `fd2` (a pid).
    Fork = 5,
    /// [`MetaEvent`]: a thread-group leader exited.
    Exit = 6,
    /// [`DataEvent`]: open/openat/openat2 returned fd; data is the path, `arg` the open flags,
    /// `index` is 1 for a credential file (the daemon reads its content).
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
    /// [`MetaEvent`]: pipe/pipe2/socketpair returned `fd` and `fd2` (`syscall` tells which);
    /// for pipes `arg0` is the pipe's inode number, for socketpair `arg0`/`arg1` are the
    /// domain and type.
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
    /// [`MetaEvent`]: a kernel-side copy completed: sendfile, splice, tee or copy_file_range
    /// (`syscall`) moved `ret` bytes from `fd2` to `fd`; `arg0` is the source position
    /// before the call ([`POS_UNKNOWN`] for pipes and sockets), `arg1` the source's
    /// `i_mode` (file type), so the daemon can read regular-file content itself.
    Transfer = 18,
    /// [`MetaEvent`]: a watched process used io_uring, whose requests bypass the syscall
    /// programs: `syscall` is io_uring_setup/enter/register (`fd` the ring), or 0 for a
    /// request seen at `io_uring:io_uring_submit_req` with its opcode in `arg0`. Reported
    /// once per process and kind.
    IoUring = 19,
    /// [`DataEvent`]: a process (watched or not) reached for a watched process's secrets:
    /// opened `/proc/<pid>/environ` or `/proc/<pid>/mem`, ptrace-attached,
    /// `process_vm_readv`/`writev`, or `pidfd_getfd`. `arg` is a `HARVEST_*` method,
    /// `index` the target's tgid (0 for an open of a bare `environ`/`mem` relative to
    /// directory fd `fd`, `AT_FDCWD` included: the daemon resolves the directory), `syscall`
    /// the call; data: the reader's comm
    /// ([`HARVEST_COMM`] bytes, NUL-padded), then the path opened (for `/proc` reads).
    Harvest = 20,
    /// [`EnvEvent`]: a watched process called libc `getenv`/`secure_getenv` (uprobe at
    /// entry) for a variable name it had not asked for before in this image (the kernel
    /// reports each (process image, name) once). Names only, never values.
    EnvRead = 21,
}

/// Bytes of an environment variable name an [`EnvEvent`] carries (longer names are cut).
pub const ENV_NAME_MAX: usize = 128;

/// `EnvEvent::func`: which libc function asked for the variable (the uprobe's attach
/// cookie).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvFn {
    /// `getenv(name)`.
    Getenv = 1,
    /// `secure_getenv(name)`.
    SecureGetenv = 2,
}

impl EnvFn {
    /// Decodes the wire value.
    pub fn from_u32(v: u32) -> Option<EnvFn> {
        Some(match v {
            1 => EnvFn::Getenv,
            2 => EnvFn::SecureGetenv,
            _ => return None,
        })
    }

    /// The C function's name.
    pub fn name(self) -> &'static str {
        match self {
            EnvFn::Getenv => "getenv",
            EnvFn::SecureGetenv => "secure_getenv",
        }
    }
}

/// Record of [`Op::EnvRead`]: the name a watched process asked its environment for.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvEvent {
    pub hdr: EventHeader,
    /// An [`EnvFn`] value.
    pub func: u32,
    /// Valid bytes in `name` (without the NUL); [`ENV_NAME_MAX`] when the name was cut.
    pub len: u32,
    pub name: [u8; ENV_NAME_MAX],
}

/// Key of the kernel's once-per-image filter of [`Op::EnvRead`] (kernel-internal, shared
/// for layout checks): the process and the FNV-1a hash of the name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvSeenKey {
    pub tgid: u32,
    pub _pad: u32,
    pub hash: u64,
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
            18 => Op::Transfer,
            19 => Op::IoUring,
            20 => Op::Harvest,
            21 => Op::EnvRead,
            _ => return None,
        })
    }
}

/// `DataEvent::arg` of an [`Op::ExecArg`] record: which string it is.
pub const EXEC_FILENAME: u64 = 0;
/// `DataEvent::arg` of an [`Op::ExecArg`] record: a chunk (at `offset`) of the new image's
/// argument and environment strings as exec laid them out, NUL-separated and contiguous
/// (`mm->arg_start..env_end`); `index` is where the environment starts in the block.
pub const EXEC_BLOCK: u64 = 1;

/// `MetaEvent::arg0` of [`Op::ExecDone`]: the exec put the process in scope by exe name.
pub const EXEC_F_EXE_MATCH: u64 = 1;
/// `MetaEvent::arg0` of [`Op::ExecDone`]: the process was stopped (SIGSTOP) at its first
/// instruction until the daemon has attached the syscall programs.
pub const EXEC_F_HELD: u64 = 2;
/// Kept for readers of the old name of [`EXEC_F_EXE_MATCH`].
pub const INFLIGHT_EXE_MATCH: u64 = EXEC_F_EXE_MATCH;

/// Bytes of the reader's comm at the start of an [`Op::Harvest`] record's data.
pub const HARVEST_COMM: usize = 16;
/// `DataEvent::arg` of [`Op::Harvest`]: open of `/proc/<pid>/environ`.
pub const HARVEST_ENVIRON: u64 = 1;
/// Open of `/proc/<pid>/mem`.
pub const HARVEST_MEM: u64 = 2;
/// `ptrace(PTRACE_ATTACH | PTRACE_SEIZE)`.
pub const HARVEST_PTRACE: u64 = 3;
/// `process_vm_readv`.
pub const HARVEST_VM_READ: u64 = 4;
/// `process_vm_writev`.
pub const HARVEST_VM_WRITE: u64 = 5;
/// `pidfd_getfd`.
pub const HARVEST_PIDFD_GETFD: u64 = 6;

/// `DataEvent::index` of an [`Op::Read`]: the bytes came from a DNS socket.
pub const READ_DNS: u32 = 1;
/// Bytes of a DNS answer captured per receive (one record; a larger TCP read is cut and
/// marked [`F_TRUNCATED`]).
pub const DNS_CAPTURE: usize = CHUNK;

/// `MetaEvent::arg0` of [`Op::Transfer`] when the source has no position.
pub const POS_UNKNOWN: u64 = u64::MAX;

/// `DataEvent::flags`: last record of this call.
pub const F_LAST: u32 = 1;
/// `DataEvent::flags`: the call moved more bytes than were captured (limit reached).
pub const F_TRUNCATED: u32 = 2;
/// `DataEvent::flags`: a user-memory read failed (e.g. pages of an mmap'ed file not yet
/// faulted in); `len` is 0, `arg` holds the user address and `index` the byte count, so
/// the daemon can read them from `/proc/<pid>/mem`.
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
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the syscall was entered.
    pub ts_ns: u64,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
}

/// The fixed part of every record that carries bytes. Filled once per call by the probes
/// and copied into each of the call's records (only `offset`, `len` and `flags` differ).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataHead {
    pub hdr: EventHeader,
    /// Identifies the syscall: records with the same (tgid, pid, call_id) belong together.
    pub call_id: u64,
    /// Bytes the syscall moved (its return value, or what it asked to move), or a string's
    /// length.
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
    /// Op-specific index (open capture mark, harvest target).
    pub index: u32,
    /// `F_*` flags.
    pub flags: u32,
}

/// Size of the fixed part of a data record before `data`.
pub const DATA_HDR_LEN: usize = core::mem::size_of::<DataHead>();

/// A record carrying up to `N` bytes: a [`DataHead`] (same fields, same layout) followed by
/// the bytes. The probes reserve the smallest of [`DATA_CLASSES`] that fits and read the
/// payload straight into the ring-buffer slot; `len` says how many of the `N` bytes are
/// valid.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataEventN<const N: usize> {
    pub hdr: EventHeader,
    /// See [`DataHead::call_id`].
    pub call_id: u64,
    pub total: u64,
    pub arg: u64,
    pub fd: i32,
    pub syscall: u32,
    pub offset: u32,
    pub len: u32,
    pub index: u32,
    pub flags: u32,
    pub data: [u8; N],
}

impl<const N: usize> DataEventN<N> {
    /// The fixed part, as a [`DataHead`] (same layout).
    pub fn head_mut(&mut self) -> &mut DataHead {
        // SAFETY: both are repr(C) and DataHead is a prefix of DataEventN (asserted below).
        unsafe { &mut *(self as *mut Self as *mut DataHead) }
    }
}

/// The largest data record: [`CHUNK`] bytes.
pub type DataEvent = DataEventN<CHUNK>;

/// Payload sizes of the data record classes (the last is [`CHUNK`]).
pub const DATA_CLASSES: [usize; 4] = [128, 512, 2048, CHUNK];

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

/// Kernel struct member offsets the probes need, read by the daemon from the running
/// kernel's BTF (no CO-RE in the Rust toolchain). 0 means unknown: the feature that needs
/// it is skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_mm: u32,
    pub task_files: u32,
    pub task_signal: u32,
    pub signal_tty: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub binprm_filename: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    pub file_pos: u32,
    pub inode_mode: u32,
    pub inode_rdev: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    /// Offset of `group_dead` in the `sched:sched_process_exit` record (tracefs format).
    pub exit_group_dead: u32,
    /// Offset of `opcode` in the `io_uring:io_uring_submit_req` record (tracefs format).
    pub uring_opcode: u32,
    /// `file.private_data` (a pidfd's `struct pid *`).
    pub file_private: u32,
    /// `pid.numbers` (the first `struct upid`, whose `nr` is at offset 0).
    pub pid_numbers: u32,
    /// `sock_common.skc_dport` (the peer port, network order; 0 when unconnected).
    pub sock_dport: u32,
    /// `sock.sk_protocol`.
    pub sock_protocol: u32,
    /// `socket.sk` (the `struct socket` is a socket file's `private_data`).
    pub socket_sk: u32,
    /// `task_struct.fs` (its `fs_struct`: root and current directory).
    pub task_fs: u32,
    /// `fs_struct.pwd` (a `struct path`).
    pub fs_pwd: u32,
    /// `path.dentry`.
    pub path_dentry: u32,
    /// `file.f_path`.
    pub file_path: u32,
    /// `dentry.d_inode`.
    pub dentry_inode: u32,
    /// `dentry.d_parent`.
    pub dentry_parent: u32,
    /// `super_block.s_magic`.
    pub sb_magic: u32,
    /// `super_block.s_root`.
    pub sb_root: u32,
    /// `proc_inode.vfs_inode` (0: procfs inodes unknown, relative `/proc` opens are left
    /// to the daemon).
    pub proc_inode_vfs: u32,
    /// `proc_inode.pid` (the `struct pid *` of a `/proc/<pid>` directory; may be 0).
    pub proc_inode_pid: u32,
}

/// Runtime configuration written by the daemon into the `CONFIG` array (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KConfig {
    /// The daemon's own tgid: never in scope.
    pub self_tgid: u32,
    /// Bytes captured per syscall (≤ [`MAX_CAPTURE`]).
    pub capture_bytes: u32,
    /// Ring-buffer fill level in bytes whose crossing forces a consumer wakeup.
    pub wakeup_bytes: u32,
    /// A record forces a wakeup when the last forced one on its CPU is older than this (µs);
    /// otherwise records are batched. 0 = only `wakeup_bytes`.
    pub wakeup_interval_us: u32,
    /// Number of watched cgroups; 0 lets unwatched tasks skip the cgroup lookup.
    pub cgroups: u32,
    /// 1 while the syscall programs are attached. An exe-name match while 0 asks the daemon
    /// to attach them (and holds the new process, see [`KConfig::hold`]).
    pub attached: u32,
    /// 1: writes to every regular file are captured; 0: only to log files (`*.log`,
    /// `/var/log/…`), the others get a no-capture entry at open.
    pub capture_files_all: u32,
    /// 1: a process entering the scope at exec while the syscall programs are detached is
    /// stopped before its first instruction (unless it has a controlling terminal, where a
    /// stop would be visible to job control) until the daemon has attached them.
    pub hold: u32,
    /// Kernel struct offsets.
    pub off: KOffsets,
}

/// A record of the small control ring: a process entered the scope at exec while the
/// syscall programs may be detached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ControlEvent {
    pub tgid: u32,
    /// `EXEC_F_*` flags.
    pub flags: u32,
}

/// Value of a `NO_CAPTURE` entry: writes to (tgid, fd) are not captured while the fd still
/// refers to this file (inode number and kernel-encoded device of its superblock), so a
/// stale entry never hides a new file that reuses the fd number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoCapture {
    pub ino: u64,
    pub dev: u32,
    pub _pad: u32,
    /// Kernel address of the inode when the kernel set the entry (compared first: one read
    /// fewer per write); 0 for entries set by the daemon, checked by `ino` and `dev`.
    pub inode: u64,
}

/// Words of the `WATCH_BITS` array: one bit per tgid up to the kernel's `PID_MAX_LIMIT`.
pub const WATCH_WORDS: u32 = (4 * 1024 * 1024) / 64;

/// Value of the old `WATCH_TGID` map (kept for tools that name it).
pub const SCOPE_PID: u32 = 1;

/// Indices of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Records lost because the ring buffer was full.
    pub const RINGBUF_FULL: u32 = 0;
    /// Syscalls whose arguments could not be saved (in-flight map full).
    pub const INFLIGHT_FULL: u32 = 1;
    /// Payload captures cut short: more than 32 segments (iovecs), or a failed tail call.
    pub const STEPS_EXHAUSTED: u32 = 2;
    /// Processes the kernel could not add to the scope (unused since the scope is a bitmap).
    pub const WATCH_FULL: u32 = 3;
    /// Processes stopped at exec until the syscall programs were attached.
    pub const HELD: u32 = 4;
    /// Control records lost (control ring full).
    pub const CONTROL_FULL: u32 = 5;
    /// Number of counters.
    pub const N: u32 = 6;
}

/// Saved syscall arguments between sys_enter and sys_exit (kernel-internal, shared for tests).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Inflight {
    pub nr: u64,
    pub args: [u64; 6],
    /// Op-specific state saved at entry (e.g. a file position).
    pub flags: u64,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for KConfig {}
    unsafe impl aya::Pod for Inflight {}
    unsafe impl aya::Pod for NoCapture {}
    unsafe impl aya::Pod for ControlEvent {}
    unsafe impl aya::Pod for TlsCallArgs {}
    unsafe impl aya::Pod for EnvSeenKey {}
}

const _: () = {
    assert!(core::mem::size_of::<EventHeader>() == 32);
    assert!(core::mem::size_of::<DataHead>() == 80);
    assert!(core::mem::size_of::<DataEvent>() == DATA_HDR_LEN + CHUNK);
    assert!(core::mem::size_of::<DataEventN<128>>() == DATA_HDR_LEN + 128);
    assert!(core::mem::offset_of!(DataEvent, data) == DATA_HDR_LEN);
    assert!(core::mem::offset_of!(DataEvent, flags) == core::mem::offset_of!(DataHead, flags));
    assert!(core::mem::offset_of!(DataEvent, call_id) == core::mem::offset_of!(DataHead, call_id));
    assert!(core::mem::size_of::<MetaEvent>() == 32 + 24 + 16 + ADDR_LEN);
    assert!(core::mem::size_of::<KOffsets>() == 38 * 4);
    assert!(core::mem::size_of::<KConfig>() == 32 + 38 * 4);
    assert!(core::mem::size_of::<ControlEvent>() == 8);
    assert!(core::mem::size_of::<NoCapture>() == 24);
    assert!(core::mem::size_of::<Inflight>() == 64);
    assert!(core::mem::size_of::<TlsCallArgs>() == 40);
    assert!(core::mem::size_of::<EnvEvent>() == 32 + 8 + ENV_NAME_MAX);
    assert!(core::mem::offset_of!(EnvEvent, name) == 40);
    assert!(core::mem::size_of::<EnvSeenKey>() == 16);
};
