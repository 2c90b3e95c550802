//! Maps, the syscall bitmaps, the scope check and record emission shared by every program:
//! one ring buffer written through reserved slots (payload read straight into the slot, the
//! header filled once per call), per-CPU loss counters, and the kernel-side file facts
//! (fd → inode) behind the no-capture map.

#![allow(unused_imports)]
use core::intrinsics::{atomic_and, atomic_or, atomic_xadd, AtomicOrdering};

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_buf,
        bpf_probe_read_user_str_bytes,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use sensor_common::*;

#[allow(dead_code)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const MMAP: u64 = 9;
    pub const MUNMAP: u64 = 11;
    pub const MREMAP: u64 = 25;
    pub const EXIT: u64 = 60;
    pub const EXIT_GROUP: u64 = 231;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const PIPE: u64 = 22;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const SENDFILE: u64 = 40;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const RECVMSG: u64 = 47;
    pub const SENDMSG: u64 = 46;
    pub const SOCKETPAIR: u64 = 53;
    pub const EXECVE: u64 = 59;
    pub const FCNTL: u64 = 72;
    pub const PTRACE: u64 = 101;
    pub const OPENAT: u64 = 257;
    pub const SPLICE: u64 = 275;
    pub const TEE: u64 = 276;
    pub const VMSPLICE: u64 = 278;
    pub const ACCEPT4: u64 = 288;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const SENDMMSG: u64 = 307;
    pub const PROCESS_VM_READV: u64 = 310;
    pub const PROCESS_VM_WRITEV: u64 = 311;
    pub const EXECVEAT: u64 = 322;
    pub const COPY_FILE_RANGE: u64 = 326;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const IO_URING_SETUP: u64 = 425;
    pub const IO_URING_ENTER: u64 = 426;
    pub const IO_URING_REGISTER: u64 = 427;
    pub const OPENAT2: u64 = 437;
    pub const PIDFD_GETFD: u64 = 438;
    pub const CLOSE_RANGE: u64 = 436;
}

pub const F_DUPFD: u64 = 0;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const O_ACCMODE: u64 = 3;
pub const O_WRONLY: u64 = 1;
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
pub const S_IFMT: u32 = 0o170000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

/// Syscall numbers below this are covered by the bitmaps.
pub const NR_BITS: u64 = 512;

/// Builds a syscall bitmap at compile time.
pub const fn bits(list: &[u64]) -> [u64; (NR_BITS / 64) as usize] {
    let mut b = [0u64; (NR_BITS / 64) as usize];
    let mut i = 0;
    while i < list.len() {
        b[(list[i] >> 6) as usize] |= 1 << (list[i] & 63);
        i += 1;
    }
    b
}

/// Syscalls `sys_enter` looks at (`sensor_common::ENTER_SYSCALLS`). Everything else
/// returns after one bit test on read-only data (no map lookup, no helper call).
#[unsafe(no_mangle)]
pub static ENTER_BITS: [u64; 8] = enter_bits();

const fn enter_bits() -> [u64; 8] {
    let mut nrs = [0u64; ENTER_SYSCALLS.len()];
    let mut i = 0;
    while i < ENTER_SYSCALLS.len() {
        nrs[i] = ENTER_SYSCALLS[i].0;
        i += 1;
    }
    bits(&nrs)
}

/// Syscalls checked for harvesting in every process (before the scope check): opens (of
/// `/proc/<pid>/environ|mem`), ptrace, process_vm_readv/writev, pidfd_getfd.
#[unsafe(no_mangle)]
pub static HARVEST_BITS: [u64; 8] = bits(&[
    nr::OPEN,
    nr::OPENAT,
    nr::OPENAT2,
    nr::PTRACE,
    nr::PROCESS_VM_READV,
    nr::PROCESS_VM_WRITEV,
    nr::PIDFD_GETFD,
]);

/// Syscalls whose return value the probes need (`sensor_common::EXIT_SYSCALLS`): the only
/// ones the exit program looks at, and the only ones with an `INFLIGHT` entry.
#[unsafe(no_mangle)]
pub static EXIT_BITS: [u64; 8] = exit_bits();

