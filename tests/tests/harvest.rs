//! Environment harvesting judged end to end through the real CLI: a watched agent holds a
//! token in its environment; a process outside its workspace reading its
//! `/proc/<pid>/environ` (or memory, or attaching with ptrace) is one `harvesting` alert
//! naming the reader and the agent's workspace, while the agent reading its own
//! environment or a child of the agent reading its parent's is not. The sensor never
//! prints the token. Run as root, one test at a time.

use std::process::{Command, Stdio};
use std::time::Duration;

use sensor_tests::*;

/// A checksum-valid GitHub token (generated), held in the agent's environment.
fn token() -> String {
    github_token(7001)
}

/// Starts the agent (the workload copied as `name`, waiting on stdin) with the token in
/// its environment, under a CLI sensor watching that exe name.
fn start_agent(tag: &str, name: &str, steps: &[&str]) -> (CliSensor, std::process::Child) {
    let dir = temp_dir(tag);
    let agent = workload_as(&dir, name);
    let sensor = CliSensor::start(&["--only-flag-scopes", "--print-events", "--watch-exe", name]);
    let child = Command::new(&agent)
        .args(steps)
        .env("GITHUB_TOKEN", token())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    (sensor, child)
}

fn harvesting(out: &CliOutput) -> Vec<serde_json::Value> {
    out.records("finding")
        .into_iter()
        .filter(|a| a["verdict"] == "harvesting")
        .collect()
}

#[test]
fn an_outside_process_reading_a_watched_environment_is_harvesting() {
    let (sensor, mut agent) = start_agent("harvest-out", "agent-harvested", &["wait"]);
    let pid = agent.id();
    // The agent is watched once its exec has been seen; the reader must come after.
    std::thread::sleep(Duration::from_millis(1000));
    // An unwatched process (a child of this test, not of the agent) reads the agent's
    // environment — the token — and its own.
    let cat = Command::new("cat")
        .arg(format!("/proc/{pid}/environ"))
        .arg("/proc/self/environ")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = cat.id();
    let read = cat.wait_with_output().unwrap();
    assert!(read.status.success());
    assert!(
        String::from_utf8_lossy(&read.stdout).contains(&token()),
        "the reader did get the token (the test is real)"
    );
    std::thread::sleep(Duration::from_millis(700));
    release(&mut agent);
    wait_ok(&mut agent);
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&token()]);
    let mine: Vec<_> = harvesting(&out)
        .into_iter()
        .filter(|a| a["process"]["pid"] == reader)
        .collect();
    assert_eq!(mine.len(), 1, "one harvesting alert:\n{}", out.dump());
    let a = &mine[0];
    assert_eq!(a["severity"], "high", "{a}");
    assert_eq!(a["harvest"]["method"], "proc_environ", "{a}");
    assert_eq!(a["harvest"]["target_pid"], pid, "{a}");
    assert!(
        a["harvest"]["target_exe"]
            .as_str()
            .is_some_and(|e| e.ends_with("agent-harvested")),
        "{a}"
    );
    assert_eq!(a["harvest"]["path"], format!("/proc/{pid}/environ"));
    // The reader is named by the kernel's comm whether or not it was still there for
    // the daemon to read its /proc entry.
    assert_eq!(a["harvest"]["reader_comm"], "cat", "{a}");
    let exe = a["process"]["exe"].as_str().unwrap();
    assert!(exe.is_empty() || exe.ends_with("/cat"), "{a}");
    // The workspace is the target's (the agent's process tree), not the reader's.
    assert_eq!(a["workspace"]["kind"], "process_tree", "{a}");
    assert_eq!(a["workspace"]["root_pid"], pid, "{a}");
    assert_eq!(a["sink"]["kind"], "process");
    let mitre: Vec<&str> = a["mitre"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    assert!(mitre.contains(&"T1552.007"), "{mitre:?}");
    assert!(
        a.get("finding").is_none(),
        "no token in a harvesting alert: {a}"
    );
}

