//! Exec capture: filename, argv and envp read at `sys_enter_execve` (before the old image
//! is gone), exe-name matching by basename hash, and the parent's tgid from BTF offsets.

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

#[inline(always)]
pub fn basename_hash(buf: &[u8; CHUNK], len: usize) -> u64 {
    let mut h = FNV_OFFSET;
    for i in 0..PATH_SCAN {
        if i >= len {
            break;
        }
        let c = buf[i];
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

pub const RUN_SECRETS: &[u8; 13] = b"/run/secrets/";

#[inline(always)]
pub fn is_run_secret(buf: &[u8; CHUNK], len: usize) -> bool {
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
pub fn emit_exec_string(
    ev: &mut DataEvent,
    cfg: &KConfig,
    ustr: u64,
    kind: u64,
    index: u32,
) -> usize {
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
pub fn emit_exec_vector(ev: &mut DataEvent, cfg: &KConfig, uvec: u64, kind: u64, max: u32) {
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
pub fn on_execve_enter(cfg: &KConfig, pid_tgid: u64, nr: u64, args: &[u64; 6]) {
    let tgid = (pid_tgid >> 32) as u32;
    if tgid == cfg.self_tgid {
        return;
    }
    let (ufile, uargv, uenvp) = if nr == nr::EXECVE {
        (args[0], args[1], args[2])
    } else {
        (args[1], args[2], args[3])
    };
    let Some(ev) = data_scratch(Op::ExecArg) else {
        return;
    };
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
    let saved = Inflight {
        nr,
        args: *args,
        flags,
    };
    if INFLIGHT.insert(&pid_tgid, &saved, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
    emit_exec_string(ev, cfg, ufile, EXEC_FILENAME, 0);
    emit_exec_vector(ev, cfg, uargv, EXEC_ARGV, MAX_ARGV);
    emit_exec_vector(ev, cfg, uenvp, EXEC_ENVP, MAX_ENVP);
}

/// tgid of the current task's parent, read through offsets the daemon took from BTF.
#[inline(always)]
pub fn parent_tgid(cfg: &KConfig) -> u32 {
    if cfg.task_real_parent_off == 0 || cfg.task_tgid_off == 0 {
        return 0;
    }
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task() } as *const u8;
    let parent: u64 = match unsafe {
        bpf_probe_read_kernel(task.add(cfg.task_real_parent_off as usize) as *const u64)
    } {
        Ok(p) => p,
        Err(_) => return 0,
    };
    unsafe {
        bpf_probe_read_kernel((parent as *const u8).add(cfg.task_tgid_off as usize) as *const u32)
    }
    .unwrap_or(0)
}
