//! The daemon's outputs under stress, through the real CLI: a closed stdout stops it with
//! exit 1 and a message instead of dropping findings silently; SIGHUP and SIGUSR1 do not
//! stop it; stderr carries no colour codes when it is not a terminal; and `--print-events`
//! never shows a token that the same exec carries in its environment and its arguments.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensor_tests::*;

#[test]
fn a_closed_stdout_stops_the_daemon_with_exit_1_and_a_message() {
    let dir = temp_dir("closed-stdout");
    let agent = workload_as(&dir, "agent-closed");
    // `sensor run --print-events | head -1`: the reader takes one line and goes away.
    let mut child = Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--print-events",
            "--watch-exe",
            "agent-closed",
        ])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let head = std::thread::spawn(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line // the pipe's read end closes here
    });
    let (mut child, rx) = wait_ready(child);
    // Events until the daemon notices its reader has gone (the first write after it).
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon kept running");
        let _ = Command::new(&agent).arg("set:x").status();
        std::thread::sleep(Duration::from_millis(300));
    };
    let first = head.join().unwrap();
    assert!(first.contains("\"type\":\"event\""), "{first}");
    std::thread::sleep(Duration::from_millis(200));
    let err: Vec<String> = rx.try_iter().collect();
    let err = err.join("\n");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("writing to stdout failed") && err.contains("stopping"),
        "{err}"
    );
    assert!(
        err.contains("\"type\":\"stats\""),
        "stats line still printed:\n{err}"
    );
}

#[test]
fn a_closed_stdout_output_stops_the_daemon_and_keeps_its_alerts_queued() {
    let dir = temp_dir("closed-alerts");
    let agent = workload_as(&dir, "agent-closedal");
    let sink = TcpSink::start();
    let state = dir.join("state");
    // `sensor run | head -1` with alerts only: the first alert is read, the next cannot be.
    let mut child = Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--watch-exe",
            "agent-closedal",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let head = std::thread::spawn(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    });
    let (mut child, rx) = wait_ready(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut tokens = Vec::new();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon kept running");
        // A new token each time: each is a new alert (no dedup).
        let token = github_token(900 + tokens.len() as u64);
        let _ = Command::new(&agent)
            .args([
                format!("set:Authorization: token {token}\n"),
                format!("tcp:{}", sink.addr),
            ])
            .status();
        tokens.push(token);
        std::thread::sleep(Duration::from_millis(300));
    };
    let first = head.join().unwrap();
    assert!(first.contains("\"type\":\"finding\""), "{first}");
    std::thread::sleep(Duration::from_millis(200));
    let err = rx.try_iter().collect::<Vec<String>>().join("\n");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("output stdout") && err.contains("stopping") && err.contains("outbox"),
        "{err}"
    );
    assert!(
        err.contains("\"type\":\"stats\""),
        "stats line still printed:\n{err}"
    );
    for t in &tokens {
        assert!(
            !first.contains(t.as_str()) && !err.contains(t.as_str()),
            "raw token printed"
        );
    }
    // What could not be written is still queued for the next run.
    let out = Command::new(sensor_bin())
        .args(["outbox", "--json", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listing} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let pending = l["outputs"][0]["pending"].as_u64().unwrap_or(0);
    assert!(pending >= 1, "{listing}");
    for t in &tokens {
        assert!(!listing.contains(t.as_str()), "raw token in the listing");
    }
}

#[test]
fn sighup_and_sigusr1_do_not_stop_the_daemon_and_stderr_has_no_colour() {
    let dir = temp_dir("signals");
    let agent = workload_as(&dir, "agent-signals");
    let mut child = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes", "--watch-exe", "agent-signals"])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s);
        s
    });
    let (mut child, rx) = wait_ready(child);
    let pid = child.id() as i32;
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGHUP] {
        unsafe { libc::kill(pid, sig) };
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "signal {sig} ended the daemon"
        );
    }
    // Still detecting: a known-format token leaves the watched agent.
    let sink = TcpSink::start();
    let gh = "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";
    let st = Command::new(&agent)
        .args([format!("set:{gh}"), format!("tcp:{}", sink.addr)])
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(1500));
    let (status, err) = stop_cli((child, rx));
    let out = out.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("SIGHUP"), "{err}");
    assert!(
        out.contains("\"type\":\"finding\""),
        "no finding after the signals:\n{out}\n{err}"
    );
    assert!(
        !err.contains('\u{1b}') && !out.contains('\u{1b}'),
        "ANSI codes:\n{err}"
    );
    assert!(!out.contains(&gh[4..]) && !err.contains(&gh[4..]));
}

