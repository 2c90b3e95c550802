//! One process as the daemon knows it: identity, container, and its fd table. Seeded from
//! `/proc`, kept current by the tracker from exec/fork/exit and fd records.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::events::{Endpoint, FdKind, ProcessRef};
use super::workspace::WorkspaceRef;
use crate::host::procfs;

/// One end of a pipe or socketpair whose creation the tracker saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipeEnd {
    /// Tracker-assigned id shared by both ends.
    pub id: u64,
    /// 0 or 1: a pipe's read end is 0, its write end 1; a socketpair has two symmetric
    /// sides. Bytes written on side `s` are read by the holders of side `1 - s`.
    pub side: u8,
    /// Workspace of the process that created it.
    pub workspace: Arc<str>,
}

/// What the daemon knows about one fd.
#[derive(Clone, Debug)]
pub struct FdEntry {
    pub kind: FdKind,
    pub endpoint: Option<Endpoint>,
    /// Socket type (SOCK_STREAM/SOCK_DGRAM) when known.
    pub sock_type: Option<u64>,
    /// Reads of this fd are captured (credential file).
    pub captured: bool,
    pub cloexec: bool,
    /// The pipe or socketpair end, when its creation was seen.
    pub pipe: Option<PipeEnd>,
    /// For unix sockets connected to a path: the pids owning the listening socket.
    pub unix_peers: Option<Arc<[u32]>>,
}

impl FdEntry {
    /// An fd of `kind` leading to `endpoint`, with nothing else known.
    pub fn new(kind: FdKind, endpoint: Option<Endpoint>) -> FdEntry {
        FdEntry {
            kind,
            endpoint,
            sock_type: None,
            captured: false,
            cloexec: false,
            pipe: None,
            unix_peers: None,
        }
    }
}

/// One process.
#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    pub cgroup: String,
    pub container_id: Option<String>,
    pub container_runtime: Option<String>,
    pub start_ticks: u64,
    /// Kernel time (CLOCK_MONOTONIC ns) of its first record: tells apart processes of
    /// reused pids whose start time `/proc` no longer had.
    pub seen_ns: u64,
    pub fds: HashMap<i32, FdEntry>,
    /// When it exited (kept briefly for late records).
    pub exited: Option<Instant>,
    /// The workspace it belongs to, resolved on first use (see [`super::workspace`]).
    pub workspace: Option<Arc<WorkspaceRef>>,
    /// The event-facing view, built on first use and dropped when the process changes.
    pub(crate) view: Option<Arc<ProcessRef>>,
}

impl Process {
    pub(crate) fn from_snapshot(s: procfs::ProcSnapshot) -> Process {
        let (container_id, container_runtime) = container_of(&s.cgroup);
        Process {
            pid: s.pid,
            ppid: s.ppid,
            uid: s.uid,
            exe: s.exe,
            argv: s.argv,
            cgroup: s.cgroup,
            container_id,
            container_runtime,
            start_ticks: s.start_ticks,
            seen_ns: 0,
            fds: HashMap::default(),
            exited: None,
            workspace: None,
            view: None,
        }
    }

    pub(crate) fn placeholder(pid: u32, uid: u32) -> Process {
        Process {
            pid,
            ppid: 0,
            uid,
            exe: String::new(),
            argv: Vec::new(),
            cgroup: String::new(),
            container_id: None,
            container_runtime: None,
            start_ticks: 0,
            seen_ns: 0,
            fds: HashMap::default(),
            exited: None,
            workspace: None,
            view: None,
        }
    }
}

/// Finds a container id (64 hex chars) and runtime in a cgroup path: docker, containerd
/// (`cri-containerd-`), CRI-O (`crio-`), podman (`libpod-`), Kubernetes (`kubepods`).
pub fn container_of(cgroup: &str) -> (Option<String>, Option<String>) {
    let kube = cgroup.contains("kubepods");
    for comp in cgroup.split('/').rev() {
        let c = comp.strip_suffix(".scope").unwrap_or(comp);
        let (runtime, id) = if let Some(r) = c.strip_prefix("docker-") {
            ("docker", r)
        } else if let Some(r) = c.strip_prefix("cri-containerd-") {
            ("containerd", r)
        } else if let Some(r) = c.strip_prefix("crio-") {
            ("cri-o", r)
        } else if let Some(r) = c.strip_prefix("libpod-") {
            ("podman", r)
        } else {
            ("", c)
        };
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
            let runtime = if !runtime.is_empty() {
                runtime
            } else if cgroup.contains("/docker/") {
                "docker"
            } else if kube {
                "kubernetes"
            } else {
                "unknown"
            };
            let runtime = if kube && runtime != "kubernetes" {
                format!("kubernetes/{runtime}")
            } else {
                runtime.to_string()
            };
            return (Some(id.to_string()), Some(runtime));
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_from_cgroup_paths() {
        let id = "a".repeat(64);
        assert_eq!(
            container_of(&format!("/system.slice/docker-{id}.scope")),
            (Some(id.clone()), Some("docker".into()))
        );
        assert_eq!(
            container_of(&format!("/docker/{id}")),
            (Some(id.clone()), Some("docker".into()))
        );
        assert_eq!(
            container_of(&format!("/kubepods.slice/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-{id}.scope")),
            (Some(id.clone()), Some("kubernetes/containerd".into()))
        );
        assert_eq!(
            container_of(&format!("/machine.slice/libpod-{id}.scope")),
            (Some(id.clone()), Some("podman".into()))
        );
        assert_eq!(
            container_of("/user.slice/user-0.slice/session-1.scope"),
            (None, None)
        );
        assert_eq!(
            container_of(&format!("/x/{}", "g".repeat(64))),
            (None, None)
        );
    }
}
