//! OCSF 1.5.0. Findings are **Detection Finding** (class 2004, category 2 Findings,
//! activity 1 Create); revocations are **Remediation Activity** (class 7001, category 7
//! Remediation, activity 2 Evict, countermeasure D3FEND Credential Revoking); the
//! sensor's errors are Detection Findings of type `sensor_error`.
//!
//! | OCSF | finding | revocation |
//! |---|---|---|
//! | `metadata.uid`, `finding_info.uid` / `command_uid` | alert id (a `repeat` record: activity Update, `finding_info.uid` = the finding it repeats) | alert id / job id |
//! | `metadata.product`, `metadata.version` | token-sensor, `1.5.0` | same |
//! | `metadata.correlation_uid` | token fingerprint | token fingerprint |
//! | `time` | alert time (ms) | time |
//! | `severity_id` | info 1, low 2, medium 3, high 4, critical 5 | same |
//! | `finding_info.title/desc/types` | rule name, summary, verdict | – |
//! | `finding_info.analytic` | rule (detector, name, type Rule) | – |
//! | `finding_info.attacks[].technique.uid` | ATT&CK ids | – |
//! | `confidence_id` | low/medium/high → 1/2/3 | – |
//! | `actor.process`, `evidences[].process` | sending process | – |
//! | `evidences[].dst_endpoint` | network sink (ip, port, hostname) | – |
//! | `evidences[].file` | file/unix sink path | – |
//! | `resources[]` | workspace (uid, type, container) | workspace |
//! | `device` | hostname, machine id | same |
//! | `status_id` | 1 New | 1 Success, 2 Failure, 5 Unsupported, 99 Other (dry run, retrying) |
//! | `unmapped` | verdict, workspace, finding (redacted), chain (learned where, hops, sender), sink, count | revocation |

use serde_json::{json, Map, Value};

use super::super::record::{s, time_ms};

/// OCSF schema version the mapping follows.
pub const SCHEMA_VERSION: &str = "1.5.0";

fn base(
    v: &Value,
    class_uid: u32,
    class_name: &str,
    category: (u32, &str),
    activity: (u32, &str),
) -> Map<String, Value> {
    let (sev_id, sev) = super::severity(v);
    let mut m = Map::new();
    m.insert("class_uid".into(), class_uid.into());
    m.insert("class_name".into(), class_name.into());
    m.insert("category_uid".into(), category.0.into());
    m.insert("category_name".into(), category.1.into());
    m.insert("activity_id".into(), activity.0.into());
    m.insert("activity_name".into(), activity.1.into());
    m.insert(
        "type_uid".into(),
        (class_uid as u64 * 100 + activity.0 as u64).into(),
    );
    m.insert(
        "type_name".into(),
        format!("{class_name}: {}", activity.1).into(),
    );
    m.insert("severity_id".into(), sev_id.into());
    m.insert("severity".into(), sev.into());
    m.insert("time".into(), time_ms(v).into());
    m.insert("message".into(), super::summary(v).into());
    m.insert(
        "metadata".into(),
        json!({
            "version": SCHEMA_VERSION,
            "uid": v["id"],
            "log_name": s(v, "/type"),
            "product": {"name": super::PRODUCT, "vendor_name": super::PRODUCT, "version": super::VERSION},
        }),
    );
    m.insert(
        "device".into(),
        json!({"hostname": s(v, "/host/hostname"), "uid": s(v, "/host/machine_id"), "type_id": 0, "type": "Unknown"}),
    );
    m
}

fn process(v: &Value) -> Value {
    let exe = s(v, "/process/exe");
    let name = exe.rsplit('/').next().unwrap_or("");
    let argv: Vec<&str> = v
        .pointer("/process/argv")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    json!({
        "pid": v.pointer("/process/pid"),
        "name": name,
        "cmd_line": argv.join(" "),
        "file": {"name": name, "path": exe, "type_id": 1, "type": "Regular File"},
        "parent_process": {"pid": v.pointer("/process/ppid")},
        "user": {"uid": v.pointer("/process/uid").map(|u| u.to_string())},
    })
}

fn workspace(v: &Value) -> Value {
    json!([{
        "uid": s(v, "/workspace/id"),
        "type": "workspace",
        "name": s(v, "/workspace/container_name"),
        "data": v["workspace"],
    }])
}

/// The OCSF event of one alert.
pub fn render(v: &Value) -> Value {
    match s(v, "/type") {
        "revocation" => remediation(v),
        "error" => error(v),
        _ => finding(v),
    }
}

