//! Coder API keys (`<10-char id>-<22-char secret>`): `DELETE {url}/api/v2/users/me/keys/{id}`
//! authenticated with the key itself (`Coder-Session-Token`); 204 deletes, 401/404 mean it
//! is no longer valid. Enabled when `revocation.coder.url` is configured (otherwise such
//! keys go to the revocation webhook). Workspace agent tokens (bare UUIDs) cannot revoke
//! themselves: they go to the webhook.

use serde::Deserialize;

use super::{
    classify, join, network, secret_header, token_str, Failure, Outcome, RequestInfo, Revoker,
    Target,
};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.coder`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoderConfig {
    /// Deployment URL.
    #[serde(deserialize_with = "crate::deliver::sinks::de_url_string")]
    pub url: String,
}

/// The revoker.
pub struct Coder {
    cfg: CoderConfig,
}

impl Coder {
    pub fn new(cfg: CoderConfig) -> Coder {
        Coder { cfg }
    }
}

/// The public id part of a Coder API key.
pub fn key_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('-')?;
    (id.len() == 10
        && secret.len() == 22
        && id
            .bytes()
            .chain(secret.bytes())
            .all(|c| c.is_ascii_alphanumeric()))
    .then_some(id)
}

impl Revoker for Coder {
    fn name(&self) -> &'static str {
        "coder"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "DELETE",
            url: join(&self.cfg.url, "/api/v2/users/me/keys/{key id}"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let token = token_str(&batch[0])?;
        let id = key_id(token).ok_or_else(|| Failure::Permanent {
            status: None,
            detail: "not a Coder API key (<10-char id>-<22-char secret>)".into(),
        })?;
        let url = join(&self.cfg.url, &format!("/api/v2/users/me/keys/{id}"));
        let what = format!("DELETE {url}");
        let req = http
            .client()
            .delete(&url)
            .header("coder-session-token", secret_header(token)?);
        let r = http.send(req).map_err(|e| network(&what, e))?;
        classify(&r, &[200, 204], &[401, 404], &what)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_ids() {
        assert_eq!(
            super::key_id("abcdefghij-abcdefghijklmnopqrstuv"),
            Some("abcdefghij")
        );
        assert_eq!(super::key_id("5f0c8c1e-4c2b-4f7e-9d3a-2b1c0d9e8f7a"), None);
    }
}
