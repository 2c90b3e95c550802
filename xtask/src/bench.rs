//! Overhead benchmark of the kernel probes, printed as figures (it asserts nothing).
//!
//! Each round runs every workload with no sensor, with only empty programs on the syscall
//! tracepoints (`sensor-floor`: the cost of the kernel's tracepoint path and BPF dispatch
//! alone, built from the same tree), and with the sensor running in three states: nothing
//! watched (syscall programs detached), another process watched (programs attached, this
//! workload out of scope) and this workload watched. Configurations alternate within each
//! round so drift on a shared VM hits them alike; the best figure over rounds is printed (loops: the fastest of 20 batches).
//!
//! Workloads: a getppid loop (an untracked syscall), 64-byte writes to /dev/null (a tracked
//! syscall; never captured when watched), 64-byte writes into a pipe (captured when
//! watched), and `dd bs=512` through a pipe. Loops report thread CPU time per call and dd
//! its CPU time, so that other load on a shared VM does not count. `--report` also measures write → finding
//! latency and rewrites the README's benchmark table and plot (see [`crate::report`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Benchmark parameters.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Rounds (the best is printed).
    pub reps: usize,
    /// Calls per syscall loop.
    pub calls: u64,
    /// 512-byte blocks per dd run.
    pub dd_blocks: u64,
    /// How the sensor completes syscalls at exit: "tracepoints" (per-syscall exit
    /// tracepoints, the default) or "btf" (one gated BTF sys_exit program). The floor uses
    /// the same hook with empty programs.
    pub exit_hook: String,
}

/// The sensor states measured, in the order of a round.
pub const CONFIGS: [&str; 5] = ["none", "floor", "idle", "other", "watched"];

/// One workload's figure per configuration: ns per call (loops) or ms (dd).
#[derive(Clone, Debug)]
pub struct Row {
    pub name: &'static str,
    /// "ns/call" or "ms".
    pub unit: &'static str,
    /// Samples per configuration (index as in [`CONFIGS`]).
    pub samples: Vec<Vec<f64>>,
}

impl Row {
    /// Best (lowest) figure of one configuration over the rounds: on a VM shared with other
    /// work, preemption only ever adds time, so the minimum is the least noisy estimate.
    pub fn best(&self, cfg: usize) -> f64 {
        self.samples[cfg]
            .iter()
            .copied()
            .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a })
    }
}

/// Binaries and names the benchmark uses.
pub struct Bins {
    pub sensor: PathBuf,
    pub floor: PathBuf,
    /// The workload under a name the sensor does not watch.
    pub unwatched: PathBuf,
    /// The same workload under a watched name.
    pub watched: PathBuf,
    pub dd_unwatched: PathBuf,
    pub dd_watched: PathBuf,
    pub tar_unwatched: PathBuf,
    pub tar_watched: PathBuf,
}

impl Bins {
    /// Copies the release binaries into a scratch directory under watched/unwatched names.
    pub fn prepare(root: &Path) -> Result<Bins> {
        let rel = root.join("target/release");
        let dir = std::env::temp_dir().join("token-sensor-bench");
        std::fs::create_dir_all(&dir)?;
        let copy = |from: &Path, name: &str| -> Result<PathBuf> {
            let to = dir.join(name);
            let _ = std::fs::remove_file(&to);
            std::fs::copy(from, &to).with_context(|| format!("copying {}", from.display()))?;
            Ok(to)
        };
        let workload = rel.join("sensor-workload");
        let dd = which("dd")?;
        let tar = which("tar")?;
        Ok(Bins {
            sensor: rel.join("sensor"),
            floor: rel.join("sensor-floor"),
            unwatched: copy(&workload, "bench-unwatched")?,
            watched: copy(&workload, "bench-watched")?,
            dd_unwatched: dd.clone(),
            dd_watched: copy(&dd, "bench-dd-watched")?,
            tar_unwatched: tar.clone(),
            tar_watched: copy(&tar, "bench-tar-watched")?,
        })
    }
}

fn which(name: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found on PATH"))
}

/// Runs the workload binary with one step and returns its `ns_per_call`.
fn ns_per_call(bin: &Path, step: &str) -> Result<f64> {
    let out = Command::new(bin)
        .arg(step)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("workload {step} failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("ns_per_call "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no ns_per_call in the output of {step}: {text}"))
}

