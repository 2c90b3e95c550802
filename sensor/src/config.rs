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
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown/mistyped keys (location included).
    #[error("config {origin}: {source}")]
    Parse {
        /// File path or "built-in default".
        origin: String,
        /// serde_yaml's message with line and column.
        #[source]
        source: serde_yaml::Error,
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
    /// Seconds between metric lines on stderr (0 = only at exit).
    pub stats_interval_secs: u64,
    /// Hex HMAC key for fingerprints; random per run when absent.
    #[serde(default)]
    pub fingerprint_key: Option<String>,
    /// Basenames of credential files whose reads are captured.
    pub credential_files: Vec<String>,
    /// Scopes.
    #[serde(default)]
    pub watch: WatchConfig,
}

impl Config {
    /// The embedded default.
    pub fn builtin() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in default")
            .expect("the embedded default config is valid")
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        // Check the user's text first, typed, so errors carry its line numbers and key names.
        if !text.trim().is_empty() {
            let _: Partial = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                origin: origin.into(),
                source,
            })?;
        }
        // Overlay the file on the default so a file may set only what it changes.
        let mut base: serde_yaml::Value =
            serde_yaml::from_str(DEFAULT_CONFIG).map_err(|source| ConfigError::Parse {
                origin: "built-in default".into(),
                source,
            })?;
        let over: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
                origin: origin.into(),
                source,
            })?;
        merge(&mut base, over);
        let cfg: Config = serde_yaml::from_value(base).map_err(|source| ConfigError::Parse {
            origin: origin.into(),
            source,
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let inv = |key, problem: String| {
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
        }
        for n in &self.credential_files {
            if n.is_empty() || n.contains('/') {
                return inv(
                    "credential_files",
                    format!("entry {n:?} must be a non-empty basename"),
                );
            }
        }
        for n in &self.watch.exes {
            if n.is_empty() || n.contains('/') {
                return inv(
                    "watch.exes",
                    format!("entry {n:?} must be a non-empty basename"),
                );
            }
        }
        Ok(())
    }
}

/// Shape check for user files: every key optional, unknown keys rejected.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Partial {
    capture_bytes: Option<u32>,
    ring_buffer_bytes: Option<u32>,
    wakeup_bytes: Option<u32>,
    wakeup_interval_us: Option<u32>,
    capture_files: Option<CaptureFiles>,
    poll_interval_ms: Option<u64>,
    channel_capacity: Option<usize>,
    stats_interval_secs: Option<u64>,
    fingerprint_key: Option<String>,
    credential_files: Option<Vec<String>>,
    watch: Option<PartialWatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PartialWatch {
    cgroups: Option<Vec<PathBuf>>,
    exes: Option<Vec<String>>,
    pids: Option<Vec<u32>>,
}

fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
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
        (_, serde_yaml::Value::Null) => {}
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
}
