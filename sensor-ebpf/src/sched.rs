//! Process lifecycle from the `sched` tracepoints: forks extend the process scope to
//! children, exits end it.

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

#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

pub fn try_fork(ctx: &TracePointContext) -> Result<(), i64> {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid, &cfg) {
        return Ok(());
    }
    let child: i32 =
        unsafe { ctx.read_at(cfg.fork_child_pid_off as usize) }.map_err(|e| e as i64)?;
    let child = child as u32;
    if unsafe { WATCH_TGID.get(&tgid) }.is_some()
        && WATCH_TGID.insert(&child, &SCOPE_PID, 0).is_err()
    {
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
