//! `sensor`: the command-line edge. Parses flags, sets up logging to stderr, and runs the
//! pipeline or one of the offline subcommands. Errors become one line on stderr and a
//! non-zero exit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sensor::config::{Config, LogFormat};
use sensor::deliver::record::HostInfo;
use sensor::detect::Engine;
use sensor::redact::Fingerprinter;
use sensor::sensor::{Sensor, WatchArgs};
use sensor::verdict::monitor::Monitor;

/// eBPF host sensor for token exfiltration.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log line format on stderr (default: the configuration's `log_format`, else text).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
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
    /// Print the effective configuration (built-in default overlaid by --config) as YAML
    /// that is itself a valid --config file (secret values left out, named in comments).
    Config {
        /// Configuration file (YAML) overlaid on the built-in default.
        #[arg(long, conflicts_with = "check")]
        config: Option<PathBuf>,
        /// Only validate this configuration file: exit 0 when valid, 2 with the error
        /// (file, key, line) otherwise.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
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
    let cli = Cli::parse();
    // Colour only for a person at a terminal who has not asked for none (no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // The Kafka client logs every internal reconnect attempt; the output's worker already
    // reports each failed delivery with its cause.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SENSOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rskafka=error"));
    let log_format = cli.log_format.unwrap_or_else(|| match &cli.cmd {
        // The daemon's configuration may ask for JSON; an unreadable one is reported
        // by `run` itself.
        Cmd::Run(a) => a
            .config
            .as_ref()
            .and_then(|p| Config::load(p).ok())
            .map_or(LogFormat::Text, |c| c.log_format),
        _ => LogFormat::Text,
    });
    match log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_writer(|| QuietStderr)
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(|| QuietStderr)
            .with_ansi(colour)
            .with_env_filter(filter)
            .init(),
    }
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
        Cmd::Config { config, check } => config_cmd(config, check),
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

/// `sensor config [--config F]` and `sensor config --check F`.
fn config_cmd(config: Option<PathBuf>, check: Option<PathBuf>) -> anyhow::Result<u8> {
    if let Some(f) = check {
        Config::load(&f)?;
        println!("{}: ok", f.display());
        return Ok(0);
    }
    // The fingerprint key lets its holder confirm guessed secrets: never printed.
    let (_, yaml) = match &config {
        Some(p) => Config::load_effective(p)?,
        None => Config::builtin_effective(),
    };
    print!("{yaml}");
    Ok(0)
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

/// The command line's changes to a loaded configuration (also applied on reload).
fn adjust(a: &RunArgs, cfg: &mut Config) {
    if a.only_flag_scopes {
        cfg.watch = Default::default();
    }
    if let Some(d) = &a.state_dir {
        cfg.state_dir = d.clone();
    }
}

/// The watch lists in force: the configuration's and the flags'.
fn combined_watch(a: &RunArgs, cfg: &Config) -> WatchArgs {
    let mut w = WatchArgs {
        cgroups: cfg.watch.cgroups.clone(),
        exes: cfg.watch.exes.clone(),
        pids: cfg.watch.pids.clone(),
    };
    w.cgroups.extend(a.watch_cgroup.iter().cloned());
    w.exes.extend(a.watch_exe.iter().cloned());
    w.pids.extend(a.watch_pid.iter().copied());
    w.exes.sort();
    w.exes.dedup();
    w
}

/// The kernel map holds at most `MAX_NAMES` exe names.
fn check_exe_count(a: &RunArgs, cfg: &Config) -> anyhow::Result<()> {
    let exes: std::collections::HashSet<&String> =
        cfg.watch.exes.iter().chain(&a.watch_exe).collect();
    if exes.len() > sensor_common::MAX_NAMES as usize {
        anyhow::bail!(
            "{} exe names to watch (watch.exes and --watch-exe); the kernel map holds at most {}",
            exes.len(),
            sensor_common::MAX_NAMES
        );
    }
    Ok(())
}

/// Starts the delivery pipeline, retrying while a just-stopped one still holds the state
/// directory's lock (a reload).
async fn start_pipeline(
    cfg: &Config,
    host: &HostInfo,
) -> Result<sensor::deliver::Pipeline, sensor::deliver::DeliverError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match sensor::deliver::Pipeline::start_as(cfg.pipeline(), host.clone()) {
            Err(sensor::deliver::DeliverError::Locked(_))
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            r => return r,
        }
    }
}

