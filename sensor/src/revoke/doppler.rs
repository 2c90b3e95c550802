//! Doppler: `POST {api_url}/v3/auth/revoke` with `{"token": …}`, authenticated with the same
//! token; 200 revokes, 401 means it is no longer valid.

use serde::Deserialize;

use super::{
    classify, join, network, secret_header, token_str, Failure, Outcome, RequestInfo, Revoker,
    Target,
};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.doppler`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DopplerConfig {
    /// Base URL.
    #[serde(
        default = "default_url",
        deserialize_with = "crate::deliver::sinks::de_url_string"
    )]
    pub api_url: String,
}

fn default_url() -> String {
    "https://api.doppler.com".into()
}

impl Default for DopplerConfig {
    fn default() -> Self {
        DopplerConfig {
            api_url: default_url(),
        }
    }
}

/// The revoker.
pub struct Doppler {
    cfg: DopplerConfig,
}

impl Doppler {
    pub fn new(cfg: DopplerConfig) -> Doppler {
        Doppler { cfg }
    }
}

impl Revoker for Doppler {
    fn name(&self) -> &'static str {
        "doppler"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "POST",
            url: join(&self.cfg.api_url, "/v3/auth/revoke"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let token = token_str(&batch[0])?;
        let url = join(&self.cfg.api_url, "/v3/auth/revoke");
        let what = format!("POST {url}");
        let req = build(http, &url, token)?;
        let r = http.send(req).map_err(|e| network(&what, e))?;
        classify(&r, &[200, 204], &[401], &what)
    }
}

fn build(http: &HttpClient, url: &str, token: &str) -> Result<reqwest::RequestBuilder, Failure> {
    let body = serde_json::to_vec(&serde_json::json!({ "token": token })).expect("JSON");
    Ok(http
        .client()
        .post(url)
        .header("authorization", secret_header(&format!("Bearer {token}"))?)
        .header("content-type", "application/json")
        .body(body))
}
