//! Delivery end to end through the real daemon: a watched workload leaks tokens over TCP,
//! and real loopback receivers (HTTP, syslog over UDP and TCP) get the alerts — through
//! outages, `503 Retry-After`, in order, once per id — in valid RFC 5424/CEF and OCSF.
//! Malformed outputs stop the daemon with exit 2 naming the key and its position. No
//! receiver, file, log or the outbox ever holds a raw token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Workload steps sending each token in its own HTTP request to `sink` (not an issuer).
fn leak_steps(tokens: &[String], sink: std::net::SocketAddr) -> Vec<String> {
    tokens
        .iter()
        .flat_map(|t| {
            [
                format!("set:POST /paste HTTP/1.1\r\nHost: paste.example\r\nContent-Length: 46\r\n\r\ntoken={t}"),
                format!("tcp:{sink}"),
            ]
        })
        .collect()
}

fn assert_no_token(tokens: &[String], places: &[(&str, String)], dirs: &[&Path]) {
    for t in tokens {
        let secret = &t[4..];
        for (what, text) in places {
            assert!(!text.contains(secret), "token leaked into {what}");
        }
        for d in dirs {
            let hits = files_containing(d, secret.as_bytes());
            assert!(hits.is_empty(), "token bytes in {hits:?}");
        }
    }
}

#[test]
fn http_output_down_then_503_retry_after_then_up_delivers_every_alert_once_in_order() {
    let dir = temp_dir("deliv-http");
    let exe = workload_as(&dir, "agent-deliv");
    let port = reserve_port();
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\n  - kind: http\n    url: http://127.0.0.1:{port}/ingest\n    batch_max: 2\n    max_backoff_secs: 2\n",
            file.display()
        ),
    );
    let tokens: Vec<String> = (1..=5).map(github_token).collect();
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-deliv");
    // One daemon per outbox: a second one on the same state_dir refuses to start.
    let second = Command::new(sensor_bin())
        .args([
            "run",
            "--only-flag-scopes",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use by another running sensor"));
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    assert!(
        wait_for(Duration::from_secs(30), || json_lines(&file).len() >= 5),
        "file output did not get 5 alerts: {:?}\n{}",
        json_lines(&file),
        d.stderr()
    );
    // The HTTP output is down: its deliveries wait in the outbox, retried.
    let state = dir.join("state");
    assert!(
        wait_for(Duration::from_secs(20), || {
            let l = outbox_listing(&state);
            l["outputs"].as_array().unwrap().iter().any(|o| {
                o["output"].as_str().unwrap().starts_with("http:")
                    && o["pending"] == 5
                    && o["items"][0]["state"]["attempts"].as_u64().unwrap_or(0) >= 2
                    && o["items"][0]["state"]["last_error"]
                        .as_str()
                        .unwrap_or("")
                        .contains("refused")
            })
        }),
        "outbox does not show the refused deliveries: {}",
        outbox_listing(&state)
    );
    // Up, but busy twice: 503 with Retry-After: 2.
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = HttpServer::start(&format!("127.0.0.1:{port}"), move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) < 2 {
            (
                503,
                vec![("retry-after".into(), "2".into())],
                b"busy".to_vec(),
            )
        } else {
            (200, vec![], b"{}".to_vec())
        }
    });
    let expected: Vec<String> = json_lines(&file)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let delivered = || -> Vec<String> {
        server
            .requests()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.json_lines())
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(60), || delivered().len()
            >= expected.len()),
        "not delivered: {:?}\n{}",
        delivered(),
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(2));
    let reqs = server.requests();
    assert_eq!(
        delivered(),
        expected,
        "every alert once, in the outbox order"
    );
    assert!(reqs.iter().all(|r| r.method == "POST"
        && r.path == "/ingest"
        && r.header("content-type") == Some("application/x-ndjson")));
    for w in reqs.windows(2) {
        if w[0].status == 503 {
            let gap = w[1].at - w[0].at;
            assert!(
                gap >= Duration::from_millis(1900),
                "Retry-After ignored: {gap:?}"
            );
        }
    }
    assert_eq!(reqs.iter().filter(|r| r.status == 503).count(), 2);
    let l = outbox_listing(&state);
    assert!(
        l["outputs"].as_array().unwrap().is_empty(),
        "outbox not drained: {l}"
    );
    let st = d.stop();
    assert!(st.success(), "{}", d.stderr());
    let bodies: String = reqs
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_no_token(
        &tokens,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("http bodies", bodies),
        ],
        &[&dir.join("state"), &file],
    );
}

