//! The workspace boundary: a token sent to its own issuer (a GitHub token to
//! api.github.com, the agent token to the Coder control plane) is the credential doing its
//! job; the same token anywhere else — another host, the clipboard, a log, a terminal, a
//! pipe to a process outside the workspace — has left the workspace. Some writes are not
//! sinks at all: `/dev/null`, and pipes or local sockets whose readers are processes of the
//! same workspace (the bytes are followed and judged where they leave). This module turns
//! the facts about a write into that judgement; the destination name comes from the stream
//! itself (see [`super::protocols`]).

use serde::Serialize;

use super::alert::Verdict;
use crate::state::events::{Endpoint, FdKind, Peer};

/// Where a token went, relative to the workspace boundary (the coarse place; the
/// [`Verdict`] says what it means).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundary {
    /// A network peer that is one of the token's issuers.
    Issuer,
    /// A network peer that is not an issuer (or not known to be one).
    Outside,
    /// A unix socket (local daemon, agent, proxy, X server).
    LocalIpc,
    /// A pipe.
    Pipe,
    /// A terminal: the token is on screen, in scrollback and session logs.
    Terminal,
    /// A regular file (logs, artifacts).
    File,
    /// A credential file being written (login flows).
    CredentialStore,
    /// A pipe or local socket read only by processes of the same workspace.
    Internal,
    /// A device that discards or never carries data (`/dev/null`, eventfd, …).
    Null,
    /// Could not be determined.
    Unknown,
}

/// What is known about a write's destination.
#[derive(Clone, Copy, Debug)]
pub struct SinkFacts<'a> {
    pub fd: i32,
    pub fd_kind: FdKind,
    pub endpoint: Option<&'a Endpoint>,
    /// Destination name from the stream (SNI, Host, DNS), when known.
    pub host: Option<&'a str>,
    /// Readers of a pipe or local socket, when known.
    pub peer: Option<&'a Peer>,
    /// The writer runs in a container (its stdout/stderr pipes are the runtime's log).
    pub in_container: bool,
}

/// The judgement of a sink for one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub boundary: Boundary,
    /// `None`: not a sink (the bytes stay inside, or nowhere) — not alerted.
    pub verdict: Option<Verdict>,
    /// Sink kind named in alerts: `network`, `clipboard`, `log`, `terminal`, `pipe`,
    /// `unix`, `file`, `unknown`.
    pub kind: &'static str,
}

impl Judgement {
    fn sink(boundary: Boundary, verdict: Verdict, kind: &'static str) -> Judgement {
        Judgement {
            boundary,
            verdict: Some(verdict),
            kind,
        }
    }

    fn none(boundary: Boundary, kind: &'static str) -> Judgement {
        Judgement {
            boundary,
            verdict: None,
            kind,
        }
    }
}

/// Devices whose writes go nowhere.
const NULL_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];
/// Local sockets of the system log.
const LOG_SOCKETS: &[&str] = &[
    "/dev/log",
    "/run/systemd/journal/socket",
    "/run/systemd/journal/stdout",
    "/run/systemd/journal/dev-log",
    "/var/run/syslog",
];
/// Programs that put their stdin/argv on the clipboard.
const CLIPBOARD_TOOLS: &[&str] = &[
    "xclip",
    "xsel",
    "wl-copy",
    "pbcopy",
    "clip.exe",
    "win32yank.exe",
    "termux-clipboard-set",
    "copyq",
    "lemonade",
    "clipcopy",
];
/// Programs that forward their stdin to the system log.
const LOG_TOOLS: &[&str] = &["logger", "systemd-cat"];

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Is `exe` (a path or name) a clipboard tool?
pub fn is_clipboard_tool(exe: &str) -> bool {
    CLIPBOARD_TOOLS.contains(&basename(exe))
}

fn is_log_tool(exe: &str) -> bool {
    LOG_TOOLS.contains(&basename(exe))
}

