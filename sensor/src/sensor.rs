//! The running pipeline: probes → ring-buffer reader (AsyncFd + timer drain) → bounded
//! channel → tracker → enriched events to a consumer. [`Sensor::start`] is what `sensor run`
//! and the integration tests use; dropping the returned [`Sensor`] detaches the probes.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::kernel::probes::{ExitHook, ProbeError, ProbeSettings, Probes};
use crate::kernel::reader::{read_ring, BATCH};
use crate::kernel::scope::{Scope, ScopeError};
use crate::ops::metrics::Metrics;
use crate::ops::stats::{Stats, StatsSnapshot, EVENT_KINDS};
use crate::state::events::SensorEvent;
use crate::state::Tracker;

/// Seconds between returns of the heap's free memory to the kernel: bursts (a thousand
/// watched processes starting, a flood) leave freed blocks behind that glibc keeps
/// resident otherwise (~10 MB after 1000 starts). A trim took 0.2–2.3 ms with 1000
/// watched processes.
const TRIM_EVERY_SECS: u64 = 10;

/// Errors of starting the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A kernel feature or privilege is missing (named in the message).
    #[error("{0}")]
    Preflight(String),
    /// Loading or attaching probes failed.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// A watch target is invalid.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The ring buffer could not be registered with the runtime.
    #[error("registering the ring buffer with epoll: {0}")]
    Io(#[from] std::io::Error),
}

/// What to watch, beyond the configuration file.
#[derive(Clone, Debug, Default)]
pub struct WatchArgs {
    pub cgroups: Vec<PathBuf>,
    pub exes: Vec<String>,
    pub pids: Vec<u32>,
}

