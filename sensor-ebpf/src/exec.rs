//! Exec capture at `sched_process_exec` (always attached, even when the syscall programs
//! are not): exe-name matching on the full filename (up to `PATH_MAX`), the new image's
//! argv and environment blocks read whole from its memory (`mm->arg_start..env_end`, so no
//! variable is lost to a count limit), the parent's tgid, and — when the syscall programs
//! are detached — the request to attach them, with the new process held (SIGSTOP) before
//! its first instruction until they are.

#![allow(unused_imports)]
use crate::common::*;
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user, bpf_probe_read_user_buf, bpf_probe_read_user_str_bytes,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use sensor_common::*;

const SIGSTOP: u32 = 19;

/// Longest basename (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// FNV-1a hash of the basename of the path in `buf[..len]` (any length up to [`CHUNK`]).
/// A basename is at most `NAME_MAX` bytes, so hashing the last `NAME_MAX + 1` bytes and
/// restarting at each `/` gives the basename's hash for a path of any length, in one short
/// loop whose iterations the verifier can prune.
#[inline(always)]
pub fn basename_hash(buf: &[u8; CHUNK], len: usize) -> u64 {
    let len = if len > CHUNK { CHUNK } else { len };
    let start = len.saturating_sub(NAME_MAX + 1);
    let mut h = FNV_OFFSET;
    for i in 0..NAME_MAX + 1 {
        let idx = start + i;
        if idx >= len {
            break;
        }
        let c = buf[masked(idx)];
        if c == 0 {
            break;
        }
        h = if c == b'/' {
            FNV_OFFSET
        } else {
            fnv_step(h, c)
        };
    }
    h
}

/// `i` bounded to a [`CHUNK`] buffer, behind an optimisation barrier so the compiler keeps
/// the mask the verifier needs (it would otherwise turn the loop into a pointer walk).
#[inline(always)]
pub fn masked(i: usize) -> usize {
    core::hint::black_box(i) & (CHUNK - 1)
}

/// Per-CPU buffer for the exec filename.
#[map]
pub static EXEC_PATH: PerCpuArray<[u8; CHUNK]> = PerCpuArray::with_max_entries(1, 0);

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    let _ = try_exec(&ctx);
    0
}

#[inline(always)]
fn try_exec(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == cfg.self_tgid {
        return Ok(());
    }
    let bprm: u64 = ctx.arg(2);
    if cfg.off.binprm_filename == 0 || cfg.off.task_mm == 0 {
        return Ok(());
    }
    let fname = kread_u64(bprm, cfg.off.binprm_filename);
    let buf = EXEC_PATH.get_ptr_mut(0).ok_or(1i64)?;
    let buf = unsafe { &mut *buf };
    let n = match unsafe { bpf_probe_read_kernel_str_bytes(fname as *const u8, buf) } {
        Ok(s) => s.len(),
        Err(_) => 0,
    };
    let mut flags = 0u64;
    if !in_scope(tgid, cfg) {
        if unsafe { WATCH_EXE.get(&basename_hash(buf, n)) }.is_none() {
            return Ok(());
        }
        flags |= EXEC_F_EXE_MATCH;
        watch_set(tgid);
        // Order the scope update before reading `attached` (the daemon clears `attached`,
        // fences, then looks for watched tgids before it detaches).
        fence();
        if config().attached == 0 && cfg.hold != 0 && !has_ctty(cfg) {
            // Stopped on the way back to user space: not one instruction of the new image
            // runs before the daemon has attached the syscall programs and sent SIGCONT.
            let now = unsafe { bpf_ktime_get_ns() };
            if HELD.insert(&tgid, &now, 0).is_ok()
                && unsafe { aya_ebpf::helpers::generated::bpf_send_signal(SIGSTOP) } == 0
            {
                flags |= EXEC_F_HELD;
                count(counter::HELD);
            } else {
                let _ = HELD.remove(&tgid);
            }
        }
        request_attach(tgid, flags);
    }
    let mut head = data_head(Op::ExecArg, 0, -1);
    head.arg = EXEC_FILENAME;
    head.flags = F_LAST;
    head.total = n as u64;
    emit_bytes(cfg, &head, buf.as_ptr() as u64, n, true);

    // The block is sent by `exec_block`, verified on its own and tail-calling itself.
    let st = EXEC_STATE.get_ptr_mut(0).ok_or(1i64)?;
    let mm = kread_u64(current_task(), cfg.off.task_mm);
    let o = &cfg.off;
    let start = kread_u64(mm, o.mm_arg_start);
    let env = kread_u64(mm, o.mm_env_start);
    let end = kread_u64(mm, o.mm_env_end);
    let mut head = data_head(Op::ExecArg, 0, -1);
    head.arg = EXEC_BLOCK;
    let total = if end > start { end - start } else { 0 };
    head.total = total;
    head.index = if env > start && env <= end {
        (env - start) as u32
    } else {
        total as u32
    };
    let max = MAX_EXEC_BLOCK as u64;
    unsafe {
        *st = ExecState {
            head,
            flags,
            start,
            take: if total > max { max } else { total },
            off: 0,
        };
    }
    unsafe { JUMP_EXEC.tail_call(ctx, 0) };
    Ok(())
}

