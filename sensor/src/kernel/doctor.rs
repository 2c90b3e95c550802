//! Preflight checks: the kernel features and privileges the probes need, each named, so that
//! `sensor run` fails with a message an operator can act on instead of a verifier dump, and
//! `sensor doctor` prints the whole picture.

use std::path::{Path, PathBuf};

use crate::host::tracefs::{ensure_tracefs, tracefs_root};

/// One check's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// Short name of the feature ("btf", "tracefs", …).
    pub name: &'static str,
    /// Whether the feature is present and usable.
    pub ok: bool,
    /// What was found, or what is missing and how to fix it.
    pub detail: String,
}

/// Where BTF is expected; `SENSOR_BTF_PATH` overrides for packaging on unusual kernels.
fn btf_path() -> PathBuf {
    std::env::var_os("SENSOR_BTF_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"))
}

fn has_cap(capeff: u64, bit: u32) -> bool {
    capeff & (1u64 << bit) != 0
}

/// Effective capabilities of this process.
fn capeff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Runs every check. `mount` allows mounting tracefs when it is missing.
pub fn run_checks(mount: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let caps = capeff();
    let euid = unsafe { libc::geteuid() };
    let privileged =
        has_cap(caps, CAP_SYS_ADMIN) || (has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON));
    out.push(Check {
        name: "privileges",
        ok: privileged,
        detail: if privileged {
            format!("euid {euid}, CapEff {caps:#x}")
        } else {
            format!("euid {euid} lacks CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN): run as root")
        },
    });

    let btf = btf_path();
    let btf_ok = btf.is_file() && std::fs::File::open(&btf).is_ok();
    out.push(Check {
        name: "btf",
        ok: btf_ok,
        detail: if btf_ok {
            format!("{} present", btf.display())
        } else {
            format!(
                "{} missing: kernel needs CONFIG_DEBUG_INFO_BTF=y",
                btf.display()
            )
        },
    });

    let tracefs = if mount && privileged {
        ensure_tracefs()
    } else {
        tracefs_root().ok_or_else(|| "tracefs not mounted at /sys/kernel/tracing".to_string())
    };
    match &tracefs {
        Ok(root) => {
            out.push(Check {
                name: "tracefs",
                ok: true,
                detail: format!("mounted at {}", root.display()),
            });
            for (cat, tp) in [
                ("sched", "sched_process_fork"),
                ("sched", "sched_process_exit"),
                ("raw_syscalls", "sys_enter"),
                ("raw_syscalls", "sys_exit"),
            ] {
                let p = root.join("events").join(cat).join(tp);
                let ok = p.join("format").is_file();
                out.push(Check {
                    name: "tracepoint",
                    ok,
                    detail: format!(
                        "{cat}:{tp} {}",
                        if ok {
                            "available"
                        } else {
                            "missing (CONFIG_FTRACE_SYSCALLS / CONFIG_TRACEPOINTS)"
                        }
                    ),
                });
            }
        }
        Err(e) => out.push(Check {
            name: "tracefs",
            ok: false,
            detail: e.clone(),
        }),
    }
    if let Ok(root) = &tracefs {
        // Optional: DNS answers (destination names without SNI/Host) need it.
        let ok = root.join("events/sock/sock_recv_length/format").is_file();
        out.push(Check {
            name: "tracepoint",
            ok: true,
            detail: if ok {
                "sock:sock_recv_length available (DNS answers name destinations)".into()
            } else {
                "sock:sock_recv_length missing (optional, Linux ≥ 6.3): DNS answers are not \
                 followed, destinations are named by SNI/Host only"
                    .into()
            },
        });
    }

    let rb = privileged && probe_ringbuf();
    out.push(Check {
        name: "ringbuf",
        ok: rb || !privileged,
        detail: if !privileged {
            "not probed without privileges".into()
        } else if rb {
            "BPF_MAP_TYPE_RINGBUF supported".into()
        } else {
            "BPF ring buffers unsupported: kernel ≥ 5.8 needed".into()
        },
    });
    let uprobe = Path::new("/sys/bus/event_source/devices/uprobe").exists();
    out.push(Check {
        name: "uprobes",
        ok: true,
        detail: if uprobe {
            "available (optional)".into()
        } else {
            "not available (optional; not used yet)".into()
        },
    });
    let cgv2 = crate::host::cgroupfs::cgroup2_mount().is_some();
    out.push(Check {
        name: "cgroup2",
        ok: true,
        detail: match crate::host::cgroupfs::cgroup2_mount() {
            Some(p) => format!("cgroup v2 at {}", p.display()),
            None if !cgv2 => {
                "no cgroup v2 hierarchy: --watch-cgroup falls back to process subtrees".into()
            }
            None => unreachable!(),
        },
    });
    out
}