/// A running sensor.
pub struct Sensor {
    probes: Arc<Mutex<Probes>>,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    /// The applied watch lists (changed by [`Sensor::rescope`]).
    scope: Arc<Mutex<Scope>>,
    /// Newly seeded tgids and roots, to the tracker task.
    scope_tx: mpsc::UnboundedSender<(Vec<u32>, Vec<u32>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    controller: Option<std::thread::JoinHandle<()>>,
    /// The TLS uprobe manager's thread (ends, detaching its uprobes, when the tracker
    /// task drops its request channel).
    tls: Option<std::thread::JoinHandle<()>>,
}

impl Sensor {
    /// Checks the kernel, loads and attaches the probes, applies scopes and starts the
    /// reader and tracker tasks on the current tokio runtime. Events go to `out`.
    pub async fn start(
        cfg: &Config,
        watch: &WatchArgs,
        out: mpsc::Sender<Vec<SensorEvent>>,
    ) -> Result<Sensor, StartError> {
        let checks = crate::kernel::doctor::run_checks(true);
        if let Some(msg) = crate::kernel::doctor::first_failure(&checks) {
            return Err(StartError::Preflight(msg));
        }
        let settings = ProbeSettings {
            ring_buffer_bytes: cfg.ring_buffer_bytes,
            capture_bytes: cfg.capture_bytes,
            wakeup_bytes: cfg.wakeup_bytes,
            wakeup_interval_us: cfg.wakeup_interval_us,
            capture_files_all: cfg.capture_files == crate::config::CaptureFiles::All,
            exit_hook: match std::env::var("SENSOR_EXIT_HOOK").as_deref() {
                Ok("btf") => ExitHook::Btf,
                _ => ExitHook::PerSyscall,
            },
        };
        let (mut probes, ring, control) = Probes::load(&settings)?;
        for name in &cfg.credential_files {
            probes.add_credential_name(name)?;
        }
        // The configuration's own scopes first, so that a bad entry is named as such.
        for path in &cfg.watch.cgroups {
            if let Err(reason) = crate::kernel::scope::check_cgroup(path) {
                return Err(ScopeError::Cgroup {
                    option: "config watch.cgroups",
                    path: path.clone(),
                    reason,
                }
                .into());
            }
        }
        if let Some(&pid) = cfg
            .watch
            .pids
            .iter()
            .find(|&&p| !crate::host::procfs::alive(p))
        {
            return Err(ScopeError::NoPid {
                option: "config watch.pids",
                pid,
            }
            .into());
        }
        let mut pids = cfg.watch.pids.clone();
        pids.extend(&watch.pids);
        let mut exes = cfg.watch.exes.clone();
        exes.extend(watch.exes.iter().cloned());
        let mut cgroups = cfg.watch.cgroups.clone();
        cgroups.extend(watch.cgroups.iter().cloned());
        let scope = Scope::apply(&mut probes, &pids, &exes, &cgroups, std::process::id())?;

        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tracker = Tracker::new(stats.clone());
        tracker.set_capture_bytes(cfg.capture_bytes as usize);
        tracker.seed_all(&scope.seeded);
        tracker.add_roots(&scope.roots);
        for &pid in &scope.seeded {
            probes.apply_fd_rules(pid);
        }
        let probes = Arc::new(Mutex::new(probes));
        let scope_probes = probes.clone();
        tracker.set_watch_check(move |tgid| {
            scope_probes
                .lock()
                .expect("probes lock")
                .is_tgid_watched(tgid)
        });
        let controller = crate::kernel::control::spawn(probes.clone(), control, stop.clone())?;
        // TLS and getenv uprobes: a manager thread attaches them; the tracker task asks it
        // to look at processes that exec or map executable objects and gets TLS coverage
        // reports back.
        let (tls_req, tls_req_rx) = std::sync::mpsc::channel();
        let (cov_tx, mut cov_rx) = mpsc::unbounded_channel();
        let kinds = crate::kernel::uprobes::HookKinds {
            tls: cfg.tls_uprobes,
            getenv: cfg.getenv_uprobes,
        };
        let tls = if kinds.tls || kinds.getenv {
            Some(crate::kernel::uprobes::spawn(
                probes.clone(),
                cfg.tls_attach == crate::config::TlsAttach::PerProcess,
                kinds,
                scope.seeded.clone(),
                tls_req_rx,
                cov_tx,
            )?)
        } else {
            drop((tls_req_rx, cov_tx));
            None
        };
        let tls_req = tls.is_some().then_some(tls_req);
        // Records travel in batches (one per ring drain) to keep channel costs off the hot path.
        let (tx, mut rx) = mpsc::channel::<crate::kernel::reader::Batch>(
            cfg.channel_capacity.div_ceil(BATCH).max(1),
        );
        let queue_bytes = Arc::new(tokio::sync::Semaphore::new(cfg.queue_bytes as usize));

        // SAFETY: the RingBuf owns its map fd for as long as it lives, and the AsyncFd owns
        // the RingBuf, so the registered fd stays open until the AsyncFd deregisters it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)?;
        let reader = tokio::spawn(read_ring(
            ring,
            tx,
            queue_bytes,
            cfg.queue_bytes,
            stats.clone(),
            stop.clone(),
            Duration::from_millis(cfg.poll_interval_ms),
        ));

        let rules_probes = probes.clone();
        let (scope_tx, mut scope_rx) = mpsc::unbounded_channel::<(Vec<u32>, Vec<u32>)>();
        let tracker_task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    Some((seeded, roots)) = scope_rx.recv() => {
                        // A reload widened the scope: its running processes join the table.
                        tracker.seed_all(&seeded);
                        tracker.add_roots(&roots);
                    }
                    batch = rx.recv() => {
                        // The permit holds the batch's queue bytes until its events are handed on.
                        let Some((batch, _permit)) = batch else { break };
                        // Enriched events leave in batches too: one channel send per ring
                        // drain, not per event (per-event sends were a sixth of the CPU).
                        let mut events = Vec::with_capacity(batch.len());
                        for ev in batch {
                            if let (Some(tx), Some(r)) = (&tls_req, crate::kernel::uprobes::request_for(&ev)) {
                                let _ = tx.send(r);
                            }
                            events.extend(tracker.handle(ev));
                        }
                        apply_fd_rules(&rules_probes, &events);
                        if !events.is_empty() && out.send(events).await.is_err() { return; }
                    }
                    _ = tick.tick() => {
                        let events = tracker.tick();
                        if !events.is_empty() && out.send(events).await.is_err() { return; }
                    }
                    Some(cov) = cov_rx.recv() => {
                        let ev = tracker.tls_coverage(cov);
                        if out.send(vec![ev]).await.is_err() { return; }
                    }
                }
            }
            let events = tracker.tick();
            if !events.is_empty() {
                let _ = out.send(events).await;
            }
        });

        let metrics = Arc::new(Metrics::new());
        metrics
            .programs_attached
            .set(probes.lock().expect("probes lock").program_count() as i64);
        metrics.set_attached(true);
        metrics.set_running(true);
        let m2 = metrics.clone();
        let p2 = probes.clone();
        let s2 = stats.clone();
        let interval = cfg.stats_interval_secs;
        let scope = Arc::new(Mutex::new(scope));
        let scope2 = scope.clone();
        let housekeeping = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut last_lost = 0u64;
            let mut secs = 0u64;
            loop {
                tick.tick().await;
                secs += 1;
                {
                    let mut p = p2.lock().expect("probes lock");
                    let mut scope = scope2.lock().expect("scope lock");
                    if scope.has_cgroups() {
                        match scope.rescan(&mut p) {
                            Ok(new) if !new.is_empty() => tracing::debug!(
                                count = new.len(),
                                "cgroup v1 members added to the scope"
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!("cgroup rescan: {e}"),
                        }
                    }
                    m2.uprobes_attached.set(p.uprobe_count() as i64);
                    match p.counters() {
                        Ok(k) => mirror_counters(&s2, &k),
                        Err(e) => tracing::warn!("reading kernel counters: {e}"),
                    }
                }
                mirror_metrics(&m2, &s2);
                crate::ops::notify::watchdog_ping();
                let lost = s2.lost();
                if lost > last_lost {
                    let s = s2.snapshot();
                    tracing::warn!(
                        lost = lost - last_lost,
                        ringbuf_full = s.kernel_ringbuf_full,
                        inflight_full = s.kernel_inflight_full,
                        decode_errors = s.decode_errors,
                        "events lost: kernel ring buffer full or records undecodable"
                    );
                    last_lost = lost;
                }
                if secs.is_multiple_of(TRIM_EVERY_SECS) {
                    crate::host::memory::release_free_heap();
                }
                if interval > 0 && secs.is_multiple_of(interval) {
                    tracing::info!(stats = %serde_json::to_string(&s2.snapshot()).unwrap_or_default(), "sensor stats");
                }
            }
        });

        Ok(Sensor {
            probes,
            stats,
            metrics,
            stop,
            scope,
            scope_tx,
            tasks: vec![reader, tracker_task, housekeeping],
            controller: Some(controller),
            tls,
        })
    }

    /// Current counters, with the kernel's read now.
    pub fn stats(&self) -> StatsSnapshot {
        if let Ok(p) = self.probes.lock() {
            if let Ok(k) = p.counters() {
                mirror_counters(&self.stats, &k);
            }
        }
        self.stats.snapshot()
    }

    /// The pipeline's counters (losses are read from them to announce degraded detection).
    pub fn loss_stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The sensor's metrics (served by `metrics_listen`; the detector adds its own).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Adds a process to the scope at run time.
    pub fn watch_pid(&self, pid: u32) -> Result<(), ProbeError> {
        self.probes.lock().expect("probes lock").watch_tgid(pid)
    }

    /// The probes (for the no-capture map and diagnostics).
    pub fn probes(&self) -> Arc<Mutex<Probes>> {
        self.probes.clone()
    }

    /// Replaces the watch lists (configuration and flags combined) at run time: see
    /// [`Scope::update`]. Validation failures change nothing.
    pub fn rescope(&self, watch: &WatchArgs) -> Result<(), ScopeError> {
        let mut p = self.probes.lock().expect("probes lock");
        let mut scope = self.scope.lock().expect("scope lock");
        let (seeded, roots) = scope.update(
            &mut p,
            &watch.pids,
            &watch.exes,
            &watch.cgroups,
            std::process::id(),
        )?;
        if !seeded.is_empty() || !roots.is_empty() {
            let _ = self.scope_tx.send((seeded, roots));
        }
        Ok(())
    }

    /// Stops the reader (after a final drain), flushes the tracker and detaches the probes.
    pub async fn shutdown(mut self) -> StatsSnapshot {
        self.metrics.set_running(false);
        self.stop.store(true, Ordering::SeqCst);
        let mut tasks = std::mem::take(&mut self.tasks);
        let housekeeping = tasks.pop();
        if let Some(h) = housekeeping {
            h.abort();
        }
        let t0 = std::time::Instant::now();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        tracing::debug!(took = ?t0.elapsed(), "reader and tracker stopped");
        if let Some(c) = self.controller.take() {
            let _ = tokio::task::spawn_blocking(move || c.join()).await;
        }
        if let Some(t) = self.tls.take() {
            // The tracker task is gone, so the manager's request channel is closed: it
            // detaches its uprobes and ends.
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || t.join()),
            )
            .await;
        }
        self.stats()
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Fds a watched process starts with (exec) or inherits (fork) that can never be sinks get
/// no-capture entries (the kernel covers opens and the standard streams itself).
fn apply_fd_rules(probes: &Mutex<Probes>, events: &[SensorEvent]) {
    use crate::state::events::EventBody;
    let pids: Vec<u32> = events
        .iter()
        .filter_map(|e| match e.body {
            EventBody::Exec { .. } => Some(e.process.pid),
            EventBody::Fork { child } => Some(child),
            _ => None,
        })
        .collect();
    if pids.is_empty() {
        return;
    }
    let mut p = probes.lock().expect("probes lock");
    for pid in pids {
        p.apply_fd_rules(pid);
    }
}

