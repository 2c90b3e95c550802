//! Automatic revocation of leaked tokens. The delivery pipeline creates one job per token
//! (idempotent by a keyed fingerprint that survives restarts) when a finding is a leak at
//! or above `min_severity`; the [`worker`] revokes it through the provider its rule names
//! — one module per provider behind the [`Revoker`] trait — or, for learned secrets and
//! providers that need an admin credential, through a signed webhook. Every attempt and
//! result is itself an alert (`"type":"revocation"`).

pub mod coder;
pub mod doppler;
pub mod github;
pub mod gitlab;
pub mod slack;
pub mod vault;
pub mod webhook;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::deliver::outbox::RevocationJob;
use crate::deliver::sinks::http::{HttpClient, Response};
use crate::deliver::RevocationMode;
use crate::detect::rules::Severity;

/// The `revocation` configuration section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// `off` | `dry_run` | `on`.
    #[serde(default)]
    pub mode: RevocationMode,
    /// Findings below this severity are not revoked.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    #[serde(default)]
    pub github: Option<github::GithubConfig>,
    #[serde(default)]
    pub gitlab: Option<gitlab::GitlabConfig>,
    #[serde(default)]
    pub slack: Option<slack::SlackConfig>,
    #[serde(default)]
    pub vault: Option<vault::VaultConfig>,
    #[serde(default)]
    pub doppler: Option<doppler::DopplerConfig>,
    #[serde(default)]
    pub coder: Option<coder::CoderConfig>,
    #[serde(default)]
    pub webhook: Option<webhook::RevokeWebhookConfig>,
    /// PEM CAs to trust for revocation endpoints (default: the web roots).
    #[serde(default, deserialize_with = "de_ca")]
    pub ca_file: Option<PathBuf>,
    /// Longest wait between retries of a job, seconds (default 1800).
    #[serde(default)]
    pub max_backoff_secs: Option<u64>,
}

fn de_ca<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let p = PathBuf::deserialize(d)?;
    crate::deliver::sinks::http::load_roots(Some(&p))
        .map_err(|e| serde::de::Error::custom(format!("`ca_file`: {e}")))?;
    Ok(Some(p))
}

fn default_min_severity() -> Severity {
    Severity::High
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            mode: RevocationMode::Off,
            min_severity: default_min_severity(),
            github: None,
            gitlab: None,
            slack: None,
            vault: None,
            doppler: None,
            coder: None,
            webhook: None,
            ca_file: None,
            max_backoff_secs: None,
        }
    }
}

/// A job and its token, for one request.
pub struct Target<'a> {
    pub job: &'a RevocationJob,
    pub token: &'a [u8],
}

/// A successful revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Revoked (or accepted for revocation).
    Revoked { status: u16, detail: String },
    /// The provider says the token is no longer valid: nothing left to revoke.
    AlreadyInvalid { status: u16, detail: String },
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retry later (network, 5xx, rate limit).
    Transient {
        status: Option<u16>,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Will not succeed as is.
    Permanent { status: Option<u16>, detail: String },
}

/// What a request looks like, for alerts and dry runs (never the token).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestInfo {
    pub method: &'static str,
    pub url: String,
}

/// A revocation endpoint.
pub trait Revoker: Send {
    /// Endpoint name (`github`, `gitlab`, …, `webhook`).
    fn name(&self) -> &'static str;
    /// Tokens per request.
    fn max_batch(&self) -> usize {
        1
    }
    /// How long to collect a burst before the first request.
    fn gather(&self) -> Duration {
        Duration::ZERO
    }
    /// Minimum spacing between requests that reached the provider (rate limits).
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// The request a job leads to.
    fn request(&self, job: &RevocationJob) -> RequestInfo;
    /// Revokes a batch (all or nothing).
    fn revoke(&self, http: &HttpClient, batch: &[Target]) -> Result<Outcome, Failure>;
}