const fn exit_bits() -> [u64; 8] {
    let mut nrs = [0u64; EXIT_SYSCALLS.len()];
    let mut i = 0;
    while i < EXIT_SYSCALLS.len() {
        nrs[i] = EXIT_SYSCALLS[i].0;
        i += 1;
    }
    bits(&nrs)
}

/// Is `nr` set in `map`? One load from `.rodata` (the verifier inlines it).
#[inline(always)]
pub fn has_bit(map: &'static [u64; 8], nr: u64) -> bool {
    if nr >= NR_BITS {
        return false;
    }
    let w = unsafe { core::ptr::read_volatile(&map[(nr >> 6) as usize & 7]) };
    (w >> (nr & 63)) & 1 != 0
}

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);
/// Scope entries at exec that may need the syscall programs attached (see `exec.rs`).
#[map]
pub static CONTROL: RingBuf = RingBuf::with_byte_size(16 * 1024, 0);
#[map]
pub static CONFIG: Array<KConfig> = Array::with_max_entries(1, 0);
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::N, 0);
/// One bit per tgid in a watched process subtree (watched pids, exe-name matches at exec,
/// and their forks). Memory-mapped by the daemon, which sets and clears bits atomically.
#[map]
pub static WATCH_BITS: Array<u64> = Array::with_max_entries(WATCH_WORDS, BPF_F_MMAPABLE);
/// cgroup v2 ids whose members are watched.
#[map]
pub static WATCH_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);
/// FNV-1a hashes of exe basenames whose exec puts the process in scope.
#[map]
pub static WATCH_EXE: HashMap<u64, u32> = HashMap::with_max_entries(MAX_NAMES, 0);
/// FNV-1a hashes of credential-file basenames whose fds get their reads captured.
#[map]
pub static CRED_NAMES: HashMap<u64, u32> = HashMap::with_max_entries(MAX_NAMES, 0);
/// (tgid << 32 | fd) of fds whose writes are not captured (sinks that cannot cross the
/// workspace boundary), valid while the fd still refers to the recorded file.
#[map]
pub static NO_CAPTURE: LruHashMap<u64, NoCapture> = LruHashMap::with_max_entries(65536, 0);
/// Kernel-encoded device numbers of character devices that are never sinks (`/dev/null`,
/// `/dev/zero`, `/dev/full`), filled by the daemon.
#[map]
pub static NO_CAPTURE_DEV: HashMap<u32, u32> = HashMap::with_max_entries(64, 0);
/// Saved arguments of in-scope syscalls that need their return value, by pid_tgid.
#[map]
pub static INFLIGHT: HashMap<u64, Inflight> = HashMap::with_max_entries(16384, 0);
/// io_uring use already reported, by (tgid << 16 | kind): syscall number, or 0x100 + opcode.
#[map]
pub static URING_SEEN: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);
/// A write whose buffer was not resident at entry (an mmap'ed file not touched yet): read
/// again at the thread's next tracked syscall, when the write has faulted it in.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Deferred {
    pub head: DataHead,
    pub addr: u64,
    pub len: u64,
}

/// Deferred captures by pid_tgid.
#[map]
pub static DEFERRED: HashMap<u64, Deferred> = HashMap::with_max_entries(1024, 0);
/// Number of entries in `DEFERRED` (an inlined array read lets threads skip the lookup).
#[map]
pub static DEFERRED_COUNT: Array<u64> = Array::with_max_entries(1, 0);
/// Processes stopped at exec until the daemon attaches the syscall programs (tgid → ns).
#[map]
pub static HELD: HashMap<u32, u64> = HashMap::with_max_entries(4096, 0);
/// Per-CPU time of the last forced ring-buffer wakeup.
#[map]
pub static LAST_WAKE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// A serialising counter: an atomic add on it orders the scope update before the read of
/// `attached` at exec (the daemon does the mirror image when it detaches).
#[map]
pub static FENCE: Array<u64> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn count(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}

