//! Live reload (SIGHUP): everything a new configuration and rule set need is read,
//! parsed, compiled and validated here, before the daemon changes anything; a failure
//! leaves the running configuration in place. The daemon then swaps the detection engine
//! (`arc-swap`), replaces the watch scopes and restarts the delivery pipeline's outputs
//! and the revocation worker against the same durable outbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::deliver::sinks::SinkError;
use crate::detect::rules::{Rule, RuleError};
use crate::detect::Engine;
use crate::redact::Fingerprinter;

/// Why a reload was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration file is unreadable or invalid (names file, key, line).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A rule file is unreadable or invalid, or the rules do not compile.
    #[error("rules: {0}")]
    Rules(#[from] RuleError),
    /// An output cannot be built from the new configuration.
    #[error("config {origin}: {error}")]
    Output {
        /// The configuration file.
        origin: String,
        /// What is wrong with which output.
        error: SinkError,
    },
    /// The new revocation settings are unusable.
    #[error("config {origin}: revocation: {problem}")]
    Revocation {
        /// The configuration file.
        origin: String,
        /// What is wrong.
        problem: String,
    },
}

/// A validated configuration and rule set, ready to apply.
pub struct Prepared {
    /// The new configuration (flag adjustments applied).
    pub cfg: Config,
    /// The new rules, as loaded.
    pub rules: Vec<Rule>,
    /// The compiled engine (same fingerprint key as the running one).
    pub engine: Arc<Engine>,
    /// Keys that changed but take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Reads `config` (the built-in default when `None`), `rule_files` and the configuration's
/// `rule_files`, applies `adjust`
/// (the command line's overrides), compiles the rules with the running fingerprint key
/// and checks that outputs and revocation can be built.
pub fn prepare(
    config: Option<&Path>,
    rule_files: &[PathBuf],
    adjust: impl Fn(&mut Config),
    running: &Config,
    fp: &Fingerprinter,
) -> Result<Prepared, ReloadError> {
    let mut cfg = match config {
        Some(p) => Config::load(p)?,
        None => Config::builtin(),
    };
    adjust(&mut cfg);
    let origin = config
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in default".into());
    let mut files = rule_files.to_vec();
    files.extend(cfg.rule_files.iter().cloned());
    let rules = crate::detect::rules::load_set(&files)?;
    let engine = Engine::new(rules.clone(), fp.clone())?;
    engine.validate()?;
    let outputs = if cfg.outputs.is_empty() {
        vec![crate::deliver::pipeline::default_output()]
    } else {
        cfg.outputs.clone()
    };
    for (i, o) in outputs.iter().enumerate() {
        crate::deliver::sinks::build(o, &format!("outputs[{i}]")).map_err(|error| {
            ReloadError::Output {
                origin: origin.clone(),
                error,
            }
        })?;
    }
    crate::revoke::Registry::new(&cfg.revocation).map_err(|problem| ReloadError::Revocation {
        origin: origin.clone(),
        problem,
    })?;
    let restart_needed = restart_only_changes(running, &cfg);
    Ok(Prepared {
        cfg,
        rules,
        engine: Arc::new(engine),
        restart_needed,
    })
}

/// The keys that differ between `old` and `new` and that a reload does not apply
/// (kernel settings, the fingerprint key that learned secrets depend on, listeners…).
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let d = |v: &dyn std::fmt::Debug| format!("{v:?}");
    let pairs: [(&'static str, String, String); 15] = [
        (
            "capture_bytes",
            d(&old.capture_bytes),
            d(&new.capture_bytes),
        ),
        (
            "ring_buffer_bytes",
            d(&old.ring_buffer_bytes),
            d(&new.ring_buffer_bytes),
        ),
        ("wakeup_bytes", d(&old.wakeup_bytes), d(&new.wakeup_bytes)),
        (
            "poll_interval_ms",
            d(&old.poll_interval_ms),
            d(&new.poll_interval_ms),
        ),
        (
            "channel_capacity",
            d(&old.channel_capacity),
            d(&new.channel_capacity),
        ),
        (
            "stats_interval_secs",
            d(&old.stats_interval_secs),
            d(&new.stats_interval_secs),
        ),
        (
            "fingerprint_key",
            d(&old.fingerprint_key),
            d(&new.fingerprint_key),
        ),
        (
            "alert_window_secs",
            d(&old.alert_window_secs),
            d(&new.alert_window_secs),
        ),
        (
            "metrics_listen",
            d(&old.metrics_listen),
            d(&new.metrics_listen),
        ),
        (
            "credential_files",
            d(&old.credential_files),
            d(&new.credential_files),
        ),
        ("tls_uprobes", d(&old.tls_uprobes), d(&new.tls_uprobes)),
        ("tls_attach", d(&old.tls_attach), d(&new.tls_attach)),
        (
            "getenv_uprobes",
            d(&old.getenv_uprobes),
            d(&new.getenv_uprobes),
        ),
        ("state_dir", d(&old.state_dir), d(&new.state_dir)),
        ("log_format", d(&old.log_format), d(&new.log_format)),
    ];
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(k, _, _)| k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("reloadtest-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn a_bad_file_is_rejected_by_name_and_line() {
        let running = Config::builtin();
        let fp = Fingerprinter::random();
        let bad = temp("bad.yaml", "watch:\n  exes: [a\ncapture_bytes: 1\n");
        let e = prepare(Some(&bad), &[], |_| {}, &running, &fp)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("line"), "{e}");
        let bad_rules = temp("bad-rules.yaml", "rules:\n  - id: x\n");
        let e = prepare(None, &[bad_rules], |_| {}, &running, &fp)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad-rules.yaml"), "{e}");
    }

    #[test]
    fn restart_only_keys_are_named() {
        let running = Config::builtin();
        let fp = Fingerprinter::random();
        let f = temp(
            "ok.yaml",
            "capture_bytes: 8192\nwatch:\n  exes: [agent-b]\nalert_window_secs: 60\n",
        );
        let p = prepare(Some(&f), &[], |_| {}, &running, &fp).unwrap();
        assert_eq!(p.restart_needed, vec!["capture_bytes", "alert_window_secs"]);
        assert_eq!(p.cfg.watch.exes, vec!["agent-b".to_string()]);
        assert!(!p.rules.is_empty());
    }
}
