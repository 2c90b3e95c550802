//! The revocation worker: one thread that takes pending jobs from the outbox, opens their
//! sealed tokens, calls the provider (batching and spacing where the provider needs it),
//! records the result durably — a finished job loses its sealed token in the same commit —
//! and raises a `"type":"revocation"` alert for every attempt. Transient failures retry
//! with backoff and `Retry-After`; permanent ones park the job (`sensor outbox retry`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{Failure, Outcome, Registry, RevocationConfig, Target};
use crate::deliver::outbox::{now_ms, JobStatus, RevocationJob};
use crate::deliver::record;
use crate::deliver::sinks::http::HttpClient;
use crate::deliver::worker::{backoff, Wake};
use crate::deliver::PipelineHandle;

/// The revocation worker thread.
pub struct Revocation {
    thread: Option<std::thread::JoinHandle<()>>,
}

struct State {
    reg: Registry,
    http: HttpClient,
    handle: PipelineHandle,
    wake: Arc<Wake>,
    max_backoff: Duration,
}

impl Revocation {
    /// Starts the worker (also in `off` mode: jobs created earlier still finish).
    pub fn start(cfg: &RevocationConfig, handle: PipelineHandle) -> Result<Revocation, String> {
        let st = State {
            reg: Registry::new(cfg)?,
            http: HttpClient::new(cfg.ca_file.as_deref(), Duration::from_secs(15))?,
            wake: handle.revocation_wake(),
            handle,
            max_backoff: Duration::from_secs(cfg.max_backoff_secs.unwrap_or(1800).max(1)),
        };
        let thread = std::thread::Builder::new()
            .name("revocation".into())
            .spawn(move || st.run())
            .map_err(|e| e.to_string())?;
        Ok(Revocation {
            thread: Some(thread),
        })
    }

    /// Waits for the worker to notice the pipeline stopping (at most `timeout`).
    pub fn join(mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        if let Some(t) = self.thread.take() {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn severity(status: &str) -> &'static str {
    match status {
        "revoked" | "already_invalid" | "dry_run" => "info",
        "retrying" => "medium",
        _ => "high",
    }
}

impl State {
    fn run(self) {
        loop {
            if self.handle.stopping() {
                return;
            }
            let wait = match self.round() {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!("revocation: {e}");
                    Duration::from_secs(1)
                }
            };
            self.wake
                .wait(wait.clamp(Duration::from_millis(20), Duration::from_secs(2)));
        }
    }

    /// One pass over the pending jobs; returns how long to wait before the next.
    fn round(&self) -> Result<Duration, String> {
        let ob = self.handle.outbox();
        let jobs: Vec<RevocationJob> = ob
            .jobs()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|j| j.status == JobStatus::Pending)
            .collect();
        let now = now_ms();
        let mut next = Duration::from_secs(2);
        let mut groups: BTreeMap<usize, Vec<RevocationJob>> = BTreeMap::new();
        for mut job in jobs {
            let route = self.reg.route(&job.method);
            match route {
                None => {
                    job.status = JobStatus::Unsupported;
                    job.last_error = Some(format!(
                        "no revocation endpoint for method `{}` (configure revocation.webhook)",
                        job.method
                    ));
                    self.finish(vec![(job, None, None)], None, 0)?;
                }
                Some(i) if job.dry_run => {
                    job.status = JobStatus::DryRun;
                    let req = self.reg.get(i).request(&job);
                    self.finish(vec![(job, None, Some("would send".into()))], Some(req), 0)?;
                }
                Some(i) => {
                    if job.not_before_ms <= now {
                        groups.entry(i).or_default().push(job);
                    } else {
                        next = next.min(Duration::from_millis(job.not_before_ms - now));
                    }
                }
            }
        }
        for (i, mut jobs) in groups {
            let r = self.reg.get(i);
            jobs.sort_by_key(|j| j.created_ms);
            // Gather a burst, then respect the provider's spacing.
            let ready_at = jobs[0].created_ms + r.gather().as_millis() as u64;
            let clock = format!("rate:{}", r.name());
            let last = ob.meta(&clock).map_err(|e| e.to_string())?;
            let spaced_at = if last == 0 {
                0
            } else {
                last + r.min_interval().as_millis() as u64
            };
            let at = ready_at.max(spaced_at);
            if at > now {
                next = next.min(Duration::from_millis(at - now));
                continue;
            }
            jobs.truncate(r.max_batch());
            self.attempt(i, jobs)?;
            next = Duration::ZERO;
        }
        Ok(next)
    }

