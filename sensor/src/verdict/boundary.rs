//! The workspace boundary: a token sent to its own issuer (a GitHub token to
//! api.github.com, the agent token to the Coder control plane) is the credential doing its
//! job; the same token anywhere else — another host, a terminal, a log file, a pipe to an
//! unknown reader — has left the workspace. Sinks are classified here; the destination
//! host comes from the stream itself (see [`super::protocols`]).

use serde::Serialize;

use crate::state::events::{Endpoint, FdKind};

/// Where a token went, relative to the workspace boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundary {
    /// A network peer that is one of the token's issuers: normal use, not alerted.
    Issuer,
    /// A network peer that is not an issuer (or not known to be one).
    Outside,
    /// A unix socket (local daemon, agent, proxy).
    LocalIpc,
    /// A pipe to a reader the sensor does not know (clipboard tools, other processes).
    Pipe,
    /// A terminal: the token is on screen, in scrollback and session logs.
    Terminal,
    /// A regular file (logs, artifacts).
    File,
    /// A credential file being written (login flows): not alerted.
    CredentialStore,
    /// Could not be determined.
    Unknown,
}

impl Boundary {
    /// Whether a token reaching this sink crosses the boundary (and is alerted).
    pub fn crosses(self) -> bool {
        !matches!(self, Boundary::Issuer | Boundary::CredentialStore)
    }
}

/// Does `host` match an issuer pattern (`api.github.com`, `*.githubusercontent.com`)?
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => match pattern.strip_suffix(".*") {
            Some(prefix) => host.starts_with(&format!("{prefix}.")),
            None => host == pattern,
        },
    }
}

/// Classifies a sink. `host` is the stream's destination name, when known.
pub fn classify(
    fd_kind: FdKind,
    endpoint: Option<&Endpoint>,
    host: Option<&str>,
    issuers: &[String],
    credential_names: &[String],
) -> Boundary {
    match (fd_kind, endpoint) {
        (FdKind::Socket, Some(Endpoint::Unix { .. })) => Boundary::LocalIpc,
        (FdKind::Socket, Some(Endpoint::Inet { .. })) | (FdKind::Socket, None) => match host {
            Some(h) if issuers.iter().any(|i| host_matches(i, h)) => Boundary::Issuer,
            _ => Boundary::Outside,
        },
        (FdKind::Pipe, _) => Boundary::Pipe,
        (FdKind::Tty, _) => Boundary::Terminal,
        (FdKind::File, Some(Endpoint::Path { path })) => {
            let base = path.rsplit('/').next().unwrap_or(path);
            if credential_names.iter().any(|c| c == base) || path.starts_with("/run/secrets/") {
                Boundary::CredentialStore
            } else {
                Boundary::File
            }
        }
        (FdKind::File, _) => Boundary::File,
        _ => Boundary::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_patterns() {
        assert!(host_matches("api.github.com", "API.github.com"));
        assert!(host_matches(
            "*.githubusercontent.com",
            "raw.githubusercontent.com"
        ));
        assert!(!host_matches(
            "*.githubusercontent.com",
            "githubusercontent.com"
        ));
        assert!(!host_matches("*.github.com", "evilgithub.com"));
        assert!(!host_matches("github.com", "github.com.evil.test"));
        assert!(host_matches("vault.*", "vault.corp.example"));
    }

    #[test]
    fn sinks() {
        let iss = vec!["api.github.com".to_string()];
        let ep = Endpoint::Inet {
            proto: "tcp".into(),
            addr: "140.82.112.6:443".parse().unwrap(),
        };
        assert_eq!(
            classify(FdKind::Socket, Some(&ep), Some("api.github.com"), &iss, &[]),
            Boundary::Issuer
        );
        assert_eq!(
            classify(FdKind::Socket, Some(&ep), Some("paste.example"), &iss, &[]),
            Boundary::Outside
        );
        assert_eq!(
            classify(FdKind::Socket, Some(&ep), None, &iss, &[]),
            Boundary::Outside
        );
        assert_eq!(
            classify(FdKind::Tty, None, None, &iss, &[]),
            Boundary::Terminal
        );
        let f = Endpoint::Path {
            path: "/home/u/.config/gh/hosts.yml".into(),
        };
        assert_eq!(
            classify(FdKind::File, Some(&f), None, &iss, &["hosts.yml".into()]),
            Boundary::CredentialStore
        );
        assert!(!Boundary::Issuer.crosses() && Boundary::Pipe.crosses());
    }
}
