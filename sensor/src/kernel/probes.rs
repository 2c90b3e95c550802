//! Loads the embedded eBPF object, configures it and owns its programs and the maps the
//! daemon writes at run time (scopes, credential names, no-capture entries). The `sched`
//! programs (exec, fork, exit) stay attached; the syscall programs are attached only while
//! something is watched ([`Probes::ensure_attached`], [`Probes::detach_if_idle`]), so a
//! host where no watched process runs pays nothing per syscall. Dropping [`Probes`]
//! detaches every program and releases processes held at exec.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
        BtfTracePoint, TracePoint, UProbe,
    },
    Btf, Ebpf, EbpfLoader,
};
use sensor_common::{counter, name_hash, KConfig, KOffsets, NoCapture, EXIT_SYSCALLS, WATCH_WORDS};

/// The probes, built by `build.rs` from `sensor-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-probes"));

/// Errors of loading and driving the kernel probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The kernel refused the object or a map (verifier log included by aya).
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program failed to load or attach.
    #[error("program `{name}`: {source}")]
    Program {
        /// Program name in the object.
        name: &'static str,
        /// What aya said.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object or has the wrong type.
    #[error("map `{name}`: {source}")]
    Map {
        /// Map name in the object.
        name: &'static str,
        /// What aya said.
        #[source]
        source: aya::maps::MapError,
    },
    /// The object lacks a map or program this daemon version expects.
    #[error("the eBPF object has no `{0}`")]
    Missing(&'static str),
    /// A tracepoint format file could not be read or lacks a field.
    #[error(transparent)]
    Tracefs(#[from] crate::host::tracefs::TracefsError),
    /// A program's fd could not be duplicated for the tail-call table.
    #[error("duplicating the fd of `{name}`: {source}")]
    Fd {
        /// Program name.
        name: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel's BTF could not be read (needed to attach BTF tracepoints and find the
    /// kernel struct offsets).
    #[error("reading the kernel's BTF: {0}")]
    Btf(String),
    /// The scope bitmap could not be memory-mapped.
    #[error("mapping the scope bitmap WATCH_BITS: {0}")]
    Mmap(std::io::Error),
    /// A no-capture entry names an fd that cannot be inspected.
    #[error("no-capture entry for pid {tgid} fd {fd}: {source}")]
    FdStat {
        /// Process.
        tgid: u32,
        /// Its fd.
        fd: i32,
        /// Why `stat` of `/proc/<pid>/fd/<fd>` failed.
        #[source]
        source: std::io::Error,
    },
    /// The ring buffer size is not a power of two multiple of the page size.
    #[error("ring_buffer_bytes = {0}: must be a power of two and at least 4096")]
    RingSize(u32),
}

/// How syscalls that need their return value are completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitHook {
    /// One `syscalls:sys_exit_<name>` tracepoint per such syscall: every other syscall's
    /// exit runs no BPF at all.
    PerSyscall,
    /// One BTF `sys_exit` program that returns after a bit test for the others.
    Btf,
}
/// The TLS uprobe programs (see `sensor-ebpf/src/tls.rs`).
pub const TLS_PROGRAMS: [&str; 9] = [
    "tls_write",
    "tls_write_ex",
    "tls_write_ret",
    "tls_read",
    "tls_read_ex",
    "tls_read_ret",
    "go_tls_write",
    "go_tls_read",
    "go_tls_read_ret",
];

/// The environment-access uprobe (see `sensor-ebpf/src/env.rs`), on libc `getenv` and
/// `secure_getenv`.
pub const ENV_PROGRAMS: [&str; 1] = ["env_get"];

/// The program that takes DNS answers (see `sensor-ebpf/src/dns.rs`).
pub const DNS_PROGRAM: &str = "sock_recv_length";

/// Settings the probes need at load time.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// Ring buffer size in bytes (power of two, ≥ page size).
    pub ring_buffer_bytes: u32,
    /// Bytes captured per syscall.
    pub capture_bytes: u32,
    /// Ring fill level whose crossing forces a wakeup.
    pub wakeup_bytes: u32,
    /// A record forces a wakeup when its CPU has not forced one for this long (µs).
    pub wakeup_interval_us: u32,
    /// Capture writes to every regular file, not only log files.
    pub capture_files_all: bool,
    /// Exit completion.
    pub exit_hook: ExitHook,
}

/// Programs attached only while something is watched.
struct SyscallLinks {
    enter: aya::programs::tp_btf::BtfTracePointLinkId,
    uring: Option<aya::programs::trace_point::TracePointLinkId>,
    /// DNS answers (`sock:sock_recv_length`, Linux ≥ 6.3; absent before).
    dns: Option<aya::programs::tp_btf::BtfTracePointLinkId>,
    exit_btf: Option<aya::programs::tp_btf::BtfTracePointLinkId>,
    exit_tp: Vec<aya::programs::trace_point::TracePointLinkId>,
}

/// The memory-mapped scope bitmap (one bit per tgid), shared with the kernel.
struct WatchBits {
    ptr: *mut AtomicU64,
    len: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through atomics.
unsafe impl Send for WatchBits {}

impl WatchBits {
    fn map(fd: std::os::fd::BorrowedFd<'_>) -> Result<WatchBits, ProbeError> {
        let len = WATCH_WORDS as usize * 8;
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(ProbeError::Mmap(std::io::Error::last_os_error()));
        }
        Ok(WatchBits {
            ptr: p as *mut AtomicU64,
            len: WATCH_WORDS as usize,
        })
    }

    fn word(&self, tgid: u32) -> Option<&AtomicU64> {
        let i = (tgid >> 6) as usize;
        // SAFETY: in bounds of the mapping, which lives as long as self.
        (i < self.len).then(|| unsafe { &*self.ptr.add(i) })
    }

    fn set(&self, tgid: u32) {
        if let Some(w) = self.word(tgid) {
            w.fetch_or(1 << (tgid & 63), Ordering::SeqCst);
        }
    }

    fn get(&self, tgid: u32) -> bool {
        self.word(tgid)
            .is_some_and(|w| w.load(Ordering::SeqCst) >> (tgid & 63) & 1 != 0)
    }

    fn clear(&self, tgid: u32) {
        if let Some(w) = self.word(tgid) {
            w.fetch_and(!(1 << (tgid & 63)), Ordering::SeqCst);
        }
    }

    /// All tgids with their bit set.
    fn members(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for i in 0..self.len {
            // SAFETY: in bounds.
            let mut w = unsafe { &*self.ptr.add(i) }.load(Ordering::SeqCst);
            while w != 0 {
                let b = w.trailing_zeros();
                out.push((i as u32) << 6 | b);
                w &= w - 1;
            }
        }
        out
    }
}

impl Drop for WatchBits {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len * 8) };
    }
}

