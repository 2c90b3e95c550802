//! Channels around plain write(): kernel-side copies (sendfile, splice, copy_file_range),
//! io_uring, writes from an mmap'ed file, and learning from an exec whose environment is
//! padded. Real processes, real sockets, real probes; run as root, one test at a time.

use std::process::{Command, Stdio};
use std::time::Duration;

use sensor::sensor::WatchArgs;
use sensor::state::events::{Endpoint, EventBody, FdKind, SensorEvent};
use sensor_tests::*;

const T: Duration = Duration::from_secs(15);
/// A checksum-valid synthetic GitHub token (the reference's example).
const GH: &str = "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";

fn writes_with<'a>(evs: &[&'a SensorEvent], data: &[u8]) -> Vec<&'a SensorEvent> {
    evs.iter()
        .copied()
        .filter(|e| matches!(&e.body, EventBody::Write { data: d, .. } if d == data))
        .collect()
}

fn credential_file(tag: &str) -> (std::path::PathBuf, Vec<u8>) {
    let dir = temp_dir(tag);
    let cred = dir.join(".git-credentials");
    let content = format!("https://x-access-token:{GH}@github.com\n").into_bytes();
    std::fs::write(&cred, &content).unwrap();
    (cred, content)
}

#[test]
fn sendfile_and_splice_to_a_socket_carry_the_file_content() {
    for step in ["sendfile", "splice"] {
        let (cred, content) = credential_file(step);
        let sink = TcpSink::start();
        let s = format!("{step}:{}:{}", cred.display(), sink.addr);
        let (pid, h, _) = watch_workload(test_config(), &["wait", &s]);
        assert_eq!(&sink.received.lock().unwrap()[..], &content[..]);
        let evs = h.of_pid(pid);
        let w = writes_with(&evs, &content);
        let to_socket = w.iter().find(|e| {
            matches!(&e.body, EventBody::Write { fd_kind: FdKind::Socket, endpoint: Some(Endpoint::Inet { addr, .. }), syscall, .. }
                if *addr == sink.addr && *syscall == step)
        });
        assert!(
            to_socket.is_some(),
            "{step}: no socket write carrying the file: {:?}",
            evs.iter().map(|e| (e.kind(), &e.body)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn copy_file_range_carries_the_file_content() {
    let (cred, content) = credential_file("cfr");
    let dst = cred.parent().unwrap().join("copy.log");
    let s = format!("copy-file-range:{}:{}", cred.display(), dst.display());
    let (pid, h, _) = watch_workload(test_config(), &["wait", &s]);
    let evs = h.of_pid(pid);
    let w = writes_with(&evs, &content);
    assert!(
        w.iter().any(|e| matches!(&e.body, EventBody::Write { syscall, endpoint: Some(Endpoint::Path { path }), .. }
            if *syscall == "copy_file_range" && path == dst.to_str().unwrap())),
        "no copy_file_range write carrying the file: {:?}",
        evs.iter().map(|e| (e.kind(), &e.body)).collect::<Vec<_>>()
    );
}

#[test]
fn a_write_from_an_mmaped_file_is_captured() {
    let (cred, content) = credential_file("mmap");
    let sink = TcpSink::start();
    let s = format!("mmap-write:{}:{}", cred.display(), sink.addr);
    let (pid, h, _) = watch_workload(test_config(), &["wait", &s]);
    assert_eq!(&sink.received.lock().unwrap()[..], &content[..]);
    let evs = h.of_pid(pid);
    let w = writes_with(&evs, &content);
    assert!(
        !w.is_empty(),
        "the mmap'ed bytes were not captured: {:?}",
        evs.iter().map(|e| (e.kind(), &e.body)).collect::<Vec<_>>()
    );
}

#[test]
fn io_uring_use_by_a_watched_process_is_reported() {
    let sink = TcpSink::start();
    let s = format!("uring-write:{}", sink.addr);
    let (pid, h, _) = watch_workload(test_config(), &["wait", "set:through-the-ring-0042", &s]);
    assert_eq!(&sink.received.lock().unwrap()[..], b"through-the-ring-0042");
    let seen: Vec<String> = h
        .of_pid(pid)
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::UnmonitoredChannel { channel, detail } => {
                assert_eq!(*channel, "io_uring");
                Some(detail.clone())
            }
            _ => None,
        })
        .collect();
    assert!(seen.iter().any(|d| d == "setup"), "{seen:?}");
    assert!(
        seen.iter().any(|d| d == "write"),
        "request opcode: {seen:?}"
    );
}

/// An exec whose environment holds `pad` variables before the secret.
/// (`Command` sorts its environment: the padding names sort before the token's.)
fn padded_env(cmd: &mut Command, pad: usize, token: &str) {
    cmd.env_clear();
    for i in 0..pad {
        cmd.env(
            format!("A_PAD_{i:04}"),
            format!("padding-value-{i:04}-xxxxxxxxxxxxxxxx"),
        );
    }
    cmd.env("CODER_AGENT_TOKEN", token);
}

#[test]
fn exec_environment_is_read_whole_and_long_paths_match() {
    // A watched name at the end of a path longer than 255 bytes.
    let mut dir = temp_dir("longpath");
    for i in 0..5 {
        dir = dir.join(format!("{i}-{}", "d".repeat(60)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("agent-padded");
    assert!(exe.to_str().unwrap().len() > 300);
    std::fs::copy(workload_bin(), &exe).unwrap();
    let token = "6b1c2d3e-4f50-4a61-8b72-9c83d4e5f607";
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            exes: vec!["agent-padded".into()],
            ..Default::default()
        },
    );
    let mut cmd = Command::new(&exe);
    cmd.arg("set:x").stdout(Stdio::null());
    padded_env(&mut cmd, 2000, token);
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    wait_ok(&mut child);
    assert!(h.collect_until(T, |e| has_exit(e, pid)));
    h.stop();
    let exec = h.of_pid(pid).into_iter().find_map(|e| match &e.body {
        EventBody::Exec {
            env,
            env_truncated,
            exe_match,
            filename,
            ..
        } => Some((env.clone(), *env_truncated, *exe_match, filename.clone())),
        _ => None,
    });
    let (env, truncated, exe_match, filename) = exec.expect("exec event of the long path");
    assert!(exe_match, "long path not matched by name");
    assert_eq!(filename, exe.to_str().unwrap());
    assert!(!truncated);
    assert_eq!(env.len(), 2001, "every variable read");
    assert_eq!(
        env.last(),
        Some(&("CODER_AGENT_TOKEN".to_string(), token.to_string()))
    );
}

/// Through the CLI: a token placed after 2000 variables is learned at exec and found when
/// the agent sends it; a credential file sent with sendfile() is found too; the printed
/// events never carry either value.
#[test]
fn a_token_after_2000_variables_is_learned_and_found() {
    let (cred, _) = credential_file("padded-cli-cred");
    let dir = temp_dir("padded-cli");
    let exe = dir.join("agent-padded-cli");
    std::fs::copy(workload_bin(), &exe).unwrap();
    let token = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let sink = TcpSink::start();
    let mut sensor = Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--print-events",
            "--watch-exe",
            "agent-padded-cli",
            // Its own outbox: another sensor on the host may hold the default state_dir.
            "--state-dir",
        ])
        .arg(dir.join("state"))
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
    let mut cmd = Command::new(&exe);
    cmd.args([
        format!("set:Coder-Session-Token: {token}\n"),
        format!("tcp:{}", sink.addr),
        format!("sendfile:{}:{}", cred.display(), sink.addr),
    ])
    .stdout(Stdio::null());
    padded_env(&mut cmd, 2000, token);
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    wait_ok(&mut child);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, err) = stop_cli(running);
    let out = reader.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(
        !out.contains(token) && !err.contains(token),
        "raw token printed"
    );
    assert!(
        !out.contains(&GH[4..]) && !err.contains(&GH[4..]),
        "raw GitHub token printed"
    );
    let findings: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "finding" && v["process"]["pid"] == pid)
        .collect();
    assert!(
        findings
            .iter()
            .any(|v| v["finding"]["validation"] == "learned" && v["finding"]["length"] == 36),
        "no learned finding for the padded token:\n{out}"
    );
    assert!(
        findings.iter().any(
            |v| v["finding"]["detector"] == "github-personal-access-token"
                && v["sink"]["syscall"] == "sendfile"
        ),
        "no finding for the file sent with sendfile:\n{out}"
    );
}

