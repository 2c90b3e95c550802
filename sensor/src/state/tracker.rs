//! The tracker: assembles ring-buffer records into enriched events.
//!
//! The kernel sends facts (this pid wrote these bytes to fd 5; fd 5 was connected to
//! 127.0.0.1:443; pid 9 forked 10). This module keeps the tables that turn them into
//! "curl (child of bash, in container abc) sent 40 bytes to 127.0.0.1:443": a process table
//! seeded from `/proc`, a per-process fd table that follows open/socket/connect/dup/close and
//! fork, and reassembly of multi-record payloads. Gaps fall back to `/proc`.

use rustc_hash::FxHashMap as HashMap;
use std::time::{Duration, Instant, SystemTime};

use sensor_common::{Op, EXEC_BLOCK, EXEC_FILENAME, F_FAULT, F_LAST, F_TRUNCATED, POS_UNKNOWN};

use super::events::{
    parse_sockaddr, Ancestor, Endpoint, EventBody, FdKind, ProcessRef, SensorEvent,
};
use super::process::{container_of, FdEntry, Process};
use crate::host::procfs::{self, FdLink};
use crate::kernel::decode::{DataRecord, MetaRecord, RawEvent};
use crate::ops::stats::Stats;

struct PendingCall {
    call_id: u64,
    op: Op,
    hdr: sensor_common::EventHeader,
    fd: i32,
    syscall: u32,
    total: u64,
    truncated: bool,
    chunks: Vec<(u32, Vec<u8>)>,
}

/// An exec being assembled: the filename and the argument + environment block as the
/// kernel read it from the new image (NUL-separated strings, in chunks).
#[derive(Default)]
struct PendingExec {
    filename: String,
    block: Vec<u8>,
    /// Where the environment starts in `block`.
    env_at: usize,
    /// The block was cut (bound reached or a chunk lost).
    cut: bool,
    since: Option<Instant>,
}

impl PendingExec {
    /// Appends a chunk at `offset` of the block; a gap marks the block cut.
    fn chunk(&mut self, d: &DataRecord) {
        self.env_at = d.index as usize;
        if d.offset as usize != self.block.len() || d.flags & F_TRUNCATED != 0 {
            self.cut = true;
        }
        if d.offset as usize == self.block.len() {
            self.block.extend_from_slice(&d.data);
        }
    }

    /// argv strings and the environment block.
    fn split(&self) -> (&[u8], &[u8]) {
        let at = self.env_at.min(self.block.len());
        self.block.split_at(at)
    }
}

/// `len` bytes of `tgid`'s memory at `addr` (faulting pages in as the process would).
fn read_mem(tgid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{tgid}/mem")).ok()?;
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, addr).ok()?;
    (n == len).then_some(buf)
}

/// Up to `len` bytes of the file behind fd `fd` of `tgid` at `pos` (through
/// `/proc/<pid>/fd`, else by the path the fd table knows): what a kernel-side copy read.
fn read_source(tgid: u32, fd: i32, path: Option<&str>, pos: u64, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{tgid}/fd/{fd}"))
        .or_else(|e| path.map(std::fs::File::open).unwrap_or(Err(e)))
        .ok()?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return None,
        }
    }
    buf.truncate(got);
    Some(buf)
}

/// Names of io_uring request opcodes (`enum io_uring_op`) that move data.
pub fn io_uring_op_name(op: u64) -> String {
    match op {
        1 => "readv".into(),
        2 => "writev".into(),
        4 => "read_fixed".into(),
        5 => "write_fixed".into(),
        9 => "sendmsg".into(),
        10 => "recvmsg".into(),
        13 => "accept".into(),
        16 => "connect".into(),
        18 => "openat".into(),
        19 => "close".into(),
        22 => "read".into(),
        23 => "write".into(),
        26 => "send".into(),
        27 => "recv".into(),
        28 => "openat2".into(),
        30 => "splice".into(),
        33 => "tee".into(),
        45 => "socket".into(),
        47 => "send_zc".into(),
        48 => "sendmsg_zc".into(),
        n => format!("opcode {n}"),
    }
}

