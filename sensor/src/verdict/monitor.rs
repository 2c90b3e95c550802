//! Live detection over the sensor's events: learns each workspace's secrets from the
//! environments its processes start with and the credential files they read, scans every
//! outbound write as a stream per (process, fd), judges where each token went
//! ([`super::boundary`]) and turns leaks into alerts that say which token (redacted),
//! learned where, passed through whom, sent by which process, to which sink. One alert per
//! (workspace, token, destination) within a window; repeats are summarized. Alerts never
//! contain the value.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::alert::{new_id, Alert, Chain, Harvest, Hop, SecretSource, Sink, Verdict};
use super::boundary::{self, Boundary, Judgement, SinkFacts};
use super::budget::{degraded_alert, ScanBudget};
use super::env_reads::EnvEvidence;
use super::hpack::{H2Headers, H2Requests};
use super::protocols;
use crate::detect::harvest::{self, Harvested};
use crate::detect::rules::Severity;
use crate::detect::{Engine, Finding, LearnedSecrets, ScanOptions, StreamScanner};
use crate::ops::metrics::{FindingLabels, Metrics, ReasonLabels};
use crate::state::events::{Endpoint, EventBody, FdKind, Peer, ProcessRef, SensorEvent};
use crate::state::names::NameCache;

/// Settings of the monitor.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Credential-file basenames: writes to them are stores, not leaks.
    pub credential_names: Vec<String>,
    /// One alert per (workspace, token, destination) within this window.
    pub dedup_window: Duration,
    /// Detector time each workspace may use per second ([`super::budget`]).
    pub scan_budget: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            credential_names: Vec::new(),
            dedup_window: Duration::from_secs(600),
            scan_budget: Duration::from_millis(500),
        }
    }
}

/// Counters of judgements (what was seen but not, or not again, alerted).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MonitorCounts {
    /// Findings sent to an issuer of their token.
    pub allowed_issuer: u64,
    /// Findings on channels internal to their workspace (followed, not alerted).
    pub internal: u64,
    /// Findings written nowhere (`/dev/null`) or to a credential store.
    pub not_a_sink: u64,
    /// Repeats folded into an earlier alert.
    pub repeats: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Payload bytes and writes skipped unscanned because their workspace had used up its
    /// detector budget.
    pub degraded_bytes: u64,
    pub degraded_writes: u64,
    /// Kernel records lost (ring buffer full, …), as reported to the monitor.
    pub kernel_lost: u64,
    /// getenv reads of secret-bearing variables not kept as chain evidence (per-process or
    /// process-count bound reached).
    pub env_reads_dropped: u64,
}

/// Small writes are scanned in batches of up to this many bytes per stream (or when the
/// stream closes, its process exits, or the next `tick`): the per-scan carry-over then
/// costs once per batch instead of once per write. The batch waits, unscanned, in the
/// stream scanner's own buffer.
const BATCH_BYTES: usize = 4096;
/// How long a finding on an internal pipe waits for its reader to turn out to be a
/// clipboard tool (the reader's exec may be processed after the write).
const PIPE_GRACE: Duration = Duration::from_secs(5);
/// Hops remembered per token.
const MAX_HOPS: usize = 8;

/// What a workspace holds and where it came from.
struct WsState {
    learned: LearnedSecrets,
    /// Where each learned secret came from, by fingerprint.
    sources: HashMap<String, SecretSource>,
    /// Issuer hosts the workspace's own environment names, by provider.
    issuers: Vec<(String, String)>,
    /// Processes each token passed through on internal channels, by fingerprint.
    hops: HashMap<String, Vec<Hop>>,
    /// Environment variables each learned env secret was found in, by fingerprint.
    env_vars: HashMap<String, Vec<String>>,
    /// Its share of detector time.
    budget: ScanBudget,
    /// Addresses its DNS answers named.
    names: NameCache,
}

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
    /// Destination name and where it came from (`sni`, `http`, `h2`).
    host: Option<(String, &'static str)>,
    /// HTTP/2 request parser of a TLS plaintext stream that opened with the preface.
    h2: Option<H2Requests>,
    /// Context of the latest write not scanned yet (what alerts report).
    ctx: Option<WriteCtx>,
    /// Stream ranges of OSC 52 sequences (judged as clipboard writes on their own).
    clip: Vec<(u64, u64)>,
    /// Stream offset and time of each write not scanned yet: a finding carries the time
    /// of the write it starts in, not of the batch's last one.
    writes: Vec<(u64, SystemTime)>,
}

#[derive(Clone)]
struct WriteCtx {
    time: SystemTime,
    process: Arc<ProcessRef>,
    tid: u32,
    fd: i32,
    fd_kind: FdKind,
    endpoint: Option<Endpoint>,
    syscall: &'static str,
    peer: Option<Arc<Peer>>,
    /// TLS plaintext (the library's stack name).
    tls: Option<&'static str>,
}

/// A finding on an internal pipe whose readers may still exec a clipboard tool.
struct PendingPipe {
    until: Instant,
    readers: Vec<u32>,
    /// The pipe (a reader forked after the write still reads it).
    pipe: Option<u64>,
    ctx: WriteCtx,
    finding: Finding,
}

/// A raised alert and its repeats within the window.
struct Raised {
    since: Instant,
    alert: Alert,
    count: u64,
    last_seen: SystemTime,
}

