//! The Kafka output end to end: the real daemon, watched workloads leaking tokens, and a
//! real Kafka-protocol broker (tansu, see `sensor_tests::kafka`) read back with a Kafka
//! client. Alerts arrive once per id, keyed by workspace, each workspace's alerts on one
//! partition in outbox order — across a broker crash while alerts are produced — and over
//! TLS with SCRAM-SHA-256/512, where a wrong password or an untrusted broker certificate
//! keeps the alerts waiting in the outbox; a broker down when the daemon starts gets every
//! alert once it is up; a bad Kafka entry stops the daemon at start (exit 2) naming the
//! key. No record, log or file holds a raw token or the SASL password.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sensor::deliver::sinks::kafka::partition_for;
use sensor_tests::kafka::{Broker, ClientOptions, Consumed, TestClient, TlsProxy};
use sensor_tests::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Writes the daemon's config (own state dir, fixed fingerprint key) + `body`.
fn config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("cfg.yaml");
    std::fs::write(
        &p,
        format!(
            "fingerprint_key: \"{KEY}\"\nstate_dir: {}\n{body}",
            dir.join("state").display()
        ),
    )
    .unwrap();
    p
}

/// The pending count and last error of the output named `name` in the outbox listing.
fn pending(state: &Path, name: &str) -> (u64, String) {
    let l = outbox_listing(state);
    l["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"] == name)
        .map(|o| {
            (
                o["pending"].as_u64().unwrap_or(0),
                o["items"][0]["state"]["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .unwrap_or_default()
}

#[test]
fn kafka_output_survives_a_broker_crash_once_per_id_keyed_by_workspace_in_order() {
    let dir = temp_dir("kafka-outage");
    let mut broker = Broker::start(&dir.join("broker"));
    let admin = TestClient::connect(&broker.addr(), &ClientOptions::default()).unwrap();
    admin.create_topic("alerts", 3);
    drop(admin);
    let exe = workload_as(&dir, "agent-kafka");
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\n  - kind: kafka\n    name: fleet\n    brokers: [\"{}\"]\n    topic: alerts\n    format: ocsf\n    batch_max: 4\n    timeout_secs: 3\n    max_backoff_secs: 2\n",
            file.display(),
            broker.addr()
        ),
    );
    let tokens: Vec<String> = (1..=12).map(|i| github_token(7000 + i)).collect();
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-kafka");
    let baddr = broker.addr();
    let client = || TestClient::connect(&baddr, &ClientOptions::default()).unwrap();
    // Two workspaces (each run of the watched exe roots one), three leaks each.
    run_workload(&exe, &leak_steps(&tokens[0..3], sink.addr), &[]);
    run_workload(&exe, &leak_steps(&tokens[3..6], sink.addr), &[]);
    assert!(
        wait_for(Duration::from_secs(60), || client()
            .read_all("alerts")
            .len()
            >= 6),
        "6 alerts did not reach the broker: {:?}\n{}",
        client().read_all("alerts"),
        d.stderr()
    );
    // The broker crashes; a third workspace leaks while it is down.
    broker.kill();
    run_workload(&exe, &leak_steps(&tokens[6..9], sink.addr), &[]);
    let state = dir.join("state");
    assert!(
        wait_for(Duration::from_secs(60), || {
            let l = outbox_listing(&state);
            l["outputs"].as_array().unwrap().iter().any(|o| {
                o["output"] == "fleet"
                    && o["pending"] == 3
                    && o["items"][0]["state"]["attempts"].as_u64().unwrap_or(0) >= 2
                    && !o["items"][0]["state"]["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .is_empty()
            })
        }),
        "the outbox does not hold the undeliverable alerts: {}\n{}",
        outbox_listing(&state),
        d.stderr()
    );
    // Back up: the waiting alerts go first, then a fourth workspace's.
    broker.restart();
    run_workload(&exe, &leak_steps(&tokens[9..12], sink.addr), &[]);
    assert!(
        wait_for(Duration::from_secs(60), || json_lines(&file).len() >= 12),
        "file output: {:?}",
        json_lines(&file)
    );
    let expected: Vec<serde_json::Value> = json_lines(&file);
    assert!(
        wait_for(Duration::from_secs(90), || client()
            .read_all("alerts")
            .len()
            >= expected.len()),
        "not all alerts reached the broker after the restart: {} of {}\n{}",
        client().read_all("alerts").len(),
        expected.len(),
        d.stderr()
    );
    assert!(
        wait_for(Duration::from_secs(30), || pending(&state, "fleet").0 == 0),
        "outbox not drained: {}",
        outbox_listing(&state)
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = client().read_all("alerts");
    check_records(&expected, &got, 3, 4);
    assert!(d.stop().success(), "{}", d.stderr());
    let values: String = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_no_token(
        &tokens,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("kafka records", values),
        ],
        &[&state, &dir.join("broker")],
    );
}

#[test]
fn kafka_output_down_at_start_delivers_everything_from_the_outbox_once_up() {
    let dir = temp_dir("kafka-down-at-start");
    // The topic exists on the broker's storage, but the broker is down when the daemon
    // starts and while the workloads leak.
    let port = reserve_port();
    let bdir = dir.join("broker");
    let mut broker = Broker::start_on(&bdir, port, None, false);
    TestClient::connect(&broker.addr(), &ClientOptions::default())
        .unwrap()
        .create_topic("late-alerts", 2);
    broker.kill();
    let baddr = broker.addr();
    assert!(
        std::net::TcpStream::connect(&baddr).is_err(),
        "the broker is still up"
    );
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\n  - kind: kafka\n    name: late\n    brokers: [\"{baddr}\"]\n    topic: late-alerts\n    format: ocsf\n    timeout_secs: 2\n    max_backoff_secs: 2\n",
            file.display()
        ),
    );
    let exe = workload_as(&dir, "agent-kafka-late");
    let tokens: Vec<String> = (1..=4).map(|i| github_token(7200 + i)).collect();
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-kafka-late");
    // Two workspaces, two leaks each.
    run_workload(&exe, &leak_steps(&tokens[0..2], sink.addr), &[]);
    run_workload(&exe, &leak_steps(&tokens[2..4], sink.addr), &[]);
    assert!(
        wait_for(Duration::from_secs(60), || json_lines(&file).len() >= 4),
        "file output: {:?}\n{}",
        json_lines(&file),
        d.stderr()
    );
    let state = dir.join("state");
    // Every alert waits in the outbox, retried, the error naming the output.
    assert!(
        wait_for(Duration::from_secs(60), || {
            let l = outbox_listing(&state);
            l["outputs"].as_array().unwrap().iter().any(|o| {
                o["output"] == "late"
                    && o["pending"] == 4
                    && o["items"][0]["state"]["attempts"].as_u64().unwrap_or(0) >= 2
            })
        }),
        "the outbox does not hold the 4 alerts: {}\n{}",
        outbox_listing(&state),
        d.stderr()
    );
    let (_, error) = pending(&state, "late");
    assert!(
        error.contains(&format!("{baddr}/late-alerts")),
        "the error names the brokers and topic: {error}"
    );
    assert!(
        d.stderr().contains(&format!("{baddr}/late-alerts")),
        "the failed delivery is logged:\n{}",
        d.stderr()
    );
    // Nothing reached a broker while it was down.
    broker.restart();
    let client = || TestClient::connect(&baddr, &ClientOptions::default()).unwrap();
    assert!(
        wait_for(Duration::from_secs(90), || client()
            .read_all("late-alerts")
            .len()
            >= 4),
        "the waiting alerts did not reach the broker once up: {:?}\n{}\n{}",
        client().read_all("late-alerts"),
        outbox_listing(&state),
        d.stderr()
    );
    assert!(
        wait_for(Duration::from_secs(30), || pending(&state, "late").0 == 0),
        "outbox not drained: {}",
        outbox_listing(&state)
    );
    std::thread::sleep(Duration::from_secs(2));
    let expected = json_lines(&file);
    assert_eq!(expected.len(), 4, "{expected:?}");
    let got = client().read_all("late-alerts");
    check_records(&expected, &got, 2, 2);
    assert!(d.stop().success(), "{}", d.stderr());
    let values: String = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_no_token(
        &tokens,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("kafka records", values),
        ],
        &[&state, &bdir],
    );
}

#[test]
fn bad_kafka_config_is_refused_at_start_naming_the_key() {
    let dir = temp_dir("kafka-bad-config");
    let secret = "Kpw-2f8d1c7e9a0b";
    let two_lines = dir.join("two-lines.pw");
    std::fs::write(&two_lines, format!("{secret}\nsecond-line\n")).unwrap();
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let k = "  - kind: kafka\n    brokers: [\"127.0.0.1:9092\"]\n    topic: alerts\n";
    // Entries sit one line lower than in the body (state_dir comes first).
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            "  - kind: stdout\n  - kind: kafka\n    topic: alerts\n".into(),
            vec![
                "outputs[1].brokers".into(),
                "required".into(),
                "line 4".into(),
            ],
        ),
        (
            "  - kind: kafka\n    brokers: [\"kafka://k1:9092\"]\n    topic: alerts\n".into(),
            vec![
                "outputs[0].brokers[0]".into(),
                "kafka://k1:9092".into(),
                "host:port".into(),
            ],
        ),
        (
            "  - kind: kafka\n    brokers: [k1:9092]\n".into(),
            vec!["outputs[0].topic".into(), "required".into()],
        ),
        (
            "  - kind: kafka\n    brokers: [k1:9092]\n    topic: \"alerts/x\"\n".into(),
            vec!["outputs[0].topic".into(), "alerts/x".into()],
        ),
        (
            format!("{k}    format: hec\n"),
            vec!["outputs[0].format".into(), "hec".into()],
        ),
        (
            format!("{k}    sasl: {{ mechanism: gssapi, username: u, password_file: /x }}\n"),
            vec![
                "outputs[0].sasl".into(),
                "gssapi".into(),
                "scram-sha-512".into(),
                "line 6".into(),
            ],
        ),
        (
            format!(
                "{k}    sasl: {{ mechanism: scram-sha-512, username: u, password_file: {} }}\n",
                two_lines.display()
            ),
            vec![
                "password_file".into(),
                two_lines.display().to_string(),
                "more than one line".into(),
            ],
        ),
        (
            format!("{k}    tls: {{ ca_file: {} }}\n", not_pem.display()),
            vec!["ca_file".into(), not_pem.display().to_string()],
        ),
        (
            format!("{k}    tls: {{ cert_file: /x.pem }}\n"),
            vec!["outputs[0].tls.key_file".into(), "required".into()],
        ),
        (
            format!("{k}    batch_max: 0\n"),
            vec!["outputs[0]".into(), "batch_max".into()],
        ),
        (
            format!("{k}    url: https://x.example/\n"),
            vec!["outputs[0].url".into(), "not used".into()],
        ),
    ];
    for (i, (entries, want)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("bad{i}.yaml"));
        std::fs::write(
            &cfg,
            format!(
                "state_dir: {}\noutputs:\n{entries}",
                dir.join("state").display()
            ),
        )
        .unwrap();
        let o = std::process::Command::new(sensor_bin())
            .args([
                "run",
                "--only-flag-scopes",
                "--config",
                cfg.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(!err.contains("sensor ready"), "case {i} started: {err}");
        for w in want {
            assert!(err.contains(w.as_str()), "case {i}: `{w}` not in: {err}");
        }
        assert!(
            !err.contains(secret) && !String::from_utf8_lossy(&o.stdout).contains(secret),
            "case {i}: password echoed: {err}"
        );
    }
}

