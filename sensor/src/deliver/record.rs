//! What the outbox stores: one alert as its native JSON line (the `Alert` serialized as
//! today, plus a `host` object), and the sensor's own alerts about delivery and revocation
//! (`"type":"revocation"`, `"type":"error"`) in the same shape, so every format and output
//! treats them alike and the SOC sees found → revoked → failed in one stream.

use serde_json::{json, Map, Value};

use crate::verdict::alert::{new_id, Alert};

/// The machine the sensor runs on, as every alert names it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HostInfo {
    /// Kernel hostname.
    pub hostname: String,
    /// `/etc/machine-id` (empty when absent).
    pub machine_id: String,
}

impl HostInfo {
    /// Reads the hostname and machine id.
    pub fn detect() -> HostInfo {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut hostname = read("/proc/sys/kernel/hostname");
        if hostname.is_empty() {
            hostname = "localhost".into();
        }
        let mut machine_id = read("/etc/machine-id");
        if machine_id.is_empty() {
            machine_id = read("/var/lib/dbus/machine-id");
        }
        HostInfo {
            hostname,
            machine_id,
        }
    }

    fn json(&self) -> Value {
        json!({"hostname": self.hostname, "machine_id": self.machine_id})
    }
}

/// The native JSON of a detection alert: its serde form (field order kept, so lines stay
/// byte-compatible with earlier releases) with `"host"` appended.
pub fn native_alert(alert: &Alert, host: &HostInfo) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = serde_json::to_vec(alert)?;
    debug_assert_eq!(out.last(), Some(&b'}'));
    out.pop();
    out.extend_from_slice(b",\"host\":");
    serde_json::to_writer(&mut out, &host.json())?;
    out.push(b'}');
    Ok(out)
}

/// The sensor's own alert: `type`, a fresh UUIDv7 `id`, `time` (now), `severity`
/// (`info`, `low`, `medium`, `high`, `critical`), the given fields and `host`.
pub fn internal(
    kind: &str,
    severity: &str,
    fields: Map<String, Value>,
    host: &HostInfo,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("type".into(), kind.into());
    m.insert("id".into(), new_id().into());
    m.insert(
        "time".into(),
        humantime::format_rfc3339_nanos(std::time::SystemTime::now())
            .to_string()
            .into(),
    );
    m.insert("severity".into(), severity.into());
    for (k, v) in fields {
        m.insert(k, v);
    }
    m.insert("host".into(), host.json());
    serde_json::to_vec(&Value::Object(m)).expect("a JSON map serializes")
}

/// Reads a string field by JSON pointer (`""` when absent).
pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// Milliseconds since the epoch of an alert's RFC 3339 `time` (now when unparsable).
pub fn time_ms(v: &Value) -> u64 {
    let t =
        humantime::parse_rfc3339(s(v, "/time")).unwrap_or_else(|_| std::time::SystemTime::now());
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
