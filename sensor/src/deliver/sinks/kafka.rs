//! `kafka`: alerts produced to a Kafka topic, for fleets that put Kafka between their hosts
//! and their SIEMs. Each alert is one record: the value is the alert in the output's format
//! (`native`, `ocsf`, `ecs` or `cef`), the key is its workspace id (`host:<machine id>` for
//! the sensor's own alerts without one), headers carry `id`, `type` and `format`, and the
//! timestamp is the alert's time. The partition is the Java client's default for a keyed
//! record — `murmur2(key) & 0x7fffffff % partitions` — so a workspace's alerts stay on one
//! partition, in outbox order, and land where a Java/librdkafka producer would put them.
//!
//! The client is `rskafka` (pure Rust, rustls, SASL PLAIN/SCRAM-SHA-256/SCRAM-SHA-512);
//! every produce asks `acks=all`. It has no idempotent producer, so a record whose
//! acknowledgement was lost in a broker crash may be written twice: the outbox makes
//! delivery at-least-once and the alert id (header and payload) is the dedup key, as for
//! every other output. One `send` groups the batch by partition (partitions in parallel,
//! each partition's records in order, in produce requests below the broker's default
//! message size) and remembers which alerts the broker acknowledged when another part of
//! the batch failed, so the worker's retry of the same head does not write them again.
//!
//! Item-level rejections (record too large, invalid or corrupt record) are permanent; all
//! else — brokers down, unknown topic, authentication or authorization refused, not enough
//! replicas — is transient: alerts wait in the outbox, in order, until the cluster is fixed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::{Item, OutputConfig, SendError, Sink, SinkError};
use crate::deliver::formats::Format;

/// SASL mechanisms the output speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// `PLAIN` (RFC 4616): the password crosses the wire, so use it only with `tls`.
    #[serde(rename = "plain")]
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// `SCRAM-SHA-512`.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}

/// `sasl:` of a kafka output.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslOptions {
    /// `plain` | `scram-sha-256` | `scram-sha-512`.
    pub mechanism: SaslMechanism,
    pub username: String,
    /// File holding the password (one line; a trailing newline is ignored).
    #[serde(deserialize_with = "de_password_file")]
    pub password_file: PathBuf,
}

/// `tls:` of a kafka output (`tls: {}` is TLS with the built-in web roots).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM CA(s) to trust instead of the built-in web roots.
    #[serde(default, deserialize_with = "de_tls_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Reads a password file (trailing newline dropped); errors never hold its content.
pub fn read_password(p: &Path) -> Result<Zeroizing<String>, String> {
    let text =
        Zeroizing::new(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?);
    let pw = text.strip_suffix('\n').unwrap_or(&text);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        return Err(format!("{}: empty", p.display()));
    }
    if pw.contains('\n') {
        return Err(format!("{}: holds more than one line", p.display()));
    }
    Ok(Zeroizing::new(pw.to_string()))
}

fn de_password_file<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let p = PathBuf::deserialize(d)?;
    read_password(&p).map_err(|e| serde::de::Error::custom(format!("`password_file`: {e}")))?;
    Ok(p)
}

fn de_tls_ca_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let p = PathBuf::deserialize(d)?;
    super::http::load_roots(Some(&p))
        .map_err(|e| serde::de::Error::custom(format!("`ca_file`: {e}")))?;
    Ok(Some(p))
}

