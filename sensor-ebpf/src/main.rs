//! Kernel half of the token sensor: tracepoint programs that decide, per syscall, whether the
//! calling process is in a watched scope and, if so, copy the metadata and payload bytes the
//! daemon needs into one ring buffer.
//!
//! Design (see the reference cost model): two raw tracepoints on `sys_enter`/`sys_exit` with a
//! switch on the syscall number do all per-syscall work; a process outside every scope costs a
//! jump-table miss or two hash lookups. Arguments are saved at entry and the bytes are read at
//! exit, when the return value says how many were really moved. Process lifecycle comes from
//! the `sched` tracepoints. Nothing here scans content: that is the daemon's job.
#![no_std]
#![no_main]

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

mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const PIPE: u64 = 22;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const SENDMSG: u64 = 46;
    pub const SOCKETPAIR: u64 = 53;
    pub const EXECVE: u64 = 59;
    pub const FCNTL: u64 = 72;
    pub const OPENAT: u64 = 257;
    pub const ACCEPT4: u64 = 288;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const SENDMMSG: u64 = 307;
    pub const EXECVEAT: u64 = 322;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const OPENAT2: u64 = 437;
}

const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;
const O_ACCMODE: u64 = 3;
const O_WRONLY: u64 = 1;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);
#[map]
static CONFIG: Array<KConfig> = Array::with_max_entries(1, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::N, 0);
/// tgids in a watched process subtree.
#[map]
static WATCH_TGID: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);
/// cgroup v2 ids whose members are watched.
#[map]
static WATCH_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);
/// FNV-1a hashes of exe basenames whose exec puts the process in scope.
#[map]
static WATCH_EXE: HashMap<u64, u32> = HashMap::with_max_entries(256, 0);
/// FNV-1a hashes of credential-file basenames whose fds get their reads captured.
#[map]
static CRED_NAMES: HashMap<u64, u32> = HashMap::with_max_entries(256, 0);
/// (tgid << 32 | fd) of fds whose reads are captured.
#[map]
static WATCH_FD: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);
/// Saved arguments of in-scope syscalls, by pid_tgid.
#[map]
static INFLIGHT: HashMap<u64, Inflight> = HashMap::with_max_entries(16384, 0);
#[map]
static DATA_SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
static META_SCRATCH: PerCpuArray<MetaEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn config() -> KConfig {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => KConfig::default(),
    }
}

/// Is the current task in a watched scope? The daemon itself never is.
#[inline(always)]
fn in_scope(tgid: u32, cfg: &KConfig) -> bool {
    if tgid == cfg.self_tgid {
        return false;
    }
    if unsafe { WATCH_TGID.get(&tgid) }.is_some() {
        return true;
    }
    if cfg.cgroups == 0 {
        return false;
    }
    let cg = unsafe { bpf_get_current_cgroup_id() };
    unsafe { WATCH_CGROUP.get(&cg) }.is_some()
}

#[inline(always)]
fn fill_header(hdr: &mut EventHeader, op: Op) {
    let pid_tgid = bpf_get_current_pid_tgid();
    hdr.op = op as u32;
    hdr.tgid = (pid_tgid >> 32) as u32;
    hdr.pid = pid_tgid as u32;
    hdr.uid = bpf_get_current_uid_gid() as u32;
    hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    hdr.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
}

/// Wakeup policy: batch records (no wakeup) until the ring holds `wakeup_bytes`; the daemon
/// also drains on a short timer, so nothing waits long.
#[inline(always)]
fn wakeup_flag(cfg: &KConfig) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    if avail >= cfg.wakeup_bytes as u64 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
fn meta_scratch(op: Op) -> Option<&'static mut MetaEvent> {
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

#[inline(always)]
fn submit_meta(ev: &MetaEvent, cfg: &KConfig) {
    if EVENTS.output::<MetaEvent>(ev, wakeup_flag(cfg)).is_err() {
        count(counter::RINGBUF_FULL);
    }
}

#[inline(always)]
fn data_scratch(op: Op) -> Option<&'static mut DataEvent> {
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

