//! Maps, the scope check and record emission shared by every program: one ring buffer,
//! per-CPU scratch records and loss counters.

#![allow(unused_imports)]
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

pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const PIPE: u64 = 22;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const SENDMSG: u64 = 46;
    pub const SOCKETPAIR: u64 = 53;
    pub const EXECVE: u64 = 59;
    pub const FCNTL: u64 = 72;
    pub const OPENAT: u64 = 257;
    pub const ACCEPT4: u64 = 288;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const SENDMMSG: u64 = 307;
    pub const EXECVEAT: u64 = 322;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const OPENAT2: u64 = 437;
}

pub const F_DUPFD: u64 = 0;
pub const F_DUPFD_CLOEXEC: u64 = 1030;
pub const O_ACCMODE: u64 = 3;
pub const O_WRONLY: u64 = 1;
pub const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
pub const BPF_RB_AVAIL_DATA: u64 = 0;

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);
#[map]
pub static CONFIG: Array<KConfig> = Array::with_max_entries(1, 0);
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::N, 0);
/// tgids in a watched process subtree.
#[map]
pub static WATCH_TGID: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);
/// cgroup v2 ids whose members are watched.
#[map]
pub static WATCH_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);
/// FNV-1a hashes of exe basenames whose exec puts the process in scope.
#[map]
pub static WATCH_EXE: HashMap<u64, u32> = HashMap::with_max_entries(MAX_NAMES, 0);
/// FNV-1a hashes of credential-file basenames whose fds get their reads captured.
#[map]
pub static CRED_NAMES: HashMap<u64, u32> = HashMap::with_max_entries(MAX_NAMES, 0);
/// (tgid << 32 | fd) of fds whose reads are captured.
#[map]
pub static WATCH_FD: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16384, 0);
/// Saved arguments of in-scope syscalls, by pid_tgid.
#[map]
pub static INFLIGHT: HashMap<u64, Inflight> = HashMap::with_max_entries(16384, 0);
#[map]
pub static DATA_SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static META_SCRATCH: PerCpuArray<MetaEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn config() -> KConfig {
    match CONFIG.get(0) {
        Some(c) => *c,
        None => KConfig::default(),
    }
}

/// Is the current task in a watched scope? The daemon itself never is.
#[inline(always)]
pub fn in_scope(tgid: u32, cfg: &KConfig) -> bool {
    if tgid == cfg.self_tgid {
        return false;
    }
    if unsafe { WATCH_TGID.get(&tgid) }.is_some() {
        return true;
    }
    if cfg.cgroups == 0 {
        return false;
    }
    let cg = unsafe { bpf_get_current_cgroup_id() };
    unsafe { WATCH_CGROUP.get(&cg) }.is_some()
}

#[inline(always)]
pub fn fill_header(hdr: &mut EventHeader, op: Op) {
    let pid_tgid = bpf_get_current_pid_tgid();
    hdr.op = op as u32;
    hdr.tgid = (pid_tgid >> 32) as u32;
    hdr.pid = pid_tgid as u32;
    hdr.uid = bpf_get_current_uid_gid() as u32;
    hdr.ts_ns = unsafe { bpf_ktime_get_ns() };
    hdr.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
}

/// Wakeup policy: batch records (no wakeup) until the ring holds `wakeup_bytes`; the daemon
/// also drains on a short timer, so nothing waits long.
#[inline(always)]
pub fn wakeup_flag(cfg: &KConfig) -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    if avail >= cfg.wakeup_bytes as u64 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
pub fn meta_scratch(op: Op) -> Option<&'static mut MetaEvent> {
    let p = META_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *p };
    fill_header(&mut ev.hdr, op);
    ev.ret = 0;
    ev.arg0 = 0;
    ev.arg1 = 0;
    ev.fd = -1;
    ev.fd2 = -1;
    ev.syscall = 0;
    ev.addr_len = 0;
    Some(ev)
}

#[inline(always)]
pub fn submit_meta(ev: &MetaEvent, cfg: &KConfig) {
    if EVENTS.output::<MetaEvent>(ev, wakeup_flag(cfg)).is_err() {
        count(counter::RINGBUF_FULL);
    }
}

#[inline(always)]
pub fn data_scratch(op: Op) -> Option<&'static mut DataEvent> {
    let p = DATA_SCRATCH.get_ptr_mut(0)?;
    let ev = unsafe { &mut *p };
    fill_header(&mut ev.hdr, op);
    ev.call_id = ev.hdr.ts_ns;
    ev.total = 0;
    ev.arg = 0;
    ev.fd = -1;
    ev.syscall = 0;
    ev.offset = 0;
    ev.len = 0;
    ev.index = 0;
    ev.flags = 0;
    Some(ev)
}

/// Sends the header and the first `ev.len` data bytes.
#[inline(always)]
pub fn submit_data(ev: &DataEvent, cfg: &KConfig) {
    let len = ev.len as usize;
    if len > CHUNK {
        return;
    }
    let bytes: &[u8] = unsafe {
        core::slice::from_raw_parts(ev as *const DataEvent as *const u8, DATA_HDR_LEN + len)
    };
    if EVENTS.output::<[u8]>(bytes, wakeup_flag(cfg)).is_err() {
        count(counter::RINGBUF_FULL);
    }
}

/// Reads a socket address of `len` bytes from user memory into `ev.addr`.
#[inline(always)]
pub fn read_addr(ev: &mut MetaEvent, uaddr: u64, len: u64) {
    if uaddr == 0 {
        return;
    }
    let n = if len > ADDR_LEN as u64 {
        ADDR_LEN
    } else {
        len as usize
    };
    if n == 0 {
        return;
    }
    if unsafe { bpf_probe_read_user_buf(uaddr as *const u8, &mut ev.addr[..n]) }.is_ok() {
        ev.addr_len = n as u32;
    }
}
