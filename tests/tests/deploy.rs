//! Deployment artefacts checked with the tools that consume them, and the daemon run the
//! way they run it: the systemd unit through `systemd-analyze verify`/`security`, the
//! daemon under the unit's privileges (non-root, the unit's capabilities only, no new
//! privileges, the unit's /proc view) and syscall filter, its sd_notify protocol against
//! a real notify socket, `cargo xtask install` into a staging root, the Dockerfile
//! through hadolint and the Kubernetes manifests through OpenAPI schema validation.
//! (No systemd runs as PID 1 and no container engine runs here: see README "Deploying".)

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensor_tests::*;

const UNIT: &str = "deploy/systemd/token-sensor.service";
const TOKEN: &str = "7c1e9a52-3b4d-4f6e-8a9b-0c1d2e3f4a5b";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The xtask binary (`cargo xtask test` passes its own path; else next to `sensor`).
fn xtask_bin() -> PathBuf {
    let p = std::env::var_os("XTASK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| sensor_bin().with_file_name("xtask"));
    assert!(
        p.is_file(),
        "{} missing: run the tests through `cargo xtask test`",
        p.display()
    );
    p
}

/// A tool from the PyPI virtualenv `cargo xtask test` installs (xtask/src/deps.rs).
fn pytool(name: &str) -> PathBuf {
    let dir = std::env::var_os("TOKEN_SENSOR_PYTOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/token-sensor/pytools/bin")
        });
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} missing: `cargo xtask test` installs it (xtask/src/deps.rs PY_TOOLS)",
        p.display()
    );
    p
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Values of `Key=` lines in the unit (each line's value, in order).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
        .collect()
}

/// Installs with `cargo xtask install --binary <debug sensor>` and `extra` flags.
fn xtask_install(extra: &[&str]) -> String {
    let (ok, out) = run(Command::new(xtask_bin())
        .arg("install")
        .arg("--binary")
        .arg(sensor_bin())
        .args(extra));
    assert!(ok, "xtask install failed:\n{out}");
    out
}

#[test]
fn unit_passes_systemd_analyze_verify_without_a_warning() {
    let dir = temp_dir("unit-verify");
    let prefix = dir.join("usr/local");
    let etc = dir.join("etc");
    // A real install (not a destdir): the unit's ExecStart and config paths exist.
    xtask_install(&[
        "--prefix",
        prefix.to_str().unwrap(),
        "--sysconfdir",
        etc.to_str().unwrap(),
    ]);
    let unit = prefix.join("lib/systemd/system/token-sensor.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart={}/bin/token-sensor run --config {}/token-sensor/config.yaml",
            prefix.display(),
            etc.display()
        )),
        "{text}"
    );
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify {}:\n{out}",
        unit.display()
    );

    // The check is live: a misspelt setting is a warning, and fails this test's criterion.
    let bad = dir.join("token-sensor-bad.service");
    std::fs::write(&bad, text.replace("NoNewPrivileges=", "NoNewPrivilege=")).unwrap();
    let (_, out) = run(Command::new("systemd-analyze").arg("verify").arg(&bad));
    assert!(
        out.contains("NoNewPrivilege"),
        "no warning for a bad key:\n{out}"
    );

    // Exposure score, offline: printed, and held at or below 3.0 ("OK").
    let (ok, out) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    assert!(ok, "systemd-analyze security:\n{out}");
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("token-sensor.service: ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{out}"));
    eprintln!("systemd-analyze security: overall exposure {score}");
    assert!(score <= 3.0, "exposure {score} > 3.0:\n{out}");
}

