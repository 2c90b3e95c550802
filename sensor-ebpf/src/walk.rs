//! Payload capture. A plain buffer is sent inline by the program that saw the call; iovec
//! arrays and `sendmmsg` vectors are walked segment by segment by `walk_*`, which
//! tail-calls itself once per segment. Each record is reserved in the ring and the user
//! bytes are read straight into it; the record header is prepared once per call.

#![allow(unused_imports)]
use crate::common::*;
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_buf,
        bpf_probe_read_user_str_bytes,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use sensor_common::*;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Iovec {
    pub base: u64,
    pub len: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct MsgHdr {
    pub name: u64,
    pub namelen: u32,
    pub _pad: u32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
    pub flags: u32,
    pub _pad2: u32,
}

/// sizeof(struct mmsghdr): a msghdr and the `msg_len` the kernel filled in.
pub const MMSGHDR_LEN: u64 = 64;
/// One buffer larger than a record.
pub const MODE_PLAIN: u32 = 0;
/// An iovec array (writev, readv, sendmsg).
pub const MODE_IOV: u32 = 1;
/// An mmsghdr array (sendmmsg): each message is its own call.
pub const MODE_MMSG: u32 = 2;

/// Progress of one payload capture across tail calls of the walker (one per segment).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Walk {
    /// Header of the call's records (op, process, call id, fd, syscall, total).
    pub head: DataHead,
    pub mode: u32,
    pub _pad: u32,
    pub cap: u64,
    pub done: u64,
    pub seg_base: u64,
    pub seg_len: u64,
    pub iov: u64,
    pub iov_idx: u64,
    pub iov_cnt: u64,
    pub msgvec: u64,
    pub msg_idx: u64,
    pub msg_cnt: u64,
    pub hops: u64,
}

