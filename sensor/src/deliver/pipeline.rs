//! The delivery pipeline the daemon feeds: [`Pipeline::submit`] never blocks (a bounded
//! queue to the outbox writer; if even that is full the alert is counted as dropped and
//! announced), the writer thread group-commits alerts and the revocation jobs they
//! trigger (tokens sealed), and one worker thread per output delivers from the outbox.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::outbox::{now_ms, JobStatus, NewAlert, NewJob, Outbox, OutboxError, RevocationJob};
use super::record::{self, HostInfo};
use super::sealed::{SealError, Sealer};
use super::sinks::{self, OutputConfig, SinkError};
use super::worker::{OutputStats, OutputWorker, Wake};
use crate::detect::engine::SecretValue;
use crate::detect::rules::Severity;
use crate::verdict::alert::Alert;

/// Revocation mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationMode {
    /// No revocation.
    #[default]
    Off,
    /// Record what would be sent; send nothing.
    DryRun,
    /// Revoke.
    On,
}

/// Which findings trigger revocation jobs.
#[derive(Clone, Copy, Debug)]
pub struct RevocationPolicy {
    pub mode: RevocationMode,
    pub min_severity: Severity,
}

/// What the pipeline needs from the configuration.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub state_dir: PathBuf,
    pub state_max_bytes: u64,
    /// Outputs (empty: stdout in native format).
    pub outputs: Vec<OutputConfig>,
    pub policy: RevocationPolicy,
}

/// Errors of starting the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The revocation key could not be loaded.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An output could not be built.
    #[error("outputs: {0}")]
    Sink(#[from] SinkError),
    /// Another daemon uses the state directory.
    #[error("state_dir {0} is in use by another running sensor")]
    Locked(PathBuf),
    /// The lock file could not be created.
    #[error("state_dir lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Two outputs have the same id.
    #[error("outputs: two outputs are both `{0}`: give one a distinct `name`")]
    Duplicate(String),
}

/// Queue between the detector and the outbox writer.
const QUEUE: usize = 16_384;

struct RevokeRequest {
    job: RevocationJob,
    secret: SecretValue,
}

struct Submitted {
    json: Vec<u8>,
    skip_output: Option<String>,
    revoke: Option<RevokeRequest>,
}

enum Msg {
    Alert(Box<Submitted>),
    Flush(mpsc::Sender<()>),
    Stop,
}

/// Pipeline counters.
#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    committed: AtomicU64,
    dropped_full: AtomicU64,
    dropped_queue: AtomicU64,
    jobs_created: AtomicU64,
}

/// Counters reported at exit and in `{"type":"stats"}` lines.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeliveryStats {
    pub submitted: u64,
    pub committed: u64,
    /// Oldest alerts dropped because the outbox reached `state_max_bytes`.
    pub dropped_full: u64,
    /// Alerts dropped because the queue to the outbox was full.
    pub dropped_queue: u64,
    pub revocation_jobs: u64,
    pub outputs: Vec<OutputStatsSnapshot>,
}

/// One output's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OutputStatsSnapshot {
    pub output: String,
    pub delivered: u64,
    pub retries: u64,
    pub failed: u64,
}

struct Inner {
    /// Held (flock) while the daemon runs: one daemon per state directory.
    _lock: std::fs::File,
    outbox: Arc<Outbox>,
    sealer: Sealer,
    host: HostInfo,
    policy: RevocationPolicy,
    wakes: Vec<Arc<Wake>>,
    revocation_wake: Arc<Wake>,
    stop: Arc<AtomicBool>,
    deadline: Arc<Mutex<Option<Instant>>>,
    counters: Counters,
    outputs: Vec<(String, Arc<OutputStats>)>,
    closed: Arc<super::worker::Closed>,
}

/// A cloneable handle for other stages (the revocation worker) to raise alerts and reach
/// the outbox.
#[derive(Clone)]
pub struct PipelineHandle {
    tx: SyncSender<Msg>,
    inner: Arc<Inner>,
}

