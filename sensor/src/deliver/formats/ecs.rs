//! Elastic Common Schema 8.11.
//!
//! | ECS | finding | revocation | error |
//! |---|---|---|---|
//! | `@timestamp` | alert time | time | time |
//! | `event.id` | alert id | alert id | alert id |
//! | `event.kind` | `alert` | `event` | `pipeline_error` |
//! | `event.category` / `event.type` | `intrusion_detection` / `info` | `iam` / `deletion` | – |
//! | `event.action` | verdict | `token-revocation` | error code |
//! | `event.outcome` | – | `success`/`failure`/`unknown` | `failure` |
//! | `event.severity` | 1–5 (info…critical) | same | same |
//! | `rule.id`, `rule.name`, `rule.category` | detector, rule name, provider | method | – |
//! | `threat.framework`, `threat.technique.id` | `MITRE ATT&CK`, mitre ids | – | – |
//! | `process.pid/executable/name/args/parent.pid/user.id` | sending process | – | – |
//! | `destination.ip/port/address/domain` | network sink | – | – |
//! | `file.path` | file or unix sink path | – | – |
//! | `host.hostname/name/id` | hostname, machine id | same | same |
//! | `container.id`, `container.runtime` | workspace container | same | – |
//! | `observer.vendor/product/version/type` | token-sensor, `sensor` | same | same |
//! | `token_sensor.*` | verdict, workspace, finding (redacted), chain, sink, count | revocation | error |

use serde_json::{json, Map, Value};

use super::super::record::s;

fn set(m: &mut Map<String, Value>, path: &str, v: Value) {
    if v.is_null() || v.as_str() == Some("") {
        return;
    }
    let mut cur = m;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("object");
    }
    cur.insert(parts[parts.len() - 1].to_string(), v);
}

/// The ECS document of one alert.
pub fn render(v: &Value) -> Value {
    let mut m = Map::new();
    let kind = s(v, "/type");
    set(&mut m, "@timestamp", v["time"].clone());
    set(&mut m, "ecs.version", "8.11.0".into());
    set(&mut m, "message", super::summary(v).into());
    set(&mut m, "event.id", v["id"].clone());
    set(&mut m, "event.severity", super::severity(v).0.into());
    set(&mut m, "event.module", "token_sensor".into());
    set(
        &mut m,
        "event.dataset",
        format!("token_sensor.{kind}").into(),
    );
    set(
        &mut m,
        "host.hostname",
        v.pointer("/host/hostname").cloned().unwrap_or_default(),
    );
    set(
        &mut m,
        "host.name",
        v.pointer("/host/hostname").cloned().unwrap_or_default(),
    );
    set(
        &mut m,
        "host.id",
        v.pointer("/host/machine_id").cloned().unwrap_or_default(),
    );
    set(&mut m, "observer.vendor", super::PRODUCT.into());
    set(&mut m, "observer.product", super::PRODUCT.into());
    set(&mut m, "observer.version", super::VERSION.into());
    set(&mut m, "observer.type", "sensor".into());
    set(
        &mut m,
        "container.id",
        v.pointer("/workspace/container_id")
            .cloned()
            .unwrap_or_default(),
    );
    set(
        &mut m,
        "container.runtime",
        v.pointer("/workspace/container_runtime")
            .cloned()
            .unwrap_or_default(),
    );
    match kind {
        "revocation" => {
            let status = s(v, "/revocation/status");
            set(&mut m, "event.kind", "event".into());
            set(&mut m, "event.category", json!(["iam"]));
            set(&mut m, "event.type", json!(["deletion"]));
            set(&mut m, "event.action", "token-revocation".into());
            let outcome = match status {
                "revoked" | "already_invalid" => "success",
                "failed" | "retrying" | "unsupported" => "failure",
                _ => "unknown",
            };
            set(&mut m, "event.outcome", outcome.into());
            set(
                &mut m,
                "rule.id",
                v.pointer("/revocation/method").cloned().unwrap_or_default(),
            );
            set(&mut m, "token_sensor.revocation", v["revocation"].clone());
            set(&mut m, "token_sensor.workspace", v["workspace"].clone());
        }
        "error" => {
            set(&mut m, "event.kind", "pipeline_error".into());
            set(
                &mut m,
                "event.action",
                v.pointer("/error/code").cloned().unwrap_or_default(),
            );
            set(&mut m, "event.outcome", "failure".into());
            set(
                &mut m,
                "error.message",
                v.pointer("/error/message").cloned().unwrap_or_default(),
            );
            set(
                &mut m,
                "error.code",
                v.pointer("/error/code").cloned().unwrap_or_default(),
            );
            set(&mut m, "token_sensor.error", v["error"].clone());
        }
        // Findings, and `repeat` summaries of one.
        _ => finding(&mut m, v),
    }
    set(&mut m, "token_sensor.type", kind.into());
    Value::Object(m)
}