/// Streams, learned secrets and raised alerts of all workspaces.
pub struct Monitor {
    engine: Arc<Engine>,
    cfg: MonitorConfig,
    workspaces: HashMap<String, WsState>,
    /// By (pid, fd, layer): the plaintext inside a TLS connection is its own stream beside
    /// the bytes of the socket (ciphertext), and so are the decoded HTTP/2 headers.
    streams: HashMap<StreamKey, Stream>,
    /// Processes whose TLS stacks have no hook (their TLS streams are opaque).
    tls_opaque: std::collections::HashSet<u32>,
    /// Which processes read which secret-bearing variables through getenv.
    env_reads: EnvEvidence,
    opts: ScanOptions,
    raised: HashMap<(String, String, String), Raised>,
    pending_pipes: Vec<PendingPipe>,
    /// Clipboard tools that started within [`PIPE_GRACE`]: (when, pid, pipes it reads). A
    /// write judged after the tool's exec (the write's bytes are scanned at the end of the
    /// batch that also carried the exec) still finds its reader here.
    clipboard_execs: Vec<(Instant, u32, Vec<u64>)>,
    /// DNS-over-TCP answers being reassembled, by (pid, fd); `None` once a record was cut
    /// (the stream's framing is lost until the socket closes).
    dns_tcp: HashMap<(u32, i32), Option<Vec<u8>>>,
    /// The DNS name of the address each socket connected to, taken at connect (a long-lived
    /// connection keeps its name after the answer's TTL), by (pid, fd).
    sock_names: HashMap<(u32, i32), String>,
    /// What was judged and not alerted.
    pub counts: MonitorCounts,
    metrics: Option<Arc<Metrics>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// MITRE ATT&CK techniques of a verdict.
fn mitre(verdict: Verdict, sink_kind: &str) -> Vec<String> {
    let ids: &[&str] = match (verdict, sink_kind) {
        (Verdict::Exfiltration, "dns") => &["T1048.003"],
        (Verdict::Exfiltration, _) => &["T1041", "T1567"],
        (Verdict::Clipboard, _) => &["T1115"],
        (Verdict::LogExposure | Verdict::TerminalExposure | Verdict::Stored, _) => &["T1552.001"],
        (Verdict::IpcExposure, _) => &["T1552"],
        (Verdict::Harvesting, _) => &["T1552.007", "T1003.007"],
        (Verdict::UnmonitoredChannel | Verdict::DetectionDegraded, _) => &["T1562.001"],
        (Verdict::AllowedIssuer, _) => &[],
    };
    ids.iter().map(|s| s.to_string()).collect()
}

/// The alert's severity: the rule's, lowered for tokens stored in the workspace's files.
fn severity(verdict: Verdict, rule: Severity) -> Severity {
    match verdict {
        Verdict::Stored => Severity::Low,
        _ => rule,
    }
}

impl Monitor {
    /// A monitor over `engine`.
    pub fn new(engine: Arc<Engine>, cfg: MonitorConfig) -> Monitor {
        let env_reads = EnvEvidence::new(cfg.dedup_window);
        Monitor {
            engine,
            cfg,
            workspaces: HashMap::default(),
            streams: HashMap::default(),
            tls_opaque: Default::default(),
            env_reads,
            opts: ScanOptions::default(),
            raised: HashMap::default(),
            pending_pipes: Vec::new(),
            clipboard_execs: Vec::new(),
            dns_tcp: HashMap::default(),
            sock_names: HashMap::default(),
            counts: MonitorCounts::default(),
            metrics: None,
        }
    }

    /// Detects with `engine` from now on (a reload's rules). Learned secrets, streams and
    /// raised alerts stay; `engine` must use the same fingerprint key.
    pub fn set_engine(&mut self, engine: Arc<Engine>) {
        self.engine = engine;
    }

    /// The engine detecting now.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Reports findings and judgements to `metrics` too.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Monitor {
        self.metrics = Some(metrics);
        self
    }

    /// Counts a finding judged and not alerted.
    fn suppress(&mut self, reason: &'static str) {
        match reason {
            "allowed_issuer" => self.counts.allowed_issuer += 1,
            "internal" => self.counts.internal += 1,
            "repeat" => self.counts.repeats += 1,
            _ => self.counts.not_a_sink += 1,
        }
        if let Some(m) = &self.metrics {
            m.suppressed.get_or_create(&ReasonLabels { reason }).inc();
        }
    }

    fn ws(&mut self, id: &str) -> &mut WsState {
        let fp = self.engine.fingerprinter().clone();
        let rate = self.cfg.scan_budget.as_secs_f64();
        self.workspaces
            .entry(id.to_string())
            .or_insert_with(|| WsState {
                learned: LearnedSecrets::new(fp),
                sources: HashMap::default(),
                issuers: Vec::new(),
                hops: HashMap::default(),
                env_vars: HashMap::default(),
                budget: ScanBudget::new(rate),
                names: NameCache::default(),
            })
    }

    /// The process with secrets in its argv redacted (argv is where `curl -H "…token…"`
    /// puts them): known formats, and the secrets learned in any workspace — detection is
    /// per workspace, but the sensor never prints a value it knows to be a secret.
    pub fn redact_process(&self, p: &Arc<ProcessRef>) -> Arc<ProcessRef> {
        let own = self.workspaces.get(&p.workspace.id).map(|w| &w.learned);
        let others = self
            .workspaces
            .iter()
            .filter(|(id, _)| **id != p.workspace.id)
            .map(|(_, w)| &w.learned);
        let argv: Vec<String> = p
            .argv
            .iter()
            .map(|a| {
                let mine = self.engine.redact(a, own);
                others
                    .clone()
                    .fold(mine, |t, l| redact_learned(&self.engine, &t, l))
            })
            .collect();
        if argv == p.argv {
            return p.clone();
        }
        let mut q = (**p).clone();
        q.argv = argv;
        Arc::new(q)
    }

    /// Learns harvested secrets into a workspace, remembering where each came from.
    fn learn(&mut self, ws: &str, found: Vec<Harvested>, source: impl Fn(&str) -> SecretSource) {
        let fp = self.engine.fingerprinter().clone();
        let w = self.ws(ws);
        for (value, meta) in found {
            let key = fp.fingerprint(&value);
            let src = source(&meta.source);
            if w.learned.learn(&value, meta) {
                tracing::debug!(source = src.kind, workspace = %ws, "learned a workspace secret");
                w.sources.entry(key).or_insert(src);
            }
        }
    }

    /// Remembers which environment variables held each env secret about to be learned
    /// (the names a getenv read must match to explain a leak of it).
    fn note_env_vars(&mut self, ws: &str, found: &[Harvested]) {
        let fp = self.engine.fingerprinter().clone();
        let w = self.ws(ws);
        for (value, meta) in found {
            let Some(var) = meta.source.strip_prefix("env:") else {
                continue;
            };
            let names = w.env_vars.entry(fp.fingerprint(value)).or_default();
            if names.len() < 8 && !names.iter().any(|n| n == var) {
                names.push(var.to_string());
            }
        }
    }