#[test]
fn syslog_udp_and_tcp_get_rfc5424_cef_and_the_ocsf_file_validates() {
    let dir = temp_dir("deliv-syslog");
    let exe = workload_as(&dir, "agent-syslog");
    let udp = SyslogServer::udp();
    let tcp = SyslogServer::tcp();
    let github = HttpServer::start("127.0.0.1:0", |_| (202, vec![], vec![]));
    let ocsf = dir.join("alerts.ocsf.jsonl");
    let ecs = dir.join("alerts.ecs.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: syslog\n    address: udp://{}\n  - kind: syslog\n    address: tcp://{}\n    format: cef\n  - kind: file\n    path: {}\n    format: ocsf\n  - kind: file\n    path: {}\n    format: ecs\nrevocation:\n  mode: dry_run\n  github: {{ api_url: \"http://{}\", batch_window_ms: 100 }}\n",
            udp.addr,
            tcp.addr,
            ocsf.display(),
            ecs.display(),
            github.addr
        ),
    );
    let tokens = vec![github_token(77)];
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-syslog");
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    // A finding, and the dry-run revocation record.
    let kinds = |msgs: &[String]| -> Vec<String> {
        msgs.iter()
            .filter_map(|m| parse_rfc5424(m).ok())
            .map(|h| h.5)
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(30), || {
            let (u, t) = (kinds(&udp.messages()), kinds(&tcp.messages()));
            [u, t]
                .iter()
                .all(|k| k.iter().any(|x| x == "finding") && k.iter().any(|x| x == "revocation"))
                && json_lines(&ocsf).len() >= 2
        }),
        "udp {:?}\ntcp {:?}\n{}",
        udp.messages(),
        tcp.messages(),
        d.stderr()
    );
    let ocsf_events = json_lines(&ocsf);
    let ids: Vec<String> = ocsf_events
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    for e in &ocsf_events {
        let p = ocsf_problems(e);
        assert!(p.is_empty(), "OCSF event invalid: {p:?}\n{e:#}");
    }
    let finding = ocsf_events
        .iter()
        .find(|e| e["class_uid"] == 2004)
        .expect("a Detection Finding");
    assert_eq!(finding["finding_info"]["uid"], finding["metadata"]["uid"]);
    assert_eq!(
        finding["finding_info"]["analytic"]["uid"],
        "github-personal-access-token"
    );
    assert_eq!(
        finding["evidences"][0]["dst_endpoint"]["port"],
        sink.addr.port()
    );
    let fp = sensor::redact::Fingerprinter::from_hex(KEY)
        .unwrap()
        .fingerprint(tokens[0].as_bytes());
    assert_eq!(finding["unmapped"]["finding"]["fingerprint"], fp.as_str());
    let rem = ocsf_events
        .iter()
        .find(|e| e["class_uid"] == 7001)
        .expect("a Remediation Activity");
    assert_eq!(rem["unmapped"]["revocation"]["status"], "dry_run");
    assert_eq!(
        rem["unmapped"]["revocation"]["alert_id"],
        finding["metadata"]["uid"]
    );
    assert_eq!(
        rem["unmapped"]["revocation"]["request"]["url"],
        format!("http://{}/credentials/revoke", github.addr)
    );
    let ecs_docs = json_lines(&ecs);
    assert!(ecs_docs
        .iter()
        .any(|e| e["event"]["kind"] == "alert" && e["threat"]["technique"]["id"].is_array()));
    for (name, srv) in [("udp", &udp), ("tcp", &tcp)] {
        for m in srv.messages() {
            let (pri, _, host, app, procid, msgid, msg) =
                parse_rfc5424(&m).unwrap_or_else(|e| panic!("{name}: not RFC 5424 ({e}): {m}"));
            assert_eq!(pri / 8, 4, "facility auth");
            assert!(!host.is_empty() && app == "token-sensor" && procid.parse::<u32>().is_ok());
            let (hdr, ext) =
                parse_cef(&msg).unwrap_or_else(|e| panic!("{name}: not CEF ({e}): {msg}"));
            assert_eq!(hdr[0], "0");
            assert_eq!(
                (hdr[1].as_str(), hdr[2].as_str()),
                ("token-sensor", "token-sensor")
            );
            let sev: u32 = hdr[6].parse().expect("numeric severity");
            assert!(sev <= 10);
            let get = |k: &str| ext.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
            let id = get("externalId").expect("externalId");
            assert!(ids.contains(&id), "{name}: {id} not among the alerts");
            if msgid == "finding" {
                assert_eq!(hdr[4], "github-personal-access-token");
                assert_eq!(get("cs1"), Some(fp.clone()));
                assert_eq!(get("dpt"), Some(sink.addr.port().to_string()));
                let want = match finding["severity_id"].as_u64() {
                    Some(5) => 2, // critical → crit
                    Some(4) => 3, // high → err
                    _ => 4,
                };
                assert_eq!(pri % 8, want, "syslog severity follows the alert's");
            }
        }
    }
    // Dry run: nothing was sent to the provider.
    assert!(github.requests().is_empty(), "dry_run sent a revocation");
    assert!(d.stop().success());
    let msgs = [udp.messages(), tcp.messages()].concat().join("\n");
    assert_no_token(
        &tokens,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("syslog", msgs),
        ],
        &[&dir.join("state"), &ocsf, &ecs],
    );
}

