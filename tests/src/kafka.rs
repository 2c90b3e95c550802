//! A real Kafka-protocol broker for the Kafka output's tests, and a client that reads a
//! topic back. The broker is tansu (crates.io: an Apache Kafka compatible broker in Rust)
//! with SQLite storage, so records survive a restart; `cargo xtask test` builds it once
//! and names it in `SENSOR_TEST_TANSU`. Apache Kafka itself ships only through Maven
//! Central, which this CI cannot reach. tansu 0.6 cannot serve TLS itself (its `--cert`
//! and `--key` flags exclude each other), so TLS is a terminating proxy in front of it
//! ([`TlsProxy`], rustls) whose address the broker advertises — as with a TLS load
//! balancer; SASL still runs end to end with the broker. The client is rskafka, as in the
//! sensor, used here only as a consumer and to create topics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};

/// Environment variable naming the tansu binary (set by `cargo xtask test`).
pub const TANSU_ENV: &str = "SENSOR_TEST_TANSU";

/// The tansu binary: `SENSOR_TEST_TANSU`, else the one `cargo xtask test` caches.
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os(TANSU_ENV) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let cache = Path::new(&home).join(".cache/token-sensor/tansu");
    let found = std::fs::read_dir(&cache).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.path().join("bin/tansu"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no Kafka broker for the Kafka output tests: run `cargo xtask test` (it builds \
             tansu from crates.io into {}) or set {TANSU_ENV}",
            cache.display()
        )
    })
}

/// A single-node tansu broker on a loopback port, its data in `dir/tansu.db`.
pub struct Broker {
    pub port: u16,
    /// The address it tells clients to use (its own, or a proxy's).
    advertised: String,
    dir: PathBuf,
    auth: bool,
    child: Option<Child>,
}

impl Broker {
    /// Starts a plaintext broker without authentication.
    pub fn start(dir: &Path) -> Broker {
        Self::start_on(dir, crate::reserve_port(), None, false)
    }

    /// Starts a broker on `port` that advertises `advertised` (default: itself) and
    /// requires SASL authentication when `auth`; waits until it listens.
    pub fn start_on(dir: &Path, port: u16, advertised: Option<String>, auth: bool) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let mut b = Broker {
            port,
            advertised: advertised.unwrap_or_else(|| format!("127.0.0.1:{port}")),
            dir: dir.into(),
            auth,
            child: None,
        };
        b.spawn();
        b
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let adv = format!("tcp://{}", self.advertised);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .unwrap();
        let mut cmd = Command::new(tansu_bin());
        cmd.arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &adv])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(["--cluster-id", "token-sensor-test"])
            .arg("--silent")
            .current_dir(&self.dir)
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.auth {
            cmd.arg("--authentication");
        }
        self.child = Some(cmd.spawn().expect("spawn tansu"));
        let addr = self.addr();
        let up = crate::wait_for(Duration::from_secs(60), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "tansu did not listen on {addr}:\n{}", self.log());
    }

    /// SIGKILL: the broker dies mid-whatever, as in a crash or a node loss.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The broker's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default()
    }

    /// Adds a SCRAM user (`scram256` or `scram512`) through tansu's own admin command
    /// (AlterUserScramCredentials), on a broker without authentication.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let o = Command::new(tansu_bin())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://{}", self.addr()))
            .args(["--mechanism", mechanism, name, password])
            .env("NO_COLOR", "1")
            .output()
            .expect("tansu user create");
        assert!(
            o.status.success(),
            "tansu user create: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TLS-terminating TCP proxy on a loopback port (rustls, the given certificate),
/// forwarding each connection to `backend`.
pub struct TlsProxy {
    pub port: u16,
    _rt: tokio::runtime::Runtime,
}

impl TlsProxy {
    /// Listens on `port` and forwards decrypted streams to `backend`.
    pub fn start(port: u16, cert: &Path, key: &Path, backend: String) -> TlsProxy {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let l = rt
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("bind TLS proxy");
        rt.spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(&backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsProxy { port, _rt: rt }
    }
}

/// How a test client reaches the broker.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// CA (PEM) to trust: TLS when set.
    pub ca_file: Option<PathBuf>,
    /// SASL `(mechanism, user, password)`, mechanism `scram-sha-256` or `scram-sha-512`.
    pub sasl: Option<(String, String, String)>,
}

/// One record read back.
#[derive(Clone, Debug)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Consumed {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).expect("record value is JSON")
    }

    /// A header as text ("" when absent).
    pub fn header(&self, k: &str) -> &str {
        self.headers.get(k).map(String::as_str).unwrap_or("")
    }
}

/// A blocking test client.
pub struct TestClient {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl TestClient {
    /// Connects to `broker`.
    pub fn connect(broker: &str, o: &ClientOptions) -> Result<TestClient, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut b =
            ClientBuilder::new(vec![broker.to_string()]).backoff_config(rskafka::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
                deadline: Some(Duration::from_secs(15)),
            });
        if let Some(ca) = &o.ca_file {
            let roots = sensor::deliver::sinks::http::load_roots(Some(ca))?;
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            b = b.tls_config(Arc::new(tls));
        }
        if let Some((mech, user, pw)) = &o.sasl {
            let c = Credentials::new(user.clone(), pw.clone());
            b = b.sasl_config(match mech.as_str() {
                "scram-sha-256" => SaslConfig::ScramSha256(c),
                "scram-sha-512" => SaslConfig::ScramSha512(c),
                m => panic!("test SASL mechanism {m}"),
            });
        }
        let client = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), b.build()).await })
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(TestClient { rt, client })
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let c = self.client.controller_client().unwrap();
        self.rt
            .block_on(c.create_topic(topic, partitions, 1, 10_000))
            .unwrap_or_else(|e| panic!("create topic {topic}: {e}"));
    }

    /// The partitions of `topic`.
    pub fn partitions(&self, topic: &str) -> Vec<i32> {
        let topics = self.rt.block_on(self.client.list_topics()).unwrap();
        let mut p: Vec<i32> = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.into_iter().collect())
            .unwrap_or_default();
        p.sort_unstable();
        p
    }

    /// Every record of `topic`, partition by partition, each in offset order.
    pub fn read_all(&self, topic: &str) -> Vec<Consumed> {
        let mut out = Vec::new();
        for p in self.partitions(topic) {
            out.extend(self.read_partition(topic, p));
        }
        out
    }

    fn read_partition(&self, topic: &str, p: i32) -> Vec<Consumed> {
        self.rt.block_on(async {
            let pc = self
                .client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .unwrap();
            let end = pc.get_offset(OffsetAt::Latest).await.unwrap();
            let mut offset = pc.get_offset(OffsetAt::Earliest).await.unwrap();
            let mut out = Vec::new();
            while offset < end {
                let (recs, _hw) = pc.fetch_records(offset, 1..4_000_000, 1_000).await.unwrap();
                if recs.is_empty() {
                    break;
                }
                let from = offset;
                for r in recs.into_iter().filter(|r| r.offset >= from) {
                    offset = offset.max(r.offset + 1);
                    out.push(Consumed {
                        partition: p,
                        offset: r.offset,
                        key: String::from_utf8_lossy(r.record.key.as_deref().unwrap_or_default())
                            .into_owned(),
                        value: r.record.value.unwrap_or_default(),
                        headers: r
                            .record
                            .headers
                            .into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                            .collect(),
                    });
                }
            }
            out
        })
    }
}