/// Loaded probes plus the maps userspace drives.
pub struct Probes {
    ebpf: Ebpf,
    config: Array<MapData, KConfig>,
    kconfig: KConfig,
    exit_hook: ExitHook,
    watch: WatchBits,
    watch_cgroup: HashMap<MapData, u64, u32>,
    watch_exe: HashMap<MapData, u64, u32>,
    cred_names: HashMap<MapData, u64, u32>,
    no_capture: HashMap<MapData, u64, NoCapture>,
    held: HashMap<MapData, u32, u64>,
    counters: PerCpuArray<MapData, u64>,
    links: Option<SyscallLinks>,
    /// Uprobe links attached through [`Probes::attach_uprobe`] and not yet detached.
    uprobes: usize,
    /// Held processes released so far (SIGCONT after attaching).
    pub released: u64,
}

/// Kernel-side counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    /// Records lost because the ring buffer was full.
    pub ringbuf_full: u64,
    /// Syscalls not followed because the in-flight map was full.
    pub inflight_full: u64,
    /// Calls cut short by the per-call record bound.
    pub steps_exhausted: u64,
    /// Processes not added to the watch map because it was full.
    pub watch_full: u64,
    /// Processes stopped at exec until the syscall programs were attached.
    pub held: u64,
    /// Attach requests lost (control ring full).
    pub control_full: u64,
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> ProbeError {
    move |source| ProbeError::Map { name, source }
}

fn prog_err(name: &'static str) -> impl Fn(aya::programs::ProgramError) -> ProbeError {
    move |source| ProbeError::Program { name, source }
}

/// Loads a program, logging how long the verifier took (at debug level).
fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let r = f();
    tracing::debug!(
        program = name,
        ms = t.elapsed().as_millis() as u64,
        "program loaded"
    );
    r
}

fn btf_prog<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut BtfTracePoint, ProbeError> {
    ebpf.program_mut(name)
        .ok_or(ProbeError::Missing(name))?
        .try_into()
        .map_err(prog_err(name))
}

fn tp_prog<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut TracePoint, ProbeError> {
    ebpf.program_mut(name)
        .ok_or(ProbeError::Missing(name))?
        .try_into()
        .map_err(prog_err(name))
}