/// The delivery pipeline, swapped whole by a reload; `None` while it restarts (the
/// detector holds its alerts meanwhile).
type PipelineSlot = arc_swap::ArcSwapOption<sensor::deliver::Pipeline>;

/// Stops the current pipeline (and the revocation worker that uses it): its alerts are
/// committed to the outbox, outputs get a short grace period.
async fn stop_pipeline(
    slot: &PipelineSlot,
    revocation: Option<sensor::revoke::worker::Revocation>,
    grace: std::time::Duration,
) -> Option<sensor::deliver::pipeline::DeliveryStats> {
    let mut p = slot.swap(None)?;
    // The detector may hold a reference for the instant of a submit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let p = loop {
        match std::sync::Arc::try_unwrap(p) {
            Ok(p) => break p,
            Err(back) if std::time::Instant::now() < deadline => {
                p = back;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(_) => return None,
        }
    };
    let stats = tokio::task::spawn_blocking(move || p.shutdown(grace))
        .await
        .ok();
    if let Some(r) = revocation {
        tokio::task::spawn_blocking(move || r.join(std::time::Duration::from_secs(3)))
            .await
            .ok();
    }
    stats
}

/// What the daemon runs with now, replaced by a successful reload.
struct Live {
    cfg: Config,
    revocation: Option<sensor::revoke::worker::Revocation>,
}

/// SIGHUP: prepares the new configuration and rules fully, then applies them (scopes,
/// engine, outputs and revocation). A failure before applying leaves everything as is.
async fn reload(
    a: &RunArgs,
    live: &mut Live,
    fp: &Fingerprinter,
    sensor: &Sensor,
    engine: &arc_swap::ArcSwap<Engine>,
    slot: &PipelineSlot,
) {
    let origin = a
        .config
        .as_ref()
        .map_or("the built-in default".to_string(), |p| {
            p.display().to_string()
        });
    tracing::info!(config = %origin, rule_files = a.rules.len(), "SIGHUP: reloading");
    let prepared = tokio::task::block_in_place(|| {
        let p = sensor::ops::reload::prepare(
            a.config.as_deref(),
            &a.rules,
            |c| adjust(a, c),
            &live.cfg,
            fp,
        )?;
        check_exe_count(a, &p.cfg).map_err(|e| {
            sensor::ops::reload::ReloadError::Config(sensor::config::ConfigError::Invalid {
                origin: origin.clone(),
                key: "watch.exes",
                problem: e.to_string(),
            })
        })?;
        Ok::<_, sensor::ops::reload::ReloadError>(p)
    });
    let p = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("reload rejected, the running configuration and rules stay: {e}");
            return;
        }
    };
    let watch = combined_watch(a, &p.cfg);
    if let Err(e) = sensor.rescope(&watch) {
        tracing::error!("reload rejected, the running configuration and rules stay: {e}");
        return;
    }
    let host = HostInfo::detect().with_rules(&p.rules);
    engine.store(p.engine.clone());
    stop_pipeline(
        slot,
        live.revocation.take(),
        std::time::Duration::from_secs(2),
    )
    .await;
    let (cfg, pipeline) = match start_pipeline(&p.cfg, &host).await {
        Ok(new) => (p.cfg, new),
        Err(e) => {
            tracing::error!("reload: starting delivery with the new outputs failed ({e}); restarting the previous outputs");
            match start_pipeline(&live.cfg, &host).await {
                Ok(old) => (live.cfg.clone(), old),
                Err(e) => {
                    tracing::error!("reload: restarting the previous outputs failed too ({e}): alerts are held in memory until the next reload");
                    live.cfg = p.cfg;
                    return;
                }
            }
        }
    };
    match sensor::revoke::worker::Revocation::start(&cfg.revocation, pipeline.handle()) {
        Ok(r) => live.revocation = Some(r),
        Err(e) => tracing::error!("reload: starting revocation failed: {e}"),
    }
    slot.store(Some(std::sync::Arc::new(pipeline)));
    tracing::info!(
        rules = p.engine.len(),
        rules_version = %host.rules_version,
        exes = watch.exes.len(),
        cgroups = watch.cgroups.len(),
        pids = watch.pids.len(),
        outputs = cfg.outputs.len().max(1),
        revocation = ?cfg.revocation.mode,
        "configuration reloaded: rules, watch scopes, outputs and revocation settings applied (outputs and revocation restarted on the same outbox; learned secrets kept)"
    );
    // The old engine and outputs are gone: hand their memory back.
    sensor::host::memory::release_free_heap();
    if !p.restart_needed.is_empty() {
        tracing::warn!(
            keys = %p.restart_needed.join(", "),
            "reload: these keys changed but take effect only after a restart"
        );
    }
    live.cfg = cfg;
}

