//! Harness for the privileged integration tests: a loopback TCP sink that records what it
//! receives, helpers to start the real sensor (probes and all) in-process, to run the
//! scriptable workload as a real child process, and to collect the events it caused.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensor::config::Config;
use sensor::sensor::{Sensor, WatchArgs};
use sensor::state::events::SensorEvent;
use tokio::sync::mpsc;

/// A binary next to the test executable's profile directory (target/<profile>/NAME).
fn target_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} missing: run `cargo build` first",
        p.display()
    );
    p
}

/// Path of the workload binary built with the tests.
pub fn workload_bin() -> PathBuf {
    target_bin("sensor-workload")
}

/// Path of the `sensor` binary (`SENSOR_BIN` overrides).
pub fn sensor_bin() -> PathBuf {
    match std::env::var_os("SENSOR_BIN") {
        Some(p) => PathBuf::from(p),
        None => target_bin("sensor"),
    }
}

/// A loopback TCP listener that accepts any number of connections and keeps all bytes.
pub struct TcpSink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl TcpSink {
    /// Listens on 127.0.0.1 on an ephemeral port.
    pub fn start() -> TcpSink {
        Self::start_on("127.0.0.1:0")
    }

    /// Listens on `addr` (e.g. "[::1]:0").
    pub fn start_on(addr: &str) -> TcpSink {
        let l = TcpListener::bind(addr).expect("bind");
        let addr = l.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let r = received.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { break };
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => r.lock().unwrap().extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        TcpSink { addr, received }
    }
}

/// A running in-process sensor and the events it produced.
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub sensor: Option<Sensor>,
    rx: mpsc::Receiver<Vec<SensorEvent>>,
    pub events: Vec<SensorEvent>,
}

/// Config for tests: built-in default without the default exe scopes.
pub fn test_config() -> Config {
    let mut c = Config::builtin();
    c.watch = Default::default();
    c
}

impl Harness {
    /// Starts the sensor with `cfg` and `watch`.
    pub fn start(cfg: Config, watch: WatchArgs) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(10_000);
        let sensor = rt
            .block_on(Sensor::start(&cfg, &watch, tx))
            .expect("sensor starts");
        Harness {
            rt,
            sensor: Some(sensor),
            rx,
            events: Vec::new(),
        }
    }

    /// Collects events until `done` holds over everything collected, or `timeout`.
    pub fn collect_until(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[SensorEvent]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.events) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let rx = &mut self.rx;
            match self.rt.block_on(async {
                tokio::time::timeout(left.min(Duration::from_millis(100)), rx.recv()).await
            }) {
                Ok(Some(batch)) => self.events.extend(batch),
                Ok(None) => return done(&self.events),
                Err(_) => {}
            }
        }
    }

    /// Collects for a fixed time (to show that something does *not* arrive).
    pub fn collect_for(&mut self, d: Duration) {
        let _ = self.collect_until(d, |_| false);
    }

    /// Events of one process.
    pub fn of_pid(&self, pid: u32) -> Vec<&SensorEvent> {
        self.events
            .iter()
            .filter(|e| e.process.pid == pid)
            .collect()
    }

    /// Stops the sensor and returns its counters.
    pub fn stop(&mut self) -> sensor::ops::stats::StatsSnapshot {
        let s = self.sensor.take().expect("running");
        let stats = self.rt.block_on(s.shutdown());
        while let Ok(batch) = self.rx.try_recv() {
            self.events.extend(batch);
        }
        stats
    }
}

/// Did `pid` exit among `evs`?
pub fn has_exit(evs: &[SensorEvent], pid: u32) -> bool {
    evs.iter()
        .any(|e| e.process.pid == pid && matches!(e.body, sensor::state::events::EventBody::Exit))
}

/// The common shape of a watched-process test: spawn the workload (its steps start with
/// `wait`), watch its pid, release it, collect until it exits and stop the sensor.
/// Returns the pid, the harness with its events, and the sensor's counters.
pub fn watch_workload(
    cfg: Config,
    steps: &[&str],
) -> (u32, Harness, sensor::ops::stats::StatsSnapshot) {
    let mut child = spawn_workload(steps);
    let pid = child.id();
    let mut h = Harness::start(
        cfg,
        WatchArgs {
            pids: vec![pid],
            ..Default::default()
        },
    );
    release(&mut child);
    wait_ok(&mut child);
    assert!(
        h.collect_until(Duration::from_secs(10), |e| has_exit(e, pid)),
        "no exit event for the workload"
    );
    let stats = h.stop();
    (pid, h, stats)
}

/// Spawns the workload with `steps`, stdin piped (for `wait`), stdout/stderr inherited
/// unless `quiet`.
pub fn spawn_workload(steps: &[&str]) -> Child {
    Command::new(workload_bin())
        .args(steps)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn workload")
}

/// Releases a workload blocked in `wait`.
pub fn release(child: &mut Child) {
    use std::io::Write;
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();
}

/// Waits for a child and asserts success.
pub fn wait_ok(child: &mut Child) {
    let st = child.wait().expect("wait");
    assert!(st.success(), "workload failed: {st}");
}

/// A fresh temp directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sensor-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits for the CLI's "sensor ready" line; returns the child with its stderr being read.
pub fn wait_ready(
    mut child: std::process::Child,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(l) = line else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let ready = l.contains("sensor ready");
                seen.push(l);
                if ready {
                    return (child, rx);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
    }
    let _ = child.kill();
    panic!("sensor never became ready:\n{}", seen.join("\n"));
}

pub fn stop_cli(
    (mut child, rx): (std::process::Child, std::sync::mpsc::Receiver<String>),
) -> (std::process::ExitStatus, String) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let err: Vec<String> = rx.try_iter().collect();
    (status, err.join("\n"))
}

/// A running `sensor run` process (the real CLI), its stdout collected.
pub struct CliSensor {
    running: (std::process::Child, std::sync::mpsc::Receiver<String>),
    out: std::thread::JoinHandle<String>,
}

/// What a stopped CLI sensor printed.
pub struct CliOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliSensor {
    /// Starts `sensor run ARGS…` and waits until its probes are attached.
    pub fn start(args: &[&str]) -> CliSensor {
        let mut child = Command::new(sensor_bin())
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sensor");
        let stdout = child.stdout.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s);
            s
        });
        CliSensor {
            running: wait_ready(child),
            out,
        }
    }

    /// Stops it with SIGTERM and returns what it printed.
    pub fn stop(self) -> CliOutput {
        let (status, stderr) = stop_cli(self.running);
        let stdout = self.out.join().unwrap();
        CliOutput {
            status,
            stdout,
            stderr,
        }
    }
}

impl CliOutput {
    /// The JSON records of a type (`finding`, `repeat`, `event`) on stdout.
    pub fn records(&self, ty: &str) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == ty)
            .collect()
    }

    /// Asserts that none of `secrets` appears anywhere in stdout or stderr.
    pub fn assert_no_leak(&self, secrets: &[&str]) {
        for s in secrets {
            assert!(
                !self.stdout.contains(s) && !self.stderr.contains(s),
                "a raw secret appears in the sensor's output:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }

    /// Everything printed, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Copies the workload binary to `dir/name`, so a test can watch it by exe name.
pub fn workload_as(dir: &std::path::Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(workload_bin(), &p).unwrap();
    p
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}