/// `KEY=value` pairs of a NUL-separated environment block.
fn parse_env(block: &[u8]) -> Vec<(String, String)> {
    block
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// How long an incomplete call or exec waits for its remaining records.
const PENDING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an exited process stays for late records.
const EXIT_GRACE: Duration = Duration::from_secs(5);
/// How often the process table is checked against /proc.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The state machine fed with decoded records.
pub struct Tracker {
    procs: HashMap<u32, Process>,
    /// Unfinished multi-record calls, by thread (a thread has one syscall at a time), with
    /// when their first record came.
    calls: HashMap<u32, (Instant, PendingCall)>,
    execs: HashMap<u32, PendingExec>,
    stream_offsets: HashMap<(u32, i32), u64>,
    cgroups: crate::host::cgroupfs::CgroupIndex,
    last_sweep: Instant,
    /// realtime - monotonic, in ns, to timestamp kernel records.
    clock_offset_ns: i128,
    /// Bytes read back from a kernel-side copy's source file (the capture limit).
    capture_bytes: usize,
    /// What watched processes wrote into each pipe (by inode) and nobody took out yet, so a
    /// splice/tee out of the pipe can say which bytes it moved.
    pipes: HashMap<u64, std::collections::VecDeque<u8>>,
    stats: std::sync::Arc<Stats>,
}

/// x86_64 syscall names for the syscalls the probes follow.
pub fn syscall_name(nr: u32) -> &'static str {
    match nr {
        0 => "read",
        1 => "write",
        2 => "open",
        17 => "pread64",
        18 => "pwrite64",
        19 => "readv",
        20 => "writev",
        44 => "sendto",
        46 => "sendmsg",
        257 => "openat",
        295 => "preadv",
        296 => "pwritev",
        307 => "sendmmsg",
        327 => "preadv2",
        328 => "pwritev2",
        437 => "openat2",
        59 => "execve",
        322 => "execveat",
        40 => "sendfile",
        275 => "splice",
        276 => "tee",
        278 => "vmsplice",
        326 => "copy_file_range",
        425 => "io_uring_setup",
        426 => "io_uring_enter",
        427 => "io_uring_register",
        _ => "other",
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

fn is_tty_path(p: &str) -> bool {
    p.starts_with("/dev/pts/")
        || p.starts_with("/dev/tty")
        || p == "/dev/console"
        || p == "/dev/ptmx"
}

fn endpoint_of_link(pid: u32, link: &FdLink) -> (FdKind, Option<Endpoint>) {
    match link {
        FdLink::Path(p) if is_tty_path(p) => {
            (FdKind::Tty, Some(Endpoint::Path { path: p.clone() }))
        }
        FdLink::Path(p) => (FdKind::File, Some(Endpoint::Path { path: p.clone() })),
        FdLink::Pipe(i) => (FdKind::Pipe, Some(Endpoint::Pipe { inode: *i })),
        FdLink::Socket(i) => {
            let ep = procfs::socket_info(pid, *i).and_then(|s| match (s.proto, s.peer, s.path) {
                ("unix", _, path) => Some(Endpoint::Unix {
                    path: path.unwrap_or_default(),
                }),
                (proto, Some(peer), _) => Some(Endpoint::Inet {
                    proto: proto.into(),
                    addr: peer,
                }),
                _ => None,
            });
            (FdKind::Socket, ep)
        }
        FdLink::Other(_) => (FdKind::Other, None),
    }
}

impl Tracker {
    /// A tracker with an empty process table.
    pub fn new(stats: std::sync::Arc<Stats>) -> Tracker {
        Tracker {
            procs: HashMap::default(),
            calls: HashMap::default(),
            execs: HashMap::default(),
            stream_offsets: HashMap::default(),
            cgroups: crate::host::cgroupfs::CgroupIndex::new(),
            last_sweep: Instant::now(),
            clock_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
            capture_bytes: 16384,
            pipes: HashMap::default(),
            stats,
        }
    }

    /// Bytes of a sendfile/splice/copy_file_range source read back (default 16 KiB; the
    /// sensor passes `capture_bytes`).
    pub fn set_capture_bytes(&mut self, n: usize) {
        self.capture_bytes = n;
    }

    /// Seeds the whole process table from `/proc` (fds only for `watched` pids), so parent
    /// chains resolve even for ancestors that exit before their descendants' events arrive.
    pub fn seed_all(&mut self, watched: &[u32]) {
        for pid in procfs::all_pids() {
            self.seed(pid, watched.contains(&pid));
        }
    }

    /// Seeds one process (and, if `with_fds`, its fd table) from `/proc`.
    pub fn seed(&mut self, pid: u32, with_fds: bool) {
        if self.procs.contains_key(&pid) {
            return;
        }
        if let Some(s) = procfs::snapshot(pid) {
            let mut p = Process::from_snapshot(s);
            for (fd, link) in procfs::fds(pid).into_iter().filter(|_| with_fds) {
                let (kind, endpoint) = endpoint_of_link(pid, &link);
                p.fds.insert(
                    fd,
                    FdEntry {
                        kind,
                        endpoint,
                        sock_type: None,
                        captured: false,
                        cloexec: false,
                    },
                );
            }
            self.procs.insert(pid, p);
        }
    }

    /// A process, if known.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid)
    }

    /// The process of a record, created from /proc on first sight; a process unknown to
    /// /proc gets its cgroup from the record.
    fn proc_for(&mut self, hdr: &sensor_common::EventHeader) -> &mut Process {
        if !self.procs.contains_key(&hdr.tgid) {
            let mut p = match procfs::snapshot(hdr.tgid) {
                Some(s) => Process::from_snapshot(s),
                None => Process::placeholder(hdr.tgid, hdr.uid),
            };
            // A process already gone (or a zombie) has no readable cgroup in /proc: use the
            // cgroup id the kernel stamped on the record.
            if p.cgroup.is_empty() {
                if let Some(path) = self.cgroups.path(hdr.cgroup_id) {
                    let (id, rt) = container_of(&path);
                    p.cgroup = path;
                    p.container_id = id;
                    p.container_runtime = rt;
                }
            }
            self.procs.insert(hdr.tgid, p);
        }
        self.procs.get_mut(&hdr.tgid).expect("inserted above")
    }

    fn time(&self, ts_ns: u64) -> SystemTime {
        let ns = ts_ns as i128 + self.clock_offset_ns;
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.max(0) as u64)
    }

    fn process_ref(&mut self, hdr: &sensor_common::EventHeader) -> std::sync::Arc<ProcessRef> {
        if let Some(v) = &self.proc_for(hdr).view {
            return v.clone();
        }
        let p = self.proc_for(hdr);
        let (pid, ppid, uid, exe, argv, cgroup, container_id, container_runtime) = (
            p.pid,
            p.ppid,
            p.uid,
            p.exe.clone(),
            p.argv.clone(),
            p.cgroup.clone(),
            p.container_id.clone(),
            p.container_runtime.clone(),
        );
        let mut ancestry = Vec::new();
        let mut cur = ppid;
        while cur > 1 && ancestry.len() < 16 {
            if !self.procs.contains_key(&cur) {
                match procfs::snapshot(cur) {
                    Some(s) => {
                        self.procs.insert(cur, Process::from_snapshot(s));
                    }
                    None => {
                        ancestry.push(Ancestor {
                            pid: cur,
                            exe: String::new(),
                        });
                        break;
                    }
                }
            }
            let a = &self.procs[&cur];
            ancestry.push(Ancestor {
                pid: cur,
                exe: a.exe.clone(),
            });
            if a.ppid == cur {
                break;
            }
            cur = a.ppid;
        }
        let view = std::sync::Arc::new(ProcessRef {
            pid,
            ppid,
            uid,
            exe,
            argv,
            cgroup,
            container_id,
            container_runtime,
            ancestry,
        });
        self.proc_for(hdr).view = Some(view.clone());
        view
    }

    fn event(&mut self, hdr: &sensor_common::EventHeader, body: EventBody) -> SensorEvent {
        Stats::inc(&self.stats.events);
        SensorEvent {
            time: self.time(hdr.ts_ns),
            tid: hdr.pid,
            process: self.process_ref(hdr),
            body,
        }
    }

    /// What fd `fd` of `tgid` is, asking `/proc` when the table does not know.
    pub fn resolve_fd(
        &mut self,
        hdr: &sensor_common::EventHeader,
        fd: i32,
    ) -> (FdKind, Option<Endpoint>) {
        let tgid = hdr.tgid;
        let p = self.proc_for(hdr);
        if let Some(e) = p.fds.get(&fd) {
            if e.endpoint.is_some() {
                return (e.kind, e.endpoint.clone());
            }
        }
        match procfs::fd_link(tgid, fd) {
            Some(link) => {
                let (kind, mut endpoint) = endpoint_of_link(tgid, &link);
                let p = self.proc_for(hdr);
                let entry = p.fds.entry(fd).or_insert(FdEntry {
                    kind,
                    endpoint: None,
                    sock_type: None,
                    captured: false,
                    cloexec: false,
                });
                if let (Some(Endpoint::Inet { proto, .. }), Some(t)) =
                    (&mut endpoint, entry.sock_type)
                {
                    *proto = sock_proto(t).into();
                }
                entry.kind = kind;
                if endpoint.is_some() {
                    entry.endpoint = endpoint;
                }
                (entry.kind, entry.endpoint.clone())
            }
            None => match self.proc_for(hdr).fds.get(&fd) {
                Some(e) => (e.kind, e.endpoint.clone()),
                None => (FdKind::Unknown, None),
            },
        }
    }

    /// Feeds one record; returns the events it completes.
    pub fn handle(&mut self, ev: RawEvent) -> Vec<SensorEvent> {
        match ev {
            RawEvent::Data(op, d) => self.on_data(op, d),
            RawEvent::Meta(op, m) => self.on_meta(op, m),
        }
    }

    fn on_data(&mut self, op: Op, d: DataRecord) -> Vec<SensorEvent> {
        match op {
            Op::Write | Op::Read => {
                let tid = d.hdr.pid;
                let mut out = Vec::new();
                let (since, mut c) = match self.calls.remove(&tid) {
                    Some((since, c)) if c.call_id == d.call_id => (Some(since), c),
                    prev => {
                        // A new call from the same thread means the unfinished one lost its
                        // LAST record.
                        if let Some((_, stale)) = prev {
                            out.extend(self.finish_call(stale, true));
                        }
                        (
                            None,
                            PendingCall {
                                call_id: d.call_id,
                                op,
                                hdr: d.hdr,
                                fd: d.fd,
                                syscall: d.syscall,
                                total: d.total,
                                truncated: false,
                                chunks: Vec::new(),
                            },
                        )
                    }
                };
                c.truncated |= d.flags & F_TRUNCATED != 0;
                let mut d = d;
                if d.flags & F_FAULT != 0 && d.data.is_empty() && d.index > 0 {
                    // Pages not resident when the probe ran (an mmap'ed file): read them
                    // from the process, which is usually still there.
                    if let Some(b) = read_mem(d.hdr.tgid, d.arg, d.index as usize) {
                        d.data = b;
                    }
                }
                if !d.data.is_empty() {
                    c.chunks.push((d.offset, d.data));
                }
                if d.flags & F_LAST != 0 {
                    out.extend(self.finish_call(c, false));
                } else {
                    // Only calls spanning several records wait in the table (most calls fit
                    // one record and never read the clock).
                    self.calls
                        .insert(tid, (since.unwrap_or_else(Instant::now), c));
                }
                out
            }
            Op::ExecArg => {
                let e = self.execs.entry(d.hdr.pid).or_default();
                match d.arg {
                    EXEC_FILENAME => {
                        // A new exec from this thread restarts collection.
                        *e = PendingExec {
                            filename: String::from_utf8_lossy(&d.data).into_owned(),
                            since: Some(Instant::now()),
                            ..Default::default()
                        };
                    }
                    EXEC_BLOCK => e.chunk(&d),
                    _ => {}
                }
                Vec::new()
            }
            Op::Harvest => {
                let method = match d.arg {
                    sensor_common::HARVEST_ENVIRON => "environ",
                    sensor_common::HARVEST_MEM => "mem",
                    sensor_common::HARVEST_PTRACE => "ptrace",
                    sensor_common::HARVEST_VM_READ => "process_vm_readv",
                    sensor_common::HARVEST_VM_WRITE => "process_vm_writev",
                    sensor_common::HARVEST_PIDFD_GETFD => "pidfd_getfd",
                    _ => "unknown",
                };
                let path =
                    (!d.data.is_empty()).then(|| String::from_utf8_lossy(&d.data).into_owned());
                vec![self.event(
                    &d.hdr,
                    EventBody::Harvest {
                        method,
                        target_pid: d.index,
                        path,
                    },
                )]
            }
            Op::Open => {
                let mut path = String::from_utf8_lossy(&d.data).into_owned();
                if !path.starts_with('/') {
                    if let Some(FdLink::Path(p)) = procfs::fd_link(d.hdr.tgid, d.fd) {
                        path = p;
                    }
                }
                let kind = if is_tty_path(&path) {
                    FdKind::Tty
                } else {
                    FdKind::File
                };
                let captured = d.index == 1;
                let p = self.proc_for(&d.hdr);
                p.fds.insert(
                    d.fd,
                    FdEntry {
                        kind,
                        endpoint: Some(Endpoint::Path { path: path.clone() }),
                        sock_type: None,
                        captured,
                        cloexec: d.arg & libc::O_CLOEXEC as u64 != 0,
                    },
                );
                self.stream_offsets.remove(&(d.hdr.tgid, d.fd));
                let mut out = vec![self.event(
                    &d.hdr,
                    EventBody::Open {
                        fd: d.fd,
                        path: path.clone(),
                        flags: d.arg,
                        captured,
                    },
                )];
                if captured {
                    // A credential file opened by a watched process: its content is read
                    // here (the kernel follows no read), reported as what the process read.
                    if let Some((data, total)) = self.read_credential(d.hdr.tgid, d.fd, &path) {
                        let truncated = total > data.len() as u64;
                        out.push(self.event(
                            &d.hdr,
                            EventBody::Read {
                                fd: d.fd,
                                path: Some(path),
                                data,
                                total,
                                truncated,
                            },
                        ));
                    }
                }
                out
            }
            _ => Vec::new(),
        }
    }

    fn finish_call(&mut self, mut c: PendingCall, lost_tail: bool) -> Vec<SensorEvent> {
        c.chunks.sort_by_key(|(off, _)| *off);
        let mut gap = lost_tail;
        let mut data = Vec::new();
        if c.chunks.len() == 1 && c.chunks[0].0 == 0 {
            data = c.chunks.pop().expect("one chunk").1;
        }
        for (off, bytes) in c.chunks {
            if off as usize != data.len() {
                gap = true;
                if (off as usize) < data.len() {
                    continue;
                }
            }
            data.extend_from_slice(&bytes);
        }
        if gap {
            Stats::inc(&self.stats.incomplete_calls);
        }
        let hdr = c.hdr;
        match c.op {
            Op::Read => {
                let path = self
                    .proc_for(&hdr)
                    .fds
                    .get(&c.fd)
                    .and_then(|e| match &e.endpoint {
                        Some(Endpoint::Path { path }) => Some(path.clone()),
                        _ => None,
                    });
                let ev = EventBody::Read {
                    fd: c.fd,
                    path,
                    data,
                    total: c.total,
                    truncated: c.truncated,
                };
                vec![self.event(&hdr, ev)]
            }
            _ => {
                let (fd_kind, endpoint) = self.resolve_fd(&hdr, c.fd);
                if let Some(Endpoint::Pipe { inode }) = endpoint {
                    self.pipe_in(inode, &data, gap || c.truncated);
                }
                let off = self.stream_offsets.entry((hdr.tgid, c.fd)).or_insert(0);
                let stream_offset = *off;
                *off += c.total;
                let ev = EventBody::Write {
                    fd: c.fd,
                    syscall: syscall_name(c.syscall),
                    fd_kind,
                    endpoint,
                    data,
                    total: c.total,
                    truncated: c.truncated,
                    incomplete: gap,
                    stream_offset,
                };
                vec![self.event(&hdr, ev)]
            }
        }
    }

    fn on_meta(&mut self, op: Op, m: MetaRecord) -> Vec<SensorEvent> {
        let tgid = m.hdr.tgid;
        match op {
            Op::ExecDone => {
                let pending = self.execs.remove(&m.hdr.pid);
                if m.ret != 0 {
                    return Vec::new();
                }
                let pe = pending.unwrap_or_default();
                let (argv_block, env_block) = pe.split();
                let argv = procfs::split_nul(argv_block);
                let mut env = parse_env(env_block);
                let mut env_truncated = pe.cut;
                if env_truncated {
                    // Larger than the kernel's bound: the whole block from /proc, if the
                    // process is still there.
                    let full = procfs::environ(tgid);
                    if full.len() >= env.len() && !full.is_empty() {
                        env = full;
                        env_truncated = false;
                    }
                }
                let exe = std::fs::read_link(format!("/proc/{tgid}/exe"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| pe.filename.clone());
                let p = self.proc_for(&m.hdr);
                p.exe = exe;
                p.view = None;
                p.argv = argv.clone();
                if m.arg1 != 0 {
                    p.ppid = m.arg1 as u32;
                }
                p.fds.retain(|_, e| !e.cloexec);
                let body = EventBody::Exec {
                    filename: pe.filename,
                    argv,
                    env,
                    env_truncated,
                    exe_match: m.arg0 & sensor_common::EXEC_F_EXE_MATCH != 0,
                };
                vec![self.event(&m.hdr, body)]
            }
            Op::Fork => {
                // The kernel reports new processes only (threads share their tgid).
                let child = m.fd2 as u32;
                let parent = self.proc_for(&m.hdr).clone();
                let mut cp = procfs::snapshot(child)
                    .map(Process::from_snapshot)
                    .unwrap_or_else(|| Process {
                        pid: child,
                        ppid: tgid,
                        fds: HashMap::default(),
                        exited: None,
                        view: None,
                        ..parent.clone()
                    });
                cp.ppid = tgid;
                if cp.exe.is_empty() {
                    cp.exe = parent.exe.clone();
                }
                cp.fds = parent.fds.clone();
                self.procs.insert(child, cp);
                vec![self.event(&m.hdr, EventBody::Fork { child })]
            }
            Op::Exit => {
                let ev = self.event(&m.hdr, EventBody::Exit);
                if let Some(p) = self.procs.get_mut(&tgid) {
                    p.exited = Some(Instant::now());
                }
                vec![ev]
            }
            Op::Close => {
                self.proc_for(&m.hdr).fds.remove(&m.fd);
                self.stream_offsets.remove(&(tgid, m.fd));
                vec![self.event(&m.hdr, EventBody::Close { fd: m.fd })]
            }
            Op::Dup => {
                let p = self.proc_for(&m.hdr);
                match p.fds.get(&m.fd).cloned() {
                    Some(mut e) => {
                        e.cloexec = false;
                        p.fds.insert(m.fd2, e);
                    }
                    None => {
                        p.fds.remove(&m.fd2);
                    }
                }
                self.stream_offsets.remove(&(tgid, m.fd2));
                if !self.proc_for(&m.hdr).fds.contains_key(&m.fd2) {
                    // Unknown source: resolve the new fd from /proc now.
                    let _ = self.resolve_fd(&m.hdr, m.fd2);
                }
                vec![self.event(
                    &m.hdr,
                    EventBody::Dup {
                        old_fd: m.fd,
                        new_fd: m.fd2,
                    },
                )]
            }
            Op::Socket => {
                let kind = FdKind::Socket;
                let stype = m.arg1 & 0xf;
                self.proc_for(&m.hdr).fds.insert(
                    m.fd,
                    FdEntry {
                        kind,
                        endpoint: None,
                        sock_type: Some(stype),
                        captured: false,
                        cloexec: m.arg1 & libc::SOCK_CLOEXEC as u64 != 0,
                    },
                );
                self.stream_offsets.remove(&(tgid, m.fd));
                Vec::new()
            }
            Op::Connect | Op::SendTo => {
                let p = self.proc_for(&m.hdr);
                let entry = p.fds.entry(m.fd).or_insert(FdEntry {
                    kind: FdKind::Socket,
                    endpoint: None,
                    sock_type: None,
                    captured: false,
                    cloexec: false,
                });
                let mut ep = parse_sockaddr(&m.addr);
                if let (Some(Endpoint::Inet { proto, .. }), Some(t)) = (&mut ep, entry.sock_type) {
                    *proto = sock_proto(t).into();
                }
                entry.kind = FdKind::Socket;
                let ok = op == Op::SendTo || m.ret == 0 || m.ret == -(libc::EINPROGRESS as i64);
                if ok && ep.is_some() {
                    entry.endpoint = ep.clone();
                }
                if op == Op::SendTo {
                    return Vec::new();
                }
                vec![self.event(
                    &m.hdr,
                    EventBody::Connect {
                        fd: m.fd,
                        endpoint: ep,
                        ret: m.ret,
                    },
                )]
            }
            Op::Accept => {
                let p = self.proc_for(&m.hdr);
                let stype = p.fds.get(&m.fd).and_then(|e| e.sock_type);
                let mut ep = parse_sockaddr(&m.addr);
                if let (Some(Endpoint::Inet { proto, .. }), Some(t)) = (&mut ep, stype) {
                    *proto = sock_proto(t).into();
                }
                p.fds.insert(
                    m.fd2,
                    FdEntry {
                        kind: FdKind::Socket,
                        endpoint: ep.clone(),
                        sock_type: stype,
                        captured: false,
                        cloexec: false,
                    },
                );
                self.stream_offsets.remove(&(tgid, m.fd2));
                vec![self.event(
                    &m.hdr,
                    EventBody::Accept {
                        fd: m.fd,
                        new_fd: m.fd2,
                        endpoint: ep,
                    },
                )]
            }
            Op::Transfer => self.on_transfer(&m),
            Op::IoUring => {
                let detail = match m.syscall {
                    425 => "setup".to_string(),
                    426 => "enter".to_string(),
                    427 => "register".to_string(),
                    _ => io_uring_op_name(m.arg0),
                };
                vec![self.event(
                    &m.hdr,
                    EventBody::UnmonitoredChannel {
                        channel: "io_uring",
                        detail,
                    },
                )]
            }
            Op::Pipe => {
                let socketpair = m.syscall == 53;
                let p = self.proc_for(&m.hdr);
                for fd in [m.fd, m.fd2] {
                    let entry = if socketpair {
                        FdEntry {
                            kind: FdKind::Socket,
                            endpoint: Some(Endpoint::Unix {
                                path: String::new(),
                            }),
                            sock_type: Some(m.arg1 & 0xf),
                            captured: false,
                            cloexec: false,
                        }
                    } else {
                        FdEntry {
                            kind: FdKind::Pipe,
                            endpoint: (m.arg0 != 0).then_some(Endpoint::Pipe { inode: m.arg0 }),
                            sock_type: None,
                            captured: false,
                            cloexec: false,
                        }
                    };
                    p.fds.insert(fd, entry);
                }
                for fd in [m.fd, m.fd2] {
                    self.stream_offsets.remove(&(tgid, fd));
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Up to `capture_bytes` of a credential file a watched process opened, and its size:
    /// through its fd while open, else through the process's root (containers), else by
    /// path.
    fn read_credential(&self, tgid: u32, fd: i32, path: &str) -> Option<(Vec<u8>, u64)> {
        use std::io::Read;
        let f = std::fs::File::open(format!("/proc/{tgid}/fd/{fd}"))
            .or_else(|_| std::fs::File::open(format!("/proc/{tgid}/root{path}")))
            .or_else(|_| std::fs::File::open(path))
            .ok()?;
        let total = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut data = Vec::new();
        f.take(self.capture_bytes as u64)
            .read_to_end(&mut data)
            .ok()?;
        let total = total.max(data.len() as u64);
        Some((data, total))
    }

    /// Bytes a watched process wrote into a pipe (an incomplete write breaks the record: the
    /// pipe's content is unknown from there on).
    fn pipe_in(&mut self, inode: u64, data: &[u8], incomplete: bool) {
        const PIPE_KEEP: usize = 16 << 10;
        if incomplete {
            self.pipes.remove(&inode);
            return;
        }
        if self.pipes.len() > 256 && !self.pipes.contains_key(&inode) {
            self.pipes.clear();
        }
        let q = self.pipes.entry(inode).or_default();
        q.extend(data);
        if q.len() > PIPE_KEEP {
            let extra = q.len() - PIPE_KEEP;
            q.drain(..extra);
        }
    }

    /// The first `n` bytes recorded for a pipe: removed for splice, left for tee. `None`
    /// when fewer are known (a writer outside the scope, or a lost record).
    fn pipe_out(&mut self, inode: u64, n: usize, consume: bool) -> Option<Vec<u8>> {
        let q = self.pipes.get_mut(&inode)?;
        if q.len() < n {
            self.pipes.remove(&inode);
            return None;
        }
        Some(if consume {
            q.drain(..n).collect()
        } else {
            q.iter().take(n).copied().collect()
        })
    }

    /// A kernel-side copy (sendfile, splice, tee, copy_file_range): a write of the bytes it
    /// moved when they can be known (read back from the source file, or recorded as written
    /// into the source pipe), else an uninspected transfer.
    fn on_transfer(&mut self, m: &MetaRecord) -> Vec<SensorEvent> {
        let total = m.ret.max(0) as u64;
        let syscall = syscall_name(m.syscall);
        let (fd_kind, endpoint) = self.resolve_fd(&m.hdr, m.fd);
        let (src_kind, src_endpoint) = self.resolve_fd(&m.hdr, m.fd2);
        let regular = m.arg1 as u32 & libc::S_IFMT == libc::S_IFREG;
        let want = (total as usize).min(self.capture_bytes);
        let data = match (&src_endpoint, regular && m.arg0 != POS_UNKNOWN) {
            (Some(Endpoint::Path { path }), true) => {
                read_source(m.hdr.tgid, m.fd2, Some(path), m.arg0, want)
            }
            (_, true) => read_source(m.hdr.tgid, m.fd2, None, m.arg0, want),
            (Some(Endpoint::Pipe { inode }), false) => {
                let inode = *inode;
                let consume = m.syscall != 276; // tee leaves the bytes in the pipe
                self.pipe_out(inode, total as usize, consume).map(|mut d| {
                    d.truncate(want);
                    d
                })
            }
            _ => None,
        };
        if let (Some(d), Some(Endpoint::Pipe { inode })) = (&data, &endpoint) {
            let inode = *inode;
            let d = d.clone();
            self.pipe_in(inode, &d, d.len() < total as usize);
        }
        let off = self.stream_offsets.entry((m.hdr.tgid, m.fd)).or_insert(0);
        let stream_offset = *off;
        *off += total;
        let body = match data {
            Some(data) => EventBody::Write {
                fd: m.fd,
                syscall,
                fd_kind,
                endpoint,
                incomplete: data.len() < want,
                truncated: total > data.len() as u64,
                data,
                total,
                stream_offset,
            },
            None => EventBody::Transfer {
                fd: m.fd,
                syscall,
                fd_kind,
                endpoint,
                src_fd: m.fd2,
                src_kind,
                src_endpoint,
                total,
            },
        };
        vec![self.event(&m.hdr, body)]
    }

    /// Periodic housekeeping: flushes calls whose last record never came, drops stale exec
    /// collections and processes that exited a while ago.
    pub fn tick(&mut self) -> Vec<SensorEvent> {
        let now = Instant::now();
        let stale: Vec<_> = self
            .calls
            .iter()
            .filter(|(_, (since, _))| now - *since > PENDING_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in stale {
            if let Some((_, c)) = self.calls.remove(&k) {
                out.extend(self.finish_call(c, true));
            }
        }
        self.execs
            .retain(|_, e| e.since.is_some_and(|t| now - t <= PENDING_TIMEOUT * 5));
        // Processes outside the scope exit without an event: sweep the table against /proc
        // now and then so it does not grow with the host's process churn.
        if now.duration_since(self.last_sweep) > SWEEP_EVERY {
            self.last_sweep = now;
            for p in self.procs.values_mut() {
                if p.exited.is_none() && !procfs::alive(p.pid) {
                    p.exited = Some(now);
                }
            }
        }
        let gone: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.exited.is_some_and(|t| now - t > EXIT_GRACE))
            .map(|(k, _)| *k)
            .collect();
        for pid in gone {
            self.procs.remove(&pid);
            self.stream_offsets.retain(|(p, _), _| *p != pid);
        }
        out
    }

    /// Number of processes tracked.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// True when no process is tracked.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }
}

fn sock_proto(t: u64) -> &'static str {
    match t as i32 {
        libc::SOCK_STREAM => "tcp",
        libc::SOCK_DGRAM => "udp",
        _ => "ip",
    }
}