impl PipelineHandle {
    /// Queues one of the sensor's own alerts (blocking briefly if the queue is full: these
    /// are rare and must not be lost).
    pub fn raise(&self, json: Vec<u8>, skip_output: Option<String>) {
        self.inner
            .counters
            .submitted
            .fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Alert(Box::new(Submitted {
            json,
            skip_output,
            revoke: None,
        })));
    }

    /// The outbox.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.inner.outbox
    }

    /// The token sealer.
    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    /// This machine.
    pub fn host(&self) -> &HostInfo {
        &self.inner.host
    }

    /// Rung when revocation jobs are created.
    pub fn revocation_wake(&self) -> Arc<Wake> {
        self.inner.revocation_wake.clone()
    }

    /// Whether the pipeline is shutting down.
    pub fn stopping(&self) -> bool {
        self.inner.stop.load(Ordering::Acquire)
    }
}

/// The running pipeline.
pub struct Pipeline {
    handle: PipelineHandle,
    writer: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Opens the outbox, builds every output and starts the writer and output threads.
    pub fn start(cfg: PipelineConfig) -> Result<Pipeline, DeliverError> {
        let outputs = if cfg.outputs.is_empty() {
            vec![default_output()]
        } else {
            cfg.outputs.clone()
        };
        let mut ids: Vec<String> = Vec::new();
        let mut built = Vec::new();
        for (i, o) in outputs.iter().enumerate() {
            let id = o.id();
            if ids.contains(&id) {
                return Err(DeliverError::Duplicate(id));
            }
            ids.push(id);
            built.push(sinks::build(o, &format!("outputs[{i}]"))?);
        }
        super::outbox::secure_dir(&cfg.state_dir)?;
        let lock = lock_state_dir(&cfg.state_dir)?;
        let outbox = Arc::new(Outbox::open(
            &cfg.state_dir,
            cfg.state_max_bytes,
            ids.clone(),
        )?);
        let sealer = Sealer::open_dir(&cfg.state_dir)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let output_stats: Vec<(String, Arc<OutputStats>)> =
            ids.iter().map(|i| (i.clone(), Arc::default())).collect();
        let inner = Arc::new(Inner {
            _lock: lock,
            outbox,
            sealer,
            host: HostInfo::detect(),
            policy: cfg.policy,
            wakes: ids.iter().map(|_| Arc::new(Wake::default())).collect(),
            revocation_wake: Arc::default(),
            stop: Arc::default(),
            deadline: Arc::default(),
            counters: Counters::default(),
            outputs: output_stats,
            closed: Arc::default(),
        });
        let handle = PipelineHandle { tx, inner };
        let mut workers = Vec::new();
        for (i, (o, sink)) in outputs.iter().zip(built).enumerate() {
            let h = handle.clone();
            let w = OutputWorker {
                id: ids[i].clone(),
                format: o.format(),
                sink,
                outbox: handle.inner.outbox.clone(),
                wake: handle.inner.wakes[i].clone(),
                stop: handle.inner.stop.clone(),
                deadline: handle.inner.deadline.clone(),
                max_backoff: o.max_backoff(),
                stats: handle.inner.outputs[i].1.clone(),
                raise: Arc::new(move |json, skip| h.raise(json, skip)),
                host: handle.inner.host.clone(),
                closed: handle.inner.closed.clone(),
            };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("output-{i}"))
                    .spawn(move || w.run())
                    .expect("spawn output thread"),
            );
        }
        let h = handle.clone();
        let writer = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || writer_loop(h, rx))
            .expect("spawn writer thread");
        Ok(Pipeline {
            handle,
            writer: Some(writer),
            workers,
        })
    }

    /// Resolves, with the reason, when an output is gone for good (a closed stdout pipe):
    /// the daemon then stops instead of queueing alerts nobody can receive.
    pub async fn closed(&self) -> String {
        self.handle.inner.closed.wait().await
    }

    /// A handle for other stages.
    pub fn handle(&self) -> PipelineHandle {
        self.handle.clone()
    }

    /// Queues an alert for every output, and its revocation when the policy says so.
    /// Never blocks: with the queue full the alert is counted, logged and announced.
    pub fn submit(&self, alert: &Alert) {
        let inner = &self.handle.inner;
        inner.counters.submitted.fetch_add(1, Ordering::Relaxed);
        let json = match record::native_alert(alert, &inner.host) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("serializing an alert: {e}");
                return;
            }
        };
        let msg = Msg::Alert(Box::new(Submitted {
            json,
            skip_output: None,
            revoke: revoke_request(alert, inner.policy),
        }));
        match self.handle.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = inner.counters.dropped_queue.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(
                        dropped = n,
                        "delivery queue full (outbox disk stalled?): alert dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("delivery pipeline stopped: alert dropped");
            }
        }
    }

    /// Waits until everything submitted so far is committed (or `timeout`).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.handle.tx.send(Msg::Flush(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Counters now.
    pub fn stats(&self) -> DeliveryStats {
        let c = &self.handle.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DeliveryStats {
            submitted: g(&c.submitted),
            committed: g(&c.committed),
            dropped_full: g(&c.dropped_full),
            dropped_queue: g(&c.dropped_queue),
            revocation_jobs: g(&c.jobs_created),
            outputs: self
                .handle
                .inner
                .outputs
                .iter()
                .map(|(id, s)| OutputStatsSnapshot {
                    output: id.clone(),
                    delivered: g(&s.delivered),
                    retries: g(&s.retries),
                    failed: g(&s.failed),
                })
                .collect(),
        }
    }

    /// Commits what is queued, gives outputs up to `grace` to deliver what they can, and
    /// stops. Undelivered alerts stay in the outbox for the next start.
    pub fn shutdown(mut self, grace: Duration) -> DeliveryStats {
        let deadline = Instant::now() + grace;
        self.flush(grace);
        let inner = &self.handle.inner;
        *inner.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        inner.stop.store(true, Ordering::Release);
        for w in &inner.wakes {
            w.ring();
        }
        inner.revocation_wake.ring();
        for w in self.workers.drain(..) {
            while !w.is_finished() && Instant::now() < deadline + Duration::from_millis(200) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        let stats = self.stats();
        let _ = self.handle.tx.send(Msg::Stop);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        stats
    }
}