/// Tells the daemon (control ring, always woken) that a process entered the scope at exec.
#[inline(always)]
fn request_attach(tgid: u32, flags: u64) {
    match CONTROL.reserve::<ControlEvent>(0) {
        Some(mut e) => {
            unsafe {
                (*e.as_mut_ptr()).tgid = tgid;
                (*e.as_mut_ptr()).flags = flags as u32;
            }
            e.submit(BPF_RB_FORCE_WAKEUP);
        }
        None => count(counter::CONTROL_FULL),
    }
}

/// Does the current process have a controlling terminal? A stop there would be seen by the
/// shell's job control ("Stopped"), so such processes are never held.
#[inline(always)]
fn has_ctty(cfg: &KConfig) -> bool {
    let o = &cfg.off;
    if o.task_signal == 0 || o.signal_tty == 0 {
        return true; // unknown: do not hold
    }
    let signal = kread_u64(current_task(), o.task_signal);
    signal == 0 || kread_u64(signal, o.signal_tty) != 0
}

/// Progress of an exec report across `exec_block` runs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecState {
    pub head: DataHead,
    /// `EXEC_F_*` of the exec.
    pub flags: u64,
    /// User address of the argument + environment block.
    pub start: u64,
    /// Bytes of it to send.
    pub take: u64,
    /// Bytes sent so far.
    pub off: u64,
}

#[map]
pub static EXEC_STATE: PerCpuArray<ExecState> = PerCpuArray::with_max_entries(1, 0);
/// Tail-call target of `sched_process_exec` and of itself: `exec_block`.
#[map]
pub static JUMP_EXEC: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Second half of the exec report: the argument + environment block (a bounded number of
/// chunks per run, then a tail call to itself), then no-capture entries for standard
/// streams on listed devices and the closing `ExecDone`.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn exec_block(ctx: BtfTracePointContext) -> i32 {
    let cfg = config();
    let Some(st) = EXEC_STATE.get_ptr_mut(0) else {
        return 0;
    };
    let st = unsafe { &mut *st };
    let last_flags = if st.head.total > st.take {
        F_LAST | F_TRUNCATED
    } else {
        F_LAST
    };
    if st.take == 0 {
        st.head.flags = last_flags;
        emit_chunk_quiet(&st.head, 0, 0);
    }
    for _ in 0..EXEC_CHUNKS_PER_RUN {
        if st.off >= st.take {
            break;
        }
        let left = st.take - st.off;
        let n = if left > CHUNK as u64 {
            CHUNK as u64
        } else {
            left
        };
        st.head.offset = st.off as u32;
        st.head.flags = if left <= CHUNK as u64 { last_flags } else { 0 };
        emit_chunk_quiet(&st.head, st.start + st.off, n as u32);
        st.off += n;
    }
    if st.off < st.take {
        unsafe { JUMP_EXEC.tail_call(&ctx, 0) };
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    mark_std_devices(cfg, tgid);
    let parent = parent_tgid(cfg);
    let flags = st.flags;
    emit_meta(cfg, Op::ExecDone, |ev| {
        ev.syscall = nr::EXECVE as u32;
        ev.arg0 = flags;
        ev.arg1 = parent as u64;
    });
    0
}

/// One full-size record holding `n` (≤ [`CHUNK`]) bytes of user memory, submitted without a
/// wakeup (the exec's closing record wakes the reader).
#[inline(always)]
fn emit_chunk_quiet(head: &DataHead, src: u64, n: u32) {
    let Some(mut e) = EVENTS.reserve::<DataEvent>(0) else {
        count(counter::RINGBUF_FULL);
        return;
    };
    let p = e.as_mut_ptr();
    let n = n & (2 * CHUNK as u32 - 1);
    let n = if n > CHUNK as u32 { CHUNK as u32 } else { n };
    unsafe {
        let h = p as *mut DataHead;
        *h = *head;
        let dst = (*p).data.as_mut_ptr() as *mut core::ffi::c_void;
        let r = aya_ebpf::helpers::generated::bpf_probe_read_user(dst, n, src as _);
        (*h).len = if r == 0 { n } else { 0 };
    }
    e.submit(BPF_RB_NO_WAKEUP);
}

/// Standard streams redirected to a listed device (`cmd >/dev/null 2>&1`) get no-capture
/// entries before the first write.
#[inline(always)]
fn mark_std_devices(cfg: &KConfig, tgid: u32) {
    for fd in 0..3u64 {
        if let Some(f) = fd_facts(cfg, fd) {
            if is_null_device(&f) {
                set_no_capture(tgid, fd, &f);
            }
        }
    }
}

/// tgid of the current task's parent, read through offsets the daemon took from BTF.
#[inline(always)]
pub fn parent_tgid(cfg: &KConfig) -> u32 {
    if cfg.off.task_real_parent == 0 || cfg.off.task_tgid == 0 {
        return 0;
    }
    let parent = kread_u64(current_task(), cfg.off.task_real_parent);
    kread_u32(parent, cfg.off.task_tgid)
}
