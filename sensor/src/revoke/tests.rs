//! Each provider against a loopback stand-in: the request it sends (method, path, the
//! leaked token in the provider's auth header or body) and how it reads the answers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::deliver::outbox::{JobStatus, RevocationJob};

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    head: String,
    body: Vec<u8>,
}

/// A one-answer-per-request HTTP stand-in; `answers` are served in turn (the last repeats).
fn standin(answers: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let mut n = 0;
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            let mut buf = Vec::new();
            let mut tmp = [0u8; 8192];
            loop {
                let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match c.read(&mut tmp) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..h]).into_owned();
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                while buf.len() < h + 4 + len {
                    match c.read(&mut tmp) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                    }
                }
                let mut first = head.lines().next().unwrap_or("").split(' ');
                s.lock().unwrap().push(Seen {
                    method: first.next().unwrap_or("").into(),
                    path: first.next().unwrap_or("").into(),
                    head: head.to_ascii_lowercase(),
                    body: buf[h + 4..h + 4 + len].to_vec(),
                });
                buf.drain(..h + 4 + len);
                let (status, headers, body) = answers[n.min(answers.len() - 1)];
                n += 1;
                let out = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{headers}\r\n{body}",
                    body.len()
                );
                if c.write_all(out.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (base, seen)
}

fn job(method: &str) -> RevocationJob {
    RevocationJob {
        id: "rv-0123".into(),
        method: method.into(),
        provider: "p".into(),
        kind: "k".into(),
        detector: "d".into(),
        fingerprint: "hmac-sha256:00".into(),
        safe_prefix: String::new(),
        length: 9,
        alert_id: "a1".into(),
        workspace: serde_json::json!({"id": "container:abc"}),
        source: serde_json::json!({"kind": "env", "var": "CODER_AGENT_TOKEN"}),
        env_var: Some("CODER_AGENT_TOKEN".into()),
        status: JobStatus::Pending,
        attempts: 0,
        created_ms: 0,
        not_before_ms: 0,
        last_error: None,
        dry_run: false,
    }
}

fn http() -> HttpClient {
    HttpClient::new(None, Duration::from_secs(5)).unwrap()
}

fn revoke(r: &dyn Revoker, token: &str) -> Result<Outcome, Failure> {
    let j = job("x");
    r.revoke(
        &http(),
        &[Target {
            job: &j,
            token: token.as_bytes(),
        }],
    )
}

#[test]
fn github_posts_a_credentials_batch_and_reads_rate_limits() {
    let (base, seen) = standin(vec![
        (202, "", ""),
        (
            403,
            "x-ratelimit-remaining: 0\r\nx-ratelimit-reset: 4102444800\r\n",
            "{}",
        ),
        (422, "", "{}"),
    ]);
    let g = github::Github::new(github::GithubConfig {
        api_url: base,
        ..Default::default()
    });
    let (j1, j2) = (
        job("github_credentials_revoke"),
        job("github_credentials_revoke"),
    );
    let t = [
        Target {
            job: &j1,
            token: b"ghp_a",
        },
        Target {
            job: &j2,
            token: b"ghp_b",
        },
    ];
    assert!(matches!(
        g.revoke(&http(), &t),
        Ok(Outcome::Revoked { status: 202, .. })
    ));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/credentials/revoke")
    );
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["credentials"], serde_json::json!(["ghp_a", "ghp_b"]));
    assert!(matches!(
        g.revoke(&http(), &t),
        Err(Failure::Transient {
            status: Some(403),
            retry_after: Some(_),
            ..
        })
    ));
    assert!(matches!(
        g.revoke(&http(), &t),
        Err(Failure::Permanent {
            status: Some(422),
            ..
        })
    ));
    assert_eq!(g.max_batch(), 1000);
    assert_eq!(g.min_interval(), Duration::from_secs(60));
}