fn finding(m: &mut Map<String, Value>, v: &Value) {
    set(m, "event.kind", "alert".into());
    set(m, "event.category", json!(["intrusion_detection"]));
    set(m, "event.type", json!(["info"]));
    set(m, "event.action", v["verdict"].clone());
    set(
        m,
        "rule.id",
        v.pointer("/finding/detector").cloned().unwrap_or_default(),
    );
    set(
        m,
        "rule.name",
        v.pointer("/finding/name").cloned().unwrap_or_default(),
    );
    set(
        m,
        "rule.category",
        v.pointer("/finding/provider").cloned().unwrap_or_default(),
    );
    set(m, "rule.ruleset", super::PRODUCT.into());
    let techniques = super::techniques(v);
    if !techniques.is_empty() {
        set(m, "threat.framework", "MITRE ATT&CK".into());
        set(m, "threat.technique.id", json!(techniques));
    }
    let exe = s(v, "/process/exe");
    set(
        m,
        "process.pid",
        v.pointer("/process/pid").cloned().unwrap_or_default(),
    );
    set(m, "process.executable", exe.into());
    set(
        m,
        "process.name",
        exe.rsplit('/').next().unwrap_or("").into(),
    );
    set(
        m,
        "process.args",
        v.pointer("/process/argv").cloned().unwrap_or_default(),
    );
    set(
        m,
        "process.parent.pid",
        v.pointer("/process/ppid").cloned().unwrap_or_default(),
    );
    set(
        m,
        "process.user.id",
        v.pointer("/process/uid")
            .map(|u| u.to_string().into())
            .unwrap_or_default(),
    );
    set(m, "process.thread.id", v["tid"].clone());
    if let Ok(a) = s(v, "/sink/endpoint/addr").parse::<std::net::SocketAddr>() {
        set(m, "destination.ip", a.ip().to_string().into());
        set(m, "destination.port", a.port().into());
        set(m, "destination.address", a.ip().to_string().into());
    }
    if !s(v, "/sink/host").is_empty() {
        set(
            m,
            "destination.domain",
            v.pointer("/sink/host").cloned().unwrap_or_default(),
        );
        set(
            m,
            "destination.address",
            v.pointer("/sink/host").cloned().unwrap_or_default(),
        );
    }
    set(
        m,
        "file.path",
        v.pointer("/sink/endpoint/path")
            .cloned()
            .unwrap_or_default(),
    );
    for k in [
        "verdict",
        "workspace",
        "finding",
        "chain",
        "sink",
        "harvest",
        "count",
        "detail",
    ] {
        set(m, &format!("token_sensor.{k}"), v[k].clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_fields() {
        let v: Value = serde_json::from_slice(&super::super::samples::finding_raw()).unwrap();
        let e = render(&v);
        assert_eq!(e["event"]["kind"], "alert");
        assert_eq!(e["event"]["id"], v["id"]);
        assert_eq!(e["threat"]["technique"]["id"][0], "T1552");
        assert_eq!(e["process"]["pid"], 4242);
        assert_eq!(e["process"]["name"], "curl");
        assert_eq!(e["destination"]["ip"], "203.0.113.9");
        assert_eq!(e["destination"]["domain"], "paste.example");
        assert_eq!(e["rule"]["id"], "github-personal-access-token");
        assert_eq!(e["host"]["id"], "0123456789abcdef0123456789abcdef");
        assert!(e["@timestamp"].is_string() && e["ecs"]["version"].is_string());
    }
}