#[test]
fn reading_ones_own_or_a_workspace_siblings_environment_is_not_harvesting() {
    // A shell the agent starts (same workspace) reads its own environment by pid and
    // through /proc/self, and the agent's: none of it is harvesting.
    let (sensor, mut agent) = start_agent(
        "harvest-own",
        "agent-self-read",
        &[
            "wait",
            "sh:cat /proc/$$/environ /proc/$PPID/environ /proc/self/environ > /dev/null",
        ],
    );
    let pid = agent.id();
    std::thread::sleep(Duration::from_millis(1000));
    release(&mut agent);
    wait_ok(&mut agent);
    std::thread::sleep(Duration::from_millis(700));
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&token()]);
    // The kernel did report the sibling's read of the agent's environment (the
    // judgement, not a blind spot, keeps it from being an alert)…
    let seen = out
        .records("event")
        .into_iter()
        .filter(|e| e["event"] == "harvest" && e["target_pid"] == pid)
        .count();
    assert!(
        seen >= 1,
        "no harvest event for the sibling's read:\n{}",
        out.dump()
    );
    // …and none of it is an alert.
    let ours: Vec<_> = harvesting(&out)
        .into_iter()
        .filter(|a| a["workspace"]["root_pid"] == pid)
        .collect();
    assert!(ours.is_empty(), "not harvesting:\n{}", out.dump());
}

#[test]
fn relative_opens_through_a_proc_directory_are_harvesting_too() {
    // `cd /proc/<pid> && cat environ` and `openat(dirfd of /proc/<pid>, "mem")` name no
    // `/proc/<pid>/…` path: the kernel names the process from the directory's proc inode.
    // The readers exit at once (a `cat` is gone before the daemon could look at its cwd).
    let (sensor, mut agent) = start_agent("harvest-rel", "agent-rel-read", &["wait"]);
    let pid = agent.id();
    std::thread::sleep(Duration::from_millis(1000));
    let cd = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd /proc/{pid}/task/{pid} && cat environ && cd /proc/$$ && cat environ >/dev/null"
        ))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(cd.status.success());
    assert!(
        String::from_utf8_lossy(&cd.stdout).contains(&token()),
        "the reader did get the token (the test is real)"
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import os\nd = os.open('/proc/{pid}', os.O_RDONLY)\nos.close(os.open('mem', os.O_RDONLY, dir_fd=d))\nprint(os.getpid(), flush=True)"
        ))
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py_pid: u64 = String::from_utf8_lossy(&py.stdout).trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    release(&mut agent);
    wait_ok(&mut agent);
    let out = sensor.stop();
    assert!(out.status.success(), "{}", out.dump());
    out.assert_no_leak(&[&token()]);
    let found = harvesting(&out);
    let env: Vec<_> = found
        .iter()
        .filter(|a| a["harvest"]["method"] == "proc_environ")
        .collect();
    assert_eq!(
        env.len(),
        1,
        "one environ harvest (not the shell's own):\n{}",
        out.dump()
    );
    assert_eq!(env[0]["harvest"]["target_pid"], pid, "{}", env[0]);
    assert_eq!(
        env[0]["harvest"]["path"],
        format!("/proc/{pid}/environ"),
        "{}",
        env[0]
    );
    assert_eq!(env[0]["harvest"]["reader_comm"], "cat", "{}", env[0]);
    let mem: Vec<_> = found
        .iter()
        .filter(|a| a["harvest"]["method"] == "proc_mem")
        .collect();
    assert_eq!(mem.len(), 1, "one mem harvest:\n{}", out.dump());
    assert_eq!(mem[0]["process"]["pid"], py_pid, "{}", mem[0]);
    assert_eq!(mem[0]["harvest"]["path"], format!("/proc/{pid}/mem"));
    assert_eq!(mem[0]["workspace"]["root_pid"], pid, "{}", mem[0]);
}