    /// Issuers of a finding: its own (rule or learned secret) plus the hosts its
    /// workspace's environment names for the same provider.
    fn issuers(&self, ws: &str, f: &Finding) -> Vec<String> {
        let mut out = f.issuers.clone();
        if let Some(w) = self.workspaces.get(ws) {
            out.extend(
                w.issuers
                    .iter()
                    .filter(|(p, _)| *p == f.provider)
                    .map(|(_, h)| h.clone()),
            );
        }
        out
    }

    /// Builds the alert for a leak (not yet deduplicated).
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        ctx: &WriteCtx,
        finding: Finding,
        verdict: Verdict,
        j: &Judgement,
        host: Option<(String, &'static str)>,
        dns_query: Option<String>,
        tls: Option<&'static str>,
    ) -> Alert {
        let ws = &ctx.process.workspace;
        let state = self.workspaces.get(&ws.id);
        let source = state
            .and_then(|w| w.sources.get(&finding.fingerprint).cloned())
            .unwrap_or(SecretSource {
                kind: "known_format",
                ..Default::default()
            });
        let hops: Vec<Hop> = state
            .and_then(|w| w.hops.get(&finding.fingerprint))
            .map(|h| {
                h.iter()
                    .filter(|h| h.pid != ctx.process.pid)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let vars = state
            .and_then(|w| w.env_vars.get(&finding.fingerprint))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let env_reads = self.env_reads.for_chain(&ctx.process, &hops, &source, vars);
        Alert {
            kind: "finding",
            id: new_id(),
            time: rfc3339(ctx.time),
            verdict,
            severity: severity(verdict, finding.severity),
            mitre: mitre(verdict, j.kind),
            workspace: (**ws).clone(),
            process: self.redact_process(&ctx.process),
            tid: ctx.tid,
            sink: Sink {
                kind: if dns_query.is_some() { "dns" } else { j.kind },
                fd: ctx.fd,
                fd_kind: ctx.fd_kind,
                endpoint: ctx.endpoint.clone(),
                syscall: ctx.syscall,
                host: host.as_ref().map(|h| h.0.clone()),
                host_source: host.map(|h| h.1),
                tls,
                dns_query,
                boundary: j.boundary,
            },
            chain: Chain {
                source,
                hops,
                sender_pid: ctx.process.pid,
                sender_exe: ctx.process.exe.clone(),
                env_reads,
            },
            harvest: None,
            count: 1,
            repeat_of: None,
            last_seen: None,
            detail: None,
            finding: Some(finding),
        }
    }

    /// Raises an alert unless the same (workspace, token, destination) was raised within
    /// the window, in which case it only counts.
    fn raise(&mut self, alert: Alert, out: &mut Vec<Alert>) {
        let fp = alert
            .finding
            .as_ref()
            .map(|f| f.fingerprint.clone())
            .unwrap_or_default();
        let dest = destination(&alert);
        let key = (alert.workspace.id.clone(), fp, dest);
        let now = Instant::now();
        let seen = humantime::parse_rfc3339(&alert.time).unwrap_or_else(|_| SystemTime::now());
        if let Some(r) = self.raised.get_mut(&key) {
            if now.duration_since(r.since) < self.cfg.dedup_window {
                r.count += 1;
                r.last_seen = seen;
                self.suppress("repeat");
                return;
            }
        }
        if let Some(old) = self.raised.remove(&key) {
            out.extend(repeat_record(old));
        }
        self.counts.alerts += 1;
        if let Some(m) = &self.metrics {
            let labels = FindingLabels {
                verdict: alert.verdict.as_str(),
                provider: alert
                    .finding
                    .as_ref()
                    .map(|f| f.provider.clone())
                    .unwrap_or_default(),
                severity: alert.severity.as_str(),
            };
            m.findings.get_or_create(&labels).inc();
            m.workspaces.set(self.workspaces.len() as i64);
        }
        self.raised.insert(
            key,
            Raised {
                since: now,
                alert: alert.clone(),
                count: 1,
                last_seen: seen,
            },
        );
        out.push(alert);
    }

    /// Judges one finding written through `ctx` and raises what crosses the boundary.
    fn judge_finding(
        &mut self,
        ctx: &WriteCtx,
        finding: Finding,
        host: Option<(String, &'static str)>,
        out: &mut Vec<Alert>,
    ) {
        let ws = ctx.process.workspace.id.clone();
        let issuers = self.issuers(&ws, &finding);
        let facts = SinkFacts {
            fd: ctx.fd,
            fd_kind: ctx.fd_kind,
            endpoint: ctx.endpoint.as_ref(),
            host: host.as_ref().map(|h| h.0.as_str()),
            peer: ctx.peer.as_deref(),
            in_container: ctx.process.container_id.is_some(),
        };
        let j = boundary::judge(&facts, &issuers, &self.cfg.credential_names);
        match j.verdict {
            None => {
                if j.boundary == Boundary::Internal {
                    self.suppress("internal");
                    self.record_hop(&ws, &finding.fingerprint, ctx, j.kind);
                    if let Some(peer) = &ctx.peer {
                        let p = PendingPipe {
                            until: Instant::now() + PIPE_GRACE,
                            readers: peer.readers.iter().map(|r| r.pid).collect(),
                            pipe: peer.pipe,
                            ctx: ctx.clone(),
                            finding,
                        };
                        let to_clipboard = self.clipboard_execs.iter().any(|(_, pid, reads)| {
                            p.readers.contains(pid) || p.pipe.is_some_and(|id| reads.contains(&id))
                        });
                        if to_clipboard {
                            self.pipe_to_clipboard(p, out);
                        } else {
                            self.pending_pipes.push(p);
                        }
                    }
                } else {
                    self.suppress("not_a_sink");
                }
            }
            Some(Verdict::AllowedIssuer) => {
                self.suppress("allowed_issuer");
                tracing::debug!(detector = %finding.detector, "token sent to its issuer");
            }
            Some(v) => {
                let tls = self.tls_of(ctx, host.as_ref());
                let a = self.alert(ctx, finding, v, &j, host, None, tls);
                self.raise(a, out);
            }
        }
    }

    /// `plaintext` for TLS plaintext, `opaque` for a TLS stream (named by its SNI) of a
    /// process whose TLS stacks have no hook.
    fn tls_of(
        &self,
        ctx: &WriteCtx,
        host: Option<&(String, &'static str)>,
    ) -> Option<&'static str> {
        if ctx.tls.is_some() {
            Some("plaintext")
        } else if host.is_some_and(|h| h.1 == "sni") && self.tls_opaque.contains(&ctx.process.pid) {
            Some("opaque")
        } else {
            None
        }
    }

    fn record_hop(&mut self, ws: &str, fp: &str, ctx: &WriteCtx, via: &'static str) {
        let hop = Hop {
            pid: ctx.process.pid,
            exe: ctx.process.exe.clone(),
            via,
        };
        let hops = self.ws(ws).hops.entry(fp.to_string()).or_default();
        if !hops.contains(&hop) && hops.len() < MAX_HOPS {
            hops.push(hop);
        }
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
        let rate = self.cfg.scan_budget.as_secs_f64();
        let learned_only = self
            .workspaces
            .get_mut(&ctx.process.workspace.id)
            .is_some_and(|w| w.budget.exhausted(rate));
        let learned = self
            .workspaces
            .get(&ctx.process.workspace.id)
            .map(|w| &w.learned);
        let started = Instant::now();
        let findings = stream
            .scanner
            .scan_as(&self.engine, learned, self.opts, learned_only);
        let spent = started.elapsed().as_secs_f64();
        let host = stream.host.clone();
        let clip = std::mem::take(&mut stream.clip);
        let writes = std::mem::take(&mut stream.writes);
        // The last write may continue into the next batch (a token split across writes).
        stream.writes.extend(writes.last().copied());
        if let Some(w) = self.workspaces.get_mut(&ctx.process.workspace.id) {
            w.budget.charge(spent);
        }
        let host = if findings.is_empty() {
            host
        } else {
            host.or_else(|| self.dns_name(&ctx))
        };
        let mut out = Vec::new();
        for finding in findings {
            // Inside an OSC 52 sequence: already judged as a clipboard write.
            if clip
                .iter()
                .any(|(s, e)| finding.offset >= *s && finding.offset < *e)
            {
                continue;
            }
            // The time of the write the token starts in, not of the batch's last write.
            let at = writes.partition_point(|(off, _)| *off <= finding.offset);
            let ctx = match at.checked_sub(1).map(|i| writes[i].1) {
                Some(time) if time != ctx.time => WriteCtx {
                    time,
                    ..ctx.clone()
                },
                _ => ctx.clone(),
            };
            self.judge_finding(&ctx, finding, host.clone(), &mut out);
        }
        out
    }

    /// Scans a payload that is not part of the stream (a clipboard sequence's content, a
    /// DNS name's hidden data) with the workspace's learned secrets.
    fn scan_extra(&self, ws: &str, data: &[u8]) -> Vec<Finding> {
        let learned = self.workspaces.get(ws).map(|w| &w.learned);
        self.engine.scan_with_learned(data, 0, learned, self.opts)
    }

    /// OSC 52 clipboard writes inside terminal (or piped) output.
    fn clipboard_sequences(
        &mut self,
        ctx: &WriteCtx,
        data: &[u8],
        offset: u64,
        out: &mut Vec<Alert>,
    ) {
        let seqs = protocols::osc52(data);
        if seqs.is_empty() {
            return;
        }
        let ws = ctx.process.workspace.id.clone();
        let j = Judgement {
            boundary: Boundary::Terminal,
            verdict: Some(Verdict::Clipboard),
            kind: "clipboard",
        };
        for s in seqs {
            if let Some(stream) = self.streams.get_mut(&(ctx.process.pid, ctx.fd, RAW)) {
                stream
                    .clip
                    .push((offset + s.start as u64, offset + s.end as u64));
            }
            for f in dedup_by_fingerprint(self.scan_extra(&ws, &s.payload)) {
                let a = self.alert(ctx, f, Verdict::Clipboard, &j, None, None, None);
                self.raise(a, out);
            }
        }
    }

    /// DNS queries: tokens carried in query names (raw, or hidden as hex/base32/base64url
    /// across labels) are exfiltration through DNS, whatever resolver is asked.
    fn dns_queries(&mut self, ctx: &WriteCtx, data: &[u8], tcp: bool, out: &mut Vec<Alert>) {
        let ws = ctx.process.workspace.id.clone();
        for q in protocols::dns_queries(data, tcp) {
            let (domain, _) = protocols::split_registered(&q.name);
            let mut found = self.scan_extra(&ws, q.name.as_bytes());
            for hidden in protocols::dns_hidden_data(&q.name) {
                found.extend(self.scan_extra(&ws, &hidden));
            }
            let j = Judgement {
                boundary: Boundary::Outside,
                verdict: Some(Verdict::Exfiltration),
                kind: "dns",
            };
            for f in dedup_by_fingerprint(found) {
                let a = self.alert(
                    ctx,
                    f,
                    Verdict::Exfiltration,
                    &j,
                    Some((domain.clone(), "dns")),
                    Some(q.name.clone()),
                    None,
                );
                self.raise(a, out);
            }
        }
    }

    /// A clipboard tool started: tokens in its argv are on the clipboard, and so are
    /// tokens recently written into pipes it reads.
    fn clipboard_tool_exec(
        &mut self,
        ev: &SensorEvent,
        argv: &[String],
        reads: &[u64],
        out: &mut Vec<Alert>,
    ) {
        let ctx = WriteCtx {
            time: ev.time,
            process: ev.process.clone(),
            tid: ev.tid,
            fd: -1,
            fd_kind: FdKind::Other,
            endpoint: None,
            syscall: "execve",
            peer: None,
            tls: None,
        };
        let j = Judgement {
            boundary: Boundary::LocalIpc,
            verdict: Some(Verdict::Clipboard),
            kind: "clipboard",
        };
        let args = argv.iter().skip(1).cloned().collect::<Vec<_>>().join("\n");
        for f in dedup_by_fingerprint(self.scan_extra(&ev.process.workspace.id, args.as_bytes())) {
            let a = self.alert(&ctx, f, Verdict::Clipboard, &j, None, None, None);
            self.raise(a, out);
        }
        let pid = ev.process.pid;
        self.clipboard_execs
            .push((Instant::now(), pid, reads.to_vec()));
        let (hit, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_pipes)
            .into_iter()
            .partition(|p| {
                p.readers.contains(&pid) || p.pipe.is_some_and(|id| reads.contains(&id))
            });
        self.pending_pipes = keep;
        for p in hit {
            self.pipe_to_clipboard(p, out);
        }
    }

    /// A token written into a pipe that a clipboard tool reads.
    fn pipe_to_clipboard(&mut self, p: PendingPipe, out: &mut Vec<Alert>) {
        let j = Judgement {
            boundary: Boundary::Pipe,
            verdict: Some(Verdict::Clipboard),
            kind: "clipboard",
        };
        let a = self.alert(&p.ctx, p.finding, Verdict::Clipboard, &j, None, None, None);
        self.raise(a, out);
    }

    /// Scans every stream's pending bytes (call after each batch of events: small writes
    /// wait at most one batch).
    pub fn flush_all(&mut self) -> Vec<Alert> {
        let keys: Vec<_> = self
            .streams
            .iter()
            .filter(|(_, s)| s.scanner.pending() > 0)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter().flat_map(|k| self.flush(k)).collect()
    }

    /// A TLS connection opened (its ClientHello named `sni`) by a process whose TLS stack has
    /// no hook, from a workspace that holds secrets: what it sends cannot be inspected, so
    /// the blind spot is reported (`unmonitored_channel`, low; one per workspace and
    /// destination per window). Not for the workspace's own issuer hosts.
    fn opaque_tls(&mut self, ctx: &WriteCtx, sni: &str, out: &mut Vec<Alert>) {
        if !self.tls_opaque.contains(&ctx.process.pid) {
            return;
        }
        let Some(w) = self.workspaces.get(&ctx.process.workspace.id) else {
            return;
        };
        if w.learned.is_empty() || w.issuers.iter().any(|(_, h)| h.eq_ignore_ascii_case(sni)) {
            return;
        }
        let mut a = degraded_alert(ctx.process.clone(), format!(
            "opaque_tls: {} has no TLS hook for its stack; what it sends to {sni} is encrypted before the sensor can read it, while its workspace holds {} learned secrets",
            ctx.process.exe,
            w.learned.len()
        ));
        a.time = rfc3339(ctx.time);
        a.verdict = Verdict::UnmonitoredChannel;
        a.severity = Severity::Low;
        a.tid = ctx.tid;
        a.sink = Sink {
            kind: "network",
            fd: ctx.fd,
            fd_kind: ctx.fd_kind,
            endpoint: ctx.endpoint.clone(),
            syscall: ctx.syscall,
            host: Some(sni.to_string()),
            host_source: Some("sni"),
            tls: Some("opaque"),
            dns_query: None,
            boundary: Boundary::Outside,
        };
        a.process = self.redact_process(&ctx.process);
        self.raise(a, out);
    }

    /// Accounts a write of `len` payload bytes by `ev`'s process against its workspace's
    /// detector budget. Over budget, the workspace's streams are scanned for its learned
    /// secrets only (see `flush`); the write is counted and the workspace gets one
    /// `detection_degraded` alert per window. False when over budget.
    fn admit(&mut self, ev: &SensorEvent, len: usize, out: &mut Vec<Alert>) -> bool {
        let rate = self.cfg.scan_budget.as_secs_f64();
        let b = &mut self.ws(&ev.process.workspace.id).budget;
        if b.admit(rate, len, &ev.process) {
            return true;
        }
        let (bytes, writes) = (b.degraded_bytes, b.degraded_writes);
        self.counts.degraded_bytes += len as u64;
        self.counts.degraded_writes += 1;
        if let Some(m) = &self.metrics {
            m.detection_degraded_bytes.inc_by(len as u64);
        }
        let detail = format!(
            "scan_budget: this workspace used up its {} ms/s of detector time; its payload is scanned for the workspace's learned secrets only (the format rules are skipped) until the budget refills ({bytes} bytes in {writes} writes so far)",
            self.cfg.scan_budget.as_millis()
        );
        self.raise(degraded_alert(ev.process.clone(), detail), out);
        false
    }

    /// Kernel records were lost (`lost` more since the last call; `causes` says where):
    /// a `detection_degraded` alert on the workspace that wrote the most just before.
    pub fn events_lost(&mut self, lost: u64, causes: &str) -> Vec<Alert> {
        self.counts.kernel_lost += lost;
        let busiest = self
            .workspaces
            .values_mut()
            .filter(|w| w.budget.last_writer.is_some())
            .map(|w| (w.budget.recent(), w.budget.last_writer.clone()))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Vec::new();
        if let Some((_, Some(p))) = busiest {
            let detail = format!(
                "kernel_loss: {lost} kernel records lost ({causes}) while this workspace was the busiest writer; findings in the lost records are missed"
            );
            self.raise(degraded_alert(p, detail), &mut out);
        }
        out
    }

    /// Scans every stream's pending bytes and closes expired deduplication windows (call
    /// periodically).
    pub fn tick(&mut self) -> Vec<Alert> {
        let mut out = self.flush_all();
        let now = Instant::now();
        self.pending_pipes.retain(|p| p.until > now);
        self.clipboard_execs
            .retain(|(at, _, _)| now.duration_since(*at) < PIPE_GRACE);
        self.env_reads.expire();
        let window = self.cfg.dedup_window;
        let expired: Vec<_> = self
            .raised
            .iter()
            .filter(|(_, r)| now.duration_since(r.since) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(r) = self.raised.remove(&k) {
                out.extend(repeat_record(r));
            }
        }
        out
    }

    /// Scans everything still pending and summarizes every open window's repeats (call at
    /// shutdown).
    pub fn finish(&mut self) -> Vec<Alert> {
        let mut out = self.tick();
        for (_, r) in self.raised.drain() {
            out.extend(repeat_record(r));
        }
        out
    }

    /// Scans what a stream still holds and forgets it.
    fn close(&mut self, key: StreamKey) -> Vec<Alert> {
        let alerts = self.flush(key);
        self.streams.remove(&key);
        alerts
    }

    /// Feeds one event; returns the alerts it raises.
    pub fn handle(&mut self, ev: &SensorEvent) -> Vec<Alert> {
        let ws = ev.process.workspace.id.clone();
        let mut out = Vec::new();
        match &ev.body {
            EventBody::Exec {
                env, argv, reads, ..
            } => {
                let (pid, exe) = (ev.process.pid, ev.process.exe.clone());
                self.env_reads.new_process(pid);
                let found = harvest::from_env(env);
                self.note_env_vars(&ws, &found);
                self.learn(&ws, found, |src| SecretSource {
                    kind: "env",
                    var: src.strip_prefix("env:").map(str::to_string),
                    pid: Some(pid),
                    exe: Some(exe.clone()),
                    ..Default::default()
                });
                let issuers = harvest::env_issuers(env);
                let w = self.ws(&ws);
                for i in issuers {
                    if !w.issuers.contains(&i) {
                        w.issuers.push(i);
                    }
                }
                if boundary::is_clipboard_tool(&ev.process.exe) {
                    self.clipboard_tool_exec(ev, argv, reads, &mut out);
                }
            }
            EventBody::Read {
                path: Some(path),
                data,
                ..
            } => {
                let (pid, exe) = (ev.process.pid, ev.process.exe.clone());
                self.learn(&ws, harvest::from_file(path, data), |_| SecretSource {
                    kind: "file",
                    path: Some(path.clone()),
                    pid: Some(pid),
                    exe: Some(exe.clone()),
                    ..Default::default()
                });
            }
            EventBody::Read {
                fd,
                endpoint: Some(ep),
                data,
                total,
                ..
            } => {
                if let Some(tcp) = dns_transport(Some(ep)) {
                    let cut = (data.len() as u64) < *total;
                    self.dns_answers(ev, *fd, data, tcp, cut);
                }
            }
            EventBody::Connect {
                fd,
                endpoint: Some(Endpoint::Inet { addr, .. }),
                ..
            } => {
                let key = (ev.process.pid, *fd);
                let name = self
                    .workspaces
                    .get_mut(&ws)
                    .and_then(|w| w.names.lookup(addr.ip(), Instant::now()))
                    .map(str::to_string);
                match name {
                    Some(n) => {
                        self.sock_names.insert(key, n);
                    }
                    None => {
                        self.sock_names.remove(&key);
                    }
                }
            }
            EventBody::Close { fd } => {
                self.sock_names.remove(&(ev.process.pid, *fd));
                self.dns_tcp.remove(&(ev.process.pid, *fd));
                out = [RAW, TLS, H2_HEADERS]
                    .into_iter()
                    .flat_map(|l| self.close((ev.process.pid, *fd, l)))
                    .collect()
            }
            EventBody::Fork { child } => self.env_reads.new_process(*child),
            EventBody::EnvRead { var, .. } => {
                let learned = self.workspaces.get(&ws);
                let learned = |v: &str| {
                    learned.is_some_and(|w| w.env_vars.values().any(|n| n.iter().any(|n| n == v)))
                };
                if EnvEvidence::relevant(var, learned) {
                    self.env_reads.record(&ev.process, var);
                    self.counts.env_reads_dropped = self.env_reads.dropped;
                }
            }
            EventBody::Exit => {
                let pid = ev.process.pid;
                self.env_reads.exited(pid);
                self.tls_opaque.remove(&pid);
                self.sock_names.retain(|(p, _), _| *p != pid);
                self.dns_tcp.retain(|(p, _), _| *p != pid);
                let keys: Vec<_> = self
                    .streams
                    .keys()
                    .filter(|(p, _, _)| *p == pid)
                    .copied()
                    .collect();
                out = keys.into_iter().flat_map(|k| self.close(k)).collect();
            }
            EventBody::TlsRead {
                fd, endpoint, data, ..
            } => self.learn_received(ev, *fd, endpoint.as_ref(), data),
            EventBody::Harvest {
                method,
                path,
                syscall,
                target,
                comm,
                ..
            } => self.harvest(ev, method, path.as_deref(), syscall, target, comm, &mut out),
            EventBody::UnmonitoredChannel { channel, detail } => {
                self.unmonitored(ev, channel, detail, &mut out)
            }
            EventBody::TlsCoverage(c) => {
                if !c.objects.is_empty() && !c.any_hooked() {
                    self.tls_opaque.insert(c.pid);
                } else {
                    self.tls_opaque.remove(&c.pid);
                }
            }
            EventBody::Write {
                fd,
                syscall,
                fd_kind,
                endpoint,
                data,
                stream_offset,
                peer,
                tls,
                truncated,
                ..
            } => {
                self.admit(ev, data.len(), &mut out);
                let ctx = WriteCtx {
                    time: ev.time,
                    process: ev.process.clone(),
                    tid: ev.tid,
                    fd: *fd,
                    fd_kind: *fd_kind,
                    endpoint: endpoint.clone(),
                    syscall,
                    peer: peer.clone(),
                    tls: *tls,
                };
                if tls.is_some() {
                    self.tls_write(ctx, data, *stream_offset, *truncated, &mut out);
                    return out;
                }
                if let Some(tcp) = dns_transport(endpoint.as_ref()) {
                    self.dns_queries(&ctx, data, tcp, &mut out);
                    return out;
                }
                self.write(ctx, data, *stream_offset, &mut out);
            }
            _ => {}
        }
        out
    }

    /// A process reached for a watched process's environment or memory. From outside the
    /// target's workspace that is harvesting, whether or not the target holds a learned
    /// secret yet; a process reading its own or a sibling's (same workspace) is not.
    #[allow(clippy::too_many_arguments)]
    fn harvest(
        &mut self,
        ev: &SensorEvent,
        method: &str,
        path: Option<&str>,
        syscall: &'static str,
        target: &Arc<ProcessRef>,
        comm: &str,
        out: &mut Vec<Alert>,
    ) {
        let reader_ws = &ev.process.workspace;
        if ev.process.pid == target.pid || reader_ws.id == target.workspace.id {
            self.suppress("internal");
            return;
        }
        let method = match method {
            "environ" => "proc_environ",
            "mem" => "proc_mem",
            "ptrace" => "ptrace",
            "process_vm_readv" => "process_vm_readv",
            "process_vm_writev" => "process_vm_writev",
            "pidfd_getfd" => "pidfd_getfd",
            _ => "unknown",
        };
        let alert = Alert {
            kind: "finding",
            id: new_id(),
            time: rfc3339(ev.time),
            verdict: Verdict::Harvesting,
            severity: Severity::High,
            mitre: mitre(Verdict::Harvesting, "process"),
            workspace: (*target.workspace).clone(),
            process: self.redact_process(&ev.process),
            tid: ev.tid,
            sink: Sink {
                kind: "process",
                fd: -1,
                fd_kind: FdKind::Other,
                endpoint: path.map(|p| Endpoint::Path {
                    path: p.to_string(),
                }),
                syscall,
                host: None,
                host_source: None,
                tls: None,
                dns_query: None,
                boundary: Boundary::Outside,
            },
            chain: Chain {
                source: SecretSource {
                    kind: "process",
                    pid: Some(target.pid),
                    exe: Some(target.exe.clone()),
                    ..Default::default()
                },
                hops: Vec::new(),
                sender_pid: ev.process.pid,
                sender_exe: ev.process.exe.clone(),
                env_reads: Vec::new(),
            },
            harvest: Some(Harvest {
                method,
                reader_comm: comm.to_string(),
                target_pid: target.pid,
                target_exe: target.exe.clone(),
                path: path.map(str::to_string),
            }),
            count: 1,
            repeat_of: None,
            last_seen: None,
            detail: Some(format!("reader in workspace {}", reader_ws.id)),
            finding: None,
        };
        self.raise(alert, out);
    }

    /// A watched process used a channel whose data the sensor cannot see (io_uring): one
    /// alert per process and channel within the window, whatever it carried.
    fn unmonitored(
        &mut self,
        ev: &SensorEvent,
        channel: &'static str,
        detail: &str,
        out: &mut Vec<Alert>,
    ) {
        let alert = Alert {
            kind: "finding",
            id: new_id(),
            time: rfc3339(ev.time),
            verdict: Verdict::UnmonitoredChannel,
            severity: Severity::Medium,
            mitre: mitre(Verdict::UnmonitoredChannel, channel),
            workspace: (*ev.process.workspace).clone(),
            process: self.redact_process(&ev.process),
            tid: ev.tid,
            sink: Sink {
                kind: "unknown",
                fd: -1,
                fd_kind: FdKind::Other,
                endpoint: None,
                syscall: channel,
                host: None,
                host_source: None,
                tls: None,
                dns_query: None,
                boundary: Boundary::Unknown,
            },
            chain: Chain {
                source: SecretSource {
                    kind: "none",
                    ..Default::default()
                },
                sender_pid: ev.process.pid,
                sender_exe: ev.process.exe.clone(),
                ..Default::default()
            },
            harvest: None,
            count: 1,
            repeat_of: None,
            last_seen: None,
            detail: Some(format!("{channel}: {detail}")),
            finding: None,
        };
        self.raise(alert, out);
    }

    /// The DNS name of a write's destination when nothing in the bytes named it: the name
    /// its socket's address had at connect, else what the workspace's DNS answers say of
    /// the address now.
    fn dns_name(&mut self, ctx: &WriteCtx) -> Option<(String, &'static str)> {
        if let Some(n) = self.sock_names.get(&(ctx.process.pid, ctx.fd)) {
            return Some((n.clone(), "dns"));
        }
        let Some(Endpoint::Inet { addr, .. }) = &ctx.endpoint else {
            return None;
        };
        let w = self.workspaces.get_mut(&ctx.process.workspace.id)?;
        w.names
            .lookup(addr.ip(), Instant::now())
            .map(|n| (n.to_string(), "dns"))
    }

    /// A DNS answer a watched process read: the addresses it names go into its workspace's
    /// name cache. TCP answers are length-prefixed and may span reads; a cut read (`cut`)
    /// loses the framing until the socket closes.
    fn dns_answers(&mut self, ev: &SensorEvent, fd: i32, data: &[u8], tcp: bool, cut: bool) {
        let answers = if tcp {
            let slot = self
                .dns_tcp
                .entry((ev.process.pid, fd))
                .or_insert_with(|| Some(Vec::new()));
            let Some(buf) = slot.as_mut() else {
                return;
            };
            buf.extend_from_slice(data);
            let mut used = 0;
            while let Some(h) = buf.get(used..used + 2) {
                let n = u16::from_be_bytes([h[0], h[1]]) as usize;
                if buf.len() < used + 2 + n {
                    break;
                }
                used += 2 + n;
            }
            let answers = protocols::dns_answers(&buf[..used], true);
            buf.drain(..used);
            if cut {
                *slot = None;
            }
            answers
        } else {
            protocols::dns_answers(data, false)
        };
        if answers.is_empty() {
            return;
        }
        let now = Instant::now();
        let names = &mut self.ws(&ev.process.workspace.id).names;
        for a in &answers {
            names.insert(a.addr, &a.name, a.ttl, now);
        }
        tracing::debug!(
            pid = ev.process.pid,
            names = answers.len(),
            "DNS answer named addresses"
        );
    }

    fn write(&mut self, ctx: WriteCtx, data: &[u8], offset: u64, out: &mut Vec<Alert>) {
        let key = (ctx.process.pid, ctx.fd, RAW);
        let host = protocols::http_host(data)
            .map(|h| (h, "http"))
            .or_else(|| protocols::tls_sni(data).map(|h| (h, "sni")));
        if let Some((sni, "sni")) = &host {
            self.opaque_tls(&ctx, sni, out);
        }
        self.append(key, &ctx, data, offset, host, out);
        let terminal_like = matches!(ctx.fd_kind, FdKind::Tty | FdKind::Pipe);
        if terminal_like && memchr::memchr(0x1b, data).is_some() {
            self.clipboard_sequences(&ctx, data, offset, out);
        }
        if self.streams[&key].scanner.pending() >= BATCH_BYTES {
            out.extend(self.flush(key));
        }
    }

    /// Appends a write to a stream, scanning first what it held when the write does not
    /// continue it or names a new destination (those bytes were sent under the old one).
    fn append(
        &mut self,
        key: StreamKey,
        ctx: &WriteCtx,
        data: &[u8],
        offset: u64,
        host: Option<(String, &'static str)>,
        out: &mut Vec<Alert>,
    ) {
        let flush_first = self.streams.get(&key).is_some_and(|s| {
            s.scanner.pending() > 0
                && (s.scanner.position() != offset
                    || host.as_ref().is_some_and(|h| s.host.as_ref() != Some(h)))
        });
        if flush_first {
            out.extend(self.flush(key));
        }
        let stream = self.streams.entry(key).or_default();
        if host.is_some() {
            stream.host = host;
        }
        stream.scanner.append(offset, data);
        stream.writes.push((offset, ctx.time));
        stream.ctx = Some(ctx.clone());
    }

    /// TLS plaintext written through a TLS library: its own stream (and the decoded
    /// HTTP/2 request headers as a third), named by the ciphertext stream's SNI.
    fn tls_write(
        &mut self,
        ctx: WriteCtx,
        data: &[u8],
        offset: u64,
        truncated: bool,
        out: &mut Vec<Alert>,
    ) {
        let key = (ctx.process.pid, ctx.fd, TLS);
        let (host, headers) = self.plaintext_host(key, data, offset, truncated);
        self.append(key, &ctx, data, offset, host.clone(), out);
        if self.streams[&key].scanner.pending() >= BATCH_BYTES {
            out.extend(self.flush(key));
        }
        // HTTP/2 headers travel HPACK-coded: scan their decoded text as well.
        let hkey = (key.0, key.1, H2_HEADERS);
        for h in headers {
            let at = self
                .streams
                .get(&hkey)
                .map(|s| s.scanner.position())
                .unwrap_or(0);
            self.append(hkey, &ctx, &h.text, at, host.clone(), out);
            if self.streams[&hkey].scanner.pending() >= BATCH_BYTES {
                out.extend(self.flush(hkey));
            }
        }
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
    ) -> (Option<(String, &'static str)>, Vec<H2Headers>) {
        let sni = self
            .streams
            .get(&(key.0, key.1, RAW))
            .and_then(|s| s.host.clone())
            .filter(|h| h.1 == "sni");
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
        let host = sni
            .or_else(|| protocols::http_host(data).map(|h| (h, "http")))
            .or_else(|| authority.map(|h| (h, "h2")));
        (host, headers)
    }

    /// Learns the tokens a watched process received over TLS (an API minting a token, a
    /// login flow), with the peer as their source and an extra issuer.
    fn learn_received(
        &mut self,
        ev: &SensorEvent,
        fd: i32,
        endpoint: Option<&Endpoint>,
        data: &[u8],
    ) {
        let named = self.sock_names.get(&(ev.process.pid, fd)).cloned();
        let host = self
            .streams
            .get(&(ev.process.pid, fd, RAW))
            .and_then(|s| s.host.as_ref().map(|h| h.0.clone()))
            .or(named)
            .or_else(|| match endpoint {
                Some(Endpoint::Inet { addr, .. }) => Some(addr.ip().to_string()),
                _ => None,
            });
        let opts = ScanOptions {
            decode: false,
            candidates: false,
        };
        let mut found: Vec<Harvested> = Vec::new();
        for f in self.engine.scan(data, 0, opts) {
            if f.encoding != crate::detect::Encoding::Raw {
                continue;
            }
            let start = f.offset as usize;
            let Some(v) = data.get(start..start + f.length) else {
                continue;
            };
            let mut issuers = f.issuers.clone();
            if let Some(h) = &host {
                if !issuers.contains(h) {
                    issuers.push(h.clone());
                }
            }
            found.push((
                zeroize::Zeroizing::new(v.to_vec()),
                crate::detect::learned::SecretMeta {
                    source: format!("tls:{}", host.as_deref().unwrap_or("unknown")),
                    provider: f.provider.clone(),
                    kind: f.kind.clone(),
                    issuers,
                    revoke: f.revoke.clone(),
                },
            ));
        }
        let (pid, exe) = (ev.process.pid, ev.process.exe.clone());
        let ws = ev.process.workspace.id.clone();
        self.learn(&ws, found, |_| SecretSource {
            kind: "tls_received",
            host: host.clone(),
            pid: Some(pid),
            exe: Some(exe.clone()),
            ..Default::default()
        });
    }
}

/// Redacts the secrets of one workspace's learned set from already redacted text.
fn redact_learned(engine: &Engine, text: &str, learned: &LearnedSecrets) -> String {
    if learned.is_empty() || !text.contains(|c: char| c.is_ascii_alphanumeric()) {
        return text.to_string();
    }
    engine.redact(text, Some(learned))
}

/// `Some(tcp)` when an endpoint is a DNS server (port 53).
fn dns_transport(ep: Option<&Endpoint>) -> Option<bool> {
    match ep {
        Some(Endpoint::Inet { proto, addr }) if addr.port() == 53 => Some(proto == "tcp"),
        _ => None,
    }
}

/// One finding per token (a token hidden several ways in one payload is one leak).
fn dedup_by_fingerprint(mut found: Vec<Finding>) -> Vec<Finding> {
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert(f.fingerprint.clone()));
    found
}

/// The destination an alert is deduplicated on.
fn destination(a: &Alert) -> String {
    let s = &a.sink;
    if a.verdict == Verdict::DetectionDegraded {
        // One per workspace and window, whatever degraded it.
        return s.kind.to_string();
    }
    if a.verdict == Verdict::UnmonitoredChannel && s.tls.is_none() {
        // One per process and channel (`sink.syscall` names the channel).
        return format!("channel:{}:{}", a.process.pid, s.syscall);
    }
    if let Some(h) = &a.harvest {
        // Harvesting: one alert per reader, target and method within the window.
        return format!("process:{}:{}:{}", a.process.pid, h.target_pid, h.method);
    }
    let place = match (&s.host, &s.endpoint) {
        (Some(h), _) => h.clone(),
        (None, Some(Endpoint::Inet { addr, .. })) => addr.to_string(),
        (None, Some(Endpoint::Unix { path } | Endpoint::Path { path })) => path.clone(),
        (None, Some(Endpoint::Pipe { inode })) => format!("pipe:{inode}"),
        (None, None) => format!("pid:{}:fd:{}", a.process.pid, s.fd),
    };
    format!("{}:{place}", s.kind)
}

/// The summary of a raised alert's repeats, if there were any.
fn repeat_record(r: Raised) -> Option<Alert> {
    if r.count < 2 {
        return None;
    }
    let mut a = r.alert;
    a.kind = "repeat";
    a.repeat_of = Some(std::mem::replace(&mut a.id, new_id()));
    a.count = r.count;
    a.last_seen = Some(rfc3339(r.last_seen));
    Some(a)
}
