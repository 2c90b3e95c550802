//! `sensor`: the command-line edge. Parses flags, sets up logging to stderr, and runs the
//! pipeline or one of the offline subcommands. Errors become one line on stderr and a
//! non-zero exit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sensor::config::Config;
use sensor::detect::Engine;
use sensor::redact::Fingerprinter;
use sensor::sensor::{Sensor, WatchArgs};
use sensor::verdict::monitor::Monitor;

/// eBPF host sensor for token exfiltration.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Attach the probes and watch scoped processes (needs root).
    Run(RunArgs),
    /// Check the kernel features and privileges the probes need.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Scan files, directories (recursively) or stdin (`-`) for tokens, offline.
    Scan {
        /// Files, directories, or `-` for stdin.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: sensor::scan::Format,
        /// Extra rule files or directories (sensor YAML, Kingfisher YAML, gitleaks TOML).
        #[arg(long = "rules", value_name = "PATH")]
        rules: Vec<PathBuf>,
        /// Also report checksum failures as low-confidence candidates.
        #[arg(long)]
        candidates: bool,
        /// Hex HMAC key for fingerprints (random per run otherwise).
        #[arg(long, env = "SENSOR_FINGERPRINT_KEY")]
        fingerprint_key: Option<String>,
    },
    /// Rule tools.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Print the effective configuration (built-in default overlaid by --config).
    Config {
        /// Configuration file (YAML) overlaid on the built-in default.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Validate rule files (and the built-in rules) against their own examples.
    Check {
        /// Rule files or directories (sensor YAML, Kingfisher YAML, gitleaks TOML) checked
        /// with the built-in rules; none = only the built-in rules.
        files: Vec<PathBuf>,
    },
    /// List the rules.
    List,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (YAML) overlaid on the built-in default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Watch every process in this cgroup (v2 or v1 directory) and its sub-cgroups.
    #[arg(long = "watch-cgroup", value_name = "PATH")]
    watch_cgroup: Vec<PathBuf>,
    /// Watch every process exec'ing this basename, and its descendants.
    #[arg(long = "watch-exe", value_name = "NAME")]
    watch_exe: Vec<String>,
    /// Watch this process and all its future descendants.
    #[arg(long = "watch-pid", value_name = "PID")]
    watch_pid: Vec<u32>,
    /// Print decoded events as JSON lines on stdout (payloads as length + keyed fingerprint).
    #[arg(long)]
    print_events: bool,
    /// Use only the flags' scopes, not the configuration's `watch` lists.
    #[arg(long)]
    only_flag_scopes: bool,
    /// Extra rule files or directories (sensor YAML, Kingfisher YAML, gitleaks TOML)
    /// added to the built-in rules.
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SENSOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Doctor { json } => doctor(json),
        Cmd::Scan {
            paths,
            format,
            rules,
            candidates,
            fingerprint_key,
        } => scan(paths, format, rules, candidates, fingerprint_key),
        Cmd::Rules { cmd } => rules_cmd(cmd),
        Cmd::Config { config } => load_config(config.as_ref()).map(|mut c| {
            // The fingerprint key lets its holder confirm guessed secrets: never print it.
            if c.fingerprint_key.is_some() {
                c.fingerprint_key = Some("<set, not shown>".into());
            }
            println!("{c:#?}");
            0
        }),
    };
    match res {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("sensor: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::builtin(),
    })
}

/// The built-in rules plus those of `paths` (files or directories; sensor YAML, Kingfisher
/// YAML, gitleaks TOML). Imported rules that cannot be honoured are skipped with a warning.
fn load_rules(paths: &[PathBuf]) -> anyhow::Result<Vec<sensor::detect::rules::Rule>> {
    let mut rules = sensor::detect::rules::builtin();
    for p in paths {
        let loaded = sensor::detect::import::load_path(p)
            .with_context(|| format!("loading rules {}", p.display()))?;
        for e in &loaded.rejected {
            tracing::warn!("rule skipped: {e}");
        }
        rules.extend(loaded.rules);
    }
    Ok(rules)
}

fn scan(
    paths: Vec<String>,
    format: sensor::scan::Format,
    rules: Vec<PathBuf>,
    candidates: bool,
    key: Option<String>,
) -> anyhow::Result<u8> {
    let fp = match key {
        Some(k) => Fingerprinter::from_hex(&k).context("--fingerprint-key")?,
        None => Fingerprinter::random(),
    };
    let engine = Engine::new(load_rules(&rules)?, fp)?;
    let opts = sensor::detect::ScanOptions {
        decode: true,
        candidates,
    };
    let report = sensor::scan::scan(&engine, &paths, opts, true);
    let stdout = std::io::stdout();
    sensor::scan::write(&report, format, &engine, &mut stdout.lock())?;
    for e in &report.errors {
        eprintln!("sensor scan: error: {e}");
    }
    Ok(if !report.errors.is_empty() {
        2
    } else if report.findings.is_empty() {
        0
    } else {
        1
    })
}

