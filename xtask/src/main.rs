//! Project automation: `cargo xtask setup|run|test|bench [--report]|install`. Everything a fresh build host
//! needs (nightly `rust-src`, a `bpf-linker` built against rustc's own LLVM) is installed
//! here, idempotently, so the README's two commands work on a clean machine.

mod bench;
mod corpus;
mod deliverybench;
mod deps;
mod fleetbench;
mod fpcorpus;
mod install;
mod manifests;
mod report;
mod scanbench;
mod tlsbench;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

/// Build, set-up and benchmark tasks of the token sensor.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces the eBPF build needs (idempotent, cached).
    Setup,
    /// Set up, build (release) and run the sensor with its built-in defaults (needs root).
    Run {
        /// Extra arguments passed to `sensor run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build and run every test (unit + privileged integration tests, serially).
    Test,
    /// Regenerate deploy/kubernetes/configmap.yaml from sensor/default-config.yaml.
    DeployConfig,
    /// Build (release) and install the daemon as `token-sensor`, its systemd unit, the
    /// default configuration (never overwriting one) and the rule files.
    Install {
        /// Installation prefix as the running system sees it.
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Configuration root: the config goes to SYSCONFDIR/token-sensor/config.yaml.
        #[arg(long, default_value = "/etc")]
        sysconfdir: PathBuf,
        /// systemd unit directory [default: PREFIX/lib/systemd/system].
        #[arg(long)]
        unitdir: Option<PathBuf>,
        /// Staging root for packaging: files are written under it, but the paths inside
        /// them (unit ExecStart, config path) are those of the final system.
        #[arg(long)]
        destdir: Option<PathBuf>,
        /// Install this already-built `sensor` binary instead of building a release one.
        #[arg(long)]
        binary: Option<PathBuf>,
    },
    /// Set up, build (release) and run the overhead benchmark; prints figures and ratios.
    Bench {
        /// Syscalls per loop run.
        #[arg(long, default_value_t = 2_000_000)]
        calls: u64,
        /// 512-byte blocks per dd run.
        #[arg(long, default_value_t = 400_000)]
        dd_blocks: u64,
        /// Rounds per configuration (the best is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// Exit hook of the syscall programs: `tracepoints` (per-syscall exit tracepoints)
        /// or `btf` (one gated BTF sys_exit program).
        #[arg(long, default_value = "tracepoints")]
        exit_hook: String,
        /// Also measure write → finding latency and rewrite the README's benchmark table
        /// and the plots in docs/bench/.
        #[arg(long)]
        report: bool,
    },
    /// Set up, build (release) and measure the TLS uprobes: per-call cost of SSL_write for
    /// an unwatched and a watched process, and the added latency of one HTTPS request.
    BenchTls {
        /// SSL_write calls (64 bytes each) per run.
        #[arg(long, default_value_t = 100_000)]
        writes: u64,
        /// Sequential HTTPS requests (new connection each) per run.
        #[arg(long, default_value_t = 200)]
        requests: u64,
        /// Repetitions per configuration (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Set up, build (release) and measure write → alert latency at a loopback HTTP output
    /// through the real daemon (outbox figures: `cargo bench -p sensor --bench delivery`).
    BenchDelivery {
        /// Token writes (one connection each).
        #[arg(long, default_value_t = 200)]
        writes: usize,
        /// Milliseconds between writes.
        #[arg(long, default_value_t = 50)]
        gap_ms: u64,
    },
    /// Build the tansu broker if needed and measure alerts/s through the outbox to the
    /// Kafka output (`cargo bench -p sensor --bench kafka`).
    BenchKafka {
        /// Alerts per burst.
        #[arg(long, default_value_t = 20_000)]
        alerts: usize,
    },
    /// Set up, build (release) and measure the daemon's RSS and CPU with metrics enabled,
    /// idle and with N watched processes (each its own workspace).
    BenchFleet {
        /// Watched processes.
        #[arg(long, default_value_t = 1000)]
        processes: usize,
        /// Seconds per measured window.
        #[arg(long, default_value_t = 20)]
        secs: u64,
        /// Kernel ring buffer size (default: the built-in configuration's 16 MiB, which
        /// the daemon maps twice: 32 MiB of its RSS).
        #[arg(long)]
        ring_buffer_bytes: Option<u32>,
    },
    /// Set up, build (release) and run the detection throughput benchmark vs peers.
    BenchScan {
        /// Generated corpus size in MiB (the peer, ripsecrets, scans ~2 MB/s: 256 MiB
        /// takes it about two minutes).
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Setup => setup(),
        Cmd::Run { args } => {
            setup()?;
            cargo(&["build", "--release", "-p", "sensor"])?;
            let bin = root().join("target/release/sensor");
            let mut cmd = Command::new(&bin);
            cmd.arg("run").args(&args);
            if args.is_empty() {
                cmd.arg("--print-events");
            }
            let st = cmd
                .status()
                .with_context(|| format!("running {}", bin.display()))?;
            if !st.success() {
                bail!("sensor exited with {st}");
            }
            Ok(())
        }
        Cmd::Test => {
            setup()?;
            deps::ensure_debian(deps::TEST_PACKAGES)?;
            let pytools = deps::ensure_pytools(&home())?;
            // The deployment tests run this xtask (install) and the Python linters.
            std::env::set_var("XTASK_BIN", std::env::current_exe()?);
            std::env::set_var(deps::PYTOOLS_ENV, &pytools);
            let buns = deps::ensure_bun(&home().join(".cache/token-sensor"))?;
            // The TLS tests run these Bun binaries.
            let joined = std::env::join_paths(&buns)?;
            std::env::set_var("SENSOR_TEST_BUNS", joined);
            // The Kafka output tests run this broker.
            let tansu = deps::ensure_tansu(&home().join(".cache/token-sensor"))?;
            std::env::set_var("SENSOR_TEST_TANSU", tansu);
            cargo(&["build", "--all-targets"])?;
            cargo(&["test", "-p", "sensor-common", "-p", "sensor", "-p", "xtask"])?;
            // Privileged tests share the kernel's tracepoints: one at a time.
            cargo(&["test", "-p", "sensor-tests", "--", "--test-threads=1"])
        }
        Cmd::DeployConfig => manifests::generate(&root()),
        Cmd::Install {
            prefix,
            sysconfdir,
            unitdir,
            destdir,
            binary,
        } => {
            let binary = match binary {
                Some(b) => b,
                None => {
                    setup()?;
                    cargo(&["build", "--release", "-p", "sensor"])?;
                    root().join("target/release/sensor")
                }
            };
            let layout = install::Layout {
                prefix,
                sysconfdir,
                unitdir,
                destdir,
            };
            install::install(&root(), &binary, &layout)?;
            if layout.destdir.is_none() {
                eprintln!("xtask install: done; start it with: systemctl daemon-reload && systemctl enable --now token-sensor");
            }
            Ok(())
        }
        Cmd::BenchScan { mib } => {
            setup()?;
            cargo(&["build", "--release", "-p", "sensor"])?;
            // The peer scanner, from crates.io, measured in the same run.
            if Command::new("ripsecrets")
                .arg("--version")
                .output()
                .is_err()
            {
                eprintln!("xtask: installing the peer scanner ripsecrets from crates.io");
                cargo(&["install", "ripsecrets"])?;
            }
            scanbench::run(&root(), mib)
        }
        Cmd::BenchTls {
            writes,
            requests,
            reps,
        } => {
            setup()?;
            deps::ensure_debian(deps::TEST_PACKAGES)?;
            cargo(&["build", "--release", "-p", "sensor"])?;
            tlsbench::run(&root(), writes, requests, reps)
        }
        Cmd::BenchDelivery { writes, gap_ms } => {
            setup()?;
            cargo(&["build", "--release", "-p", "sensor", "-p", "sensor-tests"])?;
            deliverybench::run(&root(), writes, gap_ms)
        }
        Cmd::BenchFleet {
            processes,
            secs,
            ring_buffer_bytes,
        } => {
            setup()?;
            cargo(&["build", "--release", "-p", "sensor", "-p", "sensor-tests"])?;
            fleetbench::run(&root(), processes, secs, ring_buffer_bytes)
        }
        Cmd::BenchKafka { alerts } => {
            setup()?;
            let tansu = deps::ensure_tansu(&home().join(".cache/token-sensor"))?;
            std::env::set_var("SENSOR_TEST_TANSU", tansu);
            std::env::set_var("KAFKA_BENCH_ALERTS", alerts.to_string());
            cargo(&["bench", "-p", "sensor", "--bench", "kafka"])
        }
        Cmd::Bench {
            calls,
            dd_blocks,
            reps,
            exit_hook,
            report,
        } => {
            setup()?;
            cargo(&["build", "--release", "-p", "sensor", "-p", "sensor-tests"])?;
            let opts = bench::Opts {
                reps,
                calls,
                dd_blocks,
                exit_hook,
            };
            if report {
                report::run(&root(), &opts)
            } else {
                bench::run(&root(), &opts).map(|_| ())
            }
        }
    }
}

/// Workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> Result<()> {
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("cargo {}", args.join(" ")))?;
    if !st.success() {
        bail!("cargo {} failed: {st}", args.join(" "));
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Installs nightly rust-src and bpf-linker (against the nightly's LLVM) if missing.
fn setup() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!("no nightly toolchain installed (rustup toolchain install nightly); the eBPF crate needs it");
    }
    let comps = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !comps.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: installing rust-src for nightly");
        let st = Command::new("rustup")
            .args(["component", "add", "rust-src", "--toolchain", "nightly"])
            .status()?;
        if !st.success() {
            bail!("rustup component add rust-src failed");
        }
    }

    // bpf-linker must link the same LLVM as rustc nightly emits bitcode for.
    let sysroot =
        output(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    let libdir = PathBuf::from(sysroot.trim()).join("lib");
    let libllvm = std::fs::read_dir(&libdir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", libdir.display()))?;
    // libLLVM.so.22.1-rust-1.97.0-nightly → major 22, version 22.1.0
    let ver = libllvm
        .trim_start_matches("libLLVM.so.")
        .split('-')
        .next()
        .unwrap_or("")
        .to_string();
    let major = ver.split('.').next().unwrap_or("").to_string();
    if major.is_empty() {
        bail!("cannot read the LLVM version from {libllvm}");
    }
    let stamp_dir = home().join(".cache/token-sensor");
    let stamp = stamp_dir.join("bpf-linker.stamp");
    let want = format!("{libllvm}\n");
    let linker = home().join(".cargo/bin/bpf-linker");
    if linker.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker against {libllvm} (about a minute)");
    let prefix = stamp_dir.join("llvm-prefix");
    std::fs::create_dir_all(prefix.join("lib"))?;
    std::fs::create_dir_all(prefix.join("bin"))?;
    for name in ["libLLVM.so".to_string(), libllvm.clone()] {
        let link = prefix.join("lib").join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libdir.join(&libllvm), &link)?;
    }
    let cfg = prefix.join("bin/llvm-config");
    std::fs::write(&cfg, format!("#!/bin/sh\necho {ver}.0\n"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o755))?;
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "install",
            "bpf-linker",
            "--force",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix)
        .status()?;
    if !st.success() {
        bail!("cargo install bpf-linker failed");
    }
    std::fs::write(&stamp, want)?;
    Ok(())
}
