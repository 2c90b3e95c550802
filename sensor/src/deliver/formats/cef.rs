//! ArcSight CEF: `CEF:0|token-sensor|token-sensor|<version>|<signature>|<name>|<severity>|<ext>`.
//! Header fields escape `\` and `|`; extension values escape `\`, `=`, and line breaks.
//!
//! | CEF | finding | revocation | error |
//! |---|---|---|---|
//! | signature id | `finding.detector` (or verdict) | `revocation:<method>` | `error:<code>` |
//! | name | summary | summary | summary |
//! | severity | low 3, medium 5, high 8, critical 10, info 1 | same | same |
//! | `externalId` | alert id | alert id | alert id |
//! | `rt` | alert time (ms) | time | time |
//! | `act` / `outcome` | verdict | status | code |
//! | `dvchost`, `deviceExternalId` | hostname, machine id | same | same |
//! | `spid`, `sproc`, `suid` | sending process | – | – |
//! | `dst`, `dpt`, `dhost` | network sink address, port, name | – | – |
//! | `fname` | file/unix sink path | – | – |
//! | `cs1` fingerprint, `cs2` workspace, `cs3` ATT&CK ids, `cs4` safe prefix, `cs5` provider, `cs6` finding/revocation job link | | | |
//! | `cn1` length, `cn2` count / attempt | | | |
//! | `msg` | summary | detail | message |

use serde_json::Value;

use super::super::record::{s, time_ms};

fn esc_header(x: &str) -> String {
    let mut o = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '|' => o.push_str("\\|"),
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn esc_ext(x: &str) -> String {
    let mut o = String::with_capacity(x.len());
    for c in x.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// CEF severity (0–10).
fn cef_severity(v: &Value) -> u8 {
    match super::severity(v).0 {
        1 => 1,
        2 => 3,
        3 => 5,
        4 => 8,
        5 => 10,
        _ => 5,
    }
}

/// The CEF line of one alert.
pub fn render(v: &Value) -> String {
    let kind = s(v, "/type");
    let sig = match kind {
        "finding" | "repeat" => match s(v, "/finding/detector") {
            "" => s(v, "/verdict").to_string(),
            d => d.to_string(),
        },
        "revocation" => format!("revocation:{}", s(v, "/revocation/method")),
        "error" => format!("error:{}", s(v, "/error/code")),
        k => k.to_string(),
    };
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", time_ms(v).to_string()),
        ("externalId", s(v, "/id").into()),
        ("cat", kind.into()),
        ("dvchost", s(v, "/host/hostname").into()),
        ("deviceExternalId", s(v, "/host/machine_id").into()),
    ];
    let num = |p: &str| v.pointer(p).and_then(Value::as_u64).map(|n| n.to_string());
    match kind {
        "finding" | "repeat" => {
            ext.push(("act", s(v, "/verdict").into()));
            if let Some(p) = num("/process/pid") {
                ext.push(("spid", p));
            }
            ext.push(("sproc", s(v, "/process/exe").into()));
            if let Some(u) = num("/process/uid") {
                ext.push(("suid", u));
            }
            if let Ok(a) = s(v, "/sink/endpoint/addr").parse::<std::net::SocketAddr>() {
                ext.push(("dst", a.ip().to_string()));
                ext.push(("dpt", a.port().to_string()));
            }
            ext.push(("dhost", s(v, "/sink/host").into()));
            ext.push(("fname", s(v, "/sink/endpoint/path").into()));
            ext.push(("cs1Label", "fingerprint".into()));
            ext.push(("cs1", s(v, "/finding/fingerprint").into()));
            ext.push(("cs2Label", "workspace".into()));
            ext.push(("cs2", s(v, "/workspace/id").into()));
            let mitre = super::techniques(v);
            ext.push(("cs3Label", "mitreTechniques".into()));
            ext.push(("cs3", mitre.join(",")));
            ext.push(("cs4Label", "safePrefix".into()));
            ext.push(("cs4", s(v, "/finding/safe_prefix").into()));
            ext.push(("cs5Label", "provider".into()));
            ext.push(("cs5", s(v, "/finding/provider").into()));
            if let Some(n) = num("/finding/length") {
                ext.push(("cn1Label", "length".into()));
                ext.push(("cn1", n));
            }
            if let Some(n) = num("/count") {
                ext.push(("cn2Label", "count".into()));
                ext.push(("cn2", n));
            }
            ext.push(("cs6Label", "repeatOf".into()));
            ext.push(("cs6", s(v, "/repeat_of").into()));
            ext.push(("msg", super::summary(v)));
        }
        "revocation" => {
            ext.push(("outcome", s(v, "/revocation/status").into()));
            ext.push(("act", "revoke".into()));
            ext.push(("request", s(v, "/revocation/request/url").into()));
            ext.push(("requestMethod", s(v, "/revocation/request/method").into()));
            ext.push(("cs1Label", "fingerprint".into()));
            ext.push(("cs1", s(v, "/revocation/fingerprint").into()));
            ext.push(("cs2Label", "workspace".into()));
            ext.push(("cs2", s(v, "/workspace/id").into()));
            ext.push(("cs4Label", "safePrefix".into()));
            ext.push(("cs4", s(v, "/revocation/safe_prefix").into()));
            ext.push(("cs5Label", "provider".into()));
            ext.push(("cs5", s(v, "/revocation/provider").into()));
            ext.push(("cs6Label", "findingAlertId".into()));
            ext.push(("cs6", s(v, "/revocation/alert_id").into()));
            if let Some(n) = num("/revocation/attempt") {
                ext.push(("cn2Label", "attempt".into()));
                ext.push(("cn2", n));
            }
            ext.push(("msg", s(v, "/revocation/detail").into()));
        }
        "error" => {
            ext.push(("outcome", s(v, "/error/code").into()));
            ext.push(("cs6Label", "relatedAlertId".into()));
            ext.push(("cs6", s(v, "/error/alert_id").into()));
            ext.push(("msg", s(v, "/error/message").into()));
        }
        _ => {}
    }
    let mut out = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        super::PRODUCT,
        super::PRODUCT,
        super::VERSION,
        esc_header(&sig),
        esc_header(&super::summary(v)),
        cef_severity(v)
    );
    let mut first = true;
    for (k, val) in ext.into_iter().filter(|(_, x)| !x.is_empty()) {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(k);
        out.push('=');
        out.push_str(&esc_ext(&val));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_extension_escaping() {
        assert_eq!(esc_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(esc_ext("a=b\\c\nd"), r"a\=b\\c\nd");
        let v: Value = serde_json::from_slice(&super::super::samples::finding_raw()).unwrap();
        let line = render(&v);
        assert!(
            line.starts_with("CEF:0|token-sensor|token-sensor|"),
            "{line}"
        );
        // The rule name holds a `|`: escaped in the header.
        assert!(
            line.contains("GitHub personal access token \\| classic"),
            "{line}"
        );
        assert!(line.contains(&format!("externalId={}", v["id"].as_str().unwrap())));
        assert!(
            line.contains("dst=203.0.113.9 dpt=443 dhost=paste.example"),
            "{line}"
        );
        assert!(line.contains("|8|"), "high → 8: {line}");
        let e: Value = serde_json::from_slice(&super::super::samples::error_raw()).unwrap();
        let line = render(&e);
        assert!(line.contains(r"msg=HTTP 400 | bad \= data\nmore"), "{line}");
    }
}
