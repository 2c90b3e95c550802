//! A watched process that floods the detector with bytes expensive to scan (a repeated
//! keyword) must neither stall the sensor nor delay another workspace's findings; a
//! learned token in the middle of its own flood is still found at once, and the degraded
//! detection of its workspace is announced (`detection_degraded`), never silent. Through
//! the real daemon, real processes and a real TCP peer.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sensor_tests::*;

/// How long after the write that carried it an alert line was read.
fn latency(alert: &serde_json::Value, read_at: SystemTime) -> Duration {
    let t = humantime::parse_rfc3339(alert["time"].as_str().unwrap()).unwrap();
    read_at.duration_since(t).unwrap_or_default()
}

fn root_exe_is(v: &serde_json::Value, name: &str) -> bool {
    v["workspace"]["root_exe"]
        .as_str()
        .is_some_and(|e| e.ends_with(name))
}

#[test]
fn a_flood_keeps_other_workspaces_real_time_and_its_learned_token_is_found() {
    let dir = temp_dir("flood");
    let flooder = workload_as(&dir, "agent-flooder");
    let leaker = workload_as(&dir, "agent-leaker");
    let sink = TcpSink::start();
    let cfg = dir.join("flood.yaml");
    // Without TLS and getenv uprobes: detaching the global TLS ones takes the kernel
    // 1.4-1.7 s on this VM (measured idle), which is not what this test is about — how
    // fast the daemon stops right after a flood.
    std::fs::write(
        &cfg,
        "scan_budget_ms: 100\ntls_uprobes: false\ngetenv_uprobes: false\n",
    )
    .unwrap();
    let mut child = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes", "--config"])
        .arg(&cfg)
        .args([
            "--watch-exe",
            "agent-flooder",
            "--watch-exe",
            "agent-leaker",
        ])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<(SystemTime, String)>();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send((SystemTime::now(), l));
        }
    });
    let (mut child, err_rx) = wait_ready(child);
    // 5 s of `eyJ.` in 16 KiB writes over one connection, the workspace's own token (from
    // its environment) in the middle — sent five times between bursts: the ring buffer
    // overflows under this flood and the kernel drops records (counted), so one copy could
    // be among them. Latency is measured from the write of the copy that was found.
    let learned = github_token(4241);
    let mut flood = Command::new(&flooder)
        .env("GITHUB_TOKEN", &learned)
        .args([
            "repeat:eyJ.:4096".to_string(),
            format!("tcp:{}", sink.addr),
            "again-for:2500".to_string(),
            "env:GITHUB_TOKEN".to_string(),
            "again".to_string(),
            "repeat:eyJ.:4096".to_string(),
            "again-for:100".to_string(),
            "env:GITHUB_TOKEN".to_string(),
            "again".to_string(),
            "repeat:eyJ.:4096".to_string(),
            "again-for:100".to_string(),
            "env:GITHUB_TOKEN".to_string(),
            "again".to_string(),
            "repeat:eyJ.:4096".to_string(),
            "again-for:100".to_string(),
            "env:GITHUB_TOKEN".to_string(),
            "again".to_string(),
            "repeat:eyJ.:4096".to_string(),
            "again-for:100".to_string(),
            "env:GITHUB_TOKEN".to_string(),
            "again".to_string(),
            "repeat:eyJ.:4096".to_string(),
            "again-for:2100".to_string(),
        ])
        .spawn()
        .unwrap();
    // Meanwhile another workspace leaks a known-format token it never learned.
    std::thread::sleep(Duration::from_millis(1500));
    let other = github_token(4242);
    let ok = Command::new(&leaker)
        .args([
            format!("set:Authorization: token {other}\n"),
            format!("tcp:{}", sink.addr),
            "sleep:100".into(),
            "again".into(),
            "sleep:100".into(),
            "again".into(),
            "sleep:100".into(),
            "again".into(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(flood.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500));
    // SIGINT stops it promptly right after the flood.
    let stop = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(30),
            "SIGINT did not stop it"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stop_took = stop.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let err = err_rx.try_iter().collect::<Vec<_>>().join("\n");
    let seen: Vec<(SystemTime, serde_json::Value)> = lines
        .try_iter()
        .filter_map(|(t, l)| serde_json::from_str(&l).ok().map(|v| (t, v)))
        .collect();
    let all = seen
        .iter()
        .map(|(_, v)| v.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(status.success(), "{status}\n{err}");
    assert!(
        !all.contains(&learned) && !err.contains(&learned),
        "raw token printed"
    );
    assert!(
        !all.contains(&other) && !err.contains(&other),
        "raw token printed"
    );
    let found = |ws: &str, validation: &str| {
        seen.iter()
            .find(|(_, v)| {
                v["type"] == "finding"
                    && v["verdict"] == "exfiltration"
                    && root_exe_is(v, ws)
                    && v["finding"]["validation"] == validation
            })
            .map(|(t, v)| (latency(v, *t), v.clone()))
            .unwrap_or_else(|| panic!("no {validation} finding from {ws}:\n{all}\n{err}"))
    };
    let (other_latency, _) = found("agent-leaker", "valid");
    let (learned_latency, _) = found("agent-flooder", "learned");
    let degraded: Vec<&serde_json::Value> = seen
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["verdict"] == "detection_degraded")
        .collect();
    assert!(
        !degraded.is_empty(),
        "no detection_degraded alert:\n{all}\n{err}"
    );
    for d in &degraded {
        assert!(root_exe_is(d, "agent-flooder"), "wrong workspace: {d}");
        assert_eq!(d["severity"], "medium");
        assert!(d["mitre"].to_string().contains("T1562.001"), "{d}");
        assert!(
            d["process"]["exe"]
                .as_str()
                .unwrap_or("")
                .ends_with("agent-flooder"),
            "{d}"
        );
    }
    let firsts: Vec<_> = degraded.iter().filter(|d| d["type"] == "finding").collect();
    assert_eq!(firsts.len(), 1, "one per workspace and window:\n{all}");
    let stats = err
        .lines()
        .rev()
        .find(|l| l.contains("\"type\":\"stats\""))
        .expect("stats line");
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert!(
        v["verdicts"]["degraded_bytes"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    eprintln!(
        "latency: other workspace {other_latency:?}, learned token in the flood {learned_latency:?}; SIGINT stop {stop_took:?}"
    );
    assert!(
        other_latency < Duration::from_secs(1),
        "other workspace: {other_latency:?}"
    );
    assert!(
        learned_latency < Duration::from_secs(1),
        "token in the flood: {learned_latency:?}"
    );
    assert!(
        stop_took < Duration::from_secs(2),
        "SIGINT took {stop_took:?}"
    );
}