/// CPU time (user + system) of reaped children so far, in ms.
fn children_cpu_ms() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `dd bs=512` from /dev/zero through a pipe into another dd writing /dev/null: CPU ms of
/// the two dd processes (and their shell). CPU time, not wall time: with two processes on
/// two shared cores the wall time mostly measures scheduling.
fn dd_pipe(dd: &Path, blocks: u64) -> Result<f64> {
    let dd = dd.display();
    let script = format!(
        "{dd} if=/dev/zero bs=512 count={blocks} status=none | {dd} of=/dev/null bs=512 status=none"
    );
    let cpu = children_cpu_ms();
    let st = Command::new("sh").args(["-c", &script]).status()?;
    if !st.success() {
        bail!("dd pipeline failed: {st}");
    }
    Ok(children_cpu_ms() - cpu)
}

/// `tar` of /usr/include through a pipe into another tar extracting onto tmpfs: CPU ms.
fn tar_pipe(tar: &Path) -> Result<f64> {
    let dir = Path::new("/dev/shm/token-sensor-bench-tar");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let t = tar.display();
    let script = format!("{t} -C /usr -cf - include | {t} -C {} -xf -", dir.display());
    let cpu = children_cpu_ms();
    let st = Command::new("sh").args(["-c", &script]).status()?;
    let ms = children_cpu_ms() - cpu;
    let _ = std::fs::remove_dir_all(dir);
    if !st.success() {
        bail!("tar pipeline failed: {st}");
    }
    Ok(ms)
}

/// A background process whose stderr lines are collected.
pub struct Running {
    pub child: Child,
    pub lines: Receiver<String>,
}

fn spawn_logged(cmd: &mut Command) -> Result<Running> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Ok(Running { child, lines: rx })
}

/// Waits for a stderr line containing `pat`; false on timeout. Fails on an error line.
pub fn wait_line(r: &Running, pat: &str, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(l) = r.lines.recv_timeout(Duration::from_millis(50)) {
            if l.contains(pat) {
                return Ok(true);
            }
            if l.contains("ERROR") || l.contains("error:") {
                bail!("{l}");
            }
        }
    }
    Ok(false)
}

/// Starts `sensor run` watching the bench's watched names, with extra args.
pub fn start_sensor(bins: &Bins, exit_hook: &str, extra: &[&str]) -> Result<Running> {
    let wname = file_name(&bins.watched);
    let dname = file_name(&bins.dd_watched);
    let tname = file_name(&bins.tar_watched);
    let r = spawn_logged(
        Command::new(&bins.sensor)
            .args(["run", "--only-flag-scopes", "--watch-exe", &wname])
            .args(["--watch-exe", &dname, "--watch-exe", &tname])
            .args(extra)
            .env("SENSOR_EXIT_HOOK", exit_hook)
            .env("SENSOR_LOG", "warn,sensor=info"),
    )?;
    if !wait_line(&r, "sensor ready", Duration::from_secs(120))? {
        bail!("the sensor did not become ready");
    }
    Ok(r)
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// SIGTERM, wait, and return the final stats line.
pub fn stop(r: Running) -> Result<String> {
    unsafe { libc::kill(r.child.id() as i32, libc::SIGTERM) };
    let mut child = r.child;
    child.wait()?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(r.lines
        .try_iter()
        .filter(|l| l.contains("\"type\":\"stats\""))
        .last()
        .unwrap_or_default())
}

/// The binaries of one configuration: workload, dd, tar.
struct Set<'a> {
    bin: &'a Path,
    dd: &'a Path,
    tar: &'a Path,
}