fn rules_cmd(cmd: RulesCmd) -> anyhow::Result<u8> {
    match cmd {
        RulesCmd::List => {
            for r in sensor::detect::rules::builtin() {
                println!(
                    "{:<36} {:<12} {:<9} {}",
                    r.id,
                    r.provider,
                    format!("{:?}", r.severity).to_lowercase(),
                    r.name
                );
            }
            Ok(0)
        }
        RulesCmd::Check { files } => {
            let mut rules = sensor::detect::rules::builtin_checked()?;
            let mut bad = 0;
            for f in &files {
                match sensor::detect::import::load_path(f) {
                    Ok(l) => {
                        for e in &l.rejected {
                            eprintln!("error: {e}");
                        }
                        bad += l.rejected.len();
                        rules.extend(l.rules);
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        bad += 1;
                    }
                }
            }
            let problems = sensor::detect::check::check_examples(&rules);
            for p in &problems {
                eprintln!("error: rule `{}`: {}", p.rule, p.message);
            }
            bad += problems.len();
            if bad == 0 {
                println!("{} rules ok", rules.len());
                Ok(0)
            } else {
                eprintln!("{bad} problems");
                Ok(1)
            }
        }
    }
}

fn doctor(json: bool) -> anyhow::Result<u8> {
    let checks = sensor::kernel::doctor::run_checks(true);
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            println!(
                "{} {:<11} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
    }
    Ok(if checks.iter().all(|c| c.ok) { 0 } else { 1 })
}

fn run(a: RunArgs) -> anyhow::Result<u8> {
    let mut cfg = load_config(a.config.as_ref())?;
    if a.only_flag_scopes {
        cfg.watch = Default::default();
    }
    let fp = match &cfg.fingerprint_key {
        Some(k) => Fingerprinter::from_hex(k).context("fingerprint_key")?,
        None => {
            tracing::info!("no fingerprint_key configured: fingerprints are keyed per run and will not correlate across hosts");
            Fingerprinter::random()
        }
    };
    let rules = load_rules(&a.rules)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The engine is ready before the probes attach, so "sensor ready" means detecting.
    let engine = std::sync::Arc::new(Engine::new(rules, fp.clone()).context("compiling rules")?);
    engine.prepare().context("compiling rules")?;
    tracing::info!(rules = engine.len(), "detection engine ready");
    rt.block_on(async move {
        // Signals first: a SIGTERM during start-up must still detach cleanly.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let watch = WatchArgs { cgroups: a.watch_cgroup, exes: a.watch_exe, pids: a.watch_pid };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<sensor::state::events::SensorEvent>>(64);
        let sensor = Sensor::start(&cfg, &watch, tx).await.context("starting the sensor")?;
        tracing::info!(
            pids = ?watch.pids, exes = cfg.watch.exes.len() + watch.exes.len(), cgroups = watch.cgroups.len() + cfg.watch.cgroups.len(),
            "sensor ready: probes attached"
        );
        let metrics = sensor.metrics();
        let _metrics_server = match &cfg.metrics_listen {
            Some(addr) => Some(sensor::ops::metrics::serve(addr, metrics.clone()).await?),
            None => None,
        };
        sensor::ops::notify::ready();
        let print = a.print_events;
        let monitor_cfg = sensor::verdict::monitor::MonitorConfig {
            credential_names: cfg.credential_files.clone(),
            dedup_window: std::time::Duration::from_secs(cfg.alert_window_secs),
        };
        let printer = tokio::spawn(async move {
            let mut monitor = Monitor::new(engine, monitor_cfg).with_metrics(metrics.clone());
            let stdout = std::io::stdout();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
            loop {
                let (events, alerts) = tokio::select! {
                    batch = rx.recv() => match batch {
                        Some(batch) => {
                            let cpu = thread_cpu_seconds();
                            let mut alerts = Vec::new();
                            for ev in &batch {
                                alerts.extend(monitor.handle(ev));
                            }
                            metrics.detector_cpu_seconds.inc_by(thread_cpu_seconds() - cpu);
                            if let Some(last) = batch.last() {
                                let lag = std::time::SystemTime::now().duration_since(last.time).unwrap_or_default();
                                metrics.detector_lag_seconds.set(lag.as_secs_f64());
                            }
                            (batch, alerts)
                        }
                        None => break,
                    },
                    _ = tick.tick() => (Vec::new(), monitor.tick()),
                };
                let mut lock = stdout.lock();
                for ev in events.iter().filter(|_| print) {
                    let mut j = ev.to_json(&fp);
                    let p = monitor.redact_process(&ev.process);
                    if !std::sync::Arc::ptr_eq(&p, &ev.process) {
                        j["process"] = serde_json::to_value(&*p).unwrap_or_default();
                        if j.get("argv").is_some() {
                            j["argv"] = serde_json::to_value(&p.argv).unwrap_or_default();
                        }
                    }
                    let _ = writeln!(lock, "{j}");
                }
                for a in alerts {
                    match serde_json::to_string(&a) {
                        Ok(j) => {
                            let _ = writeln!(lock, "{j}");
                        }
                        Err(e) => tracing::error!("serializing an alert: {e}"),
                    }
                }
                let _ = lock.flush();
            }
            let mut lock = stdout.lock();
            for a in monitor.finish() {
                if let Ok(j) = serde_json::to_string(&a) {
                    let _ = writeln!(lock, "{j}");
                }
            }
            let _ = lock.flush();
        });
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received: detaching probes");
        sensor::ops::notify::stopping();
        let stats = sensor.shutdown().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), printer).await;
        eprintln!("{}", serde_json::json!({"type": "stats", "stats": stats}));
        if stats.kernel_ringbuf_full > 0 || stats.decode_errors > 0 {
            tracing::warn!(ringbuf_full = stats.kernel_ringbuf_full, decode_errors = stats.decode_errors, "events were lost during this run");
        }
        Ok::<u8, anyhow::Error>(0)
    })
}
