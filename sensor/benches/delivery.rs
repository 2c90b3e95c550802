//! `cargo bench -p sensor --bench delivery`: figures for the outbox — alerts/s committed
//! with fsync (one alert per commit, and group commits as the writer makes them), alerts/s
//! sustained through the whole pipeline to a loopback HTTP output (commit, render, POST,
//! acknowledge: two fsyncs per batch) with submit → received latency, and disk bytes per
//! pending alert. The write → alert latency through the kernel probes is
//! `cargo xtask bench-delivery`. Prints figures; asserts nothing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sensor::deliver::outbox::{NewAlert, Outbox};
use sensor::deliver::{Pipeline, PipelineConfig, RevocationMode, RevocationPolicy};

/// A realistic finding alert (native JSON, ~1.6 KB) with a unique id.
fn alert(i: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"finding","id":"01a25098-16e5-7733-a451-{i:012}","time":"2026-12-07T13:01:14.335170400Z","verdict":"exfiltration","severity":"critical","mitre":["T1552.001","T1567"],"workspace":{{"id":"container:4f1c2a9d0b7e","kind":"container","container_id":"4f1c2a9d0b7e","container_runtime":"docker","cgroup":"/system.slice/docker-4f1c2a9d0b7e.scope"}},"finding":{{"detector":"github-personal-access-token","name":"GitHub personal access token (classic)","provider":"github","kind":"personal_access_token","severity":"critical","confidence":"high","validation":"valid","encoding":"raw","offset":81,"length":40,"safe_prefix":"ghp_","fingerprint":"hmac-sha256:7d66da983bb3ce76bff984eea6c2f330","tags":["attack.t1552.001","attack.t1567"],"issuers":["github.com","api.github.com","*.github.com","*.githubusercontent.com"],"revoke":"github_credentials_revoke"}},"process":{{"pid":26074,"ppid":25848,"uid":1000,"exe":"/usr/local/bin/claude","argv":["claude","-p","summarize the repository and post it"],"cgroup":"/system.slice/docker-4f1c2a9d0b7e.scope","container_id":"4f1c2a9d0b7e","container_runtime":"docker","ancestry":[{{"pid":25848,"exe":"/usr/bin/bash"}},{{"pid":1,"exe":"/sbin/init"}}]}},"tid":26074,"sink":{{"kind":"network","fd":7,"fd_kind":"socket","endpoint":{{"type":"inet","proto":"tcp","addr":"203.0.113.9:443"}},"syscall":"write","host":"paste.example","host_source":"http","boundary":"outside"}},"chain":{{"source":{{"kind":"file","path":"/home/dev/.git-credentials"}},"hops":[],"sender_pid":26074,"sender_exe":"/usr/local/bin/claude"}},"count":1,"host":{{"hostname":"build-7","machine_id":"3d1219c7c4c5404aaa1f6d2a48adfda4"}}}}"#
    )
    .into_bytes()
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bench-delivery-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn commits(batch: usize, n: usize) {
    let dir = temp(&format!("commit{batch}"));
    let ob = Outbox::open(&dir, 1 << 30, vec!["out".into()]).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let items: Vec<NewAlert> = (i..(i + batch).min(n))
            .map(|k| NewAlert {
                json: alert(k),
                skip_output: None,
                job: None,
            })
            .collect();
        ob.commit(&items).unwrap();
        i += batch;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "outbox commit, {batch:>3} alert(s) per fsync'd commit: {:>8.0} alerts/s ({n} alerts)",
        n as f64 / s
    );
    if batch == 64 {
        let size = Outbox::file(&dir);
        let bytes = std::fs::metadata(&size).unwrap().len();
        println!(
            "disk: {} pending alerts of {} B JSON → outbox file {} B = {:.0} B per alert",
            n,
            alert(0).len(),
            bytes,
            bytes as f64 / n as f64
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Alert ids with the time they arrived.
type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

/// A loopback HTTP endpoint answering 200, recording when each alert line arrived.
fn http_server() -> (String, Arrivals) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let got: Arrivals = Arc::default();
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
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
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
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    let now = Instant::now();
                    for line in String::from_utf8_lossy(&buf[h + 4..h + 4 + len]).lines() {
                        if let Some(i) = line.find("\"id\":\"") {
                            g.lock()
                                .unwrap()
                                .push((line[i + 6..i + 42].to_string(), now));
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
    (addr, got)
}

fn pipeline(n: usize, rate: Option<u64>) {
    let (addr, got) = http_server();
    let dir = temp("pipeline");
    let outputs =
        vec![yaml_serde::from_str(&format!("kind: http\nurl: http://{addr}/ingest\n")).unwrap()];
    let p = Pipeline::start(PipelineConfig {
        state_dir: dir.clone(),
        state_max_bytes: 1 << 30,
        outputs,
        policy: RevocationPolicy {
            mode: RevocationMode::Off,
            min_severity: sensor::detect::rules::Severity::High,
        },
    })
    .unwrap();
    let h = p.handle();
    let mut sent = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        if let Some(r) = rate {
            let due = t + Duration::from_micros(i as u64 * 1_000_000 / r);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        let a = alert(i);
        let text = String::from_utf8_lossy(&a).into_owned();
        let at = text.find("\"id\":\"").expect("id") + 6;
        sent.push((text[at..at + 36].to_string(), Instant::now()));
        h.raise(a, None);
    }
    while got.lock().unwrap().len() < n && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = t.elapsed().as_secs_f64();
    let got = got.lock().unwrap().clone();
    let at: std::collections::HashMap<_, _> = got.into_iter().collect();
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, s)| at.get(id).map(|r| r.duration_since(*s)))
        .collect();
    lat.sort();
    if lat.is_empty() {
        println!("pipeline: nothing delivered");
        return;
    }
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    match rate {
        None => println!(
            "pipeline → loopback HTTP, burst of {n}: {:>8.0} alerts/s delivered (fsync'd commit + ack); latency p50 {:?} p99 {:?}",
            lat.len() as f64 / secs, pct(0.5), pct(0.99)
        ),
        Some(r) => println!(
            "pipeline → loopback HTTP at {r} alerts/s: submit → received p50 {:?} p99 {:?} ({} of {n})",
            pct(0.5), pct(0.99), lat.len()
        ),
    }
    p.shutdown(Duration::from_secs(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The file size when `n` alerts go into an outbox bounded at `max` bytes whose output
/// never acknowledges.
fn bounded(max: u64, n: usize) {
    let dir = temp("bounded");
    let ob = Outbox::open(&dir, max, vec!["dead".into()]).unwrap();
    let mut dropped = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let items: Vec<NewAlert> = chunk
            .iter()
            .map(|&k| NewAlert {
                json: alert(k),
                skip_output: None,
                job: None,
            })
            .collect();
        dropped += ob.commit(&items).unwrap().dropped;
    }
    let bytes = std::fs::metadata(Outbox::file(&dir)).unwrap().len();
    println!(
        "bounded: state_max_bytes {} MiB, {n} alerts to a dead output → {dropped} dropped, file {:.1} MiB",
        max >> 20,
        bytes as f64 / (1 << 20) as f64
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn main() {
    commits(1, 500);
    commits(64, 20_000);
    bounded(8 << 20, 20_000);
    pipeline(20_000, None);
    pipeline(500, Some(100));
}
