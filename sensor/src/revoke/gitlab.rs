//! GitLab: `DELETE {url}/api/v4/personal_access_tokens/self` authenticated with the leaked
//! token itself (`PRIVATE-TOKEN`); 204 revokes, 401 means the token is no longer valid.

use serde::Deserialize;

use super::{
    classify, join, network, secret_header, token_str, Failure, Outcome, RequestInfo, Revoker,
    Target,
};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.gitlab`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabConfig {
    /// Base URL.
    #[serde(
        default = "default_url",
        deserialize_with = "crate::deliver::sinks::de_url_string"
    )]
    pub url: String,
}

fn default_url() -> String {
    "https://gitlab.com".into()
}

impl Default for GitlabConfig {
    fn default() -> Self {
        GitlabConfig { url: default_url() }
    }
}

/// The revoker.
pub struct Gitlab {
    cfg: GitlabConfig,
}

impl Gitlab {
    pub fn new(cfg: GitlabConfig) -> Gitlab {
        Gitlab { cfg }
    }
}

impl Revoker for Gitlab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "DELETE",
            url: join(&self.cfg.url, "/api/v4/personal_access_tokens/self"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let token = token_str(&batch[0])?;
        let url = join(&self.cfg.url, "/api/v4/personal_access_tokens/self");
        let what = format!("DELETE {url}");
        let req = build(http, &url, token)?;
        let r = http.send(req).map_err(|e| network(&what, e))?;
        classify(&r, &[200, 204], &[401], &what)
    }
}

fn build(http: &HttpClient, url: &str, token: &str) -> Result<reqwest::RequestBuilder, Failure> {
    Ok(http
        .client()
        .delete(url)
        .header("private-token", secret_header(token)?))
}
