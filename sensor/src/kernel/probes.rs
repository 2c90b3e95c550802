//! Loads the embedded eBPF object, configures and attaches its programs, and owns the maps
//! the daemon writes at run time (scopes, credential names). Dropping [`Probes`] detaches
//! every program.

use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, ProgramArray, RingBuf},
    programs::{
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
        RawTracePoint, TracePoint, UProbe,
    },
    Ebpf, EbpfLoader,
};
use sensor_common::{counter, name_hash, KConfig, SCOPE_PID};

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
    /// The ring buffer size is not a power of two multiple of the page size.
    #[error("ring_buffer_bytes = {0}: must be a power of two and at least 4096")]
    RingSize(u32),
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

/// Settings the probes need at load time.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// Ring buffer size in bytes (power of two, ≥ page size).
    pub ring_buffer_bytes: u32,
    /// Bytes captured per syscall.
    pub capture_bytes: u32,
    /// Ring fill level that forces a wakeup.
    pub wakeup_bytes: u32,
}

/// Loaded and attached probes plus the maps userspace drives.
pub struct Probes {
    ebpf: Ebpf,
    config: Array<MapData, KConfig>,
    kconfig: KConfig,
    watch_tgid: HashMap<MapData, u32, u32>,
    watch_cgroup: HashMap<MapData, u64, u32>,
    watch_exe: HashMap<MapData, u64, u32>,
    cred_names: HashMap<MapData, u64, u32>,
    counters: PerCpuArray<MapData, u64>,
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
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::Missing(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

impl Probes {
    /// Loads the object, writes the configuration, attaches all programs.
    pub fn load(settings: &ProbeSettings) -> Result<(Probes, RingBuf<MapData>), ProbeError> {
        let rb = settings.ring_buffer_bytes;
        if rb < 4096 || !rb.is_power_of_two() {
            return Err(ProbeError::RingSize(rb));
        }
        let fork_off = crate::host::tracefs::tracepoint_field_offset(
            "sched",
            "sched_process_fork",
            "child_pid",
        )?;
        // Parent attribution for processes that enter the scope at exec; without BTF the
        // daemon falls back to /proc.
        let (parent_off, tgid_off) = match crate::host::btf::Btf::from_sys_fs().and_then(|b| {
            Ok((
                b.member_offset("task_struct", "real_parent")?,
                b.member_offset("task_struct", "tgid")?,
            ))
        }) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(
                    "task_struct offsets unavailable ({e}): parent pids come from /proc only"
                );
                (0, 0)
            }
        };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", rb)
            .load(EBPF_OBJECT)?;

        let mut config: Array<MapData, KConfig> = take(&mut ebpf, "CONFIG")?;
        let kconfig = KConfig {
            self_tgid: std::process::id(),
            capture_bytes: settings.capture_bytes.min(sensor_common::MAX_CAPTURE),
            fork_child_pid_off: fork_off,
            wakeup_bytes: settings.wakeup_bytes,
            task_real_parent_off: parent_off,
            task_tgid_off: tgid_off,
            cgroups: 0,
            _pad: 0,
        };
        config
            .set(0, kconfig, 0)
            .map_err(|source| ProbeError::Map {
                name: "CONFIG",
                source,
            })?;

        {
            // The payload walker is only ever tail-called from sys_exit.
            let name = "emit_data";
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { name, source })?;
            let fd = prog
                .fd()
                .map_err(|source| ProbeError::Program { name, source })?
                .try_clone()
                .map_err(|source| ProbeError::Fd { name, source })?;
            let map = ebpf.map_mut("JUMP").ok_or(ProbeError::Missing("JUMP"))?;
            let mut jump: ProgramArray<_> =
                ProgramArray::try_from(map).map_err(|source| ProbeError::Map {
                    name: "JUMP",
                    source,
                })?;
            jump.set(0, &fd, 0).map_err(|source| ProbeError::Map {
                name: "JUMP",
                source,
            })?;
        }
        for name in ["sys_enter", "sys_exit"] {
            let name: &'static str = name;
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.attach(name)
                .map_err(|source| ProbeError::Program { name, source })?;
        }
        for name in ["sched_process_fork", "sched_process_exit"] {
            let name: &'static str = name;
            let prog: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.attach("sched", name)
                .map_err(|source| ProbeError::Program { name, source })?;
        }