/// Takes `state_dir/daemon.lock` exclusively (two daemons on one outbox would deliver
/// each other's alerts); `sensor outbox` does not take it.
fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, DeliverError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("daemon.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| DeliverError::Lock {
            path: path.clone(),
            source,
        })?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DeliverError::Locked(dir.into()));
    }
    Ok(f)
}

/// `stdout`, `native`: the output when none is configured.
pub fn default_output() -> OutputConfig {
    yaml_serde::from_str("kind: stdout\nformat: native\n").expect("valid default output")
}

/// The revocation job a finding alert triggers, if any: a leak (not at the issuer, not
/// stored) of a token with a revocation method, at or above `min_severity`.
fn revoke_request(alert: &Alert, policy: RevocationPolicy) -> Option<RevokeRequest> {
    if policy.mode == RevocationMode::Off || alert.kind != "finding" || !alert.verdict.is_leak() {
        return None;
    }
    if alert.severity < policy.min_severity {
        return None;
    }
    let f = alert.finding.as_ref()?;
    let secret = f.secret.clone()?;
    if f.revoke.is_empty() || f.revoke == "none" {
        return None;
    }
    Some(RevokeRequest {
        job: RevocationJob {
            id: String::new(),
            method: f.revoke.clone(),
            provider: f.provider.clone(),
            kind: f.kind.clone(),
            detector: f.detector.clone(),
            fingerprint: f.fingerprint.clone(),
            safe_prefix: f.safe_prefix.clone(),
            length: f.length,
            alert_id: alert.id.clone(),
            workspace: serde_json::to_value(&alert.workspace).unwrap_or_default(),
            source: serde_json::to_value(&alert.chain.source).unwrap_or_default(),
            env_var: alert.chain.source.var.clone().or_else(|| {
                f.learned_from
                    .as_deref()
                    .and_then(|s| s.strip_prefix("env:"))
                    .map(String::from)
            }),
            status: JobStatus::Pending,
            attempts: 0,
            created_ms: now_ms(),
            not_before_ms: 0,
            last_error: None,
            dry_run: policy.mode == RevocationMode::DryRun,
        },
        secret,
    })
}