/// Copies the pipeline's counters into the Prometheus metrics.
fn mirror_metrics(m: &Metrics, s: &Stats) {
    let snap = s.snapshot();
    m.kernel_records
        .inner()
        .store(snap.records, Ordering::Relaxed);
    for (cause, v) in [
        ("ringbuf_full", snap.kernel_ringbuf_full),
        ("inflight_full", snap.kernel_inflight_full),
        ("steps_exhausted", snap.kernel_steps_exhausted),
        ("watch_full", snap.kernel_watch_full),
        ("decode_error", snap.decode_errors),
        ("incomplete_call", snap.incomplete_calls),
    ] {
        m.set_lost(cause, v);
    }
    for (i, kind) in EVENT_KINDS.iter().enumerate() {
        let v = s.events_by_kind[i].load(Ordering::Relaxed);
        m.events
            .get_or_create(&crate::ops::metrics::KindLabels { kind })
            .inner()
            .store(v, Ordering::Relaxed);
    }
    m.tracked_processes
        .set(s.tracked_processes.load(Ordering::Relaxed) as i64);
}

fn mirror_counters(s: &Stats, k: &crate::kernel::probes::KernelCounters) {
    s.kernel_ringbuf_full
        .store(k.ringbuf_full, Ordering::Relaxed);
    s.kernel_inflight_full
        .store(k.inflight_full, Ordering::Relaxed);
    s.kernel_steps_exhausted
        .store(k.steps_exhausted, Ordering::Relaxed);
    s.kernel_watch_full.store(k.watch_full, Ordering::Relaxed);
}
