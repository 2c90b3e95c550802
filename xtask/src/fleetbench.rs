//! `cargo xtask bench-fleet`: the daemon's own footprint on a busy host — RSS and CPU with
//! metrics enabled and scraped every second, first with nothing watched, then with N
//! watched processes (each its own workspace, each holding a learned secret, leaking it
//! once and then writing a clean 64-byte log line to a loopback socket every 100 ms).
//! Figures: CPU % of one core, RSS and peak RSS, scrape time and size, records/s and
//! what the daemon lost. Prints figures; asserts nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// One Prometheus scrape: (body, time taken).
fn scrape(addr: &str) -> Result<(String, Duration)> {
    let t = Instant::now();
    // The endpoint starts listening just after the daemon says it is ready.
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(e).context("connecting to the metrics endpoint"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok((body, t.elapsed()))
}

/// Sum of a metric's samples (all label sets) in a scrape.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b)
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the comm: state is index 0, utime 11, stime 12.
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64)
}

/// (VmRSS, VmHWM) in MiB.
fn rss(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0))
}

/// What one measured window saw.
struct Window {
    cpu_pct: f64,
    rss_mib: f64,
    hwm_mib: f64,
    scrape_ms_max: f64,
    scrape_kib: f64,
    records_per_s: f64,
    tracked: f64,
    workspaces: f64,
    lost: f64,
    findings: f64,
}

/// Measures the daemon over `secs` seconds, scraping its metrics once a second.
fn window(pid: u32, metrics: &str, secs: u64) -> Result<Window> {
    let (b0, _) = scrape(metrics)?;
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    let mut scrape_max = Duration::ZERO;
    let mut last = b0.clone();
    for _ in 0..secs {
        std::thread::sleep(Duration::from_secs(1));
        let (b, took) = scrape(metrics)?;
        scrape_max = scrape_max.max(took);
        last = b;
    }
    let dt = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid)? - c0;
    let (rss_mib, hwm_mib) = rss(pid)?;
    let rec = |b: &str| metric(b, "token_sensor_kernel_records_total");
    Ok(Window {
        cpu_pct: 100.0 * cpu / dt,
        rss_mib,
        hwm_mib,
        scrape_ms_max: scrape_max.as_secs_f64() * 1e3,
        scrape_kib: last.len() as f64 / 1024.0,
        records_per_s: (rec(&last) - rec(&b0)) / dt,
        tracked: metric(&last, "token_sensor_tracked_processes"),
        workspaces: metric(&last, "token_sensor_workspaces"),
        lost: metric(&last, "token_sensor_lost_total"),
        findings: metric(&last, "token_sensor_findings_total"),
    })
}

/// A loopback sink that accepts every connection and drains it.
fn sink() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let _ = std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(c.read(&mut buf), Ok(k) if k > 0) {}
                });
        }
    });
    Ok(port)
}

/// Runs the benchmark with `n` watched processes measured over `secs` seconds.
pub fn run(root: &Path, n: usize, secs: u64, ring_bytes: Option<u32>) -> Result<()> {
    // Each watched process holds a connection: two fds per process here.
    let want = (2 * n + 256) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let bin = root.join("target/release");
    let (dir, agent) = crate::deliverybench::bench_dir(&bin, "fleet", "bench-fleet-agent")?;
    let port = sink()?;
    let mport = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let metrics = format!("127.0.0.1:{mport}");
    let cfg = dir.join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir: {}\nmetrics_listen: {metrics}\n{}",
            dir.join("state").display(),
            ring_bytes
                .map(|b| format!("ring_buffer_bytes: {b}\n"))
                .unwrap_or_default()
        ),
    )?;
    let mut sensor = crate::deliverybench::start_sensor(&bin, &cfg, "bench-fleet-agent")?;
    let pid = sensor.id();
    let result = (|| -> Result<(Window, Window, Duration)> {
        let idle = window(pid, &metrics, secs)?;
        // The agents live for the ramp plus the window plus a margin.
        let life_ms = (secs + 120) * 1000;
        let line = "2026-12-07T18:00:00Z INFO worker heartbeat ok queue=0 lag_ms=3 jobs=17\n";
        let started = Instant::now();
        let mut agents: Vec<Child> = Vec::with_capacity(n);
        for i in 0..n {
            let token = format!("fleet-{i:04}-7c1e9a52d04b3f86a1");
            agents.push(
                Command::new(&agent)
                    .args([
                        "env:API_TOKEN".to_string(),
                        format!("tcp:127.0.0.1:{port}"),
                        format!("set:{}", &line[..64]),
                        format!("tick:100:{life_ms}"),
                    ])
                    .env("API_TOKEN", token)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting an agent")?,
            );
        }
        // Wait until the daemon tracks them all (or a minute passed).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (b, _) = scrape(&metrics)?;
            if metric(&b, "token_sensor_tracked_processes") >= n as f64 {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let ramp = started.elapsed();
        // Let the start-up alerts drain before measuring the steady state.
        std::thread::sleep(Duration::from_secs(3));
        let busy = window(pid, &metrics, secs);
        for mut a in agents {
            let _ = a.kill();
            let _ = a.wait();
        }
        Ok((idle, busy?, ramp))
    })();
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = sensor.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (idle, busy, ramp) = result?;
    println!(
        "daemon footprint, metrics on and scraped every second, {secs} s windows; {n} watched processes started in {:.1} s; ring buffer {}",
        ramp.as_secs_f64(),
        ring_bytes.map_or("16 MiB (default)".to_string(), |b| format!("{} KiB", b >> 10))
    );
    println!("| state | CPU (% of a core) | RSS | peak RSS | records/s | tracked processes | workspaces | findings | lost | scrape max | scrape size |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, w) in [
        ("nothing watched", &idle),
        (&*format!("{n} watched"), &busy),
    ] {
        println!(
            "| {name} | {:.1} % | {:.0} MiB | {:.0} MiB | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} ms | {:.0} KiB |",
            w.cpu_pct,
            w.rss_mib,
            w.hwm_mib,
            w.records_per_s,
            w.tracked,
            w.workspaces,
            w.findings,
            w.lost,
            w.scrape_ms_max,
            w.scrape_kib
        );
    }
    Ok(())
}