/// Every alert of `expected` (the file output, in outbox order) is one record of `got`:
/// OCSF with its id, keyed by its workspace (`workspaces` of them), each workspace on the
/// partition the Java client's partitioner picks, in outbox order.
fn check_records(
    expected: &[serde_json::Value],
    got: &[Consumed],
    partitions: usize,
    workspaces: usize,
) {
    let ids: Vec<&str> = got.iter().map(|r| r.header("id")).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id).or_default() += 1;
    }
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "alerts written twice: {dup:?}");
    assert_eq!(got.len(), expected.len(), "records: {ids:?}");
    let mut by_key: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for a in expected {
        let id = a["id"].as_str().unwrap();
        let ws = a["workspace"]["id"].as_str().unwrap();
        assert!(ws.starts_with("tree:"), "{a}");
        by_key.entry(ws.to_string()).or_default().push(id);
        let r = got
            .iter()
            .find(|r| r.header("id") == id)
            .unwrap_or_else(|| panic!("alert {id} missing from the topic"));
        assert_eq!(r.key, ws, "record key is the workspace id");
        assert_eq!(r.header("type"), "finding");
        assert_eq!(r.header("format"), "ocsf");
        let v = r.json();
        assert_eq!(v["metadata"]["uid"], id, "OCSF value carries the alert id");
        assert_eq!(v["class_uid"], 2004);
        let p = ocsf_problems(&v);
        assert!(p.is_empty(), "OCSF record invalid: {p:?}");
        assert_eq!(
            r.partition as usize,
            partition_for(ws.as_bytes(), partitions),
            "workspace {ws} on the partition of murmur2(key)"
        );
    }
    assert_eq!(by_key.len(), workspaces, "workspaces: {by_key:?}");
    for (ws, want) in &by_key {
        let mut recs: Vec<&Consumed> = got.iter().filter(|r| &r.key == ws).collect();
        recs.sort_by_key(|r| r.offset);
        let order: Vec<&str> = recs.iter().map(|r| r.header("id")).collect();
        assert_eq!(
            &order, want,
            "workspace {ws}: outbox order on its partition"
        );
        assert!(recs.windows(2).all(|w| w[0].partition == w[1].partition));
    }
}