/// Is a path a log file (`*.log`, `*.log.1`, anything under `/var/log/`)?
pub fn is_log_path(path: &str) -> bool {
    if path.starts_with("/var/log/") {
        return true;
    }
    let base = basename(path);
    base.ends_with(".log") || base.contains(".log.") || base.ends_with("_log")
}

/// Is a unix socket path a display server's (X11, Wayland): a write there can set the
/// clipboard.
fn is_display_socket(path: &str) -> bool {
    path.contains("/.X11-unix/X") || basename(path).starts_with("wayland-")
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

/// Judges a sink for a token whose issuers are `issuers`.
pub fn judge(f: &SinkFacts, issuers: &[String], credential_names: &[String]) -> Judgement {
    use Boundary as B;
    use Verdict as V;
    let readers = || f.peer.into_iter().flat_map(|p| p.readers.iter());
    match (f.fd_kind, f.endpoint) {
        (FdKind::Socket, Some(Endpoint::Unix { path })) => {
            if LOG_SOCKETS.contains(&path.as_str()) {
                Judgement::sink(B::LocalIpc, V::LogExposure, "log")
            } else if is_display_socket(path) {
                Judgement::sink(B::LocalIpc, V::Clipboard, "clipboard")
            } else if f.peer.is_some_and(|p| p.internal) {
                Judgement::none(B::Internal, "unix")
            } else {
                Judgement::sink(B::LocalIpc, V::IpcExposure, "unix")
            }
        }
        (FdKind::Socket, _) => match f.host {
            Some(h) if issuers.iter().any(|i| host_matches(i, h)) => {
                Judgement::sink(B::Issuer, V::AllowedIssuer, "network")
            }
            _ => Judgement::sink(B::Outside, V::Exfiltration, "network"),
        },
        (FdKind::Pipe, _) => {
            if readers().any(|r| is_clipboard_tool(&r.exe)) {
                Judgement::sink(B::Pipe, V::Clipboard, "clipboard")
            } else if readers().any(|r| is_log_tool(&r.exe)) {
                Judgement::sink(B::Pipe, V::LogExposure, "log")
            } else if f.peer.is_some_and(|p| p.internal) {
                Judgement::none(B::Internal, "pipe")
            } else if f.in_container && (f.fd == 1 || f.fd == 2) {
                // A container's stdout/stderr is the runtime's log stream.
                Judgement::sink(B::Pipe, V::LogExposure, "log")
            } else {
                Judgement::sink(B::Pipe, V::IpcExposure, "pipe")
            }
        }
        (FdKind::Tty, _) => Judgement::sink(B::Terminal, V::TerminalExposure, "terminal"),
        (FdKind::File, Some(Endpoint::Path { path })) => {
            if NULL_DEVICES.contains(&path.as_str()) {
                Judgement::none(B::Null, "file")
            } else if credential_names.iter().any(|c| c == basename(path))
                || path.starts_with("/run/secrets/")
            {
                Judgement::none(B::CredentialStore, "file")
            } else if is_log_path(path) || f.fd == 1 || f.fd == 2 {
                // A log file, or stdout/stderr redirected to a file (a job's log).
                Judgement::sink(B::File, V::LogExposure, "log")
            } else {
                Judgement::sink(B::File, V::Stored, "file")
            }
        }
        (FdKind::File, _) => Judgement::sink(B::File, V::Stored, "file"),
        (FdKind::Other, _) => Judgement::none(B::Null, "unknown"),
        (FdKind::Unknown, _) => Judgement::sink(B::Unknown, V::Exfiltration, "unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::events::Ancestor;

    fn facts<'a>(kind: FdKind, ep: Option<&'a Endpoint>) -> SinkFacts<'a> {
        SinkFacts {
            fd: 5,
            fd_kind: kind,
            endpoint: ep,
            host: None,
            peer: None,
            in_container: false,
        }
    }

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
    fn network_sinks() {
        let iss = vec!["api.github.com".to_string()];
        let ep = Endpoint::Inet {
            proto: "tcp".into(),
            addr: "140.82.112.6:443".parse().unwrap(),
        };
        let mut f = facts(FdKind::Socket, Some(&ep));
        f.host = Some("api.github.com");
        let j = judge(&f, &iss, &[]);
        assert_eq!(
            (j.boundary, j.verdict),
            (Boundary::Issuer, Some(Verdict::AllowedIssuer))
        );
        f.host = Some("paste.example");
        assert_eq!(judge(&f, &iss, &[]).verdict, Some(Verdict::Exfiltration));
        f.host = None;
        assert_eq!(judge(&f, &iss, &[]).boundary, Boundary::Outside);
    }

    #[test]
    fn local_sinks() {
        let path = |p: &str| Endpoint::Path { path: p.into() };
        let null = path("/dev/null");
        assert_eq!(
            judge(&facts(FdKind::File, Some(&null)), &[], &[]).verdict,
            None
        );
        let log = path("/tmp/build/app.log");
        assert_eq!(
            judge(&facts(FdKind::File, Some(&log)), &[], &[]).verdict,
            Some(Verdict::LogExposure)
        );
        let out = path("/tmp/out.txt");
        assert_eq!(
            judge(&facts(FdKind::File, Some(&out)), &[], &[]).verdict,
            Some(Verdict::Stored)
        );
        let mut stderr = facts(FdKind::File, Some(&out));
        stderr.fd = 2;
        assert_eq!(judge(&stderr, &[], &[]).verdict, Some(Verdict::LogExposure));
        let cred = path("/home/u/.config/gh/hosts.yml");
        let j = judge(
            &facts(FdKind::File, Some(&cred)),
            &[],
            &["hosts.yml".into()],
        );
        assert_eq!((j.boundary, j.verdict), (Boundary::CredentialStore, None));
        assert_eq!(
            judge(&facts(FdKind::Tty, None), &[], &[]).verdict,
            Some(Verdict::TerminalExposure)
        );
        let dev_log = Endpoint::Unix {
            path: "/dev/log".into(),
        };
        assert_eq!(
            judge(&facts(FdKind::Socket, Some(&dev_log)), &[], &[]).verdict,
            Some(Verdict::LogExposure)
        );
        let x11 = Endpoint::Unix {
            path: "@/tmp/.X11-unix/X99".into(),
        };
        assert_eq!(
            judge(&facts(FdKind::Socket, Some(&x11)), &[], &[]).verdict,
            Some(Verdict::Clipboard)
        );
    }

    #[test]
    fn pipes_follow_their_readers() {
        let reader = |exe: &str| Ancestor {
            pid: 7,
            exe: exe.into(),
        };
        let internal = Peer {
            internal: true,
            readers: vec![reader("/usr/bin/base64")],
            pipe: None,
        };
        let mut f = facts(FdKind::Pipe, None);
        f.peer = Some(&internal);
        assert_eq!(judge(&f, &[], &[]).boundary, Boundary::Internal);
        assert_eq!(judge(&f, &[], &[]).verdict, None);
        let clip = Peer {
            internal: true,
            readers: vec![reader("/usr/bin/xclip")],
            pipe: None,
        };
        f.peer = Some(&clip);
        assert_eq!(judge(&f, &[], &[]).verdict, Some(Verdict::Clipboard));
        let outside = Peer {
            internal: false,
            readers: vec![reader("/usr/bin/nc")],
            pipe: None,
        };
        f.peer = Some(&outside);
        assert_eq!(judge(&f, &[], &[]).verdict, Some(Verdict::IpcExposure));
        f.peer = None;
        f.in_container = true;
        f.fd = 1;
        assert_eq!(judge(&f, &[], &[]).verdict, Some(Verdict::LogExposure));
    }
}
