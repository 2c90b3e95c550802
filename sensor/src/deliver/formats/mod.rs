//! Alert formats. Every format is rendered from the native JSON stored in the outbox (so
//! an alert committed before a restart renders the same after it); each carries the alert
//! id for SIEM deduplication and — since the native JSON never holds one — no raw token.
//! Field mappings are documented per module and in the README.

pub mod cef;
pub mod ecs;
pub mod hec;
pub mod native;
pub mod ocsf;

use serde::Deserialize;
use serde_json::Value;

/// An output's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The sensor's own JSON (today's alert line plus `id` and `host`).
    Native,
    /// OCSF 1.5: Detection Finding (2004) / Remediation Activity (7001).
    Ocsf,
    /// Elastic Common Schema 8.x.
    Ecs,
    /// ArcSight Common Event Format text.
    Cef,
    /// Splunk HTTP Event Collector envelope around the native JSON.
    Hec,
}

/// Product name in every format.
pub const PRODUCT: &str = "token-sensor";
/// Product version in every format.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Format {
    /// Renders one stored alert (`raw` is its native JSON, `v` the same parsed) as one line.
    pub fn render(self, raw: &[u8], v: &Value) -> Vec<u8> {
        match self {
            Format::Native => native::render(raw),
            Format::Ocsf => serde_json::to_vec(&ocsf::render(v)).expect("JSON"),
            Format::Ecs => serde_json::to_vec(&ecs::render(v)).expect("JSON"),
            Format::Cef => cef::render(v).into_bytes(),
            Format::Hec => serde_json::to_vec(&hec::render(v)).expect("JSON"),
        }
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Ocsf => "ocsf",
            Format::Ecs => "ecs",
            Format::Cef => "cef",
            Format::Hec => "hec",
        }
    }
}

/// Alert severity → (rank 0–5 as OCSF `severity_id`, caption).
pub fn severity(v: &Value) -> (u8, &'static str) {
    match super::record::s(v, "/severity") {
        "info" => (1, "Informational"),
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        "critical" => (5, "Critical"),
        _ => (0, "Unknown"),
    }
}

/// ATT&CK technique ids of an alert: `mitre`, else the finding's `attack.tNNNN` tags.
pub fn techniques(v: &Value) -> Vec<String> {
    let ids: Vec<String> = v["mitre"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        return ids;
    }
    v.pointer("/finding/tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|t| t.strip_prefix("attack.t"))
                .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
                .map(|t| format!("T{}", t.to_ascii_uppercase()))
                .collect()
        })
        .unwrap_or_default()
}

/// A one-line human summary of an alert (used as message/name by several formats).
pub fn summary(v: &Value) -> String {
    use super::record::s;
    match s(v, "/type") {
        kind @ ("finding" | "repeat") => {
            let what = match s(v, "/finding/name") {
                "" => s(v, "/verdict").replace('_', " "),
                n => n.to_string(),
            };
            let to = [
                s(v, "/sink/host"),
                s(v, "/sink/endpoint/addr"),
                s(v, "/sink/endpoint/path"),
            ]
            .into_iter()
            .find(|x| !x.is_empty())
            .unwrap_or(s(v, "/sink/kind"));
            let times = if kind == "repeat" {
                format!(
                    ", {} times",
                    v.pointer("/count").cloned().unwrap_or_default()
                )
            } else {
                String::new()
            };
            format!(
                "{what}: {} by {} (pid {}) to {to}{times}",
                s(v, "/verdict").replace('_', " "),
                s(v, "/process/exe"),
                v.pointer("/process/pid").cloned().unwrap_or_default()
            )
        }
        "revocation" => format!(
            "token revocation {} via {} ({} {})",
            s(v, "/revocation/status"),
            s(v, "/revocation/method"),
            s(v, "/revocation/provider"),
            s(v, "/revocation/safe_prefix"),
        ),
        "error" => format!(
            "sensor error {}: {}",
            s(v, "/error/code"),
            s(v, "/error/message")
        ),
        other => format!("token-sensor {other}"),
    }
}

#[cfg(test)]
pub(crate) mod samples {
    //! Alerts for format and sink tests.
    use std::sync::Arc;

    use crate::deliver::record::{self, HostInfo};
    use crate::detect::engine::SecretValue;
    use crate::detect::{Encoding, Finding};
    use crate::state::events::{Endpoint, FdKind, ProcessRef};
    use crate::verdict::alert::*;
    use crate::verdict::boundary::Boundary;

    /// A raw token that must never appear in any rendering.
    pub const TOKEN: &str = "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";