fn writer_loop(h: PipelineHandle, rx: Receiver<Msg>) {
    let inner = &h.inner;
    let mut announced_queue = 0u64;
    let mut pending_dropped = 0u64;
    let mut last_announce: Option<Instant> = None;
    loop {
        let mut msgs = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => vec![m],
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        while !msgs.is_empty() && msgs.len() < 1024 {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        let mut items = Vec::new();
        let mut stop = false;
        for m in msgs {
            match m {
                Msg::Alert(s) => items.push(new_alert(&inner.sealer, *s)),
                Msg::Flush(t) => flushes.push(t),
                Msg::Stop => stop = true,
            }
        }
        if !items.is_empty() {
            loop {
                match inner.outbox.commit(&items) {
                    Ok(rep) => {
                        let c = &inner.counters;
                        c.committed.fetch_add(rep.committed, Ordering::Relaxed);
                        c.jobs_created
                            .fetch_add(rep.jobs_created, Ordering::Relaxed);
                        if rep.dropped > 0 {
                            c.dropped_full.fetch_add(rep.dropped, Ordering::Relaxed);
                            pending_dropped += rep.dropped;
                            tracing::warn!(
                                dropped = rep.dropped,
                                "outbox full (state_max_bytes): oldest alerts dropped"
                            );
                        }
                        if rep.jobs_created > 0 {
                            inner.revocation_wake.ring();
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::error!("outbox commit failed, retrying: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                        if stop {
                            break;
                        }
                    }
                }
            }
            for w in &inner.wakes {
                w.ring();
            }
        }
        // Announce losses (queue overflow, full outbox) with an alert and a stats line.
        let qd = inner.counters.dropped_queue.load(Ordering::Relaxed);
        let due = last_announce.is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if (qd > announced_queue || pending_dropped > 0) && due {
            let full_total = inner.counters.dropped_full.load(Ordering::Relaxed);
            eprintln!(
                "{}",
                json!({"type": "stats", "outbox": {"dropped_full": full_total, "dropped_queue": qd}})
            );
            let mut m = serde_json::Map::new();
            m.insert(
                "error".into(),
                json!({"code": "alerts_dropped",
                       "message": format!("{} oldest alerts dropped (outbox at state_max_bytes), {} dropped at a full queue",
                                          pending_dropped, qd - announced_queue),
                       "dropped_full": pending_dropped, "dropped_queue": qd - announced_queue,
                       "dropped_full_total": full_total, "dropped_queue_total": qd}),
            );
            let note = NewAlert {
                json: record::internal("error", "high", m, &inner.host),
                skip_output: None,
                job: None,
            };
            match inner.outbox.commit(std::slice::from_ref(&note)) {
                Ok(rep) => {
                    inner
                        .counters
                        .committed
                        .fetch_add(rep.committed, Ordering::Relaxed);
                    inner
                        .counters
                        .dropped_full
                        .fetch_add(rep.dropped, Ordering::Relaxed);
                    pending_dropped = rep.dropped;
                }
                Err(e) => tracing::error!("outbox commit failed: {e}"),
            }
            announced_queue = qd;
            last_announce = Some(Instant::now());
            for w in &inner.wakes {
                w.ring();
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
        if stop {
            return;
        }
    }
}

fn new_alert(sealer: &Sealer, s: Submitted) -> NewAlert {
    let job = s.revoke.map(|r| {
        let mut job = r.job;
        job.id = sealer.job_id(r.secret.expose());
        let sealed = (!job.dry_run).then(|| sealer.seal(&job.id, r.secret.expose()));
        NewJob { job, sealed }
    });
    NewAlert {
        json: s.json,
        skip_output: s.skip_output,
        job,
    }
}