    /// One request for a batch of jobs.
    fn attempt(&self, i: usize, jobs: Vec<RevocationJob>) -> Result<(), String> {
        let r = self.reg.get(i);
        let ob = self.handle.outbox();
        let mut tokens = Vec::new();
        let mut ready = Vec::new();
        for mut job in jobs {
            let opened = ob
                .sealed(&job.id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "sealed token missing".to_string())
                .and_then(|s| {
                    self.handle
                        .sealer()
                        .open(&job.id, &s)
                        .map_err(|e| e.to_string())
                });
            match opened {
                Ok(t) => {
                    tokens.push(t);
                    ready.push(job);
                }
                Err(e) => {
                    job.status = JobStatus::Failed;
                    job.attempts += 1;
                    job.last_error = Some(e);
                    self.finish(vec![(job, None, None)], None, 1)?;
                }
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let targets: Vec<Target> = ready
            .iter()
            .zip(&tokens)
            .map(|(job, t)| Target { job, token: t })
            .collect();
        let req = r.request(&ready[0]);
        let res = r.revoke(&self.http, &targets);
        drop(targets);
        drop(tokens);
        let reached = !matches!(res, Err(Failure::Transient { status: None, .. }));
        if reached {
            ob.set_meta(&format!("rate:{}", r.name()), now_ms())
                .map_err(|e| e.to_string())?;
        }
        let n = ready.len();
        let mut done = Vec::new();
        for mut job in ready {
            job.attempts += 1;
            let (status, detail) = match &res {
                Ok(Outcome::Revoked { status, detail }) => {
                    job.status = JobStatus::Revoked;
                    job.last_error = None;
                    (Some(*status), detail.clone())
                }
                Ok(Outcome::AlreadyInvalid { status, detail }) => {
                    job.status = JobStatus::AlreadyInvalid;
                    job.last_error = None;
                    (Some(*status), detail.clone())
                }
                Err(Failure::Transient {
                    status,
                    detail,
                    retry_after,
                }) => {
                    let wait =
                        retry_after.unwrap_or_else(|| backoff(job.attempts, self.max_backoff));
                    job.not_before_ms = now_ms() + wait.as_millis() as u64;
                    job.last_error = Some(detail.clone());
                    (*status, detail.clone())
                }
                Err(Failure::Permanent { status, detail }) => {
                    job.status = JobStatus::Failed;
                    job.last_error = Some(detail.clone());
                    (*status, detail.clone())
                }
            };
            done.push((job, status, Some(detail)));
        }
        self.finish(done, Some(req), n)
    }

    /// Stores the jobs (durably, dropping final jobs' tokens) and raises their alerts.
    fn finish(
        &self,
        jobs: Vec<(RevocationJob, Option<u16>, Option<String>)>,
        req: Option<super::RequestInfo>,
        batch: usize,
    ) -> Result<(), String> {
        let updated: Vec<RevocationJob> = jobs.iter().map(|(j, _, _)| j.clone()).collect();
        self.handle
            .outbox()
            .update_jobs(&updated)
            .map_err(|e| e.to_string())?;
        for (job, http_status, detail) in jobs {
            let status = match job.status {
                JobStatus::Pending => "retrying",
                JobStatus::Revoked => "revoked",
                JobStatus::AlreadyInvalid => "already_invalid",
                JobStatus::Failed => "failed",
                JobStatus::DryRun => "dry_run",
                JobStatus::Unsupported => "unsupported",
            };
            tracing::info!(job = %job.id, method = %job.method, status, "revocation");
            let mut rev = json!({
                "status": status,
                "method": job.method,
                "provider": job.provider,
                "kind": job.kind,
                "detector": job.detector,
                "attempt": job.attempts,
                "job_id": job.id,
                "alert_id": job.alert_id,
                "fingerprint": job.fingerprint,
                "safe_prefix": job.safe_prefix,
                "length": job.length,
                "dry_run": job.dry_run,
                "detail": detail.or(job.last_error.clone()).unwrap_or_default(),
            });
            if let Some(s) = http_status {
                rev["http_status"] = s.into();
            }
            if let Some(r) = &req {
                rev["request"] = serde_json::to_value(r).unwrap_or_default();
            }
            if batch > 1 {
                rev["batch_size"] = batch.into();
            }
            if let Some(v) = &job.env_var {
                rev["env_var"] = v.clone().into();
            }
            let mut m = Map::new();
            m.insert("revocation".into(), rev);
            m.insert("workspace".into(), job.workspace.clone());
            if job.workspace == Value::Null {
                m.remove("workspace");
            }
            self.handle.raise(
                record::internal("revocation", severity(status), m, self.handle.host()),
                None,
            );
        }
        Ok(())
    }
}
