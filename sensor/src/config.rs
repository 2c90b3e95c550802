//! Daemon configuration: an embedded default (sensible for a build host with no external
//! service) overlaid by an optional YAML file and command-line flags. Unknown keys and bad
//! values are errors that name the file, the key and the line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The built-in configuration, used when no `--config` is given.
pub const DEFAULT_CONFIG: &str = include_str!("../default-config.yaml");

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read, or was refused (too large, not text, nested too
    /// deep). The message is not repeated as a source: errors print as one line.
    #[error("reading config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: crate::input::InputError,
    },
    /// The YAML is malformed or has unknown/mistyped keys (location included).
    #[error("config {origin}: {error}")]
    Parse {
        /// File path or "built-in default".
        origin: String,
        /// yaml_serde's message with line and column.
        error: yaml_serde::Error,
    },
    /// An `outputs` entry lacks a key its kind needs (or has one it does not use).
    #[error("config {origin}: {problem}")]
    Output {
        /// File path or "built-in default".
        origin: String,
        /// What is wrong, naming `outputs[i].key` and the line.
        problem: String,
    },
    /// A value is out of range.
    #[error("config {origin}: `{key}` {problem}")]
    Invalid {
        /// File path or "built-in default".
        origin: String,
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// What to watch.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Cgroup directories (v2 or v1) whose processes are watched.
    pub cgroups: Vec<PathBuf>,
    /// Executable basenames: a process exec'ing one, and its descendants, are watched.
    pub exes: Vec<String>,
    /// Process ids watched with their descendants.
    pub pids: Vec<u32>,
}

/// Which regular files' writes are captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFiles {
    /// Only log files (`*.log`, `/var/log/**`): other files of the workspace stay inside it.
    #[default]
    Logs,
    /// Every regular file (needed for the `stored` verdict on workspace files).
    All,
}

/// Full configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload bytes captured per syscall (rounded into 4 KiB records), at most 65536.
    pub capture_bytes: u32,
    /// Kernel ring buffer size in bytes (power of two).
    pub ring_buffer_bytes: u32,
    /// Ring fill level (bytes) at which the kernel wakes the reader instead of batching.
    pub wakeup_bytes: u32,
    /// A record wakes the reader when its CPU has not done so for this many µs (a lone write
    /// reaches the daemon at once; a stream is batched). 0 = only `wakeup_bytes`.
    pub wakeup_interval_us: u32,
    /// Writes to regular files captured: `logs` (default) or `all`.
    pub capture_files: CaptureFiles,
    /// Interval of the reader's timer drain, in milliseconds.
    pub poll_interval_ms: u64,
    /// Capacity (records) of the channel between reader and engine.
    pub channel_capacity: usize,
    /// Payload bytes queued between the ring buffer and the detector.
    pub queue_bytes: u32,
    /// Seconds between metric lines on stderr (0 = only at exit).
    pub stats_interval_secs: u64,
    /// Hex HMAC key for fingerprints; random per run when absent. After loading it also
    /// holds the key read from `fingerprint_key_file`.
    #[serde(default)]
    pub fingerprint_key: Option<String>,
    /// File holding the hex fingerprint key (mode 0600 or stricter, enforced); excludes
    /// `fingerprint_key`. Lets a fleet share the key without putting it in the config.
    #[serde(default)]
    pub fingerprint_key_file: Option<PathBuf>,
    /// Log lines on stderr: `text` or `json` (one JSON object per line).
    #[serde(default)]
    pub log_format: LogFormat,
    /// One alert per (workspace, token, destination) within this many seconds; repeats
    /// are counted and summarized when the window closes.
    pub alert_window_secs: u64,
    /// Detector time, in milliseconds per second, one workspace may use before its further
    /// payload bytes are skipped (and a `detection_degraded` alert raised).
    pub scan_budget_ms: u64,
    /// Address of the Prometheus metrics and health endpoint (`/metrics`, `/healthz`,
    /// `/readyz`); off when absent.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Basenames of credential files whose reads are captured.
    pub credential_files: Vec<String>,
    /// Scopes.
    #[serde(default)]
    pub watch: WatchConfig,
    /// Extra rule files (YAML, or gitleaks TOML) added to the built-in rules, after the
    /// `--rules` files; re-read on reload.
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    /// Attach uprobes to TLS libraries (system libssl/libgnutls at start, and the TLS
    /// stacks of watched processes' binaries) to see TLS plaintext.
    #[serde(default = "yes")]
    pub tls_uprobes: bool,
    /// Where TLS uprobes apply: `global` (per file: every process using a hooked library
    /// traps, unwatched ones return after the scope check; a library is covered from its
    /// first call) or `per_process` (only watched processes carry the breakpoints; others
    /// pay nothing, but a library mapped by a watched process is covered only once the
    /// daemon has attached, a few ms after the mapping).
    #[serde(default)]
    pub tls_attach: TlsAttach,
    /// Attach a uprobe to libc `getenv`/`secure_getenv` (system libc at start, and the libc
    /// of watched processes, containers included) to record which secret-named variables
    /// each watched process reads: evidence in alerts' `chain.env_reads`. Attached as
    /// `tls_attach` says (global: every `getenv` call on the host traps, see the README for
    /// the cost).
    #[serde(default = "yes")]
    pub getenv_uprobes: bool,
    /// Directory (created 0700) of the outbox database and the revocation key.
    pub state_dir: PathBuf,
    /// Bound of the alert bytes the outbox keeps; the oldest alerts are dropped beyond it.
    pub state_max_bytes: u64,
    /// Where alerts go (empty: JSON lines on stdout).
    #[serde(default)]
    pub outputs: Vec<crate::deliver::sinks::OutputConfig>,
    /// Automatic revocation of leaked tokens.
    #[serde(default)]
    pub revocation: crate::revoke::RevocationConfig,
}

