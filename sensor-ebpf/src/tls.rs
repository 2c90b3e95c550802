//! TLS plaintext: uprobes on the write and read functions of TLS libraries, so bytes that
//! leave encrypted are seen before encryption and bytes that arrive encrypted are seen
//! after decryption. The daemon attaches these programs to the functions it found in the
//! objects watched processes map (OpenSSL/BoringSSL, GnuTLS, Go `crypto/tls`); the
//! attachment is per file, so every process of the host that uses the same library traps
//! into them. The scope check therefore comes first: an unwatched caller costs the trap
//! plus one map lookup.
//!
//! Writes are captured at entry (buffer and length are arguments). Reads are captured at
//! return (the length is the return value, or `*readbytes` for `SSL_read_ex`): the entry
//! stashes the arguments by thread (C libraries) or by goroutine (Go: `g` is in r14 under
//! Go's register ABI; Go moves stacks, so its returns are probed at each `RET`
//! instruction instead of through uretprobes). Records carry `fd = -1`: userspace ties
//! them to the socket through the next socket write of the same thread.
//!
//! The payload walker of the syscall probes (`walk.rs`) is reached through tail calls,
//! which cannot cross program types (raw tracepoint vs kprobe), so a TLS buffer — always one
//! contiguous segment — is emitted here by a bounded loop in the same record format.
//!
//! Also here: the `mmap(PROT_EXEC)` trigger the syscall probe calls, which tells the
//! daemon a watched process mapped a new executable object (a library that may be TLS).

#![allow(unused_imports)]
use crate::common::*;
use aya_ebpf::{
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_user, bpf_probe_read_user_buf,
    },
    macros::{map, uprobe, uretprobe},
    maps::HashMap,
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
    EbpfContext,
};
use sensor_common::*;

/// x86_64 `mmap`.
pub const NR_MMAP: u64 = 9;
const PROT_EXEC: u64 = 4;

/// Arguments of in-flight C-ABI TLS reads, by pid_tgid.
#[map]
pub static TLS_READS: HashMap<u64, TlsReadArgs> = HashMap::with_max_entries(16384, 0);

/// Key of an in-flight Go read: the goroutine (`g` pointer) within a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoKey {
    pub tgid: u64,
    pub g: u64,
}

/// Arguments of in-flight Go reads, by goroutine.
#[map]
pub static GO_READS: HashMap<GoKey, TlsReadArgs> = HashMap::with_max_entries(16384, 0);

/// Emits `len` bytes at `buf` as `op` records (≤ [`CHUNK`] bytes each, the last flagged
/// [`F_LAST`]), at most the configured capture size.
#[inline(always)]
fn emit_plain(cfg: &KConfig, op: Op, conn: u64, func: u32, buf: u64, len: u64) {
    if len == 0 || buf == 0 {
        return;
    }
    let Some(ev) = data_scratch(op) else { return };
    let mut cap = cfg.capture_bytes as u64;
    if cap > MAX_CAPTURE as u64 {
        cap = MAX_CAPTURE as u64;
    }
    let take = if len < cap { len } else { cap };
    ev.arg = conn;
    ev.syscall = func;
    ev.total = len;
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
        ev.offset = off as u32;
        ev.flags = 0;
        if off + n as u64 >= take {
            ev.flags = F_LAST;
            if len > take {
                ev.flags |= F_TRUNCATED;
            }
        }
        if unsafe { bpf_probe_read_user_buf((buf + off) as *const u8, &mut ev.data[..n]) }.is_ok()
        {
            ev.len = n as u32;
        } else {
            ev.len = 0;
            ev.flags |= F_FAULT;
        }
        submit_data(ev, cfg);
    }
}

/// The configuration, if the calling process is watched.
#[inline(always)]
fn scoped() -> Option<KConfig> {
    let cfg = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if in_scope(tgid, &cfg) {
        Some(cfg)
    } else {
        None
    }
}

#[inline(always)]
fn regs(ctx: &impl EbpfContext) -> &aya_ebpf::bindings::pt_regs {
    unsafe { &*(ctx.as_ptr() as *const aya_ebpf::bindings::pt_regs) }
}

/// `SSL_write(ssl, buf, num)`, `SSL_write_ex(ssl, buf, num, written)`,
/// `gnutls_record_send(session, data, size)`: the attach cookie is the [`TlsFn`].
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    let _ = try_tls_write(&ctx);
    0
}

fn try_tls_write(ctx: &ProbeContext) -> Result<(), i64> {
    let Some(cfg) = scoped() else { return Ok(()) };
    let r = regs(ctx);
    let func = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    // SSL_write takes an int: a negative length is an error the library reports.
    let len = if func == TlsFn::OpenSsl as u32 {
        r.rdx as i32 as i64
    } else {
        r.rdx as i64
    };
    if len <= 0 {
        return Ok(());
    }
    emit_plain(&cfg, Op::TlsWrite, r.rdi, func, r.rsi, len as u64);
    Ok(())
}

/// `SSL_read(ssl, buf, num)` and `gnutls_record_recv(session, data, size)` entry: the
/// length comes back as the return value.
#[uprobe]
pub fn tls_read(ctx: ProbeContext) -> u32 {
    let _ = try_tls_read(&ctx, false);
    0
}

