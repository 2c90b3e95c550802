//! HashiCorp Vault: `POST {addr}/v1/auth/token/revoke-self` with `X-Vault-Token` set to the
//! leaked token; 204 revokes, 403 (permission denied) means the token is no longer valid.
//! Enabled only when `revocation.vault.addr` is configured.

use serde::Deserialize;

use super::{
    classify, join, network, secret_header, token_str, Failure, Outcome, RequestInfo, Revoker,
    Target,
};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.vault`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Vault address (required).
    #[serde(deserialize_with = "crate::deliver::sinks::de_url_string")]
    pub addr: String,
}

/// The revoker.
pub struct Vault {
    cfg: VaultConfig,
}

impl Vault {
    pub fn new(cfg: VaultConfig) -> Vault {
        Vault { cfg }
    }
}

impl Revoker for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "POST",
            url: join(&self.cfg.addr, "/v1/auth/token/revoke-self"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let token = token_str(&batch[0])?;
        let url = join(&self.cfg.addr, "/v1/auth/token/revoke-self");
        let what = format!("POST {url}");
        let req = build(http, &url, token)?;
        let r = http.send(req).map_err(|e| network(&what, e))?;
        classify(&r, &[200, 204], &[403], &what)
    }
}

fn build(http: &HttpClient, url: &str, token: &str) -> Result<reqwest::RequestBuilder, Failure> {
    Ok(http
        .client()
        .post(url)
        .header("x-vault-token", secret_header(token)?))
}