/// See [`Config::log_format`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours only for a terminal without `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

/// See [`Config::tls_attach`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsAttach {
    /// Per file, for all processes.
    #[default]
    Global,
    /// Per watched process.
    PerProcess,
}

fn yes() -> bool {
    true
}

impl Config {
    /// The embedded default.
    pub fn builtin() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in default")
            .expect("the embedded default config is valid")
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        Config::parse_effective(text, origin).map(|(c, _)| c)
    }

    /// [`Config::parse`], also returning the effective configuration as YAML: the
    /// built-in default overlaid by `text`, with secret values left out and a comment
    /// saying which are set. That YAML is itself a valid configuration file.
    pub fn parse_effective(text: &str, origin: &str) -> Result<(Config, String), ConfigError> {
        // Check the user's text first, typed, so errors carry its line numbers and key names.
        crate::input::check_depth(text).map_err(|error| ConfigError::Read {
            path: origin.into(),
            error,
        })?;
        if !text.trim().is_empty() {
            let _: Partial = yaml_serde::from_str(text).map_err(|error| ConfigError::Parse {
                origin: origin.into(),
                error,
            })?;
        }
        // Overlay the file on the default so a file may set only what it changes.
        let mut base: yaml_serde::Value =
            yaml_serde::from_str(DEFAULT_CONFIG).map_err(|error| ConfigError::Parse {
                origin: "built-in default".into(),
                error,
            })?;
        let over: yaml_serde::Value =
            yaml_serde::from_str(text).map_err(|error| ConfigError::Parse {
                origin: origin.into(),
                error,
            })?;
        merge(&mut base, over);
        let mut cfg: Config =
            yaml_serde::from_value(base.clone()).map_err(|error| ConfigError::Parse {
                origin: origin.into(),
                error,
            })?;
        cfg.validate(origin, text)?;
        cfg.validate_outputs(origin, text)?;
        if let Some(path) = &cfg.fingerprint_key_file {
            let key = read_key_file(path).map_err(|problem| ConfigError::Invalid {
                origin: origin.into(),
                key: "fingerprint_key_file",
                problem: match line_of(text, "fingerprint_key_file") {
                    Some(n) => format!("{problem} (line {n})"),
                    None => problem,
                },
            })?;
            cfg.fingerprint_key = Some(key);
        }
        Ok((cfg, effective_yaml(base, origin)))
    }

    /// Reads a file (at most [`crate::input::MAX_BYTES`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_effective(path).map(|(c, _)| c)
    }

    /// [`Config::load`] with the effective YAML of [`Config::parse_effective`].
    pub fn load_effective(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = crate::input::read_text(path).map_err(|error| ConfigError::Read {
            path: path.into(),
            error,
        })?;
        Config::parse_effective(&text, &path.display().to_string())
    }

    /// The built-in default with its effective YAML.
    pub fn builtin_effective() -> (Config, String) {
        Config::parse_effective(DEFAULT_CONFIG, "built-in default")
            .expect("the embedded default config is valid")
    }

    /// What the delivery pipeline needs.
    pub fn pipeline(&self) -> crate::deliver::PipelineConfig {
        crate::deliver::PipelineConfig {
            state_dir: self.state_dir.clone(),
            state_max_bytes: self.state_max_bytes,
            outputs: self.outputs.clone(),
            policy: crate::deliver::RevocationPolicy {
                mode: self.revocation.mode,
                min_severity: self.revocation.min_severity,
            },
        }
    }

    fn validate_outputs(&self, origin: &str, text: &str) -> Result<(), ConfigError> {
        for (i, o) in self.outputs.iter().enumerate() {
            if let Err(problem) = o.validate(&format!("outputs[{i}]")) {
                let line = item_line(text, "outputs", i)
                    .map(|l| format!(" (entry at line {l})"))
                    .unwrap_or_default();
                return Err(ConfigError::Output {
                    origin: origin.into(),
                    problem: format!("{problem}{line}"),
                });
            }
        }
        Ok(())
    }

    /// Range checks; an error names the key and, when the file sets it, its line.
    fn validate(&self, origin: &str, text: &str) -> Result<(), ConfigError> {
        let inv = |key: &'static str, problem: String| {
            let problem = match line_of(text, key) {
                Some(n) => format!("{problem} (line {n})"),
                None => problem,
            };
            Err(ConfigError::Invalid {
                origin: origin.into(),
                key,
                problem,
            })
        };
        if self.capture_bytes == 0 || self.capture_bytes > sensor_common::MAX_CAPTURE {
            return inv(
                "capture_bytes",
                format!(
                    "= {} must be in 1..={}",
                    self.capture_bytes,
                    sensor_common::MAX_CAPTURE
                ),
            );
        }
        if self.ring_buffer_bytes < 4096 || !self.ring_buffer_bytes.is_power_of_two() {
            return inv(
                "ring_buffer_bytes",
                format!("= {} must be a power of two ≥ 4096", self.ring_buffer_bytes),
            );
        }
        if self.channel_capacity == 0 {
            return inv("channel_capacity", "must be > 0".into());
        }
        if self.alert_window_secs == 0 || self.alert_window_secs > 86_400 {
            return inv(
                "alert_window_secs",
                format!("= {} must be in 1..=86400", self.alert_window_secs),
            );
        }
        if self.queue_bytes < 1 << 20 {
            return inv(
                "queue_bytes",
                format!("= {} must be at least 1048576", self.queue_bytes),
            );
        }
        if self.scan_budget_ms == 0 || self.scan_budget_ms > 1000 {
            return inv(
                "scan_budget_ms",
                format!("= {} must be in 1..=1000", self.scan_budget_ms),
            );
        }
        if let Some(a) = &self.metrics_listen {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return inv(
                    "metrics_listen",
                    format!("= {a:?} is not an address:port (e.g. 127.0.0.1:9464)"),
                );
            }
        }
        if self.poll_interval_ms == 0 || self.poll_interval_ms > 10_000 {
            return inv(
                "poll_interval_ms",
                format!("= {} must be in 1..=10000", self.poll_interval_ms),
            );
        }
        if let Some(k) = &self.fingerprint_key {
            if let Err(e) = crate::redact::Fingerprinter::from_hex(k) {
                return inv("fingerprint_key", e.to_string());
            }
            if self.fingerprint_key_file.is_some() {
                return inv(
                    "fingerprint_key",
                    "and `fingerprint_key_file` are both set: give the key one way".into(),
                );
            }
        }
        if self.state_max_bytes < 65536 {
            return inv(
                "state_max_bytes",
                format!("= {} must be at least 65536", self.state_max_bytes),
            );
        }
        if self.state_dir.as_os_str().is_empty() {
            return inv("state_dir", "must not be empty".into());
        }
        for (key, names) in [
            ("credential_files", &self.credential_files),
            ("watch.exes", &self.watch.exes),
        ] {
            if let Some(n) = names.iter().find(|n| check_basename(n).is_err()) {
                return inv(key, check_basename(n).unwrap_err());
            }
            let distinct: std::collections::HashSet<&String> = names.iter().collect();
            if distinct.len() > sensor_common::MAX_NAMES as usize {
                return inv(
                    key,
                    format!(
                        "has {} names; the kernel map holds at most {}",
                        distinct.len(),
                        sensor_common::MAX_NAMES
                    ),
                );
            }
        }
        if let Some(p) = self.watch.cgroups.iter().find(|p| !p.is_absolute()) {
            return inv(
                "watch.cgroups",
                format!("entry {p:?} must be an absolute cgroup directory path"),
            );
        }
        Ok(())
    }
}

