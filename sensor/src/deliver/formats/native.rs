//! `native`: the stored line as is — the alert's serde form (type, id, time, verdict,
//! severity, mitre, workspace, finding, process, tid, sink, chain, harvest, count, detail)
//! plus `host {hostname, machine_id}`; the sensor's own alerts are `type: revocation` and
//! `type: error` objects of the same kind.

/// The native line.
pub fn render(raw: &[u8]) -> Vec<u8> {
    raw.to_vec()
}
