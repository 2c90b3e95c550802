//! Live detection over the sensor's events: learns each workspace's secrets from the
//! environments its processes start with and the credential files they read, scans every
//! outbound write as a stream per (process, fd), and turns findings into alerts that say
//! which process sent which token where. Alerts never contain the value.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::alert::{
    new_id, Alert, Chain, SecretSource, Sink, Verdict, WorkspaceKind, WorkspaceRef,
};
use super::boundary::{self, Boundary};
use super::protocols;
use crate::detect::harvest;
use crate::detect::{Engine, LearnedSecrets, ScanOptions, StreamScanner};
use crate::state::events::{Endpoint, EventBody, FdKind, ProcessRef, SensorEvent};

/// Streams and learned secrets of all workspaces.
pub struct Monitor {
    engine: Arc<Engine>,
    workspaces: HashMap<String, LearnedSecrets>,
    streams: HashMap<(u32, i32), Stream>,
    opts: ScanOptions,
    credential_names: Vec<String>,
    /// Findings at the token's issuer or written to a credential store (not alerted).
    pub suppressed: u64,
}

/// Small writes are scanned in batches of up to this many bytes per stream (or when the
/// stream closes, its process exits, or the next `tick`): the per-scan carry-over then
/// costs once per batch instead of once per write. The batch waits, unscanned, in the
/// stream scanner's own buffer.
const BATCH_BYTES: usize = 4096;

#[derive(Default)]
struct Stream {
    scanner: StreamScanner,
    host: Option<String>,
    /// Context of the latest write not scanned yet (what alerts report).
    ctx: Option<WriteCtx>,
}

#[derive(Clone)]
struct WriteCtx {
    time: std::time::SystemTime,
    process: Arc<ProcessRef>,
    tid: u32,
    workspace: String,
    fd: i32,
    fd_kind: FdKind,
    endpoint: Option<Endpoint>,
    syscall: &'static str,
}

fn verdict_of(b: Boundary) -> Verdict {
    match b {
        Boundary::Issuer => Verdict::AllowedIssuer,
        Boundary::Outside | Boundary::Unknown => Verdict::Exfiltration,
        Boundary::LocalIpc | Boundary::Pipe => Verdict::IpcExposure,
        Boundary::Terminal => Verdict::TerminalExposure,
        Boundary::File | Boundary::CredentialStore => Verdict::Stored,
    }
}

fn sink_kind(kind: FdKind, ep: Option<&Endpoint>) -> &'static str {
    match (kind, ep) {
        (FdKind::Socket, Some(Endpoint::Unix { .. })) => "unix",
        (FdKind::Socket, _) => "network",
        (FdKind::Pipe, _) => "pipe",
        (FdKind::Tty, _) => "terminal",
        (FdKind::File, _) => "file",
        _ => "unknown",
    }
}

fn source_of(detector: &str, p: &ProcessRef) -> SecretSource {
    match detector.strip_prefix("learned:") {
        Some(src) => {
            let (kind, rest) = src.split_once(':').unwrap_or((src, ""));
            SecretSource {
                kind: if kind == "env" { "env" } else { "file" },
                var: (kind == "env").then(|| rest.to_string()),
                path: (kind != "env").then(|| rest.to_string()),
                pid: None,
                exe: None,
                host: None,
            }
        }
        None => SecretSource {
            kind: "known_format",
            pid: Some(p.pid),
            exe: Some(p.exe.clone()),
            ..Default::default()
        },
    }
}

fn workspace_ref(p: &ProcessRef) -> WorkspaceRef {
    let (id, kind) = match &p.container_id {
        Some(c) => (format!("container:{c}"), WorkspaceKind::Container),
        None => (format!("cgroup:{}", workspace_of(p)), WorkspaceKind::Cgroup),
    };
    WorkspaceRef {
        id,
        kind,
        root_pid: None,
        root_exe: None,
        container_id: p.container_id.clone(),
        container_name: None,
        container_runtime: p.container_runtime.clone(),
        cgroup: p.cgroup.clone(),
    }
}

fn workspace_of(p: &ProcessRef) -> String {
    p.container_id.clone().unwrap_or_else(|| {
        if p.cgroup.is_empty() {
            "/".into()
        } else {
            p.cgroup.clone()
        }
    })
}

impl Monitor {
    /// A monitor over `engine`; `credential_names` are the credential-file basenames
    /// (writes to them are stores, not leaks).
    pub fn new(engine: Arc<Engine>, credential_names: Vec<String>) -> Monitor {
        Monitor {
            engine,
            workspaces: HashMap::default(),
            streams: HashMap::default(),
            opts: ScanOptions::default(),
            credential_names,
            suppressed: 0,
        }
    }

    fn learned(&mut self, ws: &str) -> &mut LearnedSecrets {
        let fp = self.engine.fingerprinter().clone();
        self.workspaces
            .entry(ws.to_string())
            .or_insert_with(|| LearnedSecrets::new(fp))
    }

    /// The process with secrets in its argv redacted (argv is where `curl -H "…token…"`
    /// puts them).
    pub fn redact_process(&self, p: &Arc<ProcessRef>) -> Arc<ProcessRef> {
        let ws = workspace_of(p);
        let learned = self.workspaces.get(&ws);
        let argv: Vec<String> = p
            .argv
            .iter()
            .map(|a| self.engine.redact(a, learned))
            .collect();
        if argv == p.argv {
            return p.clone();
        }
        let mut q = (**p).clone();
        q.argv = argv;
        Arc::new(q)
    }