/// The hex key in `path`, refused when the file is missing, not a regular file, or
/// readable by group or others. The message names the path, never the content.
fn read_key_file(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets group or others read the key; `chmod 600` it",
            path.display()
        ));
    }
    let text = crate::input::read_text(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = text.trim().to_string();
    crate::redact::Fingerprinter::from_hex(&key).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key)
}

/// Keys whose values are secrets: left out of printed configurations.
const SECRET_KEYS: &[&str] = &["fingerprint_key"];

/// The merged configuration as YAML, secrets left out (a comment says they are set).
fn effective_yaml(mut v: yaml_serde::Value, origin: &str) -> String {
    use yaml_serde::Value;
    let mut notes = Vec::new();
    if let Value::Mapping(m) = &mut v {
        for k in SECRET_KEYS {
            if m.remove(*k).is_some_and(|v| !v.is_null()) {
                notes.push(format!("`{k}` is set (not shown)"));
            }
        }
        if let Some(Value::Sequence(outs)) = m.get_mut("outputs") {
            for (i, o) in outs.iter_mut().enumerate() {
                if let Value::Mapping(o) = o {
                    if let Some(Value::Mapping(h)) = o.remove("headers") {
                        let names: Vec<String> = h
                            .keys()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect();
                        notes.push(format!(
                            "`outputs[{i}].headers` {} set (values not shown)",
                            names.join(", ")
                        ));
                    }
                }
            }
        }
    }
    let body = yaml_serde::to_string(&v).unwrap_or_default();
    let source = if origin == "built-in default" {
        "the built-in default".to_string()
    } else {
        format!("the built-in default overlaid by {origin}")
    };
    let mut out = format!(
        "# Effective configuration of token-sensor {}: {source}.\n",
        env!("CARGO_PKG_VERSION")
    );
    for n in &notes {
        out.push_str(&format!(
            "# Left out: {n}; restore it to use this file as is.\n"
        ));
    }
    out.push_str(&body);
    out
}