#[test]
fn malformed_outputs_and_revocation_config_exit_2_naming_key_and_position() {
    let dir = temp_dir("deliv-badcfg");
    let good = dir.join("good.secret");
    std::fs::write(&good, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let plain = dir.join("plain.secret");
    std::fs::write(&plain, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    let cases: Vec<(String, Vec<String>)> = vec![
        ("outputs:\n  - kind: stdout\n  - kind: kafka\n".into(), vec!["outputs[1].kind".into(), "kafka".into(), "line 4".into()]),
        ("outputs:\n  - kind: http\n    url: \"not a url\"\n".into(), vec!["outputs[0]".into(), "`url`".into(), "line 3".into()]),
        ("outputs:\n  - kind: stdout\n  - kind: webhook\n    url: https://soar.example/\n    secret_file: /nonexistent/webhook.secret\n".into(),
            vec!["outputs[1]".into(), "secret_file".into(), "/nonexistent/webhook.secret".into(), "line 4".into()]),
        (format!("outputs:\n  - kind: webhook\n    url: https://soar.example/\n    secret_file: {}\n", plain.display()),
            vec!["outputs[0]".into(), "secret_file".into(), "whsec_".into()]),
        ("outputs:\n  - kind: file\n    format: ocsf\n".into(), vec!["outputs[0].path".into(), "required".into(), "line 3".into()]),
        ("revocation:\n  mode: sometimes\n".into(), vec!["revocation.mode".into(), "line 3".into()]),
        (format!("revocation:\n  mode: on\n  webhook: {{ url: https://revoke.example/, secret_file: {} }}\n", plain.display()),
            vec!["revocation.webhook".into(), "whsec_".into()]),
        (format!("outputs:\n  - kind: http\n    url: https://x.example/\n    headers: {{ Authorization: \"Splunk ${{UNSET_HEC_TOKEN_X}}\" }}\n  - kind: webhook\n    url: https://y.example/\n    secret_file: {}\n", good.display()),
            vec!["outputs[0].headers.Authorization".into(), "UNSET_HEC_TOKEN_X".into()]),
    ];
    // (The state_dir line comes first: entries sit one line lower than in `body`.)
    for (i, (body, want)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("bad{i}.yaml"));
        std::fs::write(
            &cfg,
            format!("state_dir: {}\n{body}", dir.join("state").display()),
        )
        .unwrap();
        let o = Command::new(sensor_bin())
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
            !err.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "secret echoed: {err}"
        );
    }
}

/// `openssl` makes a CA and a server certificate for 127.0.0.1 signed by it.
fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (ca, ca_key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
    let (crt, key, csr) = (
        format!("{name}-srv.pem"),
        format!("{name}-srv.key"),
        format!("{name}-srv.csr"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=127.0.0.1",
    ]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    (dir.join(ca), dir.join(crt), dir.join(key))
}

/// A TLS (rustls) HTTP endpoint answering 200 to every request; counts requests.
fn tls_server(cert: &Path, key: &Path) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use std::io::{Read, Write};
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(tcp) = c else { break };
            let (cfg, n) = (cfg.clone(), n2.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut tmp = [0u8; 16384];
                loop {
                    match s.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                    let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < h + 4 + len {
                        continue;
                    }
                    buf.drain(..h + 4 + len);
                    n.fetch_add(1, Ordering::SeqCst);
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, n)
}

#[test]
fn https_output_trusts_its_ca_file_and_nothing_else() {
    use sensor::deliver::sinks::{self, Item, SendError};
    let dir = temp_dir("deliv-tls");
    let (ca, crt, key) = make_ca(&dir, "good");
    let (other_ca, _, _) = make_ca(&dir, "other");
    let (addr, served) = tls_server(&crt, &key);
    let item = || Item {
        id: "01a25098-0000-7000-8000-000000000001".into(),
        alert: serde_json::json!({"type": "finding", "id": "01a25098-0000-7000-8000-000000000001"}),
        line: br#"{"type":"finding","id":"01a25098-0000-7000-8000-000000000001"}"#.to_vec(),
    };
    let send = |ca: Option<&Path>| {
        let mut yaml = format!("kind: http\nurl: https://{addr}/ingest\n");
        if let Some(c) = ca {
            yaml.push_str(&format!("ca_file: {}\n", c.display()));
        }
        let cfg: sinks::OutputConfig = serde_yaml_from(&yaml);
        let mut sink = sinks::build(&cfg, "outputs[0]").expect("sink");
        sink.send(&[item()])
    };
    assert_eq!(send(Some(&ca)), Ok(()), "the configured CA is trusted");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    for wrong in [Some(other_ca.as_path()), None] {
        match send(wrong) {
            Err(SendError::Transient { error, .. }) => {
                assert!(error.to_lowercase().contains("certificate"), "{error}")
            }
            other => panic!("untrusted server accepted ({wrong:?}): {other:?}"),
        }
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "nothing reached the untrusted server"
    );
}

fn serde_yaml_from(yaml: &str) -> sensor::deliver::sinks::OutputConfig {
    let cfg = sensor::config::Config::parse(
        &format!("outputs:\n  - {}", yaml.trim_end().replace('\n', "\n    ")),
        "t.yaml",
    )
    .expect("output config");
    cfg.outputs[0].clone()
}
