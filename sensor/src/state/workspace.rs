//! Workspaces: the boundary a process's secrets belong to. A container (from its cgroup)
//! is one workspace; outside containers each watched root — a process matched by
//! `--watch-exe`/`--watch-pid`/the configuration — starts a workspace that its descendants
//! inherit (a nested match stays in its ancestor's workspace); anything else watched (a
//! cgroup that is not a container) is a workspace per cgroup. Learned secrets, issuers and
//! alert deduplication are kept per workspace.

use serde::Serialize;

/// How a workspace is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceKind {
    /// A container (from its cgroup path).
    Container,
    /// A watched process tree outside containers (a `--watch-exe`/`--watch-pid` root and
    /// its descendants).
    ProcessTree,
    /// A watched cgroup that is not a container.
    Cgroup,
}

/// A workspace as alerts name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkspaceRef {
    /// Stable id: `container:<id>`, `tree:<root pid>:<root start time>`, `cgroup:<path>`.
    pub id: String,
    pub kind: WorkspaceKind,
    /// Root process of a process-tree workspace (or the first process seen in a container).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_runtime: Option<String>,
    /// cgroup path of the workspace's processes (of its root, for process trees).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
    /// The Kubernetes pod of a container workspace, from the kubelet's files on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
}

/// A Kubernetes pod, as the kubelet's files on the host name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodRef {
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl WorkspaceRef {
    /// The workspace of a container.
    pub fn container(
        id: &str,
        runtime: Option<&str>,
        cgroup: &str,
        first: Option<(u32, &str)>,
    ) -> WorkspaceRef {
        WorkspaceRef {
            id: format!("container:{id}"),
            kind: WorkspaceKind::Container,
            root_pid: first.map(|f| f.0),
            root_exe: first.map(|f| f.1.to_string()),
            container_id: Some(id.to_string()),
            container_name: None,
            container_runtime: runtime.map(str::to_string),
            cgroup: cgroup.to_string(),
            pod: None,
        }
    }

    /// The workspace started by a watched root process; `start` tells apart roots of the
    /// same reused pid (its start time, or when the sensor first saw it).
    pub fn tree(pid: u32, start: &str, exe: &str, cgroup: &str) -> WorkspaceRef {
        WorkspaceRef {
            id: format!("tree:{pid}:{start}"),
            kind: WorkspaceKind::ProcessTree,
            root_pid: Some(pid),
            root_exe: Some(exe.to_string()),
            container_id: None,
            container_name: None,
            container_runtime: None,
            cgroup: cgroup.to_string(),
            pod: None,
        }
    }

    /// The workspace of a watched cgroup that is not a container.
    pub fn cgroup(path: &str) -> WorkspaceRef {
        WorkspaceRef {
            id: format!("cgroup:{}", if path.is_empty() { "/" } else { path }),
            kind: WorkspaceKind::Cgroup,
            root_pid: None,
            root_exe: None,
            container_id: None,
            container_name: None,
            container_runtime: None,
            cgroup: path.to_string(),
            pod: None,
        }
    }
}