/// The system libc's `getenv`/`secure_getenv` hook points (`getenv_uprobes`), named
/// `getenv`; informational.
pub fn getenv_checks() -> Vec<Check> {
    let libc = super::uprobes::system_libc();
    if libc.is_empty() {
        return vec![Check {
            name: "getenv",
            ok: true,
            detail: "no system libc found: getenv reads are not recorded".into(),
        }];
    }
    libc.iter()
        .map(|path| {
            let detail = match super::uprobes::analyze(path) {
                Ok(a) if !a.env_hooks.is_empty() => {
                    let fns: Vec<String> = a
                        .env_hooks
                        .iter()
                        .map(|h| format!("{} @{:#x}", h.function, h.offset))
                        .collect();
                    format!("{}: hooked: {}", path.display(), fns.join(", "))
                }
                Ok(_) => format!("{}: no getenv symbol: not hooked", path.display()),
                Err(e) => e.to_string(),
            };
            Check {
                name: "getenv",
                ok: true,
                detail,
            }
        })
        .collect()
}

/// Creates (and closes) a 4 KiB BPF ring buffer map to prove the kernel supports it.
fn probe_ringbuf() -> bool {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_RINGBUF: u32 = 27;
    let mut attr = [0u32; 32];
    attr[0] = BPF_MAP_TYPE_RINGBUF;
    attr[3] = 4096; // max_entries = byte size
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
        true
    } else {
        false
    }
}

/// The first failed check, as the message `sensor run` exits with.
pub fn first_failure(checks: &[Check]) -> Option<String> {
    checks.iter().find(|c| !c.ok).map(|c| {
        format!(
            "missing kernel feature or privilege `{}`: {}",
            c.name, c.detail
        )
    })
}

/// TLS coverage checks (informational, never failures): the system TLS libraries and
/// their hook points, then each binary in `binaries` and each running process whose exe
/// basename is in `watch_exes`, naming those whose TLS has no hook (opaque streams).
pub fn tls_checks(binaries: &[PathBuf], watch_exes: &[String]) -> Vec<Check> {
    use super::uprobes::{analyze, system_tls_libraries};
    let mut out = Vec::new();
    let describe = |path: &Path| -> Check {
        match analyze(path) {
            Ok(a) => {
                let mut parts = Vec::new();
                if let Some(s) = a.stack {
                    let fns: Vec<String> = a
                        .hooks
                        .iter()
                        .filter(|h| !h.program.ends_with("_ret"))
                        .map(|h| format!("{} @{:#x}", h.function, h.offset))
                        .collect();
                    parts.push(format!("{} hooked: {}", s.name(), fns.join(", ")));
                }
                for o in &a.opaque {
                    parts.push(format!("NO TLS HOOK ({o}): streams are opaque"));
                }
                if parts.is_empty() {
                    parts.push("no TLS stack".into());
                }
                Check {
                    name: "tls",
                    ok: true,
                    detail: format!("{}: {}", path.display(), parts.join("; ")),
                }
            }
            Err(e) => Check {
                name: "tls",
                ok: true,
                detail: e.to_string(),
            },
        }
    };
    let libs = system_tls_libraries();
    if libs.is_empty() {
        out.push(Check {
            name: "tls",
            ok: true,
            detail: "no system libssl/libgnutls found".into(),
        });
    }
    for l in &libs {
        out.push(describe(l));
    }
    out.extend(getenv_checks());
    for b in binaries {
        out.push(describe(b));
    }
    let mut seen = std::collections::HashSet::new();
    for pid in crate::host::procfs::all_pids() {
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let base = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if watch_exes.contains(&base) && seen.insert(exe.clone()) {
            let mut c = describe(&PathBuf::from(format!("/proc/{pid}/exe")));
            c.detail = format!("watched process {pid} ({}): {}", exe.display(), c.detail);
            out.push(c);
        }
    }
    out
}