/// A basename as the kernel matches it (exe names, credential file names): non-empty,
/// without `/`. The error says what is wrong with `n`.
pub fn check_basename(n: &str) -> Result<(), String> {
    if n.is_empty() || n.contains('/') || n.contains('\0') {
        Err(format!("entry {n:?} must be a non-empty basename (no `/`)"))
    } else {
        Ok(())
    }
}

/// 1-based line of `key` (`a` or `a.b`) in YAML `text`, when the text sets it.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let is_key = |line: &str, k: &str| {
        let l = line.trim_start().trim_start_matches(['"', '\'']);
        l.strip_prefix(k).is_some_and(|r| {
            r.trim_start_matches(['"', '\''])
                .trim_start()
                .starts_with(':')
        })
    };
    let mut parts = key.split('.');
    let top = parts.next()?;
    let sub = parts.next();
    let mut in_top = false;
    for (i, line) in text.lines().enumerate() {
        let indented = line.starts_with([' ', '\t']);
        if !indented && !line.trim().is_empty() && !line.starts_with('#') {
            in_top = is_key(line, top);
            if in_top && sub.is_none() {
                return Some(i + 1);
            }
        } else if in_top && indented && sub.is_some_and(|s| is_key(line, s)) {
            return Some(i + 1);
        }
    }
    None
}