static DEFAULT_CONFIG: KConfig = KConfig {
    self_tgid: 0,
    capture_bytes: 0,
    wakeup_bytes: 0,
    wakeup_interval_us: 0,
    cgroups: 0,
    attached: 0,
    capture_files_all: 0,
    hold: 0,
    off: KOffsets {
        task_real_parent: 0,
        task_tgid: 0,
        task_pid: 0,
        task_mm: 0,
        task_files: 0,
        task_signal: 0,
        signal_tty: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
        mm_env_start: 0,
        mm_env_end: 0,
        binprm_filename: 0,
        files_fdt: 0,
        fdtable_fd: 0,
        file_inode: 0,
        file_pos: 0,
        inode_mode: 0,
        inode_rdev: 0,
        inode_ino: 0,
        inode_sb: 0,
        sb_dev: 0,
        exit_group_dead: 0,
        uring_opcode: 0,
        file_private: 0,
        pid_numbers: 0,
        sock_dport: 0,
        sock_protocol: 0,
        socket_sk: 0,
        task_fs: 0,
        fs_pwd: 0,
        path_dentry: 0,
        file_path: 0,
        dentry_inode: 0,
        dentry_parent: 0,
        sb_magic: 0,
        sb_root: 0,
        proc_inode_vfs: 0,
        proc_inode_pid: 0,
    },
};

/// The daemon's configuration (index 0 of an array: an inlined lookup, no helper call).
#[inline(always)]
pub fn config() -> &'static KConfig {
    match CONFIG.get(0) {
        Some(c) => c,
        None => &DEFAULT_CONFIG,
    }
}

/// Is this tgid in a watched process subtree? One bit of an array (inlined lookup).
#[inline(always)]
pub fn tgid_watched(tgid: u32) -> bool {
    match WATCH_BITS.get(tgid >> 6) {
        Some(w) => (unsafe { core::ptr::read_volatile(w) } >> (tgid & 63)) & 1 != 0,
        None => false,
    }
}

/// Puts a tgid in the process scope.
#[inline(always)]
pub fn watch_set(tgid: u32) {
    if let Some(p) = WATCH_BITS.get_ptr_mut(tgid >> 6) {
        unsafe { atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1u64 << (tgid & 63)) };
    }
}

/// Takes a tgid out of the process scope.
#[inline(always)]
pub fn watch_clear(tgid: u32) {
    if let Some(p) = WATCH_BITS.get_ptr_mut(tgid >> 6) {
        unsafe { atomic_and::<u64, u64, { AtomicOrdering::Relaxed }>(p, !(1u64 << (tgid & 63))) };
    }
}

/// A full memory barrier (a locked add on x86).
#[inline(always)]
pub fn fence() -> u64 {
    match FENCE.get_ptr_mut(0) {
        Some(p) => unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(p, 1) },
        None => 0,
    }
}

/// Is the current task in a watched scope? The daemon itself never is.
#[inline(always)]
pub fn in_scope(tgid: u32, cfg: &KConfig) -> bool {
    if tgid == cfg.self_tgid {
        return false;
    }
    if tgid_watched(tgid) {
        return true;
    }
    if cfg.cgroups == 0 {
        return false;
    }
    let cg = unsafe { bpf_get_current_cgroup_id() };
    unsafe { WATCH_CGROUP.get(&cg) }.is_some()
}

/// The common header of a record made now by the current task.
#[inline(always)]
pub fn header(op: Op) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        op: op as u32,
        tgid: (pid_tgid >> 32) as u32,
        pid: pid_tgid as u32,
        uid: bpf_get_current_uid_gid() as u32,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
    }
}

/// The fixed part of a data record for one call, filled once.
#[inline(always)]
pub fn data_head(op: Op, nr: u64, fd: i32) -> DataHead {
    let hdr = header(op);
    DataHead {
        hdr,
        call_id: hdr.ts_ns,
        total: 0,
        arg: 0,
        fd,
        syscall: nr as u32,
        offset: 0,
        len: 0,
        index: 0,
        flags: 0,
    }
}

