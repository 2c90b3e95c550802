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
use super::hpack::{H2Headers, H2Requests};
use super::protocols;
use crate::detect::harvest;
use crate::detect::{Engine, LearnedSecrets, ScanOptions, StreamScanner};
use crate::state::events::{Endpoint, EventBody, FdKind, ProcessRef, SensorEvent};

/// Streams and learned secrets of all workspaces.
pub struct Monitor {
    engine: Arc<Engine>,
    workspaces: HashMap<String, LearnedSecrets>,
    /// By (pid, fd, layer): the plaintext inside a TLS connection is its own stream beside
    /// the bytes of the socket (ciphertext), and so are the decoded HTTP/2 headers.
    streams: HashMap<StreamKey, Stream>,
    /// Processes whose TLS stacks have no hook (their TLS streams are opaque).
    tls_opaque: std::collections::HashSet<u32>,
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

/// (pid, fd, layer).
type StreamKey = (u32, i32, u8);
/// Layer of a stream: the bytes written to the fd.
const RAW: u8 = 0;
/// Layer of a stream: TLS plaintext written through a TLS library.
const TLS: u8 = 1;
/// Layer of a stream: HPACK-decoded HTTP/2 request headers of the TLS plaintext.
const H2_HEADERS: u8 = 2;

#[derive(Default)]
struct Stream {
    scanner: StreamScanner,
    host: Option<String>,
    /// Where `host` came from: `sni`, `http`, `h2`.
    host_source: Option<&'static str>,
    /// HTTP/2 request parser of a TLS plaintext stream that opened with the preface.
    h2: Option<H2Requests>,
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
    /// TLS plaintext (the library's stack name).
    tls: Option<&'static str>,
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
                kind: match kind {
                    "env" => "env",
                    "tls" => "tls_received",
                    _ => "file",
                },
                var: (kind == "env").then(|| rest.to_string()),
                path: (kind == "file").then(|| rest.to_string()),
                pid: None,
                exe: None,
                host: (kind == "tls").then(|| rest.to_string()),
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
            tls_opaque: Default::default(),
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
    fn flush(&mut self, key: StreamKey) -> Vec<Alert> {
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
        let host_source = stream.host_source;
        let tls = if ctx.tls.is_some() {
            Some("plaintext")
        } else if host_source == Some("sni") && self.tls_opaque.contains(&key.0) {
            Some("opaque")
        } else {
            None
        };
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
            // A rule finding whose value was also learned: say where it was learned.
            let learned_as = learned
                .and_then(|l| l.meta_by_fingerprint(&finding.fingerprint))
                .map(|m| format!("learned:{}", m.source));
            let source = source_of(
                learned_as.as_deref().unwrap_or(&finding.detector),
                &ctx.process,
            );
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
                    host_source,
                    tls,
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
    fn close(&mut self, key: StreamKey) -> Vec<Alert> {
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
            EventBody::Close { fd } => [RAW, TLS, H2_HEADERS]
                .into_iter()
                .flat_map(|l| self.close((ev.process.pid, *fd, l)))
                .collect(),
            EventBody::Exit => {
                let pid = ev.process.pid;
                self.tls_opaque.remove(&pid);
                let keys: Vec<_> = self
                    .streams
                    .keys()
                    .filter(|(p, _, _)| *p == pid)
                    .copied()
                    .collect();
                keys.into_iter().flat_map(|k| self.close(k)).collect()
            }
            EventBody::TlsRead {
                fd, endpoint, data, ..
            } => {
                self.learn_received(ev, &ws, *fd, endpoint.as_ref(), data);
                Vec::new()
            }
            EventBody::TlsCoverage(c) => {
                if !c.objects.is_empty() && !c.any_hooked() {
                    self.tls_opaque.insert(c.pid);
                } else {
                    self.tls_opaque.remove(&c.pid);
                }
                Vec::new()
            }
            EventBody::Write {
                fd,
                syscall,
                fd_kind,
                endpoint,
                data,
                stream_offset,
                tls,
                truncated,
                ..
            } => {
                let key = (ev.process.pid, *fd, if tls.is_some() { TLS } else { RAW });
                let (host, host_source, headers) = match tls {
                    None => match protocols::http_host(data) {
                        Some(h) => (Some(h), Some("http"), Vec::new()),
                        None => (protocols::tls_sni(data), Some("sni"), Vec::new()),
                    },
                    Some(_) => self.plaintext_host(key, data, *stream_offset, *truncated),
                };
                let ctx = WriteCtx {
                    time: ev.time,
                    process: ev.process.clone(),
                    tid: ev.tid,
                    workspace: ws.clone(),
                    fd: *fd,
                    fd_kind: *fd_kind,
                    endpoint: endpoint.clone(),
                    syscall,
                    tls: *tls,
                };
                let mut alerts =
                    self.append(key, &ctx, *stream_offset, data, host.clone(), host_source);
                // HTTP/2 headers travel HPACK-coded: scan their decoded text as well.
                let hkey = (key.0, key.1, H2_HEADERS);
                for h in headers {
                    let at = self
                        .streams
                        .get(&hkey)
                        .map(|s| s.scanner.position())
                        .unwrap_or(0);
                    alerts.extend(self.append(hkey, &ctx, at, &h.text, host.clone(), host_source));
                }
                alerts
            }
            _ => Vec::new(),
        }
    }