/// Kernel struct offsets from BTF (0 where a member is missing: the probes skip what
/// needs it) and the exit tracepoint's `group_dead` offset from tracefs.
fn kernel_offsets() -> KOffsets {
    let mut o = KOffsets::default();
    let btf = match crate::host::btf::Btf::from_sys_fs() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("kernel BTF unreadable ({e}): exec capture and file facts degrade");
            return o;
        }
    };
    let get = |s: &str, m: &str| match btf.member_offset(s, m) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("BTF: {e}: the probes skip what needs {s}.{m}");
            0
        }
    };
    o.task_real_parent = get("task_struct", "real_parent");
    o.task_tgid = get("task_struct", "tgid");
    o.task_pid = get("task_struct", "pid");
    o.task_mm = get("task_struct", "mm");
    o.task_files = get("task_struct", "files");
    o.task_signal = get("task_struct", "signal");
    o.signal_tty = get("signal_struct", "tty");
    o.mm_arg_start = get("mm_struct", "arg_start");
    o.mm_arg_end = get("mm_struct", "arg_end");
    o.mm_env_start = get("mm_struct", "env_start");
    o.mm_env_end = get("mm_struct", "env_end");
    o.binprm_filename = get("linux_binprm", "filename");
    o.files_fdt = get("files_struct", "fdt");
    o.fdtable_fd = get("fdtable", "fd");
    o.file_inode = get("file", "f_inode");
    o.file_pos = get("file", "f_pos");
    o.inode_mode = get("inode", "i_mode");
    o.inode_rdev = get("inode", "i_rdev");
    o.inode_ino = get("inode", "i_ino");
    o.inode_sb = get("inode", "i_sb");
    o.sb_dev = get("super_block", "s_dev");
    o.exit_group_dead =
        crate::host::tracefs::tracepoint_field_offset("sched", "sched_process_exit", "group_dead")
            .unwrap_or(0);
    o.uring_opcode =
        crate::host::tracefs::tracepoint_field_offset("io_uring", "io_uring_submit_req", "opcode")
            .unwrap_or(0);
    o.file_private = get("file", "private_data");
    o.pid_numbers = get("pid", "numbers");
    o.sock_dport = get("sock_common", "skc_dport");
    o.sock_protocol = get("sock", "sk_protocol");
    o.socket_sk = get("socket", "sk");
    o.task_fs = get("task_struct", "fs");
    o.fs_pwd = get("fs_struct", "pwd");
    o.path_dentry = get("path", "dentry");
    o.file_path = get("file", "f_path");
    o.dentry_inode = get("dentry", "d_inode");
    o.dentry_parent = get("dentry", "d_parent");
    o.sb_magic = get("super_block", "s_magic");
    o.sb_root = get("super_block", "s_root");
    // Both or neither: `pid` is the first member (offset 0) on current kernels.
    if let (Ok(vfs), Ok(pid)) = (
        btf.member_offset("proc_inode", "vfs_inode"),
        btf.member_offset("proc_inode", "pid"),
    ) {
        (o.proc_inode_vfs, o.proc_inode_pid) = (vfs, pid);
    } else {
        tracing::warn!("BTF: no struct proc_inode: relative /proc opens are resolved by the daemon (a reader that exits at once is missed)");
    }
    o
}

/// Kernel encoding of a device number (`MKDEV`: major << 20 | minor).
fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

/// Whether this process may send signals to any process (CAP_KILL in its effective set).
fn can_signal_any() -> bool {
    const CAP_KILL: u32 = 5;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_KILL) != 0)
}

/// Character devices that are never sinks: `/dev/null`, `/dev/zero`, `/dev/full`.
pub const NULL_DEVICES: [(u32, u32); 3] = [(1, 3), (1, 5), (1, 7)];

impl Probes {
    /// Loads the object, writes the configuration, loads every program and attaches the
    /// `sched` ones. The syscall programs attach on the first watched process. Returns the
    /// probes, the event ring and the control ring (attach requests from exec).
    pub fn load(
        settings: &ProbeSettings,
    ) -> Result<(Probes, RingBuf<MapData>, RingBuf<MapData>), ProbeError> {
        let rb = settings.ring_buffer_bytes;
        if rb < 4096 || !rb.is_power_of_two() {
            return Err(ProbeError::RingSize(rb));
        }
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Btf(e.to_string()))?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", rb)
            .load(EBPF_OBJECT)?;

        let mut config: Array<MapData, KConfig> = take(&mut ebpf, "CONFIG")?;
        let kconfig = KConfig {
            self_tgid: std::process::id(),
            capture_bytes: settings.capture_bytes.min(sensor_common::MAX_CAPTURE),
            wakeup_bytes: settings.wakeup_bytes,
            wakeup_interval_us: settings.wakeup_interval_us,
            cgroups: 0,
            attached: 0,
            capture_files_all: settings.capture_files_all as u32,
            // Holding a process at exec is only safe if this daemon can always continue
            // it: SIGCONT to another user's process needs CAP_KILL (the systemd unit runs
            // as a dynamic uid without it). Without, new processes run while attaching.
            hold: can_signal_any() as u32,
            off: kernel_offsets(),
        };
        if kconfig.hold == 0 {
            tracing::warn!(
                "no CAP_KILL: processes of watched exes are not held at exec while the syscall \
                 probes attach (their first instructions may run unobserved)"
            );
        }
        config.set(0, kconfig, 0).map_err(map_err("CONFIG"))?;