        // TLS uprobes: loaded (verified) now, attached per library by `kernel::uprobes`.
        for name in TLS_PROGRAMS {
            let prog: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or(ProbeError::Missing(name))?
                .try_into()
                .map_err(|source| ProbeError::Program { name, source })?;
            prog.load()
                .map_err(|source| ProbeError::Program { name, source })?;
        }

        let events: RingBuf<MapData> = take(&mut ebpf, "EVENTS")?;
        let probes = Probes {
            config,
            kconfig,
            watch_tgid: take(&mut ebpf, "WATCH_TGID")?,
            watch_cgroup: take(&mut ebpf, "WATCH_CGROUP")?,
            watch_exe: take(&mut ebpf, "WATCH_EXE")?,
            cred_names: take(&mut ebpf, "CRED_NAMES")?,
            counters: take(&mut ebpf, "COUNTERS")?,
            ebpf,
        };
        Ok((probes, events))
    }

    /// Puts a process (and, through the fork probe, its future children) in scope.
    pub fn watch_tgid(&mut self, tgid: u32) -> Result<(), ProbeError> {
        self.watch_tgid
            .insert(tgid, SCOPE_PID, 0)
            .map_err(|source| ProbeError::Map {
                name: "WATCH_TGID",
                source,
            })
    }

    /// Is this tgid in the kernel's process scope?
    pub fn is_tgid_watched(&self, tgid: u32) -> bool {
        self.watch_tgid.get(&tgid, 0).is_ok()
    }

    /// Puts every member of a cgroup v2 (by id) in scope.
    pub fn watch_cgroup(&mut self, id: u64) -> Result<(), ProbeError> {
        self.watch_cgroup
            .insert(id, 1, 0)
            .map_err(|source| ProbeError::Map {
                name: "WATCH_CGROUP",
                source,
            })?;
        // Only now let the kernel look cgroups up (unwatched tasks skip it while 0).
        self.kconfig.cgroups += 1;
        self.config
            .set(0, self.kconfig, 0)
            .map_err(|source| ProbeError::Map {
                name: "CONFIG",
                source,
            })
    }

    /// Processes exec'ing this basename enter the scope.
    pub fn watch_exe(&mut self, name: &str) -> Result<(), ProbeError> {
        self.watch_exe
            .insert(name_hash(name.as_bytes()), 1, 0)
            .map_err(|source| ProbeError::Map {
                name: "WATCH_EXE",
                source,
            })
    }

    /// Reads of files with this basename (by in-scope processes) are captured.
    pub fn add_credential_name(&mut self, name: &str) -> Result<(), ProbeError> {
        self.cred_names
            .insert(name_hash(name.as_bytes()), 1, 0)
            .map_err(|source| ProbeError::Map {
                name: "CRED_NAMES",
                source,
            })
    }

    /// Sums the kernel's per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, ProbeError> {
        let get = |i: u32| -> Result<u64, ProbeError> {
            let v = self.counters.get(&i, 0).map_err(|source| ProbeError::Map {
                name: "COUNTERS",
                source,
            })?;
            Ok(v.iter().sum())
        };
        Ok(KernelCounters {
            ringbuf_full: get(counter::RINGBUF_FULL)?,
            inflight_full: get(counter::INFLIGHT_FULL)?,
            steps_exhausted: get(counter::STEPS_EXHAUSTED)?,
            watch_full: get(counter::WATCH_FULL)?,
        })
    }

    /// Attaches TLS program `name` at file offset `offset` of `path`: for every process
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
        prog.attach(point, path, scope)
            .map_err(|source| ProbeError::Program { name, source })
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
            .map_err(|source| ProbeError::Program { name, source })
    }

    /// Number of loaded programs (for diagnostics).
    pub fn program_count(&self) -> usize {
        self.ebpf.programs().count()
    }
}
