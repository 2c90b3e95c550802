//! The syscall programs, attached only while something is watched. `sys_enter` (a BTF
//! tracepoint) returns after one bit test for syscalls the sensor ignores; for watched
//! processes it captures writes at entry and saves the arguments of the calls that need
//! their return value. Those are completed either by a BTF `sys_exit` program gated by a
//! second bitmap or by one `syscalls:sys_exit_*` tracepoint per such syscall (the daemon
//! attaches one or the other; see `probes.rs` and the README's figures).

#![allow(unused_imports)]
use crate::common::*;
use crate::walk::*;
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        bpf_probe_read_user_buf, bpf_probe_read_user_str_bytes,
    },
    macros::{btf_tracepoint, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use sensor_common::*;

/// x86_64 `struct pt_regs` up to `orig_ax` (read through the BTF pointer the tracepoint
/// passes: plain loads, no helper call).
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
    pub orig_ax: u64,
}

#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let _ = try_sys_enter(&ctx);
    0
}

#[inline(always)]
pub fn try_sys_enter(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let nr: u64 = ctx.arg(1);
    if !has_bit(&ENTER_BITS, nr) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let cfg = config();
    let regs: *const PtRegs = ctx.arg(0);
    if has_bit(&HARVEST_BITS, nr) && tgid != cfg.self_tgid {
        // Any process, watched or not: a few loads and, for opens, 8 bytes of the path.
        let a = unsafe { [(*regs).di, (*regs).si, (*regs).dx] };
        check_harvest(cfg, tgid, nr, &a);
    }
    if !in_scope(tgid, cfg) {
        return Ok(());
    }
    flush_deferred(cfg, pid_tgid);
    let args = unsafe {
        [
            (*regs).di,
            (*regs).si,
            (*regs).dx,
            (*regs).r10,
            (*regs).r8,
            (*regs).r9,
        ]
    };
    if is_write(nr) {
        // Outbound bytes are captured at entry, straight from the caller's buffer: no
        // state to keep until exit, so a watched write costs one program run.
        if !no_capture(cfg, tgid, args[0]) {
            on_write_enter(ctx, cfg, nr, &args);
        }
        return Ok(());
    }
    match nr {
        nr::MMAP => {
            // TLS (tls.rs): an executable mapping may be a TLS library to hook.
            crate::tls::on_mmap_enter(&args);
            return Ok(());
        }
        nr::SENDFILE | nr::SPLICE | nr::TEE | nr::COPY_FILE_RANGE => {
            on_transfer_enter(cfg, tgid, pid_tgid, nr, &args);
            return Ok(());
        }
        nr::IO_URING_SETUP | nr::IO_URING_ENTER | nr::IO_URING_REGISTER => {
            on_io_uring(cfg, tgid, nr, &args);
            return Ok(());
        }
        nr::CLOSE => {
            // Handled at entry: the fd is gone whatever close() returns.
            let _ = NO_CAPTURE.remove(&fd_key(tgid, args[0]));
            emit_meta(cfg, Op::Close, |ev| {
                ev.fd = args[0] as i32;
                ev.syscall = nr as u32;
            });
            return Ok(());
        }
        nr::CLOSE_RANGE => {
            emit_meta(cfg, Op::Close, |ev| {
                ev.fd = args[0] as i32;
                ev.fd2 = args[1].min(i32::MAX as u64) as i32;
                ev.syscall = nr as u32;
            });
            return Ok(());
        }
        _ => {}
    }
    if has_bit(&EXIT_BITS, nr) {
        let saved = Inflight { nr, args, flags: 0 };
        if INFLIGHT.insert(&pid_tgid, &saved, 0).is_err() {
            count(counter::INFLIGHT_FULL);
        }
    }
    Ok(())
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
            | nr::VMSPLICE
    )
}

