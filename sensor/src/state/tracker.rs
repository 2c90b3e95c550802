//! The tracker: assembles ring-buffer records into enriched events.
//!
//! The kernel sends facts (this pid wrote these bytes to fd 5; fd 5 was connected to
//! 127.0.0.1:443; pid 9 forked 10). This module keeps the tables that turn them into
//! "curl (child of bash, in container abc) sent 40 bytes to 127.0.0.1:443": a process table
//! seeded from `/proc`, a per-process fd table that follows open/socket/connect/dup/close and
//! fork, and reassembly of multi-record payloads. Gaps fall back to `/proc`.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sensor_common::{Op, EXEC_BLOCK, EXEC_FILENAME, F_FAULT, F_LAST, F_TRUNCATED, POS_UNKNOWN};

use super::events::{
    parse_sockaddr, Ancestor, Endpoint, EventBody, FdKind, Peer, ProcessRef, SensorEvent,
};
use super::process::{container_of, FdEntry, PipeEnd, Process};
use super::workspace::{WorkspaceKind, WorkspaceRef};
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
    /// Op-specific argument (the connection object of TLS records).
    arg: u64,
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
    let link = format!("/proc/{tgid}/fd/{fd}");
    // Through the fd unless it no longer names the known path (closed and reused).
    let renamed = |p: &str| std::fs::read_link(&link).is_ok_and(|l| l.as_os_str() != p);
    let f = match path {
        Some(p) if renamed(p) => std::fs::File::open(p),
        _ => {
            std::fs::File::open(&link).or_else(|e| path.map(std::fs::File::open).unwrap_or(Err(e)))
        }
    }
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
    /// TLS plaintext: parked writes, connection → fd bindings, plaintext offsets.
    tls: super::tls::TlsTies,
    cgroups: crate::host::cgroupfs::CgroupIndex,
    last_sweep: Instant,
    /// realtime - monotonic, in ns, to timestamp kernel records.
    clock_offset_ns: i128,
    /// Bytes read back from a kernel-side copy's source file (the capture limit).
    capture_bytes: usize,
    /// Is a tgid in the kernel's process scope? (Decides harvesting opens the kernel could
    /// not: a bare `environ` relative to a directory; without it, none is reported.)
    watch_check: Option<Box<dyn Fn(u32) -> bool + Send>>,
    /// What watched processes wrote into each pipe (by inode) and nobody took out yet, so a
    /// splice/tee out of the pipe can say which bytes it moved.
    pipes: HashMap<u64, std::collections::VecDeque<u8>>,
    stats: std::sync::Arc<Stats>,
    /// Watched roots: each starts a process-tree workspace (outside containers).
    roots: HashSet<u32>,
    /// Workspaces of containers and plain cgroups, shared by their processes.
    shared_workspaces: HashMap<String, Arc<WorkspaceRef>>,
    /// Id of the next pipe or socketpair.
    next_pipe: u64,
    /// Bumped whenever an fd table changes; cached pipe peers older than it are stale.
    fd_gen: u64,
    /// Readers of each pipe, computed on a write and kept while no fd table changes.
    pipe_peers: HashMap<(u64, u8), (u64, Arc<Peer>)>,
    /// Owners of listening unix sockets by path, looked up on connect.
    unix_owners: HashMap<String, (Instant, Arc<[u32]>)>,
}

/// The workspace of a container, named from the runtime's and the kubelet's files on the
/// host when they are there.
fn container_workspace(
    id: &str,
    runtime: Option<&str>,
    cgroup: &str,
    pid: u32,
    exe: &str,
) -> WorkspaceRef {
    let root = std::path::Path::new("/");
    let mut ws = WorkspaceRef::container(id, runtime, cgroup, Some((pid, exe)));
    ws.container_name = crate::host::containers::container_name(root, id);
    if let Some(pod) = crate::host::kubelet::pod_of(cgroup, root) {
        ws.container_name = ws.container_name.take().or(pod.container);
        ws.pod = Some(super::workspace::PodRef {
            uid: pod.uid,
            name: pod.name,
            namespace: pod.namespace,
        });
    }
    ws
}

