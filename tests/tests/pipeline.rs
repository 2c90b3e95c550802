//! Kernel-to-userspace pipeline, end to end, on the real kernel: real probes, real child
//! processes, real loopback sockets. Run as root, one test at a time (they share the
//! kernel's tracepoints): `cargo test -p sensor-tests -- --test-threads=1`.

use std::process::Command;
use std::time::Duration;

use sensor::sensor::WatchArgs;
use sensor::state::events::{Endpoint, EventBody, FdKind, SensorEvent};
use sensor_tests::*;

const T: Duration = Duration::from_secs(10);

/// A write as the tests look at it: fd, kind, endpoint, bytes, truncated, total length.
type Write = (i32, FdKind, Option<Endpoint>, Vec<u8>, bool, u64);

fn writes(evs: &[&SensorEvent]) -> Vec<Write> {
    evs.iter()
        .filter_map(|e| match &e.body {
            EventBody::Write {
                fd,
                fd_kind,
                endpoint,
                data,
                truncated,
                total,
                ..
            } => Some((
                *fd,
                *fd_kind,
                endpoint.clone(),
                data.clone(),
                *truncated,
                *total,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn watched_child_file_to_socket_and_pipe_is_reported_exactly() {
    let dir = temp_dir("flow");
    // A credential-file basename, so its reads are captured too.
    let cred = dir.join(".git-credentials");
    let content = b"https://ci-bot:synthetic-secret-0042@git.example.test\n";
    std::fs::write(&cred, content).unwrap();
    let sink = TcpSink::start();

    let read_step = format!("read:{}", cred.display());
    let tcp_step = format!("tcp:{}", sink.addr);
    let (pid, h, _) = watch_workload(test_config(), &["wait", &read_step, &tcp_step, "pipe"]);

    let evs = h.of_pid(pid);
    // The file: opened (path, marked for capture) and its bytes read.
    let open = evs.iter().find_map(|e| match &e.body {
        EventBody::Open {
            path, captured, fd, ..
        } if path == cred.to_str().unwrap() => Some((*captured, *fd)),
        _ => None,
    });
    let (captured, _fd) = open.expect("open of the credential file reported");
    assert!(
        captured,
        "credential file should be marked for read capture"
    );
    let read = evs.iter().find_map(|e| match &e.body {
        EventBody::Read {
            path: Some(p),
            data,
            ..
        } if p == cred.to_str().unwrap() => Some(data.clone()),
        _ => None,
    });
    assert_eq!(
        read.as_deref(),
        Some(&content[..]),
        "read bytes of the credential file"
    );

    // The socket write: exact bytes, kind, destination.
    let w = writes(&evs);
    let sock = w
        .iter()
        .find(|(_, k, _, d, _, _)| *k == FdKind::Socket && d == content)
        .expect("socket write with the file content");
    match &sock.2 {
        Some(Endpoint::Inet { proto, addr }) => {
            assert_eq!(*addr, sink.addr);
            assert_eq!(proto, "tcp");
        }
        other => panic!("socket endpoint {other:?}"),
    }
    // The pipe write.
    assert!(
        w.iter()
            .any(|(_, k, _, d, _, _)| *k == FdKind::Pipe && d == content),
        "pipe write with the file content: {w:?}"
    );
    assert_eq!(&sink.received.lock().unwrap()[..], content);

    // Process attribution: pid and a parent chain that starts at this test process.
    let e = evs
        .iter()
        .find(|e| matches!(e.body, EventBody::Write { .. }))
        .unwrap();
    assert_eq!(e.process.pid, pid);
    assert_eq!(e.process.ppid, std::process::id());
    assert_eq!(
        e.process.ancestry.first().map(|a| a.pid),
        Some(std::process::id())
    );
    assert!(
        e.process.exe.ends_with("sensor-workload"),
        "{}",
        e.process.exe
    );
}

#[test]
fn unwatched_child_produces_no_payload_events() {
    let dir = temp_dir("unwatched");
    let cred = dir.join(".git-credentials");
    std::fs::write(&cred, b"synthetic-secret-unwatched\n").unwrap();
    let sink = TcpSink::start();
    // Watch an unrelated idle process so the probes are attached and active.
    let mut idle = spawn_workload(&["wait"]);
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            pids: vec![idle.id()],
            ..Default::default()
        },
    );
    let read_step = format!("read:{}", cred.display());
    let tcp_step = format!("tcp:{}", sink.addr);
    let mut child = spawn_workload(&[&read_step, &tcp_step, "pipe"]);
    let pid = child.id();
    wait_ok(&mut child);
    h.collect_for(Duration::from_millis(800));
    release(&mut idle);
    wait_ok(&mut idle);
    h.stop();
    assert_eq!(
        &sink.received.lock().unwrap()[..],
        b"synthetic-secret-unwatched\n"
    );
    assert!(
        h.of_pid(pid).is_empty(),
        "unwatched process produced events: {:?}",
        h.of_pid(pid).iter().map(|e| e.kind()).collect::<Vec<_>>()
    );
}

#[test]
fn large_write_arrives_complete_in_order_up_to_limit() {
    let sink = TcpSink::start();
    let mut cfg = test_config();
    cfg.capture_bytes = 16384;
    let tcp_step = format!("tcp:{}", sink.addr);
    let (pid, h, stats) = watch_workload(cfg, &["set:x", "wait", &tcp_step, "big:20000"]);
    let w = writes(&h.of_pid(pid));
    let big = w
        .iter()
        .find(|(.., total)| *total == 20000)
        .expect("the 20000-byte write");
    let expected: Vec<u8> = (0..16384).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(big.3.len(), 16384, "captured up to the limit");
    assert!(big.3 == expected, "bytes complete and in order");
    assert!(big.4, "marked truncated beyond the limit");
    assert_eq!(stats.incomplete_calls, 0);
    // 16 KiB in 4 KiB records: several records made one event.
    assert!(stats.records >= 4);
}

#[test]
fn dup2_socket_onto_stdout_is_attributed_to_the_socket() {
    let sink = TcpSink::start();
    let step = format!("dup2:{}", sink.addr);
    let (pid, h, _) = watch_workload(test_config(), &["wait", "set:via-stdout-0042", &step]);
    let w = writes(&h.of_pid(pid));
    let on1 = w.iter().find(|(fd, ..)| *fd == 1).expect("write to fd 1");
    assert_eq!(on1.1, FdKind::Socket);
    assert_eq!(on1.3, b"via-stdout-0042");
    assert!(
        matches!(&on1.2, Some(Endpoint::Inet { addr, .. }) if *addr == sink.addr),
        "{:?}",
        on1.2
    );
}

#[test]
fn forked_descendants_writev_and_udp_are_followed() {
    let sink = TcpSink::start();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let writev = format!("writev:{}", sink.addr);
    let udp_step = format!("udp:{}", udp.local_addr().unwrap());
    let mut child = spawn_workload(&["wait", "fork", "set:abcdefghijkl", &writev, &udp_step]);
    let pid = child.id();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            pids: vec![pid],
            ..Default::default()
        },
    );
    release(&mut child);
    wait_ok(&mut child);
    let grandchild = |evs: &[SensorEvent]| {
        evs.iter().find_map(|e| match e.body {
            EventBody::Fork { child } if e.process.pid == pid => Some(child),
            _ => None,
        })
    };
    assert!(h.collect_until(T, |e| grandchild(e).is_some_and(|g| has_exit(e, g))));
    h.stop();
    let g = grandchild(&h.events).unwrap();
    let w = writes(&h.of_pid(g));
    assert!(
        w.iter()
            .any(|(_, k, _, d, ..)| *k == FdKind::Socket && d == b"abcdefghijkl"),
        "writev gathered: {w:?}"
    );
    let dgram = w.iter().find(|(_, k, ep, ..)| {
        *k == FdKind::Socket && matches!(ep, Some(Endpoint::Inet { proto, .. }) if proto == "udp")
    });
    let dgram = dgram.expect("udp datagram");
    assert!(
        matches!(&dgram.2, Some(Endpoint::Inet { addr, .. }) if *addr == udp.local_addr().unwrap())
    );
    let e = h
        .of_pid(g)
        .into_iter()
        .find(|e| matches!(e.body, EventBody::Write { .. }))
        .unwrap();
    assert_eq!(e.process.ppid, pid);
    let chain: Vec<u32> = e.process.ancestry.iter().map(|a| a.pid).collect();
    assert_eq!(&chain[..2], &[pid, std::process::id()], "parent chain");
}

#[test]
fn ipv6_and_unix_socket_destinations_are_reported() {
    let v6 = TcpSink::start_on("[::1]:0");
    let dir = temp_dir("unix");
    let path = dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let Ok(mut c) = c else { break };
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut c, &mut sink);
        }
    });
    let (tcp, unix) = (
        format!("tcp:{}", v6.addr),
        format!("unix:{}", path.display()),
    );
    let (pid, h, _) = watch_workload(
        test_config(),
        &["wait", "set:over-v6-and-unix", &tcp, &unix],
    );
    let w = writes(&h.of_pid(pid));
    assert!(w.iter().any(|(_, k, ep, d, ..)| *k == FdKind::Socket && d == b"over-v6-and-unix" && matches!(ep, Some(Endpoint::Inet { addr, proto }) if *addr == v6.addr && proto == "tcp")), "v6: {w:?}");
    assert!(
        w.iter().any(|(_, k, ep, d, ..)| *k == FdKind::Socket
            && d == b"over-v6-and-unix"
            && matches!(ep, Some(Endpoint::Unix { path: p }) if p == path.to_str().unwrap())),
        "unix: {w:?}"
    );
}

