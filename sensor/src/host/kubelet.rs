//! Kubernetes pod metadata without the Kubernetes API: alerts from a node name the pod and
//! container a leak came from, using only what the node itself holds.
//!
//! - The **pod UID** is in the container's cgroup path, as the kubelet names it:
//!   `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
//!   (systemd driver, `-` in the UID written `_`) or `/kubepods/burstable/pod<uid>/<id>`
//!   (cgroupfs driver; Guaranteed pods have no QoS level). The last component is the
//!   container id (`cri-containerd-`, `crio-`, `docker-` prefixes or bare).
//! - **Namespace and pod name** come from the CRI log directory the kubelet creates for
//!   every pod, `/var/log/pods/<namespace>_<name>_<uid>/`.
//! - The **container name** comes from the kubelet's per-container log link
//!   `/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`, or, when the
//!   pod has a single container, from `/var/log/pods/<…>/<container>/` or the kubelet's
//!   `/var/lib/kubelet/pods/<uid>/containers/<container>/`.
//!
//! Names are DNS labels/subdomains, so `_` never occurs inside one and splitting on it is
//! exact. Every lookup is relative to `host_root` (`/` on a host; where the host's
//! directories are mounted when the sensor runs in a container).

use std::path::Path;

/// What the node knows about the pod a cgroup belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PodInfo {
    /// Pod UID (a UUID, or a 32-hex-digit hash for static pods).
    pub uid: String,
    /// Pod name, when the pod's log directory is present.
    pub name: Option<String>,
    /// Pod namespace, when the pod's log directory is present.
    pub namespace: Option<String>,
    /// Container name, when it can be told apart (see the module docs).
    pub container: Option<String>,
}

/// The pod of a kubepods cgroup path, or of a bare container id (64 hex digits, looked up
/// through `/var/log/containers`). `None` when `cgroup` is not a Kubernetes pod's.
pub fn pod_of(cgroup: &str, host_root: &Path) -> Option<PodInfo> {
    let (uid, container_id) = match parse_cgroup(cgroup) {
        Some((uid, id)) => (Some(uid), id),
        None if is_container_id(cgroup) => (None, Some(cgroup.to_string())),
        None => return None,
    };
    let link = container_id
        .as_deref()
        .and_then(|id| container_log_link(host_root, id));
    let uid = match (uid, &link) {
        (Some(u), _) => u,
        (None, Some(l)) => l.uid.clone()?,
        (None, None) => return None,
    };
    let mut info = PodInfo {
        uid,
        ..PodInfo::default()
    };
    let pod_dir = pod_log_dir(host_root, &info.uid);
    if let Some((namespace, name, _)) = pod_dir.as_deref().and_then(split_pod_dir) {
        info.namespace = Some(namespace.to_string());
        info.name = Some(name.to_string());
    }
    if let Some(l) = link.filter(|l| l.uid.as_deref().is_none_or(|u| u == info.uid)) {
        info.namespace.get_or_insert(l.namespace);
        info.name.get_or_insert(l.pod);
        info.container = Some(l.container);
    }
    // Without a link for a known container id while the links are there, the id is the
    // pod's sandbox (pause) container: no name. Otherwise a pod with exactly one
    // container names it.
    let links_present = host_root.join("var/log/containers").is_dir();
    if info.container.is_none() && (container_id.is_none() || !links_present) {
        let logs = pod_dir.map(|d| host_root.join("var/log/pods").join(d));
        let kubelet = host_root
            .join("var/lib/kubelet/pods")
            .join(&info.uid)
            .join("containers");
        info.container = logs
            .and_then(|d| only_subdir(&d))
            .or_else(|| only_subdir(&kubelet));
    }
    Some(info)
}

/// Pod UID and (if the path goes that deep) container id from a kubepods cgroup path.
fn parse_cgroup(cgroup: &str) -> Option<(String, Option<String>)> {
    let comps: Vec<&str> = cgroup.split('/').filter(|c| !c.is_empty()).collect();
    let start = comps.iter().position(|c| c.starts_with("kubepods"))?;
    for (i, comp) in comps.iter().enumerate().skip(start) {
        let Some(uid) = pod_uid_of_component(comp) else {
            continue;
        };
        let container = comps.get(i + 1).and_then(|c| container_id_of_component(c));
        return Some((uid, container));
    }
    None
}