    /// Scans a stream's pending bytes; returns its alerts.
    fn flush(&mut self, key: (u32, i32)) -> Vec<Alert> {
        let Some(stream) = self.streams.get_mut(&key) else {
            return Vec::new();
        };
        if stream.scanner.pending() == 0 {
            return Vec::new();
        }
        let Some(ctx) = stream.ctx.clone() else {
            return Vec::new();
        };
        let learned = self.workspaces.get(&ctx.workspace);
        let findings = stream.scanner.scan(&self.engine, learned, self.opts);
        let host = stream.host.clone();
        let mut alerts = Vec::new();
        for finding in findings {
            let b = boundary::classify(
                ctx.fd_kind,
                ctx.endpoint.as_ref(),
                host.as_deref(),
                &finding.issuers,
                &self.credential_names,
            );
            if !b.crosses() {
                self.suppressed += 1;
                tracing::debug!(detector = %finding.detector, boundary = ?b, "token used within its boundary");
                continue;
            }
            let verdict = verdict_of(b);
            let severity = finding.severity;
            let source = source_of(&finding.detector, &ctx.process);
            alerts.push(Alert {
                kind: "finding",
                id: new_id(),
                time: humantime::format_rfc3339_nanos(ctx.time).to_string(),
                verdict,
                severity,
                mitre: finding
                    .tags
                    .iter()
                    .filter(|t| t.starts_with('T'))
                    .cloned()
                    .collect(),
                workspace: workspace_ref(&ctx.process),
                process: self.redact_process(&ctx.process),
                tid: ctx.tid,
                sink: Sink {
                    kind: sink_kind(ctx.fd_kind, ctx.endpoint.as_ref()),
                    fd: ctx.fd,
                    fd_kind: ctx.fd_kind,
                    endpoint: ctx.endpoint.clone(),
                    syscall: ctx.syscall,
                    host: host.clone(),
                    host_source: None,
                    tls: None,
                    dns_query: None,
                    boundary: b,
                },
                chain: Chain {
                    source,
                    hops: Vec::new(),
                    sender_pid: ctx.process.pid,
                    sender_exe: ctx.process.exe.clone(),
                    env_reads: Vec::new(),
                },
                harvest: None,
                count: 1,
                detail: None,
                finding: Some(finding),
            });
        }
        alerts
    }

    /// Scans every stream's pending bytes (call periodically and at shutdown).
    pub fn tick(&mut self) -> Vec<Alert> {
        let keys: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, s)| s.scanner.pending() > 0)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter().flat_map(|k| self.flush(k)).collect()
    }

    /// Scans what a stream still holds and forgets it.
    fn close(&mut self, key: (u32, i32)) -> Vec<Alert> {
        let alerts = self.flush(key);
        self.streams.remove(&key);
        alerts
    }

    /// Feeds one event; returns the alerts it raises.
    pub fn handle(&mut self, ev: &SensorEvent) -> Vec<Alert> {
        let ws = workspace_of(&ev.process);
        match &ev.body {
            EventBody::Exec { env, .. } => {
                let found = harvest::from_env(env);
                let l = self.learned(&ws);
                for (v, m) in found {
                    if l.learn(&v, m.clone()) {
                        tracing::debug!(source = %m.source, workspace = %ws, "learned a workspace secret");
                    }
                }
                Vec::new()
            }
            EventBody::Read {
                path: Some(path),
                data,
                ..
            } => {
                let found = harvest::from_file(path, data);
                let l = self.learned(&ws);
                for (v, m) in found {
                    l.learn(&v, m);
                }
                Vec::new()
            }
            EventBody::Close { fd } => self.close((ev.process.pid, *fd)),
            EventBody::Exit => {
                let pid = ev.process.pid;
                let keys: Vec<_> = self
                    .streams
                    .keys()
                    .filter(|(p, _)| *p == pid)
                    .copied()
                    .collect();
                keys.into_iter().flat_map(|k| self.close(k)).collect()
            }
            EventBody::Write {
                fd,
                syscall,
                fd_kind,
                endpoint,
                data,
                stream_offset,
                ..
            } => {
                let key = (ev.process.pid, *fd);
                let host = protocols::http_host(data).or_else(|| protocols::tls_sni(data));
                // Pending bytes are scanned first when this write does not continue them,
                // or names a new destination (they were sent under the old one).
                let flush_first = self.streams.get(&key).is_some_and(|s| {
                    s.scanner.pending() > 0
                        && (s.scanner.position() != *stream_offset
                            || host.as_ref().is_some_and(|h| s.host.as_ref() != Some(h)))
                });
                let mut alerts = if flush_first {
                    self.flush(key)
                } else {
                    Vec::new()
                };
                let stream = self.streams.entry(key).or_default();
                if host.is_some() {
                    stream.host = host;
                }
                stream.scanner.append(*stream_offset, data);
                stream.ctx = Some(WriteCtx {
                    time: ev.time,
                    process: ev.process.clone(),
                    tid: ev.tid,
                    workspace: ws.clone(),
                    fd: *fd,
                    fd_kind: *fd_kind,
                    endpoint: endpoint.clone(),
                    syscall,
                });
                if stream.scanner.pending() >= BATCH_BYTES {
                    alerts.extend(self.flush(key));
                }
                alerts
            }
            _ => Vec::new(),
        }
    }
}
