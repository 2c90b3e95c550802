//! Container names from the runtimes' own state on the host (no runtime API calls): Docker's
//! `config.v2.json` and Podman's `containers.json`. A name ("ci-job-42") is what a SOC
//! recognises; the 64-hex id from the cgroup path is what the kernel gives.

use std::path::Path;

/// The name of container `id` as its runtime recorded it, looked up under `root` (`/` on
/// the host; a fixture directory in tests).
pub fn container_name(root: &Path, id: &str) -> Option<String> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    docker_name(root, id).or_else(|| podman_name(root, id))
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    // Runtime state files are small; refuse anything unreasonable.
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > 64 * 1024 * 1024 {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn docker_name(root: &Path, id: &str) -> Option<String> {
    let v = read_json(
        &root
            .join("var/lib/docker/containers")
            .join(id)
            .join("config.v2.json"),
    )?;
    let name = v.get("Name")?.as_str()?;
    Some(name.trim_start_matches('/').to_string()).filter(|n| !n.is_empty())
}

fn podman_name(root: &Path, id: &str) -> Option<String> {
    let v = read_json(&root.join("var/lib/containers/storage/overlay-containers/containers.json"))?;
    v.as_array()?
        .iter()
        .find(|c| c.get("id").and_then(|i| i.as_str()) == Some(id))?
        .get("names")?
        .as_array()?
        .first()?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_names() {
        let root = std::env::temp_dir().join(format!("sensor-containers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (d, p) = ("d".repeat(64), "e".repeat(64));
        let ddir = root.join("var/lib/docker/containers").join(&d);
        std::fs::create_dir_all(&ddir).unwrap();
        std::fs::write(
            ddir.join("config.v2.json"),
            r#"{"ID":"x","Name":"/ci-job-42"}"#,
        )
        .unwrap();
        let pdir = root.join("var/lib/containers/storage/overlay-containers");
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::write(
            pdir.join("containers.json"),
            format!(
                r#"[{{"id":"{}","names":["other"]}},{{"id":"{p}","names":["devbox"]}}]"#,
                "f".repeat(64)
            ),
        )
        .unwrap();
        assert_eq!(container_name(&root, &d).as_deref(), Some("ci-job-42"));
        assert_eq!(container_name(&root, &p).as_deref(), Some("devbox"));
        assert_eq!(container_name(&root, &"a".repeat(64)), None);
        assert_eq!(container_name(&root, "../../etc"), None);
        std::fs::write(ddir.join("config.v2.json"), "not json").unwrap();
        assert_eq!(container_name(&root, &d), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