/// Sends the header and the first `ev.len` data bytes.
#[inline(always)]
fn submit_data(ev: &DataEvent, cfg: &KConfig) {
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
fn read_addr(ev: &mut MetaEvent, uaddr: u64, len: u64) {
    if uaddr == 0 {
        return;
    }
    let n = if len > ADDR_LEN as u64 { ADDR_LEN } else { len as usize };
    if n == 0 {
        return;
    }
    if unsafe { bpf_probe_read_user_buf(uaddr as *const u8, &mut ev.addr[..n]) }.is_ok() {
        ev.addr_len = n as u32;
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Iovec {
    base: u64,
    len: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    _pad: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
    flags: u32,
    _pad2: u32,
}

/// sizeof(struct mmsghdr): a msghdr and the `msg_len` the kernel filled in.
const MMSGHDR_LEN: u64 = 64;
/// A plain buffer: one segment.
const MODE_PLAIN: u32 = 0;
/// An iovec array (writev, readv, sendmsg).
const MODE_IOV: u32 = 1;
/// An mmsghdr array (sendmmsg): each message is its own call.
const MODE_MMSG: u32 = 2;

/// Progress of one payload capture across tail calls of `emit_data` (one per segment).
#[repr(C)]
#[derive(Clone, Copy)]
struct Walk {
    op: u32,
    syscall: u32,
    fd: i32,
    mode: u32,
    call_id: u64,
    total: u64,
    cap: u64,
    done: u64,
    seg_base: u64,
    seg_len: u64,
    iov: u64,
    iov_idx: u64,
    iov_cnt: u64,
    msgvec: u64,
    msg_idx: u64,
    msg_cnt: u64,
    hops: u64,
}

#[map]
static WALK: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);
/// Tail-call targets: index 0 is `emit_data`.
#[map]
static JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[inline(always)]
fn capture_cap(cfg: &KConfig, total: u64) -> u64 {
    let mut cap = cfg.capture_bytes as u64;
    if cap > MAX_CAPTURE as u64 {
        cap = MAX_CAPTURE as u64;
    }
    if total < cap {
        total
    } else {
        cap
    }
}

/// Starts a capture in `WALK` and tail-calls the segment walker.
#[inline(always)]
fn start_walk(ctx: &RawTracePointContext, w: Walk) {
    let Some(p) = WALK.get_ptr_mut(0) else { return };
    unsafe { *p = w };
    unsafe { JUMP.tail_call(ctx, 0) };
    // Only reached if the tail call failed (program array not populated).
    count(counter::STEPS_EXHAUSTED);
}

#[inline(always)]
fn walk(op: Op, nr: u64, fd: u64, mode: u32, total: i64) -> Walk {
    Walk {
        op: op as u32,
        syscall: nr as u32,
        fd: fd as i32,
        mode,
        call_id: 0,
        total: total as u64,
        cap: 0,
        done: 0,
        seg_base: 0,
        seg_len: 0,
        iov: 0,
        iov_idx: 0,
        iov_cnt: 0,
        msgvec: 0,
        msg_idx: 0,
        msg_cnt: 0,
        hops: 0,
    }
}

#[inline(always)]
fn emit_sendto_addr(cfg: &KConfig, nr: u64, fd: u64, uaddr: u64, len: u64) {
    if uaddr == 0 || len == 0 {
        return;
    }
    let Some(ev) = meta_scratch(Op::SendTo) else { return };
    ev.fd = fd as i32;
    ev.syscall = nr as u32;
    read_addr(ev, uaddr, len);
    submit_meta(ev, cfg);
}

/// Loads message `w.msg_idx` of a sendmmsg vector into the walk. False if unreadable.
#[inline(always)]
fn load_mmsg(cfg: &KConfig, w: &mut Walk) -> bool {
    let m = w.msgvec + w.msg_idx * MMSGHDR_LEN;
    let msg: MsgHdr = match unsafe { bpf_probe_read_user(m as *const MsgHdr) } {
        Ok(v) => v,
        Err(_) => return false,
    };
    let total = iov_total(msg.iov, msg.iovlen);
    emit_sendto_addr(cfg, w.syscall as u64, w.fd as u64, msg.name, msg.namelen as u64);
    w.call_id = unsafe { bpf_ktime_get_ns() };
    w.total = total;
    w.cap = capture_cap(cfg, total);
    w.done = 0;
    w.seg_base = 0;
    w.seg_len = 0;
    w.iov = msg.iov;
    w.iov_idx = 0;
    w.iov_cnt = msg.iovlen;
    true
}

/// Closes a call whose segments ended before the cap with an empty LAST record.
#[inline(always)]
fn close_call(ev: &mut DataEvent, cfg: &KConfig, w: &Walk) {
    if w.done >= w.cap && w.done > 0 {
        return; // the last data record already carried F_LAST
    }
    ev.offset = w.done as u32;
    ev.len = 0;
    ev.flags = F_LAST;
    if w.total > w.done {
        ev.flags |= F_TRUNCATED;
    }
    submit_data(ev, cfg);
}

/// Tail-call target: emits the current segment of the walk in ≤ [`CHUNK`] records, then
/// moves to the next iovec / message and tail-calls itself, at most 32 times per call.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn emit_data(ctx: RawTracePointContext) -> i32 {
    try_emit_data(&ctx);
    0
}

#[inline(always)]
fn try_emit_data(ctx: &RawTracePointContext) {
    let Some(wp) = WALK.get_ptr_mut(0) else { return };
    let w = unsafe { &mut *wp };
    let cfg = config();
    let op = if w.op == Op::Read as u32 { Op::Read } else { Op::Write };
    let Some(ev) = data_scratch(op) else { return };
    ev.call_id = w.call_id;
    ev.fd = w.fd;
    ev.syscall = w.syscall;
    ev.total = w.total;
    ev.index = w.iov_idx as u32;
    let mut take = w.seg_len;
    if w.done >= w.cap {
        take = 0;
    } else if take > w.cap - w.done {
        take = w.cap - w.done;
    }
    for k in 0..(MAX_CAPTURE as u64 / CHUNK as u64) {
        let off = k * CHUNK as u64;
        if off >= take {
            break;
        }
        let mut n = take - off;
        if n > CHUNK as u64 {
            n = CHUNK as u64;
        }
        let n = n as usize;
        if n == 0 || n > CHUNK {
            break;
        }
        ev.offset = (w.done + off) as u32;
        ev.flags = 0;
        if w.done + off + n as u64 >= w.cap {
            ev.flags = F_LAST;
            if w.total > w.cap {
                ev.flags |= F_TRUNCATED;
            }
        }
        if unsafe { bpf_probe_read_user_buf((w.seg_base + off) as *const u8, &mut ev.data[..n]) }.is_ok() {
            ev.len = n as u32;
        } else {
            ev.len = 0;
            ev.flags |= F_FAULT;
        }
        submit_data(ev, &cfg);
    }
    w.done += take;
    w.seg_len = 0;

    if w.hops >= 32 {
        count(counter::STEPS_EXHAUSTED);
        close_call(ev, &cfg, w);
        return;
    }
    w.hops += 1;
    if w.mode != MODE_PLAIN && w.done < w.cap {
        if w.iov_idx < w.iov_cnt && w.iov_idx < MAX_IOV as u64 {
            if let Ok(v) = unsafe { bpf_probe_read_user((w.iov + w.iov_idx * 16) as *const Iovec) } {
                w.seg_base = v.base;
                w.seg_len = v.len;
                w.iov_idx += 1;
                unsafe { JUMP.tail_call(ctx, 0) };
            }
        }
    }
    close_call(ev, &cfg, w);
    if w.mode == MODE_MMSG {
        w.msg_idx += 1;
        if w.msg_idx < w.msg_cnt && w.msg_idx < MAX_MMSG as u64 && load_mmsg(&cfg, w) {
            unsafe { JUMP.tail_call(ctx, 0) };
        }
    }
}

/// Hash ([`name_hash`]) of the basename of the NUL-terminated path in `buf`.
#[inline(always)]
fn basename_hash(buf: &[u8; CHUNK], len: usize) -> u64 {
    let mut h = FNV_OFFSET;
    for i in 0..PATH_SCAN {
        if i >= len {
            break;
        }
        let c = buf[i];
        if c == 0 {
            break;
        }
        h = if c == b'/' { FNV_OFFSET } else { fnv_step(h, c) };
    }
    h
}

const RUN_SECRETS: &[u8; 13] = b"/run/secrets/";

#[inline(always)]
fn is_run_secret(buf: &[u8; CHUNK], len: usize) -> bool {
    if len < RUN_SECRETS.len() + 1 {
        return false;
    }
    let mut i = 0;
    while i < RUN_SECRETS.len() {
        if buf[i] != RUN_SECRETS[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Reads one user string into `ev.data` and sends it as an [`Op::ExecArg`] record.
#[inline(always)]
fn emit_exec_string(ev: &mut DataEvent, cfg: &KConfig, ustr: u64, kind: u64, index: u32) -> usize {
    ev.arg = kind;
    ev.index = index;
    ev.offset = 0;
    ev.flags = 0;
    let n = match unsafe { bpf_probe_read_user_str_bytes(ustr as *const u8, &mut ev.data) } {
        Ok(s) => s.len(),
        Err(_) => {
            ev.flags = F_FAULT;
            0
        }
    };
    let n = if n > CHUNK { CHUNK } else { n };
    if n == CHUNK - 1 {
        ev.flags |= F_TRUNCATED;
    }
    ev.len = n as u32;
    ev.total = n as u64;
    submit_data(ev, cfg);
    n
}

#[inline(always)]
fn emit_exec_vector(ev: &mut DataEvent, cfg: &KConfig, uvec: u64, kind: u64, max: u32) {
    if uvec == 0 {
        return;
    }
    for i in 0..MAX_ENVP {
        if i >= max {
            return;
        }
        let p: u64 = match unsafe { bpf_probe_read_user((uvec + i as u64 * 8) as *const u64) } {
            Ok(p) => p,
            Err(_) => return,
        };
        if p == 0 {
            return;
        }
        emit_exec_string(ev, cfg, p, kind, i);
    }
}

/// execve/execveat entry: decide scope (already watched, or exec of a watched exe name) and,
/// if in scope, send filename, argv and envp while the old image's memory is still there.
#[inline(always)]
fn on_execve_enter(cfg: &KConfig, pid_tgid: u64, nr: u64, args: &[u64; 6]) {
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == cfg.self_tgid {
        return;
    }
    let (ufile, uargv, uenvp) = if nr == nr::EXECVE {
        (args[0], args[1], args[2])
    } else {
        (args[1], args[2], args[3])
    };
    let Some(ev) = data_scratch(Op::ExecArg) else { return };
    ev.syscall = nr as u32;
    let flen = match unsafe { bpf_probe_read_user_str_bytes(ufile as *const u8, &mut ev.data) } {
        Ok(s) => s.len(),
        Err(_) => 0,
    };
    let mut flags = 0u64;
    let watched = in_scope(tgid, cfg);
    if !watched {
        let key = basename_hash(&ev.data, flen);
        if unsafe { WATCH_EXE.get(&key) }.is_none() {
            return;
        }
        flags |= INFLIGHT_EXE_MATCH;
    }
    let saved = Inflight { nr, args: *args, flags };
    if INFLIGHT.insert(&pid_tgid, &saved, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
    emit_exec_string(ev, cfg, ufile, EXEC_FILENAME, 0);
    emit_exec_vector(ev, cfg, uargv, EXEC_ARGV, MAX_ARGV);
    emit_exec_vector(ev, cfg, uenvp, EXEC_ENVP, MAX_ENVP);
}

/// tgid of the current task's parent, read through offsets the daemon took from BTF.
#[inline(always)]
fn parent_tgid(cfg: &KConfig) -> u32 {
    if cfg.task_real_parent_off == 0 || cfg.task_tgid_off == 0 {
        return 0;
    }
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() } as *const u8;
    let parent: u64 = match unsafe { bpf_probe_read_kernel(task.add(cfg.task_real_parent_off as usize) as *const u64) } {
        Ok(p) => p,
        Err(_) => return 0,
    };
    unsafe { bpf_probe_read_kernel((parent as *const u8).add(cfg.task_tgid_off as usize) as *const u32) }.unwrap_or(0)
}

#[inline(always)]
fn is_tracked(nr: u64) -> bool {
    matches!(
        nr,
        nr::READ
            | nr::WRITE
            | nr::OPEN
            | nr::CLOSE
            | nr::PREAD64
            | nr::PWRITE64
            | nr::READV
            | nr::WRITEV
            | nr::PIPE
            | nr::DUP
            | nr::DUP2
            | nr::SOCKET
            | nr::CONNECT
            | nr::ACCEPT
            | nr::SENDTO
            | nr::SENDMSG
            | nr::SOCKETPAIR
            | nr::FCNTL
            | nr::OPENAT
            | nr::ACCEPT4
            | nr::DUP3
            | nr::PIPE2
            | nr::PREADV
            | nr::PWRITEV
            | nr::SENDMMSG
            | nr::PREADV2
            | nr::PWRITEV2
            | nr::OPENAT2
    )
}

/// x86_64 `struct pt_regs` up to `orig_ax`.
#[repr(C)]
#[derive(Clone, Copy)]
struct PtRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    bp: u64,
    bx: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    ax: u64,
    cx: u64,
    dx: u64,
    si: u64,
    di: u64,
}

#[inline(always)]
fn syscall_args(ctx: &RawTracePointContext) -> Option<[u64; 6]> {
    let regs: *const PtRegs = ctx.arg(0);
    let r: PtRegs = unsafe { bpf_probe_read_kernel(regs) }.ok()?;
    Some([r.di, r.si, r.dx, r.r10, r.r8, r.r9])
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_enter(&ctx);
    0
}

fn try_sys_enter(ctx: &RawTracePointContext) -> Result<(), i64> {
    let nr: u64 = ctx.arg(1);
    if nr == nr::EXECVE || nr == nr::EXECVEAT {
        let cfg = config();
        let args = syscall_args(ctx).ok_or(1i64)?;
        on_execve_enter(&cfg, bpf_get_current_pid_tgid(), nr, &args);
        return Ok(());
    }
    if !is_tracked(nr) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let cfg = config();
    if !in_scope((pid_tgid >> 32) as u32, &cfg) {
        return Ok(());
    }
    let args = syscall_args(ctx).ok_or(1i64)?;
    if is_read(nr) {
        // Only reads of credential fds are captured: decide now, keep no state otherwise.
        let key = (pid_tgid & 0xffff_ffff_0000_0000) | (args[0] & 0xffff_ffff);
        if unsafe { WATCH_FD.get(&key) }.is_none() {
            return Ok(());
        }
    }
    if is_write(nr) {
        // Outbound bytes are captured at entry, straight from the caller's buffer: no
        // state to keep until exit, so a watched write costs one program run.
        on_write_enter(ctx, &cfg, nr, &args);
        return Ok(());
    }
    let saved = Inflight { nr, args, flags: 0 };
    if INFLIGHT.insert(&pid_tgid, &saved, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
    Ok(())
}

#[inline(always)]
fn is_read(nr: u64) -> bool {
    matches!(nr, nr::READ | nr::PREAD64 | nr::READV | nr::PREADV | nr::PREADV2)
}

#[inline(always)]
fn is_write(nr: u64) -> bool {
    matches!(nr, nr::WRITE | nr::PWRITE64 | nr::SENDTO | nr::WRITEV | nr::PWRITEV | nr::PWRITEV2 | nr::SENDMSG | nr::SENDMMSG)
}

/// Sum of the lengths of (at most [`MAX_IOV`]) iovecs.
#[inline(always)]
fn iov_total(iov: u64, cnt: u64) -> u64 {
    let mut total: u64 = 0;
    for i in 0..MAX_IOV as u64 {
        if i >= cnt {
            break;
        }
        match unsafe { bpf_probe_read_user((iov + i * 16) as *const Iovec) } {
            Ok(v) => total = total.saturating_add(v.len),
            Err(_) => break,
        }
    }
    total
}

/// Write-family entry: the buffer holds exactly what the caller asks the kernel to send.
#[inline(always)]
fn on_write_enter(ctx: &RawTracePointContext, cfg: &KConfig, nr: u64, a: &[u64; 6]) {
    match nr {
        nr::WRITE | nr::PWRITE64 | nr::SENDTO => {
            let count = a[2];
            if count == 0 {
                return;
            }
            if nr == nr::SENDTO {
                emit_sendto_addr(cfg, nr, a[0], a[4], a[5]);
            }
            let mut w = walk(Op::Write, nr, a[0], MODE_PLAIN, count as i64);
            w.call_id = unsafe { bpf_ktime_get_ns() };
            w.cap = capture_cap(cfg, count);
            w.seg_base = a[1];
            w.seg_len = count;
            start_walk(ctx, w);
        }
        nr::WRITEV | nr::PWRITEV | nr::PWRITEV2 | nr::SENDMSG => {
            let (iov, cnt) = if nr == nr::SENDMSG {
                let msg: MsgHdr = match unsafe { bpf_probe_read_user(a[1] as *const MsgHdr) } {
                    Ok(m) => m,
                    Err(_) => return,
                };
                emit_sendto_addr(cfg, nr, a[0], msg.name, msg.namelen as u64);
                (msg.iov, msg.iovlen)
            } else {
                (a[1], a[2])
            };
            let total = iov_total(iov, cnt);
            if total == 0 {
                return;
            }
            let mut w = walk(Op::Write, nr, a[0], MODE_IOV, total as i64);
            w.call_id = unsafe { bpf_ktime_get_ns() };
            w.cap = capture_cap(cfg, total);
            w.iov = iov;
            w.iov_cnt = cnt;
            start_walk(ctx, w);
        }
        nr::SENDMMSG => {
            let mut w = walk(Op::Write, nr, a[0], MODE_MMSG, 0);
            w.msgvec = a[1];
            w.msg_cnt = a[2];
            if load_mmsg(cfg, &mut w) {
                start_walk(ctx, w);
            }
        }
        _ => {}
    }
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_exit(&ctx);
    0
}

fn try_sys_exit(ctx: &RawTracePointContext) -> Result<(), i64> {
    // The syscall number at exit is the saved `orig_ax`; we trust the in-flight entry instead,
    // which only exists for tracked syscalls of in-scope tasks.
    let pid_tgid = bpf_get_current_pid_tgid();
    let saved = match unsafe { INFLIGHT.get(&pid_tgid) } {
        Some(s) => *s,
        None => return Ok(()),
    };
    let _ = INFLIGHT.remove(&pid_tgid);
    let ret: i64 = ctx.arg(1);
    let cfg = config();
    let tgid = (pid_tgid >> 32) as u32;
    let a = saved.args;
    match saved.nr {
        nr::READ | nr::PREAD64 | nr::READV | nr::PREADV | nr::PREADV2 => {
            if ret > 0 {
                {
                    let plain = saved.nr == nr::READ || saved.nr == nr::PREAD64;
                    let mut w = walk(Op::Read, saved.nr, a[0], if plain { MODE_PLAIN } else { MODE_IOV }, ret);
                    w.call_id = unsafe { bpf_ktime_get_ns() };
                    w.cap = capture_cap(&cfg, ret as u64);
                    if plain {
                        w.seg_base = a[1];
                        w.seg_len = ret as u64;
                    } else {
                        w.iov = a[1];
                        w.iov_cnt = a[2];
                    }
                    start_walk(ctx, w);
                }
            }
        }
        nr::OPEN | nr::OPENAT | nr::OPENAT2 => {
            if ret >= 0 {
                on_open_exit(&cfg, tgid, saved.nr, &a, ret);
            }
        }
        nr::CLOSE => {
            if ret == 0 {
                let key = ((tgid as u64) << 32) | (a[0] & 0xffff_ffff);
                let _ = WATCH_FD.remove(&key);
                if let Some(ev) = meta_scratch(Op::Close) {
                    ev.fd = a[0] as i32;
                    ev.syscall = saved.nr as u32;
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::DUP | nr::DUP2 | nr::DUP3 | nr::FCNTL => {
            if saved.nr == nr::FCNTL && a[1] != F_DUPFD && a[1] != F_DUPFD_CLOEXEC {
                return Ok(());
            }
            if ret >= 0 {
                let old = ((tgid as u64) << 32) | (a[0] & 0xffff_ffff);
                let new = ((tgid as u64) << 32) | (ret as u64 & 0xffff_ffff);
                if unsafe { WATCH_FD.get(&old) }.is_some() {
                    let _ = WATCH_FD.insert(&new, &1, 0);
                } else {
                    let _ = WATCH_FD.remove(&new);
                }
                if let Some(ev) = meta_scratch(Op::Dup) {
                    ev.fd = a[0] as i32;
                    ev.fd2 = ret as i32;
                    ev.syscall = saved.nr as u32;
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::SOCKET => {
            if ret >= 0 {
                if let Some(ev) = meta_scratch(Op::Socket) {
                    ev.fd = ret as i32;
                    ev.arg0 = a[0];
                    ev.arg1 = a[1];
                    ev.syscall = saved.nr as u32;
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::CONNECT => {
            if let Some(ev) = meta_scratch(Op::Connect) {
                ev.fd = a[0] as i32;
                ev.ret = ret;
                ev.syscall = saved.nr as u32;
                read_addr(ev, a[1], a[2]);
                submit_meta(ev, &cfg);
            }
        }
        nr::ACCEPT | nr::ACCEPT4 => {
            if ret >= 0 {
                if let Some(ev) = meta_scratch(Op::Accept) {
                    ev.fd = a[0] as i32;
                    ev.fd2 = ret as i32;
                    ev.syscall = saved.nr as u32;
                    if a[1] != 0 && a[2] != 0 {
                        let len: u32 = unsafe { bpf_probe_read_user(a[2] as *const u32) }.unwrap_or(0);
                        read_addr(ev, a[1], len as u64);
                    }
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::PIPE | nr::PIPE2 | nr::SOCKETPAIR => {
            if ret == 0 {
                let ufds = if saved.nr == nr::SOCKETPAIR { a[3] } else { a[0] };
                let fds: [i32; 2] = unsafe { bpf_probe_read_user(ufds as *const [i32; 2]) }.unwrap_or([-1, -1]);
                if let Some(ev) = meta_scratch(Op::Pipe) {
                    ev.fd = fds[0];
                    ev.fd2 = fds[1];
                    ev.syscall = saved.nr as u32;
                    if saved.nr == nr::SOCKETPAIR {
                        ev.arg0 = a[0];
                        ev.arg1 = a[1];
                    }
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::EXECVE | nr::EXECVEAT => {
            if ret == 0 && saved.flags & INFLIGHT_EXE_MATCH != 0 {
                if WATCH_TGID.insert(&tgid, &SCOPE_PID, 0).is_err() {
                    count(counter::WATCH_FULL);
                }
            }
            if let Some(ev) = meta_scratch(Op::ExecDone) {
                ev.ret = ret;
                ev.syscall = saved.nr as u32;
                ev.arg0 = saved.flags;
                ev.arg1 = parent_tgid(&cfg) as u64;
                submit_meta(ev, &cfg);
            }
        }
        _ => {}
    }
    Ok(())
}

#[inline(always)]
fn on_open_exit(cfg: &KConfig, tgid: u32, nr: u64, a: &[u64; 6], fd: i64) {
    let (upath, flags) = match nr {
        nr::OPEN => (a[0], a[1]),
        nr::OPENAT => (a[1], a[2]),
        _ => {
            // openat2(dfd, path, struct open_how *how, size): how->flags is the first u64.
            let f: u64 = unsafe { bpf_probe_read_user(a[2] as *const u64) }.unwrap_or(0);
            (a[1], f)
        }
    };
    let Some(ev) = data_scratch(Op::Open) else { return };
    ev.fd = fd as i32;
    ev.syscall = nr as u32;
    ev.arg = flags;
    let n = match unsafe { bpf_probe_read_user_str_bytes(upath as *const u8, &mut ev.data) } {
        Ok(s) => s.len(),
        Err(_) => 0,
    };
    let n = if n > CHUNK { CHUNK } else { n };
    ev.len = n as u32;
    ev.total = n as u64;
    ev.flags = F_LAST;
    if flags & O_ACCMODE != O_WRONLY {
        let key = basename_hash(&ev.data, n);
        if unsafe { CRED_NAMES.get(&key) }.is_some() || is_run_secret(&ev.data, n) {
            let k = ((tgid as u64) << 32) | (fd as u64 & 0xffff_ffff);
            if WATCH_FD.insert(&k, &1, 0).is_ok() {
                ev.index = 1;
            }
        }
    }
    submit_data(ev, cfg);
}

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &TracePointContext) -> Result<(), i64> {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid, &cfg) {
        return Ok(());
    }
    let child: i32 = unsafe { ctx.read_at(cfg.fork_child_pid_off as usize) }.map_err(|e| e as i64)?;
    let child = child as u32;
    if unsafe { WATCH_TGID.get(&tgid) }.is_some() && WATCH_TGID.insert(&child, &SCOPE_PID, 0).is_err() {
        count(counter::WATCH_FULL);
    }
    if let Some(ev) = meta_scratch(Op::Fork) {
        ev.fd2 = child as i32;
        submit_meta(ev, &cfg);
    }
    Ok(())
}

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let pid = pid_tgid as u32;
    let _ = INFLIGHT.remove(&pid_tgid);
    if pid != tgid {
        // A thread: forget the tid in case a clone put it in the watch map.
        let _ = WATCH_TGID.remove(&pid);
        return 0;
    }
    let cfg = config();
    if in_scope(tgid, &cfg) {
        if let Some(ev) = meta_scratch(Op::Exit) {
            submit_meta(ev, &cfg);
        }
    }
    let _ = WATCH_TGID.remove(&tgid);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
