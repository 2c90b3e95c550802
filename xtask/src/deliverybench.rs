//! `cargo xtask bench-delivery`: write → alert received, through the real daemon. A
//! watched workload sends its (learned) token to N loopback sinks, one connection each,
//! spaced apart; the daemon's only output is a loopback HTTP endpoint. Latency is from
//! the sink receiving the bytes to the HTTP endpoint receiving the alert naming that sink
//! (matched by port). Prints p50/p99; asserts nothing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

type Times = Arc<Mutex<HashMap<u16, Instant>>>;

/// Listeners recording when each first received bytes.
fn sinks(n: usize) -> Result<(Vec<u16>, Times)> {
    let times: Times = Arc::default();
    let mut ports = Vec::new();
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        ports.push(port);
        let t = times.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let t = t.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut first = true;
                    while let Ok(k) = c.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        if first {
                            t.lock().unwrap().entry(port).or_insert_with(Instant::now);
                            first = false;
                        }
                    }
                });
            }
        });
    }
    Ok((ports, times))
}

/// The HTTP output's endpoint: records, per sink port named in an alert, when it arrived.
fn http_endpoint() -> Result<(String, Times)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    let got: Times = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut tmp = vec![0u8; 1 << 16];
                loop {
                    let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match c.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&tmp[..k]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < h + 4 + len {
                        match c.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&tmp[..k]),
                        }
                    }
                    let now = Instant::now();
                    for line in String::from_utf8_lossy(&buf[h + 4..h + 4 + len]).lines() {
                        let port = line
                            .split("\"addr\":\"127.0.0.1:")
                            .nth(1)
                            .and_then(|r| r.split('"').next())
                            .and_then(|p| p.parse::<u16>().ok());
                        if let Some(p) = port {
                            g.lock().unwrap().entry(p).or_insert(now);
                        }
                    }
                    buf.drain(..h + 4 + len);
                    if c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, got))
}

/// Starts `sensor run --only-flag-scopes --config CFG --watch-exe EXE` (stdout discarded)
/// and waits until it says it is ready. Shared by the benchmarks that drive the daemon.
pub fn start_sensor(bin: &Path, cfg: &Path, exe: &str) -> Result<Child> {
    let mut sensor = Command::new(bin.join("sensor"))
        .args(["run", "--only-flag-scopes", "--config"])
        .arg(cfg)
        .args(["--watch-exe", exe])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the sensor")?;
    let stderr = sensor.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if l.contains("sensor ready") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = sensor.kill();
        bail!("sensor did not become ready");
    }
    Ok(sensor)
}

/// A fresh working directory `<tmp>/bench-TAG-<pid>` holding the workload binary copied
/// as `agent` (the exe name the daemon watches). Returns (directory, agent path).
pub fn bench_dir(bin: &Path, tag: &str, agent: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = std::env::temp_dir().join(format!("bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let exe = dir.join(agent);
    std::fs::copy(bin.join("sensor-workload"), &exe)?;
    Ok((dir, exe))
}

/// Runs the benchmark with `n` writes spaced `gap_ms` apart.
pub fn run(root: &Path, n: usize, gap_ms: u64) -> Result<()> {
    let bin = root.join("target/release");
    let (dir, agent) = bench_dir(&bin, "delivery", "bench-deliv-agent")?;
    let (ports, written) = sinks(n)?;
    let (http, received) = http_endpoint()?;
    let cfg = dir.join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir: {}\noutputs:\n  - kind: http\n    url: http://{http}/ingest\n",
            dir.join("state").display()
        ),
    )?;
    let mut sensor = start_sensor(&bin, &cfg, "bench-deliv-agent")?;
    let token = "bench-9f2c41d7e8a3b6c50d1e";
    let mut steps = vec!["set:Authorization: Bearer bench-9f2c41d7e8a3b6c50d1e\r\n".to_string()];
    for p in &ports {
        steps.push(format!("tcp:127.0.0.1:{p}"));
        steps.push(format!("sleep:{gap_ms}"));
    }
    let st = Command::new(&agent)
        .args(&steps)
        .env("BENCH_TOKEN", token)
        .status()?;
    if !st.success() {
        bail!("workload failed: {st}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    let _ = sensor.wait();
    let (w, r) = (written.lock().unwrap(), received.lock().unwrap());
    let mut lat: Vec<Duration> = ports
        .iter()
        .filter_map(|p| Some(r.get(p)?.saturating_duration_since(*w.get(p)?)))
        .collect();
    lat.sort();
    if lat.is_empty() {
        bail!("no alert arrived");
    }
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "write → alert at the loopback HTTP output: {} of {n} writes; p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
