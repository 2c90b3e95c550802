//! Live reload through the real daemon: SIGHUP after rewriting the configuration widens
//! or moves the watch scope, adds rules, and a broken file is refused with the old
//! configuration still detecting. Every alert names the host, machine id, sensor version
//! and rule-set version.

use std::path::Path;
use std::time::Duration;

use sensor_tests::*;

/// Leaks `token` (a Coder agent token, learned from the environment) from `agent` to a
/// fresh TCP sink.
fn leak(agent: &Path, token: &str) {
    let sink = TcpSink::start();
    run_workload(
        agent,
        &[format!("set:token={token}"), format!("tcp:{}", sink.addr)],
        &[("CODER_AGENT_TOKEN", token)],
    );
}

/// Findings whose sending process ran `exe`.
fn findings_of(d: &Daemon, exe: &str) -> Vec<serde_json::Value> {
    d.records("finding")
        .into_iter()
        .filter(|f| {
            f.pointer("/process/exe")
                .and_then(|e| e.as_str())
                .is_some_and(|e| e.ends_with(&format!("/{exe}")))
        })
        .collect()
}

fn write_config(path: &Path, state: &Path, rest: &str) {
    std::fs::write(path, format!("state_dir: {}\n{rest}", state.display())).unwrap();
}

fn reloads(d: &Daemon) -> usize {
    d.stderr().matches("configuration reloaded").count()
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn sighup_moves_the_watch_scope_and_alerts_carry_fleet_identity() {
    let dir = temp_dir("reload-scope");
    let a = workload_as(&dir, "agent-ra");
    let b = workload_as(&dir, "agent-rb");
    let cfg = dir.join("cfg.yaml");
    let state = dir.join("state");
    write_config(&cfg, &state, "watch:\n  exes: [agent-ra]\n");
    let mut d = Daemon::start_args(&["run", "--config", cfg.to_str().unwrap()], &[]);
    let tokens = [
        "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e61",
        "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e62",
        "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e63",
        "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e64",
    ];
    // B is not watched yet; A is.
    leak(&b, tokens[0]);
    leak(&a, tokens[1]);
    assert!(
        wait_for(Duration::from_secs(30), || findings_of(&d, "agent-ra")
            .len()
            == 1),
        "A's leak not found:\n{}\n{}",
        d.stdout(),
        d.stderr()
    );
    assert!(findings_of(&d, "agent-rb").is_empty(), "{}", d.stdout());

    // Fleet identity, as every alert carries it.
    let f = &findings_of(&d, "agent-ra")[0];
    let host = &f["host"];
    assert_eq!(
        host["hostname"],
        read_trim("/proc/sys/kernel/hostname"),
        "{f}"
    );
    let mid = read_trim("/etc/machine-id");
    if !mid.is_empty() {
        assert_eq!(host["machine_id"], mid, "{f}");
    }
    assert_eq!(host["sensor_version"], env!("CARGO_PKG_VERSION"), "{f}");
    let rules_version = host["rules_version"].as_str().unwrap_or("").to_string();
    assert!(
        rules_version.starts_with(&format!("{}+", env!("CARGO_PKG_VERSION")))
            && rules_version.len() == env!("CARGO_PKG_VERSION").len() + 13,
        "{f}"
    );

    // Move the scope to B.
    write_config(&cfg, &state, "watch:\n  exes: [agent-rb]\n");
    d.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(30), || reloads(&d) == 1),
        "no reload:\n{}",
        d.stderr()
    );
    leak(&b, tokens[2]);
    assert!(
        wait_for(Duration::from_secs(30), || findings_of(&d, "agent-rb")
            .len()
            == 1),
        "B's leak not found after the reload:\n{}\n{}",
        d.stdout(),
        d.stderr()
    );
    // A's new processes are out of scope now.
    leak(&a, tokens[3]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(findings_of(&d, "agent-ra").len(), 1, "{}", d.stdout());
    let fb = &findings_of(&d, "agent-rb")[0];
    assert_eq!(fb["host"]["rules_version"], rules_version.as_str(), "{fb}");
    assert!(d.running());
    let st = d.stop();
    assert!(st.success(), "{st}\n{}", d.stderr());
    for t in tokens {
        assert!(
            !d.stdout().contains(t) && !d.stderr().contains(t),
            "a raw token in the output"
        );
    }
    assert!(files_containing(&dir, tokens[2].as_bytes()).is_empty());
}