/// Wakeup policy of one record of `size` bytes just reserved at time `now`: wake the reader
/// when the ring's fill level crosses `wakeup_bytes`, or when this CPU has not woken it for
/// `wakeup_interval_us` (so a lone write reaches the daemon at once while a stream is
/// batched); otherwise no wakeup (the reader also drains on a timer).
#[inline(always)]
pub fn wake_flag(cfg: &KConfig, size: u64, now: u64) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    let wb = cfg.wakeup_bytes as u64;
    let crossed = avail >= wb && avail < wb + size;
    let interval = cfg.wakeup_interval_us as u64 * 1000;
    if let Some(last) = LAST_WAKE.get_ptr_mut(0) {
        let due = interval > 0 && now.wrapping_sub(unsafe { *last }) >= interval;
        if crossed || due {
            unsafe { *last = now };
            return BPF_RB_FORCE_WAKEUP;
        }
    }
    if crossed {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// What became of a record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Sent,
    /// The user memory was not readable and the record was discarded (deferrable).
    Fault,
    /// The ring buffer was full (counted).
    Lost,
}

/// Reserves a record of class `N`, copies `head` in, reads `n` (≤ N) bytes from `src`
/// (user or kernel memory) straight into the slot and submits it. An unreadable user
/// buffer is sent as an `F_FAULT` record, or discarded when `defer` (the caller retries).
#[inline(always)]
fn emit_class<const N: usize>(
    cfg: &KConfig,
    head: &DataHead,
    src: u64,
    n: usize,
    kernel: bool,
    defer: bool,
) -> Emit {
    let Some(mut e) = EVENTS.reserve::<DataEventN<N>>(0) else {
        count(counter::RINGBUF_FULL);
        return Emit::Lost;
    };
    let p = e.as_mut_ptr();
    let mut n = n;
    if n > N {
        n = N;
    }
    unsafe {
        let h = p as *mut DataHead;
        *h = *head;
        let dst = (*p).data.as_mut_ptr() as *mut core::ffi::c_void;
        let r = if n == 0 {
            0
        } else if kernel {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(dst, n as u32, src as *const _)
        } else {
            aya_ebpf::helpers::generated::bpf_probe_read_user(dst, n as u32, src as *const _)
        };
        if r == 0 {
            (*h).len = n as u32;
        } else if defer {
            e.discard(BPF_RB_NO_WAKEUP);
            return Emit::Fault;
        } else {
            // Still unreadable: the daemon reads it from /proc/<pid>/mem if it can.
            (*h).len = 0;
            (*h).flags |= F_FAULT;
            (*h).arg = src;
            (*h).index = n as u32;
        }
    }
    e.submit(wake_flag(cfg, (DATA_HDR_LEN + N) as u64, head.hdr.ts_ns));
    Emit::Sent
}

/// Sends [`CHUNK`] bytes of user memory at `src` as one full-size record.
#[inline(always)]
pub fn emit_chunk(cfg: &KConfig, head: &DataHead, src: u64) -> bool {
    emit_class::<CHUNK>(cfg, head, src, CHUNK, false, false) == Emit::Sent
}

/// Sends `n` bytes of user (or kernel) memory at `src` as one record of the smallest class
/// that fits (`n` ≤ [`CHUNK`]); `head` gives everything but `len` (and `F_FAULT`).
#[inline(always)]
pub fn emit_bytes(cfg: &KConfig, head: &DataHead, src: u64, n: usize, kernel: bool) -> bool {
    emit_sized(cfg, head, src, n, kernel, false) == Emit::Sent
}

/// [`emit_bytes`] of user memory that, when unreadable, sends nothing and says so.
#[inline(always)]
pub fn emit_bytes_or_fault(cfg: &KConfig, head: &DataHead, src: u64, n: usize) -> Emit {
    emit_sized(cfg, head, src, n, false, true)
}