/// `kubepods-besteffort-pod<uid>.slice` (UID with `_`) or `pod<uid>` → the UID.
fn pod_uid_of_component(comp: &str) -> Option<String> {
    let body = comp.strip_suffix(".slice").unwrap_or(comp);
    let idx = body.rfind("pod")?;
    // `pod` must start the component or follow a `-` (kubepods-…-pod<uid>).
    if idx != 0 && !body[..idx].ends_with('-') {
        return None;
    }
    let uid = body[idx + 3..].replace('_', "-");
    let hexish = uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    (hexish && (32..=36).contains(&uid.len())).then(|| uid.to_ascii_lowercase())
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` or a bare id.
fn container_id_of_component(comp: &str) -> Option<String> {
    let body = comp.strip_suffix(".scope").unwrap_or(comp);
    let id = ["cri-containerd-", "crio-", "docker-", "containerd-"]
        .iter()
        .find_map(|p| body.strip_prefix(p))
        .unwrap_or(body);
    is_container_id(id).then(|| id.to_ascii_lowercase())
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a `/var/log/containers/<pod>_<ns>_<container>-<id>.log` link says.
struct ContainerLink {
    pod: String,
    namespace: String,
    container: String,
    /// From the link's target, `/var/log/pods/<ns>_<pod>_<uid>/<container>/N.log`.
    uid: Option<String>,
}

fn container_log_link(host_root: &Path, id: &str) -> Option<ContainerLink> {
    let dir = host_root.join("var/log/containers");
    let suffix = format!("-{id}.log");
    for e in std::fs::read_dir(&dir).ok()?.flatten() {
        let file = e.file_name();
        let Some(stem) = file.to_str().and_then(|f| f.strip_suffix(&suffix)) else {
            continue;
        };
        let mut parts = stem.splitn(3, '_');
        let (Some(pod), Some(namespace), Some(container)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let uid = std::fs::read_link(e.path()).ok().and_then(|t| {
            t.iter()
                .filter_map(|c| c.to_str())
                .find_map(|c| split_pod_dir(c).map(|(_, _, uid)| uid.to_string()))
        });
        return Some(ContainerLink {
            pod: pod.into(),
            namespace: namespace.into(),
            container: container.into(),
            uid,
        });
    }
    None
}

/// The name of `/var/log/pods/<namespace>_<name>_<uid>` for `uid`.
fn pod_log_dir(host_root: &Path, uid: &str) -> Option<String> {
    let suffix = format!("_{uid}");
    std::fs::read_dir(host_root.join("var/log/pods"))
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|n| n.ends_with(&suffix) && split_pod_dir(n).is_some())
}

/// `<namespace>_<name>_<uid>` → its three parts.
fn split_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('_');
    let (ns, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || pod.is_empty() {
        return None;
    }
    pod_uid_of_component(&format!("pod{uid}"))?;
    Some((ns, pod, uid))
}

/// The single subdirectory of `dir`, if it has exactly one.
fn only_subdir(dir: &Path) -> Option<String> {
    let mut names = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok());
    let first = names.next()?;
    names.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const UID: &str = "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e";
    const WEB: &str = "d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2";
    const SIDECAR: &str = "a1a2a3a4a5a6a7a8a9a0b1b2b3b4b5b6b7b8b9b0c1c2c3c4c5c6c7c8c9c0d1d2";

    /// A node's kubelet and CRI files for one two-container pod `shop/web-7d9f` and one
    /// single-container pod without log links, under a fresh temp root.
    fn node(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("kubelet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pod_logs = root.join(format!("var/log/pods/shop_web-7d9f_{UID}"));
        for c in ["web", "istio-proxy"] {
            std::fs::create_dir_all(pod_logs.join(c)).unwrap();
            std::fs::write(pod_logs.join(c).join("0.log"), "").unwrap();
        }
        let links = root.join("var/log/containers");
        std::fs::create_dir_all(&links).unwrap();
        for (c, id) in [("web", WEB), ("istio-proxy", SIDECAR)] {
            std::os::unix::fs::symlink(
                format!("/var/log/pods/shop_web-7d9f_{UID}/{c}/0.log"),
                links.join(format!("web-7d9f_shop_{c}-{id}.log")),
            )
            .unwrap();
        }
        let kubelet = root.join(format!("var/lib/kubelet/pods/{UID}"));
        std::fs::create_dir_all(kubelet.join("containers/web/0a1b2c3d")).unwrap();
        std::fs::create_dir_all(kubelet.join("containers/istio-proxy/4e5f6a7b")).unwrap();
        std::fs::write(kubelet.join("etc-hosts"), "127.0.0.1 localhost\n").unwrap();
        root
    }

    fn pod(name: Option<&str>, ns: Option<&str>, container: Option<&str>) -> PodInfo {
        PodInfo {
            uid: UID.into(),
            name: name.map(Into::into),
            namespace: ns.map(Into::into),
            container: container.map(Into::into),
        }
    }

    #[test]
    fn systemd_driver_path_names_pod_and_container() {
        let root = node("systemd");
        let uid_ = UID.replace('-', "_");
        let cg = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{WEB}.scope");
        assert_eq!(
            pod_of(&cg, &root),
            Some(pod(Some("web-7d9f"), Some("shop"), Some("web")))
        );
        let cg = format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/crio-{SIDECAR}.scope");
        assert_eq!(
            pod_of(&cg, &root),
            Some(pod(Some("web-7d9f"), Some("shop"), Some("istio-proxy")))
        );
        // Guaranteed QoS: no QoS level in the path.
        let cg = format!("/kubepods.slice/kubepods-pod{uid_}.slice/docker-{WEB}.scope");
        assert_eq!(
            pod_of(&cg, &root).unwrap().container.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn cgroupfs_driver_path_and_nested_hierarchies() {
        let root = node("cgroupfs");
        let want = Some(pod(Some("web-7d9f"), Some("shop"), Some("web")));
        assert_eq!(
            pod_of(&format!("/kubepods/burstable/pod{UID}/{WEB}"), &root),
            want
        );
        assert_eq!(pod_of(&format!("/kubepods/pod{UID}/{WEB}"), &root), want);
        // kind / docker-in-docker nodes nest kubepods under the node container's cgroup.
        let nested =
            format!("/system.slice/docker-{SIDECAR}.scope/kubepods/besteffort/pod{UID}/{WEB}");
        assert_eq!(pod_of(&nested, &root), want);
        // Seen from a sensor pod's own cgroup namespace, other pods' paths start with `..`.
        let uid_ = UID.replace('-', "_");
        let relative =
            format!("/../../kubepods-besteffort-pod{uid_}.slice/cri-containerd-{WEB}.scope");
        assert_eq!(pod_of(&relative, &root), want);
        let relative = format!("/../../../kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{WEB}.scope");
        assert_eq!(pod_of(&relative, &root), want);
    }

    #[test]
    fn bare_container_id_is_found_through_the_log_links() {
        let root = node("bare");
        assert_eq!(
            pod_of(SIDECAR, &root),
            Some(pod(Some("web-7d9f"), Some("shop"), Some("istio-proxy")))
        );
        // Unknown id: nothing on the node says which pod it is.
        assert_eq!(pod_of(&"f".repeat(64), &root), None);
    }

    #[test]
    fn pod_level_cgroup_and_unknown_container_leave_the_name_out_when_ambiguous() {
        let root = node("podlevel");
        let uid_ = UID.replace('-', "_");
        // The pod's own cgroup (no container below it): two containers, no way to choose.
        let cg =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice");
        assert_eq!(
            pod_of(&cg, &root),
            Some(pod(Some("web-7d9f"), Some("shop"), None))
        );
        // The sandbox (pause) container has no log link.
        let pause = "9".repeat(64);
        let cg = format!("/kubepods/burstable/pod{UID}/{pause}");
        assert_eq!(
            pod_of(&cg, &root),
            Some(pod(Some("web-7d9f"), Some("shop"), None))
        );
    }

    #[test]
    fn single_container_pods_are_named_from_the_kubelet_or_log_directories() {
        // A node whose /var/log/containers is not visible (not mounted into the sensor).
        let root = std::env::temp_dir().join(format!("kubelet-single-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let uid2 = "0a0b0c0d-1e1f-4a2b-8c3d-4e5f6a7b8c9d";
        // Only the kubelet's pod directory (no CRI logs): UID and container, no names.
        std::fs::create_dir_all(
            root.join(format!("var/lib/kubelet/pods/{uid2}/containers/job/77aa")),
        )
        .unwrap();
        let cg = format!("/kubepods/besteffort/pod{uid2}/{}", "8".repeat(64));
        assert_eq!(
            pod_of(&cg, &root),
            Some(PodInfo {
                uid: uid2.into(),
                name: None,
                namespace: None,
                container: Some("job".into()),
            })
        );
        // With its log directory too: the names as well.
        std::fs::create_dir_all(root.join(format!("var/log/pods/ci_runner-x_{uid2}/job"))).unwrap();
        assert_eq!(
            pod_of(&cg, &root).map(|p| (p.namespace, p.name, p.container)),
            Some((
                Some("ci".into()),
                Some("runner-x".into()),
                Some("job".into())
            ))
        );
        // The pod cgroup itself (no container id) of a single-container pod names it too.
        assert_eq!(
            pod_of(&format!("/kubepods/besteffort/pod{uid2}"), &root).and_then(|p| p.container),
            Some("job".into())
        );
        // Once the log links are visible, an id without a link is the sandbox: no name.
        std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
        assert_eq!(pod_of(&cg, &root).and_then(|p| p.container), None);
    }

    #[test]
    fn no_node_files_still_gives_the_uid_and_non_pods_give_nothing() {
        let empty = std::env::temp_dir().join(format!("kubelet-empty-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&empty);
        let cg = format!("/kubepods/burstable/pod{UID}/{WEB}");
        assert_eq!(pod_of(&cg, &empty), Some(pod(None, None, None)));
        // Static (mirror) pods have a 32-hex-digit hash as UID.
        let hash = "6f0f3c2ab1d4e5f60718293a4b5c6d7e";
        assert_eq!(
            pod_of(
                &format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice"
                ),
                &empty
            )
            .map(|p| p.uid),
            Some(hash.into())
        );
        for not_pod in [
            "/system.slice/docker-abc.scope",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/system.slice/docker-{WEB}.scope"),
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable/podnot-a-uid/x",
            "",
        ] {
            assert_eq!(pod_of(not_pod, &empty), None, "{not_pod}");
        }
    }
}