#[test]
fn watch_exe_and_env_at_exec() {
    // A copy of the workload under a unique name is watched by name from its exec on.
    let dir = temp_dir("exe");
    let exe = dir.join("agent-under-test");
    std::fs::copy(workload_bin(), &exe).unwrap();
    let sink = TcpSink::start();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            exes: vec!["agent-under-test".into()],
            ..Default::default()
        },
    );
    let payload = dir.join("payload");
    std::fs::write(&payload, b"exe-scoped-payload").unwrap();
    let mut child = Command::new(&exe)
        .args([
            format!("read:{}", payload.display()),
            format!("tcp:{}", sink.addr),
        ])
        .env("CODER_AGENT_TOKEN", "00000000-0000-4000-8000-000000000000")
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_ok(&mut child);
    assert!(h.collect_until(T, |e| has_exit(e, pid)));
    h.stop();
    let evs = h.of_pid(pid);
    let exec = evs.iter().find_map(|e| match &e.body {
        EventBody::Exec {
            env,
            exe_match,
            argv,
            ..
        } => Some((env.clone(), *exe_match, argv.clone())),
        _ => None,
    });
    let (env, exe_match, argv) = exec.expect("exec event");
    assert!(exe_match);
    assert_eq!(argv[1], format!("read:{}", payload.display()));
    assert!(env
        .iter()
        .any(|(k, v)| k == "CODER_AGENT_TOKEN" && v == "00000000-0000-4000-8000-000000000000"));
    assert!(writes(&evs)
        .iter()
        .any(|(_, k, _, d, ..)| *k == FdKind::Socket && d == b"exe-scoped-payload"));
    // The JSON form names env vars but never carries their values or payload bytes.
    let fp = sensor::redact::Fingerprinter::random();
    for e in &evs {
        let j = e.to_json(&fp).to_string();
        assert!(
            !j.contains("00000000-0000-4000-8000-000000000000"),
            "env value leaked: {j}"
        );
        assert!(!j.contains("exe-scoped-payload"), "payload leaked: {j}");
    }
}