#[inline(always)]
fn emit_sized(
    cfg: &KConfig,
    head: &DataHead,
    src: u64,
    n: usize,
    kernel: bool,
    defer: bool,
) -> Emit {
    if n <= DATA_CLASSES[0] {
        emit_class::<{ DATA_CLASSES[0] }>(cfg, head, src, n, kernel, defer)
    } else if n <= DATA_CLASSES[1] {
        emit_class::<{ DATA_CLASSES[1] }>(cfg, head, src, n, kernel, defer)
    } else if n <= DATA_CLASSES[2] {
        emit_class::<{ DATA_CLASSES[2] }>(cfg, head, src, n, kernel, defer)
    } else {
        emit_class::<CHUNK>(cfg, head, src, n, kernel, defer)
    }
}

/// Keeps a single-record write whose buffer faulted for the thread's next tracked syscall.
#[inline(always)]
pub fn defer_write(head: &DataHead, addr: u64, len: u64) {
    let key = ((head.hdr.tgid as u64) << 32) | head.hdr.pid as u64;
    let d = Deferred {
        head: *head,
        addr,
        len,
    };
    if DEFERRED.insert(&key, &d, 0).is_ok() {
        if let Some(c) = DEFERRED_COUNT.get_ptr_mut(0) {
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, 1) };
        }
    }
}

/// Forgets an exiting thread's deferred write (its memory is gone).
#[inline(always)]
pub fn drop_deferred(pid_tgid: u64) {
    if DEFERRED.remove(&pid_tgid).is_ok() {
        if let Some(c) = DEFERRED_COUNT.get_ptr_mut(0) {
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, u64::MAX) };
        }
    }
}

/// Sends this thread's deferred write, if any (its buffer is resident now).
#[inline(always)]
pub fn flush_deferred(cfg: &KConfig, pid_tgid: u64) {
    match DEFERRED_COUNT.get(0) {
        Some(c) if unsafe { core::ptr::read_volatile(c) } > 0 => {}
        _ => return,
    }
    let Some(d) = (unsafe { DEFERRED.get(&pid_tgid) }) else {
        return;
    };
    let d = *d;
    let _ = DEFERRED.remove(&pid_tgid);
    if let Some(c) = DEFERRED_COUNT.get_ptr_mut(0) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(c, u64::MAX) };
    }
    let n = if d.len > CHUNK as u64 {
        CHUNK
    } else {
        d.len as usize
    };
    emit_bytes(cfg, &d.head, d.addr, n, false);
}

/// A meta record, reserved in the ring and filled in place by `fill`.
#[inline(always)]
pub fn emit_meta(cfg: &KConfig, op: Op, fill: impl FnOnce(&mut MetaEvent)) {
    let Some(mut e) = EVENTS.reserve::<MetaEvent>(0) else {
        count(counter::RINGBUF_FULL);
        return;
    };
    let p = e.as_mut_ptr();
    let ts = unsafe {
        (*p).hdr = header(op);
        (*p).ret = 0;
        (*p).arg0 = 0;
        (*p).arg1 = 0;
        (*p).fd = -1;
        (*p).fd2 = -1;
        (*p).syscall = 0;
        (*p).addr_len = 0;
        fill(&mut *p);
        (*p).hdr.ts_ns
    };
    e.submit(wake_flag(cfg, core::mem::size_of::<MetaEvent>() as u64, ts));
}

/// Per-CPU scratch records of the copy-out API below.
#[map]
#[allow(dead_code)]
pub static DATA_SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
#[allow(dead_code)]
pub static META_SCRATCH: PerCpuArray<MetaEvent> = PerCpuArray::with_max_entries(1, 0);

/// Fills a record header for the current task.
#[inline(always)]
#[allow(dead_code)]
pub fn fill_header(hdr: &mut EventHeader, op: Op) {
    *hdr = header(op);
}

/// Wakeup flag for a record output now (time-based part of [`wake_flag`]).
#[inline(always)]
#[allow(dead_code)]
pub fn wakeup_flag(cfg: &KConfig) -> u64 {
    wake_flag(cfg, 0, unsafe { bpf_ktime_get_ns() })
}

