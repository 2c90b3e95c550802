//! A watched process that floods the detector with bytes expensive to scan (a repeated
//! keyword) must neither stall the sensor nor delay another workspace's findings, and the
//! degraded detection of its own workspace is announced (`detection_degraded`), never
//! silent. Through the real daemon, real processes and a real TCP peer.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensor_tests::*;

#[test]
fn a_flooding_workspace_is_announced_and_does_not_delay_another_workspaces_findings() {
    let dir = temp_dir("flood");
    let flooder = workload_as(&dir, "agent-flooder");
    let leaker = workload_as(&dir, "agent-leaker");
    let sink = TcpSink::start();
    // A small budget, so the flood exceeds it on any machine.
    let cfg = dir.join("budget.yaml");
    std::fs::write(&cfg, "scan_budget_ms: 20\n").unwrap();
    let state = dir.join("state");
    let mut child = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes", "--config"])
        .arg(&cfg)
        .args([
            "--watch-exe",
            "agent-flooder",
            "--watch-exe",
            "agent-leaker",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((Instant::now(), l));
        }
    });
    let running = wait_ready(child);
    // ~64 MiB of `eyJ.` over one connection, in 16 KiB writes.
    let mut flood = Command::new(&flooder)
        .args([
            "repeat:eyJ.:4096".to_string(),
            format!("tcp:{}", sink.addr),
            "again-n:4000".to_string(),
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Meanwhile another workspace leaks a token.
    let token = github_token(4242);
    let sent = Instant::now();
    let ok = Command::new(&leaker)
        .args([
            format!("set:Authorization: token {token}\n"),
            format!("tcp:{}", sink.addr),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut seen = Vec::new();
    let mut leak_at = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while leak_at.is_none() && Instant::now() < deadline {
        if let Ok((t, l)) = lines.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap_or_default();
            if v["verdict"] == "exfiltration"
                && v["workspace"]["root_exe"]
                    .as_str()
                    .is_some_and(|e| e.ends_with("agent-leaker"))
            {
                leak_at = Some(t);
            }
            seen.push(l);
        }
    }
    let leak_at = leak_at.unwrap_or_else(|| panic!("the leak was not found:\n{}", seen.join("\n")));
    assert!(flood.wait().unwrap().success());
    // Stopping still works right after the flood.
    std::thread::sleep(Duration::from_millis(1500));
    let stop_started = Instant::now();
    let (status, err) = stop_cli(running);
    let stop_took = stop_started.elapsed();
    seen.extend(lines.try_iter().map(|(_, l)| l));
    let all = seen.join("\n");
    assert!(status.success(), "{status}\n{err}");
    assert!(
        stop_took < Duration::from_secs(20),
        "stopping took {stop_took:?}"
    );
    // Found while the other workspace was flooding, not after the backlog drained: the
    // 30 s bound is far above normal latency (tens of ms) and far below what an unbounded
    // flood of this size costs a serial detector.
    let latency = leak_at.duration_since(sent);
    assert!(
        latency < Duration::from_secs(30),
        "leak found after {latency:?}"
    );
    let degraded: Vec<serde_json::Value> = seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["verdict"] == "detection_degraded")
        .collect();
    assert!(
        !degraded.is_empty(),
        "no detection_degraded alert:\n{all}\n{err}"
    );
    for d in &degraded {
        assert!(
            d["workspace"]["root_exe"]
                .as_str()
                .is_some_and(|e| e.ends_with("agent-flooder")),
            "degraded alert names the wrong workspace: {d}"
        );
        assert_eq!(d["severity"], "medium");
        assert!(d["mitre"].to_string().contains("T1562.001"), "{d}");
    }
    // One per workspace and window; the reason says what was skipped.
    let firsts: Vec<_> = degraded.iter().filter(|d| d["type"] == "finding").collect();
    assert_eq!(firsts.len(), 1, "{all}");
    let detail = firsts[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("scan_budget:") || detail.starts_with("kernel_loss:"),
        "{detail}"
    );
    let stats = err
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"stats\""))
        .expect("stats line");
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert!(
        v["verdicts"]["skipped_bytes"].as_u64().unwrap_or(0) > 0
            || v["stats"]["kernel_ringbuf_full"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        !all.contains(&token) && !err.contains(&token),
        "raw token printed"
    );
}
