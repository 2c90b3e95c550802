//! `cargo xtask bench-kafka` (or `cargo bench -p sensor --bench kafka` with
//! `SENSOR_TEST_TANSU` naming a tansu binary): alerts/s sustained through the outbox to
//! the Kafka output — fsync'd group commit, render, produce with `acks=all` to a local
//! single-node broker (tansu on SQLite, the broker the tests use), fsync'd acknowledgement
//! — for bursts of realistic finding alerts from 16 workspaces into a 3-partition topic.
//! Prints figures; asserts nothing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use sensor::deliver::{Pipeline, PipelineConfig, RevocationMode, RevocationPolicy};

/// A finding alert (native JSON, ~1.6 KB) of workspace `i % 16` with a unique id.
fn alert(i: usize) -> Vec<u8> {
    let ws = format!("{:012x}", 0x4f1c_2a9d_0b70 + (i % 16));
    format!(
        r#"{{"type":"finding","id":"01a25098-16e5-7733-a451-{i:012}","time":"2026-12-07T13:01:14.335170400Z","verdict":"exfiltration","severity":"critical","mitre":["T1552.001","T1567"],"workspace":{{"id":"container:{ws}","kind":"container","container_id":"{ws}","container_runtime":"docker","cgroup":"/system.slice/docker-{ws}.scope"}},"finding":{{"detector":"github-personal-access-token","name":"GitHub personal access token (classic)","provider":"github","kind":"personal_access_token","severity":"critical","confidence":"high","validation":"valid","encoding":"raw","offset":81,"length":40,"safe_prefix":"ghp_","fingerprint":"hmac-sha256:7d66da983bb3ce76bff984eea6c2f330","tags":["attack.t1552.001","attack.t1567"],"issuers":["github.com","api.github.com","*.github.com","*.githubusercontent.com"],"revoke":"github_credentials_revoke"}},"process":{{"pid":26074,"ppid":25848,"uid":1000,"exe":"/usr/local/bin/claude","argv":["claude","-p","summarize the repository and post it"],"cgroup":"/system.slice/docker-{ws}.scope","container_id":"{ws}","container_runtime":"docker","ancestry":[{{"pid":25848,"exe":"/usr/bin/bash"}},{{"pid":1,"exe":"/sbin/init"}}]}},"tid":26074,"sink":{{"kind":"network","fd":7,"fd_kind":"socket","endpoint":{{"type":"inet","proto":"tcp","addr":"203.0.113.9:443"}},"syscall":"write","host":"paste.example","host_source":"http","boundary":"outside"}},"chain":{{"source":{{"kind":"file","path":"/home/dev/.git-credentials"}},"hops":[],"sender_pid":26074,"sender_exe":"/usr/local/bin/claude"}},"count":1,"host":{{"hostname":"build-7","machine_id":"3d1219c7c4c5404aaa1f6d2a48adfda4"}}}}"#
    )
    .into_bytes()
}

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bench-kafka-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The tansu binary: `SENSOR_TEST_TANSU`, else the one `cargo xtask test` caches.
fn tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SENSOR_TEST_TANSU") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    std::fs::read_dir(PathBuf::from(home).join(".cache/token-sensor/tansu"))
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/tansu"))
        .find(|p| p.is_file())
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker(bin: &PathBuf, dir: &PathBuf) -> (Broker, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let url = format!("tcp://{addr}");
    let child = Command::new(bin)
        .arg("broker")
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "sqlite://tansu.db", "--silent"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tansu");
    let t = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(t.elapsed() < Duration::from_secs(60), "tansu did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Broker(child), addr)
}

/// Records in `topic` (sum of the partitions' high watermarks).
fn records(rt: &tokio::runtime::Runtime, addr: &str, topic: &str) -> i64 {
    rt.block_on(async {
        let c = ClientBuilder::new(vec![addr.to_string()])
            .build()
            .await
            .unwrap();
        let mut n = 0;
        for p in 0..3 {
            let pc = c
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .unwrap();
            n += pc.get_offset(OffsetAt::Latest).await.unwrap();
        }
        n
    })
}

fn run(bin: &PathBuf, n: usize, format: &str, batch_max: usize) {
    let dir = temp(&format!("{format}{batch_max}"));
    let (_b, addr) = broker(bin, &dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = ClientBuilder::new(vec![addr.clone()])
            .build()
            .await
            .unwrap();
        c.controller_client()
            .unwrap()
            .create_topic("alerts", 3, 1, 10_000)
            .await
            .unwrap();
    });
    let outputs = vec![yaml_serde::from_str(&format!(
        "kind: kafka\nbrokers: [\"{addr}\"]\ntopic: alerts\nformat: {format}\nbatch_max: {batch_max}\n"
    ))
    .unwrap()];
    let p = Pipeline::start(PipelineConfig {
        state_dir: dir.join("state"),
        state_max_bytes: 1 << 30,
        outputs,
        policy: RevocationPolicy {
            mode: RevocationMode::Off,
            min_severity: sensor::detect::rules::Severity::High,
        },
    })
    .unwrap();
    let h = p.handle();
    let t = Instant::now();
    for i in 0..n {
        h.raise(alert(i), None);
    }
    let delivered = || p.stats().outputs[0].delivered as usize;
    while delivered() < n && t.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = t.elapsed().as_secs_f64();
    let got = delivered();
    let stats = Arc::new(p.shutdown(Duration::from_secs(1)));
    println!(
        "outbox → kafka ({format}, batch_max {batch_max}, 16 workspaces, 3 partitions), burst of {n}: {:>6.0} alerts/s acknowledged (acks=all) — {got} delivered, {} in the topic, {} retries",
        got as f64 / secs,
        records(&rt, &addr, "alerts"),
        stats.outputs[0].retries
    );
    drop(_b);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let Some(bin) = tansu() else {
        println!(
            "kafka bench skipped: no tansu broker (run `cargo xtask bench-kafka`, which builds it)"
        );
        return;
    };
    let n: usize = std::env::var("KAFKA_BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    run(&bin, n, "native", 500);
    run(&bin, n, "ocsf", 500);
    run(&bin, n, "native", 100);
}
