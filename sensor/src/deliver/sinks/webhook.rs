//! `webhook`: one POST per alert, signed per Standard Webhooks — `webhook-id` (the alert
//! id, the same on every retry, so receivers deduplicate), `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` under the
//! `whsec_` secret of `secret_file`. 2xx delivers; 410 stops; 429/5xx back off with
//! `Retry-After`.

use std::time::Duration;

use super::http::{classify, header_map, HttpClient};
use super::{Item, OutputConfig, SendError, Sink, SinkError};
use crate::deliver::formats::Format;
use crate::deliver::signing::{self, WebhookSecret};

/// Webhook output settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub url: reqwest::Url,
    pub secret_file: std::path::PathBuf,
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<std::path::PathBuf>,
    pub timeout: Duration,
    pub format: Format,
}

impl WebhookConfig {
    /// From a validated `outputs` entry.
    pub fn from_output(c: &OutputConfig, at: &str) -> Result<WebhookConfig, SinkError> {
        let inv = |problem: String| SinkError::Invalid {
            at: at.into(),
            problem,
        };
        Ok(WebhookConfig {
            url: super::check_url(c.url.as_deref().unwrap_or("")).map_err(inv)?,
            secret_file: c
                .secret_file
                .clone()
                .ok_or_else(|| inv("`secret_file` is required".into()))?,
            headers: super::expand_headers(&c.headers, at)?,
            ca_file: c.ca_file.clone(),
            timeout: Duration::from_secs(c.timeout_secs.unwrap_or(10)),
            format: c.format(),
        })
    }
}

/// A signed-webhook output.
pub struct WebhookSink {
    cfg: WebhookConfig,
    secret: WebhookSecret,
    headers: reqwest::header::HeaderMap,
    http: HttpClient,
}

impl WebhookSink {
    /// A sink for `cfg` (reads the secret now).
    pub fn new(cfg: WebhookConfig) -> Result<WebhookSink, String> {
        Ok(WebhookSink {
            secret: WebhookSecret::load(&cfg.secret_file).map_err(|e| e.to_string())?,
            headers: header_map(&cfg.headers)?,
            http: HttpClient::new(cfg.ca_file.as_deref(), cfg.timeout)?,
            cfg,
        })
    }
}

impl Sink for WebhookSink {
    fn batch_max(&self) -> usize {
        1
    }

    fn send(&mut self, items: &[Item]) -> Result<(), SendError> {
        for it in items {
            let mut req = self
                .http
                .client()
                .post(self.cfg.url.clone())
                .headers(self.headers.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    if self.cfg.format == Format::Cef {
                        "text/plain"
                    } else {
                        "application/json"
                    },
                );
            for (k, v) in signing::headers(&self.secret, &it.id, &it.line) {
                req = req.header(k, v);
            }
            let r = self
                .http
                .send(req.body(it.line.clone()))
                .map_err(|e| SendError::transient(format!("POST {}: {e}", self.cfg.url)))?;
            classify(&r, &format!("POST {}", self.cfg.url))?;
        }
        Ok(())
    }
}