/// Kernel-side copies between fds: (source fd, user pointer to its offset or 0, dest fd).
#[inline(always)]
pub fn transfer_fds(nr: u64, a: &[u64; 6]) -> Option<(u64, u64, u64)> {
    match nr {
        nr::SENDFILE => Some((a[1], a[2], a[0])),
        nr::SPLICE | nr::COPY_FILE_RANGE => Some((a[0], a[1], a[2])),
        nr::TEE => Some((a[0], 0, a[1])),
        _ => None,
    }
}

/// sendfile/splice/tee/copy_file_range entry: remember where the source was read from (the
/// explicit offset, else the file position), for the daemon to read the same bytes.
#[inline(always)]
pub fn on_transfer_enter(cfg: &KConfig, tgid: u32, pid_tgid: u64, nr: u64, a: &[u64; 6]) {
    let Some((src, off_ptr, dst)) = transfer_fds(nr, a) else {
        return;
    };
    if no_capture(cfg, tgid, dst) {
        return;
    }
    let pos = if off_ptr != 0 {
        unsafe { bpf_probe_read_user(off_ptr as *const u64) }.unwrap_or(POS_UNKNOWN)
    } else {
        fd_pos(cfg, src)
    };
    let saved = Inflight {
        nr,
        args: *a,
        flags: pos,
    };
    if INFLIGHT.insert(&pid_tgid, &saved, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
}

/// io_uring by a watched process: reported once per process and syscall (its requests never
/// pass through the syscall programs).
#[inline(always)]
pub fn on_io_uring(cfg: &KConfig, tgid: u32, nr: u64, a: &[u64; 6]) {
    if !first_uring_use(tgid, nr) {
        return;
    }
    emit_meta(cfg, Op::IoUring, |ev| {
        ev.syscall = nr as u32;
        ev.fd = a[0] as i32;
        ev.arg0 = a[1];
        ev.arg1 = a[2];
    });
}

/// True the first time (tgid, kind) is seen.
#[inline(always)]
pub fn first_uring_use(tgid: u32, kind: u64) -> bool {
    let key = ((tgid as u64) << 16) | (kind & 0xffff);
    if unsafe { URING_SEEN.get(&key) }.is_some() {
        return false;
    }
    let _ = URING_SEEN.insert(&key, &1, 0);
    true
}

/// `io_uring:io_uring_submit_req`: a request of a watched process (also from its SQPOLL and
/// worker threads, which share its tgid), reported once per process and opcode.
#[tracepoint]
pub fn io_uring_submit_req(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !in_scope(tgid, cfg) || cfg.off.uring_opcode == 0 {
        return 0;
    }
    let opcode = unsafe { ctx.read_at::<u8>(cfg.off.uring_opcode as usize) }.unwrap_or(0) as u64;
    if !first_uring_use(tgid, 0x100 + opcode) {
        return 0;
    }
    emit_meta(cfg, Op::IoUring, |ev| {
        ev.syscall = 0;
        ev.arg0 = opcode;
    });
    0
}

/// Write-family entry: the buffer holds exactly what the caller asks the kernel to send.
#[inline(always)]
pub fn on_write_enter(ctx: &BtfTracePointContext, cfg: &KConfig, nr: u64, a: &[u64; 6]) {
    match nr {
        nr::WRITE | nr::PWRITE64 | nr::SENDTO => {
            let count = a[2];
            if count == 0 {
                return;
            }
            if nr == nr::SENDTO {
                emit_sendto_addr(cfg, nr, a[0], a[4], a[5]);
            }
            emit_plain(ctx, &JUMP_ENTER, cfg, Op::Write, nr, a[0], a[1], count);
        }
        nr::WRITEV | nr::PWRITEV | nr::PWRITEV2 | nr::SENDMSG | nr::VMSPLICE => {
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
            if cnt == 0 {
                return;
            }
            start_walk(ctx, &JUMP_ENTER, iov_walk(Op::Write, nr, a[0], iov, cnt, 0));
        }
        nr::SENDMMSG => {
            let mut w = walk(data_head(Op::Write, nr, a[0] as i32), MODE_MMSG);
            w.msgvec = a[1];
            w.msg_cnt = a[2];
            start_walk(ctx, &JUMP_ENTER, w);
        }
        _ => {}
    }
}

/// BTF `sys_exit`: one bit test on the saved syscall number for everything else.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let regs: *const PtRegs = ctx.arg(0);
    let nr = unsafe { (*regs).orig_ax };
    if !has_bit(&EXIT_BITS, nr) {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    let _ = on_exit(nr, ret);
    0
}

/// `syscalls:sys_exit_<name>` for each syscall in `EXIT_SYSCALLS`: the kernel only runs it for
/// those syscalls. Record layout: `__syscall_nr` at 8, `ret` at 16.
#[tracepoint]
pub fn sys_exit_tp(ctx: TracePointContext) -> u32 {
    let base = ctx.as_ptr() as *const u8;
    let nr = unsafe { *(base.add(8) as *const i32) } as u64;
    let ret = unsafe { *(base.add(16) as *const i64) };
    let _ = on_exit(nr, ret);
    0
}

/// Completes a call saved at entry: the in-flight entry exists only for tracked syscalls
/// of in-scope tasks.
#[inline(always)]
pub fn on_exit(nr: u64, ret: i64) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let cfg = config();
    if !in_scope(tgid, cfg) {
        return Ok(());
    }
    let saved = match unsafe { INFLIGHT.get(&pid_tgid) } {
        Some(s) => *s,
        None => return Ok(()),
    };
    let _ = INFLIGHT.remove(&pid_tgid);
    if saved.nr != nr {
        return Ok(());
    }
    let a = saved.args;
    match nr {
        nr::OPEN | nr::OPENAT | nr::OPENAT2 => {
            if ret >= 0 {
                on_open_exit(cfg, tgid, nr, &a, ret);
            }
        }
        nr::DUP | nr::DUP2 | nr::DUP3 | nr::FCNTL => {
            if nr == nr::FCNTL && a[1] != F_DUPFD && a[1] != F_DUPFD_CLOEXEC {
                return Ok(());
            }
            if ret >= 0 {
                on_dup_exit(cfg, tgid, nr, a[0], ret as u64);
            }
        }
        nr::SOCKET => {
            if ret >= 0 {
                let _ = NO_CAPTURE.remove(&fd_key(tgid, ret as u64));
                emit_meta(cfg, Op::Socket, |ev| {
                    ev.fd = ret as i32;
                    ev.arg0 = a[0];
                    ev.arg1 = a[1];
                    ev.syscall = nr as u32;
                });
            }
        }
        nr::CONNECT => {
            emit_meta(cfg, Op::Connect, |ev| {
                ev.fd = a[0] as i32;
                ev.ret = ret;
                ev.syscall = nr as u32;
                read_addr(ev, a[1], a[2]);
            });
        }
        nr::ACCEPT | nr::ACCEPT4 => {
            if ret >= 0 {
                let _ = NO_CAPTURE.remove(&fd_key(tgid, ret as u64));
                emit_meta(cfg, Op::Accept, |ev| {
                    ev.fd = a[0] as i32;
                    ev.fd2 = ret as i32;
                    ev.syscall = nr as u32;
                    if a[1] != 0 && a[2] != 0 {
                        let len: u32 =
                            unsafe { bpf_probe_read_user(a[2] as *const u32) }.unwrap_or(0);
                        read_addr(ev, a[1], len as u64);
                    }
                });
            }
        }
        nr::SENDFILE | nr::SPLICE | nr::TEE | nr::COPY_FILE_RANGE => {
            if ret > 0 {
                if let Some((src, _, dst)) = transfer_fds(nr, &a) {
                    let mode = fd_facts(cfg, src).map(|f| f.mode).unwrap_or(0);
                    emit_meta(cfg, Op::Transfer, |ev| {
                        ev.fd = dst as i32;
                        ev.fd2 = src as i32;
                        ev.ret = ret;
                        ev.arg0 = saved.flags;
                        ev.arg1 = mode as u64;
                        ev.syscall = nr as u32;
                    });
                }
            }
        }
        nr::PIPE | nr::PIPE2 | nr::SOCKETPAIR => {
            if ret == 0 {
                let ufds = if nr == nr::SOCKETPAIR { a[3] } else { a[0] };
                let fds: [i32; 2] =
                    unsafe { bpf_probe_read_user(ufds as *const [i32; 2]) }.unwrap_or([-1, -1]);
                let _ = NO_CAPTURE.remove(&fd_key(tgid, fds[0] as u64));
                let _ = NO_CAPTURE.remove(&fd_key(tgid, fds[1] as u64));
                let ino = if nr == nr::SOCKETPAIR {
                    0
                } else {
                    fd_facts(cfg, fds[0] as u64).map(|f| f.ino).unwrap_or(0)
                };
                emit_meta(cfg, Op::Pipe, |ev| {
                    ev.fd = fds[0];
                    ev.fd2 = fds[1];
                    ev.syscall = nr as u32;
                    if nr == nr::SOCKETPAIR {
                        ev.arg0 = a[0];
                        ev.arg1 = a[1];
                    } else {
                        ev.arg0 = ino;
                    }
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// dup family: the new fd inherits the old one's no-capture entry — except a regular file
/// becoming stdout or stderr (`2> file`): a redirected standard stream is a log sink.
#[inline(always)]
pub fn on_dup_exit(cfg: &KConfig, tgid: u32, nr: u64, old: u64, new: u64) {
    let (ko, kn) = (fd_key(tgid, old), fd_key(tgid, new));
    let std_out_err = new == 1 || new == 2;
    match unsafe { NO_CAPTURE.get(&ko) } {
        Some(_) if std_out_err && !fd_facts(cfg, new).is_some_and(|f| is_null_device(&f)) => {
            let _ = NO_CAPTURE.remove(&kn);
        }
        Some(v) => {
            let v = *v;
            let _ = NO_CAPTURE.insert(&kn, &v, 0);
        }
        None => {
            let _ = NO_CAPTURE.remove(&kn);
        }
    }
    emit_meta(cfg, Op::Dup, |ev| {
        ev.fd = old as i32;
        ev.fd2 = new as i32;
        ev.syscall = nr as u32;
    });
}

pub const RUN_SECRETS: &[u8; 13] = b"/run/secrets/";

/// Does a path (the first `n` bytes of `buf`) start with `/run/secrets/`?
#[inline(always)]
pub fn is_run_secret(buf: &[u8; CHUNK], n: usize) -> bool {
    if n < RUN_SECRETS.len() + 1 {
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

/// Is a path a log file: `/var/log/…` or `*.log`?
#[inline(always)]
pub fn is_log_path(buf: &[u8; CHUNK], n: usize) -> bool {
    const VAR_LOG: &[u8; 9] = b"/var/log/";
    if n > VAR_LOG.len() {
        let mut i = 0;
        let mut same = true;
        while i < VAR_LOG.len() {
            if buf[i] != VAR_LOG[i] {
                same = false;
                break;
            }
            i += 1;
        }
        if same {
            return true;
        }
    }
    if n < 5 || n > CHUNK {
        return false;
    }
    let at = |i: usize| buf[crate::exec::masked(i)];
    at(n - 4) == b'.' && at(n - 3) == b'l' && at(n - 2) == b'o' && at(n - 1) == b'g'
}

/// open/openat/openat2 returned `fd`: send the path; mark credential files (read by the
/// daemon) and non-sinks (listed devices; regular files outside the log patterns unless
/// `capture_files_all`) for no capture.
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
    let Some(buf) = PATH_BUF.get_ptr_mut(0) else {
        return;
    };
    let buf = unsafe { &mut *buf };
    let n = match unsafe { bpf_probe_read_user_str_bytes(upath as *const u8, buf) } {
        Ok(s) => s.len(),
        Err(_) => 0,
    };
    let n = if n > CHUNK { CHUNK } else { n };
    let key = fd_key(tgid, fd as u64);
    let mut captured = 0;
    let _ = NO_CAPTURE.remove(&key);
    if flags & O_ACCMODE != O_WRONLY {
        // A credential file opened for reading: the daemon reads its content (no read has
        // to be followed to its exit).
        let h = crate::exec::basename_hash(buf, n);
        if unsafe { CRED_NAMES.get(&h) }.is_some() || is_run_secret(buf, n) {
            captured = 1;
        }
    }
    if flags & O_ACCMODE != 0 {
        // Opened for writing: is it a sink at all?
        if let Some(f) = fd_facts(cfg, fd as u64) {
            let file_rule =
                f.mode & S_IFMT == S_IFREG && cfg.capture_files_all == 0 && !is_log_path(buf, n);
            if is_null_device(&f) || file_rule {
                set_no_capture(tgid, fd as u64, &f);
            }
        }
    }
    let mut head = data_head(Op::Open, nr, fd as i32);
    head.arg = flags;
    head.total = n as u64;
    head.flags = F_LAST;
    head.index = captured;
    emit_bytes(cfg, &head, buf.as_ptr() as u64, n, true);
}

const PTRACE_ATTACH: u64 = 16;
const PTRACE_SEIZE: u64 = 0x4206;

/// `openat`'s "relative to the current directory".
const AT_FDCWD: i32 = -100;

/// Harvesting of a watched process's secrets by any process: decided from the syscall, its
/// target pid and, for opens, the first bytes of the path (`/proc/<pid>/environ|mem`).
/// An open of a bare `environ` or `mem` (relative to a directory fd or the current
/// directory, e.g. after `cd /proc/<pid>`) is sent with target 0 and the directory fd in
/// `fd`: the daemon resolves the directory and decides.
#[inline(always)]
pub fn check_harvest(cfg: &KConfig, tgid: u32, nr: u64, a: &[u64; 3]) {
    let mut dirfd = -1;
    let (method, target, upath) = match nr {
        nr::OPEN | nr::OPENAT | nr::OPENAT2 => {
            let upath = if nr == nr::OPEN { a[0] } else { a[1] };
            match proc_target(upath) {
                Some((m, t)) => {
                    if t == RELATIVE {
                        dirfd = if nr == nr::OPEN {
                            AT_FDCWD
                        } else {
                            a[0] as i32
                        };
                    }
                    (m, t, upath)
                }
                None => return,
            }
        }
        nr::PTRACE if a[0] == PTRACE_ATTACH || a[0] == PTRACE_SEIZE => (HARVEST_PTRACE, a[1], 0),
        nr::PROCESS_VM_READV => (HARVEST_VM_READ, a[0], 0),
        nr::PROCESS_VM_WRITEV => (HARVEST_VM_WRITE, a[0], 0),
        nr::PIDFD_GETFD => (HARVEST_PIDFD_GETFD, pidfd_pid(cfg, a[0]), 0),
        _ => return,
    };
    // A bare name: the directory's proc inode names the process when its offsets are
    // known (0: not a `/proc/<pid>` directory, nothing to report); the daemon resolves
    // the directory itself otherwise.
    let relative = target == RELATIVE && cfg.off.proc_inode_vfs == 0;
    let target = match target {
        RELATIVE if relative => 0,
        RELATIVE => proc_dir_tgid(cfg, dirfd),
        t => t as u32,
    };
    if !relative && (target == 0 || target == tgid || !tgid_watched(target)) {
        return;
    }
    let mut head = data_head(Op::Harvest, nr, dirfd);
    head.arg = method;
    head.index = target;
    head.flags = F_LAST;
    // Data: the reader's comm (16 bytes, NUL-padded: it may exit before the daemon can
    // read /proc), then the path for opens.
    let Some(buf) = PATH_BUF.get_ptr_mut(0) else {
        return;
    };
    let buf = unsafe { &mut *buf };
    let comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
    buf[..HARVEST_COMM].copy_from_slice(&comm);
    let mut n = 0;
    if upath != 0 {
        // `/proc/<pid>/task/<tid>/environ` fits in 64 bytes (the matcher read 48).
        n = match unsafe {
            bpf_probe_read_user_str_bytes(
                upath as *const u8,
                &mut buf[HARVEST_COMM..HARVEST_COMM + 64],
            )
        } {
            Ok(s) => s.len(),
            Err(_) => 0,
        };
    }
    let n = HARVEST_COMM + (n & 63);
    head.total = n as u64;
    emit_bytes(cfg, &head, buf.as_ptr() as u64, n, true);
}

/// [`proc_target`]'s pid for a bare `environ`/`mem` (the directory decides the target).
const RELATIVE: u64 = u64::MAX;

/// `PROC_SUPER_MAGIC`: the superblock magic of every procfs mount.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// The tgid a `/proc/<pid>` or `/proc/<pid>/task/<tid>` directory stands for — the
/// directory of `dirfd`, or the current directory for `AT_FDCWD` — from its proc inode's
/// `struct pid` (the number in the initial pid namespace, whatever mount of `/proc` it was
/// reached through); 0 for any other directory. The daemon could only resolve the
/// reader's directory through `/proc/<reader>/cwd` while the reader still existed, and
/// `cd /proc/<pid> && cat environ` exits in a millisecond.
#[inline(always)]
fn proc_dir_tgid(cfg: &KConfig, dirfd: i32) -> u32 {
    let o = &cfg.off;
    if o.task_fs == 0 || o.dentry_inode == 0 || o.sb_magic == 0 || o.inode_sb == 0 {
        return 0;
    }
    let mut dentry = if dirfd == AT_FDCWD {
        let fs = kread_u64(current_task(), o.task_fs);
        kread_u64(fs, o.fs_pwd + o.path_dentry)
    } else {
        if !file_offsets_known(o) || dirfd < 0 {
            return 0;
        }
        kread_u64(fd_file(cfg, dirfd as u64), o.file_path + o.path_dentry)
    };
    let sb = kread_u64(kread_u64(dentry, o.dentry_inode), o.inode_sb);
    if dentry == 0 || sb == 0 || kread_u64(sb, o.sb_magic) != PROC_SUPER_MAGIC {
        return 0;
    }
    // `/proc/<pid>` hangs off the mount's root; a task directory's parent is `task`,
    // whose parent is the process's directory.
    let root = kread_u64(sb, o.sb_root);
    let parent = kread_u64(dentry, o.dentry_parent);
    if parent != root {
        dentry = kread_u64(parent, o.dentry_parent);
        if kread_u64(dentry, o.dentry_parent) != root {
            return 0;
        }
    }
    let inode = kread_u64(dentry, o.dentry_inode);
    if inode < o.proc_inode_vfs as u64 {
        return 0;
    }
    let pid = kread_u64(inode - o.proc_inode_vfs as u64, o.proc_inode_pid);
    if pid == 0 {
        return 0;
    }
    kread_u32(pid, o.pid_numbers)
}

/// `/proc/<pid>/environ`, `/proc/<pid>/mem` or `/proc/<pid>/task/<tid>/…`: (method, pid);
/// a bare `environ` or `mem`: (method, [`RELATIVE`]).
#[inline(always)]
fn proc_target(upath: u64) -> Option<(u64, u64)> {
    // The common case costs one 8-byte read: is it "/proc/" at all?
    let head: u64 = unsafe { bpf_probe_read_user(upath as *const u64) }.ok()?;
    if head & 0xffff_ffff_ffff != u64::from_le_bytes(*b"/proc/\0\0") {
        if head == u64::from_le_bytes(*b"environ\0") {
            return Some((HARVEST_ENVIRON, RELATIVE));
        }
        if head & 0xffff_ffff == u32::from_le_bytes(*b"mem\0") as u64 {
            return Some((HARVEST_MEM, RELATIVE));
        }
        return None;
    }
    let p: [u8; 48] = match unsafe { bpf_probe_read_user(upath as *const [u8; 48]) } {
        Ok(p) => p,
        // Shorter than 48 bytes at the end of a page: read as a string.
        Err(_) => {
            let mut p = [0u8; 48];
            unsafe { bpf_probe_read_user_str_bytes(upath as *const u8, &mut p) }.ok()?;
            p
        }
    };
    let (pid, mut i) = digits(&p, 6)?;
    if p[i] != b'/' {
        return None;
    }
    i += 1;
    // /task/<tid>/
    if p[i] == b't' && p[i + 1] == b'a' && p[i + 2] == b's' && p[i + 3] == b'k' && p[i + 4] == b'/'
    {
        let (_, j) = digits(&p, i + 5)?;
        if p[j] != b'/' {
            return None;
        }
        i = j + 1;
    }
    let at = |k: usize| p[(i + k) % 48];
    if at(0) == b'e'
        && at(1) == b'n'
        && at(2) == b'v'
        && at(3) == b'i'
        && at(4) == b'r'
        && at(5) == b'o'
        && at(6) == b'n'
        && at(7) == 0
    {
        return Some((HARVEST_ENVIRON, pid));
    }
    if at(0) == b'm' && at(1) == b'e' && at(2) == b'm' && at(3) == 0 {
        return Some((HARVEST_MEM, pid));
    }
    None
}

/// Decimal digits at `p[from..]` (at most 8): (value, index after them).
#[inline(always)]
fn digits(p: &[u8; 48], from: usize) -> Option<(u64, usize)> {
    let mut v = 0u64;
    let mut i = from;
    for _ in 0..8 {
        if i >= 40 {
            return None;
        }
        let c = p[i];
        if !c.is_ascii_digit() {
            break;
        }
        v = v * 10 + (c - b'0') as u64;
        i += 1;
    }
    if i == from || i >= 40 {
        return None;
    }
    Some((v, i))
}

/// The (global) pid a pidfd of the current task refers to, or 0.
#[inline(always)]
fn pidfd_pid(cfg: &KConfig, fd: u64) -> u64 {
    let o = &cfg.off;
    if !file_offsets_known(o) || o.file_private == 0 || o.pid_numbers == 0 {
        return 0;
    }
    let file = fd_file(cfg, fd);
    let pid = kread_u64(file, o.file_private);
    if pid == 0 {
        return 0;
    }
    kread_u32(pid, o.pid_numbers) as u64
}

/// Per-CPU path buffer of the open path (read once, matched, then sent from here).
#[map]
pub static PATH_BUF: PerCpuArray<[u8; CHUNK]> = PerCpuArray::with_max_entries(1, 0);

/// Benchmark floor: an empty program on `sys_enter` (the kernel's tracepoint path and BPF
/// dispatch alone). Attached only by `sensor-floor`.
#[btf_tracepoint(function = "sys_enter")]
pub fn floor_enter(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// Benchmark floor for `sys_exit`; see [`floor_enter`].
#[btf_tracepoint(function = "sys_exit")]
pub fn floor_exit(_ctx: BtfTracePointContext) -> i32 {
    0
}

/// Benchmark floor for per-syscall enter tracepoints; see [`floor_enter`].
#[tracepoint]
pub fn floor_enter_tp(_ctx: TracePointContext) -> u32 {
    0
}

/// Benchmark floor for per-syscall exit tracepoints; see [`floor_enter`].
#[tracepoint]
pub fn floor_exit_tp(_ctx: TracePointContext) -> u32 {
    0
}
