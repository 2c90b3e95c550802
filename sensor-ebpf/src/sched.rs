//! Process lifecycle from the `sched` tracepoints (always attached): forks extend the
//! process scope to child processes (threads share their process's tgid and are skipped),
//! exits end it.

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

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let _ = try_fork(&ctx);
    0
}

#[inline(always)]
pub fn try_fork(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid, cfg) {
        return Ok(());
    }
    let child: u64 = ctx.arg(1);
    let (pid, ctgid) = (
        kread_u32(child, cfg.off.task_pid),
        kread_u32(child, cfg.off.task_tgid),
    );
    if pid == 0 || pid != ctgid {
        return Ok(()); // a new thread, or offsets unknown
    }
    if tgid_watched(tgid) {
        watch_set(pid);
    }
    // The child's copies of the standard streams keep their no-capture entries (others are
    // copied by the daemon from its fd table).
    for fd in 0..3u64 {
        if let Some(v) = unsafe { NO_CAPTURE.get(&fd_key(tgid, fd)) } {
            let v = *v;
            let _ = NO_CAPTURE.insert(&fd_key(pid, fd), &v, 0);
        }
    }
    emit_meta(cfg, Op::Fork, |ev| {
        ev.fd2 = pid as i32;
    });
    Ok(())
}

/// A task exits; the process ends with its last thread (`group_dead`), which need not be
/// the thread-group leader: a leader calling `pthread_exit` leaves its process watched.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let pid = pid_tgid as u32;
    let cfg = config();
    if !in_scope(tgid, cfg) {
        return 0;
    }
    let _ = INFLIGHT.remove(&pid_tgid);
    drop_deferred(pid_tgid);
    let off = cfg.off.exit_group_dead;
    let group_dead = if off != 0 {
        unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(1) != 0
    } else {
        pid == tgid
    };
    if !group_dead {
        return 0;
    }
    emit_meta(cfg, Op::Exit, |_| {});
    watch_clear(tgid);
    let _ = HELD.remove(&tgid);
    0
}