#[map]
pub static WALK: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);
/// Tail-call target of programs on `sys_enter`: `walk_enter`.
#[map]
pub static JUMP_ENTER: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[inline(always)]
pub fn capture_cap(cfg: &KConfig, total: u64) -> u64 {
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

/// Sends `take` bytes at `base` (the next part of a call already `done` bytes in) as records
/// of at most [`CHUNK`] bytes. The record reaching `cap` carries `F_LAST`. Only the last,
/// partial record picks a size class (one branch per segment keeps the verifier linear).
#[inline(always)]
pub fn emit_segment(cfg: &KConfig, head: &mut DataHead, base: u64, take: u64, done: u64, cap: u64) {
    let full = take / CHUNK as u64;
    let rest = take % CHUNK as u64;
    for k in 0..(MAX_CAPTURE as u64 / CHUNK as u64) {
        if k >= full {
            break;
        }
        let off = k * CHUNK as u64;
        set_position(head, done + off, CHUNK as u64, cap);
        emit_chunk(cfg, head, base + off);
    }
    if rest > 0 {
        let off = full * CHUNK as u64;
        set_position(head, done + off, rest, cap);
        emit_bytes(cfg, head, base + off, rest as usize, false);
    }
}

/// Offset and flags of a record of `n` bytes at `at` within a call captured up to `cap`.
#[inline(always)]
fn set_position(head: &mut DataHead, at: u64, n: u64, cap: u64) {
    head.offset = at as u32;
    head.flags = 0;
    if at + n >= cap {
        head.flags = F_LAST;
        if head.total > cap {
            head.flags |= F_TRUNCATED;
        }
    }
}

/// A single-buffer call (write, pwrite64, sendto, read, pread64): one record inline when it
/// fits (the common case: no tail call), else the walker.
#[inline(always)]
pub fn emit_plain<C: EbpfContext>(
    ctx: &C,
    jump: &ProgramArray,
    cfg: &KConfig,
    op: Op,
    nr: u64,
    fd: u64,
    base: u64,
    total: u64,
) {
    let mut head = data_head(op, nr, fd as i32);
    head.total = total;
    let cap = capture_cap(cfg, total);
    if cap <= CHUNK as u64 {
        head.flags = F_LAST;
        if total > cap {
            head.flags |= F_TRUNCATED;
        }
        if emit_bytes_or_fault(cfg, &head, base, cap as usize) == Emit::Fault {
            // Not resident yet (an mmap'ed file): the write itself faults it in, so read it
            // again at this thread's next tracked syscall.
            defer_write(&head, base, cap);
        }
        return;
    }
    let mut w = walk(head, MODE_PLAIN);
    w.cap = cap;
    w.seg_base = base;
    w.seg_len = cap;
    start_walk(ctx, jump, w);
}

/// A walk of the given mode; the walker's first step sizes iovec calls and loads the first
/// message of a sendmmsg vector.
#[inline(always)]
pub fn walk(head: DataHead, mode: u32) -> Walk {
    Walk {
        head,
        mode,
        _pad: 0,
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

/// A walk over an iovec array (sized by the walker; reads pass the bytes moved as `total`).
#[inline(always)]
pub fn iov_walk(op: Op, nr: u64, fd: u64, iov: u64, cnt: u64, total: u64) -> Walk {
    let mut head = data_head(op, nr, fd as i32);
    head.total = total;
    let mut w = walk(head, MODE_IOV);
    w.iov = iov;
    w.iov_cnt = cnt;
    w
}

/// Starts a walk in `WALK` and tail-calls the walker of the calling hook.
#[inline(always)]
pub fn start_walk<C: EbpfContext>(ctx: &C, jump: &ProgramArray, w: Walk) {
    let Some(p) = WALK.get_ptr_mut(0) else { return };
    unsafe { *p = w };
    unsafe { jump.tail_call(ctx, 0) };
    // Only reached if the tail call failed (program array not populated).
    count(counter::STEPS_EXHAUSTED);
}

#[inline(always)]
pub fn emit_sendto_addr(cfg: &KConfig, nr: u64, fd: u64, uaddr: u64, len: u64) {
    if uaddr == 0 || len == 0 {
        return;
    }
    crate::dns::mark_dns_sendto(cfg, fd, uaddr, len);
    emit_meta(cfg, Op::SendTo, |ev| {
        ev.fd = fd as i32;
        ev.syscall = nr as u32;
        read_addr(ev, uaddr, len);
    });
}

/// Loads message `w.msg_idx` of a sendmmsg vector into the walk. False if unreadable.
#[inline(always)]
pub fn load_mmsg(cfg: &KConfig, w: &mut Walk) -> bool {
    let m = w.msgvec + w.msg_idx * MMSGHDR_LEN;
    let msg: MsgHdr = match unsafe { bpf_probe_read_user(m as *const MsgHdr) } {
        Ok(v) => v,
        Err(_) => return false,
    };
    let total = iov_total(msg.iov, msg.iovlen);
    emit_sendto_addr(
        cfg,
        w.head.syscall as u64,
        w.head.fd as u64,
        msg.name,
        msg.namelen as u64,
    );
    let ts = unsafe { bpf_ktime_get_ns() };
    w.head.hdr.ts_ns = ts;
    w.head.call_id = ts;
    w.head.total = total;
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
pub fn close_call(cfg: &KConfig, w: &mut Walk) {
    if w.done >= w.cap && w.done > 0 {
        return; // the last data record already carried F_LAST
    }
    w.head.offset = w.done as u32;
    w.head.flags = F_LAST;
    if w.head.total > w.done {
        w.head.flags |= F_TRUNCATED;
    }
    emit_bytes(cfg, &w.head, 0, 0, false);
}

/// Walker body: emits the current segment, then moves to the next iovec / message and
/// tail-calls itself (through `jump`), at most 32 times per call.
#[inline(always)]
pub fn walk_step<C: EbpfContext>(ctx: &C, jump: &ProgramArray) {
    let Some(wp) = WALK.get_ptr_mut(0) else {
        return;
    };
    let w = unsafe { &mut *wp };
    let cfg = config();
    if w.hops == 0 {
        // First step: size an iovec call (a write's total is what its iovecs hold; a read's
        // is its return value), or load the first message of a sendmmsg vector.
        if w.mode == MODE_IOV {
            if w.head.total == 0 {
                w.head.total = iov_total(w.iov, w.iov_cnt);
            }
            w.cap = capture_cap(cfg, w.head.total);
        } else if w.mode == MODE_MMSG && !load_mmsg(cfg, w) {
            return;
        }
    }
    let mut take = w.seg_len;
    if w.done >= w.cap {
        take = 0;
    } else if take > w.cap - w.done {
        take = w.cap - w.done;
    }
    w.head.index = w.iov_idx as u32;
    let (done, cap) = (w.done, w.cap);
    emit_segment(cfg, &mut w.head, w.seg_base, take, done, cap);
    w.done += take;
    w.seg_len = 0;

    if w.hops >= 32 {
        count(counter::STEPS_EXHAUSTED);
        close_call(cfg, w);
        return;
    }
    w.hops += 1;
    if w.done < w.cap && w.iov_idx < w.iov_cnt && w.iov_idx < MAX_IOV as u64 {
        if let Ok(v) = unsafe { bpf_probe_read_user((w.iov + w.iov_idx * 16) as *const Iovec) } {
            w.seg_base = v.base;
            w.seg_len = v.len;
            w.iov_idx += 1;
            unsafe { jump.tail_call(ctx, 0) };
        }
    }
    close_call(cfg, w);
    if w.mode == MODE_MMSG {
        w.msg_idx += 1;
        if w.msg_idx < w.msg_cnt && w.msg_idx < MAX_MMSG as u64 && load_mmsg(cfg, w) {
            unsafe { jump.tail_call(ctx, 0) };
        }
    }
}

/// Walker for calls seen at `sys_enter` (writes).
#[btf_tracepoint(function = "sys_enter")]
pub fn walk_enter(ctx: BtfTracePointContext) -> i32 {
    walk_step(&ctx, &JUMP_ENTER);
    0
}

/// Sum of the lengths of (at most [`MAX_IOV`]) iovecs.
#[inline(always)]
pub fn iov_total(iov: u64, cnt: u64) -> u64 {
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