/// `SSL_read_ex(ssl, buf, num, size_t *readbytes)` entry: the length comes back in
/// `*readbytes`, the return value is 1 on success.
#[uprobe]
pub fn tls_read_ex(ctx: ProbeContext) -> u32 {
    let _ = try_tls_read(&ctx, true);
    0
}

fn try_tls_read(ctx: &ProbeContext, ex: bool) -> Result<(), i64> {
    if scoped().is_none() {
        return Ok(());
    }
    let r = regs(ctx);
    let args = TlsReadArgs {
        conn: r.rdi,
        buf: r.rsi,
        len_ptr: if ex { r.rcx } else { 0 },
        func: unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32,
        _pad: 0,
    };
    if TLS_READS
        .insert(&bpf_get_current_pid_tgid(), &args, 0)
        .is_err()
    {
        count(counter::INFLIGHT_FULL);
    }
    Ok(())
}

/// Return of a C-ABI TLS read: emits what was read.
#[uretprobe]
pub fn tls_read_ret(ctx: RetProbeContext) -> u32 {
    let _ = try_tls_read_ret(&ctx);
    0
}

fn try_tls_read_ret(ctx: &RetProbeContext) -> Result<(), i64> {
    let key = bpf_get_current_pid_tgid();
    let Some(a) = (unsafe { TLS_READS.get(&key) }).copied() else {
        return Ok(());
    };
    let _ = TLS_READS.remove(&key);
    let cfg = config();
    let ret = regs(ctx).rax as i64;
    let n = if a.len_ptr != 0 {
        if ret != 1 {
            return Ok(());
        }
        unsafe { bpf_probe_read_user(a.len_ptr as *const u64) }.unwrap_or(0)
    } else if a.func == TlsFn::OpenSsl as u32 {
        (ret as i32).max(0) as u64
    } else {
        ret.max(0) as u64
    };
    emit_plain(&cfg, Op::TlsRead, a.conn, a.func, a.buf, n);
    Ok(())
}

/// Go `crypto/tls.(*Conn).Write(b []byte)`: receiver in rax, `b` in rbx (ptr) / rcx (len).
#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    let _ = try_go_tls_write(&ctx);
    0
}

fn try_go_tls_write(ctx: &ProbeContext) -> Result<(), i64> {
    let Some(cfg) = scoped() else { return Ok(()) };
    let r = regs(ctx);
    let len = r.rcx as i64;
    if len <= 0 {
        return Ok(());
    }
    emit_plain(&cfg, Op::TlsWrite, r.rax, TlsFn::Go as u32, r.rbx, len as u64);
    Ok(())
}

/// Go `crypto/tls.(*Conn).Read(b []byte)` entry: stashed by goroutine (`g` in r14).
#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    let _ = try_go_tls_read(&ctx);
    0
}

fn try_go_tls_read(ctx: &ProbeContext) -> Result<(), i64> {
    if scoped().is_none() {
        return Ok(());
    }
    let r = regs(ctx);
    let key = GoKey {
        tgid: bpf_get_current_pid_tgid() >> 32,
        g: r.r14,
    };
    let args = TlsReadArgs {
        conn: r.rax,
        buf: r.rbx,
        len_ptr: 0,
        func: TlsFn::Go as u32,
        _pad: 0,
    };
    if GO_READS.insert(&key, &args, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
    Ok(())
}

/// A `RET` instruction of Go's `(*Conn).Read`: `n` is in rax.
#[uprobe]
pub fn go_tls_read_ret(ctx: ProbeContext) -> u32 {
    let _ = try_go_tls_read_ret(&ctx);
    0
}

fn try_go_tls_read_ret(ctx: &ProbeContext) -> Result<(), i64> {
    let r = regs(ctx);
    let key = GoKey {
        tgid: bpf_get_current_pid_tgid() >> 32,
        g: r.r14,
    };
    let Some(a) = (unsafe { GO_READS.get(&key) }).copied() else {
        return Ok(());
    };
    let _ = GO_READS.remove(&key);
    let n = r.rax as i64;
    if n > 0 {
        emit_plain(&config(), Op::TlsRead, a.conn, a.func, a.buf, n as u64);
    }
    Ok(())
}

/// `mmap` entry of a watched process with `PROT_EXEC` and a file: tells the daemon to look
/// at the process's mappings for new TLS libraries. Called by `sys_enter` for `mmap` only.
#[inline(always)]
pub fn on_mmap_enter(ctx: &RawTracePointContext) -> Result<(), i64> {
    let Some(cfg) = scoped() else { return Ok(()) };
    let a = crate::syscalls::syscall_args(ctx).ok_or(1i64)?;
    let fd = a[4] as i64 as i32;
    if a[2] & PROT_EXEC == 0 || fd < 0 {
        return Ok(());
    }
    if let Some(ev) = meta_scratch(Op::MmapExec) {
        ev.fd = fd;
        ev.arg0 = a[2];
        ev.arg1 = a[3];
        ev.syscall = NR_MMAP as u32;
        submit_meta(ev, &cfg);
    }
    Ok(())
}