#[test]
fn a_broken_config_is_refused_and_the_old_one_keeps_detecting() {
    let dir = temp_dir("reload-bad");
    let c = workload_as(&dir, "agent-rc");
    let cfg = dir.join("cfg.yaml");
    let state = dir.join("state");
    write_config(
        &cfg,
        &state,
        "log_format: json\nwatch:\n  exes: [agent-rc]\n",
    );
    let mut d = Daemon::start_args(&["run", "--config", cfg.to_str().unwrap()], &[]);
    // JSON logs: every line on stderr so far is one JSON object.
    let first = d.stderr().lines().next().unwrap_or("").to_string();
    let v: serde_json::Value = serde_json::from_str(&first)
        .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {first}"));
    assert!(
        v["level"].is_string() && v["fields"]["message"].is_string(),
        "{v}"
    );

    std::fs::write(
        &cfg,
        format!(
            "state_dir: {}\nlog_format: json\nwatch:\n  exes: [agent-rc\ncapture_bytes: 8192\n",
            state.display()
        ),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let rejected = |d: &Daemon| {
        d.stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("reload rejected"))
            })
    };
    assert!(
        wait_for(Duration::from_secs(30), || rejected(&d).is_some()),
        "no rejection:\n{}",
        d.stderr()
    );
    let e = rejected(&d).unwrap();
    let msg = e["fields"]["message"].as_str().unwrap();
    assert_eq!(e["level"], "ERROR", "{e}");
    assert!(
        msg.contains(cfg.to_str().unwrap()) && msg.contains("line"),
        "{msg}"
    );
    assert!(d.running(), "the daemon died:\n{}", d.stderr());
    let token = "4d5e6f7a-8b9c-4dae-8f01-2b3c4d5e6f70";
    leak(&c, token);
    assert!(
        wait_for(Duration::from_secs(30), || findings_of(&d, "agent-rc")
            .len()
            == 1),
        "the old configuration stopped detecting:\n{}\n{}",
        d.stdout(),
        d.stderr()
    );
    assert_eq!(reloads(&d), 0);
    let st = d.stop();
    assert!(st.success(), "{st}\n{}", d.stderr());
    assert!(!d.stdout().contains(token) && !d.stderr().contains(token));
}

/// A custom rule: `acme_` and 32 lowercase hex digits.
const ACME_RULES: &str = r#"version: 1
rules:
- id: acme-deploy-key
  name: ACME deploy key
  provider: acme
  kind: deploy_key
  keywords: [acme_]
  pattern: \bacme_[0-9a-f]{32}\b
  severity: high
  examples: [acme_0123456789abcdef0123456789abcdef]
"#;

#[test]
fn a_rule_file_added_by_reload_finds_its_token() {
    let dir = temp_dir("reload-rules");
    let agent = workload_as(&dir, "agent-rr");
    let cfg = dir.join("cfg.yaml");
    let state = dir.join("state");
    write_config(&cfg, &state, "watch:\n  exes: [agent-rr]\n");
    let mut d = Daemon::start_args(&["run", "--config", cfg.to_str().unwrap()], &[]);
    let before_version = |d: &Daemon| {
        d.stderr()
            .lines()
            .find(|l| l.contains("detection engine ready"))
            .and_then(|l| l.split("rules_version=").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .map(String::from)
    };
    let v0 = before_version(&d).expect("rules_version logged at start");
    let rules = dir.join("acme.yaml");
    std::fs::write(&rules, ACME_RULES).unwrap();
    write_config(
        &cfg,
        &state,
        &format!(
            "watch:\n  exes: [agent-rr]\nrule_files: [{}]\n",
            rules.display()
        ),
    );
    d.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(60), || reloads(&d) == 1),
        "no reload:\n{}",
        d.stderr()
    );
    let key = "acme_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    let sink = TcpSink::start();
    run_workload(
        &agent,
        &[format!("set:key={key}"), format!("tcp:{}", sink.addr)],
        &[],
    );
    let found = |d: &Daemon| {
        d.records("finding").into_iter().find(|f| {
            f.pointer("/finding/detector").and_then(|x| x.as_str()) == Some("acme-deploy-key")
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), || found(&d).is_some()),
        "the new rule found nothing:\n{}\n{}",
        d.stdout(),
        d.stderr()
    );
    let f = found(&d).unwrap();
    let v1 = f["host"]["rules_version"].as_str().unwrap_or("");
    assert!(!v1.is_empty() && v1 != v0, "rules_version {v0} -> {v1}");
    let st = d.stop();
    assert!(st.success(), "{st}\n{}", d.stderr());
    assert!(!d.stdout().contains(key) && !d.stderr().contains(key));
}