/// Through the CLI: the same credential file moved by sendfile and splice to two foreign
/// hosts and by copy_file_range into a log file is a finding for each syscall; an io_uring
/// write is an `unmonitored_channel` alert; nothing printed carries the token.
#[test]
fn kernel_side_copies_and_io_uring_are_alerted() {
    let (cred, _) = credential_file("copies-cli");
    let dir = temp_dir("copies-cli-agent");
    let agent = workload_as(&dir, "agent-copies");
    let log = dir.join("copied.log");
    let (a, b, c) = (TcpSink::start(), TcpSink::start(), TcpSink::start());
    let sensor = CliSensor::start(&["--only-flag-scopes", "--watch-exe", "agent-copies"]);
    let steps = [
        format!("sendfile:{}:{}", cred.display(), a.addr),
        format!("splice:{}:{}", cred.display(), b.addr),
        format!("copy-file-range:{}:{}", cred.display(), log.display()),
        "set:through-the-ring".to_string(),
        format!("uring-write:{}", c.addr),
    ];
    let mut child = Command::new(&agent)
        .args(&steps)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_ok(&mut child);
    std::thread::sleep(Duration::from_millis(1000));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&GH[4..]]);
    let findings: Vec<serde_json::Value> = out
        .records("finding")
        .into_iter()
        .filter(|v| v["process"]["pid"] == pid)
        .collect();
    for (syscall, verdict) in [
        ("sendfile", "exfiltration"),
        ("splice", "exfiltration"),
        ("copy_file_range", "log_exposure"),
    ] {
        assert!(
            findings.iter().any(|v| v["sink"]["syscall"] == syscall
                && v["verdict"] == verdict
                && v["finding"]["provider"] == "github"),
            "no {verdict} finding through {syscall}:\n{}",
            out.dump()
        );
    }
    let channel: Vec<_> = findings
        .iter()
        .filter(|v| v["verdict"] == "unmonitored_channel")
        .collect();
    assert_eq!(channel.len(), 1, "one io_uring alert:\n{}", out.dump());
    assert_eq!(channel[0]["sink"]["syscall"], "io_uring");
    assert_eq!(channel[0]["workspace"]["root_pid"], pid);
}

