//! Slack: `POST {api_url}/auth.revoke` with the leaked token as bearer. Slack answers 200
//! with `{"ok": true, "revoked": true}`, or `{"ok": false, "error": …}`: `invalid_auth`,
//! `token_revoked`, `token_expired`, `account_inactive` mean nothing is left to revoke.

use serde::Deserialize;

use super::{
    classify, join, network, secret_header, token_str, Failure, Outcome, RequestInfo, Revoker,
    Target,
};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.slack`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Web API base URL.
    #[serde(
        default = "default_url",
        deserialize_with = "crate::deliver::sinks::de_url_string"
    )]
    pub api_url: String,
}

fn default_url() -> String {
    "https://slack.com/api".into()
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            api_url: default_url(),
        }
    }
}

/// The revoker.
pub struct Slack {
    cfg: SlackConfig,
}

impl Slack {
    pub fn new(cfg: SlackConfig) -> Slack {
        Slack { cfg }
    }
}

impl Revoker for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "POST",
            url: join(&self.cfg.api_url, "/auth.revoke"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let token = token_str(&batch[0])?;
        let url = join(&self.cfg.api_url, "/auth.revoke");
        let what = format!("POST {url}");
        let req = http
            .client()
            .post(&url)
            .header("authorization", secret_header(&format!("Bearer {token}"))?)
            .header("content-type", "application/x-www-form-urlencoded");
        let r = http.send(req).map_err(|e| network(&what, e))?;
        let out = classify(&r, &[200], &[], &what)?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        if v["ok"] == true {
            return Ok(out);
        }
        let err = v["error"].as_str().unwrap_or("unparsable answer");
        let detail = format!("{what}: {err}");
        match err {
            "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive"
            | "not_authed" => Ok(Outcome::AlreadyInvalid {
                status: 200,
                detail,
            }),
            "ratelimited" => Err(Failure::Transient {
                status: Some(200),
                detail,
                retry_after: None,
            }),
            _ => Err(Failure::Permanent {
                status: Some(200),
                detail,
            }),
        }
    }
}
