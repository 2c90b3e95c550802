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

fn time_workload(bin: &Path, step: &str) -> Result<Duration> {
    let t = Instant::now();
    let st = Command::new(bin).arg(step).status().with_context(|| format!("running {}", bin.display()))?;
    if !st.success() {
        bail!("workload {step} failed: {st}");
    }
    Ok(t.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
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
    unsafe { libc_kill(r.child.id() as i32, 15) };
    let mut child = r.child;
    child.wait()?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(r.lines.try_iter().filter(|l| l.contains("\"type\":\"stats\"")).last().unwrap_or_default())
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
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
    println!("{:<6} {:>12} {:>12} {:>12} {:>10} {:>10}", "sink", "detached", "unwatched", "watched", "unw/det", "wat/det");
    let measure = |bin: &Path, step: &str| -> Result<Duration> {
        let mut v = Vec::new();
        for _ in 0..reps {
            v.push(time_workload(bin, step)?);
        }
        Ok(median(v))
    };
    let mut rows = Vec::new();
    for (name, step) in &workloads {
        let det = measure(&unwatched, step)?;
        rows.push((name, step, det));
    }
    let running = start_sensor(&sensor, "bench-watched")?;
    let mut results = Vec::new();
    for (name, step, det) in &rows {
        let unw = measure(&unwatched, step)?;
        let wat = measure(&watched, step)?;
        results.push((name, *det, unw, wat));
    }
    let stats = stop_sensor(running)?;
    for (name, det, unw, wat) in results {
        println!(
            "{:<6} {:>10.1}ms {:>10.1}ms {:>10.1}ms {:>9.3}x {:>9.3}x",
            name,
            det.as_secs_f64() * 1e3,
            unw.as_secs_f64() * 1e3,
            wat.as_secs_f64() * 1e3,
            unw.as_secs_f64() / det.as_secs_f64(),
            wat.as_secs_f64() / det.as_secs_f64()
        );
    }
    println!("targets: unwatched <= 1.02x, watched <= 1.30x");
    println!("sensor counters over the watched runs: {stats}");
    Ok(())
}
