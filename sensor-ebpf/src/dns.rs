//! DNS answers read by watched processes, so the daemon can name the addresses they connect
//! to. Reads have no syscall program (that would cost every read of every process); the
//! answer is taken at `sock:sock_recv_length` instead, which the kernel fires only for
//! socket receives, after the bytes were copied to the caller, with their count. A DNS
//! socket is one whose peer port is 53 (connected UDP or TCP: glibc, Go, c-ares), or an
//! unconnected UDP socket that sent to port 53 (musl, dnspython), marked in `DNS_SOCKS` by
//! the write path. The caller's buffer comes from its syscall registers (`read`, `readv`,
//! `recvfrom`, `recvmsg`; the first iovec), checked to be the same socket.

#![allow(unused_imports)]
use crate::common::*;
use crate::syscalls::PtRegs;
use crate::walk::{Iovec, MsgHdr};
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{btf_tracepoint, map},
    maps::LruHashMap,
    programs::BtfTracePointContext,
};
use sensor_common::*;

const MSG_PEEK: u64 = 2;
const IPPROTO_UDP: u32 = 17;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Port 53 as `skc_dport` holds it (network order, read as a little-endian u16).
const DPORT_53: u32 = 53u16.to_be() as u32;

/// Unconnected UDP sockets (`struct sock *`) a watched process sent a DNS query from.
/// Keyed by the socket object, so a closed socket's entry never matches another fd.
#[map]
pub static DNS_SOCKS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(1024, 0);

/// The `struct sock *` behind the current task's `fd` (0 if the offsets are unknown).
#[inline(always)]
pub fn fd_sock(cfg: &KConfig, fd: u64) -> u64 {
    let o = &cfg.off;
    if !file_offsets_known(o) || o.file_private == 0 || o.socket_sk == 0 {
        return 0;
    }
    let socket = kread_u64(fd_file(cfg, fd), o.file_private);
    if socket == 0 {
        return 0;
    }
    kread_u64(socket, o.socket_sk)
}

/// sendto/sendmsg/sendmmsg of a watched process named destination `uaddr`: a query to
/// port 53 from an unconnected socket makes it a DNS socket (its answers are read back).
#[inline(always)]
pub fn mark_dns_sendto(cfg: &KConfig, fd: u64, uaddr: u64, len: u64) {
    if uaddr == 0 || len < 4 {
        return;
    }
    let head: [u8; 4] = match unsafe { bpf_probe_read_user(uaddr as *const [u8; 4]) } {
        Ok(h) => h,
        Err(_) => return,
    };
    let family = u16::from_ne_bytes([head[0], head[1]]);
    if (family != AF_INET && family != AF_INET6) || head[2] != 0 || head[3] != 53 {
        return;
    }
    let sk = fd_sock(cfg, fd);
    if sk != 0 {
        let _ = DNS_SOCKS.insert(&sk, &1, 0);
    }
}

#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let _ = try_sock_recv_length(&ctx);
    0
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`: a socket receive returned `ret`.
#[inline(always)]
fn try_sock_recv_length(ctx: &BtfTracePointContext) -> Result<(), i64> {
    let ret = ctx.arg::<u64>(1) as i32 as i64;
    if ret <= 0 {
        return Ok(());
    }
    let flags: u64 = ctx.arg(2);
    if flags & MSG_PEEK != 0 {
        return Ok(()); // the bytes will be read again
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let cfg = config();
    if !in_scope(tgid, cfg) {
        return Ok(());
    }
    let o = &cfg.off;
    if o.sock_dport == 0 || o.sock_protocol == 0 {
        return Ok(());
    }
    let sk: u64 = ctx.arg(0);
    let dport = kread_u32(sk, o.sock_dport) & 0xffff;
    let proto = kread_u32(sk, o.sock_protocol) & 0xffff;
    let dns = if dport == DPORT_53 {
        true
    } else if dport == 0 && proto == IPPROTO_UDP {
        unsafe { DNS_SOCKS.get(&sk) }.is_some()
    } else {
        false
    };
    if !dns {
        return Ok(());
    }
    on_dns_answer(cfg, sk, proto, ret as u64);
    Ok(())
}

/// Sends what the current syscall received on DNS socket `sk`: up to [`DNS_CAPTURE`] bytes
/// of its (first) buffer.
#[inline(always)]
fn on_dns_answer(cfg: &KConfig, sk: u64, proto: u32, ret: u64) {
    let task = unsafe { aya_ebpf::helpers::generated::bpf_get_current_task_btf() };
    let regs = unsafe { aya_ebpf::helpers::generated::bpf_task_pt_regs(task) } as *const PtRegs;
    if regs.is_null() {
        return;
    }
    let (nr, fd, a1, a2) = unsafe { ((*regs).orig_ax, (*regs).di, (*regs).si, (*regs).dx) };
    let (buf, room) = match nr {
        nr::READ | nr::RECVFROM => (a1, a2),
        nr::READV | nr::RECVMSG => {
            let (iov, cnt) = if nr == nr::RECVMSG {
                match unsafe { bpf_probe_read_user(a1 as *const MsgHdr) } {
                    Ok(m) => (m.iov, m.iovlen),
                    Err(_) => return,
                }
            } else {
                (a1, a2)
            };
            if cnt == 0 {
                return;
            }
            match unsafe { bpf_probe_read_user(iov as *const Iovec) } {
                Ok(v) => (v.base, v.len),
                Err(_) => return,
            }
        }
        // recvmmsg (one event per datagram, no index), io_uring, kernel callers: not taken.
        _ => return,
    };
    // The registers are the receiving call's only if its fd is this socket.
    if fd_sock(cfg, fd) != sk {
        return;
    }
    let mut n = ret;
    if n > room {
        n = room; // MSG_TRUNC reports the datagram's length, not what was copied
    }
    let mut head = data_head(Op::Read, nr, fd as i32);
    head.total = ret;
    head.arg = proto as u64;
    head.index = READ_DNS;
    head.flags = F_LAST;
    if n > DNS_CAPTURE as u64 {
        n = DNS_CAPTURE as u64;
    }
    if n < ret {
        head.flags |= F_TRUNCATED;
    }
    if n <= 512 {
        emit_answer::<512>(cfg, &head, buf, n as usize);
    } else {
        emit_answer::<{ DNS_CAPTURE }>(cfg, &head, buf, n as usize);
    }
}

/// Reserves a record of class `N`, reads `n` bytes of user memory into it and submits it
/// (discarded if unreadable). `n` is reloaded and clamped here, where the verifier sees
/// the bound next to the copy (the shared emitter's bound does not survive inlining into
/// this program).
#[inline(always)]
fn emit_answer<const N: usize>(cfg: &KConfig, head: &DataHead, src: u64, n: usize) {
    let Some(mut e) = EVENTS.reserve::<DataEventN<N>>(0) else {
        count(counter::RINGBUF_FULL);
        return;
    };
    let mut n = unsafe { core::ptr::read_volatile(&n) };
    if n > N {
        n = N;
    }
    let p = e.as_mut_ptr();
    unsafe {
        let h = p as *mut DataHead;
        *h = *head;
        let dst = (*p).data.as_mut_ptr() as *mut core::ffi::c_void;
        let r = aya_ebpf::helpers::generated::bpf_probe_read_user(dst, n as u32, src as *const _);
        if r != 0 {
            e.discard(BPF_RB_NO_WAKEUP);
            return;
        }
        (*h).len = n as u32;
    }
    e.submit(wake_flag(cfg, (DATA_HDR_LEN + N) as u64, head.hdr.ts_ns));
}