/// Shape check for user files: every key optional, unknown keys rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping of configuration keys")]
#[allow(dead_code)]
struct Partial {
    capture_bytes: Option<u32>,
    ring_buffer_bytes: Option<u32>,
    wakeup_bytes: Option<u32>,
    wakeup_interval_us: Option<u32>,
    capture_files: Option<CaptureFiles>,
    poll_interval_ms: Option<u64>,
    channel_capacity: Option<usize>,
    queue_bytes: Option<u32>,
    stats_interval_secs: Option<u64>,
    fingerprint_key: Option<String>,
    fingerprint_key_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    alert_window_secs: Option<u64>,
    scan_budget_ms: Option<u64>,
    metrics_listen: Option<String>,
    credential_files: Option<Vec<String>>,
    watch: Option<PartialWatch>,
    rule_files: Option<Vec<PathBuf>>,
    tls_uprobes: Option<bool>,
    tls_attach: Option<TlsAttach>,
    getenv_uprobes: Option<bool>,
    state_dir: Option<PathBuf>,
    state_max_bytes: Option<u64>,
    outputs: Option<Vec<crate::deliver::sinks::OutputConfig>>,
    revocation: Option<crate::revoke::RevocationConfig>,
}

/// Line (1-based) of the `index`-th `- ` item of the top-level block sequence `key:` in
/// `text`, for messages about one entry.
fn item_line(text: &str, key: &str, index: usize) -> Option<usize> {
    let mut lines = text.lines().enumerate();
    lines.find(|(_, l)| l.trim_end() == format!("{key}:"))?;
    let mut indent = None;
    let mut seen = 0;
    for (n, l) in lines {
        let body = l.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let ind = l.len() - body.len();
        if ind == 0 && !body.starts_with('-') {
            return None;
        }
        if body.starts_with("- ") || body == "-" {
            let first = *indent.get_or_insert(ind);
            if ind == first {
                if seen == index {
                    return Some(n + 1);
                }
                seen += 1;
            }
        }
    }
    None
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PartialWatch {
    cgroups: Option<Vec<PathBuf>>,
    exes: Option<Vec<String>>,
    pids: Option<Vec<u32>>,
}

fn merge(base: &mut yaml_serde::Value, over: yaml_serde::Value) {
    match (base, over) {
        (yaml_serde::Value::Mapping(b), yaml_serde::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        // An explicit null keeps the default.
        (_, yaml_serde::Value::Null) => {}
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_files_is_logs_unless_all() {
        assert_eq!(Config::builtin().capture_files, CaptureFiles::Logs);
        let c = Config::parse("capture_files: all\n", "t.yaml").unwrap();
        assert_eq!(c.capture_files, CaptureFiles::All);
        let e = Config::parse("capture_files: some\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture_files") || e.contains("some"), "{e}");
    }

    #[test]
    fn builtin_is_valid_and_sensible() {
        let c = Config::builtin();
        assert!(c.capture_bytes >= 4096);
        assert!(c.credential_files.iter().any(|f| f == ".git-credentials"));
        assert!(!c.watch.exes.is_empty());
    }

    #[test]
    fn overlay_changes_only_given_keys() {
        let c = Config::parse("capture_bytes: 8192\nwatch:\n  pids: [1]\n", "t.yaml").unwrap();
        assert_eq!(c.capture_bytes, 8192);
        assert_eq!(c.watch.pids, vec![1]);
        assert_eq!(c.ring_buffer_bytes, Config::builtin().ring_buffer_bytes);
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let e = Config::parse("capture_bytes: 8192\ncapture_bites: 1\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.yaml") && e.contains("capture_bites") && e.contains("line 2"),
            "{e}"
        );
    }

    fn temp(name: &str, content: &str) -> String {
        let d = std::env::temp_dir().join(format!("cfgtest-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    #[test]
    fn delivery_keys_parse_with_defaults() {
        let secret = temp("ok.secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
        let c = Config::parse(
            &format!(
                "state_dir: /tmp/x\noutputs:\n  - kind: stdout\n  - kind: file\n    path: /tmp/a.jsonl\n    format: ocsf\n  - kind: syslog\n    address: udp://127.0.0.1:514\n  - kind: http\n    url: https://splunk.example:8088/services/collector/event\n    format: hec\n    headers: {{ Authorization: \"Splunk ${{HEC_TOKEN}}\" }}\n  - kind: webhook\n    url: https://soar.example/hooks/token-leak\n    secret_file: {secret}\nrevocation:\n  mode: dry_run\n  github: {{ api_url: https://api.github.com }}\n  webhook: {{ url: https://revoke.example/, secret_file: {secret} }}\n"
            ),
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.outputs.len(), 5);
        assert_eq!(c.outputs[2].format(), crate::deliver::formats::Format::Cef);
        assert_eq!(c.revocation.mode, crate::deliver::RevocationMode::DryRun);
        assert_eq!(
            c.revocation.min_severity,
            crate::detect::rules::Severity::High
        );
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        let b = Config::builtin();
        assert!(b.outputs.is_empty() && b.revocation.mode == crate::deliver::RevocationMode::Off);
        assert_eq!(b.state_dir, PathBuf::from("/var/lib/token-sensor"));
    }

    #[test]
    fn malformed_outputs_name_key_and_position() {
        let nowh = temp("bad.secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
        let cases: Vec<(String, Vec<&str>)> = vec![
            ("outputs:\n  - kind: stdout\n  - kind: kinesis\n".into(), vec!["outputs[1].kind", "kinesis", "line 3"]),
            ("outputs:\n  - kind: http\n    url: ftp://x\n".into(), vec!["outputs[0]", "url", "ftp://x", "line 2"]),
            ("outputs:\n  - kind: stdout\n  - kind: http\n    format: hec\n".into(), vec!["outputs[1].url", "required", "line 3"]),
            ("outputs:\n  - kind: webhook\n    url: https://x/\n    secret_file: /nonexistent/w.secret\n".into(), vec!["outputs[0]", "secret_file", "/nonexistent/w.secret", "line 2"]),
            (format!("outputs:\n  - kind: stdout\n  - kind: webhook\n    url: https://x/\n    secret_file: {nowh}\n"), vec!["outputs[1]", "secret_file", "whsec_"]),
            ("outputs:\n  - kind: syslog\n    address: 127.0.0.1:514\n".into(), vec!["outputs[0]", "address", "udp://"]),
            ("outputs:\n  - kind: file\n    path: /tmp/a\n    bogus: 1\n".into(), vec!["outputs[0]", "bogus", "line"]),
            ("revocation:\n  mode: always\n".into(), vec!["revocation.mode", "always", "line 2"]),
            ("revocation:\n  webhook: { url: https://x/, secret_file: /nonexistent/r.secret }\n".into(), vec!["revocation.webhook", "secret_file", "line 2"]),
            ("revocation:\n  gitlab: { url: not-a-url }\n".into(), vec!["revocation.gitlab", "url", "line 2"]),
            ("state_max_bytes: 10\n".into(), vec!["state_max_bytes", "65536"]),
            ("outputs:\n  - kind: stdout\n  - kind: kafka\n    topic: alerts\n".into(), vec!["outputs[1].brokers", "required", "line 3"]),
            ("outputs:\n  - kind: kafka\n    brokers: [\"kafka://k1:9092\"]\n    topic: alerts\n".into(), vec!["outputs[0].brokers[0]", "kafka://k1:9092", "host:port", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n".into(), vec!["outputs[0].topic", "required", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: \"a b\"\n".into(), vec!["outputs[0].topic", "a b", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    format: hec\n".into(), vec!["outputs[0].format", "hec", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    url: https://x/\n".into(), vec!["outputs[0].url", "not used", "line 2"]),
            ("outputs:\n  - kind: http\n    url: https://x/\n    topic: t\n".into(), vec!["outputs[0].topic", "not used", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    sasl: { mechanism: gssapi, username: u, password_file: /x }\n".into(), vec!["outputs[0].sasl", "gssapi", "scram-sha-512", "line 5"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    sasl: { mechanism: scram-sha-512, username: u, password_file: /nonexistent/kafka.pw }\n".into(), vec!["outputs[0].sasl", "password_file", "/nonexistent/kafka.pw", "line 5"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    tls: { cert_file: /x.pem }\n".into(), vec!["outputs[0].tls.key_file", "required", "line 2"]),
            ("outputs:\n  - kind: kafka\n    brokers: [k1:9092]\n    topic: t\n    tls: { ca: /x.pem }\n".into(), vec!["outputs[0].tls", "unknown field `ca`", "line 5"]),
        ];
        for (text, want) in cases {
            let e = Config::parse(&text, "t.yaml").unwrap_err().to_string();
            assert!(e.contains("t.yaml"), "{e}");
            for w in want {
                assert!(e.contains(w), "`{w}` missing from: {e}\nfor:\n{text}");
            }
            assert!(
                !e.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "secret echoed: {e}"
            );
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::parse("ring_buffer_bytes: 5000\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ring_buffer_bytes") && e.contains("x.yaml"),
            "{e}"
        );
        let e = Config::parse("capture_bytes: \"lots\"\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capture_bytes"), "{e}");
        let e = Config::parse("watch:\n  exes: [\"/usr/bin/gh\"]\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("watch.exes"), "{e}");
    }

    #[test]
    fn range_errors_carry_the_line_and_messages_are_not_repeated() {
        let e = Config::parse(
            "# c\ncapture_bytes: 8192\nring_buffer_bytes: 5000\n",
            "x.yaml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("(line 3)"), "{text}");
        let e = Config::parse("watch:\n  pids: [1]\n  exes: [\"a/b\"]\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("watch.exes") && e.contains("(line 3)"), "{e}");
        // As `sensor` prints errors (`{:#}`, the chain): the parser's message once.
        let e = Config::parse("capture_bytes: [1]\n", "x.yaml").unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(e));
        let msg = chain.split("x.yaml: ").nth(1).unwrap();
        assert_eq!(chain.matches(msg).count(), 1, "{chain}");
        assert!(chain.contains("line 1"), "{chain}");
    }

    #[test]
    fn name_lists_fit_the_kernel_maps_and_cgroups_are_absolute() {
        let mut y = String::from("credential_files:\n");
        for i in 0..=sensor_common::MAX_NAMES {
            y.push_str(&format!("  - f{i}\n"));
        }
        let e = Config::parse(&y, "x.yaml").unwrap_err().to_string();
        assert!(
            e.contains("credential_files") && e.contains("at most 256"),
            "{e}"
        );
        // Repeats of one name take one entry.
        let y = format!("credential_files: [{}]\n", vec!["a"; 1000].join(", "));
        Config::parse(&y, "x.yaml").unwrap();
        let e = Config::parse("watch:\n  cgroups: [\"\"]\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("watch.cgroups") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn oversized_and_deeply_nested_files_are_refused_by_name() {
        let e = Config::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero") && e.contains("16 MiB"), "{e}");
        let e = Config::parse(&"[".repeat(100_000), "deep.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("deep.yaml") && e.contains("nest"), "{e}");
    }

    #[test]
    fn fingerprint_key_file_needs_mode_0600_and_excludes_the_inline_key() {
        use std::os::unix::fs::PermissionsExt;
        let key = "00112233445566778899aabbccddeeff0011223344556677";
        let path = temp("fp.key", &format!("{key}\n"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!("# fleet\nfingerprint_key_file: {path}\n");
        let e = Config::parse(&text, "k.yaml").unwrap_err().to_string();
        assert!(
            e.contains("k.yaml")
                && e.contains("fingerprint_key_file")
                && e.contains(&path)
                && e.contains("0644")
                && e.contains("line 2"),
            "{e}"
        );
        assert!(!e.contains(key), "key echoed: {e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let from_file = Config::parse(&text, "k.yaml").unwrap();
        let inline = Config::parse(&format!("fingerprint_key: {key}\n"), "i.yaml").unwrap();
        let fp = |c: &Config| {
            crate::redact::Fingerprinter::from_hex(c.fingerprint_key.as_deref().unwrap())
                .unwrap()
                .fingerprint(b"ghp_example")
        };
        assert_eq!(fp(&from_file), fp(&inline));
        let e = Config::parse(&format!("{text}fingerprint_key: {key}\n"), "k.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fingerprint_key_file") && e.contains("both"),
            "{e}"
        );
        let e = Config::parse("fingerprint_key_file: /nonexistent/fp.key\n", "k.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fingerprint_key_file") && e.contains("/nonexistent/fp.key"),
            "{e}"
        );
    }

    #[test]
    fn effective_yaml_is_a_valid_config_without_its_secrets() {
        let key = "00112233445566778899aabbccddeeff";
        let text = format!(
            "fingerprint_key: {key}\nlog_format: json\nwatch:\n  exes: [agent-x]\noutputs:\n  - kind: http\n    url: https://siem.example/ingest\n    headers: {{ Authorization: \"Bearer s3cr3t-hec\" }}\n"
        );
        let (cfg, yaml) = Config::parse_effective(&text, "e.yaml").unwrap();
        assert!(
            !yaml.contains(key) && !yaml.contains("s3cr3t-hec"),
            "{yaml}"
        );
        assert!(yaml.contains("# Left out: `fingerprint_key`"), "{yaml}");
        assert!(yaml.contains("Authorization"), "{yaml}");
        let (back, again) = Config::parse_effective(&yaml, "printed.yaml").unwrap();
        assert_eq!(back.watch.exes, cfg.watch.exes);
        assert_eq!(back.log_format, LogFormat::Json);
        assert_eq!(back.capture_bytes, cfg.capture_bytes);
        assert_eq!(back.revocation.mode, cfg.revocation.mode);
        assert_eq!(back.outputs.len(), 1);
        assert!(back.fingerprint_key.is_none() && back.outputs[0].headers.is_empty());
        // Printing the printed file changes nothing but the comments.
        let body = |y: &str| -> Vec<String> {
            y.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        assert_eq!(body(&again), body(&yaml));
        let builtin = Config::builtin_effective().1;
        Config::parse(&builtin, "builtin.yaml").unwrap();
    }
}