#[test]
fn watch_cgroup_v2_scopes_its_members() {
    let Some(root) = sensor::host::cgroupfs::cgroup2_mount() else {
        eprintln!("no cgroup v2 hierarchy here; skipping");
        return;
    };
    let cg = root.join(format!("sensor-test-{}", std::process::id()));
    let _ = std::fs::create_dir(&cg);
    let sink = TcpSink::start();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            cgroups: vec![cg.clone()],
            ..Default::default()
        },
    );
    // The child moves itself into the cgroup before exec.
    let procs = cg.join("cgroup.procs");
    let mut cmd = Command::new(workload_bin());
    cmd.args(["set:in-cgroup-payload", &format!("tcp:{}", sink.addr)]);
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, b"0"));
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    wait_ok(&mut child);
    assert!(h.collect_until(T, |e| has_exit(e, pid)));
    h.stop();
    let _ = std::fs::remove_dir(&cg);
    let evs = h.of_pid(pid);
    assert!(
        writes(&evs)
            .iter()
            .any(|(_, _, _, d, ..)| d == b"in-cgroup-payload"),
        "no payload from the cgroup member"
    );
    let name = format!("sensor-test-{}", std::process::id());
    let bad: Vec<_> = evs
        .iter()
        .filter(|e| !e.process.cgroup.ends_with(&name))
        .map(|e| (e.kind(), e.process.cgroup.clone()))
        .collect();
    assert!(bad.is_empty(), "cgroup attribution: {bad:?}");
}

#[test]
fn watch_cgroup_v1_scopes_its_members() {
    // Hybrid hosts keep v1 controllers; a v1 cgroup is watched through its member list.
    let Some(v1) = [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/cpu",
    ]
    .iter()
    .map(std::path::Path::new)
    .find(|p| {
        p.join("cgroup.procs").is_file()
            && sensor::host::cgroupfs::cgroup2_mount().is_none_or(|m| m != *p)
    }) else {
        eprintln!("no cgroup v1 hierarchy here; skipping");
        return;
    };
    let cg = v1.join(format!("sensor-test-v1-{}", std::process::id()));
    let _ = std::fs::create_dir(&cg);
    let sink = TcpSink::start();
    let procs = cg.join("cgroup.procs");
    let mut cmd = Command::new(workload_bin());
    cmd.args(["wait", "set:in-v1-cgroup", &format!("tcp:{}", sink.addr)])
        .stdin(std::process::Stdio::piped());
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(move || std::fs::write(&procs, b"0"));
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            cgroups: vec![cg.clone()],
            ..Default::default()
        },
    );
    release(&mut child);
    wait_ok(&mut child);
    assert!(h.collect_until(T, |e| has_exit(e, pid)));
    h.stop();
    let _ = std::fs::remove_dir(&cg);
    assert!(
        writes(&h.of_pid(pid))
            .iter()
            .any(|(_, _, _, d, ..)| d == b"in-v1-cgroup"),
        "no payload from the v1 cgroup member"
    );
}

