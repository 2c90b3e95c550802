//! Splunk HTTP Event Collector: `{"time", "host", "source", "sourcetype", "event"}` with
//! the native alert as `event` (so Splunk searches see the same fields as the native
//! format); `time` is the alert's time in epoch seconds with milliseconds, `sourcetype`
//! `token_sensor:<type>`. Batches are these objects concatenated, one per line.

use serde_json::{json, Value};

use super::super::record::{s, time_ms};

/// The HEC envelope of one alert.
pub fn render(v: &Value) -> Value {
    json!({
        "time": time_ms(v) as f64 / 1000.0,
        "host": s(v, "/host/hostname"),
        "source": super::PRODUCT,
        "sourcetype": format!("token_sensor:{}", s(v, "/type")),
        "event": v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fields() {
        let v: Value = serde_json::from_slice(&super::super::samples::finding_raw()).unwrap();
        let h = render(&v);
        assert_eq!(h["host"], "build-7");
        assert_eq!(h["sourcetype"], "token_sensor:finding");
        assert_eq!(h["time"], 1796644800.123);
        assert_eq!(h["event"]["id"], v["id"]);
    }
}
