//! What the outbox stores: one alert as its native JSON line (the `Alert` serialized as
//! today, plus a `host` object), and the sensor's own alerts about delivery and revocation
//! (`"type":"revocation"`, `"type":"error"`) in the same shape, so every format and output
//! treats them alike and the SOC sees found → revoked → failed in one stream.

use serde_json::{json, Map, Value};

use crate::verdict::alert::{new_id, Alert};

/// The sensor's version, as alerts carry it.
pub const SENSOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The machine the sensor runs on and the sensor itself (version, rule set), as every
/// alert names them: a fleet's SIEM tells hosts and rollouts apart by these.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HostInfo {
    /// Host name: `NODE_NAME` when set (the Kubernetes node, from the downward API: a
    /// pod's own hostname is the pod name), else the kernel hostname.
    pub hostname: String,
    /// The host's machine id: `/proc/1/root/etc/machine-id` (the host's init, reachable
    /// from a container with the host PID namespace), else `/etc/machine-id`, else
    /// `/var/lib/dbus/machine-id` (empty when none is readable).
    pub machine_id: String,
    /// [`SENSOR_VERSION`].
    pub sensor_version: String,
    /// [`ruleset_version`] of the loaded rules (empty until rules are known).
    pub rules_version: String,
}

impl HostInfo {
    /// Reads the hostname and machine id; the rule-set version is left empty.
    pub fn detect() -> HostInfo {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut hostname = std::env::var("NODE_NAME")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if hostname.is_empty() {
            hostname = read("/proc/sys/kernel/hostname");
        }
        if hostname.is_empty() {
            hostname = "localhost".into();
        }
        let machine_id = [
            "/proc/1/root/etc/machine-id",
            "/etc/machine-id",
            "/var/lib/dbus/machine-id",
        ]
        .iter()
        .map(|p| read(p))
        .find(|id| !id.is_empty())
        .unwrap_or_default();
        HostInfo {
            hostname,
            machine_id,
            sensor_version: SENSOR_VERSION.into(),
            rules_version: String::new(),
        }
    }

    /// The same host with the rule-set version of `rules`.
    pub fn with_rules(mut self, rules: &[crate::detect::rules::Rule]) -> HostInfo {
        self.rules_version = ruleset_version(rules);
        self
    }

    fn json(&self) -> Value {
        json!({
            "hostname": self.hostname,
            "machine_id": self.machine_id,
            "sensor_version": self.sensor_version,
            "rules_version": self.rules_version,
        })
    }
}

/// The version of an effective rule set: the sensor version (which fixes the built-in
/// rules) and the first 12 hex digits of a SHA-256 over the rules as loaded (built-in and
/// custom, in order, as JSON). Equal on every host that loaded the same rules; changes
/// with any rule's pattern, severity, issuers… (`0.1.0+3f2a9c0d11be`).
pub fn ruleset_version(rules: &[crate::detect::rules::Rule]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for r in rules {
        h.update(serde_json::to_vec(r).expect("a rule serializes"));
        h.update(b"\n");
    }
    let d = hex::encode(h.finalize());
    format!("{SENSOR_VERSION}+{}", &d[..12])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_version_is_stable_and_follows_the_rules() {
        let rules = crate::detect::rules::builtin();
        let v = ruleset_version(&rules);
        assert_eq!(v, ruleset_version(&crate::detect::rules::builtin()));
        assert!(
            v.starts_with(&format!("{SENSOR_VERSION}+")) && v.len() == SENSOR_VERSION.len() + 13,
            "{v}"
        );
        let mut changed = rules.clone();
        changed[0].severity = crate::detect::rules::Severity::Low;
        if rules[0].severity == crate::detect::rules::Severity::Low {
            changed[0].severity = crate::detect::rules::Severity::High;
        }
        assert_ne!(v, ruleset_version(&changed));
        assert_ne!(v, ruleset_version(&rules[1..]));
    }
}
