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
        /// Also report the TLS hooks (or their absence) of this binary; repeatable.
        #[arg(long = "tls-binary", value_name = "PATH")]
        tls_binary: Vec<PathBuf>,
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
    /// List pending and failed deliveries and revocations in the outbox (redacted).
    Outbox {
        #[command(subcommand)]
        cmd: Option<OutboxCmd>,
        /// State directory (default: the configuration's `state_dir`).
        #[arg(long, global = true)]
        state_dir: Option<PathBuf>,
        /// Configuration file (YAML) overlaid on the built-in default.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// Print the listing as JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print the effective configuration (built-in default overlaid by --config).
    Config {
        /// Configuration file (YAML) overlaid on the built-in default.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OutboxCmd {
    /// Re-queue failed deliveries and failed revocations.
    Retry,
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
    #[arg(long = "watch-exe", value_name = "NAME", value_parser = basename)]
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
    /// Outbox and revocation-key directory (overrides the configuration's `state_dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// stderr for log lines, ignoring write errors: with stderr closed (`sensor run 2>&1 |
/// head`), tracing-subscriber reports a failed write with `eprintln!`, which panics.
struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `--watch-exe` takes what the configuration's `watch.exes` takes.
fn basename(s: &str) -> Result<String, String> {
    sensor::config::check_basename(s).map(|()| s.to_string())
}

fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    if std::env::args_os().nth(1).is_none_or(|a| a != "run") {
        // The offline commands (and help) are filters: when the reader of their output
        // goes away (`sensor config | head -1`) they end as `cat` does, by SIGPIPE,
        // instead of panicking in `println!`. The daemon keeps SIGPIPE ignored and
        // handles EPIPE itself.
        // SAFETY: restoring the default disposition of one signal, before any thread.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // Colour only for a person at a terminal who has not asked for none (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(|| QuietStderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SENSOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Doctor { json, tls_binary } => doctor(json, &tls_binary),
        Cmd::Scan {
            paths,
            format,
            rules,
            candidates,
            fingerprint_key,
        } => scan(paths, format, rules, candidates, fingerprint_key),
        Cmd::Rules { cmd } => rules_cmd(cmd),
        Cmd::Outbox {
            cmd,
            state_dir,
            config,
            json,
        } => outbox_cmd(cmd, state_dir, config, json),
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
            let _ = writeln!(std::io::stderr(), "sensor: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The daemon's stdout, one JSON line per event or alert. A failed write — its reader went
/// away (`sensor run | head -1`) or the disk is full — ends the daemon with exit 1 and a
/// message: nothing would see later findings. (Until an output with its own retry
/// queue takes over this edge.)
#[derive(Default)]
struct StdoutLines {
    error: Option<std::io::Error>,
}

impl StdoutLines {
    /// Writes one line (stdout is line-buffered: a closed pipe fails here); after a failure
    /// nothing more is written.
    fn line(&mut self, s: &str) {
        if self.error.is_none() {
            let mut out = std::io::stdout().lock();
            if let Err(e) = writeln!(out, "{s}").and_then(|()| out.flush()) {
                self.error = Some(e);
            }
        }
    }

    /// The first write error, if any.
    fn result(&mut self) -> std::io::Result<()> {
        self.error.take().map_or(Ok(()), Err)
    }
}

/// Why the daemon stopped on its own.
enum Failure<T> {
    /// The detector task ended (a failed `--print-events` write, or a panic).
    Detector(Result<std::io::Result<T>, tokio::task::JoinError>),
    /// An output is gone for good (the reader of stdout exited).
    Output(String),
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

fn load_rules(files: &[PathBuf]) -> anyhow::Result<Vec<sensor::detect::rules::Rule>> {
    Ok(sensor::detect::rules::load_set(files)?)
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
    for s in &report.skipped {
        eprintln!("sensor scan: skipped: {}", sensor::scan::escape_control(s));
    }
    for e in &report.errors {
        eprintln!("sensor scan: error: {}", sensor::scan::escape_control(e));
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
            let (rules, problems) = sensor::detect::rules::check_set(&files);
            let mut bad = problems.len();
            for e in &problems {
                eprintln!("error: {e}");
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
                eprintln!("{bad} problem{}", if bad == 1 { "" } else { "s" });
                Ok(1)
            }
        }
    }
}

fn outbox_cmd(
    cmd: Option<OutboxCmd>,
    state_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<u8> {
    use sensor::deliver::outbox::Outbox;
    let dir = match state_dir {
        Some(d) => d,
        None => load_config(config.as_ref())?.state_dir,
    };
    if !Outbox::file(&dir).exists() {
        anyhow::bail!("no outbox in {}", dir.display());
    }
    // Opened without outputs: nothing is discarded; the daemon may hold it open too.
    let ob = Outbox::open(&dir, u64::MAX, Vec::new())
        .with_context(|| format!("opening the outbox in {}", dir.display()))?;
    if let Some(OutboxCmd::Retry) = cmd {
        let (d, j) = ob.retry_failed()?;
        println!("re-queued {d} failed deliveries and {j} failed revocations");
        return Ok(0);
    }
    let l = ob.listing()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&l)?);
        return Ok(0);
    }
    print!("{}", sensor::deliver::outbox::render_listing(&l));
    Ok(0)
}

fn doctor(json: bool, tls_binaries: &[PathBuf]) -> anyhow::Result<u8> {
    let mut checks = sensor::kernel::doctor::run_checks(true);
    checks.extend(sensor::kernel::doctor::tls_checks(
        tls_binaries,
        &Config::builtin().watch.exes,
    ));
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
        if a.watch_cgroup.is_empty() && a.watch_exe.is_empty() && a.watch_pid.is_empty() {
            tracing::warn!("--only-flag-scopes without --watch-cgroup, --watch-exe or --watch-pid: nothing is watched");
        }
    }
    let exes: std::collections::HashSet<&String> =
        cfg.watch.exes.iter().chain(&a.watch_exe).collect();
    if exes.len() > sensor_common::MAX_NAMES as usize {
        anyhow::bail!(
            "{} exe names to watch (watch.exes and --watch-exe); the kernel map holds at most {}",
            exes.len(),
            sensor_common::MAX_NAMES
        );
    }
    if let Some(d) = &a.state_dir {
        cfg.state_dir = d.clone();
    }
    let fp = match &cfg.fingerprint_key {
        Some(k) => Fingerprinter::from_hex(k).context("fingerprint_key")?,
        None => {
            tracing::info!("no fingerprint_key configured: fingerprints are keyed per run and will not correlate across hosts");
            Fingerprinter::random()
        }
    };
    let rules = sensor::detect::rules::load_set(&a.rules).context("loading rules")?;
    // Privileges first (their message is the useful one), then delivery: a bad output
    // fails the start before any probe is attached.
    if let Some(msg) =
        sensor::kernel::doctor::first_failure(&sensor::kernel::doctor::run_checks(true))
    {
        return Err(anyhow::anyhow!(msg).context("starting the sensor"));
    }
    let pipeline = sensor::deliver::Pipeline::start(cfg.pipeline()).context("starting delivery")?;
    let revocation = sensor::revoke::worker::Revocation::start(&cfg.revocation, pipeline.handle())
        .map_err(|e| anyhow::anyhow!("starting revocation: {e}"))?;
    let pipeline = std::sync::Arc::new(pipeline);
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
        // SIGHUP (reload) and SIGUSR1 must not end the daemon: live reload is not there yet.
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
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
        let print_engine = engine.clone();
        let out = pipeline.clone();
        let mut printer = tokio::spawn(async move {
            let mut monitor = Monitor::new(engine, monitor_cfg).with_metrics(metrics.clone());
            let mut lines = StdoutLines::default();
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
                            // Nothing waits for a tick: a token is reported with its batch.
                            alerts.extend(monitor.flush_all());
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
                // Printed after the whole batch was handled: every secret learned from it
                // (an exec's environment) is redacted from all its lines.
                for ev in events.iter().filter(|_| print) {
                    lines.line(&sensor::verdict::printable::event_json(ev, &fp, &print_engine, &monitor).to_string());
                }
                for a in alerts {
                    out.submit(&a);
                }
                lines.result()?;
            }
            for a in monitor.finish() {
                out.submit(&a);
            }
            // What was judged and not alerted (at the issuer, internal, repeats).
            Ok::<_, std::io::Error>(monitor.counts)
        });
        let failed = {
            let closed = pipeline.closed();
            tokio::pin!(closed);
            loop {
                tokio::select! {
                    _ = int.recv() => break None,
                    _ = term.recv() => break None,
                    _ = hup.recv() => tracing::warn!("SIGHUP: reloading rules and scopes is not supported yet; restart the sensor to apply changes"),
                    _ = usr1.recv() => tracing::info!("SIGUSR1 ignored"),
                    done = &mut printer => break Some(Failure::Detector(done)),
                    why = &mut closed => break Some(Failure::Output(why)),
                }
            }
        };
        match &failed {
            None => tracing::info!("signal received: detaching probes"),
            Some(Failure::Detector(Ok(Err(e)))) => tracing::error!(
                "writing to stdout failed ({e}): its reader has gone; stopping"
            ),
            Some(Failure::Detector(Ok(Ok(_)))) => tracing::error!("the detector stopped; stopping"),
            Some(Failure::Detector(Err(e))) => tracing::error!("the detector failed ({e}); stopping"),
            Some(Failure::Output(why)) => tracing::error!(
                "{why}: findings can no longer be delivered there; stopping (undelivered alerts stay in the outbox for the next run)"
            ),
        }
        sensor::ops::notify::stopping();
        let stats = sensor.shutdown().await;
        let stopped_by_failure = failed.is_some();
        let verdicts = match failed {
            Some(Failure::Detector(done)) => done.ok().and_then(|r| r.ok()),
            _ => match tokio::time::timeout(std::time::Duration::from_secs(2), printer).await {
                Ok(Ok(Ok(c))) => Some(c),
                _ => None,
            },
        };
        let delivery = match std::sync::Arc::try_unwrap(pipeline) {
            Ok(p) => {
                let d = tokio::task::spawn_blocking(move || p.shutdown(std::time::Duration::from_secs(3))).await?;
                serde_json::to_value(d)?
            }
            Err(_) => serde_json::Value::Null,
        };
        revocation.join(std::time::Duration::from_secs(3));
        // Not eprintln!: with stderr closed (`sensor run 2>&1 | head`) it would panic.
        let _ = writeln!(
            std::io::stderr(),
            "{}",
            serde_json::json!({"type": "stats", "stats": stats, "verdicts": verdicts, "delivery": delivery})
        );
        if stats.kernel_ringbuf_full > 0 || stats.decode_errors > 0 {
            tracing::warn!(ringbuf_full = stats.kernel_ringbuf_full, decode_errors = stats.decode_errors, "events were lost during this run");
        }
        if stopped_by_failure {
            return Ok(1);
        }
        Ok::<u8, anyhow::Error>(0)
    })
}
