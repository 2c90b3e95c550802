//! Prometheus metrics and health endpoints, so a fleet can watch every sensor the way it
//! watches its other agents: what the kernel sent and lost (by cause), what the pipeline
//! made of it (events by kind, findings by verdict/provider/severity, what was judged and
//! not alerted), how delivery and revocation fare, how hard the detector works and how far
//! behind it is, and how much is watched and attached. Served as Prometheus text on
//! `metrics_listen` (`/metrics`), with `/healthz` (probes attached) and `/readyz` (probes
//! attached and the pipeline running). Metrics never carry token material: labels are
//! verdicts, providers, severities, output names and causes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("metrics_listen {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Labels: why records or calls were lost.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: &'static str,
}

/// Labels: an event kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

/// Labels of a raised alert.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub verdict: &'static str,
    pub provider: String,
    pub severity: &'static str,
}

/// Labels: why a finding was not alerted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Labels: one output.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabels {
    pub output: String,
}

/// Labels: a delivery or revocation attempt's result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Output name, or revocation provider.
    pub target: String,
    /// `ok`, `retry`, `failed`, `dropped`, `dry_run`, …
    pub result: &'static str,
}

/// The sensor's metrics.
pub struct Metrics {
    registry: Registry,
    /// Ring-buffer records read.
    pub kernel_records: Counter,
    /// Records, calls or processes lost, by cause.
    pub lost: Family<CauseLabels, Counter>,
    /// Enriched events by kind.
    pub events: Family<KindLabels, Counter>,
    /// Alerts raised, by verdict, provider and severity.
    pub findings: Family<FindingLabels, Counter>,
    /// Findings not alerted, by reason (`allowed_issuer`, `internal`, `not_a_sink`,
    /// `repeat`).
    pub suppressed: Family<ReasonLabels, Counter>,
    /// Items waiting per output.
    pub output_queue: Family<OutputLabels, Gauge>,
    /// Delivery attempts per output and result.
    pub deliveries: Family<ResultLabels, Counter>,
    /// Revocation attempts per provider and result.
    pub revocations: Family<ResultLabels, Counter>,
    /// CPU time spent detecting, in seconds.
    pub detector_cpu_seconds: Counter<f64, AtomicU64>,
    /// Age of the newest event the detector finished, in seconds.
    pub detector_lag_seconds: Gauge<f64, AtomicU64>,
    /// Payload bytes skipped unscanned: their workspace had used up its detector budget.
    pub detection_degraded_bytes: Counter,
    /// Processes in the process table.
    pub tracked_processes: Gauge,
    /// Workspaces with learned secrets or streams.
    pub workspaces: Gauge,
    /// eBPF programs attached.
    pub programs_attached: Gauge,
    /// Uprobes attached (TLS library hooks and libc getenv hooks).
    pub uprobes_attached: Gauge,
    /// Probes are attached (health).
    attached: AtomicBool,
    /// The pipeline is running and not shutting down (readiness).
    running: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("token_sensor");
        let m = Metrics {
            registry: Registry::default(),
            kernel_records: Counter::default(),
            lost: Family::default(),
            events: Family::default(),
            findings: Family::default(),
            suppressed: Family::default(),
            output_queue: Family::default(),
            deliveries: Family::default(),
            revocations: Family::default(),
            detector_cpu_seconds: Counter::default(),
            detector_lag_seconds: Gauge::default(),
            detection_degraded_bytes: Counter::default(),
            tracked_processes: Gauge::default(),
            workspaces: Gauge::default(),
            programs_attached: Gauge::default(),
            uprobes_attached: Gauge::default(),
            attached: AtomicBool::new(false),
            running: AtomicBool::new(false),
        };
        registry.register(
            "kernel_records",
            "Ring-buffer records read",
            m.kernel_records.clone(),
        );
        registry.register(
            "lost",
            "Records, calls or processes lost, by cause",
            m.lost.clone(),
        );
        registry.register("events", "Enriched events by kind", m.events.clone());
        registry.register(
            "findings",
            "Alerts raised by verdict, provider and severity",
            m.findings.clone(),
        );
        registry.register(
            "suppressed",
            "Findings judged and not alerted, by reason",
            m.suppressed.clone(),
        );
        registry.register(
            "output_queue",
            "Items waiting per output",
            m.output_queue.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts per output and result",
            m.deliveries.clone(),
        );
        registry.register(
            "revocations",
            "Revocation attempts per provider and result",
            m.revocations.clone(),
        );
        registry.register(
            "detector_cpu_seconds",
            "CPU time spent detecting",
            m.detector_cpu_seconds.clone(),
        );
        registry.register(
            "detection_degraded_bytes",
            "Payload bytes skipped unscanned because their workspace used up its detector budget",
            m.detection_degraded_bytes.clone(),
        );
        registry.register(
            "detector_lag_seconds",
            "Age of the newest event the detector finished",
            m.detector_lag_seconds.clone(),
        );
        registry.register(
            "tracked_processes",
            "Processes in the process table",
            m.tracked_processes.clone(),
        );
        registry.register(
            "workspaces",
            "Workspaces the detector knows",
            m.workspaces.clone(),
        );
        registry.register(
            "programs_attached",
            "eBPF programs attached",
            m.programs_attached.clone(),
        );
        registry.register(
            "uprobes_attached",
            "Uprobes attached to TLS libraries and binaries and to libc getenv",
            m.uprobes_attached.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets a cumulative counter to an absolute value (kernel counters are read, not
    /// incremented here).
    pub fn set_lost(&self, cause: &'static str, total: u64) {
        self.lost
            .get_or_create(&CauseLabels { cause })
            .inner()
            .store(total, Ordering::Relaxed);
    }

    /// Marks the probes attached (or detached).
    pub fn set_attached(&self, v: bool) {
        self.attached.store(v, Ordering::SeqCst);
    }

    /// Marks the pipeline running (or stopping).
    pub fn set_running(&self, v: bool) {
        self.running.store(v, Ordering::SeqCst);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn respond(&self, path: &str) -> (u16, &'static str, String) {
        match path {
            "/metrics" => (
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.render(),
            ),
            "/healthz" if self.attached.load(Ordering::SeqCst) => {
                (200, "text/plain", "ok\n".into())
            }
            "/healthz" => (503, "text/plain", "probes not attached\n".into()),
            "/readyz"
                if self.attached.load(Ordering::SeqCst) && self.running.load(Ordering::SeqCst) =>
            {
                (200, "text/plain", "ready\n".into())
            }
            "/readyz" => (503, "text/plain", "not ready\n".into()),
            _ => (404, "text/plain", "not found\n".into()),
        }
    }
}

/// Largest request head read.
const MAX_HEAD: usize = 8192;

/// Binds `addr` and serves the endpoints until the task is dropped.
pub async fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
) -> Result<tokio::task::JoinHandle<()>, MetricsError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics endpoint listening");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let m = metrics.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), handle(conn, m)).await;
            });
        }
    }))
}