    /// Appends a write to a stream (scanning what it held first when the write does not
    /// continue it or names a new destination) and scans once a batch is full.
    fn append(
        &mut self,
        key: StreamKey,
        ctx: &WriteCtx,
        offset: u64,
        data: &[u8],
        host: Option<String>,
        host_source: Option<&'static str>,
    ) -> Vec<Alert> {
        // Pending bytes are scanned first when this write does not continue them, or
        // names a new destination (they were sent under the old one).
        let flush_first = self.streams.get(&key).is_some_and(|s| {
            s.scanner.pending() > 0
                && (s.scanner.position() != offset
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
            stream.host_source = host_source;
        }
        stream.scanner.append(offset, data);
        stream.ctx = Some(ctx.clone());
        if stream.scanner.pending() >= BATCH_BYTES {
            alerts.extend(self.flush(key));
        }
        alerts
    }

    /// Destination name of a TLS plaintext stream: the SNI of the ciphertext stream on
    /// the same socket (what the connection authenticated), else the HTTP/1 `Host` or the
    /// HTTP/2 `:authority` inside the plaintext. Also returns the HTTP/2 request headers
    /// completed by this write.
    fn plaintext_host(
        &mut self,
        key: StreamKey,
        data: &[u8],
        offset: u64,
        truncated: bool,
    ) -> (Option<String>, Option<&'static str>, Vec<H2Headers>) {
        let sni = self
            .streams
            .get(&(key.0, key.1, RAW))
            .filter(|s| s.host_source == Some("sni"))
            .and_then(|s| s.host.clone());
        let stream = self.streams.entry(key).or_default();
        if offset == 0 && stream.h2.is_none() {
            stream.h2 = H2Requests::detect(data);
        }
        let headers = match stream.h2.as_mut() {
            Some(p) => {
                let got = p.feed(data);
                if truncated {
                    p.gap();
                }
                got
            }
            None => Vec::new(),
        };
        let authority = headers.iter().rev().find_map(|h| h.authority.clone());
        if let Some(h) = sni {
            return (Some(h), Some("sni"), headers);
        }
        if let Some(h) = protocols::http_host(data) {
            return (Some(h), Some("http"), headers);
        }
        match authority {
            Some(h) => (Some(h), Some("h2"), headers),
            None => (None, None, headers),
        }
    }

    /// Learns the tokens a watched process received over TLS (an API minting a token, a
    /// login flow), with the peer as their source and issuer.
    fn learn_received(
        &mut self,
        ev: &SensorEvent,
        ws: &str,
        fd: i32,
        endpoint: Option<&Endpoint>,
        data: &[u8],
    ) {
        let host = self
            .streams
            .get(&(ev.process.pid, fd, RAW))
            .and_then(|s| s.host.clone())
            .or_else(|| match endpoint {
                Some(Endpoint::Inet { addr, .. }) => Some(addr.ip().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "unknown".into());
        let opts = ScanOptions {
            decode: false,
            candidates: false,
        };
        let found = self.engine.scan(data, 0, opts);
        let l = self.learned(ws);
        for f in found {
            if f.encoding != crate::detect::Encoding::Raw {
                continue;
            }
            let start = f.offset as usize;
            let Some(v) = data.get(start..start + f.length) else {
                continue;
            };
            let mut issuers = f.issuers.clone();
            if host != "unknown" && !issuers.contains(&host) {
                issuers.push(host.clone());
            }
            let meta = crate::detect::learned::SecretMeta {
                source: format!("tls:{host}"),
                provider: f.provider.clone(),
                kind: f.kind.clone(),
                issuers,
                revoke: f.revoke.clone(),
            };
            if l.learn(&zeroize::Zeroizing::new(v.to_vec()), meta) {
                tracing::debug!(detector = %f.detector, host = %host, "learned a token received over TLS");
            }
        }
    }
}