        // Only the programs of the chosen exit hook are loaded (each takes the verifier
        // about a second).
        let btf_exit = settings.exit_hook == ExitHook::Btf;
        // Tail-call targets, one per hook (a tail call stays within its hook).
        let walkers = [
            ("exec_block", "sched_process_exec", "JUMP_EXEC"),
            ("walk_enter", "sys_enter", "JUMP_ENTER"),
        ];
        for (name, tp, jump) in walkers {
            let p = btf_prog(&mut ebpf, name)?;
            timed(name, || p.load(tp, &btf)).map_err(prog_err(name))?;
            let fd = p
                .fd()
                .map_err(prog_err(name))?
                .try_clone()
                .map_err(|source| ProbeError::Fd { name, source })?;
            let map = ebpf.map_mut(jump).ok_or(ProbeError::Missing("JUMP"))?;
            let mut arr: ProgramArray<_> = ProgramArray::try_from(map).map_err(map_err("JUMP"))?;
            arr.set(0, &fd, 0).map_err(map_err("JUMP"))?;
        }
        let p = btf_prog(&mut ebpf, "sys_enter")?;
        timed("sys_enter", || p.load("sys_enter", &btf)).map_err(prog_err("sys_enter"))?;
        if btf_exit {
            let p = btf_prog(&mut ebpf, "sys_exit")?;
            timed("sys_exit", || p.load("sys_exit", &btf)).map_err(prog_err("sys_exit"))?;
        } else {
            let p = tp_prog(&mut ebpf, "sys_exit_tp")?;
            timed("sys_exit_tp", || p.load()).map_err(prog_err("sys_exit_tp"))?;
        }
        // DNS answers: attached with the syscall programs where the kernel has the
        // tracepoint (6.3+); without it destinations are named by SNI/Host only.
        {
            let p = btf_prog(&mut ebpf, DNS_PROGRAM)?;
            if let Err(e) = timed(DNS_PROGRAM, || p.load(DNS_PROGRAM, &btf)) {
                tracing::warn!(
                    "program {DNS_PROGRAM}: {e}: DNS answers are not followed (destinations \
                     are named by TLS SNI and HTTP Host only)"
                );
            }
        }
        for (name, tp) in [
            ("sched_process_exec", "sched_process_exec"),
            ("sched_process_fork", "sched_process_fork"),
        ] {
            let p = btf_prog(&mut ebpf, name)?;
            timed(name, || p.load(tp, &btf)).map_err(prog_err(name))?;
            p.attach().map_err(prog_err(name))?;
        }
        if crate::host::tracefs::tracepoint_field_offset(
            "io_uring",
            "io_uring_submit_req",
            "opcode",
        )
        .is_ok()
        {
            let p = tp_prog(&mut ebpf, "io_uring_submit_req")?;
            timed("io_uring_submit_req", || p.load()).map_err(prog_err("io_uring_submit_req"))?;
        }
        {
            let name = "sched_process_exit";
            let p = tp_prog(&mut ebpf, name)?;
            p.load().map_err(prog_err(name))?;
            p.attach("sched", name).map_err(prog_err(name))?;
        }

