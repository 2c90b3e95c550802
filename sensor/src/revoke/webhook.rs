//! The signed revocation webhook, for Coder workspace agent tokens and other learned
//! secrets, and for providers whose revocation needs an admin credential (AWS, OpenAI,
//! Stripe, …): one POST per token to `revocation.webhook.url`, signed per Standard Webhooks
//! (`webhook-id` = the job id, stable across retries) under `secret_file`. Its JSON body
//! names the workspace, the environment variable, the fingerprint and the finding — and,
//! because the receiver must act on it, carries the token itself (`token`): the only
//! place the sensor ever sends a raw value.

use serde::Deserialize;

use super::{classify, network, token_str, Failure, Outcome, RequestInfo, Revoker, Target};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::signing::{self, WebhookSecret};
use crate::deliver::sinks::http::HttpClient;

/// `revocation.webhook`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeWebhookConfig {
    #[serde(deserialize_with = "crate::deliver::sinks::de_url_string")]
    pub url: String,
    /// File holding `whsec_<base64>`.
    #[serde(deserialize_with = "de_secret")]
    pub secret_file: std::path::PathBuf,
}

fn de_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::path::PathBuf, D::Error> {
    crate::deliver::sinks::de_secret_file(d).map(|p| p.unwrap_or_default())
}

/// The revoker.
pub struct RevokeWebhook {
    cfg: RevokeWebhookConfig,
    secret: WebhookSecret,
}

impl RevokeWebhook {
    /// Reads the secret.
    pub fn new(cfg: RevokeWebhookConfig) -> Result<RevokeWebhook, String> {
        Ok(RevokeWebhook {
            secret: WebhookSecret::load(&cfg.secret_file)
                .map_err(|e| format!("revocation.webhook.secret_file: {e}"))?,
            cfg,
        })
    }
}

/// The request body (holds the token).
pub fn body(job: &RevocationJob, token: &str) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(
        serde_json::to_vec(&serde_json::json!({
            "type": "revocation_request",
            "id": job.id,
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "method": job.method,
            "provider": job.provider,
            "kind": job.kind,
            "detector": job.detector,
            "fingerprint": job.fingerprint,
            "safe_prefix": job.safe_prefix,
            "length": job.length,
            "alert_id": job.alert_id,
            "workspace": job.workspace,
            "env_var": job.env_var,
            "source": job.source,
            "token": token,
        }))
        .expect("JSON"),
    )
}

impl Revoker for RevokeWebhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "POST",
            url: self.cfg.url.clone(),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let t = &batch[0];
        let body = body(t.job, token_str(t)?);
        let what = format!("POST {}", self.cfg.url);
        let mut req = http
            .client()
            .post(&self.cfg.url)
            .header("content-type", "application/json");
        for (k, v) in signing::headers(&self.secret, &t.job.id, &body) {
            req = req.header(k, v);
        }
        let r = http
            .send(req.body(body.to_vec()))
            .map_err(|e| network(&what, e))?;
        classify(&r, &[200, 201, 202, 204], &[], &what)
    }
}