#[test]
fn gitlab_vault_doppler_coder_authenticate_with_the_token_itself() {
    let (base, seen) = standin(vec![(204, "", ""), (401, "", "{}")]);
    let gl = gitlab::Gitlab::new(gitlab::GitlabConfig { url: base.clone() });
    assert!(matches!(
        revoke(&gl, "glpat-abc"),
        Ok(Outcome::Revoked { status: 204, .. })
    ));
    assert!(matches!(
        revoke(&gl, "glpat-abc"),
        Ok(Outcome::AlreadyInvalid { status: 401, .. })
    ));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("DELETE", "/api/v4/personal_access_tokens/self")
    );
    assert!(s.head.contains("private-token: glpat-abc"));

    let (base, seen) = standin(vec![
        (204, "", ""),
        (403, "", "{}"),
        (503, "retry-after: 7\r\n", ""),
    ]);
    let v = vault::Vault::new(vault::VaultConfig { addr: base });
    assert!(matches!(revoke(&v, "hvs.x"), Ok(Outcome::Revoked { .. })));
    assert!(matches!(
        revoke(&v, "hvs.x"),
        Ok(Outcome::AlreadyInvalid { status: 403, .. })
    ));
    assert_eq!(
        revoke(&v, "hvs.x").unwrap_err(),
        Failure::Transient {
            status: Some(503),
            detail: format!("POST {}: HTTP 503", v.request(&job("x")).url),
            retry_after: Some(Duration::from_secs(7))
        }
    );
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/v1/auth/token/revoke-self")
    );
    assert!(s.head.contains("x-vault-token: hvs.x"));

    let (base, seen) = standin(vec![(200, "", "{}")]);
    let d = doppler::Doppler::new(doppler::DopplerConfig { api_url: base });
    assert!(matches!(revoke(&d, "dp.st.x"), Ok(Outcome::Revoked { .. })));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.path, "/v3/auth/revoke");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["token"],
        "dp.st.x"
    );

    let (base, seen) = standin(vec![(204, "", ""), (404, "", "")]);
    let c = coder::Coder::new(coder::CoderConfig { url: base });
    let key = "abcdefghij-abcdefghijklmnopqrstuv";
    assert!(matches!(revoke(&c, key), Ok(Outcome::Revoked { .. })));
    assert!(matches!(
        revoke(&c, key),
        Ok(Outcome::AlreadyInvalid { status: 404, .. })
    ));
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("DELETE", "/api/v2/users/me/keys/abcdefghij")
    );
    assert!(s.head.contains(&format!("coder-session-token: {key}")));
    assert!(matches!(
        revoke(&c, "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"),
        Err(Failure::Permanent { .. })
    ));
}

#[test]
fn slack_reads_ok_and_error_answers() {
    let (base, seen) = standin(vec![
        (200, "", r#"{"ok":true,"revoked":true}"#),
        (200, "", r#"{"ok":false,"error":"invalid_auth"}"#),
        (200, "", r#"{"ok":false,"error":"missing_scope"}"#),
        (429, "retry-after: 30\r\n", ""),
    ]);
    let sl = slack::Slack::new(slack::SlackConfig { api_url: base });
    assert!(matches!(revoke(&sl, "xoxb-1"), Ok(Outcome::Revoked { .. })));
    assert!(matches!(
        revoke(&sl, "xoxb-1"),
        Ok(Outcome::AlreadyInvalid { .. })
    ));
    assert!(matches!(
        revoke(&sl, "xoxb-1"),
        Err(Failure::Permanent { .. })
    ));
    assert!(
        matches!(revoke(&sl, "xoxb-1"), Err(Failure::Transient { retry_after: Some(d), .. }) if d == Duration::from_secs(30))
    );
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/auth.revoke")
    );
    assert!(s.head.contains("authorization: bearer xoxb-1"));
}

#[test]
fn webhook_signs_the_token_bearing_body_and_routes_the_rest() {
    let (base, seen) = standin(vec![(200, "", ""), (410, "", "")]);
    let dir = std::env::temp_dir().join(format!("revwh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("s");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let w = webhook::RevokeWebhook::new(webhook::RevokeWebhookConfig {
        url: format!("{base}/revoke"),
        secret_file: secret.clone(),
    })
    .unwrap();
    assert!(matches!(
        revoke(&w, "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"),
        Ok(Outcome::Revoked { .. })
    ));
    assert!(matches!(
        revoke(&w, "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"),
        Err(Failure::Permanent {
            status: Some(410),
            ..
        })
    ));
    let s = seen.lock().unwrap()[0].clone();
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["token"], "5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a");
    assert_eq!(body["env_var"], "CODER_AGENT_TOKEN");
    let h = |k: &str| {
        s.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")).map(str::to_string))
            .unwrap()
    };
    let key =
        crate::deliver::signing::WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
    // Header values were lower-cased by the stand-in: compare signatures case-insensitively.
    let ts: u64 = h("webhook-timestamp").parse().unwrap();
    assert_eq!(h("webhook-id"), "rv-0123");
    assert_eq!(
        h("webhook-signature"),
        key.sign("rv-0123", ts, &s.body).to_ascii_lowercase()
    );
    // Routing: configured providers first, the webhook for the rest.
    let reg = Registry::new(&RevocationConfig {
        webhook: Some(webhook::RevokeWebhookConfig {
            url: format!("{base}/revoke"),
            secret_file: secret,
        }),
        ..Default::default()
    })
    .unwrap();
    let name = |m: &str| reg.route(m).map(|i| reg.get(i).name());
    assert_eq!(name("github_credentials_revoke"), Some("github"));
    assert_eq!(
        name("vault_revoke_self"),
        Some("webhook"),
        "no vault.addr: webhook"
    );
    assert_eq!(name("webhook"), Some("webhook"));
    assert_eq!(name("aws_something"), Some("webhook"));
    let bare = Registry::new(&RevocationConfig::default()).unwrap();
    assert_eq!(bare.route("webhook"), None);
    assert_eq!(bare.route("coder_key_delete"), None);
}