        let mut null_devs: HashMap<MapData, u32, u32> = take(&mut ebpf, "NO_CAPTURE_DEV")?;
        for (ma, mi) in NULL_DEVICES {
            null_devs
                .insert(kernel_dev(ma, mi), 1, 0)
                .map_err(map_err("NO_CAPTURE_DEV"))?;
        }
        let watch = {
            let m = ebpf
                .map("WATCH_BITS")
                .ok_or(ProbeError::Missing("WATCH_BITS"))?;
            let aya::maps::Map::Array(data) = m else {
                return Err(ProbeError::Missing("WATCH_BITS"));
            };
            WatchBits::map(data.fd().as_fd())?
        };
        // TLS and getenv uprobes: loaded (verified) now, attached per library by
        // `kernel::uprobes`.
        for name in TLS_PROGRAMS.into_iter().chain(ENV_PROGRAMS) {
            let prog: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { name, source })?;
        }

        let events: RingBuf<MapData> = take(&mut ebpf, "EVENTS")?;
        let control: RingBuf<MapData> = take(&mut ebpf, "CONTROL")?;
        let probes = Probes {
            config,
            kconfig,
            exit_hook: settings.exit_hook,
            watch,
            watch_cgroup: take(&mut ebpf, "WATCH_CGROUP")?,
            watch_exe: take(&mut ebpf, "WATCH_EXE")?,
            cred_names: take(&mut ebpf, "CRED_NAMES")?,
            no_capture: take(&mut ebpf, "NO_CAPTURE")?,
            held: take(&mut ebpf, "HELD")?,
            counters: take(&mut ebpf, "COUNTERS")?,
            links: None,
            uprobes: 0,
            released: 0,
            ebpf,
        };
        Ok((probes, events, control))
    }

    fn write_config(&mut self) -> Result<(), ProbeError> {
        self.config
            .set(0, self.kconfig, 0)
            .map_err(map_err("CONFIG"))?;
        // Pairs with the kernel's fence at exec (see `detach_if_idle`).
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Are the syscall programs attached?
    pub fn syscalls_attached(&self) -> bool {
        self.links.is_some()
    }

    /// Attaches the syscall programs if they are not attached.
    pub fn ensure_attached(&mut self) -> Result<(), ProbeError> {
        if self.links.is_some() {
            return Ok(());
        }
        let enter = btf_prog(&mut self.ebpf, "sys_enter")?
            .attach()
            .map_err(prog_err("sys_enter"))?;
        // io_uring requests bypass the syscall programs; their tracepoint shows opcodes
        // (absent when the kernel lacks io_uring: then nothing to watch there).
        let uring = match tp_prog(&mut self.ebpf, "io_uring_submit_req") {
            Ok(p) if p.fd().is_ok() => p.attach("io_uring", "io_uring_submit_req").ok(),
            _ => None,
        };
        let dns = match btf_prog(&mut self.ebpf, DNS_PROGRAM) {
            Ok(p) if p.fd().is_ok() => p.attach().ok(),
            _ => None,
        };
        let mut links = SyscallLinks {
            enter,
            uring,
            dns,
            exit_btf: None,
            exit_tp: Vec::new(),
        };
        let res = match self.exit_hook {
            ExitHook::Btf => btf_prog(&mut self.ebpf, "sys_exit")?
                .attach()
                .map(|l| links.exit_btf = Some(l))
                .map_err(prog_err("sys_exit")),
            ExitHook::PerSyscall => {
                let p = tp_prog(&mut self.ebpf, "sys_exit_tp")?;
                EXIT_SYSCALLS.iter().try_for_each(|(_, name)| {
                    p.attach("syscalls", &format!("sys_exit_{name}"))
                        .map(|l| links.exit_tp.push(l))
                        .map_err(prog_err("sys_exit_tp"))
                })
            }
        };
        self.links = Some(links);
        if let Err(e) = res {
            let _ = self.detach_links();
            return Err(e);
        }
        self.kconfig.attached = 1;
        self.write_config()?;
        tracing::info!(exit_hook = ?self.exit_hook, "syscall probes attached");
        Ok(())
    }

    fn detach_links(&mut self) -> Result<(), ProbeError> {
        let Some(l) = self.links.take() else {
            return Ok(());
        };
        btf_prog(&mut self.ebpf, "sys_enter")?
            .detach(l.enter)
            .map_err(prog_err("sys_enter"))?;
        if let Some(u) = l.uring {
            tp_prog(&mut self.ebpf, "io_uring_submit_req")?
                .detach(u)
                .map_err(prog_err("io_uring_submit_req"))?;
        }
        if let Some(d) = l.dns {
            btf_prog(&mut self.ebpf, DNS_PROGRAM)?
                .detach(d)
                .map_err(prog_err(DNS_PROGRAM))?;
        }
        if let Some(x) = l.exit_btf {
            btf_prog(&mut self.ebpf, "sys_exit")?
                .detach(x)
                .map_err(prog_err("sys_exit"))?;
        }
        if !l.exit_tp.is_empty() {
            let p = tp_prog(&mut self.ebpf, "sys_exit_tp")?;
            for x in l.exit_tp {
                p.detach(x).map_err(prog_err("sys_exit_tp"))?;
            }
        }
        Ok(())
    }

    /// Is anything watched (a live process in the scope bitmap, or a cgroup)? Bits of
    /// processes that are gone are cleared on the way.
    pub fn anything_watched(&self) -> bool {
        if self.kconfig.cgroups > 0 {
            return true;
        }
        let mut any = false;
        for tgid in self.watch.members() {
            if crate::host::procfs::alive(tgid) {
                any = true;
            } else {
                self.watch.clear(tgid);
            }
        }
        any
    }

    /// Detaches the syscall programs when nothing is watched. Returns whether they are
    /// detached now. Ordering with exec: `attached` is cleared and fenced *before* the scope
    /// is inspected, and the exec program sets its scope bit and fences before it reads
    /// `attached`, so an exe match racing with this call either is seen here (and the
    /// programs stay) or sees `attached == 0` (and holds its process and asks again).
    pub fn detach_if_idle(&mut self) -> Result<bool, ProbeError> {
        if self.links.is_none() {
            return Ok(true);
        }
        if self.anything_watched() {
            return Ok(false);
        }
        self.kconfig.attached = 0;
        self.write_config()?;
        if self.anything_watched() {
            self.kconfig.attached = 1;
            self.write_config()?;
            return Ok(false);
        }
        self.detach_links()?;
        tracing::info!("syscall probes detached: nothing watched");
        Ok(true)
    }

    /// Sends SIGCONT to every process held at exec (the syscall programs must be attached
    /// first) and forgets them. Returns how many were released.
    pub fn release_held(&mut self) -> usize {
        let tgids: Vec<u32> = self.held.keys().filter_map(Result::ok).collect();
        for &t in &tgids {
            if unsafe { libc::kill(t as i32, libc::SIGCONT) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    tracing::error!(pid = t, "continuing a process held at exec: {e}");
                }
            }
            let _ = self.held.remove(&t);
        }
        self.released += tgids.len() as u64;
        tgids.len()
    }

    /// Are processes waiting in the held map (stopped at exec)?
    pub fn release_pending(&self) -> bool {
        self.held.keys().next().is_some()
    }

    /// The userspace half of the no-capture rules for a watched process's existing fds (the
    /// kernel applies them at open, dup, exec and fork for the standard streams): listed
    /// character devices, and regular files outside the log patterns unless
    /// `capture_files_all`. Returns how many entries were set.
    pub fn apply_fd_rules(&mut self, tgid: u32) -> usize {
        let all = self.kconfig.capture_files_all != 0;
        let mut n = 0;
        for (fd, link) in crate::host::procfs::fds(tgid) {
            if fd_never_sink(tgid, fd, &link, all) && self.set_no_capture(tgid, fd).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Puts a process (and, through the fork probe, its future children) in scope.
    pub fn watch_tgid(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.ensure_attached()?;
        self.watch.set(tgid);
        Ok(())
    }

    /// Is this tgid in the kernel's process scope?
    pub fn is_tgid_watched(&self, tgid: u32) -> bool {
        self.watch.get(tgid)
    }

    /// Puts every member of a cgroup v2 (by id) in scope.
    pub fn watch_cgroup(&mut self, id: u64) -> Result<(), ProbeError> {
        self.ensure_attached()?;
        self.watch_cgroup
            .insert(id, 1, 0)
            .map_err(map_err("WATCH_CGROUP"))?;
        // Only now let the kernel look cgroups up (unwatched tasks skip it while 0).
        self.kconfig.cgroups += 1;
        self.write_config()
    }

    /// Processes exec'ing this basename enter the scope.
    pub fn watch_exe(&mut self, name: &str) -> Result<(), ProbeError> {
        self.watch_exe
            .insert(name_hash(name.as_bytes()), 1, 0)
            .map_err(map_err("WATCH_EXE"))
    }

    /// Processes exec'ing this basename no longer enter the scope (those already in it
    /// stay until they exit).
    pub fn unwatch_exe(&mut self, name: &str) -> Result<(), ProbeError> {
        match self.watch_exe.remove(&name_hash(name.as_bytes())) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(ProbeError::Map {
                name: "WATCH_EXE",
                source,
            }),
        }
    }

    /// Members of this cgroup v2 (by id) are no longer in scope (processes the fork
    /// probe put in the pid scope stay there until they exit).
    pub fn unwatch_cgroup(&mut self, id: u64) -> Result<(), ProbeError> {
        match self.watch_cgroup.remove(&id) {
            Ok(()) => {}
            Err(aya::maps::MapError::KeyNotFound) => return Ok(()),
            Err(source) => {
                return Err(ProbeError::Map {
                    name: "WATCH_CGROUP",
                    source,
                })
            }
        }
        self.kconfig.cgroups = self.kconfig.cgroups.saturating_sub(1);
        self.config
            .set(0, self.kconfig, 0)
            .map_err(|source| ProbeError::Map {
                name: "CONFIG",
                source,
            })
    }

    /// Reads of files with this basename (by in-scope processes) are captured.
    pub fn add_credential_name(&mut self, name: &str) -> Result<(), ProbeError> {
        self.cred_names
            .insert(name_hash(name.as_bytes()), 1, 0)
            .map_err(map_err("CRED_NAMES"))
    }

    /// Writes by `tgid` to `fd` are no longer captured while `fd` refers to the file it
    /// refers to now (a later file reusing the number is captured again). For sinks that
    /// cannot cross the workspace boundary: `/dev/null`-like devices, files outside the log
    /// patterns, pipes and unix sockets read inside the same workspace.
    pub fn set_no_capture(&mut self, tgid: u32, fd: i32) -> Result<(), ProbeError> {
        let st = std::fs::metadata(format!("/proc/{tgid}/fd/{fd}"))
            .map_err(|source| ProbeError::FdStat { tgid, fd, source })?;
        use std::os::unix::fs::MetadataExt;
        let dev = st.dev();
        let v = NoCapture {
            ino: st.ino(),
            dev: kernel_dev(libc::major(dev), libc::minor(dev)),
            _pad: 0,
            inode: 0,
        };
        self.no_capture
            .insert(fd_key(tgid, fd), v, 0)
            .map_err(map_err("NO_CAPTURE"))
    }

    /// Writes by `tgid` to `fd` are captured again.
    pub fn clear_no_capture(&mut self, tgid: u32, fd: i32) -> Result<(), ProbeError> {
        match self.no_capture.remove(&fd_key(tgid, fd)) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("NO_CAPTURE")(e)),
        }
    }

    /// Whether writes by `tgid` to `fd` are exempt from capture (an entry exists; the kernel
    /// also checks it still names the same file).
    pub fn has_no_capture(&self, tgid: u32, fd: i32) -> bool {
        self.no_capture.get(&fd_key(tgid, fd), 0).is_ok()
    }

    /// Sums the kernel's per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, ProbeError> {
        let get = |i: u32| -> Result<u64, ProbeError> {
            let v = self.counters.get(&i, 0).map_err(map_err("COUNTERS"))?;
            Ok(v.iter().sum())
        };
        Ok(KernelCounters {
            ringbuf_full: get(counter::RINGBUF_FULL)?,
            inflight_full: get(counter::INFLIGHT_FULL)?,
            steps_exhausted: get(counter::STEPS_EXHAUSTED)?,
            watch_full: get(counter::WATCH_FULL)?,
            held: get(counter::HELD)?,
            control_full: get(counter::CONTROL_FULL)?,
        })
    }

    /// Kernel ids of the syscall programs (`sys_enter`, `sys_exit`, `sys_exit_tp`).
    pub fn syscall_program_ids(&self) -> Vec<u32> {
        ["sys_enter", "sys_exit", "sys_exit_tp"]
            .into_iter()
            .filter_map(|n| self.ebpf.program(n)?.info().ok().map(|i| i.id()))
            .collect()
    }

    /// How many BPF links in the kernel attach this daemon's syscall programs right now —
    /// asked of the kernel (its link table), not of this struct's bookkeeping.
    pub fn kernel_syscall_links(&self) -> usize {
        let ids = self.syscall_program_ids();
        aya::programs::loaded_links()
            .filter_map(Result::ok)
            .filter(|l| ids.contains(&l.program_id()))
            .count()
    }

    /// Attaches uprobe program `name` (TLS or getenv) at file offset `offset` of `path`: for every process
    /// that runs that file (`pid` None; the program checks the scope first), or only in
    /// process `pid`. `cookie` is what the program reads as its attach cookie.
    pub fn attach_uprobe(
        &mut self,
        name: &'static str,
        path: &std::path::Path,
        offset: u64,
        cookie: u64,
        pid: Option<u32>,
    ) -> Result<UProbeLinkId, ProbeError> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .ok_or(ProbeError::Missing(name))?
            .try_into()
            .map_err(|source| ProbeError::Program { name, source })?;
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(offset),
            cookie: Some(cookie),
        };
        let scope = match pid.and_then(std::num::NonZeroU32::new) {
            Some(p) => UProbeScope::OneProcess(p),
            None => UProbeScope::AllProcesses,
        };
        let link = prog
            .attach(point, path, scope)
            .map_err(|source| ProbeError::Program { name, source })?;
        self.uprobes += 1;
        Ok(link)
    }

    /// Uprobes attached now (TLS and getenv hooks), for the metrics.
    pub fn uprobe_count(&self) -> usize {
        self.uprobes
    }

    /// Detaches a link made by [`Probes::attach_uprobe`].
    pub fn detach_uprobe(
        &mut self,
        name: &'static str,
        link: UProbeLinkId,
    ) -> Result<(), ProbeError> {
        let prog: &mut UProbe = self
            .ebpf
            .program_mut(name)
            .ok_or(ProbeError::Missing(name))?
            .try_into()
            .map_err(|source| ProbeError::Program { name, source })?;
        prog.detach(link)
            .map_err(|source| ProbeError::Program { name, source })?;
        self.uprobes = self.uprobes.saturating_sub(1);
        Ok(())
    }

    /// Number of loaded programs (for diagnostics).
    pub fn program_count(&self) -> usize {
        self.ebpf.programs().count()
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        // The exec program may have stopped a process just now: never leave one stopped.
        self.kconfig.hold = 0;
        let _ = self.write_config();
        let _ = self.release_held();
    }
}