/// Whether `s` is `host:port` (a name, an IPv4 address or a bracketed IPv6 address).
pub fn check_broker(s: &str) -> Result<(), String> {
    let bad = || format!("`{s}` is not host:port (e.g. kafka-1.example:9092; no scheme, no path)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(())
}

/// Whether `t` is a legal Kafka topic name.
pub fn check_topic(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 249 || t == "." || t == ".." {
        return Err(format!(
            "`{t}` is not a topic name (1 to 249 characters, not . or ..)"
        ));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{t}` is not a topic name: {c:?} is not one of a-z A-Z 0-9 . _ -"
        ));
    }
    Ok(())
}

/// Kafka checks of an `outputs` entry of kind `kafka` (`at` names it).
pub fn validate(c: &OutputConfig, at: &str) -> Result<(), String> {
    if c.brokers.is_empty() {
        return Err(format!(
            "`{at}.brokers`: required for kind `kafka` (a list of host:port)"
        ));
    }
    for (i, b) in c.brokers.iter().enumerate() {
        check_broker(b).map_err(|e| format!("`{at}.brokers[{i}]`: {e}"))?;
    }
    let topic = c
        .topic
        .as_deref()
        .ok_or_else(|| format!("`{at}.topic`: required for kind `kafka`"))?;
    check_topic(topic).map_err(|e| format!("`{at}.topic`: {e}"))?;
    if c.format == Some(Format::Hec) {
        return Err(format!(
            "`{at}.format`: `hec` is Splunk's HTTP envelope; kafka takes native, ocsf, ecs or cef"
        ));
    }
    if let Some(t) = &c.tls {
        match (&t.cert_file, &t.key_file) {
            (Some(_), None) => return Err(format!("`{at}.tls.key_file`: required with cert_file")),
            (None, Some(_)) => return Err(format!("`{at}.tls.cert_file`: required with key_file")),
            (Some(cert), Some(key)) => {
                load_client_auth(cert, key).map_err(|e| format!("`{at}.tls`: {e}"))?;
            }
            (None, None) => {}
        }
    }
    if let Some(s) = &c.sasl {
        if s.username.is_empty() {
            return Err(format!("`{at}.sasl.username`: empty"));
        }
    }
    Ok(())
}

type ClientAuth = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// The client certificate chain and key of mutual TLS.
fn load_client_auth(cert: &Path, key: &Path) -> Result<ClientAuth, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cert_file {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("key_file {}: {e}", key.display()))?;
    Ok((certs, key))
}

/// Kafka output settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: Vec<String>,
    pub topic: String,
    pub format: Format,
    pub tls: Option<TlsOptions>,
    pub sasl: Option<SaslOptions>,
    /// Alerts per `send` (default 500).
    pub batch_max: usize,
    /// Bound of one connect, metadata or produce round (default 10 s).
    pub timeout: Duration,
}

impl KafkaConfig {
    /// From a validated `outputs` entry (`at` names it in errors).
    pub fn from_output(c: &OutputConfig, at: &str) -> Result<KafkaConfig, SinkError> {
        validate(c, at).map_err(|problem| SinkError::Invalid {
            at: at.into(),
            problem,
        })?;
        Ok(KafkaConfig {
            brokers: c.brokers.clone(),
            topic: c.topic.clone().unwrap_or_default(),
            format: c.format(),
            tls: c.tls.clone(),
            sasl: c.sasl.clone(),
            batch_max: c.batch_max.unwrap_or(500),
            timeout: Duration::from_secs(c.timeout_secs.unwrap_or(10)),
        })
    }
}

/// Kafka's default `max.message.bytes` is 1 MiB per record batch: keep each produce
/// request's records below this (a single larger alert goes alone and is refused).
const MAX_REQUEST_BYTES: usize = 900 * 1024;
/// Partition counts are re-read this often (the Java client's `metadata.max.age.ms`).
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);
/// The client's own retry loop, turned off: its deadline counts only the sleeps between
/// attempts, not the attempts (a refused SCRAM login costs a PBKDF2 each), so a round could
/// outlast any bound and end in "timed out" instead of the broker's answer. Each round is
/// one attempt, bounded by `timeout_secs`; the outbox retries with its own backoff.
const ONE_ATTEMPT: rskafka::BackoffConfig = rskafka::BackoffConfig {
    init_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(1),
    base: 2.0,
    deadline: Some(Duration::ZERO),
};

/// Kafka's `murmur2` (the Java client's `Utils.murmur2`, which its default partitioner
/// hashes keys with).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition (index into `0..partitions`) the Java client's default partitioner
/// gives a keyed record.
pub fn partition_for(key: &[u8], partitions: usize) -> usize {
    ((murmur2(key) & 0x7fff_ffff) as usize) % partitions.max(1)
}

/// The record key of an alert: its workspace id, else the host it came from.
pub fn record_key(alert: &serde_json::Value) -> String {
    use crate::deliver::record::s;
    match s(alert, "/workspace/id") {
        "" => {
            let id = match s(alert, "/host/machine_id") {
                "" => s(alert, "/host/hostname"),
                m => m,
            };
            format!("host:{id}")
        }
        ws => ws.to_string(),
    }
}

/// One connection to the cluster: the client, the topic's partitions, their clients.
struct Conn {
    client: Client,
    partitions: Vec<i32>,
    clients: BTreeMap<i32, Arc<PartitionClient>>,
    read_at: Instant,
}

/// What one partition's part of a batch came to.
struct PartitionResult {
    acked: Vec<String>,
    error: Option<SendError>,
}

/// A Kafka output: a private current-thread runtime driving the [`Producer`].
pub struct KafkaSink {
    rt: tokio::runtime::Runtime,
    producer: Producer,
}

/// The connection state and what the last failed batch got acknowledged.
struct Producer {
    cfg: KafkaConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<SaslConfig>,
    conn: Option<Conn>,
    /// Alerts the broker acknowledged in a batch that failed elsewhere (skipped on retry).
    acked: HashSet<String>,
}

impl KafkaSink {
    /// A sink for `cfg` (reads the CA, client certificate and password now; connects on
    /// the first send).
    pub fn new(cfg: KafkaConfig) -> Result<KafkaSink, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let tls = cfg.tls.as_ref().map(tls_config).transpose()?;
        let sasl = match &cfg.sasl {
            None => None,
            Some(s) => {
                if s.mechanism == SaslMechanism::Plain && tls.is_none() {
                    tracing::warn!(
                        "kafka output {}: SASL PLAIN without tls sends the password in clear",
                        cfg.topic
                    );
                }
                let pw = read_password(&s.password_file)?;
                let c = Credentials::new(s.username.clone(), pw.to_string());
                Some(match s.mechanism {
                    SaslMechanism::Plain => SaslConfig::Plain(c),
                    SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(c),
                    SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(c),
                })
            }
        };
        Ok(KafkaSink {
            rt,
            producer: Producer {
                cfg,
                tls,
                sasl,
                conn: None,
                acked: HashSet::new(),
            },
        })
    }
}

impl Producer {
    fn where_(&self) -> String {
        format!("kafka {}/{}", self.cfg.brokers.join(","), self.cfg.topic)
    }

    /// Connects (or reuses the connection) and reads the topic's partitions when due.
    async fn connect(&mut self) -> Result<(), String> {
        let t = self.cfg.timeout;
        if self.conn.is_none() {
            let mut b = ClientBuilder::new(self.cfg.brokers.clone())
                .client_id(concat!("token-sensor/", env!("CARGO_PKG_VERSION")))
                .backoff_config(ONE_ATTEMPT);
            if let Some(tls) = &self.tls {
                b = b.tls_config(tls.clone());
            }
            if let Some(s) = &self.sasl {
                b = b.sasl_config(s.clone());
            }
            let client = timed(t, b.build()).await?;
            self.conn = Some(Conn {
                client,
                partitions: Vec::new(),
                clients: BTreeMap::new(),
                read_at: Instant::now(),
            });
        }
        let conn = self.conn.as_mut().expect("connected above");
        if conn.partitions.is_empty() || conn.read_at.elapsed() >= METADATA_MAX_AGE {
            let topics = timed(t, conn.client.list_topics()).await?;
            let mut parts = topics
                .into_iter()
                .find(|x| x.name == self.cfg.topic)
                .map(|x| x.partitions.into_iter().collect::<Vec<_>>())
                .unwrap_or_default();
            parts.sort_unstable();
            if parts.is_empty() {
                return Err(format!(
                    "topic `{}` does not exist on the cluster (create it: the sensor does not)",
                    self.cfg.topic
                ));
            }
            if parts.len() != conn.partitions.len() {
                tracing::info!(
                    topic = %self.cfg.topic,
                    partitions = parts.len(),
                    "kafka output connected"
                );
            }
            conn.partitions = parts;
            conn.read_at = Instant::now();
        }
        Ok(())
    }

    /// The client of partition `p`, created on first use.
    async fn partition(&mut self, p: i32) -> Result<Arc<PartitionClient>, KafkaError> {
        let conn = self.conn.as_mut().expect("connected");
        if let Some(c) = conn.clients.get(&p) {
            return Ok(c.clone());
        }
        let c = Arc::new(
            conn.client
                .partition_client(self.cfg.topic.clone(), p, UnknownTopicHandling::Error)
                .await?,
        );
        conn.clients.insert(p, c.clone());
        Ok(c)
    }

    /// Groups the items (minus those already acknowledged) by partition, in order.
    fn plan(&self, items: &[Item]) -> BTreeMap<i32, Vec<(String, Record)>> {
        let parts = &self.conn.as_ref().expect("connected").partitions;
        let mut out: BTreeMap<i32, Vec<(String, Record)>> = BTreeMap::new();
        for it in items.iter().filter(|it| !self.acked.contains(&it.id)) {
            let key = record_key(&it.alert);
            let p = parts[partition_for(key.as_bytes(), parts.len())];
            out.entry(p)
                .or_default()
                .push((it.id.clone(), self.record(it, key)));
        }
        out
    }

    fn record(&self, it: &Item, key: String) -> Record {
        let ms = crate::deliver::record::time_ms(&it.alert) as i64;
        let mut headers = BTreeMap::new();
        headers.insert("id".to_string(), it.id.as_bytes().to_vec());
        headers.insert(
            "type".to_string(),
            crate::deliver::record::s(&it.alert, "/type")
                .as_bytes()
                .to_vec(),
        );
        headers.insert(
            "format".to_string(),
            self.cfg.format.as_str().as_bytes().to_vec(),
        );
        Record {
            key: Some(key.into_bytes()),
            value: Some(it.line.clone()),
            headers,
            timestamp: rskafka::chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default(),
        }
    }

    async fn send_async(&mut self, items: &[Item]) -> Result<(), SendError> {
        let at = self.where_();
        self.connect().await.map_err(|e| {
            self.conn = None;
            SendError::transient(format!("{at}: {e}"))
        })?;
        let plan = self.plan(items);
        let mut set = tokio::task::JoinSet::new();
        for (p, records) in plan {
            let client = match self.partition(p).await {
                Ok(c) => c,
                Err(e) => {
                    self.conn = None;
                    return Err(classify(&at, p, e));
                }
            };
            set.spawn(produce_partition(
                client,
                records,
                self.cfg.timeout,
                at.clone(),
            ));
        }
        let mut first: Option<SendError> = None;
        while let Some(r) = set.join_next().await {
            let r = r.map_err(SendError::transient)?;
            self.acked.extend(r.acked);
            if let Some(e) = r.error {
                // A permanent (item) error wins only when no partition failed transiently:
                // the worker then re-sends the batch one alert at a time.
                if first
                    .as_ref()
                    .is_none_or(|f| matches!(f, SendError::Permanent { .. }))
                {
                    first = Some(e);
                }
            }
        }
        match first {
            None => {
                self.acked.clear();
                Ok(())
            }
            Some(e) => {
                if matches!(e, SendError::Transient { .. }) {
                    self.conn = None;
                }
                Err(e)
            }
        }
    }
}

/// Produces one partition's records in order, in requests of at most
/// [`MAX_REQUEST_BYTES`]; stops at the first failure (`at` names the output in it).
async fn produce_partition(
    client: Arc<PartitionClient>,
    records: Vec<(String, Record)>,
    timeout: Duration,
    at: String,
) -> PartitionResult {
    let p = client.partition();
    let mut acked = Vec::new();
    let mut rest = records.into_iter().peekable();
    while rest.peek().is_some() {
        let mut ids = Vec::new();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        while let Some((_, r)) = rest.peek() {
            let n = r.approximate_size() + 64;
            if !chunk.is_empty() && bytes + n > MAX_REQUEST_BYTES {
                break;
            }
            bytes += n;
            let (id, r) = rest.next().expect("peeked");
            ids.push(id);
            chunk.push(r);
        }
        let error =
            match tokio::time::timeout(timeout, client.produce(chunk, Compression::NoCompression))
                .await
            {
                Ok(Ok(_offsets)) => None,
                Ok(Err(e)) => Some(classify(&at, p, e)),
                Err(_) => Some(SendError::transient(format!(
                    "{at} partition {p}: no acknowledgement within {timeout:?}"
                ))),
            };
        if error.is_some() {
            return PartitionResult { acked, error };
        }
        acked.extend(ids);
    }
    PartitionResult { acked, error: None }
}

/// Bounds a connect or metadata round by `t`; errors as text.
async fn timed<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, KafkaError>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, f).await {
        Ok(r) => r.map_err(|e| super::http::error_chain(&e)),
        Err(_) => Err(format!("no answer within {t:?}")),
    }
}

/// Whether the broker refused the record itself (retrying cannot help).
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::ServerError {
            protocol_error: ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidRecord
                | ProtocolError::CorruptMessage
                | ProtocolError::InvalidTimestamp,
            ..
        }
    )
}

fn classify(at: &str, p: i32, e: KafkaError) -> SendError {
    let error = match &e {
        KafkaError::ServerError { protocol_error, .. } => {
            format!("{at} partition {p}: broker refused: {protocol_error}")
        }
        _ => format!("{at} partition {p}: {}", super::http::error_chain(&e)),
    };
    if is_permanent(&e) {
        SendError::Permanent { error }
    } else {
        SendError::transient(error)
    }
}

/// rustls (aws-lc-rs) trusting `ca_file` or the web roots, with the client certificate of
/// mutual TLS when configured.
fn tls_config(t: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(super::http::load_roots(t.ca_file.as_deref())?);
    let c = match (&t.cert_file, &t.key_file) {
        (Some(cert), Some(key)) => {
            let (certs, key) = load_client_auth(cert, key)?;
            b.with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls client certificate: {e}"))?
        }
        _ => b.with_no_client_auth(),
    };
    Ok(Arc::new(c))
}

impl Sink for KafkaSink {
    fn batch_max(&self) -> usize {
        self.producer.cfg.batch_max
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        let p = &mut self.producer;
        if items.iter().all(|it| p.acked.contains(&it.id)) {
            p.acked.clear();
            return Ok(());
        }
        self.rt.block_on(p.send_async(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // org.apache.kafka.common.utils.UtilsTest#testMurmur2
        for (k, want) in [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ] {
            assert_eq!(murmur2(k.as_bytes()), want, "{k}");
        }
        assert!((0..50).all(|i| partition_for(format!("ws{i}").as_bytes(), 7) < 7));
    }

    #[test]
    fn keys_are_the_workspace_or_the_host() {
        let a =
            serde_json::json!({"workspace": {"id": "tree:12:34"}, "host": {"machine_id": "m1"}});
        assert_eq!(record_key(&a), "tree:12:34");
        let e = serde_json::json!({"type": "error", "host": {"hostname": "h", "machine_id": "m1"}});
        assert_eq!(record_key(&e), "host:m1");
        let h = serde_json::json!({"host": {"hostname": "h", "machine_id": ""}});
        assert_eq!(record_key(&h), "host:h");
    }

    #[test]
    fn brokers_and_topics_are_checked() {
        for ok in ["kafka-1.example:9092", "127.0.0.1:9093", "[::1]:9092"] {
            assert!(check_broker(ok).is_ok(), "{ok}");
        }
        for bad in [
            "kafka:0",
            "kafka",
            "kafka://h:9092",
            "h:x",
            ":9092",
            "[zz]:1",
            "h:9092/p",
        ] {
            assert!(check_broker(bad).is_err(), "{bad}");
        }
        assert!(check_topic("token-sensor.alerts_v1").is_ok());
        for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_full_entry_parses_and_builds() {
        let d = std::env::temp_dir().join(format!("kafka-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let pw = d.join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c: OutputConfig = yaml_serde::from_str(&format!(
            "kind: kafka\nbrokers: [k1.example:9093, \"[::1]:9093\"]\ntopic: token-sensor.alerts\nformat: ocsf\ntls: {{}}\nsasl: {{ mechanism: scram-sha-256, username: sensor, password_file: {} }}\n",
            pw.display()
        ))
        .unwrap();
        c.validate("outputs[0]").unwrap();
        assert_eq!(c.id(), "kafka:k1.example:9093/token-sensor.alerts:ocsf");
        let k = KafkaConfig::from_output(&c, "outputs[0]").unwrap();
        assert_eq!((k.batch_max, k.timeout), (500, Duration::from_secs(10)));
        assert_eq!(k.format, Format::Ocsf);
        let sink = KafkaSink::new(k).unwrap();
        assert!(sink.producer.tls.is_some());
        assert!(matches!(
            sink.producer.sasl,
            Some(SaslConfig::ScramSha256(_))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_dead_broker_is_a_transient_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c: OutputConfig = yaml_serde::from_str(&format!(
            "kind: kafka\nbrokers: [\"127.0.0.1:{port}\"]\ntopic: t\ntimeout_secs: 2\n"
        ))
        .unwrap();
        let mut sink = super::super::build(&c, "outputs[0]").unwrap();
        let item = Item {
            id: "01a25098-0000-7000-8000-000000000001".into(),
            alert: serde_json::json!({"type": "finding", "id": "01a25098-0000-7000-8000-000000000001"}),
            line: b"{}".to_vec(),
        };
        let t = Instant::now();
        match sink.send(&[item]) {
            Err(SendError::Transient { error, .. }) => {
                assert!(error.contains(&format!("127.0.0.1:{port}/t")), "{error}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "bounded by timeout_secs"
        );
    }

    #[test]
    fn password_file_is_one_line() {
        let d = std::env::temp_dir().join(format!("kafka-pw-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(read_password(&p).unwrap().as_str(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_password(&p).unwrap_err().contains("empty"));
        std::fs::write(&p, "a\nb\n").unwrap();
        let e = read_password(&p).unwrap_err();
        assert!(e.contains("more than one line") && !e.contains('b'));
        let _ = std::fs::remove_dir_all(&d);
    }
}