#[test]
fn kafka_output_over_tls_with_scram_and_refusals_wait_in_the_outbox() {
    let dir = temp_dir("kafka-tls");
    let (ca, crt, key) = make_ca(&dir, "kafka");
    let (other_ca, _, _) = make_ca(&dir, "other");
    let (pw512, pw256) = ("Pw512-c6c1d0b8e4", "Pw256-91f3aa7e02");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (f512, f256, fbad) = (
        write("sensor512.pw", &format!("{pw512}\n")),
        write("sensor256.pw", &format!("{pw256}\n")),
        write("wrong.pw", "not-the-password\n"),
    );
    // Users and the topic are set up on the broker's storage without authentication,
    // then the broker comes back with TLS and SASL required.
    let port = reserve_port();
    let bdir = dir.join("broker");
    let mut setup = Broker::start_on(&bdir, port, None, false);
    setup.create_user("sensor512", pw512, "scram512");
    setup.create_user("sensor256", pw256, "scram256");
    TestClient::connect(&setup.addr(), &ClientOptions::default())
        .unwrap()
        .create_topic("secure-alerts", 2);
    setup.kill();
    // TLS terminates in a proxy the broker advertises (tansu 0.6 cannot serve TLS).
    let tls_port = reserve_port();
    let _proxy = TlsProxy::start(tls_port, &crt, &key, format!("127.0.0.1:{port}"));
    let broker = Broker::start_on(&bdir, port, Some(format!("127.0.0.1:{tls_port}")), true);
    let addr = format!("127.0.0.1:{tls_port}");
    // Without credentials the broker answers nothing useful.
    let anon = ClientOptions {
        ca_file: Some(ca.clone()),
        sasl: None,
    };
    if let Ok(c) = TestClient::connect(&addr, &anon) {
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || c.partitions("secure-alerts")
            ))
            .map_or(true, |p| p.is_empty()),
            "an unauthenticated client sees the topic"
        );
    }
    let output = |name: &str, format: &str, ca: &Path, mech: &str, user: &str, pw: &Path| {
        format!(
            "  - kind: kafka\n    name: {name}\n    brokers: [\"{addr}\"]\n    topic: secure-alerts\n    format: {format}\n    timeout_secs: 10\n    max_backoff_secs: 2\n    tls: {{ ca_file: {} }}\n    sasl: {{ mechanism: {mech}, username: {user}, password_file: {} }}\n",
            ca.display(),
            pw.display()
        )
    };
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\n{}{}{}{}",
            file.display(),
            output("k512", "native", &ca, "scram-sha-512", "sensor512", &f512),
            output("k256", "ecs", &ca, "scram-sha-256", "sensor256", &f256),
            output("badpw", "native", &ca, "scram-sha-512", "sensor512", &fbad),
            output(
                "badca",
                "native",
                &other_ca,
                "scram-sha-512",
                "sensor512",
                &f512
            ),
        ),
    );
    let exe = workload_as(&dir, "agent-kafka-tls");
    let tokens: Vec<String> = (1..=2).map(|i| github_token(7100 + i)).collect();
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-kafka-tls");
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    let reader = ClientOptions {
        ca_file: Some(ca.clone()),
        sasl: Some((
            "scram-sha-512".into(),
            "sensor512".into(),
            pw512.to_string(),
        )),
    };
    let read = || {
        TestClient::connect(&addr, &reader)
            .map(|c| c.read_all("secure-alerts"))
            .unwrap_or_default()
    };
    assert!(
        wait_for(Duration::from_secs(60), || read().len() >= 4),
        "the two authenticated outputs did not deliver 2 alerts each: {:?}\n{}\n{}",
        read(),
        d.stderr(),
        broker.log()
    );
    let state = dir.join("state");
    assert!(
        wait_for(Duration::from_secs(60), || {
            let (n, e) = pending(&state, "badpw");
            n == 2 && !e.is_empty()
        }),
        "badpw: {}",
        outbox_listing(&state)
    );
    assert!(
        wait_for(Duration::from_secs(60), || {
            let (n, e) = pending(&state, "badca");
            n == 2 && e.to_lowercase().contains("certificate")
        }),
        "badca: {}",
        outbox_listing(&state)
    );
    let (_, pw_error) = pending(&state, "badpw");
    assert!(
        pw_error.to_lowercase().contains("sasl") || pw_error.to_lowercase().contains("auth"),
        "badpw error names authentication: {pw_error}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let got = read();
    let ids: Vec<String> = json_lines(&file)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    for (format, check) in [("native", "/id"), ("ecs", "/event/id")] {
        let mut seen: Vec<String> = got
            .iter()
            .filter(|r| r.header("format") == format)
            .map(|r| {
                assert_eq!(
                    r.json().pointer(check).and_then(|v| v.as_str()),
                    Some(r.header("id"))
                );
                r.header("id").to_string()
            })
            .collect();
        seen.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(seen, want, "{format}: every alert once");
    }
    assert!(d.stop().success(), "{}", d.stderr());
    let values: String = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_no_token(
        &tokens,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("kafka records", values),
        ],
        &[&state],
    );
    for pw in [pw512, pw256] {
        assert!(
            !d.stderr().contains(pw) && !d.stdout().contains(pw),
            "password logged"
        );
        let hits = files_containing(&state, pw.as_bytes());
        assert!(hits.is_empty(), "password in {hits:?}");
    }
}
