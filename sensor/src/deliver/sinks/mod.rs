//! Output sinks. The YAML shape of an `outputs` entry is one flat [`OutputConfig`] (values
//! checked while parsing, so errors carry their line); each sink module turns it into its
//! own config and a [`Sink`] that sends a batch of rendered alerts and says whether a
//! failure is worth retrying.

pub mod file;
pub mod http;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::formats::Format;

/// Kinds of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// JSON lines on standard output.
    Stdout,
    /// A size-rotated file.
    File,
    /// RFC 5424 syslog over UDP, TCP or a unix socket.
    Syslog,
    /// HTTP POST of batches (NDJSON, or HEC).
    Http,
    /// Standard Webhooks: one signed POST per alert.
    Webhook,
}

impl OutputKind {
    fn as_str(self) -> &'static str {
        match self {
            OutputKind::Stdout => "stdout",
            OutputKind::File => "file",
            OutputKind::Syslog => "syslog",
            OutputKind::Http => "http",
            OutputKind::Webhook => "webhook",
        }
    }
}

/// One `outputs` entry as written in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub kind: OutputKind,
    /// `native` | `ocsf` | `ecs` | `cef` | `hec` (default: `cef` for syslog, else `native`).
    #[serde(default)]
    pub format: Option<Format>,
    /// Stable name (the outbox keys deliveries by it); default `<kind>:<target>:<format>`.
    #[serde(default)]
    pub name: Option<String>,
    /// file: path of the JSON-lines file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// file: rotate when the file would exceed this (default 100 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// file: rotated files kept (`path.1` … `path.N`, default 5).
    #[serde(default)]
    pub keep: Option<u32>,
    /// syslog: `udp://host:port`, `tcp://host:port` or `unix:///path`.
    #[serde(default, deserialize_with = "syslog::de_address")]
    pub address: Option<String>,
    /// syslog: facility name (default `auth`).
    #[serde(default, deserialize_with = "syslog::de_facility")]
    pub facility: Option<String>,
    /// http/webhook: `http://` or `https://` URL.
    #[serde(default, deserialize_with = "de_url")]
    pub url: Option<String>,
    /// http/webhook: extra headers; `${VAR}` expands from the daemon's environment.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http/webhook: PEM file of the CA(s) to trust instead of the built-in web roots.
    #[serde(default, deserialize_with = "de_ca_file")]
    pub ca_file: Option<PathBuf>,
    /// webhook: file holding `whsec_<base64>`.
    #[serde(default, deserialize_with = "de_secret_file")]
    pub secret_file: Option<PathBuf>,
    /// http: alerts per request (default 100).
    #[serde(default)]
    pub batch_max: Option<usize>,
    /// http/webhook: request timeout in seconds (default 10).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Longest wait between retries in seconds (default 300; `Retry-After` may ask more).
    #[serde(default)]
    pub max_backoff_secs: Option<u64>,
}

/// A URL the daemon may POST to.
pub fn check_url(s: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "`{s}` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(u)
}

/// serde: a URL checked with [`check_url`].
pub fn de_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map_err(|e| serde::de::Error::custom(format!("`url`: {e}")))?;
    Ok(Some(s))
}

/// serde: a required URL checked with [`check_url`].
pub fn de_url_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_url(d).map(|u| u.unwrap_or_default())
}

fn de_ca_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let p = PathBuf::deserialize(d)?;
    http::load_roots(Some(&p)).map_err(|e| serde::de::Error::custom(format!("`ca_file`: {e}")))?;
    Ok(Some(p))
}

/// serde: a Standard Webhooks secret file that exists and holds `whsec_<base64>`.
pub fn de_secret_file<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let p = PathBuf::deserialize(d)?;
    super::signing::WebhookSecret::load(&p)
        .map_err(|e| serde::de::Error::custom(format!("`secret_file`: {e}")))?;
    Ok(Some(p))
}

impl OutputConfig {
    /// The format (explicit or the kind's default).
    pub fn format(&self) -> Format {
        self.format.unwrap_or(match self.kind {
            OutputKind::Syslog => Format::Cef,
            _ => Format::Native,
        })
    }

    /// The outbox key of this output.
    pub fn id(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let target = match self.kind {
            OutputKind::Stdout => String::new(),
            OutputKind::File => self
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            OutputKind::Syslog => self.address.clone().unwrap_or_default(),
            OutputKind::Http | OutputKind::Webhook => self.url.clone().unwrap_or_default(),
        };
        format!(
            "{}:{}:{}",
            self.kind.as_str(),
            target,
            self.format().as_str()
        )
    }