async fn handle(mut conn: tokio::net::TcpStream, m: Arc<Metrics>) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut n = 0;
    let (status, ctype, body) = loop {
        let r = conn.read(&mut buf[n..]).await?;
        if r == 0 {
            return Ok(());
        }
        n += r;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..n]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = req.path.unwrap_or("/").split('?').next().unwrap_or("/");
                if req.method != Some("GET") && req.method != Some("HEAD") {
                    break (405, "text/plain", "method not allowed\n".to_string());
                }
                break m.respond(path);
            }
            Ok(httparse::Status::Partial) if n < MAX_HEAD => continue,
            _ => break (400, "text/plain", "bad request\n".to_string()),
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out[9..12].parse().unwrap();
        (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    #[test]
    fn endpoints_serve_metrics_and_health() {
        // The server runs on the runtime's worker thread; the test is an HTTP client.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let m = Arc::new(Metrics::new());
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let _task = rt.block_on(serve(&addr.to_string(), m.clone())).unwrap();
        assert_eq!(get(addr, "/healthz").0, 503, "probes not attached yet");
        m.set_attached(true);
        assert_eq!(get(addr, "/healthz").0, 200);
        assert_eq!(get(addr, "/readyz").0, 503, "not running yet");
        m.set_running(true);
        assert_eq!(get(addr, "/readyz").0, 200);
        assert_eq!(get(addr, "/nope").0, 404);
        m.kernel_records.inc_by(41);
        m.kernel_records.inc();
        m.set_lost("ringbuf_full", 7);
        m.findings
            .get_or_create(&FindingLabels {
                verdict: "exfiltration",
                provider: "github".into(),
                severity: "critical",
            })
            .inc();
        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(
            body.contains("token_sensor_kernel_records_total 42"),
            "{body}"
        );
        assert!(
            body.contains("token_sensor_lost_total{cause=\"ringbuf_full\"} 7"),
            "{body}"
        );
        assert!(
            body.contains("token_sensor_findings_total{verdict=\"exfiltration\",provider=\"github\",severity=\"critical\"} 1"),
            "{body}"
        );
        m.kernel_records.inc();
        assert!(get(addr, "/metrics")
            .1
            .contains("token_sensor_kernel_records_total 43"));
    }
}