/// Copy-out API (a per-CPU scratch record, then `bpf_ringbuf_output`): kept for programs
/// written against it; new code reserves in place with [`emit_meta`] / [`emit_bytes`].
#[inline(always)]
#[allow(dead_code)]
pub fn meta_scratch(op: Op) -> Option<&'static mut MetaEvent> {
    let p = META_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *p };
    fill_header(&mut ev.hdr, op);
    ev.ret = 0;
    ev.arg0 = 0;
    ev.arg1 = 0;
    ev.fd = -1;
    ev.fd2 = -1;
    ev.syscall = 0;
    ev.addr_len = 0;
    Some(ev)
}

/// Sends a [`meta_scratch`] record.
#[inline(always)]
#[allow(dead_code)]
pub fn submit_meta(ev: &MetaEvent, cfg: &KConfig) {
    if EVENTS.output::<MetaEvent>(ev, wakeup_flag(cfg)).is_err() {
        count(counter::RINGBUF_FULL);
    }
}

/// See [`meta_scratch`].
#[inline(always)]
#[allow(dead_code)]
pub fn data_scratch(op: Op) -> Option<&'static mut DataEvent> {
    let p = DATA_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *p };
    fill_header(&mut ev.hdr, op);
    ev.call_id = ev.hdr.ts_ns;
    ev.total = 0;
    ev.arg = 0;
    ev.fd = -1;
    ev.syscall = 0;
    ev.offset = 0;
    ev.len = 0;
    ev.index = 0;
    ev.flags = 0;
    Some(ev)
}

/// Sends a [`data_scratch`] record: the header and its first `ev.len` data bytes.
#[inline(always)]
#[allow(dead_code)]
pub fn submit_data(ev: &DataEvent, cfg: &KConfig) {
    let len = ev.len as usize;
    if len > CHUNK {
        return;
    }
    let bytes: &[u8] = unsafe {
        core::slice::from_raw_parts(ev as *const DataEvent as *const u8, DATA_HDR_LEN + len)
    };
    if EVENTS.output::<[u8]>(bytes, wakeup_flag(cfg)).is_err() {
        count(counter::RINGBUF_FULL);
    }
}

/// Reads a socket address of `len` bytes from user memory into `ev.addr`.
#[inline(always)]
pub fn read_addr(ev: &mut MetaEvent, uaddr: u64, len: u64) {
    if uaddr == 0 {
        return;
    }
    let n = if len > ADDR_LEN as u64 {
        ADDR_LEN
    } else {
        len as usize
    };
    if n == 0 {
        return;
    }
    if unsafe { bpf_probe_read_user_buf(uaddr as *const u8, &mut ev.addr[..n]) }.is_ok() {
        ev.addr_len = n as u32;
    }
}

/// Reads a kernel u64 at `base + off`; 0 if unreadable (the helper zero-fills on failure).
/// Branch-free, so chains of reads do not multiply the verifier's paths.
#[inline(always)]
pub fn kread_u64(base: u64, off: u32) -> u64 {
    let mut v: u64 = 0;
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            &mut v as *mut u64 as *mut core::ffi::c_void,
            8,
            (base + off as u64) as *const core::ffi::c_void,
        )
    };
    v
}

/// Reads a kernel u32 at `base + off`; 0 if unreadable.
#[inline(always)]
pub fn kread_u32(base: u64, off: u32) -> u32 {
    let mut v: u32 = 0;
    unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            &mut v as *mut u32 as *mut core::ffi::c_void,
            4,
            (base + off as u64) as *const core::ffi::c_void,
        )
    };
    v
}

/// The current task (`struct task_struct *`) as an address.
#[inline(always)]
pub fn current_task() -> u64 {
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() }
}

/// What an fd of the current task refers to, read through the fd table.
#[derive(Clone, Copy)]
pub struct FileFacts {
    #[allow(dead_code)]
    pub file: u64,
    pub inode: u64,
    pub mode: u32,
    pub rdev: u32,
    pub ino: u64,
    pub dev: u32,
}