/// Is a path a log file (`*.log`, `/var/log/…`)? Writes to other regular files are not
/// captured unless `capture_files: all`.
pub fn is_log_path(path: &str) -> bool {
    path.starts_with("/var/log/") || path.ends_with(".log")
}

/// Does fd `fd` of `tgid` (linked to `link`) lead somewhere that can never be a sink?
fn fd_never_sink(tgid: u32, fd: i32, link: &crate::host::procfs::FdLink, all: bool) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let crate::host::procfs::FdLink::Path(path) = link else {
        return false;
    };
    let Ok(st) = std::fs::metadata(format!("/proc/{tgid}/fd/{fd}")) else {
        return false;
    };
    let ft = st.file_type();
    if ft.is_char_device() {
        let r = st.rdev();
        return NULL_DEVICES.contains(&(libc::major(r), libc::minor(r)));
    }
    // stdout/stderr redirected to a file is a log sink whatever the file's name.
    ft.is_file() && fd > 2 && !all && !is_log_path(path)
}

fn fd_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | (fd as u32 as u64)
}

/// Programs of this sensor's object (any instance, any version using these names) attached
/// to syscall tracepoints right now, machine-wide: lets a benchmark tell whether another
/// sensor is running beside it.
pub fn machine_syscall_links() -> usize {
    const NAMES: [&str; 7] = [
        "sys_enter",
        "sys_exit",
        "sys_exit_tp",
        "floor_enter",
        "floor_exit",
        "floor_exit_tp",
        "floor_enter_tp",
    ];
    let ids: Vec<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|n| NAMES.contains(&n)))
        .map(|p| p.id())
        .collect();
    aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| ids.contains(&l.program_id()))
        .count()
}