#[test]
fn ring_buffer_overflow_is_counted_and_reported() {
    // A tiny ring and a reader that drains on a slow timer: a flood must overflow it, and
    // the loss must show up in the counters and as a log line of the CLI.
    let dir = temp_dir("overflow");
    let cfgfile = dir.join("small-ring.yaml");
    // Its own state_dir: another sensor on the host may hold the default one.
    std::fs::write(
        &cfgfile,
        format!(
            "ring_buffer_bytes: 16384\nwakeup_bytes: 1000000\npoll_interval_ms: 500\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let mut child = spawn_workload(&["wait", "flood-pipe:3000:4096"]);
    let pid = child.id();
    let out = std::process::Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--config",
            cfgfile.to_str().unwrap(),
            "--watch-pid",
            &pid.to_string(),
        ])
        .arg("--state-dir")
        .arg(own_state_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = wait_ready(out);
    release(&mut child);
    wait_ok(&mut child);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, err) = stop_cli(stderr);
    assert!(status.success(), "sensor exit: {status}\n{err}");
    assert!(err.contains("events lost"), "no loss log line:\n{err}");
    let stats = err
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"stats\"") || l.contains("\"type\":\"stats\""))
        .expect("stats line");
    let v: serde_json::Value = serde_json::from_str(stats).unwrap();
    assert!(
        v["stats"]["kernel_ringbuf_full"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn cli_print_events_emits_json_lines_and_exits_zero_on_sigterm() {
    let sink = TcpSink::start();
    let dir = temp_dir("cli");
    let payload = dir.join("payload");
    std::fs::write(&payload, b"cli-payload-0042").unwrap();
    let mut child = spawn_workload(&[
        "wait",
        &format!("read:{}", payload.display()),
        &format!("tcp:{}", sink.addr),
    ]);
    let pid = child.id();
    let key = "00112233445566778899aabbccddeeff";
    let cfgfile = dir.join("key.yaml");
    std::fs::write(
        &cfgfile,
        format!(
            "fingerprint_key: \"{key}\"\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(sensor_bin());
    cmd.args([
        "run",
        "--only-flag-scopes",
        "--print-events",
        "--config",
        cfgfile.to_str().unwrap(),
        "--watch-pid",
        &pid.to_string(),
    ])
    .arg("--state-dir")
    .arg(own_state_dir())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut proc_ = cmd.spawn().unwrap();
    let stdout = proc_.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut s).unwrap();
        s
    });
    let h = wait_ready(proc_);
    release(&mut child);
    wait_ok(&mut child);
    std::thread::sleep(Duration::from_millis(800));
    let (status, err) = stop_cli(h);
    assert!(status.success(), "exit {status}: {err}");
    let out = reader.join().unwrap();
    assert!(!out.contains("cli-payload-0042"), "raw payload printed");
    let fp = sensor::redact::Fingerprinter::from_hex(key)
        .unwrap()
        .fingerprint(b"cli-payload-0042");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let w = lines
        .iter()
        .find(|v| {
            v["event"] == "write" && v["process"]["pid"] == pid && v["payload_fp"] == fp.as_str()
        })
        .unwrap_or_else(|| panic!("no write event with the payload's fingerprint in:\n{out}"));
    assert_eq!(w["fd_kind"], "socket");
    assert_eq!(w["endpoint"]["addr"], sink.addr.to_string());
    assert_eq!(w["payload_len"], 16);
}

#[test]
fn unprivileged_run_fails_naming_the_privilege() {
    use std::os::unix::process::CommandExt as _;
    let out = Command::new(sensor_bin())
        .args(["run", "--only-flag-scopes"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("privileges") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn missing_btf_fails_naming_the_feature() {
    // Hide the kernel's BTF in a private mount namespace: the real check must notice.
    let script = format!(
        "mount -t tmpfs none /sys/kernel/btf && exec {} run --only-flag-scopes",
        sensor_bin().display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("`btf`") && err.contains("/sys/kernel/btf/vmlinux"),
        "{err}"
    );
}