/// Syscall-tracepoint links of any sensor on the machine (another engineer's or CI's
/// sensor running beside the benchmark skews every figure).
fn foreign_links(bins: &Bins) -> usize {
    Command::new(&bins.floor)
        .arg("--count")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .strip_prefix("syscall_links ")
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits (up to two minutes) until no sensor program is attached to the syscall
/// tracepoints; returns false if one still is.
fn wait_quiet(bins: &Bins) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = foreign_links(bins);
        if n == 0 {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("xtask bench: {n} syscall program links of another sensor are attached: figures are skewed");
            return false;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Measures every workload once under the current state into column `cfg`.
fn measure(rows: &mut [Row], cfg: usize, opts: &Opts, set: &Set) -> Result<()> {
    let n = opts.calls;
    let bin = set.bin;
    rows[0].samples[cfg].push(ns_per_call(bin, &format!("loop-getppid:{n}"))?);
    rows[1].samples[cfg].push(ns_per_call(bin, &format!("loop-write:{n}:64:null"))?);
    rows[2].samples[cfg].push(ns_per_call(bin, &format!("loop-write:{}:64:pipe", n / 2))?);
    rows[3].samples[cfg].push(dd_pipe(set.dd, opts.dd_blocks)?);
    rows[4].samples[cfg].push(tar_pipe(set.tar)?);
    Ok(())
}

/// Runs the rounds and returns the rows plus the sensor's last stats line.
pub fn collect(bins: &Bins, opts: &Opts) -> Result<(Vec<Row>, String)> {
    let mut rows: Vec<Row> = [
        ("getppid", "ns/call"),
        ("write 64 B /dev/null", "ns/call"),
        ("write 64 B pipe", "ns/call"),
        ("dd bs=512 → dd", "cpu ms"),
        ("tar → tar (tmpfs)", "cpu ms"),
    ]
    .into_iter()
    .map(|(name, unit)| Row {
        name,
        unit,
        samples: vec![Vec::new(); CONFIGS.len()],
    })
    .collect();
    let plain = Set {
        bin: &bins.unwatched,
        dd: &bins.dd_unwatched,
        tar: &bins.tar_unwatched,
    };
    let watched = Set {
        bin: &bins.watched,
        dd: &bins.dd_watched,
        tar: &bins.tar_watched,
    };
    // Warm-up (page cache, CPU frequency).
    measure(&mut rows, 0, opts, &plain)?;
    for r in rows.iter_mut() {
        r.samples[0].clear();
    }
    let mut stats = String::new();
    for round in 0..opts.reps {
        eprintln!("xtask bench: round {}/{}", round + 1, opts.reps);
        wait_quiet(bins);
        measure(&mut rows, 0, opts, &plain)?;

        let floor = spawn_logged(Command::new(&bins.floor).arg(&opts.exit_hook))?;
        if !wait_line(&floor, "floor attached", Duration::from_secs(60))? {
            bail!("sensor-floor did not attach");
        }
        measure(&mut rows, 1, opts, &plain)?;
        stop(floor)?;

        let sensor = start_sensor(bins, &opts.exit_hook, &[])?;
        wait_quiet(bins);
        measure(&mut rows, 2, opts, &plain)?;
        // An idle watched process: the syscall programs attach, the workload stays out of scope.
        let mut idle = Command::new(&bins.watched)
            .arg("wait")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        if !wait_line(&sensor, "syscall probes attached", Duration::from_secs(5))? {
            eprintln!("xtask bench: no 'syscall probes attached' line (probes always attached?)");
        }
        measure(&mut rows, 3, opts, &plain)?;
        measure(&mut rows, 4, opts, &watched)?;
        drop(idle.stdin.take());
        idle.wait()?;
        stats = stop(sensor)?;
    }
    Ok((rows, stats))
}

/// Prints the rows: best figure per configuration and the added cost against no sensor.
pub fn print(rows: &[Row]) {
    print!("{:<22}", "workload");
    for c in CONFIGS {
        print!(" {c:>10}");
    }
    println!("   (added vs none: floor / idle / other / watched)");
    for r in rows {
        let none = r.best(0);
        print!("{:<22}", format!("{} [{}]", r.name, r.unit));
        for c in 0..CONFIGS.len() {
            print!(" {:>10.1}", r.best(c));
        }
        if r.unit == "cpu ms" {
            let ratio = |c| r.best(c) / none;
            println!(
                "   {:.3}x / {:.3}x / {:.3}x / {:.3}x",
                ratio(1),
                ratio(2),
                ratio(3),
                ratio(4)
            );
        } else {
            let add = |c| r.best(c) - none;
            println!(
                "   {:+.0} / {:+.0} / {:+.0} / {:+.0} ns",
                add(1),
                add(2),
                add(3),
                add(4)
            );
        }
    }
    println!(
        "configs: none = no sensor; floor = empty programs on sys_enter/sys_exit; idle = sensor, \
         nothing watched; other = sensor watching another process; watched = this workload watched"
    );
    println!(
        "targets: untracked (getppid) <= +80 ns and tracked (write) <= +120 ns in `other`; \
         dd <= 1.02x idle, <= 1.5x watched"
    );
}

/// `cargo xtask bench`: build is done by the caller; runs and prints.
pub fn run(root: &Path, opts: &Opts) -> Result<Vec<Row>> {
    let bins = Bins::prepare(root)?;
    println!(
        "# token-sensor overhead: {} calls per loop, dd {} x 512 B, best of {} rounds, exit hook: {}",
        opts.calls, opts.dd_blocks, opts.reps, opts.exit_hook
    );
    let (rows, stats) = collect(&bins, opts)?;
    print(&rows);
    println!("sensor counters of the last round: {stats}");
    Ok(rows)
}
