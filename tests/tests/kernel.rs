//! The kernel syscall path on the real kernel: syscall programs attached only while
//! something is watched (and before the first instruction of a newly watched exe), no
//! payload records for sinks that cannot cross the boundary, and the capture_files rule.
//! Run as root, one test at a time: `cargo test -p sensor-tests -- --test-threads=1`.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensor::sensor::WatchArgs;
use sensor::state::events::{Endpoint, EventBody, FdKind, SensorEvent};
use sensor_tests::*;

const T: Duration = Duration::from_secs(15);

fn syscall_links(h: &Harness) -> usize {
    let p = h.sensor.as_ref().expect("running").probes();
    let n = p.lock().unwrap().kernel_syscall_links();
    n
}

fn writes_of(evs: &[&SensorEvent]) -> Vec<(i32, FdKind, Option<Endpoint>, Vec<u8>)> {
    evs.iter()
        .filter_map(|e| match &e.body {
            EventBody::Write {
                fd,
                fd_kind,
                endpoint,
                data,
                ..
            } => Some((*fd, *fd_kind, endpoint.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn syscall_programs_attach_only_while_something_is_watched() {
    let dir = temp_dir("attach");
    let exe = dir.join("agent-first-write");
    std::fs::copy(workload_bin(), &exe).unwrap();
    let sink = TcpSink::start();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            exes: vec!["agent-first-write".into()],
            ..Default::default()
        },
    );
    // Nothing watched: the kernel has no link for any of our syscall programs.
    assert_eq!(
        syscall_links(&h),
        0,
        "syscall programs attached with nothing watched"
    );

    // A watched exe starting without a terminal is held at its first instruction until the
    // programs are attached, so its very first write is captured.
    let mut cmd = Command::new(&exe);
    cmd.args([
        "set:first-write-0042",
        &format!("tcp:{}", sink.addr),
        "wait",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::null());
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let wrote = |e: &[SensorEvent]| {
        e.iter().any(|e| {
            e.process.pid == pid
                && matches!(&e.body, EventBody::Write { data, .. } if data == b"first-write-0042")
        })
    };
    assert!(h.collect_until(T, wrote), "first write not captured");
    assert!(
        syscall_links(&h) > 0,
        "no syscall program attached while watching"
    );
    release(&mut child);
    wait_ok(&mut child);
    assert!(h.collect_until(T, |e| has_exit(e, pid)), "no exit event");
    let w = writes_of(&h.of_pid(pid));
    assert!(
        w.iter()
            .any(|(_, k, _, d)| *k == FdKind::Socket && d == b"first-write-0042"),
        "first write not captured: {w:?}"
    );
    let counters = {
        let p = h.sensor.as_ref().unwrap().probes();
        let c = p.lock().unwrap().counters().unwrap();
        c
    };
    assert!(counters.held >= 1, "the exec was not held: {counters:?}");

    // The watched process is gone: the programs are detached again.
    let deadline = Instant::now() + T;
    while syscall_links(&h) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(syscall_links(&h), 0, "syscall programs still attached");
    h.stop();
    assert_eq!(&sink.received.lock().unwrap()[..], b"first-write-0042");
}

#[test]
fn writes_to_null_devices_produce_no_payload_records() {
    let sink = TcpSink::start();
    // Opened by the process itself, inherited at exec (stdout is /dev/null), and inherited
    // by a forked child; then one real socket write as a positive control.
    let mut child = Command::new(workload_bin())
        .args([
            "wait",
            "set:into-the-void-0042",
            "flood-null:50:64",
            "stdout",
            "fork",
            "stdout",
            "flood-null:5:64",
            &format!("tcp:{}", sink.addr),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
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
    let stats = h.stop();
    let g = grandchild(&h.events).unwrap();
    let mut all = h.of_pid(pid);
    all.extend(h.of_pid(g));
    let w = writes_of(&all);
    let void: Vec<_> = w
        .iter()
        .filter(|(_, _, ep, _)| matches!(ep, Some(Endpoint::Path { path }) if path == "/dev/null"))
        .collect();
    assert!(void.is_empty(), "payload records for /dev/null: {void:?}");
    assert!(
        w.iter()
            .any(|(_, k, _, d)| *k == FdKind::Socket && d == b"into-the-void-0042"),
        "the socket write (control) is missing: {w:?}"
    );
    // 57 writes went to /dev/null; only the socket write (and no null write) was recorded.
    assert!(stats.records < 30, "{stats:?}");
}

#[test]
fn regular_files_are_captured_only_when_they_are_logs_unless_all() {
    for (all, expect_plain) in [(false, false), (true, true)] {
        let dir = temp_dir(if all { "files-all" } else { "files-logs" });
        let (plain, log) = (dir.join("notes.txt"), dir.join("build.log"));
        let mut cfg = test_config();
        if all {
            cfg.capture_files = sensor::config::CaptureFiles::All;
        }
        let (pid, h, _) = watch_workload(
            cfg,
            &[
                "wait",
                "set:file-content-0042",
                &format!("file:{}", plain.display()),
                &format!("file:{}", log.display()),
            ],
        );
        let w = writes_of(&h.of_pid(pid));
        let to = |p: &std::path::Path| {
            w.iter().any(|(_, k, ep, d)| {
                *k == FdKind::File
                    && d == b"file-content-0042"
                    && matches!(ep, Some(Endpoint::Path { path }) if path == p.to_str().unwrap())
            })
        };
        assert!(to(&log), "log file write not captured (all={all}): {w:?}");
        assert_eq!(to(&plain), expect_plain, "plain file (all={all}): {w:?}");
    }
}

#[test]
fn another_process_reading_a_watched_environment_is_reported() {
    let mut target = spawn_workload(&["wait"]);
    let pid = target.id();
    let mut h = Harness::start(
        test_config(),
        WatchArgs {
            pids: vec![pid],
            ..Default::default()
        },
    );
    // An unwatched reader of the watched process's environment, and of an unwatched
    // process's (this test's): only the first is harvesting.
    let mut cat = Command::new("cat")
        .arg(format!("/proc/{pid}/environ"))
        .arg(format!("/proc/{}/environ", std::process::id()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let reader = cat.id();
    wait_ok(&mut cat);
    let harvest = |e: &[SensorEvent]| {
        e.iter()
            .filter(|e| e.process.pid == reader)
            .filter_map(|e| match &e.body {
                EventBody::Harvest {
                    method,
                    target_pid,
                    path,
                    ..
                } => Some((*method, *target_pid, path.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(
        h.collect_until(T, |e| !harvest(e).is_empty()),
        "no harvest event"
    );
    h.collect_for(Duration::from_millis(300));
    release(&mut target);
    wait_ok(&mut target);
    h.stop();
    let seen = harvest(&h.events);
    assert_eq!(
        seen,
        vec![("environ", pid, Some(format!("/proc/{pid}/environ")))],
        "exactly the watched target"
    );
}