/// Findings (and `repeat` summaries of a finding: activity Update of the same
/// `finding_info.uid`).
fn finding(v: &Value) -> Value {
    let repeat = s(v, "/type") == "repeat";
    let activity = if repeat { (2, "Update") } else { (1, "Create") };
    let mut m = base(v, 2004, "Detection Finding", (2, "Findings"), activity);
    let finding_uid = match s(v, "/repeat_of") {
        "" => v["id"].clone(),
        orig => orig.into(),
    };
    let attacks: Vec<Value> = super::techniques(v)
        .iter()
        .map(|t| json!({"technique": {"uid": t}}))
        .collect();
    m.insert(
        "finding_info".into(),
        json!({
            "uid": finding_uid,
            "title": match s(v, "/finding/name") { "" => s(v, "/verdict"), n => n },
            "desc": super::summary(v),
            "types": [s(v, "/verdict")],
            "created_time": time_ms(v),
            "analytic": {"uid": s(v, "/finding/detector"), "name": s(v, "/finding/name"), "type_id": 1, "type": "Rule"},
            "attacks": attacks,
            "data_sources": ["ebpf"],
        }),
    );
    m.insert("is_alert".into(), true.into());
    m.insert("status_id".into(), 1.into());
    m.insert("status".into(), "New".into());
    let conf = match s(v, "/finding/confidence") {
        "low" => 1,
        "medium" => 2,
        "high" => 3,
        _ => 0,
    };
    m.insert("confidence_id".into(), conf.into());
    let fp = s(v, "/finding/fingerprint");
    if !fp.is_empty() {
        m["metadata"]["correlation_uid"] = fp.into();
    }
    let proc_ = process(v);
    m.insert("actor".into(), json!({"process": proc_}));
    let mut ev = Map::new();
    ev.insert("process".into(), proc_);
    if let Ok(a) = s(v, "/sink/endpoint/addr").parse::<std::net::SocketAddr>() {
        let mut d = json!({"ip": a.ip().to_string(), "port": a.port()});
        if !s(v, "/sink/host").is_empty() {
            d["hostname"] = v["sink"]["host"].clone();
        }
        ev.insert("dst_endpoint".into(), d);
    } else if !s(v, "/sink/host").is_empty() {
        ev.insert(
            "dst_endpoint".into(),
            json!({"hostname": v["sink"]["host"]}),
        );
    }
    let path = s(v, "/sink/endpoint/path");
    if !path.is_empty() {
        let name = path.rsplit('/').next().unwrap_or(path);
        ev.insert(
            "file".into(),
            json!({"path": path, "name": name, "type_id": 0, "type": "Unknown"}),
        );
    }
    m.insert("evidences".into(), json!([Value::Object(ev)]));
    m.insert("resources".into(), workspace(v));
    let mut un = Map::new();
    for k in [
        "verdict",
        "workspace",
        "finding",
        "chain",
        "sink",
        "harvest",
        "count",
        "detail",
        "tid",
    ] {
        if !v[k].is_null() {
            un.insert(k.into(), v[k].clone());
        }
    }
    m.insert("unmapped".into(), Value::Object(un));
    Value::Object(m)
}

fn remediation(v: &Value) -> Value {
    let mut m = base(
        v,
        7001,
        "Remediation Activity",
        (7, "Remediation"),
        (2, "Evict"),
    );
    let status = s(v, "/revocation/status");
    let (sid, sname) = match status {
        "revoked" | "already_invalid" => (1, "Success"),
        "failed" => (2, "Failure"),
        "unsupported" => (5, "Unsupported"),
        _ => (99, "Other"),
    };
    m.insert("status_id".into(), sid.into());
    m.insert("status".into(), sname.into());
    m.insert("status_code".into(), status.into());
    m.insert("status_detail".into(), s(v, "/revocation/detail").into());
    m.insert("command_uid".into(), s(v, "/revocation/job_id").into());
    m.insert(
        "countermeasures".into(),
        json!([{"d3f_tactic": {"name": "Evict", "uid": "d3f:Evict"},
                "d3f_technique": {"name": "Credential Revoking", "uid": "D3-CR"}}]),
    );
    let fp = s(v, "/revocation/fingerprint");
    if !fp.is_empty() {
        m["metadata"]["correlation_uid"] = fp.into();
    }
    m.insert("resources".into(), workspace(v));
    m.insert(
        "unmapped".into(),
        json!({"revocation": v["revocation"], "workspace": v["workspace"]}),
    );
    Value::Object(m)
}

fn error(v: &Value) -> Value {
    let mut m = base(v, 2004, "Detection Finding", (2, "Findings"), (1, "Create"));
    m.insert(
        "finding_info".into(),
        json!({
            "uid": v["id"],
            "title": format!("token-sensor {}", s(v, "/error/code")),
            "desc": s(v, "/error/message"),
            "types": ["sensor_error"],
            "analytic": {"uid": "token-sensor:delivery", "name": "token-sensor delivery", "type_id": 99, "type": "Other"},
        }),
    );
    m.insert("status_id".into(), 1.into());
    m.insert("unmapped".into(), json!({"error": v["error"]}));
    Value::Object(m)
}