/// Empty programs from the same object: the benchmark's floor (the kernel's syscall
/// tracepoint path and BPF dispatch without any work). Detached on drop.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    /// Loads the object and attaches only empty programs: on `sys_enter`, and on exit
    /// either the BTF `sys_exit` (`exit_hook` Btf) or the per-syscall exit tracepoints
    /// (PerSyscall); `None` attaches nothing on exit.
    pub fn attach(exit_hook: Option<ExitHook>) -> Result<Floor, ProbeError> {
        Self::attach_with(exit_hook, false)
    }

    /// Like [`Floor::attach`], with the entry side as one `syscalls:sys_enter_<name>`
    /// tracepoint per followed syscall instead of the BTF `sys_enter` program when
    /// `per_syscall_enter`.
    pub fn attach_with(
        exit_hook: Option<ExitHook>,
        per_syscall_enter: bool,
    ) -> Result<Floor, ProbeError> {
        let mut ebpf = EbpfLoader::new().load(EBPF_OBJECT)?;
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Btf(e.to_string()))?;
        if per_syscall_enter {
            let p = tp_prog(&mut ebpf, "floor_enter_tp")?;
            p.load().map_err(prog_err("floor_enter_tp"))?;
            for (_, name) in sensor_common::ENTER_SYSCALLS {
                p.attach("syscalls", &format!("sys_enter_{name}"))
                    .map_err(prog_err("floor_enter_tp"))?;
            }
        } else {
            let p = btf_prog(&mut ebpf, "floor_enter")?;
            p.load("sys_enter", &btf).map_err(prog_err("floor_enter"))?;
            p.attach().map_err(prog_err("floor_enter"))?;
        }
        match exit_hook {
            Some(ExitHook::Btf) => {
                let p = btf_prog(&mut ebpf, "floor_exit")?;
                p.load("sys_exit", &btf).map_err(prog_err("floor_exit"))?;
                p.attach().map_err(prog_err("floor_exit"))?;
            }
            Some(ExitHook::PerSyscall) => {
                let p = tp_prog(&mut ebpf, "floor_exit_tp")?;
                p.load().map_err(prog_err("floor_exit_tp"))?;
                for (_, name) in EXIT_SYSCALLS {
                    p.attach("syscalls", &format!("sys_exit_{name}"))
                        .map_err(prog_err("floor_exit_tp"))?;
                }
            }
            None => {}
        }
        Ok(Floor { _ebpf: ebpf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths() {
        assert!(is_log_path("/var/log/syslog"));
        assert!(is_log_path("/work/build.log"));
        assert!(!is_log_path("/work/build.log.txt"));
        assert!(!is_log_path("/var/logs/x"));
    }

    #[test]
    fn kernel_device_encoding() {
        // /dev/null is 1:3; the kernel's dev_t puts the major above 20 bits of minor.
        assert_eq!(kernel_dev(1, 3), (1 << 20) | 3);
        assert_eq!(fd_key(7, 3), (7 << 32) | 3);
        assert_eq!(fd_key(7, -1), (7 << 32) | 0xffff_ffff);
    }

    #[test]
    fn offsets_of_the_running_kernel_are_found() {
        let o = kernel_offsets();
        for (name, v) in [
            ("task_mm", o.task_mm),
            ("mm_env_start", o.mm_env_start),
            ("binprm_filename", o.binprm_filename),
            ("file_inode", o.file_inode),
            ("sb_dev", o.sb_dev),
            ("task_signal", o.task_signal),
            ("signal_tty", o.signal_tty),
        ] {
            assert!(v > 0, "{name} not found in the kernel's BTF");
        }
        assert_eq!(o.mm_arg_end, o.mm_arg_start + 8);
    }
}
