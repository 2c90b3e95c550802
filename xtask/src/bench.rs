//! Overhead benchmark: wall time of a write-heavy workload (many small writes to a pipe and
//! to a loopback TCP socket) with the sensor detached, attached but not watching the
//! workload, and attached and watching it. Prints figures and ratios against the targets
//! (unwatched ≤ 1.02×, watched ≤ 1.3×); it asserts nothing.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

struct Sink {
    addr: String,
}

fn start_sink() -> Result<Sink> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    Ok(Sink { addr })
}

/// CPU time (user + system) used by reaped children so far.
fn children_cpu() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One run of the workload: (wall time, CPU time of the workload process).
fn time_workload(bin: &Path, step: &str) -> Result<(Duration, Duration)> {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let st = Command::new(bin)
        .arg(step)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    let wall = t.elapsed();
    if !st.success() {
        bail!("workload {step} failed: {st}");
    }
    Ok((wall, children_cpu() - cpu0))
}

fn median(v: &[(Duration, Duration)], cpu: bool) -> Duration {
    let mut v: Vec<Duration> = v.iter().map(|(w, c)| if cpu { *c } else { *w }).collect();
    v.sort();
    v[v.len() / 2]
}

struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn start_sensor(sensor: &Path, watch_exe: &str) -> Result<Running> {
    let mut child = Command::new(sensor)
        .args(["run", "--only-flag-scopes", "--watch-exe", watch_exe])
        .env("SENSOR_LOG", "warn,sensor=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the sensor")?;
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
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            if l.contains("sensor ready") {
                return Ok(Running { child, lines: rx });
            }
            if l.contains("error") {
                bail!("sensor failed: {l}");
            }
        }
    }
    let _ = child.kill();
    bail!("sensor did not become ready")
}

fn stop_sensor(r: Running) -> Result<String> {
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

/// Runs the benchmark with release binaries under `root/target/release`.
pub fn run(root: &Path, writes: u64, reps: usize) -> Result<()> {
    let rel = root.join("target/release");
    let sensor = rel.join("sensor");
    let workload = rel.join("sensor-workload");
    let dir = std::env::temp_dir().join("token-sensor-bench");
    std::fs::create_dir_all(&dir)?;
    // Two copies of the workload: the sensor watches one by exe name and not the other.
    let watched = dir.join("bench-watched");
    let unwatched = dir.join("bench-unwatched");
    std::fs::copy(&workload, &watched)?;
    std::fs::copy(&workload, &unwatched)?;
    let sink = start_sink()?;
    let size = 64;
    let workloads = [
        ("pipe", format!("flood-pipe:{writes}:{size}")),
        ("tcp", format!("flood-tcp:{writes}:{size}:{}", sink.addr)),
    ];
    println!("# token-sensor overhead: {writes} writes of {size} bytes, median of {reps}");
    // Rounds alternate detached and attached phases so drift (caches, frequency, other
    // load) hits every configuration alike; each workload runs once first as a warm-up.
    for (_, step) in &workloads {
        time_workload(&unwatched, step)?;
    }
    let n = workloads.len();
    let (mut det, mut unw, mut wat) = (
        vec![Vec::new(); n],
        vec![Vec::new(); n],
        vec![Vec::new(); n],
    );
    let mut stats = String::new();
    for _ in 0..reps {
        for (i, (_, step)) in workloads.iter().enumerate() {
            det[i].push(time_workload(&unwatched, step)?);
        }
        let running = start_sensor(&sensor, "bench-watched")?;
        for (i, (_, step)) in workloads.iter().enumerate() {
            unw[i].push(time_workload(&unwatched, step)?);
            wat[i].push(time_workload(&watched, step)?);
        }
        stats = stop_sensor(running)?;
    }
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "sink", "detached", "unwatched", "watched", "unw/det", "wat/det"
    );
    for (i, (name, _)) in workloads.iter().enumerate() {
        for (label, cpu) in [("wall", false), ("cpu", true)] {
            let (d, u, w) = (
                median(&det[i], cpu),
                median(&unw[i], cpu),
                median(&wat[i], cpu),
            );
            println!(
                "{:<10} {:>10.1}ms {:>10.1}ms {:>10.1}ms {:>9.3}x {:>9.3}x",
                format!("{name}/{label}"),
                d.as_secs_f64() * 1e3,
                u.as_secs_f64() * 1e3,
                w.as_secs_f64() * 1e3,
                u.as_secs_f64() / d.as_secs_f64(),
                w.as_secs_f64() / d.as_secs_f64()
            );
        }
    }
    println!("targets: unwatched <= 1.02x, watched <= 1.30x");
    println!("sensor counters of the last attached round: {stats}");
    Ok(())
}
