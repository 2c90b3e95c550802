//! Operating the daemon: its Prometheus endpoint scraped by a real HTTP client (curl)
//! while a watched agent leaks a token — health and readiness answer, and the counters
//! for records, events and findings move.

use std::process::Command;
use std::time::Duration;

use sensor_tests::*;

fn curl(url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_string(), body.to_string())
}

/// The value of the first sample line starting with `prefix`.
fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_serves_moving_counters_and_health() {
    let dir = temp_dir("metrics");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("metrics_listen: 127.0.0.1:{port}\n")).unwrap();
    let agent = workload_as(&dir, "agent-metrics");
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        cfg.to_str().unwrap(),
        "--watch-exe",
        "agent-metrics",
    ]);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(curl(&format!("{base}/healthz")).0, "200");
    assert_eq!(curl(&format!("{base}/readyz")).0, "200");
    assert_eq!(curl(&format!("{base}/nothing")).0, "404");
    let before = curl(&format!("{base}/metrics")).1;
    assert!(
        before.contains("# TYPE token_sensor_kernel_records counter"),
        "{before}"
    );

    let token = "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f";
    let sink = TcpSink::start();
    let st = Command::new(&agent)
        .args([format!("set:token={token}"), format!("tcp:{}", sink.addr)])
        .env("CODER_AGENT_TOKEN", token)
        .status()
        .unwrap();
    assert!(st.success());
    // The housekeeping mirrors counters every second; the detector counts at once.
    let mut body = String::new();
    let moved = wait_for(Duration::from_secs(15), || {
        body = curl(&format!("{base}/metrics")).1;
        sample(
            &body,
            "token_sensor_findings_total{verdict=\"exfiltration\",provider=\"coder\"",
        )
        .is_some()
            && sample(&body, "token_sensor_kernel_records_total").unwrap_or(0.0) > 0.0
            && sample(&body, "token_sensor_events_total{kind=\"write\"}").unwrap_or(0.0) > 0.0
    });
    assert!(moved, "counters did not move:\n{body}");
    assert!(
        sample(&body, "token_sensor_programs_attached").unwrap_or(0.0) >= 4.0,
        "{body}"
    );
    assert!(
        sample(&body, "token_sensor_detector_cpu_seconds_total").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(!body.contains(token), "a token in the metrics");
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
}