/// How long a unix socket path's listener owners are trusted.
const UNIX_OWNERS_TTL: Duration = Duration::from_secs(10);
/// How far up the parent chain a process's workspace is looked for.
const MAX_DEPTH: usize = 64;

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
        101 => "ptrace",
        310 => "process_vm_readv",
        311 => "process_vm_writev",
        438 => "pidfd_getfd",
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
            tls: Default::default(),
            cgroups: crate::host::cgroupfs::CgroupIndex::new(),
            last_sweep: Instant::now(),
            clock_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
            capture_bytes: 16384,
            watch_check: None,
            pipes: HashMap::default(),
            stats,
            roots: HashSet::default(),
            shared_workspaces: HashMap::default(),
            next_pipe: 1,
            fd_gen: 0,
            pipe_peers: HashMap::default(),
            unix_owners: HashMap::default(),
        }
    }

    /// Bytes of a sendfile/splice/copy_file_range source read back (default 16 KiB; the
    /// sensor passes `capture_bytes`).
    pub fn set_capture_bytes(&mut self, n: usize) {
        self.capture_bytes = n;
    }

    /// The watched process whose `/proc` directory a bare `environ`/`mem` open by `reader`
    /// was relative to (`dirfd`, or its current directory for `AT_FDCWD`), and the full
    /// path. `None` when the directory is not a `/proc/<pid>` (or `/proc/<pid>/task/<tid>`)
    /// of another watched process, or when the reader lives in another pid namespace (its
    /// `/proc` numbers would not be ours). Only for kernels whose BTF lacks `proc_inode`:
    /// elsewhere the kernel names the process itself, and this misses readers that exit
    /// before the daemon looks.
    fn relative_harvest_target(
        &self,
        reader: u32,
        dirfd: i32,
        name: Option<&str>,
    ) -> Option<(u32, String)> {
        let check = self.watch_check.as_ref()?;
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        if ns(&reader.to_string())? != ns("self")? {
            return None;
        }
        let dir = if dirfd == libc::AT_FDCWD {
            std::fs::read_link(format!("/proc/{reader}/cwd")).ok()?
        } else {
            std::fs::read_link(format!("/proc/{reader}/fd/{dirfd}")).ok()?
        };
        let dir = dir.to_str()?;
        let pid = procfs::proc_dir_pid(dir)?;
        if pid == reader || !check(pid) {
            return None;
        }
        Some((pid, format!("{dir}/{}", name.unwrap_or("environ"))))
    }

    /// How to ask whether a tgid is watched (the kernel's scope), for the harvesting
    /// opens only the daemon can resolve.
    pub fn set_watch_check(&mut self, check: impl Fn(u32) -> bool + Send + 'static) {
        self.watch_check = Some(Box::new(check));
    }

    /// Declares watched roots (`--watch-pid` targets, processes matching a watched exe name
    /// at start): each starts a workspace its descendants inherit.
    pub fn add_roots(&mut self, roots: &[u32]) {
        self.roots.extend(roots.iter().copied());
    }

    /// The workspace of a process: its container's, else the outermost watched root's
    /// above it (itself included), else its cgroup's.
    pub fn workspace_for(&mut self, pid: u32) -> Arc<WorkspaceRef> {
        if let Some(ws) = self.procs.get(&pid).and_then(|p| p.workspace.clone()) {
            return ws;
        }
        let Some(p) = self.procs.get(&pid) else {
            return Arc::new(WorkspaceRef::cgroup(""));
        };
        let (cid, rt, cg, exe) = (
            p.container_id.clone(),
            p.container_runtime.clone(),
            p.cgroup.clone(),
            p.exe.clone(),
        );
        let ws = if let Some(cid) = cid {
            self.shared_workspaces
                .entry(format!("container:{cid}"))
                .or_insert_with(|| {
                    Arc::new(container_workspace(&cid, rt.as_deref(), &cg, pid, &exe))
                })
                .clone()
        } else if let Some(ws) = self.tree_workspace(pid, 0) {
            ws
        } else {
            self.shared_workspaces
                .entry(format!("cgroup:{cg}"))
                .or_insert_with(|| Arc::new(WorkspaceRef::cgroup(&cg)))
                .clone()
        };
        if let Some(p) = self.procs.get_mut(&pid) {
            p.workspace = Some(ws.clone());
        }
        ws
    }

    /// The process-tree workspace `pid` belongs to: the outermost watched root among it and
    /// its ancestors. Ancestors missing from the table are read from /proc.
    fn tree_workspace(&mut self, pid: u32, depth: usize) -> Option<Arc<WorkspaceRef>> {
        if pid <= 1 || depth > MAX_DEPTH {
            return None;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.procs.entry(pid) {
            e.insert(Process::from_snapshot(procfs::snapshot(pid)?));
        }
        let p = &self.procs[&pid];
        if let Some(ws) = &p.workspace {
            return (ws.kind == WorkspaceKind::ProcessTree).then(|| ws.clone());
        }
        if p.container_id.is_some() {
            return None;
        }
        let ppid = p.ppid;
        let ws = match self.tree_workspace(ppid, depth + 1) {
            Some(ws) => ws,
            None if self.roots.contains(&pid) => {
                let p = &self.procs[&pid];
                let start = match p.start_ticks {
                    0 => format!("k{}", p.seen_ns),
                    t => t.to_string(),
                };
                Arc::new(WorkspaceRef::tree(pid, &start, &p.exe, &p.cgroup))
            }
            None => return None,
        };
        if let Some(p) = self.procs.get_mut(&pid) {
            p.workspace = Some(ws.clone());
        }
        Some(ws)
    }

    /// Who reads what `tgid` writes to `fd`, for pipes/socketpairs whose creation was seen
    /// and unix sockets connected to a path.
    fn peer_of(&mut self, tgid: u32, fd: i32) -> Option<Arc<Peer>> {
        let entry = self.procs.get(&tgid)?.fds.get(&fd)?;
        if let Some(owners) = entry.unix_peers.clone() {
            return Some(self.unix_peer(tgid, &owners));
        }
        let end = entry.pipe.clone()?;
        let key = (end.id, 1 - end.side);
        if let Some((gen, peer)) = self.pipe_peers.get(&key) {
            if *gen == self.fd_gen {
                return Some(peer.clone());
            }
        }
        let holders: Vec<u32> = self
            .procs
            .iter()
            .filter(|(_, p)| p.exited.is_none())
            .filter(|(_, p)| {
                p.fds.values().any(|e| {
                    e.pipe
                        .as_ref()
                        .is_some_and(|q| q.id == end.id && q.side == key.1)
                })
            })
            .map(|(pid, _)| *pid)
            .collect();
        let mine = self.workspace_for(tgid);
        let mut internal = *end.workspace == *mine.id;
        let mut readers = Vec::new();
        for pid in holders {
            internal &= self.workspace_for(pid).id == mine.id;
            readers.push(Ancestor {
                pid,
                exe: self
                    .procs
                    .get(&pid)
                    .map(|p| p.exe.clone())
                    .unwrap_or_default(),
            });
        }
        readers.sort_by_key(|a| a.pid);
        let peer = Arc::new(Peer {
            internal,
            readers,
            pipe: Some(end.id),
        });
        self.pipe_peers.insert(key, (self.fd_gen, peer.clone()));
        Some(peer)
    }

    fn unix_peer(&mut self, tgid: u32, owners: &[u32]) -> Arc<Peer> {
        let mine = self.workspace_for(tgid);
        let mut internal = !owners.is_empty();
        let mut readers = Vec::new();
        for &pid in owners {
            if !self.procs.contains_key(&pid) {
                self.seed(pid, false);
            }
            internal &= self.procs.contains_key(&pid) && self.workspace_for(pid).id == mine.id;
            readers.push(Ancestor {
                pid,
                exe: self
                    .procs
                    .get(&pid)
                    .map(|p| p.exe.clone())
                    .unwrap_or_default(),
            });
        }
        Arc::new(Peer {
            internal,
            readers,
            pipe: None,
        })
    }

    /// Owners of the socket listening on a unix path (cached briefly).
    fn unix_owners(&mut self, tgid: u32, path: &str) -> Arc<[u32]> {
        let now = Instant::now();
        if let Some((t, o)) = self.unix_owners.get(path) {
            if now.duration_since(*t) < UNIX_OWNERS_TTL {
                return o.clone();
            }
        }
        let owners: Arc<[u32]> = procfs::unix_listener_owners(tgid, path).into();
        if self.unix_owners.len() > 4096 {
            self.unix_owners.clear();
        }
        self.unix_owners
            .insert(path.to_string(), (now, owners.clone()));
        owners
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
                p.fds.insert(fd, FdEntry::new(kind, endpoint));
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
            p.seen_ns = hdr.ts_ns;
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
            let a = match self.procs.entry(cur) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => match procfs::snapshot(cur) {
                    Some(s) => v.insert(Process::from_snapshot(s)),
                    None => {
                        ancestry.push(Ancestor {
                            pid: cur,
                            exe: String::new(),
                        });
                        break;
                    }
                },
            };
            ancestry.push(Ancestor {
                pid: cur,
                exe: a.exe.clone(),
            });
            if a.ppid == cur {
                break;
            }
            cur = a.ppid;
        }
        let workspace = self.workspace_for(pid);
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
            workspace,
        });
        self.proc_for(hdr).view = Some(view.clone());
        view
    }

    fn event(&mut self, hdr: &sensor_common::EventHeader, body: EventBody) -> SensorEvent {
        Stats::inc(&self.stats.events);
        self.stats.inc_kind(body.kind());
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
                let entry = p.fds.entry(fd).or_insert(FdEntry::new(kind, None));
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
            RawEvent::Env(e) => {
                let func = sensor_common::EnvFn::from_u32(e.func)
                    .map(|f| f.name())
                    .unwrap_or("getenv");
                let var = String::from_utf8_lossy(&e.name).into_owned();
                vec![self.event(&e.hdr, EventBody::EnvRead { var, func })]
            }
        }
    }

    fn on_data(&mut self, op: Op, d: DataRecord) -> Vec<SensorEvent> {
        match op {
            Op::Write | Op::Read | Op::TlsWrite | Op::TlsRead => {
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
                                arg: d.arg,
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
                let at = sensor_common::HARVEST_COMM.min(d.data.len());
                let (comm, path) = d.data.split_at(at);
                let comm = String::from_utf8_lossy(comm.split(|b| *b == 0).next().unwrap_or(&[]))
                    .into_owned();
                let mut path =
                    (!path.is_empty()).then(|| String::from_utf8_lossy(path).into_owned());
                let mut target_pid = d.index;
                if target_pid == 0 {
                    // A bare `environ`/`mem`: which process's depends on the directory.
                    let Some((pid, full)) =
                        self.relative_harvest_target(d.hdr.tgid, d.fd, path.as_deref())
                    else {
                        return Vec::new();
                    };
                    (target_pid, path) = (pid, Some(full));
                } else if let Some(name) = path.as_deref().filter(|p| !p.contains('/')) {
                    // A bare name the kernel resolved through the directory's proc inode.
                    path = Some(format!("/proc/{target_pid}/{name}"));
                }
                let target_hdr = sensor_common::EventHeader {
                    tgid: target_pid,
                    pid: target_pid,
                    ts_ns: d.hdr.ts_ns,
                    ..Default::default()
                };
                let target = self.process_ref(&target_hdr);
                vec![self.event(
                    &d.hdr,
                    EventBody::Harvest {
                        method,
                        target_pid,
                        path,
                        syscall: syscall_name(d.syscall),
                        target,
                        comm,
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
                        captured,
                        cloexec: d.arg & libc::O_CLOEXEC as u64 != 0,
                        ..FdEntry::new(kind, Some(Endpoint::Path { path: path.clone() }))
                    },
                );
                self.fd_gen += 1;
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
                                endpoint: None,
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
                // The kernel reads sockets only (DNS answers, `arg` = IP protocol).
                let (_, mut endpoint) = self.resolve_fd(&hdr, c.fd);
                if let Some(Endpoint::Inet { proto, .. }) = &mut endpoint {
                    match c.arg as i32 {
                        libc::IPPROTO_TCP => *proto = "tcp".into(),
                        libc::IPPROTO_UDP => *proto = "udp".into(),
                        _ => {}
                    }
                }
                let ev = EventBody::Read {
                    fd: c.fd,
                    path: None,
                    endpoint,
                    data,
                    total: c.total,
                    truncated: c.truncated,
                };
                vec![self.event(&hdr, ev)]
            }
            Op::TlsWrite => {
                let p = super::tls::Parked {
                    since: Instant::now(),
                    hdr,
                    conn: c.arg,
                    func: c.syscall,
                    data,
                    total: c.total,
                    truncated: c.truncated,
                    incomplete: gap,
                };
                // call_id is the call's entry time: a socket write since then carried it.
                match self.tls.written_during(hdr.tgid, hdr.pid, c.call_id, c.arg) {
                    Some(fd) => vec![self.tls_write_event(p, fd)],
                    None => {
                        self.tls.park(p);
                        Vec::new()
                    }
                }
            }
            Op::TlsRead => {
                let fd = self.tls.fd_of(hdr.tgid, c.arg).unwrap_or(-1);
                let (fd_kind, endpoint) = self.tls_fd(&hdr, fd);
                let ev = EventBody::TlsRead {
                    fd,
                    fd_kind,
                    endpoint,
                    stack: super::tls::stack_name(c.syscall),
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
                let peer = match fd_kind {
                    FdKind::Pipe | FdKind::Socket => self.peer_of(hdr.tgid, c.fd),
                    _ => None,
                };
                // TLS writes this thread made just before: this socket carries them.
                let mut out = Vec::new();
                if fd_kind == FdKind::Socket {
                    self.tls.socket_write(hdr.pid, hdr.ts_ns, c.fd);
                    if self.tls.has_parked(hdr.pid) {
                        for p in self.tls.take_for_socket(hdr.pid, c.fd) {
                            out.push(self.tls_write_event(p, c.fd));
                        }
                    }
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
                    tls: None,
                    peer,
                };
                out.push(self.event(&hdr, ev));
                out
            }
        }
    }

    /// The endpoint of a TLS record's fd (-1: not tied to a socket yet).
    fn tls_fd(&mut self, hdr: &sensor_common::EventHeader, fd: i32) -> (FdKind, Option<Endpoint>) {
        if fd < 0 {
            (FdKind::Socket, None)
        } else {
            self.resolve_fd(hdr, fd)
        }
    }

    /// The event of a parked TLS write, now tied to `fd` (-1 if never tied).
    fn tls_write_event(&mut self, p: super::tls::Parked, fd: i32) -> SensorEvent {
        let (fd_kind, endpoint) = self.tls_fd(&p.hdr, fd);
        let stream_offset = self.tls.advance(p.hdr.tgid, fd, p.total);
        let body = EventBody::Write {
            fd,
            syscall: super::tls::write_fn_name(p.func),
            fd_kind,
            endpoint,
            data: p.data,
            total: p.total,
            truncated: p.truncated,
            incomplete: p.incomplete,
            stream_offset,
            tls: Some(super::tls::stack_name(p.func)),
            peer: None,
        };
        self.event(&p.hdr, body)
    }

    /// A process's TLS coverage as an event (from the uprobe manager).
    pub fn tls_coverage(&mut self, cov: crate::kernel::uprobes::Coverage) -> SensorEvent {
        let hdr = sensor_common::EventHeader {
            tgid: cov.pid,
            pid: cov.pid,
            ts_ns: clock_ns(libc::CLOCK_MONOTONIC) as u64,
            ..Default::default()
        };
        self.event(&hdr, EventBody::TlsCoverage(cov))
    }

    /// The metadata records: one handler per opcode.
    fn on_meta(&mut self, op: Op, m: MetaRecord) -> Vec<SensorEvent> {
        match op {
            Op::ExecDone => self.on_exec_done(m),
            Op::Fork => self.on_fork(m),
            Op::Exit => self.on_exit(m),
            Op::Close => self.on_close(m),
            Op::Dup => self.on_dup(m),
            Op::Socket => self.on_socket(m),
            Op::Connect | Op::SendTo => self.on_connect(op, m),
            Op::Accept => self.on_accept(m),
            Op::Pipe => self.on_pipe(m),
            Op::Transfer => self.on_transfer(&m),
            Op::IoUring => self.on_io_uring(m),
            _ => Vec::new(),
        }
    }

    /// Up to `capture_bytes` of a credential file a watched process opened, and its size:
    /// through its fd while open, else through the process's root (containers), else by
    /// path.
    fn read_credential(&self, tgid: u32, fd: i32, path: &str) -> Option<(Vec<u8>, u64)> {
        use std::io::Read;
        let link = format!("/proc/{tgid}/fd/{fd}");
        // The fd only while it still names the file opened: the process may have closed
        // it and reused the number by the time this runs.
        let by_fd = std::fs::File::open(&link).ok().filter(|_| {
            std::fs::read_link(&link).is_ok_and(|l| l.as_os_str() == std::ffi::OsStr::new(path))
        });
        let f = by_fd
            .ok_or(())
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
        let peer = match fd_kind {
            FdKind::Pipe | FdKind::Socket => self.peer_of(m.hdr.tgid, m.fd),
            _ => None,
        };
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
                tls: None,
                peer,
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

    fn on_exec_done(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let tgid = m.hdr.tgid;
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
            // Larger than the kernel's bound: the whole block from /proc, if the process
            // is still there.
            let full = procfs::environ(tgid);
            if full.len() >= env.len() && !full.is_empty() {
                env = full;
                env_truncated = false;
            }
        }
        let exe = std::fs::read_link(format!("/proc/{tgid}/exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| pe.filename.clone());
        let exe_match = m.arg0 & sensor_common::EXEC_F_EXE_MATCH != 0;
        if exe_match {
            // A watched exe started outside any watched tree: a new workspace root.
            self.roots.insert(tgid);
        }
        let p = self.proc_for(&m.hdr);
        p.exe = exe;
        p.view = None;
        p.argv = argv.clone();
        if m.arg1 != 0 {
            p.ppid = m.arg1 as u32;
        }
        if exe_match {
            p.workspace = None;
        }
        p.fds.retain(|_, e| !e.cloexec);
        self.fd_gen += 1;
        // What the new program can read from (a clipboard tool reads its stdin pipe).
        let reads = self
            .procs
            .get(&tgid)
            .map(|p| {
                p.fds
                    .values()
                    .filter_map(|e| {
                        let end = e.pipe.as_ref()?;
                        // A pipe's read end, or either end of a socketpair.
                        (end.side == 0 || e.kind == FdKind::Socket).then_some(end.id)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = EventBody::Exec {
            filename: pe.filename,
            argv,
            env,
            env_truncated,
            exe_match,
            reads,
        };
        vec![self.event(&m.hdr, body)]
    }

    /// io_uring use by a watched process: its requests bypass the syscall programs.
    fn on_io_uring(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
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

    fn on_fork(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let tgid = m.hdr.tgid;
        // The kernel reports new processes only (threads share their tgid).
        let child = m.fd2 as u32;
        let parent_ws = self.workspace_for(tgid);
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
        // Until it execs, the child runs the parent's image: /proc, read this late, may
        // already show the next program's exe and argv (secrets its exec carries among
        // them, not yet learned) for events that happened before that exec.
        cp.exe = parent.exe.clone();
        cp.argv = parent.argv.clone();
        cp.fds = parent.fds.clone();
        // Same cgroup at fork, so the same workspace (unless it moved into a container).
        cp.workspace = (cp.container_id == parent.container_id).then_some(parent_ws);
        self.procs.insert(child, cp);
        self.fd_gen += 1;
        vec![self.event(&m.hdr, EventBody::Fork { child })]
    }

    fn on_exit(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let ev = self.event(&m.hdr, EventBody::Exit);
        if let Some(p) = self.procs.get_mut(&m.hdr.tgid) {
            p.exited = Some(Instant::now());
        }
        self.fd_gen += 1;
        vec![ev]
    }

    fn on_close(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        self.proc_for(&m.hdr).fds.remove(&m.fd);
        self.fd_gen += 1;
        self.stream_offsets.remove(&(m.hdr.tgid, m.fd));
        self.tls.fd_closed(m.hdr.tgid, m.fd);
        vec![self.event(&m.hdr, EventBody::Close { fd: m.fd })]
    }

    fn on_dup(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
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
        self.fd_gen += 1;
        self.stream_offsets.remove(&(m.hdr.tgid, m.fd2));
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

    fn on_socket(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let stype = m.arg1 & 0xf;
        self.proc_for(&m.hdr).fds.insert(
            m.fd,
            FdEntry {
                sock_type: Some(stype),
                cloexec: m.arg1 & libc::SOCK_CLOEXEC as u64 != 0,
                ..FdEntry::new(FdKind::Socket, None)
            },
        );
        self.fd_gen += 1;
        self.stream_offsets.remove(&(m.hdr.tgid, m.fd));
        Vec::new()
    }

    fn on_connect(&mut self, op: Op, m: MetaRecord) -> Vec<SensorEvent> {
        let tgid = m.hdr.tgid;
        let mut ep = parse_sockaddr(&m.addr);
        let ok = op == Op::SendTo || m.ret == 0 || m.ret == -(libc::EINPROGRESS as i64);
        let owners = match (&ep, ok, op) {
            (Some(Endpoint::Unix { path }), true, Op::Connect) if !path.is_empty() => {
                Some(self.unix_owners(tgid, &path.clone()))
            }
            _ => None,
        };
        let p = self.proc_for(&m.hdr);
        let entry = p
            .fds
            .entry(m.fd)
            .or_insert(FdEntry::new(FdKind::Socket, None));
        if let (Some(Endpoint::Inet { proto, .. }), Some(t)) = (&mut ep, entry.sock_type) {
            *proto = sock_proto(t).into();
        }
        entry.kind = FdKind::Socket;
        if ok && ep.is_some() {
            entry.endpoint = ep.clone();
            entry.unix_peers = owners;
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

    fn on_accept(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let p = self.proc_for(&m.hdr);
        let stype = p.fds.get(&m.fd).and_then(|e| e.sock_type);
        let mut ep = parse_sockaddr(&m.addr);
        if let (Some(Endpoint::Inet { proto, .. }), Some(t)) = (&mut ep, stype) {
            *proto = sock_proto(t).into();
        }
        p.fds.insert(
            m.fd2,
            FdEntry {
                sock_type: stype,
                ..FdEntry::new(FdKind::Socket, ep.clone())
            },
        );
        self.fd_gen += 1;
        self.stream_offsets.remove(&(m.hdr.tgid, m.fd2));
        vec![self.event(
            &m.hdr,
            EventBody::Accept {
                fd: m.fd,
                new_fd: m.fd2,
                endpoint: ep,
            },
        )]
    }

    fn on_pipe(&mut self, m: MetaRecord) -> Vec<SensorEvent> {
        let socketpair = m.syscall == 53;
        let id = self.next_pipe;
        self.next_pipe += 1;
        let ws: Arc<str> = self.workspace_for(m.hdr.tgid).id.as_str().into();
        let p = self.proc_for(&m.hdr);
        for (side, fd) in [(0u8, m.fd), (1u8, m.fd2)] {
            let base = if socketpair {
                FdEntry {
                    sock_type: Some(m.arg1 & 0xf),
                    ..FdEntry::new(
                        FdKind::Socket,
                        Some(Endpoint::Unix {
                            path: String::new(),
                        }),
                    )
                }
            } else {
                // The pipe's inode (from the kernel) names it for splice/tee bookkeeping.
                FdEntry::new(
                    FdKind::Pipe,
                    (m.arg0 != 0).then_some(Endpoint::Pipe { inode: m.arg0 }),
                )
            };
            let pipe = Some(PipeEnd {
                id,
                side,
                workspace: ws.clone(),
            });
            p.fds.insert(fd, FdEntry { pipe, ..base });
        }
        self.fd_gen += 1;
        for fd in [m.fd, m.fd2] {
            self.stream_offsets.remove(&(m.hdr.tgid, fd));
        }
        Vec::new()
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
        // TLS writes whose socket write never came: tie them to what is known.
        self.tls
            .trim(clock_ns(libc::CLOCK_MONOTONIC) as u64, 60_000_000_000);
        for p in self.tls.expired(now, false) {
            let fd = self.tls.fd_of(p.hdr.tgid, p.conn).unwrap_or(-1);
            out.push(self.tls_write_event(p, fd));
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
            self.roots.remove(&pid);
            self.stream_offsets.retain(|(p, _), _| *p != pid);
            self.tls.forget(pid);
        }
        let gen = self.fd_gen;
        self.pipe_peers.retain(|_, (g, _)| *g == gen);
        self.stats.tracked_processes.store(
            self.procs.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
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