    pub fn host() -> HostInfo {
        HostInfo {
            hostname: "build-7".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    /// A finding alert carrying the raw token in its (unserialized) secret field.
    pub fn finding_alert() -> Alert {
        let workspace = WorkspaceRef {
            id: "container:abc".into(),
            kind: WorkspaceKind::Container,
            root_pid: None,
            root_exe: None,
            container_id: Some("abc".into()),
            container_name: None,
            container_runtime: Some("docker".into()),
            cgroup: "/system.slice/docker-abc.scope".into(),
            pod: None,
        };
        Alert {
            kind: "finding",
            id: new_id(),
            time: "2026-12-07T12:00:00.123456789Z".into(),
            verdict: Verdict::Exfiltration,
            severity: crate::detect::rules::Severity::High,
            mitre: vec!["T1552".into(), "T1567".into()],
            workspace: workspace.clone(),
            finding: Some(Finding {
                detector: "github-personal-access-token".into(),
                name: "GitHub personal access token | classic".into(),
                provider: "github".into(),
                kind: "personal_access_token".into(),
                severity: crate::detect::rules::Severity::High,
                confidence: "high",
                validation: crate::detect::validators::Validation::Valid,
                encoding: Encoding::Raw,
                offset: 12,
                length: 40,
                safe_prefix: "ghp_".into(),
                last4: None,
                fingerprint: "hmac-sha256:00112233445566778899aabbccddeeff".into(),
                tags: vec!["T1552".into()],
                issuers: vec!["api.github.com".into()],
                revoke: "github_credentials_revoke".into(),
                learned_from: None,
                secret: Some(SecretValue::new(TOKEN.as_bytes())),
            }),
            process: Arc::new(ProcessRef {
                pid: 4242,
                ppid: 1,
                uid: 1000,
                exe: "/usr/bin/curl".into(),
                argv: vec!["curl".into(), "-d".into(), "@-".into(), "x=y\\z".into()],
                cgroup: "/system.slice/docker-abc.scope".into(),
                container_id: Some("abc".into()),
                container_runtime: Some("docker".into()),
                ancestry: vec![],
                workspace: Arc::new(workspace),
            }),
            tid: 4242,
            sink: Sink {
                kind: "network",
                fd: 5,
                fd_kind: FdKind::Socket,
                endpoint: Some(Endpoint::Inet {
                    proto: "tcp".into(),
                    addr: "203.0.113.9:443".parse().unwrap(),
                }),
                syscall: "write",
                host: Some("paste.example".into()),
                host_source: Some("http"),
                tls: None,
                dns_query: None,
                boundary: Boundary::Outside,
            },
            chain: Chain {
                source: SecretSource {
                    kind: "env",
                    var: Some("GITHUB_TOKEN".into()),
                    ..Default::default()
                },
                hops: vec![],
                sender_pid: 4242,
                sender_exe: "/usr/bin/curl".into(),
                env_reads: vec![],
            },
            harvest: None,
            count: 1,
            repeat_of: None,
            last_seen: None,
            detail: None,
        }
    }

    /// The native line of [`finding_alert`].
    pub fn finding_raw() -> Vec<u8> {
        record::native_alert(&finding_alert(), &host()).unwrap()
    }

    /// A revocation alert.
    pub fn revocation_raw() -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert(
            "revocation".into(),
            serde_json::json!({"status": "revoked", "method": "github_credentials_revoke",
                "provider": "github", "attempt": 1, "job_id": "j1", "alert_id": "a1",
                "fingerprint": "hmac-sha256:00", "safe_prefix": "ghp_", "length": 40,
                "http_status": 202, "request": {"method": "POST", "url": "https://api.github.com/credentials/revoke"}}),
        );
        record::internal("revocation", "info", m, &host())
    }

    /// An error alert.
    pub fn error_raw() -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert(
            "error".into(),
            serde_json::json!({"code": "delivery_failed", "output": "http:x", "message": "HTTP 400 | bad = data\nmore"}),
        );
        record::internal("error", "high", m, &host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_record_updates_its_finding() {
        let mut v: Value = serde_json::from_slice(&samples::finding_raw()).unwrap();
        let orig = v["id"].clone();
        v["type"] = "repeat".into();
        v["id"] = crate::verdict::alert::new_id().into();
        v["repeat_of"] = orig.clone();
        v["count"] = 50.into();
        let o = ocsf::render(&v);
        assert_eq!(
            (
                o["class_uid"].as_u64(),
                o["activity_id"].as_u64(),
                o["type_uid"].as_u64()
            ),
            (Some(2004), Some(2), Some(200402))
        );
        assert_eq!(o["finding_info"]["uid"], orig);
        assert_eq!(o["metadata"]["uid"], v["id"]);
        assert_eq!(ecs::render(&v)["event"]["kind"], "alert");
        assert!(cef::render(&v).contains(&format!("cs6={}", orig.as_str().unwrap())));
        assert!(summary(&v).ends_with("50 times"), "{}", summary(&v));
    }

    #[test]
    fn every_format_carries_the_id_and_never_the_token() {
        for raw in [
            samples::finding_raw(),
            samples::revocation_raw(),
            samples::error_raw(),
        ] {
            let v: Value = serde_json::from_slice(&raw).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            for f in [
                Format::Native,
                Format::Ocsf,
                Format::Ecs,
                Format::Cef,
                Format::Hec,
            ] {
                let out = String::from_utf8(f.render(&raw, &v)).unwrap();
                assert!(out.contains(&id), "{f:?} lacks the id: {out}");
                assert!(!out.contains(&samples::TOKEN[4..]), "{f:?} leaks the token");
                assert!(!out.contains('\n'), "{f:?} is not one line: {out}");
            }
        }
    }
}
