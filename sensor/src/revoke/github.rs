//! GitHub: `POST {api_url}/credentials/revoke` with `{"credentials": [...]}` — up to 1000
//! tokens per request, unauthenticated (the leaked token itself suffices), answered 202
//! Accepted (revocation is asynchronous). The unauthenticated rate limit is 60 requests an
//! hour, so the worker gathers a burst for `batch_window_ms` into one request and spaces
//! requests `min_interval_secs` apart (default 60: at most 60 an hour); 403/429 back off
//! until `Retry-After` or `x-ratelimit-reset`.

use std::time::Duration;

use serde::Deserialize;

use super::{classify, join, network, token_str, Failure, Outcome, RequestInfo, Revoker, Target};
use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::HttpClient;

/// `revocation.github`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// API base URL (GitHub Enterprise Cloud/Server: its API host).
    #[serde(
        default = "default_api",
        deserialize_with = "crate::deliver::sinks::de_url_string"
    )]
    pub api_url: String,
    /// Collect a burst this long before the first request.
    #[serde(default = "default_window")]
    pub batch_window_ms: u64,
    /// Minimum spacing between requests.
    #[serde(default = "default_interval")]
    pub min_interval_secs: u64,
}

fn default_api() -> String {
    "https://api.github.com".into()
}
fn default_window() -> u64 {
    2000
}
fn default_interval() -> u64 {
    60
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: default_api(),
            batch_window_ms: default_window(),
            min_interval_secs: default_interval(),
        }
    }
}

/// Most credentials per request (GitHub's limit).
pub const MAX_BATCH: usize = 1000;

/// The GitHub revoker.
pub struct Github {
    cfg: GithubConfig,
}

impl Github {
    pub fn new(cfg: GithubConfig) -> Github {
        Github { cfg }
    }
}

impl Revoker for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn gather(&self) -> Duration {
        Duration::from_millis(self.cfg.batch_window_ms)
    }

    fn min_interval(&self) -> Duration {
        Duration::from_secs(self.cfg.min_interval_secs)
    }

    fn request(&self, _job: &RevocationJob) -> RequestInfo {
        RequestInfo {
            method: "POST",
            url: join(&self.cfg.api_url, "/credentials/revoke"),
        }
    }

    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure> {
        let creds = batch.iter().map(token_str).collect::<Result<Vec<_>, _>>()?;
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({ "credentials": creds })).expect("JSON"),
        );
        let url = join(&self.cfg.api_url, "/credentials/revoke");
        let req = http
            .client()
            .post(&url)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .header("content-type", "application/json")
            .body(body.to_vec());
        let r = http
            .send(req)
            .map_err(|e| network(&format!("POST {url}"), e))?;
        match classify(&r, &[200, 201, 202, 204], &[], &format!("POST {url}")) {
            // A rate limit answers 403 with x-ratelimit-remaining: 0.
            Err(Failure::Permanent {
                status: Some(403),
                detail,
            }) if r
                .headers
                .get("x-ratelimit-remaining")
                .is_some_and(|v| v == "0") =>
            {
                let reset = r
                    .headers
                    .get("x-ratelimit-reset")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|t| {
                        Duration::from_secs(
                            t.saturating_sub(crate::deliver::outbox::now_ms() / 1000),
                        )
                    });
                Err(Failure::Transient {
                    status: Some(403),
                    detail,
                    retry_after: crate::deliver::sinks::http::retry_after(&r.headers).or(reset),
                })
            }
            other => other,
        }
    }
}