#[test]
fn tee_and_vmsplice_through_pipes_carry_their_bytes() {
    for (step, through) in [("tee", "tee"), ("vmsplice", "vmsplice")] {
        let sink = TcpSink::start();
        let payload = format!("pipe-carried-{step}-0042");
        let s = format!("{step}:{}", sink.addr);
        let set = format!("set:{payload}");
        let (pid, h, _) = watch_workload(test_config(), &["wait", &set, &s]);
        assert_eq!(&sink.received.lock().unwrap()[..], payload.as_bytes());
        let evs = h.of_pid(pid);
        let w = writes_with(&evs, payload.as_bytes());
        let into_pipe = w.iter().any(|e| {
            matches!(&e.body, EventBody::Write { fd_kind: FdKind::Pipe, syscall, .. } if *syscall == through)
        });
        let to_socket = w.iter().any(|e| {
            matches!(&e.body, EventBody::Write { fd_kind: FdKind::Socket, endpoint: Some(Endpoint::Inet { addr, .. }), syscall, .. }
                if *addr == sink.addr && *syscall == "splice")
        });
        assert!(
            into_pipe && to_socket,
            "{step}: pipe {into_pipe}, socket {to_socket}: {:?}",
            evs.iter().map(|e| (e.kind(), &e.body)).collect::<Vec<_>>()
        );
    }
}
