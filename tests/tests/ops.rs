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
    // The default configuration hooks the system's TLS libraries (libssl is installed).
    assert!(
        sample(&body, "token_sensor_uprobes_attached").unwrap_or(0.0) >= 1.0,
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

/// `sensor ARGS…` run to completion: (exit code, stdout, stderr).
fn sensor_cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sensor_bin())
        .args(args)
        .output()
        .expect("sensor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_prints_a_valid_config_without_secrets_and_check_names_bad_keys() {
    let dir = temp_dir("config-cli");
    let key = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let cfg = dir.join("in.yaml");
    std::fs::write(
        &cfg,
        format!(
            "fingerprint_key: {key}\nwatch:\n  exes: [agent-cfg]\noutputs:\n  - kind: http\n    url: https://siem.example/ingest\n    format: ecs\n    headers: {{ Authorization: \"Bearer hec-s3cr3t\" }}\n"
        ),
    )
    .unwrap();
    let (code, printed, err) = sensor_cli(&["config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !printed.contains(key) && !printed.contains("hec-s3cr3t"),
        "{printed}"
    );
    assert!(
        printed.contains("fingerprint_key") && printed.contains("Authorization"),
        "{printed}"
    );
    assert!(
        printed.contains("agent-cfg") && printed.contains("siem.example"),
        "{printed}"
    );
    let out = dir.join("printed.yaml");
    std::fs::write(&out, &printed).unwrap();
    let (code, ok, err) = sensor_cli(&["config", "--check", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(ok.contains("ok"), "{ok}");
    // The printed file prints the same configuration again.
    let (_, again, _) = sensor_cli(&["config", "--config", out.to_str().unwrap()]);
    let body = |y: &str| {
        y.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&again), body(&printed));
    // The built-in default prints as a valid file too.
    let (code, builtin, _) = sensor_cli(&["config"]);
    assert_eq!(code, 0);
    std::fs::write(&out, &builtin).unwrap();
    assert_eq!(
        sensor_cli(&["config", "--check", out.to_str().unwrap()]).0,
        0
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "capture_bytes: 8192\ncapture_bites: 1\n").unwrap();
    let (code, _, err) = sensor_cli(&["config", "--check", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(bad.to_str().unwrap())
            && err.contains("capture_bites")
            && err.contains("line 2"),
        "{err}"
    );
    std::fs::write(&bad, "# ok\nring_buffer_bytes: 5000\n").unwrap();
    let (code, _, err) = sensor_cli(&["config", "--check", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ring_buffer_bytes") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn fingerprint_key_file_is_enforced_and_fingerprints_like_the_inline_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("fp-key-file");
    let key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let key_file = dir.join("fingerprint.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let agent = workload_as(&dir, "agent-fpk");
    let cfg_file = dir.join("file.yaml");
    std::fs::write(
        &cfg_file,
        format!(
            "state_dir: {}\nfingerprint_key_file: {}\n",
            dir.join("s1").display(),
            key_file.display()
        ),
    )
    .unwrap();
    let (code, _, err) = sensor_cli(&[
        "run",
        "--only-flag-scopes",
        "--watch-exe",
        "agent-fpk",
        "--config",
        cfg_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("fingerprint_key_file")
            && err.contains(key_file.to_str().unwrap())
            && err.contains("0644"),
        "{err}"
    );
    assert!(!err.contains(key), "{err}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg_inline = dir.join("inline.yaml");
    std::fs::write(
        &cfg_inline,
        format!(
            "state_dir: {}\nfingerprint_key: {key}\n",
            dir.join("s2").display()
        ),
    )
    .unwrap();
    let token = "5e6f7a8b-9cad-4ebf-8012-3c4d5e6f7a81";
    let mut fingerprints = Vec::new();
    for cfg in [&cfg_file, &cfg_inline] {
        let mut d = Daemon::start(cfg, "agent-fpk");
        let sink = TcpSink::start();
        run_workload(
            &agent,
            &[format!("set:token={token}"), format!("tcp:{}", sink.addr)],
            &[("CODER_AGENT_TOKEN", token)],
        );
        assert!(
            wait_for(Duration::from_secs(30), || !d.records("finding").is_empty()),
            "no finding:\n{}\n{}",
            d.stdout(),
            d.stderr()
        );
        let f = d.records("finding")[0].clone();
        fingerprints.push(
            f["finding"]["fingerprint"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        assert!(d.stop().success(), "{}", d.stderr());
        assert!(!d.stdout().contains(token) && !d.stderr().contains(token));
        assert!(!d.stdout().contains(key) && !d.stderr().contains(key));
    }
    assert!(!fingerprints[0].is_empty());
    assert_eq!(fingerprints[0], fingerprints[1]);
}
