//! TLS uprobe cost: per-call time of `SSL_write` (64 bytes, through Python's `ssl` module
//! on the system libssl, into memory BIOs so no syscall blurs the figure) and the latency
//! of one HTTPS request over loopback (new connection, handshake, request, response), with the sensor detached, attached but not watching the
//! client (the uprobes still trap: the cost every process using libssl pays), and
//! watching it (plaintext copied out and scanned). Prints figures; asserts nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The server: a TLS endpoint that answers `GET ` requests with a small HTTP/1.1
/// response and closes, and otherwise discards what follows the handshake undecrypted.
const SERVER_PY: &str = r#"
import os, socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(128)
print(srv.getsockname()[1], flush=True)
def handle(c):
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(c, server_side=True)
        first = s.recv(65536)
        if first.startswith(b"GET "):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            try:
                s.unwrap().close()
            except Exception:
                s.close()
            return
        # Discard the ciphertext unread (no SSL_read here), so the client's rate is
        # its own SSL_write cost, not this server's.
        fd = s.fileno()
        while os.read(fd, 1 << 20):
            pass
    except Exception:
        pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

/// The client: waits for a line on stdin, then N `SSL_write` of 64 bytes into memory BIOs
/// (one connection whose handshake ran in-process: no syscalls, so the figure is the
/// library call plus what the uprobes add) and M sequential HTTPS requests over loopback;
/// prints ns per write and µs per request.
const CLIENT_PY: &str = r#"
import socket, ssl, sys, time
port, ca, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
writes, requests = int(sys.argv[5]), int(sys.argv[6])
ctx = ssl.create_default_context(cafile=ca)
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
cin, cout, sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
c = ctx.wrap_bio(cin, cout, server_hostname="bench.test")
srv = sctx.wrap_bio(sin, sout, server_side=True)
done = [False, False]
while not all(done):
    for i, (o, frm, to) in enumerate(((c, cout, sin), (srv, sout, cin))):
        if not done[i]:
            try:
                o.do_handshake()
                done[i] = True
            except ssl.SSLWantReadError:
                pass
        to.write(frm.read())
sys.stdin.readline()
buf = b"x" * 64
t = time.perf_counter_ns()
for i in range(writes):
    c.write(buf)
    if i % 1024 == 0:
        cout.read()
w = (time.perf_counter_ns() - t) / writes
def conn():
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, server_hostname="bench.test")
t = time.perf_counter_ns()
for _ in range(requests):
    s = conn()
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nAuthorization: token abc\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
r = (time.perf_counter_ns() - t) / requests / 1000
print(f"{w:.1f} {r:.1f}", flush=True)
"#;

fn run_ok(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn pki(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let p = |n: &str| dir.join(n);
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=bench CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
    )?;
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=bench.test",
            ])
            .arg("-keyout")
            .arg(p("srv.key"))
            .arg("-out")
            .arg(p("srv.csr")),
    )?;
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:bench.test\n")?;
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(p("srv.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext.cnf"))
            .arg("-out")
            .arg(p("srv.pem")),
    )?;
    Ok((p("ca.pem"), p("srv.pem"), p("srv.key")))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    NoSensor,
    Unwatched,
    Watched,
    PerProcessUnwatched,
    PerProcessWatched,
}