/// Are the offsets for fd → inode facts known?
#[inline(always)]
pub fn file_offsets_known(o: &KOffsets) -> bool {
    o.task_files != 0
        && o.files_fdt != 0
        && o.fdtable_fd != 0
        && o.file_inode != 0
        && o.inode_sb != 0
        && o.sb_dev != 0
}

/// `struct file *` of the current task's `fd`, or 0 (offsets must be known).
#[inline(always)]
pub fn fd_file(cfg: &KConfig, fd: u64) -> u64 {
    let o = &cfg.off;
    let files = kread_u64(current_task(), o.task_files);
    let fdt = kread_u64(files, o.files_fdt);
    let fds = kread_u64(fdt, o.fdtable_fd);
    kread_u64(fds, ((fd & 0xffff) * 8) as u32)
}

/// Mode, device and identity of the inode behind the current task's `fd`.
#[inline(always)]
pub fn fd_facts(cfg: &KConfig, fd: u64) -> Option<FileFacts> {
    let o = &cfg.off;
    if !file_offsets_known(o) {
        return None;
    }
    let file = fd_file(cfg, fd);
    let inode = kread_u64(file, o.file_inode);
    if inode == 0 {
        return None;
    }
    let sb = kread_u64(inode, o.inode_sb);
    Some(FileFacts {
        file,
        inode,
        mode: kread_u32(inode, o.inode_mode) & 0xffff,
        rdev: kread_u32(inode, o.inode_rdev),
        ino: kread_u64(inode, o.inode_ino),
        dev: kread_u32(sb, o.sb_dev),
    })
}

/// Position (`f_pos`) of the current task's `fd`, or [`POS_UNKNOWN`].
#[inline(always)]
pub fn fd_pos(cfg: &KConfig, fd: u64) -> u64 {
    if !file_offsets_known(&cfg.off) || cfg.off.file_pos == 0 {
        return POS_UNKNOWN;
    }
    let file = fd_file(cfg, fd);
    if file == 0 {
        return POS_UNKNOWN;
    }
    kread_u64(file, cfg.off.file_pos)
}

/// Key of the per-(tgid, fd) maps.
#[inline(always)]
pub fn fd_key(tgid: u32, fd: u64) -> u64 {
    ((tgid as u64) << 32) | (fd & 0xffff_ffff)
}

/// Should a write to `fd` by `tgid` skip payload capture? Only if a no-capture entry exists
/// and the fd still refers to the same file.
#[inline(always)]
pub fn no_capture(cfg: &KConfig, tgid: u32, fd: u64) -> bool {
    let Some(nc) = (unsafe { NO_CAPTURE.get(&fd_key(tgid, fd)) }) else {
        return false;
    };
    let nc = *nc;
    if nc.inode != 0 {
        // Same inode object, so the same file (the inodes of listed devices and files kept
        // open stay allocated): the fd table and one more read.
        let inode = kread_u64(fd_file(cfg, fd), cfg.off.file_inode);
        return file_offsets_known(&cfg.off) && inode == nc.inode;
    }
    match fd_facts(cfg, fd) {
        Some(f) => f.ino == nc.ino && f.dev == nc.dev,
        None => false,
    }
}

/// Records a no-capture entry for `fd` (identity from the fd table now).
#[inline(always)]
pub fn set_no_capture(tgid: u32, fd: u64, f: &FileFacts) {
    let v = NoCapture {
        ino: f.ino,
        dev: f.dev,
        _pad: 0,
        inode: f.inode,
    };
    let _ = NO_CAPTURE.insert(&fd_key(tgid, fd), &v, 0);
}

/// The device rule: a character device the daemon listed (`/dev/null`-like) is never a sink.
#[inline(always)]
pub fn is_null_device(f: &FileFacts) -> bool {
    f.mode & S_IFMT == S_IFCHR && unsafe { NO_CAPTURE_DEV.get(&f.rdev) }.is_some()
}
