//! TLS plaintext: uprobes on the write and read functions of TLS libraries, so bytes that
//! leave encrypted are seen before encryption and bytes that arrive encrypted are seen
//! after decryption. The daemon attaches these programs to the functions it found in the
//! objects watched processes map (OpenSSL/BoringSSL, GnuTLS, Go `crypto/tls`); the
//! attachment is per file, so every process of the host that uses the same library traps
//! into them. The scope check therefore comes first: an unwatched caller costs the trap
//! plus one map lookup.
//!
//! C libraries (OpenSSL, BoringSSL, GnuTLS) are captured at return, writes included: the
//! entry stashes the arguments by thread and the uretprobe emits the bytes the call
//! reports done (its return value, or `*written`/`*readbytes` for the `_ex` forms), so a
//! write retried after `WANT_READ`/`EAGAIN` is seen once. Go's `Write` is captured at
//! entry (Go blocks the goroutine instead of returning to retry) and its `Read` at each
//! `RET` instruction, keyed by goroutine (`g` is in r14 under Go's register ABI; Go moves
//! stacks, so uretprobes would corrupt them). Records carry `fd = -1` and the call's
//! entry time: userspace ties them to the socket the same thread wrote during (or, for
//! libraries that flush later, right after) the call.
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
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user,
        bpf_probe_read_user_buf,
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

/// Arguments of in-flight C-ABI TLS writes, by pid_tgid.
#[map]
pub static TLS_WRITES: HashMap<u64, TlsCallArgs> = HashMap::with_max_entries(16384, 0);

/// Arguments of in-flight C-ABI TLS reads, by pid_tgid.
#[map]
pub static TLS_READS: HashMap<u64, TlsCallArgs> = HashMap::with_max_entries(16384, 0);

/// Key of an in-flight Go read: the goroutine (`g` pointer) within a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoKey {
    pub tgid: u64,
    pub g: u64,
}

/// Arguments of in-flight Go reads, by goroutine.
#[map]
pub static GO_READS: HashMap<GoKey, TlsCallArgs> = HashMap::with_max_entries(16384, 0);

/// Emits `len` bytes at `buf` as `op` records (≤ [`CHUNK`] bytes each, the last flagged
/// [`F_LAST`]), at most the configured capture size.
#[inline(always)]
fn emit_plain(cfg: &KConfig, op: Op, call_id: u64, a: &TlsCallArgs, len: u64) {
    let (conn, func, buf) = (a.conn, a.func, a.buf);
    if len == 0 || buf == 0 {
        return;
    }
    let Some(ev) = data_scratch(op) else { return };
    ev.call_id = call_id;
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
        if unsafe { bpf_probe_read_user_buf((buf + off) as *const u8, &mut ev.data[..n]) }.is_ok() {
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

/// Entry of `SSL_write(ssl, buf, num)` and `gnutls_record_send(session, data, size)`:
/// the length written comes back as the return value. The attach cookie is the [`TlsFn`].
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    let _ = stash(&ctx, &TLS_WRITES, false);
    0
}

/// Entry of `SSL_write_ex(ssl, buf, num, size_t *written)`.
#[uprobe]
pub fn tls_write_ex(ctx: ProbeContext) -> u32 {
    let _ = stash(&ctx, &TLS_WRITES, true);
    0
}

/// Entry of `SSL_read(ssl, buf, num)` and `gnutls_record_recv(session, data, size)`.
#[uprobe]
pub fn tls_read(ctx: ProbeContext) -> u32 {
    let _ = stash(&ctx, &TLS_READS, false);
    0
}

/// Entry of `SSL_read_ex(ssl, buf, num, size_t *readbytes)`.
#[uprobe]
pub fn tls_read_ex(ctx: ProbeContext) -> u32 {
    let _ = stash(&ctx, &TLS_READS, true);
    0
}

/// Saves a watched thread's call arguments until the return (`ex`: the length is stored
/// through the fourth argument).
fn stash(ctx: &ProbeContext, map: &HashMap<u64, TlsCallArgs>, ex: bool) -> Result<(), i64> {
    if scoped().is_none() {
        return Ok(());
    }
    let r = regs(ctx);
    let args = TlsCallArgs {
        conn: r.rdi,
        buf: r.rsi,
        len_ptr: if ex { r.rcx } else { 0 },
        ts: unsafe { bpf_ktime_get_ns() },
        func: unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32,
        _pad: 0,
    };
    if map.insert(&bpf_get_current_pid_tgid(), &args, 0).is_err() {
        count(counter::INFLIGHT_FULL);
    }
    Ok(())
}

/// Return of a C-ABI TLS write: emits the bytes the library accepted. Capturing at return
/// rather than entry keeps retried calls (non-blocking sockets, a write issued before the
/// handshake finished) from appearing twice.
#[uretprobe]
pub fn tls_write_ret(ctx: RetProbeContext) -> u32 {
    let _ = finish(&ctx, &TLS_WRITES, Op::TlsWrite);
    0
}

/// Return of a C-ABI TLS read: emits what was read.
#[uretprobe]
pub fn tls_read_ret(ctx: RetProbeContext) -> u32 {
    let _ = finish(&ctx, &TLS_READS, Op::TlsRead);
    0
}

fn finish(ctx: &RetProbeContext, map: &HashMap<u64, TlsCallArgs>, op: Op) -> Result<(), i64> {
    let key = bpf_get_current_pid_tgid();
    let Some(a) = (unsafe { map.get(&key) }).copied() else {
        return Ok(());
    };
    let _ = map.remove(&key);
    let ret = regs(ctx).rax as i64;
    let n = if a.len_ptr != 0 {
        if ret != 1 {
            return Ok(());
        }
        unsafe { bpf_probe_read_user(a.len_ptr as *const u64) }.unwrap_or(0)
    } else if a.func == TlsFn::OpenSsl as u32 {
        // int return
        (ret as i32).max(0) as u64
    } else {
        ret.max(0) as u64
    };
    emit_plain(&config(), op, a.ts, &a, n);
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
    let ts = unsafe { bpf_ktime_get_ns() };
    let a = TlsCallArgs {
        conn: r.rax,
        buf: r.rbx,
        len_ptr: 0,
        ts,
        func: TlsFn::Go as u32,
        _pad: 0,
    };
    emit_plain(&cfg, Op::TlsWrite, ts, &a, len as u64);
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
    let args = TlsCallArgs {
        conn: r.rax,
        buf: r.rbx,
        len_ptr: 0,
        ts: unsafe { bpf_ktime_get_ns() },
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
        emit_plain(&config(), Op::TlsRead, a.ts, &a, n as u64);
    }
    Ok(())
}

/// `mmap` entry of a watched process with `PROT_EXEC` and a file: tells the daemon to look
/// at the process's mappings for new TLS libraries. Called by `sys_enter` for `mmap` only.
#[inline(always)]
pub fn on_mmap_enter(ctx: &RawTracePointContext) -> Result<(), i64> {
    if scoped().is_none() {
        return Ok(());
    }
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
        // Wake the reader now rather than at its next timer drain: the daemon races the
        // process to its first TLS call (per-process attach mode).
        if EVENTS.output::<MetaEvent>(ev, BPF_RB_FORCE_WAKEUP).is_err() {
            count(counter::RINGBUF_FULL);
        }
    }
    Ok(())
}