fn start_sensor(bin: &Path, cfg: &Path, watch_pid: Option<u32>) -> Result<Killed> {
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--only-flag-scopes", "--config"]).arg(cfg);
    if let Some(p) = watch_pid {
        cmd.args(["--watch-pid", &p.to_string()]);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let err = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines() {
            let Ok(l) = l else { break };
            if l.contains("sensor ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .context("sensor never became ready")?;
    Ok(Killed(child))
}

/// What every run shares.
struct Setup {
    sensor: PathBuf,
    cfg: PathBuf,
    cfg_per_process: PathBuf,
    client: PathBuf,
    port: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    writes: u64,
    requests: u64,
}

/// One run: (ns per 64-byte SSL write, µs per HTTPS request).
fn one(b: &Setup, mode: Mode) -> Result<(f64, f64)> {
    let (sensor, cfg, pp) = (&b.sensor, &b.cfg, &b.cfg_per_process);
    let mut c = Command::new("/usr/bin/python3")
        .arg(&b.client)
        .arg(b.port.to_string())
        .arg(&b.ca)
        .arg(&b.cert)
        .arg(&b.key)
        .arg(b.writes.to_string())
        .arg(b.requests.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("python3")?;
    let _sensor = match mode {
        Mode::NoSensor => None,
        Mode::Unwatched => Some(start_sensor(sensor, cfg, None)?),
        Mode::Watched => Some(start_sensor(sensor, cfg, Some(c.id()))?),
        Mode::PerProcessUnwatched => Some(start_sensor(sensor, pp, None)?),
        Mode::PerProcessWatched => Some(start_sensor(sensor, pp, Some(c.id()))?),
    };
    // Let the sensor's attach thread settle before the timed part.
    std::thread::sleep(Duration::from_millis(300));
    c.stdin.take().expect("piped").write_all(b"go\n")?;
    let out = c.wait_with_output()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>());
    match (it.next(), it.next()) {
        (Some(Ok(w)), Some(Ok(r))) => Ok((w, r)),
        _ => bail!("bench client printed {s:?}"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the benchmark and prints the table.
pub fn run(root: &Path, writes: u64, requests: u64, reps: usize) -> Result<()> {
    let dir = root.join("target/tls-bench");
    std::fs::create_dir_all(&dir)?;
    let (ca, cert, key) = pki(&dir)?;
    let server = dir.join("server.py");
    let client = dir.join("client.py");
    std::fs::write(&server, SERVER_PY)?;
    std::fs::write(&client, CLIENT_PY)?;
    let cfg = dir.join("sensor.yaml");
    std::fs::write(
        &cfg,
        "fingerprint_key: \"0123456789abcdef0123456789abcdef\"\n",
    )?;
    let cfg_per_process = dir.join("sensor-per-process.yaml");
    std::fs::write(
        &cfg_per_process,
        "fingerprint_key: \"0123456789abcdef0123456789abcdef\"\ntls_attach: per_process\n",
    )?;
    let sensor = root.join("target/release/sensor");
    let mut srv = Command::new("/usr/bin/python3")
        .arg(&server)
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .context("python3 server")?;
    let mut line = String::new();
    BufReader::new(srv.stdout.take().expect("piped")).read_line(&mut line)?;
    let srv = Killed(srv);
    let port: u16 = line.trim().parse().context("server port")?;
    println!(
        "TLS uprobes: {writes} SSL_write of 64 B into memory BIOs, {requests} HTTPS requests \
         over loopback (new connection each); Python ssl on the system libssl; median of {reps}"
    );
    let setup = Setup {
        sensor,
        cfg,
        cfg_per_process,
        client,
        port,
        ca,
        cert,
        key,
        writes,
        requests,
    };
    let mut rows = Vec::new();
    for (mode, label) in [
        (Mode::NoSensor, "no sensor"),
        (Mode::Unwatched, "sensor, client not watched"),
        (Mode::Watched, "sensor, client watched"),
        (
            Mode::PerProcessUnwatched,
            "tls_attach: per_process, not watched",
        ),
        (Mode::PerProcessWatched, "tls_attach: per_process, watched"),
    ] {
        let mut w = Vec::new();
        let mut r = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let (a, b) = one(&setup, mode)?;
            eprintln!(
                "  {label}: {a:.0} ns/write, {b:.0} µs/request ({:.1?})",
                t.elapsed()
            );
            w.push(a);
            r.push(b);
        }
        rows.push((label, median(w), median(r)));
    }
    let (w0, r0) = (rows[0].1, rows[0].2);
    println!("| configuration | ns per SSL_write (64 B) | added | µs per HTTPS request | added |");
    println!("|---|---|---|---|---|");
    for (label, w, r) in &rows {
        println!(
            "| {label} | {w:.0} | {:+.0} ns | {r:.0} | {:+.0} µs |",
            w - w0,
            r - r0
        );
    }
    drop(srv);
    Ok(())
}
