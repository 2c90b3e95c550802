//! Environment access as chain evidence, end to end through the real CLI: the `getenv`
//! uprobe on the system libc sees a watched process ask for `GITHUB_TOKEN` (Rust's
//! `std::env::var` calls libc `getenv`), and the exfiltration alert for that token names
//! the process in `chain.env_reads`; a watched process that got the token another way has
//! no such evidence; an unwatched process calling `getenv` produces nothing. Names only:
//! raw tokens never appear in the sensor's output.

use std::process::Command;
use std::time::Duration;

use sensor_tests::*;

const KEY: &str = "00112233445566778899aabbccddeeff";

fn fp(secret: &str) -> String {
    sensor::redact::Fingerprinter::from_hex(KEY)
        .unwrap()
        .fingerprint(secret.as_bytes())
}

/// Runs `exe` with `steps` and `GITHUB_TOKEN=token`; returns its pid.
fn run(exe: &std::path::Path, token: &str, steps: &[String]) -> u32 {
    let mut child = Command::new(exe)
        .args(steps)
        .env("GITHUB_TOKEN", token)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{} failed", exe.display());
    pid
}

/// The one finding for `token`.
fn finding_of(out: &CliOutput, token: &str) -> serde_json::Value {
    let f = fp(token);
    let mine: Vec<serde_json::Value> = out
        .records("finding")
        .into_iter()
        .filter(|a| a["finding"]["fingerprint"] == f.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "one alert for the token:\n{}", out.dump());
    mine[0].clone()
}

/// `(pid, exe, var)` of an alert's `chain.env_reads`.
fn env_reads(a: &serde_json::Value) -> Vec<(u64, String, String)> {
    a["chain"]["env_reads"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|r| {
                    (
                        r["pid"].as_u64().unwrap(),
                        r["exe"].as_str().unwrap().to_string(),
                        r["var"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_watched_process_that_read_the_token_with_getenv_is_named_in_the_chain() {
    let dir = temp_dir("getenv");
    let reader = workload_as(&dir, "agent-getenv");
    let other = workload_as(&dir, "agent-nogetenv");
    let plain = workload_as(&dir, "plain-getenv");
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("fingerprint_key: \"{KEY}\"\n")).unwrap();
    let sink = TcpSink::start();
    let (t_read, t_file, t_plain) = (github_token(701), github_token(702), github_token(703));
    let token_file = dir.join("token.txt");
    std::fs::write(&token_file, format!("Authorization: {t_file}\n")).unwrap();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        cfg.to_str().unwrap(),
        "--watch-exe",
        "agent-getenv",
        "--watch-exe",
        "agent-nogetenv",
        "--print-events",
    ]);
    let addr = sink.addr.to_string();
    // Reads its token with getenv, then sends it.
    let p_read = run(
        &reader,
        &t_read,
        &["env:GITHUB_TOKEN".into(), format!("tcp:{addr}")],
    );
    // Holds the same kind of token in its environment but takes it from a file.
    let p_file = run(
        &other,
        &t_file,
        &[
            format!("read:{}", token_file.display()),
            format!("tcp:{addr}"),
        ],
    );
    // Not watched: its getenv calls trap (global attach) and stop at the scope check.
    let p_plain = run(
        &plain,
        &t_plain,
        &["env:GITHUB_TOKEN".into(), format!("tcp:{addr}")],
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            let got = sink.received.lock().unwrap();
            [&t_read, &t_file, &t_plain]
                .iter()
                .all(|t| got.windows(t.len()).any(|w| w == t.as_bytes()))
        }),
        "the sink got all three tokens"
    );
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&t_read, &t_file, &t_plain]);

    // The kernel reported the watched reader's getenv, once per name.
    let events = out.records("event");
    let env_events = |pid: u32| -> Vec<&serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "env_read" && e["process"]["pid"] == pid)
            .collect()
    };
    let mine = env_events(p_read);
    let gh: Vec<_> = mine.iter().filter(|e| e["var"] == "GITHUB_TOKEN").collect();
    assert_eq!(gh.len(), 1, "one env_read of GITHUB_TOKEN:\n{}", out.dump());
    assert_eq!(gh[0]["func"], "getenv");
    assert!(
        env_events(p_file)
            .iter()
            .all(|e| e["var"] != "GITHUB_TOKEN"),
        "{}",
        out.dump()
    );
    assert!(
        env_events(p_plain).is_empty(),
        "an unwatched process's getenv was reported:\n{}",
        out.dump()
    );
    assert!(
        events.iter().all(|e| e["process"]["pid"] != p_plain),
        "events of the unwatched process:\n{}",
        out.dump()
    );

    // The alert of the token read with getenv names the reader and the variable.
    let a = finding_of(&out, &t_read);
    assert_eq!(a["verdict"], "exfiltration");
    assert_eq!(a["process"]["pid"], p_read);
    assert_eq!(a["chain"]["source"]["var"], "GITHUB_TOKEN");
    let reads = env_reads(&a);
    assert_eq!(reads.len(), 1, "{a}");
    assert_eq!(reads[0].0, p_read as u64);
    assert!(reads[0].1.ends_with("/agent-getenv"), "{reads:?}");
    assert_eq!(reads[0].2, "GITHUB_TOKEN");
    // The control: the same verdict, no getenv evidence.
    let a = finding_of(&out, &t_file);
    assert_eq!(a["verdict"], "exfiltration");
    assert_eq!(a["process"]["pid"], p_file);
    assert!(
        a["chain"].get("env_reads").is_none(),
        "no getenv evidence expected: {a}"
    );
    // Nothing about the unwatched process.
    let f = fp(&t_plain);
    assert!(
        out.records("finding")
            .iter()
            .all(|a| a["finding"]["fingerprint"] != f.as_str()),
        "{}",
        out.dump()
    );
}

#[test]
fn an_ancestor_that_read_the_variable_is_named_when_its_child_sends_it() {
    let dir = temp_dir("getenv-tree");
    let agent = workload_as(&dir, "agent-envtree");
    let relay = workload_as(&dir, "relay-envtree");
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("fingerprint_key: \"{KEY}\"\n")).unwrap();
    let sink = TcpSink::start();
    let token = github_token(704);
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        cfg.to_str().unwrap(),
        "--watch-exe",
        "agent-envtree",
    ]);
    // The agent reads the variable, then a shell pipeline it starts sends the value.
    let pid = run(
        &agent,
        &token,
        &[
            "env:GITHUB_TOKEN".into(),
            format!(
                "sh:printf 'token %s\\n' \"$GITHUB_TOKEN\" | {} stdin-tcp:{}",
                relay.display(),
                sink.addr
            ),
        ],
    );
    assert!(
        wait_for(Duration::from_secs(10), || {
            let got = sink.received.lock().unwrap();
            got.windows(token.len()).any(|w| w == token.as_bytes())
        }),
        "the sink got the token"
    );
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&token]);
    let a = finding_of(&out, &token);
    assert_eq!(a["verdict"], "exfiltration");
    assert!(
        a["process"]["exe"]
            .as_str()
            .unwrap()
            .ends_with("relay-envtree"),
        "{a}"
    );
    let reads = env_reads(&a);
    assert!(
        reads.iter().any(|(p, exe, var)| *p == pid as u64
            && exe.ends_with("/agent-envtree")
            && var == "GITHUB_TOKEN"),
        "the agent's getenv of GITHUB_TOKEN is in the chain: {a}"
    );
    assert!(
        reads.iter().all(|(_, _, var)| var == "GITHUB_TOKEN"),
        "{reads:?}"
    );
}