    /// Checks the keys each kind needs and forbids those it does not use; `at` names the
    /// entry (`outputs[2]`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        let k = self.kind;
        let need = |present: bool, key: &str| {
            if present {
                Ok(())
            } else {
                Err(format!("`{at}.{key}`: required for kind `{}`", k.as_str()))
            }
        };
        let forbid = |present: bool, key: &str| {
            if present {
                Err(format!("`{at}.{key}`: not used by kind `{}`", k.as_str()))
            } else {
                Ok(())
            }
        };
        let web = matches!(k, OutputKind::Http | OutputKind::Webhook);
        forbid(k != OutputKind::File && self.path.is_some(), "path")?;
        forbid(
            k != OutputKind::File && self.max_bytes.is_some(),
            "max_bytes",
        )?;
        forbid(k != OutputKind::File && self.keep.is_some(), "keep")?;
        forbid(k != OutputKind::Syslog && self.address.is_some(), "address")?;
        forbid(
            k != OutputKind::Syslog && self.facility.is_some(),
            "facility",
        )?;
        forbid(!web && self.url.is_some(), "url")?;
        forbid(!web && !self.headers.is_empty(), "headers")?;
        forbid(!web && self.ca_file.is_some(), "ca_file")?;
        forbid(
            k != OutputKind::Webhook && self.secret_file.is_some(),
            "secret_file",
        )?;
        forbid(
            k != OutputKind::Http && self.batch_max.is_some(),
            "batch_max",
        )?;
        match k {
            OutputKind::File => need(self.path.is_some(), "path")?,
            OutputKind::Syslog => need(self.address.is_some(), "address")?,
            OutputKind::Http => need(self.url.is_some(), "url")?,
            OutputKind::Webhook => {
                need(self.url.is_some(), "url")?;
                need(self.secret_file.is_some(), "secret_file")?;
            }
            OutputKind::Stdout => {}
        }
        if self.max_bytes == Some(0) || self.batch_max == Some(0) || self.timeout_secs == Some(0) {
            return Err(format!(
                "`{at}`: max_bytes, batch_max and timeout_secs must be > 0"
            ));
        }
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{at}.headers.{name}`: not a valid header name"))?;
            if value.contains('\n') || value.contains('\r') {
                return Err(format!("`{at}.headers.{name}`: value holds a line break"));
            }
        }
        Ok(())
    }

    /// Retry ceiling.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs.unwrap_or(300).max(1))
    }
}

/// One rendered alert ready to send.
pub struct Item {
    /// Alert id.
    pub id: String,
    /// The alert (native JSON, parsed).
    pub alert: Value,
    /// Rendered in the output's format.
    pub line: Vec<u8>,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying (network, 5xx, 429, …), after `retry_after` if the peer said so.
    Transient {
        /// What happened.
        error: String,
        /// The peer's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Will not succeed as is (4xx, 410, malformed item): stop retrying this item.
    Permanent {
        /// What happened.
        error: String,
    },
    /// The output is gone for good (the reader of a piped stdout exited): nothing sent to
    /// it can arrive again in this run. The daemon stops; the alerts stay queued.
    Closed {
        /// What happened.
        error: String,
    },
}

impl SendError {
    /// A transient error without a retry hint.
    pub fn transient(e: impl std::fmt::Display) -> SendError {
        SendError::Transient {
            error: e.to_string(),
            retry_after: None,
        }
    }
}

/// An output.
pub trait Sink: Send {
    /// Largest batch `send` takes.
    fn batch_max(&self) -> usize;
    /// Sends a batch (in order); all or nothing as far as acknowledgement goes.
    fn send(&mut self, items: &[Item]) -> Result<(), SendError>;
}

/// Errors of building a sink at start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A `${VAR}` in a header is not set.
    #[error("`{at}.headers.{header}`: environment variable `{var}` is not set")]
    MissingVar {
        /// Output position.
        at: String,
        /// Header name.
        header: String,
        /// Variable.
        var: String,
    },
    /// Anything else (named).
    #[error("`{at}`: {problem}")]
    Invalid {
        /// Output position.
        at: String,
        /// What is wrong.
        problem: String,
    },
}

/// Builds the sink of an output entry (`at` names it in errors).
pub fn build(cfg: &OutputConfig, at: &str) -> Result<Box<dyn Sink>, SinkError> {
    let inv = |problem: String| SinkError::Invalid {
        at: at.into(),
        problem,
    };
    Ok(match cfg.kind {
        OutputKind::Stdout => Box::new(stdout::StdoutSink),
        OutputKind::File => Box::new(file::FileSink::new(file::FileConfig::from_output(cfg))),
        OutputKind::Syslog => Box::new(syslog::SyslogSink::new(
            syslog::SyslogConfig::from_output(cfg).map_err(inv)?,
        )),
        OutputKind::Http => {
            Box::new(http::HttpSink::new(http::HttpConfig::from_output(cfg, at)?).map_err(inv)?)
        }
        OutputKind::Webhook => Box::new(
            webhook::WebhookSink::new(webhook::WebhookConfig::from_output(cfg, at)?)
                .map_err(inv)?,
        ),
    })
}

/// `${VAR}` → the variable's value, for header templates.
pub fn expand_env(template: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let var = &after[..j];
        out.push_str(&std::env::var(var).map_err(|_| var.to_string())?);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every header template of an output.
pub fn expand_headers(
    headers: &BTreeMap<String, String>,
    at: &str,
) -> Result<Vec<(String, String)>, SinkError> {
    headers
        .iter()
        .map(|(k, v)| {
            expand_env(v)
                .map(|x| (k.clone(), x))
                .map_err(|var| SinkError::MissingVar {
                    at: at.into(),
                    header: k.clone(),
                    var,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        std::env::set_var("SINK_TEST_TOKEN", "abc");
        assert_eq!(
            expand_env("Splunk ${SINK_TEST_TOKEN}!").unwrap(),
            "Splunk abc!"
        );
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert_eq!(
            expand_env("${NOPE_NOT_SET_X}").unwrap_err(),
            "NOPE_NOT_SET_X"
        );
    }
}
