//! Payload capture: a walk over a call's buffer, iovecs or messages, emitted in
//! [`CHUNK`]-byte records by `emit_data`, which tail-calls itself once per segment.

#![allow(unused_imports)]
use crate::common::*;
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
/// A plain buffer: one segment.
pub const MODE_PLAIN: u32 = 0;
/// An iovec array (writev, readv, sendmsg).
pub const MODE_IOV: u32 = 1;
/// An mmsghdr array (sendmmsg): each message is its own call.
pub const MODE_MMSG: u32 = 2;

/// Progress of one payload capture across tail calls of `emit_data` (one per segment).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Walk {
    pub op: u32,
    pub syscall: u32,
    pub fd: i32,
    pub mode: u32,
    pub call_id: u64,
    pub total: u64,
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
/// Tail-call targets: index 0 is `emit_data`.
#[map]
pub static JUMP: ProgramArray = ProgramArray::with_max_entries(1, 0);

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

/// Starts a capture in `WALK` and tail-calls the segment walker.
#[inline(always)]
pub fn start_walk(ctx: &RawTracePointContext, w: Walk) {
    let Some(p) = WALK.get_ptr_mut(0) else { return };
    unsafe { *p = w };
    unsafe { JUMP.tail_call(ctx, 0) };
    // Only reached if the tail call failed (program array not populated).
    count(counter::STEPS_EXHAUSTED);
}

#[inline(always)]
pub fn walk(op: Op, nr: u64, fd: u64, mode: u32, total: i64) -> Walk {
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
pub fn emit_sendto_addr(cfg: &KConfig, nr: u64, fd: u64, uaddr: u64, len: u64) {
    if uaddr == 0 || len == 0 {
        return;
    }
    let Some(ev) = meta_scratch(Op::SendTo) else {
        return;
    };
    ev.fd = fd as i32;
    ev.syscall = nr as u32;
    read_addr(ev, uaddr, len);
    submit_meta(ev, cfg);
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
        w.syscall as u64,
        w.fd as u64,
        msg.name,
        msg.namelen as u64,
    );
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
pub fn close_call(ev: &mut DataEvent, cfg: &KConfig, w: &Walk) {
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
pub fn try_emit_data(ctx: &RawTracePointContext) {
    let Some(wp) = WALK.get_ptr_mut(0) else {
        return;
    };
    let w = unsafe { &mut *wp };
    let cfg = config();
    let op = if w.op == Op::Read as u32 {
        Op::Read
    } else {
        Op::Write
    };
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
        if unsafe { bpf_probe_read_user_buf((w.seg_base + off) as *const u8, &mut ev.data[..n]) }
            .is_ok()
        {
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
            if let Ok(v) = unsafe { bpf_probe_read_user((w.iov + w.iov_idx * 16) as *const Iovec) }
            {
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
