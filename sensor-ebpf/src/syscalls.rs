//! The two raw syscall tracepoints: `sys_enter` decides scope and captures writes at entry;
//! `sys_exit` completes the calls that need their return value (opens, reads, fds).

#![allow(unused_imports)]
use crate::common::*;
use crate::exec::*;
use crate::walk::*;
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
pub fn is_tracked(nr: u64) -> bool {
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
pub struct PtRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub bp: u64,
    pub bx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub ax: u64,
    pub cx: u64,
    pub dx: u64,
    pub si: u64,
    pub di: u64,
}

#[inline(always)]
pub fn syscall_args(ctx: &RawTracePointContext) -> Option<[u64; 6]> {
    let regs: *const PtRegs = ctx.arg(0);
    let r: PtRegs = unsafe { bpf_probe_read_kernel(regs) }.ok()?;
    Some([r.di, r.si, r.dx, r.r10, r.r8, r.r9])
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let _ = try_sys_enter(&ctx);
    0
}

pub fn try_sys_enter(ctx: &RawTracePointContext) -> Result<(), i64> {
    let nr: u64 = ctx.arg(1);
    if nr == nr::EXECVE || nr == nr::EXECVEAT {
        let cfg = config();
        let args = syscall_args(ctx).ok_or(1i64)?;
        on_execve_enter(&cfg, bpf_get_current_pid_tgid(), nr, &args);
        return Ok(());
    }
    // --- TLS (tls.rs): executable mappings of watched processes, a hint to look for TLS
    // libraries. Self-contained: a scope check, then one meta record.
    if nr == crate::tls::NR_MMAP {
        return crate::tls::on_mmap_enter(ctx);
    }
    // --- end TLS
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
pub fn is_read(nr: u64) -> bool {
    matches!(
        nr,
        nr::READ | nr::PREAD64 | nr::READV | nr::PREADV | nr::PREADV2
    )
}

#[inline(always)]
pub fn is_write(nr: u64) -> bool {
    matches!(
        nr,
        nr::WRITE
            | nr::PWRITE64
            | nr::SENDTO
            | nr::WRITEV
            | nr::PWRITEV
            | nr::PWRITEV2
            | nr::SENDMSG
            | nr::SENDMMSG
    )
}

/// Write-family entry: the buffer holds exactly what the caller asks the kernel to send.
#[inline(always)]
pub fn on_write_enter(ctx: &RawTracePointContext, cfg: &KConfig, nr: u64, a: &[u64; 6]) {
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

pub fn try_sys_exit(ctx: &RawTracePointContext) -> Result<(), i64> {
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
                    let mut w = walk(
                        Op::Read,
                        saved.nr,
                        a[0],
                        if plain { MODE_PLAIN } else { MODE_IOV },
                        ret,
                    );
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
                        let len: u32 =
                            unsafe { bpf_probe_read_user(a[2] as *const u32) }.unwrap_or(0);
                        read_addr(ev, a[1], len as u64);
                    }
                    submit_meta(ev, &cfg);
                }
            }
        }
        nr::PIPE | nr::PIPE2 | nr::SOCKETPAIR => {
            if ret == 0 {
                let ufds = if saved.nr == nr::SOCKETPAIR {
                    a[3]
                } else {
                    a[0]
                };
                let fds: [i32; 2] =
                    unsafe { bpf_probe_read_user(ufds as *const [i32; 2]) }.unwrap_or([-1, -1]);
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
pub fn on_open_exit(cfg: &KConfig, tgid: u32, nr: u64, a: &[u64; 6], fd: i64) {
    let (upath, flags) = match nr {
        nr::OPEN => (a[0], a[1]),
        nr::OPENAT => (a[1], a[2]),
        _ => {
            // openat2(dfd, path, struct open_how *how, size): how->flags is the first u64.
            let f: u64 = unsafe { bpf_probe_read_user(a[2] as *const u64) }.unwrap_or(0);
            (a[1], f)
        }
    };
    let Some(ev) = data_scratch(Op::Open) else {
        return;
    };
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