#[test]
fn install_into_a_destdir_lays_out_every_file_with_its_mode() {
    let dest = temp_dir("install-destdir");
    xtask_install(&["--destdir", dest.to_str().unwrap()]);
    let bin = dest.join("usr/local/bin/token-sensor");
    let unit = dest.join("usr/local/lib/systemd/system/token-sensor.service");
    let cfg = dest.join("etc/token-sensor/config.yaml");
    let shipped_cfg = dest.join("usr/local/share/token-sensor/default-config.yaml");
    let rules = dest.join("usr/local/share/token-sensor/rules");
    // One installed file per shipped rule file (one per provider family), the same bytes.
    let mut shipped: Vec<_> = std::fs::read_dir(root().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    shipped.sort();
    assert!(shipped.len() > 5, "{shipped:?}");
    for name in &shipped {
        let installed = rules.join(name);
        assert_eq!(mode(&installed), 0o644, "mode of {}", installed.display());
        assert_eq!(
            std::fs::read_to_string(&installed).unwrap(),
            read(&format!("rules/{}", name.to_string_lossy()))
        );
    }
    for (p, m) in [
        (&bin, 0o755),
        (&unit, 0o644),
        (&cfg, 0o600),
        (&shipped_cfg, 0o644),
    ] {
        assert_eq!(mode(p), m, "mode of {}", p.display());
    }
    for d in [
        "usr/local/bin",
        "etc/token-sensor",
        "usr/local/share/token-sensor/rules",
    ] {
        assert_eq!(mode(&dest.join(d)), 0o755, "mode of {d}");
    }
    // Paths inside the files are the final system's, not the staging root's.
    let u = std::fs::read_to_string(&unit).unwrap();
    assert!(
        u.contains(
            "ExecStart=/usr/local/bin/token-sensor run --config /etc/token-sensor/config.yaml"
        ),
        "{u}"
    );
    assert!(!u.contains(dest.to_str().unwrap()), "{u}");
    assert_eq!(u, read(UNIT));
    let default_cfg = read("sensor/default-config.yaml");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), default_cfg);
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(sensor_bin()).unwrap()
    );

    // The installed binary runs, accepts the installed config and the installed rules.
    let (ok, out) = run(Command::new(&bin).args(["config", "--config"]).arg(&cfg));
    assert!(ok, "installed config rejected:\n{out}");
    let (ok, out) = run(Command::new(&bin).args(["rules", "check"]).arg(&rules));
    assert!(ok, "installed rules rejected:\n{out}");

    // Reinstalling keeps the operator's configuration.
    let mine = "alert_window_secs: 60\n";
    std::fs::write(&cfg, mine).unwrap();
    let out = xtask_install(&["--destdir", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), mine, "{out}");
    assert!(out.contains("kept existing"), "{out}");
    assert!(!dest.join("etc/token-sensor").read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("xtask-tmp")));
}

/// A `sensor run` started through a command that execs it in place (so the child's pid
/// is the sensor's, unless `strace` runs it), its stdout collected line by line.
struct Running {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    /// Spawns `cmd` and waits for "sensor ready".
    fn start(mut cmd: Command) -> Running {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sensor");
        let pipe = child.stdout.take().unwrap();
        let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s2 = stdout.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = s2.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (child, stderr) = wait_ready(child);
        Running {
            child,
            stderr,
            stdout,
            reader,
        }
    }

    /// Waits (up to 60 s) until the sensor printed a finding with `verdict`.
    fn wait_finding(&self, verdict: &str) -> bool {
        wait_for(Duration::from_secs(60), || {
            findings(&self.stdout.lock().unwrap())
                .iter()
                .any(|a| a["verdict"] == verdict)
        })
    }

    /// Sends SIGTERM to `pid` (the sensor's) and returns exit status, stdout and stderr.
    fn stop(mut self, pid: u32) -> (std::process::ExitStatus, String, String) {
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let st = self.child.wait().unwrap();
        self.reader.join().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let err: Vec<String> = self.stderr.try_iter().collect();
        let out = self.stdout.lock().unwrap().clone();
        (st, out, err.join("\n"))
    }
}

/// A watched agent (the workload under `name`) with the token in its environment writes
/// it to a log file: the leak every privilege test expects the sensor to see.
fn leak_to_log(dir: &Path, name: &str) -> PathBuf {
    let agent = workload_as(dir, name);
    let log = dir.join("agent.log");
    let st = Command::new(&agent)
        .arg(format!(
            "sh:echo \"token=$CODER_AGENT_TOKEN\" >> {}",
            log.display()
        ))
        .env("CODER_AGENT_TOKEN", TOKEN)
        .status()
        .unwrap();
    assert!(st.success());
    log
}

fn findings(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "finding")
        .collect()
}

/// A root-owned 0600 config, as `xtask install` leaves it.
fn private_config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config.yaml");
    // The outbox directory belongs to the unit's user (StateDirectory=), here uid 65534.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "fingerprint_key: \"00112233445566778899aabbccddeeff\"\nstate_dir: {}\n",
            state.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    cfg
}