/// Every `--print-events` line of a run in which watched processes exec with the same
/// secret in their environment (under a secret-looking name) and in their arguments —
/// directly, after many other variables, and through `sh` and `env` — shows the secret
/// nowhere; nor does anything else on stdout or stderr.
#[test]
fn print_events_never_show_a_token_the_same_exec_carries() {
    let dir = temp_dir("print-events");
    let agent = workload_as(&dir, "agent-printev");
    let sink = TcpSink::start();
    let key = "00112233445566778899aabbccddeeff";
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("fingerprint_key: \"{key}\"\n")).unwrap();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--print-events",
        "--config",
        cfg.to_str().unwrap(),
        "--watch-exe",
        "agent-printev",
    ]);
    // Bare UUIDs and a random string: no rule knows their format, only learning does.
    let tokens = [
        "0b6c2a43-7f1e-4d7a-9c55-3e8d2b1f6a90",
        "6f1d9e2c-3b4a-4c5d-8e7f-9a0b1c2d3e4f",
        "Zq8Rt3Wm9Xv2Lp7Kd4Hn6Bf1Jc5Gs0Ye",
        "9d8c7b6a-5f4e-4d3c-ab2a-1f0e9d8c7b6a",
    ];
    // 1. Directly: the token in the environment and in argv.
    let st = Command::new(&agent)
        .args([
            format!("set:Authorization: Bearer {}", tokens[0]),
            format!("tcp:{}", sink.addr),
        ])
        .env("CODER_AGENT_TOKEN", tokens[0])
        .status()
        .unwrap();
    assert!(st.success());
    // 2. After 200 other variables, under another secret-looking name.
    let mut c = Command::new(&agent);
    c.arg(format!("set:--token {}", tokens[1]));
    for i in 0..200 {
        c.env(format!("PAD_VARIABLE_{i:03}"), "padding-value");
    }
    assert!(c.env("GITHUB_TOKEN", tokens[1]).status().unwrap().success());
    // 3. An exec carrying it in argv as NAME=value (as `env` and `docker run -e` are
    //    given), then the program it starts with it in its environment and argv.
    let st = Command::new(&agent)
        .arg(format!(
            "sh:env API_TOKEN={} {} set:{}",
            tokens[2],
            agent.display(),
            tokens[2]
        ))
        .status()
        .unwrap();
    assert!(st.success());
    // 4. Many quick execs of children (forked by a watched parent) with it in both.
    let st = Command::new(&agent)
        .env("T", tokens[3])
        .arg(format!(
            "sh:for i in 1 2 3 4 5 6 7 8; do CODER_AGENT_TOKEN=$T {} \"set:$T\" & done; wait",
            agent.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(1500));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    let execs = out
        .records("event")
        .into_iter()
        .filter(|e| e["event"] == "exec")
        .count();
    assert!(execs >= 12, "{execs} exec events:\n{}", out.dump());
    out.assert_no_leak(&tokens);
    // The values were there to redact: the events say where.
    assert!(out.stdout.contains("REDACTED"), "{}", out.dump());
}

#[test]
fn only_flag_scopes_without_a_scope_warns_that_nothing_is_watched() {
    let mut child = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes"])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Everything it says up to "sensor ready" (the warning comes before it).
    let mut said = Vec::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let Ok(l) = line else { break };
        let ready = l.contains("sensor ready");
        said.push(l);
        if ready {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    said.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let text = said.join("\n");
    assert!(status.success(), "{status:?}\n{text}");
    assert!(
        text.contains("--only-flag-scopes without --watch-cgroup, --watch-exe or --watch-pid: nothing is watched"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
}

#[test]
fn a_closed_stderr_does_not_bring_the_daemon_down() {
    // `sensor run 2>&1 | head -4`: log lines after the reader has gone fail to write;
    // the daemon must go on and stop cleanly on SIGTERM (it used to panic, exit 101).
    let mut child = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes"])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        for l in lines.map_while(Result::ok) {
            if l.contains("sensor ready") {
                break;
            }
        }
    } // stderr's read end closes here
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "ended by a failed log write"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