/// What ended the daemon's main loop.
enum Wake {
    Stop,
    Reload,
    Usr1,
    Detector(
        Result<std::io::Result<sensor::verdict::monitor::MonitorCounts>, tokio::task::JoinError>,
    ),
    Output(String),
}

fn run(a: RunArgs) -> anyhow::Result<u8> {
    let mut cfg = load_config(a.config.as_ref())?;
    adjust(&a, &mut cfg);
    if a.only_flag_scopes
        && a.watch_cgroup.is_empty()
        && a.watch_exe.is_empty()
        && a.watch_pid.is_empty()
    {
        tracing::warn!("--only-flag-scopes without --watch-cgroup, --watch-exe or --watch-pid: nothing is watched");
    }
    check_exe_count(&a, &cfg)?;
    let fp = match &cfg.fingerprint_key {
        Some(k) => Fingerprinter::from_hex(k).context("fingerprint_key")?,
        None => {
            tracing::info!("no fingerprint_key configured: fingerprints are keyed per run and will not correlate across hosts");
            Fingerprinter::random()
        }
    };
    let rule_files: Vec<PathBuf> = a.rules.iter().chain(&cfg.rule_files).cloned().collect();
    let rules = sensor::detect::rules::load_set(&rule_files).context("loading rules")?;
    // Privileges first (their message is the useful one), then delivery: a bad output
    // fails the start before any probe is attached.
    if let Some(msg) =
        sensor::kernel::doctor::first_failure(&sensor::kernel::doctor::run_checks(true))
    {
        return Err(anyhow::anyhow!(msg).context("starting the sensor"));
    }
    let host = HostInfo::detect().with_rules(&rules);
    let pipeline = sensor::deliver::Pipeline::start_as(cfg.pipeline(), host.clone())
        .context("starting delivery")?;
    let revocation = sensor::revoke::worker::Revocation::start(&cfg.revocation, pipeline.handle())
        .map_err(|e| anyhow::anyhow!("starting revocation: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The engine is ready before the probes attach, so "sensor ready" means detecting.
    let engine = std::sync::Arc::new(Engine::new(rules, fp.clone()).context("compiling rules")?);
    engine.validate().context("compiling rules")?;
    tracing::info!(rules = engine.len(), rules_version = %host.rules_version, hostname = %host.hostname, "detection engine ready");
    rt.block_on(async move {
        // Signals first: a SIGTERM during start-up must still detach cleanly.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        let flags = WatchArgs { cgroups: a.watch_cgroup.clone(), exes: a.watch_exe.clone(), pids: a.watch_pid.clone() };
        // A few batches: the byte-bounded queue before the tracker is where floods wait.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<sensor::state::events::SensorEvent>>(4);
        let sensor = Sensor::start(&cfg, &flags, tx).await.context("starting the sensor")?;
        tracing::info!(
            pids = ?flags.pids, exes = cfg.watch.exes.len() + flags.exes.len(), cgroups = flags.cgroups.len() + cfg.watch.cgroups.len(),
            "sensor ready: probes attached"
        );
        let metrics = sensor.metrics();
        let loss = sensor.loss_stats();
        let _metrics_server = match &cfg.metrics_listen {
            Some(addr) => Some(sensor::ops::metrics::serve(addr, metrics.clone()).await?),
            None => None,
        };
        sensor::ops::notify::ready();
        // Start-up's transient memory (the kernel's BTF parsed twice by the loader, rule
        // validation) goes back to the kernel.
        sensor::host::memory::release_free_heap();
        let print = a.print_events;
        let monitor_cfg = sensor::verdict::monitor::MonitorConfig {
            credential_names: cfg.credential_files.clone(),
            dedup_window: std::time::Duration::from_secs(cfg.alert_window_secs),
            scan_budget: std::time::Duration::from_millis(cfg.scan_budget_ms),
        };
        // The engine and the pipeline in force: a reload swaps them.
        let live_engine = std::sync::Arc::new(arc_swap::ArcSwap::new(engine.clone()));
        let slot: std::sync::Arc<PipelineSlot> =
            std::sync::Arc::new(arc_swap::ArcSwapOption::from_pointee(pipeline));
        let printer_engine = live_engine.clone();
        let out = slot.clone();
        let fp2 = fp.clone();
        let mut printer = tokio::spawn(async move {
            let mut monitor = Monitor::new(engine, monitor_cfg).with_metrics(metrics.clone());
            let mut lines = StdoutLines::default();
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
            let mut last_lost = 0u64;
            // Alerts raised while a reload restarts the pipeline.
            let mut held: Vec<sensor::verdict::alert::Alert> = Vec::new();
            loop {
                let current = printer_engine.load_full();
                if !std::sync::Arc::ptr_eq(&current, monitor.engine()) {
                    monitor.set_engine(current);
                }
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
                    _ = tick.tick() => {
                        let mut alerts = monitor.tick();
                        // Lost kernel records: announced on the busiest workspace.
                        let lost = loss.lost();
                        if lost > last_lost {
                            let s = loss.snapshot();
                            let causes = format!("ring buffer full {}, in-flight table full {}, undecodable {}", s.kernel_ringbuf_full, s.kernel_inflight_full, s.decode_errors);
                            alerts.extend(monitor.events_lost(lost - last_lost, &causes));
                            last_lost = lost;
                        }
                        (Vec::new(), alerts)
                    }
                };
                // Printed after the whole batch was handled: every secret learned from it
                // (an exec's environment) is redacted from all its lines.
                for ev in events.iter().filter(|_| print) {
                    lines.line(&sensor::verdict::printable::event_json(ev, &fp2, monitor.engine(), &monitor).to_string());
                }
                held.extend(alerts);
                if !held.is_empty() {
                    if let Some(p) = out.load_full() {
                        for a in held.drain(..) {
                            p.submit(&a);
                        }
                    }
                }
                lines.result()?;
            }
            held.extend(monitor.finish());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !held.is_empty() && std::time::Instant::now() < deadline {
                match out.load_full() {
                    Some(p) => {
                        for a in held.drain(..) {
                            p.submit(&a);
                        }
                    }
                    None => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
            // What was judged and not alerted (at the issuer, internal, repeats).
            Ok::<_, std::io::Error>(monitor.counts)
        });
        let mut live = Live { cfg: cfg.clone(), revocation: Some(revocation) };
        let failed = loop {
            let current = slot.load_full();
            let wake = {
                let closed = async {
                    match &current {
                        Some(p) => p.closed().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = int.recv() => Wake::Stop,
                    _ = term.recv() => Wake::Stop,
                    _ = hup.recv() => Wake::Reload,
                    _ = usr1.recv() => Wake::Usr1,
                    done = &mut printer => Wake::Detector(done),
                    why = closed => Wake::Output(why),
                }
            };
            drop(current);
            match wake {
                Wake::Stop => break None,
                Wake::Reload => reload(&a, &mut live, &fp, &sensor, &live_engine, &slot).await,
                Wake::Usr1 => tracing::info!("SIGUSR1 ignored"),
                Wake::Detector(done) => break Some(Failure::Detector(done)),
                Wake::Output(why) => break Some(Failure::Output(why)),
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
        let t0 = std::time::Instant::now();
        let stats = sensor.shutdown().await;
        tracing::debug!(took = ?t0.elapsed(), "probes detached");
        let stopped_by_failure = failed.is_some();
        let verdicts = match failed {
            Some(Failure::Detector(done)) => done.ok().and_then(|r| r.ok()),
            _ => match tokio::time::timeout(std::time::Duration::from_secs(2), printer).await {
                Ok(Ok(Ok(c))) => Some(c),
                _ => None,
            },
        };
        tracing::debug!(took = ?t0.elapsed(), "detector finished");
        let delivery = match stop_pipeline(&slot, live.revocation.take(), std::time::Duration::from_secs(3)).await {
            Some(d) => serde_json::to_value(d)?,
            None => serde_json::Value::Null,
        };
        tracing::debug!(took = ?t0.elapsed(), "delivery and revocation stopped");
        // Not `eprintln!`: with stderr closed it would panic at the very end.
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