#[test]
fn sensor_tells_systemd_ready_after_attaching_and_pings_the_watchdog_at_half_its_interval() {
    let dir = temp_dir("notify");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut cmd = Command::new(sensor_bin());
    cmd.args([
        "run",
        "--only-flag-scopes",
        "--watch-exe",
        "agent-notify",
        "--config",
    ])
    .arg(private_config(&dir))
    .env("NOTIFY_SOCKET", &sock_path)
    // 6 s: a ping is due every 3 s; the housekeeping tick is 1 s.
    .env("WATCHDOG_USEC", "6000000")
    .env_remove("WATCHDOG_PID");
    let sensor = Running::start(cmd);
    let pid = sensor.child.id();

    let mut msgs: Vec<(Instant, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut leaked = false;
    while Instant::now() < deadline
        && msgs
            .iter()
            .filter(|(_, m)| m.contains("WATCHDOG=1"))
            .count()
            < 3
    {
        if let Ok(n) = sock.recv(&mut buf) {
            msgs.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
        // READY=1 means detecting: a leak right after it is seen.
        if !leaked && msgs.iter().any(|(_, m)| m.contains("READY=1")) {
            leak_to_log(&dir, "agent-notify");
            leaked = true;
        }
    }
    let detected = sensor.wait_finding("log_exposure");
    let (status, stdout, stderr) = sensor.stop(pid);
    let dump = format!("{msgs:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(status.success(), "{dump}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "{dump}");
    assert!(
        msgs.first().is_some_and(|(_, m)| m.contains("READY=1")),
        "first message not READY=1: {dump}"
    );
    assert_eq!(
        msgs.iter().filter(|(_, m)| m.contains("READY=1")).count(),
        1,
        "{dump}"
    );
    assert!(
        leaked && detected,
        "the leak right after READY=1 was not detected: {dump}"
    );
    let pings: Vec<Instant> = msgs
        .iter()
        .filter(|(_, m)| m.trim() == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    assert!(
        pings.len() >= 3,
        "fewer than 3 watchdog pings in 60 s: {dump}"
    );
    for w in pings.windows(2) {
        let gap = w[1] - w[0];
        // Rate-limited to half the interval (not every 1 s tick), always inside it.
        assert!(
            gap >= Duration::from_millis(2500) && gap < Duration::from_secs(6),
            "watchdog gap {gap:?}: {dump}"
        );
    }
}

/// The capabilities the unit grants (lower-case, no `CAP_`, as `setpriv` names them),
/// split into those this machine can grant and those outside its own bounding set.
fn unit_caps() -> (Vec<String>, Vec<String>) {
    let unit = read(UNIT);
    let bounding = unit_values(&unit, "CapabilityBoundingSet").join(" ");
    let ambient = unit_values(&unit, "AmbientCapabilities").join(" ");
    assert_eq!(
        bounding, ambient,
        "the unit's ambient and bounding sets differ"
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap();
    let bit = |name: &str| match name {
        "CAP_DAC_READ_SEARCH" => 2,
        "CAP_SYS_PTRACE" => 19,
        "CAP_SYS_RESOURCE" => 24,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("the unit grants {other}: teach this test its number"),
    };
    let (mut grant, mut missing) = (Vec::new(), Vec::new());
    for c in bounding.split_whitespace() {
        let name = c.trim_start_matches("CAP_").to_ascii_lowercase();
        if bnd & (1u64 << bit(c)) != 0 {
            grant.push(name);
        } else {
            missing.push(name);
        }
    }
    (grant, missing)
}

#[test]
fn sensor_detects_with_only_the_units_privileges() {
    let (caps, missing) = unit_caps();
    if !missing.is_empty() {
        eprintln!("note: this machine cannot grant {missing:?} at all (not in its bounding set): running without");
    }
    let unit = read(UNIT);
    assert_eq!(unit_values(&unit, "ProcSubset"), ["pid"]);
    assert_eq!(unit_values(&unit, "ProtectProc"), ["ptraceable"]);
    assert_eq!(unit_values(&unit, "NoNewPrivileges"), ["yes"]);
    assert_eq!(unit_values(&unit, "DynamicUser"), ["yes"]);
    let dir = temp_dir("unit-privileges");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = private_config(&dir);
    let set = caps
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(",");
    // A private mount namespace with the unit's /proc view (ProcSubset=pid,
    // ProtectProc=ptraceable), then an unprivileged uid (DynamicUser stand-in) holding only
    // the unit's capabilities, ambient and bounding, with no_new_privs.
    let script = format!(
        "mount -t proc -o subset=pid,hidepid=ptraceable proc /proc && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all,{set} --ambient-caps=-all,{set} --bounding-set=-all,{set} --no-new-privs {} run --only-flag-scopes --watch-exe agent-unpriv --config {}",
        sensor_bin().display(),
        cfg.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
    // The agent (root) runs before the sensor and holds its log open as stdout: the sensor
    // must read another user's /proc/<pid>/fd (CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH) to
    // know where the later write goes.
    let log = dir.join("agent.log");
    let mut agent = Command::new(workload_as(&dir, "agent-unpriv"))
        .args(["wait", "sh:echo \"token=$CODER_AGENT_TOKEN\""])
        .env("CODER_AGENT_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sensor = Running::start(cmd);
    let pid = sensor.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    release(&mut agent);
    wait_ok(&mut agent);
    sensor.wait_finding("log_exposure");
    let (st, stdout, stderr) = sensor.stop(pid);
    let dump = format!("{status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(st.success(), "{dump}");
    assert!(
        status.contains("Uid:\t65534"),
        "sensor not running as 65534: {dump}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "{dump}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "{dump}");
    let f = findings(&stdout);
    let hit = f
        .iter()
        .find(|a| a["verdict"] == "log_exposure")
        .unwrap_or_else(|| panic!("no log_exposure finding as an unprivileged user: {dump}"));
    // The source was learned from the (root-owned) agent's environment.
    assert_eq!(hit["chain"]["source"]["var"], "CODER_AGENT_TOKEN", "{hit}");
    assert_eq!(
        hit["sink"]["endpoint"]["path"].as_str(),
        Some(log.to_str().unwrap()),
        "{hit}"
    );
}

/// Every syscall name in each `@group` of `systemd-analyze syscall-filter`, nested
/// groups expanded.
fn syscall_groups() -> HashMap<String, BTreeSet<String>> {
    let (ok, out) = run(Command::new("systemd-analyze").arg("syscall-filter"));
    assert!(ok, "{out}");
    let mut raw: HashMap<String, Vec<String>> = HashMap::new();
    let mut cur = String::new();
    for line in out.lines() {
        if let Some(g) = line.strip_prefix('@') {
            cur = format!("@{}", g.trim());
            raw.entry(cur.clone()).or_default();
        } else {
            let t = line.trim();
            if !t.is_empty() && !t.starts_with('#') && !cur.is_empty() {
                raw.get_mut(&cur).unwrap().push(t.to_string());
            }
        }
    }
    fn expand(g: &str, raw: &HashMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
        for m in raw.get(g).map(Vec::as_slice).unwrap_or_default() {
            if m.starts_with('@') {
                expand(m, raw, out);
            } else {
                out.insert(m.clone());
            }
        }
    }
    raw.keys()
        .map(|g| {
            let mut s = BTreeSet::new();
            expand(g, &raw, &mut s);
            (g.clone(), s)
        })
        .collect()
}

/// The syscalls the unit's `SystemCallFilter=` lines allow.
fn unit_syscall_allowlist() -> BTreeSet<String> {
    let groups = syscall_groups();
    let mut allowed = BTreeSet::new();
    let names = |list: &str| -> BTreeSet<String> {
        list.split_whitespace()
            .flat_map(|n| match groups.get(n) {
                Some(s) => s.iter().cloned().collect::<Vec<_>>(),
                None if n.starts_with('@') => panic!("unknown syscall group {n}"),
                None => vec![n.to_string()],
            })
            .collect()
    };
    let lines = unit_values(&read(UNIT), "SystemCallFilter");
    assert!(!lines.is_empty() && !lines[0].starts_with('~'), "{lines:?}");
    for l in lines {
        match l.strip_prefix('~') {
            Some(deny) => allowed.retain(|s| !names(deny).contains(s)),
            None => allowed.extend(names(&l)),
        }
    }
    allowed
}

#[test]
fn sensor_syscalls_stay_inside_the_units_filter() {
    let allowed = unit_syscall_allowlist();
    assert!(allowed.contains("bpf") && allowed.contains("read") && !allowed.contains("mount"));
    let dir = temp_dir("syscalls");
    let trace = dir.join("strace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--watch-exe",
            "agent-strace",
            "--config",
        ])
        .arg(private_config(&dir));
    let sensor = Running::start(cmd);
    leak_to_log(&dir, "agent-strace");
    let detected = sensor.wait_finding("log_exposure");
    // SIGTERM the sensor itself (strace's child), not strace: the shutdown path counts.
    let strace_pid = sensor.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))
            .unwrap_or_default();
    let sensor_pid: u32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("strace's child");
    let (st, stdout, stderr) = sensor.stop(sensor_pid);
    assert!(st.success(), "{stdout}\n{stderr}");
    assert!(
        detected,
        "the traced run detected nothing:\n{stdout}\n{stderr}"
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let used: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let rest = l.split_once(' ')?.1.trim_start();
            let rest = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()
                && rest[name.len()..].starts_with(['(', ' '])
                && !rest.starts_with("+++")
                && !rest.starts_with("---"))
            .then_some(name)
        })
        .collect();
    assert!(
        used.contains("bpf") && used.contains("perf_event_open"),
        "{used:?}"
    );
    let outside: Vec<&String> = used.difference(&allowed).collect();
    eprintln!("syscalls used by the daemon: {}", used.len());
    assert!(
        outside.is_empty(),
        "the daemon made syscalls the unit's SystemCallFilter denies (EPERM under systemd): {outside:?}"
    );
}

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = pytool("hadolint");
    let file = root().join("deploy/container/Dockerfile");
    let (ok, out) = run(Command::new(&hadolint).arg(&file));
    assert!(
        ok && out.trim().is_empty(),
        "hadolint {}:\n{out}",
        file.display()
    );
    // The check is live: a broken instruction and a lint violation both fail.
    let dir = temp_dir("hadolint");
    let text = std::fs::read_to_string(&file).unwrap();
    for (what, bad) in [
        ("syntax", text.replace("ENTRYPOINT [", "ENTRYPONT [")),
        ("lint", text.replace("WORKDIR /src", "RUN cd /src")),
    ] {
        let p = dir.join(format!("Dockerfile.{what}"));
        std::fs::write(&p, bad).unwrap();
        let (ok, out) = run(Command::new(&hadolint).arg(&p));
        assert!(
            !ok,
            "hadolint accepted a Dockerfile with a {what} error:\n{out}"
        );
    }
    // The HEALTHCHECK asks the address the image's config serves.
    let cfg = read("deploy/container/config.yaml");
    assert!(text.contains("http://127.0.0.1:9464/healthz"), "{text}");
    assert!(cfg.contains("metrics_listen: \"127.0.0.1:9464\""), "{cfg}");
}

/// `token-sensor config --config FILE` accepts `text`.
fn assert_valid_config(text: &str, origin: &str) {
    let dir = temp_dir("config-check");
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    let (ok, out) = run(Command::new(sensor_bin())
        .args(["config", "--config"])
        .arg(&p));
    assert!(ok, "{origin} rejected by the daemon:\n{out}");
}

#[test]
fn kubernetes_manifests_validate_against_the_api_schemas() {
    let validate = pytool("kubernetes-validate");
    let dir = root().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    // The newest schemas the validator ships, and 1.30 (appArmorProfile's first release).
    for version in [None, Some("1.30.0")] {
        let mut cmd = Command::new(&validate);
        cmd.args(["--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        let (ok, out) = run(cmd.args(&files));
        assert!(
            ok && !out.contains("ERROR"),
            "kubernetes-validate {version:?}:\n{out}"
        );
    }
    // The check is live: a misspelt field fails.
    let ds_text = std::fs::read_to_string(dir.join("daemonset.yaml")).unwrap();
    let tmp = temp_dir("k8s-validate");
    let bad = tmp.join("daemonset.yaml");
    std::fs::write(
        &bad,
        ds_text.replace("readOnlyRootFilesystem", "readOnlyRootFilesytem"),
    )
    .unwrap();
    let (ok, out) = run(Command::new(&validate).arg("--strict").arg(&bad));
    assert!(!ok, "a misspelt field passed:\n{out}");

    // What the sensor needs, beyond schema validity.
    let ds: serde_json::Value = yaml_serde::from_str(&ds_text).unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    // Exactly the unit's capabilities.
    let unit = read(UNIT);
    let unit_caps: BTreeSet<String> = unit_values(&unit, "CapabilityBoundingSet")
        .join(" ")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    let pod_caps: BTreeSet<String> = sc["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(pod_caps, unit_caps);
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for v in ["NODE_NAME", "POD_NAME", "POD_NAMESPACE"] {
        assert!(env.contains(&v), "{v} missing: {env:?}");
    }
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(port, 9464);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let host_paths: BTreeSet<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    for p in [
        "/sys/kernel/btf",
        "/sys/kernel/tracing",
        "/sys/fs/cgroup",
        "/var/lib/token-sensor",
        "/var/log/pods",
    ] {
        assert!(
            host_paths.contains(p),
            "hostPath {p} missing: {host_paths:?}"
        );
    }

    // The ConfigMap's config is the daemon's default plus the pod settings, and valid.
    let cm: serde_json::Value =
        yaml_serde::from_str(&std::fs::read_to_string(dir.join("configmap.yaml")).unwrap())
            .unwrap();
    let cfg = cm["data"]["config.yaml"].as_str().unwrap();
    // (Generated from sensor/default-config.yaml: the xtask test checks it is current.)
    assert!(
        cfg.contains(&format!("metrics_listen: \"0.0.0.0:{port}\"")),
        "{cfg}"
    );
    assert_valid_config(cfg, "the ConfigMap's config.yaml");
    assert_valid_config(
        &read("deploy/container/config.yaml"),
        "deploy/container/config.yaml",
    );
}
