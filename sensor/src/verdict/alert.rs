//! The alert: the one record the sensor emits for a judgement about a workspace's secrets —
//! which token (redacted), learned where, passed through which processes, sent by whom, to
//! which sink, and what that means (the [`Verdict`]). Outputs (stdout, SIEM formats,
//! webhooks) serialize this shape; it never holds a raw secret value.

use std::sync::Arc;

use serde::Serialize;

use crate::detect::rules::Severity;
use crate::detect::Finding;
use crate::state::events::{Endpoint, FdKind, ProcessRef};
pub use crate::state::workspace::{WorkspaceKind, WorkspaceRef};

use super::boundary::Boundary;

/// What a finding means for the workspace's boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Sent to a network destination that is not an issuer of the token (incl. DNS queries).
    Exfiltration,
    /// Sent to one of the token's issuers: normal use, counted, not alerted.
    AllowedIssuer,
    /// Put on the clipboard (OSC 52 through a terminal, clipboard tools).
    Clipboard,
    /// Written to a log file, the system log or a container's log stream.
    LogExposure,
    /// Written to a terminal (screen, scrollback, session recordings).
    TerminalExposure,
    /// Handed over a pipe or local socket to a process outside the workspace.
    IpcExposure,
    /// Written into a file of the workspace (artifact, cache): low severity.
    Stored,
    /// Another process read a watched process's environment or memory.
    Harvesting,
    /// A watched process used a channel the sensor cannot inspect (io_uring, …).
    UnmonitoredChannel,
    /// Detection for a workspace fell behind (flood): its content is scanned partially.
    DetectionDegraded,
}

impl Verdict {
    /// Whether this verdict is raised as an alert (the others are only counted).
    pub fn alerts(self) -> bool {
        !matches!(self, Verdict::AllowedIssuer)
    }

    /// Whether the token left the workspace (revocation candidates).
    pub fn is_leak(self) -> bool {
        matches!(
            self,
            Verdict::Exfiltration
                | Verdict::Clipboard
                | Verdict::LogExposure
                | Verdict::TerminalExposure
                | Verdict::IpcExposure
        )
    }

    /// The verdict's name as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Exfiltration => "exfiltration",
            Verdict::AllowedIssuer => "allowed_issuer",
            Verdict::Clipboard => "clipboard",
            Verdict::LogExposure => "log_exposure",
            Verdict::TerminalExposure => "terminal_exposure",
            Verdict::IpcExposure => "ipc_exposure",
            Verdict::Stored => "stored",
            Verdict::Harvesting => "harvesting",
            Verdict::UnmonitoredChannel => "unmonitored_channel",
            Verdict::DetectionDegraded => "detection_degraded",
        }
    }
}

/// Where the bytes went.
#[derive(Clone, Debug, Serialize)]
pub struct Sink {
    /// What kind of sink this is: `network`, `dns`, `clipboard`, `log`, `terminal`, `pipe`,
    /// `unix`, `file`, `process` (harvesting), `unknown`.
    pub kind: &'static str,
    pub fd: i32,
    pub fd_kind: FdKind,
    pub endpoint: Option<Endpoint>,
    pub syscall: &'static str,
    /// Destination name (TLS SNI, HTTP Host, HTTP/2 :authority, DNS answer), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where `host` came from: `sni`, `http`, `h2`, `dns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_source: Option<&'static str>,
    /// `plaintext` when the bytes were read inside a TLS library before encryption,
    /// `opaque` when the stream is TLS the sensor could not decrypt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'static str>,
    /// The queried name, for DNS sinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_query: Option<String>,
    /// The sink relative to the workspace boundary (kept for compatibility; see `verdict`).
    pub boundary: Boundary,
}

/// Where a secret was learned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecretSource {
    /// `env` (environment at exec), `file` (credential file read), `tls_received` (read
    /// from a TLS peer), `known_format` (recognised by a rule only), `process` (harvesting:
    /// the watched process whose environment or memory was reached), `none` (unmonitored
    /// channel alerts: no token is known to be involved).
    pub kind: &'static str,
    /// Environment variable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var: Option<String>,
    /// Credential file path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Process that held it (exec'd with it, read the file, received it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Peer it was received from (`tls_received`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One process a secret passed through inside the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub pid: u32,
    pub exe: String,
    /// `pipe` or `unix`.
    pub via: &'static str,
}

/// A process that read a secret-named environment variable (getenv), as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvAccess {
    pub pid: u32,
    pub exe: String,
    pub var: String,
}

/// The path of a secret from where it was learned to where it left.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Chain {
    pub source: SecretSource,
    /// Processes it passed through (pipe / unix-socket hops), in order, ending before the
    /// sender.
    pub hops: Vec<Hop>,
    /// The process that sent it to the sink.
    pub sender_pid: u32,
    pub sender_exe: String,
    /// getenv evidence: which processes read which secret-named variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_reads: Vec<EnvAccess>,
}

/// A process that read another's secrets (harvesting verdicts).
#[derive(Clone, Debug, Serialize)]
pub struct Harvest {
    /// `proc_environ`, `proc_mem`, `process_vm_readv`, `process_vm_writev`, `ptrace`,
    /// `pidfd_getfd`.
    pub method: &'static str,
    /// The reader's command name as the kernel saw it (`process.exe` may be empty when
    /// the reader exited before the daemon could read `/proc`).
    pub reader_comm: String,
    /// The watched process whose secrets were reachable.
    pub target_pid: u32,
    pub target_exe: String,
    /// The path opened, for `/proc` reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An alert.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// `finding`, or `repeat` (a summary of a finding's repeats, see `count`).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Stable id (UUIDv7), the key for SIEM deduplication.
    pub id: String,
    /// Time of the write that carried the token (RFC 3339).
    pub time: String,
    pub verdict: Verdict,
    /// Severity of the alert (the rule's, adjusted by the verdict).
    pub severity: Severity,
    /// MITRE ATT&CK technique ids.
    pub mitre: Vec<String>,
    pub workspace: WorkspaceRef,
    /// The token, redacted (absent for harvesting and channel alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// The process that sent the bytes (or read another's secrets).
    pub process: Arc<ProcessRef>,
    pub tid: u32,
    pub sink: Sink,
    pub chain: Chain,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub harvest: Option<Harvest>,
    /// Occurrences of this (workspace, token, destination) in the current window: 1 when
    /// first raised. Repeats within the window raise no new finding; when the window
    /// closes (or the sensor stops) one `"type":"repeat"` record with the total count and
    /// `repeat_of` = the finding's id summarizes them.
    pub count: u64,
    /// For `repeat` records: the id of the finding they summarize.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<String>,
    /// For `repeat` records: time of the last occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Extra detail (reason of a degraded or unmonitored alert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A new alert id: UUIDv7 (time-ordered, random tail).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        // Time-ordered across milliseconds.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_id() > a);
    }
}