/// Maps a response: `ok` statuses revoke, `gone` ones mean already invalid, 408/425/429/5xx
/// are transient (with `Retry-After`), the rest permanent.
pub fn classify(r: &Response, ok: &[u16], gone: &[u16], what: &str) -> Result<Outcome, Failure> {
    let body: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
    let detail = format!("{what}: HTTP {} {}", r.status, body.trim())
        .trim_end()
        .to_string();
    if ok.contains(&r.status) {
        Ok(Outcome::Revoked {
            status: r.status,
            detail,
        })
    } else if gone.contains(&r.status) {
        Ok(Outcome::AlreadyInvalid {
            status: r.status,
            detail,
        })
    } else if crate::deliver::sinks::http::is_transient(r.status) {
        Err(Failure::Transient {
            status: Some(r.status),
            detail,
            retry_after: crate::deliver::sinks::http::retry_after(&r.headers),
        })
    } else {
        Err(Failure::Permanent {
            status: Some(r.status),
            detail,
        })
    }
}

/// A network error.
pub fn network(what: &str, e: String) -> Failure {
    Failure::Transient {
        status: None,
        detail: format!("{what}: {e}"),
        retry_after: None,
    }
}

/// A token as text (every supported provider's tokens are ASCII).
pub fn token_str<'a>(t: &'a Target) -> Result<&'a str, Failure> {
    std::str::from_utf8(t.token).map_err(|_| Failure::Permanent {
        status: None,
        detail: "token is not text".into(),
    })
}

/// A sensitive header value.
pub fn secret_header(v: &str) -> Result<reqwest::header::HeaderValue, Failure> {
    let mut h = reqwest::header::HeaderValue::from_str(v).map_err(|_| Failure::Permanent {
        status: None,
        detail: "token cannot be sent in a header".into(),
    })?;
    h.set_sensitive(true);
    Ok(h)
}

/// `base` without a trailing `/`, joined with `path`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The revokers the configuration enables, and which one serves each method.
pub struct Registry {
    revokers: Vec<Box<dyn Revoker>>,
}

impl Registry {
    /// Builds the endpoints (provider defaults for public SaaS; Vault, Coder and the
    /// webhook only when configured).
    pub fn new(cfg: &RevocationConfig) -> Result<Registry, String> {
        let mut r: Vec<Box<dyn Revoker>> = vec![
            Box::new(github::Github::new(cfg.github.clone().unwrap_or_default())),
            Box::new(gitlab::Gitlab::new(cfg.gitlab.clone().unwrap_or_default())),
            Box::new(slack::Slack::new(cfg.slack.clone().unwrap_or_default())),
            Box::new(doppler::Doppler::new(
                cfg.doppler.clone().unwrap_or_default(),
            )),
        ];
        if let Some(v) = &cfg.vault {
            r.push(Box::new(vault::Vault::new(v.clone())));
        }
        if let Some(c) = &cfg.coder {
            r.push(Box::new(coder::Coder::new(c.clone())));
        }
        if let Some(w) = &cfg.webhook {
            r.push(Box::new(webhook::RevokeWebhook::new(w.clone())?));
        }
        Ok(Registry { revokers: r })
    }

    fn by_name(&self, name: &str) -> Option<usize> {
        self.revokers.iter().position(|r| r.name() == name)
    }

    /// Index of the revoker for a method: its provider, else the webhook, else none.
    pub fn route(&self, method: &str) -> Option<usize> {
        let direct = match method {
            "github_credentials_revoke" => self.by_name("github"),
            "gitlab_pat_self" => self.by_name("gitlab"),
            "slack_auth_revoke" => self.by_name("slack"),
            "vault_revoke_self" => self.by_name("vault"),
            "doppler_revoke" => self.by_name("doppler"),
            "coder_key_delete" => self.by_name("coder"),
            _ => None,
        };
        direct.or_else(|| self.by_name("webhook"))
    }

    /// A revoker.
    pub fn get(&self, i: usize) -> &dyn Revoker {
        &*self.revokers[i]
    }

    /// Number of revokers.
    pub fn len(&self) -> usize {
        self.revokers.len()
    }

    /// Never empty (the SaaS defaults are always there).
    pub fn is_empty(&self) -> bool {
        self.revokers.is_empty()
    }
}

#[cfg(test)]
mod tests;
